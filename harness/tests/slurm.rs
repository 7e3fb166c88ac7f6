//! A real Slurm cluster on this machine (Debian's slurm-wlm and munge: slurmctld and
//! slurmd started by `ci/tools/slurm_cluster.sh`, stopped by PID when the test ends):
//! `ci/slurm/run.sh` submits the shard array and the merge that depends on it with
//! `sbatch`, waits with a bound, and the merged report equals the unsharded run of the
//! same seed in everything that is not a clock reading (requests, tokens, the request
//! stream's digest, the count of every latency histogram), and its histograms are
//! exactly the union of the shards'. A failing shard is named with its log, the merge
//! refuses the partial set, and `ALLOW_PARTIAL=1` merges what is there, saying so.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use results::LatencyHistogram;

mod common;
use common::{infermeter, read_json, repo, run_ok};

const TARGET: &str = "local-cpu,model=tiny-dense";
const RUN_ARGS: &str = "--requests 4 --warmup 0 --seed 11";

/// The cluster's daemons, stopped when dropped (the test's panics included).
struct Cluster {
    dir: PathBuf,
    conf: PathBuf,
}

impl Cluster {
    fn start(dir: &Path) -> Cluster {
        // The guard first, so that daemons a failed start left behind are stopped.
        let cluster = Cluster {
            dir: dir.to_path_buf(),
            conf: dir.join("slurm.conf"),
        };
        let o = Command::new(repo().join("ci/tools/slurm_cluster.sh"))
            .arg("start")
            .arg(dir)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "the Slurm daemons did not start: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        cluster
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(repo().join("ci/tools/slurm_cluster.sh"))
            .arg("stop")
            .arg(&self.dir)
            .output();
    }
}

