#!/usr/bin/env python3
"""Side by side: `fledge bench train` (under each BLAS) and Scripts/bench_pytorch.py, interleaved in rounds on
the same machine, each run in its own process (so peak RSS is per run). Prints a table of medians over rounds:
tokens/s, the ratio to PyTorch, ms per step split into forward / backward / optimizer, Fledge's GFLOP/s and its
share of the GEMM ceiling (see TrainStepBenchmark), and peak RSS; the last line is JSON.

  .venv/bin/python Scripts/bench_train.py --rounds 3 --threads 2 [--blas mkl,openblas,blis]
  .venv/bin/python Scripts/bench_train.py --configs d --blas mkl --steps 3 --warmup 1   # the 50m shape
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLEDGE = os.path.join(ROOT, ".build", "release", "fledge")


def last_json(text):
    return json.loads(text.strip().splitlines()[-1])


def run_fledge(blas, configs, args):
    env = dict(os.environ, FLEDGE_BLAS=blas)
    out = subprocess.run([FLEDGE, "bench", "train", "--configs", configs, "--threads", str(args.threads),
                          "--steps", str(args.steps), "--warmup", str(args.warmup)],
                         env=env, capture_output=True, text=True, check=True).stdout
    return last_json(out)["fledge"]


def run_pytorch(configs, args):
    out = subprocess.run([sys.executable, os.path.join(ROOT, "Scripts", "bench_pytorch.py"), "--configs", configs,
                          "--threads", str(args.threads), "--steps", str(args.steps), "--warmup", str(args.warmup + 3)],
                         capture_output=True, text=True, check=True).stdout
    return last_json(out)["pytorch"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--configs", default="a,b,c")
    ap.add_argument("--blas", default="mkl,openblas")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--warmup", type=int, default=2)
    args = ap.parse_args()
    peers = [f"fledge/{b}" for b in args.blas.split(",")] + ["pytorch"]
    samples = {}  # (peer, config) -> list of (tokens/s, rss)
    for r in range(args.rounds):
        for config in args.configs.split(","):
            # Alternate the order each round so neither side always runs on a warmer machine.
            order = peers if r % 2 == 0 else list(reversed(peers))
            for peer in order:
                results = run_pytorch(config, args) if peer == "pytorch" else run_fledge(peer.split("/")[1], config, args)
                for x in results:
                    samples.setdefault((peer, x["name"]), []).append(x)
                print(f"round {r + 1} {config} {peer}: {results[0]['tokensPerSecond']:.0f} tokens/s", file=sys.stderr, flush=True)
    print(f"training step, fp32, {args.threads} threads, median of {args.rounds} rounds (each the median of {args.steps} steps)")
    print(f"{'config':6s}  {'peer':16s}  {'tokens/s':>9s}  {'vs pytorch':>10s}  {'forward':>8s}  {'backward':>8s}  "
          f"{'optimizer':>9s}  {'GFLOP/s':>7s}  {'of GEMM':>7s}  {'peak RSS MB':>11s}")
    summary = []
    for config in args.configs.split(","):
        torch_rate = statistics.median(s["tokensPerSecond"] for s in samples[("pytorch", config)])
        for peer in peers:
            runs = samples[(peer, config)]
            rates = [s["tokensPerSecond"] for s in runs]
            rate = statistics.median(rates)
            rss = max(s["peakRSSMegabytes"] for s in runs)
            part = {k: statistics.median(s[k] for s in runs)
                    for k in ("forwardMilliseconds", "backwardMilliseconds", "optimizerMilliseconds")}
            gflops = statistics.median(s["gflopsPerSecond"] for s in runs) if "gflopsPerSecond" in runs[0] else None
            share = statistics.median(s["ceilingShare"] for s in runs) if "ceilingShare" in runs[0] else None
            print(f"{config:6s}  {peer:16s}  {rate:9.0f}  {rate / torch_rate:9.2f}x  {part['forwardMilliseconds']:8.0f}  "
                  f"{part['backwardMilliseconds']:8.0f}  {part['optimizerMilliseconds']:9.0f}  "
                  f"{gflops if gflops is not None else float('nan'):7.1f}  "
                  f"{100 * share if share is not None else float('nan'):6.0f}%  {rss:11.0f}")
            summary.append(dict(config=config, peer=peer, tokensPerSecond=rate, samples=rates, ratioToPyTorch=rate / torch_rate,
                                peakRSSMegabytes=rss, gflopsPerSecond=gflops, ceilingShare=share, **part))
    print(json.dumps({"bench_train": summary}))


if __name__ == "__main__":
    main()
