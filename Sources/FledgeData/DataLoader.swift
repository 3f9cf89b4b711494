// DataLoader: batches for training and evaluation from a prepared dataset — the shards of one split mapped
// into memory as a single stream of tokens, cut into windows of sequence length + 1, visited in a seeded
// random or sequential order. Its position is two integers (epoch, window), which a checkpoint stores so that
// a resumed run sees exactly the batches an uninterrupted one would. Reference: llm.c's dataloader.h.

import FledgeFiles
import FledgeTokenizer
import Foundation

/// A prepared dataset folder: manifest.json, shards, tokenizer.json.
public struct PreparedDataset: Sendable {
    public let folder: URL
    public let manifest: DataManifest

    public init(_ folder: URL) throws {
        do { try UserFile.requireFolder(folder.path, "the prepared data folder") } catch let error as FileError {
            throw DataError(error.message, hint: "point at a folder written by `fledge data prepare`.")
        }
        self.folder = folder
        manifest = try DataManifest.load(folder)
    }

    /// The tokenizer the shards were made with: the folder's tokenizer.json, whose SHA-256 must be the one
    /// manifest.json records (a swapped file would train and ship the wrong tokenizer).
    public func tokenizer() throws -> any Tokenizer {
        let url = folder.appendingPathComponent("tokenizer.json")
        let data: Data
        do { data = try UserFile.read(url.path, "the data's tokenizer") } catch let error as FileError {
            throw DataError(error.message, hint: "the folder is incomplete; re-run `fledge data prepare`.")
        }
        let hash = SHA256.hex(data)
        guard hash == manifest.tokenizer.sha256 else {
            throw DataError(
                "\(url.path) has SHA-256 \(hash.prefix(12))… but the shards were made with the tokenizer \(manifest.tokenizer.sha256.prefix(12))… (manifest.json)",
                hint:
                    "the file was replaced after preparation: restore it, or re-run `fledge data prepare` with the new tokenizer."
            )
        }
        return try TokenizerJSON.loadAny(data, path: url.path)
    }

    /// Throws unless `tokenizer` is the one the shards were made with.
    public func check(tokenizer: any Tokenizer, name: String) throws {
        let hash = SHA256.hex(try tokenizer.tokenizerJSON())
        guard hash == manifest.tokenizer.sha256 else {
            throw DataError(
                "the tokenizer \(name) (vocabulary \(tokenizer.vocabularySize), sha256 \(hash.prefix(12))…) is not the one \(folder.path) was prepared with (vocabulary \(manifest.tokenizer.vocabularySize), sha256 \(manifest.tokenizer.sha256.prefix(12))…)",
                hint:
                    "use \(folder.appendingPathComponent("tokenizer.json").path), or re-run `fledge data prepare` with this tokenizer."
            )
        }
    }

    /// The tokens (and loss mask) of a split: "train" or "validation".
    public func stream(_ split: String) throws -> TokenStream {
        guard let record = manifest.splits[split] else {
            throw DataError(
                "\(folder.path) has no \(split) split (it has: \(manifest.splits.keys.sorted().joined(separator: ", ")))",
                hint: "re-run `fledge data prepare`.")
        }
        let expected: ShardKind = manifest.tokenType == "uint32" ? .tokens32 : .tokens16
        let shards = try record.shards.map { shard -> TokenShard in
            let mapped = try TokenShard(folder.appendingPathComponent(shard.file), expect: [expected])
            guard mapped.count == shard.tokens else {
                throw DataError(
                    "shard \(shard.file) holds \(mapped.count) tokens but manifest.json says \(shard.tokens)",
                    hint: "the folder was changed after preparation; re-run `fledge data prepare`.")
            }
            return mapped
        }
        var masks: [TokenShard]?
        if manifest.lossMask {
            masks = try record.shards.map { shard in
                guard let file = shard.maskFile else {
                    throw DataError(
                        "shard \(shard.file) has no loss-mask file in manifest.json",
                        hint: "re-run `fledge data prepare`.")
                }
                let mask = try TokenShard(folder.appendingPathComponent(file), expect: [.mask])
                guard mask.count == shard.tokens else {
                    throw DataError(
                        "loss mask \(file) holds \(mask.count) values for \(shard.tokens) tokens",
                        hint: "re-run `fledge data prepare`.")
                }
                return mask
            }
        }
        return TokenStream(shards: shards, masks: masks, textBytes: record.textBytes)
    }
}

