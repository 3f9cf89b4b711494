// OpaqueMemoryBackend: a backend whose memory the host cannot address, the way a GPU's cannot be. It proves
// that the model, the optimizer, decoding and training reach their buffers only through backend calls.
//
// Each allocation gets an address range in a reservation of virtual memory that is mapped PROT_NONE: any host
// read or write of such an address (a model that dereferenced a parameter, a logit or a cached key) stops the
// process with SIGSEGV. The values live in separate host memory that only this backend's own kernels reach:
// every kernel translates its addresses to that memory and hands the arithmetic to `inner` (the CPU or the
// reference backend), so a run on it must give the inner backend's numbers exactly. An address that is not
// inside one of its allocations (a host pointer handed to a kernel) stops the test with its name.

import FledgeTensor
import Foundation

public final class OpaqueMemoryBackend: Backend, @unchecked Sendable {
    /// The backend that does the arithmetic on the translated addresses.
    public let inner: any HostMemoryBackend
    public var name: String { "opaque(\(inner.name))" }
    public var sharesHostMemory: Bool { false }

    private struct Allocation {
        let start: UInt  // in the reservation
        let bytes: Int
        let memory: UnsafeMutableRawPointer  // the host memory behind it
    }

    private let reservation: UnsafeMutableRawPointer
    private let reservationBytes: Int
    private var next = 0
    private var allocations: [Allocation] = []  // sorted by start: addresses only grow
    private let lock = NSLock()
    /// Bytes copied to and from the host, and calls that did (for tests that count transfers).
    public private(set) var bytesToHost = 0
    public private(set) var bytesFromHost = 0

