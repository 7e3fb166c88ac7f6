//! `infermeter plan`: project measured runs onto hardware the user does not own, size
//! a fleet for each traffic level under an objective, price it, and show what moves
//! the answer (price scenarios, a sensitivity table). Every device figure is labelled
//! projected, with its calibration and back-tested error.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use kernels::cuda::ops::CudaOps;
use kernels::roofline::model_shape;
use kernels::{Precision, cpu::CpuOps};
use results::ResultEntry;
use results::catalog::Catalog;
use results::metrics::Percentile;
use results::plan::doc::{Candidate, PlanDoc};
use results::plan::serve::EngineLimits;
use results::plan::{
    DeviceClass, HardwareCatalog, ModelDims, PlanInputs, PlanSlo, PlanTraffic, PlanWorkload,
};
use tabled::builder::Builder;
use tabled::settings::Style;

use super::args::PricingArgs;
use crate::error::bad_input;
use crate::slo::Slo;

/// `infermeter plan` arguments.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Measured reports (repeatable): local results calibrate their device class,
    /// remote results are candidates as measured.
    #[arg(long = "report", num_args = 1..)]
    pub reports: Vec<PathBuf>,
    /// Model preset to plan for (default: the first local result's).
    #[arg(long)]
    pub model: Option<String>,
    /// Weight precision (default: the first local result's).
    #[arg(long)]
    pub precision: Option<Precision>,
    /// Workload (name or TOML file) whose requests are planned for (default: the
    /// reports' measured lengths).
    #[arg(long)]
    pub workload: Option<String>,
    /// Objective, e.g. `ttft_p99_ms=2000,tpot_p99_ms=100` (p99 TTFT and TPOT).
    #[arg(long)]
    pub slo: Option<String>,
    /// Traffic at 1x, requests per second.
    #[arg(long, conflicts_with = "tasks_per_day")]
    pub rps: Option<f64>,
    /// Traffic at 1x, tasks (sessions) per day.
    #[arg(long)]
    pub tasks_per_day: Option<f64>,
    /// Traffic levels, as multiples of 1x.
    #[arg(long, value_delimiter = ',', default_value = "1,10,100")]
    pub multipliers: Vec<f64>,
    /// Catalog devices to consider, comma-separated (default: all).
    #[arg(long, value_delimiter = ',')]
    pub devices: Vec<String>,
    /// Hardware spec catalog (TOML; default: results/catalog/hardware.toml).
    #[arg(long)]
    pub hardware: Option<PathBuf>,
    /// Price catalog, baseline tier and region.
    #[command(flatten)]
    pub pricing: PricingArgs,
    /// Most fleet units one candidate may use.
    #[arg(long, default_value_t = 100_000)]
    pub max_units: u64,
    /// Share of each unit's operating-point throughput the fleet is sized to use
    /// (0-1]: headroom for bursts of arrivals.
    #[arg(long, default_value_t = 0.8)]
    pub max_utilisation: f64,
    /// Most sequences per engine step on every device.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub max_batch: u32,
    /// Most prompt tokens of one sequence per step.
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..=1_048_576))]
    pub prefill_chunk: u32,
    /// Also write the plan as JSON (`infermeter.plan`).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Also write the plan as one self-contained HTML page with its curves.
    #[arg(long)]
    pub html: Option<PathBuf>,
}

