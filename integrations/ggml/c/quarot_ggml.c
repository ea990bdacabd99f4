/*
 * quarot_ggml.c: libquarot transforms as ggml custom ops (see quarot_ggml.h).
 *
 * Every worker of ggml's pool calls the node's function with its index ith of nth; the
 * rows of the tensor are split with quarot_rows_for_thread, and each worker hands its rows
 * to libquarot in runs that stay inside one (i2, i3) slice, so a run is a plain strided
 * batch: rows nb[1] bytes apart.
 */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* syscall(SYS_gettid) */
#endif

#include "quarot_ggml.h"

#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

enum op_kind { OP_HADAMARD = 1, OP_R4 = 2 };

#define MAX_TRACKED_THREADS 64

struct quarot_ggml_op {
    enum op_kind kind;
    float scale;    /* Hadamard: 0 = quarot_hadamard_scale(n) */
    uint32_t flags; /* Hadamard */
    quarot_r4_wrapper *r4;
    size_t r4_n;
    enum ggml_type r4_type;

    /* First failure while computing: status (CAS from QUAROT_OK) and its message. */
    _Atomic int32_t status;
    char error[256];

    /* What the workers saw. */
    _Atomic uint64_t calls;
    _Atomic uint64_t ith_mask;
    _Atomic int32_t nth_min;
    _Atomic int32_t nth_max;
    _Atomic int64_t tid[MAX_TRACKED_THREADS];
};

/* ---------------------------------------------------------------- errors */

static _Thread_local char g_last_error[512];

static void set_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_last_error, sizeof g_last_error, fmt, ap);
    va_end(ap);
}

const char *quarot_ggml_last_error(void) { return g_last_error; }

/* Keep the first failure of a compute (later ones are usually the same cause). */
static void op_fail(quarot_ggml_op *op, quarot_status st, const char *what) {
    int32_t expected = QUAROT_OK;
    if (atomic_compare_exchange_strong(&op->status, &expected, (int32_t)st)) {
        snprintf(op->error, sizeof op->error, "%s: %s (%s)", what, quarot_status_string(st),
                 quarot_last_error());
    }
}

/* ---------------------------------------------------------------- ops */

static void op_init_stats(quarot_ggml_op *op) {
    atomic_store(&op->status, QUAROT_OK);
    op->error[0] = '\0';
    atomic_store(&op->calls, 0);
    atomic_store(&op->ith_mask, 0);
    atomic_store(&op->nth_min, INT32_MAX);
    atomic_store(&op->nth_max, 0);
    for (int i = 0; i < MAX_TRACKED_THREADS; i++) {
        atomic_store(&op->tid[i], 0);
    }
}

static int64_t current_thread_id(void) {
#if defined(__linux__)
    return (int64_t)syscall(SYS_gettid);
#else
    return -1;
#endif
}

static void op_record_worker(quarot_ggml_op *op, int ith, int nth) {
    atomic_fetch_add(&op->calls, 1);
    if (ith >= 0 && ith < MAX_TRACKED_THREADS) {
        atomic_fetch_or(&op->ith_mask, (uint64_t)1 << ith);
        atomic_store(&op->tid[ith], current_thread_id());
    }
    int32_t cur = atomic_load(&op->nth_min);
    while (nth < cur && !atomic_compare_exchange_weak(&op->nth_min, &cur, nth)) {
    }
    cur = atomic_load(&op->nth_max);
    while (nth > cur && !atomic_compare_exchange_weak(&op->nth_max, &cur, nth)) {
    }
}

static bool is_float_type(enum ggml_type t) {
    return t == GGML_TYPE_F32 || t == GGML_TYPE_F16 || t == GGML_TYPE_BF16;
}

quarot_ggml_op *quarot_ggml_op_hadamard_new(float scale, uint32_t flags) {
    if (flags & QUAROT_FLAG_PARALLEL) {
        set_error("QUAROT_FLAG_PARALLEL: ggml's workers are the threads of this op");
        return NULL;
    }
    if (!isfinite(scale)) {
        set_error("scale must be finite (0 for the normalized transform)");
        return NULL;
    }
    quarot_ggml_op *op = (quarot_ggml_op *)calloc(1, sizeof *op);
    if (!op) {
        set_error("out of memory");
        return NULL;
    }
    op->kind = OP_HADAMARD;
    op->scale = scale;
    op->flags = flags;
    op_init_stats(op);
    return op;
}

