//! Cost derived from a result's own figures and a price, so any report can be priced
//! again (another catalog, tier, region or date) without running anything.
//!
//! Remote targets are priced from a rate card: tokens of every sent request (failed
//! ones included: providers bill what they processed; retried 429s are not billed and
//! not counted) times the list prices, cached input and reasoning output at their own
//! prices where the server reported them.
//!
//! Local targets are priced from the hardware they ran on: the load point's measured
//! window times the billed units (GPUs, or the host's logical CPUs) times the
//! catalog's $/unit-hour, split into input (prefill) and output (decode) by the engine's
//! measured busy-time share. Idle time in the window is paid for, and split the same
//! way: an under-loaded machine costs more per token, as it does in a bill.

use crate::catalog::{Catalog, CatalogError, HardwareQuery};
use crate::report::{
    CostSource, CostStats, Device, Hardware, HardwarePriceRef, RateCard, ResultEntry,
};

/// Rounds dollars to the nano-dollar: a short load point on a CPU host costs
/// micro-dollars.
pub fn usd(x: f64) -> f64 {
    (x * 1e9).round() / 1e9
}

/// What a load point's dollars are divided by.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CostBasis {
    /// Total dollars.
    pub total: f64,
    /// Dollars of input tokens (cached ones included); `None` when not split.
    pub input_dollars: Option<f64>,
    /// Dollars of output tokens (reasoning included); `None` when not split.
    pub output_dollars: Option<f64>,
    /// Input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Requests sent.
    pub sent: u64,
    /// Tasks started.
    pub tasks_started: u64,
    /// Tasks completed.
    pub tasks_completed: u64,
    /// Tasks verified (every checked call passed; workloads with checkers).
    pub tasks_verified: Option<u64>,
}

/// The per-unit figures of a priced load point.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PerUnit {
    /// Input dollars per million input tokens.
    pub usd_per_m_input: Option<f64>,
    /// Output dollars per million output tokens.
    pub usd_per_m_output: Option<f64>,
    /// Total per million input plus output tokens.
    pub usd_per_m_blended_workload: Option<f64>,
    /// Total per sent request.
    pub usd_per_request: Option<f64>,
    /// Total per task started.
    pub usd_per_task: Option<f64>,
    /// Total per task completed.
    pub usd_per_successful_task: Option<f64>,
    /// Total per verified task.
    pub usd_per_verified_task: Option<f64>,
}

/// Dollars per million of `tokens`; `None` for no tokens.
pub fn per_million(dollars: f64, tokens: u64) -> Option<f64> {
    (tokens > 0).then(|| usd(dollars / tokens as f64 * 1e6))
}

impl CostBasis {
    /// The per-unit figures: the one place pricing and merging compute them.
    pub fn per_unit(&self) -> PerUnit {
        let per = |n: u64| (n > 0).then(|| usd(self.total / n as f64));
        PerUnit {
            usd_per_m_input: self
                .input_dollars
                .and_then(|d| per_million(d, self.input_tokens)),
            usd_per_m_output: self
                .output_dollars
                .and_then(|d| per_million(d, self.output_tokens)),
            usd_per_m_blended_workload: per_million(
                self.total,
                self.input_tokens + self.output_tokens,
            ),
            usd_per_request: per(self.sent),
            usd_per_task: per(self.tasks_started),
            usd_per_successful_task: per(self.tasks_completed),
            usd_per_verified_task: self.tasks_verified.and_then(per),
        }
    }

    /// The basis of `entry` priced at `total` dollars split as given.
    pub fn of(
        entry: &ResultEntry,
        total: f64,
        input_dollars: Option<f64>,
        output_dollars: Option<f64>,
    ) -> Self {
        let (tasks_started, tasks_completed) = entry
            .tasks
            .as_ref()
            .map_or((0, 0), |k| (k.started, k.completed));
        Self {
            total,
            input_dollars,
            output_dollars,
            input_tokens: entry.tokens.input,
            output_tokens: entry.tokens.output,
            sent: entry.requests.sent,
            tasks_started,
            tasks_completed,
            tasks_verified: entry.verification.as_ref().map(|v| v.tasks_verified),
        }
    }
}

