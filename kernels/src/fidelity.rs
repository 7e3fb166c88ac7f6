//! Teacher-forced fidelity of one model against a reference: both are fed the same
//! tokens, one window at a time from a fresh context, and at every position their
//! distributions over the next token are compared (KL divergence of the
//! configuration from the reference, whether their most likely tokens agree) and
//! scored against the token that follows (negative log-likelihood, for perplexity).
//! A window is one prefill step whose logits are read after every token (the
//! engine's prompt path; its decode path gives the same logits within 1e-3, a test
//! of `kernels/tests/runtime.rs`). Softmax and sums in f64.

use crate::EngineError;
use crate::ops::DeviceOps;
use crate::runtime::{Model, StepSeq};

/// Logits after every token of `tokens`, fed as one prompt to a cache of its own:
/// one row of the vocabulary's size per token.
pub fn window_logits<D: DeviceOps>(
    model: &Model<D>,
    tokens: &[u32],
) -> Result<Vec<Vec<f32>>, EngineError> {
    let block = 16;
    let layout = model.kv_layout(tokens.len().div_ceil(block), block);
    let mut kv = model.ops.kv_alloc(layout)?;
    let blocks: Vec<u32> = (0..layout.blocks as u32).collect();
    let flat = model.step_logits_every_row(
        &mut kv,
        &layout,
        &[StepSeq {
            tokens,
            start: 0,
            blocks: &blocks,
            sample: true,
        }],
    )?;
    let vocab = flat.len() / tokens.len().max(1);
    Ok(flat
        .chunks_exact(vocab.max(1))
        .map(<[f32]>::to_vec)
        .collect())
}

/// Per-position scores over every window.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scores {
    /// KL(reference || candidate) at each scored position, nats.
    pub kl_nats: Vec<f64>,
    /// Positions whose most likely next token is the same for both.
    pub top1_agree: u64,
    /// Sum over positions of the reference's negative log-likelihood of the next
    /// token, nats.
    pub reference_nll_nats: f64,
    /// The same, candidate.
    pub candidate_nll_nats: f64,
}

/// `ln softmax(logits)` in f64, and its argmax (the first on ties).
fn log_softmax(logits: &[f32]) -> (Vec<f64>, usize) {
    let (mut arg, mut max) = (0, f64::NEG_INFINITY);
    for (i, &x) in logits.iter().enumerate() {
        if f64::from(x) > max {
            (arg, max) = (i, f64::from(x));
        }
    }
    let sum: f64 = logits.iter().map(|&x| (f64::from(x) - max).exp()).sum();
    let log_z = max + sum.ln();
    (logits.iter().map(|&x| f64::from(x) - log_z).collect(), arg)
}

/// Scores one position from both models' logits and the token that follows; an
/// infinite or NaN figure (a logit that overflowed) is an error, never a score.
fn score(
    reference: &[f32],
    candidate: &[f32],
    next: u32,
    into: &mut Scores,
) -> Result<(), EngineError> {
    let (lp, ap) = log_softmax(reference);
    let (lq, aq) = log_softmax(candidate);
    let kl: f64 = lp
        .iter()
        .zip(&lq)
        .map(|(&p, &q)| {
            if p == f64::NEG_INFINITY {
                0.0
            } else {
                p.exp() * (p - q)
            }
        })
        .sum();
    let (nll_p, nll_q) = (-lp[next as usize], -lq[next as usize]);
    if !(kl.is_finite() && nll_p.is_finite() && nll_q.is_finite()) {
        return Err(EngineError::Tensor(format!(
            "fidelity: a non-finite score at a position (KL {kl}, NLL {nll_p} and {nll_q}): a logit is infinite or NaN"
        )));
    }
    // Rounding can leave a sum of -1e-17 for identical distributions: KL is >= 0.
    into.kl_nats.push(kl.max(0.0));
    into.top1_agree += u64::from(ap == aq);
    into.reference_nll_nats += nll_p;
    into.candidate_nll_nats += nll_q;
    Ok(())
}

