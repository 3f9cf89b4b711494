// PreparationPass: the streaming half of `fledge data prepare`. Sources are read in order and flow through
// clean+filter, exact dedup, near dedup and tokenisation in batches of a few megabytes; the per-document steps
// run on all threads, the dedup decisions in document order (so the first of a group is kept, as in a single
// pass over the whole corpus). What stays in memory is a record per document and the dedup indexes (a content
// hash per kept text, MinHash band keys); the tokens, loss masks and signatures go to work files.

import FledgeFiles
import FledgeTokenizer
import Foundation

final class PreparationPass {
    let config: PreparationConfig
    let encoder: DocumentEncoder
    let threads: Int
    /// The element type of the token work file and the shards.
    let kind: ShardKind
    let batchBytes: Int
    let readBlockBytes: Int
    let tokenizerSHA256: String
    /// The work folder (kept when a run is interrupted) and the least time between checkpoints.
    let work: URL
    let checkpointSeconds: Double
    let progress: (PreparationProgress) -> Void
    /// Asked between batches (and between files being checked for a resume): true stops the run with
    /// `PreparationInterrupted`.
    let shouldStop: () -> Bool

    /// One record per document read, in input order.
    private(set) var records: [DocumentRecord] = []
    /// Each source's files as read.
    private var files: [[SourceFile]] = []
    /// Each source's files relative to its path (for document ids).
    private(set) var sourceFiles: [[String]] = []
    private(set) var skippedRecords = 0
    private(set) var skipped = SkippedRecords()
    /// Scalars of the documents as read, before cleaning.
    private(set) var charactersRead = 0
    private(set) var replacedInvalid = 0
    private(set) var controlsRemoved = 0
    private(set) var nearRecord: NearDuplicateRecord
    /// Some document has a loss mask (question/answer data).
    private(set) var hasMask = false
    /// Seconds in read, clean+filter, exact-dedup, near-dedup and tokenize (reading runs beside the other stages
    /// on a thread of its own: its seconds are those the stages waited for it).
    private(set) var seconds = [Double](repeating: 0, count: 5)

    /// Token ids of the tokenised documents (in `kind`'s element type), their loss masks, and the signatures of
    /// the documents kept by near dedup.
    let tokens: SpillFile
    let masks: SpillFile
    private let signatures: SpillFile
    /// The records and signature slots written at checkpoints, and the checkpoint this run continues from.
    private let recordFile: SpillFile
    private let slotFile: SpillFile
    private var checkpoint: PreparationCheckpoint?
    private var savedRecords = 0
    private var savedSlots = 0
    /// The files read by an earlier, interrupted run and reused (count, bytes).
    private(set) var reused = (files: 0, bytes: 0)
    private var tokenCount = 0
    private var maskCount = 0

    private let cleaner: TextCleaner
    private let english = EnglishFilter()
    private let hasher: MinHasher
    private var index: NearDuplicateIndex
    /// Content hash → the first document with that cleaned text.
    private var firstOfHash: [ContentHash: Int32] = [:]
    /// The document of each signature slot in `signatures` (the near-dedup index holds slots).
    private var slotDocument: [Int32] = []
    /// Signatures of this batch's kept documents, written to `signatures` at its end.
    private var pendingSignatures: [UInt32] = []
    private var clusterSizes: [Int32: Int] = [:]
    private var caches: [MergeCache]
    private var totalBytes = 0
    private var doneBytes = 0

