#!/usr/bin/env python3
"""Batch-1 generation in PyTorch eager, fp32, with a KV cache — the peer of `fledge bench generate`, which
runs this script itself (interleaved rounds) on the weights and prompts it saves:
  <dir>/config.json, model.safetensors, prompts.json ({"long": [...], "short": [...]})
Greedy decode of --tokens tokens after the short prompt (tokens/s after the first) and the time to the first
token of the long prompt. GPT-2 style models (pre-LayerNorm, learned positions, GELU, tied embeddings) — the
reference configurations. Prints a line per run and, last, one JSON line.

  .venv/bin/python Scripts/bench_generate_pytorch.py --model DIR --tokens 200 --repeats 3 --threads 2
"""
import argparse
import json
import os
import sys
import time

import torch
import torch.nn.functional as F
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(__file__))
from make_reference import GPT  # noqa: E402  (the model definition the parity fixtures use)


class CachedGPT:
    """Incremental forward of make_reference.GPT with preallocated key/value caches."""

    def __init__(self, model):
        c = model.c
        assert c["norm_placement"] == "pre" and not c["parallel_block"] and c["positions"] == "learned"
        self.m, self.c = model, c
        self.nh, self.nkv = c["n_head"], c["n_kv_head"]
        self.hs = c["n_embd"] // self.nh
        shape = (c["n_layer"], 1, self.nkv, c["context_length"], self.hs)
        self.k, self.v = torch.zeros(shape), torch.zeros(shape)
        self.length = 0

    def reset(self):
        self.length = 0

    def forward(self, tokens):  # tokens (1, n) -> logits of the last position (V,)
        m, c, nh, nkv, hs = self.m, self.c, self.nh, self.nkv, self.hs
        n, start = tokens.shape[1], self.length
        x = m.wte(tokens) + m.wpe(torch.arange(start, start + n))
        for i, block in enumerate(m.h):
            h = block.ln_1(x)
            qkv = block.attn.qkv(h)
            q = qkv[..., : nh * hs].view(1, n, nh, hs).transpose(1, 2)
            self.k[i, :, :, start:start + n] = qkv[..., nh * hs:(nh + nkv) * hs].view(1, n, nkv, hs).transpose(1, 2)
            self.v[i, :, :, start:start + n] = qkv[..., (nh + nkv) * hs:].view(1, n, nkv, hs).transpose(1, 2)
            k = self.k[i, :, :, : start + n].repeat_interleave(nh // nkv, dim=1)
            v = self.v[i, :, :, : start + n].repeat_interleave(nh // nkv, dim=1)
            y = F.scaled_dot_product_attention(q, k, v, is_causal=n > 1)
            x = x + block.attn.proj(y.transpose(1, 2).reshape(1, n, nh * hs))
            x = x + block.mlp(block.ln_2(x))
        self.length += n
        x = m.ln_f(x[:, -1])
        return (x @ m.wte.weight.T)[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--tokens", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    config = json.load(open(os.path.join(args.model, "config.json")))
    prompts = json.load(open(os.path.join(args.model, "prompts.json")))
    model = GPT(config)
    model.load_state_dict(load_file(os.path.join(args.model, "model.safetensors")), strict=True)
    model.eval()
    cached = CachedGPT(model)
    decode, first, tokens = [], [], []
    with torch.inference_mode():
        for run in range(args.repeats + 1):
            cached.reset()
            t0 = time.perf_counter()
            logits = cached.forward(torch.tensor([prompts["short"]]))
            out = [int(torch.argmax(logits))]
            t1 = time.perf_counter()
            while len(out) < args.tokens:
                logits = cached.forward(torch.tensor([[out[-1]]]))
                out.append(int(torch.argmax(logits)))
            t2 = time.perf_counter()
            cached.reset()
            t3 = time.perf_counter()
            int(torch.argmax(cached.forward(torch.tensor([prompts["long"]]))))
            t4 = time.perf_counter()
            if run == 0:
                continue  # warm-up
            decode.append((len(out) - 1) / (t2 - t1))
            first.append((t4 - t3) * 1000)
            tokens = out
            print(f"pytorch run {run}: decode {decode[-1]:.1f} tokens/s, first token {first[-1]:.1f} ms "
                  f"({len(prompts['long'])}-token prompt)", file=sys.stderr)
    print(json.dumps({"pytorch": {"decodeTokensPerSecond": decode, "timeToFirstTokenMilliseconds": first,
                                  "greedyTokens": tokens, "torch": torch.__version__}}))


if __name__ == "__main__":
    main()
