#!/usr/bin/env python3
"""Check `fledge serve` with the official openai client and raw HTTP (the wire format and hostile input).

  .venv/bin/python Scripts/check_serve.py [--fledge PATH] [--keep DIR]

Trains two tiny models (a base model on Shakespeare, a question/answer model on data/qa), starts
`fledge serve` on each, and checks:
- models, chat and completions, stream and not, n, stops, seed reproducibility, logprobs, the usage chunk, and
  errors raised as the client's own exception types;
- the SSE framing, the first delta's role, [DONE], and UTF-8 text;
- bad JSON, wrong types, out-of-range values, a prompt over the context, unknown routes and models, an oversized
  body, a truncated and a stalled request, a wrong API key;
- a client that disconnects mid-stream frees its slot; a full server answers 503 with Retry-After; SIGTERM ends
  running streams with a final chunk and [DONE] and exits 0.
Prints one line per check and exits 1 on any failure.
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import openai

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_client import Server, init_model, run  # noqa: E402  (shared with bench_serve.py)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
failures = []


def check(name, ok, detail=""):
    print(f"serve: {'ok' if ok else 'FAILED'}: {name}{': ' + str(detail) if detail != '' else ''}", flush=True)
    if not ok:
        failures.append(name)


def is_error_object(payload, param=None):
    if not isinstance(payload, dict) or "error" not in payload:
        return False
    e = payload["error"]
    ok = all(k in e for k in ("message", "type", "param", "code")) and isinstance(e["message"], str)
    return ok and (param is None or e["param"] == param)


LEFTOVER = {}  # socket -> (chunked bytes, decoded bytes) received beyond the events sse() returned


def sse(server, body, read_chunks=None, headers=None):
    """Streams a request over a raw socket; returns the data payloads (and the socket, open, when read_chunks)."""
    s = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    data = json.dumps(body).encode()
    path = "/v1/chat/completions" if "messages" in body else "/v1/completions"
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    s.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{extra}"
              f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        buffer += s.recv(65536)
    head, buffer = buffer.split(b"\r\n\r\n", 1)
    events = []
    raw = b""

    def drain(buf):
        # chunked transfer encoding: size line, data, CRLF
        out = b""
        while True:
            if b"\r\n" not in buf:
                return out, buf
            size_line, rest = buf.split(b"\r\n", 1)
            size = int(size_line, 16)
            if len(rest) < size + 2:
                return out, buf
            out += rest[:size]
            buf = rest[size + 2:]
            if size == 0:
                return out, buf

    while True:
        body_bytes, buffer = drain(buffer)
        raw += body_bytes
        while b"\n\n" in raw:
            event, raw = raw.split(b"\n\n", 1)
            events.append(event)
        if read_chunks is not None and len(events) >= read_chunks:
            # The caller reads the rest from the socket: hand back what was received beyond these events too.
            LEFTOVER[s] = buffer, raw
            return head, events, s
        if events and events[-1] == b"data: [DONE]":
            break
        more = s.recv(65536)
        if not more:
            break
        buffer += more
    s.close()
    return head, events, None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fledge", default=os.environ.get("FLEDGE", os.path.join(ROOT, ".build/release/fledge")))
    ap.add_argument("--keep")
    args = ap.parse_args()
    fledge = os.path.abspath(args.fledge)
    work = args.keep or tempfile.mkdtemp(prefix="fledge-serve-")
    os.makedirs(work, exist_ok=True)
    P = lambda *p: os.path.join(work, *p)
    text = open(os.path.join(ROOT, "data/shakespeare/shakespeare.txt"), encoding="utf-8").read()[:300_000]
    open(P("s.txt"), "w").write(text)
    tiny = ["--layers", 2, "--width", 64, "--heads", 4, "--context", 128, "--batch-size", 8, "--eval-every", 1000,
            "--sample-tokens", 0]
    run(fledge, "tokenizer", "train", "--input", P("s.txt"), os.path.join(ROOT, "data/qa/chatterbot_en.jsonl"),
        "--vocab-size", 512, "--output", P("tok.json"))
    run(fledge, "data", "prepare", P("s.txt"), "--split-on", "blank-line", "--tokenizer", P("tok.json"), "--output", P("base-data"))
    run(fledge, "data", "prepare", os.path.join(ROOT, "data/qa/chatterbot_en.jsonl"), "--tokenizer", P("tok.json"),
        "--output", P("qa-data"))
    run(fledge, "train", "--data", P("base-data"), "--run", P("base"), "--steps", 60, *tiny)
    run(fledge, "train", "--data", P("qa-data"), "--run", P("qa"), "--steps", 60, *tiny)
    # A model slow enough (untrained, 12M parameters, one thread) that a stream is surely running when SIGTERM comes.
    init_model(fledge, P("slow"), P("tok.json"), vocab=512, context=128, layers=8, width=384, heads=6)

    server = Server(fledge, P("qa"), "--slots", 4, "--queue", 8, "--max-body", 65536, "--idle-timeout", 2)
    client = openai.OpenAI(base_url=server.base + "/v1", api_key="unused", max_retries=0)
    try:
        models = client.models.list()
        check("models.list", [m.id for m in models.data] == ["qa"], [m.id for m in models.data])
        chat = client.chat.completions.create(model="qa", messages=[{"role": "user", "content": "What is your name?"}],
                                              max_tokens=30, temperature=0.8, seed=7)
        c = chat.choices[0]
        check("chat: a reply with usage", isinstance(c.message.content, str) and chat.usage.total_tokens ==
              chat.usage.prompt_tokens + chat.usage.completion_tokens and c.finish_reason in ("stop", "length"),
              repr(c.message.content[:60]))
        again = client.chat.completions.create(model="qa", messages=[{"role": "user", "content": "What is your name?"}],
                                               max_tokens=30, temperature=0.8, seed=7)
        check("chat: same seed, same text", again.choices[0].message.content == c.message.content)
        stream = client.chat.completions.create(model="qa", messages=[{"role": "user", "content": "What is your name?"}],
                                                max_tokens=30, temperature=0.8, seed=7, stream=True,
                                                stream_options={"include_usage": True})
        chunks = list(stream)
        streamed = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
        check("chat stream: first delta has the role", chunks[0].choices[0].delta.role == "assistant")
        check("chat stream: one id", len({ch.id for ch in chunks}) == 1)
        check("chat stream: same text as without streaming", streamed == c.message.content, repr(streamed[:60]))
        check("chat stream: the usage chunk comes last, only when asked",
              chunks[-1].usage is not None and chunks[-1].choices == [] and all(ch.usage is None for ch in chunks[:-1])
              and chunks[-1].usage.completion_tokens == chat.usage.completion_tokens)
        check("chat stream: finish_reason on the last choice chunk",
              [ch.choices[0].finish_reason for ch in chunks if ch.choices][-1] == c.finish_reason)
        plain = list(client.chat.completions.create(model="qa", messages=[{"role": "user", "content": "Hi"}],
                                                    max_tokens=5, stream=True))
        check("chat stream: no usage chunk unless asked", all(ch.choices for ch in plain))
        comp = client.completions.create(model="qa", prompt="ROMEO:", max_tokens=20, temperature=1, seed=3)
        comp2 = client.completions.create(model="qa", prompt="ROMEO:", max_tokens=20, temperature=1, seed=3)
        comp3 = client.completions.create(model="qa", prompt="ROMEO:", max_tokens=20, temperature=1, seed=4)
        check("completions: same seed, same text; another seed, other text",
              comp.choices[0].text == comp2.choices[0].text and comp.choices[0].text != comp3.choices[0].text)
        cs = "".join(ch.choices[0].text for ch in client.completions.create(
            model="qa", prompt="ROMEO:", max_tokens=20, temperature=1, seed=3, stream=True) if ch.choices)
        check("completions stream: same text", cs == comp.choices[0].text)
        n3 = client.chat.completions.create(model="qa", messages=[{"role": "user", "content": "Hello"}], n=3,
                                            max_tokens=10, temperature=1, seed=1)
        check("n=3: three choices, usage over all", sorted(ch.index for ch in n3.choices) == [0, 1, 2] and
              n3.usage.completion_tokens >= 3 and n3.usage.prompt_tokens > 0)
        n3s = list(client.chat.completions.create(model="qa", messages=[{"role": "user", "content": "Hello"}], n=3,
                                                  max_tokens=10, temperature=1, seed=1, stream=True))
        per = {}
        for ch in n3s:
            for choice in ch.choices:
                per[choice.index] = per.get(choice.index, "") + (choice.delta.content or "")
        check("n=3 stream: the same three texts", [per.get(i) for i in range(3)] ==
              [n3.choices[i].message.content for i in range(3)])
        stop = client.completions.create(model="qa", prompt="ROMEO:", max_tokens=60, temperature=0, stop=["e", "the"])
        check("stop: the text ends before a stop string", "e" not in stop.choices[0].text and
              (stop.choices[0].finish_reason == "stop" or len(stop.choices[0].text) > 0), repr(stop.choices[0].text))
        lp = client.chat.completions.create(model="qa", messages=[{"role": "user", "content": "Hi"}], max_tokens=5,
                                            logprobs=True, top_logprobs=3, temperature=0)
        content = lp.choices[0].logprobs.content
        check("logprobs: chat, top 3", len(content) >= 1 and all(len(t.top_logprobs) == 3 and t.logprob <= 0 and
              abs(t.logprob - t.top_logprobs[0].logprob) < 1e-5 for t in content))
        lpc = client.completions.create(model="qa", prompt="ROMEO:", max_tokens=5, logprobs=2, temperature=0)
        check("logprobs: completions", len(lpc.choices[0].logprobs.tokens) == 5 and
              all(len(d) == 2 for d in lpc.choices[0].logprobs.top_logprobs))
        # Errors as the client's own exception types.
        def raises(kind, fn, words=""):
            try:
                fn()
            except kind as e:
                return words in str(e)
            except Exception as e:
                print("   got", type(e).__name__, e)
                return False
            return False
        check("error: temperature 5 → BadRequestError naming it", raises(openai.BadRequestError, lambda: client.completions.create(
            model="qa", prompt="x", temperature=5), "temperature"))
        check("error: unknown model → NotFoundError", raises(openai.NotFoundError, lambda: client.completions.create(
            model="gpt-4", prompt="x"), "does not exist"))
        long_prompt = "word " * 400
        check("error: prompt over the context → BadRequestError with both counts", raises(
            openai.BadRequestError, lambda: client.completions.create(model="qa", prompt=long_prompt), "maximum context length is 128"))
        check("error: tools → BadRequestError", raises(openai.BadRequestError, lambda: client.chat.completions.create(
            model="qa", messages=[{"role": "user", "content": "x"}], tools=[{"type": "function", "function": {"name": "f"}}])))

        # Raw HTTP: the wire and hostile input.
        head, events, _ = sse(server, {"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 8, "stream": True})
        check("SSE: content type", b"text/event-stream" in head)
        check("SSE: every event is 'data: {json}' and the last is [DONE]",
              events[-1] == b"data: [DONE]" and all(e.startswith(b"data: {") for e in events[:-1]))
        texts = [json.loads(e[6:])["choices"][0]["delta"].get("content", "") for e in events[:-1]]
        check("SSE: UTF-8 in every chunk", all(isinstance(t, str) for t in texts))
        for body, param, words in [
            (b"{not json", None, "not valid JSON"), ({"prompt": "x", "max_tokens": "ten"}, "max_tokens", "integer"),
            ({"prompt": "x", "max_tokens": 0}, "max_tokens", "between"), ({"prompt": "x", "top_p": 1.5}, "top_p", "between"),
            ({"prompt": "x", "n": 99}, "n", "between"), ({"prompt": ["a", "b"]}, "prompt", "must be"),
            ({"prompt": [1, 2, 999999]}, "prompt", "not a token id"), ({"prompt": "x", "stop": ["a"] * 5}, "stop", "at most 4"),
            ({"prompt": "x", "logit_bias": {"abc": 1}}, "logit_bias", "not a token id"),
            ({"prompt": "x", "stream_options": {"include_usage": True}}, "stream_options", "only allowed"),
            ({}, "prompt", "required"), ([1, 2], None, "JSON object")]:
            status, _, payload = server.json("POST", "/v1/completions", body)
            check(f"400 for {str(body)[:40]}", status == 400 and is_error_object(payload, param) and
                  words in payload["error"]["message"], payload)
        status, _, payload = server.json("POST", "/v1/chat/completions", {"messages": [{"role": "robot", "content": "x"}]})
        check("400 for an unknown role", status == 400 and is_error_object(payload, "messages[0].role"), payload)
        status, _, payload = server.json("GET", "/v2/nothing")
        check("404 for an unknown route", status == 404 and is_error_object(payload), payload)
        status, _, payload = server.json("POST", "/v1/completions", b"x" * 100_000)
        check("413 for a body over --max-body", status == 413 and is_error_object(payload), payload)
        # A truncated request and a stalled one: the server closes them and goes on.
        s = socket.create_connection(("127.0.0.1", server.port))
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"prompt\"")
        s.close()
        s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n")
        start = time.time()
        closed = s.recv(100) == b""
        check("a stalled request is closed after --idle-timeout", closed and time.time() - start < 8,
              f"{time.time() - start:.1f}s")
        check("the server serves after truncated and stalled requests", server.get("/health")[0] == 200)

        # A client that disconnects mid-stream frees its slot within a step.
        head, events, sock = sse(server, {"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 100,
                                          "stream": True, "ignore_eos": True, "temperature": 1}, read_chunks=3)
        active_before = json.loads(server.get("/health")[2])["active"]
        sock.close()
        freed = None
        for i in range(100):
            if json.loads(server.get("/health")[2])["active"] == 0:
                freed = i * 0.02
                break
            time.sleep(0.02)
        check("a disconnect frees the slot", freed is not None, f"active {active_before} → 0 after {freed}s")
    finally:
        server.stop()

    # A full server refuses at once with 503 and Retry-After; SIGTERM ends streams cleanly.
    busy = Server(fledge, P("base"), "--slots", 1, "--queue", 0, "--threads", 1)
    try:
        statuses = []
        lock = threading.Lock()

        def request():
            status, headers, payload = busy.json("POST", "/v1/completions",
                                                 {"prompt": "ROMEO:", "max_tokens": 100, "ignore_eos": True})
            with lock:
                statuses.append((status, headers.get("Retry-After"), is_error_object(payload)))
        threads = [threading.Thread(target=request) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        refused = [x for x in statuses if x[0] == 503]
        check("503 with Retry-After when every slot and queue place is taken (6 at once, 1 slot, no queue)",
              refused and all(r[1] == "1" and r[2] for r in refused) and any(x[0] == 200 for x in statuses),
              sorted(x[0] for x in statuses))
        # SIGTERM while a stream runs: it ends with a final chunk and [DONE], and the server exits 0.
    finally:
        busy.stop()
    slow = Server(fledge, P("slow"), "--slots", 1, "--threads", 1)
    try:
        head, first, sock = sse(slow, {"prompt": "ROMEO:", "max_tokens": 120, "ignore_eos": True, "stream": True},
                                read_chunks=2)
        slow.proc.send_signal(signal.SIGTERM)
        buffered, decoded = LEFTOVER.pop(sock)  # what arrived with the first two events (a fast model may be done)
        rest = decoded + b"\n" + buffered
        while True:
            data = sock.recv(65536)
            if not data:
                break
            rest += data
        sock.close()
        code = slow.proc.wait(timeout=20)
        events = [e for e in re.findall(rb"data: [^\r\n]+", rest)]
        finals = [json.loads(e[6:]) for e in events if e != b"data: [DONE]"]
        reason = finals[-1]["choices"][0]["finish_reason"] if finals and finals[-1]["choices"] else None
        check("SIGTERM: the running stream ends with a final chunk and [DONE]",
              events and events[-1] == b"data: [DONE]" and reason in ("length", "stop"),
              f"{len(events)} more events, finish_reason {reason}")
        check("SIGTERM: exit status 0", code == 0, code)
    finally:
        slow.stop()

    # A base model (no Q&A template) chats through the plain rendering; an API key is enforced.
    keyfile = P("key.txt")
    open(keyfile, "w").write("s3cret-key\n")
    base = Server(fledge, P("base"), "--api-key-file", keyfile)
    try:
        good = openai.OpenAI(base_url=base.base + "/v1", api_key="s3cret-key", max_retries=0)
        bad = openai.OpenAI(base_url=base.base + "/v1", api_key="wrong", max_retries=0)
        r = good.chat.completions.create(model="base", messages=[{"role": "system", "content": "Be brief."},
                                                                 {"role": "user", "content": "Who art thou?"}], max_tokens=10)
        check("base model: chat through the plain rendering", isinstance(r.choices[0].message.content, str) and
              r.usage.prompt_tokens > 5)
        try:
            bad.models.list()
            check("wrong API key → AuthenticationError", False)
        except openai.AuthenticationError as e:
            check("wrong API key → AuthenticationError", "API key" in str(e))
        check("the chat page needs no key", base.get("/")[0] == 200 and b"<html" in base.get("/")[2])
        twice = subprocess.run([fledge, "serve", P("base"), "--port", str(base.port)], capture_output=True, text=True,
                               timeout=60)
        check("a port in use: a clear message at start-up", twice.returncode == 1 and
              f"port {base.port} on 127.0.0.1 is in use" in twice.stderr, twice.stderr.strip()[:120])
    finally:
        base.stop()
    # The web chat page in a real browser (skips itself without chromium).
    page = subprocess.run([sys.executable, os.path.join(ROOT, "Scripts/check_chat_page.py"), P("qa"), "--fledge", fledge,
                           "--screenshot", P("chat-page.png")], capture_output=True, text=True)
    print(page.stdout.strip())
    if page.returncode != 0:
        failures.append("chat page")
    print(f"serve: {'all ok' if not failures else str(len(failures)) + ' FAILED'}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
