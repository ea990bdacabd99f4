/*
 * bad_input.c: a table-driven test of libquarot's C ABI with bad input, written against
 * include/quarot.h only.
 *
 * The table below has one row per (export, parameter, way of being bad): for every
 * parameter of every exported function that can hold an invalid value there is a row that
 * passes that one bad value with every other argument valid, and expects the specific
 * status the header documents for it. Functions without a status (quarot_isa_name,
 * quarot_hadamard_scale, the _free functions, ...) get rows that check their documented
 * result for bad input ("unknown", 0, a no-op, ...). A row is named
 * "<export>.<parameter> <what is wrong>"; tests/c_examples.rs checks that every function
 * declared in the header has a row here.
 *
 * Invariants checked for every row, by run_row():
 *   (a) the status is the expected one;
 *   (b) no byte of any buffer the call can see changed. All buffers live in one arena that
 *       is reset before each row to a known pattern: the argument values (finite data, a
 *       valid rotation, +-1 signs) followed by canary elements past the end, and canary
 *       elements between the rows of every strided batch; after the call the whole arena
 *       must be byte-identical to the pattern ("when a function returns an error, no
 *       element of any buffer has been written");
 *   (c) handle output pointers (quarot_r4_wrapper_new, quarot_qk_rotation_new) still hold
 *       the sentinel they were set to ("writes *out only on success");
 *   (d) quarot_last_error() is non-empty after a failing row, and "" after a row that is
 *       expected to succeed;
 *   (e) no stale message can pass (d): a row expected to fail is preceded by a successful
 *       call (message ""), a row expected to succeed by a failing one (message non-empty),
 *       and a failing row is followed by a successful call that must give "" again;
 *   and no callback of a handle is called, except the one failing callback of the
 *   QUAROT_ERR_CALLBACK rows.
 * Before the table, every row's "all arguments valid" call is made once and must succeed,
 * so a bad value is really the only thing wrong with a row. After the table, the library
 * must still work: a 4-wide transform of [1, 0, 0, 0] with scale 0.5 gives 0.5 everywhere,
 * and the long-lived handles still forward.
 *
 * Every row expects the status the header documents for its case: the "Errors:" list of
 * each function names the status of each check, including a layout that is no
 * QUAROT_LAYOUT_*, signs other than +-1, out_len < n * n, quarot_set_num_threads(5000), a
 * scale of 0 for a Hadamard rotation, n = 0 for quarot_hadamard_matrix (UNSUPPORTED_SIZE)
 * and quarot_random_orthogonal (INVALID_ARGUMENT), and a flag the function does not take.
 * A row for a case the header were silent or ambiguous about would be marked NOTE and
 * expect what the library returns; there is none at present.
 *
 * The rows run in table order on one thread (quarot_last_callback_code rows rely on it).
 * Each failure is printed with the row name, the call, the got/expected status and the
 * last error; the last line is "bad_input: <N> rows, <F> failures" (F counts failed rows
 * plus failed checks outside the table); the exit status is 0 iff F == 0.
 *
 * Built and run by tests/c_examples.rs as C99, as C++11, under ASan + UBSan and valgrind:
 *   cc -std=c99 -Wall -Wextra -Werror -pedantic -Iinclude examples_c/bad_input.c \
 *      -Ltarget/release -Wl,-rpath,target/release -lquarot -lpthread -lm
 */
#include "quarot.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------
 * Constants and the arena
 * ------------------------------------------------------------------------------------- */

#define SZ_MAX ((size_t)-1)
/* n with n * n > SIZE_MAX (2^32 on 64-bit targets). */
#define SQRT_OVER ((size_t)1 << (sizeof(size_t) * 4))
/* 1/sqrt(8): a valid scale for the 8-wide Hadamard rotations. */
#define S8 0.35355339059327373
/* Canary elements after the last element any valid call uses. */
#define CANARY 16

/* Every buffer any row can see. The valid calls use (n = 8 throughout):
 *   x, y    float rows: 2 rows of 8, stride 12 (4 canaries between rows); weights 2 x 8
 *           (stride 12) or 8 x 4 (stride 6); q (3 heads) and k (2 heads) of 2 tokens;
 *   h       binary16 / bfloat16 rows: 2 rows of 8, stride 12 (or 10 as a dst);
 *   rot     an 8 x 8 rotation (H_8 / sqrt(8)); rot_nan, rot_inf: the same with one NaN / Inf;
 *   mat     output of quarot_hadamard_matrix / quarot_random_orthogonal (8 x 8, or 11 x 11);
 *   signs   8 signs of +-1; signs_zero, signs_two: the same with one 0 / one 2;
 *   kmat    output of quarot_hadamard_k_matrix (12 x 12); i8 output of quarot_random_signs;
 *   codes, scales, zeros   outputs of quarot_quantize (2 rows of 8, groups of 4);
 *   sizes   *below, *above, *first, *count; isa: *out of quarot_active_isa. */
struct arena {
    float x[112 + CANARY];
    float y[112 + CANARY];
    uint16_t h[32 + CANARY];
    double rot[64 + CANARY];
    double rot_nan[64 + CANARY];
    double rot_inf[64 + CANARY];
    double mat[121 + CANARY];
    int8_t signs[8 + CANARY];
    int8_t signs_zero[8 + CANARY];
    int8_t signs_two[8 + CANARY];
    int8_t kmat[144 + CANARY];
    int8_t i8[8 + CANARY];
    int8_t codes[16 + CANARY];
    float scales[4 + CANARY];
    float zeros[4 + CANARY];
    size_t sizes[4 + CANARY];
    quarot_isa isa[1 + CANARY];
};

static struct arena A;   /* what the calls see */
static struct arena REF; /* the pattern A is reset to, and compared with */

#define FIELD(f) {#f, offsetof(struct arena, f), sizeof(((struct arena *)0)->f)}
static const struct {
    const char *name;
    size_t offset, size;
} FIELDS[] = {
    FIELD(x),       FIELD(y),     FIELD(h),     FIELD(rot),        FIELD(rot_nan),
    FIELD(rot_inf), FIELD(mat),   FIELD(signs), FIELD(signs_zero), FIELD(signs_two),
    FIELD(kmat),    FIELD(i8),    FIELD(codes), FIELD(scales),     FIELD(zeros),
    FIELD(sizes),   FIELD(isa),
};

static void make_reference(void) {
    size_t i, j;
    memset(&REF, 0xA5, sizeof REF); /* padding too: the whole struct is compared */
    for (i = 0; i < sizeof REF.x / sizeof REF.x[0]; ++i) {
        REF.x[i] = 1.0f + 0.125f * (float)i;
        REF.y[i] = -2.0f - 0.25f * (float)i;
    }
    for (i = 0; i < sizeof REF.h / sizeof REF.h[0]; ++i) {
        REF.h[i] = (uint16_t)(0x3c00 + i); /* finite in binary16 and in bfloat16 */
    }
    for (i = 0; i < sizeof REF.rot / sizeof REF.rot[0]; ++i) {
        REF.rot[i] = -777.0; /* canary */
    }
    for (i = 0; i < 8; ++i) {
        for (j = 0; j < 8; ++j) {
            unsigned bits = (unsigned)(i & j);
            int odd = (int)((bits ^ (bits >> 1) ^ (bits >> 2)) & 1u);
            REF.rot[i * 8 + j] = odd ? -S8 : S8;
        }
    }
    memcpy(REF.rot_nan, REF.rot, sizeof REF.rot);
    memcpy(REF.rot_inf, REF.rot, sizeof REF.rot);
    REF.rot_nan[9] = NAN;
    REF.rot_inf[63] = INFINITY;
    for (i = 0; i < sizeof REF.mat / sizeof REF.mat[0]; ++i) {
        REF.mat[i] = 123.5 + (double)i;
    }
    for (i = 0; i < sizeof REF.signs; ++i) {
        static const int8_t s[8] = {1, -1, 1, 1, -1, -1, 1, -1};
        REF.signs[i] = i < 8 ? s[i] : (int8_t)0x5a;
    }
    memcpy(REF.signs_zero, REF.signs, sizeof REF.signs);
    memcpy(REF.signs_two, REF.signs, sizeof REF.signs);
    REF.signs_zero[5] = 0;
    REF.signs_two[7] = 2;
    for (i = 0; i < sizeof REF.kmat; ++i) {
        REF.kmat[i] = (int8_t)(i * 7 + 3);
    }
    for (i = 0; i < sizeof REF.i8; ++i) {
        REF.i8[i] = (int8_t)(0x33 + i);
    }
    for (i = 0; i < sizeof REF.codes; ++i) {
        REF.codes[i] = (int8_t)(0x44 + i);
    }
    for (i = 0; i < sizeof REF.scales / sizeof REF.scales[0]; ++i) {
        REF.scales[i] = 55.0f + (float)i;
        REF.zeros[i] = -66.0f - (float)i;
    }
    for (i = 0; i < sizeof REF.sizes / sizeof REF.sizes[0]; ++i) {
        REF.sizes[i] = (size_t)0x5eed0000u + i;
    }
    for (i = 0; i < sizeof REF.isa / sizeof REF.isa[0]; ++i) {
        REF.isa[i] = (quarot_isa)(0x15a0 + (int)i);
    }
}

/* ---------------------------------------------------------------------------------------
 * Handles, callbacks and argument helpers
 * ------------------------------------------------------------------------------------- */

/* Calls of the callbacks during one row: only the QUAROT_ERR_CALLBACK rows may call one. */
static int callback_calls = 0;

static int op_ok(void *user_data, const struct quarot_activations *x, void *out) {
    (void)user_data;
    (void)x;
    (void)out;
    ++callback_calls;
    return 0;
}

static int op_fail(void *user_data, const struct quarot_activations *x, void *out) {
    (void)user_data;
    (void)x;
    (void)out;
    ++callback_calls;
    return 42;
}

static int quant_fail(void *user_data, void *data, quarot_dtype dtype, size_t rows, size_t n,
                      size_t row_stride) {
    (void)user_data;
    (void)data;
    (void)dtype;
    (void)rows;
    (void)n;
    (void)row_stride;
    ++callback_calls;
    return 43;
}

static int rope_ok(void *user_data, void *q, void *k, quarot_dtype dtype,
                   const struct quarot_qk_shape *shape, void *call_arg) {
    (void)user_data;
    (void)q;
    (void)k;
    (void)dtype;
    (void)shape;
    (void)call_arg;
    ++callback_calls;
    return 0;
}

static int rope_fail(void *user_data, void *q, void *k, quarot_dtype dtype,
                     const struct quarot_qk_shape *shape, void *call_arg) {
    (void)user_data;
    (void)q;
    (void)k;
    (void)dtype;
    (void)shape;
    (void)call_arg;
    ++callback_calls;
    return 7;
}

/* Valid handles, made in main() and freed at the end: an 8-wide f32 R4 wrapper with 4-bit
 * fake quantization (op_ok), one whose op fails, one whose custom quantizer fails; an
 * 8-wide f32 QK rotation (rope_ok) and one whose RoPE fails. */
static quarot_r4_wrapper *r4 = NULL;
static quarot_r4_wrapper *r4_op_fails = NULL;
static quarot_r4_wrapper *r4_quant_fails = NULL;
static quarot_qk_rotation *qk = NULL;
static quarot_qk_rotation *qk_rope_fails = NULL;

/* The *out of the constructor rows, set to a sentinel before each row. */
static char r4_sentinel_object, qk_sentinel_object;
#define R4_SENTINEL ((quarot_r4_wrapper *)(void *)&r4_sentinel_object)
#define QK_SENTINEL ((quarot_qk_rotation *)(void *)&qk_sentinel_object)
static quarot_r4_wrapper *r4_out = NULL;
static quarot_qk_rotation *qk_out = NULL;

/* A quantization config (symmetric), rewritten by each call that needs one. */
static quarot_quant_config config;
static const quarot_quant_config *quant(uint32_t kind, uint32_t bits, size_t group_size,
                                        float clip_ratio, quarot_quant_fn custom) {
    config.kind = kind;
    config.bits = bits;
    config.symmetric = 1;
    config.group_size = group_size;
    config.clip_ratio = clip_ratio;
    config.custom = custom;
    config.custom_user_data = NULL;
    return &config;
}
/* The valid configs: 4-bit fake per token (R4 wrapper), 8-bit real in groups of 4
 * (quarot_quantize: 2 groups per row of 8). */
#define FAKE4 quant(QUAROT_QUANT_FAKE, 4, 0, 1.0f, NULL)
#define REAL8 quant(QUAROT_QUANT_REAL, 8, 4, 1.0f, NULL)

/* A QK shape, rewritten by each call that needs one. */
static quarot_qk_shape qk_shape;
static const quarot_qk_shape *shape(size_t tokens, size_t n_heads, size_t n_kv_heads,
                                    size_t head_dim, size_t q_token_stride,
                                    size_t q_head_stride, size_t k_token_stride,
                                    size_t k_head_stride) {
    qk_shape.tokens = tokens;
    qk_shape.n_heads = n_heads;
    qk_shape.n_kv_heads = n_kv_heads;
    qk_shape.head_dim = head_dim;
    qk_shape.q_token_stride = q_token_stride;
    qk_shape.q_head_stride = q_head_stride;
    qk_shape.k_token_stride = k_token_stride;
    qk_shape.k_head_stride = k_head_stride;
    return &qk_shape;
}
/* The valid shape: 2 tokens; q: 3 heads at stride 9 in tokens of 30 (56 floats, gaps
 * between heads and tokens); k: 2 heads at stride 9 in tokens of 20 (37 floats). */
