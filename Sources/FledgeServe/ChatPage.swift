// ChatPage: the web chat served at GET / — one self-contained page (no CDN, no build step): the
// conversation, replies streamed from /v1/chat/completions, a stop button, temperature / top-k / top-p /
// max tokens, an API key field, and tokens/s per reply.

enum ChatPage {
    static let html = #"""
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>Fledge chat</title>
        <style>
        body { font-family: system-ui, sans-serif; margin: 0; background: #f6f6f4; color: #222; }
        header { padding: 10px 16px; background: #2d3b2d; color: #fff; display: flex; gap: 12px; align-items: baseline; }
        header h1 { font-size: 18px; margin: 0; }
        #model { opacity: .8; font-size: 14px; }
        main { max-width: 860px; margin: 0 auto; padding: 12px 16px 180px; }
        .msg { margin: 10px 0; padding: 10px 12px; border-radius: 8px; white-space: pre-wrap; line-height: 1.4; }
        .user { background: #dfe9f7; margin-left: 15%; }
        .assistant { background: #fff; border: 1px solid #ddd; margin-right: 15%; }
        .meta { font-size: 12px; color: #777; margin-top: 4px; }
        .error { background: #fbe3e3; border: 1px solid #e0a0a0; }
        footer { position: fixed; bottom: 0; left: 0; right: 0; background: #fff; border-top: 1px solid #ccc; padding: 10px 16px; }
        .row { max-width: 860px; margin: 0 auto; display: flex; gap: 8px; }
        textarea { flex: 1; height: 56px; font: inherit; padding: 8px; }
        button { font: inherit; padding: 0 16px; }
        .settings { max-width: 860px; margin: 6px auto 0; font-size: 13px; display: flex; gap: 14px; flex-wrap: wrap; }
        .settings input { width: 70px; }
        </style>
        </head>
        <body>
        <header><h1>Fledge chat</h1><span id="model">…</span></header>
        <main id="log"></main>
        <footer>
          <div class="row">
            <textarea id="input" placeholder="Type a message; Enter sends, Shift+Enter is a new line"></textarea>
            <button id="send">Send</button>
            <button id="stop" disabled>Stop</button>
            <button id="clear">New chat</button>
          </div>
          <div class="settings">
            <label>temperature <input id="temperature" type="number" step="0.1" min="0" max="2" value="0.8"></label>
            <label>top-k <input id="top_k" type="number" min="0" value="50"></label>
            <label>top-p <input id="top_p" type="number" step="0.05" min="0.05" max="1" value="0.95"></label>
            <label>max tokens <input id="max_tokens" type="number" min="1" value="200"></label>
            <label>API key <input id="key" type="password" style="width:140px"></label>
          </div>
        </footer>
        <script>
        const log = document.getElementById('log'), input = document.getElementById('input');
        const sendButton = document.getElementById('send'), stopButton = document.getElementById('stop');
        const key = document.getElementById('key');
        key.value = localStorage.getItem('fledge-key') || '';
        key.onchange = () => localStorage.setItem('fledge-key', key.value);
        let messages = [], controller = null, modelId = null;
        function headers() {
          const h = {'Content-Type': 'application/json'};
          if (key.value) h['Authorization'] = 'Bearer ' + key.value;
          return h;
        }
        fetch('/v1/models', {headers: headers()}).then(r => r.json()).then(j => {
          modelId = j.data ? j.data[0].id : null;
          document.getElementById('model').textContent = modelId || (j.error ? j.error.message : '');
        }).catch(() => {});
        function add(role, text) {
          const div = document.createElement('div');
          div.className = 'msg ' + role;
          div.textContent = text;
          log.appendChild(div);
          window.scrollTo(0, document.body.scrollHeight);
          return div;
        }
        function number(id) { return Number(document.getElementById(id).value); }
        async function send() {
          const text = input.value.trim();
          if (!text || controller) return;
          input.value = '';
          add('user', text);
          messages.push({role: 'user', content: text});
          const out = add('assistant', '');
          out.dataset.state = 'streaming';
          const meta = document.createElement('div');
          meta.className = 'meta';
          controller = new AbortController();
          sendButton.disabled = true; stopButton.disabled = false;
          const start = performance.now();
          let first = null, reply = '', tokens = 0, finish = '';
          try {
            const response = await fetch('/v1/chat/completions', {
              method: 'POST', headers: headers(), signal: controller.signal,
              body: JSON.stringify({model: modelId, messages, stream: true, stream_options: {include_usage: true},
                temperature: number('temperature'), top_k: number('top_k'), top_p: number('top_p'),
                max_tokens: number('max_tokens')})
            });
            if (!response.ok) {
              const j = await response.json().catch(() => ({}));
              throw new Error(j.error ? j.error.message : response.statusText);
            }
            const reader = response.body.getReader(), decoder = new TextDecoder();
            let buffer = '';
            while (true) {
              const {done, value} = await reader.read();
              if (done) break;
              buffer += decoder.decode(value, {stream: true});
              let cut;
              while ((cut = buffer.indexOf('\n\n')) >= 0) {
                const line = buffer.slice(0, cut).trim();
                buffer = buffer.slice(cut + 2);
                if (!line.startsWith('data: ')) continue;
                const data = line.slice(6);
                if (data === '[DONE]') continue;
                const chunk = JSON.parse(data);
                if (chunk.usage) tokens = chunk.usage.completion_tokens;
                for (const c of chunk.choices || []) {
                  if (c.delta && c.delta.content) {
                    if (first === null) first = performance.now();
                    reply += c.delta.content;
                    out.textContent = reply;
                    window.scrollTo(0, document.body.scrollHeight);
                  }
                  if (c.finish_reason) finish = c.finish_reason;
                }
              }
            }
          } catch (e) {
            if (e.name !== 'AbortError') { out.classList.add('error'); out.textContent = reply + (reply ? '\n' : '') + 'Error: ' + e.message; }
            else finish = 'stopped';
          }
          const seconds = ((first !== null ? performance.now() - first : 0) / 1000);
          const rate = tokens > 1 && seconds > 0 ? ((tokens - 1) / seconds).toFixed(1) + ' tokens/s' : '';
          meta.textContent = [tokens ? tokens + ' tokens' : '', rate, finish].filter(Boolean).join(' · ');
          out.appendChild(meta);
          out.dataset.state = 'done';
          messages.push({role: 'assistant', content: reply});
          controller = null; sendButton.disabled = false; stopButton.disabled = true;
        }
        sendButton.onclick = send;
        stopButton.onclick = () => controller && controller.abort();
        document.getElementById('clear').onclick = () => { messages = []; log.innerHTML = ''; };
        input.addEventListener('keydown', e => { if (e.key === 'Enter' && !e.shiftKey) { e.preventDefault(); send(); } });
        </script>
        </body>
        </html>
        """#
}
