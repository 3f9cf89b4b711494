#!/usr/bin/env python3
"""Write the fixtures that FledgeTokenizer's tests compare against (run by hand; tests never need Python).

Tests/FledgeTokenizerTests/Fixtures/
  texts.json          the test texts: passages of ../shared/corpora plus edge cases
  gpt2_ids.json       GPT-2 ids of every text, from tiktoken (r50k_base) — checked equal to HF tokenizers
  pretokenize.json    the pieces of every text under the GPT-2 and cl100k patterns (Python `regex`)
  hf_bpe.json         a byte-level BPE tokenizer.json trained by HF tokenizers on milton.txt (vocab 2000)
  hf_bpe_ids.json     its ids of every text (Fledge must load the file and produce the same)
  hf_word.json        a WordLevel tokenizer.json (Whitespace, Lowercase) trained by HF on milton.txt
  hf_word_ids.json    its ids of every text
  hf_char_bpe.json    a BPE tokenizer.json as in the HF tutorial (Whitespace, [UNK], character-level), milton.txt
  hf_char_bpe_ids.json its ids of every text
and, when .build/release/fledge exists, checks the other direction: a tokenizer.json written by
`fledge tokenizer train` loads in HF tokenizers and encodes every text exactly as Fledge does.

  python3 -m venv .venv && .venv/bin/pip install tiktoken tokenizers regex
  .venv/bin/python Scripts/make_tokenizer_reference.py
"""
import json
import os
import subprocess
import tempfile

