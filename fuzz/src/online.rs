//! The handles and the quantizer: quarot_r4_wrapper_new / _forward / _free,
//! quarot_qk_rotation_new / _forward / _free, quarot_last_callback_code and
//! quarot_quantize. Valid results are compared with the scalar reference transform and a
//! quantizer written here from the header's formulas (quarot_quant_config).

use crate::*;
use ffi::{quarot_activations, quarot_qk_shape, quarot_quant_config};
use std::ffi::c_void;

/// Width of rows for the handles: mostly supported, small.
fn handle_width(inp: &mut Input) -> usize {
    match inp.u8() % 8 {
        0..=5 => inp.pick(&[
            1usize, 2, 4, 8, 12, 16, 20, 24, 28, 32, 36, 40, 44, 48, 64, 76, 80, 96, 112, 128, 160,
            192, 256, 304, 384, 1536,
        ]),
        6 => inp.u8() as usize,
        _ => inp.pick(&[0usize, 3, 50, 107, usize::MAX, 1 << 40]),
    }
}

/// The quantizer of the header (quarot_quant_config), written from its formulas.
#[derive(Clone, Copy, Debug)]
struct Q {
    bits: u32,
    symmetric: bool,
    group: usize,
    clip: f32,
}

impl Q {
    /// (scale, zero, lo, hi) of a group, in f32 as documented.
    fn params(&self, g: &[f32]) -> (f32, f32, f32, f32) {
        let mut mn = 0.0f32;
        let mut mx = 0.0f32;
        for &v in g {
            mn = if v < mn { v } else { mn };
            mx = if v > mx { v } else { mx };
        }
        let (xmin, xmax) = (mn * self.clip, mx * self.clip);
        if self.symmetric {
            let maxq = ((1u32 << (self.bits - 1)) - 1) as f32;
            let amax = if -xmin > xmax { -xmin } else { xmax };
            let scale = if amax == 0.0 { 1.0 } else { amax / maxq };
            (scale, 0.0, -(maxq + 1.0), maxq)
        } else {
            let maxq = ((1u32 << self.bits) - 1) as f32;
            let (xmin, xmax) = if xmin == 0.0 && xmax == 0.0 {
                (-1.0, 1.0)
            } else {
                (xmin, xmax)
            };
            let scale = (xmax - xmin) / maxq;
            (scale, (-xmin / scale).round_ties_even(), 0.0, maxq)
        }
    }
    fn code(v: f32, scale: f32, zero: f32, lo: f32, hi: f32) -> f32 {
        let q = (v / scale).round_ties_even() + zero;
        if q.is_nan() {
            q
        } else {
            q.max(lo).min(hi)
        }
    }
    fn fake(&self, row: &mut [f32]) {
        let gs = if self.group == 0 {
            row.len()
        } else {
            self.group
        };
        for g in row.chunks_mut(gs) {
            let (s, z, lo, hi) = self.params(g);
            for v in g.iter_mut() {
                *v = s * (Self::code(*v, s, z, lo, hi) - z);
            }
        }
    }
    /// Codes (shifted for asymmetric), scales and zero points of one row.
    fn real(&self, row: &[f32]) -> (Vec<i8>, Vec<f32>, Vec<f32>) {
        let gs = if self.group == 0 {
            row.len()
        } else {
            self.group
        };
        let shift = if self.symmetric {
            0.0
        } else {
            (1u32 << (self.bits - 1)) as f32
        };
        let (mut c, mut sc, mut zs) = (vec![], vec![], vec![]);
        for g in row.chunks(gs) {
            let (s, z, lo, hi) = self.params(g);
            sc.push(s);
            zs.push(z - shift);
            for &v in g {
                let q = Self::code(v, s, z, lo, hi);
                c.push(if q.is_nan() { 0 } else { (q - shift) as i8 });
            }
        }
        (c, sc, zs)
    }
}

