//! A recorded run replayed: `requests.jsonl` of an agent-loop run (a shared prefix,
//! sessions whose context grows call by call) becomes a trace workload
//! (`format = "requests-jsonl"`) sent to the embedded engine again: the same schedule,
//! the same lengths, and the engine's prefix cache finds the shared prefix and the
//! session histories again.

#![allow(clippy::unwrap_used)]

mod common;

use common::{infermeter, read_json, read_jsonl, run_ok};
use serde_json::Value;

/// `(intended send s, prompt tokens, output tokens)` of each record, by send time.
fn schedule(records: &[Value]) -> Vec<(f64, u64, u64)> {
    let mut s: Vec<(f64, u64, u64)> = records
        .iter()
        .map(|r| {
            (
                r["scheduled_s"].as_f64().unwrap(),
                r["tokenizer_input_tokens"].as_u64().unwrap(),
                r["max_output_tokens"].as_u64().unwrap(),
            )
        })
        .collect();
    s.sort_by(|a, b| a.0.total_cmp(&b.0));
    s
}

#[test]
fn a_recorded_run_replays_with_its_schedule_lengths_and_prefixes() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first");
    run_ok(
        infermeter()
            .args(["run", "--quiet", "--target", "local-cpu,model=tiny-dense"])
            .args([
                "--workload",
                "quick/agent-loop",
                "--requests",
                "12",
                "--warmup",
                "0",
            ])
            .args(["--rate", "2", "--out"])
            .arg(&first),
    );
    let recorded = read_jsonl(&first.join("requests.jsonl"));
    assert!(
        recorded.iter().all(|r| r["prefix"]["tokens"].is_number()),
        "the prefix is recorded"
    );

    let spec = dir.path().join("replay.toml");
    std::fs::write(
        &spec,
        format!(
            "format = 1\nname = \"replay\"\nversion = 1\n[load]\narrival = \"trace\"\n[trace]\nformat = \"requests-jsonl\"\npath = \"{}\"\n",
            first.join("requests.jsonl").display()
        ),
    )
    .unwrap();
    let show = run_ok(infermeter().args(["workloads", "show", spec.to_str().unwrap()]));
    assert!(show.contains("reusable_input_tokens = "), "{show}");

    let second = dir.path().join("second");
    run_ok(
        infermeter()
            .args(["run", "--quiet", "--target", "local-cpu,model=tiny-dense"])
            .args(["--workload", spec.to_str().unwrap(), "--out"])
            .arg(&second),
    );
    let report = read_json(&second.join("report.json"));
    let r = &report["results"][0];
    assert_eq!(r["load"]["pattern"], "trace");
    let replayed = read_jsonl(&second.join("requests.jsonl"));
    assert_eq!(replayed.len(), recorded.len());
    // Each recorded call, by its intended send, is replayed at that time with its lengths.
    let (want, got) = (schedule(&recorded), schedule(&replayed));
    for (w, g) in want.iter().zip(&got) {
        assert!((w.0 - g.0).abs() < 1e-3, "{w:?} vs {g:?}");
        assert_eq!((w.1, w.2), (g.1, g.2));
    }
    // The shared prefix and the histories are rebuilt: the engine's cache finds them.
    let hit = r["engine"]["cache_hit_ratio"].as_f64().unwrap();
    assert!(hit > 0.3, "cache hit ratio {hit}");
}
