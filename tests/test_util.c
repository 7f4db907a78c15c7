/* The shared pieces every module calls: the growable string and file reads (codegen/text.h),
 * child processes (tuner/proc.h), and the rules written once (nearest M, the CPU ladder, the
 * workload family, the kernel ABI text). */
#include "tests/check.h"

#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "codegen/codegen.h"
#include "codegen/text.h"
#include "runtime/dispatch.h"
#include "tuner/proc.h"

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void test_str(void)
{
    mct_str b = {0};
    CHECK(b.s == NULL && b.n == 0);
    mct_str_puts(&b, "tile(i, ");
    mct_str_addf(&b, "%d, %d)", 64, 8);
    mct_str_add(&b, "; xyz", 1);
    CHECK(b.n == strlen("tile(i, 64, 8);") && !strcmp(b.s, "tile(i, 64, 8);"));
    /* growth across many doublings keeps every byte */
    for (int i = 0; i < 10000; i++)
        mct_str_addf(&b, "%04d", i % 10000);
    CHECK(b.n == 15 + 40000 && !memcmp(b.s + 15, "0000000100020003", 16) &&
          !strcmp(b.s + b.n - 4, "9999"));
    char *t = mct_str_take(&b);
    CHECK(t && strlen(t) == 40015 && b.s == NULL && b.n == 0);
    free(t);
    /* an empty string is still a string */
    t = mct_str_take(&b);
    CHECK(t && t[0] == 0);
    free(t);
    /* sticky oom: later appends do nothing and take gives NULL */
    mct_str_puts(&b, "abc");
    b.oom = 1;
    mct_str_puts(&b, "def");
    CHECK(b.n == 3);
    CHECK(mct_str_take(&b) == NULL && b.s == NULL);
}

static void test_slurp(void)
{
    char dir[] = "/tmp/mct-util-XXXXXX", path[256], err[512];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/f.txt", dir);
    FILE *f = fopen(path, "wb");
    for (int i = 0; i < 50000; i++)
        fputc('a' + i % 26, f);
    fputc(0, f);
    fputs("tail", f);
    fclose(f);
    char *s;
    size_t n;
    CHECK(mct_slurp(path, 0, &s, &n, err, sizeof err) == 0 && n == 50005 && s[n] == 0 &&
          s[50000] == 0 && !strcmp(s + 50001, "tail") && s[26] == 'a');
    free(s);
    CHECK(mct_slurp(path, 1000, &s, &n, err, sizeof err) == MCT_ERANGE && s == NULL &&
          strstr(err, path) && strstr(err, "1000"));
    CHECK(mct_slurp(dir, 0, &s, NULL, err, sizeof err) == MCT_EINVAL && strstr(err, "directory"));
    snprintf(path, sizeof path, "%s/none", dir);
    CHECK(mct_slurp(path, 0, &s, NULL, err, sizeof err) == MCT_EIO && strstr(err, path) &&
          strstr(err, "No such file"));
    CHECK(mct_slurp(path, 0, &s, NULL, NULL, 0) == MCT_EIO);
    check_sh(NULL, 0, "rm -rf %s", dir);
}

