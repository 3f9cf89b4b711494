#!/usr/bin/env bash
# Runs Scripts/check_interop.py (exports and imports checked with the real transformers, gguf and PyTorch) in
# .venv, installing the peers there when they are missing: torch's CPU build from /opt/wheels (PyPI's default
# torch brings gigabytes of CUDA), transformers, safetensors, gguf and accelerate from PyPI. Where they cannot
# be had, it says the check was skipped and why, and exits 0. Arguments go to the script (e.g. --quick).
set -uo pipefail
cd "$(dirname "$0")/.."
venv=${FLEDGE_VENV:-.venv}
skip() { echo "interop: skipped: $*"; exit 0; }
peers() { "$venv/bin/python" -c "import torch, transformers, safetensors, gguf, accelerate" 2>/dev/null; }

if ! { [ -x "$venv/bin/python" ] && peers; }; then
    command -v python3 >/dev/null 2>&1 || skip "no python3 on this machine"
    wheel=$(ls /opt/wheels/torch-*.whl 2>/dev/null | head -1)
    [ -n "$wheel" ] || skip "no CPU build of PyTorch in /opt/wheels (PyPI's default torch is the multi-gigabyte CUDA build)"
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv" || skip "python3 -m venv failed"
    echo "interop: installing $(basename "$wheel"), transformers, safetensors, gguf, accelerate into $venv"
    "$venv/bin/pip" install -q "$wheel" transformers safetensors gguf accelerate numpy > /tmp/fledge-interop-pip.log 2>&1 \
        || skip "pip could not install the peers (see /tmp/fledge-interop-pip.log)"
    peers || skip "the peers do not import after installing them"
fi
exec "$venv/bin/python" Scripts/check_interop.py "$@"
