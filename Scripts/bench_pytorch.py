#!/usr/bin/env python3
"""Time full training steps (forward, backward, clipping, AdamW) in PyTorch eager, fp32 — the peer of
`fledge bench train`. Same models (the GPT of make_reference.py, GPT-2 style), same batch, same threads.
Prints a table and, last, one JSON line.

  .venv/bin/python Scripts/bench_pytorch.py --configs a,b,c --threads 2 --steps 10
"""
import argparse
import json
import os
import resource
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(__file__))
from make_reference import BASE, GPT  # noqa: E402  (the same model definition the parity fixtures use)

CONFIGS = {
    "a": dict(vocab_size=8000, n_embd=128, n_layer=6, n_head=4, context_length=128, batch=32),
    "b": dict(vocab_size=8192, n_embd=256, n_layer=8, n_head=8, context_length=256, batch=16),
    "c": dict(vocab_size=4096, n_embd=384, n_layer=10, n_head=6, context_length=256, batch=8),
    # The 50m and 100m presets' shapes with an 8,192-token vocabulary (TrainStepBenchmark.reference).
    "d": dict(vocab_size=8192, n_embd=512, n_layer=12, n_head=8, context_length=1024, batch=4),
    "e": dict(vocab_size=8192, n_embd=640, n_layer=16, n_head=10, context_length=1024, batch=4),
}


def run(name, steps, warmup):
    spec = dict(CONFIGS[name])
    batch = spec.pop("batch")
    c = dict(BASE, **spec, n_kv_head=spec["n_head"], mlp_width=4 * spec["n_embd"])
    torch.manual_seed(1)
    model = GPT(c)
    with torch.no_grad():  # GPT-2 initialisation, as Fledge's
        for n, p in model.named_parameters():
            if p.dim() == 1:
                p.fill_(0.0 if n.endswith("bias") else 1.0)
            else:
                std = 0.02 / (2 * c["n_layer"]) ** 0.5 if n.endswith(("attn.proj.weight", "mlp.proj.weight")) else 0.02
                p.normal_(0, std)
    decay = [p for n, p in model.named_parameters() if p.dim() == 2 and not n.startswith(("wte", "wpe"))]
    other = [p for n, p in model.named_parameters() if not (p.dim() == 2 and not n.startswith(("wte", "wpe")))]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": other, "weight_decay": 0.0}],
                            lr=3e-4, betas=(0.9, 0.95), eps=1e-8)
    data = torch.randint(0, c["vocab_size"], (batch * c["context_length"] + 1,))
    x = data[:-1].view(batch, -1)
    y = data[1:].view(batch, -1)
    times, forward, backward, optimizer = [], [], [], []
    for step in range(warmup + steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        _, loss = model(x, y)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        t3 = time.perf_counter()
        if step >= warmup:
            times.append((t3 - t0) * 1000)
            forward.append((t1 - t0) * 1000)
            backward.append((t2 - t1) * 1000)
            optimizer.append((t3 - t2) * 1000)

    def median_of(values):
        return sorted(values)[len(values) // 2]

    median = median_of(times)
    tokens = batch * c["context_length"]
    return dict(name=name, parameters=sum(p.numel() for p in model.parameters()), tokensPerStep=tokens,
                stepMilliseconds=times, medianMilliseconds=median, tokensPerSecond=tokens / (median / 1000),
                forwardMilliseconds=median_of(forward), backwardMilliseconds=median_of(backward),
                optimizerMilliseconds=median_of(optimizer),
                peakRSSMegabytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, finalLoss=loss.item())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--configs", default="a,b,c")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"pytorch bench train: torch {torch.__version__}, {args.threads} threads, fp32, eager")
    print("config  params      tokens/step  ms/step(median)  forward  backward  optimizer  tokens/s  peak RSS MB")
    results = []
    for name in args.configs.split(","):
        r = run(name, args.steps, args.warmup)
        results.append(r)
        print(f"{name:6s}  {r['parameters']:<10d}  {r['tokensPerStep']:11d}  {r['medianMilliseconds']:15.1f}  "
              f"{r['forwardMilliseconds']:7.1f}  {r['backwardMilliseconds']:8.1f}  {r['optimizerMilliseconds']:9.1f}  "
              f"{r['tokensPerSecond']:8.0f}  {r['peakRSSMegabytes']:11.0f}")
    print(json.dumps({"pytorch": results}))


if __name__ == "__main__":
    main()
