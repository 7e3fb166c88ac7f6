//! Roofline maths: what a model's decode and prefill can reach on a device whose
//! limits were measured, and what fraction of that a load point achieved.
//!
//! A decode step of `B` sequences at mean context `C` reads the shared weights once,
//! each expert the batch touches once, and every sequence's KV cache:
//! `bytes = shared + moe_layers x expert_bytes x touched(B) + B x C x kv_bytes`, and
//! computes `B x (matrix + head + attention x C)` operations. Its ceiling is
//! `B / max(bytes / read_bandwidth, ops / matmul_throughput)` tokens per second.
//! A prompt token computes `matrix + attention x A` operations, attending over `A`
//! positions on average (`P / 2` for prompts of `P` tokens; `P - C / 2` when only the
//! last `C` were computed, after a prefix-cache hit; the output head runs only where a
//! token is sampled); its ceiling is `matmul_throughput / ops`. Both ceilings are upper
//! bounds: a ratio above 1 means the limits were not reached by the model the formula
//! assumes (a cache-resident model, uneven expert use), and a result says so.
//!
//! Expected experts touched by `B` tokens each choosing `k` of `E`:
//! `E x (1 - (1 - k/E)^B)` (independent uniform choices).

use crate::report::{
    Bound, DeviceLimits, ModelShape, ResultEntry, RooflineProjection, RooflineStats,
};

/// Expected distinct experts that `batch` tokens, each choosing `top_k` of
/// `experts`, touch.
pub fn experts_touched(experts: u32, top_k: u32, batch: f64) -> f64 {
    if experts == 0 {
        return 0.0;
    }
    let e = f64::from(experts);
    let p = (f64::from(top_k) / e).min(1.0);
    e * (1.0 - (1.0 - p).powf(batch.max(0.0)))
}

/// A decode ceiling at one batch and context.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DecodeCeiling {
    /// Bytes read per decode token.
    pub bytes_per_token: f64,
    /// The most decode tokens per second.
    pub tokens_per_s: f64,
    /// Which limit sets it.
    pub bound: Bound,
}

/// The matrix-multiply throughput of `shape`'s precision, operations per second.
fn flop_per_s(limits: &DeviceLimits, shape: &ModelShape) -> Option<f64> {
    let g = *limits.matmul_gflop_per_s.get(&shape.precision)?;
    (g.is_finite() && g > 0.0).then_some(g * 1e9)
}

/// Bytes one decode step of `batch` sequences at mean context `context` reads.
pub fn decode_step_bytes(shape: &ModelShape, batch: f64, context: f64) -> f64 {
    let experts = experts_touched(shape.experts, shape.experts_per_token, batch);
    shape.shared_weight_bytes as f64
        + f64::from(shape.moe_layers) * shape.expert_weight_bytes as f64 * experts
        + batch * context * shape.kv_bytes_per_token as f64
}

/// The decode ceiling of `shape` on `limits` at `batch` sequences per step and mean
/// context `context`; `None` when a limit is missing or the batch is empty.
pub fn decode_ceiling(
    limits: &DeviceLimits,
    shape: &ModelShape,
    batch: f64,
    context: f64,
) -> Option<DecodeCeiling> {
    let bw = limits.read_gb_per_s * 1e9;
    let ops = flop_per_s(limits, shape)?;
    if !(batch.is_finite() && batch > 0.0 && bw.is_finite() && bw > 0.0) {
        return None;
    }
    let bytes = decode_step_bytes(shape, batch, context.max(0.0));
    let work = batch
        * (shape.matrix_flop_per_token
            + shape.head_flop_per_token
            + shape.attention_flop_per_position * context.max(0.0));
    let (t_bw, t_ops) = (bytes / bw, work / ops);
    Some(DecodeCeiling {
        bytes_per_token: bytes / batch,
        tokens_per_s: batch / t_bw.max(t_ops),
        bound: if t_bw >= t_ops {
            Bound::Bandwidth
        } else {
            Bound::Compute
        },
    })
}

/// Prompt tokens per second `limits` allow for `shape` at mean prompt length
/// `prompt` (each prompt token attends over half the prompt on average).
pub fn prefill_ceiling(limits: &DeviceLimits, shape: &ModelShape, prompt: f64) -> Option<f64> {
    prefill_ceiling_attending(limits, shape, prompt.max(0.0) / 2.0)
}

