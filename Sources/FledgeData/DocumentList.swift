// DocumentList: documents.jsonl of a prepared folder — one line per input document: its id
// ("source:relative/path#ordinal"), source, fate (kept, or the rule that removed it), split, tokens, uses, content
// hash, and the document it duplicates. Written as the last step of a preparation, streamed from the records.

import FledgeFiles
import Foundation

enum DocumentList {
    /// Writes documents.jsonl for `pass`'s records with the split and mix decided (`isValidation`, `uses`).
    static func write(
        _ pass: PreparationPass, isValidation: [Bool], uses: [Int32], to url: URL, need: @escaping () -> Int
    ) throws {
        let file = try SequentialFile(url, need: need)
        let records = pass.records
        let config = pass.config
        var out: [UInt8] = []
        out.reserveCapacity(1 << 20)
        let names = config.sources.map { JSONNumber.string($0.name) }
        let fileIDs = config.sources.indices.map { s in
            pass.sourceFiles[s].map { Array(JSONNumber.string("\(config.sources[s].name):\($0)#").utf8.dropLast()) }
        }
        func number(_ value: Int) {
            guard value >= 10 else { return out.append(UInt8(48 + value)) }
            number(value / 10)
            out.append(UInt8(48 + value % 10))
        }
        func id(_ i: Int) {
            out += fileIDs[Int(records[i].source)][Int(records[i].file)]
            number(records[i].ordinal)
            out.append(0x22)
        }
        let hexDigits = Array("0123456789abcdef".utf8)
        // Keys in sorted order, as JSONSerialization would write them (it, and string interpolation, are far
        // slower for hundreds of thousands of lines).
        for (i, record) in records.enumerated() {
            out += #"{"characters":"#.utf8
            number(record.characters)
            if record.duplicateOf >= 0 {
                out += #","duplicate_of":"#.utf8
                id(Int(record.duplicateOf))
            }
            out += #","hash":""#.utf8
            for word in [record.hash.high, record.hash.low] {
                for shift in stride(from: 60, through: 0, by: -4) {
                    out.append(hexDigits[Int((word >> UInt64(shift)) & 15)])
                }
            }
            out += #"","id":"#.utf8
            id(i)
            out += #","source":"#.utf8
            out += names[Int(record.source)].utf8
            if record.status == .kept || record.status == .mixedOut {
                out += (isValidation[i] ? #","split":"validation""# : #","split":"train""#).utf8
            }
            out += #","status":""#.utf8
            out += record.status.rawValue.utf8
            out.append(0x22)
            if record.status == .kept {
                out += #","tokens":"#.utf8
                number(record.tokens)
                out += #","uses":"#.utf8
                number(Int(uses[i]))
            }
            out += "}\n".utf8
            if out.count >= 1 << 20 {
                try file.append(out)
                out.removeAll(keepingCapacity: true)
            }
        }
        try file.append(out)
        _ = try file.finish()
    }
}
