// RunStart: how a training run begins — a new model, another run's weights (fine-tuning), or an existing run
// continued exactly — as one typed value, and RunPlan, which turns it with the data, the run folder and the
// settings into a ready Trainer. The command line only parses options into these.

import FledgeData
import FledgeDistributed
import FledgeFiles
import FledgeModel
import FledgeTensor
import FledgeTokenizer
import Foundation

/// How a training run begins.
public enum RunStart: Sendable {
    /// A new model of this architecture (its vocabulary becomes the data's), initialised from the run's seed.
    case scratch(ModelConfig)
    /// The weights of a run or checkpoint folder, as they are; the data must use its tokenizer.
    case fineTune(from: String)
    /// The run in this folder, continued exactly where its latest/ checkpoint stopped, with its saved settings.
    case resume(URL)
}

/// Everything a run needs to start.
public struct RunPlan {
    public var start: RunStart
    /// The prepared data (a resumed run records its own; given, it must be the same data).
    public var data: URL?
    /// The run folder of a new run (a resumed run is its own folder).
    public var run: URL?
    /// A new run's settings. A resumed run keeps its saved ones, but for `steps` and `minutes`.
    public var config: TrainingConfig
    /// A resumed run's new step total and time budget (minutes).
    public var steps: Int?
    public var minutes: Double?

    public init(
        start: RunStart, data: URL?, run: URL?, config: TrainingConfig, steps: Int? = nil, minutes: Double? = nil
    ) {
        self.start = start
        self.data = data
        self.run = run
        self.config = config
        self.steps = steps
        self.minutes = minutes
    }

    /// The trainer for this plan on `backend`, one of `communicator`'s ranks, and what to tell the user
    /// (resuming, a batch re-split for another number of processes).
    public func trainer(backend: any Backend, communicator: Communicator = SingleProcess()) throws -> (
        trainer: Trainer, notes: [String]
    ) {
        let leader = communicator.isLeader
        guard case .resume(let folder) = start else {
            guard let data else {
                throw TrainingError(
                    "no prepared data to train on", hint: "give --data (a prepared folder), or --resume RUN.")
            }
            guard let run else { throw TrainingError("no run folder", hint: "give --run FOLDER.") }
            let dataset = try PreparedDataset(data)
            let model: GPT
            switch start {
            case .fineTune(let from):
                let (folder, loaded, theirs) = try RunCheckpoint.loadForInference(from, backend: backend)
                model = loaded
                try dataset.check(tokenizer: theirs, name: folder.appendingPathComponent("tokenizer.json").path)
            case .scratch(var architecture):
                // The manifest's count: the Trainer loads and checks the tokenizer itself.
                architecture.vocabularySize = dataset.manifest.tokenizer.vocabularySize
                try architecture.validate()
                model = try GPT(config: architecture, backend: backend, seed: config.seed)
            case .resume: fatalError("handled above")
            }
            var config = self.config
            config.processes = communicator.size > 1 ? communicator.size : nil
            let optimizer = try AdamW(model: model, config: config.optimizer)
            let lock = leader ? try RunCheckpoint.lockRun(run) : nil
            defer { withExtendedLifetime(lock) {} }
            if leader && FileManager.default.fileExists(atPath: run.appendingPathComponent("latest").path) {
                throw TrainingError(
                    "\(run.path) already holds a run",
                    hint: "continue it with --resume \(run.path), or choose another --run.")
            }
            let trainer = try Trainer(
                model: model, optimizer: optimizer, config: config, dataset: dataset, run: run,
                communicator: communicator)
            return (trainer, [])
        }
        let lock = UserFile.kind(folder.path) == .folder && leader ? try RunCheckpoint.lockRun(folder) : nil
        defer { withExtendedLifetime(lock) {} }
        // Rank 0's lock recovers a checkpoint swap a kill interrupted; the other ranks read latest/ after it.
        try communicator.barrier(what: "start-up")
        let (model, optimizer, state, saved) = try RunCheckpoint.load(
            try RunCheckpoint.resumeFolder(folder), backend: backend)
        var config = saved
        if let steps {
            guard steps > state.step else {
                throw TrainingError(
                    "--steps \(steps) is not beyond the run's step \(state.step)",
                    hint: "give a new total above \(state.step), or leave --steps out to keep \(saved.maxSteps).")
            }
            config.maxSteps = steps
        }
        if let minutes { config.maxSeconds = minutes * 60 }
        config = try config.splitting(over: communicator.size)
        guard let dataFolder = data?.path ?? state.dataFolder else {
            throw TrainingError(
                "\(folder.path) does not record its data folder", hint: "pass the prepared data with --data.")
        }
        let dataset = try PreparedDataset(URL(fileURLWithPath: dataFolder))
        if let recorded = state.dataFolder, data != nil { try Self.checkSameData(dataset, recorded: recorded) }
        try dataset.check(
            tokenizer: try TokenizerJSON.loadAny(folder.appendingPathComponent("latest/tokenizer.json")),
            name: folder.appendingPathComponent("latest/tokenizer.json").path)
        let trainer = try Trainer(
            model: model, optimizer: optimizer, config: config, dataset: dataset, run: folder, state: state,
            communicator: communicator)
        var notes: [String] = []
        if config.ranks != saved.ranks {
            notes.append(
                "the run trained with \(saved.ranks) process\(saved.ranks == 1 ? "" : "es") × batch \(saved.batchSize); it continues with \(config.ranks) × \(config.batchSize), the same global batch and data order"
            )
        }
        notes.append(
            config.maxSteps >= TrainingConfig.unlimitedSteps
                ? String(
                    format: "resuming %@ at step %d (%.1f of %.1f minutes)", folder.path, state.step,
                    state.elapsedSeconds / 60, (config.maxSeconds ?? 0) / 60)
                : "resuming \(folder.path) at step \(state.step) of \(config.maxSteps)")
        return (trainer, notes)
    }

    /// A resumed run's `--data` may be the same prepared data moved elsewhere, never other data: the shards'
    /// SHA-256s must be those of the folder the run trained on (when it still exists).
    static func checkSameData(_ dataset: PreparedDataset, recorded: String) throws {
        guard PathCheck.canonical(dataset.folder.path) != PathCheck.canonical(recorded) else { return }
        let theirs = (try? PreparedDataset(URL(fileURLWithPath: recorded)).manifest)?.contentHashes
        guard theirs == nil || theirs == dataset.manifest.contentHashes else {
            throw TrainingError(
                "--data \(dataset.folder.path) is not the data this run trained on (\(recorded)): its shards differ",
                hint:
                    "resuming on other data would silently change the run; drop --data, or fine-tune on the new data with --init-from."
            )
        }
    }
}
