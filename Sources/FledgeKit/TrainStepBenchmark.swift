// TrainStepBenchmark: times full training steps (forward, backward, clipping, AdamW) of a model on random
// tokens, as `fledge bench train` reports them: each part's median, GFLOP/s and their share of the machine's
// GEMM ceiling (the backend's own matrix products at the model's large shapes, measured in the same run). Scripts/bench_pytorch.py times the same steps in PyTorch;
// Scripts/bench_train.py runs both, interleaved, and prints the comparison.

import FledgeModel
import FledgeTensor
import Foundation

/// One benchmark shape: a model and a batch.
public struct BenchmarkShape: Sendable {
    public let name: String
    public let config: ModelConfig
    public let batchSize: Int

    public init(name: String, config: ModelConfig, batchSize: Int) {
        self.name = name
        self.config = config
        self.batchSize = batchSize
    }

    /// The reference configurations of the numeric-core issue: GPT-2 style, fp32.
    public static let reference: [BenchmarkShape] = [
        BenchmarkShape(
            name: "a", config: ModelConfig(vocabularySize: 8000, contextLength: 128, layers: 6, width: 128, heads: 4),
            batchSize: 32),
        BenchmarkShape(
            name: "b", config: ModelConfig(vocabularySize: 8192, contextLength: 256, layers: 8, width: 256, heads: 8),
            batchSize: 16),
        BenchmarkShape(
            name: "c", config: ModelConfig(vocabularySize: 4096, contextLength: 256, layers: 10, width: 384, heads: 6),
            batchSize: 8),
        // The presets users scale to (issue 18): the 50m preset's shape with an 8,192-token vocabulary, and
        // the 100m preset's (timed with few steps: each takes tens of seconds on 2 cores).
        BenchmarkShape(
            name: "d", config: ModelConfig(vocabularySize: 8192, contextLength: 1024, layers: 12, width: 512, heads: 8),
            batchSize: 4),
        BenchmarkShape(
            name: "e",
            config: ModelConfig(vocabularySize: 8192, contextLength: 1024, layers: 16, width: 640, heads: 10),
            batchSize: 4),
    ]

    /// Floating-point operations of one training step: 3× the forward's matrix products (forward + two in
    /// backward), counting attention's Q·Kᵀ and P·V over the causal half only.
    public var flopsPerStep: Double {
        let c = config
        let bt = Double(batchSize * c.contextLength)
        let perLayer = Double(
            c.width * c.qkvWidth + c.attentionWidth * c.width + c.width * c.mlpInnerWidth + c.mlpWidth * c.width)
        let matmul = 2 * bt * (Double(c.layers) * perLayer + Double(c.width * c.vocabularySize))
        let t = Double(c.contextLength)
        let attention = Double(c.layers) * 2 * 2 * Double(batchSize * c.heads) * (t * (t + 1) / 2) * Double(c.headSize)
        return 3 * (matmul + attention)
    }
}

/// The result of timing one shape.
public struct BenchmarkResult: Sendable, Codable {
    public let name: String
    public let parameters: Int
    public let tokensPerStep: Int
    public let stepMilliseconds: [Double]
    public let medianMilliseconds: Double
    public let tokensPerSecond: Double
    public let gflopsPerSecond: Double
    /// Medians of the step's parts: forward (with the loss), backward, and the optimizer (clipping + AdamW).
    public let forwardMilliseconds: Double
    public let backwardMilliseconds: Double
    public let optimizerMilliseconds: Double
    /// The backend's GEMM GFLOP/s at the model's large products (MLP, head), and this step's share of it.
    public let gemmCeilingGflops: Double
    public let ceilingShare: Double
    /// The process's peak resident memory after this shape (it includes the shapes run before it).
    public let peakRSSMegabytes: Double
    public let finalLoss: Float
    /// Heap allocations per timed step, when Scripts/count_allocations.c is preloaded (else nil).
    public let allocationsPerStep: Double?
}

