//! quarot-ggml: libquarot run inside ggml's CPU thread pool, as an engine would run it.
//!
//! The build script compiles ggml 0.26.0 (core + CPU backend) and the C glue
//! `c/quarot_ggml.c`, whose custom ops call libquarot's C ABI (`include/quarot.h`) from
//! ggml's own worker threads. This crate only wraps that glue for the tests and the
//! benchmark: [`sys`] declares the C functions, and [`Context`], [`Tensor`], [`Graph`],
//! [`Runner`] and [`Op`] own the C objects so that a test cannot free an op or a context
//! while a graph still uses it.

#![deny(unsafe_op_in_unsafe_fn)]

use std::ffi::CStr;
use std::marker::PhantomData;
use std::ptr::NonNull;

/// The glue calls the `quarot_*` functions of this rlib through quarot.h: naming the crate
/// makes sure it is linked into every binary that links this one.
pub use quarot;

/// Raw declarations of the C functions used here (ggml, the glue, a few of libquarot).
#[allow(non_camel_case_types, missing_docs)]
pub mod sys {
    use std::ffi::{c_char, c_int, c_void};

    macro_rules! opaque {
        ($($name:ident),*) => {$(
            #[repr(C)]
            pub struct $name {
                _private: [u8; 0],
            }
        )*};
    }
    opaque!(
        ggml_context,
        ggml_tensor,
        ggml_cgraph,
        quarot_ggml_op,
        quarot_ggml_runner
    );

