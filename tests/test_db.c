/* The tuning database: round trips, keep-the-faster, CPU ladder, nearest M, export/import,
 * merge, concurrent writers, map growth, and every kind of bad input. All databases live in a
 * fresh mkdtemp folder. */
#include "db/db.h"
#include "runtime/dispatch.h"
#include "tests/check.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char root[256];
static int nseq;

static const char *newdir(const char *tag)
{
    static char buf[8][512];
    char *p = buf[nseq % 8];
    snprintf(p, 512, "%s/%s%d", root, tag, nseq++);
    return p;
}

static mct_db *open_db(const char *path)
{
    char err[1024];
    mct_db *db = NULL;
    int rc = mct_db_open(path, 0, err, sizeof err, &db);
    CHECKF(rc == MCT_OK && db, "open %s: %d %s", path, rc, err);
    return db;
}

/* A distinct legal canonical schedule per label (records must hold schedules the tuner could
 * have written); texts that look like schedules already, and "", are kept. */
static const char *L(const char *label)
{
    static char labels[64][96], out[8][64];
    static int nl, ring;
    int i;
    if (!label[0] || strchr(label, '('))
        return label;
    for (i = 0; i < nl && strcmp(labels[i], label); i++)
        ;
    if (i == nl && nl < 64)
        snprintf(labels[nl++], sizeof labels[0], "%s", label);
    char *o = out[ring++ % 8];
    snprintf(o, 64, "tile(k, %d)", i + 2);
    return o;
}

static void rec_init(mct_db_rec *r, const char *wl, uint64_t cpu, int threads, double ns,
                     const char *sched)
{
    sched = L(sched);
    memset(r, 0, sizeof *r);
    snprintf(r->workload, sizeof r->workload, "%s", wl);
    r->cpu = cpu;
    r->threads = threads;
    snprintf(r->schedule, sizeof r->schedule, "%s", sched);
    r->median_ns = ns;
    r->spread_ns = ns / 10;
    r->gflops = 123.5;
    r->samples = 64;
    strcpy(r->search, "mcts");
    strcpy(r->guide, "heuristic");
    strcpy(r->compiler, "gcc 12.2.0");
    strcpy(r->flags, "-O3 -march=native");
    strcpy(r->tool, "mctune 0.1.0");
    r->timestamp = 1700000000;
    strcpy(r->model, "llama-3-8b");
}

static int rec_eq(const mct_db_rec *a, const mct_db_rec *b)
{
    return !strcmp(a->workload, b->workload) && a->cpu == b->cpu && a->threads == b->threads &&
           !strcmp(a->schedule, b->schedule) && a->median_ns == b->median_ns &&
           a->spread_ns == b->spread_ns && a->gflops == b->gflops && a->samples == b->samples &&
           !strcmp(a->search, b->search) && !strcmp(a->guide, b->guide) &&
           !strcmp(a->compiler, b->compiler) && !strcmp(a->flags, b->flags) &&
           !strcmp(a->tool, b->tool) && a->timestamp == b->timestamp &&
           !strcmp(a->model, b->model);
}

static void set(mct_cpu *c, const char *name)
{
    int i = mct_cpu_feature_find(name);
    CHECKF(i >= 0, "feature %s", name);
    mct_cpu_set(c, i);
}

/* A synthetic CPU of the given vendor, model and tier. */
static mct_cpu synth(const char *vendor, int model, mct_tier tier)
{
    static const char *f[][8] = {
        {"sse2", "ssse3", "sse4.1", "sse4.2", "popcnt", NULL},
        {"osxsave", "os-avx", "avx", "avx2", "fma", NULL},
        {"os-avx512", "avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl", NULL},
        {"avx512bf16", "avx512vnni", NULL},
        {"os-amx", "amx-tile", "amx-bf16", "amx-int8", NULL},
    };
    mct_cpu c;
    memset(&c, 0, sizeof c);
    snprintf(c.vendor, sizeof c.vendor, "%s", vendor);
    snprintf(c.brand, sizeof c.brand, "Synthetic %s %d", vendor, model);
    c.family = 6;
    c.model = model;
    c.stepping = 3;
    c.cache_kb[0] = 48;
    c.cache_kb[2] = 2048;
    c.cores = 8;
    c.threads = 16;
    for (int t = 0; t < (int)tier; t++)
        for (int i = 0; f[t][i]; i++)
            set(&c, f[t][i]);
    CHECKF(mct_cpu_tier_of(&c) == tier, "synth tier %d got %d", tier, mct_cpu_tier_of(&c));
    return c;
}

static void wl_hash_text(const char *text, uint8_t h[16])
{
    mct_workload w;
    int rc = mct_wl_parse(text, &w, NULL, 0);
    CHECKF(rc == 0, "parse %s", text);
    mct_wl_hash(&w, h);
}

static int spit(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t w = fwrite(data, 1, len, f);
    fclose(f);
    return w == len ? 0 : -1;
}

/* Replaces every occurrence of `from` by `to` (same length) in a file; returns the count. */
static int patch_file(const char *path, const char *from, const char *to)
{
    size_t len, n = strlen(from);
    int count = 0;
    char *b = check_slurp(path, &len);
    if (!b || strlen(to) != n)
        return free(b), -1;
    for (char *p = b; (p = memmem(p, len - (size_t)(p - b), from, n)) != NULL; p += n) {
        memcpy(p, to, n);
        count++;
    }
    if (spit(path, b, len) < 0)
        count = -1;
    free(b);
    return count;
}

static int count_cb(const mct_db_rec *r, void *ctx)
{
    (void)r;
    (*(size_t *)ctx)++;
    return 0;
}

static char *export_text(mct_db *db)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    int rc = mct_db_export(db, f, 0, 1, NULL);
    fclose(f);
    CHECKF(rc == MCT_OK, "export: %s", mct_db_errmsg(db));
    return buf;
}

static const char *W128 = "matmul f32 nt M=128 N=4096 K=4096 epi=none";

/* ---- tests ------------------------------------------------------------------------------- */

static void test_paths(void)
{
    char buf[512];
    setenv("MCTUNE_DB", "/x/y", 1);
    CHECK(mct_db_default_path(buf, sizeof buf) == 0 && !strcmp(buf, "/x/y"));
    unsetenv("MCTUNE_DB");
    setenv("XDG_CACHE_HOME", "/c", 1);
    CHECK(mct_db_default_path(buf, sizeof buf) == 0 && !strcmp(buf, "/c/mctune"));
    unsetenv("XDG_CACHE_HOME");
    setenv("HOME", "/h", 1);
    CHECK(mct_db_default_path(buf, sizeof buf) == 0 && !strcmp(buf, "/h/.cache/mctune"));
    CHECK(mct_db_default_path(buf, 4) == MCT_ERANGE);
}

