// CPUBackend+TiledAttention: causal (grouped-query) attention that never holds a (T × T) matrix, as
// FlashAttention does it. Query rows go in blocks of `attentionTiles.queries`, keys in tiles of
// `attentionTiles.keys`; a (block × tile) score tile lives in a per-thread workspace of the backend.
//
// Forward: an online softmax over the key tiles. Each row keeps its running maximum m and sum l; a new tile
// rescales the row's output so far by exp(m_old − m_new) before adding P·V. At the end the output is divided by
// l, and the row's log-sum-exp m + log l is saved: (B, NH, T) floats instead of (B, NH, T, T).
// Backward: per (block, tile), the probabilities are recomputed as exp(S − lse); with D = rowsum(dO ⊙ O),
// dS = P ⊙ (dP − D) / √HS, then dQ += dS·K, dK += dSᵀ·Q, dV += Pᵀ·dO. Parallel over (batch, key/value head) as
// `attentionBackward`, so the heads of a group accumulate their dK and dV on one thread.
// The plain definitions are ReferenceBackend.tiledAttention and tiledAttentionBackward.

import Foundation

extension CPUBackend {
    public func tiledAttention(
        output: FloatPointer, logSumExp: FloatPointer, query: ConstFloatPointer, key: ConstFloatPointer,
        value: ConstFloatPointer, shape: AttentionShape
    ) {
        withScratch {
            tileWorkspace.withUnsafeMutableBufferPointer { workspace in
                let job = TiledAttentionHeads(
                    output: output, logSumExp: logSumExp, query: query, key: key, value: value, shape: shape,
                    tiles: attentionTiles, workspace: workspace.baseAddress!)
                pool.parallel(job)
            }
        }
    }

    public func tiledAttentionBackward(
        dQuery: FloatPointer, dKey: FloatPointer, dValue: FloatPointer, dOutput: ConstFloatPointer,
        output: ConstFloatPointer, logSumExp: ConstFloatPointer, query: ConstFloatPointer, key: ConstFloatPointer,
        value: ConstFloatPointer, shape: AttentionShape
    ) {
        withScratch {
            tileWorkspace.withUnsafeMutableBufferPointer { workspace in
                let job = TiledAttentionGradientGroups(
                    dQuery: dQuery, dKey: dKey, dValue: dValue, dOutput: dOutput, output: output,
                    logSumExp: logSumExp, query: query, key: key, value: value, shape: shape, tiles: attentionTiles,
                    workspace: workspace.baseAddress!)
                pool.parallel(job)
            }
        }
    }

    /// Floats of tile workspace one thread needs: two (block × tile) tiles and three per-row vectors.
    static func tileWorkspaceCount(_ tiles: AttentionTiles) -> Int {
        (2 * tiles.queries * tiles.keys + 3 * tiles.queries + 15) / 16 * 16
    }
}

/// Rows per query block and keys per key tile of the tiled attention.
public struct AttentionTiles: Sendable, Equatable {
    public var queries: Int
    public var keys: Int

    /// 64 × 256: a block's (64 × HS) queries and a tile's scores stay in L2, and each GEMM is large enough for the
    /// BLAS to run near its peak.
    public static let standard = AttentionTiles(queries: 64, keys: 256)

    public init(queries: Int, keys: Int) {
        self.queries = max(1, queries)
        self.keys = max(1, keys)
    }
}

/// Tiled attention forward for the (batch, head) units of each thread.
struct TiledAttentionHeads: ParallelJob {
    let output: FloatPointer, logSumExp: FloatPointer
    let query: ConstFloatPointer, key: ConstFloatPointer, value: ConstFloatPointer
    let shape: AttentionShape
    let tiles: AttentionTiles
    let workspace: FloatPointer