/// The shards of one split as one stream of tokens (and loss-mask values).
public final class TokenStream: @unchecked Sendable {
    public let shards: [TokenShard]
    public let masks: [TokenShard]?
    /// Tokens in the stream.
    public let count: Int
    /// UTF-8 bytes of the text behind the tokens (for bits per byte).
    public let textBytes: Int
    /// Index of the first token of each shard, and `count` last.
    private let starts: [Int]

    public init(shards: [TokenShard], masks: [TokenShard]?, textBytes: Int) {
        self.shards = shards
        self.masks = masks
        self.textBytes = textBytes
        var starts = [0]
        for shard in shards { starts.append(starts.last! + shard.count) }
        self.starts = starts
        count = starts.last!
    }

    /// Copies tokens [position, position + length) and, when the stream has one, their mask values.
    public func copy(
        from position: Int, length: Int, tokens: UnsafeMutablePointer<Int32>, mask: UnsafeMutablePointer<Int32>?
    ) {
        var shardIndex = 0
        var low = 0
        var high = shards.count - 1
        while low <= high {  // the last shard whose start ≤ position
            let middle = (low + high) / 2
            if starts[middle] <= position {
                shardIndex = middle
                low = middle + 1
            } else {
                high = middle - 1
            }
        }
        var written = 0
        while written < length {
            let shard = shards[shardIndex]
            let offset = position + written - starts[shardIndex]
            let take = min(length - written, shard.count - offset)
            for k in 0..<take { tokens[written + k] = shard[offset + k] }
            if let mask, let masks {
                for k in 0..<take { mask[written + k] = masks[shardIndex][offset + k] }
            }
            written += take
            shardIndex += 1
        }
    }
}

/// The order in which windows are visited.
public enum LoaderOrder: String, Codable, Sendable, CaseIterable {
    /// A new seeded permutation of the windows each epoch.
    case random
    /// Windows in stream order.
    case sequential
}

/// Where a loader is: the only state a checkpoint needs to resume it exactly.
public struct LoaderPosition: Codable, Sendable, Equatable {
    public var epoch = 0
    /// Windows already served in this epoch.
    public var window = 0

    public init(epoch: Int = 0, window: Int = 0) {
        self.epoch = epoch
        self.window = window
    }
}

/// Serves batches of (batch, sequence length) inputs and targets.
public final class DataLoader {
    /// The target of a position the loss mask excludes (FledgeModel's `GPT.ignoreIndex`).
    public static let ignoreIndex: Int32 = -100

    public let stream: TokenStream
    public let batchSize: Int
    public let sequenceLength: Int
    public let order: LoaderOrder
    public let seed: UInt64
    /// Data-parallel training: this process's rank and the job's size. Each batch the loader serves is this
    /// rank's slice of a global batch of `ranks × batchSize` windows (rank r takes windows r·B..<(r+1)·B of it),
    /// and the position counts global windows, so every rank holds the same position.
    public let rank: Int
    public let ranks: Int
    /// Windows of sequenceLength + 1 tokens (consecutive windows share one token).
    public let windowsPerEpoch: Int
    public private(set) var position: LoaderPosition
    private var permutation: [Int32]
    private var maskScratch: [Int32]
    private var windowScratch: [Int32]

