//! The portable arithmetic of CPU attention (also the reference the vector code is
//! tested against): the same operations in the same order as `vector`'s, one element
//! at a time.

use super::elem::{EXP_MIN, EXP_POLY, Elem, KeyBlocks, LANES, LN2_HI, LN2_LO, LOG2E};

/// The tree sum of 8 lanes (see the module doc).
fn tree(a: [f32; LANES]) -> f32 {
    let b: [f32; 4] = std::array::from_fn(|j| a[j] + a[j + 4]);
    let c = [b[0] + b[2], b[1] + b[3]];
    c[0] + c[1]
}

/// `scale · (q · k)` over `q.len()` elements.
pub fn dot<T: Elem>(q: &[f32], k: &[T], scale: f32) -> f32 {
    let n = q.len();
    let whole = n - n % LANES;
    let mut acc = [0f32; LANES];
    for c in (0..whole).step_by(LANES) {
        for j in 0..LANES {
            acc[j] = q[c + j].mul_add(k[c + j].widen(), acc[j]);
        }
    }
    let mut s = tree(acc);
    for i in whole..n {
        s = q[i].mul_add(k[i].widen(), s);
    }
    s * scale
}

/// `out[j·stride] = scale · (q_j · k)` for the queries `q` (`[m, hd]`).
pub fn scores<T: Elem>(q: &[f32], hd: usize, k: &[T], scale: f32, out: &mut [f32], stride: usize) {
    for (j, qj) in q.chunks_exact(hd).enumerate() {
        out[j * stride] = dot(qj, k, scale);
    }
}

/// `out[j] = scale · (q · key_j)` for one query `q` and the first `out.len()` keys
/// of `keys`.
pub fn block_scores(keys: &KeyBlocks, q: &[f32], scale: f32, out: &mut [f32]) {
    let chunks = keys.hd / LANES;
    let mut key = vec![0f32; keys.hd];
    for (j, o) in out.iter_mut().enumerate() {
        for (c, dst) in key.chunks_exact_mut(LANES).enumerate() {
            let at = KeyBlocks::at(chunks, j, c);
            dst.copy_from_slice(&keys.data[at..at + LANES]);
        }
        *o = dot(q, &key, scale);
    }
}

/// `acc += Σ_p w[p]·values[offs[p]..]`, in position order.
pub fn weighted_sum<T: Elem>(acc: &mut [f32], w: &[f32], values: &[T], offs: &[usize]) {
    weighted_from(acc, 0, w, values, offs);
}

/// [`weighted_sum`] for the rows of `acc` (`[m, hd]`, `hd = acc.len() / m`) that
/// see the same positions: row `g` weighs them by `w[g·stride..]`.
pub fn weighted_sums<T: Elem>(
    acc: &mut [f32],
    m: usize,
    w: &[f32],
    stride: usize,
    values: &[T],
    offs: &[usize],
) {
    let hd = acc.len() / m;
    for (g, a) in acc.chunks_exact_mut(hd).enumerate() {
        weighted_from(a, 0, &w[g * stride..g * stride + offs.len()], values, offs);
    }
}

/// `acc[d0..] += Σ_p w[p]·values[offs[p] + d0..]`, in position order: the
/// elements of a row from `d0` on (the vector code's tail).
pub fn weighted_from<T: Elem>(acc: &mut [f32], d0: usize, w: &[f32], values: &[T], offs: &[usize]) {
    let hd = acc.len();
    for (&wp, &off) in w.iter().zip(offs) {
        for (a, v) in acc[d0..].iter_mut().zip(&values[off + d0..off + hd]) {
            *a = wp.mul_add(v.widen(), *a);
        }
    }
}

/// `e^x` for `x <= 0` (a score minus its row's maximum), to about 2 ulp: `x` is
/// held above -87 (below, `e^x` is under 2^-125 of the maximum's weight), split
/// as `n·ln 2 + r` with `|r| <= ln 2 / 2`, and `e^r` taken from Cephes' degree-6
/// polynomial.
pub fn exp_neg(x: f32) -> f32 {
    let x = x.max(EXP_MIN);
    let n = x.mul_add(LOG2E, 0.5).floor();
    let r = n.mul_add(-LN2_LO, n.mul_add(-LN2_HI, x));
    let mut p = EXP_POLY[0];
    for c in &EXP_POLY[1..] {
        p = p.mul_add(r, *c);
    }
    let y = p.mul_add(r * r, r) + 1.0;
    y * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// `x = e^(x - max)` for every element, returning their sum: lane `j` of 8 adds
/// elements `j, j+8, ...` in order, the lanes are summed as a tree and the
/// elements past the last whole 8 added in order.
pub fn exp_sub(s: &mut [f32], max: f32) -> f32 {
    let whole = s.len() - s.len() % LANES;
    let mut acc = [0f32; LANES];
    for c in (0..whole).step_by(LANES) {
        for (j, a) in acc.iter_mut().enumerate() {
            let x = &mut s[c + j];
            *x = exp_neg(*x - max);
            *a += *x;
        }
    }
    let mut sum = tree(acc);
    for x in &mut s[whole..] {
        *x = exp_neg(*x - max);
        sum += *x;
    }
    sum
}

/// The largest element (`-inf` for none); the same value in any order, as no
/// score is NaN.
pub fn max(s: &[f32]) -> f32 {
    s.iter().copied().fold(f32::NEG_INFINITY, f32::max)
}
