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
extension NormPlacement: ExpressibleByArgument {}

/// Architecture flags (each overrides the preset or config file).
struct ArchitectureOptions: ParsableArguments {
    @Option(help: "A preset: tiny, 20m, 50m, 100m (default tiny).") var preset: ModelPreset?
    @Option(help: "A model config.json; fields it leaves out come from --preset (default tiny).")
    var modelConfig: String?
    @Option(help: "Transformer blocks.") var layers: Int?
    @Option(help: "Embedding width.") var width: Int?
    @Option(help: "Attention heads.") var heads: Int?
    @Option(help: "Key/value heads (grouped-query attention; 1 = multi-query).") var kvHeads: Int?
    @Option(help: "Channels per attention head (default width ÷ heads; any size with its own projection).")
    var headSize: Int?
    @Option(help: "MLP hidden width.") var mlpWidth: Int?
    @Option(help: "Context length (tokens).") var context: Int?
    @Option(help: "layernorm or rmsnorm.") var norm: NormKind?
    @Option(help: "learned, sinusoidal or rotary.") var positions: PositionEncoding?
    @Option(help: "gelu, relu, silu or swiglu.") var activation: MLPActivation?
    @Option(help: "Dropout probability.") var dropout: Float?
    @Option(help: "pre (normalise each block's input, GPT-2) or post (normalise after the residual add).")
    var normPlacement: NormPlacement?
    @Flag(inversion: .prefixedNo, help: "Attention and MLP side by side from one norm (GPT-J, PaLM).")
    var parallelBlock: Bool?
    @Flag(inversion: .prefixedNo, help: "Share the token embedding with the output head.") var tieEmbeddings: Bool?
    @Flag(inversion: .prefixedNo, help: "Biases in linear layers and LayerNorm.") var bias: Bool?

    /// The architecture options given on the command line.
    var given: [String] {
        let options: [(String, Bool)] = [
            ("--preset", preset != nil), ("--model-config", modelConfig != nil), ("--layers", layers != nil),
            ("--width", width != nil), ("--heads", heads != nil), ("--kv-heads", kvHeads != nil),
            ("--head-size", headSize != nil), ("--mlp-width", mlpWidth != nil), ("--context", context != nil),
            ("--norm", norm != nil),
            ("--positions", positions != nil), ("--activation", activation != nil), ("--dropout", dropout != nil),
            ("--norm-placement", normPlacement != nil), ("--[no-]parallel-block", parallelBlock != nil),
            ("--[no-]tie-embeddings", tieEmbeddings != nil), ("--[no-]bias", bias != nil),
        ]
        return options.filter(\.1).map(\.0)
    }

    func validate() throws {
        let limits = ModelConfig.limits
        if let layers { try checkRange("--layers", layers, 1...limits.layers) }
        if let width { try checkRange("--width", width, 1...limits.width) }
        if let heads { try checkRange("--heads", heads, 1...limits.width) }
        if let kvHeads { try checkRange("--kv-heads", kvHeads, 1...limits.width) }
        if let headSize { try checkRange("--head-size", headSize, 1...limits.width) }
        if let mlpWidth { try checkRange("--mlp-width", mlpWidth, 1...limits.mlpWidth) }
        if let context { try checkRange("--context", context, 1...limits.context) }
        if let dropout, !(dropout >= 0 && dropout < 1) {
            throw ValidationError("--dropout must be in [0, 1) (got \(dropout)).")
        }
    }

    /// The architecture for a vocabulary of `vocabularySize`.
    func config(vocabularySize: Int) throws -> ModelConfig {
        var config = (preset ?? .tiny).config()
        if let modelConfig {
            // A partial file: the fields it gives, over the preset's (tiny by default).
            let data = try UserFile.read(modelConfig, "--model-config", limit: 1 << 20)
            config = try ModelCheckpoint.parseConfig(data, path: modelConfig, over: config)
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
        if let headSize { config.explicitHeadSize = headSize }
        if let mlpWidth { config.mlpWidth = mlpWidth }
        if let context { config.contextLength = context }
        if let norm { config.norm = norm }
        if let positions { config.positions = positions }
        if let activation { config.activation = activation }
        if let dropout { config.dropout = dropout }
        if let normPlacement { config.normPlacement = normPlacement }
        if let parallelBlock { config.parallelBlock = parallelBlock }
        if let tieEmbeddings { config.tiedEmbeddings = tieEmbeddings }
        if let bias { config.bias = bias }
        try config.validate()
        return config
    }
}

/// The library's defaults, which the help texts quote (each default lives in TrainingConfig alone).
private let trainingDefaults = TrainingConfig()

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

