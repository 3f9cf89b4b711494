// Evaluator: validation loss, perplexity and bits per byte of a model on a token stream — the same windows
// every time (sequential from the start), so numbers are comparable across steps and runs. Bits per byte
// divide the loss by the stream's bytes per token (from the manifest), which makes runs with different
// tokenizers comparable (nanochat's bpb).

import FledgeData
import FledgeDistributed
import FledgeFiles
import FledgeModel
import FledgeTokenizer
import Foundation

/// One evaluation.
public struct Evaluation: Sendable, Equatable {
    /// Mean cross-entropy per target token (nats).
    public var loss: Float
    public var perplexity: Float { exp(loss) }
    public var bitsPerByte: Float
    public var tokens: Int
}

/// Evaluates a model on a fixed set of windows of a stream. With a communicator of several ranks, each
/// evaluates its slice of every batch (as in training) and the sums are all-reduced: the ranks share the work
/// and get the same numbers, over the same windows as one process with the whole batch.
public final class Evaluator {
    public let stream: TokenStream
    public let batchSize: Int
    public let sequenceLength: Int
    public let batches: Int
    public let communicator: Communicator
    private let activations: Activations
    private var inputs: [Int32]
    private var targets: [Int32]

    /// Plans `batches` batches of the stream (fewer when the stream is short; at least one must fit).
    public init(
        model: GPT, stream: TokenStream, batchSize: Int, sequenceLength: Int, batches: Int, split: String,
        communicator: Communicator = SingleProcess()
    ) throws {
        let loader = try DataLoader(
            stream: stream, batchSize: batchSize, sequenceLength: sequenceLength, order: .sequential, seed: 0,
            split: split, rank: communicator.rank, ranks: communicator.size)
        self.communicator = communicator
        self.stream = stream
        self.batchSize = batchSize
        self.sequenceLength = sequenceLength
        guard batches >= 1 else {
            throw TrainingError("\(batches) evaluation batches evaluate nothing", hint: "ask for at least 1 batch.")
        }
        self.batches = min(batches, loader.batchesPerEpoch)
        activations = try Activations(
            model: model, batchSize: batchSize, sequenceLength: sequenceLength, forTraining: false)
        inputs = [Int32](repeating: 0, count: batchSize * sequenceLength)
        targets = inputs
    }

    /// The loss over the planned windows (weighted by counted targets); `firstBatch` hears how long the first
    /// batch took, before the others run.
    public func evaluate(_ model: GPT, firstBatch: (Double) -> Void = { _ in }) throws -> Evaluation {
        let loader = try DataLoader(
            stream: stream, batchSize: batchSize, sequenceLength: sequenceLength, order: .sequential, seed: 0,
            rank: communicator.rank, ranks: communicator.size)
        var total = 0.0
        var counted = 0
        let start = Date()
        for batch in 0..<batches {
            loader.next(inputs: &inputs, targets: &targets)
            let loss =
                try model.forward(tokens: inputs, targets: targets, activations: activations, training: false) ?? 0
            total += Double(loss) * Double(activations.targetCount)
            counted += activations.targetCount
            if batch == 0 { firstBatch(Date().timeIntervalSince(start)) }
        }
        if communicator.size > 1 {
            var sums = [total, Double(counted)]
            try communicator.allReduceSum(&sums, what: "all-reduce of the validation loss")
            (total, counted) = (sums[0], Int(sums[1]))
        }
        guard counted > 0 else {
            throw TrainingError(
                "the evaluated windows hold no target tokens (every position is masked), so there is no loss to report",
                hint: "evaluate on data with answer tokens, or on more of it (--batches).")
        }
        let mean = Float(total / Double(counted))
        let tokensPerByte = Double(stream.count) / Double(max(stream.textBytes, 1))
        return Evaluation(loss: mean, bitsPerByte: Float(Double(mean) * tokensPerByte / log(2)), tokens: counted)
    }
}

extension Evaluator {
    /// A token stream of a raw text file, encoded with `tokenizer` (as one document) and mapped from a shard
    /// written to `scratch`; its text bytes are the file's, so bits per byte compare across tokenizers.
    public static func stream(ofText url: URL, tokenizer: any Tokenizer, scratch: URL) throws -> TokenStream {
        let data: Data
        do { data = try UserFile.read(url.path, "--text", limit: 1 << 31) } catch let error as FileError {
            throw TrainingError(error.message, hint: "check the path of --text.")
        }
        let ids = tokenizer.encode(bytes: [UInt8](data), allowSpecial: false)
        let shard = scratch.appendingPathComponent("eval-\(getpid()).bin")
        let kind = ShardKind.tokens(forVocabularySize: tokenizer.vocabularySize)
        try ShardWriter.write(ids, kind: kind, to: shard)
        defer { try? FileManager.default.removeItem(at: shard) }
        return TokenStream(shards: [try TokenShard(shard, expect: [kind])], masks: nil, textBytes: data.count)
    }
}
