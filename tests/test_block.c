/* The Llama-3 decoder block (models/llama_block*.c) at its reduced size: the bound that --check
 * holds each call of a low-precision kernel to (mct_blk_lowp_bound) on synthetic data: a kernel
 * that rounds the activations as the generated ones do passes, the worst case reaches the bound,
 * an output off by more than it fails; the openblas and generic backends agree; with each weight
 * format the block's error against the f32-weight block stays within a bound derived from the
 * quantizers (see quant_bounds); then a library generated from a database with three of the
 * block's shapes tuned here (`mctune tune`, `mctune gen`; one of them with i8 weights) is built in
 * as the gen backends (weights prepacked from f32 and from the plain layout, and plain NAME_sgemm
 * calls) and agrees too, its low-precision calls each within their bound. The block program is
 * compiled by cc from the source tree (under ASan when MCTUNE_SANITIZED is set). */
#include "tests/check.h"
/* compiled in, so the bound functions are tested directly (the shipped program has no way to
 * inject a fault, and needs none); the Makefile rebuilds this test when it changes */
#include "models/llama_block.c"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <limits.h>

static char dir[256], root[512];

/* Runs a shell command, its output into out (NUL-terminated, may be NULL); returns its exit
 * status, -1 when it did not exit. */

static int count(const char *s, const char *what)
{
    int n = 0;
    for (const char *p = s; (p = strstr(p, what)); p++)
        n++;
    return n;
}

/* The "quant M=... w=FMT ... rms relative E" lines of a --check: the largest E per format (over
 * the Ms) into worst[] by the index of fmts; -1 where a format has no line. */
static void quant_errors(const char *out, const char *const *fmts, int n, double *worst, int *lines)
{
    for (int i = 0; i < n; i++)
        worst[i] = -1;
    *lines = 0;
    for (const char *p = out; (p = strstr(p, "\nquant M=")); p++) {
        long M;
        char f[32];
        double rms, mx;
        if (sscanf(p + 1, "quant M=%ld w=%31s vs the f32-weight block (openblas): rms relative "
                   "%lf, max relative %lf", &M, f, &rms, &mx) != 4)
            continue;
        (*lines)++;
        for (int i = 0; i < n; i++)
            if (!strcmp(f, fmts[i]) && rms > worst[i])
                worst[i] = rms;
    }
}

/* Bounds on the block's rms error against the f32-weight block, relative to the f32 block's
 * contribution (out - x). Per weight, rounding to a grid of step s leaves an error e uniform in
 * [-s/2, s/2]: rms(e) = s/sqrt(12); the block's weights are uniform in [-a, a], rms(w) =
 * a/sqrt(3), and a channel's (i8) or a group's (q4) max|w| is close to a, so the relative rms
 * error of one quantized weight matrix is r = s/(2a): i8 s = a/127, r = 1/254; q4 s = a/7,
 * r = 1/14; bf16 keeps 8 significant bits, r <= 2^-8. Independent weight errors give a
 * projection's output the same relative error r. The block's contribution passes two quantized
 * projections in series on each path (q/k/v then o; gate/up then down), so its error is about
 * sqrt(2) to 2 r; the test allows 3 r. It also requires r/4 at least (bf16 r/16: its typical
 * error is well under its bound), so a block that skipped quantization, or quantized with the
 * wrong scale, fails. */
static void quant_bounds(const char *f, double *lo, double *hi)
{
    double r = !strcmp(f, "bf16") ? 1.0 / 256 : !strcmp(f, "i8") ? 1.0 / 254 : 1.0 / 14;
    *hi = 3 * r;
    *lo = !strcmp(f, "bf16") ? r / 16 : r / 4;
}

/* A kernel's answer on synthetic data: A rounded per row as the generated kernels round it
 * (codegen/lower.c, emit_dot_prologue: int8 with scale max|a|/127 through the f32 reciprocal,
 * round to nearest even; bf16 round to nearest even; f32 as is), then exact sums (double) of the
 * rounded a times W, rounded once to f32. */
