//! The size queries, H_K, thread splitting, the pool size, scratch, status and error
//! strings, version and instruction-set functions: a sequence of up to 16 random calls,
//! each checked against the documented contract.

use crate::*;
use std::ffi::CStr;

fn cstr(p: *const std::ffi::c_char) -> String {
    assert!(!p.is_null(), "a string function returned NULL");
    // SAFETY: static NUL-terminated strings per the contract.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

fn is_pow2_multiple(n: usize, k: usize) -> bool {
    k != 0 && n.is_multiple_of(k) && (n / k).is_power_of_two()
}

pub fn run(data: &[u8]) {
    let mut inp = Input::new(data);
    for _ in 0..16 {
        let op = inp.u8() % 16;
        match op {
            0 => size_supported(&mut inp),
            1 => nearest_sizes(&mut inp),
            2 => block_size(&mut inp),
            3 => scales(&mut inp),
            4 => k_matrix(&mut inp),
            5 => rows_for_thread(&mut inp),
            6 => set_num_threads(&mut inp),
            7 => scratch(),
            8 => status_string(&mut inp),
            9 => version_and_error(),
            10 => isa(&mut inp),
            _ => size_supported(&mut inp),
        }
    }
}

fn size_supported(inp: &mut Input) {
    let n = inp.width();
    let k = ffi::quarot_hadamard_size_supported(n);
    assert_eq!(k, quarot::hadamard_k(n).unwrap_or(0), "n = {n}");
    if k != 0 {
        assert!(is_pow2_multiple(n, k), "n = {n}: K = {k}");
        assert!(k == 1 || quarot::is_supported_k(k), "n = {n}: K = {k}");
        assert_eq!(
            ffi::quarot_hadamard_block_size(n),
            n,
            "n = {n} is supported"
        );
    } else {
        assert!(!n.is_power_of_two(), "n = {n}");
    }
}

fn nearest_sizes(inp: &mut Input) {
    let n = inp.width();
    let which = inp.u8() % 4;
    let (mut below, mut above) = (usize::MAX - 7, usize::MAX - 7);
    let bp = if which & 1 != 0 {
        std::ptr::null_mut()
    } else {
        &mut below as *mut usize
    };
    let ap = if which & 2 != 0 {
        std::ptr::null_mut()
    } else {
        &mut above as *mut usize
    };
    // SAFETY: NULL or valid for one write.
    let st = unsafe { ffi::quarot_hadamard_nearest_sizes(n, bp, ap) };
    expect_ok("nearest_sizes", st);
    let supported = ffi::quarot_hadamard_size_supported(n) != 0;
    if which & 1 == 0 {
        assert!(below <= n, "n = {n}: below {below}");
        if below != 0 {
            assert!(
                ffi::quarot_hadamard_size_supported(below) != 0,
                "below {below}"
            );
        }
        if supported {
            assert_eq!(below, n);
        }
        // 1 is supported, so only n = 0 has nothing below.
        assert_eq!(below == 0, n == 0, "n = {n}");
    } else {
        assert_eq!(below, usize::MAX - 7, "NULL below but written");
    }
    if which & 2 == 0 {
        assert!(above == 0 || above >= n, "n = {n}: above {above}");
        if above != 0 {
            assert!(
                ffi::quarot_hadamard_size_supported(above) != 0,
                "above {above}"
            );
        }
        if supported {
            assert_eq!(above, n);
        }
        if n <= 1 << 62 {
            assert!(above != 0, "n = {n}: a power of two >= n exists");
        }
    } else {
        assert_eq!(above, usize::MAX - 7, "NULL above but written");
    }
}

fn block_size(inp: &mut Input) {
    let n = inp.width();
    let b = ffi::quarot_hadamard_block_size(n);
    if b == 0 {
        assert!(
            n == 0 || (n % 2 == 1 && ffi::quarot_hadamard_size_supported(n) == 0),
            "n = {n}: no block"
        );
    } else {
        assert!(n.is_multiple_of(b), "n = {n}: block {b}");
        assert!(ffi::quarot_hadamard_size_supported(b) != 0, "block {b}");
        // The largest: no supported multiple of b (between b and n) divides n.
        let mut m = 2 * b;
        let mut tries = 0;
        while m <= n && m > b && tries < 64 {
            if n.is_multiple_of(m) {
                assert_eq!(
                    ffi::quarot_hadamard_size_supported(m),
                    0,
                    "n = {n}: {m} > {b}"
                );
            }
            m += b;
            tries += 1;
        }
    }
}

fn scales(inp: &mut Input) {
    let n = inp.width();
    let s = ffi::quarot_hadamard_scale(n);
    let q = ffi::quarot_quark_hadamard_scale(n);
    if n == 0 {
        assert_eq!((s, q), (0.0, 0.0));
        return;
    }
    let exact = 1.0 / (n as f64).sqrt();
    let ulp = (exact as f32).to_bits();
    let d = (s.to_bits() as i64 - ulp as i64).abs();
    assert!(d <= 1, "n = {n}: scale {s:e} vs {exact:e}");
    assert_eq!(q, 1.0 / ((n as f32).sqrt() as f64), "n = {n}");
}

fn k_matrix(inp: &mut Input) {
    let k = match inp.u8() % 4 {
        0 => inp.pick(&[12usize, 20, 28, 36, 40, 44, 52, 60, 108, 140, 156, 172]),
        1 => inp.pick(&[0usize, 1, 2, 4, 8, 92, 1028, usize::MAX, 1 << 40]),
        _ => inp.u16() as usize % 1100,
    };
    let supported = quarot::is_supported_k(k);
    let need = k.checked_mul(k);
    let out_len = match (inp.u8() % 4, need) {
        (0, Some(m)) => m.saturating_sub(1),
        (1, Some(m)) => m + inp.u8() as usize,
        (_, Some(m)) => m,
        (_, None) => 16,
    };
    let null = inp.chance(16);
    let valid = supported && !null && need.is_some_and(|m| out_len >= m);
    let alloc = if valid { out_len } else { out_len.min(1 << 16) };
    let mut buf = Buf::new(alloc + 16);
    let before = buf.clone();
    let p = if null {
        std::ptr::null_mut()
    } else {
        buf.ptr()
    };
    // SAFETY: valid for out_len writes when the call is valid; an invalid call must not
    // write (the capacity given may be larger than the allocation then: ASan checks).
    let st = unsafe { ffi::quarot_hadamard_k_matrix(k, p as *mut i8, out_len) };
    let what = format!("k_matrix k {k} out_len {out_len} null {null}");
    if !valid {
        expect_rejected(&what, st, &[(before.bytes(), &buf)]);
        return;
    }
    expect_ok(&what, st);
    let m = need.unwrap();
    let h: Vec<i8> = buf.bytes()[..m].iter().map(|&b| b as i8).collect();
    assert!(
        h.iter().all(|&v| v == 1 || v == -1),
        "{what}: entries not +-1"
    );
    for i in m..alloc + 16 {
        assert!(buf.is_canary(i), "{what}: wrote past K*K (byte {i})");
    }
    // H * H^T = K * I on a few row pairs (all of them would be K^3).
    for _ in 0..8 {
        let (a, b) = (inp.u16() as usize % k, inp.u16() as usize % k);
        let dot: i64 = (0..k)
            .map(|j| h[a * k + j] as i64 * h[b * k + j] as i64)
            .sum();
        assert_eq!(
            dot,
            if a == b { k as i64 } else { 0 },
            "{what}: rows {a}, {b}"
        );
    }
}

fn rows_for_thread(inp: &mut Input) {
    let rows = if inp.chance(4) {
        inp.u64() as usize
    } else {
        inp.u16() as usize
    };
    let nth = match inp.u8() % 4 {
        0 => 0,
        1 => inp.u64() as usize,
        _ => inp.u8() as usize % 70,
    };
    let ith = if inp.chance(4) {
        nth.saturating_add(inp.u8() as usize)
    } else {
        inp.u64() as usize % nth.max(1)
    };
    let which = inp.u8() % 8;
    let (mut first, mut count) = (7777usize, 8888usize);
    let fp = if which == 0 {
        std::ptr::null_mut()
    } else {
        &mut first as *mut usize
    };
    let cp = if which == 1 {
        std::ptr::null_mut()
    } else {
        &mut count as *mut usize
    };
    // SAFETY: NULL or valid for one write.
    let st = unsafe { ffi::quarot_rows_for_thread(rows, ith, nth, fp, cp) };
    let what = format!("rows_for_thread rows {rows} ith {ith} nth {nth} which {which}");
    let valid = nth != 0 && ith < nth && which > 1;
    if !valid {
        expect_rejected(&what, st, &[]);
        assert_eq!(
            (first, count),
            (7777, 8888),
            "{what}: outputs written on error"
        );
        return;
    }
    expect_ok(&what, st);
    let lo = rows / nth;
    assert!(count == lo || count == lo + 1, "{what}: count {count}");
    assert!(
        first <= rows && count <= rows - first,
        "{what}: {first}+{count}"
    );
    if nth <= 70 {
        // The ranges of all workers tile 0..rows in order.
        let mut next = 0;
        for i in 0..nth {
            let (mut f, mut c) = (0, 0);
            // SAFETY: valid pointers.
            let st = unsafe { ffi::quarot_rows_for_thread(rows, i, nth, &mut f, &mut c) };
            expect_ok(&what, st);
            assert_eq!(f, next, "{what}: worker {i}");
            next += c;
        }
        assert_eq!(next, rows, "{what}: ranges do not cover the rows");
    }
}

fn set_num_threads(inp: &mut Input) {
    let n = match inp.u8() % 4 {
        0 => 0,
        1 => inp.pick(&[4097usize, 5000, usize::MAX, 1 << 40]),
        _ => 1 + inp.u8() as usize % 3,
    };
    let st = ffi::quarot_set_num_threads(n);
    if n > 4096 {
        expect_rejected(&format!("set_num_threads({n})"), st, &[]);
    } else {
        expect_ok(&format!("set_num_threads({n})"), st);
    }
}

fn scratch() {
    let _ = ffi::quarot_release_scratch();
    assert_eq!(
        ffi::quarot_scratch_retained(),
        0,
        "scratch kept after release"
    );
}

fn status_string(inp: &mut Input) {
    let code = if inp.chance(2) {
        inp.u8() as i32 % 16
    } else {
        inp.u32() as i32
    };
    let s = cstr(ffi::quarot_status_string(code));
    assert!(!s.is_empty());
    assert_eq!(
        s == "unknown status",
        !(0..=13).contains(&code),
        "code {code}: {s}"
    );
}

fn version_and_error() {
    assert_eq!(cstr(ffi::quarot_version()), quarot::VERSION);
    // A failing call sets a message, a successful one clears it.
    // SAFETY: rows = 0 with NULL is allowed; the call fails on n = 0 first.
    let st = unsafe { ffi::quarot_hadamard_f32(std::ptr::null_mut(), 0, 0, 0, 1.0, 0) };
    expect_rejected("n = 0", st, &[]);
    // SAFETY: as above, valid.
    let st = unsafe { ffi::quarot_hadamard_f32(std::ptr::null_mut(), 0, 4, 4, 1.0, 0) };
    expect_ok("rows = 0", st);
}

fn isa(inp: &mut Input) {
    let code = if inp.chance(2) {
        inp.u8() as i32 % 4
    } else {
        inp.u32() as i32
    };
    let known = (0..=2).contains(&code);
    let avail = ffi::quarot_isa_available(code);
    assert!(avail == 0 || (known && avail == 1), "isa {code}: {avail}");
    let name = cstr(ffi::quarot_isa_name(code));
    assert_eq!(name == "unknown", !known, "isa {code}: {name}");
    if code == 0 {
        assert_eq!(avail, 1, "scalar is always available");
    }
    let mut out = -99;
    let p = if inp.chance(8) {
        std::ptr::null_mut()
    } else {
        &mut out as *mut i32
    };
    // SAFETY: NULL or valid.
    let st = unsafe { ffi::quarot_active_isa(p) };
    if p.is_null() {
        expect_rejected("active_isa(NULL)", st, &[]);
    } else {
        expect_ok("active_isa", st);
        assert_eq!(ffi::quarot_isa_available(out), 1, "active isa {out}");
    }
}
