/* The measurement harness: planted faults (each its own test, each followed by a good
 * candidate measured fine), the compile cache (hits compile nothing; two processes fill one
 * cache consistently), batches, prepacked and bmm kernels, the baseline, repeatability.
 * Candidates are hand-written C sources with the kernel ABI of codegen/codegen.h, plus one
 * schedule lowered by the codegen. Everything runs in a fresh mkdtemp cache folder, with small
 * shapes and short minimum times; no assertion is on absolute time. */
#include "tests/check.h"
#include "tuner/measure.h"
#include "tuner/oracle.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char cache[256];
static int sanitized;

/* A correct naive kernel for any workload (act: 0 none, 1 relu), with EXTRA appended at the
 * end of its body so that faults can be planted after a correct computation. It returns 0 as
 * the kernel ABI says (runtime/dispatch.h), unless EXTRA returns first. */
static char *kernel_src(const char *fn, int nt, int relu, int beta, const char *extra)
{
    static const char fmt[] =
        "#include <stdlib.h>\n"
        "int %s(long M, long N, long K, const float *A, long lda, const float *B, long ldb,\n"
        "        float *C, long ldc, const float *bias, long batch, long group, long sA,\n"
        "        long sB, long sC)\n"
        "{\n"
        "    for (long b = 0; b < batch; b++) {\n"
        "        const float *Ab = A + b * sA, *Bb = B + (b / group) * sB;\n"
        "        float *Cb = C + b * sC;\n"
        "        for (long i = 0; i < M; i++)\n"
        "            for (long j = 0; j < N; j++) {\n"
        "                float s = 0;\n"
        "                for (long k = 0; k < K; k++)\n"
        "                    s += Ab[i * lda + k] * (%d ? Bb[j * ldb + k] : Bb[k * ldb + j]);\n"
        "                if (bias) s += bias[j];\n"
        "                if (%d && s < 0) s = 0;\n"
        "                if (%d) Cb[i * ldc + j] += s; else Cb[i * ldc + j] = s;\n"
        "            }\n"
        "    }\n"
        "    %s\n"
        "    return 0;\n"
        "}\n";
    char *s = NULL;
    if (asprintf(&s, fmt, fn, nt, relu, beta, extra ? extra : "") < 0)
        return NULL;
    return s;
}

static void opts_fast(mct_meas_opts *o)
{
    mct_meas_opts_default(o);
    o->cache_dir = cache;
    o->min_time_s = 0.01;
    o->min_runs = 3;
    o->warmup_s = 0.001;
    o->timeout_s = sanitized ? 6 : 3;
    o->rotate_cap = 4 << 20;
}

/* A harness on the test cache with o (NULL: opts_fast's settings); NULL after a failed check. */
static mct_meas *harness(const mct_meas_opts *o)
{
    mct_meas_opts fast;
    if (!o) {
        opts_fast(&fast);
        o = &fast;
    }
    mct_meas *m = NULL;
    char err[512] = "";
    int rc = mct_meas_create(o, &m, err, sizeof err);
    CHECKF(rc == 0, "create: %s: %s", mct_strerror(rc), err);
    return m;
}

/* A harness that times each candidate once (the property tests check answers, not speed), two
 * compilers at a time; NULL after a failed check. */
static mct_meas *harness_once(void)
{
    mct_meas_opts o;
    opts_fast(&o);
    o.min_runs = 1;
    o.min_time_s = 0.001;
    o.jobs = 2;
    return harness(&o);
}

static mct_workload wl(const char *text)
{
    mct_workload w;
    memset(&w, 0, sizeof w);
    int rc = mct_wl_parse(text, &w, NULL, 0);
    CHECKF(rc == 0, "parse '%s': %d", text, rc);
    return w;
}

/* Measures one raw source; returns the record. */
static mct_meas_result measure_src(mct_meas *m, const mct_workload *w, const char *src,
                                   const char *fn, int prepacked)
{
    mct_meas_result r;
    mct_meas_cand c = {.source = src, .fn = fn, .prepacked = prepacked};
    memset(&r, 0, sizeof r);
    int rc = mct_meas_run(m, w, &c, &r);
    CHECKF(rc == 0, "mct_meas_run: %s (%s)", mct_strerror(rc), r.detail);
    return r;
}

static void check_good(mct_meas *m, const mct_workload *w, const char *after)
{
    char *src = kernel_src("good", w->layout == MCT_NT, w->act == MCT_ACT_RELU, w->beta, "");
    mct_meas_result r = measure_src(m, w, src, "good", 0);
    CHECKF(r.status == MCT_MEAS_OK, "good kernel after %s: %s: %s", after,
           mct_meas_status_name(r.status), r.detail);
    CHECK(r.median_s > 0 && r.min_s <= r.median_s && r.median_s <= r.max_s);
    CHECK(r.q1_s <= r.median_s && r.median_s <= r.q3_s);
    CHECK(r.runs >= 3);
    CHECK(r.gflops > 0);
    CHECK(r.relerr >= 0 && r.relerr <= mct_oracle_tolerance(w->K));
    free(src);
}

/* A planted fault: status and a word of the detail, then a good kernel measured fine. */
static void planted(const char *name, const char *wltext, const char *extra,
                    mct_meas_status want, const char *word)
{
    mct_meas *m = harness(NULL);
    if (!m)
        return;
    mct_workload w = wl(wltext);
    char *src = kernel_src("k", w.layout == MCT_NT, 0, w.beta, extra);
    mct_meas_result r = measure_src(m, &w, src, "k", 0);
    CHECKF(r.status == want, "%s: got %s (%s), want %s", name, mct_meas_status_name(r.status),
           r.detail, mct_meas_status_name(want));
    CHECKF(strstr(r.detail, word) != NULL, "%s: detail '%s' lacks '%s'", name, r.detail, word);
    CHECK(r.median_s == 0 && r.runs == 0); /* never timed */
    check_good(m, &w, name);
    free(src);
    mct_meas_destroy(m);
}

