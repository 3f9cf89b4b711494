#!/usr/bin/env python3
"""Write the PyTorch reference fixtures that Fledge's model tests compare against.

Builds the same decoder-only Transformer as FledgeModel (same tensor names and layouts, see
docs/checkpoint-format.md) in plain PyTorch for several architecture variants, and for each writes
Tests/FledgeModelTests/Fixtures/<variant>.safetensors holding:
  <param name>            initial weights (F32)
  input.tokens/targets    a batch of token ids (I32, (B, T)); some targets are -100 (ignored)
  output.logits/loss      the forward pass
  grad.<param name>       every gradient of the mean loss
  train.losses            losses of 10 AdamW steps with global-norm clipping on the same batch
  train.grad_norms        the gradient norm before clipping at each step
  final.<param name>      the weights after the 10 steps
and the Fledge config.json text, the optimizer settings, in the header's __metadata__.

Run by hand (the tests never need PyTorch):
  python3 -m venv .venv && .venv/bin/pip install torch safetensors
  .venv/bin/python Scripts/make_reference.py [VARIANT ...]
"""
import json
import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(__file__), "..", "Tests", "FledgeModelTests", "Fixtures")
BATCH, SEQ, STEPS = 3, 12, 10
OPTIM = dict(lr=1e-2, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)

BASE = dict(vocab_size=67, context_length=16, n_layer=2, n_embd=32, n_head=4, n_kv_head=4, mlp_width=64,
            norm="layernorm", norm_placement="pre", positions="learned", activation="gelu", parallel_block=False,
            tie_embeddings=True, bias=True, dropout=0.0, norm_eps=1e-5, rope_theta=10000.0)
VARIANTS = {
    # GPT-2: LayerNorm with bias, learned positions, GELU, tied head.
    "gpt2": dict(),
    # Llama: RMSNorm, rotary, SwiGLU, grouped-query attention, no biases, untied head.
    "llama": dict(norm="rmsnorm", positions="rotary", activation="swiglu", n_kv_head=2, bias=False,
                  tie_embeddings=False, mlp_width=48),
    # smallm: RMSNorm, learned positions, SwiGLU, one key/value head, parallel block, tied head.
    "smallm": dict(norm="rmsnorm", activation="swiglu", n_kv_head=1, parallel_block=True, bias=False, mlp_width=48),
    # Original Transformer: post-norm, sinusoidal positions, ReLU, untied head, biases.
    "postnorm": dict(norm_placement="post", positions="sinusoidal", activation="relu", tie_embeddings=False),
    # Post-norm parallel block with rotary, SiLU and grouped-query attention.
    "postparallel": dict(norm="rmsnorm", norm_placement="post", positions="rotary", activation="silu",
                         parallel_block=True, n_kv_head=2, bias=False),
    # Heads of their own size (head_size 12, not 32 / 4 = 8): rotary, grouped-query, biases, untied head.
    "widehead": dict(head_size=12, positions="rotary", n_kv_head=2, tie_embeddings=False),
}