    init(
        config: PreparationConfig, encoder: DocumentEncoder, tokenizerSHA256: String, threads: Int, work: URL,
        batchBytes: Int, readBlockBytes: Int, checkpointSeconds: Double,
        progress: @escaping (PreparationProgress) -> Void, shouldStop: @escaping () -> Bool = { false }
    ) throws {
        self.config = config
        self.encoder = encoder
        self.tokenizerSHA256 = tokenizerSHA256
        self.threads = threads
        self.work = work
        self.batchBytes = max(1, batchBytes)
        self.readBlockBytes = max(1, readBlockBytes)
        self.checkpointSeconds = checkpointSeconds
        self.progress = progress
        self.shouldStop = shouldStop
        kind = ShardKind.tokens(forVocabularySize: encoder.tokenizer.vocabularySize)
        cleaner = TextCleaner(config.cleaning)
        hasher = MinHasher(config.nearDuplicates)
        index = NearDuplicateIndex(config.nearDuplicates)
        let (bands, rows) = config.nearDuplicates.banding
        nearRecord = NearDuplicateRecord(bands: bands, rows: rows, clusters: 0, largestCluster: 0, examples: [])
        caches = (0..<threads).map { _ in MergeCache() }
        // An earlier run's checkpoint made with these settings and this tokenizer: its work files are kept up
        // to the recorded lengths (the input files are checked when reading starts).
        let fingerprint = PreparationCheckpoint.fingerprint(config)
        let found = PreparationCheckpoint.load(from: work).flatMap {
            $0.config == fingerprint && $0.tokenizerSHA256 == tokenizerSHA256 ? $0 : nil
        }
        if found == nil {
            try? FileManager.default.removeItem(at: work)
            do {
                try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
            } catch {
                throw DataError(
                    "cannot create \(work.path): \(error.localizedDescription)",
                    hint: "check that the output's parent folder is writable.")
            }
        }
        let file = { (name: String, kept: Int?) in try SpillFile(work.appendingPathComponent(name), keeping: kept) }
        tokens = try file("tokens.bin", found?.tokenBytes)
        masks = try file("masks.bin", found?.maskBytes)
        signatures = try file("signatures.bin", found?.signatureBytes)
        recordFile = try file("records.bin", found.map { $0.records * DocumentRecord.encodedBytes })
        slotFile = try file("slots.bin", found.map { $0.slots * 4 })
        checkpoint = found
        for file in [tokens, masks, signatures, recordFile, slotFile] {
            file.estimateNeed = { [unowned self] in self.diskNeed() }
        }
    }

    /// Bytes the whole preparation needs on disk, projected from the share of the input read so far: the work
    /// files, then shards of the same size and documents.jsonl beside them.
    func diskNeed() -> Int {
        let share = max(0.01, Double(doneBytes) / Double(max(1, totalBytes)))
        let work = Double(tokens.bytes + masks.bytes + signatures.bytes) / share
        let shards = Double(tokens.bytes + masks.bytes) / share
        return Int(work + shards + Double(records.count) / share * 160)
    }

    /// Marks a kept document that the mix leaves out.
    func markMixedOut(_ index: Int) { records[index].status = .mixedOut }

    // MARK: - Reading

