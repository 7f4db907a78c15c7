/* mctune gen: builds a test database (this CPU plus synthetic CPUs: an avx2-only one and one of
 * another vendor), runs `mctune gen` ($MCTUNE, default build/mctune), builds the output with
 * plain cc (gcc and clang, -Wall -Wextra -Werror, no -march), links tests/gen_consumer.c and
 * checks tuned and untuned shapes against OpenBLAS, forced tiers, refusals, and the cblas
 * drop-in through LD_PRELOAD. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "codegen/codegen.h"
#include "codegen/emit.h"
#include "db/db.h"
#include "runtime/dispatch.h"
#include "runtime/cpu.h"
#include "tests/check.h"

static char dir[256], srcdir[512];
static int sanitized;

/* The tables of the test library, in the order build_db stores them. */
static const mct_cpu *tables[3];

/* The host record the test tunes for: this CPU, restricted to MCTUNE_TIER when that forces a
 * lower tier (make test runs this test again so; the library is then pinned to that record). */
static mct_cpu host_rec;


/* Runs a shell command; stdout+stderr into out (may be NULL). Returns the exit status. */

static int put_t(mct_db *db, const mct_cpu *c, const char *wl, const char *sched, uint64_t *rng,
                 int threads);

static int put(mct_db *db, const mct_cpu *c, const char *wl, const char *sched, uint64_t *rng)
{
    return put_t(db, c, wl, sched, rng, 1);
}

static int put_t(mct_db *db, const mct_cpu *c, const char *wl, const char *sched, uint64_t *rng,
                 int threads)
{
    mct_workload w;
    mct_sched *s = NULL;
    mct_db_rec r;
    char why[256];
    memset(&r, 0, sizeof r);
    if (mct_wl_parse(wl, &w, why, sizeof why) < 0) {
        fprintf(stderr, "bad workload %s: %s\n", wl, why);
        return -1;
    }
    if (sched ? mct_sched_parse(&w, sched, &s, why, sizeof why) < 0
              : mct_sched_random(&w, rng, 16, &s) < 0) {
        fprintf(stderr, "bad schedule %s: %s\n", sched ? sched : "(random)", why);
        return -1;
    }
    mct_wl_format(&w, r.workload, sizeof r.workload);
    mct_sched_format(s, r.schedule, sizeof r.schedule);
    mct_sched_destroy(s);
    r.cpu = mct_cpu_key(c);
    r.threads = threads;
    r.median_ns = 1000;
    r.gflops = mct_wl_flops(&w) / 1000;
    r.samples = 1;
    snprintf(r.search, sizeof r.search, "manual");
    snprintf(r.compiler, sizeof r.compiler, "cc");
    snprintf(r.flags, sizeof r.flags, "-O2");
    snprintf(r.tool, sizeof r.tool, "test_gen");
    return mct_db_put_best(db, &r, NULL);
}

static void set_feats(mct_cpu *c, const char *const *names)
{
    for (; *names; names++)
        mct_cpu_set(c, mct_cpu_feature_find(*names));
}

static const char *const avx2_feats[] = {"sse", "sse2", "sse3", "ssse3", "sse4.1", "sse4.2",
    "popcnt", "xsave", "osxsave", "os-avx", "avx", "avx2", "fma", "lm", NULL};
static const char *const avx512_feats[] = {"os-avx512", "avx512f", "avx512cd", "avx512bw",
    "avx512dq", "avx512vl", NULL};

static const char *expert = "tile(i, 16, 8); tile(j, 64, 32); tile(k, 64); reorder(j0, k0, i0, "
    "j1, i1, k1, i2, j2); pack(A, i0, i2); prepack(B, j2); cache_write(i1); unroll(i2, 8); "
    "vectorize(j2); unroll(k1, 4)";
static const char *gemv = "tile(j, 8); tile(k, 16); reorder(i, j0, k0, j1, k1); cache_write(j0);"
    " unroll(j1, 8); vectorize(k1)";

static const char *par2 = "tile(j, 32, 8); tile(k, 16); reorder(j0, i, j1, k0, j2, k1); "
    "cache_write(j2); parallel(j0); unroll(j2, 8); vectorize(k1)";

static int build_db(const char *path, mct_cpu *avx2, mct_cpu *amd)
{
    mct_db *db;
    char err[512];
    uint64_t rng = 12345;
    const mct_cpu *host = &host_rec;
    int rc = 0;
    if (mct_db_open(path, MCT_DB_NOSYNC, err, sizeof err, &db) < 0) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    memset(avx2, 0, sizeof *avx2);
    snprintf(avx2->vendor, sizeof avx2->vendor, "GenuineIntel");
    snprintf(avx2->brand, sizeof avx2->brand, "synthetic Haswell");
    avx2->family = 6, avx2->model = 63;
    set_feats(avx2, avx2_feats);
    *amd = *avx2;
    snprintf(amd->vendor, sizeof amd->vendor, "AuthenticAMD");
    snprintf(amd->brand, sizeof amd->brand, "synthetic Zen 4");
    amd->family = 25, amd->model = 97;
    if (mct_cpu_tier_of(host) >= MCT_TIER_AVX512)
        set_feats(amd, avx512_feats);
    tables[0] = host, tables[1] = avx2, tables[2] = amd;
    rc |= mct_db_put_cpu(db, host) | mct_db_put_cpu(db, avx2) | mct_db_put_cpu(db, amd);
    const char *nt = "matmul f32 nt M=%d N=64 K=96 epi=none";
    char wl[256];
    snprintf(wl, sizeof wl, nt, 1);
    rc |= put(db, host, wl, gemv, &rng);
    snprintf(wl, sizeof wl, nt, 16);
    rc |= put(db, host, wl, expert, &rng);
    rc |= put(db, avx2, wl, NULL, &rng);
    rc |= put(db, amd, wl, expert, &rng);
    snprintf(wl, sizeof wl, nt, 40);
    rc |= put(db, host, wl, NULL, &rng);
    /* a two-thread kernel of one shape: N split across the threads (as decoding splits the
     * weights), B as given */
    snprintf(wl, sizeof wl, nt, 16);
    rc |= put_t(db, host, wl, par2, &rng, 2);
    /* the B-as-given variant of M=16 (tune --b raw): what sgemm and the drop-in run there */
    rc |= put(db, host, "matmul f32 nt M=16 N=64 K=96 epi=none b=raw", gemv, &rng);
    rc |= put(db, host, "matmul f32 nt M=16 N=64 K=96 epi=none beta=1", NULL, &rng);
    rc |= put(db, host, "matmul f32 nt M=16 N=64 K=96 epi=bias+gelu", expert, &rng);
    rc |= put(db, host, "matmul f32 nt M=16 N=64 K=96 epi=bias+silu beta=1", NULL, &rng);
    rc |= put(db, host, "matmul f32 nn M=8 N=48 K=33 epi=none", NULL, &rng);
    rc |= put(db, host, "matmul f32 nn M=8 N=48 K=33 epi=bias+relu beta=1", NULL, &rng);
    rc |= put(db, host, "bmm f32 nt B=4 G=2 M=8 N=24 K=16 epi=none", NULL, &rng);
    mct_db_close(db);
    return rc ? -1 : 0;
}

