// Architecture: which Hugging Face / llama.cpp architecture a Fledge config maps onto exactly, or why none
// does. GPT-2 (GPT2LMHeadModel, GGUF "gpt2") and Llama (LlamaForCausalLM, GGUF "llama") are the targets;
// docs/interop.md has the full table.

import FledgeModel

/// The two architectures Fledge models are exported as.
public enum TargetArchitecture: String, Sendable, CaseIterable {
    case gpt2
    case llama

    /// The architecture `config` maps onto exactly; throws naming the first feature that neither can express.
    public static func of(_ c: ModelConfig) throws -> TargetArchitecture {
        func refuse(_ feature: String, _ nearest: String) -> InteropError {
            InteropError(
                "this model cannot be exported: \(feature), which neither GPT-2 nor Llama has",
                hint: "train with \(nearest) to export (docs/interop.md lists what maps).")
        }
        if c.parallelBlock {
            throw refuse(
                "its blocks are parallel (parallel_block)", "--no-parallel-block (attention, then the MLP)")
        }
        if c.normPlacement == .post {
            throw refuse("its norms come after the residual add (norm_placement post)", "--norm-placement pre")
        }
        switch c.norm {
        case .layerNorm:
            // GPT-2: LayerNorm, absolute positions (learned or the sinusoidal table baked in), a plain MLP.
            if c.positions == .rotary {
                throw refuse(
                    "it has LayerNorm with rotary positions",
                    "--norm layernorm --positions learned (GPT-2) or --norm rmsnorm --positions rotary --activation swiglu (Llama)"
                )
            }
            if c.activation == .swiglu {
                throw refuse(
                    "it has LayerNorm with a SwiGLU MLP",
                    "--activation gelu (GPT-2) or --norm rmsnorm --positions rotary (Llama)")
            }
            if c.headSize * c.heads != c.width {
                throw refuse(
                    "its heads are \(c.headSize) wide in a \(c.width)-wide model with LayerNorm (GPT-2 needs head size = width / heads)",
                    "no --head-size, or the Llama settings (--norm rmsnorm --positions rotary --activation swiglu)")
            }
            return .gpt2
        case .rmsNorm:
            // Llama: RMSNorm, rotary positions, SwiGLU.
            if c.positions != .rotary {
                throw refuse(
                    "it has RMSNorm with \(c.positions.rawValue) positions",
                    "--positions rotary (Llama) or --norm layernorm (GPT-2)")
            }
            if c.activation != .swiglu {
                throw refuse(
                    "it has RMSNorm with a \(c.activation.rawValue) MLP",
                    "--activation swiglu (Llama) or --norm layernorm (GPT-2)")
            }
            return .llama
        }
    }
}
