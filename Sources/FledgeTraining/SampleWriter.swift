// SampleWriter: short continuations of fixed prompts during training and in `fledge eval` — the KV cache,
// temperature and top-k, a fixed seed per prompt (so samples from different steps differ only because the
// model did), stopping at the end-of-sequence token. The full generator with every sampler and logits
// processor is FledgeGeneration's; this is the small one the trainer needs.

import FledgeModel
import FledgeTensor
import FledgeTokenizer
import Foundation

/// Writes samples from a model.
public struct SampleWriter {
    public var temperature: Float = 0.8
    public var topK = 40
    public var seed: UInt64 = 1

    public init() {}

    /// The text generated after `prompt` (at most `tokens` tokens; stops at `stopToken`).
    public func complete(_ prompt: [Int32], model: GPT, tokenizer: any Tokenizer, tokens: Int, stopToken: Int32?) throws
        -> String
    {
        let capacity = model.config.contextLength
        var context = prompt.isEmpty ? [stopToken ?? 0] : Array(prompt.suffix(capacity - 1))
        let cache = try KVCache(model: model, batchSize: 1, capacity: capacity)
        var rng = RandomSource(seed: seed)
        var output: [Int32] = []
        var logits = try model.decode(tokens: context, count: context.count, cache: cache)
        for _ in 0..<min(tokens, capacity - 1) {
            let next = Int32(sample(logits, rng: &rng))
            if next == stopToken { break }
            output.append(next)
            context.append(next)
            if cache.remaining == 0 {
                cache.reset()  // the window is full: restart on the last half of the context
                context = Array(context.suffix(capacity / 2))
                logits = try model.decode(tokens: context, count: context.count, cache: cache)
            } else {
                logits = try model.decode(tokens: [next], count: 1, cache: cache)
            }
        }
        return String(decoding: try tokenizer.decodeBytes(output), as: UTF8.self)
    }

    /// A draw from the top-k of softmax(logits / temperature); the argmax at temperature 0.
    func sample(_ logits: [Float], rng: inout RandomSource) -> Int {
        let top = logits.indices.sorted { logits[$0] > logits[$1] }.prefix(max(1, topK))
        guard temperature > 0 else { return top.first! }
        let maxLogit = logits[top.first!]
        let weights = top.map { Double(exp((logits[$0] - maxLogit) / temperature)) }
        var r = rng.uniform() * weights.reduce(0, +)
        for (index, weight) in zip(top, weights) {
            r -= weight
            if r <= 0 { return index }
        }
        return top.last!
    }
}
