#!/usr/bin/env python3
"""A corpus of about 1 GB of real text for the streaming benchmark (Scripts/bench_data_scale.py).

The plain-text corpora in data/ and ../shared/corpora are cut into documents of about 2,000 characters
(paragraphs joined), then copied as often as needed; every copy edits every 8th word of each document (which
word, and the word put in its place, differ from copy to copy), so no copy is an exact or near duplicate of
another and dedup keeps them all. Most copies are written as JSONL ({"text": ...}, 100 MB files), the rest
as Parquet files shaped like the Hugging Face hub's (row groups of 1,000 rows, Snappy or Zstandard).

    make_big_corpus.py OUT [--megabytes 1024] [--parquet-share 0.3]
"""
import argparse
import glob
import json
import os

import pyarrow as pa
import pyarrow.parquet as pq


def documents(paths):
    for path in paths:
        text = open(path, encoding="utf-8", errors="replace").read()
        paragraphs = [p.strip() for p in text.split("\n\n") if p.strip()]
        current = []
        size = 0
        for p in paragraphs:
            current.append(p)
            size += len(p)
            if size >= 2000:
                yield "\n\n".join(current)
                current, size = [], 0
        if current:
            yield "\n\n".join(current)


def edited(doc, copy):
    words = doc.split(" ")
    offset, shift = copy % 8, 1 + copy // 8
    if len(words) > offset + shift:
        n = len(words[offset::8])
        replacement = words[offset + shift :: 8][:n]
        words[offset : offset + 8 * len(replacement) : 8] = replacement
    return " ".join(words)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--megabytes", type=float, default=1024)
    parser.add_argument("--parquet-share", type=float, default=0.3)
    parser.add_argument("--sources", nargs="*")
    args = parser.parse_args()
    here = os.path.dirname(os.path.abspath(__file__))
    sources = args.sources or sorted(
        glob.glob(os.path.join(here, "..", "..", "shared", "corpora", "*.txt"))
        or glob.glob(os.path.join(here, "..", "data", "*", "*.txt"))
    )
    base = list(documents(sources))
    target = int(args.megabytes * 1e6)
    os.makedirs(args.out, exist_ok=True)
    written, copy, jsonl_index, parquet_index = 0, 0, 0, 0
    jsonl, jsonl_bytes = None, 0
    rows = []
    while written < target:
        as_parquet = (copy % 10) < args.parquet_share * 10
        for doc in base:
            text = edited(doc, copy)
            written += len(text.encode("utf-8"))
            if as_parquet:
                rows.append(text)
            else:
                if jsonl is None:
                    jsonl = open(os.path.join(args.out, f"part-{jsonl_index:03d}.jsonl"), "w", encoding="utf-8")
                    jsonl_index += 1
                line = json.dumps({"text": text}, ensure_ascii=False) + "\n"
                jsonl.write(line)
                jsonl_bytes += len(line)
                if jsonl_bytes >= 100e6:
                    jsonl.close()
                    jsonl, jsonl_bytes = None, 0
            if written >= target:
                break
        if rows:
            codec = "zstd" if parquet_index % 2 else "snappy"
            name = os.path.join(args.out, f"train-{parquet_index:05d}.parquet")
            pq.write_table(pa.table({"text": rows}), name, row_group_size=1000, compression=codec)
            parquet_index += 1
            rows = []
        copy += 1
    if jsonl:
        jsonl.close()
    print(f"{written / 1e6:.0f} MB of text in {copy} copies of {len(base)} documents: "
          f"{jsonl_index} JSONL files, {parquet_index} Parquet files → {args.out}")


if __name__ == "__main__":
    main()