#define SHAPE_OK shape(2, 3, 2, 8, 30, 9, 20, 9)

/* ---------------------------------------------------------------------------------------
 * Rows for functions without a status: DOCUMENTED iff the documented result came back
 * ------------------------------------------------------------------------------------- */

enum { DOCUMENTED = 100, UNDOCUMENTED = 101 };
#define I32_MIN (-2147483647 - 1)
#define I32_MAX 2147483647

static char note[256]; /* what an UNDOCUMENTED result was */

static int32_t expect_size(size_t got, size_t want) {
    if (got == want) {
        return DOCUMENTED;
    }
    snprintf(note, sizeof note, "returned %zu, documented %zu", got, want);
    return UNDOCUMENTED;
}

static int32_t expect_int(long got, long want) {
    if (got == want) {
        return DOCUMENTED;
    }
    snprintf(note, sizeof note, "returned %ld, documented %ld", got, want);
    return UNDOCUMENTED;
}

static int32_t expect_double(double got, double want) {
    if (got == want) {
        return DOCUMENTED;
    }
    snprintf(note, sizeof note, "returned %.17g, documented %.17g", got, want);
    return UNDOCUMENTED;
}

static int32_t expect_string(const char *got, const char *want) {
    if (got != NULL && strcmp(got, want) == 0) {
        return DOCUMENTED;
    }
    snprintf(note, sizeof note, "returned \"%.100s\", documented \"%s\"",
             got == NULL ? "(NULL)" : got, want);
    return UNDOCUMENTED;
}

/* quarot_last_error(): never NULL; a failure sets a message, a success clears it. */
static int32_t last_error_cycle(void) {
    const char *m;
    (void)quarot_hadamard_f32(NULL, 0, 0, 4, 1.0f, 0); /* n = 0: fails */
    m = quarot_last_error();
    if (m == NULL || m[0] == '\0') {
        snprintf(note, sizeof note, "NULL or empty after a failure");
        return UNDOCUMENTED;
    }
    (void)quarot_hadamard_f32(NULL, 0, 4, 4, 1.0f, 0); /* empty batch: succeeds */
    m = quarot_last_error();
    if (m == NULL || m[0] != '\0') {
        snprintf(note, sizeof note, "not \"\" after a success");
        return UNDOCUMENTED;
    }
    return DOCUMENTED;
}

/* quarot_release_scratch(): after one release, a second frees nothing and nothing is kept. */
static int32_t release_twice(void) {
    (void)quarot_release_scratch();
    return expect_size(quarot_release_scratch(), 0);
}

static int32_t retained_after_release(void) {
    (void)quarot_release_scratch();
    return expect_size(quarot_scratch_retained(), 0);
}

/* ---------------------------------------------------------------------------------------
 * The table: X(id, expected, "export.parameter what is wrong", call)
 *
 * The valid arguments of each export are those of baseline() below; each row changes one.
 * ------------------------------------------------------------------------------------- */

#define E_NULL QUAROT_ERR_NULL_POINTER
#define E_SIZE QUAROT_ERR_UNSUPPORTED_SIZE
#define E_STRIDE QUAROT_ERR_INVALID_STRIDE
#define E_OVERFLOW QUAROT_ERR_SIZE_OVERFLOW
#define E_FLAGS QUAROT_ERR_INVALID_FLAGS
#define E_DTYPE QUAROT_ERR_INVALID_DTYPE
#define E_OVERLAP QUAROT_ERR_OVERLAP
#define E_ARG QUAROT_ERR_INVALID_ARGUMENT
#define E_CALLBACK QUAROT_ERR_CALLBACK
#define F32 QUAROT_DTYPE_F32
#define F16 QUAROT_DTYPE_F16
#define BLOCK_PAD (QUAROT_FLAG_BLOCK_DIAGONAL | QUAROT_FLAG_PAD_TRUNCATE)

/* quarot_hadamard_f32(data, rows, n, row_stride, scale, flags); valid: (x, 2, 8, 12, 0.5, 0) */
#define ROWS_HADAMARD_F32(X)                                                                       \
    X(f32_data_null, E_NULL, "quarot_hadamard_f32.data = NULL with rows > 0",                      \
      quarot_hadamard_f32(NULL, 2, 8, 12, 0.5f, 0))                                                \
    X(f32_rows_overflow, E_OVERFLOW, "quarot_hadamard_f32.rows: rows * row_stride overflows",      \
      quarot_hadamard_f32(A.x, SZ_MAX / 8, 8, 12, 0.5f, 0))                                        \
    X(f32_rows_bytes, E_OVERFLOW, "quarot_hadamard_f32.rows: the rows' bytes overflow",            \
      quarot_hadamard_f32(A.x, SZ_MAX / 48, 8, 12, 0.5f, 0))                                       \
    X(f32_n_zero, E_SIZE, "quarot_hadamard_f32.n = 0",                                             \
      quarot_hadamard_f32(A.x, 2, 0, 12, 0.5f, 0))                                                 \
    X(f32_n_odd, E_SIZE, "quarot_hadamard_f32.n = 11 (odd, no Hadamard matrix)",                   \
      quarot_hadamard_f32(A.x, 2, 11, 12, 0.5f, 0))                                                \
    X(f32_n_even, E_SIZE, "quarot_hadamard_f32.n = 22 (even, no Hadamard matrix)",                 \
      quarot_hadamard_f32(A.x, 2, 22, 24, 0.5f, 0))                                                \
    /* The unsupported-size message names block sizes (block_size(n)), which never returned for    \
     * this n before commit d8a9a3d: the call must fail promptly. */                               \
    X(f32_n_huge, E_SIZE, "quarot_hadamard_f32.n = SIZE_MAX - 1 (even, no Hadamard matrix)",       \
      quarot_hadamard_f32(A.x, 1, SZ_MAX - 1, SZ_MAX - 1, 0.5f, 0))                                \
    X(f32_n_odd_block, E_SIZE, "quarot_hadamard_f32.n = 11 with QUAROT_FLAG_BLOCK_DIAGONAL",       \
      quarot_hadamard_f32(A.x, 2, 11, 12, 0.5f, QUAROT_FLAG_BLOCK_DIAGONAL))                       \
    X(f32_n_pad_overflow, E_OVERFLOW,                                                              \
      "quarot_hadamard_f32.n > SIZE_MAX / 2 with QUAROT_FLAG_PAD_TRUNCATE",                        \
      quarot_hadamard_f32(A.x, 1, SZ_MAX / 2 + 2, SZ_MAX / 2 + 2, 0.5f,                            \
                          QUAROT_FLAG_PAD_TRUNCATE))                                               \
    X(f32_stride_small, E_STRIDE, "quarot_hadamard_f32.row_stride < n",                            \
      quarot_hadamard_f32(A.x, 2, 8, 7, 0.5f, 0))                                                  \
    X(f32_stride_zero, E_STRIDE, "quarot_hadamard_f32.row_stride = 0",                             \
      quarot_hadamard_f32(A.x, 2, 8, 0, 0.5f, 0))                                                  \
    X(f32_stride_overflow, E_OVERFLOW, "quarot_hadamard_f32.row_stride: the rows overflow",        \
      quarot_hadamard_f32(A.x, 2, 8, SZ_MAX / 2, 0.5f, 0))                                         \
    X(f32_scale_nan, E_ARG, "quarot_hadamard_f32.scale = NaN",                                     \
      quarot_hadamard_f32(A.x, 2, 8, 12, NAN, 0))                                                  \
    X(f32_scale_inf, E_ARG, "quarot_hadamard_f32.scale = +Inf",                                    \
      quarot_hadamard_f32(A.x, 2, 8, 12, INFINITY, 0))                                             \
    X(f32_scale_ninf, E_ARG, "quarot_hadamard_f32.scale = -Inf",                                   \
      quarot_hadamard_f32(A.x, 2, 8, 12, -INFINITY, 0))                                            \
    X(f32_flags_unknown, E_FLAGS, "quarot_hadamard_f32.flags has an unknown bit (0x20)",           \
      quarot_hadamard_f32(A.x, 2, 8, 12, 0.5f, 0x20u))                                             \
    X(f32_flags_high, E_FLAGS, "quarot_hadamard_f32.flags has an unknown bit (0x80000000)",        \
      quarot_hadamard_f32(A.x, 2, 8, 12, 0.5f, 0x80000000u))                                       \
    X(f32_flags_f32acc, E_FLAGS, "quarot_hadamard_f32.flags = QUAROT_FLAG_F32_ACCUMULATE",         \
      quarot_hadamard_f32(A.x, 2, 8, 12, 0.5f, QUAROT_FLAG_F32_ACCUMULATE))                        \
    X(f32_flags_block_pad, E_FLAGS,                                                                \
      "quarot_hadamard_f32.flags = QUAROT_FLAG_BLOCK_DIAGONAL | QUAROT_FLAG_PAD_TRUNCATE",         \
      quarot_hadamard_f32(A.x, 2, 8, 12, 0.5f, BLOCK_PAD))                                         \
    X(f32_empty_null, QUAROT_OK, "quarot_hadamard_f32.data = NULL with rows = 0 (valid)",          \
      quarot_hadamard_f32(NULL, 0, 8, 12, 0.5f, 0))                                                \
    X(f32_empty_n, E_SIZE, "quarot_hadamard_f32.n = 0 with rows = 0 (still checked)",              \
      quarot_hadamard_f32(NULL, 0, 0, 12, 0.5f, 0))                                                \
    X(f32_empty_stride, E_STRIDE, "quarot_hadamard_f32.row_stride < n with rows = 0",              \
      quarot_hadamard_f32(NULL, 0, 8, 7, 0.5f, 0))                                                 \
    X(f32_empty_scale, E_ARG, "quarot_hadamard_f32.scale = NaN with rows = 0",                     \
      quarot_hadamard_f32(NULL, 0, 8, 12, NAN, 0))                                                 \
    X(f32_empty_flags, E_FLAGS, "quarot_hadamard_f32.flags unknown with rows = 0",                 \
      quarot_hadamard_f32(NULL, 0, 8, 12, 0.5f, 0x20u))

/* quarot_hadamard_f16 / _bf16(data, rows, n, row_stride, scale, flags); valid: (h, 2, 8, 12,
 * 0.5, 0) */
#define ROWS_HADAMARD_16(X)                                                                        \
    X(f16_data_null, E_NULL, "quarot_hadamard_f16.data = NULL with rows > 0",                      \
      quarot_hadamard_f16(NULL, 2, 8, 12, 0.5f, 0))                                                \
    X(f16_rows_overflow, E_OVERFLOW, "quarot_hadamard_f16.rows: rows * row_stride overflows",      \
      quarot_hadamard_f16(A.h, SZ_MAX / 8, 8, 12, 0.5f, 0))                                        \
    X(f16_rows_bytes, E_OVERFLOW, "quarot_hadamard_f16.rows: the rows' bytes overflow",            \
      quarot_hadamard_f16(A.h, SZ_MAX / 24, 8, 12, 0.5f, 0))                                       \
    X(f16_n_zero, E_SIZE, "quarot_hadamard_f16.n = 0",                                             \
      quarot_hadamard_f16(A.h, 2, 0, 12, 0.5f, 0))                                                 \
    X(f16_n_odd, E_SIZE, "quarot_hadamard_f16.n = 11 (no Hadamard matrix)",                        \
      quarot_hadamard_f16(A.h, 2, 11, 12, 0.5f, 0))                                                \
    X(f16_stride_small, E_STRIDE, "quarot_hadamard_f16.row_stride < n",                            \
      quarot_hadamard_f16(A.h, 2, 8, 7, 0.5f, 0))                                                  \
    X(f16_stride_overflow, E_OVERFLOW, "quarot_hadamard_f16.row_stride: the rows overflow",        \
      quarot_hadamard_f16(A.h, 2, 8, SZ_MAX / 2, 0.5f, 0))                                         \
    X(f16_scale_nan, E_ARG, "quarot_hadamard_f16.scale = NaN",                                     \
      quarot_hadamard_f16(A.h, 2, 8, 12, NAN, 0))                                                  \
    X(f16_flags_unknown, E_FLAGS, "quarot_hadamard_f16.flags has an unknown bit (0x20)",           \
      quarot_hadamard_f16(A.h, 2, 8, 12, 0.5f, 0x20u))                                             \
    X(f16_flags_f32acc, E_FLAGS, "quarot_hadamard_f16.flags = QUAROT_FLAG_F32_ACCUMULATE",         \
      quarot_hadamard_f16(A.h, 2, 8, 12, 0.5f, QUAROT_FLAG_F32_ACCUMULATE))                        \
    X(bf16_data_null, E_NULL, "quarot_hadamard_bf16.data = NULL with rows > 0",                    \
      quarot_hadamard_bf16(NULL, 2, 8, 12, 0.5f, 0))                                               \
    X(bf16_rows_overflow, E_OVERFLOW, "quarot_hadamard_bf16.rows: rows * row_stride overflows",    \
      quarot_hadamard_bf16(A.h, SZ_MAX / 8, 8, 12, 0.5f, 0))                                       \
    X(bf16_rows_bytes, E_OVERFLOW, "quarot_hadamard_bf16.rows: the rows' bytes overflow",          \
      quarot_hadamard_bf16(A.h, SZ_MAX / 24, 8, 12, 0.5f, 0))                                      \
    X(bf16_n_zero, E_SIZE, "quarot_hadamard_bf16.n = 0",                                           \
      quarot_hadamard_bf16(A.h, 2, 0, 12, 0.5f, 0))                                                \
    X(bf16_n_odd, E_SIZE, "quarot_hadamard_bf16.n = 11 (no Hadamard matrix)",                      \
      quarot_hadamard_bf16(A.h, 2, 11, 12, 0.5f, 0))                                               \
    X(bf16_stride_small, E_STRIDE, "quarot_hadamard_bf16.row_stride < n",                          \
      quarot_hadamard_bf16(A.h, 2, 8, 7, 0.5f, 0))                                                 \
    X(bf16_stride_overflow, E_OVERFLOW, "quarot_hadamard_bf16.row_stride: the rows overflow",      \
      quarot_hadamard_bf16(A.h, 2, 8, SZ_MAX / 2, 0.5f, 0))                                        \
    X(bf16_scale_inf, E_ARG, "quarot_hadamard_bf16.scale = +Inf",                                  \
      quarot_hadamard_bf16(A.h, 2, 8, 12, INFINITY, 0))                                            \
    X(bf16_flags_unknown, E_FLAGS, "quarot_hadamard_bf16.flags has an unknown bit (0x40)",         \
      quarot_hadamard_bf16(A.h, 2, 8, 12, 0.5f, 0x40u))                                            \
    X(bf16_flags_f32acc, E_FLAGS, "quarot_hadamard_bf16.flags = QUAROT_FLAG_F32_ACCUMULATE",       \
      quarot_hadamard_bf16(A.h, 2, 8, 12, 0.5f, QUAROT_FLAG_F32_ACCUMULATE))

