// Every fast CPU kernel against its reference on random inputs of several shapes, including shapes that
// are not multiples of the 16-lane SIMD width. Tolerances are fp32 tolerances: the reference reduces in
// Double, the fast kernels in fp32 lanes, so differences of ~1e-6 relative are expected.

import FledgeTensor
import Foundation
import Testing

struct CPUBackendTests {
    @Test(arguments: [
        (false, false, 5, 7, 3), (false, true, 33, 17, 19), (true, false, 64, 40, 48), (true, true, 70, 90, 31),
        (false, true, 130, 257, 65),
    ])
    func gemmMatchesReference(transA: Bool, transB: Bool, m: Int, n: Int, k: Int) {
        let a = Buffer(m * k, seed: 1)
        let b = Buffer(k * n, seed: 2)
        let c1 = Buffer(m * n, seed: 3)
        let c2 = Buffer(copy: c1)
        let lda = transA ? m : k
        let ldb = transB ? k : n
        for backend in [fast as Backend, reference] {
            let c = backend === fast ? c1 : c2
            backend.gemm(
                transposeA: transA, transposeB: transB, m: m, n: n, k: k, alpha: 0.5, a: a.pointer, lda: lda,
                b: b.pointer, ldb: ldb, beta: 0.25, c: c.pointer, ldc: n)
        }
        expectClose(c1.array, c2.array, "gemm \(transA) \(transB) \(m)x\(n)x\(k)")
    }

    // Fewer than 32 rows per thread with wide outputs (decoding, a server's batch): the fast backend splits the
    // output features across threads.
    @Test(arguments: [
        (1, 3, 5), (37, 24, 40), (65, 33, 129), (1, 64, 300), (3, 48, 1000), (2, 16, 4), (5, 37, 23), (16, 256, 768),
        (32, 100, 67), (7, 1, 9), (33, 19, 50), (64, 40, 29), (12, 7, 13), (48, 1024, 37),
    ])
    func linearForwardAndBackwardMatchReference(rows: Int, inFeatures: Int, outFeatures: Int) {
        let x = Buffer(rows * inFeatures, seed: 4)
        let w = Buffer(outFeatures * inFeatures, seed: 5)
        let bias = Buffer(outFeatures, seed: 6)
        let dOut = Buffer(rows * outFeatures, seed: 7)
        var results: [[Float]] = []
        for backend in [fast as Backend, reference] {
            let out = Buffer(zeros: rows * outFeatures)
            let dx = Buffer(rows * inFeatures, seed: 8)
            let dw = Buffer(outFeatures * inFeatures, seed: 9)
            let db = Buffer(outFeatures, seed: 10)
            backend.linear(
                output: out.pointer, input: x.pointer, weight: w.pointer, bias: bias.pointer, rows: rows,
                inFeatures: inFeatures, outFeatures: outFeatures)
            backend.linearBackward(
                dInput: dx.pointer, accumulateInput: true, dWeight: dw.pointer, dBias: db.pointer,
                dOutput: dOut.pointer, input: x.pointer, weight: w.pointer, rows: rows, inFeatures: inFeatures,
                outFeatures: outFeatures)
            results += [out.array, dx.array, dw.array, db.array]
        }
        for (i, name) in ["output", "dInput", "dWeight", "dBias"].enumerated() {
            expectClose(results[i], results[i + 4], name)
        }
    }

    // The few-rows kernel at 8 and at 16 lanes, against the reference: widths that are and are not multiples of
    // 8 and 16, output counts that are not multiples of 3, enough outputs per thread for the prefetch of the
    // groups ahead, and inputs of 512 and more (groups of six outputs at 16 lanes).
    @Test(arguments: [
        (1, 256, 768), (3, 37, 24), (16, 1024, 40), (15, 100, 13), (5, 8, 31), (64, 24, 7), (17, 256, 300),
        (7, 600, 30), (13, 512, 150),
    ])
    func linearAtEachSliceWidthMatchesReference(rows: Int, inFeatures: Int, outFeatures: Int) {
        let x = Buffer(rows * inFeatures, seed: 49)
        let w = Buffer(outFeatures * inFeatures, seed: 50)
        let bias = Buffer(outFeatures, seed: 51)
        let shape = (rows: rows, inFeatures: inFeatures, outFeatures: outFeatures)
        let expected = linearOutput(reference, x, w, bias, rows: rows, inFeatures: inFeatures, outFeatures: outFeatures)
        for backend in fastAtEachWidth {
            let out = linearOutput(backend, x, w, bias, rows: rows, inFeatures: inFeatures, outFeatures: outFeatures)
            expectClose(out, expected, "\(backend.vectorLanes) lanes, \(shape)")
        }
    }

