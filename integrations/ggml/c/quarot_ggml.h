/*
 * quarot_ggml.h: libquarot as ggml custom ops, run by ggml's own CPU thread pool.
 *
 * A graph node built here is computed by every worker of ggml_graph_compute at once: each
 * call gets (dst, a, ith, nth, userdata), takes its share of the rows with
 * quarot_rows_for_thread(rows, ith, nth, ...) and transforms them with libquarot on that
 * worker thread. libquarot starts no thread of its own.
 *
 * Tensors: a row is ne[0] contiguous elements (nb[0] == element size); rows are nb[1]
 * bytes apart (a multiple of the element size: views of padded rows are fine), and ne[2],
 * ne[3] batches of rows are nb[2], nb[3] apart. Types: GGML_TYPE_F32, F16, BF16 (ggml's
 * type numbers are libquarot's QUAROT_DTYPE_* numbers).
 *
 * Errors: builders check what they can (supported width, types, strides) and return NULL,
 * with a message in quarot_ggml_last_error(). A failure while computing (libquarot out of
 * memory, QUAROT_ISA forcing a missing instruction set) cannot be returned through ggml:
 * the op keeps the first status and message (quarot_ggml_op_status / _op_error) and fills
 * the rows it could not compute with NaN, so they cannot pass for results.
 */
#ifndef QUAROT_GGML_H
#define QUAROT_GGML_H

#include <stddef.h>
#include <stdint.h>

#include "ggml.h"
#include "ggml-cpu.h"
#include "quarot.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * What a node computes, and what its workers saw. Opaque. One op may be used by any number
 * of nodes and graphs, also computed at the same time; it must outlive every
 * ggml_graph_compute of a graph holding one of its nodes. Free with quarot_ggml_op_free.
 */
typedef struct quarot_ggml_op quarot_ggml_op;

/*
 * The Hadamard transform y = scale * (H_K (x) H_{2^m}) x of each row (quarot_hadamard).
 * scale == 0 means the normalized transform: quarot_hadamard_scale(ne[0]) for each node.
 * flags: QUAROT_FLAG_TRANSPOSE_K, QUAROT_FLAG_PAD_TRUNCATE (QUAROT_FLAG_PARALLEL is
 * refused: ggml's workers are the threads). NULL on error (quarot_ggml_last_error).
 */
quarot_ggml_op *quarot_ggml_op_hadamard_new(float scale, uint32_t flags);

/*
 * An R4 wrapper (quarot_r4_wrapper_new) for rows of width n and element type `type`: each
 * worker calls quarot_r4_wrapper_forward on its rows, and the wrapped op writes the
 * rotated (and, with quant, fake-quantized) rows into the node's output. The down_proj
 * matmul is then an ordinary ggml_mul_mat(W_rot, node). block_size and flags as for
 * quarot_r4_wrapper_new; quant NULL or QUAROT_QUANT_NONE / _FAKE / _CUSTOM (copied).
 * QUAROT_QUANT_REAL is refused: ggml_mul_mat consumes float rows, not int8 codes.
 */
quarot_ggml_op *quarot_ggml_op_r4_new(size_t n, size_t block_size, enum ggml_type type,
                                      uint32_t flags, const quarot_quant_config *quant);

/* Free an op (NULL is a no-op); no graph using it may be computed afterwards. */
void quarot_ggml_op_free(quarot_ggml_op *op);

/*
 * y = H x for every row of a, in a new tensor of type dst_type (GGML_TYPE_F32, or a->type,
 * or any F32/F16/BF16), same shape as a. Same type: a ggml_map_custom1 node; another type:
 * a ggml_custom_4d node with a as its source (ggml_map_custom1 always returns a's type).
 * op must be a Hadamard op. NULL on error.
 */
struct ggml_tensor *quarot_ggml_hadamard(struct ggml_context *ctx, struct ggml_tensor *a,
                                         enum ggml_type dst_type, quarot_ggml_op *op);

/* The same in place (ggml_map_custom1_inplace): the node is a view of a. NULL on error. */
struct ggml_tensor *quarot_ggml_hadamard_inplace(struct ggml_context *ctx, struct ggml_tensor *a,
                                                 quarot_ggml_op *op);

/*
 * The rotated rows of a through an R4 op (a->ne[0] and a->type must be the op's n and
 * type), in a new tensor of type dst_type (a->type, or F32 from F16/BF16). NULL on error.
 */
struct ggml_tensor *quarot_ggml_r4(struct ggml_context *ctx, struct ggml_tensor *a,
                                   enum ggml_type dst_type, quarot_ggml_op *op);

/*
 * ggml's own fast Walsh-Hadamard transform, as llama.cpp reaches it
 * (llama_mul_mat_hadamard): ggml_mul_mat(rot, x) with the hint
 * GGML_HINT_SRC0_IS_HADAMARD. x: F32 or F16 rows of a power-of-two width n; result F32,
 * H_n x / sqrtf(n) per row. rot: the n x n F32 orthonormal Sylvester matrix, or NULL for a
 * placeholder without data (allocated with ggml_set_no_alloc): the CPU path never reads
 * src0, and a 16384-wide matrix would take 1 GiB. A placeholder graph must only run on
 * the CPU backend with the hint (ggml_graph_compute). NULL on error.
 */
struct ggml_tensor *quarot_ggml_fwht(struct ggml_context *ctx, struct ggml_tensor *x,
                                     struct ggml_tensor *rot);

/* First failure seen while computing with this op (QUAROT_OK if none), and its message. */
quarot_status quarot_ggml_op_status(const quarot_ggml_op *op);
const char *quarot_ggml_op_error(const quarot_ggml_op *op);

/*
 * What the workers saw since creation or the last reset: number of calls, bit ith set for
 * each worker index ith < 64 that ran, smallest and largest nth, and the OS thread id
 * (gettid) of the last worker with index ith (0 if none).
 */
struct quarot_ggml_op_stats {
    uint64_t calls;
    uint64_t ith_mask;
    int32_t nth_min;
    int32_t nth_max;
};
void quarot_ggml_op_stats(const quarot_ggml_op *op, struct quarot_ggml_op_stats *out);
int64_t quarot_ggml_op_thread_id(const quarot_ggml_op *op, int ith);
void quarot_ggml_op_reset(quarot_ggml_op *op);

/* The calling thread's last builder error ("" if none). Never NULL. */
const char *quarot_ggml_last_error(void);

/*
 * A small graph runner, as an engine keeps one: a persistent ggml_threadpool of n_threads
 * workers and a work buffer grown as needed. Not for use by two threads at once.
 */
typedef struct quarot_ggml_runner quarot_ggml_runner;
quarot_ggml_runner *quarot_ggml_runner_new(int n_threads);
void quarot_ggml_runner_free(quarot_ggml_runner *r);
/* ggml_graph_plan + ggml_graph_compute on the runner's pool; returns the ggml_status. */
int quarot_ggml_runner_compute(quarot_ggml_runner *r, struct ggml_cgraph *graph);

/* A ggml context of mem_size bytes that allocates tensor data (ggml_init); NULL on error. */
struct ggml_context *quarot_ggml_context_new(size_t mem_size);

/*
 * ne[0..4] and nb[0..4] of a tensor, and its type as the return value (for callers that do
 * not see struct ggml_tensor, such as the Rust tests).
 */
int quarot_ggml_tensor_shape(const struct ggml_tensor *t, int64_t ne[4], size_t nb[4]);

#ifdef __cplusplus
}
#endif

#endif /* QUAROT_GGML_H */
