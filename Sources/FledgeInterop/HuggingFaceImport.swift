// HuggingFaceImport: a transformers GPT2LMHeadModel or LlamaForCausalLM folder (config.json, model.safetensors
// or a sharded index, tokenizer.json) as a Fledge run whose final/ checkpoint `generate`, `chat`, `eval` and
// `train --init-from` use. Every config option is either mapped exactly or refused by name; every tensor is
// checked for presence, shape and dtype; tensors the architecture does not have are refused.

import FledgeData
import FledgeFiles
import FledgeModel
import FledgeTokenizer
import FledgeTraining
import Foundation

/// Import from the Hugging Face transformers layout.
public enum HuggingFaceImport {
    /// What an import wrote.
    public struct Summary: Sendable {
        public let architecture: TargetArchitecture
        public let config: ModelConfig
        public let checkpoint: URL
    }

    /// Imports the folder `directory` as the run `output`.
    @discardableResult
    public static func run(directory: String, output: String, overwrite: Bool = false) throws -> Summary {
        let folder = URL(fileURLWithPath: directory)
        let configURL = folder.appendingPathComponent("config.json")
        guard let data = FileManager.default.contents(atPath: configURL.path),
            let hf = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else {
            throw InteropError(
                "\(configURL.path) is missing or not a JSON object",
                hint:
                    "pass a folder saved by transformers' save_pretrained (config.json, model.safetensors, tokenizer.json)."
            )
        }
        let (architecture, config) = try modelConfig(hf, path: configURL.path)
        let tokenizerURL = folder.appendingPathComponent("tokenizer.json")
        guard FileManager.default.fileExists(atPath: tokenizerURL.path) else {
            throw InteropError(
                "\(directory) has no tokenizer.json",
                hint:
                    "save the tokenizer beside the model (tokenizer.save_pretrained(DIR)); Fledge reads the fast tokenizer's tokenizer.json."
            )
        }
        let tokenizerData = try Data(contentsOf: tokenizerURL)
        let tokenizer = try TokenizerJSON.loadAny(tokenizerData, path: tokenizerURL.path)
        guard tokenizer.vocabularySize <= config.vocabularySize else {
            throw InteropError(
                "\(tokenizerURL.path) has \(tokenizer.vocabularySize) tokens but the model's vocab_size is \(config.vocabularySize)",
                hint: "the tokenizer does not belong to this model.")
        }
        let weights = try WeightFiles(folder: folder)
        let values = try fledgeParameters(weights, architecture: architecture, config: config)
        var format = SequenceFormat()
        let specials = tokenizer.specialTokens
        func tokenText(_ key: String) -> String? {
            guard let id = JSONNumber.exactInteger(hf[key]) else { return nil }
            return specials.tokens.first { Int($0.id) == id }?.text
        }
        format.eosToken = tokenText("eos_token_id")
        format.bosToken = tokenText("bos_token_id")
        format.questionAnswerData = false
        try ExportOutput.writeFolder(output, kind: "run", input: directory, overwrite: overwrite, option: "--output") {
            run in
            let final = run.appendingPathComponent("final")
            try FileManager.default.createDirectory(at: final, withIntermediateDirectories: true)
            try ModelCheckpoint.configJSON(config).write(to: final.appendingPathComponent("config.json"))
            let layout = ParameterLayout(config: config)
            try ExportOutput.writeSafetensors(
                layout.entries.map { ExportTensor($0.name, $0.shape, values[$0.name]!) },
                to: final.appendingPathComponent("model.safetensors"))
            try tokenizerData.write(to: final.appendingPathComponent("tokenizer.json"))
            try RunCheckpoint.encoder().encode(format).write(to: final.appendingPathComponent(RunCheckpoint.formatFile))
            let origin: [String: Any] = [
                "imported_from": folder.standardizedFileURL.path, "architecture": hf["architectures"] ?? NSNull(),
            ]
            try ExportOutput.json(origin).write(to: final.appendingPathComponent("imported.json"))
        }
        return Summary(
            architecture: architecture, config: config,
            checkpoint: URL(fileURLWithPath: output).appendingPathComponent("final"))
    }