    @Option(help: "Sequences per micro-batch (default \(trainingDefaults.batchSize)).") var batchSize: Int?
    @Option(
        help:
            "Tokens per training sequence (default: the model's context; at most the model's context, which --context sets)."
    ) var sequenceLength: Int?
    @Option(help: "Micro-batches per update (gradient accumulation) (default \(trainingDefaults.accumulationSteps)).")
    var accumulation: Int?
    @Option(
        help:
            "Updates (default \(trainingDefaults.maxSteps); with --resume, a new total: the schedule then ends there).")
    var steps: Int?
    @Option(
        help:
            "Wall-clock budget in minutes (training stops at whichever budget ends first; with --resume, a new total)."
    ) var minutes: Double?
    @Option(help: "Peak learning rate (default \(trainingDefaults.schedule.peak)).") var lr: Float?
    @Option(help: "Warmup updates (default \(trainingDefaults.schedule.warmupSteps)).") var warmup: Int?
    @Option(help: "Schedule: cosine, constant, linear, wsd (default \(trainingDefaults.schedule.kind.rawValue)).")
    var schedule: ScheduleKind?
    @Option(
        help: "Learning-rate floor as a fraction of the peak (default \(trainingDefaults.schedule.minimumFraction)).")
    var minLrFraction: Float?
    @Option(help: "WSD: share of training spent decaying (default \(trainingDefaults.schedule.decayFraction)).")
    var decayFraction: Float?
    @Option(help: "AdamW weight decay (matrices only) (default \(trainingDefaults.optimizer.weightDecay)).")
    var weightDecay: Float?
    @Option(help: "AdamW β1 (default \(trainingDefaults.optimizer.beta1)).") var beta1: Float?
    @Option(help: "AdamW β2 (default \(trainingDefaults.optimizer.beta2)).") var beta2: Float?
    @Option(help: "Gradient-norm clip (0 = off) (default \(trainingDefaults.clipNorm)).") var clip: Float?
    @Option(help: "Seed for initialisation, data order and dropout (default \(trainingDefaults.seed)).") var seed:
        UInt64?
    @Option(help: "Evaluate (and sample) every N updates (default \(trainingDefaults.evalEvery)).") var evalEvery: Int?
    @Option(
        help:
            "Validation batches per evaluation (default: 5% of the training tokens between evaluations, 2 to 20 batches)."
    )
    var evalBatches: Int?
    @Option(help: "A prompt to sample at each evaluation (repeatable).") var prompt: [String] = []
    @Option(help: "Tokens per sample (default \(trainingDefaults.sampleTokens)).") var sampleTokens: Int?
    @Option(help: "Save latest/ every N updates (default \(trainingDefaults.checkpointEvery)).") var checkpointEvery:
        Int?
    @Option(help: "…and every N minutes (default \(trainingDefaults.checkpointMinutes ?? 0)).") var checkpointMinutes:
        Double?
    @Option(help: "Also keep a step-numbered copy of the weights, checkpoints/step-N/, every N updates.")
    var keepEvery: Int?
    @Option(
        help:
            "A NaN/infinite loss or gradient: stop, or skip the update (default \(trainingDefaults.onNonFinite.rawValue))."
    ) var onNan: NonFinitePolicy?
    @OptionGroup var threading: ThreadOptions
    @Option(
        help:
            "Train with N processes on this host (data-parallel): starts Open MPI's `mpirun -n N` for you. The global batch is N × --batch-size × --accumulation."
    ) var processes: Int?
    @Option(
        help:
            "Seconds a rank waits for the others (all-reduce, start-up) before the job is stopped (default \(Launcher.defaultTimeout))."
    )
    var collectiveTimeout: Double?

    func trainingConfig() -> TrainingConfig {
        var config = TrainingConfig()
        config.sequenceLength = sequenceLength
        // A time budget alone sets no step limit: the run, its schedule and its progress line speak in time.
        config.maxSteps = steps ?? (minutes != nil ? TrainingConfig.unlimitedSteps : 1000)
        config.maxSeconds = minutes.map { $0 * 60 }
        if let batchSize { config.batchSize = batchSize }
        if let accumulation { config.accumulationSteps = accumulation }
        if let schedule { config.schedule.kind = schedule }
        if let lr { config.schedule.peak = lr }
        if let warmup { config.schedule.warmupSteps = warmup }
        if let minLrFraction { config.schedule.minimumFraction = minLrFraction }
        if let decayFraction { config.schedule.decayFraction = decayFraction }
        if let weightDecay { config.optimizer.weightDecay = weightDecay }
        if let beta1 { config.optimizer.beta1 = beta1 }
        if let beta2 { config.optimizer.beta2 = beta2 }
        if let clip { config.clipNorm = clip }
        if let seed { config.seed = seed }
        if let evalEvery { config.evalEvery = evalEvery }
        if let evalBatches { config.evalBatches = evalBatches }
        if !prompt.isEmpty { config.samplePrompts = prompt.map(unescaped) }
        if let sampleTokens { config.sampleTokens = sampleTokens }
        if let checkpointEvery { config.checkpointEvery = checkpointEvery }
        if let checkpointMinutes { config.checkpointMinutes = checkpointMinutes }
        config.keepEvery = keepEvery
        if let onNan { config.onNonFinite = onNan }
        return config
    }

