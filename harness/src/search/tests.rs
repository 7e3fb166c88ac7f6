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
    // The measured TTFT p99 agrees with the verdict: 400 ms passes the 500 ms bound,
    // 900 ms misses it by 400 ms.
    e.latency.ttft_ms.p99 = Some(if pass { 400.0 } else { 900.0 });
    e.latency.e2e_ms.p50 = Some(1000.0);
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
    // The report's outcome says the same, typed.
    let o = s.outcome("t", &done);
    assert_eq!(o.end, results::SearchEnd::Bracketed);
    assert_eq!(
        (o.highest_passing, o.lowest_failing),
        (Some(pass), Some(fail))
    );
    assert_eq!(o.unit, "sessions_per_s");
    assert_eq!(o.levels.len(), done.len());
    assert_eq!(o.levels[0].verdict, results::LevelVerdict::Pass);
    assert!(
        o.levels.iter().any(|l| l.value == fail
            && l.verdict == results::LevelVerdict::Fail
            && l.why.is_some())
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
    assert_eq!(s.outcome("t", &all).end, results::SearchEnd::AboveRange);
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
    let o = s.outcome("t", &done);
    assert_eq!(o.end, results::SearchEnd::ClientBound);
    assert_eq!(
        o.highest_passing,
        Some(4.0),
        "a lower bound, not a claimed limit"
    );
    assert_eq!(o.levels[3].verdict, results::LevelVerdict::Inconclusive);
}

/// A client flagged client-bound whose event loop ran at most `lag_max_ms` late.
fn late_client(lag_max_ms: f64) -> results::ClientStats {
    let mut c = template_client();
    c.client_bound = true;
    c.loop_lag_ms.max = Some(lag_max_ms);
    c.reasons = vec![format!("event-loop lag max {lag_max_ms} ms")];
    c
}

#[test]
fn a_client_bound_miss_larger_than_the_client_could_add_fails() {
    let s = Search::parse("concurrency:1..32", 0.1, 1).unwrap();
    // The target sustains 4 sessions; from 8 on the client ran up to 2 ms late (it can
    // add 20 ms at most; the misses are 400 ms): those levels still fail.
    let done = run(&s, 4.0, |_, e| {
        if e.load.concurrency.unwrap() >= 8 {
            e.client = Some(late_client(2.0));
        }
    });
    let o = s.outcome("t", &done);
    assert_eq!(o.end, results::SearchEnd::Bracketed, "{o:?}");
    assert_eq!(o.highest_passing, Some(4.0));
    assert_eq!(o.lowest_failing, Some(5.0), "{o:?}");
    let why = o.levels[3].why.as_deref().unwrap();
    assert!(
        why.contains("by 400.0 ms") && why.contains("(2.000 ms)"),
        "{why}"
    );
    // The same, but the client was busy with its own work (it may have slowed a
    // target sharing its machine): the miss decides nothing.
    let done = run(&s, 4.0, |_, e| {
        if e.load.concurrency.unwrap() >= 8 {
            let mut c = late_client(2.0);
            c.bound_by = Some(results::BoundBy::Client);
            e.client = Some(c);
        }
    });
    assert_eq!(s.outcome("t", &done).end, results::SearchEnd::ClientBound);
    // A client 50 ms late could add 500 ms: the same miss decides nothing.
    let done = run(&s, 4.0, |_, e| {
        if e.load.concurrency.unwrap() >= 8 {
            e.client = Some(late_client(50.0));
        }
    });
    assert_eq!(s.outcome("t", &done).end, results::SearchEnd::ClientBound);
    // A late client's pass decides nothing when its lateness could have held back
    // more load than the search resolves: 10 x 20 ms of a 1000 ms cycle is 20%, over
    // the 10% tolerance.
    let done = run(&s, 100.0, |_, e| {
        if e.load.concurrency.unwrap() >= 8 {
            e.client = Some(late_client(20.0));
        }
    });
    let o = s.outcome("t", &done);
    assert_eq!(o.end, results::SearchEnd::ClientBound);
    assert_eq!(o.highest_passing, Some(4.0));
    // 10 x 2 ms of 1000 ms is 2%: the passes stand.
    let done = run(&s, 100.0, |_, e| {
        if e.load.concurrency.unwrap() >= 8 {
            e.client = Some(late_client(2.0));
        }
    });
    let o = s.outcome("t", &done);
    assert_eq!(o.end, results::SearchEnd::AboveRange, "{o:?}");
    assert_eq!(o.highest_passing, Some(32.0));
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
        bound_by: None,
        client_cpu_share: None,
        machine_cpu_busy_share: None,
        reasons: vec![],
        event_loop_threads: None,
    }
}