def head_size(c):
    """HS: the config's head_size when given, else n_embd / n_head."""
    return c.get("head_size") or c["n_embd"] // c["n_head"]


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        hs = head_size(c)
        self.qkv = nn.Linear(c["n_embd"], (c["n_head"] + 2 * c["n_kv_head"]) * hs, bias=c["bias"])
        self.proj = nn.Linear(c["n_head"] * hs, c["n_embd"], bias=c["bias"])

    def forward(self, x, rope):
        c = self.c
        b, t, _ = x.shape
        nh, nkv = c["n_head"], c["n_kv_head"]
        hs = head_size(c)
        qkv = self.qkv(x)
        q = qkv[..., : nh * hs].view(b, t, nh, hs).transpose(1, 2)
        k = qkv[..., nh * hs : (nh + nkv) * hs].view(b, t, nkv, hs).transpose(1, 2)
        v = qkv[..., (nh + nkv) * hs :].view(b, t, nkv, hs).transpose(1, 2)
        if rope is not None:
            q, k = apply_rotary(q, rope), apply_rotary(k, rope)
        # Query head h reads key/value head h // (nh / nkv).
        k = k.repeat_interleave(nh // nkv, dim=1)
        v = v.repeat_interleave(nh // nkv, dim=1)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(b, t, nh * hs))


def apply_rotary(x, rope):
    """Llama's rotate-half convention: pairs (i, i + HS/2) rotate by pos * theta^(-2i/HS)."""
    cos, sin = rope
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


class MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        inner = 2 * c["mlp_width"] if c["activation"] == "swiglu" else c["mlp_width"]
        self.fc = nn.Linear(c["n_embd"], inner, bias=c["bias"])
        self.proj = nn.Linear(c["mlp_width"], c["n_embd"], bias=c["bias"])

    def forward(self, x):
        h = self.fc(x)
        a = self.c["activation"]
        if a == "swiglu":
            gate, up = h.chunk(2, dim=-1)
            h = F.silu(gate) * up
        elif a == "gelu":
            h = F.gelu(h, approximate="tanh")
        elif a == "relu":
            h = F.relu(h)
        else:
            h = F.silu(h)
        return self.proj(h)


def make_norm(c):
    if c["norm"] == "layernorm":
        return nn.LayerNorm(c["n_embd"], eps=c["norm_eps"], bias=c["bias"])
    return nn.RMSNorm(c["n_embd"], eps=c["norm_eps"])


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.ln_1 = make_norm(c)
        self.attn = Attention(c)
        if not c["parallel_block"]:
            self.ln_2 = make_norm(c)
        self.mlp = MLP(c)

    def forward(self, x, rope):
        pre, par = self.c["norm_placement"] == "pre", self.c["parallel_block"]
        if pre and not par:
            x = x + self.attn(self.ln_1(x), rope)
            return x + self.mlp(self.ln_2(x))
        if pre and par:
            h = self.ln_1(x)
            return x + self.attn(h, rope) + self.mlp(h)
        if not par:
            x = self.ln_1(x + self.attn(x, rope))
            return self.ln_2(x + self.mlp(x))
        return self.ln_1(x + self.attn(x, rope) + self.mlp(x))


class GPT(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.wte = nn.Embedding(c["vocab_size"], c["n_embd"])
        if c["positions"] == "learned":
            self.wpe = nn.Embedding(c["context_length"], c["n_embd"])
        self.h = nn.ModuleList([Block(c) for _ in range(c["n_layer"])])
        if c["norm_placement"] == "pre":
            self.ln_f = make_norm(c)
        if not c["tie_embeddings"]:
            self.lm_head = nn.Linear(c["n_embd"], c["vocab_size"], bias=False)

    def forward(self, tokens, targets):
        c = self.c
        t = tokens.shape[1]
        x = self.wte(tokens)
        rope = None
        if c["positions"] == "learned":
            x = x + self.wpe(torch.arange(t))
        elif c["positions"] == "sinusoidal":
            x = x + sinusoidal_table(c)[:t]
        else:
            hs = head_size(c)
            inv_freq = 1.0 / (c["rope_theta"] ** (torch.arange(0, hs, 2, dtype=torch.float32) / hs))
            freqs = torch.outer(torch.arange(t, dtype=torch.float32), inv_freq)
            rope = (freqs.cos(), freqs.sin())
        for block in self.h:
            x = block(x, rope)
        if c["norm_placement"] == "pre":
            x = self.ln_f(x)
        logits = x @ self.wte.weight.T if c["tie_embeddings"] else self.lm_head(x)
        loss = F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1), ignore_index=-100)
        return logits, loss


def sinusoidal_table(c):
    """PE[pos, 2i] = sin(pos / 10000^(2i/C)), PE[pos, 2i+1] = cos(...), computed in float64."""
    pe = torch.zeros(c["context_length"], c["n_embd"], dtype=torch.float64)
    pos = torch.arange(c["context_length"], dtype=torch.float64)[:, None]
    i = torch.arange(0, c["n_embd"], 2, dtype=torch.float64)
    angle = pos / (10000.0 ** (i / c["n_embd"]))
    pe[:, 0::2] = torch.sin(angle)
    pe[:, 1::2] = torch.cos(angle)
    return pe.float()


def initialise(model):
    """Non-trivial weights, so that every gradient (norm scales and biases included) is exercised."""
    for name, p in model.named_parameters():
        with torch.no_grad():
            if name.endswith("bias"):
                p.normal_(0, 0.05)
            elif p.dim() == 1:
                p.copy_(1 + 0.1 * torch.randn_like(p))
            elif name.startswith(("wte", "wpe")):
                p.normal_(0, 0.3)
            else:
                p.normal_(0, 0.08)


def param_groups(model):
    """Weight decay on matrices only: not on norms, biases or embeddings (Fledge's default)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (decay if p.dim() == 2 and not name.startswith(("wte", "wpe")) else no_decay).append(p)
    return [{"params": decay, "weight_decay": OPTIM["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}]


def make_fixture(name, overrides, seed):
    c = dict(BASE, **overrides)
    torch.manual_seed(seed)
    model = GPT(c)
    initialise(model)
    tokens = torch.randint(0, c["vocab_size"], (BATCH, SEQ))
    targets = torch.randint(0, c["vocab_size"], (BATCH, SEQ))
    targets[0, :3] = -100  # a masked prompt
    targets[2, 7] = -100
    tensors = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight" or not c["tie_embeddings"]}
    tensors["input.tokens"] = tokens.int()
    tensors["input.targets"] = targets.int()

    logits, loss = model(tokens, targets)
    loss.backward()
    tensors["output.logits"] = logits.detach().contiguous()
    tensors["output.loss"] = loss.detach().reshape(1)
    for k, p in model.named_parameters():
        tensors["grad." + k] = p.grad.detach().clone()
    first_norm = float(torch.sqrt(sum((p.grad ** 2).sum() for p in model.parameters())))
    max_norm = 0.7 * first_norm  # so that clipping is active on the first steps

    opt = torch.optim.AdamW(param_groups(model), lr=OPTIM["lr"], betas=OPTIM["betas"], eps=OPTIM["eps"])
    losses, norms = [], []
    for _ in range(STEPS):
        opt.zero_grad(set_to_none=True)
        _, loss = model(tokens, targets)
        loss.backward()
        norms.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)))
        losses.append(loss.item())
        opt.step()
    tensors["train.losses"] = torch.tensor(losses)
    tensors["train.grad_norms"] = torch.tensor(norms)
    for k, p in model.named_parameters():
        tensors["final." + k] = p.detach().clone()

    meta = {
        "config": json.dumps(dict(c, fledge_format_version=1, architecture="gpt")),
        "optimizer": json.dumps(dict(OPTIM, max_norm=max_norm, steps=STEPS)),
        "torch": torch.__version__,
    }
    os.makedirs(OUT, exist_ok=True)
    save_file(tensors, os.path.join(OUT, f"{name}.safetensors"), metadata=meta)
    print(f"{name:13s} params={sum(p.numel() for p in model.parameters()):6d} loss={float(tensors['output.loss']):.5f} "
          f"losses[-1]={losses[-1]:.5f} clip={max_norm:.4f}")


if __name__ == "__main__":
    import sys
    torch.set_num_threads(1)
    # Optional arguments name the variants to (re)write; by default all of them.
    wanted = set(sys.argv[1:]) or set(VARIANTS)
    for i, (name, overrides) in enumerate(VARIANTS.items()):
        if name in wanted:
            make_fixture(name, overrides, seed=1000 + i)