    /// `struct quarot_ggml_op_stats` of quarot_ggml.h.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct quarot_ggml_op_stats {
        pub calls: u64,
        pub ith_mask: u64,
        pub nth_min: i32,
        pub nth_max: i32,
    }

    pub type quarot_quant_fn = Option<
        unsafe extern "C" fn(
            user_data: *mut c_void,
            data: *mut c_void,
            dtype: i32,
            rows: usize,
            n: usize,
            row_stride: usize,
        ) -> c_int,
    >;

    /// `struct quarot_quant_config` of quarot.h.
    #[repr(C)]
    #[derive(Clone, Copy, Debug)]
    pub struct quarot_quant_config {
        pub kind: u32,
        pub bits: u32,
        pub symmetric: u32,
        pub group_size: usize,
        pub clip_ratio: f32,
        pub custom: quarot_quant_fn,
        pub custom_user_data: *mut c_void,
    }

    pub const GGML_STATUS_SUCCESS: c_int = 0;
    pub const QUAROT_FLAG_TRANSPOSE_K: u32 = 1;
    pub const QUAROT_FLAG_PAD_TRUNCATE: u32 = 2;
    pub const QUAROT_LAYOUT_MATMUL_HADU: i32 = 0;
    pub const QUAROT_LAYOUT_MATMUL_HADU_T: i32 = 1;
    pub const QUAROT_QUANT_NONE: u32 = 0;
    pub const QUAROT_QUANT_FAKE: u32 = 1;
    pub const QUAROT_QUANT_CUSTOM: u32 = 3;
    pub const QUAROT_ERR_CALLBACK: i32 = 13;

    extern "C" {
        // ggml.h
        pub fn ggml_free(ctx: *mut ggml_context);
        pub fn ggml_new_tensor_2d(
            ctx: *mut ggml_context,
            type_: c_int,
            ne0: i64,
            ne1: i64,
        ) -> *mut ggml_tensor;
        pub fn ggml_view_2d(
            ctx: *mut ggml_context,
            a: *mut ggml_tensor,
            ne0: i64,
            ne1: i64,
            nb1: usize,
            offset: usize,
        ) -> *mut ggml_tensor;
        pub fn ggml_get_data(tensor: *const ggml_tensor) -> *mut c_void;
        pub fn ggml_mul_mat(
            ctx: *mut ggml_context,
            a: *mut ggml_tensor,
            b: *mut ggml_tensor,
        ) -> *mut ggml_tensor;
        pub fn ggml_new_graph(ctx: *mut ggml_context) -> *mut ggml_cgraph;
        pub fn ggml_build_forward_expand(graph: *mut ggml_cgraph, tensor: *mut ggml_tensor);
        pub fn ggml_version() -> *const c_char;

        // quarot_ggml.h
        pub fn quarot_ggml_op_hadamard_new(scale: f32, flags: u32) -> *mut quarot_ggml_op;
        pub fn quarot_ggml_op_r4_new(
            n: usize,
            block_size: usize,
            type_: c_int,
            flags: u32,
            quant: *const quarot_quant_config,
        ) -> *mut quarot_ggml_op;
        pub fn quarot_ggml_op_free(op: *mut quarot_ggml_op);
        pub fn quarot_ggml_hadamard(
            ctx: *mut ggml_context,
            a: *mut ggml_tensor,
            dst_type: c_int,
            op: *mut quarot_ggml_op,
        ) -> *mut ggml_tensor;
        pub fn quarot_ggml_hadamard_inplace(
            ctx: *mut ggml_context,
            a: *mut ggml_tensor,
            op: *mut quarot_ggml_op,
        ) -> *mut ggml_tensor;
        pub fn quarot_ggml_r4(
            ctx: *mut ggml_context,
            a: *mut ggml_tensor,
            dst_type: c_int,
            op: *mut quarot_ggml_op,
        ) -> *mut ggml_tensor;
        pub fn quarot_ggml_fwht(
            ctx: *mut ggml_context,
            x: *mut ggml_tensor,
            rot: *mut ggml_tensor,
        ) -> *mut ggml_tensor;
        pub fn quarot_ggml_op_status(op: *const quarot_ggml_op) -> i32;
        pub fn quarot_ggml_op_error(op: *const quarot_ggml_op) -> *const c_char;
        pub fn quarot_ggml_op_stats(op: *const quarot_ggml_op, out: *mut quarot_ggml_op_stats);
        pub fn quarot_ggml_op_thread_id(op: *const quarot_ggml_op, ith: c_int) -> i64;
        pub fn quarot_ggml_op_reset(op: *mut quarot_ggml_op);
        pub fn quarot_ggml_last_error() -> *const c_char;
        pub fn quarot_ggml_runner_new(n_threads: c_int) -> *mut quarot_ggml_runner;
        pub fn quarot_ggml_runner_free(r: *mut quarot_ggml_runner);
        pub fn quarot_ggml_runner_compute(r: *mut quarot_ggml_runner, g: *mut ggml_cgraph)
            -> c_int;
        pub fn quarot_ggml_context_new(mem_size: usize) -> *mut ggml_context;
        pub fn quarot_ggml_tensor_shape(
            t: *const ggml_tensor,
            ne: *mut i64,
            nb: *mut usize,
        ) -> c_int;

        // quarot.h (defined in the quarot rlib)
        pub fn quarot_hadamard_scale(n: usize) -> f32;
        pub fn quarot_rotate_in_channels_hadamard(
            weight: *mut c_void,
            dtype: i32,
            out_features: usize,
            in_features: usize,
            row_stride: usize,
            rotation_n: usize,
            layout: i32,
            signs: *const i8,
            scale: f64,
            flags: u32,
        ) -> i32;
        pub fn quarot_status_string(code: i32) -> *const c_char;
        pub fn quarot_last_error() -> *const c_char;
    }
}

