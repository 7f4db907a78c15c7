/* tuner/baseline.h: the OpenBLAS core chosen for synthetic CPUs of every kind the project's
 * machines have (never the host's: the test passes on any x86-64), then the libraries this host
 * has, loaded for real: labels, thread counts read back, and answers checked against a plain
 * loop. A library that is not installed is an answer (MCT_ENOTFOUND), not a failure. */
#include "tests/check.h"
#include "tuner/baseline.h"
#include "tuner/baseline_lp.h"

#include <math.h>
#include <sched.h>

static void feats(mct_cpu *c, const char *vendor, int family, int model, const char *list)
{
    memset(c, 0, sizeof *c);
    snprintf(c->vendor, sizeof c->vendor, "%s", vendor);
    c->family = family;
    c->model = model;
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", list);
    for (char *s = strtok(buf, " "); s; s = strtok(NULL, " ")) {
        int i = mct_cpu_feature_find(s);
        CHECKF(i >= 0, "feature %s", s);
        if (i >= 0)
            mct_cpu_set(c, i);
    }
}

#define SSE "sse sse2 sse3 ssse3 sse4.1 sse4.2 popcnt lm"
#define AVX2 SSE " xsave osxsave os-avx avx avx2 fma f16c bmi1 bmi2"
#define AVX512 AVX2 " os-avx512 avx512f avx512cd avx512bw avx512dq avx512vl"
#define BF16 AVX512 " avx512vnni avx512bf16"
#define AMX BF16 " os-amx amx-tile amx-bf16 amx-int8"

static const char *first(const mct_cpu *c, mct_tier cap)
{
    const char *o[4];
    int n = mct_base_openblas_cores(c, cap, o, 4);
    return n > 0 ? o[0] : "(none)";
}

static void core_choice(void)
{
    mct_cpu c;
    const char *o[4];
    feats(&c, "AuthenticAMD", 25, 1, AVX2);                     /* Zen 3 */
    CHECK(mct_cpu_tier_of(&c) == MCT_TIER_AVX2);
    CHECK(!strcmp(first(&c, MCT_TIER_COUNT), "Zen"));
    feats(&c, "AuthenticAMD", 25, 17, BF16);                    /* Zen 4 */
    CHECK(mct_cpu_tier_of(&c) == MCT_TIER_AVX512_BF16VNNI);
    CHECK(!strcmp(first(&c, MCT_TIER_COUNT), "Zen"));
    CHECK(mct_base_openblas_cores(&c, MCT_TIER_COUNT, o, 4) == 1);
    feats(&c, "GenuineIntel", 6, 63, AVX2);                     /* Haswell */
    CHECK(!strcmp(first(&c, MCT_TIER_COUNT), "Haswell"));
    feats(&c, "GenuineIntel", 6, 85, AVX512);                   /* Skylake-SP */
    CHECK(!strcmp(first(&c, MCT_TIER_COUNT), "SkylakeX"));
    CHECK(!strcmp(first(&c, MCT_TIER_AVX2), "Haswell"));        /* MCTUNE_TIER=avx2 */
    feats(&c, "GenuineIntel", 6, 85, BF16);                     /* Cooper Lake */
    CHECK(!strcmp(first(&c, MCT_TIER_COUNT), "Cooperlake"));
    CHECK(mct_base_openblas_cores(&c, MCT_TIER_COUNT, o, 4) == 2 && !strcmp(o[1], "SkylakeX"));
    feats(&c, "GenuineIntel", 6, 143, AMX);                     /* Sapphire Rapids */
    CHECK(mct_base_openblas_cores(&c, MCT_TIER_COUNT, o, 4) == 3);
    CHECK(!strcmp(o[0], "SapphireRapids") && !strcmp(o[1], "Cooperlake"));
    CHECK(mct_base_openblas_cores(&c, MCT_TIER_COUNT, o, 1) == 1);  /* max respected */
    CHECK(!strcmp(first(&c, MCT_TIER_AVX512), "SkylakeX"));
    /* the OS does not save zmm state (a VM): not an AVX-512 machine */
    feats(&c, "GenuineIntel", 6, 85, AVX2 " avx512f avx512cd avx512bw avx512dq avx512vl");
    CHECK(!strcmp(first(&c, MCT_TIER_COUNT), "Haswell"));
    feats(&c, "GenuineIntel", 6, 42, SSE " xsave osxsave os-avx avx");   /* Sandy Bridge */
    CHECK(!strcmp(first(&c, MCT_TIER_COUNT), "Sandybridge"));
    CHECK(mct_base_openblas_cores(&c, MCT_TIER_SSE42, o, 4) == 0);   /* MCTUNE_TIER=sse4.2 */
    feats(&c, "GenuineIntel", 6, 26, SSE);                      /* Nehalem: SSE only */
    CHECK(mct_base_openblas_cores(&c, MCT_TIER_COUNT, o, 4) == 0);
    feats(&c, "AuthenticAMD", 16, 4, "sse sse2 sse3 lm");       /* older than sse4.2 */
    CHECK(mct_base_openblas_cores(&c, MCT_TIER_COUNT, o, 4) == 0);
    CHECK(!strcmp(mct_base_kind_name(MCT_BASE_ONEDNN), "onednn"));
}