/* quarot_hadamard(src, src_type, src_stride, dst, dst_type, dst_stride, rows, n, scale,
 * flags); valid: (x, F32, 12, h, F16, 10, 2, 8, 0.5, 0) */
#define ROWS_HADAMARD(X)                                                                           \
    X(had_src_null, E_NULL, "quarot_hadamard.src = NULL with rows > 0",                            \
      quarot_hadamard(NULL, F32, 12, A.h, F16, 10, 2, 8, 0.5f, 0))                                 \
    X(had_src_type, E_DTYPE, "quarot_hadamard.src_type = 2 (not a dtype)",                         \
      quarot_hadamard(A.x, 2, 12, A.h, F16, 10, 2, 8, 0.5f, 0))                                    \
    X(had_src_type_neg, E_DTYPE, "quarot_hadamard.src_type = -1",                                  \
      quarot_hadamard(A.x, -1, 12, A.h, F16, 10, 2, 8, 0.5f, 0))                                   \
    X(had_src_stride, E_STRIDE, "quarot_hadamard.src_stride < n",                                  \
      quarot_hadamard(A.x, F32, 7, A.h, F16, 10, 2, 8, 0.5f, 0))                                   \
    X(had_src_stride_overflow, E_OVERFLOW, "quarot_hadamard.src_stride: the src rows overflow",    \
      quarot_hadamard(A.x, F32, SZ_MAX / 2, A.h, F16, 10, 2, 8, 0.5f, 0))                          \
    X(had_dst_null, E_NULL, "quarot_hadamard.dst = NULL with rows > 0",                            \
      quarot_hadamard(A.x, F32, 12, NULL, F16, 10, 2, 8, 0.5f, 0))                                 \
    X(had_dst_type, E_DTYPE, "quarot_hadamard.dst_type = 31 (not a dtype)",                        \
      quarot_hadamard(A.x, F32, 12, A.h, 31, 10, 2, 8, 0.5f, 0))                                   \
    X(had_dst_type_min, E_DTYPE, "quarot_hadamard.dst_type = INT32_MIN",                           \
      quarot_hadamard(A.x, F32, 12, A.h, I32_MIN, 10, 2, 8, 0.5f, 0))                              \
    X(had_dst_stride, E_STRIDE, "quarot_hadamard.dst_stride < n",                                  \
      quarot_hadamard(A.x, F32, 12, A.h, F16, 7, 2, 8, 0.5f, 0))                                   \
    X(had_dst_stride_overflow, E_OVERFLOW, "quarot_hadamard.dst_stride: the dst rows overflow",    \
      quarot_hadamard(A.x, F32, 12, A.h, F16, SZ_MAX / 2, 2, 8, 0.5f, 0))                          \
    X(had_rows_overflow, E_OVERFLOW, "quarot_hadamard.rows: rows * stride overflows",              \
      quarot_hadamard(A.x, F32, 12, A.h, F16, 10, SZ_MAX / 8, 8, 0.5f, 0))                         \
    X(had_n_zero, E_SIZE, "quarot_hadamard.n = 0",                                                 \
      quarot_hadamard(A.x, F32, 12, A.h, F16, 10, 2, 0, 0.5f, 0))                                  \
    X(had_n_odd, E_SIZE, "quarot_hadamard.n = 11 (no Hadamard matrix)",                            \
      quarot_hadamard(A.x, F32, 12, A.h, F16, 10, 2, 11, 0.5f, 0))                                 \
    X(had_scale_nan, E_ARG, "quarot_hadamard.scale = NaN",                                         \
      quarot_hadamard(A.x, F32, 12, A.h, F16, 10, 2, 8, NAN, 0))                                   \
    X(had_scale_ninf, E_ARG, "quarot_hadamard.scale = -Inf",                                       \
      quarot_hadamard(A.x, F32, 12, A.h, F16, 10, 2, 8, -INFINITY, 0))                             \
    X(had_flags_unknown, E_FLAGS, "quarot_hadamard.flags has an unknown bit (0x100)",              \
      quarot_hadamard(A.x, F32, 12, A.h, F16, 10, 2, 8, 0.5f, 0x100u))                             \
    X(had_flags_f32acc, E_FLAGS, "quarot_hadamard.flags = QUAROT_FLAG_F32_ACCUMULATE",             \
      quarot_hadamard(A.x, F32, 12, A.h, F16, 10, 2, 8, 0.5f, QUAROT_FLAG_F32_ACCUMULATE))         \
    X(had_flags_block_pad, E_FLAGS,                                                                \
      "quarot_hadamard.flags = QUAROT_FLAG_BLOCK_DIAGONAL | QUAROT_FLAG_PAD_TRUNCATE",             \
      quarot_hadamard(A.x, F32, 12, A.h, F16, 10, 2, 8, 0.5f, BLOCK_PAD))                          \
    X(had_overlap_shift, E_OVERLAP, "quarot_hadamard.dst = src + 4 elements (overlap)",            \
      quarot_hadamard(A.x, F32, 12, A.x + 4, F32, 12, 2, 8, 0.5f, 0))                              \
    X(had_overlap_type, E_OVERLAP, "quarot_hadamard.dst = src but dst_type != src_type",           \
      quarot_hadamard(A.x, F32, 12, A.x, F16, 12, 2, 8, 0.5f, 0))                                  \
    X(had_overlap_stride, E_OVERLAP, "quarot_hadamard.dst = src but dst_stride != src_stride",     \
      quarot_hadamard(A.x, F32, 12, A.x, F32, 13, 2, 8, 0.5f, 0))                                  \
    X(had_empty_null, QUAROT_OK, "quarot_hadamard.src = dst = NULL with rows = 0 (valid)",         \
      quarot_hadamard(NULL, F32, 12, NULL, F16, 10, 0, 8, 0.5f, 0))

/* The size queries: no status, documented results for widths without a matrix. */
#define ROWS_SIZES(X)                                                                              \
    X(supported_zero, DOCUMENTED, "quarot_hadamard_size_supported.n = 0 gives 0",                  \
      expect_size(quarot_hadamard_size_supported(0), 0))                                           \
    X(supported_odd, DOCUMENTED, "quarot_hadamard_size_supported.n = 11 gives 0",                  \
      expect_size(quarot_hadamard_size_supported(11), 0))                                          \
    X(supported_even, DOCUMENTED, "quarot_hadamard_size_supported.n = 22 gives 0",                 \
      expect_size(quarot_hadamard_size_supported(22), 0))                                          \
    X(supported_max, DOCUMENTED, "quarot_hadamard_size_supported.n = SIZE_MAX gives 0",            \
      expect_size(quarot_hadamard_size_supported(SZ_MAX), 0))                                      \
    X(nearest_null, QUAROT_OK, "quarot_hadamard_nearest_sizes.below = above = NULL (valid)",       \
      quarot_hadamard_nearest_sizes(11000, NULL, NULL))                                            \
    X(nearest_zero_null, QUAROT_OK,                                                                \
      "quarot_hadamard_nearest_sizes.n = 0 with below = above = NULL (valid)",                     \
      quarot_hadamard_nearest_sizes(0, NULL, NULL))                                                \
    X(block_zero, DOCUMENTED, "quarot_hadamard_block_size.n = 0 gives 0",                          \
      expect_size(quarot_hadamard_block_size(0), 0))                                               \
    X(block_odd, DOCUMENTED, "quarot_hadamard_block_size.n = 11 (odd, unsupported) gives 0",       \
      expect_size(quarot_hadamard_block_size(11), 0))                                              \
    /* The two block_size rows near SIZE_MAX never returned before commit d8a9a3d (it scanned      \
     * every odd number up to n's odd part). SIZE_MAX is odd and unsupported: 0. SIZE_MAX - 1      \
     * = 2 * odd: no K (a multiple of 4) fits its single factor of two, so its largest             \
     * supported divisor is 2. */                                                                  \
    X(block_one, DOCUMENTED, "quarot_hadamard_block_size.n = 1 (supported) gives 1",             \
      expect_size(quarot_hadamard_block_size(1), 1))                                               \
    X(block_max, DOCUMENTED, "quarot_hadamard_block_size.n = SIZE_MAX (odd, unsupported) gives 0", \
      expect_size(quarot_hadamard_block_size(SZ_MAX), 0))                                          \
    X(block_max_even, DOCUMENTED,                                                                  \
      "quarot_hadamard_block_size.n = SIZE_MAX - 1 gives 2 (its largest supported divisor)",       \
      expect_size(quarot_hadamard_block_size(SZ_MAX - 1), 2))                                      \
    X(scale_zero, DOCUMENTED, "quarot_hadamard_scale.n = 0 gives 0",                               \
      expect_double(quarot_hadamard_scale(0), 0.0))                                                \
    X(quark_scale_zero, DOCUMENTED, "quarot_quark_hadamard_scale.n = 0 gives 0",                   \
      expect_double(quarot_quark_hadamard_scale(0), 0.0))

/* quarot_hadamard_k_matrix(k, out, out_len); valid: (12, kmat, 144) */
#define ROWS_K_MATRIX(X)                                                                           \
    X(kmat_k_zero, E_ARG, "quarot_hadamard_k_matrix.k = 0",                                        \
      quarot_hadamard_k_matrix(0, A.kmat, 144))                                                    \
    X(kmat_k_one, E_ARG, "quarot_hadamard_k_matrix.k = 1 (a power of two)",                        \
      quarot_hadamard_k_matrix(1, A.kmat, 144))                                                    \
    X(kmat_k_pow2, E_ARG, "quarot_hadamard_k_matrix.k = 8 (a power of two)",                       \
      quarot_hadamard_k_matrix(8, A.kmat, 144))                                                    \
    X(kmat_k_92, E_ARG, "quarot_hadamard_k_matrix.k = 92 (no known matrix)",                       \
      quarot_hadamard_k_matrix(92, A.kmat, 144))                                                   \
    X(kmat_k_max, E_ARG, "quarot_hadamard_k_matrix.k = SIZE_MAX",                                  \
      quarot_hadamard_k_matrix(SZ_MAX, A.kmat, 144))                                               \
    X(kmat_out_null, E_NULL, "quarot_hadamard_k_matrix.out = NULL",                                \
      quarot_hadamard_k_matrix(12, NULL, 144))                                                     \
    X(kmat_out_len, E_ARG, "quarot_hadamard_k_matrix.out_len = K*K - 1",                           \
      quarot_hadamard_k_matrix(12, A.kmat, 143))                                                   \
    X(kmat_out_len_zero, E_ARG, "quarot_hadamard_k_matrix.out_len = 0",                            \
      quarot_hadamard_k_matrix(12, A.kmat, 0))

/* quarot_rows_for_thread(rows, ith, nth, first, count); valid: (10, 1, 4, &sizes[2],
 * &sizes[3]); quarot_set_num_threads(n), valid 0..4096; and the argument-less exports. */
