// RunCheckpoint: the checkpoints of a run directory — latest/, best/ and final/, each a complete folder
// (config.json, tokenizer.json, model.safetensors, optimizer.safetensors, trainer-state.json, training.json)
// written under a temporary name and swapped into place, so a crash or a full disk never leaves a mixed or
// half-written checkpoint where a good one stood (docs/checkpoint-format.md, docs/file-safety.md).

import FledgeData
import FledgeFiles
import FledgeModel
import FledgeTensor
import FledgeTokenizer
import Foundation

/// Which checkpoint of a run.
public enum CheckpointKind: String, Sendable, CaseIterable {
    case latest
    case best
    case final
}

/// Reading and writing checkpoints of a run directory.
public enum RunCheckpoint {
    public static func encoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return encoder
    }

    static func decoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return decoder
    }

    /// Writes a checkpoint of `kind` into `run`; `optimizer` nil leaves optimizer.safetensors out (best/).
    /// The folder is built as `.KIND.tmp-PID` with trainer-state.json written last (a folder that has it is
    /// complete) and swapped in by `FolderSwap`, so a loadable KIND/ stands at every instant.
    public static func save(
        _ kind: CheckpointKind, run: URL, model: GPT, optimizer: AdamW?, tokenizerJSON: Data, state: TrainerState,
        config: TrainingConfig, format: SequenceFormat? = nil, manifest: Data? = nil, name: String? = nil
    ) throws {
        let target = run.appendingPathComponent(name ?? kind.rawValue)
        let temporary = FolderSwap.temporary(for: target)
        let files = FileManager.default
        try? files.removeItem(at: temporary)
        do {
            try files.createDirectory(at: temporary, withIntermediateDirectories: true)
            try ModelCheckpoint.save(model, to: temporary)
            try tokenizerJSON.write(to: temporary.appendingPathComponent("tokenizer.json"))
            if let optimizer {
                try saveOptimizer(optimizer, to: temporary.appendingPathComponent("optimizer.safetensors"))
            }
            try encoder().encode(config).write(to: temporary.appendingPathComponent("training.json"))
            if let format {
                try encoder().encode(format).write(to: temporary.appendingPathComponent(formatFile))
            }
            // The data it was trained on: sources, mix, counts and shard hashes, so a checkpoint is a record.
            if let manifest { try manifest.write(to: temporary.appendingPathComponent(manifestFile)) }
            try encoder().encode(state).write(to: temporary.appendingPathComponent(stateFile))
            try FolderSwap.install(temporary, at: target)
        } catch {
            try? files.removeItem(at: temporary)
            let detail =
                (error as? ModelError)?.message ?? (error as? FileError)?.message ?? error.localizedDescription
            throw TrainingError(
                "saving the \(name ?? kind.rawValue) checkpoint of \(run.path) at step \(state.step) failed: \(detail)",
                hint:
                    "free disk space (or check permissions); the previous \(name ?? kind.rawValue)/ checkpoint is untouched."
            )
        }
    }

    /// The copy of the training data's manifest.json in each checkpoint.
    public static let manifestFile = "data-manifest.json"

    /// The file written last into a checkpoint folder: a folder holding it is complete.
    static let stateFile = "trainer-state.json"

    /// The step of the complete checkpoint folder `folder`, nil when it is incomplete or unreadable.
    public static func completeStep(_ folder: URL) -> Int? {
        guard let data = FileManager.default.contents(atPath: folder.appendingPathComponent(stateFile).path),
            let state = try? decoder().decode(TrainerState.self, from: data)
        else { return nil }
        return state.step
    }

    /// Locks the run folder `run` (created if needed) for this process, and mends what an earlier process
    /// killed mid-save left: a missing checkpoint comes back from the newest complete leftover, and every
    /// other `.KIND.tmp-*` / `.KIND.old-*` folder is deleted. A folder that is not empty and not a run is
    /// refused.
    @discardableResult
    public static func lockRun(_ run: URL) throws -> FolderLock {
        if UserFile.kind(run.path) == .folder, OwnedOutput.kind(of: run) == nil {
            let names = ((try? FileManager.default.contentsOfDirectory(atPath: run.path)) ?? []).filter {
                $0 != ".lock"
            }
            let runFiles: Set<String> = [
                "metrics.jsonl", "report.html", "latest", "best", "final", "checkpoints", "console.log", "tensorboard",
            ]
            guard names.allSatisfy({ runFiles.contains($0) || $0.hasPrefix(".") }) else {
                throw TrainingError(
                    "\(run.path) is a folder that Fledge did not make as a run (it holds \(names.sorted().prefix(3).joined(separator: ", ")))",
                    hint:
                        "name a new folder with --run; Fledge writes checkpoints, metrics.jsonl and report.html there.")
            }
        }
        let lock: FolderLock
        do { lock = try FolderLock.run(run) } catch let error as FileError {
            throw TrainingError(error.message, hint: error.hint)
        }
        for kind in CheckpointKind.allCases {
            if let restored = FolderSwap.recover(
                run.appendingPathComponent(kind.rawValue), rank: { completeStep($0).map(Double.init) })
            {
                FileHandle.standardError.write(
                    Data(
                        "note: restored \(run.path)/\(kind.rawValue) from \(restored.lastPathComponent), left by a process that was killed while saving\n"
                            .utf8))
            }
        }
        // Under the lock no other process writes here: any other temporary file (an atomic write of
        // report.html or a checkpoint's, killed before its rename) is stale.
        for folder in [run, run.appendingPathComponent("checkpoints")] {
            for name in (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
            where name.hasPrefix(".") && (name.contains(".tmp-") || name.contains(".old-")) {
                try? FileManager.default.removeItem(at: folder.appendingPathComponent(name))
            }
        }
        if OwnedOutput.kind(of: run) == nil {
            do { try OwnedOutput.mark(run, kind: "run") } catch let error as FileError {
                throw TrainingError(error.message, hint: error.hint)
            }
        }
        return lock
    }

    /// The latest/ checkpoint to resume `run` from (after `lockRun`), with a message that says why when
    /// there is none.
    public static func resumeFolder(_ run: URL) throws -> URL {
        let latest = run.appendingPathComponent(CheckpointKind.latest.rawValue)
        switch UserFile.kind(run.path) {
        case .missing:
            throw TrainingError("there is no run at \(run.path)", hint: "check the path given to --resume.")
        case .file, .other:
            throw TrainingError("--resume \(run.path) is a file, not a run folder", hint: "name the run's folder.")
        case .folder: break
        }
        guard UserFile.kind(latest.path) == .folder else {
            let started = FileManager.default.fileExists(atPath: run.appendingPathComponent("metrics.jsonl").path)
            throw TrainingError(
                started
                    ? "\(run.path) has no checkpoint to resume: the run stopped before its first save (latest/ is written every --checkpoint-every steps, on Ctrl-C and at the end)"
                    : "\(run.path) is not a training run (it has no latest/ checkpoint)",
                hint: started
                    ? "start it again: `fledge train --data ... --run \(run.path)` (its metrics are replaced)."
                    : "pass the folder given to `fledge train --run`.")
        }
        guard completeStep(latest) != nil else {
            throw TrainingError(
                "\(latest.path) is incomplete or damaged (its \(stateFile) is missing or unreadable)",
                hint: "resume from a copy of the run, or start again with --init-from \(run.path)/best.")
        }
        return latest
    }

    /// AdamW moments as two flat F32 tensors, with the step count in the metadata.
    static func saveOptimizer(_ optimizer: AdamW, to url: URL) throws {
        try optimizer.firstMoment.withHostReadAccess { m in
            try optimizer.secondMoment.withHostReadAccess { v in
                try SafetensorsWriter.write(
                    [
                        SafetensorsWriter.Tensor(name: "exp_avg", shape: [m.count], bytes: UnsafeRawBufferPointer(m)),
                        SafetensorsWriter.Tensor(
                            name: "exp_avg_sq", shape: [v.count], bytes: UnsafeRawBufferPointer(v)),
                    ], metadata: ["step": String(optimizer.step)], to: url)
            }
        }
    }

    /// Restores AdamW moments and step from `url`.
    static func loadOptimizer(_ optimizer: AdamW, from url: URL) throws {
        let file = try SafetensorsFile(url: url)
        let count = optimizer.firstMoment.count
        try optimizer.firstMoment.withHostAccess {
            try file.copyFloats("exp_avg", expectedShape: [count], into: $0)
        }
        try optimizer.secondMoment.withHostAccess {
            try file.copyFloats("exp_avg_sq", expectedShape: [count], into: $0)
        }
        guard let step = file.metadata["step"].flatMap(Int.init) else {
            throw TrainingError("\(url.path) lacks the optimizer step", hint: "resume from a checkpoint Fledge wrote.")
        }
        optimizer.step = step
    }

    /// The checkpoint folder to load for `path`: the folder itself when it holds config.json, else its final/,
    /// latest/ or best/ (in that order).
    public static func folder(_ path: String, prefer: [CheckpointKind] = [.final, .latest, .best]) throws -> URL {
        let url = URL(fileURLWithPath: path)
        let files = FileManager.default
        switch UserFile.kind(path) {
        case .missing:
            throw TrainingError("there is no run or checkpoint at \(path)", hint: "check the path.")
        case .file, .other:
            throw TrainingError(
                "\(path) is a file, not a run or checkpoint folder",
                hint: "pass the run's folder (or its latest/, best/ or final/).")
        case .folder: break
        }
        if files.fileExists(atPath: url.appendingPathComponent("config.json").path) { return url }
        for kind in prefer
        where files.fileExists(atPath: url.appendingPathComponent("\(kind.rawValue)/config.json").path) {
            return url.appendingPathComponent(kind.rawValue)
        }
        throw TrainingError(
            "\(path) is not a run or checkpoint (no config.json, \(prefer.map { "\($0.rawValue)/" }.joined(separator: ", ")))",
            hint: "pass a run directory written by `fledge train`, or one of its checkpoint folders.")
    }

    /// A run or checkpoint folder's model and tokenizer (for generation, evaluation, fine-tuning).
    public static func loadForInference(_ path: String, backend: any Backend) throws -> (
        folder: URL, model: GPT, tokenizer: any Tokenizer
    ) {
        let folder = try folder(path)
        let model = try ModelCheckpoint.load(from: folder, backend: backend)
        let tokenizer = try TokenizerJSON.loadAny(folder.appendingPathComponent("tokenizer.json"))
        guard tokenizer.vocabularySize <= model.config.vocabularySize else {
            throw TrainingError(
                "\(folder.path)/tokenizer.json has \(tokenizer.vocabularySize) tokens but the model only \(model.config.vocabularySize)",
                hint: "the tokenizer does not belong to this model: copy the one the model was trained with.")
        }
        return (folder, model, tokenizer)
    }

    /// The file holding the data's sequence format (EOS/BOS and the question/answer template a chat uses).
    public static let formatFile = "sequence-format.json"

    /// The sequence format saved with a checkpoint; nil when it has none (checkpoints from before it was saved).
    public static func loadFormat(_ folder: URL) throws -> SequenceFormat? {
        let url = folder.appendingPathComponent(formatFile)
        guard let data = FileManager.default.contents(atPath: url.path) else { return nil }
        do {
            return try decoder().decode(SequenceFormat.self, from: data)
        } catch {
            throw TrainingError(
                "\(url.path) is not a valid sequence format: \(error)",
                hint:
                    "restore it from the data folder's manifest.json (config.sequence), or delete it to use the defaults."
            )
        }
    }

    /// Reads trainer-state.json and training.json of a checkpoint folder.
    public static func loadState(_ folder: URL) throws -> (TrainerState, TrainingConfig) {
        func read<T: Decodable>(_ name: String, _ type: T.Type) throws -> T {
            let url = folder.appendingPathComponent(name)
            guard let data = FileManager.default.contents(atPath: url.path) else {
                throw TrainingError(
                    "\(url.path) is missing", hint: "resume from latest/ of a run written by `fledge train`.")
            }
            do { return try decoder().decode(type, from: data) } catch {
                throw TrainingError("\(url.path) is not valid: \(error)", hint: "resume from an intact checkpoint.")
            }
        }
        return (try read("trainer-state.json", TrainerState.self), try read("training.json", TrainingConfig.self))
    }

    /// The model, optimizer and state of a checkpoint folder, to resume.
    public static func load(_ folder: URL, backend: any Backend) throws -> (GPT, AdamW, TrainerState, TrainingConfig) {
        let model = try ModelCheckpoint.load(from: folder, backend: backend)
        let (state, config) = try loadState(folder)
        let optimizer = try AdamW(model: model, config: config.optimizer)
        try loadOptimizer(optimizer, from: folder.appendingPathComponent("optimizer.safetensors"))
        return (model, optimizer, state, config)
    }
}
