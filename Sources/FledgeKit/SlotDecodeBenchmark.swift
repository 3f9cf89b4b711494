// SlotDecodeBenchmark: the server's decode engine without HTTP — one batched step over 1, 4, 16, ... active
// slots of a SlotCache (GPT.step), on a reference configuration with random weights. Each slot is prefilled
// with a short prompt, then decodes; tokens/s is slots × steps / seconds. Rounds interleave the slot counts so
// a noisy machine affects them alike; `fledge serve`'s continuous batching can reach at most these rates.

import FledgeModel
import FledgeTensor
import Foundation

/// Decode tokens/s of one slot count, one value per round.
public struct SlotDecodeResult: Codable, Sendable {
    public let slots: Int
    public var tokensPerSecond: [Double]
    /// Milliseconds of one slot's prefill (the prompt), one value per round.
    public var prefillMilliseconds: [Double] = []
    public var medianPrefillMilliseconds: Double {
        let s = prefillMilliseconds.sorted()
        return s.isEmpty ? 0 : s[s.count / 2]
    }
    public var medianTokensPerSecond: Double {
        let s = tokensPerSecond.sorted()
        return s.isEmpty ? 0 : s[s.count / 2]
    }
}

/// Times `GPT.step` over several slot counts.
public enum SlotDecodeBenchmark {
    /// Runs `rounds` rounds; each round times `steps` decode steps at every slot count in turn.
    public static func run(
        shape: BenchmarkShape, backend: Backend, slotCounts: [Int], steps: Int, rounds: Int, promptTokens: Int = 12
    ) throws -> [SlotDecodeResult] {
        let model = try GPT(config: shape.config, backend: backend, seed: 1)
        let most = slotCounts.max() ?? 1
        let capacity = promptTokens + steps + 1
        let cache = try SlotCache(model: model, slots: most, capacity: min(capacity, shape.config.contextLength))
        let v = shape.config.vocabularySize
        var logits = [Float](repeating: 0, count: most * v)
        var results = slotCounts.map { SlotDecodeResult(slots: $0, tokensPerSecond: []) }
        let prompt = (0..<promptTokens).map { Int32(($0 * 37 + 11) % v) }
        for _ in 0..<rounds {
            for (index, count) in slotCounts.enumerated() {
                let slots = Array(0..<count)
                try logits.withUnsafeMutableBufferPointer { out in
                    let prefillStart = DispatchTime.now().uptimeNanoseconds
                    for slot in slots {
                        cache.reset(slot: slot)
                        try model.prefill(slot: slot, tokens: prompt, cache: cache, logits: out)
                    }
                    let prefillNanoseconds = DispatchTime.now().uptimeNanoseconds - prefillStart
                    results[index].prefillMilliseconds.append(Double(prefillNanoseconds) / 1e6 / Double(count))
                    var tokens = slots.map { Int32(($0 * 13 + 5) % v) }
                    let start = DispatchTime.now().uptimeNanoseconds
                    for step in 0..<steps {
                        try model.step(slots: slots, tokens: tokens, cache: cache, logits: out)
                        for i in 0..<count { tokens[i] = Int32((step * 31 + i * 7 + 3) % v) }
                    }
                    let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                    results[index].tokensPerSecond.append(Double(count * steps) / seconds)
                }
            }
        }
        return results
    }
}
