//! Calibration: how far a device class's engine is from its roofline, fitted on
//! measured local results.
//!
//! A decode step of `B` sequences at mean context `C` on a device of read bandwidth
//! `bw` and matrix throughput `fl` is modelled as
//! `T = a x W(B)/bw + b x B x C x kv/bw + c x B x ops(C)/fl + d`
//! (weights and experts read, KV cache read, operations, a fixed cost per step; `d`
//! only when the points span models of different sizes, since for one model it
//! cannot be told from the weights' term, which is the one that transfers), and
//! a computed prompt token attending over `A` positions as
//! `t = e x matrix_ops/fl + f x attention_ops x A/fl`.
//! The factors (each >= 0; 1 = at the limit) are fitted by non-negative least squares
//! on relative errors, over every load point of the class that has engine counters.
//! With fewer load points than factors the decode fit keeps one factor on the
//! roofline's own ceiling (`T = max(a x bytes/bw, c x ops/fl)`, `a = c` when fitted).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::hardware::{DefaultEfficiency, DeviceClass};
use crate::report::{DeviceLimits, ModelShape, ResultEntry};
use crate::roofline::{decode_step_bytes, experts_touched};

/// The decode-step factors (see the module's documentation).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DecodeFit {
    /// `a`: seconds per second of reading the weights at the device's bandwidth.
    pub weight_read_factor: f64,
    /// `b`: the same for the KV cache.
    pub kv_read_factor: f64,
    /// `c`: seconds per second of the step's operations at the matrix throughput.
    pub compute_factor: f64,
    /// `d`: fixed seconds per step (launches, synchronisation, scheduling).
    pub step_overhead_s: f64,
    /// Whether the factors apply to the roofline's ceiling as one (too few points
    /// for four factors, or an uncalibrated default).
    pub single_factor: bool,
}

/// The prompt-token factors (see the module's documentation).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PrefillFit {
    /// `e`: seconds per second of the token's matrix operations at the throughput.
    pub matrix_factor: f64,
    /// `f`: the same for its attention operations.
    pub attention_factor: f64,
}

/// Where a calibration comes from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CalibrationSource {
    /// Whether measured load points of the class calibrate it (`false`: the hardware
    /// catalog's documented default efficiencies; every projection is then labelled
    /// uncalibrated).
    pub calibrated: bool,
    /// Load points fitted.
    pub points: usize,
    /// The devices they were measured on.
    pub devices: Vec<String>,
    /// The targets (`kind model precision`) and workloads they ran.
    pub runs: Vec<String>,
    /// The default's source when uncalibrated.
    pub default_source: Option<String>,
    /// Median absolute relative error of the fitted decode step times on the fitted
    /// points (in-sample; the back-test gives the held-out error).
    pub decode_fit_error: Option<f64>,
    /// The same for prompt-token times.
    pub prefill_fit_error: Option<f64>,
}

/// A device class's calibration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Calibration {
    /// The class.
    pub class: DeviceClass,
    /// Decode factors.
    pub decode: DecodeFit,
    /// Prefill factors.
    pub prefill: PrefillFit,
    /// What it was fitted on.
    pub source: CalibrationSource,
}

/// A measured load point, as the fit reads it.
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    /// The class of the device.
    pub class: DeviceClass,
    /// Its measured limits.
    pub limits: DeviceLimits,
    /// The model as it held it.
    pub shape: ModelShape,
    /// Mean sequences per decode-only step; `None` without such steps.
    pub decode_batch: Option<f64>,
    /// Mean context while decoding.
    pub decode_context: f64,
    /// Mean seconds per decode-only step.
    pub decode_step_s: Option<f64>,
    /// Mean positions a computed prompt token attends over.
    pub attended: f64,
    /// Seconds per computed prompt token.
    pub prefill_token_s: Option<f64>,
    /// `kind model precision` and the workload, for the calibration's record.
    pub run: String,
}

