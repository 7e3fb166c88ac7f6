//! The runtime on the CUDA device against the same runtime on the CPU, end to end:
//! same weights, same prompts. The devices do not round alike (the CPU multiplies
//! quantized weights by 8-bit activations, the GPU by f32 ones, and sums in other
//! orders), so the checks are stated as bounds: teacher-forced logits along the CPU's
//! greedy path agree within `LOGIT_TOL`, and the greedy tokens agree for the first
//! `SAME_TOKENS` steps.
//!
//! Without a GPU every test prints why it is skipped and passes; on the GPU machines:
//! `cargo test -p infermeter-kernels --test cuda_engine`.

#![allow(clippy::unwrap_used)]

use infermeter_kernels::cpu::CpuOps;
use infermeter_kernels::cuda::attention::KvDtype;
use infermeter_kernels::cuda::ops::CudaOps;
use infermeter_kernels::format::Precision;
use infermeter_kernels::ops::DeviceOps;
use infermeter_kernels::preset::{SMOLLM2_135M, TINY_DENSE, TINY_MOE};
use infermeter_kernels::runtime::{Model, Offline, SchedulerConfig, teacher_forced_logits};
use infermeter_kernels::{ModelConfig, default_model_dirs, weights};

/// Logits of SmolLM2 are about 20 in magnitude; the CPU engine and llama.cpp differ
/// by up to 0.63 (kernels/tests/smollm2.rs), for the same reason.
const LOGIT_TOL: f32 = 0.75;
const SAME_TOKENS: usize = 8;

/// "The capital of France is Paris. The capital of Germany is".
const PROMPT: [u32; 12] = [
    504, 3575, 282, 4649, 314, 7042, 30, 378, 3575, 282, 4521, 314,
];

/// The GPU with each KV cache type: f32 (as the CPU) and f16 (the GPU default).
fn cuda(test: &str) -> Option<Vec<(KvDtype, CudaOps)>> {
    match CudaOps::open_with_kv(0, KvDtype::F32) {
        Ok(c) => Some(vec![
            (KvDtype::F32, c),
            (
                KvDtype::F16,
                CudaOps::open_with_kv(0, KvDtype::F16).unwrap(),
            ),
        ]),
        Err(e) => {
            eprintln!("{test}: skipped, no GPU: {e}");
            None
        }
    }
}

fn config() -> SchedulerConfig {
    SchedulerConfig {
        max_batch: 4,
        max_tokens_per_step: 256,
        prefill_chunk: 64,
        prefix_cache: true,
    }
}

fn greedy<D: DeviceOps>(model: Model<D>, prompt: &[u32], n: u32) -> Vec<u32> {
    let mut runner = Offline::new(model, 32, 16, config()).unwrap();
    runner.generate(&[prompt.to_vec()], n).unwrap().remove(0)
}

/// The gap between the largest and the second largest logit.
fn margin(logits: &[f32]) -> f32 {
    let (mut a, mut b) = (f32::NEG_INFINITY, f32::NEG_INFINITY);
    for &x in logits {
        if x > a {
            b = a;
            a = x;
        } else if x > b {
            b = x;
        }
    }
    a - b
}

/// Compares the devices on `cfg` with weights from `load`. With `strict`, the first
/// `SAME_TOKENS` greedy tokens must be equal; otherwise (random weights, whose top two
/// logits are often nearly tied) only those before the first step whose CPU top-1
/// margin is within twice the measured logit difference, where rounding alone may
/// pick the other token.
fn compare(
    label: &str,
    cuda: CudaOps,
    cfg: &ModelConfig,
    load: impl Fn() -> weights::HostWeights,
    prompt: &[u32],
    strict: bool,
) {
    const STEPS: u32 = 16;
    let cpu_tokens = greedy(
        Model::new(CpuOps::with_kv(KvDtype::F32), cfg.clone(), load()).unwrap(),
        prompt,
        STEPS,
    );
    let gpu_model = Model::new(cuda, cfg.clone(), load()).unwrap();
    let cpu_model = Model::new(CpuOps::with_kv(KvDtype::F32), cfg.clone(), load()).unwrap();
    let ours = teacher_forced_logits(&gpu_model, prompt, &cpu_tokens, 64).unwrap();
    let theirs = teacher_forced_logits(&cpu_model, prompt, &cpu_tokens, 64).unwrap();
    let mut max_diff = 0f32;
    for (a, b) in ours.iter().zip(&theirs) {
        for (x, y) in a.iter().zip(b) {
            assert!(x.is_finite(), "{label}: a GPU logit is {x}");
            max_diff = max_diff.max((x - y).abs());
        }
    }
    let gpu_tokens = greedy(gpu_model, prompt, STEPS);
    eprintln!(
        "{label}: max logit difference {max_diff:.4}; tokens cpu {cpu_tokens:?} gpu {gpu_tokens:?}"
    );
    assert!(
        max_diff <= LOGIT_TOL,
        "{label}: logits differ by {max_diff}"
    );
    let same = if strict {
        SAME_TOKENS
    } else {
        theirs
            .iter()
            .take(SAME_TOKENS)
            .position(|l| margin(l) <= 2.0 * max_diff)
            .unwrap_or(SAME_TOKENS)
    };
    eprintln!("{label}: the first {same} greedy tokens must agree");
    assert_eq!(
        gpu_tokens[..same],
        cpu_tokens[..same],
        "{label}: greedy tokens"
    );
}

#[test]
fn smollm2_on_the_gpu_agrees_with_the_cpu_engine() {
    let Some(devices) = cuda("smollm2") else {
        return;
    };
    // The real GGUF where it was carried (ci/tools/gpu_stage.sh GGUF=1), else seeded
    // weights of its shape and format.
    let path = weights::find_gguf(&default_model_dirs(), &SMOLLM2_135M, None);
    let what = match &path {
        Some(_) => "gguf",
        None => {
            eprintln!("smollm2: no GGUF found: synthetic weights of its shape (q4_1, seed 7)");
            "synthetic"
        }
    };
    for (kv, cuda) in devices {
        compare(
            &format!("smollm2-135m q4_1 {what}, {kv:?} KV"),
            cuda,
            &SMOLLM2_135M,
            || match &path {
                Some(p) => weights::load_gguf(p, &SMOLLM2_135M).unwrap(),
                None => weights::synthetic(&SMOLLM2_135M, Precision::Q4_1, 7).unwrap(),
            },
            &PROMPT,
            path.is_some(),
        );
    }
}

#[test]
fn synthetic_dense_and_moe_models_on_the_gpu_agree_with_the_cpu_engine() {
    let Some(devices) = cuda("synthetic") else {
        return;
    };
    let prompt: Vec<u32> = (0..40).map(|i| (i * 37 + 11) % 500).collect();
    for (kv, cuda) in devices {
        for (cfg, p) in [
            (&TINY_DENSE, Precision::F16),
            (&TINY_DENSE, Precision::Bf16),
            (&TINY_MOE, Precision::Q4_0),
            (&TINY_MOE, Precision::Q8_0),
        ] {
            compare(
                &format!("{} {p:?}, {kv:?} KV", cfg.name),
                cuda.clone(),
                cfg,
                || weights::synthetic(cfg, p, 7).unwrap(),
                &prompt,
                false,
            );
        }
    }
}
