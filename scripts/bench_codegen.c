/* Benchmark for the schedule compiler: expert schedules (scripts/expert-schedules.txt, written in
 * the transformation language) lowered by codegen for the tier this process uses (mct_cpu_tier():
 * the host's, or MCTUNE_TIER), against the baseline libraries of tuner/baseline.h (OpenBLAS with
 * its own core and with the best forced core for this CPU, oneDNN, BLIS; whichever are installed)
 * on the same data in the same run, one thread, weights rotated through enough copies to come from
 * memory. M=1 rows call each library's gemv. Targets are judged against the best library of the
 * row ("best of" column). The FMA peak is measured with the widest vector ISA of that tier.
 *   build/bench/bench_codegen [--file F] [--runs N] [--hot] [--only SUBSTRING] */
#define _GNU_SOURCE 1
#include "codegen/codegen.h"
#include "tuner/baseline.h"

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


/* OpenBLAS twice: as installed (its own core choice) and, loaded again in a separate link
 * namespace with OPENBLAS_CORETYPE set, with the best core it has for this CPU (0.3.21 does not
 * know every new CPU and may fall back to its generic SSE kernels). Targets are judged against
 * the faster of the two. */
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

#include "scripts/bench_peak.h"

/* The lowering target for a tier (the ISA table in runtime/cpu.h; MCTUNE_TIER may ask for less
 * than the host has). No -march: the kernel carries its ISA, compiled as `mctune gen` ships it. */
static mct_target target_of(mct_tier tier, const char **march)
{
    *march = "";
    return mct_target_of_tier(tier);
}

