#!/usr/bin/env python3
"""Check Fledge's exports and imports with the real peers: transformers, gguf (and PyTorch).

  .venv/bin/python Scripts/check_interop.py [--fledge PATH] [--quick]

1. Trains three small runs with `fledge` (GPT-2 style; GPT-2 style with sinusoidal positions, grouped-query
   attention and no biases; Llama style with grouped-query attention, heads of their own size, untied head) and
   exports each with `fledge export --format hf`. transformers' AutoModelForCausalLM / AutoTokenizer load the
   folder; the logits on held-out text must match Fledge's (`fledge model logits`) within 1e-4 relative, a
   64-token greedy continuation must be the same, and AutoTokenizer must give Fledge's ids.
2. Exports GGUF (f32 and f16) for a GPT-2 and a Llama run; the gguf package reads every key and tensor, and
   transformers loads the file (gguf_file=) with logits that match (f16: within f16 rounding).
3. Makes GPT2LMHeadModel and LlamaForCausalLM folders with transformers (random weights; the GPT-2 small shape,
   124M, unless --quick), imports them with `fledge import hf`, compares logits, checks that export after
   import gives back the same tensors, and times greedy decoding in both.
Prints one line per check, a table, and a final JSON line; exits 1 on any failure.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
from safetensors.numpy import load_file
from transformers import (AutoModelForCausalLM, AutoTokenizer, GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast,
                          LlamaConfig, LlamaForCausalLM)
import gguf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
failures = []
results = {}


def check(name, ok, detail=""):
    print(f"interop: {'ok' if ok else 'FAILED'}: {name}{': ' + detail if detail else ''}", flush=True)
    if not ok:
        failures.append(name)


def run(*args, capture=True):
    p = subprocess.run([str(a) for a in args], capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, args))} failed:\n{p.stdout}\n{p.stderr}")
    return p.stdout + p.stderr


def rel_diff(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-12))


def fledge_logits(fledge, run_dir, text_file, out, greedy):
    run(fledge, "model", "logits", run_dir, "--text", text_file, "--output", out, "--greedy", greedy)
    t = load_file(out)
    return t["tokens"], t["logits"], t["greedy"]


def hf_greedy(model, ids, n):
    ids = torch.tensor([list(ids)])
    out = []
    with torch.no_grad():
        for _ in range(n):
            nxt = int(model(ids).logits[0, -1].argmax())
            out.append(nxt)
            ids = torch.cat([ids, torch.tensor([[nxt]])], dim=1)
    return out


def compare_model(label, model, fledge_tokens, fledge_logits_, fledge_greedy, tol):
    with torch.no_grad():
        logits = model(torch.tensor([fledge_tokens.tolist()])).logits[0].float().numpy()
    d = rel_diff(fledge_logits_, logits)
    check(f"{label}: logits on held-out text", d <= tol, f"max relative difference {d:.2e} (limit {tol:g})")
    if fledge_greedy is not None and len(fledge_greedy):
        g = hf_greedy(model, fledge_tokens.tolist(), len(fledge_greedy))
        same = g == fledge_greedy.tolist()
        check(f"{label}: greedy {len(g)} tokens", same,
              "identical" if same else f"first difference at {next(i for i in range(len(g)) if g[i] != fledge_greedy[i])}")
    return d


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fledge", default=os.environ.get("FLEDGE", os.path.join(ROOT, ".build/release/fledge")))
    ap.add_argument("--quick", action="store_true", help="small import shapes instead of GPT-2 small's")
    ap.add_argument("--keep", help="keep the work folder here")
    args = ap.parse_args()
    fledge = os.path.abspath(args.fledge)
    torch.set_num_threads(2)
    work = args.keep or tempfile.mkdtemp(prefix="fledge-interop-")
    os.makedirs(work, exist_ok=True)
    corpus = open(os.path.join(ROOT, "data/shakespeare/shakespeare.txt"), encoding="utf-8").read()
    train_text, held = corpus[:400_000], corpus[-2_000:]
    P = lambda *parts: os.path.join(work, *parts)
    open(P("train.txt"), "w").write(train_text)
    held_text = held[held.index("\n") + 1:][:300]
    open(P("held.txt"), "w").write(held_text)

    # 1. Train, export to transformers, compare.
    run(fledge, "tokenizer", "train", "--input", P("train.txt"), "--vocab-size", 512, "--output", P("tok.json"))
    run(fledge, "data", "prepare", P("train.txt"), "--split-on", "blank-line", "--tokenizer", P("tok.json"),
        "--output", P("data"))
    common = ["--layers", 2, "--width", 64, "--heads", 4, "--context", 256, "--batch-size", 4, "--steps", 40,
              "--eval-every", 1000, "--sample-tokens", 0]
    variants = {
        "gpt2": [],
        "gpt2-sinusoidal-gqa": ["--positions", "sinusoidal", "--kv-heads", 2, "--no-bias", "--activation", "relu",
                                "--no-tie-embeddings"],
        "llama": ["--norm", "rmsnorm", "--positions", "rotary", "--activation", "swiglu", "--kv-heads", 2,
                  "--head-size", 24, "--no-bias", "--no-tie-embeddings", "--mlp-width", 96],
        "llama-bias-tied": ["--norm", "rmsnorm", "--positions", "rotary", "--activation", "swiglu", "--kv-heads", 1],
    }
    for name, flags in variants.items():
        run(fledge, "train", "--data", P("data"), "--run", P("run-" + name), *common, *flags)
        run(fledge, "export", P("run-" + name), "--format", "hf", "--output", P("hf-" + name))
        tokens, logits, greedy = fledge_logits(fledge, P("run-" + name), P("held.txt"), P(name + ".logits"), 64)
        model = AutoModelForCausalLM.from_pretrained(P("hf-" + name)).eval()
        check(f"hf {name}: loads as {type(model).__name__}", True)
        results[f"hf_{name}_logits_rel"] = compare_model(f"hf {name}", model, tokens, logits, greedy, 1e-4)
        tok = AutoTokenizer.from_pretrained(P("hf-" + name))
        ids = tok(held_text)["input_ids"]
        check(f"hf {name}: AutoTokenizer ids", ids == tokens.tolist(), f"{len(ids)} tokens")

    # 2. GGUF: a GPT-2 run shaped as transformers' GGUF reader assumes (context 1024, MLP 4 × width), a Llama run.
    run(fledge, "train", "--data", P("data"), "--run", P("run-gpt2-1024"), *common[:-10], "--context", 1024,
        "--batch-size", 2, "--steps", 20, "--eval-every", 1000, "--sample-tokens", 0)
    for name in ["gpt2-1024", "llama"]:
        tokens, logits, _ = fledge_logits(fledge, P("run-" + name), P("held.txt"), P(name + ".gg.logits"), 0)
        for dtype, tol in [("f32", 1e-4), ("f16", 2e-2)]:
            path = P(f"{name}-{dtype}.gguf")
            run(fledge, "export", P("run-" + name), "--format", "gguf", "--dtype", dtype, "--output", path)
            reader = gguf.GGUFReader(path)
            keys = [f.name for f in reader.fields.values()]
            arch = "gpt2" if name.startswith("gpt2") else "llama"
            need = ["general.architecture", f"{arch}.block_count", f"{arch}.context_length", f"{arch}.embedding_length",
                    "tokenizer.ggml.model", "tokenizer.ggml.tokens", "tokenizer.ggml.merges", "tokenizer.ggml.eos_token_id"]
            check(f"gguf {name} {dtype}: gguf reads {len(keys)} keys and {len(reader.tensors)} tensors",
                  all(k in keys for k in need) and all(np.all(np.isfinite(np.asarray(t.data, dtype=np.float32))) for t in reader.tensors),
                  "missing: " + ", ".join(k for k in need if k not in keys) if any(k not in keys for k in need) else "")
            folder = os.path.dirname(path)
            model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=os.path.basename(path), dtype=torch.float32).eval()
            results[f"gguf_{name}_{dtype}_logits_rel"] = compare_model(f"gguf {name} {dtype}", model, tokens, logits, None, tol)

    # 3. Import from transformers: random weights in the real shapes.
    # GPT-2's own tokenizer, built by transformers from the bundled vocabulary and merges.
    vocab = json.load(open(os.path.join(ROOT, "data/tokenizers/gpt2/encoder.json"), encoding="utf-8"))
    merges = [tuple(line.split()) for line in
              open(os.path.join(ROOT, "data/tokenizers/gpt2/vocab.bpe"), encoding="utf-8").read().split("\n")[1:]
              if line.strip()]
    gpt2_tok = GPT2TokenizerFast(vocab=vocab, merges=merges)
    small = dict(n_embd=128, n_layer=2, n_head=4) if args.quick else dict(n_embd=768, n_layer=12, n_head=12)
    shapes = {
        "gpt2": GPT2LMHeadModel(GPT2Config(vocab_size=50257, n_positions=1024, **small)),
        "llama": LlamaForCausalLM(LlamaConfig(
            vocab_size=50257, hidden_size=small["n_embd"], intermediate_size=small["n_embd"] * 8 // 3,
            num_hidden_layers=small["n_layer"], num_attention_heads=small["n_head"],
            num_key_value_heads=small["n_head"] // 4, max_position_embeddings=1024, tie_word_embeddings=False)),
    }
    prompt = "The quick brown fox jumps over the lazy dog because"
    open(P("prompt.txt"), "w").write(prompt)
    table = []
    for name, model in shapes.items():
        model.eval()
        src = P("made-" + name)
        model.save_pretrained(src)
        gpt2_tok.save_pretrained(src)
        params = sum(p.numel() for p in model.parameters())
        run(fledge, "import", "hf", src, "--output", P("imported-" + name))
        tokens, logits, greedy = fledge_logits(fledge, P("imported-" + name), P("prompt.txt"), P(name + ".imp.logits"), 16)
        check(f"import {name} ({params / 1e6:.0f}M): tokens", tokens.tolist() == gpt2_tok(prompt)["input_ids"])
        results[f"import_{name}_logits_rel"] = compare_model(f"import {name}", model, tokens, logits, greedy, 1e-4)
        run(fledge, "export", P("imported-" + name), "--format", "hf", "--output", P("reexported-" + name))
        original = load_file(os.path.join(src, "model.safetensors"))
        back = load_file(P("reexported-" + name, "model.safetensors"))
        same = all(k in back and np.array_equal(original[k], back[k]) for k in original if not k.endswith(".attn.bias"))
        check(f"import {name}: export after import gives the same {len(original)} tensors", same)
        # Decode speed: 64 greedy tokens after the prompt, both on 2 threads, rounds interleaved, medians.
        ids = torch.tensor([tokens.tolist()])
        with torch.no_grad():
            model.generate(ids, max_new_tokens=4, do_sample=False)  # warm-up
        fledge_rounds, hf_rounds = [], []
        for _ in range(1 if args.quick else 3):
            out = run(fledge, "generate", P("imported-" + name), "--prompt", prompt, "--tokens", 64,
                      "--temperature", 0, "--threads", 2)
            fledge_rounds.append(float(out.split(" tokens/s")[0].split()[-1]))
            with torch.no_grad():
                start = time.perf_counter()
                gen = model.generate(ids, max_new_tokens=64, min_new_tokens=64, do_sample=False)
                hf_rounds.append((gen.shape[1] - ids.shape[1]) / (time.perf_counter() - start))
        fledge_tps, hf_tps = float(np.median(fledge_rounds)), float(np.median(hf_rounds))
        table.append((name, params, fledge_tps, hf_tps))
        results[f"decode_{name}_fledge_tokens_per_s"] = round(fledge_tps, 1)
        results[f"decode_{name}_transformers_tokens_per_s"] = round(hf_tps, 1)

    print("\ndecode, 64 greedy tokens, 2 threads (median of the rounds)")
    print("model   parameters  fledge tok/s  transformers tok/s  ratio")
    for name, params, f, h in table:
        print(f"{name:6s}  {params:10d}  {f:12.1f}  {h:18.1f}  {f / h:5.2f}")
    results["failures"] = failures
    print(json.dumps(results))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
