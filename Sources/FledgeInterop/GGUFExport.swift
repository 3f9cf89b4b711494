// GGUFExport: a Fledge checkpoint as one GGUF file for llama.cpp and the tools built on it, with the
// architecture's metadata (llama.cpp's key names) and the byte-level BPE tokenizer (tokens, token types,
// merges, special ids, the pre-tokenizer's name). Matrices are f32 or f16; norms and biases stay f32, as
// llama.cpp's own converter writes them. Llama's q and k rows are permuted from the rotate-half layout into
// the interleaved pairs llama.cpp's rotary kernel expects.

import FledgeModel
import FledgeTokenizer
import Foundation

/// Export to GGUF.
public enum GGUFExport {
    /// What an export wrote.
    public struct Summary: Sendable {
        public let architecture: TargetArchitecture
        public let tensors: Int
        public let metadataKeys: Int
        public let bytes: Int
    }

    /// Writes the checkpoint at `run` to the file `output`, matrices as `type`.
    @discardableResult
    public static func write(run: String, output: String, type: GGUFTensorType = .f32, overwrite: Bool = false)
        throws -> Summary
    {
        let source = try SourceModel(path: run)
        let architecture = try TargetArchitecture.of(source.config)
        var writer = GGUFWriter()
        let c = source.config
        let arch = architecture.rawValue
        writer.add("general.architecture", .string(arch))
        writer.add("general.name", .string(source.folder.deletingLastPathComponent().lastPathComponent))
        writer.add("general.file_type", .uint32(type == .f32 ? 0 : 1))
        writer.add("\(arch).context_length", .uint32(UInt32(c.contextLength)))
        writer.add("\(arch).embedding_length", .uint32(UInt32(c.width)))
        writer.add("\(arch).feed_forward_length", .uint32(UInt32(c.mlpWidth)))
        writer.add("\(arch).block_count", .uint32(UInt32(c.layers)))
        writer.add("\(arch).attention.head_count", .uint32(UInt32(c.heads)))
        switch architecture {
        case .gpt2:
            writer.add("gpt2.attention.layer_norm_epsilon", .float32(c.normEpsilon))
        case .llama:
            writer.add("llama.attention.head_count_kv", .uint32(UInt32(c.kvHeads)))
            writer.add("llama.attention.layer_norm_rms_epsilon", .float32(c.normEpsilon))
            writer.add("llama.rope.freq_base", .float32(c.ropeTheta))
            writer.add("llama.rope.dimension_count", .uint32(UInt32(c.headSize)))
            writer.add("llama.attention.key_length", .uint32(UInt32(c.headSize)))
            writer.add("llama.attention.value_length", .uint32(UInt32(c.headSize)))
            writer.add("llama.vocab_size", .uint32(UInt32(c.vocabularySize)))
        }
        for (key, value) in try tokenizerMetadata(source) { writer.add(key, value) }
        let tensors = architecture == .gpt2 ? try gpt2Tensors(source) : try llamaTensors(source)
        for tensor in tensors {
            writer.tensors.append((tensor, tensor.shape.count == 2 ? type : .f32))
        }
        try ExportOutput.writeFile(output, input: source.folder.path, overwrite: overwrite) { handle in
            try writer.write(to: handle)
        }
        let size = (try? FileManager.default.attributesOfItem(atPath: output)[.size] as? Int) ?? 0
        return Summary(
            architecture: architecture, tensors: tensors.count, metadataKeys: writer.metadata.count, bytes: size)
    }