    /// Reads every source and runs the streaming stages over their documents (after the files an earlier,
    /// interrupted run completed, when its checkpoint holds).
    func readSources() throws {
        var reader = DocumentReader(config.input)
        reader.blockBytes = readBlockBytes
        let allFiles = try config.sources.map { try reader.files(of: $0.path) }
        totalBytes = allFiles.joined().reduce(0) { total, url in
            total + ((try? FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int) ?? 0)
        }
        for (s, source) in config.sources.enumerated() {
            let root = URL(fileURLWithPath: source.path).standardizedFileURL.path
            sourceFiles.append(
                allFiles[s].map { url in
                    let path = url.standardizedFileURL.path
                    return path.hasPrefix(root + "/") ? String(path.dropFirst(root.count + 1)) : source.path
                })
        }
        files = config.sources.map { _ in [] }
        let order = allFiles.enumerated().flatMap { s, urls in urls.indices.map { (source: s, file: $0, url: urls[$0]) }
        }
        var skippedBefore = 0
        var skippedFirst = SkippedRecords()
        var secondsBefore = [Double](repeating: 0, count: seconds.count)
        if let checkpoint, try resume(from: checkpoint, order: order) {
            skippedBefore = checkpoint.skippedRecords
            skippedFirst = checkpoint.skipped
            secondsBefore = checkpoint.seconds
        } else if checkpoint != nil {
            try restart()
        }
        // A reading thread cuts the files into batches while this one runs the stages over the previous batch.
        let handoff = Handoff(capacity: 2)
        let readerDone = DispatchSemaphore(value: 0)
        let job = UncheckedSendable(
            (reader, order, reused.files, batchBytes, checkpointSeconds, handoff))  // the thread's own copies
        Thread.detachNewThread {
            defer { readerDone.signal() }
            var (reader, order, firstFile, batchBytes, checkpointSeconds, handoff) = job.value
            var batch: [Document] = []
            var batchText = 0
            var lastCheckpoint = Date()
            do {
                for k in firstFile..<order.count {
                    let item = order[k]
                    let file = try reader.read(item.url, source: item.source, file: item.file) { document, position in
                        batchText += document.text.count + (document.answer?.count ?? 0)
                        batch.append(document)
                        if batchText >= batchBytes {
                            guard handoff.put(.batch(batch, position: position)) else { throw CancellationError() }
                            (batch, batchText) = ([], 0)
                        }
                    }
                    // A checkpoint now and then, at a file's end, and after the last file (the split and the mix
                    // may still refuse the result; a rerun with other split settings then starts from here).
                    let checkpoint =
                        k + 1 == order.count || Date().timeIntervalSince(lastCheckpoint) >= checkpointSeconds
                    if checkpoint && !batch.isEmpty {
                        guard handoff.put(.batch(batch, position: file.bytes)) else { return }
                        (batch, batchText) = ([], 0)
                    }
                    guard handoff.put(.fileDone(k, file, reader: reader, checkpoint: checkpoint)) else { return }
                    if checkpoint { lastCheckpoint = Date() }
                }
                if !batch.isEmpty { guard handoff.put(.batch(batch, position: 0)) else { return } }
                _ = handoff.put(.finished)
            } catch is CancellationError {
            } catch {
                _ = handoff.put(.failed(error))
            }
        }
        defer {
            handoff.cancel()
            readerDone.wait()
        }
        var lastReader = reader
        var fileStart = doneBytes
        reading: while true {
            let waitStart = Date()
            let next = handoff.take()
            seconds[0] += Date().timeIntervalSince(waitStart)
            try stopIfAsked()
            switch next {
            case .batch(var batch, let position):
                try process(&batch)
                report(fileStart + position)
            case .fileDone(let k, let file, let reader, let checkpoint):
                files[order[k].source].append(file)
                doneBytes += file.bytes
                fileStart = doneBytes
                lastReader = reader
                if checkpoint {
                    var spent = zip(secondsBefore, seconds).map { $0 + $1 }
                    spent[0] = secondsBefore[0] + seconds[0]
                    try saveCheckpoint(
                        completed: Array(order[...k]), skipped: skippedBefore + reader.skippedRecords,
                        reasons: skippedFirst.adding(reader), seconds: spent)
                }
            case .finished: break reading
            case .failed(let error): throw error
            }
        }
        report(doneBytes)
        skippedRecords = skippedBefore + lastReader.skippedRecords
        skipped = skippedFirst.adding(lastReader)
        seconds = zip(secondsBefore, seconds).map { $0 + $1 }
        nearRecord.clusters = clusterSizes.count
        nearRecord.largestCluster = clusterSizes.values.max() ?? 0
        // A pass that kept nothing is no work to continue from: only other settings or inputs can help.
        if !records.contains(where: { $0.status.removedAt > 1 }) { try restart() }
        guard !records.isEmpty else {
            throw DataError(
                "the sources hold no documents", hint: "check the input files are not empty (and the --include globs).")
        }
        guard records.contains(where: { $0.status.removedAt > 1 }) else {
            let reasons = cleaningRemovals().map { "\($0.key): \($0.value)" }.sorted().joined(separator: ", ")
            throw DataError(
                "every document was filtered out (\(reasons))",
                hint:
                    "loosen the filters (--min-chars, --max-chars, --english-only, --invalid-utf8) or check the input.")
        }
    }

