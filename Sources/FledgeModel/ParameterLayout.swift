// ParameterLayout: where each named parameter tensor lives in the one flat fp32 buffer (llm.c's
// `fill_in_parameter_sizes`). Gradients and AdamW moments use the same layout. Names follow nanoGPT /
// Hugging Face GPT-2 (`wte`, `h.0.attn...`); linear weights are (out, in) as in PyTorch's nn.Linear.
// docs/checkpoint-format.md documents every name and shape.

/// What a parameter tensor is, which decides weight decay and initialisation.
public enum ParameterKind: String, Sendable, Codable {
    /// A weight matrix of a linear layer (weight decay applies).
    case matrix
    /// A linear layer whose output is added to the residual stream (init std scaled by 1/√(2L)).
    case residualMatrix
    /// A token or position embedding table.
    case embedding
    /// A norm's scale.
    case normWeight
    /// A bias vector (of a linear layer or LayerNorm).
    case bias
}

/// One named tensor inside the flat buffer.
public struct ParameterEntry: Sendable, Equatable {
    public let name: String
    public let offset: Int
    public let shape: [Int]
    public let kind: ParameterKind
    public var count: Int { shape.reduce(1, *) }
    public var range: Range<Int> { offset..<offset + count }
}

/// Name → (offset, shape) for every parameter of a model configuration.
public struct ParameterLayout: Sendable {
    /// Entries in buffer order.
    public private(set) var entries: [ParameterEntry] = []
    /// Total number of floats.
    public private(set) var totalCount = 0
    private var index: [String: Int] = [:]

    /// Builds the layout of `config` (which should be valid).
    public init(config c: ModelConfig) {
        add("wte.weight", [c.vocabularySize, c.width], .embedding)
        if c.positions == .learned { add("wpe.weight", [c.contextLength, c.width], .embedding) }
        for l in 0..<c.layers {
            let p = "h.\(l)."
            addNorm(p + "ln_1", c)
            add(p + "attn.qkv.weight", [c.qkvWidth, c.width], .matrix)
            if c.bias { add(p + "attn.qkv.bias", [c.qkvWidth], .bias) }
            add(p + "attn.proj.weight", [c.width, c.attentionWidth], .residualMatrix)
            if c.bias { add(p + "attn.proj.bias", [c.width], .bias) }
            if !c.parallelBlock { addNorm(p + "ln_2", c) }
            add(p + "mlp.fc.weight", [c.mlpInnerWidth, c.width], .matrix)
            if c.bias { add(p + "mlp.fc.bias", [c.mlpInnerWidth], .bias) }
            add(p + "mlp.proj.weight", [c.width, c.mlpWidth], .residualMatrix)
            if c.bias { add(p + "mlp.proj.bias", [c.width], .bias) }
        }
        if c.normPlacement == .pre { addNorm("ln_f", c) }
        if !c.tiedEmbeddings { add("lm_head.weight", [c.vocabularySize, c.width], .matrix) }
    }

    private mutating func addNorm(_ prefix: String, _ c: ModelConfig) {
        add(prefix + ".weight", [c.width], .normWeight)
        if c.norm == .layerNorm && c.bias { add(prefix + ".bias", [c.width], .bias) }
    }

    private mutating func add(_ name: String, _ shape: [Int], _ kind: ParameterKind) {
        let entry = ParameterEntry(name: name, offset: totalCount, shape: shape, kind: kind)
        index[name] = entries.count
        entries.append(entry)
        totalCount += entry.count
    }

    /// The entry called `name`, if the layout has one.
    public subscript(name: String) -> ParameterEntry? { index[name].map { entries[$0] } }

    /// The offset of `name`; the model only asks for names its own layout defines.
    func offset(_ name: String) -> ParameterOffset {
        guard let entry = self[name] else { preconditionFailure("no parameter named \(name)") }
        return ParameterOffset(entry.offset)
    }

    /// The offset of `name`, or nil when the layout has no such tensor (e.g. a bias that is switched off).
    func optionalOffset(_ name: String) -> ParameterOffset? { self[name].map { ParameterOffset($0.offset) } }
}
