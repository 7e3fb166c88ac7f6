//! The paged KV-cache manager (device-neutral: it hands out block ids; the device
//! holds the blocks).
//!
//! A sequence owns a block table of fixed-size blocks. A block completely filled with
//! prompt tokens is registered under a hash of its tokens chained with the previous
//! block's hash, so it names the whole prefix up to its end. A new sequence whose
//! prompt starts with registered blocks shares them (reference counted) and skips
//! their computation. A block no sequence references stays cached, in least recently
//! used order, until a new allocation needs the space: then the oldest is evicted.

use std::collections::{BTreeMap, HashMap};

use sha2::{Digest, Sha256};

/// Hash naming a prefix that ends at a block boundary.
pub type BlockHash = [u8; 16];

/// Hash of a full block of `tokens` following the prefix `parent`.
pub fn chain_hash(parent: Option<&BlockHash>, tokens: &[u32]) -> BlockHash {
    let mut h = Sha256::new();
    h.update(parent.map_or([0u8; 16], |p| *p));
    for t in tokens {
        h.update(t.to_le_bytes());
    }
    let d = h.finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&d[..16]);
    out
}

#[derive(Clone, Debug, Default)]
struct Block {
    refs: u32,
    hash: Option<BlockHash>,
    /// Tick at which it was last released (its LRU key while unreferenced).
    released_at: u64,
}

/// Cumulative counters of a pool.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KvCounters {
    /// Blocks in the pool.
    pub blocks_total: u64,
    /// Blocks referenced by a sequence now.
    pub blocks_in_use: u64,
    /// Most blocks referenced at once.
    pub blocks_in_use_peak: u64,
    /// Prompt tokens looked up.
    pub prompt_tokens: u64,
    /// Of those, tokens found cached (not computed).
    pub cached_tokens: u64,
    /// Cached blocks evicted to make room.
    pub evictions: u64,
}

/// Not enough free or evictable blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutOfBlocks {
    /// Blocks asked for.
    pub needed: usize,
    /// Blocks free or evictable.
    pub available: usize,
}

/// The block pool.
pub struct BlockPool {
    block_size: usize,
    blocks: Vec<Block>,
    /// Blocks never used or whose contents were dropped.
    free: Vec<u32>,
    /// Registered full blocks by prefix hash.
    by_hash: HashMap<BlockHash, u32>,
    /// Unreferenced registered blocks by release tick (oldest first).
    lru: BTreeMap<u64, u32>,
    tick: u64,
    counters: KvCounters,
}

/// Blocks found for a prompt's prefix.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PrefixHit {
    /// Shared blocks, in order (now referenced by the caller).
    pub blocks: Vec<u32>,
    /// Their hashes.
    pub hashes: Vec<BlockHash>,
    /// Tokens they cover.
    pub tokens: usize,
}

impl BlockPool {
    /// A pool of `blocks` blocks of `block_size` tokens.
    pub fn new(blocks: usize, block_size: usize) -> Self {
        Self {
            block_size,
            blocks: vec![Block::default(); blocks],
            free: (0..blocks as u32).rev().collect(),
            by_hash: HashMap::new(),
            lru: BTreeMap::new(),
            tick: 0,
            counters: KvCounters {
                blocks_total: blocks as u64,
                ..KvCounters::default()
            },
        }
    }

    /// Tokens per block.
    pub fn block_size(&self) -> usize {
        self.block_size
    }

    /// Counters so far.
    pub fn counters(&self) -> KvCounters {
        self.counters
    }

    /// Blocks that could be handed out now (free plus evictable).
    pub fn available(&self) -> usize {
        self.free.len() + self.lru.len()
    }

    fn acquire(&mut self, b: u32) {
        let blk = &mut self.blocks[b as usize];
        if blk.refs == 0 {
            self.lru.remove(&blk.released_at);
            self.counters.blocks_in_use += 1;
            self.counters.blocks_in_use_peak = self
                .counters
                .blocks_in_use_peak
                .max(self.counters.blocks_in_use);
        }
        blk.refs += 1;
    }

    /// Looks up the longest registered prefix of `prompt`, leaving at least one token
    /// to compute (the step that samples the first output token needs one), and takes
    /// a reference on each block found. Give them back with [`BlockPool::release`]
    /// if the sequence is not admitted after all; count an admitted prompt with
    /// [`BlockPool::count_prompt`].
    pub fn lookup_prefix(&mut self, prompt: &[u32]) -> PrefixHit {
        let bs = self.block_size;
        let full = prompt.len().saturating_sub(1) / bs;
        let mut hit = PrefixHit {
            blocks: Vec::new(),
            hashes: Vec::new(),
            tokens: 0,
        };
        for i in 0..full {
            let h = chain_hash(hit.hashes.last(), &prompt[i * bs..(i + 1) * bs]);
            let Some(&b) = self.by_hash.get(&h) else {
                break;
            };
            self.acquire(b);
            hit.blocks.push(b);
            hit.hashes.push(h);
        }
        hit.tokens = hit.blocks.len() * bs;
        hit
    }

    /// Counts an admitted prompt of `tokens` tokens, `cached` of them found cached.
    pub fn count_prompt(&mut self, tokens: usize, cached: usize) {
        self.counters.prompt_tokens += tokens as u64;
        self.counters.cached_tokens += cached as u64;
    }