/// `ci/slurm/run.sh` with two shards on this CPU-only node, waiting up to 10 minutes.
fn submit(cluster: &Cluster, results: &Path, bin: &Path) -> Output {
    Command::new(repo().join("ci/slurm/run.sh"))
        .env("SLURM_CONF", &cluster.conf)
        .env("RESULTS", results)
        .env("SBATCH_ARGS", "--array=1-2 --gres=none --time=00:15:00")
        .env("GPU_CHECKS", "0")
        .env("SUITE", "quick")
        .env("TARGET", TARGET)
        .env("RUN_ARGS", RUN_ARGS)
        .env("INFERMETER", bin)
        .env("WAIT_S", "600")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The run directory run.sh named (`RESULTS/slurm-<array job>`).
fn run_dir(o: &Output, results: &Path) -> PathBuf {
    let out = String::from_utf8_lossy(&o.stdout);
    let id = out
        .split_whitespace()
        .skip_while(|w| *w != "shards")
        .nth(1)
        .unwrap_or_else(|| panic!("no job id in: {out}"));
    results.join(format!("slurm-{id}"))
}

fn histogram(summary: &serde_json::Value, field: &str) -> LatencyHistogram {
    LatencyHistogram::decode(summary["hdr"].as_str().unwrap(), field).unwrap()
}

#[test]
fn slurm_runs_the_shards_and_the_merge_equals_the_unsharded_run() {
    let tmp = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(&tmp.path().join("slurm"));
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_infermeter"));

    // The same run, unsharded, outside Slurm.
    let whole_dir = tmp.path().join("whole");
    let mut whole = infermeter();
    whole
        .args(["run", "--suite", "quick", "--target", TARGET, "--quiet"])
        .args(RUN_ARGS.split_whitespace())
        .arg("--out")
        .arg(&whole_dir);
    run_ok(&mut whole);
    let whole = read_json(&whole_dir.join("report.json"));

    let results = tmp.path().join("results");
    let o = submit(&cluster, &results, &bin);
    assert!(o.status.success(), "{}", text(&o));
    let said = text(&o);
    assert!(
        said.contains("shard 1/2: COMPLETED") && said.contains("shard 2/2: COMPLETED"),
        "{said}"
    );
    let run = run_dir(&o, &results);
    let merged = read_json(&run.join("merged/report.json"));
    let shards: Vec<_> = (1..=2)
        .map(|i| read_json(&run.join(format!("shard-{i}/report.json"))))
        .collect();
    assert_eq!(merged["run"]["status"], "complete");
    let w = whole["results"].as_array().unwrap();
    let m = merged["results"].as_array().unwrap();
    assert_eq!(m.len(), w.len());
    for (i, (a, b)) in w.iter().zip(m).enumerate() {
        let name = a["workload"]["name"].as_str().unwrap();
        assert_eq!(b["workload"]["name"], name);
        assert!(b["workload"]["shard"].is_null(), "{name}");
        assert_eq!(
            b["workload"]["stream_sha256"], a["workload"]["stream_sha256"],
            "{name}"
        );
        assert_eq!(b["requests"]["sent"], a["requests"]["sent"], "{name}");
        assert_eq!(b["requests"]["ok"], a["requests"]["ok"], "{name}");
        assert_eq!(b["requests"]["failed"], a["requests"]["failed"], "{name}");
        assert_eq!(b["tokens"]["input"], a["tokens"]["input"], "{name}");
        assert_eq!(b["tokens"]["output"], a["tokens"]["output"], "{name}");
        for field in ["ttft_ms", "tpot_ms", "itl_ms", "e2e_ms", "queue_ms"] {
            assert_eq!(
                b["latency"][field]["count"], a["latency"][field]["count"],
                "{name} {field}"
            );
            // Exactly the union of the shards' histograms.
            let mut union = LatencyHistogram::new();
            for s in &shards {
                union.merge(&histogram(&s["results"][i]["latency"][field], field));
            }
            let got = histogram(&b["latency"][field], field);
            assert_eq!(got.len(), union.len(), "{name} {field}");
            for q in [0.0, 0.5, 0.9, 0.99, 1.0] {
                assert_eq!(
                    got.quantile_ms(q),
                    union.quantile_ms(q),
                    "{name} {field} q{q}"
                );
            }
        }
    }

    // Shard 2 fails: named with its log, and the merge refuses the partial set.
    let failing = tmp.path().join("failing-infermeter");
    std::fs::write(
        &failing,
        format!(
            "#!/bin/sh\nif [ \"$SLURM_ARRAY_TASK_ID\" = 2 ]; then echo 'injected failure' >&2; exit 3; fi\nexec '{}' \"$@\"\n",
            bin.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &failing,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let o = submit(&cluster, &results, &failing);
    let said = text(&o);
    assert_eq!(o.status.code(), Some(1), "{said}");
    assert!(said.contains("shard 1/2: COMPLETED"), "{said}");
    assert!(said.contains("failed: FAILED, exit 3:0"), "{said}");
    assert!(said.contains("merge (job"), "{said}");
    let run = run_dir(&o, &results);
    assert!(!run.join("merged/report.json").exists());
    let merge_log = std::fs::read_dir(&results)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().to_string();
            n.starts_with("infermeter-") && n.matches('-').count() == 1
        })
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect::<String>();
    assert!(merge_log.contains("shard 2/2 has no report"), "{merge_log}");
    assert!(merge_log.contains("not merged"), "{merge_log}");

    // Asked for, the partial set is merged and says what it lacks.
    let o = Command::new(repo().join("ci/tools/merge_shards.sh"))
        .arg(&run)
        .env("INFERMETER", &bin)
        .env("SHARDS", "2")
        .env("ALLOW_PARTIAL", "1")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let partial = read_json(&run.join("merged/report.json"));
    assert_eq!(partial["run"]["status"], "interrupted");
    let notes = partial["results"][0]["notes"].to_string();
    assert!(
        notes.contains("partial merge: shards 1/2 of 2; 2/2 missing"),
        "{notes}"
    );
    drop(cluster);
}
