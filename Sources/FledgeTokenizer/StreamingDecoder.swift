// StreamingDecoder: turns token ids into text as they arrive (generation, chat) without ever emitting half
// of a multi-byte UTF-8 character: bytes of an incomplete sequence are held back until it completes. A
// sequence that can never complete (invalid UTF-8) is emitted as U+FFFD, like String(decoding:).

/// Incremental id → text decoding for any tokenizer that maps ids to bytes.
public struct StreamingDecoder {
    private var pending: [UInt8] = []
    private let bytesOf: (Int32) throws -> [UInt8]

    /// A decoder over `tokenizer`'s vocabulary, for text that continues after token `previous` (nil: a new
    /// text). Word-level tokenizers put a space between words, as their `decode` does.
    public init(tokenizer: any Tokenizer, after previous: Int32? = nil) {
        var last = previous
        bytesOf = { id in
            defer { last = id }
            return try tokenizer.pieceBytes(id, after: last)
        }
    }

    /// A decoder over any id → bytes function.
    public init(bytesOf: @escaping (Int32) throws -> [UInt8]) { self.bytesOf = bytesOf }

    /// The text that `id` completes (possibly empty while a character is incomplete).
    public mutating func append(_ id: Int32) throws -> String {
        pending.append(contentsOf: try bytesOf(id))
        let complete = Self.completePrefixLength(pending)
        let text = String(decoding: pending[..<complete], as: UTF8.self)
        pending.removeFirst(complete)
        return text
    }

    /// Whatever is held back, emitted as is (incomplete sequences become U+FFFD). Call at the end.
    public mutating func finish() -> String {
        defer { pending.removeAll() }
        return String(decoding: pending, as: UTF8.self)
    }

    /// Length of the longest prefix that does not end inside a still-completable UTF-8 sequence.
    static func completePrefixLength(_ bytes: [UInt8]) -> Int {
        // Look at most 3 bytes back for the lead byte of a sequence that is not yet complete.
        var i = bytes.count - 1
        var continuation = 0
        while i >= 0 && continuation < 3 && bytes[i] & 0xC0 == 0x80 {
            continuation += 1
            i -= 1
        }
        guard i >= 0 else { return bytes.count }
        let lead = bytes[i]
        let needed = lead >= 0xF0 && lead <= 0xF4 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC2 && lead < 0xE0 ? 2 : 1
        if needed > 1 && continuation + 1 < needed { return i }  // wait for the rest
        return bytes.count
    }
}
