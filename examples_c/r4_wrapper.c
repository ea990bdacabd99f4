/*
 * r4_wrapper.c: QuaRot's online R4 rotation around a small MLP's down_proj, through
 * libquarot's C ABI (quarot_r4_wrapper).
 *
 *     h = silu(W_gate x) * (W_up x)      (D_FF = 192 = 12 * 16 values: a had-K width)
 *     y = W_down h                       (D_MODEL = 64 outputs)
 *
 * QuaRot rotates the input of down_proj online, h -> h H (H the normalized Hadamard of
 * width 192), and W_down offline by the same matrix (W_down H), so that y is unchanged;
 * 4-bit activation quantization of h then loses less, because the rotation spreads the
 * outlier channels of h over all channels. This program:
 *
 *  1. rotates W_down with quarot_rotate_in_channels_hadamard (QUAROT_LAYOUT_MATMUL_HADU,
 *     the matrix quarot_hadamard_f32 applies) and wraps "y = W_down' h" (the op callback)
 *     in a quarot_r4_wrapper without quantization: y must equal the unrotated MLP's y
 *     (to float rounding);
 *  2. with 4-bit per-token symmetric fake quantization (clip 1.0) inside the wrapper, and
 *     the same quantizer applied to the unrotated h: the rotated MLP's error must be lower,
 *     on inputs whose h has outlier channels; both errors are printed;
 *  3. with real quantization: the op computes y from the int8 codes, scales and zero points
 *     alone; it must equal the fake-quantized result (to float rounding);
 *  4. a failing op: QUAROT_ERR_CALLBACK, quarot_last_callback_code() = its code, the input
 *     unchanged; then the handle still works.
 *
 * Built and run by tests/c_examples.rs as C99 and as C++11. Exit status 0 iff every check
 * passed.
 */
#include "quarot.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define D_MODEL 64
#define D_FF 192
#define TOKENS 16

static int checks = 0;
static int failures = 0;

static void check_impl(int ok, const char *what, int line) {
    ++checks;
    if (!ok) {
        ++failures;
        fprintf(stderr, "r4_wrapper.c:%d: CHECK failed: %s\n", line, what);
    }
}

#define CHECK(cond) check_impl((cond) ? 1 : 0, #cond, __LINE__)

static void check_ok(quarot_status st, const char *what) {
    ++checks;
    if (st != QUAROT_OK) {
        ++failures;
        fprintf(stderr, "r4_wrapper.c: %s: %s: %s\n", what, quarot_status_string(st),
                quarot_last_error());
    }
}

/* Deterministic values in [-0.5, 0.5). */
static uint64_t rng = 0x9E3779B97F4A7C15u;
static double uniform(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0 - 0.5;
}

static float w_gate[D_FF * D_MODEL], w_up[D_FF * D_MODEL];
static float w_down[D_MODEL * D_FF], w_down_rot[D_MODEL * D_FF];

/* h (TOKENS x D_FF) of the MLP for inputs x (TOKENS x D_MODEL). */
static void hidden(const float *x, float *h) {
    int t, i, j;
    for (t = 0; t < TOKENS; ++t) {
        for (i = 0; i < D_FF; ++i) {
            double g = 0.0, u = 0.0;
            for (j = 0; j < D_MODEL; ++j) {
                g += (double)w_gate[i * D_MODEL + j] * x[t * D_MODEL + j];
                u += (double)w_up[i * D_MODEL + j] * x[t * D_MODEL + j];
            }
            h[t * D_FF + i] = (float)(g / (1.0 + exp(-g)) * u);
        }
    }
}

/* y (rows x D_MODEL) = W (D_MODEL x D_FF) h, h rows `stride` floats apart. */
static void down(const float *w, const float *h, size_t rows, size_t stride, float *y) {
    size_t t;
    int o, i;
    for (t = 0; t < rows; ++t) {
        for (o = 0; o < D_MODEL; ++o) {
            double s = 0.0;
            for (i = 0; i < D_FF; ++i) {
                s += (double)w[o * D_FF + i] * h[t * stride + i];
            }
            y[t * D_MODEL + o] = (float)s;
        }
    }
}

/* The op the wrapper wraps: y = W_down' h from the rotated (quantized) rows. With real
 * quantization, from the codes, scales and zero points only. */
