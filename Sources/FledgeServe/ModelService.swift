// ModelService: the served model behind the OpenAI API — it turns a completions or chat request into
// generation requests for the ContinuousBatcher (prompt tokens, sampling settings, stops, constraints) and the
// engine's events back into OpenAI's response objects. docs/serve.md lists every field and how it maps.

import FledgeData
import FledgeFiles
import FledgeGeneration
import FledgeModel
import FledgeTensor
import FledgeTokenizer
import FledgeTraining
import Foundation

/// The model a server serves, and the translation between OpenAI requests and the engine.
public final class ModelService: @unchecked Sendable {
    public let id: String
    public let batcher: ContinuousBatcher
    public let tokenizer: any Tokenizer
    public let format: SequenceFormat
    public let encoder: DocumentEncoder?
    public let created = Int(Date().timeIntervalSince1970)
    let generator: Generator
    /// Whether chat messages are wrapped in the question/answer template (the model was fine-tuned on it).
    public let usesTemplate: Bool

    /// Loads the run or checkpoint at `path` and starts an engine of `slots` sequences and `queue` waiting ones.
    public init(
        path: String, id: String? = nil, slots: Int, queue: Int, threads: Int,
        streamInterval: Double = Double(ServeConfig().streamIntervalMilliseconds) / 1000
    ) throws {
        let loaded = try RunCheckpoint.loadForInference(path, backend: CPUBackend(threadCount: threads))
        format = try RunCheckpoint.loadFormat(loaded.folder) ?? SequenceFormat()
        tokenizer = loaded.tokenizer
        generator = try Generator(model: loaded.model, tokenizer: loaded.tokenizer, format: format)
        encoder = try? DocumentEncoder(tokenizer: loaded.tokenizer, format: format)
        usesTemplate = format.questionAnswerData == true && encoder != nil
        let folder = loaded.folder.lastPathComponent
        let run = loaded.folder.deletingLastPathComponent().lastPathComponent
        self.id = id ?? (["final", "latest", "best"].contains(folder) ? run : folder)
        batcher = try ContinuousBatcher(
            model: loaded.model, tokenizer: loaded.tokenizer, endOfSequence: generator.endOfSequence, slots: slots,
            queueLimit: queue, streamInterval: streamInterval)
        batcher.start()
    }

    public var contextLength: Int { batcher.contextLength }

    // MARK: - Requests

    /// A request ready for the engine.
    struct Prepared {
        var requests: [BatchRequest]
        var promptTokens: Int
        var stream: Bool
        var includeUsage: Bool
        /// nil: no log-probabilities; else the number of alternatives.
        var topLogprobs: Int?
        var echo: String?
    }

