// The generator: greedy decoding with the KV cache equals the argmax of a full forward pass at every step;
// a seed makes sampling reproducible; a batch equals its rows run alone; stop strings, the end-of-sequence
// token, the token limit and the context window end a sequence as they should; streamed text adds up to the
// result; bad input is refused with a message.

import FledgeData
import FledgeGeneration
import FledgeModel
import FledgeTensor
import FledgeTokenizer
import Foundation
import Testing

@Suite struct GeneratorTests {
    @Test func greedyEqualsTheArgmaxOfAFullForwardAtEveryStep() throws {
        let generator = try Fixtures.generator()
        let model = generator.model
        let prompt = generator.encode("ROMEO:\nBut soft")
        let result = try generator.generate(prompt: prompt, options: options(tokens: 24, sampling: .greedy))
        #expect(result.tokens.count == 24)
        var sequence = prompt
        for next in result.tokens {
            let acts = try Activations(
                model: model, batchSize: 1, sequenceLength: sequence.count, forTraining: false)
            try model.forward(tokens: sequence, targets: nil, activations: acts, training: false)
            let v = model.config.vocabularySize
            let logits = acts.copyLogitsToHost()
            let argmax = logits[((sequence.count - 1) * v)..<(sequence.count * v)].withUnsafeBufferPointer {
                Sampler.argmax($0)
            }
            #expect(argmax == next)
            sequence.append(next)
        }
    }