static int down_proj_op(void *user_data, const quarot_activations *a, void *out) {
    const float *w = (const float *)user_data;
    float *y = (float *)out;
    size_t t;
    int o, i;
    if (a->dtype != QUAROT_DTYPE_F32 || a->n != D_FF) {
        return 1;
    }
    if (a->codes == NULL) {
        down(w, (const float *)a->data, a->rows, a->row_stride, y);
        return 0;
    }
    for (t = 0; t < a->rows; ++t) {
        for (o = 0; o < D_MODEL; ++o) {
            double s = 0.0;
            for (i = 0; i < D_FF; ++i) {
                size_t g = t * a->groups + (size_t)i / a->group_size;
                float v = a->scales[g] * ((float)a->codes[t * a->n + i] - a->zeros[g]);
                s += (double)w[o * D_FF + i] * v;
            }
            y[t * D_MODEL + o] = (float)s;
        }
    }
    return 0;
}

static int failing_op(void *user_data, const quarot_activations *a, void *out) {
    (void)user_data;
    (void)a;
    (void)out;
    return 77;
}

/* QuaRot's 4-bit per-token symmetric quantizer (clip 1), as documented in quarot.h. */
static void fake_quant_sym4(float *row, size_t n) {
    float amax = 0.0f, scale;
    size_t i;
    for (i = 0; i < n; ++i) {
        if (fabsf(row[i]) > amax) {
            amax = fabsf(row[i]);
        }
    }
    scale = amax == 0.0f ? 1.0f : amax / 7.0f;
    for (i = 0; i < n; ++i) {
        float q = nearbyintf(row[i] / scale); /* default rounding: to nearest even */
        q = q < -8.0f ? -8.0f : (q > 7.0f ? 7.0f : q);
        row[i] = scale * q;
    }
}

/* Relative RMS error of y against the reference. */
static double rel_rms(const float *y, const float *ref, size_t len) {
    double e = 0.0, r = 0.0;
    size_t i;
    for (i = 0; i < len; ++i) {
        e += ((double)y[i] - ref[i]) * ((double)y[i] - ref[i]);
        r += (double)ref[i] * ref[i];
    }
    return sqrt(e / r);
}

static double max_abs_diff(const float *a, const float *b, size_t len) {
    double m = 0.0;
    size_t i;
    for (i = 0; i < len; ++i) {
        double d = fabs((double)a[i] - b[i]);
        m = d > m ? d : m;
    }
    return m;
}

static double max_abs(const float *a, size_t len) {
    double m = 0.0;
    size_t i;
    for (i = 0; i < len; ++i) {
        m = fabs(a[i]) > m ? fabs(a[i]) : m;
    }
    return m;
}