static void test_round_trip(void)
{
    mct_db *db = open_db(newdir("rt"));
    mct_db_rec r, out, key;
    mct_cpu c = synth("GenuineIntel", 143, MCT_TIER_AMX), c2;
    uint8_t h[16];
    char text[256], *reply = NULL;
    mct_db_stats st;
    int stored = -1;
    if (!db)
        return;
    CHECK(mct_db_stats_get(db, &st) == 0 && st.best == 0 && st.cpus == 0);
    /* cpu */
    CHECK(mct_db_put_cpu(db, &c) == 0);
    memset(&c2, 0xff, sizeof c2);
    CHECK(mct_db_get_cpu(db, mct_cpu_key(&c), &c2) == 0);
    CHECK(memcmp(&c, &c2, sizeof c) == 0);
    CHECK(mct_db_get_cpu(db, 12345, &c2) == MCT_ENOTFOUND);
    /* workload */
    mct_workload w;
    CHECK(mct_wl_parse("matmul f32 nn M=16 N=64 K=32 epi=bias+relu", &w, NULL, 0) == 0);
    CHECK(mct_db_put_workload(db, &w) == 0);
    mct_wl_hash(&w, h);
    CHECK(mct_db_get_workload(db, h, text, sizeof text) == 0);
    CHECK(strstr(text, "M=16") && strstr(text, "N=64"));
    /* trial */
    rec_init(&r, W128, mct_cpu_key(&c), 4, 1234.5, "tile(i, 64, 8)");
    CHECK(mct_db_put_trial(db, &r) == 0);
    memset(&key, 0, sizeof key);
    rec_init(&key, W128, mct_cpu_key(&c), 4, 1, "tile(i, 64, 8)");
    CHECK(mct_db_get_trial(db, &key, &out) == 0 && rec_eq(&r, &out));
    strcpy(key.schedule, "tile(i, 32)");
    CHECK(mct_db_get_trial(db, &key, &out) == MCT_ENOTFOUND);
    /* best */
    wl_hash_text(W128, h);
    CHECK(mct_db_get_best(db, h, mct_cpu_key(&c), 4, &out) == MCT_ENOTFOUND);
    CHECK(mct_db_put_best(db, &r, &stored) == 0 && stored == 1);
    CHECK(mct_db_get_best(db, h, mct_cpu_key(&c), 4, &out) == 0 && rec_eq(&r, &out));
    CHECK(mct_db_get_best(db, h, mct_cpu_key(&c), 2, &out) == MCT_ENOTFOUND);
    /* keeps the faster */
    mct_db_rec slow = r, fast = r;
    slow.median_ns = 2000;
    strcpy(slow.schedule, L("slow"));
    CHECK(mct_db_put_best(db, &slow, &stored) == 0 && stored == 0);
    CHECK(mct_db_get_best(db, h, mct_cpu_key(&c), 4, &out) == 0 && out.median_ns == 1234.5);
    fast.median_ns = 999;
    strcpy(fast.schedule, L("fast"));
    CHECK(mct_db_put_best(db, &fast, &stored) == 0 && stored == 1);
    CHECK(mct_db_get_best(db, h, mct_cpu_key(&c), 4, &out) == 0 && rec_eq(&fast, &out));
    /* a non-canonical workload text is stored canonically */
    mct_db_rec nc = r;
    strcpy(nc.workload, "matmul f32 nt K=4096 N=4096 M=128 epi=none");
    nc.threads = 8;
    CHECK(mct_db_put_best(db, &nc, &stored) == 0 && stored == 1);
    CHECK(mct_db_get_best(db, h, mct_cpu_key(&c), 8, &out) == 0);
    /* bad records are refused */
    mct_db_rec bad = r;
    strcpy(bad.workload, "matmul f32 nt M=0 N=1 K=1 epi=none");
    CHECK(mct_db_put_best(db, &bad, NULL) < 0 && strstr(mct_db_errmsg(db), "M=0"));
    bad = r;
    bad.median_ns = -1;
    CHECK(mct_db_put_trial(db, &bad) == MCT_ERANGE && strstr(mct_db_errmsg(db), "median"));
    /* llm */
    CHECK(mct_db_llm_put(db, "gpt-x", "{\"t\":0}", "prompt text", "reply: tile(i,8)") == 0);
    CHECK(mct_db_llm_get(db, "gpt-x", "{\"t\":0}", "prompt text", &reply) == 0 && reply &&
          !strcmp(reply, "reply: tile(i,8)"));
    free(reply);
    reply = NULL;
    CHECK(mct_db_llm_get(db, "gpt-x", "{\"t\":1}", "prompt text", &reply) == MCT_ENOTFOUND &&
          !reply);
    CHECK(mct_db_llm_get(db, NULL, "{\"t\":0}", "prompt text", &reply) == MCT_EINVAL && !reply &&
          strstr(mct_db_errmsg(db), "model"));
    CHECK(mct_db_llm_get(db, "gpt-x", "{\"t\":0}", NULL, &reply) == MCT_EINVAL && !reply);
    CHECK(mct_db_llm_get(db, "gpt-x", "{\"t\":0}", "prompt text", NULL) == MCT_EINVAL);
    /* iterate, stats, delete */
    size_t n = 0;
    CHECK(mct_db_iter(db, MCT_DB_BEST, count_cb, &n) == 0 && n == 2);
    n = 0;
    /* each best record stored without a trial of its schedule got one: fast, nc */
    CHECK(mct_db_iter(db, MCT_DB_TRIALS, count_cb, &n) == 0 && n == 3);
    CHECK(mct_db_stats_get(db, &st) == 0 && st.best == 2 && st.trials == 3 && st.cpus == 1 &&
          st.workloads == 2 && st.llm == 1 && st.file_bytes > 0 && st.used_bytes > 0);
    int removed = 0;
    CHECK(mct_db_delete(db, h, mct_cpu_key(&c), 8, &removed) == 0 && removed == 2);
    CHECK(mct_db_get_best(db, h, mct_cpu_key(&c), 8, &out) == MCT_ENOTFOUND);
    CHECK(mct_db_delete(db, h, 0, 0, &removed) == 0 && removed == 3);  /* best 4 + 2 trials */
    CHECK(mct_db_delete(db, h, 0, 0, &removed) == MCT_ENOTFOUND && removed == 0);
    mct_db_close(db);
}

