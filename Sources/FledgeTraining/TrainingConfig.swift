// TrainingConfig: every setting of a training run (batch, steps or time budget, learning-rate schedule,
// AdamW, clipping, evaluation, samples, checkpoints, divergence policy), saved as training.json in each
// checkpoint so a run can be resumed and audited. LearningRateSchedule: warmup + cosine (default),
// constant, linear, and warmup-stable-decay (Hu et al. 2024, MiniCPM).

import FledgeModel
import Foundation

/// The shape of the learning rate over training.
public enum ScheduleKind: String, Codable, Sendable, CaseIterable {
    /// Linear warmup, then cosine decay to the floor.
    case cosine
    /// Linear warmup, then the peak rate throughout.
    case constant
    /// Linear warmup, then linear decay to the floor.
    case linear
    /// Warmup, the peak rate until the last `decayFraction` of training, then linear decay to the floor.
    case wsd
}

/// The learning rate as a function of training progress.
public struct LearningRateSchedule: Codable, Sendable, Equatable {
    public var kind = ScheduleKind.cosine
    public var peak: Float = 1e-3
    public var warmupSteps = 100
    /// The floor, as a fraction of the peak.
    public var minimumFraction: Float = 0.1
    /// WSD: the share of training spent decaying.
    public var decayFraction: Float = 0.2

    public init() {}

    /// The rate at `step` (0-based) when the decay after warmup has gone `progress` (0...1) of its way.
    public func rate(step: Int, progress: Double) -> Float {
        if step < warmupSteps { return peak * Float(step + 1) / Float(warmupSteps) }
        let floor = peak * minimumFraction
        let p = Float(min(1, max(0, progress)))
        switch kind {
        case .constant: return peak
        case .cosine: return floor + (peak - floor) * 0.5 * (1 + cos(Float.pi * p))
        case .linear: return peak - (peak - floor) * p
        case .wsd:
            let start = 1 - decayFraction
            guard p > start, decayFraction > 0 else { return peak }
            return peak - (peak - floor) * (p - start) / decayFraction
        }
    }
}

/// What to do when a loss or gradient is NaN or infinite.
public enum NonFinitePolicy: String, Codable, Sendable, CaseIterable {
    /// Stop with a message (the last checkpoint is untouched).
    case stop
    /// Skip the update and continue.
    case skip
}

/// Every setting of a training run.
public struct TrainingConfig: Codable, Sendable, Equatable {
    public var batchSize = 16
    /// Tokens per sequence (nil: the model's context length).
    public var sequenceLength: Int?
    /// Micro-batches per update.
    public var accumulationSteps = 1
    public var maxSteps = 1000
    /// `maxSteps` of a run limited by time alone: no step limit.
    public static let unlimitedSteps = 1 << 40
    /// A wall-clock budget; with it, the schedule follows whichever budget runs out first (and a resumed run
    /// is no longer bit-identical to an uninterrupted one, as time differs).
    public var maxSeconds: Double?
    public var schedule = LearningRateSchedule()
    public var optimizer = AdamWConfig()
    /// Global gradient-norm clip (0: off).
    public var clipNorm: Float = 1
    public var seed: UInt64 = 1337
    public var evalEvery = 100
    /// Validation batches per evaluation (the same windows every time); nil: `evaluationBatches` chooses.
    public var evalBatches: Int?
    /// The default evaluation budget: validation tokens per evaluation as a share of the training tokens
    /// between two evaluations. An evaluation is a forward pass only, about a third of a training step's work
    /// per token, so 5% of the tokens is under 2% of the time.
    public static let evaluationShare = 0.05
    /// Validation batches per evaluation: `evalBatches`, or `evaluationShare` of the training tokens between
    /// evaluations, at least 2 and at most 20 batches.
    public var evaluationBatches: Int {
        if let evalBatches { return evalBatches }
        let share = Self.evaluationShare * Double(evalEvery) * Double(accumulationSteps)
        return min(20, max(2, Int(share.rounded(.up))))
    }
    public var samplePrompts = ["\n"]
    public var sampleTokens = 120
    public var checkpointEvery = 500
    /// Also keep a step-numbered copy, `checkpoints/step-NNNNNNN/`, every N updates (nil: none).
    public var keepEvery: Int?
    public var checkpointMinutes: Double? = 10
    public var onNonFinite = NonFinitePolicy.stop
    /// A loss above this multiple of its running mean is reported as a spike.
    public var spikeFactor: Float = 1.5
    /// Data-parallel processes (ranks) the run trains with; `batchSize` is each rank's micro-batch, so the
    /// global batch is ranks × batchSize × accumulationSteps (nil: one process).
    public var processes: Int?
    public var ranks: Int { processes ?? 1 }

