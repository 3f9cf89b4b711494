// Activations: the activation arena of one (batch, sequence length) shape, planned once and reused by
// every step (llm.c's `ActivationTensors`). Forward writes what backward reads; backward's own scratch
// (gradients of activations) lives in the same arena, in the model's backend's memory. Nothing here allocates
// after `init`.
//
// Shape legend: B batch, T sequence length, C width, NH heads, QKV fused q/k/v width, F MLP width,
// F2 first-MLP-projection width (2F for SwiGLU), V vocabulary, K key capacity (T, or a KV cache's length).

import FledgeTensor

/// Offsets of one block's saved activations.
struct BlockActivations {
    var norm1Out = ActivationOffset.unplanned, norm1Mean = ActivationOffset.unplanned,
        norm1Rstd = ActivationOffset.unplanned  // (B,T,C), (B,T), (B,T)
    var qkv = ActivationOffset.unplanned  // (B,T,QKV), q and k rotated when positions are rotary
    var probabilities = ActivationOffset.unplanned  // (B,NH,T,K), with a KV cache only
    var attentionLSE = ActivationOffset.unplanned  // (B,NH,T), without a cache: each attention row's log-sum-exp
    var attentionOut = ActivationOffset.unplanned  // (B,T,NH·HS) before the output projection
    var residual1 = ActivationOffset.unplanned  // (B,T,C) x + attention branch
    var norm2Out = ActivationOffset.unplanned, norm2Mean = ActivationOffset.unplanned,
        norm2Rstd = ActivationOffset.unplanned  // (B,T,C), (B,T), (B,T)
    var fc = ActivationOffset.unplanned  // (B,T,F2)
    var activated = ActivationOffset.unplanned  // (B,T,F)
    var residual2 = ActivationOffset.unplanned  // (B,T,C) residual1 + MLP branch
}

/// Planned activation memory for a model at a fixed (batch, sequence length).
public final class Activations: @unchecked Sendable {
    public let batchSize: Int
    public let sequenceLength: Int
    /// Floats between rows of an attention probability matrix: a KV cache's capacity (T without a cache, where
    /// the attention is tiled and keeps no probabilities).
    public let keyCapacity: Int
    /// Whether the gradient scratch is planned (false for inference-only plans).
    public let forTraining: Bool
    /// The model configuration the plan was made for: a model of another shape refuses it.
    public let config: ModelConfig
    let storage: BackendBuffer<Float>
    let tokens: BackendBuffer<Int32>
    let targets: BackendBuffer<Int32>

    var encoded = ActivationOffset.unplanned  // (B,T,C)
    var blocks: [BlockActivations] = []
    var finalNormOut = ActivationOffset.unplanned, finalNormMean = ActivationOffset.unplanned,
        finalNormRstd = ActivationOffset.unplanned  // (B,T,C), (B,T), (B,T)
    var logits = ActivationOffset.unplanned  // (B,T,V); holds dLogits after backward
    var losses = ActivationOffset.unplanned, logSumExp = ActivationOffset.unplanned  // (B,T)
    // Gradient scratch, shared by all layers.
    var dResidual = ActivationOffset.unplanned, dNorm = ActivationOffset.unplanned,
        dBranch = ActivationOffset.unplanned  // (B,T,C) each
    var dAttention = ActivationOffset.unplanned  // (B,T,NH·HS)
    var dQKV = ActivationOffset.unplanned  // (B,T,QKV)
    var dFC = ActivationOffset.unplanned  // (B,T,F2)
    var dActivated = ActivationOffset.unplanned  // (B,T,F)
    /// Floats in the arena.
    public let count: Int
    /// Targets that count toward the loss in the last forward pass.
    public internal(set) var targetCount = 0
    /// Whether the last forward pass had targets (a loss), so that `backward` may run.
    var hasLoss = false
    /// Dropout seed of the last forward pass.
    var dropoutSeed: UInt64 = 0

    /// Estimates the bytes of a plan without allocating it (for "does this batch fit in memory?").
    public static func estimatedBytes(
        config: ModelConfig, batchSize: Int, sequenceLength: Int, forTraining: Bool = true
    ) -> Int {
        var plan = Planner()
        _ = plan.layout(config, batchSize, sequenceLength, nil, forTraining)
        return plan.total * 4
    }