static void test_ladder(void)
{
    mct_db *db = open_db(newdir("ladder"));
    mct_cpu a = synth("GenuineIntel", 143, MCT_TIER_AVX512);   /* the host asking, no record */
    mct_cpu b = synth("GenuineIntel", 106, MCT_TIER_AVX512);
    mct_cpu b2 = synth("GenuineIntel", 85, MCT_TIER_AVX512);
    mct_cpu c = synth("AuthenticAMD", 17, MCT_TIER_AVX512);
    mct_cpu d = synth("GenuineIntel", 151, MCT_TIER_AVX2);
    mct_cpu e = synth("AuthenticAMD", 97, MCT_TIER_AVX512);   /* AMD asking */
    mct_cpu f = synth("CentaurHauls", 5, MCT_TIER_AVX512);    /* other vendor asking */
    mct_cpu g = synth("GenuineIntel", 207, MCT_TIER_AMX);     /* no tier match */
    mct_cpu u = synth("GenuineIntel", 1, MCT_TIER_AVX512);    /* has a record, no cpu entry */
    mct_db_rec r, out;
    mct_db_rung rung;
    uint8_t h[16];
    if (!db)
        return;
    CHECK(mct_cpu_key(&a) != mct_cpu_key(&b) && mct_cpu_key(&b) != mct_cpu_key(&c));
    mct_cpu *put[] = {&b, &b2, &c, &d};
    for (int i = 0; i < 4; i++)
        CHECK(mct_db_put_cpu(db, put[i]) == 0);
    struct { mct_cpu *c; double ns; const char *s; } recs[] = {
        {&b, 300, "B"}, {&b2, 250, "B2"}, {&c, 200, "C"}, {&d, 100, "D"}, {&u, 50, "U"},
    };
    for (int i = 0; i < 5; i++) {
        rec_init(&r, W128, mct_cpu_key(recs[i].c), 1, recs[i].ns, recs[i].s);
        CHECK(mct_db_put_best(db, &r, NULL) == 0);
    }
    /* another thread count must not be picked */
    rec_init(&r, W128, mct_cpu_key(&b), 2, 1, "B-2threads");
    CHECK(mct_db_put_best(db, &r, NULL) == 0);
    wl_hash_text(W128, h);
    CHECK(mct_db_get_best_ladder(db, h, &d, 1, &out, &rung) == 0 && rung == MCT_RUNG_EXACT &&
          !strcmp(out.schedule, L("D")));
    CHECK(mct_db_get_best_ladder(db, h, &a, 1, &out, &rung) == 0 &&
          rung == MCT_RUNG_VENDOR_TIER && !strcmp(out.schedule, L("B2")));
    CHECK(mct_db_get_best_ladder(db, h, &e, 1, &out, &rung) == 0 &&
          rung == MCT_RUNG_VENDOR_TIER && !strcmp(out.schedule, L("C")));
    CHECK(mct_db_get_best_ladder(db, h, &f, 1, &out, &rung) == 0 && rung == MCT_RUNG_TIER &&
          !strcmp(out.schedule, L("C")));
    CHECK(mct_db_get_best_ladder(db, h, &g, 1, &out, &rung) == MCT_ENOTFOUND &&
          rung == MCT_RUNG_NONE);
    CHECK(mct_db_get_best_ladder(db, h, &a, 2, &out, &rung) == 0 &&
          rung == MCT_RUNG_VENDOR_TIER && !strcmp(out.schedule, L("B-2threads")));
    CHECK(mct_db_get_best_ladder(db, h, &a, 3, &out, &rung) == MCT_ENOTFOUND);
    CHECK(!strcmp(mct_db_rung_name(MCT_RUNG_TIER), "same tier"));
    mct_db_close(db);
}

static void test_nearest_m(void)
{
    mct_db *db = open_db(newdir("nm"));
    mct_db_rec r, out;
    mct_workload w;
    const int ms[] = {1, 16, 128, 512};
    char text[256];
    if (!db)
        return;
    for (int i = 0; i < 4; i++) {
        snprintf(text, sizeof text, "matmul f32 nt M=%d N=4096 K=4096 epi=bias+silu", ms[i]);
        rec_init(&r, text, 42, 1, 100 + ms[i], text);
        CHECK(mct_db_put_best(db, &r, NULL) == 0);
    }
    /* a sibling family (different N) and another CPU must not be picked */
    rec_init(&r, "matmul f32 nt M=100 N=1024 K=4096 epi=bias+silu", 42, 1, 5, "other N");
    CHECK(mct_db_put_best(db, &r, NULL) == 0);
    rec_init(&r, "matmul f32 nt M=100 N=4096 K=4096 epi=bias+silu", 43, 1, 5, "other cpu");
    CHECK(mct_db_put_best(db, &r, NULL) == 0);
    /* nearest on a log scale (the runtime's mct_rt_m_nearer): 8 is 2x from 16, 8x from 1 */
    struct { int q, want; } cases[] = {{100, 128}, {8, 16}, {1000, 512}, {16, 16}, {72, 128},
                                       {320, 512}, {2, 1}, {4, 16}, {3, 1}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(text, sizeof text, "matmul f32 nt M=%d N=4096 K=4096 epi=bias+silu",
                 cases[i].q);
        CHECK(mct_wl_parse(text, &w, NULL, 0) == 0);
        int rc = mct_db_get_best_nearest_m(db, &w, 42, 1, &out);
        char want[64];
        snprintf(want, sizeof want, " M=%d ", cases[i].want);
        CHECKF(rc == 0 && strstr(out.workload, want), "M=%d -> %s (want M=%d)", cases[i].q,
               rc ? "none" : out.workload, cases[i].want);
    }
    CHECK(mct_wl_parse("matmul f32 nt M=7 N=4096 K=4096 epi=none", &w, NULL, 0) == 0);
    CHECK(mct_db_get_best_nearest_m(db, &w, 42, 1, &out) == MCT_ENOTFOUND);
    CHECK(mct_wl_parse("matmul f32 nt M=7 N=4096 K=4096 epi=bias+silu", &w, NULL, 0) == 0);
    CHECK(mct_db_get_best_nearest_m(db, &w, 42, 2, &out) == MCT_ENOTFOUND);
    mct_db_close(db);
}

/* Calls keyed by what they mean: the key of (workload, cpu, threads), the trial of one
 * schedule, the trials under one key prefix, the best records of one family. */
