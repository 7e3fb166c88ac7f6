//! One candidate at a time: measured results calibrate each device class; every
//! catalog device is projected (fit in memory, throughput vs interactivity, the
//! operating point that meets the objective), sized for each traffic level and priced;
//! remote targets enter as measured. [`super::planner`] compares them.

use std::collections::BTreeMap;

use super::backtest::{predict, summarize};
use super::doc::*;
use super::fit::{Calibration, Observed, median};
use super::hardware::{DeviceClass, HardwareCatalog, HardwareSpec};
use super::serve::{DeviceModel, EngineLimits, RequestShape, serve, ttft_at_input};
use crate::catalog::Catalog;
use crate::report::{DeviceLimits, EnergySource, ModelShape, ResultEntry};

/// Hours in a month of the plan (365 x 24 / 12).
pub const HOURS_PER_MONTH: f64 = 730.0;
/// Share of a device's memory the weights and KV cache may use.
pub const USABLE_MEMORY_FRACTION: f64 = 0.9;
/// Seconds per collective of tensor parallelism (an assumption, flagged).
pub const COLLECTIVE_LATENCY_S: f64 = 10e-6;

/// A model's dimensions the interconnect term needs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ModelDims {
    /// Hidden size.
    pub hidden: u32,
    /// Layers.
    pub layers: u32,
}

/// Everything a plan is made from.
#[derive(Clone, Debug)]
pub struct PlanInputs<'a> {
    /// Device specs.
    pub hardware: &'a HardwareCatalog,
    /// Prices.
    pub prices: &'a Catalog,
    /// Measured results: local ones calibrate, remote ones are candidates.
    pub entries: Vec<&'a ResultEntry>,
    /// Model name.
    pub model: String,
    /// Weight precision.
    pub precision: String,
    /// The model as each device class holds it.
    pub shapes: BTreeMap<DeviceClass, ModelShape>,
    /// Its dimensions.
    pub dims: ModelDims,
    /// The requests.
    pub workload: PlanWorkload,
    /// The objective.
    pub slo: Option<PlanSlo>,
    /// The traffic.
    pub traffic: PlanTraffic,
    /// Catalog devices to consider (empty: all).
    pub devices: Vec<String>,
    /// Baseline tier.
    pub tier: String,
    /// Baseline region.
    pub region: String,
    /// Most fleet units a candidate may use.
    pub max_units: u64,
    /// Share of each unit's operating-point throughput the fleet is sized to use
    /// (0-1]: headroom for arrivals that are not smooth.
    pub max_utilisation: f64,
    /// The engine's limits on every device.
    pub engine: EngineLimits,
    /// The infermeter version.
    pub tool_version: String,
}

/// Why a plan could not be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct PlanError(pub String);

/// Multipliers applied to a plan's inputs (1 = as given).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Perturb {
    pub(super) price: f64,
    pub(super) decode: f64,
    pub(super) prefill: f64,
    pub(super) input: f64,
    pub(super) output: f64,
    pub(super) traffic: f64,
}

pub(super) const NONE: Perturb = Perturb {
    price: 1.0,
    decode: 1.0,
    prefill: 1.0,
    input: 1.0,
    output: 1.0,
    traffic: 1.0,
};

/// Prices as a scenario sets them.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Pricing {
    pub(super) tier: String,
    pub(super) region: String,
    /// Part (or `*gpu`) and its price factor.
    pub(super) shock: Option<(String, f64)>,
}

/// A device projected once (prices apart).
#[derive(Clone, Debug)]
pub(super) struct DeviceEval {
    pub(super) fit: Option<FitInfo>,
    pub(super) curve: Vec<CurvePoint>,
    pub(super) op: Option<CurvePoint>,
    pub(super) unmet: Option<String>,
    /// KV bytes a unit holds, for the cached-input price.
    kv_capacity_bytes: f64,
    /// Mean e2e of a request at the operating point, s.
    op_e2e_s: f64,
    /// Prompt share of engine time at the operating point.
    op_prefill_share: f64,
    /// The class's measured power over TDP, when calibrated.
    pub(super) power_fraction: Option<f64>,
}

