//! A server's Prometheus metrics over a load point: each scrape parsed into a flat
//! [`Snapshot`] (the raw samples kept beside `requests.jsonl`), then the scrapes of the
//! measured window summarised into the report's [`ServerMetrics`] through one
//! [`vocabulary`] of vLLM's, SGLang's, TGI's and llama.cpp's names, and reconciled
//! with the client's own figures.
//!
//! Counters and histograms are taken as their change over the window (last scrape
//! minus first), so traffic before the window (warm-up, preflight) never counts;
//! gauges as the mean, max and last of the scrapes inside it.

pub mod vocabulary;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::report::{GaugeSummary, HistogramSummary, Reconciliation, ServerMetrics};
use vocabulary::{FIGURES, Figure, Server};

/// Output-token and request counts within this share agree.
pub const AGREEMENT_PCT: f64 = 2.0;

/// The type a series was exposed with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SeriesKind {
    /// Only goes up (resets on restart).
    Counter,
    /// Goes up and down.
    Gauge,
    /// Cumulative buckets (`_bucket{le}`), `_sum` and `_count`.
    Histogram,
    /// Quantiles, `_sum` and `_count`.
    Summary,
    /// No `# TYPE` line.
    Untyped,
}

/// One scrape, flattened: every sample as `name{label="value",...}` (labels sorted)
/// with its value; a histogram as `name_bucket{...,le="x"}` lines.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// When the scrape's answer arrived, seconds after the start of measurement.
    pub t_s: f64,
    /// The type of each metric name.
    pub kinds: BTreeMap<String, SeriesKind>,
    /// Every sample.
    pub values: BTreeMap<String, f64>,
}

fn series_key(name: &str, labels: &BTreeMap<String, String>) -> String {
    if labels.is_empty() {
        return name.to_string();
    }
    let inner: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    format!("{name}{{{}}}", inner.join(","))
}

/// The metric name of a series key.
fn base_name(key: &str) -> &str {
    key.split('{').next().unwrap_or(key)
}

