// GPT: a decoder-only Transformer over one flat fp32 parameter buffer (tensor names and layout:
// docs/checkpoint-format.md). This file holds the weights, the fixed position tables and initialisation; the passes are in
// GPT+Forward.swift, GPT+Backward.swift and GPT+Decode.swift. No autograd: each layer's backward is written
// out, as in llm.c's train_gpt2.c. The optimizer and the training loop live outside the model.

import FledgeTensor
import Foundation

/// Offsets of one Transformer block's parameters in the flat buffer (nil where the config has none).
struct BlockParameters {
    let norm1Weight: ParameterOffset
    let norm1Bias: ParameterOffset?
    let qkvWeight: ParameterOffset
    let qkvBias: ParameterOffset?
    let projWeight: ParameterOffset
    let projBias: ParameterOffset?
    let norm2Weight: ParameterOffset?
    let norm2Bias: ParameterOffset?
    let fcWeight: ParameterOffset
    let fcBias: ParameterOffset?
    let mlpProjWeight: ParameterOffset
    let mlpProjBias: ParameterOffset?

    init(layer: Int, layout: ParameterLayout) {
        let p = "h.\(layer)."
        norm1Weight = layout.offset(p + "ln_1.weight")
        norm1Bias = layout.optionalOffset(p + "ln_1.bias")
        qkvWeight = layout.offset(p + "attn.qkv.weight")
        qkvBias = layout.optionalOffset(p + "attn.qkv.bias")
        projWeight = layout.offset(p + "attn.proj.weight")
        projBias = layout.optionalOffset(p + "attn.proj.bias")
        norm2Weight = layout.optionalOffset(p + "ln_2.weight")
        norm2Bias = layout.optionalOffset(p + "ln_2.bias")
        fcWeight = layout.offset(p + "mlp.fc.weight")
        fcBias = layout.optionalOffset(p + "mlp.fc.bias")
        mlpProjWeight = layout.offset(p + "mlp.proj.weight")
        mlpProjBias = layout.optionalOffset(p + "mlp.proj.bias")
    }
}

/// A GPT model: configuration, parameters and their gradients, and the backend that runs it.
public final class GPT: @unchecked Sendable {
    public let config: ModelConfig
    public let layout: ParameterLayout
    /// All parameters, laid out by `layout`, in the backend's memory.
    public let parameters: BackendBuffer<Float>
    /// Gradients of the parameters (same layout); `backward` adds to them. Empty until training needs them
    /// (`allocateGradients()`, called by AdamW and by the first backward): generation, chat, evaluation and
    /// serving hold no gradient memory.
    public private(set) var gradients: BackendBuffer<Float>
    public let backend: any Backend

    let blocks: [BlockParameters]
    let tokenEmbedding: ParameterOffset
    let positionEmbedding: ParameterOffset?
    let finalNormWeight: ParameterOffset?
    let finalNormBias: ParameterOffset?
    /// The output head: `lm_head.weight`, or `wte.weight` when tied.
    let headWeight: ParameterOffset
    /// Fixed tables: sinusoidal (contextLength, C), or rotary cos and sin (contextLength, HS/2) each.
    let positionTables: BackendBuffer<Float>

    /// Value of a target that contributes no loss and no gradient (PyTorch's default `ignore_index`).
    public static let ignoreIndex: Int32 = -100

    /// Builds a model with GPT-2 initialisation from `seed` (see `initialize(seed:)`).
    public init(config: ModelConfig, backend: any Backend, seed: UInt64 = 1337) throws {
        try config.validate()
        try config.checkFitsInMemory()
        self.config = config
        self.backend = backend
        let layout = ParameterLayout(config: config)
        self.layout = layout
        parameters = try BackendBuffer<Float>(backend: backend, count: layout.totalCount)
        gradients = try BackendBuffer<Float>(backend: backend, count: 0)
        blocks = (0..<config.layers).map { BlockParameters(layer: $0, layout: layout) }
        tokenEmbedding = layout.offset("wte.weight")
        positionEmbedding = layout.optionalOffset("wpe.weight")
        finalNormWeight = layout.optionalOffset("ln_f.weight")
        finalNormBias = layout.optionalOffset("ln_f.bias")
        headWeight = layout.optionalOffset("lm_head.weight") ?? tokenEmbedding
        positionTables = try BackendBuffer<Float>(backend: backend, count: Self.positionTableCount(config))
        fillPositionTables()
        initialize(seed: seed)
    }

    /// Number of parameters.
    public var parameterCount: Int { layout.totalCount }