    /// The sources' records for the manifest (counts of the splits are filled in when the shards are written).
    var sourceRecords: [SourceRecord] {
        var documents = [Int](repeating: 0, count: config.sources.count)
        for record in records { documents[Int(record.source)] += 1 }
        return config.sources.enumerated().map { s, source in
            SourceRecord(
                name: source.name, path: source.path, weight: source.weight, licence: source.licence, files: files[s],
                documentsRead: documents[s], bytesRead: files[s].reduce(0) { $0 + $1.bytes }, trainDocuments: 0,
                trainTokens: 0, validationDocuments: 0, validationTokens: 0)
        }
    }

    // MARK: - Checkpoints

    /// Writes the records and slots since the last checkpoint, syncs the work files, then progress.json.
    private func saveCheckpoint(
        completed: [(source: Int, file: Int, url: URL)], skipped: Int, reasons: SkippedRecords, seconds: [Double]
    ) throws {
        var bytes: [UInt8] = []
        bytes.reserveCapacity((records.count - savedRecords) * DocumentRecord.encodedBytes)
        for record in records[savedRecords...] { record.encode(into: &bytes) }
        try recordFile.append(bytes)
        try slotFile.append(Array(slotDocument[savedSlots...]))
        (savedRecords, savedSlots) = (records.count, slotDocument.count)
        for file in [tokens, masks, signatures, recordFile, slotFile] { file.sync() }
        var done: [PreparationCheckpoint.CompletedFile] = []
        var seen = [Int](repeating: 0, count: config.sources.count)
        for item in completed {
            done.append(.init(source: item.source, file: item.file, record: files[item.source][seen[item.source]]))
            seen[item.source] += 1
        }
        let checkpoint = PreparationCheckpoint(
            config: PreparationCheckpoint.fingerprint(config), tokenizerSHA256: tokenizerSHA256, files: done,
            records: records.count, tokenBytes: tokens.bytes, maskBytes: masks.bytes, signatureBytes: signatures.bytes,
            slots: slotDocument.count, charactersRead: charactersRead, replacedInvalid: replacedInvalid,
            controlsRemoved: controlsRemoved, skippedRecords: skipped, skipped: reasons, seconds: seconds)
        do {
            try checkpoint.write(to: work)
        } catch let error as FileError {
            throw DataError(error.message, hint: error.hint)
        }
    }

    /// Continues from `checkpoint` when its files are the first of this run's and unchanged (same path and
    /// SHA-256); false when they are not.
    private func resume(
        from checkpoint: PreparationCheckpoint, order: [(source: Int, file: Int, url: URL)]
    ) throws -> Bool {
        guard checkpoint.files.count <= order.count else { return false }
        for (done, item) in zip(checkpoint.files, order) {
            guard done.source == item.source, done.file == item.file, done.record.path == item.url.path,
                let input = try? InputFile(item.url), input.size == done.record.bytes
            else { return false }
            try stopIfAsked()
            guard try input.sha256().hex == done.record.sha256 else { return false }
        }
        // The records, then the indexes rebuilt from them and from the signatures.
        var bytes = [UInt8](repeating: 0, count: checkpoint.records * DocumentRecord.encodedBytes)
        try bytes.withUnsafeMutableBytes { try recordFile.read(at: 0, into: $0) }
        records.reserveCapacity(checkpoint.records)
        try bytes.withUnsafeBytes { raw in
            for i in 0..<checkpoint.records {
                let at = i * DocumentRecord.encodedBytes
                guard
                    let record = DocumentRecord(
                        decoding: UnsafeRawBufferPointer(rebasing: raw[at..<(at + DocumentRecord.encodedBytes)]))
                else {
                    throw DataError("\(recordFile.url.path) is damaged", hint: "delete \(work.path) and run again.")
                }
                records.append(record)
            }
        }
        slotDocument = [Int32](repeating: 0, count: checkpoint.slots)
        try slotDocument.withUnsafeMutableBytes { try slotFile.read(at: 0, into: $0) }
        (savedRecords, savedSlots) = (records.count, slotDocument.count)
        for (i, record) in records.enumerated() {
            if config.removeExactDuplicates && (record.status == .kept || record.status == .nearDuplicate) {
                if firstOfHash[record.hash] == nil { firstOfHash[record.hash] = Int32(i) }
            }
            if record.status == .nearDuplicate {
                clusterSizes[record.duplicateOf, default: 1] += 1
                if nearRecord.examples.count < 10 {
                    nearRecord.examples.append([documentID(Int(record.duplicateOf)), documentID(i)])
                }
            }
        }
        let width = config.nearDuplicates.permutations
        var signature = [UInt32](repeating: 0, count: width)
        for slot in 0..<slotDocument.count {
            try signature.withUnsafeMutableBytes { try signatures.read(at: slot * width * 4, into: $0) }
            signature.withUnsafeBufferPointer { index.insert($0, id: slot) }
        }
        tokenCount = checkpoint.tokenBytes / kind.elementSize
        maskCount = checkpoint.maskBytes
        hasMask = maskCount > 0
        (charactersRead, replacedInvalid, controlsRemoved) = (
            checkpoint.charactersRead, checkpoint.replacedInvalid, checkpoint.controlsRemoved
        )
        for done in checkpoint.files { files[done.source].append(done.record) }
        doneBytes = checkpoint.files.reduce(0) { $0 + $1.record.bytes }
        reused = (checkpoint.files.count, doneBytes)
        return true
    }

