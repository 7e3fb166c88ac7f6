//! `infermeter workloads list|show|export`: the embedded workloads and suites, a
//! workload's resolved spec and stream digest, and its request stream as JSON lines.

use anyhow::Result;
use clap::Subcommand;
use workloads::generate::generate;
use workloads::suite;

use crate::error::oob;

/// `workloads` subcommands.
#[derive(Debug, Subcommand)]
pub enum WorkloadsCommand {
    /// List the embedded workloads and suites.
    List,
    /// Print a workload's fully resolved spec and the digest of its request stream.
    Show {
        /// Workload name (`agent-loop`, `quick/agent-loop`) or path to a TOML file.
        name: String,
        /// Seed of the request stream (default: the spec's).
        #[arg(long)]
        seed: Option<u64>,
    },
    /// Print the measured requests of a workload's stream as JSON lines (warm-up
    /// excluded), so that another tool can send exactly the same prompts: `session`,
    /// `call`, `messages` (role, content), `prompt` (the messages joined as the
    /// completions API receives them), `prompt_tokens_count`, `output_tokens_count`,
    /// `think_ms`.
    Export {
        /// Workload name or path to a TOML file.
        name: String,
        /// Seed of the request stream (default: the spec's).
        #[arg(long)]
        seed: Option<u64>,
        /// Measured requests (default: the spec's).
        #[arg(long)]
        requests: Option<u64>,
    },
}

/// Runs `infermeter workloads`.
pub fn run(cmd: &WorkloadsCommand) -> Result<()> {
    match cmd {
        WorkloadsCommand::List => {
            for l in suite::list()? {
                println!("{:<9} {:<22} {}", l.kind, l.name, l.description);
            }
        }
        WorkloadsCommand::Show { name, seed } => print!("{}", show(name, *seed)?),
        WorkloadsCommand::Export {
            name,
            seed,
            requests,
        } => print!("{}", export(name, *seed, *requests)?),
    }
    Ok(())
}

/// The measured requests of a workload's stream as JSON lines.
pub fn export(name: &str, seed: Option<u64>, requests: Option<u64>) -> Result<String> {
    let mut spec = suite::workload(name)?;
    if let Some(n) = requests {
        workloads::bounds::count("--requests", n, 1, workloads::bounds::MAX_REQUESTS)
            .map_err(oob)?;
        spec.load.requests = n;
    }
    let seed = seed.unwrap_or(spec.seed);
    let stream = generate(&spec, seed);
    let mut out = String::new();
    for r in stream.sessions.iter().flat_map(|s| &s.calls) {
        let line = serde_json::json!({
            "session": r.session,
            "call": r.call,
            "messages": providers::codec::chat_messages(r),
            "prompt": providers::codec::prompt_text(r),
            "prompt_tokens_count": r.input_tokens(),
            "output_tokens_count": r.max_output_tokens,
            "think_ms": r.think_ms,
        });
        out.push_str(&line.to_string());
        out.push('\n');
    }
    Ok(out)
}

/// The resolved spec as TOML, then facts about the stream and its digest.
pub fn show(name: &str, seed: Option<u64>) -> Result<String> {
    let spec = suite::workload(name)?;
    let seed = seed.unwrap_or(spec.seed);
    let stream = generate(&spec, seed);
    let inputs: Vec<u64> = stream
        .sessions
        .iter()
        .flat_map(|s| &s.calls)
        .map(|r| u64::from(r.input_tokens()))
        .collect();
    let outputs: u64 = stream
        .sessions
        .iter()
        .flat_map(|s| &s.calls)
        .map(|r| u64::from(r.max_output_tokens))
        .sum();
    let mut out = format!("# {} (resolved)\n{}\n", spec.name, spec.to_toml());
    out.push_str(&format!(
        "# request stream\nseed = {seed}\nsessions = {}\nrequests = {}\n",
        stream.sessions.len(),
        inputs.len()
    ));
    out.push_str(&format!("warmup_requests = {}\n", stream.warmup.len()));
    if let (Some(min), Some(max)) = (inputs.iter().min(), inputs.iter().max()) {
        let mean = inputs.iter().sum::<u64>() as f64 / inputs.len() as f64;
        out.push_str(&format!(
            "input_tokens = {{ min = {min}, mean = {mean:.1}, max = {max}, total = {} }}\n",
            inputs.iter().sum::<u64>()
        ));
    }
    out.push_str(&format!("output_tokens_total = {outputs}\n"));
    out.push_str(&format!(
        "spec_sha256 = \"{}\"\nstream_sha256 = \"{}\"\n",
        spec.sha256(),
        stream.digest()
    ));
    if let Some(t) = &spec.trace {
        let (chosen, offsets) = t.select(spec.load.requests, spec.load.rate_rps);
        let f = workloads::trace::facts(&chosen, &offsets);
        out.push_str(&format!(
            "# trace replay\ntrace_requests = {}\ntrace_span_s = {:.3}\ntrace_input_tokens = {}\n\
             # in blocks an earlier request sent: what a prefix cache that never evicts serves\n\
             reusable_input_tokens = {}\n",
            f.requests, f.span_s, f.input_tokens, f.reusable_input_tokens
        ));
        for (why, n) in t.loaded.iter().flat_map(|l| &l.skipped) {
            out.push_str(&format!("skipped = {{ rows = {n}, why = \"{why}\" }}\n"));
        }
    }
    Ok(out)
}
