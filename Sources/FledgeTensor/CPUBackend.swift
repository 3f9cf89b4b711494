// CPUBackend: the fast CPU kernels. GEMMs go to CBLAS (single-threaded, split over Fledge's ThreadPool);
// everything else is a parallel SIMD loop over unsafe pointers. Each kernel is tested against
// ReferenceBackend. Kernel families live in CPUBackend+<Family>.swift; this file has GEMM and linear.

import COpenBLAS
import Foundation

/// Fast CPU kernels: CBLAS for matrix products, SIMD loops on a persistent thread pool for the rest.
public final class CPUBackend: HostMemoryBackend, @unchecked Sendable {
    public let name = "cpu"
    /// The pool every kernel runs on.
    public let pool: ThreadPool
    /// Per-thread partial sums for reductions (padded to a cache line per thread).
    let partials: Storage<Double>
    /// The block and tile sizes of `tiledAttention`, and its per-thread tiles.
    public let attentionTiles: AttentionTiles
    let tileWorkspace: Storage<Float>
    /// Lanes per slice in the few-rows linear kernel: 8, or 16 where the build and the CPU have AVX-512
    /// (`nativeVectorLanes`).
    public let vectorLanes: Int
    /// The backend's own scratch (`partials`, `tileWorkspace`) serves one kernel at a time: threads that share a
    /// backend (tests in parallel, a server beside a benchmark) take turns for it. A kernel called while the
    /// pool is busy runs its shares inline on the calling thread, in the same slots as the running region's.
    private let scratchLock = NSLock()

    /// 16 where the build targets AVX-512 and the CPU has it (and the OS saves its registers), else 8. A 16-lane
    /// vector is then one register; in a build for AVX2 it would be two, and the kernel's accumulators would
    /// spill.
    public static let nativeVectorLanes = fledge_cpu_has_avx512() != 0 ? 16 : 8

    /// Creates the backend with `threadCount` threads (default: the core count); BLAS is set to one thread.
    /// `vectorLanes` (8 or 16; default `nativeVectorLanes`) sets the few-rows linear kernel's slice width: the
    /// sums of its outputs are grouped by it, so results differ in the last bits between 8 and 16.
    public init(
        threadCount: Int = ThreadPool.coreCount, attentionTiles: AttentionTiles = .standard,
        vectorLanes: Int = CPUBackend.nativeVectorLanes
    ) {
        precondition(vectorLanes == 8 || vectorLanes == 16, "vectorLanes is 8 or 16, not \(vectorLanes)")
        self.vectorLanes = vectorLanes
        pool = ThreadPool(threadCount: threadCount)
        partials = try! Storage<Double>(count: max(1, threadCount) * 8)
        self.attentionTiles = attentionTiles
        tileWorkspace = try! Storage<Float>(count: pool.threadCount * CPUBackend.tileWorkspaceCount(attentionTiles))
        _ = BLAS.libraryName  // load and configure the BLAS before the first product
    }

    /// Runs `body` holding the backend's scratch.
    @inline(__always)
    func withScratch<R>(_ body: () -> R) -> R {
        scratchLock.lock()
        defer { scratchLock.unlock() }
        return body()
    }

    /// Threads used by every kernel.
    public var threadCount: Int { pool.threadCount }

    // MARK: GEMM

