//! Back-testing the planner: calibrate on some measured load points, predict others
//! measured on the same device class, and publish the error of every prediction.
//!
//! A prediction uses what a plan is given: the load point's concurrency, its mean
//! prompt and reply lengths (the tokens it sent, over requests sent) and its
//! prefix-cache share (the engine's measured hit ratio: 0 in the published back-test,
//! which turns the cache off), the engine's batch and chunk limits, the device's
//! measured limits and the model's shape. It is compared with what the point measured:
//! decode tokens per second of decode-only steps, the median TTFT (against the model's
//! steady-state TTFT of a mean request), and output tokens per second.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::fit::{Calibration, Observed, median};
use super::serve::{DeviceModel, EngineLimits, RequestShape, serve};
use crate::report::ResultEntry;

/// The `schema` of `infermeter backtest --json` documents.
pub const BACKTEST_SCHEMA: &str = "infermeter.backtest";
/// Their version.
pub const BACKTEST_SCHEMA_VERSION: &str = "1.0";

/// One held-out load point: predicted against measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Prediction {
    /// `kind model precision`.
    pub target: String,
    /// The workload.
    pub workload: String,
    /// Sessions in flight.
    pub concurrency: u32,
    /// Mean prompt tokens.
    pub input_tokens: f64,
    /// Mean reply tokens.
    pub output_tokens: f64,
    /// Decode tokens per second of decode-only steps, projected.
    pub decode_tokens_per_s_projected: f64,
    /// ... and measured (`roofline.decode_tokens_per_s`); `null` when not measured.
    pub decode_tokens_per_s_measured: Option<f64>,
    /// `projected / measured - 1`.
    pub decode_error: Option<f64>,
    /// Median TTFT, projected, ms.
    pub ttft_p50_ms_projected: f64,
    /// ... and measured.
    pub ttft_p50_ms_measured: Option<f64>,
    /// `projected / measured - 1`.
    pub ttft_error: Option<f64>,
    /// Output tokens per second, projected.
    pub output_tokens_per_s_projected: f64,
    /// ... and measured.
    pub output_tokens_per_s_measured: f64,
    /// `projected / measured - 1`.
    pub output_throughput_error: Option<f64>,
}

/// Median absolute errors over the predictions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorSummary {
    /// Predictions.
    pub predictions: usize,
    /// Median `|decode_error|`.
    pub decode_median_abs_error: Option<f64>,
    /// Largest `|decode_error|`.
    pub decode_max_abs_error: Option<f64>,
    /// Median `|ttft_error|`.
    pub ttft_median_abs_error: Option<f64>,
    /// Largest `|ttft_error|`.
    pub ttft_max_abs_error: Option<f64>,
    /// Median `|output_throughput_error|`.
    pub output_throughput_median_abs_error: Option<f64>,
}

/// What `infermeter backtest` measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BacktestDoc {
    /// Always [`BACKTEST_SCHEMA`].
    pub schema: String,
    /// [`BACKTEST_SCHEMA_VERSION`].
    pub schema_version: String,
    /// The infermeter version.
    pub tool_version: String,
    /// The calibration fitted on the calibration points.
    pub calibration: Calibration,
    /// Every held-out point.
    pub predictions: Vec<Prediction>,
    /// Their errors, over all.
    pub summary: ErrorSummary,
    /// The same per target (`kind model precision`).
    pub by_target: Vec<(String, ErrorSummary)>,
}

