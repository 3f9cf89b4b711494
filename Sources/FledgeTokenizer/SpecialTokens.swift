// SpecialTokens: named tokens outside the learned vocabulary (pad, unk, bos, eos, user-defined extras), each
// one id. Text that happens to contain a special token's string is split around it only when the caller
// allows special tokens (the default is to treat it as ordinary text, as tiktoken does).

/// The special tokens of a tokenizer: their strings and ids.
public struct SpecialTokens: Sendable, Equatable {
    /// (text, id) pairs, longest text first (so overlapping names match the longest).
    public private(set) var tokens: [(text: String, id: Int32)] = []

    public init(_ tokens: [(text: String, id: Int32)] = []) {
        self.tokens = tokens.sorted { $0.text.utf8.count > $1.text.utf8.count }
    }

    public static func == (a: SpecialTokens, b: SpecialTokens) -> Bool {
        a.tokens.map(\.text) == b.tokens.map(\.text) && a.tokens.map(\.id) == b.tokens.map(\.id)
    }

    /// The id of the special token `text`.
    /// The id of the special token `text`: an exact match, else the only one equal to it ignoring case
    /// (`<UNK>` finds `<unk>`; two that differ only in case must be named exactly).
    public func id(_ text: String) -> Int32? {
        if let exact = tokens.first(where: { $0.text == text }) { return exact.id }
        let folded = tokens.filter { $0.text.lowercased() == text.lowercased() }
        return folded.count == 1 ? folded[0].id : nil
    }

    /// Appends each special token's id to `output` and calls `ordinary` for the text between them; with
    /// `allowSpecial` false the whole text is ordinary.
    func encode(
        _ text: UnsafeBufferPointer<UInt8>, allowSpecial: Bool, into output: inout [Int32],
        ordinary: (UnsafeBufferPointer<UInt8>, inout [Int32]) -> Void
    ) {
        guard allowSpecial else { return ordinary(text, &output) }
        for segment in segments(text) {
            if let special = segment.special {
                output.append(special)
            } else {
                ordinary(UnsafeBufferPointer(rebasing: text[segment.range]), &output)
            }
        }
    }

    /// Cuts `text` into ordinary runs and special tokens.
    func segments(_ text: UnsafeBufferPointer<UInt8>) -> [(range: Range<Int>, special: Int32?)] {
        guard !tokens.isEmpty else { return [(0..<text.count, nil)] }
        let patterns = tokens.map { (Array($0.text.utf8), $0.id) }
        var result: [(range: Range<Int>, special: Int32?)] = []
        var start = 0
        var i = 0
        while i < text.count {
            var matched: (length: Int, id: Int32)?
            for (pattern, id) in patterns
            where !pattern.isEmpty && pattern[0] == text[i] && i + pattern.count <= text.count {
                if (0..<pattern.count).allSatisfy({ text[i + $0] == pattern[$0] }) {
                    matched = (pattern.count, id)
                    break
                }
            }
            if let matched {
                if start < i { result.append((start..<i, nil)) }
                result.append((i..<i + matched.length, matched.id))
                i += matched.length
                start = i
            } else {
                i += 1
            }
        }
        if start < text.count { result.append((start..<text.count, nil)) }
        return result
    }
}
