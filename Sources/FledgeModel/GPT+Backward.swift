// GPT+Backward: the backward pass, every layer written out in reverse (llm.c's `gpt2_backward`).
// Gradients are added to `gradients`, so micro-batches accumulate; call `zeroGradients()` to start afresh.
// The gradient of the residual stream flows down in `dResidual`; `dNorm` carries the gradient at a norm's
// output (or at a post-norm block's residual sum). The logits buffer is reused for dLogits.

import FledgeTensor

extension GPT {
    /// Adds d(mean loss)/d(parameter) of the last `forward` (which must have had targets) to `gradients`.
    public func backward(activations acts: Activations) throws {
        try checkPlan(acts)
        guard acts.forTraining, acts.hasLoss else {
            throw ModelError(
                "backward called without a training forward pass with targets",
                hint: "call forward(tokens:targets:activations:) with targets on a training plan first.")
        }
        try allocateGradients()
        acts.hasLoss = false  // the logits are about to be overwritten by their gradient
        runBackward(buffers(acts), acts)
    }

    private func runBackward(_ m: Buffers, _ acts: Activations) {
        let c = config
        let (p, g, a) = (m.parameters, m.gradients, m.activations)
        let bt = acts.batchSize * acts.sequenceLength
        let dx = a + acts.dResidual
        let dNorm = a + acts.dNorm
        let logits = a + acts.logits
        let scale = acts.targetCount == 0 ? 0 : 1 / Float(acts.targetCount)
        backend.crossEntropyBackward(
            dLogits: logits, logits: logits, logSumExp: a + acts.logSumExp, targets: m.targets, rows: bt,
            vocabularySize: c.vocabularySize, ignoreIndex: Self.ignoreIndex, scale: scale)
        let lastOutput = layerOutput(acts, c.layers - 1, a)
        if let finalNormWeight {
            backend.linearBackward(
                dInput: dNorm, accumulateInput: false, dWeight: g + headWeight, dBias: nil, dOutput: logits,
                input: a + acts.finalNormOut, weight: p + headWeight, rows: bt, inFeatures: c.width,
                outFeatures: c.vocabularySize)
            normBackward(
                m, dInput: dx, accumulate: false, dOutput: dNorm, input: lastOutput, mean: a + acts.finalNormMean,
                rstd: a + acts.finalNormRstd, weight: finalNormWeight, bias: finalNormBias, rows: bt)
        } else {
            backend.linearBackward(
                dInput: dx, accumulateInput: false, dWeight: g + headWeight, dBias: nil, dOutput: logits,
                input: lastOutput, weight: p + headWeight, rows: bt, inFeatures: c.width, outFeatures: c.vocabularySize)
        }
        for l in stride(from: c.layers - 1, through: 0, by: -1) {
            let x = l == 0 ? ConstFloatPointer(a + acts.encoded) : layerOutput(acts, l - 1, a)
            blockBackward(m, acts, layer: l, input: x)
        }
        if c.dropout > 0 {
            backend.dropout(dx, count: bt * c.width, probability: c.dropout, seed: dropoutSeed(acts, c.layers, 0))
        }
        backend.embeddingBackward(
            dTokenTable: g + tokenEmbedding, dPositionTable: positionEmbedding.map { g + $0 }, dOutput: dx,
            tokens: m.tokens, batchSize: acts.batchSize, sequenceLength: acts.sequenceLength, width: c.width)
    }