/* The op wrapped by the R4 wrapper: copy the rotated rows into the node's output rows. */
struct r4_out {
    char *dst;
    size_t dst_row_bytes; /* nb[1] of the output */
    enum ggml_type dst_type;
};

static int r4_write_rows(void *user_data, const quarot_activations *x, void *out) {
    (void)user_data;
    const struct r4_out *o = (const struct r4_out *)out;
    const enum ggml_type src_type = (enum ggml_type)x->dtype;
    const size_t src_row_bytes = x->row_stride * ggml_type_size(src_type);
    for (size_t r = 0; r < x->rows; r++) {
        const char *src = (const char *)x->data + r * src_row_bytes;
        char *dst = o->dst + r * o->dst_row_bytes;
        if (o->dst_type == src_type) {
            memcpy(dst, src, x->n * ggml_type_size(src_type));
        } else if (o->dst_type == GGML_TYPE_F32 && src_type == GGML_TYPE_F16) {
            ggml_fp16_to_fp32_row((const ggml_fp16_t *)src, (float *)dst, (int64_t)x->n);
        } else if (o->dst_type == GGML_TYPE_F32 && src_type == GGML_TYPE_BF16) {
            ggml_bf16_to_fp32_row((const ggml_bf16_t *)src, (float *)dst, (int64_t)x->n);
        } else {
            return 1; /* refused by quarot_ggml_r4 already */
        }
    }
    return 0;
}

quarot_ggml_op *quarot_ggml_op_r4_new(size_t n, size_t block_size, enum ggml_type type,
                                      uint32_t flags, const quarot_quant_config *quant) {
    if (!is_float_type(type)) {
        set_error("R4 op: type %s is not F32, F16 or BF16", ggml_type_name(type));
        return NULL;
    }
    if (quant && quant->kind == QUAROT_QUANT_REAL) {
        set_error("R4 op: QUAROT_QUANT_REAL gives int8 codes; ggml_mul_mat takes float rows "
                  "(use QUAROT_QUANT_FAKE)");
        return NULL;
    }
    quarot_ggml_op *op = (quarot_ggml_op *)calloc(1, sizeof *op);
    if (!op) {
        set_error("out of memory");
        return NULL;
    }
    quarot_status st = quarot_r4_wrapper_new(n, block_size, (quarot_dtype)type, flags, quant,
                                             r4_write_rows, NULL, &op->r4);
    if (st != QUAROT_OK) {
        set_error("quarot_r4_wrapper_new: %s (%s)", quarot_status_string(st),
                  quarot_last_error());
        free(op);
        return NULL;
    }
    op->kind = OP_R4;
    op->r4_n = n;
    op->r4_type = type;
    op_init_stats(op);
    return op;
}

void quarot_ggml_op_free(quarot_ggml_op *op) {
    if (!op) {
        return;
    }
    quarot_r4_wrapper_free(op->r4);
    free(op);
}

quarot_status quarot_ggml_op_status(const quarot_ggml_op *op) { return atomic_load(&op->status); }

const char *quarot_ggml_op_error(const quarot_ggml_op *op) { return op->error; }

void quarot_ggml_op_stats(const quarot_ggml_op *op, struct quarot_ggml_op_stats *out) {
    out->calls = atomic_load(&op->calls);
    out->ith_mask = atomic_load(&op->ith_mask);
    out->nth_min = atomic_load(&op->nth_min);
    out->nth_max = atomic_load(&op->nth_max);
}

int64_t quarot_ggml_op_thread_id(const quarot_ggml_op *op, int ith) {
    if (ith < 0 || ith >= MAX_TRACKED_THREADS) {
        return 0;
    }
    return atomic_load(&op->tid[ith]);
}