    /// One CBLAS call on the calling thread.
    @inline(__always)
    static func sgemm(
        _ transposeA: Bool, _ transposeB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float,
        _ a: ConstFloatPointer, _ lda: Int, _ b: ConstFloatPointer, _ ldb: Int, _ beta: Float,
        _ c: FloatPointer, _ ldc: Int
    ) {
        guard m > 0, n > 0 else { return }
        BLAS.sgemm(
            transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
            Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    public func gemm(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float,
        a: ConstFloatPointer, lda: Int, b: ConstFloatPointer, ldb: Int, beta: Float, c: FloatPointer, ldc: Int
    ) {
        // Split the larger of M and N into one block per thread; each block is an independent GEMM.
        let work = m * n * k
        if pool.threadCount == 1 || work < 1 << 18 {
            Self.sgemm(transposeA, transposeB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
            return
        }
        let job = GEMMBlocks(
            transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b,
            ldb: ldb, beta: beta, c: c, ldc: ldc)
        pool.parallelFor(max(m, n), alignment: 16, job)
    }

    // MARK: Linear

    /// Most rows for which `linear` uses its own small-rows kernel instead of the BLAS.
    static let smallRowsLimit = 64

    public func linear(
        output: FloatPointer, input: ConstFloatPointer, weight: ConstFloatPointer, bias: ConstFloatPointer?,
        rows: Int, inFeatures: Int, outFeatures: Int
    ) {
        // Few rows (decoding, a server's batch of sequences): split the output features, so every thread streams
        // only its share of the weights; split by rows, each thread would read (and the BLAS pack) all of them,
        // which costs more than the arithmetic when rows are few.
        if rows <= CPUBackend.smallRowsLimit {
            // Up to 64 rows: each slice of a weight row is loaded once for 4 input rows, with no copy of the
            // weights first (the BLAS packs the whole matrix per call), and the next weights are prefetched.
            // With AVX-512, 16-lane slices: half the multiply-add instructions.
            if vectorLanes == 16 {
                smallRowsLinear(SIMD16<Float>.self, output, input, weight, bias, rows, inFeatures, outFeatures)
            } else {
                smallRowsLinear(SIMD8<Float>.self, output, input, weight, bias, rows, inFeatures, outFeatures)
            }
            return
        }
        if rows < 32 * pool.threadCount && pool.threadCount > 1 && outFeatures >= 64 * pool.threadCount {
            let job = LinearColumns(
                output: output, input: input, weight: weight, bias: bias, rows: rows, inFeatures: inFeatures,
                outFeatures: outFeatures)
            pool.parallelFor(outFeatures, alignment: 16, job)
            return
        }
        let job = LinearRows(
            output: output, input: input, weight: weight, bias: bias, inFeatures: inFeatures, outFeatures: outFeatures)
        pool.parallelFor(rows, alignment: 8, job)
    }

    /// `linear` by `SmallRowsLinear` on `V`-wide slices, the output features split across the threads.
    private func smallRowsLinear<V: SIMD>(
        _: V.Type, _ output: FloatPointer, _ input: ConstFloatPointer, _ weight: ConstFloatPointer,
        _ bias: ConstFloatPointer?, _ rows: Int, _ inFeatures: Int, _ outFeatures: Int
    ) where V.Scalar == Float {
        let job = SmallRowsLinear<V>(
            output: output, input: input, weight: weight, bias: bias, rows: rows, inFeatures: inFeatures,
            outFeatures: outFeatures)
        pool.parallelFor(outFeatures, alignment: 12, job)
    }

    public func linearBackward(
        dInput: FloatPointer?, accumulateInput: Bool, dWeight: FloatPointer, dBias: FloatPointer?,
        dOutput: ConstFloatPointer, input: ConstFloatPointer, weight: ConstFloatPointer,
        rows: Int, inFeatures: Int, outFeatures: Int
    ) {
        let (c, oc) = (inFeatures, outFeatures)
        if let dInput {
            // dInput (rows, C) = dOut (rows, OC) · W (OC, C)
            gemm(
                transposeA: false, transposeB: false, m: rows, n: c, k: oc, alpha: 1, a: dOutput, lda: oc,
                b: weight, ldb: c, beta: accumulateInput ? 1 : 0, c: dInput, ldc: c)
        }
        // dW (OC, C) += dOutᵀ (OC, rows) · input (rows, C)
        gemm(
            transposeA: true, transposeB: false, m: oc, n: c, k: rows, alpha: 1, a: dOutput, lda: oc,
            b: input, ldb: c, beta: 1, c: dWeight, ldc: c)
        if let dBias {
            // Column sums of dOut, each thread owning a range of columns (deterministic, no races).
            pool.parallelFor(
                oc, alignment: 16, minimumPerThread: 64,
                ColumnSums(sums: dBias, matrix: dOutput, rows: rows, columns: oc))
        }
    }
}

/// C = alpha·op(A)·op(B) + beta·C, one block of rows of C (when M ≥ N) or of columns per thread.
struct GEMMBlocks: ParallelRangeJob {
    let transposeA: Bool, transposeB: Bool
    let m: Int, n: Int, k: Int
    let alpha: Float
    let a: ConstFloatPointer, lda: Int
    let b: ConstFloatPointer, ldb: Int
    let beta: Float
    let c: FloatPointer, ldc: Int

    func run(_ block: Range<Int>) {
        if m >= n {
            let aBlock = transposeA ? a + block.lowerBound : a + block.lowerBound * lda
            CPUBackend.sgemm(
                transposeA, transposeB, block.count, n, k, alpha, aBlock, lda, b, ldb, beta, c + block.lowerBound * ldc,
                ldc)
        } else {
            let bBlock = transposeB ? b + block.lowerBound * ldb : b + block.lowerBound
            CPUBackend.sgemm(
                transposeA, transposeB, m, block.count, k, alpha, a, lda, bBlock, ldb, beta, c + block.lowerBound, ldc)
        }
    }
}

/// out = input · weightᵀ + bias for a block of rows.
struct LinearRows: ParallelRangeJob {
    let output: FloatPointer, input: ConstFloatPointer, weight: ConstFloatPointer, bias: ConstFloatPointer?
    let inFeatures: Int, outFeatures: Int

    func run(_ block: Range<Int>) {
        let (c, oc) = (inFeatures, outFeatures)
        let out = output + block.lowerBound * oc
        if let bias {
            for r in 0..<block.count { (out + r * oc).update(from: bias, count: oc) }
        }
        CPUBackend.sgemm(
            false, true, block.count, oc, c, 1, input + block.lowerBound * c, c, weight, c, bias == nil ? 0 : 1, out, oc
        )
    }
}

/// output[:, block] = input · W[block, :]ᵀ (+ bias[block]) for a block of output features.
struct LinearColumns: ParallelRangeJob {
    let output: FloatPointer, input: ConstFloatPointer, weight: ConstFloatPointer, bias: ConstFloatPointer?
    let rows: Int, inFeatures: Int, outFeatures: Int

    func run(_ block: Range<Int>) {
        let (c, oc) = (inFeatures, outFeatures)
        let out = output + block.lowerBound
        if let bias {
            for r in 0..<rows { (out + r * oc).update(from: bias + block.lowerBound, count: block.count) }
        }
        CPUBackend.sgemm(
            false, true, rows, block.count, c, 1, input, c, weight + block.lowerBound * c, c, bias == nil ? 0 : 1, out,
            oc)
    }
}

/// output = input · weightᵀ + bias for a few rows (1–64) and a range of output features, in blocks of 4 rows ×
/// 3 features: 12 accumulators, 3 weight slices and 1 input slice fill the 16 AVX2 registers (with AVX-512, 16 of
/// the 32, each twice as wide; with inputs of 512 and more, 4 rows × 6 features, 24 of the 32). The 1–3 rows left
/// over share one more pass (a 3×3, 2×3 or 1×3 block), not one pass each: a single row's pass does 3 multiply-adds
/// per 4 loads, so 15 rows as 3 blocks and 3 single rows cost more than 16 rows as 4 blocks. Each output is
/// computed the same way wherever it falls (any of these blocks, or alone): `V`'s lanes (8, or 16 with AVX-512)
/// over the full slices in order, the k mod lanes rest added to lane 0, then the lanes summed. A row's result
/// therefore does not depend on the other rows of the batch (a server's sequence decodes exactly as it would
/// alone).
struct SmallRowsLinear<V: SIMD>: ParallelRangeJob where V.Scalar == Float {
    let output: FloatPointer, input: ConstFloatPointer, weight: ConstFloatPointer, bias: ConstFloatPointer?
    let rows: Int, inFeatures: Int, outFeatures: Int

    /// How many groups of weight rows ahead the prefetch reads: with 16 lanes a group's arithmetic takes half the
    /// time, too little to cover the next group's loads from memory, so the one after it is fetched.
    static var groupsAhead: Int { V.scalarCount >= 16 ? 2 : 1 }

    func run(_ block: Range<Int>) {
        var j = block.lowerBound
        // With 16 lanes and long input rows, groups of six weight rows: each input slice is then loaded once for
        // six outputs. (16 input rows of 1,024 are 64 KB, more than L1: with three outputs a group they came from
        // L2 twice as often.) Each output is computed the same way in either group.
        let six = V.scalarCount >= 16 && inFeatures >= 512 && rows >= 4
        while six && j + 6 <= block.upperBound {
            group(j, outputs: 6, end: block.upperBound)
            j += 6
        }
        while j + 3 <= block.upperBound {
            group(j, outputs: 3, end: block.upperBound)
            j += 3
        }
        while j < block.upperBound {
            for m in 0..<rows { single(m, j) }
            j += 1
        }
    }

    /// Outputs j..<j+outputs (3 or 6) for every row: blocks of 4 rows, then one block of the 1–3 rows left, each a
    /// pass over the group's weight rows.
    @inline(__always)
    private func group(_ j: Int, outputs: Int, end: Int) {
        let passes = (rows + 3) / 4
        // The weight rows `groupsAhead` groups on are read from memory while these are multiplied by every input
        // row: their cache lines are prefetched a few per loop iteration, spread over all the passes, so the loads
        // overlap the arithmetic. (All at once, most of them were dropped and the loads came after it.)
        var ahead = Prefetch(
            next: UnsafeRawPointer(weight + (j + outputs * Self.groupsAhead) * inFeatures),
            lines: j + outputs * (Self.groupsAhead + 1) <= end ? (outputs * inFeatures * 4 + 63) / 64 : 0)
        var (m, pass) = (0, 0)
        while m + 4 <= rows {
            pass += 1
            ahead.pass(to: ahead.lines * pass / passes, iterations: inFeatures / V.scalarCount)
            if outputs == 6 { fourRowsSixOutputs(m, j, &ahead) } else { rowBlock(m, j, FourRows.self, &ahead) }
            m += 4
        }
        if m < rows {
            ahead.pass(to: ahead.lines, iterations: inFeatures / V.scalarCount)
            leftOverRows(m, j, &ahead)
            if outputs == 6 { leftOverRows(m, j + 3, &ahead) }
        }
    }

    /// Outputs (m..<rows, j..<j+3) for the 1–3 rows after the last block of four.
    @inline(__always)
    private func leftOverRows(_ m: Int, _ j: Int, _ ahead: inout Prefetch) {
        switch rows - m {
        case 3: rowBlock(m, j, ThreeRows.self, &ahead)
        case 2: rowBlock(m, j, TwoRows.self, &ahead)
        default: rowBlock(m, j, OneRow.self, &ahead)
        }
    }

    /// Outputs (m..<m+4, j..<j+6): 24 accumulators, which only AVX-512's 32 registers hold.
    @inline(__always)
    private func fourRowsSixOutputs(_ m: Int, _ j: Int, _ ahead: inout Prefetch) {
        let k = inFeatures
        let (x0, x1, x2, x3) = (input + m * k, input + (m + 1) * k, input + (m + 2) * k, input + (m + 3) * k)
        let w = weight + j * k
        var a00 = V(), a01 = V(), a02 = V(), a03 = V(), a04 = V(), a05 = V()
        var a10 = V(), a11 = V(), a12 = V(), a13 = V(), a14 = V(), a15 = V()
        var a20 = V(), a21 = V(), a22 = V(), a23 = V(), a24 = V(), a25 = V()
        var a30 = V(), a31 = V(), a32 = V(), a33 = V(), a34 = V(), a35 = V()
        let full = k & ~(V.scalarCount - 1)
        var i = 0
        while i < full {
            if ahead.done < ahead.target { ahead.step() }
            let v0 = load(w + i), v1 = load(w + k + i), v2 = load(w + 2 * k + i)
            let v3 = load(w + 3 * k + i), v4 = load(w + 4 * k + i), v5 = load(w + 5 * k + i)
            let (u0, u1, u2, u3) = (load(x0 + i), load(x1 + i), load(x2 + i), load(x3 + i))
            Self.addProducts(u0, v0, v1, v2, &a00, &a01, &a02)
            Self.addProducts(u0, v3, v4, v5, &a03, &a04, &a05)
            Self.addProducts(u1, v0, v1, v2, &a10, &a11, &a12)
            Self.addProducts(u1, v3, v4, v5, &a13, &a14, &a15)
            Self.addProducts(u2, v0, v1, v2, &a20, &a21, &a22)
            Self.addProducts(u2, v3, v4, v5, &a23, &a24, &a25)
            Self.addProducts(u3, v0, v1, v2, &a30, &a31, &a32)
            Self.addProducts(u3, v3, v4, v5, &a33, &a34, &a35)
            i += V.scalarCount
        }
        finish(a00, a01, a02, row: m, j)
        finish(a03, a04, a05, row: m, j + 3)
        finish(a10, a11, a12, row: m + 1, j)
        finish(a13, a14, a15, row: m + 1, j + 3)
        finish(a20, a21, a22, row: m + 2, j)
        finish(a23, a24, a25, row: m + 2, j + 3)
        finish(a30, a31, a32, row: m + 3, j)
        finish(a33, a34, a35, row: m + 3, j + 3)
    }

    @inline(__always)
    private func load(_ p: ConstFloatPointer) -> V { UnsafeRawPointer(p).loadUnaligned(as: V.self) }

    /// The cache lines of the next weight rows, and how many of them should be prefetched by the end of this pass.
    struct Prefetch {
        let next: UnsafeRawPointer
        let lines: Int
        private(set) var done = 0
        private(set) var target = 0
        private var perIteration = 1

        init(next: UnsafeRawPointer, lines: Int) {
            (self.next, self.lines) = (next, lines)
        }

        /// Starts a pass of `iterations` loop iterations that should bring the prefetched lines to `target`: the
        /// first iterations issue a line or two each (one division here, none in the loop).
        @inline(__always)
        mutating func pass(to target: Int, iterations: Int) {
            self.target = target
            perIteration = max(1, (target - done + iterations - 1) / max(1, iterations))
        }

        /// Issues this iteration's lines.
        @inline(__always)
        mutating func step() {
            var n = perIteration
            while n > 0 && done < target {
                fledge_prefetch(next + done * 64)
                done += 1
                n -= 1
            }
        }
    }

    /// Σ x[t]·w[t] over the last k mod (lanes) entries.
    @inline(__always)
    private func rest(_ x: ConstFloatPointer, _ w: ConstFloatPointer) -> Float {
        var sum: Float = 0
        for t in (inFeatures & ~(V.scalarCount - 1))..<inFeatures { sum += x[t] * w[t] }
        return sum
    }

    /// Writes lanes + rest + bias for output (m, j).
    @inline(__always)
    private func finish(_ lanes: V, _ m: Int, _ j: Int) {
        var lanes = lanes
        let k = inFeatures
        if k & (V.scalarCount - 1) != 0 { lanes[0] += rest(input + m * k, weight + j * k) }
        output[m * outFeatures + j] = lanes.sum() + (bias?[j] ?? 0)
    }

    /// Outputs (m..<m+r, j..<j+3) for r = `Rows.count` (1–4). A type, not a value: each count gets its own
    /// specialised copy, whose row tests below are constants (as a value, the tests stayed in the loop: about a quarter slower).
    @inline(__always)
    private func rowBlock<Rows: BlockRows>(_ m: Int, _ j: Int, _: Rows.Type, _ ahead: inout Prefetch) {
        let rowCount = Rows.count
        let k = inFeatures
        // The pointers of rows past the block's last are formed but never read (clamping them changed the 4-row
        // copy's register allocation).
        let (x0, x1, x2, x3) = (input + m * k, input + (m + 1) * k, input + (m + 2) * k, input + (m + 3) * k)
        let (w0, w1, w2) = (weight + j * k, weight + (j + 1) * k, weight + (j + 2) * k)
        var a00 = V(), a01 = V(), a02 = V(), a10 = V(), a11 = V(), a12 = V()
        var a20 = V(), a21 = V(), a22 = V(), a30 = V(), a31 = V(), a32 = V()
        // Full slices only, so the loop has no lane test and its vectors stay in registers.
        let full = k & ~(V.scalarCount - 1)
        var i = 0
        while i < full {
            if ahead.done < ahead.target { ahead.step() }
            let v0 = load(w0 + i), v1 = load(w1 + i), v2 = load(w2 + i)
            Self.addProducts(load(x0 + i), v0, v1, v2, &a00, &a01, &a02)
            if rowCount > 1 { Self.addProducts(load(x1 + i), v0, v1, v2, &a10, &a11, &a12) }
            if rowCount > 2 { Self.addProducts(load(x2 + i), v0, v1, v2, &a20, &a21, &a22) }
            if rowCount > 3 { Self.addProducts(load(x3 + i), v0, v1, v2, &a30, &a31, &a32) }
            i += V.scalarCount
        }
        finish(a00, a01, a02, row: m, j)
        if rowCount > 1 { finish(a10, a11, a12, row: m + 1, j) }
        if rowCount > 2 { finish(a20, a21, a22, row: m + 2, j) }
        if rowCount > 3 { finish(a30, a31, a32, row: m + 3, j) }
    }

    /// a0, a1, a2 += x · v0, v1, v2: one input slice against the three weight slices.
    @inline(__always)
    private static func addProducts(_ x: V, _ v0: V, _ v1: V, _ v2: V, _ a0: inout V, _ a1: inout V, _ a2: inout V) {
        a0.addProduct(x, v0)
        a1.addProduct(x, v1)
        a2.addProduct(x, v2)
    }

    /// Writes outputs (m, j), (m, j + 1), (m, j + 2).
    @inline(__always)
    private func finish(_ a0: V, _ a1: V, _ a2: V, row m: Int, _ j: Int) {
        finish(a0, m, j)
        finish(a1, m, j + 1)
        finish(a2, m, j + 2)
    }

    @inline(__always)
    private func single(_ m: Int, _ j: Int) {
        let k = inFeatures
        let (x, w) = (input + m * k, weight + j * k)
        var a = V()
        let full = k & ~(V.scalarCount - 1)
        var i = 0
        while i < full {
            a.addProduct(load(x + i), load(w + i))
            i += V.scalarCount
        }
        finish(a, m, j)
    }
}

/// The number of input rows in one of `SmallRowsLinear`'s blocks, as a type.
protocol BlockRows { static var count: Int { get } }
enum OneRow: BlockRows { static var count: Int { 1 } }
enum TwoRows: BlockRows { static var count: Int { 2 } }
enum ThreeRows: BlockRows { static var count: Int { 3 } }
enum FourRows: BlockRows { static var count: Int { 4 } }

/// sums[j] += Σ_r matrix[r, j] for a range of columns j.
struct ColumnSums: ParallelRangeJob {
    let sums: FloatPointer, matrix: ConstFloatPointer
    let rows: Int, columns: Int

    func run(_ cols: Range<Int>) {
        forEachChunk16(cols) { j, lanes in
            var acc = Vec16()
            for r in 0..<rows { acc += loadLanes(matrix + r * columns + j, lanes) }
            storeLanes(loadLanes(sums + j, lanes) + acc, sums + j, lanes)
        }
    }
}
