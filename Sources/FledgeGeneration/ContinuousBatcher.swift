// ContinuousBatcher: many generations at once over one model, for a server. Requests are queued from any
// thread; one engine thread admits them into free slots of a SlotCache and runs one batched pass per token
// over every active sequence, so a request that arrives mid-way joins the running batch and a finished or
// cancelled one leaves it at once. A new request's prompt rides along in the same passes (up to the cache's
// chunk size of prompt tokens a pass), so the weights are read once for the decoding rows and the prompts.
// Each sequence samples, stops and streams exactly as the Generator does (its own seed, penalties, constraints, stop strings held back, no split characters).
// With a stream interval, a sequence's text after its first goes out in fewer, larger events (at most that
// long after it was decoded).
// Limits (slots, queue) are fixed at creation; beyond them `submit` refuses at once.

import FledgeModel
import FledgeTensor
import FledgeTokenizer
import Foundation

/// One generation request.
public struct BatchRequest: @unchecked Sendable {
    public var prompt: [Int32]
    public var options: GenerationOptions
    /// Added to the logit of each token before sampling (OpenAI's logit_bias).
    public var logitBias: [Int32: Float] = [:]
    /// Extra constraints (Pilish, banned or allowed words): instances of this request's own.
    public var processors: [any LogitsProcessor] = []
    /// Report the chosen token's log-probability and this many alternatives (nil: no log-probabilities).
    public var topLogprobs: Int?

    public init(prompt: [Int32], options: GenerationOptions) {
        self.prompt = prompt
        self.options = options
    }
}

/// A generated token's log-probability and the most likely alternatives (log-softmax of the processed logits).
public struct TokenLogprob: Sendable, Equatable {
    public let token: Int32
    public let logprob: Float
    public let top: [Alternative]

    public struct Alternative: Sendable, Equatable {
        public let token: Int32
        public let logprob: Float
    }
}

/// What a request produces, in order: `started`, any number of `text`, then `finished`.
public enum BatchEvent: Sendable, Equatable {
    case started(promptTokens: Int, seed: UInt64)
    /// New text (never half a character, never the start of a stop string) and the log-probabilities of the
    /// tokens since the last event.
    case text(String, logprobs: [TokenLogprob])
    case finished(FinishReason, completionTokens: Int)
}

/// Why `submit` refused a request.
public enum BatcherRefusal: Error, Equatable {
    /// Every slot and queue place is taken; try again later.
    case busy(active: Int, queued: Int)
    /// The engine is shutting down.
    case shuttingDown
}

/// A submitted request: its events and a way to cancel it.
public final class BatchTicket: @unchecked Sendable {
    public let events: AsyncStream<BatchEvent>
    fileprivate let continuation: AsyncStream<BatchEvent>.Continuation
    private let lock = NSLock()
    private var cancelledFlag = false

    fileprivate init() {
        (events, continuation) = AsyncStream.makeStream(of: BatchEvent.self, bufferingPolicy: .unbounded)
    }

    /// Ends the request at the next step (its slot is freed then).
    public func cancel() {
        lock.lock()
        cancelledFlag = true
        lock.unlock()
    }

    fileprivate var isCancelled: Bool {
        lock.lock()
        defer { lock.unlock() }
        return cancelledFlag
    }
}

/// The engine: a SlotCache, a queue, and the thread that runs them.
public final class ContinuousBatcher: @unchecked Sendable {
    public let model: GPT
    public let tokenizer: any Tokenizer
    public let endOfSequence: Int32?
    public let slotCount: Int
    public let queueLimit: Int
    /// Nanoseconds a sequence's new text may wait to go out with the next tokens' (its first text goes at once):
    /// fewer, larger stream events when many sequences decode at once.
    private let streamInterval: UInt64
    private let cache: SlotCache
    private let sampler: Sampler
    private let condition = NSCondition()
    private var queue: [(BatchRequest, BatchTicket)] = []
    private var rows: [Int: Row] = [:]  // slot → sequence
    private var stopping = false
    private var thread: Thread?
    /// Decoding steps run (passes with at least one decoding row) and the rows they carried (for measurements;
    /// read from any thread).
    public var steps: Int { counted.steps }
    public var rowSteps: Int { counted.rows }
    /// Prompts prefilled.
    public var prefills: Int { counted.prefills }
    private var counts = (steps: 0, rows: 0, prefills: 0)
    private var counted: (steps: Int, rows: Int, prefills: Int) {
        condition.lock()
        defer { condition.unlock() }
        return counts
    }

