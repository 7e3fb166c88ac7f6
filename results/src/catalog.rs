//! Price catalogs: versioned TOML files of what hardware, electricity and provider
//! tokens cost, every figure with its `source` and `as_of`. A report stores raw
//! measurements; a catalog turns them into dollars, so one run can be priced for any
//! tier, region or date (`infermeter prices apply`).
//!
//! Lookup rules (also in the README):
//! - hardware: a `[[part]]` is chosen by matching its `match` substrings against the
//!   GPU name (GPU targets) or by `unit = "vcpu"` (CPU hosts, priced per logical CPU);
//! - a `[[hardware_price]]` for (part, tier, region) is used as written; without one,
//!   the region-less price for (part, tier) is scaled by the region's
//!   `hardware_multiplier` (regional and sovereign premiums);
//! - a `[[rate_card]]` is chosen by (provider = target kind, model).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::report::{HardwarePriceRef, PartUnit, RateCard};

/// The catalog shipped with infermeter (`results/catalog/default.toml`).
pub const DEFAULT_CATALOG_TOML: &str = include_str!("../catalog/default.toml");

/// The catalog file format this build reads.
pub const CATALOG_FORMAT: u32 = 1;

/// A price catalog.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    /// File format version: 1.
    pub format: u32,
    /// The catalog's name.
    pub name: String,
    /// The catalog's version (a date), copied into every cost it prices.
    pub version: String,
    /// Region used when none is asked for.
    pub default_region: String,
    /// Tier used when none is asked for.
    pub default_tier: String,
    /// Regions: electricity, PUE and hardware price multipliers.
    #[serde(default)]
    pub region: Vec<Region>,
    /// Hardware parts and how to recognise them.
    #[serde(default)]
    pub part: Vec<Part>,
    /// Hardware prices per hour.
    #[serde(default)]
    pub hardware_price: Vec<HardwarePrice>,
    /// Provider list prices per model.
    #[serde(default)]
    pub rate_card: Vec<CatalogRateCard>,
}

/// A region.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Region {
    /// Region name (`us`, `eu`, `eu-sovereign`, ...).
    pub name: String,
    /// Factor applied to region-less hardware prices (1 = the reference price).
    pub hardware_multiplier: f64,
    /// Electricity price, USD per kWh.
    pub electricity_usd_per_kwh: f64,
    /// Power usage effectiveness of the data centre (facility / IT energy, >= 1).
    pub pue: f64,
    /// Where the figures come from.
    pub source: String,
    /// When they were read or what period they describe.
    pub as_of: String,
}

/// A hardware part.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Part {
    /// Part name (`h100`, `cpu-x86_64`, ...).
    pub name: String,
    /// Billing unit.
    pub unit: PartUnit,
    /// Case-insensitive substrings of the GPU name (GPU parts) or of the CPU
    /// architecture (vCPU parts) that select this part.
    #[serde(rename = "match")]
    pub matches: Vec<String>,
}

/// The price of one unit of a part for an hour.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HardwarePrice {
    /// Part name.
    pub part: String,
    /// `on-demand`, `spot`, `reserved-1y`, `reserved-3y`.
    pub tier: String,
    /// Region; absent = the reference price, scaled by each region's multiplier.
    pub region: Option<String>,
    /// USD per unit-hour.
    pub usd_per_hour: f64,
    /// Where the figure comes from.
    pub source: String,
    /// When it was read or what period it describes.
    pub as_of: String,
}

/// A provider's list prices for one model, in USD per million tokens.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogRateCard {
    /// Target kind it applies to (`openai`, `anthropic`).
    pub provider: String,
    /// Model name as sent in requests.
    pub model: String,
    /// Uncached input tokens.
    pub input_usd_per_m: f64,
    /// Cached input tokens; absent = priced as input.
    pub cached_input_usd_per_m: Option<f64>,
    /// Output tokens.
    pub output_usd_per_m: f64,
    /// Reasoning tokens; absent = priced as output.
    pub reasoning_usd_per_m: Option<f64>,
    /// Where the prices come from.
    pub source: String,
    /// When they were read.
    pub as_of: String,
}

/// What a catalog is asked to price.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HardwareQuery<'a> {
    /// GPU name, for GPU targets; `None` for CPU hosts.
    pub gpu_name: Option<&'a str>,
    /// CPU architecture (`x86_64`, `aarch64`).
    pub arch: &'a str,
    /// Units to bill: GPUs used, or the host's logical CPUs.
    pub units: u32,
}

/// Why a catalog could not be read or could not price something.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct CatalogError(pub String);

