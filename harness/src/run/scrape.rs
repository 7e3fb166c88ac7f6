//! A remote target's Prometheus metrics through each load point: one scrape just
//! before the first measured send (the driver waits for it), one every
//! `metrics_interval_s`, one after the last response; every scrape is kept raw in
//! `server_metrics.jsonl` beside `requests.jsonl`, and the window is summarised into
//! the result's `server` section ([`results::server_metrics`]).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Serialize;
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;
use workloads::{Backend, MetricsEndpoint};

use crate::driver::MeasureGate;
use crate::error::bad_input;
use results::server_metrics::{self, ClientSide, Source};

/// Longest wait for one scrape.
pub const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether and where a target's metrics are scraped.
#[derive(Clone, Debug)]
pub enum MetricsPlan {
    /// The target has no endpoint (local engines, `metrics_url = off`).
    Off,
    /// The default endpoint did not answer: not scraped, with the reason as a note.
    Unavailable(String),
    /// Scraped; raw samples appended to `log`.
    Scrape {
        /// The endpoint.
        endpoint: MetricsEndpoint,
        /// `server_metrics.jsonl`.
        log: PathBuf,
    },
}

/// Checks a target's endpoint once before any load: one that answers with metrics is
/// scraped; a default (`auto`) one that does not is skipped with a note; one the user
/// named that does not is bad input (exit 2, one line).
pub async fn plan(target: &dyn Backend, out_dir: &Path) -> Result<MetricsPlan> {
    let Some(endpoint) = target.metrics_endpoint() else {
        return Ok(MetricsPlan::Off);
    };
    let answer = target
        .fetch_metrics(SCRAPE_TIMEOUT)
        .await
        .and_then(|text| server_metrics::parse(&text, 0.0).map(|_| ()));
    match answer {
        Ok(()) => Ok(MetricsPlan::Scrape {
            endpoint,
            log: out_dir.join("server_metrics.jsonl"),
        }),
        Err(why) if endpoint.explicit => Err(bad_input(format!(
            "target {}: metrics_url {} gives no metrics ({why}); fix it or set metrics_url=off",
            target.describe().label(),
            endpoint.url
        ))),
        Err(why) => Ok(MetricsPlan::Unavailable(format!(
            "server metrics: not scraped: {} gives none ({why}); metrics_url names another endpoint",
            endpoint.url
        ))),
    }
}

/// One scrape as it came back.
struct Scraped {
    at: Instant,
    text: Result<String, String>,
}

/// The scraper of one load point.
pub struct Scraper {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Vec<Scraped>>,
    endpoint: MetricsEndpoint,
}

impl Scraper {
    /// Starts scraping `endpoint` of `target`; the driver opens the returned gate just
    /// before measuring, and waits for the window's first scrape.
    pub fn start(target: Arc<dyn Backend>, endpoint: MetricsEndpoint) -> (Self, MeasureGate) {
        let (ready_tx, ready_rx) = oneshot::channel();
        let (go_tx, go_rx) = oneshot::channel();
        let (stop, mut stopped) = watch::channel(false);
        let interval = endpoint.interval;
        let task = tokio::spawn(async move {
            let mut out = Vec::new();
            let scrape = || async {
                let text = target.fetch_metrics(SCRAPE_TIMEOUT).await;
                Scraped {
                    at: Instant::now(),
                    text,
                }
            };
            tokio::select! {
                r = ready_rx => if r.is_err() { return out },
                _ = until_stopped(&mut stopped) => return out,
            }
            out.push(scrape().await);
            let _ = go_tx.send(());
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(interval) => out.push(scrape().await),
                    _ = until_stopped(&mut stopped) => break,
                }
            }
            out.push(scrape().await);
            out
        });
        (
            Self {
                stop,
                task,
                endpoint,
            },
            MeasureGate {
                ready: ready_tx,
                go: go_rx,
            },
        )
    }

    /// Takes the last scrape (after the last response), appends every scrape to
    /// `log` and summarises the window that starts at `t0`.
    pub async fn finish(
        self,
        t0: std::time::Instant,
        log: &Path,
        point: &PointLabel<'_>,
        client: &ClientSide,
    ) -> Result<results::ServerMetrics> {
        let _ = self.stop.send(true);
        let scraped = self.task.await.context("the metrics scraper panicked")?;
        let mut snapshots = Vec::new();
        let mut failed = 0;
        let edge_failed = (
            scraped.first().is_some_and(|s| s.text.is_err()),
            scraped.last().is_some_and(|s| s.text.is_err()),
        );
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        for s in scraped {
            let at = s.at.into_std();
            let t_s = if at >= t0 {
                at.duration_since(t0).as_secs_f64()
            } else {
                -t0.duration_since(at).as_secs_f64()
            };
            let t_s = (t_s * 1e6).round() / 1e6;
            let parsed = s.text.and_then(|text| server_metrics::parse(&text, t_s));
            let line = RawLine {
                load: point.load,
                workload: point.workload,
                target: point.target,
                t_s,
                error: parsed.as_ref().err().map(String::as_str),
                kinds: parsed.as_ref().ok().map(|p| &p.kinds),
                values: parsed.as_ref().ok().map(|p| &p.values),
            };
            let mut bytes = serde_json::to_vec(&line).context("serializing a scrape")?;
            bytes.push(b'\n');
            file.write_all(&bytes)
                .with_context(|| format!("writing {}", log.display()))?;
            match parsed {
                Ok(snap) => snapshots.push(snap),
                Err(_) => failed += 1,
            }
        }
        let source = Source {
            url: self.endpoint.url.clone(),
            interval_s: self.endpoint.interval.as_secs_f64(),
            failed,
            edge_failed,
        };
        Ok(server_metrics::summarise(&snapshots, &source, client))
    }
}

/// Returns once `rx` says stop (or its sender is gone).
async fn until_stopped(rx: &mut watch::Receiver<bool>) {
    while !*rx.borrow_and_update() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Which load point a scrape belongs to (in the raw file).
pub struct PointLabel<'a> {
    /// The load point (`poisson 2 rps`, `closed c=8`, with the repeat).
    pub load: &'a str,
    /// Workload name.
    pub workload: &'a str,
    /// Target label.
    pub target: &'a str,
}

/// A line of `server_metrics.jsonl`.
#[derive(Serialize)]
struct RawLine<'a> {
    load: &'a str,
    workload: &'a str,
    target: &'a str,
    t_s: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kinds: Option<&'a BTreeMap<String, server_metrics::SeriesKind>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    values: Option<&'a BTreeMap<String, f64>>,
}
