// GenerationBenchmark: batch-1 generation speed of a reference configuration — decode tokens/s with the KV
// cache (greedy, the end-of-sequence token ignored so every run makes the same number of tokens) and the time
// to the first token of a long prompt. The model (random GPT-2 initialisation) and the prompt are saved so a
// peer (Scripts/bench_generate_pytorch.py) can run the very same weights and tokens.

import FledgeGeneration
import FledgeModel
import FledgeTensor
import FledgeTokenizer
import Foundation

/// One Fledge measurement round.
public struct GenerationBenchmarkResult: Codable, Sendable {
    public var decodeTokensPerSecond: [Double] = []
    public var timeToFirstTokenMilliseconds: [Double] = []
    /// The greedy tokens of the decode run (the peer's must match).
    public var greedyTokens: [Int32] = []
    /// Heap allocations per decoded token (setup included), when Scripts/count_allocations.c is preloaded.
    public var allocationsPerToken: Double?

    public init() {}

    /// Adds another round's runs (the latest greedy tokens and allocation count replace the earlier ones).
    public mutating func append(_ round: GenerationBenchmarkResult) {
        decodeTokensPerSecond += round.decodeTokensPerSecond
        timeToFirstTokenMilliseconds += round.timeToFirstTokenMilliseconds
        greedyTokens = round.greedyTokens
        allocationsPerToken = round.allocationsPerToken ?? allocationsPerToken
    }
}

/// Times generation on one configuration.
public final class GenerationBenchmark {
    public let shape: BenchmarkShape
    public let generator: Generator
    /// The long prompt (time to first token) and the short one (decode speed).
    public let longPrompt: [Int32]
    public let shortPrompt: [Int32]
    public let decodeTokens: Int

    /// Builds the model and a tokenizer of the configuration's vocabulary trained on `text`.
    public init(shape: BenchmarkShape, text: URL, promptTokens: Int, decodeTokens: Int, threads: Int) throws {
        self.shape = shape
        var config = BPETrainingConfig(vocabularySize: shape.config.vocabularySize)
        config.threads = threads
        let tokenizer = try BPETrainer(config: config).train(files: [text])
        let model = try GPT(config: shape.config, backend: CPUBackend(threadCount: threads), seed: 1)
        generator = try Generator(model: model, tokenizer: tokenizer)
        let sample = try FileHandle(forReadingFrom: text).read(upToCount: 64 * promptTokens) ?? Data()
        let ids = tokenizer.encode(bytes: Array(sample), allowSpecial: false)
        guard ids.count >= promptTokens, promptTokens < shape.config.contextLength,
            16 + decodeTokens <= shape.config.contextLength
        else {
            throw GenerationError(
                "a \(promptTokens)-token prompt and \(decodeTokens) decoded tokens do not fit configuration \(shape.name) (context \(shape.config.contextLength)) or the text",
                hint: "lower --prompt-tokens or --tokens.")
        }
        longPrompt = Array(ids.prefix(promptTokens))
        shortPrompt = Array(ids.prefix(16))
        self.decodeTokens = decodeTokens
    }

    /// Saves config.json, model.safetensors and prompts.json for the peer.
    public func save(to folder: URL) throws {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try ModelCheckpoint.save(generator.model, to: folder)
        let prompts = ["long": longPrompt, "short": shortPrompt]
        try JSONEncoder().encode(prompts).write(to: folder.appendingPathComponent("prompts.json"))
    }

    /// `repeats` timed runs of each kind after one untimed warm-up.
    public func run(repeats: Int) throws -> GenerationBenchmarkResult {
        var result = GenerationBenchmarkResult()
        var options = GenerationOptions()
        options.sampling = .greedy
        options.stopAtEndOfSequence = false
        for round in 0...repeats {
            options.maxTokens = decodeTokens
            let before = TrainStepBenchmark.allocationCount()
            let decode = try generator.generate(prompt: shortPrompt, options: options)
            if let before, let after = TrainStepBenchmark.allocationCount() {
                result.allocationsPerToken = Double(after - before) / Double(max(1, decode.tokens.count))
            }
            options.maxTokens = 1
            let first = try generator.generate(prompt: longPrompt, options: options)
            guard round > 0 else { continue }
            result.decodeTokensPerSecond.append(decode.decodeTokensPerSecond)
            result.timeToFirstTokenMilliseconds.append(first.timeToFirstToken * 1000)
            result.greedyTokens = decode.tokens
        }
        return result
    }
}
