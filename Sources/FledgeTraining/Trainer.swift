// Trainer: the training loop of `fledge train` — batches from the loader, forward and backward over
// micro-batches, clipping, AdamW with the schedule's rate; evaluation, samples, checkpoints and the metrics
// log on their intervals; divergence guards. Everything random derives from the seed and the step, and the
// loader's position is two integers, so a run resumed from a checkpoint continues bit for bit.
// Data-parallel: with a communicator of several ranks, each rank trains on its slice of every global batch,
// the gradients are summed over ranks once per update, and every rank applies the same AdamW step; the ranks
// share each evaluation; rank 0 alone samples, logs and writes checkpoints (docs/distributed.md).

import FledgeData
import FledgeDistributed
import FledgeFiles
import FledgeGeneration
import FledgeModel
import FledgeTensor
import FledgeTokenizer
import Foundation

/// What the trainer reports while it runs.
public enum TrainingEvent: Sendable {
    /// After every update.
    case step(TrainingStep)
    case evaluation(step: Int, Evaluation)
    case sample(step: Int, prompt: String, text: String)
    /// Checkpoints, spikes, skipped updates.
    case message(String)
}

/// One update's numbers.
public struct TrainingStep: Sendable {
    public var step: Int
    public var totalSteps: Int
    public var loss: Float
    public var learningRate: Float
    public var gradientNorm: Float
    public var tokensPerSecond: Double
    public var elapsed: Double
    /// Seconds left, from the step rate (or the time budget).
    public var remaining: Double
}

/// How a run ended.
public struct TrainingOutcome: Sendable {
    public var state: TrainerState
    /// The last validation numbers (the same on every rank of a data-parallel job: they evaluate together).
    public var finalEvaluation: Evaluation?
    public var interrupted: Bool
    /// Updates made in this session, and the seconds they spent in all-reduces (0 in one process).
    public var updates: Int
    public var communicationSeconds: Double
}

/// Runs training for one model on one prepared dataset.
public final class Trainer {
    public let model: GPT
    public let optimizer: AdamW
    public let config: TrainingConfig
    public let run: URL
    public let tokenizer: any Tokenizer
    public let dataset: PreparedDataset
    public private(set) var state: TrainerState
    /// Receives progress on the training thread.
    public var observe: (TrainingEvent) -> Void = { _ in }
    /// Polled between updates; true saves a checkpoint and stops (Ctrl-C).
    public var shouldStop: () -> Bool = { false }

    /// The ranks of a data-parallel job (one process: `SingleProcess`).
    public let communicator: Communicator
    let loader: DataLoader
    let evaluator: Evaluator
    let activations: Activations
    /// Rank 0's metrics.jsonl (nil on the other ranks).
    let metrics: MetricsLog?
    /// This process's hold on the run folder: no other process writes it while this trainer lives (rank 0's).
    let lock: FolderLock?
    let tokenizerJSON: Data
    /// Writes the samples (made on first use: its KV cache is only needed with sample prompts).
    var sampler: Generator?
    /// Whether this session has said what an evaluation costs.
    var statedEvaluationCost = false
    /// Validation batches each evaluation reads (the configured budget, or fewer when the split is short), and
    /// their tokens.
    public var evaluationBatches: Int { evaluator.batches }
    public var evaluationTokens: Int {
        evaluator.batches * evaluator.batchSize * evaluator.sequenceLength * communicator.size
    }
    let sequenceLength: Int
    private var inputs: [Int32]
    /// Updates skipped for a non-finite loss or gradient (`--on-nan skip`) in this session.
    private var skipped = (inARow: 0, total: 0, sessionStart: 0)
    /// Skipped updates in a row (or half of this session's, past twice as many) that stop a run as diverged.
    public static let skipLimit = 20
    private var targets: [Int32]
    /// A data-parallel update's small all-reduce: the loss, whether a rank was asked to stop, rank 0's clock.
    private var control = [Double](repeating: 0, count: 3)
    /// The agreement of the last update (several ranks): stop, and rank 0's elapsed seconds.
    private var agreed = (stop: false, elapsed: 0.0)
    /// Seconds this session's updates spent in all-reduces.
    private var communicationSeconds = 0.0