    /// The Fledge config of a transformers config.json; options Fledge does not implement are refused by name.
    static func modelConfig(_ hf: [String: Any], path: String) throws -> (TargetArchitecture, ModelConfig) {
        func int(_ key: String, default value: Int? = nil) throws -> Int {
            if let v = hf[key], !(v is NSNull) {
                guard let n = JSONNumber.exactInteger(v) else {
                    throw InteropError("\(path): field '\(key)' is \(v), not an integer", hint: "fix the config.json.")
                }
                return n
            }
            guard let value else {
                throw InteropError(
                    "\(path): field '\(key)' is missing", hint: "save the model again with transformers.")
            }
            return value
        }
        func double(_ key: String, default value: Double) throws -> Double {
            guard let v = hf[key], !(v is NSNull) else { return value }
            guard !JSONNumber.isBoolean(v), let d = (v as? NSNumber)?.doubleValue else {
                throw InteropError("\(path): field '\(key)' is \(v), not a number", hint: "fix the config.json.")
            }
            return d
        }
        func bool(_ key: String, default value: Bool) throws -> Bool {
            guard let v = hf[key], !(v is NSNull) else { return value }
            guard JSONNumber.isBoolean(v), let b = v as? Bool else {
                throw InteropError("\(path): field '\(key)' is \(v), not true or false", hint: "fix the config.json.")
            }
            return b
        }
        func refuse(_ key: String, _ value: Any, _ why: String) -> InteropError {
            InteropError(
                "\(path): \(key) = \(value) is not supported (\(why))",
                hint: "Fledge imports only what it computes exactly; docs/interop.md lists the supported options.")
        }
        func requireAbsent(_ key: String, _ why: String) throws {
            if let v = hf[key], !(v is NSNull) { throw refuse(key, v, why) }
        }
        func requireFalse(_ key: String, _ why: String) throws {
            if try bool(key, default: false) { throw refuse(key, true, why) }
        }
        let modelType = hf["model_type"] as? String ?? ""
        switch modelType {
        case "gpt2":
            let width = try int("n_embd")
            let heads = try int("n_head")
            guard width > 0, heads > 0, width % heads == 0 else {
                throw refuse("n_head", heads, "n_embd \(width) must be a multiple of it")
            }
            let activation: MLPActivation
            switch hf["activation_function"] as? String ?? "gelu_new" {
            case "gelu_new", "gelu_pytorch_tanh", "gelu_fast": activation = .gelu
            case "relu": activation = .relu
            case "silu", "swish": activation = .silu
            case let other:
                throw refuse("activation_function", other, "Fledge's GELU is the tanh approximation (gelu_new)")
            }
            if !(try bool("scale_attn_weights", default: true)) {
                throw refuse("scale_attn_weights", false, "attention is always scaled by 1/√head size")
            }
            try requireFalse("scale_attn_by_inverse_layer_idx", "attention is scaled by 1/√head size only")
            try requireFalse("add_cross_attention", "Fledge models are decoder-only")
            var c = ModelConfig(
                vocabularySize: try int("vocab_size"),
                contextLength: try int("n_positions", default: try int("n_ctx", default: 1024)),
                layers: try int("n_layer"), width: width, heads: heads,
                mlpWidth: try int("n_inner", default: 4 * width),
                norm: .layerNorm, positions: .learned, activation: activation,
                tiedEmbeddings: try bool("tie_word_embeddings", default: true), bias: true)
            c.normEpsilon = Float(try double("layer_norm_epsilon", default: 1e-5))
            try validate(c, path)
            return (.gpt2, c)
        case "llama":
            let act = hf["hidden_act"] as? String ?? "silu"
            guard act == "silu" else { throw refuse("hidden_act", act, "Llama's MLP in Fledge is SwiGLU (silu)") }
            try requireAbsent("rope_scaling", "rope scaling")
            try requireAbsent("sliding_window", "sliding-window attention")
            if let p = hf["rope_parameters"] as? [String: Any], let type = p["rope_type"] as? String, type != "default"
            {
                throw refuse("rope_parameters.rope_type", type, "only plain rotary positions")
            }
            if try int("pretraining_tp", default: 1) > 1 {
                throw refuse("pretraining_tp", hf["pretraining_tp"]!, "sliced projections")
            }
            let attentionBias = try bool("attention_bias", default: false)
            let mlpBias = try bool("mlp_bias", default: false)
            guard attentionBias == mlpBias else {
                throw refuse(
                    "attention_bias", attentionBias,
                    "Fledge's one bias switch needs mlp_bias to match (it is \(mlpBias))")
            }
            let width = try int("hidden_size")
            let heads = try int("num_attention_heads")
            var theta = try double("rope_theta", default: 10_000)
            if let p = hf["rope_parameters"] as? [String: Any], let t = (p["rope_theta"] as? NSNumber)?.doubleValue {
                theta = t
            }
            var c = ModelConfig(
                vocabularySize: try int("vocab_size"), contextLength: try int("max_position_embeddings", default: 2048),
                layers: try int("num_hidden_layers"), width: width, heads: heads,
                kvHeads: try int("num_key_value_heads", default: heads), mlpWidth: try int("intermediate_size"),
                norm: .rmsNorm, positions: .rotary, activation: .swiglu,
                tiedEmbeddings: try bool("tie_word_embeddings", default: false), bias: attentionBias)
            c.normEpsilon = Float(try double("rms_norm_eps", default: 1e-6))
            c.ropeTheta = Float(theta)
            let headSize = try int("head_dim", default: heads > 0 ? width / heads : 0)
            if heads > 0 && (width % heads != 0 || headSize != width / heads) { c.explicitHeadSize = headSize }
            try validate(c, path)
            return (.llama, c)
        default:
            throw InteropError(
                "\(path): model_type '\(modelType)' cannot be imported",
                hint: "Fledge imports gpt2 (GPT2LMHeadModel) and llama (LlamaForCausalLM) models.")
        }
    }

