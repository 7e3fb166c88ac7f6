//! A load point, projected: what a continuously batching engine with chunked prefill
//! gives at `c` sessions in flight (a closed loop), from a device's calibrated step
//! times.
//!
//! Steady state, with `n = min(c, max_batch)` sequences in the engine, prompts of `P`
//! tokens of which `P_c` are computed, replies of `O` tokens, and `E` the time a
//! request spends in the engine:
//! - requests finish at `lambda = n / E`; prompt work takes the share
//!   `rho = lambda x P_c x t_prompt` of the engine's time (below 1: `E > n x P_c x t`);
//! - `B = n x (E - TTFT) / E` sequences decode per step, each step taking `T(B)`;
//! - TPOT `= T(B) / (1 - rho)`: decode steps are slowed by the prompt chunks
//!   interleaved with them;
//! - TTFT `= (P_c x t_prompt + ceil(P_c / chunk) x T(B x (n-1)/n)) / (1 - rho x (n-1)/n)`:
//!   the prompt's own chunks, each step also carrying the other sequences' decode
//!   tokens, slowed by the other requests' prompts;
//! - `E = TTFT + (O - 1) x TPOT`, solved by bisection on `E` (the excess
//!   `TTFT + (O-1) TPOT - E` falls from +inf at `E = n x P_c x t` to below 0); sessions
//!   beyond `max_batch` wait in the engine's queue (`c / lambda - E`, Little's law). A
//!   prompt served whole from the prefix cache still takes one step to its first token.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::fit::Calibration;
use crate::report::{DeviceLimits, ModelShape};

/// What the engine schedules with.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EngineLimits {
    /// Most sequences per step.
    pub max_batch: u32,
    /// Most prompt tokens of one sequence per step.
    pub prefill_chunk: u32,
}

/// The requests of a load point, as means.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestShape {
    /// Prompt tokens per request.
    pub input_tokens: f64,
    /// Of those, the share served from the prefix cache (0-1).
    pub cached_fraction: f64,
    /// Output tokens per request.
    pub output_tokens: f64,
}

/// A device as the planner runs it: limits (measured or from a spec), the model as
/// it holds it, and the calibration of its class. With tensor parallelism the limits
/// are the group's and `allreduce_s_per_token` adds the interconnect's time.
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceModel<'a> {
    /// Bandwidth and throughput.
    pub limits: &'a DeviceLimits,
    /// The model.
    pub shape: &'a ModelShape,
    /// Step-time factors.
    pub calibration: &'a Calibration,
    /// Seconds of interconnect per sequence per decode step (0 on one device).
    pub allreduce_s_per_seq: f64,
    /// Fixed interconnect seconds per step (link latency x collectives).
    pub allreduce_s_per_step: f64,
}

impl DeviceModel<'_> {
    /// Seconds of a decode step of `batch` sequences at mean context `context`.
    pub fn step_s(&self, batch: f64, context: f64) -> Option<f64> {
        if batch <= 0.0 {
            return Some(0.0);
        }
        let t = self
            .calibration
            .decode
            .step_s(self.limits, self.shape, batch, context)?;
        Some(t + self.allreduce_s_per_step + self.allreduce_s_per_seq * batch)
    }

    /// Seconds per computed prompt token attending over `attended` positions.
    pub fn prompt_token_s(&self, attended: f64) -> Option<f64> {
        let t = self
            .calibration
            .prefill
            .token_s(self.limits, self.shape, attended)?;
        // A prompt token takes part in the same collectives as a decode token.
        Some(t + self.allreduce_s_per_seq)
    }
}

/// A projected load point.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServePoint {
    /// Sessions in flight.
    pub concurrency: u32,
    /// Mean sequences per decode step.
    pub decode_batch: f64,
    /// Time to first token (engine queue included), s.
    pub ttft_s: f64,
    /// Time per output token after the first, s.
    pub tpot_s: f64,
    /// Request time from submission to the last token, s.
    pub e2e_s: f64,
    /// Requests completed per second.
    pub requests_per_s: f64,
    /// Output tokens per second, all sequences.
    pub output_tokens_per_s: f64,
    /// Output tokens per second per session (`1 / tpot_s`).
    pub output_tokens_per_s_per_user: f64,
    /// Decode tokens per second of decode-only steps (`B / T(B)`, what a measured
    /// result's `roofline.decode_tokens_per_s` is).
    pub decode_step_tokens_per_s: f64,
    /// Share of engine time spent on prompt tokens.
    pub prefill_share: f64,
    /// Of `ttft_s`, the wait in the engine's queue (sessions beyond `max_batch`), s.
    pub engine_queue_s: f64,
}

