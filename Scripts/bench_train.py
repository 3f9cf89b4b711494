#!/usr/bin/env python3
"""Side by side: `fledge bench train` (under each BLAS) and Scripts/bench_pytorch.py, interleaved in rounds on
the same machine, each run in its own process (so peak RSS is per run). Prints a table of medians over rounds:
tokens/s, the ratio to PyTorch, ms per step split into forward / backward / optimizer, Fledge's GFLOP/s and its
share of the GEMM ceiling (see TrainStepBenchmark), and peak RSS; the last line is JSON.

  .venv/bin/python Scripts/bench_train.py --rounds 3 --threads 2 [--blas mkl,openblas,blis]
  .venv/bin/python Scripts/bench_train.py --configs d --blas mkl --steps 3 --warmup 1   # the 50m shape
  .venv/bin/python Scripts/bench_train.py --blas mkl,mkl-vendor --pytorch stock,any-vendor

--blas mkl-vendor is MKL under its own vendor rule (FLEDGE_MKL_VENDOR_CHECK=1: its default code path on a CPU that is not
Intel's; Fledge's default lets MKL choose by the CPU's instructions). --pytorch any-vendor runs PyTorch with the
same answer to MKL's vendor question (a one-line shim on LD_PRELOAD; PyTorch bundles MKL and exports the check),
so the comparison can be made with both sides on the same MKL kernels. Ratios are given against each PyTorch.
"""
import argparse
import atexit
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLEDGE = os.path.join(ROOT, ".build", "release", "fledge")


def last_json(text):
    return json.loads(text.strip().splitlines()[-1])


def run_fledge(blas, configs, args):
    env = dict(os.environ, FLEDGE_BLAS=blas)
    if blas == "mkl-vendor":
        env.update(FLEDGE_BLAS="mkl", FLEDGE_MKL_VENDOR_CHECK="1")
    out = subprocess.run([FLEDGE, "bench", "train", "--configs", configs, "--threads", str(args.threads),
                          "--steps", str(args.steps), "--warmup", str(args.warmup)],
                         env=env, capture_output=True, text=True, check=True).stdout
    return last_json(out)["fledge"]


def any_vendor_shim():
    """A shared library whose mkl_serv_intel_cpu_true answers yes, for LD_PRELOAD (what CFledgeMKL does in Fledge)."""
    work = tempfile.mkdtemp(prefix="fledge-mkl-shim-")
    atexit.register(shutil.rmtree, work, True)
    source, library = os.path.join(work, "shim.c"), os.path.join(work, "libshim.so")
    open(source, "w").write("int mkl_serv_intel_cpu_true(void) { return 1; }\n")
    subprocess.run(["cc", "-shared", "-fPIC", "-o", library, source], check=True)
    return library


def run_pytorch(configs, args, variant="stock"):
    env = dict(os.environ)
    if variant == "any-vendor":
        env["LD_PRELOAD"] = args.shim
    out = subprocess.run([sys.executable, os.path.join(ROOT, "Scripts", "bench_pytorch.py"), "--configs", configs,
                          "--threads", str(args.threads), "--steps", str(args.steps), "--warmup", str(args.warmup + 3)],
                         capture_output=True, text=True, check=True, env=env).stdout
    return last_json(out)["pytorch"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--configs", default="a,b,c")
    ap.add_argument("--blas", default="mkl,openblas")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--pytorch", default="stock", help="stock, any-vendor, or both comma-separated")
    args = ap.parse_args()
    torches = ["pytorch" if v == "stock" else f"pytorch/{v}" for v in args.pytorch.split(",")]
    if "pytorch/any-vendor" in torches:
        args.shim = any_vendor_shim()
    peers = [f"fledge/{b}" for b in args.blas.split(",")] + torches
    samples = {}  # (peer, config) -> list of (tokens/s, rss)
    for r in range(args.rounds):
        for config in args.configs.split(","):
            # Alternate the order each round so neither side always runs on a warmer machine.
            order = peers if r % 2 == 0 else list(reversed(peers))
            for peer in order:
                if peer.startswith("pytorch"):
                    results = run_pytorch(config, args, peer.split("/")[1] if "/" in peer else "stock")
                else:
                    results = run_fledge(peer.split("/")[1], config, args)
                for x in results:
                    samples.setdefault((peer, x["name"]), []).append(x)
                print(f"round {r + 1} {config} {peer}: {results[0]['tokensPerSecond']:.0f} tokens/s", file=sys.stderr, flush=True)
    print(f"training step, fp32, {args.threads} threads, median of {args.rounds} rounds (each the median of {args.steps} steps)")
    vs = "".join(f"  {'vs ' + t:>21s}" for t in torches)
    print(f"{'config':6s}  {'peer':19s}  {'tokens/s':>9s}{vs}  {'forward':>8s}  {'backward':>8s}  "
          f"{'optimizer':>9s}  {'GFLOP/s':>7s}  {'of GEMM':>7s}  {'peak RSS MB':>11s}")
    summary = []
    for config in args.configs.split(","):
        torch_rates = {t: statistics.median(s["tokensPerSecond"] for s in samples[(t, config)]) for t in torches}
        for peer in peers:
            runs = samples[(peer, config)]
            rates = [s["tokensPerSecond"] for s in runs]
            rate = statistics.median(rates)
            rss = max(s["peakRSSMegabytes"] for s in runs)
            part = {k: statistics.median(s[k] for s in runs)
                    for k in ("forwardMilliseconds", "backwardMilliseconds", "optimizerMilliseconds")}
            gflops = statistics.median(s["gflopsPerSecond"] for s in runs) if "gflopsPerSecond" in runs[0] else None
            share = statistics.median(s["ceilingShare"] for s in runs) if "ceilingShare" in runs[0] else None
            ratios = "".join(f"  {rate / torch_rates[t]:20.2f}x" for t in torches)
            print(f"{config:6s}  {peer:19s}  {rate:9.0f}{ratios}  {part['forwardMilliseconds']:8.0f}  "
                  f"{part['backwardMilliseconds']:8.0f}  {part['optimizerMilliseconds']:9.0f}  "
                  f"{gflops if gflops is not None else float('nan'):7.1f}  "
                  f"{100 * share if share is not None else float('nan'):6.0f}%  {rss:11.0f}")
            summary.append(dict(config=config, peer=peer, tokensPerSecond=rate, samples=rates,
                                ratioToPyTorch=rate / torch_rates[torches[0]],
                                ratios={t: rate / torch_rates[t] for t in torches},
                                peakRSSMegabytes=rss, gflopsPerSecond=gflops, ceilingShare=share, **part))
    print(json.dumps({"bench_train": summary}))


if __name__ == "__main__":
    main()
