// Backend: the kernels the model is written against.
// Two implementations live here: `CPUBackend` (CBLAS + parallel SIMD loops) and `ReferenceBackend`
// (plain serial loops, the definition every fast kernel is tested against). A CUDA backend arrives later.
//
// Legend used in shape comments: B batch, T sequence length, C width, OC output features, NH query heads,
// NKV key/value heads, HS head size, V vocabulary, F MLP width, N element count.
// Conventions: weights are (OC, C) row-major as in PyTorch's nn.Linear; gradients of parameters are
// accumulated (+=), so gradient accumulation and tied weights need no extra code.
// Memory: every pointer a kernel takes is an address in the backend's own memory, which the backend allocated
// (`allocate`, owned through `BackendBuffer`). The host reaches that memory only through the named copies
// (`copyToHost`, `copyFromHost`), so a backend whose memory is not the host's (a GPU's) runs the same model code.

import Foundation

/// A mutable pointer to fp32 data.
public typealias FloatPointer = UnsafeMutablePointer<Float>
/// A read-only pointer to fp32 data.
public typealias ConstFloatPointer = UnsafePointer<Float>

/// An element-wise activation function.
public enum ActivationFunction: String, Sendable, CaseIterable {
    /// GELU, tanh approximation (GPT-2; PyTorch `gelu(approximate="tanh")`).
    case gelu
    case relu
    /// SiLU / swish: x·σ(x).
    case silu
}

/// One sequence of a decoding batch: the cache row that holds its keys and values, and how many cached
/// positions (its newest included) it attends.
public struct DecodeRow: Sendable, Equatable {
    public var cacheRow: Int
    public var keys: Int

    public init(cacheRow: Int, keys: Int) {
        self.cacheRow = cacheRow
        self.keys = keys
    }
}

extension Backend {
    /// Row by row through `attention` (the reference meaning of `decodeAttention`).
    public func decodeAttentionRowByRow(
        output: FloatPointer, probabilities: FloatPointer, query: ConstFloatPointer, key: ConstFloatPointer,
        value: ConstFloatPointer, rows: UnsafeBufferPointer<DecodeRow>, shape: AttentionShape
    ) {
        for (r, row) in rows.enumerated() {
            var one = shape
            one.batchSize = 1
            one.queryLength = 1
            one.keyOffset = row.keys - 1
            let cached = row.cacheRow * shape.kvBatchStride
            attention(
                output: output + r * shape.outputRowStride,
                probabilities: probabilities + r * shape.heads * shape.probabilityRowStride,
                query: query + r * shape.queryBatchStride, key: key + cached, value: value + cached, shape: one)
        }
    }
}

/// Where the queries, keys, values and outputs of a causal attention live in memory.
///
/// Query `t` (0-based within this call) sits at absolute position `keyOffset + t` and attends to keys
/// `0...keyOffset + t`. Training uses `keyOffset` 0 with keys from the same (B, T, 3C)-like buffer;
/// KV-cache decoding uses the cache as keys and values.
public struct AttentionShape: Sendable, Equatable {
    public var batchSize: Int
    /// Number of queries per row (Tq).
    public var queryLength: Int
    /// Absolute position of the first query; keys span `0..<keyOffset + queryLength`.
    public var keyOffset: Int
    public var heads: Int
    public var kvHeads: Int
    public var headSize: Int
    /// Floats between consecutive query positions, and between batch rows.
    public var queryRowStride: Int
    public var queryBatchStride: Int
    /// Floats between consecutive key/value positions, and between batch rows.
    public var kvRowStride: Int
    public var kvBatchStride: Int
    /// Floats between consecutive output positions (the output is (B, Tq, NH·HS) with this row stride).
    public var outputRowStride: Int
    /// Floats between consecutive rows of one head's probability matrix (≥ keyOffset + queryLength).
    public var probabilityRowStride: Int

