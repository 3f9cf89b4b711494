// ModelCheckpoint: a model on disk as `config.json` + `model.safetensors` (docs/checkpoint-format.md).
// Loading checks the format version, every config field, and every tensor's presence, dtype and shape, and
// rejects tensors the architecture does not have.

import FledgeFiles
import FledgeTensor
import Foundation

/// Saving and loading a model's config and weights.
public enum ModelCheckpoint {
    /// Version of the config.json / tensor-name scheme written by this build.
    public static let formatVersion = 1
    static let versionKey = "fledge_format_version"

    /// The JSON of `config` as written to config.json.
    public static func configJSON(_ config: ModelConfig) throws -> Data {
        let encoded = try JSONEncoder().encode(config)
        var object = try JSONSerialization.jsonObject(with: encoded) as! [String: Any]
        object[versionKey] = formatVersion
        object["architecture"] = "gpt"
        return try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
    }

    /// Parses config.json data, naming the field that is missing or wrong.
    /// Parses a partial config.json: the fields it has, over `base` (an unknown field is an error, so a typo
    /// is not silently ignored).
    public static func parseConfig(_ data: Data, path: String, over base: ModelConfig) throws -> ModelConfig {
        guard let given = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw ModelError("\(path) is not a JSON object", hint: "write the fields to change, e.g. {\"n_layer\": 6}.")
        }
        guard var merged = try JSONSerialization.jsonObject(with: configJSON(base)) as? [String: Any] else {
            throw ModelError("cannot encode the base configuration", hint: "report this as a bug.")
        }
        let known = Set(merged.keys).union(ModelConfig.optionalFields)
        for key in given.keys.sorted() where !known.contains(key) {
            throw ModelError(
                "\(path): unknown field '\(key)'",
                hint: "the fields are \(known.sorted().joined(separator: ", ")) (docs/checkpoint-format.md).")
        }
        merged.merge(given) { _, new in new }
        // null clears an optional field back to its default (head_size: width / heads).
        for key in ModelConfig.optionalFields where merged[key] is NSNull { merged[key] = nil }
        return try parseConfig(try JSONSerialization.data(withJSONObject: merged), path: path)
    }

    public static func parseConfig(_ data: Data, path: String) throws -> ModelConfig {
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw ModelError(
                "\(path) is not a JSON object", hint: "restore config.json from the run directory it came from.")
        }
        guard let version = object[versionKey] as? Int else {
            throw ModelError(
                "\(path) has no \(versionKey) field",
                hint: "this is not a Fledge config.json; write one with `fledge model init` or a training run.")
        }
        guard version == formatVersion else {
            throw ModelError(
                "\(path) has \(versionKey) \(version), but this build reads version \(formatVersion)",
                hint: "use the Fledge version that wrote this checkpoint, or convert it.")
        }
        for (key, value) in object.sorted(by: { $0.key < $1.key }) where ModelConfig.integerFields.contains(key) {
            guard JSONNumber.exactInteger(value) != nil else {
                throw ModelError(
                    "\(path): field '\(key)' is \(value), which is not a whole number",
                    hint: "give \(key) as an integer, e.g. 384.")
            }
        }
        let config: ModelConfig
        do {
            config = try JSONDecoder().decode(ModelConfig.self, from: data)
        } catch let DecodingError.keyNotFound(key, _) {
            throw ModelError(
                "\(path): field '\(key.stringValue)' is missing",
                hint: "add it; docs/checkpoint-format.md lists every field.")
        } catch let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context) {
            let field = context.codingPath.map(\.stringValue).joined(separator: ".")
            throw ModelError(
                "\(path): field '\(field)' has the wrong type",
                hint: "docs/checkpoint-format.md gives each field's type.")
        } catch let DecodingError.dataCorrupted(context) {
            let field = context.codingPath.map(\.stringValue).joined(separator: ".")
            throw ModelError(
                field.isEmpty
                    ? "\(path) cannot be read: \(context.debugDescription)"
                    : "\(path): field '\(field)' has an unsupported value (\(context.debugDescription))",
                hint: "docs/checkpoint-format.md lists the allowed values.")
        } catch {
            throw ModelError("\(path) cannot be read: \(error)", hint: "docs/checkpoint-format.md lists every field.")
        }
        do {
            try config.validate()
        } catch {
            throw ModelError("\(path): \(error.message)", hint: error.hint)
        }
        return config
    }

    /// Writes `model` to `directory` (created if needed) as config.json and model.safetensors.
    public static func save(_ model: GPT, to directory: URL) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try AtomicFile.write(try configJSON(model.config), to: directory.appendingPathComponent("config.json"))
        try saveWeights(
            model.parameters, layout: model.layout, to: directory.appendingPathComponent("model.safetensors"))
    }

    /// Writes a flat buffer laid out by `layout` as one F32 tensor per entry.
    public static func saveWeights(
        _ storage: BackendBuffer<Float>, layout: ParameterLayout, metadata: [String: String] = ["format": "pt"],
        to url: URL
    ) throws {
        try storage.withHostReadAccess { all in
            let raw = UnsafeRawBufferPointer(all)
            let tensors = layout.entries.map { entry in
                SafetensorsWriter.Tensor(
                    name: entry.name, shape: entry.shape,
                    bytes: UnsafeRawBufferPointer(rebasing: raw[entry.offset * 4..<(entry.offset + entry.count) * 4]))
            }
            try SafetensorsWriter.write(tensors, metadata: metadata, to: url)
        }
    }

    /// Reads every tensor of `layout` from `url` into `storage`; rejects missing, extra, mis-shaped tensors.
    public static func loadWeights(_ storage: BackendBuffer<Float>, layout: ParameterLayout, from url: URL) throws {
        let file = try SafetensorsFile(url: url)
        for name in file.entries.keys.sorted() where layout[name] == nil {
            throw ModelError(
                "\(url.path) has a tensor '\(name)' that this architecture does not have",
                hint: "the weights belong to a different config.json; load them with the config saved beside them.")
        }
        try storage.withHostAccess { all in
            for entry in layout.entries {
                try file.copyFloats(
                    entry.name, expectedShape: entry.shape, into: UnsafeMutableBufferPointer(rebasing: all[entry.range])
                )
            }
        }
    }

    /// Loads the model in `directory` onto `backend`.
    public static func load(from directory: URL, backend: any Backend) throws -> GPT {
        let configURL = directory.appendingPathComponent("config.json")
        guard let data = FileManager.default.contents(atPath: configURL.path) else {
            throw ModelError(
                "cannot read \(configURL.path)",
                hint: "pass a checkpoint directory holding config.json and model.safetensors.")
        }
        let config = try parseConfig(data, path: configURL.path)
        let model = try GPT(config: config, backend: backend)
        try loadWeights(
            model.parameters, layout: model.layout, from: directory.appendingPathComponent("model.safetensors"))
        return model
    }
}
