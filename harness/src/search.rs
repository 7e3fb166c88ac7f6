//! SLO search (`sweep --search rate:LO..HI` or `concurrency:LO..HI`): the highest load
//! that meets an SLO. The search doubles from `LO` until a level fails (or `HI`
//! passes), then bisects between the highest passing and the lowest failing level
//! until they are within the tolerance (relative; concurrencies also stop one session
//! apart). A level runs `repeats` times and passes only when every repeat
//! passes: noisy points do not pass by luck.
//!
//! A point passes when it meets the SLO, fails when it misses it, has more than 5% of
//! requests failed, or is over-saturated (an open loop the target fell behind:
//! [`results::saturation`]); a point the client may have limited (`client_bound`)
//! decides nothing, and the search stops there, saying the limit was not found: it is
//! never taken as the limit. One exception: a client-bound point that misses an
//! objective by more than [`CLIENT_LATENESS_FACTOR`] times the client's worst lateness
//! (its event-loop lag and schedule lag, largest seen) fails, since a late client adds
//! at most its lateness to a request's latency and cannot make a miss that large
//! (unless the client was busy with its own work, `bound_by: client`: then it may have
//! slowed a target on its machine too, and the point decides nothing). A
//! client-bound pass decides nothing (a late client may send less load) unless the
//! load its lateness could have held back, that factor times its worst lateness over
//! the median end-to-end latency (each session's cycle), is under the search's
//! tolerance: the search cannot tell such a difference apart anyway.

use anyhow::Result;
use results::{LevelVerdict, ResultEntry, SearchAxis, SearchEnd, SearchLevel, SearchOutcome};

use crate::error::bad_input;
use crate::levels::{Level, MAX_ERROR_RATE, MAX_POINTS};
use crate::slo::Slo;

/// What is searched.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Axis {
    /// Open-loop rate, sessions per second.
    Rate,
    /// Closed-loop concurrency, sessions.
    Concurrency,
}

/// A search: the axis, the range, the tolerance and the repeats per level.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Search {
    /// Rate or concurrency.
    pub axis: Axis,
    /// Lowest level (the first run).
    pub lo: f64,
    /// Highest level.
    pub hi: f64,
    /// Relative gap between passing and failing levels that ends the bisection.
    pub tolerance: f64,
    /// Runs per level.
    pub repeats: u32,
}

/// How one level (or one point) came out.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Met the SLO.
    Pass,
    /// Missed it, and why.
    Fail(String),
    /// Decided nothing (the client may have limited it), and why.
    Inconclusive(String),
}

/// How many times the client's worst lateness a client-bound point must miss an
/// objective by to fail (the lag is sampled at most 20 times a second, so its largest
/// sample may fall short of the largest lag).
pub const CLIENT_LATENESS_FACTOR: f64 = 10.0;

/// The verdict of one point, for a search of relative `tolerance`.
pub fn verdict(e: &ResultEntry, tolerance: f64) -> Verdict {
    if let Some(c) = e.client.as_ref().filter(|c| c.client_bound) {
        let lateness_ms = worst_lateness_ms(e, c);
        // A client busy with its own work may also have slowed a target sharing its
        // machine by more than its lateness: then no miss is the target's alone.
        let own_work = c.bound_by == Some(results::BoundBy::Client);
        if let Some(why) = lateness_ms
            .filter(|_| !own_work)
            .and_then(|l| missed_beyond(e, l))
        {
            return Verdict::Fail(why);
        }
        let withheld = lateness_ms
            .zip(e.latency.e2e_ms.p50)
            .map(|(l, e2e)| CLIENT_LATENESS_FACTOR * l / e2e);
        let passes = matches!(&e.slo, Some(s) if s.pass);
        if !(passes && withheld.is_some_and(|w| w < tolerance)) {
            return Verdict::Inconclusive(format!("client-bound ({})", c.reasons.join("; ")));
        }
    }
    let sent = e.requests.sent.max(1) as f64;
    if e.requests.failed as f64 / sent > MAX_ERROR_RATE {
        return Verdict::Fail(format!(
            "{} of {} requests failed",
            e.requests.failed, e.requests.sent
        ));
    }
    if let Some(s) = e.saturation.as_ref().filter(|s| s.oversaturated) {
        return Verdict::Fail(format!(
            "over-saturated (TTFT from the intended send {:.0} -> {:.0} ms, in flight {:.1} -> {:.1})",
            s.ttft_first_third_ms,
            s.ttft_last_third_ms,
            s.in_flight_first_third,
            s.in_flight_last_third
        ));
    }
    match &e.slo {
        Some(s) if s.pass => Verdict::Pass,
        Some(s) => Verdict::Fail(format!("missed {}", s.missed.join("; "))),
        None => Verdict::Inconclusive("no SLO judged".into()),
    }
}

