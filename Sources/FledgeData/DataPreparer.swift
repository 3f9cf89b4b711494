// DataPreparer: the pipeline of `fledge data prepare` — read sources, clean, filter by length and language,
// remove exact then near duplicates, tokenise, split, mix, write shards and the manifest. Documents stream
// through in batches (read → clean+filter → exact dedup → near dedup → tokenise), so memory does not grow with
// the corpus beyond a small record per document and the dedup indexes: the text is dropped once tokenised, and
// the tokens and MinHash signatures go to work files on disk. Split and mix then decide from the records, and
// the shards are written from the work files. The per-document stages run on all threads; the output folder
// is built under a temporary name and moved into place only when complete.

import FledgeFiles
import FledgeTokenizer
import Foundation

/// Every setting of a preparation run (recorded in the manifest).
public struct PreparationConfig: Codable, Sendable {
    public var sources: [SourceSpec] = []
    public var input = InputConfig()
    public var cleaning = CleaningConfig()
    /// Documents shorter than this many characters (Unicode scalars, after cleaning) are dropped.
    public var minCharacters = 1
    /// Documents longer than this are dropped (nil: no limit).
    public var maxCharacters: Int?
    public var englishOnly = false
    public var removeExactDuplicates = true
    public var removeNearDuplicates = true
    public var nearDuplicates = NearDuplicateConfig()
    public var split = SplitConfig()
    public var mix = MixMode.downsample
    public var sequence = SequenceFormat()
    /// Most tokens in one shard file.
    public var shardTokens = 100_000_000
    /// `--mix upsample`: the most times a source may be repeated (nil: `defaultMaximumUpsample`).
    public var maximumUpsample: Int?
    /// The limit `maximumUpsample` nil stands for.
    public static let defaultMaximumUpsample = 10

    public init() {}
}

/// Progress of a running preparation: the stage ("read", then "write"), how far it is (in `unit`s: input
/// bytes while reading, tokens while writing) and the documents read so far.
public struct PreparationProgress: Sendable {
    public var stage: String
    public var done: Int
    public var total: Int
    public var unit: String
    public var documents: Int
}

/// Why a document is not in the output (documents.jsonl "status").
enum DocumentStatus: String {
    case kept, invalidEncoding = "invalid_utf8", empty, tooShort = "too_short", tooLong = "too_long"
    case notEnglish = "not_english", duplicate, nearDuplicate = "near_duplicate", mixedOut = "mixed_out"

    /// The stage that removed a document of this status (`Stage`'s order); kept documents pass every stage.
    var removedAt: Int {
        switch self {
        case .invalidEncoding, .empty, .tooShort, .tooLong, .notEnglish: return 1
        case .duplicate: return 2
        case .nearDuplicate: return 3
        case .mixedOut: return 5
        case .kept: return .max
        }
    }
}

/// What a preparation keeps of each document once its text has gone on: where it came from, what became of
/// it, and where its tokens lie in the work files (about 80 bytes).
struct DocumentRecord {
    var source: Int32
    var file: Int32
    var ordinal: Int
    var status = DocumentStatus.kept
    /// Unicode scalars of the cleaned text (question and answer joined by a newline).
    var characters = 0
    /// UTF-8 bytes of the cleaned text.
    var textBytes = 0
    var hash = DocumentRecord.noHash
    /// The kept document this one duplicates (-1: none).
    var duplicateOf: Int32 = -1
    var tokens = 0
    /// Where its tokens (and its loss mask; -1 without) start in the work files, in elements.
    var tokenOffset = 0
    var maskOffset = -1

    static let noHash = ContentHash([])
}

/// Runs the pipeline.
public final class DataPreparer {
    public let config: PreparationConfig
    public let tokenizer: any Tokenizer
    public let threads: Int
    /// Called on the calling thread between pieces of work.
    public var progress: (PreparationProgress) -> Void = { _ in }
    /// Asked on the calling thread between pieces of work; true stops the run (it throws
    /// `PreparationInterrupted` after deleting its temporary folder, keeping the work folder only with a
    /// checkpoint). A signal handler sets it instead of deleting folders that this thread may still write to.
    public var shouldStop: () -> Bool = { false }
    /// Text bytes of one batch of documents (the unit that flows through clean, dedup and tokenise), and bytes
    /// read from a text file at a time. Neither changes the result, only memory and speed.
    public var batchBytes = 8 << 20
    public var readBlockBytes = 4 << 20
    /// The least time between checkpoints of the streaming pass (one is always made after its last file).
    public var checkpointSeconds = DataPreparer.defaultCheckpointSeconds
    public static let defaultCheckpointSeconds = 30.0
    /// Input files (and their bytes) that the last run took from an interrupted run's work instead of reading.
    public private(set) var reused = (files: 0, bytes: 0)

    /// After a failure or an interruption: keeps the work folder `work` only when it holds a checkpoint to
    /// continue from, and deletes it otherwise. True when it is kept.
    @discardableResult
    public static func keepWorkIfCheckpointed(_ work: URL) -> Bool {
        if FileManager.default.fileExists(atPath: work.appendingPathComponent(PreparationCheckpoint.fileName).path) {
            return true
        }
        try? FileManager.default.removeItem(at: work)
        return false
    }

    /// The folder beside `output` where the streaming pass keeps its work files and checkpoints: `.NAME.partial`.
    /// An interrupted or failed run leaves it, and the next run with the same settings continues from it.
    public static func workFolder(for output: URL) -> URL {
        output.deletingLastPathComponent().appendingPathComponent(".\(output.lastPathComponent).partial")
    }

    public init(config: PreparationConfig, tokenizer: any Tokenizer, threads: Int) {
        self.config = config
        self.tokenizer = tokenizer
        self.threads = max(1, threads)
    }

