//! The plan document (`infermeter plan --json`): every candidate's projected curve,
//! operating point, fleet and money at each traffic level, the scenarios and the
//! sensitivity table. Every projected figure sits in a section that says it is
//! projected, by which calibration, and with what back-tested error.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::fit::Calibration;
use super::hardware::DeviceClass;

/// The `schema` of plan documents.
pub const PLAN_SCHEMA: &str = "infermeter.plan";
/// Their version.
pub const PLAN_SCHEMA_VERSION: &str = "1.0";

/// A whole plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanDoc {
    /// Always [`PLAN_SCHEMA`].
    pub schema: String,
    /// [`PLAN_SCHEMA_VERSION`].
    pub schema_version: String,
    /// The infermeter version.
    pub tool_version: String,
    /// `name version` of the hardware spec catalog.
    pub hardware_catalog: String,
    /// `name version` of the price catalog.
    pub price_catalog: String,
    /// The model planned for.
    pub model: String,
    /// Its weight precision.
    pub precision: String,
    /// The requests planned for.
    pub workload: PlanWorkload,
    /// The objective an operating point must meet; `null`: none (the highest
    /// throughput point is taken).
    pub slo: Option<PlanSlo>,
    /// Traffic at 1x.
    pub traffic: PlanTraffic,
    /// Price tier and region of the baseline.
    pub tier: String,
    /// Region of the baseline.
    pub region: String,
    /// The calibration each device class was projected with.
    pub calibrations: Vec<ClassCalibration>,
    /// Every candidate.
    pub candidates: Vec<Candidate>,
    /// Per traffic level: the cheapest candidate that carries it, and self-host vs
    /// API.
    pub levels: Vec<LevelSummary>,
    /// Price scenarios: the cheapest candidate and its monthly cost under each.
    pub scenarios: Vec<Scenario>,
    /// Which input moves the cheapest baseline's monthly cost most (at the largest
    /// traffic level).
    pub sensitivity: Vec<Sensitivity>,
    /// What the reader must know.
    pub notes: Vec<String>,
}

/// The requests planned for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanWorkload {
    /// Its name.
    pub name: String,
    /// Where the lengths come from (`workload spec`, `measured reports`).
    pub source: String,
    /// Mean prompt tokens per request.
    pub input_tokens_mean: f64,
    /// 99th percentile prompt tokens (the p99 TTFT is projected at it).
    pub input_tokens_p99: f64,
    /// Mean output tokens per request.
    pub output_tokens_mean: f64,
    /// Share of prompt tokens served from a prefix cache (0-1).
    pub cached_fraction: f64,
    /// Requests per task (1 for single calls).
    pub calls_per_task: f64,
}

/// The objective.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanSlo {
    /// Most p99 TTFT, ms.
    pub ttft_p99_ms: Option<f64>,
    /// Most p99 TPOT, ms.
    pub tpot_p99_ms: Option<f64>,
}

/// Traffic at 1x and its multipliers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanTraffic {
    /// Requests per second at 1x.
    pub requests_per_s: f64,
    /// Tasks per day at 1x, when traffic was given so.
    pub tasks_per_day: Option<f64>,
    /// Levels planned, as multiples of 1x.
    pub multipliers: Vec<f64>,
}

/// A class's calibration with its back-tested error band.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClassCalibration {
    /// The calibration.
    pub calibration: Calibration,
    /// Leave-one-out back-test over the calibration's own points: median absolute
    /// relative error of projected decode tokens/s; `null` with fewer than 5 points.
    pub decode_error_band: Option<f64>,
    /// The same for TTFT.
    pub ttft_error_band: Option<f64>,
    /// Points the back-test held out.
    pub backtest_points: usize,
    /// Measured power over TDP per catalog device the class's results ran on (GPU
    /// results with NVML energy on a device the hardware catalog recognises); other
    /// devices are projected at TDP.
    pub power: Vec<DevicePower>,
    /// Why the class is projected with the catalog's default efficiencies; `null`
    /// when calibrated.
    pub uncalibrated_because: Option<String>,
}

