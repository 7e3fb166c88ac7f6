//! Continuous batching: which tokens of which sequences run in the next step.
//!
//! Every step, in this order, under a budget of `max_tokens_per_step` tokens:
//! 1. each decoding sequence gets its one token (decodes are never starved);
//! 2. sequences still prefilling get their next prompt chunk of at most
//!    `prefill_chunk` tokens, in admission order;
//! 3. waiting sequences are admitted first-come first-served while fewer than
//!    `max_batch` run and budget is left: their cached prefix is looked up, the blocks
//!    for the rest of the prompt and every output token are allocated (all or
//!    nothing: a sequence that does not fit waits, and so do those behind it), and
//!    their first chunk is scheduled.
//!
//! A sequence that produced its last token frees its slot and its blocks at once.
//! A sequence whose blocks could never fit the pool is rejected.

use std::collections::VecDeque;

use super::kv::{BlockHash, BlockPool, KvCounters, chain_hash};

/// Limits of the scheduler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SchedulerConfig {
    /// Most sequences running at once.
    pub max_batch: usize,
    /// Most tokens (decode tokens plus prompt chunks) per step.
    pub max_tokens_per_step: usize,
    /// Most prompt tokens of one sequence per step.
    pub prefill_chunk: usize,
    /// Whether full prompt blocks are shared across sequences.
    pub prefix_cache: bool,
}

impl SchedulerConfig {
    /// Checks the limits make sense together.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_batch == 0 || self.prefill_chunk == 0 {
            return Err("max_batch and prefill_chunk must be at least 1".into());
        }
        if self.max_tokens_per_step < self.max_batch {
            return Err(format!(
                "max_tokens_per_step {} is below max_batch {}: decodes could be starved",
                self.max_tokens_per_step, self.max_batch
            ));
        }
        Ok(())
    }
}

/// A sequence and its progress.
pub struct Seq<T> {
    /// Prompt tokens.
    pub prompt: Vec<u32>,
    /// Tokens to generate.
    pub max_output: u32,
    /// Prompt tokens whose keys and values are in the cache.
    pub computed: usize,
    /// Prompt tokens found cached at admission.
    pub cached: usize,
    /// Block table.
    pub blocks: Vec<u32>,
    hashes: Vec<BlockHash>,
    /// Tokens generated so far.
    pub generated: u32,
    /// The last generated token (the next decode input).
    pub last: u32,
    /// Steps this sequence took part in.
    pub steps: u32,
    /// Sum of the step sizes (sequences per step) it saw.
    pub batch_sum: u64,
    /// Largest step it saw.
    pub batch_max: u32,
    /// The caller's data (reply channel, timestamps).
    pub payload: T,
}

impl<T> Seq<T> {
    /// A new sequence.
    pub fn new(prompt: Vec<u32>, max_output: u32, payload: T) -> Self {
        Self {
            prompt,
            max_output,
            computed: 0,
            cached: 0,
            blocks: Vec::new(),
            hashes: Vec::new(),
            generated: 0,
            last: 0,
            steps: 0,
            batch_sum: 0,
            batch_max: 0,
            payload,
        }
    }

    /// Whether the prompt is fully computed.
    pub fn decoding(&self) -> bool {
        self.computed == self.prompt.len()
    }
}

/// One sequence's work in a step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Work {
    /// Index in [`Scheduler::running`].
    pub seq: usize,
    /// Tokens to run.
    pub tokens: Vec<u32>,
    /// Position of the first.
    pub start: usize,
    /// Whether a token is sampled after them.
    pub sample: bool,
}

/// Cumulative step counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StepCounters {
    /// Steps run.
    pub steps: u64,
    /// Sum over steps of the sequences in the step.
    pub seqs_sum: u64,
    /// Sum over steps of the tokens in the step.
    pub tokens_sum: u64,
    /// Prompt tokens computed (not found cached).
    pub prefill_tokens: u64,
    /// Tokens decoded (generated after the first).
    pub decode_tokens: u64,
}