fn scaled(c: &Calibration, p: &Perturb) -> Calibration {
    let mut c = c.clone();
    c.decode.weight_read_factor *= p.decode;
    c.decode.kv_read_factor *= p.decode;
    c.decode.compute_factor *= p.decode;
    c.decode.step_overhead_s *= p.decode;
    c.prefill.matrix_factor *= p.prefill;
    c.prefill.attention_factor *= p.prefill;
    c
}

fn total_weight_bytes(s: &ModelShape) -> f64 {
    s.shared_weight_bytes as f64
        + f64::from(s.moe_layers) * f64::from(s.experts) * s.expert_weight_bytes as f64
}

/// The limits of `tp` devices of `spec` acting as one.
fn group_limits(spec: &HardwareSpec, tp: u32) -> DeviceLimits {
    let mut l = spec.as_limits();
    let t = f64::from(tp);
    l.read_gb_per_s *= t;
    l.copy_gb_per_s *= t;
    for v in l.matmul_gflop_per_s.values_mut() {
        *v *= t;
    }
    l
}

fn meets(slo: Option<&PlanSlo>, ttft_p99_ms: f64, tpot_ms: f64) -> bool {
    slo.is_none_or(|s| {
        s.ttft_p99_ms.is_none_or(|m| ttft_p99_ms <= m) && s.tpot_p99_ms.is_none_or(|m| tpot_ms <= m)
    })
}

pub(super) fn evaluate_device(
    inp: &PlanInputs<'_>,
    spec: &HardwareSpec,
    cal: &Calibration,
    p: &Perturb,
) -> DeviceEval {
    let mut eval = DeviceEval {
        fit: None,
        curve: Vec::new(),
        op: None,
        unmet: None,
        kv_capacity_bytes: 0.0,
        op_e2e_s: 0.0,
        op_prefill_share: 0.0,
        power_fraction: None,
    };
    let Some(shape) = inp.shapes.get(&spec.class) else {
        eval.unmet = Some(format!(
            "no model shape for a {} device",
            spec.class.as_str()
        ));
        return eval;
    };
    let w = &inp.workload;
    let req = RequestShape {
        input_tokens: w.input_tokens_mean * p.input,
        cached_fraction: w.cached_fraction,
        output_tokens: w.output_tokens_mean * p.output,
    };
    let weights = total_weight_bytes(shape);
    let kv_session = shape.kv_bytes_per_token as f64 * (req.input_tokens + req.output_tokens);
    let usable = spec.memory_gb * 1e9 * USABLE_MEMORY_FRACTION;
    let fits = |t: u32| weights + kv_session <= usable * f64::from(t);
    // Tensor-parallel groups that fit and that the node can link (a group needs an
    // interconnect); the one serving the most requests per device under the
    // objective is taken (the smallest when none meets it).
    let tps: Vec<u32> = [1u32, 2, 4, 8, 16]
        .into_iter()
        .filter(|t| *t <= spec.max_per_node && (*t == 1 || spec.interconnect_gb_per_s.is_some()))
        .filter(|t| fits(*t))
        .collect();
    if tps.is_empty() {
        eval.unmet = Some(format!(
            "{:.1} GB of weights and one session's {:.2} GB of KV do not fit {} x {} GB ({}% usable)",
            weights / 1e9,
            kv_session / 1e9,
            spec.max_per_node,
            spec.memory_gb,
            (USABLE_MEMORY_FRACTION * 100.0) as u32
        ));
        return eval;
    }
    let evals: Vec<DeviceEval> = tps
        .iter()
        .map(|&tp| at_tp(inp, spec, cal, p, shape, &req, tp, eval.clone()))
        .collect();
    let per_device = |e: &DeviceEval| {
        let tp = e.fit.as_ref().map_or(1, |f| f.tensor_parallel);
        e.op.as_ref().map(|o| o.requests_per_s / f64::from(tp))
    };
    evals
        .iter()
        .filter(|e| per_device(e).is_some())
        .max_by(|a, b| {
            per_device(a)
                .unwrap_or(0.0)
                .total_cmp(&per_device(b).unwrap_or(0.0))
        })
        .cloned()
        .unwrap_or_else(|| evals[0].clone())
}

