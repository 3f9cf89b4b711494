// Generator: text from a model — every prompt of a batch processed in one batched pass through the KV
// cache, then one token per row per step. Each step runs the logits processors (the sampling penalties, then
// the caller's constraints), samples, streams the new text, and stops a row at the end-of-sequence token, a
// stop string or its token limit; the limit is capped by the context length (finish reason `context`).
// Prompts of different lengths share the cache: the common length is prefilled at once and the longer rows
// then feed their remaining prompt tokens while the others already generate, so no padding is ever attended.

import FledgeData
import FledgeModel
import FledgeTensor
import FledgeTokenizer
import Foundation

/// What a generation may produce and when it stops.
public struct GenerationOptions: Sendable {
    /// Most tokens generated per prompt (capped by the context length).
    public var maxTokens = 256
    public var sampling = SamplingConfig()
    /// The output ends before the first of these (which is not part of it).
    public var stopStrings: [String] = []
    /// End at the end-of-sequence token (not part of the output); false generates past it.
    public var stopAtEndOfSequence = true

    public init() {}
}

/// Why a sequence ended.
public enum FinishReason: String, Codable, Sendable {
    case endOfSequence = "end_of_sequence"
    case stopString = "stop_string"
    /// `maxTokens` reached.
    case length
    /// The context window is full.
    case context
    /// The logits processors allowed no token.
    case noAllowedToken = "no_allowed_token"
    /// The caller cancelled it (a client went away), or the engine shut down.
    case cancelled
}

/// One prompt's output and timings.
public struct GenerationResult: Sendable {
    /// The generated ids (without the end-of-sequence token).
    public var tokens: [Int32] = []
    /// The generated text, ending before a stop string.
    public var text = ""
    public var finishReason = FinishReason.length
    public var promptTokens = 0
    /// The seed used (rows of a batch use seed, seed + 1, …).
    public var seed: UInt64 = 0
    /// Seconds from the call to the first sampled token (the prompt pass included).
    public var timeToFirstToken = 0.0
    /// Seconds from the call to the end of this row.
    public var seconds = 0.0

    /// Tokens per second after the first token.
    public var decodeTokensPerSecond: Double {
        tokens.count > 1 && seconds > timeToFirstToken ? Double(tokens.count - 1) / (seconds - timeToFirstToken) : 0
    }
}

/// Generates text from a model and its tokenizer.
public final class Generator {
    public let model: GPT
    public let tokenizer: any Tokenizer
    public let endOfSequence: Int32?
    /// Put before every text prompt (when the training data began its documents with BOS).
    public let beginningOfSequence: Int32?
    private let sampler: Sampler
    private var cache: KVCache?
    private var logits: [Float] = []
    private var feed: [Int32] = []

    /// The end and beginning of sequence of the data a checkpoint was trained on (its sequence-format.json):
    /// the EOS token it named (`<EOS>`, say) ends generation, and BOS goes before each prompt when the
    /// documents began with it. A format the tokenizer cannot satisfy falls back to the default names.
    public convenience init(model: GPT, tokenizer: any Tokenizer, format: SequenceFormat) throws {
        let encoder = try? DocumentEncoder(tokenizer: tokenizer, format: format)
        try self.init(
            model: model, tokenizer: tokenizer, endOfSequence: encoder?.eos,
            beginningOfSequence: format.addBOS ? encoder?.bos : nil)
    }

    /// `endOfSequence` defaults to the tokenizer's (<|endoftext|>, <eos>, …) if it has one.
    public init(
        model: GPT, tokenizer: any Tokenizer, endOfSequence: Int32? = nil, beginningOfSequence: Int32? = nil
    ) throws {
        guard tokenizer.vocabularySize <= model.config.vocabularySize else {
            throw GenerationError(
                "the tokenizer has \(tokenizer.vocabularySize) tokens but the model only \(model.config.vocabularySize)",
                hint: "use the tokenizer.json saved with this checkpoint.")
        }
        self.model = model
        self.tokenizer = tokenizer
        self.endOfSequence = endOfSequence ?? DocumentEncoder.endOfSequence(in: tokenizer)
        self.beginningOfSequence = beginningOfSequence
        sampler = Sampler(vocabularySize: model.config.vocabularySize)
    }

    /// The context length of the model.
    public var contextLength: Int { model.config.contextLength }

    /// The ids of a text prompt (special-token strings such as <|endoftext|> become their ids), after BOS when
    /// the model was trained with it (unless the prompt already starts with it).
    public func encode(_ text: String) -> [Int32] {
        let ids = tokenizer.encode(bytes: Array(text.utf8), allowSpecial: true)
        guard let bos = beginningOfSequence, ids.first != bos else { return ids }
        return [bos] + ids
    }

    /// A short sample for training logs and checkpoint comparisons: an empty prompt starts from the
    /// end-of-sequence token (a document boundary), a prompt longer than the context keeps its end.
    public func sample(_ prompt: String, tokens: Int, sampling: SamplingConfig) throws -> String {
        var ids = encode(prompt)
        if ids.isEmpty { ids = [endOfSequence ?? 0] }
        var options = GenerationOptions()
        options.maxTokens = max(1, tokens)
        options.sampling = sampling
        return try generate(prompt: Array(ids.suffix(contextLength - 1)), options: options).text
    }

    /// Generates a continuation of one prompt; `onText` receives the text as it is produced.
    public func generate(
        prompt: [Int32], options: GenerationOptions, processors: [any LogitsProcessor] = [],
        onText: ((String) -> Void)? = nil
    ) throws -> GenerationResult {
        try generate(prompts: [prompt], options: options, processors: processors) { _, text in onText?(text) }[0]
    }

