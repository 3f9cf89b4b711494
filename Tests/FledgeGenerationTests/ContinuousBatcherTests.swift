// The continuous batcher: sequences that join and leave a running batch produce exactly what the Generator
// produces for each alone (greedy and seeded sampling, stops, penalties); cancel frees a slot; limits refuse
// at once; shutdown ends everything; log-probabilities are the log-softmax of the processed logits.

import FledgeGeneration
import FledgeModel
import FledgeTensor
import Foundation
import Testing

struct ContinuousBatcherTests {
    /// Collects a ticket's events into text, reason and counts.
    func collect(_ ticket: BatchTicket) async -> (
        text: String, reason: FinishReason?, tokens: Int, seed: UInt64, logprobs: [TokenLogprob]
    ) {
        var text = ""
        var reason: FinishReason?
        var tokens = 0
        var seed: UInt64 = 0
        var logprobs: [TokenLogprob] = []
        for await event in ticket.events {
            switch event {
            case .started(_, let s): seed = s
            case .text(let t, let lp):
                text += t
                logprobs += lp
            case .finished(let r, let n): (reason, tokens) = (r, n)
            }
        }
        return (text, reason, tokens, seed, logprobs)
    }

    func options(_ maxTokens: Int, temperature: Float = 0, seed: UInt64? = nil, stops: [String] = [])
        -> GenerationOptions
    {
        var o = GenerationOptions()
        o.maxTokens = maxTokens
        o.sampling.temperature = temperature
        o.sampling.seed = seed
        o.stopStrings = stops
        return o
    }

    /// With a stream interval, a sequence's first text goes out at once and later text is gathered into fewer
    /// events; the text, the stop, the log-probabilities (one per token) and the reason are what the engine without
    /// an interval streams.
    @Test func aStreamIntervalGathersTextIntoFewerEventsAndChangesNothingElse() async throws {
        let generator = try Fixtures.generator(context: 96)
        func run(interval: Double, stops: [String]) async throws -> (
            events: Int, text: String, logprobs: Int, reason: FinishReason?
        ) {
            let batcher = try ContinuousBatcher(
                model: generator.model, tokenizer: generator.tokenizer, endOfSequence: generator.endOfSequence,
                slots: 2, queueLimit: 2, streamInterval: interval)
            defer { batcher.shutdown() }
            var request = BatchRequest(prompt: generator.encode("ROMEO:"), options: options(40, stops: stops))
            request.topLogprobs = 1
            let ticket = try batcher.submit(request)
            batcher.start()
            var (events, text, logprobs, reason) = (0, "", 0, FinishReason?.none)
            for await event in ticket.events {
                switch event {
                case .started: break
                case .text(let t, let lp):
                    if events == 0 { #expect(!t.isEmpty, "the first text goes out at once") }
                    (events, text, logprobs) = (events + 1, text + t, logprobs + lp.count)
                case .finished(let r, _): reason = r
                }
            }
            return (events, text, logprobs, reason)
        }
        for stops in [[], ["e"]] {
            let each = try await run(interval: 0, stops: stops)
            let gathered = try await run(interval: 60, stops: stops)  // a minute: everything after the first waits
            #expect(gathered.text == each.text && gathered.logprobs == each.logprobs && gathered.reason == each.reason)
            #expect(
                gathered.events <= 2 && (stops.isEmpty ? each.events > 2 : true),
                "\(gathered.events) vs \(each.events) events")
        }
    }

