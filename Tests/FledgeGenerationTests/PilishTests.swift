// Pilish: the digits of π are right; the checker accepts and rejects what it should; and every output made
// under the constraint — many seeds, a byte-level BPE (words span tokens) and a word-level vocabulary — is
// Pilish.

import FledgeGeneration
import FledgeTokenizer
import Foundation
import Testing

@Suite struct PilishTests {
    @Test func piDigits() {
        let digits = PiDigits.first(60).map(String.init).joined()
        #expect(digits == "314159265358979323846264338327950288419716939937510582097494")
    }

    @Test func theCheckerFollowsTheDefinition() {
        #expect(PilishConstraint.check("Now I need a drink, alcoholic of course", complete: true))
        #expect(PilishConstraint.check("How I wish I could recollect pi easily", complete: false))
        #expect(PilishConstraint.check("How I want", complete: true))  // 3 1 4
        #expect(!PilishConstraint.check("How I wanted", complete: true))
        #expect(!PilishConstraint.check("How I wanted", complete: false))
        #expect(PilishConstraint.check("How I wi", complete: false))
        #expect(!PilishConstraint.check("How I wi", complete: true))
        // Filler cannot stand in for words: at most two punctuation marks and three spaces between words.
        #expect(PilishConstraint.check("How I, want: a drink", complete: true))
        #expect(PilishConstraint.check("How I want\n\na", complete: true))
        #expect(!PilishConstraint.check("How - - - I", complete: true))
        #expect(!PilishConstraint.check("How     I", complete: true))
        #expect(!PilishConstraint.check("Now 1 need", complete: false))  // digits are not allowed
        // A 0 asks for ten letters: 3.14159265358979323846264338327950 → the 32nd word has 10.
        let lengths = PiDigits.first(33).map { $0 == 0 ? 10 : $0 }
        let text = lengths.map { String(repeating: "x", count: $0) }.joined(separator: " ")
        #expect(PilishConstraint.check(text, complete: true))
    }

    @Test(arguments: ["bpe", "words"]) func everyConstrainedOutputIsPilish(kind: String) throws {
        let tokenizer: any Tokenizer = kind == "bpe" ? Fixtures.bpe : Fixtures.words
        let generator = try Fixtures.generator(tokenizer, context: 128)
        let pilish = try PilishConstraint(tokenizer: tokenizer, endOfSequence: generator.endOfSequence)
        let prompt = kind == "bpe" ? generator.encode("Pi:") : generator.encode("my love")
        var words = 0
        for seed in 0..<25 {
            var options = GenerationOptions()
            options.maxTokens = 40
            (options.sampling.seed, options.sampling.temperature, options.sampling.topK) = (UInt64(seed), 1, nil)
            let result = try generator.generate(prompt: prompt, options: options, processors: [pilish])
            let complete = result.finishReason == .endOfSequence
            #expect(
                PilishConstraint.check(result.text, complete: complete),
                "seed \(seed): \(result.text.debugDescription) (\(result.finishReason))")
            #expect(pilish.state(after: result.tokens) != nil)
            // No gap between words holds more than the allowed filler.
            #expect(!result.text.contains("- - -") && !result.text.contains("    "), "\(result.text.debugDescription)")
            words += result.text.split { !$0.isLetter }.count
        }
        #expect(words > 50)  // the constraint still lets text through (random models often end early)
    }
}
