// Tiled (flash-style) attention against the attention that stores its probabilities: the output, the
// log-sum-exp and all three gradients, for multi-head, grouped and multi-query heads, at lengths that are and are
// not multiples of the block and the tile, with a key offset, and with tiles from one key to larger than the
// sequence. Then the derivative of the tiled forward by finite differences.

import FledgeTensor
import Foundation
import Testing

struct TiledAttentionTests {
    /// A tiled attention of `tiles` against `reference.attention` and `reference.attentionBackward` (the stored
    /// probabilities), and its log-sum-exp against the log of the reference's softmax sums.
    func check(
        batch: Int, tq: Int, offset: Int, heads: Int, kvHeads: Int, headSize: Int, tiles: AttentionTiles,
        threads: Int = 2, sourceLocation: SourceLocation = #_sourceLocation
    ) {
        let tk = offset + tq
        let qkvRow = (heads + 2 * kvHeads) * headSize
        // The queries in a (B, Tq, QKV) buffer; keys and values in another of Tk rows (as with a cache).
        let q = Buffer(batch * tq * qkvRow, seed: 41, low: -2, high: 2)
        let kv = Buffer(batch * tk * qkvRow, seed: 42, low: -2, high: 2)
        let (k, v) = (kv.pointer + heads * headSize, kv.pointer + (heads + kvHeads) * headSize)
        let shape = AttentionShape(
            batchSize: batch, queryLength: tq, keyOffset: offset, heads: heads, kvHeads: kvHeads,
            headSize: headSize, queryRowStride: qkvRow, queryBatchStride: tq * qkvRow, kvRowStride: qkvRow,
            kvBatchStride: tk * qkvRow, outputRowStride: heads * headSize, probabilityRowStride: tk)
        let dOut = Buffer(batch * tq * heads * headSize, seed: 43)
        let outputs = batch * tq * heads * headSize
        let what =
            "B\(batch) Tq\(tq) offset \(offset) heads \(heads)/\(kvHeads) HS\(headSize) tiles \(tiles.queries)×\(tiles.keys)"

        // The definition: stored probabilities.
        let (out, probs, scratch) = (
            Buffer(zeros: outputs), Buffer(zeros: shape.probabilityCount), Buffer(zeros: shape.probabilityCount)
        )
        let (dq, dkv) = (Buffer(zeros: batch * tq * qkvRow), Buffer(zeros: batch * tk * qkvRow))
        reference.attention(
            output: out.pointer, probabilities: probs.pointer, query: q.pointer, key: k, value: v, shape: shape)
        reference.attentionBackward(
            dQuery: dq.pointer, dKey: dkv.pointer + heads * headSize,
            dValue: dkv.pointer + (heads + kvHeads) * headSize,
            dOutput: dOut.pointer, probabilities: probs.pointer, query: q.pointer, key: k, value: v,
            scratch: scratch.pointer, shape: shape)

        for backend in [CPUBackend(threadCount: threads, attentionTiles: tiles) as Backend, reference] {
            let (tiledOut, lse) = (Buffer(zeros: outputs), Buffer(zeros: batch * heads * tq))
            let (tiledDQ, tiledDKV) = (Buffer(zeros: batch * tq * qkvRow), Buffer(zeros: batch * tk * qkvRow))
            backend.tiledAttention(
                output: tiledOut.pointer, logSumExp: lse.pointer, query: q.pointer, key: k, value: v, shape: shape)
            backend.tiledAttentionBackward(
                dQuery: tiledDQ.pointer, dKey: tiledDKV.pointer + heads * headSize,
                dValue: tiledDKV.pointer + (heads + kvHeads) * headSize, dOutput: dOut.pointer,
                output: tiledOut.pointer,
                logSumExp: lse.pointer, query: q.pointer, key: k, value: v, shape: shape)
            let name = "\(backend.name) \(what)"
            expectClose(tiledOut.array, out.array, tolerance: 2e-4, "\(name): output", sourceLocation: sourceLocation)
            expectClose(tiledDQ.array, dq.array, tolerance: 5e-4, "\(name): dQuery", sourceLocation: sourceLocation)
            expectClose(
                tiledDKV.array, dkv.array, tolerance: 5e-4, "\(name): dKey/dValue", sourceLocation: sourceLocation)
            // exp(s − lse) for row 0 of each (batch, head) is its first stored probability's row.
            let p = probs.array
            for unit in 0..<batch * heads {
                for t in [0, tq - 1] {
                    let row = (unit * tq + t) * tk
                    let (b, h) = unit.quotientAndRemainder(dividingBy: heads)
                    let qRow = q.pointer + b * tq * qkvRow + t * qkvRow + h * headSize
                    let kRow = k + b * tk * qkvRow + (h / (heads / kvHeads)) * headSize
                    var score: Float = 0
                    for i in 0..<headSize { score += qRow[i] * kRow[i] }
                    let expected = score / Float(headSize).squareRoot() - Foundation.log(p[row])
                    #expect(
                        abs(lse.array[unit * tq + t] - expected) < 1e-3 * max(1, abs(expected)),
                        "\(name): log-sum-exp of row \(t)", sourceLocation: sourceLocation)
                }
            }
        }
    }

    @Test(arguments: [(4, 4), (4, 2), (4, 1)])
    func matchesTheStoredProbabilities(heads: Int, kvHeads: Int) {
        // Lengths around the standard 64-row block and 256-key tile, and past them.
        for tq in [1, 5, 63, 64, 65, 300] {
            check(batch: 2, tq: tq, offset: 0, heads: heads, kvHeads: kvHeads, headSize: 16, tiles: .standard)
        }
        // Small and odd tiles: many blocks and tiles per row, a last one that is partial, tiles of one key.
        for tiles in [
            AttentionTiles(queries: 8, keys: 16), AttentionTiles(queries: 7, keys: 5),
            AttentionTiles(queries: 3, keys: 1),
        ] {
            for tq in [1, 17, 40] {
                check(batch: 2, tq: tq, offset: 0, heads: heads, kvHeads: kvHeads, headSize: 8, tiles: tiles)
            }
        }
    }

    @Test func aKeyOffsetAndOneThreadGiveTheSame() {
        check(
            batch: 2, tq: 20, offset: 9, heads: 6, kvHeads: 3, headSize: 20, tiles: AttentionTiles(queries: 8, keys: 16)
        )
        check(batch: 1, tq: 70, offset: 0, heads: 3, kvHeads: 3, headSize: 24, tiles: .standard, threads: 1)
        check(
            batch: 3, tq: 33, offset: 0, heads: 2, kvHeads: 1, headSize: 32,
            tiles: AttentionTiles(queries: 16, keys: 8), threads: 3)
    }

    /// Large scores (the online softmax's rescaling is exercised when a later tile holds a larger maximum).
    @Test func growingScoresAcrossTiles() {
        let (t, hs) = (48, 8)
        let row = 3 * hs
        let qkv = Buffer(zeros: t * row)
        for position in 0..<t {
            for i in 0..<hs {
                qkv.pointer[position * row + i] = 3  // query
                qkv.pointer[position * row + hs + i] = Float(position) * 0.25  // keys grow: later tiles win
                qkv.pointer[position * row + 2 * hs + i] = Float(position % 5)
            }
        }
        let shape = AttentionShape(
            batchSize: 1, queryLength: t, keyOffset: 0, heads: 1, kvHeads: 1, headSize: hs, queryRowStride: row,
            queryBatchStride: t * row, kvRowStride: row, kvBatchStride: t * row, outputRowStride: hs,
            probabilityRowStride: t)
        let (out, probs) = (Buffer(zeros: t * hs), Buffer(zeros: t * t))
        reference.attention(
            output: out.pointer, probabilities: probs.pointer, query: qkv.pointer, key: qkv.pointer + hs,
            value: qkv.pointer + 2 * hs, shape: shape)
        let tiled = CPUBackend(threadCount: 1, attentionTiles: AttentionTiles(queries: 4, keys: 8))
        let (tiledOut, lse) = (Buffer(zeros: t * hs), Buffer(zeros: t))
        tiled.tiledAttention(
            output: tiledOut.pointer, logSumExp: lse.pointer, query: qkv.pointer, key: qkv.pointer + hs,
            value: qkv.pointer + 2 * hs, shape: shape)
        expectClose(tiledOut.array, out.array, tolerance: 1e-4, "output with growing scores")
        #expect(lse.array.allSatisfy { $0.isFinite })
    }

    /// Two threads sharing one backend (as tests in parallel do) each get what the backend gives one caller:
    /// the per-thread tiles are the backend's, and a call while its pool is busy runs inline in the same slots.
    @Test func aBackendSharedByTwoThreadsGivesEachTheSame() {
        let callers = SharedBackendCallers()
        let alone = callers.attend()
        DispatchQueue.concurrentPerform(iterations: 2) { caller in
            callers.mismatches[caller] = (0..<30).filter { _ in callers.attend() != alone }.count
        }
        #expect(
            Array(callers.mismatches) == [0, 0],
            "results that differed from a lone caller's: \(Array(callers.mismatches))")
    }

    @Test(arguments: [(4, 4), (4, 2), (3, 1)])
    func backwardIsTheDerivative(heads: Int, kvHeads: Int) {
        let (b, t, hs) = (2, 6, 8)
        let row = (heads + 2 * kvHeads) * hs
        let qkv = Buffer(b * t * row, seed: 9)
        let r = Buffer(b * t * heads * hs, seed: 10)
        let shape = AttentionShape(
            batchSize: b, queryLength: t, keyOffset: 0, heads: heads, kvHeads: kvHeads, headSize: hs,
            queryRowStride: row,
            queryBatchStride: t * row, kvRowStride: row, kvBatchStride: t * row, outputRowStride: heads * hs,
            probabilityRowStride: t)
        let tiled = CPUBackend(threadCount: 2, attentionTiles: AttentionTiles(queries: 4, keys: 4))
        let (out, lse) = (Buffer(zeros: b * t * heads * hs), Buffer(zeros: b * heads * t))
        let forward = {
            tiled.tiledAttention(
                output: out.pointer, logSumExp: lse.pointer, query: qkv.pointer, key: qkv.pointer + heads * hs,
                value: qkv.pointer + (heads + kvHeads) * hs, shape: shape)
            return out.array
        }
        _ = forward()
        let dqkv = Buffer(zeros: b * t * row)
        tiled.tiledAttentionBackward(
            dQuery: dqkv.pointer, dKey: dqkv.pointer + heads * hs, dValue: dqkv.pointer + (heads + kvHeads) * hs,
            dOutput: r.pointer, output: out.pointer, logSumExp: lse.pointer, query: qkv.pointer,
            key: qkv.pointer + heads * hs, value: qkv.pointer + (heads + kvHeads) * hs, shape: shape)
        FiniteDifferenceTests().check(
            "tiled attention dQKV (\(heads)/\(kvHeads) heads)", input: qkv, analytic: dqkv.array, weights: r.array,
            h: 1e-3, forward: forward)
    }
}

