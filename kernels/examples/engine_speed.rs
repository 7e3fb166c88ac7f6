//! Prints prefill and decode speed of the CPU runtime on the SmolLM2 GGUF (or a
//! preset's synthetic weights), one JSON object per (prompt length, sequences):
//! `cargo run --release -p infermeter-kernels --example engine_speed -- [PROMPT] [OUT]
//! [SEQS...] [model=NAME] [precision=P] [kv=f16|f32] [prompts=128,512,...]
//! [profile=on|prefill] [step_tokens=N]`.
//!
//! Prefill: every sequence's prompt as one batch cut into steps of at most
//! `step_tokens` tokens (default 512: the engine's `max_tokens_per_step` and
//! llama.cpp's default micro-batch, which cuts its speed test's one batch the same
//! way), sequence after sequence; `step_tokens=0` runs them all in one step. Decode: all sequences decoded together,
//! one token each per step, timed after the prefill. `profile=on` adds, per op, the
//! share of the decode time it took (each op timed as it returns: see
//! `infermeter_kernels::profile`); `profile=prefill` the share of the prefill's.

use std::collections::BTreeMap;
use std::time::Instant;

use infermeter_kernels::cpu::CpuOps;
use infermeter_kernels::ops::{DeviceOps, KvDtype};
use infermeter_kernels::profile::{OpTime, Profiled};
use infermeter_kernels::runtime::{Model, StepSeq};
use infermeter_kernels::{Precision, default_model_dirs, preset, weights};

fn main() {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<usize> = raw.iter().filter_map(|a| a.parse().ok()).collect();
    let opt = |k: &str| {
        raw.iter()
            .find_map(|a| a.strip_prefix(&format!("{k}=")).map(str::to_string))
    };
    let prompts: Vec<usize> = match opt("prompts") {
        Some(list) => list.split(',').filter_map(|x| x.parse().ok()).collect(),
        None => vec![args.first().copied().unwrap_or(128)],
    };
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
    let kv = match opt("kv").as_deref() {
        None | Some("f16") => KvDtype::F16,
        Some("f32") => KvDtype::F32,
        Some(other) => {
            eprintln!("Error: kv={other} is not f16 or f32");
            std::process::exit(2);
        }
    };
    let profile = opt("profile");
    let prefill_profile = profile.as_deref() == Some("prefill");
    let profile = matches!(profile.as_deref(), Some("on" | "prefill"));
    let precision: Option<Precision> = opt("precision").and_then(|p| p.parse().ok());
    // The engine's default `max_tokens_per_step`, and llama.cpp's default micro-batch.
    let step_tokens = match opt("step_tokens").map(|v| v.parse::<usize>()) {
        None => 512,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            eprintln!("Error: step_tokens must be a count of tokens (0: one step)");
            std::process::exit(2);
        }
    };
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
    // The quantized products' kernel and attention's arithmetic, as the target names them.
    let kernels = <CpuOps as infermeter_kernels::LocalDevice>::kernels_label();
    let label = format!(
        "\"engine\": \"infermeter local-cpu\", \"model\": \"{name}\", \"weights\": \"{source}\", \"precision\": \"{format}\", \"kv_cache\": \"{}\", \"kernels\": \"{kernels}\"",
        kv.as_str()
    );
    let plan = Plan {
        prompts,
        batches,
        out,
        label,
        prefill_profile,
        step_tokens,
    };
    // Unprofiled runs use the plain device: the profile's clock reads and table are
    // not free.
    if profile {
        let m = Model::new(Profiled::new(CpuOps::with_kv(kv)), cfg.clone(), host).expect("model");
        plan.run(&m, || m.ops.reset(), || Some(m.ops.table()));
    } else {
        let m = Model::new(CpuOps::with_kv(kv), cfg.clone(), host).expect("model");
        plan.run(&m, || {}, || None);
    }
}

/// What to measure.
struct Plan {
    prompts: Vec<usize>,
    batches: Vec<usize>,
    out: usize,
    label: String,
    /// Profile the prefill, not the decode.
    prefill_profile: bool,
    /// Most prompt tokens per prefill step (0: every prompt in one step).
    step_tokens: usize,
}

