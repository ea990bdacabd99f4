//! FFHT (FALCONN-LIB/FFHT, as redistributed in the PyPI sdist FFHT-unofficial 0.3): the C
//! functions `fht_float(buf, log_n)` (in place) and `fht_float_oop(in, out, log_n)` (a copy
//! into `out`, then in place there), compiled by `build.rs`.
//!
//! Convention: the UNNORMALIZED Sylvester transform in natural order, `y = H_n x` with
//! `H_{2n} = [[H_n, H_n], [H_n, -H_n]]`; `y / sqrt(n)` is libquarot's result at K = 1.
//! f32 only (FFHT also has f64); n a power of two. Rows are passed one by one, so any row
//! stride works (the Python module's batch call is what cannot take strided views).

/// How the library was obtained and built, or why it is not available.
pub const INFO: &str = env!("QUAROT_BENCH_FFHT_INFO");

#[cfg(ffht)]
mod sys {
    use std::ffi::c_int;
    extern "C" {
        pub fn fht_float(buf: *mut f32, log_n: c_int) -> c_int;
        pub fn fht_float_oop(input: *mut f32, out: *mut f32, log_n: c_int) -> c_int;
    }
}

/// Whether FFHT was built into this crate.
pub fn available() -> bool {
    cfg!(ffht)
}

fn log2(n: usize) -> Result<i32, String> {
    // fht_float_oop's fast_copy copies nothing below 32 bytes (8 floats) with AVX.
    if !n.is_power_of_two() || !(8..=1 << 30).contains(&n) {
        return Err(format!("FFHT needs a power of two in 8..=2^30, not {n}"));
    }
    Ok(n.trailing_zeros() as i32)
}

#[cfg(ffht)]
fn row_inplace(row: &mut [f32], log_n: i32) -> Result<(), String> {
    debug_assert_eq!(row.len(), 1 << log_n);
    // SAFETY: row holds 2^log_n floats; fht_float reads and writes only those.
    let rc = unsafe { sys::fht_float(row.as_mut_ptr(), log_n) };
    if rc == 0 {
        Ok(())
    } else {
        Err(format!("fht_float returned {rc}"))
    }
}

#[cfg(ffht)]
fn row_into(src: &[f32], dst: &mut [f32], log_n: i32) -> Result<(), String> {
    debug_assert!(src.len() == 1 << log_n && dst.len() == 1 << log_n);
    // SAFETY: both rows hold 2^log_n floats; fht_float_oop only reads `input` (its parameter
    // is not const-qualified, but only fast_copy reads it and nothing writes it) and writes
    // `out`; they do not overlap (& and &mut).
    let rc = unsafe { sys::fht_float_oop(src.as_ptr().cast_mut(), dst.as_mut_ptr(), log_n) };
    if rc == 0 {
        Ok(())
    } else {
        Err(format!("fht_float_oop returned {rc}"))
    }
}

#[cfg(not(ffht))]
fn row_inplace(_: &mut [f32], _: i32) -> Result<(), String> {
    Err(format!("FFHT: {INFO}"))
}

#[cfg(not(ffht))]
fn row_into(_: &[f32], _: &mut [f32], _: i32) -> Result<(), String> {
    Err(format!("FFHT: {INFO}"))
}

/// `rows` rows of `n` elements, `stride` apart, each replaced by `H_n row` (unnormalized).
pub fn rows_inplace(data: &mut [f32], rows: usize, n: usize, stride: usize) -> Result<(), String> {
    let log_n = log2(n)?;
    if stride < n || rows > 0 && (rows - 1) * stride + n > data.len() {
        return Err("FFHT rows: buffer too short or stride < n".into());
    }
    for r in 0..rows {
        row_inplace(&mut data[r * stride..][..n], log_n)?;
    }
    Ok(())
}

/// `dst` row r = `H_n` (`src` row r), unnormalized; rows `src_stride` / `dst_stride` apart.
pub fn rows_into(
    src: &[f32],
    src_stride: usize,
    dst: &mut [f32],
    dst_stride: usize,
    rows: usize,
    n: usize,
) -> Result<(), String> {
    let log_n = log2(n)?;
    if src_stride < n
        || dst_stride < n
        || rows > 0
            && ((rows - 1) * src_stride + n > src.len() || (rows - 1) * dst_stride + n > dst.len())
    {
        return Err("FFHT rows: buffer too short or stride < n".into());
    }
    for r in 0..rows {
        row_into(
            &src[r * src_stride..][..n],
            &mut dst[r * dst_stride..][..n],
            log_n,
        )?;
    }
    Ok(())
}