/// `spec` as a group of `tp` devices: its fit, curve and operating point.
#[allow(clippy::too_many_arguments)]
fn at_tp(
    inp: &PlanInputs<'_>,
    spec: &HardwareSpec,
    cal: &Calibration,
    p: &Perturb,
    shape: &ModelShape,
    req: &RequestShape,
    tp: u32,
    mut eval: DeviceEval,
) -> DeviceEval {
    let w = &inp.workload;
    let weights = total_weight_bytes(shape);
    let kv_session = shape.kv_bytes_per_token as f64 * (req.input_tokens + req.output_tokens);
    let usable = spec.memory_gb * 1e9 * USABLE_MEMORY_FRACTION;
    let kv_capacity = usable * f64::from(tp) - weights;
    let max_conc = ((kv_capacity / kv_session.max(1.0)).floor() as u64)
        .min(u64::from(inp.engine.max_batch))
        .max(1) as u32;
    eval.kv_capacity_bytes = kv_capacity;
    let (per_seq, per_step, ic) = match spec.interconnect_gb_per_s {
        Some(gb) if tp > 1 => {
            let link = gb * 1e9;
            let collectives = 2.0 * f64::from(inp.dims.layers);
            let t = f64::from(tp);
            let bytes = f64::from(inp.dims.hidden) * 2.0 * 2.0 * (t - 1.0) / t;
            (
                collectives * bytes / link,
                collectives * COLLECTIVE_LATENCY_S,
                Some("uncalibrated".to_string()),
            )
        }
        _ => (0.0, 0.0, None),
    };
    eval.fit = Some(FitInfo {
        weights_gb: weights / 1e9,
        kv_gb_per_session: kv_session / 1e9,
        tensor_parallel: tp,
        max_concurrency: max_conc,
        interconnect_term: ic,
    });
    let limits = group_limits(spec, tp);
    let cal = scaled(cal, p);
    let dev = DeviceModel {
        limits: &limits,
        shape,
        calibration: &cal,
        allreduce_s_per_seq: per_seq,
        allreduce_s_per_step: per_step,
    };
    let mut levels: Vec<u32> = std::iter::successors(Some(1u32), |c| c.checked_mul(2))
        .take_while(|c| *c < max_conc)
        .collect();
    levels.push(max_conc);
    let mut op: Option<(CurvePoint, f64, f64)> = None;
    for c in levels {
        let Some(pt) = serve(&dev, req, &inp.engine, c) else {
            eval.unmet = Some(format!(
                "the device lists no throughput for {} weights, or the projection did not converge",
                shape.precision
            ));
            return eval;
        };
        let p99 = ttft_at_input(&dev, req, &inp.engine, &pt, w.input_tokens_p99 * p.input)
            .filter(|v| v.is_finite())
            .unwrap_or(pt.ttft_s);
        let cp = CurvePoint {
            concurrency: c,
            ttft_ms: pt.ttft_s * 1e3,
            ttft_p99_ms: p99 * 1e3,
            tpot_ms: pt.tpot_s * 1e3,
            requests_per_s: pt.requests_per_s,
            output_tokens_per_s: pt.output_tokens_per_s,
            output_tokens_per_s_per_user: pt.output_tokens_per_s_per_user,
            meets_slo: meets(inp.slo.as_ref(), p99 * 1e3, pt.tpot_s * 1e3),
        };
        if cp.meets_slo
            && op
                .as_ref()
                .is_none_or(|(o, _, _)| cp.requests_per_s > o.requests_per_s)
        {
            op = Some((cp.clone(), pt.e2e_s, pt.prefill_share));
        }
        eval.curve.push(cp);
    }
    match op {
        Some((o, e2e, share)) => {
            eval.op = Some(o);
            eval.op_e2e_s = e2e;
            eval.op_prefill_share = share;
        }
        None => {
            let first = &eval.curve[0];
            eval.unmet = Some(format!(
                "no concurrency meets the objective: even 1 session projects p99 TTFT {:.0} ms and TPOT {:.1} ms (tensor-parallel {tp})",
                first.ttft_p99_ms, first.tpot_ms
            ));
        }
    }
    eval
}

