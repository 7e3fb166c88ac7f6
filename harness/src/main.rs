//! `infermeter`: parses the command line, runs it, prints `Error: ...` and exits 2 for
//! bad input or 1 for a failed run.

use clap::Parser;
use infermeter::cli::{Cli, run};
use infermeter::error::exit_code;

fn main() {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("INFERMETER_LOG"))
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("Error: starting the async runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(err) = runtime.block_on(run(cli)) {
        let msg = format!("{err:#}").replace('\n', " ");
        eprintln!("Error: {msg}");
        std::process::exit(exit_code(&err));
    }
}