/// Scores `candidate` against `reference` over `windows` (token ids, each of at least
/// two tokens; window of n tokens gives n - 1 positions).
pub fn score_windows<D: DeviceOps>(
    reference: &Model<D>,
    candidate: &Model<D>,
    windows: &[Vec<u32>],
) -> Result<Scores, EngineError> {
    if windows.is_empty() {
        return Err(EngineError::Tensor(
            "fidelity: no evaluation window to score".into(),
        ));
    }
    let mut s = Scores::default();
    for w in windows {
        if w.len() < 2 {
            return Err(EngineError::Tensor(format!(
                "an evaluation window of {} tokens has no position to score",
                w.len()
            )));
        }
        let r = window_logits(reference, w)?;
        let c = window_logits(candidate, w)?;
        // Row i is the distribution after w[..=i]: it predicts w[i + 1].
        for (i, &next) in w[1..].iter().enumerate() {
            score(&r[i], &c[i], next, &mut s)?;
        }
    }
    Ok(s)
}

impl Scores {
    /// Positions scored.
    pub fn positions(&self) -> u64 {
        self.kl_nats.len() as u64
    }

    /// Mean KL, nats.
    pub fn kl_mean(&self) -> f64 {
        self.kl_nats.iter().sum::<f64>() / self.kl_nats.len().max(1) as f64
    }

    /// The `q`-quantile of the per-position KL (nearest rank), nats.
    pub fn kl_quantile(&self, q: f64) -> f64 {
        let mut v = self.kl_nats.clone();
        v.sort_by(f64::total_cmp);
        if v.is_empty() {
            return 0.0;
        }
        let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
        v[rank - 1]
    }

    /// Share of positions whose most likely tokens agree, 0-1.
    pub fn top1_agreement(&self) -> f64 {
        self.top1_agree as f64 / self.positions().max(1) as f64
    }

    /// The reference's perplexity over the positions.
    pub fn reference_perplexity(&self) -> f64 {
        (self.reference_nll_nats / self.positions().max(1) as f64).exp()
    }

    /// The candidate's perplexity over the positions.
    pub fn candidate_perplexity(&self) -> f64 {
        (self.candidate_nll_nats / self.positions().max(1) as f64).exp()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn identical_distributions_score_zero_and_agree() {
        let mut s = Scores::default();
        let l = [1.0f32, 3.0, -2.0, 0.5];
        score(&l, &l, 1, &mut s).unwrap();
        assert_eq!(s.kl_nats, [0.0]);
        assert_eq!(s.top1_agree, 1);
        assert!((s.reference_perplexity() - s.candidate_perplexity()).abs() < 1e-12);
    }

    #[test]
    fn kl_matches_the_closed_form_of_two_coins() {
        // p = (0.5, 0.5), q = (0.9, 0.1): KL = 0.5 ln(0.5/0.9) + 0.5 ln(0.5/0.1).
        let mut s = Scores::default();
        let q = [(0.9f64).ln() as f32, (0.1f64).ln() as f32];
        score(&[0.0, 0.0], &q, 0, &mut s).unwrap();
        let want = 0.5 * (0.5f64 / 0.9).ln() + 0.5 * (0.5f64 / 0.1).ln();
        assert!(
            (s.kl_nats[0] - want).abs() < 1e-6,
            "{} vs {want}",
            s.kl_nats[0]
        );
        assert_eq!(
            s.top1_agree, 1,
            "p ties (the first wins), q picks 0: they agree"
        );
        // NLL of token 0: ln 2 for p, -ln 0.9 for q.
        assert!((s.reference_nll_nats - 2f64.ln()).abs() < 1e-9);
        assert!((s.candidate_nll_nats + 0.9f64.ln()).abs() < 1e-6);
    }

    #[test]
    fn a_non_finite_logit_is_an_error_not_a_perfect_score() {
        let mut s = Scores::default();
        let e = score(&[0.0, f32::NAN], &[0.0, 1.0], 0, &mut s).unwrap_err();
        assert!(e.to_string().contains("non-finite"), "{e}");
        assert!(s.kl_nats.is_empty());
    }

    #[test]
    fn quantiles_are_nearest_rank() {
        let s = Scores {
            kl_nats: (1..=200).map(f64::from).collect(),
            ..Scores::default()
        };
        assert_eq!(s.kl_quantile(0.99), 198.0);
        assert_eq!(s.kl_quantile(1.0), 200.0);
        assert_eq!(s.kl_mean(), 100.5);
    }
}
