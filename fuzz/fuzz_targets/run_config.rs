//! The command line of `run` and `sweep` on arbitrary arguments: clap parses them,
//! `RunConfig::from_args` validates them (every number against its bound), the plan
//! resolves the workloads with the overrides, and a small resolved stream is
//! generated (arrival schedules at the bounds' extremes). Each step either succeeds or
//! returns an error; none panics.
#![no_main]

use clap::Parser;
use infermeter::cli::{Cli, Command};
use infermeter::config::RunConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // One argument per line, after the subcommand the first line names.
    let mut lines = text.lines();
    let sub = match lines.next() {
        Some("sweep") => "sweep",
        _ => "run",
    };
    let argv = ["infermeter", sub].into_iter().chain(lines);
    let Ok(cli) = Cli::try_parse_from(argv) else {
        return;
    };
    let args = match &cli.command {
        Command::Run(a) => a.as_ref(),
        Command::Sweep(s) => &s.run,
        _ => return,
    };
    let Ok(cfg) = RunConfig::from_args(args) else {
        return;
    };
    for t in &cfg.targets {
        let _ = t.validate();
    }
    let Ok(plan) = infermeter::plan::resolve(cfg.suite.as_deref(), &cfg.workloads, &cfg.overrides)
    else {
        return;
    };
    for (spec, seed) in &plan.workloads {
        if spec.load.requests <= 64 {
            let stream = infermeter_workloads::generate::generate(spec, *seed);
            if let Some(s) = cfg.shard {
                let _ = stream.shard(s.index - 1, s.count);
            }
        }
    }
});