/* The writer on its own (codegen/emit.h), from tables in memory: a kernel of equal content in
 * two tables is one function; two contents whose names would collide (these two workloads'
 * 32-bit content hashes are equal, 060951ef) are two functions with distinct names; a table
 * holding one workload twice and an unusable name are refused. */
static void test_emit(const mct_cpu *other)
{
    const char *wl[] = {"matmul f32 nn M=1 N=10 K=601 epi=none",
                        "matmul f32 nn M=1 N=923 K=208 epi=none",
                        "matmul f32 nt M=16 N=64 K=96 epi=bias+gelu"};
    const char *sc[] = {"", "", expert};
    mct_sched *s[3] = {NULL};
    char why[256], err[512], out[4096];
    int ok = 1;
    for (int i = 0; i < 3; i++) {
        mct_workload w;
        ok &= mct_wl_parse(wl[i], &w, why, sizeof why) == 0 &&
              mct_sched_parse(&w, sc[i], &s[i], why, sizeof why) == 0;
    }
    CHECKF(ok, "test_emit: %s", why);
    if (!ok)
        goto done;
    mct_emit_kernel k[4] = {{s[0], 1.5, 10, "manual", "", "cc", "-O2", 0, 1},
                            {s[1], 2.5, 10, "manual", "", "cc", "-O2", 0, 1},
                            {s[2], 3.5, 10, "manual", "", "cc", "-O2", 0, 1},
                            {s[2], 4.5, 10, "manual", "", "cc", "-O2", 0, 1}};
    mct_emit_table t[2] = {{host_rec, MCT_ISA_GENERIC, k, 3}, {*other, MCT_ISA_GENERIC, k + 3, 1}};
    char odir[400];
    snprintf(odir, sizeof odir, "%s/emit", dir);
    mct_emit_opts o = {"te", odir, MCT_TOOL, "test tables", 0};
    mct_emit_report rep = {0};
    int rc = mct_emit_library(&o, t, 2, err, sizeof err, &rep);
    CHECKF(rc == 0 && rep.tables == 2 && rep.kernels == 3, "emit: rc %d, %d tables, %d kernels: "
           "%s", rc, rep.tables, rep.kernels, err);
    CHECK(check_sh(out, sizeof out, "grep -c '^static int k_' %s/te.c", odir) == 0 &&
          atoi(out) == 3);
    CHECK(check_sh(NULL, 0, "grep -q '^static int k_matmul_f32_generic_1x1_060951ef(' %s/te.c && "
                   "grep -q '^static int k_matmul_f32_generic_1x1_060951ef_2(' %s/te.c", odir,
                   odir) == 0);
    CHECK(check_sh(NULL, 0, "head -1 %s/te.h | grep -q 'generated by %s (%s), do not edit; test "
                   "tables; date 1970-01-01 00:00 UTC'", odir, MCT_TOOL, MCT_CG_VERSION) == 0);
    rc = check_sh(out, sizeof out, "cd %s && cc -std=c11 -O0 -Wall -Wextra -Werror -c te.c 2>&1",
                  odir);
    CHECKF(rc == 0, "te.c: %.2000s", out);
    /* the third kernel's workload twice in one table */
    t[0].k = k + 2;
    t[0].nk = 2;
    rc = mct_emit_library(&o, t, 1, err, sizeof err, &rep);
    CHECKF(rc == MCT_EINVAL && strstr(err, wl[2]), "twice: rc %d '%s'", rc, err);
    o.name = "9x";
    rc = mct_emit_library(&o, t, 1, err, sizeof err, &rep);
    CHECKF(rc == MCT_EINVAL && strstr(err, "'9x'"), "name: rc %d '%s'", rc, err);
done:
    for (int i = 0; i < 3; i++)
        mct_sched_destroy(s[i]);
}

static void label_of(const mct_cpu *c, char *buf, size_t len)
{
    snprintf(buf, len, "%s %d/%d %s", c->vendor, c->family, c->model,
             mct_tier_name(mct_cpu_tier_of(c)));
}

/* What forcing tier t must choose, by the documented rule (runtime/dispatch.h): among the
 * tables of exactly that tier, the one of this CPU's vendor, else the first; none: the generic
 * kernels of that tier. Derived from the records, so it holds on every host. */
static int forced_ok(mct_tier t, const char *out, char *want, size_t len)
{
    int n = 0, ok = 0;
    want[0] = 0;
    for (int pass = 0; pass < 2 && !n; pass++)
        for (int i = 0; i < 3; i++)
            if (mct_cpu_tier_of(tables[i]) == t &&
                (pass || !strcmp(tables[i]->vendor, mct_cpu_host()->vendor))) {
                char l[96];
                label_of(tables[i], l, sizeof l);
                ok |= strstr(out, l) != NULL;
                snprintf(want + strlen(want), len - strlen(want), "%s'%s'", n++ ? " or " : "", l);
            }
    if (!n) {
        snprintf(want, len, "generic %s (forced", mct_tier_name(t));
        ok = strstr(out, want) != NULL;
    }
    return ok;
}

static int has_cc(const char *cc);

/* Low-precision weights end to end: a database with this CPU's records of each format (i8 and
 * q4 without prepack, bf16 and q4 with it), `mctune gen`, the library built with gcc and clang
 * (-Wall -Wextra -Werror), and tests/gen_consumer_q.c, which prepacks from f32 and from the plain
 * layout and checks tuned and untuned shapes against OpenBLAS on the runtime's dequantized
 * weights; the debug log shows which ran. pin: "TQ_CPU=KEY " under a forced tier, else "". */