/// Prompt tokens per second when each attends over `attended` positions on average.
pub fn prefill_ceiling_attending(
    limits: &DeviceLimits,
    shape: &ModelShape,
    attended: f64,
) -> Option<f64> {
    let ops = flop_per_s(limits, shape)?;
    let per_token =
        shape.matrix_flop_per_token + shape.attention_flop_per_position * attended.max(0.0);
    (per_token > 0.0).then(|| ops / per_token)
}

/// `shape` on `limits` at `batch` sequences and `context` tokens; `None` when a limit
/// is missing.
pub fn project(
    limits: &DeviceLimits,
    shape: &ModelShape,
    batch: u32,
    context: u32,
) -> Option<RooflineProjection> {
    let d = decode_ceiling(limits, shape, f64::from(batch), f64::from(context))?;
    Some(RooflineProjection {
        shape: shape.clone(),
        batch,
        context_tokens: context,
        bytes_per_decode_token: d.bytes_per_token,
        decode_ceiling_tokens_per_s: d.tokens_per_s,
        decode_bound: d.bound,
        prefill_ceiling_tokens_per_s: prefill_ceiling(limits, shape, f64::from(context))?,
    })
}

fn ratio(a: Option<f64>, b: f64) -> Option<f64> {
    a.filter(|_| b > 0.0).map(|a| a / b)
}

