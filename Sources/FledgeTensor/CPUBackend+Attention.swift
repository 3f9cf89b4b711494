// CPUBackend+Attention: causal (grouped-query) attention as per-head GEMMs on strided views of the fused
// QKV buffer, so nothing is copied. Query rows go in blocks of `attentionBlock`; block [r0, r1) multiplies
// only keys 0..<keyOffset + r1, which skips most of the masked upper triangle.
// Forward is parallel over (batch, head); backward over (batch, key/value head) so that heads sharing a
// key/value head accumulate dK and dV on one thread (no races, deterministic).

extension CPUBackend {
    /// Query rows per GEMM block.
    static let attentionBlock = 64

    public func attention(
        output: FloatPointer, probabilities: FloatPointer, query: ConstFloatPointer, key: ConstFloatPointer,
        value: ConstFloatPointer, shape: AttentionShape
    ) {
        let job = AttentionHeads(
            output: output, probabilities: probabilities, query: query, key: key, value: value, shape: shape)
        pool.parallelFor(shape.batchSize * shape.heads, job)
    }

    public func decodeAttention(
        output: FloatPointer, probabilities: FloatPointer, query: ConstFloatPointer, key: ConstFloatPointer,
        value: ConstFloatPointer, rows: UnsafeBufferPointer<DecodeRow>, shape: AttentionShape
    ) {
        // Fewer rows than threads: split each row's heads over the threads instead.
        guard rows.count >= pool.threadCount else {
            return decodeAttentionRowByRow(
                output: output, probabilities: probabilities, query: query, key: key, value: value, rows: rows,
                shape: shape)
        }
        let job = DecodeAttentionRows(
            output: output, probabilities: probabilities, query: query, key: key, value: value,
            rows: rows.baseAddress!, shape: shape)
        pool.parallelFor(rows.count, job)
    }

    public func attentionBackward(
        dQuery: FloatPointer, dKey: FloatPointer, dValue: FloatPointer, dOutput: ConstFloatPointer,
        probabilities: ConstFloatPointer, query: ConstFloatPointer, key: ConstFloatPointer,
        value: ConstFloatPointer, scratch: FloatPointer, shape: AttentionShape
    ) {
        let job = AttentionGradientGroups(
            dQuery: dQuery, dKey: dKey, dValue: dValue, dOutput: dOutput, probabilities: probabilities, query: query,
            key: key, value: value, scratch: scratch, shape: shape)
        pool.parallelFor(shape.batchSize * shape.kvHeads, job)
    }

    /// row[0..<count] = softmax(row[0..<count]).
    @inline(__always)
    static func softmaxInPlace(_ row: FloatPointer, count: Int) {
        let m = rowMaximum(row, count: count)
        var sum = Vec16()
        forEachChunk16(0..<count) { i, lanes in
            var e = exp16(loadLanes(row + i, lanes) - m)
            if lanes < 16 { e = e.replacing(with: 0, where: laneMask(lanes)) }
            sum += e
            storeLanes(e, row + i, lanes)
        }
        let inverse = 1 / sum.sum()
        forEachChunk16(0..<count) { i, lanes in storeLanes(loadLanes(row + i, lanes) * inverse, row + i, lanes) }
    }

    /// d[0..<count] = p ⊙ (d − Σ_{j<visible} p·d) · scale, with d holding dP on entry.
    @inline(__always)
    static func softmaxBackwardInPlace(
        _ d: FloatPointer, probabilities p: ConstFloatPointer, count: Int, visible: Int, scale: Float
    ) {
        var dot = Vec16()
        forEachChunk16(0..<visible) { i, lanes in dot.addProduct(loadLanes(p + i, lanes), loadLanes(d + i, lanes)) }
        let weighted = dot.sum()
        forEachChunk16(0..<count) { i, lanes in
            storeLanes(loadLanes(p + i, lanes) * (loadLanes(d + i, lanes) - weighted) * scale, d + i, lanes)
        }
    }
}