    /// The options a resumed run would ignore (it keeps its saved settings): refused rather than dropped.
    var ignoredOnResume: [String] {
        let given: [(String, Bool)] = [
            ("--init-from", initFrom != nil), ("--run", runDirectory != nil), ("--batch-size", batchSize != nil),
            ("--sequence-length", sequenceLength != nil),
            ("--accumulation", accumulation != nil), ("--lr", lr != nil), ("--warmup", warmup != nil),
            ("--schedule", schedule != nil), ("--min-lr-fraction", minLrFraction != nil),
            ("--decay-fraction", decayFraction != nil), ("--weight-decay", weightDecay != nil),
            ("--beta1", beta1 != nil), ("--beta2", beta2 != nil), ("--clip", clip != nil), ("--seed", seed != nil),
            ("--eval-every", evalEvery != nil), ("--eval-batches", evalBatches != nil), ("--prompt", !prompt.isEmpty),
            ("--sample-tokens", sampleTokens != nil), ("--checkpoint-every", checkpointEvery != nil),
            ("--checkpoint-minutes", checkpointMinutes != nil), ("--on-nan", onNan != nil),
            ("--keep-every", keepEvery != nil),
        ]
        return given.filter(\.1).map(\.0) + architecture.given
    }

    func validate() throws {
        if let steps { try checkRange("--steps", steps, 1...1_000_000_000_000) }
        if let minutes { try checkFinite("--minutes", minutes, 0.001...10_000_000) }
        if let batchSize { try checkRange("--batch-size", batchSize, 1...65_536) }
        if let accumulation { try checkRange("--accumulation", accumulation, 1...65_536) }
        if let warmup { try checkRange("--warmup", warmup, 0...1_000_000_000_000) }
        if let evalEvery { try checkRange("--eval-every", evalEvery, 1...1_000_000_000_000) }
        if let evalBatches { try checkRange("--eval-batches", evalBatches, 1...1_000_000) }
        if let sampleTokens { try checkRange("--sample-tokens", sampleTokens, 0...100_000) }
        if let checkpointEvery { try checkRange("--checkpoint-every", checkpointEvery, 1...1_000_000_000_000) }
        if let checkpointMinutes { try checkFinite("--checkpoint-minutes", checkpointMinutes, 0.001...10_000_000) }
        if let keepEvery { try checkRange("--keep-every", keepEvery, 1...1_000_000_000_000) }
        if let processes { try checkRange("--processes", processes, 1...4096) }
        if let sequenceLength { try checkRange("--sequence-length", sequenceLength, 1...ModelConfig.limits.context) }
        if let collectiveTimeout { try checkFinite("--collective-timeout", collectiveTimeout, 1...86_400) }
        for (option, value) in [
            ("--lr", lr), ("--min-lr-fraction", minLrFraction), ("--decay-fraction", decayFraction),
            ("--weight-decay", weightDecay), ("--beta1", beta1), ("--beta2", beta2), ("--clip", clip),
        ] {
            if let value, !value.isFinite { throw ValidationError("\(option) must be a finite number (got \(value)).") }
        }
        try architecture.validate()
        if initFrom != nil && !architecture.given.isEmpty {
            let given = architecture.given
            throw ValidationError(
                "--init-from starts from that run's model as it is, so \(given.joined(separator: ", ")) would be ignored. Drop \(given.count == 1 ? "it" : "them")\(given.contains("--context") ? "; to train on shorter sequences, give --sequence-length" : "")."
            )
        }
        if resume != nil {
            let ignored = ignoredOnResume
            guard ignored.isEmpty else {
                throw ValidationError(
                    "--resume continues a run with the settings it saved, so \(ignored.joined(separator: ", ")) would be ignored. Drop \(ignored.count == 1 ? "it" : "them") (only --steps, --minutes, --data, --threads, --processes and --collective-timeout may change), or start a new run from it with --init-from."
                )
            }
        }
    }

