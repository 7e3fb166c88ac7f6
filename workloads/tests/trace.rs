//! Trace readers, prefix rebuilding, windows and scaling, on the shipped fixtures and
//! on small hand-written traces.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use infermeter_workloads::generate::generate;
use infermeter_workloads::spec::WorkloadSpec;
use infermeter_workloads::trace::facts;
use infermeter_workloads::{Request, WorkloadError, suite};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("traces")
}

fn fixture(name: &str) -> WorkloadSpec {
    suite::workload(fixtures().join(name).to_str().unwrap()).unwrap()
}

fn spec_for(format: &str, body: &str, extra: &str) -> Result<WorkloadSpec, WorkloadError> {
    spec_in(&tempfile::tempdir().unwrap(), format, body, extra)
}

fn spec_in(
    dir: &tempfile::TempDir,
    format: &str,
    body: &str,
    extra: &str,
) -> Result<WorkloadSpec, WorkloadError> {
    std::fs::write(dir.path().join("t"), body).unwrap();
    let toml = format!(
        "format = 1\nname = \"t\"\nversion = 1\n[load]\narrival = \"trace\"\n{extra}\n[trace]\nformat = \"{format}\"\npath = \"t\"\n"
    );
    let path = dir.path().join("w.toml");
    std::fs::write(&path, toml).unwrap();
    suite::workload(path.to_str().unwrap())
}

#[test]
fn mooncake_prompts_share_exactly_the_blocks_their_ids_share() {
    let spec = fixture("replay-mooncake.toml");
    let stream = generate(&spec, 1);
    let trace = spec.trace.as_ref().unwrap().loaded.as_ref().unwrap();
    assert_eq!(stream.request_count(), 48);
    let reqs: Vec<&Request> = stream.sessions.iter().map(|s| &s.calls[0]).collect();
    for (r, t) in reqs.iter().zip(&trace.requests) {
        assert_eq!(r.input_tokens(), t.input_tokens);
        assert_eq!(r.max_output_tokens, t.output_tokens);
        // The text is the ids, exactly, under the embedded tokenizer.
        assert_eq!(
            infermeter_workloads::text::count_tokens(&r.messages[0].text),
            t.input_tokens as usize
        );
    }
    let mut shared_pairs = 0;
    for i in 0..trace.requests.len() {
        for j in 0..i {
            let (a, b) = (&trace.requests[i], &trace.requests[j]);
            let common = a
                .blocks
                .iter()
                .zip(&b.blocks)
                .take_while(|(x, y)| x.key == y.key && x.tokens == y.tokens)
                .map(|(x, _)| x.tokens as usize)
                .sum::<usize>();
            let (pa, pb) = (reqs[i].prompt_token_ids(), reqs[j].prompt_token_ids());
            assert_eq!(pa[..common], pb[..common], "requests {j} and {i}");
            if pa.len().min(pb.len()) >= common + 8 {
                assert_ne!(
                    pa[common..common + 8],
                    pb[common..common + 8],
                    "they part where their ids do"
                );
            }
            shared_pairs += usize::from(common > 0);
        }
    }
    assert!(
        shared_pairs > 10,
        "the fixture reuses prefixes ({shared_pairs} pairs)"
    );
    let (chosen, offsets) = spec.trace.as_ref().unwrap().select(0, None);
    let f = facts(&chosen, &offsets);
    assert_eq!(f.input_tokens, 45_646);
    assert_eq!(
        f.reusable_input_tokens, 23_552,
        "the same count as the generator's"
    );
}

