/* CPU identity: probe against the compiler's own detection, tiers, overrides, key, JSON. */
#include "db/db.h"
#include "runtime/cpu.h"
#include "tests/check.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void set(mct_cpu *c, const char *name)
{
    int i = mct_cpu_feature_find(name);
    CHECKF(i >= 0, "feature %s", name);
    mct_cpu_set(c, i);
}

static void test_fnv(void)
{
    CHECK(mct_fnv64(MCT_FNV64_INIT, "", 0) == 0xcbf29ce484222325ull);
    CHECK(mct_fnv64(MCT_FNV64_INIT, "a", 1) == 0xaf63dc4c8601ec8cull);
    CHECK(mct_fnv64(MCT_FNV64_INIT, "foobar", 6) == 0x85944171f73967e8ull);
}

static void test_probe(void)
{
    mct_cpu a, b;
    const mct_cpu *h = mct_cpu_host();
#if defined(__x86_64__)
    CHECK(mct_cpu_detect(&a) == MCT_OK);
    CHECK(strlen(a.vendor) == 12);
    CHECK(a.family >= 6);
    CHECK(mct_cpu_has(&a, mct_cpu_feature_find("sse2")));
    CHECK(mct_cpu_has(&a, mct_cpu_feature_find("lm")));
    mct_tier t = mct_cpu_tier_of(&a);
    __builtin_cpu_init();
    /* the compiler's runtime also checks the OS-enabled state */
    int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    int avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                 __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
                 __builtin_cpu_supports("avx512cd");
    CHECKF((t >= MCT_TIER_SSE42) == !!__builtin_cpu_supports("sse4.2"), "tier %s",
           mct_tier_name(t));
    CHECKF((t >= MCT_TIER_AVX2) == avx2, "tier %s, avx2+fma %d", mct_tier_name(t), avx2);
    CHECKF((t >= MCT_TIER_AVX512) == avx512, "tier %s, avx512 %d", mct_tier_name(t), avx512);
    CHECK(mct_cpu_has(&a, mct_cpu_feature_find("avx2")) == !!__builtin_cpu_supports("avx2"));
    CHECK(a.cache_kb[0] > 0 && a.cache_kb[2] > 0);
    CHECK(a.threads >= 1);
    CHECK(mct_cpu_detect(&b) == MCT_OK && mct_cpu_key(&a) == mct_cpu_key(&b));
    CHECK(memcmp(&a, h, sizeof a) == 0);
#else
    CHECK(mct_cpu_detect(&a) == MCT_EUNSUPPORTED);
    (void)b;
#endif
    CHECK(mct_cpu_host() == h);
}

