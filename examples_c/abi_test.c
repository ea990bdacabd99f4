/*
 * abi_test.c: a test of libquarot's C ABI, written against include/quarot.h only.
 *
 * Every function of the header is called. Transforms are checked against a small
 * double-precision reference written here (Walsh-Hadamard butterflies plus the H_K mix,
 * with H_K taken from quarot_hadamard_k_matrix), and against the documented f32 evaluation
 * order bit for bit. Every error case checks the status code and that no buffer changed.
 *
 * Built and run by tests/c_examples.rs as C99 and as C++11:
 *   cc -std=c99 -Wall -Wextra -Werror -pedantic -Iinclude examples_c/abi_test.c \
 *      -Ltarget/release -Wl,-rpath,target/release -lquarot -lpthread -lm
 * Usage:
 *   abi_test                           run every check (exit status 0 iff all pass)
 *   abi_test --expect-isa NAME         also require that the active instruction set is NAME
 *   abi_test --expect-isa-unavailable  QUAROT_ISA names a set this CPU lacks: require that
 *                                      transforms fail with QUAROT_ERR_ISA_UNAVAILABLE
 */
#define _POSIX_C_SOURCE 200809L

#include "quarot.h"

#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------
 * Checks
 * ------------------------------------------------------------------------------------- */

static int checks = 0;
static int failures = 0;

static void check_impl(int ok, const char *what, int line) {
    ++checks;
    if (!ok) {
        ++failures;
        fprintf(stderr, "abi_test.c:%d: CHECK failed: %s\n", line, what);
    }
}

#define CHECK(cond) check_impl((cond) ? 1 : 0, #cond, __LINE__)

static void check_status_impl(int got, int want, const char *what, int line) {
    /* Read the message before any other call could replace it. */
    const char *message = quarot_last_error();
    ++checks;
    if (got != want) {
        ++failures;
        fprintf(stderr, "abi_test.c:%d: %s returned %d (%s), expected %d (%s); last error: \"%s\"\n",
                line, what, got, quarot_status_string(got), want, quarot_status_string(want),
                message);
    }
}

/* Check that `call` returns status `want`. */
#define CHECK_STATUS(call, want) check_status_impl((int)(call), (int)(want), #call, __LINE__)

static void *xmalloc(size_t bytes) {
    void *p = malloc(bytes == 0 ? 1 : bytes);
    if (p == NULL) {
        fprintf(stderr, "abi_test: out of memory\n");
        exit(2);
    }
    return p;
}

static int contains(const char *haystack, const char *needle) {
    return haystack != NULL && strstr(haystack, needle) != NULL;
}

/* ---------------------------------------------------------------------------------------
 * Element formats: binary16 and bfloat16 bit patterns, rounded once to nearest even
 * ------------------------------------------------------------------------------------- */

#define F16_MAX 65504.0
#define BF16_MAX 3.38953138925153547590470800371487867e38

/* Round v once (nearest, ties to even) to a binary format with `digits` significant bits,
 * smallest normal exponent `emin` and largest finite value `max_finite`; +-Inf past it. */
static double round_to_format(double v, int digits, int emin, double max_finite) {
    int e;
    int lead;
    double ulp, r;
    if (v == 0.0 || isnan(v) || isinf(v)) {
        return v;
    }
    frexp(fabs(v), &e); /* |v| = f * 2^e with f in [0.5, 1): leading bit weighs 2^(e-1) */
    lead = e - 1 < emin ? emin : e - 1;
    ulp = ldexp(1.0, lead - (digits - 1));
    r = rint(v / ulp) * ulp; /* v / ulp is exact; rint rounds to nearest even */
    if (fabs(r) > max_finite) {
        return v > 0 ? INFINITY : -INFINITY;
    }
    return r;
}

static double f16_to_double(uint16_t h) {
    int exponent = (h >> 10) & 31;
    int mantissa = h & 1023;
    double v;
    if (exponent == 0) {
        v = ldexp((double)mantissa, -24);
    } else if (exponent == 31) {
        v = mantissa != 0 ? NAN : INFINITY;
    } else {
        v = ldexp((double)(mantissa + 1024), exponent - 25);
    }
    return (h & 0x8000) ? -v : v;
}

static uint16_t double_to_f16(double v) {
    uint16_t sign = signbit(v) ? 0x8000 : 0;
    double a;
    int e;
    double f;
    if (isnan(v)) {
        return 0x7e00;
    }
    a = fabs(round_to_format(v, 11, -14, F16_MAX));
    if (isinf(a)) {
        return (uint16_t)(sign | 0x7c00);
    }
    if (a < ldexp(1.0, -14)) {
        return (uint16_t)(sign | (uint16_t)ldexp(a, 24)); /* subnormal (or zero) */
    }
    f = frexp(a, &e);
    return (uint16_t)(sign | ((e - 1 + 15) << 10) | (int)(f * 2048.0 - 1024.0));
}