    /// Reserves `reservationBytes` of inaccessible address space for this backend's allocations.
    public init(inner: any HostMemoryBackend, reservationBytes: Int = 1 << 36) {
        self.inner = inner
        self.reservationBytes = reservationBytes
        let mapped = mmap(nil, reservationBytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        guard let mapped, mapped != MAP_FAILED else {
            fatalError("cannot reserve \(reservationBytes) bytes of address space")
        }
        reservation = mapped
    }

    deinit {
        for allocation in allocations { free(allocation.memory) }
        munmap(reservation, reservationBytes)
    }

    /// Whether `address` lies in this backend's inaccessible reservation.
    public func isOpaque(_ address: UnsafeRawPointer) -> Bool {
        let a = UInt(bitPattern: address)
        let base = UInt(bitPattern: reservation)
        return a >= base && a < base + UInt(reservationBytes)
    }

    /// Live allocations.
    public var allocationCount: Int { lock.withLock { allocations.count } }

    public func allocate(bytes: Int) throws(TensorError) -> UnsafeMutableRawPointer {
        let size = max(1, bytes)
        let raw = try allocateAlignedZeroed(bytes: size)  // the hidden host memory behind the handle
        lock.lock()
        defer { lock.unlock() }
        let rounded = (size + 63) / 64 * 64
        guard next + rounded <= reservationBytes else {
            free(raw)
            throw .outOfMemory(bytes: bytes)
        }
        let start = UInt(bitPattern: reservation) + UInt(next)
        next += rounded
        allocations.append(Allocation(start: start, bytes: size, memory: raw))
        return UnsafeMutableRawPointer(bitPattern: start)!
    }

    public func deallocate(_ memory: UnsafeMutableRawPointer) {
        lock.withLock {
            guard let i = allocations.firstIndex(where: { $0.start == UInt(bitPattern: memory) }) else {
                fatalError("\(name): \(memory) was not allocated here")
            }
            free(allocations[i].memory)
            allocations.remove(at: i)
        }
    }

    /// The host memory behind `address` (which may point up to one past the end of its allocation).
    private func translate(_ address: UnsafeRawPointer, _ what: StaticString) -> UnsafeMutableRawPointer {
        let a = UInt(bitPattern: address)
        return lock.withLock {
            var (low, high) = (0, allocations.count)  // the last allocation starting at or before a
            while low < high {
                let mid = (low + high) / 2
                if allocations[mid].start <= a { low = mid + 1 } else { high = mid }
            }
            guard low > 0, a <= allocations[low - 1].start + UInt(allocations[low - 1].bytes) else {
                fatalError("\(name): the \(what) address \(address) is not in this backend's memory")
            }
            let allocation = allocations[low - 1]
            return allocation.memory + Int(a - allocation.start)
        }
    }

    private func r<T>(_ p: UnsafeMutablePointer<T>, _ what: StaticString) -> UnsafeMutablePointer<T> {
        translate(p, what).assumingMemoryBound(to: T.self)
    }
    private func r<T>(_ p: UnsafePointer<T>, _ what: StaticString) -> UnsafePointer<T> {
        UnsafePointer(translate(p, what).assumingMemoryBound(to: T.self))
    }
    private func r<T>(_ p: UnsafeMutablePointer<T>?, _ what: StaticString) -> UnsafeMutablePointer<T>? {
        p.map { r($0, what) }
    }
    private func r<T>(_ p: UnsafePointer<T>?, _ what: StaticString) -> UnsafePointer<T>? { p.map { r($0, what) } }

    // MARK: Moving data (the only way the host reaches this memory)

    public func zero(_ memory: UnsafeMutableRawPointer, bytes: Int) {
        memset(translate(memory, "zeroed"), 0, bytes)
    }

    public func copyToHost(_ destination: UnsafeMutableRawPointer, from source: UnsafeRawPointer, bytes: Int) {
        precondition(!isOpaque(destination), "\(name): copyToHost's destination must be host memory")
        destination.copyMemory(from: translate(source, "copied-to-host"), byteCount: bytes)
        lock.withLock { bytesToHost += bytes }
    }

    public func copyFromHost(_ destination: UnsafeMutableRawPointer, from source: UnsafeRawPointer, bytes: Int) {
        precondition(!isOpaque(source), "\(name): copyFromHost's source must be host memory")
        translate(destination, "copied-from-host").copyMemory(from: source, byteCount: bytes)
        lock.withLock { bytesFromHost += bytes }
    }

    public func copy(_ destination: FloatPointer, from source: ConstFloatPointer, count: Int) {
        inner.copy(r(destination, "copy destination"), from: r(source, "copy source"), count: count)
    }

    public func copyRows(
        _ destination: FloatPointer, destinationStride: Int, from source: ConstFloatPointer, sourceStride: Int,
        rows: Int, width: Int
    ) {
        inner.copyRows(
            r(destination, "copyRows destination"), destinationStride: destinationStride,
            from: r(source, "copyRows source"), sourceStride: sourceStride, rows: rows, width: width)
    }

    public func maskedSum(_ values: ConstFloatPointer, targets: UnsafePointer<Int32>, count: Int, ignoreIndex: Int32)
        -> (sum: Double, counted: Int)
    {
        inner.maskedSum(
            r(values, "maskedSum values"), targets: r(targets, "maskedSum targets"), count: count,
            ignoreIndex: ignoreIndex)
    }

    public func sumOfSquares(_ data: ConstFloatPointer, count: Int) -> Double {
        inner.sumOfSquares(r(data, "sumOfSquares"), count: count)
    }

    public func scale(_ data: FloatPointer, count: Int, by factor: Float) {
        inner.scale(r(data, "scale"), count: count, by: factor)
    }

    // MARK: Kernels, translated

    public func gemm(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float, a: ConstFloatPointer, lda: Int,
        b: ConstFloatPointer, ldb: Int, beta: Float, c: FloatPointer, ldc: Int
    ) {
        inner.gemm(
            transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha, a: r(a, "gemm a"),
            lda: lda, b: r(b, "gemm b"), ldb: ldb, beta: beta, c: r(c, "gemm c"), ldc: ldc)
    }

    public func linear(
        output: FloatPointer, input: ConstFloatPointer, weight: ConstFloatPointer, bias: ConstFloatPointer?, rows: Int,
        inFeatures: Int, outFeatures: Int
    ) {
        inner.linear(
            output: r(output, "linear output"), input: r(input, "linear input"), weight: r(weight, "linear weight"),
            bias: r(bias, "linear bias"), rows: rows, inFeatures: inFeatures, outFeatures: outFeatures)
    }

    public func linearBackward(
        dInput: FloatPointer?, accumulateInput: Bool, dWeight: FloatPointer, dBias: FloatPointer?,
        dOutput: ConstFloatPointer, input: ConstFloatPointer, weight: ConstFloatPointer, rows: Int, inFeatures: Int,
        outFeatures: Int
    ) {
        inner.linearBackward(
            dInput: r(dInput, "linearBackward dInput"), accumulateInput: accumulateInput,
            dWeight: r(dWeight, "linearBackward dWeight"), dBias: r(dBias, "linearBackward dBias"),
            dOutput: r(dOutput, "linearBackward dOutput"), input: r(input, "linearBackward input"),
            weight: r(weight, "linearBackward weight"), rows: rows, inFeatures: inFeatures, outFeatures: outFeatures)
    }

    public func embedding(
        output: FloatPointer, tokens: UnsafePointer<Int32>, tokenTable: ConstFloatPointer,
        positionTable: ConstFloatPointer?, batchSize: Int, sequenceLength: Int, width: Int, positionOffset: Int
    ) {
        inner.embedding(
            output: r(output, "embedding output"), tokens: r(tokens, "embedding tokens"),
            tokenTable: r(tokenTable, "token table"), positionTable: r(positionTable, "position table"),
            batchSize: batchSize, sequenceLength: sequenceLength, width: width, positionOffset: positionOffset)
    }

    public func embeddingBackward(
        dTokenTable: FloatPointer, dPositionTable: FloatPointer?, dOutput: ConstFloatPointer,
        tokens: UnsafePointer<Int32>, batchSize: Int, sequenceLength: Int, width: Int
    ) {
        inner.embeddingBackward(
            dTokenTable: r(dTokenTable, "dTokenTable"), dPositionTable: r(dPositionTable, "dPositionTable"),
            dOutput: r(dOutput, "embeddingBackward dOutput"), tokens: r(tokens, "embeddingBackward tokens"),
            batchSize: batchSize, sequenceLength: sequenceLength, width: width)
    }

    public func layerNorm(
        output: FloatPointer, mean: FloatPointer, rstd: FloatPointer, input: ConstFloatPointer,
        weight: ConstFloatPointer, bias: ConstFloatPointer?, rows: Int, width: Int, epsilon: Float
    ) {
        inner.layerNorm(
            output: r(output, "layerNorm output"), mean: r(mean, "layerNorm mean"), rstd: r(rstd, "layerNorm rstd"),
            input: r(input, "layerNorm input"), weight: r(weight, "layerNorm weight"), bias: r(bias, "layerNorm bias"),
            rows: rows, width: width, epsilon: epsilon)
    }

    public func layerNormBackward(
        dInput: FloatPointer, accumulate: Bool, dWeight: FloatPointer, dBias: FloatPointer?,
        dOutput: ConstFloatPointer, input: ConstFloatPointer, weight: ConstFloatPointer, mean: ConstFloatPointer,
        rstd: ConstFloatPointer, rows: Int, width: Int
    ) {
        inner.layerNormBackward(
            dInput: r(dInput, "layerNormBackward dInput"), accumulate: accumulate,
            dWeight: r(dWeight, "layerNormBackward dWeight"), dBias: r(dBias, "layerNormBackward dBias"),
            dOutput: r(dOutput, "layerNormBackward dOutput"), input: r(input, "layerNormBackward input"),
            weight: r(weight, "layerNormBackward weight"), mean: r(mean, "layerNormBackward mean"),
            rstd: r(rstd, "layerNormBackward rstd"), rows: rows, width: width)
    }

    public func rmsNorm(
        output: FloatPointer, rstd: FloatPointer, input: ConstFloatPointer, weight: ConstFloatPointer, rows: Int,
        width: Int, epsilon: Float
    ) {
        inner.rmsNorm(
            output: r(output, "rmsNorm output"), rstd: r(rstd, "rmsNorm rstd"), input: r(input, "rmsNorm input"),
            weight: r(weight, "rmsNorm weight"), rows: rows, width: width, epsilon: epsilon)
    }

    public func rmsNormBackward(
        dInput: FloatPointer, accumulate: Bool, dWeight: FloatPointer, dOutput: ConstFloatPointer,
        input: ConstFloatPointer, weight: ConstFloatPointer, rstd: ConstFloatPointer, rows: Int, width: Int
    ) {
        inner.rmsNormBackward(
            dInput: r(dInput, "rmsNormBackward dInput"), accumulate: accumulate,
            dWeight: r(dWeight, "rmsNormBackward dWeight"), dOutput: r(dOutput, "rmsNormBackward dOutput"),
            input: r(input, "rmsNormBackward input"), weight: r(weight, "rmsNormBackward weight"),
            rstd: r(rstd, "rmsNormBackward rstd"), rows: rows, width: width)
    }

    public func rotary(
        data: FloatPointer, cos: ConstFloatPointer, sin: ConstFloatPointer, batchSize: Int, sequenceLength: Int,
        heads: Int, headSize: Int, rowStride: Int, batchStride: Int, positionOffset: Int, inverse: Bool
    ) {
        inner.rotary(
            data: r(data, "rotary data"), cos: r(cos, "rotary cos"), sin: r(sin, "rotary sin"), batchSize: batchSize,
            sequenceLength: sequenceLength, heads: heads, headSize: headSize, rowStride: rowStride,
            batchStride: batchStride, positionOffset: positionOffset, inverse: inverse)
    }

    public func attention(
        output: FloatPointer, probabilities: FloatPointer, query: ConstFloatPointer, key: ConstFloatPointer,
        value: ConstFloatPointer, shape: AttentionShape
    ) {
        inner.attention(
            output: r(output, "attention output"), probabilities: r(probabilities, "attention probabilities"),
            query: r(query, "attention query"), key: r(key, "attention key"), value: r(value, "attention value"),
            shape: shape)
    }

    public func tiledAttention(
        output: FloatPointer, logSumExp: FloatPointer, query: ConstFloatPointer, key: ConstFloatPointer,
        value: ConstFloatPointer, shape: AttentionShape
    ) {
        inner.tiledAttention(
            output: r(output, "tiledAttention output"), logSumExp: r(logSumExp, "tiledAttention logSumExp"),
            query: r(query, "tiledAttention query"), key: r(key, "tiledAttention key"),
            value: r(value, "tiledAttention value"), shape: shape)
    }

    public func tiledAttentionBackward(
        dQuery: FloatPointer, dKey: FloatPointer, dValue: FloatPointer, dOutput: ConstFloatPointer,
        output: ConstFloatPointer, logSumExp: ConstFloatPointer, query: ConstFloatPointer, key: ConstFloatPointer,
        value: ConstFloatPointer, shape: AttentionShape
    ) {
        inner.tiledAttentionBackward(
            dQuery: r(dQuery, "dQuery"), dKey: r(dKey, "dKey"), dValue: r(dValue, "dValue"),
            dOutput: r(dOutput, "attention dOutput"), output: r(output, "attention output"),
            logSumExp: r(logSumExp, "attention logSumExp"), query: r(query, "attention query"),
            key: r(key, "attention key"), value: r(value, "attention value"), shape: shape)
    }

    public func decodeAttention(
        output: FloatPointer, probabilities: FloatPointer, query: ConstFloatPointer, key: ConstFloatPointer,
        value: ConstFloatPointer, rows: UnsafeBufferPointer<DecodeRow>, shape: AttentionShape
    ) {
        inner.decodeAttention(
            output: r(output, "decodeAttention output"),
            probabilities: r(probabilities, "decodeAttention probabilities"),
            query: r(query, "decodeAttention query"), key: r(key, "decodeAttention key"),
            value: r(value, "decodeAttention value"), rows: rows, shape: shape)
    }

    public func activation(_ function: ActivationFunction, output: FloatPointer, input: ConstFloatPointer, count: Int) {
        inner.activation(
            function, output: r(output, "activation output"), input: r(input, "activation input"), count: count)
    }

    public func activationBackward(
        _ function: ActivationFunction, dInput: FloatPointer, input: ConstFloatPointer, dOutput: ConstFloatPointer,
        count: Int
    ) {
        inner.activationBackward(
            function, dInput: r(dInput, "activationBackward dInput"), input: r(input, "activationBackward input"),
            dOutput: r(dOutput, "activationBackward dOutput"), count: count)
    }

    public func swiglu(output: FloatPointer, input: ConstFloatPointer, rows: Int, width: Int) {
        inner.swiglu(output: r(output, "swiglu output"), input: r(input, "swiglu input"), rows: rows, width: width)
    }

    public func swigluBackward(
        dInput: FloatPointer, input: ConstFloatPointer, dOutput: ConstFloatPointer, rows: Int, width: Int
    ) {
        inner.swigluBackward(
            dInput: r(dInput, "swigluBackward dInput"), input: r(input, "swigluBackward input"),
            dOutput: r(dOutput, "swigluBackward dOutput"), rows: rows, width: width)
    }

    public func add(output: FloatPointer, _ a: ConstFloatPointer, _ b: ConstFloatPointer, count: Int) {
        inner.add(output: r(output, "add output"), r(a, "add a"), r(b, "add b"), count: count)
    }

    public func crossEntropy(
        losses: FloatPointer, logSumExp: FloatPointer, logits: ConstFloatPointer, targets: UnsafePointer<Int32>,
        rows: Int, vocabularySize: Int, ignoreIndex: Int32
    ) {
        inner.crossEntropy(
            losses: r(losses, "crossEntropy losses"), logSumExp: r(logSumExp, "crossEntropy logSumExp"),
            logits: r(logits, "crossEntropy logits"), targets: r(targets, "crossEntropy targets"), rows: rows,
            vocabularySize: vocabularySize, ignoreIndex: ignoreIndex)
    }

    public func crossEntropyBackward(
        dLogits: FloatPointer, logits: ConstFloatPointer, logSumExp: ConstFloatPointer, targets: UnsafePointer<Int32>,
        rows: Int, vocabularySize: Int, ignoreIndex: Int32, scale: Float
    ) {
        inner.crossEntropyBackward(
            dLogits: r(dLogits, "dLogits"), logits: r(logits, "crossEntropyBackward logits"),
            logSumExp: r(logSumExp, "crossEntropyBackward logSumExp"),
            targets: r(targets, "crossEntropyBackward targets"),
            rows: rows, vocabularySize: vocabularySize, ignoreIndex: ignoreIndex, scale: scale)
    }

    public func dropout(_ data: FloatPointer, count: Int, probability: Float, seed: UInt64) {
        inner.dropout(r(data, "dropout"), count: count, probability: probability, seed: seed)
    }

    public func adamW(
        parameters: FloatPointer, gradients: ConstFloatPointer, firstMoment: FloatPointer, secondMoment: FloatPointer,
        count: Int, hyper: AdamWStep
    ) {
        inner.adamW(
            parameters: r(parameters, "adamW parameters"), gradients: r(gradients, "adamW gradients"),
            firstMoment: r(firstMoment, "adamW first moment"), secondMoment: r(secondMoment, "adamW second moment"),
            count: count, hyper: hyper)
    }
}
