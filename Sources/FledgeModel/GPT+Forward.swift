// GPT+Forward: the forward pass, to logits and to the mean cross-entropy loss (nanoGPT's `GPT.forward`,
// llm.c's `gpt2_forward`). One block, in each of the four arrangements:
//   pre,  sequential: x1 = x + drop(attn(n1(x)));  out = x1 + drop(mlp(n2(x1)))          (GPT-2, Llama)
//   pre,  parallel:   h = n1(x);  out = x + drop(attn(h)) + drop(mlp(h))                  (PaLM, GPT-J)
//   post, sequential: x1 = n1(x + drop(attn(x)));  out = n2(x1 + drop(mlp(x1)))          (original Transformer)
//   post, parallel:   out = n1(x + drop(attn(x)) + drop(mlp(x)))
// Pre-norm models end with a final norm (ln_f) before the output head; post-norm models do not.

import FledgeTensor

/// Addresses of a model's and a plan's memory in the backend's memory: for its kernels, never dereferenced here.
struct Buffers {
    let parameters: ParameterMemory
    let gradients: ParameterMemory
    let activations: ActivationMemory
    let tables: FloatPointer
    let tokens: UnsafeMutablePointer<Int32>
    let targets: UnsafeMutablePointer<Int32>
}

/// Where a cached forward pass keeps keys and values: (layers, rows, capacity, NKV·HS) each.
struct CacheBuffers {
    let keys: FloatPointer
    let values: FloatPointer
    let capacity: Int
    /// Cache rows per layer (the cache's batch size).
    let rows: Int
    /// The sequences of a continuous-batching pass (`SlotCache`), each with tokens of its own; nil: batch row
    /// b is cache row b and every row starts at the pass's shared position offset.
    let slots: [SlotSpan]?
    /// The decoding sequences of such a pass (its first spans, one token each at starts 0, 1, 2, ...): their
    /// cache rows and the positions each attends, built once for all layers.
    var decodeRows: [DecodeRow] = []

    /// Floats of one layer's keys (or values).
    func layerBase(_ layer: Int, kvWidth: Int) -> Int { layer * rows * capacity * kvWidth }
}

/// One sequence's share of a continuous-batching pass: `length` new tokens for cache row `row`, at positions
/// `position`..<position+length, found at `start`..<start+length among the pass's tokens. A pass lists its
/// one-token (decoding) spans first, at starts 0, 1, 2, ...; their attention is one batched call.
struct SlotSpan {
    let row: Int
    let position: Int
    let start: Int
    let length: Int
}

extension GPT {
    /// Runs `tokens` (B, T) through the model. With `targets` (B, T; `GPT.ignoreIndex` marks positions
    /// without loss) returns the mean cross-entropy over the counted targets, else nil. `dropoutSeed` picks
    /// the dropout masks (used only when the config's dropout is > 0 and `training` is true).
    @discardableResult
    public func forward(
        tokens: UnsafeBufferPointer<Int32>, targets: UnsafeBufferPointer<Int32>?, activations acts: Activations,
        training: Bool = true, dropoutSeed: UInt64 = 0
    ) throws -> Float? {
        try checkPlan(acts)
        let bt = acts.batchSize * acts.sequenceLength
        guard tokens.count == bt, targets.map({ $0.count == bt }) ?? true else {
            throw ModelError(
                "got \(tokens.count) tokens and \(targets?.count ?? 0) targets for a plan of batch \(acts.batchSize) × sequence \(acts.sequenceLength)",
                hint: "pass exactly batch × sequence tokens (and as many targets), or plan activations for this shape.")
        }
        try checkTokens(tokens, targets: targets)
        acts.tokens.copyFromHost(tokens)
        if let targets { acts.targets.copyFromHost(targets) }
        acts.dropoutSeed = dropoutSeed
        acts.hasLoss = false
        let m = buffers(acts)
        runForward(
            m, acts, batchSize: acts.batchSize, length: acts.sequenceLength, positionOffset: 0, cache: nil,
            training: training && acts.forTraining)
        guard targets != nil else { return nil }
        return computeLoss(m, acts, rows: bt)
    }

