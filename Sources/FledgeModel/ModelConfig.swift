// ModelConfig: every architecture knob of the decoder-only Transformer, the cross-field checks, and the
// parameter count. The JSON form (config.json) uses the snake_case keys below; docs/checkpoint-format.md
// lists them. Presets live in ModelConfig+Presets.swift.

import FledgeTensor
import Foundation

/// Which normalisation layer the model uses.
public enum NormKind: String, Codable, Sendable, CaseIterable {
    case layerNorm = "layernorm"
    case rmsNorm = "rmsnorm"
}

/// Whether norms come before each sub-block (GPT-2, Llama) or after the residual add (original Transformer).
public enum NormPlacement: String, Codable, Sendable, CaseIterable {
    case pre
    case post
}

/// How token positions enter the model.
public enum PositionEncoding: String, Codable, Sendable, CaseIterable {
    /// A learned (contextLength, width) table added to the token embeddings (GPT-2).
    case learned
    /// The fixed sine/cosine table of "Attention Is All You Need", added to the token embeddings.
    case sinusoidal
    /// Rotary embeddings on queries and keys (RoFormer; Llama's rotate-half convention).
    case rotary
}

/// The MLP's non-linearity.
public enum MLPActivation: String, Codable, Sendable, CaseIterable {
    case gelu
    case relu
    case silu
    /// SiLU-gated linear unit: the first projection has 2·mlpWidth outputs [gate, up]; out = silu(gate)·up.
    case swiglu

    /// The element-wise function of GELU, ReLU and SiLU (nil for SwiGLU, which gates).
    var elementwise: ActivationFunction? {
        switch self {
        case .gelu: .gelu
        case .relu: .relu
        case .silu: .silu
        case .swiglu: nil
        }
    }
}

/// The architecture of a decoder-only Transformer.
public struct ModelConfig: Codable, Equatable, Sendable {
    public var vocabularySize: Int
    public var contextLength: Int
    public var layers: Int
    /// Model width (embedding size), C.
    public var width: Int
    /// Query heads, NH.
    public var heads: Int
    /// Key/value heads, NKV: equal to `heads` for multi-head, 1 for multi-query, in between for grouped-query.
    public var kvHeads: Int
    /// Hidden width of the MLP, F.
    public var mlpWidth: Int
    public var norm: NormKind
    public var normPlacement: NormPlacement
    public var positions: PositionEncoding
    public var activation: MLPActivation
    /// Attention and MLP read the same normalised input and are added together (PaLM, GPT-J).
    public var parallelBlock: Bool
    /// The output head reuses the token embedding matrix.
    public var tiedEmbeddings: Bool
    /// Biases on linear layers and LayerNorms.
    public var bias: Bool
    /// Dropout probability on the embeddings and on each residual branch (0 disables it).
    public var dropout: Float
    public var normEpsilon: Float
    /// Rotary base frequency θ.
    public var ropeTheta: Float
    /// Size of one attention head when it is not width ÷ heads (nil: width ÷ heads, which must then divide).
    public var explicitHeadSize: Int?

    public init(
        vocabularySize: Int, contextLength: Int, layers: Int, width: Int, heads: Int, kvHeads: Int? = nil,
        mlpWidth: Int? = nil, norm: NormKind = .layerNorm, normPlacement: NormPlacement = .pre,
        positions: PositionEncoding = .learned, activation: MLPActivation = .gelu, parallelBlock: Bool = false,
        tiedEmbeddings: Bool = true, bias: Bool = true, dropout: Float = 0, normEpsilon: Float = 1e-5,
        ropeTheta: Float = 10_000, headSize: Int? = nil
    ) {
        self.vocabularySize = vocabularySize
        self.contextLength = contextLength
        self.layers = layers
        self.width = width
        self.heads = heads
        self.kvHeads = kvHeads ?? heads
        self.mlpWidth = mlpWidth ?? 4 * width
        self.norm = norm
        self.normPlacement = normPlacement
        self.positions = positions
        self.activation = activation
        self.parallelBlock = parallelBlock
        self.tiedEmbeddings = tiedEmbeddings
        self.bias = bias
        self.dropout = dropout
        self.normEpsilon = normEpsilon
        self.ropeTheta = ropeTheta
        self.explicitHeadSize = headSize
    }

    enum CodingKeys: String, CodingKey {
        case vocabularySize = "vocab_size"
        case contextLength = "context_length"
        case layers = "n_layer"
        case width = "n_embd"
        case heads = "n_head"
        case kvHeads = "n_kv_head"
        case mlpWidth = "mlp_width"
        case norm
        case normPlacement = "norm_placement"
        case positions
        case activation
        case parallelBlock = "parallel_block"
        case tiedEmbeddings = "tie_embeddings"
        case bias
        case dropout
        case normEpsilon = "norm_eps"
        case ropeTheta = "rope_theta"
        case explicitHeadSize = "head_size"
    }

    /// Size of one attention head, HS: `head_size` when given, else width / heads.
    public var headSize: Int { explicitHeadSize ?? width / heads }
    /// Outputs of the fused query/key/value projection: (NH + 2·NKV)·HS.
    public var qkvWidth: Int { (heads + 2 * kvHeads) * headSize }
    /// Width of the attention output before its projection back to the model width: NH·HS.
    public var attentionWidth: Int { heads * headSize }
    /// Outputs of the first MLP projection (2F for SwiGLU).
    public var mlpInnerWidth: Int { activation == .swiglu ? 2 * mlpWidth : mlpWidth }