/// Prices `entry` with `card` (its own `target.prices` by default).
pub fn price_with_rate_card(entry: &ResultEntry, card: &RateCard) -> CostStats {
    let t = &entry.tokens;
    let prov = t.provenance.as_ref();
    let cached = prov
        .map(|p| p.server_cached_input)
        .or(t.input_cached)
        .unwrap_or(0)
        .min(t.input);
    let reasoning = prov.map_or(0, |p| p.server_reasoning).min(t.output);
    let basis = match prov {
        Some(p) if p.requests_without_usage == 0 && p.requests_with_usage > 0 => "server_usage",
        _ => "report_counts",
    };
    let per_token = |per_m: f64| per_m / 1e6;
    let usd_input = (t.input - cached) as f64 * per_token(card.input_usd_per_m);
    let usd_cached =
        cached as f64 * per_token(card.cached_input_usd_per_m.unwrap_or(card.input_usd_per_m));
    let usd_output = (t.output - reasoning) as f64 * per_token(card.output_usd_per_m);
    let usd_reasoning =
        reasoning as f64 * per_token(card.reasoning_usd_per_m.unwrap_or(card.output_usd_per_m));
    let total = usd_input + usd_cached + usd_output + usd_reasoning;
    let u = CostBasis::of(
        entry,
        total,
        Some(usd_input + usd_cached),
        Some(usd_output + usd_reasoning),
    )
    .per_unit();
    CostStats {
        source: Some(CostSource::RateCard),
        reason: None,
        tokens_basis: Some(basis.to_string()),
        input_tokens: t.input - cached,
        cached_input_tokens: cached,
        output_tokens: t.output - reasoning,
        reasoning_tokens: reasoning,
        usd_total: Some(usd(total)),
        usd_input: Some(usd(usd_input)),
        usd_cached_input: Some(usd(usd_cached)),
        usd_output: Some(usd(usd_output)),
        usd_reasoning: Some(usd(usd_reasoning)),
        usd_per_m_input: u.usd_per_m_input,
        usd_per_m_output: u.usd_per_m_output,
        usd_per_m_blended_3_1: Some(usd(
            (3.0 * card.input_usd_per_m + card.output_usd_per_m) / 4.0
        )),
        usd_per_m_blended_workload: u.usd_per_m_blended_workload,
        usd_per_request: u.usd_per_request,
        usd_per_task: u.usd_per_task,
        usd_per_successful_task: u.usd_per_successful_task,
        usd_per_verified_task: u.usd_per_verified_task,
        rate_card: Some(card.clone()),
        hardware: None,
        billed_unit_s: None,
        input_time_share: None,
        usd_per_m_uncached_input: None,
        usd_per_m_cached_input: Some(card.cached_input_usd_per_m.unwrap_or(card.input_usd_per_m)),
        energy_usd_per_m_output: None,
        energy_usd_per_m_total: None,
    }
}

/// Prices a local target's `entry` with the hardware price `hw`.
pub fn price_with_hardware(entry: &ResultEntry, hw: &HardwarePriceRef) -> CostStats {
    let t = &entry.tokens;
    let window_s = entry.load.measured_s;
    let unit_s = window_s * f64::from(hw.units);
    let total = unit_s * hw.usd_per_unit_hour / 3600.0;
    let engine = entry.engine.as_ref();
    let share = engine.and_then(|e| {
        let (p, d) = (e.prefill_busy_s?, e.decode_busy_s?);
        (p + d > 0.0).then(|| p / (p + d))
    });
    let cached = engine
        .map(|e| e.prompt_tokens_cached)
        .or(t.input_cached)
        .unwrap_or(0)
        .min(t.input);
    let usd_input = share.map(|s| total * s);
    let usd_output = share.map(|s| total * (1.0 - s));
    let u = CostBasis::of(entry, total, usd_input, usd_output).per_unit();
    let energy = entry.energy.as_ref();
    let usd_per_j = hw.pue * hw.electricity_usd_per_kwh / 3.6e6;
    CostStats {
        source: Some(CostSource::HardwareHour),
        reason: None,
        tokens_basis: Some("engine".into()),
        input_tokens: t.input - cached,
        cached_input_tokens: cached,
        output_tokens: t.output,
        reasoning_tokens: 0,
        usd_total: Some(usd(total)),
        usd_input: usd_input.map(usd),
        usd_cached_input: None,
        usd_output: usd_output.map(usd),
        usd_reasoning: None,
        usd_per_m_input: u.usd_per_m_input,
        usd_per_m_output: u.usd_per_m_output,
        usd_per_m_blended_3_1: u
            .usd_per_m_input
            .zip(u.usd_per_m_output)
            .map(|(i, o)| usd((3.0 * i + o) / 4.0)),
        usd_per_m_blended_workload: u.usd_per_m_blended_workload,
        usd_per_request: u.usd_per_request,
        usd_per_task: u.usd_per_task,
        usd_per_successful_task: u.usd_per_successful_task,
        usd_per_verified_task: u.usd_per_verified_task,
        rate_card: None,
        hardware: Some(hw.clone()),
        billed_unit_s: Some((unit_s * 1000.0).round() / 1000.0),
        input_time_share: share.map(|s| (s * 1e6).round() / 1e6),
        usd_per_m_uncached_input: usd_input.and_then(|d| per_million(d, t.input - cached)),
        usd_per_m_cached_input: None,
        energy_usd_per_m_output: energy
            .and_then(|e| e.j_per_output_token)
            .map(|j| usd(j * 1e6 * usd_per_j)),
        energy_usd_per_m_total: energy
            .and_then(|e| e.tokens_per_j_total)
            .filter(|&x| x > 0.0)
            .map(|x| usd(1e6 / x * usd_per_j)),
    }
}

