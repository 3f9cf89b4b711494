// `fledge train`: prepared data + a model (preset, config file, flags, or --init-from a run) → a run
// directory with checkpoints, metrics.jsonl and report.html; `--resume RUN` continues exactly. Ctrl-C saves
// latest/ before exiting.

import ArgumentParser
import FledgeKit
import Foundation

extension ScheduleKind: ExpressibleByArgument {}
extension NonFinitePolicy: ExpressibleByArgument {}
extension NormKind: ExpressibleByArgument {}
extension PositionEncoding: ExpressibleByArgument {}
extension MLPActivation: ExpressibleByArgument {}

/// Architecture flags (each overrides the preset or config file).
struct ArchitectureOptions: ParsableArguments {
    @Option(help: "A preset: tiny, 20m, 50m, 100m (default tiny).") var preset: ModelPreset?
    @Option(help: "A model config.json.") var modelConfig: String?
    @Option(help: "Transformer blocks.") var layers: Int?
    @Option(help: "Embedding width.") var width: Int?
    @Option(help: "Attention heads.") var heads: Int?
    @Option(help: "Key/value heads (grouped-query attention; 1 = multi-query).") var kvHeads: Int?
    @Option(help: "MLP hidden width.") var mlpWidth: Int?
    @Option(help: "Context length (tokens).") var context: Int?
    @Option(help: "layernorm or rmsnorm.") var norm: NormKind?
    @Option(help: "learned, sinusoidal or rotary.") var positions: PositionEncoding?
    @Option(help: "gelu, relu, silu or swiglu.") var activation: MLPActivation?
    @Option(help: "Dropout probability.") var dropout: Float?