/// The scheduler: waiting and running sequences and the block pool.
pub struct Scheduler<T> {
    config: SchedulerConfig,
    pool: BlockPool,
    waiting: VecDeque<Seq<T>>,
    /// Running sequences, in admission order.
    pub running: Vec<Seq<T>>,
    counters: StepCounters,
}

impl<T> Scheduler<T> {
    /// A scheduler over `pool`.
    pub fn new(config: SchedulerConfig, pool: BlockPool) -> Self {
        Self {
            config,
            pool,
            waiting: VecDeque::new(),
            running: Vec::new(),
            counters: StepCounters::default(),
        }
    }

    /// Queues a sequence.
    pub fn submit(&mut self, seq: Seq<T>) {
        self.waiting.push_back(seq);
    }

    /// Whether nothing is waiting or running.
    pub fn is_idle(&self) -> bool {
        self.waiting.is_empty() && self.running.is_empty()
    }

    /// Sequences waiting.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Block pool counters.
    pub fn kv_counters(&self) -> KvCounters {
        self.pool.counters()
    }

    /// Step counters.
    pub fn step_counters(&self) -> StepCounters {
        self.counters
    }

    /// Tokens per block.
    pub fn block_size(&self) -> usize {
        self.pool.block_size()
    }

    /// Removes the sequences `keep` rejects (e.g. their requester went away), waiting
    /// or running, freeing their blocks.
    pub fn retain(&mut self, mut keep: impl FnMut(&Seq<T>) -> bool) {
        self.waiting.retain(|s| keep(s));
        let mut i = 0;
        while i < self.running.len() {
            if keep(&self.running[i]) {
                i += 1;
            } else {
                let s = self.running.remove(i);
                self.pool.release(&s.blocks);
            }
        }
    }

    /// Removes every running sequence (a step failed), freeing its blocks; waiting
    /// ones stay queued.
    pub fn drain_running(&mut self) -> Vec<Seq<T>> {
        let out: Vec<Seq<T>> = self.running.drain(..).collect();
        for s in &out {
            self.pool.release(&s.blocks);
        }
        out
    }

    fn blocks_for(&self, s: &Seq<T>) -> usize {
        (s.prompt.len() + s.max_output as usize).div_ceil(self.pool.block_size())
    }

    /// Plans the next step; returns the work and the sequences rejected because
    /// they can never fit the pool (with the blocks they need).
    pub fn schedule(&mut self) -> (Vec<Work>, Vec<(Seq<T>, usize)>) {
        let mut budget = self.config.max_tokens_per_step;
        let mut work = Vec::new();
        for (i, s) in self.running.iter().enumerate() {
            if s.decoding() && budget > 0 {
                let pos = s.prompt.len() + s.generated as usize - 1;
                work.push(Work {
                    seq: i,
                    tokens: vec![s.last],
                    start: pos,
                    sample: true,
                });
                budget -= 1;
            }
        }
        for (i, s) in self.running.iter().enumerate() {
            if !s.decoding() && budget > 0 {
                work.push(self.chunk(i, s, &mut budget));
            }
        }
        let mut rejected = Vec::new();
        let total = self.pool.counters().blocks_total as usize;
        while self.running.len() < self.config.max_batch && budget > 0 {
            let Some(front) = self.waiting.front() else {
                break;
            };
            let need = self.blocks_for(front);
            if need > total {
                let s = self.waiting.pop_front().expect("front exists");
                rejected.push((s, need));
                continue;
            }
            let hit = if self.config.prefix_cache {
                self.pool.lookup_prefix(&front.prompt)
            } else {
                super::kv::PrefixHit::default()
            };
            let fresh = match self.pool.allocate(need - hit.blocks.len()) {
                Ok(b) => b,
                Err(_) => {
                    self.pool.release(&hit.blocks);
                    break;
                }
            };
            let mut s = self.waiting.pop_front().expect("front exists");
            self.pool.count_prompt(s.prompt.len(), hit.tokens);
            s.computed = hit.tokens;
            s.cached = hit.tokens;
            s.blocks = hit.blocks;
            s.blocks.extend(fresh);
            s.hashes = hit.hashes;
            let i = self.running.len();
            work.push(self.chunk(i, &s, &mut budget));
            self.running.push(s);
        }
        (work, rejected)
    }