static void test_tiers(void)
{
    mct_tier t;
    CHECK(MCT_TIER_GENERIC < MCT_TIER_SSE42 && MCT_TIER_SSE42 < MCT_TIER_AVX2 &&
          MCT_TIER_AVX2 < MCT_TIER_AVX512 && MCT_TIER_AVX512 < MCT_TIER_AVX512_BF16VNNI &&
          MCT_TIER_AVX512_BF16VNNI < MCT_TIER_AMX);
    for (int i = 0; i < MCT_TIER_COUNT; i++)
        CHECK(mct_tier_parse(mct_tier_name((mct_tier)i), &t) == 0 && (int)t == i);
    CHECK(mct_tier_parse("AVX2+FMA", &t) == 0 && t == MCT_TIER_AVX2);
    CHECK(mct_tier_parse("avx512_bf16vnni", &t) == 0 && t == MCT_TIER_AVX512_BF16VNNI);
    CHECK(mct_tier_parse("avx3", &t) == MCT_EINVAL);
    CHECK(mct_tier_parse("", &t) == MCT_EINVAL);
    CHECK(!strcmp(mct_tier_name((mct_tier)99), "?"));

    /* synthetic records: each tier needs its features AND the OS state */
    mct_cpu c;
    memset(&c, 0, sizeof c);
    strcpy(c.vendor, "GenuineIntel");
    CHECK(mct_cpu_tier_of(&c) == MCT_TIER_GENERIC);
    const char *sse[] = {"sse2", "ssse3", "sse4.1", "sse4.2", "popcnt"};
    for (int i = 0; i < 5; i++)
        set(&c, sse[i]);
    CHECK(mct_cpu_tier_of(&c) == MCT_TIER_SSE42);
    set(&c, "avx");
    set(&c, "avx2");
    set(&c, "fma");
    set(&c, "osxsave");
    CHECK(mct_cpu_tier_of(&c) == MCT_TIER_SSE42);  /* OS does not save ymm */
    set(&c, "os-avx");
    CHECK(mct_cpu_tier_of(&c) == MCT_TIER_AVX2);
    const char *a5[] = {"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"};
    for (int i = 0; i < 5; i++)
        set(&c, a5[i]);
    CHECK(mct_cpu_tier_of(&c) == MCT_TIER_AVX2);  /* a VM without zmm state */
    set(&c, "os-avx512");
    CHECK(mct_cpu_tier_of(&c) == MCT_TIER_AVX512);
    set(&c, "avx512vnni");
    CHECK(mct_cpu_tier_of(&c) == MCT_TIER_AVX512);
    set(&c, "avx512bf16");
    CHECK(mct_cpu_tier_of(&c) == MCT_TIER_AVX512_BF16VNNI);
    set(&c, "amx-tile");
    set(&c, "amx-bf16");
    set(&c, "amx-int8");
    CHECK(mct_cpu_tier_of(&c) == MCT_TIER_AVX512_BF16VNNI);  /* tiles not enabled */
    set(&c, "os-amx");
    CHECK(mct_cpu_tier_of(&c) == MCT_TIER_AMX);
    CHECK(mct_cpu_set(&c, -1) == MCT_EINVAL && mct_cpu_set(&c, 10000) == MCT_EINVAL);
    CHECK(mct_cpu_feature_find("no-such") == MCT_ENOTFOUND);
    CHECK(mct_cpu_feature_name(mct_cpu_feature_count()) == NULL);
}

static void test_select(void)
{
    char err[256];
    mct_tier t;
    CHECK(mct_cpu_select_tier(MCT_TIER_AVX2, NULL, err, sizeof err, &t) == 0 &&
          t == MCT_TIER_AVX2);
    CHECK(mct_cpu_select_tier(MCT_TIER_AVX2, "sse4.2", err, sizeof err, &t) == 0 &&
          t == MCT_TIER_SSE42);
    CHECK(mct_cpu_select_tier(MCT_TIER_AVX2, "avx2", err, sizeof err, &t) == 0 &&
          t == MCT_TIER_AVX2);
    CHECK(mct_cpu_select_tier(MCT_TIER_AVX2, "avx512", err, sizeof err, &t) ==
          MCT_EUNSUPPORTED && t == MCT_TIER_AVX2 && strstr(err, "avx512") &&
          strstr(err, "avx2"));
    CHECK(mct_cpu_select_tier(MCT_TIER_AMX, "fast", err, sizeof err, &t) == MCT_EINVAL &&
          t == MCT_TIER_AMX && strstr(err, "'fast'"));
}

