# The two commands of the README, and a few more. Every target installs what is missing first.
.PHONY: setup build demo test bench format install

setup:
	@bash Scripts/setup.sh

build: setup
	swift build -c release

# The main job on the bundled data: a BPE tokenizer, prepared shards, a small GPT trained for 3 minutes
# on the CPU (samples at each evaluation), completions of a few prompts, then a chat model fine-tuned for a
# minute on the bundled question/answer pairs.
DEMO = runs/demo
demo: build
	mkdir -p $(DEMO)
	.build/release/fledge tokenizer train --input data/shakespeare/shakespeare.txt --vocab-size 2048 \
		--output $(DEMO)/tokenizer.json --overwrite
	.build/release/fledge data prepare data/shakespeare/shakespeare.txt --split-on blank-line \
		--tokenizer $(DEMO)/tokenizer.json --output $(DEMO)/data --overwrite
	rm -rf $(DEMO)/run
	.build/release/fledge train --data $(DEMO)/data --run $(DEMO)/run --layers 4 --width 192 --heads 6 \
		--context 128 --batch-size 16 --lr 2e-3 --warmup 100 --minutes 3 --eval-every 250 \
		--prompt "ROMEO:" --sample-tokens 80
	.build/release/fledge eval $(DEMO)/run --prompts data/demo-prompts.txt --temperature 0.8 --tokens 60
	# A chat model: the pretrained model fine-tuned for a minute on the bundled question/answer pairs.
	.build/release/fledge data prepare data/qa/chatterbot_en.jsonl --tokenizer $(DEMO)/tokenizer.json \
		--output $(DEMO)/qa --overwrite
	rm -rf $(DEMO)/chat
	.build/release/fledge train --data $(DEMO)/qa --init-from $(DEMO)/run --run $(DEMO)/chat --batch-size 16 \
		--lr 5e-4 --warmup 20 --minutes 1 --eval-every 100 --sample-tokens 0
	printf 'What is your name?\nHow are you?\n' | .build/release/fledge chat $(DEMO)/chat --tokens 40 --seed 1
	@echo "next: .build/release/fledge chat $(DEMO)/chat   ·   report: $(DEMO)/run/report.html"

# fledge on PATH: the binary in $(PREFIX)/bin and GPT-2's vocabulary in $(PREFIX)/share/fledge (where
# `--tokenizer gpt2` finds it). PREFIX=$$HOME/.local installs for one user.
PREFIX ?= /usr/local
install: build
	install -d $(PREFIX)/bin $(PREFIX)/share/fledge/tokenizers/gpt2
	install -m 755 .build/release/fledge $(PREFIX)/bin/fledge
	install -m 644 data/tokenizers/gpt2/encoder.json data/tokenizers/gpt2/vocab.bpe $(PREFIX)/share/fledge/tokenizers/gpt2/
	@echo "installed $(PREFIX)/bin/fledge (is $(PREFIX)/bin on PATH?)"

# Every test, in release mode (the kernels are slow unoptimised), then the command line end to end, the five
# users' journeys in their short form (docs/examples), and the adversarial suite (malformed files, hostile
# numbers, colliding paths, two processes, kill -9 mid-save), and exports/imports against transformers and
# gguf (Scripts/check_interop.sh installs them into .venv, or says why it skipped), and `fledge serve` with
# the openai client, raw HTTP and headless chromium (Scripts/check_serve.sh), and data-parallel training under
# Open MPI's mpirun: equivalence, kill -9 of a rank, a hung rank, mismatched ranks (Scripts/check_distributed.sh).
test: setup
	swift build -c release --build-tests
	swift test -c release --skip-build
	bash Scripts/cli_check.sh
	bash docs/examples/journeys.sh --short
	bash Scripts/adversarial.sh
	bash Scripts/check_interop.sh --quick
	bash Scripts/check_serve.sh
	bash Scripts/check_distributed.sh

# Training-step speed side by side with PyTorch (needs a venv with torch: see Scripts/bench_train.py).
bench: build
	.build/release/fledge bench train --threads 2

format:
	swift format --in-place --recursive Sources Tests Package.swift