#[test]
fn the_schedule_is_the_traces_times_scaled_windowed_and_capped() {
    let spec = fixture("replay-mooncake.toml");
    let s = generate(&spec, 1);
    let trace = spec.trace.as_ref().unwrap().loaded.clone().unwrap();
    let times: Vec<f64> = trace.requests.iter().map(|r| r.at_s).collect();
    assert_eq!(s.schedule.as_deref().unwrap(), &times[..]);
    assert_eq!(s.arrival.pattern(), results::ArrivalPattern::Trace);

    let mut fast = spec.clone();
    fast.trace.as_mut().unwrap().time_scale = 0.5;
    fast.trace.as_mut().unwrap().start_s = Some(5.0);
    fast.trace.as_mut().unwrap().end_s = Some(20.0);
    fast.load.requests = 10;
    let f = generate(&fast, 1);
    let window: Vec<f64> = times
        .iter()
        .copied()
        .filter(|t| (5.0..20.0).contains(t))
        .take(10)
        .collect();
    let expect: Vec<f64> = window.iter().map(|t| (t - window[0]) * 0.5).collect();
    assert_eq!(f.schedule.as_deref().unwrap(), &expect[..]);
    assert_eq!(f.request_count(), 10);

    let mut rated = spec.clone();
    rated.load.rate_rps = Some(10.0);
    let r = generate(&rated, 1);
    let sched = r.schedule.unwrap();
    let rate = (sched.len() - 1) as f64 / sched.last().unwrap();
    assert!((rate - 10.0).abs() < 1e-9, "mean rate {rate}");
    // Scaling keeps the trace's shape: the gaps keep their ratios.
    assert!((sched[5] / sched[10] - times[5] / times[10]).abs() < 1e-12);
}

#[test]
fn warm_up_never_sends_the_measured_prefixes() {
    let mut spec = fixture("replay-mooncake.toml");
    spec.load.warmup_requests = 3;
    let s = generate(&spec, 1);
    assert_eq!(s.warmup.len(), 3);
    for (w, m) in s.warmup.iter().zip(&s.sessions) {
        assert_eq!(w.input_tokens(), m.calls[0].input_tokens());
        assert_ne!(
            w.prompt_token_ids()[..16],
            m.calls[0].prompt_token_ids()[..16]
        );
    }
    assert_eq!(s.digest(), generate(&spec, 1).digest());
    assert_ne!(
        s.digest(),
        generate(&spec, 2).digest(),
        "the seed picks the text"
    );
}

#[test]
fn burstgpt_skips_failed_rows_and_keeps_lengths() {
    let spec = fixture("replay-burstgpt.toml");
    let trace = spec.trace.as_ref().unwrap().loaded.clone().unwrap();
    assert_eq!(trace.requests.len(), 38);
    assert_eq!(trace.skipped[0].1, 2);
    let first = &trace.requests[0];
    assert_eq!(
        (first.at_s, first.input_tokens, first.output_tokens),
        (0.0, 565, 16)
    );
    let s = generate(&spec, 1);
    assert_eq!(s.sessions[1].calls[0].input_tokens(), 161);
}

#[test]
fn azure_timestamps_are_read_to_the_microsecond() {
    let spec = fixture("replay-azure.toml");
    let trace = spec.trace.as_ref().unwrap().loaded.clone().unwrap();
    assert_eq!(trace.requests.len(), 40);
    // 18:15:46.7303920 -> 18:15:46.9430210.
    assert!((trace.requests[1].at_s - 0.212_629).abs() < 1e-9);
    assert_eq!(
        (
            trace.requests[1].input_tokens,
            trace.requests[1].output_tokens
        ),
        (44, 27)
    );
}

#[test]
fn a_recorded_run_replays_its_sessions_prefix_and_times() {
    // Two sessions of two calls under one 20-token prefix: call 1 holds call 0's prompt
    // and answer, then its own 5 new tokens.
    let rows = [
        (0.0, 0u64, 0u32, 30u32, 4u32),
        (0.5, 1, 0, 28, 6),
        (1.25, 0, 1, 39, 4),
        (2.0, 1, 1, 41, 3),
    ];
    let body: String = rows
        .iter()
        .map(|(t, s, c, i, o)| {
            format!(
                "{{\"scheduled_s\":{t},\"session\":{s},\"call\":{c},\"tokenizer_input_tokens\":{i},\"max_output_tokens\":{o},\"prefix\":{{\"id\":\"ab12\",\"tokens\":20}}}}\n"
            )
        })
        .collect();
    let spec = spec_for("requests-jsonl", &body, "").unwrap();
    let s = generate(&spec, 3);
    assert_eq!(s.schedule.as_deref().unwrap(), &[0.0, 0.5, 1.25, 2.0]);
    let p: Vec<Vec<u32>> = s
        .sessions
        .iter()
        .map(|x| x.calls[0].prompt_token_ids())
        .collect();
    assert_eq!(p.iter().map(Vec::len).collect::<Vec<_>>(), [30, 28, 39, 41]);
    assert_eq!(
        p[0][..20],
        p[1][..20],
        "the prefix is shared across sessions"
    );
    assert_ne!(p[0][20..28], p[1][20..28]);
    assert_eq!(p[2][..30], p[0][..], "call 1 starts with call 0's prompt");
    assert_eq!(p[3][..28], p[1][..]);
    assert_ne!(p[2][30..34], p[3][28..32], "the answers differ per session");
}