#define ROWS_THREADS_AND_MISC(X)                                                                   \
    X(threads_nth_zero, E_ARG, "quarot_rows_for_thread.nth = 0",                                   \
      quarot_rows_for_thread(10, 0, 0, &A.sizes[2], &A.sizes[3]))                                  \
    X(threads_ith_nth, E_ARG, "quarot_rows_for_thread.ith = nth",                                  \
      quarot_rows_for_thread(10, 4, 4, &A.sizes[2], &A.sizes[3]))                                  \
    X(threads_ith_max, E_ARG, "quarot_rows_for_thread.ith = SIZE_MAX",                             \
      quarot_rows_for_thread(10, SZ_MAX, 4, &A.sizes[2], &A.sizes[3]))                             \
    X(threads_first_null, E_NULL, "quarot_rows_for_thread.first = NULL",                           \
      quarot_rows_for_thread(10, 1, 4, NULL, &A.sizes[3]))                                         \
    X(threads_count_null, E_NULL, "quarot_rows_for_thread.count = NULL",                           \
      quarot_rows_for_thread(10, 1, 4, &A.sizes[2], NULL))                                         \
    X(num_threads_4097, E_ARG, "quarot_set_num_threads.n = 4097",                                  \
      quarot_set_num_threads(4097))                                                                \
    X(num_threads_5000, E_ARG, "quarot_set_num_threads.n = 5000",                                  \
      quarot_set_num_threads(5000))                                                                \
    X(num_threads_max, E_ARG, "quarot_set_num_threads.n = SIZE_MAX",                               \
      quarot_set_num_threads(SZ_MAX))                                                              \
    X(release_twice, DOCUMENTED, "quarot_release_scratch.result: a second release frees 0",        \
      release_twice())                                                                             \
    X(retained_zero, DOCUMENTED, "quarot_scratch_retained.result: 0 after a release",              \
      retained_after_release())                                                                    \
    X(status_minus_one, DOCUMENTED, "quarot_status_string.code = -1 gives \"unknown status\"",     \
      expect_string(quarot_status_string(-1), "unknown status"))                                   \
    X(status_14, DOCUMENTED, "quarot_status_string.code = 14 gives \"unknown status\"",            \
      expect_string(quarot_status_string(14), "unknown status"))                                   \
    X(status_min, DOCUMENTED, "quarot_status_string.code = INT32_MIN gives \"unknown status\"",    \
      expect_string(quarot_status_string(I32_MIN), "unknown status"))                              \
    X(status_max, DOCUMENTED, "quarot_status_string.code = INT32_MAX gives \"unknown status\"",    \
      expect_string(quarot_status_string(I32_MAX), "unknown status"))                              \
    X(last_error, DOCUMENTED, "quarot_last_error.result: set by a failure, \"\" after success",    \
      last_error_cycle())                                                                          \
    X(version, DOCUMENTED, "quarot_version.result equals QUAROT_VERSION_STRING",                   \
      expect_string(quarot_version(), QUAROT_VERSION_STRING))                                      \
    X(active_isa_null, E_NULL, "quarot_active_isa.out = NULL", quarot_active_isa(NULL))            \
    X(isa_available_neg, DOCUMENTED, "quarot_isa_available.isa = -1 gives 0",                      \
      expect_int(quarot_isa_available(-1), 0))                                                     \
    X(isa_available_3, DOCUMENTED, "quarot_isa_available.isa = 3 gives 0",                         \
      expect_int(quarot_isa_available(3), 0))                                                      \
    X(isa_available_max, DOCUMENTED, "quarot_isa_available.isa = INT32_MAX gives 0",               \
      expect_int(quarot_isa_available(I32_MAX), 0))                                                \
    X(isa_name_neg, DOCUMENTED, "quarot_isa_name.isa = -1 gives \"unknown\"",                      \
      expect_string(quarot_isa_name(-1), "unknown"))                                               \
    X(isa_name_3, DOCUMENTED, "quarot_isa_name.isa = 3 gives \"unknown\"",                         \
      expect_string(quarot_isa_name(3), "unknown"))                                                \
    X(isa_name_min, DOCUMENTED, "quarot_isa_name.isa = INT32_MIN gives \"unknown\"",               \
      expect_string(quarot_isa_name(I32_MIN), "unknown"))

/* quarot_rotate_in_channels(weight, dtype, out_features, in_features, row_stride, rotation,
 * rotation_n, flags); valid: (x, F32, 2, 8, 12, rot, 8, 0) */
#define ROWS_ROTATE_IN(X)                                                                          \
    X(rin_weight_null, E_NULL, "quarot_rotate_in_channels.weight = NULL",                          \
      quarot_rotate_in_channels(NULL, F32, 2, 8, 12, A.rot, 8, 0))                                 \
    X(rin_dtype, E_DTYPE, "quarot_rotate_in_channels.dtype = 2 (not a dtype)",                     \
      quarot_rotate_in_channels(A.x, 2, 2, 8, 12, A.rot, 8, 0))                                    \
    X(rin_dtype_neg, E_DTYPE, "quarot_rotate_in_channels.dtype = -1",                              \
      quarot_rotate_in_channels(A.x, -1, 2, 8, 12, A.rot, 8, 0))                                   \
    X(rin_out_overflow, E_OVERFLOW, "quarot_rotate_in_channels.out_features: W overflows",         \
      quarot_rotate_in_channels(A.x, F32, SZ_MAX / 8, 8, 12, A.rot, 8, 0))                         \
    X(rin_in_not_multiple, E_ARG,                                                                  \
      "quarot_rotate_in_channels.in_features = 12, not a multiple of rotation_n = 8",              \
      quarot_rotate_in_channels(A.x, F32, 2, 12, 12, A.rot, 8, 0))                                 \
    X(rin_stride_small, E_STRIDE, "quarot_rotate_in_channels.row_stride < in_features",            \
      quarot_rotate_in_channels(A.x, F32, 2, 8, 7, A.rot, 8, 0))                                   \
    X(rin_stride_overflow, E_OVERFLOW, "quarot_rotate_in_channels.row_stride: W overflows",        \
      quarot_rotate_in_channels(A.x, F32, 2, 8, SZ_MAX / 2, A.rot, 8, 0))                          \
    X(rin_rotation_null, E_NULL, "quarot_rotate_in_channels.rotation = NULL",                      \
      quarot_rotate_in_channels(A.x, F32, 2, 8, 12, NULL, 8, 0))                                   \
    X(rin_rotation_nan, E_ARG, "quarot_rotate_in_channels.rotation has a NaN",                     \
      quarot_rotate_in_channels(A.x, F32, 2, 8, 12, A.rot_nan, 8, 0))                              \
    X(rin_rotation_inf, E_ARG, "quarot_rotate_in_channels.rotation has an Inf",                    \
      quarot_rotate_in_channels(A.x, F32, 2, 8, 12, A.rot_inf, 8, 0))                              \
    X(rin_empty_rotation_nan, E_ARG,                                                               \
      "quarot_rotate_in_channels.rotation has a NaN (empty weight: R still checked)",              \
      quarot_rotate_in_channels(A.x, F32, 0, 8, 12, A.rot_nan, 8, 0))                              \
    X(rinh_rotation_n_huge_dim, E_ARG,                                                              \
      "quarot_rotate_in_channels_hadamard.rotation_n = 2^31 + 1 not dividing in_features = SIZE_MAX", \
      quarot_rotate_in_channels_hadamard(A.x, F32, 0, SZ_MAX, SZ_MAX, (size_t)2147483649u,          \
                                         QUAROT_LAYOUT_MATMUL_HADU, NULL, 1.0, 0))                 \
    X(rin_rotation_n_zero, E_ARG, "quarot_rotate_in_channels.rotation_n = 0",                      \
      quarot_rotate_in_channels(A.x, F32, 2, 8, 12, A.rot, 0, 0))                                  \
    X(rin_rotation_n_3, E_ARG, "quarot_rotate_in_channels.rotation_n = 3 (does not divide 8)",     \
      quarot_rotate_in_channels(A.x, F32, 2, 8, 12, A.rot, 3, 0))                                  \
    X(rin_rotation_n_overflow, E_OVERFLOW,                                                         \
      "quarot_rotate_in_channels.rotation_n: rotation_n^2 overflows",                              \
      quarot_rotate_in_channels(A.x, F32, 2, 8, 12, A.rot, SQRT_OVER, 0))                          \
    X(rin_flags_unknown, E_FLAGS, "quarot_rotate_in_channels.flags has an unknown bit (0x20)",     \
      quarot_rotate_in_channels(A.x, F32, 2, 8, 12, A.rot, 8, 0x20u))                              \
    X(rin_flags_transpose, E_FLAGS, "quarot_rotate_in_channels.flags = QUAROT_FLAG_TRANSPOSE_K",   \
      quarot_rotate_in_channels(A.x, F32, 2, 8, 12, A.rot, 8, QUAROT_FLAG_TRANSPOSE_K))            \
    X(rin_flags_block, E_FLAGS,                                                                    \
      "quarot_rotate_in_channels.flags = QUAROT_FLAG_BLOCK_DIAGONAL",                              \
      quarot_rotate_in_channels(A.x, F32, 2, 8, 12, A.rot, 8, QUAROT_FLAG_BLOCK_DIAGONAL))

/* quarot_rotate_out_channels(weight, dtype, out_features, in_features, row_stride, bias,
 * rotation, rotation_n, flags); valid: (x, F32, 8, 4, 6, y, rot, 8, 0) */
#define ROWS_ROTATE_OUT(X)                                                                         \
    X(rout_weight_null, E_NULL, "quarot_rotate_out_channels.weight = NULL",                        \
      quarot_rotate_out_channels(NULL, F32, 8, 4, 6, A.y, A.rot, 8, 0))                            \
    X(rout_dtype, E_DTYPE, "quarot_rotate_out_channels.dtype = 31 (not a dtype)",                  \
      quarot_rotate_out_channels(A.x, 31, 8, 4, 6, A.y, A.rot, 8, 0))                              \
    X(rout_out_overflow, E_OVERFLOW, "quarot_rotate_out_channels.out_features: W overflows",       \
      quarot_rotate_out_channels(A.x, F32, SZ_MAX / 4 + 1, 4, 6, NULL, A.rot, 8, 0))               \
    X(rout_out_not_multiple, E_ARG,                                                                \
      "quarot_rotate_out_channels.out_features = 12, not a multiple of rotation_n = 8",            \
      quarot_rotate_out_channels(A.x, F32, 12, 4, 6, A.y, A.rot, 8, 0))                            \
    X(rout_stride_small, E_STRIDE, "quarot_rotate_out_channels.row_stride < in_features",          \
      quarot_rotate_out_channels(A.x, F32, 8, 4, 3, A.y, A.rot, 8, 0))                             \
    X(rout_stride_overflow, E_OVERFLOW, "quarot_rotate_out_channels.row_stride: W overflows",      \
      quarot_rotate_out_channels(A.x, F32, 8, 4, SZ_MAX / 2, A.y, A.rot, 8, 0))                    \
    X(rout_bias_overlap, E_OVERLAP, "quarot_rotate_out_channels.bias overlaps the weight",         \
      quarot_rotate_out_channels(A.x, F32, 8, 4, 6, A.x + 40, A.rot, 8, 0))                        \
    X(rout_bias_same, E_OVERLAP, "quarot_rotate_out_channels.bias = weight",                       \
      quarot_rotate_out_channels(A.x, F32, 8, 4, 6, A.x, A.rot, 8, 0))                             \
    X(rout_bias_last, E_OVERLAP,                                                                   \
      "quarot_rotate_out_channels.bias starts at the weight's last element",                       \
      quarot_rotate_out_channels(A.x, F32, 8, 4, 6, A.x + 45, A.rot, 8, 0))                        \
    X(rout_rotation_null, E_NULL, "quarot_rotate_out_channels.rotation = NULL",                    \
      quarot_rotate_out_channels(A.x, F32, 8, 4, 6, A.y, NULL, 8, 0))                              \
    X(rout_rotation_nan, E_ARG, "quarot_rotate_out_channels.rotation has a NaN",                   \
      quarot_rotate_out_channels(A.x, F32, 8, 4, 6, A.y, A.rot_nan, 8, 0))                         \
    X(rout_rotation_n_zero, E_ARG, "quarot_rotate_out_channels.rotation_n = 0",                    \
      quarot_rotate_out_channels(A.x, F32, 8, 4, 6, A.y, A.rot, 0, 0))                             \
    X(rout_rotation_n_3, E_ARG,                                                                    \
      "quarot_rotate_out_channels.rotation_n = 3 (does not divide 8)",                             \
      quarot_rotate_out_channels(A.x, F32, 8, 4, 6, A.y, A.rot, 3, 0))                             \
    X(rout_rotation_n_overflow, E_OVERFLOW,                                                        \
      "quarot_rotate_out_channels.rotation_n: rotation_n^2 overflows",                             \
      quarot_rotate_out_channels(A.x, F32, 8, 4, 6, A.y, A.rot, SQRT_OVER, 0))                     \
    X(rout_flags_unknown, E_FLAGS, "quarot_rotate_out_channels.flags has an unknown bit (0x20)",   \
      quarot_rotate_out_channels(A.x, F32, 8, 4, 6, A.y, A.rot, 8, 0x20u))                         \
    X(rout_flags_pad, E_FLAGS, "quarot_rotate_out_channels.flags = QUAROT_FLAG_PAD_TRUNCATE",      \
      quarot_rotate_out_channels(A.x, F32, 8, 4, 6, A.y, A.rot, 8, QUAROT_FLAG_PAD_TRUNCATE))

/* quarot_rotate_in_channels_hadamard(weight, dtype, out_features, in_features, row_stride,
 * rotation_n, layout, signs, scale, flags); valid: (x, F32, 2, 8, 12, 8, MATMUL_HADU, signs,
 * 1/sqrt(8), 0) */