impl Observed {
    /// The load point of `entry`; `None` without engine counters, a roofline or a
    /// successful request.
    pub fn of(entry: &ResultEntry) -> Option<Self> {
        let rf = entry.roofline.as_ref()?;
        let e = entry.engine.as_ref()?;
        if entry.requests.ok == 0 {
            return None;
        }
        let steps = e.decode_steps.unwrap_or(0);
        let (decode_batch, decode_step_s) = match (e.decode_step_tokens, e.decode_step_busy_s) {
            (Some(tok), Some(s)) if steps > 0 && tok > 0 && s > 0.0 => {
                (Some(tok as f64 / steps as f64), Some(s / steps as f64))
            }
            _ => (None, None),
        };
        let prefill_token_s = match e.prefill_busy_s {
            Some(s) if s > 0.0 && e.prompt_tokens_computed > 0 => {
                Some(s / e.prompt_tokens_computed as f64)
            }
            _ => None,
        };
        let ok = entry.requests.ok as f64;
        let attended =
            ((e.prompt_tokens as f64 - e.prompt_tokens_computed as f64 / 2.0) / ok).max(0.0);
        Some(Self {
            class: DeviceClass::of_limits(&rf.limits),
            limits: rf.limits.clone(),
            shape: rf.shape.clone(),
            decode_batch,
            decode_context: rf.decode_context_tokens,
            decode_step_s,
            attended,
            prefill_token_s,
            run: format!("{} / {}", entry.target.label(), entry.workload.name),
        })
    }
}

/// The terms of a decode step on `limits` (seconds at the limits): weights, KV,
/// operations, and 1 (the fixed cost); `None` when a limit is missing.
pub fn decode_terms(
    limits: &DeviceLimits,
    shape: &ModelShape,
    batch: f64,
    context: f64,
) -> Option<[f64; 4]> {
    let bw = limits.read_gb_per_s * 1e9;
    let fl = limits.matmul_gflop_per_s.get(&shape.precision)? * 1e9;
    if !(bw > 0.0 && fl > 0.0 && batch > 0.0) {
        return None;
    }
    let kv = batch * context.max(0.0) * shape.kv_bytes_per_token as f64;
    let weights = decode_step_bytes(shape, batch, context) - kv;
    let ops = batch
        * (shape.matrix_flop_per_token
            + shape.head_flop_per_token
            + shape.attention_flop_per_position * context.max(0.0));
    Some([weights / bw, kv / bw, ops / fl, 1.0])
}

/// The prompt-token terms on `limits` (seconds at the limit): matrix and attention.
pub fn prefill_terms(limits: &DeviceLimits, shape: &ModelShape, attended: f64) -> Option<[f64; 2]> {
    let fl = limits.matmul_gflop_per_s.get(&shape.precision)? * 1e9;
    (fl > 0.0).then(|| {
        [
            shape.matrix_flop_per_token / fl,
            shape.attention_flop_per_position * attended.max(0.0) / fl,
        ]
    })
}

impl DecodeFit {
    /// Seconds of a decode step of `batch` sequences at `context` (0 for no batch).
    pub fn step_s(
        &self,
        limits: &DeviceLimits,
        shape: &ModelShape,
        batch: f64,
        context: f64,
    ) -> Option<f64> {
        if batch <= 0.0 {
            return Some(0.0);
        }
        let [w, kv, ops, _] = decode_terms(limits, shape, batch, context)?;
        Some(if self.single_factor {
            (self.weight_read_factor * (w + kv)).max(self.compute_factor * ops)
                + self.step_overhead_s
        } else {
            self.weight_read_factor * w
                + self.kv_read_factor * kv
                + self.compute_factor * ops
                + self.step_overhead_s
        })
    }
}

impl PrefillFit {
    /// Seconds per computed prompt token attending over `attended` positions.
    pub fn token_s(&self, limits: &DeviceLimits, shape: &ModelShape, attended: f64) -> Option<f64> {
        let [m, a] = prefill_terms(limits, shape, attended)?;
        Some(self.matrix_factor * m + self.attention_factor * a)
    }
}

impl Calibration {
    /// The documented default of a class (uncalibrated).
    pub fn default_of(d: &DefaultEfficiency) -> Self {
        Self {
            class: d.class,
            decode: DecodeFit {
                weight_read_factor: 1.0 / d.decode_bandwidth_efficiency,
                kv_read_factor: 1.0 / d.decode_bandwidth_efficiency,
                compute_factor: 1.0 / d.prefill_compute_efficiency,
                step_overhead_s: 0.0,
                single_factor: true,
            },
            prefill: PrefillFit {
                matrix_factor: 1.0 / d.prefill_compute_efficiency,
                attention_factor: 1.0 / d.prefill_compute_efficiency,
            },
            source: CalibrationSource {
                calibrated: false,
                points: 0,
                devices: Vec::new(),
                runs: Vec::new(),
                default_source: Some(d.source.clone()),
                decode_fit_error: None,
                prefill_fit_error: None,
            },
        }
    }

