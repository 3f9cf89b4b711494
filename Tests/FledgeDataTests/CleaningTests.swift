// Cleaning and filtering: newline/space normalisation, control characters, NFC, invalid UTF-8 (replaced or
// dropped), and the English heuristic on real text.

import FledgeData
import Foundation
import Testing

struct CleaningTests {
    func clean(_ text: String, _ configure: (inout CleaningConfig) -> Void = { _ in }) -> String? {
        var config = CleaningConfig()
        configure(&config)
        return TextCleaner(config).clean(Array(text.utf8)).bytes.map { String(decoding: $0, as: UTF8.self) }
    }

    @Test func newlinesAndSpacesAreNormalised() {
        #expect(clean("a\r\nb\rc\n") == "a\nb\nc")
        #expect(clean("line one   \nline two\t\n") == "line one\nline two")
        #expect(
            clean("\n\n  \npara one\n\n\n\n\npara two\n \n \npara three\n\n") == "para one\n\npara two\n\npara three")
        #expect(clean("non\u{A0}breaking\u{3000}space\u{2009}thin") == "non breaking space thin")
        #expect(clean("a\u{2028}b") == "a\nb")
        #expect(clean("    indented code\n        deeper") == "    indented code\n        deeper")
        #expect(clean("two blank\n\n\nlines", { $0.maxBlankLines = 2 }) == "two blank\n\n\nlines")
        #expect(clean("keep\r\n  ", { $0.normalizeWhitespace = false }) == "keep\r\n  ")
    }

    @Test func controlCharactersAreRemovedAndCounted() {
        let input = Array("\u{FEFF}bell\u{07} null\u{00} esc\u{1B}[0m del\u{7F} c1\u{85}\u{9B} tab\tkept".utf8)
        let result = TextCleaner(CleaningConfig()).clean(input)
        #expect(String(decoding: result.bytes!, as: UTF8.self) == "bell null esc[0m del c1\n tab\tkept")
        #expect(result.removedControlCharacters == 6)  // BOM, BEL, NUL, ESC, DEL, CSI (U+0085 is a newline)
        var keep = CleaningConfig()
        keep.removeControlCharacters = false
        #expect(TextCleaner(keep).clean(Array("a\u{07}b".utf8)).bytes == Array("a\u{07}b".utf8))
    }

    @Test func unicodeIsComposedToNFC() {
        #expect(clean("e\u{301}cole, Cafe\u{301}, n\u{303}") == "\u{E9}cole, Caf\u{E9}, \u{F1}")
        #expect(clean("\u{1100}\u{1161}") == "\u{AC00}")  // Hangul jamo compose
        // A longer mixed text agrees with Foundation's NFC of the whole string.
        let mixed = (0..<200).map { i in
            [
                "plain ascii ", "a\u{308}\u{301}x ", "\u{212B}ngstr\u{F6}m ", "\u{1E9B}\u{323} ", "\u{4E2D}\u{6587} ",
                "o\u{302}\u{323} ",
            ][
                i % 6]
        }.joined()
        #expect(clean(mixed, { $0.normalizeWhitespace = false }) == mixed.precomposedStringWithCanonicalMapping)
        #expect(clean("e\u{301}", { $0.normalizeUnicode = false }) == "e\u{301}")
    }

    @Test func invalidUTF8IsReplacedOrDropped() {
        let broken: [UInt8] = Array("caf".utf8) + [0xC3] + Array(" ok ".utf8) + [0xFF, 0xFE]
        let replaced = TextCleaner(CleaningConfig()).clean(broken)
        #expect(replaced.hadInvalidUTF8)
        #expect(String(decoding: replaced.bytes!, as: UTF8.self) == "caf\u{FFFD} ok \u{FFFD}\u{FFFD}")
        var drop = CleaningConfig()
        drop.invalidEncoding = .drop
        let dropped = TextCleaner(drop).clean(broken)
        #expect(dropped.bytes == nil && dropped.hadInvalidUTF8)
    }

    @Test func englishHeuristicSeparatesLanguages() throws {
        let filter = EnglishFilter()
        for passage in DataFixtures.paragraphs(20, from: 100) {
            #expect(filter.accepts(Array(passage.utf8)), "\(passage.prefix(80))")
        }
        let others = [
            "Le petit prince s'assit sur une pierre et leva les yeux vers le ciel. Je me demande, dit-il, si les étoiles sont éclairées afin que chacun puisse un jour retrouver la sienne.",
            "Der Himmel über dem Hafen hatte die Farbe eines Fernsehers, der auf einen toten Kanal geschaltet war, und niemand in der Stadt wusste, warum das so war oder wer es geändert hatte.",
            "床前明月光，疑是地上霜。举头望明月，低头思故乡。",
            "Москва — столица России, город федерального значения, административный центр Центрального федерального округа.",
        ]
        for text in others { #expect(!filter.accepts(Array(text.utf8)), "\(text.prefix(40))") }
        #expect(!filter.accepts(Array("1234 5678 !!!".utf8)))  // no letters at all
    }
}
