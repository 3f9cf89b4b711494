// PilishConstraint: the Pillmish experiment's constraint — the letter counts of the generated words follow
// the digits of π (3.1415926535…, a 0 meaning a 10-letter word). A word is a maximal run of ASCII letters;
// any other printable ASCII character or whitespace separates words (so "don't" is "don" + "t"); digits,
// control characters and non-ASCII bytes are not allowed. Works with any tokenizer: every token's text is
// reduced once to (letters before its first separator, the complete words inside it, letters after its last
// separator), and a token is allowed only if, from the current state (word index, letters of the word in
// progress), each word it completes has the required length and the word it leaves open can still reach it
// (with a word-level vocabulary, where the next token always starts after a space, it must already have it).
// A word break is thus allowed only at the required length; the end-of-sequence token only between words or
// right after a complete one. The gap between two words is bounded, so that filler cannot stand in for words
// ("great - - - - …"): at most `maximumGapPunctuation` (2) non-space separators and `maximumGapSpaces` (3)
// spaces, tabs or newlines — enough for "word, ", "word.\" " or a paragraph break.

import FledgeTokenizer

/// Letter counts of words follow the digits of π.
public final class PilishConstraint: LogitsProcessor {
    /// The required length of word i.
    public let lengths: [Int]
    public let endOfSequence: Int32?
    private var valid: [Bool] = []
    private var hasBreak: [Bool] = []
    private var lead: [Int32] = []
    private var tail: [Int32] = []
    private var innerStart: [Int32] = []
    private var inner: [Int32] = []
    /// Separator counts (punctuation, spaces) of each token's first gap and of the gap it leaves open at its
    /// end (when its text ends in separators after a later letter); whether its first gap is also its end.
    private var firstGap: [(punctuation: Int32, spaces: Int32)] = []
    private var lastGap: [(punctuation: Int32, spaces: Int32)] = []
    private var firstGapIsOpen: [Bool] = []
    private var endsInGap: [Bool] = []
    /// The most non-space separators, and spaces, between two words.
    public static let maximumGapPunctuation = 2
    public static let maximumGapSpaces = 3
    /// Whether some token starts with a letter, i.e. can extend a word in progress (BPE: yes; word-level:
    /// no, every word comes after a space, so a token must end each word at its exact length).
    public private(set) var wordsCanContinue = false

    /// A constraint over `tokenizer`'s vocabulary for the first `words` digits of π.
    public init(tokenizer: any Tokenizer, endOfSequence: Int32?, words: Int = 1000) throws {
        lengths = PiDigits.first(words).map { $0 == 0 ? 10 : $0 }
        self.endOfSequence = endOfSequence
        let specials = Set(tokenizer.specialTokens.tokens.map(\.id))
        for id in 0..<Int32(tokenizer.vocabularySize) {
            innerStart.append(Int32(inner.count))
            // Word-level pieces after the first carry the joining space; the prompt is never empty.
            let bytes = specials.contains(id) ? [] : try tokenizer.pieceBytes(id, after: 0)
            var ok = !specials.contains(id) && !bytes.isEmpty
            var letters: Int32 = 0
            var broke = false
            var first: Int32 = 0
            var gaps: [(punctuation: Int32, spaces: Int32)] = []
            var gap: (punctuation: Int32, spaces: Int32) = (0, 0)
            var inGap = false
            for byte in bytes where ok {
                switch Self.kind(byte) {
                case .letter:
                    if inGap {
                        gaps.append(gap)
                        (gap, inGap) = ((0, 0), false)
                    }
                    letters += 1
                case .separator:
                    if !broke {
                        first = letters
                        broke = true
                    } else if letters > 0 {
                        inner.append(letters)
                    }
                    letters = 0
                    inGap = true
                    if Self.isSpace(byte) { gap.spaces += 1 } else { gap.punctuation += 1 }
                case .invalid: ok = false
                }
            }
            if inGap { gaps.append(gap) }
            // Gaps that lie wholly inside the token (between two of its letters) must be within bounds.
            let middle =
                gaps.count > 2 || (gaps.count == 2 && !inGap)
                ? Array(gaps[1..<(inGap ? gaps.count - 1 : gaps.count)]) : []
            if !middle.allSatisfy(Self.withinBounds) { ok = false }
            if inGap && gaps.count >= 2 && !Self.withinBounds(gaps[gaps.count - 1]) { ok = false }
            valid.append(ok)
            hasBreak.append(broke)
            lead.append(broke ? first : letters)
            tail.append(broke ? letters : 0)
            firstGap.append(gaps.first ?? (0, 0))
            lastGap.append(inGap ? gaps[gaps.count - 1] : (0, 0))
            firstGapIsOpen.append(inGap && gaps.count == 1)
            endsInGap.append(inGap)
        }
        innerStart.append(Int32(inner.count))
        wordsCanContinue = lead.indices.contains { valid[$0] && lead[$0] > 0 }
    }

    /// Where generation stands: the word in progress and its letters so far, and the separators of the gap
    /// since the last word (when no word is in progress).
    public struct State: Equatable, Sendable {
        public var word = 0
        public var letters = 0
        public var punctuation = 0
        public var spaces = 0
    }