/// How to price with a catalog.
#[derive(Clone, Copy, Debug)]
pub struct Pricing<'a> {
    /// The catalog.
    pub catalog: &'a Catalog,
    /// Hardware tier (`on-demand`, `spot`, ...).
    pub tier: &'a str,
    /// Region.
    pub region: &'a str,
    /// Whether the catalog's rate card wins over one in the target spec (re-pricing
    /// applies a catalog; a run prefers what its spec says).
    pub catalog_rate_cards_first: bool,
}

impl<'a> Pricing<'a> {
    /// The catalog's defaults for tier and region.
    pub fn defaults(catalog: &'a Catalog) -> Self {
        Self {
            catalog,
            tier: &catalog.default_tier,
            region: &catalog.default_region,
            catalog_rate_cards_first: false,
        }
    }

    /// Checks that `tier` and `region` exist in the catalog.
    pub fn check(&self) -> Result<(), CatalogError> {
        self.catalog.region(self.region)?;
        if !self.catalog.tiers().contains(self.tier) {
            return Err(CatalogError(format!(
                "tier `{}` has no prices in catalog {} (tiers: {})",
                self.tier,
                self.catalog.label(),
                self.catalog
                    .tiers()
                    .into_iter()
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        Ok(())
    }
}

/// What `entry`'s target bills by: its GPU or its host's CPUs; `Err` says why it
/// cannot be priced by hardware.
pub fn hardware_query<'a>(
    entry: &ResultEntry,
    hardware: &'a Hardware,
) -> Result<HardwareQuery<'a>, String> {
    match entry.target.device {
        Some(Device::Gpu) => {
            let gpu = hardware.gpus.first().ok_or_else(|| {
                format!(
                    "{} runs on a GPU, but the report's hardware lists no GPU",
                    entry.target.kind
                )
            })?;
            Ok(HardwareQuery {
                gpu_name: Some(&gpu.name),
                arch: &hardware.arch,
                units: 1,
            })
        }
        Some(Device::Cpu) => Ok(HardwareQuery {
            gpu_name: None,
            arch: &hardware.arch,
            units: hardware.cpu_logical_cores.max(1),
        }),
        None => Err(format!(
            "target kind `{}` runs on no local device and is not priced by hardware",
            entry.target.kind
        )),
    }
}

/// The cost of `entry` (run on `hardware`) with `pricing`; without a catalog only
/// rate cards in the target spec price anything. A figure that cannot be priced says
/// why in `reason`.
pub fn price(entry: &ResultEntry, hardware: &Hardware, pricing: Option<&Pricing<'_>>) -> CostStats {
    if entry.target.is_local() {
        let Some(p) = pricing else {
            return CostStats::unpriced(
                "local target: needs a hardware price catalog ($/hour); none was given",
            );
        };
        let priced = hardware_query(entry, hardware).and_then(|q| {
            p.catalog
                .hardware_price(&q, p.tier, p.region)
                .map_err(|e| e.0)
        });
        return match priced {
            Ok(hw) => price_with_hardware(entry, &hw),
            Err(reason) => CostStats::unpriced(&reason),
        };
    }
    let from_catalog = pricing.and_then(|p| {
        p.catalog
            .rate_card(&entry.target.kind, &entry.target.model)
            .map(|c| (c, p.catalog_rate_cards_first))
    });
    let card = match (from_catalog, &entry.target.prices) {
        (Some((cat, true)), _) => Some(cat),
        (_, Some(own)) => Some(own.clone()),
        (Some((cat, false)), None) => Some(cat),
        (None, None) => None,
    };
    match card {
        Some(card) => price_with_rate_card(entry, &card),
        None => CostStats::unpriced(&format!(
            "no rate card for model `{}` of target kind `{}`: give the target's prices (price.input_usd_per_m, price.output_usd_per_m) or add a [[rate_card]] to the catalog",
            entry.target.model, entry.target.kind
        )),
    }
}
