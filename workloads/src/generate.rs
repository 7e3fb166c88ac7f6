//! Seeded request streams. A stream is a list of sessions; each session is a list of
//! calls whose context grows call by call (previous answers are synthetic text of the
//! requested output length, so the stream does not depend on what a target answered).
//! Each session has its own seed derived from the stream seed, so any request can be
//! regenerated from (spec, stream seed, session index).

use std::sync::Arc;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal};
use sha2::{Digest, Sha256};

use crate::arrival::Arrival;
use crate::spec::{LengthSpec, WorkloadSpec, hex};
use crate::text::{encode, synthetic_text};
use crate::{Message, PrefixRef, Request, Role};
use results::ArrivalPattern;

/// One session (task): its calls in order.
#[derive(Clone, Debug)]
pub struct SessionPlan {
    /// Index in the stream.
    pub index: u64,
    /// Seed the session was generated from.
    pub seed: u64,
    /// Calls, in order.
    pub calls: Vec<Request>,
}

/// A generated request stream.
#[derive(Clone, Debug)]
pub struct RequestStream {
    /// Seed it was generated from.
    pub seed: u64,
    /// Measured sessions.
    pub sessions: Vec<SessionPlan>,
    /// Warm-up requests (from their own seed domain, so they never change the
    /// measured stream).
    pub warmup: Vec<Request>,
    /// Cold-start probes (their own seed domain; empty unless the spec asks).
    pub cold: Vec<Request>,
    /// Seconds of idle before each cold-start probe.
    pub cold_idle_s: f64,
    /// Send offsets of sessions in seconds (open loop); `None` for closed loops.
    pub schedule: Option<Vec<f64>>,
    /// The arrival process.
    pub arrival: Arrival,
}

impl RequestStream {
    /// Number of measured requests.
    pub fn request_count(&self) -> usize {
        self.sessions.iter().map(|s| s.calls.len()).sum()
    }

    /// Shard `index` (0-based) of `count`: the sessions whose index is `index` modulo
    /// `count`, at the times the whole stream would send them, so that `count` shards
    /// run side by side send exactly the requests of one run. A closed loop's
    /// concurrency is divided among the shards (it must divide evenly); every shard
    /// runs the warm-up; cold-start probes run in shard 0 only.
    pub fn shard(&self, index: u32, count: u32) -> Result<RequestStream, String> {
        if count == 0 || index >= count {
            return Err(format!("shard {} of {count} does not exist", index + 1));
        }
        let n = u64::from(count);
        let keep: Vec<usize> = (0..self.sessions.len())
            .filter(|&i| self.sessions[i].index % n == u64::from(index))
            .collect();
        let arrival = match self.arrival {
            Arrival::Closed { concurrency } => {
                if concurrency % count != 0 {
                    return Err(format!(
                        "a closed loop of {concurrency} sessions cannot be split into {count} equal shards"
                    ));
                }
                Arrival::Closed {
                    concurrency: concurrency / count,
                }
            }
            a => a,
        };
        Ok(RequestStream {
            seed: self.seed,
            sessions: keep.iter().map(|&i| self.sessions[i].clone()).collect(),
            warmup: self.warmup.clone(),
            cold: if index == 0 {
                self.cold.clone()
            } else {
                Vec::new()
            },
            cold_idle_s: self.cold_idle_s,
            schedule: self
                .schedule
                .as_ref()
                .map(|s| keep.iter().map(|&i| s[i]).collect()),
            arrival,
        })
    }