    /// Plans a run in `run` (created if needed). With `state` (a resumed checkpoint's), continues from it.
    /// With a `communicator` of several ranks, every rank makes its own Trainer (same model, config, data and
    /// state); they check that they agree, and rank 0's weights and optimizer moments are copied to all.
    public init(
        model: GPT, optimizer: AdamW, config: TrainingConfig, dataset: PreparedDataset, run: URL,
        state: TrainerState? = nil, communicator: Communicator = SingleProcess()
    ) throws {
        try config.validate()
        self.communicator = communicator
        self.model = model
        self.optimizer = optimizer
        self.config = config
        self.run = run
        self.dataset = dataset
        tokenizer = try dataset.tokenizer()
        try ShardVerification.verify(dataset)
        tokenizerJSON = try tokenizer.tokenizerJSON()
        let T = config.sequenceLength ?? model.config.contextLength
        sequenceLength = T
        guard T >= 1, T <= model.config.contextLength else {
            throw TrainingError(
                "sequence length \(T) exceeds the model's context length \(model.config.contextLength)",
                hint: "use --sequence-length \(model.config.contextLength) or less, or a model with a longer --context."
            )
        }
        guard tokenizer.vocabularySize == model.config.vocabularySize else {
            throw TrainingError(
                "the data's tokenizer has \(tokenizer.vocabularySize) tokens but the model's vocabulary is \(model.config.vocabularySize)",
                hint: "train with the tokenizer the model was built for, or build the model for this data's tokenizer.")
        }
        try Trainer.checkMemory(
            model: model, batchSize: config.batchSize, sequenceLength: T, processes: Launcher.detect().ranksOnThisHost)
        var start = state ?? TrainerState()
        start.dataFolder = dataset.folder.standardizedFileURL.path
        self.state = start
        skipped.sessionStart = start.step
        loader = try DataLoader(
            stream: try dataset.stream("train"), batchSize: config.batchSize, sequenceLength: T, order: .random,
            seed: config.seed, position: LoaderPosition(epoch: start.dataEpoch, window: start.dataWindow),
            rank: communicator.rank, ranks: communicator.size)
        evaluator = try Evaluator(
            model: model, stream: try dataset.stream("validation"), batchSize: config.batchSize, sequenceLength: T,
            batches: config.evaluationBatches, split: "validation", communicator: communicator)
        activations = try Activations(model: model, batchSize: config.batchSize, sequenceLength: T)
        inputs = [Int32](repeating: 0, count: config.batchSize * T)
        targets = inputs
        agreed.elapsed = start.elapsedSeconds
        if communicator.size > 1 {
            try Trainer.joinRanks(
                communicator, model: model, optimizer: optimizer, config: config, dataset: dataset, state: start)
        }
        if communicator.isLeader {
            lock = try RunCheckpoint.lockRun(run)
            metrics = try MetricsLog(
                run.appendingPathComponent("metrics.jsonl"), resumingAt: state?.step,
                tensorBoard: run.appendingPathComponent("tensorboard"))
        } else {
            (lock, metrics) = (nil, nil)
        }
    }