/// Parses Prometheus exposition text taken at `t_s`.
pub fn parse(text: &str, t_s: f64) -> Result<Snapshot, String> {
    use openmetrics_parser::{PrometheusType, PrometheusValue};
    // The grammar wants every line ended, the last one too.
    let text = if text.ends_with('\n') {
        text.to_string()
    } else {
        format!("{text}\n")
    };
    let exposition = openmetrics_parser::prometheus::parse_prometheus(&text)
        .map_err(|e| format!("not Prometheus text: {}", one_line(&e.to_string())))?;
    let mut kinds = BTreeMap::new();
    let mut values = BTreeMap::new();
    for (name, family) in &exposition.families {
        kinds.insert(
            name.clone(),
            match family.family_type {
                PrometheusType::Counter => SeriesKind::Counter,
                PrometheusType::Gauge => SeriesKind::Gauge,
                PrometheusType::Histogram => SeriesKind::Histogram,
                PrometheusType::Summary => SeriesKind::Summary,
                PrometheusType::Unknown => SeriesKind::Untyped,
            },
        );
        for sample in family.iter_samples() {
            let labels: BTreeMap<String, String> = sample
                .get_labelset()
                .map(|l| l.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default();
            match &sample.value {
                PrometheusValue::Unknown(v) | PrometheusValue::Gauge(v) => {
                    values.insert(series_key(name, &labels), v.as_f64());
                }
                PrometheusValue::Counter(c) => {
                    values.insert(series_key(name, &labels), c.value.as_f64());
                }
                PrometheusValue::Histogram(h) => {
                    for b in &h.buckets {
                        let mut l = labels.clone();
                        l.insert("le".into(), prom_float(b.upper_bound));
                        values.insert(series_key(&format!("{name}_bucket"), &l), b.count.as_f64());
                    }
                    if let Some(sum) = &h.sum {
                        values.insert(series_key(&format!("{name}_sum"), &labels), sum.as_f64());
                    }
                    if let Some(count) = h.count {
                        values.insert(series_key(&format!("{name}_count"), &labels), count as f64);
                    }
                }
                PrometheusValue::Summary(q) => {
                    for quantile in &q.quantiles {
                        let mut l = labels.clone();
                        l.insert("quantile".into(), prom_float(quantile.quantile));
                        values.insert(series_key(name, &l), quantile.value.as_f64());
                    }
                    if let Some(sum) = &q.sum {
                        values.insert(series_key(&format!("{name}_sum"), &labels), sum.as_f64());
                    }
                    if let Some(count) = q.count {
                        values.insert(series_key(&format!("{name}_count"), &labels), count as f64);
                    }
                }
            }
        }
    }
    if values.is_empty() {
        return Err("the answer holds no sample".into());
    }
    Ok(Snapshot { t_s, kinds, values })
}

fn one_line(s: &str) -> String {
    let line = s.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(160) {
        Some((i, _)) => format!("{}...", &line[..i]),
        None => line,
    }
}

fn prom_float(v: f64) -> String {
    if v.is_infinite() {
        "+Inf".into()
    } else {
        format!("{v}")
    }
}

impl Snapshot {
    /// The sum over every label set of metric `name` (`None` when absent).
    pub fn sum(&self, name: &str) -> Option<f64> {
        let mut found = false;
        let mut total = 0.0;
        for (k, v) in self.values.range(name.to_string()..) {
            if base_name(k) != name {
                if !k.starts_with(name) {
                    break;
                }
                continue;
            }
            found = true;
            total += v;
        }
        found.then_some(total)
    }

    /// Histogram `name`'s cumulative counts by upper bound (summed over other labels),
    /// its sum and its count.
    fn histogram(&self, name: &str) -> Option<(BTreeMap<OrderedBound, f64>, f64, f64)> {
        let bucket = format!("{name}_bucket");
        let mut buckets: BTreeMap<OrderedBound, f64> = BTreeMap::new();
        for (k, v) in self.values.range(bucket.clone()..) {
            if base_name(k) != bucket {
                if !k.starts_with(&bucket) {
                    break;
                }
                continue;
            }
            // The `le` label exactly (after `{` or `,`), not a label ending in `le`.
            let le = k
                .find("{le=\"")
                .or_else(|| k.find(",le=\""))
                .map(|i| &k[i + 5..])
                .and_then(|r| r.split('"').next())
                .map(|s| {
                    if s == "+Inf" {
                        f64::INFINITY
                    } else {
                        s.parse().unwrap_or(f64::NAN)
                    }
                })
                .filter(|x| !x.is_nan())?;
            *buckets.entry(OrderedBound(le)).or_default() += v;
        }
        let count = self.sum(&format!("{name}_count"))?;
        let sum = self.sum(&format!("{name}_sum")).unwrap_or(f64::NAN);
        (!buckets.is_empty()).then_some((buckets, sum, count))
    }
}

/// A bucket bound ordered as a number (bounds are never NaN).
#[derive(Clone, Copy, Debug, PartialEq)]
struct OrderedBound(f64);
impl Eq for OrderedBound {}
impl PartialOrd for OrderedBound {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for OrderedBound {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&o.0)
    }
}

/// The client's figures over the same window.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ClientSide {
    /// Requests sent.
    pub requests: u64,
    /// Of those, requests that failed (the server may have generated tokens for them
    /// that the client never counted).
    pub failed: u64,
    /// Mean TTFT of successful requests, ms.
    pub ttft_mean_ms: Option<f64>,
    /// Output tokens counted.
    pub output_tokens: u64,
    /// Prompt tokens counted.
    pub input_tokens: u64,
}

/// Where the scrapes came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Source {
    /// The endpoint.
    pub url: String,
    /// Interval asked for, seconds.
    pub interval_s: f64,
    /// Scrapes of the window that failed.
    pub failed: u64,
    /// Whether the scrape at the window's start, or the one at its end, failed (the
    /// counters then cover less than the window).
    pub edge_failed: (bool, bool),
}