    func run() throws {
        do {
            if let processes, processes > 1 { try Self.startRanks(processes) }
            let communicator = try Launcher.detect().communicator(timeout: collectiveTimeout ?? Launcher.defaultTimeout)
            Job.communicator = communicator
            let leader = communicator.isLeader
            let backend = CPUBackend(threadCount: threading.count)
            let start: RunStart
            if let resume {
                start = .resume(URL(fileURLWithPath: resume))
            } else if let initFrom {
                start = .fineTune(from: initFrom)
            } else {
                // The vocabulary is the data's; the plan sets it.
                start = .scratch(try architecture.config(vocabularySize: 1))
            }
            let plan = RunPlan(
                start: start, data: data.map { URL(fileURLWithPath: $0) },
                run: URL(fileURLWithPath: runDirectory ?? "runs/\(Self.timestamp())"), config: trainingConfig(),
                steps: steps, minutes: minutes)
            let (trainer, notes) = try plan.trainer(backend: backend, communicator: communicator)
            if leader { notes.forEach { say($0) } }
            if leader {
                try Self.train(trainer, threads: threading.count)
            } else {
                let interrupt = trainingStopRequest(quiet: true)
                trainer.shouldStop = { interrupt.requested }
                _ = try trainer.train()
            }
            communicator.finish()
        } catch { exitWithError(error) }
    }

    /// `--processes N`: runs `mpirun -n N` with the same command without `--processes` (each rank then finds
    /// mpirun's variables and joins the job), passes Ctrl-C on as a clean stop, and exits with mpirun's status.
    static func startRanks(_ processes: Int) throws {
        guard Launcher.detect() == .none else {
            throw ValidationError(
                "--processes starts mpirun itself, but this process already runs under an MPI launcher: drop --processes and give the number of ranks to mpirun (-n)."
            )
        }
        let mpirun = try MPIRun.find()
        var arguments = Array(CommandLine.arguments.dropFirst())
        if let index = arguments.firstIndex(of: "--processes"), index + 1 < arguments.count {
            arguments.removeSubrange(index...(index + 1))
        }
        arguments.removeAll { $0.hasPrefix("--processes=") }
        let program =
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            ?? CommandLine.arguments[0]
        let all =
            [mpirun]
            + MPIRun.arguments(
                processes: processes, program: program, arguments: arguments, asRoot: geteuid() == 0)
        say("starting \(processes) processes: \(all.joined(separator: " "))")
        Foundation.exit(try MPIRun.run(mpirun, arguments: Array(all.dropFirst())))
    }

    static func timestamp() -> String {
        let formatter = DateFormatter()
        formatter.dateFormat = "yyyyMMdd-HHmmss"
        return formatter.string(from: Date())
    }

