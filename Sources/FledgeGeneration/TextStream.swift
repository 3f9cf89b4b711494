// TextStream: one sequence's generated tokens as text, emitted as it grows — never half a UTF-8 character
// (StreamingDecoder), and never the start of what may turn out to be a stop string: text that could begin a
// stop string is held back until it either completes the stop (the output ends before it) or cannot.

import FledgeTokenizer

struct TextStream {
    private var decoder: StreamingDecoder
    private let stops: [[UInt8]]
    private var held: [UInt8] = []
    /// Everything emitted so far.
    private(set) var text: [UInt8] = []

    init(tokenizer: any Tokenizer, after previous: Int32?, stops: [String]) {
        decoder = StreamingDecoder(tokenizer: tokenizer, after: previous)
        self.stops = stops.map { Array($0.utf8) }.filter { !$0.isEmpty }
    }

    /// Adds a token; returns the text now safe to show and whether a stop string ended the output.
    mutating func append(_ id: Int32) throws -> (text: String, stopped: Bool) {
        held += try decoder.append(id).utf8
        return release(final: false)
    }

    /// The rest of the text at the end of generation.
    mutating func finish() -> String {
        held += decoder.finish().utf8
        return release(final: true).text
    }

    private mutating func release(final: Bool) -> (text: String, stopped: Bool) {
        var cut: Int?
        for stop in stops {
            if let start = Self.firstIndex(of: stop, in: held) { cut = min(cut ?? start, start) }
        }
        if let cut {
            let out = held[..<cut]
            text += out
            held.removeAll()
            return (String(decoding: out, as: UTF8.self), true)
        }
        var keep = 0
        if !final {
            for stop in stops {
                var k = min(stop.count - 1, held.count)
                while k > keep {
                    if held[(held.count - k)...].elementsEqual(stop[..<k]) {
                        keep = k
                        break
                    }
                    k -= 1
                }
            }
        }
        let out = held[..<(held.count - keep)]
        text += out
        held.removeFirst(held.count - keep)
        return (String(decoding: out, as: UTF8.self), false)
    }

    static func firstIndex(of needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard needle.count <= haystack.count else { return nil }
        for start in 0...(haystack.count - needle.count)
        where haystack[start] == needle[0] && haystack[start..<(start + needle.count)].elementsEqual(needle) {
            return start
        }
        return nil
    }
}