void quarot_ggml_op_reset(quarot_ggml_op *op) { op_init_stats(op); }

/* ---------------------------------------------------------------- compute */

static void fill_nan(char *row, size_t row_bytes, size_t rows, size_t n, enum ggml_type t) {
    for (size_t r = 0; r < rows; r++) {
        char *p = row + r * row_bytes;
        for (size_t i = 0; i < n; i++) {
            if (t == GGML_TYPE_F32) {
                const float v = NAN;
                memcpy(p + 4 * i, &v, 4);
            } else {
                const uint16_t v = t == GGML_TYPE_F16 ? 0x7E00 : 0x7FC0;
                memcpy(p + 2 * i, &v, 2);
            }
        }
    }
}

/* Rows of `a` for worker ith of nth: [first, first + count) of ggml_nrows(a). */
static void compute_rows(struct ggml_tensor *dst, const struct ggml_tensor *a, int ith, int nth,
                         quarot_ggml_op *op) {
    op_record_worker(op, ith, nth);

    const size_t n = (size_t)a->ne[0];
    const size_t ne1 = (size_t)a->ne[1], ne2 = (size_t)a->ne[2];
    const size_t a_es = ggml_type_size(a->type), d_es = ggml_type_size(dst->type);
    size_t first = 0, count = 0;
    quarot_status st = quarot_rows_for_thread((size_t)ggml_nrows(a), (size_t)ith, (size_t)nth,
                                              &first, &count);
    if (st != QUAROT_OK) {
        op_fail(op, st, "quarot_rows_for_thread");
        return;
    }
    const float scale = op->scale != 0.0f ? op->scale : quarot_hadamard_scale(n);

    for (size_t r = first, end = first + count; r < end;) {
        const size_t i1 = r % ne1, i2 = (r / ne1) % ne2, i3 = r / (ne1 * ne2);
        const size_t run = end - r < ne1 - i1 ? end - r : ne1 - i1;
        /* `a` is const in ggml's callback signature; libquarot only reads it here. */
        const char *src = (const char *)a->data + i1 * a->nb[1] + i2 * a->nb[2] + i3 * a->nb[3];
        char *out = (char *)dst->data + i1 * dst->nb[1] + i2 * dst->nb[2] + i3 * dst->nb[3];

        if (op->kind == OP_HADAMARD) {
            st = quarot_hadamard(src, (quarot_dtype)a->type, a->nb[1] / a_es, out,
                                 (quarot_dtype)dst->type, dst->nb[1] / d_es, run, n, scale,
                                 op->flags);
        } else {
            struct r4_out o = {out, dst->nb[1], dst->type};
            /* Without QUAROT_FORWARD_IN_PLACE the wrapper only reads x (hence the cast). */
            st = quarot_r4_wrapper_forward(op->r4, (void *)(uintptr_t)src, run, a->nb[1] / a_es,
                                           &o, 0);
        }
        if (st != QUAROT_OK) {
            op_fail(op, st, op->kind == OP_HADAMARD ? "quarot_hadamard" : "quarot_r4_wrapper_forward");
            fill_nan(out, dst->nb[1], run, n, dst->type);
        }
        r += run;
    }
}

/* ggml_map_custom1 signature: dst has a's type. */
static void custom1_fn(struct ggml_tensor *dst, const struct ggml_tensor *a, int ith, int nth,
                       void *userdata) {
    compute_rows(dst, a, ith, nth, (quarot_ggml_op *)userdata);
}

/* ggml_custom_4d signature: the source is dst->src[0]. */
static void custom_fn(struct ggml_tensor *dst, int ith, int nth, void *userdata) {
    compute_rows(dst, dst->src[0], ith, nth, (quarot_ggml_op *)userdata);
}

/* ---------------------------------------------------------------- builders */