    /// Array convenience for `forward(tokens:targets:activations:training:dropoutSeed:)`.
    @discardableResult
    public func forward(
        tokens: [Int32], targets: [Int32]?, activations: Activations, training: Bool = true, dropoutSeed: UInt64 = 0
    ) throws -> Float? {
        try tokens.withUnsafeBufferPointer { t in
            if let targets {
                return try targets.withUnsafeBufferPointer { y in
                    try forward(
                        tokens: t, targets: y, activations: activations, training: training, dropoutSeed: dropoutSeed)
                }
            }
            return try forward(
                tokens: t, targets: nil, activations: activations, training: training, dropoutSeed: dropoutSeed)
        }
    }

    /// Refuses activations (or a KV cache) planned for a model of another configuration: its buffers would be
    /// read and written out of their bounds.
    func checkPlan(_ acts: Activations, what: String = "these activations were") throws {
        guard acts.storage.isReadable(by: backend) else {
            throw ModelError(
                "\(what) allocated on the \(acts.storage.backend.name) backend, whose memory the model's \(backend.name) backend cannot read",
                hint:
                    "plan activations and caches from the model that uses them (Activations(model:), KVCache(model:), SlotCache(model:))."
            )
        }
        guard acts.config != config else { return }
        func describe(_ c: ModelConfig) -> String {
            "width \(c.width), \(c.layers) layers, \(c.heads) heads (\(c.kvHeads) key/value), MLP \(c.mlpWidth) "
                + "\(c.activation.rawValue), vocabulary \(c.vocabularySize), context \(c.contextLength), "
                + "\(c.norm.rawValue) \(c.normPlacement.rawValue)-norm, \(c.positions.rawValue) positions"
        }
        let (planned, this) = (describe(acts.config), describe(config))
        throw ModelError(
            "\(what) planned for another model (\(planned)); this model has \(planned == this ? "other settings" : this)",
            hint:
                "plan activations and caches from the model that uses them (Activations(model:), KVCache(model:), SlotCache(model:))."
        )
    }

    /// The addresses of the model's and the plan's memory (valid while the model and `acts` live).
    func buffers(_ acts: Activations) -> Buffers {
        Buffers(
            parameters: ParameterMemory(base: parameters.address), gradients: ParameterMemory(base: gradients.address),
            activations: ActivationMemory(base: acts.storage.address), tables: positionTables.address,
            tokens: acts.tokens.address, targets: acts.targets.address)
    }

    /// Mean cross-entropy over the targets that are not ignored (0 when every target is ignored).
    func computeLoss(_ m: Buffers, _ acts: Activations, rows: Int) -> Float {
        let a = m.activations
        backend.crossEntropy(
            losses: a + acts.losses, logSumExp: a + acts.logSumExp, logits: a + acts.logits, targets: m.targets,
            rows: rows, vocabularySize: config.vocabularySize, ignoreIndex: Self.ignoreIndex)
        let (sum, counted) = backend.maskedSum(
            a + acts.losses, targets: m.targets, count: rows, ignoreIndex: Self.ignoreIndex)
        acts.targetCount = counted
        acts.hasLoss = true
        return counted == 0 ? 0 : Float(sum / Double(counted))
    }

