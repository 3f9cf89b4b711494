#!/usr/bin/env python3
"""Drive the web chat page of `fledge serve` in a real headless browser (Debian's chromium, through the Chrome
DevTools Protocol): load the page, type a message, wait for the streamed reply, check it and its tokens/s line,
stop a second reply mid-stream, and save a screenshot.

  .venv/bin/python Scripts/check_chat_page.py RUN [--fledge PATH] [--screenshot FILE]

Needs `chromium` on PATH and the `websocket-client` package; says it skipped when either is missing.
"""
import argparse
import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("--fledge", default=os.environ.get("FLEDGE", os.path.join(ROOT, ".build/release/fledge")))
    ap.add_argument("--screenshot", default=os.path.join(tempfile.gettempdir(), "fledge-chat-page.png"))
    args = ap.parse_args()
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        import websocket  # websocket-client
    except ImportError:
        print("chat page: skipped: the websocket-client package is missing")
        return 0
    if not browser:
        print("chat page: skipped: chromium is not installed (apt-get install chromium)")
        return 0
    server = subprocess.Popen([args.fledge, "serve", args.run, "--port", "0", "--threads", "1"], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    line = server.stdout.readline()
    port = int(re.search(r":(\d+)/v1", line).group(1))
    profile = tempfile.mkdtemp(prefix="fledge-chromium-")
    chrome = subprocess.Popen([browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                               "--remote-debugging-port=0", f"--user-data-dir={profile}", "--window-size=1000,800",
                               "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    failures = []

    def check(name, ok, detail=""):
        print(f"chat page: {'ok' if ok else 'FAILED'}: {name}{': ' + str(detail) if detail != '' else ''}", flush=True)
        if not ok:
            failures.append(name)

    try:
        devtools = None
        for _ in range(200):
            line = chrome.stderr.readline()
            m = re.search(r"DevTools listening on (ws://\S+)", line)
            if m:
                devtools = m.group(1)
                break
        http = devtools.replace("ws://", "http://").split("/devtools/")[0]
        pages = json.loads(urllib.request.urlopen(http + "/json/list").read())
        target = next(p for p in pages if p["type"] == "page")
        ws = websocket.create_connection(target["webSocketDebuggerUrl"], timeout=30)
        counter = [0]

        def call(method, **params):
            counter[0] += 1
            ws.send(json.dumps({"id": counter[0], "method": method, "params": params}))
            while True:
                message = json.loads(ws.recv())
                if message.get("id") == counter[0]:
                    if "error" in message:
                        raise RuntimeError(f"{method}: {message['error']}")
                    return message.get("result", {})

        def js(expression):
            result = call("Runtime.evaluate", expression=expression, returnByValue=True)
            if "exceptionDetails" in result:
                raise RuntimeError(f"page script failed: {result['exceptionDetails']}")
            return result["result"].get("value")

        def wait(expression, seconds):
            end = time.time() + seconds
            while time.time() < end:
                value = js(expression)
                if value:
                    return value
                time.sleep(0.05)
            return None

        call("Page.enable")
        call("Page.navigate", url=f"http://127.0.0.1:{port}/")
        check("the page loads", wait("document.readyState === 'complete' && document.getElementById('model').textContent !== '…'", 15),
              js("document.getElementById('model').textContent"))
        # The tiny test model streams a whole reply in a few milliseconds, faster than any click, so the page's
        # fetch is wrapped: requests gain ignore_eos (replies never end early), and once window.slow is set the
        # stream is handed over at a slow network's pace (one event per 30 ms; an abort ends it).
        js("""const f = window.fetch; window.fetch = async (u, o) => {
              if (o && o.body) { const b = JSON.parse(o.body); b.ignore_eos = true; o.body = JSON.stringify(b); }
              const r = await f(u, o);
              if (!r.body) return r;
              const reader = r.body.getReader(), decoder = new TextDecoder(), encoder = new TextEncoder();
              let pending = [];
              const slow = new ReadableStream({
                async pull(c) {
                  if (window.slow) await new Promise(z => setTimeout(z, 30));
                  if (o.signal && o.signal.aborted) { c.error(new DOMException('stopped', 'AbortError')); return; }
                  while (!pending.length) {
                    const x = await reader.read();
                    if (x.done) { c.close(); return; }
                    pending = decoder.decode(x.value, {stream: true}).split(/(?<=\\n\\n)/).filter(e => e.length);
                  }
                  c.enqueue(encoder.encode(pending.shift()));
                },
                cancel(reason) { return reader.cancel(reason); } });
              return new Response(slow, {status: r.status, headers: r.headers}); }; true""")
        js("document.getElementById('max_tokens').value = 20; true")
        # Type like a person: focus, insert the text, press Enter.
        js("document.getElementById('input').focus()")
        call("Input.insertText", text="What is your name?")
        for kind in ("keyDown", "keyUp"):
            call("Input.dispatchKeyEvent", type=kind, key="Enter", code="Enter", windowsVirtualKeyCode=13,
                 **({"text": "\r"} if kind == "keyDown" else {}))
        done = wait("(() => { const a = document.querySelectorAll('.assistant'); return a.length && a[a.length-1].dataset.state === 'done' ? a[a.length-1].innerText : null })()", 60)
        check("a streamed reply arrives", bool(done), repr((done or "")[:80]))
        meta = js("(() => { const m = document.querySelectorAll('.assistant .meta'); return m.length ? m[m.length-1].textContent : '' })()")
        check("the reply shows its tokens and tokens/s", "tokens" in (meta or ""), meta)
        check("the user's message is shown", js("document.querySelector('.user').textContent") == "What is your name?")
        # A long reply, stopped mid-stream.
        # A reply that cannot end by itself (the request gains ignore_eos), stopped by the button mid-stream.
        # Earlier turns that no longer fit are dropped, as in `fledge chat`: a long conversation keeps working.
        js("window.slow = true; document.getElementById('max_tokens').value = 2000; document.getElementById('input').value = 'Tell me a long story.'; document.getElementById('send').click()")
        wait("(() => { const a = document.querySelectorAll('.assistant'); return a.length === 2 && a[1].textContent.length > 3 && a[1].dataset.state === 'streaming' })()", 30)
        js("document.getElementById('stop').click()")
        stopped = wait("(() => { const a = document.querySelectorAll('.assistant'); return a.length === 2 && a[1].dataset.state === 'done' ? a[1].innerText : null })()", 10)
        check("the stop button ends a reply", stopped is not None and "stopped" in stopped, repr((stopped or "")[-60:]))
        health = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/health").read())
        for _ in range(50):
            if health["active"] == 0:
                break
            time.sleep(0.05)
            health = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/health").read())
        check("stopping frees the server's slot", health["active"] == 0, health)
        shot = call("Page.captureScreenshot", format="png")
        with open(args.screenshot, "wb") as f:
            f.write(base64.b64decode(shot["data"]))
        check("screenshot saved", os.path.getsize(args.screenshot) > 1000, args.screenshot)
        ws.close()
    finally:
        chrome.terminate()
        try:
            chrome.wait(timeout=10)  # it writes to its profile until it exits
        except subprocess.TimeoutExpired:
            chrome.kill()
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=10)
        shutil.rmtree(profile, ignore_errors=True)
    print(f"chat page: {'all ok' if not failures else str(len(failures)) + ' FAILED'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
