//! The weight rotations (dense and Hadamard, in and out channels, with bias), the matrix
//! generators quarot_hadamard_matrix, quarot_random_signs and quarot_random_orthogonal.
//! Valid results are compared with a plain f64 product (dense: within the rounding of
//! the documented accumulation), with H built here from Sylvester's rule and H_K, and with
//! an MT19937 written here.

use crate::*;

/// Largest rotation size a valid call may use (the reference is O(n^2) per row).
const MAX_R: usize = 96;
/// Largest out_features * in_features of a valid call.
const MAX_W: usize = 1 << 14;

fn dim(inp: &mut Input) -> usize {
    match inp.u8() % 8 {
        0..=5 => inp.pick(&[
            0usize, 1, 2, 3, 4, 5, 6, 8, 12, 16, 20, 24, 28, 32, 36, 40, 48, 64, 72, 76, 96, 128,
        ]),
        6 => inp.u8() as usize,
        _ => inp.pick(&[usize::MAX, usize::MAX / 2, 1 << 40, 1 << 20, 3 << 30]),
    }
}

/// A rotation size for a dimension: usually a divisor of it.
fn rotation_n(inp: &mut Input, d: usize) -> usize {
    match inp.u8() % 8 {
        0..=2 => d,
        3..=5 => {
            let divs: Vec<usize> = (1..=d.min(MAX_R))
                .filter(|r| d.is_multiple_of(*r))
                .collect();
            if divs.is_empty() {
                d
            } else {
                inp.pick(&divs)
            }
        }
        6 => inp.u8() as usize % 40,
        _ => inp.pick(&[0usize, usize::MAX, 1 << 32, (1 << 31) + 1]),
    }
}

fn ulp(dt: i32, v: f64) -> f64 {
    let a = v.abs().max(f64::MIN_POSITIVE);
    let e = a.log2().floor();
    let mant = match dt {
        ffi::QUAROT_DTYPE_F32 => 23.0,
        ffi::QUAROT_DTYPE_F16 => 10.0,
        _ => 7.0,
    };
    let min_exp: f64 = match dt {
        ffi::QUAROT_DTYPE_F32 => -126.0,
        ffi::QUAROT_DTYPE_F16 => -14.0,
        _ => -126.0,
    };
    (e.max(min_exp) - mant).exp2()
}

pub fn run(data: &[u8]) {
    let mut inp = Input::new(data);
    match inp.u8() % 7 {
        0..=3 => weight(&mut inp),
        4 => hadamard_matrix(&mut inp),
        5 => random_signs(&mut inp),
        _ => random_orthogonal(&mut inp),
    }
}

/// R = diag(signs) * M_layout * scale, built here: Sylvester H_{2^m} from popcounts and
/// H_K from `quarot::hadamard::k_matrix` (checked against QuaRot's tables elsewhere).
fn hadamard_dense(n: usize, layout: i32, signs: Option<&[i8]>, scale: f64) -> Vec<f64> {
    let k = quarot::hadamard_k(n).unwrap();
    let m = n / k;
    let hk = if k == 1 {
        vec![1i8]
    } else {
        quarot::hadamard::k_matrix(k).unwrap()
    };
    let syl = |i: usize, j: usize| {
        if (i & j).count_ones().is_multiple_of(2) {
            1.0
        } else {
            -1.0
        }
    };
    let mut r = vec![0f64; n * n];
    for i in 0..n {
        for j in 0..n {
            // kron(A, B)[i][j] = A[i / nb][j / nb] * B[i % nb][j % nb].
            let v = match layout {
                // kron(H_K, H_m)^T: element (i, j) is kron(H_K, H_m)[j][i].
                0 => hk[(j / m) * k + i / m] as f64 * syl(j % m, i % m),
                1 => hk[(i / m) * k + j / m] as f64 * syl(i % m, j % m),
                _ => syl(i / k, j / k) * hk[(i % k) * k + j % k] as f64,
            };
            let s = signs.map_or(1.0, |s| s[i] as f64);
            r[i * n + j] = s * v * scale;
        }
    }
    r
}

