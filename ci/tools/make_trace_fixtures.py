#!/usr/bin/env python3
"""Writes the small trace fixtures in workloads/traces/ (seeded, so a rerun writes the
same bytes). They follow the public formats infermeter replays; their numbers are made
up by this script, not taken from any provider's log:

- mooncake-sample.jsonl: 48 requests over ~24 s in Mooncake's JSON-lines format
  (timestamp ms, input_length, output_length, hash_ids of 512-token blocks). Requests
  come from 4 "conversations" whose prompts grow turn by turn, so a request's leading
  hash_ids repeat an earlier request's (the prefix reuse Mooncake's traces show).
- burstgpt-sample.csv: 40 rows in BurstGPT's columns (Timestamp s, Model, Request
  tokens, Response tokens, Total tokens, Log Type), bursty gaps, and 2 failed rows
  (0 response tokens) that a replay skips.
- azure-sample.csv: 40 rows in the Azure LLM inference trace's columns (TIMESTAMP,
  ContextTokens, GeneratedTokens) with its timestamp format.

Usage: python3 ci/tools/make_trace_fixtures.py [OUT_DIR]
"""
import json
import os
import random
import sys
from datetime import datetime, timedelta

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..", "workloads", "traces")
rng = random.Random(20261201)

# Mooncake: conversations whose context grows by one turn per request.
lines = []
t_ms = 0
conversations = [{"blocks": [], "tokens": 0} for _ in range(4)]
next_id = 0
for i in range(48):
    c = conversations[rng.randrange(4)]
    turn = rng.randint(40, 380)
    c["tokens"] += turn
    if c["tokens"] > 1900:  # a new conversation once the context is long
        c["blocks"], c["tokens"] = [], turn
    need = (c["tokens"] + 511) // 512
    while len(c["blocks"]) < need:
        c["blocks"].append(next_id)
        next_id += 1
    # The last block is partial and so this request's own unless it is full.
    hash_ids = list(c["blocks"][:need])
    if c["tokens"] % 512:
        c["blocks"] = c["blocks"][: need - 1]
        hash_ids[-1] = next_id
        next_id += 1
    out_len = rng.randint(8, 48)
    lines.append(json.dumps({"timestamp": t_ms, "input_length": c["tokens"], "output_length": out_len, "hash_ids": hash_ids}))
    c["tokens"] += out_len
    t_ms += int(rng.expovariate(2.0) * 1000)
with open(os.path.join(out, "mooncake-sample.jsonl"), "w") as f:
    f.write("\n".join(lines) + "\n")

# BurstGPT: bursts of requests separated by pauses.
rows = ["Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type"]
t = 0.0
for i in range(40):
    t += rng.expovariate(8.0) if i % 8 else rng.uniform(2.0, 4.0)
    req = rng.randint(16, 600)
    resp = 0 if i in (13, 29) else rng.randint(4, 64)
    model = "ChatGPT" if rng.random() < 0.8 else "GPT-4"
    rows.append(f"{t:.0f},{model},{req},{resp},{req + resp},Conversation log")
with open(os.path.join(out, "burstgpt-sample.csv"), "w") as f:
    f.write("\n".join(rows) + "\n")

# Azure: absolute timestamps with 7 fractional digits.
rows = ["TIMESTAMP,ContextTokens,GeneratedTokens"]
at = datetime(2023, 11, 16, 18, 15, 46, 680590)
for i in range(40):
    at += timedelta(seconds=rng.expovariate(3.0))
    stamp = at.strftime("%Y-%m-%d %H:%M:%S.%f") + "0"
    rows.append(f"{stamp},{rng.randint(24, 900)},{rng.randint(4, 60)}")
with open(os.path.join(out, "azure-sample.csv"), "w") as f:
    f.write("\n".join(rows) + "\n")