static void test_lowprec_lib(const char *mctune, const char *pin)
{
    static char out[1 << 16];
    char path[512];
    mct_db *db;
    char err[512];
    uint64_t rng = 99;
    snprintf(path, sizeof path, "%s/dbq", dir);
    if (mct_db_open(path, MCT_DB_NOSYNC, err, sizeof err, &db) < 0) {
        CHECKF(0, "%s", err);
        return;
    }
    const mct_cpu *h = &host_rec;
    int rc = mct_db_put_cpu(db, h);
    static const char *rowdot = "tile(i, 4); tile(j, 4); tile(k, 16); reorder(j0, i0, k0, i1, j1, "
        "k1); cache_write(i0); unroll(i1, 4); unroll(j1, 4); vectorize(k1)";
    rc |= put(db, h, "matmul f32 nt M=1 N=64 K=96 epi=none w=i8", gemv, &rng);
    rc |= put(db, h, "matmul f32 nt M=16 N=64 K=96 epi=bias w=bf16", expert, &rng);
    rc |= put(db, h, "matmul f32 nn M=4 N=48 K=64 epi=none w=q4g32", rowdot, &rng);
    rc |= put(db, h, "matmul f32 nt M=16 N=64 K=96 epi=none w=q4g32", expert, &rng);
    mct_db_close(db);
    CHECK(rc == 0);
    rc = check_sh(out, sizeof out, "%s gen --db %s/dbq --out %s/outq --name tq 2>&1", mctune, dir,
                  dir);
    CHECKF(rc == 0 && !strstr(out, "skipped"), "gen (low precision): %s", out);
    if (rc)
        return;
    CHECK(check_sh(out, sizeof out, "grep -c '^static int k_matmul_\\(i8\\|bf16\\|q4g32\\)_' "
                   "%s/outq/tq.c", dir) == 0 && atoi(out) == 4);
    CHECK(check_sh(NULL, 0, "grep -q 'tq_prepack_b_quantized(const char \\*fmt' %s/outq/tq.h && "
                   "grep -q 'plain layout' %s/outq/tq.h", dir, dir) == 0);
    const char *ccs[] = {"gcc", "clang"};
    for (int i = 0; i < 2; i++) {
        if ((sanitized && i) || !has_cc(ccs[i]))
            continue;
        rc = check_sh(out, sizeof out, "cd %s/outq && %s -std=c11 -O2 -Wall -Wextra -Werror -c tq.c "
                      "-o tq_%s.o 2>&1", dir, ccs[i], ccs[i]);
        CHECKF(rc == 0, "%s (low precision): %.3000s", ccs[i], out);
    }
    const char *san = sanitized ? "-fsanitize=address,undefined -fno-omit-frame-pointer" : "";
    char root[600];
    if (srcdir[0] == '/')
        snprintf(root, sizeof root, "%s/..", srcdir);
    else
        snprintf(root, sizeof root, "$OLDPWD");
    rc = check_sh(out, sizeof out, "cd %s/outq && cc -std=c11 -O1 -g %s -I. -I%s -o consumer_q "
                  "%s/tests/gen_consumer_q.c tq.c %s/runtime/quant.c %s/runtime/err.c $(pkg-config "
                  "--cflags --libs openblas 2>/dev/null || echo -lopenblas) -lm 2>&1", dir, san,
                  root, root, root, root);
    CHECKF(rc == 0, "consumer_q build: %.3000s", out);
    if (rc)
        return;
    char tq_pin[64] = "";
    if (pin[0])  /* "TK_CPU=KEY ": the same key for this library */
        snprintf(tq_pin, sizeof tq_pin, "TQ%s", pin + 2);
    rc = check_sh(out, sizeof out, "cd %s/outq && %sTQ_DEBUG=1 ./consumer_q %s 2>&1", dir, tq_pin,
                  sanitized ? "quick" : "full");
    CHECKF(rc == 0 && strstr(out, "fail=0") && strstr(out, "-> tuned k_matmul_i8_") &&
           strstr(out, "-> tuned k_matmul_bf16_") && strstr(out, "-> tuned k_matmul_q4g32_") &&
           strstr(out, "w=q4g4 M=3 N=13 K=20 -> generic") && strstr(out, "got 3263"),
           "consumer_q: %.6000s", out);
    printf("%.200s\n", out);  /* its start; the newline keeps the summary line at a line start */
}

/* The consumer of test_dot_lib: i8 weights N=37 K=1024 prepacked from f32, M = 1 and 3 against
 * the dequantized weights in double, each element within the bound of A's int8 rounding per row
 * (s_i/2 * sum_k |w(k, j)|, s_i = max_k |a(i, k)|/127) plus f32's tolerance. */
static const char *dot_consumer =
    "#include <math.h>\n#include <stdio.h>\n#include <stdlib.h>\n#include \"td.h\"\n"
    "#include \"runtime/quant.h\"\n"
    "int main(void)\n{\n"
    "    enum { N = 37, K = 1024 };\n"
    "    static float A[3 * K], B[N * K], Bd[N * K], C[3 * N];\n"
    "    static unsigned char Q[N * K + 4096];\n"
    "    unsigned long long r = 0x9e3779b97f4a7c15ull;\n"
    "    for (int i = 0; i < N * K; i++) {\n"
    "        r ^= r << 13, r ^= r >> 7, r ^= r << 17;\n"
    "        B[i] = (float)((r >> 40) & 0xffff) / 32768.0f - 1.0f;\n"
    "        if (i < 3 * K) A[i] = B[i] * 0.5f + 0.25f;\n"
    "    }\n"
    "    char err[256];\n"
    "    int fail = mct_rt_q_quantize(MCT_RT_WF_I8, 0, TD_NT, N, K, B, K, Q, err, sizeof err) |\n"
    "               mct_rt_q_dequantize(MCT_RT_WF_I8, 0, N, K, Q, Bd);\n"
    "    td_packed *P = NULL;\n"
    "    fail |= td_prepack_b_fmt(\"i8\", TD_NT, N, K, B, K, &P);\n"
    "    double worst = 0;\n"
    "    for (int M = 1; M <= 3 && !fail; M += 2) {\n"
    "        fail |= td_matmul_packed(P, M, A, K, C, N, NULL, TD_ACT_NONE, 0);\n"
    "        for (int i = 0; i < M; i++) {\n"
    "            double s = 0;\n"
    "            for (int k = 0; k < K; k++) s = fmax(s, fabs(A[i * K + k]) / 127);\n"
    "            for (int j = 0; j < N; j++) {\n"
    "                double ref = 0, sw = 0, sa = 0;\n"
    "                for (int k = 0; k < K; k++) {\n"
    "                    ref += (double)A[i * K + k] * Bd[j * K + k];\n"
    "                    sw += fabs(Bd[j * K + k]);\n"
    "                    sa += fabs((double)A[i * K + k] * Bd[j * K + k]);\n"
    "                }\n"
    "                double d = fabs(C[i * N + j] - ref) / (s / 2 * sw + 1e-4 * sa + 1e-6);\n"
    "                worst = fmax(worst, d);\n"
    "            }\n"
    "        }\n"
    "    }\n"
    "    td_packed_free(P);\n"
    "    fail = fail || !(worst <= 1);\n"
    "    printf(\"CPU: %s\\nRESULT worst=%.3f fail=%d\\n\", td_cpu(), worst, fail);\n"
    "    return fail;\n"
    "}\n";