    /// Hands out `n` blocks, evicting the least recently used cached blocks if the free
    /// list runs out; all or nothing.
    pub fn allocate(&mut self, n: usize) -> Result<Vec<u32>, OutOfBlocks> {
        if n > self.available() {
            return Err(OutOfBlocks {
                needed: n,
                available: self.available(),
            });
        }
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let b = match self.free.pop() {
                Some(b) => b,
                None => {
                    let (_, b) = self.lru.pop_first().expect("available() counted it");
                    let h = self.blocks[b as usize].hash.take().expect("cached block");
                    self.by_hash.remove(&h);
                    self.counters.evictions += 1;
                    b
                }
            };
            self.acquire(b);
            out.push(b);
        }
        Ok(out)
    }

    /// Registers `block`, now completely filled with the tokens that `hash` names, so
    /// later prompts can share it. If another block already holds that prefix (two
    /// identical prompts computed at once), this one stays private.
    pub fn register(&mut self, block: u32, hash: BlockHash) {
        if self.by_hash.contains_key(&hash) || self.blocks[block as usize].hash.is_some() {
            return;
        }
        self.by_hash.insert(hash, block);
        self.blocks[block as usize].hash = Some(hash);
    }

    /// Drops a sequence's references; unreferenced registered blocks stay cached
    /// (evictable), others return to the free list.
    pub fn release(&mut self, blocks: &[u32]) {
        for &b in blocks {
            self.tick += 1;
            let blk = &mut self.blocks[b as usize];
            debug_assert!(blk.refs > 0, "block {b} released twice");
            blk.refs = blk.refs.saturating_sub(1);
            if blk.refs == 0 {
                self.counters.blocks_in_use -= 1;
                if blk.hash.is_some() {
                    blk.released_at = self.tick;
                    self.lru.insert(self.tick, b);
                } else {
                    self.free.push(b);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn register_prompt(pool: &mut BlockPool, blocks: &[u32], prompt: &[u32]) {
        let bs = pool.block_size();
        let mut parent = None;
        for (i, &b) in blocks.iter().enumerate().take(prompt.len() / bs) {
            let h = chain_hash(parent.as_ref(), &prompt[i * bs..(i + 1) * bs]);
            pool.register(b, h);
            parent = Some(h);
        }
    }

    #[test]
    fn shared_prefix_is_found_and_reference_counted() {
        let mut pool = BlockPool::new(8, 4);
        let a: Vec<u32> = (0..10).collect();
        assert_eq!(pool.lookup_prefix(&a).tokens, 0);
        let blocks = pool.allocate(3).unwrap();
        register_prompt(&mut pool, &blocks, &a);
        // Same first 8 tokens, then different: two blocks shared.
        let b: Vec<u32> = (0..8).chain([99, 98, 97]).collect();
        let hit = pool.lookup_prefix(&b);
        assert_eq!(hit.blocks, blocks[..2]);
        assert_eq!(hit.tokens, 8);
        assert_eq!(pool.counters().blocks_in_use, 3);
        // A prompt equal to the cached prefix still computes its last token.
        let c: Vec<u32> = (0..8).collect();
        assert_eq!(pool.lookup_prefix(&c).tokens, 4);
    }

    #[test]
    fn different_first_block_shares_nothing() {
        let mut pool = BlockPool::new(8, 4);
        let a: Vec<u32> = (0..9).collect();
        let blocks = pool.allocate(3).unwrap();
        register_prompt(&mut pool, &blocks, &a);
        // Second block equal, first different: the chained hash does not match.
        let b: Vec<u32> = [50, 1, 2, 3, 4, 5, 6, 7, 8].to_vec();
        assert_eq!(pool.lookup_prefix(&b).tokens, 0);
    }

    #[test]
    fn released_blocks_stay_cached_until_evicted_oldest_first() {
        let mut pool = BlockPool::new(4, 2);
        let a = [1, 2, 3, 4, 5];
        let ba = pool.allocate(3).unwrap();
        register_prompt(&mut pool, &ba, &a);
        pool.release(&ba);
        assert_eq!(pool.counters().blocks_in_use, 0);
        assert_eq!(pool.available(), 4);
        // Still cached: a lookup finds both full blocks.
        let hit = pool.lookup_prefix(&a);
        assert_eq!(hit.tokens, 4);
        pool.release(&hit.blocks);
        // Needing all four blocks evicts both cached ones.
        let all = pool.allocate(4).unwrap();
        assert_eq!(all.len(), 4);
        assert_eq!(pool.counters().evictions, 2);
        assert_eq!(pool.lookup_prefix(&a).tokens, 0);
        assert_eq!(
            pool.allocate(1),
            Err(OutOfBlocks {
                needed: 1,
                available: 0
            })
        );
        pool.release(&all);
        assert_eq!(pool.available(), 4);
        assert_eq!(pool.counters().blocks_in_use_peak, 4);
    }

    #[test]
    fn lru_keeps_the_most_recently_released() {
        let mut pool = BlockPool::new(3, 2);
        let (a, b) = ([1, 2, 0], [3, 4, 0]);
        let ba = pool.allocate(1).unwrap();
        register_prompt(&mut pool, &ba, &a);
        let bb = pool.allocate(1).unwrap();
        register_prompt(&mut pool, &bb, &b);
        pool.release(&ba);
        pool.release(&bb);
        // One fresh block, then one eviction: `a`'s (released first) goes.
        pool.allocate(2).unwrap();
        assert_eq!(pool.lookup_prefix(&a).tokens, 0);
        assert_eq!(pool.lookup_prefix(&b).tokens, 2);
    }
}
