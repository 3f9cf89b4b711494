// EnglishFilter: a simple, documented heuristic for "is this document English?" — no model, no word lists
// beyond the most common English function words. A document passes when
//   1. at least 90% of its letters are ASCII letters, and
//   2. when it has 20 or more words, at least 8% of its words are among the 60 most common English function
//      words ("the", "and", "of", ... — English prose runs at 30–50%, Shakespeare and the KJV near 40%).
// It keeps old and technical English; it misses short non-English texts written in ASCII letters.

/// The English heuristic described above.
public struct EnglishFilter: Sendable {
    /// Least share of letters that are ASCII.
    public var minimumASCIILetterShare = 0.9
    /// Least share of words that are common English function words (documents of `minimumWords` or more).
    public var minimumFunctionWordShare = 0.08
    public var minimumWords = 20

    public init() {}

    static let functionWords: Set<[UInt8]> = Set(
        """
        the of and to a in is it you that he was for on are with as i his they be at one have this from or had \
        by not but what some we can out other were all there when up use your how said an each she which do \
        their if will way about many then them would so these her him has my me no thou thee thy
        """.split(whereSeparator: { $0 == " " || $0 == "\n" }).map { Array($0.utf8) })

    /// Whether `text` (UTF-8) passes.
    public func accepts(_ text: [UInt8]) -> Bool {
        var asciiLetters = 0
        var otherLetters = 0
        var words = 0
        var functionWords = 0
        var word: [UInt8] = []
        func endWord() {
            guard !word.isEmpty else { return }
            words += 1
            if word.count <= 5 && EnglishFilter.functionWords.contains(word) { functionWords += 1 }
            word.removeAll(keepingCapacity: true)
        }
        var i = 0
        while i < text.count {
            let byte = text[i]
            if byte < 0x80 {
                let lower = byte | 0x20
                if lower >= 0x61 && lower <= 0x7A {
                    asciiLetters += 1
                    word.append(lower)
                } else if byte != 0x27 {  // an apostrophe stays inside a word ("don't")
                    endWord()
                }
                i += 1
                continue
            }
            // A non-ASCII scalar counts as a letter unless it is Latin-1 punctuation/symbols or general
            // punctuation (quotes, dashes): enough to tell scripts apart without Unicode tables.
            let (scalar, length) = TextCleaner.scalar(in: text, at: i)
            let punctuation =
                (0x80...0xBF).contains(scalar) || (0x2000...0x206F).contains(scalar) || scalar == 0xD7
                || scalar == 0xF7 || scalar >= 0x1F000
            if punctuation {
                endWord()
            } else {
                otherLetters += 1
                word.append(0xFF)  // a word with a non-ASCII letter is never a function word
            }
            i += length
        }
        endWord()
        let letters = asciiLetters + otherLetters
        guard letters > 0 else { return false }
        guard Double(asciiLetters) >= minimumASCIILetterShare * Double(letters) else { return false }
        return words < minimumWords || Double(functionWords) >= minimumFunctionWordShare * Double(words)
    }
}
