// KVCache: keys and values of every layer for the positions decoded so far, so each new token costs one
// row of work instead of a full recomputation (llama2.c's `key_cache`/`value_cache`). It also owns the
// inference activations for one chunk of new tokens. Filled by `GPT.decode`.

import FledgeTensor

/// Cached keys and values for `batchSize` sequences of up to `capacity` positions.
public final class KVCache: @unchecked Sendable {
    public let batchSize: Int
    /// Positions the cache can hold (at most the model's context length).
    public let capacity: Int
    /// Most new tokens one `decode` call runs at once (longer inputs are split into chunks).
    public let chunkSize: Int
    /// Positions filled so far (the same for every row).
    public internal(set) var length = 0
    let keys: BackendBuffer<Float>  // (layers, B, capacity, NKV·HS)
    let values: BackendBuffer<Float>  // (layers, B, capacity, NKV·HS)
    let activations: Activations

    /// Plans a cache for `model`; `capacity` defaults to the context length.
    public init(model: GPT, batchSize: Int = 1, capacity: Int? = nil, chunkSize: Int = 128) throws {
        let c = model.config
        let capacity = capacity ?? c.contextLength
        guard capacity >= 1, capacity <= c.contextLength, batchSize >= 1 else {
            throw ModelError(
                "a KV cache of capacity \(capacity) for batch \(batchSize) does not fit this model",
                hint: "use a capacity between 1 and the context length \(c.contextLength), and a batch ≥ 1.")
        }
        self.batchSize = batchSize
        self.capacity = capacity
        self.chunkSize = min(chunkSize, capacity)
        let count = c.layers * batchSize * capacity * c.kvHeads * c.headSize
        keys = try BackendBuffer<Float>(backend: model.backend, count: count)
        values = try BackendBuffer<Float>(backend: model.backend, count: count)
        activations = try Activations(
            model: model, batchSize: batchSize, sequenceLength: self.chunkSize, keyCapacity: capacity,
            forTraining: false)
    }

    /// Forgets every cached position.
    public func reset() { length = 0 }

    /// Positions still free.
    public var remaining: Int { capacity - length }
}
