//! Economics and publishing end to end, on the embedded engine with seeded synthetic
//! weights: costs from the shipped catalog, `prices apply`, `sweep` with an SLO,
//! `compare` (itself: exit 0; a deliberately slowed run: exit 1 naming the metric),
//! `merge`, the LiteLLM export checked by the real `litellm` package, and the HTML
//! report rendered in headless Chromium.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command as Process;

use predicates::prelude::*;

mod common;
use common::{chromium_cmd, gguf, infermeter, read_json};

/// A decode-bound run (12 requests of 48 input and 96 output tokens, 8 in flight) on
/// SmolLM2 with `max_batch` sequences per step: batching is what makes it fast.
fn decode_run(dir: &Path, name: &str, max_batch: u32) -> PathBuf {
    let out = dir.join(name);
    infermeter()
        .args(["run", "--quiet", "--workload"])
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/decode-heavy.toml"
        ))
        .args([
            "--target",
            &format!("local-cpu,model={},max_batch={max_batch}", gguf().display()),
        ])
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    out.join("report.json")
}

#[test]
fn compare_passes_a_run_against_itself_and_fails_a_slowed_one_and_merge_is_exact() {
    let tmp = tempfile::tempdir().unwrap();
    let a = decode_run(tmp.path(), "a", 8);
    let slow = decode_run(tmp.path(), "slow", 1);

    infermeter()
        .arg("compare")
        .arg(&a)
        .arg(&a)
        .assert()
        .success()
        .stdout(predicate::str::contains("output_tokens_per_s"))
        .stdout(predicate::str::contains("REGRESSED").not());
    // One sequence per step instead of eight: the eight sessions queue behind one
    // another, so TTFT p99 rises several-fold, and throughput drops (on 2 shared
    // cores by 20-30%, sometimes less than the 10% threshold when other tests load the
    // machine); the gate names what regressed.
    let assert = infermeter()
        .arg("compare")
        .arg(&a)
        .arg(&slow)
        .assert()
        .code(1);
    let stderr = String::from_utf8(assert.get_output().stderr.clone()).unwrap();
    let line = stderr.lines().find(|l| l.starts_with("Error:")).unwrap();
    assert!(
        line.contains("regression:") && line.contains("ttft_p99_ms"),
        "{stderr}"
    );
    let stdout = String::from_utf8(assert.get_output().stdout.clone()).unwrap();
    assert!(
        stdout.contains("max_batch 8 -> 1"),
        "settings change noted:\n{stdout}"
    );
    // Comparing against the same run with a metric that did not change passes.
    infermeter()
        .arg("compare")
        .arg(&a)
        .arg(&a)
        .args(["--metrics", "output_tokens_per_s", "--threshold", "1"])
        .assert()
        .success();
    infermeter()
        .arg("compare")
        .arg(&a)
        .arg(&slow)
        .args(["--metrics", "no_such_metric"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("unknown metric `no_such_metric`"));

    // Merging a run with itself: counts double, every percentile stays.
    let merged = tmp.path().join("merged.json");
    infermeter()
        .arg("merge")
        .arg(&a)
        .arg(&a)
        .arg("--out")
        .arg(&merged)
        .assert()
        .success();
    let (one, two) = (read_json(&a), read_json(&merged));
    let (r1, r2) = (&one["results"][0], &two["results"][0]);
    assert_eq!(
        r2["requests"]["ok"].as_u64().unwrap(),
        2 * r1["requests"]["ok"].as_u64().unwrap()
    );
    for m in ["ttft_ms", "itl_ms", "tpot_ms", "e2e_ms"] {
        for p in ["p50", "p90", "p99", "max"] {
            assert_eq!(r2["latency"][m][p], r1["latency"][m][p], "{m} {p}");
        }
        assert_eq!(
            r2["latency"][m]["count"].as_u64().unwrap(),
            2 * r1["latency"][m]["count"].as_u64().unwrap()
        );
    }
    infermeter().arg("validate").arg(&merged).assert().success();
    // Different configurations are refused, naming the difference.
    infermeter()
        .arg("merge")
        .arg(&a)
        .arg(&slow)
        .arg("--out")
        .arg(tmp.path().join("bad.json"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "target settings differ: kv_tokens, max_batch",
        ));
    assert!(!tmp.path().join("bad.json").exists());
}

fn litellm_python() -> PathBuf {
    let p = std::env::var_os("INFERMETER_LITELLM_PYTHON").map(PathBuf::from);
    let p = p.unwrap_or_else(|| {
        let cache = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache"));
        cache.join("infermeter/venv-litellm/bin/python")
    });
    assert!(
        p.exists(),
        "{} not found: run ci/setup.sh --reference (it installs litellm)",
        p.display()
    );
    p
}

/// Pixels of `png` in the palette's first two colours (the charts' series).
fn chart_pixels(png_path: &Path) -> usize {
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(png_path).unwrap(),
    ));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    buf[..info.buffer_size()]
        .chunks(channels)
        .filter(|p| {
            let (r, g, b) = (p[0] as i32, p[1] as i32, p[2] as i32);
            let near =
                |c: (i32, i32, i32)| (r - c.0).abs() + (g - c.1).abs() + (b - c.2).abs() < 30;
            near((0x1f, 0x77, 0xb4)) || near((0xd6, 0x27, 0x28)) || near((0x2c, 0xa0, 0x2c))
        })
        .count()
}

