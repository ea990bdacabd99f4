/*
 * qk_rotation.c: QuaRot's online R3 rotation (Quark's QKRotation) around an engine's RoPE,
 * through libquarot's C ABI (quarot_qk_rotation).
 *
 * Where an engine's attention called its RoPE,
 *
 *     rope(q, k, positions);
 *
 * a QuaRot model calls the handle instead, with that RoPE as the callback:
 *
 *     quarot_qk_rotation_forward(h, q, k, &shape, positions);
 *
 * which runs the RoPE, then rotates every head of q and k by the normalized Hadamard of
 * width head_dim (what Quark's add_qk_rotation_after_function_call_in_forward does). The
 * rotation is orthogonal and the same for q and k, so the attention scores q . k are
 * unchanged; it only spreads outliers before the KV cache is quantized.
 *
 * Checked here for head_dim 128 and 80 (a had-K width, 20 * 4), GQA (8 query heads, 2 KV
 * heads), f32: scores after the handle equal the scores after RoPE alone (to float
 * rounding), q and k did change, the RoPE ran once per call with the caller's positions;
 * a failing RoPE gives QUAROT_ERR_CALLBACK with its code. Built and run by
 * tests/c_examples.rs as C99 and as C++11. Exit status 0 iff every check passed.
 */
#include "quarot.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOKENS 7
#define N_HEADS 8
#define N_KV 2
#define MAX_D 128

static int checks = 0;
static int failures = 0;

static void check_impl(int ok, const char *what, int line) {
    ++checks;
    if (!ok) {
        ++failures;
        fprintf(stderr, "qk_rotation.c:%d: CHECK failed: %s\n", line, what);
    }
}

#define CHECK(cond) check_impl((cond) ? 1 : 0, #cond, __LINE__)

static uint64_t rng = 0x243F6A8885A308D3u;
static float uniform(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((double)(rng >> 11) / 9007199254740992.0 - 0.5);
}

/* The engine's RoPE (Llama / NeoX layout: value i pairs with i + d/2), on `heads` heads
 * of every token, positions from the per-call argument. */
static void rope_heads(float *x, size_t heads, size_t d, size_t ts, size_t hs, const int *pos) {
    size_t t, h, i;
    for (t = 0; t < TOKENS; ++t) {
        for (h = 0; h < heads; ++h) {
            float *v = x + t * ts + h * hs;
            for (i = 0; i < d / 2; ++i) {
                double theta = pos[t] * pow(10000.0, -2.0 * (double)i / (double)d);
                double c = cos(theta), s = sin(theta);
                double a = v[i], b = v[i + d / 2];
                v[i] = (float)(a * c - b * s);
                v[i + d / 2] = (float)(a * s + b * c);
            }
        }
    }
}

static int rope_calls = 0;

/* The RoPE as a quarot_rope_fn: call_arg carries the positions. */
static int rope_cb(void *user_data, void *q, void *k, quarot_dtype dtype,
                   const quarot_qk_shape *s, void *call_arg) {
    (void)user_data;
    if (dtype != QUAROT_DTYPE_F32) {
        return 2;
    }
    ++rope_calls;
    rope_heads((float *)q, s->n_heads, s->head_dim, s->q_token_stride, s->q_head_stride,
               (const int *)call_arg);
    rope_heads((float *)k, s->n_kv_heads, s->head_dim, s->k_token_stride, s->k_head_stride,
               (const int *)call_arg);
    return 0;
}

static int failing_rope(void *user_data, void *q, void *k, quarot_dtype dtype,
                        const quarot_qk_shape *s, void *call_arg) {
    (void)user_data;
    (void)q;
    (void)k;
    (void)dtype;
    (void)s;
    (void)call_arg;
    return 5;
}

/* scores[h][t1][t2] = q[t1, h] . k[t2, h / (N_HEADS / N_KV)] */
static void scores(const float *q, const float *k, size_t d, double *out) {
    size_t h, t1, t2, i;
    for (h = 0; h < N_HEADS; ++h) {
        for (t1 = 0; t1 < TOKENS; ++t1) {
            for (t2 = 0; t2 < TOKENS; ++t2) {
                const float *a = q + t1 * N_HEADS * d + h * d;
                const float *b = k + t2 * N_KV * d + (h / (N_HEADS / N_KV)) * d;
                double s = 0.0;
                for (i = 0; i < d; ++i) {
                    s += (double)a[i] * b[i];
                }
                out[(h * TOKENS + t1) * TOKENS + t2] = s;
            }
        }
    }
}

