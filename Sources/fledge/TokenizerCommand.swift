// `fledge tokenizer`: train a tokenizer on text files, encode and decode with one, and inspect one.

import ArgumentParser
import FledgeKit
import Foundation

/// The kinds of tokenizer `fledge tokenizer train` can make.
enum TokenizerKind: String, ExpressibleByArgument, CaseIterable {
    case bytelevelBPE = "bytelevel-bpe"
    /// BPE over characters with the Whitespace pre-tokenizer and an unknown token (the HF tutorial setup).
    case bpe
    case word
}

extension PreTokenizer: ExpressibleByArgument {}

/// Loads a tokenizer from tokenizer.json (BPE or WordLevel), a .tiktoken file, or "gpt2".
func loadAnyTokenizer(_ spec: String) throws -> any Tokenizer {
    spec == "gpt2" || spec.hasSuffix(".tiktoken")
        ? try loadTokenizer(spec) : try TokenizerJSON.loadAny(URL(fileURLWithPath: spec))
}

/// Loads a byte-level BPE tokenizer from tokenizer.json, a .tiktoken file, or "gpt2" (the bundled GPT-2 vocabulary).
func loadTokenizer(_ spec: String) throws -> BPETokenizer {
    if spec == "gpt2" {
        let folder = try gpt2Folder()
        return try BPETokenizer.loadGPT2(
            encoder: folder.appendingPathComponent("encoder.json"), merges: folder.appendingPathComponent("vocab.bpe"))
    }
    let url = URL(fileURLWithPath: spec)
    return url.pathExtension == "tiktoken" ? try BPETokenizer.loadTiktoken(url) : try TokenizerJSON.load(url)
}

/// The folder of GPT-2's vocabulary (encoder.json + vocab.bpe), wherever `fledge` runs: `FLEDGE_GPT2_DIR`,
/// then `data/tokenizers/gpt2` or `share/fledge/tokenizers/gpt2` in any folder above the executable (the
/// repository it was built in, or an install prefix), then below the current folder.
func gpt2Folder() throws -> URL {
    var candidates: [URL] = []
    if let folder = ProcessInfo.processInfo.environment["FLEDGE_GPT2_DIR"] {
        candidates.append(URL(fileURLWithPath: folder))
    }
    var folder = URL(fileURLWithPath: PathCheck.canonical("/proc/self/exe")).deletingLastPathComponent()
    while folder.path != "/" {
        candidates.append(folder.appendingPathComponent("data/tokenizers/gpt2"))
        candidates.append(folder.appendingPathComponent("share/fledge/tokenizers/gpt2"))
        folder.deleteLastPathComponent()
    }
    candidates.append(URL(fileURLWithPath: "data/tokenizers/gpt2"))
    if let found = candidates.first(where: {
        UserFile.kind($0.appendingPathComponent("encoder.json").path) == .file
    }) {
        return found
    }
    throw TokenizerError(
        "GPT-2's vocabulary (encoder.json, vocab.bpe) was not found beside the fledge executable",
        hint:
            "set FLEDGE_GPT2_DIR to a folder holding encoder.json and vocab.bpe (the repository's data/tokenizers/gpt2), or install with `make install`."
    )
}

