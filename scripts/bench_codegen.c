/* Benchmark for the schedule compiler: expert schedules (scripts/expert-schedules.txt, written in
 * the transformation language) lowered by codegen, against OpenBLAS on the same data in the same
 * run, one thread, weights rotated through enough copies to come from memory. Prints a table.
 *   build/bench/bench_codegen [--file F] [--runs N] [--hot] [--only SUBSTRING] */
#define _GNU_SOURCE 1
#include "codegen/codegen.h"

#include <cblas.h>
#include <strings.h>
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef int (*kern_fn)(long, long, long, const float *, long, const float *, long, float *, long,
                       const float *, long, long, long, long, long);
typedef size_t (*psize_fn)(long, long);
typedef void (*pack_fn)(long, long, const float *, long, float *);

extern void openblas_set_num_threads(int);
extern char *openblas_get_corename(void);

/* OpenBLAS twice: as installed (its own core choice) and, loaded again in a separate link
 * namespace with OPENBLAS_CORETYPE set, with the best core it has for this CPU (0.3.21 does not
 * know every new CPU and may fall back to its generic SSE kernels). Targets are judged against
 * the faster of the two. */
typedef __typeof__(cblas_sgemm) *sgemm_t;
typedef __typeof__(cblas_sgemv) *sgemv_t;
typedef struct {
    char label[64];
    sgemm_t sgemm;
    sgemv_t sgemv;
} blas_t;

