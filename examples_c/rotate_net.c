/*
 * rotate_net.c: weight rotation through libquarot's C ABI on a small two-layer network
 *
 *     y = W2 (W1 x + b1),   W1: 32 x 64, b1: 32, W2: 16 x 32
 *
 * The hidden dimension is rotated, as QuaRot does between two linear layers: W1's output
 * channels and b1 become R^T W1 and R^T b1 (quarot_rotate_out_channels), W2's input
 * channels become W2 R (quarot_rotate_in_channels). For an orthogonal R the network is
 * unchanged, up to the rounding of the rotated weights to their element type:
 *
 *     |y' - y|_i <= u (1 + 4u) [ sum_j |W2'_ij| (sum_k |W1'_jk| |x_k| + |b1'_j| + |h'_j|) ]
 *
 * (u = 2^-24 for float, 2^-8 for bfloat16; h' = W1' x + b1'), which is what is checked.
 *
 * Done with (1) a dense random orthogonal R (quarot_random_orthogonal, r = 32 = the whole
 * hidden dimension), (2) blockwise r = 16 with a Hadamard rotation R = diag(s) H scale
 * (QUAROT_LAYOUT_MATMUL_HADU, signs from quarot_random_signs, scale
 * quarot_quark_hadamard_scale(16), i.e. Quark's random_hadamard_matrix) through the
 * *_hadamard entry points, which must give the same weights as the dense functions with
 * the matrix written by quarot_hadamard_matrix; in float and in bfloat16. Then the error
 * cases: each must return its status and leave the weight and the bias unchanged.
 *
 * Built and run by tests/c_examples.rs as C99 and as C++11:
 *   cc -std=c99 -Wall -Wextra -Werror -pedantic -Iinclude examples_c/rotate_net.c \
 *      -Ltarget/release -Wl,-rpath,target/release -lquarot -lm
 * Exit status 0 iff every check passed.
 */
#include "quarot.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_IN 64
#define N_HID 32
#define N_OUT 16
#define R_FULL 32  /* dense rotation: the whole hidden dimension */
#define R_BLOCK 16 /* Hadamard rotation: two blocks of 16 */

/* ---------------------------------------------------------------------------------------
 * Checks
 * ------------------------------------------------------------------------------------- */

static int checks = 0;
static int failures = 0;

static void check_impl(int ok, const char *what, int line) {
    ++checks;
    if (!ok) {
        ++failures;
        fprintf(stderr, "rotate_net.c:%d: CHECK failed: %s\n", line, what);
    }
}

#define CHECK(cond) check_impl((cond) ? 1 : 0, #cond, __LINE__)

static void check_status_impl(int got, int want, const char *what, int line) {
    const char *message = quarot_last_error(); /* before any other call replaces it */
    ++checks;
    if (got != want) {
        ++failures;
        fprintf(stderr, "rotate_net.c:%d: %s returned %d (%s), expected %d (%s); last error: \"%s\"\n",
                line, what, got, quarot_status_string(got), want, quarot_status_string(want),
                message);
    }
}

#define CHECK_STATUS(call, want) check_status_impl((int)(call), (int)(want), #call, __LINE__)

static int contains(const char *haystack, const char *needle) {
    return haystack != NULL && strstr(haystack, needle) != NULL;
}

/* ---------------------------------------------------------------------------------------
 * bfloat16 and float as ordered integers
 * ------------------------------------------------------------------------------------- */