    /// Forgets a checkpoint that does not hold for this run's files: the work files start empty.
    private func restart() throws {
        for file in [tokens, masks, signatures, recordFile, slotFile] { try file.truncate() }
        try? FileManager.default.removeItem(at: work.appendingPathComponent(PreparationCheckpoint.fileName))
        checkpoint = nil
    }

    /// Throws `PreparationInterrupted` once `shouldStop` says so.
    func stopIfAsked() throws {
        if shouldStop() { throw PreparationInterrupted() }
    }

    private func report(_ bytes: Int) {
        progress(
            PreparationProgress(
                stage: "read", done: min(bytes, totalBytes), total: totalBytes, unit: "bytes", documents: records.count)
        )
    }

    /// What clean+filter removed (or changed), by rule.
    func cleaningRemovals() -> [String: Int] {
        var removed: [String: Int] = [:]
        for record in records where record.status.removedAt == 1 { removed[record.status.rawValue, default: 0] += 1 }
        if replacedInvalid > 0 { removed["invalid_utf8_replaced (kept)"] = replacedInvalid }
        if controlsRemoved > 0 { removed["control_characters_removed (characters)"] = controlsRemoved }
        return removed
    }

    // MARK: - One batch

    /// Runs the streaming stages over `batch` (its documents become records `first...`), then empties it.
    private func process(_ batch: inout [Document]) throws {
        guard !batch.isEmpty else { return }
        let first = records.count
        for document in batch {
            records.append(
                DocumentRecord(source: Int32(document.source), file: Int32(document.file), ordinal: document.ordinal))
        }
        timed(1) { cleanAndFilter(&batch, first: first) }
        if config.removeExactDuplicates { timed(2) { removeExactDuplicates(from: first) } }
        if config.removeNearDuplicates { try timed(3) { try removeNearDuplicates(batch, first: first) } }
        try timed(4) { try tokenize(batch, first: first) }
        batch.removeAll(keepingCapacity: true)
    }

    /// Runs `body`, adding its time to stage `stage`'s.
    private func timed(_ stage: Int, _ body: () throws -> Void) rethrows {
        let start = Date()
        try body()
        seconds[stage] += Date().timeIntervalSince(start)
    }