import regex
import tiktoken
from tiktoken.load import load_tiktoken_bpe
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(ROOT, "..", "shared")
OUT = os.path.join(ROOT, "Tests", "FledgeTokenizerTests", "Fixtures")
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
CL100K_PATTERN = r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"""

EDGE_CASES = [
    "", " ", "  ", "\n", "\n\n\n", " \n ", "\t\tindented\ttabs", "trailing spaces   ", "   leading spaces",
    "Hello, world! It's a test; isn't it? We'll see: you're right, I'd say, they've gone, I'm here.",
    "IT'S LOUD! WE'LL SHOUT. THEY'VE", "don't DON'T Don'T", "'s 's's ''s 'S",
    "Numbers: 1 12 123 1234 12345 3.14159 1,000,000 -42 +7 0x1F 2024-11-21",
    "Emoji: 😀 👍🏽 👨‍👩‍👧‍👦 🇫🇷 ❤️", "中文文本，混合English和数字123。", "日本語のテキスト、カタカナ、ひらがな。",
    "Ελληνικά και русский текст и عربي النص و עברית", "café naïve résumé coöperate Æsir ß ﬁ",
    "Combining: e\u0301 a\u0308 n\u0303", "Zero\u200bwidth\u200djoiner\ufeffbom", "Math: ∑∫√∞≠≈ αβγ ℕℝ ①②③ Ⅻ",
    "Mixed\r\nline\rendings\n\r\n", "punctuation!!! ??? ... --- ;;; (((nested))) [brackets] {braces}",
    "emails: someone@example.com, URLs: https://example.org/path?q=1&r=2#frag",
    "code: def f(x):\n    return x**2  # comment\n\tif x != 0: pass", "    four spaces\n        eight spaces",
    "A" * 40, "ab" * 30, " " * 17 + "x", "x" + "\n" * 5 + "y", "<|endoftext|> in text <|endoftext|>",
    "\u00a0non-breaking\u00a0spaces\u2003em space\u3000ideographic", "subscripts x₁ x² ½ ¼",
]


def corpus_passages():
    passages = []
    for name in ["shakespeare.txt", "kjv_bible.txt", "web_bible.txt", "milton.txt", "jargon.txt"]:
        text = open(os.path.join(SHARED, "corpora", name), encoding="utf-8").read()
        for start in [0, len(text) // 3, 2 * len(text) // 3]:
            passages.append(text[start : start + 1500])
    for name in ["chatterbot_en.jsonl", "python_faq.jsonl", "debian_faq.jsonl"]:
        lines = open(os.path.join(SHARED, "corpora", name), encoding="utf-8").read().splitlines()
        for line in lines[:: max(1, len(lines) // 4)][:4]:
            item = json.loads(line)
            passages.append(item["question"] + "\n" + item["answer"][:1200])
    return passages


def main():
    os.makedirs(OUT, exist_ok=True)
    texts = corpus_passages() + EDGE_CASES
    gpt2_dir = os.path.join(SHARED, "tokenizers", "gpt2")
    enc = tiktoken.Encoding(name="r50k_base", pat_str=GPT2_PATTERN,
                            mergeable_ranks=load_tiktoken_bpe(os.path.join(gpt2_dir, "r50k_base.tiktoken")),
                            special_tokens={"<|endoftext|>": 50256})
    hf = Tokenizer(models.BPE.from_file(os.path.join(gpt2_dir, "encoder.json"), os.path.join(gpt2_dir, "vocab.bpe")))
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf.decoder = decoders.ByteLevel()
    ids = []
    for text in texts:
        expected = enc.encode_ordinary(text)
        assert hf.encode(text).ids == expected, f"tiktoken and HF disagree on {text[:40]!r}"
        ids.append(expected)
    pieces = {"gpt2": [regex.findall(GPT2_PATTERN, t) for t in texts],
              "cl100k": [regex.findall(CL100K_PATTERN, t) for t in texts]}
    json.dump(texts, open(os.path.join(OUT, "texts.json"), "w"), ensure_ascii=False)
    json.dump(ids, open(os.path.join(OUT, "gpt2_ids.json"), "w"))
    json.dump(pieces, open(os.path.join(OUT, "pretokenize.json"), "w"), ensure_ascii=False)
    print(f"{len(texts)} texts, {sum(map(len, ids))} GPT-2 tokens")

    # (ii) A tokenizer trained by HF: Fledge must load its tokenizer.json and give the same ids.
    milton = os.path.join(SHARED, "corpora", "milton.txt")
    hf_bpe = Tokenizer(models.BPE())
    hf_bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf_bpe.decoder = decoders.ByteLevel()
    from tokenizers import trainers
    hf_bpe.train([milton], trainers.BpeTrainer(vocab_size=2000, min_frequency=2, show_progress=False,
                                               special_tokens=["<pad>", "<unk>", "<bos>", "<eos>"],
                                               initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    hf_bpe.save(os.path.join(OUT, "hf_bpe.json"))
    json.dump([hf_bpe.encode(t).ids for t in texts], open(os.path.join(OUT, "hf_bpe_ids.json"), "w"))

    hf_word = Tokenizer(models.WordLevel(unk_token="<unk>"))
    hf_word.normalizer = normalizers.Lowercase()
    hf_word.pre_tokenizer = pre_tokenizers.Whitespace()
    hf_word.train([milton], trainers.WordLevelTrainer(vocab_size=3000, min_frequency=1, show_progress=False,
                                                      special_tokens=["<pad>", "<unk>", "<bos>", "<eos>"]))
    hf_word.save(os.path.join(OUT, "hf_word.json"))
    json.dump([hf_word.encode(t).ids for t in texts], open(os.path.join(OUT, "hf_word_ids.json"), "w"))

    hf_char = Tokenizer(models.BPE(unk_token="[UNK]"))
    hf_char.pre_tokenizer = pre_tokenizers.Whitespace()
    hf_char.train([milton], trainers.BpeTrainer(vocab_size=2000, show_progress=False,
                                                special_tokens=["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"]))
    hf_char.save(os.path.join(OUT, "hf_char_bpe.json"))
    json.dump([hf_char.encode(t).ids for t in texts], open(os.path.join(OUT, "hf_char_bpe_ids.json"), "w"))

    # (iii) A tokenizer.json written by Fledge must load in HF and encode as Fledge does.
    fledge = os.path.join(ROOT, ".build", "release", "fledge")
    if os.path.exists(fledge):
        for kind, extra in [("bytelevel-bpe", []), ("bpe", []), ("word", ["--lowercase"])]:
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "tokenizer.json")
                subprocess.run([fledge, "tokenizer", "train", "--kind", kind, "--input", milton, "--vocab-size", "2000",
                                "--output", path] + extra, check=True, capture_output=True)
                loaded = Tokenizer.from_file(path)
                same = 0
                for text in texts:
                    theirs = loaded.encode(text).ids
                    ours = [int(x) for x in subprocess.run([fledge, "tokenizer", "encode", "--tokenizer", path, "--text", text],
                                                            check=True, capture_output=True, text=True).stdout.split()]
                    assert theirs == ours, f"HF reads Fledge's {kind} tokenizer.json differently on {text[:40]!r}"
                    same += 1
                print(f"HF tokenizers loads Fledge's {kind} tokenizer.json and encodes all {same} texts identically")
    else:
        print("(build Fledge in release mode to check that HF loads Fledge's tokenizer.json)")


if __name__ == "__main__":
    main()