    /// Throws for settings or prompts that cannot work: bad sampling settings, no prompt, an empty prompt, a
    /// prompt longer than the context, a token limit below 1.
    public func validate(prompts: [[Int32]], options: GenerationOptions) throws {
        try options.sampling.validate()
        let context = contextLength
        guard !prompts.isEmpty else {
            throw GenerationError("no prompt to generate from", hint: "give at least one prompt.")
        }
        guard options.maxTokens >= 1 else {
            throw GenerationError(
                "the token limit \(options.maxTokens) allows no output", hint: "ask for at least 1 token.")
        }
        for (row, prompt) in prompts.enumerated() {
            let name = prompts.count > 1 ? "prompt \(row + 1)" : "the prompt"
            guard !prompt.isEmpty else {
                throw GenerationError("\(name) is empty", hint: "give some text to continue.")
            }
            guard prompt.count <= context else {
                throw GenerationError(
                    "\(name) is \(prompt.count) tokens but the model's context holds \(context)",
                    hint: "shorten it to at most \(context - 1) tokens (the end of the text matters most).")
            }
        }
    }

    /// Generates continuations of several prompts as one batch; `onText(row, text)` streams each row.
    public func generate(
        prompts: [[Int32]], options: GenerationOptions, processors: [any LogitsProcessor] = [],
        onText: ((Int, String) -> Void)? = nil
    ) throws -> [GenerationResult] {
        try validate(prompts: prompts, options: options)
        let context = contextLength
        let start = Date()
        let b = prompts.count
        let v = model.config.vocabularySize
        let seed = options.sampling.seed ?? UInt64.random(in: 0...UInt64(UInt32.max))
        var chain: [any LogitsProcessor] = []
        let s = options.sampling
        if s.repetitionPenalty != 1 { chain.append(RepetitionPenalty(penalty: s.repetitionPenalty)) }
        if s.frequencyPenalty != 0 || s.presencePenalty != 0 {
            chain.append(FrequencyPresencePenalty(frequency: s.frequencyPenalty, presence: s.presencePenalty))
        }
        if s.noRepeatNGram > 0 { chain.append(NoRepeatNGram(size: s.noRepeatNGram)) }
        chain += processors

        if cache?.batchSize != b { cache = try KVCache(model: model, batchSize: b) }
        let cache = cache!
        cache.reset()
        if logits.count != b * v { logits = [Float](repeating: 0, count: b * v) }
        var results = prompts.map { GenerationResult(promptTokens: $0.count) }
        var rngs = (0..<b).map { RandomSource(seed: seed &+ UInt64($0)) }
        var streams = prompts.map {
            TextStream(tokenizer: tokenizer, after: $0.last, stops: options.stopStrings)
        }
        var done = [Bool](repeating: false, count: b)
        for row in 0..<b { results[row].seed = seed &+ UInt64(row) }

        func finish(_ row: Int, _ reason: FinishReason) {
            let rest = streams[row].finish()
            if !rest.isEmpty { onText?(row, rest) }
            done[row] = true
            results[row].finishReason = reason
            results[row].text = String(decoding: streams[row].text, as: UTF8.self)
            results[row].seconds = Date().timeIntervalSince(start)
            if results[row].tokens.isEmpty { results[row].timeToFirstToken = results[row].seconds }
        }

        // The common prompt length in one pass.
        let common = prompts.map(\.count).min()!
        feed = prompts.flatMap { $0[..<common] }
        try run(count: common, cache: cache)
        var position = common
        feed = [Int32](repeating: 0, count: b)
        while true {
            for row in 0..<b where !done[row] {
                let prompt = prompts[row]
                if position < prompt.count {
                    feed[row] = prompt[position]
                    continue
                }
                let next: Int32? = logits.withUnsafeMutableBufferPointer { all in
                    let rowLogits = UnsafeMutableBufferPointer(rebasing: all[(row * v)..<((row + 1) * v)])
                    for i in tokenizer.vocabularySize..<v { rowLogits[i] = -.infinity }
                    let history = TokenHistory(prompt: prompt, generated: results[row].tokens)
                    for processor in chain { processor.process(rowLogits, history: history) }
                    return sampler.sample(UnsafeBufferPointer(rowLogits), config: s, rng: &rngs[row])
                }
                guard let next else {
                    finish(row, .noAllowedToken)
                    continue
                }
                if results[row].tokens.isEmpty { results[row].timeToFirstToken = Date().timeIntervalSince(start) }
                if next == endOfSequence && options.stopAtEndOfSequence {
                    finish(row, .endOfSequence)
                    continue
                }
                results[row].tokens.append(next)
                feed[row] = next
                let (text, stopped) = try streams[row].append(next)
                if !text.isEmpty { onText?(row, text) }
                if stopped {
                    finish(row, .stopString)
                } else if results[row].tokens.count >= options.maxTokens {
                    finish(row, .length)
                } else if position >= context {
                    finish(row, .context)
                }
            }
            if !done.contains(false) { break }
            try run(count: 1, cache: cache)
            position += 1
        }
        return results
    }

    /// Feeds `feed` ((B, count) tokens) through the cache into `logits`.
    private func run(count: Int, cache: KVCache) throws {
        try feed.withUnsafeBufferPointer { tokens in
            try logits.withUnsafeMutableBufferPointer { out in
                try model.decode(tokens: tokens, count: count, cache: cache, logits: out)
            }
        }
    }
}