    /// Clean+filter on all threads: each worker replaces its documents' text with the cleaned text in place.
    private func cleanAndFilter(_ batch: inout [Document], first: Int) {
        let (cleaner, english, config) = (self.cleaner, self.english, self.config)
        let outcomes = batch.withUnsafeMutableBufferPointer { documents in
            parallelMap(count: documents.count) { i, _ in
                PreparationPass.clean(&documents[i], cleaner: cleaner, english: english, config: config)
            }
        }
        for (k, outcome) in outcomes.enumerated() {
            let outcome = outcome!
            records[first + k].status = outcome.status
            records[first + k].hash = outcome.hash
            records[first + k].characters = outcome.characters
            records[first + k].textBytes = outcome.textBytes
            charactersRead += outcome.charactersRead
            if outcome.replacedInvalid && outcome.status != .invalidEncoding { replacedInvalid += 1 }
            controlsRemoved += outcome.controls
        }
    }

    /// Exact dedup in document order: the first document of each cleaned text is kept.
    private func removeExactDuplicates(from first: Int) {
        for i in first..<records.count where records[i].status == .kept {
            if let original = firstOfHash[records[i].hash] {
                records[i].status = .duplicate
                records[i].duplicateOf = original
            } else {
                firstOfHash[records[i].hash] = Int32(i)
            }
        }
    }

    /// Tokenisation on all threads; the tokens (and loss masks) go to the work files.
    private func tokenize(_ batch: [Document], first: Int) throws {
        let encoder = self.encoder
        let encoded = batch.withUnsafeBufferPointer { documents in
            records.withUnsafeBufferPointer { records in
                caches.withUnsafeMutableBufferPointer { caches in
                    parallelMap(count: documents.count) { i, worker in
                        records[first + i].status == .kept ? encoder.encode(documents[i], cache: &caches[worker]) : nil
                    }
                }
            }
        }
        var tokenBytes: [UInt8] = []
        var maskBytes: [UInt8] = []
        for (k, result) in encoded.enumerated() {
            guard let result else { continue }
            records[first + k].tokens = result.tokens.count
            records[first + k].tokenOffset = tokenCount
            tokenCount += result.tokens.count
            switch kind {
            case .tokens16:
                for id in result.tokens { withUnsafeBytes(of: UInt16(truncatingIfNeeded: id)) { tokenBytes += $0 } }
            default: result.tokens.withUnsafeBytes { tokenBytes += $0 }
            }
            if let mask = result.mask {
                hasMask = true
                records[first + k].maskOffset = maskCount
                maskCount += mask.count
                maskBytes += mask
            }
        }
        try tokens.append(tokenBytes)
        try masks.append(maskBytes)
    }

    /// MinHash signatures of the batch's kept documents, then each checked against the kept documents before it.
    private func removeNearDuplicates(_ batch: [Document], first: Int) throws {
        let width = config.nearDuplicates.permutations
        var local = [UInt32](repeating: 0, count: batch.count * width)
        let hasher = self.hasher
        let hasSignature = batch.withUnsafeBufferPointer { documents in
            records.withUnsafeBufferPointer { records in
                local.withUnsafeMutableBufferPointer { local in
                    parallelMap(count: documents.count) { i, _ -> Bool in
                        guard records[first + i].status == .kept else { return false }
                        let slot = UnsafeMutableBufferPointer(rebasing: local[i * width..<(i + 1) * width])
                        return hasher.signature(of: PreparationPass.fullText(documents[i]), into: slot)
                    }
                }
            }
        }
        let flushed = slotDocument.count - pendingSignatures.count / width
        try local.withUnsafeBufferPointer { local in
            for k in batch.indices where records[first + k].status == .kept && hasSignature[k] == true {
                let signature = UnsafeBufferPointer(rebasing: local[k * width..<(k + 1) * width])
                let found = try index.check(signature, id: slotDocument.count) { slot, buffer in
                    if slot >= flushed {
                        let start = (slot - flushed) * width
                        for j in 0..<width { buffer[j] = pendingSignatures[start + j] }
                    } else {
                        try signatures.read(at: slot * width * 4, into: UnsafeMutableRawBufferPointer(buffer))
                    }
                }
                if let found {
                    let original = slotDocument[found]
                    records[first + k].status = .nearDuplicate
                    records[first + k].duplicateOf = original
                    clusterSizes[original, default: 1] += 1
                    if nearRecord.examples.count < 10 {
                        nearRecord.examples.append([documentID(Int(original)), documentID(first + k)])
                    }
                } else {
                    slotDocument.append(Int32(first + k))
                    pendingSignatures += signature
                }
            }
        }
        try signatures.append(pendingSignatures)
        pendingSignatures.removeAll(keepingCapacity: true)
    }

