// PreparationOutput: the second half of `fledge data prepare`. The split and the mix are decided from the
// documents' records (hash, source, token count), then the shards are written front to back from the token
// work file (documents in input order, repeats as later passes), with documents.jsonl and the stage counts.

import FledgeFiles
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

final class PreparationOutput {
    let pass: PreparationPass
    let folder: URL
    let progress: (PreparationProgress) -> Void
    private(set) var stages: [StageRecord] = []
    var hasMask: Bool { pass.hasMask }
    private var config: PreparationConfig { pass.config }
    private var records: [DocumentRecord] { pass.records }
    private var written = 0
    private var toWrite = 0

    init(pass: PreparationPass, folder: URL, progress: @escaping (PreparationProgress) -> Void) throws {
        self.pass = pass
        self.folder = folder
        self.progress = progress
    }

    /// The stages after the pass: split+mix, then write (shards, documents.jsonl); returns the splits and the
    /// sources' records. `stages` then holds every stage's counts.
    func write() throws -> ([String: SplitRecord], [SourceRecord]) {
        stages = passStages()
        let plan = try splitAndMix()
        let writeStart = Date()
        let members = ["train", "validation"].map { name in
            plan.alive.filter { plan.isValidation[$0] == (name == "validation") }
        }
        toWrite = members.joined().reduce(0) { $0 + pass.records[$1].tokens * Int(plan.uses[$1]) }
        try checkFreeSpace()
        var splits: [String: SplitRecord] = [:]
        for (name, list) in zip(["train", "validation"], members) {
            splits[name] = try writeSplit(name, members: list, uses: plan.uses)
        }
        var sources = pass.sourceRecords
        for index in plan.alive where plan.uses[index] > 0 {
            let (side, use, tokens) = (plan.isValidation[index], Int(plan.uses[index]), pass.records[index].tokens)
            let source = Int(pass.records[index].source)
            sources[source].trainDocuments += side ? 0 : use
            sources[source].trainTokens += side ? 0 : use * tokens
            sources[source].validationDocuments += side ? use : 0
            sources[source].validationTokens += side ? use * tokens : 0
        }
        try DocumentList.write(
            pass, isValidation: plan.isValidation, uses: plan.uses,
            to: folder.appendingPathComponent("documents.jsonl"), need: { [unowned self] in self.outputBytes })
        stages.append(
            stage(
                "write", 6, input: plan.trainCount + plan.validationCount, removed: [:],
                tokens: splits.values.reduce(0) { $0 + $1.tokens }, seconds: Date().timeIntervalSince(writeStart)))
        return (splits, sources)
    }

    /// The counts of the streaming pass's stages (read, clean+filter, exact-dedup, near-dedup, tokenize).
    private func passStages() -> [StageRecord] {
        let records = pass.records
        return ["read", "clean+filter", "exact-dedup", "near-dedup", "tokenize"].enumerated().map { k, name in
            var removed: [String: Int] = [:]
            var input = records.filter { $0.status.removedAt > k - 1 }.count
            var tokens: Int?
            switch k {
            case 0:
                input = records.count + pass.skippedRecords
                if pass.skippedRecords > 0 { removed["bad_records_skipped"] = pass.skippedRecords }
            case 1: removed = pass.cleaningRemovals()
            case 2, 3:
                let count = records.filter { $0.status.removedAt == k }.count
                if count > 0 { removed[k == 2 ? "duplicate" : "near_duplicate"] = count }
            default: tokens = records.reduce(0) { $0 + ($1.status.removedAt > 3 ? $1.tokens : 0) }
            }
            return stage(name, k, input: input, removed: removed, tokens: tokens, seconds: pass.seconds[k])
        }
    }

    /// What split+mix decided: each document's uses (0: left out) and side, over the documents kept by the pass.
    struct Plan {
        var alive: [Int]
        var uses: [Int32]
        var isValidation: [Bool]
        var trainCount: Int
        var validationCount: Int
    }