    /// The forward pass over (B, T) tokens at absolute positions positionOffset..<positionOffset+T.
    /// With `cache`, keys and values are appended to it and attention reads the whole cache.
    func runForward(
        _ m: Buffers, _ acts: Activations, batchSize b: Int, length t: Int, positionOffset: Int,
        cache: CacheBuffers?, training: Bool, lastLogitsOnly: Bool = false
    ) {
        let c = config
        let (p, a) = (m.parameters, m.activations)
        let bt = b * t
        let dropout = training ? c.dropout : 0
        let x0 = a + acts.encoded
        if let slots = cache?.slots {
            // Sequences at positions of their own (continuous batching): one embedding call per sequence.
            for slot in slots {
                backend.embedding(
                    output: x0 + slot.start * c.width, tokens: m.tokens + slot.start, tokenTable: p + tokenEmbedding,
                    positionTable: positionTable(m), batchSize: 1, sequenceLength: slot.length, width: c.width,
                    positionOffset: slot.position)
            }
        } else {
            backend.embedding(
                output: x0, tokens: m.tokens, tokenTable: p + tokenEmbedding, positionTable: positionTable(m),
                batchSize: b, sequenceLength: t, width: c.width, positionOffset: positionOffset)
        }
        if dropout > 0 {
            backend.dropout(x0, count: bt * c.width, probability: dropout, seed: dropoutSeed(acts, c.layers, 0))
        }
        var x = ConstFloatPointer(x0)
        for l in 0..<c.layers {
            x = blockForward(
                m, acts, layer: l, input: x, batchSize: b, length: t, positionOffset: positionOffset, cache: cache,
                dropout: dropout)
        }
        if let finalNormWeight {
            normForward(
                m, out: a + acts.finalNormOut, mean: a + acts.finalNormMean, rstd: a + acts.finalNormRstd,
                input: x, weight: finalNormWeight, bias: finalNormBias, rows: bt)
            x = ConstFloatPointer(a + acts.finalNormOut)
        }
        if let cache, let slots = cache.slots {
            // Continuous batching: the logits of each sequence's last token, sequence i in row i.
            let decoding = cache.decodeRows.count
            if decoding > 0 {
                backend.linear(
                    output: a + acts.logits, input: x, weight: p + headWeight, bias: nil, rows: decoding,
                    inFeatures: c.width, outFeatures: c.vocabularySize)
            }
            for i in decoding..<slots.count {
                let last = slots[i].start + slots[i].length - 1
                backend.linear(
                    output: a + acts.logits + i * c.vocabularySize, input: x + last * c.width,
                    weight: p + headWeight, bias: nil, rows: 1, inFeatures: c.width, outFeatures: c.vocabularySize)
            }
        } else if lastLogitsOnly && t > 1 {
            // Decoding needs only each row's last position: the head's cost drops from t rows to one.
            for row in 0..<b {
                let last = row * t + t - 1
                backend.linear(
                    output: a + acts.logits + last * c.vocabularySize, input: x + last * c.width,
                    weight: p + headWeight, bias: nil, rows: 1, inFeatures: c.width, outFeatures: c.vocabularySize)
            }
        } else {
            backend.linear(
                output: a + acts.logits, input: x, weight: p + headWeight, bias: nil, rows: bt,
                inFeatures: c.width, outFeatures: c.vocabularySize)
        }
    }