static void test_key(void)
{
    mct_cpu a, b;
    char hex[17];
    uint64_t k;
    memset(&a, 0, sizeof a);
    strcpy(a.vendor, "AuthenticAMD");
    a.family = 25;
    a.model = 17;
    set(&a, "avx2");
    b = a;
    uint64_t ka = mct_cpu_key(&a);
    /* stepping, brand, caches, cores and the hypervisor bit do not change the key */
    b.stepping = 7;
    strcpy(b.brand, "AMD EPYC 9654");
    b.cache_kb[3] = 32768;
    b.cores = 96;
    set(&b, "hypervisor");
    CHECK(mct_cpu_key(&b) == ka);
    /* vendor, family, model, features and the OS state do */
    b = a;
    b.model = 18;
    CHECK(mct_cpu_key(&b) != ka);
    b = a;
    b.family = 26;
    CHECK(mct_cpu_key(&b) != ka);
    b = a;
    strcpy(b.vendor, "HygonGenuine");
    CHECK(mct_cpu_key(&b) != ka);
    b = a;
    set(&b, "fma");
    CHECK(mct_cpu_key(&b) != ka);
    b = a;
    set(&b, "os-avx");
    CHECK(mct_cpu_key(&b) != ka);
    mct_cpu_key_format(0x0123456789abcdefull, hex);
    CHECK(!strcmp(hex, "0123456789abcdef"));
    CHECK(mct_cpu_key_parse("0123456789ABCDEF", &k) == 0 && k == 0x0123456789abcdefull);
    CHECK(mct_cpu_key_parse("0123456789abcde", &k) == MCT_EINVAL);
    CHECK(mct_cpu_key_parse("0123456789abcdef0", &k) == MCT_EINVAL);
    CHECK(mct_cpu_key_parse("0123456789abcdeg", &k) == MCT_EINVAL);
    CHECK(mct_cpu_key_parse(NULL, &k) == MCT_EINVAL);
}

static void test_json(void)
{
    const mct_cpu *h = mct_cpu_host();
    mct_cpu back;
    char *s = NULL, err[256];
    CHECK(mct_db_cpu_to_json(h, 1, &s) == 0 && s);
    if (!s)
        return;
    CHECK(strstr(s, "\"tier\"") && strstr(s, "\"key\"") && strstr(s, "\"cpuid\""));
    memset(&back, 0x55, sizeof back);
    CHECK(mct_db_cpu_from_json(s, strlen(s), &back, err, sizeof err) == 0);
    CHECK(memcmp(&back, h, sizeof back) == 0);
    /* a key that does not match the record is refused */
    char *k = strstr(s, "\"key\"");
    k = k ? strchr(k + 5, '"') : NULL;
    if (k) {
        k[1] = k[1] == '0' ? '1' : '0';
        CHECK(mct_db_cpu_from_json(s, strlen(s), &back, err, sizeof err) == MCT_ECORRUPT &&
              strstr(err, "key"));
    }
    free(s);
    CHECK(mct_db_cpu_from_json("{\"vendor\":\"x\",\"family\":6,\"model\":1,\"cpuid\":[]}", 52,
                               &back, err, sizeof err) == MCT_EINVAL && strstr(err, "cpuid"));
    CHECK(mct_db_cpu_from_json("nope", 4, &back, err, sizeof err) == MCT_EINVAL);
}

/* Runs fn in a child with the given environment; returns its exit status and its stderr. */
static int in_child(const char *tier, const char *debug, int (*fn)(void), char *errout,
                    size_t errlen)
{
    char path[] = "/tmp/mctune-test-cpu-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd, 2);
        if (tier)
            setenv("MCTUNE_TIER", tier, 1);
        else
            unsetenv("MCTUNE_TIER");
        if (debug)
            setenv("MCTUNE_CPU_DEBUG", debug, 1);
        else
            unsetenv("MCTUNE_CPU_DEBUG");
        _exit(fn());
    }
    int st = -1;
    waitpid(pid, &st, 0);
    ssize_t n = pread(fd, errout, errlen - 1, 0);
    errout[n > 0 ? n : 0] = 0;
    close(fd);
    unlink(path);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int child_tier(void) { return (int)mct_cpu_tier(); }

static void *thread_fn(void *p)
{
    const mct_cpu **out = p;
    out[0] = mct_cpu_host();
    out[1] = (const mct_cpu *)(intptr_t)mct_cpu_tier();
    return NULL;
}

