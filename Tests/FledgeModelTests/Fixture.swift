// Loads a PyTorch reference fixture written by Scripts/make_reference.py.

import FledgeModel
import FledgeTensor
import Foundation
import Testing

/// One variant's fixture: config, weights, a batch, and PyTorch's outputs.
struct Fixture {
    let name: String
    let file: SafetensorsFile
    let config: ModelConfig
    let tokens: [Int32]
    let targets: [Int32]
    let batchSize: Int
    let sequenceLength: Int
    let learningRate: Float
    let maxNorm: Float
    let adam: AdamWConfig
    let steps: Int

    static let variants = ["gpt2", "llama", "smallm", "postnorm", "postparallel", "widehead"]

    init(_ name: String) throws {
        self.name = name
        let url = Bundle.module.url(forResource: name, withExtension: "safetensors", subdirectory: "Fixtures")!
        file = try SafetensorsFile(url: url)
        config = try ModelCheckpoint.parseConfig(Data(file.metadata["config"]!.utf8), path: "\(name) fixture")
        tokens = try file.int32s("input.tokens")
        targets = try file.int32s("input.targets")
        batchSize = file.entries["input.tokens"]!.shape[0]
        sequenceLength = file.entries["input.tokens"]!.shape[1]
        let optimizer = try JSONSerialization.jsonObject(with: Data(file.metadata["optimizer"]!.utf8)) as! [String: Any]
        let betas = optimizer["betas"] as! [Double]
        learningRate = Float(optimizer["lr"] as! Double)
        maxNorm = Float(optimizer["max_norm"] as! Double)
        steps = optimizer["steps"] as! Int
        adam = AdamWConfig(
            beta1: Float(betas[0]), beta2: Float(betas[1]), epsilon: Float(optimizer["eps"] as! Double),
            weightDecay: Float(optimizer["weight_decay"] as! Double))
    }

    /// A model on `backend` holding the fixture's weights (prefix "" = initial, "final." = after training).
    func model(backend: any Backend, prefix: String = "") throws -> GPT {
        let model = try GPT(config: config, backend: backend)
        try loadWeights(into: model, prefix: prefix)
        return model
    }

    func loadWeights(into model: GPT, prefix: String = "") throws {
        try model.parameters.withHostAccess { all in
            for entry in model.layout.entries {
                try file.copyFloats(
                    prefix + entry.name, expectedShape: entry.shape,
                    into: UnsafeMutableBufferPointer(rebasing: all[entry.range]))
            }
        }
    }
}

/// Max absolute difference, and that difference relative to the largest expected magnitude.
struct Agreement: CustomStringConvertible {
    var maxAbs: Float = 0
    var relative: Float = 0

    init() {}

    init(_ actual: ArraySlice<Float>, _ expected: ArraySlice<Float>) {
        let scale = max(expected.map { abs($0) }.max() ?? 0, 1e-12)
        maxAbs = zip(actual, expected).map { abs($0 - $1) }.max() ?? 0
        if zip(actual, expected).contains(where: { $0.isNaN != $1.isNaN }) { maxAbs = .infinity }
        relative = maxAbs / scale
    }

    mutating func merge(_ other: Agreement) {
        maxAbs = max(maxAbs, other.maxAbs)
        relative = max(relative, other.relative)
    }

    var description: String { String(format: "max abs diff %.2e, relative error %.2e", maxAbs, relative) }
}