/// Copy a C string owned by the callee (static or valid until the next call).
fn c_str(p: *const std::ffi::c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: the C functions used here return NUL-terminated strings that stay valid until
    // the next call on this thread; we copy before making another call.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

fn glue_error(what: &str) -> String {
    // SAFETY: no arguments; returns a thread-local string.
    format!(
        "{what}: {}",
        c_str(unsafe { sys::quarot_ggml_last_error() })
    )
}

/// The version string of the compiled ggml (its CMakeLists.txt version).
pub fn ggml_version() -> String {
    // SAFETY: returns a static string.
    c_str(unsafe { sys::ggml_version() })
}

/// `"<status text> (<last error>)"` for a libquarot status returned on this thread.
pub fn quarot_error(status: i32) -> String {
    // SAFETY: both return NUL-terminated strings valid until the next libquarot call.
    let text = c_str(unsafe { sys::quarot_status_string(status) });
    format!("{text} ({})", c_str(unsafe { sys::quarot_last_error() }))
}

/// The element types both ggml and libquarot handle (ggml's type numbers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum DType {
    /// `GGML_TYPE_F32` / `QUAROT_DTYPE_F32`
    F32 = 0,
    /// `GGML_TYPE_F16` / `QUAROT_DTYPE_F16`
    F16 = 1,
    /// `GGML_TYPE_BF16` / `QUAROT_DTYPE_BF16`
    BF16 = 30,
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F16 | DType::BF16 => 2,
        }
    }

    fn from_raw(v: i32) -> Option<DType> {
        match v {
            0 => Some(DType::F32),
            1 => Some(DType::F16),
            30 => Some(DType::BF16),
            _ => None,
        }
    }
}

/// A ggml context that allocates tensor data (`ggml_init` with `no_alloc = false`).
pub struct Context {
    ptr: NonNull<sys::ggml_context>,
}

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: created by ggml_init; every Tensor/Graph borrows self, so none is left.
        unsafe { sys::ggml_free(self.ptr.as_ptr()) }
    }
}

/// A tensor of a [`Context`] (valid while the context is borrowed).
#[derive(Clone, Copy)]
pub struct Tensor<'a> {
    ptr: NonNull<sys::ggml_tensor>,
    _ctx: PhantomData<&'a Context>,
}

/// A graph of a [`Context`], ready for [`Runner::compute`].
pub struct Graph<'a> {
    ptr: NonNull<sys::ggml_cgraph>,
    _ctx: PhantomData<&'a Context>,
}

fn wrap<'a>(p: *mut sys::ggml_tensor, what: &str) -> Result<Tensor<'a>, String> {
    NonNull::new(p)
        .map(|ptr| Tensor {
            ptr,
            _ctx: PhantomData,
        })
        .ok_or_else(|| glue_error(what))
}

impl Context {
    /// A context with `mem_bytes` for tensor data and metadata.
    pub fn new(mem_bytes: usize) -> Context {
        // SAFETY: plain constructor; NULL on failure.
        let ptr = unsafe { sys::quarot_ggml_context_new(mem_bytes) };
        Context {
            ptr: NonNull::new(ptr).expect("ggml_init failed"),
        }
    }

    fn raw(&self) -> *mut sys::ggml_context {
        self.ptr.as_ptr()
    }