static void test_proc(void)
{
    mct_proc_result r;
    /* stdin in, stdout out */
    char *cat[] = {"cat", NULL};
    mct_proc_io io = {.in = "hello\nworld\n", .in_len = 12, .out_max = 1024, .err_max = 256};
    CHECK(mct_proc_run(cat, &io, &r) == 0 && mct_proc_ok(r.status) && r.out_len == 12 &&
          !strcmp(r.out, "hello\nworld\n") && r.err && r.err_len == 0 && !r.timed_out);
    mct_proc_result_free(&r);
    /* exit code, stderr kept up to its cap */
    char *sh1[] = {"/bin/sh", "-c", "echo out; echo 0123456789abcdef >&2; exit 3", NULL};
    mct_proc_io io2 = {.out_max = 64, .err_max = 8};
    CHECK(mct_proc_run(sh1, &io2, &r) == 0 && WIFEXITED(r.status) && WEXITSTATUS(r.status) == 3 &&
          !mct_proc_ok(r.status) && !strcmp(r.out, "out\n") && !strcmp(r.err, "01234567"));
    mct_proc_result_free(&r);
    /* a timeout kills the whole group: the sleep started by the shell dies too */
    char *sh2[] = {"/bin/sh", "-c", "sleep 30 & sleep 30; echo never", NULL};
    mct_proc_io io3 = {.out_max = 64, .timeout_s = 0.3};
    double t0 = now_s();
    CHECK(mct_proc_run(sh2, &io3, &r) == 0 && r.timed_out && r.out_len == 0);
    CHECK(now_s() - t0 < 5);
    mct_proc_result_free(&r);
    /* what a command leaves running in its group is killed when it exits */
    char dir[] = "/tmp/mct-util-bg-XXXXXX", cmd[512];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(cmd, sizeof cmd, "(sleep 1; touch %s/late) & exit 0", dir);
    char *sh3[] = {"/bin/sh", "-c", cmd, NULL};
    mct_proc_io io6 = {.timeout_s = 20};
    CHECK(mct_proc_run(sh3, &io6, &r) == 0 && mct_proc_ok(r.status) && !r.timed_out);
    mct_proc_result_free(&r);
    snprintf(cmd, sizeof cmd, "sleep 2; test -e %s/late", dir);
    CHECK(check_sh(NULL, 0, "%s", cmd) != 0);  /* the background job never ran to its end */
    check_sh(NULL, 0, "rm -rf %s", dir);
    /* output over the cap stops the child */
    char *yes[] = {"yes", NULL};
    mct_proc_io io4 = {.out_max = 100000, .timeout_s = 20};
    CHECK(mct_proc_run(yes, &io4, &r) == 0 && r.out_over && r.out_len == 100000 && !r.timed_out);
    mct_proc_result_free(&r);
    /* a child that never reads a large stdin neither blocks nor kills the caller (SIGPIPE) */
    size_t big = 4 << 20;
    char *in = malloc(big);
    memset(in, 'x', big);
    char *tru[] = {"true", NULL};
    mct_proc_io io5 = {.in = in, .in_len = big, .timeout_s = 20};
    CHECK(mct_proc_run(tru, &io5, &r) == 0 && mct_proc_ok(r.status) && !r.timed_out);
    mct_proc_result_free(&r);
    free(in);
    /* not on PATH */
    char *none[] = {"mct-no-such-program-xyz", NULL};
    CHECK(mct_proc_run(none, NULL, &r) == MCT_ENOTFOUND);
    char *w = mct_proc_which("sh");
    CHECK(w && w[0] == '/' && access(w, X_OK) == 0);
    free(w);
    CHECK(mct_proc_which("/nonexistent/sh") == NULL);
    /* spawn + wait with a limit */
    pid_t pid;
    char *sl[] = {"sleep", "30", NULL};
    char *sp = mct_proc_which("sleep");
    int st, to;
    CHECK(mct_proc_spawn(sp, sl, NULL, NULL, 0, &pid) == 0);
    CHECK(mct_proc_wait(pid, 0.2, &st, &to) == 0 && to && WIFSIGNALED(st));
    free(sp);
}

static size_t psz(long n, long k) { return (size_t)(n * k); }