    /// The architecture for a vocabulary of `vocabularySize`.
    func config(vocabularySize: Int) throws -> ModelConfig {
        var config: ModelConfig
        if let modelConfig {
            guard preset == nil else { throw ValidationError("give --preset or --model-config, not both.") }
            let data = try Data(contentsOf: URL(fileURLWithPath: modelConfig))
            config = try ModelCheckpoint.parseConfig(data, path: modelConfig)
        } else {
            config = (preset ?? .tiny).config()
        }
        config.vocabularySize = vocabularySize
        if let layers { config.layers = layers }
        if let width {
            config.width = width
            if mlpWidth == nil { config.mlpWidth = 4 * width }
        }
        if let heads {
            config.heads = heads
            if kvHeads == nil { config.kvHeads = heads }
        }
        if let kvHeads { config.kvHeads = kvHeads }
        if let mlpWidth { config.mlpWidth = mlpWidth }
        if let context { config.contextLength = context }
        if let norm { config.norm = norm }
        if let positions { config.positions = positions }
        if let activation { config.activation = activation }
        if let dropout { config.dropout = dropout }
        try config.validate()
        return config
    }
}

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train", abstract: "Train a model on prepared data; resume or fine-tune a run.")

    @Option(help: "A folder written by `fledge data prepare`.") var data: String?
    @Option(name: .customLong("run"), help: "The run directory to write (default runs/DATE-TIME).")
    var runDirectory: String?
    @Option(help: "Continue the run in this directory exactly where its latest/ checkpoint stopped.") var resume:
        String?
    @Option(help: "Start from this run's (or checkpoint's) weights: fine-tuning.") var initFrom: String?
    @OptionGroup var architecture: ArchitectureOptions

    @Option(help: "Sequences per micro-batch.") var batchSize = 16
    @Option(help: "Micro-batches per update (gradient accumulation).") var accumulation = 1
    @Option(help: "Updates (default 1000; with --resume, a new total: the schedule then ends there).") var steps: Int?
    @Option(
        help:
            "Wall-clock budget in minutes (training stops at whichever budget ends first; with --resume, a new total)."
    ) var minutes: Double?
    @Option(help: "Peak learning rate.") var lr: Float = 1e-3
    @Option(help: "Warmup updates.") var warmup = 100
    @Option(help: "Schedule: cosine, constant, linear, wsd.") var schedule: ScheduleKind = .cosine
    @Option(help: "Learning-rate floor as a fraction of the peak.") var minLrFraction: Float = 0.1
    @Option(help: "WSD: share of training spent decaying.") var decayFraction: Float = 0.2
    @Option(help: "AdamW weight decay (matrices only).") var weightDecay: Float = 0.1
    @Option(help: "AdamW β2.") var beta2: Float = 0.95
    @Option(help: "Gradient-norm clip (0 = off).") var clip: Float = 1
    @Option(help: "Seed for initialisation, data order and dropout.") var seed: UInt64 = 1337
    @Option(help: "Evaluate (and sample) every N updates.") var evalEvery = 100
    @Option(help: "Validation batches per evaluation.") var evalBatches = 20
    @Option(help: "A prompt to sample at each evaluation (repeatable).") var prompt: [String] = []
    @Option(help: "Tokens per sample.") var sampleTokens = 120
    @Option(help: "Save latest/ every N updates.") var checkpointEvery = 500
    @Option(help: "…and every N minutes.") var checkpointMinutes: Double = 10
    @Option(help: "A NaN/infinite loss or gradient: stop, or skip the update.") var onNan: NonFinitePolicy = .stop
    @OptionGroup var threading: ThreadOptions

    func trainingConfig() -> TrainingConfig {
        var config = TrainingConfig()
        config.batchSize = batchSize
        config.sequenceLength = architecture.context
        config.accumulationSteps = accumulation
        config.maxSteps = steps ?? 1000
        config.maxSeconds = minutes.map { $0 * 60 }
        config.schedule.kind = schedule
        config.schedule.peak = lr
        config.schedule.warmupSteps = warmup
        config.schedule.minimumFraction = minLrFraction
        config.schedule.decayFraction = decayFraction
        config.optimizer.weightDecay = weightDecay
        config.optimizer.beta2 = beta2
        config.clipNorm = clip
        config.seed = seed
        config.evalEvery = evalEvery
        config.evalBatches = evalBatches
        if !prompt.isEmpty { config.samplePrompts = prompt.map { $0.replacingOccurrences(of: "\\n", with: "\n") } }
        config.sampleTokens = sampleTokens
        config.checkpointEvery = checkpointEvery
        config.checkpointMinutes = checkpointMinutes
        config.onNonFinite = onNan
        return config
    }

    func run() throws {
        do {
            let backend = CPUBackend(threadCount: threading.threads)
            let trainer: Trainer
            if let resume {
                let folder = URL(fileURLWithPath: resume)
                if UserFile.kind(folder.path) == .folder { try RunCheckpoint.lockRun(folder) }
                let (model, optimizer, state, saved) = try RunCheckpoint.load(
                    try RunCheckpoint.resumeFolder(folder), backend: backend)
                var config = saved
                if let steps {
                    guard steps > state.step else {
                        throw ValidationError("--steps \(steps) is not beyond the run's step \(state.step).")
                    }
                    config.maxSteps = steps
                }
                if let minutes { config.maxSeconds = minutes * 60 }
                guard let dataFolder = data ?? state.dataFolder else {
                    throw ValidationError("\(resume) does not record its data folder: pass --data.")
                }
                let dataset = try PreparedDataset(URL(fileURLWithPath: dataFolder))
                trainer = try Trainer(
                    model: model, optimizer: optimizer, config: config, dataset: dataset, run: folder, state: state)
                say("resuming \(resume) at step \(state.step) of \(config.maxSteps)")
            } else {
                guard let data else { throw ValidationError("give --data (a prepared folder), or --resume RUN.") }
                let dataset = try PreparedDataset(URL(fileURLWithPath: data))
                let runFolder = URL(fileURLWithPath: runDirectory ?? "runs/\(Self.timestamp())")
                try RunCheckpoint.lockRun(runFolder)
                if FileManager.default.fileExists(atPath: runFolder.appendingPathComponent("latest").path) {
                    throw ValidationError(
                        "\(runFolder.path) already holds a run: continue it with --resume \(runFolder.path), or choose another --run."
                    )
                }
                let tokenizer = try dataset.tokenizer()
                let model: GPT
                if let initFrom {
                    let (folder, loaded, theirs) = try RunCheckpoint.loadForInference(initFrom, backend: backend)
                    model = loaded
                    try dataset.check(tokenizer: theirs, name: folder.appendingPathComponent("tokenizer.json").path)
                } else {
                    model = try GPT(
                        config: architecture.config(vocabularySize: tokenizer.vocabularySize), backend: backend,
                        seed: seed)
                }
                let config = trainingConfig()
                let optimizer = try AdamW(model: model, config: config.optimizer)
                trainer = try Trainer(
                    model: model, optimizer: optimizer, config: config, dataset: dataset, run: runFolder)
            }
            try Self.train(trainer, threads: threading.threads)
        } catch { exitWithError(error) }
    }

    static func timestamp() -> String {
        let formatter = DateFormatter()
        formatter.dateFormat = "yyyyMMdd-HHmmss"
        return formatter.string(from: Date())
    }

    /// Prints the plan, runs the trainer with a live progress line, and prints the outcome.
    static func train(_ trainer: Trainer, threads: Int) throws {
        let model = trainer.model
        let manifest = trainer.dataset.manifest
        let train = manifest.splits["train"]!
        say(
            "device: CPU, \(threads) threads, BLAS \(BLAS.libraryName)\nmodel: \(model.parameterCount) parameters (\(model.config.layers) layers, width \(model.config.width), \(model.config.heads) heads, context \(model.config.contextLength)), vocabulary \(model.config.vocabularySize)"
        )
        say(
            "data: \(trainer.dataset.folder.path): \(train.tokens) training tokens (\(train.characters) characters), \(manifest.splits["validation"]!.tokens) validation tokens"
        )
        let config = trainer.config
        let steps = config.maxSteps - trainer.state.step
        say(
            "plan: \(steps) updates of \(trainer.tokensPerUpdate) tokens (batch \(config.batchSize) × \(trainer.tokensPerUpdate / config.batchSize / config.accumulationSteps) × \(config.accumulationSteps) accumulation)\(config.maxSeconds.map { String(format: ", at most %.1f min", $0 / 60) } ?? ""); \(trainer.tokensPerUpdate * steps / max(train.tokens, 1)) epochs"
        )
        let interrupt = Interrupt()
        trainer.shouldStop = { interrupt.requested }
        let line = ProgressLine()
        var printedEstimate = false
        trainer.observe = { event in
            switch event {
            case .step(let s):
                if !printedEstimate && s.step >= 5 && s.tokensPerSecond > 0 {
                    printedEstimate = true
                    line.finish()
                    say(
                        String(
                            format: "speed: %.0f tokens/s; estimated time %@", s.tokensPerSecond, duration(s.remaining))
                    )
                }
                let status = String(
                    format: "step %d/%d  loss %.4f  lr %.2e  grad %.3f  %.0f tok/s  %@ elapsed  ETA %@", s.step,
                    s.totalSteps, s.loss, s.learningRate, s.gradientNorm, s.tokensPerSecond, duration(s.elapsed),
                    duration(s.remaining))
                line.update(status)
                // Not a terminal (a log file): a line every quarter of an evaluation interval instead.
                if !line.live && s.step % max(1, trainer.config.evalEvery / 4) == 0 { say(status) }
            case .evaluation(let step, let e):
                line.finish()
                say(
                    String(
                        format: "step %d: validation loss %.4f  perplexity %.2f  bits/byte %.4f", step, e.loss,
                        e.perplexity, e.bitsPerByte))
            case .sample(_, let prompt, let text):
                say("  sample: \((prompt + text).replacingOccurrences(of: "\n", with: "\n          "))")
            case .message(let message):
                line.finish()
                say("note: \(message)")
            }
        }
        let outcome = try trainer.train()
        line.finish()
        let run = trainer.run.path
        if outcome.interrupted {
            say(
                "interrupted at step \(outcome.state.step): saved \(run)/latest; continue with `fledge train --resume \(run)`"
            )
        } else {
            say(
                "done: \(outcome.state.step) steps in \(duration(outcome.state.elapsedSeconds)); checkpoints in \(run)/final, \(run)/best"
            )
        }
        say("report: \(run)/report.html")
    }
}

