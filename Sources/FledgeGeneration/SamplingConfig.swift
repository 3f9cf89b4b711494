// SamplingConfig: how the next token is chosen — greedy or temperature sampling restricted by top-k, top-p
// (nucleus) and min-p, after the penalties (repetition, frequency, presence, no-repeat n-gram). Defaults
// follow the guide: temperature 0.8, top-k 50, top-p 0.95.

/// Sampling settings; `validate()` rejects contradictory ones with a message naming the setting.
public struct SamplingConfig: Codable, Sendable, Equatable {
    /// 0 picks the most likely token (greedy); higher flattens the distribution.
    public var temperature: Float = 0.8
    /// Keep only the k most likely tokens (nil: no limit).
    public var topK: Int? = 50
    /// Keep the smallest set of most likely tokens whose probabilities sum to at least this (1: no limit).
    public var topP: Float = 0.95
    /// Keep tokens at least this fraction as likely as the most likely one (0: no limit).
    public var minP: Float = 0
    /// CTRL's repetition penalty on every token already in the prompt or output: a positive logit is divided
    /// by it, a negative one multiplied (1: off).
    public var repetitionPenalty: Float = 1
    /// OpenAI's penalties on generated tokens: logit −= frequency × count + presence × (count > 0).
    public var frequencyPenalty: Float = 0
    public var presencePenalty: Float = 0
    /// Forbid any token that would repeat an n-gram of this size already in the prompt or output (0: off).
    public var noRepeatNGram = 0
    /// The random seed (nil: a fresh one, reported in the result so the run can be repeated).
    public var seed: UInt64?

    public init() {}

    /// Greedy decoding: always the most likely token.
    public static var greedy: SamplingConfig {
        var config = SamplingConfig()
        config.temperature = 0
        return config
    }

    /// Short samples in training logs and checkpoint comparisons: temperature 0.8, top-k 40, no nucleus, seed 1,
    /// so samples of different steps or checkpoints differ only because the models do.
    public static var samples: SamplingConfig {
        var config = SamplingConfig()
        (config.temperature, config.topK, config.topP, config.seed) = (0.8, 40, 1, 1)
        return config
    }

    /// Throws for settings that cannot work together.
    public func validate() throws {
        func fail(_ message: String, _ hint: String) -> GenerationError { GenerationError(message, hint: hint) }
        guard temperature.isFinite, temperature >= 0 else {
            throw fail(
                "temperature \(temperature) is negative or not a number",
                "use 0 (greedy) or a positive value such as 0.8.")
        }
        if let topK, topK < 1 {
            throw fail("top-k \(topK) keeps no token", "use a top-k of at least 1, or turn it off (--top-k off).")
        }
        guard topP > 0, topP <= 1 else {
            throw fail("top-p \(topP) is outside (0, 1]", "use a value such as 0.95; 1 turns nucleus sampling off.")
        }
        guard minP >= 0, minP <= 1 else {
            throw fail("min-p \(minP) is outside [0, 1]", "use a value such as 0.05; 0 turns it off.")
        }
        guard repetitionPenalty.isFinite, repetitionPenalty > 0 else {
            throw fail(
                "repetition penalty \(repetitionPenalty) must be positive",
                "use 1 (off) or a value slightly above, such as 1.1.")
        }
        guard frequencyPenalty.isFinite, presencePenalty.isFinite else {
            throw fail("frequency and presence penalties must be finite numbers", "use values between -2 and 2.")
        }
        guard noRepeatNGram >= 0 else {
            throw fail("no-repeat n-gram size \(noRepeatNGram) is negative", "use 0 (off) or a size such as 3.")
        }
    }
}