/// A quantizer config from the input: kind, bits, symmetry, group, clip; `valid` as the
/// header defines it for rows of width n.
fn quant_config(inp: &mut Input, n: usize) -> (quarot_quant_config, bool) {
    let kind = if inp.chance(12) {
        inp.u32()
    } else {
        inp.u8() as u32 % 4
    };
    let bits = if inp.chance(10) {
        inp.u32() % 12
    } else {
        2 + inp.u8() as u32 % 7
    };
    let symmetric = inp.u8() as u32 % 2;
    let group_size = match inp.u8() % 4 {
        0 | 1 => 0,
        2 => {
            let divs: Vec<usize> = (1..=n.min(512)).filter(|g| n.is_multiple_of(*g)).collect();
            if divs.is_empty() {
                1
            } else {
                inp.pick(&divs)
            }
        }
        _ => inp.pick(&[3usize, 5, 7, n.saturating_add(1), usize::MAX]),
    };
    let clip_ratio = match inp.u8() % 6 {
        0..=2 => 1.0,
        3 => 0.9,
        4 => inp.pick(&[0.0f32, -0.5, 1.5, f32::NAN, f32::INFINITY]),
        _ => inp.u8() as f32 / 255.0,
    };
    let custom_null = inp.chance(4);
    let cfg = quarot_quant_config {
        kind,
        bits,
        symmetric,
        group_size,
        clip_ratio,
        custom: if custom_null {
            None
        } else {
            Some(custom_quant)
        },
        custom_user_data: std::ptr::null_mut(),
    };
    let params_ok = (2..=8).contains(&bits)
        && clip_ratio > 0.0
        && clip_ratio <= 1.0
        && (group_size == 0 || (group_size <= n && n.is_multiple_of(group_size)));
    let valid = match kind {
        0 => true,
        1 | 2 => params_ok,
        3 => !custom_null,
        _ => false,
    };
    (cfg, valid)
}

/// The caller's quantizer of the R4 tests: negates every value (exact in every type), or
/// fails with code 42 when user_data says so.
unsafe extern "C" fn custom_quant(
    user_data: *mut c_void,
    data: *mut c_void,
    dtype: i32,
    rows: usize,
    n: usize,
    row_stride: usize,
) -> i32 {
    if !user_data.is_null() {
        return 42;
    }
    let size = elem_size(dtype).unwrap();
    for r in 0..rows {
        for j in 0..n {
            // SAFETY: libquarot passes rows of n elements row_stride apart.
            unsafe {
                let p = (data as *mut u8).add((r * row_stride + j) * size);
                // Flip the sign bit of the little-endian element.
                *p.add(size - 1) ^= 0x80;
            }
        }
    }
    0
}

/// What the op saw.
#[derive(Default)]
struct Seen {
    calls: usize,
    fail: i32,
    dtype: i32,
    rows: usize,
    n: usize,
    data: Vec<u32>,
    codes: Vec<i8>,
    scales: Vec<f32>,
    zeros: Vec<f32>,
    group_size: usize,
    groups: usize,
    out: usize,
}

unsafe extern "C" fn op(
    user_data: *mut c_void,
    x: *const quarot_activations,
    out: *mut c_void,
) -> i32 {
    // SAFETY: user_data is the Seen of the test; x is valid during the call.
    let (seen, x) = unsafe { (&mut *(user_data as *mut Seen), &*x) };
    seen.calls += 1;
    seen.out = out as usize;
    seen.dtype = x.dtype;
    seen.rows = x.rows;
    seen.n = x.n;
    seen.group_size = x.group_size;
    seen.groups = x.groups;
    let size = elem_size(x.dtype).expect("the op got an invalid dtype");
    assert!(
        x.row_stride >= x.n,
        "op: row_stride {} < n {}",
        x.row_stride,
        x.n
    );
    seen.data.clear();
    for r in 0..x.rows {
        for j in 0..x.n {
            // SAFETY: rows of n elements row_stride apart, per the contract.
            unsafe {
                let p = (x.data as *const u8).add((r * x.row_stride + j) * size);
                seen.data.push(if size == 4 {
                    (p as *const u32).read_unaligned()
                } else {
                    (p as *const u16).read_unaligned() as u32
                });
            }
        }
    }
    if !x.codes.is_null() {
        // SAFETY: rows * n codes, rows * groups scales and zeros.
        unsafe {
            seen.codes = std::slice::from_raw_parts(x.codes, x.rows * x.n).to_vec();
            seen.scales = std::slice::from_raw_parts(x.scales, x.rows * x.groups).to_vec();
            seen.zeros = std::slice::from_raw_parts(x.zeros, x.rows * x.groups).to_vec();
        }
    } else {
        assert!(
            x.scales.is_null() && x.zeros.is_null(),
            "op: partial real activations"
        );
        seen.codes.clear();
    }
    seen.fail
}

pub fn run(data: &[u8]) {
    let mut inp = Input::new(data);
    match inp.u8() % 3 {
        0 => r4(&mut inp),
        1 => qk(&mut inp),
        _ => quantize(&mut inp),
    }
}

