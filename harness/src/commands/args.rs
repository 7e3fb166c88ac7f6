//! Argument types several commands share: pricing (catalog, tier, region), report and
//! table formats, and `--shard I/N`.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use results::ShardRef;
use results::render::Format;

use crate::config::PricingChoice;

/// Which catalog, tier and region price a run or a report.
#[derive(Debug, Args, Clone, Default)]
pub struct PricingArgs {
    /// Price catalog (TOML; default: the catalog shipped in results/catalog/default.toml).
    #[arg(long)]
    pub catalog: Option<PathBuf>,
    /// Hardware price tier (`on-demand`, `spot`, `reserved-1y`, `reserved-3y`;
    /// default: the catalog's).
    #[arg(long)]
    pub tier: Option<String>,
    /// Region (default: the catalog's).
    #[arg(long)]
    pub region: Option<String>,
}

impl PricingArgs {
    /// The pricing these flags choose.
    pub fn choice(&self) -> PricingChoice {
        PricingChoice {
            catalog: self.catalog.clone(),
            tier: self.tier.clone(),
            region: self.region.clone(),
        }
    }
}

/// Report formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// Terminal table.
    Table,
    /// Markdown table.
    Md,
    /// CSV.
    Csv,
    /// The report JSON.
    Json,
    /// One self-contained HTML page with charts.
    Html,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Self {
        match f {
            FormatArg::Table => Format::Table,
            FormatArg::Md => Format::Markdown,
            FormatArg::Csv => Format::Csv,
            FormatArg::Json => Format::Json,
            FormatArg::Html => Format::Html,
        }
    }
}

/// Formats of `compare` and `history`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TableFormat {
    /// Terminal table.
    Table,
    /// Markdown table.
    Md,
    /// JSON.
    Json,
}

/// Parses `--shard I/N`.
pub fn parse_shard(text: &str) -> Result<ShardRef, String> {
    let (i, n) = text
        .split_once('/')
        .ok_or_else(|| format!("`{text}`: expected I/N, e.g. 2/4"))?;
    let parse = |x: &str| x.trim().parse::<u32>().ok();
    match (parse(i), parse(n)) {
        (Some(index), Some(count)) if count >= 1 && (1..=count).contains(&index) => {
            Ok(ShardRef { index, count })
        }
        _ => Err(format!("`{text}`: expected I/N with 1 <= I <= N, e.g. 2/4")),
    }
}