    /// One block's backward, in the arrangement `blockForward` ran (its formulas are there). On entry dResidual
    /// holds d(block output); on exit it holds d(block input x). dNorm carries the gradient at a norm's output.
    private func blockBackward(_ m: Buffers, _ acts: Activations, layer l: Int, input x: ConstFloatPointer) {
        let c = config
        let a = m.activations
        let w = blocks[l]
        let s = acts.blocks[l]
        let bt = acts.batchSize * acts.sequenceLength
        let dx = a + acts.dResidual
        let dNorm = a + acts.dNorm
        switch (c.normPlacement, c.parallelBlock) {
        case (.pre, false):
            mlpBackward(m, acts, layer: l, dOutput: dx, input: a + s.norm2Out, dInput: dNorm, accumulate: false)
            normBackward(
                m, dInput: dx, accumulate: true, dOutput: dNorm, input: a + s.residual1, mean: a + s.norm2Mean,
                rstd: a + s.norm2Rstd, weight: w.norm2Weight!, bias: w.norm2Bias, rows: bt)
            attentionBackward(
                m, acts, layer: l, dOutput: dx, input: a + s.norm1Out, dInput: dNorm, accumulate: false)
            normBackward(
                m, dInput: dx, accumulate: true, dOutput: dNorm, input: x, mean: a + s.norm1Mean,
                rstd: a + s.norm1Rstd, weight: w.norm1Weight, bias: w.norm1Bias, rows: bt)
        case (.pre, true):
            mlpBackward(m, acts, layer: l, dOutput: dx, input: a + s.norm1Out, dInput: dNorm, accumulate: false)
            attentionBackward(
                m, acts, layer: l, dOutput: dx, input: a + s.norm1Out, dInput: dNorm, accumulate: true)
            normBackward(
                m, dInput: dx, accumulate: true, dOutput: dNorm, input: x, mean: a + s.norm1Mean,
                rstd: a + s.norm1Rstd, weight: w.norm1Weight, bias: w.norm1Bias, rows: bt)
        case (.post, false):
            // out = n2(r2), r2 = h + mlp(h), h = n1(r1), r1 = x + attn(x). dNorm is the MLP's output gradient
            // and, added to, its input's: d(h) = d(r2) + mlp′ᵀ·d(r2). mlpBackward reads its dOutput before it adds
            // to dInput, so the two may be one buffer; the same holds for dx in the attention's call below.
            normBackward(
                m, dInput: dNorm, accumulate: false, dOutput: dx, input: a + s.residual2,
                mean: a + s.norm2Mean, rstd: a + s.norm2Rstd, weight: w.norm2Weight!, bias: w.norm2Bias, rows: bt)
            mlpBackward(m, acts, layer: l, dOutput: dNorm, input: a + s.norm1Out, dInput: dNorm, accumulate: true)
            normBackward(
                m, dInput: dx, accumulate: false, dOutput: dNorm, input: a + s.residual1,
                mean: a + s.norm1Mean, rstd: a + s.norm1Rstd, weight: w.norm1Weight, bias: w.norm1Bias, rows: bt)
            attentionBackward(m, acts, layer: l, dOutput: dx, input: x, dInput: dx, accumulate: true)
        case (.post, true):
            // out = n1(r2), r2 = x + attn(x) + mlp(x)
            normBackward(
                m, dInput: dNorm, accumulate: false, dOutput: dx, input: a + s.residual2,
                mean: a + s.norm1Mean, rstd: a + s.norm1Rstd, weight: w.norm1Weight, bias: w.norm1Bias, rows: bt)
            mlpBackward(m, acts, layer: l, dOutput: dNorm, input: x, dInput: dx, accumulate: false)
            attentionBackward(m, acts, layer: l, dOutput: dNorm, input: x, dInput: dx, accumulate: true)
            backend.add(output: dx, dx, dNorm, count: bt * c.width)
        }
    }

    /// The output of block `l` as forward left it.
    private func layerOutput(_ acts: Activations, _ l: Int, _ a: ActivationMemory) -> ConstFloatPointer {
        let s = acts.blocks[l]
        switch (config.normPlacement, config.parallelBlock) {
        case (.pre, _): return ConstFloatPointer(a + s.residual2)
        case (.post, false): return ConstFloatPointer(a + s.norm2Out)
        case (.post, true): return ConstFloatPointer(a + s.norm1Out)
        }
    }

    /// The gradient at a branch's output after its dropout: dOutput itself, or a masked copy in `dBranch`.
    private func branchGradient(_ m: Buffers, _ acts: Activations, _ dOutput: FloatPointer, seed: UInt64)
        -> FloatPointer
    {
        guard config.dropout > 0 else { return dOutput }
        let n = acts.batchSize * acts.sequenceLength * config.width
        let copy = m.activations + acts.dBranch
        backend.copy(copy, from: dOutput, count: n)
        backend.dropout(copy, count: n, probability: config.dropout, seed: seed)
        return copy
    }