fn same_float(dt: i32, a: u32, b: u32) -> bool {
    a == b || (is_nan_bits(dt, a) && is_nan_bits(dt, b))
}

fn r4(inp: &mut Input) {
    let n = handle_width(inp);
    let block = match inp.u8() % 4 {
        0 | 1 => 0,
        2 => n,
        _ => {
            let b = handle_width(inp);
            if inp.chance(2) && n.is_multiple_of(2) {
                n / 2
            } else {
                b
            }
        }
    };
    let dt = inp.dtype();
    let flags = match inp.u8() % 7 {
        0..=2 => 0,
        3 => 1,
        4 => 2,
        5 => 16,
        _ => inp.pick(&[4u32, 8, 18, 32, 1 << 31]),
    };
    let with_quant = !inp.u8().is_multiple_of(4);
    let (cfg, quant_ok) = quant_config(inp, n);
    let op_null = inp.chance(16);
    let out_null = inp.chance(16);
    let b = if block == 0 { n } else { block };
    let plan_ok = n != 0
        && b <= n
        && n.is_multiple_of(b)
        && crate::transform::size_and_flags_ok(b, flags)
        && flags & !(1 | 2 | 16) == 0;
    let valid_new =
        elem_size(dt).is_some() && plan_ok && (!with_quant || quant_ok) && !op_null && !out_null;
    let sentinel = 0x5a5a_usize as *mut ffi::quarot_r4_wrapper;
    let mut handle = sentinel;
    let mut seen = Box::new(Seen::default());
    let seen_p = &mut *seen as *mut Seen as *mut c_void;
    // SAFETY: the config lives across the call; out points to a handle slot or is NULL.
    let st = unsafe {
        ffi::quarot_r4_wrapper_new(
            n,
            block,
            dt,
            flags,
            if with_quant { &cfg } else { std::ptr::null() },
            if op_null { None } else { Some(op) },
            seen_p,
            if out_null {
                std::ptr::null_mut()
            } else {
                &mut handle
            },
        )
    };
    let what = format!(
        "r4_wrapper_new n {n} block {block} dtype {dt} flags {flags:#x} quant {:?}",
        with_quant.then_some((
            cfg.kind,
            cfg.bits,
            cfg.symmetric,
            cfg.group_size,
            cfg.clip_ratio,
            cfg.custom.is_some()
        ))
    );
    if !valid_new {
        expect_rejected(&what, st, &[]);
        assert_eq!(handle, sentinel, "{what}: handle written on error");
        return;
    }
    expect_ok(&what, st);
    assert!(!handle.is_null() && handle != sentinel);
    // A few forward calls on the handle.
    let size = elem_size(dt).unwrap();
    for call in 0..1 + inp.u8() % 3 {
        let rows = if inp.chance(16) {
            inp.pick(&[usize::MAX, 1 << 40])
        } else {
            inp.u8() as usize % 5
        };
        let stride = inp.stride(n);
        let fflags = match inp.u8() % 5 {
            0 | 1 => 0,
            2 | 3 => 1,
            _ => inp.u32(),
        };
        let x_null = inp.chance(20);
        seen.fail = if inp.chance(8) {
            1 + inp.u8() as i32
        } else {
            0
        };
        let span = span_bytes(rows, n, stride, size);
        let valid = fflags & !1 == 0 && stride >= n && span.is_some() && !(x_null && rows > 0);
        if valid && (span.unwrap() > MAX_BYTES || rows.saturating_mul(n) > 1 << 16) {
            continue;
        }
        let len = if valid {
            span.unwrap()
        } else {
            span.unwrap_or(256).min(1 << 14)
        };
        let mut x = Buf::new(len + 64);
        let fill = inp.fill();
        if valid {
            inp.fill_rows(fill, &mut x, dt, 0, rows, n, stride);
        }
        let before = x.clone();
        let xp = if x_null {
            std::ptr::null_mut()
        } else {
            x.ptr() as *mut c_void
        };
        let out_token = (0x1000 + call as usize) as *mut c_void;
        seen.calls = 0;
        // SAFETY: x valid for the rows when the call is valid.
        let st =
            unsafe { ffi::quarot_r4_wrapper_forward(handle, xp, rows, stride, out_token, fflags) };
        let what = format!(
            "{what}; forward rows {rows} stride {stride} flags {fflags:#x} null {x_null} fail {}",
            seen.fail
        );
        if !valid {
            expect_rejected(&what, st, &[(before.bytes(), &x)]);
            assert_eq!(seen.calls, 0, "{what}: op called on error");
            continue;
        }
        if rows == 0 {
            expect_ok(&what, st);
            assert_eq!(seen.calls, 0, "{what}: op called for 0 rows");
            assert!(before.bytes() == x.bytes());
            continue;
        }
        if seen.fail != 0 {
            assert_eq!(st, ffi::quarot_status::QUAROT_ERR_CALLBACK, "{what}");
            assert_eq!(ffi::quarot_last_callback_code(), seen.fail, "{what}");
        } else {
            expect_ok(&what, st);
        }
        assert_eq!(seen.calls, 1, "{what}: op calls");
        assert_eq!(
            seen.out, out_token as usize,
            "{what}: out not passed through"
        );
        assert_eq!((seen.dtype, seen.rows, seen.n), (dt, rows, n), "{what}");
        // Reference: rotate (blockwise), round to dtype; then the quantizer.
        let mut rotated = Buf::new(rows * n * size + 8);
        for r in 0..rows {
            // Transform each block of row r into `rotated` (row stride n).
            let mut row: Vec<f32> = (0..n).map(|j| before.get(dt, 0, r * stride + j)).collect();
            let plan = quarot::HadamardPlan::new(b, flags).unwrap();
            let s = quarot::normalized_scale(plan.n());
            for blk in row.chunks_mut(plan.n()) {
                quarot::hadamard::reference::hadamard_row_reference(&plan, blk, s);
            }
            for (j, &v) in row.iter().enumerate() {
                rotated.set(dt, 0, r * n + j, v);
            }
        }
        let kind = if with_quant { cfg.kind } else { 0 };
        let q = Q {
            bits: cfg.bits,
            symmetric: cfg.symmetric != 0,
            group: cfg.group_size,
            clip: cfg.clip_ratio,
        };
        let mut expect_data: Vec<u32> = Vec::with_capacity(rows * n);
        let (mut codes, mut scales, mut zeros) = (vec![], vec![], vec![]);
        for r in 0..rows {
            let mut row: Vec<f32> = (0..n).map(|j| rotated.get(dt, 0, r * n + j)).collect();
            match kind {
                1 => q.fake(&mut row),
                2 => {
                    let (c, s, z) = q.real(&row);
                    codes.extend(c);
                    scales.extend(s);
                    zeros.extend(z);
                }
                3 => row.iter_mut().for_each(|v| *v = -*v),
                _ => {}
            }
            expect_data.extend(row.iter().map(|&v| f32_to_bits(dt, v)));
        }
        for (i, (&a, &e)) in seen.data.iter().zip(&expect_data).enumerate() {
            assert!(
                same_float(dt, a, e),
                "{what}: activation {i}: {a:#x} vs {e:#x}"
            );
        }
        if kind == 2 {
            let gs = if q.group == 0 { n } else { q.group };
            assert_eq!((seen.group_size, seen.groups), (gs, n / gs), "{what}");
            assert_eq!(seen.codes, codes, "{what}: codes");
            for (i, (a, e)) in seen.scales.iter().zip(&scales).enumerate() {
                assert!(
                    a.to_bits() == e.to_bits() || (a.is_nan() && e.is_nan()),
                    "{what}: scale {i}: {a} vs {e}"
                );
            }
            for (i, (a, e)) in seen.zeros.iter().zip(&zeros).enumerate() {
                assert!(
                    a.to_bits() == e.to_bits() || (a.is_nan() && e.is_nan()),
                    "{what}: zero {i}: {a} vs {e}"
                );
            }
        } else {
            assert!(
                seen.codes.is_empty() && seen.groups == 0 && seen.group_size == 0,
                "{what}"
            );
        }
        // x: untouched, or (in place) the rows the op saw and nothing else.
        let mut expected = before.clone();
        if fflags & 1 != 0 {
            for r in 0..rows {
                for j in 0..n {
                    let i = r * stride + j;
                    let e = if kind == 2 {
                        f32_to_bits(dt, rotated.get(dt, 0, r * n + j))
                    } else {
                        expect_data[r * n + j]
                    };
                    assert!(
                        same_float(dt, x.bits(dt, 0, i), e),
                        "{what}: x[{i}] in place"
                    );
                    expected.set_bits(dt, 0, i, x.bits(dt, 0, i));
                }
            }
        }
        assert!(
            expected.bytes() == x.bytes(),
            "{what}: x written outside the rows (or at all)"
        );
    }
    // SAFETY: from quarot_r4_wrapper_new, freed once.
    unsafe { ffi::quarot_r4_wrapper_free(handle) };
    drop(seen);
}