    /// The generation settings shared by both endpoints.
    private func settings(_ f: RequestFields, chat: Bool, promptTokens: Int) throws(APIError) -> (
        GenerationOptions, [any LogitsProcessor], [Int32: Float]
    ) {
        var o = GenerationOptions()
        let room = contextLength - promptTokens
        let defaultMax = chat ? room : 16
        o.maxTokens = min(try requestedMaxTokens(f) ?? defaultMax, room)
        var s = SamplingConfig()
        s.temperature = Float(try f.number("temperature", 0...2, default: 1)!)
        s.topP = Float(try f.number("top_p", 0.000_001...1, default: 1)!)
        s.topK = try f.int("top_k", 0...1_000_000, default: 0).flatMap { $0 == 0 ? nil : $0 }
        s.minP = Float(try f.number("min_p", 0...1, default: 0)!)
        s.presencePenalty = Float(try f.number("presence_penalty", -2...2, default: 0)!)
        s.frequencyPenalty = Float(try f.number("frequency_penalty", -2...2, default: 0)!)
        s.repetitionPenalty = Float(try f.number("repetition_penalty", 0.01...100, default: 1)!)
        if let seed = try f.int("seed", Int.min...Int.max) { s.seed = UInt64(bitPattern: Int64(seed)) }
        o.sampling = s
        o.stopAtEndOfSequence = !(try f.bool("ignore_eos"))
        o.stopStrings = try f.strings("stop", limit: 4).map { $0 }
        if o.stopStrings.contains(where: \.isEmpty) { throw .invalid("stop", "'stop' strings may not be empty") }
        var bias: [Int32: Float] = [:]
        if let raw = try f.dictionary("logit_bias") {
            guard raw.count <= 300 else { throw .invalid("logit_bias", "'logit_bias' may hold at most 300 tokens") }
            for (key, value) in raw {
                guard let id = Int32(key), id >= 0, Int(id) < tokenizer.vocabularySize else {
                    throw .invalid(
                        "logit_bias",
                        "'logit_bias' key \(key.debugDescription) is not a token id of this model (0 to \(tokenizer.vocabularySize - 1))"
                    )
                }
                guard let b = (value as? NSNumber)?.doubleValue, (-100...100).contains(b) else {
                    throw .invalid("logit_bias", "'logit_bias' values must be numbers between -100 and 100")
                }
                bias[id] = Float(b)
            }
        }
        var processors: [any LogitsProcessor] = []
        let ban = try f.strings("ban_words", limit: 1000)
        if !ban.isEmpty { processors.append(BannedSequences(words: ban, tokenizer: tokenizer)) }
        let allow = try f.strings("allow_words", limit: 10_000)
        if !allow.isEmpty {
            var ids = Set<Int32>()
            for word in allow {
                for spelling in [word, " " + word] {
                    ids.formUnion(tokenizer.encode(bytes: Array(spelling.utf8), allowSpecial: false))
                }
            }
            if let eos = generator.endOfSequence { ids.insert(eos) }
            processors.append(AllowedTokens(tokens: ids.sorted()))
        }
        if try f.bool("pilish") {
            do {
                processors.append(try PilishConstraint(tokenizer: tokenizer, endOfSequence: generator.endOfSequence))
            } catch { throw .invalid("pilish", "Pilish is not available for this tokenizer: \(error)") }
        }
        do { try s.validate() } catch { throw APIError(.badRequest, "\(error)") }
        return (o, processors, bias)
    }

    /// The reply length asked for (`max_completion_tokens`, else `max_tokens`); nil when neither is given.
    private func requestedMaxTokens(_ f: RequestFields) throws(APIError) -> Int? {
        try f.int(f.has("max_completion_tokens") ? "max_completion_tokens" : "max_tokens", 1...1_000_000)
    }

    /// A /v1/completions request.
    func prepareCompletion(_ f: RequestFields) throws(APIError) -> Prepared {
        try checkModel(f)
        if f.has("suffix") { throw .invalid("suffix", "'suffix' (insertion) is not supported by this model") }
        let prompt: [Int32]
        switch f.object["prompt"] {
        case let text as String:
            prompt = generator.encode(text)
        case let list as [Any] where list.count == 1 && list[0] is String:
            prompt = generator.encode(list[0] as! String)
        case let ids as [Any] where !ids.isEmpty && ids.allSatisfy({ JSONNumber.exactInteger($0) != nil }):
            prompt = ids.map { Int32(clamping: JSONNumber.exactInteger($0)!) }
            if let bad = prompt.first(where: { $0 < 0 || Int($0) >= tokenizer.vocabularySize }) {
                throw .invalid(
                    "prompt",
                    "'prompt' token \(bad) is not a token id of this model (0 to \(tokenizer.vocabularySize - 1))")
            }
        case nil, is NSNull:
            throw .invalid("prompt", "'prompt' is required", code: "missing_required_parameter")
        default:
            throw .invalid(
                "prompt", "'prompt' must be a string, a list of one string, or a list of token ids",
                code: "invalid_type")
        }
        try checkLength(prompt, param: "prompt")
        let n = try f.int("n", 1...16, default: 1)!
        if let bestOf = try f.int("best_of", 1...16), bestOf != n {
            throw .invalid("best_of", "'best_of' other than n is not supported")
        }
        let (options, processors, bias) = try settings(f, chat: false, promptTokens: prompt.count)
        let top = try f.int("logprobs", 0...20)
        var prepared = try prepared(
            f, prompt: prompt, n: n, options: options, processors: processors, bias: bias, top: top)
        if try f.bool("echo") {
            prepared.echo = String(decoding: (try? tokenizer.decodeBytes(prompt)) ?? [], as: UTF8.self)
        }
        return prepared
    }