    /// "source:relative/path#ordinal".
    func documentID(_ i: Int) -> String {
        let record = records[i]
        let source = config.sources[Int(record.source)]
        let files = sourceFiles[Int(record.source)]
        let path = files.isEmpty ? source.path : files[Int(record.file)]
        return "\(source.name):\(path)#\(record.ordinal)"
    }

    // MARK: - Cleaning one document

    /// What cleaning decided about one document.
    struct CleaningOutcome {
        var status: DocumentStatus
        var hash = DocumentRecord.noHash
        var characters = 0
        var textBytes = 0
        var charactersRead = 0
        var replacedInvalid: Bool
        var controls: Int
    }

    /// Cleans one document and decides whether it stays (by encoding, emptiness, length, language).
    static func clean(
        _ document: inout Document, cleaner: TextCleaner, english: EnglishFilter, config: PreparationConfig
    ) -> CleaningOutcome {
        let read = TextCleaner.scalarCount(document.text) + TextCleaner.scalarCount(document.answer ?? [])
        let text = cleaner.clean(document.text)
        let answer = document.answer.map { cleaner.clean($0) }
        var result = CleaningOutcome(
            status: .kept, charactersRead: read,
            replacedInvalid: text.hadInvalidUTF8 || answer?.hadInvalidUTF8 == true,
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
        result.textBytes = full.count
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

    // MARK: - Threads

    /// `transform(i, worker)` for every index below `count`, on all threads (nil where it returns nil).
    private func parallelMap<T>(count: Int, _ transform: (_ index: Int, _ worker: Int) -> T?) -> [T?] {
        var results = [T?](repeating: nil, count: count)
        let workers = min(threads, count)
        results.withUnsafeMutableBufferPointer { results in
            withoutActuallyEscaping(transform) { transform in
                let job = UncheckedSendable((transform, results))  // workers touch disjoint indices only
                DispatchQueue.concurrentPerform(iterations: workers) { worker in
                    for i in stride(from: worker, to: count, by: workers) { job.value.1[i] = job.value.0(i, worker) }
                }
            }
        }
        return results
    }
}

/// A value handed to worker threads that only touch disjoint parts of it.
struct UncheckedSendable<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}

/// What the reading thread hands to the stages: batches of documents in order, each file's end (its record, the
/// reader's skip counts so far, and whether a checkpoint is due), then the end or an error.
enum ReadingEvent {
    case batch([Document], position: Int)
    case fileDone(Int, SourceFile, reader: DocumentReader, checkpoint: Bool)
    case finished
    case failed(any Error)
}

/// A bounded queue between the reading thread and the stages: `put` waits while `capacity` events wait.
final class Handoff: @unchecked Sendable {
    private var events: [ReadingEvent] = []
    private let condition = NSCondition()
    private let capacity: Int
    private var cancelled = false

    init(capacity: Int) { self.capacity = capacity }

    /// Queues `event`; false once the stages have stopped (the reader then stops too).
    func put(_ event: ReadingEvent) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while events.count >= capacity && !cancelled { condition.wait() }
        guard !cancelled else { return false }
        events.append(event)
        condition.broadcast()
        return true
    }

    func take() -> ReadingEvent {
        condition.lock()
        defer { condition.unlock() }
        while events.isEmpty { condition.wait() }
        condition.broadcast()
        return events.removeFirst()
    }

    /// The stages stopped (done or failed): a waiting or later `put` returns false.
    func cancel() {
        condition.lock()
        cancelled = true
        events.removeAll()
        condition.broadcast()
        condition.unlock()
    }
}