    /// A new `ne1` x `ne0` tensor (ne1 rows of ne0 elements).
    pub fn tensor_2d(&self, dtype: DType, ne0: usize, ne1: usize) -> Tensor<'_> {
        // SAFETY: valid context; ggml aborts if it is out of memory.
        let p =
            unsafe { sys::ggml_new_tensor_2d(self.raw(), dtype as i32, ne0 as i64, ne1 as i64) };
        wrap(p, "ggml_new_tensor_2d").expect("ggml_new_tensor_2d")
    }

    /// A view of `ne1` rows of `ne0` elements of `src`, rows `row_bytes` apart, starting
    /// `offset_bytes` into it (ggml checks that it fits).
    pub fn view_2d<'a>(
        &'a self,
        src: Tensor<'a>,
        ne0: usize,
        ne1: usize,
        row_bytes: usize,
        offset_bytes: usize,
    ) -> Tensor<'a> {
        // SAFETY: src belongs to this context; ggml asserts the view is inside src.
        let p = unsafe {
            sys::ggml_view_2d(
                self.raw(),
                src.ptr.as_ptr(),
                ne0 as i64,
                ne1 as i64,
                row_bytes,
                offset_bytes,
            )
        };
        wrap(p, "ggml_view_2d").expect("ggml_view_2d")
    }

    /// libquarot's transform of every row of `a` into a new tensor of type `dst`.
    pub fn hadamard<'a>(
        &'a self,
        a: Tensor<'a>,
        dst: DType,
        op: &'a Op,
    ) -> Result<Tensor<'a>, String> {
        // SAFETY: a belongs to this context; op outlives every graph built from the result
        // (the lifetime 'a ties them together).
        let p = unsafe {
            sys::quarot_ggml_hadamard(self.raw(), a.ptr.as_ptr(), dst as i32, op.ptr.as_ptr())
        };
        wrap(p, "quarot_ggml_hadamard")
    }

    /// libquarot's transform of every row of `a`, in place (the node is a view of `a`).
    pub fn hadamard_inplace<'a>(&'a self, a: Tensor<'a>, op: &'a Op) -> Result<Tensor<'a>, String> {
        // SAFETY: as for hadamard.
        let p = unsafe {
            sys::quarot_ggml_hadamard_inplace(self.raw(), a.ptr.as_ptr(), op.ptr.as_ptr())
        };
        wrap(p, "quarot_ggml_hadamard_inplace")
    }

    /// The rows of `a` rotated by an R4 op, into a new tensor of type `dst`.
    pub fn r4<'a>(&'a self, a: Tensor<'a>, dst: DType, op: &'a Op) -> Result<Tensor<'a>, String> {
        // SAFETY: as for hadamard.
        let p =
            unsafe { sys::quarot_ggml_r4(self.raw(), a.ptr.as_ptr(), dst as i32, op.ptr.as_ptr()) };
        wrap(p, "quarot_ggml_r4")
    }

    /// ggml's own FWHT of every row of `x` (F32 result): `mul_mat(rot, x)` with
    /// `GGML_HINT_SRC0_IS_HADAMARD`; `rot` None for a placeholder without data.
    pub fn fwht<'a>(
        &'a self,
        x: Tensor<'a>,
        rot: Option<Tensor<'a>>,
    ) -> Result<Tensor<'a>, String> {
        let rot = rot.map_or(std::ptr::null_mut(), |r| r.ptr.as_ptr());
        // SAFETY: x and rot belong to this context.
        let p = unsafe { sys::quarot_ggml_fwht(self.raw(), x.ptr.as_ptr(), rot) };
        wrap(p, "quarot_ggml_fwht")
    }

    /// `ggml_mul_mat(a, b)`: row i of the result holds the dot products of row i of `b`
    /// with every row of `a` (y = b · aᵀ; a is the weight, out_features rows of in_features).
    pub fn mul_mat<'a>(&'a self, a: Tensor<'a>, b: Tensor<'a>) -> Tensor<'a> {
        // SAFETY: a and b belong to this context; ggml asserts the shapes.
        let p = unsafe { sys::ggml_mul_mat(self.raw(), a.ptr.as_ptr(), b.ptr.as_ptr()) };
        wrap(p, "ggml_mul_mat").expect("ggml_mul_mat")
    }

    /// A graph computing `outputs` (and everything they depend on).
    pub fn graph<'a>(&'a self, outputs: &[Tensor<'a>]) -> Graph<'a> {
        // SAFETY: valid context; the tensors belong to it.
        let g = unsafe { sys::ggml_new_graph(self.raw()) };
        let ptr = NonNull::new(g).expect("ggml_new_graph");
        for t in outputs {
            // SAFETY: as above.
            unsafe { sys::ggml_build_forward_expand(ptr.as_ptr(), t.ptr.as_ptr()) };
        }
        Graph {
            ptr,
            _ctx: PhantomData,
        }
    }
}