    public init(
        batchSize: Int, queryLength: Int, keyOffset: Int, heads: Int, kvHeads: Int, headSize: Int,
        queryRowStride: Int, queryBatchStride: Int, kvRowStride: Int, kvBatchStride: Int,
        outputRowStride: Int, probabilityRowStride: Int
    ) {
        self.batchSize = batchSize
        self.queryLength = queryLength
        self.keyOffset = keyOffset
        self.heads = heads
        self.kvHeads = kvHeads
        self.headSize = headSize
        self.queryRowStride = queryRowStride
        self.queryBatchStride = queryBatchStride
        self.kvRowStride = kvRowStride
        self.kvBatchStride = kvBatchStride
        self.outputRowStride = outputRowStride
        self.probabilityRowStride = probabilityRowStride
    }

    /// Query heads per key/value head; query head h reads key/value head h / groupSize.
    public var groupSize: Int { heads / kvHeads }
    /// The score scale 1/√HS.
    public var scale: Float { 1 / Float(headSize).squareRoot() }
    /// Number of keys (and values) visible to the last query.
    public var keyLength: Int { keyOffset + queryLength }
    /// Floats in the probability buffer: (B, NH, Tq, probabilityRowStride).
    public var probabilityCount: Int { batchSize * heads * queryLength * probabilityRowStride }
}

/// The kernels of a GPT forward/backward pass and its optimizer. All pointers are caller-owned; no kernel
/// allocates on its hot path. See the file header for the shape legend and conventions.
public protocol Backend: AnyObject, Sendable {
    /// A short name for logs ("cpu", "reference").
    var name: String { get }

    /// General matrix multiply on row-major matrices: C = alpha·op(A)·op(B) + beta·C, with op(A) (M, K)
    /// and op(B) (K, N); `transposeA`/`transposeB` select op = transpose.
    func gemm(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float,
        a: ConstFloatPointer, lda: Int, b: ConstFloatPointer, ldb: Int, beta: Float, c: FloatPointer, ldc: Int)

    /// out (rows, OC) = input (rows, C) · weightᵀ (OC, C) + bias (OC).
    func linear(
        output: FloatPointer, input: ConstFloatPointer, weight: ConstFloatPointer, bias: ConstFloatPointer?,
        rows: Int, inFeatures: Int, outFeatures: Int)

    /// Backward of `linear`: dInput (rows, C) = dOut · weight (overwritten, or added when
    /// `accumulateInput`); dWeight (OC, C) += dOutᵀ · input; dBias (OC) += Σ_rows dOut.
    func linearBackward(
        dInput: FloatPointer?, accumulateInput: Bool, dWeight: FloatPointer, dBias: FloatPointer?,
        dOutput: ConstFloatPointer, input: ConstFloatPointer, weight: ConstFloatPointer,
        rows: Int, inFeatures: Int, outFeatures: Int)

    /// out (B·T, C) = tokenTable[tokens] + positionTable[positionOffset + t] (positionTable may be nil).
    func embedding(
        output: FloatPointer, tokens: UnsafePointer<Int32>, tokenTable: ConstFloatPointer,
        positionTable: ConstFloatPointer?, batchSize: Int, sequenceLength: Int, width: Int, positionOffset: Int)

    /// dTokenTable[tokens] += dOut; dPositionTable[t] += Σ_b dOut (when given).
    func embeddingBackward(
        dTokenTable: FloatPointer, dPositionTable: FloatPointer?, dOutput: ConstFloatPointer,
        tokens: UnsafePointer<Int32>, batchSize: Int, sequenceLength: Int, width: Int)

    /// LayerNorm over the last axis: out = (x − mean)·rstd·weight + bias; saves mean and rstd (rows).
    func layerNorm(
        output: FloatPointer, mean: FloatPointer, rstd: FloatPointer, input: ConstFloatPointer,
        weight: ConstFloatPointer, bias: ConstFloatPointer?, rows: Int, width: Int, epsilon: Float)

    /// Backward of `layerNorm`: dInput (overwritten, or added when `accumulate`); dWeight, dBias +=.
    func layerNormBackward(
        dInput: FloatPointer, accumulate: Bool, dWeight: FloatPointer, dBias: FloatPointer?,
        dOutput: ConstFloatPointer, input: ConstFloatPointer, weight: ConstFloatPointer,
        mean: ConstFloatPointer, rstd: ConstFloatPointer, rows: Int, width: Int)

