// Samplers and penalties on fixed distributions: top-k, top-p and min-p keep exactly the tokens their
// definitions keep; penalties change the logits exactly as defined; draws follow the kept distribution.

import FledgeGeneration
import FledgeTensor
import Foundation
import Testing

@Suite struct SamplingTests {
    // Probabilities 0.4, 0.3, 0.15, 0.1, 0.05 (as log-probabilities, temperature 1).
    let logits: [Float] = [0.4, 0.3, 0.15, 0.1, 0.05].map { Float(log($0)) }
    let sampler = Sampler(vocabularySize: 5)

    func kept(_ change: (inout SamplingConfig) -> Void) -> [Int32] {
        var config = SamplingConfig()
        (config.temperature, config.topK, config.topP, config.minP) = (1, nil, 1, 0)
        change(&config)
        return sampler.kept(logits, config: config).map(\.token)
    }

    @Test func topKTopPAndMinPKeepExactlyTheirTokens() {
        #expect(kept { _ in } == [0, 1, 2, 3, 4])
        #expect(kept { $0.topK = 1 } == [0])
        #expect(kept { $0.topK = 3 } == [0, 1, 2])
        #expect(kept { $0.topP = 0.35 } == [0])
        #expect(kept { $0.topP = 0.65 } == [0, 1])
        #expect(kept { $0.topP = 0.72 } == [0, 1, 2])
        #expect(kept { $0.topP = 0.9 } == [0, 1, 2, 3])
        #expect(kept { $0.minP = 0.3 } == [0, 1, 2])  // p ≥ 0.3 × 0.4 = 0.12
        #expect(kept { $0.minP = 0.5 } == [0, 1])
        // Top-p applies to the distribution left by top-k: of 0.4, 0.3 (renormalised 0.571, 0.429).
        #expect(kept { ($0.topK, $0.topP) = (2, 0.5) } == [0])
        #expect(kept { ($0.topK, $0.topP) = (2, 0.6) } == [0, 1])
        // Temperature 0: the argmax only.
        #expect(kept { $0.temperature = 0 } == [0])
        // Kept probabilities are renormalised.
        var config = SamplingConfig()
        (config.temperature, config.topK, config.topP) = (1, 2, 1)
        let p = sampler.kept(logits, config: config).map(\.probability)
        #expect(abs(p[0] - 0.4 / 0.7) < 1e-6 && abs(p[1] - 0.3 / 0.7) < 1e-6)
    }

    @Test func tiesGoToTheLowerIdAndForbiddenTokensAreNeverKept() {
        let flat: [Float] = [1, 3, 3, -.infinity, 3]
        var config = SamplingConfig()
        (config.temperature, config.topK, config.topP) = (1, 2, 1)
        #expect(sampler.kept(flat, config: config).map(\.token) == [1, 2])
        config.topK = nil
        #expect(sampler.kept(flat, config: config).map(\.token) == [1, 2, 4, 0])
        let none = [Float](repeating: -.infinity, count: 5)
        var rng = RandomSource(seed: 1)
        #expect(none.withUnsafeBufferPointer { sampler.sample($0, config: config, rng: &rng) } == nil)
    }

