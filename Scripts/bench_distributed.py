#!/usr/bin/env python3
"""Data-parallel training on this machine: 2 ranks × 1 thread (mpirun) against 1 process × 2 threads, on the
reference configurations a, b and c of `fledge bench train`, at the same global batch.

Each run is a real `fledge train` on Shakespeare (BPE with the configuration's vocabulary) for --steps updates;
tokens/s come from metrics.jsonl between update 5 and the last (warm-up, the step-0 evaluation and the final save
left out); the all-reduce's share is what rank 0 reports (time in the gradient and loss all-reduces, which
includes waiting for the slower rank). Rounds are interleaved (a, b, c each in both modes per round) because
the machine is noisy; the table gives medians and the ratio of medians. Prints a table and a final JSON line.

Usage: python3 Scripts/bench_distributed.py [--rounds 3] [--steps 40]
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLEDGE = os.environ.get("FLEDGE", os.path.join(ROOT, ".build/release/fledge"))
# name: (vocabulary, context, layers, width, heads, global batch) as in TrainStepBenchmark.reference.
CONFIGS = {
    "a": (8000, 128, 6, 128, 4, 32),
    "b": (8192, 256, 8, 256, 8, 16),
    "c": (4096, 256, 10, 384, 6, 8),
}


def run(args, **kw):
    result = subprocess.run(args, capture_output=True, text=True, **kw)
    if result.returncode != 0:
        sys.exit(f"{' '.join(args[:6])} ... failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return result.stdout


def rate(folder):
    records = [json.loads(line) for line in open(os.path.join(folder, "metrics.jsonl"))]
    train = [r for r in records if r["kind"] == "train"]
    first = next(r for r in train if r["step"] == 5)
    last = train[-1]
    return (last["tokens"] - first["tokens"]) / (last["elapsed"] - first["elapsed"])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=40)
    options = parser.parse_args()
    env = dict(os.environ)
    if os.geteuid() == 0:
        env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    env["OMPI_MCA_btl_vader_single_copy_mechanism"] = "none"
    work = tempfile.mkdtemp(prefix="bench-distributed-")
    try:
        text = os.path.join(ROOT, "data/shakespeare/shakespeare.txt")
        for name, (vocab, *_rest) in CONFIGS.items():
            folder = os.path.join(work, name)
            os.makedirs(folder)
            tokenizer = os.path.join(folder, "tok.json")
            run([FLEDGE, "tokenizer", "train", "--input", text, "--vocab-size", str(vocab), "--output", tokenizer])
            run([FLEDGE, "data", "prepare", text, "--split-on", "blank-line", "--tokenizer", tokenizer,
                 "--output", os.path.join(folder, "data")])
        results = {name: {"one": [], "two": [], "share": []} for name in CONFIGS}
        for round_ in range(options.rounds):
            for name, (vocab, context, layers, width, heads, batch) in CONFIGS.items():
                common = ["train", "--data", os.path.join(work, name, "data"), "--layers", str(layers),
                          "--width", str(width), "--heads", str(heads), "--context", str(context),
                          "--steps", str(options.steps), "--eval-every", "1000000", "--eval-batches", "1",
                          "--sample-tokens", "0", "--checkpoint-every", "1000000", "--dropout", "0"]
                one = os.path.join(work, name, f"one-{round_}")
                run([FLEDGE] + common + ["--run", one, "--batch-size", str(batch), "--threads", "2"], env=env)
                two = os.path.join(work, name, f"two-{round_}")
                log = run(["mpirun", "-n", "2", "--bind-to", "none", FLEDGE] + common
                          + ["--run", two, "--batch-size", str(batch // 2), "--threads", "1"], env=env)
                share = float(re.search(r"all-reduce: [0-9.]+ ms per update, ([0-9.]+)%", log).group(1))
                results[name]["one"].append(rate(one))
                results[name]["two"].append(rate(two))
                results[name]["share"].append(share)
                print(f"round {round_ + 1} {name}: 1×2 threads {rate(one):8.0f} tok/s   2 ranks×1 thread "
                      f"{rate(two):8.0f} tok/s   all-reduce {share:.1f}% of rank 0's time", flush=True)
                shutil.rmtree(one)
                shutil.rmtree(two)
        print()
        print("config  1 process × 2 threads  2 ranks × 1 thread  ratio  all-reduce share   (tokens/s, medians)")
        summary = {}
        for name, r in results.items():
            one, two, share = (statistics.median(r[k]) for k in ("one", "two", "share"))
            summary[name] = {"one_process_tokens_per_s": round(one), "two_ranks_tokens_per_s": round(two),
                             "ratio": round(two / one, 3), "allreduce_share_percent": share}
            print(f"{name:6}  {one:21.0f}  {two:18.0f}  {two / one:5.2f}  {share:15.1f}%")
        print(json.dumps({"benchmark": "distributed", "rounds": options.rounds, "steps": options.steps,
                          "configs": summary}))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
