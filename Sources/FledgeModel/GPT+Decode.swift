// GPT+Decode: forward passes that reuse a KVCache: a prompt in chunks, then one token at a time.
// Logits of the newest position of each row are returned; `decodeAllLogits` (for tests and scoring) returns
// every position's. Row b of `tokens` continues row b of the cache.

import FledgeTensor

extension GPT {
    /// Appends `count` new tokens per row (tokens laid out (B, count)) to `cache` and returns the logits
    /// (B, V) of each row's last new token.
    public func decode(tokens: [Int32], count: Int, cache: KVCache) throws -> [Float] {
        let all = try decodeAllLogits(tokens: tokens, count: count, cache: cache, keepAll: false)
        return all
    }

    /// Like `decode`, but returns the logits of every new position, (B, count, V).
    public func decodeAllLogits(tokens: [Int32], count: Int, cache: KVCache) throws -> [Float] {
        try decodeAllLogits(tokens: tokens, count: count, cache: cache, keepAll: true)
    }

    private func decodeAllLogits(tokens: [Int32], count: Int, cache: KVCache, keepAll: Bool) throws -> [Float] {
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
        try tokens.withUnsafeBufferPointer { try checkTokens($0, targets: nil) }
        var result = [Float](repeating: 0, count: keepAll ? b * count * v : b * v)
        let acts = cache.activations
        var start = 0
        while start < count {
            let n = min(cache.chunkSize, count - start)
            acts.tokens.withUnsafeMutableBufferPointer { dst in
                for row in 0..<b {
                    for i in 0..<n { dst[row * n + i] = tokens[row * count + start + i] }
                }
            }
            cache.keys.withUnsafeMutableBufferPointer { keys in
                cache.values.withUnsafeMutableBufferPointer { values in
                    withBuffers(acts) { m in
                        let buffers = CacheBuffers(
                            keys: keys.baseAddress!, values: values.baseAddress!, capacity: cache.capacity)
                        runForward(
                            m, acts, batchSize: b, length: n, positionOffset: cache.length, cache: buffers,
                            training: false)
                        let logits = m.activations + acts.logits
                        for row in 0..<b {
                            if keepAll {
                                for i in 0..<n {
                                    for j in 0..<v {
                                        result[(row * count + start + i) * v + j] = logits[(row * n + i) * v + j]
                                    }
                                }
                            } else if start + n == count {
                                for j in 0..<v { result[row * v + j] = logits[(row * n + n - 1) * v + j] }
                            }
                        }
                    }
                }
            }
            cache.length += n
            start += n
        }
        return result
    }
}