    /// A /v1/chat/completions request.
    func prepareChat(_ f: RequestFields) throws(APIError) -> Prepared {
        try checkModel(f)
        guard let messages = f.object["messages"] as? [Any], !messages.isEmpty else {
            throw .invalid(
                "messages", "'messages' must be a non-empty list of {\"role\", \"content\"} objects",
                code: f.has("messages") ? "invalid_type" : "missing_required_parameter")
        }
        if f.has("tools") || f.has("functions") {
            throw .invalid(
                f.has("tools") ? "tools" : "functions", "tool and function calling is not supported by this model")
        }
        var parsed: [(role: String, content: String)] = []
        for (i, item) in messages.enumerated() {
            guard let m = item as? [String: Any], let role = m["role"] as? String else {
                throw .invalid("messages[\(i)]", "messages[\(i)] must be an object with a 'role' and a 'content'")
            }
            guard ["system", "developer", "user", "assistant"].contains(role) else {
                throw .invalid(
                    "messages[\(i)].role",
                    "messages[\(i)].role must be system, developer, user or assistant; got \(role.debugDescription)")
            }
            let content: String
            switch m["content"] {
            case let s as String: content = s
            case let parts as [Any]:
                var text = ""
                for part in parts {
                    guard let p = part as? [String: Any], p["type"] as? String == "text", let t = p["text"] as? String
                    else {
                        throw .invalid("messages[\(i)].content", "messages[\(i)].content may only hold text parts")
                    }
                    text += t
                }
                content = text
            default:
                throw .invalid(
                    "messages[\(i)].content", "messages[\(i)].content must be a string or a list of text parts",
                    code: "invalid_type")
            }
            parsed.append((role, content))
        }
        guard parsed.last?.role == "user" else {
            throw .invalid("messages", "the last message must be from the user")
        }
        // As `fledge chat` does: the oldest exchanges are dropped until the prompt leaves room for a reply (the
        // token limit, at most half the context); system messages stay.
        let reserve = max(1, min(try requestedMaxTokens(f) ?? contextLength / 2, contextLength / 2))
        let system = parsed.filter { $0.role == "system" || $0.role == "developer" }
        var conversation = parsed.filter { $0.role == "user" || $0.role == "assistant" }
        var prompt = chatPrompt(system + conversation)
        while prompt.count + reserve > contextLength && conversation.count > 1 {
            conversation.removeFirst()
            while conversation.count > 1 && conversation.first?.role != "user" { conversation.removeFirst() }
            prompt = chatPrompt(system + conversation)
        }
        try checkLength(prompt, param: "messages")
        let n = try f.int("n", 1...16, default: 1)!
        var (options, processors, bias) = try settings(f, chat: true, promptTokens: prompt.count)
        if !usesTemplate { options.stopStrings += ["\nUser:"] }
        let wantLogprobs = try f.bool("logprobs")
        let top = try f.int("top_logprobs", 0...20)
        if top != nil && !wantLogprobs {
            throw .invalid("top_logprobs", "'top_logprobs' needs 'logprobs': true")
        }
        return try prepared(
            f, prompt: prompt, n: n, options: options, processors: processors, bias: bias,
            top: wantLogprobs ? (top ?? 0) : nil)
    }

    private func prepared(
        _ f: RequestFields, prompt: [Int32], n: Int, options: GenerationOptions, processors: [any LogitsProcessor],
        bias: [Int32: Float], top: Int?
    ) throws(APIError) -> Prepared {
        let stream = try f.bool("stream")
        let streamOptions = try f.dictionary("stream_options")
        if streamOptions != nil && !stream {
            throw .invalid("stream_options", "'stream_options' is only allowed when 'stream' is true")
        }
        let includeUsage =
            try streamOptions.map { o throws(APIError) in try RequestFields(object: o).bool("include_usage") } ?? false
        var requests: [BatchRequest] = []
        let seed = options.sampling.seed ?? UInt64.random(in: 0...UInt64(UInt32.max))
        for i in 0..<n {
            var o = options
            o.sampling.seed = seed &+ UInt64(i)
            var r = BatchRequest(prompt: prompt, options: o)
            r.logitBias = bias
            // Each choice gets constraint instances of its own (they keep per-sequence state).
            r.processors = i == 0 ? processors : (try? rebuild(processors)) ?? processors
            r.topLogprobs = top
            requests.append(r)
        }
        return Prepared(
            requests: requests, promptTokens: prompt.count, stream: stream, includeUsage: includeUsage,
            topLogprobs: top, echo: nil)
    }