    /// SHA-256 (hex) over every measured request (session, call, think time, output
    /// length, prefix, each message's role and token ids), every warm-up request, and
    /// the schedule.
    pub fn digest(&self) -> String {
        let mut h = Sha256::new();
        let hash_request = |h: &mut Sha256, r: &Request| {
            h.update(r.session.to_le_bytes());
            h.update(r.call.to_le_bytes());
            h.update(r.think_ms.to_bits().to_le_bytes());
            h.update(r.max_output_tokens.to_le_bytes());
            h.update(r.prefix.as_ref().map_or(0, |p| p.tokens).to_le_bytes());
            h.update((r.messages.len() as u64).to_le_bytes());
            // Only checked requests hash their checker, so other streams keep their
            // digest.
            if let Some(c) = &r.check {
                h.update(b"check");
                h.update(serde_json::to_vec(&c.checker).unwrap_or_default());
                h.update(c.group.as_deref().unwrap_or("").as_bytes());
            }
            for m in &r.messages {
                h.update([m.role as u8]);
                h.update((m.token_ids.len() as u64).to_le_bytes());
                for id in &m.token_ids {
                    h.update(id.to_le_bytes());
                }
            }
        };
        for s in &self.sessions {
            for r in &s.calls {
                hash_request(&mut h, r);
            }
        }
        h.update(b"warmup");
        for r in &self.warmup {
            hash_request(&mut h, r);
        }
        // Only streams with probes hash them, so older streams keep their digest.
        if !self.cold.is_empty() {
            h.update(b"cold");
            h.update(self.cold_idle_s.to_bits().to_le_bytes());
            for r in &self.cold {
                hash_request(&mut h, r);
            }
        }
        h.update(b"schedule");
        for t in self.schedule.iter().flatten() {
            h.update(t.to_bits().to_le_bytes());
        }
        hex(&h.finalize())
    }
}

pub use crate::digest::derive_seed;

fn draw(spec: &LengthSpec, rng: &mut impl Rng) -> f64 {
    match *spec {
        LengthSpec::Fixed { value } => value,
        LengthSpec::Uniform { min, max } => {
            if max > min {
                rng.random_range(min..=max)
            } else {
                min
            }
        }
        LengthSpec::Lognormal {
            mean,
            sigma,
            min,
            max,
        } => {
            let mu = mean.ln() - sigma * sigma / 2.0;
            let d = LogNormal::new(mu, sigma).expect("validated lognormal");
            d.sample(rng).clamp(min, max)
        }
    }
}

fn draw_tokens(spec: &LengthSpec, rng: &mut impl Rng) -> u32 {
    draw(spec, rng).round().max(1.0) as u32
}

fn arrival_of(spec: &WorkloadSpec) -> Arrival {
    let l = &spec.load;
    let rate_rps = l.rate_rps.unwrap_or(1.0);
    match l.arrival {
        ArrivalPattern::Poisson => Arrival::Poisson { rate_rps },
        ArrivalPattern::Constant => Arrival::Constant { rate_rps },
        ArrivalPattern::Gamma => Arrival::Gamma {
            rate_rps,
            burstiness: l.burstiness.unwrap_or(1.0),
        },
        ArrivalPattern::Closed => Arrival::Closed {
            concurrency: l.concurrency.unwrap_or(1),
        },
        ArrivalPattern::All => Arrival::All,
        ArrivalPattern::Trace => Arrival::Trace,
    }
}

fn prefix_message(spec: &WorkloadSpec, seed: u64) -> Option<(Arc<Message>, PrefixRef)> {
    let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(seed, "prefix", 0));
    let tool_calls = spec
        .tasks
        .as_ref()
        .is_some_and(|t| t.kind == crate::tasks::TaskKind::ToolCall);
    let (text, ids) = match (&spec.prefix, tool_calls) {
        // Tool-call tasks always share the tool definitions, padded to `prefix`.
        (p, true) => {
            let text = crate::tasks::tool_prefix(&mut rng, p.as_ref().map_or(0, |p| p.tokens));
            let ids = encode(&text);
            (text, ids)
        }
        (Some(p), false) => synthetic_text(&mut rng, p.tokens as usize),
        (None, false) => return None,
    };
    let mut h = Sha256::new();
    for id in &ids {
        h.update(id.to_le_bytes());
    }
    let id = hex(&h.finalize()[..8]);
    let ids_len = ids.len() as u32;
    Some((
        Arc::new(Message {
            role: Role::System,
            text,
            token_ids: ids,
        }),
        PrefixRef {
            id,
            tokens: ids_len,
        },
    ))
}

