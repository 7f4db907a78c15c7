/* The correctness oracle (tuner/oracle.h). */
#include "tuner/oracle.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>

static float act_ref(mct_act a, float x)
{
    switch (a) {
    case MCT_ACT_RELU: return x > 0 ? x : 0;
    case MCT_ACT_GELU: {
        double t = tanh(0.7978845608028654 * ((double)x + 0.044715 * (double)x * x * x));
        return (float)(0.5 * x * (1.0 + t));
    }
    case MCT_ACT_SILU: return (float)(x / (1.0 + exp(-(double)x)));
    case MCT_ACT_NONE: break;
    }
    return x;
}

int mct_oracle_run(const mct_workload *w, long M, long N, long K,
                   const float *A, long lda, const float *B, long ldb, float *C, long ldc,
                   const float *bias, long batch, long group, long sA, long sB, long sC)
{
    if (M <= 0 || N <= 0)
        return MCT_OK;  /* nothing to write */
    float *T = malloc(sizeof(float) * (size_t)M * (size_t)N);
    if (!T)
        return MCT_ENOMEM;
    if (batch < 1)
        batch = 1;
    if (group < 1)
        group = 1;
    for (long b = 0; b < batch; b++) {
        const float *Ab = A + b * sA;
        const float *Bb = B + (b / group) * sB;
        float *Cb = C + b * sC;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, w->layout == MCT_NT ? CblasTrans : CblasNoTrans,
                    (int)M, (int)N, (int)K, 1.0f, Ab, (int)lda, Bb, (int)ldb, 0.0f, T, (int)N);
        for (long i = 0; i < M; i++)
            for (long j = 0; j < N; j++) {
                float v = T[i * N + j];
                if (w->bias && bias)
                    v += bias[j];
                v = act_ref(w->act, v);
                if (w->beta)
                    Cb[i * ldc + j] += v;
                else
                    Cb[i * ldc + j] = v;
            }
    }
    free(T);
    return 0;
}

double mct_oracle_relerr(long M, long N, long K, const float *got, const float *want,
                         long ldc, long batch, long sC)
{
    double worst = 0, scale = sqrt((double)K) + 1.0;
    if (batch < 1)
        batch = 1;
    for (long b = 0; b < batch; b++)
        for (long i = 0; i < M; i++)
            for (long j = 0; j < N; j++) {
                double g = got[b * sC + i * ldc + j], x = want[b * sC + i * ldc + j];
                double e = fabs(g - x) / (fabs(x) + scale);
                if (!(e <= worst)) /* also catches NaN */
                    worst = isnan(e) ? INFINITY : e;
            }
    return worst;
}

double mct_oracle_tolerance(long K)
{
    return 1e-5 * (4.0 + sqrt((double)K));
}
