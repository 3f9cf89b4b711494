#!/usr/bin/env python3
"""The PyTorch twin of `fledge train`: the same model, data, batch, schedule and wall-clock budget.

It reads a Fledge run (its config.json and training.json) and the prepared folder it trained on, starts from
exactly Fledge's initial weights (written by `fledge model init` with the run's seed), and trains in PyTorch
eager on the CPU: random windows of context + 1 tokens from the training shards, AdamW (betas, eps, weight
decay on matrices only), global-norm clipping, linear warmup then cosine decay to the floor following
whichever budget (steps or seconds) runs out first — as FledgeTraining does. Every `eval_every` steps it
measures the loss on the same validation windows Fledge uses (the first `eval_batches` sequential batches)
and logs (seconds, step, loss) to JSONL.

  python3 -m venv .venv && .venv/bin/pip install torch safetensors numpy
  .venv/bin/python Scripts/train_pytorch_twin.py --run runs/fledge --out runs/twin.jsonl --threads 2
  .venv/bin/python Scripts/train_pytorch_twin.py --compare runs/fledge/metrics.jsonl runs/twin.jsonl
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(__file__))
from make_reference import GPT  # noqa: E402  (the same architecture as FledgeModel, checked by the parity tests)

HEADER_BYTES = 1024


def read_split(folder, manifest, split):
    dtype = np.uint32 if manifest["token_type"] == "uint32" else np.uint16
    parts = [np.fromfile(os.path.join(folder, s["file"]), dtype=dtype, offset=HEADER_BYTES)
             for s in manifest["splits"][split]["shards"]]
    return np.concatenate(parts).astype(np.int64)


def train(args):
    torch.set_num_threads(args.threads)
    checkpoint = os.path.join(args.run, "final" if os.path.isdir(os.path.join(args.run, "final")) else "latest")
    config = json.load(open(os.path.join(checkpoint, "config.json")))
    training = json.load(open(os.path.join(checkpoint, "training.json")))
    state = json.load(open(os.path.join(checkpoint, "trainer-state.json")))
    folder = args.data or state["data_folder"]
    manifest = json.load(open(os.path.join(folder, "manifest.json")))
    train_tokens = torch.from_numpy(read_split(folder, manifest, "train"))
    val_tokens = torch.from_numpy(read_split(folder, manifest, "validation"))
    B = training["batch_size"]
    T = training.get("sequence_length") or config["context_length"]
    steps = training["max_steps"]
    budget = args.seconds or training.get("max_seconds") or float("inf")
    sched = training["schedule"]
    opt = training["optimizer"]

    model = GPT(config)
    with tempfile.TemporaryDirectory() as tmp:  # Fledge's initial weights, bit for bit
        subprocess.run([args.fledge, "model", "init", "--config", os.path.join(checkpoint, "config.json"),
                        "--seed", str(training["seed"]), "--output", tmp], check=True, stdout=subprocess.DEVNULL)
        weights = load_file(os.path.join(tmp, "model.safetensors"))
    model.load_state_dict({k: v for k, v in weights.items()}, strict=True)
    decay = [p for n, p in model.named_parameters() if p.dim() == 2 and not n.startswith(("wte", "wpe"))]
    rest = [p for n, p in model.named_parameters() if not (p.dim() == 2 and not n.startswith(("wte", "wpe")))]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": opt["weight_decay"]}, {"params": rest, "weight_decay": 0.0}],
        lr=sched["peak"], betas=(opt["beta1"], opt["beta2"]), eps=opt["epsilon"])

    windows = (len(train_tokens) - 1) // T
    generator = torch.Generator().manual_seed(training["seed"])
    order, cursor = torch.randperm(windows, generator=generator), 0
    val_windows = (len(val_tokens) - 1) // T
    eval_batches = min(training["eval_batches"], val_windows // B)

    def lr_at(step, progress):
        if step < sched["warmup_steps"]:
            return sched["peak"] * (step + 1) / sched["warmup_steps"]
        floor = sched["peak"] * sched["minimum_fraction"]
        return floor + (sched["peak"] - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    def evaluate():
        model.eval()
        total, count = 0.0, 0
        with torch.no_grad():
            for b in range(eval_batches):
                starts = [(b * B + i) * T for i in range(B)]
                x = torch.stack([val_tokens[s:s + T] for s in starts])
                y = torch.stack([val_tokens[s + 1:s + T + 1] for s in starts])
                _, loss = model(x, y)
                total += loss.item() * y.numel()
                count += y.numel()
        model.train()
        return total / count

    log = open(args.out, "w")
    start = time.time()
    log.write(json.dumps({"kind": "eval", "step": 0, "elapsed": 0.0, "validation_loss": evaluate()}) + "\n")
    step = 0
    warmup_end = None
    while step < steps and time.time() - start < budget:
        if cursor + B > windows:
            order, cursor = torch.randperm(windows, generator=generator), 0
        starts = order[cursor:cursor + B] * T
        cursor += B
        x = torch.stack([train_tokens[s:s + T] for s in starts])
        y = torch.stack([train_tokens[s + 1:s + T + 1] for s in starts])
        _, loss = model(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if training["clip_norm"] > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), training["clip_norm"])
        elapsed = time.time() - start
        for group in optimizer.param_groups:
            # Decay measured from the end of warmup, in steps or time, as Fledge's Trainer.decayProgress does.
            warmup = sched["warmup_steps"]
            if step >= warmup and warmup_end is None:
                warmup_end = elapsed
            progress = 0.0 if step < warmup else max(
                (step - warmup) / max(1, steps - warmup), (elapsed - warmup_end) / max(1e-9, budget - warmup_end))
            group["lr"] = lr_at(step, min(1.0, max(0.0, progress)))
        optimizer.step()
        step += 1
        if step % training["eval_every"] == 0:
            record = {"kind": "eval", "step": step, "elapsed": time.time() - start, "validation_loss": evaluate()}
            log.write(json.dumps(record) + "\n")
            log.flush()
            print(f"step {step}  {record['elapsed']:.0f}s  train {loss.item():.4f}  val {record['validation_loss']:.4f}",
                  flush=True)
    record = {"kind": "eval", "step": step, "elapsed": time.time() - start, "validation_loss": evaluate()}
    log.write(json.dumps(record) + "\n")
    print(f"done: {step} steps in {record['elapsed']:.0f}s, validation loss {record['validation_loss']:.4f}")


def compare(fledge_metrics, twin_metrics):
    def evals(path):
        rows = [json.loads(line) for line in open(path) if line.strip()]
        return [(r["elapsed"], r["step"], r["validation_loss"]) for r in rows if r["kind"] == "eval"]
    a, b = evals(fledge_metrics), evals(twin_metrics)
    print("validation loss against seconds (same model, data, batch, schedule, budget; 2 threads)")
    print(f"{'seconds':>8} {'Fledge step':>12} {'Fledge loss':>12} {'PyTorch step':>13} {'PyTorch loss':>13}")
    for t in range(0, int(max(a[-1][0], b[-1][0])) + 60, 60):
        fa = [r for r in a if r[0] <= t + 1e-9][-1]
        fb = [r for r in b if r[0] <= t + 1e-9][-1]
        print(f"{t:8d} {fa[1]:12d} {fa[2]:12.4f} {fb[1]:13d} {fb[2]:13.4f}")
    result = {"fledge_final_loss": a[-1][2], "pytorch_final_loss": b[-1][2], "fledge_steps": a[-1][1],
              "pytorch_steps": b[-1][1], "fledge_no_worse": a[-1][2] <= b[-1][2]}
    print(json.dumps(result))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", help="a Fledge run directory (its config and training settings are used)")
    parser.add_argument("--data", help="the prepared folder (default: the one the run recorded)")
    parser.add_argument("--out", default="twin.jsonl")
    parser.add_argument("--seconds", type=float, help="wall-clock budget (default: the run's)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--fledge", default=".build/release/fledge")
    parser.add_argument("--compare", nargs=2, metavar=("FLEDGE_METRICS", "TWIN_JSONL"))
    args = parser.parse_args()
    if args.compare:
        compare(*args.compare)
    else:
        train(args)