    /// One block: x + attention, then + MLP, in the configured arrangement; returns the block's output.
    ///   pre-norm:             r1 = x + drop(attn(n1(x)));  out = r1 + drop(mlp(n2(r1)))
    ///   pre-norm, parallel:   r1 = x + drop(attn(n1(x)));  out = r1 + drop(mlp(n1(x)))
    ///   post-norm:            h = n1(x + drop(attn(x)));   out = n2(h + drop(mlp(h)))
    ///   post-norm, parallel:  r1 = x + drop(attn(x));      out = n1(r1 + drop(mlp(x)))
    private func blockForward(
        _ m: Buffers, _ acts: Activations, layer l: Int, input x: ConstFloatPointer, batchSize b: Int, length t: Int,
        positionOffset: Int, cache: CacheBuffers?, dropout: Float
    ) -> ConstFloatPointer {
        let c = config
        let (p, a) = (m.parameters, m.activations)
        let bt = b * t
        let w = blocks[l]
        let s = acts.blocks[acts.forTraining ? l : 0]
        // Attention branch: residual1 = x + drop(attn(input)).
        let attentionInput: ConstFloatPointer
        if c.normPlacement == .pre {
            normForward(
                m, out: a + s.norm1Out, mean: a + s.norm1Mean, rstd: a + s.norm1Rstd, input: x,
                weight: w.norm1Weight, bias: w.norm1Bias, rows: bt)
            attentionInput = ConstFloatPointer(a + s.norm1Out)
        } else {
            attentionInput = x
        }
        attentionForward(
            m, acts, layer: l, s, input: attentionInput, batchSize: b, length: t,
            positionOffset: positionOffset, cache: cache)
        let r1 = a + s.residual1
        backend.linear(
            output: r1, input: a + s.attentionOut, weight: p + w.projWeight, bias: w.projBias.map { p + $0 },
            rows: bt, inFeatures: c.attentionWidth, outFeatures: c.width)
        if dropout > 0 {
            backend.dropout(r1, count: bt * c.width, probability: dropout, seed: dropoutSeed(acts, l, 1))
        }
        backend.add(output: r1, r1, x, count: bt * c.width)
        // MLP branch: residual2 = base + drop(mlp(input)).
        let mlpInput: ConstFloatPointer
        let base: ConstFloatPointer
        switch (c.normPlacement, c.parallelBlock) {
        case (.pre, false):
            normForward(
                m, out: a + s.norm2Out, mean: a + s.norm2Mean, rstd: a + s.norm2Rstd, input: r1,
                weight: w.norm2Weight!, bias: w.norm2Bias, rows: bt)
            (mlpInput, base) = (ConstFloatPointer(a + s.norm2Out), ConstFloatPointer(r1))
        case (.pre, true):
            (mlpInput, base) = (ConstFloatPointer(a + s.norm1Out), ConstFloatPointer(r1))
        case (.post, false):
            normForward(
                m, out: a + s.norm1Out, mean: a + s.norm1Mean, rstd: a + s.norm1Rstd, input: r1,
                weight: w.norm1Weight, bias: w.norm1Bias, rows: bt)
            (mlpInput, base) = (ConstFloatPointer(a + s.norm1Out), ConstFloatPointer(a + s.norm1Out))
        case (.post, true):
            (mlpInput, base) = (x, ConstFloatPointer(r1))
        }
        let r2 = a + s.residual2
        mlpForward(m, layer: l, s, input: mlpInput, output: r2, rows: bt)
        if dropout > 0 {
            backend.dropout(r2, count: bt * c.width, probability: dropout, seed: dropoutSeed(acts, l, 2))
        }
        backend.add(output: r2, r2, base, count: bt * c.width)
        // Post-norm: the block's output is normalised.
        switch (c.normPlacement, c.parallelBlock) {
        case (.pre, _):
            return ConstFloatPointer(r2)
        case (.post, false):
            normForward(
                m, out: a + s.norm2Out, mean: a + s.norm2Mean, rstd: a + s.norm2Rstd, input: r2,
                weight: w.norm2Weight!, bias: w.norm2Bias, rows: bt)
            return ConstFloatPointer(a + s.norm2Out)
        case (.post, true):
            normForward(
                m, out: a + s.norm1Out, mean: a + s.norm1Mean, rstd: a + s.norm1Rstd, input: r2,
                weight: w.norm1Weight, bias: w.norm1Bias, rows: bt)
            return ConstFloatPointer(a + s.norm1Out)
        }
    }