static void test_keyed(void)
{
    mct_db *db = open_db(newdir("keyed"));
    mct_db_rec r, out, key;
    mct_db_key k, hand;
    mct_db_trial_key tk;
    uint8_t h1[16], h2[16];
    size_t n = 99;
    const char *w1 = "matmul f32 nt M=16 N=4096 K=4096 epi=none";
    const char *w2 = "matmul f32 nt M=32 N=4096 K=4096 epi=none";
    if (!db)
        return;
    wl_hash_text(w1, h1);
    wl_hash_text(w2, h2);
    /* the key is zeroed (padding included) and holds what it was given */
    memset(&k, 0xff, sizeof k);
    mct_db_key_make(h1, 7, 2, &k);
    memset(&hand, 0, sizeof hand);
    memcpy(hand.wl, h1, 16);
    hand.cpu = 7;
    hand.threads = 2;
    CHECK(memcmp(&k, &hand, sizeof k) == 0 && k.zero == 0);
    /* trials: three under (w1, 7, 1), one under (w1, 7, 2), two under (w1, 8, 1), one of w2 */
    struct { const char *wl; uint64_t cpu; int threads; const char *s; } tr[] = {
        {w1, 7, 1, "ka"}, {w1, 7, 1, "kb"}, {w1, 7, 1, "kc"}, {w1, 7, 2, "ka"},
        {w1, 8, 1, "ka"}, {w1, 8, 1, "kd"}, {w2, 7, 1, "ka"},
    };
    for (size_t i = 0; i < sizeof tr / sizeof tr[0]; i++) {
        rec_init(&r, tr[i].wl, tr[i].cpu, tr[i].threads, 100 + (double)i, tr[i].s);
        CHECK(mct_db_put_trial(db, &r) == 0);
    }
    struct { const uint8_t *wl; uint64_t cpu; int threads; size_t want; } cn[] = {
        {h1, 7, 1, 3}, {h1, 7, 2, 1}, {h1, 8, 1, 2}, {h1, 9, 1, 0}, {h1, 7, 3, 0}, {h2, 7, 1, 1},
    };
    for (size_t i = 0; i < sizeof cn / sizeof cn[0]; i++) {
        mct_db_key_make(cn[i].wl, cn[i].cpu, cn[i].threads, &k);
        n = 99;
        CHECKF(mct_db_count_trials(db, &k, &n) == 0 && n == cn[i].want,
               "count case %zu: %zu trials, want %zu", i, n, cn[i].want);
    }
    /* the trial of one schedule, by its key; the record-fields wrapper finds the same */
    memset(&tk, 0, sizeof tk);
    mct_db_key_make(h1, 8, 1, &tk.k);
    mct_hash_text(L("kd"), strlen(L("kd")), tk.sched);
    CHECK(mct_db_get_trial_key(db, &tk, &out) == 0 && !strcmp(out.schedule, L("kd")) &&
          out.cpu == 8 && out.threads == 1 && out.median_ns == 105);
    rec_init(&key, w1, 8, 1, 1, "kd");
    CHECK(mct_db_get_trial(db, &key, &r) == 0 && rec_eq(&r, &out));
    mct_db_key_make(h1, 7, 1, &tk.k);  /* kd was measured on CPU 8 only */
    CHECK(mct_db_get_trial_key(db, &tk, &out) == MCT_ENOTFOUND);
    mct_db_key_make(h2, 8, 1, &tk.k);
    CHECK(mct_db_get_trial_key(db, &tk, &out) == MCT_ENOTFOUND);
    mct_db_close(db);
}

struct fam_seen { int n, stop_at; long m[16]; uint64_t cpu[16]; int threads[16]; int other; };

static int fam_cb(const mct_db_rec *r, void *ctx)
{
    struct fam_seen *s = ctx;
    mct_workload w, f;
    CHECK(mct_wl_parse(r->workload, &w, NULL, 0) == 0);
    CHECK(mct_wl_parse("matmul f32 nt M=1 N=4096 K=4096 epi=bias+silu", &f, NULL, 0) == 0);
    if (!mct_wl_same_family(&w, &f))
        s->other++;
    if (s->n < 16) {
        s->m[s->n] = w.M;
        s->cpu[s->n] = r->cpu;
        s->threads[s->n] = r->threads;
    }
    s->n++;
    return s->stop_at && s->n == s->stop_at ? 7 : 0;
}

static void test_iter_family(void)
{
    mct_db *db = open_db(newdir("fam"));
    mct_db_rec r;
    mct_workload w;
    struct fam_seen s;
    if (!db)
        return;
    /* the family: M = 128 (cpu 7), 1 (cpu 8, 2 threads), 16 (cpu 7 and cpu 9) */
    struct { int m; uint64_t cpu; int threads; } fam[] = {{128, 7, 1}, {1, 8, 2}, {16, 7, 1},
                                                          {16, 9, 4}};
    char text[256];
    for (size_t i = 0; i < sizeof fam / sizeof fam[0]; i++) {
        snprintf(text, sizeof text, "matmul f32 nt M=%d N=4096 K=4096 epi=bias+silu", fam[i].m);
        rec_init(&r, text, fam[i].cpu, fam[i].threads, 50 + (double)i, text);
        CHECK(mct_db_put_best(db, &r, NULL) == 0);
    }
    /* other families (another N, another epilogue, nn) and a trial-only M are not returned */
    rec_init(&r, "matmul f32 nt M=16 N=1024 K=4096 epi=bias+silu", 7, 1, 5, "other N");
    CHECK(mct_db_put_best(db, &r, NULL) == 0);
    rec_init(&r, "matmul f32 nt M=16 N=4096 K=4096 epi=none", 7, 1, 5, "other epi");
    CHECK(mct_db_put_best(db, &r, NULL) == 0);
    rec_init(&r, "matmul f32 nn M=16 N=4096 K=4096 epi=bias+silu", 7, 1, 5, "other layout");
    CHECK(mct_db_put_best(db, &r, NULL) == 0);
    rec_init(&r, "matmul f32 nt M=64 N=4096 K=4096 epi=bias+silu", 7, 1, 5, "trial only");
    CHECK(mct_db_put_trial(db, &r) == 0);
    CHECK(mct_wl_parse("matmul f32 nt M=5 N=4096 K=4096 epi=bias+silu", &w, NULL, 0) == 0);
    memset(&s, 0, sizeof s);
    CHECK(mct_db_iter_family(db, &w, fam_cb, &s) == 0);
    CHECKF(s.n == 4 && s.other == 0, "%d records, %d of another family", s.n, s.other);
    CHECK(s.m[0] == 1 && s.cpu[0] == 8 && s.threads[0] == 2);
    CHECK(s.m[1] == 16 && s.m[2] == 16 && s.m[3] == 128 && s.cpu[3] == 7);
    CHECK((s.cpu[1] == 7 && s.cpu[2] == 9) || (s.cpu[1] == 9 && s.cpu[2] == 7));
    /* a nonzero return stops and is returned */
    memset(&s, 0, sizeof s);
    s.stop_at = 2;
    CHECK(mct_db_iter_family(db, &w, fam_cb, &s) == 7 && s.n == 2);
    /* a family with no records */
    CHECK(mct_wl_parse("matmul f32 nt M=5 N=4096 K=2048 epi=bias+silu", &w, NULL, 0) == 0);
    memset(&s, 0, sizeof s);
    CHECK(mct_db_iter_family(db, &w, fam_cb, &s) == 0 && s.n == 0);
    mct_db_close(db);
}

