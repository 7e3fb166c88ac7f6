//! The results archive: content-addressed, idempotent, indexed by date, and read back
//! as a time series.

#![allow(clippy::unwrap_used)]

use infermeter_results::archive::{Archive, history};

mod common;

#[test]
fn reports_are_stored_once_and_read_back_as_a_time_series() {
    let tmp = tempfile::tempdir().unwrap();
    let a = Archive::at(tmp.path());
    let mut later = common::report();
    later.run.id = "later".into();
    later.run.started_at = "2026-11-25T00:00:00.000Z".into();
    later.results[0].throughput.output_tokens_per_s = 50.0;
    let mut earlier = common::report();
    earlier.run.id = "earlier".into();
    earlier.run.started_at = "2026-11-20T00:00:00.000Z".into();
    let bytes = |r| serde_json::to_vec_pretty(r).unwrap();

    let (sha, new) = a.publish(&bytes(&later), &later).unwrap();
    assert!(new);
    assert!(
        tmp.path()
            .join("objects")
            .join(format!("{sha}.json"))
            .exists()
    );
    let (again, new) = a.publish(&bytes(&later), &later).unwrap();
    assert_eq!((again, new), (sha, false), "the same bytes are stored once");
    a.publish(&bytes(&earlier), &earlier).unwrap();

    let index = a.index().unwrap();
    let ids: Vec<&str> = index.reports.iter().map(|e| e.run_id.as_str()).collect();
    assert_eq!(ids, ["earlier", "later"], "oldest run first");
    assert!(index.reports[0].hardware.contains("x"));
    assert_eq!(a.load(&index.reports[1].sha256).unwrap(), later);

    let points = history(&a, "output_tokens_per_s", "chat-short").unwrap();
    let runs: Vec<(&str, Option<f64>)> = points
        .iter()
        .map(|p| (p.run_id.as_str(), p.value))
        .collect();
    assert_eq!(
        runs,
        [
            (
                "earlier",
                Some(earlier.results[0].throughput.output_tokens_per_s)
            ),
            ("later", Some(50.0))
        ]
    );
    let e = history(&a, "speed", "").unwrap_err();
    assert!(e.0.contains("unknown metric `speed`"), "{e}");
}
