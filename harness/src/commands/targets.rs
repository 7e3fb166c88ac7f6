//! `infermeter targets list`: every target kind, where it runs, and the keys its spec
//! takes, from the registry ([`crate::targets`]); the README's table is this output.

use anyhow::Result;
use clap::Subcommand;

/// `targets` subcommands.
#[derive(Debug, Subcommand)]
pub enum TargetsCommand {
    /// Every target kind and its keys (type, default, what it does), as Markdown.
    List,
}

/// Runs `infermeter targets`.
pub fn run(cmd: &TargetsCommand) -> Result<()> {
    match cmd {
        TargetsCommand::List => print!("{}", crate::targets::markdown_table()),
    }
    Ok(())
}
