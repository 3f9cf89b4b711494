// ModelConfig+Presets: named model sizes from ~1M to ~100M parameters, GPT-2 style (pre-LayerNorm, learned
// positions, GELU, tied head, biases). The vocabulary is a default; training replaces it with the
// tokenizer's size. The table of exact counts is printed by `fledge model presets`.

/// A named model size.
public enum ModelPreset: String, CaseIterable, Sendable, Codable {
    case tiny
    case m20 = "20m"
    case m50 = "50m"
    case m100 = "100m"

    /// The architecture, with `vocabularySize` when given (else the preset's default vocabulary).
    public func config(vocabularySize: Int? = nil) -> ModelConfig {
        let (layers, width, heads, mlp, context, vocab): (Int, Int, Int, Int, Int, Int) =
            switch self {
            case .tiny: (4, 128, 4, 512, 256, 2048)
            case .m20: (10, 384, 6, 1536, 512, 8192)
            case .m50: (12, 512, 8, 2048, 1024, 16384)
            case .m100: (16, 640, 10, 2560, 1024, 32768)
            }
        return ModelConfig(
            vocabularySize: vocabularySize ?? vocab, contextLength: context, layers: layers, width: width,
            heads: heads, mlpWidth: mlp)
    }
}
