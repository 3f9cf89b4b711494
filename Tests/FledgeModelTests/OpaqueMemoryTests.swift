// Memory belongs to the backend: on `OpaqueMemoryBackend`, whose buffers the host cannot address (any host read
// of them faults), the model, the optimizer and KV-cache decoding run through backend calls alone and give the
// CPU backend's numbers bit for bit. (PyTorchParityTests runs the parity suite on it too; the training tests run
// a whole training run, checkpoints and a resume on it.)

import FledgeModel
import FledgeTensor
import FledgeTestSupport
import Foundation
import Testing

struct OpaqueMemoryTests {
    func randomTokens(_ count: Int, vocabulary: Int, seed: UInt64) -> [Int32] {
        var rng = RandomSource(seed: seed)
        return (0..<count).map { _ in Int32(rng.next() % UInt64(vocabulary)) }
    }

    func bits(_ values: [Float]) -> [UInt32] { values.map(\.bitPattern) }

    /// Parameters, gradients, moments, activations and caches are all the backend's allocations, at addresses in
    /// its inaccessible reservation, and all are given back when their owners go.
    @Test func everyBufferIsTheBackendsAndIsFreedWithItsOwner() throws {
        let opaque = OpaqueMemoryBackend(inner: ReferenceBackend())
        do {
            let model = try Fixture("gpt2").model(backend: opaque)
            let optimizer = try AdamW(model: model)
            for buffer in [model.parameters, model.gradients, optimizer.firstMoment, optimizer.secondMoment] {
                #expect(opaque.isOpaque(buffer.address) && buffer.backend === opaque)
            }
            let before = opaque.allocationCount
            let acts = try Activations(model: model, batchSize: 1, sequenceLength: 4)
            let cache = try KVCache(model: model, batchSize: 2)
            let slots = try SlotCache(model: model, slots: 2)
            #expect(opaque.allocationCount == before + 3 + (2 + 3) + (2 + 3))
            _ = (acts, cache, slots)
            // A plan on another backend's memory is refused before a kernel reads it.
            let cpuModel = try Fixture("gpt2").model(backend: CPUBackend(threadCount: 1))
            let cpuPlan = try Activations(model: cpuModel, batchSize: 1, sequenceLength: 4)
            var message = ""
            do { try model.forward(tokens: [1, 2, 3, 4], targets: nil, activations: cpuPlan) } catch {
                message = "\(error)"
            }
            #expect(message.contains("cpu backend, whose memory the model's opaque(reference) backend cannot read"))
        }
        #expect(opaque.allocationCount == 0)
    }

