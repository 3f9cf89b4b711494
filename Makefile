# The two commands of the README, and a few more. Every target installs what is missing first.
.PHONY: setup build demo test bench format

setup:
	@bash Scripts/setup.sh

build: setup
	swift build -c release

# The main job on the bundled data: train a byte-level GPT on Shakespeare for ~3 minutes and sample it.
demo: build
	.build/release/fledge demo --text data/shakespeare/shakespeare.txt --seconds 180

# Every test, in release mode (the kernels are slow unoptimised).
test: setup
	swift build -c release --build-tests
	swift test -c release --skip-build

# Training-step speed side by side with PyTorch (needs a venv with torch: see Scripts/bench_train.py).
bench: build
	.build/release/fledge bench train --threads 2

format:
	swift format --in-place --recursive Sources Tests Package.swift