    /// qkv = input·Wqkvᵀ (+b); rotary on q and k; causal attention into `attentionOut`.
    private func attentionForward(
        _ m: Buffers, _ acts: Activations, layer l: Int, _ s: BlockActivations, input: ConstFloatPointer,
        batchSize b: Int, length t: Int, positionOffset: Int, cache: CacheBuffers?
    ) {
        let c = config
        let (p, a) = (m.parameters, m.activations)
        let w = blocks[l]
        let qkv = a + s.qkv
        let (hs, qkvWidth, kvWidth) = (c.headSize, c.qkvWidth, c.kvHeads * c.headSize)
        backend.linear(
            output: qkv, input: input, weight: p + w.qkvWeight, bias: w.qkvBias.map { p + $0 }, rows: b * t,
            inFeatures: c.width, outFeatures: qkvWidth)
        if c.positions == .rotary {
            if let slots = cache?.slots {
                for slot in slots {
                    let rowQKV = qkv + slot.start * qkvWidth
                    rotate(
                        m, rowQKV, heads: c.heads, batchSize: 1, length: slot.length, positionOffset: slot.position,
                        inverse: false)
                    rotate(
                        m, rowQKV + c.heads * hs, heads: c.kvHeads, batchSize: 1, length: slot.length,
                        positionOffset: slot.position, inverse: false)
                }
            } else {
                rotate(m, qkv, heads: c.heads, batchSize: b, length: t, positionOffset: positionOffset, inverse: false)
                rotate(
                    m, qkv + c.heads * hs, heads: c.kvHeads, batchSize: b, length: t, positionOffset: positionOffset,
                    inverse: false)
            }
        }
        if let cache, let slots = cache.slots {
            // Each sequence appends to its own cache row at its own position and attends over that row alone.
            let layerBase = cache.layerBase(l, kvWidth: kvWidth)
            for slot in slots {
                let dst = layerBase + (slot.row * cache.capacity + slot.position) * kvWidth
                let src = qkv + slot.start * qkvWidth
                appendToCache(cache, at: dst, from: src, rows: slot.length)
            }
            // The decoding sequences (one token each, listed first): one call for all of them.
            let decoding = cache.decodeRows.count
            if decoding > 0 {
                var shape = attentionShape(acts, batchSize: decoding, length: 1)
                shape.kvRowStride = kvWidth
                shape.kvBatchStride = cache.capacity * kvWidth
                cache.decodeRows.withUnsafeBufferPointer { rows in
                    backend.decodeAttention(
                        output: a + s.attentionOut, probabilities: a + s.probabilities, query: qkv,
                        key: cache.keys + layerBase, value: cache.values + layerBase, rows: rows, shape: shape)
                }
            }
            // Prompt chunks: causal attention over what the row held before and the chunk itself.
            for slot in slots[decoding...] {
                let rowBase = layerBase + slot.row * cache.capacity * kvWidth
                var shape = attentionShape(acts, batchSize: 1, length: slot.length)
                shape.keyOffset = slot.position
                shape.kvRowStride = kvWidth
                shape.kvBatchStride = cache.capacity * kvWidth
                backend.attention(
                    output: a + s.attentionOut + slot.start * c.attentionWidth,
                    probabilities: a + s.probabilities + slot.start * c.heads * acts.keyCapacity,
                    query: qkv + slot.start * qkvWidth, key: cache.keys + rowBase, value: cache.values + rowBase,
                    shape: shape)
            }
            return
        }
        var shape = attentionShape(acts, batchSize: b, length: t)
        var keys = ConstFloatPointer(qkv + c.heads * hs)
        var values = ConstFloatPointer(qkv + (c.heads + c.kvHeads) * hs)
        if let cache {
            // Append this chunk's keys and values, then attend over everything cached so far.
            let layerBase = cache.layerBase(l, kvWidth: kvWidth)
            for row in 0..<b {
                let dst = layerBase + (row * cache.capacity + positionOffset) * kvWidth
                appendToCache(cache, at: dst, from: qkv + row * t * qkvWidth, rows: t)
            }
            keys = ConstFloatPointer(cache.keys + layerBase)
            values = ConstFloatPointer(cache.values + layerBase)
            shape.keyOffset = positionOffset
            shape.kvRowStride = kvWidth
            shape.kvBatchStride = cache.capacity * kvWidth
        }
        if cache == nil {
            backend.tiledAttention(
                output: a + s.attentionOut, logSumExp: a + s.attentionLSE, query: qkv, key: keys, value: values,
                shape: shape)
        } else {
            backend.attention(
                output: a + s.attentionOut, probabilities: a + s.probabilities, query: qkv, key: keys,
                value: values, shape: shape)
        }
    }

    /// Copies the keys and values of `rows` consecutive (B, T, QKV) rows at `source` into the cache's keys and
    /// values from offset `offset` on (rows of NKV·HS).
    private func appendToCache(_ cache: CacheBuffers, at offset: Int, from source: FloatPointer, rows: Int) {
        let c = config
        let kvWidth = c.kvHeads * c.headSize
        backend.copyRows(
            cache.keys + offset, destinationStride: kvWidth, from: source + c.heads * c.headSize,
            sourceStride: c.qkvWidth, rows: rows, width: kvWidth)
        backend.copyRows(
            cache.values + offset, destinationStride: kvWidth, from: source + (c.heads + c.kvHeads) * c.headSize,
            sourceStride: c.qkvWidth, rows: rows, width: kvWidth)
    }

