/* Low-precision weight formats (runtime/quant.h). libc only. */
#include "runtime/quant.h"
#include "runtime/mct_err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *mct_rt_wfmt_name(int fmt, int group, char buf[24])
{
    switch (fmt) {
    case MCT_RT_WF_F32: snprintf(buf, 24, "f32"); break;
    case MCT_RT_WF_BF16: snprintf(buf, 24, "bf16"); break;
    case MCT_RT_WF_I8: snprintf(buf, 24, "i8"); break;
    case MCT_RT_WF_Q4: snprintf(buf, 24, "q4g%d", group); break;
    default: snprintf(buf, 24, "?"); break;
    }
    return buf;
}

int mct_rt_wfmt_parse(const char *s, int *fmt, int *group, char *err, size_t errlen)
{
    if (!s)
        return mct_errf(err, errlen, MCT_EINVAL, "weight format: missing");
    if (!strcmp(s, "f32") || !strcmp(s, "bf16") || !strcmp(s, "i8")) {
        *fmt = s[0] == 'f' ? MCT_RT_WF_F32 : s[0] == 'b' ? MCT_RT_WF_BF16 : MCT_RT_WF_I8;
        *group = 0;
        return 0;
    }
    if (!strncmp(s, "q4g", 3)) {
        char *end;
        long g = strtol(s + 3, &end, 10);
        if (end == s + 3 || *end || s[3] == '+' || s[3] == '-')
            return mct_errf(err, errlen, MCT_EINVAL, "weight format '%s': q4 needs its group "
                            "size along K, e.g. q4g32 or q4g128", s);
        if (g < 2 || g > 4096 || g % 2)
            return mct_errf(err, errlen, MCT_EINVAL, "weight format '%s': the group size %ld must "
                            "be even and between 2 and 4096 (e.g. q4g32, q4g128)", s, g);
        *fmt = MCT_RT_WF_Q4;
        *group = (int)g;
        return 0;
    }
    return mct_errf(err, errlen, MCT_EINVAL, "weight format '%s': unknown (use f32, bf16, i8 or "
                    "q4gG, e.g. q4g32)", s);
}

int mct_rt_q_check(int fmt, int group, long N, long K, char *err, size_t errlen)
{
    if (fmt != MCT_RT_WF_BF16 && fmt != MCT_RT_WF_I8 && fmt != MCT_RT_WF_Q4)
        return mct_errf(err, errlen, MCT_EINVAL, "weight format %d: not a low-precision format "
                        "(bf16, i8, q4gG)", fmt);
    if (fmt == MCT_RT_WF_Q4 && (group < 2 || group > 4096 || group % 2))
        return mct_errf(err, errlen, MCT_EINVAL, "q4 group %d: must be even and between 2 and "
                        "4096", group);
    if (N < 1 || K < 1)
        return mct_errf(err, errlen, MCT_ERANGE, "N=%ld K=%ld: sizes must be at least 1", N, K);
    if (fmt == MCT_RT_WF_Q4 && K % group)
        return mct_errf(err, errlen, MCT_ERANGE, "K=%ld is not a multiple of the q4 group size "
                        "G=%d: use a group that divides K (w=q4gG)", K, group);
    return 0;
}

size_t mct_rt_q_data_bytes(int fmt, long N, long K)
{
    size_t e = (size_t)N * (size_t)K;
    return fmt == MCT_RT_WF_BF16 ? 2 * e : fmt == MCT_RT_WF_Q4 ? (e + 1) / 2 : e;
}

size_t mct_rt_q_scale_at(int fmt, long N, long K)
{
    return (mct_rt_q_data_bytes(fmt, N, K) + 15) / 16 * 16;
}

size_t mct_rt_q_scale_count(int fmt, int group, long N, long K)
{
    if (fmt == MCT_RT_WF_I8)
        return (size_t)N;
    if (fmt == MCT_RT_WF_Q4 && group > 0)
        return (size_t)N * (size_t)(K / group);
    return 0;
}

size_t mct_rt_q_plain_bytes(int fmt, int group, long N, long K)
{
    return mct_rt_q_scale_at(fmt, N, K) + 4 * mct_rt_q_scale_count(fmt, group, N, K);
}

uint16_t mct_rt_bf16_of(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u)  /* NaN: keep sign and top payload, force quiet */
        return (uint16_t)((u >> 16) | 0x40);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1)) >> 16);
}

float mct_rt_f32_of_bf16(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float x;
    memcpy(&x, &u, 4);
    return x;
}

/* Round to nearest, ties to even, for |x| < 2^22, without libm or the rounding mode. */
static float rne(float x)
{
    float a = x < 0 ? -x : x, t = (float)(long)a, d = a - t;
    if (d > 0.5f || (d == 0.5f && ((long)t & 1)))
        t += 1.0f;
    return x < 0 ? -t : t;
}

static int q_finite(float x)
{
    return x - x == 0.0f;
}

/* Quantizes n values w[0], w[st], ... to integers in [lo, hi] with one scale = max|w| / div. */
static float quant_run(const float *w, long st, long n, float div, int lo, int hi, int *q)
{
    float m = 0.0f;
    for (long i = 0; i < n; i++) {
        float a = w[i * st] < 0 ? -w[i * st] : w[i * st];
        if (a > m)
            m = a;
    }
    float s = m / div;
    for (long i = 0; i < n; i++) {
        float v = s > 0.0f ? rne(w[i * st] / s) : 0.0f;
        q[i] = v < (float)lo ? lo : v > (float)hi ? hi : (int)v;
    }
    return s;
}