/* `mctune db get` and the generated library must pick the same M bucket: with buckets 1 and 16
 * a call of M=4 runs the M=16 kernel (log scale, ties to the larger M), so the database's
 * nearest M says 16 too (it used to say 1, by linear distance). */
static void test_nearest_m_as_runtime(void)
{
    mct_db *db = open_db(newdir("nmrt"));
    mct_db_rec r, out;
    mct_workload w;
    if (!db)
        return;
    rec_init(&r, "matmul f32 nt M=1 N=4096 K=4096 epi=none", 42, 1, 10, "bucket 1");
    CHECK(mct_db_put_best(db, &r, NULL) == 0);
    rec_init(&r, "matmul f32 nt M=16 N=4096 K=4096 epi=none", 42, 1, 20, "bucket 16");
    CHECK(mct_db_put_best(db, &r, NULL) == 0);
    CHECK(mct_wl_parse("matmul f32 nt M=4 N=4096 K=4096 epi=none", &w, NULL, 0) == 0);
    CHECKF(mct_db_get_best_nearest_m(db, &w, 42, 1, &out) == 0 && strstr(out.workload, " M=16 "),
           "db: M=4 -> %s", out.workload);
    /* the runtime's lookup over a table holding the same two buckets */
    static const mct_rt_kernel ks[2] = {{1, 1, NULL, NULL, NULL, "k1", 1, 0},
                                        {16, 1, NULL, NULL, NULL, "k16", 1, 0}};
    mct_rt_shape sh;
    memset(&sh, 0, sizeof sh);
    sh.N = 4096;
    sh.K = 4096;
    sh.batch = sh.group = 1;
    sh.op = MCT_RT_MATMUL;
    sh.layout = MCT_RT_NT;
    mct_rt_entry e = {sh, 0, 2};
    int slots[4] = {0, 0, 0, 0};
    slots[mct_rt_shape_hash(&sh) & 3] = 1;
    mct_rt_table t;
    memset(&t, 0, sizeof t);
    t.nentries = 1;
    t.entries = &e;
    t.nslots = 4;
    t.slots = slots;
    t.nkernels = 2;
    t.kernels = ks;
    const mct_rt_kernel *k = mct_rt_lookup(&t, &sh, 4, 1, 0);
    CHECKF(k && k->M == 16, "runtime: M=4 -> %ld", k ? k->M : -1L);
    mct_db_close(db);
}

static void fill(mct_db *db, int n, double base, const char *tag)
{
    mct_cpu c = synth("GenuineIntel", 143, MCT_TIER_AVX512_BF16VNNI);
    mct_db_rec r;
    char wl[256], s[64];
    CHECK(mct_db_put_cpu(db, &c) == 0);
    for (int i = 0; i < n; i++) {
        snprintf(wl, sizeof wl, "matmul f32 nn M=%d N=256 K=512 epi=none", i + 1);
        snprintf(s, sizeof s, "tile(j, %d); %s", i % 7 + 1, tag);
        rec_init(&r, wl, mct_cpu_key(&c), 1 + i % 3, base + i, s);
        CHECK(mct_db_put_best(db, &r, NULL) == 0);
        CHECK(mct_db_put_trial(db, &r) == 0);
    }
}

static void test_export_import(void)
{
    const char *p1 = newdir("ex");
    mct_db *a = open_db(p1), *b = open_db(newdir("im"));
    char file[600];
    mct_db_report rep;
    if (!a || !b)
        return;
    fill(a, 50, 1000, "reorder(i, k, j0, j1)");
    CHECK(mct_db_llm_put(a, "m", "p", "q\n\"quoted\"", "r\ttab") == 0);
    mct_workload w;
    CHECK(mct_wl_parse("bmm f32 nt B=32 G=4 M=128 N=512 K=128 epi=none", &w, NULL, 0) == 0);
    CHECK(mct_db_put_workload(a, &w) == 0);
    snprintf(file, sizeof file, "%s/a.jsonl", root);
    FILE *f = fopen(file, "w");
    size_t lines = 0;
    CHECK(f && mct_db_export(a, f, 0, 1, &lines) == 0);
    fclose(f);
    CHECK(lines == 1 + 51 + 50 + 50 + 1);
    CHECK(mct_db_import(b, file, NULL, NULL, &rep) == 0);
    CHECK(rep.added == lines && rep.conflicts == 0);
    char *ta = export_text(a), *tb = export_text(b);
    CHECK(ta && tb && !strcmp(ta, tb));
    /* importing again changes nothing */
    CHECK(mct_db_import(b, file, NULL, NULL, &rep) == 0 && rep.same == lines && rep.added == 0);
    free(tb);
    tb = export_text(b);
    CHECK(tb && !strcmp(ta, tb));
    free(ta);
    free(tb);
    /* per-CPU export */
    mct_cpu c = synth("GenuineIntel", 143, MCT_TIER_AVX512_BF16VNNI);
    f = fopen(file, "w");
    CHECK(f && mct_db_export(a, f, mct_cpu_key(&c), 0, &lines) == 0 && lines == 51);
    fclose(f);
    f = fopen(file, "w");
    CHECK(f && mct_db_export(a, f, 777, 0, &lines) == 0 && lines == 0);
    fclose(f);
    mct_db_close(a);
    mct_db_close(b);
}

static int notes;
static void note_cb(const char *line, void *ctx)
{
    (void)ctx;
    (void)line;
    notes++;
}

