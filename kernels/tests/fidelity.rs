//! Teacher-forced fidelity on the CPU engine: a model scored against itself gives KL
//! 0, top-1 agreement 1 and a perplexity ratio of 1; coarser formats of the same
//! weights lose more (q8_0 < q4_0), on synthetic tiny-dense weights and on the real
//! SmolLM2 GGUF (converted at load); a window scored in one pass gives the decode
//! path's logits; and a target's `fidelity` through the backend
//! loads the reference from the same weights.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use infermeter_kernels::backend::{LocalConfig, LocalCpuBackend};
use infermeter_kernels::convert::requantize;
use infermeter_kernels::cpu::CpuOps;
use infermeter_kernels::fidelity::{Scores, score_windows, window_logits};
use infermeter_kernels::format::Precision;
use infermeter_kernels::preset::{SMOLLM2_135M, preset};
use infermeter_kernels::runtime::{Model, teacher_forced_logits};
use infermeter_kernels::{default_model_dirs, weights};
use workloads::Backend;
use workloads::eval_text::eval_windows;

fn tiny(precision: Precision) -> Model<CpuOps> {
    let cfg = preset("tiny-dense").unwrap();
    Model::new(
        CpuOps::default(),
        cfg.clone(),
        weights::synthetic(cfg, precision, 11).unwrap(),
    )
    .unwrap()
}

fn smollm2(precision: Precision) -> Model<CpuOps> {
    let path = weights::find_gguf(&default_model_dirs(), &SMOLLM2_135M, None)
        .expect("SmolLM2-135M GGUF not found: run ci/setup.sh");
    let w = weights::load_gguf(&path, &SMOLLM2_135M).unwrap();
    Model::new(
        CpuOps::default(),
        SMOLLM2_135M.clone(),
        requantize(w, precision).unwrap(),
    )
    .unwrap()
}

fn check_self(s: &Scores) {
    assert!(s.kl_nats.iter().all(|&k| k == 0.0), "{:?}", s.kl_nats);
    assert_eq!(s.top1_agreement(), 1.0);
    assert_eq!(s.candidate_perplexity(), s.reference_perplexity());
}

#[test]
fn a_window_in_one_pass_gives_the_decode_path_logits() {
    let w = &eval_windows(24, 1)[0];
    for precision in [Precision::F32, Precision::Q4_0] {
        let m = tiny(precision);
        let one_pass = window_logits(&m, w).unwrap();
        let stepped = teacher_forced_logits(&m, &w[..1], &w[1..], 1).unwrap();
        assert_eq!(one_pass.len(), w.len());
        for (a, b) in one_pass.iter().zip(&stepped) {
            let worst = a
                .iter()
                .zip(b)
                .map(|(x, y)| (x - y).abs())
                .fold(0f32, f32::max);
            assert!(worst < 1e-3, "{precision}: {worst}");
        }
    }
}

#[test]
fn f32_against_f32_scores_kl_zero_and_full_agreement() {
    let windows = eval_windows(32, 2);
    let (a, b) = (tiny(Precision::F32), tiny(Precision::F32));
    let s = score_windows(&a, &b, &windows).unwrap();
    assert_eq!(s.positions(), 62);
    check_self(&s);
}

#[test]
fn coarser_formats_of_the_same_synthetic_weights_lose_more() {
    let windows = eval_windows(32, 2);
    let reference = tiny(Precision::F32);
    let q8 = score_windows(&reference, &tiny(Precision::Q8_0), &windows).unwrap();
    let q4 = score_windows(&reference, &tiny(Precision::Q4_0), &windows).unwrap();
    assert!(q8.kl_mean() > 0.0, "q8_0 rounds: {}", q8.kl_mean());
    assert!(
        q4.kl_mean() > 2.0 * q8.kl_mean(),
        "q4_0 {} vs q8_0 {}",
        q4.kl_mean(),
        q8.kl_mean()
    );
    assert!(q4.kl_quantile(0.99) >= q4.kl_mean());
}

#[test]
fn smollm2_converted_to_q4_0_loses_against_its_f32_expansion() {
    let windows = eval_windows(48, 1);
    let reference = smollm2(Precision::F32);
    check_self(&score_windows(&reference, &smollm2(Precision::F32), &windows).unwrap());
    let q8 = score_windows(&reference, &smollm2(Precision::Q8_0), &windows).unwrap();
    let q4 = score_windows(&reference, &smollm2(Precision::Q4_0), &windows).unwrap();
    assert!(q4.kl_mean() > q8.kl_mean() && q8.kl_mean() > 0.0);
    // A real model on English text: the reference predicts far better than chance
    // (49,152 tokens), and q8_0 keeps nearly every top-1 choice.
    assert!(reference_ppl(&q8) < 200.0, "{}", reference_ppl(&q8));
    assert!(q8.top1_agreement() > 0.9, "{}", q8.top1_agreement());
    assert!(q4.candidate_perplexity() > q4.reference_perplexity() * 0.9);
}

fn reference_ppl(s: &Scores) -> f64 {
    s.reference_perplexity()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_target_measures_against_the_same_weights_in_the_reference_precision() {
    let settings: BTreeMap<String, String> = [
        ("model", "tiny-dense"),
        ("precision", "q4_0"),
        ("weights", "synthetic"),
        ("seed", "11"),
        ("roofline", "off"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let config = LocalConfig::from_settings::<CpuOps>(&settings, default_model_dirs()).unwrap();
    let target = LocalCpuBackend::new(config, settings);
    target.prepare().await.unwrap();
    let windows = eval_windows(32, 2);
    let f = target.fidelity("f32", &windows).await.unwrap();
    // The same figures as scoring the two models directly.
    let direct = score_windows(&tiny(Precision::F32), &tiny(Precision::Q4_0), &windows).unwrap();
    assert_eq!(f.kl_mean_nats, direct.kl_mean());
    assert_eq!(f.top1_agreement, direct.top1_agreement());
    assert_eq!(f.precision, "q4_0");
    assert_eq!(f.weights_sha256, target.describe().weights.unwrap().sha256);
    assert_ne!(f.weights_sha256, f.reference_weights_sha256);
    assert_eq!(f.tokens_scored, 62);
    // A reference the engine does not know is refused with its name.
    let e = target.fidelity("f8", &windows).await.unwrap_err();
    assert!(e.contains("f8"), "{e}");
}