static bool check_rows(const struct ggml_tensor *a, const char *what) {
    if (!is_float_type(a->type)) {
        set_error("%s: type %s is not F32, F16 or BF16", what, ggml_type_name(a->type));
        return false;
    }
    const size_t es = ggml_type_size(a->type);
    if (a->nb[0] != es || a->nb[1] % es != 0 || a->nb[1] < (size_t)a->ne[0] * es) {
        set_error("%s: rows must be contiguous (nb[0] = %zu, nb[1] = %zu, %s)", what, a->nb[0],
                  a->nb[1], ggml_type_name(a->type));
        return false;
    }
    return true;
}

/* Let libquarot check n, strides, types, scale and flags: rows = 0 checks them all. */
static bool check_hadamard(const struct ggml_tensor *a, enum ggml_type dst_type,
                           const quarot_ggml_op *op) {
    const size_t n = (size_t)a->ne[0];
    const float scale = op->scale != 0.0f ? op->scale : quarot_hadamard_scale(n);
    const size_t stride = a->nb[1] / ggml_type_size(a->type);
    quarot_status st = quarot_hadamard(NULL, (quarot_dtype)a->type, stride, NULL,
                                       (quarot_dtype)dst_type, n, 0, n, scale, op->flags);
    if (st != QUAROT_OK) {
        set_error("quarot_ggml_hadamard: %s (%s)", quarot_status_string(st), quarot_last_error());
        return false;
    }
    return true;
}

struct ggml_tensor *quarot_ggml_hadamard(struct ggml_context *ctx, struct ggml_tensor *a,
                                         enum ggml_type dst_type, quarot_ggml_op *op) {
    if (!ctx || !a || !op || op->kind != OP_HADAMARD) {
        set_error("quarot_ggml_hadamard: NULL argument or not a Hadamard op");
        return NULL;
    }
    if (!check_rows(a, "quarot_ggml_hadamard") || !check_hadamard(a, dst_type, op)) {
        return NULL;
    }
    if (dst_type == a->type) {
        return ggml_map_custom1(ctx, a, custom1_fn, GGML_N_TASKS_MAX, op);
    }
    struct ggml_tensor *args[1] = {a};
    return ggml_custom_4d(ctx, dst_type, a->ne[0], a->ne[1], a->ne[2], a->ne[3], args, 1, custom_fn,
                          GGML_N_TASKS_MAX, op);
}

struct ggml_tensor *quarot_ggml_hadamard_inplace(struct ggml_context *ctx, struct ggml_tensor *a,
                                                 quarot_ggml_op *op) {
    if (!ctx || !a || !op || op->kind != OP_HADAMARD) {
        set_error("quarot_ggml_hadamard_inplace: NULL argument or not a Hadamard op");
        return NULL;
    }
    if (!check_rows(a, "quarot_ggml_hadamard_inplace") || !check_hadamard(a, a->type, op)) {
        return NULL;
    }
    return ggml_map_custom1_inplace(ctx, a, custom1_fn, GGML_N_TASKS_MAX, op);
}

struct ggml_tensor *quarot_ggml_r4(struct ggml_context *ctx, struct ggml_tensor *a,
                                   enum ggml_type dst_type, quarot_ggml_op *op) {
    if (!ctx || !a || !op || op->kind != OP_R4) {
        set_error("quarot_ggml_r4: NULL argument or not an R4 op");
        return NULL;
    }
    if (!check_rows(a, "quarot_ggml_r4")) {
        return NULL;
    }
    if ((size_t)a->ne[0] != op->r4_n || a->type != op->r4_type) {
        set_error("quarot_ggml_r4: rows of %lld %s, but the op was made for %zu %s",
                  (long long)a->ne[0], ggml_type_name(a->type), op->r4_n,
                  ggml_type_name(op->r4_type));
        return NULL;
    }
    if (dst_type != a->type && dst_type != GGML_TYPE_F32) {
        set_error("quarot_ggml_r4: output type must be %s or f32", ggml_type_name(a->type));
        return NULL;
    }
    if (dst_type == a->type) {
        return ggml_map_custom1(ctx, a, custom1_fn, GGML_N_TASKS_MAX, op);
    }
    struct ggml_tensor *args[1] = {a};
    return ggml_custom_4d(ctx, dst_type, a->ne[0], a->ne[1], a->ne[2], a->ne[3], args, 1, custom_fn,
                          GGML_N_TASKS_MAX, op);
}