    func run(thread: Int, of threadCount: Int) {
        let s = shape
        let (hs, group, scale) = (s.headSize, s.groupSize, s.scale)
        let (qrs, kvrs, ors) = (s.queryRowStride, s.kvRowStride, s.outputRowStride)
        let (br, bc) = (tiles.queries, tiles.keys)
        let scores = workspace + thread * CPUBackend.tileWorkspaceCount(tiles)
        let maximum = scores + 2 * br * bc
        let sum = maximum + br
        for unit in ThreadPool.chunk(s.batchSize * s.heads, share: thread, of: threadCount) {
            let (b, h) = unit.quotientAndRemainder(dividingBy: s.heads)
            let q = query + b * s.queryBatchStride + h * hs
            let k = key + b * s.kvBatchStride + (h / group) * hs
            let v = value + b * s.kvBatchStride + (h / group) * hs
            let o = output + b * s.queryLength * ors + h * hs
            let lse = logSumExp + unit * s.queryLength
            var r0 = 0
            while r0 < s.queryLength {
                let r1 = min(s.queryLength, r0 + br)
                let rows = r1 - r0
                let keys = s.keyOffset + r1
                var c0 = 0
                while c0 < keys {
                    let c1 = min(keys, c0 + bc)
                    let cols = c1 - c0
                    // S = Q·Kᵀ/√HS for this block's rows and this tile's keys.
                    CPUBackend.sgemm(
                        false, true, rows, cols, hs, scale, q + r0 * qrs, qrs, k + c0 * kvrs, kvrs, 0, scores, bc)
                    for i in 0..<rows {
                        let row = scores + i * bc
                        // Keys c0..<c0 + visible of this tile are at or before the query's position. The first tile
                        // always has one (key 0), so m and l start from a real score.
                        let visible = min(cols, max(0, s.keyOffset + r0 + i + 1 - c0))
                        guard visible > 0 else {
                            row.update(repeating: 0, count: cols)
                            continue
                        }
                        let tileMaximum = rowMaximum(row, count: visible)
                        let previous = c0 == 0 ? -Float.infinity : maximum[i]
                        let newMaximum = max(previous, tileMaximum)
                        var tileSum = Vec16()
                        forEachChunk16(0..<visible) { j, lanes in
                            var e = exp16(loadLanes(row + j, lanes) - newMaximum)
                            if lanes < 16 { e = e.replacing(with: 0, where: CPUBackend.laneMask(lanes)) }
                            tileSum += e
                            storeLanes(e, row + j, lanes)
                        }
                        (row + visible).update(repeating: 0, count: cols - visible)
                        if c0 == 0 {
                            sum[i] = tileSum.sum()
                        } else {
                            // The output so far was weighted by exp(−m_old): bring it to exp(−m_new).
                            let rescale = Float(Foundation.exp(Double(previous - newMaximum)))
                            sum[i] = sum[i] * rescale + tileSum.sum()
                            if rescale != 1 {
                                let out = o + (r0 + i) * ors
                                forEachChunk16(0..<hs) { d, lanes in
                                    storeLanes(loadLanes(out + d, lanes) * rescale, out + d, lanes)
                                }
                            }
                        }
                        maximum[i] = newMaximum
                    }
                    // O (+)= P·V
                    CPUBackend.sgemm(
                        false, false, rows, hs, cols, 1, scores, bc, v + c0 * kvrs, kvrs, c0 == 0 ? 0 : 1, o + r0 * ors,
                        ors)
                    c0 = c1
                }
                for i in 0..<rows {
                    let out = o + (r0 + i) * ors
                    let inverse = 1 / sum[i]
                    forEachChunk16(0..<hs) { d, lanes in storeLanes(loadLanes(out + d, lanes) * inverse, out + d, lanes)
                    }
                    lse[r0 + i] = maximum[i] + Float(Foundation.log(Double(sum[i])))
                }
                r0 = r1
            }
        }
    }
}

/// Tiled attention backward for the (batch, key/value head) units of each thread.
struct TiledAttentionGradientGroups: ParallelJob {
    let dQuery: FloatPointer, dKey: FloatPointer, dValue: FloatPointer, dOutput: ConstFloatPointer
    let output: ConstFloatPointer, logSumExp: ConstFloatPointer
    let query: ConstFloatPointer, key: ConstFloatPointer, value: ConstFloatPointer
    let shape: AttentionShape
    let tiles: AttentionTiles
    let workspace: FloatPointer