impl Plan {
    fn run<D: DeviceOps>(
        &self,
        m: &Model<D>,
        reset: impl Fn(),
        table: impl Fn() -> Option<BTreeMap<String, OpTime>>,
    ) {
        let (out, block) = (self.out, 16);
        for &prompt_len in &self.prompts {
            let prompt: Vec<u32> = (0..prompt_len as u32)
                .map(|i| (i * 7919) % 40000 + 1000)
                .collect();
            for &b in &self.batches {
                let per_seq = (prompt_len + out + 1).div_ceil(block);
                let layout = m.kv_layout(per_seq * b, block);
                let mut cache = m.ops.kv_alloc(layout).expect("kv");
                let tables: Vec<Vec<u32>> = (0..b)
                    .map(|s| ((s * per_seq) as u32..((s + 1) * per_seq) as u32).collect())
                    .collect();
                reset();
                let t = Instant::now();
                // The prompts in steps of at most `step_tokens` tokens, sequence after
                // sequence (as llama.cpp cuts one batch into micro-batches).
                let budget = if self.step_tokens == 0 {
                    usize::MAX
                } else {
                    self.step_tokens
                };
                let mut last = vec![0u32; b];
                let mut done = vec![0usize; b];
                let mut s0 = 0;
                while s0 < b {
                    let mut left = budget;
                    let mut seqs: Vec<(usize, StepSeq<'_>)> = Vec::new();
                    for s in s0..b {
                        if left == 0 {
                            break;
                        }
                        let take = (prompt_len - done[s]).min(left);
                        seqs.push((
                            s,
                            StepSeq {
                                tokens: &prompt[done[s]..done[s] + take],
                                start: done[s],
                                blocks: &tables[s],
                                sample: done[s] + take == prompt_len,
                            },
                        ));
                        left -= take;
                    }
                    let step: Vec<StepSeq<'_>> = seqs.iter().map(|(_, q)| q.clone()).collect();
                    let sampled = m.step(&mut cache, &layout, &step).expect("prefill");
                    let finished = seqs.iter().filter(|(_, q)| q.sample).map(|(s, _)| *s);
                    for (s, tok) in finished.zip(sampled) {
                        last[s] = tok;
                    }
                    for (s, q) in &seqs {
                        done[*s] += q.tokens.len();
                    }
                    while s0 < b && done[s0] == prompt_len {
                        s0 += 1;
                    }
                }
                let prefill_s = t.elapsed().as_secs_f64();
                let prefill_ops = if self.prefill_profile {
                    table().map_or(String::new(), |t| ops_json("prefill_ops", t, prefill_s, 1))
                } else {
                    String::new()
                };
                reset();
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
                    last = m.step(&mut cache, &layout, &seqs).expect("decode");
                }
                let decode_s = t.elapsed().as_secs_f64();
                let ops = if self.prefill_profile {
                    prefill_ops
                } else {
                    table().map_or(String::new(), |t| ops_json("decode_ops", t, decode_s, out))
                };
                println!(
                    "{{{}, \"sequences\": {b}, \"prompt_tokens\": {prompt_len}, \"output_tokens_per_sequence\": {out}, \"prefill_tokens_per_s\": {:.1}, \"decode_tokens_per_s\": {:.1}{ops}}}",
                    self.label,
                    (b * prompt_len) as f64 / prefill_s,
                    (b * out) as f64 / decode_s
                );
            }
        }
    }
}

/// `, "KEY": {...}`: each op's share of the time and microseconds per step, largest
/// first, and the time between ops.
fn ops_json(key: &str, table: BTreeMap<String, OpTime>, decode_s: f64, steps: usize) -> String {
    let timed: f64 = table.values().map(|t| t.total_s).sum();
    let mut rows: Vec<(String, f64)> = table.into_iter().map(|(k, t)| (k, t.total_s)).collect();
    rows.push(("(between ops)".into(), decode_s - timed));
    rows.sort_by(|a, b| b.1.total_cmp(&a.1));
    let parts: Vec<String> = rows
        .iter()
        .map(|(op, s)| {
            format!(
                "\"{op}\": {{\"share_pct\": {:.1}, \"us_per_step\": {:.1}}}",
                100.0 * s / decode_s,
                1e6 * s / steps as f64
            )
        })
        .collect();
    format!(", \"{key}\": {{{}}}", parts.join(", "))
}
