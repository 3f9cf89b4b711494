// CPUBackend+Loss: fused softmax cross-entropy with an ignore index, parallel over rows.
// Forward saves log-sum-exp per row so the backward needs one pass: dlogit = e^{x − lse} − 1[target].

import Foundation

extension CPUBackend {
    public func crossEntropy(
        losses: FloatPointer, logSumExp: FloatPointer, logits: ConstFloatPointer, targets: UnsafePointer<Int32>,
        rows: Int, vocabularySize: Int, ignoreIndex: Int32
    ) {
        let job = CrossEntropyRows(
            losses: losses, logSumExp: logSumExp, logits: logits, targets: targets, vocabularySize: vocabularySize,
            ignoreIndex: ignoreIndex)
        pool.parallelFor(rows, job)
    }

    public func crossEntropyBackward(
        dLogits: FloatPointer, logits: ConstFloatPointer, logSumExp: ConstFloatPointer,
        targets: UnsafePointer<Int32>, rows: Int, vocabularySize: Int, ignoreIndex: Int32, scale: Float
    ) {
        let job = CrossEntropyGradientRows(
            dLogits: dLogits, logits: logits, logSumExp: logSumExp, targets: targets, vocabularySize: vocabularySize,
            ignoreIndex: ignoreIndex, scale: scale)
        pool.parallelFor(rows, job)
    }

    /// Lanes at or beyond `lanes` (the invalid tail of a partial chunk).
    @inline(__always)
    static func laneMask(_ lanes: Int) -> SIMDMask<SIMD16<Int32>> {
        SIMD16<Int32>(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15) .>= Int32(lanes)
    }
}

/// Loss and log-sum-exp of a block of rows.
struct CrossEntropyRows: ParallelRangeJob {
    let losses: FloatPointer, logSumExp: FloatPointer, logits: ConstFloatPointer, targets: UnsafePointer<Int32>
    let vocabularySize: Int, ignoreIndex: Int32

    func run(_ block: Range<Int>) {
        let v = vocabularySize
        for r in block {
            let x = logits + r * v
            let m = rowMaximum(x, count: v)
            // Subtract the row max for numerical stability.
            var sum = Vec16()
            forEachChunk16(0..<v) { i, lanes in
                let e = exp16(loadLanes(x + i, lanes) - m)
                sum += lanes == 16 ? e : e.replacing(with: 0, where: CPUBackend.laneMask(lanes))
            }
            let lse = m + Float(Foundation.log(Double(sum.sum())))
            logSumExp[r] = lse
            losses[r] = targets[r] == ignoreIndex ? 0 : lse - x[Int(targets[r])]
        }
    }
}

/// dLogits = scale·(softmax − onehot) for a block of rows (zero for ignored rows); may run in place.
struct CrossEntropyGradientRows: ParallelRangeJob {
    let dLogits: FloatPointer, logits: ConstFloatPointer, logSumExp: ConstFloatPointer, targets: UnsafePointer<Int32>
    let vocabularySize: Int, ignoreIndex: Int32, scale: Float

    func run(_ block: Range<Int>) {
        let v = vocabularySize
        for r in block {
            let x = logits + r * v
            let dx = dLogits + r * v
            if targets[r] == ignoreIndex {
                dx.update(repeating: 0, count: v)
                continue
            }
            let lse = logSumExp[r]
            forEachChunk16(0..<v) { i, lanes in
                storeLanes(exp16(loadLanes(x + i, lanes) - lse) * scale, dx + i, lanes)
            }
            dx[Int(targets[r])] -= scale
        }
    }
}