/// `q`-quantile of a cumulative histogram's delta, in the histogram's unit, as
/// Prometheus' `histogram_quantile` interpolates it.
fn quantile(delta: &[(f64, f64)], q: f64) -> Option<f64> {
    let total = delta.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let (mut lo, mut below) = (0.0, 0.0);
    for &(le, cum) in delta {
        if cum >= rank {
            if le.is_infinite() {
                return Some(lo);
            }
            let inside = cum - below;
            return Some(if inside > 0.0 {
                lo + (le - lo) * (rank - below) / inside
            } else {
                le
            });
        }
        (lo, below) = (le, cum);
    }
    Some(lo)
}

/// An interpolated `q`-quantile capped by Markov's bound: a quantity that is never
/// negative (these are times) has its `q`-quantile at most `mean / (1 - q)`. Linear
/// interpolation inside a wide first bucket alone would put the median of
/// near-zero queue times (vLLM's first bucket ends at 0.3 s) at 150 ms.
fn markov_capped(interpolated: Option<f64>, mean: Option<f64>, q: f64) -> Option<f64> {
    match (interpolated, mean) {
        (Some(x), Some(m)) if m >= 0.0 => Some(x.min(m / (1.0 - q))),
        (x, _) => x,
    }
}

fn histogram_delta(first: &Snapshot, last: &Snapshot, name: &str) -> Option<HistogramSummary> {
    let (b1, s1, c1) = last.histogram(name)?;
    let (b0, s0, c0) = first.histogram(name).unwrap_or((BTreeMap::new(), 0.0, 0.0));
    let count = c1 - c0;
    if count < 0.0 {
        return None;
    }
    let delta: Vec<(f64, f64)> = b1
        .iter()
        .map(|(le, v)| (le.0, v - b0.get(le).copied().unwrap_or(0.0)))
        .collect();
    let ms = |v: Option<f64>| v.map(|s| (s * 1000.0 * 1000.0).round() / 1000.0);
    let sum = s1 - s0;
    let mean = (count > 0.0 && sum.is_finite()).then(|| sum / count);
    let q = |q: f64| markov_capped(quantile(&delta, q), mean, q);
    Some(HistogramSummary {
        count,
        mean: ms(mean),
        p50: ms(q(0.5)),
        p90: ms(q(0.9)),
        p99: ms(q(0.99)),
    })
}

