//! The plan: every candidate at every traffic level, the cheapest per level and
//! self-host vs API, price scenarios and the sensitivity table.

use super::capacity::{
    HOURS_PER_MONTH, NONE, Perturb, PlanError, PlanInputs, Pricing, build, calibrations,
    evaluate_device, level_plan, price_unit,
};
use super::doc::*;
use super::hardware::HardwareSpec;

/// The cheapest priced candidate carrying level `i`.
fn cheapest(cands: &[Candidate], i: usize) -> Option<(&Candidate, &LevelPlan)> {
    cheapest_of(cands, i, |_| true)
}

/// The cheapest priced candidate carrying level `i` among those `keep` accepts.
fn cheapest_of(
    cands: &[Candidate],
    i: usize,
    keep: impl Fn(&Candidate) -> bool,
) -> Option<(&Candidate, &LevelPlan)> {
    cands
        .iter()
        .filter(|c| keep(c))
        .filter_map(|c| Some((c, c.levels.get(i)?)))
        .filter(|(_, l)| l.carried && l.monthly_usd.is_some())
        .min_by(|a, b| {
            a.1.monthly_usd
                .unwrap_or(f64::INFINITY)
                .total_cmp(&b.1.monthly_usd.unwrap_or(f64::INFINITY))
        })
}

