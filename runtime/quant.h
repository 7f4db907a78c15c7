/* Low-precision weight formats: their plain layout, the quantizers (f32 -> plain) and the
 * reference dequantizer (plain -> f32). This ships inside every generated library (libc only)
 * and the tuner calls the same functions, so the rounding rules exist once.
 *
 * Formats (a workload key's " w=FMT"): bf16; i8 (symmetric 8-bit integers, one f32 scale per
 * output channel n); q4gG (symmetric 4-bit integers in groups of G consecutive k, one f32 scale
 * per (n, group); G even, K a multiple of G). The dequantized weight is q*scale (bf16: the bf16
 * value widened). f32 weights have no plain layout here (MCT_RT_WF_F32 is refused).
 *
 * The plain layout: one buffer, weight row n = output channel (whatever the f32 layout was):
 *   bytes [0, D)            data, element (n, k) at index e = n*K + k:
 *                             bf16: uint16 [N][K] (the high half of the f32 bits), D = 2*N*K
 *                             i8:   int8   [N][K],                                 D = N*K
 *                             q4:   bytes  [N][K/2]: element e in the low nibble of byte e/2
 *                                   when e is even, the high nibble when odd; q in [-8, 7]
 *                                   stored as q+8,                                 D = N*K/2
 *   bytes [R, R + 4*S)      float scales, R = D rounded up to 16: none (bf16), [N] (i8),
 *                           [N][K/G] (q4)
 * Quantizers round to nearest, ties to even: bf16 on the f32 bits (NaN stays a NaN, overflow
 * goes to infinity); i8: scale = max|w| / 127 over the channel, q = rne(w / scale) clamped to
 * [-127, 127]; q4: scale = max|w| / 7 over the group, q = rne(w / scale) clamped to [-8, 7] (-8
 * is never produced from f32, it is accepted in files). An all-zero channel or group gets scale 0
 * and q 0 (no division). So |w - q*scale| <= scale/2 (up to f32 rounding), bf16's relative
 * error <= 2^-8. */
#ifndef MCT_RT_QUANT_H
#define MCT_RT_QUANT_H

#include <stddef.h>
#include <stdint.h>

enum { MCT_RT_WF_F32 = 0, MCT_RT_WF_BF16 = 1, MCT_RT_WF_I8 = 2, MCT_RT_WF_Q4 = 3 };

/* The format's name as keys spell it ("f32", "bf16", "i8", "q4g32") into buf; returns buf.
 * Cannot fail (an unknown fmt gives "?"). */
const char *mct_rt_wfmt_name(int fmt, int group, char buf[24]);

/* Parses a name as mct_rt_wfmt_name writes it: 0 with *fmt and *group (0 unless q4) set, or
 * MCT_EINVAL (message in err, may be NULL) naming the text: unknown format, q4 group missing,
 * odd, below 2 or above 4096. */
int mct_rt_wfmt_parse(const char *s, int *fmt, int *group, char *err, size_t errlen);

/* 0 when (fmt, group) is a quantized format and N, K fit it; MCT_EINVAL (f32 or unknown fmt, bad
 * group) or MCT_ERANGE (N or K below 1, K not a multiple of the q4 group), message in err. */
int mct_rt_q_check(int fmt, int group, long N, long K, char *err, size_t errlen);

/* Byte sizes of the plain layout's parts for a checked (fmt, group, N, K): the data D, the
 * offset of the scales R, the number of scales S, and the whole buffer R + 4*S. */
size_t mct_rt_q_data_bytes(int fmt, long N, long K);
size_t mct_rt_q_scale_at(int fmt, long N, long K);
size_t mct_rt_q_scale_count(int fmt, int group, long N, long K);
size_t mct_rt_q_plain_bytes(int fmt, int group, long N, long K);

/* bf16 of an f32 (round to nearest even; NaN kept a quiet NaN with its sign) and back. */
uint16_t mct_rt_bf16_of(float x);
float mct_rt_f32_of_bf16(uint16_t h);

/* Quantizes f32 weights B (layout 0: B[K,N] with row stride ldb >= N; 1: B[N,K], ldb >= K) into
 * the plain layout at plain (mct_rt_q_plain_bytes bytes, the caller's). Returns 0; mct_rt_q_check's
 * errors; MCT_EINVAL for B or plain NULL, ldb too small, or a non-finite weight in an i8/q4
 * channel (its scale would not be finite; the message names n and k). plain is then partly
 * written. */
int mct_rt_q_quantize(int fmt, int group, int layout, long N, long K, const float *B, long ldb,
                      void *plain, char *err, size_t errlen);

/* The plain layout from its two parts as an engine's files hold them: q (D bytes as above) and
 * scales (S floats; NULL for bf16) copied into plain (mct_rt_q_plain_bytes bytes). Returns 0,
 * mct_rt_q_check's errors, MCT_EINVAL for a NULL pointer that is needed. */
int mct_rt_q_assemble(int fmt, int group, long N, long K, const void *q, const float *scales,
                      void *plain, char *err, size_t errlen);

/* The reference dequantizer: out[n*K + k] = the dequantized weight (n, k), for N*K floats of the
 * caller's. Returns 0 or mct_rt_q_check's errors (then out is untouched). */
int mct_rt_q_dequantize(int fmt, int group, long N, long K, const void *plain, float *out);
/* The same for the channels n0 <= n < n1 only: out[(n - n0)*K + k], (n1 - n0)*K floats. Returns
 * 0, mct_rt_q_check's errors or MCT_ERANGE (not 0 <= n0 <= n1 <= N); out is then untouched. */
int mct_rt_q_dequantize_rows(int fmt, int group, long N, long K, const void *plain, long n0,
                             long n1, float *out);

#endif
