// PreTokenizer: splits text into the pieces BPE works on, written by hand over Unicode scalars (no regex
// engine on the hot path). The patterns it implements:
//   gpt2:   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+      (openai/gpt-2)
//   cl100k: '(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|
//           \s+(?!\S)|\s+                                                                       (tiktoken)
//   whitespace: \w+|[^\w\s]+   (Hugging Face `Whitespace`; \w as in UTS #18, see `isWordScalar`)
// \s is the Unicode White_Space property, \p{L} letters, \p{N} numbers, as in tiktoken's Rust regex.
// Pieces are byte ranges of the UTF-8 input.

/// How text is cut into pieces before BPE.
public enum PreTokenizer: String, Sendable, CaseIterable, Codable {
    case gpt2
    case cl100k
    case whitespace

    /// Calls `body` with the byte range of every piece of `text` (UTF-8), in order.
    public func split(_ text: UnsafeBufferPointer<UInt8>, _ body: (Range<Int>) -> Void) {
        var scanner = ScalarScanner(text)
        switch self {
        case .gpt2: scanner.splitGPT2(body)
        case .cl100k: scanner.splitCL100K(body)
        case .whitespace: scanner.splitWhitespace(body)
        }
    }

    /// The pieces of `text`, as strings (convenient for tests and small inputs).
    public func pieces(_ text: String) -> [String] {
        let bytes = Array(text.utf8)
        var result: [String] = []
        bytes.withUnsafeBufferPointer { buffer in
            split(buffer) { range in result.append(String(decoding: buffer[range], as: UTF8.self)) }
        }
        return result
    }
}

/// The character classes the patterns use.
enum ScalarClass: UInt8 {
    case letter, number, whitespace, newline, other

    static let ascii: [ScalarClass] = (0..<128).map { classify(Unicode.Scalar(UInt8($0))) }

    static func classify(_ scalar: Unicode.Scalar) -> ScalarClass {
        if scalar == "\n" || scalar == "\r" { return .newline }
        let properties = scalar.properties
        if properties.isWhitespace { return .whitespace }
        switch properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return .letter
        case .decimalNumber, .letterNumber, .otherNumber: return .number
        default: return .other
        }
    }
}

/// Walks UTF-8 bytes scalar by scalar (invalid bytes count as one `other` scalar each).
struct ScalarScanner {
    let text: UnsafeBufferPointer<UInt8>
    var position = 0

    init(_ text: UnsafeBufferPointer<UInt8>) { self.text = text }

    /// Class and byte length of the scalar at `i` (i < count).
    @inline(__always)
    func scalar(at i: Int) -> (ScalarClass, Int, UInt32) {
        let b0 = text[i]
        if b0 < 0x80 { return (ScalarClass.ascii[Int(b0)], 1, UInt32(b0)) }
        let length = b0 >= 0xF0 ? 4 : b0 >= 0xE0 ? 3 : b0 >= 0xC0 ? 2 : 1
        guard length > 1, i + length <= text.count else { return (.other, 1, 0xFFFD) }
        var value = UInt32(b0) & (0xFF >> (length + 1))
        for k in 1..<length {
            let b = text[i + k]
            guard b & 0xC0 == 0x80 else { return (.other, 1, 0xFFFD) }
            value = value << 6 | UInt32(b & 0x3F)
        }
        guard let s = Unicode.Scalar(value) else { return (.other, 1, 0xFFFD) }
        return (ScalarClass.classify(s), length, value)
    }

    @inline(__always) func isSpaceClass(_ c: ScalarClass) -> Bool { c == .whitespace || c == .newline }

    /// End of the run of scalars starting at `i` whose class satisfies `accept`.
    @inline(__always)
    func runEnd(from i: Int, _ accept: (ScalarClass) -> Bool) -> Int {
        var j = i
        while j < text.count {
            let (c, n, _) = scalar(at: j)
            if !accept(c) { break }
            j += n
        }
        return j
    }

    /// GPT-2 contractions ('s 't 're 've 'm 'll 'd), case-sensitive; returns the end or nil.
    func contraction(at i: Int, caseInsensitive: Bool) -> Int? {
        guard text[i] == UInt8(ascii: "'"), i + 1 < text.count else { return nil }
        func lower(_ k: Int) -> UInt8? {
            guard k < text.count else { return nil }
            let b = text[k]
            return caseInsensitive && b >= 65 && b <= 90 ? b + 32 : b
        }
        switch lower(i + 1) {
        case UInt8(ascii: "s"), UInt8(ascii: "t"), UInt8(ascii: "m"), UInt8(ascii: "d"): return i + 2
        case UInt8(ascii: "r"), UInt8(ascii: "v"): return lower(i + 2) == UInt8(ascii: "e") ? i + 3 : nil
        case UInt8(ascii: "l"): return lower(i + 2) == UInt8(ascii: "l") ? i + 3 : nil
        default: return nil
        }
    }