/// The steady state at `concurrency` sessions; `None` when a limit the device model
/// needs is missing.
pub fn serve(
    dev: &DeviceModel<'_>,
    req: &RequestShape,
    engine: &EngineLimits,
    concurrency: u32,
) -> Option<ServePoint> {
    let c = f64::from(concurrency.max(1));
    let n = c.min(f64::from(engine.max_batch.max(1)));
    let p = req.input_tokens.max(0.0);
    let computed = (p * (1.0 - req.cached_fraction.clamp(0.0, 1.0))).max(0.0);
    let o = req.output_tokens.max(1.0);
    let attended = (p - computed / 2.0).max(0.0);
    let context = p + o / 2.0;
    let t_prompt = dev.prompt_token_s(attended)?;
    let chunks = (computed / f64::from(engine.prefill_chunk.max(1))).ceil();
    let prompt_s = computed * t_prompt;
    let others = (n - 1.0) / n;
    // Given the time E a request spends in the engine: its TTFT, TPOT and the decode
    // batch (TTFT and the batch depend on each other: a few rounds settle them).
    let state = |e: f64| -> Option<(f64, f64, f64)> {
        let rho = (n * prompt_s / e).min(1.0);
        let mut ttft = prompt_s;
        let mut b = n;
        for _ in 0..8 {
            b = (n * (e - ttft).max(0.0) / e).clamp(1.0_f64.min(n), n);
            // A prompt served whole from the cache still takes one step.
            let own = if computed > 0.0 {
                prompt_s + chunks * dev.step_s(b * others, context)?
            } else {
                dev.step_s(b * others + 1.0, context)?
            };
            ttft = own / (1.0 - rho * others).max(1e-12);
        }
        let tpot = dev.step_s(b, context)? / (1.0 - rho).max(1e-12);
        Some((ttft, tpot, b))
    };
    let excess = |e: f64| -> Option<f64> {
        let (ttft, tpot, _) = state(e)?;
        Some(ttft + (o - 1.0) * tpot - e)
    };
    // E > n x prompt_s (the prompts' share of engine time stays below 1); the excess
    // falls from +inf there to below 0 for a large E: bisect between.
    let lo0 = (n * prompt_s).max(1e-12);
    let mut hi = lo0 * 2.0 + o * dev.step_s(n, context)? * 2.0 + 1e-9;
    let mut grown = 0;
    while excess(hi)? > 0.0 {
        hi *= 2.0;
        grown += 1;
        if grown > 200 || !hi.is_finite() {
            return None;
        }
    }
    let mut lo = lo0;
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if excess(mid)? > 0.0 {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo <= 1e-12 * hi {
            break;
        }
    }
    let e2e = hi;
    let (ttft, tpot, b) = state(e2e)?;
    let lambda = n / e2e;
    let queue = (c / lambda - e2e).max(0.0);
    let step = dev.step_s(b, context)?;
    let point = ServePoint {
        concurrency: concurrency.max(1),
        decode_batch: b,
        ttft_s: ttft + queue,
        tpot_s: tpot,
        e2e_s: e2e + queue,
        requests_per_s: lambda,
        output_tokens_per_s: lambda * o,
        output_tokens_per_s_per_user: 1.0 / tpot,
        decode_step_tokens_per_s: b / step,
        prefill_share: (lambda * prompt_s).min(1.0),
        engine_queue_s: queue,
    };
    let finite = [
        point.ttft_s,
        point.tpot_s,
        point.e2e_s,
        point.requests_per_s,
        point.output_tokens_per_s_per_user,
        point.decode_step_tokens_per_s,
    ]
    .iter()
    .all(|v| v.is_finite());
    finite.then_some(point)
}

