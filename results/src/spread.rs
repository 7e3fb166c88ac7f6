//! The run-to-run spread of repeated load points (`run --repeat N`): every registry
//! metric over the repeats of each load point ([`crate::stats::Spread`]).

use crate::metrics::METRICS;
use crate::report::ResultEntry;
use crate::stats::{RepeatSpread, Spread};

/// The spread of every load point that was repeated, in the order first seen.
pub fn repeat_spread(results: &[ResultEntry]) -> Vec<RepeatSpread> {
    let mut groups: Vec<(String, Vec<&ResultEntry>)> = Vec::new();
    for e in results.iter().filter(|e| e.repeat.is_some()) {
        let key = e.pair_key();
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => v.push(e),
            None => groups.push((key, vec![e])),
        }
    }
    groups
        .into_iter()
        .filter(|(_, v)| v.len() > 1)
        .map(|(key, v)| RepeatSpread {
            key,
            repeats: v.len() as u32,
            metrics: METRICS
                .iter()
                .filter_map(|m| {
                    let xs: Vec<f64> = v.iter().filter_map(|e| (m.get)(e)).collect();
                    Some((m.name.to_string(), Spread::of(&xs)?))
                })
                .collect(),
        })
        .collect()
}