    /// One sequence in a slot.
    private final class Row {
        let request: BatchRequest
        let ticket: BatchTicket
        var rng: RandomSource
        var stream: TextStream
        var chain: [any LogitsProcessor]
        var generated: [Int32] = []
        var next: Int32 = 0
        var pending: [TokenLogprob] = []
        /// Text ready to stream but held for `streamInterval`, and when the row last streamed (0: never).
        var unsent = ""
        var lastSent: UInt64 = 0
        /// Prompt tokens in the cache so far; the row decodes once the whole prompt is in.
        var prefilled = 0
        var decoding: Bool { prefilled == request.prompt.count }

        init(_ request: BatchRequest, _ ticket: BatchTicket, seed: UInt64, tokenizer: any Tokenizer) {
            self.request = request
            self.ticket = ticket
            rng = RandomSource(seed: seed)
            stream = TextStream(tokenizer: tokenizer, after: request.prompt.last, stops: request.options.stopStrings)
            let s = request.options.sampling
            var chain: [any LogitsProcessor] = []
            if s.repetitionPenalty != 1 { chain.append(RepetitionPenalty(penalty: s.repetitionPenalty)) }
            if s.frequencyPenalty != 0 || s.presencePenalty != 0 {
                chain.append(FrequencyPresencePenalty(frequency: s.frequencyPenalty, presence: s.presencePenalty))
            }
            if s.noRepeatNGram > 0 { chain.append(NoRepeatNGram(size: s.noRepeatNGram)) }
            self.chain = chain + request.processors
        }
    }

    /// An engine of `slots` concurrent sequences and `queueLimit` waiting ones; a pass carries at most `chunkSize`
    /// prompt tokens (a longer prompt takes several passes, beside the decoding rows).
    public init(
        model: GPT, tokenizer: any Tokenizer, endOfSequence: Int32?, slots: Int, queueLimit: Int,
        capacity: Int? = nil, chunkSize: Int = 64, streamInterval: Double = 0
    ) throws {
        guard tokenizer.vocabularySize <= model.config.vocabularySize else {
            throw GenerationError(
                "the tokenizer has \(tokenizer.vocabularySize) tokens but the model only \(model.config.vocabularySize)",
                hint: "use the tokenizer.json saved with this checkpoint.")
        }
        guard queueLimit >= 0, queueLimit <= 1_000_000 else {
            throw GenerationError("a queue of \(queueLimit) requests", hint: "use 0 to 1,000,000.")
        }
        self.model = model
        self.streamInterval = UInt64(max(0, streamInterval) * 1e9)
        self.tokenizer = tokenizer
        self.endOfSequence = endOfSequence
        self.slotCount = slots
        self.queueLimit = queueLimit
        cache = try SlotCache(model: model, slots: slots, capacity: capacity, chunkSize: chunkSize)
        sampler = Sampler(vocabularySize: model.config.vocabularySize)
    }

    /// The context length of the model.
    public var contextLength: Int { cache.capacity }

    /// Starts the engine thread.
    public func start() {
        condition.lock()
        defer { condition.unlock() }
        guard thread == nil else { return }
        let thread = Thread { [self] in loop() }
        thread.name = "fledge-batcher"
        thread.stackSize = 8 << 20
        self.thread = thread
        thread.start()
    }

    /// Queues `request` (validated here); throws `BatcherRefusal` when full or stopping.
    public func submit(_ request: BatchRequest) throws -> BatchTicket {
        try request.options.sampling.validate()
        guard !request.prompt.isEmpty else {
            throw GenerationError("the prompt is empty", hint: "give some text to continue.")
        }
        guard request.prompt.count < contextLength else {
            throw GenerationError(
                "the prompt is \(request.prompt.count) tokens but the model's context holds \(contextLength)",
                hint: "shorten it to at most \(contextLength - 1) tokens.")
        }
        guard request.options.maxTokens >= 1 else {
            throw GenerationError(
                "the token limit \(request.options.maxTokens) allows no output", hint: "ask for at least 1 token.")
        }
        let ticket = BatchTicket()
        condition.lock()
        defer { condition.unlock() }
        if stopping { throw BatcherRefusal.shuttingDown }
        let free = slotCount - rows.count
        guard queue.count < free + queueLimit else {
            throw BatcherRefusal.busy(active: rows.count, queued: queue.count)
        }
        queue.append((request, ticket))
        condition.signal()
        return ticket
    }

