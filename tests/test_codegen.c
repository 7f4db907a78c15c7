/* codegen tests: workload keys, schedule text and legality, and the property test: random
 * (workload, legal schedule) pairs lowered to C, compiled by the system compiler, run on random
 * strided data and compared with OpenBLAS plus the epilogue reference. */
#include "codegen/codegen.h"
#include "tests/check.h"
#include "tuner/oracle.h"

#include <dlfcn.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

typedef int (*kern_fn)(long, long, long, const float *, long, const float *, long, float *, long,
                       const float *, long, long, long, long, long);
typedef size_t (*psize_fn)(long, long);
typedef void (*pack_fn)(long, long, const float *, long, float *);

static void test_workloads(void)
{
    mct_workload w;
    char err[256], buf[256];
    const char *good[] = {
        "matmul f32 nt M=128 N=4096 K=4096 epi=none",
        "matmul f32 nn M=1 N=7 K=3 epi=bias+gelu beta=1",
        "matmul f32 nt M=16 N=14336 K=4096 epi=silu",
        "bmm f32 nt B=32 G=4 M=128 N=512 K=128 epi=none",
        "bmm f32 nn B=8 G=1 M=1 N=128 K=2048 epi=none",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        int r = mct_wl_parse(good[i], &w, err, sizeof err);
        CHECKF(r == 0, "%s: %s", good[i], err);
        mct_wl_format(&w, buf, sizeof buf);
        CHECKF(!strcmp(buf, good[i]), "round trip '%s' -> '%s'", good[i], buf);
    }
    /* fields in another order parse to the same canonical key */
    CHECK(mct_wl_parse("matmul f32 nt K=64 epi=relu N=32 M=2", &w, err, sizeof err) == 0);
    mct_wl_format(&w, buf, sizeof buf);
    CHECK(!strcmp(buf, "matmul f32 nt M=2 N=32 K=64 epi=relu"));
    uint8_t h1[16], h2[16];
    mct_wl_hash(&w, h1);
    w.M = 3;
    mct_wl_hash(&w, h2);
    CHECK(memcmp(h1, h2, 16) != 0);
    struct { const char *text, *needle; int code; } bad[] = {
        {"matmul f32 nt M=0 N=4 K=4 epi=none", "M=0", MCT_ERANGE},
        {"matmul f32 nt M=-3 N=4 K=4 epi=none", "M=-3", MCT_ERANGE},
        {"matmul f32 nt M=4 N=4 epi=none", "K", MCT_EINVAL},
        {"conv f32 nt M=4 N=4 K=4", "op 'conv'", MCT_EINVAL},
        {"matmul f32 nt M=4 N=4 K=4 epi=tanh", "epi=tanh", MCT_EINVAL},
        {"matmul f16 nt M=4 N=4 K=4", "dtype 'f16'", MCT_EINVAL},
        {"matmul f32 tt M=4 N=4 K=4", "layout 'tt'", MCT_EINVAL},
        {"matmul f32 nt M=16777216 N=16777216 K=16777216", "product", MCT_ERANGE},
        {"matmul f32 nt M=99999999999999999999 N=4 K=4", "M=", MCT_ERANGE},
        {"matmul f32 nt M=4x N=4 K=4", "M=4x", MCT_EINVAL},
        {"bmm f32 nt B=6 G=4 M=4 N=4 K=4", "G=4", MCT_ERANGE},
        {"matmul f32 nt M=4 N=4 K=4 M=5", "twice", MCT_EINVAL},
        {"matmul f32 nt M=4 N=4 K=4 foo=1", "foo", MCT_EINVAL},
        {"", "expected", MCT_EINVAL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = 0;
        int r = mct_wl_parse(bad[i].text, &w, err, sizeof err);
        CHECKF(r == bad[i].code && strstr(err, bad[i].needle), "'%s' -> %d '%s'", bad[i].text, r,
               err);
    }
}

static void test_schedules(void)
{
    mct_workload w;
    char err[256], a[4096], b[4096];
    mct_wl_parse("matmul f32 nt M=128 N=4096 K=4096 epi=none", &w, err, sizeof err);
    mct_sched *s, *s2;
    const char *txt = "tile(i, 128, 8); tile(j, 512, 32); tile(k, 256); "
                      "reorder(j0, k0, i0, j1, i1, k1, i2, j2); prepack(B, j2); pack(A, i0, i2); "
                      "cache_write(i1); unroll(i2, 8); vectorize(j2); unroll(k1, 4)";
    CHECKF(mct_sched_parse(&w, txt, &s, err, sizeof err) == 0, "%s", err);
    mct_sched_format(s, a, sizeof a);
    CHECK(mct_sched_parse(&w, a, &s2, err, sizeof err) == 0);
    mct_sched_format(s2, b, sizeof b);
    CHECKF(!strcmp(a, b), "round trip:\n%s\n%s", a, b);
    uint8_t h1[16], h2[16];
    mct_sched_hash(s, h1);
    mct_sched_hash(s2, h2);
    CHECK(!memcmp(h1, h2, 16));
    CHECK(mct_sched_prepacked(s) == 1);
    mct_sched_destroy(s2);
    /* the same program reached by another sequence prints the same */
    CHECK(mct_sched_parse(&w, "tile(j, 512, 32); tile(i, 128, 8); tile(k, 256); "
                              "reorder(j0, k0, i0, j1, i1, k1, i2, j2); vectorize(j2); unroll(k1, 4);"
                              "unroll(i2, 8); cache_write(i1); pack(A, i0, i2); prepack(B, j2)",
                          &s2, err, sizeof err) == 0);
    mct_sched_format(s2, b, sizeof b);
    CHECKF(!strcmp(a, b), "normal form:\n%s\n%s", a, b);
    mct_sched_destroy(s2);
    mct_sched_destroy(s);
    /* the untuned nest prints empty */
    CHECK(mct_sched_create(&w, &s) == 0);
    CHECK(mct_sched_format(s, a, sizeof a) == 0);
    /* refusals with reasons; a refused sequence leaves the schedule unchanged */
    struct { const char *text, *needle; int code; } bad[] = {
        {"tile(j, 32); vectorize(j0)", "not the innermost", MCT_ENOTAPPLIC},
        {"tile(j, 32); reorder(i, k, j0, j1); vectorize(j1)", "j is strided in B", MCT_ENOTAPPLIC},
        {"vectorize(i)", "not the innermost", MCT_ENOTAPPLIC},
        {"tile(k, 16); vectorize(k1)", "needs cache_write", MCT_ENOTAPPLIC},
        {"parallel(k)", "reduction", MCT_ENOTAPPLIC},
        {"tile(i, 8); reorder(i1, i0)", "i0 must stay outside i1", MCT_ENOTAPPLIC},
        {"cache_write(i)", "no constant extent", MCT_ENOTAPPLIC},
        {"tile(i, 64, 128)", "decrease", MCT_ENOTAPPLIC},
        {"unroll(q, 4)", "no loop named", MCT_ENOTAPPLIC},
        {"spin(i)", "not a transformation", MCT_EINVAL},
        {"tile(i, 8", "expected", MCT_EINVAL},
        {"fuse_epilogue(i)", "cache_write", MCT_ENOTAPPLIC},
        {"tile(i, 0)", "out of range", MCT_ENOTAPPLIC},
        {"tile(i, 64); tile(i, 32, 4)", "re-tile", MCT_ENOTAPPLIC},
        {"tile(i, 4); tile(j, 4); parallel(i0); parallel(j0); reorder(i0, j0, i1, j1)",
         "", 0}, /* parallel moves: legal */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mct_sched *c;
        mct_sched_clone(s, &c);
        err[0] = 0;
        int r = mct_sched_apply(c, bad[i].text, err, sizeof err);
        CHECKF(r == bad[i].code && strstr(err, bad[i].needle), "'%s' -> %d '%s'", bad[i].text,
               r, err);
        if (r) {
            mct_sched_format(c, a, sizeof a);
            CHECKF(a[0] == 0, "refused '%s' left '%s'", bad[i].text, a);
        }
        mct_sched_destroy(c);
    }
    mct_sched_destroy(s);
    /* beta=1 with gelu cannot fuse when k is split outside the tile */
    mct_wl_parse("matmul f32 nn M=8 N=64 K=64 epi=gelu beta=1", &w, err, sizeof err);
    CHECK(mct_sched_parse(&w, "tile(i, 4); tile(j, 16); tile(k, 16); "
                              "reorder(k0, i0, j0, k1, i1, j1); cache_write(j0); fuse_epilogue(j0)",
                          &s, err, sizeof err) == MCT_ENOTAPPLIC && strstr(err, "beta=1"));
    /* canonical text of random schedules round-trips byte for byte */
    uint64_t rng = 42;
    int rt_ok = 1;
    for (int i = 0; i < 300; i++) {
        mct_wl_parse(i % 3 ? "matmul f32 nt M=37 N=100 K=77 epi=bias+relu"
                           : "bmm f32 nn B=4 G=2 M=5 N=33 K=17 epi=none",
                     &w, err, sizeof err);
        if (mct_sched_random(&w, &rng, 16, &s))
            continue;
        mct_sched_format(s, a, sizeof a);
        if (mct_sched_parse(&w, a, &s2, err, sizeof err)) {
            fprintf(stderr, "random schedule does not reparse: %s: %s\n", a, err);
            rt_ok = 0;
        } else {
            mct_sched_format(s2, b, sizeof b);
            if (strcmp(a, b))
                rt_ok = 0, fprintf(stderr, "round trip differs:\n%s\n%s\n", a, b);
            char what[160];
            for (int m = 0; m < 4; m++)
                if (mct_sched_mutate(s2, &rng, 16, what, sizeof what) == 0) {
                    mct_sched_format(s2, b, sizeof b);
                    mct_sched *s3;
                    if (mct_sched_parse(&w, b, &s3, err, sizeof err))
                        rt_ok = 0, fprintf(stderr, "mutant does not reparse: %s: %s\n", b, err);
                    else
                        mct_sched_destroy(s3);
                }
            mct_sched_destroy(s2);
        }
        mct_sched_destroy(s);
    }
    CHECK(rt_ok);
}

/* ---- the property test ------------------------------------------------------------------- */

typedef struct {
    mct_workload w;
    mct_sched *s;
    mct_target t;
    char fn[32];
    int threads;
} pcase;

static const long dimset[] = {1, 2, 3, 5, 7, 8, 13, 16, 17, 31, 32, 33, 47, 48, 64, 65, 97, 128};

static long rdim(uint64_t *r)
{
    *r = *r * 6364136223846793005ULL + 1442695040888963407ULL;
    return dimset[(*r >> 33) % (sizeof dimset / sizeof dimset[0])];
}

static uint32_t rbits(uint64_t *r)
{
    *r = *r * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(*r >> 32);
}

static float rf(uint64_t *r)
{
    return (float)((int)(rbits(r) % 2001) - 1000) / 1000.0f;
}

static int compile_batch(pcase *cs, int n, const char *dir, int batch_no, void **handle)
{
    char src[512], so[512], cmd[2048];
    snprintf(src, sizeof src, "%s/batch%d.c", dir, batch_no);
    snprintf(so, sizeof so, "%s/batch%d.so", dir, batch_no);
    FILE *f = fopen(src, "w");
    if (!f)
        return -1;
    for (int i = 0; i < n; i++) {
        char *c;
        if (mct_cg_lower_c(cs[i].s, &cs[i].t, cs[i].fn, &c)) {
            fclose(f);
            return -1;
        }
        fputs(c, f);
        free(c);
    }
    fclose(f);
    const char *cc = getenv("CC") ? getenv("CC") : "cc";
    /* no -march: each kernel carries its ISA (the target pragma and attributes), as in the
     * measurement harness and the generated library */
    snprintf(cmd, sizeof cmd,
             "%s -std=c11 -O2 -fopenmp -fPIC -shared -Wall -Wextra -Werror "
             "-Wno-unused-function -o %s %s 2>%s/batch%d.err", cc, so, src, dir, batch_no);
    if (system(cmd) != 0) {
        fprintf(stderr, "compile failed: %s (see %s/batch%d.err)\n", src, dir, batch_no);
        snprintf(cmd, sizeof cmd, "head -20 %s/batch%d.err >&2", dir, batch_no);
        if (system(cmd)) {}
        return -1;
    }
    *handle = dlopen(so, RTLD_NOW | RTLD_LOCAL);
    if (!*handle) {
        fprintf(stderr, "dlopen %s: %s\n", so, dlerror());
        return -1;
    }
    return 0;
}

/* Runs one case on fresh random strided data with guard zones around C. */
static int run_case(pcase *pc, void *h, uint64_t *r, char *msg, size_t ml)
{
    const mct_workload *w = &pc->w;
    long M = w->M, N = w->N, K = w->K, batch = w->batch, group = w->group;
    long kvh = batch / group;
    long lda = K + (long)(rbits(r) % 4), ldc = N + (long)(rbits(r) % 4);
    long ldb = (w->layout == MCT_NN ? N : K) + (long)(rbits(r) % 4);
    long brows = w->layout == MCT_NN ? K : N;
    long sA = M * lda + (long)(rbits(r) % 8), sB = brows * ldb + (long)(rbits(r) % 8);
    long sC = M * ldc + (long)(rbits(r) % 8);
    long off = (long)(rbits(r) % 5), guard = 64;
    size_t na = (size_t)(batch * sA + off), nb = (size_t)(kvh * sB + off);
    size_t nc = (size_t)(batch * sC + off + 2 * guard);
    float *A = malloc(na * 4), *B = malloc(nb * 4), *C = malloc(nc * 4), *R = malloc(nc * 4);
    float *bias = malloc((size_t)N * 4);
    int ok = 0;
    if (!A || !B || !C || !R || !bias)
        goto out;
    for (size_t i = 0; i < na; i++) A[i] = rf(r);
    for (size_t i = 0; i < nb; i++) B[i] = rf(r);
    for (size_t i = 0; i < nc; i++) C[i] = R[i] = rf(r);
    for (long j = 0; j < N; j++) bias[j] = rf(r);
    float *Cp = C + guard + off, *Rp = R + guard + off;
    kern_fn k = (kern_fn)dlsym(h, pc->fn);
    if (!k) {
        snprintf(msg, ml, "symbol %s missing", pc->fn);
        goto out;
    }
    const float *Bk = B + off;
    float *packed = NULL;
    if (mct_sched_prepacked(pc->s)) {
        char nm[64];
        snprintf(nm, sizeof nm, "%s_packed_size", pc->fn);
        psize_fn ps = (psize_fn)dlsym(h, nm);
        snprintf(nm, sizeof nm, "%s_pack_b", pc->fn);
        pack_fn pk = (pack_fn)dlsym(h, nm);
        if (!ps || !pk) {
            snprintf(msg, ml, "prepack symbols missing");
            goto out;
        }
        packed = malloc(ps(N, K) * 4 + 4);
        pk(N, K, B + off, ldb, packed);
        Bk = packed;
    }
    int rc = k(M, N, K, A + off, lda, Bk, ldb, Cp, ldc, w->bias ? bias : NULL, batch, group,
               w->op == MCT_OP_BMM ? sA : 0, w->op == MCT_OP_BMM ? sB : 0,
               w->op == MCT_OP_BMM ? sC : 0);
    free(packed);
    mct_oracle_run(w, M, N, K, A + off, lda, B + off, ldb, Rp, ldc, bias, batch, group, sA, sB,
                   sC);
    if (rc) {
        snprintf(msg, ml, "kernel returned %d", rc);
        goto out;
    }
    /* everything outside the M x N windows must be untouched */
    for (size_t i = 0; i < nc; i++) {
        long p = (long)i - guard - off;
        int inside = 0;
        if (p >= 0 && p < batch * sC) {
            long bq = p / sC, rem = p % sC, ii = rem / ldc, jj = rem % ldc;
            inside = bq < batch && ii < M && jj < N;
        }
        if (!inside && memcmp(&C[i], &R[i], 4)) {
            snprintf(msg, ml, "wrote outside C at element %ld", p);
            goto out;
        }
    }
    double e = mct_oracle_relerr(M, N, K, Cp, Rp, ldc, batch, sC);
    if (!(e <= mct_oracle_tolerance(K))) {
        snprintf(msg, ml, "relative error %.3g > %.3g", e, mct_oracle_tolerance(K));
        goto out;
    }
    ok = 1;
out:
    free(A);
    free(B);
    free(C);
    free(R);
    free(bias);
    return ok;
}

static void test_property(void)
{
    const char *seed_env = getenv("MCTUNE_TEST_SEED");
    uint64_t seed = seed_env ? strtoull(seed_env, NULL, 10) : 20261126;
    int ncases = getenv("MCTUNE_SANITIZED") ? 320 : 320;
    const int per_batch = 40;
    char dir[] = "/tmp/mct_codegen_XXXXXX";
    if (!mkdtemp(dir)) {
        CHECK(0);
        return;
    }
    uint64_t r = seed;
    int failures = 0, run = 0, fast = 0;
    static const char *epis[] = {"none", "bias", "relu", "gelu", "silu", "bias+gelu",
                                 "bias+silu", "bias+relu"};
    /* the tier this process may use: the host's, or MCTUNE_TIER (make test runs this test
     * again with the tier forced down, so code that silently needs AVX-512 fails anywhere) */
    mct_target host = mct_target_host();
    for (int b0 = 0; b0 < ncases; b0 += per_batch) {
        pcase cs[64];
        int n = 0;
        for (int i = 0; i < per_batch && b0 + i < ncases; i++) {
            pcase *pc = &cs[n];
            char text[256], err[256];
            int bmm = rbits(&r) % 4 == 0;
            long M = rdim(&r), N = rdim(&r), K = rdim(&r);
            const char *lay = rbits(&r) % 2 ? "nt" : "nn";
            const char *epi = epis[rbits(&r) % 8];
            int beta = rbits(&r) % 4 == 0;
            if (bmm) {
                long G = 1 + rbits(&r) % 3, B = G * (1 + rbits(&r) % 2);
                snprintf(text, sizeof text, "bmm f32 %s B=%ld G=%ld M=%ld N=%ld K=%ld epi=%s%s",
                         lay, B, G, M, N, K, epi, beta ? " beta=1" : "");
            } else
                snprintf(text, sizeof text, "matmul f32 %s M=%ld N=%ld K=%ld epi=%s%s", lay, M, N,
                         K, epi, beta ? " beta=1" : "");
            if (mct_wl_parse(text, &pc->w, err, sizeof err)) {
                fprintf(stderr, "bad generated workload %s: %s\n", text, err);
                failures++;
                continue;
            }
            /* vector widths: the host's, and narrower ones so every lowering path is built */
            int vl = (int[]){16, 8, 4, 1}[rbits(&r) % 4];
            if (vl > host.vlen)
                vl = host.vlen;
            pc->t = host;
            for (int isa = 0; isa < MCT_ISA_COUNT && vl != host.vlen; isa++)
                if (mct_isa_get(isa)->vlen == vl)
                    pc->t = mct_target_of_isa(isa);
            if (mct_sched_random(&pc->w, &r, vl, &pc->s)) {
                failures++;
                continue;
            }
            snprintf(pc->fn, sizeof pc->fn, "pk%d", b0 + i);
            n++;
        }
        void *h = NULL;
        if (compile_batch(cs, n, dir, b0 / per_batch, &h)) {
            failures += n;
            for (int i = 0; i < n; i++) {
                char a[4096], wl[256];
                mct_wl_format(&cs[i].w, wl, sizeof wl);
                mct_sched_format(cs[i].s, a, sizeof a);
                fprintf(stderr, "  in batch: %s | %s\n", wl, a);
                mct_sched_destroy(cs[i].s);
            }
            continue;
        }
        for (int i = 0; i < n; i++) {
            char msg[256] = "", wl[256], a[4096];
            char *p = NULL;
            mct_cg_lower_pseudo(cs[i].s, &cs[i].t, &p);
            if (p && strstr(p, "# cache_write: register tile"))
                fast++;
            free(p);
            run++;
            if (getenv("MCTUNE_TEST_VERBOSE")) {
                mct_wl_format(&cs[i].w, wl, sizeof wl);
                mct_sched_format(cs[i].s, a, sizeof a);
                fprintf(stderr, "case %s: %s | %s | vlen %d\n", cs[i].fn, wl, a, cs[i].t.vlen);
            }
            if (!run_case(&cs[i], h, &r, msg, sizeof msg)) {
                failures++;
                mct_wl_format(&cs[i].w, wl, sizeof wl);
                mct_sched_format(cs[i].s, a, sizeof a);
                fprintf(stderr, "property case %s failed (seed %llu): %s\n  workload: %s\n"
                        "  schedule: %s\n  vlen: %d\n", cs[i].fn, (unsigned long long)seed, msg,
                        wl, a, cs[i].t.vlen);
            }
            mct_sched_destroy(cs[i].s);
        }
        (void)h; /* not dlclosed: OpenMP worker threads may still reference it */
    }
    printf("property test: %d cases run, %d with a register tile, %d failed (seed %llu; "
           "MCTUNE_TEST_SEED=N reruns another)\n", run, fast, failures, (unsigned long long)seed);
    CHECKF(failures == 0, "%d property cases failed with seed %llu", failures,
           (unsigned long long)seed);
    CHECK(run >= 300);
    CHECK(fast >= 60); /* the register-tile paths are exercised, not only the generic one */
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (failures == 0 && system(cmd)) {}
}

/* The command line: `mctune show` prints both lowerings; bad input exits non-zero with a message
 * naming the bad value. */

static int run_cli(const char *args, char *out, size_t len)
{
    const char *bin = getenv("MCTUNE") ? getenv("MCTUNE") : "build/mctune";
    return check_sh(out, len, "%s %s 2>&1", bin, args);
}

static void test_cli(void)
{
    static char out[1 << 16];
    const char *bin = getenv("MCTUNE") ? getenv("MCTUNE") : "build/mctune";
    if (access(bin, X_OK)) {
        printf("note: %s not built; command-line checks skipped\n", bin);
        return;
    }
    CHECK(run_cli("show 'matmul f32 nt M=16 N=64 K=64 epi=none' --schedule "
                  "'tile(j, 32); tile(k, 16); reorder(i, j0, k0, j1, k1); cache_write(j0); "
                  "unroll(j1, 32); vectorize(k1)'", out, sizeof out) == 0 &&
          strstr(out, "for j0 in") && strstr(out, "int mct_kernel("));
    CHECK(run_cli("show --help", out, sizeof out) == 0 && strstr(out, "usage: mctune show"));
    CHECK(run_cli("show", out, sizeof out) == 2 && strstr(out, "missing WORKLOAD"));
    CHECK(run_cli("show 'matmul f32 nt M=1 N=1 K=1' --bogus", out, sizeof out) == 2 &&
          strstr(out, "--bogus"));
    CHECK(run_cli("show 'matmul f32 nt M=1 N=1 K=1' --schedule", out, sizeof out) == 2 &&
          strstr(out, "needs a value"));
    CHECK(run_cli("show 'matmul f32 nt M=0 N=4 K=4'", out, sizeof out) == 1 &&
          strstr(out, "M=0"));
    CHECK(run_cli("show 'matmul f32 nt M=4 N=4 K=4' --schedule 'vectorize(i)'", out,
                  sizeof out) == 1 && strstr(out, "vectorize i"));
    CHECK(run_cli("frobnicate", out, sizeof out) == 2 && strstr(out, "unknown command"));
    CHECK(run_cli("--help", out, sizeof out) == 0 && strstr(out, "commands:"));
}

/* MCTUNE_TEST_CASE='WORKLOAD|SCHEDULE|VLEN' runs one case (for reproducing a failure). */
static int one_case(const char *spec)
{
    char buf[4096], err[256], dir[] = "/tmp/mct_case_XXXXXX";
    snprintf(buf, sizeof buf, "%s", spec);
    char *wl = strtok(buf, "|"), *sc = strtok(NULL, "|"), *vl = strtok(NULL, "|");
    pcase pc = {0};
    if (!wl || mct_wl_parse(wl, &pc.w, err, sizeof err)) {
        fprintf(stderr, "bad workload: %s\n", err);
        return 2;
    }
    if (mct_sched_parse(&pc.w, sc ? sc : "", &pc.s, err, sizeof err)) {
        fprintf(stderr, "bad schedule: %s\n", err);
        return 2;
    }
    pc.t = mct_target_host();
    if (vl && atoi(vl) != pc.t.vlen)
        pc.t.vlen = atoi(vl), pc.t.attr = atoi(vl) == 8 ? "avx2,fma" : "";
    snprintf(pc.fn, sizeof pc.fn, "one");
    void *h;
    if (!mkdtemp(dir) || compile_batch(&pc, 1, dir, 0, &h))
        return 1;
    fprintf(stderr, "source: %s/batch0.c\n", dir);
    uint64_t r = 1;
    char msg[256] = "";
    int ok = run_case(&pc, h, &r, msg, sizeof msg);
    fprintf(stderr, "%s %s\n", ok ? "ok" : "FAILED:", msg);
    return !ok;
}

int main(void)
{
    if (getenv("MCTUNE_TEST_CASE"))
        return one_case(getenv("MCTUNE_TEST_CASE"));
    test_workloads();
    test_schedules();
    test_cli();
    test_property();
    return check_done();
}
