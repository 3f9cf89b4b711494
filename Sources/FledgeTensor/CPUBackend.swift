// CPUBackend: the fast CPU kernels. GEMMs go to CBLAS (single-threaded, split over Fledge's ThreadPool);
// everything else is a parallel SIMD loop over unsafe pointers. Each kernel is tested against
// ReferenceBackend. Kernel families live in CPUBackend+<Family>.swift; this file has GEMM and linear.

import COpenBLAS

/// Fast CPU kernels: CBLAS for matrix products, SIMD loops on a persistent thread pool for the rest.
public final class CPUBackend: Backend, @unchecked Sendable {
    public let name = "cpu"
    /// The pool every kernel runs on.
    public let pool: ThreadPool
    /// Per-thread partial sums for reductions (padded to a cache line per thread).
    let partials: Storage<Double>

    /// Creates the backend with `threadCount` threads (default: the core count); BLAS is set to one thread.
    public init(threadCount: Int = ThreadPool.coreCount) {
        pool = ThreadPool(threadCount: threadCount)
        partials = try! Storage<Double>(count: max(1, threadCount) * 8)
        _ = BLAS.libraryName  // load and configure the BLAS before the first product
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

    public func linear(
        output: FloatPointer, input: ConstFloatPointer, weight: ConstFloatPointer, bias: ConstFloatPointer?,
        rows: Int, inFeatures: Int, outFeatures: Int
    ) {
        // Few rows (decoding): split the output features instead, so every thread streams its share of the
        // weights (a matrix-vector product is bound by memory bandwidth, which one thread cannot fill).
        if rows < 8 * pool.threadCount && pool.threadCount > 1 && outFeatures >= 64 * pool.threadCount {
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
