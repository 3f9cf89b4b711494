// HuggingFaceNames: Fledge's parameters as GPT2LMHeadModel's and LlamaForCausalLM's tensors, and back.
// GPT-2 keeps its linear weights as Conv1D (in, out), the transpose of Fledge's (out, in), and has one fused
// qkv projection with a key/value head per query head; Llama has separate q/k/v projections in Fledge's own
// (out, in) layout and the same rotate-half rotary convention, so its weights need no permutation.

import FledgeModel

enum HuggingFaceNames {
    /// Every tensor of `source` under GPT2LMHeadModel's names; linear weights in its Conv1D (in, out) layout, or
    /// with `conv1D` false in Fledge's own (out, in) layout (as llama.cpp's gpt2 keeps them).
    static func gpt2Tensors(_ source: SourceModel, conv1D: Bool = true) throws -> [ExportTensor] {
        let c = source.config
        let (w, f, hs) = (c.width, c.mlpWidth, c.headSize)
        var out: [ExportTensor] = [
            ExportTensor("transformer.wte.weight", [c.vocabularySize, w], try source.tensor("wte.weight"))
        ]
        let positions =
            c.positions == .learned
            ? try source.tensor("wpe.weight") : GPT.sinusoidalTable(contextLength: c.contextLength, width: w)
        out.append(ExportTensor("transformer.wpe.weight", [c.contextLength, w], positions))
        func norm(_ fledge: String, _ hf: String) throws {
            out.append(ExportTensor(hf + ".weight", [w], try source.tensor(fledge + ".weight")))
            out.append(ExportTensor(hf + ".bias", [w], try source.tensorOrZeros(fledge + ".bias", count: w)))
        }
        for l in 0..<c.layers {
            let (p, h) = ("h.\(l).", "transformer.h.\(l).")
            try norm(p + "ln_1", h + "ln_1")
            // One key/value head per query head: grouped-query heads are repeated (exact).
            let qkv = try source.tensor(p + "attn.qkv.weight")
            let qkvBias = try source.tensorOrZeros(p + "attn.qkv.bias", count: c.qkvWidth)
            let (q, kv) = (c.heads * hs, c.kvHeads * hs)
            func expand(_ m: [Float], columns: Int) -> [Float] {
                Matrix.rows(m, 0..<q, columns: columns)
                    + Matrix.expandHeads(
                        Matrix.rows(m, q..<q + kv, columns: columns), kvHeads: c.kvHeads, heads: c.heads, headSize: hs,
                        columns: columns)
                    + Matrix.expandHeads(
                        Matrix.rows(m, q + kv..<q + 2 * kv, columns: columns), kvHeads: c.kvHeads, heads: c.heads,
                        headSize: hs, columns: columns)
            }
            /// A linear weight of `outputs` × `inputs` (Fledge's layout), transposed for Conv1D when asked.
            func linear(_ name: String, _ values: [Float], outputs: Int, inputs: Int) {
                out.append(
                    conv1D
                        ? ExportTensor(
                            name, [inputs, outputs], Matrix.transpose(values, rows: outputs, columns: inputs))
                        : ExportTensor(name, [outputs, inputs], values))
            }
            linear(h + "attn.c_attn.weight", expand(qkv, columns: w), outputs: 3 * w, inputs: w)
            out.append(ExportTensor(h + "attn.c_attn.bias", [3 * w], expand(qkvBias, columns: 1)))
            linear(h + "attn.c_proj.weight", try source.tensor(p + "attn.proj.weight"), outputs: w, inputs: w)
            out.append(
                ExportTensor(h + "attn.c_proj.bias", [w], try source.tensorOrZeros(p + "attn.proj.bias", count: w)))
            try norm(p + "ln_2", h + "ln_2")
            linear(h + "mlp.c_fc.weight", try source.tensor(p + "mlp.fc.weight"), outputs: f, inputs: w)
            out.append(ExportTensor(h + "mlp.c_fc.bias", [f], try source.tensorOrZeros(p + "mlp.fc.bias", count: f)))
            linear(h + "mlp.c_proj.weight", try source.tensor(p + "mlp.proj.weight"), outputs: w, inputs: f)
            out.append(
                ExportTensor(h + "mlp.c_proj.bias", [w], try source.tensorOrZeros(p + "mlp.proj.bias", count: w)))
        }
        try norm("ln_f", "transformer.ln_f")
        if !c.tiedEmbeddings {
            out.append(ExportTensor("lm_head.weight", [c.vocabularySize, w], try source.tensor("lm_head.weight")))
        }
        return out
    }

