/* A Llama-3-8B decoder block in plain C11, random (seeded) weights: the example consumer of a
 * library written by `mctune gen`.
 *
 *   h   = x + o_proj(attention(rope(q_proj(n1)), rope(k_proj(n1)), v_proj(n1)))   n1 = rmsnorm(x)
 *   out = h + down_proj(silu(gate_proj(n2)) * up_proj(n2))                          n2 = rmsnorm(h)
 *
 * attention is grouped-query (heads query heads share kv_heads key/value heads) over a KV cache
 * of `seq` positions: the M new tokens sit at positions ctx .. ctx+M-1 (ctx = seq - M), the
 * earlier positions hold random keys and values (as if prefilled), the mask is causal. Scores
 * Q K^T and P V go through the backend's bmm, every projection through its linear (weights
 * stored [N, K], as inference engines store them).
 *
 * Backends, chosen at run time: "openblas" (cblas_sgemm; cblas_sgemv at M=1), "onednn"
 * (dnnl_sgemm from libdnnl.so.2, loaded at run time; only when asked for by name), "generic" (a plain blocked C loop nest,
 * untuned) and, when the program is built with -DMCT_BLOCK_GEN=NAME -DMCT_BLOCK_GEN_H='"NAME.h"'
 * against a generated library, "gen" (weights packed once by NAME_prepack_b, projections by
 * NAME_matmul_packed, attention by NAME_bmm) and "gen-sgemm" (NAME_sgemm on the plain weights
 * every call, NAME_bmm).
 *
 * Weight formats (runtime/quant.h, compiled in from the source tree so the rounding rules are the
 * library's): the projections' weights are drawn in f32 from the seed (the same values for every
 * format) and, for bf16, i8 or q4gG, quantized into the format's plain layout and dequantized
 * back. Every backend then computes the same model: openblas, generic, onednn and gen-sgemm run
 * f32 arithmetic on the dequantized weights (the reference), gen packs the plain layout with
 * NAME_prepack_b_quantized and runs the format's kernels through NAME_matmul_packed. Attention
 * (bmm) and activations stay f32. oneDNN stays at dnnl_sgemm: its bf16/int8 matmul
 * (tuner/baseline_lp.h) is prepared for one M and one A at a time, not for a block's calls. */
#ifndef MCT_LLAMA_BLOCK_H
#define MCT_LLAMA_BLOCK_H

#include <stddef.h>
#include <stdint.h>

typedef struct mct_blk_cfg {
    int hidden, heads, kv_heads, head_dim, inter;
    float eps, rope_theta;
} mct_blk_cfg;

/* Llama-3-8B: hidden 4096, 32 heads, 8 kv heads, head dim 128, intermediate 14336. */
mct_blk_cfg mct_blk_cfg_llama3_8b(void);
/* The same structure at hidden 256 (8 heads, 2 kv heads, head dim 32, intermediate 896). */
mct_blk_cfg mct_blk_cfg_small(void);

typedef struct mct_blk_backend {
    const char *name;
    /* C[M,N] = A[M,K] * W^T, W stored [N,K]; all row-major and dense. Returns 0 or nonzero. */
    int (*linear)(long M, long N, long K, const float *A, const float *W, float *C);
    /* Batched C = A*B per head, the meaning of NAME_bmm with beta 0: nt 1 means B stored [N,K]
     * (Q K^T), 0 [K,N] (P V); head b uses A + b*sA, B + (b/group)*sB, C + b*sC. */
    int (*bmm)(int nt, long batch, long group, long M, long N, long K, const float *A, long lda,
               long sA, const float *B, long ldb, long sB, float *C, long ldc, long sC);
    /* Optional (NULL: every projection goes through linear): packs a weight W [N,K] once into
     * the backend's layout (returns NULL when out of memory), then linear_packed runs
     * C[M,N] = A[M,K] * W^T on it; unpack frees it. The block packs each weight on its first
     * forward, as an inference engine does at load time. */
    void *(*pack)(long N, long K, const float *W);
    /* Optional (NULL: a quantized block's weights go through pack or linear dequantized): packs
     * weights already quantized, plain in the plain layout of format fmt ("i8", "q4g32", ...;
     * bytes its size), for linear_packed; NULL when it cannot (the reason on stderr). */
    void *(*pack_q)(const char *fmt, long N, long K, const void *plain, size_t bytes);
    int (*linear_packed)(const void *P, long M, long N, long K, const float *A, float *C);
    void (*unpack)(void *P);
    /* Threads the backend's kernels use from now on. */
    void (*set_threads)(int n);
    /* What runs underneath (OpenBLAS core, generated library's CPU table, ...): static text. */
    const char *(*describe)(void);
} mct_blk_backend;

/* The backends built into this program, in order openblas, gen, gen-sgemm (when built in),
 * generic, onednn; *n gets their count. llama_block runs all but onednn when --backends names none. Static, valid for the life of the process. */
const mct_blk_backend *mct_blk_backends(int *n);
/* The backend NAME, or NULL. */
const mct_blk_backend *mct_blk_backend_find(const char *name);

typedef struct mct_blk mct_blk;

/* Allocates the block for up to max_m new tokens over seq positions (max_m <= seq) with weights
 * and the KV cache drawn from seed, the projections' weights in format wfmt ("f32", "bf16", "i8"
 * or "q4gG" as runtime/quant.h names them; NULL: f32). Returns 0, or -1 with a message in err
 * (out of memory, bad sizes, an unknown format or one the sizes do not fit, e.g. a q4 group that
 * does not divide hidden or intermediate). *out is freed with mct_blk_destroy. */
int mct_blk_create(const mct_blk_cfg *cfg, const char *wfmt, long max_m, long seq, uint64_t seed,
                   mct_blk **out, char *err, size_t errlen);
void mct_blk_destroy(mct_blk *b);

/* out[M, hidden] = block(x[M, hidden]) for M new tokens at the end of the seq positions
 * (1 <= M <= max_m). Same input, same output: the cache rows it writes are the ones it reads.
 * Returns 0, or the nonzero code a backend call returned. */
int mct_blk_forward(mct_blk *b, const mct_blk_backend *be, long M, const float *x, float *out);

/* The projections' weight format as created ("f32", "i8", ...); owned by b. */
const char *mct_blk_weights(const mct_blk *b);
/* Bytes of the projections' weights in that format (what one decode step reads), scales
 * included. */
double mct_blk_weight_bytes(const mct_blk *b);

/* Floating-point operations of one forward of M tokens (projections and attention). */
double mct_blk_flops(const mct_blk *b, long M);

/* Shapes of the block's kernel calls for M tokens, as mctune workload texts, one per line into
 * buf (truncated to len). */
void mct_blk_workloads(const mct_blk *b, long M, char *buf, size_t len);

/* Fills x with seeded values in [-1, 1). */
void mct_blk_fill(float *x, long n, uint64_t seed);

#endif