/// Generates one session from its seed.
pub fn generate_session(
    spec: &WorkloadSpec,
    index: u64,
    seed: u64,
    prefix: Option<&(Arc<Message>, PrefixRef)>,
    first_request_id: u64,
) -> SessionPlan {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let calls_n = rng.random_range(spec.session.calls.min..=spec.session.calls.max);
    let mut history: Vec<Arc<Message>> = prefix.map(|(m, _)| Arc::clone(m)).into_iter().collect();
    let fixed_one = LengthSpec::Fixed { value: 1.0 };
    // Validated specs that generate sessions have both (a replay never comes here).
    let input = spec.input.as_ref().unwrap_or(&fixed_one);
    let output = spec.output.as_ref().unwrap_or(&fixed_one);
    let followup = spec.followup.as_ref().unwrap_or(input);
    let mut calls = Vec::with_capacity(calls_n as usize);
    for call in 0..calls_n {
        let new_len = draw_tokens(if call == 0 { input } else { followup }, &mut rng);
        let task = spec
            .tasks
            .as_ref()
            .map(|t| t.make(&mut rng, index, call, new_len, new_len));
        match &task {
            Some(t) => {
                if let Some(system) = &t.system {
                    history.push(Arc::new(Message {
                        role: Role::System,
                        token_ids: encode(system),
                        text: system.clone(),
                    }));
                }
                history.push(Arc::new(Message {
                    role: Role::User,
                    token_ids: encode(&t.user_text),
                    text: t.user_text.clone(),
                }));
            }
            None => {
                let (text, token_ids) = synthetic_text(&mut rng, new_len as usize);
                history.push(Arc::new(Message {
                    role: Role::User,
                    text,
                    token_ids,
                }));
            }
        }
        let drawn = draw_tokens(output, &mut rng);
        let max_output_tokens = task
            .as_ref()
            .and_then(|t| t.max_output_tokens)
            .unwrap_or(drawn);
        let think_ms = if call == 0 {
            0.0
        } else {
            draw(&spec.session.think_time_ms, &mut rng)
        };
        calls.push(Request {
            id: first_request_id + u64::from(call),
            session: index,
            call,
            session_seed: seed,
            messages: history.clone(),
            max_output_tokens,
            prefix: prefix.map(|(_, p)| p.clone()),
            think_ms,
            check: task.as_ref().map(|t| Arc::clone(&t.check)),
        });
        if let Some(t) = task.as_ref().filter(|_| call + 1 < calls_n) {
            // The next call sees the right answer, whatever a target replied.
            history.push(Arc::new(Message {
                role: Role::Assistant,
                token_ids: encode(&t.answer_text),
                text: t.answer_text.clone(),
            }));
        } else if call + 1 < calls_n {
            let (text, token_ids) = synthetic_text(&mut rng, max_output_tokens as usize);
            history.push(Arc::new(Message {
                role: Role::Assistant,
                text,
                token_ids,
            }));
        }
    }
    SessionPlan { index, seed, calls }
}

/// Generates the request stream of `spec` with `seed`: sessions until at least
/// `load.requests` requests, warm-up requests, and the arrival schedule.
pub fn generate(spec: &WorkloadSpec, seed: u64) -> RequestStream {
    if let Some(trace) = &spec.trace {
        return replay(spec, trace, seed);
    }
    let prefix = prefix_message(spec, seed);
    let mut sessions = Vec::new();
    let mut requests = 0u64;
    while requests < spec.load.requests {
        let index = sessions.len() as u64;
        let s = generate_session(
            spec,
            index,
            derive_seed(seed, "session", index),
            prefix.as_ref(),
            requests,
        );
        requests += s.calls.len() as u64;
        sessions.push(s);
    }
    let mut warmup = Vec::new();
    let mut w = 0u64;
    while (warmup.len() as u64) < u64::from(spec.load.warmup_requests) {
        let s = generate_session(spec, w, derive_seed(seed, "warmup", w), prefix.as_ref(), 0);
        let left = spec.load.warmup_requests as usize - warmup.len();
        warmup.extend(s.calls.into_iter().take(left));
        w += 1;
    }
    let (probes, cold_idle_s) = spec
        .load
        .cold_start
        .as_ref()
        .map_or((0, 0.0), |c| (c.probes, c.idle_s));
    let cold: Vec<Request> = (0..u64::from(probes))
        .map(|i| {
            let s = generate_session(spec, i, derive_seed(seed, "cold", i), prefix.as_ref(), 0);
            s.calls
                .into_iter()
                .next()
                .expect("a session has at least one call")
        })
        .collect();
    let arrival = arrival_of(spec);
    let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(seed, "arrivals", 0));
    let schedule = arrival.schedule(sessions.len(), &mut rng);
    RequestStream {
        seed,
        sessions,
        warmup,
        cold,
        cold_idle_s,
        schedule,
        arrival,
    }
}

