/* The generic path of a generated library: any shape, stride, transpose, alpha, beta and
 * epilogue. The arithmetic runs in the generic kernels the generator lowered for each ISA tier
 * (blocked, packed, vectorized); this file only brings the arguments to their ABI (A not
 * transposed, alpha 1, beta 0 or 1, no epilogue) with temporaries where needed. libc only. */
#include "runtime/dispatch.h"
#include "runtime/quant.h"

#include <stdlib.h>
#include <string.h>

/* exp and the activations exactly as codegen emits them, so tuned and generic paths agree. */
static float rt_exp(float x)
{
    if (x > 88.0f) x = 88.0f;
    if (x < -87.0f) x = -87.0f;
    float n = (float)(int)(x * 1.44269504f + (x >= 0 ? 0.5f : -0.5f));
    float r = x - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.0f + r * (1.0f + r * (0.5f + r * (0.166666672f + r * (0.0416666418f +
              r * (0.00833336823f + r * 0.00138888892f)))));
    union { float f; int i; } u;
    u.i = ((int)n + 127) << 23;
    return p * u.f;
}

float mct_rt_act(int act, float v)
{
    switch (act) {
    case MCT_RT_ACT_RELU:
        return v > 0.0f ? v : 0.0f;
    case MCT_RT_ACT_GELU: {
        float y = 0.7978845608f * (v + 0.044715f * v * v * v);
        float e = rt_exp(2.0f * y);
        return 0.5f * v * (1.0f + (1.0f - 2.0f / (e + 1.0f)));
    }
    case MCT_RT_ACT_SILU:
        return v / (1.0f + rt_exp(-v));
    default:
        return v;
    }
}

static mct_rt_kernel_fn rt_kernel(const mct_rt_lib *L, int layout, int beta)
{
    for (int i = L->gisa; i >= 0; i--)
        if (L->generic[i][layout][beta])
            return L->generic[i][layout][beta];
    return NULL;
}

int mct_rt_generic(const mct_rt_lib *L, int transA, int layout, long M, long N, long K,
                   float alpha, const float *A, long lda, const float *B, long ldb, float beta,
                   float *C, long ldc, const float *bias, int act)
{
    mct_rt_kernel_fn k0 = rt_kernel(L, layout, 0), k1 = rt_kernel(L, layout, 1);
    float *At = NULL, *T = NULL;
    int rc = MCT_OK, epi = bias || act != MCT_RT_ACT_NONE;
    if (!k0 || !k1)
        return MCT_EUNSUPPORTED;
    if (transA) {  /* A is [K,M]: the kernels read row-major [M,K] */
        At = malloc(sizeof(float) * (size_t)M * (size_t)K);
        if (!At) {
            rc = MCT_ENOMEM;
            goto fail;
        }
        for (long k = 0; k < K; k++)
            for (long i = 0; i < M; i++)
                At[i * K + k] = A[k * lda + i];
        A = At;
        lda = K;
    }
    if (!epi && alpha == 1.0f && (beta == 0.0f || beta == 1.0f)) {
        rc = (beta == 0.0f ? k0 : k1)(M, N, K, A, lda, B, ldb, C, ldc, NULL, 1, 1, 0, 0, 0);
        goto fail;
    }
    if (beta == 0.0f && (!epi || alpha == 1.0f)) {  /* in place: C is written, never read */
        rc = k0(M, N, K, A, lda, B, ldb, C, ldc, NULL, 1, 1, 0, 0, 0);
        if (rc < 0)
            goto fail;
        for (long i = 0; i < M; i++)
            for (long j = 0; j < N; j++) {
                float v = C[i * ldc + j];
                C[i * ldc + j] = epi ? mct_rt_act(act, v + (bias ? bias[j] : 0.0f)) : alpha * v;
            }
        goto fail;
    }
    /* C = beta*C + alpha*act(A*B + bias) through a temporary, so C is read once and only when
     * beta != 0 (cblas never reads C when beta is 0) */
    T = malloc(sizeof(float) * (size_t)M * (size_t)N);
    if (!T) {
        rc = MCT_ENOMEM;
        goto fail;
    }
    rc = k0(M, N, K, A, lda, B, ldb, T, N, NULL, 1, 1, 0, 0, 0);
    if (rc < 0)
        goto fail;
    for (long i = 0; i < M; i++)
        for (long j = 0; j < N; j++) {
            float v = T[i * N + j];
            if (epi)
                v = mct_rt_act(act, v + (bias ? bias[j] : 0.0f));
            v *= alpha;
            C[i * ldc + j] = beta == 0.0f ? v : v + beta * C[i * ldc + j];
        }
fail:
    free(At);
    free(T);
    return rc;
}

int mct_rt_generic_q(const mct_rt_lib *L, int fmt, int group, long M, long N, long K,
                     const float *A, long lda, const void *plain, float *C, long ldc,
                     const float *bias, int act, int beta)
{
    /* channels per block: about 1 MiB of f32 weights, so the temporary stays in cache while the
     * generic kernel reads it, whatever N */
    long nb = (1L << 18) / K;
    if (nb < 1)
        nb = 1;
    if (nb > N)
        nb = N;
    float *T = malloc(sizeof(float) * (size_t)nb * (size_t)K);
    int rc = MCT_OK;
    if (!T)
        return MCT_ENOMEM;
    for (long n0 = 0; n0 < N && rc == MCT_OK; n0 += nb) {
        long n1 = n0 + nb < N ? n0 + nb : N;
        rc = mct_rt_q_dequantize_rows(fmt, group, N, K, plain, n0, n1, T);
        if (rc == MCT_OK)
            rc = mct_rt_generic(L, 0, MCT_RT_NT, M, n1 - n0, K, 1.0f, A, lda, T, K,
                                beta ? 1.0f : 0.0f, C + n0, ldc, bias ? bias + n0 : NULL, act);
    }
    free(T);
    return rc;
}