/* Eight threads race for the first detection; all must see one record and one tier. */
static int child_threads(void)
{
    pthread_t th[8];
    const mct_cpu *res[8][2];
    for (int i = 0; i < 8; i++)
        if (pthread_create(&th[i], NULL, thread_fn, res[i]))
            return 10;
    for (int i = 0; i < 8; i++)
        pthread_join(th[i], NULL);
    for (int i = 1; i < 8; i++)
        if (res[i][0] != res[0][0] || res[i][1] != res[0][1])
            return 11;
    return res[0][0]->vendor[0] ? 0 : 12;
}

static void test_env(void)
{
    char err[2048];
    mct_tier host = mct_cpu_tier_of(mct_cpu_host());
    CHECK(in_child(NULL, NULL, child_tier, err, sizeof err) == (int)host && !err[0]);
    CHECK(in_child("generic", NULL, child_tier, err, sizeof err) == MCT_TIER_GENERIC);
    CHECK(in_child("nonsense", NULL, child_tier, err, sizeof err) == (int)host &&
          strstr(err, "nonsense"));
    if (host < MCT_TIER_AMX) {
        int rc = in_child("amx", NULL, child_tier, err, sizeof err);
        CHECKF(rc == (int)host && strstr(err, "above"), "%d %s", rc, err);
    }
    CHECK(in_child("generic", "1", child_tier, err, sizeof err) == MCT_TIER_GENERIC &&
          strstr(err, "mctune cpu:") && strstr(err, "using generic"));
    CHECK(in_child(NULL, "0", child_tier, err, sizeof err) == (int)host && !err[0]);
}

/* Restricting a record to a lower tier (what `tune --tier` stores) and the ISA table. */
static void test_restrict(void)
{
    static const char *const zen4[] = {"sse", "sse2", "sse3", "ssse3", "sse4.1", "sse4.2",
        "popcnt", "xsave", "osxsave", "os-avx", "avx", "avx2", "fma", "f16c", "bmi2",
        "os-avx512", "avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl", "avx512vnni",
        "avx512bf16", "avx512ifma", NULL};
    mct_cpu c, r, r2;
    memset(&c, 0, sizeof c);
    snprintf(c.vendor, sizeof c.vendor, "AuthenticAMD");
    c.family = 25, c.model = 17;
    for (const char *const *f = zen4; *f; f++)
        set(&c, *f);
    CHECK(mct_cpu_tier_of(&c) == MCT_TIER_AVX512_BF16VNNI);
    /* at or above its own tier: the record unchanged */
    mct_cpu_restrict(&c, MCT_TIER_AVX512_BF16VNNI, &r);
    CHECK(!memcmp(&r, &c, sizeof c));
    mct_cpu_restrict(&c, MCT_TIER_AMX, &r);
    CHECK(!memcmp(&r, &c, sizeof c));
    for (int t = MCT_TIER_GENERIC; t < MCT_TIER_AVX512_BF16VNNI; t++) {
        mct_cpu_restrict(&c, (mct_tier)t, &r);
        CHECKF(mct_cpu_tier_of(&r) == (mct_tier)t, "restrict to %s gave %s",
               mct_tier_name((mct_tier)t), mct_tier_name(mct_cpu_tier_of(&r)));
        CHECK(mct_cpu_key(&r) != mct_cpu_key(&c) && !strcmp(r.vendor, c.vendor) &&
              r.family == c.family && r.model == c.model);
        mct_cpu_restrict(&r, (mct_tier)t, &r2);   /* idempotent */
        CHECK(mct_cpu_key(&r2) == mct_cpu_key(&r));
        if (t < MCT_TIER_AVX512)
            CHECK(!mct_cpu_has(&r, mct_cpu_feature_find("avx512f")) &&
                  !mct_cpu_has(&r, mct_cpu_feature_find("os-avx512")));
        if (t < MCT_TIER_AVX2)
            CHECK(!mct_cpu_has(&r, mct_cpu_feature_find("avx2")) &&
                  mct_cpu_has(&r, mct_cpu_feature_find("sse2")));
    }
    /* the ISA table: ordered, every tier maps to the widest row it runs */
    for (int i = 0; i < MCT_ISA_COUNT; i++) {
        const mct_isa *x = mct_isa_get(i);
        CHECK(x && x->vlen >= 1 && x->nregs >= 16 && x->attr && x->cflags && x->tag[0]);
        CHECK(mct_isa_of_tier(x->tier) == (mct_isa_id)i);
        if (i)
            CHECK(x->tier > mct_isa_get(i - 1)->tier && x->vlen > mct_isa_get(i - 1)->vlen);
    }
    CHECK(mct_isa_get(-1) == NULL && mct_isa_get(MCT_ISA_COUNT) == NULL);
    CHECK(mct_isa_of_tier(MCT_TIER_AMX) == MCT_ISA_AVX512 &&
          mct_isa_of_tier(MCT_TIER_AVX512_BF16VNNI) == MCT_ISA_AVX512);
}

