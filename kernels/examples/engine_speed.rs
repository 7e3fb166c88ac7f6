//! Prints prefill and decode speed of the CPU engine on the SmolLM2 GGUF:
//! `cargo run --release -p infermeter-kernels --example engine_speed -- [PROMPT] [OUT] [SEQS...]`.

use std::time::Instant;

use infermeter_kernels::cpu::CpuModel;
use infermeter_kernels::preset::SMOLLM2_135M;
use infermeter_kernels::{default_model_dirs, weights};

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let prompt_len = args.first().copied().unwrap_or(128);
    let out = args.get(1).copied().unwrap_or(64);
    let batches: Vec<usize> = if args.len() > 2 {
        args[2..].to_vec()
    } else {
        vec![1, 8]
    };
    let Some(path) = weights::find_gguf(&default_model_dirs(), &SMOLLM2_135M, None) else {
        eprintln!("Error: SmolLM2 GGUF not found: run ci/setup.sh");
        std::process::exit(2);
    };
    let w = weights::load_gguf(&path, &SMOLLM2_135M).expect("loading the GGUF");
    let m = CpuModel::new(SMOLLM2_135M.clone(), w).expect("model");
    let prompt: Vec<u32> = (0..prompt_len as u32)
        .map(|i| (i * 7919) % 40000 + 1000)
        .collect();
    for &b in &batches {
        let mut caches: Vec<_> = (0..b)
            .map(|_| m.new_cache(prompt_len + out + 1).expect("cache"))
            .collect();
        let t = Instant::now();
        let mut last: Vec<u32> = caches
            .iter_mut()
            .map(|c| m.prefill(c, &prompt).expect("prefill"))
            .collect();
        let prefill_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        for _ in 0..out {
            let mut refs: Vec<_> = caches.iter_mut().collect();
            last = m.decode(&mut refs, &last).expect("decode");
        }
        let decode_s = t.elapsed().as_secs_f64();
        println!(
            "{{\"engine\": \"infermeter local-cpu\", \"sequences\": {b}, \"prompt_tokens\": {prompt_len}, \"output_tokens_per_sequence\": {out}, \"prefill_tokens_per_s\": {:.1}, \"decode_tokens_per_s\": {:.1}}}",
            (b * prompt_len) as f64 / prefill_s,
            (b * out) as f64 / decode_s
        );
    }
}