    /// Sequences running and waiting.
    public var load: (active: Int, queued: Int) {
        condition.lock()
        defer { condition.unlock() }
        return (rows.count, queue.count)
    }

    /// Refuses new requests, ends every running and queued one (finish reason `cancelled`) and stops the thread.
    public func shutdown() {
        condition.lock()
        stopping = true
        condition.signal()
        condition.unlock()
    }

    /// Waits for the engine thread to end after `shutdown`.
    public func waitUntilStopped() {
        while true {
            condition.lock()
            let done = thread == nil || (thread!.isFinished)
            condition.unlock()
            if done { return }
            Thread.sleep(forTimeInterval: 0.005)
        }
    }

    // MARK: - The engine thread

    private func loop() {
        let v = model.config.vocabularySize
        var logits = [Float](repeating: 0, count: slotCount * v)
        while true {
            condition.lock()
            while queue.isEmpty && rows.isEmpty && !stopping { condition.wait() }
            if stopping {
                let queued = queue.map(\.1)
                let running = Array(rows.values)
                queue.removeAll()
                rows.removeAll()
                condition.unlock()
                for row in running { end(row, .cancelled) }
                for ticket in queued {
                    ticket.continuation.yield(.finished(.cancelled, completionTokens: 0))
                    ticket.continuation.finish()
                }
                return
            }
            var admitted: [(Int, BatchRequest, BatchTicket)] = []
            let freeSlots = (0..<slotCount).filter { rows[$0] == nil }
            for slot in freeSlots where !queue.isEmpty {
                let (request, ticket) = queue.removeFirst()
                admitted.append((slot, request, ticket))
            }
            condition.unlock()

            // New sequences take their slots; their prompts go into the passes below.
            for (slot, request, ticket) in admitted {
                if ticket.isCancelled {
                    ticket.continuation.yield(.finished(.cancelled, completionTokens: 0))
                    ticket.continuation.finish()
                    continue
                }
                let seed = request.options.sampling.seed ?? UInt64.random(in: 0...UInt64(UInt32.max))
                let row = Row(request, ticket, seed: seed, tokenizer: tokenizer)
                ticket.continuation.yield(.started(promptTokens: request.prompt.count, seed: seed))
                cache.reset(slot: slot)
                setRow(slot, row)
            }

            // One batched pass: a token of every decoding sequence, and prompt chunks (lowest slot first) up to
            // the cache's chunk size.
            condition.lock()
            let active = rows.sorted { $0.key < $1.key }
            condition.unlock()
            var decoding: [(Int, Row)] = []
            var prompts: [(Int, Row, PromptChunk)] = []
            var budget = cache.chunkSize
            for (slot, row) in active {
                if row.ticket.isCancelled {
                    finish(slot, row, .cancelled)
                } else if row.decoding {
                    decoding.append((slot, row))
                } else if budget > 0 {
                    let end = min(row.request.prompt.count, row.prefilled + budget)
                    prompts.append(
                        (slot, row, PromptChunk(slot: slot, tokens: row.request.prompt[row.prefilled..<end])))
                    budget -= end - row.prefilled
                }
            }
            guard !decoding.isEmpty || !prompts.isEmpty else { continue }
            do {
                try logits.withUnsafeMutableBufferPointer { all in
                    try model.pass(
                        slots: decoding.map(\.0), tokens: decoding.map(\.1.next), prompts: prompts.map(\.2),
                        cache: cache, logits: all)
                }
            } catch {
                for (slot, row) in decoding { finish(slot, row, .context) }
                for (slot, row, _) in prompts { finish(slot, row, .cancelled) }
                continue
            }
            for (_, row, chunk) in prompts { row.prefilled += chunk.tokens.count }
            condition.lock()
            if !decoding.isEmpty { counts.steps += 1 }  // a pass of prompt chunks alone is not a step
            counts.rows += decoding.count
            counts.prefills += prompts.filter { $0.1.decoding }.count
            condition.unlock()
            logits.withUnsafeMutableBufferPointer { all in
                for (i, (slot, row)) in decoding.enumerated() {
                    advance(slot, row, UnsafeMutableBufferPointer(rebasing: all[i * v..<(i + 1) * v]))
                }
                for (k, (slot, row, _)) in prompts.enumerated() where row.decoding {
                    // The prompt is in: its last token's logits give the first new token.
                    let i = decoding.count + k
                    advance(slot, row, UnsafeMutableBufferPointer(rebasing: all[i * v..<(i + 1) * v]))
                }
            }
        }
    }