pub(super) fn price_unit(
    inp: &PlanInputs<'_>,
    spec: &HardwareSpec,
    tp: u32,
    pricing: &Pricing,
    factor: f64,
) -> Result<UnitPrice, String> {
    let part = inp
        .prices
        .part_named(&spec.part)
        .map_err(|e| e.to_string())?;
    let billed = spec.price_units * tp;
    let h = inp
        .prices
        .part_price(part, billed, &pricing.tier, &pricing.region)
        .map_err(|e| e.to_string())?;
    let shock = match &pricing.shock {
        Some((p, f)) if *p == spec.part || (p == "*gpu" && spec.class == DeviceClass::Gpu) => *f,
        _ => 1.0,
    };
    Ok(UnitPrice {
        part: part.name.clone(),
        billed_units: billed,
        usd_per_unit_hour: h.usd_per_unit_hour * f64::from(billed) * shock * factor,
        source: h.source,
    })
}

pub(super) fn level_plan(
    inp: &PlanInputs<'_>,
    spec: &HardwareSpec,
    eval: &DeviceEval,
    price: Option<&UnitPrice>,
    multiplier: f64,
    p: &Perturb,
) -> LevelPlan {
    let rps = inp.traffic.requests_per_s * multiplier * p.traffic;
    let mut lp = LevelPlan {
        multiplier,
        requests_per_s: rps,
        carried: false,
        reason: None,
        units: None,
        devices: None,
        monthly_usd: None,
        usd_per_m_input: None,
        usd_per_m_output: None,
        usd_per_m_cached_input: None,
        usd_per_request: None,
        usd_per_task: None,
        output_tokens_per_j: None,
        power_basis: None,
    };
    let (Some(op), Some(fit)) = (&eval.op, &eval.fit) else {
        lp.reason = eval.unmet.clone();
        return lp;
    };
    let units = (rps / (op.requests_per_s * inp.max_utilisation))
        .ceil()
        .max(1.0);
    if units > inp.max_units as f64 {
        lp.reason = Some(format!(
            "needs {units:.0} units of {} (more than --max-units {})",
            spec.name, inp.max_units
        ));
        return lp;
    }
    let units_u = units as u64;
    let devices = units_u * u64::from(fit.tensor_parallel);
    lp.carried = true;
    lp.units = Some(units_u);
    lp.devices = Some(devices);
    let w = &inp.workload;
    let (input, output) = (
        w.input_tokens_mean * p.input,
        w.output_tokens_mean * p.output,
    );
    let watts = spec.tdp_w * devices as f64 * eval.power_fraction.unwrap_or(1.0);
    lp.output_tokens_per_j = Some(rps * output / watts);
    lp.power_basis = Some(
        if eval.power_fraction.is_some() {
            "measured_fraction_of_tdp"
        } else {
            "tdp"
        }
        .into(),
    );
    if let Some(price) = price {
        let usd_per_s = units * price.usd_per_unit_hour / 3600.0;
        lp.monthly_usd = Some(units * price.usd_per_unit_hour * HOURS_PER_MONTH);
        let per_req = usd_per_s / rps;
        lp.usd_per_request = Some(per_req);
        lp.usd_per_task = Some(per_req * w.calls_per_task);
        let share = eval.op_prefill_share;
        let computed = input * (1.0 - w.cached_fraction);
        if computed > 0.0 {
            lp.usd_per_m_input = Some(usd_per_s * share / (rps * computed) * 1e6);
        }
        lp.usd_per_m_output = Some(usd_per_s * (1.0 - share) / (rps * output) * 1e6);
        if let Some(shape) = inp.shapes.get(&spec.class)
            && eval.kv_capacity_bytes > 0.0
        {
            let unit_usd_per_s = price.usd_per_unit_hour / 3600.0;
            lp.usd_per_m_cached_input = Some(
                unit_usd_per_s * shape.kv_bytes_per_token as f64 * eval.op_e2e_s
                    / eval.kv_capacity_bytes
                    * 1e6,
            );
        }
    }
    lp
}

