//! `infermeter roofline`: a device's measured limits with the project's own kernels
//! (copy, read and triad bandwidth; matmul throughput per weight precision), and for
//! each preset x precision x batch x context the bytes a decode step reads per token,
//! the decode ceiling and the prefill ceiling they allow.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use kernels::cuda::ops::CudaOps;
use kernels::roofline::{self as measure, MeasureOptions};
use kernels::{LocalDevice, Precision, cpu::CpuOps};
use results::{Bound, ROOFLINE_SCHEMA, ROOFLINE_SCHEMA_VERSION, RooflineDoc};
use tabled::builder::Builder;
use tabled::settings::Style;

use crate::error::bad_input;

/// Most batch sizes or contexts of one call.
const MAX_POINTS: usize = 64;

/// `infermeter roofline` arguments.
#[derive(Debug, Args)]
pub struct RooflineArgs {
    /// The device: `cpu`, or `cuda:N` (GPU ordinal N).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Presets to project, comma-separated (`infermeter models list`).
    #[arg(long, value_delimiter = ',', default_value = "smollm2-135m")]
    pub model: Vec<String>,
    /// Weight precisions to measure and project, comma-separated (default: f32, q8_0,
    /// q4_0, q4_1 on the CPU; bf16, q8_0, q4_0 on a GPU).
    #[arg(long, value_delimiter = ',')]
    pub precision: Vec<Precision>,
    /// Sequences per decode step, comma-separated (1-4096).
    #[arg(long, value_delimiter = ',', default_value = "1,8",
          value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub batch: Vec<u32>,
    /// Tokens of context per sequence, comma-separated (0-1048576); also the prompt
    /// length of the prefill ceiling.
    #[arg(long, value_delimiter = ',', default_value = "1024",
          value_parser = clap::value_parser!(u32).range(0..=1_048_576))]
    pub context: Vec<u32>,
    /// Measure with smaller buffers and fewer passes (what a run measures).
    #[arg(long)]
    pub quick: bool,
    /// Also write the measurements and projections as JSON (`infermeter.roofline`).
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// Runs `infermeter roofline`.
pub fn run(args: &RooflineArgs) -> Result<()> {
    if args.batch.len() * args.context.len() > MAX_POINTS {
        return Err(bad_input(format!(
            "--batch x --context gives {} points; at most {MAX_POINTS}",
            args.batch.len() * args.context.len()
        )));
    }
    let presets = args
        .model
        .iter()
        .map(|m| kernels::preset(m).map_err(|e| bad_input(e.to_string())))
        .collect::<Result<Vec<_>>>()?;
    match args.device.as_str() {
        "cpu" => report(
            &CpuOps::default(),
            args,
            &presets,
            &[
                Precision::F32,
                Precision::Q8_0,
                Precision::Q4_0,
                Precision::Q4_1,
            ],
        ),
        d => {
            let ordinal = d
                .strip_prefix("cuda:")
                .and_then(|n| n.parse::<usize>().ok())
                .ok_or_else(|| bad_input(format!("--device `{d}` is not `cpu` or `cuda:N`")))?;
            let gpu =
                CudaOps::open(ordinal).map_err(|e| bad_input(format!("--device {d}: {e}")))?;
            report(
                &gpu,
                args,
                &presets,
                &[Precision::Bf16, Precision::Q8_0, Precision::Q4_0],
            )
        }
    }
}

fn report<D: LocalDevice>(
    dev: &D,
    args: &RooflineArgs,
    presets: &[&'static kernels::ModelConfig],
    default_precisions: &[Precision],
) -> Result<()> {
    let precisions = if args.precision.is_empty() {
        default_precisions
    } else {
        &args.precision
    };
    let mut opts = if args.quick {
        MeasureOptions::QUICK
    } else {
        MeasureOptions::FULL
    };
    if D::DEVICE == results::Device::Gpu {
        opts = opts.for_gpu();
    }
    eprintln!(
        "roofline: measuring {} ({} MiB buffers, best of {} passes; matmul {}x{}x{} per precision)",
        dev.device_label(),
        opts.buffer_bytes >> 20,
        opts.passes,
        opts.matmul.0,
        opts.matmul.1,
        opts.matmul.2
    );
    let limits = measure::measure(dev, precisions, opts).context("measuring the device")?;
    let mut projections = Vec::new();
    for cfg in presets {
        for &p in precisions {
            let shape = measure::model_shape::<D>(cfg, p);
            for &b in &args.batch {
                for &c in &args.context {
                    projections.extend(results::roofline::project(&limits, &shape, b, c));
                }
            }
        }
    }
    let doc = RooflineDoc {
        schema: ROOFLINE_SCHEMA.into(),
        schema_version: ROOFLINE_SCHEMA_VERSION.into(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        limits,
        projections,
    };
    print!("{}", render(&doc));
    if let Some(path) = &args.json {
        crate::files::write_json(path, &doc)?;
        eprintln!("roofline: wrote {}", path.display());
    }
    Ok(())
}

/// The limits, then one row per projection.
fn render(doc: &RooflineDoc) -> String {
    let l = &doc.limits;
    let mut out = format!(
        "{} ({}){}\n  copy_gb_per_s {:.1}  read_gb_per_s {:.1}  triad_gb_per_s {}\n",
        l.device,
        l.name,
        l.threads
            .map(|t| format!(", {t} threads"))
            .unwrap_or_default(),
        l.copy_gb_per_s,
        l.read_gb_per_s,
        l.triad_gb_per_s.map_or("-".into(), |t| format!("{t:.1}")),
    );
    out.push_str(&format!(
        "  matmul_gflop_per_s at {} ({}): {}\n\n",
        l.matmul_shape,
        l.matmul_engine,
        l.matmul_gflop_per_s
            .iter()
            .map(|(k, v)| format!("{k} {v:.1}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let mut b = Builder::default();
    b.push_record([
        "model",
        "precision",
        "batch",
        "context_tokens",
        "bytes_per_decode_token",
        "decode_ceiling_tokens_per_s",
        "bound",
        "prefill_ceiling_tokens_per_s",
    ]);
    for p in &doc.projections {
        b.push_record([
            p.shape.model.clone(),
            p.shape.precision.clone(),
            p.batch.to_string(),
            p.context_tokens.to_string(),
            format!("{:.3e}", p.bytes_per_decode_token),
            format!("{:.1}", p.decode_ceiling_tokens_per_s),
            match p.decode_bound {
                Bound::Bandwidth => "bandwidth".into(),
                Bound::Compute => "compute".into(),
            },
            format!("{:.1}", p.prefill_ceiling_tokens_per_s),
        ]);
    }
    out.push_str(&b.build().with(Style::markdown()).to_string());
    out.push('\n');
    out
}