    /// RMSNorm over the last axis: out = x·rstd·weight with rstd = 1/sqrt(mean(x²) + ε); saves rstd.
    func rmsNorm(
        output: FloatPointer, rstd: FloatPointer, input: ConstFloatPointer, weight: ConstFloatPointer,
        rows: Int, width: Int, epsilon: Float)

    /// Backward of `rmsNorm`: dInput (overwritten, or added when `accumulate`); dWeight +=.
    func rmsNormBackward(
        dInput: FloatPointer, accumulate: Bool, dWeight: FloatPointer, dOutput: ConstFloatPointer,
        input: ConstFloatPointer, weight: ConstFloatPointer, rstd: ConstFloatPointer, rows: Int, width: Int)

    /// Rotary position embedding, in place, on `heads` heads of size HS starting at `data` in each of the
    /// B·T rows (`rowStride` floats apart). Pairs (i, i + HS/2) rotate by angle pos·θᵢ, with the tables
    /// cos/sin (maxT, HS/2). `inverse` rotates by −angle (the backward pass).
    func rotary(
        data: FloatPointer, cos: ConstFloatPointer, sin: ConstFloatPointer, batchSize: Int, sequenceLength: Int,
        heads: Int, headSize: Int, rowStride: Int, batchStride: Int, positionOffset: Int, inverse: Bool)

    /// Causal scaled-dot-product attention (grouped-query: query head h reads key/value head
    /// h / (NH/NKV)). Writes out (B, Tq, NH·HS) and the softmax probabilities (B, NH, Tq, Tk).
    func attention(
        output: FloatPointer, probabilities: FloatPointer, query: ConstFloatPointer, key: ConstFloatPointer,
        value: ConstFloatPointer, shape: AttentionShape)

    /// The same causal attention without the probabilities: it keeps no (Tq × Tk) matrix (FlashAttention's
    /// tiles and online softmax), so training's activation memory grows linearly in T. Writes out
    /// (B, Tq, NH·HS) and, for each row, the log-sum-exp of its scaled scores at logSumExp (B, NH, Tq), from
    /// which `tiledAttentionBackward` recomputes the probabilities.
    func tiledAttention(
        output: FloatPointer, logSumExp: FloatPointer, query: ConstFloatPointer, key: ConstFloatPointer,
        value: ConstFloatPointer, shape: AttentionShape)

    /// Backward of `tiledAttention`, from its output and log-sum-exp: dQuery, dKey, dValue are overwritten
    /// (same strides as query, key, value; the entries between heads are left untouched).
    func tiledAttentionBackward(
        dQuery: FloatPointer, dKey: FloatPointer, dValue: FloatPointer, dOutput: ConstFloatPointer,
        output: ConstFloatPointer, logSumExp: ConstFloatPointer, query: ConstFloatPointer, key: ConstFloatPointer,
        value: ConstFloatPointer, shape: AttentionShape)

    /// Attention of a decoding batch: batch row r has one query (at query + r·queryBatchStride) and attends the
    /// first `rows[r].keys` positions of its own cache row (keys at key + rows[r].cacheRow·kvBatchStride, rows
    /// kvRowStride apart). `shape.queryLength` is 1 and `shape.keyOffset` is unused. Writes out (B, NH·HS)
    /// and each row's probabilities at probabilities + (r·NH + h)·probabilityRowStride.
    func decodeAttention(
        output: FloatPointer, probabilities: FloatPointer, query: ConstFloatPointer, key: ConstFloatPointer,
        value: ConstFloatPointer, rows: UnsafeBufferPointer<DecodeRow>, shape: AttentionShape)

    /// out (N) = f(input (N)).
    func activation(_ function: ActivationFunction, output: FloatPointer, input: ConstFloatPointer, count: Int)

    /// dInput (N) = f′(input) · dOut.
    func activationBackward(
        _ function: ActivationFunction, dInput: FloatPointer, input: ConstFloatPointer,
        dOutput: ConstFloatPointer, count: Int)

    /// SwiGLU: out (rows, F) = silu(gate) · up, where input rows are [gate (F), up (F)].
    func swiglu(output: FloatPointer, input: ConstFloatPointer, rows: Int, width: Int)

