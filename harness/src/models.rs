//! `infermeter models list`: every preset's shape, parameters (total and active),
//! bytes per weight format and KV bytes per token.

use kernels::config::Ffn;
use kernels::{PRESETS, Precision};
use tabled::settings::Style;
use tabled::{Table, Tabled};

#[derive(Tabled)]
struct Row {
    model: &'static str,
    arch: String,
    layers: usize,
    hidden: usize,
    #[tabled(rename = "heads/kv")]
    heads: String,
    context: usize,
    params_total_m: String,
    params_active_m: String,
    #[tabled(rename = "f16_bf16_gb")]
    f16: String,
    q8_0_gb: String,
    q4_0_gb: String,
    q4_1_gb: String,
    kv_bytes_per_token_f16: u64,
    source: &'static str,
}

fn gb(b: u64) -> String {
    format!("{:.3}", b as f64 / 1e9)
}

/// The table of presets.
pub fn list() -> String {
    let rows: Vec<Row> = PRESETS
        .iter()
        .map(|c| {
            let p = c.params();
            let arch = match &c.ffn {
                Ffn::Dense { intermediate } => format!("dense ffn={intermediate}"),
                Ffn::Moe(m) => format!(
                    "moe {}x{} top-{}{}",
                    m.experts,
                    m.expert_intermediate,
                    m.top_k,
                    if m.norm_topk_prob { " norm" } else { "" }
                ),
            };
            Row {
                model: c.name,
                arch: if c.qk_norm {
                    format!("{arch} qk-norm")
                } else {
                    arch
                },
                layers: c.layers,
                hidden: c.hidden,
                heads: format!("{}/{}", c.heads, c.kv_heads),
                context: c.context,
                params_total_m: format!("{:.1}", p.total as f64 / 1e6),
                params_active_m: format!("{:.1}", p.active as f64 / 1e6),
                f16: gb(c.weight_bytes(Precision::F16)),
                q8_0_gb: gb(c.weight_bytes(Precision::Q8_0)),
                q4_0_gb: gb(c.weight_bytes(Precision::Q4_0)),
                q4_1_gb: gb(c.weight_bytes(Precision::Q4_1)),
                kv_bytes_per_token_f16: c.kv_bytes_per_token(2),
                source: c.source,
            }
        })
        .collect();
    let mut out = Table::new(rows).with(Style::rounded()).to_string();
    out.push_str(
        "\nparams in millions; weight sizes in GB (1e9 bytes) with matrices in the format and norms in f32; \
the CPU engine keeps KV in f32 (twice kv_bytes_per_token_f16).\n",
    );
    out
}
