// KV-cache decoding equals full recomputation, and a batch of rows equals each row alone.

import FledgeModel
import FledgeTensor
import Testing

struct DecodingTests {
    static let backend = CPUBackend(threadCount: 2)

    func randomTokens(_ count: Int, vocabulary: Int, seed: UInt64) -> [Int32] {
        var rng = RandomSource(seed: seed)
        return (0..<count).map { _ in Int32(rng.next() % UInt64(vocabulary)) }
    }

    /// Inference holds no gradient memory: a model that only decodes and evaluates never allocates it; the
    /// optimizer (or a backward) does, zeroed.
    @Test func gradientsAreAllocatedOnlyForTraining() throws {
        let model = try Fixture("gpt2").model(backend: Self.backend)
        let cache = try KVCache(model: model, batchSize: 1, chunkSize: 4)
        _ = try model.decodeAllLogits(tokens: [1, 2, 3], count: 3, cache: cache)
        let acts = try Activations(model: model, batchSize: 1, sequenceLength: 4, forTraining: false)
        try model.forward(tokens: [1, 2, 3, 4], targets: [2, 3, 4, 5], activations: acts, training: false)
        #expect(model.gradients.count == 0)
        _ = try AdamW(model: model)
        #expect(model.gradients.count == model.parameterCount)
        #expect(model.gradients.array.allSatisfy { $0 == 0 })
    }

    @Test(arguments: Fixture.variants)
    func kvCacheMatchesFullRecompute(variant: String) throws {
        let fixture = try Fixture(variant)
        let model = try fixture.model(backend: Self.backend)
        let v = model.config.vocabularySize
        let length = model.config.contextLength
        let tokens = randomTokens(length, vocabulary: v, seed: 5)
        // Full forward over the whole sequence.
        let acts = try Activations(model: model, batchSize: 1, sequenceLength: length, forTraining: false)
        try model.forward(tokens: tokens, targets: nil, activations: acts, training: false)
        let full = acts.copyLogitsToHost()
        // A 5-token prompt in one chunk, then one token at a time.
        let cache = try KVCache(model: model, batchSize: 1, chunkSize: 4)
        var decoded = try model.decodeAllLogits(tokens: Array(tokens[0..<5]), count: 5, cache: cache)
        for i in 5..<length { decoded += try model.decodeAllLogits(tokens: [tokens[i]], count: 1, cache: cache) }
        let agreement = Agreement(decoded[...], full[...])
        #expect(agreement.relative < 1e-5, "\(variant): cached vs full logits \(agreement)")
        #expect(cache.length == length)
        // The cache is full now: one more token is a clear error.
        #expect(throws: ModelError.self) { try model.decode(tokens: [0], count: 1, cache: cache) }
    }

