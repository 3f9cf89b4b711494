// Hugging Face tokenizer.json: a file trained and saved by HF tokenizers loads and encodes exactly as HF
// does; Fledge's own files round-trip; malformed or unsupported files are refused naming the field.
// (The other direction — HF loading Fledge's file — is checked by Scripts/make_tokenizer_reference.py.)

import FledgeTestSupport
import FledgeTokenizer
import Foundation
import Testing

struct TokenizerJSONTests {
    static let hfFile = Bundle.module.url(forResource: "hf_bpe", withExtension: "json", subdirectory: "Fixtures")!

    @Test func hfTrainedTokenizerEncodesLikeHF() throws {
        let tokenizer = try TokenizerJSON.load(Self.hfFile)
        let expected = try TokenizerFixtures.json("hf_bpe_ids", as: [[Int32]].self)
        #expect(tokenizer.vocabularySize == 2000)
        #expect(tokenizer.specialTokens.id("<eos>") == 3)
        let actual = TokenizerFixtures.texts.map { tokenizer.encode($0) }
        #expect(actual == expected)
    }

    @Test(arguments: [PreTokenizer.gpt2, .cl100k])
    func fledgeFilesRoundTrip(preTokenizer: PreTokenizer) throws {
        var config = BPETrainingConfig(vocabularySize: 700)
        config.preTokenizer = preTokenizer
        let trained = try BPETrainer(config: config).train(texts: TokenizerFixtures.texts)
        let loaded = try TokenizerJSON.load(try TokenizerJSON.data(for: trained), path: "memory")
        #expect(loaded.tokenBytes == trained.tokenBytes)
        #expect(loaded.preTokenizer == preTokenizer)
        #expect(loaded.specialTokens == trained.specialTokens)
        for text in TokenizerFixtures.texts.prefix(20) { #expect(loaded.encode(text) == trained.encode(text)) }
    }

    @Test(.tags(.slow), .skippedInQuickRuns) func gpt2RoundTripsThroughTokenizerJSON() throws {
        let gpt2 = TokenizerFixtures.gpt2
        let loaded = try TokenizerJSON.load(try TokenizerJSON.data(for: gpt2), path: "memory")
        #expect(loaded.vocabularySize == 50257)
        let text = TokenizerFixtures.texts[0]
        #expect(loaded.encode(text) == gpt2.encode(text))
    }

    @Test func hostileIdsAndAddedTokensAreRefusedBeforeAllocating() throws {
        let preTokenizer = #""pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true}"#
        func message(_ body: String) -> String {
            do {
                _ = try TokenizerJSON.loadAny(Data("{\(body), \(preTokenizer)}".utf8), path: "t.json")
                return ""
            } catch { return "\(error)" }
        }
        let model = #""model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}"#
        #expect(message(model).contains("no token for byte"))  // the baseline's only fault: a tiny alphabet
        // An id of 2^62 must not size an array (it crashed with SIGSEGV).
        #expect(
            message(#""model": {"type": "BPE", "vocab": {"a": 0, "b": 4611686018427387904}, "merges": []}"#)
                .contains("only 2 tokens"))
        #expect(message(#""model": {"type": "BPE", "vocab": {"a": 0}}"#).contains("model.merges"))
        #expect(message(#""added_tokens": [{"content": "<x>"}], "# + model).contains("t.json: field 'added_tokens[0]'"))
        #expect(message(#""added_tokens": [{"id": true, "content": "<x>"}], "# + model).contains("added_tokens[0]"))
        #expect(message(#""added_tokens": 3, "# + model).contains("'added_tokens' is not a list"))
        #expect(message(#""added_tokens": [{"id": 0, "content": "<x>"}], "# + model).contains("but model.vocab has"))
        #expect(
            message(#""added_tokens": [{"id": 3, "content": "<x>"}, {"id": 3, "content": "<y>"}], "# + model)
                .contains("already has"))
        #expect(message(#""added_tokens": [{"id": 3, "content": "<x>"}], "# + model).contains("no token for byte"))
    }

    @Test func malformedFilesNameTheField() throws {
        var object = try JSONSerialization.jsonObject(with: Data(contentsOf: Self.hfFile)) as! [String: Any]
        func message(_ o: [String: Any]) -> String {
            do {
                _ = try TokenizerJSON.load(try JSONSerialization.data(withJSONObject: o), path: "tokenizer.json")
                return ""
            } catch { return "\(error)" }
        }
        #expect(message(object) == "")
        var model = object["model"] as! [String: Any]
        model["type"] = "Unigram"
        object["model"] = model
        #expect(message(object).contains("'model.type'"))
        model["type"] = "BPE"
        model["merges"] = [["zz_unknown", "t"]]
        object["model"] = model
        #expect(message(object).contains("model.merges[0]"))
        model["merges"] = []
        object["model"] = model
        object["normalizer"] = ["type": "NFC"]
        #expect(message(object).contains("'normalizer'"))
        object["normalizer"] = NSNull()
        object["pre_tokenizer"] = ["type": "Metaspace"]
        #expect(message(object).contains("Metaspace"))
        #expect(throws: TokenizerError.self) { try TokenizerJSON.load(Data("[1, 2]".utf8), path: "x.json") }
        #expect(throws: TokenizerError.self) { try TokenizerJSON.load(URL(fileURLWithPath: "/no/tokenizer.json")) }
    }
}

struct WordLevelTests {
    @Test func hfWordLevelFileEncodesLikeHF() throws {
        let url = Bundle.module.url(forResource: "hf_word", withExtension: "json", subdirectory: "Fixtures")!
        let tokenizer = try TokenizerJSON.loadWordLevel(Data(contentsOf: url), path: url.path)
        let expected = try TokenizerFixtures.json("hf_word_ids", as: [[Int32]].self)
        #expect(tokenizer.vocabularySize == 3000 && tokenizer.lowercase)
        var mismatches = 0
        for (text, ids) in zip(TokenizerFixtures.texts, expected) where tokenizer.encode(text) != ids {
            mismatches += 1
            if mismatches <= 3 {
                Issue.record(
                    "\(text.prefix(50).debugDescription): \(tokenizer.encode(text).prefix(10)) vs \(ids.prefix(10))")
            }
        }
        #expect(mismatches == 0)
    }

