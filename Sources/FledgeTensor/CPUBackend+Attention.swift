// CPUBackend+Attention: causal (grouped-query) attention that writes its probabilities, for decoding with a KV
// cache (without one, the attention is CPUBackend+TiledAttention), as per-head GEMMs on strided views of the
// fused QKV buffer or the cache, so nothing is copied. Query rows go in blocks of `attentionBlock`; block
// [r0, r1) multiplies only keys 0..<keyOffset + r1, which skips most of the masked upper triangle. Parallel over
// (batch, head).

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
                // more than its arithmetic at this size. The same arithmetic as `decodeAttention`'s rows.
                let visible = s.keyOffset + 1
                CPUBackend.decodeHeads(
                    query: q - h * hs, key: k - (h / group) * hs, value: v - (h / group) * hs,
                    probabilities: p - h * prs,
                    output: o - h * hs, heads: h..<(h + 1), keys: visible, shape: s)
                (p + visible).update(repeating: 0, count: s.keyLength - visible)
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

extension CPUBackend {
    /// One query row's attention for the heads in `heads` over its first `keys` cached positions:
    /// p_h = softmax(scale·q_h·K_hᵀ), o_h = p_h·V_h. Positions are the outer loop, so each cached key and value
    /// row is read once, front to back (all heads of a position lie together). `query` and `output` point at
    /// the row's head 0, `key` and `value` at its position 0, `probabilities` at head 0's row (heads
    /// `probabilityRowStride` apart). Decoding a row alone and in a batch runs exactly this, so a sequence's
    /// tokens do not depend on what else is decoded beside it.
    @inline(__always)
    static func decodeHeads(
        query q: ConstFloatPointer, key k: ConstFloatPointer, value v: ConstFloatPointer,
        probabilities p: FloatPointer, output o: FloatPointer, heads: Range<Int>, keys n: Int, shape s: AttentionShape
    ) {
        let (hs, group, scale, prs, kvrs) = (s.headSize, s.groupSize, s.scale, s.probabilityRowStride, s.kvRowStride)
        if heads.count == 1 {
            // One head: pointers fixed once; each output chunk sums over the positions in a register (the same
            // sums in the same order as the general path below, without storing the partial sums).
            let h = heads.lowerBound
            let (qh, kh, vh) = (q + h * hs, k + (h / group) * hs, v + (h / group) * hs)
            let (ph, oh) = (p + h * prs, o + h * hs)
            for j in 0..<n {
                var acc = Vec16()
                let keyRow = kh + j * kvrs
                forEachChunk16(0..<hs) { i, lanes in
                    acc.addProduct(loadLanes(qh + i, lanes), loadLanes(keyRow + i, lanes))
                }
                ph[j] = acc.sum() * scale
            }
            softmaxInPlace(ph, count: n)
            forEachChunk16(0..<hs) { i, lanes in
                var acc = Vec16()
                for j in 0..<n { acc.addProduct(Vec16(repeating: ph[j]), loadLanes(vh + j * kvrs + i, lanes)) }
                storeLanes(acc, oh + i, lanes)
            }
            return
        }
        // Heads by key/value group, so a group's key and value rows are found once per position, not per head.
        let groups = (heads.lowerBound / group)...((heads.upperBound - 1) / group)
        for j in 0..<n {
            let keyRow = k + j * kvrs
            for g in groups {
                let kh = keyRow + g * hs
                for h in max(g * group, heads.lowerBound)..<min((g + 1) * group, heads.upperBound) {
                    let qh = q + h * hs
                    var acc = Vec16()
                    forEachChunk16(0..<hs) { i, lanes in
                        acc.addProduct(loadLanes(qh + i, lanes), loadLanes(kh + i, lanes))
                    }
                    p[h * prs + j] = acc.sum() * scale
                }
            }
        }
        for h in heads {
            softmaxInPlace(p + h * prs, count: n)
            (o + h * hs).update(repeating: 0, count: hs)
        }
        for j in 0..<n {
            let valueRow = v + j * kvrs
            for g in groups {
                let vh = valueRow + g * hs
                for h in max(g * group, heads.lowerBound)..<min((g + 1) * group, heads.upperBound) {
                    let weight = Vec16(repeating: p[h * prs + j])
                    let oh = o + h * hs
                    forEachChunk16(0..<hs) { i, lanes in
                        storeLanes(
                            loadLanes(oh + i, lanes).addingProduct(weight, loadLanes(vh + i, lanes)), oh + i, lanes)
                    }
                }
            }
        }
    }
}

/// Decoding attention for a range of batch rows, every head of a row on one thread (`decodeHeads`).
struct DecodeAttentionRows: ParallelRangeJob {
    let output: FloatPointer, probabilities: FloatPointer
    let query: ConstFloatPointer, key: ConstFloatPointer, value: ConstFloatPointer
    let rows: UnsafePointer<DecodeRow>
    let shape: AttentionShape

    func run(_ block: Range<Int>) {
        let s = shape
        for r in block {
            let row = rows[r]
            CPUBackend.decodeHeads(
                query: query + r * s.queryBatchStride, key: key + row.cacheRow * s.kvBatchStride,
                value: value + row.cacheRow * s.kvBatchStride,
                probabilities: probabilities + r * s.heads * s.probabilityRowStride,
                output: output + r * s.outputRowStride, heads: 0..<s.heads, keys: row.keys, shape: s)
        }
    }
}
