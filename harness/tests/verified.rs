//! Verified tasks end to end on the embedded engine (SmolLM2-135M, `ci/setup.sh`):
//! every reply of a checked workload is graded, the verification section agrees with
//! the records and with a re-grading by the checkers of the regenerated stream, cost
//! and energy are divided by the verified tasks, `recover` rebuilds the same section,
//! and bad checkers in a workload are refused before anything runs.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{infermeter, read_json, read_jsonl};
use serde_json::Value;

/// `infermeter run --workload W --requests N` into `out`: the report and the records.
fn run(workload: &str, requests: &str, out: &Path) -> (Value, Vec<Value>, String) {
    let o = infermeter()
        .args(["run", "--workload", workload, "--requests", requests])
        .args(["--warmup", "0", "--out"])
        .arg(out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        o.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let report = read_json(&out.join("report.json"));
    results::schema::validate_report_json(&report).unwrap();
    (report, read_jsonl(&out.join("requests.jsonl")), stdout)
}

/// The stream `name` (a workload of the quick-verified suite) sends with `requests`
/// and `seed`: each request's checker, by request index.
fn checkers(name: &str, requests: u64, seed: u64) -> BTreeMap<u64, workloads::Request> {
    let suite = workloads::suite::suite("quick-verified").unwrap();
    let mut spec = suite
        .workloads
        .into_iter()
        .find(|w| w.name == name)
        .unwrap();
    spec.load.requests = requests;
    let stream = workloads::generate::generate(&spec, seed);
    stream
        .sessions
        .into_iter()
        .flat_map(|s| s.calls)
        .map(|r| (r.id, r))
        .collect()
}

/// Checks a result's verification section against its records, and every record's
/// grade against a re-grading of its kept reply by the same checker.
fn check_against_records(res: &Value, records: &[Value], sent: &BTreeMap<u64, workloads::Request>) {
    let v = &res["verification"];
    assert!(v.is_object(), "{res}");
    let checked: Vec<&Value> = records.iter().filter(|r| r["check"].is_object()).collect();
    assert_eq!(
        checked.len(),
        records.len(),
        "every request carries a checker"
    );
    let passed = checked
        .iter()
        .filter(|r| r["check"]["passed"] == true)
        .count();
    assert_eq!(v["calls_checked"], checked.len());
    assert_eq!(v["calls_passed"], passed);
    let failed: u64 = v["failures"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(failed as usize, checked.len() - passed);
    for r in &checked {
        let c = &r["check"];
        let req = &sent[&r["request"].as_u64().unwrap()];
        let reply = c["reply"].as_str().expect("the graded reply is kept");
        let again = req.check.as_ref().unwrap().grade(reply);
        assert_eq!(c["passed"], again.passed, "{r}");
        assert_eq!(c["detail"], again.detail.as_str(), "{r}");
        assert_eq!(c["kind"], req.check.as_ref().unwrap().checker.kind());
    }
    // A task is verified when all its calls were made and passed.
    let mut sessions: BTreeMap<u64, (usize, bool)> = BTreeMap::new();
    for r in &checked {
        let s = sessions
            .entry(r["session"].as_u64().unwrap())
            .or_insert((0, true));
        s.0 += 1;
        s.1 &= r["check"]["passed"] == true;
    }
    let planned = |s: u64| sent.values().filter(|r| r.session == s).count();
    let verified = sessions
        .iter()
        .filter(|(s, (n, ok))| *ok && *n == planned(**s))
        .count() as u64;
    assert_eq!(v["tasks_checked"], sessions.len());
    assert_eq!(v["tasks_verified"], verified);
    let rate = verified as f64 / sessions.len() as f64;
    assert!(
        (v["success_rate"].as_f64().unwrap() - rate).abs() < 1e-4,
        "{v}"
    );
    let ci = results::stats::wilson_ci95(verified, sessions.len() as u64).unwrap();
    assert_eq!(v["success_rate_ci95"], serde_json::json!(ci));
    let cost = &res["cost"];
    let total = cost["usd_total"].as_f64().unwrap();
    match verified {
        0 => assert!(cost.get("usd_per_verified_task").is_none(), "{cost}"),
        n => {
            let per = cost["usd_per_verified_task"].as_f64().unwrap();
            assert!((per - total / n as f64).abs() <= 1e-9, "{cost}");
        }
    }
}

#[test]
fn a_local_run_grades_every_reply_and_reports_success_with_its_interval() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("arith");
    let (report, records, stdout) = run("quick/arithmetic-short", "10", &out);
    let res = &report["results"][0];
    let sent = checkers("quick/arithmetic-short", 10, 1);
    check_against_records(res, &records, &sent);
    let groups = res["verification"]["by_group"].as_object().unwrap();
    assert!(groups.keys().all(|g| g.starts_with("op=")), "{groups:?}");
    assert!(stdout.contains("verified "), "{stdout}");
    eprintln!("arithmetic on SmolLM2: {}", res["verification"]);

    // Multi-call tasks: verified only when every step's tool call is right.
    let out = dir.path().join("tools");
    let (report, records, _) = run("quick/agent-loop-tools", "7", &out);
    let res = &report["results"][0];
    check_against_records(res, &records, &checkers("quick/agent-loop-tools", 7, 1));
    assert!(res["verification"]["calls_checked"].as_u64().unwrap() >= 7);
    assert!(records.iter().all(|r| r["check"]["kind"] == "json_schema"));

    // Killed after its last request, before the result was written: rebuilt from the
    // records alone, the section is the same.
    let mut killed = read_json(&out.join("report.json"));
    let before = killed["results"][0]["verification"].clone();
    killed["results"] = serde_json::json!([]);
    killed["run"]["status"] = serde_json::json!("interrupted");
    std::fs::write(out.join("report.json"), killed.to_string()).unwrap();
    infermeter().arg("recover").arg(&out).assert().success();
    let after = read_json(&out.join("report.json"));
    assert_eq!(after["results"][0]["verification"], before);
}

/// `infermeter run --workload FILE` that must be refused: exit 2, one line holding
/// every piece of `want`, no report.
fn refused(dir: &Path, toml: &str, tasks: Option<&str>, want: &[&str]) {
    let wl = dir.join("w.toml");
    std::fs::write(&wl, toml).unwrap();
    if let Some(t) = tasks {
        std::fs::write(dir.join("tasks.jsonl"), t).unwrap();
    }
    let out = dir.join("out");
    let o = infermeter()
        .args(["run", "--quiet", "--workload"])
        .arg(&wl)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    for w in want {
        assert!(stderr.contains(w), "{w}: {stderr}");
    }
    assert!(!out.join("report.json").exists());
}

const HEAD: &str = "format = 1\nname = \"mine\"\nversion = 1\n[load]\narrival = \"closed\"\nconcurrency = 1\nrequests = 2\n[output]\ndist = \"fixed\"\nvalue = 4.0\n";

#[test]
fn bad_checkers_in_a_workload_are_refused_with_what_and_where() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let file = format!("{HEAD}[tasks]\nkind = \"file\"\npath = \"tasks.jsonl\"\n");
    let good = r#"{"prompt": "2 + 2?", "check": {"kind": "number", "answer": 4}}"#;
    let cases: [(&str, &[&str]); 6] = [
        (
            r#"{"prompt": "x", "check": {"kind": "regex", "pattern": "(open"}}"#,
            &["line 2", "regex", "does not compile"],
        ),
        (
            r#"{"prompt": "x", "check": {"kind": "label", "labels": ["yes", "no"], "answer": "maybe"}}"#,
            &["line 2", "not one of the labels"],
        ),
        (
            r#"{"prompt": "x", "check": {"kind": "json_schema", "schema": {"type": "objekt"}}}"#,
            &["line 2", "not a valid JSON Schema"],
        ),
        (
            r#"{"prompt": "x", "check": {"kind": "number", "answer": 1, "tolerance": -0.5}}"#,
            &["line 2", "tolerance"],
        ),
        (
            r#"{"prompt": "x", "check": {"kind": "close_enough", "answer": 1}}"#,
            &["line 2", "close_enough"],
        ),
        (r#"{"prompt": "x"}"#, &["line 2", "check"]),
    ];
    for (line, want) in cases {
        refused(d, &file, Some(&format!("{good}\n{line}\n")), want);
    }
    refused(
        d,
        &format!("{HEAD}[tasks]\nkind = \"needle\"\ndepths = [0.5, 1.5]\n"),
        None,
        &["tasks.depths", "1.5"],
    );
    refused(
        d,
        &format!("{HEAD}[tasks]\nkind = \"file\"\n"),
        None,
        &["tasks.path"],
    );
    refused(
        d,
        &format!("{HEAD}[tasks]\nkind = \"riddles\"\n"),
        None,
        &["riddles"],
    );
    refused(
        d,
        &format!(
            "{HEAD}[session]\ncalls = {{ min = 1, max = 2 }}\nthink_time_ms = {{ dist = \"fixed\", value = 0.0 }}\n[tasks]\nkind = \"file\"\npath = \"tasks.jsonl\"\n"
        ),
        Some(&format!("{good}\n")),
        &["session.calls", "one call"],
    );
    std::fs::remove_file(d.join("tasks.jsonl")).unwrap();
    refused(d, &file, None, &["tasks.jsonl"]);
}
