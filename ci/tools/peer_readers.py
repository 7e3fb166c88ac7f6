"""Loads an `infermeter export` file with the peer tool's own reader and prints, as
one JSON object, the figures the reader parsed (the test compares them with the
report's). Run with the Python of a venv that has the peer installed:

    venv-aiperf/bin/python peer_readers.py aiperf DIR/profile_export_aiperf.json
    venv-vllm/bin/python   peer_readers.py vllm-bench FILE.json
    venv-guidellm/bin/python peer_readers.py guidellm DIR/benchmarks.json

aiperf: AIPerf 0.13's own model of the file (JsonExportData, the class its exporter
serializes) and the reader its sweep orchestrator uses to pull a run's metrics
(JsonMetricResult.project_summary_dict).
vllm-bench: vLLM's `vllm bench sweep` readers: `serve.run_comb` (reads a run's saved
result and writes summary.json), `plot.plot` (reads summary.json, dry run: no
matplotlib) and `plot_pareto._prepare_records` (the Pareto front's tokens per user and
per GPU).
guidellm: GuideLLM 0.8.1's report reader (GenerativeBenchmarksReport.load_file, what
`guidellm benchmark from-file` uses), then GuideLLM's own GenerativeMetrics.compile
run again over each benchmark's exported requests (its request accumulator and
timings models, filled from the file): every figure the export wrote must be the one
GuideLLM computes from those requests. Prints the figures the test compares and
every path where the two differ.
"""

import contextlib
import json
import shutil
import sys
import tempfile
from pathlib import Path


def aiperf(path: Path) -> dict:
    import orjson
    from aiperf.common.models.export_models import JsonExportData, JsonMetricResult

    text = path.read_text()
    data = JsonExportData.model_validate_json(text)
    metrics = JsonMetricResult.project_summary_dict(orjson.loads(text))
    out = {
        tag: {k: getattr(m, k) for k in ("unit", "avg", "p50", "p99", "min", "max", "std", "count")}
        for tag, m in metrics.items()
    }
    out["_was_cancelled"] = data.was_cancelled
    out["_schema_version"] = data.schema_version
    if data.input_config is not None:
        out["_model"] = data.input_config.models.items[0].name
    return out


def vllm_bench(path: Path) -> dict:
    from vllm.benchmarks.sweep import param_sweep, plot, plot_pareto, serve

    tmp = Path(tempfile.mkdtemp())
    try:
        shutil.copy(path, tmp / "run=0.json")
        records = serve.run_comb(
            None, [], serve_comb=param_sweep.ParameterSweepItem(),
            bench_comb=param_sweep.ParameterSweepItem(), link_vars=[], base_path=tmp,
            num_runs=1, dry_run=False,
        )
        plot.plot(
            tmp, tmp, [], [], [], [], var_x="total_token_throughput", var_y="median_ttft_ms",
            filter_by=plot.PlotFilters(), bin_by=plot.PlotBinners(), scale_x=None,
            scale_y=None, dry_run=True,
        )
        summary = plot._json_load_bytes(tmp / "summary.json")
        pareto, skipped = plot_pareto._prepare_records(
            summary, user_count_var="max_concurrency", gpu_count_var=None,
        )
    finally:
        shutil.rmtree(tmp)
    r = records[0]
    keys = [k for k in r if k.endswith("_ms") or k in (
        "completed", "failed", "duration", "request_throughput", "output_throughput",
        "total_token_throughput", "total_input_tokens", "total_output_tokens",
        "max_concurrency", "request_rate")]
    out = {k: r[k] for k in keys}
    out["_pareto"] = [
        {k: p.get(k) for k in ("tokens_per_user", "tokens_per_gpu", "user_count_estimate")}
        for p in pareto
    ]
    out["_pareto_skipped"] = len(skipped) if isinstance(skipped, (list, tuple)) else skipped
    return out


def _differences(a, b, path="", rel=1e-9):
    """Paths where JSON-like `a` and `b` differ (floats beyond `rel`)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += _differences(a.get(k), b.get(k), f"{path}.{k}", rel)
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} vs {len(b)} items"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _differences(x, y, f"{path}[{i}]", rel)]
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        if abs(a - b) <= rel * max(abs(a), abs(b)) or a == b:
            return []
        return [f"{path}: {a!r} vs {b!r}"]
    return [] if a == b else [f"{path}: {a!r} vs {b!r}"]


def guidellm(path: Path) -> dict:
    from guidellm.benchmark import GenerativeBenchmarksReport
    from guidellm.benchmark.schemas.accumulator import (
        GenerativeBenchmarkTimings,
        GenerativeRequestsAccumulator,
    )
    from guidellm.benchmark.schemas.metrics import GenerativeMetrics

    report = GenerativeBenchmarksReport.load_file(path)
    out = {"_version": report.metadata.version, "benchmarks": []}
    for b in report.benchmarks:
        r, sm = b.requests, b.scheduler_metrics

        class Accumulator:  # the attributes GenerativeMetrics.compile reads
            config = b.config
            timings = GenerativeBenchmarkTimings(
                request_start=sm.request_start_time, measure_start=sm.measure_start_time,
                measure_end=sm.measure_end_time, request_end=sm.request_end_time,
            )
            completed = GenerativeRequestsAccumulator(requests_stats=r.successful)
            incomplete = GenerativeRequestsAccumulator(requests_stats=r.incomplete)
            errored = GenerativeRequestsAccumulator(requests_stats=r.errored)

        recomputed = GenerativeMetrics.compile(Accumulator()).model_dump(mode="json")
        written = b.metrics.model_dump(mode="json")
        m = b.metrics
        out["benchmarks"].append({
            "differences": _differences(written, recomputed),
            "strategy": b.config.strategy.type_,
            "successful": m.request_totals.successful,
            "errored": m.request_totals.errored,
            "ttft_ms_mean": m.time_to_first_token_ms.successful.mean,
            "ttft_ms_count": m.time_to_first_token_ms.successful.count,
            "request_latency_s_mean": m.request_latency.successful.mean,
            "output_tokens_sum": m.output_token_count.total.total_sum,
            "prompt_tokens_sum": m.prompt_token_count.total.total_sum,
            "itl_ms_mean": m.inter_token_latency_ms.successful.mean,
            "duration_s": b.duration,
        })
    return out


def main() -> int:
    fmt, path = sys.argv[1], Path(sys.argv[2])
    readers = {"aiperf": aiperf, "vllm-bench": vllm_bench, "guidellm": guidellm}
    # The readers print progress of their own: to standard error, so that standard
    # output is the one JSON object.
    with contextlib.redirect_stdout(sys.stderr):
        figures = readers[fmt](path)
    print(json.dumps(figures, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