/// "1h02m", "3m05s", "42s".
func duration(_ seconds: Double) -> String {
    guard seconds.isFinite else { return "?" }
    let s = Int(seconds.rounded())
    if s >= 3600 { return String(format: "%dh%02dm", s / 3600, s % 3600 / 60) }
    if s >= 60 { return String(format: "%dm%02ds", s / 60, s % 60) }
    return "\(s)s"
}

/// Ctrl-C (SIGINT): the first asks the trainer to save and stop; a second exits at once.
final class Interrupt: @unchecked Sendable {
    private let lock = NSLock()
    private var flag = false
    private let source: DispatchSourceSignal

    init() {
        signal(SIGINT, SIG_IGN)
        source = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
        source.setEventHandler { [unowned self] in
            lock.lock()
            defer { lock.unlock() }
            if flag { Foundation.exit(130) }
            flag = true
            FileHandle.standardError.write(
                Data("\nstopping after this step (saving latest/); Ctrl-C again to quit now\n".utf8))
        }
        source.resume()
    }

    var requested: Bool {
        lock.lock()
        defer { lock.unlock() }
        return flag
    }
}

/// Prints a line and flushes it at once, so progress reaches a log file as it happens.
func say(_ text: String, terminator: String = "\n") {
    print(text, terminator: terminator)
    fflush(nil)
}