/// The RoPE of the QK tests: doubles every value of q and halves every value of k (exact
/// unless it overflows or underflows, identically here and in the reference), or fails.
unsafe extern "C" fn rope(
    user_data: *mut c_void,
    q: *mut c_void,
    k: *mut c_void,
    dtype: i32,
    shape: *const quarot_qk_shape,
    call_arg: *mut c_void,
) -> i32 {
    // SAFETY: the shape is valid during the call; q and k hold the described heads.
    let s = unsafe { &*shape };
    let calls = user_data as *mut usize;
    // SAFETY: the test's counter.
    unsafe { *calls += 1 };
    if call_arg as usize == 1 {
        return 7;
    }
    for (base, heads, ts, hs, f) in [
        (q, s.n_heads, s.q_token_stride, s.q_head_stride, 2.0f32),
        (k, s.n_kv_heads, s.k_token_stride, s.k_head_stride, 0.5),
    ] {
        for t in 0..s.tokens {
            for h in 0..heads {
                for j in 0..s.head_dim {
                    let i = t * ts + h * hs + j;
                    // SAFETY: inside the described heads.
                    unsafe {
                        if dtype == ffi::QUAROT_DTYPE_F32 {
                            let p = (base as *mut f32).add(i);
                            *p *= f;
                        } else {
                            let p = (base as *mut u16).add(i);
                            let v = bits16_to_f32(dtype, *p) * f;
                            *p = f32_to_bits(dtype, v) as u16;
                        }
                    }
                }
            }
        }
    }
    0
}