impl Tensor<'_> {
    /// (type, ne, nb) of the tensor.
    pub fn shape(&self) -> (DType, [i64; 4], [usize; 4]) {
        let mut ne = [0i64; 4];
        let mut nb = [0usize; 4];
        // SAFETY: valid tensor; ne and nb have 4 elements each.
        let ty = unsafe {
            sys::quarot_ggml_tensor_shape(self.ptr.as_ptr(), ne.as_mut_ptr(), nb.as_mut_ptr())
        };
        (
            DType::from_raw(ty).expect("tensor type is F32, F16 or BF16"),
            ne,
            nb,
        )
    }

    /// Elements per row (ne[0]).
    pub fn width(&self) -> usize {
        self.shape().1[0] as usize
    }

    /// Rows (ne[1] * ne[2] * ne[3]).
    pub fn rows(&self) -> usize {
        let ne = self.shape().1;
        (ne[1] * ne[2] * ne[3]) as usize
    }

    /// Byte offset of row r (rows in ggml order: i1 fastest, then i2, then i3).
    fn row_offset(&self, r: usize) -> usize {
        let (_, ne, nb) = self.shape();
        let (ne1, ne2) = (ne[1] as usize, ne[2] as usize);
        (r % ne1) * nb[1] + (r / ne1 % ne2) * nb[2] + (r / (ne1 * ne2)) * nb[3]
    }

    fn data(&self) -> *mut u8 {
        // SAFETY: valid tensor.
        let p = unsafe { sys::ggml_get_data(self.ptr.as_ptr()) }.cast::<u8>();
        assert!(!p.is_null(), "tensor has no data (placeholder)");
        p
    }

    fn check<T>(&self, dtype: DType, len: usize) -> (usize, usize) {
        let (ty, _, nb) = self.shape();
        assert_eq!(ty, dtype, "tensor type");
        assert_eq!(std::mem::size_of::<T>(), dtype.size(), "element size");
        assert_eq!(nb[0], dtype.size(), "rows must be contiguous");
        let (n, rows) = (self.width(), self.rows());
        assert_eq!(len, n * rows, "buffer length must be rows * ne0");
        (n, rows)
    }

    /// Write `values` (rows * ne0, row-major) into the tensor's rows, honouring nb.
    /// `T` is f32 for F32, u16 bit patterns for F16/BF16.
    pub fn write<T: Copy>(&self, dtype: DType, values: &[T]) {
        let (n, rows) = self.check::<T>(dtype, values.len());
        let base = self.data();
        for r in 0..rows {
            // SAFETY: the context allocated this tensor's rows (or the source's, for a
            // view, which ggml checked contains it): row r holds n elements of T at
            // base + row_offset(r). Nothing else accesses the data now: computing needs the
            // Graph on this same thread (Context is neither Send nor Sync).
            unsafe {
                let dst = base.add(self.row_offset(r)).cast::<T>();
                std::ptr::copy_nonoverlapping(values.as_ptr().add(r * n), dst, n);
            }
        }
    }

    /// The tensor's rows (rows * ne0 elements, row-major).
    pub fn read<T: Copy + Default>(&self, dtype: DType) -> Vec<T> {
        let (n, rows) = (self.width(), self.rows());
        let mut out = vec![T::default(); n * rows];
        self.check::<T>(dtype, out.len());
        let base = self.data();
        for r in 0..rows {
            // SAFETY: as in write, reading instead.
            unsafe {
                let src = base.add(self.row_offset(r)).cast::<T>();
                std::ptr::copy_nonoverlapping(src, out.as_mut_ptr().add(r * n), n);
            }
        }
        out
    }

    /// The F32 tensor's rows.
    pub fn read_f32(&self) -> Vec<f32> {
        self.read::<f32>(DType::F32)
    }
}

/// A persistent ggml thread pool of n workers plus a reusable work buffer.
pub struct Runner {
    ptr: NonNull<sys::quarot_ggml_runner>,
    n_threads: usize,
}

impl Runner {
    /// A pool of `n_threads` workers (the calling thread is worker 0 while computing).
    pub fn new(n_threads: usize) -> Runner {
        // SAFETY: plain constructor; NULL on failure.
        let p = unsafe { sys::quarot_ggml_runner_new(n_threads as i32) };
        Runner {
            ptr: NonNull::new(p).unwrap_or_else(|| panic!("{}", glue_error("runner"))),
            n_threads,
        }
    }