static void kernel_sim(const char *fmt, long M, long N, long K, const float *A, const float *W,
                       float *C)
{
    float *q = malloc((size_t)K * sizeof *q);
    for (long i = 0; i < M; i++) {
        const float *a = A + i * K;
        float mx = 0;
        for (long k = 0; k < K; k++)
            mx = fabsf(a[k]) > mx ? fabsf(a[k]) : mx;
        const float sc = mx / 127.0f, inv = mx > 0 ? 127.0f / mx : 0.0f;
        for (long k = 0; k < K; k++) {
            if (!strcmp(fmt, "f32")) {
                q[k] = a[k];
            } else if (!strcmp(fmt, "bf16")) {
                unsigned u;
                memcpy(&u, a + k, 4);
                u += 0x7FFFu + ((u >> 16) & 1u);
                u &= 0xFFFF0000u;
                memcpy(q + k, &u, 4);
            } else {
                float x = a[k] * inv;
                x = x >= 127.0f ? 127.0f : x >= -127.0f ? x : -127.0f;
                x = (x + 12582912.0f) - 12582912.0f;
                q[k] = x * sc;   /* exact: an integer of 7 bits times sc */
            }
        }
        for (long n = 0; n < N; n++) {
            double s = 0;
            for (long k = 0; k < K; k++)
                s += (double)q[k] * W[n * K + k];
            C[i * N + n] = (float)s;
        }
    }
    free(q);
}

/* The bound on synthetic data, for format fmt: awkward sizes, weights as the block quantizes them
 * (fmt's dequantized values), rows with an outlier (a large max|a|) and without */
static void bound_random(const char *fmt)
{
    const long M = 5, N = 37, K = 320;    /* K: a multiple of 32 and of q4g32's group */
    float *A = malloc(sizeof(float) * M * K), *W = malloc(sizeof(float) * N * K);
    float *C = malloc(sizeof(float) * M * N), *R = malloc(sizeof(float) * M * N);
    double *l1 = malloc(sizeof(double) * N), *l2 = malloc(sizeof(double) * N);
    mct_blk_fill(A, M * K, 11);
    mct_blk_fill(W, N * K, 12);
    for (long i = 0; i < M; i++)
        A[i * K + 3 * i] = (float)(2 + i);    /* row i's max|a| */
    if (strcmp(fmt, "f32")) {
        int wf, g;
        char e[256];
        void *plain = NULL;
        CHECK(mct_rt_wfmt_parse(fmt, &wf, &g, e, sizeof e) == 0);
        CHECK((plain = malloc(mct_rt_q_plain_bytes(wf, g, N, K))) != NULL);
        CHECK(mct_rt_q_quantize(wf, g, 1, N, K, W, K, plain, e, sizeof e) == 0);
        CHECK(mct_rt_q_dequantize(wf, g, N, K, plain, W) == 0);
        free(plain);
    }
    mct_blk_wnorms(N, K, W, l1, l2);
    ob_linear(M, N, K, A, W, R);
    kernel_sim(fmt, M, N, K, A, W, C);
    long at = -1;
    double bd = 0, q = mct_blk_lowp_worst(fmt, M, N, K, A, l1, l2, C, R, &at, &bd);
    /* within the bound, and the rounding shows (it is not compared with itself) */
    CHECKF(q <= 1 && q >= (strcmp(fmt, "f32") ? 1e-3 : 0) && at >= 0 && at < M * N && bd > 0,
           "w=%s: a kernel rounding as the generated ones do: worst %g of the bound at %ld", fmt,
           q, at);
    /* an element off by just over its bound fails, where it is */
    long i = 2, n = 11;
    double amax = 0, s2 = 0;
    for (long k = 0; k < K; k++) {
        amax = fmax(amax, fabs(A[i * K + k]));
        s2 += (double)A[i * K + k] * A[i * K + k];
    }
    double b = mct_blk_lowp_bound(fmt, K, amax, sqrt(s2), l1[n], l2[n]);
    float keep = C[i * N + n];
    C[i * N + n] = (float)(R[i * N + n] + 1.01 * b);
    q = mct_blk_lowp_worst(fmt, M, N, K, A, l1, l2, C, R, &at, &bd);
    CHECKF(q > 1 && q < 1.02 && at == i * N + n && bd == b, "w=%s: an element 1.01 bound off: "
           "worst %g at %ld (bound %g, want %g at %ld)", fmt, q, at, bd, b, i * N + n);
    C[i * N + n] = (float)(R[i * N + n] - 0.99 * b);
    q = mct_blk_lowp_worst(fmt, M, N, K, A, l1, l2, C, R, &at, NULL);
    CHECKF(q <= 1 && q > 0.98 && at == i * N + n, "w=%s: 0.99 bound off: worst %g at %ld", fmt,
           q, at);
    /* a non-finite output is out of any bound */
    C[i * N + n] = NAN;
    CHECK(mct_blk_lowp_worst(fmt, M, N, K, A, l1, l2, C, R, NULL, NULL) == INFINITY);
    C[i * N + n] = keep;
    /* a wrong kernel (here: a row scaled by 1.5, as with a wrong row scale) is outside */
    for (long j = 0; j < N; j++)
        C[0 * N + j] = 1.5f * R[0 * N + j];
    q = mct_blk_lowp_worst(fmt, M, N, K, A, l1, l2, C, R, &at, NULL);
    CHECKF(q > 1 && at / N == 0, "w=%s: a row scaled by 1.5: worst %g at %ld", fmt, q, at);
    free(A);
    free(W);
    free(C);
    free(R);
    free(l1);
    free(l2);
}

