// DataManifest: manifest.json of a prepared dataset — every source (files, sizes, SHA-256), every setting,
// the counts in and out of every stage, near-duplicate clusters, the achieved mix, the splits and their
// shards, and the tokenizer's hash — so a dataset can be reproduced and audited. JSON keys
// are snake_case.

import FledgeFiles
import Foundation

/// Everything `fledge data prepare` did, as written to manifest.json.
public struct DataManifest: Codable, Sendable {
    public static let formatVersion = 1
    /// The kind in the `.fledge-output` marker of a prepared folder.
    public static let outputKind = "prepared-data"

    /// True for the names `fledge data prepare` writes into its folder (a folder of only these, from before
    /// the marker existed, may be replaced with --overwrite).
    public static func isOutputFileName(_ name: String) -> Bool {
        ["manifest.json", "documents.jsonl", "tokenizer.json", OwnedOutput.markerName, ShardVerification.stampName]
            .contains(name) || ((name.hasPrefix("train_") || name.hasPrefix("validation_")) && name.hasSuffix(".bin"))
    }

    public var formatVersion = DataManifest.formatVersion
    public var created: String
    public var config: PreparationConfig
    public var sources: [SourceRecord]
    public var tokenizer: TokenizerRecord
    public var stages: [StageRecord]
    public var nearDuplicates: NearDuplicateRecord
    public var splits: [String: SplitRecord]
    /// Loss-mask shards exist (question/answer data).
    public var lossMask: Bool
    /// "uint16" or "uint32".
    public var tokenType: String
    public var skippedRecords: Int
    /// Why records were skipped, and the first few (nil in manifests written before it was recorded).
    public var skipped: SkippedRecords?
    public var seconds: Double

    /// What identifies the prepared tokens whatever folder holds them: every shard's SHA-256 (splits in name
    /// order) and the tokenizer's. Equal content hashes mean the same data.
    public var contentHashes: [String] {
        splits.keys.sorted().flatMap { splits[$0]!.shards.map(\.sha256) } + [tokenizer.sha256]
    }

    /// Reads manifest.json of a prepared folder.
    public static func load(_ folder: URL) throws -> DataManifest {
        let url = folder.appendingPathComponent("manifest.json")
        guard UserFile.kind(url.path) == .file, let data = FileManager.default.contents(atPath: url.path) else {
            throw DataError(
                "\(url.path) not found",
                hint: "point at a folder written by `fledge data prepare` (it holds manifest.json and *.bin shards).")
        }
        return try parse(data, url: url)
    }

    /// Parses manifest.json `data` (`url` names it in errors).
    public static func parse(_ data: Data, url: URL) throws -> DataManifest {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        do {
            let manifest = try decoder.decode(DataManifest.self, from: data)
            guard manifest.formatVersion == formatVersion else {
                throw DataError(
                    "\(url.path) has format_version \(manifest.formatVersion), this Fledge reads \(formatVersion)",
                    hint: "re-run `fledge data prepare` with this version of Fledge.")
            }
            return manifest
        } catch let error as DataError {
            throw error
        } catch let DecodingError.keyNotFound(key, context) {
            let path = (context.codingPath + [key]).map(\.stringValue).joined(separator: ".")
            throw DataError("\(url.path) lacks the field \(path)", hint: "re-run `fledge data prepare` to rewrite it.")
        } catch {
            throw DataError(
                "\(url.path) is not a valid manifest: \(error)", hint: "re-run `fledge data prepare` to rewrite it.")
        }
    }

    /// The JSON text (pretty, sorted keys).
    public func jsonData() throws -> Data {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }
}

/// Records skipped under `--on-bad-record skip`: how many for each reason, and the first few named by file
/// and line or row.
public struct SkippedRecords: Codable, Sendable, Equatable {
    public var reasons: [String: Int] = [:]
    public var examples: [String] = []

    public init() {}

    /// These and `reader`'s skips together (the first five examples kept).
    func adding(_ reader: DocumentReader) -> SkippedRecords {
        var sum = self
        for (reason, count) in reader.skipCounts { sum.reasons[reason, default: 0] += count }
        sum.examples = Array((examples + reader.skipReasons).prefix(5))
        return sum
    }
}

/// One source in the manifest.
public struct SourceRecord: Codable, Sendable {
    public var name: String
    public var path: String
    public var weight: Double
    public var licence: String?
    public var files: [SourceFile]
    public var documentsRead: Int
    public var bytesRead: Int
    /// Documents and tokens of this source in each split after mixing (repeats counted).
    public var trainDocuments: Int
    public var trainTokens: Int
    public var validationDocuments: Int
    public var validationTokens: Int
}

/// The tokenizer the shards were made with.
public struct TokenizerRecord: Codable, Sendable {
    /// SHA-256 of the tokenizer's tokenizer.json form (as `fledge` writes it).
    public var sha256: String
    public var vocabularySize: Int
    public var eosToken: String
    public var eosId: Int32
    public var bosToken: String
    public var bosId: Int32
}

/// Counts in and out of one stage.
public struct StageRecord: Codable, Sendable {
    public var stage: String
    public var documentsIn: Int
    public var documentsOut: Int
    /// Unicode scalars of the documents that leave the stage.
    public var charactersOut: Int
    /// Tokens out (stages after tokenisation).
    public var tokensOut: Int?
    /// Documents removed (or changed) by each rule of the stage.
    public var removed: [String: Int]
    public var seconds: Double
}

/// Near-duplicate clusters found.
public struct NearDuplicateRecord: Codable, Sendable {
    public var bands: Int
    public var rows: Int
    /// Kept documents that had at least one near duplicate removed.
    public var clusters: Int
    public var largestCluster: Int
    /// A few (kept, removed) document ids, for inspection.
    public var examples: [[String]]
}

/// One split (train or validation).
public struct SplitRecord: Codable, Sendable {
    public var documents: Int
    public var tokens: Int
    /// UTF-8 bytes of the text behind the tokens (special tokens excluded): bits per byte = loss·tokens/(ln 2·bytes).
    public var textBytes: Int
    public var characters: Int
    /// Tokens that are training targets (the loss mask's ones; all tokens without a mask).
    public var targetTokens: Int
    public var shards: [ShardRecord]
}

/// One shard file.
public struct ShardRecord: Codable, Sendable {
    public var file: String
    public var maskFile: String?
    public var tokens: Int
    public var sha256: String
}