    /// Number of workers.
    pub fn n_threads(&self) -> usize {
        self.n_threads
    }

    /// Plan and compute the graph on the pool; `Err(ggml_status)` on failure.
    pub fn compute(&mut self, graph: &Graph<'_>) -> Result<(), i32> {
        // SAFETY: both valid; &mut self: one compute at a time on this runner.
        let status =
            unsafe { sys::quarot_ggml_runner_compute(self.ptr.as_ptr(), graph.ptr.as_ptr()) };
        if status == sys::GGML_STATUS_SUCCESS {
            Ok(())
        } else {
            Err(status)
        }
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        // SAFETY: created by quarot_ggml_runner_new; not computing (&mut self).
        unsafe { sys::quarot_ggml_runner_free(self.ptr.as_ptr()) }
    }
}

/// What a custom node computes (a libquarot Hadamard or R4 op) and what its workers saw.
pub struct Op {
    ptr: NonNull<sys::quarot_ggml_op>,
}

impl Op {
    /// y = scale * (H_K ⊗ H_{2^m}) x per row; `scale` 0 for the normalized transform.
    pub fn hadamard(scale: f32, flags: u32) -> Result<Op, String> {
        // SAFETY: plain constructor; NULL on failure.
        let p = unsafe { sys::quarot_ggml_op_hadamard_new(scale, flags) };
        NonNull::new(p)
            .map(|ptr| Op { ptr })
            .ok_or_else(|| glue_error("quarot_ggml_op_hadamard_new"))
    }

    /// An R4 wrapper for rows of `n` elements of `dtype` (`quant` None: no quantization).
    pub fn r4(
        n: usize,
        block_size: usize,
        dtype: DType,
        flags: u32,
        quant: Option<&sys::quarot_quant_config>,
    ) -> Result<Op, String> {
        let quant = quant.map_or(std::ptr::null(), |q| q as *const _);
        // SAFETY: quant is NULL or a valid config (copied by the callee).
        let p = unsafe { sys::quarot_ggml_op_r4_new(n, block_size, dtype as i32, flags, quant) };
        NonNull::new(p)
            .map(|ptr| Op { ptr })
            .ok_or_else(|| glue_error("quarot_ggml_op_r4_new"))
    }

    /// The first failure of a compute with this op, as (status, message).
    pub fn status(&self) -> Result<(), (i32, String)> {
        // SAFETY: valid op; the message is copied at once.
        let status = unsafe { sys::quarot_ggml_op_status(self.ptr.as_ptr()) };
        if status == 0 {
            Ok(())
        } else {
            Err((
                status,
                c_str(unsafe { sys::quarot_ggml_op_error(self.ptr.as_ptr()) }),
            ))
        }
    }

    /// Calls, workers (bit ith) and nth seen since creation or [`Op::reset`].
    pub fn stats(&self) -> sys::quarot_ggml_op_stats {
        let mut s = sys::quarot_ggml_op_stats::default();
        // SAFETY: valid op and output.
        unsafe { sys::quarot_ggml_op_stats(self.ptr.as_ptr(), &mut s) };
        s
    }

    /// OS thread id (gettid) of the last worker with index `ith` (0: none).
    pub fn thread_id(&self, ith: usize) -> i64 {
        // SAFETY: valid op; out-of-range ith returns 0.
        unsafe { sys::quarot_ggml_op_thread_id(self.ptr.as_ptr(), ith as i32) }
    }

    /// Clear the statistics and the recorded failure.
    pub fn reset(&self) {
        // SAFETY: valid op. Computing is synchronous on this thread (Op is neither Send nor
        // Sync), so no worker is using the op now.
        unsafe { sys::quarot_ggml_op_reset(self.ptr.as_ptr()) }
    }
}

impl Drop for Op {
    fn drop(&mut self) {
        // SAFETY: created by a quarot_ggml_op_*_new; graphs using it borrow self, so none
        // is left.
        unsafe { sys::quarot_ggml_op_free(self.ptr.as_ptr()) }
    }
}