/* The instruction each int8 dot path writes (lower.c) for a CPU of tier t with extensions x
 * there (mct_cpu_exts), none below avx2. */
static const char *dot_mark(mct_tier t, unsigned x)
{
    return t >= MCT_TIER_AVX512_BF16VNNI ? "_mm512_dpbusd_epi32"
           : t >= MCT_TIER_AVX2 && (x & MCT_EXT_AVXVNNI) ? "_mm256_dpbusd_avx_epi32"
           : t >= MCT_TIER_AVX2 ? "_mm256_maddubs_epi16" : NULL;
}

/* The ISA extensions beside the ladder in dispatch (mct_rt_choose on synthetic hosts and tables):
 * an Alder-Lake-like table (avx2 + avxvnni, its code using it: exts MCT_EXT_AVXVNNI) is no rung
 * of a host without AVX-VNNI (Zen-3-like, Haswell-like), which falls to the next table or the
 * generic kernels; by key it is refused naming the extension; a forced tier skips it; a host
 * with AVX-VNNI (the same CPU, or an avx512 one) takes it. */
static void test_ext_dispatch(const mct_cpu *adl, const mct_cpu *zen3, const mct_cpu *hsw)
{
    mct_rt_table ta = {"adl", mct_cpu_key(adl), "GenuineIntel", MCT_TIER_AVX2, MCT_ISA_AVX2, 0,
                       NULL, 0, NULL, 0, NULL, MCT_EXT_AVXVNNI};
    mct_rt_table tz = {"zen3", mct_cpu_key(zen3), "AuthenticAMD", MCT_TIER_AVX2, MCT_ISA_AVX2, 0,
                       NULL, 0, NULL, 0, NULL, 0};
    const mct_rt_table *one[] = {&ta}, *two[] = {&ta, &tz}, *pick;
    mct_rt_lib L;
    char key[17], msg[512];
    int rung, gisa, rc;
    memset(&L, 0, sizeof L);
    L.name = "te", L.env_cpu = "TE_CPU", L.ntables = 1, L.tables = one;
    mct_cpu_key_format(ta.key, key);
    CHECK(mct_cpu_exts(adl, MCT_TIER_AVX2) == MCT_EXT_AVXVNNI && !mct_cpu_exts(zen3,
          MCT_TIER_AVX2) && !mct_cpu_exts(hsw, MCT_TIER_AVX2));
    /* the same tier, yet code the host cannot run: generic */
    rc = mct_rt_choose(&L, zen3, MCT_TIER_AVX2, NULL, &pick, &rung, &gisa, msg, sizeof msg);
    CHECKF(rc == 0 && !pick && rung == MCT_RT_RUNG_GENERIC && gisa == MCT_ISA_AVX2,
           "Zen 3 host, AVX-VNNI table only: rc %d, table %s", rc, pick ? pick->label : "none");
    rc = mct_rt_choose(&L, hsw, MCT_TIER_AVX2, NULL, &pick, &rung, &gisa, msg, sizeof msg);
    CHECK(rc == 0 && !pick);  /* same vendor and tier: still not */
    rc = mct_rt_choose(&L, zen3, MCT_TIER_AVX2, key, &pick, &rung, &gisa, msg, sizeof msg);
    CHECKF(rc == MCT_EUNSUPPORTED && !pick && strstr(msg, "uses avxvnni"), "by key: %d %s", rc,
           msg);
    rc = mct_rt_choose(&L, adl, MCT_TIER_AVX2, NULL, &pick, &rung, &gisa, msg, sizeof msg);
    CHECK(rc == 0 && pick == &ta && rung == MCT_RT_RUNG_EXACT);
    rc = mct_rt_choose(&L, adl, MCT_TIER_AVX2, key, &pick, &rung, &gisa, msg, sizeof msg);
    CHECK(rc == 0 && pick == &ta && rung == MCT_RT_RUNG_FORCED);
    /* the next rung: the Zen 3 table, for either host without AVX-VNNI */
    L.ntables = 2, L.tables = two;
    rc = mct_rt_choose(&L, hsw, MCT_TIER_AVX2, NULL, &pick, &rung, &gisa, msg, sizeof msg);
    CHECKF(rc == 0 && pick == &tz && rung == MCT_RT_RUNG_TIER, "Haswell host: %s rung %d",
           pick ? pick->label : "none", rung);
    rc = mct_rt_choose(&L, hsw, MCT_TIER_AVX2, "avx2", &pick, &rung, &gisa, msg, sizeof msg);
    CHECK(rc == 0 && pick == &tz && rung == MCT_RT_RUNG_FORCED);
    mct_cpu zen3b = *zen3;  /* another Zen 3 stepping's key: same vendor and tier */
    zen3b.model = 80;
    rc = mct_rt_choose(&L, &zen3b, MCT_TIER_AVX2, NULL, &pick, &rung, &gisa, msg, sizeof msg);
    CHECK(rc == 0 && pick == &tz && rung == MCT_RT_RUNG_VENDOR_TIER);
    /* an AVX-512 host restricted to avx2 keeps AVX-VNNI (a Sapphire-Rapids-like record) */
    mct_cpu spr = *adl;
    set_feats(&spr, avx512_feats);
    spr.model = 143;
    CHECK(mct_cpu_tier_of(&spr) == MCT_TIER_AVX512 && mct_cpu_exts(&spr, MCT_TIER_AVX2) ==
          MCT_EXT_AVXVNNI);
    rc = mct_rt_choose(&L, &spr, MCT_TIER_AVX2, NULL, &pick, &rung, &gisa, msg, sizeof msg);
    CHECK(rc == 0 && pick == &ta && rung == MCT_RT_RUNG_VENDOR_TIER);
}

/* A shipped library runs the code that was measured: this CPU's widen(B, dot) i8 kernel is
 * lowered for the CPU's own tier (the harness's target), so its C holds that tier's dot
 * instruction; synthetic tables of an avx512-bf16-vnni and an avx512 CPU hold the same schedule
 * (the VNNI one's vpdpbusd, the avx512 one's vpmaddubsw). The ladder picks this CPU's table;
 * forcing a lower tier runs that tier's table or generic kernels; a table needing a tier above
 * the host is never chosen, also when forced by key (mct_rt_choose on a synthetic host). Every
 * run is within the bound of A's rounding. */