/// The client's worst lateness, ms: the largest event-loop lag or schedule lag seen;
/// `None` when the loop's lag was not sampled.
fn worst_lateness_ms(e: &ResultEntry, c: &results::ClientStats) -> Option<f64> {
    Some(
        c.loop_lag_ms
            .max?
            .max(e.latency.queue_ms.max.unwrap_or(0.0)),
    )
}

/// For a client-bound point: the first objective it missed by more than
/// [`CLIENT_LATENESS_FACTOR`] times the client's worst lateness, said as why it fails;
/// `None` when no miss is that large.
fn missed_beyond(e: &ResultEntry, lateness_ms: f64) -> Option<String> {
    let slack_ms = CLIENT_LATENESS_FACTOR * lateness_ms;
    e.slo.as_ref()?.objectives.iter().find_map(|(name, &bound_ms)| {
        let o = Slo::parse(&format!("{name}={bound_ms}")).ok()?.objectives[0];
        let value = o.percentile.of((o.family.summary)(e))?;
        (value - bound_ms > slack_ms).then(|| {
            format!(
                "missed {name} {value} > {bound_ms} by {:.1} ms, more than {CLIENT_LATENESS_FACTOR:.0} times the late client's worst lateness ({lateness_ms:.3} ms) could add",
                value - bound_ms
            )
        })
    })
}

impl Search {
    /// Parses `rate:LO..HI` or `concurrency:LO..HI`.
    pub fn parse(text: &str, tolerance: f64, repeats: u32) -> Result<Self> {
        let bad = || {
            bad_input(format!(
                "--search {text}: expected rate:LO..HI (sessions per second) or concurrency:LO..HI"
            ))
        };
        let (axis, range) = text.split_once(':').ok_or_else(bad)?;
        let axis = match axis {
            "rate" => Axis::Rate,
            "concurrency" => Axis::Concurrency,
            _ => return Err(bad()),
        };
        let (lo, hi) = range.split_once("..").ok_or_else(bad)?;
        let (lo, hi): (f64, f64) = (
            lo.trim().parse().map_err(|_| bad())?,
            hi.trim().parse().map_err(|_| bad())?,
        );
        let whole = |x: f64| x.fract() == 0.0 && x >= 1.0;
        let ok = lo.is_finite()
            && hi.is_finite()
            && lo > 0.0
            && hi > lo
            && (axis == Axis::Rate || (whole(lo) && whole(hi)));
        if !ok {
            return Err(bad_input(format!(
                "--search {text}: needs 0 < LO < HI{}",
                if axis == Axis::Concurrency {
                    ", both whole numbers of sessions"
                } else {
                    ""
                }
            )));
        }
        if !(tolerance.is_finite() && tolerance > 0.0 && tolerance < 1.0) {
            return Err(bad_input(format!(
                "--search-tolerance must be above 0 and below 1, got {tolerance}"
            )));
        }
        if !(1..=10).contains(&repeats) {
            return Err(bad_input(format!(
                "--search-repeats must be from 1 to 10, got {repeats}"
            )));
        }
        Ok(Self {
            axis,
            lo,
            hi,
            tolerance,
            repeats,
        })
    }

