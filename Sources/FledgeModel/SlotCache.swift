// SlotCache: a KV cache whose rows are independent slots, for continuous batching (a server's decode loop).
// Each slot holds one sequence with a length of its own, so a sequence can start (prefill) or end at any
// step while the others go on; one `step` runs a token of every active slot in one batched pass. The linear
// layers see all rows together; positions, the cache append and attention are per row.

import FledgeTensor
import Foundation

/// Cached keys and values for `slots` independent sequences of up to `capacity` positions each.
public final class SlotCache: @unchecked Sendable {
    public let slots: Int
    /// Positions one slot can hold (at most the model's context length).
    public let capacity: Int
    /// Most prompt tokens one prefill pass runs at once (longer prompts are split into chunks).
    public let chunkSize: Int
    /// Positions filled in each slot.
    public private(set) var lengths: [Int]
    let keys: Storage<Float>  // (layers, slots, capacity, NKV·HS)
    let values: Storage<Float>
    let stepActivations: Activations  // (slots, 1)
    let prefillActivations: Activations  // (1, chunkSize)

    /// Plans the cache for `model`; `capacity` defaults to the context length. Sizes are checked before anything
    /// is allocated.
    public init(model: GPT, slots: Int, capacity: Int? = nil, chunkSize: Int = 64) throws {
        let c = model.config
        let capacity = capacity ?? c.contextLength
        guard slots >= 1, slots <= 4096, capacity >= 1, capacity <= c.contextLength else {
            throw ModelError(
                "a slot cache of \(slots) slots × \(capacity) positions does not fit this model",
                hint: "use 1–4096 slots and a capacity between 1 and the context length \(c.contextLength).")
        }
        let count = c.layers * slots * capacity * c.kvHeads * c.headSize
        let bytes = Double(count) * 8
        if bytes > 0.5 * Double(ProcessInfo.processInfo.physicalMemory) {
            throw ModelError(
                String(format: "a KV cache of %d slots × %d positions needs %.1f GB", slots, capacity, bytes / 1e9),
                hint: "serve fewer sequences at once or a shorter context.")
        }
        self.slots = slots
        self.capacity = capacity
        self.chunkSize = min(chunkSize, capacity)
        lengths = [Int](repeating: 0, count: slots)
        keys = try Storage<Float>(count: count)
        values = try Storage<Float>(count: count)
        stepActivations = try Activations(
            config: c, batchSize: slots, sequenceLength: 1, keyCapacity: capacity, forTraining: false)
        prefillActivations = try Activations(
            config: c, batchSize: 1, sequenceLength: self.chunkSize, keyCapacity: capacity, forTraining: false)
    }

    /// Empties `slot` for a new sequence.
    public func reset(slot: Int) { lengths[slot] = 0 }

    /// Positions still free in `slot`.
    public func remaining(_ slot: Int) -> Int { capacity - lengths[slot] }

    fileprivate func advance(_ slot: Int, by n: Int) { lengths[slot] += n }
}

extension GPT {
    /// Appends `tokens` to slot `slot` (after what it holds) and writes the logits of the last one (V floats).
    public func prefill(
        slot: Int, tokens: [Int32], cache: SlotCache, logits: UnsafeMutableBufferPointer<Float>
    ) throws {
        let v = config.vocabularySize
        guard slot >= 0, slot < cache.slots, !tokens.isEmpty, tokens.count <= cache.remaining(slot),
            logits.count >= v
        else {
            throw ModelError(
                "cannot prefill \(tokens.count) tokens into slot \(slot) (\(cache.slots) slots, \(slot < cache.slots && slot >= 0 ? cache.remaining(slot) : 0) positions free)",
                hint: "give 1 to \(cache.capacity) tokens for an existing slot.")
        }
        try tokens.withUnsafeBufferPointer { try checkTokens($0, targets: nil) }
        let acts = cache.prefillActivations
        var start = 0
        while start < tokens.count {
            let n = min(cache.chunkSize, tokens.count - start)
            acts.tokens.withUnsafeMutableBufferPointer { dst in
                for i in 0..<n { dst[i] = tokens[start + i] }
            }
            run(cache, acts, slots: [(slot, cache.lengths[slot])], length: n) { rowLogits in
                if start + n == tokens.count {
                    logits.baseAddress!.update(from: rowLogits + (n - 1) * v, count: v)
                }
            }
            cache.advance(slot, by: n)
            start += n
        }
    }

    /// One new token for each of `slots` (distinct slots, `tokens[i]` for `slots[i]`) in one batched pass;
    /// writes the logits (slots.count × V).
    public func step(
        slots: [Int], tokens: [Int32], cache: SlotCache, logits: UnsafeMutableBufferPointer<Float>
    ) throws {
        let v = config.vocabularySize
        let b = slots.count
        guard b >= 1, b == tokens.count, b <= cache.slots, Set(slots).count == b, logits.count >= b * v else {
            throw ModelError(
                "step got \(tokens.count) tokens for slots \(slots) of a \(cache.slots)-slot cache",
                hint: "pass one token per distinct slot, and room for slots × vocabulary logits.")
        }
        for slot in slots where slot < 0 || slot >= cache.slots || cache.remaining(slot) < 1 {
            throw ModelError(
                "slot \(slot) is full or does not exist", hint: "end the sequence at the context length.")
        }
        try tokens.withUnsafeBufferPointer { try checkTokens($0, targets: nil) }
        let acts = cache.stepActivations
        acts.tokens.withUnsafeMutableBufferPointer { dst in
            for i in 0..<b { dst[i] = tokens[i] }
        }
        run(cache, acts, slots: slots.map { ($0, cache.lengths[$0]) }, length: 1) { all in
            logits.baseAddress!.update(from: all, count: b * v)
        }
        for slot in slots { cache.advance(slot, by: 1) }
    }

    /// One cached pass of `length` tokens for each of `slots`; `body` reads the logits (rows × length × V).
    private func run(
        _ cache: SlotCache, _ acts: Activations, slots: [(row: Int, position: Int)], length: Int,
        _ body: (ConstFloatPointer) -> Void
    ) {
        cache.keys.withUnsafeMutableBufferPointer { keys in
            cache.values.withUnsafeMutableBufferPointer { values in
                withBuffers(acts) { m in
                    let buffers = CacheBuffers(
                        keys: keys.baseAddress!, values: values.baseAddress!, capacity: cache.capacity,
                        rows: cache.slots, slots: slots)
                    runForward(
                        m, acts, batchSize: slots.count, length: length, positionOffset: 0, cache: buffers,
                        training: false)
                    body(ConstFloatPointer(m.activations + acts.logits))
                }
            }
        }
    }
}