    private func setRow(_ slot: Int, _ row: Row?) {
        condition.lock()
        rows[slot] = row
        condition.unlock()
    }

    /// Chooses the row's next token from its logits and streams what it adds; ends the row when it stops.
    private func advance(_ slot: Int, _ row: Row, _ rowLogits: UnsafeMutableBufferPointer<Float>) {
        let options = row.request.options
        for i in tokenizer.vocabularySize..<rowLogits.count { rowLogits[i] = -.infinity }
        for (token, bias) in row.request.logitBias where Int(token) < tokenizer.vocabularySize {
            rowLogits[Int(token)] += bias
        }
        let history = TokenHistory(prompt: row.request.prompt, generated: row.generated)
        for processor in row.chain { processor.process(rowLogits, history: history) }
        guard let next = sampler.sample(UnsafeBufferPointer(rowLogits), config: options.sampling, rng: &row.rng) else {
            return finish(slot, row, .noAllowedToken)
        }
        if let top = row.request.topLogprobs {
            row.pending.append(Self.logprob(of: next, in: UnsafeBufferPointer(rowLogits), top: top))
        }
        if next == endOfSequence && options.stopAtEndOfSequence { return finish(slot, row, .endOfSequence) }
        row.generated.append(next)
        row.next = next
        let text: String
        let stopped: Bool
        do { (text, stopped) = try row.stream.append(next) } catch { return finish(slot, row, .noAllowedToken) }
        row.unsent += text
        if !row.unsent.isEmpty {
            let now = DispatchTime.now().uptimeNanoseconds
            if row.lastSent == 0 || now - row.lastSent >= streamInterval {
                row.ticket.continuation.yield(.text(row.unsent, logprobs: row.pending))
                row.pending.removeAll()
                row.unsent = ""
                row.lastSent = now
            }
        }
        if stopped { return finish(slot, row, .stopString) }
        if row.generated.count >= options.maxTokens { return finish(slot, row, .length) }
        if cache.remaining(slot) < 1 { return finish(slot, row, .context) }
    }

    private func finish(_ slot: Int, _ row: Row, _ reason: FinishReason) {
        setRow(slot, nil)
        end(row, reason)
    }

    /// Flushes the row's held-back text and ends its stream.
    private func end(_ row: Row, _ reason: FinishReason) {
        let rest = row.unsent + row.stream.finish()
        row.unsent = ""
        if !rest.isEmpty || !row.pending.isEmpty {
            row.ticket.continuation.yield(.text(rest, logprobs: row.pending))
            row.pending.removeAll()
        }
        row.ticket.continuation.yield(.finished(reason, completionTokens: row.generated.count))
        row.ticket.continuation.finish()
    }

    /// log-softmax of `token` and of the `top` most likely tokens.
    public static func logprob(of token: Int32, in logits: UnsafeBufferPointer<Float>, top: Int) -> TokenLogprob {
        var maximum = -Float.infinity
        for x in logits where x > maximum { maximum = x }
        var sum = 0.0
        for x in logits where x > -.infinity { sum += Foundation.exp(Double(x - maximum)) }
        let logZ = Double(maximum) + Foundation.log(sum)
        func lp(_ i: Int) -> Float { Float(Double(logits[i]) - logZ) }
        var best: [Int] = []
        if top > 0 {
            for i in 0..<logits.count where logits[i] > -.infinity {
                if best.count < top {
                    best.append(i)
                    best.sort { logits[$0] > logits[$1] || (logits[$0] == logits[$1] && $0 < $1) }
                } else if logits[i] > logits[best[top - 1]] {
                    best[top - 1] = i
                    best.sort { logits[$0] > logits[$1] || (logits[$0] == logits[$1] && $0 < $1) }
                }
            }
        }
        return TokenLogprob(
            token: token, logprob: lp(Int(token)),
            top: best.map { TokenLogprob.Alternative(token: Int32($0), logprob: lp($0)) })
    }
}