/* every library this host has: loads, labels, threads, right answers at M=1 and M=5 */
static void libraries(void)
{
    const mct_cpu *host = mct_cpu_host();
    long M = 5, N = 37, K = 29;
    float A[5 * 29], Bnt[37 * 29], Bnn[29 * 37], C[5 * 37], R[5 * 37], c1[37], r1[37];
    for (long i = 0; i < M * K; i++)
        A[i] = (float)((i * 7) % 13) / 13.0f - 0.5f;
    for (long j = 0; j < N; j++)
        for (long k = 0; k < K; k++)
            Bnn[k * N + j] = Bnt[j * K + k] = (float)((j * 5 + k * 3) % 11) / 11.0f - 0.5f;
    for (long i = 0; i < M; i++)
        for (long j = 0; j < N; j++) {
            double s = 0;
            for (long k = 0; k < K; k++)
                s += (double)A[i * K + k] * Bnt[j * K + k];
            R[i * N + j] = (float)s;
        }
    memcpy(r1, R, sizeof r1);
    int opened_openblas = 0;
    for (int k = 0; k < MCT_BASE_COUNT; k++) {
        mct_base_lib *l = NULL;
        char err[256] = "";
        int rc = mct_base_open((mct_base_kind)k, host, mct_cpu_tier(), &l, err, sizeof err);
        CHECKF(rc == 0 || rc == MCT_ENOTFOUND || rc == MCT_ENOTAPPLIC, "%s: %d %s",
               mct_base_kind_name((mct_base_kind)k), rc, err);
        if (rc) {
            CHECK(*err);
            printf("  %-16s not used: %s\n", mct_base_kind_name((mct_base_kind)k), err);
            continue;
        }
        printf("  %-16s %s\n", mct_base_kind_name((mct_base_kind)k), mct_base_label(l));
        opened_openblas += k == MCT_BASE_OPENBLAS;
        if (k <= MCT_BASE_OPENBLAS_FORCED)
            CHECK(strstr(mct_base_label(l), "core "));
        if (k == MCT_BASE_ONEDNN)
            CHECK(strstr(mct_base_label(l), "ISA "));
        int t = mct_base_set_threads(l, 2);
        CHECKF(t == 2 || t == 0, "%s reports %d threads after asking for 2", mct_base_label(l), t);
        for (int nt = 0; nt < 2; nt++) {
            memset(C, 0, sizeof C);
            mct_base_sgemm(l, nt, M, N, K, A, K, nt ? Bnt : Bnn, nt ? K : N, 0.0f, C, N);
            double e = 0;
            for (long i = 0; i < M * N; i++)
                e = fmax(e, fabs(C[i] - R[i]));
            CHECKF(e < 1e-4, "%s sgemm nt=%d: max error %g", mct_base_label(l), nt, e);
            memset(c1, 0, sizeof c1);
            mct_base_sgemv(l, nt, N, K, nt ? Bnt : Bnn, nt ? K : N, A, 0.0f, c1);
            e = 0;
            for (long j = 0; j < N; j++)
                e = fmax(e, fabs(c1[j] - r1[j]));
            CHECKF(e < 1e-4, "%s sgemv nt=%d: max error %g", mct_base_label(l), nt, e);
        }
        mct_base_set_threads(l, 1);
        mct_base_close(l);
    }
    CHECK(opened_openblas == 1);  /* a build dependency: always there */
    mct_base_lib *l = NULL;
    CHECK(mct_base_open(MCT_BASE_COUNT, host, mct_cpu_tier(), &l, NULL, 0) == MCT_EINVAL);
}

