// ByteLevelDemo: the end-to-end check of the numeric core on real text — a small GPT over raw bytes
// (vocabulary 256, no tokenizer), trained with AdamW, warmup + cosine and clipping on random windows, then
// sampled through the KV cache. It is what `fledge demo` runs. It is not the trainer: `fledge train`
// (FledgeTraining) adds data shards, checkpoints, resume, evaluation and reports.

import FledgeModel
import FledgeTensor
import Foundation

/// Settings of the byte-level demo.
public struct ByteLevelDemoConfig: Sendable {
    public var model = ModelConfig(vocabularySize: 256, contextLength: 128, layers: 4, width: 128, heads: 4)
    public var batchSize = 16
    public var maxSteps = 3000
    public var seconds: Double = 180
    public var learningRate: Float = 2e-3
    public var warmupSteps = 100
    public var evalEvery = 100
    public var seed: UInt64 = 1337
    public var sampleLength = 400
    public var prompt = "ROMEO:\n"

    public init() {}
}

/// One logged point of the demo.
public struct DemoProgress: Sendable {
    public let step: Int
    public let trainLoss: Float
    public let validationLoss: Float?
    public let tokensPerSecond: Double
    public let elapsed: Double
}

/// Trains and samples the byte-level demo model.
public enum ByteLevelDemo {
    /// Trains on `text` (90% train, 10% validation by position) until `maxSteps` or `seconds`, calling `log`
    /// every `evalEvery` steps; returns the model and the final validation loss.
    public static func train(
        text: [UInt8], config: ByteLevelDemoConfig, backend: any Backend, log: (DemoProgress) -> Void
    ) throws -> (model: GPT, validationLoss: Float) {
        let t = config.model.contextLength
        let split = text.count * 9 / 10
        guard split > t + 1, text.count - split > t + 1 else {
            throw ModelError(
                "the text has \(text.count) bytes, too few for windows of \(t + 1)", hint: "use a longer text file.")
        }
        let model = try GPT(config: config.model, backend: backend, seed: config.seed)
        let optimizer = try AdamW(model: model)
        let acts = try Activations(config: config.model, batchSize: config.batchSize, sequenceLength: t)
        var rng = RandomSource(seed: config.seed)
        var tokens = [Int32](repeating: 0, count: config.batchSize * t)
        var targets = tokens
        func fillBatch(_ range: Range<Int>, _ rng: inout RandomSource) {
            for b in 0..<config.batchSize {
                let start = range.lowerBound + Int(rng.next() % UInt64(range.count - t - 1))
                for i in 0..<t {
                    tokens[b * t + i] = Int32(text[start + i])
                    targets[b * t + i] = Int32(text[start + i + 1])
                }
            }
        }
        func validationLoss() throws -> Float {
            var evalRng = RandomSource(seed: 7)  // the same validation windows every time
            var total: Float = 0
            for _ in 0..<8 {
                fillBatch(split..<text.count, &evalRng)
                total += try model.forward(tokens: tokens, targets: targets, activations: acts, training: false) ?? 0
            }
            return total / 8
        }
        let start = Date()
        var lastLog = (time: 0.0, step: 0)
        var loss: Float = 0
        var step = 0
        while step < config.maxSteps && Date().timeIntervalSince(start) < config.seconds {
            fillBatch(0..<split, &rng)
            model.zeroGradients()
            loss = try model.forward(tokens: tokens, targets: targets, activations: acts) ?? 0
            try model.backward(activations: acts)
            model.clipGradients(maxNorm: 1)
            optimizer.update(
                model, learningRate: learningRate(step: step, config: config, elapsed: Date().timeIntervalSince(start)))
            step += 1
            if step % config.evalEvery == 0 {
                let elapsed = Date().timeIntervalSince(start)
                let rate = Double((step - lastLog.step) * config.batchSize * t) / max(1e-9, elapsed - lastLog.time)
                lastLog = (elapsed, step)
                log(
                    DemoProgress(
                        step: step, trainLoss: loss, validationLoss: try validationLoss(), tokensPerSecond: rate,
                        elapsed: elapsed))
            }
        }
        return (model, try validationLoss())
    }

    /// Linear warmup, then cosine decay to 10% over whichever budget (steps or time) runs out first.
    static func learningRate(step: Int, config: ByteLevelDemoConfig, elapsed: Double) -> Float {
        if step < config.warmupSteps { return config.learningRate * Float(step + 1) / Float(config.warmupSteps) }
        let progress = min(1, max(Double(step) / Double(config.maxSteps), elapsed / config.seconds))
        let cosine = 0.5 * (1 + cos(Double.pi * progress))
        return config.learningRate * Float(0.1 + 0.9 * cosine)
    }

    /// Samples `length` bytes after `prompt` with temperature and top-k, through the KV cache.
    public static func sample(
        model: GPT, prompt: String, length: Int, temperature: Float = 0.8, topK: Int = 40, seed: UInt64 = 1
    )
        throws -> String
    {
        let capacity = model.config.contextLength
        let cache = try KVCache(model: model, batchSize: 1, capacity: capacity)
        var rng = RandomSource(seed: seed)
        var context = Array(prompt.utf8).map(Int32.init).suffix(capacity - 1)
        var output: [UInt8] = []
        var logits = try model.decode(tokens: Array(context), count: context.count, cache: cache)
        for _ in 0..<length {
            let next = Int32(sampleTopK(logits, temperature: temperature, topK: topK, rng: &rng))
            output.append(UInt8(next))
            context.append(next)
            if cache.remaining == 0 {
                // The window is full: restart the cache on the last half of the context.
                cache.reset()
                context = context.suffix(capacity / 2)
                logits = try model.decode(tokens: Array(context), count: context.count, cache: cache)
            } else {
                logits = try model.decode(tokens: [next], count: 1, cache: cache)
            }
        }
        return String(decoding: output, as: UTF8.self)
    }

    static func sampleTopK(_ logits: [Float], temperature: Float, topK: Int, rng: inout RandomSource) -> Int {
        let top = logits.indices.sorted { logits[$0] > logits[$1] }.prefix(topK)
        let maxLogit = logits[top.first!]
        let weights = top.map { Double(Foundation.exp((logits[$0] - maxLogit) / temperature)) }
        var r = rng.uniform() * weights.reduce(0, +)
        for (i, w) in zip(top, weights) {
            r -= w
            if r <= 0 { return i }
        }
        return top.last!
    }
}
