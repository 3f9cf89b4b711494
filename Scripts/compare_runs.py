#!/usr/bin/env python3
"""Compares two training runs: the losses in metrics.jsonl step by step and the final weights tensor by tensor.

Usage: compare_runs.py RUN_A RUN_B [--tolerance T]. Prints the largest differences; exits 1 when either exceeds
T (default 1e-5). Standard library only (safetensors read by hand: an 8-byte header length, a JSON header, F32
data), so `make test` needs no NumPy.
"""
import array
import json
import struct
import sys


def losses(run):
    with open(f"{run}/metrics.jsonl") as f:
        return {r["step"]: r["loss"] for r in map(json.loads, f) if r["kind"] == "train"}


def weights(run):
    with open(f"{run}/final/model.safetensors", "rb") as f:
        data = f.read()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    body = data[8 + length :]
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        start, end = entry["data_offsets"]
        values = array.array("f")
        values.frombytes(body[start:end])
        tensors[name] = values
    return tensors


def main():
    args = sys.argv[1:]
    tolerance = 1e-5
    if "--tolerance" in args:
        i = args.index("--tolerance")
        tolerance = float(args[i + 1])
        del args[i : i + 2]
    a, b = args
    la, lb = losses(a), losses(b)
    if la.keys() != lb.keys():
        sys.exit(f"the runs logged different steps: {sorted(la)[-3:]} vs {sorted(lb)[-3:]}")
    loss_diff = max(abs(la[s] - lb[s]) for s in la)
    wa, wb = weights(a), weights(b)
    if wa.keys() != wb.keys():
        sys.exit("the runs' checkpoints hold different tensors")
    weight_diff = max(max((abs(x - y) for x, y in zip(wa[k], wb[k])), default=0) for k in wa)
    identical = all(wa[k] == wb[k] for k in wa)
    print(
        f"{len(la)} steps: largest loss difference {loss_diff:.2e}, largest weight difference {weight_diff:.2e}"
        f" ({'bit-identical' if identical else 'not bit-identical'}; tolerance {tolerance:g})"
    )
    if loss_diff > tolerance or weight_diff > tolerance:
        sys.exit(1)


if __name__ == "__main__":
    main()
