/* Concurrency stress test of the C ABI: many threads call the transforms (serial and
 * QUAROT_FLAG_PARALLEL, in place and src -> dst), the weight rotation, the quantizer and
 * the error path, and share one R4 wrapper and one QK rotation handle, for a bounded
 * time. Every result must be bit-identical to the one computed on a single thread before
 * the threads start, and each thread's quarot_last_error() must describe its own failure.
 *
 * usage: stress [seconds (default 2)] [threads (default 8)]
 * Exit status 0 iff every check passed. Build: cc -std=c99 stress.c -lquarot -lpthread -lm
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, pthreads under -std=c99 */
#include <quarot.h>

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_THREADS 64
#define N_MLP 11008 /* K = 172 */
#define ROWS_MLP 4
#define N_PAR 4096 /* parallel job: 160 x 4096 >= 2^19 elements */
#define ROWS_PAR 160
#define N_R4 1536 /* K = 12 */
#define ROWS_R4 3
#define HEAD_DIM 64
#define TOKENS 5
#define HEADS 4
#define KV_HEADS 2
#define W_OUT 48
#define W_IN 576 /* K = 36 */

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void *xmalloc(size_t bytes) {
    void *p = malloc(bytes);
    if (p == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

static void fill(float *x, size_t len, uint32_t seed) {
    size_t i;
    uint32_t s = seed * 2654435761u + 1u;
    for (i = 0; i < len; ++i) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)((int)(s >> 9) % 2001 - 1000) / 128.0f;
    }
}

/* Shared, read-only after setup. */
static float in_mlp[ROWS_MLP * N_MLP], ref_mlp[ROWS_MLP * N_MLP];
static float *in_par, *ref_par;
static uint16_t in_h16[ROWS_MLP * N_MLP];
static float ref_h16_to_f32[ROWS_MLP * N_MLP];
static float in_r4[ROWS_R4 * N_R4], ref_r4[ROWS_R4 * N_R4];
static float in_q[TOKENS * HEADS * HEAD_DIM], in_k[TOKENS * KV_HEADS * HEAD_DIM];
static float ref_q[TOKENS * HEADS * HEAD_DIM], ref_k[TOKENS * KV_HEADS * HEAD_DIM];
static float in_w[W_OUT * W_IN], ref_w[W_OUT * W_IN];
static float ref_quant[ROWS_R4 * N_R4];
static int8_t signs[W_IN];
static quarot_qk_shape qk_shape;
static quarot_quant_config q4;
static struct quarot_r4_wrapper *r4;
static struct quarot_qk_rotation *qk;
static double deadline;

/* R4 op: copy the rotated, fake-quantized rows to `out` (the caller's buffer). */
static int copy_op(void *user_data, const struct quarot_activations *a, void *out) {
    size_t r;
    (void)user_data;
    for (r = 0; r < a->rows; ++r) {
        memcpy((float *)out + r * a->n, (const float *)a->data + r * a->row_stride,
               a->n * sizeof(float));
    }
    return 0;
}

/* A toy RoPE: rotate pairs (2i, 2i+1) by an angle depending on the token, the head and
 * *(int *)call_arg; deterministic, so every thread must get the reference bits. */
static void rope_heads(float *x, size_t heads, int offset) {
    size_t t, h, i;
    for (t = 0; t < TOKENS; ++t) {
        for (h = 0; h < heads; ++h) {
            float *v = x + (t * heads + h) * HEAD_DIM;
            for (i = 0; i < HEAD_DIM; i += 2) {
                float a = (float)(t + (size_t)offset) * (float)(i + 1) * 0.01f;
                float c = cosf(a), s = sinf(a), x0 = v[i], x1 = v[i + 1];
                v[i] = x0 * c - x1 * s;
                v[i + 1] = x0 * s + x1 * c;
            }
        }
    }
}

static int toy_rope(void *user_data, void *q, void *k, quarot_dtype dtype,
                    const struct quarot_qk_shape *shape, void *call_arg) {
    (void)user_data;
    (void)shape;
    if (dtype != QUAROT_DTYPE_F32) {
        return 5;
    }
    rope_heads((float *)q, HEADS, *(int *)call_arg);
    rope_heads((float *)k, KV_HEADS, *(int *)call_arg);
    return 0;
}

enum { OP_MLP, OP_PAR, OP_F16_TO_F32, OP_R4, OP_QK, OP_ROTATE, OP_QUANT, OP_ERROR, N_OPS };
static const char *const op_names[N_OPS] = {"transform",      "parallel transform",
                                            "f16 -> f32",     "R4 wrapper",
                                            "QK rotation",    "weight rotation",
                                            "quantize",       "error message"};

typedef struct {
    int id;
    long runs[N_OPS];
    long failures[N_OPS];
} worker;

static int same(const float *a, const float *b, size_t len) {
    return memcmp(a, b, len * sizeof(float)) == 0;
}

