// Byte-level BPE with GPT-2's vocabulary against tiktoken and Hugging Face tokenizers (which agree), and the
// hand-written pre-tokenizers against Python's `regex` on the same texts: fixtures from
// Scripts/make_tokenizer_reference.py (corpus passages plus edge cases: whitespace runs, contractions,
// digits, emoji, mixed scripts, invalid-looking sequences).

import FledgeTestSupport
import FledgeTokenizer
import Foundation
import Testing

enum TokenizerFixtures {
    static func json<T: Decodable>(_ name: String, as type: T.Type) throws -> T {
        let url = Bundle.module.url(forResource: name, withExtension: "json", subdirectory: "Fixtures")!
        return try JSONDecoder().decode(T.self, from: Data(contentsOf: url))
    }

    static let texts: [String] = try! json("texts", as: [String].self)

    static let root = TestCorpus.root

    static let gpt2Folder = root.appendingPathComponent("data/tokenizers/gpt2")

    static let gpt2: BPETokenizer = try! BPETokenizer.loadGPT2(
        encoder: gpt2Folder.appendingPathComponent("encoder.json"),
        merges: gpt2Folder.appendingPathComponent("vocab.bpe"))
}

struct GPT2ParityTests {
    @Test(arguments: ["gpt2", "cl100k"])
    func preTokenizerMatchesRegex(pattern: String) throws {
        let expected = try TokenizerFixtures.json("pretokenize", as: [String: [[String]]].self)[pattern]!
        let preTokenizer = PreTokenizer(rawValue: pattern)!
        var mismatches = 0
        for (text, pieces) in zip(TokenizerFixtures.texts, expected) {
            let actual = preTokenizer.pieces(text)
            if actual != pieces {
                mismatches += 1
                if mismatches <= 3 {
                    Issue.record(
                        "\(pattern) \(text.prefix(50).debugDescription): \(actual.prefix(12)) vs \(pieces.prefix(12))")
                }
            }
        }
        #expect(mismatches == 0, "\(mismatches) of \(expected.count) texts split differently")
    }

    @Test func gpt2FilesEncodeLikeTiktoken() throws {
        let expected = try TokenizerFixtures.json("gpt2_ids", as: [[Int32]].self)
        let tokenizer = TokenizerFixtures.gpt2
        #expect(tokenizer.vocabularySize == 50257)
        var mismatches = 0
        for (text, ids) in zip(TokenizerFixtures.texts, expected) where tokenizer.encode(text) != ids {
            mismatches += 1
            if mismatches <= 3 { Issue.record("\(text.prefix(60).debugDescription)") }
        }
        #expect(mismatches == 0, "\(mismatches) of \(expected.count) texts encode differently")
    }

    @Test func tiktokenFileEncodesLikeTiktoken() throws {
        let expected = try TokenizerFixtures.json("gpt2_ids", as: [[Int32]].self)
        let tokenizer = try BPETokenizer.loadTiktoken(
            TokenizerFixtures.gpt2Folder.appendingPathComponent("r50k_base.tiktoken"))
        #expect(tokenizer.vocabularySize == 50257)
        let actual = TokenizerFixtures.texts.map { tokenizer.encode($0) }
        #expect(actual == expected)
    }

    @Test func everyTextDecodesBackExactly() throws {
        let tokenizer = TokenizerFixtures.gpt2
        for text in TokenizerFixtures.texts {
            #expect(try tokenizer.decode(tokenizer.encode(text)) == text)
        }
    }
}