/// Judges a local result (its engine counters, tokens and requests) against
/// `limits`; `None` when it has no engine figures, no successful request, or a limit
/// is missing.
///
/// Decode is judged on the steps of decode tokens only: their tokens per second of
/// their time, at their mean batch (a mixed step's time cannot be split between its
/// prompt and decode tokens honestly). Prefill is judged on every prompt token
/// computed per second of prefill time (mixed steps split by token share, which favours
/// prefill slightly).
pub fn judge(
    limits: &DeviceLimits,
    shape: &ModelShape,
    entry: &ResultEntry,
) -> Option<RooflineStats> {
    let engine = entry.engine.as_ref()?;
    if entry.requests.ok == 0 {
        return None;
    }
    // Token totals count every sent request (failed ones' partial output too).
    let sent = entry.requests.sent.max(1) as f64;
    let input_mean = entry.tokens.input as f64 / sent;
    let output_mean = entry.tokens.output as f64 / sent;
    let context = input_mean + output_mean / 2.0;
    let per_s = |n: f64, s: Option<f64>| match s {
        Some(s) if s > 0.0 && n > 0.0 => Some(n / s),
        _ => None,
    };
    let (decode_steps, decode_tokens) = (
        engine.decode_steps.unwrap_or(0),
        engine.decode_step_tokens.unwrap_or(0),
    );
    let batch = if decode_steps > 0 {
        decode_tokens as f64 / decode_steps as f64
    } else {
        engine.mean_seqs_per_step.max(1.0)
    };
    let decode = decode_ceiling(limits, shape, batch, context)?;
    let decode_tokens_per_s = per_s(decode_tokens as f64, engine.decode_step_busy_s);
    // Prompt tokens computed after a prefix-cache hit still attend over the cached
    // prefix: positions attended per computed token = prompt - computed / 2.
    let ok = entry.requests.ok as f64;
    let attended = (engine.prompt_tokens as f64 - engine.prompt_tokens_computed as f64 / 2.0) / ok;
    let prefill_ceiling = prefill_ceiling_attending(limits, shape, attended.max(0.0))?;
    let prefill_tokens_per_s = per_s(engine.prompt_tokens_computed as f64, engine.prefill_busy_s);
    Some(RooflineStats {
        limits: limits.clone(),
        shape: shape.clone(),
        decode_batch: batch,
        decode_context_tokens: context,
        bytes_per_decode_token: decode.bytes_per_token,
        decode_ceiling_tokens_per_s: decode.tokens_per_s,
        decode_bound: decode.bound,
        decode_tokens_per_s,
        decode_ratio: ratio(decode_tokens_per_s, decode.tokens_per_s),
        prefill_ceiling_tokens_per_s: prefill_ceiling,
        prefill_tokens_per_s,
        prefill_ratio: ratio(prefill_tokens_per_s, prefill_ceiling),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn limits(read_gb: f64, gflop: f64) -> DeviceLimits {
        DeviceLimits {
            device: "cuda:0".into(),
            name: "test".into(),
            threads: None,
            buffer_bytes: 1 << 30,
            copy_gb_per_s: read_gb,
            read_gb_per_s: read_gb,
            triad_gb_per_s: None,
            matmul_gflop_per_s: BTreeMap::from([("bf16".into(), gflop)]),
            matmul_shape: "2048x4096x4096".into(),
            matmul_engine: "test".into(),
        }
    }

    /// Llama 3 8B in bf16, roughly: 15 GB of matrices read per step, 128 KiB of KV
    /// per token at f16.
    pub(crate) fn llama(precision: &str) -> ModelShape {
        ModelShape {
            model: "llama3-8b".into(),
            precision: precision.into(),
            shared_weight_bytes: 15_000_000_000,
            expert_weight_bytes: 0,
            experts: 0,
            experts_per_token: 0,
            moe_layers: 0,
            kv_bytes_per_token: 131_072,
            matrix_flop_per_token: 2.0 * 6.98e9,
            head_flop_per_token: 2.0 * 0.525e9,
            attention_flop_per_position: 4.0 * 32.0 * 32.0 * 128.0,
        }
    }

    #[test]
    fn batch_one_decode_is_bandwidth_over_bytes_per_token() {
        let c = decode_ceiling(&limits(3000.0, 790_000.0), &llama("bf16"), 1.0, 0.0).unwrap();
        assert_eq!(c.bound, Bound::Bandwidth);
        assert!((c.tokens_per_s - 200.0).abs() < 1e-9, "{c:?}");
        assert!((c.bytes_per_token - 15e9).abs() < 1e-3);
        // The KV cache adds its bytes: 8K context adds 1 GiB per token.
        let long = decode_ceiling(&limits(3000.0, 790_000.0), &llama("bf16"), 1.0, 8192.0).unwrap();
        assert!((long.bytes_per_token - (15e9 + 8192.0 * 131_072.0)).abs() < 1.0);
    }

    #[test]
    fn a_large_batch_turns_decode_compute_bound() {
        let l = limits(3000.0, 790_000.0);
        let small = decode_ceiling(&l, &llama("bf16"), 8.0, 512.0).unwrap();
        assert_eq!(small.bound, Bound::Bandwidth);
        let big = decode_ceiling(&l, &llama("bf16"), 4096.0, 0.0).unwrap();
        assert_eq!(big.bound, Bound::Compute);
        let ops = 2.0 * (6.98e9 + 0.525e9);
        assert!((big.tokens_per_s - 790e12 / ops).abs() / big.tokens_per_s < 1e-12);
    }

    #[test]
    fn experts_touched_follows_the_expectation() {
        assert_eq!(experts_touched(0, 0, 8.0), 0.0);
        assert!((experts_touched(128, 8, 1.0) - 8.0).abs() < 1e-9);
        // Mixtral touches nearly all 8 experts by batch 8; Qwen3-30B-A3B not by 32.
        assert!(experts_touched(8, 2, 8.0) > 7.19);
        let q = experts_touched(128, 8, 32.0);
        assert!(q > 100.0 && q < 115.0, "{q}");
        assert!(experts_touched(128, 8, 1e6) <= 128.0);
    }

    #[test]
    fn moe_bytes_grow_with_the_experts_the_batch_touches() {
        let mut s = llama("bf16");
        s.shared_weight_bytes = 1_000;
        s.expert_weight_bytes = 10;
        s.experts = 128;
        s.experts_per_token = 8;
        s.moe_layers = 48;
        s.kv_bytes_per_token = 0;
        let one = decode_step_bytes(&s, 1.0, 0.0);
        assert!((one - (1_000.0 + 48.0 * 10.0 * 8.0)).abs() < 1e-9);
        assert!(decode_step_bytes(&s, 32.0, 0.0) < 1_000.0 + 48.0 * 10.0 * 8.0 * 32.0);
    }

    #[test]
    fn prefill_is_throughput_over_operations_per_prompt_token() {
        let l = limits(3000.0, 790_000.0);
        let p = prefill_ceiling(&l, &llama("bf16"), 0.0).unwrap();
        assert!((p - 790e12 / (2.0 * 6.98e9)).abs() / p < 1e-12);
        assert!(prefill_ceiling(&l, &llama("bf16"), 4096.0).unwrap() < p);
        // A precision the limits did not measure has no ceiling.
        assert!(prefill_ceiling(&l, &llama("q4_0"), 0.0).is_none());
        assert!(decode_ceiling(&l, &llama("q4_0"), 1.0, 0.0).is_none());
    }
}