/// Runs `infermeter plan`.
pub fn run(args: &PlanArgs) -> Result<()> {
    let mut entries: Vec<ResultEntry> = Vec::new();
    for p in &args.reports {
        entries.extend(crate::files::read_report(p)?.results);
    }
    let first_local = entries.iter().find(|e| e.target.is_local());
    let model = args
        .model
        .clone()
        .or_else(|| first_local.map(|e| e.target.model.clone()))
        .ok_or_else(|| bad_input("--model is needed: no local result in the reports names one"))?;
    let cfg = kernels::preset(&model).map_err(|e| bad_input(format!("--model {model}: {e}")))?;
    let precision = match (args.precision, first_local) {
        (Some(p), _) => p,
        (None, Some(e)) => e.target.precision.parse::<Precision>().map_err(|e2| {
            bad_input(format!(
                "the reports' precision `{}`: {e2}",
                e.target.precision
            ))
        })?,
        (None, None) => Precision::Bf16,
    };
    let hardware = match &args.hardware {
        None => HardwareCatalog::default_catalog(),
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| bad_input(format!("{}: {e}", p.display())))?;
            HardwareCatalog::parse(&text, &p.display().to_string()).map_err(|e| bad_input(e.0))?
        }
    };
    let prices: Catalog = args.pricing.choice().catalog()?;
    let workload = workload(args, &entries, &model)?;
    let rps = match (args.rps, args.tasks_per_day) {
        (Some(r), None) => r,
        (None, Some(t)) => t * workload.calls_per_task / 86_400.0,
        _ => {
            return Err(bad_input(
                "give the traffic at 1x: --rps or --tasks-per-day",
            ));
        }
    };
    if !(rps.is_finite() && rps > 0.0 && rps <= 1e9) {
        return Err(bad_input(format!(
            "traffic must be above 0 and at most 1e9 requests/s, got {rps}"
        )));
    }
    let slo = args.slo.as_deref().map(parse_slo).transpose()?;
    let shapes = [
        (DeviceClass::Cpu, model_shape::<CpuOps>(cfg, precision)),
        (DeviceClass::Gpu, model_shape::<CudaOps>(cfg, precision)),
    ]
    .into_iter()
    .collect();
    let local: Vec<&ResultEntry> = entries.iter().collect();
    let inputs = PlanInputs {
        hardware: &hardware,
        prices: &prices,
        entries: local,
        model: model.clone(),
        precision: precision.to_string(),
        shapes,
        dims: ModelDims {
            hidden: cfg.hidden as u32,
            layers: cfg.layers as u32,
        },
        workload,
        slo,
        traffic: PlanTraffic {
            requests_per_s: rps,
            tasks_per_day: args.tasks_per_day,
            multipliers: args.multipliers.clone(),
        },
        devices: args.devices.clone(),
        tier: args
            .pricing
            .tier
            .clone()
            .unwrap_or_else(|| prices.default_tier.clone()),
        region: args
            .pricing
            .region
            .clone()
            .unwrap_or_else(|| prices.default_region.clone()),
        max_units: args.max_units,
        max_utilisation: args.max_utilisation,
        engine: EngineLimits {
            max_batch: args.max_batch,
            prefill_chunk: args.prefill_chunk,
        },
        tool_version: env!("CARGO_PKG_VERSION").into(),
    };
    let doc = results::plan::plan(&inputs).map_err(|e| bad_input(e.0))?;
    print!("{}", render(&doc));
    if let Some(path) = &args.json {
        crate::files::write_json(path, &doc)?;
        eprintln!("plan: wrote {}", path.display());
    }
    if let Some(path) = &args.html {
        crate::files::write_text(path, &results::render::html::plan::render_plan(&doc))?;
        eprintln!("plan: wrote {}", path.display());
    }
    Ok(())
}

/// `--slo` as the planner reads it: p99 TTFT and p99 TPOT only.
fn parse_slo(text: &str) -> Result<PlanSlo> {
    let slo = Slo::parse(text)?;
    let mut out = PlanSlo {
        ttft_p99_ms: None,
        tpot_p99_ms: None,
    };
    for o in &slo.objectives {
        match (o.family.name, o.percentile) {
            ("ttft", Percentile::P99) => out.ttft_p99_ms = Some(o.bound_ms),
            ("tpot", Percentile::P99) => out.tpot_p99_ms = Some(o.bound_ms),
            _ => {
                return Err(bad_input(format!(
                    "--slo {}: the planner projects ttft_p99_ms and tpot_p99_ms only",
                    o.name()
                )));
            }
        }
    }
    Ok(out)
}

