// SlotCache: a KV cache whose rows are independent slots, for continuous batching (a server's decode loop).
// Each slot holds one sequence with a length of its own, so a sequence can start or end at any step while the
// others go on. One `pass` runs a token of every decoding slot and chunks of new prompts together: the linear
// layers see all their tokens as one matrix (the weights are read once for all of them); positions, the cache
// append and attention are per sequence, with the decoding ones' attention in one call.

import FledgeTensor
import Foundation

/// Cached keys and values for `slots` independent sequences of up to `capacity` positions each.
public final class SlotCache: @unchecked Sendable {
    public let slots: Int
    /// Positions one slot can hold (at most the model's context length).
    public let capacity: Int
    /// Most prompt tokens one pass runs (longer prompts are split into chunks over several passes).
    public let chunkSize: Int
    /// Positions filled in each slot.
    public private(set) var lengths: [Int]
    let keys: BackendBuffer<Float>  // (layers, slots, capacity, NKV·HS)
    let values: BackendBuffer<Float>
    let passActivations: Activations  // slots + chunkSize tokens, one row each

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
        keys = try BackendBuffer<Float>(backend: model.backend, count: count)
        values = try BackendBuffer<Float>(backend: model.backend, count: count)
        passActivations = try Activations(
            model: model, batchSize: slots + self.chunkSize, sequenceLength: 1, keyCapacity: capacity,
            forTraining: false)
    }

    /// Empties `slot` for a new sequence.
    public func reset(slot: Int) { lengths[slot] = 0 }

    /// Positions still free in `slot`.
    public func remaining(_ slot: Int) -> Int { capacity - lengths[slot] }

    fileprivate func advance(_ slot: Int, by n: Int) { lengths[slot] += n }
}

/// A chunk of a prompt for one slot in a `GPT.pass`: its tokens go after what the slot holds.
public struct PromptChunk {
    public var slot: Int
    public var tokens: ArraySlice<Int32>

    public init(slot: Int, tokens: ArraySlice<Int32>) {
        self.slot = slot
        self.tokens = tokens
    }
}

extension GPT {
    /// One batched pass over the cache: token `tokens[i]` for each decoding slot `slots[i]`, and each prompt
    /// chunk after what its slot holds (at most `chunkSize` prompt tokens in all). Writes the logits of each
    /// decoding slot's token, then of each chunk's last token: (slots.count + prompts.count) × V floats.
    public func pass(
        slots: [Int], tokens: [Int32], prompts: [PromptChunk] = [], cache: SlotCache,
        logits: UnsafeMutableBufferPointer<Float>
    ) throws {
        try checkPlan(cache.passActivations, what: "this slot cache was")
        let v = config.vocabularySize
        let sequences = slots.count + prompts.count
        let promptTokens = prompts.reduce(0) { $0 + $1.tokens.count }
        let all = slots + prompts.map(\.slot)
        guard sequences >= 1, slots.count == tokens.count, Set(all).count == all.count, logits.count >= sequences * v,
            promptTokens <= cache.chunkSize, prompts.allSatisfy({ !$0.tokens.isEmpty })
        else {
            throw ModelError(
                "a pass got \(tokens.count) tokens for decoding slots \(slots) and \(promptTokens) prompt tokens for slots \(prompts.map(\.slot)) (\(cache.slots) slots, \(cache.chunkSize) prompt tokens a pass)",
                hint:
                    "pass one token per distinct slot, non-empty prompt chunks of at most the chunk size in all, and room for one row of logits per sequence."
            )
        }
        for slot in all where slot < 0 || slot >= cache.slots {
            throw ModelError("slot \(slot) does not exist", hint: "use slots 0..<\(cache.slots).")
        }
        for slot in slots where cache.remaining(slot) < 1 {
            throw ModelError("slot \(slot) is full", hint: "end the sequence at the context length.")
        }
        for chunk in prompts where chunk.tokens.count > cache.remaining(chunk.slot) {
            throw ModelError(
                "\(chunk.tokens.count) prompt tokens do not fit slot \(chunk.slot) (\(cache.remaining(chunk.slot)) positions free)",
                hint: "give at most \(cache.capacity) prompt tokens a sequence.")
        }
        try tokens.withUnsafeBufferPointer { try checkTokens($0, targets: nil) }
        for chunk in prompts { try chunk.tokens.withUnsafeBufferPointer { try checkTokens($0, targets: nil) } }
        let acts = cache.passActivations
        var spans: [SlotSpan] = []
        spans.reserveCapacity(sequences)
        tokens.withUnsafeBufferPointer { acts.tokens.copyFromHost($0) }  // empty for prompt chunks only
        for (i, slot) in slots.enumerated() {
            spans.append(SlotSpan(row: slot, position: cache.lengths[slot], start: i, length: 1))
        }
        var start = slots.count
        for chunk in prompts {
            chunk.tokens.withUnsafeBufferPointer { acts.tokens.copyFromHost($0, at: start) }
            spans.append(
                SlotSpan(row: chunk.slot, position: cache.lengths[chunk.slot], start: start, length: chunk.tokens.count)
            )
            start += chunk.tokens.count
        }
        let m = buffers(acts)
        let cacheBuffers = CacheBuffers(
            keys: cache.keys.address, values: cache.values.address, capacity: cache.capacity, rows: cache.slots,
            slots: spans, decodeRows: spans[..<slots.count].map { DecodeRow(cacheRow: $0.row, keys: $0.position + 1) })
        runForward(
            m, acts, batchSize: slots.count + promptTokens, length: 1, positionOffset: 0, cache: cacheBuffers,
            training: false)
        backend.copyToHost(logits.baseAddress!, from: m.activations + acts.logits, count: sequences * v)
        for span in spans { cache.advance(span.row, by: span.length) }
    }

    /// Appends `tokens` to slot `slot` (after what it holds, in chunks of the cache's chunk size) and writes the
    /// logits of the last one (V floats).
    public func prefill(
        slot: Int, tokens: [Int32], cache: SlotCache, logits: UnsafeMutableBufferPointer<Float>
    ) throws {
        guard !tokens.isEmpty else {
            throw ModelError("cannot prefill an empty prompt into slot \(slot)", hint: "give at least one token.")
        }
        var start = 0
        while start < tokens.count {
            let end = min(tokens.count, start + cache.chunkSize)
            try pass(
                slots: [], tokens: [], prompts: [PromptChunk(slot: slot, tokens: tokens[start..<end])], cache: cache,
                logits: logits)
            start = end
        }
    }

    /// One new token for each of `slots` (distinct slots, `tokens[i]` for `slots[i]`) in one batched pass;
    /// writes the logits (slots.count × V).
    public func step(
        slots: [Int], tokens: [Int32], cache: SlotCache, logits: UnsafeMutableBufferPointer<Float>
    ) throws {
        guard !slots.isEmpty else {
            throw ModelError("a step needs at least one slot", hint: "pass one token per decoding slot.")
        }
        try pass(slots: slots, tokens: tokens, cache: cache, logits: logits)
    }
}