    @Test func trainingKeepsFrequentWordsAndSplitsPunctuation() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("words-\(UUID().uuidString).txt")
        try "The cat sat. The cat ran! A dog sat, the DOG ran.".write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        let tokenizer = try WordLevelTokenizer.train(files: [file], vocabularySize: 10, lowercase: true)
        #expect(Array(tokenizer.words.prefix(5)) == ["<pad>", "<unk>", "<bos>", "<eos>", "the"])
        #expect(tokenizer.vocabularySize == 10)
        let ids = tokenizer.encode("The cat flew.")
        #expect(ids.count == 4)  // the, cat, <unk>, .
        #expect(ids[2] == 1)
        #expect(try tokenizer.decode(ids) == "the cat <unk> .")
        let roundTrip = try TokenizerJSON.loadWordLevel(try TokenizerJSON.data(for: tokenizer), path: "memory")
        #expect(roundTrip.words == tokenizer.words && roundTrip.lowercase)
        #expect(throws: TokenizerError.self) { try WordLevelTokenizer.train(files: [file], vocabularySize: 4) }
    }
}

struct CharacterBPETests {
    @Test func hfTutorialBPEFileEncodesLikeHF() throws {
        let url = Bundle.module.url(forResource: "hf_char_bpe", withExtension: "json", subdirectory: "Fixtures")!
        let tokenizer = try TokenizerJSON.load(url)
        let expected = try TokenizerFixtures.json("hf_char_bpe_ids", as: [[Int32]].self)
        #expect(tokenizer.preTokenizer == .whitespace && tokenizer.alphabet == .characters(unknown: 0))
        let actual = TokenizerFixtures.texts.map { tokenizer.encode($0) }
        #expect(actual == expected)
    }

    @Test func byteOrderMarkTokensSurviveLoading() throws {
        // Regression: Foundation's JSONSerialization drops a raw U+FEFF inside strings, which lost a token.
        var config = BPETrainingConfig(vocabularySize: 60)
        config.preTokenizer = .whitespace
        let trained = try BPETrainer(config: config).train(texts: ["\u{FEFF}abc abd\n\u{FEFF}abe"])
        let loaded = try TokenizerJSON.load(try TokenizerJSON.data(for: trained), path: "memory")
        #expect(loaded.tokenBytes == trained.tokenBytes)
        #expect(loaded.encode("\u{FEFF}x") == trained.encode("\u{FEFF}x"))
        #expect(!loaded.encode("\u{FEFF}").contains(1))  // not the unknown token
    }

    @Test func characterLevelTrainingUsesUnknownAndJoinsWithSpaces() throws {
        var config = BPETrainingConfig(vocabularySize: 80)
        config.preTokenizer = .whitespace
        let tokenizer = try BPETrainer(config: config).train(texts: ["hello world, hello there! hello"])
        let ids = tokenizer.encode("hello zebra!")
        #expect(ids.contains(1))  // "z" was never seen: <unk>
        // Like HF's BPE without a decoder: tokens joined by single spaces.
        let there = tokenizer.encode("hello there!")
        let tokens = there.map { String(decoding: tokenizer.tokenBytes[Int($0)], as: UTF8.self) }
        #expect(try tokenizer.decode(there) == tokens.joined(separator: " "))
        #expect(tokens.first == "hello" && tokens.last == "!")
        config.specialTokens = ["<pad>", "<eos>"]
        #expect(throws: TokenizerError.self) { try BPETrainer(config: config).train(texts: ["abc"]) }
    }
}

@Suite struct UnknownTokenTests {
    @Test func theUnknownTokenIsFoundInAnyCaseOrByName() {
        #expect(BPETrainer.unknownIndex(nil, in: ["<PAD>", "<UNK>", "<BOS>", "<EOS>"]) == 1)
        #expect(BPETrainer.unknownIndex(nil, in: ["[PAD]", "[UNK]"]) == 1)
        #expect(BPETrainer.unknownIndex("<oov>", in: ["<pad>", "<oov>"]) == 1)
        #expect(BPETrainer.unknownIndex("<OOV>", in: ["<pad>", "<oov>"]) == 1)
        #expect(BPETrainer.unknownIndex("<x>", in: ["<pad>", "<unk>"]) == nil)
        #expect(BPETrainer.unknownIndex(nil, in: ["<pad>", "<eos>"]) == nil)
    }
}
