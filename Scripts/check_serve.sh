#!/usr/bin/env bash
# Runs Scripts/check_serve.py (fledge serve driven by the official openai client, raw HTTP and, through
# Scripts/check_chat_page.py, a headless chromium) in .venv, installing what is missing: the openai and
# websocket-client packages from PyPI, and Debian's chromium when running as root. Where a peer cannot be had
# it says what was skipped and why.
set -uo pipefail
cd "$(dirname "$0")/.."
venv=${FLEDGE_VENV:-.venv}
skip() { echo "serve check: skipped: $*"; exit 0; }
command -v python3 >/dev/null 2>&1 || skip "no python3 on this machine"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv" || skip "python3 -m venv failed"
if ! "$venv/bin/python" -c "import openai, websocket" 2>/dev/null; then
    echo "serve check: installing openai, websocket-client into $venv"
    "$venv/bin/pip" install -q openai websocket-client > /tmp/fledge-serve-pip.log 2>&1 \
        || skip "pip could not install openai (see /tmp/fledge-serve-pip.log)"
fi
if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        echo "serve check: installing chromium (the chat page is tested in it)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium > /tmp/fledge-chromium-apt.log 2>&1 \
            || { apt-get update -q > /dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium > /tmp/fledge-chromium-apt.log 2>&1; } \
            || echo "serve check: chromium could not be installed; the chat page check will say it skipped"
    fi
fi
exec "$venv/bin/python" Scripts/check_serve.py "$@"