/// A device's measured power.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DevicePower {
    /// The catalog device.
    pub device: String,
    /// Median mean power over TDP.
    pub fraction_of_tdp: f64,
    /// Results that gave it.
    pub results: usize,
}

/// How a candidate is run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CandidateKind {
    /// A catalog device running the model (projected).
    Device,
    /// A remote provider, as measured (not projected).
    Remote,
}

/// How the model fits a device.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FitInfo {
    /// Weights, GB.
    pub weights_gb: f64,
    /// KV cache of one session (mean prompt + reply), GB.
    pub kv_gb_per_session: f64,
    /// Devices per unit (tensor-parallel degree).
    pub tensor_parallel: u32,
    /// Most sessions the unit's memory holds (capped at the planner's batch limit).
    pub max_concurrency: u32,
    /// `uncalibrated`: the interconnect term of tensor parallelism is a formula
    /// (ring all-reduce over the spec link, 10 µs per collective), never measured.
    pub interconnect_term: Option<String>,
}

/// One point of a candidate's throughput vs interactivity curve (per unit).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CurvePoint {
    /// Sessions in flight per unit.
    pub concurrency: u32,
    /// Median-like TTFT (mean prompt), ms.
    pub ttft_ms: f64,
    /// p99 TTFT (at the p99 prompt), ms.
    pub ttft_p99_ms: f64,
    /// TPOT (mean step; interference tails not modelled), ms.
    pub tpot_ms: f64,
    /// Requests per second per unit.
    pub requests_per_s: f64,
    /// Output tokens per second per unit.
    pub output_tokens_per_s: f64,
    /// Output tokens per second per session.
    pub output_tokens_per_s_per_user: f64,
    /// Whether it meets the objective.
    pub meets_slo: bool,
}

/// A candidate's price per unit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UnitPrice {
    /// The price catalog's part.
    pub part: String,
    /// Billing units per fleet unit (devices x price units).
    pub billed_units: u32,
    /// USD per fleet unit and hour (tier and region applied).
    pub usd_per_unit_hour: f64,
    /// The catalog's source of the price.
    pub source: String,
}

/// A candidate at one traffic level.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LevelPlan {
    /// Multiple of 1x.
    pub multiplier: f64,
    /// Requests per second to carry.
    pub requests_per_s: f64,
    /// Whether the candidate carries it (meets the objective with at most the
    /// allowed fleet).
    pub carried: bool,
    /// Why not, when not.
    pub reason: Option<String>,
    /// Fleet units (each `tensor_parallel` devices).
    pub units: Option<u64>,
    /// Devices in the fleet.
    pub devices: Option<u64>,
    /// USD per month (730 hours).
    pub monthly_usd: Option<f64>,
    /// USD per million uncached input tokens (by prompt-time share).
    pub usd_per_m_input: Option<f64>,
    /// USD per million output tokens (by decode-time share).
    pub usd_per_m_output: Option<f64>,
    /// USD per million cached input tokens: the KV memory they hold for a request's
    /// lifetime, priced as the unit's memory share. An attribution within the
    /// fleet's cost, not an addition to it: the input and output shares already add
    /// up to the whole (`usd_per_request`).
    pub usd_per_m_cached_input: Option<f64>,
    /// USD per request.
    pub usd_per_request: Option<f64>,
    /// USD per task (requests per task x per request).
    pub usd_per_task: Option<f64>,
    /// Output tokens per joule of device power (see `power_basis`).
    pub output_tokens_per_j: Option<f64>,
    /// `tdp`: the devices drawing their TDP the whole time (no measured power
    /// fraction was measured on this device); `measured_fraction_of_tdp`: TDP times
    /// the device's measured fraction (`calibrations[].power`).
    pub power_basis: Option<String>,
}

