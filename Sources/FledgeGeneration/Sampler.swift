// Sampler: picks the next token from (processed) logits — the argmax at temperature 0, else a draw from
// softmax(logits / T) restricted to the top-k, then to the nucleus of mass top-p, then to tokens at least
// min-p as likely as the best. Candidates are selected with a bounded heap and kept best first; ties go to
// the lower id, so every run with the same seed makes the same choices. Scratch is owned: no allocation.

import FledgeTensor
import Foundation

/// Chooses tokens from logits.
public final class Sampler {
    public let vocabularySize: Int
    private let order: UnsafeMutablePointer<Int32>  // candidate ids; best first once selected
    private let weights: UnsafeMutablePointer<Double>  // exp((logit − best) / T) of each candidate
    private let numerators: UnsafeMutablePointer<Float>  // the same for every token, when nothing is cut

    public init(vocabularySize: Int) {
        self.vocabularySize = vocabularySize
        order = .allocate(capacity: max(1, vocabularySize))
        weights = .allocate(capacity: max(1, vocabularySize))
        numerators = .allocate(capacity: max(1, vocabularySize))
    }

    deinit {
        order.deallocate()
        weights.deallocate()
        numerators.deallocate()
    }

    /// The chosen token, or nil when no token is allowed (every logit −∞ or NaN).
    public func sample(_ logits: UnsafeBufferPointer<Float>, config: SamplingConfig, rng: inout RandomSource) -> Int32?
    {
        if config.temperature == 0 { return Self.argmax(logits) }
        if config.topK == nil && config.topP >= 1 && config.minP == 0 {
            return drawUnfiltered(logits, temperature: Double(config.temperature), rng: &rng)
        }
        let kept = select(logits, config: config)
        guard kept.count > 0 else { return nil }
        var r = rng.uniform() * kept.total
        for i in 0..<kept.count {
            r -= weights[i]
            if r < 0 { return order[i] }
        }
        return order[kept.count - 1]
    }

    /// The tokens `config` keeps, best first, with their probabilities after renormalising (temperature > 0;
    /// at temperature 0 only the argmax, with probability 1).
    public func kept(_ logits: [Float], config: SamplingConfig) -> [(token: Int32, probability: Double)] {
        logits.withUnsafeBufferPointer { logits in
            var result: [(token: Int32, probability: Double)] = []
            if config.temperature == 0 {
                if let best = Self.argmax(logits) { result.append((best, 1)) }
                return result
            }
            let kept = select(logits, config: config)
            for i in 0..<kept.count { result.append((order[i], weights[i] / kept.total)) }
            return result
        }
    }

    /// A draw from softmax(logits / T) over the whole vocabulary (no top-k, top-p or min-p): one pass for the
    /// total, one for the draw, in id order; no sorting is needed when nothing is cut.
    func drawUnfiltered(_ logits: UnsafeBufferPointer<Float>, temperature: Double, rng: inout RandomSource)
        -> Int32?
    {
        // The numerators in fp32 SIMD lanes (a server samples every row of every step, and a scalar Double exp
        // per vocabulary entry cost more than a tenth of its decode step); the total and the draw in Double.
        let best = softmaxNumerators(logits, scale: Float(1 / temperature), into: numerators)
        guard best > -.infinity else { return nil }
        let n = logits.count
        var (s0, s1, s2, s3) = (0.0, 0.0, 0.0, 0.0)
        var i = 0
        while i + 4 <= n {
            s0 += Double(numerators[i])
            s1 += Double(numerators[i + 1])
            s2 += Double(numerators[i + 2])
            s3 += Double(numerators[i + 3])
            i += 4
        }
        while i < n {
            s0 += Double(numerators[i])
            i += 1
        }
        var r = rng.uniform() * ((s0 + s1) + (s2 + s3))
        var last: Int32?
        for i in 0..<n where numerators[i] > 0 {
            r -= Double(numerators[i])
            last = Int32(i)
            if r < 0 { return last }
        }
        return last
    }

    /// The most likely token (the lowest id among equals); nil when none is finite.
    public static func argmax(_ logits: UnsafeBufferPointer<Float>) -> Int32? {
        var best = -1
        var bestValue = -Float.infinity
        for i in 0..<logits.count where logits[i] > bestValue {
            best = i
            bestValue = logits[i]
        }
        return best < 0 ? nil : Int32(best)
    }

    /// Fills `order`/`weights` with the kept candidates, best first; returns their count and total weight.
    private func select(_ logits: UnsafeBufferPointer<Float>, config: SamplingConfig) -> (count: Int, total: Double) {
        let k = min(config.topK ?? logits.count, logits.count)
        // `order[0..<n]` is a heap whose root is the worst candidate kept so far.
        @inline(__always) func better(_ a: Int32, _ b: Int32) -> Bool {
            let x = logits[Int(a)]
            let y = logits[Int(b)]
            return x > y || (x == y && a < b)
        }
        @inline(__always) func swap(_ i: Int, _ j: Int) {
            let t = order[i]
            order[i] = order[j]
            order[j] = t
        }
        func siftDown(_ start: Int, _ size: Int) {
            var i = start
            while true {
                let left = 2 * i + 1
                guard left < size else { return }
                var worst = left
                if left + 1 < size && better(order[worst], order[left + 1]) { worst = left + 1 }
                guard better(order[i], order[worst]) else { return }
                swap(i, worst)
                i = worst
            }
        }
        var n = 0
        for i in 0..<logits.count where logits[i] > -.infinity {
            let id = Int32(i)
            if n < k {
                order[n] = id
                var child = n
                n += 1
                while child > 0 {
                    let parent = (child - 1) / 2
                    guard better(order[parent], order[child]) else { break }
                    swap(parent, child)
                    child = parent
                }
            } else if better(id, order[0]) {
                order[0] = id
                siftDown(0, n)
            }
        }
        guard n > 0 else { return (0, 0) }
        // Heap sort: the worst goes to the end each time, leaving the candidates best first.
        var end = n - 1
        while end > 0 {
            swap(0, end)
            siftDown(0, end)
            end -= 1
        }
        let best = logits[Int(order[0])]
        let temperature = Double(config.temperature)
        var total = 0.0
        for i in 0..<n {
            weights[i] = exp((Double(logits[Int(order[i])]) - Double(best)) / temperature)
            total += weights[i]
        }
        // Nucleus: the shortest best-first prefix whose mass reaches top-p (at least one token).
        var count = n
        if config.topP < 1 {
            let target = Double(config.topP) * total
            var mass = 0.0
            count = 0
            while count < n && (count == 0 || mass < target) {
                mass += weights[count]
                count += 1
            }
        }
        // Min-p: tokens at least min-p as likely as the best (whose weight is 1).
        if config.minP > 0 {
            var kept = 1
            while kept < count && weights[kept] >= Double(config.minP) { kept += 1 }
            count = kept
        }
        total = 0
        for i in 0..<count { total += weights[i] }
        return (count, total)
    }
}
