//! `infermeter`: parses the command line, runs it, prints `Error: ...` (one line) and
//! exits 2 for bad input or 1 for a failed run.

use clap::Parser;
use clap::error::ErrorKind;
use infermeter::cli::{Cli, run};
use infermeter::error::exit_code;

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            e.exit()
        }
        Err(e) => {
            // clap's message on one line, without its "try --help" footer.
            let text = e.render().to_string();
            let line: Vec<&str> = text
                .lines()
                .map(str::trim)
                .filter(|l| {
                    !l.is_empty()
                        && !l.starts_with("For more information")
                        && !l.starts_with("Usage:")
                })
                .collect();
            let msg = line.join(" ");
            eprintln!("Error: {}", msg.strip_prefix("error: ").unwrap_or(&msg));
            std::process::exit(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("INFERMETER_LOG"))
        .with_writer(std::io::stderr)
        .init();
    // One thread: a current-thread runtime, where reads, timers and the tasks they
    // wake never hand work between threads (no cross-thread wake-ups per token).
    let built = match cli.client_threads {
        1 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        0 => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
        n => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build(),
    };
    let runtime = match built {
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