    /// GPT-2 initialisation: matrices and embeddings normal(0, 0.02); residual output projections
    /// normal(0, 0.02/√(2·layers)); biases 0; norm scales 1. Deterministic for a given seed.
    public func initialize(seed: UInt64) {
        var rng = RandomSource(seed: seed)
        let residualStd = Float(0.02 / (2.0 * Double(config.layers)).squareRoot())
        parameters.withHostAccess { p in
            for entry in layout.entries {
                let slice = UnsafeMutableBufferPointer(rebasing: p[entry.range])
                switch entry.kind {
                case .matrix, .embedding: rng.fillNormal(slice, std: 0.02)
                case .residualMatrix: rng.fillNormal(slice, std: residualStd)
                case .normWeight: slice.update(repeating: 1)
                case .bias: slice.update(repeating: 0)
                }
            }
        }
    }

    /// Sets every gradient to zero (before a new accumulation of micro-batches).
    public func zeroGradients() { gradients.zero() }

    /// Gives the model its gradient buffer (zeroed), if it has none yet.
    public func allocateGradients() throws(TensorError) {
        guard gradients.count != layout.totalCount else { return }
        gradients = try BackendBuffer<Float>(backend: backend, count: layout.totalCount)
    }

    private static func positionTableCount(_ c: ModelConfig) -> Int {
        switch c.positions {
        case .learned: 0
        case .sinusoidal: c.contextLength * c.width
        case .rotary: 2 * c.contextLength * (c.headSize / 2)
        }
    }

    /// The sinusoidal position table (contextLength × width, row-major) that a `.sinusoidal` model adds to its
    /// token embeddings: PE[pos, 2i] = sin(pos/10000^(2i/C)), PE[pos, 2i+1] = cos(·), computed in double.
    public static func sinusoidalTable(contextLength: Int, width: Int) -> [Float] {
        var table = [Float](repeating: 0, count: contextLength * width)
        for pos in 0..<contextLength {
            for i in stride(from: 0, to: width, by: 2) {
                let angle = Double(pos) / Foundation.pow(10_000, Double(i) / Double(width))
                table[pos * width + i] = Float(Foundation.sin(angle))
                if i + 1 < width { table[pos * width + i + 1] = Float(Foundation.cos(angle)) }
            }
        }
        return table
    }

    /// Sinusoidal: PE[pos, 2i] = sin(pos/θ^(2i/C)), PE[pos, 2i+1] = cos(·) (Vaswani et al. 2017, §3.5).
    /// Rotary: angle(pos, i) = pos·θ^(−2i/HS) for i < HS/2, in fp32 as PyTorch computes it (Su et al. 2021).
    private func fillPositionTables() {
        let c = config
        positionTables.withHostAccess { table in
            switch c.positions {
            case .learned:
                break
            case .sinusoidal:
                _ = table.update(fromContentsOf: Self.sinusoidalTable(contextLength: c.contextLength, width: c.width))
            case .rotary:
                let half = c.headSize / 2
                let sinOffset = c.contextLength * half
                for i in 0..<half {
                    let exponent = Float(2 * i) / Float(c.headSize)
                    let inverseFrequency = 1 / Float(Foundation.pow(Double(c.ropeTheta), Double(exponent)))
                    for pos in 0..<c.contextLength {
                        let angle = Float(pos) * inverseFrequency
                        table[pos * half + i] = Float(Foundation.cos(Double(angle)))
                        table[sinOffset + pos * half + i] = Float(Foundation.sin(Double(angle)))
                    }
                }
            }
        }
    }

    /// Checks that every token (and target) is a valid id before any kernel reads it.
    func checkTokens(_ tokens: UnsafeBufferPointer<Int32>, targets: UnsafeBufferPointer<Int32>?) throws(ModelError) {
        let v = Int32(config.vocabularySize)
        for (i, token) in tokens.enumerated() where token < 0 || token >= v {
            throw ModelError(
                "token id \(token) at position \(i) is outside the vocabulary (0..<\(v))",
                hint:
                    "the data was tokenized with a different tokenizer; re-run `fledge data prepare` with this model's tokenizer."
            )
        }
        if let targets {
            for (i, target) in targets.enumerated() where target != Self.ignoreIndex && (target < 0 || target >= v) {
                throw ModelError(
                    "target id \(target) at position \(i) is outside the vocabulary (0..<\(v)) and is not the ignore index \(Self.ignoreIndex)",
                    hint: "check the data's tokenizer, and mark ignored targets with \(Self.ignoreIndex).")
            }
        }
    }
}
