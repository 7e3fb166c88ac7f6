//! Prints prefill and decode speed of the CPU runtime on the SmolLM2 GGUF (or a
//! preset's synthetic weights): `cargo run --release -p infermeter-kernels --example
//! engine_speed -- [PROMPT] [OUT] [SEQS...] [model=NAME] [precision=P]`.
//!
//! Prefill: every sequence's prompt in one step each (chunk = prompt). Decode: all
//! sequences decoded together, one token each per step, timed after the prefill.

use std::time::Instant;

use infermeter_kernels::cpu::CpuOps;
use infermeter_kernels::ops::DeviceOps as _;
use infermeter_kernels::runtime::{Model, StepSeq};
use infermeter_kernels::{Precision, default_model_dirs, preset, weights};

fn main() {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<usize> = raw.iter().filter_map(|a| a.parse().ok()).collect();
    let opt = |k: &str| {
        raw.iter()
            .find_map(|a| a.strip_prefix(&format!("{k}=")).map(str::to_string))
    };
    let prompt_len = args.first().copied().unwrap_or(128);
    let out = args.get(1).copied().unwrap_or(64);
    let batches: Vec<usize> = if args.len() > 2 {
        args[2..].to_vec()
    } else {
        vec![1, 8]
    };
    let name = opt("model").unwrap_or_else(|| "smollm2-135m".into());
    let Ok(cfg) = preset(&name) else {
        eprintln!("Error: unknown preset {name}");
        std::process::exit(2);
    };
    let precision: Option<Precision> = opt("precision").and_then(|p| p.parse().ok());
    let (host, source) = match weights::find_gguf(&default_model_dirs(), cfg, precision) {
        Some(path) => (
            weights::load_gguf(&path, cfg).expect("loading the GGUF"),
            path.display().to_string(),
        ),
        None => (
            weights::synthetic(cfg, precision.unwrap_or(Precision::Q4_1), 0)
                .expect("synthetic weights"),
            "synthetic".into(),
        ),
    };
    let format = host.precision;
    let m = Model::new(CpuOps, cfg.clone(), host).expect("model");
    let prompt: Vec<u32> = (0..prompt_len as u32)
        .map(|i| (i * 7919) % 40000 + 1000)
        .collect();
    let block = 16;
    for &b in &batches {
        let per_seq = (prompt_len + out + 1).div_ceil(block);
        let layout = m.kv_layout(per_seq * b, block);
        let mut kv = m.ops.kv_alloc(layout).expect("kv");
        let tables: Vec<Vec<u32>> = (0..b)
            .map(|s| ((s * per_seq) as u32..((s + 1) * per_seq) as u32).collect())
            .collect();
        let t = Instant::now();
        let mut last: Vec<u32> = tables
            .iter()
            .map(|blocks| {
                m.step(
                    &mut kv,
                    &layout,
                    &[StepSeq {
                        tokens: &prompt,
                        start: 0,
                        blocks,
                        sample: true,
                    }],
                )
                .expect("prefill")[0]
            })
            .collect();
        let prefill_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        for step in 0..out {
            let toks: Vec<[u32; 1]> = last.iter().map(|&x| [x]).collect();
            let seqs: Vec<StepSeq<'_>> = toks
                .iter()
                .zip(&tables)
                .map(|(tok, blocks)| StepSeq {
                    tokens: tok,
                    start: prompt_len + step,
                    blocks,
                    sample: true,
                })
                .collect();
            last = m.step(&mut kv, &layout, &seqs).expect("decode");
        }
        let decode_s = t.elapsed().as_secs_f64();
        println!(
            "{{\"engine\": \"infermeter local-cpu\", \"model\": \"{name}\", \"weights\": \"{source}\", \"precision\": \"{format}\", \"sequences\": {b}, \"prompt_tokens\": {prompt_len}, \"output_tokens_per_sequence\": {out}, \"prefill_tokens_per_s\": {:.1}, \"decode_tokens_per_s\": {:.1}}}",
            (b * prompt_len) as f64 / prefill_s,
            (b * out) as f64 / decode_s
        );
    }
}