    public init(
        stream: TokenStream, batchSize: Int, sequenceLength: Int, order: LoaderOrder, seed: UInt64,
        position: LoaderPosition = LoaderPosition(), split: String = "train", rank: Int = 0, ranks: Int = 1
    ) throws {
        precondition(ranks >= 1 && (0..<ranks).contains(rank))
        self.stream = stream
        self.batchSize = batchSize
        self.rank = rank
        self.ranks = ranks
        self.sequenceLength = sequenceLength
        self.order = order
        self.seed = seed
        windowsPerEpoch = max(0, (stream.count - 1) / max(1, sequenceLength))
        guard batchSize >= 1, sequenceLength >= 1, windowsPerEpoch >= batchSize * ranks else {
            let batch = ranks > 1 ? "global batch of \(ranks) ranks × \(batchSize)" : "batch of \(batchSize)"
            throw DataError(
                "the \(split) split has \(stream.count) tokens: \(windowsPerEpoch) windows of \(sequenceLength) + 1 tokens, fewer than a \(batch)",
                hint:
                    "use \(ranks > 1 ? "fewer processes, " : "")a smaller --batch-size or --context, or prepare more data (or a larger --val-fraction)."
            )
        }
        guard position.window >= 0, position.window <= windowsPerEpoch, position.epoch >= 0 else {
            throw DataError(
                "loader position epoch \(position.epoch) window \(position.window) is outside this data (\(windowsPerEpoch) windows per epoch)",
                hint: "resume with the data the run was started with.")
        }
        self.position = position
        permutation = []
        maskScratch = [Int32](repeating: 1, count: sequenceLength + 1)
        windowScratch = [Int32](repeating: 0, count: sequenceLength + 1)
        shuffle()
    }

    /// Global batches in one pass over the data.
    public var batchesPerEpoch: Int { windowsPerEpoch / (batchSize * ranks) }

    /// Fills `inputs` and `targets` (each batchSize × sequenceLength) with the next batch; masked target
    /// positions get `ignoreIndex`. An epoch's last partial batch is skipped, so every batch is full.
    public func next(inputs: UnsafeMutableBufferPointer<Int32>, targets: UnsafeMutableBufferPointer<Int32>) {
        precondition(inputs.count == batchSize * sequenceLength && targets.count == inputs.count)
        if position.window + batchSize * ranks > windowsPerEpoch {
            position = LoaderPosition(epoch: position.epoch + 1, window: 0)
            shuffle()
        }
        let T = sequenceLength
        windowScratch.withUnsafeMutableBufferPointer { window in
            maskScratch.withUnsafeMutableBufferPointer { mask in
                for b in 0..<batchSize {
                    let start = Int(permutation[position.window + rank * batchSize + b]) * T
                    stream.copy(
                        from: start, length: T + 1, tokens: window.baseAddress!,
                        mask: stream.masks == nil ? nil : mask.baseAddress!)
                    for t in 0..<T {
                        inputs[b * T + t] = window[t]
                        targets[b * T + t] = mask[t + 1] != 0 ? window[t + 1] : DataLoader.ignoreIndex
                    }
                }
            }
        }
        position.window += batchSize * ranks
    }

    /// Array form of `next(inputs:targets:)`.
    public func next(inputs: inout [Int32], targets: inout [Int32]) {
        inputs.withUnsafeMutableBufferPointer { inputs in
            targets.withUnsafeMutableBufferPointer { targets in next(inputs: inputs, targets: targets) }
        }
    }

    /// The window order of the current epoch: identity, or a Fisher–Yates shuffle seeded by (seed, epoch).
    private func shuffle() {
        if permutation.count != windowsPerEpoch { permutation = (0..<Int32(windowsPerEpoch)).map { $0 } }
        for i in 0..<windowsPerEpoch { permutation[i] = Int32(i) }
        guard order == .random else { return }
        var random = SplitMix64(seed: seed ^ (UInt64(position.epoch) &* 0xD1B5_4A32_D192_ED03))
        for i in stride(from: windowsPerEpoch - 1, to: 0, by: -1) {
            let j = Int(random.next().multipliedFullWidth(by: UInt64(i + 1)).high)  // uniform in 0...i
            permutation.swapAt(i, j)
        }
    }
}