/// Start offsets of the heads of a layout.
fn heads(tokens: usize, heads: usize, ts: usize, hs: usize) -> Vec<usize> {
    let mut v = vec![];
    for t in 0..tokens {
        for h in 0..heads {
            v.push(t * ts + h * hs);
        }
    }
    v
}

/// The header's layout rule for the heads of q or k (tokens > 0): token-major (each
/// token's heads fit in the token stride) or head-major (each head's tokens fit in the
/// head stride), heads not overlapping.
fn layout_ok(tokens: usize, heads: usize, d: usize, ts: usize, hs: usize) -> bool {
    if heads > 1 && hs < d {
        return false;
    }
    let token_major = tokens == 1 || ts >= (heads - 1) * hs + d;
    let head_major = ts >= d && (heads == 1 || hs >= (tokens - 1) * ts + d);
    token_major || head_major
}

fn qk(inp: &mut Input) {
    let d = handle_width(inp);
    let dt = inp.dtype();
    let flags = match inp.u8() % 7 {
        0..=2 => 0,
        3 => 1,
        4 => 2,
        5 => 16,
        _ => inp.pick(&[4u32, 8, 18, 3, 1 << 31]),
    };
    let with_rope = !inp.u8().is_multiple_of(4);
    let out_null = inp.chance(16);
    let mut rope_calls = 0usize;
    let valid_new = elem_size(dt).is_some()
        && crate::transform::size_and_flags_ok(d, flags)
        && flags & !(1 | 2 | 16) == 0
        && !out_null;
    let sentinel = 0x6b6b_usize as *mut ffi::quarot_qk_rotation;
    let mut handle = sentinel;
    // SAFETY: out is a slot or NULL.
    let st = unsafe {
        ffi::quarot_qk_rotation_new(
            d,
            dt,
            flags,
            if with_rope { Some(rope) } else { None },
            &mut rope_calls as *mut usize as *mut c_void,
            if out_null {
                std::ptr::null_mut()
            } else {
                &mut handle
            },
        )
    };
    let what = format!("qk_rotation_new head_dim {d} dtype {dt} flags {flags:#x} rope {with_rope}");
    if !valid_new {
        expect_rejected(&what, st, &[]);
        assert_eq!(handle, sentinel, "{what}: handle written on error");
        return;
    }
    expect_ok(&what, st);
    if d > 512 {
        // SAFETY: from quarot_qk_rotation_new.
        unsafe { ffi::quarot_qk_rotation_free(handle) };
        return;
    }
    let size = elem_size(dt).unwrap();
    for _ in 0..1 + inp.u8() % 3 {
        let tokens = inp.u8() as usize % 5;
        let nh = inp.u8() as usize % 5;
        let nkv = if inp.chance(3) {
            nh
        } else {
            inp.u8() as usize % 4
        };
        let shape_d = if inp.chance(16) { d + 1 } else { d };
        let pad = |inp: &mut Input| inp.u8() as usize % 3;
        // Token-major or head-major layouts, sometimes with overlapping strides.
        let layout = |inp: &mut Input, heads: usize| -> (usize, usize) {
            match inp.u8() % 6 {
                0..=2 => {
                    let hs = d + pad(inp);
                    (heads * hs + pad(inp), hs)
                }
                3 | 4 => {
                    let ts = d + pad(inp);
                    (ts, tokens * ts + pad(inp))
                }
                _ => (
                    inp.u8() as usize % (2 * d + 2),
                    inp.u8() as usize % (2 * d + 2),
                ),
            }
        };
        let (qts, qhs) = layout(inp, nh);
        let (mut kts, mut khs) = layout(inp, nkv);
        let fused = inp.chance(3);
        if fused {
            // A fused QKV row: k shares q's token stride (placed below with `together`).
            kts = qts;
            khs = d + pad(inp);
        }
        let shape = quarot_qk_shape {
            tokens,
            n_heads: nh,
            n_kv_heads: nkv,
            head_dim: shape_d,
            q_token_stride: qts,
            q_head_stride: qhs,
            k_token_stride: kts,
            k_head_stride: khs,
        };
        let qh = heads(tokens, nh, qts, qhs);
        let kh = heads(tokens, nkv, kts, khs);
        let qspan = qh.iter().map(|o| o + d).max().unwrap_or(0);
        let kspan = kh.iter().map(|o| o + d).max().unwrap_or(0);
        // q and k in one buffer (k after q, or interleaved at an offset) or separate.
        let together = fused || inp.chance(3);
        let koff = if fused {
            // Mostly right after q's heads in the first token.
            let qfoot = if nh > 0 { (nh - 1) * qhs + d } else { 0 };
            qfoot + (inp.u8() as usize % 4) * (inp.u8() as usize % (d + 1))
        } else if together {
            inp.u16() as usize % (qspan + 8)
        } else {
            0
        };
        let shape_null = inp.chance(24);
        let q_null = inp.chance(24);
        let k_null = inp.chance(24);
        let fail = with_rope && inp.chance(8);
        // The header's rules: head counts and head_dim always; layouts, pointers and the
        // q/k address ranges (first to last element) only when there are tokens.
        let heads_ok = layout_ok(tokens, nh, d, qts, qhs) && layout_ok(tokens, nkv, d, kts, khs);
        // Or token-major views of one fused row: same token stride, per-token footprints
        // apart modulo it.
        let foot = |h: usize, hs: usize| if h == 0 { 0 } else { (h - 1) * hs + d };
        let (fq, fk) = (foot(nh, qhs), foot(nkv, khs));
        let interleaved_apart = tokens >= 2
            && qts == kts
            && qts > 0
            && fq <= qts
            && fk <= qts
            && koff % qts >= fq
            && koff % qts + fk <= qts;
        let qk_ok = !together || koff >= qspan || interleaved_apart;
        let valid = !shape_null
            && nh > 0
            && nkv > 0
            && shape_d == d
            && (tokens == 0 || (heads_ok && qk_ok && !q_null && !k_null));
        let qlen = qspan.max(1) * size + 64;
        let klen = kspan.max(1) * size + 64;
        let mut qb = Buf::new(if together {
            (koff * size).max(qspan * size) + klen
        } else {
            qlen
        });
        let mut kb = Buf::new(klen);
        let fill = inp.fill();
        let koff_b = koff * size;
        for &o in &qh {
            inp.fill_rows(fill, &mut qb, dt, o * size, 1, d, d);
        }
        for &o in &kh {
            if together {
                inp.fill_rows(fill, &mut qb, dt, koff_b + o * size, 1, d, d);
            } else {
                inp.fill_rows(fill, &mut kb, dt, o * size, 1, d, d);
            }
        }
        let (qbefore, kbefore) = (qb.clone(), kb.clone());
        let qp = if q_null {
            std::ptr::null_mut()
        } else {
            qb.ptr() as *mut c_void
        };
        let kp = if k_null {
            std::ptr::null_mut()
        } else if together {
            // SAFETY: inside the allocation.
            unsafe { qb.ptr().add(koff_b) as *mut c_void }
        } else {
            kb.ptr() as *mut c_void
        };
        rope_calls = 0;
        let sp = if shape_null {
            std::ptr::null()
        } else {
            &shape as *const _
        };
        // SAFETY: heads valid when the call is valid.
        let st = unsafe {
            ffi::quarot_qk_rotation_forward(handle, qp, kp, sp, fail as usize as *mut c_void)
        };
        let what = format!("{what}; forward {shape:?} together {together} koff {koff} nulls {shape_null}/{q_null}/{k_null} fail {fail}");
        if !valid {
            expect_rejected(&what, st, &[(qbefore.bytes(), &qb), (kbefore.bytes(), &kb)]);
            assert_eq!(rope_calls, 0, "{what}: rope called on error");
            continue;
        }
        if tokens == 0 {
            expect_ok(&what, st);
            assert_eq!(rope_calls, 0, "{what}: rope called for 0 tokens");
            continue;
        }
        if fail {
            assert_eq!(st, ffi::quarot_status::QUAROT_ERR_CALLBACK, "{what}");
            assert_eq!(ffi::quarot_last_callback_code(), 7, "{what}");
            assert!(
                qbefore.bytes() == qb.bytes() && kbefore.bytes() == kb.bytes(),
                "{what}: rotated after a failed rope"
            );
            continue;
        }
        expect_ok(&what, st);
        assert_eq!(rope_calls, usize::from(with_rope), "{what}");
        // Reference: rope (x2 on q, x0.5 on k, rounded to dtype), then each head.
        let mut qexp = qbefore.clone();
        let mut kexp = kbefore.clone();
        for (offs, f, is_k) in [(&qh, 2.0f32, false), (&kh, 0.5, true)] {
            for &o in offs.iter() {
                let (src, off) = if is_k && !together {
                    (&kbefore, o * size)
                } else if is_k {
                    (&qbefore, koff_b + o * size)
                } else {
                    (&qbefore, o * size)
                };
                let mut tmp = src.clone();
                if with_rope {
                    for j in 0..d {
                        let v = src.get(dt, off, j) * f;
                        tmp.set(dt, off, j, v);
                    }
                }
                let got: &Buf = if is_k && !together { &kb } else { &qb };
                let exp: &mut Buf = if is_k && !together {
                    &mut kexp
                } else {
                    &mut qexp
                };
                let mut row: Vec<f32> = (0..d).map(|j| tmp.get(dt, off, j)).collect();
                let plan = quarot::HadamardPlan::new(d, flags).unwrap();
                let s = quarot::normalized_scale(plan.n());
                for blk in row.chunks_mut(plan.n()) {
                    quarot::hadamard::reference::hadamard_row_reference(&plan, blk, s);
                }
                for (j, &y) in row.iter().enumerate() {
                    let want = f32_to_bits(dt, y);
                    let have = got.bits(dt, off, j);
                    assert!(
                        same_float(dt, want, have),
                        "{what}: {} head at {o} element {j}: {have:#x} vs {want:#x}",
                        if is_k { "k" } else { "q" }
                    );
                    exp.set_bits(dt, off, j, have);
                }
            }
        }
        assert!(
            qexp.bytes() == qb.bytes() && kexp.bytes() == kb.bytes(),
            "{what}: written outside the heads"
        );
    }
    // SAFETY: from quarot_qk_rotation_new, freed once.
    unsafe { ffi::quarot_qk_rotation_free(handle) };
}