/// The engine limits a local result ran with (its target's settings; the engine's
/// defaults where absent).
pub fn engine_limits(entry: &ResultEntry) -> EngineLimits {
    let get = |k: &str, d: u32| {
        entry
            .target
            .settings
            .get(k)
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    EngineLimits {
        max_batch: entry
            .engine
            .as_ref()
            .map_or_else(|| get("max_batch", 16), |e| e.max_batch),
        prefill_chunk: get("prefill_chunk", 256),
    }
}

/// The mean request of a result.
pub fn request_shape(entry: &ResultEntry) -> RequestShape {
    let sent = entry.requests.sent.max(1) as f64;
    let cached_fraction = entry
        .engine
        .as_ref()
        .and_then(|e| e.cache_hit_ratio)
        .or_else(|| {
            let c = entry.tokens.input_cached? as f64;
            (entry.tokens.input > 0).then(|| c / entry.tokens.input as f64)
        })
        .unwrap_or(0.0);
    RequestShape {
        input_tokens: entry.tokens.input as f64 / sent,
        cached_fraction,
        output_tokens: entry.tokens.output as f64 / sent,
    }
}

/// Predicts `entry` with `calibration`; `None` when it is not a closed-loop local
/// result with a roofline.
pub fn predict(calibration: &Calibration, entry: &ResultEntry) -> Option<Prediction> {
    let rf = entry.roofline.as_ref()?;
    let concurrency = entry.load.concurrency?;
    let dev = DeviceModel {
        limits: &rf.limits,
        shape: &rf.shape,
        calibration,
        allreduce_s_per_seq: 0.0,
        allreduce_s_per_step: 0.0,
    };
    let req = request_shape(entry);
    let p = serve(&dev, &req, &engine_limits(entry), concurrency)?;
    let err = |proj: f64, meas: Option<f64>| meas.filter(|m| *m > 0.0).map(|m| proj / m - 1.0);
    let decode_measured = rf.decode_tokens_per_s;
    let ttft_measured = entry.latency.ttft_ms.p50;
    let out_measured = entry.throughput.output_tokens_per_s;
    Some(Prediction {
        target: entry.target.label(),
        workload: entry.workload.name.clone(),
        concurrency,
        input_tokens: req.input_tokens,
        output_tokens: req.output_tokens,
        decode_tokens_per_s_projected: p.decode_step_tokens_per_s,
        decode_tokens_per_s_measured: decode_measured,
        decode_error: err(p.decode_step_tokens_per_s, decode_measured),
        ttft_p50_ms_projected: p.ttft_s * 1e3,
        ttft_p50_ms_measured: ttft_measured,
        ttft_error: err(p.ttft_s * 1e3, ttft_measured),
        output_tokens_per_s_projected: p.output_tokens_per_s,
        output_tokens_per_s_measured: out_measured,
        output_throughput_error: err(p.output_tokens_per_s, Some(out_measured)),
    })
}

/// The errors of `preds`.
pub fn summarize(preds: &[&Prediction]) -> ErrorSummary {
    let abs = |f: fn(&Prediction) -> Option<f64>| -> Vec<f64> {
        preds.iter().filter_map(|p| f(p)).map(f64::abs).collect()
    };
    let max = |v: Vec<f64>| v.into_iter().reduce(f64::max);
    ErrorSummary {
        predictions: preds.len(),
        decode_median_abs_error: median(abs(|p| p.decode_error)),
        decode_max_abs_error: max(abs(|p| p.decode_error)),
        ttft_median_abs_error: median(abs(|p| p.ttft_error)),
        ttft_max_abs_error: max(abs(|p| p.ttft_error)),
        output_throughput_median_abs_error: median(abs(|p| p.output_throughput_error)),
    }
}

/// Why a back-test could not run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct BacktestError(pub String);

/// Calibrates on `calibrate` and predicts `predict` (local closed-loop results with
/// rooflines of one device class).
pub fn backtest(
    calibrate: &[&ResultEntry],
    predict_on: &[&ResultEntry],
    tool_version: &str,
) -> Result<BacktestDoc, BacktestError> {
    let observed: Vec<Observed> = calibrate.iter().filter_map(|e| Observed::of(e)).collect();
    let Some(first) = observed.first() else {
        return Err(BacktestError(
            "no calibration result has a roofline and engine counters (local results of schema 1.7 or later, with at least one successful request)".into(),
        ));
    };
    let class = first.class;
    if let Some(o) = observed.iter().find(|o| o.class != class) {
        return Err(BacktestError(format!(
            "calibration results mix device classes ({} and {}): back-test one class at a time",
            class.as_str(),
            o.class.as_str()
        )));
    }
    let calibration = Calibration::fit(class, &observed).ok_or_else(|| {
        BacktestError(
            "the calibration results have no decode-only steps or no computed prompt tokens to fit"
                .into(),
        )
    })?;
    let mut predictions = Vec::new();
    for e in predict_on {
        let Some(o) = Observed::of(e) else { continue };
        if o.class != class {
            return Err(BacktestError(format!(
                "result `{}` ran on a {} but the calibration is of a {}",
                o.run,
                o.class.as_str(),
                class.as_str()
            )));
        }
        predictions.extend(predict(&calibration, e));
    }
    if predictions.is_empty() {
        return Err(BacktestError(
            "nothing to predict: no held-out result is a closed-loop local result with a roofline"
                .into(),
        ));
    }
    let mut targets: Vec<String> = predictions.iter().map(|p| p.target.clone()).collect();
    targets.sort();
    targets.dedup();
    let by_target = targets
        .into_iter()
        .map(|t| {
            let ps: Vec<&Prediction> = predictions.iter().filter(|p| p.target == t).collect();
            let s = summarize(&ps);
            (t, s)
        })
        .collect();
    let all: Vec<&Prediction> = predictions.iter().collect();
    Ok(BacktestDoc {
        schema: BACKTEST_SCHEMA.into(),
        schema_version: BACKTEST_SCHEMA_VERSION.into(),
        tool_version: tool_version.into(),
        summary: summarize(&all),
        calibration,
        predictions,
        by_target,
    })
}