/// Makes the plan.
pub fn plan(inp: &PlanInputs<'_>) -> Result<PlanDoc, PlanError> {
    let t = &inp.traffic;
    if !(t.requests_per_s.is_finite() && t.requests_per_s > 0.0) {
        return Err(PlanError(format!(
            "traffic must be above 0 requests/s, got {}",
            t.requests_per_s
        )));
    }
    if t.multipliers.is_empty() || t.multipliers.iter().any(|m| !(m.is_finite() && *m > 0.0)) {
        return Err(PlanError(
            "traffic multipliers must be positive numbers".into(),
        ));
    }
    if !(inp.max_utilisation.is_finite() && inp.max_utilisation > 0.0 && inp.max_utilisation <= 1.0)
    {
        return Err(PlanError(format!(
            "the utilisation a fleet is sized for must be in (0, 1], got {}",
            inp.max_utilisation
        )));
    }
    let w = &inp.workload;
    if !(w.input_tokens_mean >= 0.0 && w.output_tokens_mean >= 1.0 && w.calls_per_task >= 1.0) {
        return Err(PlanError(format!(
            "workload `{}` has no usable lengths (input {}, output {}, calls per task {})",
            w.name, w.input_tokens_mean, w.output_tokens_mean, w.calls_per_task
        )));
    }
    inp.prices
        .region(&inp.region)
        .map_err(|e| PlanError(e.to_string()))?;
    if !inp.prices.tiers().contains(inp.tier.as_str()) {
        return Err(PlanError(format!(
            "price catalog {} has no tier `{}` (tiers: {})",
            inp.prices.label(),
            inp.tier,
            inp.prices
                .tiers()
                .into_iter()
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let specs: Vec<&HardwareSpec> = if inp.devices.is_empty() {
        inp.hardware.device.iter().collect()
    } else {
        inp.devices
            .iter()
            .map(|d| {
                inp.hardware
                    .device_named(d)
                    .map_err(|e| PlanError(e.to_string()))
            })
            .collect::<Result<_, _>>()?
    };
    let cals = calibrations(inp)?;
    let base = Pricing {
        tier: inp.tier.clone(),
        region: inp.region.clone(),
        shock: None,
    };
    let built = build(inp, &cals, &specs, &base, &NONE);
    if built.cands.is_empty() {
        return Err(PlanError(
            "no candidate: no device and no remote result to plan with".into(),
        ));
    }
    let mut notes = Vec::new();
    let levels: Vec<LevelSummary> = t
        .multipliers
        .iter()
        .enumerate()
        .map(|(i, &m)| {
            let best = cheapest(&built.cands, i);
            let dev = cheapest_of(&built.cands, i, |c| c.kind == CandidateKind::Device);
            let api = cheapest_of(&built.cands, i, |c| c.kind == CandidateKind::Remote);
            let break_even = match (dev, api) {
                (Some((d, dl)), Some((a, al))) => {
                    let unit_usd_per_s = d
                        .price
                        .as_ref()
                        .map_or(0.0, |p| p.usd_per_unit_hour / 3600.0);
                    let api_per_req = al.usd_per_request.unwrap_or(0.0);
                    let api_monthly = al.monthly_usd.unwrap_or(0.0);
                    // One unit costs less than the API above `unit $/s / API $/request`
                    // requests/s, if one unit can carry that many.
                    let unit_rps = d
                        .operating_point
                        .as_ref()
                        .map_or(0.0, |o| o.requests_per_s * inp.max_utilisation);
                    let at = (api_per_req > 0.0).then(|| unit_usd_per_s / api_per_req);
                    Some(BreakEven {
                        device: d.name.clone(),
                        remote: a.name.clone(),
                        self_host_over_api: (api_monthly > 0.0)
                            .then(|| dl.monthly_usd.unwrap_or(0.0) / api_monthly),
                        break_even_requests_per_s: at.filter(|r| *r <= unit_rps),
                    })
                }
                _ => None,
            };
            let rps = t.requests_per_s * m;
            let reason = best.is_none().then(|| {
                let why: Vec<String> = built
                    .cands
                    .iter()
                    .map(|c| {
                        let l = &c.levels[i];
                        let r = l
                            .reason
                            .clone()
                            .or_else(|| c.unpriced.clone().map(|u| format!("not priced: {u}")));
                        format!("{}: {}", c.name, r.unwrap_or_else(|| "not priced".into()))
                    })
                    .collect();
                format!(
                    "no priced candidate carries {rps:.3} requests/s under the objective ({})",
                    why.join("; ")
                )
            });
            LevelSummary {
                multiplier: m,
                requests_per_s: rps,
                cheapest: best.map(|(c, _)| c.name.clone()),
                monthly_usd: best.and_then(|(_, l)| l.monthly_usd),
                usd_per_task: best.and_then(|(_, l)| l.usd_per_task),
                break_even,
                reason,
            }
        })
        .collect();
    // Scenarios: other tiers and regions, and price shocks on each priced part.
    let mut scen: Vec<(String, Pricing)> = vec![("baseline".into(), base.clone())];
    for tier in inp.prices.tiers() {
        if tier != inp.tier {
            scen.push((
                format!("tier {tier}"),
                Pricing {
                    tier: tier.into(),
                    ..base.clone()
                },
            ));
        }
    }
    for r in &inp.prices.region {
        if r.name != inp.region {
            scen.push((
                format!("region {}", r.name),
                Pricing {
                    region: r.name.clone(),
                    ..base.clone()
                },
            ));
        }
    }
    let mut parts: Vec<String> = built
        .cands
        .iter()
        .filter_map(|c| c.price.as_ref().map(|p| p.part.clone()))
        .collect();
    parts.sort();
    parts.dedup();
    for part in parts.iter().map(String::as_str).chain(["*gpu"]) {
        for f in [2.0, 3.0] {
            let label = if part == "*gpu" {
                "every GPU".to_string()
            } else {
                part.to_string()
            };
            scen.push((
                format!("{label} price x{f}"),
                Pricing {
                    shock: Some((part.to_string(), f)),
                    ..base.clone()
                },
            ));
        }
    }
    let scenarios = scen
        .into_iter()
        .map(|(name, pricing)| {
            let b = build(inp, &cals, &specs, &pricing, &NONE);
            Scenario {
                name,
                levels: t
                    .multipliers
                    .iter()
                    .enumerate()
                    .map(|(i, &m)| {
                        let best = cheapest(&b.cands, i);
                        ScenarioLevel {
                            multiplier: m,
                            cheapest: best.map(|(c, _)| c.name.clone()),
                            monthly_usd: best.and_then(|(_, l)| l.monthly_usd),
                        }
                    })
                    .collect(),
            }
        })
        .collect();
    let mut sensitivity = Vec::new();
    // At the largest level, where a fleet has units enough to move by more than one.
    let last = t.multipliers.len() - 1;
    if let Some((best, bl)) = cheapest(&built.cands, last)
        && let Some(idx) = built.cands.iter().position(|c| c.name == best.name)
        && let Some(Some((spec, _))) = built.evals.get(idx)
    {
        let base_monthly = bl.monthly_usd.unwrap_or(0.0);
        let cc = cals.iter().find(|c| c.calibration.class == spec.class);
        type Vary = fn(f64) -> Perturb;
        let inputs: [(&str, Vary); 6] = [
            ("hardware price", |f| Perturb { price: f, ..NONE }),
            ("decode step time", |f| Perturb { decode: f, ..NONE }),
            ("prompt token time", |f| Perturb { prefill: f, ..NONE }),
            ("prompt tokens", |f| Perturb { input: f, ..NONE }),
            ("output tokens", |f| Perturb { output: f, ..NONE }),
            ("traffic", |f| Perturb { traffic: f, ..NONE }),
        ];
        for (name, mk) in inputs {
            let at = |f: f64| -> Option<f64> {
                let p = mk(f);
                let cal = &cc?.calibration;
                let mut eval = evaluate_device(inp, spec, cal, &p);
                eval.power_fraction = cc?
                    .power
                    .iter()
                    .find(|p| p.device == spec.name)
                    .map(|p| p.fraction_of_tdp);
                let tp = eval.fit.as_ref().map_or(1, |f| f.tensor_parallel);
                let price = price_unit(inp, spec, tp, &base, p.price).ok()?;
                let l = level_plan(inp, spec, &eval, Some(&price), t.multipliers[last], &p);
                l.monthly_usd.filter(|_| l.carried)
            };
            let (lo, hi) = (at(0.75), at(1.25));
            sensitivity.push(Sensitivity {
                input: name.into(),
                low_factor: 0.75,
                high_factor: 1.25,
                monthly_usd_low: lo,
                monthly_usd_high: hi,
                swing: match (lo, hi) {
                    (Some(l), Some(h)) if base_monthly > 0.0 => Some((h - l).abs() / base_monthly),
                    _ => None,
                },
            });
        }
        sensitivity.sort_by(|a, b| {
            b.swing
                .unwrap_or(f64::INFINITY)
                .total_cmp(&a.swing.unwrap_or(f64::INFINITY))
        });
        notes.push(format!(
            "sensitivity: {} at {}x, each input at 0.75x and 1.25x (whole units: small fleets move in steps)",
            best.name, t.multipliers[last]
        ));
    }
    for cc in &cals {
        let c = &cc.calibration;
        if let Some(why) = &cc.uncalibrated_because {
            notes.push(format!(
                "{} devices are projected uncalibrated: {why}; default efficiencies from the hardware catalog ({})",
                c.class.as_str(),
                c.source.default_source.as_deref().unwrap_or("no source")
            ));
        }
    }
    notes.push("every device figure is projected from the calibration named beside it; remote figures are measured at the reports' load, and provider capacity and rate limits are not modelled".into());
    for cc in &cals {
        let class = cc.calibration.class.as_str();
        if cc.power.is_empty() {
            notes.push(format!(
                "{class} power: each device's TDP the whole month (no measured result with NVML energy on a device the catalog recognises)"
            ));
        }
        for p in &cc.power {
            notes.push(format!(
                "{} power: {:.0}% of TDP, the median of {} measured results (NVML); other {class} devices at TDP",
                p.device,
                p.fraction_of_tdp * 100.0,
                p.results
            ));
        }
    }
    notes.push("TPOT is projected as the mean step time (a request's TPOT averages its steps; interference tails are not modelled) and judged against the objective's p99; p99 TTFT is projected at the workload's p99 prompt length; remote candidates are judged on their measured p99s".into());
    notes.push(format!(
        "hardware prices are taken to include power; a month is {HOURS_PER_MONTH} hours"
    ));
    Ok(PlanDoc {
        schema: PLAN_SCHEMA.into(),
        schema_version: PLAN_SCHEMA_VERSION.into(),
        tool_version: inp.tool_version.clone(),
        hardware_catalog: inp.hardware.label(),
        price_catalog: inp.prices.label(),
        model: inp.model.clone(),
        precision: inp.precision.clone(),
        workload: inp.workload.clone(),
        slo: inp.slo.clone(),
        traffic: inp.traffic.clone(),
        tier: inp.tier.clone(),
        region: inp.region.clone(),
        calibrations: cals,
        candidates: built.cands,
        levels,
        scenarios,
        sensitivity,
        notes,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::catalog::Catalog;
    use crate::plan::capacity::ModelDims;
    use crate::plan::hardware::{DeviceClass, HardwareCatalog};
    use crate::plan::serve::EngineLimits;
    use crate::report::{ModelShape, ResultEntry};

    /// Llama 3 8B in bf16 on a GPU, roughly (the roofline tests' shape, 16 GB read).
    fn llama() -> ModelShape {
        let mut s = crate::roofline::tests::llama("bf16");
        s.shared_weight_bytes = 16_000_000_000;
        s
    }

    fn inputs<'a>(hw: &'a HardwareCatalog, prices: &'a Catalog) -> PlanInputs<'a> {
        PlanInputs {
            hardware: hw,
            prices,
            entries: Vec::new(),
            model: "llama3-8b".into(),
            precision: "bf16".into(),
            shapes: [(DeviceClass::Gpu, llama()), (DeviceClass::Cpu, llama())].into(),
            dims: ModelDims {
                hidden: 4096,
                layers: 32,
            },
            workload: PlanWorkload {
                name: "chat".into(),
                source: "test".into(),
                input_tokens_mean: 512.0,
                input_tokens_p99: 2048.0,
                output_tokens_mean: 128.0,
                cached_fraction: 0.0,
                calls_per_task: 3.0,
            },
            slo: Some(PlanSlo {
                ttft_p99_ms: Some(2000.0),
                tpot_p99_ms: Some(100.0),
            }),
            traffic: PlanTraffic {
                requests_per_s: 2.0,
                tasks_per_day: None,
                multipliers: vec![1.0, 10.0, 100.0],
            },
            devices: vec!["h100-sxm".into(), "h200".into(), "l4".into()],
            tier: "on-demand".into(),
            region: "us".into(),
            max_units: 100_000,
            max_utilisation: 0.8,
            engine: EngineLimits {
                max_batch: 256,
                prefill_chunk: 512,
            },
            tool_version: "test".into(),
        }
    }

    #[test]
    fn an_uncalibrated_plan_sizes_prices_and_labels_every_device() {
        let (hw, prices) = (
            HardwareCatalog::default_catalog(),
            Catalog::default_catalog(),
        );
        let doc = plan(&inputs(&hw, &prices)).unwrap();
        let h100 = doc
            .candidates
            .iter()
            .find(|c| c.name == "h100-sxm")
            .unwrap();
        assert!(h100.projected && !h100.calibrated && h100.error_band.is_none());
        assert!(doc.notes.iter().any(|n| n.contains("uncalibrated")));
        let op = h100.operating_point.as_ref().unwrap();
        assert!(op.ttft_p99_ms <= 2000.0 && op.tpot_ms <= 100.0, "{op:?}");
        // Units grow with traffic (never fewer for more), and 100x costs at most
        // 100x the 1x fleet plus one unit's rounding.
        let units: Vec<u64> = h100.levels.iter().map(|l| l.units.unwrap()).collect();
        assert!(units.windows(2).all(|w| w[1] >= w[0]), "{units:?}");
        let m: Vec<f64> = h100.levels.iter().map(|l| l.monthly_usd.unwrap()).collect();
        let unit_month = h100.price.as_ref().unwrap().usd_per_unit_hour * HOURS_PER_MONTH;
        assert!((m[0] - units[0] as f64 * unit_month).abs() < 1e-6);
        // The L4 (24 GB) holds the 16 GB of weights, but the default price catalog
        // has no L4 price: said by name.
        let l4 = doc.candidates.iter().find(|c| c.name == "l4").unwrap();
        assert!(l4.price.is_none() && l4.unpriced.as_deref().unwrap().contains("no part `l4`"));
        assert!(doc.levels.iter().all(|l| l.cheapest.is_some()));
        // $/task is requests per task times $/request.
        let l = &h100.levels[0];
        assert!((l.usd_per_task.unwrap() - 3.0 * l.usd_per_request.unwrap()).abs() < 1e-12);
    }

    #[test]
    fn a_price_shock_moves_the_monthly_cost_of_that_part_only() {
        let (hw, prices) = (
            HardwareCatalog::default_catalog(),
            Catalog::default_catalog(),
        );
        let doc = plan(&inputs(&hw, &prices)).unwrap();
        let base = doc.scenarios.iter().find(|s| s.name == "baseline").unwrap();
        let shocked = doc
            .scenarios
            .iter()
            .find(|s| s.name == "h100 price x2")
            .unwrap();
        for (b, s) in base.levels.iter().zip(&shocked.levels) {
            let (bm, sm) = (b.monthly_usd.unwrap(), s.monthly_usd.unwrap());
            if b.cheapest.as_deref() == Some("h100-sxm") {
                assert!(sm > bm, "{b:?} {s:?}");
            } else {
                assert!((sm - bm).abs() < 1e-6, "{b:?} {s:?}");
            }
        }
        let sovereign = doc
            .scenarios
            .iter()
            .find(|s| s.name == "region eu-sovereign")
            .unwrap();
        assert!(
            sovereign.levels[2].monthly_usd.unwrap() > 2.9 * base.levels[2].monthly_usd.unwrap()
        );
        // The sensitivity table ranks inputs by swing, largest first.
        let sw: Vec<f64> = doc.sensitivity.iter().filter_map(|s| s.swing).collect();
        assert!(
            sw.len() >= 5 && sw.windows(2).all(|w| w[0] >= w[1]),
            "{sw:?}"
        );
    }

    #[test]
    fn impossible_asks_get_a_clear_answer() {
        let (hw, prices) = (
            HardwareCatalog::default_catalog(),
            Catalog::default_catalog(),
        );
        // An SLO no candidate meets.
        let mut i = inputs(&hw, &prices);
        i.slo = Some(PlanSlo {
            ttft_p99_ms: Some(1.0),
            tpot_p99_ms: None,
        });
        let doc = plan(&i).unwrap();
        let lvl = &doc.levels[0];
        assert!(lvl.cheapest.is_none());
        assert!(
            lvl.reason
                .as_deref()
                .unwrap()
                .contains("no concurrency meets the objective"),
            "{lvl:?}"
        );
        // Traffic no allowed fleet carries.
        let mut i = inputs(&hw, &prices);
        i.max_units = 1;
        i.traffic.requests_per_s = 1e6;
        let doc = plan(&i).unwrap();
        assert!(
            doc.levels[0]
                .reason
                .as_deref()
                .unwrap()
                .contains("more than --max-units 1")
        );
        // A device the catalog does not have, a tier nobody prices.
        let mut i = inputs(&hw, &prices);
        i.devices = vec!["tpu-v9".into()];
        assert!(plan(&i).unwrap_err().0.contains("no device `tpu-v9`"));
        let mut i = inputs(&hw, &prices);
        i.tier = "free".into();
        assert!(plan(&i).unwrap_err().0.contains("no tier `free`"));
        // A model larger than a node of the device.
        let mut i = inputs(&hw, &prices);
        let mut big = llama();
        big.shared_weight_bytes = 5_000_000_000_000;
        i.shapes = [(DeviceClass::Gpu, big.clone()), (DeviceClass::Cpu, big)].into();
        let doc = plan(&i).unwrap();
        assert!(
            doc.candidates[0]
                .unmet
                .as_deref()
                .unwrap()
                .contains("do not fit")
        );
    }

    #[test]
    fn a_measured_gpu_result_calibrates_its_class_and_its_power() {
        let text = include_str!(
            "../../published/cpu-amd-epyc-2core/plan-backtest/smollm2-q4_1-p128/report.json"
        );
        let (report, _) = crate::schema::read_report_str(text).unwrap();
        // The CPU results, relabelled as measured on an H100 with NVML energy.
        let gpu: Vec<ResultEntry> = report
            .results
            .iter()
            .map(|e| {
                let mut e = e.clone();
                let rf = e.roofline.as_mut().unwrap();
                rf.limits.device = "cuda:0".into();
                rf.limits.name = "NVIDIA H100 80GB HBM3".into();
                let en = e.energy.as_mut().unwrap();
                en.source = Some(crate::report::EnergySource::NvmlCounter);
                en.avg_power_w = Some(420.0);
                en.devices = vec!["gpu0".into()];
                e
            })
            .collect();
        let (hw, prices) = (
            HardwareCatalog::default_catalog(),
            Catalog::default_catalog(),
        );
        let mut i = inputs(&hw, &prices);
        i.entries = gpu.iter().collect();
        // CPU timings fitted against an H100's spec make a slow "H100": no objective.
        i.slo = None;
        let doc = plan(&i).unwrap();
        let g = doc
            .calibrations
            .iter()
            .find(|c| c.calibration.class == DeviceClass::Gpu)
            .unwrap();
        assert!(g.calibration.source.calibrated);
        assert_eq!(g.power.len(), 1);
        assert_eq!(
            (g.power[0].device.as_str(), g.power[0].results),
            ("h100-sxm", 4)
        );
        assert!((g.power[0].fraction_of_tdp - 0.6).abs() < 1e-12);
        let h100 = doc
            .candidates
            .iter()
            .find(|c| c.name == "h100-sxm")
            .unwrap();
        assert!(h100.calibrated);
        let l = &h100.levels[0];
        assert_eq!(l.power_basis.as_deref(), Some("measured_fraction_of_tdp"));
        let want = l.requests_per_s * 128.0 / (700.0 * 0.6 * l.devices.unwrap() as f64);
        assert!((l.output_tokens_per_j.unwrap() - want).abs() / want < 1e-9);
        // The CPU class, with no result, is projected with its default.
        let c = doc
            .calibrations
            .iter()
            .find(|c| c.calibration.class == DeviceClass::Cpu)
            .unwrap();
        assert!(!c.calibration.source.calibrated && c.power.is_empty());
        // Another GPU is projected at its TDP: the fraction is the H100's.
        let h200 = doc.candidates.iter().find(|c| c.name == "h200").unwrap();
        assert_eq!(h200.levels[0].power_basis.as_deref(), Some("tdp"));
    }
}