static void test_dot_lib(const char *mctune, const char *pin)
{
    static char out[1 << 16];
    char path[512], err[512], name[128] = "";
    static const char *dot = "tile(j, 8); tile(k, 64); reorder(i, j0, k0, j1, k1); "
        "cache_write(j0); unroll(j1, 8); vectorize(k1); widen(B, dot)";
    static const char *vnni_feats[] = {"avx512vnni", "avx512bf16", NULL};
    const char *wl = "matmul f32 nt M=1 N=37 K=1024 epi=none w=i8";
    mct_cpu vnni, a512;
    memset(&vnni, 0, sizeof vnni);
    snprintf(vnni.vendor, sizeof vnni.vendor, "GenuineIntel");
    snprintf(vnni.brand, sizeof vnni.brand, "synthetic avx512-bf16-vnni CPU");
    vnni.family = 6, vnni.model = 240;
    set_feats(&vnni, avx2_feats);
    set_feats(&vnni, avx512_feats);
    a512 = vnni;
    a512.model = 241;
    snprintf(a512.brand, sizeof a512.brand, "synthetic avx512 CPU");
    set_feats(&vnni, vnni_feats);
    CHECK(mct_cpu_tier_of(&vnni) == MCT_TIER_AVX512_BF16VNNI &&
          mct_cpu_tier_of(&a512) == MCT_TIER_AVX512);
    /* avx2 CPUs with and without AVX-VNNI: Alder-Lake-like, Zen-3-like, Haswell-like */
    static const char *adl_feats[] = {"avxvnni", NULL};
    mct_cpu adl, zen3, hsw;
    memset(&adl, 0, sizeof adl);
    snprintf(adl.vendor, sizeof adl.vendor, "GenuineIntel");
    snprintf(adl.brand, sizeof adl.brand, "synthetic avx2 + avx-vnni CPU");
    adl.family = 6, adl.model = 151;
    set_feats(&adl, avx2_feats);
    hsw = adl;
    hsw.model = 60;
    zen3 = hsw;
    snprintf(zen3.vendor, sizeof zen3.vendor, "AuthenticAMD");
    snprintf(zen3.brand, sizeof zen3.brand, "synthetic avx2 CPU");
    zen3.family = 25, zen3.model = 33;
    set_feats(&adl, adl_feats);
    CHECK(mct_cpu_tier_of(&adl) == MCT_TIER_AVX2 && mct_cpu_tier_of(&zen3) == MCT_TIER_AVX2);
    test_ext_dispatch(&adl, &zen3, &hsw);
    /* dispatch on a synthetic avx512 host: the VNNI table is no rung and refused by key */
    mct_rt_table tv = {"vnni", mct_cpu_key(&vnni), "GenuineIntel", MCT_TIER_AVX512_BF16VNNI,
                       MCT_ISA_AVX512, 0, NULL, 0, NULL, 0, NULL, 0};
    const mct_rt_table *tl[] = {&tv}, *pick = &tv;
    mct_rt_lib L;
    memset(&L, 0, sizeof L);
    L.name = "td", L.env_cpu = "TD_CPU", L.ntables = 1, L.tables = tl;
    char key[17], msg[512];
    int rung, gisa;
    mct_cpu_key_format(tv.key, key);
    CHECK(mct_isa_code_tier(MCT_ISA_AVX512, MCT_TIER_AVX512_BF16VNNI) ==
          MCT_TIER_AVX512_BF16VNNI && mct_isa_code_tier(MCT_ISA_AVX2, MCT_TIER_AMX) ==
          MCT_TIER_AVX2);
    CHECK(mct_rt_choose(&L, &a512, MCT_TIER_AVX512, NULL, &pick, &rung, &gisa, msg, sizeof msg)
          == 0 && !pick && rung == MCT_RT_RUNG_GENERIC && gisa == MCT_ISA_AVX512);
    int rc = mct_rt_choose(&L, &a512, MCT_TIER_AVX512, key, &pick, &rung, &gisa, msg, sizeof msg);
    CHECKF(rc == MCT_EUNSUPPORTED && !pick && strstr(msg, "needs avx512-bf16-vnni"),
           "forced key of a VNNI table on avx512: rc %d %s", rc, msg);
    rc = mct_rt_choose(&L, &vnni, MCT_TIER_AVX512_BF16VNNI, key, &pick, &rung, &gisa, msg,
                       sizeof msg);
    CHECKF(rc == 0 && pick == &tv && rung == MCT_RT_RUNG_FORCED, "forced on VNNI: %d %s", rc,
           msg);

    mct_db *db;
    uint64_t rng = 7;
    snprintf(path, sizeof path, "%s/dbd", dir);
    if (mct_db_open(path, MCT_DB_NOSYNC, err, sizeof err, &db) < 0) {
        CHECKF(0, "%s", err);
        return;
    }
    const mct_cpu *h = &host_rec;
    rc = mct_db_put_cpu(db, h) | mct_db_put_cpu(db, &vnni) | mct_db_put_cpu(db, &a512);
    rc |= put(db, h, wl, dot, &rng) | put(db, &vnni, wl, dot, &rng) | put(db, &a512, wl, dot, &rng);
    rc |= mct_db_put_cpu(db, &adl) | mct_db_put_cpu(db, &zen3);
    rc |= put(db, &adl, wl, dot, &rng) | put(db, &zen3, wl, dot, &rng);
    mct_db_close(db);
    CHECK(rc == 0);
    rc = check_sh(out, sizeof out, "%s gen --db %s --out %s/outd --name td --cpus all 2>&1",
                  mctune, path, dir);
    CHECKF(rc == 0 && !strstr(out, "skipped"), "gen (dot): %s", out);
    if (rc)
        return;
    /* each table's kernel carries its tier's instruction (and its CPU's extension), and the
     * table of the AVX-VNNI CPU names the extension its code uses (exts 1u, its label's line) */
    mct_tier ht = mct_cpu_tier_of(h);
    unsigned hx = mct_cpu_exts(h, ht);
    CHECK(check_sh(NULL, 0, "grep -q _mm512_dpbusd_epi32 %s/outd/td.c && "
                   "grep -q _mm256_maddubs_epi16 %s/outd/td.c && "
                   "grep -q _mm256_dpbusd_avx_epi32 %s/outd/td.c", dir, dir, dir) == 0);
    rc = check_sh(out, sizeof out, "grep '6/151 avx2' %s/outd/td.c | grep -c ', 1u};$'; "
                  "grep '25/33 avx2' %s/outd/td.c | grep -c ', 0u};$'; grep -c 'tier avx2, "
                  "using avxvnni' %s/outd/td.c", dir, dir, dir);
    CHECKF(!strncmp(out, "1\n1\n", 4) && atoi(out + 4) >= 1, "the tables' extension masks: %s",
           out);
    const char *ccs[] = {"gcc", "clang"};
    for (int i = 0; i < 2; i++) {
        if ((sanitized && i) || !has_cc(ccs[i]))
            continue;
        rc = check_sh(out, sizeof out, "cd %s/outd && %s -std=c11 -O2 -Wall -Wextra -Werror -c "
                      "td.c -o td_%s.o 2>&1", dir, ccs[i], ccs[i]);
        CHECKF(rc == 0, "%s (dot): %.3000s", ccs[i], out);
    }
    snprintf(path, sizeof path, "%s/outd/dot_consumer.c", dir);
    FILE *f = fopen(path, "w");
    CHECK(f && fputs(dot_consumer, f) >= 0 && fclose(f) == 0);
    const char *san = sanitized ? "-fsanitize=address,undefined -fno-omit-frame-pointer" : "";
    char root[600];
    if (srcdir[0] == '/')
        snprintf(root, sizeof root, "%s/..", srcdir);
    else
        snprintf(root, sizeof root, "$OLDPWD");
    rc = check_sh(out, sizeof out, "cd %s/outd && cc -std=c11 -O1 -g %s -I. -I%s -o consumer_d "
                  "dot_consumer.c td.c %s/runtime/quant.c %s/runtime/err.c -lm 2>&1", dir, san,
                  root, root, root);
    CHECKF(rc == 0, "dot consumer build: %.3000s", out);
    if (rc)
        return;
    char td_pin[64] = "";
    if (pin[0])  /* "TK_CPU=KEY ": the same key for this library */
        snprintf(td_pin, sizeof td_pin, "TD%s", pin + 2);
    rc = check_sh(out, sizeof out, "cd %s/outd && %sTD_DEBUG=1 ./consumer_d 2>&1", dir, td_pin);
    const char *t = strstr(out, "-> tuned ");
    if (t)
        sscanf(t + 9, "%127[a-z0-9_]", name);
    char lab[96];
    label_of(h, lab, sizeof lab);
    CHECKF(rc == 0 && strstr(out, "fail=0") && name[0] && strstr(out, lab), "dot consumer: "
           "%.3000s", out);
    printf("dot kernel: %s, tier %s\n", name, mct_tier_name(ht));
    /* the kernel that ran holds the host tier's dot instruction */
    if (name[0] && dot_mark(ht, hx)) {
        rc = check_sh(out, sizeof out, "awk '/^\\/\\* %s$/{p=1; next} /^\\/\\* (k_|====)/{p=0} "
                      "p' %s/outd/td.c | grep -c %s", name, dir, dot_mark(ht, hx));
        CHECKF(rc == 0 && atoi(out) > 0, "%s (tier %s) holds %s", name, mct_tier_name(ht),
               dot_mark(ht, hx));
        if (ht >= MCT_TIER_AVX512_BF16VNNI || (hx & MCT_EXT_AVXVNNI)) {
            rc = check_sh(out, sizeof out, "awk '/^\\/\\* %s$/{p=1; next} /^\\/\\* (k_|====)/{p=0}"
                          " p' %s/outd/td.c | grep -c _mm256_maddubs_epi16", name, dir);
            CHECKF(atoi(out) == 0, "%s: not the avx2 path", name);
        }
    }
    if (pin[0])
        return;  /* under MCTUNE_TIER the library is pinned to the restricted record */
    /* forced lower tiers: that tier's table (the synthetic ones): at avx2 the AVX-VNNI CPU's
     * where this host has AVX-VNNI there and is of its vendor, else the other avx2 table */
    int adl_ok = (mct_cpu_exts(h, MCT_TIER_AVX2) & MCT_EXT_AVXVNNI) &&
                 !strcmp(h->vendor, "GenuineIntel");
    static const struct { const char *tier; const char *want; } fo[] = {
        {"avx512-bf16-vnni", "6/240 avx512-bf16-vnni"}, {"avx512", "6/241 avx512"},
        {"avx2", "6/151 avx2"}, {"avx2", "25/33 avx2"}};
    for (size_t i = 0; i < sizeof fo / sizeof fo[0]; i++) {
        mct_tier ft;
        mct_tier_parse(fo[i].tier, &ft);
        if (ft >= ht || (i >= 2 && (i == 2) != adl_ok))  /* at ht: the host's own table */
            continue;
        rc = check_sh(out, sizeof out, "cd %s/outd && TD_CPU=%s TD_DEBUG=1 ./consumer_d 2>&1", dir,
                      fo[i].tier);
        CHECKF(rc == 0 && strstr(out, "fail=0") && strstr(out, fo[i].want) &&
               !strstr(out, "ignored"), "TD_CPU=%s: want '%s': %.3000s", fo[i].tier, fo[i].want,
               out);
    }
    /* the AVX-VNNI table by key on a host without AVX-VNNI is refused (the ladder's choice runs;
     * an AVX-VNNI host runs it and stays within the bound) */
    mct_cpu_key_format(mct_cpu_key(&adl), key);
    rc = check_sh(out, sizeof out, "cd %s/outd && TD_CPU=%s ./consumer_d 2>&1", dir, key);
    if (ht >= MCT_TIER_AVX2 && !(mct_cpu_exts(h, ht) & MCT_EXT_AVXVNNI))
        CHECKF(rc == 0 && strstr(out, "uses avxvnni, which this CPU lacks") &&
               strstr(out, "fail=0"), "%.3000s", out);
    else if (ht >= MCT_TIER_AVX2)
        CHECKF(rc == 0 && strstr(out, "6/151 avx2") && strstr(out, "fail=0"), "%.3000s", out);
    /* the VNNI table by key on a host without VNNI is refused (the ladder's choice runs) */
    if (ht < MCT_TIER_AVX512_BF16VNNI) {
        mct_cpu_key_format(mct_cpu_key(&vnni), key);
        rc = check_sh(out, sizeof out, "cd %s/outd && TD_CPU=%s ./consumer_d 2>&1", dir, key);
        CHECKF(rc == 0 && strstr(out, "needs avx512-bf16-vnni") && strstr(out, "fail=0"),
               "%.3000s", out);
    }
}

