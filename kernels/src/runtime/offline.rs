//! Running the runtime synchronously, without the engine thread: a batch of prompts
//! through the same scheduler and forward pass the engine uses (for tests, examples
//! and benchmarks).

use super::kv::BlockPool;
use super::model::{Model, StepSeq};
use super::scheduler::{Scheduler, SchedulerConfig, Seq, StepCounters};
use crate::EngineError;
use crate::ops::{DeviceOps, KvLayout};
use crate::runtime::kv::KvCounters;

/// A model with its KV cache and scheduler, stepped by the caller.
pub struct Offline<D: DeviceOps> {
    /// The model.
    pub model: Model<D>,
    kv: D::Kv,
    layout: KvLayout,
    sched: Scheduler<usize>,
}

impl<D: DeviceOps> Offline<D> {
    /// A runner with a cache of `blocks` blocks of `block_size` tokens.
    pub fn new(
        model: Model<D>,
        blocks: usize,
        block_size: usize,
        config: SchedulerConfig,
    ) -> Result<Self, EngineError> {
        let layout = model.kv_layout(blocks, block_size);
        let kv = model.ops.kv_alloc(layout)?;
        Ok(Self {
            model,
            kv,
            layout,
            sched: Scheduler::new(config, BlockPool::new(blocks, block_size)),
        })
    }

    /// Generates `n` greedy tokens for each prompt, all submitted at once; the
    /// scheduler batches them as the engine would. Returns the tokens per prompt.
    pub fn generate(&mut self, prompts: &[Vec<u32>], n: u32) -> Result<Vec<Vec<u32>>, EngineError> {
        let mut out = vec![Vec::new(); prompts.len()];
        for (i, p) in prompts.iter().enumerate() {
            self.sched.submit(Seq::new(p.clone(), n, i));
        }
        while !self.sched.is_idle() {
            let (work, rejected) = self.sched.schedule();
            if let Some((s, need)) = rejected.first() {
                return Err(EngineError::Tensor(format!(
                    "prompt {} needs {need} KV blocks, the cache holds {}",
                    s.payload, self.layout.blocks
                )));
            }
            let seqs: Vec<StepSeq<'_>> = work
                .iter()
                .map(|w| StepSeq {
                    tokens: &w.tokens,
                    start: w.start,
                    blocks: &self.sched.running[w.seq].blocks,
                    sample: w.sample,
                })
                .collect();
            let sampled = self.model.step(&mut self.kv, &self.layout, &seqs)?;
            self.sched
                .complete(&work, &sampled, |s, t| out[s.payload].push(t));
        }
        Ok(out)
    }

    /// Step counters so far.
    pub fn step_counters(&self) -> StepCounters {
        self.sched.step_counters()
    }

    /// KV counters so far.
    pub fn kv_counters(&self) -> KvCounters {
        self.sched.kv_counters()
    }
}

/// Logits after `prompt` and then after each of `forced` tokens fed one at a time
/// (teacher forcing), for one sequence in a cache of its own; `chunk` splits the
/// prompt's prefill.
pub fn teacher_forced_logits<D: DeviceOps>(
    model: &Model<D>,
    prompt: &[u32],
    forced: &[u32],
    chunk: usize,
) -> Result<Vec<Vec<f32>>, EngineError> {
    let block = 16;
    let total = prompt.len() + forced.len();
    let layout = model.kv_layout(total.div_ceil(block), block);
    let mut kv = model.ops.kv_alloc(layout)?;
    let blocks: Vec<u32> = (0..layout.blocks as u32).collect();
    let mut out = Vec::with_capacity(forced.len() + 1);
    let mut start = 0;
    for part in prompt.chunks(chunk.max(1)) {
        let last = start + part.len() == prompt.len();
        let l = model.step_logits(
            &mut kv,
            &layout,
            &[StepSeq {
                tokens: part,
                start,
                blocks: &blocks,
                sample: last,
            }],
        )?;
        if last {
            out.push(l);
        }
        start += part.len();
    }
    for t in forced {
        out.push(model.step_logits(
            &mut kv,
            &layout,
            &[StepSeq {
                tokens: std::slice::from_ref(t),
                start,
                blocks: &blocks,
                sample: true,
            }],
        )?);
        start += 1;
    }
    Ok(out)
}