    @Test func theSameSeedGivesTheSameText() throws {
        let generator = try Fixtures.generator()
        let prompt = generator.encode("KING:")
        var sampling = SamplingConfig()
        sampling.seed = 42
        let a = try generator.generate(prompt: prompt, options: options(tokens: 30, sampling: sampling))
        let b = try generator.generate(prompt: prompt, options: options(tokens: 30, sampling: sampling))
        #expect(a.tokens == b.tokens && a.text == b.text && a.seed == 42)
        sampling.seed = 43
        let c = try generator.generate(prompt: prompt, options: options(tokens: 30, sampling: sampling))
        #expect(c.tokens != a.tokens)
        // Without a seed, the one drawn is reported and repeats the run.
        sampling.seed = nil
        let d = try generator.generate(prompt: prompt, options: options(tokens: 30, sampling: sampling))
        sampling.seed = d.seed
        #expect(
            try generator.generate(prompt: prompt, options: options(tokens: 30, sampling: sampling)).tokens == d.tokens)
    }

    @Test func aBatchEqualsItsRowsAlone() throws {
        let generator = try Fixtures.generator()
        let prompts = ["To be", "A horse, a horse! My kingdom", "O"].map(generator.encode)
        var sampling = SamplingConfig()
        sampling.seed = 9
        let batch = try generator.generate(prompts: prompts, options: options(tokens: 12, sampling: sampling))
        for (row, prompt) in prompts.enumerated() {
            sampling.seed = 9 + UInt64(row)
            let alone = try generator.generate(prompt: prompt, options: options(tokens: 12, sampling: sampling))
            #expect(batch[row].tokens == alone.tokens)
            #expect(batch[row].text == alone.text)
        }
    }

    @Test func streamedTextAddsUpToTheResultAndNeverSplitsACharacter() throws {
        let generator = try Fixtures.generator()
        var sampling = SamplingConfig()
        (sampling.seed, sampling.temperature, sampling.topK, sampling.topP) = (3, 1.5, nil, 1)
        var pieces: [String] = []
        let result = try generator.generate(
            prompt: generator.encode("Fair"), options: options(tokens: 50, sampling: sampling)
        ) { pieces.append($0) }
        #expect(pieces.joined() == result.text)
        #expect(result.text == String(decoding: try Fixtures.bpe.decodeBytes(result.tokens), as: UTF8.self))
    }

    @Test func stopStringsEndTheOutputBeforeThem() throws {
        let generator = try Fixtures.generator()
        let prompt = generator.encode("LADY:")
        var o = options(tokens: 40, sampling: .greedy)
        o.stopAtEndOfSequence = false
        let free = try generator.generate(prompt: prompt, options: o)
        // A stop string taken from the middle of the free output: the output must end right before it.
        let bytes = Array(free.text.utf8)
        let stop = String(decoding: bytes[10..<13], as: UTF8.self)
        o.stopStrings = ["never appears \u{1F600}", stop]
        var streamed = ""
        let stopped = try generator.generate(prompt: prompt, options: o) { streamed += $0 }
        let expected = String(free.text[..<free.text.range(of: stop)!.lowerBound])
        #expect(stopped.finishReason == .stopString)
        #expect(stopped.text == expected)
        #expect(streamed == expected)
    }

    @Test func theEndOfSequenceTokenAndTheLimitsEndASequence() throws {
        let generator = try Fixtures.generator()
        let eos = generator.endOfSequence!
        // A caller's processor: the end-of-sequence token after three tokens.
        final class EndAfterThree: LogitsProcessor {
            let eos: Int32
            init(eos: Int32) { self.eos = eos }
            func process(_ logits: UnsafeMutableBufferPointer<Float>, history: TokenHistory) {
                for i in 0..<logits.count where (history.generated.count == 3) != (Int32(i) == eos) {
                    logits[i] = -.infinity
                }
            }
        }
        let prompt = generator.encode("Now")
        let ended = try generator.generate(
            prompt: prompt, options: options(tokens: 20, sampling: SamplingConfig()),
            processors: [EndAfterThree(eos: eos)])
        #expect(ended.finishReason == .endOfSequence && ended.tokens.count == 3 && !ended.tokens.contains(eos))
        let limited = try generator.generate(prompt: prompt, options: options(tokens: 5, sampling: .greedy))
        #expect(limited.finishReason == .length && limited.tokens.count == 5)
        // Context 64: a 60-token prompt leaves room for 5 tokens (the last needs no position of its own).
        let long = Array(generator.encode(Fixtures.text).prefix(60))
        let full = try generator.generate(prompt: long, options: options(tokens: 100, sampling: .greedy))
        #expect(full.finishReason == .context && full.tokens.count == 5)
    }

    @Test func badInputIsRefusedWithAMessage() throws {
        let generator = try Fixtures.generator()
        func message(_ body: () throws -> Void) -> String {
            do {
                try body()
                return ""
            } catch { return "\(error)" }
        }
        let tooLong = Array(generator.encode(Fixtures.text).prefix(70))
        #expect(
            message { _ = try generator.generate(prompt: tooLong, options: options(tokens: 5, sampling: .greedy)) }
                .contains("70 tokens but the model's context holds 64"))
        #expect(
            message { _ = try generator.generate(prompt: [], options: options(tokens: 5, sampling: .greedy)) }
                .contains("the prompt is empty"))
        var bad = SamplingConfig()
        bad.topK = 0
        #expect(message { try bad.validate() }.contains("top-k 0 keeps no token"))
        bad = SamplingConfig()
        bad.topP = 1.5
        #expect(message { try bad.validate() }.contains("top-p 1.5 is outside (0, 1]"))
        bad = SamplingConfig()
        bad.topP = 0
        #expect(message { try bad.validate() }.contains("outside (0, 1]"))
        bad = SamplingConfig()
        bad.temperature = -1
        #expect(message { try bad.validate() }.contains("temperature -1.0 is negative"))
        #expect(
            message { _ = try generator.generate(prompt: [1, 2], options: options(tokens: 5, sampling: bad)) }
                .contains("negative"))
        // A tokenizer larger than the model.
        let small = try Fixtures.model(vocabulary: 100)
        #expect(message { _ = try Generator(model: small, tokenizer: Fixtures.bpe) }.contains("the model only 100"))
    }

    func options(tokens: Int, sampling: SamplingConfig) -> GenerationOptions {
        var o = GenerationOptions()
        o.maxTokens = tokens
        o.sampling = sampling
        return o
    }

    @Test func theDataEndAndBeginningOfSequenceAreUsedAtInference() throws {
        // A from-scratch vocabulary with upper-case specials, as in the Q&A fine-tuning journey.
        var config = BPETrainingConfig(vocabularySize: 300)
        config.threads = 1
        config.specialTokens = ["<PAD>", "<UNK>", "<BOS>", "<EOS>"]
        let tokenizer = try BPETrainer(config: config).train(texts: [Fixtures.text])
        let model = try Fixtures.model(vocabulary: tokenizer.vocabularySize)
        var format = SequenceFormat()
        format.eosToken = "<EOS>"
        format.bosToken = "<BOS>"
        format.addBOS = true
        let generator = try Generator(model: model, tokenizer: tokenizer, format: format)
        #expect(generator.endOfSequence == 3)
        #expect(generator.beginningOfSequence == 2)
        #expect(generator.encode("Hello").first == 2)
        #expect(generator.encode("<BOS>Hello").filter { $0 == 2 }.count == 1)  // not twice
        // Without a format the default names still find <EOS> (special-token names match ignoring case).
        #expect(try Generator(model: model, tokenizer: tokenizer).endOfSequence == 3)
        #expect(tokenizer.specialTokens.id("<unk>") == 1)
        // Generation stops at that EOS: force it with a processor that allows only EOS after 3 tokens.
        final class EndAfter: LogitsProcessor {
            let eos: Int32
            init(eos: Int32) { self.eos = eos }
            func process(_ logits: UnsafeMutableBufferPointer<Float>, history: TokenHistory) {
                guard history.generated.count >= 3 else { return }
                for i in logits.indices where Int32(i) != eos { logits[i] = -.infinity }
            }
        }
        var options = GenerationOptions()
        options.maxTokens = 50
        let result = try generator.generate(
            prompt: generator.encode("Hello"), options: options, processors: [EndAfter(eos: 3)])
        #expect(result.finishReason == .endOfSequence)
        #expect(result.tokens.count <= 4)
        #expect(!result.text.contains("<EOS>"))
    }

    @Test func characterLevelBPEStreamsWithTheSpacesDecodeGives() throws {
        // The HF tutorial's tokenizer (--kind bpe): Whitespace pre-tokenizer, tokens joined by spaces.
        var config = BPETrainingConfig(vocabularySize: 300)
        config.threads = 1
        config.preTokenizer = .whitespace
        let tokenizer = try BPETrainer(config: config).train(texts: [Fixtures.text])
        let generator = try Generator(
            model: try Fixtures.model(vocabulary: tokenizer.vocabularySize), tokenizer: tokenizer)
        let prompt = generator.encode("Call me Ishmael.")
        var options = GenerationOptions()
        options.maxTokens = 20
        options.sampling.seed = 3
        options.stopAtEndOfSequence = false
        var streamed = ""
        let result = try generator.generate(prompt: prompt, options: options) { streamed += $0 }
        let whole = try tokenizer.decode(prompt + result.tokens)
        #expect(whole == (try tokenizer.decode(prompt)) + result.text, "\(whole.debugDescription)")
        #expect(streamed == result.text)
        #expect(result.text.hasPrefix(" "))
    }
}
