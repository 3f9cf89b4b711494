#!/usr/bin/env python3
"""`fledge data prepare` on a corpus of about 1 GB, beside the usual Python route, in interleaved rounds.

Fledge: read (JSONL and Parquet) → clean → exact and near dedup → split → tokenise → uint16 shards, on 2
threads. The peer does less: it only tokenises the same files with Hugging Face `tokenizers` (the same
tokenizer.json) in a multiprocessing pool of 2, reading JSONL with `json` and Parquet with `pyarrow`, appending
EOS to each document and writing llm.c-style uint16 shards. Both are timed on the same files; peak memory is
sampled from /proc every 0.1 s over the whole process tree (the peer's workers included).

    bench_data_scale.py [--work DIR] [--megabytes 1024] [--rounds 2] [--threads 2]

Prints a table and a final JSON line. The corpus (Scripts/make_big_corpus.py) and the tokenizer are made once
and kept in --work.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def tree_rss(pid):
    """Resident bytes of `pid` and all its descendants."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parent = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(parent, []).append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
        except OSError:
            pass
        stack += children.get(p, [])
    return total


def timed(command, env=None):
    """Runs `command`; returns (seconds, peak tree RSS bytes, stdout)."""
    start = time.time()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
    peak = 0
    while process.poll() is None:
        peak = max(peak, tree_rss(process.pid))
        time.sleep(0.1)
    output = process.stdout.read()
    seconds = time.time() - start
    if process.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{output[-3000:]}")
    return seconds, peak, output


# ---- the peer: tokenise only, with Hugging Face tokenizers in a pool of processes ----

_tokenizer = None
_eos = None


def _init(tokenizer_path):
    global _tokenizer, _eos
    from tokenizers import Tokenizer

    _tokenizer = Tokenizer.from_file(tokenizer_path)
    _eos = next(i for i in (_tokenizer.token_to_id(t) for t in ("<|endoftext|>", "<eos>", "</s>")) if i is not None)


def _texts(path):
    if path.endswith(".parquet"):
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches(batch_size=1000, columns=["text"]):
            yield from (t for t in batch.column(0).to_pylist() if t is not None)
    else:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    yield json.loads(line)["text"]


def _tokenize_file(job):
    import numpy as np

    path, out = job
    pieces, batch, count = [], [], 0
    for text in _texts(path):
        batch.append(text)
        if len(batch) == 1000:
            for encoding in _tokenizer.encode_batch(batch):
                pieces.append(np.array(encoding.ids + [_eos], dtype=np.uint16))
            batch = []
    for encoding in _tokenizer.encode_batch(batch):
        pieces.append(np.array(encoding.ids + [_eos], dtype=np.uint16))
    tokens = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.uint16)
    header = np.zeros(256, dtype=np.int32)
    header[0], header[1], header[2] = 20240520, 1, len(tokens)
    with open(out, "wb") as f:
        f.write(header.tobytes())
        f.write(tokens.tobytes())
    return len(tokens)


def peer(corpus, tokenizer, out, processes):
    import multiprocessing

    os.makedirs(out, exist_ok=True)
    files = sorted(os.path.join(corpus, f) for f in os.listdir(corpus))
    # Largest first, so the pool's two workers finish together.
    files.sort(key=os.path.getsize, reverse=True)
    jobs = [(path, os.path.join(out, os.path.basename(path) + ".bin")) for path in files]
    with multiprocessing.Pool(processes, initializer=_init, initargs=(tokenizer,)) as pool:
        tokens = sum(pool.imap_unordered(_tokenize_file, jobs))
    print(json.dumps({"tokens": tokens}))