struct ggml_tensor *quarot_ggml_fwht(struct ggml_context *ctx, struct ggml_tensor *x,
                                     struct ggml_tensor *rot) {
    if (!ctx || !x) {
        set_error("quarot_ggml_fwht: NULL argument");
        return NULL;
    }
    const int64_t n = x->ne[0];
    if (x->type != GGML_TYPE_F32 && x->type != GGML_TYPE_F16) {
        set_error("quarot_ggml_fwht: ggml's FWHT takes F32 or F16 rows, not %s",
                  ggml_type_name(x->type));
        return NULL;
    }
    if (n <= 0 || (n & (n - 1)) != 0) {
        set_error("quarot_ggml_fwht: ggml's FWHT needs a power-of-two width, not %lld",
                  (long long)n);
        return NULL;
    }
    if (rot) {
        if (rot->type != GGML_TYPE_F32 || rot->ne[0] != n || rot->ne[1] != n || rot->ne[2] != 1 ||
            rot->ne[3] != 1) {
            set_error("quarot_ggml_fwht: rot must be an F32 %lld x %lld matrix", (long long)n,
                      (long long)n);
            return NULL;
        }
    } else {
        const bool no_alloc = ggml_get_no_alloc(ctx);
        ggml_set_no_alloc(ctx, true);
        rot = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, n, n);
        ggml_set_no_alloc(ctx, no_alloc);
        ggml_set_name(rot, "hadamard placeholder (never read)");
    }
    struct ggml_tensor *y = ggml_mul_mat(ctx, rot, x);
    ggml_mul_mat_set_hint(y, GGML_HINT_SRC0_IS_HADAMARD);
    return y;
}

/* ---------------------------------------------------------------- runner */

struct quarot_ggml_runner {
    struct ggml_threadpool *pool;
    int n_threads;
    uint8_t *work;
    size_t work_size;
};

quarot_ggml_runner *quarot_ggml_runner_new(int n_threads) {
    if (n_threads < 1) {
        set_error("quarot_ggml_runner_new: n_threads must be >= 1");
        return NULL;
    }
    ggml_cpu_init(); /* fp16 tables and CPU features; idempotent */
    quarot_ggml_runner *r = (quarot_ggml_runner *)calloc(1, sizeof *r);
    if (!r) {
        set_error("out of memory");
        return NULL;
    }
    struct ggml_threadpool_params params = ggml_threadpool_params_default(n_threads);
    r->pool = ggml_threadpool_new(&params);
    if (!r->pool) {
        set_error("ggml_threadpool_new(%d) failed", n_threads);
        free(r);
        return NULL;
    }
    r->n_threads = n_threads;
    return r;
}

void quarot_ggml_runner_free(quarot_ggml_runner *r) {
    if (!r) {
        return;
    }
    ggml_threadpool_free(r->pool);
    free(r->work);
    free(r);
}

int quarot_ggml_runner_compute(quarot_ggml_runner *r, struct ggml_cgraph *graph) {
    struct ggml_cplan plan = ggml_graph_plan(graph, r->n_threads, r->pool);
    if (plan.work_size > r->work_size) {
        uint8_t *w = (uint8_t *)realloc(r->work, plan.work_size);
        if (!w) {
            set_error("out of memory for a %zu-byte work buffer", plan.work_size);
            return GGML_STATUS_ALLOC_FAILED;
        }
        r->work = w;
        r->work_size = plan.work_size;
    }
    plan.work_data = r->work;
    return (int)ggml_graph_compute(graph, &plan);
}

struct ggml_context *quarot_ggml_context_new(size_t mem_size) {
    struct ggml_init_params params = {mem_size, NULL, false};
    return ggml_init(params);
}

int quarot_ggml_tensor_shape(const struct ggml_tensor *t, int64_t ne[4], size_t nb[4]) {
    for (int i = 0; i < 4; i++) {
        ne[i] = t->ne[i];
        nb[i] = t->nb[i];
    }
    return (int)t->type;
}