static void test_segfault(void)
{
    planted("segfault", "matmul f32 nt M=7 N=13 K=29 epi=none", "*(volatile float *)0 = 1;",
            MCT_MEAS_CRASH, "SIGSEGV");
}

static void test_infinite_loop(void)
{
    planted("infinite loop", "matmul f32 nt M=7 N=13 K=29 epi=none",
            "for (volatile int x = 0;; x++) ;", MCT_MEAS_TIMEOUT, "no answer within");
}

/* The caller's cut (mct_meas_set_cut): a first run still going past it is killed and recorded
 * as a cut timeout; with the cut off the same harness times a good kernel as before. */
static void test_cut(void)
{
    mct_meas *m = harness(NULL);
    if (!m)
        return;
    mct_workload w = wl("matmul f32 nt M=7 N=13 K=29 epi=none");
    char *src = kernel_src("slow", 1, 0, 0, "for (volatile long x = 0; x < 4000000000L; x++) ;");
    mct_meas_set_cut(m, 0.05);
    mct_meas_result r = measure_src(m, &w, src, "slow", 0);
    CHECKF(r.status == MCT_MEAS_TIMEOUT && r.cut == 1, "cut: got %s cut %d (%s)",
           mct_meas_status_name(r.status), r.cut, r.detail);
    CHECKF(!strncmp(r.detail, "cut: ", 5), "cut detail: '%s'", r.detail);
    CHECK(r.median_s == 0 && r.runs == 0);
    mct_meas_set_cut(m, 0);
    check_good(m, &w, "a cut");
    free(src);
    mct_meas_destroy(m);
}

static void test_write_past_c_canary(void)
{
    /* 5 x 7 floats: C ends inside its last 64-byte line, so the write hits canary bytes */
    planted("write past C (canary)", "matmul f32 nn M=5 N=7 K=29 epi=none",
            "C[M * ldc] = 1;", MCT_MEAS_CRASH, "past the end of C");
}

static void test_write_past_c_guard(void)
{
    /* 16 x 16 floats: C ends exactly at the guard page */
    planted("write past C (guard page)", "matmul f32 nt M=16 N=16 K=29 epi=none",
            "C[M * ldc + 3] = 1;", MCT_MEAS_CRASH, "past the end of C");
}

static void test_write_before_c(void)
{
    planted("write before C", "matmul f32 nt M=16 N=16 K=29 epi=none", "C[-1] = 1;",
            MCT_MEAS_CRASH, "before the start of C");
}

static void test_write_to_input(void)
{
    planted("write to B", "matmul f32 nt M=4 N=16 K=32 epi=none", "((float *)B)[0] = 1;",
            MCT_MEAS_CRASH, "read-only input");
}

static void test_wrong_answer(void)
{
    planted("wrong answer", "matmul f32 nt M=7 N=13 K=29 epi=none", "C[3] += 1.0f;",
            MCT_MEAS_WRONG, "relative error");
}

static void test_reads_c_when_beta0(void)
{
    /* C = out must not read C: the harness fills C with NaN first, so a kernel that does
     * C += out on a beta=0 workload is wrong */
    mct_meas *m = harness(NULL);
    if (!m)
        return;
    mct_workload w = wl("matmul f32 nt M=7 N=13 K=29 epi=none");
    char *src = kernel_src("k", 1, 0, 1, "");
    mct_meas_result r = measure_src(m, &w, src, "k", 0);
    CHECKF(r.status == MCT_MEAS_WRONG, "reads C: %s %s", mct_meas_status_name(r.status),
           r.detail);
    check_good(m, &w, "reads C");
    free(src);
    mct_meas_destroy(m);
}

static void test_does_not_compile(void)
{
    planted("does not compile", "matmul f32 nt M=7 N=13 K=29 epi=none",
            "this is not C;", MCT_MEAS_COMPILE_ERROR, "error");
}

static void test_sigfpe(void)
{
    planted("SIGFPE", "matmul f32 nt M=7 N=13 K=29 epi=none",
            "volatile int z = 0; volatile int q = 1000 / z; (void)q;", MCT_MEAS_CRASH, "SIGFPE");
}

static void test_early_exit(void)
{
    planted("early exit", "matmul f32 nt M=7 N=13 K=29 epi=none", "exit(0);",
            MCT_MEAS_CRASH, "exited early");
}

static void test_abort(void)
{
    planted("abort", "matmul f32 nt M=7 N=13 K=29 epi=none", "abort();", MCT_MEAS_CRASH,
            "SIGABRT");
}

/* A kernel that cannot allocate its packing or scratch buffer returns MCT_ENOMEM (-2) and leaves C
 * unwritten: a failed candidate that says so, never a wrong answer or a timing of nothing. */
static void test_kernel_enomem(void)
{
    planted("kernel returns MCT_ENOMEM", "matmul f32 nt M=7 N=13 K=29 epi=none", "return -2;",
            MCT_MEAS_CRASH, "kernel returned MCT_ENOMEM (-2): ");
    /* right on the checked first run, out of memory on a later call */
    planted("kernel returns MCT_ENOMEM when timed", "matmul f32 nt M=7 N=13 K=29 epi=none",
            "static int calls_; if (++calls_ > 1) return -2;", MCT_MEAS_CRASH,
            "kernel returned MCT_ENOMEM (-2): its packing or scratch buffer could not be "
            "allocated, so C is not fully written (during the timed runs)");
}