impl Catalog {
    /// The catalog shipped with this build.
    pub fn default_catalog() -> Self {
        Self::parse(DEFAULT_CATALOG_TOML, "the default catalog")
            .expect("the default catalog is checked by its tests")
    }

    /// Parses and checks a catalog; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, CatalogError> {
        let c: Catalog = toml::from_str(text)
            .map_err(|e| CatalogError(format!("{origin}: {}", one_line(&e))))?;
        c.check()
            .map_err(|e| CatalogError(format!("{origin}: {e}")))?;
        Ok(c)
    }

    fn check(&self) -> Result<(), String> {
        if self.format != CATALOG_FORMAT {
            return Err(format!(
                "format {} is not supported (this build reads format {CATALOG_FORMAT})",
                self.format
            ));
        }
        let mut regions = BTreeSet::new();
        for r in &self.region {
            if !regions.insert(r.name.as_str()) {
                return Err(format!("region `{}` is defined twice", r.name));
            }
            positive(
                &format!("region `{}` hardware_multiplier", r.name),
                r.hardware_multiplier,
            )?;
            non_negative(
                &format!("region `{}` electricity_usd_per_kwh", r.name),
                r.electricity_usd_per_kwh,
            )?;
            if !(r.pue.is_finite() && r.pue >= 1.0) {
                return Err(format!(
                    "region `{}` pue must be at least 1, got {}",
                    r.name, r.pue
                ));
            }
            sourced(&format!("region `{}`", r.name), &r.source, &r.as_of)?;
        }
        if !regions.contains(self.default_region.as_str()) {
            return Err(format!(
                "default_region `{}` is not one of the regions: {}",
                self.default_region,
                join(&regions)
            ));
        }
        let mut parts = BTreeSet::new();
        for p in &self.part {
            if !parts.insert(p.name.as_str()) {
                return Err(format!("part `{}` is defined twice", p.name));
            }
            if p.matches.is_empty() || p.matches.iter().any(|m| m.trim().is_empty()) {
                return Err(format!("part `{}` needs non-empty `match` strings", p.name));
            }
        }
        let mut seen = BTreeSet::new();
        for h in &self.hardware_price {
            let what = format!(
                "hardware_price ({}, {}, {})",
                h.part,
                h.tier,
                h.region.as_deref().unwrap_or("any region")
            );
            if !parts.contains(h.part.as_str()) {
                return Err(format!("{what}: unknown part (parts: {})", join(&parts)));
            }
            if let Some(r) = &h.region
                && !regions.contains(r.as_str())
            {
                return Err(format!(
                    "{what}: unknown region (regions: {})",
                    join(&regions)
                ));
            }
            if !seen.insert((h.part.as_str(), h.tier.as_str(), h.region.as_deref())) {
                return Err(format!("{what} is given twice"));
            }
            positive(&format!("{what} usd_per_hour"), h.usd_per_hour)?;
            sourced(&what, &h.source, &h.as_of)?;
        }
        if !self
            .hardware_price
            .iter()
            .any(|h| h.tier == self.default_tier)
        {
            return Err(format!(
                "default_tier `{}` has no hardware price",
                self.default_tier
            ));
        }
        let mut cards = BTreeSet::new();
        for c in &self.rate_card {
            let what = format!("rate_card ({}, {})", c.provider, c.model);
            if !cards.insert((c.provider.as_str(), c.model.as_str())) {
                return Err(format!("{what} is given twice"));
            }
            non_negative(&format!("{what} input_usd_per_m"), c.input_usd_per_m)?;
            non_negative(&format!("{what} output_usd_per_m"), c.output_usd_per_m)?;
            if let Some(v) = c.cached_input_usd_per_m {
                non_negative(&format!("{what} cached_input_usd_per_m"), v)?;
            }
            if let Some(v) = c.reasoning_usd_per_m {
                non_negative(&format!("{what} reasoning_usd_per_m"), v)?;
            }
            sourced(&what, &c.source, &c.as_of)?;
        }
        Ok(())
    }

    /// `name version`, as copied into costs.
    pub fn label(&self) -> String {
        format!("{} {}", self.name, self.version)
    }

    /// Tiers with at least one price.
    pub fn tiers(&self) -> BTreeSet<&str> {
        self.hardware_price
            .iter()
            .map(|h| h.tier.as_str())
            .collect()
    }

    /// The region called `name`.
    pub fn region(&self, name: &str) -> Result<&Region, CatalogError> {
        self.region.iter().find(|r| r.name == name).ok_or_else(|| {
            CatalogError(format!(
                "region `{name}` is not in catalog {} (regions: {})",
                self.label(),
                join(&self.region.iter().map(|r| r.name.as_str()).collect())
            ))
        })
    }

    /// The part that bills `q`'s hardware.
    pub fn part_for(&self, q: &HardwareQuery<'_>) -> Result<&Part, CatalogError> {
        let found = match q.gpu_name {
            Some(gpu) => {
                let gpu_l = gpu.to_lowercase();
                self.part.iter().find(|p| {
                    p.unit == PartUnit::Gpu
                        && p.matches.iter().any(|m| gpu_l.contains(&m.to_lowercase()))
                })
            }
            None => {
                let arch = q.arch.to_lowercase();
                self.part.iter().find(|p| {
                    p.unit == PartUnit::Vcpu
                        && p.matches.iter().any(|m| arch.contains(&m.to_lowercase()))
                })
            }
        };
        found.ok_or_else(|| {
            CatalogError(match q.gpu_name {
                Some(g) => format!(
                    "catalog {} has no part matching GPU `{g}`: add a [[part]] with unit = \"gpu\" whose match names it",
                    self.label()
                ),
                None => format!(
                    "catalog {} has no vCPU part for architecture `{}`: add a [[part]] with unit = \"vcpu\"",
                    self.label(),
                    q.arch
                ),
            })
        })
    }

    /// The price of `q`'s hardware at `tier` in `region`.
    pub fn hardware_price(
        &self,
        q: &HardwareQuery<'_>,
        tier: &str,
        region: &str,
    ) -> Result<HardwarePriceRef, CatalogError> {
        self.part_price(self.part_for(q)?, q.units, tier, region)
    }

    /// The part called `name`.
    pub fn part_named(&self, name: &str) -> Result<&Part, CatalogError> {
        self.part.iter().find(|p| p.name == name).ok_or_else(|| {
            CatalogError(format!(
                "catalog {} has no part `{name}` (parts: {})",
                self.label(),
                join(&self.part.iter().map(|p| p.name.as_str()).collect())
            ))
        })
    }

    /// The price of `units` units of `part` at `tier` in `region`.
    pub fn part_price(
        &self,
        part: &Part,
        units: u32,
        tier: &str,
        region: &str,
    ) -> Result<HardwarePriceRef, CatalogError> {
        let reg = self.region(region)?;
        let exact = self
            .hardware_price
            .iter()
            .find(|h| h.part == part.name && h.tier == tier && h.region.as_deref() == Some(region));
        let (price, multiplier) = match exact {
            Some(h) => (h, 1.0),
            None => {
                let base = self
                    .hardware_price
                    .iter()
                    .find(|h| h.part == part.name && h.tier == tier && h.region.is_none())
                    .ok_or_else(|| {
                        let tiers: BTreeSet<&str> = self
                            .hardware_price
                            .iter()
                            .filter(|h| h.part == part.name)
                            .map(|h| h.tier.as_str())
                            .collect();
                        CatalogError(format!(
                            "catalog {} has no {tier} price for part `{}` in region `{region}` (tiers priced for it: {})",
                            self.label(),
                            part.name,
                            join(&tiers)
                        ))
                    })?;
                (base, reg.hardware_multiplier)
            }
        };
        Ok(HardwarePriceRef {
            catalog: self.label(),
            part: part.name.clone(),
            unit: part.unit,
            units,
            tier: tier.to_string(),
            region: region.to_string(),
            usd_per_unit_hour: price.usd_per_hour * multiplier,
            region_multiplier: multiplier,
            electricity_usd_per_kwh: reg.electricity_usd_per_kwh,
            pue: reg.pue,
            source: format!("{}; region: {}", price.source, reg.source),
            as_of: price.as_of.clone(),
        })
    }

    /// The catalog's rate card for `model` served by a target of kind `provider`.
    pub fn rate_card(&self, provider: &str, model: &str) -> Option<RateCard> {
        self.rate_card
            .iter()
            .find(|c| c.provider == provider && c.model == model)
            .map(|c| RateCard {
                input_usd_per_m: c.input_usd_per_m,
                cached_input_usd_per_m: c.cached_input_usd_per_m,
                output_usd_per_m: c.output_usd_per_m,
                reasoning_usd_per_m: c.reasoning_usd_per_m,
                source: Some(format!("{} (catalog {})", c.source, self.label())),
                as_of: Some(c.as_of.clone()),
            })
    }
}