    // A server's sequence decodes exactly as it would alone: each row of a few-rows linear (blocks of four rows,
    // then one block of the rows left) equals that row computed by itself, bit for bit, whatever the batch size,
    // at either slice width.
    @Test(arguments: [(256, 36), (37, 24), (100, 13), (600, 30)])
    func linearOfABatchEqualsEachRowAlone(inFeatures: Int, outFeatures: Int) {
        for fast in fastAtEachWidth {
            linearOfABatchEqualsEachRowAlone(fast, inFeatures: inFeatures, outFeatures: outFeatures)
        }
    }

    private func linearOfABatchEqualsEachRowAlone(_ fast: CPUBackend, inFeatures: Int, outFeatures: Int) {
        for rows in [1, 2, 3, 4, 5, 6, 7, 11, 15, 16, 17, 64] {
            let x = Buffer(rows * inFeatures, seed: 46, low: -2, high: 2)
            let w = Buffer(outFeatures * inFeatures, seed: 47)
            let bias = Buffer(outFeatures, seed: 48)
            let batch = linearOutput(fast, x, w, bias, rows: rows, inFeatures: inFeatures, outFeatures: outFeatures)
            for r in 0..<rows {
                let one = linearOutput(
                    fast, x, firstRow: r, w, bias, rows: 1, inFeatures: inFeatures, outFeatures: outFeatures)
                #expect(
                    one == Array(batch[r * outFeatures..<(r + 1) * outFeatures]),
                    "\(fast.vectorLanes) lanes: row \(r) of \(rows), \(inFeatures) → \(outFeatures)")
            }
        }
    }

    @Test(arguments: [(2, 3, 8, true), (3, 5, 19, false), (1, 17, 64, true)])
    func embeddingMatchesReference(batch: Int, seq: Int, width: Int, positions: Bool) {
        let vocab = 11
        let tokens = (0..<batch * seq).map { Int32(($0 * 7) % vocab) }
        let wte = Buffer(vocab * width, seed: 11)
        let wpe = Buffer((seq + 2) * width, seed: 12)
        let dOut = Buffer(batch * seq * width, seed: 13)
        var results: [[Float]] = []
        for backend in [fast as Backend, reference] {
            let out = Buffer(zeros: batch * seq * width)
            let dwte = Buffer(vocab * width, seed: 14)
            let dwpe = Buffer((seq + 2) * width, seed: 15)
            tokens.withUnsafeBufferPointer { t in
                backend.embedding(
                    output: out.pointer, tokens: t.baseAddress!, tokenTable: wte.pointer,
                    positionTable: positions ? wpe.pointer : nil, batchSize: batch, sequenceLength: seq, width: width,
                    positionOffset: positions ? 2 : 0)
                backend.embeddingBackward(
                    dTokenTable: dwte.pointer, dPositionTable: positions ? dwpe.pointer : nil, dOutput: dOut.pointer,
                    tokens: t.baseAddress!, batchSize: batch, sequenceLength: seq, width: width)
            }
            results += [out.array, dwte.array, dwpe.array]
        }
        for (i, name) in ["output", "dTokenTable", "dPositionTable"].enumerated() {
            expectClose(results[i], results[i + 3], name)
        }
    }

    @Test(arguments: [(1, 8), (5, 19), (33, 64), (7, 385)])
    func normsMatchReference(rows: Int, width: Int) {
        let x = Buffer(rows * width, seed: 16, low: -2, high: 3)
        let w = Buffer(width, seed: 17)
        let bias = Buffer(width, seed: 18)
        let dOut = Buffer(rows * width, seed: 19)
        var results: [[Float]] = []
        for backend in [fast as Backend, reference] {
            let out = Buffer(zeros: rows * width)
            let mean = Buffer(zeros: rows)
            let rstd = Buffer(zeros: rows)
            let dx = Buffer(rows * width, seed: 20)
            let dw = Buffer(width, seed: 21)
            let db = Buffer(width, seed: 22)
            backend.layerNorm(
                output: out.pointer, mean: mean.pointer, rstd: rstd.pointer, input: x.pointer, weight: w.pointer,
                bias: bias.pointer, rows: rows, width: width, epsilon: 1e-5)
            backend.layerNormBackward(
                dInput: dx.pointer, accumulate: true, dWeight: dw.pointer, dBias: db.pointer, dOutput: dOut.pointer,
                input: x.pointer, weight: w.pointer, mean: mean.pointer, rstd: rstd.pointer, rows: rows, width: width)
            let rmsOut = Buffer(zeros: rows * width)
            let rmsRstd = Buffer(zeros: rows)
            let rmsDx = Buffer(zeros: rows * width)
            let rmsDw = Buffer(zeros: width)
            backend.rmsNorm(
                output: rmsOut.pointer, rstd: rmsRstd.pointer, input: x.pointer, weight: w.pointer, rows: rows,
                width: width, epsilon: 1e-5)
            backend.rmsNormBackward(
                dInput: rmsDx.pointer, accumulate: false, dWeight: rmsDw.pointer, dOutput: dOut.pointer,
                input: x.pointer, weight: w.pointer, rstd: rmsRstd.pointer, rows: rows, width: width)
            results += [out.array, dx.array, dw.array, db.array, rmsOut.array, rmsDx.array, rmsDw.array]
        }
        let names = ["layerNorm", "layerNorm dInput", "dWeight", "dBias", "rmsNorm", "rmsNorm dInput", "rms dWeight"]
        for (i, name) in names.enumerated() { expectClose(results[i], results[i + 7], name) }
    }

    @Test(arguments: [(2, 5, 3, 8, false), (1, 9, 2, 36, true), (3, 4, 1, 64, false)])
    func rotaryMatchesReferenceAndInverts(batch: Int, seq: Int, heads: Int, headSize: Int, inverse: Bool) {
        let half = headSize / 2
        let maxT = seq + 3
        let angles = Buffer(maxT * half, seed: 23, low: -3, high: 3).array
        let cos = Buffer(zeros: maxT * half)
        let sin = Buffer(zeros: maxT * half)
        for i in angles.indices {
            cos.pointer[i] = Foundation.cos(angles[i])
            sin.pointer[i] = Foundation.sin(angles[i])
        }
        let rowStride = heads * headSize + 5
        let x1 = Buffer(batch * seq * rowStride, seed: 25)
        let x2 = Buffer(copy: x1)
        for (backend, x) in [(fast as Backend, x1), (reference, x2)] {
            backend.rotary(
                data: x.pointer, cos: cos.pointer, sin: sin.pointer, batchSize: batch, sequenceLength: seq,
                heads: heads, headSize: headSize, rowStride: rowStride, batchStride: seq * rowStride,
                positionOffset: 3, inverse: inverse)
        }
        expectClose(x1.array, x2.array, "rotary")
        // Rotating back by the same angles restores the input.
        let original = Buffer(batch * seq * rowStride, seed: 25)
        let x3 = Buffer(copy: x1)
        fast.rotary(
            data: x3.pointer, cos: cos.pointer, sin: sin.pointer, batchSize: batch, sequenceLength: seq, heads: heads,
            headSize: headSize, rowStride: rowStride, batchStride: seq * rowStride, positionOffset: 3, inverse: !inverse
        )
        expectClose(x3.array, original.array, tolerance: 1e-5, "rotary, inverse then forward")
    }

    @Test(arguments: [
        (2, 7, 0, 4, 2, 8), (1, 70, 0, 3, 3, 16), (2, 1, 9, 4, 1, 32), (3, 130, 0, 2, 1, 24), (2, 5, 6, 6, 3, 20),
    ])
    func attentionMatchesReference(batch: Int, tq: Int, offset: Int, heads: Int, kvHeads: Int, headSize: Int) {
        let tk = offset + tq
        let qkvRow = (heads + 2 * kvHeads) * headSize
        let q = Buffer(batch * tq * qkvRow, seed: 26, low: -2, high: 2)
        let kv = Buffer(batch * tk * qkvRow, seed: 27, low: -2, high: 2)
        let shape = AttentionShape(
            batchSize: batch, queryLength: tq, keyOffset: offset, heads: heads, kvHeads: kvHeads,
            headSize: headSize, queryRowStride: qkvRow, queryBatchStride: tq * qkvRow, kvRowStride: qkvRow,
            kvBatchStride: tk * qkvRow, outputRowStride: heads * headSize, probabilityRowStride: tk)
        var results: [[Float]] = []
        for backend in [fast as Backend, reference] {
            let out = Buffer(zeros: batch * tq * heads * headSize)
            let probs = Buffer(zeros: shape.probabilityCount)
            backend.attention(
                output: out.pointer, probabilities: probs.pointer, query: q.pointer,
                key: kv.pointer + heads * headSize, value: kv.pointer + (heads + kvHeads) * headSize, shape: shape)
            results += [out.array, probs.array]
        }
        // (Its backward is the tiled attention's: TiledAttentionTests.)
        expectClose(results[0], results[2], tolerance: 2e-4, "output")
        expectClose(results[1], results[3], tolerance: 2e-4, "probabilities")
    }

    // A decoding batch: each row one query over its own cache row's first `keys` positions; more rows than
    // threads (one row per thread) and fewer (heads split over the threads).
    @Test(arguments: [
        (5, 4, 2, 32, [3, 1, 9, 6, 2]), (3, 6, 3, 20, [4, 7, 1]), (1, 4, 1, 16, [5]), (4, 2, 2, 8, [2, 2, 8, 1]),
    ])
    func decodeAttentionMatchesReference(cacheRows: Int, heads: Int, kvHeads: Int, headSize: Int, keys: [Int]) {
        let capacity = 10
        let (qWidth, kvWidth) = (heads * headSize, kvHeads * headSize)
        let rows = keys.enumerated().map { DecodeRow(cacheRow: ($0.offset * 3 + 1) % cacheRows, keys: $0.element) }
        let b = rows.count
        let q = Buffer(b * qWidth, seed: 40, low: -2, high: 2)
        let k = Buffer(cacheRows * capacity * kvWidth, seed: 41, low: -2, high: 2)
        let v = Buffer(cacheRows * capacity * kvWidth, seed: 42, low: -2, high: 2)
        let shape = AttentionShape(
            batchSize: b, queryLength: 1, keyOffset: 0, heads: heads, kvHeads: kvHeads, headSize: headSize,
            queryRowStride: qWidth, queryBatchStride: qWidth, kvRowStride: kvWidth, kvBatchStride: capacity * kvWidth,
            outputRowStride: qWidth, probabilityRowStride: capacity)
        var results: [[Float]] = []
        for backend in [fast as Backend, reference] {
            let out = Buffer(zeros: b * qWidth)
            let probs = Buffer(zeros: b * heads * capacity)
            rows.withUnsafeBufferPointer { rows in
                backend.decodeAttention(
                    output: out.pointer, probabilities: probs.pointer, query: q.pointer, key: k.pointer,
                    value: v.pointer, rows: rows, shape: shape)
            }
            results += [out.array, probs.array]
        }
        expectClose(results[0], results[2], tolerance: 2e-5, "decode attention output")
        expectClose(results[1], results[3], tolerance: 2e-5, "decode attention probabilities")
    }

    // A batch of rows (all heads of a row on one thread, positions outer) and each row alone (its heads split
    // over the threads, one head at a time) must give the same bits: a server's sequence decodes as it would
    // alone. Head sizes off the SIMD width, grouped heads, and key counts that are not multiples of four.
    @Test(arguments: [(8, 8, 32), (6, 2, 20), (4, 1, 64), (5, 5, 24)])
    func decodeAttentionOfABatchEqualsEachRowAlone(heads: Int, kvHeads: Int, headSize: Int) {
        let (capacity, keys) = (40, [1, 2, 3, 4, 5, 7, 9, 17, 33, 40])
        let (qWidth, kvWidth) = (heads * headSize, kvHeads * headSize)
        let rows = keys.enumerated().map { DecodeRow(cacheRow: $0.offset, keys: $0.element) }
        let q = Buffer(rows.count * qWidth, seed: 43, low: -2, high: 2)
        let k = Buffer(rows.count * capacity * kvWidth, seed: 44, low: -2, high: 2)
        let v = Buffer(rows.count * capacity * kvWidth, seed: 45, low: -2, high: 2)
        var shape = AttentionShape(
            batchSize: rows.count, queryLength: 1, keyOffset: 0, heads: heads, kvHeads: kvHeads, headSize: headSize,
            queryRowStride: qWidth, queryBatchStride: qWidth, kvRowStride: kvWidth, kvBatchStride: capacity * kvWidth,
            outputRowStride: qWidth, probabilityRowStride: capacity)
        let batch = Buffer(zeros: rows.count * qWidth)
        let batchProbs = Buffer(zeros: rows.count * heads * capacity)
        rows.withUnsafeBufferPointer { rows in
            fast.decodeAttention(
                output: batch.pointer, probabilities: batchProbs.pointer, query: q.pointer, key: k.pointer,
                value: v.pointer, rows: rows, shape: shape)
        }
        shape.batchSize = 1
        for (r, row) in rows.enumerated() {
            let out = Buffer(zeros: qWidth)
            let probs = Buffer(zeros: heads * capacity)
            [row].withUnsafeBufferPointer { one in
                fast.decodeAttention(
                    output: out.pointer, probabilities: probs.pointer, query: q.pointer + r * qWidth, key: k.pointer,
                    value: v.pointer, rows: one, shape: shape)
            }
            #expect(out.array == Array(batch.array[r * qWidth..<(r + 1) * qWidth]), "output of row \(r)")
            for h in 0..<heads {
                let p = h * capacity
                #expect(
                    Array(probs.array[p..<p + row.keys])
                        == Array(batchProbs.array[r * heads * capacity + p..<r * heads * capacity + p + row.keys]),
                    "probabilities of row \(r), head \(h)")
            }
        }
    }

    @Test(arguments: ActivationFunction.allCases)
    func activationsMatchReference(function: ActivationFunction) {
        for count in [1, 15, 16, 17, 100, 20_001] {
            let x = Buffer(count, seed: 29, low: -6, high: 6)
            let dOut = Buffer(count, seed: 30)
            var results: [[Float]] = []
            for backend in [fast as Backend, reference] {
                let out = Buffer(zeros: count)
                let dx = Buffer(zeros: count)
                backend.activation(function, output: out.pointer, input: x.pointer, count: count)
                backend.activationBackward(
                    function, dInput: dx.pointer, input: x.pointer, dOutput: dOut.pointer, count: count)
                results += [out.array, dx.array]
            }
            expectClose(results[0], results[2], tolerance: 2e-5, "\(function) forward, n=\(count)")
            expectClose(results[1], results[3], tolerance: 2e-5, "\(function) backward, n=\(count)")
        }
    }

    @Test(arguments: [(1, 5), (9, 16), (4, 43)])
    func swigluMatchesReference(rows: Int, width: Int) {
        let x = Buffer(rows * 2 * width, seed: 31, low: -5, high: 5)
        let dOut = Buffer(rows * width, seed: 32)
        var results: [[Float]] = []
        for backend in [fast as Backend, reference] {
            let out = Buffer(zeros: rows * width)
            let dx = Buffer(zeros: rows * 2 * width)
            backend.swiglu(output: out.pointer, input: x.pointer, rows: rows, width: width)
            backend.swigluBackward(
                dInput: dx.pointer, input: x.pointer, dOutput: dOut.pointer, rows: rows, width: width)
            results += [out.array, dx.array]
        }
        expectClose(results[0], results[2], tolerance: 2e-5, "swiglu")
        expectClose(results[1], results[3], tolerance: 2e-5, "swiglu backward")
    }

    @Test(arguments: [(1, 7), (5, 64), (33, 1000)])
    func crossEntropyMatchesReference(rows: Int, vocab: Int) {
        let logits = Buffer(rows * vocab, seed: 33, low: -8, high: 8)
        let targets = (0..<rows).map { Int32($0 % 4 == 1 ? -100 : ($0 * 13) % vocab) }
        var results: [[Float]] = []
        for backend in [fast as Backend, reference] {
            let losses = Buffer(zeros: rows)
            let lse = Buffer(zeros: rows)
            let d = Buffer(copy: logits)
            targets.withUnsafeBufferPointer { t in
                backend.crossEntropy(
                    losses: losses.pointer, logSumExp: lse.pointer, logits: logits.pointer, targets: t.baseAddress!,
                    rows: rows, vocabularySize: vocab, ignoreIndex: -100)
                // In place, as the model uses it.
                backend.crossEntropyBackward(
                    dLogits: d.pointer, logits: d.pointer, logSumExp: lse.pointer, targets: t.baseAddress!, rows: rows,
                    vocabularySize: vocab, ignoreIndex: -100, scale: 0.5)
            }
            results += [losses.array, d.array]
        }
        expectClose(results[0], results[2], tolerance: 1e-5, "losses")
        expectClose(results[1], results[3], tolerance: 1e-5, "dLogits")
        if rows > 1 { #expect(results[0][1] == 0, "ignored row has zero loss") }
    }

    @Test func elementwiseAndOptimizerMatchReference() {
        for count in [3, 16, 1000, 70_001] {
            let a = Buffer(count, seed: 34)
            let b = Buffer(count, seed: 35)
            let g = Buffer(count, seed: 36)
            var results: [[Float]] = []
            var sums: [Double] = []
            for backend in [fast as Backend, reference] {
                let out = Buffer(zeros: count)
                backend.add(output: out.pointer, a.pointer, b.pointer, count: count)
                let dropped = Buffer(copy: a)
                backend.dropout(dropped.pointer, count: count, probability: 0.3, seed: 99)
                let scaled = Buffer(copy: a)
                backend.scale(scaled.pointer, count: count, by: 0.7)
                let p = Buffer(copy: a)
                let m = Buffer(count, seed: 37, low: -0.1, high: 0.1)
                let v = Buffer(count, seed: 38, low: 0, high: 0.1)
                backend.adamW(
                    parameters: p.pointer, gradients: g.pointer, firstMoment: m.pointer, secondMoment: v.pointer,
                    count: count,
                    hyper: AdamWStep(
                        learningRate: 1e-2, beta1: 0.9, beta2: 0.95, epsilon: 1e-8, weightDecay: 0.1, step: 3))
                results += [out.array, dropped.array, scaled.array, p.array, m.array, v.array]
                sums.append(backend.sumOfSquares(g.pointer, count: count))
            }
            for (i, name) in ["add", "dropout", "scale", "adamW p", "adamW m", "adamW v"].enumerated() {
                expectClose(results[i], results[i + 6], tolerance: 1e-5, "\(name) n=\(count)")
            }
            #expect(abs(sums[0] - sums[1]) <= 1e-5 * sums[1], "sumOfSquares \(sums)")
        }
    }

    @Test func dropoutKeepsTheExpectedFraction() {
        let count = 100_000
        let ones = Buffer(zeros: count)
        ones.pointer.update(repeating: 1, count: count)
        fast.dropout(ones.pointer, count: count, probability: 0.25, seed: 7)
        let kept = ones.array.filter { $0 != 0 }
        #expect(abs(Double(kept.count) / Double(count) - 0.75) < 0.01)
        #expect(kept.allSatisfy { abs($0 - 1 / 0.75) < 1e-6 })
    }

    @Test(arguments: [1, 2, 3])
    func threadPoolCoversEveryIndexOnce(threads: Int) {
        let pool = ThreadPool(threadCount: threads)
        for count in [1, 5, 16, 1000] {
            let hits = Buffer(zeros: count)
            pool.parallelFor(count, alignment: 4, CountHits(hits: hits.pointer))
            #expect(hits.array.allSatisfy { $0 == 1 }, "count \(count)")
        }
    }

    /// More threads than cores: workers are often late (asleep or preempted) and the running threads take their
    /// shares; every share of every region must still run exactly once, and regions must not mix.
    @Test func everyShareRunsOnceWhenWorkersAreLate() {
        let pool = ThreadPool(threadCount: 8)
        let counts = Buffer(zeros: 8)
        for round in 0..<2000 {
            pool.parallel(CountShares(counts: counts.pointer, round: Float(round)))
            if round % 500 == 0 { Thread.sleep(forTimeInterval: 0.001) }  // let the workers fall asleep
        }
        #expect(counts.array.allSatisfy { $0 == 2000 })
    }

    /// Regression: a worker that woke after its pool was released read freed memory (a crash seen when tests
    /// create and drop many backends).
    @Test func poolsCanBeReleasedWhileTheirWorkersStart() {
        let hits = Buffer(zeros: 64)
        for round in 0..<300 {
            let pool = ThreadPool(threadCount: 3)
            if round % 2 == 0 { pool.parallelFor(64, CountHits(hits: hits.pointer)) }
        }
        #expect(hits.array.allSatisfy { $0 == 150 })
    }
}

