//! The search against simulated targets whose limit is known.

use super::*;

fn template() -> ResultEntry {
    let (published, _) = results::schema::read_report_str(include_str!(
        "../../../results/published/cpu-amd-epyc-2core/quick-smollm2-q4_1/report.json"
    ))
    .expect("the published report reads");
    let mut e = published.results[0].clone();
    e.requests.failed = 0;
    e.client = None;
    e.saturation = None;
    e
}

/// A point at `level` judged by `pass`.
fn point(s: &Search, level: Level, pass: bool) -> ResultEntry {
    let mut e = template();
    match level {
        Level::Rate(r) => {
            e.load.rate_rps = Some(r);
            e.load.concurrency = None;
        }
        Level::Concurrency(c) => {
            e.load.concurrency = Some(c);
            e.load.rate_rps = None;
        }
    }
    let _ = s;
    e.slo = Some(results::SloVerdict {
        objectives: [("ttft_p99_ms".to_string(), 500.0)].into(),
        pass,
        missed: if pass {
            vec![]
        } else {
            vec!["ttft_p99_ms 900 > 500".into()]
        },
        requests_meeting: 0,
        goodput_rps: 0.0,
        goodput_ratio: None,
    });
    e
}

/// Runs the search against a target that meets the SLO up to `limit`.
fn run(s: &Search, limit: f64, mut tweak: impl FnMut(usize, &mut ResultEntry)) -> Vec<ResultEntry> {
    let mut done = Vec::new();
    while let Some(level) = s.next(&done) {
        let x = match level {
            Level::Rate(r) => r,
            Level::Concurrency(c) => f64::from(c),
        };
        let mut e = point(s, level, x <= limit);
        tweak(done.len(), &mut e);
        done.push(e);
        assert!(done.len() < 100, "the search ends");
    }
    done
}

fn levels(done: &[ResultEntry]) -> Vec<f64> {
    done.iter()
        .map(|e| {
            e.load
                .rate_rps
                .or(e.load.concurrency.map(f64::from))
                .unwrap()
        })
        .collect()
}

#[test]
fn a_rate_search_brackets_the_limit_within_the_tolerance() {
    let s = Search::parse("rate:0.5..64", 0.1, 1).unwrap();
    let done = run(&s, 7.3, |_, _| {});
    let l = levels(&done);
    assert_eq!(l[..5], [0.5, 1.0, 2.0, 4.0, 8.0], "doubling first");
    let (levels, _) = s.levels(&done);
    let (pass, fail) = bracket(&levels);
    let (pass, fail) = (pass.unwrap(), fail.unwrap());
    assert!(
        pass <= 7.3 && fail > 7.3 && (fail - pass) / pass <= 0.1,
        "{pass} {fail}"
    );
    let c = s.conclusion(&done);
    assert!(
        c.starts_with(&format!("highest load meeting the SLO: {pass} sessions/s")),
        "{c}"
    );
}

#[test]
fn a_concurrency_search_ends_on_neighbouring_sessions() {
    let s = Search::parse("concurrency:1..64", 0.01, 1).unwrap();
    let done = run(&s, 11.0, |_, _| {});
    let (levels, _) = s.levels(&done);
    assert_eq!(bracket(&levels), (Some(11.0), Some(12.0)));
    assert!(done.iter().all(|e| e.load.concurrency.is_some()));
}

#[test]
fn ends_of_the_range_and_failed_requests() {
    let s = Search::parse("rate:1..8", 0.1, 1).unwrap();
    let all = run(&s, 100.0, |_, _| {});
    assert_eq!(levels(&all), [1.0, 2.0, 4.0, 8.0]);
    assert!(s.conclusion(&all).contains("above the searched range"));
    let none = run(&s, 0.1, |_, _| {});
    assert_eq!(none.len(), 1);
    assert!(
        s.conclusion(&none)
            .starts_with("no level meets the SLO: the lowest, 1 sessions/s")
    );
    // Errors fail a level even where the SLO passed.
    let errs = run(&s, 100.0, |i, e| {
        if i == 2 {
            e.requests.failed = e.requests.sent;
        }
    });
    assert_eq!(
        levels(&errs)[..4],
        [1.0, 2.0, 4.0, 3.0],
        "4/s failed: bisect below it"
    );
}

#[test]
fn a_client_bound_point_is_never_the_limit() {
    let s = Search::parse("rate:1..64", 0.1, 1).unwrap();
    let done = run(&s, 100.0, |i, e| {
        if i == 3 {
            let mut c = template_client();
            c.client_bound = true;
            c.reasons = vec!["event-loop lag p99 3 ms".into()];
            e.client = Some(c);
        }
    });
    assert_eq!(done.len(), 4, "stops at the client-bound point");
    let c = s.conclusion(&done);
    assert!(
        c.contains("search stopped at 8 sessions/s: client-bound"),
        "{c}"
    );
    assert!(c.contains("at least that"), "{c}");
}

#[test]
fn over_saturation_fails_a_level_and_repeats_must_all_pass() {
    let s = Search::parse("rate:1..64", 0.25, 2).unwrap();
    let done = run(&s, 100.0, |i, e| {
        // The second repeat of the third level (4/s) is over-saturated.
        if i == 5 {
            e.saturation = Some(results::saturation::SaturationCheck {
                ttft_first_third_ms: 100.0,
                ttft_last_third_ms: 900.0,
                in_flight_first_third: 1.0,
                in_flight_last_third: 9.0,
                oversaturated: true,
            });
        }
    });
    let l = levels(&done);
    assert_eq!(l[..6], [1.0, 1.0, 2.0, 2.0, 4.0, 4.0], "each level twice");
    assert_eq!(l[6], 3.0, "4/s failed on one repeat: bisect below it");
    let c = s.conclusion(&done);
    assert!(c.contains("failed: over-saturated"), "{c}");
}

#[test]
fn tiny_rates_never_repeat_a_bracketing_level() {
    let s = Search::parse("rate:0.0001..1", 0.001, 1).unwrap();
    let done = run(&s, 0.00237, |_, _| {});
    let l = levels(&done);
    assert!(done.len() < 40, "{l:?}");
    let mut seen = l.clone();
    seen.sort_by(f64::total_cmp);
    seen.dedup();
    assert_eq!(seen.len(), l.len(), "no level twice: {l:?}");
}

#[test]
fn bad_searches_are_refused() {
    for bad in [
        "rate",
        "rate:2..1",
        "speed:1..2",
        "concurrency:1.5..4",
        "rate:0..4",
        "rate:1..x",
    ] {
        assert!(Search::parse(bad, 0.1, 1).is_err(), "{bad}");
    }
    assert!(Search::parse("rate:1..4", 0.0, 1).is_err());
    assert!(Search::parse("rate:1..4", 0.1, 0).is_err());
}

fn template_client() -> results::ClientStats {
    results::ClientStats {
        cpu_s: None,
        cpu_includes_engine: false,
        cpu_us_per_request: None,
        cpu_us_per_output_token: None,
        peak_rss_bytes: None,
        loop_lag_ms: template().latency.ttft_ms,
        client_bound: false,
        reasons: vec![],
        event_loop_threads: None,
    }
}