    /// The split+mix stage: split (by content hash, `--val-tokens`, or a validation source), then mix each side
    /// by the source weights; marks the documents the mix leaves out.
    private func splitAndMix() throws -> Plan {
        let start = Date()
        let records = pass.records
        let alive = records.indices.filter { records[$0].status == .kept }
        let items = alive.map {
            MixItem(source: Int(records[$0].source), hash: records[$0].hash, tokens: records[$0].tokens)
        }
        let validation =
            config.sources.contains { $0.validationOnly == true }
            ? items.map { config.sources[$0.source].validationOnly == true } : Mixer.split(items, config.split)
        let weights = config.sources.map(\.weight)
        var uses = [Int32](repeating: 0, count: records.count)
        for side in [false, true] {
            let members = items.indices.filter { validation[$0] == side }
            let sideUses = Mixer.mix(
                members.map { items[$0] }, weights: weights,
                mode: side && config.mix != .none ? .downsample : config.mix)
            for (k, member) in members.enumerated() { uses[alive[member]] = Int32(sideUses[k]) }
        }
        try checkUpsampling(uses: uses)
        var isValidation = [Bool](repeating: false, count: records.count)
        for (k, index) in alive.enumerated() {
            isValidation[index] = validation[k]
            if uses[index] == 0 { pass.markMixedOut(index) }
        }
        let plan = Plan(
            alive: alive, uses: uses, isValidation: isValidation,
            trainCount: alive.filter { !isValidation[$0] && uses[$0] > 0 }.count,
            validationCount: alive.filter { isValidation[$0] && uses[$0] > 0 }.count)
        try checkSides(trainCount: plan.trainCount, validationCount: plan.validationCount, alive: alive.count)
        stages.append(
            stage(
                "split+mix", 5, input: alive.count, removed: ["mixed_out": alive.filter { uses[$0] == 0 }.count],
                tokens: alive.reduce(0) { $0 + records[$1].tokens * Int(uses[$1]) },
                seconds: Date().timeIntervalSince(start)))
        return plan
    }

    /// A stage's counts: the documents (and their characters) that no stage up to `index` removed.
    private func stage(
        _ name: String, _ index: Int, input: Int, removed: [String: Int], tokens: Int?, seconds: Double
    ) -> StageRecord {
        let out = pass.records.filter { $0.status.removedAt > index }
        return StageRecord(
            stage: name, documentsIn: input, documentsOut: out.count,
            charactersOut: index == 0 ? pass.charactersRead : out.reduce(0) { $0 + $1.characters },
            tokensOut: tokens, removed: removed, seconds: seconds)
    }

    // MARK: - Checks