fn quantize(inp: &mut Input) {
    let n = handle_width(inp);
    let dt = inp.dtype();
    let rows = inp.rows();
    let stride = inp.stride(n);
    let (cfg, quant_ok) = quant_config(inp, n);
    let cfg_null = inp.chance(24);
    let data_null = inp.chance(24);
    let outs_null = inp.u8() % 24; // 0, 1, 2: codes, scales or zeros NULL
    let fill = inp.fill();
    let size = elem_size(dt);
    let span = size.and_then(|s| span_bytes(rows, n, stride, s));
    let real = cfg.kind == 2;
    let gs = if cfg.group_size == 0 {
        n
    } else {
        cfg.group_size
    };
    let valid = !cfg_null
        && (cfg.kind == 1 || real)
        && quant_ok
        && n != 0
        && size.is_some()
        && stride >= n
        && span.is_some()
        && !(rows > 0 && (data_null || (real && outs_null < 3)));
    let cells = rows.saturating_mul(n);
    if valid && (span.unwrap() > MAX_BYTES || cells > 1 << 16) {
        return;
    }
    let len = if valid {
        span.unwrap()
    } else {
        span.unwrap_or(256).min(1 << 14)
    };
    let mut x = Buf::new(len + 64);
    if valid {
        inp.fill_rows(fill, &mut x, dt, 0, rows, n, stride);
    }
    let groups = if valid && gs > 0 { rows * (n / gs) } else { 64 };
    let ncodes = if valid { cells } else { 256 };
    let mut codes = vec![0x55i8; ncodes + 8];
    let mut scales = vec![9.5f32; groups + 8];
    let mut zeros = vec![9.5f32; groups + 8];
    let before = x.clone();
    let p = |null: bool, q: *mut u8| if null { std::ptr::null_mut() } else { q };
    // SAFETY: buffers sized for a valid call.
    let st = unsafe {
        ffi::quarot_quantize(
            p(data_null, x.ptr()) as *mut c_void,
            dt,
            rows,
            n,
            stride,
            if cfg_null { std::ptr::null() } else { &cfg },
            p(outs_null == 0, codes.as_mut_ptr() as *mut u8) as *mut i8,
            p(outs_null == 1, scales.as_mut_ptr() as *mut u8) as *mut f32,
            p(outs_null == 2, zeros.as_mut_ptr() as *mut u8) as *mut f32,
        )
    };
    let what = format!(
        "quantize dtype {dt} rows {rows} n {n} stride {stride} kind {} bits {} sym {} group {} clip {} nulls cfg {cfg_null} data {data_null} outs {outs_null}",
        cfg.kind, cfg.bits, cfg.symmetric, cfg.group_size, cfg.clip_ratio
    );
    let untouched = |c: &[i8], s: &[f32], z: &[f32]| {
        c.iter().all(|&v| v == 0x55) && s.iter().all(|&v| v == 9.5) && z.iter().all(|&v| v == 9.5)
    };
    if !valid {
        expect_rejected(&what, st, &[(before.bytes(), &x)]);
        assert!(
            untouched(&codes, &scales, &zeros),
            "{what}: outputs written on error"
        );
        return;
    }
    expect_ok(&what, st);
    let q = Q {
        bits: cfg.bits,
        symmetric: cfg.symmetric != 0,
        group: cfg.group_size,
        clip: cfg.clip_ratio,
    };
    let mut expected = before.clone();
    let g = n / gs;
    for r in 0..rows {
        let mut row: Vec<f32> = (0..n).map(|j| before.get(dt, 0, r * stride + j)).collect();
        if real {
            let (c, s, z) = q.real(&row);
            assert_eq!(
                &codes[r * n..(r + 1) * n],
                &c[..],
                "{what}: codes of row {r}"
            );
            for i in 0..g {
                let (a, e) = (scales[r * g + i], s[i]);
                assert!(
                    a.to_bits() == e.to_bits() || (a.is_nan() && e.is_nan()),
                    "{what}: scale {r}/{i}: {a} vs {e}"
                );
                let (a, e) = (zeros[r * g + i], z[i]);
                assert!(
                    a.to_bits() == e.to_bits() || (a.is_nan() && e.is_nan()),
                    "{what}: zero {r}/{i}: {a} vs {e}"
                );
            }
        } else {
            q.fake(&mut row);
            for (j, &v) in row.iter().enumerate() {
                let i = r * stride + j;
                let want = f32_to_bits(dt, v);
                assert!(
                    same_float(dt, want, x.bits(dt, 0, i)),
                    "{what}: element {r}/{j}: {:#x} vs {want:#x}",
                    x.bits(dt, 0, i)
                );
                expected.set_bits(dt, 0, i, x.bits(dt, 0, i));
            }
        }
    }
    assert!(
        expected.bytes() == x.bytes(),
        "{what}: data written outside the rows (or at all for REAL)"
    );
    if real {
        assert!(
            codes[cells..].iter().all(|&v| v == 0x55),
            "{what}: codes past the end"
        );
        assert!(
            scales[rows * g..].iter().all(|&v| v == 9.5)
                && zeros[rows * g..].iter().all(|&v| v == 9.5),
            "{what}: scales past the end"
        );
    } else {
        assert!(
            untouched(&codes, &scales, &zeros),
            "{what}: FAKE wrote the real outputs"
        );
    }
}
