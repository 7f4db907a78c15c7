/* The correctness oracle: OpenBLAS (cblas_sgemm) plus a plain-C epilogue, with the same
 * arguments as a generated kernel (see codegen/codegen.h). Used by the tests and by the
 * measurement harness to decide whether a candidate's answer is right. */
#ifndef MCT_ORACLE_H
#define MCT_ORACLE_H

#include "codegen/codegen.h"

/* Computes C exactly as a kernel for workload w must (B is never prepacked here): layout, bias
 * (used when w->bias and bias is not NULL), activation and beta come from w, the sizes and
 * strides from the arguments (batch and group below 1 read as 1; sizes must fit in an int).
 * Returns 0, or MCT_ENOMEM when its M x N scratch cannot be allocated; C is then unchanged. */
int mct_oracle_run(const mct_workload *w, long M, long N, long K,
                   const float *A, long lda, const float *B, long ldb, float *C, long ldc,
                   const float *bias, long batch, long group, long sA, long sB, long sC);

/* Largest |got - want| / (|want| + scale) over the M x N x batch outputs (batch below 1 reads as
 * 1; head b at b * sC), where scale = sqrt(K) + 1 is the expected magnitude of a K-term dot
 * product (so near-zero outputs do not blow up); 0 when there is nothing to compare. A NaN
 * anywhere in got or want gives INFINITY, so it never passes a tolerance. */
double mct_oracle_relerr(long M, long N, long K, const float *got, const float *want,
                         long ldc, long batch, long sC);

/* The tolerance a kernel must meet for a K-term f32 reduction: 1e-5 * (4 + sqrt(K)). */
double mct_oracle_tolerance(long K);

#endif
