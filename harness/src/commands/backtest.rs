//! `infermeter backtest`: calibrate the planner on some measured local load points,
//! predict the others, and print (and write) the error of every prediction.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use results::ResultEntry;
use results::plan::backtest::Prediction;
use tabled::builder::Builder;
use tabled::settings::Style;

use crate::error::bad_input;

/// `infermeter backtest` arguments.
#[derive(Debug, Args)]
pub struct BacktestArgs {
    /// Reports whose results calibrate (repeatable; local results with a roofline).
    #[arg(long, num_args = 1.., required = true)]
    pub calibrate: Vec<PathBuf>,
    /// Calibrate only on the results of `--calibrate` reports at these closed-loop
    /// concurrencies; their other results are predicted too (default: all calibrate).
    #[arg(long, value_delimiter = ',')]
    pub calibrate_concurrency: Vec<u32>,
    /// Reports whose results are predicted (repeatable).
    #[arg(long, num_args = 1..)]
    pub predict: Vec<PathBuf>,
    /// Also write the back-test as JSON (`infermeter.backtest`).
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// Runs `infermeter backtest`.
pub fn run(args: &BacktestArgs) -> Result<()> {
    let read = |paths: &[PathBuf]| -> Result<Vec<ResultEntry>> {
        let mut out = Vec::new();
        for p in paths {
            out.extend(crate::files::read_report(p)?.results);
        }
        Ok(out)
    };
    let cal_reports = read(&args.calibrate)?;
    let pred_reports = read(&args.predict)?;
    let in_cal = |e: &ResultEntry| {
        args.calibrate_concurrency.is_empty()
            || e.load
                .concurrency
                .is_some_and(|c| args.calibrate_concurrency.contains(&c))
    };
    let calibrate: Vec<&ResultEntry> = cal_reports.iter().filter(|e| in_cal(e)).collect();
    let predict: Vec<&ResultEntry> = cal_reports
        .iter()
        .filter(|e| !in_cal(e))
        .chain(pred_reports.iter())
        .collect();
    let doc = results::plan::backtest(&calibrate, &predict, env!("CARGO_PKG_VERSION"))
        .map_err(|e| bad_input(e.0))?;
    let c = &doc.calibration;
    println!(
        "calibration: {} points of class {} ({}); decode factors weights {:.3}, KV {:.3}, compute {:.3}, {:.2} ms/step; prompt factors matrix {:.3}, attention {:.3}",
        c.source.points,
        c.class.as_str(),
        c.source.devices.join(", "),
        c.decode.weight_read_factor,
        c.decode.kv_read_factor,
        c.decode.compute_factor,
        c.decode.step_overhead_s * 1e3,
        c.prefill.matrix_factor,
        c.prefill.attention_factor
    );
    print!("{}", render(&doc.predictions));
    let pct = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{:.1}%", v * 100.0));
    let s = &doc.summary;
    println!(
        "{} predictions: median |error| decode tokens/s {} (max {}), TTFT p50 {} (max {}), output tokens/s {}",
        s.predictions,
        pct(s.decode_median_abs_error),
        pct(s.decode_max_abs_error),
        pct(s.ttft_median_abs_error),
        pct(s.ttft_max_abs_error),
        pct(s.output_throughput_median_abs_error)
    );
    for (t, s) in &doc.by_target {
        println!(
            "  {t}: {} predictions, decode {}, TTFT {}",
            s.predictions,
            pct(s.decode_median_abs_error),
            pct(s.ttft_median_abs_error)
        );
    }
    if let Some(path) = &args.json {
        crate::files::write_json(path, &doc)?;
        eprintln!("backtest: wrote {}", path.display());
    }
    Ok(())
}

fn render(preds: &[Prediction]) -> String {
    let mut b = Builder::default();
    b.push_record([
        "target",
        "workload",
        "sessions",
        "decode tok/s proj",
        "meas",
        "err",
        "TTFT p50 ms proj",
        "meas",
        "err",
        "out tok/s proj",
        "meas",
        "err",
    ]);
    let f = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.1}"));
    let e = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{:+.1}%", v * 100.0));
    for p in preds {
        b.push_record([
            p.target.clone(),
            p.workload.clone(),
            p.concurrency.to_string(),
            format!("{:.1}", p.decode_tokens_per_s_projected),
            f(p.decode_tokens_per_s_measured),
            e(p.decode_error),
            format!("{:.1}", p.ttft_p50_ms_projected),
            f(p.ttft_p50_ms_measured),
            e(p.ttft_error),
            format!("{:.1}", p.output_tokens_per_s_projected),
            format!("{:.1}", p.output_tokens_per_s_measured),
            e(p.output_throughput_error),
        ]);
    }
    format!("{}\n", b.build().with(Style::markdown()))
}
