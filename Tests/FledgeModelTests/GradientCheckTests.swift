// The whole model's backward against central finite differences of its loss, for every architecture
// variant and with dropout on (the masks of forward and backward must agree), in fp64-free fp32: a handful
// of parameters per tensor, step 1e-2, agreement within 3% of the gradient scale. Where steps of h and h/2
// disagree the loss is not smooth there (a ReLU input crossing 0), so that point is skipped; at most 2 may be.

import FledgeModel
import FledgeTensor
import FledgeTestSupport
import Testing

struct GradientCheckTests {
    @Test(.tags(.slow), .skippedInQuickRuns, arguments: Fixture.variants)
    func modelGradientsMatchFiniteDifferences(variant: String) throws {
        let fixture = try Fixture(variant)
        var config = fixture.config
        config.dropout = 0.2
        let model = try GPT(config: config, backend: ReferenceBackend())
        try fixture.loadWeights(into: model)
        let acts = try Activations(model: model, batchSize: fixture.batchSize, sequenceLength: fixture.sequenceLength)
        func loss() throws -> Double {
            Double(
                try #require(
                    try model.forward(
                        tokens: fixture.tokens, targets: fixture.targets, activations: acts, dropoutSeed: 42)))
        }
        _ = try loss()
        model.zeroGradients()
        try model.backward(activations: acts)
        let gradients = model.gradients.array
        let h: Float = 1e-2
        var rng = RandomSource(seed: 3)
        var skipped = 0
        func centralDifference(_ i: Int, _ h: Float) throws -> Float {
            let original = model.parameters.withHostReadAccess { $0[i] }
            model.parameters.withHostAccess { $0[i] = original + h }
            let plus = try loss()
            model.parameters.withHostAccess { $0[i] = original - h }
            let minus = try loss()
            model.parameters.withHostAccess { $0[i] = original }
            return Float((plus - minus) / Double(2 * h))
        }
        for entry in model.layout.entries {
            let scale = gradients[entry.range].map { abs($0) }.max() ?? 0
            for _ in 0..<3 {
                let i = entry.offset + Int(rng.next() % UInt64(entry.count))
                let tolerance = 0.03 * max(scale, 1e-3)
                let numeric = try centralDifference(i, h)
                if abs(numeric - (try centralDifference(i, h / 2))) > tolerance {
                    skipped += 1
                    continue
                }
                #expect(
                    abs(numeric - gradients[i]) <= tolerance,
                    "\(variant) \(entry.name)[\(i - entry.offset)]: analytic \(gradients[i]), numeric \(numeric)")
            }
        }
        #expect(skipped <= 2, "\(variant): \(skipped) points where the loss is not smooth")
    }

    @Test func fullyIgnoredTargetsGiveZeroLossAndNoGradient() throws {
        let fixture = try Fixture("gpt2")
        let model = try fixture.model(backend: CPUBackend(threadCount: 2))
        let acts = try Activations(
            model: model, batchSize: fixture.batchSize, sequenceLength: fixture.sequenceLength)
        let ignored = [Int32](repeating: GPT.ignoreIndex, count: fixture.tokens.count)
        let loss = try model.forward(tokens: fixture.tokens, targets: ignored, activations: acts)
        #expect(loss == 0)
        model.zeroGradients()
        try model.backward(activations: acts)
        #expect(model.gradients.array.allSatisfy { $0 == 0 })
    }

    @Test func maskedPositionsContributeNoGradient() throws {
        // Changing the target at an ignored position changes nothing; changing a counted one does.
        let fixture = try Fixture("llama")
        let model = try fixture.model(backend: CPUBackend(threadCount: 2))
        let acts = try Activations(
            model: model, batchSize: fixture.batchSize, sequenceLength: fixture.sequenceLength)
        func gradients(_ targets: [Int32]) throws -> [Float] {
            try model.forward(tokens: fixture.tokens, targets: targets, activations: acts)
            model.zeroGradients()
            try model.backward(activations: acts)
            return model.gradients.array
        }
        var masked = fixture.targets
        masked[4] = GPT.ignoreIndex
        let base = try gradients(masked)
        #expect(try gradients(masked) == base, "deterministic")
        var other = fixture.targets
        other[4] = (other[4] + 1) % Int32(model.config.vocabularySize)
        #expect(try gradients(other) != base)
    }
}
