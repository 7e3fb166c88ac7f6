#!/usr/bin/env python3
"""Prints infermeter's and GuideLLM's figures of the same workload side by side.

Usage: side_by_side.py OUT_DIR

OUT_DIR holds, for each tool and each request count N, what ci/tools/side_by_side.sh
wrote: infermeter-N/report.json (+ requests.jsonl), guidellm-N.json, cpu-TOOL-N.txt
(samples of the tool's process-tree CPU seconds) and server-lines-TOOL-N.txt. Figures
are compared on the largest runs; client CPU is what the tool's process tree used
inside its own measured window, so start-up (GuideLLM's imports, infermeter's
tokenizer) is left out.

Where the definitions coincide (README, "Compared with other tools"):
  infermeter ttft_ms p50             = GuideLLM time_to_first_token_ms median
  infermeter tpot_ms p50             = GuideLLM inter_token_latency_ms median
  e2e_ms / output tokens (median)    = GuideLLM time_per_output_token_ms median
  output tokens / measured window    = GuideLLM output tokens / benchmark duration

The server's own decode time per token during each tool's run (llama.cpp's log) shows
how much each client slowed the server it measured by taking CPU from it.
"""
import datetime
import glob
import json
import os
import re
import statistics
import sys


def infermeter(out, n):
    d = os.path.join(out, f"infermeter-{n}")
    rep = json.load(open(os.path.join(d, "report.json")))
    r = rep["results"][0]
    recs = [json.loads(l) for l in open(os.path.join(d, "requests.jsonl"))]
    ok = [x for x in recs if x["status"] == "ok" and not x.get("cold_start")]
    return {
        "requests_ok": r["requests"]["ok"],
        "output_tokens": r["tokens"]["output"],
        "ttft_median_ms": statistics.median(x["ttft_ms"] for x in ok),
        "itl_guidellm_def_ms": statistics.median(x["tpot_ms"] for x in ok),
        "tpot_guidellm_def_ms": statistics.median(x["e2e_ms"] / x["output_tokens"] for x in ok),
        "per_token_gap_p50_ms": r["latency"]["itl_ms"]["p50"],
        "output_tok_per_s": r["tokens"]["output"] / r["load"]["measured_s"],
        "client_cpu_us_per_token_in_report": r["client"]["cpu_us_per_output_token"],
    }


def guidellm(out, n):
    d = json.load(open(os.path.join(out, f"guidellm-{n}.json")))
    b = d["benchmarks"][0]
    m = b["metrics"]
    ok = b["requests"]["successful"]
    tokens = sum(x["output_metrics"]["text_tokens"] or 0 for x in ok)
    return {
        "requests_ok": len(ok),
        "output_tokens": tokens,
        "ttft_median_ms": m["time_to_first_token_ms"]["successful"]["median"],
        "itl_guidellm_def_ms": m["inter_token_latency_ms"]["successful"]["median"],
        "tpot_guidellm_def_ms": m["time_per_output_token_ms"]["successful"]["median"],
        "per_token_gap_p50_ms": None,
        "output_tok_per_s": tokens / b["duration"],
        "client_cpu_us_per_token_in_report": None,
    }


def server_log_medians(out, tool, n):
    """Medians of llama.cpp's own per-request timings over a run: prompt eval ms (its
    prefill) and decode ms per token."""
    a, b = (int(x) for x in open(os.path.join(out, f"server-lines-{tool}-{n}.txt")).read().split())
    lines = [l for l in open(os.path.join(out, "llama-server.log")) if " eval time" in l]
    prompt, per = [], []
    for l in lines[a:b]:
        if "prompt eval" in l:
            m = re.search(r"=\s*([0-9.]+) ms", l)
            if m:
                prompt.append(float(m.group(1)))
            continue
        m = re.search(r"\(\s*([0-9.]+) ms per token", l)
        if m:
            per.append(float(m.group(1)))
    med = lambda xs: statistics.median(xs) if xs else None
    return med(prompt), med(per)


def cpu_samples(out, tool, n):
    name = f"load-cpu-{n}.txt" if tool == "load" else f"cpu-{tool}-{n}.txt"
    rows = [l.split() for l in open(os.path.join(out, name)) if l.strip()]
    return [(float(t), float(c)) for t, c in rows]


def cpu_at(samples, t):
    """The tree's CPU seconds at unix time t (linear between samples)."""
    prev = samples[0]
    for s in samples:
        if s[0] >= t:
            if s[0] == prev[0]:
                return s[1]
            return prev[1] + (s[1] - prev[1]) * (t - prev[0]) / (s[0] - prev[0])
        prev = s
    return samples[-1][1]


def window(out, tool, n):
    """The tool's own measured window, unix seconds."""
    if tool == "infermeter":
        return report_window(os.path.join(out, f"infermeter-{n}", "report.json"))
    return guidellm_window(os.path.join(out, f"guidellm-{n}.json"))


def report_window(path):
    """An infermeter report's first measured window, unix seconds."""
    load = json.load(open(path))["results"][0]["load"]
    iso = lambda s: datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
    return iso(load["window_start"]), iso(load["window_end"])


def guidellm_window(path):
    """A GuideLLM benchmark's window, unix seconds."""
    b = json.load(open(path))["benchmarks"][0]
    return b["start_time"], b["end_time"]


