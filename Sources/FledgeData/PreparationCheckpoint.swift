// PreparationCheckpoint: what an interrupted `fledge data prepare` leaves for the next run. The streaming pass
// works in `.NAME.partial/` beside the output; every `checkpointSeconds`, at the end of an input file, it
// writes the records of the documents read since the last checkpoint and syncs the work files, then replaces
// progress.json (atomically) with the files completed and the work files' lengths. A run that finds a
// progress.json made with the same settings and tokenizer, whose completed files are the first of its own and
// still have the recorded SHA-256, continues after them: the work files are cut back to the recorded lengths,
// the dedup indexes are rebuilt from the records and signatures, and reading resumes at the next file.
// docs/data-at-scale.md says what is and is not reused.

import FledgeFiles
import Foundation

/// progress.json of a preparation's work folder.
struct PreparationCheckpoint: Codable {
    static let formatVersion = 1
    var formatVersion = PreparationCheckpoint.formatVersion
    /// The settings and the tokenizer the work was made with (JSON of the config; SHA-256 of tokenizer.json).
    var config: Data
    var tokenizerSHA256: String
    /// The input files completed, in reading order (source index, file index, the file as read).
    var files: [CompletedFile]
    var records: Int
    var tokenBytes: Int
    var maskBytes: Int
    var signatureBytes: Int
    var slots: Int
    var charactersRead: Int
    var replacedInvalid: Int
    var controlsRemoved: Int
    var skippedRecords: Int
    var skipped: SkippedRecords
    var seconds: [Double]

    struct CompletedFile: Codable {
        var source: Int
        var file: Int
        var record: SourceFile
    }

    static let fileName = "progress.json"

    func write(to folder: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try AtomicFile.write(try encoder.encode(self), to: folder.appendingPathComponent(Self.fileName))
    }

    static func load(from folder: URL) -> PreparationCheckpoint? {
        guard let data = FileManager.default.contents(atPath: folder.appendingPathComponent(fileName).path),
            let checkpoint = try? JSONDecoder().decode(PreparationCheckpoint.self, from: data),
            checkpoint.formatVersion == formatVersion
        else { return nil }
        return checkpoint
    }

    /// The settings that shape the streaming pass, as compared between runs (sorted keys, so equal settings
    /// give equal bytes). The split, the mix, the weights, licences and shard size only shape what is written
    /// afterwards, so a rerun that changes them still reuses the pass.
    static func fingerprint(_ config: PreparationConfig) -> Data {
        var pass = config
        let defaults = PreparationConfig()
        (pass.split, pass.mix, pass.maximumUpsample, pass.shardTokens) = (
            defaults.split, defaults.mix, defaults.maximumUpsample, defaults.shardTokens
        )
        for s in pass.sources.indices {
            (pass.sources[s].weight, pass.sources[s].licence, pass.sources[s].validationOnly) = (1, nil, nil)
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return (try? encoder.encode(pass)) ?? Data()
    }
}

extension DocumentRecord {
    /// Bytes of one record in records.bin: source, file (Int32), ordinal (Int64), status (UInt8 + 7 spare),
    /// characters, text bytes (Int64), hash (2 × UInt64), duplicate of (Int64), tokens, token offset, mask
    /// offset (Int64), little-endian.
    static let encodedBytes = 88
    static let statuses: [DocumentStatus] = [
        .kept, .invalidEncoding, .empty, .tooShort, .tooLong, .notEnglish, .duplicate, .nearDuplicate, .mixedOut,
    ]

    func encode(into out: inout [UInt8]) {
        func put<T: FixedWidthInteger>(_ value: T) { withUnsafeBytes(of: value.littleEndian) { out += $0 } }
        put(source)
        put(file)
        put(Int64(ordinal))
        put(UInt64(DocumentRecord.statuses.firstIndex(of: status)!))
        put(Int64(characters))
        put(Int64(textBytes))
        put(hash.high)
        put(hash.low)
        put(Int64(duplicateOf))
        put(Int64(tokens))
        put(Int64(tokenOffset))
        put(Int64(maskOffset))
    }

    init?(decoding raw: UnsafeRawBufferPointer) {
        var at = 0
        func get<T: FixedWidthInteger>(_: T.Type) -> T {
            defer { at += MemoryLayout<T>.size }
            return T(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: T.self))
        }
        source = get(Int32.self)
        file = get(Int32.self)
        ordinal = Int(get(Int64.self))
        let status = Int(get(UInt64.self))
        guard status < DocumentRecord.statuses.count else { return nil }
        self.status = DocumentRecord.statuses[status]
        characters = Int(get(Int64.self))
        textBytes = Int(get(Int64.self))
        let high = get(UInt64.self)
        hash = ContentHash(high: high, low: get(UInt64.self))
        duplicateOf = Int32(truncatingIfNeeded: get(Int64.self))
        tokens = Int(get(Int64.self))
        tokenOffset = Int(get(Int64.self))
        maskOffset = Int(get(Int64.self))
    }
}