static void *work(void *arg) {
    worker *w = (worker *)arg;
    float *buf = (float *)xmalloc(sizeof in_mlp);
    float *par = (float *)xmalloc((size_t)ROWS_PAR * N_PAR * sizeof(float));
    float *q = (float *)xmalloc(sizeof in_q), *k = (float *)xmalloc(sizeof in_k);
    float *wt = (float *)xmalloc(sizeof in_w);
    float *r4out = (float *)xmalloc(sizeof ref_r4);
    char expect[64];
    int offset = 3;
    long it = 0;
    while (now_s() < deadline || it < N_OPS) {
        int op = (int)((it + w->id) % N_OPS);
        int ok = 0;
        switch (op) {
        case OP_MLP:
            memcpy(buf, in_mlp, sizeof in_mlp);
            ok = quarot_hadamard_f32(buf, ROWS_MLP, N_MLP, N_MLP, quarot_hadamard_scale(N_MLP),
                                     0) == QUAROT_OK &&
                 same(buf, ref_mlp, ROWS_MLP * N_MLP);
            break;
        case OP_PAR:
            memcpy(par, in_par, (size_t)ROWS_PAR * N_PAR * sizeof(float));
            ok = quarot_hadamard_f32(par, ROWS_PAR, N_PAR, N_PAR, quarot_hadamard_scale(N_PAR),
                                     QUAROT_FLAG_PARALLEL) == QUAROT_OK &&
                 same(par, ref_par, (size_t)ROWS_PAR * N_PAR);
            break;
        case OP_F16_TO_F32:
            ok = quarot_hadamard(in_h16, QUAROT_DTYPE_F16, N_MLP, buf, QUAROT_DTYPE_F32, N_MLP,
                                 ROWS_MLP, N_MLP, quarot_hadamard_scale(N_MLP),
                                 QUAROT_FLAG_TRANSPOSE_K) == QUAROT_OK &&
                 same(buf, ref_h16_to_f32, ROWS_MLP * N_MLP);
            break;
        case OP_R4:
            ok = quarot_r4_wrapper_forward(r4, in_r4, ROWS_R4, N_R4, r4out, 0) == QUAROT_OK &&
                 same(r4out, ref_r4, ROWS_R4 * N_R4);
            break;
        case OP_QK:
            memcpy(q, in_q, sizeof in_q);
            memcpy(k, in_k, sizeof in_k);
            ok = quarot_qk_rotation_forward(qk, q, k, &qk_shape, &offset) == QUAROT_OK &&
                 same(q, ref_q, sizeof in_q / sizeof(float)) &&
                 same(k, ref_k, sizeof in_k / sizeof(float));
            break;
        case OP_ROTATE:
            memcpy(wt, in_w, sizeof in_w);
            ok = quarot_rotate_in_channels_hadamard(wt, QUAROT_DTYPE_F32, W_OUT, W_IN, W_IN,
                                                    W_IN, QUAROT_LAYOUT_MATMUL_HADU, signs,
                                                    1.0 / sqrt((double)W_IN), 0) == QUAROT_OK &&
                 same(wt, ref_w, W_OUT * W_IN);
            break;
        case OP_QUANT:
            memcpy(r4out, in_r4, sizeof in_r4);
            ok = quarot_quantize(r4out, QUAROT_DTYPE_F32, ROWS_R4, N_R4, N_R4, &q4, NULL, NULL,
                                 NULL) == QUAROT_OK &&
                 same(r4out, ref_quant, ROWS_R4 * N_R4);
            break;
        default: {
            /* An unsupported odd width of this thread's own: the message must name it. */
            size_t n = 10001u + 2u * (size_t)w->id;
            snprintf(expect, sizeof expect, "n = %lu ", (unsigned long)n);
            ok = quarot_hadamard_f32(buf, 1, n, n, 1.0f, 0) == QUAROT_ERR_UNSUPPORTED_SIZE &&
                 strstr(quarot_last_error(), expect) != NULL;
            if (ok) {
                /* ... and a success afterwards clears it. */
                memcpy(buf, in_mlp, N_MLP * sizeof(float));
                ok = quarot_hadamard_f32(buf, 1, N_MLP, N_MLP, 1.0f, 0) == QUAROT_OK &&
                     quarot_last_error()[0] == '\0';
            }
            break;
        }
        }
        w->runs[op] += 1;
        w->failures[op] += !ok;
        ++it;
    }
    free(buf);
    free(par);
    free(q);
    free(k);
    free(wt);
    free(r4out);
    return NULL;
}