#[test]
fn sweep_prices_exports_and_the_html_report() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("sweep");
    let assert = infermeter()
        .args([
            "sweep",
            "--workload",
            "chat-short",
            "--target",
            "local-cpu,model=tiny-dense",
            "--requests",
            "6",
            "--warmup",
            "1",
            "--concurrencies",
            "1,4",
            "--slo",
            "ttft_p99_ms=20000,tpot_p99_ms=500",
            "--quiet",
        ])
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    let stdout = String::from_utf8(assert.get_output().stdout.clone()).unwrap();
    assert!(
        stdout.contains("best point meeting the SLO: closed c="),
        "{stdout}"
    );
    let report = out.join("report.json");
    let r = read_json(&report);
    let results = r["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    for (e, c) in results.iter().zip([1, 4]) {
        assert_eq!(e["load"]["concurrency"], c);
        assert_eq!(e["slo"]["pass"], true, "{}", e["slo"]);
        let met = e["slo"]["requests_meeting"].as_u64().unwrap();
        assert_eq!(met, e["requests"]["ok"].as_u64().unwrap());
        let goodput = e["slo"]["goodput_rps"].as_f64().unwrap();
        let want = met as f64 / e["load"]["measured_s"].as_f64().unwrap();
        assert!((goodput - want).abs() / want < 1e-3, "{goodput} vs {want}");
        assert_eq!(e["cost"]["source"], "hardware-hour");
    }

    // Priced again for spot: same measurements, the catalog's spot/on-demand ratio.
    let spot = tmp.path().join("spot.json");
    infermeter()
        .args(["prices", "apply"])
        .arg(&report)
        .args(["--tier", "spot", "--out"])
        .arg(&spot)
        .assert()
        .success();
    let s = read_json(&spot);
    let on_demand = results[0]["cost"]["usd_total"].as_f64().unwrap();
    let spot_total = s["results"][0]["cost"]["usd_total"].as_f64().unwrap();
    let ratio = s["results"][0]["cost"]["hardware"]["usd_per_unit_hour"]
        .as_f64()
        .unwrap()
        / results[0]["cost"]["hardware"]["usd_per_unit_hour"]
            .as_f64()
            .unwrap();
    assert!(
        (spot_total / on_demand - ratio).abs() < 1e-4,
        "{spot_total} / {on_demand}"
    );
    assert_eq!(s["results"][0]["latency"], results[0]["latency"]);
    infermeter()
        .args(["prices", "apply"])
        .arg(&report)
        .args(["--tier", "reserved-3y"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "no reserved-3y price for part `cpu-x86_64` in region `us`",
        ));
    infermeter()
        .args(["prices", "apply"])
        .arg(&report)
        .args(["--region", "mars"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("region `mars` is not in catalog"));

    // Router tables: LiteLLM's own cost computation reproduces the measured dollars.
    let litellm = tmp.path().join("litellm.json");
    infermeter()
        .args(["prices", "export"])
        .arg(&report)
        .args(["--format", "litellm", "--out"])
        .arg(&litellm)
        .assert()
        .success();
    let l = read_json(&litellm);
    let entry = &l["infermeter/local-cpu/tiny-dense-q4_1/chat-short"];
    assert_eq!(entry["metadata"]["slo"]["pass"], true, "{l}");
    let check = Process::new(litellm_python())
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../ci/tools/litellm_check.py"
        ))
        .arg(&litellm)
        .arg(&report)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success(),
        "{said}\n{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(
        said.lines()
            .any(|l| l.starts_with("ok: infermeter/local-cpu/tiny-dense-q4_1/chat-short")),
        "{said}"
    );
    let routing = tmp.path().join("routing.json");
    infermeter()
        .args(["prices", "export"])
        .arg(&report)
        .args(["--format", "routing", "--out"])
        .arg(&routing)
        .assert()
        .success();
    let t = read_json(&routing);
    assert_eq!(t["schema"], "infermeter.routing");
    assert_eq!(t["routes"][0]["slo_met"], true);
    assert!(t["routes"][0]["usd_per_m_output"].as_f64().unwrap() > 0.0);
    infermeter()
        .args(["prices", "export"])
        .arg(&report)
        .args(["--format", "xlsx", "--out"])
        .arg(tmp.path().join("x"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "[possible values: litellm, routing]",
        ));

    // The HTML report: self-contained, loads without script errors, and its charts draw.
    let html = tmp.path().join("report.html");
    infermeter()
        .arg("report")
        .arg(&report)
        .args(["--format", "html", "--out"])
        .arg(&html)
        .assert()
        .success();
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "no network at view time"
    );
    let profile = tmp.path().join("chromium-profile");
    let dom = chromium_cmd(&profile)
        .arg("--dump-dom")
        .arg(format!("file://{}", html.display()))
        .output()
        .unwrap();
    let dom_text = String::from_utf8_lossy(&dom.stdout);
    assert!(
        dom.status.success(),
        "{}",
        String::from_utf8_lossy(&dom.stderr)
    );
    let attr = |name: &str| -> u64 {
        let key = format!("data-{name}=\"");
        let at = dom_text
            .find(&key)
            .unwrap_or_else(|| panic!("no {key} in the DOM"))
            + key.len();
        dom_text[at..].split('"').next().unwrap().parse().unwrap()
    };
    assert_eq!(attr("errors"), 0, "script errors in the page");
    // TTFT, ITL, TPOT and E2E CDFs, throughput vs interactivity, cost bars.
    assert!(attr("charts") >= 6, "charts drawn: {}", attr("charts"));
    let shot = tmp.path().join("report.png");
    let run = chromium_cmd(&profile)
        .arg("--window-size=1400,2800")
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", html.display()))
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let pixels = chart_pixels(&shot);
    assert!(
        pixels > 2000,
        "only {pixels} chart-coloured pixels in the screenshot"
    );
}

#[test]
fn catalogs_validate_and_bad_ones_exit_2() {
    let shipped = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../results/catalog/default.toml"
    );
    infermeter()
        .arg("validate")
        .arg(shipped)
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "valid price catalog infermeter-default",
        ));
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("catalog.toml");
    let text = std::fs::read_to_string(shipped).unwrap().replacen(
        "as_of = \"2026-03\"",
        "as_of = \"\"",
        1,
    );
    std::fs::write(&bad, text).unwrap();
    infermeter()
        .arg("validate")
        .arg(&bad)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "hardware_price (h100, on-demand, any region) needs a non-empty `source` and `as_of`",
        ));
    infermeter()
        .args(["run", "--workload", "chat-short", "--catalog"])
        .arg(&bad)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("needs a non-empty `source`"));
}
