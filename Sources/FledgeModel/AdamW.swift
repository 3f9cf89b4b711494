// AdamW over the flat parameter buffer (Loshchilov & Hutter 2019; PyTorch `torch.optim.AdamW` semantics),
// and global-norm gradient clipping (PyTorch `clip_grad_norm_`). The moments share the parameter layout,
// so the update is one kernel call per contiguous run of tensors with the same weight decay.
// It sits beside the model rather than in FledgeTraining because the numeric core's proofs (10 AdamW
// steps against PyTorch, `fledge bench train`) need it; the training loop will drive it.

import FledgeTensor

/// Hyper-parameters of AdamW.
public struct AdamWConfig: Codable, Equatable, Sendable {
    public var beta1: Float = 0.9
    public var beta2: Float = 0.95
    public var epsilon: Float = 1e-8
    public var weightDecay: Float = 0.1
    /// Whether token/position embeddings (and so a tied output head) are decayed too.
    public var decayEmbeddings = false

    public init(
        beta1: Float = 0.9, beta2: Float = 0.95, epsilon: Float = 1e-8, weightDecay: Float = 0.1,
        decayEmbeddings: Bool = false
    ) {
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.weightDecay = weightDecay
        self.decayEmbeddings = decayEmbeddings
    }
}

/// AdamW state (first and second moments, step count) for one model.
public final class AdamW: @unchecked Sendable {
    public var config: AdamWConfig
    /// Updates taken so far.
    public var step = 0
    /// The moments, in the model's backend's memory (`ParameterLayout`'s order).
    public let firstMoment: BackendBuffer<Float>
    public let secondMoment: BackendBuffer<Float>
    /// Runs of the layout with one weight-decay setting: (range, decays).
    let runs: [(range: Range<Int>, decays: Bool)]

    public init(model: GPT, config: AdamWConfig = AdamWConfig()) throws {
        try model.allocateGradients()  // the optimizer needs them; inference never makes them
        self.config = config
        firstMoment = try BackendBuffer<Float>(backend: model.backend, count: model.parameterCount)
        secondMoment = try BackendBuffer<Float>(backend: model.backend, count: model.parameterCount)
        var runs: [(range: Range<Int>, decays: Bool)] = []
        for entry in model.layout.entries {
            let decays = Self.decays(entry.kind, config)
            if let last = runs.last, last.decays == decays, last.range.upperBound == entry.offset {
                runs[runs.count - 1].range = last.range.lowerBound..<entry.range.upperBound
            } else {
                runs.append((entry.range, decays))
            }
        }
        self.runs = runs
    }

    /// Weight decay applies to matrices only — not to norms or biases, and to embeddings only on request.
    public static func decays(_ kind: ParameterKind, _ config: AdamWConfig) -> Bool {
        switch kind {
        case .matrix, .residualMatrix: true
        case .embedding: config.decayEmbeddings
        case .normWeight, .bias: false
        }
    }

    /// Applies one update with `learningRate` to the model's parameters from its gradients.
    public func update(_ model: GPT, learningRate: Float) {
        step += 1
        let (p, g) = (model.parameters.address, model.gradients.address)
        let (m, v) = (firstMoment.address, secondMoment.address)
        for run in runs {
            let o = run.range.lowerBound
            let hyper = AdamWStep(
                learningRate: learningRate, beta1: config.beta1, beta2: config.beta2, epsilon: config.epsilon,
                weightDecay: run.decays ? config.weightDecay : 0, step: step)
            model.backend.adamW(
                parameters: p + o, gradients: g + o, firstMoment: m + o, secondMoment: v + o, count: run.range.count,
                hyper: hyper)
        }
    }
}

extension GPT {
    /// The global L2 norm of all gradients.
    public func gradientNorm() -> Float {
        Float(backend.sumOfSquares(gradients.address, count: gradients.count).squareRoot())
    }

    /// Scales the gradients so their global norm is at most `maxNorm` (PyTorch `clip_grad_norm_`:
    /// coefficient maxNorm / (norm + 1e-6), applied when below 1). Returns the norm before clipping, which may
    /// be NaN or infinite: the caller decides what a non-finite gradient means.
    @discardableResult
    public func clipGradients(maxNorm: Float) -> Float {
        let norm = gradientNorm()
        let coefficient = maxNorm / (norm + 1e-6)
        if maxNorm > 0, norm.isFinite, coefficient < 1 {
            backend.scale(gradients.address, count: gradients.count, by: coefficient)
        }
        return norm
    }
}