/// One candidate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Candidate {
    /// Device name, or the remote target's label.
    pub name: String,
    /// Device or remote.
    pub kind: CandidateKind,
    /// Whether its figures are projected (devices) or measured (remotes).
    pub projected: bool,
    /// The class whose calibration projects it.
    pub class: Option<DeviceClass>,
    /// Whether that calibration was measured on its class (`false`: the catalog's
    /// default efficiencies, or a calibration of another class: uncalibrated).
    pub calibrated: bool,
    /// The error band of its projections (median absolute relative error of decode
    /// tokens/s in the class's back-test); `null` when not back-tested.
    pub error_band: Option<f64>,
    /// How the model fits.
    pub fit: Option<FitInfo>,
    /// Throughput vs interactivity, per unit.
    pub curve: Vec<CurvePoint>,
    /// The highest-throughput point meeting the objective.
    pub operating_point: Option<CurvePoint>,
    /// Why there is none.
    pub unmet: Option<String>,
    /// Its price; `null` when the price catalog has none (see `unpriced`).
    pub price: Option<UnitPrice>,
    /// Why it is not priced.
    pub unpriced: Option<String>,
    /// Per traffic level.
    pub levels: Vec<LevelPlan>,
}

/// The cheapest candidate at a level, and self-host vs API.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LevelSummary {
    /// Multiple of 1x.
    pub multiplier: f64,
    /// Requests per second.
    pub requests_per_s: f64,
    /// The cheapest candidate carrying it; `null` when none does.
    pub cheapest: Option<String>,
    /// Its monthly cost.
    pub monthly_usd: Option<f64>,
    /// Its USD per task.
    pub usd_per_task: Option<f64>,
    /// The cheapest self-hosted (device) candidate, and the cheapest remote one,
    /// when both carry the level.
    pub break_even: Option<BreakEven>,
    /// Why nothing carries it.
    pub reason: Option<String>,
}

/// Self-hosting against an API.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BreakEven {
    /// The device candidate.
    pub device: String,
    /// The remote candidate.
    pub remote: String,
    /// Device fleet monthly USD over the API's at this level; `null` for a free API.
    pub self_host_over_api: Option<f64>,
    /// Requests per second above which one device unit costs less than the API (its
    /// price per second over the API's price per request); `null` when one unit
    /// cannot carry that many (self-hosting never pays off per request) or the API
    /// is free.
    pub break_even_requests_per_s: Option<f64>,
}

impl BreakEven {
    /// One sentence for tables and pages.
    pub fn sentence(&self) -> String {
        let ratio = self
            .self_host_over_api
            .map_or("an unpriced (free) API".to_string(), |r| {
                format!("{r:.2}x the API {}", self.remote)
            });
        let at = self.break_even_requests_per_s.map_or(
            "one unit never costs less per request than the API".to_string(),
            |r| format!("one unit pays off above {r:.3} requests/s"),
        );
        format!("self-hosting on {} costs {ratio}; {at}", self.device)
    }
}

/// One price scenario.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// What changes (`baseline`, `tier spot`, `region eu-sovereign`, `h100 x2`).
    pub name: String,
    /// Per level: the cheapest carrying candidate and its monthly cost.
    pub levels: Vec<ScenarioLevel>,
}

/// A scenario at one level.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScenarioLevel {
    /// Multiple of 1x.
    pub multiplier: f64,
    /// The cheapest candidate; `null` when none is priced and carries it.
    pub cheapest: Option<String>,
    /// Its monthly cost.
    pub monthly_usd: Option<f64>,
}

/// How one input moves the cheapest baseline's monthly cost at the largest level.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Sensitivity {
    /// The input.
    pub input: String,
    /// Its change, as a factor (0.75 and 1.25).
    pub low_factor: f64,
    /// See `low_factor`.
    pub high_factor: f64,
    /// Monthly cost with the input at `low_factor`; `null` when the candidate then
    /// carries nothing.
    pub monthly_usd_low: Option<f64>,
    /// ... at `high_factor`.
    pub monthly_usd_high: Option<f64>,
    /// `|high - low| / baseline`: the ranking key.
    pub swing: Option<f64>,
}