# ---- the benchmark ----


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", default="/tmp/fledge-bench-scale")
    parser.add_argument("--megabytes", type=float, default=1024)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--fledge", default=os.path.join(ROOT, ".build", "release", "fledge"))
    parser.add_argument("--peer-run", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peer_run:
        return peer(*args.peer_run, processes=args.threads)

    corpus = os.path.join(args.work, "corpus")
    tokenizer = os.path.join(args.work, "tokenizer.json")
    if not os.path.isdir(corpus):
        subprocess.run(
            [sys.executable, os.path.join(HERE, "make_big_corpus.py"), corpus, "--megabytes", str(args.megabytes)],
            check=True)
    if not os.path.exists(tokenizer):
        sample = sorted(os.path.join(corpus, f) for f in os.listdir(corpus) if f.endswith(".jsonl"))[0]
        subprocess.run([args.fledge, "tokenizer", "train", "--input", sample, "--vocab-size", "8192", "--output",
                        tokenizer], check=True, stdout=subprocess.DEVNULL)
    files = [os.path.join(corpus, f) for f in os.listdir(corpus)]
    input_bytes = sum(os.path.getsize(f) for f in files)

    rows = {"fledge": [], "peer": []}
    fledge_output = ""
    for round_ in range(args.rounds):
        for name in ("fledge", "peer") if round_ % 2 == 0 else ("peer", "fledge"):
            if name == "fledge":
                command = [args.fledge, "data", "prepare", corpus, "--tokenizer", tokenizer, "--output",
                           os.path.join(args.work, "fledge-out"), "--overwrite", "--threads", str(args.threads)]
                seconds, peak, fledge_output = timed(command)
                manifest = json.load(open(os.path.join(args.work, "fledge-out", "manifest.json")))
                tokens = sum(s["tokens"] for s in manifest["splits"].values())
                text = sum(s["text_bytes"] for s in manifest["splits"].values())
            else:
                command = [sys.executable, os.path.abspath(__file__), "--threads", str(args.threads), "--peer-run",
                           corpus, tokenizer, os.path.join(args.work, "peer-out")]
                env = dict(os.environ, TOKENIZERS_PARALLELISM="false")
                seconds, peak, output = timed(command, env)
                tokens = json.loads(output.strip().splitlines()[-1])["tokens"]
                text = None
            rows[name].append({"seconds": seconds, "peak": peak, "tokens": tokens, "text": text})
            print(f"round {round_ + 1} {name:6s} {seconds:7.1f} s  {input_bytes / 1e6 / seconds:6.1f} MB/s  "
                  f"peak {peak / 1e6:7.0f} MB  {tokens} tokens", flush=True)

    print("\nfledge's last run:")
    print("\n".join(l for l in fledge_output.splitlines() if not l.startswith("\r")))
    median = {k: {f: statistics.median(r[f] for r in v) for f in ("seconds", "peak")} for k, v in rows.items()}
    print(f"\ninput: {len(files)} files, {input_bytes / 1e6:.0f} MB on disk "
          f"({rows['fledge'][-1]['text'] / 1e6:.0f} MB of text after cleaning); {args.threads} threads; medians of "
          f"{args.rounds} interleaved rounds\n")
    print("| | does | seconds | MB/s of input | peak RSS |")
    print("|---|---|---:|---:|---:|")
    for name, does in (("fledge", "clean + exact and near dedup + split + tokenise + shards"),
                       ("peer", "tokenise + shards (HF tokenizers, 2 processes)")):
        m = median[name]
        print(f"| {name} | {does} | {m['seconds']:.1f} | {input_bytes / 1e6 / m['seconds']:.1f} | "
              f"{m['peak'] / 1e6:.0f} MB |")
    result = {
        "input_mb": round(input_bytes / 1e6, 1),
        "fledge_seconds": round(median["fledge"]["seconds"], 1),
        "fledge_mb_per_s": round(input_bytes / 1e6 / median["fledge"]["seconds"], 2),
        "fledge_peak_mb": round(median["fledge"]["peak"] / 1e6),
        "peer_seconds": round(median["peer"]["seconds"], 1),
        "peer_mb_per_s": round(input_bytes / 1e6 / median["peer"]["seconds"], 2),
        "peer_peak_mb": round(median["peer"]["peak"] / 1e6),
        "speed_ratio": round(median["peer"]["seconds"] / median["fledge"]["seconds"], 2),
        "fledge_tokens": rows["fledge"][-1]["tokens"],
        "peer_tokens": rows["peer"][-1]["tokens"],
    }
    print("\n" + json.dumps(result))


if __name__ == "__main__":
    main()
