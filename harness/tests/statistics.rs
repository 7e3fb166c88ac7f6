//! Statistics and self-measurement end to end, with the real binary against the
//! scripted loopback server: `run --repeat` (results per repeat, the run-to-run
//! spread, `compare` reading the repeats), bootstrap intervals and the steady state in
//! the report, and `bench-client` (its summary, and bad flags exiting 2).

#![allow(clippy::unwrap_used)]

mod common;

use common::{infermeter, read_json, run_ok};
use scripted::{Pace, Script, ScriptedServer};

fn workload(dir: &std::path::Path) -> String {
    let path = dir.join("stats.toml");
    std::fs::write(
        &path,
        "format = 1\nname = \"stats\"\nversion = 1\nseed = 9\n[load]\narrival = \"poisson\"\nrate_rps = 25.0\nrequests = 60\nwarmup_requests = 1\n[input]\ndist = \"fixed\"\nvalue = 32.0\n[output]\ndist = \"fixed\"\nvalue = 8.0\n",
    )
    .unwrap();
    path.display().to_string()
}

#[test]
fn repeats_report_their_spread_and_every_figure_its_interval() {
    let dir = tempfile::tempdir().unwrap();
    let server = ScriptedServer::start(Script::normal(Pace {
        ttft_ms: 15.0,
        itl_ms: 2.0,
        ..Pace::default()
    }))
    .unwrap();
    let out = dir.path().join("rep");
    let target = format!(
        "openai,base_url={},model=scripted,preflight=false",
        server.base_url()
    );
    let stdout = run_ok(
        infermeter()
            .args(["run", "--quiet", "--repeat", "3", "--target", &target])
            .args(["--workload", &workload(dir.path())])
            .arg("--out")
            .arg(&out),
    );
    let r = read_json(&out.join("report.json"));
    results::schema::validate_report_json(&r).unwrap();
    let results = r["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    for (i, e) in results.iter().enumerate() {
        assert_eq!(e["repeat"]["index"], i + 1);
        assert_eq!(e["repeat"]["count"], 3);
        assert_eq!(e["requests"]["ok"], 60);
        // Each percentile lies in its interval.
        let ttft = &e["latency"]["ttft_ms"];
        for p in ["p50", "p90", "p95", "p99"] {
            let (lo, hi) = (
                ttft["ci95"][p][0].as_f64().unwrap(),
                ttft["ci95"][p][1].as_f64().unwrap(),
            );
            let v = ttft[p].as_f64().unwrap();
            assert!(lo <= v && v <= hi, "{p}: {lo} <= {v} <= {hi}");
        }
        let t = &e["throughput"];
        let [lo, hi] = [0, 1].map(|k| t["ci95"]["output_tokens_per_s"][k].as_f64().unwrap());
        let v = t["output_tokens_per_s"].as_f64().unwrap();
        assert!(lo <= v * 1.001 && v <= hi * 1.001, "{lo} <= {v} <= {hi}");
        // 60 sends at 25/s: over two seconds of sending, so a steady state exists,
        // inside the measured window.
        let s = &t["steady_state"];
        assert!(
            s["start_s"].as_f64().unwrap() < s["end_s"].as_f64().unwrap(),
            "{s}"
        );
        assert!(s["end_s"].as_f64().unwrap() <= e["load"]["measured_s"].as_f64().unwrap());
    }
    let spread = &r["repeat_spread"][0];
    assert_eq!(spread["repeats"], 3);
    let tok = &spread["metrics"]["output_tokens_per_s"];
    assert_eq!(tok["n"], 3);
    assert!(tok["min"].as_f64().unwrap() <= tok["mean"].as_f64().unwrap());
    assert!(tok["mean"].as_f64().unwrap() <= tok["max"].as_f64().unwrap() + 1e-3);
    assert!(stdout.contains("run-to-run over 3 repeats"), "{stdout}");
    assert!(stdout.contains("ci95 ttft_p50_ms"), "{stdout}");
    // The scripted server does the same thing every time: the report compared with
    // itself passes, each side read as three repeats.
    let report = out.join("report.json");
    infermeter()
        .args(["compare"])
        .arg(&report)
        .arg(&report)
        .assert()
        .success();

    // Killed during the third repeat: the report on disk holds the first two, and
    // `recover` rebuilds the third from requests.jsonl (and run.json, which lists the
    // points started) as the third repeat, with its
    // steady state (same rule, from the lines' send and end times) and the spread.
    let killed = dir.path().join("killed");
    std::fs::create_dir(&killed).unwrap();
    for f in ["requests.jsonl", "run.json"] {
        std::fs::copy(out.join(f), killed.join(f)).unwrap();
    }
    let mut partial = r.clone();
    partial["results"].as_array_mut().unwrap().truncate(2);
    partial["repeat_spread"] = serde_json::json!([]);
    partial["run"]["status"] = "interrupted".into();
    std::fs::write(
        killed.join("report.json"),
        serde_json::to_string(&partial).unwrap(),
    )
    .unwrap();
    run_ok(infermeter().arg("recover").arg(&killed));
    let rec = read_json(&killed.join("report.json"));
    let third = &rec["results"][2];
    assert_eq!(third["repeat"], serde_json::json!({"index": 3, "count": 3}));
    assert_eq!(third["requests"]["ok"], 60);
    // The same builder over the same lines: the recovered point's steady state is
    // the live one's to the microsecond.
    assert_eq!(
        third["throughput"]["steady_state"],
        results[2]["throughput"]["steady_state"]
    );
    assert_eq!(
        rec["repeat_spread"][0]["repeats"], 3,
        "{}",
        rec["repeat_spread"]
    );
}

#[test]
fn bench_client_finds_a_held_rate_and_measures_memory() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bc");
    let stdout = run_ok(
        infermeter()
            .args(["bench-client", "--rates", "100,200", "--seconds", "1"])
            .args(["--memory-concurrency", "2,10", "--out"])
            .arg(&out),
    );
    let s = read_json(&out.join("bench-client.json"));
    let rates = s["rates"].as_array().unwrap();
    assert_eq!(rates.len(), 2);
    for p in rates {
        assert_eq!(p["failed"], 0, "{p}");
        let offered = p["offered_rps"].as_f64().unwrap();
        // Sends are scheduled exactly; the achieved rate is what the window gives.
        assert!(p["achieved_rps"].as_f64().unwrap() > 0.8 * offered, "{p}");
        assert!(
            p["client_cpu_us_per_request"].as_f64().unwrap() > 0.0,
            "{p}"
        );
        assert!(p["server_cpu_cores"].as_f64().is_some(), "{p}");
        assert!(p["schedule_lag_p99_ms"].as_f64().is_some(), "{p}");
    }
    let m = &s["memory"];
    assert_eq!(m["concurrency"], serde_json::json!([2, 10]));
    assert!(m["bytes_per_in_flight_request"].as_f64().is_some(), "{m}");
    assert!(stdout.contains("highest rate held") || stdout.contains("no rate held"));
    // Bad flags: exit 2, one line.
    let o = infermeter()
        .args(["bench-client", "--rates", "0", "--out"])
        .arg(dir.path().join("x"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--rates"));
}