    /// `\s+(?!\S)|\s+` at i (i is whitespace): the whole run if it ends the text or is a single scalar,
    /// else the run without its last scalar (which then prefixes the next piece).
    func whitespaceRun(at i: Int) -> Int {
        var j = i
        var last = i
        while j < text.count {
            let (c, n, _) = scalar(at: j)
            if !isSpaceClass(c) { break }
            last = j
            j += n
        }
        if j == text.count || last == i { return j }
        return last
    }

    mutating func splitGPT2(_ body: (Range<Int>) -> Void) {
        var i = 0
        while i < text.count {
            let start = i
            if let end = contraction(at: i, caseInsensitive: false) {
                i = end
            } else {
                // An optional single ' ' (U+0020) before letters, numbers or other symbols.
                var k = i
                if text[k] == 0x20, k + 1 < text.count {
                    let (next, _, _) = scalar(at: k + 1)
                    if !isSpaceClass(next) { k += 1 }
                }
                let (c, _, _) = scalar(at: k)
                switch c {
                case .letter: i = runEnd(from: k) { $0 == .letter }
                case .number: i = runEnd(from: k) { $0 == .number }
                case .other: i = runEnd(from: k) { $0 == .other }
                case .whitespace, .newline: i = whitespaceRun(at: i)
                }
            }
            body(start..<i)
        }
    }

    mutating func splitCL100K(_ body: (Range<Int>) -> Void) {
        var i = 0
        while i < text.count {
            let start = i
            let (c, n, _) = scalar(at: i)
            if let end = contraction(at: i, caseInsensitive: true) {
                i = end
            } else if c == .letter {
                i = runEnd(from: i) { $0 == .letter }
            } else if c != .newline && c != .letter && c != .number && i + n < text.count
                && scalar(at: i + n).0 == .letter
            {
                // [^\r\n\p{L}\p{N}]?+\p{L}+ : one non-letter, non-number, non-newline scalar before letters.
                i = runEnd(from: i + n) { $0 == .letter }
            } else if c == .number {
                // \p{N}{1,3}
                var j = i
                var digits = 0
                while j < text.count && digits < 3 {
                    let (d, m, _) = scalar(at: j)
                    if d != .number { break }
                    j += m
                    digits += 1
                }
                i = j
            } else if let end = symbolRun(at: i) {
                i = end
            } else {
                i = whitespaceCL100K(at: i)
            }
            body(start..<i)
        }
    }

    /// ` ?[^\s\p{L}\p{N}]++[\r\n]*` at i, or nil.
    func symbolRun(at i: Int) -> Int? {
        var k = i
        if text[k] == 0x20, k + 1 < text.count, scalar(at: k + 1).0 == .other { k += 1 }
        guard scalar(at: k).0 == .other else { return nil }
        let end = runEnd(from: k) { $0 == .other }
        return runEnd(from: end) { $0 == .newline }
    }

    /// `\s*[\r\n]|\s+(?!\S)|\s+` at i (i is whitespace).
    func whitespaceCL100K(at i: Int) -> Int {
        // \s*[\r\n]: the longest whitespace prefix that ends in a newline.
        var j = i
        var lastNewlineEnd: Int?
        while j < text.count {
            let (c, n, _) = scalar(at: j)
            if !isSpaceClass(c) { break }
            j += n
            if c == .newline { lastNewlineEnd = j }
        }
        if let lastNewlineEnd { return lastNewlineEnd }
        return whitespaceRun(at: i)
    }

    mutating func splitWhitespace(_ body: (Range<Int>) -> Void) {
        var i = 0
        while i < text.count {
            let (c, n, value) = scalar(at: i)
            if isSpaceClass(c) {
                i += n
                continue
            }
            let start = i
            let word = Self.isWordScalar(c, value)
            while i < text.count {
                let (d, m, v) = scalar(at: i)
                if isSpaceClass(d) || Self.isWordScalar(d, v) != word { break }
                i += m
            }
            body(start..<i)
        }
    }

    /// \w as Unicode regexes define it (UTS #18; Rust's regex, which HF tokenizers uses): Alphabetic, Mark,
    /// Decimal_Number, Connector_Punctuation and Join_Control — so "²" and "½" are not word characters
    /// but a zero-width joiner is.
    static func isWordScalar(_ c: ScalarClass, _ value: UInt32) -> Bool {
        if value < 0x80 { return c == .letter || (c == .number) || value == 0x5F }
        guard let s = Unicode.Scalar(value) else { return false }
        let p = s.properties
        if p.isAlphabetic || p.isJoinControl { return true }
        switch p.generalCategory {
        case .decimalNumber, .nonspacingMark, .spacingMark, .enclosingMark, .connectorPunctuation: return true
        default: return false
        }
    }
}
