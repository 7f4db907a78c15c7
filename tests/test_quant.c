/* Low-precision weight formats (runtime/quant.h): the quantizers' error bounds and rounding, zero
 * channels and groups, NaN in bf16, bad arguments, the plain layout's byte order and its round
 * trip through mct_rt_q_assemble and the dequantizer. */
#include "runtime/mct_err.h"
#include "runtime/quant.h"
#include "tests/check.h"

#include <math.h>
#include <stdint.h>

static uint64_t st = 88172645463325252ULL;
static float urand(void)
{
    st ^= st << 13;
    st ^= st >> 7;
    st ^= st << 17;
    return (float)((double)(st >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static float f_of(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void test_bf16(void)
{
    /* ties to even on the dropped 16 bits */
    CHECK(mct_rt_bf16_of(f_of(0x3f808000u)) == 0x3f80);  /* tie, even stays */
    CHECK(mct_rt_bf16_of(f_of(0x3f818000u)) == 0x3f82);  /* tie, odd goes up */
    CHECK(mct_rt_bf16_of(f_of(0x3f808001u)) == 0x3f81);  /* above the tie */
    CHECK(mct_rt_bf16_of(f_of(0x3f807fffu)) == 0x3f80);  /* below the tie */
    CHECK(mct_rt_bf16_of(f_of(0x7f7fffffu)) == 0x7f80);  /* FLT_MAX rounds to infinity */
    CHECK(mct_rt_bf16_of(-0.0f) == 0x8000);
    uint16_t n = mct_rt_bf16_of(f_of(0x7f800001u));      /* a NaN whose payload is in the low bits */
    CHECK(isnan(mct_rt_f32_of_bf16(n)));
    CHECK(isnan(mct_rt_f32_of_bf16(mct_rt_bf16_of(-NAN))) && (mct_rt_bf16_of(-NAN) & 0x8000));
    CHECK(isinf(mct_rt_f32_of_bf16(mct_rt_bf16_of(INFINITY))));
    int ok = 1;
    for (int i = 0; i < 100000; i++) {
        float x = urand() * powf(2.0f, (float)(i % 60 - 30));
        float y = mct_rt_f32_of_bf16(mct_rt_bf16_of(x));
        if (x != 0 && fabsf(y - x) > fabsf(x) * 0x1p-8f)
            ok = 0;
    }
    CHECK(ok);
}

/* quantize -> dequantize of random weights in layout lay, checking |w - deq| <= scale/2 */
static void bound(int fmt, int group, int lay, long N, long K)
{
    long ldb = (lay ? K : N) + 3;
    float *B = malloc(sizeof(float) * (size_t)(ldb * (lay ? N : K)));
    float *D = malloc(sizeof(float) * (size_t)(N * K));
    size_t pb = mct_rt_q_plain_bytes(fmt, group, N, K);
    unsigned char *P = malloc(pb);
    for (long i = 0; i < ldb * (lay ? N : K); i++)
        B[i] = urand() * (1.0f + (float)(i % 7));
    /* channel 1 (and so every group of it) all zero */
    for (long k = 0; k < K; k++)
        B[lay ? 1 * ldb + k : k * ldb + 1] = 0.0f;
    char err[256] = "";
    int rc = mct_rt_q_quantize(fmt, group, lay, N, K, B, ldb, P, err, sizeof err);
    CHECKF(rc == 0, "quantize fmt %d: %s", fmt, err);
    CHECK(mct_rt_q_dequantize(fmt, group, N, K, P, D) == 0);
    const float *sc = (const float *)(const void *)(P + mct_rt_q_scale_at(fmt, N, K));
    int ok = 1, zero_ok = 1;
    for (long n = 0; n < N; n++)
        for (long k = 0; k < K; k++) {
            float w = B[lay ? n * ldb + k : k * ldb + n], d = D[n * K + k];
            float s = fmt == MCT_RT_WF_I8 ? sc[n] : sc[n * (K / group) + k / group];
            if (fabsf(w - d) > s * 0.5f * (1.0f + 1e-5f) + 1e-30f)
                ok = 0;
            if (n == 1 && (s != 0.0f || d != 0.0f))
                zero_ok = 0;
        }
    CHECKF(ok, "fmt %d group %d layout %d: an error above scale/2", fmt, group, lay);
    CHECK(zero_ok);
    free(B);
    free(D);
    free(P);
}

static void test_int(void)
{
    bound(MCT_RT_WF_I8, 0, 1, 7, 33);
    bound(MCT_RT_WF_I8, 0, 0, 5, 19);
    bound(MCT_RT_WF_Q4, 32, 1, 6, 96);
    bound(MCT_RT_WF_Q4, 128, 0, 3, 256);
    bound(MCT_RT_WF_Q4, 2, 1, 4, 6);
    /* exact values and ties: a channel with max 127 has scale 1, so w = q; 2.5 -> 2, 3.5 -> 4 */
    float B[8] = {127.0f, 2.5f, 3.5f, -2.5f, -127.0f, 0.49f, -0.5f, 1.5f};
    unsigned char P[64];
    CHECK(mct_rt_q_quantize(MCT_RT_WF_I8, 0, 1, 1, 8, B, 8, P, NULL, 0) == 0);
    signed char want[8] = {127, 2, 4, -2, -127, 0, 0, 2};
    CHECK(memcmp(P, want, 8) == 0);
    float s;
    memcpy(&s, P + 16, 4);
    CHECK(s == 1.0f);
    /* q4, group 2: nibble order and the q+8 code; max 7 gives scale 1 */
    float Q[4] = {7.0f, -3.0f, -7.0f, 2.5f};
    CHECK(mct_rt_q_quantize(MCT_RT_WF_Q4, 2, 1, 1, 4, Q, 4, P, NULL, 0) == 0);
    CHECK(P[0] == (unsigned char)((7 + 8) | ((-3 + 8) << 4)));
    /* group 2: max 7 -> scale 1; 2.5 / 1 ties to 2 */
    CHECK(P[1] == (unsigned char)((-7 + 8) | ((2 + 8) << 4)));
}

static void test_plain_layout(void)
{
    enum { N = 3, K = 8 };
    /* an engine's own q4g4 file: bytes [N][K/2] and scales [N][K/G] */
    unsigned char q[N * K / 2];
    float sc[N * 2];
    for (int i = 0; i < N * K / 2; i++)
        q[i] = (unsigned char)(i * 37 + 11);
    for (int i = 0; i < N * 2; i++)
        sc[i] = 0.25f * (float)(i + 1);
    size_t pb = mct_rt_q_plain_bytes(MCT_RT_WF_Q4, 4, N, K);
    CHECK(pb == 16 + 4 * N * 2);
    unsigned char *P = malloc(pb);
    CHECK(mct_rt_q_assemble(MCT_RT_WF_Q4, 4, N, K, q, sc, P, NULL, 0) == 0);
    float D[N * K];
    CHECK(mct_rt_q_dequantize(MCT_RT_WF_Q4, 4, N, K, P, D) == 0);
    int ok = 1;
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++) {
            int e = n * K + k, v = (q[e / 2] >> (e % 2 * 4)) & 15;
            if (D[e] != (float)(v - 8) * sc[n * 2 + k / 4])
                ok = 0;
        }
    CHECK(ok);
    free(P);
    char err[256];
    unsigned char P8[64];  /* i8 needs its scales */
    CHECK(mct_rt_q_assemble(MCT_RT_WF_I8, 0, N, K, q, NULL, P8, err, sizeof err) == MCT_EINVAL);
    CHECK(mct_rt_q_check(MCT_RT_WF_Q4, 32, 4, 48, err, sizeof err) == MCT_ERANGE &&
          strstr(err, "K=48") && strstr(err, "G=32"));
    CHECK(mct_rt_q_check(MCT_RT_WF_F32, 0, 4, 48, NULL, 0) == MCT_EINVAL);
    int f, g;
    CHECK(mct_rt_wfmt_parse("q4g7", &f, &g, err, sizeof err) == MCT_EINVAL && strstr(err, "q4g7"));
    CHECK(mct_rt_wfmt_parse("q4", &f, &g, NULL, 0) == MCT_EINVAL);
    CHECK(mct_rt_wfmt_parse("int4", &f, &g, NULL, 0) == MCT_EINVAL);
    CHECK(mct_rt_wfmt_parse("q4g128", &f, &g, NULL, 0) == 0 && f == MCT_RT_WF_Q4 && g == 128);
    float bad[4] = {1.0f, NAN, 0.0f, 2.0f};
    unsigned char out[64];
    CHECK(mct_rt_q_quantize(MCT_RT_WF_I8, 0, 1, 1, 4, bad, 4, out, err, sizeof err) ==
          MCT_EINVAL && strstr(err, "k=1"));
    CHECK(mct_rt_q_quantize(MCT_RT_WF_BF16, 0, 1, 1, 4, bad, 4, out, NULL, 0) == 0);
    CHECK(mct_rt_q_quantize(MCT_RT_WF_I8, 0, 1, 1, 4, bad, 3, out, err, sizeof err) ==
          MCT_EINVAL && strstr(err, "ldb=3"));
}

int main(void)
{
    test_bf16();
    test_int();
    test_plain_layout();
    return check_done();
}