/// Summarises the scrapes of one measured window (in time order; the first at its
/// start, the last after its last response) and reconciles them with `client`.
pub fn summarise(scrapes: &[Snapshot], source: &Source, client: &ClientSide) -> ServerMetrics {
    let mut out = ServerMetrics {
        url: source.url.clone(),
        interval_s: source.interval_s,
        failed_scrapes: source.failed,
        scrapes: scrapes.len() as u64,
        ..ServerMetrics::default()
    };
    if source.failed > 0 {
        out.notes.push(format!(
            "{} scrapes of the window failed; the figures use the {} that answered",
            source.failed,
            scrapes.len()
        ));
    }
    let (Some(first), Some(last)) = (scrapes.first(), scrapes.last()) else {
        out.server = Server::Unknown.name().into();
        out.notes
            .push("no scrape of the window answered: nothing to summarise".into());
        return out;
    };
    for (failed, edge) in [
        (source.edge_failed.0, "start"),
        (source.edge_failed.1, "end"),
    ] {
        if failed {
            out.notes.push(format!(
                "the scrape at the window's {edge} failed: counters and histograms cover {:.3} s to {:.3} s only",
                first.t_s, last.t_s
            ));
        }
    }
    let server = Server::detect(last.values.keys().map(String::as_str));
    out.server = server.name().into();
    out.window_s = ((last.t_s - first.t_s) * 1000.0).round() / 1000.0;
    if scrapes.len() < 2 {
        out.notes.push(
            "one scrape only: counters and histograms need two (the window's start and end)".into(),
        );
    }
    let pick = |f: Figure, s: &Snapshot| -> Option<(f64, &'static str)> {
        server
            .names(f)
            .iter()
            .find_map(|n| s.sum(n).map(|v| (v, *n)))
    };
    let mut resets = Vec::new();
    let mut counter = |f: Figure| -> Option<f64> {
        if scrapes.len() < 2 {
            return None;
        }
        let (end, name) = pick(f, last)?;
        let start = first.sum(name).unwrap_or(0.0);
        if end < start {
            resets.push(name);
            return None;
        }
        Some(end - start)
    };
    // Gauges over the scrapes inside the window: the edge scrapes (before the first
    // send, after the last response) show an idle server.
    let inside = if scrapes.len() > 2 {
        &scrapes[1..scrapes.len() - 1]
    } else {
        scrapes
    };
    let gauge = |f: Figure| -> Option<GaugeSummary> {
        let vals: Vec<f64> = inside
            .iter()
            .filter_map(|s| pick(f, s).map(|x| x.0))
            .collect();
        let last = *vals.last()?;
        Some(GaugeSummary {
            mean: vals.iter().sum::<f64>() / vals.len() as f64,
            max: vals.iter().copied().fold(f64::MIN, f64::max),
            last,
        })
    };
    out.requests_running = gauge(Figure::Running);
    out.requests_waiting = gauge(Figure::Waiting);
    out.kv_cache_usage_ratio = gauge(Figure::KvUsage);
    out.preemptions = counter(Figure::Preemptions);
    out.requests_finished = counter(Figure::Finished);
    out.generation_tokens = counter(Figure::GenerationTokens);
    let cached = counter(Figure::CachedPromptTokens);
    let uncached = counter(Figure::UncachedPromptTokens);
    out.prompt_tokens = counter(Figure::PromptTokens).or(match (uncached, cached) {
        (Some(u), c) => Some(u + c.unwrap_or(0.0)),
        _ => None,
    });
    let hits = counter(Figure::PrefixHits);
    let queries = counter(Figure::PrefixQueries);
    // vLLM counts its prefix-cache hits and queries in tokens.
    out.prompt_tokens_cached = cached.or(hits);
    out.prefix_cache_hit_ratio = match (hits, queries) {
        (Some(h), Some(q)) if q > 0.0 => Some(h / q),
        _ => match (out.prompt_tokens_cached, out.prompt_tokens) {
            (Some(c), Some(p)) if p > 0.0 => Some(c / p),
            _ => None,
        },
    }
    .map(|r| (r * 1e6).round() / 1e6);
    for name in resets {
        out.notes.push(format!(
            "{name} went down over the window (the server restarted?): left out"
        ));
    }
    if scrapes.len() >= 2 {
        let hist = |f: Figure| {
            server
                .names(f)
                .iter()
                .find_map(|n| histogram_delta(first, last, n))
        };
        out.ttft_ms = hist(Figure::Ttft);
        out.queue_ms = hist(Figure::Queue);
        out.prefill_ms = hist(Figure::Prefill);
        out.itl_ms = hist(Figure::Itl);
        out.e2e_ms = hist(Figure::E2e);
    }
    out.raw = raw(first, last, server, scrapes.len() >= 2);
    out.reconciliation = reconcile(&out, client);
    out
}