static int setup(void) {
    size_t i;
    int offset = 3;
    int status = 0;
    fill(in_mlp, ROWS_MLP * N_MLP, 1);
    in_par = (float *)xmalloc((size_t)ROWS_PAR * N_PAR * sizeof(float));
    ref_par = (float *)xmalloc((size_t)ROWS_PAR * N_PAR * sizeof(float));
    fill(in_par, (size_t)ROWS_PAR * N_PAR, 2);
    fill(in_r4, ROWS_R4 * N_R4, 3);
    fill(in_q, sizeof in_q / sizeof(float), 4);
    fill(in_k, sizeof in_k / sizeof(float), 5);
    fill(in_w, W_OUT * W_IN, 6);
    for (i = 0; i < ROWS_MLP * N_MLP; ++i) {
        in_h16[i] = (uint16_t)(0x3000u + (uint16_t)(i % 0x0c00u)); /* f16 0.125 .. ~1.5 */
    }
    status |= quarot_random_signs(signs, W_IN, 7);
    /* Single-thread references. */
    memcpy(ref_mlp, in_mlp, sizeof in_mlp);
    status |= quarot_hadamard_f32(ref_mlp, ROWS_MLP, N_MLP, N_MLP, quarot_hadamard_scale(N_MLP), 0);
    memcpy(ref_par, in_par, (size_t)ROWS_PAR * N_PAR * sizeof(float));
    status |= quarot_hadamard_f32(ref_par, ROWS_PAR, N_PAR, N_PAR, quarot_hadamard_scale(N_PAR), 0);
    status |= quarot_hadamard(in_h16, QUAROT_DTYPE_F16, N_MLP, ref_h16_to_f32, QUAROT_DTYPE_F32,
                              N_MLP, ROWS_MLP, N_MLP, quarot_hadamard_scale(N_MLP),
                              QUAROT_FLAG_TRANSPOSE_K);
    memcpy(ref_w, in_w, sizeof in_w);
    status |= quarot_rotate_in_channels_hadamard(ref_w, QUAROT_DTYPE_F32, W_OUT, W_IN, W_IN, W_IN,
                                                 QUAROT_LAYOUT_MATMUL_HADU, signs,
                                                 1.0 / sqrt((double)W_IN), 0);
    memset(&q4, 0, sizeof q4);
    q4.kind = QUAROT_QUANT_FAKE;
    q4.bits = 4;
    q4.symmetric = 1;
    q4.clip_ratio = 1.0f;
    memcpy(ref_quant, in_r4, sizeof in_r4);
    status |= quarot_quantize(ref_quant, QUAROT_DTYPE_F32, ROWS_R4, N_R4, N_R4, &q4, NULL, NULL,
                              NULL);
    status |= quarot_r4_wrapper_new(N_R4, 0, QUAROT_DTYPE_F32, 0, &q4, copy_op, NULL, &r4);
    status |= quarot_r4_wrapper_forward(r4, in_r4, ROWS_R4, N_R4, ref_r4, 0);
    qk_shape.tokens = TOKENS;
    qk_shape.n_heads = HEADS;
    qk_shape.n_kv_heads = KV_HEADS;
    qk_shape.head_dim = HEAD_DIM;
    qk_shape.q_token_stride = HEADS * HEAD_DIM;
    qk_shape.q_head_stride = HEAD_DIM;
    qk_shape.k_token_stride = KV_HEADS * HEAD_DIM;
    qk_shape.k_head_stride = HEAD_DIM;
    status |= quarot_qk_rotation_new(HEAD_DIM, QUAROT_DTYPE_F32, 0, toy_rope, NULL, &qk);
    memcpy(ref_q, in_q, sizeof in_q);
    memcpy(ref_k, in_k, sizeof in_k);
    status |= quarot_qk_rotation_forward(qk, ref_q, ref_k, &qk_shape, &offset);
    status |= quarot_set_num_threads(2);
    if (status != 0) {
        fprintf(stderr, "setup failed: %s\n", quarot_last_error());
    }
    return status;
}

int main(int argc, char **argv) {
    double seconds = argc > 1 ? atof(argv[1]) : 2.0;
    int nthreads = argc > 2 ? atoi(argv[2]) : 8;
    pthread_t threads[MAX_THREADS];
    worker workers[MAX_THREADS];
    long total_runs = 0, total_failures = 0;
    int i, op, bad = 0;
    if (nthreads < 1 || nthreads > MAX_THREADS || !(seconds >= 0.0)) {
        fprintf(stderr, "usage: stress [seconds] [threads 1..%d]\n", MAX_THREADS);
        return 2;
    }
    if (setup() != 0) {
        return 1;
    }
    deadline = now_s() + seconds;
    for (i = 0; i < nthreads; ++i) {
        memset(&workers[i], 0, sizeof workers[i]);
        workers[i].id = i;
        if (pthread_create(&threads[i], NULL, work, &workers[i]) != 0) {
            fprintf(stderr, "pthread_create failed\n");
            return 1;
        }
    }
    for (i = 0; i < nthreads; ++i) {
        pthread_join(threads[i], NULL);
    }
    for (op = 0; op < N_OPS; ++op) {
        long runs = 0, failures = 0;
        for (i = 0; i < nthreads; ++i) {
            runs += workers[i].runs[op];
            failures += workers[i].failures[op];
            bad |= workers[i].runs[op] == 0;
        }
        printf("%-20s %8ld calls, %ld different from the single-thread result\n", op_names[op],
               runs, failures);
        total_runs += runs;
        total_failures += failures;
    }
    printf("%d threads, %.1f s: %ld calls, %ld failures\n", nthreads, seconds, total_runs,
           total_failures);
    quarot_r4_wrapper_free(r4);
    quarot_qk_rotation_free(qk);
    free(in_par);
    free(ref_par);
    return total_failures == 0 && !bad ? 0 : 1;
}