/// The stream of a trace replay: one single-call session per trace request of the
/// window, at the trace's (scaled) times; warm-up requests are the window's first
/// requests with text of their own seed domain. A trace that was not read (see
/// [`WorkloadSpec::load_trace`]) gives an empty stream.
fn replay(spec: &WorkloadSpec, trace: &crate::trace::TraceSpec, seed: u64) -> RequestStream {
    let (chosen, offsets) = trace.select(spec.load.requests, spec.load.rate_rps);
    let mut prompts = crate::trace::PromptBuilder::new(seed, "trace-block");
    let sessions = chosen
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let req = prompts.request(i as u64, r);
            SessionPlan {
                index: i as u64,
                seed: req.session_seed,
                calls: vec![req],
            }
        })
        .collect();
    let mut warm = crate::trace::PromptBuilder::new(seed, "trace-warmup");
    let warmup = chosen
        .iter()
        .take(spec.load.warmup_requests as usize)
        .enumerate()
        .map(|(i, r)| warm.request(i as u64, r))
        .collect();
    RequestStream {
        seed,
        sessions,
        warmup,
        cold: Vec::new(),
        cold_idle_s: 0.0,
        schedule: Some(offsets),
        arrival: Arrival::Trace,
    }
}

/// Why a request cannot be fitted to a context.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DoesNotFit {
    /// Output tokens asked for.
    pub output_tokens: u32,
    /// The context limit.
    pub context_tokens: u32,
}