/// A remote result as a candidate: measured, at its measured load.
fn remote_candidate(inp: &PlanInputs<'_>, e: &ResultEntry) -> Candidate {
    let l = &e.latency;
    let measured = match (l.ttft_ms.p50, l.ttft_ms.p99, l.tpot_ms.p99) {
        (Some(a), Some(b), Some(c)) if e.requests.ok > 0 => Some((a, b, c)),
        _ => None,
    };
    let (ttft, ttft99, tpot99) = measured.unwrap_or((0.0, 0.0, 0.0));
    let point = CurvePoint {
        concurrency: e.load.concurrency.unwrap_or(0),
        ttft_ms: ttft,
        ttft_p99_ms: ttft99,
        tpot_ms: tpot99,
        requests_per_s: e.throughput.requests_per_s,
        output_tokens_per_s: e.throughput.output_tokens_per_s,
        output_tokens_per_s_per_user: e.throughput.output_tokens_per_s_per_user.unwrap_or(0.0),
        meets_slo: measured.is_some() && meets(inp.slo.as_ref(), ttft99, tpot99),
    };
    let w = &inp.workload;
    // Price the plan's requests with the report's rate card, else the price
    // catalog's for (kind, model); else the measured cost per request.
    let card = e
        .target
        .prices
        .clone()
        .or_else(|| inp.prices.rate_card(&e.target.kind, &e.target.model));
    let per_req = card
        .as_ref()
        .map(|c| {
            let cached = w.input_tokens_mean * w.cached_fraction;
            let fresh = w.input_tokens_mean - cached;
            (fresh * c.input_usd_per_m
                + cached * c.cached_input_usd_per_m.unwrap_or(c.input_usd_per_m)
                + w.output_tokens_mean * c.output_usd_per_m)
                / 1e6
        })
        .or_else(|| e.cost.as_ref().and_then(|c| c.usd_per_request));
    let label = e.target.label();
    let levels = inp
        .traffic
        .multipliers
        .iter()
        .map(|&m| {
            let rps = inp.traffic.requests_per_s * m;
            let carried = point.meets_slo && per_req.is_some();
            LevelPlan {
                multiplier: m,
                requests_per_s: rps,
                carried,
                reason: (!carried).then(|| {
                    if measured.is_none() {
                        "no successful request was measured: no latency to judge".to_string()
                    } else if per_req.is_none() {
                        "not priced: neither the report nor the price catalog has a rate card for it, and the report has no cost".to_string()
                    } else {
                        format!(
                            "measured p99 TTFT {ttft99:.0} ms, TPOT {tpot99:.1} ms miss the objective"
                        )
                    }
                }),
                units: None,
                devices: None,
                monthly_usd: per_req.map(|r| r * rps * HOURS_PER_MONTH * 3600.0),
                usd_per_m_input: card.as_ref().map(|c| c.input_usd_per_m),
                usd_per_m_output: card.as_ref().map(|c| c.output_usd_per_m),
                usd_per_m_cached_input: card
                    .as_ref()
                    .map(|c| c.cached_input_usd_per_m.unwrap_or(c.input_usd_per_m)),
                usd_per_request: per_req,
                usd_per_task: per_req.map(|r| r * w.calls_per_task),
                output_tokens_per_j: None,
                power_basis: None,
            }
        })
        .collect();
    Candidate {
        name: format!("{label} / {}", e.workload.name),
        kind: CandidateKind::Remote,
        projected: false,
        class: None,
        calibrated: true,
        error_band: None,
        fit: None,
        curve: if measured.is_some() { vec![point.clone()] } else { Vec::new() },
        operating_point: point.meets_slo.then_some(point),
        unmet: measured
            .is_none()
            .then(|| "no successful request was measured".to_string()),
        price: None,
        unpriced: per_req
            .is_none()
            .then(|| "neither the report nor the price catalog has a rate card for it, and the report has no cost".to_string()),
        levels,
    }
}

