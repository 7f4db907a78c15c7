/* mctune low-precision baselines: oneDNN's own matmul with bf16 or int8 weights, the library a
 * serving team runs low-precision weights with on CPUs (tuner/baseline_lp.c).
 *
 * Formats, on C[M,N] = A[M,K] * B with B stored [N,K] (nt, weights as engines keep them) or
 * [K,N] (nn), from the f32 A and B the caller gives:
 *   "bf16"  oneDNN matmul, src bf16, weights bf16, dst f32 (f32 accumulation). oneDNN 2.x has no
 *           f32-src / bf16-weights matmul, so A is converted to bf16 on every call (counted in
 *           the call: a serving engine pays it too) and B once, at open.
 *   "i8"    oneDNN matmul, src s8, weights s8, dst f32, output scales per column: A quantized per
 *           call, per tensor (symmetric, scale max|A| / 127, counted in the call), B once per
 *           output channel (max|B[n,:]| / 127): the dynamic quantization of int8 serving.
 *           Where oneDNN's ISA has no VNNI (e.g. AVX2), its int8 kernels sum pairs of products in
 *           int16 with saturation and its documentation asks for 7-bit weights: B is then
 *           quantized to [-63, 63] (scale max|B[n,:]| / 63), as the label says.
 * Weights are reordered once, at open, into the blocked layout the primitive asks for (its
 * "any" format), as a serving engine prepacks them; the call times only the per-call work.
 *
 * oneDNN is loaded with dlopen (libdnnl.so.2), so a program linking this builds and runs without
 * it: open then answers MCT_ENOTFOUND saying what to install. Built without oneDNN's headers
 * (libdnnl-dev), open answers MCT_ENOTFOUND too. The ISA is capped at mct_cpu_tier() as the f32
 * baseline caps it (tuner/baseline.h). */
#ifndef MCT_BASELINE_LP_H
#define MCT_BASELINE_LP_H

#include <stddef.h>

typedef struct mct_base_lp mct_base_lp;  /* opaque */

/* Prepares one call of format fmt ("bf16" or "i8") for sizes M, N, K (each >= 1), nt 1: B
 * [N,K], 0: [K,N], with `threads` threads (>= 1; oneDNN's OpenMP runtime), on copies of A
 * (M*K floats, row-major, lda K) and B (N*K floats, dense): the caller's arrays may go away.
 * Returns 0 and *out (released with mct_base_lp_close), or with *out NULL: MCT_EINVAL (a format
 * not listed, a size below 1, NULL arrays), MCT_ENOTFOUND (oneDNN not installed, or without
 * this matmul: e.g. no bf16 support on this CPU), MCT_ENOMEM; err (may be NULL) says why. */
int mct_base_lp_open(const char *fmt, int nt, long M, long N, long K, int threads,
                     const float *A, const float *B, mct_base_lp **out, char *err,
                     size_t errlen);
/* Runs the call once (the per-call conversion of A, then the primitive). Returns 0, or
 * MCT_EIO when oneDNN reports a failure. */
int mct_base_lp_run(mct_base_lp *l);
/* The f32 output of the last run, M*N row-major. Owned by l, valid until mct_base_lp_close. */
const float *mct_base_lp_out(const mct_base_lp *l);
/* i8: the weight range used, 127 or 63 (see above); bf16: 0. */
int mct_base_lp_wmax(const mct_base_lp *l);
/* e.g. "oneDNN 2.6.3 matmul bf16 (src bf16, weights bf16, dst f32), ISA avx512_core_amx". Owned
 * by l, valid until mct_base_lp_close. */
const char *mct_base_lp_label(const mct_base_lp *l);
/* Frees l and its oneDNN objects; NULL is ignored. */
void mct_base_lp_close(mct_base_lp *l);

#endif