    private static func validate(_ c: ModelConfig, _ path: String) throws {
        do {
            try c.validate()
            try c.checkFitsInMemory()
        } catch {
            throw InteropError("\(path): \(error.message)", hint: error.hint)
        }
    }

    /// Fledge's parameters, by name, from the transformers tensors.
    static func fledgeParameters(_ weights: WeightFiles, architecture: TargetArchitecture, config c: ModelConfig)
        throws -> [String: [Float]]
    {
        let (w, f, hs) = (c.width, c.mlpWidth, c.headSize)
        let (q, kv) = (c.heads * hs, c.kvHeads * hs)
        var out: [String: [Float]] = [:]
        switch architecture {
        case .gpt2:
            // transformers saves GPT2LMHeadModel with "transformer." prefixes; the original checkpoints have none.
            let prefix = weights.names.contains("transformer.wte.weight") ? "transformer." : ""
            func get(_ name: String, _ shape: [Int]) throws -> [Float] { try weights.tensor(prefix + name, shape) }
            out["wte.weight"] = try get("wte.weight", [c.vocabularySize, w])
            out["wpe.weight"] = try get("wpe.weight", [c.contextLength, w])
            for l in 0..<c.layers {
                let (h, p) = ("h.\(l).", "h.\(l).")
                out[p + "ln_1.weight"] = try get(h + "ln_1.weight", [w])
                out[p + "ln_1.bias"] = try get(h + "ln_1.bias", [w])
                out[p + "attn.qkv.weight"] = Matrix.transpose(
                    try get(h + "attn.c_attn.weight", [w, 3 * w]), rows: w, columns: 3 * w)
                out[p + "attn.qkv.bias"] = try get(h + "attn.c_attn.bias", [3 * w])
                out[p + "attn.proj.weight"] = Matrix.transpose(
                    try get(h + "attn.c_proj.weight", [w, w]), rows: w, columns: w)
                out[p + "attn.proj.bias"] = try get(h + "attn.c_proj.bias", [w])
                out[p + "ln_2.weight"] = try get(h + "ln_2.weight", [w])
                out[p + "ln_2.bias"] = try get(h + "ln_2.bias", [w])
                out[p + "mlp.fc.weight"] = Matrix.transpose(
                    try get(h + "mlp.c_fc.weight", [w, f]), rows: w, columns: f)
                out[p + "mlp.fc.bias"] = try get(h + "mlp.c_fc.bias", [f])
                out[p + "mlp.proj.weight"] = Matrix.transpose(
                    try get(h + "mlp.c_proj.weight", [f, w]), rows: f, columns: w)
                out[p + "mlp.proj.bias"] = try get(h + "mlp.c_proj.bias", [w])
            }
            out["ln_f.weight"] = try get("ln_f.weight", [w])
            out["ln_f.bias"] = try get("ln_f.bias", [w])
            if !c.tiedEmbeddings {
                out["lm_head.weight"] = try weights.tensor("lm_head.weight", [c.vocabularySize, w])
            }
            // The causal-mask buffers older checkpoints carry are not weights.
            let tied = c.tiedEmbeddings
            try weights.refuseOthers(
                ignoring: {
                    $0.hasSuffix(".attn.bias") || $0.hasSuffix(".attn.masked_bias") || (tied && $0 == "lm_head.weight")
                })
        case .llama:
            func get(_ name: String, _ shape: [Int]) throws -> [Float] { try weights.tensor(name, shape) }
            out["wte.weight"] = try get("model.embed_tokens.weight", [c.vocabularySize, w])
            for l in 0..<c.layers {
                let (h, p) = ("model.layers.\(l).", "h.\(l).")
                out[p + "ln_1.weight"] = try get(h + "input_layernorm.weight", [w])
                out[p + "attn.qkv.weight"] =
                    try get(h + "self_attn.q_proj.weight", [q, w]) + get(h + "self_attn.k_proj.weight", [kv, w])
                    + get(h + "self_attn.v_proj.weight", [kv, w])
                out[p + "attn.proj.weight"] = try get(h + "self_attn.o_proj.weight", [w, q])
                out[p + "ln_2.weight"] = try get(h + "post_attention_layernorm.weight", [w])
                out[p + "mlp.fc.weight"] =
                    try get(h + "mlp.gate_proj.weight", [f, w]) + get(h + "mlp.up_proj.weight", [f, w])
                out[p + "mlp.proj.weight"] = try get(h + "mlp.down_proj.weight", [w, f])
                if c.bias {
                    out[p + "attn.qkv.bias"] =
                        try get(h + "self_attn.q_proj.bias", [q]) + get(h + "self_attn.k_proj.bias", [kv])
                        + get(h + "self_attn.v_proj.bias", [kv])
                    out[p + "attn.proj.bias"] = try get(h + "self_attn.o_proj.bias", [w])
                    out[p + "mlp.fc.bias"] = try get(h + "mlp.gate_proj.bias", [f]) + get(h + "mlp.up_proj.bias", [f])
                    out[p + "mlp.proj.bias"] = try get(h + "mlp.down_proj.bias", [w])
                }
            }
            out["ln_f.weight"] = try get("model.norm.weight", [w])
            if !c.tiedEmbeddings { out["lm_head.weight"] = try get("lm_head.weight", [c.vocabularySize, w]) }
            let tied = c.tiedEmbeddings
            try weights.refuseOthers(
                ignoring: { $0.hasSuffix(".rotary_emb.inv_freq") || (tied && $0 == "lm_head.weight") })
        }
        return out
    }
}

