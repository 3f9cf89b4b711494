#!/usr/bin/env python3
"""Load on `fledge serve`: 1, 4 and 16 concurrent streaming clients on reference config (b) (8 layers, width 256,
8 heads, context 256, vocabulary 8192), then a soak mixing valid requests, invalid ones and disconnects.

  .venv/bin/python Scripts/bench_serve.py [--fledge PATH] [--rounds 3] [--requests 3] [--tokens 64] [--soak 180]

Each client sends --requests streaming completions one after another (ignore_eos, --tokens each). The peer is
the same 16 clients served one at a time (--slots 1, as mlx-lm's server does). Both servers run side by side and
every round runs each level once (batched 1, 4, 16, then the peer), so a noisy machine affects them alike; the
table gives per level the median aggregate decode tokens/s over the rounds, time to first token p50/p99 over all
requests, errors, and the batch's mean rows per step. The soak reports errors on valid requests, whether the
server is up, and its resident memory after warm-up and at the end. A table, then one JSON line.
"""
import argparse
import http.client
import json
import os
import random
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "Scripts"))
from serve_client import Server, init_model, run  # noqa: E402  (shared with check_serve.py)


def start(fledge, model, slots, threads):
    return Server(fledge, model, "--slots", slots, "--queue", 256, "--threads", threads)


