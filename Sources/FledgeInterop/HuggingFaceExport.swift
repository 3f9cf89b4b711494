// HuggingFaceExport: a Fledge checkpoint as a folder that transformers' AutoModelForCausalLM and
// AutoTokenizer load with no conversion code: config.json, model.safetensors, tokenizer.json,
// tokenizer_config.json, special_tokens_map.json and generation_config.json.

import FledgeModel
import FledgeTokenizer
import Foundation

/// Export to the Hugging Face transformers layout.
public enum HuggingFaceExport {
    /// What an export wrote.
    public struct Summary: Sendable {
        public let architecture: TargetArchitecture
        public let className: String
        public let tensors: Int
        public let parameters: Int
    }

    /// Writes the checkpoint at `run` (a run or checkpoint folder) to the folder `output`.
    @discardableResult
    public static func write(run: String, output: String, overwrite: Bool = false) throws -> Summary {
        let source = try SourceModel(path: run)
        let architecture = try TargetArchitecture.of(source.config)
        let tensors =
            architecture == .gpt2
            ? try HuggingFaceNames.gpt2Tensors(source) : try HuggingFaceNames.llamaTensors(source)
        let config = modelConfig(source, architecture)
        try ExportOutput.writeFolder(output, kind: "hf-export", input: source.folder.path, overwrite: overwrite) {
            folder in
            func put(_ name: String, _ data: Data) throws {
                try data.write(to: folder.appendingPathComponent(name))
            }
            try ExportOutput.writeSafetensors(tensors, to: folder.appendingPathComponent("model.safetensors"))
            try put("config.json", try ExportOutput.json(config))
            try put("tokenizer.json", source.tokenizerJSON)
            let specials = specialTokens(source)
            var tokenizerConfig: [String: Any] = [
                "tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": source.config.contextLength,
                "clean_up_tokenization_spaces": false,
            ]
            tokenizerConfig.merge(specials) { _, new in new }
            try put("tokenizer_config.json", try ExportOutput.json(tokenizerConfig))
            try put("special_tokens_map.json", try ExportOutput.json(specials))
            var generation: [String: Any] = ["_from_model_config": false, "max_length": source.config.contextLength]
            if let encoder = source.encoder {
                generation["eos_token_id"] = Int(encoder.eos)
                generation["bos_token_id"] = Int(encoder.bos)
                generation["pad_token_id"] = Int(encoder.eos)
            }
            try put("generation_config.json", try ExportOutput.json(generation))
        }
        return Summary(
            architecture: architecture,
            className: architecture == .gpt2 ? "GPT2LMHeadModel" : "LlamaForCausalLM", tensors: tensors.count,
            parameters: tensors.reduce(0) { $0 + $1.values.count })
    }

    /// The transformers config.json of `source` as `architecture`.
    static func modelConfig(_ source: SourceModel, _ architecture: TargetArchitecture) -> [String: Any] {
        let c = source.config
        var config: [String: Any]
        switch architecture {
        case .gpt2:
            let activation: String
            switch c.activation {
            case .gelu: activation = "gelu_new"  // the tanh approximation, as Fledge computes it
            case .relu: activation = "relu"
            case .silu, .swiglu: activation = "silu"
            }
            let dropout = ExportOutput.decimal(c.dropout)
            config = [
                "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": c.vocabularySize,
                "n_positions": c.contextLength, "n_ctx": c.contextLength, "n_embd": c.width, "n_layer": c.layers,
                "n_head": c.heads, "n_inner": c.mlpWidth, "activation_function": activation,
                "resid_pdrop": dropout, "embd_pdrop": dropout, "attn_pdrop": 0.0,
                "layer_norm_epsilon": ExportOutput.decimal(c.normEpsilon), "initializer_range": 0.02,
                "scale_attn_weights": true, "scale_attn_by_inverse_layer_idx": false,
                "reorder_and_upcast_attn": false, "use_cache": true,
            ]
        case .llama:
            let theta = ExportOutput.decimal(c.ropeTheta)
            config = [
                "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": c.vocabularySize,
                "hidden_size": c.width, "intermediate_size": c.mlpWidth, "num_hidden_layers": c.layers,
                "num_attention_heads": c.heads, "num_key_value_heads": c.kvHeads, "head_dim": c.headSize,
                "hidden_act": "silu", "max_position_embeddings": c.contextLength,
                "rms_norm_eps": ExportOutput.decimal(c.normEpsilon), "rope_theta": theta,
                "rope_parameters": ["rope_type": "default", "rope_theta": theta], "rope_scaling": NSNull(),
                "attention_bias": c.bias, "mlp_bias": c.bias, "attention_dropout": 0.0, "use_cache": true,
            ]
        }
        config["tie_word_embeddings"] = c.tiedEmbeddings
        config["torch_dtype"] = "float32"
        if let encoder = source.encoder {
            config["bos_token_id"] = Int(encoder.bos)
            config["eos_token_id"] = Int(encoder.eos)
        }
        return config
    }

    /// bos/eos/unk/pad token strings for tokenizer_config.json and special_tokens_map.json.
    static func specialTokens(_ source: SourceModel) -> [String: Any] {
        var out: [String: Any] = [:]
        if let encoder = source.encoder {
            out["eos_token"] = encoder.eosName
            out["bos_token"] = encoder.bosName
        }
        let specials = source.tokenizer.specialTokens
        for (key, names) in [
            ("unk_token", ["<unk>", "[UNK]", "<|unk|>"]), ("pad_token", ["<pad>", "[PAD]", "<|pad|>"]),
        ] {
            if let name = names.first(where: { specials.id($0) != nil }),
                let id = specials.id(name), let exact = specials.tokens.first(where: { $0.id == id })
            {
                out[key] = exact.text
            }
        }
        for key in ["eos_token", "bos_token"] {
            if let name = out[key] as? String, let id = specials.id(name),
                let exact = specials.tokens.first(where: { $0.id == id })
            {
                out[key] = exact.text  // the tokenizer's own spelling (<EOS> asked as <eos>)
            }
        }
        return out
    }
}