    @Test func drawsFollowTheKeptDistribution() {
        var config = SamplingConfig()
        (config.temperature, config.topK, config.topP) = (1, 3, 1)
        var rng = RandomSource(seed: 7)
        var counts = [Int](repeating: 0, count: 5)
        let draws = 40_000
        logits.withUnsafeBufferPointer { l in
            for _ in 0..<draws { counts[Int(sampler.sample(l, config: config, rng: &rng)!)] += 1 }
        }
        let expected = [0.4, 0.3, 0.15].map { $0 / 0.85 }
        for i in 0..<3 { #expect(abs(Double(counts[i]) / Double(draws) - expected[i]) < 0.01) }
        #expect(counts[3] == 0 && counts[4] == 0)
        // Temperature 2 flattens: the top token's share drops to 0.4^0.5 / Σ p^0.5.
        config.temperature = 2
        config.topK = nil
        counts = [Int](repeating: 0, count: 5)
        logits.withUnsafeBufferPointer { l in
            for _ in 0..<draws { counts[Int(sampler.sample(l, config: config, rng: &rng)!)] += 1 }
        }
        let roots = [0.4, 0.3, 0.15, 0.1, 0.05].map { $0.squareRoot() }
        #expect(abs(Double(counts[0]) / Double(draws) - roots[0] / roots.reduce(0, +)) < 0.01)
    }

    func apply(_ processor: any LogitsProcessor, _ logits: [Float], prompt: [Int32], generated: [Int32]) -> [Float] {
        var out = logits
        out.withUnsafeMutableBufferPointer {
            processor.process($0, history: TokenHistory(prompt: prompt, generated: generated))
        }
        return out
    }

    @Test func penaltiesChangeTheLogitsAsDefined() {
        let base: [Float] = [2, -2, 1, 0.5, 3]
        // Repetition (CTRL): tokens in prompt or output, each once: positive ÷ 1.5, negative × 1.5.
        #expect(
            apply(RepetitionPenalty(penalty: 1.5), base, prompt: [0, 1], generated: [1, 0, 3])
                == [2 / 1.5, -3, 1, 0.5 / 1.5, 3])
        // Frequency and presence (OpenAI): generated tokens only; −(0.5 × count + 0.25 × present).
        #expect(
            apply(FrequencyPresencePenalty(frequency: 0.5, presence: 0.25), base, prompt: [4], generated: [0, 0, 2])
                == [2 - 1.25, -2, 1 - 0.75, 0.5, 3])
        // No-repeat 2-gram: "3 1" and "3 4" occurred, the text ends with 3: 1 and 4 are forbidden.
        let ngram = apply(NoRepeatNGram(size: 2), base, prompt: [3, 1, 0], generated: [3, 4, 3])
        #expect(ngram == [2, -.infinity, 1, 0.5, -.infinity])
        // No-repeat 3-gram: only "0 3 4" matches the ending "0 3".
        let tri = apply(NoRepeatNGram(size: 3), base, prompt: [0, 3, 4, 1], generated: [0, 3])
        #expect(tri == [2, -2, 1, 0.5, -.infinity])
        // Banned sequences: [2] always; [1, 3] only after 1.
        let banned = BannedSequences(sequences: [[2], [1, 3]])
        #expect(apply(banned, base, prompt: [0], generated: [1]) == [2, -2, -.infinity, -.infinity, 3])
        #expect(apply(banned, base, prompt: [0], generated: [4]) == [2, -2, -.infinity, 0.5, 3])
        // Allowed tokens: everything else −∞.
        #expect(
            apply(AllowedTokens(tokens: [1, 4]), base, prompt: [0], generated: []) == [
                -.infinity, -2, -.infinity, -.infinity, 3,
            ])
    }

    @Test func bannedWordsNeverAppearInGreedyOutput() throws {
        let generator = try Fixtures.generator()
        let prompt = generator.encode("KING:")
        var options = GenerationOptions()
        (options.maxTokens, options.sampling) = (40, .greedy)
        let free = try generator.generate(prompt: prompt, options: options)
        let tokens = free.tokens.prefix(3)
        let banned = BannedSequences(sequences: tokens.map { [$0] })
        let constrained = try generator.generate(prompt: prompt, options: options, processors: [banned])
        #expect(!constrained.tokens.contains { tokens.contains($0) })
        // Words: both spellings ("word" and " word") are banned.
        let words = BannedSequences(words: ["the"], tokenizer: Fixtures.bpe)
        #expect(words.sequences.contains(Fixtures.bpe.encode(" the")))
        #expect(words.sequences.contains(Fixtures.bpe.encode("the")))
    }
}

@Suite struct EscapeTests {
    @Test func oneRuleForNewlinesEverywhere() {
        #expect(unescaped(#"\n\n"#) == "\n\n")
        #expect(unescaped(#"Question:\tA\nAnswer:"#) == "Question:\tA\nAnswer:")
        #expect(unescaped(#"a\\nb"#) == #"a\nb"#)  // an escaped backslash keeps the n
        #expect(unescaped(#"C:\path\x"#) == #"C:\path\x"#)  // other backslashes stay
        #expect(unescaped(#"end\"#) == #"end\"#)
        #expect(unescaped("plain") == "plain")
    }
}