/// One backend and one input for two concurrent callers; each caller writes only its own mismatch count.
private final class SharedBackendCallers: @unchecked Sendable {
    let (b, t, heads, hs) = (2, 150, 4, 16)
    let qkv: Buffer
    let shape: AttentionShape
    let backend = CPUBackend(threadCount: 2, attentionTiles: AttentionTiles(queries: 16, keys: 32))
    /// Each caller's count of results that differed (a slot each: no shared array is mutated).
    let mismatches = UnsafeMutableBufferPointer<Int>.allocate(capacity: 2)

    init() {
        let row = 3 * heads * hs
        qkv = Buffer(b * t * row, seed: 44)
        shape = AttentionShape(
            batchSize: b, queryLength: t, keyOffset: 0, heads: heads, kvHeads: heads, headSize: hs, queryRowStride: row,
            queryBatchStride: t * row, kvRowStride: row, kvBatchStride: t * row, outputRowStride: heads * hs,
            probabilityRowStride: t)
        mismatches.initialize(repeating: 0)
    }

    deinit { mismatches.deallocate() }

    /// The output and log-sum-exp of one call.
    func attend() -> [Float] {
        let (out, lse) = (Buffer(zeros: b * t * heads * hs), Buffer(zeros: b * heads * t))
        backend.tiledAttention(
            output: out.pointer, logSumExp: lse.pointer, query: qkv.pointer, key: qkv.pointer + heads * hs,
            value: qkv.pointer + 2 * heads * hs, shape: shape)
        return out.array + lse.array
    }
}