static void test_missing_symbol(void)
{
    mct_meas *m = harness(NULL);
    if (!m)
        return;
    mct_workload w = wl("matmul f32 nt M=3 N=5 K=7 epi=none");
    char *src = kernel_src("some_other_name", 1, 0, 0, "");
    mct_meas_result r = measure_src(m, &w, src, "k", 0);
    CHECKF(r.status == MCT_MEAS_COMPILE_ERROR && strstr(r.detail, "'k'"), "%s: %s",
           mct_meas_status_name(r.status), r.detail);
    free(src);
    /* an undefined function: compiles (-shared) but cannot load */
    src = kernel_src("k", 1, 0, 0, "extern void no_such_function(void); no_such_function();");
    r = measure_src(m, &w, src, "k", 0);
    CHECKF(r.status == MCT_MEAS_COMPILE_ERROR && strstr(r.detail, "no_such_function"),
           "%s: %s", mct_meas_status_name(r.status), r.detail);
    free(src);
    mct_meas_destroy(m);
}

static int count_files(const char *dir, const char *suffix, int *tmp)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    *tmp = 0;
    if (!d)
        return -1;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name), s = strlen(suffix);
        if (strstr(e->d_name, ".tmp."))
            (*tmp)++;
        else if (l > s && !strcmp(e->d_name + l - s, suffix))
            n++;
    }
    closedir(d);
    return n;
}

static void test_cache_hit(void)
{
    mct_meas_opts o;
    opts_fast(&o);
    mct_meas *m = harness(&o);
    if (!m)
        return;
    mct_workload w = wl("matmul f32 nn M=9 N=31 K=17 epi=none");
    char *src = kernel_src("k", 0, 0, 0, "/* cache test */");
    mct_meas_counters c0, c1, c2;
    mct_meas_get_counters(m, &c0);
    mct_meas_result r1 = measure_src(m, &w, src, "k", 0);
    mct_meas_get_counters(m, &c1);
    mct_meas_result r2 = measure_src(m, &w, src, "k", 0);
    mct_meas_get_counters(m, &c2);
    CHECK(r1.status == MCT_MEAS_OK && r2.status == MCT_MEAS_OK);
    CHECK(c1.compiles == c0.compiles + 1 && !r1.cached && r1.compile_s > 0);
    CHECKF(c2.compiles == c1.compiles, "second measurement compiled %ld times",
           c2.compiles - c1.compiles);
    CHECK(r2.cached && r2.compile_s == 0 && c2.cache_hits == c1.cache_hits + 1);
    CHECK(!memcmp(r1.key, r2.key, 16));
    CHECK(r1.cc && r1.cc_version && r1.cflags && !strstr(r1.cflags, "-march"));
    /* no -march: the kernel carries its ISA, compiled as `mctune gen` ships it */
    mct_meas_destroy(m);

    /* a new harness (a restart) finds it too; other flags make another key */
    m = harness(&o);
    if (!m)
        return;
    mct_meas_status st;
    CHECK(mct_meas_compile(m, &(mct_meas_cand){.source = src, .fn = "k"}, &st, NULL, 0) == 0);
    mct_meas_get_counters(m, &c1);
    CHECK(st == MCT_MEAS_OK && c1.compiles == 0 && c1.cache_hits == 1);
    mct_meas_destroy(m);
    o.cflags = "-O2 -fPIC -shared";
    m = harness(&o);
    if (!m)
        return;
    mct_meas_result r3 = measure_src(m, &w, src, "k", 0);
    mct_meas_get_counters(m, &c1);
    CHECK(r3.status == MCT_MEAS_OK && c1.compiles == 1 && memcmp(r3.key, r1.key, 16));
    mct_meas_destroy(m);
    free(src);
}

/* Two processes compile the same set of candidates into one fresh cache at the same time. */
static void test_cache_two_processes(void)
{
    char dir[300];
    snprintf(dir, sizeof dir, "%s/shared", cache);
    enum { NC = 6 };
    char *src[NC];
    for (int i = 0; i < NC; i++) {
        char extra[64];
        snprintf(extra, sizeof extra, "/* variant %d */", i);
        src[i] = kernel_src("k", 1, 0, 0, extra);
    }
    pid_t pids[2];
    for (int p = 0; p < 2; p++) {
        pids[p] = fork();
        if (pids[p] == 0) {
            mct_meas_opts o;
            opts_fast(&o);
            o.cache_dir = dir;
            mct_meas *m = NULL;
            int bad = mct_meas_create(&o, &m, NULL, 0) != 0;
            for (int i = 0; i < NC && !bad; i++) {
                mct_meas_status st;
                int k = p ? NC - 1 - i : i; /* opposite orders: they meet in the middle */
                if (mct_meas_compile(m, &(mct_meas_cand){.source = src[k], .fn = "k"}, &st,
                                     NULL, 0) || st != MCT_MEAS_OK)
                    bad = 1;
            }
            mct_meas_destroy(m);
            _exit(bad);
        }
    }
    for (int p = 0; p < 2; p++) {
        int st = -1;
        CHECK(pids[p] > 0 && waitpid(pids[p], &st, 0) == pids[p]);
        CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "cache writer %d failed", p);
    }
    int tmp = 0;
    CHECKF(count_files(dir, ".so", &tmp) == NC, "expected %d objects", NC);
    CHECKF(tmp == 0, "%d temporary files left in the cache", tmp);
    /* consistent: a third harness finds all of them and every one runs correctly */
    mct_meas_opts o;
    opts_fast(&o);
    o.cache_dir = dir;
    mct_meas *m = harness(&o);
    if (!m)
        return;
    mct_workload w = wl("matmul f32 nt M=3 N=11 K=19 epi=none");
    mct_meas_cand c[NC];
    mct_meas_result r[NC];
    for (int i = 0; i < NC; i++)
        c[i] = (mct_meas_cand){.source = src[i], .fn = "k"};
    CHECK(mct_meas_batch(m, &w, c, NC, r) == 0);
    mct_meas_counters ct;
    mct_meas_get_counters(m, &ct);
    CHECK(ct.compiles == 0 && ct.cache_hits == NC);
    for (int i = 0; i < NC; i++)
        CHECKF(r[i].status == MCT_MEAS_OK && r[i].cached, "candidate %d: %s %s", i,
               mct_meas_status_name(r[i].status), r[i].detail);
    mct_meas_destroy(m);
    for (int i = 0; i < NC; i++)
        free(src[i]);
}