/// Fits `req` into `context_tokens` (input + output). Returns `None` when it already
/// fits; otherwise a copy that keeps the shared prefix and the newest messages, drops
/// the oldest others, and cuts the oldest kept one from its start, so the input is
/// exactly `context_tokens - max_output_tokens` tokens.
pub fn fit_to_context(req: &Request, context_tokens: u32) -> Result<Option<Request>, DoesNotFit> {
    let out = req.max_output_tokens;
    let budget = context_tokens.saturating_sub(out);
    if req.input_tokens() <= budget {
        return Ok(None);
    }
    let prefix_len = req.prefix.as_ref().map_or(0, |p| p.tokens);
    let prefix_msgs = usize::from(req.prefix.is_some());
    if budget <= prefix_len {
        return Err(DoesNotFit {
            output_tokens: out,
            context_tokens,
        });
    }
    let mut room = budget - prefix_len;
    let mut kept: Vec<Arc<Message>> = Vec::new();
    for m in req.messages[prefix_msgs..].iter().rev() {
        if room == 0 {
            break;
        }
        let n = m.token_ids.len() as u32;
        if n <= room {
            kept.push(Arc::clone(m));
            room -= n;
        } else {
            let ids = m.token_ids[(n - room) as usize..].to_vec();
            // Synthetic words give their text back exactly; a task's prose is decoded.
            let text = crate::text::words_text(&ids)
                .or_else(|| crate::text::decode(&ids))
                .unwrap_or_default();
            kept.push(Arc::new(Message {
                role: m.role,
                text,
                token_ids: ids,
            }));
            room = 0;
        }
    }
    kept.reverse();
    let mut capped = req.clone();
    capped.messages = req.messages[..prefix_msgs]
        .iter()
        .cloned()
        .chain(kept)
        .collect();
    Ok(Some(capped))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite;

    #[test]
    fn shards_partition_the_stream_at_its_own_times() {
        let mut spec = suite::workload("chat-short").unwrap();
        spec.load.requests = 40;
        let whole = generate(&spec, 5);
        let shards: Vec<RequestStream> = (0..3).map(|i| whole.shard(i, 3).unwrap()).collect();
        let mut seen: Vec<(u64, f64)> = shards
            .iter()
            .flat_map(|s| {
                s.sessions
                    .iter()
                    .map(|x| x.index)
                    .zip(s.schedule.clone().unwrap())
            })
            .collect();
        seen.sort_by_key(|x| x.0);
        let all: Vec<(u64, f64)> = whole
            .sessions
            .iter()
            .map(|x| x.index)
            .zip(whole.schedule.clone().unwrap())
            .collect();
        assert_eq!(seen, all, "every session once, at the whole stream's time");
        let requests: usize = shards.iter().map(RequestStream::request_count).sum();
        assert_eq!(requests, whole.request_count());
        assert!(whole.shard(3, 3).is_err());
        let mut closed = spec.clone();
        closed.load.arrival = ArrivalPattern::Closed;
        closed.load.rate_rps = None;
        closed.load.concurrency = Some(4);
        let c = generate(&closed, 5);
        assert_eq!(
            c.shard(1, 2).unwrap().arrival,
            Arrival::Closed { concurrency: 2 }
        );
        assert!(c.shard(0, 3).unwrap_err().contains("cannot be split"));
    }

    #[test]
    fn same_seed_same_stream_other_seed_other_stream() {
        let spec = suite::workload("agent-loop").unwrap();
        let mut small = spec.clone();
        small.load.requests = 30;
        let a = generate(&small, 7);
        let b = generate(&small, 7);
        assert_eq!(a.digest(), b.digest());
        assert_ne!(a.digest(), generate(&small, 8).digest());
    }

    #[test]
    fn agent_sessions_share_the_prefix_and_grow() {
        let mut spec = suite::workload("agent-loop").unwrap();
        spec.load.requests = 20;
        let s = generate(&spec, 3);
        assert!(s.request_count() >= 20);
        let prefix = s.sessions[0].calls[0].messages[0].clone();
        assert_eq!(prefix.token_ids.len(), 2000);
        for sess in &s.sessions {
            assert!((3..=10).contains(&sess.calls.len()));
            for pair in sess.calls.windows(2) {
                assert!(pair[1].input_tokens() > pair[0].input_tokens());
                // The next call's context starts with the previous call's whole prompt.
                assert_eq!(
                    pair[1].messages[..pair[0].messages.len()],
                    pair[0].messages[..]
                );
                assert!((100.0..=1500.0).contains(&pair[1].think_ms));
            }
            for c in &sess.calls {
                assert_eq!(c.messages[0], prefix);
                assert!((50..=400).contains(&c.max_output_tokens));
            }
        }
    }

    #[test]
    fn lognormal_inputs_have_the_requested_mean() {
        let mut spec = suite::workload("chat-short").unwrap();
        spec.load.requests = 3000;
        let s = generate(&spec, 11);
        let firsts: Vec<f64> = s
            .sessions
            .iter()
            .map(|x| f64::from(x.calls[0].input_tokens()))
            .collect();
        let mean = firsts.iter().sum::<f64>() / firsts.len() as f64;
        // Clamping at [32, 4096] barely moves a mean-512, sigma-0.5 lognormal.
        assert!((mean - 512.0).abs() < 20.0, "mean {mean}");
    }

    #[test]
    fn fitting_keeps_prefix_and_newest_tokens() {
        let mut spec = suite::workload("agent-loop").unwrap();
        spec.load.requests = 40;
        let s = generate(&spec, 1);
        let long = s
            .sessions
            .iter()
            .flat_map(|x| &x.calls)
            .max_by_key(|r| r.input_tokens())
            .unwrap();
        let limit = 2000 + long.max_output_tokens + 500;
        let capped = fit_to_context(long, limit).unwrap().expect("needs capping");
        assert_eq!(capped.input_tokens() + capped.max_output_tokens, limit);
        assert_eq!(capped.messages[0], long.messages[0]);
        let tail = long.prompt_token_ids();
        assert!(tail.ends_with(&capped.prompt_token_ids()[2000..]));
        assert_eq!(fit_to_context(long, 1_000_000).unwrap(), None);
        assert!(fit_to_context(long, 2000).is_err());
    }
}