    func run(thread: Int, of threadCount: Int) {
        let s = shape
        let (hs, group, scale) = (s.headSize, s.groupSize, s.scale)
        let (qrs, kvrs, ors) = (s.queryRowStride, s.kvRowStride, s.outputRowStride)
        let (br, bc) = (tiles.queries, tiles.keys)
        let probabilities = workspace + thread * CPUBackend.tileWorkspaceCount(tiles)
        let dScores = probabilities + br * bc
        let weighted = dScores + br * bc
        for unit in ThreadPool.chunk(s.batchSize * s.kvHeads, share: thread, of: threadCount) {
            let (b, g) = unit.quotientAndRemainder(dividingBy: s.kvHeads)
            let k = key + b * s.kvBatchStride + g * hs
            let v = value + b * s.kvBatchStride + g * hs
            let dk = dKey + b * s.kvBatchStride + g * hs
            let dv = dValue + b * s.kvBatchStride + g * hs
            for j in 0..<s.keyLength {
                (dk + j * kvrs).update(repeating: 0, count: hs)
                (dv + j * kvrs).update(repeating: 0, count: hs)
            }
            for h in g * group..<(g + 1) * group {
                let q = query + b * s.queryBatchStride + h * hs
                let dq = dQuery + b * s.queryBatchStride + h * hs
                let o = output + b * s.queryLength * ors + h * hs
                let dO = dOutput + b * s.queryLength * ors + h * hs
                let lse = logSumExp + (b * s.heads + h) * s.queryLength
                var r0 = 0
                while r0 < s.queryLength {
                    let r1 = min(s.queryLength, r0 + br)
                    let rows = r1 - r0
                    let keys = s.keyOffset + r1
                    // D = rowsum(dO ⊙ O) = Σⱼ P·dP, the softmax backward's subtrahend.
                    for i in 0..<rows {
                        var dot = Vec16()
                        forEachChunk16(0..<hs) { d, lanes in
                            dot.addProduct(
                                loadLanes(dO + (r0 + i) * ors + d, lanes), loadLanes(o + (r0 + i) * ors + d, lanes))
                        }
                        weighted[i] = dot.sum()
                    }
                    var c0 = 0
                    while c0 < keys {
                        let c1 = min(keys, c0 + bc)
                        let cols = c1 - c0
                        // P = exp(Q·Kᵀ/√HS − lse), 0 past the causal edge;  dP = dO·Vᵀ
                        CPUBackend.sgemm(
                            false, true, rows, cols, hs, scale, q + r0 * qrs, qrs, k + c0 * kvrs, kvrs, 0,
                            probabilities,
                            bc)
                        CPUBackend.sgemm(
                            false, true, rows, cols, hs, 1, dO + r0 * ors, ors, v + c0 * kvrs, kvrs, 0, dScores, bc)
                        for i in 0..<rows {
                            let p = probabilities + i * bc
                            let d = dScores + i * bc
                            let visible = min(cols, max(0, s.keyOffset + r0 + i + 1 - c0))
                            let (rowLSE, rowD) = (lse[r0 + i], weighted[i])
                            forEachChunk16(0..<visible) { j, lanes in
                                let e = exp16(loadLanes(p + j, lanes) - rowLSE)
                                storeLanes(e, p + j, lanes)
                                // dS = P ⊙ (dP − D) / √HS
                                storeLanes(e * (loadLanes(d + j, lanes) - rowD) * scale, d + j, lanes)
                            }
                            (p + visible).update(repeating: 0, count: cols - visible)
                            (d + visible).update(repeating: 0, count: cols - visible)
                        }
                        // dQ (+)= dS·K;  dK += dSᵀ·Q;  dV += Pᵀ·dO
                        CPUBackend.sgemm(
                            false, false, rows, hs, cols, 1, dScores, bc, k + c0 * kvrs, kvrs, c0 == 0 ? 0 : 1,
                            dq + r0 * qrs,
                            qrs)
                        CPUBackend.sgemm(
                            true, false, cols, hs, rows, 1, dScores, bc, q + r0 * qrs, qrs, 1, dk + c0 * kvrs, kvrs)
                        CPUBackend.sgemm(
                            true, false, cols, hs, rows, 1, probabilities, bc, dO + r0 * ors, ors, 1, dv + c0 * kvrs,
                            kvrs)
                        c0 = c1
                    }
                    r0 = r1
                }
            }
        }
    }
}