static void test_batch(void)
{
    mct_meas_opts o;
    opts_fast(&o);
    o.jobs = 2;
    mct_meas *m = harness(&o);
    if (!m)
        return;
    mct_workload w = wl("matmul f32 nt M=6 N=10 K=33 epi=bias+relu beta=1");
    char *good = kernel_src("k", 1, 1, 1, "/* batch good */");
    char *good2 = kernel_src("k", 1, 1, 1, "/* batch good 2 */");
    char *crash = kernel_src("k", 1, 1, 1, "*(volatile int *)0 = 0;");
    char *wrong = kernel_src("k", 1, 1, 1, "C[0] -= 1.0f;");
    char *broken = kernel_src("k", 1, 1, 1, "syntax error here");
    mct_meas_cand c[] = {{.source = good, .fn = "k"},  {.source = crash, .fn = "k"},
                         {.source = wrong, .fn = "k"}, {.source = good2, .fn = "k"},
                         {.source = broken, .fn = "k"}, {.source = good, .fn = "k"}};
    enum { N = sizeof c / sizeof c[0] };
    mct_meas_result r[N];
    CHECK(mct_meas_batch(m, &w, c, N, r) == 0);
    mct_meas_status want[N] = {MCT_MEAS_OK, MCT_MEAS_CRASH, MCT_MEAS_WRONG, MCT_MEAS_OK,
                               MCT_MEAS_COMPILE_ERROR, MCT_MEAS_OK};
    for (int i = 0; i < N; i++)
        CHECKF(r[i].status == want[i], "batch %d: %s (%s)", i, mct_meas_status_name(r[i].status),
               r[i].detail);
    mct_meas_counters ct;
    mct_meas_get_counters(m, &ct);
    CHECKF(ct.compiles == 5 && ct.cache_hits == 1, "compiles %ld hits %ld", ct.compiles,
           ct.cache_hits);
    CHECK(r[5].cached && r[0].threads == 1 && r[0].copies >= 1);
    CHECK(ct.runs == 5); /* the compile error is never run */
    /* the cached compile error is not compiled again */
    CHECK(mct_meas_batch(m, &w, &c[4], 1, r) == 0);
    mct_meas_get_counters(m, &ct);
    CHECK(r[0].status == MCT_MEAS_COMPILE_ERROR && r[0].cached && ct.compiles == 5);
    mct_meas_destroy(m);
    free(good);
    free(good2);
    free(crash);
    free(wrong);
    free(broken);
}

static void test_prepacked_bmm(void)
{
    mct_meas *m = harness(NULL);
    if (!m)
        return;
    /* prepack: B[N,K] (nt) packed as B^T [K,N], the kernel then runs as nn on the packed copy */
    mct_workload w = wl("matmul f32 nt M=5 N=12 K=23 epi=none");
    char *body = kernel_src("pk_inner", 0, 0, 0, "");
    char *src = NULL;
    CHECK(asprintf(&src, "#include <stddef.h>\n%s\n"
                   "size_t pk_packed_size(long N, long K) { return (size_t)(N * K); }\n"
                   "void pk_pack_b(long N, long K, const float *B, long ldb, float *Bp)\n"
                   "{ for (long j = 0; j < N; j++) for (long k = 0; k < K; k++)\n"
                   "      Bp[k * N + j] = B[j * ldb + k]; }\n"
                   "int pk(long M, long N, long K, const float *A, long lda, const float *B,\n"
                   "       long ldb, float *C, long ldc, const float *bias, long batch,\n"
                   "       long group, long sA, long sB, long sC)\n"
                   "{ return pk_inner(M, N, K, A, lda, B, N, C, ldc, bias, batch, group, sA, sB,\n"
                   "                  sC); }\n",
                   body) > 0);
    mct_meas_result r = measure_src(m, &w, src, "pk", 1);
    CHECKF(r.status == MCT_MEAS_OK, "prepacked: %s %s", mct_meas_status_name(r.status), r.detail);
    /* the same source without prepacking is wrong: the harness really passed packed B */
    r = measure_src(m, &w, src, "pk", 0);
    CHECK(r.status == MCT_MEAS_WRONG);
    free(body);
    free(src);

    /* bmm with grouped heads, bias and relu, C += out */
    w = wl("bmm f32 nt B=4 G=2 M=3 N=5 K=7 epi=bias+relu beta=1");
    check_good(m, &w, "bmm");
    w = wl("bmm f32 nn B=3 G=1 M=2 N=9 K=4 epi=none");
    check_good(m, &w, "bmm nn");
    mct_meas_destroy(m);
}

