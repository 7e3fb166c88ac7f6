#!/usr/bin/env python3
"""Reference engine for infermeter's tests and measurements: llama.cpp through
llama-cpp-python, on the same GGUF file.

    llama_reference.py greedy MODEL N_OUT ID ID ...     -> JSON list of N_OUT greedy ids
    llama_reference.py teacher MODEL N_OUT ID ID ...    -> per greedy step: token, top-10 logits
    llama_reference.py speed MODEL N_OUT N_SEQ N_PROMPT -> JSON decode figures

`greedy` evaluates exactly the given prompt token ids (no BOS, no template) and
decodes greedily, ignoring end-of-sequence, like infermeter's engine.
`speed` measures prefill and decode tokens/s for N_SEQ sequences decoded together in
one batch (llama.cpp's own batched decode through the low-level API) after an
N_PROMPT-token prompt each, with llama.cpp's default context settings (f16 KV cache,
flash attention "auto", ubatch 512); `greedy` and `teacher` use an f32 KV cache, as
infermeter's exactness tests do.
"""
import json
import sys
import time

import llama_cpp
from llama_cpp import Llama


def load(model: str, n_ctx: int, logits_all: bool = False) -> Llama:
    return Llama(model_path=model, n_ctx=n_ctx, n_batch=max(512, n_ctx), n_ubatch=max(512, n_ctx), n_threads=2, n_threads_batch=2,
                 verbose=False, logits_all=logits_all,
                 # f32 KV cache, like infermeter's engine (llama.cpp defaults to f16).
                 type_k=0, type_v=0)


def greedy(model: str, n_out: int, ids: list) -> list:
    llm = load(model, n_ctx=len(ids) + n_out + 8, logits_all=True)
    llm.eval(ids)
    out = []
    for _ in range(n_out):
        tok = int(llm.scores[llm.n_tokens - 1].argmax())
        out.append(tok)
        llm.eval([tok])
    return out


def teacher(model: str, n_out: int, ids: list, top: int = 10) -> list:
    """Greedy decoding from `ids`; for every generated position, the chosen token and
    the `top` highest logits (token, logit) llama.cpp computed there."""
    llm = load(model, n_ctx=len(ids) + n_out + 8, logits_all=True)
    llm.eval(ids)
    steps = []
    for _ in range(n_out):
        scores = llm.scores[llm.n_tokens - 1]
        best = scores.argsort()[::-1][:top]
        tok = int(best[0])
        steps.append({"token": tok, "top": [[int(t), float(scores[t])] for t in best]})
        llm.eval([tok])
    return steps


def speed(model: str, n_out: int, n_seq: int, n_prompt: int) -> dict:
    llm = load(model, n_ctx=512)
    # The high-level class does not pass n_seq_max through: make the context here.
    params = llama_cpp.llama_context_default_params()
    params.n_ctx = n_seq * (n_prompt + n_out + 8)
    # Every prompt in one llama_decode, split into ubatches of llama.cpp's default
    # size; the KV cache (f16) and flash attention ("auto") stay at their defaults.
    params.n_batch = max(512, n_seq * n_prompt)
    params.n_seq_max = n_seq
    params.n_threads = params.n_threads_batch = 2
    ctx = llama_cpp.llama_init_from_model(llm.model, params)
    batch = llama_cpp.llama_batch_init(max(n_prompt * n_seq, n_seq), 0, n_seq)
    prompt = [(i * 7919) % 40000 + 1000 for i in range(n_prompt)]

    def add(tok, pos, seq, logits):
        i = batch.n_tokens
        batch.token[i] = tok
        batch.pos[i] = pos
        batch.n_seq_id[i] = 1
        batch.seq_id[i][0] = seq
        batch.logits[i] = logits
        batch.n_tokens += 1

    batch.n_tokens = 0
    for s in range(n_seq):
        for p, tok in enumerate(prompt):
            add(tok, p, s, p == n_prompt - 1)
    t0 = time.perf_counter()
    rc = llama_cpp.llama_decode(ctx, batch)
    if rc != 0:
        raise SystemExit(f"llama_decode failed (prefill): {rc}")
    t1 = time.perf_counter()
    n_vocab = llama_cpp.llama_n_vocab(llama_cpp.llama_model_get_vocab(llm.model))
    for step in range(n_out):
        batch.n_tokens = 0
        for s in range(n_seq):
            add(1000 + (step * 31 + s) % 30000, n_prompt + step, s, True)
        if llama_cpp.llama_decode(ctx, batch) != 0:
            raise SystemExit("llama_decode failed (decode)")
    t2 = time.perf_counter()
    llama_cpp.llama_batch_free(batch)
    llama_cpp.llama_free(ctx)
    return {
        "engine": f"llama.cpp (llama-cpp-python {llama_cpp.__version__})",
        "sequences": n_seq,
        "prompt_tokens": n_prompt,
        "output_tokens_per_sequence": n_out,
        "prefill_tokens_per_s": n_seq * n_prompt / (t1 - t0),
        "decode_tokens_per_s": n_seq * n_out / (t2 - t1),
        "vocab": n_vocab,
        "kv_cache": {0: "f32", 1: "f16"}.get(params.type_k, str(params.type_k)),
        "flash_attn": str(getattr(params, "flash_attn_type", getattr(params, "flash_attn", "?"))),
        "n_ubatch": params.n_ubatch,
    }


def main() -> None:
    mode, model = sys.argv[1], sys.argv[2]
    if mode == "greedy":
        print(json.dumps(greedy(model, int(sys.argv[3]), [int(x) for x in sys.argv[4:]])))
    elif mode == "teacher":
        print(json.dumps(teacher(model, int(sys.argv[3]), [int(x) for x in sys.argv[4:]])))
    elif mode == "speed":
        print(json.dumps(speed(model, int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))))
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