static double bf16_to_double(uint16_t b) {
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static uint16_t double_to_bf16(double v) {
    float f;
    uint32_t u;
    if (isnan(v)) {
        return 0x7fc0;
    }
    f = (float)round_to_format(v, 8, -126, BF16_MAX); /* exact: representable in float */
    memcpy(&u, &f, sizeof u);
    return (uint16_t)(u >> 16);
}

/* Distance in units in the last place between two 16-bit patterns of the same format. */
static long ulp_distance16(uint16_t a, uint16_t b) {
    long oa = (a & 0x8000) ? -(long)(a & 0x7fff) : (long)(a & 0x7fff);
    long ob = (b & 0x8000) ? -(long)(b & 0x7fff) : (long)(b & 0x7fff);
    return oa > ob ? oa - ob : ob - oa;
}

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float f32_from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Element access for the three quarot_dtype values. */
static size_t dtype_size(quarot_dtype t) {
    return t == QUAROT_DTYPE_F32 ? 4 : 2;
}

static double load(const void *base, quarot_dtype t, size_t i) {
    if (t == QUAROT_DTYPE_F32) {
        return ((const float *)base)[i];
    }
    if (t == QUAROT_DTYPE_F16) {
        return f16_to_double(((const uint16_t *)base)[i]);
    }
    return bf16_to_double(((const uint16_t *)base)[i]);
}

/* Store v rounded once to type t. */
static void store(void *base, quarot_dtype t, size_t i, double v) {
    if (t == QUAROT_DTYPE_F32) {
        ((float *)base)[i] = (float)v;
    } else if (t == QUAROT_DTYPE_F16) {
        ((uint16_t *)base)[i] = double_to_f16(v);
    } else {
        ((uint16_t *)base)[i] = double_to_bf16(v);
    }
}

static const char *dtype_name(quarot_dtype t) {
    return t == QUAROT_DTYPE_F32 ? "f32" : t == QUAROT_DTYPE_F16 ? "f16" : "bf16";
}

/* ---------------------------------------------------------------------------------------
 * Test data: N(0,1)-like values with an outlier every 61 elements, like LLM activations
 * ------------------------------------------------------------------------------------- */

static uint64_t rng_state = 0x9E3779B97F4A7C15u;

static double rng_uniform(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}

static double rng_value(size_t i) {
    double u = rng_uniform() + rng_uniform() + rng_uniform() + rng_uniform() - 2.0;
    return (i % 61 == 7) ? u * 170.0 : u * 1.7;
}

/* `rows` rows of n values of type t at `stride`, gaps filled with byte `fill`. */
static void *make_rows(quarot_dtype t, size_t rows, size_t n, size_t stride, int fill) {
    size_t bytes = rows * stride * dtype_size(t);
    void *p = xmalloc(bytes);
    size_t r, i;
    memset(p, fill, bytes);
    for (r = 0; r < rows; ++r) {
        for (i = 0; i < n; ++i) {
            store(p, t, r * stride + i, rng_value(i));
        }
    }
    return p;
}

static void *duplicate(const void *p, size_t bytes) {
    void *q = xmalloc(bytes);
    memcpy(q, p, bytes);
    return q;
}

/* ---------------------------------------------------------------------------------------
 * References
 * ------------------------------------------------------------------------------------- */

/* The +-1 matrix H_K (row-major), from the library. */
static int8_t *k_matrix(size_t k) {
    int8_t *h = (int8_t *)xmalloc(k * k);
    CHECK_STATUS(quarot_hadamard_k_matrix(k, h, k * k), QUAROT_OK);
    return h;
}

/* In double precision: y = scale * (H_K (x) H_M) x with n = K * M (H_K^T if `transpose`),
 * or with `pad` y = scale * H_P[0:n, 0:n] x for P the next power of two >= n. */
static void reference_double(const double *x, double *y, size_t n, double scale, int transpose,
                             int pad) {
    size_t p = n, k, m, h, s, i, j, r;
    double *t;
    if (pad) {
        for (p = 1; p < n; p *= 2) {
        }
        k = 1;
    } else {
        k = quarot_hadamard_size_supported(n);
    }
    m = p / k;
    t = (double *)xmalloc(p * sizeof *t);
    for (i = 0; i < p; ++i) {
        t[i] = i < n ? x[i] : 0.0;
    }
    /* Walsh-Hadamard transform (Sylvester order) of each length-m segment. */
    for (h = 1; h < m; h *= 2) {
        for (s = 0; s < p; s += 2 * h) {
            for (i = s; i < s + h; ++i) {
                double a = t[i], b = t[i + h];
                t[i] = a + b;
                t[i + h] = a - b;
            }
        }
    }
    if (k > 1) {
        /* Mix the K segments: out[i][j] = sum_r H_K[i][r] seg[r][j]. */
        int8_t *hk = k_matrix(k);
        for (i = 0; i < k; ++i) {
            for (j = 0; j < m; ++j) {
                double acc = 0.0;
                for (r = 0; r < k; ++r) {
                    acc += (transpose ? hk[r * k + i] : hk[i * k + r]) * t[r * m + j];
                }
                y[i * m + j] = scale * acc;
            }
        }
        free(hk);
    } else {
        for (i = 0; i < n; ++i) {
            y[i] = scale * t[i];
        }
    }
    free(t);
}

/* The same map evaluated in float in the order the library documents for its kernels
 * (butterfly stages h = 1, 2, 4, ...; the K mix summed in order from 0; then * scale):
 * every instruction set must give these bits exactly. */
static void reference_f32(const float *x, float *y, size_t n, float scale, int transpose,
                          int pad) {
    size_t p = n, k, m, h, s, i, j, r;
    float *t;
    if (pad) {
        for (p = 1; p < n; p *= 2) {
        }
        k = 1;
    } else {
        k = quarot_hadamard_size_supported(n);
    }
    m = p / k;
    t = (float *)xmalloc(p * sizeof *t);
    for (i = 0; i < p; ++i) {
        t[i] = i < n ? x[i] : 0.0f;
    }
    for (h = 1; h < m; h *= 2) {
        for (s = 0; s < p; s += 2 * h) {
            for (i = s; i < s + h; ++i) {
                float a = t[i], b = t[i + h];
                t[i] = a + b;
                t[i + h] = a - b;
            }
        }
    }
    if (k > 1) {
        int8_t *hk = k_matrix(k);
        for (i = 0; i < k; ++i) {
            for (j = 0; j < m; ++j) {
                float acc = 0.0f;
                for (r = 0; r < k; ++r) {
                    float c = (float)(transpose ? hk[r * k + i] : hk[i * k + r]);
                    acc += c * t[r * m + j];
                }
                y[i * m + j] = acc * scale;
            }
        }
        free(hk);
    } else {
        for (i = 0; i < n; ++i) {
            y[i] = t[i] * scale;
        }
    }
    free(t);
}

static int log2_floor(size_t v) {
    int l = 0;
    while (v > 1) {
        v /= 2;
        ++l;
    }
    return l;
}

/* Bound on the float evaluation error of one output: a few dozen float roundings per
 * stage, relative to the output's natural size |scale| * ||x||_2. */
static double f32_tolerance(const double *x, size_t n, double scale) {
    size_t k = quarot_hadamard_size_supported(n);
    double norm = 0.0;
    size_t i;
    for (i = 0; i < n; ++i) {
        norm += x[i] * x[i];
    }
    if (k == 0) {
        k = 1;
    }
    return 64.0 * FLT_EPSILON * sqrt((double)(log2_floor(n / k) + (int)k + 1)) * fabs(scale) *
           sqrt(norm);
}

/* ---------------------------------------------------------------------------------------
 * Checking one batch against both references
 * ------------------------------------------------------------------------------------- */

/* Compare rows of `got` (type dt, stride ds) with the transform of `in` (type st, stride
 * ss). Returns the number of mismatching elements and prints the first few. */
static size_t compare_rows(const char *label, const void *in, quarot_dtype st, size_t ss,
                           const void *got, quarot_dtype dt, size_t ds, size_t rows, size_t n,
                           float scale, uint32_t flags) {
    int transpose = (flags & QUAROT_FLAG_TRANSPOSE_K) != 0;
    int pad = (flags & QUAROT_FLAG_PAD_TRUNCATE) != 0;
    double *x = (double *)xmalloc(n * sizeof *x);
    double *y = (double *)xmalloc(n * sizeof *y);
    float *xf = (float *)xmalloc(n * sizeof *xf);
    float *yf = (float *)xmalloc(n * sizeof *yf);
    size_t bad = 0, r, i;
    for (r = 0; r < rows; ++r) {
        double tol;
        for (i = 0; i < n; ++i) {
            x[i] = load(in, st, r * ss + i);
            xf[i] = (float)x[i];
        }
        reference_double(x, y, n, scale, transpose, pad);
        reference_f32(xf, yf, n, scale, transpose, pad);
        tol = f32_tolerance(x, n, scale);
        for (i = 0; i < n; ++i) {
            double g = load(got, dt, r * ds + i);
            int ok_exact, ok_math;
            if (dt == QUAROT_DTYPE_F32) {
                /* Bits of the float evaluation; within float error of the exact result. */
                ok_exact = f32_bits((float)g) == f32_bits(yf[i]);
                ok_math = fabs(g - y[i]) <= tol;
            } else {
                /* The float result rounded once; within 1 ulp of the exact result rounded
                 * once (or, where cancellation leaves a tiny value, within float error). */
                uint16_t gb = ((const uint16_t *)got)[r * ds + i];
                uint16_t from_f32 =
                    dt == QUAROT_DTYPE_F16 ? double_to_f16(yf[i]) : double_to_bf16(yf[i]);
                uint16_t from_exact =
                    dt == QUAROT_DTYPE_F16 ? double_to_f16(y[i]) : double_to_bf16(y[i]);
                ok_exact = gb == from_f32;
                ok_math = ulp_distance16(gb, from_exact) <= 1 || fabs(g - y[i]) <= tol;
            }
            if (!ok_exact || !ok_math) {
                if (bad < 5) {
                    fprintf(stderr,
                            "  %s: row %lu element %lu: got %.9g, float-order reference "
                            "%.9g, exact %.12g (tolerance %.3g)\n",
                            label, (unsigned long)r, (unsigned long)i, g, (double)yf[i], y[i],
                            tol);
                }
                ++bad;
            }
        }
    }
    free(x);
    free(y);
    free(xf);
    free(yf);
    return bad;
}

/* In-place transform of `rows` contiguous rows of type t through the typed entry point. */
static quarot_status transform_in_place(quarot_dtype t, void *data, size_t rows, size_t n,
                                        size_t stride, float scale, uint32_t flags) {
    if (t == QUAROT_DTYPE_F32) {
        return quarot_hadamard_f32((float *)data, rows, n, stride, scale, flags);
    }
    if (t == QUAROT_DTYPE_F16) {
        return quarot_hadamard_f16((uint16_t *)data, rows, n, stride, scale, flags);
    }
    return quarot_hadamard_bf16((uint16_t *)data, rows, n, stride, scale, flags);
}

static void test_in_place(quarot_dtype t, size_t n, uint32_t flags, float scale) {
    const size_t rows = 3;
    void *data = make_rows(t, rows, n, n, 0);
    void *in = duplicate(data, rows * n * dtype_size(t));
    size_t bad;
    char label[96];
    snprintf(label, sizeof label, "in-place %s n=%lu flags=%u scale=%g", dtype_name(t),
             (unsigned long)n, flags, (double)scale);
    CHECK_STATUS(transform_in_place(t, data, rows, n, n, scale, flags), QUAROT_OK);
    CHECK(strcmp(quarot_last_error(), "") == 0);
    bad = compare_rows(label, in, t, n, data, t, n, rows, n, scale, flags);
    if (bad != 0) {
        fprintf(stderr, "  %s: %lu mismatching elements\n", label, (unsigned long)bad);
    }
    CHECK(bad == 0);
    free(data);
    free(in);
}

static void test_transforms(void) {
    static const size_t widths[] = {128, 80, 11008, 4864 /* K = 76, Paley II */, 200 /* K = 100 */};
    static const quarot_dtype types[] = {QUAROT_DTYPE_F32, QUAROT_DTYPE_F16, QUAROT_DTYPE_BF16};
    size_t w, t;
    for (w = 0; w < sizeof widths / sizeof widths[0]; ++w) {
        size_t n = widths[w];
        float s = quarot_hadamard_scale(n);
        for (t = 0; t < 3; ++t) {
            test_in_place(types[t], n, 0, s);
            test_in_place(types[t], n, QUAROT_FLAG_TRANSPOSE_K, s);
        }
        test_in_place(QUAROT_DTYPE_F32, n, 0, 1.0f); /* unnormalized */
    }
    /* Quark <= 0.10 pad-and-truncate mode, for a width that is not a power of two. */
    test_in_place(QUAROT_DTYPE_F32, 80, QUAROT_FLAG_PAD_TRUNCATE, quarot_hadamard_scale(80));
    test_in_place(QUAROT_DTYPE_BF16, 100, QUAROT_FLAG_PAD_TRUNCATE, quarot_hadamard_scale(100));
}

/* QUAROT_FLAG_BLOCK_DIAGONAL on 13696 = 107 * 128 (no Hadamard matrix of that width): the
 * same bits as 107 rows of 128; without the flag an error naming the block mode. */
static void test_block_diagonal(void) {
    const size_t n = 13696, b = 128, rows = 2;
    float *x = (float *)make_rows(QUAROT_DTYPE_F32, rows, n, n, 0);
    float *y = (float *)duplicate(x, rows * n * sizeof *x);
    float *x0 = (float *)duplicate(x, rows * n * sizeof *x);
    float s = quarot_hadamard_scale(b);
    CHECK(quarot_hadamard_block_size(n) == b);
    CHECK_STATUS(quarot_hadamard_f32(x, rows, n, n, s, 0), QUAROT_ERR_UNSUPPORTED_SIZE);
    CHECK(contains(quarot_last_error(), "QUAROT_FLAG_BLOCK_DIAGONAL: 107 blocks of 128"));
    CHECK(memcmp(x, x0, rows * n * sizeof *x) == 0);
    CHECK_STATUS(quarot_hadamard_f32(x, rows, n, n, s, QUAROT_FLAG_BLOCK_DIAGONAL), QUAROT_OK);
    CHECK_STATUS(quarot_hadamard_f32(y, rows * n / b, b, b, s, 0), QUAROT_OK);
    CHECK(memcmp(x, y, rows * n * sizeof *x) == 0);
    CHECK_STATUS(quarot_hadamard_f32(x, rows, n, n, s,
                                     QUAROT_FLAG_BLOCK_DIAGONAL | QUAROT_FLAG_PAD_TRUNCATE),
                 QUAROT_ERR_INVALID_FLAGS);
    CHECK_STATUS(quarot_hadamard_f32(x, 1, 107, 107, s, QUAROT_FLAG_BLOCK_DIAGONAL),
                 QUAROT_ERR_UNSUPPORTED_SIZE);
    free(x);
    free(y);
    free(x0);
}

/* With the normalized scale, the QUAROT_FLAG_TRANSPOSE_K transform undoes the plain one. */
static void test_inverse(void) {
    const size_t n = 11008;
    float *x = (float *)make_rows(QUAROT_DTYPE_F32, 1, n, n, 0);
    float *y = (float *)duplicate(x, n * sizeof *x);
    float s = quarot_hadamard_scale(n);
    double err = 0.0, big = 0.0;
    size_t i;
    CHECK_STATUS(quarot_hadamard_f32(y, 1, n, n, s, 0), QUAROT_OK);
    CHECK_STATUS(quarot_hadamard_f32(y, 1, n, n, s, QUAROT_FLAG_TRANSPOSE_K), QUAROT_OK);
    for (i = 0; i < n; ++i) {
        err = fmax(err, fabs((double)y[i] - x[i]));
        big = fmax(big, fabs((double)x[i]));
    }
    CHECK(err <= 1e-4 * big);
    free(x);
    free(y);
}

/* ---------------------------------------------------------------------------------------
 * Strides, out-of-place, type conversion
 * ------------------------------------------------------------------------------------- */

/* Rows at a stride > n: the rows match a contiguous call, the gaps keep their bytes. */
static void test_strided(quarot_dtype t) {
    const size_t rows = 4, n = 80, stride = 87;
    const size_t es = dtype_size(t);
    unsigned char *data = (unsigned char *)make_rows(t, rows, n, stride, 0xA5);
    unsigned char *before = (unsigned char *)duplicate(data, rows * stride * es);
    unsigned char *packed = (unsigned char *)xmalloc(rows * n * es);
    float s = quarot_hadamard_scale(n);
    size_t r;
    for (r = 0; r < rows; ++r) {
        memcpy(packed + r * n * es, data + r * stride * es, n * es);
    }
    CHECK_STATUS(transform_in_place(t, data, rows, n, stride, s, QUAROT_FLAG_TRANSPOSE_K),
                 QUAROT_OK);
    CHECK_STATUS(transform_in_place(t, packed, rows, n, n, s, QUAROT_FLAG_TRANSPOSE_K),
                 QUAROT_OK);
    for (r = 0; r < rows; ++r) {
        CHECK(memcmp(data + r * stride * es, packed + r * n * es, n * es) == 0);
        /* The gap after each row (the last row's too) is untouched. */
        CHECK(memcmp(data + (r * stride + n) * es, before + (r * stride + n) * es,
                     (stride - n) * es) == 0);
    }
    free(data);
    free(before);
    free(packed);
}

/* f16 rows in, f32 rows out, both strided: src unchanged, dst gaps unchanged. */
static void test_out_of_place_f16_to_f32(void) {
    const size_t rows = 2, n = 11008, ss = n + 3, ds = n + 5;
    uint16_t *src = (uint16_t *)make_rows(QUAROT_DTYPE_F16, rows, n, ss, 0x3C);
    uint16_t *src_copy = (uint16_t *)duplicate(src, rows * ss * 2);
    float *dst = (float *)xmalloc(rows * ds * sizeof *dst);
    float *dst_copy;
    float s = quarot_hadamard_scale(n);
    size_t r, i, bad;
    for (i = 0; i < rows * ds; ++i) {
        dst[i] = f32_from_bits(0x7fc01234u); /* a NaN payload no transform produces */
    }
    dst_copy = (float *)duplicate(dst, rows * ds * sizeof *dst);
    CHECK_STATUS(quarot_hadamard(src, QUAROT_DTYPE_F16, ss, dst, QUAROT_DTYPE_F32, ds, rows, n, s,
                                 0),
                 QUAROT_OK);
    CHECK(memcmp(src, src_copy, rows * ss * 2) == 0);
    bad = compare_rows("f16 -> f32", src, QUAROT_DTYPE_F16, ss, dst, QUAROT_DTYPE_F32, ds, rows,
                       n, s, 0);
    CHECK(bad == 0);
    for (r = 0; r < rows; ++r) {
        CHECK(memcmp(dst + r * ds + n, dst_copy + r * ds + n, (ds - n) * sizeof *dst) == 0);
    }
    free(src);
    free(src_copy);
    free(dst);
    free(dst_copy);
}

/* Every (source, destination) type pair, and the same-rows case of quarot_hadamard. */
static void test_all_type_pairs(void) {
    static const quarot_dtype types[] = {QUAROT_DTYPE_F32, QUAROT_DTYPE_F16, QUAROT_DTYPE_BF16};
    const size_t rows = 2, n = 80;
    float s = quarot_hadamard_scale(n);
    size_t a, b;
    for (a = 0; a < 3; ++a) {
        for (b = 0; b < 3; ++b) {
            void *src = make_rows(types[a], rows, n, n, 0);
            void *src_copy = duplicate(src, rows * n * dtype_size(types[a]));
            void *dst = xmalloc(rows * n * dtype_size(types[b]));
            char label[64];
            snprintf(label, sizeof label, "%s -> %s", dtype_name(types[a]),
                     dtype_name(types[b]));
            CHECK_STATUS(quarot_hadamard(src, types[a], n, dst, types[b], n, rows, n, s,
                                         QUAROT_FLAG_TRANSPOSE_K),
                         QUAROT_OK);
            CHECK(memcmp(src, src_copy, rows * n * dtype_size(types[a])) == 0);
            CHECK(compare_rows(label, src, types[a], n, dst, types[b], n, rows, n, s,
                               QUAROT_FLAG_TRANSPOSE_K) == 0);
            if (a == b) {
                /* src == dst with the same stride and type is an in-place call. */
                CHECK_STATUS(
                    quarot_hadamard(src, types[a], n, src, types[a], n, rows, n, s,
                                    QUAROT_FLAG_TRANSPOSE_K),
                    QUAROT_OK);
                CHECK(memcmp(src, dst, rows * n * dtype_size(types[a])) == 0);
            }
            free(src);
            free(src_copy);
            free(dst);
        }
    }
}

/* NaN and Inf in the data are not errors; they propagate like in any sum. */
static void test_non_finite_data(void) {
    const size_t n = 11008;
    float *row = (float *)make_rows(QUAROT_DTYPE_F32, 2, n, n, 0);
    uint16_t *b = (uint16_t *)make_rows(QUAROT_DTYPE_BF16, 1, n, n, 0);
    float s = quarot_hadamard_scale(n);
    size_t i, nan_count = 0, inf_count = 0, bnan = 0;
    row[5] = NAN;           /* every output depends on every input: all NaN */
    row[n + 3] = INFINITY;  /* one infinite input: every output is +-Inf */
    b[9] = 0x7fc0;          /* bfloat16 NaN */
    CHECK_STATUS(quarot_hadamard_f32(row, 2, n, n, s, 0), QUAROT_OK);
    CHECK_STATUS(quarot_hadamard_bf16(b, 1, n, n, s, 0), QUAROT_OK);
    for (i = 0; i < n; ++i) {
        nan_count += isnan(row[i]) ? 1 : 0;
        inf_count += isinf(row[n + i]) ? 1 : 0;
        bnan += (b[i] & 0x7fff) > 0x7f80 ? 1 : 0;
    }
    CHECK(nan_count == n);
    CHECK(inf_count == n);
    CHECK(bnan == n);
    free(row);
    free(b);
}

/* ---------------------------------------------------------------------------------------
 * Errors: the status, the message, and not one byte written
 * ------------------------------------------------------------------------------------- */

static void test_errors(void) {
    const size_t n = 128;
    float *buf = (float *)make_rows(QUAROT_DTYPE_F32, 4, n, n, 0);
    float *copy = (float *)duplicate(buf, 4 * n * sizeof *buf);
    uint16_t *hbuf = (uint16_t *)make_rows(QUAROT_DTYPE_F16, 4, n, n, 0);
    uint16_t *hcopy = (uint16_t *)duplicate(hbuf, 4 * n * sizeof *hbuf);
    float s = quarot_hadamard_scale(n);
    size_t bytes = 4 * n * sizeof *buf;

#define UNCHANGED() \
    CHECK(memcmp(buf, copy, bytes) == 0 && memcmp(hbuf, hcopy, 4 * n * sizeof *hbuf) == 0)

    /* NULL data with rows > 0. */
    CHECK_STATUS(quarot_hadamard_f32(NULL, 1, n, n, s, 0), QUAROT_ERR_NULL_POINTER);
    CHECK(strlen(quarot_last_error()) > 0);
    CHECK_STATUS(quarot_hadamard_f16(NULL, 2, n, n, s, 0), QUAROT_ERR_NULL_POINTER);
    CHECK_STATUS(quarot_hadamard_bf16(NULL, 2, n, n, s, 0), QUAROT_ERR_NULL_POINTER);
    CHECK_STATUS(quarot_hadamard(NULL, QUAROT_DTYPE_F32, n, buf, QUAROT_DTYPE_F32, n, 1, n, s, 0),
                 QUAROT_ERR_NULL_POINTER);
    UNCHANGED();
    CHECK_STATUS(quarot_hadamard(buf, QUAROT_DTYPE_F32, n, NULL, QUAROT_DTYPE_F32, n, 1, n, s, 0),
                 QUAROT_ERR_NULL_POINTER);
    UNCHANGED();

    /* rows == 0 is an empty batch: NULL is fine, and success clears the message. */
    CHECK_STATUS(quarot_hadamard_f32(NULL, 0, n, n, s, 0), QUAROT_OK);
    CHECK(strcmp(quarot_last_error(), "") == 0);
    CHECK_STATUS(quarot_hadamard_f16(NULL, 0, n, n, s, 0), QUAROT_OK);
    CHECK_STATUS(quarot_hadamard(NULL, QUAROT_DTYPE_BF16, n, NULL, QUAROT_DTYPE_F32, n, 0, n, s, 0),
                 QUAROT_OK);
    /* ... but the other arguments are still checked. */
    CHECK_STATUS(quarot_hadamard_f32(NULL, 0, 11000, 11000, s, 0), QUAROT_ERR_UNSUPPORTED_SIZE);

    /* Unsupported widths. */
    CHECK_STATUS(quarot_hadamard_f32(buf, 1, 0, n, s, 0), QUAROT_ERR_UNSUPPORTED_SIZE);
    UNCHANGED();
    {
        float *big = (float *)make_rows(QUAROT_DTYPE_F32, 1, 11000, 11000, 0);
        float *big_copy = (float *)duplicate(big, 11000 * sizeof *big);
        CHECK_STATUS(quarot_hadamard_f32(big, 1, 11000, 11000, s, 0),
                     QUAROT_ERR_UNSUPPORTED_SIZE);
        CHECK(contains(quarot_last_error(), "11008"));
        CHECK(contains(quarot_last_error(), "10944"));
        CHECK(memcmp(big, big_copy, 11000 * sizeof *big) == 0);
        free(big);
        free(big_copy);
    }
    CHECK_STATUS(quarot_hadamard_f16(hbuf, 1, 50, n, s, 0), QUAROT_ERR_UNSUPPORTED_SIZE);
    UNCHANGED();

    /* Stride smaller than the width. */
    CHECK_STATUS(quarot_hadamard_f32(buf, 2, n, n - 1, s, 0), QUAROT_ERR_INVALID_STRIDE);
    UNCHANGED();
    CHECK_STATUS(quarot_hadamard(buf, QUAROT_DTYPE_F32, n, hbuf, QUAROT_DTYPE_F16, 64, 2, n, s, 0),
                 QUAROT_ERR_INVALID_STRIDE);
    UNCHANGED();

    /* rows * row_stride overflows. */
    CHECK_STATUS(quarot_hadamard_f32(buf, SIZE_MAX / 2, 4, 4, 1.0f, 0), QUAROT_ERR_SIZE_OVERFLOW);
    UNCHANGED();
    CHECK_STATUS(quarot_hadamard_bf16(hbuf, 2, n, SIZE_MAX / 2, s, 0), QUAROT_ERR_SIZE_OVERFLOW);
    UNCHANGED();

    /* Unknown flag bits. */
    CHECK_STATUS(quarot_hadamard_f32(buf, 1, n, n, s, 1u << 31), QUAROT_ERR_INVALID_FLAGS);
    UNCHANGED();
    CHECK_STATUS(quarot_hadamard_f16(hbuf, 1, n, n, s, 8u), QUAROT_ERR_INVALID_FLAGS);
    UNCHANGED();

    /* Unknown element types. */
    CHECK_STATUS(quarot_hadamard(buf, 7, n, buf, QUAROT_DTYPE_F32, n, 1, n, s, 0),
                 QUAROT_ERR_INVALID_DTYPE);
    UNCHANGED();
    CHECK_STATUS(quarot_hadamard(buf, QUAROT_DTYPE_F32, n, hbuf, -1, n, 1, n, s, 0),
                 QUAROT_ERR_INVALID_DTYPE);
    UNCHANGED();

    /* src and dst overlap without being the same rows. */
    CHECK_STATUS(quarot_hadamard(buf, QUAROT_DTYPE_F32, n, buf + 64, QUAROT_DTYPE_F32, n, 1, n, s,
                                 0),
                 QUAROT_ERR_OVERLAP);
    UNCHANGED();
    CHECK_STATUS(quarot_hadamard(buf, QUAROT_DTYPE_F32, n, buf, QUAROT_DTYPE_F32, n + 1, 2, n, s,
                                 0),
                 QUAROT_ERR_OVERLAP);
    UNCHANGED();
    CHECK_STATUS(quarot_hadamard(buf, QUAROT_DTYPE_F32, n, buf, QUAROT_DTYPE_F16, n, 1, n, s, 0),
                 QUAROT_ERR_OVERLAP);
    UNCHANGED();

    /* Non-finite scale. */
    CHECK_STATUS(quarot_hadamard_f32(buf, 1, n, n, NAN, 0), QUAROT_ERR_INVALID_ARGUMENT);
    UNCHANGED();
    CHECK_STATUS(quarot_hadamard_bf16(hbuf, 1, n, n, INFINITY, 0), QUAROT_ERR_INVALID_ARGUMENT);
    UNCHANGED();
#undef UNCHANGED

    free(buf);
    free(copy);
    free(hbuf);
    free(hcopy);
}

/* ---------------------------------------------------------------------------------------
 * Sizes, scales, tables, strings, versions, instruction sets
 * ------------------------------------------------------------------------------------- */

static void test_sizes(void) {
    static const size_t table[] = {12, 20, 28, 36, 40, 44, 52, 60, 108, 140, 156, 172,
                                   68, 76, 100, 148, 244, 684, 924};
    size_t below = 1, above = 1, i;
    CHECK(quarot_hadamard_size_supported(4096) == 1);
    CHECK(quarot_hadamard_size_supported(11008) == 172);
    CHECK(quarot_hadamard_size_supported(14336) == 28);
    CHECK(quarot_hadamard_size_supported(80) == 40);
    CHECK(quarot_hadamard_size_supported(20) == 20);
    CHECK(quarot_hadamard_size_supported(1) == 1);
    CHECK(quarot_hadamard_size_supported(11000) == 0);
    CHECK(quarot_hadamard_size_supported(0) == 0);
    /* Beyond QuaRot's table: Paley orders (README "Supported widths"). */
    CHECK(quarot_hadamard_size_supported(4864) == 76);
    CHECK(quarot_hadamard_size_supported(25600) == 100);
    CHECK(quarot_hadamard_size_supported(29568) == 924);
    CHECK(quarot_hadamard_size_supported(13696) == 0);
    CHECK(quarot_hadamard_block_size(13696) == 128);
    CHECK(quarot_hadamard_block_size(4864) == 4864);
    CHECK(quarot_hadamard_block_size(107) == 0);
    CHECK(quarot_hadamard_block_size(0) == 0);

    CHECK_STATUS(quarot_hadamard_nearest_sizes(11000, &below, &above), QUAROT_OK);
    CHECK(below == 10944 && above == 11008);
    CHECK_STATUS(quarot_hadamard_nearest_sizes(4096, &below, &above), QUAROT_OK);
    CHECK(below == 4096 && above == 4096);
    CHECK_STATUS(quarot_hadamard_nearest_sizes(0, &below, NULL), QUAROT_OK);
    CHECK(below == 0);
    CHECK_STATUS(quarot_hadamard_nearest_sizes(100, NULL, NULL), QUAROT_OK);

    CHECK(quarot_hadamard_scale(4096) == 1.0f / 64.0f);
    CHECK(quarot_hadamard_scale(11008) == (float)(1.0 / sqrt(11008.0)));
    CHECK(quarot_hadamard_scale(0) == 0.0f);

    /* Every H_K of the table and some Paley orders: +-1 entries and H H^T = K I. */
    for (i = 0; i < sizeof table / sizeof table[0]; ++i) {
        size_t k = table[i], a, b, c;
        int8_t *h = k_matrix(k);
        int ok = 1;
        for (a = 0; a < k && ok; ++a) {
            for (b = 0; b < k && ok; ++b) {
                long dot = 0;
                for (c = 0; c < k; ++c) {
                    ok &= h[a * k + c] == 1 || h[a * k + c] == -1;
                    dot += h[a * k + c] * h[b * k + c];
                }
                ok &= dot == (a == b ? (long)k : 0);
            }
        }
        if (!ok) {
            fprintf(stderr, "  H_%lu is not a Hadamard matrix\n", (unsigned long)k);
        }
        CHECK(ok);
        free(h);
    }
    {
        int8_t out[144];
        int8_t before[144];
        memset(out, 0x55, sizeof out);
        memcpy(before, out, sizeof out);
        CHECK_STATUS(quarot_hadamard_k_matrix(13, out, sizeof out), QUAROT_ERR_INVALID_ARGUMENT);
        CHECK_STATUS(quarot_hadamard_k_matrix(12, out, 143), QUAROT_ERR_INVALID_ARGUMENT);
        CHECK(contains(quarot_last_error(), "144"));
        CHECK_STATUS(quarot_hadamard_k_matrix(12, NULL, 144), QUAROT_ERR_NULL_POINTER);
        CHECK(memcmp(out, before, sizeof out) == 0);
    }
}

static void test_strings(void) {
    const char *unknown = quarot_status_string(9999);
    const char *seen[14];
    int32_t code;
    char expected[64];
    CHECK(unknown != NULL && strcmp(unknown, "unknown status") == 0);
    CHECK(strcmp(quarot_status_string(-1), unknown) == 0);
    CHECK(strcmp(quarot_status_string(14), unknown) == 0);
    for (code = 0; code <= 13; ++code) {
        const char *s = quarot_status_string(code);
        int32_t other;
        CHECK(s != NULL && s[0] != '\0');
        CHECK(s != NULL && strcmp(s, unknown) != 0);
        for (other = 0; other < code; ++other) {
            CHECK(strcmp(s, seen[other]) != 0);
        }
        seen[code] = s;
    }
    CHECK(QUAROT_OK == 0 && QUAROT_ERR_PANIC == 12);

    CHECK(strcmp(quarot_version(), QUAROT_VERSION_STRING) == 0);
    snprintf(expected, sizeof expected, "%d.%d.%d", QUAROT_VERSION_MAJOR, QUAROT_VERSION_MINOR,
             QUAROT_VERSION_PATCH);
    CHECK(strcmp(expected, QUAROT_VERSION_STRING) == 0);
}

static void test_isa(const char *expect_name) {
    quarot_isa isa = -1;
    CHECK_STATUS(quarot_active_isa(&isa), QUAROT_OK);
    CHECK(quarot_isa_available(isa) == 1);
    CHECK(strcmp(quarot_isa_name(isa), "unknown") != 0);
    CHECK_STATUS(quarot_active_isa(NULL), QUAROT_ERR_NULL_POINTER);
    CHECK(quarot_isa_available(QUAROT_ISA_SCALAR) == 1);
    CHECK(quarot_isa_available(QUAROT_ISA_AVX2) == 0 || quarot_isa_available(QUAROT_ISA_AVX2) == 1);
    CHECK(quarot_isa_available(QUAROT_ISA_AVX512) == 0 ||
          quarot_isa_available(QUAROT_ISA_AVX2) == 1); /* AVX-512 implies AVX2 here */
    CHECK(quarot_isa_available(99) == 0 && quarot_isa_available(-1) == 0);
    CHECK(strcmp(quarot_isa_name(QUAROT_ISA_SCALAR), "scalar") == 0);
    CHECK(strcmp(quarot_isa_name(QUAROT_ISA_AVX2), "avx2") == 0);
    CHECK(strcmp(quarot_isa_name(QUAROT_ISA_AVX512), "avx512") == 0);
    CHECK(strcmp(quarot_isa_name(99), "unknown") == 0);
    if (expect_name != NULL) {
        if (strcmp(quarot_isa_name(isa), expect_name) != 0) {
            fprintf(stderr, "  active instruction set is %s, expected %s\n", quarot_isa_name(isa),
                    expect_name);
        }
        CHECK(strcmp(quarot_isa_name(isa), expect_name) == 0);
    }
    printf("abi_test: libquarot %s, instruction set %s\n", quarot_version(), quarot_isa_name(isa));
}

/* ---------------------------------------------------------------------------------------
 * Threads: row splitting, the opt-in pool, concurrent calls, per-thread messages
 * ------------------------------------------------------------------------------------- */

static void test_rows_for_thread(void) {
    static const size_t row_counts[] = {0, 1, 5, 7, 100, 1001};
    static const size_t thread_counts[] = {1, 2, 3, 4, 8, 13};
    size_t a, b, first = 7, count = 7;
    for (a = 0; a < sizeof row_counts / sizeof row_counts[0]; ++a) {
        for (b = 0; b < sizeof thread_counts / sizeof thread_counts[0]; ++b) {
            size_t rows = row_counts[a], nth = thread_counts[b], ith, next = 0;
            size_t lo = (size_t)-1, hi = 0;
            int ok = 1;
            for (ith = 0; ith < nth; ++ith) {
                CHECK_STATUS(quarot_rows_for_thread(rows, ith, nth, &first, &count), QUAROT_OK);
                ok &= first == next; /* contiguous, in order: each row exactly once */
                next = first + count;
                lo = count < lo ? count : lo;
                hi = count > hi ? count : hi;
            }
            ok &= next == rows && hi - lo <= 1;
            if (!ok) {
                fprintf(stderr, "  quarot_rows_for_thread: bad split of %lu rows over %lu\n",
                        (unsigned long)rows, (unsigned long)nth);
            }
            CHECK(ok);
        }
    }
    first = 7;
    count = 7;
    CHECK_STATUS(quarot_rows_for_thread(10, 0, 0, &first, &count), QUAROT_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(quarot_rows_for_thread(10, 3, 3, &first, &count), QUAROT_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(quarot_rows_for_thread(10, 0, 2, NULL, &count), QUAROT_ERR_NULL_POINTER);
    CHECK_STATUS(quarot_rows_for_thread(10, 0, 2, &first, NULL), QUAROT_ERR_NULL_POINTER);
    CHECK(first == 7 && count == 7);
}

static void test_parallel_flag(void) {
    /* Both jobs above 2^19 elements: smaller ones run on the calling thread anyway. */
    const size_t rows = 160, n = 4096, rows_b = 50, n_b = 11008;
    float *serial = (float *)make_rows(QUAROT_DTYPE_F32, rows, n, n, 0);
    float *parallel = (float *)duplicate(serial, rows * n * sizeof *serial);
    uint16_t *serial_b = (uint16_t *)make_rows(QUAROT_DTYPE_BF16, rows_b, n_b, n_b, 0);
    uint16_t *parallel_b = (uint16_t *)duplicate(serial_b, rows_b * n_b * 2);
    float s = quarot_hadamard_scale(n), s_b = quarot_hadamard_scale(n_b);

    CHECK_STATUS(quarot_set_num_threads(2), QUAROT_OK);
    CHECK_STATUS(quarot_hadamard_f32(serial, rows, n, n, s, 0), QUAROT_OK);
    CHECK_STATUS(quarot_hadamard_f32(parallel, rows, n, n, s, QUAROT_FLAG_PARALLEL), QUAROT_OK);
    CHECK(memcmp(serial, parallel, rows * n * sizeof *serial) == 0);
    CHECK_STATUS(quarot_hadamard_bf16(serial_b, rows_b, n_b, n_b, s_b, QUAROT_FLAG_TRANSPOSE_K),
                 QUAROT_OK);
    CHECK_STATUS(quarot_hadamard_bf16(parallel_b, rows_b, n_b, n_b, s_b,
                                      QUAROT_FLAG_TRANSPOSE_K | QUAROT_FLAG_PARALLEL),
                 QUAROT_OK);
    CHECK(memcmp(serial_b, parallel_b, rows_b * n_b * 2) == 0);

    /* Back to the default pool size; out-of-range sizes are refused. */
    CHECK_STATUS(quarot_set_num_threads(5000), QUAROT_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(quarot_set_num_threads(0), QUAROT_OK);
    CHECK_STATUS(quarot_hadamard_f32(parallel, rows, n, n, s, QUAROT_FLAG_PARALLEL), QUAROT_OK);
    CHECK_STATUS(quarot_hadamard_f32(serial, rows, n, n, s, 0), QUAROT_OK);
    CHECK(memcmp(serial, parallel, rows * n * sizeof *serial) == 0);

    free(serial);
    free(parallel);
    free(serial_b);
    free(parallel_b);
}

struct worker_job {
    float *data;
    size_t rows, n, ith, nth, bad_n;
    int status;       /* of the transform */
    int ok_message;   /* the thread saw its own error message */
};

/* An engine worker: take this thread's rows and transform them on this thread. */
static void *worker(void *arg) {
    struct worker_job *job = (struct worker_job *)arg;
    size_t first = 0, count = 0;
    char expected[32];
    float s = quarot_hadamard_scale(job->n);
    job->status = (int)quarot_rows_for_thread(job->rows, job->ith, job->nth, &first, &count);
    if (job->status == QUAROT_OK) {
        job->status = (int)quarot_hadamard_f32(job->data + first * job->n, count, job->n, job->n, s,
                                               QUAROT_FLAG_TRANSPOSE_K);
    }
    /* A failure on this thread sets this thread's message only (and writes nothing). */
    snprintf(expected, sizeof expected, "n = %lu", (unsigned long)job->bad_n);
    job->ok_message = quarot_hadamard_f32(job->data + first * job->n, 1, job->bad_n, job->bad_n,
                                          s, 0) == QUAROT_ERR_UNSUPPORTED_SIZE &&
                      contains(quarot_last_error(), expected);
    return NULL;
}

static void test_threads(void) {
    const size_t rows = 9, n = 11008, nth = 2;
    float *serial = (float *)make_rows(QUAROT_DTYPE_F32, rows, n, n, 0);
    float *threaded = (float *)duplicate(serial, rows * n * sizeof *serial);
    pthread_t threads[2];
    struct worker_job jobs[2];
    size_t i;
    /* The main thread's own message, which the workers must not replace. */
    CHECK_STATUS(quarot_hadamard_f32(serial, 1, 11000, 11000, 1.0f, 0),
                 QUAROT_ERR_UNSUPPORTED_SIZE);
    for (i = 0; i < nth; ++i) {
        memset(&jobs[i], 0, sizeof jobs[i]);
        jobs[i].data = threaded;
        jobs[i].rows = rows;
        jobs[i].n = n;
        jobs[i].ith = i;
        jobs[i].nth = nth;
        jobs[i].bad_n = 13000 + i;
        jobs[i].status = -1;
        CHECK(pthread_create(&threads[i], NULL, worker, &jobs[i]) == 0);
    }
    for (i = 0; i < nth; ++i) {
        CHECK(pthread_join(threads[i], NULL) == 0);
        CHECK(jobs[i].status == QUAROT_OK);
        CHECK(jobs[i].ok_message);
    }
    CHECK(contains(quarot_last_error(), "n = 11000"));
    CHECK_STATUS(quarot_hadamard_f32(serial, rows, n, n, quarot_hadamard_scale(n),
                                     QUAROT_FLAG_TRANSPOSE_K),
                 QUAROT_OK);
    CHECK(memcmp(serial, threaded, rows * n * sizeof *serial) == 0);
    free(serial);
    free(threaded);
}

/* ---------------------------------------------------------------------------------------
 * QUAROT_ISA forcing a set this CPU lacks (or none): transforms refuse, data unchanged
 * ------------------------------------------------------------------------------------- */

static void test_isa_unavailable(void) {
    const size_t n = 128;
    float *buf = (float *)make_rows(QUAROT_DTYPE_F32, 2, n, n, 0);
    float *copy = (float *)duplicate(buf, 2 * n * sizeof *buf);
    uint16_t *h = (uint16_t *)make_rows(QUAROT_DTYPE_F16, 2, n, n, 0);
    uint16_t *hcopy = (uint16_t *)duplicate(h, 2 * n * sizeof *h);
    float s = quarot_hadamard_scale(n);
    quarot_isa isa = 12345;
    CHECK_STATUS(quarot_hadamard_f32(buf, 2, n, n, s, 0), QUAROT_ERR_ISA_UNAVAILABLE);
    CHECK(contains(quarot_last_error(), "QUAROT_ISA"));
    CHECK_STATUS(quarot_hadamard_f16(h, 2, n, n, s, 0), QUAROT_ERR_ISA_UNAVAILABLE);
    CHECK_STATUS(quarot_hadamard_bf16(h, 2, n, n, s, QUAROT_FLAG_PARALLEL),
                 QUAROT_ERR_ISA_UNAVAILABLE);
    CHECK_STATUS(quarot_hadamard(buf, QUAROT_DTYPE_F32, n, h, QUAROT_DTYPE_F16, n, 2, n, s, 0),
                 QUAROT_ERR_ISA_UNAVAILABLE);
    CHECK(memcmp(buf, copy, 2 * n * sizeof *buf) == 0);
    CHECK(memcmp(h, hcopy, 2 * n * sizeof *h) == 0);
    CHECK_STATUS(quarot_active_isa(&isa), QUAROT_ERR_ISA_UNAVAILABLE);
    CHECK(isa == 12345);
    /* Functions that compute nothing still work. */
    CHECK(quarot_hadamard_size_supported(11008) == 172);
    CHECK(strcmp(quarot_version(), QUAROT_VERSION_STRING) == 0);
    free(buf);
    free(copy);
    free(h);
    free(hcopy);
}

/* Scratch kept between dense rotations, and quarot_release_scratch giving it back; a
 * rotation on reused (dirty) scratch gives the same bits as on fresh scratch. */
static void test_scratch(void) {
    const size_t r = 512, m = 8;
    double *rot = (double *)xmalloc(r * r * sizeof(double));
    float *w = (float *)xmalloc(m * r * sizeof(float));
    float *w2 = (float *)xmalloc(m * r * sizeof(float));
    size_t i, kept, freed;
    for (i = 0; i < r * r; ++i) {
        rot[i] = (double)((i * 7919u) % 1001u) / 1001.0 - 0.5;
    }
    for (i = 0; i < m * r; ++i) {
        w[i] = (float)((i * 31u) % 97u) / 97.0f - 0.5f;
    }
    memcpy(w2, w, m * r * sizeof(float));
    quarot_release_scratch();
    CHECK(quarot_scratch_retained() == 0);
    CHECK_STATUS(quarot_rotate_in_channels(w, QUAROT_DTYPE_F32, m, r, r, rot, r, 0), QUAROT_OK);
    kept = quarot_scratch_retained();
    /* the packed rotation alone is r * r doubles */
    CHECK(kept >= r * r * sizeof(double));
    /* the same rotation again, on the kept (dirty) buffers, of the second copy */
    CHECK_STATUS(quarot_rotate_in_channels(w2, QUAROT_DTYPE_F32, m, r, r, rot, r, 0), QUAROT_OK);
    CHECK(memcmp(w, w2, m * r * sizeof(float)) == 0);
    freed = quarot_release_scratch();
    CHECK(freed == kept);
    CHECK(quarot_scratch_retained() == 0);
    CHECK(quarot_release_scratch() == 0);
    free(rot);
    free(w);
    free(w2);
}

static int op_ok(void *user_data, const quarot_activations *a, void *out) {
    (void)a;
    (void)out;
    ++*(int *)user_data;
    return 0;
}

/* Bad input to the handle functions: each its status, *out untouched, data untouched. */
/* quarot_quantize: the handles' quantizer on its own. FAKE rewrites rows with at most
 * 2^bits levels of one scale per row; REAL gives codes, scales, zeros that reproduce those
 * values; errors leave the data alone. */
static void test_quantize(void) {
    enum { ROWS = 3, N = 64, STRIDE = 70 };
    float x[ROWS * STRIDE], fake[ROWS * STRIDE], scales[ROWS], zeros[ROWS];
    int8_t codes[ROWS * N];
    uint16_t h[N];
    quarot_quant_config q;
    size_t i, r;
    memset(&q, 0, sizeof q);
    q.kind = QUAROT_QUANT_FAKE;
    q.bits = 4;
    q.symmetric = 1;
    q.group_size = 0;
    q.clip_ratio = 1.0f;
    for (i = 0; i < ROWS * STRIDE; ++i) {
        x[i] = (float)((int)((i * 2654435761u) % 2001u) - 1000) / 100.0f;
    }
    memcpy(fake, x, sizeof x);
    CHECK_STATUS(quarot_quantize(fake, QUAROT_DTYPE_F32, ROWS, N, STRIDE, &q, NULL, NULL, NULL),
                 QUAROT_OK);
    q.kind = QUAROT_QUANT_REAL;
    CHECK_STATUS(quarot_quantize(x, QUAROT_DTYPE_F32, ROWS, N, STRIDE, &q, codes, scales, zeros),
                 QUAROT_OK);
    for (r = 0; r < ROWS; ++r) {
        int ok = 1;
        float amax = 0.0f;
        for (i = 0; i < N; ++i) {
            float v = x[r * STRIDE + i];
            amax = fabsf(v) > amax ? fabsf(v) : amax;
        }
        ok &= scales[r] == amax / 7.0f && zeros[r] == 0.0f;
        for (i = 0; i < N; ++i) {
            ok &= codes[r * N + i] >= -8 && codes[r * N + i] <= 7;
            ok &= fake[r * STRIDE + i] == scales[r] * (float)codes[r * N + i];
        }
        for (i = N; i < STRIDE && r * STRIDE + i < ROWS * STRIDE; ++i) {
            ok &= fake[r * STRIDE + i] == x[r * STRIDE + i]; /* gaps untouched */
        }
        CHECK(ok);
    }
    /* f16 rows, asymmetric 8 bits, groups of 16. */
    for (i = 0; i < N; ++i) {
        h[i] = (uint16_t)(0x3c00u + (uint16_t)(i * 7u)); /* 1.0 upward */
    }
    q.kind = QUAROT_QUANT_FAKE;
    q.bits = 8;
    q.symmetric = 0;
    q.group_size = 16;
    CHECK_STATUS(quarot_quantize(h, QUAROT_DTYPE_F16, 1, N, N, &q, NULL, NULL, NULL), QUAROT_OK);
    /* Errors: data untouched. */
    memcpy(fake, x, sizeof x);
    q.group_size = 10; /* does not divide 64 */
    CHECK_STATUS(quarot_quantize(fake, QUAROT_DTYPE_F32, ROWS, N, STRIDE, &q, NULL, NULL, NULL),
                 QUAROT_ERR_INVALID_ARGUMENT);
    q.group_size = 0;
    q.kind = QUAROT_QUANT_NONE;
    CHECK_STATUS(quarot_quantize(fake, QUAROT_DTYPE_F32, ROWS, N, STRIDE, &q, NULL, NULL, NULL),
                 QUAROT_ERR_INVALID_ARGUMENT);
    q.kind = QUAROT_QUANT_REAL;
    CHECK_STATUS(quarot_quantize(fake, QUAROT_DTYPE_F32, ROWS, N, STRIDE, &q, codes, NULL, zeros),
                 QUAROT_ERR_NULL_POINTER);
    q.kind = QUAROT_QUANT_FAKE;
    CHECK_STATUS(quarot_quantize(fake, QUAROT_DTYPE_F32, ROWS, N, N - 1, &q, NULL, NULL, NULL),
                 QUAROT_ERR_INVALID_STRIDE);
    CHECK_STATUS(quarot_quantize(fake, 7, ROWS, N, STRIDE, &q, NULL, NULL, NULL),
                 QUAROT_ERR_INVALID_DTYPE);
    CHECK_STATUS(quarot_quantize(fake, QUAROT_DTYPE_F32, ROWS, N, STRIDE, NULL, NULL, NULL, NULL),
                 QUAROT_ERR_NULL_POINTER);
    CHECK_STATUS(quarot_quantize(NULL, QUAROT_DTYPE_F32, ROWS, N, STRIDE, &q, NULL, NULL, NULL),
                 QUAROT_ERR_NULL_POINTER);
    CHECK(memcmp(fake, x, sizeof x) == 0);
    CHECK_STATUS(quarot_quantize(NULL, QUAROT_DTYPE_F32, 0, N, STRIDE, &q, NULL, NULL, NULL),
                 QUAROT_OK);
}

static void test_online_errors(void) {
    quarot_r4_wrapper *const sentinel = (quarot_r4_wrapper *)&checks; /* never dereferenced */
    quarot_r4_wrapper *w = sentinel;
    quarot_qk_rotation *const qsentinel = (quarot_qk_rotation *)&failures;
    quarot_qk_rotation *h = qsentinel;
    quarot_quant_config q;
    quarot_qk_shape s;
    float x[2 * 64], x0[2 * 64], qv[2 * 64], kv[64], qv0[2 * 64];
    int calls = 0;
    size_t i;
    for (i = 0; i < 2 * 64; ++i) {
        x[i] = x0[i] = qv[i] = qv0[i] = (float)i - 50.0f;
    }
    for (i = 0; i < 64; ++i) {
        kv[i] = (float)i;
    }
    memset(&q, 0, sizeof q);
    q.kind = QUAROT_QUANT_FAKE;
    q.bits = 4;
    q.symmetric = 1;
    q.clip_ratio = 1.0f;

    CHECK_STATUS(quarot_r4_wrapper_new(64, 0, QUAROT_DTYPE_F32, 0, NULL, op_ok, &calls, NULL),
                 QUAROT_ERR_NULL_POINTER);
    CHECK_STATUS(quarot_r4_wrapper_new(64, 0, QUAROT_DTYPE_F32, 0, NULL, NULL, &calls, &w),
                 QUAROT_ERR_NULL_POINTER);
    CHECK_STATUS(quarot_r4_wrapper_new(64, 0, 2, 0, NULL, op_ok, &calls, &w),
                 QUAROT_ERR_INVALID_DTYPE);
    CHECK_STATUS(quarot_r4_wrapper_new(0, 0, QUAROT_DTYPE_F32, 0, NULL, op_ok, &calls, &w),
                 QUAROT_ERR_UNSUPPORTED_SIZE);
    CHECK_STATUS(quarot_r4_wrapper_new(11000, 0, QUAROT_DTYPE_F32, 0, NULL, op_ok, &calls, &w),
                 QUAROT_ERR_UNSUPPORTED_SIZE);
    CHECK_STATUS(quarot_r4_wrapper_new(64, 24, QUAROT_DTYPE_F32, 0, NULL, op_ok, &calls, &w),
                 QUAROT_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(quarot_r4_wrapper_new(64, 0, QUAROT_DTYPE_F32, QUAROT_FLAG_PARALLEL, NULL,
                                       op_ok, &calls, &w),
                 QUAROT_ERR_INVALID_FLAGS);
    CHECK_STATUS(quarot_r4_wrapper_new(64, 0, QUAROT_DTYPE_F32, 0x100, NULL, op_ok, &calls, &w),
                 QUAROT_ERR_INVALID_FLAGS);
    q.bits = 9;
    CHECK_STATUS(quarot_r4_wrapper_new(64, 0, QUAROT_DTYPE_F32, 0, &q, op_ok, &calls, &w),
                 QUAROT_ERR_INVALID_ARGUMENT);
    q.bits = 4;
    q.clip_ratio = 0.0f;
    CHECK_STATUS(quarot_r4_wrapper_new(64, 0, QUAROT_DTYPE_F32, 0, &q, op_ok, &calls, &w),
                 QUAROT_ERR_INVALID_ARGUMENT);
    q.clip_ratio = 1.0f;
    q.group_size = 48;
    CHECK_STATUS(quarot_r4_wrapper_new(64, 0, QUAROT_DTYPE_F32, 0, &q, op_ok, &calls, &w),
                 QUAROT_ERR_INVALID_ARGUMENT);
    q.group_size = 0;
    q.kind = 9;
    CHECK_STATUS(quarot_r4_wrapper_new(64, 0, QUAROT_DTYPE_F32, 0, &q, op_ok, &calls, &w),
                 QUAROT_ERR_INVALID_ARGUMENT);
    q.kind = QUAROT_QUANT_CUSTOM; /* custom == NULL */
    CHECK_STATUS(quarot_r4_wrapper_new(64, 0, QUAROT_DTYPE_F32, 0, &q, op_ok, &calls, &w),
                 QUAROT_ERR_NULL_POINTER);
    CHECK(w == sentinel);

    q.kind = QUAROT_QUANT_FAKE;
    CHECK_STATUS(quarot_r4_wrapper_new(64, 0, QUAROT_DTYPE_F32, 0, &q, op_ok, &calls, &w),
                 QUAROT_OK);
    CHECK(w != sentinel && w != NULL);
    CHECK_STATUS(quarot_r4_wrapper_forward(NULL, x, 2, 64, NULL, 0), QUAROT_ERR_NULL_POINTER);
    CHECK_STATUS(quarot_r4_wrapper_forward(w, NULL, 2, 64, NULL, 0), QUAROT_ERR_NULL_POINTER);
    CHECK_STATUS(quarot_r4_wrapper_forward(w, x, 2, 63, NULL, 0), QUAROT_ERR_INVALID_STRIDE);
    CHECK_STATUS(quarot_r4_wrapper_forward(w, x, 2, 64, NULL, 4), QUAROT_ERR_INVALID_FLAGS);
    CHECK_STATUS(quarot_r4_wrapper_forward(w, x, SIZE_MAX / 2, 64, NULL, 0),
                 QUAROT_ERR_SIZE_OVERFLOW);
    CHECK(memcmp(x, x0, sizeof x) == 0);
    CHECK(calls == 0);
    CHECK_STATUS(quarot_r4_wrapper_forward(w, NULL, 0, 64, NULL, 0), QUAROT_OK);
    CHECK(calls == 0);
    CHECK_STATUS(quarot_r4_wrapper_forward(w, x, 2, 64, NULL, 0), QUAROT_OK);
    CHECK(calls == 1 && memcmp(x, x0, sizeof x) == 0);
    CHECK_STATUS(quarot_r4_wrapper_forward(w, x, 2, 64, NULL, QUAROT_FORWARD_IN_PLACE), QUAROT_OK);
    CHECK(calls == 2 && memcmp(x, x0, sizeof x) != 0);
    quarot_r4_wrapper_free(w);
    quarot_r4_wrapper_free(NULL);

    CHECK_STATUS(quarot_qk_rotation_new(64, QUAROT_DTYPE_F32, 0, NULL, NULL, NULL),
                 QUAROT_ERR_NULL_POINTER);
    CHECK_STATUS(quarot_qk_rotation_new(64, 7, 0, NULL, NULL, &h), QUAROT_ERR_INVALID_DTYPE);
    CHECK_STATUS(quarot_qk_rotation_new(65, QUAROT_DTYPE_F32, 0, NULL, NULL, &h),
                 QUAROT_ERR_UNSUPPORTED_SIZE);
    CHECK_STATUS(quarot_qk_rotation_new(64, QUAROT_DTYPE_F32, QUAROT_FLAG_PARALLEL, NULL, NULL,
                                        &h),
                 QUAROT_ERR_INVALID_FLAGS);
    CHECK(h == qsentinel);
    CHECK_STATUS(quarot_qk_rotation_new(64, QUAROT_DTYPE_F32, 0, NULL, NULL, &h), QUAROT_OK);
    s.tokens = 2;
    s.n_heads = 1;
    s.n_kv_heads = 1;
    s.head_dim = 64;
    s.q_token_stride = 64;
    s.q_head_stride = 64;
    s.k_token_stride = 0; /* two tokens of k at the same place: overlapping heads */
    s.k_head_stride = 64;
    CHECK_STATUS(quarot_qk_rotation_forward(h, qv, kv, &s, NULL), QUAROT_ERR_INVALID_STRIDE);
    s.tokens = 1;
    CHECK_STATUS(quarot_qk_rotation_forward(NULL, qv, kv, &s, NULL), QUAROT_ERR_NULL_POINTER);
    CHECK_STATUS(quarot_qk_rotation_forward(h, qv, kv, NULL, NULL), QUAROT_ERR_NULL_POINTER);
    CHECK_STATUS(quarot_qk_rotation_forward(h, NULL, kv, &s, NULL), QUAROT_ERR_NULL_POINTER);
    CHECK_STATUS(quarot_qk_rotation_forward(h, qv, NULL, &s, NULL), QUAROT_ERR_NULL_POINTER);
    s.n_heads = 0;
    CHECK_STATUS(quarot_qk_rotation_forward(h, qv, kv, &s, NULL), QUAROT_ERR_INVALID_ARGUMENT);
    s.n_heads = 1;
    s.head_dim = 128;
    CHECK_STATUS(quarot_qk_rotation_forward(h, qv, kv, &s, NULL), QUAROT_ERR_INVALID_ARGUMENT);
    s.head_dim = 64;
    CHECK_STATUS(quarot_qk_rotation_forward(h, qv, qv + 32, &s, NULL), QUAROT_ERR_OVERLAP);
    CHECK(memcmp(qv, qv0, sizeof qv) == 0);
    CHECK_STATUS(quarot_qk_rotation_forward(h, qv, qv + 64, &s, NULL), QUAROT_OK);
    CHECK(memcmp(qv, qv0, sizeof qv) != 0);
    quarot_qk_rotation_free(h);
    quarot_qk_rotation_free(NULL);
    CHECK(strcmp(quarot_status_string(QUAROT_ERR_CALLBACK), "a callback returned an error") == 0);
}

int main(int argc, char **argv) {
    const char *expect_isa = NULL;
    int expect_unavailable = 0;
    int i;
    for (i = 1; i < argc; ++i) {
        if (strcmp(argv[i], "--expect-isa-unavailable") == 0) {
            expect_unavailable = 1;
        } else if (strcmp(argv[i], "--expect-isa") == 0 && i + 1 < argc) {
            expect_isa = argv[++i];
        } else {
            fprintf(stderr, "usage: %s [--expect-isa NAME | --expect-isa-unavailable]\n",
                    argv[0]);
            return 2;
        }
    }

    if (expect_unavailable) {
        test_isa_unavailable();
    } else {
        test_isa(expect_isa);
        test_strings();
        test_sizes();
        test_transforms();
        test_block_diagonal();
        test_inverse();
        test_strided(QUAROT_DTYPE_F32);
        test_strided(QUAROT_DTYPE_BF16);
        test_out_of_place_f16_to_f32();
        test_all_type_pairs();
        test_non_finite_data();
        test_errors();
        test_rows_for_thread();
        test_parallel_flag();
        test_threads();
        test_scratch();
        test_online_errors();
        test_quantize();
    }

    printf("abi_test: %d checks, %d failed\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
