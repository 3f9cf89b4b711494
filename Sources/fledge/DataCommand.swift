// `fledge data`: prepare token shards from raw text (clean, deduplicate, split, mix, tokenise) and inspect a
// prepared folder.

import ArgumentParser
import FledgeKit
import Foundation

/// The library's defaults, which the options take (each default lives in PreparationConfig alone).
private let preparationDefaults = PreparationConfig()

extension InputFormat: ExpressibleByArgument {}
extension DocumentBoundary: ExpressibleByArgument {}
extension BadRecordPolicy: ExpressibleByArgument {}
extension InvalidUTF8Policy: ExpressibleByArgument {}
extension MixMode: ExpressibleByArgument {}

struct DataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data", abstract: "Prepare token shards from raw text, and inspect them.",
        subcommands: [Prepare.self, Info.self])

    struct Prepare: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Clean, deduplicate, split, mix and tokenise text into shards with a manifest.")

        @Argument(help: "Text/JSONL files or folders (each a source of weight 1).") var inputs: [String] = []
        @Option(help: "A source NAME=PATH[:WEIGHT] (repeatable); weights set the share of training tokens.")
        var source: [String] = []
        @Option(help: "A source's licence NAME=TEXT, recorded in the manifest (repeatable).") var licence: [String] = []
        @Option(
            help:
                "A file or folder that is the validation split as it is (a data set's own validation file; repeatable). The other inputs then all train."
        )
        var validation: [String] = []
        @Option(help: "tokenizer.json, a .tiktoken file, or gpt2.") var tokenizer: String
        @Option(help: "Output folder (shards, manifest.json, documents.jsonl, tokenizer.json).") var output: String
        @Flag(help: "Replace the output folder if it exists (only once the new one is complete).") var overwrite = false

        @Option(help: "Input format: auto, text, jsonl, qa, parquet.") var format = preparationDefaults.input.format
        @Option(help: "The JSONL field or Parquet column with the text.") var textField = preparationDefaults.input
            .textField
        @Option(help: "Plain-text document boundary: file, line, blank-line, separator.")
        var splitOn = preparationDefaults.input.boundary
        @Option(help: "The separator string for --split-on separator.") var separator = preparationDefaults.input
            .separator
        @Option(help: "File-name glob for folders (repeatable; default: every non-hidden file).") var include:
            [String] = []
        @Option(help: "A JSON record that does not parse or lacks its field: stop or skip (and count).")
        var onBadRecord = preparationDefaults.input.onBadRecord

        @Flag(help: "Skip Unicode NFC normalisation.") var noNfc = false
        @Flag(help: "Keep newlines and spaces as they are.") var keepWhitespace = false
        @Flag(help: "Keep control characters.") var keepControlCharacters = false
        @Option(help: "Invalid UTF-8: replace (with U+FFFD) or drop the document.") var invalidUtf8 =
            preparationDefaults.cleaning.invalidEncoding
        @Option(help: "Drop documents with fewer characters.") var minChars = preparationDefaults.minCharacters
        @Option(help: "Drop documents with more characters.") var maxChars: Int?
        @Flag(help: "Keep only documents that look English (see EnglishFilter.swift for the heuristic).")
        var englishOnly = false

        @Flag(help: "Keep exact duplicates.") var keepDuplicates = false
        @Flag(help: "Keep near duplicates.") var keepNearDuplicates = false
        @Option(help: "Jaccard similarity of word shingles at which documents are near duplicates.")
        var nearDuplicateThreshold = preparationDefaults.nearDuplicates.threshold
        @Option(help: "Words per shingle for near-duplicate detection.") var shingleWords = preparationDefaults
            .nearDuplicates.shingleWords

        @Option(help: "Share of documents (by content hash) held out for validation.") var valFraction =
            preparationDefaults.split.validationFraction
        @Option(help: "Hold out a fixed number of validation tokens instead.") var valTokens: Int?
        @Option(
            help:
                "Reach the --source weights by downsample (no repeats) or upsample (repeat smaller sources), or none (keep all); default: downsample with --source, none for plain inputs."
        )
        var mix: MixMode?

        @Option(help: "End-of-sequence token (default: the tokenizer's <|endoftext|>, <eos>, </s> or [EOS]).")
        var eosToken: String?
        @Option(help: "Beginning-of-sequence token (default: <bos>, <s>, ... else the EOS token).") var bosToken:
            String?
        @Flag(help: "Put the BOS token before each plain-text document.") var bos = false
        @Option(help: "Question/answer template; the loss mask starts at {answer}.")
        var qaTemplate = preparationDefaults.sequence.questionAnswerTemplate
        @Option(help: "Most tokens per shard file.") var shardTokens = preparationDefaults.shardTokens
        @Option(help: "--mix upsample: refuse to repeat any source more than this many times.") var maxUpsample =
            PreparationConfig.defaultMaximumUpsample
        @Option(
            help:
                "Seconds between checkpoints of the reading pass (at file ends), from which a rerun continues after Ctrl-C or a failure."
        )
        var checkpointEvery = DataPreparer.defaultCheckpointSeconds
        @OptionGroup var threading: ThreadOptions

        func validate() throws {
            if !validation.isEmpty && valTokens != nil {
                throw ValidationError("--validation gives the validation split; drop --val-tokens.")
            }
            guard !inputs.isEmpty || !source.isEmpty else {
                throw ValidationError("give input files or folders, or --source NAME=PATH:WEIGHT.")
            }
            guard valFraction > 0, valFraction < 1 else {
                throw ValidationError("--val-fraction must be between 0 and 1 (exclusive), e.g. 0.05.")
            }
            if let valTokens, valTokens < 1 { throw ValidationError("--val-tokens must be at least 1.") }
            guard nearDuplicateThreshold > 0, nearDuplicateThreshold <= 1 else {
                throw ValidationError("--near-duplicate-threshold must be in (0, 1], e.g. 0.8.")
            }
            guard shingleWords >= 1, shardTokens >= 1, minChars >= 0 else {
                throw ValidationError("--shingle-words and --shard-tokens must be at least 1, --min-chars at least 0.")
            }
            if let maxChars, maxChars < minChars { throw ValidationError("--max-chars must be at least --min-chars.") }
            try checkRange("--shard-tokens", shardTokens, 1...Int(Int32.max))
            try checkRange("--shingle-words", shingleWords, 1...1000)
            if let valTokens { try checkRange("--val-tokens", valTokens, 1...Int(Int32.max)) }
            try checkRange("--max-upsample", maxUpsample, 1...1_000_000)
            guard checkpointEvery >= 0, checkpointEvery.isFinite else {
                throw ValidationError("--checkpoint-every must be a number of seconds, 0 or more.")
            }
        }

        /// The typed configuration these options describe.
        func preparationConfig() throws -> PreparationConfig {
            var config = PreparationConfig()
            config.sources =
                try inputs.map {
                    SourceSpec(name: URL(fileURLWithPath: $0).deletingPathExtension().lastPathComponent, path: $0)
                }
                + source.map { try SourceSpec.parse($0) }
                + validation.map {
                    SourceSpec(
                        name: "validation-" + URL(fileURLWithPath: $0).deletingPathExtension().lastPathComponent,
                        path: $0, validationOnly: true)
                }
            for entry in licence {
                guard let equals = entry.firstIndex(of: "="),
                    let index = config.sources.firstIndex(where: { $0.name == entry[..<equals] })
                else {
                    throw ValidationError("--licence \(entry): expected NAME=TEXT with NAME one of the sources.")
                }
                config.sources[index].licence = String(entry[entry.index(after: equals)...])
            }
            config.input.format = format
            config.input.textField = textField
            config.input.boundary = splitOn
            config.input.separator = unescaped(separator)
            config.input.include = include
            config.input.onBadRecord = onBadRecord
            config.cleaning.normalizeUnicode = !noNfc
            config.cleaning.normalizeWhitespace = !keepWhitespace
            config.cleaning.removeControlCharacters = !keepControlCharacters
            config.cleaning.invalidEncoding = invalidUtf8
            config.minCharacters = minChars
            config.maxCharacters = maxChars
            config.englishOnly = englishOnly
            config.removeExactDuplicates = !keepDuplicates
            config.removeNearDuplicates = !keepNearDuplicates
            config.nearDuplicates.threshold = nearDuplicateThreshold
            config.nearDuplicates.shingleWords = shingleWords
            config.split.validationFraction = valFraction
            config.split.validationTokens = valTokens
            config.mix = mix ?? (source.isEmpty ? .none : .downsample)
            config.sequence.eosToken = eosToken
            config.sequence.bosToken = bosToken
            config.sequence.addBOS = bos
            config.sequence.questionAnswerTemplate = unescaped(qaTemplate)
            config.shardTokens = shardTokens
            config.maximumUpsample = maxUpsample
            return config
        }

        func run() throws {
            do {
                let config = try preparationConfig()
                let preparer = DataPreparer(
                    config: config, tokenizer: try loadAnyTokenizer(tokenizer), threads: threading.count)
                preparer.checkpointSeconds = checkpointEvery
                let line = ProgressLine(logEvery: 15)
                let start = Date()
                var stageStart = (name: "", time: Date())
                preparer.progress = { progress in
                    if progress.stage != stageStart.name { stageStart = (progress.stage, Date()) }
                    line.update(DataCommand.progressText(progress, since: stageStart.time, start: start))
                }
                let outputURL = URL(fileURLWithPath: output)
                let work = DataPreparer.workFolder(for: outputURL)
                let interrupt = preparationStopRequest(temporary: FolderSwap.temporary(for: outputURL), work: work)
                defer { withExtendedLifetime(interrupt) {} }
                preparer.shouldStop = { interrupt.requested }
                let manifest: DataManifest
                do {
                    manifest = try preparer.run(
                        output: outputURL, overwrite: overwrite,
                        protecting: tokenizer == "gpt2" ? [] : [(tokenizer, "--tokenizer")])
                } catch {
                    line.finish()
                    if error is PreparationInterrupted {
                        FileHandle.standardError.write(Data("\(error)\n".utf8))
                    }
                    if let kept = keptWorkNote(work) { FileHandle.standardError.write(Data(kept.utf8)) }
                    if error is PreparationInterrupted { Foundation.exit(130) }
                    throw error
                }
                line.finish()
                if preparer.reused.files > 0 {
                    print(
                        "continued an interrupted run: \(preparer.reused.files) file\(preparer.reused.files == 1 ? "" : "s") (\(formatBytes(preparer.reused.bytes))) taken from \(work.path) instead of read again\n"
                    )
                }
                let bytes = manifest.sources.reduce(0) { $0 + $1.bytesRead }
                print(manifest.summary())
                print(
                    String(
                        format: "\nprepared %@ in %.1f s (%.1f MB/s of input, %d threads) → %@", formatBytes(bytes),
                        manifest.seconds, Double(bytes) / 1e6 / manifest.seconds, threading.count, output))
            } catch { exitWithError(error) }
        }
    }

    /// "read  45.3%  400.1 of 881.8 MB  145,210 docs  11.2 MB/s  ETA 43s  (36s)", or the write stage's tokens.
    static func progressText(_ progress: PreparationProgress, since stageStart: Date, start: Date) -> String {
        let seconds = max(Date().timeIntervalSince(stageStart), 1e-3)
        let share = Double(progress.done) / Double(max(progress.total, 1))
        let rate = Double(progress.done) / seconds
        let eta = progress.done > 0 ? seconds * (1 - share) / max(share, 1e-9) : nil
        let amount =
            progress.unit == "bytes"
            ? String(
                format: "%.1f of %.1f MB  %@ docs  %.1f MB/s", Double(progress.done) / 1e6,
                Double(progress.total) / 1e6, progress.documents.formatted(), rate / 1e6)
            : String(
                format: "%.1fM of %.1fM tokens", Double(progress.done) / 1e6, Double(progress.total) / 1e6)
        return String(
            format: "%@ %5.1f%%  %@  ETA %@  (%.0fs)", progress.stage, 100 * share, amount,
            eta.map { String(format: "%.0fs", $0) } ?? "?", Date().timeIntervalSince(start))
    }

    struct Info: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Summarise a prepared folder and check its shards.")

        @Argument(help: "A folder written by `fledge data prepare`.") var folder: String

        func run() throws {
            do {
                let dataset = try PreparedDataset(URL(fileURLWithPath: folder))
                print(dataset.manifest.summary())
                _ = try dataset.tokenizer()
                try ShardVerification.verify(dataset, force: true)
                for split in dataset.manifest.splits.keys.sorted() {
                    let stream = try dataset.stream(split)
                    print(
                        "\(split): \(stream.shards.count) shards, \(stream.count) tokens: headers, sizes, SHA-256 and token ids OK"
                    )
                }
            } catch { exitWithError(error) }
        }
    }
}