    /// Backward of output = drop(fc₂(act(fc₁(input)))); d(input) goes to `dInput` (or is added to it).
    private func mlpBackward(
        _ m: Buffers, _ acts: Activations, layer l: Int, dOutput: FloatPointer, input: ConstFloatPointer,
        dInput: FloatPointer, accumulate: Bool
    ) {
        let c = config
        let (p, g, a) = (m.parameters, m.gradients, m.activations)
        let w = blocks[l]
        let s = acts.blocks[l]
        let rows = acts.batchSize * acts.sequenceLength
        let dBranch = branchGradient(m, acts, dOutput, seed: dropoutSeed(acts, l, 2))
        backend.linearBackward(
            dInput: a + acts.dActivated, accumulateInput: false, dWeight: g + w.mlpProjWeight,
            dBias: w.mlpProjBias.map { g + $0 }, dOutput: dBranch, input: a + s.activated, weight: p + w.mlpProjWeight,
            rows: rows, inFeatures: c.mlpWidth, outFeatures: c.width)
        if let function = c.activation.elementwise {
            backend.activationBackward(
                function, dInput: a + acts.dFC, input: a + s.fc, dOutput: a + acts.dActivated,
                count: rows * c.mlpWidth)
        } else {
            backend.swigluBackward(
                dInput: a + acts.dFC, input: a + s.fc, dOutput: a + acts.dActivated, rows: rows, width: c.mlpWidth)
        }
        backend.linearBackward(
            dInput: dInput, accumulateInput: accumulate, dWeight: g + w.fcWeight, dBias: w.fcBias.map { g + $0 },
            dOutput: a + acts.dFC, input: input, weight: p + w.fcWeight, rows: rows, inFeatures: c.width,
            outFeatures: c.mlpInnerWidth)
    }

    /// Backward of output = drop(proj(attention(rotary(qkv(input))))).
    private func attentionBackward(
        _ m: Buffers, _ acts: Activations, layer l: Int, dOutput: FloatPointer, input: ConstFloatPointer,
        dInput: FloatPointer, accumulate: Bool
    ) {
        let c = config
        let (p, g, a) = (m.parameters, m.gradients, m.activations)
        let w = blocks[l]
        let s = acts.blocks[l]
        let (b, t) = (acts.batchSize, acts.sequenceLength)
        let rows = b * t
        let hs = c.headSize
        let dBranch = branchGradient(m, acts, dOutput, seed: dropoutSeed(acts, l, 1))
        backend.linearBackward(
            dInput: a + acts.dAttention, accumulateInput: false, dWeight: g + w.projWeight,
            dBias: w.projBias.map { g + $0 }, dOutput: dBranch, input: a + s.attentionOut, weight: p + w.projWeight,
            rows: rows, inFeatures: c.attentionWidth, outFeatures: c.width)
        let qkv = a + s.qkv
        let dqkv = a + acts.dQKV
        let shape = attentionShape(acts, batchSize: b, length: t)
        backend.tiledAttentionBackward(
            dQuery: dqkv, dKey: dqkv + c.heads * hs, dValue: dqkv + (c.heads + c.kvHeads) * hs,
            dOutput: a + acts.dAttention, output: a + s.attentionOut, logSumExp: a + s.attentionLSE, query: qkv,
            key: qkv + c.heads * hs, value: qkv + (c.heads + c.kvHeads) * hs, shape: shape)
        if c.positions == .rotary {
            // The rotation is orthogonal, so its backward is the rotation by the opposite angle.
            rotate(m, dqkv, heads: c.heads, batchSize: b, length: t, positionOffset: 0, inverse: true)
            rotate(m, dqkv + c.heads * hs, heads: c.kvHeads, batchSize: b, length: t, positionOffset: 0, inverse: true)
        }
        backend.linearBackward(
            dInput: dInput, accumulateInput: accumulate, dWeight: g + w.qkvWeight, dBias: w.qkvBias.map { g + $0 },
            dOutput: dqkv, input: input, weight: p + w.qkvWeight, rows: rows, inFeatures: c.width,
            outFeatures: c.qkvWidth)
    }

    /// Backward of the configured norm.
    private func normBackward(
        _ m: Buffers, dInput: FloatPointer, accumulate: Bool, dOutput: ConstFloatPointer, input: ConstFloatPointer,
        mean: ConstFloatPointer, rstd: ConstFloatPointer, weight: ParameterOffset, bias: ParameterOffset?, rows: Int
    ) {
        let (p, g) = (m.parameters, m.gradients)
        switch config.norm {
        case .layerNorm:
            backend.layerNormBackward(
                dInput: dInput, accumulate: accumulate, dWeight: g + weight, dBias: bias.map { g + $0 },
                dOutput: dOutput,
                input: input, weight: p + weight, mean: mean, rstd: rstd, rows: rows, width: config.width)
        case .rmsNorm:
            backend.rmsNormBackward(
                dInput: dInput, accumulate: accumulate, dWeight: g + weight, dOutput: dOutput, input: input,
                weight: p + weight, rstd: rstd, rows: rows, width: config.width)
        }
    }
}
