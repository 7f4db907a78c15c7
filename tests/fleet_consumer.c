/* Consumer of the library the fleet test's merge job generates (name "mctfleet"): for one
 * layer (N, K, layout nt as weights are stored) it runs mctfleet_sgemm and mctfleet_matmul at
 * the tuned M values and at untuned ones around them, and compares each with a double-precision
 * loop. Built by tests/test_fleet.c with plain cc against the generated mctfleet.c.
 * Usage: fleet_consumer N K M1,M2,...  Prints "CPU: <mctfleet_cpu()>", "TUNED: <1|0>" (whether
 * the chosen table holds the layer) and "RESULT pass=N fail=N". */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mctfleet.h"

static unsigned long long rng = 0x9e3779b97f4a7c15ull;
static float frand(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (float)((rng >> 40) & 0xffff) / 32768.0f - 1.0f;
}

static int one(long M, long N, long K, int via_sgemm)
{
    float *A = malloc(sizeof(float) * (size_t)(M * K)), *B = malloc(sizeof(float) * (size_t)(N * K));
    float *C = malloc(sizeof(float) * (size_t)(M * N));
    double err = 0, mag = 1e-6;
    int rc;
    for (long i = 0; i < M * K; i++) A[i] = frand();
    for (long i = 0; i < N * K; i++) B[i] = frand();
    for (long i = 0; i < M * N; i++) C[i] = NAN;
    if (via_sgemm)
        rc = mctfleet_sgemm(MCTFLEET_ROW_MAJOR, MCTFLEET_NO_TRANS, MCTFLEET_TRANS, (int)M, (int)N,
                            (int)K, 1.0f, A, (int)K, B, (int)K, 0.0f, C, (int)N);
    else
        rc = mctfleet_matmul(MCTFLEET_NT, M, N, K, A, K, B, K, C, N, NULL, MCTFLEET_ACT_NONE, 0);
    for (long i = 0; i < M; i++)
        for (long j = 0; j < N; j++) {
            double s = 0;
            for (long k = 0; k < K; k++)
                s += (double)A[i * K + k] * B[j * K + k];
            double d = fabs(C[i * N + j] - s);
            if (!(d <= err)) err = d;   /* NaN propagates */
            if (fabs(s) > mag) mag = fabs(s);
        }
    free(A), free(B), free(C);
    if (rc != 0 || !(err / mag < 1e-5)) {
        fprintf(stderr, "M=%ld N=%ld K=%ld %s: rc %d, relative error %g\n", M, N, K,
                via_sgemm ? "sgemm" : "matmul", rc, err / mag);
        return 0;
    }
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: fleet_consumer N K M1,M2,...\n");
        return 2;
    }
    long N = atol(argv[1]), K = atol(argv[2]);
    int pass = 0, fail = 0, tuned = 1;
    printf("CPU: %s\n", mctfleet_cpu());
    for (char *m = strtok(argv[3], ","); m; m = strtok(NULL, ",")) {
        long M = atol(m);
        tuned &= mctfleet_is_tuned(MCTFLEET_OP_MATMUL, MCTFLEET_NT, M, N, K, 1, 1, 0,
                                   MCTFLEET_ACT_NONE, 0) == 1;
        long ms[3] = {M, M + 3, M > 1 ? M - 1 : 2};
        for (int i = 0; i < 3; i++)
            for (int s = 0; s < 2; s++)
                one(ms[i], N, K, s) ? pass++ : fail++;
    }
    printf("TUNED: %d\nRESULT pass=%d fail=%d\n", tuned, pass, fail);
    return fail ? 1 : 0;
}