static void test_repeatable_and_baseline(void)
{
    mct_meas_opts o;
    opts_fast(&o);
    o.min_time_s = 0.05;
    o.min_runs = 10;
    mct_meas *m = harness(&o);
    if (!m)
        return;
    mct_workload w = wl("matmul f32 nt M=8 N=64 K=256 epi=none");
    char *src = kernel_src("k", 1, 0, 0, "");
    mct_meas_result a = measure_src(m, &w, src, "k", 0);
    mct_meas_result b = measure_src(m, &w, src, "k", 0);
    CHECK(a.status == MCT_MEAS_OK && b.status == MCT_MEAS_OK);
    /* both timed (no wall-clock comparison: tests never assert on timings, which a shared
     * machine makes differ by any factor) */
    CHECK(a.median_s > 0 && b.median_s > 0 && a.q1_s <= a.median_s && a.median_s <= a.q3_s);
    CHECK(a.runs >= 10 && a.copies > 1 && a.rotate_bytes <= (4u << 20));
    mct_meas_destroy(m);

    o.baseline = 1;
    o.hot = 1;
    m = harness(&o);
    if (!m)
        return;
    w = wl("matmul f32 nt M=1 N=64 K=256 epi=none");
    mct_meas_result r = measure_src(m, &w, src, "k", 0);
    CHECKF(r.status == MCT_MEAS_OK && r.has_baseline, "%s %s", mct_meas_status_name(r.status),
           r.detail);
    CHECK(r.copies == 1 && r.hot);
    CHECK(!strcmp(r.base_name, "cblas_sgemm") || !strcmp(r.base_name, "cblas_sgemv"));
    CHECK(r.base_median_s > 0 && r.base_gflops > 0 && r.base_runs >= 10);
    mct_meas_destroy(m);
    free(src);
}

static void test_schedule(void)
{
    mct_meas *m = harness(NULL);
    if (!m)
        return;
    mct_workload w = wl("matmul f32 nt M=5 N=33 K=47 epi=bias+relu");
    mct_sched *s = NULL;
    CHECKF(mct_sched_create(&w, &s) == 0, "sched_create");
    if (!s) {
        mct_meas_destroy(m);
        return;
    }
    mct_meas_result r;
    CHECK(mct_meas_run(m, &w, &(mct_meas_cand){.sched = s}, &r) == 0);
    CHECKF(r.status == MCT_MEAS_OK, "untuned schedule: %s %s", mct_meas_status_name(r.status),
           r.detail);
    mct_sched_destroy(s);
    mct_meas_destroy(m);
}

/* Low-precision weights: the untuned nest, hand-written schedules of each widening point and of
 * prepack, and random legal schedules, for each format on awkward shapes (M = 1, primes, sizes
 * not multiples of the tile), lowered for the host's tier (make test reruns this file under
 * MCTUNE_TIER=avx2 and sse4.2), measured through the real harness: the first run is checked
 * against OpenBLAS on the runtime's dequantized weights with the harness's f32 tolerance (the
 * kernel differs from it in summation order only). A wrong widening, scale or layout fails. */
static void test_lowprec_property(void)
{
    mct_meas *m = harness_once();
    if (!m)
        return;
    static const char *keys[] = {
        "matmul f32 nt M=1 N=37 K=64 epi=none w=bf16",
        "matmul f32 nn M=7 N=29 K=50 epi=bias+relu w=i8",
        "matmul f32 nt M=5 N=23 K=96 epi=bias w=q4g32 beta=1",
        "matmul f32 nn M=3 N=19 K=12 epi=silu w=q4g4",
        "matmul f32 nt M=13 N=41 K=40 epi=none w=i8",
        "matmul f32 nt M=2 N=17 K=128 epi=gelu w=q4g128",
    };
    static const char *fixed[] = {
        "",
        "prepack(B, k)",
        "tile(i, 4, 2); tile(j, 16, 8); tile(k, 16); reorder(i0, j0, k0, i1, j1, k1, i2, j2); "
        "prepack(B, j2, k1); cache_write(i1); unroll(i2, 2); vectorize(j2)",
        "tile(i, 4, 2); tile(j, 16, 8); tile(k, 32); reorder(j0, k0, i0, j1, i1, k1, i2, j2); "
        "pack(B, k0, j2); widen(B, panel); cache_write(i1); unroll(i2, 2); vectorize(j2); "
        "fuse_epilogue(i1)",
        "tile(i, 3); tile(j, 8); tile(k, 8); pack(B, j0, k); widen(B, panel); parallel(i0)",
        /* widen(B, reg) on the fast register tile: the dot forms (one row, a block of rows, k
         * blocks that cross q4 groups, prepack(B, k)) and j panels (with k chunks) */
        "tile(j, 8); tile(k, 16); reorder(i, j0, k0, j1, k1); cache_write(j0); unroll(j1, 8); "
        "vectorize(k1)",
        "tile(i, 4); tile(j, 4); tile(k, 16); reorder(j0, i0, k0, i1, j1, k1); cache_write(i0); "
        "unroll(i1, 4); unroll(j1, 4); vectorize(k1); parallel(j0)",
        "tile(j, 4); tile(k, 48, 16); reorder(i, j0, k0, k1, j1, k2); cache_write(k0); "
        "unroll(j1, 4); vectorize(k2)",
        "tile(j, 8); tile(k, 16); reorder(i, j0, k0, j1, k1); prepack(B, k); cache_write(j0); "
        "unroll(j1, 8); vectorize(k1); prefetch(B, k0, 2)",
        "tile(i, 8, 4); tile(j, 64, 32); tile(k, 64); reorder(j0, k0, i0, j1, i1, k1, i2, j2); "
        "prepack(B, j2); cache_write(i1); unroll(i2, 4); vectorize(j2); prefetch(B, k1, 8)",
        "tile(i, 4, 2); tile(j, 32, 16); tile(k, 16); reorder(i0, j0, k0, i1, j1, k1, i2, j2); "
        "prepack(B, j2, k1); cache_write(i1); unroll(i2, 2); vectorize(j2); fuse_epilogue(i1)",
    };
    enum { NF = sizeof fixed / sizeof fixed[0], NR = 6, NC = NF + NR };
    int t = mct_cpu_tier();
    mct_target tg = mct_target_of_tier(t);
    for (size_t q = 0; q < sizeof keys / sizeof keys[0]; q++) {
        mct_workload w = wl(keys[q]);
        mct_sched *sc[NC] = {0};
        mct_meas_cand c[NC];
        mct_meas_result r[NC];
        int n = 0;
        for (int f = 0; f < NF; f++) {
            char why[256] = "";
            int rc = mct_sched_parse(&w, fixed[f], &sc[n], why, sizeof why);
            CHECKF(rc == 0, "%s: '%s': %s", keys[q], fixed[f], why);
            if (rc == 0)
                n++;
        }
        uint64_t rng = 0x51ed + q;
        for (int i = 0; i < NR; i++)
            if (mct_sched_random(&w, &rng, tg.vlen, &sc[n]) == 0)
                n++;
        for (int i = 0; i < n; i++)
            c[i] = (mct_meas_cand){.sched = sc[i]};
        CHECK(mct_meas_batch(m, &w, c, n, r) == 0);
        for (int i = 0; i < n; i++) {
            char text[4096];
            mct_sched_format(sc[i], text, sizeof text);
            CHECKF(r[i].status == MCT_MEAS_OK, "%s [%s, tier %s]: %s: %s", keys[q], text,
                   mct_tier_name(t), mct_meas_status_name(r[i].status), r[i].detail);
            mct_sched_destroy(sc[i]);
        }
    }
    mct_meas_destroy(m);
}