/* The test's own quantizers (independent of tuner/baseline_lp.c): bf16 round to nearest even;
 * int8 symmetric, scale max|x| / 127. */
static float bf16_round(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    u = (u + 0x7fffu + ((u >> 16) & 1)) & 0xffff0000u;
    memcpy(&f, &u, 4);
    return f;
}

static float q8_scale(const float *x, long n, int qmax)
{
    float m = 0;
    for (long i = 0; i < n; i++)
        m = fmaxf(m, fabsf(x[i]));
    return m > 0 ? m / (float)qmax : 1.0f;
}

/* oneDNN's bf16 and int8 matmul (tuner/baseline_lp.h) against the product of the operands
 * quantized as the header says, in double: bf16 products are exact in f32, so only the f32
 * summation order differs (tolerance K ulp-scale); int8 sums are exact in int32, then scaled. */
static void low_precision(void)
{
    long M = 3, N = 37, K = 64;
    float A[3 * 64], Bnt[37 * 64], Bnn[64 * 37];
    for (long i = 0; i < M * K; i++)
        A[i] = (float)((i * 7) % 13) / 13.0f - 0.45f;
    for (long j = 0; j < N; j++)
        for (long k = 0; k < K; k++)
            Bnn[k * N + j] = Bnt[j * K + k] = (float)((j * 5 + k * 3) % 11) / 11.0f - 0.5f +
                                               (float)j * 1e-3f;
    const char *fmts[2] = {"bf16", "i8"};
    for (int f = 0; f < 2; f++)
        for (int nt = 0; nt < 2; nt++) {
            mct_base_lp *l = NULL;
            char err[256] = "";
            int rc = mct_base_lp_open(fmts[f], nt, M, N, K, 1, A, nt ? Bnt : Bnn, &l, err,
                                      sizeof err);
            CHECKF(rc == 0 || rc == MCT_ENOTFOUND, "%s: %d %s", fmts[f], rc, err);
            if (rc) {
                CHECK(*err);
                printf("  oneDNN %s matmul not used: %s\n", fmts[f], err);
                continue;
            }
            if (nt == 0)
                printf("  %s\n", mct_base_lp_label(l));
            CHECK(mct_base_lp_run(l) == 0 && mct_base_lp_run(l) == 0);
            const float *C = mct_base_lp_out(l);
            float sa = q8_scale(A, M * K, 127);
            int wq = mct_base_lp_wmax(l);
            CHECK(f == 0 ? wq == 0 : wq == 127 || wq == 63);
            double e = 0;
            for (long i = 0; i < M; i++)
                for (long j = 0; j < N; j++) {
                    double r = 0;
                    float sb = f ? q8_scale(Bnt + j * K, K, wq) : 1;
                    for (long k = 0; k < K; k++) {
                        float a = A[i * K + k], b = Bnt[j * K + k];
                        if (f == 0)
                            r += (double)bf16_round(a) * bf16_round(b);
                        else
                            r += nearbyint(a / sa) * nearbyint(b / sb) * (double)sa * sb;
                    }
                    e = fmax(e, fabs(C[i * N + j] - r) / (1.0 + fabs(r)));
                }
            CHECKF(e < 1e-4, "%s nt=%d: max relative error %g against the quantized operands",
                   mct_base_lp_label(l), nt, e);
            mct_base_lp_close(l);
        }
    mct_base_lp *l = NULL;
    CHECK(mct_base_lp_open("q3", 1, M, N, K, 1, A, Bnt, &l, NULL, 0) == MCT_EINVAL && !l);
    CHECK(mct_base_lp_open("i8", 1, 0, N, K, 1, A, Bnt, &l, NULL, 0) == MCT_EINVAL && !l);
}

