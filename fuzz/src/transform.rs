//! quarot_hadamard_f32, quarot_hadamard_f16, quarot_hadamard_bf16 and quarot_hadamard
//! (converting, with every aliasing of src and dst) against the scalar reference
//! `hadamard_row_reference` (the definition every kernel must match bit for bit).

use crate::*;
use quarot::hadamard::reference::hadamard_row_reference;
use quarot::HadamardPlan;

/// QUAROT_FLAG_TRANSPOSE_K | _PAD_TRUNCATE | _PARALLEL | _BLOCK_DIAGONAL.
const KNOWN: u32 = 1 | 2 | 4 | 16;

/// Reference work per call (rows * n * (K + log n)) above which a valid call is skipped.
const MAX_WORK: usize = 1 << 23;

pub fn flags(inp: &mut Input) -> u32 {
    match inp.u8() % 8 {
        0..=5 => {
            let b = inp.u8() as u32;
            let mut f = b & 1;
            if b & 0x06 == 0x06 {
                f |= 2;
            }
            if b & 0x08 != 0 {
                f |= 4;
            }
            if b & 0x30 == 0x30 {
                f |= 16;
            }
            f
        }
        6 => inp.pick(&[8u32, 32, 64, 1 << 31, 2 | 16]) | (inp.u8() as u32 & 0x17),
        _ => inp.u32(),
    }
}

/// The oracle for (n, flags): independent of HadamardPlan, from the documented rules.
pub fn size_and_flags_ok(n: usize, flags: u32) -> bool {
    if flags & !KNOWN != 0 || (flags & 2 != 0 && flags & 16 != 0) || n == 0 {
        return false;
    }
    if flags & 2 != 0 {
        n.checked_next_power_of_two().is_some()
    } else if flags & 16 != 0 {
        quarot::block_size(n).is_some()
    } else {
        quarot::hadamard_k(n).is_some()
    }
}

fn work(rows: usize, n: usize, flags: u32) -> usize {
    let k = if flags & 2 != 0 {
        1
    } else if flags & 16 != 0 {
        quarot::block_size(n)
            .and_then(quarot::hadamard_k)
            .unwrap_or(1)
    } else {
        quarot::hadamard_k(n).unwrap_or(1)
    };
    rows.saturating_mul(n.next_power_of_two())
        .saturating_mul(k + 64)
}

/// Bytes to allocate for a span: all of it when valid, else at most 64 KiB (a call that
/// wrongly goes further is an out-of-bounds access for AddressSanitizer).
fn alloc_len(span: Option<usize>, valid: bool) -> usize {
    match span {
        Some(s) if valid => s,
        Some(s) => s.min(1 << 16),
        None => 1 << 12,
    }
}

pub fn run(data: &[u8]) {
    let mut inp = Input::new(data);
    let op = inp.u8() % 4;
    let n = inp.width();
    let rows = inp.rows();
    let stride = inp.stride(n);
    let flags = flags(&mut inp);
    let scale = inp.scale(n);
    let fill = inp.fill();
    let params_ok = size_and_flags_ok(n, flags) && stride >= n && scale.is_finite();
    if op < 3 {
        in_place(&mut inp, op, n, rows, stride, flags, scale, fill, params_ok);
    } else {
        converting(&mut inp, n, rows, stride, flags, scale, fill, params_ok);
    }
}

