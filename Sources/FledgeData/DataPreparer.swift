// DataPreparer: the pipeline of `fledge data prepare` — read sources, clean, filter by length and language,
// remove exact then near duplicates, tokenise, split, mix, write shards and the manifest. The per-document
// stages run on all threads; the output folder is built under a temporary name and moved into place only
// when complete.

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
    /// `--mix upsample`: the most times a source may be repeated (nil: 10).
    public var maximumUpsample: Int?

    public init() {}
}

/// Progress of a running preparation: the stage and how far it is (in `unit`s).
public struct PreparationProgress: Sendable {
    public var stage: String
    public var done: Int
    public var total: Int
    public var unit: String
}

/// Why a document is not in the output (documents.jsonl "status").
enum DocumentStatus: String {
    case kept, invalidEncoding = "invalid_utf8", empty, tooShort = "too_short", tooLong = "too_long"
    case notEnglish = "not_english", duplicate, nearDuplicate = "near_duplicate", mixedOut = "mixed_out"
}

/// Runs the pipeline.
public final class DataPreparer {
    public let config: PreparationConfig
    public let tokenizer: any Tokenizer
    public let threads: Int
    /// Called on the calling thread between pieces of work.
    public var progress: (PreparationProgress) -> Void = { _ in }

    private var documents: [Document] = []
    private var status: [DocumentStatus] = []
    private var duplicateOf: [Int: Int] = [:]
    private var hashes: [ContentHash] = []
    private var characters: [Int] = []
    private var stages: [StageRecord] = []

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
        // Each run starts from nothing: a second run of the same preparer must not add the corpus twice.
        (documents, status, duplicateOf, hashes, characters, stages, skippedRecords) = ([], [], [:], [], [], [], 0)
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

        var sourceRecords = try readSources()
        try cleanAndFilter()
        removeExactDuplicates()
        let near = try removeNearDuplicates()
        let (tokens, masks) = tokenize(encoder)

        // Split, then mix each side by the source weights.
        let stageStart = Date()
        let alive = documents.indices.filter { status[$0] == .kept }
        let items = alive.map { MixItem(source: documents[$0].source, hash: hashes[$0], tokens: tokens[$0].count) }
        let validation =
            config.sources.contains { $0.validationOnly == true }
            ? items.map { config.sources[$0.source].validationOnly == true } : Mixer.split(items, config.split)
        let weights = config.sources.map(\.weight)
        var uses = [Int](repeating: 0, count: documents.count)
        for side in [false, true] {
            let members = items.indices.filter { validation[$0] == side }
            let sideUses = Mixer.mix(
                members.map { items[$0] }, weights: weights,
                mode: side && config.mix != .none ? .downsample : config.mix)
            for (k, member) in members.enumerated() { uses[alive[member]] = sideUses[k] }
        }
        try checkUpsampling(uses: uses, tokens: tokens)
        var isValidation = [Bool](repeating: false, count: documents.count)
        for (k, index) in alive.enumerated() {
            isValidation[index] = validation[k]
            if uses[index] == 0 { status[index] = .mixedOut }
        }
        let trainCount = alive.filter { !isValidation[$0] && uses[$0] > 0 }.count
        let validationCount = alive.filter { isValidation[$0] && uses[$0] > 0 }.count
        if validationCount == 0, let file = config.sources.first(where: { $0.validationOnly == true }) {
            // The data set's own validation file: say where its documents went.
            let fromFile = documents.indices.filter { config.sources[documents[$0].source].validationOnly == true }
            let removed = Dictionary(grouping: fromFile.map { status[$0] }, by: { $0 }).filter { $0.key != .kept }
                .map { "\($0.value.count) \($0.key.rawValue.replacingOccurrences(of: "_", with: " "))" }.sorted()
            throw DataError(
                "the validation file \(file.path) kept none of its \(fromFile.count) documents"
                    + (removed.isEmpty ? "" : " (removed: \(removed.joined(separator: ", ")))"),
                hint: fromFile.isEmpty
                    ? "check that the file holds text (and --split-on cuts it into documents)."
                    : "a validation document that repeats a training document is removed as a duplicate, so that "
                        + "validation measures unseen text; use a validation file that does not repeat the training data."
            )
        }
        guard trainCount > 0, validationCount > 0 else {
            throw DataError(
                "the split left \(trainCount) training and \(validationCount) validation documents (of \(alive.count))",
                hint: alive.count < 20
                    ? "cut the text into more documents (--split-on blank-line or line) or add data."
                    : "adjust --val-fraction / --val-tokens so both sides get documents.")
        }
        stages.append(
            stage(
                "split+mix", input: alive.count, removed: ["mixed_out": alive.filter { uses[$0] == 0 }.count],
                tokens: alive.reduce(0) { $0 + tokens[$1].count * uses[$1] }, since: stageStart))

