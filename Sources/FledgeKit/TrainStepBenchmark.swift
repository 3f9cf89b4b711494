// TrainStepBenchmark: times full training steps (forward, backward, clipping, AdamW) of a model on random
// tokens, as `fledge bench train` reports them. Scripts/bench_pytorch.py times the same steps in PyTorch;
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
        let acts = try Activations(config: c, batchSize: shape.batchSize, sequenceLength: c.contextLength)
        var rng = RandomSource(seed: seed)
        let n = shape.batchSize * c.contextLength
        let data = (0...n).map { _ in Int32(rng.next() % UInt64(c.vocabularySize)) }
        let tokens = Array(data[0..<n])
        let targets = Array(data[1...n])
        var times: [Double] = []
        times.reserveCapacity(steps)
        var loss: Float = 0
        var allocations: (start: Int, end: Int) = (0, 0)
        try tokens.withUnsafeBufferPointer { x in
            try targets.withUnsafeBufferPointer { y in
                for step in 0..<(warmup + steps) {
                    if step == warmup { allocations.start = allocationCount() ?? 0 }
                    let start = DispatchTime.now().uptimeNanoseconds
                    model.zeroGradients()
                    loss = try model.forward(tokens: x, targets: y, activations: acts) ?? 0
                    try model.backward(activations: acts)
                    model.clipGradients(maxNorm: 1)
                    optimizer.update(model, learningRate: 3e-4)
                    let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
                    if step >= warmup { times.append(elapsed) }
                }
                allocations.end = allocationCount() ?? 0
            }
        }
        let median = times.sorted()[times.count / 2]
        let perStep: Double? =
            allocationCount() == nil ? nil : Double(allocations.end - allocations.start) / Double(steps)
        let seconds = median / 1000
        return BenchmarkResult(
            name: shape.name, parameters: model.parameterCount, tokensPerStep: n, stepMilliseconds: times,
            medianMilliseconds: median, tokensPerSecond: Double(n) / seconds,
            gflopsPerSecond: shape.flopsPerStep / seconds / 1e9, peakRSSMegabytes: peakRSSMegabytes(),
            finalLoss: loss, allocationsPerStep: perStep)
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