    /// Fresh copies of stateful constraints for another choice.
    private func rebuild(_ processors: [any LogitsProcessor]) throws -> [any LogitsProcessor] {
        try processors.map { p in
            if p is PilishConstraint {
                return try PilishConstraint(tokenizer: tokenizer, endOfSequence: generator.endOfSequence)
            }
            return p
        }
    }

    private func checkModel(_ f: RequestFields) throws(APIError) {
        if let model = try f.string("model"), model != id {
            throw APIError(
                .notFound, "The model '\(model)' does not exist; this server serves '\(id)'", param: "model",
                code: "model_not_found")
        }
    }

    private func checkLength(_ prompt: [Int32], param: String) throws(APIError) {
        guard !prompt.isEmpty else { throw .invalid(param, "'\(param)' is empty") }
        guard prompt.count < contextLength else {
            throw APIError(
                .badRequest,
                "This model's maximum context length is \(contextLength) tokens. However, your \(param) resulted in \(prompt.count) tokens, leaving no room for a reply.",
                param: param, code: "context_length_exceeded")
        }
    }

    /// The prompt of a conversation. With the question/answer template: each user message is a question, each
    /// assistant message the answer to the one before (closed with EOS), system and developer messages go before
    /// the next question. Without it: "System: …\n\nUser: …\n\nAssistant: …\n\n" and a final "Assistant:".
    func chatPrompt(_ messages: [(role: String, content: String)]) -> [Int32] {
        guard usesTemplate, let encoder else {
            var text = ""
            for m in messages {
                let name = m.role == "user" ? "User" : m.role == "assistant" ? "Assistant" : "System"
                text += "\(name): \(m.content)\n\n"
            }
            return generator.encode(text + "Assistant:")
        }
        var cache = MergeCache()
        var tokens: [Int32] = []
        var preamble = ""
        var i = 0
        while i < messages.count {
            let m = messages[i]
            switch m.role {
            case "user":
                let (prompt, closing) = encoder.turn(question: preamble + m.content, cache: &cache)
                preamble = ""
                tokens += prompt
                if i + 1 < messages.count, messages[i + 1].role == "assistant" {
                    tokens += encoder.tokens(Array(messages[i + 1].content.utf8), cache: &cache) + closing
                    i += 1
                } else if i + 1 < messages.count {
                    tokens += closing
                }
            case "assistant":
                tokens += encoder.tokens(Array(m.content.utf8), cache: &cache)
            default:
                preamble += m.content + "\n"
            }
            i += 1
        }
        return tokens
    }

    // MARK: - Responses

    static func finishReason(_ r: FinishReason) -> String {
        switch r {
        case .endOfSequence, .stopString, .noAllowedToken: "stop"
        case .length, .context, .cancelled: "length"
        }
    }

    func tokenText(_ id: Int32) -> (String, [Int]) {
        let bytes = (try? tokenizer.decodeBytes([id])) ?? []
        return (String(decoding: bytes, as: UTF8.self), bytes.map(Int.init))
    }

    /// Chat's logprobs object for some tokens.
    func chatLogprobs(_ items: [TokenLogprob]) -> [String: Any] {
        [
            "content": items.map { lp -> [String: Any] in
                let (text, bytes) = tokenText(lp.token)
                return [
                    "token": text, "logprob": Double(lp.logprob), "bytes": bytes,
                    "top_logprobs": lp.top.map { alt -> [String: Any] in
                        let (t, b) = tokenText(alt.token)
                        return ["token": t, "logprob": Double(alt.logprob), "bytes": b]
                    },
                ]
            }, "refusal": NSNull(),
        ]
    }

    /// The legacy completions logprobs object for some tokens (text offsets from `offset`).
    func completionLogprobs(_ items: [TokenLogprob], offset: Int) -> [String: Any] {
        var tokens: [String] = []
        var offsets: [Int] = []
        var position = offset
        for lp in items {
            let (text, _) = tokenText(lp.token)
            tokens.append(text)
            offsets.append(position)
            position += text.utf8.count
        }
        return [
            "tokens": tokens, "token_logprobs": items.map { Double($0.logprob) },
            "top_logprobs": items.map { lp in
                Dictionary(lp.top.map { (tokenText($0.token).0, Double($0.logprob)) }, uniquingKeysWith: { a, _ in a })
            },
            "text_offset": offsets,
        ]
    }

    static func usage(prompt: Int, completion: Int) -> [String: Any] {
        ["prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion]
    }
}