static void test_merge(void)
{
    const char *p1 = newdir("m1"), *p2 = newdir("m2");
    mct_db *a = open_db(p1), *b = open_db(p2);
    mct_db_rec r, out;
    mct_db_report rep;
    uint8_t h[16];
    const char *w1 = "matmul f32 nt M=1 N=4096 K=4096 epi=none";
    const char *w2 = "matmul f32 nt M=16 N=4096 K=4096 epi=none";
    const char *w3 = "matmul f32 nt M=128 N=4096 K=4096 epi=none";
    if (!a || !b)
        return;
    rec_init(&r, w1, 7, 1, 100, "a1");
    CHECK(mct_db_put_best(a, &r, NULL) == 0);
    rec_init(&r, w2, 7, 1, 300, "a2");
    CHECK(mct_db_put_best(a, &r, NULL) == 0);
    rec_init(&r, w1, 7, 1, 150, "b1");
    CHECK(mct_db_put_best(b, &r, NULL) == 0);
    rec_init(&r, w2, 7, 1, 200, "b2");
    CHECK(mct_db_put_best(b, &r, NULL) == 0);
    rec_init(&r, w3, 7, 1, 50, "b3");
    CHECK(mct_db_put_best(b, &r, NULL) == 0);
    mct_db_close(b);
    notes = 0;
    CHECK(mct_db_merge(a, p2, note_cb, NULL, &rep) == 0);
    CHECKF(rep.replaced == 1 && rep.kept == 1 && rep.conflicts == 2 && rep.added >= 1,
           "replaced %zu kept %zu conflicts %zu added %zu", rep.replaced, rep.kept,
           rep.conflicts, rep.added);
    CHECK(notes == 3);  /* two conflicts and one change */
    wl_hash_text(w1, h);
    CHECK(mct_db_get_best(a, h, 7, 1, &out) == 0 && !strcmp(out.schedule, L("a1")));
    wl_hash_text(w2, h);
    CHECK(mct_db_get_best(a, h, 7, 1, &out) == 0 && !strcmp(out.schedule, L("b2")));
    wl_hash_text(w3, h);
    CHECK(mct_db_get_best(a, h, 7, 1, &out) == 0 && !strcmp(out.schedule, L("b3")));
    /* merging into itself is refused; a missing database is an error naming it */
    CHECK(mct_db_merge(a, p1, NULL, NULL, &rep) == MCT_EINVAL);
    CHECK(mct_db_merge(a, "/nonexistent/mctune-db", NULL, NULL, &rep) < 0 &&
          strstr(mct_db_errmsg(a), "/nonexistent/mctune-db"));
    mct_db_close(a);
}

static void test_concurrent(void)
{
    const char *p = newdir("conc");
    char path[512];
    snprintf(path, sizeof path, "%s", p);
    mct_db *db = open_db(path);  /* create it first so both children find the tables */
    if (!db)
        return;
    mct_db_close(db);
    /* a small initial map so that the writers also grow it under each other */
    setenv("MCTUNE_DB_MAP_INITIAL", "262144", 1);
    pid_t kids[2];
    for (int k = 0; k < 2; k++) {
        kids[k] = fork();
        if (kids[k] == 0) {
            mct_db *d = NULL;
            mct_db_rec r;
            char s[64], err[1024];
            if (mct_db_open(path, MCT_DB_NOSYNC, err, sizeof err, &d)) {
                fprintf(stderr, "child %d: %s\n", k, err);
                _exit(3);
            }
            for (int i = 0; i < 1000; i++) {
                snprintf(s, sizeof s, "tile(k, %d)", 2 * i + k + 1);
                rec_init(&r, W128, 99, 1, 100 + i, s);
                if (mct_db_put_trial(d, &r) != 0) {
                    fprintf(stderr, "child %d: %s\n", k, mct_db_errmsg(d));
                    _exit(4);
                }
            }
            mct_db_close(d);
            _exit(0);
        }
    }
    for (int k = 0; k < 2; k++) {
        int st = 0;
        CHECKF(kids[k] > 0 && waitpid(kids[k], &st, 0) == kids[k] && WIFEXITED(st) &&
               WEXITSTATUS(st) == 0, "writer %d: status 0x%x", k, st);
    }
    unsetenv("MCTUNE_DB_MAP_INITIAL");
    db = open_db(path);
    if (!db)
        return;
    size_t n = 0;
    CHECK(mct_db_iter(db, MCT_DB_TRIALS, count_cb, &n) == 0);
    CHECKF(n == 2000, "%zu trials", n);
    mct_db_stats st;
    CHECK(mct_db_stats_get(db, &st) == 0 && st.map_bytes > 262144);
    mct_db_close(db);
}

static void test_growth(void)
{
    setenv("MCTUNE_DB_MAP_INITIAL", "65536", 1);
    mct_db *db = open_db(newdir("grow"));
    unsetenv("MCTUNE_DB_MAP_INITIAL");
    if (!db)
        return;
    fill(db, 300, 10, "reorder(i, k, j0, j1); unroll(k, 4)");
    mct_db_stats st;
    CHECK(mct_db_stats_get(db, &st) == 0 && st.best == 300 && st.map_bytes > 65536);
    mct_db_close(db);
}

