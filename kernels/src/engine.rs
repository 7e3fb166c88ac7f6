//! The engine thread: owns the model, the paged KV cache and the scheduler; each
//! iteration takes newly submitted jobs, plans a step (continuous batching, chunked
//! prefill, prefix reuse: see [`crate::runtime::scheduler`]), runs it, and sends every
//! sampled token, stamped with the instant it was produced, to its request's task.
//! A request whose task went away (cancelled) is dropped before the next step.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use tokio::sync::mpsc::UnboundedSender;

use crate::EngineError;
use crate::ops::{DeviceOps, KvLayout};
use crate::runtime::kv::KvCounters;
use crate::runtime::scheduler::{Seq, StepCounters};
use crate::runtime::{Model, Scheduler, StepSeq};

/// A sequence to serve.
pub struct Job {
    /// Prompt token ids.
    pub prompt: Vec<u32>,
    /// Exact number of tokens to generate (end-of-sequence is ignored).
    pub max_output_tokens: u32,
    /// Where tokens go.
    pub events: UnboundedSender<Event>,
}

/// Engine-internal figures of one finished sequence.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SeqStats {
    /// Submission to admission (waiting for a batch slot or KV blocks).
    pub queue_s: f64,
    /// Admission to the first token (prompt chunks, interleaved with other work).
    pub prefill_s: f64,
    /// Prompt tokens found in the prefix cache.
    pub cached_prompt_tokens: u32,
    /// Steps it took part in.
    pub steps: u32,
    /// Mean sequences per step over its steps.
    pub mean_batch: f64,
    /// Largest step it took part in.
    pub max_batch: u32,
}

/// Why the engine failed a sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailKind {
    /// It can never fit the KV cache.
    KvCapacity,
    /// A step failed.
    Step,
    /// A step ran out of device memory.
    DeviceOom,
}

/// What the engine reports about a sequence.
#[derive(Debug)]
pub enum Event {
    /// A token was produced at `at`.
    Token {
        /// When it was produced.
        at: Instant,
        /// Its id.
        id: u32,
    },
    /// The last token was sent; the sequence's figures.
    Done(SeqStats),
    /// The sequence failed.
    Failed(FailKind, String),
}

/// Counters of the engine since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EngineCounters {
    /// Steps.
    pub steps: StepCounters,
    /// KV cache.
    pub kv: KvCounters,
    /// Most KV blocks in use since the window was last reset.
    pub window_blocks_peak: u64,
    /// Step time spent on prompt tokens, nanoseconds: a step of prompt chunks only
    /// counts whole, a mixed step by its prompt tokens' share of its tokens.
    pub prefill_busy_ns: u64,
    /// Step time spent on decode tokens, nanoseconds (the rest of every step).
    pub decode_busy_ns: u64,
    /// Steps of decode tokens only (no prompt chunk): what a decode figure is judged
    /// by, since a mixed step's time does not split by token share.
    pub decode_steps: u64,
    /// Tokens of those steps (one per sequence).
    pub decode_step_tokens: u64,
    /// Time of those steps, nanoseconds.
    pub decode_step_ns: u64,
}

struct Payload {
    events: UnboundedSender<Event>,
    submitted: Instant,
    admitted: Option<Instant>,
    first_token: Option<Instant>,
}

/// Handle to a running engine thread; dropping it stops the thread after the work in
/// flight.
pub struct Engine {
    tx: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
    counters: Arc<Mutex<EngineCounters>>,
}

impl Engine {
    /// Starts the engine thread over `model` with a KV cache of `layout` and the
    /// scheduler's limits.
    pub fn start<D: DeviceOps>(
        model: Model<D>,
        layout: KvLayout,
        config: crate::runtime::SchedulerConfig,
    ) -> Result<Self, EngineError> {
        let kv = model.ops.kv_alloc(layout)?;
        let (tx, rx) = mpsc::channel::<Job>();
        let counters = Arc::new(Mutex::new(EngineCounters::default()));
        let shared = counters.clone();
        let thread = std::thread::Builder::new()
            .name("infermeter-engine".into())
            .spawn(move || run(model, kv, layout, config, rx, shared))
            .map_err(|e| EngineError::Tensor(format!("spawning the engine thread: {e}")))?;
        Ok(Self {
            tx: Some(tx),
            thread: Some(thread),
            counters,
        })
    }

    /// Queues a job.
    pub fn submit(&self, job: Job) -> Result<(), EngineError> {
        self.tx
            .as_ref()
            .ok_or(EngineError::Stopped)?
            .send(job)
            .map_err(|_| EngineError::Stopped)
    }