/// Series outside the vocabulary: counters (and histogram sums and counts) as their
/// delta, gauges as their last value.
fn raw(first: &Snapshot, last: &Snapshot, server: Server, deltas: bool) -> BTreeMap<String, f64> {
    let used: BTreeSet<&str> = FIGURES
        .iter()
        .flat_map(|f| server.names(*f).iter().copied())
        .collect();
    let mut out = BTreeMap::new();
    for (key, v) in &last.values {
        let name = base_name(key);
        let owner = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .filter(|o| last.kinds.get(*o) == Some(&SeriesKind::Histogram));
        if used.contains(name) || owner.is_some_and(|o| used.contains(o)) {
            continue;
        }
        if name.ends_with("_bucket") && owner.is_some() {
            continue;
        }
        let kind = last.kinds.get(owner.unwrap_or(name)).copied();
        let cumulative = matches!(kind, Some(SeriesKind::Counter))
            || owner.is_some()
            || matches!(kind, Some(SeriesKind::Summary)) && !key.contains("quantile=");
        if cumulative {
            if deltas {
                let d = v - first.values.get(key).copied().unwrap_or(0.0);
                out.insert(format!("{key}_delta"), d);
            }
        } else if v.is_finite() {
            out.insert(key.clone(), *v);
        }
    }
    out
}

fn pct(server: f64, client: u64) -> Option<f64> {
    (client > 0)
        .then(|| ((server - client as f64) / client as f64 * 100.0 * 1000.0).round() / 1000.0)
}

fn reconcile(s: &ServerMetrics, c: &ClientSide) -> Reconciliation {
    let server_requests = s
        .requests_finished
        .or(s.e2e_ms.as_ref().map(|h| h.count))
        .or(s.ttft_ms.as_ref().map(|h| h.count));
    let server_ttft = s.ttft_ms.as_ref().and_then(|h| h.mean);
    let mut r = Reconciliation {
        client_requests: c.requests,
        server_requests,
        ttft_client_minus_server_ms: match (c.ttft_mean_ms, server_ttft) {
            (Some(a), Some(b)) => Some(((a - b) * 1000.0).round() / 1000.0),
            _ => None,
        },
        client_ttft_mean_ms: c.ttft_mean_ms,
        server_queue_mean_ms: s.queue_ms.as_ref().and_then(|h| h.mean),
        client_output_tokens: c.output_tokens,
        server_output_tokens: s.generation_tokens,
        output_tokens_diff_pct: s.generation_tokens.and_then(|g| pct(g, c.output_tokens)),
        client_input_tokens: c.input_tokens,
        server_input_tokens: s.prompt_tokens,
        input_tokens_diff_pct: s.prompt_tokens.and_then(|p| pct(p, c.input_tokens)),
        agree: None,
        disagreements: Vec::new(),
    };
    let mut checked = false;
    if let Some(n) = server_requests {
        checked = true;
        if (n - c.requests as f64).abs() > 0.5 {
            r.disagreements.push(format!(
                "the server finished {n} requests in the window, the client sent {}",
                c.requests
            ));
        }
    }
    if let Some(d) = r.output_tokens_diff_pct {
        checked = true;
        if d.abs() > AGREEMENT_PCT {
            r.disagreements.push(format!(
                "output tokens: the server counted {} ({d:+.1}% of the client's {})",
                r.server_output_tokens.unwrap_or(0.0),
                c.output_tokens
            ));
        }
    }
    if let Some(d) = r.input_tokens_diff_pct
        && d.abs() > AGREEMENT_PCT
    {
        r.disagreements.push(format!(
            "prompt tokens: the server counted {d:+.1}% of the client's {} (a chat template adds tokens the client does not send as text)",
            c.input_tokens
        ));
    }
    if let Some(gap) = r.ttft_client_minus_server_ms
        && gap < 0.0
    {
        r.disagreements.push(format!(
            "the server's mean TTFT is {:.1} ms above the client's: the two do not time the same span",
            -gap
        ));
    }
    if c.failed > 0 && !r.disagreements.is_empty() {
        r.disagreements.push(format!(
            "{} requests failed: the server may have served or counted part of them",
            c.failed
        ));
    }
    r.agree = checked.then(|| {
        !r.disagreements
            .iter()
            .any(|d| d.starts_with("the server finished") || d.starts_with("output tokens"))
    });
    r
}

#[cfg(test)]
mod tests;