/* ISA extensions beside the tiers: AVX-VNNI on synthetic records. An Alder-Lake-like CPU (avx2 +
 * avxvnni, no AVX-512) has it at its own tier avx2 and not below; a Skylake-X-like one (avx512,
 * no avxvnni) at no tier; a Sapphire-Rapids-like one (amx and avxvnni) keeps it when restricted
 * to avx2 and avx512 (what `tune --tier avx2` and MCTUNE_TIER=avx2 lower for) but not to sse4.2;
 * a VM that does not save ymm has no tier avx2 and so none. */
static void test_exts(void)
{
    static const char *const avx2[] = {"sse", "sse2", "sse3", "ssse3", "sse4.1", "sse4.2",
        "popcnt", "xsave", "osxsave", "os-avx", "avx", "avx2", "fma", "f16c", NULL};
    static const char *const avx512[] = {"os-avx512", "avx512f", "avx512cd", "avx512bw",
        "avx512dq", "avx512vl", NULL};
    static const char *const amx[] = {"avx512vnni", "avx512bf16", "os-amx", "amx-tile",
        "amx-bf16", "amx-int8", NULL};
    mct_cpu adl, skx, spr, r;
    char buf[64];
    memset(&adl, 0, sizeof adl);
    snprintf(adl.vendor, sizeof adl.vendor, "GenuineIntel");
    adl.family = 6, adl.model = 151;
    for (const char *const *f = avx2; *f; f++)
        set(&adl, *f);
    skx = adl;
    skx.model = 85;
    for (const char *const *f = avx512; *f; f++)
        set(&skx, *f);
    spr = skx;
    spr.model = 143;
    for (const char *const *f = amx; *f; f++)
        set(&spr, *f);
    set(&adl, "avxvnni");
    set(&spr, "avxvnni");
    CHECK(mct_cpu_tier_of(&adl) == MCT_TIER_AVX2 && mct_cpu_tier_of(&skx) == MCT_TIER_AVX512 &&
          mct_cpu_tier_of(&spr) == MCT_TIER_AMX);
    const mct_ext *x = mct_ext_get(0);
    CHECK(x && x->bit == MCT_EXT_AVXVNNI && !strcmp(x->name, "avxvnni") &&
          !strcmp(x->attr, "avxvnni") && x->tier == MCT_TIER_AVX2 &&
          mct_cpu_feature_find(x->name) >= 0);
    CHECK(mct_ext_get(-1) == NULL && mct_ext_get(MCT_EXT_COUNT) == NULL);
    CHECK(mct_cpu_exts(&adl, MCT_TIER_AVX2) == MCT_EXT_AVXVNNI);
    CHECK(mct_cpu_exts(&adl, MCT_TIER_SSE42) == 0 && mct_cpu_exts(&adl, MCT_TIER_GENERIC) == 0);
    for (int t = 0; t < MCT_TIER_COUNT; t++)
        CHECKF(mct_cpu_exts(&skx, (mct_tier)t) == 0, "Skylake-X at %s",
               mct_tier_name((mct_tier)t));
    for (int t = MCT_TIER_AVX2; t < MCT_TIER_COUNT; t++) {
        unsigned want = MCT_EXT_AVXVNNI | (t >= MCT_TIER_AVX512 ? MCT_EXT_AVX512VNNI : 0);
        mct_cpu_restrict(&spr, (mct_tier)t, &r);
        CHECKF(mct_cpu_exts(&spr, (mct_tier)t) == want &&
               mct_cpu_has(&r, mct_cpu_feature_find("avxvnni")) && mct_cpu_tier_of(&r) ==
               (mct_tier)t, "Sapphire Rapids at %s", mct_tier_name((mct_tier)t));
    }
    /* Cascade-Lake-like (avx512 + avx512vnni, no bf16, no avxvnni): tier avx512 with the 512-bit
     * VNNI extension there, none below; Skylake-X restricted to it has none */
    mct_cpu clx = skx;
    clx.model = 85;
    set(&clx, "avx512vnni");
    x = mct_ext_get(1);
    CHECK(x && x->bit == MCT_EXT_AVX512VNNI && !strcmp(x->attr, "avx512vnni") &&
          x->tier == MCT_TIER_AVX512);
    CHECK(mct_cpu_tier_of(&clx) == MCT_TIER_AVX512 &&
          mct_cpu_exts(&clx, MCT_TIER_AVX512) == MCT_EXT_AVX512VNNI &&
          mct_cpu_exts(&clx, MCT_TIER_AVX2) == 0 && mct_cpu_key(&clx) != mct_cpu_key(&skx));
    mct_cpu_restrict(&spr, MCT_TIER_AVX512, &r);
    CHECK(mct_cpu_has(&r, mct_cpu_feature_find("avx512vnni")) &&
          !mct_cpu_has(&r, mct_cpu_feature_find("avx512bf16")));
    CHECK(!strcmp(mct_ext_names(MCT_EXT_AVXVNNI | MCT_EXT_AVX512VNNI, buf, sizeof buf),
                  "avxvnni+avx512vnni"));
    /* restricted to avx2 it is the Alder Lake record's features (model aside): the same code */
    mct_cpu_restrict(&spr, MCT_TIER_AVX2, &r);
    r.model = adl.model;
    CHECK(!memcmp(r.feat, adl.feat, sizeof r.feat) && mct_cpu_key(&r) == mct_cpu_key(&adl));
    mct_cpu_restrict(&spr, MCT_TIER_SSE42, &r);
    CHECK(!mct_cpu_has(&r, mct_cpu_feature_find("avxvnni")) &&
          mct_cpu_exts(&spr, MCT_TIER_SSE42) == 0);
    mct_cpu vm = adl;  /* avxvnni reported, ymm state not saved: tier sse4.2, no extension */
    vm.xcr0 = 0;
    CHECK(mct_cpu_tier_of(&vm) == MCT_TIER_SSE42 && mct_cpu_exts(&vm, MCT_TIER_SSE42) == 0);
    CHECK(!strcmp(mct_ext_names(MCT_EXT_AVXVNNI, buf, sizeof buf), "avxvnni") &&
          !strcmp(mct_ext_names(0, buf, sizeof buf), ""));
    CHECK(!strcmp(mct_ext_names(MCT_EXT_AVXVNNI, buf, 4), "avx"));  /* cut when short */
    /* the host: its extensions at its tier are its record's */
    const mct_cpu *h = mct_cpu_host();
    mct_tier ht = mct_cpu_tier_of(h);
    CHECK(!!(mct_cpu_exts(h, ht) & MCT_EXT_AVXVNNI) ==
          (ht >= MCT_TIER_AVX2 && mct_cpu_has(h, mct_cpu_feature_find("avxvnni"))));
}

int main(void)
{
    char err[2048];
    /* first, before this process detects anything: threads racing for the first detection */
    CHECK(in_child(NULL, NULL, child_threads, err, sizeof err) == 0);
    test_fnv();
    test_probe();
    test_tiers();
    test_select();
    test_key();
    test_json();
    test_env();
    test_restrict();
    test_exts();
    return check_done();
}