static int has_cc(const char *cc)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", cc);
    return system(cmd) == 0;
}

static int last_cpu_fn(const mct_cpu *c, void *ctx)
{
    *(uint64_t *)ctx = mct_cpu_key(c);
    return 0;
}

/* A database with more CPU records than a library holds tables (70): gen reads every record,
 * so the table of the record read last is found; selecting them all is refused. */
static void test_many_cpus(const char *mctune)
{
    char path[600], cmd[1400], out[4096], key[17] = "";
    snprintf(path, sizeof path, "%s/many-db", dir);
    mct_db *db = NULL;
    uint64_t rng = 99, last = 0;
    CHECK(mct_db_open(path, MCT_DB_NOSYNC, NULL, 0, &db) == 0);
    if (!db)
        return;
    int rc = 0;
    for (int i = 0; i < 70; i++) {
        mct_cpu c;
        memset(&c, 0, sizeof c);
        snprintf(c.vendor, sizeof c.vendor, "GenuineIntel");
        snprintf(c.brand, sizeof c.brand, "synthetic CPU %d", i);
        c.family = 6, c.model = 100 + i;
        set_feats(&c, avx2_feats);
        rc |= mct_db_put_cpu(db, &c);
        rc |= put(db, &c, "matmul f32 nt M=4 N=32 K=48 epi=none", NULL, &rng);
    }
    rc |= mct_db_iter_cpus(db, last_cpu_fn, &last);
    mct_db_close(db);
    CHECK(rc == 0);
    mct_cpu_key_format(last, key);
    snprintf(cmd, sizeof cmd, "%s gen --db %s --out %s/many-out --name tm --cpus %s 2>&1",
             mctune, path, dir, key);
    rc = check_sh(out, sizeof out, "%s", cmd);
    CHECKF(rc == 0, "the 70th CPU record (key %s): %.2000s", key, out);
    snprintf(cmd, sizeof cmd, "%s gen --db %s --out %s/many-out --name tm --cpus all 2>&1",
             mctune, path, dir);
    rc = check_sh(out, sizeof out, "%s", cmd);
    CHECKF(rc != 0 && strstr(out, "more than 64 CPUs"), "%.2000s", out);
}