/// Leave-one-out back-test of the closed-loop points of a class.
fn error_band(inp: &PlanInputs<'_>, class: DeviceClass) -> (Option<f64>, Option<f64>, usize) {
    let pts: Vec<(ResultEntry, Observed)> = inp
        .entries
        .iter()
        .filter(|e| e.load.concurrency.is_some())
        .filter_map(|e| Some(((*e).clone(), fit_basis(inp, Observed::of(e)?))))
        .filter(|(_, o)| o.class == class)
        .map(|(mut e, o)| {
            // Predict against the limits the fit used.
            if let Some(rf) = e.roofline.as_mut() {
                rf.limits = o.limits.clone();
            }
            (e, o)
        })
        .collect();
    if pts.len() < 5 {
        return (None, None, 0);
    }
    let mut preds = Vec::new();
    for i in 0..pts.len() {
        let rest: Vec<Observed> = pts
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, (_, o))| o.clone())
            .collect();
        if let Some(cal) = Calibration::fit(class, &rest)
            && let Some(p) = predict(&cal, &pts[i].0)
        {
            preds.push(p);
        }
    }
    let s = summarize(&preds.iter().collect::<Vec<_>>());
    (
        s.decode_median_abs_error,
        s.ttft_median_abs_error,
        preds.len(),
    )
}

pub(super) struct Built {
    pub(super) cands: Vec<Candidate>,
    /// Per candidate index: its spec and evaluation (devices only).
    pub(super) evals: Vec<Option<(HardwareSpec, DeviceEval)>>,
}

/// Per catalog device, the median measured power over TDP of the results measured
/// on it: GPU results with NVML energy whose device the hardware catalog recognises.
fn power_fractions(inp: &PlanInputs<'_>) -> Vec<DevicePower> {
    let mut by: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for e in &inp.entries {
        let (Some(rf), Some(en)) = (e.roofline.as_ref(), e.energy.as_ref()) else {
            continue;
        };
        if !matches!(
            en.source,
            Some(EnergySource::NvmlCounter | EnergySource::NvmlPowerIntegrated)
        ) {
            continue;
        }
        let (Some(w), Some(spec)) = (
            en.avg_power_w.filter(|w| *w > 0.0 && w.is_finite()),
            inp.hardware.recognise(&rf.limits.name),
        ) else {
            continue;
        };
        by.entry(spec.name.clone())
            .or_default()
            .push(w / (spec.tdp_w * en.devices.len().max(1) as f64));
    }
    by.into_iter()
        .filter_map(|(device, v)| {
            Some(DevicePower {
                device,
                results: v.len(),
                fraction_of_tdp: median(v)?,
            })
        })
        .collect()
}

