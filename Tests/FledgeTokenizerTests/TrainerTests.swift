// BPE training: deterministic for any thread count, respects the vocabulary size and minimum frequency,
// and produces a tokenizer that round-trips and compresses; bad settings and empty input are refused.

import FledgeTestSupport
import FledgeTokenizer
import Foundation
import Testing

struct TrainerTests {
    static let corpus = TokenizerFixtures.root.appendingPathComponent("data/shakespeare/shakespeare.txt")

    @Test(.tags(.slow), .skippedInQuickRuns) func trainingIsDeterministicAcrossThreadCounts() throws {
        var config = BPETrainingConfig(vocabularySize: 600)
        config.threads = 1
        let one = try BPETrainer(config: config).train(files: [Self.corpus])
        config.threads = 3
        let three = try BPETrainer(config: config).train(files: [Self.corpus])
        #expect(one.vocabularySize == 600)
        #expect(one.tokenBytes == three.tokenBytes)
        #expect(
            one.merges.map(\.left) == three.merges.map(\.left) && one.merges.map(\.right) == three.merges.map(\.right))
    }

    @Test func trainedTokenizerRoundTripsAndCompresses() throws {
        let tokenizer = try BPETrainer(config: BPETrainingConfig(vocabularySize: 1000)).train(files: [Self.corpus])
        let text = String(decoding: try Data(contentsOf: Self.corpus).prefix(20_000), as: UTF8.self)
        let ids = tokenizer.encode(text)
        #expect(try tokenizer.decode(ids) == text)
        let bytesPerToken = Double(text.utf8.count) / Double(ids.count)
        // HF BpeTrainer with the same settings (ByteLevel, vocab 1000, min frequency 2) reaches 2.3588 here.
        #expect(bytesPerToken >= 2.3587, "bytes per token \(bytesPerToken)")
        #expect(tokenizer.specialTokens.id("<eos>") == 3)
        #expect(try tokenizer.decode([0, 1, 2, 3]) == "<pad><unk><bos><eos>")
    }

    @Test func minimumFrequencyStopsEarly() throws {
        var config = BPETrainingConfig(vocabularySize: 5000)
        config.minimumFrequency = 3
        let tokenizer = try BPETrainer(config: config).train(texts: ["abab abab xyz"])
        // "ab" occurs 4 times, "ab ab"-level pairs twice: only merges seen ≥ 3 times are learned.
        #expect(tokenizer.vocabularySize < 270)
        #expect(tokenizer.vocabularySize > 260)
    }

    @Test func badSettingsAndEmptyInputAreRefused() throws {
        #expect(throws: TokenizerError.self) {
            try BPETrainer(config: BPETrainingConfig(vocabularySize: 100)).train(texts: ["hello"])
        }
        #expect(throws: TokenizerError.self) {
            try BPETrainer(config: BPETrainingConfig(vocabularySize: 1000)).train(texts: [""])
        }
        #expect(throws: TokenizerError.self) {
            try BPETrainer(config: BPETrainingConfig(vocabularySize: 1000)).train(files: [
                URL(fileURLWithPath: "/no/such/file.txt")
            ])
        }
    }
}