    public init() {}

    /// The same run for `ranks` processes: the global batch (ranks × batch) and the data order stay; each rank's
    /// batch is the global batch divided among them. Throws when it does not divide.
    public func splitting(over ranks: Int) throws -> TrainingConfig {
        guard ranks != self.ranks else { return self }
        let global = batchSize * self.ranks
        guard global % ranks == 0 else {
            let divisors = (1...global).filter { global % $0 == 0 }.map(String.init).joined(separator: ", ")
            throw TrainingError(
                "the run's global batch of \(global) sequences (\(self.ranks) process\(self.ranks == 1 ? "" : "es") × batch \(batchSize)) cannot be shared equally by \(ranks) processes",
                hint:
                    "resume with a number of processes that divides it (\(divisors)), or start a new run from this one with --init-from."
            )
        }
        var config = self
        config.batchSize = global / ranks
        config.processes = ranks > 1 ? ranks : nil
        return config
    }

    /// Throws for settings that cannot work.
    public func validate() throws {
        func fail(_ message: String, _ hint: String) -> TrainingError { TrainingError(message, hint: hint) }
        guard batchSize >= 1 else { throw fail("batch size \(batchSize)", "use --batch-size 1 or more.") }
        guard accumulationSteps >= 1 else {
            throw fail("accumulation \(accumulationSteps)", "use --accumulation 1 or more.")
        }
        guard maxSteps >= 1 else { throw fail("steps \(maxSteps)", "use --steps 1 or more.") }
        guard schedule.peak > 0, schedule.peak.isFinite else {
            throw fail("learning rate \(schedule.peak)", "use a positive rate, e.g. --lr 1e-3.")
        }
        guard schedule.warmupSteps >= 0, (0...1).contains(schedule.minimumFraction),
            (0...1).contains(schedule.decayFraction)
        else {
            throw fail(
                "schedule warmup \(schedule.warmupSteps), floor \(schedule.minimumFraction), decay \(schedule.decayFraction)",
                "warmup must be ≥ 0; --min-lr-fraction and --decay-fraction within [0, 1].")
        }
        guard (0..<1).contains(optimizer.beta1), (0..<1).contains(optimizer.beta2), optimizer.weightDecay >= 0 else {
            throw fail(
                "AdamW betas \(optimizer.beta1), \(optimizer.beta2), weight decay \(optimizer.weightDecay)",
                "betas must be in [0, 1) and weight decay ≥ 0.")
        }
        guard clipNorm >= 0, evalEvery >= 1, evaluationBatches >= 1, checkpointEvery >= 1, sampleTokens >= 0 else {
            throw fail(
                "clip \(clipNorm), eval every \(evalEvery), eval batches \(evaluationBatches), checkpoint every \(checkpointEvery)",
                "clip ≥ 0; evaluation and checkpoint intervals and eval batches ≥ 1.")
        }
        if let maxSeconds, maxSeconds <= 0 { throw fail("time budget \(maxSeconds) s", "use a positive --minutes.") }
        if let keepEvery, keepEvery < 1 { throw fail("keep every \(keepEvery)", "use --keep-every 1 or more.") }
    }
}

/// Where a run is; saved as trainer-state.json with every checkpoint.
public struct TrainerState: Codable, Sendable, Equatable {
    /// Updates done.
    public var step = 0
    public var tokensSeen = 0
    /// The data loader's position (epoch, window).
    public var dataEpoch = 0
    public var dataWindow = 0
    public var bestValidationLoss: Float?
    public var elapsedSeconds = 0.0
    /// Running mean of the training loss (spike detection).
    public var smoothedLoss: Float?
    public var lastLearningRate: Float = 0
    /// The prepared data folder (absolute), so `--resume` finds it.
    public var dataFolder: String?
    /// Seconds of training when warmup ended: the time budget's decay is measured from there.
    public var warmupEndSeconds: Double?

    public init() {}
}