/* widen(B, dot) through the real harness on the host's tier (make test reruns this file under
 * MCTUNE_TIER=avx2 and sse4.2, so each path the host has runs: vpdpbusd, vpmaddubsw, vdpbf16ps):
 * awkward shapes (M = 1, primes, k ranges with a tail shorter than a vector, epilogues, beta=1).
 * The kernel rounds A, so it may differ from the oracle (f32 A, dequantized weights) by
 *   int8 per row, scale s_i = max_k |a(i,k)|/127, |a - s_i q| <= s_i/2:  s_i/2 * sum_k |w(k,j)|
 *   bf16, |a - bf16(a)| <= 2^-8 |a|:                                     2^-8 * sum_k |a w|
 * (integer sums exact, bf16 products exact in f32; an activation's slope <= 1.2), plus the f32
 * tolerance: the harness checks each element against that bound (meas_data.c). The test asserts
 * that every candidate whose path the target has passes it, that its error is above the f32
 * tolerance where K is large (so A really was rounded: the widen(B, reg) code would be within it)
 * and below the bound's scale, and that a path the tier lacks is refused with its reason. */
static void test_lowprec_dot(void)
{
    mct_meas *m = harness_once();
    if (!m)
        return;
    static const char *keys[] = {
        "matmul f32 nt M=1 N=37 K=1024 epi=none w=i8",
        "matmul f32 nn M=7 N=29 K=200 epi=bias+relu w=i8",
        "matmul f32 nt M=5 N=23 K=1024 epi=bias w=q4g32 beta=1",
        "matmul f32 nt M=3 N=19 K=256 epi=silu w=q4g128",
        "matmul f32 nt M=1 N=41 K=1024 epi=none w=bf16",
        "matmul f32 nn M=6 N=17 K=100 epi=gelu w=bf16",
    };
    static const char *fixed[] = {
        "tile(j, 8); tile(k, 64); reorder(i, j0, k0, j1, k1); cache_write(j0); unroll(j1, 8); "
        "vectorize(k1); widen(B, dot)",
        "tile(i, 4); tile(j, 2); tile(k, 64); reorder(j0, i0, k0, i1, j1, k1); cache_write(i0); "
        "unroll(i1, 4); unroll(j1, 2); vectorize(k1); prepack(B, k); parallel(j0); "
        "widen(B, dot)",
        "tile(j, 4); tile(k, 128, 64); reorder(i, j0, k0, k1, j1, k2); cache_write(k0); "
        "unroll(j1, 4); vectorize(k2); prefetch(B, k1, 2); widen(B, dot)",
    };
    enum { NF = sizeof fixed / sizeof fixed[0] };
    int t = mct_cpu_tier();
    mct_target tg = mct_target_of_tier(t);
    for (size_t q = 0; q < sizeof keys / sizeof keys[0]; q++) {
        mct_workload w = wl(keys[q]);
        mct_sched *sc[NF] = {0};
        mct_meas_cand c[NF];
        mct_meas_result r[NF];
        int dp[NF], n = 0;
        char why[NF][256];
        for (int f = 0; f < NF; f++) {
            int rc = mct_sched_parse(&w, fixed[f], &sc[n], why[n], sizeof why[n]);
            CHECKF(rc == 0, "%s: '%s': %s", keys[q], fixed[f], why[n]);
            if (rc == 0) {
                dp[n] = mct_cg_dot_path(sc[n], &tg, why[n], sizeof why[n]);
                c[n] = (mct_meas_cand){.sched = sc[n]};
                n++;
            }
        }
        CHECK(mct_meas_batch(m, &w, c, n, r) == 0);
        for (int i = 0; i < n; i++) {
            char text[4096];
            mct_sched_format(sc[i], text, sizeof text);
            if (dp[i] < 0) {
                CHECKF(r[i].status == MCT_MEAS_COMPILE_ERROR && strstr(r[i].detail, why[i]),
                       "%s [%s, tier %s]: refused with '%s': %s %s", keys[q], text,
                       mct_tier_name(t), why[i], mct_meas_status_name(r[i].status),
                       r[i].detail);
                continue;
            }
            CHECKF(dp[i] > 0, "%s [%s]: a path at tier %s", keys[q], text, mct_tier_name(t));
            CHECKF(r[i].status == MCT_MEAS_OK, "%s [%s, tier %s]: %s: %s", keys[q], text,
                   mct_tier_name(t), mct_meas_status_name(r[i].status), r[i].detail);
            /* relerr is |err| / (|C| + sqrt(K) + 1): with uniform [-1, 1] data the int8 bound is
             * about K * 0.5 * (1/127) / 2 per element, bf16's K * 0.25 * 2^-8, both far below
             * sqrt(K) at these K; and at K >= 1000 the rounding shows above f32's tolerance */
            double tol = mct_oracle_tolerance((long)w.K);
            CHECKF(r[i].relerr < 0.05, "%s [%s]: error %.3g within the rounding's scale", keys[q],
                   text, r[i].relerr);
            if (w.K >= 1000)
                CHECKF(r[i].relerr > tol, "%s [%s]: error %.3g above f32's %.3g: A was rounded",
                       keys[q], text, r[i].relerr, tol);
        }
        for (int i = 0; i < n; i++)
            mct_sched_destroy(sc[i]);
    }
    mct_meas_destroy(m);
}