    /// Plans activation memory for `model` and allocates it on the model's backend; throws with the size when it
    /// cannot be had.
    public init(
        model: GPT, batchSize: Int, sequenceLength: Int, keyCapacity: Int? = nil, forTraining: Bool = true
    ) throws {
        let config = model.config
        guard batchSize >= 1, sequenceLength >= 1, sequenceLength <= config.contextLength else {
            throw ModelError(
                "batch size \(batchSize) × sequence length \(sequenceLength) is not a valid shape for this model",
                hint:
                    "use a batch size ≥ 1 and a sequence length between 1 and the context length \(config.contextLength)."
            )
        }
        self.batchSize = batchSize
        self.sequenceLength = sequenceLength
        self.keyCapacity = keyCapacity ?? sequenceLength
        self.forTraining = forTraining
        self.config = config
        var planner = Planner()
        let offsets = planner.layout(config, batchSize, sequenceLength, keyCapacity, forTraining)
        count = planner.total
        do {
            storage = try BackendBuffer<Float>(backend: model.backend, count: count)
            tokens = try BackendBuffer<Int32>(backend: model.backend, count: batchSize * sequenceLength)
            targets = try BackendBuffer<Int32>(backend: model.backend, count: batchSize * sequenceLength)
        } catch {
            throw ModelError(
                "activations for batch \(batchSize) × sequence \(sequenceLength) need \(count * 4 / 1_048_576) MiB, which could not be allocated",
                hint: "lower the batch size or the sequence length (or use gradient accumulation).")
        }
        (encoded, blocks, finalNormOut, finalNormMean, finalNormRstd, logits, losses, logSumExp) =
            (
                offsets.encoded, offsets.blocks, offsets.finalNormOut, offsets.finalNormMean, offsets.finalNormRstd,
                offsets.logits, offsets.losses, offsets.logSumExp
            )
        (dResidual, dNorm, dBranch, dAttention, dQKV, dFC, dActivated) =
            (
                offsets.dResidual, offsets.dNorm, offsets.dBranch, offsets.dAttention, offsets.dQKV, offsets.dFC,
                offsets.dActivated
            )
    }

    /// The logits (B, T, V) of the last forward pass, copied to the host (valid until `backward` overwrites them).
    public func copyLogitsToHost() -> [Float] {
        storage.copyToHost(logits.value..<logits.value + batchSize * sequenceLength * config.vocabularySize)
    }
}

/// Hands out consecutive ranges of the arena.
private struct Planner {
    var total = 0

    struct Offsets {
        var encoded = ActivationOffset.unplanned, finalNormOut = ActivationOffset.unplanned,
            finalNormMean = ActivationOffset.unplanned, finalNormRstd = ActivationOffset.unplanned,
            logits = ActivationOffset.unplanned, losses = ActivationOffset.unplanned,
            logSumExp = ActivationOffset.unplanned
        var dResidual = ActivationOffset.unplanned, dNorm = ActivationOffset.unplanned,
            dBranch = ActivationOffset.unplanned, dAttention = ActivationOffset.unplanned,
            dQKV = ActivationOffset.unplanned, dFC = ActivationOffset.unplanned, dActivated = ActivationOffset.unplanned
        var blocks: [BlockActivations] = []
    }

    mutating func take(_ n: Int) -> ActivationOffset {
        defer { total += (n + 15) / 16 * 16 }  // keep every buffer 64-byte aligned
        return ActivationOffset(total)
    }

    mutating func layout(_ c: ModelConfig, _ b: Int, _ t: Int, _ k: Int?, _ training: Bool) -> Offsets {
        let cached = k != nil
        let k = k ?? t
        let bt = b * t
        var o = Offsets()
        o.encoded = take(bt * c.width)
        // Inference needs no saved activations, so all layers share one block's buffers.
        for _ in 0..<(training ? c.layers : 1) {
            var a = BlockActivations()
            a.norm1Out = take(bt * c.width)
            a.norm1Mean = take(bt)
            a.norm1Rstd = take(bt)
            a.qkv = take(bt * c.qkvWidth)
            // Without a KV cache the attention is tiled: no (T × K) probabilities, only each row's log-sum-exp,
            // so the activations grow linearly in T. Decoding with a cache keeps its probabilities.
            if cached { a.probabilities = take(b * c.heads * t * k) } else { a.attentionLSE = take(b * c.heads * t) }
            a.attentionOut = take(bt * c.attentionWidth)
            a.residual1 = take(bt * c.width)
            if !c.parallelBlock {
                a.norm2Out = take(bt * c.width)
                a.norm2Mean = take(bt)
                a.norm2Rstd = take(bt)
            }
            a.fc = take(bt * c.mlpInnerWidth)
            a.activated = take(bt * c.mlpWidth)
            a.residual2 = take(bt * c.width)
            o.blocks.append(a)
        }
        o.finalNormOut = take(bt * c.width)
        o.finalNormMean = take(bt)
        o.finalNormRstd = take(bt)
        o.logits = take(bt * c.vocabularySize)
        o.losses = take(bt)
        o.logSumExp = take(bt)
        if training {
            o.dResidual = take(bt * c.width)
            o.dNorm = take(bt * c.width)
            o.dBranch = take(bt * c.width)
            o.dAttention = take(bt * c.attentionWidth)
            o.dQKV = take(bt * c.qkvWidth)
            o.dFC = take(bt * c.mlpInnerWidth)
            o.dActivated = take(bt * c.mlpWidth)
        }
        return o
    }
}