#define HADU QUAROT_LAYOUT_MATMUL_HADU
#define ROWS_ROTATE_IN_H(X)                                                                        \
    X(rinh_weight_null, E_NULL, "quarot_rotate_in_channels_hadamard.weight = NULL",                \
      quarot_rotate_in_channels_hadamard(NULL, F32, 2, 8, 12, 8, HADU, A.signs, S8, 0))            \
    X(rinh_dtype, E_DTYPE, "quarot_rotate_in_channels_hadamard.dtype = 2 (not a dtype)",           \
      quarot_rotate_in_channels_hadamard(A.x, 2, 2, 8, 12, 8, HADU, A.signs, S8, 0))               \
    X(rinh_out_overflow, E_OVERFLOW,                                                               \
      "quarot_rotate_in_channels_hadamard.out_features: W overflows",                              \
      quarot_rotate_in_channels_hadamard(A.x, F32, SZ_MAX / 8, 8, 12, 8, HADU, A.signs, S8, 0))    \
    X(rinh_in_not_multiple, E_ARG,                                                                 \
      "quarot_rotate_in_channels_hadamard.in_features = 12, not a multiple of rotation_n = 8",     \
      quarot_rotate_in_channels_hadamard(A.x, F32, 2, 12, 12, 8, HADU, A.signs, S8, 0))            \
    X(rinh_stride_small, E_STRIDE,                                                                 \
      "quarot_rotate_in_channels_hadamard.row_stride < in_features",                               \
      quarot_rotate_in_channels_hadamard(A.x, F32, 2, 8, 7, 8, HADU, A.signs, S8, 0))              \
    X(rinh_stride_overflow, E_OVERFLOW,                                                            \
      "quarot_rotate_in_channels_hadamard.row_stride: W overflows",                                \
      quarot_rotate_in_channels_hadamard(A.x, F32, 2, 8, SZ_MAX / 2, 8, HADU, A.signs, S8, 0))     \
    X(rinh_rotation_n_zero, E_ARG, "quarot_rotate_in_channels_hadamard.rotation_n = 0",            \
      quarot_rotate_in_channels_hadamard(A.x, F32, 2, 8, 12, 0, HADU, A.signs, S8, 0))             \
    X(rinh_rotation_n_3, E_ARG,                                                                    \
      "quarot_rotate_in_channels_hadamard.rotation_n = 3 (does not divide 8)",                     \
      quarot_rotate_in_channels_hadamard(A.x, F32, 2, 8, 12, 3, HADU, A.signs, S8, 0))             \
    X(rinh_rotation_n_11, E_SIZE,                                                                  \
      "quarot_rotate_in_channels_hadamard.rotation_n = 11 (divides 22, no Hadamard matrix)",       \
      quarot_rotate_in_channels_hadamard(A.x, F32, 2, 22, 24, 11, HADU, NULL, S8, 0))              \
    X(rinh_layout, E_ARG, "quarot_rotate_in_channels_hadamard.layout = 3",                         \
      quarot_rotate_in_channels_hadamard(A.x, F32, 2, 8, 12, 8, 3, A.signs, S8, 0))                \
    X(rinh_layout_neg, E_ARG, "quarot_rotate_in_channels_hadamard.layout = -1",                    \
      quarot_rotate_in_channels_hadamard(A.x, F32, 2, 8, 12, 8, -1, A.signs, S8, 0))               \
    X(rinh_signs_zero, E_ARG, "quarot_rotate_in_channels_hadamard.signs has a 0",                  \
      quarot_rotate_in_channels_hadamard(A.x, F32, 2, 8, 12, 8, HADU, A.signs_zero, S8, 0))        \
    X(rinh_signs_two, E_ARG, "quarot_rotate_in_channels_hadamard.signs has a 2",                   \
      quarot_rotate_in_channels_hadamard(A.x, F32, 2, 8, 12, 8, HADU, A.signs_two, S8, 0))         \
    X(rinh_scale_nan, E_ARG, "quarot_rotate_in_channels_hadamard.scale = NaN",                     \
      quarot_rotate_in_channels_hadamard(A.x, F32, 2, 8, 12, 8, HADU, A.signs, NAN, 0))            \
    X(rinh_scale_inf, E_ARG, "quarot_rotate_in_channels_hadamard.scale = +Inf",                    \
      quarot_rotate_in_channels_hadamard(A.x, F32, 2, 8, 12, 8, HADU, A.signs, INFINITY, 0))       \
    X(rinh_scale_zero, E_ARG, "quarot_rotate_in_channels_hadamard.scale = 0",                      \
      quarot_rotate_in_channels_hadamard(A.x, F32, 2, 8, 12, 8, HADU, A.signs, 0.0, 0))            \
    X(rinh_flags_f32acc, E_FLAGS,                                                                  \
      "quarot_rotate_in_channels_hadamard.flags = QUAROT_FLAG_F32_ACCUMULATE",                     \
      quarot_rotate_in_channels_hadamard(A.x, F32, 2, 8, 12, 8, HADU, A.signs, S8,                 \
                                         QUAROT_FLAG_F32_ACCUMULATE))                              \
    X(rinh_flags_transpose, E_FLAGS,                                                               \
      "quarot_rotate_in_channels_hadamard.flags = QUAROT_FLAG_TRANSPOSE_K",                        \
      quarot_rotate_in_channels_hadamard(A.x, F32, 2, 8, 12, 8, HADU, A.signs, S8,                 \
                                         QUAROT_FLAG_TRANSPOSE_K))                                 \
    X(rinh_flags_unknown, E_FLAGS,                                                                 \
      "quarot_rotate_in_channels_hadamard.flags has an unknown bit (0x20)",                        \
      quarot_rotate_in_channels_hadamard(A.x, F32, 2, 8, 12, 8, HADU, A.signs, S8, 0x20u))

/* quarot_rotate_out_channels_hadamard(weight, dtype, out_features, in_features, row_stride,
 * bias, rotation_n, layout, signs, scale, flags); valid: (x, F32, 8, 4, 6, y, 8,
 * MATMUL_HADU_T, signs, 1/sqrt(8), 0) */
#define HADT QUAROT_LAYOUT_MATMUL_HADU_T
#define ROWS_ROTATE_OUT_H(X)                                                                       \
    X(routh_weight_null, E_NULL, "quarot_rotate_out_channels_hadamard.weight = NULL",              \
      quarot_rotate_out_channels_hadamard(NULL, F32, 8, 4, 6, A.y, 8, HADT, A.signs, S8, 0))       \
    X(routh_dtype, E_DTYPE, "quarot_rotate_out_channels_hadamard.dtype = -1",                      \
      quarot_rotate_out_channels_hadamard(A.x, -1, 8, 4, 6, A.y, 8, HADT, A.signs, S8, 0))         \
    X(routh_out_overflow, E_OVERFLOW,                                                              \
      "quarot_rotate_out_channels_hadamard.out_features: W overflows",                             \
      quarot_rotate_out_channels_hadamard(A.x, F32, SZ_MAX / 4 + 1, 4, 6, NULL, 8, HADT,           \
                                          A.signs, S8, 0))                                         \
    X(routh_out_not_multiple, E_ARG,                                                               \
      "quarot_rotate_out_channels_hadamard.out_features = 12, not a multiple of rotation_n = 8",   \
      quarot_rotate_out_channels_hadamard(A.x, F32, 12, 4, 6, A.y, 8, HADT, A.signs, S8, 0))       \
    X(routh_stride_small, E_STRIDE,                                                                \
      "quarot_rotate_out_channels_hadamard.row_stride < in_features",                              \
      quarot_rotate_out_channels_hadamard(A.x, F32, 8, 4, 3, A.y, 8, HADT, A.signs, S8, 0))        \
    X(routh_bias_overlap, E_OVERLAP,                                                               \
      "quarot_rotate_out_channels_hadamard.bias overlaps the weight",                              \
      quarot_rotate_out_channels_hadamard(A.x, F32, 8, 4, 6, A.x + 40, 8, HADT, A.signs, S8,       \
                                          0))                                                      \
    X(routh_rotation_n_zero, E_ARG, "quarot_rotate_out_channels_hadamard.rotation_n = 0",          \
      quarot_rotate_out_channels_hadamard(A.x, F32, 8, 4, 6, A.y, 0, HADT, A.signs, S8, 0))        \
    X(routh_rotation_n_3, E_ARG,                                                                   \
      "quarot_rotate_out_channels_hadamard.rotation_n = 3 (does not divide 8)",                    \
      quarot_rotate_out_channels_hadamard(A.x, F32, 8, 4, 6, A.y, 3, HADT, A.signs, S8, 0))        \
    X(routh_rotation_n_11, E_SIZE,                                                                 \
      "quarot_rotate_out_channels_hadamard.rotation_n = 11 (divides 22, no Hadamard matrix)",      \
      quarot_rotate_out_channels_hadamard(A.x, F32, 22, 2, 2, NULL, 11, HADT, NULL, S8, 0))        \
    X(routh_layout, E_ARG, "quarot_rotate_out_channels_hadamard.layout = 3",                       \
      quarot_rotate_out_channels_hadamard(A.x, F32, 8, 4, 6, A.y, 8, 3, A.signs, S8, 0))           \
    X(routh_signs_two, E_ARG, "quarot_rotate_out_channels_hadamard.signs has a 2",                 \
      quarot_rotate_out_channels_hadamard(A.x, F32, 8, 4, 6, A.y, 8, HADT, A.signs_two, S8, 0))    \
    X(routh_scale_ninf, E_ARG, "quarot_rotate_out_channels_hadamard.scale = -Inf",                 \
      quarot_rotate_out_channels_hadamard(A.x, F32, 8, 4, 6, A.y, 8, HADT, A.signs, -INFINITY,     \
                                          0))                                                      \
    X(routh_scale_zero, E_ARG, "quarot_rotate_out_channels_hadamard.scale = 0",                    \
      quarot_rotate_out_channels_hadamard(A.x, F32, 8, 4, 6, A.y, 8, HADT, A.signs, 0.0, 0))       \
    X(routh_flags_f32acc, E_FLAGS,                                                                 \
      "quarot_rotate_out_channels_hadamard.flags = QUAROT_FLAG_F32_ACCUMULATE",                    \
      quarot_rotate_out_channels_hadamard(A.x, F32, 8, 4, 6, A.y, 8, HADT, A.signs, S8,            \
                                          QUAROT_FLAG_F32_ACCUMULATE))                             \
    X(routh_flags_unknown, E_FLAGS,                                                                \
      "quarot_rotate_out_channels_hadamard.flags has an unknown bit (0x20)",                       \
      quarot_rotate_out_channels_hadamard(A.x, F32, 8, 4, 6, A.y, 8, HADT, A.signs, S8, 0x20u))

/* quarot_hadamard_matrix(out, out_len, n, layout, signs, scale); valid: (mat, 64, 8,
 * KRON_POW2_K, signs, 1/sqrt(8)); quarot_random_signs(out, n, seed), valid (i8, 8, 1);
 * quarot_random_orthogonal(out, out_len, n, seed), valid (mat, 64, 8, 1) */
#define KRON QUAROT_LAYOUT_KRON_POW2_K
#define ROWS_MATRICES(X)                                                                           \
    X(hmat_out_null, E_NULL, "quarot_hadamard_matrix.out = NULL",                                  \
      quarot_hadamard_matrix(NULL, 64, 8, KRON, A.signs, S8))                                      \
    X(hmat_out_len, E_ARG, "quarot_hadamard_matrix.out_len = n * n - 1",                           \
      quarot_hadamard_matrix(A.mat, 63, 8, KRON, A.signs, S8))                                     \
    X(hmat_out_len_zero, E_ARG, "quarot_hadamard_matrix.out_len = 0",                              \
      quarot_hadamard_matrix(A.mat, 0, 8, KRON, A.signs, S8))                                      \
    X(hmat_n_zero, E_SIZE, "quarot_hadamard_matrix.n = 0",                                         \
      quarot_hadamard_matrix(A.mat, 64, 0, KRON, A.signs, S8))                                     \
    X(hmat_n_11, E_SIZE, "quarot_hadamard_matrix.n = 11 (no Hadamard matrix)",                     \
      quarot_hadamard_matrix(A.mat, 121, 11, KRON, NULL, S8))                                      \
    X(hmat_n_overflow, E_OVERFLOW, "quarot_hadamard_matrix.n: n * n overflows",                    \
      quarot_hadamard_matrix(A.mat, 64, SQRT_OVER, KRON, NULL, S8))                                \
    X(hmat_layout, E_ARG, "quarot_hadamard_matrix.layout = 3",                                     \
      quarot_hadamard_matrix(A.mat, 64, 8, 3, A.signs, S8))                                        \
    X(hmat_layout_min, E_ARG, "quarot_hadamard_matrix.layout = INT32_MIN",                         \
      quarot_hadamard_matrix(A.mat, 64, 8, I32_MIN, A.signs, S8))                                  \
    X(hmat_signs_zero, E_ARG, "quarot_hadamard_matrix.signs has a 0",                              \
      quarot_hadamard_matrix(A.mat, 64, 8, KRON, A.signs_zero, S8))                                \
    X(hmat_scale_nan, E_ARG, "quarot_hadamard_matrix.scale = NaN",                                 \
      quarot_hadamard_matrix(A.mat, 64, 8, KRON, A.signs, NAN))                                    \
    X(hmat_scale_inf, E_ARG, "quarot_hadamard_matrix.scale = +Inf",                                \
      quarot_hadamard_matrix(A.mat, 64, 8, KRON, A.signs, INFINITY))                               \
    X(hmat_scale_zero, E_ARG, "quarot_hadamard_matrix.scale = 0",                                  \
      quarot_hadamard_matrix(A.mat, 64, 8, KRON, A.signs, 0.0))                                    \
    X(signs_out_null, E_NULL, "quarot_random_signs.out = NULL with n > 0",                         \
      quarot_random_signs(NULL, 8, 1))                                                             \
    X(signs_empty_null, QUAROT_OK, "quarot_random_signs.out = NULL with n = 0 (valid)",            \
      quarot_random_signs(NULL, 0, 1))                                                             \
    X(orth_out_null, E_NULL, "quarot_random_orthogonal.out = NULL",                                \
      quarot_random_orthogonal(NULL, 64, 8, 1))                                                    \
    X(orth_out_len, E_ARG, "quarot_random_orthogonal.out_len = n * n - 1",                         \
      quarot_random_orthogonal(A.mat, 63, 8, 1))                                                   \
    X(orth_n_zero, E_ARG, "quarot_random_orthogonal.n = 0",                                        \
      quarot_random_orthogonal(A.mat, 64, 0, 1))                                                   \
    X(orth_n_overflow, E_OVERFLOW, "quarot_random_orthogonal.n: n * n overflows",                  \
      quarot_random_orthogonal(A.mat, 64, SQRT_OVER, 1))