/* widen(B, amx) through the real harness: where mct_cpu_tier() is amx, bf16, i8 and q4 AMX kernels
 * run on ragged shapes (M = 1, 7, 16, 33; N = 16, 48, 100; K = 64, 100, 256: rows, columns and k
 * that do not fill a tile, the padded edges) with one-tile and two-tile row blocks (the latter on
 * the parallel j loop) and epilogues, and the harness holds each element to the bound of A's
 * rounding that widen(B, dot) uses (meas_data.c; AMX rounds A the same way). On a host without AMX
 * (or under MCTUNE_TIER below amx) each candidate must be refused with the path's reason; the run
 * is then skipped with a printed line. */
static void test_lowprec_amx(void)
{
    mct_meas *m = harness_once();
    if (!m)
        return;
    static const char *shapes[] = {
        "M=1 N=16 K=64 epi=none",         "M=7 N=48 K=100 epi=bias+relu",
        "M=16 N=100 K=256 epi=silu beta=1", "M=33 N=100 K=100 epi=bias",
        "M=33 N=16 K=256 epi=gelu",       "M=16 N=48 K=64 epi=none beta=1",
    };
    static const char *fmts[] = {"bf16", "i8"};
    static const char *q4keys[] = {  /* K a multiple of the group */
        "M=1 N=16 K=64 epi=none w=q4g32",   "M=7 N=48 K=256 epi=bias+relu w=q4g64",
        "M=33 N=100 K=96 epi=silu beta=1 w=q4g32", "M=16 N=100 K=256 epi=bias w=q4g128",
    };
    enum { NS = sizeof shapes / sizeof shapes[0], NQ = sizeof q4keys / sizeof q4keys[0] };
    static const char *fixed[] = {
        "tile(i, 16); tile(j, 32); tile(k, 64); reorder(j0, i0, k0, i1, j1, k1); cache_write(i0); "
        "widen(B, amx)",
        "tile(i, 32); tile(j, 16); reorder(j0, i0, k, i1, j1); cache_write(i0); parallel(j0); "
        "widen(B, amx)",
    };
    enum { NF = sizeof fixed / sizeof fixed[0] };
    int t = mct_cpu_tier();
    mct_target tg = mct_target_of_tier(t);
    int ran = 0;
    for (size_t q = 0; q < NS + NQ; q++)
        for (size_t g = 0; g < (q < NS ? 2 : 1); g++) {
            char key[160];
            if (q < NS)
                snprintf(key, sizeof key, "matmul f32 nt %s w=%s", shapes[q], fmts[g]);
            else
                snprintf(key, sizeof key, "matmul f32 nt %s", q4keys[q - NS]);
            mct_workload w = wl(key);
            mct_sched *sc[NF] = {0};
            mct_meas_cand c[NF];
            mct_meas_result r[NF];
            int dp[NF], n = 0;
            char why[NF][256];
            for (int f = 0; f < NF; f++) {
                int rc = mct_sched_parse(&w, fixed[f], &sc[n], why[n], sizeof why[n]);
                CHECKF(rc == 0, "%s: '%s': %s", key, fixed[f], why[n]);
                if (rc == 0) {
                    dp[n] = mct_cg_dot_path(sc[n], &tg, why[n], sizeof why[n]);
                    c[n] = (mct_meas_cand){.sched = sc[n]};
                    n++;
                }
            }
            CHECK(mct_meas_batch(m, &w, c, n, r) == 0);
            for (int i = 0; i < n; i++) {
                char text[4096];
                mct_sched_format(sc[i], text, sizeof text);
                if (t < MCT_TIER_AMX) {
                    CHECKF(dp[i] == MCT_ENOTAPPLIC && strstr(why[i], "tier amx"),
                           "%s [%s]: refused below tier amx: %s", key, text, why[i]);
                    CHECKF(r[i].status == MCT_MEAS_COMPILE_ERROR && strstr(r[i].detail, why[i]),
                           "%s [%s, tier %s]: refused with '%s': %s %s", key, text,
                           mct_tier_name(t), why[i], mct_meas_status_name(r[i].status),
                           r[i].detail);
                    continue;
                }
                CHECKF(dp[i] == (w.wfmt == MCT_RT_WF_BF16 ? MCT_CG_DOT_BF16 : MCT_CG_DOT_INT8),
                       "%s [%s]: path %d (%s)", key, text, dp[i], why[i]);
                CHECKF(r[i].status == MCT_MEAS_OK, "%s [%s]: %s: %s", key, text,
                       mct_meas_status_name(r[i].status), r[i].detail);
                CHECKF(r[i].relerr < 0.05, "%s [%s]: error %.3g within the rounding's scale", key,
                       text, r[i].relerr);
                ran++;
            }
            for (int i = 0; i < n; i++)
                mct_sched_destroy(sc[i]);
        }
    if (t < MCT_TIER_AMX)
        printf("test_lowprec_amx: tier %s has no AMX tiles: refusals checked, no AMX kernel run\n",
               mct_tier_name(t));
    else
        printf("test_lowprec_amx: %d AMX kernels run through the harness within the bound\n", ran);
    mct_meas_destroy(m);
}