    /// The host cannot read the backend's memory: a dereference of a parameter's address stops the process with
    /// SIGSEGV (so a model that touched its buffers directly could not pass the tests below), while the named copy
    /// reads it.
    @Test func aHostReadOfTheBackendsMemoryFaults() async throws {
        let opaque = OpaqueMemoryBackend(inner: ReferenceBackend())
        let model = try Fixture("gpt2").model(backend: opaque)
        #expect(model.parameters.array.contains { $0 != 0 })
        await #expect(processExitsWith: .signal(SIGSEGV)) {
            let model = try Fixture("gpt2").model(backend: OpaqueMemoryBackend(inner: ReferenceBackend()))
            print(model.parameters.address.pointee)
        }
    }

    /// A forward, a backward and ten clipped AdamW steps: the losses, logits, gradients, norms and final weights
    /// are the CPU backend's, bit for bit, for every architecture variant.
    @Test(arguments: Fixture.variants)
    func trainingStepsGiveTheCPUBackendsNumbers(variant: String) throws {
        let fixture = try Fixture(variant)
        func run(_ backend: any Backend) throws -> (
            logits: [Float], gradients: [Float], losses: [Float], norms: [Float], weights: [Float]
        ) {
            let model = try fixture.model(backend: backend)
            let acts = try Activations(
                model: model, batchSize: fixture.batchSize, sequenceLength: fixture.sequenceLength)
            let optimizer = try AdamW(model: model, config: fixture.adam)
            var (logits, gradients, losses, norms) = ([Float](), [Float](), [Float](), [Float]())
            for step in 0..<fixture.steps {
                model.zeroGradients()
                losses.append(
                    try #require(try model.forward(tokens: fixture.tokens, targets: fixture.targets, activations: acts))
                )
                if step == 0 { logits = acts.copyLogitsToHost() }
                try model.backward(activations: acts)
                if step == 0 { gradients = model.gradients.array }
                norms.append(model.clipGradients(maxNorm: fixture.maxNorm))
                optimizer.update(model, learningRate: fixture.learningRate)
            }
            return (logits, gradients, losses, norms, model.parameters.array)
        }
        let cpu = try run(CPUBackend(threadCount: 2))
        let opaque = OpaqueMemoryBackend(inner: CPUBackend(threadCount: 2))
        let hidden = try run(opaque)
        #expect(bits(hidden.logits) == bits(cpu.logits), "\(variant) logits")
        #expect(bits(hidden.gradients) == bits(cpu.gradients), "\(variant) gradients")
        #expect(bits(hidden.losses) == bits(cpu.losses), "\(variant) losses \(hidden.losses) vs \(cpu.losses)")
        #expect(bits(hidden.norms) == bits(cpu.norms), "\(variant) gradient norms")
        #expect(bits(hidden.weights) == bits(cpu.weights), "\(variant) weights after \(fixture.steps) steps")
        #expect(opaque.bytesToHost > 0 && opaque.bytesFromHost > 0)
    }

    /// KV-cache decoding (a prompt in chunks, then a token at a time, two rows) and a continuous-batching slot pass
    /// give the CPU backend's logits bit for bit, and each decoded token reads back only its row's logits.
    @Test(arguments: Fixture.variants)
    func decodingGivesTheCPUBackendsLogits(variant: String) throws {
        let fixture = try Fixture(variant)
        let v = fixture.config.vocabularySize
        let context = fixture.config.contextLength
        let tokens = randomTokens(2 * context, vocabulary: v, seed: 9)
        func decode(_ backend: any Backend) throws -> (cached: [Float], slots: [Float]) {
            let model = try fixture.model(backend: backend)
            let cache = try KVCache(model: model, batchSize: 2, chunkSize: 3)
            let prompt = Array(tokens[0..<5]) + Array(tokens[context..<context + 5])
            var cached = try model.decodeAllLogits(tokens: prompt, count: 5, cache: cache)
            for i in 5..<context {
                cached += try model.decode(tokens: [tokens[i], tokens[context + i]], count: 1, cache: cache)
            }
            let slots = try SlotCache(model: model, slots: 2, chunkSize: 4)
            var logits = [Float](repeating: 0, count: 2 * v)
            var all: [Float] = []
            try logits.withUnsafeMutableBufferPointer { out in
                try model.pass(
                    slots: [], tokens: [], prompts: [PromptChunk(slot: 1, tokens: tokens[0..<4])], cache: slots,
                    logits: out)
                all += out[0..<v]
                try model.pass(
                    slots: [1], tokens: [tokens[4]],
                    prompts: [PromptChunk(slot: 0, tokens: tokens[context..<context + 3])],
                    cache: slots, logits: out)
                all += out[0..<2 * v]
            }
            return (cached, all)
        }
        let cpu = try decode(CPUBackend(threadCount: 2))
        let opaque = OpaqueMemoryBackend(inner: CPUBackend(threadCount: 2))
        let model = try fixture.model(backend: opaque)
        let cache = try KVCache(model: model, batchSize: 2, chunkSize: 3)
        _ = try model.decode(
            tokens: Array(tokens[0..<4]) + Array(tokens[context..<context + 4]), count: 4, cache: cache)
        let before = opaque.bytesToHost
        _ = try model.decode(tokens: [tokens[4], tokens[context + 4]], count: 1, cache: cache)
        #expect(opaque.bytesToHost - before == 2 * v * 4, "one decoding step reads back each row's logits only")
        let hidden = try decode(opaque)
        #expect(bits(hidden.cached) == bits(cpu.cached), "\(variant) cached decoding")
        #expect(bits(hidden.slots) == bits(cpu.slots), "\(variant) slot passes")
    }
}