struct TokenizerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenizer", abstract: "Train, use and inspect tokenizers.",
        subcommands: [Train.self, Encode.self, Decode.self, Info.self])

    struct Train: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Train a tokenizer on text files and write tokenizer.json.")

        @Option(
            name: .long, parsing: .upToNextOption,
            help: "Text files to train on (.parquet files: their --text-field column).")
        var input: [String] = []
        @Option(
            help: ArgumentHelp(
                "A source NAME=PATH[:WEIGHT] (repeatable; a file or folder): the sources' text is taken in proportion to the weights, as `fledge data prepare --source` mixes them (the largest such mixture without repeats, by bytes).",
                valueName: "source"))
        var source: [String] = []
        @Option(help: "The column of .parquet inputs that holds the text.") var textField = InputConfig().textField
        @Option(help: "Tokenizer kind.") var kind: TokenizerKind = .bytelevelBPE
        @Option(
            help:
                "Vocabulary size, special tokens (and for BPE the 256 bytes) included; default \(BPETrainingConfig.defaultVocabularySize) (BPE), \(WordLevelTokenizer.defaultVocabularySize) (word)."
        )
        var vocabSize: Int?
        @Flag(help: "Lower-case text before counting words (word-level only).") var lowercase = false
        @Option(help: "Pairs seen fewer times are not merged.") var minFrequency = BPETrainingConfig().minimumFrequency
        @Option(help: "Comma-separated special tokens (ids 0, 1, ...).") var specialTokens = BPETrainingConfig()
            .specialTokens.joined(separator: ",")
        @Option(help: "The special token for unknown characters or words (default: the one named like unk, any case).")
        var unkToken: String?
        @Option(help: "Pre-tokenizer: gpt2 or cl100k (whitespace with --kind bpe, which always uses it).")
        var preTokenizer: PreTokenizer = .gpt2
        @Option(help: "Output tokenizer.json.") var output = "tokenizer.json"
        @Flag(help: "Replace --output if it is an existing tokenizer.json.") var overwrite = false
        @OptionGroup var threading: ThreadOptions

        /// The --special-tokens list, in order.
        var specialTokenList: [String] { specialTokens.split(separator: ",").map(String.init).filter { !$0.isEmpty } }

        func validate() throws {
            guard !input.isEmpty || !source.isEmpty else {
                throw ValidationError("give at least one --input file or --source NAME=PATH:WEIGHT.")
            }
            guard source.isEmpty || (input.isEmpty && kind != .word) else {
                throw ValidationError(
                    "--source mixes byte-level or plain BPE training text; give either --input files or --source, and not with --kind word."
                )
            }
            for spec in source {
                do { _ = try SourceSpec.parse(spec) } catch { throw ValidationError("\(error)") }
            }
            guard minFrequency >= 1 else { throw ValidationError("--min-frequency must be at least 1.") }
            if let vocabSize { try checkRange("--vocab-size", vocabSize, 1...TokenizerLimits.maximumVocabulary) }
            for path in input { try UserFile.requireFile(path, "--input") }
            let sourcePaths = source.compactMap { try? SourceSpec.parse($0).path }
            try PathCheck.checkOutput(
                output, option: "--output", inputs: input.map { ($0, "--input") } + sourcePaths.map { ($0, "--source") }
            )
            switch UserFile.kind(output) {
            case .missing: break
            case .folder, .other:
                throw ValidationError("--output \(output) is a folder; name a file, e.g. \(output)/tokenizer.json.")
            case .file:
                guard overwrite else {
                    throw ValidationError(
                        "--output \(output) already exists: pass --overwrite to replace it, or choose another name.")
                }
                guard (try? TokenizerJSON.loadAny(URL(fileURLWithPath: output))) != nil else {
                    throw ValidationError(
                        "--output \(output) is not a tokenizer.json; Fledge replaces only a tokenizer file it can read. Choose another name."
                    )
                }
            }
            if kind == .word, let parquet = input.first(where: Self.isParquet) {
                throw ValidationError(
                    "--kind word trains on text files, and \(parquet) is Parquet: train a BPE (the default kind) on it, or prepare the data first and train on its text."
                )
            }
            guard preTokenizer != .whitespace || kind == .bpe else {
                throw ValidationError(
                    "byte-level BPE needs --pre-tokenizer gpt2 or cl100k; the Whitespace pre-tokenizer of the HF tutorial comes with --kind bpe."
                )
            }
        }

        func run() throws {
            if kind == .word { return trainWordLevel() }
            var config = BPETrainingConfig(vocabularySize: vocabSize ?? BPETrainingConfig.defaultVocabularySize)
            config.minimumFrequency = minFrequency
            config.preTokenizer = kind == .bpe ? .whitespace : preTokenizer
            config.specialTokens = specialTokenList
            config.unknownToken = unkToken
            config.threads = threading.count
            let start = Date()
            let progress = ProgressLine()
            do {
                let trainer = BPETrainer(config: config)
                let urls = input.map { URL(fileURLWithPath: $0) }
                let mixture = try mixture()
                let feed: (_ emit: ([UInt8]) throws -> Void) throws -> Void = { emit in
                    if let mixture { return try Self.feedMixture(mixture, textField: textField, emit) }
                    for url in urls { try Self.feedFile(url, textField: textField, emit) }
                }
                let tokenizer = try trainer.train(feed: feed) {
                    event in
                    switch event {
                    case .counted(let bytes, let words):
                        let mb = Double(bytes) / 1e6
                        progress.update(
                            String(
                                format: "counting: %.1f MB, %d distinct words, %.1f MB/s", mb, words,
                                mb / max(1e-9, Date().timeIntervalSince(start))))
                    case .merged(let merges, let total):
                        progress.update("merging: \(merges)/\(total)")
                    }
                }
                progress.finish()
                try TokenizerJSON.write(tokenizer, to: URL(fileURLWithPath: output))
                print(
                    String(
                        format: "wrote %@: %d tokens (%d merges) in %.1f s", output, tokenizer.vocabularySize,
                        tokenizer.merges.count, Date().timeIntervalSince(start)))
            } catch {
                progress.finish()
                exitWithError(error)
            }
        }

        static func isParquet(_ path: String) -> Bool { path.lowercased().hasSuffix(".parquet") }

        /// Hands the training text of one file to `emit` in chunks: a text file's lines, a Parquet file's
        /// `textField` column a row group at a time (rows ending with a newline).
        static func feedFile(_ url: URL, textField: String, _ emit: ([UInt8]) throws -> Void) throws {
            guard isParquet(url.path) else { return try forEachLineChunk(of: [url], emit) }
            let file = try ParquetFile(url: url)
            guard file.columnNames.contains(textField) else {
                throw ValidationError(
                    "\(url.path) has no column \"\(textField)\" (columns: \(file.columnNames.joined(separator: ", "))); name it with --text-field."
                )
            }
            var chunk: [UInt8] = []
            for group in 0..<file.rowGroupCount {
                for case let row? in try file.strings(textField, rowGroup: group)! {
                    chunk += row
                    chunk.append(0x0A)
                    if chunk.count >= 8 << 20 {
                        try emit(chunk)
                        chunk.removeAll(keepingCapacity: true)
                    }
                }
            }
            if !chunk.isEmpty { try emit(chunk) }
        }

        /// The --source files and how many bytes of each source to train on: weight × the largest mixture that
        /// repeats nothing (as `fledge data prepare --mix downsample` does by tokens, here by file bytes).
        func mixture() throws -> [(files: [URL], bytes: Int)]? {
            guard !source.isEmpty else { return nil }
            let specs = try source.map { try SourceSpec.parse($0) }
            let reader = DocumentReader(InputConfig())
            let files = try specs.map { try reader.files(of: $0.path) }
            let sizes = files.map { urls in
                urls.reduce(0) {
                    $0 + ((try? FileManager.default.attributesOfItem(atPath: $1.path)[.size] as? Int) ?? 0)
                }
            }
            let total = specs.reduce(0) { $0 + $1.weight }
            let mixture = zip(sizes, specs).map { Double($0) / ($1.weight / total) }.min() ?? 0
            let budgets = specs.map { Int(mixture * $0.weight / total) }
            for (spec, (size, budget)) in zip(specs, zip(sizes, budgets)) {
                print(
                    String(
                        format: "source %@: %@ of %@ (weight %.2f)", spec.name, formatBytes(budget), formatBytes(size),
                        spec.weight / total))
            }
            return Array(zip(files, budgets))
        }

        /// Feeds each source's files in order until its share of bytes is reached (cut at a line end).
        static func feedMixture(
            _ mixture: [(files: [URL], bytes: Int)], textField: String, _ emit: ([UInt8]) throws -> Void
        ) throws {
            struct ShareReached: Error {}
            for (files, budget) in mixture {
                var left = budget
                do {
                    for url in files {
                        try feedFile(url, textField: textField) { chunk in
                            guard chunk.count >= left else {
                                left -= chunk.count
                                return try emit(chunk)
                            }
                            let cut = chunk[..<left].lastIndex(of: 0x0A).map { $0 + 1 } ?? left
                            if cut > 0 { try emit(Array(chunk[..<cut])) }
                            throw ShareReached()
                        }
                    }
                } catch is ShareReached {}
            }
        }

        func trainWordLevel() {
            let start = Date()
            let specials = specialTokenList
            do {
                let tokenizer = try WordLevelTokenizer.train(
                    files: input.map { URL(fileURLWithPath: $0) },
                    vocabularySize: vocabSize ?? WordLevelTokenizer.defaultVocabularySize,
                    minimumFrequency: minFrequency, lowercase: lowercase, specialTokens: specials,
                    unknownToken: BPETrainer.unknownIndex(unkToken, in: specials).map { specials[$0] } ?? unkToken
                        ?? "<unk>",
                    threads: threading.count)
                try TokenizerJSON.write(tokenizer, to: URL(fileURLWithPath: output))
                print(
                    String(
                        format: "wrote %@: %d words in %.1f s", output, tokenizer.vocabularySize,
                        Date().timeIntervalSince(start)))
            } catch { exitWithError(error) }
        }
    }

    struct Encode: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the token ids of a text.")

        @Option(help: "tokenizer.json, a .tiktoken file, or gpt2.") var tokenizer = "gpt2"
        @Option(help: "Text to encode (else --input, else standard input).") var text: String?
        @Option(help: "A file to encode.") var input: String?
        @Flag(help: "Turn special-token strings in the text into their ids.") var allowSpecial = false

        func run() throws {
            do {
                let tok = try loadAnyTokenizer(tokenizer)
                let bytes: [UInt8]
                if let text {
                    bytes = Array(text.utf8)
                } else if let input {
                    bytes = Array(try UserFile.read(input, "--input"))
                } else {
                    bytes = Array(FileHandle.standardInput.readDataToEndOfFile())
                }
                print(tok.encode(bytes: bytes, allowSpecial: allowSpecial).map(String.init).joined(separator: " "))
            } catch { exitWithError(error) }
        }
    }

    struct Decode: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the text of token ids.")

        @Option(help: "tokenizer.json, a .tiktoken file, or gpt2.") var tokenizer = "gpt2"
        @Argument(help: "Token ids.") var ids: [Int32]

        func run() throws {
            do {
                FileHandle.standardOutput.write(Data(try loadAnyTokenizer(tokenizer).decodeBytes(ids)))
                print()
            } catch { exitWithError(error) }
        }
    }

    struct Info: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Vocabulary size and special tokens; with --input, compression and the most frequent tokens.")

        @Option(help: "tokenizer.json, a .tiktoken file, or gpt2.") var tokenizer = "gpt2"
        @Option(help: "A text file to measure.") var input: String?
        @Option(help: "How many frequent tokens to list.") var top = 20

        func validate() throws { try checkRange("--top", top, 0...100_000) }

        func run() throws {
            do {
                let tok = try loadAnyTokenizer(tokenizer)
                if let bpe = tok as? BPETokenizer {
                    print(
                        "vocabulary size: \(tok.vocabularySize)  (byte-level BPE, \(bpe.merges.count) merges, pre-tokenizer \(bpe.preTokenizer.rawValue))"
                    )
                } else {
                    print("vocabulary size: \(tok.vocabularySize)  (word-level)")
                }
                let specials = tok.specialTokens.tokens.sorted { $0.id < $1.id }.map { "\($0.text)=\($0.id)" }
                print("special tokens: \(specials.isEmpty ? "none" : specials.joined(separator: " "))")
                guard let input else { return }
                let data = try UserFile.read(input, "--input")
                let start = Date()
                let ids = tok.encode(bytes: Array(data), allowSpecial: false)
                let seconds = Date().timeIntervalSince(start)
                print(
                    String(
                        format: "%@: %d bytes, %d tokens, %.3f bytes per token (%.1f MB/s)", input, data.count,
                        ids.count,
                        Double(data.count) / Double(max(1, ids.count)), Double(data.count) / 1e6 / max(seconds, 1e-9)))
                var counts = [Int](repeating: 0, count: tok.vocabularySize)
                for id in ids { counts[Int(id)] += 1 }
                print("most frequent tokens:")
                for id in counts.indices.sorted(by: { counts[$0] > counts[$1] }).prefix(top) where counts[id] > 0 {
                    let text = String(decoding: try tok.decodeBytes([Int32(id)]), as: UTF8.self)
                    print(
                        String(
                            format: "  %6d  %8d  %5.2f%%  %@", id, counts[id],
                            100 * Double(counts[id]) / Double(ids.count), text.debugDescription))
                }
            } catch { exitWithError(error) }
        }
    }
}

/// A single status line on standard error, redrawn in place (only when it is a terminal).
final class ProgressLine {
    let live = isatty(2) != 0
    /// Where standard error is not a terminal (a log): a plain line this often (nil: none).
    let logEvery: TimeInterval?
    private var last = Date.distantPast
    private var logged = Date()

    init(logEvery: TimeInterval? = nil) { self.logEvery = logEvery }

    func update(_ text: String) {
        if !live, let logEvery, Date().timeIntervalSince(logged) >= logEvery {
            logged = Date()
            FileHandle.standardError.write(Data("\(text)\n".utf8))
        }
        guard live, Date().timeIntervalSince(last) > 0.1 else { return }
        last = Date()
        FileHandle.standardError.write(Data("\r\u{1B}[K\(text)".utf8))
    }

    func finish() {
        if live { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
    }
}