    /// Prepares the dataset into `output` (which must not exist unless `overwrite`); returns the manifest.
    /// The output may not be, or hold, a source or any of `protecting` (more inputs: path and option); it is
    /// locked for this process, and replaced only when it is Fledge's prepared data.
    public func run(output: URL, overwrite: Bool = false, protecting: [(path: String, option: String)] = [])
        throws -> DataManifest
    {
        let start = Date()
        let lock = try checkOutput(output, overwrite: overwrite, protecting: protecting)
        defer { withExtendedLifetime(lock) {} }
        let encoder = try DocumentEncoder(tokenizer: tokenizer, format: config.sequence)
        let tokenizerJSON = try tokenizer.tokenizerJSON()
        guard !config.sources.isEmpty else {
            throw DataError("no sources given", hint: "pass text files or folders, or --source NAME=PATH:WEIGHT.")
        }
        let names = config.sources.map(\.name)
        if let repeated = names.first(where: { name in names.filter { $0 == name }.count > 1 }) {
            throw DataError("two sources are named \(repeated)", hint: "give each --source its own NAME=.")
        }
        if config.removeNearDuplicates {
            let settings = config.nearDuplicates
            guard settings.threshold > 0, settings.threshold <= 1, settings.permutations >= 1,
                settings.shingleWords >= 1
            else {
                throw DataError(
                    "near-duplicate settings out of range (threshold \(settings.threshold), \(settings.permutations) permutations, \(settings.shingleWords)-word shingles)",
                    hint: "use a threshold in (0, 1], at least 1 permutation and 1-word shingles.")
            }
        }

        // Everything is built in a temporary folder; the streaming pass works in a folder of its own beside
        // it, which an interrupted run leaves for the next one.
        let temporary = FolderSwap.temporary(for: output)
        let work = DataPreparer.workFolder(for: output)
        try? FileManager.default.removeItem(at: temporary)
        do {
            try FileManager.default.createDirectory(at: temporary, withIntermediateDirectories: true)
        } catch {
            throw DataError(
                "cannot create \(temporary.path): \(error.localizedDescription)",
                hint: "check that the parent folder is writable.")
        }
        do {
            let pass = try PreparationPass(
                config: config, encoder: encoder, tokenizerSHA256: SHA256.hex(tokenizerJSON), threads: threads,
                work: work, batchBytes: batchBytes, readBlockBytes: readBlockBytes,
                checkpointSeconds: checkpointSeconds, progress: progress, shouldStop: shouldStop)
            try pass.readSources()
            reused = pass.reused
            let writer = try PreparationOutput(pass: pass, folder: temporary, progress: progress)
            let (splits, sources) = try writer.write()
            try tokenizerJSON.write(to: temporary.appendingPathComponent("tokenizer.json"))
            let manifest = DataManifest(
                created: ISO8601DateFormatter().string(from: Date()), config: config, sources: sources,
                tokenizer: TokenizerRecord(
                    sha256: SHA256.hex(tokenizerJSON), vocabularySize: tokenizer.vocabularySize,
                    eosToken: encoder.eosName, eosId: encoder.eos, bosToken: encoder.bosName, bosId: encoder.bos),
                stages: writer.stages, nearDuplicates: pass.nearRecord, splits: splits,
                lossMask: writer.hasMask, tokenType: pass.kind == .tokens16 ? "uint16" : "uint32",
                skippedRecords: pass.skippedRecords, skipped: pass.skippedRecords > 0 ? pass.skipped : nil,
                seconds: Date().timeIntervalSince(start))
            try OwnedOutput.mark(temporary, kind: DataManifest.outputKind)
            try manifest.jsonData().write(to: temporary.appendingPathComponent("manifest.json"))
            try FolderSwap.install(temporary, at: output)
            try? FileManager.default.removeItem(at: work)
            return manifest
        } catch {
            try? FileManager.default.removeItem(at: temporary)
            DataPreparer.keepWorkIfCheckpointed(work)
            if error is DataError || error is PreparationInterrupted { throw error }
            if let error = error as? FileError { throw DataError(error.message, hint: error.hint) }
            throw DataError(
                "writing \(output.path) failed: \(error.localizedDescription)",
                hint: "check free disk space and permissions; nothing was left at \(output.path).")
        }
    }

    /// Refuses an output that would destroy an input or a folder Fledge did not write; locks it and mends
    /// what a killed earlier run left beside it.
    private func checkOutput(_ output: URL, overwrite: Bool, protecting: [(path: String, option: String)]) throws
        -> FolderLock
    {
        do {
            let inputs = config.sources.map { (path: $0.path, option: "source") } + protecting
            try PathCheck.checkOutput(output.path, option: "--output", inputs: inputs)
            let lock = try FolderLock.output(output)
            FolderSwap.recover(output) { folder in
                let manifest = folder.appendingPathComponent("manifest.json")
                guard OwnedOutput.kind(of: folder) == DataManifest.outputKind,
                    let attributes = try? FileManager.default.attributesOfItem(atPath: manifest.path),
                    let date = attributes[.modificationDate] as? Date
                else { return nil }
                return date.timeIntervalSince1970
            }
            if UserFile.kind(output.path) != .missing {
                guard overwrite else {
                    throw DataError(
                        "\(output.path) already exists",
                        hint: "choose another --output, or pass --overwrite to replace it.")
                }
                try OwnedOutput.checkReplaceable(output, kind: DataManifest.outputKind, option: "--output") { names in
                    names.contains("manifest.json") && names.allSatisfy(DataManifest.isOutputFileName)
                }
            }
            return lock
        } catch let error as FileError {
            throw DataError(error.message, hint: error.hint)
        }
    }
}