static void run(size_t d) {
    static float q[TOKENS * N_HEADS * MAX_D], k[TOKENS * N_KV * MAX_D];
    static float q_ref[TOKENS * N_HEADS * MAX_D], k_ref[TOKENS * N_KV * MAX_D];
    static double s_ref[N_HEADS * TOKENS * TOKENS], s_rot[N_HEADS * TOKENS * TOKENS];
    static const int positions[TOKENS] = {0, 1, 2, 3, 10, 11, 200};
    quarot_qk_rotation *h = NULL;
    quarot_qk_shape shape;
    size_t i;
    double worst = 0.0, bound = 0.0;
    int calls_before;
    quarot_status st;

    for (i = 0; i < TOKENS * N_HEADS * d; ++i) {
        q[i] = uniform();
    }
    for (i = 0; i < TOKENS * N_KV * d; ++i) {
        k[i] = uniform();
    }
    /* outlier channels, as in real K caches */
    for (i = 0; i < TOKENS * N_KV; ++i) {
        k[i * d + 3] *= 20.0f;
    }
    memcpy(q_ref, q, sizeof(float) * TOKENS * N_HEADS * d);
    memcpy(k_ref, k, sizeof(float) * TOKENS * N_KV * d);
    rope_heads(q_ref, N_HEADS, d, N_HEADS * d, d, positions);
    rope_heads(k_ref, N_KV, d, N_KV * d, d, positions);
    scores(q_ref, k_ref, d, s_ref);

    st = quarot_qk_rotation_new(d, QUAROT_DTYPE_F32, 0, rope_cb, NULL, &h);
    CHECK(st == QUAROT_OK);
    if (st != QUAROT_OK) {
        fprintf(stderr, "%s\n", quarot_last_error());
        return;
    }
    shape.tokens = TOKENS;
    shape.n_heads = N_HEADS;
    shape.n_kv_heads = N_KV;
    shape.head_dim = d;
    shape.q_token_stride = N_HEADS * d;
    shape.q_head_stride = d;
    shape.k_token_stride = N_KV * d;
    shape.k_head_stride = d;
    calls_before = rope_calls;
    CHECK(quarot_qk_rotation_forward(h, q, k, &shape, (void *)positions) == QUAROT_OK);
    CHECK(rope_calls == calls_before + 1);
    CHECK(memcmp(q, q_ref, sizeof(float) * TOKENS * N_HEADS * d) != 0); /* rotated */
    scores(q, k, d, s_rot);
    for (i = 0; i < N_HEADS * TOKENS * TOKENS; ++i) {
        double diff = fabs(s_rot[i] - s_ref[i]);
        worst = diff > worst ? diff : worst;
    }
    /* q and k are rounded to float after the rotation (relative 2^-24 per value; sums in
     * double): a few 2^-24 * sqrt(d) relative to the largest score. */
    for (i = 0; i < N_HEADS * TOKENS * TOKENS; ++i) {
        bound = fabs(s_ref[i]) > bound ? fabs(s_ref[i]) : bound;
    }
    bound *= 1e-5;
    printf("head_dim %u: scores unchanged by the rotation: max |ds| = %.3g (bound %.3g)\n",
           (unsigned)d, worst, bound);
    CHECK(worst <= bound);

    /* A failing RoPE: the callback's code comes back; nothing is rotated. */
    memcpy(q, q_ref, sizeof(float) * TOKENS * N_HEADS * d);
    {
        quarot_qk_rotation *bad = NULL;
        CHECK(quarot_qk_rotation_new(d, QUAROT_DTYPE_F32, 0, failing_rope, NULL, &bad) ==
              QUAROT_OK);
        CHECK(quarot_qk_rotation_forward(bad, q, k, &shape, NULL) == QUAROT_ERR_CALLBACK);
        CHECK(quarot_last_callback_code() == 5);
        CHECK(memcmp(q, q_ref, sizeof(float) * TOKENS * N_HEADS * d) == 0);
        quarot_qk_rotation_free(bad);
    }
    printf("head_dim %u: failing RoPE: QUAROT_ERR_CALLBACK, code %d\n", (unsigned)d,
           quarot_last_callback_code());
    quarot_qk_rotation_free(h);
}

int main(void) {
    run(128);
    run(80);
    quarot_qk_rotation_free(NULL);
    printf("qk_rotation: %d checks, %d failed\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
