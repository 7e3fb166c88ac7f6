//! `infermeter models list`: the local engines' presets ([`crate::models`]).

use anyhow::Result;
use clap::Subcommand;

/// `models` subcommands.
#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Every preset: shape, parameters total and active, bytes per weight format, KV
    /// bytes per token.
    List,
}

/// Runs `infermeter models`.
pub fn run(cmd: &ModelsCommand) -> Result<()> {
    match cmd {
        ModelsCommand::List => print!("{}", crate::models::list()),
    }
    Ok(())
}
