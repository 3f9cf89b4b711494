#!/usr/bin/env python3
"""Parquet fixtures for FledgeData's reader, written by pyarrow (the peer), and what pyarrow reads back.

  .venv/bin/pip install pyarrow && .venv/bin/python Scripts/make_parquet_fixtures.py

Writes Tests/FledgeDataTests/Fixtures/parquet/:
  {v1,v2}-{plain,dict}-{required,nullable}-{none,snappy,zstd,gzip}.parquet   32 files: a "text" column (and an
      "id" column) of 250 rows in row groups of 100 and pages of ~1 kB, every combination of data page version,
      encoding, nullability and codec
  hub-train-00000-of-00002.parquet, hub-train-00001-of-00002.parquet   shaped like the hub's: row groups of
      1,000 rows, Snappy, dictionary pages, text and an int column, in a data/ layout
  qa.parquet           question/answer columns
  nested.parquet       a list<string> "text" column (refused)
  brotli.parquet       a Brotli-compressed "text" column (refused: not a codec Fledge reads)
  expected.json        per file the strings pyarrow reads (null for a null), by content variant
"""
import json
import os

import pyarrow as pa
import pyarrow.parquet as pq

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Tests/FledgeDataTests/Fixtures/parquet")


def lines(count, start=0):
    text = open(os.path.join(ROOT, "data/shakespeare/shakespeare.txt"), encoding="utf-8").read().splitlines()
    chosen = [l for l in text if l.strip()][start:start + count]
    # Edge cases: an empty string (not a null), multi-byte UTF-8, a long value spanning pages.
    chosen[3] = ""
    chosen[7] = "naïve café — 東京 🎉"
    chosen[11] = " ".join(chosen[12:40])
    return chosen


def main():
    os.makedirs(OUT, exist_ok=True)
    for name in os.listdir(OUT):
        os.remove(os.path.join(OUT, name))
    base = lines(250)
    variants = {"required": base, "nullable": [None if i % 7 == 5 else s for i, s in enumerate(base)]}
    files = {}
    for page in ("v1", "v2"):
        for encoding in ("plain", "dict"):
            for null in ("required", "nullable"):
                for codec in ("none", "snappy", "zstd", "gzip"):
                    values = variants[null]
                    schema = pa.schema([pa.field("id", pa.int64(), nullable=False),
                                        pa.field("text", pa.string(), nullable=null == "nullable")])
                    table = pa.table({"id": list(range(len(values))), "text": values}, schema=schema)
                    name = f"{page}-{encoding}-{null}-{codec}.parquet"
                    pq.write_table(table, os.path.join(OUT, name), row_group_size=100, data_page_size=1024,
                                   compression=codec, use_dictionary=encoding == "dict",
                                   data_page_version="1.0" if page == "v1" else "2.0")
                    files[name] = null
    hub = lines(2000, start=300)
    variants["hub0"], variants["hub1"] = hub[:1000], hub[1000:]
    for k in range(2):
        table = pa.table({"text": variants[f"hub{k}"], "meta": list(range(1000))})
        name = f"hub-train-0000{k}-of-00002.parquet"
        pq.write_table(table, os.path.join(OUT, name), row_group_size=400, compression="snappy")
        files[name] = f"hub{k}"
    qa = pa.table({"question": ["What is your name?", "Where art thou?"], "answer": ["Romeo.", "In Verona."]})
    pq.write_table(qa, os.path.join(OUT, "qa.parquet"))
    pq.write_table(pa.table({"text": [["a", "b"], ["c"]]}), os.path.join(OUT, "nested.parquet"))
    pq.write_table(pa.table({"text": ["x", "y"]}), os.path.join(OUT, "brotli.parquet"), compression="brotli")
    # What pyarrow reads back must be the content written, for every file.
    for name, variant in files.items():
        got = pq.read_table(os.path.join(OUT, name)).column("text").to_pylist()
        assert got == variants[variant], name
    json.dump({"files": files, "values": variants,
               "qa": pq.read_table(os.path.join(OUT, "qa.parquet")).to_pydict()},
              open(os.path.join(OUT, "expected.json"), "w"), ensure_ascii=False)
    total = sum(os.path.getsize(os.path.join(OUT, n)) for n in os.listdir(OUT))
    print(f"wrote {len(os.listdir(OUT))} files ({total / 1024:.0f} kB) to {os.path.relpath(OUT, ROOT)}")


if __name__ == "__main__":
    main()