def stream(port, tokens, prompt, disconnect_after=None):
    """One streaming completion; returns (time to first token, completion tokens) or raises."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    body = json.dumps({"prompt": prompt, "max_tokens": tokens, "stream": True, "ignore_eos": True, "temperature": 1,
                       "stream_options": {"include_usage": True}})
    start = time.perf_counter()
    c.request("POST", "/v1/completions", body=body, headers={"Content-Type": "application/json"})
    r = c.getresponse()
    if r.status != 200:
        raise RuntimeError(f"status {r.status}: {r.read()[:200]}")
    first = None
    usage = 0
    events = 0
    buffer = b""
    while True:
        chunk = r.read1(65536)
        if not chunk:
            break
        buffer += chunk
        while b"\n\n" in buffer:
            event, buffer = buffer.split(b"\n\n", 1)
            events += 1
            if event == b"data: [DONE]":
                c.close()
                return first, usage
            data = json.loads(event[6:])
            if data.get("usage"):
                usage = data["usage"]["completion_tokens"]
            elif first is None and data["choices"] and data["choices"][0]["text"]:
                first = time.perf_counter() - start
            if disconnect_after and events >= disconnect_after:
                c.sock.shutdown(socket.SHUT_RDWR)
                c.close()
                return first, 0
    raise RuntimeError("the stream ended without [DONE]")


def level(port, clients, requests, tokens):
    ttft, errors, total = [], [], [0]
    lock = threading.Lock()

    def client(i):
        for k in range(requests):
            try:
                first, n = stream(port, tokens, f"Client {i} request {k}: ROMEO:")
                with lock:
                    ttft.append(first)
                    total[0] += n
            except Exception as e:
                with lock:
                    errors.append(str(e))
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    ttft.sort()
    p = lambda q: ttft[min(len(ttft) - 1, int(q * len(ttft)))] if ttft else float("nan")
    return {"clients": clients, "tokens_per_s": total[0] / wall, "ttft_p50_ms": p(0.5) * 1000,
            "ttft_p99_ms": p(0.99) * 1000, "errors": len(errors), "tokens": total[0], "seconds": wall}


def rss_kb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def soak(server, seconds, tokens):
    port, pid = server.port, server.proc.pid
    stop = time.time() + seconds
    counts = {"valid": 0, "valid_errors": 0, "invalid": 0, "invalid_wrong": 0, "disconnects": 0}
    lock = threading.Lock()
    warm = [None]

    def worker(i):
        rng = random.Random(i)
        while time.time() < stop:
            kind = rng.random()
            try:
                if kind < 0.6:
                    _, n = stream(port, rng.randint(4, tokens), f"worker {i}: ")
                    with lock:
                        counts["valid"] += 1
                        counts["valid_errors"] += n == 0
                elif kind < 0.85:
                    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                    body = rng.choice([b"{bad", b'{"prompt": 5}', b'{"prompt": "x", "temperature": 9}', b"[]",
                                       b'{"messages": []}'])
                    path = rng.choice(["/v1/completions", "/v1/chat/completions"])
                    c.request("POST", path, body=body, headers={"Content-Type": "application/json"})
                    r = c.getresponse()
                    payload = json.loads(r.read())
                    c.close()
                    with lock:
                        counts["invalid"] += 1
                        counts["invalid_wrong"] += not (r.status == 400 and "error" in payload)
                else:
                    stream(port, tokens, f"worker {i} leaves: ", disconnect_after=2)
                    with lock:
                        counts["disconnects"] += 1
            except Exception:
                with lock:
                    counts["valid_errors" if kind < 0.6 else "invalid_wrong" if kind < 0.85 else "disconnects"] += kind < 0.85
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    time.sleep(min(20, seconds / 4))
    warm[0] = rss_kb(pid)
    peak = warm[0]
    while any(t.is_alive() for t in threads):
        time.sleep(1)
        peak = max(peak, rss_kb(pid))
    end_rss = rss_kb(pid)
    try:
        healthy = server.health()["status"] == "ok"
    except Exception:
        healthy = False
    return dict(counts, rss_after_warmup_mb=warm[0] / 1024, rss_end_mb=end_rss / 1024, rss_peak_mb=peak / 1024,
                rss_growth=(end_rss - warm[0]) / warm[0], healthy=healthy)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fledge", default=os.environ.get("FLEDGE", os.path.join(ROOT, ".build/release/fledge")))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--requests", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--soak", type=int, default=180)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    fledge = os.path.abspath(args.fledge)
    work = tempfile.mkdtemp(prefix="fledge-bench-serve-")
    try:
        run_benchmark(args, fledge, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_benchmark(args, fledge, work):
    P = lambda *p: os.path.join(work, *p)
    text = open(os.path.join(ROOT, "data/shakespeare/shakespeare.txt"), encoding="utf-8").read()[:2_000_000]
    open(P("s.txt"), "w").write(text)
    run(fledge, "tokenizer", "train", "--input", P("s.txt"), "--vocab-size", 8192, "--output", P("tok.json"))
    init_model(fledge, P("model-b"), P("tok.json"), vocab=8192, context=256, layers=8, width=256, heads=8)
    batched = start(fledge, P("model-b"), 16, args.threads)
    peer = start(fledge, P("model-b"), 1, args.threads)
    levels = [("batched (16 slots)", batched, 1), ("batched (16 slots)", batched, 4),
              ("batched (16 slots)", batched, 16), ("one at a time (1 slot)", peer, 16)]
    runs = {i: [] for i in range(len(levels))}
    try:
        for server in (batched, peer):
            stream(server.port, 8, "warm-up")
        for _ in range(args.rounds):
            for i, (_, server, clients) in enumerate(levels):
                before = server.health()
                r = level(server.port, clients, args.requests, args.tokens)
                after = server.health()
                r["rows_per_step"] = (after["row_steps"] - before["row_steps"]) / max(1, after["steps"] - before["steps"])
                runs[i].append(r)
    finally:
        for server in (batched, peer):
            server.stop(timeout=30)
    rows = []
    for i, (server, _, clients) in enumerate(levels):
        rs = runs[i]
        rows.append({"server": server, "clients": clients, "tokens_per_s": statistics.median(r["tokens_per_s"] for r in rs),
                     "tokens_per_s_rounds": [r["tokens_per_s"] for r in rs],
                     "ttft_p50_ms": statistics.median(r["ttft_p50_ms"] for r in rs),
                     "ttft_p99_ms": max(r["ttft_p99_ms"] for r in rs), "errors": sum(r["errors"] for r in rs),
                     "rows_per_step": statistics.median(r["rows_per_step"] for r in rs)})
    print(f"config b, {args.rounds} interleaved rounds of {args.requests} streaming completions of {args.tokens} tokens "
          f"per client, {args.threads} threads; medians over the rounds")
    print("server                   clients  tokens/s  TTFT p50 ms  TTFT p99 ms  errors  rows/step  tokens/s each round")
    for r in rows:
        each = " ".join(f"{x:.0f}" for x in r["tokens_per_s_rounds"])
        print(f"{r['server']:24s} {r['clients']:7d}  {r['tokens_per_s']:8.1f}  {r['ttft_p50_ms']:11.0f}  "
              f"{r['ttft_p99_ms']:11.0f}  {r['errors']:6d}  {r['rows_per_step']:9.2f}  {each}")
    speedup = rows[2]["tokens_per_s"] / rows[0]["tokens_per_s"]
    versus_peer = rows[2]["tokens_per_s"] / rows[3]["tokens_per_s"]
    per_round = [runs[2][k]["tokens_per_s"] / runs[0][k]["tokens_per_s"] for k in range(args.rounds)]
    print(f"16 clients vs 1: {speedup:.2f}× aggregate tokens/s (goal ≥ 6×; each round: "
          f"{', '.join(f'{x:.2f}×' for x in per_round)}); vs one at a time: {versus_peer:.2f}×")
    result = {"levels": rows, "speedup_16_vs_1": speedup, "speedup_16_vs_1_rounds": per_round,
              "speedup_vs_one_at_a_time": versus_peer}
    if args.soak > 0:
        server = start(fledge, P("model-b"), 16, args.threads)
        try:
            s = soak(server, args.soak, args.tokens)
        finally:
            code = server.stop(timeout=30)
        s["exit_status"] = code
        print(f"soak {args.soak}s: {s['valid']} valid requests ({s['valid_errors']} errors), {s['invalid']} invalid "
              f"({s['invalid_wrong']} answered wrongly), {s['disconnects']} disconnects; server up: {s['healthy']}; "
              f"RSS {s['rss_after_warmup_mb']:.0f} MB after warm-up, {s['rss_end_mb']:.0f} MB at the end "
              f"({100 * s['rss_growth']:+.1f}%), peak {s['rss_peak_mb']:.0f} MB; exit status {code}")
        result["soak"] = s
    print(json.dumps(result))


if __name__ == "__main__":
    main()
