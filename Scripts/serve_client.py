"""What Scripts/check_serve.py and Scripts/bench_serve.py share: running a fledge command, an untrained model of a
given shape, and a `fledge serve` process on a free port with plain HTTP requests to it (standard library only)."""
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import time


def run(*args):
    """Runs a command; returns its output, or raises with it when the command fails."""
    p = subprocess.run([str(a) for a in args], capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, args))} failed:\n{p.stdout}\n{p.stderr}")
    return p.stdout


def init_model(fledge, output, tokenizer, vocab, context, layers, width, heads):
    """`fledge model init` of a GPT-2-style model (learned positions, LayerNorm, GELU, MLP 4·width, tied head)
    into `output`, with the tokenizer file copied beside it."""
    config = dict(fledge_format_version=1, architecture="gpt", vocab_size=vocab, context_length=context,
                  n_layer=layers, n_embd=width, n_head=heads, n_kv_head=heads, mlp_width=4 * width, norm="layernorm",
                  norm_placement="pre", positions="learned", activation="gelu", parallel_block=False,
                  tie_embeddings=True, bias=True, dropout=0.0, norm_eps=1e-5, rope_theta=10000.0)
    path = output.rstrip("/") + ".json"
    with open(path, "w") as f:
        json.dump(config, f)
    run(fledge, "model", "init", "--config", path, "--output", output)
    shutil.copy(tokenizer, os.path.join(output, "tokenizer.json"))


class Server:
    """`fledge serve RUN --port 0 FLAGS...`, started and polled until /health answers."""

    def __init__(self, fledge, run_dir, *flags):
        self.proc = subprocess.Popen([fledge, "serve", run_dir, "--port", "0", *map(str, flags)],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        line = self.proc.stdout.readline()
        m = re.search(r"http://[^:]+:(\d+)/v1", line)
        if not m:
            raise RuntimeError("the server did not start: " + line + self.proc.stdout.read())
        self.port = int(m.group(1))
        self.base = f"http://127.0.0.1:{self.port}"
        for _ in range(100):
            try:
                if self.get("/health")[0] == 200:
                    break
            except OSError:
                time.sleep(0.05)

    def request(self, method, path, body=None, headers=None, timeout=30):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        c.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
        r = c.getresponse()
        payload = r.read()
        c.close()
        return r.status, dict(r.getheaders()), payload

    def get(self, path):
        return self.request("GET", path)

    def json(self, method, path, body=None, headers=None):
        status, headers, payload = self.request(method, path, body, headers)
        try:
            return status, headers, json.loads(payload)
        except ValueError:
            return status, headers, payload

    def health(self):
        """/health's counters (status, steps, row_steps, prefills, ...)."""
        return self.json("GET", "/health")[2]

    def stop(self, timeout=15):
        """SIGTERM (the server ends its streams and exits 0); returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait()