    /// output = fc₂(act(fc₁(input))), without the residual add.
    private func mlpForward(
        _ m: Buffers, layer l: Int, _ s: BlockActivations, input: ConstFloatPointer, output: FloatPointer, rows: Int
    ) {
        let c = config
        let (p, a) = (m.parameters, m.activations)
        let w = blocks[l]
        backend.linear(
            output: a + s.fc, input: input, weight: p + w.fcWeight, bias: w.fcBias.map { p + $0 }, rows: rows,
            inFeatures: c.width, outFeatures: c.mlpInnerWidth)
        if let function = c.activation.elementwise {
            backend.activation(function, output: a + s.activated, input: a + s.fc, count: rows * c.mlpWidth)
        } else {
            backend.swiglu(output: a + s.activated, input: a + s.fc, rows: rows, width: c.mlpWidth)
        }
        backend.linear(
            output: output, input: a + s.activated, weight: p + w.mlpProjWeight,
            bias: w.mlpProjBias.map { p + $0 }, rows: rows, inFeatures: c.mlpWidth, outFeatures: c.width)
    }

    /// Where attention finds q, k and v in a (B, T, QKV) buffer, for queries at positions 0..<T.
    func attentionShape(_ acts: Activations, batchSize b: Int, length t: Int) -> AttentionShape {
        let c = config
        return AttentionShape(
            batchSize: b, queryLength: t, keyOffset: 0, heads: c.heads, kvHeads: c.kvHeads, headSize: c.headSize,
            queryRowStride: c.qkvWidth, queryBatchStride: t * c.qkvWidth, kvRowStride: c.qkvWidth,
            kvBatchStride: t * c.qkvWidth, outputRowStride: c.attentionWidth, probabilityRowStride: acts.keyCapacity)
    }

    /// LayerNorm or RMSNorm, as configured (RMSNorm leaves `mean` untouched).
    func normForward(
        _ m: Buffers, out: FloatPointer, mean: FloatPointer, rstd: FloatPointer, input: ConstFloatPointer,
        weight: ParameterOffset, bias: ParameterOffset?, rows: Int
    ) {
        let p = m.parameters
        switch config.norm {
        case .layerNorm:
            backend.layerNorm(
                output: out, mean: mean, rstd: rstd, input: input, weight: p + weight,
                bias: bias.map { p + $0 }, rows: rows, width: config.width, epsilon: config.normEpsilon)
        case .rmsNorm:
            backend.rmsNorm(
                output: out, rstd: rstd, input: input, weight: p + weight, rows: rows, width: config.width,
                epsilon: config.normEpsilon)
        }
    }

    /// Rotary embedding on `heads` heads starting at `data` in each (B, T, QKV) row.
    func rotate(
        _ m: Buffers, _ data: FloatPointer, heads: Int, batchSize: Int, length: Int, positionOffset: Int, inverse: Bool
    ) {
        let half = config.headSize / 2
        backend.rotary(
            data: data, cos: m.tables, sin: m.tables + config.contextLength * half, batchSize: batchSize,
            sequenceLength: length, heads: heads, headSize: config.headSize, rowStride: config.qkvWidth,
            batchStride: length * config.qkvWidth, positionOffset: positionOffset, inverse: inverse)
    }

    /// The table added to token embeddings: learned `wpe`, the sinusoidal table, or none (rotary).
    func positionTable(_ m: Buffers) -> ConstFloatPointer? {
        switch config.positions {
        case .learned: ConstFloatPointer(m.parameters + positionEmbedding!)
        case .sinusoidal: ConstFloatPointer(m.tables)
        case .rotary: nil
        }
    }

    /// The dropout seed of one site of one step (site 0 the embeddings, with layer = layers; 1 the attention
    /// branch; 2 the MLP branch): the step's seed hashed with the site, so different sites get independent masks.
    func dropoutSeed(_ acts: Activations, _ layer: Int, _ site: Int) -> UInt64 {
        var z = acts.dropoutSeed ^ (UInt64(layer * 3 + site + 1) &* 0xD1B5_4A32_D192_ED03)
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