    /// Several ranks: refuses ranks that were started differently (program, model, settings, data, starting
    /// point, threads), then gives every rank rank 0's weights and AdamW moments.
    static func joinRanks(
        _ communicator: Communicator, model: GPT, optimizer: AdamW, config: TrainingConfig, dataset: PreparedDataset,
        state: TrainerState
    ) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let program =
            (try? Data(contentsOf: URL(fileURLWithPath: "/proc/self/exe"), options: .alwaysMapped))
            .map(SHA256.hex) ?? CommandLine.arguments[0]
        try communicator.checkAgreement([
            ("the fledge program (its build)", program),
            ("the model (architecture)", String(decoding: try encoder.encode(model.config), as: UTF8.self)),
            ("the training settings", String(decoding: try encoder.encode(config), as: UTF8.self)),
            ("the data (shards and tokenizer)", dataset.manifest.contentHashes.joined(separator: ",")),
            (
                "the starting point (step, data position)",
                "\(state.step) \(state.dataEpoch) \(state.dataWindow) \(state.elapsedSeconds)"
            ),
            ("the threads per rank (--threads)", "\((model.backend as? CPUBackend)?.threadCount ?? 0)"),
        ])
        for storage in [model.parameters, optimizer.firstMoment, optimizer.secondMoment] {
            try storage.withHostAccess { (values) throws(DistributedError) in
                try communicator.broadcast(
                    UnsafeMutableRawBufferPointer(values), from: 0, what: "copy of rank 0's weights")
            }
        }
    }

    /// Bytes a step needs: parameters, gradients, two AdamW moments, and the activations.
    public static func memoryNeeded(model config: ModelConfig, parameters: Int, batchSize: Int, sequenceLength: Int)
        -> Int
    {
        4 * 4 * parameters
            + Activations.estimatedBytes(
                config: config, batchSize: batchSize, sequenceLength: sequenceLength, forTraining: true)
    }

    /// Throws when `processes` such runs (the ranks on this host) would not fit in this machine's memory.
    static func checkMemory(model: GPT, batchSize: Int, sequenceLength: Int, processes: Int = 1) throws {
        let needed = memoryNeeded(
            model: model.config, parameters: model.parameterCount, batchSize: batchSize, sequenceLength: sequenceLength)
        let available = Int(ProcessInfo.processInfo.physicalMemory)
        guard needed * processes < available * 9 / 10 else {
            throw TrainingError(
                String(
                    format:
                        "batch %d × %d tokens needs about %.1f GB (weights, gradients, AdamW, activations)%@; this machine has %.1f GB",
                    batchSize, sequenceLength, Double(needed) / 1e9,
                    processes > 1 ? " in each of the \(processes) processes on this host" : "", Double(available) / 1e9),
                hint:
                    "use a smaller --batch-size with --accumulation to keep the tokens per update, or a shorter --context."
            )
        }
    }

    /// Tokens per update, over all ranks.
    public var tokensPerUpdate: Int {
        config.batchSize * sequenceLength * config.accumulationSteps * communicator.size
    }

    /// Trains until the step or time budget is spent, or `shouldStop`; saves final/ (or latest/ when stopped).
    public func train() throws -> TrainingOutcome {
        let sessionStart = Date()
        let elapsedBefore = state.elapsedSeconds
        let leader = communicator.isLeader
        let alone = communicator.size == 1
        func ownClock() -> Double { elapsedBefore + Date().timeIntervalSince(sessionStart) }
        // Several ranks decide by rank 0's clock (agreed at every update), so budgets and the schedule agree.
        func elapsed() -> Double { alone ? ownClock() : agreed.elapsed }
        var lastCheckpoint = Date()
        var rateWindow = (time: elapsed(), step: state.step)
        var tokensPerSecond = 0.0
        var lastEvaluation: Evaluation?
        let startStep = state.step
        func outcome(interrupted: Bool) -> TrainingOutcome {
            TrainingOutcome(
                state: state, finalEvaluation: lastEvaluation, interrupted: interrupted,
                updates: state.step - startStep, communicationSeconds: communicationSeconds)
        }
        if state.step == 0 { lastEvaluation = try evaluate(elapsed: 0) }
        while state.step < config.maxSteps && !(config.maxSeconds.map { elapsed() >= $0 } ?? false) {
            if alone ? shouldStop() : agreed.stop {
                if leader {
                    try save(.latest)
                    try writeReport()
                }
                return outcome(interrupted: true)
            }
            let (loss, norm) = try update(clock: ownClock)
            let now = elapsed()
            if now - rateWindow.time >= 1 || state.step - rateWindow.step >= 20 {
                tokensPerSecond =
                    Double((state.step - rateWindow.step) * tokensPerUpdate) / max(now - rateWindow.time, 1e-9)
                rateWindow = (now, state.step)
            }
            let stepsLeft = Double(config.maxSteps - state.step)
            var remaining = stepsLeft * Double(tokensPerUpdate) / max(tokensPerSecond, 1e-9)
            if let budget = config.maxSeconds { remaining = min(remaining, max(0, budget - now)) }
            state.elapsedSeconds = now
            observe(
                .step(
                    TrainingStep(
                        step: state.step, totalSteps: config.maxSteps, loss: loss, learningRate: state.lastLearningRate,
                        gradientNorm: norm, tokensPerSecond: tokensPerSecond, elapsed: now, remaining: remaining)))
            var record = MetricsRecord(kind: "train", step: state.step, elapsed: now)
            (record.loss, record.learningRate, record.gradientNorm) = (loss, state.lastLearningRate, norm)
            (record.tokensPerSecond, record.tokens) = (tokensPerSecond, state.tokensSeen)
            metrics?.append(record)
            if state.step % config.evalEvery == 0 {
                lastEvaluation = try evaluate(elapsed: now)
                rateWindow = (ownClock(), state.step)  // the speed shown is of training steps only (rank 0 shows it)
            }
            guard leader else { continue }
            let minutesDue =
                config.checkpointMinutes.map { Date().timeIntervalSince(lastCheckpoint) >= $0 * 60 } ?? false
            if state.step % config.checkpointEvery == 0 || minutesDue {
                try save(.latest)
                lastCheckpoint = Date()
            }
            if let keep = config.keepEvery, state.step % keep == 0 { try keepStep() }
        }
        state.elapsedSeconds = elapsed()
        if lastEvaluation == nil || state.step % config.evalEvery != 0 {
            lastEvaluation = try evaluate(elapsed: state.elapsedSeconds)
        }
        guard leader else { return outcome(interrupted: false) }
        try save(.latest)
        try save(.final)
        try writeReport()
        return outcome(interrupted: false)
    }

    /// One update: micro-batches forward and backward, gradient scaling, clipping, the guard, AdamW.
    /// With several ranks, the gradients are summed over them and the loss, the stop request and rank 0's
    /// `clock` are agreed (`agreed`) before anything depends on them, so every rank takes the same decisions.
    func update(clock: () -> Double = { 0 }) throws -> (loss: Float, norm: Float) {
        model.zeroGradients()
        var total: Float = 0
        let accumulation = config.accumulationSteps
        for micro in 0..<accumulation {
            loader.next(inputs: &inputs, targets: &targets)
            // Each rank's micro-batches draw their own masks (ranks share the seed, not the masks).
            let seed = Trainer.dropoutSeed(
                config.seed, step: state.step, micro: communicator.rank * accumulation + micro)
            let loss =
                try model.forward(tokens: inputs, targets: targets, activations: activations, dropoutSeed: seed) ?? 0
            try model.backward(activations: activations)
            total += loss
        }
        var loss = total / Float(accumulation)
        let ranks = communicator.size
        if ranks > 1 {
            let started = Date()
            // The communicator works on host memory: in place on the CPU, staged through the host on a device.
            try model.gradients.withHostAccess { (gradients) throws(DistributedError) in
                try communicator.allReduceSum(gradients, what: "all-reduce of the gradients")
            }
            (control[0], control[1]) = (Double(total), shouldStop() ? 1 : 0)
            control[2] = communicator.isLeader ? clock() : 0
            try communicator.allReduceSum(&control, what: "all-reduce of the loss")
            communicationSeconds += Date().timeIntervalSince(started)
            loss = Float(control[0] / Double(accumulation * ranks))
            agreed = (control[1] > 0, control[2])
        }
        if accumulation * ranks > 1 {
            model.backend.scale(
                model.gradients.address, count: model.gradients.count, by: 1 / Float(accumulation * ranks))
        }
        let norm = config.clipNorm > 0 ? model.clipGradients(maxNorm: config.clipNorm) : model.gradientNorm()
        let position = loader.position
        (state.dataEpoch, state.dataWindow) = (position.epoch, position.window)
        state.tokensSeen += tokensPerUpdate
        guard loss.isFinite, norm.isFinite else {
            let what = loss.isFinite ? "gradient norm is \(norm)" : "loss is \(loss)"
            guard config.onNonFinite == .skip else {
                throw TrainingError(
                    "step \(state.step + 1): the \(what)",
                    hint:
                        "lower the learning rate (--lr), lengthen the warmup (--warmup), keep clipping on (--clip 1), and check the data; --on-nan skip skips such updates. The last checkpoint in \(run.path)/latest is intact."
                )
            }
            state.step += 1
            skipped.inARow += 1
            skipped.total += 1
            report("step \(state.step): the \(what); update skipped")
            let session = state.step - skipped.sessionStart
            if skipped.inARow >= Trainer.skipLimit || (session >= 2 * Trainer.skipLimit && 2 * skipped.total > session)
            {
                throw TrainingError(
                    "step \(state.step): \(skipped.inARow >= Trainer.skipLimit ? "\(skipped.inARow) updates in a row" : "\(skipped.total) of the last \(session) updates") had a NaN or infinite loss or gradient and were skipped (--on-nan skip): the run has diverged",
                    hint:
                        "lower the learning rate (--lr), lengthen the warmup, keep clipping on, and check the data. The last good checkpoint in \(run.path)/latest is intact."
                )
            }
            return (loss, norm)
        }
        skipped.inARow = 0
        state.lastLearningRate = config.schedule.rate(step: state.step, progress: decayProgress())
        optimizer.update(model, learningRate: state.lastLearningRate)
        state.step += 1
        if let smoothed = state.smoothedLoss, state.step > config.schedule.warmupSteps,
            loss > config.spikeFactor * smoothed
        {
            report(String(format: "step %d: loss spike %.3f (running mean %.3f)", state.step, loss, smoothed))
        }
        state.smoothedLoss = state.smoothedLoss.map { 0.95 * $0 + 0.05 * loss } ?? loss
        return (loss, norm)
    }

    /// How far training is through the decay that follows warmup (0 at the end of warmup, 1 at the end of
    /// the budget), in steps or in time, whichever budget is further spent. Measured from the end of warmup,
    /// so a slow warmup is not followed by a sudden drop of the rate (nanoGPT's decay ratio).
    func decayProgress() -> Double {
        let warmup = config.schedule.warmupSteps
        guard state.step >= warmup else { return 0 }
        if state.warmupEndSeconds == nil { state.warmupEndSeconds = state.elapsedSeconds }
        let bySteps = Double(state.step - warmup) / Double(max(1, config.maxSteps - warmup))
        let byTime = config.maxSeconds.map { budget -> Double in
            let start = state.warmupEndSeconds ?? 0
            return (state.elapsedSeconds - start) / max(1e-9, budget - start)
        }
        return min(1, max(0, max(bySteps, byTime ?? 0)))
    }

    /// A dropout seed per (run seed, step, micro-batch): masks never repeat and need no stored RNG state.
    static func dropoutSeed(_ seed: UInt64, step: Int, micro: Int) -> UInt64 {
        SplitMix64.mix(seed &+ UInt64(step) &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(micro) &* 0xBF58_476D_1CE4_E5B9)
    }

    /// Validation numbers (every rank takes part) and, on rank 0, samples; a new best saves best/.
    func evaluate(elapsed: Double) throws -> Evaluation {
        let evaluation = try evaluator.evaluate(model) { firstBatchSeconds in
            // The session's first evaluation says up front what each one costs (from its first batch's time).
            guard !self.statedEvaluationCost else { return }
            self.statedEvaluationCost = true
            let seconds = firstBatchSeconds * Double(self.evaluator.batches)
            self.observe(
                .message(
                    "each evaluation reads \(self.evaluationTokens) validation tokens (\(self.evaluator.batches) batches) and takes about "
                        + (seconds < 0.1 ? "0.1 s or less" : String(format: "%.1f s", seconds))))
        }
        if state.step > 0, evaluation.loss.isFinite, evaluation.loss < (state.bestValidationLoss ?? .infinity) {
            state.bestValidationLoss = evaluation.loss
            if communicator.isLeader {
                try RunCheckpoint.save(
                    .best, run: run, model: model, optimizer: nil, tokenizerJSON: tokenizerJSON, state: state,
                    config: config, format: checkpointFormat, manifest: try? dataset.manifest.jsonData())
            }
        }
        guard communicator.isLeader else { return evaluation }
        observe(.evaluation(step: state.step, evaluation))
        var record = MetricsRecord(kind: "eval", step: state.step, elapsed: elapsed)
        (record.validationLoss, record.perplexity, record.bitsPerByte) =
            (evaluation.loss, evaluation.perplexity, evaluation.bitsPerByte)
        metrics?.append(record)
        defer { try? writeReport() }  // the report is current after every evaluation, not only at the end
        for prompt in config.samplePrompts where config.sampleTokens > 0 {
            if sampler == nil {
                sampler = try Generator(model: model, tokenizer: tokenizer, format: dataset.manifest.config.sequence)
            }
            let text = try sampler!.sample(prompt, tokens: config.sampleTokens, sampling: .samples)
            observe(.sample(step: state.step, prompt: prompt, text: text))
            var sample = MetricsRecord(kind: "sample", step: state.step, elapsed: elapsed)
            (sample.prompt, sample.text) = (prompt, text)
            metrics?.append(sample)
        }
        return evaluation
    }

    func save(_ kind: CheckpointKind) throws {
        try RunCheckpoint.save(
            kind, run: run, model: model, optimizer: optimizer, tokenizerJSON: tokenizerJSON, state: state,
            config: config, format: checkpointFormat, manifest: try? dataset.manifest.jsonData())
        var record = MetricsRecord(kind: "event", step: state.step, elapsed: state.elapsedSeconds)
        record.message = "saved \(kind.rawValue)/"
        metrics?.append(record)
    }

    /// A step-numbered checkpoint kept for good (`checkpoints/step-NNNNNNN/`, weights and state, no optimizer
    /// moments), written like the others: complete or not at all.
    func keepStep() throws {
        let folder = run.appendingPathComponent("checkpoints")
        do {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        } catch {
            throw TrainingError(
                "cannot create \(folder.path): \(error.localizedDescription)", hint: "check free disk space.")
        }
        try RunCheckpoint.save(
            .best, run: folder, model: model, optimizer: nil, tokenizerJSON: tokenizerJSON, state: state,
            config: config, format: checkpointFormat, manifest: try? dataset.manifest.jsonData(),
            name: String(format: "step-%07d", state.step))
        report(String(format: "kept checkpoints/step-%07d/", state.step))
    }

    /// The sequence format saved with each checkpoint: the data's, and whether it was question/answer data.
    var checkpointFormat: SequenceFormat {
        var format = dataset.manifest.config.sequence
        format.questionAnswerData = dataset.manifest.lossMask
        return format
    }

    func report(_ message: String) {
        observe(.message(message))
        var record = MetricsRecord(kind: "event", step: state.step, elapsed: state.elapsedSeconds)
        record.message = message
        metrics?.append(record)
    }

    /// report.html in the run directory.
    public func writeReport() throws {
        guard let metrics else { return }
        try RunReport.write(
            to: run.appendingPathComponent("report.html"), metrics: try MetricsLog.read(metrics.url),
            model: model.config, parameters: model.parameterCount, training: config, manifest: dataset.manifest,
            state: state)
    }
}