#[allow(clippy::too_many_arguments)]
fn in_place(
    inp: &mut Input,
    op: u8,
    n: usize,
    rows: usize,
    stride: usize,
    flags: u32,
    scale: f32,
    fill: Fill,
    params_ok: bool,
) {
    let dt = [
        ffi::QUAROT_DTYPE_F32,
        ffi::QUAROT_DTYPE_F16,
        ffi::QUAROT_DTYPE_BF16,
    ][op as usize];
    let null = inp.chance(24);
    let span = span_bytes(rows, n, stride, elem_size(dt).unwrap());
    let valid = params_ok && span.is_some() && !(null && rows > 0);
    if valid && (span.unwrap() > MAX_BYTES || work(rows, n, flags) > MAX_WORK) {
        return;
    }
    let len = alloc_len(span, valid);
    let mut buf = Buf::new(len + 64);
    if valid {
        inp.fill_rows(fill, &mut buf, dt, 0, rows, n, stride);
    }
    let before = buf.clone();
    let p = if null {
        std::ptr::null_mut()
    } else {
        buf.ptr()
    };
    // SAFETY: p is NULL or valid for the span when the oracle says the call is valid; an
    // invalid call must be refused before any access (else ASan reports it).
    let st = unsafe {
        match op {
            0 => ffi::quarot_hadamard_f32(p as *mut f32, rows, n, stride, scale, flags),
            1 => ffi::quarot_hadamard_f16(p as *mut u16, rows, n, stride, scale, flags),
            _ => ffi::quarot_hadamard_bf16(p as *mut u16, rows, n, stride, scale, flags),
        }
    };
    let what = format!("hadamard dtype {dt} rows {rows} n {n} stride {stride} flags {flags:#x} scale {scale:e} null {null}");
    if !valid {
        expect_rejected(&what, st, &[(before.bytes(), &buf)]);
        return;
    }
    expect_ok(&what, st);
    let mut expected = before.clone();
    reference_rows(
        &what,
        (&before, 0, dt, stride),
        (&buf, &mut expected, 0, dt, stride),
        rows,
        n,
        flags,
        scale,
    );
    assert!(
        expected.bytes() == buf.bytes(),
        "{what}: wrote outside the rows"
    );
}