    @Test func sequencesJoiningAtAnyTimeMatchTheGeneratorAlone() async throws {
        let generator = try Fixtures.generator(context: 96)
        // Four prompt tokens a pass: longer prompts are split over passes and ride along with decoding rows.
        let batcher = try ContinuousBatcher(
            model: generator.model, tokenizer: generator.tokenizer, endOfSequence: generator.endOfSequence, slots: 3,
            queueLimit: 8, chunkSize: 4)
        defer { batcher.shutdown() }
        let prompts = ["ROMEO:", "KING HENRY: Once more", "O", "JULIET: Good night, good night", "Now is the"]
        var settings: [GenerationOptions] = []
        for (i, _) in prompts.enumerated() {
            var o = options(12 + 5 * i, temperature: i % 2 == 0 ? 0 : 0.9, seed: 100 + UInt64(i))
            if i == 3 { o.sampling.frequencyPenalty = 0.7 }
            if i == 4 { o.stopStrings = ["e"] }
            settings.append(o)
        }
        // Five requests into three slots: two queued before the engine starts (so they surely share steps), the
        // others while those run, so they join a running batch (and two wait in the queue for a slot).
        var tickets: [BatchTicket] = []
        for (i, prompt) in prompts.enumerated() {
            tickets.append(try batcher.submit(BatchRequest(prompt: generator.encode(prompt), options: settings[i])))
            if i == 1 {
                batcher.start()
                while batcher.steps == 0 { try await Task.sleep(nanoseconds: 100_000) }
            }
        }
        for (i, ticket) in tickets.enumerated() {
            let got = await collect(ticket)
            let alone = try generator.generate(prompt: generator.encode(prompts[i]), options: settings[i])
            #expect(
                got.text == alone.text,
                "request \(i): batched \(got.text.debugDescription) vs alone \(alone.text.debugDescription)")
            #expect(got.tokens == alone.tokens.count && got.seed == 100 + UInt64(i))
            #expect(got.reason == alone.finishReason, "request \(i)")
        }
        #expect(
            batcher.steps > 0 && batcher.rowSteps > batcher.steps,
            "rows were batched: \(batcher.rowSteps) row-steps in \(batcher.steps) steps")
    }

    @Test func cancelFreesTheSlotAndLimitsRefuseAtOnce() async throws {
        let generator = try Fixtures.generator(context: 64)
        let batcher = try ContinuousBatcher(
            model: generator.model, tokenizer: generator.tokenizer, endOfSequence: nil, slots: 1, queueLimit: 1)
        var long = options(10_000)
        long.stopAtEndOfSequence = false
        // The engine is not started yet, so nothing finishes while the limits are checked.
        let first = try batcher.submit(BatchRequest(prompt: generator.encode("A"), options: long))
        let second = try batcher.submit(BatchRequest(prompt: generator.encode("B"), options: options(3)))
        // One slot and one queue place are taken: a third is refused at once.
        #expect(throws: BatcherRefusal.self) { _ = try batcher.submit(BatchRequest(prompt: [1], options: options(3))) }
        first.cancel()
        batcher.start()
        let a = await collect(first)
        #expect(a.reason == .cancelled && a.tokens == 0)
        let b = await collect(second)
        #expect(b.reason == .length && b.tokens == 3)
        // A long sequence (to the context) and one cancelled while it runs.
        let third = try batcher.submit(BatchRequest(prompt: generator.encode("C"), options: long))
        #expect((await collect(third)).reason == .context)
        // Bad requests are refused before they queue.
        #expect(throws: (any Error).self) { _ = try batcher.submit(BatchRequest(prompt: [], options: options(3))) }
        #expect(throws: (any Error).self) {
            _ = try batcher.submit(BatchRequest(prompt: [Int32](repeating: 1, count: 64), options: options(3)))
        }
        batcher.shutdown()
        batcher.waitUntilStopped()
        #expect(throws: BatcherRefusal.shuttingDown) {
            _ = try batcher.submit(BatchRequest(prompt: [1], options: options(3)))
        }
    }

    @Test func shutdownEndsWhatRunsAndWaits() async throws {
        let generator = try Fixtures.generator(context: 64)
        let batcher = try ContinuousBatcher(
            model: generator.model, tokenizer: generator.tokenizer, endOfSequence: nil, slots: 1, queueLimit: 4)
        var long = options(10_000)
        long.stopAtEndOfSequence = false
        let tickets = try (0..<3).map { _ in
            try batcher.submit(BatchRequest(prompt: generator.encode("D"), options: long))
        }
        batcher.shutdown()
        batcher.start()
        for ticket in tickets { #expect((await collect(ticket)).reason == .cancelled) }
        batcher.waitUntilStopped()
    }

    @Test func logprobsAreTheLogSoftmaxOfTheProcessedLogits() async throws {
        let generator = try Fixtures.generator(context: 64)
        let batcher = try ContinuousBatcher(
            model: generator.model, tokenizer: generator.tokenizer, endOfSequence: nil, slots: 2, queueLimit: 2)
        batcher.start()
        defer { batcher.shutdown() }
        var request = BatchRequest(prompt: generator.encode("ROMEO:"), options: options(6))
        request.topLogprobs = 3
        request.logitBias = [5: 100]  // token 5 always wins under greedy
        let got = await collect(try batcher.submit(request))
        #expect(got.logprobs.count == 6)
        for lp in got.logprobs {
            #expect(lp.token == 5 && lp.top.count == 3 && lp.top[0].token == 5)
            #expect(lp.logprob <= 0 && abs(lp.logprob - lp.top[0].logprob) < 1e-6)
            #expect(lp.top[0].logprob >= lp.top[1].logprob && lp.top[1].logprob >= lp.top[2].logprob)
        }
        // Direct check on a small vector.
        let logits: [Float] = [1, 2, 3, -.infinity]
        let lp = logits.withUnsafeBufferPointer { ContinuousBatcher.logprob(of: 1, in: $0, top: 2) }
        let z = log(exp(1.0) + exp(2.0) + exp(3.0))
        #expect(abs(Double(lp.logprob) - (2 - z)) < 1e-6 && lp.top.map(\.token) == [2, 1])
    }
}