int mct_rt_q_quantize(int fmt, int group, int layout, long N, long K, const float *B, long ldb,
                      void *plain, char *err, size_t errlen)
{
    int rc = mct_rt_q_check(fmt, group, N, K, err, errlen);
    int *q = NULL;
    if (rc)
        return rc;
    if (!B || !plain)
        return mct_errf(err, errlen, MCT_EINVAL, "quantize: B and the output must not be NULL");
    if (ldb < (layout ? K : N))
        return mct_errf(err, errlen, MCT_EINVAL, "quantize: ldb=%ld is below %s=%ld", ldb,
                        layout ? "K" : "N", layout ? K : N);
    unsigned char *d = (unsigned char *)plain;
    float *sc = (float *)(void *)(d + mct_rt_q_scale_at(fmt, N, K));
    /* element (n, k) of B is B[n * rs + k * cs] */
    long rs = layout ? ldb : 1, cs = layout ? 1 : ldb;
    if (fmt == MCT_RT_WF_BF16) {
        for (long n = 0; n < N; n++)
            for (long k = 0; k < K; k++) {
                uint16_t h = mct_rt_bf16_of(B[n * rs + k * cs]);
                memcpy(d + 2 * ((size_t)n * (size_t)K + (size_t)k), &h, 2);
            }
        return 0;
    }
    long run = fmt == MCT_RT_WF_I8 ? K : group;
    q = malloc(sizeof(int) * (size_t)run);
    if (!q)
        return mct_errf(err, errlen, MCT_ENOMEM, "quantize: out of memory");
    if (fmt == MCT_RT_WF_Q4)
        memset(d, 0, mct_rt_q_data_bytes(fmt, N, K));
    for (long n = 0; n < N; n++)
        for (long k0 = 0; k0 < K; k0 += run) {
            const float *w = B + n * rs + k0 * cs;
            for (long i = 0; i < run; i++)
                if (!q_finite(w[i * cs])) {
                    rc = mct_errf(err, errlen, MCT_EINVAL, "quantize: weight (n=%ld, k=%ld) is "
                                  "not finite; i8 and q4 scales need finite weights", n, k0 + i);
                    goto fail;
                }
            if (fmt == MCT_RT_WF_I8) {
                sc[n] = quant_run(w, cs, run, 127.0f, -127, 127, q);
                for (long i = 0; i < run; i++)
                    d[(size_t)n * (size_t)K + (size_t)i] = (unsigned char)(signed char)q[i];
            } else {
                sc[(size_t)n * (size_t)(K / group) + (size_t)(k0 / group)] =
                    quant_run(w, cs, run, 7.0f, -8, 7, q);
                for (long i = 0; i < run; i++) {
                    size_t e = (size_t)n * (size_t)K + (size_t)(k0 + i);
                    d[e / 2] |= (unsigned char)((q[i] + 8) << (e % 2 * 4));
                }
            }
        }
fail:
    free(q);
    return rc;
}

int mct_rt_q_assemble(int fmt, int group, long N, long K, const void *q, const float *scales,
                      void *plain, char *err, size_t errlen)
{
    int rc = mct_rt_q_check(fmt, group, N, K, err, errlen);
    if (rc)
        return rc;
    size_t ns = mct_rt_q_scale_count(fmt, group, N, K);
    if (!q || !plain || (ns && !scales))
        return mct_errf(err, errlen, MCT_EINVAL, "quantized weights: the data%s and the output "
                        "must not be NULL", ns ? ", the scales" : "");
    unsigned char *d = (unsigned char *)plain;
    size_t db = mct_rt_q_data_bytes(fmt, N, K), at = mct_rt_q_scale_at(fmt, N, K);
    memcpy(d, q, db);
    memset(d + db, 0, at - db);
    if (ns)
        memcpy(d + at, scales, 4 * ns);
    return 0;
}

int mct_rt_q_dequantize(int fmt, int group, long N, long K, const void *plain, float *out)
{
    return mct_rt_q_dequantize_rows(fmt, group, N, K, plain, 0, N, out);
}

int mct_rt_q_dequantize_rows(int fmt, int group, long N, long K, const void *plain, long n0,
                             long n1, float *out)
{
    int rc = mct_rt_q_check(fmt, group, N, K, NULL, 0);
    if (rc)
        return rc;
    if (n0 < 0 || n1 > N || n0 > n1)
        return MCT_ERANGE;
    const unsigned char *d = (const unsigned char *)plain;
    const float *sc = (const float *)(const void *)(d + mct_rt_q_scale_at(fmt, N, K));
    for (long n = n0; n < n1; n++)
        for (long k = 0; k < K; k++) {
            size_t e = (size_t)n * (size_t)K + (size_t)k;
            size_t o = (size_t)(n - n0) * (size_t)K + (size_t)k;
            if (fmt == MCT_RT_WF_BF16) {
                uint16_t h;
                memcpy(&h, d + 2 * e, 2);
                out[o] = mct_rt_f32_of_bf16(h);
            } else if (fmt == MCT_RT_WF_I8) {
                out[o] = (float)(signed char)d[e] * sc[n];
            } else {
                int v = (d[e / 2] >> (e % 2 * 4)) & 15;
                out[o] = (float)(v - 8) * sc[(size_t)n * (size_t)(K / group) + (size_t)(k / group)];
            }
        }
    return 0;
}