    /// Every tensor of `source` under LlamaForCausalLM's names (Fledge's own layout).
    static func llamaTensors(_ source: SourceModel) throws -> [ExportTensor] {
        let c = source.config
        let (w, f, hs) = (c.width, c.mlpWidth, c.headSize)
        let (q, kv) = (c.heads * hs, c.kvHeads * hs)
        var out = [ExportTensor("model.embed_tokens.weight", [c.vocabularySize, w], try source.tensor("wte.weight"))]
        for l in 0..<c.layers {
            let (p, h) = ("h.\(l).", "model.layers.\(l).")
            out.append(ExportTensor(h + "input_layernorm.weight", [w], try source.tensor(p + "ln_1.weight")))
            let qkv = try source.tensor(p + "attn.qkv.weight")
            out.append(ExportTensor(h + "self_attn.q_proj.weight", [q, w], Matrix.rows(qkv, 0..<q, columns: w)))
            out.append(ExportTensor(h + "self_attn.k_proj.weight", [kv, w], Matrix.rows(qkv, q..<q + kv, columns: w)))
            out.append(
                ExportTensor(h + "self_attn.v_proj.weight", [kv, w], Matrix.rows(qkv, q + kv..<q + 2 * kv, columns: w)))
            out.append(ExportTensor(h + "self_attn.o_proj.weight", [w, q], try source.tensor(p + "attn.proj.weight")))
            out.append(ExportTensor(h + "post_attention_layernorm.weight", [w], try source.tensor(p + "ln_2.weight")))
            let fc = try source.tensor(p + "mlp.fc.weight")
            out.append(ExportTensor(h + "mlp.gate_proj.weight", [f, w], Matrix.rows(fc, 0..<f, columns: w)))
            out.append(ExportTensor(h + "mlp.up_proj.weight", [f, w], Matrix.rows(fc, f..<2 * f, columns: w)))
            out.append(ExportTensor(h + "mlp.down_proj.weight", [w, f], try source.tensor(p + "mlp.proj.weight")))
            if c.bias {
                let b = try source.tensor(p + "attn.qkv.bias")
                out.append(ExportTensor(h + "self_attn.q_proj.bias", [q], Array(b[0..<q])))
                out.append(ExportTensor(h + "self_attn.k_proj.bias", [kv], Array(b[q..<q + kv])))
                out.append(ExportTensor(h + "self_attn.v_proj.bias", [kv], Array(b[q + kv..<q + 2 * kv])))
                out.append(ExportTensor(h + "self_attn.o_proj.bias", [w], try source.tensor(p + "attn.proj.bias")))
                let fb = try source.tensor(p + "mlp.fc.bias")
                out.append(ExportTensor(h + "mlp.gate_proj.bias", [f], Array(fb[0..<f])))
                out.append(ExportTensor(h + "mlp.up_proj.bias", [f], Array(fb[f..<2 * f])))
                out.append(ExportTensor(h + "mlp.down_proj.bias", [w], try source.tensor(p + "mlp.proj.bias")))
            }
        }
        out.append(ExportTensor("model.norm.weight", [w], try source.tensor("ln_f.weight")))
        if !c.tiedEmbeddings {
            out.append(ExportTensor("lm_head.weight", [c.vocabularySize, w], try source.tensor("lm_head.weight")))
        }
        return out
    }
}