#[test]
fn bad_traces_are_refused_naming_the_line_and_field() {
    let cases = [
        (
            "mooncake",
            "{\"timestamp\": 0, \"input_length\": 0, \"output_length\": 3}\n",
            "line 1: `input_length`",
        ),
        (
            "mooncake",
            "{\"timestamp\": 0}\n",
            "line 1: missing field `input_length`",
        ),
        (
            "mooncake",
            "{\"timestamp\": -5, \"input_length\": 3, \"output_length\": 3}\n",
            "`timestamp` must be a time >= 0",
        ),
        (
            "burstgpt",
            "Timestamp,Request tokens\n1,2\n",
            "no `Response tokens` column",
        ),
        (
            "burstgpt",
            "Timestamp,Request tokens,Response tokens\n1,x,2\n",
            "line 2: `Request tokens` is not a number",
        ),
        (
            "azure",
            "TIMESTAMP,ContextTokens,GeneratedTokens\nyesterday,3,4\n",
            "line 2: `TIMESTAMP` `yesterday`",
        ),
        ("requests-jsonl", "not json\n", "line 1"),
        ("mooncake", "", "holds no request to replay"),
    ];
    for (format, body, want) in cases {
        let e = spec_for(format, body, "").unwrap_err().to_string();
        assert!(e.contains(want), "{format} {body:?}: {e}");
        assert!(!e.contains('\n'), "one line: {e}");
    }
    let e = spec_for("mooncake", "", "requests = 3\n[session]\ncalls = { min = 2, max = 2 }\nthink_time_ms = { dist = \"fixed\", value = 0 }").unwrap_err();
    assert!(
        e.to_string()
            .contains("field `session`: a trace replay takes"),
        "{e}"
    );
    let ok = "{\"timestamp\": 0, \"input_length\": 3, \"output_length\": 3}\n";
    let e = spec_for("mooncake", ok, "duration_s = 0").unwrap_err();
    assert!(e.to_string().contains("load.duration_s"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("t"), ok).unwrap();
    std::fs::write(
        dir.path().join("w.toml"),
        "format = 1\nname = \"t\"\nversion = 1\n[load]\narrival = \"trace\"\n[trace]\nformat = \"mooncake\"\npath = \"t\"\nstart_s = 100.0\n",
    )
    .unwrap();
    let e = suite::workload(dir.path().join("w.toml").to_str().unwrap()).unwrap_err();
    assert!(
        e.to_string()
            .contains("the window [100, inf) s holds no request"),
        "{e}"
    );
    let twice = "{\"scheduled_s\":0,\"session\":0,\"call\":0,\"tokenizer_input_tokens\":5,\"max_output_tokens\":2}\n";
    let e = spec_for("requests-jsonl", &twice.repeat(2), "").unwrap_err();
    assert!(
        e.to_string()
            .contains("line 2: session 0 call 0 is also on line 1"),
        "{e}"
    );
    let e = spec_for("mooncake", ok, "[output]\ndist = \"fixed\"\nvalue = 4").unwrap_err();
    assert!(e.to_string().contains("field `output`"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let mut pinned = spec_in(&dir, "mooncake", ok, "").unwrap();
    let t = pinned.trace.as_mut().unwrap();
    t.sha256 = Some("00".repeat(32));
    t.loaded = None;
    let e = pinned
        .load_trace(Path::new("/"), "w")
        .unwrap_err()
        .to_string();
    assert!(e.contains("the spec pins 0000"), "{e}");
}

#[test]
fn specs_without_a_trace_keep_their_canonical_json() {
    // Optional input/output serialize as before: an embedded spec's hash is unchanged.
    let spec = suite::workload("chat-short").unwrap();
    let json = spec.canonical_json();
    assert!(json.contains("\"input\":{\"dist\""), "{json}");
    assert!(!json.contains("trace"), "{json}");
}