    /// The state after `generated` (nil when the tokens already break the constraint).
    public func state(after generated: [Int32]) -> State? {
        var state = State()
        for t in generated {
            guard let next = advance(t, from: state) else { return nil }
            state = next
        }
        return state
    }

    public func process(_ logits: UnsafeMutableBufferPointer<Float>, history: TokenHistory) {
        guard let state = state(after: history.generated) else {
            for i in 0..<logits.count { logits[i] = -.infinity }
            return
        }
        for t in 0..<logits.count where logits[t] > -.infinity && advance(Int32(t), from: state) == nil {
            logits[t] = -.infinity
        }
    }

    private func need(_ word: Int) -> Int { word < lengths.count ? lengths[word] : 0 }

    /// The state after token `t`, or nil when `t` is not allowed.
    func advance(_ t: Int32, from state: State) -> State? {
        if t == endOfSequence {
            return state.letters == 0 || state.letters == need(state.word) ? state : nil
        }
        let i = Int(t)
        guard i >= 0, i < valid.count, valid[i] else { return nil }
        let open = state.letters + Int(lead[i])
        guard hasBreak[i] else {
            return fits(open, need(state.word)) ? State(word: state.word, letters: open) : nil
        }
        var word = state.word
        if open > 0 {
            guard open == need(word) else { return nil }
            word += 1
        }
        // The token's first gap continues the gap in progress when no letters came before it.
        let first = (
            punctuation: Int32(open > 0 ? 0 : state.punctuation) + firstGap[i].punctuation,
            spaces: Int32(open > 0 ? 0 : state.spaces) + firstGap[i].spaces
        )
        guard Self.withinBounds(first) else { return nil }
        for k in Int(innerStart[i])..<Int(innerStart[i + 1]) {
            guard Int(inner[k]) == need(word) else { return nil }
            word += 1
        }
        if firstGapIsOpen[i] {
            return State(word: word, letters: 0, punctuation: Int(first.punctuation), spaces: Int(first.spaces))
        }
        if endsInGap[i] {
            return State(
                word: word, letters: 0, punctuation: Int(lastGap[i].punctuation), spaces: Int(lastGap[i].spaces))
        }
        return fits(Int(tail[i]), need(word)) ? State(word: word, letters: Int(tail[i])) : nil
    }

    static func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D }

    static func withinBounds(_ gap: (punctuation: Int32, spaces: Int32)) -> Bool {
        gap.punctuation <= maximumGapPunctuation && gap.spaces <= maximumGapSpaces
    }

    /// Whether a word left open with `letters` letters can still become `required` letters long.
    private func fits(_ letters: Int, _ required: Int) -> Bool {
        letters == 0 || letters == required || (wordsCanContinue && letters < required)
    }

    enum ByteKind { case letter, separator, invalid }

    static func kind(_ byte: UInt8) -> ByteKind {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"): .letter
        case UInt8(ascii: "0")...UInt8(ascii: "9"): .invalid
        case 0x20...0x7E, 0x09, 0x0A, 0x0D: .separator
        default: .invalid
        }
    }

    /// Whether `text` is Pilish: its words' letter counts are the digits of π in order (0 as 10). When not
    /// `complete`, the last word may still be shorter than its digit (generation stopped mid-word).
    public static func check(_ text: String, complete: Bool) -> Bool {
        let lengths = PiDigits.first(max(16, text.utf8.count)).map { $0 == 0 ? 10 : $0 }
        var word = 0
        var letters = 0
        var gap: (punctuation: Int32, spaces: Int32) = (0, 0)
        for byte in text.utf8 {
            switch kind(byte) {
            case .letter:
                letters += 1
                gap = (0, 0)
            case .separator:
                if letters > 0 {
                    guard word < lengths.count, letters == lengths[word] else { return false }
                    word += 1
                    letters = 0
                }
                if isSpace(byte) { gap.spaces += 1 } else { gap.punctuation += 1 }
                guard withinBounds(gap) else { return false }
            case .invalid: return false
            }
        }
        guard letters > 0 else { return true }
        guard word < lengths.count else { return false }
        return complete ? letters == lengths[word] : letters <= lengths[word]
    }
}

/// Decimal digits of π.
public enum PiDigits {
    /// The first `count` digits, 3, 1, 4, 1, 5, … (Rabinowitz and Wagon's spigot).
    public static func first(_ count: Int) -> [Int] {
        let n = count + 2
        let size = n * 10 / 3 + 1
        var a = [Int](repeating: 2, count: size)
        var digits: [Int] = []
        digits.reserveCapacity(n)
        var nines = 0
        var predigit = 0
        for j in 0..<n {
            var q = 0
            for i in stride(from: size, through: 1, by: -1) {
                let x = 10 * a[i - 1] + q * i
                a[i - 1] = x % (2 * i - 1)
                q = x / (2 * i - 1)
            }
            a[0] = q % 10
            q /= 10
            if q == 9 {
                nines += 1
            } else if q == 10 {
                digits.append(predigit + 1)
                digits += [Int](repeating: 0, count: nines)
                predigit = 0
                nines = 0
            } else {
                if j > 0 { digits.append(predigit) }
                predigit = q
                digits += [Int](repeating: 9, count: nines)
                nines = 0
            }
        }
        digits.append(predigit)
        return Array(digits.prefix(count))
    }
}