/// Attention forward for a range of (batch, head) units.
struct AttentionHeads: ParallelRangeJob {
    let output: FloatPointer, probabilities: FloatPointer
    let query: ConstFloatPointer, key: ConstFloatPointer, value: ConstFloatPointer
    let shape: AttentionShape

    func run(_ units: Range<Int>) {
        let s = shape
        let (hs, group, scale) = (s.headSize, s.groupSize, s.scale)
        let (qrs, kvrs, ors, prs) = (s.queryRowStride, s.kvRowStride, s.outputRowStride, s.probabilityRowStride)
        for unit in units {
            let (b, h) = unit.quotientAndRemainder(dividingBy: s.heads)
            let q = query + b * s.queryBatchStride + h * hs
            let k = key + b * s.kvBatchStride + (h / group) * hs
            let v = value + b * s.kvBatchStride + (h / group) * hs
            let p = probabilities + unit * s.queryLength * prs
            let o = output + b * s.queryLength * ors + h * hs
            if s.queryLength == 1 {
                // One query (decoding): dot products and a weighted sum in SIMD lanes; a BLAS call per head costs
                // more than its arithmetic at this size.
                singleQuery(q, k, v, p, o, visible: s.keyOffset + 1, scale: scale)
                continue
            }
            var r0 = 0
            while r0 < s.queryLength {
                let r1 = min(s.queryLength, r0 + CPUBackend.attentionBlock)
                let keys = s.keyOffset + r1
                // S = Q·Kᵀ/√HS for this block's rows and the keys they can see.
                CPUBackend.sgemm(
                    false, true, r1 - r0, keys, hs, scale, q + r0 * qrs, qrs, k, kvrs, 0, p + r0 * prs, prs)
                for t in r0..<r1 {
                    let row = p + t * prs
                    let visible = s.keyOffset + t + 1
                    CPUBackend.softmaxInPlace(row, count: visible)
                    (row + visible).update(repeating: 0, count: s.keyLength - visible)
                }
                // O = P·V
                CPUBackend.sgemm(false, false, r1 - r0, hs, keys, 1, p + r0 * prs, prs, v, kvrs, 0, o + r0 * ors, ors)
                r0 = r1
            }
        }
    }
}

extension AttentionHeads {
    /// One query row over `visible` keys: p = softmax(scale·q·Kᵀ) (zero past `visible`), o = p·V.
    @inline(__always)
    func singleQuery(
        _ q: ConstFloatPointer, _ k: ConstFloatPointer, _ v: ConstFloatPointer, _ p: FloatPointer, _ o: FloatPointer,
        visible: Int, scale: Float
    ) {
        let (hs, kvrs) = (shape.headSize, shape.kvRowStride)
        for j in 0..<visible {
            let key = k + j * kvrs
            var acc = Vec16()
            forEachChunk16(0..<hs) { i, lanes in acc.addProduct(loadLanes(q + i, lanes), loadLanes(key + i, lanes)) }
            p[j] = acc.sum() * scale
        }
        CPUBackend.softmaxInPlace(p, count: visible)
        (p + visible).update(repeating: 0, count: shape.keyLength - visible)
        forEachChunk16(0..<hs) { i, lanes in
            var acc = Vec16()
            for j in 0..<visible { acc.addProduct(Vec16(repeating: p[j]), loadLanes(v + j * kvrs + i, lanes)) }
            storeLanes(acc, o + i, lanes)
        }
    }
}

/// Decoding attention for a range of batch rows, every head of a row on one thread. Positions are the outer
/// loop, so each cached key and value row is read once, front to back (all heads of a position lie together).
struct DecodeAttentionRows: ParallelRangeJob {
    let output: FloatPointer, probabilities: FloatPointer
    let query: ConstFloatPointer, key: ConstFloatPointer, value: ConstFloatPointer
    let rows: UnsafePointer<DecodeRow>
    let shape: AttentionShape