    fn level(&self, x: f64) -> Level {
        match self.axis {
            Axis::Rate => Level::Rate(x),
            Axis::Concurrency => Level::Concurrency(x as u32),
        }
    }

    fn value_of(&self, e: &ResultEntry) -> Option<f64> {
        match self.axis {
            Axis::Rate => e.load.rate_rps,
            Axis::Concurrency => e.load.concurrency.map(f64::from),
        }
    }

    /// The levels measured so far with their verdicts, in the order run, and whether
    /// the last is still short of its repeats.
    fn levels(&self, done: &[ResultEntry]) -> (Vec<(f64, Verdict)>, Option<f64>) {
        let mut levels: Vec<(f64, Vec<Verdict>)> = Vec::new();
        for e in done {
            let x = self.value_of(e).unwrap_or(f64::NAN);
            match levels.last_mut() {
                Some((v, vs)) if *v == x => vs.push(verdict(e, self.tolerance)),
                _ => levels.push((x, vec![verdict(e, self.tolerance)])),
            }
        }
        let short = levels
            .last()
            .filter(|(_, vs)| (vs.len() as u32) < self.repeats)
            .map(|(x, _)| *x);
        let judged = levels
            .into_iter()
            .map(|(x, vs)| {
                // A repeat that failed fails the level; one that decided nothing
                // leaves it undecided unless another failed.
                let v = vs
                    .iter()
                    .find(|v| matches!(v, Verdict::Fail(_)))
                    .or_else(|| vs.iter().find(|v| matches!(v, Verdict::Inconclusive(_))))
                    .cloned()
                    .unwrap_or(Verdict::Pass);
                (x, v)
            })
            .collect();
        (judged, short)
    }

    /// The next load level from the points measured so far; `None` ends the search.
    pub fn next(&self, done: &[ResultEntry]) -> Option<Level> {
        if done.len() >= MAX_POINTS * self.repeats as usize {
            return None;
        }
        let (levels, short) = self.levels(done);
        if let Some(x) = short {
            // A repeat of the level not yet run as often as asked, unless it already
            // failed or decided nothing (more runs cannot make it pass).
            if matches!(levels.last(), Some((_, Verdict::Pass))) {
                return Some(self.level(x));
            }
        }
        if levels.is_empty() {
            return Some(self.level(self.lo));
        }
        if levels
            .iter()
            .any(|(_, v)| matches!(v, Verdict::Inconclusive(_)))
        {
            return None;
        }
        let (pass, fail) = bracket(&levels);
        let pass = pass?; // LO failed: nothing to search.
        let next = match fail {
            None if pass >= self.hi => return None,
            None => (pass * 2.0).min(self.hi),
            Some(f) => {
                let close = match self.axis {
                    Axis::Rate => (f - pass) / pass <= self.tolerance,
                    Axis::Concurrency => f - pass <= 1.0 || (f - pass) / pass <= self.tolerance,
                };
                if close {
                    return None;
                }
                match self.axis {
                    Axis::Rate => (pass + f) / 2.0,
                    Axis::Concurrency => ((pass + f) / 2.0).floor(),
                }
            }
        };
        let next = match self.axis {
            Axis::Rate => four_figures(next),
            Axis::Concurrency => next,
        };
        // A level that rounds onto one already bracketing the limit (or onto 0) ends
        // the search: the bracket cannot narrow further.
        if next <= 0.0 || Some(next) == fail || next == pass {
            return None;
        }
        Some(self.level(next))
    }