    /// Fits the class `class` on `points` (those of other classes are skipped);
    /// `None` when none of them has both a decode and a prefill measurement.
    pub fn fit(class: DeviceClass, points: &[Observed]) -> Option<Self> {
        let pts: Vec<&Observed> = points.iter().filter(|p| p.class == class).collect();
        let mut decode_rows = Vec::new();
        let mut single_rows = Vec::new();
        for p in &pts {
            if let (Some(b), Some(t)) = (p.decode_batch, p.decode_step_s)
                && let Some(x) = decode_terms(&p.limits, &p.shape, b, p.decode_context)
            {
                decode_rows.push((x.to_vec(), t));
                single_rows.push((vec![(x[0] + x[1]).max(x[2])], t));
            }
        }
        let mut prefill_rows = Vec::new();
        for p in &pts {
            if let Some(t) = p.prefill_token_s
                && let Some(x) = prefill_terms(&p.limits, &p.shape, p.attended)
            {
                prefill_rows.push((x.to_vec(), t));
            }
        }
        if decode_rows.is_empty() || prefill_rows.is_empty() {
            return None;
        }
        // A fixed cost per step cannot be told from the weights' term when every
        // point ran the same model (both are then constant); the weights' term is the
        // one that transfers to other models, so it is kept and the fixed cost left
        // out.
        let sizes: std::collections::BTreeSet<u64> =
            pts.iter().map(|p| p.shape.shared_weight_bytes).collect();
        if sizes.len() < 2 {
            for (x, _) in &mut decode_rows {
                x.truncate(3);
            }
        }
        let decode = if decode_rows.len() >= 4 {
            let mut k = nnls_relative(&decode_rows)?;
            k.resize(4, 0.0);
            DecodeFit {
                weight_read_factor: k[0],
                kv_read_factor: k[1],
                compute_factor: k[2],
                step_overhead_s: k[3],
                single_factor: false,
            }
        } else {
            let k = nnls_relative(&single_rows)?;
            DecodeFit {
                weight_read_factor: k[0],
                kv_read_factor: k[0],
                compute_factor: k[0],
                step_overhead_s: 0.0,
                single_factor: true,
            }
        };
        let prefill = if prefill_rows.len() >= 2 {
            let k = nnls_relative(&prefill_rows)?;
            PrefillFit {
                matrix_factor: k[0],
                attention_factor: k[1],
            }
        } else {
            let one: Vec<_> = prefill_rows
                .iter()
                .map(|(x, t)| (vec![x[0] + x[1]], *t))
                .collect();
            let k = nnls_relative(&one)?;
            PrefillFit {
                matrix_factor: k[0],
                attention_factor: k[0],
            }
        };
        let decode_err = median(
            pts.iter()
                .filter_map(|p| {
                    let t = p.decode_step_s?;
                    let m =
                        decode.step_s(&p.limits, &p.shape, p.decode_batch?, p.decode_context)?;
                    Some((m / t - 1.0).abs())
                })
                .collect(),
        );
        let prefill_err = median(
            pts.iter()
                .filter_map(|p| {
                    let t = p.prefill_token_s?;
                    let m = prefill.token_s(&p.limits, &p.shape, p.attended)?;
                    Some((m / t - 1.0).abs())
                })
                .collect(),
        );
        let mut devices: Vec<String> = pts.iter().map(|p| p.limits.name.clone()).collect();
        devices.sort();
        devices.dedup();
        let mut runs: Vec<String> = pts.iter().map(|p| p.run.clone()).collect();
        runs.sort();
        runs.dedup();
        Some(Self {
            class,
            decode,
            prefill,
            source: CalibrationSource {
                calibrated: true,
                points: pts.len(),
                devices,
                runs,
                default_source: None,
                decode_fit_error: decode_err,
                prefill_fit_error: prefill_err,
            },
        })
    }
}

pub use crate::stats::median;

/// Non-negative least squares on relative errors: the `k >= 0` minimising
/// `sum ((x . k - t) / t)^2` over `rows` of `(x, t)`. Exact for the few factors
/// here: every subset of free factors is solved unconstrained and the best
/// non-negative solution kept (2^n subsets, n <= 4).
pub fn nnls_relative(rows: &[(Vec<f64>, f64)]) -> Option<Vec<f64>> {
    let n = rows.first()?.0.len();
    let scaled: Vec<(Vec<f64>, f64)> = rows
        .iter()
        .filter(|(x, t)| {
            *t > 0.0 && t.is_finite() && x.len() == n && x.iter().all(|v| v.is_finite())
        })
        .map(|(x, t)| (x.iter().map(|v| v / t).collect(), 1.0))
        .collect();
    if scaled.is_empty() {
        return None;
    }
    let mut best: Option<(f64, Vec<f64>)> = None;
    for mask in 1u32..(1 << n) {
        let free: Vec<usize> = (0..n).filter(|i| mask & (1 << i) != 0).collect();
        let Some(sol) = least_squares(&scaled, &free) else {
            continue;
        };
        if sol.iter().any(|v| *v < 0.0) {
            continue;
        }
        let mut k = vec![0.0; n];
        for (i, v) in free.iter().zip(&sol) {
            k[*i] = *v;
        }
        let r: f64 = scaled
            .iter()
            .map(|(x, t)| {
                let m: f64 = x.iter().zip(&k).map(|(a, b)| a * b).sum();
                (m - t).powi(2)
            })
            .sum();
        if best.as_ref().is_none_or(|(b, _)| r < *b - 1e-15) {
            best = Some((r, k));
        }
    }
    best.map(|(_, k)| k)
}