    /// Prints the plan, runs the trainer with a live progress line, and prints the outcome; everything printed
    /// is also appended to RUN/console.log.
    static func train(_ trainer: Trainer, threads: Int) throws {
        ConsoleLog.open(trainer.run.appendingPathComponent("console.log"))
        defer { ConsoleLog.close() }
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
        let timeOnly = config.maxSteps >= TrainingConfig.unlimitedSteps
        let ranks = trainer.communicator.size
        let shape =
            "\(trainer.tokensPerUpdate) tokens (\(ranks > 1 ? "\(ranks) processes × " : "")batch \(config.batchSize) × \(trainer.tokensPerUpdate / ranks / config.batchSize / config.accumulationSteps) × \(config.accumulationSteps) accumulation)"
        if ranks > 1 {
            say(
                "processes: \(ranks) ranks over \(trainer.communicator.name), \(threads) thread\(threads == 1 ? "" : "s") each; gradients all-reduced once per update; evaluation shared; rank 0 logs and saves"
            )
        }
        if timeOnly, let budget = config.maxSeconds {
            say(
                "plan: updates of \(shape) for \(duration(budget - trainer.state.elapsedSeconds)) (the schedule follows time; the speed below says how many updates that is)"
            )
        } else {
            say(
                "plan: \(steps) updates of \(shape)\(config.maxSeconds.map { String(format: ", at most %.1f min", $0 / 60) } ?? ""); \(String(format: "%.1f", Double(trainer.tokensPerUpdate) * Double(steps) / Double(max(train.tokens, 1)))) epochs"
            )
        }
        let evalTokens = trainer.evaluationTokens
        say(
            "evaluation: every \(config.evalEvery) updates, \(trainer.evaluationBatches) batches = \(evalTokens) validation tokens (\(String(format: "%.1f", 100 * Double(evalTokens) / Double(config.evalEvery * trainer.tokensPerUpdate)))% of the training tokens between evaluations; --eval-batches N to change)"
        )
        let interrupt = trainingStopRequest(quiet: false)
        trainer.shouldStop = { interrupt.requested }
        let line = ProgressLine()
        var printedEstimate = false
        trainer.observe = { event in
            switch event {
            case .step(let s):
                if !printedEstimate && s.step >= 5 && s.tokensPerSecond > 0 {
                    printedEstimate = true
                    line.finish()
                    let updates = s.remaining * s.tokensPerSecond / Double(trainer.tokensPerUpdate)
                    let predicted =
                        timeOnly
                        ? String(
                            format: "; about %.0f more updates, %.1f epochs, in the budget", updates,
                            updates * Double(trainer.tokensPerUpdate) / Double(max(train.tokens, 1))) : ""
                    say(
                        String(
                            format: "speed: %.0f tokens/s; estimated time %@%@", s.tokensPerSecond,
                            duration(s.remaining), predicted))
                }
                let where_ = timeOnly ? "step \(s.step)" : "step \(s.step)/\(s.totalSteps)"
                let status = String(
                    format: "%@  loss %.4f  lr %.2e  grad %.3f  %.0f tok/s  %@ elapsed  %@ %@", where_, s.loss,
                    s.learningRate, s.gradientNorm, s.tokensPerSecond, duration(s.elapsed),
                    timeOnly ? "left" : "ETA", duration(s.remaining))
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
        let started = Date()
        let outcome = try trainer.train()
        line.finish()
        if ranks > 1 && outcome.updates > 0 {
            let seconds = Date().timeIntervalSince(started)
            say(
                String(
                    format: "all-reduce: %.2f ms per update, %.1f%% of this session's %.1f s (rank 0)",
                    1000 * outcome.communicationSeconds / Double(outcome.updates),
                    100 * outcome.communicationSeconds / max(seconds, 1e-9), seconds))
        }
        let run = trainer.run.path
        if outcome.interrupted {
            say(
                "interrupted at step \(outcome.state.step): saved \(run)/latest; continue with `fledge train --resume \(run)`"
            )
        } else {
            let best = UserFile.kind("\(run)/best") == .folder ? ", \(run)/best" : ""
            say(
                "done: \(outcome.state.step) steps in \(duration(outcome.state.elapsedSeconds)); checkpoints in \(run)/final\(best)"
            )
        }
        say("report: \(run)/report.html")
    }
}

/// "1h02m", "3m05s", "42s".
func duration(_ seconds: Double) -> String {
    guard seconds.isFinite else { return "?" }
    guard seconds >= 0 else { return "0s" }
    guard seconds < 1e9 else { return "?" }  // no estimate yet
    let s = Int(seconds.rounded())
    if s >= 3600 { return String(format: "%dh%02dm", s / 3600, s % 3600 / 60) }
    if s >= 60 { return String(format: "%dm%02ds", s / 60, s % 60) }
    return "\(s)s"
}

/// Ctrl-C: the first asks the trainer to save latest/ and stop after this step; a second exits at once. SIGUSR1
/// (which mpirun forwards to every rank) asks for the same stop. `quiet`: a data-parallel rank other than 0 stops
/// as asked without saying so (rank 0 speaks).
func trainingStopRequest(quiet: Bool) -> StopRequest {
    StopRequest(
        signals: [SIGINT], requestOnly: [SIGUSR1],
        message: quiet ? nil : "\nstopping after this step (saving latest/); Ctrl-C again to quit now\n")
}

/// Prints a line and flushes it at once, so progress reaches a log file as it happens (and the run's
/// console.log while a run is training).
func say(_ text: String, terminator: String = "\n") {
    print(text, terminator: terminator)
    fflush(nil)
    ConsoleLog.write(text + terminator)
}

/// A run's console.log: what `fledge train` printed (not the live progress line), appended across resumes.
enum ConsoleLog {
    nonisolated(unsafe) private static var handle: FileHandle?

    static func open(_ url: URL) {
        if !FileManager.default.fileExists(atPath: url.path) {
            FileManager.default.createFile(atPath: url.path, contents: nil)
        }
        handle = try? FileHandle(forWritingTo: url)
        _ = try? handle?.seekToEnd()
        write("--- \(CommandLine.arguments.joined(separator: " ")) (\(ISO8601DateFormatter().string(from: Date())))\n")
    }

    static func write(_ text: String) { try? handle?.write(contentsOf: Data(text.utf8)) }

    static func close() {
        try? handle?.close()
        handle = nil
    }
}