/// Adds 1 at every index of its range.
struct CountHits: ParallelRangeJob {
    let hits: UnsafeMutablePointer<Float>
    func run(_ range: Range<Int>) { for i in range { hits[i] += 1 } }
}

/// Adds 1 at its share's index, once the share checks that the previous round's value is in place.
struct CountShares: ParallelJob {
    let counts: UnsafeMutablePointer<Float>
    let round: Float
    func run(thread share: Int, of threadCount: Int) {
        precondition(counts[share] == round, "share \(share) ran twice or missed a round")
        counts[share] += 1
    }
}

/// The kernels that move data (what a device backend turns into transfers between its memory and the host's),
/// on both host-memory backends, against values written out here: strides, and a masked sum.
struct DataMovementTests {
    @Test func copiesAndTheMaskedSumMatchTheReference() {
        let source = Buffer(200, seed: 61)
        for backend in [fast as Backend, reference] {
            let copied = Buffer(zeros: 200)
            backend.copy(copied.pointer, from: source.pointer, count: 197)
            #expect(
                Array(copied.array[..<197]) == Array(source.array[..<197])
                    && copied.array[197...].allSatisfy { $0 == 0 })
            // 5 rows of 7 from rows 13 apart into rows 9 apart; what lies between rows is untouched.
            let rows = Buffer(zeros: 50)
            backend.copyRows(
                rows.pointer + 1, destinationStride: 9, from: source.pointer + 2, sourceStride: 13, rows: 5, width: 7)
            var expected = [Float](repeating: 0, count: 50)
            for r in 0..<5 { for i in 0..<7 { expected[1 + r * 9 + i] = source.array[2 + r * 13 + i] } }
            #expect(rows.array == expected, "\(backend.name) copyRows")
            let host = UnsafeMutablePointer<Float>.allocate(capacity: 10)
            defer { host.deallocate() }
            backend.copyToHost(host, from: source.pointer + 3, count: 10)
            #expect((0..<10).allSatisfy { host[$0] == source.array[3 + $0] })
            var ids: [Int32] = [4, 5, 6]
            var into = [Int32](repeating: 0, count: 4)
            ids.withUnsafeMutableBufferPointer { from in
                into.withUnsafeMutableBufferPointer {
                    backend.copyFromHost($0.baseAddress! + 1, from: from.baseAddress!, count: 3)
                }
            }
            #expect(into == [0, 4, 5, 6])
            // The sum and count of the values whose target is not ignored.
            let targets: [Int32] = (0..<200).map { $0 % 3 == 0 ? -100 : Int32($0) }
            let (sum, counted) = targets.withUnsafeBufferPointer {
                backend.maskedSum(source.pointer, targets: $0.baseAddress!, count: 200, ignoreIndex: -100)
            }
            let kept = (0..<200).filter { $0 % 3 != 0 }
            #expect(counted == kept.count)
            #expect(abs(sum - kept.reduce(0.0) { $0 + Double(source.array[$1]) }) < 1e-9)
        }
    }
}