/// The requests planned for: a workload's generated stream, or the reports' means.
fn workload(args: &PlanArgs, entries: &[ResultEntry], model: &str) -> Result<PlanWorkload> {
    if let Some(name) = &args.workload {
        let plan = crate::plan::resolve(
            None,
            std::slice::from_ref(name),
            &crate::plan::Overrides::default(),
        )?;
        let (spec, seed) = plan
            .workloads
            .first()
            .ok_or_else(|| bad_input(format!("--workload {name}: nothing to plan")))?;
        let stream = workloads::generate::generate(spec, *seed);
        let mut inputs: Vec<f64> = Vec::new();
        let (mut out, mut prefix) = (0.0, 0.0);
        for r in stream.sessions.iter().flat_map(|s| &s.calls) {
            inputs.push(f64::from(r.input_tokens()));
            out += f64::from(r.max_output_tokens);
            prefix += r.prefix.as_ref().map_or(0.0, |p| f64::from(p.tokens));
        }
        let n = inputs.len().max(1) as f64;
        let total: f64 = inputs.iter().sum();
        inputs.sort_by(f64::total_cmp);
        let p99 = inputs
            .get(((inputs.len() as f64 * 0.99).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or(0.0);
        return Ok(PlanWorkload {
            name: spec.name.clone(),
            source: format!(
                "workload spec ({} generated requests, seed {seed})",
                inputs.len()
            ),
            input_tokens_mean: total / n,
            input_tokens_p99: p99,
            output_tokens_mean: out / n,
            cached_fraction: if total > 0.0 { prefix / total } else { 0.0 },
            calls_per_task: n / stream.sessions.len().max(1) as f64,
        });
    }
    // The lengths of the model's own results, else of any result (a workload's
    // lengths do not depend on the model that served it).
    let mut same: Vec<&ResultEntry> = entries
        .iter()
        .filter(|e| e.target.model == model || !e.target.is_local())
        .collect();
    if same.is_empty() {
        same = entries.iter().collect();
    }
    let first = same.first().ok_or_else(|| {
        bad_input(
            "--workload is needed: the reports have no result to take the request lengths from",
        )
    })?;
    let name = first.workload.name.clone();
    let of: Vec<&&ResultEntry> = same.iter().filter(|e| e.workload.name == name).collect();
    let sent: f64 = of
        .iter()
        .map(|e| e.requests.sent as f64)
        .sum::<f64>()
        .max(1.0);
    let input: f64 = of.iter().map(|e| e.tokens.input as f64).sum();
    let output: f64 = of.iter().map(|e| e.tokens.output as f64).sum();
    let cached: f64 = of
        .iter()
        .filter_map(|e| e.engine.as_ref().map(|g| g.prompt_tokens_cached as f64))
        .sum();
    let calls = first
        .tasks
        .as_ref()
        .and_then(|t| t.calls_per_task)
        .unwrap_or(1.0);
    Ok(PlanWorkload {
        name: name.clone(),
        source: format!(
            "measured reports ({} results of {name}; p99 prompt = mean: the reports keep no length distribution)",
            of.len()
        ),
        input_tokens_mean: input / sent,
        input_tokens_p99: input / sent,
        output_tokens_mean: (output / sent).max(1.0),
        cached_fraction: if input > 0.0 {
            (cached / input).clamp(0.0, 1.0) + 0.0
        } else {
            0.0
        },
        calls_per_task: calls,
    })
}

fn money(x: Option<f64>) -> String {
    match x {
        None => "-".into(),
        Some(v) if v >= 100.0 => format!("{v:.0}"),
        Some(v) if v >= 1.0 => format!("{v:.2}"),
        Some(v) => format!("{v:.4}"),
    }
}

fn candidate_row(c: &Candidate, i: usize) -> Vec<String> {
    let l = &c.levels[i];
    let op = c.operating_point.as_ref();
    let label = match (c.projected, c.calibrated) {
        (false, _) => "measured".to_string(),
        (true, true) => format!(
            "projected, calibrated{}",
            c.error_band.map_or(String::new(), |b| format!(
                " (decode ±{:.0}% on the measured devices)",
                b * 100.0
            ))
        ),
        (true, false) => "projected, uncalibrated".to_string(),
    };
    vec![
        c.name.clone(),
        label,
        c.fit.as_ref().map_or("-".into(), |f| {
            format!("{}x / {}", f.tensor_parallel, f.max_concurrency)
        }),
        op.map_or("-".into(), |o| o.concurrency.to_string()),
        op.map_or("-".into(), |o| format!("{:.0}", o.ttft_p99_ms)),
        op.map_or("-".into(), |o| format!("{:.1}", o.tpot_ms)),
        op.map_or("-".into(), |o| format!("{:.2}", o.requests_per_s)),
        l.units.map_or("-".into(), |u| u.to_string()),
        money(l.monthly_usd),
        money(l.usd_per_m_input),
        money(l.usd_per_m_output),
        money(l.usd_per_task),
        l.output_tokens_per_j.map_or("-".into(), |v| {
            format!("{v:.2} ({})", l.power_basis.as_deref().unwrap_or("-"))
        }),
        l.reason
            .clone()
            .or_else(|| c.unpriced.clone().map(|u| format!("unpriced: {u}")))
            .unwrap_or_default(),
    ]
}

/// The plan as tables: per level, the candidates; then the scenarios and the
/// sensitivity table.
pub fn render(doc: &PlanDoc) -> String {
    let mut s = format!(
        "plan: {} {} for {} (in {:.0} / p99 {:.0} / out {:.0} tokens, {:.0}% cached, {:.1} calls per task); {} {}; SLO {}\n",
        doc.model,
        doc.precision,
        doc.workload.name,
        doc.workload.input_tokens_mean,
        doc.workload.input_tokens_p99,
        doc.workload.output_tokens_mean,
        doc.workload.cached_fraction * 100.0,
        doc.workload.calls_per_task,
        doc.tier,
        doc.region,
        doc.slo.as_ref().map_or("none".to_string(), |o| format!(
            "ttft_p99_ms={} tpot_p99_ms={}",
            o.ttft_p99_ms.map_or("-".into(), |v| v.to_string()),
            o.tpot_p99_ms.map_or("-".into(), |v| v.to_string())
        ))
    );
    for c in &doc.calibrations {
        let k = &c.calibration;
        s += &format!(
            "calibration {}: {}\n",
            k.class.as_str(),
            if k.source.calibrated {
                format!(
                    "{} measured points on {}; leave-one-out error decode {} TTFT {}",
                    k.source.points,
                    k.source.devices.join(", "),
                    c.decode_error_band
                        .map_or("not back-tested (< 5 points)".into(), |v| format!(
                            "{:.1}%",
                            v * 100.0
                        )),
                    c.ttft_error_band
                        .map_or("-".into(), |v| format!("{:.1}%", v * 100.0))
                )
            } else {
                "uncalibrated (catalog default efficiencies)".to_string()
            }
        );
    }
    for (i, lvl) in doc.levels.iter().enumerate() {
        s += &format!(
            "\n## {}x: {:.3} requests/s: cheapest {}\n",
            lvl.multiplier,
            lvl.requests_per_s,
            match (&lvl.cheapest, lvl.monthly_usd) {
                (Some(c), Some(m)) => format!("{c} at {} USD/month", money(Some(m))),
                _ => lvl.reason.clone().unwrap_or_else(|| "none".into()),
            }
        );
        if let Some(b) = &lvl.break_even {
            s += &format!("{}\n", b.sentence());
        }
        let mut t = Builder::default();
        t.push_record([
            "candidate",
            "figures",
            "TP / max sessions",
            "sessions",
            "TTFT p99 ms",
            "TPOT ms",
            "req/s/unit",
            "units",
            "USD/month",
            "USD/M in",
            "USD/M out",
            "USD/task",
            "out tok/J",
            "note",
        ]);
        for c in &doc.candidates {
            t.push_record(candidate_row(c, i));
        }
        s += &format!("{}\n", t.build().with(Style::markdown()));
    }
    let mut t = Builder::default();
    let mut head = vec!["scenario".to_string()];
    head.extend(
        doc.traffic
            .multipliers
            .iter()
            .map(|m| format!("{m}x cheapest (USD/month)")),
    );
    t.push_record(head);
    for sc in &doc.scenarios {
        let mut row = vec![sc.name.clone()];
        row.extend(
            sc.levels
                .iter()
                .map(|l| match (&l.cheapest, l.monthly_usd) {
                    (Some(c), Some(m)) => format!("{c} ({})", money(Some(m))),
                    _ => "none".into(),
                }),
        );
        t.push_record(row);
    }
    s += &format!("\n## Scenarios\n{}\n", t.build().with(Style::markdown()));
    if !doc.sensitivity.is_empty() {
        let mut t = Builder::default();
        t.push_record(["input", "USD/month at 0.75x", "at 1.25x", "swing"]);
        for x in &doc.sensitivity {
            t.push_record([
                x.input.clone(),
                money(x.monthly_usd_low),
                money(x.monthly_usd_high),
                x.swing.map_or("-".into(), |v| format!("{:.0}%", v * 100.0)),
            ]);
        }
        s += &format!("\n## Sensitivity\n{}\n", t.build().with(Style::markdown()));
    }
    for n in &doc.notes {
        s += &format!("note: {n}\n");
    }
    s
}