static int load_forced(blas_t *b)
{
    const char *core = getenv("MCT_BENCH_CORETYPE");
    __builtin_cpu_init();
    if (!core)
        core = __builtin_cpu_supports("avx512bf16") ? "Cooperlake"
               : __builtin_cpu_supports("avx512f")  ? "SkylakeX"
               : __builtin_cpu_supports("avx2")     ? "Haswell"
                                                    : NULL;
    if (!core || !strcasecmp(core, openblas_get_corename()))
        return 0;
    setenv("OPENBLAS_CORETYPE", core, 1);
    void *h = dlmopen(LM_ID_NEWLM, "libopenblas.so.0", RTLD_NOW | RTLD_LOCAL);
    unsetenv("OPENBLAS_CORETYPE");
    if (!h)
        return 0;
    void (*nt)(int) = (void (*)(int))dlsym(h, "openblas_set_num_threads");
    char *(*cn)(void) = (char *(*)(void))dlsym(h, "openblas_get_corename");
    b->sgemm = (sgemm_t)dlsym(h, "cblas_sgemm");
    b->sgemv = (sgemv_t)dlsym(h, "cblas_sgemv");
    if (!nt || !cn || !b->sgemm || !b->sgemv)
        return 0;
    nt(1);
    snprintf(b->label, sizeof b->label, "OpenBLAS %s (forced)", cn());
    return 1;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static int cmpd(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Peak fp32 FMA throughput of one core: 16 independent chains of fused multiply-adds. */
#include <immintrin.h>
__attribute__((target("avx512f,fma"))) static double peak_gflops(void)
{
    __m512 a[16], m = _mm512_set1_ps(0.9999999f), x = _mm512_set1_ps(1e-7f);
    for (int i = 0; i < 16; i++)
        a[i] = _mm512_set1_ps((float)i * 1e-7f);
    long iters = 20000000;
    double best = 0;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = now();
        for (long n = 0; n < iters; n++) {
#pragma GCC unroll 16
            for (int i = 0; i < 16; i++)
                a[i] = _mm512_fmadd_ps(a[i], m, x);
        }
        double t = now() - t0;
        double g = iters * 16.0 * 16 * 2 / t / 1e9;
        if (g > best)
            best = g;
    }
    float s = 0;
    for (int i = 0; i < 16; i++)
        s += _mm512_reduce_add_ps(a[i]);
    if (s == 12345.0f)
        printf("?");
    return best;
}

static void *build(const char *src, const char *tag)
{
    char dir[] = "/tmp/mct_bench_XXXXXX", path[256], so[256], cmd[1024];
    if (!mkdtemp(dir))
        return NULL;
    snprintf(path, sizeof path, "%s/%s.c", dir, tag);
    snprintf(so, sizeof so, "%s/%s.so", dir, tag);
    FILE *f = fopen(path, "w");
    if (!f)
        return NULL;
    fputs(src, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "cc -std=c11 -O3 -march=native -fopenmp -fPIC -shared -o %s %s",
             so, path);
    if (system(cmd))
        return NULL;
    return dlopen(so, RTLD_NOW);
}

int main(int argc, char **argv)
{
    const char *file = "scripts/expert-schedules.txt", *only = NULL;
    int runs = 7, hot = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--file") && i + 1 < argc)
            file = argv[++i];
        else if (!strcmp(argv[i], "--runs") && i + 1 < argc)
            runs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--only") && i + 1 < argc)
            only = argv[++i];
        else if (!strcmp(argv[i], "--hot"))
            hot = 1;
        else {
            fprintf(stderr, "usage: bench_codegen [--file F] [--runs N] [--hot] [--only S]\n");
            return 2;
        }
    }
    if (runs < 5)
        runs = 5;
    FILE *f = fopen(file, "r");
    if (!f) {
        fprintf(stderr, "bench_codegen: cannot open %s (run from the repository root)\n", file);
        return 1;
    }
    openblas_set_num_threads(1);
    setenv("OMP_NUM_THREADS", "1", 1);
    blas_t bl[2] = {{"", cblas_sgemm, cblas_sgemv}};
    snprintf(bl[0].label, sizeof bl[0].label, "OpenBLAS %s (as installed)",
             openblas_get_corename());
    int nbl = 1 + load_forced(&bl[1]);
    double peak = peak_gflops();
    mct_target t = mct_target_host();
    printf("schedule compiler vs OpenBLAS, 1 thread, fp32, %s, median of %d runs; peak FMA "
           "measured %.1f GFLOP/s\n", hot ? "hot caches" : "weights rotated from memory", runs,
           peak);
    for (int b = 0; b < nbl; b++)
        printf("baseline %c: %s\n", 'A' + b, bl[b].label);
    printf("| shape (nt, f32) | call | %sGF/s | mctune GF/s | %% of peak | ratio to best | "
           "target | met |\n|---|---|%s---|---|---|---|---|---|\n",
           nbl == 2 ? "OpenBLAS A GF/s | OpenBLAS B " : "OpenBLAS ", nbl == 2 ? "---|" : "");
    char line[4096];
    int nrow = 0, nmet = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || line[0] == '\n')
            continue;
        char *wl = strtok(line, "|"), *sc = strtok(NULL, "|"), *base = strtok(NULL, "|"),
             *tg = strtok(NULL, "|\n");
        if (!wl || !sc || !base || !tg)
            continue;
        if (only && !strstr(wl, only))
            continue;
        while (*base == ' ')
            base++;
        double target = atof(tg);
        mct_workload w;
        char err[512];
        if (mct_wl_parse(wl, &w, err, sizeof err)) {
            fprintf(stderr, "bad workload '%s': %s\n", wl, err);
            return 1;
        }
        mct_sched *s;
        if (mct_sched_parse(&w, sc, &s, err, sizeof err)) {
            fprintf(stderr, "bad schedule for %s: %s\n", wl, err);
            return 1;
        }
        char *src;
        mct_cg_lower_c(s, &t, "kern", &src);
        void *h = build(src, "kern");
        free(src);
        if (!h) {
            fprintf(stderr, "compile failed for %s\n", wl);
            return 1;
        }
        kern_fn k = (kern_fn)dlsym(h, "kern");
        long M = w.M, N = w.N, K = w.K;
        size_t bsz = (size_t)N * K;
        /* enough copies of B to exceed the caches (512 MiB of weights), at least 2 */
        int ncopy = hot ? 1 : (int)((512ull << 20) / (bsz * 4)) + 1;
        if (ncopy < 2 && !hot)
            ncopy = 2;
        float *A = malloc((size_t)M * K * 4), *C = malloc((size_t)M * N * 4);
        float *Cr = malloc((size_t)M * N * 4);
        float **Bs = calloc((size_t)ncopy, sizeof *Bs), **Bp = calloc((size_t)ncopy, sizeof *Bp);
        for (size_t i = 0; i < (size_t)M * K; i++)
            A[i] = (float)((i * 7919) % 1000) / 1000.0f - 0.5f;
        for (int c = 0; c < ncopy; c++) {
            Bs[c] = malloc(bsz * 4);
            for (size_t i = 0; i < bsz; i++)
                Bs[c][i] = (float)(((i + c) * 104729) % 1000) / 1000.0f - 0.5f;
        }
        if (mct_sched_prepacked(s)) {
            psize_fn ps = (psize_fn)dlsym(h, "kern_packed_size");
            pack_fn pk = (pack_fn)dlsym(h, "kern_pack_b");
            for (int c = 0; c < ncopy; c++) {
                Bp[c] = aligned_alloc(64, (ps(N, K) * 4 + 63) / 64 * 64);
                pk(N, K, Bs[c], K, Bp[c]);
            }
        }
        /* the libraries read the plain layout, the kernel its prepacked copy */
        float *Bref = Bs[0];
        double *tm = malloc(sizeof(double) * runs), *tb = malloc(sizeof(double) * runs);
        double *tl[2] = {malloc(sizeof(double) * runs), malloc(sizeof(double) * runs)};
        double *rt = malloc(sizeof(double) * runs);
        int sgemv = !strncmp(base, "sgemv", 5);
        int reps = 0;
        double flops = mct_wl_flops(&w);
        k(M, N, K, A, K, Bp[0] ? Bp[0] : Bs[0], K, C, N, NULL, 1, 1, 0, 0, 0); /* warm-up */
        /* runs interleave the kernel and each library, so drift on this shared machine hits
         * them alike; each run is >= 0.2 s of calls rotating through the B copies */
        for (int r = 0; r < runs; r++) {
            double t0 = now();
            int n = 0;
            do {
                int c = (reps + n) % ncopy;
                k(M, N, K, A, K, Bp[c] ? Bp[c] : Bs[c], K, C, N, NULL, 1, 1, 0, 0, 0);
                n++;
            } while (now() - t0 < 0.2 || n < 3);
            tm[r] = (now() - t0) / n;
            reps += n;
            double bestlib = 1e30;
            for (int q = 0; q < nbl; q++) {
                t0 = now();
                n = 0;
                do {
                    int c = (reps + n) % ncopy;
                    if (sgemv)
                        bl[q].sgemv(CblasRowMajor, CblasNoTrans, (int)N, (int)K, 1.0f, Bs[c],
                                    (int)K, A, 1, 0.0f, Cr, 1);
                    else
                        bl[q].sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, (int)N,
                                    (int)K, 1.0f, A, (int)K, Bs[c], (int)K, 0.0f, Cr, (int)N);
                    n++;
                } while (now() - t0 < 0.2 || n < 3);
                tl[q][r] = (now() - t0) / n;
                reps += n;
                if (tl[q][r] < bestlib)
                    bestlib = tl[q][r];
            }
            rt[r] = bestlib / tm[r];
        }
        double gbl[2] = {0, 0};
        for (int q = 0; q < nbl; q++) {
            memcpy(tb, tl[q], sizeof(double) * runs);
            qsort(tb, runs, sizeof *tb, cmpd);
            gbl[q] = flops / tb[runs / 2] / 1e9;
        }
        qsort(rt, runs, sizeof *rt, cmpd);
        /* correctness of the kernel's answer (same B copy 0 contents) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, (int)N, (int)K, 1.0f, A,
                    (int)K, Bref, (int)K, 0.0f, Cr, (int)N);
        k(M, N, K, A, K, Bp[0] ? Bp[0] : Bs[0], K, C, N, NULL, 1, 1, 0, 0, 0);
        double maxerr = 0;
        for (size_t i = 0; i < (size_t)M * N; i++) {
            double e = fabs(C[i] - Cr[i]) / (fabs(Cr[i]) + sqrt((double)K));
            if (e > maxerr)
                maxerr = e;
        }
        qsort(tm, runs, sizeof *tm, cmpd);
        double gm = flops / tm[runs / 2] / 1e9, gb = gbl[0] > gbl[1] ? gbl[0] : gbl[1];
        double ratio = rt[runs / 2]; /* median over runs of (best library time / kernel time) */
        int met = ratio >= target && maxerr < 1e-4;
        nrow++;
        nmet += met;
        char shape[64], libs[64];
        snprintf(shape, sizeof shape, "M=%ld N=%ld K=%ld", M, N, K);
        if (nbl == 2)
            snprintf(libs, sizeof libs, "%.1f | %.1f", gbl[0], gbl[1]);
        else
            snprintf(libs, sizeof libs, "%.1f", gbl[0]);
        printf("| %s | %s | %s | %.1f | %.0f%% | %.2fx | >= %.2fx | %s |\n", shape,
               sgemv ? "sgemv" : "sgemm", libs, gm, 100 * gm / peak, ratio, target,
               met ? "yes" : maxerr >= 1e-4 ? "WRONG" : "no");
        if (M == 1)
            printf("| (M=1: weights streamed at %.1f GB/s by the best library, %.1f GB/s by mctune) "
                   "|||||||%s\n", bsz * 4.0 * gb / flops, bsz * 4 / tm[runs / 2] / 1e9,
                   nbl == 2 ? "|" : "");
        fflush(stdout);
        for (int c = 0; c < ncopy; c++) {
            free(Bs[c]);
            free(Bp[c]);
        }
        free(Bs);
        free(Bp);
        free(A);
        free(C);
        free(Cr);
        free(tm);
        free(tb);
        free(tl[0]);
        free(tl[1]);
        free(rt);
        mct_sched_destroy(s);
    }
    fclose(f);
    printf("%d of %d rows met their target\n", nmet, nrow);
    return 0;
}