/* quarot_r4_wrapper_new(n, block_size, dtype, flags, quant, op, user_data, out); valid:
 * (8, 0, F32, 0, FAKE4, op_ok, NULL, &r4_out) */
#define QF QUAROT_QUANT_FAKE
#define ROWS_R4_NEW(X)                                                                             \
    X(r4new_n_zero, E_SIZE, "quarot_r4_wrapper_new.n = 0",                                         \
      quarot_r4_wrapper_new(0, 0, F32, 0, FAKE4, op_ok, NULL, &r4_out))                            \
    X(r4new_n_odd, E_SIZE, "quarot_r4_wrapper_new.n = 11 (no Hadamard matrix)",                    \
      quarot_r4_wrapper_new(11, 0, F32, 0, FAKE4, op_ok, NULL, &r4_out))                           \
    X(r4new_n_even, E_SIZE, "quarot_r4_wrapper_new.n = 22 (no Hadamard matrix)",                   \
      quarot_r4_wrapper_new(22, 0, F32, 0, FAKE4, op_ok, NULL, &r4_out))                           \
    X(r4new_block_3, E_ARG, "quarot_r4_wrapper_new.block_size = 3 (does not divide n = 8)",        \
      quarot_r4_wrapper_new(8, 3, F32, 0, FAKE4, op_ok, NULL, &r4_out))                            \
    X(r4new_block_16, E_ARG, "quarot_r4_wrapper_new.block_size = 16 (> n = 8)",                    \
      quarot_r4_wrapper_new(8, 16, F32, 0, FAKE4, op_ok, NULL, &r4_out))                           \
    X(r4new_block_11, E_SIZE,                                                                      \
      "quarot_r4_wrapper_new.block_size = 11 (divides n = 88, no Hadamard matrix)",                \
      quarot_r4_wrapper_new(88, 11, F32, 0, FAKE4, op_ok, NULL, &r4_out))                          \
    X(r4new_dtype, E_DTYPE, "quarot_r4_wrapper_new.dtype = 2 (not a dtype)",                       \
      quarot_r4_wrapper_new(8, 0, 2, 0, FAKE4, op_ok, NULL, &r4_out))                              \
    X(r4new_flags_parallel, E_FLAGS, "quarot_r4_wrapper_new.flags = QUAROT_FLAG_PARALLEL",         \
      quarot_r4_wrapper_new(8, 0, F32, QUAROT_FLAG_PARALLEL, FAKE4, op_ok, NULL, &r4_out))         \
    X(r4new_flags_unknown, E_FLAGS, "quarot_r4_wrapper_new.flags has an unknown bit (0x20)",       \
      quarot_r4_wrapper_new(8, 0, F32, 0x20u, FAKE4, op_ok, NULL, &r4_out))                        \
    X(r4new_flags_f32acc, E_FLAGS, "quarot_r4_wrapper_new.flags = QUAROT_FLAG_F32_ACCUMULATE",     \
      quarot_r4_wrapper_new(8, 0, F32, QUAROT_FLAG_F32_ACCUMULATE, FAKE4, op_ok, NULL,             \
                            &r4_out))                                                              \
    X(r4new_flags_block_pad, E_FLAGS,                                                              \
      "quarot_r4_wrapper_new.flags = QUAROT_FLAG_BLOCK_DIAGONAL | QUAROT_FLAG_PAD_TRUNCATE",       \
      quarot_r4_wrapper_new(8, 0, F32, BLOCK_PAD, FAKE4, op_ok, NULL, &r4_out))                    \
    X(r4new_quant_kind, E_ARG, "quarot_r4_wrapper_new.quant->kind = 4 (unknown)",                  \
      quarot_r4_wrapper_new(8, 0, F32, 0, quant(4, 4, 0, 1.0f, NULL), op_ok, NULL, &r4_out))       \
    X(r4new_quant_bits_1, E_ARG, "quarot_r4_wrapper_new.quant->bits = 1",                          \
      quarot_r4_wrapper_new(8, 0, F32, 0, quant(QF, 1, 0, 1.0f, NULL), op_ok, NULL, &r4_out))      \
    X(r4new_quant_bits_9, E_ARG, "quarot_r4_wrapper_new.quant->bits = 9",                          \
      quarot_r4_wrapper_new(8, 0, F32, 0, quant(QF, 9, 0, 1.0f, NULL), op_ok, NULL, &r4_out))      \
    X(r4new_quant_bits_0_real, E_ARG, "quarot_r4_wrapper_new.quant->bits = 0 (real)",              \
      quarot_r4_wrapper_new(8, 0, F32, 0, quant(QUAROT_QUANT_REAL, 0, 0, 1.0f, NULL), op_ok,       \
                            NULL, &r4_out))                                                        \
    X(r4new_quant_clip_zero, E_ARG, "quarot_r4_wrapper_new.quant->clip_ratio = 0",                 \
      quarot_r4_wrapper_new(8, 0, F32, 0, quant(QF, 4, 0, 0.0f, NULL), op_ok, NULL, &r4_out))      \
    X(r4new_quant_clip_big, E_ARG, "quarot_r4_wrapper_new.quant->clip_ratio = 1.5",                \
      quarot_r4_wrapper_new(8, 0, F32, 0, quant(QF, 4, 0, 1.5f, NULL), op_ok, NULL, &r4_out))      \
    X(r4new_quant_clip_neg, E_ARG, "quarot_r4_wrapper_new.quant->clip_ratio = -0.5",               \
      quarot_r4_wrapper_new(8, 0, F32, 0, quant(QF, 4, 0, -0.5f, NULL), op_ok, NULL, &r4_out))     \
    X(r4new_quant_clip_nan, E_ARG, "quarot_r4_wrapper_new.quant->clip_ratio = NaN",                \
      quarot_r4_wrapper_new(8, 0, F32, 0, quant(QF, 4, 0, NAN, NULL), op_ok, NULL, &r4_out))       \
    X(r4new_quant_group_3, E_ARG,                                                                  \
      "quarot_r4_wrapper_new.quant->group_size = 3 (does not divide 8)",                           \
      quarot_r4_wrapper_new(8, 0, F32, 0, quant(QF, 4, 3, 1.0f, NULL), op_ok, NULL, &r4_out))      \
    X(r4new_quant_group_16, E_ARG, "quarot_r4_wrapper_new.quant->group_size = 16 (> n = 8)",       \
      quarot_r4_wrapper_new(8, 0, F32, 0, quant(QF, 4, 16, 1.0f, NULL), op_ok, NULL, &r4_out))     \
    X(r4new_quant_custom_null, E_NULL,                                                             \
      "quarot_r4_wrapper_new.quant->custom = NULL with QUAROT_QUANT_CUSTOM",                       \
      quarot_r4_wrapper_new(8, 0, F32, 0, quant(QUAROT_QUANT_CUSTOM, 4, 0, 1.0f, NULL), op_ok,     \
                            NULL, &r4_out))                                                        \
    X(r4new_op_null, E_NULL, "quarot_r4_wrapper_new.op = NULL",                                    \
      quarot_r4_wrapper_new(8, 0, F32, 0, FAKE4, NULL, NULL, &r4_out))                             \
    X(r4new_out_null, E_NULL, "quarot_r4_wrapper_new.out = NULL",                                  \
      quarot_r4_wrapper_new(8, 0, F32, 0, FAKE4, op_ok, NULL, NULL))

/* quarot_r4_wrapper_forward(w, x, rows, x_row_stride, out, flags); valid: (r4, x, 2, 12, y,
 * 0); quarot_r4_wrapper_free(NULL); quarot_last_callback_code() */
#define ROWS_R4_FORWARD(X)                                                                         \
    X(r4fwd_w_null, E_NULL, "quarot_r4_wrapper_forward.w = NULL",                                  \
      quarot_r4_wrapper_forward(NULL, A.x, 2, 12, A.y, 0))                                         \
    X(r4fwd_x_null, E_NULL, "quarot_r4_wrapper_forward.x = NULL with rows > 0",                    \
      quarot_r4_wrapper_forward(r4, NULL, 2, 12, A.y, 0))                                          \
    X(r4fwd_rows_overflow, E_OVERFLOW, "quarot_r4_wrapper_forward.rows: rows * stride overflows",  \
      quarot_r4_wrapper_forward(r4, A.x, SZ_MAX / 8, 12, A.y, 0))                                  \
    X(r4fwd_rows_bytes, E_OVERFLOW, "quarot_r4_wrapper_forward.rows: the rows' bytes overflow",    \
      quarot_r4_wrapper_forward(r4, A.x, SZ_MAX / 48, 12, A.y, 0))                                 \
    X(r4fwd_stride_small, E_STRIDE, "quarot_r4_wrapper_forward.x_row_stride < n",                  \
      quarot_r4_wrapper_forward(r4, A.x, 2, 7, A.y, 0))                                            \
    X(r4fwd_stride_overflow, E_OVERFLOW, "quarot_r4_wrapper_forward.x_row_stride: rows overflow",  \
      quarot_r4_wrapper_forward(r4, A.x, 2, SZ_MAX / 2, A.y, 0))                                   \
    X(r4fwd_flags_2, E_FLAGS, "quarot_r4_wrapper_forward.flags has an unknown bit (2)",            \
      quarot_r4_wrapper_forward(r4, A.x, 2, 12, A.y, 2u))                                          \
    X(r4fwd_flags_parallel, E_FLAGS, "quarot_r4_wrapper_forward.flags = QUAROT_FLAG_PARALLEL",     \
      quarot_r4_wrapper_forward(r4, A.x, 2, 12, A.y, QUAROT_FLAG_PARALLEL))                        \
    X(r4fwd_flags_high, E_FLAGS,                                                                   \
      "quarot_r4_wrapper_forward.flags has an unknown bit (0x80000000)",                           \
      quarot_r4_wrapper_forward(r4, A.x, 2, 12, A.y, 0x80000000u))                                 \
    X(r4fwd_empty_null, QUAROT_OK, "quarot_r4_wrapper_forward.x = NULL with rows = 0 (valid)",     \
      quarot_r4_wrapper_forward(r4, NULL, 0, 12, A.y, 0))                                          \
    X(r4fwd_op_fails, E_CALLBACK, "quarot_r4_wrapper_forward.w: its op returns 42",                \
      quarot_r4_wrapper_forward(r4_op_fails, A.x, 2, 12, A.y, 0))                                  \
    X(callback_code_42, DOCUMENTED,                                                                \
      "quarot_last_callback_code.result = 42 after the failing op (and later successes)",          \
      expect_int(quarot_last_callback_code(), 42))                                                 \
    X(r4fwd_quant_fails, E_CALLBACK, "quarot_r4_wrapper_forward.w: its quantizer returns 43",      \
      quarot_r4_wrapper_forward(r4_quant_fails, A.x, 2, 12, A.y, 0))                               \
    X(callback_code_43, DOCUMENTED,                                                                \
      "quarot_last_callback_code.result = 43 after the failing quantizer",                         \
      expect_int(quarot_last_callback_code(), 43))                                                 \
    X(r4_free_null, DOCUMENTED, "quarot_r4_wrapper_free.w = NULL is a no-op",                      \
      (quarot_r4_wrapper_free(NULL), DOCUMENTED))

/* quarot_qk_rotation_new(head_dim, dtype, flags, rope, user_data, out); valid: (8, F32, 0,
 * rope_ok, NULL, &qk_out) */
#define ROWS_QK_NEW(X)                                                                             \
    X(qknew_head_dim_zero, E_SIZE, "quarot_qk_rotation_new.head_dim = 0",                          \
      quarot_qk_rotation_new(0, F32, 0, rope_ok, NULL, &qk_out))                                   \
    X(qknew_head_dim_11, E_SIZE, "quarot_qk_rotation_new.head_dim = 11 (no Hadamard matrix)",      \
      quarot_qk_rotation_new(11, F32, 0, rope_ok, NULL, &qk_out))                                  \
    X(qknew_dtype, E_DTYPE, "quarot_qk_rotation_new.dtype = 2 (not a dtype)",                      \
      quarot_qk_rotation_new(8, 2, 0, rope_ok, NULL, &qk_out))                                     \
    X(qknew_dtype_max, E_DTYPE, "quarot_qk_rotation_new.dtype = INT32_MAX",                        \
      quarot_qk_rotation_new(8, I32_MAX, 0, rope_ok, NULL, &qk_out))                               \
    X(qknew_flags_parallel, E_FLAGS, "quarot_qk_rotation_new.flags = QUAROT_FLAG_PARALLEL",        \
      quarot_qk_rotation_new(8, F32, QUAROT_FLAG_PARALLEL, rope_ok, NULL, &qk_out))                \
    X(qknew_flags_unknown, E_FLAGS, "quarot_qk_rotation_new.flags has an unknown bit (0x20)",      \
      quarot_qk_rotation_new(8, F32, 0x20u, rope_ok, NULL, &qk_out))                               \
    X(qknew_flags_f32acc, E_FLAGS, "quarot_qk_rotation_new.flags = QUAROT_FLAG_F32_ACCUMULATE",    \
      quarot_qk_rotation_new(8, F32, QUAROT_FLAG_F32_ACCUMULATE, rope_ok, NULL, &qk_out))          \
    X(qknew_out_null, E_NULL, "quarot_qk_rotation_new.out = NULL",                                 \
      quarot_qk_rotation_new(8, F32, 0, rope_ok, NULL, NULL))

