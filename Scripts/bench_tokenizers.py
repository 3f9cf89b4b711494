#!/usr/bin/env python3
"""Side by side, same files, same machine, same threads: `fledge bench tokenizer` against Hugging Face
tokenizers (BpeTrainer; encode_batch) and tiktoken (encode_ordinary; encode_ordinary_batch), in rounds.
Reports BPE training time (vocab 8192 on ~10 MB), GPT-2 encoding throughput, and the compression (bytes per
token) of the Fledge- and HF-trained vocabularies on held-out text, both measured by the same encoder (HF
tokenizers loading each tokenizer.json). Prints a table; the last line is JSON.

  .venv/bin/pip install tokenizers tiktoken
  .venv/bin/python Scripts/bench_tokenizers.py --train TEN_MB.txt --held-out OTHER.txt --threads 2
With no --train/--held-out it builds them from ../shared/corpora (Shakespeare + both Bibles; Milton held out).
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
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLEDGE = os.path.join(ROOT, ".build", "release", "fledge")
GPT2 = os.path.join(ROOT, "data", "tokenizers", "gpt2")
PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def read(path):
    return open(path, encoding="utf-8", newline="").read()


def default_files(tmp):
    corpora = os.path.join(ROOT, "..", "shared", "corpora")
    train = os.path.join(tmp, "train.txt")
    with open(train, "w", encoding="utf-8", newline="") as f:
        text = "".join(read(os.path.join(corpora, n)) for n in ["shakespeare.txt", "kjv_bible.txt", "web_bible.txt"])
        f.write(text[:10_000_000])
    return train, os.path.join(corpora, "milton.txt")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--train")
    ap.add_argument("--held-out")
    ap.add_argument("--vocab-size", type=int, default=8192)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    os.environ["RAYON_NUM_THREADS"] = str(args.threads)  # HF tokenizers' thread pool
    import tiktoken
    from tiktoken.load import load_tiktoken_bpe
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tmp = tempfile.mkdtemp(prefix="fledge-bench-tokenizers-")
    atexit.register(shutil.rmtree, tmp, True)
    train, held_out = (args.train, args.held_out) if args.train else default_files(tmp)
    text = read(train)
    held = read(held_out)
    mb = len(text.encode()) / 1e6
    lines = text.splitlines(keepends=True)
    chunks = ["".join(lines[i::16 * args.threads]) for i in range(16 * args.threads)]  # large batch items
    enc = tiktoken.Encoding(name="r50k_base", pat_str=PATTERN, mergeable_ranks=load_tiktoken_bpe(os.path.join(GPT2, "r50k_base.tiktoken")),
                            special_tokens={"<|endoftext|>": 50256})
    hf_gpt2 = Tokenizer(models.BPE.from_file(os.path.join(GPT2, "encoder.json"), os.path.join(GPT2, "vocab.bpe")))
    hf_gpt2.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)

    hf_train, tt1, ttb, hfb, fledge_runs = [], [], [], [], []
    fledge_json = os.path.join(tmp, "fledge.json")
    for r in range(args.rounds):
        out = subprocess.run([FLEDGE, "bench", "tokenizer", "--train", train, "--held-out", held_out, "--vocab-size",
                              str(args.vocab_size), "--threads", str(args.threads), "--rounds", "1", "--output", fledge_json],
                             check=True, capture_output=True, text=True).stdout
        fledge_runs.append(json.loads(out.strip().splitlines()[-1])["fledge"])
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        trainer = trainers.BpeTrainer(vocab_size=args.vocab_size, min_frequency=2, show_progress=False,
                                      special_tokens=["<pad>", "<unk>", "<bos>", "<eos>"],
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        t = time.perf_counter(); tok.train([train], trainer); hf_train.append(time.perf_counter() - t)
        t = time.perf_counter(); n_tt = len(enc.encode_ordinary(text)); tt1.append(mb / (time.perf_counter() - t))
        t = time.perf_counter(); enc.encode_ordinary_batch(chunks, num_threads=args.threads); ttb.append(mb / (time.perf_counter() - t))
        t = time.perf_counter(); hf_gpt2.encode_batch(chunks); hfb.append(mb / (time.perf_counter() - t))
        print(f"round {r + 1} done", file=sys.stderr)
    held_bytes = len(held.encode())
    hf_bpt = held_bytes / len(tok.encode(held).ids)
    fledge_bpt = held_bytes / len(Tokenizer.from_file(fledge_json).encode(held).ids)
    med = statistics.median
    fl_train = med(r["trainingMedianSeconds"] for r in fledge_runs)
    fl_one = med(r["encodeMBPerSecondOneThread"] for r in fledge_runs)
    fl_batch = med(r["encodeMBPerSecondBatch"] for r in fledge_runs)
    assert all(r["encodedTokens"] == n_tt for r in fledge_runs), "Fledge and tiktoken disagree on the token count"
    print(f"tokenizers, {args.threads} threads, {mb:.1f} MB training/encoding text, median of {args.rounds} rounds")
    print(f"{'measure':42s} {'Fledge':>9s} {'peer':>9s} {'ratio':>7s}")
    rows = [
        (f"BPE training, vocab {args.vocab_size} (s, HF BpeTrainer)", fl_train, med(hf_train), med(hf_train) / fl_train),
        ("encode GPT-2, 1 thread (MB/s, tiktoken)", fl_one, med(tt1), fl_one / med(tt1)),
        (f"encode GPT-2, batch {args.threads} threads (MB/s, tiktoken)", fl_batch, med(ttb), fl_batch / med(ttb)),
        (f"encode GPT-2, batch {args.threads} threads (MB/s, HF)", fl_batch, med(hfb), fl_batch / med(hfb)),
        ("held-out bytes/token, same-size vocab (HF-trained)", fledge_bpt, hf_bpt, fledge_bpt / hf_bpt),
    ]
    for name, ours, theirs, ratio in rows:
        print(f"{name:42s} {ours:9.3f} {theirs:9.3f} {ratio:6.2f}x")
    print(json.dumps({"bench_tokenizers": [dict(measure=n, fledge=a, peer=b, ratio=c) for n, a, b, c in rows]}))


if __name__ == "__main__":
    main()