/// Unconstrained least squares over the columns `free` (normal equations, Gaussian
/// elimination with partial pivoting); `None` when singular.
fn least_squares(rows: &[(Vec<f64>, f64)], free: &[usize]) -> Option<Vec<f64>> {
    let m = free.len();
    let mut a = vec![vec![0.0; m + 1]; m];
    for (x, t) in rows {
        for (i, &ci) in free.iter().enumerate() {
            for (j, &cj) in free.iter().enumerate() {
                a[i][j] += x[ci] * x[cj];
            }
            a[i][m] += x[ci] * t;
        }
    }
    let scale = a
        .iter()
        .map(|r| r[..m].iter().fold(0.0f64, |s, v| s.max(v.abs())))
        .fold(0.0, f64::max);
    for col in 0..m {
        let piv = (col..m).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[piv][col].abs() <= scale * 1e-12 {
            return None;
        }
        a.swap(col, piv);
        let pivot_row = a[col].clone();
        for (r, row) in a.iter_mut().enumerate() {
            if r != col {
                let f = row[col] / pivot_row[col];
                for (v, p) in row.iter_mut().zip(&pivot_row).skip(col) {
                    *v -= f * p;
                }
            }
        }
    }
    Some((0..m).map(|i| a[i][m] / a[i][i]).collect())
}

/// Experts a decode step touches (re-exported for the planner's memory terms).
pub fn touched(shape: &ModelShape, batch: f64) -> f64 {
    experts_touched(shape.experts, shape.experts_per_token, batch)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn nnls_recovers_non_negative_factors_and_clamps_the_rest() {
        // t = 2 x0 + 0.5 x2 exactly.
        let rows: Vec<(Vec<f64>, f64)> = [
            (1.0, 3.0, 1.0),
            (2.0, 1.0, 4.0),
            (0.5, 2.0, 8.0),
            (3.0, 0.1, 0.2),
        ]
        .iter()
        .map(|&(a, b, c)| (vec![a, b, c], 2.0 * a + 0.5 * c))
        .collect();
        let k = nnls_relative(&rows).unwrap();
        assert!(
            (k[0] - 2.0).abs() < 1e-9 && k[1].abs() < 1e-9 && (k[2] - 0.5).abs() < 1e-9,
            "{k:?}"
        );
        // A negative truth is clamped to 0, never returned.
        let rows: Vec<_> = [(1.0f64, 1.0f64), (2.0, 1.0), (3.0, 1.0)]
            .iter()
            .map(|&(a, b)| (vec![a, b], (a - 0.5 * b).max(0.1)))
            .collect();
        assert!(nnls_relative(&rows).unwrap().iter().all(|v| *v >= 0.0));
        assert!(nnls_relative(&[]).is_none());
    }

    proptest! {
        #[test]
        fn nnls_is_exact_on_noiseless_non_negative_data(
            k in proptest::collection::vec(0.0f64..5.0, 3),
            xs in proptest::collection::vec(proptest::collection::vec(0.1f64..10.0, 3), 6..12),
        ) {
            let rows: Vec<_> = xs.iter().map(|x| {
                let t: f64 = x.iter().zip(&k).map(|(a, b)| a * b).sum::<f64>() + 1e-9;
                (x.clone(), t)
            }).collect();
            let got = nnls_relative(&rows).unwrap();
            for (x, t) in &rows {
                let m: f64 = x.iter().zip(&got).map(|(a, b)| a * b).sum();
                prop_assert!((m / t - 1.0).abs() < 1e-6, "{got:?} vs {k:?}");
            }
        }

        #[test]
        fn the_median_lies_between_the_extremes(v in proptest::collection::vec(-1e6f64..1e6, 1..50)) {
            let m = median(v.clone()).unwrap();
            let lo = v.iter().cloned().fold(f64::INFINITY, f64::min);
            let hi = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            prop_assert!(m >= lo && m <= hi);
        }
    }
}