    /// Backward of `swiglu`: dInput (rows, 2F) overwritten.
    func swigluBackward(
        dInput: FloatPointer, input: ConstFloatPointer, dOutput: ConstFloatPointer, rows: Int, width: Int)

    /// out (N) = a + b (out may alias a or b).
    func add(output: FloatPointer, _ a: ConstFloatPointer, _ b: ConstFloatPointer, count: Int)

    /// Cross-entropy of logits (rows, V) against targets; rows whose target is `ignoreIndex` get loss 0.
    /// Writes per-row losses and log-sum-exps (both (rows)).
    func crossEntropy(
        losses: FloatPointer, logSumExp: FloatPointer, logits: ConstFloatPointer, targets: UnsafePointer<Int32>,
        rows: Int, vocabularySize: Int, ignoreIndex: Int32)

    /// dLogits = scale · (softmax(logits) − onehot(target)); zero for ignored rows. May run in place.
    func crossEntropyBackward(
        dLogits: FloatPointer, logits: ConstFloatPointer, logSumExp: ConstFloatPointer,
        targets: UnsafePointer<Int32>, rows: Int, vocabularySize: Int, ignoreIndex: Int32, scale: Float)

    /// Inverted dropout in place: each element is kept with probability 1 − p and scaled by 1/(1 − p).
    /// The mask is a pure function of (seed, index), so forward and backward apply the same mask.
    func dropout(_ data: FloatPointer, count: Int, probability: Float, seed: UInt64)

    /// One AdamW step over N elements (PyTorch `torch.optim.AdamW` semantics, `step` counted from 1).
    func adamW(
        parameters: FloatPointer, gradients: ConstFloatPointer, firstMoment: FloatPointer,
        secondMoment: FloatPointer, count: Int, hyper: AdamWStep)

    /// destination (N) = source (N), both in the backend's memory.
    func copy(_ destination: FloatPointer, from source: ConstFloatPointer, count: Int)

    /// `rows` rows of `width` floats from source (rows `sourceStride` apart) to destination (rows
    /// `destinationStride` apart), both in the backend's memory: a KV-cache append.
    func copyRows(
        _ destination: FloatPointer, destinationStride: Int, from source: ConstFloatPointer, sourceStride: Int,
        rows: Int, width: Int)

    /// The sum of values[i] over the i where targets[i] ≠ ignoreIndex, and how many there are, read back to the
    /// host (the mean loss).
    func maskedSum(_ values: ConstFloatPointer, targets: UnsafePointer<Int32>, count: Int, ignoreIndex: Int32)
        -> (sum: Double, counted: Int)

    /// Whether the host may read and write this backend's memory in place (the CPU and reference backends). When
    /// false, the host reaches a buffer only through `copyToHost` and `copyFromHost` (`BackendBuffer` stages it).
    var sharesHostMemory: Bool { get }

    /// Allocates `bytes` zeroed bytes of the backend's memory, 64-byte aligned; throws when they cannot be had.
    /// The result is an address in the backend's memory, which the host must not dereference unless
    /// `sharesHostMemory`. `BackendBuffer` is the owning wrapper; call this directly only to build one.
    func allocate(bytes: Int) throws(TensorError) -> UnsafeMutableRawPointer

    /// Frees memory that `allocate` returned.
    func deallocate(_ memory: UnsafeMutableRawPointer)

    /// Sets `bytes` bytes of the backend's memory to zero.
    func zero(_ memory: UnsafeMutableRawPointer, bytes: Int)

    /// Reads `bytes` bytes of the backend's memory into host memory (a loss, logits for sampling, a checkpoint).
    func copyToHost(_ destination: UnsafeMutableRawPointer, from source: UnsafeRawPointer, bytes: Int)

    /// Writes `bytes` bytes of host memory into the backend's memory (tokens, loaded weights).
    func copyFromHost(_ destination: UnsafeMutableRawPointer, from source: UnsafeRawPointer, bytes: Int)

    /// Σ x² over N elements, accumulated in double precision.
    func sumOfSquares(_ data: ConstFloatPointer, count: Int) -> Double

