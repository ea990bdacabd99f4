/*
 * demo.c: libquarot in a few lines of C.
 *
 * An activation row with one large outlier is rotated with the normalized Hadamard
 * transform: the outlier's energy is spread over the whole row, so max|x| / rms drops from
 * about 35 to about 3.5 and the row quantizes far better (fewer levels wasted on one value). The rotation is orthogonal, and the
 * QUAROT_FLAG_TRANSPOSE_K transform undoes it.
 *
 *   cc -std=c99 -Iinclude examples_c/demo.c -Ltarget/release -Wl,-rpath,target/release \
 *      -lquarot -lm && ./a.out
 */
#include "quarot.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N 4096       /* hidden size of a 7B/8B model */
#define N_MLP 11008  /* Llama-2-7B MLP width: 172 * 64, uses the K = 172 table */
#define HEAD_DIM 128
#define HEADS 8

static float row[N];
static float mlp[N_MLP], mlp_copy[N_MLP];
static uint16_t heads[HEADS * HEAD_DIM]; /* bfloat16 bit patterns */

/* max|x| / rms(x): how far the largest value sticks out of the row. */
static double outlier_ratio(const float *x, size_t n) {
    double max = 0.0, sum = 0.0;
    size_t i;
    for (i = 0; i < n; ++i) {
        max = fmax(max, fabs(x[i]));
        sum += (double)x[i] * x[i];
    }
    return max / sqrt(sum / (double)n);
}

static float bf16_to_float(uint16_t b) {
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static uint16_t float_to_bf16(float f) { /* truncation is fine for demo input */
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return (uint16_t)(u >> 16);
}

/* The largest max|x|/rms over the bf16 heads. */
static double worst_head(const uint16_t *b) {
    float head[HEAD_DIM];
    double worst = 0.0;
    size_t h, i;
    for (h = 0; h < HEADS; ++h) {
        for (i = 0; i < HEAD_DIM; ++i) {
            head[i] = bf16_to_float(b[h * HEAD_DIM + i]);
        }
        worst = fmax(worst, outlier_ratio(head, HEAD_DIM));
    }
    return worst;
}

/* Stop with libquarot's description of what went wrong. */
static void check(quarot_status status) {
    if (status != QUAROT_OK) {
        fprintf(stderr, "error: %s: %s\n", quarot_status_string(status), quarot_last_error());
        exit(1);
    }
}

/* A deterministic stand-in for real activations: roughly normal noise. */
static float activation(void) {
    static uint32_t state = 12345u;
    double sum = 0.0;
    int k;
    for (k = 0; k < 4; ++k) {
        state = state * 1664525u + 1013904223u;
        sum += (double)(state >> 8) / 16777216.0;
    }
    return (float)((sum - 2.0) * 1.7);
}

int main(void) {
    quarot_isa isa = 0;
    quarot_status status;
    double max_error = 0.0;
    size_t i;

    check(quarot_active_isa(&isa));
    printf("libquarot %s (header %s), instruction set: %s\n", quarot_version(),
           QUAROT_VERSION_STRING, quarot_isa_name(isa));

    /* 1. One f32 row of width 4096 with an outlier channel. */
    for (i = 0; i < N; ++i) {
        row[i] = activation();
    }
    row[1234] = 40.0f;
    printf("f32 row, n = %d:        max|x|/rms %6.2f", N, outlier_ratio(row, N));
    /* rows = 1, n = N, row_stride = N, scale = 1/sqrt(N), flags = 0 */
    check(quarot_hadamard_f32(row, 1, N, N, quarot_hadamard_scale(N), 0));
    printf(" -> %5.2f after the rotation\n", outlier_ratio(row, N));

    /* 2. A batch of bf16 attention heads (head_dim 128) with an outlier channel: one call
     *    transforms every row. */
    for (i = 0; i < HEADS * HEAD_DIM; ++i) {
        heads[i] = float_to_bf16(i % HEAD_DIM == 5 ? 25.0f : activation());
    }
    printf("bf16 heads, %d x %d:    max|x|/rms %6.2f", HEADS, HEAD_DIM, worst_head(heads));
    check(quarot_hadamard_bf16(heads, HEADS, HEAD_DIM, HEAD_DIM, quarot_hadamard_scale(HEAD_DIM),
                               0));
    printf(" -> %5.2f (worst head)\n", worst_head(heads));

    /* 3. Width 11008 = 172 * 64: H_172 (x) H_64. With the normalized scale, the transform
     *    with QUAROT_FLAG_TRANSPOSE_K is the inverse of the plain one. */
    for (i = 0; i < N_MLP; ++i) {
        mlp[i] = mlp_copy[i] = activation() * (i == 77 ? 30.0f : 1.0f);
    }
    printf("f32 row, n = %d (K = %lu): max|x|/rms %6.2f", N_MLP,
           (unsigned long)quarot_hadamard_size_supported(N_MLP), outlier_ratio(mlp, N_MLP));
    check(quarot_hadamard_f32(mlp, 1, N_MLP, N_MLP, quarot_hadamard_scale(N_MLP), 0));
    printf(" -> %5.2f\n", outlier_ratio(mlp, N_MLP));
    check(quarot_hadamard_f32(mlp, 1, N_MLP, N_MLP, quarot_hadamard_scale(N_MLP),
                              QUAROT_FLAG_TRANSPOSE_K));
    for (i = 0; i < N_MLP; ++i) {
        max_error = fmax(max_error, fabs((double)mlp[i] - mlp_copy[i]));
    }
    printf("round trip with QUAROT_FLAG_TRANSPOSE_K: max error %.2g\n", max_error);

    /* 4. Errors: a status code, a static description, and this thread's details. */
    status = quarot_hadamard_f32(mlp, 1, 11000, 11000, 1.0f, 0);
    printf("n = 11000: %s (status %d)\n  %s\n", quarot_status_string(status), (int)status,
           quarot_last_error());

    return max_error < 1e-4 ? 0 : 1;
}