/* The bound is reached: every a of a row halfway between two points of its rounding's grid and
 * the weights' signs those of the rounding errors make the error sum_k |e_k| |w_k|, the bound's
 * rounding term R within its f32 slack; so no tighter bound holds for every kernel of the
 * format. int8: max|a| = 127 s with s = 2^-7 (scale and reciprocal exact), a = (m + 1/2) s;
 * bf16: a = 1 + 2^-8, halfway between 1 and 1 + 2^-7, rounds to 1 (even). */
static void bound_tight(const char *fmt)
{
    const long K = 512, N = 3;
    int bf = !strcmp(fmt, "bf16");
    float *A = malloc(sizeof(float) * K), *W = malloc(sizeof(float) * N * K);
    float C[3], R[3];
    double l1[3], l2[3];
    mct_blk_fill(W, N * K, 21);
    const float s = 1.0f / 128;
    for (long k = 0; k < K; k++) {
        long m = (long)((W[k] + 1) * 100) - 100;  /* any grid point in -100 .. 99 */
        A[k] = bf ? 1.0f + 1.0f / 256 : ((float)m + 0.5f) * s;
    }
    if (!bf)
        A[7] = 127 * s;     /* max|a|, rounded exactly */
    /* the error of a is a - its rounding: round to nearest even of (m + 1/2) goes down (error
     * +s/2) for even m, up for odd; bf16 always down (+2^-8). Weight n: the error's sign, n + 1
     * times the magnitude of a draw */
    for (long n = 0; n < N; n++)
        for (long k = 0; k < K; k++) {
            float w = fabsf(W[n * K + k]) * (float)(n + 1) / 64;
            long m = (long)floorf(A[k] / s);
            W[n * K + k] = bf || m % 2 == 0 ? w : -w;
        }
    mct_blk_wnorms(N, K, W, l1, l2);
    ob_linear(1, N, K, A, W, R);
    kernel_sim(fmt, 1, N, K, A, W, C);
    double q = mct_blk_lowp_worst(fmt, 1, N, K, A, l1, l2, C, R, NULL, NULL);
    CHECKF(q <= 1 && q > 0.98, "w=%s: the worst case reaches %g of the bound (want (0.98, 1])",
           fmt, q);
    free(A);
    free(W);
}