static void test_cache_dir_env(void)
{
    char dir[300];
    snprintf(dir, sizeof dir, "%s/from-env/sub", cache);
    setenv("MCTUNE_CC_CACHE", dir, 1);
    mct_meas *m = NULL;
    mct_meas_opts o;
    mct_meas_opts_default(&o);
    CHECK(mct_meas_create(&o, &m, NULL, 0) == 0);
    CHECK(m && !strcmp(mct_meas_cache_dir(m), dir));
    mct_meas_destroy(m);
    unsetenv("MCTUNE_CC_CACHE");
    o.cache_dir = "/proc/no/such/place";
    char err[512] = "";
    CHECK(mct_meas_create(&o, &m, err, sizeof err) != 0);
    CHECKF(strstr(err, "/proc/no/such/place") != NULL, "error names the folder: %s", err);
}

/* The command line, when the runner names the binary (MCTUNE=build/mctune). */
static int sh(const char *fmt, const char *a, const char *b)
{
    char *cmd = NULL;
    if (asprintf(&cmd, fmt, a, b) < 0)
        return -1;
    int st = system(cmd);
    free(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_cli(void)
{
    const char *bin = getenv("MCTUNE");
    if (!bin || access(bin, X_OK))
        return; /* run directly, without the runner: nothing to call */
    const char *wl = "'matmul f32 nn M=3 N=17 K=40 epi=relu'";
    CHECK(sh("%s measure >/dev/null 2>&1", bin, "") == 2);
    CHECK(sh("%s measure %s --bogus >/dev/null 2>&1", bin, wl) == 2);
    CHECK(sh("%s measure %s --threads >/dev/null 2>&1", bin, wl) == 2);
    CHECK(sh("%s measure %s --threads 0 >/dev/null 2>&1", bin, wl) == 2);
    CHECK(sh("%s measure %s --schedule 'tile(q, 3)' >/dev/null 2>&1", bin, wl) == 2);
    CHECK(sh("%s measure --help | grep -q -- --baseline", bin, "") == 0);
    char *cmd = NULL;
    CHECK(asprintf(&cmd, "%s measure %s --cache '%s/cli' --min-time 0.01 --baseline "
                   "--schedule 'tile(j, 4); reorder(i, j0, k, j1); vectorize(j1)' "
                   "| grep -q 'status     ok'",
                   bin, wl, cache) > 0);
    CHECK(system(cmd) == 0);
    free(cmd);
}

/* A schedule of about 10 KB that is refused (its last step names no axis, or one step is one
 * huge word) is quoted in the message cut to its first 200 characters and "...": one line, not
 * the whole text. A short refused schedule is quoted whole. */
static void test_cli_long_schedule(void)
{
    const char *bin = getenv("MCTUNE");
    if (!bin || access(bin, X_OK))
        return;
    const char *wl = "matmul f32 nt M=1 N=64 K=96 epi=none";
    static const char *const reason[2] = {"no axis named 'q'", "too long"};
    for (int v = 0; v < 2; v++) {
        char path[400], *text = NULL, out[16384];
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);
        if (!f) {
            CHECK(0);
            return;
        }
        if (v == 0) {
            for (int i = 0; i < 900; i++)
                fputs("tile(i, 2); ", f);
            fputs("tile(q, 3)", f);
        } else {
            fputs("tile(j, 4); unroll(", f);
            for (int i = 0; i < 10000; i++)
                fputc('j', f);
            fputs(", 2)", f);
        }
        fclose(f);
        CHECK(len > 10000);
        snprintf(path, sizeof path, "%s/long%d.sched", cache, v);
        f = fopen(path, "w");
        CHECK(f && fputs(text, f) >= 0 && fclose(f) == 0);
        int rc = check_sh(out, sizeof out, "%s measure '%s' --cache '%s/cli' --schedule @%s "
                          "2>&1 >/dev/null", bin, wl, cache, path);
        char want[300];
        snprintf(want, sizeof want, "mctune measure: schedule '%.200s...': ", text);
        size_t n = strlen(out), w = strlen(want);
        CHECKF(rc == 2 && n > w && n < w + 200 && !strncmp(out, want, w) &&
               strchr(out, '\n') == out + n - 1 && strstr(out + w, reason[v]),
               "exit %d, %zu bytes: %.600s", rc, n, out);
        free(text);
    }
    char out[1024];
    int rc = check_sh(out, sizeof out, "%s measure '%s' --schedule 'tile(j, 4); tile(q, 3)' 2>&1 "
                      ">/dev/null", bin, wl);
    CHECKF(rc == 2 && !strncmp(out, "mctune measure: schedule 'tile(j, 4); tile(q, 3)': ", 51),
           "exit %d: %s", rc, out);
}

static void rm_rf(const char *path)
{
    char *cmd = NULL;
    if (asprintf(&cmd, "rm -rf '%s'", path) > 0 && system(cmd)) {
    }
    free(cmd);
}

int main(void)
{
    sanitized = getenv("MCTUNE_SANITIZED") != NULL;
    if (check_tmpdir(cache, sizeof cache, "test-measure"))
        return 1;
    test_segfault();
    test_infinite_loop();
    test_cut();
    test_write_past_c_canary();
    test_write_past_c_guard();
    test_write_before_c();
    test_write_to_input();
    test_wrong_answer();
    test_reads_c_when_beta0();
    test_does_not_compile();
    test_sigfpe();
    test_early_exit();
    test_abort();
    test_kernel_enomem();
    test_missing_symbol();
    test_cache_hit();
    test_cache_two_processes();
    test_batch();
    test_prepacked_bmm();
    test_repeatable_and_baseline();
    test_schedule();
    test_lowprec_property();
    test_lowprec_dot();
    test_lowprec_amx();
    test_cache_dir_env();
    test_cli();
    test_cli_long_schedule();
    rm_rf(cache);
    return check_done();
}
