//! The engine thread: owns the model and every sequence's KV cache, admits new
//! sequences between decode steps (up to `max_batch` in flight), and decodes every
//! running sequence as one batch, so concurrent requests share each step instead of
//! queueing one behind another.
//!
//! Each token is stamped with the instant it was produced and sent to the request's
//! task; a request whose task went away (cancelled) is dropped at the next step.

use std::collections::VecDeque;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Instant;

use tokio::sync::mpsc::UnboundedSender;

use crate::EngineError;
use crate::cpu::{CpuModel, KvCache};

/// A sequence to serve.
pub struct Job {
    /// Prompt token ids.
    pub prompt: Vec<u32>,
    /// Exact number of tokens to generate (end-of-sequence is ignored).
    pub max_output_tokens: u32,
    /// Where tokens go.
    pub events: UnboundedSender<Event>,
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
    /// The sequence failed.
    Failed(String),
}

struct Running {
    cache: KvCache,
    next: u32,
    left: u32,
    events: UnboundedSender<Event>,
}

/// Handle to a running engine thread; dropping it stops the thread after the work in
/// flight.
pub struct Engine {
    tx: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Engine {
    /// Starts the engine thread over `model`.
    pub fn start(model: CpuModel, max_batch: usize) -> Self {
        let (tx, rx) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("infermeter-engine".into())
            .spawn(move || run(model, rx, max_batch.max(1)))
            .expect("spawning a thread");
        Self {
            tx: Some(tx),
            thread: Some(thread),
        }
    }

    /// Queues a job.
    pub fn submit(&self, job: Job) -> Result<(), EngineError> {
        self.tx
            .as_ref()
            .ok_or(EngineError::Stopped)?
            .send(job)
            .map_err(|_| EngineError::Stopped)
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

fn run(model: CpuModel, rx: mpsc::Receiver<Job>, max_batch: usize) {
    let mut pending: VecDeque<Job> = VecDeque::new();
    let mut running: Vec<Running> = Vec::new();
    loop {
        if running.is_empty() && pending.is_empty() {
            match rx.recv() {
                Ok(job) => pending.push_back(job),
                Err(_) => return,
            }
        }
        pending.extend(rx.try_iter());
        while running.len() < max_batch {
            let Some(job) = pending.pop_front() else {
                break;
            };
            if let Some(r) = admit(&model, job) {
                running.push(r);
            }
        }
        running.retain(|r| !r.events.is_closed());
        if running.is_empty() {
            continue;
        }
        let tokens: Vec<u32> = running.iter().map(|r| r.next).collect();
        let mut caches: Vec<&mut KvCache> = running.iter_mut().map(|r| &mut r.cache).collect();
        match model.decode(&mut caches, &tokens) {
            Ok(next) => {
                let at = Instant::now();
                for (r, id) in running.iter_mut().zip(next) {
                    let _ = r.events.send(Event::Token { at, id });
                    r.next = id;
                    r.left -= 1;
                }
                running.retain(|r| r.left > 0);
            }
            Err(e) => {
                for r in running.drain(..) {
                    let _ = r.events.send(Event::Failed(e.to_string()));
                }
            }
        }
    }
}

/// Prefills a new sequence and emits its first token; returns it as running when it
/// needs more tokens.
fn admit(model: &CpuModel, job: Job) -> Option<Running> {
    if job.events.is_closed() {
        return None;
    }
    let capacity = job.prompt.len() + job.max_output_tokens as usize;
    let result = model.new_cache(capacity).and_then(|mut cache| {
        let first = model.prefill(&mut cache, &job.prompt)?;
        Ok((cache, first))
    });
    match result {
        Ok((cache, first)) => {
            let _ = job.events.send(Event::Token {
                at: Instant::now(),
                id: first,
            });
            (job.max_output_tokens > 1).then_some(Running {
                cache,
                next: first,
                left: job.max_output_tokens - 1,
                events: job.events,
            })
        }
        Err(e) => {
            let _ = job.events.send(Event::Failed(e.to_string()));
            None
        }
    }
}