static void test_rules(void)
{
    /* nearest M on a log scale, ties to the larger: M=4 between 1 and 16 is a tie -> 16 */
    CHECK(mct_rt_m_nearer(16, 1, 4) && !mct_rt_m_nearer(1, 16, 4));
    CHECK(mct_rt_m_nearer(16, 128, 32) && !mct_rt_m_nearer(128, 16, 32));  /* 2x vs 4x */
    CHECK(mct_rt_m_nearer(128, 16, 64));                                    /* 2x vs 4x */
    CHECK(mct_rt_m_nearer(512, 128, 300) && !mct_rt_m_nearer(128, 512, 300));
    CHECK(mct_rt_m_nearer(5, 3, 4) && mct_rt_m_nearer(16, 1, 16) && !mct_rt_m_nearer(1, 16, 16));
    CHECK(mct_rt_m_nearer(1, 16, 2) && mct_rt_m_nearer(512, 128, 1000000));
    CHECK(!mct_rt_m_nearer(7, 7, 3));   /* equal is never nearer */
    /* a brute-force agreement with |log(c/m)| on small values */
    int bad = 0;
    for (long c = 1; c <= 40; c++)
        for (long b = 1; b <= 40; b++)
            for (long m = 1; m <= 40; m++) {
                double dc = c > m ? (double)c / m : (double)m / c;
                double db = b > m ? (double)b / m : (double)m / b;
                int want = dc < db * (1 - 1e-12) || (dc <= db * (1 + 1e-12) && c > b);
                bad += mct_rt_m_nearer(c, b, m) != want;
            }
    CHECK(bad == 0);

    /* the kernel for a thread budget: the largest tuned count at or below it, else the
     * smallest; then nearest M; B-as-given kernels only with MCT_RT_RAW */
    static const mct_rt_kernel ks[] = {
        {1, 1, NULL, NULL, NULL, "m1t1", 1, 0},     {16, 1, NULL, NULL, NULL, "m16t1", 1, 0},
        {16, 1, NULL, psz, NULL, "m16t1p", 9, 0},   {1, 2, NULL, NULL, NULL, "m1t2", 1, 0},
        {128, 2, NULL, NULL, NULL, "m128t2", 1, 0}, {16, 4, NULL, psz, NULL, "m16t4p", 1, 0},
    };
    mct_rt_shape sh;
    memset(&sh, 0, sizeof sh);
    sh.N = 64, sh.K = 32, sh.batch = sh.group = 1, sh.op = MCT_RT_MATMUL;
    mct_rt_entry e = {sh, 0, (int)(sizeof ks / sizeof ks[0])};
    int slots[4] = {0};
    slots[mct_rt_shape_hash(&sh) & 3] = 1;
    mct_rt_table t;
    memset(&t, 0, sizeof t);
    t.nentries = 1, t.entries = &e, t.nslots = 4, t.slots = slots;
    t.nkernels = e.count, t.kernels = ks;
#define LK(M, T, F) (mct_rt_lookup(&t, &sh, M, T, F) ? mct_rt_lookup(&t, &sh, M, T, F)->name : "-")
    CHECK(!strcmp(LK(1, 1, 0), "m1t1") && !strcmp(LK(12, 1, 0), "m16t1p"));  /* faster at M=16 */
    CHECK(!strcmp(LK(12, 1, MCT_RT_RAW), "m16t1"));
    CHECK(!strcmp(LK(1, 2, 0), "m1t2") && !strcmp(LK(64, 2, 0), "m128t2") &&
          !strcmp(LK(64, 3, 0), "m128t2"));
    CHECK(!strcmp(LK(8, 4, 0), "m16t4p") && !strcmp(LK(8, 64, 0), "m16t4p"));
    CHECK(!strcmp(LK(8, 4, MCT_RT_RAW), "m1t2"));     /* 4 threads only packed: 2 as given */
    sh.N = 65;
    CHECK(mct_rt_lookup(&t, &sh, 8, 1, 0) == NULL);
    sh.N = 64;
    static const mct_rt_kernel hi[] = {{16, 2, NULL, NULL, NULL, "a", 1, 0},
                                       {16, 4, NULL, NULL, NULL, "b", 1, 0}};
    t.kernels = hi, t.nkernels = e.count = 2;
    CHECK(!strcmp(LK(16, 1, 0), "a"));                /* all above the budget: the smallest */
#undef LK

    /* the ladder */
    mct_cpu host;
    memset(&host, 0, sizeof host);
    snprintf(host.vendor, sizeof host.vendor, "GenuineIntel");
    host.family = 6;
    host.model = 1;
    uint64_t hk = mct_cpu_key(&host);
    CHECK(mct_rt_rung_of(&host, MCT_TIER_AVX2, hk, "GenuineIntel", MCT_TIER_AVX2, MCT_TIER_AVX2) ==
          MCT_RT_RUNG_EXACT);
    CHECK(mct_rt_rung_of(&host, MCT_TIER_AVX2, hk + 1, "GenuineIntel", MCT_TIER_AVX2,
                         MCT_TIER_AVX2) == MCT_RT_RUNG_VENDOR_TIER);
    CHECK(mct_rt_rung_of(&host, MCT_TIER_AVX2, hk + 1, "AuthenticAMD", MCT_TIER_AVX2,
                         MCT_TIER_AVX2) == MCT_RT_RUNG_TIER);
    CHECK(mct_rt_rung_of(&host, MCT_TIER_AVX2, hk + 1, "GenuineIntel", MCT_TIER_AVX512,
                         MCT_TIER_AVX512) == MCT_RT_RUNG_GENERIC);
    /* code the host cannot run is never usable, even under its own key */
    CHECK(mct_rt_rung_of(&host, MCT_TIER_AVX2, hk, "GenuineIntel", MCT_TIER_AVX512,
                         MCT_TIER_AVX512) == MCT_RT_RUNG_GENERIC);

    /* the family: every field but M */
    mct_workload a, b;
    CHECK(mct_wl_parse("matmul f32 nt M=4 N=64 K=32 epi=bias+silu beta=1", &a, NULL, 0) == 0);
    b = a;
    b.M = 512;
    uint8_t ha[16], hb[16];
    mct_wl_family_hash(&a, ha);
    mct_wl_family_hash(&b, hb);
    CHECK(mct_wl_same_family(&a, &b) && !memcmp(ha, hb, 16));
    b.beta = 0;
    mct_wl_family_hash(&b, hb);
    CHECK(!mct_wl_same_family(&a, &b) && memcmp(ha, hb, 16));
    b = a;
    b.K = 33;
    CHECK(!mct_wl_same_family(&a, &b));

    /* the ABI text the generators print is the typedef the runtime compiles */
    CHECK(!strcmp(MCT_RT_STR(MCT_RT_KERNEL_PARAMS),
                  "long M, long N, long K, const float *A, long lda, const float *B, long ldb, "
                  "float *C, long ldc, const float *bias, long batch, long group, long sA, "
                  "long sB, long sC"));
    CHECK(!strcmp(MCT_TOOL, "mctune " MCT_VERSION));
}

int main(void)
{
    signal(SIGPIPE, SIG_DFL);   /* as a user's shell leaves it: a stray SIGPIPE would kill us */
    test_str();
    test_slurp();
    test_proc();
    test_rules();
    return check_done();
}
