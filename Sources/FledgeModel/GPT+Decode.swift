// GPT+Decode: forward passes that reuse a KVCache: a prompt in chunks, then one token at a time.
// Logits of the newest position of each row are returned; `decodeAllLogits` (for tests and scoring) returns
// every position's. Row b of `tokens` continues row b of the cache. `decode(tokens:count:cache:logits:)`
// writes into the caller's buffer, so a generation loop allocates nothing per token.

import FledgeTensor

extension GPT {
    /// Appends `count` new tokens per row (tokens laid out (B, count)) to `cache` and returns the logits
    /// (B, V) of each row's last new token.
    public func decode(tokens: [Int32], count: Int, cache: KVCache) throws -> [Float] {
        var result = [Float](repeating: 0, count: cache.batchSize * config.vocabularySize)
        try tokens.withUnsafeBufferPointer { t in
            try result.withUnsafeMutableBufferPointer { try decode(tokens: t, count: count, cache: cache, logits: $0) }
        }
        return result
    }

    /// Like `decode`, but returns the logits of every new position, (B, count, V).
    public func decodeAllLogits(tokens: [Int32], count: Int, cache: KVCache) throws -> [Float] {
        var result = [Float](repeating: 0, count: cache.batchSize * count * config.vocabularySize)
        try tokens.withUnsafeBufferPointer { t in
            try result.withUnsafeMutableBufferPointer {
                try decode(tokens: t, count: count, cache: cache, output: $0, keepAll: true)
            }
        }
        return result
    }

    /// Appends `count` new tokens per row to `cache` and writes each row's last logits into `logits` (B × V).
    public func decode(
        tokens: UnsafeBufferPointer<Int32>, count: Int, cache: KVCache, logits: UnsafeMutableBufferPointer<Float>
    ) throws {
        try decode(tokens: tokens, count: count, cache: cache, output: logits, keepAll: false)
    }

    private func decode(
        tokens: UnsafeBufferPointer<Int32>, count: Int, cache: KVCache, output: UnsafeMutableBufferPointer<Float>,
        keepAll: Bool
    ) throws {
        try checkPlan(cache.activations, what: "this KV cache was")
        let b = cache.batchSize
        let v = config.vocabularySize
        guard count >= 1, tokens.count == b * count else {
            throw ModelError(
                "decode got \(tokens.count) tokens for \(b) rows of \(count) new tokens",
                hint: "pass batch × count tokens, row by row, with count ≥ 1.")
        }
        guard count <= cache.remaining else {
            throw ModelError(
                "\(count) new tokens do not fit: the KV cache holds \(cache.capacity) positions and \(cache.length) are used",
                hint: "shorten the prompt or the output, or reset the cache (context length \(config.contextLength)).")
        }
        guard output.count >= (keepAll ? b * count * v : b * v) else {
            throw ModelError(
                "the logits buffer holds \(output.count) values; \(keepAll ? b * count * v : b * v) are needed",
                hint: "allocate batch × vocabulary floats.")
        }
        try checkTokens(tokens, targets: nil)
        let acts = cache.activations
        var start = 0
        while start < count {
            let n = min(cache.chunkSize, count - start)
            for row in 0..<b {
                backend.copyFromHost(
                    acts.tokens.address + row * n, from: tokens.baseAddress! + row * count + start, count: n)
            }
            let m = buffers(acts)
            let cacheBuffers = CacheBuffers(
                keys: cache.keys.address, values: cache.values.address, capacity: cache.capacity, rows: b, slots: nil)
            runForward(
                m, acts, batchSize: b, length: n, positionOffset: cache.length, cache: cacheBuffers, training: false,
                lastLogitsOnly: !keepAll)
            let logits = m.activations + acts.logits
            for row in 0..<b {
                if keepAll {
                    backend.copyToHost(
                        output.baseAddress! + (row * count + start) * v, from: logits + row * n * v, count: n * v)
                } else if start + n == count {
                    backend.copyToHost(output.baseAddress! + row * v, from: logits + (row * n + n - 1) * v, count: v)
                }
            }
            cache.length += n
            start += n
        }
    }
}
