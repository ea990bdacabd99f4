//! The plain scalar definition every kernel must match bit for bit (kept deliberately
//! simple: one radix-2 stage at a time, then the K mix as a sequential sum).

use super::HadamardPlan;

/// Transform one f32 row in place exactly as the kernels do: stages h = 1, 2, 4, ... of
/// (a, b) -> (a + b, a - b) on every 2^m segment; for K > 1, out[i][j] = sum over k in
/// order of H[i][k] * seg[k][j] starting from 0; then multiply by `scale`. In the
/// pad-truncate mode the row is zero-padded to the next power of two first and truncated
/// after. 16-bit outputs are this result rounded once.
pub fn hadamard_row_reference(plan: &HadamardPlan, row: &mut [f32], scale: f32) {
    let n = plan.n();
    assert_eq!(row.len(), n);
    let mut x = row.to_vec();
    x.resize(plan.padded_len(), 0.0);
    let m = 1usize << plan.log2_m();
    let mut h = 1;
    while h < m {
        for seg in x.chunks_mut(m) {
            for block in seg.chunks_mut(2 * h) {
                for i in 0..h {
                    let (a, b) = (block[i], block[i + h]);
                    block[i] = a + b;
                    block[i + h] = a - b;
                }
            }
        }
        h *= 2;
    }
    let k = plan.k();
    if k > 1 {
        let mut table = vec![0.0f32; k * k];
        plan.expand_k_table(&mut table);
        let mixed: Vec<f32> = (0..n)
            .map(|t| {
                let (i, j) = (t / m, t % m);
                let mut acc = 0.0f32;
                for kk in 0..k {
                    acc += table[i * k + kk] * x[kk * m + j];
                }
                acc
            })
            .collect();
        x = mixed;
    }
    for (out, v) in row.iter_mut().zip(&x) {
        *out = v * scale;
    }
}
