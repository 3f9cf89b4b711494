// SourceModel: a Fledge checkpoint read for export without building a model: its config, every parameter
// tensor by name (straight from model.safetensors), its tokenizer and its sequence format.

import FledgeData
import FledgeModel
import FledgeTokenizer
import FledgeTraining
import Foundation

/// A Fledge checkpoint, opened for export.
public struct SourceModel {
    /// The checkpoint folder (a run's final/, latest/ or best/, or the folder given).
    public let folder: URL
    public let config: ModelConfig
    public let layout: ParameterLayout
    public let weights: SafetensorsFile
    public let tokenizer: any Tokenizer
    /// The tokenizer.json bytes as saved with the checkpoint.
    public let tokenizerJSON: Data
    /// End- and beginning-of-sequence tokens the model was trained with (nil when the tokenizer has none).
    public let encoder: DocumentEncoder?
    public let format: SequenceFormat

    /// Opens the run or checkpoint at `path` (a run's final/ is preferred, then latest/, then best/).
    public init(path: String) throws {
        folder = try RunCheckpoint.folder(path)
        let configURL = folder.appendingPathComponent("config.json")
        config = try ModelCheckpoint.parseConfig(try Data(contentsOf: configURL), path: configURL.path)
        layout = ParameterLayout(config: config)
        weights = try SafetensorsFile(url: folder.appendingPathComponent("model.safetensors"))
        for entry in layout.entries {
            guard let found = weights.entries[entry.name], found.shape == entry.shape, found.dtype == "F32" else {
                throw InteropError(
                    "\(folder.path)/model.safetensors lacks tensor '\(entry.name)' as F32 \(entry.shape)",
                    hint: "the checkpoint is damaged or belongs to another config.json; export an intact checkpoint.")
            }
        }
        let tokenizerURL = folder.appendingPathComponent("tokenizer.json")
        tokenizerJSON = try Data(contentsOf: tokenizerURL)
        tokenizer = try TokenizerJSON.loadAny(tokenizerJSON, path: tokenizerURL.path)
        format = try RunCheckpoint.loadFormat(folder) ?? SequenceFormat()
        encoder = try? DocumentEncoder(tokenizer: tokenizer, format: format)
    }

    /// The parameter `name` as floats.
    public func tensor(_ name: String) throws -> [Float] { try weights.floats(name) }

    /// The parameter `name`, or zeros of `count` when the architecture has none (a bias switched off).
    public func tensorOrZeros(_ name: String, count: Int) throws -> [Float] {
        layout[name] == nil ? [Float](repeating: 0, count: count) : try tensor(name)
    }
}

/// A tensor to write: its name in the target format, its shape (row-major) and its values.
public struct ExportTensor {
    public let name: String
    public let shape: [Int]
    public let values: [Float]

    public init(_ name: String, _ shape: [Int], _ values: [Float]) {
        precondition(shape.reduce(1, *) == values.count, "\(name): shape \(shape) vs \(values.count) values")
        self.name = name
        self.shape = shape
        self.values = values
    }
}

/// Row-major matrix helpers for the layout changes between formats.
enum Matrix {
    /// The transpose of a (rows, columns) matrix.
    static func transpose(_ m: [Float], rows: Int, columns: Int) -> [Float] {
        var out = [Float](repeating: 0, count: m.count)
        for r in 0..<rows {
            for c in 0..<columns { out[c * rows + r] = m[r * columns + c] }
        }
        return out
    }

    /// Rows `range` of a matrix with `columns` columns.
    static func rows(_ m: [Float], _ range: Range<Int>, columns: Int) -> [Float] {
        Array(m[range.lowerBound * columns..<range.upperBound * columns])
    }

    /// Key/value head rows repeated so that each of `heads` query heads has its own copy (grouped-query
    /// attention written for a format that has one key/value head per query head).
    static func expandHeads(_ m: [Float], kvHeads: Int, heads: Int, headSize: Int, columns: Int) -> [Float] {
        let group = heads / kvHeads
        var out: [Float] = []
        out.reserveCapacity(heads * headSize * columns)
        for h in 0..<heads {
            let kv = h / group
            out += rows(m, kv * headSize..<(kv + 1) * headSize, columns: columns)
        }
        return out
    }
}