    func run(_ block: Range<Int>) {
        let s = shape
        let (hs, group, scale, prs) = (s.headSize, s.groupSize, s.scale, s.probabilityRowStride)
        for r in block {
            let row = rows[r]
            let n = row.keys
            let q = query + r * s.queryBatchStride
            let k = key + row.cacheRow * s.kvBatchStride
            let v = value + row.cacheRow * s.kvBatchStride
            let p = probabilities + r * s.heads * prs
            let o = output + r * s.outputRowStride
            for j in 0..<n {
                let keyRow = k + j * s.kvRowStride
                for h in 0..<s.heads {
                    let (qh, kh) = (q + h * hs, keyRow + (h / group) * hs)
                    var acc = Vec16()
                    forEachChunk16(0..<hs) { i, lanes in
                        acc.addProduct(loadLanes(qh + i, lanes), loadLanes(kh + i, lanes))
                    }
                    p[h * prs + j] = acc.sum() * scale
                }
            }
            for h in 0..<s.heads { CPUBackend.softmaxInPlace(p + h * prs, count: n) }
            o.update(repeating: 0, count: s.heads * hs)
            for j in 0..<n {
                let valueRow = v + j * s.kvRowStride
                for h in 0..<s.heads {
                    let weight = Vec16(repeating: p[h * prs + j])
                    let (oh, vh) = (o + h * hs, valueRow + (h / group) * hs)
                    forEachChunk16(0..<hs) { i, lanes in
                        storeLanes(
                            loadLanes(oh + i, lanes).addingProduct(weight, loadLanes(vh + i, lanes)), oh + i, lanes)
                    }
                }
            }
        }
    }
}

/// Attention backward for a range of (batch, key/value head) units: the heads of a group accumulate their
/// dK and dV on one thread.
struct AttentionGradientGroups: ParallelRangeJob {
    let dQuery: FloatPointer, dKey: FloatPointer, dValue: FloatPointer, dOutput: ConstFloatPointer
    let probabilities: ConstFloatPointer, query: ConstFloatPointer, key: ConstFloatPointer, value: ConstFloatPointer
    let scratch: FloatPointer
    let shape: AttentionShape

    func run(_ units: Range<Int>) {
        let s = shape
        let (hs, group, scale) = (s.headSize, s.groupSize, s.scale)
        let (qrs, kvrs, ors, prs) = (s.queryRowStride, s.kvRowStride, s.outputRowStride, s.probabilityRowStride)
        for unit in units {
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
                let dO = dOutput + b * s.queryLength * ors + h * hs
                let p = probabilities + (b * s.heads + h) * s.queryLength * prs
                let dS = scratch + (b * s.heads + h) * s.queryLength * prs
                var r0 = 0
                while r0 < s.queryLength {
                    let r1 = min(s.queryLength, r0 + CPUBackend.attentionBlock)
                    let keys = s.keyOffset + r1
                    let rows = r1 - r0
                    // dP = dO·Vᵀ
                    CPUBackend.sgemm(false, true, rows, keys, hs, 1, dO + r0 * ors, ors, v, kvrs, 0, dS + r0 * prs, prs)
                    // dS = P ⊙ (dP − Σⱼ P·dP) / √HS (softmax backward); P is 0 past the causal edge.
                    for t in r0..<r1 {
                        CPUBackend.softmaxBackwardInPlace(
                            dS + t * prs, probabilities: p + t * prs, count: keys, visible: s.keyOffset + t + 1,
                            scale: scale)
                    }
                    // dQ = dS·K;  dK += dSᵀ·Q;  dV += Pᵀ·dO
                    CPUBackend.sgemm(
                        false, false, rows, hs, keys, 1, dS + r0 * prs, prs, k, kvrs, 0, dq + r0 * qrs, qrs)
                    CPUBackend.sgemm(true, false, keys, hs, rows, 1, dS + r0 * prs, prs, q + r0 * qrs, qrs, 1, dk, kvrs)
                    CPUBackend.sgemm(true, false, keys, hs, rows, 1, p + r0 * prs, prs, dO + r0 * ors, ors, 1, dv, kvrs)
                    r0 = r1
                }
            }
        }
    }
}