    @Test(arguments: Fixture.variants)
    func slotsStartAndEndAtAnyStepAndMatchFullRecompute(variant: String) throws {
        let fixture = try Fixture(variant)
        let model = try fixture.model(backend: Self.backend)
        let v = model.config.vocabularySize
        let context = model.config.contextLength
        // Three sequences: A starts at step 0, B joins at step 3, C takes slot 0 after A ends at step 6.
        let seqs = (0..<3).map { randomTokens(context, vocabulary: v, seed: 40 + UInt64($0)) }
        func full(_ tokens: [Int32]) throws -> [Float] {
            let acts = try Activations(
                model: model, batchSize: 1, sequenceLength: tokens.count, forTraining: false)
            try model.forward(tokens: tokens, targets: nil, activations: acts, training: false)
            return acts.copyLogitsToHost()
        }
        let cache = try SlotCache(model: model, slots: 2, chunkSize: 3)
        var out = [Float](repeating: 0, count: 2 * v)
        var got: [[Float]] = [[], [], []]  // logits after each token, per sequence
        var fed = [0, 0, 0]
        func prefill(_ s: Int, slot: Int, count: Int) throws {
            cache.reset(slot: slot)
            try out.withUnsafeMutableBufferPointer {
                try model.prefill(slot: slot, tokens: Array(seqs[s][0..<count]), cache: cache, logits: $0)
            }
            got[s] += out[0..<v]
            fed[s] = count
        }
        try prefill(0, slot: 0, count: 4)
        var active: [(seq: Int, slot: Int)] = [(0, 0)]
        for step in 0..<12 {
            if step == 3 {
                try prefill(1, slot: 1, count: 5)
                active.append((1, 1))
            }
            if step == 6 {
                active.removeAll { $0.seq == 0 }
                try prefill(2, slot: 0, count: 2)
                active.append((2, 0))
            }
            let tokens = active.map { seqs[$0.seq][fed[$0.seq]] }
            try out.withUnsafeMutableBufferPointer {
                try model.step(slots: active.map(\.slot), tokens: tokens, cache: cache, logits: $0)
            }
            for (i, a) in active.enumerated() {
                got[a.seq] += out[i * v..<(i + 1) * v]
                fed[a.seq] += 1
            }
        }
        for s in 0..<3 {
            // The logits after each fed token equal the full forward's at that position.
            let reference = try full(Array(seqs[s][0..<fed[s]]))
            let firstChecked = (s == 0 ? 4 : s == 1 ? 5 : 2) - 1
            let expected = Array(reference[(firstChecked * v)...])
            let agreement = Agreement(got[s][...], expected[...])
            #expect(got[s].count == expected.count && agreement.relative < 1e-5, "\(variant) seq \(s): \(agreement)")
        }
        #expect(cache.lengths == [fed[2], fed[1]])
        #expect(throws: ModelError.self) {
            try out.withUnsafeMutableBufferPointer {
                try model.step(slots: [0, 0], tokens: [1, 1], cache: cache, logits: $0)
            }
        }
    }

    /// Prompts ride along with decoding rows in one pass: a prompt longer than the chunk size is split over
    /// passes, two prompts share a pass, and every logit equals the full forward's at that position.
    @Test(arguments: Fixture.variants)
    func promptChunksAndDecodingRowsShareAPass(variant: String) throws {
        let fixture = try Fixture(variant)
        let model = try fixture.model(backend: Self.backend)
        let v = model.config.vocabularySize
        let seqs = (0..<3).map { randomTokens(model.config.contextLength, vocabulary: v, seed: 50 + UInt64($0)) }
        let cache = try SlotCache(model: model, slots: 3, chunkSize: 4)
        var fed = [0, 0, 0]
        var records: [(seq: Int, position: Int, logits: [Float])] = []
        var out = [Float](repeating: 0, count: 3 * v)
        // Each pass: the sequences that decode one token, and (sequence, prompt tokens) chunks. Sequence s uses slot s.
        let passes: [(decode: [Int], prompts: [(Int, Int)])] = [
            ([], [(0, 3)]), ([0], [(1, 4)]), ([0], [(1, 2), (2, 2)]), ([0, 1], [(2, 1)]), ([0, 1, 2], []),
            ([2, 0], []),
        ]
        for pass in passes {
            let tokens = pass.decode.map { seqs[$0][fed[$0]] }
            let prompts = pass.prompts.map { PromptChunk(slot: $0.0, tokens: seqs[$0.0][fed[$0.0]..<fed[$0.0] + $0.1]) }
            try out.withUnsafeMutableBufferPointer {
                try model.pass(slots: pass.decode, tokens: tokens, prompts: prompts, cache: cache, logits: $0)
            }
            for (i, seq) in pass.decode.enumerated() {
                records.append((seq, fed[seq], Array(out[i * v..<(i + 1) * v])))
                fed[seq] += 1
            }
            for (k, (seq, n)) in pass.prompts.enumerated() {
                let i = pass.decode.count + k
                records.append((seq, fed[seq] + n - 1, Array(out[i * v..<(i + 1) * v])))
                fed[seq] += n
            }
        }
        #expect(cache.lengths == fed)
        for seq in 0..<3 {
            let acts = try Activations(
                model: model, batchSize: 1, sequenceLength: fed[seq], forTraining: false)
            try model.forward(tokens: Array(seqs[seq][0..<fed[seq]]), targets: nil, activations: acts, training: false)
            let reference = acts.copyLogitsToHost()
            for record in records where record.seq == seq {
                let expected = reference[(record.position * v)..<((record.position + 1) * v)]
                let agreement = Agreement(record.logits[...], expected)
                #expect(agreement.relative < 1e-5, "\(variant) seq \(seq) position \(record.position): \(agreement)")
            }
        }
        // More prompt tokens than the chunk size, a slot twice, or an empty chunk: clear errors.
        for bad in [
            [PromptChunk(slot: 0, tokens: seqs[0][0..<5])], [PromptChunk(slot: 1, tokens: seqs[1][0..<0])],
        ] {
            #expect(throws: ModelError.self) {
                try out.withUnsafeMutableBufferPointer {
                    try model.pass(slots: [], tokens: [], prompts: bad, cache: cache, logits: $0)
                }
            }
        }
        #expect(throws: ModelError.self) {
            try out.withUnsafeMutableBufferPointer {
                try model.pass(
                    slots: [1], tokens: [1], prompts: [PromptChunk(slot: 1, tokens: seqs[1][0..<1])], cache: cache,
                    logits: $0)
            }
        }
    }

    @Test(arguments: ["gpt2", "llama", "smallm"])
    func batchOfRowsMatchesEachRowAlone(variant: String) throws {
        let fixture = try Fixture(variant)
        let model = try fixture.model(backend: Self.backend)
        let (b, t, v) = (3, 9, model.config.vocabularySize)
        let tokens = randomTokens(b * t, vocabulary: v, seed: 6)
        let targets = randomTokens(b * t, vocabulary: v, seed: 7)
        let batch = try Activations(model: model, batchSize: b, sequenceLength: t)
        let batchLoss = try #require(try model.forward(tokens: tokens, targets: targets, activations: batch))
        let batchLogits = batch.copyLogitsToHost()
        model.zeroGradients()
        try model.backward(activations: batch)
        let batchGradients = model.gradients.array

        let single = try Activations(model: model, batchSize: 1, sequenceLength: t)
        var rowLosses: Float = 0
        model.zeroGradients()
        for row in 0..<b {
            let rowTokens = Array(tokens[row * t..<(row + 1) * t])
            let rowTargets = Array(targets[row * t..<(row + 1) * t])
            rowLosses += try #require(try model.forward(tokens: rowTokens, targets: rowTargets, activations: single))
            let logits = single.copyLogitsToHost()
            let agreement = Agreement(batchLogits[row * t * v..<(row + 1) * t * v], logits[...])
            #expect(agreement.relative < 1e-5, "\(variant) row \(row) logits: \(agreement)")
            try model.backward(activations: single)
        }
        // Every row has t counted targets, so the batch mean is the mean of the row means.
        #expect(abs(batchLoss - rowLosses / Float(b)) < 1e-5)
        model.gradients.withHostAccess { g in for i in g.indices { g[i] /= Float(b) } }
        let agreement = Agreement(model.gradients.array[...], batchGradients[...])
        #expect(agreement.relative < 1e-5, "\(variant) gradients batch vs rows: \(agreement)")

        // Batched decoding: three rows continue independently.
        let cache = try KVCache(model: model, batchSize: b)
        let last = try model.decode(tokens: tokens, count: t, cache: cache)
        for row in 0..<b {
            let expected = batchLogits[(row * t + t - 1) * v..<(row * t + t) * v]
            let agreement = Agreement(last[row * v..<(row + 1) * v], expected)
            #expect(agreement.relative < 1e-5, "\(variant) batched decode row \(row): \(agreement)")
        }
    }
}