        // Shards, documents.jsonl, tokenizer.json and the manifest, in a temporary folder.
        let writeStart = Date()
        let temporary = FolderSwap.temporary(for: output)
        try? FileManager.default.removeItem(at: temporary)
        do {
            try FileManager.default.createDirectory(at: temporary, withIntermediateDirectories: true)
        } catch {
            throw DataError(
                "cannot create \(temporary.path): \(error.localizedDescription)",
                hint: "check that the parent folder is writable.")
        }
        do {
            let hasMask = masks.contains { $0 != nil }
            var splits: [String: SplitRecord] = [:]
            for (name, side) in [("train", false), ("validation", true)] {
                splits[name] = try writeSplit(
                    name, members: alive.filter { isValidation[$0] == side }, uses: uses, tokens: tokens, masks: masks,
                    hasMask: hasMask, folder: temporary)
            }
            for index in alive where uses[index] > 0 {
                let side = isValidation[index]
                sourceRecords[documents[index].source].trainDocuments += side ? 0 : uses[index]
                sourceRecords[documents[index].source].trainTokens += side ? 0 : uses[index] * tokens[index].count
                sourceRecords[documents[index].source].validationDocuments += side ? uses[index] : 0
                sourceRecords[documents[index].source].validationTokens += side ? uses[index] * tokens[index].count : 0
            }
            try writeDocumentList(
                to: temporary.appendingPathComponent("documents.jsonl"), isValidation: isValidation, uses: uses,
                tokens: tokens)
            try tokenizerJSON.write(to: temporary.appendingPathComponent("tokenizer.json"))
            stages.append(
                stage(
                    "write", input: trainCount + validationCount, removed: [:],
                    tokens: splits.values.reduce(0) { $0 + $1.tokens }, since: writeStart))
            let manifest = DataManifest(
                created: ISO8601DateFormatter().string(from: Date()), config: config, sources: sourceRecords,
                tokenizer: TokenizerRecord(
                    sha256: SHA256.hex(tokenizerJSON), vocabularySize: tokenizer.vocabularySize,
                    eosToken: encoder.eosName, eosId: encoder.eos, bosToken: encoder.bosName, bosId: encoder.bos),
                stages: stages, nearDuplicates: near, splits: splits, lossMask: hasMask,
                tokenType: ShardKind.tokens(forVocabularySize: tokenizer.vocabularySize) == .tokens16
                    ? "uint16" : "uint32",
                skippedRecords: skippedRecords, seconds: Date().timeIntervalSince(start))
            try OwnedOutput.mark(temporary, kind: DataManifest.outputKind)
            try manifest.jsonData().write(to: temporary.appendingPathComponent("manifest.json"))
            try FolderSwap.install(temporary, at: output)
            return manifest
        } catch {
            try? FileManager.default.removeItem(at: temporary)
            if error is DataError { throw error }
            if let error = error as? FileError { throw DataError(error.message, hint: error.hint) }
            throw DataError(
                "writing \(output.path) failed: \(error.localizedDescription)",
                hint: "check free disk space and permissions; nothing was left at \(output.path).")
        }
    }

    private var skippedRecords = 0

    // MARK: - Stages

    private func readSources() throws -> [SourceRecord] {
        let stageStart = Date()
        var reader = DocumentReader(config.input)
        var records: [SourceRecord] = []
        let allFiles = try config.sources.map { try reader.files(of: $0.path) }
        let totalBytes = allFiles.joined().reduce(0) { total, url in
            total + ((try? FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int) ?? 0)
        }
        var doneBytes = 0
        for (s, source) in config.sources.enumerated() {
            let before = documents.count
            var files: [SourceFile] = []
            for (f, url) in allFiles[s].enumerated() {
                let file = try reader.read(url, source: s, file: f, into: &documents)
                files.append(file)
                doneBytes += file.bytes
                progress(PreparationProgress(stage: "read", done: doneBytes, total: totalBytes, unit: "bytes"))
            }
            let root = URL(fileURLWithPath: source.path).standardizedFileURL.path
            sourceFiles.append(
                allFiles[s].map { url in
                    let path = url.standardizedFileURL.path
                    return path.hasPrefix(root + "/") ? String(path.dropFirst(root.count + 1)) : source.path
                })
            records.append(
                SourceRecord(
                    name: source.name, path: source.path, weight: source.weight, licence: source.licence, files: files,
                    documentsRead: documents.count - before, bytesRead: files.reduce(0) { $0 + $1.bytes },
                    trainDocuments: 0, trainTokens: 0, validationDocuments: 0, validationTokens: 0))
        }
        skippedRecords = reader.skippedRecords
        status = [DocumentStatus](repeating: .kept, count: documents.count)
        hashes = [ContentHash](repeating: ContentHash([]), count: documents.count)
        characters = documents.map { document in
            TextCleaner.scalarCount(document.text) + TextCleaner.scalarCount(document.answer ?? [])
        }
        var removed: [String: Int] = [:]
        if reader.skippedRecords > 0 { removed["bad_records_skipped"] = reader.skippedRecords }
        stages.append(
            stage("read", input: documents.count + reader.skippedRecords, removed: removed, since: stageStart))
        guard !documents.isEmpty else {
            throw DataError(
                "the sources hold no documents", hint: "check the input files are not empty (and the --include globs).")
        }
        return records
    }

    /// What cleaning decided about one document.
    struct CleaningOutcome {
        var status: DocumentStatus
        var hash = ContentHash([])
        var characters = 0
        var replacedInvalid: Bool
        var controls: Int
    }

    /// Cleaning, length and language filters, and the content hash, on all threads.
    private func cleanAndFilter() throws {
        let stageStart = Date()
        let cleaner = TextCleaner(config.cleaning)
        let english = EnglishFilter()
        let config = self.config
        // Each worker replaces its documents' text in place (the raw text is freed on the workers too).
        let outcomes = documents.withUnsafeMutableBufferPointer { documents in
            parallelMap(stage: "clean", count: documents.count) { i, _ in
                DataPreparer.clean(&documents[i], cleaner: cleaner, english: english, config: config)
            }
        }
        var replaced = 0
        var controlCount = 0
        for (i, result) in outcomes.enumerated() {
            let result = result!
            (status[i], hashes[i], characters[i]) = (result.status, result.hash, result.characters)
            if result.replacedInvalid && result.status != .invalidEncoding { replaced += 1 }
            controlCount += result.controls
        }
        var removed: [String: Int] = [:]
        for rule in [DocumentStatus.invalidEncoding, .empty, .tooShort, .tooLong, .notEnglish] {
            let count = status.filter { $0 == rule }.count
            if count > 0 { removed[rule.rawValue] = count }
        }
        if replaced > 0 { removed["invalid_utf8_replaced (kept)"] = replaced }
        if controlCount > 0 { removed["control_characters_removed (characters)"] = controlCount }
        stages.append(stage("clean+filter", input: documents.count, removed: removed, since: stageStart))
        guard status.contains(.kept) else {
            let reasons = removed.map { "\($0.key): \($0.value)" }.sorted().joined(separator: ", ")
            throw DataError(
                "every document was filtered out (\(reasons))",
                hint:
                    "loosen the filters (--min-chars, --max-chars, --english-only, --invalid-utf8) or check the input.")
        }
    }

    /// Cleans one document and decides whether it stays (by encoding, emptiness, length, language).
    static func clean(
        _ document: inout Document, cleaner: TextCleaner, english: EnglishFilter, config: PreparationConfig
    ) -> CleaningOutcome {
        let text = cleaner.clean(document.text)
        let answer = document.answer.map { cleaner.clean($0) }
        var result = CleaningOutcome(
            status: .kept, replacedInvalid: text.hadInvalidUTF8 || answer?.hadInvalidUTF8 == true,
            controls: text.removedControlCharacters + (answer?.removedControlCharacters ?? 0))
        guard let cleanText = text.bytes, answer == nil || answer!.bytes != nil else {
            result.status = .invalidEncoding
            return result
        }
        document.text = cleanText
        document.answer = answer?.bytes
        let full = fullText(document)
        let count = TextCleaner.scalarCount(full)
        result.characters = count
        result.hash = ContentHash(full)
        if count == 0 || cleanText.isEmpty || document.answer?.isEmpty == true {
            result.status = .empty
        } else if count < config.minCharacters {
            result.status = .tooShort
        } else if let most = config.maxCharacters, count > most {
            result.status = .tooLong
        } else if config.englishOnly && !english.accepts(full) {
            result.status = .notEnglish
        }
        return result
    }

    /// The text a document is compared, hashed and measured by (question and answer joined by a newline).
    static func fullText(_ document: Document) -> [UInt8] {
        document.answer.map { document.text + [0x0A] + $0 } ?? document.text
    }

    /// Keeps the first document of each identical cleaned text.
    private func removeExactDuplicates() {
        let stageStart = Date()
        let input = status.filter { $0 == .kept }.count
        var first: [ContentHash: Int] = [:]
        if config.removeExactDuplicates {
            for i in documents.indices where status[i] == .kept {
                if let original = first[hashes[i]] {
                    status[i] = .duplicate
                    duplicateOf[i] = original
                } else {
                    first[hashes[i]] = i
                }
            }
        }
        let removed = input - status.filter { $0 == .kept }.count
        stages.append(
            stage("exact-dedup", input: input, removed: removed > 0 ? ["duplicate": removed] : [:], since: stageStart))
    }

    /// MinHash signatures on all threads, then LSH in document order (the first of a group is kept).
    private func removeNearDuplicates() throws -> NearDuplicateRecord {
        let stageStart = Date()
        let settings = config.nearDuplicates
        let (bands, rows) = settings.banding
        let input = status.filter { $0 == .kept }.count
        var record = NearDuplicateRecord(bands: bands, rows: rows, clusters: 0, largestCluster: 0, examples: [])
        guard config.removeNearDuplicates else {
            stages.append(stage("near-dedup", input: input, removed: [:], since: stageStart))
            return record
        }
        guard settings.threshold > 0, settings.threshold <= 1, settings.permutations >= 1, settings.shingleWords >= 1
        else {
            throw DataError(
                "near-duplicate settings out of range (threshold \(settings.threshold), \(settings.permutations) permutations, \(settings.shingleWords)-word shingles)",
                hint: "use a threshold in (0, 1], at least 1 permutation and 1-word shingles.")
        }
        let hasher = MinHasher(settings)
        let width = settings.permutations
        var signatures = [UInt32](repeating: 0, count: documents.count * width)
        let hasSignature = documents.withUnsafeBufferPointer { documents in
            status.withUnsafeBufferPointer { status in
                signatures.withUnsafeMutableBufferPointer { signatures in
                    parallelMap(stage: "minhash", count: documents.count) { i, _ -> Bool in
                        guard status[i] == .kept else { return false }
                        let slot = UnsafeMutableBufferPointer(rebasing: signatures[i * width..<(i + 1) * width])
                        return hasher.signature(of: DataPreparer.fullText(documents[i]), into: slot)
                    }
                }
            }
        }
        var index = NearDuplicateIndex(settings, capacity: input)
        var clusterSizes: [Int: Int] = [:]
        signatures.withUnsafeBufferPointer { signatures in
            for i in documents.indices where status[i] == .kept && hasSignature[i] == true {
                if let original = index.check(i, signatures: signatures) {
                    status[i] = .nearDuplicate
                    duplicateOf[i] = original
                    clusterSizes[original, default: 1] += 1
                    if record.examples.count < 10 { record.examples.append([documentID(original), documentID(i)]) }
                }
            }
        }
        record.clusters = clusterSizes.count
        record.largestCluster = clusterSizes.values.max() ?? 0
        let removed = input - status.filter { $0 == .kept }.count
        stages.append(
            stage(
                "near-dedup", input: input, removed: removed > 0 ? ["near_duplicate": removed] : [:], since: stageStart)
        )
        return record
    }

    /// Token ids (and loss masks of question/answer pairs) of the kept documents, on all threads.
    private func tokenize(_ encoder: DocumentEncoder) -> ([[Int32]], [[UInt8]?]) {
        let stageStart = Date()
        var caches = (0..<threads).map { _ in MergeCache() }
        let encoded = documents.withUnsafeBufferPointer { documents in
            status.withUnsafeBufferPointer { status in
                caches.withUnsafeMutableBufferPointer { caches in
                    parallelMap(stage: "tokenize", count: documents.count) { i, worker in
                        status[i] == .kept ? encoder.encode(documents[i], cache: &caches[worker]) : nil
                    }
                }
            }
        }
        let tokens = encoded.map { $0?.tokens ?? [] }
        let masks = encoded.map { $0?.mask }
        let kept = status.filter { $0 == .kept }.count
        stages.append(
            stage("tokenize", input: kept, removed: [:], tokens: tokens.reduce(0) { $0 + $1.count }, since: stageStart))
        return (tokens, masks)
    }

    // MARK: - Output

    /// Writes the shards of one split: documents in input order, each `uses` times (repeats as later passes).
    private func writeSplit(
        _ name: String, members: [Int], uses: [Int], tokens: [[Int32]], masks: [[UInt8]?], hasMask: Bool, folder: URL
    ) throws -> SplitRecord {
        let kind = ShardKind.tokens(forVocabularySize: tokenizer.vocabularySize)
        var record = SplitRecord(documents: 0, tokens: 0, textBytes: 0, characters: 0, targetTokens: 0, shards: [])
        var buffer: [Int32] = []
        var maskBuffer: [Int32] = []
        let shardTokens = max(1, config.shardTokens)
        func flush() throws {
            guard !buffer.isEmpty else { return }
            let file = String(format: "%@_%06d.bin", name, record.shards.count)
            let url = folder.appendingPathComponent(file)
            let digest = try ShardWriter.write(buffer, kind: kind, to: url)
            var maskFile: String?
            if hasMask {
                maskFile = String(format: "%@_%06d.mask.bin", name, record.shards.count)
                _ = try ShardWriter.write(maskBuffer, kind: .mask, to: folder.appendingPathComponent(maskFile!))
            }
            record.shards.append(
                ShardRecord(file: file, maskFile: maskFile, tokens: buffer.count, sha256: digest))
            buffer.removeAll(keepingCapacity: true)
            maskBuffer.removeAll(keepingCapacity: true)
        }
        let passes = members.map { uses[$0] }.max() ?? 0
        for pass in 0..<passes {
            for index in members where uses[index] > pass {
                let ids = tokens[index]
                record.documents += 1
                record.tokens += ids.count
                record.textBytes += DataPreparer.fullText(documents[index]).count
                record.characters += characters[index]
                let mask = masks[index]
                record.targetTokens += mask.map { $0.reduce(0) { $0 + Int($1) } } ?? ids.count
                var offset = 0
                while offset < ids.count {
                    let take = min(ids.count - offset, shardTokens - buffer.count)
                    buffer += ids[offset..<offset + take]
                    if hasMask {
                        if let mask {
                            maskBuffer += mask[offset..<offset + take].map { Int32($0) }
                        } else {
                            maskBuffer += [Int32](repeating: 1, count: take)
                        }
                    }
                    offset += take
                    if buffer.count == shardTokens { try flush() }
                }
            }
        }
        try flush()
        return record
    }

    /// documents.jsonl: one line per input document — id, source, status, split, tokens, uses, hash, and the
    /// document it duplicates.
    private func writeDocumentList(to url: URL, isValidation: [Bool], uses: [Int], tokens: [[Int32]]) throws {
        var out: [UInt8] = []
        out.reserveCapacity(documents.count * 200)
        let names = config.sources.map { JSONNumber.string($0.name) }
        let fileIDs = config.sources.indices.map { s in
            sourceFiles[s].map { Array(JSONNumber.string("\(config.sources[s].name):\($0)#").utf8.dropLast()) }
        }
        func number(_ value: Int) {
            guard value >= 10 else { return out.append(UInt8(48 + value)) }
            number(value / 10)
            out.append(UInt8(48 + value % 10))
        }
        func id(_ i: Int) {
            out += fileIDs[documents[i].source][documents[i].file]
            number(documents[i].ordinal)
            out.append(0x22)
        }
        let hexDigits = Array("0123456789abcdef".utf8)
        // Keys in sorted order, as JSONSerialization would write them (it, and string interpolation, are far
        // slower for hundreds of thousands of lines).
        for i in documents.indices {
            out += #"{"characters":"#.utf8
            number(characters[i])
            if let original = duplicateOf[i] {
                out += #","duplicate_of":"#.utf8
                id(original)
            }
            out += #","hash":""#.utf8
            for word in [hashes[i].high, hashes[i].low] {
                for shift in stride(from: 60, through: 0, by: -4) {
                    out.append(hexDigits[Int((word >> UInt64(shift)) & 15)])
                }
            }
            out += #"","id":"#.utf8
            id(i)
            out += #","source":"#.utf8
            out += names[documents[i].source].utf8
            if status[i] == .kept || status[i] == .mixedOut {
                out += (isValidation[i] ? #","split":"validation""# : #","split":"train""#).utf8
            }
            out += #","status":""#.utf8
            out += status[i].rawValue.utf8
            out.append(0x22)
            if status[i] == .kept {
                out += #","tokens":"#.utf8
                number(tokens[i].count)
                out += #","uses":"#.utf8
                number(uses[i])
            }
            out += "}\n".utf8
        }
        try Data(out).write(to: url)
    }

    /// "source:relative/path#ordinal".
    func documentID(_ i: Int) -> String {
        let document = documents[i]
        let source = config.sources[document.source]
        let files = sourceFiles[document.source]
        let path = files.isEmpty ? source.path : files[document.file]
        return "\(source.name):\(path)#\(document.ordinal)"
    }

    private var sourceFiles: [[String]] = []

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

    /// Refuses a mix that repeats a source more than `maximumUpsample` times (a tiny source with a large
    /// weight would otherwise silently become gigabytes of copies).
    private func checkUpsampling(uses: [Int], tokens: [[Int32]]) throws {
        let limit = config.maximumUpsample ?? 10
        var used = [Int](repeating: 0, count: config.sources.count)
        var available = used
        for (index, document) in documents.enumerated() where status[index] == .kept {
            used[document.source] += uses[index] * tokens[index].count
            available[document.source] += tokens[index].count
        }
        for source in config.sources.indices where available[source] > 0 {
            let times = Double(used[source]) / Double(available[source])
            if times > Double(limit) {
                throw DataError(
                    String(
                        format:
                            "--mix upsample would repeat source %@ %.0f times (%d tokens become %d) to reach its weight",
                        config.sources[source].name, times, available[source], used[source]),
                    hint:
                        "lower that source's weight, add data to it, use --mix downsample, or allow it with --max-upsample \(Int(times.rounded(.up)))."
                )
            }
        }
    }

    // MARK: - Helpers

    private func stage(
        _ name: String, input: Int, removed: [String: Int], tokens: Int? = nil, since start: Date
    ) -> StageRecord {
        let kept = documents.indices.filter { status[$0] == .kept }
        return StageRecord(
            stage: name, documentsIn: input, documentsOut: kept.count,
            charactersOut: kept.reduce(0) { $0 + characters[$1] }, tokensOut: tokens, removed: removed,
            seconds: Date().timeIntervalSince(start))
    }

    /// Runs `body(i, worker)` for every document index on all threads, in chunks, reporting progress between chunks.
    private func parallelForEach(_ count: Int, stage: String, _ body: (Int, Int) -> Void) {
        let chunk = max(threads * 64, 4096)
        var done = 0
        while done < count {
            let end = min(count, done + chunk)
            let first = done
            let workers = min(threads, end - first)
            withoutActuallyEscaping(body) { body in
                let job = UncheckedSendable(body)  // workers touch disjoint indices only
                DispatchQueue.concurrentPerform(iterations: workers) { worker in
                    for i in stride(from: first + worker, to: end, by: workers) { job.value(i, worker) }
                }
            }
            done = end
            progress(PreparationProgress(stage: stage, done: done, total: count, unit: "documents"))
        }
    }

    /// `transform(i, worker)` of every document index, computed on all threads (nil where it returns nil).
    /// (`count` is the number of documents, passed in: a caller may hold the documents' buffer mutably.)
    private func parallelMap<T>(stage: String, count: Int, _ transform: (_ index: Int, _ worker: Int) -> T?) -> [T?] {
        var results = [T?](repeating: nil, count: count)
        results.withUnsafeMutableBufferPointer { results in
            parallelForEach(results.count, stage: stage) { i, worker in results[i] = transform(i, worker) }
        }
        return results
    }
}

/// A value handed to worker threads that only touch disjoint parts of it.
struct UncheckedSendable<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