int main(void) {
    static float x[TOKENS * D_MODEL], h[TOKENS * D_FF], h_keep[TOKENS * D_FF];
    static float y_ref[TOKENS * D_MODEL], y[TOKENS * D_MODEL], y_fake[TOKENS * D_MODEL];
    static float y_q_plain[TOKENS * D_MODEL], h_q[TOKENS * D_FF];
    quarot_r4_wrapper *plain = NULL, *fake = NULL, *real = NULL;
    quarot_quant_config q;
    size_t i;
    double err_plain, err_rot, tol;

    for (i = 0; i < D_FF * D_MODEL; ++i) {
        w_gate[i] = (float)(uniform() * 0.25);
        w_up[i] = (float)(uniform() * 0.25);
        /* outlier channels: a few rows of W_up 40x larger make channels of h huge */
        if (i / D_MODEL == 7 || i / D_MODEL == 100 || i / D_MODEL == 151) {
            w_up[i] *= 40.0f;
        }
    }
    for (i = 0; i < D_MODEL * D_FF; ++i) {
        w_down[i] = (float)(uniform() * 0.2);
    }
    for (i = 0; i < TOKENS * D_MODEL; ++i) {
        x[i] = (float)(uniform() * 4.0);
    }
    hidden(x, h);
    memcpy(h_keep, h, sizeof h);
    down(w_down, h, TOKENS, D_FF, y_ref);

    /* 1. W_down' = W_down H, offline, with the matrix the online transform applies. */
    memcpy(w_down_rot, w_down, sizeof w_down);
    check_ok(quarot_rotate_in_channels_hadamard(w_down_rot, QUAROT_DTYPE_F32, D_MODEL, D_FF,
                                                D_FF, D_FF, QUAROT_LAYOUT_MATMUL_HADU, NULL,
                                                1.0 / sqrt((double)D_FF), 0),
             "rotate W_down");
    check_ok(quarot_r4_wrapper_new(D_FF, 0, QUAROT_DTYPE_F32, 0, NULL, down_proj_op,
                                   w_down_rot, &plain),
             "r4_wrapper_new (no quantization)");
    check_ok(quarot_r4_wrapper_forward(plain, h, TOKENS, D_FF, y, 0), "forward");
    CHECK(memcmp(h, h_keep, sizeof h) == 0); /* the input is only read */
    /* W' and h H are each rounded once to float (relative 2^-24 per value) and the sums
     * are in double: the error is a few 2^-24 * sqrt(D_FF) relative to |y|; 1e-5 of max|y|
     * leaves a margin of ~10x while a wrong matrix (e.g. H_K transposed) is off by O(|y|). */
    tol = 1e-5 * max_abs(y_ref, TOKENS * D_MODEL);
    printf("1. rotated MLP vs plain MLP, no quantization: max |dy| = %.3g (bound %.3g)\n",
           max_abs_diff(y, y_ref, TOKENS * D_MODEL), tol);
    CHECK(max_abs_diff(y, y_ref, TOKENS * D_MODEL) <= tol);

    /* 2. 4-bit per-token symmetric fake quantization, rotated vs not. */
    memset(&q, 0, sizeof q);
    q.kind = QUAROT_QUANT_FAKE;
    q.bits = 4;
    q.symmetric = 1;
    q.group_size = 0;
    q.clip_ratio = 1.0f;
    check_ok(quarot_r4_wrapper_new(D_FF, 0, QUAROT_DTYPE_F32, 0, &q, down_proj_op, w_down_rot,
                                   &fake),
             "r4_wrapper_new (fake 4-bit)");
    check_ok(quarot_r4_wrapper_forward(fake, h, TOKENS, D_FF, y_fake, 0), "forward (fake)");
    memcpy(h_q, h, sizeof h);
    for (i = 0; i < TOKENS; ++i) {
        fake_quant_sym4(h_q + i * D_FF, D_FF);
    }
    down(w_down, h_q, TOKENS, D_FF, y_q_plain);
    err_plain = rel_rms(y_q_plain, y_ref, TOKENS * D_MODEL);
    err_rot = rel_rms(y_fake, y_ref, TOKENS * D_MODEL);
    printf("2. 4-bit activations (per token, symmetric): relative RMS error of y\n"
           "   without rotation %.4f, with R4 rotation %.4f (%.1fx lower)\n",
           err_plain, err_rot, err_plain / err_rot);
    CHECK(err_rot < err_plain);

    /* 3. Real quantization: the op sees only codes + scales; same result as fake. */
    q.kind = QUAROT_QUANT_REAL;
    check_ok(quarot_r4_wrapper_new(D_FF, 0, QUAROT_DTYPE_F32, 0, &q, down_proj_op, w_down_rot,
                                   &real),
             "r4_wrapper_new (real 4-bit)");
    check_ok(quarot_r4_wrapper_forward(real, h, TOKENS, D_FF, y, 0), "forward (real)");
    printf("3. real int8 codes vs fake quantization: max |dy| = %.3g\n",
           max_abs_diff(y, y_fake, TOKENS * D_MODEL));
    CHECK(max_abs_diff(y, y_fake, TOKENS * D_MODEL) <= 1e-5 * max_abs(y_fake, TOKENS * D_MODEL));

    /* 4. A failing op. */
    {
        quarot_r4_wrapper *bad = NULL;
        check_ok(quarot_r4_wrapper_new(D_FF, 0, QUAROT_DTYPE_F32, 0, NULL, failing_op, NULL, &bad),
                 "r4_wrapper_new (failing op)");
        CHECK(quarot_r4_wrapper_forward(bad, h, TOKENS, D_FF, y, 0) == QUAROT_ERR_CALLBACK);
        CHECK(quarot_last_callback_code() == 77);
        CHECK(memcmp(h, h_keep, sizeof h) == 0);
        quarot_r4_wrapper_free(bad);
        check_ok(quarot_r4_wrapper_forward(plain, h, TOKENS, D_FF, y, 0), "forward after");
        CHECK(max_abs_diff(y, y_ref, TOKENS * D_MODEL) <= tol);
        printf("4. failing op: QUAROT_ERR_CALLBACK, code %d, input unchanged\n",
               quarot_last_callback_code());
    }

    quarot_r4_wrapper_free(plain);
    quarot_r4_wrapper_free(fake);
    quarot_r4_wrapper_free(real);
    quarot_r4_wrapper_free(NULL);
    printf("r4_wrapper: %d checks, %d failed\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