def cpu_in(samples, a_b):
    """CPU seconds the sampled process tree used between a and b."""
    a, b = a_b
    return cpu_at(samples, b) - cpu_at(samples, a)


def main(out):
    ns = sorted({int(p.rsplit("-", 1)[1].split(".")[0]) for p in glob.glob(os.path.join(out, "cpu-*-*.txt"))})
    large = ns[-1]
    rows = {}
    for tool, read in (("infermeter", infermeter), ("guidellm", guidellm)):
        big = read(out, large)
        samples = cpu_samples(out, tool, large)
        in_window = cpu_in(samples, window(out, tool, large))
        big["client_cpu_s_whole"] = samples[-1][1]
        big["client_cpu_s_window"] = in_window
        big["client_cpu_us_per_token_window"] = 1e6 * in_window / big["output_tokens"]
        big["server_prompt_eval_ms"], big["server_decode_ms_per_token"] = server_log_medians(out, tool, large)
        rows[tool] = big
    keys = [
        ("requests_ok", "requests ok"),
        ("output_tokens", "output tokens"),
        ("ttft_median_ms", "TTFT median, ms"),
        ("itl_guidellm_def_ms", "(e2e-ttft)/(n-1) median, ms (GuideLLM ITL)"),
        ("tpot_guidellm_def_ms", "e2e/n median, ms (near GuideLLM TPOT: last token/n)"),
        ("per_token_gap_p50_ms", "per-token gap p50, ms (infermeter itl_ms)"),
        ("output_tok_per_s", "output tokens/s"),
        ("server_prompt_eval_ms", "server's own prompt eval ms, median (llama.cpp log)"),
        ("server_decode_ms_per_token", "server's own decode ms/token, median (llama.cpp log)"),
        ("client_cpu_s_whole", f"client CPU s, whole process tree ({large} requests)"),
        ("client_cpu_s_window", "client CPU s inside the tool's measured window"),
        ("client_cpu_us_per_token_window", "client CPU us per output token, in the window"),
        ("client_cpu_us_per_token_in_report", "client CPU us/token (infermeter's own report)"),
    ]
    fmt = lambda v: "-" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))
    print(f"| figure | infermeter | GuideLLM | difference |")
    print("|---|---|---|---|")
    result = {}
    for k, name in keys:
        a, b = rows["infermeter"][k], rows["guidellm"][k]
        diff = ""
        if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b:
            if k.startswith("client_cpu_us"):
                diff = f"GuideLLM / infermeter = {b / a:.1f}x" if a else ""
            else:
                diff = f"{100 * (a - b) / b:+.1f}%"
        print(f"| {name} | {fmt(a)} | {fmt(b)} | {diff} |")
        result[k] = {"infermeter": a, "guidellm": b}
    if os.path.exists(os.path.join(out, "load-guidellm.json")):
        result["load_phase"] = load_phase(out, fmt)
    json.dump(result, open(os.path.join(out, "side_by_side.json"), "w"), indent=2)


def load_phase(out, fmt):
    """The load phase's table: both clients at 100 requests/s against the scripted server."""
    path = os.path.join(out, "load-infermeter", "report.json")
    rep = json.load(open(path))["results"][0]
    im_cpu = cpu_in(cpu_samples(out, "load", "infermeter"), report_window(path))
    im = {
        "requests_ok": rep["requests"]["ok"],
        "output_tokens": rep["tokens"]["output"],
        "ttft_median_ms": rep["latency"]["ttft_ms"]["p50"],
        "schedule_lag_p99_ms": rep["latency"]["queue_ms"]["p99"],
        "client_cpu_s_window": im_cpu,
        "client_cpu_us_per_token_window": 1e6 * im_cpu / rep["tokens"]["output"],
    }
    path = os.path.join(out, "load-guidellm.json")
    g = json.load(open(path))["benchmarks"][0]
    ok = g["requests"]["successful"]
    tokens = sum(x["output_metrics"]["text_tokens"] or 0 for x in ok)
    gl_cpu = cpu_in(cpu_samples(out, "load", "guidellm"), guidellm_window(path))
    m = g["metrics"]
    gl = {
        "requests_ok": len(ok),
        "output_tokens": tokens,
        "ttft_median_ms": m["time_to_first_token_ms"]["successful"]["median"],
        "schedule_lag_p99_ms": 1000 * m["request_dispatch_delay"]["successful"]["percentiles"]["p99"],
        "client_cpu_s_window": gl_cpu,
        "client_cpu_us_per_token_window": 1e6 * gl_cpu / tokens if tokens else None,
    }
    print()
    print("Load phase: 100 requests/s, 16 tokens each, scripted server (TTFT 20 ms, 5 ms/token)")
    print()
    print("| figure | infermeter | GuideLLM |")
    print("|---|---|---|")
    for k in im:
        print(f"| {k} | {fmt(im[k])} | {fmt(gl[k])} |")
    if im["client_cpu_us_per_token_window"] and gl["client_cpu_us_per_token_window"]:
        print(f"| GuideLLM / infermeter CPU per token | {gl['client_cpu_us_per_token_window'] / im['client_cpu_us_per_token_window']:.1f}x | |")
    return {"infermeter": im, "guidellm": gl}


if __name__ == "__main__":
    main(sys.argv[1])