    /// Checks that the combination can work; the error says which field to change and how.
    public func validate() throws(ModelError) {
        func positive(_ value: Int, _ field: String, _ example: String) throws(ModelError) {
            if value < 1 { throw ModelError("\(field) is \(value); it must be at least 1", hint: example) }
        }
        try positive(vocabularySize, "vocab_size", "set it to the tokenizer's vocabulary size.")
        try positive(contextLength, "context_length", "use e.g. 256.")
        try positive(layers, "n_layer", "use e.g. 6.")
        try positive(width, "n_embd (width)", "use e.g. 384.")
        try positive(heads, "n_head", "use e.g. 6.")
        try positive(kvHeads, "n_kv_head", "use n_head for multi-head attention or 1 for multi-query attention.")
        try positive(mlpWidth, "mlp_width", "use 4 × width (e.g. \(4 * max(1, width))).")
        func atMost(_ value: Int, _ limit: Int, _ field: String) throws(ModelError) {
            if value > limit {
                throw ModelError(
                    "\(field) is \(value), more than Fledge's limit of \(limit)",
                    hint: "check the value; models of 1M–100M parameters use far smaller ones.")
            }
        }
        try atMost(vocabularySize, Self.limits.vocabulary, "vocab_size")
        try atMost(contextLength, Self.limits.context, "context_length")
        try atMost(layers, Self.limits.layers, "n_layer")
        try atMost(width, Self.limits.width, "n_embd (width)")
        try atMost(mlpWidth, Self.limits.mlpWidth, "mlp_width")
        if let explicitHeadSize {
            try positive(explicitHeadSize, "head_size", "use e.g. 64, or leave it out for width / n_head.")
            try atMost(heads, Self.limits.width, "n_head")
            try atMost(explicitHeadSize, Self.limits.width, "head_size")
            try atMost(heads * explicitHeadSize, Self.limits.width, "n_head × head_size")
        } else if width % heads != 0 {
            let lower = stride(from: heads, through: 1, by: -1).first { width % $0 == 0 } ?? 1
            let roundedWidth = (width + heads - 1) / heads * heads
            throw ModelError(
                "width \(width) is not divisible by n_head \(heads)",
                hint:
                    "use n_head \(lower), or width \(roundedWidth), so that each head gets width / n_head channels; or set head_size (--head-size) to give heads a size of their own."
            )
        }
        if kvHeads > heads || heads % kvHeads != 0 {
            let options = (1...heads).filter { heads % $0 == 0 }.map(String.init).joined(separator: ", ")
            throw ModelError(
                "n_head \(heads) is not divisible by n_kv_head \(kvHeads)",
                hint: "n_kv_head must divide n_head; choose one of \(options).")
        }
        if positions == .rotary && headSize % 2 != 0 {
            throw ModelError(
                explicitHeadSize == nil
                    ? "rotary positions need an even head size, but width \(width) / n_head \(heads) = \(headSize)"
                    : "rotary positions need an even head size, but head_size is \(headSize)",
                hint: explicitHeadSize == nil
                    ? "change width or n_head so that width / n_head is even, or use learned positions."
                    : "use an even head_size, or learned positions.")
        }
        if !(dropout >= 0 && dropout < 1) {
            throw ModelError("dropout is \(dropout); it must be in [0, 1)", hint: "use 0 (off) or e.g. 0.1.")
        }
        if !(normEpsilon > 0) {
            throw ModelError("norm_eps is \(normEpsilon); it must be positive", hint: "use 1e-5.")
        }
        if positions == .rotary && !(ropeTheta > 1) {
            throw ModelError("rope_theta is \(ropeTheta); it must be greater than 1", hint: "use 10000.")
        }
    }

    /// Largest values `validate` accepts: far beyond the models Fledge is for, small enough that no size
    /// computed from them overflows.
    public static let limits = (vocabulary: 1 << 24, context: 1 << 20, layers: 4096, width: 1 << 16, mlpWidth: 1 << 18)

    /// Throws when the weights and gradients alone (8 bytes a parameter) would not fit in this machine's memory:
    /// checked before anything is allocated.
    public func checkFitsInMemory() throws(ModelError) {
        let bytes = 8 * Double(parameterCount)
        let memory = Double(ProcessInfo.processInfo.physicalMemory)
        if bytes > 0.9 * memory {
            throw ModelError(
                String(
                    format:
                        "this model has %d parameters: its weights and gradients alone need %.1f GB, and this machine has %.1f GB",
                    parameterCount, bytes / 1e9, memory / 1e9),
                hint: "use fewer layers (n_layer), a smaller width (n_embd) or a smaller vocabulary.")
        }
    }

    /// The JSON keys whose values are integers.
    static let integerFields: Set<String> = [
        "vocab_size", "context_length", "n_layer", "n_embd", "n_head", "n_kv_head", "mlp_width", "head_size",
    ]

    /// The JSON keys that may be left out (config.json omits them when they take their default).
    static let optionalFields: Set<String> = ["head_size"]

    /// The exact number of parameters (from the parameter layout).
    public var parameterCount: Int { ParameterLayout(config: self).totalCount }

    /// The rule-of-thumb estimate 12·L·d² + V·d (attention 4d², MLP 8d² per layer, plus the embedding).
    public var estimatedParameterCount: Int { 12 * layers * width * width + vocabularySize * width }
}
