#!/usr/bin/env python3
"""Side by side: `fledge bench train` (under each BLAS) and Scripts/bench_pytorch.py, interleaved in rounds on
the same machine, each run in its own process (so peak RSS is per run). Prints a table of medians over rounds
and the ratio to PyTorch; the last line is JSON.

  .venv/bin/python Scripts/bench_train.py --rounds 3 --threads 2 [--blas mkl,openblas,blis]
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
                    samples.setdefault((peer, x["name"]), []).append((x["tokensPerSecond"], x["peakRSSMegabytes"]))
                print(f"round {r + 1} {config} {peer}: {results[0]['tokensPerSecond']:.0f} tokens/s", file=sys.stderr, flush=True)
    print(f"training step, fp32, {args.threads} threads, median of {args.rounds} rounds (each the median of {args.steps} steps)")
    print(f"{'config':6s}  {'peer':16s}  {'tokens/s':>9s}  {'vs pytorch':>10s}  {'peak RSS MB':>11s}")
    summary = []
    for config in args.configs.split(","):
        torch_rate = statistics.median(s[0] for s in samples[("pytorch", config)])
        for peer in peers:
            rates = [s[0] for s in samples[(peer, config)]]
            rate = statistics.median(rates)
            rss = max(s[1] for s in samples[(peer, config)])
            print(f"{config:6s}  {peer:16s}  {rate:9.0f}  {rate / torch_rate:9.2f}x  {rss:11.0f}")
            summary.append(dict(config=config, peer=peer, tokensPerSecond=rate, samples=rates, ratioToPyTorch=rate / torch_rate,
                                peakRSSMegabytes=rss))
    print(json.dumps({"bench_train": summary}))


if __name__ == "__main__":
    main()