int main(void)
{
    static char out[1 << 16];

    /* the per-call bound of low-precision kernels (llama_block --check), directly */
    static const char *const lowp[] = {"i8", "q4g32", "bf16", "f32"};
    for (int i = 0; i < 4; i++)
        bound_random(lowp[i]);
    bound_tight("i8");
    bound_tight("bf16");

    const char *mctune = getenv("MCTUNE") ? getenv("MCTUNE") : "build/mctune";
    int sanitized = getenv("MCTUNE_SANITIZED") != NULL;
    const char *san = sanitized ? "-fsanitize=address,undefined -fno-omit-frame-pointer" : "";
    const char *blas = "$(pkg-config --cflags --libs openblas 2>/dev/null || echo -lopenblas)";

    snprintf(root, sizeof root, "%s", __FILE__);
    char *slash = strrchr(root, '/');
    if (slash && slash != root)
        *slash = 0;
    if (!strcmp(root, "tests") || !strchr(root, '/'))
        snprintf(root, sizeof root, ".");
    else if ((slash = strrchr(root, '/')))
        *slash = 0;
    char *abs = realpath(root, NULL);
    if (abs) {
        snprintf(root, sizeof root, "%s", abs);
        free(abs);
    }
    snprintf(dir, sizeof dir, "/tmp/mct-test-block-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        CHECK(0);
        return check_done();
    }

    /* openblas and generic */
    int rc = check_sh(out, sizeof out, "cc -std=c11 -D_GNU_SOURCE -O1 -g -fopenmp %s -I%s -o "
                "%s/block %s/models/llama_block.c %s/models/llama_block_main.c %s/runtime/quant.c "
                "%s/runtime/err.c %s -lm 2>&1", san, root, dir, root, root, root, root, blas);
    CHECKF(rc == 0, "block build: %.3000s", out);
    rc = check_sh(out, sizeof out, "%s/block --check --small 2>&1", dir);
    CHECKF(rc == 0 && strstr(out, "check: all backends agree") &&
           count(out, " openblas max |diff| ") == 4 && count(out, " generic  max |diff| ") == 4
           && count(out, ": ok\n") == 8, "block --check: %.3000s", out);
    /* the check can fail: a tolerance no f32 reordering meets flags the generic backend */
    rc = check_sh(out, sizeof out, "%s/block --check --small --m 16 --tol 1e-12 2>&1", dir);
    CHECKF(rc == 1 && strstr(out, "generic  max") && strstr(out, "MISMATCH") &&
           strstr(out, "check: FAILED"), "block --check --tol 1e-12: %.3000s", out);
    /* bench runs and prints a row per M and thread count */
    rc = check_sh(out, sizeof out, "%s/block --bench --small --m 1,64 --threads 1 --min-time 0.01 2>&1",
            dir);
    CHECKF(rc == 0 && strstr(out, "decode       1       1 |") &&
           strstr(out, "prefill     64       1 |") && strstr(out, "openblas/generic"),
           "block --bench: %.3000s", out);
    /* a minimum time that is not a number of seconds is refused, naming it, before any work */
    rc = check_sh(out, sizeof out, "%s/block --bench --small --m 1 --threads 1 --min-time 2s 2>&1",
            dir);
    CHECKF(rc == 2 && strstr(out, "--min-time '2s' is not a number of seconds") &&
           !strstr(out, "decode "), "block --min-time 2s: %.2000s", out);
    /* so is a tolerance, a cache length or a seed that is not one (each named, nothing run) */
    static const char *const badnum[][2] = {
        {"--tol 0", "--tol '0'"},       {"--tol abc", "--tol 'abc'"},
        {"--tol 1e-3x", "--tol '1e-3x'"}, {"--seq 0", "--seq '0'"},
        {"--seq 12k", "--seq '12k'"},   {"--seq -5", "--seq '-5'"},
        {"--seed -1", "--seed '-1'"},   {"--seed 7q", "--seed '7q'"},
    };
    for (size_t t = 0; t < sizeof badnum / sizeof badnum[0]; t++) {
        rc = check_sh(out, sizeof out, "%s/block --check --small --m 1 %s 2>&1", dir, badnum[t][0]);
        CHECKF(rc == 2 && strstr(out, badnum[t][1]) && strstr(out, "e.g.") &&
               !strstr(out, "max |diff|"), "block %s: rc %d %.2000s", badnum[t][0], rc, out);
    }

    /* weight formats: every backend agrees on the dequantized weights, and the error against
     * the f32-weight block (same seed) is within quant_bounds, growing bf16 < i8 < q4 */
    static const char *const fmts[] = {"f32", "bf16", "i8", "q4g32", "q4g128"};
    double worst[5];
    int lines;
    rc = check_sh(out, sizeof out, "%s/block --check --small --m 1,16 --weights "
                  "f32,bf16,i8,q4g32,q4g128 2>&1", dir);
    quant_errors(out, fmts, 5, worst, &lines);
    CHECKF(rc == 0 && strstr(out, "check: all backends agree") && count(out, ": ok\n") == 20 &&
           lines == 10 && count(out, "== weights ") == 5 && !strstr(out, "per call"),
           "block --check --weights: %.6000s", out);
    CHECKF(worst[0] == 0, "f32 weights differ from the f32-weight block: %g", worst[0]);
    for (int i = 1; i < 5; i++) {
        double lo, hi;
        quant_bounds(fmts[i], &lo, &hi);
        CHECKF(worst[i] >= lo && worst[i] <= hi, "w=%s: rms relative error %g outside [%g, %g]",
               fmts[i], worst[i], lo, hi);
    }
    CHECKF(worst[1] < worst[2] && worst[2] < worst[3], "errors not ordered bf16 %g < i8 %g < "
           "q4g32 %g", worst[1], worst[2], worst[3]);
    /* the quantized weights are what the block's shapes name, with their sizes */
    rc = check_sh(out, sizeof out, "%s/block --shapes --small --m 4 --weights q4g32 2>&1", dir);
    CHECKF(rc == 0 && count(out, "matmul f32 nt M=4 ") == 5 && count(out, " w=q4g32\n") == 5 &&
           strstr(out, "bmm f32 nt B=8 G=4 M=4 N=64 K=32 epi=none\n"), "--shapes: %.2000s", out);
    /* formats the block cannot take say why */
    rc = check_sh(out, sizeof out, "%s/block --check --small --weights q4g256 2>&1", dir);
    CHECKF(rc == 1 && strstr(out, "q4g256 does not fit the block's weight N=256 K=896"),
           "q4g256: %.2000s", out);
    rc = check_sh(out, sizeof out, "%s/block --check --small --weights f32,int4 2>&1", dir);
    CHECKF(rc == 1 && strstr(out, "'int4'"), "int4: %.2000s", out);
    /* bench per format: the side-by-side table with the ratio to f32 on each backend */
    rc = check_sh(out, sizeof out, "%s/block --bench --small --m 1 --threads 1 --min-time 0.01 "
                  "--weights f32,i8 2>&1", dir);
    CHECKF(rc == 0 && strstr(out, "weight formats side by side") &&
           strstr(out, "decode       1       1 openblas  |") &&
           strstr(out, "decode       1       1 generic   |") && count(out, "(x f32)") == 2 &&
           count(out, "x)\n") == 2 && strstr(out, "== weights i8"),
           "block --bench --weights: %.4000s", out);

    /* gen: a library from a database where the block's q/o projection (M=16, f32 and i8
     * weights) and its scores bmm are tuned, every other shape on the generated generic
     * kernels (for q4g32: the path that dequantizes blocks of channels) */
    if (access(mctune, X_OK)) {
        fprintf(stderr, "test_block: %s is not an executable; build it (make) or set MCTUNE\n",
                mctune);
        CHECK(0);
    } else {
        rc = check_sh(out, sizeof out, "%s tune --db %s/db --workload 'matmul f32 nt M=16 N=256 K=256 "
                "epi=none' --budget 3 --min-time 0.01 2>&1 && %s tune --db %s/db --workload "
                "'bmm f32 nt B=8 G=4 M=16 N=64 K=32 epi=none' --budget 2 --min-time 0.01 2>&1 && "
                "%s tune --db %s/db --workload 'matmul f32 nt M=16 N=256 K=256 epi=none w=i8' "
                "--budget 2 --min-time 0.01 2>&1", mctune, dir, mctune, dir, mctune, dir);
        CHECKF(rc == 0 && count(out, "done: 1 tuned") == 3, "tune: %.3000s", out);
        rc = check_sh(out, sizeof out, "%s gen --db %s/db --out %s/gen --name tblk --cpus host 2>&1",
                mctune, dir, dir);
        CHECKF(rc == 0, "gen: %.3000s", out);
        rc = check_sh(out, sizeof out, "cd %s/gen && cc -std=c11 -O1 -g -fopenmp %s -c tblk.c 2>&1 && "
                "cc -std=c11 -D_GNU_SOURCE -O1 -g -fopenmp %s -I%s -I. -DMCT_BLOCK_GEN=tblk "
                "-DMCT_BLOCK_GEN_H='\"tblk.h\"' -o %s/block-gen %s/models/llama_block.c "
                "%s/models/llama_block_main.c %s/runtime/quant.c %s/runtime/err.c tblk.o %s -lm "
                "2>&1", dir, san, san, root, dir, root, root, root, root, blas);
        CHECKF(rc == 0, "block-gen build: %.3000s", out);
        rc = check_sh(out, sizeof out, "TBLK_DEBUG=1 %s/block-gen --check --small 2>&1", dir);
        CHECKF(rc == 0 && strstr(out, "check: all backends agree") &&
               count(out, " gen      max |diff| ") == 4 &&
               count(out, " gen-sgemm max |diff| ") == 4 && count(out, ": ok\n") == 16 &&
               strstr(out, "backend gen      generated library tblk, table "),
               "block-gen --check: %.4000s", out);
        /* the tuned kernels ran (the debug log names each distinct call's kernel once) */
        CHECKF(strstr(out, "k_matmul_f32_") && strstr(out, "k_bmm_f32_"),
               "no tuned kernel named in the gen debug log: %.4000s", out);
        /* quantized: gen packs the plain layout and runs the i8 kernel tuned above (q4g32 has
         * none: the dequantizing path), against openblas on the same dequantized weights */
        rc = check_sh(out, sizeof out, "TBLK_DEBUG=1 %s/block-gen --check --small --m 1,16 "
                      "--weights i8,q4g32 2>&1", dir);
        CHECKF(rc == 0 && strstr(out, "check: all backends agree") &&
               count(out, "w=i8 gen      max |diff| ") == 2 &&
               count(out, "w=q4g32 gen      max |diff| ") == 2 && count(out, ": ok\n") == 16 &&
               strstr(out, "k_matmul_i8_"), "block-gen --check --weights: %.6000s", out);
        /* gen's quantized runs: the block reported, each call checked against its bound (7
         * projections and 2 bmm per forward), the other backends on the block as before */
        CHECKF(count(out, "gen      max |diff| ") == 4 &&
               count(out, ": report (checked per call)\n") == 4 &&
               count(out, " gen      per call: 9 checked (7 projections against their rounding "
                     "bounds, 2 bmm against --tol), worst ") == 4 &&
               !strstr(out, "gen-sgemm per call") && !strstr(out, "out of bound"),
               "block-gen --check --weights, per call: %.6000s", out);
    }
    check_sh(NULL, 0, "rm -rf %s", dir);
    return check_done();
}