/* quarot_qk_rotation_forward(h, q, k, shape, call_arg); valid: (qk, x, y, SHAPE_OK, NULL) */
#define ROWS_QK_FORWARD(X)                                                                         \
    X(qkfwd_h_null, E_NULL, "quarot_qk_rotation_forward.h = NULL",                                 \
      quarot_qk_rotation_forward(NULL, A.x, A.y, SHAPE_OK, NULL))                                  \
    X(qkfwd_q_null, E_NULL, "quarot_qk_rotation_forward.q = NULL with tokens > 0",                 \
      quarot_qk_rotation_forward(qk, NULL, A.y, SHAPE_OK, NULL))                                   \
    X(qkfwd_k_null, E_NULL, "quarot_qk_rotation_forward.k = NULL with tokens > 0",                 \
      quarot_qk_rotation_forward(qk, A.x, NULL, SHAPE_OK, NULL))                                   \
    X(qkfwd_shape_null, E_NULL, "quarot_qk_rotation_forward.shape = NULL",                         \
      quarot_qk_rotation_forward(qk, A.x, A.y, NULL, NULL))                                        \
    X(qkfwd_head_dim_16, E_ARG, "quarot_qk_rotation_forward.shape->head_dim = 16 (handle: 8)",     \
      quarot_qk_rotation_forward(qk, A.x, A.y, shape(2, 3, 2, 16, 30, 9, 20, 9), NULL))            \
    X(qkfwd_head_dim_4, E_ARG, "quarot_qk_rotation_forward.shape->head_dim = 4 (handle: 8)",       \
      quarot_qk_rotation_forward(qk, A.x, A.y, shape(2, 3, 2, 4, 30, 9, 20, 9), NULL))             \
    X(qkfwd_n_heads_zero, E_ARG, "quarot_qk_rotation_forward.shape->n_heads = 0",                  \
      quarot_qk_rotation_forward(qk, A.x, A.y, shape(2, 0, 2, 8, 30, 9, 20, 9), NULL))             \
    X(qkfwd_n_kv_heads_zero, E_ARG, "quarot_qk_rotation_forward.shape->n_kv_heads = 0",            \
      quarot_qk_rotation_forward(qk, A.x, A.y, shape(2, 3, 0, 8, 30, 9, 20, 9), NULL))             \
    X(qkfwd_n_heads_zero_no_tokens, E_ARG,                                                         \
      "quarot_qk_rotation_forward.shape->n_heads = 0 with tokens = 0 (still checked)",             \
      quarot_qk_rotation_forward(qk, A.x, A.y, shape(0, 0, 2, 8, 30, 9, 20, 9), NULL))             \
    X(qkfwd_q_head_stride, E_STRIDE,                                                               \
      "quarot_qk_rotation_forward.shape->q_head_stride < head_dim (q heads overlap)",              \
      quarot_qk_rotation_forward(qk, A.x, A.y, shape(2, 3, 2, 8, 30, 4, 20, 9), NULL))             \
    X(qkfwd_q_token_stride, E_STRIDE,                                                              \
      "quarot_qk_rotation_forward.shape->q_token_stride = 4 (q tokens overlap)",                   \
      quarot_qk_rotation_forward(qk, A.x, A.y, shape(2, 3, 2, 8, 4, 9, 20, 9), NULL))              \
    X(qkfwd_q_head_major, E_STRIDE,                                                                \
      "quarot_qk_rotation_forward.shape->q strides 8 / 10 (head-major, heads overlap)",            \
      quarot_qk_rotation_forward(qk, A.x, A.y, shape(2, 3, 2, 8, 8, 10, 20, 9), NULL))             \
    X(qkfwd_k_head_stride, E_STRIDE,                                                               \
      "quarot_qk_rotation_forward.shape->k_head_stride < head_dim (k heads overlap)",              \
      quarot_qk_rotation_forward(qk, A.x, A.y, shape(2, 3, 2, 8, 30, 9, 20, 4), NULL))             \
    X(qkfwd_k_token_stride, E_STRIDE,                                                              \
      "quarot_qk_rotation_forward.shape->k_token_stride = 4 (k tokens overlap)",                   \
      quarot_qk_rotation_forward(qk, A.x, A.y, shape(2, 3, 2, 8, 30, 9, 4, 9), NULL))              \
    X(qkfwd_tokens_overflow, E_OVERFLOW,                                                           \
      "quarot_qk_rotation_forward.shape->tokens: the tokens overflow",                             \
      quarot_qk_rotation_forward(qk, A.x, A.y, shape(SZ_MAX / 4, 3, 2, 8, 30, 9, 20, 9), NULL))    \
    X(qkfwd_q_token_stride_overflow, E_OVERFLOW,                                                   \
      "quarot_qk_rotation_forward.shape->q_token_stride: q overflows",                             \
      quarot_qk_rotation_forward(qk, A.x, A.y, shape(2, 3, 2, 8, SZ_MAX / 2, 9, 20, 9), NULL))     \
    X(qkfwd_k_same_as_q, E_OVERLAP, "quarot_qk_rotation_forward.k = q",                            \
      quarot_qk_rotation_forward(qk, A.x, A.x, SHAPE_OK, NULL))                                    \
    X(qkfwd_k_inside_q, E_OVERLAP, "quarot_qk_rotation_forward.k = q + 50 (overlaps q's end)",     \
      quarot_qk_rotation_forward(qk, A.x, A.x + 50, SHAPE_OK, NULL))                               \
    X(qkfwd_empty_null, QUAROT_OK,                                                                 \
      "quarot_qk_rotation_forward.q = k = NULL with tokens = 0 (valid)",                           \
      quarot_qk_rotation_forward(qk, NULL, NULL, shape(0, 3, 2, 8, 30, 9, 20, 9), NULL))           \
    X(qkfwd_rope_fails, E_CALLBACK, "quarot_qk_rotation_forward.h: its RoPE returns 7",            \
      quarot_qk_rotation_forward(qk_rope_fails, A.x, A.y, SHAPE_OK, NULL))                         \
    X(callback_code_7, DOCUMENTED, "quarot_last_callback_code.result = 7 after the failing RoPE",  \
      expect_int(quarot_last_callback_code(), 7))                                                  \
    X(qk_free_null, DOCUMENTED, "quarot_qk_rotation_free.h = NULL is a no-op",                     \
      (quarot_qk_rotation_free(NULL), DOCUMENTED))

/* quarot_quantize(data, dtype, rows, n, row_stride, config, codes, scales, zeros); valid:
 * (x, F32, 2, 8, 12, REAL8, codes, scales, zeros) */
#define QR QUAROT_QUANT_REAL
#define ROWS_QUANTIZE(X)                                                                           \
    X(quant_data_null, E_NULL, "quarot_quantize.data = NULL with rows > 0",                        \
      quarot_quantize(NULL, F32, 2, 8, 12, REAL8, A.codes, A.scales, A.zeros))                     \
    X(quant_dtype, E_DTYPE, "quarot_quantize.dtype = 2 (not a dtype)",                             \
      quarot_quantize(A.x, 2, 2, 8, 12, REAL8, A.codes, A.scales, A.zeros))                        \
    X(quant_rows_overflow, E_OVERFLOW, "quarot_quantize.rows: rows * row_stride overflows",        \
      quarot_quantize(A.x, F32, SZ_MAX / 8, 8, 12, REAL8, A.codes, A.scales, A.zeros))             \
    X(quant_n_zero, E_ARG, "quarot_quantize.n = 0",                                                \
      quarot_quantize(A.x, F32, 2, 0, 12, REAL8, A.codes, A.scales, A.zeros))                      \
    X(quant_stride_small, E_STRIDE, "quarot_quantize.row_stride < n",                              \
      quarot_quantize(A.x, F32, 2, 8, 7, REAL8, A.codes, A.scales, A.zeros))                       \
    X(quant_stride_overflow, E_OVERFLOW, "quarot_quantize.row_stride: the rows overflow",          \
      quarot_quantize(A.x, F32, 2, 8, SZ_MAX / 2, REAL8, A.codes, A.scales, A.zeros))              \
    X(quant_config_null, E_NULL, "quarot_quantize.config = NULL",                                  \
      quarot_quantize(A.x, F32, 2, 8, 12, NULL, A.codes, A.scales, A.zeros))                       \
    X(quant_kind_none, E_ARG, "quarot_quantize.config->kind = QUAROT_QUANT_NONE",                  \
      quarot_quantize(A.x, F32, 2, 8, 12, quant(QUAROT_QUANT_NONE, 8, 4, 1.0f, NULL), A.codes,     \
                      A.scales, A.zeros))                                                          \
    X(quant_kind_custom, E_ARG, "quarot_quantize.config->kind = QUAROT_QUANT_CUSTOM",              \
      quarot_quantize(A.x, F32, 2, 8, 12, quant(QUAROT_QUANT_CUSTOM, 8, 4, 1.0f, quant_fail),      \
                      A.codes, A.scales, A.zeros))                                                 \
    X(quant_kind_unknown, E_ARG, "quarot_quantize.config->kind = 4 (unknown)",                     \
      quarot_quantize(A.x, F32, 2, 8, 12, quant(4, 8, 4, 1.0f, NULL), A.codes, A.scales,           \
                      A.zeros))                                                                    \
    X(quant_bits_1, E_ARG, "quarot_quantize.config->bits = 1",                                     \
      quarot_quantize(A.x, F32, 2, 8, 12, quant(QR, 1, 4, 1.0f, NULL), A.codes, A.scales,          \
                      A.zeros))                                                                    \
    X(quant_bits_9, E_ARG, "quarot_quantize.config->bits = 9",                                     \
      quarot_quantize(A.x, F32, 2, 8, 12, quant(QR, 9, 4, 1.0f, NULL), A.codes, A.scales,          \
                      A.zeros))                                                                    \
    X(quant_bits_9_fake, E_ARG, "quarot_quantize.config->bits = 9 (fake)",                         \
      quarot_quantize(A.x, F32, 2, 8, 12, quant(QF, 9, 4, 1.0f, NULL), NULL, NULL, NULL))          \
    X(quant_clip_zero, E_ARG, "quarot_quantize.config->clip_ratio = 0",                            \
      quarot_quantize(A.x, F32, 2, 8, 12, quant(QR, 8, 4, 0.0f, NULL), A.codes, A.scales,          \
                      A.zeros))                                                                    \
    X(quant_clip_nan, E_ARG, "quarot_quantize.config->clip_ratio = NaN",                           \
      quarot_quantize(A.x, F32, 2, 8, 12, quant(QR, 8, 4, NAN, NULL), A.codes, A.scales,           \
                      A.zeros))                                                                    \
    X(quant_clip_big, E_ARG, "quarot_quantize.config->clip_ratio = 1.5",                           \
      quarot_quantize(A.x, F32, 2, 8, 12, quant(QR, 8, 4, 1.5f, NULL), A.codes, A.scales,          \
                      A.zeros))                                                                    \
    X(quant_group_3, E_ARG, "quarot_quantize.config->group_size = 3 (does not divide 8)",          \
      quarot_quantize(A.x, F32, 2, 8, 12, quant(QR, 8, 3, 1.0f, NULL), A.codes, A.scales,          \
                      A.zeros))                                                                    \
    X(quant_group_16, E_ARG, "quarot_quantize.config->group_size = 16 (> n = 8)",                  \
      quarot_quantize(A.x, F32, 2, 8, 12, quant(QR, 8, 16, 1.0f, NULL), A.codes, A.scales,         \
                      A.zeros))                                                                    \
    X(quant_codes_null, E_NULL, "quarot_quantize.codes = NULL (real)",                             \
      quarot_quantize(A.x, F32, 2, 8, 12, REAL8, NULL, A.scales, A.zeros))                         \
    X(quant_scales_null, E_NULL, "quarot_quantize.scales = NULL (real)",                           \
      quarot_quantize(A.x, F32, 2, 8, 12, REAL8, A.codes, NULL, A.zeros))                          \
    X(quant_zeros_null, E_NULL, "quarot_quantize.zeros = NULL (real)",                             \
      quarot_quantize(A.x, F32, 2, 8, 12, REAL8, A.codes, A.scales, NULL))                         \
    X(quant_empty_null, QUAROT_OK, "quarot_quantize.data = NULL with rows = 0 (valid)",            \
      quarot_quantize(NULL, F32, 0, 8, 12, REAL8, NULL, NULL, NULL))                               \
    X(quant_empty_bits, E_ARG, "quarot_quantize.config->bits = 9 with rows = 0 (still checked)",   \
      quarot_quantize(NULL, F32, 0, 8, 12, quant(QR, 9, 4, 1.0f, NULL), NULL, NULL, NULL))

/* Runs first, before any callback has failed on this thread. */
#define ROWS_FIRST(X)                                                                              \
    X(callback_code_none, DOCUMENTED,                                                              \
      "quarot_last_callback_code.result = 0 before any callback failed",                           \
      expect_int(quarot_last_callback_code(), 0))