    /// Refuses a mix that repeats a source more than `maximumUpsample` times (a tiny source with a large
    /// weight would otherwise silently become gigabytes of copies).
    private func checkUpsampling(uses: [Int32]) throws {
        let limit = config.maximumUpsample ?? PreparationConfig.defaultMaximumUpsample
        var used = [Int](repeating: 0, count: config.sources.count)
        var available = used
        for (index, record) in pass.records.enumerated() where record.status == .kept {
            used[Int(record.source)] += Int(uses[index]) * record.tokens
            available[Int(record.source)] += record.tokens
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

    /// Both splits need documents; a validation file that kept none says where its documents went.
    private func checkSides(trainCount: Int, validationCount: Int, alive: Int) throws {
        if validationCount == 0, let file = config.sources.first(where: { $0.validationOnly == true }) {
            let fromFile = pass.records.filter { config.sources[Int($0.source)].validationOnly == true }
            let removed = Dictionary(grouping: fromFile.map(\.status), by: { $0 }).filter { $0.key != .kept }
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
                "the split left \(trainCount) training and \(validationCount) validation documents (of \(alive))",
                hint: alive < 20
                    ? "cut the text into more documents (--split-on blank-line or line) or add data."
                    : "adjust --val-fraction / --val-tokens so both sides get documents.")
        }
    }

    /// The bytes the shards and documents.jsonl will take.
    private var outputBytes: Int {
        toWrite * (pass.kind.elementSize + (hasMask ? 1 : 0)) + pass.records.count * 160
    }

    /// Refuses to start writing shards that the disk cannot hold (checked again by every write).
    private func checkFreeSpace() throws {
        var info = statvfs()
        guard statvfs(folder.path, &info) == 0 else { return }
        let free = Int(info.f_bavail) * Int(info.f_frsize)
        guard free < outputBytes else { return }
        throw DataError(
            "not enough disk space for \(folder.deletingLastPathComponent().path): the shards and documents.jsonl need about \(SpillFile.megabytes(outputBytes)), \(SpillFile.megabytes(free)) is free",
            hint:
                "free disk space or choose an --output on a larger disk, and run again; nothing was left at the output."
        )
    }

    // MARK: - Writing

    /// Writes the shards of one split: documents in input order, each `uses` times (repeats as later passes).
    private func writeSplit(_ name: String, members: [Int], uses: [Int32]) throws -> SplitRecord {
        var record = SplitRecord(documents: 0, tokens: 0, textBytes: 0, characters: 0, targetTokens: 0, shards: [])
        let total = members.reduce(0) { $0 + pass.records[$1].tokens * Int(uses[$1]) }
        let shardTokens = max(1, config.shardTokens)
        let size = pass.kind.elementSize
        let tokens = SpillReader(pass.tokens)
        let masks = SpillReader(pass.masks)
        let need = { [unowned self] in self.outputBytes }
        var shard: (tokens: SequentialFile, mask: SequentialFile?, file: String, maskFile: String?, count: Int)?
        var inShard = 0
        let ones = [UInt8](repeating: 1, count: 1 << 16)

        func open() throws {
            let count = min(shardTokens, total - record.tokens)
            let file = String(format: "%@_%06d.bin", name, record.shards.count)
            let maskFile = hasMask ? String(format: "%@_%06d.mask.bin", name, record.shards.count) : nil
            let tokenWriter = try SequentialFile(folder.appendingPathComponent(file), need: need)
            let maskWriter = try maskFile.map { try SequentialFile(folder.appendingPathComponent($0), need: need) }
            var header = [Int32](repeating: 0, count: ShardKind.headerBytes / 4)
            (header[0], header[1]) = pass.kind.header
            header[2] = Int32(count)
            try header.withUnsafeBytes { try tokenWriter.append($0) }
            if let maskWriter {
                (header[0], header[1]) = ShardKind.mask.header
                try header.withUnsafeBytes { try maskWriter.append($0) }
            }
            shard = (tokenWriter, maskWriter, file, maskFile, count)
            inShard = 0
        }
        func close() throws {
            guard let open = shard else { return }
            let digest = try open.tokens.finish()
            _ = try open.mask?.finish()
            record.shards.append(
                ShardRecord(file: open.file, maskFile: open.maskFile, tokens: open.count, sha256: digest))
            shard = nil
        }

        let passes = members.map { Int(uses[$0]) }.max() ?? 0
        for round in 0..<passes {
            for index in members where uses[index] > round {
                let document = pass.records[index]
                record.documents += 1
                record.textBytes += document.textBytes
                record.characters += document.characters
                var offset = 0
                while offset < document.tokens {
                    if shard == nil { try open() }
                    let take = min(document.tokens - offset, shard!.count - inShard)
                    try tokens.bytes(at: (document.tokenOffset + offset) * size, count: take * size) {
                        try shard!.tokens.append($0)
                    }
                    if document.maskOffset >= 0 {
                        try masks.bytes(at: document.maskOffset + offset, count: take) { mask in
                            try shard!.mask!.append(mask)
                            record.targetTokens += mask.reduce(0) { $0 + Int($1) }
                        }
                    } else {
                        record.targetTokens += take
                        var left = take
                        while let writer = shard!.mask, left > 0 {
                            try ones.withUnsafeBytes {
                                try writer.append(UnsafeRawBufferPointer(rebasing: $0[..<min(left, ones.count)]))
                            }
                            left -= min(left, ones.count)
                        }
                    }
                    offset += take
                    inShard += take
                    record.tokens += take
                    written += take
                    if inShard == shard!.count { try close() }
                    if written % (1 << 22) < take {
                        try pass.stopIfAsked()
                        progress(
                            PreparationProgress(
                                stage: "write", done: written, total: toWrite, unit: "tokens",
                                documents: pass.records.count))
                    }
                }
            }
        }
        try close()
        return record
    }
}

/// Reads a work file front to back through a window of a few megabytes.
final class SpillReader {
    let file: SpillFile
    private var window: [UInt8] = []
    private var windowStart = 0
    private let windowBytes: Int

    init(_ file: SpillFile, windowBytes: Int = 8 << 20) {
        self.file = file
        self.windowBytes = windowBytes
    }

    /// Calls `body` with the `count` bytes at `offset`.
    func bytes(at offset: Int, count: Int, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        guard count > 0 else { return }
        if count > windowBytes {
            var bytes = [UInt8](repeating: 0, count: count)
            try bytes.withUnsafeMutableBytes { try file.read(at: offset, into: $0) }
            return try bytes.withUnsafeBytes(body)
        }
        if offset < windowStart || offset + count > windowStart + window.count {
            window = [UInt8](repeating: 0, count: min(windowBytes, file.bytes - offset))
            windowStart = offset
            try window.withUnsafeMutableBytes { try file.read(at: offset, into: $0) }
        }
        try window.withUnsafeBytes { raw in
            try body(UnsafeRawBufferPointer(rebasing: raw[(offset - windowStart)..<(offset - windowStart + count)]))
        }
    }
}