pub(crate) fn one_line(e: &toml::de::Error) -> String {
    e.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

pub(crate) fn join(set: &BTreeSet<&str>) -> String {
    set.iter().copied().collect::<Vec<_>>().join(", ")
}

pub(crate) fn positive(what: &str, v: f64) -> Result<(), String> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(format!("{what} must be a positive number, got {v}"))
    }
}

pub(crate) fn non_negative(what: &str, v: f64) -> Result<(), String> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(format!("{what} must be a number >= 0, got {v}"))
    }
}

pub(crate) fn sourced(what: &str, source: &str, as_of: &str) -> Result<(), String> {
    if source.trim().is_empty() || as_of.trim().is_empty() {
        Err(format!("{what} needs a non-empty `source` and `as_of`"))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn cpu(units: u32) -> HardwareQuery<'static> {
        HardwareQuery {
            gpu_name: None,
            arch: "x86_64",
            units,
        }
    }

    #[test]
    fn default_catalog_is_valid_and_prices_every_shipped_part() {
        let c = Catalog::default_catalog();
        for p in &c.part {
            assert!(
                c.hardware_price
                    .iter()
                    .any(|h| h.part == p.name && h.tier == c.default_tier),
                "part {} has no {} price",
                p.name,
                c.default_tier
            );
        }
        let h100 = HardwareQuery {
            gpu_name: Some("NVIDIA H100 80GB HBM3"),
            arch: "x86_64",
            units: 1,
        };
        let p = c.hardware_price(&h100, "on-demand", "us").unwrap();
        assert_eq!(p.part, "h100");
        assert_eq!(p.usd_per_unit_hour, 2.01);
        assert!(c.hardware_price(&cpu(2), "on-demand", "us").is_ok());
    }

    #[test]
    fn regions_without_their_own_price_scale_the_reference_price() {
        let c = Catalog::default_catalog();
        let us = c.hardware_price(&cpu(2), "on-demand", "us").unwrap();
        let sov = c
            .hardware_price(&cpu(2), "on-demand", "eu-sovereign")
            .unwrap();
        let m = c.region("eu-sovereign").unwrap().hardware_multiplier;
        assert!(m > 1.0);
        assert!((sov.usd_per_unit_hour - us.usd_per_unit_hour * m).abs() < 1e-12);
        assert_eq!(sov.region_multiplier, m);
    }

    #[test]
    fn missing_prices_name_what_is_missing() {
        let c = Catalog::default_catalog();
        let e = c.hardware_price(&cpu(2), "reserved-9y", "us").unwrap_err();
        assert!(
            e.0.contains("no reserved-9y price for part `cpu-x86_64`"),
            "{e}"
        );
        let e = c.hardware_price(&cpu(2), "on-demand", "mars").unwrap_err();
        assert!(e.0.contains("region `mars`"), "{e}");
        let gpu = HardwareQuery {
            gpu_name: Some("Voodoo 2"),
            arch: "x86_64",
            units: 1,
        };
        let e = c.hardware_price(&gpu, "on-demand", "us").unwrap_err();
        assert!(e.0.contains("no part matching GPU `Voodoo 2`"), "{e}");
    }

    #[test]
    fn bad_catalogs_are_refused_with_the_field_named() {
        let base = DEFAULT_CATALOG_TOML;
        let no_source = base.replacen("source = ", "sourc = ", 1);
        assert!(
            Catalog::parse(&no_source, "c.toml")
                .unwrap_err()
                .0
                .contains("c.toml")
        );
        let negative = base.replacen("usd_per_hour = 2.01", "usd_per_hour = -2.01", 1);
        let e = Catalog::parse(&negative, "c.toml").unwrap_err();
        assert!(
            e.0.contains("usd_per_hour must be a positive number"),
            "{e}"
        );
        let format = base.replacen("format = 1", "format = 9", 1);
        let e = Catalog::parse(&format, "c.toml").unwrap_err();
        assert!(e.0.contains("format 9 is not supported"), "{e}");
        let dup = format!(
            "{base}\n[[hardware_price]]\npart = \"h100\"\ntier = \"on-demand\"\nusd_per_hour = 3.0\nsource = \"x\"\nas_of = \"y\"\n"
        );
        let e = Catalog::parse(&dup, "c.toml").unwrap_err();
        assert!(
            e.0.contains("(h100, on-demand, any region) is given twice"),
            "{e}"
        );
    }

    #[test]
    fn rate_cards_are_found_by_provider_and_model() {
        let c = Catalog::default_catalog();
        let first = &c.rate_card[0];
        let card = c.rate_card(&first.provider, &first.model).unwrap();
        assert_eq!(card.input_usd_per_m, first.input_usd_per_m);
        assert!(c.rate_card("openai", "no-such-model").is_none());
    }
}