    /// What the search found for `target` from its points `done`: the levels, the
    /// bracket, how it ended and the conclusion in words.
    pub fn outcome(&self, target: &str, done: &[ResultEntry]) -> SearchOutcome {
        let unit = match self.axis {
            Axis::Rate => " sessions/s",
            Axis::Concurrency => " sessions in flight",
        };
        let (levels, _) = self.levels(done);
        let (pass, fail) = bracket(&levels);
        let why = |f: f64| {
            levels
                .iter()
                .find(|(x, _)| *x == f)
                .and_then(|(_, v)| match v {
                    Verdict::Fail(w) => Some(w.clone()),
                    _ => None,
                })
                .unwrap_or_default()
        };
        let stalled = levels
            .iter()
            .find(|(_, v)| matches!(v, Verdict::Inconclusive(_)));
        let (end, conclusion) = if let Some((x, Verdict::Inconclusive(w))) = stalled {
            (
                SearchEnd::ClientBound,
                format!(
                    "search stopped at {x}{unit}: {w}: the client may have limited it, so no limit is claimed{}",
                    pass.map_or(String::new(), |p| format!(
                        " (the highest level measured to meet the SLO is {p}{unit}: the real limit is at least that)"
                    ))
                ),
            )
        } else {
            match (pass, fail) {
                (None, Some(f)) => (
                    SearchEnd::NoneMet,
                    format!(
                        "no level meets the SLO: the lowest, {f}{unit}, failed ({})",
                        why(f)
                    ),
                ),
                (Some(p), None) => (
                    SearchEnd::AboveRange,
                    format!(
                        "every level up to {p}{unit} meets the SLO: the limit is above the searched range"
                    ),
                ),
                (Some(p), Some(f)) => (
                    SearchEnd::Bracketed,
                    format!(
                        "highest load meeting the SLO: {p}{unit} ({f}{unit} failed: {}); {} levels, {} points",
                        why(f),
                        levels.len(),
                        done.len()
                    ),
                ),
                (None, None) => (
                    SearchEnd::NothingMeasured,
                    "the search measured nothing".into(),
                ),
            }
        };
        SearchOutcome {
            target: target.to_string(),
            axis: match self.axis {
                Axis::Rate => SearchAxis::Rate,
                Axis::Concurrency => SearchAxis::Concurrency,
            },
            unit: match self.axis {
                Axis::Rate => "sessions_per_s",
                Axis::Concurrency => "sessions",
            }
            .into(),
            range_lo: self.lo,
            range_hi: self.hi,
            tolerance: self.tolerance,
            repeats: self.repeats,
            end,
            highest_passing: pass,
            lowest_failing: fail,
            levels: levels
                .iter()
                .map(|(x, v)| {
                    let (verdict, why) = match v {
                        Verdict::Pass => (LevelVerdict::Pass, None),
                        Verdict::Fail(w) => (LevelVerdict::Fail, Some(w.clone())),
                        Verdict::Inconclusive(w) => (LevelVerdict::Inconclusive, Some(w.clone())),
                    };
                    SearchLevel {
                        value: *x,
                        verdict,
                        why,
                    }
                })
                .collect(),
            conclusion,
        }
    }

    /// What the search found, in words.
    pub fn conclusion(&self, done: &[ResultEntry]) -> String {
        self.outcome("", done).conclusion
    }
}

/// `x` rounded to four significant figures (rates as people write them).
fn four_figures(x: f64) -> f64 {
    if x <= 0.0 || !x.is_finite() {
        return x;
    }
    let scale = 10f64.powi(3 - x.log10().floor() as i32);
    (x * scale).round() / scale
}

/// The highest passing level below the lowest failing one, and that failing level.
fn bracket(levels: &[(f64, Verdict)]) -> (Option<f64>, Option<f64>) {
    let fail = levels
        .iter()
        .filter(|(_, v)| matches!(v, Verdict::Fail(_)))
        .map(|(x, _)| *x)
        .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.min(x))));
    let pass = levels
        .iter()
        .filter(|(x, v)| *v == Verdict::Pass && fail.is_none_or(|f| *x < f))
        .map(|(x, _)| *x)
        .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))));
    (pass, fail)
}

#[cfg(test)]
mod tests;
