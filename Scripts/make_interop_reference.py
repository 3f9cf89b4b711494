#!/usr/bin/env python3
"""Write the transformers reference folders that FledgeInterop's Swift tests import (the tests never need
PyTorch). For each of a small GPT2LMHeadModel and a small LlamaForCausalLM (random weights, seeded), writes
Tests/FledgeInteropTests/Fixtures/<name>/ with what save_pretrained writes (config.json, model.safetensors,
tokenizer.json, ...) and expected.safetensors: `tokens` (I32) of a fixed text and transformers' `logits` (F32).

  .venv/bin/pip install /opt/wheels/torch-*.whl transformers tokenizers safetensors
  .venv/bin/python Scripts/make_interop_reference.py
"""
import os
import shutil

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers
from transformers import (GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Tests", "FledgeInteropTests", "Fixtures")
TEXT = "ROMEO: But soft, what light through yonder window breaks? It is the east, and Juliet is the sun."


def tokenizer():
    """A byte-level BPE of 300 tokens trained by the tokenizers library on the start of the bundled corpus."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    text = open(os.path.join(ROOT, "data/shakespeare/shakespeare.txt"), encoding="utf-8").read()[:200_000]
    tok.train_from_iterator([text], trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", bos_token="<|endoftext|>")


def write(name, model, tok):
    folder = os.path.join(OUT, name)
    shutil.rmtree(folder, ignore_errors=True)
    model.eval()
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    ids = tok(TEXT)["input_ids"]
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].contiguous()
    save_file({"tokens": torch.tensor(ids, dtype=torch.int32), "logits": logits},
              os.path.join(folder, "expected.safetensors"))
    print(f"{name}: {sum(p.numel() for p in model.parameters())} parameters, {len(ids)} tokens")


if __name__ == "__main__":
    torch.manual_seed(0)
    tok = tokenizer()
    eos = tok.convert_tokens_to_ids("<|endoftext|>")
    write("gpt2", GPT2LMHeadModel(GPT2Config(
        vocab_size=len(tok), n_positions=128, n_embd=32, n_layer=2, n_head=4, n_inner=80,
        bos_token_id=eos, eos_token_id=eos)), tok)
    write("llama", LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=12, max_position_embeddings=128, tie_word_embeddings=False,
        rms_norm_eps=1e-5, bos_token_id=eos, eos_token_id=eos)), tok)
