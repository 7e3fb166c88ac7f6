//! Progress of a load point on standard error: a bar on a terminal, a plain line every
//! few seconds otherwise (CI logs).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Progress of one load point.
pub struct Progress {
    bar: Option<ProgressBar>,
    label: String,
    total: u64,
    done: u64,
    failed: u64,
    started: Instant,
    last_line: Instant,
    quiet: bool,
}

const PLAIN_EVERY: Duration = Duration::from_secs(10);

impl Progress {
    /// Starts showing progress of `total` requests of `label`.
    pub fn new(label: &str, total: u64, quiet: bool) -> Self {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix:>28} [{bar:30}] {pos}/{len} requests {msg} ({elapsed})",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_prefix(label.to_string());
            bar
        });
        if bar.is_none() && !quiet {
            eprintln!("{label}: {total} requests");
        }
        let now = Instant::now();
        Self {
            bar,
            label: label.to_string(),
            total,
            done: 0,
            failed: 0,
            started: now,
            last_line: now,
            quiet,
        }
    }

    /// One more request finished.
    pub fn request_done(&mut self, ok: bool) {
        self.done += 1;
        self.failed += u64::from(!ok);
        match &self.bar {
            Some(bar) => {
                bar.set_position(self.done);
                if self.failed > 0 {
                    bar.set_message(format!("{} failed", self.failed));
                }
            }
            None if !self.quiet && self.last_line.elapsed() >= PLAIN_EVERY => {
                self.last_line = Instant::now();
                eprintln!(
                    "{}: {}/{} requests, {} failed, {:.1} s",
                    self.label,
                    self.done,
                    self.total,
                    self.failed,
                    self.started.elapsed().as_secs_f64()
                );
            }
            None => {}
        }
    }

    /// The load point is over.
    pub fn finish(self) {
        match self.bar {
            Some(bar) => bar.finish(),
            None if !self.quiet => eprintln!(
                "{}: done, {} requests, {} failed, {:.1} s",
                self.label,
                self.done,
                self.failed,
                self.started.elapsed().as_secs_f64()
            ),
            None => {}
        }
    }
}
