// MetricsLog: metrics.jsonl of a run — one JSON object per line: "train" (loss, learning rate, gradient
// norm, tokens/s), "eval" (validation loss, perplexity, bits per byte), "sample" (prompt and text) and
// "event" (checkpoints, spikes, skipped steps). Appended as training goes; a resumed run first drops the
// lines past the step it resumes from, so the log reads as one run.

import Foundation

/// One line of metrics.jsonl.
public struct MetricsRecord: Codable, Sendable, Equatable {
    public var kind: String
    public var step: Int
    public var elapsed: Double
    public var loss: Float?
    public var learningRate: Float?
    public var gradientNorm: Float?
    public var tokensPerSecond: Double?
    public var tokens: Int?
    public var validationLoss: Float?
    public var perplexity: Float?
    public var bitsPerByte: Float?
    public var prompt: String?
    public var text: String?
    public var message: String?

    public init(kind: String, step: Int, elapsed: Double) {
        self.kind = kind
        self.step = step
        self.elapsed = elapsed
    }
}

/// Appends records to metrics.jsonl.
public final class MetricsLog {
    public let url: URL
    private let handle: FileHandle
    private let encoder: JSONEncoder
    /// The same scalars as a TensorBoard event file (nil: none).
    private let tensorBoard: TensorBoardLog?

    /// Opens `url` for appending; with `resumingAt`, drops records after that step first. With `tensorBoard`,
    /// training and evaluation scalars also go to an event file in that folder.
    public init(_ url: URL, resumingAt step: Int? = nil, tensorBoard: URL? = nil) throws {
        self.url = url
        self.tensorBoard = try tensorBoard.map { try TensorBoardLog(folder: $0) }
        let files = FileManager.default
        if let step, let existing = try? MetricsLog.read(url) {
            let kept = existing.filter { $0.step <= step }
            let encoder = MetricsLog.makeEncoder()
            var data = Data()
            for record in kept {
                data += try encoder.encode(record)
                data += Data("\n".utf8)
            }
            try data.write(to: url, options: .atomic)
        } else if !files.fileExists(atPath: url.path) || step == nil {
            guard files.createFile(atPath: url.path, contents: nil) else {
                throw TrainingError("cannot create \(url.path)", hint: "check that the run directory is writable.")
            }
        }
        handle = try FileHandle(forWritingTo: url)
        try handle.seekToEnd()
        encoder = MetricsLog.makeEncoder()
    }

    deinit { try? handle.close() }

    static func makeEncoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }

    /// Appends one record.
    public func append(_ record: MetricsRecord) {
        guard let data = try? encoder.encode(record) else { return }
        handle.write(data + Data("\n".utf8))
        guard let tensorBoard else { return }
        let scalars: [(String, Float?)]
        switch record.kind {
        case "train":
            scalars = [
                ("train/loss", record.loss), ("train/learning_rate", record.learningRate),
                ("train/gradient_norm", record.gradientNorm),
                ("train/tokens_per_second", record.tokensPerSecond.map(Float.init)),
            ]
        case "eval":
            scalars = [
                ("validation/loss", record.validationLoss), ("validation/perplexity", record.perplexity),
                ("validation/bits_per_byte", record.bitsPerByte),
            ]
        default: return
        }
        tensorBoard.scalars(scalars.compactMap { tag, value in value.map { (tag, $0) } }, step: record.step)
    }

    /// Every record of a metrics.jsonl file.
    public static func read(_ url: URL) throws -> [MetricsRecord] {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let text = try String(contentsOf: url, encoding: .utf8)
        return try text.split(separator: "\n").map { try decoder.decode(MetricsRecord.self, from: Data($0.utf8)) }
    }
}