static void test_bad_files(void)
{
    char path[600], err[1024];
    mct_db *db = NULL;
    const char *d;
    int rc;
    /* a file that is not LMDB, given directly */
    snprintf(path, sizeof path, "%s/notes.txt", root);
    char junk[20000];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (char)('a' + i * 7 % 26);
    CHECK(spit(path, junk, sizeof junk) == 0);
    rc = mct_db_open(path, 0, err, sizeof err, &db);
    CHECKF(rc == MCT_ECORRUPT && !db && strstr(err, "notes.txt") && strstr(err, "not an LMDB"),
           "%d %s", rc, err);
    rc = mct_db_open(path, MCT_DB_RDONLY, err, sizeof err, &db);
    CHECK(rc == MCT_ECORRUPT && !db);
    /* a folder whose data.mdb is garbage */
    d = newdir("garbage");
    mkdir(d, 0755);
    snprintf(path, sizeof path, "%s/data.mdb", d);
    CHECK(spit(path, junk, sizeof junk) == 0);
    rc = mct_db_open(d, 0, err, sizeof err, &db);
    CHECKF(rc == MCT_ECORRUPT && strstr(err, "data.mdb"), "%d %s", rc, err);
    /* a tiny file */
    CHECK(spit(path, "LMDB?", 5) == 0);
    rc = mct_db_open(d, 0, err, sizeof err, &db);
    CHECKF(rc == MCT_ECORRUPT && strstr(err, "data.mdb"), "%d %s", rc, err);
    /* a truncated database */
    d = newdir("trunc");
    db = open_db(d);
    if (db) {
        fill(db, 200, 1, "reorder(i, k, j0, j1)");
        mct_db_close(db);
        db = NULL;
        snprintf(path, sizeof path, "%s/data.mdb", d);
        struct stat st;
        CHECK(stat(path, &st) == 0 && st.st_size > 8 * 4096);
        CHECK(truncate(path, st.st_size / 2) == 0);
        rc = mct_db_open(d, 0, err, sizeof err, &db);
        CHECKF(rc == MCT_ECORRUPT && !db && strstr(err, "truncated"), "%d %s", rc, err);
    }
    /* a damaged value, and a value whose workload text no longer matches its key */
    d = newdir("damaged");
    db = open_db(d);
    if (db) {
        mct_db_rec r, out;
        uint8_t h1[16], h2[16];
        const char *w1 = "matmul f32 nt M=777 N=4096 K=4096 epi=none";
        const char *w2 = "matmul f32 nt M=555 N=4096 K=4096 epi=none";
        rec_init(&r, w1, 5, 1, 10, "tile(k, 77)");
        CHECK(mct_db_put_best(db, &r, NULL) == 0);
        rec_init(&r, w2, 5, 1, 10, "fine");
        CHECK(mct_db_put_best(db, &r, NULL) == 0);
        mct_db_close(db);
        db = NULL;
        snprintf(path, sizeof path, "%s/data.mdb", d);
        CHECK(patch_file(path, "\"tile(k, 77)\"", "\"tile(k,\\q\"}}") > 0);
        CHECK(patch_file(path, "M=555 ", "M=556 ") > 0);
        db = open_db(d);
        if (db) {
            wl_hash_text(w1, h1);
            wl_hash_text(w2, h2);
            rc = mct_db_get_best(db, h1, 5, 1, &out);
            CHECKF(rc == MCT_ECORRUPT && strstr(mct_db_errmsg(db), "damaged"), "%d %s", rc,
                   mct_db_errmsg(db));
            rc = mct_db_get_best(db, h2, 5, 1, &out);
            CHECKF(rc == MCT_ECORRUPT && strstr(mct_db_errmsg(db), "M=556"), "%d %s", rc,
                   mct_db_errmsg(db));
            size_t n = 0;
            CHECK(mct_db_iter(db, MCT_DB_BEST, count_cb, &n) == MCT_ECORRUPT);
            FILE *f = fopen("/dev/null", "w");
            CHECK(mct_db_export(db, f, 0, 1, NULL) == MCT_ECORRUPT);
            fclose(f);
            mct_db_close(db);
            db = NULL;
        }
        /* another schema / code generator */
        CHECK(patch_file(path, MCT_CG_VERSION "\"", "mctune-cg 0\"") == 1);
        rc = mct_db_open(d, 0, err, sizeof err, &db);
        CHECKF(rc == MCT_EVERSION && !db && strstr(err, "mctune-cg 0") && strstr(err, "export"),
               "%d %s", rc, err);
    }
    /* an unwritable location */
    if (geteuid() != 0) {
        d = newdir("ro");
        mkdir(d, 0555);
        snprintf(path, sizeof path, "%s/db", d);
    } else {
        snprintf(path, sizeof path, "/proc/mctune-test-db");  /* root ignores permissions */
    }
    rc = mct_db_open(path, 0, err, sizeof err, &db);
    CHECKF(rc == MCT_EIO && !db && strstr(err, path) && strstr(err, "--db"), "%d %s", rc, err);
    rc = mct_db_open("/nonexistent-mctune", MCT_DB_RDONLY, err, sizeof err, &db);
    CHECKF(rc == MCT_EIO && !db && strstr(err, "/nonexistent-mctune"), "%d %s", rc, err);
    /* a database opened read-only refuses writes with a message */
    d = newdir("rdonly");
    db = open_db(d);
    mct_db_close(db);
    db = NULL;
    CHECK(mct_db_open(d, MCT_DB_RDONLY, err, sizeof err, &db) == 0 && db);
    if (db) {
        mct_db_rec r;
        rec_init(&r, W128, 1, 1, 1, "");
        CHECK(mct_db_put_best(db, &r, NULL) == MCT_EIO && strstr(mct_db_errmsg(db), "read-only"));
        mct_db_close(db);
    }
}

static int import_text(mct_db *db, const char *text, mct_db_report *rep)
{
    char file[600];
    snprintf(file, sizeof file, "%s/in%d.jsonl", root, nseq++);
    spit(file, text, strlen(text));
    return mct_db_import(db, file, NULL, NULL, rep);
}

/* Latencies and counts above what an int holds (a 5 s untuned kernel is 5e9 ns) decode exactly,
 * through the JSON Lines parser and the stored-record decoder alike. */
static void test_large_numbers(void)
{
    char line[1024], err[256];
    snprintf(line, sizeof line, "{\"type\":\"trial\",\"workload\":\"%s\",\"cpu\":"
             "\"00000000000000ab\",\"threads\":4,\"schedule\":\"\",\"median_ns\":5e9,"
             "\"spread_ns\":3e12,\"samples\":4000000000,\"timestamp\":9000000000}", W128);
    mct_db_item it;
    CHECK(mct_db_item_parse(line, strlen(line), &it, err, sizeof err) == 0);
    CHECK(it.rec.median_ns == 5e9 && it.rec.spread_ns == 3e12 && it.rec.threads == 4 &&
          it.rec.samples == 4000000000LL && it.rec.timestamp == 9000000000LL);
    mct_db *db = open_db(newdir("large"));
    if (db) {
        mct_db_rec out;
        CHECK(mct_db_put_trial(db, &it.rec) == 0);
        CHECK(mct_db_get_trial(db, &it.rec, &out) == 0 && out.median_ns == 5e9 &&
              out.samples == 4000000000LL && out.spread_ns == 3e12);
        mct_db_close(db);
    }
    mct_db_item_clear(&it);
}