/// Check the dst rows of `got` against the reference applied to the src rows of `src`,
/// and copy them into `expected` (so that a byte comparison then checks everything else).
#[allow(clippy::too_many_arguments)]
pub fn reference_rows(
    what: &str,
    src: (&Buf, usize, i32, usize),
    dst: (&Buf, &mut Buf, usize, i32, usize),
    rows: usize,
    n: usize,
    flags: u32,
    scale: f32,
) {
    let (sbuf, soff, st, sstride) = src;
    let (got, expected, doff, dt, dstride) = dst;
    if rows == 0 {
        return;
    }
    let plan = HadamardPlan::new(n, flags & !4).expect("the oracle accepted (n, flags)");
    let b = plan.n();
    let mut row = vec![0f32; n];
    for r in 0..rows {
        for (j, v) in row.iter_mut().enumerate() {
            *v = sbuf.get(st, soff, r * sstride + j);
        }
        for block in row.chunks_mut(b) {
            hadamard_row_reference(&plan, block, scale);
        }
        for (j, &y) in row.iter().enumerate() {
            let i = r * dstride + j;
            let want = f32_to_bits(dt, y);
            let have = got.bits(dt, doff, i);
            assert!(
                want == have || (is_nan_bits(dt, want) && is_nan_bits(dt, have)),
                "{what}: row {r} element {j}: got bits {have:#x}, reference {want:#x} ({y:e})"
            );
            expected.set_bits(dt, doff, i, have);
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn converting(
    inp: &mut Input,
    n: usize,
    rows: usize,
    src_stride: usize,
    flags: u32,
    scale: f32,
    fill: Fill,
    params_ok: bool,
) {
    let st = inp.dtype();
    let mut dt = inp.dtype();
    let mut dst_stride = inp.stride(n);
    let alias = inp.u8() % 4;
    let src_null = inp.chance(24);
    let dst_null = inp.chance(24);
    if alias == 2 {
        // The very same rows: an in-place call.
        dt = st;
        dst_stride = src_stride;
    }
    let (ss, ds) = (elem_size(st), elem_size(dt));
    let sspan = ss.and_then(|s| span_bytes(rows, n, src_stride, s));
    let dspan = ds.and_then(|s| span_bytes(rows, n, dst_stride, s));
    let mut valid = params_ok
        && dst_stride >= n
        && sspan.is_some()
        && dspan.is_some()
        && !((src_null || dst_null) && rows > 0);
    if valid && (sspan.unwrap().max(dspan.unwrap()) > MAX_BYTES || work(rows, n, flags) > MAX_WORK)
    {
        return;
    }
    let slen = alloc_len(sspan, valid);
    let dlen = alloc_len(dspan, valid);
    let what = format!(
        "quarot_hadamard {st}->{dt} rows {rows} n {n} strides {src_stride}/{dst_stride} flags {flags:#x} scale {scale:e} alias {alias} nulls {src_null}/{dst_null}"
    );
    if alias < 2 {
        let mut sbuf = Buf::new(slen + 64);
        let mut dbuf = Buf::new(dlen + 64);
        if valid {
            inp.fill_rows(fill, &mut sbuf, st, 0, rows, n, src_stride);
        }
        let (sb, db) = (sbuf.clone(), dbuf.clone());
        let sp = if src_null {
            std::ptr::null_mut()
        } else {
            sbuf.ptr()
        };
        let dp = if dst_null {
            std::ptr::null_mut()
        } else {
            dbuf.ptr()
        };
        // SAFETY: as in in_place; distinct allocations.
        let status = unsafe {
            ffi::quarot_hadamard(
                sp as *const _,
                st,
                src_stride,
                dp as *mut _,
                dt,
                dst_stride,
                rows,
                n,
                scale,
                flags,
            )
        };
        if !valid {
            expect_rejected(&what, status, &[(sb.bytes(), &sbuf), (db.bytes(), &dbuf)]);
            return;
        }
        expect_ok(&what, status);
        assert!(sb.bytes() == sbuf.bytes(), "{what}: src was written");
        let mut expected = db.clone();
        reference_rows(
            &what,
            (&sb, 0, st, src_stride),
            (&dbuf, &mut expected, 0, dt, dst_stride),
            rows,
            n,
            flags,
            scale,
        );
        assert!(
            expected.bytes() == dbuf.bytes(),
            "{what}: wrote outside the rows"
        );
        return;
    }
    // One allocation: src at 0, dst at the same address (alias 2) or at a 4-byte aligned
    // offset that may or may not overlap src.
    let doff = if alias == 2 {
        0
    } else {
        4 * (inp.u16() as usize % ((slen + 64) / 4 + 1))
    };
    let fill_src = valid;
    if alias == 3 && valid {
        let (sb_, db_) = (sspan.unwrap(), dspan.unwrap());
        let same = doff == 0 && st == dt && src_stride == dst_stride;
        let overlap = rows > 0 && sb_ > 0 && db_ > 0 && doff < sb_ && !same;
        valid = !overlap;
    }
    let mut buf = Buf::new(slen.max(doff + dlen) + 64);
    if fill_src {
        inp.fill_rows(fill, &mut buf, st, 0, rows, n, src_stride);
    }
    let before = buf.clone();
    let base = buf.ptr();
    let sp = if src_null { std::ptr::null_mut() } else { base };
    // SAFETY: doff is within the allocation.
    let dp = if dst_null {
        std::ptr::null_mut()
    } else {
        unsafe { base.add(doff) }
    };
    // SAFETY: as above; overlapping ranges must be refused before any access.
    let status = unsafe {
        ffi::quarot_hadamard(
            sp as *const _,
            st,
            src_stride,
            dp as *mut _,
            dt,
            dst_stride,
            rows,
            n,
            scale,
            flags,
        )
    };
    if !valid {
        expect_rejected(&what, status, &[(before.bytes(), &buf)]);
        return;
    }
    expect_ok(&what, status);
    let mut expected = before.clone();
    reference_rows(
        &what,
        (&before, 0, st, src_stride),
        (&buf, &mut expected, doff, dt, dst_stride),
        rows,
        n,
        flags,
        scale,
    );
    assert!(
        expected.bytes() == buf.bytes(),
        "{what}: wrote outside the dst rows"
    );
}