/* `mctune measure --baseline --threads 2`: a line per library, naming OpenBLAS's core and oneDNN
 * (or saying it is unavailable), each run with the thread count asked for (as the library reports
 * it back) */
static void measure_cli(void)
{
    static char out[1 << 14];
    const char *mctune = getenv("MCTUNE") ? getenv("MCTUNE") : "build/mctune";
    char dir[] = "/tmp/mct-test-baseline-XXXXXX";
    if (!mkdtemp(dir)) {
        CHECK(0);
        return;
    }
    cpu_set_t set;
    int ncpu = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 1;
    /* a parallel candidate: its first run has OpenMP bind the driver's thread to one CPU before
     * the libraries load */
    int rc = check_sh(out, sizeof out, "%s measure 'matmul f32 nt M=1 N=256 K=512 epi=none' "
                      "--schedule 'tile(j, 16); parallel(j0)' --threads 2 --hot --baseline "
                      "--min-time 0.02 --cache %s/cc 2>&1", mctune, dir);
    CHECKF(rc == 0, "measure --baseline failed (%d): %s", rc, out);
    CHECKF(strstr(out, "baseline   OpenBLAS ") && strstr(out, " core "), "%s", out);
    CHECKF(strstr(out, "baseline   oneDNN ") || strstr(out, "baseline   oneDNN: unavailable"),
           "%s", out);
    CHECKF(strstr(out, "(forced, OPENBLAS_CORETYPE)") || strstr(out, "OpenBLAS forced: "), "%s",
           out);  /* a forced core, or why none */
    CHECKF(strstr(out, "the speed of the best baseline"), "%s", out);
    if (ncpu >= 2) {
        /* every library that ran reports 2 threads, and OpenBLAS's may run on two CPUs: its
         * workers start when it loads and take the loading thread's mask, which OpenMP had
         * bound to one CPU (they then ran at one core's speed) */
        int lines = 0, two = 0, ob = 0, spread = 0;
        for (char *p = out; (p = strstr(p, "baseline   ")); p++) {
            char *nl = strchr(p, '\n');
            if (!nl)
                break;
            *nl = 0;
            if (!strstr(p, "unavailable")) {
                lines++;
                two += strstr(p, ", 2 threads") != NULL;
                if (!strncmp(p, "baseline   OpenBLAS ", 20)) {
                    ob++;
                    spread += strstr(p, ", 2 threads on 2 CPUs") != NULL;
                }
            }
            *nl = '\n';
        }
        CHECKF(lines >= 1 && two == lines, "%d of %d baselines ran with 2 threads:\n%s", two,
               lines, out);
        CHECKF(ob >= 1 && spread == ob, "%d of %d OpenBLAS baselines ran on 2 CPUs:\n%s", spread,
               ob, out);
    }
    check_sh(NULL, 0, "rm -rf %s", dir);
}

int main(void)
{
    core_choice();
    libraries();
    low_precision();
    measure_cli();
    return check_done();
}