fn weight(inp: &mut Input) {
    let outs = dim(inp);
    let ins = dim(inp);
    let out_channels = inp.chance(2);
    let hadamard = inp.chance(2);
    let dt = inp.dtype();
    let stride = inp.stride(ins);
    let r = rotation_n(inp, if out_channels { outs } else { ins });
    let flags = match inp.u8() % 8 {
        0..=3 => 0,
        4 => 4,
        5 => 8,
        6 => 12,
        _ => inp.u32(),
    };
    let weight_null = inp.chance(24);
    let with_bias = out_channels && inp.chance(2);
    let bias_mode = inp.u8() % 8; // 0: NULL, 1: overlapping the weight, else separate
    let layout = if inp.chance(12) {
        inp.u32() as i32
    } else {
        inp.u8() as i32 % 3
    };
    let sign_mode = inp.u8() % 8; // 0..=2: NULL, 3: a bad value, else +-1
                                  // rotation_n signs are read, so none for absurd sizes.
    let sign_mode = if r > 1 << 16 && sign_mode > 2 {
        0
    } else {
        sign_mode
    };
    let scale = match inp.u8() % 8 {
        0..=2 => 1.0 / (r.max(1) as f64).sqrt(),
        3 => ffi::quarot_quark_hadamard_scale(r),
        4 => inp.pick(&[0.0, f64::NAN, f64::INFINITY, -0.0]),
        _ => (inp.u16() as f64 - 32768.0) / 4096.0,
    };
    // A bad entry of R is only noticed while R is read: only for sizes given in full.
    let rot_bad = !hadamard && inp.chance(16) && r.checked_mul(r).is_some_and(|m| m <= 1 << 20);
    let fill = inp.fill();

    let size = elem_size(dt);
    let dimension = if out_channels { outs } else { ins };
    let known = if hadamard { 4 } else { 4 | 8 };
    let span = size.and_then(|_| span_bytes(outs, ins, stride, 4));
    let mut valid = size.is_some()
        && flags & !known == 0
        && stride >= ins
        && r != 0
        && dimension % r == 0
        && span.is_some()
        && !(weight_null && outs > 0 && ins > 0);
    if hadamard {
        valid &= quarot::hadamard_k(r).is_some()
            && (0..3).contains(&layout)
            && sign_mode != 3
            && scale.is_finite()
            && scale != 0.0;
    } else {
        valid &= !rot_bad;
    }
    let bias_overlaps = with_bias && bias_mode == 1 && outs > 0 && ins > 0;
    valid &= !bias_overlaps;
    // Valid calls are computed and checked; too large ones are skipped. Invalid ones get
    // small buffers: a call that wrongly proceeds overruns them (ASan).
    if valid
        && (r > MAX_R
            || outs.saturating_mul(ins) > MAX_W
            || outs > MAX_W
            || ins > MAX_W
            || stride > 4 * MAX_R)
    {
        return;
    }
    let esize = size.unwrap_or(4);
    let wlen = if valid {
        span_bytes(outs, ins, stride, esize).unwrap()
    } else {
        span_bytes(outs, ins, stride, esize)
            .unwrap_or(256)
            .min(1 << 14)
    };
    // rotation_n^2 doubles (the library reads them), or a few for absurd sizes.
    let rlen = match r.checked_mul(r) {
        Some(m) if m <= 1 << 20 => m,
        _ => 64,
    };
    if std::env::var_os("QUAROT_FUZZ_DEBUG").is_some() {
        eprintln!("outs {outs} ins {ins} stride {stride} r {r} dt {dt} valid {valid} wlen {wlen} rlen {rlen} bias {with_bias}");
    }
    let fdt = size.map_or(ffi::QUAROT_DTYPE_F32, |_| dt);
    let mut w = Buf::new(wlen + 64);
    if valid {
        inp.fill_rows(fill, &mut w, fdt, 0, outs, ins, stride);
    }
    let blen = if valid { outs } else { outs.min(4096) };
    let mut bias = Buf::new(blen * esize + 64);
    if valid && with_bias {
        inp.fill_rows(Fill::Mixed, &mut bias, fdt, 0, 1, outs, outs);
    }
    let mut rot = vec![0f64; rlen.max(1)];
    let mut state = inp.u64() | 1;
    for v in rot.iter_mut() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        *v = ((state >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * 2.0 / (r.max(1) as f64).sqrt();
    }
    if rot_bad && !rot.is_empty() {
        let i = inp.u16() as usize % rot.len();
        rot[i] = inp.pick(&[f64::NAN, f64::INFINITY, f64::NEG_INFINITY]);
    }
    let signs: Vec<i8> = (0..r.clamp(1, 1 << 16))
        .map(|i| {
            if sign_mode == 3 && i == 0 {
                inp.pick(&[0i8, 2, -2, 127])
            } else if inp.u8() & 1 == 0 {
                1
            } else {
                -1
            }
        })
        .collect();
    let signs_p = if sign_mode <= 2 {
        std::ptr::null()
    } else {
        signs.as_ptr()
    };
    let wb = w.clone();
    let bb = bias.clone();
    let wp = if weight_null {
        std::ptr::null_mut()
    } else {
        w.ptr() as *mut std::ffi::c_void
    };
    let bp = if !with_bias || bias_mode == 0 {
        std::ptr::null_mut()
    } else if bias_mode == 1 {
        wp
    } else {
        bias.ptr() as *mut std::ffi::c_void
    };
    let what = format!(
        "rotate {} {} dtype {dt} {outs}x{ins} stride {stride} r {r} flags {flags:#x} layout {layout} signs {sign_mode} scale {scale:e} nulls w {weight_null} bias {with_bias}/{bias_mode} rot_bad {rot_bad}",
        if out_channels { "out" } else { "in" },
        if hadamard { "hadamard" } else { "dense" }
    );
    if std::env::var_os("QUAROT_FUZZ_DEBUG").is_some() {
        eprintln!("{what}: valid {valid}");
    }
    // SAFETY: buffers sized for a valid call; an invalid call must be refused before any
    // access beyond what was allocated.
    let st = unsafe {
        match (out_channels, hadamard) {
            (false, false) => {
                ffi::quarot_rotate_in_channels(wp, dt, outs, ins, stride, rot.as_ptr(), r, flags)
            }
            (true, false) => ffi::quarot_rotate_out_channels(
                wp,
                dt,
                outs,
                ins,
                stride,
                bp,
                rot.as_ptr(),
                r,
                flags,
            ),
            (false, true) => ffi::quarot_rotate_in_channels_hadamard(
                wp, dt, outs, ins, stride, r, layout, signs_p, scale, flags,
            ),
            (true, true) => ffi::quarot_rotate_out_channels_hadamard(
                wp, dt, outs, ins, stride, bp, r, layout, signs_p, scale, flags,
            ),
        }
    };
    if !valid {
        expect_rejected(&what, st, &[(wb.bytes(), &w), (bb.bytes(), &bias)]);
        return;
    }
    expect_ok(&what, st);
    let rmat: Vec<f64> = if hadamard {
        let s = (sign_mode > 2).then_some(&signs[..r]);
        hadamard_dense(r, layout, s, scale)
    } else {
        rot[..r * r].to_vec()
    };
    let f32acc = flags & 8 != 0;
    // Expected values: blocks of r input columns times R, or R^T times blocks of r rows.
    let mut expected = wb.clone();
    let check = |what: &str, got: f32, terms: &[(f64, f64)], i: usize| {
        let exact: f64 = terms.iter().map(|(a, b)| a * b).sum();
        let mag: f64 = terms.iter().map(|(a, b)| (a * b).abs()).sum();
        if !exact.is_finite() || !mag.is_finite() || mag > 1e30 {
            return; // Inf/NaN inputs: the order of the sum decides; not compared.
        }
        let acc_err = if f32acc {
            mag * (terms.len() as f64 + 2.0) * 2f64.powi(-23)
        } else {
            mag * (terms.len() as f64 + 2.0) * 2f64.powi(-50)
        };
        let tol = acc_err + ulp(dt, exact);
        if got.is_infinite() {
            // Overflow of the element type (f16 above 65504): Inf is right when the value
            // can round beyond the largest finite one.
            let top = exact.abs() + tol;
            let rounded = f32_to_bits(dt, top as f32);
            assert!(
                is_inf_bits(dt, rounded) && (got > 0.0) == (exact > 0.0),
                "{what}: element {i}: got {got:e}, exact {exact:e}, tolerance {tol:e}"
            );
            return;
        }
        assert!(
            (got as f64 - exact).abs() <= tol,
            "{what}: element {i}: got {got:e}, exact {exact:e}, tolerance {tol:e}"
        );
    };
    if out_channels {
        for c in 0..ins {
            for blk in 0..outs / r {
                for j in 0..r {
                    let terms: Vec<(f64, f64)> = (0..r)
                        .map(|k| {
                            (
                                rmat[k * r + j],
                                wb.get(dt, 0, (blk * r + k) * stride + c) as f64,
                            )
                        })
                        .collect();
                    let i = (blk * r + j) * stride + c;
                    check(&what, w.get(dt, 0, i), &terms, i);
                    expected.set_bits(dt, 0, i, w.bits(dt, 0, i));
                }
            }
        }
    } else {
        for row in 0..outs {
            for blk in 0..ins / r {
                for j in 0..r {
                    let terms: Vec<(f64, f64)> = (0..r)
                        .map(|k| {
                            (
                                wb.get(dt, 0, row * stride + blk * r + k) as f64,
                                rmat[k * r + j],
                            )
                        })
                        .collect();
                    let i = row * stride + blk * r + j;
                    check(&what, w.get(dt, 0, i), &terms, i);
                    expected.set_bits(dt, 0, i, w.bits(dt, 0, i));
                }
            }
        }
    }
    assert!(
        expected.bytes() == w.bytes(),
        "{what}: wrote outside the weight rows"
    );
    let mut bexp = bb.clone();
    // An empty weight is a no-op, for the bias too.
    if !bp.is_null() && outs > 0 && ins > 0 {
        for blk in 0..outs / r {
            for j in 0..r {
                let terms: Vec<(f64, f64)> = (0..r)
                    .map(|k| (rmat[k * r + j], bb.get(dt, 0, blk * r + k) as f64))
                    .collect();
                let i = blk * r + j;
                check(&what, bias.get(dt, 0, i), &terms, i);
                bexp.set_bits(dt, 0, i, bias.bits(dt, 0, i));
            }
        }
    }
    assert!(bexp.bytes() == bias.bytes(), "{what}: bias written outside");
}

fn hadamard_matrix(inp: &mut Input) {
    let n = match inp.u8() % 4 {
        0..=2 => inp.pick(&[
            1usize, 2, 4, 8, 12, 16, 20, 24, 28, 36, 40, 44, 52, 56, 60, 64, 68, 72, 76, 80, 96,
        ]),
        _ => inp.pick(&[0usize, 3, 50, 92, usize::MAX, 1 << 32, 1 << 40, 13696]),
    };
    let layout = if inp.chance(10) {
        inp.u32() as i32
    } else {
        inp.u8() as i32 % 3
    };
    let sign_mode = inp.u8() % 6;
    let scale = match inp.u8() % 6 {
        0..=2 => 1.0 / (n.max(1) as f64).sqrt(),
        3 => inp.pick(&[0.0, f64::NAN, f64::NEG_INFINITY]),
        _ => inp.u16() as f64 / 1000.0 - 30.0,
    };
    let need = n.checked_mul(n);
    let out_len = match (inp.u8() % 4, need) {
        (0, Some(m)) => m.saturating_sub(1),
        (_, Some(m)) => m,
        (_, None) => 64,
    };
    let null = inp.chance(16);
    let signs: Vec<i8> = (0..n.min(128))
        .map(|i| {
            if sign_mode == 1 && i == n / 2 {
                3
            } else if inp.u8() & 1 == 0 {
                1
            } else {
                -1
            }
        })
        .collect();
    let valid = quarot::hadamard_k(n).is_some()
        && (0..3).contains(&layout)
        && sign_mode != 1
        && scale.is_finite()
        && scale != 0.0
        && !null
        && need.is_some_and(|m| out_len >= m);
    if valid && n > 128 {
        return;
    }
    if !valid && sign_mode > 1 && n > signs.len() {
        return; // the signs would be read past their end if n were accepted late
    }
    let alloc = if valid { out_len } else { out_len.min(1 << 12) };
    let mut out = vec![7.25f64; alloc + 8];
    let before = out.clone();
    let sp = if sign_mode == 0 {
        std::ptr::null()
    } else {
        signs.as_ptr()
    };
    let op = if null {
        std::ptr::null_mut()
    } else {
        out.as_mut_ptr()
    };
    // SAFETY: out valid for out_len when valid; signs for n when non-NULL and n <= 128.
    let st = unsafe { ffi::quarot_hadamard_matrix(op, out_len, n, layout, sp, scale) };
    let what = format!("hadamard_matrix n {n} layout {layout} signs {sign_mode} scale {scale:e} out_len {out_len} null {null}");
    if !valid {
        assert!(
            st != ffi::quarot_status::QUAROT_OK && st != ffi::quarot_status::QUAROT_ERR_PANIC,
            "{what}: {st:?}"
        );
        assert!(
            out.iter()
                .zip(&before)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "{what}: written on error"
        );
        assert!(!last_error().is_empty());
        return;
    }
    expect_ok(&what, st);
    let s = (sign_mode != 0).then_some(&signs[..n]);
    let want = hadamard_dense(n, layout, s, scale);
    for i in 0..n * n {
        assert_eq!(
            out[i].to_bits(),
            want[i].to_bits(),
            "{what}: entry {i}: {} vs {}",
            out[i],
            want[i]
        );
    }
    assert!(
        out[n * n..].iter().all(|&v| v == 7.25),
        "{what}: wrote past n*n"
    );
}

/// MT19937, written here from the reference description (torch's CPU generator).
struct Mt {
    s: [u32; 624],
    i: usize,
}

impl Mt {
    fn new(seed: u32) -> Mt {
        let mut s = [0u32; 624];
        s[0] = seed;
        for i in 1..624 {
            s[i] = 1812433253u32
                .wrapping_mul(s[i - 1] ^ (s[i - 1] >> 30))
                .wrapping_add(i as u32);
        }
        Mt { s, i: 624 }
    }
    fn next(&mut self) -> u32 {
        if self.i == 624 {
            for k in 0..624 {
                let y = (self.s[k] & 0x8000_0000) | (self.s[(k + 1) % 624] & 0x7fff_ffff);
                let mut v = self.s[(k + 397) % 624] ^ (y >> 1);
                if y & 1 != 0 {
                    v ^= 0x9908_b0df;
                }
                self.s[k] = v;
            }
            self.i = 0;
        }
        let mut y = self.s[self.i];
        self.i += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }
}

fn random_signs(inp: &mut Input) {
    let n = if inp.chance(8) {
        inp.pick(&[usize::MAX, 1 << 40])
    } else {
        inp.u16() as usize % 3000
    };
    let seed = inp.u64();
    let null = inp.chance(8);
    let valid = !(null && n > 0);
    if valid && n > 3000 {
        return;
    }
    let mut out = vec![5i8; n.min(3000) + 8];
    let p = if null {
        std::ptr::null_mut()
    } else {
        out.as_mut_ptr()
    };
    // SAFETY: valid for n writes when non-NULL (n <= 3000 then).
    let st = unsafe { ffi::quarot_random_signs(p, n, seed) };
    let what = format!("random_signs n {n} seed {seed} null {null}");
    if !valid {
        assert!(
            st != ffi::quarot_status::QUAROT_OK && st != ffi::quarot_status::QUAROT_ERR_PANIC,
            "{what}: {st:?}"
        );
        assert!(out.iter().all(|&v| v == 5), "{what}: written");
        return;
    }
    expect_ok(&what, st);
    let mut mt = Mt::new(seed as u32);
    for (i, &v) in out[..n].iter().enumerate() {
        let want = if mt.next() & 1 == 1 { 1 } else { -1 };
        assert_eq!(v, want, "{what}: sign {i}");
    }
    assert!(out[n..].iter().all(|&v| v == 5), "{what}: wrote past n");
}

fn random_orthogonal(inp: &mut Input) {
    let n = match inp.u8() % 8 {
        0 => inp.pick(&[0usize, usize::MAX, 1 << 32, 1 << 40]),
        _ => inp.u8() as usize % 40,
    };
    let seed = inp.u64();
    let need = n.checked_mul(n);
    let out_len = match (inp.u8() % 6, need) {
        (0, Some(m)) => m.saturating_sub(1),
        (_, Some(m)) => m,
        (_, None) => 16,
    };
    let null = inp.chance(12);
    let valid = n > 0 && !null && need.is_some_and(|m| out_len >= m);
    if valid && n > 40 {
        return;
    }
    let alloc = if valid { out_len } else { out_len.min(1 << 12) };
    let mut out = vec![3.5f64; alloc + 8];
    let p = if null {
        std::ptr::null_mut()
    } else {
        out.as_mut_ptr()
    };
    // SAFETY: valid for out_len when the call is valid.
    let st = unsafe { ffi::quarot_random_orthogonal(p, out_len, n, seed) };
    let what = format!("random_orthogonal n {n} out_len {out_len} null {null}");
    if !valid {
        assert!(
            st != ffi::quarot_status::QUAROT_OK && st != ffi::quarot_status::QUAROT_ERR_PANIC,
            "{what}: {st:?}"
        );
        assert!(out.iter().all(|&v| v == 3.5), "{what}: written");
        return;
    }
    expect_ok(&what, st);
    for i in 0..n {
        for j in 0..n {
            let d: f64 = (0..n).map(|k| out[i * n + k] * out[j * n + k]).sum();
            let want = if i == j { 1.0 } else { 0.0 };
            assert!(
                (d - want).abs() < 1e-12 * n as f64,
                "{what}: Q Q^T [{i}][{j}] = {d}"
            );
        }
    }
    assert!(
        out[n * n..].iter().all(|&v| v == 3.5),
        "{what}: wrote past n*n"
    );
    let mut again = vec![0f64; n * n];
    // SAFETY: valid for n * n.
    let st = unsafe { ffi::quarot_random_orthogonal(again.as_mut_ptr(), n * n, n, seed) };
    expect_ok(&what, st);
    assert!(
        again
            .iter()
            .zip(&out)
            .all(|(a, b)| a.to_bits() == b.to_bits()),
        "{what}: not deterministic"
    );
}