    /// Counters since start (updated after every step).
    pub fn counters(&self) -> EngineCounters {
        *self.counters.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counters since start, and restarts the window of `window_blocks_peak` at the
    /// blocks in use now.
    pub fn counters_new_window(&self) -> EngineCounters {
        let mut c = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        let out = *c;
        c.window_blocks_peak = c.kv.blocks_in_use;
        out
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn secs(a: Instant, b: Option<Instant>) -> f64 {
    b.map_or(0.0, |b| b.saturating_duration_since(a).as_secs_f64())
}

fn run<D: DeviceOps>(
    model: Model<D>,
    mut kv: D::Kv,
    layout: KvLayout,
    config: crate::runtime::SchedulerConfig,
    rx: mpsc::Receiver<Job>,
    counters: Arc<Mutex<EngineCounters>>,
) {
    let pool = crate::runtime::BlockPool::new(layout.blocks, layout.block_size);
    let mut sched: Scheduler<Payload> = Scheduler::new(config, pool);
    let submit = |sched: &mut Scheduler<Payload>, job: Job| {
        let payload = Payload {
            events: job.events,
            submitted: Instant::now(),
            admitted: None,
            first_token: None,
        };
        sched.submit(Seq::new(job.prompt, job.max_output_tokens, payload));
    };
    loop {
        if sched.is_idle() {
            match rx.recv() {
                Ok(job) => submit(&mut sched, job),
                Err(_) => return,
            }
        }
        for job in rx.try_iter() {
            submit(&mut sched, job);
        }
        sched.retain(|s| !s.payload.events.is_closed());
        if sched.is_idle() {
            continue;
        }
        let (work, rejected) = sched.schedule();
        for (s, need) in rejected {
            let _ = s.payload.events.send(Event::Failed(
                FailKind::KvCapacity,
                format!(
                    "{} prompt + {} output tokens need {need} KV blocks of {}; the cache holds {}",
                    s.prompt.len(),
                    s.max_output,
                    layout.block_size,
                    layout.blocks
                ),
            ));
        }
        {
            let mut c = counters.lock().unwrap_or_else(|e| e.into_inner());
            c.window_blocks_peak = c.window_blocks_peak.max(sched.kv_counters().blocks_in_use);
        }
        if work.is_empty() {
            continue;
        }
        let now = Instant::now();
        for w in &work {
            let p = &mut sched.running[w.seq].payload;
            p.admitted.get_or_insert(now);
        }
        let seqs: Vec<StepSeq<'_>> = work
            .iter()
            .map(|w| StepSeq {
                tokens: &w.tokens,
                start: w.start,
                blocks: &sched.running[w.seq].blocks,
                sample: w.sample,
            })
            .collect();
        let prompt_tokens: usize = work
            .iter()
            .filter(|w| !sched.running[w.seq].decoding())
            .map(|w| w.tokens.len())
            .sum();
        let step_tokens: usize = work.iter().map(|w| w.tokens.len()).sum();
        let step_started = Instant::now();
        let stepped = model.step(&mut kv, &layout, &seqs);
        {
            let busy_ns = step_started.elapsed().as_nanos() as u64;
            let prefill_ns = if step_tokens == 0 {
                0
            } else {
                (busy_ns as u128 * prompt_tokens as u128 / step_tokens as u128) as u64
            };
            let mut c = counters.lock().unwrap_or_else(|e| e.into_inner());
            c.prefill_busy_ns += prefill_ns;
            c.decode_busy_ns += busy_ns - prefill_ns;
            if prompt_tokens == 0 {
                c.decode_steps += 1;
                c.decode_step_tokens += step_tokens as u64;
                c.decode_step_ns += busy_ns;
            }
        }
        match stepped {
            Ok(sampled) => {
                let at = Instant::now();
                let finished = sched.complete(&work, &sampled, |s, id| {
                    s.payload.first_token.get_or_insert(at);
                    let _ = s.payload.events.send(Event::Token { at, id });
                });
                for s in finished {
                    let p = &s.payload;
                    let admitted = p.admitted.unwrap_or(p.submitted);
                    let _ = p.events.send(Event::Done(SeqStats {
                        queue_s: secs(p.submitted, Some(admitted)),
                        prefill_s: secs(admitted, p.first_token),
                        cached_prompt_tokens: s.cached as u32,
                        steps: s.steps,
                        mean_batch: s.batch_sum as f64 / s.steps.max(1) as f64,
                        max_batch: s.batch_max,
                    }));
                }
            }
            Err(e) => {
                let kind = match e {
                    EngineError::DeviceOom { .. } => FailKind::DeviceOom,
                    _ => FailKind::Step,
                };
                let msg = e.to_string();
                for s in sched.drain_running() {
                    let _ = s.payload.events.send(Event::Failed(kind, msg.clone()));
                }
            }
        }
        let mut c = counters.lock().unwrap_or_else(|e| e.into_inner());
        c.steps = sched.step_counters();
        c.kv = sched.kv_counters();
    }
}
