"""Loads an infermeter LiteLLM price export into LiteLLM and checks that LiteLLM's own
cost computation reproduces the dollars infermeter measured.

usage: python litellm_check.py EXPORT.json REPORT.json

For every exported entry, the matching result of REPORT is looked up by the entry's
metadata (run id, target kind, model, precision, workload, load point); LiteLLM then
prices that result's token totals (uncached input, cached input, output) with
`litellm.cost_per_token`, and the sum must equal the report's `cost.usd_total` to
within 1e-6 relative plus one nano-dollar (infermeter rounds dollars and
per-million prices to nano-dollars). Prints
one line per entry; exits 1 on any mismatch, 2 on bad input.
"""
import json
import os
import sys

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network

import litellm  # noqa: E402

litellm.suppress_debug_info = True  # its "Provider List" banner is not our output


def load_label(r):
    load = r["load"]
    if load.get("rate_rps") is not None:
        return f"{load['pattern']} {load['rate_rps']} rps"
    if load.get("concurrency") is not None:
        return f"{load['pattern']} c={load['concurrency']}"
    return load["pattern"]


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    with open(sys.argv[1]) as f:
        export = json.load(f)
    with open(sys.argv[2]) as f:
        report = json.load(f)
    if not export:
        print("the export is empty", file=sys.stderr)
        return 2
    litellm.register_model(export)
    bad = 0
    for key, entry in export.items():
        m = entry["metadata"]
        matches = [
            r
            for r in report["results"]
            if r["target"]["kind"] == m["target_kind"]
            and r["target"]["model"] == m["model"]
            and r["target"]["precision"] == m["precision"]
            and r["workload"]["name"] == m["workload"]
            and load_label(r) == m["load_point"]
        ]
        if report["run"]["id"] != m["run_id"] or len(matches) != 1:
            print(f"{key}: no single matching result in the report", file=sys.stderr)
            return 2
        cost = matches[0]["cost"]
        cached = cost["cached_input_tokens"]
        uncached = cost["input_tokens"]
        output = cost["output_tokens"] + cost["reasoning_tokens"]
        prompt_usd, completion_usd = litellm.cost_per_token(
            model=key,
            prompt_tokens=uncached + cached,
            completion_tokens=output,
            cache_read_input_tokens=cached,
        )
        got = prompt_usd + completion_usd
        want = cost["usd_total"]
        # The report rounds dollars to nano-dollars, and per-million prices likewise.
        ok = abs(got - want) <= 1e-6 * abs(want) + 1e-9
        print(
            f"{'ok' if ok else 'MISMATCH'}: {key}: litellm {got:.12f} USD, "
            f"infermeter {want:.12f} USD ({uncached} input, {cached} cached, {output} output tokens)"
        )
        bad += not ok
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