int main(void)
{
    const char *mctune = getenv("MCTUNE");
    static char out[1 << 16];
    char path[512], cmd[1024];
    mct_cpu avx2, amd;
    char amdkey[17], hostkey[17];
    mct_tier ht = mct_cpu_tier();
    int forced = ht < mct_cpu_tier_of(mct_cpu_host());
    mct_cpu_restrict(mct_cpu_host(), ht, &host_rec);
    sanitized = getenv("MCTUNE_SANITIZED") != NULL;
    if (!mctune)
        mctune = "build/mctune";
    snprintf(srcdir, sizeof srcdir, "%s", __FILE__);
    *strrchr(srcdir, '/') = 0;
    snprintf(dir, sizeof dir, "/tmp/mctune-test-gen-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        CHECK(0);
        return check_done();
    }
    snprintf(path, sizeof path, "%s/db", dir);
    CHECK(build_db(path, &avx2, &amd) == 0);
    test_emit(&avx2);
    test_many_cpus(mctune);
    mct_cpu_key_format(mct_cpu_key(&amd), amdkey);
    mct_cpu_key_format(mct_cpu_key(&host_rec), hostkey);
    /* under a forced tier the host's own table is the restricted record: pin it, as a user
     * would pin a table with NAME_CPU, and expect the "forced" rung instead of "exact CPU" */
    char pin[64] = "";
    const char *rung = forced ? "(forced" : "exact CPU";
    if (forced)
        snprintf(pin, sizeof pin, "TK_CPU=%s ", hostkey);
    setenv("TK_TEST_HOSTKEY", hostkey, 1);
    printf("host tier used: %s%s\n", mct_tier_name(ht), forced ? " (forced by MCTUNE_TIER)" : "");

    /* bad invocations are refused with a message */
    CHECK(check_sh(out, sizeof out, "%s gen --db %s/db --out %s/out 2>&1", mctune, dir, dir) == 2 &&
          strstr(out, "--name"));
    CHECK(check_sh(out, sizeof out, "%s gen --db %s/db --out %s/out --name 9x 2>&1", mctune, dir, dir)
          == 1 && strstr(out, "'9x'"));
    CHECK(check_sh(out, sizeof out, "%s gen --db %s/db --out %s/out --name tk --cpus 12 2>&1", mctune,
             dir, dir) == 1 && strstr(out, "'12'"));

    /* generate */
    int rc = check_sh(out, sizeof out, "%s gen --db %s/db --out %s/out --name tk 2>&1", mctune, dir, dir);
    CHECKF(rc == 0 && strstr(out, "3 CPU tables"), "gen: %s", out);
    if (rc) {
        check_sh(NULL, 0, "rm -rf %s", dir);
        return check_done();
    }
    snprintf(path, sizeof path, "%s/out/tk.c", dir);
    FILE *f = fopen(path, "r");
    char line[512] = "";
    CHECK(f && fgets(line, sizeof line, f) && strstr(line, "generated by mctune") &&
          strstr(line, "signature") && strstr(line, "date"));
    if (f)
        fclose(f);
    CHECK(check_sh(out, sizeof out, "grep -c '^ \\* schedule: ' %s/out/tk.c", dir) == 0 &&
          atoi(out) >= 10);
    CHECK(check_sh(out, sizeof out, "grep -l 'k_matmul_f32_avx2_' %s/out/tk.c", dir) == 0);
    CHECK(check_sh(NULL, 0, "head -1 %s/out/tk.h | grep -q 'do not edit' && head -1 %s/out/Makefile |"
             " grep -q generated && grep -q '^Libs: .*-ltk' %s/out/tk.pc", dir, dir, dir) == 0);

    /* builds without warnings, with gcc and clang, no -march */
    const char *ccs[] = {"gcc", "clang"};
    for (int i = 0; i < 2; i++) {
        if ((sanitized && i) || !has_cc(ccs[i]))
            continue;
        rc = check_sh(out, sizeof out, "cd %s/out && %s -std=c11 -O2 -Wall -Wextra -Werror -c tk.c -o "
                "tk_%s.o 2>&1", dir, ccs[i], ccs[i]);
        CHECKF(rc == 0, "%s: %.3000s", ccs[i], out);
    }
    /* the generated Makefile: static and shared library, install */
    if (!sanitized) {
        rc = check_sh(out, sizeof out, "cd %s/out && make -s && make -s install PREFIX=%s/inst 2>&1 && "
                "PKG_CONFIG_PATH=%s/inst/lib/pkgconfig pkg-config --libs tk", dir, dir, dir);
        CHECKF(rc == 0 && strstr(out, "-ltk") && access(path, R_OK) == 0, "make: %s", out);
    }

    /* the consumer */
    const char *san = sanitized ? "-fsanitize=address,undefined -fno-omit-frame-pointer" : "";
    snprintf(cmd, sizeof cmd, "cd %s/out && cc -std=c11 -O1 -g %s -I. -o consumer "
             "%s/gen_consumer.c tk.c $(pkg-config --cflags --libs openblas 2>/dev/null || echo "
             "-lopenblas) -lm 2>&1", dir, san, srcdir[0] == '/' ? srcdir : "$OLDPWD/tests");
    rc = check_sh(out, sizeof out, "%s", cmd);
    CHECKF(rc == 0, "consumer build: %.3000s", out);
    if (rc) {
        check_sh(NULL, 0, "rm -rf %s", dir);
        return check_done();
    }
    rc = check_sh(out, sizeof out, "cd %s/out && %s./consumer %s 2>&1", dir, pin,
                  sanitized ? "quick" : "full");
    CHECKF(rc == 0 && strstr(out, "RESULT pass=") && strstr(out, "fail=0") &&
           strstr(out, rung), "consumer: %.4000s", out);
    printf("%.200s", out);

    /* forcing each tier the host supports selects that table (or the generic kernels of that
     * tier) and stays correct */
    static const char *tiers[] = {"generic", "sse4.2", "avx2", "avx512"};
    for (int t = 0; t < 4; t++) {
        if (t > (int)ht || (sanitized && t != MCT_TIER_AVX2))
            continue;
        rc = check_sh(out, sizeof out, "cd %s/out && TK_CPU=%s ./consumer quick 2>&1", dir, tiers[t]);
        char want[256];
        int picked = forced_ok((mct_tier)t, out, want, sizeof want);
        CHECKF(rc == 0 && strstr(out, "fail=0") && picked && !strstr(out, "ignored"),
               "TK_CPU=%s: want '%s' in: %.3000s", tiers[t], want, out);
    }
    /* a CPU key: the other vendor's table */
    rc = check_sh(out, sizeof out, "cd %s/out && TK_CPU=%s ./consumer quick 2>&1", dir, amdkey);
    CHECKF(rc == 0 && strstr(out, "fail=0") && strstr(out, "AuthenticAMD"), "%.3000s", out);
    /* refusals: a tier the host lacks, an unknown key, nonsense; the ladder's choice is used */
    if (mct_cpu_tier_of(mct_cpu_host()) < MCT_TIER_AMX) {
        rc = check_sh(out, sizeof out, "cd %s/out && TK_CPU=amx ./consumer quick 2>&1", dir);
        CHECKF(rc == 0 && strstr(out, "TK_CPU=amx: this CPU supports only up to") &&
               strstr(out, forced ? "generic" : "exact CPU") && strstr(out, "fail=0"), "%.3000s",
               out);
    }
    rc = check_sh(out, sizeof out, "cd %s/out && TK_CPU=00000000deadbeef ./consumer quick 2>&1", dir);
    CHECKF(rc == 0 && strstr(out, "no table for that CPU key") && strstr(out, "fail=0"), "%.3000s",
           out);
    rc = check_sh(out, sizeof out, "cd %s/out && TK_CPU=fast ./consumer quick 2>&1", dir);
    CHECKF(rc == 0 && strstr(out, "neither a CPU key") && strstr(out, "fail=0"), "%.3000s", out);
    /* debug log: the choice, tuned kernels and fallbacks */
    rc = check_sh(out, sizeof out, "cd %s/out && %sTK_DEBUG=1 ./consumer quick 2>&1", dir, pin);
    CHECKF(rc == 0 && strstr(out, "tk: using") && strstr(out, "-> tuned k_matmul_f32_") &&
           strstr(out, "-> generic") && strstr(out, hostkey), "%.3000s", out);

    /* thread budgets: built with OpenMP (gcc), a budget of 2 runs the two-thread kernel, a
     * budget of 1 (OpenMP's maximum, or TK_TEST_THREADS through tk_set_num_threads) the
     * one-thread kernels; every answer stays right */
    if (!sanitized) {
        rc = check_sh(out, sizeof out, "cd %s/out && gcc -std=c11 -O1 -fopenmp -I. -o consumer_omp "
                "%s/gen_consumer.c tk.c $(pkg-config --cflags --libs openblas 2>/dev/null || "
                "echo -lopenblas) -lm 2>&1", dir, srcdir[0] == '/' ? srcdir : "$OLDPWD/tests");
        CHECKF(rc == 0, "consumer (OpenMP) build: %.3000s", out);
        static const struct { const char *env; int two; } tb[] = {
            {"OMP_NUM_THREADS=2", 1}, {"OMP_NUM_THREADS=1", 0},
            {"OMP_NUM_THREADS=2 TK_TEST_THREADS=1", 0}, {"OMP_NUM_THREADS=1 TK_TEST_THREADS=4", 1},
            {"OMP_NUM_THREADS=3", 1}};
        for (size_t q = 0; q < sizeof tb / sizeof tb[0]; q++) {
            rc = check_sh(out, sizeof out, "cd %s/out && %s%s TK_DEBUG=1 ./consumer_omp quick "
                          "2>&1", dir, pin, tb[q].env);
            int two = strstr(out, "N=64 K=96 -> tuned k_matmul_f32_") && strstr(out, "_t2_") &&
                      strstr(out, "2 threads");
            CHECKF(rc == 0 && strstr(out, "fail=0") && two == tb[q].two, "%s: %.3000s",
                   tb[q].env, out);
        }
    }

    /* cblas drop-in: OpenBLAS program, generated library preloaded */
    if (!sanitized) {
        rc = check_sh(out, sizeof out, "cd %s/out && cc -std=c11 -O2 -fPIC -shared -DTK_PROVIDE_CBLAS "
                "-Wall -Wextra -Werror -o libtkblas.so tk.c 2>&1 && cc -std=c11 -O1 -I. -o dropin "
                "%s/gen_consumer.c libtk.a $(pkg-config --cflags --libs openblas 2>/dev/null || "
                "echo -lopenblas) -lm 2>&1", dir, srcdir[0] == '/' ? srcdir : "$OLDPWD/tests");
        CHECKF(rc == 0, "drop-in build: %.3000s", out);
        rc = check_sh(out, sizeof out, "cd %s/out && %sTK_DEBUG=1 LD_PRELOAD=./libtkblas.so ./dropin "
                "dropin 2>&1", dir, pin);
        /* the drop-in never packs B on a call: M=16's packed kernel prepacks B, so the call
         * runs the kernel tuned for a B as given (b=raw) */
        CHECKF(rc == 0 && strstr(out, "fail=0") &&
               strstr(out, "sgemm nt M=16 N=64 K=96 -> tuned") && strstr(out, "M bucket 16") &&
               !strstr(out, "B packed on this call") && !strstr(out, "-> generic"),
               "%.3000s", out);
        /* without the preload: OpenBLAS alone, same answers */
        rc = check_sh(out, sizeof out, "cd %s/out && TK_DEBUG=1 ./dropin dropin 2>&1", dir);
        CHECKF(rc == 0 && strstr(out, "fail=0") && !strstr(out, "-> tuned k_"), "%.3000s", out);
    }
    test_lowprec_lib(mctune, pin);
    test_dot_lib(mctune, pin);
    check_sh(NULL, 0, "rm -rf %s", dir);
    return check_done();
}