    /// x (N) *= factor.
    func scale(_ data: FloatPointer, count: Int, by factor: Float)
}

/// The scalars of one AdamW update.
public struct AdamWStep: Sendable, Equatable {
    public var learningRate: Float
    public var beta1: Float
    public var beta2: Float
    public var epsilon: Float
    public var weightDecay: Float
    /// 1-based step number, for bias correction.
    public var step: Int

    public init(learningRate: Float, beta1: Float, beta2: Float, epsilon: Float, weightDecay: Float, step: Int) {
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.weightDecay = weightDecay
        self.step = step
    }
}

/// The dropout keep/drop decision for element `index`: a counter-based hash (SplitMix64 finaliser), so
/// masks need no stored state and are identical in forward, backward and after a resume.
@inlinable @inline(__always)
public func dropoutKeeps(seed: UInt64, index: Int, threshold: UInt32) -> Bool {
    var z = seed &+ UInt64(truncatingIfNeeded: index) &* 0x9E37_79B9_7F4A_7C15
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    z = z ^ (z >> 31)
    return UInt32(truncatingIfNeeded: z >> 32) >= threshold
}

/// The 32-bit threshold below which an element is dropped, for probability p.
@inlinable
public func dropoutThreshold(_ probability: Float) -> UInt32 {
    UInt32(min(Double(UInt32.max), (Double(probability) * 4_294_967_296.0).rounded()))
}

extension Backend {
    /// Reads `count` elements of the backend's memory into host memory.
    @inlinable
    public func copyToHost<Element: BitwiseCopyable>(
        _ destination: UnsafeMutablePointer<Element>, from source: UnsafePointer<Element>, count: Int
    ) {
        copyToHost(
            UnsafeMutableRawPointer(destination), from: UnsafeRawPointer(source),
            bytes: count * MemoryLayout<Element>.stride)
    }

    /// Writes `count` elements of host memory into the backend's memory.
    @inlinable
    public func copyFromHost<Element: BitwiseCopyable>(
        _ destination: UnsafeMutablePointer<Element>, from source: UnsafePointer<Element>, count: Int
    ) {
        copyFromHost(
            UnsafeMutableRawPointer(destination), from: UnsafeRawPointer(source),
            bytes: count * MemoryLayout<Element>.stride)
    }
}

/// A backend whose memory is the host's (the CPU and reference backends): moving data between it and the host
/// is copying memory, written once here. A device backend implements these as transfers.
public protocol HostMemoryBackend: Backend {}

extension HostMemoryBackend {
    public func copy(_ destination: FloatPointer, from source: ConstFloatPointer, count: Int) {
        destination.update(from: source, count: count)
    }

    public func copyRows(
        _ destination: FloatPointer, destinationStride: Int, from source: ConstFloatPointer, sourceStride: Int,
        rows: Int, width: Int
    ) {
        for r in 0..<rows {
            (destination + r * destinationStride).update(from: source + r * sourceStride, count: width)
        }
    }

    public func maskedSum(_ values: ConstFloatPointer, targets: UnsafePointer<Int32>, count: Int, ignoreIndex: Int32)
        -> (sum: Double, counted: Int)
    {
        var (sum, counted) = (0.0, 0)
        for i in 0..<count where targets[i] != ignoreIndex {
            sum += Double(values[i])
            counted += 1
        }
        return (sum, counted)
    }

    public var sharesHostMemory: Bool { true }

    public func allocate(bytes: Int) throws(TensorError) -> UnsafeMutableRawPointer {
        try allocateAlignedZeroed(bytes: bytes)
    }

    public func deallocate(_ memory: UnsafeMutableRawPointer) { free(memory) }

    public func zero(_ memory: UnsafeMutableRawPointer, bytes: Int) { memset(memory, 0, bytes) }

    public func copyToHost(_ destination: UnsafeMutableRawPointer, from source: UnsafeRawPointer, bytes: Int) {
        destination.copyMemory(from: source, byteCount: bytes)
    }

    public func copyFromHost(_ destination: UnsafeMutableRawPointer, from source: UnsafeRawPointer, bytes: Int) {
        destination.copyMemory(from: source, byteCount: bytes)
    }
}