/// The limits a measured result is fitted against: the catalog's spec when it
/// recognises the device (so that factors apply to spec limits alike), else the
/// measured ones.
fn fit_basis(inp: &PlanInputs<'_>, mut o: Observed) -> Observed {
    if o.class == DeviceClass::Gpu
        && let Some(spec) = inp.hardware.recognise(&o.limits.name)
    {
        o.limits = spec.as_limits();
    }
    o
}

pub(super) fn calibrations(inp: &PlanInputs<'_>) -> Result<Vec<ClassCalibration>, PlanError> {
    let observed: Vec<Observed> = inp
        .entries
        .iter()
        .filter_map(|e| Observed::of(e))
        .map(|o| fit_basis(inp, o))
        .collect();
    let power = power_fractions(inp);
    let mut out = Vec::new();
    for class in [DeviceClass::Gpu, DeviceClass::Cpu] {
        let points = observed.iter().filter(|o| o.class == class).count();
        let class_power: Vec<DevicePower> = power
            .iter()
            .filter(|p| {
                inp.hardware
                    .device_named(&p.device)
                    .is_ok_and(|d| d.class == class)
            })
            .cloned()
            .collect();
        if let Some(cal) = Calibration::fit(class, &observed) {
            let (d, t, n) = error_band(inp, class);
            out.push(ClassCalibration {
                calibration: cal,
                decode_error_band: d,
                ttft_error_band: t,
                backtest_points: n,
                power: class_power,
                uncalibrated_because: None,
            });
        } else if let Some(d) = inp.hardware.default_for(class) {
            out.push(ClassCalibration {
                calibration: Calibration::default_of(d),
                decode_error_band: None,
                ttft_error_band: None,
                backtest_points: 0,
                power: class_power,
                uncalibrated_because: Some(if points == 0 {
                    format!("no measured {} result was given", class.as_str())
                } else {
                    format!(
                        "{points} measured {} results could not be fitted (no decode-only steps or no computed prompt tokens)",
                        class.as_str()
                    )
                }),
            });
        } else {
            return Err(PlanError(format!(
                "no measured {} result calibrates the planner and the hardware catalog has no default_efficiency for class `{}`",
                class.as_str(),
                class.as_str()
            )));
        }
    }
    Ok(out)
}

pub(super) fn build(
    inp: &PlanInputs<'_>,
    cals: &[ClassCalibration],
    specs: &[&HardwareSpec],
    pricing: &Pricing,
    p: &Perturb,
) -> Built {
    let mut cands = Vec::new();
    let mut evals = Vec::new();
    for spec in specs {
        let Some(cc) = cals.iter().find(|c| c.calibration.class == spec.class) else {
            continue;
        };
        let mut eval = evaluate_device(inp, spec, &cc.calibration, p);
        eval.power_fraction = cc
            .power
            .iter()
            .find(|p| p.device == spec.name)
            .map(|p| p.fraction_of_tdp);
        let tp = eval.fit.as_ref().map_or(1, |f| f.tensor_parallel);
        let (price, unpriced) = match price_unit(inp, spec, tp, pricing, p.price) {
            Ok(u) => (Some(u), None),
            Err(e) => (None, Some(e)),
        };
        let levels = inp
            .traffic
            .multipliers
            .iter()
            .map(|&m| level_plan(inp, spec, &eval, price.as_ref(), m, p))
            .collect();
        cands.push(Candidate {
            name: spec.name.clone(),
            kind: CandidateKind::Device,
            projected: true,
            class: Some(spec.class),
            calibrated: cc.calibration.source.calibrated,
            error_band: cc.decode_error_band,
            fit: eval.fit.clone(),
            curve: eval.curve.clone(),
            operating_point: eval.op.clone(),
            unmet: eval.unmet.clone(),
            price,
            unpriced,
            levels,
        });
        evals.push(Some(((*spec).clone(), eval)));
    }
    for e in inp.entries.iter().filter(|e| !e.target.is_local()) {
        cands.push(remote_candidate(inp, e));
        evals.push(None);
    }
    Built { cands, evals }
}