static float bf16_to_float(uint16_t b) {
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Round to nearest even (the data here is finite). */
static uint16_t float_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

/* Sign-magnitude bit patterns as ordered integers: the distance is in ulps. */
static long long ordered32(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return (u & 0x80000000u) ? -(long long)(u & 0x7fffffffu) : (long long)u;
}

static long long ordered16(uint16_t b) {
    return (b & 0x8000u) ? -(long long)(b & 0x7fffu) : (long long)b;
}

static long long abs_ll(long long v) { return v < 0 ? -v : v; }

/* ---------------------------------------------------------------------------------------
 * The network, evaluated in double from the stored weights
 * ------------------------------------------------------------------------------------- */

/* Weights as doubles (exact for float and bfloat16). */
typedef struct {
    double w1[N_HID * N_IN];
    double b1[N_HID];
    double w2[N_OUT * N_HID];
} Net;

static void forward(const Net *net, const double *x, double *y) {
    double h[N_HID];
    size_t i, j, k;
    for (j = 0; j < N_HID; ++j) {
        double s = 0.0;
        for (k = 0; k < N_IN; ++k) {
            s += net->w1[j * N_IN + k] * x[k];
        }
        h[j] = s + net->b1[j];
    }
    for (i = 0; i < N_OUT; ++i) {
        double s = 0.0;
        for (j = 0; j < N_HID; ++j) {
            s += net->w2[i * N_HID + j] * h[j];
        }
        y[i] = s;
    }
}

/* The error scale of the bound above, for the rotated network. */
static void error_scale(const Net *rot, const double *x, double *scale) {
    double m[N_HID];
    size_t i, j, k;
    for (j = 0; j < N_HID; ++j) {
        double a = 0.0, h = 0.0;
        for (k = 0; k < N_IN; ++k) {
            a += fabs(rot->w1[j * N_IN + k] * x[k]);
            h += rot->w1[j * N_IN + k] * x[k];
        }
        m[j] = a + fabs(rot->b1[j]) + fabs(h + rot->b1[j]);
    }
    for (i = 0; i < N_OUT; ++i) {
        double s = 0.0;
        for (j = 0; j < N_HID; ++j) {
            s += fabs(rot->w2[i * N_HID + j]) * m[j];
        }
        scale[i] = s;
    }
}

static void net_from_float(Net *net, const float *w1, const float *b1, const float *w2) {
    size_t i;
    for (i = 0; i < N_HID * N_IN; ++i) net->w1[i] = w1[i];
    for (i = 0; i < N_HID; ++i) net->b1[i] = b1[i];
    for (i = 0; i < N_OUT * N_HID; ++i) net->w2[i] = w2[i];
}

static void net_from_bf16(Net *net, const uint16_t *w1, const uint16_t *b1, const uint16_t *w2) {
    size_t i;
    for (i = 0; i < N_HID * N_IN; ++i) net->w1[i] = bf16_to_float(w1[i]);
    for (i = 0; i < N_HID; ++i) net->b1[i] = bf16_to_float(b1[i]);
    for (i = 0; i < N_OUT * N_HID; ++i) net->w2[i] = bf16_to_float(w2[i]);
}

#define N_INPUTS 4
static double inputs[N_INPUTS][N_IN];

/* Compare the rotated network with the original on every input; returns the worst
 * |y' - y| / (u (1 + 4u) scale) (<= 1 passes) and prints it. */
static double compare_nets(const char *label, const Net *plain, const Net *rot, double u) {
    double worst = 0.0, worst_abs = 0.0, max_y = 0.0;
    size_t t, i;
    for (t = 0; t < N_INPUTS; ++t) {
        double y[N_OUT], yr[N_OUT], scale[N_OUT];
        forward(plain, inputs[t], y);
        forward(rot, inputs[t], yr);
        error_scale(rot, inputs[t], scale);
        for (i = 0; i < N_OUT; ++i) {
            double d = fabs(yr[i] - y[i]);
            double bound = u * (1.0 + 4.0 * u) * scale[i] * (1.0 + 1e-9) + 1e-300;
            if (d / bound > worst) worst = d / bound;
            if (d > worst_abs) worst_abs = d;
            if (fabs(y[i]) > max_y) max_y = fabs(y[i]);
        }
    }
    printf("%-58s max |y' - y| = %.3e (max |y| = %.3f), %.3f of the rounding bound\n", label,
           worst_abs, max_y, worst);
    return worst;
}

/* ---------------------------------------------------------------------------------------
 * Data
 * ------------------------------------------------------------------------------------- */

static uint64_t rng_state = 0x243f6a8885a308d3u;

static double uniform(void) { /* [-1, 1) */
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}

static double gauss(void) { /* roughly N(0, 1) */
    return (uniform() + uniform() + uniform() + uniform()) * 0.866;
}

static float w1[N_HID * N_IN], b1[N_HID], w2[N_OUT * N_HID];
static uint16_t w1h[N_HID * N_IN], b1h[N_HID], w2h[N_OUT * N_HID];

static void make_data(void) {
    size_t i, t;
    for (i = 0; i < N_HID * N_IN; ++i) {
        w1[i] = (float)(gauss() * 0.05 * (i % N_IN == 5 ? 30.0 : 1.0)); /* an outlier column */
    }
    for (i = 0; i < N_HID; ++i) b1[i] = (float)(gauss() * 0.1);
    for (i = 0; i < N_OUT * N_HID; ++i) w2[i] = (float)(gauss() * 0.05);
    for (i = 0; i < N_HID * N_IN; ++i) w1h[i] = float_to_bf16(w1[i]);
    for (i = 0; i < N_HID; ++i) b1h[i] = float_to_bf16(b1[i]);
    for (i = 0; i < N_OUT * N_HID; ++i) w2h[i] = float_to_bf16(w2[i]);
    for (t = 0; t < N_INPUTS; ++t) {
        for (i = 0; i < N_IN; ++i) inputs[t][i] = gauss();
    }
}

/* ---------------------------------------------------------------------------------------
 * Rotations
 * ------------------------------------------------------------------------------------- */

static double rot_full[R_FULL * R_FULL];
static double had_dense[R_BLOCK * R_BLOCK];
static int8_t signs[R_BLOCK];
static double had_scale;

/* The element-wise agreement of two results of the same dtype: identical / total, max ulp. */
static void agreement_f32(const float *a, const float *b, size_t n, size_t *same, long long *max_ulp) {
    size_t i;
    for (i = 0; i < n; ++i) {
        long long d = abs_ll(ordered32(a[i]) - ordered32(b[i]));
        if (d == 0) ++*same;
        if (d > *max_ulp) *max_ulp = d;
    }
}

static void agreement_bf16(const uint16_t *a, const uint16_t *b, size_t n, size_t *same,
                           long long *max_ulp) {
    size_t i;
    for (i = 0; i < n; ++i) {
        long long d = abs_ll(ordered16(a[i]) - ordered16(b[i]));
        if (d == 0) ++*same;
        if (d > *max_ulp) *max_ulp = d;
    }
}

static void test_f32(void) {
    static float a1[N_HID * N_IN], ab[N_HID], a2[N_OUT * N_HID];
    static float p1[N_HID * N_IN], pb[N_HID], p2[N_OUT * N_HID];
    static float d1[N_HID * N_IN], db[N_HID], d2[N_OUT * N_HID];
    static Net plain, rot;
    size_t same = 0, total;
    long long max_ulp = 0;
    net_from_float(&plain, w1, b1, w2);

    /* (1) dense random orthogonal R, r = 32. */
    memcpy(a1, w1, sizeof a1);
    memcpy(ab, b1, sizeof ab);
    memcpy(a2, w2, sizeof a2);
    CHECK_STATUS(quarot_rotate_out_channels(a1, QUAROT_DTYPE_F32, N_HID, N_IN, N_IN, ab, rot_full,
                                            R_FULL, 0),
                 QUAROT_OK);
    CHECK(strcmp(quarot_last_error(), "") == 0);
    CHECK_STATUS(quarot_rotate_in_channels(a2, QUAROT_DTYPE_F32, N_OUT, N_HID, N_HID, rot_full,
                                           R_FULL, 0),
                 QUAROT_OK);
    CHECK(memcmp(a1, w1, sizeof a1) != 0 && memcmp(ab, b1, sizeof ab) != 0 &&
          memcmp(a2, w2, sizeof a2) != 0); /* the weights did change */
    net_from_float(&rot, a1, ab, a2);
    CHECK(compare_nets("f32, dense random orthogonal R (r = 32):", &plain, &rot, ldexp(1.0, -24)) <= 1.0);

    /* QUAROT_FLAG_PARALLEL: the same bits. */
    memcpy(p1, w1, sizeof p1);
    memcpy(pb, b1, sizeof pb);
    memcpy(p2, w2, sizeof p2);
    CHECK_STATUS(quarot_rotate_out_channels(p1, QUAROT_DTYPE_F32, N_HID, N_IN, N_IN, pb, rot_full,
                                            R_FULL, QUAROT_FLAG_PARALLEL),
                 QUAROT_OK);
    CHECK_STATUS(quarot_rotate_in_channels(p2, QUAROT_DTYPE_F32, N_OUT, N_HID, N_HID, rot_full,
                                           R_FULL, QUAROT_FLAG_PARALLEL),
                 QUAROT_OK);
    CHECK(memcmp(p1, a1, sizeof p1) == 0 && memcmp(pb, ab, sizeof pb) == 0 &&
          memcmp(p2, a2, sizeof p2) == 0);

    /* QUAROT_FLAG_F32_ACCUMULATE: float accumulation, a looser bound (64 u). */
    memcpy(p1, w1, sizeof p1);
    memcpy(pb, b1, sizeof pb);
    memcpy(p2, w2, sizeof p2);
    CHECK_STATUS(quarot_rotate_out_channels(p1, QUAROT_DTYPE_F32, N_HID, N_IN, N_IN, pb, rot_full,
                                            R_FULL, QUAROT_FLAG_F32_ACCUMULATE),
                 QUAROT_OK);
    CHECK_STATUS(quarot_rotate_in_channels(p2, QUAROT_DTYPE_F32, N_OUT, N_HID, N_HID, rot_full,
                                           R_FULL, QUAROT_FLAG_F32_ACCUMULATE),
                 QUAROT_OK);
    net_from_float(&rot, p1, pb, p2);
    CHECK(compare_nets("f32, dense R, QUAROT_FLAG_F32_ACCUMULATE (bound 64 u):", &plain, &rot,
                       64.0 * ldexp(1.0, -24)) <= 1.0);

    /* (2) blockwise r = 16, Hadamard, through the _hadamard entry points. */
    memcpy(a1, w1, sizeof a1);
    memcpy(ab, b1, sizeof ab);
    memcpy(a2, w2, sizeof a2);
    CHECK_STATUS(quarot_rotate_out_channels_hadamard(a1, QUAROT_DTYPE_F32, N_HID, N_IN, N_IN, ab,
                                                     R_BLOCK, QUAROT_LAYOUT_MATMUL_HADU, signs,
                                                     had_scale, 0),
                 QUAROT_OK);
    CHECK_STATUS(quarot_rotate_in_channels_hadamard(a2, QUAROT_DTYPE_F32, N_OUT, N_HID, N_HID,
                                                    R_BLOCK, QUAROT_LAYOUT_MATMUL_HADU, signs,
                                                    had_scale, 0),
                 QUAROT_OK);
    CHECK(memcmp(a1, w1, sizeof a1) != 0 && memcmp(a2, w2, sizeof a2) != 0);
    net_from_float(&rot, a1, ab, a2);
    CHECK(compare_nets("f32, Hadamard MATMUL_HADU + signs, 2 blocks of 16:", &plain, &rot,
                       ldexp(1.0, -24)) <= 1.0);

    /* The same with the dense matrix from quarot_hadamard_matrix: the same weights. */
    memcpy(d1, w1, sizeof d1);
    memcpy(db, b1, sizeof db);
    memcpy(d2, w2, sizeof d2);
    CHECK_STATUS(quarot_rotate_out_channels(d1, QUAROT_DTYPE_F32, N_HID, N_IN, N_IN, db,
                                            had_dense, R_BLOCK, 0),
                 QUAROT_OK);
    CHECK_STATUS(quarot_rotate_in_channels(d2, QUAROT_DTYPE_F32, N_OUT, N_HID, N_HID, had_dense,
                                           R_BLOCK, 0),
                 QUAROT_OK);
    agreement_f32(d1, a1, N_HID * N_IN, &same, &max_ulp);
    agreement_f32(db, ab, N_HID, &same, &max_ulp);
    agreement_f32(d2, a2, N_OUT * N_HID, &same, &max_ulp);
    total = N_HID * N_IN + N_HID + N_OUT * N_HID;
    printf("f32, Hadamard entry points vs dense quarot_hadamard_matrix: %u/%u identical, max %lld ulp\n",
           (unsigned)same, (unsigned)total, max_ulp);
    CHECK(max_ulp <= 1);
    CHECK(same * 1000 >= total * 999);
}

static void test_bf16(void) {
    static uint16_t a1[N_HID * N_IN], ab[N_HID], a2[N_OUT * N_HID];
    static uint16_t d1[N_HID * N_IN], db[N_HID], d2[N_OUT * N_HID];
    static Net plain, rot;
    size_t same = 0, total;
    long long max_ulp = 0;
    net_from_bf16(&plain, w1h, b1h, w2h);

    memcpy(a1, w1h, sizeof a1);
    memcpy(ab, b1h, sizeof ab);
    memcpy(a2, w2h, sizeof a2);
    CHECK_STATUS(quarot_rotate_out_channels(a1, QUAROT_DTYPE_BF16, N_HID, N_IN, N_IN, ab,
                                            rot_full, R_FULL, 0),
                 QUAROT_OK);
    CHECK_STATUS(quarot_rotate_in_channels(a2, QUAROT_DTYPE_BF16, N_OUT, N_HID, N_HID, rot_full,
                                           R_FULL, 0),
                 QUAROT_OK);
    CHECK(memcmp(a1, w1h, sizeof a1) != 0 && memcmp(a2, w2h, sizeof a2) != 0);
    net_from_bf16(&rot, a1, ab, a2);
    CHECK(compare_nets("bf16, dense random orthogonal R (r = 32):", &plain, &rot, ldexp(1.0, -8)) <= 1.0);

    memcpy(a1, w1h, sizeof a1);
    memcpy(ab, b1h, sizeof ab);
    memcpy(a2, w2h, sizeof a2);
    CHECK_STATUS(quarot_rotate_out_channels_hadamard(a1, QUAROT_DTYPE_BF16, N_HID, N_IN, N_IN, ab,
                                                     R_BLOCK, QUAROT_LAYOUT_MATMUL_HADU, signs,
                                                     had_scale, 0),
                 QUAROT_OK);
    CHECK_STATUS(quarot_rotate_in_channels_hadamard(a2, QUAROT_DTYPE_BF16, N_OUT, N_HID, N_HID,
                                                    R_BLOCK, QUAROT_LAYOUT_MATMUL_HADU, signs,
                                                    had_scale, 0),
                 QUAROT_OK);
    net_from_bf16(&rot, a1, ab, a2);
    CHECK(compare_nets("bf16, Hadamard MATMUL_HADU + signs, 2 blocks of 16:", &plain, &rot,
                       ldexp(1.0, -8)) <= 1.0);

    memcpy(d1, w1h, sizeof d1);
    memcpy(db, b1h, sizeof db);
    memcpy(d2, w2h, sizeof d2);
    CHECK_STATUS(quarot_rotate_out_channels(d1, QUAROT_DTYPE_BF16, N_HID, N_IN, N_IN, db,
                                            had_dense, R_BLOCK, 0),
                 QUAROT_OK);
    CHECK_STATUS(quarot_rotate_in_channels(d2, QUAROT_DTYPE_BF16, N_OUT, N_HID, N_HID, had_dense,
                                           R_BLOCK, 0),
                 QUAROT_OK);
    agreement_bf16(d1, a1, N_HID * N_IN, &same, &max_ulp);
    agreement_bf16(db, ab, N_HID, &same, &max_ulp);
    agreement_bf16(d2, a2, N_OUT * N_HID, &same, &max_ulp);
    total = N_HID * N_IN + N_HID + N_OUT * N_HID;
    printf("bf16, Hadamard entry points vs dense quarot_hadamard_matrix: %u/%u identical, max %lld ulp\n",
           (unsigned)same, (unsigned)total, max_ulp);
    CHECK(max_ulp <= 1);
    CHECK(same * 1000 >= total * 999);
}

/* ---------------------------------------------------------------------------------------
 * Errors: the status, and the weight and the bias unchanged
 * ------------------------------------------------------------------------------------- */

static float ew1[N_HID * N_IN], eb1[N_HID], ew2[N_OUT * N_HID];

static void reset_error_buffers(void) {
    memcpy(ew1, w1, sizeof ew1);
    memcpy(eb1, b1, sizeof eb1);
    memcpy(ew2, w2, sizeof ew2);
}

static int unchanged(void) {
    return memcmp(ew1, w1, sizeof ew1) == 0 && memcmp(eb1, b1, sizeof eb1) == 0 &&
           memcmp(ew2, w2, sizeof ew2) == 0;
}

static void test_errors(void) {
    static double rot24[24 * 24];
    static double bad[R_FULL * R_FULL];
    int8_t bad_signs[R_BLOCK];
    reset_error_buffers();

    /* NULL weight. */
    CHECK_STATUS(quarot_rotate_in_channels(NULL, QUAROT_DTYPE_F32, N_OUT, N_HID, N_HID, rot_full,
                                           R_FULL, 0),
                 QUAROT_ERR_NULL_POINTER);
    CHECK(contains(quarot_last_error(), "weight"));
    CHECK_STATUS(quarot_rotate_out_channels(NULL, QUAROT_DTYPE_F32, N_HID, N_IN, N_IN, eb1,
                                            rot_full, R_FULL, 0),
                 QUAROT_ERR_NULL_POINTER);
    CHECK_STATUS(quarot_rotate_in_channels_hadamard(NULL, QUAROT_DTYPE_F32, N_OUT, N_HID, N_HID,
                                                    R_BLOCK, QUAROT_LAYOUT_MATMUL_HADU, signs,
                                                    had_scale, 0),
                 QUAROT_ERR_NULL_POINTER);
    CHECK_STATUS(quarot_rotate_out_channels_hadamard(NULL, QUAROT_DTYPE_F32, N_HID, N_IN, N_IN,
                                                     eb1, R_BLOCK, QUAROT_LAYOUT_MATMUL_HADU,
                                                     signs, had_scale, 0),
                 QUAROT_ERR_NULL_POINTER);
    CHECK(unchanged());
    /* NULL rotation. */
    CHECK_STATUS(quarot_rotate_in_channels(ew2, QUAROT_DTYPE_F32, N_OUT, N_HID, N_HID, NULL,
                                           R_FULL, 0),
                 QUAROT_ERR_NULL_POINTER);
    CHECK(unchanged());

    /* rotation_n that does not divide the rotated dimension. */
    CHECK_STATUS(quarot_random_orthogonal(rot24, 24 * 24, 24, 5), QUAROT_OK);
    CHECK_STATUS(quarot_rotate_in_channels(ew2, QUAROT_DTYPE_F32, N_OUT, N_HID, N_HID, rot24, 24,
                                           0),
                 QUAROT_ERR_INVALID_ARGUMENT);
    CHECK(contains(quarot_last_error(), "in_features = 32"));
    CHECK(unchanged());
    CHECK_STATUS(quarot_rotate_out_channels(ew1, QUAROT_DTYPE_F32, N_HID, N_IN, N_IN, eb1, rot24,
                                            24, 0),
                 QUAROT_ERR_INVALID_ARGUMENT);
    CHECK(contains(quarot_last_error(), "out_features = 32"));
    CHECK(unchanged());
    CHECK_STATUS(quarot_rotate_in_channels_hadamard(ew2, QUAROT_DTYPE_F32, N_OUT, N_HID, N_HID, 12,
                                                    QUAROT_LAYOUT_MATMUL_HADU, NULL,
                                                    quarot_quark_hadamard_scale(12), 0),
                 QUAROT_ERR_INVALID_ARGUMENT);
    CHECK(contains(quarot_last_error(), "in_features = 32"));
    CHECK(unchanged());

    /* An invalid dtype (2 is ggml's Q4_0; bfloat16 is 30). */
    CHECK_STATUS(quarot_rotate_in_channels(ew2, 2, N_OUT, N_HID, N_HID, rot_full, R_FULL, 0),
                 QUAROT_ERR_INVALID_DTYPE);
    CHECK_STATUS(quarot_rotate_out_channels(ew1, 2, N_HID, N_IN, N_IN, eb1, rot_full, R_FULL, 0),
                 QUAROT_ERR_INVALID_DTYPE);
    CHECK_STATUS(quarot_rotate_out_channels_hadamard(ew1, -1, N_HID, N_IN, N_IN, eb1, R_BLOCK,
                                                     QUAROT_LAYOUT_MATMUL_HADU, signs, had_scale,
                                                     0),
                 QUAROT_ERR_INVALID_DTYPE);
    CHECK(unchanged());

    /* NaN (and Inf) in the rotation. */
    memcpy(bad, rot_full, sizeof bad);
    bad[5 * R_FULL + 7] = NAN;
    CHECK_STATUS(quarot_rotate_in_channels(ew2, QUAROT_DTYPE_F32, N_OUT, N_HID, N_HID, bad, R_FULL,
                                           0),
                 QUAROT_ERR_INVALID_ARGUMENT);
    CHECK(contains(quarot_last_error(), "rotation[5][7]"));
    CHECK_STATUS(quarot_rotate_out_channels(ew1, QUAROT_DTYPE_F32, N_HID, N_IN, N_IN, eb1, bad,
                                            R_FULL, 0),
                 QUAROT_ERR_INVALID_ARGUMENT);
    bad[5 * R_FULL + 7] = rot_full[5 * R_FULL + 7];
    bad[R_FULL * R_FULL - 1] = INFINITY;
    CHECK_STATUS(quarot_rotate_out_channels(ew1, QUAROT_DTYPE_F32, N_HID, N_IN, N_IN, eb1, bad,
                                            R_FULL, 0),
                 QUAROT_ERR_INVALID_ARGUMENT);
    CHECK(unchanged());

    /* More: stride, flags, layout, signs, scale, overlap. */
    CHECK_STATUS(quarot_rotate_in_channels(ew2, QUAROT_DTYPE_F32, N_OUT, N_HID, N_HID - 1,
                                           rot_full, R_FULL, 0),
                 QUAROT_ERR_INVALID_STRIDE);
    CHECK_STATUS(quarot_rotate_in_channels(ew2, QUAROT_DTYPE_F32, N_OUT, N_HID, N_HID, rot_full,
                                           R_FULL, QUAROT_FLAG_TRANSPOSE_K),
                 QUAROT_ERR_INVALID_FLAGS);
    CHECK_STATUS(quarot_rotate_in_channels_hadamard(ew2, QUAROT_DTYPE_F32, N_OUT, N_HID, N_HID,
                                                    R_BLOCK, QUAROT_LAYOUT_MATMUL_HADU, signs,
                                                    had_scale, QUAROT_FLAG_F32_ACCUMULATE),
                 QUAROT_ERR_INVALID_FLAGS);
    CHECK_STATUS(quarot_rotate_in_channels_hadamard(ew2, QUAROT_DTYPE_F32, N_OUT, N_HID, N_HID,
                                                    R_BLOCK, 3, signs, had_scale, 0),
                 QUAROT_ERR_INVALID_ARGUMENT);
    memcpy(bad_signs, signs, sizeof bad_signs);
    bad_signs[9] = 0;
    CHECK_STATUS(quarot_rotate_out_channels_hadamard(ew1, QUAROT_DTYPE_F32, N_HID, N_IN, N_IN, eb1,
                                                     R_BLOCK, QUAROT_LAYOUT_MATMUL_HADU,
                                                     bad_signs, had_scale, 0),
                 QUAROT_ERR_INVALID_ARGUMENT);
    CHECK(contains(quarot_last_error(), "signs[9]"));
    CHECK_STATUS(quarot_rotate_out_channels_hadamard(ew1, QUAROT_DTYPE_F32, N_HID, N_IN, N_IN, eb1,
                                                     R_BLOCK, QUAROT_LAYOUT_MATMUL_HADU, signs,
                                                     NAN, 0),
                 QUAROT_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(quarot_rotate_out_channels(ew1, QUAROT_DTYPE_F32, N_HID, N_IN, N_IN, ew1 + 5,
                                            rot_full, R_FULL, 0),
                 QUAROT_ERR_OVERLAP);
    CHECK(unchanged());

    /* Matrix generators. */
    CHECK_STATUS(quarot_hadamard_matrix(bad, 100, R_BLOCK, QUAROT_LAYOUT_MATMUL_HADU, signs,
                                        had_scale),
                 QUAROT_ERR_INVALID_ARGUMENT); /* out_len < n * n */
    CHECK_STATUS(quarot_hadamard_matrix(bad, R_FULL * R_FULL, 30, QUAROT_LAYOUT_MATMUL_HADU, NULL,
                                        1.0),
                 QUAROT_ERR_UNSUPPORTED_SIZE);
    CHECK_STATUS(quarot_hadamard_matrix(NULL, 256, R_BLOCK, QUAROT_LAYOUT_MATMUL_HADU, NULL, 1.0),
                 QUAROT_ERR_NULL_POINTER);
    CHECK_STATUS(quarot_random_orthogonal(NULL, 16, 4, 1), QUAROT_ERR_NULL_POINTER);
    CHECK_STATUS(quarot_random_orthogonal(bad, 15, 4, 1), QUAROT_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(quarot_random_signs(NULL, 4, 1), QUAROT_ERR_NULL_POINTER);
}

int main(void) {
    quarot_isa isa = QUAROT_ISA_SCALAR;
    double max_orth = 0.0;
    size_t i, j, k;
    int all_ok = 1;

    CHECK_STATUS(quarot_active_isa(&isa), QUAROT_OK);
    printf("libquarot %s, instruction set %s\n", quarot_version(), quarot_isa_name(isa));
    make_data();

    /* R: a random orthogonal 32 x 32 matrix; check R R^T = I. */
    CHECK_STATUS(quarot_random_orthogonal(rot_full, R_FULL * R_FULL, R_FULL, 2024), QUAROT_OK);
    for (i = 0; i < R_FULL; ++i) {
        for (j = 0; j < R_FULL; ++j) {
            double s = 0.0;
            for (k = 0; k < R_FULL; ++k) s += rot_full[i * R_FULL + k] * rot_full[j * R_FULL + k];
            s -= i == j ? 1.0 : 0.0;
            if (fabs(s) > max_orth) max_orth = fabs(s);
        }
    }
    printf("random orthogonal R (32 x 32): max |R R^T - I| = %.2e\n", max_orth);
    CHECK(max_orth <= 1e-13);

    /* The Hadamard rotation: Quark's random_hadamard_matrix(16) after torch.manual_seed(7). */
    CHECK_STATUS(quarot_random_signs(signs, R_BLOCK, 7), QUAROT_OK);
    for (i = 0; i < R_BLOCK; ++i) all_ok &= signs[i] == 1 || signs[i] == -1;
    CHECK(all_ok);
    had_scale = quarot_quark_hadamard_scale(R_BLOCK);
    CHECK(had_scale == 0.25);
    CHECK_STATUS(quarot_hadamard_matrix(had_dense, R_BLOCK * R_BLOCK, R_BLOCK,
                                        QUAROT_LAYOUT_MATMUL_HADU, signs, had_scale),
                 QUAROT_OK);
    for (i = 0; i < R_BLOCK * R_BLOCK; ++i) all_ok &= fabs(had_dense[i]) == 0.25;
    CHECK(all_ok); /* every entry is +-1/4 */

    test_f32();
    test_bf16();
    test_errors();

    printf("rotate_net: %d checks, %d failed\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