static void *build(const char *src, const char *tag, const char *march)
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
    snprintf(cmd, sizeof cmd, "cc -std=c11 -O2 %s -fopenmp -fPIC -shared -o %s %s", march,
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
    setenv("OMP_NUM_THREADS", "1", 1);
    mct_tier tier = mct_cpu_tier();
    const mct_cpu *cpu = mct_cpu_host();
    mct_base_lib *bl[MCT_BASE_COUNT];
    int nbl = 0;
    char note[MCT_BASE_COUNT][300];
    int nnote = 0;
    for (int k = 0; k < MCT_BASE_COUNT; k++) {
        char err[256];
        if (mct_base_open((mct_base_kind)k, cpu, tier, &bl[nbl], err, sizeof err) == 0) {
            mct_base_set_threads(bl[nbl], 1);
            nbl++;
        } else {
            snprintf(note[nnote++], sizeof note[0], "%s: %s",
                     mct_base_kind_name((mct_base_kind)k), err);
        }
    }
    if (!nbl || mct_base_kind_of(bl[0]) != MCT_BASE_OPENBLAS) {
        fprintf(stderr, "bench_codegen: OpenBLAS is needed as the reference: %s\n",
                nnote ? note[0] : "?");
        return 1;
    }
    const char *isa, *march;
    double peak = peak_gflops(tier, &isa);
    mct_target t = target_of(tier, &march);
    printf("schedule compiler vs libraries, 1 thread, fp32, %s, median of %d runs\n",
           hot ? "hot caches" : "weights rotated from memory", runs);
    printf("cpu: %s \"%s\" family %d model %d; tier %s%s; kernels %s, %d lanes (target \"%s\", "
           "-O2, no -march%s); peak %s measured %.1f GFLOP/s\n", cpu->vendor, cpu->brand,
           cpu->family, cpu->model, mct_tier_name(tier),
           tier < mct_cpu_tier_of(cpu) ? " (MCTUNE_TIER)" : "", mct_isa_get(t.isa)->tag, t.vlen,
           t.attr, march, isa, peak);
    for (int b = 0; b < nbl; b++)
        printf("baseline %c: %s\n", 'A' + b, mct_base_label(bl[b]));
    for (int i = 0; i < nnote; i++)
        printf("not compared: %s\n", note[i]);
    printf("| shape (nt, f32) | call |");
    for (int b = 0; b < nbl; b++)
        printf(" %c: %s GF/s |", 'A' + b, mct_base_short(bl[b]));
    printf(" best of | mctune GF/s | %% of peak | ratio to best | target | met |\n|---|---|");
    for (int b = 0; b < nbl; b++)
        printf("---|");
    printf("---|---|---|---|---|---|\n");
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
        void *h = build(src, "kern", march);
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
        double *tl[MCT_BASE_COUNT];
        for (int q = 0; q < nbl; q++)
            tl[q] = malloc(sizeof(double) * runs);
        double *rt = malloc(sizeof(double) * runs);
        /* M=1: every library's gemv, the call serving engines make there */
        int sgemv = !strncmp(base, "sgemv", 5) || M == 1;
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
                        mct_base_sgemv(bl[q], 1, N, K, Bs[c], K, A, 0.0f, Cr);
                    else
                        mct_base_sgemm(bl[q], 1, M, N, K, A, K, Bs[c], K, 0.0f, Cr, N);
                    n++;
                } while (now() - t0 < 0.2 || n < 3);
                tl[q][r] = (now() - t0) / n;
                reps += n;
                if (tl[q][r] < bestlib)
                    bestlib = tl[q][r];
            }
            rt[r] = bestlib / tm[r];
        }
        double gbl[MCT_BASE_COUNT] = {0};
        for (int q = 0; q < nbl; q++) {
            memcpy(tb, tl[q], sizeof(double) * runs);
            qsort(tb, runs, sizeof *tb, cmpd);
            gbl[q] = flops / tb[runs / 2] / 1e9;
        }
        qsort(rt, runs, sizeof *rt, cmpd);
        /* correctness of the kernel's answer (same B copy 0 contents) */
        mct_base_sgemm(bl[0], 1, M, N, K, A, K, Bref, K, 0.0f, Cr, N);
        k(M, N, K, A, K, Bp[0] ? Bp[0] : Bs[0], K, C, N, NULL, 1, 1, 0, 0, 0);
        double maxerr = 0;
        for (size_t i = 0; i < (size_t)M * N; i++) {
            double e = fabs(C[i] - Cr[i]) / (fabs(Cr[i]) + sqrt((double)K));
            if (e > maxerr)
                maxerr = e;
        }
        qsort(tm, runs, sizeof *tm, cmpd);
        double gm = flops / tm[runs / 2] / 1e9, gb = 0;
        int bi = 0;
        for (int q = 0; q < nbl; q++)
            if (gbl[q] > gb) {
                gb = gbl[q];
                bi = q;
            }
        double ratio = rt[runs / 2]; /* median over runs of (best library time / kernel time) */
        int met = ratio >= target && maxerr < 1e-4;
        nrow++;
        nmet += met;
        char shape[64], libs[256] = "";
        snprintf(shape, sizeof shape, "M=%ld N=%ld K=%ld", M, N, K);
        for (int q = 0; q < nbl; q++) {
            size_t l = strlen(libs);
            snprintf(libs + l, sizeof libs - l, "%s%.1f", q ? " | " : "", gbl[q]);
        }
        printf("| %s | %s | %s | %c: %s %.1f | %.1f | %.0f%% | %.2fx | >= %.2fx | %s |\n", shape,
               sgemv ? "gemv" : "gemm", libs, 'A' + bi, mct_base_short(bl[bi]), gb, gm,
               100 * gm / peak, ratio, target, met ? "yes" : maxerr >= 1e-4 ? "WRONG" : "no");
        if (M == 1)
            printf("| (M=1: weights streamed at %.1f GB/s by the best library, %.1f GB/s by "
                   "mctune) |\n", bsz * 4.0 * gb / flops, bsz * 4 / tm[runs / 2] / 1e9);
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
        for (int q = 0; q < nbl; q++)
            free(tl[q]);
        free(rt);
        mct_sched_destroy(s);
    }
    fclose(f);
    for (int q = 0; q < nbl; q++)
        mct_base_close(bl[q]);
    printf("%d of %d rows met their target (against the best library of each row)\n", nmet,
           nrow);
    return 0;
}
