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

/* One kernel call of a forward as a check hook sees it, right after the backend returned: the
 * backend's own inputs (so a check recomputes the call on them, teacher-forced, whatever the
 * earlier calls got wrong) and its output. Every pointer is owned by the block and valid only
 * during the hook. */
/* The projections' weights of a block, in the order q k v o gate up down (mct_blk_call.wi). */
enum { MCT_BLK_NWEIGHTS = 7 };

typedef struct mct_blk_call {
    const char *name;       /* "q_proj" .. "down_proj", "attn_scores", "attn_values" */
    int bmm;                /* 0: projection C[M,N] = A[M,K] W^T; 1: the backend's bmm */
    int wi;                 /* projection: which weight, 0..6 in the order q k v o gate up down
                             * (the same W every forward, so a hook may keep per-weight data) */
    long M, N, K;
    const float *A, *W;     /* projection: A [M,K], W [N,K] the f32 (dequantized) weights; bmm:
                             * A and B of mct_blk_backend.bmm */
    const float *C;         /* projection: C [M,N]; bmm: C with the strides below */
    /* bmm only: the arguments of mct_blk_backend.bmm, B is W */
    int nt;
    long batch, group, lda, sA, ldb, sB, ldc, sC;
} mct_blk_call;

/* Called after each projection and bmm of a forward; a nonzero return ends the forward with that
 * code (a check keeps a mismatch to itself and returns 0: nonzero is for its own failures, such
 * as out of memory). */
typedef int (*mct_blk_hook)(void *ctx, const mct_blk_call *call);

/* Installs fn (NULL: none) for every later forward of b until replaced. Without a hook the
 * forward pays one test of a NULL pointer per call: --bench runs without. */
void mct_blk_set_hook(mct_blk *b, mct_blk_hook fn, void *ctx);

/* ---- the bound of a low-precision kernel's projection (llama_block --check, per call)
 *
 * A kernel of weight format fmt computes C = A W^T on the format's weights, the same values as
 * the dequantized W, and may round the activations first (widen(B, dot) and widen(B, amx); the
 * f32-arithmetic paths do not): i8 and q4gG per row to int8 with scale s = max|a| / 127, bf16 to
 * bf16. For one element (row a of A, channel w of W) against f32 on the same a and W it then
 * differs by at most
 *
 *   R + F, with
 *   R = (s/2) (1 + 1e-4) sum_k |w_k|          int8: each |a_k - s q_k| <= s/2 (round to nearest;
 *                                             1e-4 covers the f32 arithmetic of x = a * (127 /
 *                                             max|a|), 254 * 3 * 2^-24 of s/2), and the integer
 *                                             sum of q_k times the weights' integers is exact
 *   R = 2^-8 P                                bf16: |a_k - bf16(a_k)| <= 2^-8 |a_k| (8 significant
 *                                             bits, round to nearest even); products exact in f32
 *   R = 0                                     f32
 *   F = 2 g (P + R) + K FLT_MIN               f32 sums of K products in any order (the reference's
 *                                             and the kernel's, on |a| and on |rounded a| <= |a| +
 *                                             e) with g = n u / (1 - n u), n = K + 4 (the rounding
 *                                             of the dequantized weights and the kernel's scale
 *                                             multiplies), u = 2^-24; K FLT_MIN for the flushed
 *                                             denormals of the dot-product instructions
 *   P = min(max|a| sum_k |w_k|, |a|_2 |w|_2)  >= sum_k |a_k w_k| (Hoelder, Cauchy-Schwarz)
 *
 * so each element has its own bound, computed from the row's max|a| and |a|_2 and the channel's
 * sum |w| and |w|_2 (mct_blk_wnorms, once per weight). R is reached: rows whose a sit halfway
 * between two grid points, with the signs of w following the rounding's, make the error R; so no
 * smaller bound holds for every kernel that rounds so. Typical errors, of random signs, are
 * about sqrt(K) times smaller: the bound catches a wrong kernel where its outputs exceed it,
 * which they do less the larger K and max|a| over the row's typical |a| are. */

/* Per channel n of W [N,K] (row-major): l1[n] = sum_k |W[n,k]|, l2[n] = sqrt(sum_k W[n,k]^2),
 * summed in double. */
void mct_blk_wnorms(long N, long K, const float *W, double *l1, double *l2);

/* The bound above for one element: format fmt ("f32", "bf16", "i8", "q4gG": anything else is
 * taken as int8-rounding), reduction depth K, the row's amax = max|a| and a2 = |a|_2, the
 * channel's l1 and l2. */
double mct_blk_lowp_bound(const char *fmt, long K, double amax, double a2, double l1, double l2);

/* The worst |C - R| / bound over the call's M x N elements (C the kernel's, R the f32 reference on
 * the same A [M,K] and the weights whose mct_blk_wnorms are l1, l2): at most 1 when every element
 * is within its bound; INFINITY when an element of C is not finite or exceeds a zero bound. The
 * element of the worst ratio into *at (i * N + n) and its bound into *bound, either may be NULL. */
double mct_blk_lowp_worst(const char *fmt, long M, long N, long K, const float *A,
                          const double *l1, const double *l2, const float *C, const float *R,
                          long *at, double *bound);

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