/// TTFT of a request of `input_tokens` prompt tokens arriving into the steady state
/// `at` (of requests shaped `req`): its own chunks at the same interference.
pub fn ttft_at_input(
    dev: &DeviceModel<'_>,
    req: &RequestShape,
    engine: &EngineLimits,
    at: &ServePoint,
    input_tokens: f64,
) -> Option<f64> {
    let n = f64::from(at.concurrency.min(engine.max_batch.max(1)));
    let computed = (input_tokens * (1.0 - req.cached_fraction.clamp(0.0, 1.0))).max(0.0);
    let attended = (input_tokens - computed / 2.0).max(0.0);
    let context = req.input_tokens + req.output_tokens / 2.0;
    let chunks = (computed / f64::from(engine.prefill_chunk.max(1))).ceil();
    let others = (n - 1.0) / n;
    let own = computed * dev.prompt_token_s(attended)?
        + chunks * dev.step_s(at.decode_batch * others, context)?;
    Some(own / (1.0 - at.prefill_share * others) + at.engine_queue_s)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeMap;

    use super::*;
    use crate::plan::fit::{CalibrationSource, DecodeFit, PrefillFit};
    use crate::plan::hardware::DeviceClass;

    pub(crate) fn limits() -> DeviceLimits {
        DeviceLimits {
            device: "cpu".into(),
            name: "t".into(),
            threads: Some(2),
            buffer_bytes: 0,
            copy_gb_per_s: 40.0,
            read_gb_per_s: 40.0,
            triad_gb_per_s: None,
            matmul_gflop_per_s: BTreeMap::from([("q4_1".into(), 100.0)]),
            matmul_shape: "x".into(),
            matmul_engine: "x".into(),
        }
    }

    pub(crate) fn shape() -> ModelShape {
        ModelShape {
            model: "m".into(),
            precision: "q4_1".into(),
            shared_weight_bytes: 80_000_000,
            expert_weight_bytes: 0,
            experts: 0,
            experts_per_token: 0,
            moe_layers: 0,
            kv_bytes_per_token: 46_080,
            matrix_flop_per_token: 2.0 * 1.0e8,
            head_flop_per_token: 2.0 * 2.8e7,
            attention_flop_per_position: 4.0 * 30.0 * 9.0 * 64.0,
        }
    }

    /// One device (no tensor parallelism) of `l`, `s` and `k`.
    fn device<'a>(l: &'a DeviceLimits, s: &'a ModelShape, k: &'a Calibration) -> DeviceModel<'a> {
        DeviceModel {
            limits: l,
            shape: s,
            calibration: k,
            allreduce_s_per_seq: 0.0,
            allreduce_s_per_step: 0.0,
        }
    }

    pub(crate) fn cal() -> Calibration {
        Calibration {
            class: DeviceClass::Cpu,
            decode: DecodeFit {
                weight_read_factor: 1.5,
                kv_read_factor: 2.0,
                compute_factor: 1.2,
                step_overhead_s: 0.001,
                single_factor: false,
            },
            prefill: PrefillFit {
                matrix_factor: 1.1,
                attention_factor: 3.0,
            },
            source: CalibrationSource {
                calibrated: true,
                points: 4,
                devices: vec![],
                runs: vec![],
                default_source: None,
                decode_fit_error: None,
                prefill_fit_error: None,
            },
        }
    }

    #[test]
    fn one_session_is_its_prompt_then_its_decode_steps() {
        let (l, s, k) = (limits(), shape(), cal());
        let dev = device(&l, &s, &k);
        let req = RequestShape {
            input_tokens: 512.0,
            cached_fraction: 0.0,
            output_tokens: 128.0,
        };
        let eng = EngineLimits {
            max_batch: 16,
            prefill_chunk: 256,
        };
        let p = serve(&dev, &req, &eng, 1).unwrap();
        let prompt = 512.0 * dev.prompt_token_s(256.0).unwrap();
        assert!((p.ttft_s - prompt).abs() / prompt < 1e-6, "{p:?}");
        let step = dev.step_s(1.0, 576.0).unwrap();
        let rho = prompt / p.e2e_s;
        assert!((p.tpot_s - step / (1.0 - rho)).abs() / p.tpot_s < 1e-6);
        assert!((p.e2e_s - (p.ttft_s + 127.0 * p.tpot_s)).abs() / p.e2e_s < 1e-6);
    }

    #[test]
    fn more_sessions_trade_latency_for_throughput_and_queue_past_the_batch() {
        let (l, s, k) = (limits(), shape(), cal());
        let dev = device(&l, &s, &k);
        let req = RequestShape {
            input_tokens: 256.0,
            cached_fraction: 0.5,
            output_tokens: 64.0,
        };
        let eng = EngineLimits {
            max_batch: 8,
            prefill_chunk: 256,
        };
        let pts: Vec<_> = [1, 2, 4, 8, 16]
            .iter()
            .map(|&c| serve(&dev, &req, &eng, c).unwrap())
            .collect();
        for w in pts.windows(2) {
            assert!(
                w[1].output_tokens_per_s >= w[0].output_tokens_per_s * 0.999,
                "{w:?}"
            );
            assert!(w[1].ttft_s >= w[0].ttft_s, "{w:?}");
        }
        // Past max_batch the throughput stays, the wait grows by Little's law.
        let (p8, p16) = (pts[3], pts[4]);
        assert!((p16.requests_per_s - p8.requests_per_s).abs() / p8.requests_per_s < 1e-6);
        assert!((p16.e2e_s - 16.0 / p16.requests_per_s).abs() / p16.e2e_s < 1e-6);
    }

    #[test]
    fn prompt_heavy_requests_never_beat_the_prefill_ceiling() {
        let (l, s, k) = (limits(), shape(), cal());
        let dev = device(&l, &s, &k);
        let eng = EngineLimits {
            max_batch: 64,
            prefill_chunk: 256,
        };
        for (o, c) in [(1.0, 64), (2.0, 32), (4.0, 64), (128.0, 64)] {
            let req = RequestShape {
                input_tokens: 2048.0,
                cached_fraction: 0.0,
                output_tokens: o,
            };
            let p = serve(&dev, &req, &eng, c).unwrap();
            let prompt_s = 2048.0 * dev.prompt_token_s(1024.0).unwrap();
            assert!(
                p.requests_per_s <= 1.0 / prompt_s * (1.0 + 1e-9),
                "{o} {c}: {p:?}"
            );
            assert!(p.prefill_share <= 1.0 && p.ttft_s.is_finite(), "{p:?}");
            assert!((p.e2e_s - (p.ttft_s + (o - 1.0) * p.tpot_s)).abs() / p.e2e_s < 1e-6);
        }
        // A prompt served whole from the cache still takes a step to its first token.
        let req = RequestShape {
            input_tokens: 512.0,
            cached_fraction: 1.0,
            output_tokens: 1.0,
        };
        let p = serve(&dev, &req, &eng, 1).unwrap();
        assert!(p.ttft_s > 0.0 && p.requests_per_s.is_finite(), "{p:?}");
    }
}