#define ALL_ROWS(X)                                                                                \
    ROWS_FIRST(X)                                                                                  \
    ROWS_HADAMARD_F32(X)                                                                           \
    ROWS_HADAMARD_16(X)                                                                            \
    ROWS_HADAMARD(X)                                                                               \
    ROWS_SIZES(X)                                                                                  \
    ROWS_K_MATRIX(X)                                                                               \
    ROWS_THREADS_AND_MISC(X)                                                                       \
    ROWS_ROTATE_IN(X)                                                                              \
    ROWS_ROTATE_OUT(X)                                                                             \
    ROWS_ROTATE_IN_H(X)                                                                            \
    ROWS_ROTATE_OUT_H(X)                                                                           \
    ROWS_MATRICES(X)                                                                               \
    ROWS_R4_NEW(X)                                                                                 \
    ROWS_R4_FORWARD(X)                                                                             \
    ROWS_QK_NEW(X)                                                                                 \
    ROWS_QK_FORWARD(X)                                                                             \
    ROWS_QUANTIZE(X)

#define ROW_FUNCTION(id, want, name, call)                                                         \
    static int32_t row_##id(void) { return (int32_t)(call); }
ALL_ROWS(ROW_FUNCTION)

struct row {
    const char *name;
    int32_t want; /* a QUAROT_* status, or DOCUMENTED for functions without one */
    int32_t (*call)(void);
    const char *code;
};

#define ROW_ENTRY(id, want, name, call) {name, want, row_##id, #call},
static const struct row TABLE[] = {ALL_ROWS(ROW_ENTRY)};

/* ---------------------------------------------------------------------------------------
 * The harness
 * ------------------------------------------------------------------------------------- */

static int failures = 0;
static int verbose = 0; /* --verbose: print every row with its status and message */

static const char *describe(int32_t code) {
    if (code == DOCUMENTED) {
        return "the documented result";
    }
    if (code == UNDOCUMENTED) {
        return "another result";
    }
    return quarot_status_string(code);
}

/* Copy the calling thread's message (valid only until the next libquarot call). */
static void copy_last_error(char *to, size_t size) {
    const char *m = quarot_last_error();
    if (m == NULL) {
        snprintf(to, size, "(NULL)");
    } else {
        snprintf(to, size, "%s", m);
    }
}

/* A call that succeeds (an empty batch): the message must then be "". */
static int succeed(void) {
    int32_t s = (int32_t)quarot_hadamard_f32(NULL, 0, 4, 4, 1.0f, 0);
    const char *m = quarot_last_error();
    return s == QUAROT_OK && m != NULL && m[0] == '\0';
}

/* A call that fails (n = 0): the message must then be non-empty. */
static int fail(void) {
    int32_t s = (int32_t)quarot_hadamard_f32(NULL, 0, 0, 4, 1.0f, 0);
    const char *m = quarot_last_error();
    return s == QUAROT_ERR_UNSUPPORTED_SIZE && m != NULL && m[0] != '\0';
}

/* The arena field holding the first byte that differs from the pattern, or "" if none. */
static const char *changed_field(size_t *at) {
    const unsigned char *a = (const unsigned char *)&A;
    const unsigned char *r = (const unsigned char *)&REF;
    size_t i, f;
    for (i = 0; i < sizeof A; ++i) {
        if (a[i] != r[i]) {
            for (f = 0; f < sizeof FIELDS / sizeof FIELDS[0]; ++f) {
                if (i >= FIELDS[f].offset && i < FIELDS[f].offset + FIELDS[f].size) {
                    *at = i - FIELDS[f].offset;
                    return FIELDS[f].name;
                }
            }
            *at = i;
            return "(padding)";
        }
    }
    return "";
}

/* One problem of a row: the first one prints the row's header line. */
static void problem(int *row_failed, const struct row *r, int32_t got, const char *message,
                    const char *what) {
    if (!*row_failed) {
        *row_failed = 1;
        ++failures;
        printf("FAIL %s: got %d (%s), expected %d (%s); last error: \"%s\"\n    call: %s\n",
               r->name, (int)got, describe(got), (int)r->want, describe(r->want), message,
               r->code);
    }
    printf("    - %s\n", what);
}

static void run_row(const struct row *r) {
    int value_row = r->want == DOCUMENTED;
    int row_failed = 0;
    int primed;
    int32_t got;
    size_t at = 0;
    const char *field;
    char message[512];
    char what[600];

    memcpy(&A, &REF, sizeof A);
    r4_out = R4_SENTINEL;
    qk_out = QK_SENTINEL;
    callback_calls = 0;
    note[0] = '\0';
    /* (e): the opposite message state before the row. */
    primed = r->want == QUAROT_OK ? fail() : succeed();

    got = r->call();
    copy_last_error(message, sizeof message);

    if (verbose) {
        printf("%-4s %s: %d (%s) \"%s\"%s%s\n", got == r->want ? "ok" : "FAIL", r->name,
               (int)got, describe(got), message, note[0] != '\0' ? "; " : "", note);
    }
    if (!primed) {
        problem(&row_failed, r, got, message, "the priming call before the row misbehaved");
    }
    /* (a) */
    if (got != r->want) {
        snprintf(what, sizeof what, "wrong result%s%s", note[0] != '\0' ? ": " : "", note);
        problem(&row_failed, r, got, message, what);
    }
    /* (b) */
    field = changed_field(&at);
    if (field[0] != '\0') {
        snprintf(what, sizeof what, "buffer %s changed at byte %zu", field, at);
        problem(&row_failed, r, got, message, what);
    }
    /* (c) */
    if (r4_out != R4_SENTINEL) {
        problem(&row_failed, r, got, message, "quarot_r4_wrapper_new wrote *out");
        if (r4_out != NULL) {
            quarot_r4_wrapper_free(r4_out);
        }
    }
    if (qk_out != QK_SENTINEL) {
        problem(&row_failed, r, got, message, "quarot_qk_rotation_new wrote *out");
        if (qk_out != NULL) {
            quarot_qk_rotation_free(qk_out);
        }
    }
    if (callback_calls != (r->want == QUAROT_ERR_CALLBACK ? 1 : 0)) {
        snprintf(what, sizeof what, "%d callback call(s)", callback_calls);
        problem(&row_failed, r, got, message, what);
    }
    if (value_row) {
        return; /* no status, so no message to check */
    }
    /* (d) */
    if (r->want != QUAROT_OK && message[0] == '\0') {
        problem(&row_failed, r, got, message, "quarot_last_error() is empty after the failure");
    }
    if (r->want == QUAROT_OK && message[0] != '\0') {
        problem(&row_failed, r, got, message, "quarot_last_error() is not \"\" after success");
    }
    /* (e): a success after the failure clears the message. */
    if (r->want != QUAROT_OK && !succeed()) {
        problem(&row_failed, r, got, message,
                "quarot_last_error() is not \"\" after a later successful call");
    }
}

/* ---------------------------------------------------------------------------------------
 * Baseline: the valid arguments the rows start from really are valid
 * ------------------------------------------------------------------------------------- */

static void baseline_check(int32_t got, int expected_calls, const char *code) {
    char message[512];
    copy_last_error(message, sizeof message);
    if (got != QUAROT_OK || callback_calls != expected_calls || message[0] != '\0') {
        ++failures;
        printf("FAIL baseline: %s\n    returned %d (%s), %d callback call(s); last error: "
               "\"%s\"\n",
               code, (int)got, quarot_status_string(got), callback_calls, message);
    }
}

#define BASELINE(calls, call)                                                                      \
    do {                                                                                           \
        memcpy(&A, &REF, sizeof A);                                                                \
        callback_calls = 0;                                                                        \
        baseline_check((int32_t)(call), calls, #call);                                             \
    } while (0)

static void baseline(void) {
    quarot_r4_wrapper *w = NULL;
    quarot_qk_rotation *h = NULL;
    BASELINE(0, quarot_hadamard_f32(A.x, 2, 8, 12, 0.5f, 0));
    BASELINE(0, quarot_hadamard_f16(A.h, 2, 8, 12, 0.5f, 0));
    BASELINE(0, quarot_hadamard_bf16(A.h, 2, 8, 12, 0.5f, 0));
    BASELINE(0, quarot_hadamard(A.x, F32, 12, A.h, F16, 10, 2, 8, 0.5f, 0));
    BASELINE(0, quarot_hadamard_nearest_sizes(11000, &A.sizes[0], &A.sizes[1]));
    BASELINE(0, quarot_hadamard_k_matrix(12, A.kmat, 144));
    BASELINE(0, quarot_rows_for_thread(10, 1, 4, &A.sizes[2], &A.sizes[3]));
    BASELINE(0, quarot_set_num_threads(4096));
    BASELINE(0, quarot_set_num_threads(0));
    BASELINE(0, quarot_active_isa(A.isa));
    BASELINE(0, quarot_rotate_in_channels(A.x, F32, 2, 8, 12, A.rot, 8, 0));
    BASELINE(0, quarot_rotate_out_channels(A.x, F32, 8, 4, 6, A.y, A.rot, 8, 0));
    BASELINE(0, quarot_rotate_in_channels_hadamard(A.x, F32, 2, 8, 12, 8, HADU, A.signs, S8,
                                                   0));
    /* The shape of the rotation_n = 11 rows, with a rotation that exists. */
    BASELINE(0, quarot_rotate_in_channels_hadamard(A.x, F32, 2, 22, 24, 2, HADU, NULL, S8, 0));
    BASELINE(0, quarot_rotate_out_channels_hadamard(A.x, F32, 8, 4, 6, A.y, 8, HADT, A.signs,
                                                    S8, 0));
    BASELINE(0, quarot_rotate_out_channels_hadamard(A.x, F32, 22, 2, 2, NULL, 2, HADT, NULL, S8,
                                                    0));
    BASELINE(0, quarot_hadamard_matrix(A.mat, 64, 8, KRON, A.signs, S8));
    BASELINE(0, quarot_random_signs(A.i8, 8, 1));
    BASELINE(0, quarot_random_orthogonal(A.mat, 64, 8, 1));
    BASELINE(0, quarot_r4_wrapper_new(8, 0, F32, 0, FAKE4, op_ok, NULL, &w));
    quarot_r4_wrapper_free(w);
    w = NULL;
    /* The n of the block_size = 11 row, with a block size that exists. */
    BASELINE(0, quarot_r4_wrapper_new(88, 8, F32, 0, FAKE4, op_ok, NULL, &w));
    quarot_r4_wrapper_free(w);
    BASELINE(1, quarot_r4_wrapper_forward(r4, A.x, 2, 12, A.y, 0));
    BASELINE(0, quarot_qk_rotation_new(8, F32, 0, rope_ok, NULL, &h));
    quarot_qk_rotation_free(h);
    BASELINE(1, quarot_qk_rotation_forward(qk, A.x, A.y, SHAPE_OK, NULL));
    BASELINE(0, quarot_quantize(A.x, F32, 2, 8, 12, REAL8, A.codes, A.scales, A.zeros));
    BASELINE(0, quarot_quantize(A.x, F32, 2, 8, 12, FAKE4, NULL, NULL, NULL));
}

/* After the table: the library and the handles still work. */
static void still_usable(void) {
    float v[4] = {1.0f, 0.0f, 0.0f, 0.0f};
    int32_t s = (int32_t)quarot_hadamard_f32(v, 1, 4, 4, 0.5f, 0);
    int i, ok = s == QUAROT_OK;
    for (i = 0; i < 4; ++i) {
        ok = ok && v[i] == 0.5f;
    }
    if (!ok || strcmp(quarot_last_error(), "") != 0) {
        ++failures;
        printf("FAIL after the table: 4-wide transform of [1, 0, 0, 0] with scale 0.5 gave "
               "status %d, [%g, %g, %g, %g]\n",
               (int)s, (double)v[0], (double)v[1], (double)v[2], (double)v[3]);
    }
    BASELINE(1, quarot_r4_wrapper_forward(r4, A.x, 2, 12, A.y, 0));
    BASELINE(1, quarot_qk_rotation_forward(qk, A.x, A.y, SHAPE_OK, NULL));
}

int main(int argc, char **argv) {
    size_t i, rows = sizeof TABLE / sizeof TABLE[0];
    int made = 1;

    if (argc == 2 && strcmp(argv[1], "--verbose") == 0) {
        verbose = 1;
    } else if (argc != 1) {
        fprintf(stderr, "usage: %s [--verbose]\n", argv[0]);
        return 2;
    }
    make_reference();
    made = made && quarot_r4_wrapper_new(8, 0, F32, 0, FAKE4, op_ok, NULL, &r4) == QUAROT_OK;
    made = made &&
           quarot_r4_wrapper_new(8, 0, F32, 0, NULL, op_fail, NULL, &r4_op_fails) == QUAROT_OK;
    made = made && quarot_r4_wrapper_new(8, 0, F32, 0,
                                         quant(QUAROT_QUANT_CUSTOM, 0, 0, 0.0f, quant_fail),
                                         op_ok, NULL, &r4_quant_fails) == QUAROT_OK;
    made = made && quarot_qk_rotation_new(8, F32, 0, rope_ok, NULL, &qk) == QUAROT_OK;
    made = made &&
           quarot_qk_rotation_new(8, F32, 0, rope_fail, NULL, &qk_rope_fails) == QUAROT_OK;
    if (!made) {
        printf("FAIL: cannot create the handles: %s\n", quarot_last_error());
        ++failures;
    } else {
        baseline();
        for (i = 0; i < rows; ++i) {
            run_row(&TABLE[i]);
        }
        still_usable();
    }

    quarot_r4_wrapper_free(r4);
    quarot_r4_wrapper_free(r4_op_fails);
    quarot_r4_wrapper_free(r4_quant_fails);
    quarot_qk_rotation_free(qk);
    quarot_qk_rotation_free(qk_rope_fails);

    printf("bad_input: %d rows, %d failures\n", (int)rows, failures);
    return failures == 0 ? 0 : 1;
}