    /// The tokenizer keys: only byte-level BPE with GPT-2's pre-tokenizer has a GGUF form llama.cpp and
    /// transformers reproduce exactly.
    static func tokenizerMetadata(_ source: SourceModel) throws -> [(String, GGUFValue)] {
        guard let bpe = source.tokenizer as? BPETokenizer, case .bytes = bpe.alphabet, bpe.preTokenizer == .gpt2 else {
            throw InteropError(
                "the tokenizer of \(source.folder.path) has no exact GGUF form (GGUF export takes byte-level BPE with the gpt2 pre-tokenizer)",
                hint:
                    "train the tokenizer with the default --kind byte-bpe and --pre-tokenizer gpt2 (or use --tokenizer gpt2), or export with --format hf, whose tokenizer.json keeps any Fledge tokenizer."
            )
        }
        guard let root = try? JSONSerialization.jsonObject(with: source.tokenizerJSON) as? [String: Any],
            let model = root["model"] as? [String: Any], let vocab = model["vocab"] as? [String: Int],
            let merges = model["merges"] as? [Any]
        else {
            throw InteropError(
                "\(source.folder.path)/tokenizer.json lacks model.vocab or model.merges",
                hint: "the tokenizer file is damaged; copy the one the model was trained with.")
        }
        let count = source.config.vocabularySize
        var tokens = [String?](repeating: nil, count: count)
        var types = [Int32](repeating: 1, count: count)  // 1: normal
        for (text, id) in vocab where id >= 0 && id < count { tokens[id] = text }
        for special in bpe.specialTokens.tokens where Int(special.id) < count {
            tokens[Int(special.id)] = special.text
            types[Int(special.id)] = 3  // control
        }
        for id in 0..<count where tokens[id] == nil {
            tokens[id] = "[PAD\(id)]"  // rows of the embedding no token uses
            types[id] = 5  // unused
        }
        let mergeStrings: [String] = merges.compactMap { merge in
            if let pair = merge as? [String], pair.count == 2 { return pair[0] + " " + pair[1] }
            return merge as? String
        }
        var out: [(String, GGUFValue)] = [
            ("tokenizer.ggml.model", .string("gpt2")), ("tokenizer.ggml.pre", .string("gpt-2")),
            ("tokenizer.ggml.tokens", .strings(tokens.map { $0! })), ("tokenizer.ggml.token_type", .int32s(types)),
            ("tokenizer.ggml.merges", .strings(mergeStrings)),
        ]
        if let encoder = source.encoder {
            out.append(("tokenizer.ggml.bos_token_id", .uint32(UInt32(encoder.bos))))
            out.append(("tokenizer.ggml.eos_token_id", .uint32(UInt32(encoder.eos))))
            out.append(("tokenizer.ggml.add_bos_token", .bool(source.format.addBOS)))
        }
        return out
    }

    /// GPT-2's tensors under llama.cpp's names, linear weights in (out, in) layout.
    static func gpt2Tensors(_ source: SourceModel) throws -> [ExportTensor] {
        var out: [ExportTensor] = []
        for t in try HuggingFaceNames.gpt2Tensors(source, conv1D: false) {
            var name = t.name.replacingOccurrences(of: "transformer.", with: "")
            for (hf, gguf) in [
                ("wte.", "token_embd."), ("wpe.", "position_embd."), (".ln_1.", ".attn_norm."),
                (".attn.c_attn.", ".attn_qkv."), (".attn.c_proj.", ".attn_output."), (".ln_2.", ".ffn_norm."),
                (".mlp.c_fc.", ".ffn_up."), (".mlp.c_proj.", ".ffn_down."), ("ln_f.", "output_norm."),
                ("lm_head.", "output."),
            ] {
                name = name.replacingOccurrences(of: hf, with: gguf)
            }
            if name.hasPrefix("h.") { name = "blk." + name.dropFirst(2) }
            out.append(ExportTensor(name, t.shape, t.values))
        }
        return out
    }

    /// Llama's tensors under llama.cpp's names, q and k permuted to interleaved rotary pairs.
    static func llamaTensors(_ source: SourceModel) throws -> [ExportTensor] {
        let c = source.config
        var out: [ExportTensor] = []
        for t in try HuggingFaceNames.llamaTensors(source) {
            var name = t.name
            var values = t.values
            if name.contains(".q_proj.") {
                values = interleave(
                    values, heads: c.heads, headSize: c.headSize, columns: t.shape.count == 2 ? t.shape[1] : 1)
            } else if name.contains(".k_proj.") {
                values = interleave(
                    values, heads: c.kvHeads, headSize: c.headSize, columns: t.shape.count == 2 ? t.shape[1] : 1)
            }
            for (hf, gguf) in [
                ("model.embed_tokens.", "token_embd."), ("model.layers.", "blk."), (".input_layernorm.", ".attn_norm."),
                (".self_attn.q_proj.", ".attn_q."), (".self_attn.k_proj.", ".attn_k."),
                (".self_attn.v_proj.", ".attn_v."),
                (".self_attn.o_proj.", ".attn_output."), (".post_attention_layernorm.", ".ffn_norm."),
                (".mlp.gate_proj.", ".ffn_gate."), (".mlp.up_proj.", ".ffn_up."), (".mlp.down_proj.", ".ffn_down."),
                ("model.norm.", "output_norm."), ("lm_head.", "output."),
            ] {
                name = name.replacingOccurrences(of: hf, with: gguf)
            }
            out.append(ExportTensor(name, t.shape, values))
        }
        return out
    }

    /// Rotate-half rows (j and j + HS/2 rotate together) reordered as interleaved pairs (2j and 2j + 1), per head:
    /// new row 2j + k of a head is old row k·HS/2 + j.
    public static func interleave(_ m: [Float], heads: Int, headSize: Int, columns: Int) -> [Float] {
        var out = m
        let half = headSize / 2
        for h in 0..<heads {
            for j in 0..<half {
                for k in 0..<2 {
                    let from = (h * headSize + k * half + j) * columns
                    let to = (h * headSize + 2 * j + k) * columns
                    for col in 0..<columns { out[to + col] = m[from + col] }
                }
            }
        }
        return out
    }
}