/// The safetensors files of a transformers folder: model.safetensors, or the shards its index names.
final class WeightFiles {
    private var files: [String: SafetensorsFile] = [:]  // tensor name → file
    private var used: Set<String> = []
    let folder: URL
    var names: Set<String> { Set(files.keys) }

    init(folder: URL) throws {
        self.folder = folder
        let single = folder.appendingPathComponent("model.safetensors")
        let index = folder.appendingPathComponent("model.safetensors.index.json")
        var paths: [URL] = []
        if FileManager.default.fileExists(atPath: single.path) {
            paths = [single]
        } else if let data = FileManager.default.contents(atPath: index.path) {
            guard let root = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                let map = root["weight_map"] as? [String: String]
            else {
                throw InteropError("\(index.path) has no weight_map", hint: "save the model again with transformers.")
            }
            paths = Set(map.values).sorted().map { file in
                folder.appendingPathComponent(file)
            }
            for path in paths where path.lastPathComponent.contains("/") || path.lastPathComponent.hasPrefix(".") {
                throw InteropError(
                    "\(index.path) names a shard outside the folder: \(path.lastPathComponent)", hint: "fix the index.")
            }
        } else {
            let hasBin = FileManager.default.fileExists(atPath: folder.appendingPathComponent("pytorch_model.bin").path)
            throw InteropError(
                "\(folder.path) has no model.safetensors" + (hasBin ? " (only pytorch_model.bin)" : ""),
                hint:
                    "save with safe_serialization=True (the default of save_pretrained), or convert the .bin to safetensors."
            )
        }
        for path in paths {
            let file = try SafetensorsFile(url: path)
            for name in file.entries.keys { files[name] = file }
        }
    }

    /// The tensor `name` as F32, checked to have `shape`.
    func tensor(_ name: String, _ shape: [Int]) throws -> [Float] {
        guard let file = files[name], let entry = file.entries[name] else {
            throw InteropError(
                "\(folder.path): tensor '\(name)' is missing",
                hint: "the weights do not match config.json; save the model again with transformers.")
        }
        guard entry.shape == shape else {
            throw InteropError(
                "\(folder.path): tensor '\(name)' has shape \(entry.shape), but config.json implies \(shape)",
                hint: "the weights do not match config.json.")
        }
        guard ["F32", "F16", "BF16", "F64"].contains(entry.dtype) else {
            throw InteropError(
                "\(folder.path): tensor '\(name)' is \(entry.dtype), not a floating-point type",
                hint: "quantised weights cannot be imported; save the model in float32, float16 or bfloat16.")
        }
        used.insert(name)
        return try file.convertedFloats(name)
    }

    /// Throws for a tensor that was not read and is not ignorable: a weight the architecture does not have.
    func refuseOthers(ignoring: (String) -> Bool) throws {
        if let extra = files.keys.sorted().first(where: { !used.contains($0) && !ignoring($0) }) {
            throw InteropError(
                "\(folder.path): tensor '\(extra)' has no place in this architecture",
                hint: "the model has parts Fledge does not compute; it cannot be imported exactly.")
        }
    }
}