/// Runs the training-step benchmark.
public enum TrainStepBenchmark {
    /// Times `steps` steps after `warmup` untimed ones.
    public static func run(shape: BenchmarkShape, backend: any Backend, steps: Int, warmup: Int, seed: UInt64 = 1)
        throws
        -> BenchmarkResult
    {
        let c = shape.config
        let model = try GPT(config: c, backend: backend, seed: seed)
        let optimizer = try AdamW(model: model)
        let acts = try Activations(model: model, batchSize: shape.batchSize, sequenceLength: c.contextLength)
        var rng = RandomSource(seed: seed)
        let n = shape.batchSize * c.contextLength
        let data = (0...n).map { _ in Int32(rng.next() % UInt64(c.vocabularySize)) }
        let tokens = Array(data[0..<n])
        let targets = Array(data[1...n])
        var times: [Double] = []
        times.reserveCapacity(steps)
        var parts: (forward: [Double], backward: [Double], optimizer: [Double]) = ([], [], [])
        parts.forward.reserveCapacity(steps)  // no allocation inside the timed steps
        parts.backward.reserveCapacity(steps)
        parts.optimizer.reserveCapacity(steps)
        var loss: Float = 0
        var allocations: (start: Int, end: Int) = (0, 0)
        try tokens.withUnsafeBufferPointer { x in
            try targets.withUnsafeBufferPointer { y in
                for step in 0..<(warmup + steps) {
                    if step == warmup { allocations.start = allocationCount() ?? 0 }
                    let start = DispatchTime.now().uptimeNanoseconds
                    model.zeroGradients()
                    loss = try model.forward(tokens: x, targets: y, activations: acts) ?? 0
                    let forwardEnd = DispatchTime.now().uptimeNanoseconds
                    try model.backward(activations: acts)
                    let backwardEnd = DispatchTime.now().uptimeNanoseconds
                    model.clipGradients(maxNorm: 1)
                    optimizer.update(model, learningRate: 3e-4)
                    let end = DispatchTime.now().uptimeNanoseconds
                    if step >= warmup {
                        times.append(Double(end - start) / 1e6)
                        parts.forward.append(Double(forwardEnd - start) / 1e6)
                        parts.backward.append(Double(backwardEnd - forwardEnd) / 1e6)
                        parts.optimizer.append(Double(end - backwardEnd) / 1e6)
                    }
                }
                allocations.end = allocationCount() ?? 0
            }
        }
        func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
        let perStep: Double? =
            allocationCount() == nil ? nil : Double(allocations.end - allocations.start) / Double(steps)
        let seconds = median(times) / 1000
        let ceiling = try gemmCeiling(
            backend: backend, rows: n, width: c.width, hidden: c.mlpInnerWidth, vocabulary: c.vocabularySize)
        let gflops = shape.flopsPerStep / seconds / 1e9
        return BenchmarkResult(
            name: shape.name, parameters: model.parameterCount, tokensPerStep: n, stepMilliseconds: times,
            medianMilliseconds: median(times), tokensPerSecond: Double(n) / seconds, gflopsPerSecond: gflops,
            forwardMilliseconds: median(parts.forward), backwardMilliseconds: median(parts.backward),
            optimizerMilliseconds: median(parts.optimizer), gemmCeilingGflops: ceiling, ceilingShare: gflops / ceiling,
            peakRSSMegabytes: peakRSSMegabytes(), finalLoss: loss, allocationsPerStep: perStep)
    }

    /// The backend's best GFLOP/s on the model's own large matrix products: the MLP's up and down projections
    /// and the output head, (rows × in) · (in × out), each the best of 8 timed runs after one untimed: what the
    /// step could reach if it were all GEMM. (A noisy machine can still make a step look faster than it.)
    public static func gemmCeiling(backend: any Backend, rows: Int, width: Int, hidden: Int, vocabulary: Int) throws
        -> Double
    {
        var best = 0.0
        for (inFeatures, outFeatures) in [(width, hidden), (hidden, width), (width, vocabulary)] {
            // In the backend's memory, like the model's own buffers: filled from the host, then multiplied there.
            let input = try BackendBuffer<Float>(backend: backend, count: rows * inFeatures)
            let weight = try BackendBuffer<Float>(backend: backend, count: outFeatures * inFeatures)
            let output = try BackendBuffer<Float>(backend: backend, count: rows * outFeatures)
            var rng = RandomSource(seed: 5)
            for buffer in [input, weight] {
                var values = [Float](repeating: 0, count: buffer.count)
                values.withUnsafeMutableBufferPointer { rng.fillUniform($0, low: -0.5, high: 0.5) }
                values.withUnsafeBufferPointer { buffer.copyFromHost($0) }
            }
            var fastest = Double.infinity
            for run in 0..<9 {
                let start = DispatchTime.now().uptimeNanoseconds
                backend.linear(
                    output: output.address, input: input.address, weight: weight.address, bias: nil, rows: rows,
                    inFeatures: inFeatures, outFeatures: outFeatures)
                let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                if run > 0 { fastest = min(fastest, seconds) }
            }
            best = max(best, 2 * Double(rows) * Double(inFeatures) * Double(outFeatures) / fastest / 1e9)
        }
        return best
    }

    /// The process's heap allocation count, when the counting shim (Scripts/count_allocations.c) is preloaded.
    static func allocationCount() -> Int? {
        typealias Counter = @convention(c) () -> Int
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "fledge_allocation_count") else { return nil }
        return unsafeBitCast(symbol, to: Counter.self)()
    }

    /// The peak resident set size of this process so far.
    public static func peakRSSMegabytes() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_maxrss) / 1024  // kilobytes on Linux
    }
}