    fn chunk(&self, i: usize, s: &Seq<T>, budget: &mut usize) -> Work {
        let n = (s.prompt.len() - s.computed)
            .min(self.config.prefill_chunk)
            .min(*budget);
        *budget -= n;
        Work {
            seq: i,
            tokens: s.prompt[s.computed..s.computed + n].to_vec(),
            start: s.computed,
            sample: s.computed + n == s.prompt.len(),
        }
    }

    /// Applies a step's results: `sampled` holds one token per work item with
    /// `sample` set, in order; `on_token` sees each with its sequence. Registers newly
    /// completed prompt blocks for reuse, and removes (freeing their blocks) and
    /// returns the sequences that produced their last token.
    pub fn complete(
        &mut self,
        work: &[Work],
        sampled: &[u32],
        mut on_token: impl FnMut(&mut Seq<T>, u32),
    ) -> Vec<Seq<T>> {
        let bs = self.pool.block_size();
        let seqs = work.len() as u64;
        self.counters.steps += 1;
        self.counters.seqs_sum += seqs;
        let mut next = sampled.iter();
        for w in work {
            self.counters.tokens_sum += w.tokens.len() as u64;
            let s = &mut self.running[w.seq];
            s.steps += 1;
            s.batch_sum += seqs;
            s.batch_max = s.batch_max.max(seqs as u32);
            if !s.decoding() {
                self.counters.prefill_tokens += w.tokens.len() as u64;
                s.computed += w.tokens.len();
                let full = if self.config.prefix_cache {
                    s.computed / bs
                } else {
                    0
                };
                while s.hashes.len() < full {
                    let i = s.hashes.len();
                    let h = chain_hash(s.hashes.last(), &s.prompt[i * bs..(i + 1) * bs]);
                    self.pool.register(s.blocks[i], h);
                    s.hashes.push(h);
                }
            } else {
                self.counters.decode_tokens += 1;
            }
            if w.sample {
                let Some(&t) = next.next() else { break };
                s.last = t;
                s.generated += 1;
                on_token(s, t);
            }
        }
        let mut finished = Vec::new();
        let mut i = 0;
        while i < self.running.len() {
            if self.running[i].generated >= self.running[i].max_output {
                let s = self.running.remove(i);
                self.pool.release(&s.blocks);
                finished.push(s);
            } else {
                i += 1;
            }
        }
        finished
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sched(max_batch: usize, budget: usize, chunk: usize, blocks: usize) -> Scheduler<u32> {
        let config = SchedulerConfig {
            max_batch,
            max_tokens_per_step: budget,
            prefill_chunk: chunk,
            prefix_cache: true,
        };
        config.validate().unwrap();
        Scheduler::new(config, BlockPool::new(blocks, 4))
    }

    /// Runs a step with a fake model that samples token 7 everywhere.
    fn step(s: &mut Scheduler<u32>) -> (Vec<Work>, Vec<u32>) {
        let (work, rejected) = s.schedule();
        assert!(rejected.is_empty());
        let sampled = vec![7; work.iter().filter(|w| w.sample).count()];
        let done = s.complete(&work, &sampled, |_, _| {});
        (work, done.into_iter().map(|d| d.payload).collect())
    }

    #[test]
    fn prompts_are_chunked_and_decodes_go_first() {
        let mut s = sched(4, 8, 6, 64);
        s.submit(Seq::new((0..10).collect(), 3, 0));
        let (w, _) = step(&mut s);
        assert_eq!((w[0].start, w[0].tokens.len(), w[0].sample), (0, 6, false));
        let (w, _) = step(&mut s);
        assert_eq!((w[0].start, w[0].tokens.len(), w[0].sample), (6, 4, true));
        // A second sequence arrives while the first decodes: the decode token is
        // scheduled first, the new prompt gets what is left of the budget (7).
        s.submit(Seq::new((100..120).collect(), 2, 1));
        let (w, _) = step(&mut s);
        assert_eq!(w.len(), 2);
        assert_eq!((w[0].seq, w[0].start, w[0].tokens.len()), (0, 10, 1));
        assert_eq!((w[1].seq, w[1].tokens.len(), w[1].sample), (1, 6, false));
        let (w, done) = step(&mut s);
        assert_eq!(w[0].tokens, vec![7]);
        assert_eq!(w[0].start, 11);
        // Sequence 0 produced its third token and left at once.
        assert_eq!(done, vec![0]);
        assert_eq!(s.running.len(), 1);
    }

    #[test]
    fn max_batch_and_blocks_bound_admission() {
        // 3 blocks of 4 tokens: a sequence of 6 + 2 tokens needs 2 blocks.
        let mut s = sched(8, 64, 64, 3);
        for i in 0..3 {
            s.submit(Seq::new(vec![i; 6], 2, i));
        }
        let (w, _) = step(&mut s);
        assert_eq!(w.len(), 1, "the second does not fit beside the first");
        assert_eq!(s.waiting(), 2);
        let (_, done) = step(&mut s);
        assert_eq!(done, vec![0]);
        // Freed blocks admit the next one in the following step.
        let (w, _) = step(&mut s);
        assert_eq!(w.len(), 1);
        assert_eq!(s.running[0].payload, 1);

        let mut s = sched(2, 64, 64, 64);
        for i in 0..3 {
            s.submit(Seq::new(vec![1, 2, 3], 5, i));
        }
        let (w, _) = step(&mut s);
        assert_eq!(w.len(), 2);
        assert_eq!(s.waiting(), 1);
    }

    #[test]
    fn oversized_sequences_are_rejected_not_queued_forever() {
        let mut s = sched(4, 64, 64, 2);
        s.submit(Seq::new(vec![1; 20], 4, 0));
        s.submit(Seq::new(vec![1; 3], 2, 1));
        let (work, rejected) = s.schedule();
        assert_eq!(rejected.len(), 1);
        assert_eq!(rejected[0].1, 6);
        assert_eq!(work.len(), 1);
    }

    #[test]
    fn a_repeated_prompt_reuses_its_blocks() {
        let mut s = sched(4, 64, 64, 64);
        let prompt: Vec<u32> = (0..13).collect();
        s.submit(Seq::new(prompt.clone(), 1, 0));
        step(&mut s);
        s.submit(Seq::new(prompt.clone(), 1, 1));
        let (w, _) = step(&mut s);
        // Three full blocks (12 tokens) were cached; one token is computed.
        assert_eq!((w[0].start, w[0].tokens.len()), (12, 1));
        let k = s.kv_counters();
        assert_eq!((k.prompt_tokens, k.cached_tokens), (26, 12));
        assert_eq!(s.step_counters().prefill_tokens, 14);

        // With the prefix cache off the same prompt is computed again.
        let mut off = sched(4, 64, 64, 64);
        off.config.prefix_cache = false;
        off.submit(Seq::new(prompt.clone(), 1, 0));
        step(&mut off);
        off.submit(Seq::new(prompt, 1, 1));
        let (w, _) = step(&mut off);
        assert_eq!((w[0].start, w[0].tokens.len()), (0, 13));
        assert_eq!(off.kv_counters().cached_tokens, 0);
    }
}