static void test_bad_jsonl(void)
{
    mct_db *db = open_db(newdir("badj"));
    mct_db_report rep;
    mct_db_stats st;
    char good[1024], text[4096];
    int rc;
    if (!db)
        return;
    snprintf(good, sizeof good, "{\"type\":\"trial\",\"workload\":\"%s\",\"cpu\":"
             "\"00000000000000ab\",\"threads\":1,\"schedule\":\"\",\"median_ns\":5}", W128);
    /* a good line is importable */
    snprintf(text, sizeof text, "%s\n\n", good);
    CHECK(import_text(db, text, &rep) == 0 && rep.added == 1);
    mct_db_close(db);
    db = open_db(newdir("badj"));
    if (!db)
        return;
    struct { const char *line2; const char *want; int code; } cases[] = {
        {"{\"type\":\"best\",", ":2:", MCT_EINVAL},
        {"[1,2]", "type", MCT_EINVAL},
        {"{\"type\":\"nope\"}", "nope", MCT_EINVAL},
        {"{\"type\":\"best\",\"workload\":\"matmul f32 nt M=1 N=2 K=3 epi=none\",\"cpu\":"
         "\"00000000000000ab\",\"threads\":\"four\",\"schedule\":\"\",\"median_ns\":5}",
         "'threads'", MCT_EINVAL},
        {"{\"type\":\"best\",\"workload\":\"matmul f32 nt M=1 N=2 K=3 epi=none\",\"cpu\":"
         "\"xyz\",\"threads\":1,\"schedule\":\"\",\"median_ns\":5}", "'cpu'", MCT_EINVAL},
        {"{\"type\":\"trial\",\"workload\":\"matmul f32 nt M=1 N=2 K=3 epi=none\",\"cpu\":"
         "\"00000000000000ab\",\"threads\":1,\"schedule\":\"\",\"median_ns\":-5}", "median_ns",
         MCT_ERANGE},
        {"{\"type\":\"best\",\"workload\":\"matmul f32 nt M=1 N=2 K=3 epi=none\",\"wl_hash\":"
         "\"00112233445566778899aabbccddeeff\",\"cpu\":\"00000000000000ab\",\"threads\":1,"
         "\"schedule\":\"\",\"median_ns\":5}", "wl_hash", MCT_ECORRUPT},
        {"{\"type\":\"best\",\"workload\":\"matmul f32 nt M=-1 N=2 K=3 epi=none\",\"cpu\":"
         "\"00000000000000ab\",\"threads\":1,\"schedule\":\"\",\"median_ns\":5}", "workload",
         MCT_ERANGE},
        {"{\"type\":\"cpu\",\"vendor\":\"X\",\"family\":6,\"model\":1,\"cpuid\":{}}",
         "cpuid.1.ecx", MCT_EINVAL},
        {"{\"type\":\"cpu\",\"vendor\":7}", "vendor", MCT_EINVAL},
        {"{\"type\":\"llm\",\"model\":\"m\",\"params\":1,\"prompt\":\"p\",\"reply\":\"r\"}",
         "params", MCT_EINVAL},
        {"{\"type\":\"workload\",\"workload\":\"conv3d f32\"}", "conv3d", MCT_EINVAL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(text, sizeof text, "%s\n%s\n%s\n", good, cases[i].line2, good);
        rc = import_text(db, text, &rep);
        const char *msg = mct_db_errmsg(db);
        CHECKF(rc < 0 && strstr(msg, ".jsonl:2:") && strstr(msg, cases[i].want) &&
               strstr(msg, "nothing was imported"), "case %zu: rc %d '%s'", i, rc, msg);
        (void)cases[i].code;
        CHECK(mct_db_stats_get(db, &st) == 0 && st.best == 0 && st.workloads == 0);
    }
    /* a binary file */
    char bin[64] = "{\"type\":\"best\"}\n\0\1\2\3\n";
    char file[600];
    snprintf(file, sizeof file, "%s/bin.jsonl", root);
    spit(file, bin, 24);
    rc = mct_db_import(db, file, NULL, NULL, &rep);
    CHECK(rc < 0 && strstr(mct_db_errmsg(db), "bin.jsonl:1:"));
    CHECK(mct_db_import(db, "/nonexistent.jsonl", NULL, NULL, &rep) == MCT_EIO &&
          strstr(mct_db_errmsg(db), "/nonexistent.jsonl"));
    CHECK(mct_db_stats_get(db, &st) == 0 && st.best == 0 && st.workloads == 0);
    /* an export's frame: cut at a line boundary, a wrong count, records after the end, an end
     * without its begin are refused whole; two exports one after another are fine */
    const char *B = "{\"type\":\"begin\",\"format\":1}", *E1 = "{\"type\":\"end\",\"records\":1}";
    struct { const char *fmt; const char *want; } frames[] = {
        {"%1$s\n%2$s\n", "without its end line"},
        {"%1$s\n%2$s\n%2$s\n%3$s\n", "holds 1 records but 2 precede"},
        {"%1$s\n%2$s\n%3$s\n%2$s\n", "after the export's end line"},
        {"%2$s\n%3$s\n", "without its begin line"},
        {"%2$s\n%1$s\n%2$s\n%3$s\n", "a begin line inside"},
        {"{\"type\":\"begin\",\"format\":2}\n%2$s\n", "format"},
    };
    for (size_t i = 0; i < sizeof frames / sizeof frames[0]; i++) {
        snprintf(text, sizeof text, frames[i].fmt, B, good, E1);
        rc = import_text(db, text, &rep);
        CHECKF(rc < 0 && strstr(mct_db_errmsg(db), frames[i].want) &&
               strstr(mct_db_errmsg(db), "nothing was imported"), "frame case %zu: rc %d '%s'",
               i, rc, mct_db_errmsg(db));
        CHECK(mct_db_stats_get(db, &st) == 0 && st.best == 0 && st.workloads == 0);
    }
    snprintf(text, sizeof text, "%1$s\n%2$s\n%3$s\n\n%1$s\n%2$s\n%3$s\n", B, good, E1);
    rc = import_text(db, text, &rep);
    CHECKF(rc == 0 && rep.added == 1 && rep.same == 1, "two exports: rc %d '%s' added %zu same %zu",
           rc, rc ? mct_db_errmsg(db) : "", rep.added, rep.same);
    mct_db_close(db);
}

static void rm_rf(const char *p)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", p);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", p);
}

int main(void)
{
    snprintf(root, sizeof root, "%s/mctune-test-db-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return 1;
    }
    unsetenv("MCTUNE_DB_MAP_INITIAL");
    test_paths();
    test_round_trip();
    test_ladder();
    test_nearest_m();
    test_nearest_m_as_runtime();
    test_keyed();
    test_iter_family();
    test_export_import();
    test_merge();
    test_growth();
    test_concurrent();
    test_bad_files();
    test_large_numbers();
    test_bad_jsonl();
    rm_rf(root);
    return check_done();
}