/// "12.3 MB".
func formatBytes(_ bytes: Int) -> String {
    bytes >= 1_000_000 ? String(format: "%.1f MB", Double(bytes) / 1e6) : String(format: "%.1f kB", Double(bytes) / 1e3)
}

/// What to tell the user about a preparation's work folder left for the next run (nil, and the folder deleted,
/// when it holds no checkpoint).
func keptWorkNote(_ work: URL) -> String? {
    guard DataPreparer.keepWorkIfCheckpointed(work) else { return nil }
    return "note: the work of the files read so far is kept in \(work.path); the same command continues from it "
        + "(delete that folder to start afresh)\n"
}

/// Ctrl-C or SIGTERM while preparing: the first asks the preparation to stop at its next batch
/// (`DataPreparer.shouldStop`), so that the thread writing the folders deletes the temporary folder (no dataset
/// is left half-written) and keeps the work folder only with a checkpoint, which the next run with the same
/// settings continues from. A second exits at once, deleting what it can. A kill -9 leaves the temporary folder
/// for the next run on the same output to delete.
func preparationStopRequest(temporary: URL, work: URL) -> StopRequest {
    StopRequest(signals: [SIGINT, SIGTERM], message: "\nstopping (Ctrl-C again to quit now)\n") {
        try? FileManager.default.removeItem(at: temporary)
        let name = temporary.lastPathComponent
        if let end = name.range(of: ".tmp-") {  // .NAME.tmp-PID → the lock .NAME.lock beside it
            unlink(temporary.deletingLastPathComponent().appendingPathComponent(name[..<end.lowerBound] + ".lock").path)
        }
        FileHandle.standardError.write(Data("\ninterrupted: no dataset was written\n".utf8))
        if let kept = keptWorkNote(work) { FileHandle.standardError.write(Data(kept.utf8)) }
    }
}
