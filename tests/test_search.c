/* Search strategies, guides and `mctune tune`: determinism, sample accounting, fallbacks,
 * resume after SIGKILL, skip when tuned, transfer seeding, model files, shapes. Small shapes
 * (M=16 N=64 K=64) so that real measurements take milliseconds. */
#include "tests/check.h"

#include <ctype.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "db/db.h"
#include "tuner/search.h"
#include "tuner/tune.h"
#include "tuner/tune_model.h"

static char tmp[256], cache[300], mctune[1400];
static int sanitized;
static const char *WL = "matmul f32 nt M=16 N=64 K=64 epi=none";

/* A record of the samples a search produced. */
typedef struct trace {
    int n;
    uint8_t h[512][16];
    char applied[512][96];
    int reused;
} trace;

static int rec_sample(void *ctx, const mct_search_sample *s)
{
    trace *t = ctx;
    if (t->n < 512) {
        memcpy(t->h[t->n], s->hash, 16);
        snprintf(t->applied[t->n], sizeof t->applied[0], "%s", s->applied);
        t->n++;
    }
    t->reused += s->reused;
    return 0;
}

/* A deterministic stand-in for the harness (search logic only): a latency from the schedule
 * hash, with a few failures. */
static int fake_eval(void *ctx, const mct_sched *s, mct_search_meas *out)
{
    uint8_t h[16];
    mct_sched_hash(s, h);
    memset(out, 0, sizeof *out);
    if (h[1] % 13 == 0) {
        out->status = MCT_MEAS_COMPILE_ERROR;
        out->latency_s = -1;
        return 0;
    }
    out->status = MCT_MEAS_OK;
    out->latency_s = 1e-3 / (1 + h[0] % 64);
    out->gflops = 2.0 * 16 * 64 * 64 / out->latency_s * 1e-9;
    return 0;
}

static int distinct(const trace *t)
{
    for (int i = 0; i < t->n; i++)
        for (int j = 0; j < i; j++)
            if (!memcmp(t->h[i], t->h[j], 16))
                return 0;
    return 1;
}

static int same_trace(const trace *a, const trace *b)
{
    return a->n == b->n && !memcmp(a->h, b->h, sizeof a->h[0] * (size_t)a->n);
}

/* A test guide that answers garbage: unknown transformations, bad loops, junk text. */
static int garbage_propose(mct_guide *g, const mct_guide_ctx *c, char **out, int *n, char *err,
                           size_t errlen)
{
    const char *junk[] = {"frobnicate(i, 3)", "tile(q, 4)", "vectorize(nope)", "}{ not text"};
    for (int i = 0; i < c->want && i < 4; i++)
        out[(*n)++] = strdup(junk[(i + g->stats.calls) % 4]);
    return 0;
}

/* A test guide that always proposes the same legal thing: duplicates after the first. */
static int same_propose(mct_guide *g, const mct_guide_ctx *c, char **out, int *n, char *err,
                        size_t errlen)
{
    out[(*n)++] = strdup("tile(j, 16)");
    return 0;
}

static void test_destroy(mct_guide *g)
{
    (void)g;
}

static void run_search(mct_search_kind kind, mct_guide *g, uint64_t seed, int budget,
                       mct_meas *m, int fake, trace *t, mct_search_stats *st)
{
    mct_workload w;
    mct_wl_parse(WL, &w, NULL, 0);
    mct_tune_opts to = {0};
    to.cpu = mct_cpu_host();
    to.kind = kind;
    to.budget = budget;
    to.seed = seed;
    to.guide = g;
    to.meas = m;
    mct_search_opts o;
    mct_tune_search_opts(&to, &o);
    o.evaluate = fake ? fake_eval : NULL;
    o.on_sample = rec_sample;
    o.ctx = t;
    memset(t, 0, sizeof *t);
    char err[256];
    int r = mct_search_run(&w, &o, st, err, sizeof err);
    CHECKF(r == 0, "search %s: %d %s", mct_search_kind_name(kind), r, err);
}

/* A database that refuses the tuner's writes (opened read-only): mct_tune_workload stops at
 * once with the database's own code (not a blanket MCT_EIO), res.db_failed set, and a message
 * naming what it could not write and where; nothing is measured. */
static void test_db_refused(mct_meas *m)
{
    char dir[400], err[512] = "";
    snprintf(dir, sizeof dir, "%s/ro-db", tmp);
    mct_db *db = NULL;
    CHECK(mct_db_open(dir, MCT_DB_NOSYNC, NULL, 0, &db) == 0);
    mct_db_close(db);
    db = NULL;
    CHECK(mct_db_open(dir, MCT_DB_RDONLY, NULL, 0, &db) == 0);
    mct_guide *g = NULL;
    CHECK(mct_guide_heuristic_create(&g) == 0);
    mct_workload w;
    CHECK(mct_wl_parse(WL, &w, NULL, 0) == 0);
    mct_tune_opts to = {0};
    to.db = db;
    to.cpu = mct_cpu_host();
    to.kind = MCT_SEARCH_MCTS;
    to.budget = 4;
    to.guide = g;
    to.guide_name = "heuristic";
    to.meas = m;
    mct_tune_result res;
    int rc = db ? mct_tune_workload(&w, &to, &res, err, sizeof err) : 0;
    CHECKF(rc < 0 && res.db_failed && strstr(err, "cannot write a workload") &&
           strstr(err, dir), "rc %d (%s): %s", rc, mct_strerror(rc), err);
    CHECK(res.st.measured == 0);
    mct_guide_destroy(g);
    mct_db_close(db);
}

static void test_library(mct_meas *m)
{
    static trace a, b, c;
    mct_search_stats sa, sb;
    mct_guide *h = NULL, *rg = NULL;
    CHECK(mct_guide_heuristic_create(&h) == 0);
    CHECK(mct_guide_random_create(&rg) == 0);
    int budget = sanitized ? 10 : 16;

    /* determinism with real measurements: random search does not depend on timings */
    run_search(MCT_SEARCH_RANDOM, NULL, 7, budget, m, 0, &a, &sa);
    run_search(MCT_SEARCH_RANDOM, NULL, 7, budget, m, 0, &b, &sb);
    CHECK(a.n == budget && sa.samples == budget);
    CHECK(same_trace(&a, &b));
    CHECK(distinct(&a));
    CHECK(sa.base_latency_s > 0 && sa.best_latency_s > 0 && sa.best_latency_s <= sa.base_latency_s);
    CHECK(!strcmp(a.applied[0], "untuned"));
    run_search(MCT_SEARCH_RANDOM, NULL, 8, budget, m, 0, &c, &sb);
    CHECK(!same_trace(&a, &c));

    /* mcts (both guides) and both evolutionary searches: same seed and same measurements,
     * same trials */
    for (int k = 0; k < 4; k++) {
        mct_search_kind kind = k == 2 ? MCT_SEARCH_EVO : k == 3 ? MCT_SEARCH_EVO_MEASURED
                                                                : MCT_SEARCH_MCTS;
        mct_guide *g = k == 0 ? h : rg;
        /* a fresh guide each run: the heuristic remembers what it proposed */
        mct_guide *g1, *g2;
        if (k == 0) {
            mct_guide_heuristic_create(&g1);
            mct_guide_heuristic_create(&g2);
        } else {
            mct_guide_random_create(&g1);
            mct_guide_random_create(&g2);
        }
        (void)g;
        run_search(kind, g1, 3, 60, NULL, 1, &a, &sa);
        run_search(kind, g2, 3, 60, NULL, 1, &b, &sb);
        CHECKF(same_trace(&a, &b), "strategy %d", k);
        CHECKF(distinct(&a), "strategy %d", k);
        CHECKF(sa.samples == 60 && a.n == 60, "strategy %d: %d samples", k, sa.samples);
        CHECK(sa.samples == sa.measured && sa.reused == 0);
        mct_guide_destroy(g1);
        mct_guide_destroy(g2);
    }

    /* mcts + heuristic on real measurements finds a much faster kernel than the untuned one */
    mct_guide *hh;
    mct_guide_heuristic_create(&hh);
    run_search(MCT_SEARCH_MCTS, hh, 1, budget, m, 0, &a, &sa);
    CHECK(distinct(&a) && sa.samples == budget);
    /* what it found, not how fast it ran: the best is a vectorized schedule the search measured
     * (the speedup is printed, never asserted: timing assertions fail on a loaded machine) */
    CHECKF(sa.best_index > 1 && strstr(sa.best_schedule, "vectorize("),
           "best #%d '%s' (speedup %.2f)", sa.best_index, sa.best_schedule,
           sa.base_latency_s / sa.best_latency_s);
    printf("mcts+heuristic on the harness: speedup %.2f over the untuned nest\n",
           sa.base_latency_s / sa.best_latency_s);
    mct_guide_stats gs;
    mct_guide_get_stats(hh, &gs);
    CHECK(gs.calls == sa.expansions && gs.proposals > 0);
    mct_guide_destroy(hh);

    /* a guide that answers garbage: every proposal invalid, every expansion a fallback */
    mct_guide gg = {.name = "garbage", .propose = garbage_propose, .destroy = test_destroy};
    run_search(MCT_SEARCH_MCTS, &gg, 5, 20, NULL, 1, &a, &sa);
    CHECK(sa.samples == 20 && distinct(&a));
    CHECKF(sa.fallbacks == sa.expansions && sa.expansions > 0, "%d fallbacks, %d expansions",
           sa.fallbacks, sa.expansions);
    CHECKF(sa.invalid == 2 * sa.expansions || sa.invalid >= sa.expansions,
           "%d invalid of %d expansions", sa.invalid, sa.expansions);
    int fb = 0;
    for (int i = 0; i < a.n; i++)
        fb += !strncmp(a.applied[i], "fallback: ", 10);
    CHECKF(fb == sa.fallbacks, "%d fallback samples, %d counted", fb, sa.fallbacks);

    /* a guide that repeats itself: duplicates are dropped, counted, never measured twice */
    mct_guide sg = {.name = "same", .propose = same_propose, .destroy = test_destroy};
    run_search(MCT_SEARCH_MCTS, &sg, 5, 20, NULL, 1, &a, &sa);
    CHECK(sa.samples == 20 && a.n == 20 && distinct(&a));
    CHECKF(sa.duplicates > 0, "%d duplicates", sa.duplicates);
    CHECK(sa.fallbacks > 0);

    /* lookup: candidates found there count as samples, are not measured */
    mct_guide_destroy(h);
    mct_guide_destroy(rg);
}

/* CLI ------------------------------------------------------------------------------------- */

static int run_cmd(const char *cmd, char *out, size_t len)
{
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    size_t n = fread(out, 1, len - 1, p);
    out[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int count_lines(const char *file)
{
    FILE *f = fopen(file, "r");
    if (!f)
        return 0;
    int n = 0, c;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

static int count_trials_fn(const mct_db_rec *r, void *ctx)
{
    (*(int *)ctx)++;
    return 0;
}

static int count_trials(const char *db)
{
    mct_db *d;
    int n = 0;
    if (mct_db_open(db, MCT_DB_RDONLY, NULL, 0, &d))
        return -1;
    mct_db_iter(d, MCT_DB_TRIALS, count_trials_fn, &n);
    mct_db_close(d);
    return n;
}

static void test_resume(void)
{
    char db[400], logf[400], cmd[4096], out[16384];
    int budget = sanitized ? 16 : 24;
    snprintf(db, sizeof db, "%s/resume-db", tmp);
    snprintf(logf, sizeof logf, "%s/resume.jsonl", tmp);
    char budget_s[16];
    snprintf(budget_s, sizeof budget_s, "%d", budget);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open("/dev/null", O_WRONLY);
        dup2(fd, 1);
        dup2(fd, 2);
        execl(mctune, mctune, "tune", "--workload", WL, "--budget", budget_s, "--db", db,
              "--log", logf, "--cache", cache, "--min-time", "0.02", "--seed", "4", (char *)0);
        _exit(127);
    }
    /* kill it mid-way with SIGKILL once a few samples are in */
    for (int i = 0; i < 600 && count_lines(logf) < 6; i++)
        usleep(50000);
    kill(pid, SIGKILL);
    int st;
    waitpid(pid, &st, 0);
    CHECK(WIFSIGNALED(st));
    int before = count_trials(db);
    CHECKF(before >= 6 && before < budget, "%d trials before the restart", before);
    snprintf(cmd, sizeof cmd, "%s tune --workload '%s' --budget %d --db %s --log %s.2 --cache %s "
             "--min-time 0.02 --seed 4 2>&1", mctune, WL, budget, db, logf, cache);
    int rc = run_cmd(cmd, out, sizeof out);
    CHECKF(rc == 0, "exit %d: %s", rc, out);
    int measured = -1, reused = -1, samples = -1;
    const char *p = strstr(out, " samples (");
    if (p) {
        const char *q = p;
        while (q > out && isdigit((unsigned char)q[-1]))
            q--;
        samples = atoi(q);
        sscanf(p, " samples (%d measured, %d reused", &measured, &reused);
    }
    CHECKF(samples == budget && reused >= before && measured == budget - reused,
           "samples %d measured %d reused %d (trials before: %d): %s", samples, measured, reused,
           before, out);
    CHECKF(count_trials(db) == budget, "%d trials after", count_trials(db));
    char l2[420];
    snprintf(l2, sizeof l2, "%s.2", logf);
    CHECK(count_lines(l2) == budget);

    /* tuned now: skipped without a search */
    rc = run_cmd(cmd, out, sizeof out);
    CHECK(rc == 0 && strstr(out, "skipped, already tuned"));
    CHECK(count_lines(l2) == budget);
    /* --retune: searches again, every trial comes back from the database */
    snprintf(cmd + strlen(cmd) - 5, sizeof cmd - strlen(cmd) + 5, " --retune 2>&1");
    rc = run_cmd(cmd, out, sizeof out);
    CHECKF(rc == 0 && strstr(out, "0 measured"), "%s", out);
}

static int put_other_cpu_best(const char *dbp, const char *wl, const char *sched)
{
    mct_db *db;
    if (mct_db_open(dbp, 0, NULL, 0, &db))
        return -1;
    mct_cpu other = *mct_cpu_host();
    other.model ^= 0x55;
    mct_db_put_cpu(db, &other);
    mct_db_rec r = {0};
    snprintf(r.workload, sizeof r.workload, "%s", wl);
    r.cpu = mct_cpu_key(&other);
    r.threads = 1;
    snprintf(r.schedule, sizeof r.schedule, "%s", sched);
    r.median_ns = 1000;
    r.gflops = 1;
    r.samples = 1;
    snprintf(r.search, sizeof r.search, "manual");
    int e = mct_db_put_best(db, &r, NULL);
    mct_db_close(db);
    return e;
}

static void test_transfer(void)
{
    char db[400], logf[400], cmd[4096], out[8192];
    snprintf(db, sizeof db, "%s/xfer-db", tmp);
    snprintf(logf, sizeof logf, "%s/xfer.jsonl", tmp);
    const char *sch = "tile(j, 32); tile(k, 16); reorder(i, j0, k0, j1, k1); cache_write(j0); "
                      "unroll(j1, 8); vectorize(k1)";
    CHECK(put_other_cpu_best(db, WL, sch) == 0);
    snprintf(cmd, sizeof cmd, "%s tune --workload '%s' --budget 3 --db %s --log %s --cache %s "
             "--min-time 0.01 2>&1", mctune, WL, db, logf, cache);
    int rc = run_cmd(cmd, out, sizeof out);
    CHECKF(rc == 0, "%s", out);
    FILE *f = fopen(logf, "r");
    char line[8192] = "", l2[8192] = "";
    if (f) {
        if (!fgets(line, sizeof line, f) || !fgets(l2, sizeof l2, f))
            l2[0] = 0;
        fclose(f);
    }
    CHECKF(strstr(l2, "\"sample\":2") && strstr(l2, "\"applied\":\"tile(j, 32); tile(k, 16)"),
           "second sample is not the transferred schedule: %s", l2);

    /* the nearest M of the same layer seeds too */
    snprintf(cmd, sizeof cmd, "%s tune --workload '%s' --budget 2 --db %s --log %s.m --cache %s "
             "--min-time 0.01 2>&1", mctune, "matmul f32 nt M=12 N=64 K=64 epi=none", db, logf,
             cache);
    rc = run_cmd(cmd, out, sizeof out);
    snprintf(line, sizeof line, "%s.m", logf);
    f = fopen(line, "r");
    l2[0] = 0;
    if (f) {
        if (!fgets(line, sizeof line, f) || !fgets(l2, sizeof l2, f))
            l2[0] = 0;
        fclose(f);
    }
    CHECKF(rc == 0 && strstr(l2, "\"sample\":2") && !strstr(l2, "\"applied\":\"random") &&
           !strstr(l2, "\"applied\":\"untuned"), "nearest-M seed: %s", l2);
}

/* `mctune tune` with the llm-cmd guide: a command that answers one legal and one illegal
 * proposal, and one that answers prose without any list; the search goes on either way. */
static void test_llmcmd(void)
{
    char cmd[4096], out[8192];
    int budget = 6, inv = -1, fb = -1, exp_ = -1;
    snprintf(cmd, sizeof cmd, "%s tune --workload '%s' --budget %d --db %s/llm-db --cache %s "
             "--min-time 0.01 --guide llm-cmd --llm-cmd \"cat >/dev/null; echo '[\\\"tile(j, "
             "16)\\\", \\\"frobnicate(i)\\\"]'\" 2>&1", mctune, WL, budget, tmp, cache);
    int rc = run_cmd(cmd, out, sizeof out);
    const char *p = strstr(out, "invalid proposals");
    if (p) {
        while (p > out && p[-1] != '(' && p[-1] != ',')
            p--;
        inv = atoi(p);
    }
    CHECKF(rc == 0 && strstr(out, " 6 samples") && inv >= 1, "rc %d, %d invalid: %s", rc, inv,
           out);
    snprintf(cmd, sizeof cmd, "%s tune --workload '%s' --budget %d --db %s/llm-db2 --cache %s "
             "--min-time 0.01 --guide llm-cmd --llm-cmd 'cat >/dev/null; echo I would tile j' "
             "2>&1", mctune, WL, budget, tmp, cache);
    rc = run_cmd(cmd, out, sizeof out);
    p = strstr(out, "fallbacks)");
    if (p) {
        while (p > out && p[-1] != ',')
            p--;
        fb = atoi(p);
    }
    p = strstr(out, "guide llm-cmd: ");
    if (p)
        exp_ = atoi(p + strlen("guide llm-cmd: "));
    CHECKF(rc == 0 && strstr(out, " 6 samples") && fb >= 1 && fb == exp_,
           "rc %d, %d fallbacks, %d guide calls: %s", rc, fb, exp_, out);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void test_models(void)
{
    char p[400], err[512];
    mct_tune_model m = {0};
    snprintf(p, sizeof p, "%s/m.json", tmp);
    write_file(p, "{\"name\":\"t\",\"source\":\"x\",\"layers\":[{\"name\":\"q\",\"op\":\"matmul\","
                  "\"layout\":\"nt\",\"N\":64,\"K\":32,\"epi\":\"none\",\"M\":[1,16]},"
                  "{\"name\":\"s\",\"op\":\"bmm\",\"layout\":\"nt\",\"B\":8,\"G\":2,\"N\":128,"
                  "\"K\":64,\"M\":[4]}]}");
    CHECK(mct_tune_model_load(p, &m, err, sizeof err) == 0);
    CHECK(m.n == 3 && !strcmp(m.name, "t"));
    CHECK(m.n == 3 && m.w[2].op == MCT_OP_BMM && m.w[2].batch == 8 && m.w[2].group == 2);
    mct_tune_model_free(&m);
    struct { const char *text, *want; } bad[] = {
        {"{\"name\":\"t\",\"layers\":[{\"name\":\"q\",\"op\":\"matmul\",\"N\":64,\"K\":32},"
         "{\"name\":\"down\",\"op\":\"matmul\",\"N\":64,\"K\":-3}]}",
         "layer 1 (down): field \"K\""},
        {"{\"name\":\"t\",\"layers\":[{\"name\":\"a\",\"op\":\"conv\",\"N\":6,\"K\":3}]}",
         "layer 0 (a): field \"op\""},
        {"{\"name\":\"t\",\"layers\":[{\"name\":\"a\",\"op\":\"bmm\",\"N\":6,\"K\":3}]}",
         "field \"B\""},
        {"{\"name\":\"t\",\"layers\":[{\"name\":\"a\",\"op\":\"matmul\",\"N\":6,\"K\":3,"
         "\"M\":[1,\"x\"]}]}", "field \"M\" item 1"},
        {"{\"name\":\"t\",\"layers\":[{\"name\":\"a\",\"op\":\"bmm\",\"B\":6,\"G\":4,\"N\":6,"
         "\"K\":3}]}", "layer 0 (a): workload"},
        {"{\"name\":\"t\",\"layers\":[]}", "field \"layers\""},
        {"{\"layers\": [", "not valid JSON"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_file(p, bad[i].text);
        memset(&m, 0, sizeof m);
        err[0] = 0;
        int r = mct_tune_model_load(p, &m, err, sizeof err);
        CHECKF(r == MCT_EINVAL && strstr(err, bad[i].want) && strstr(err, p),
               "case %zu: %d '%s'", i, r, err);
    }
    /* every model file shipped in models/ loads */
    const char *shipped[] = {"models/llama-3-8b.json", "models/llama-4-scout.json",
                             "models/deepseek-r1.json", "models/flux.json",
                             "models/qwen2.5-7b.json"};
    for (size_t i = 0; i < sizeof shipped / sizeof shipped[0]; i++) {
        memset(&m, 0, sizeof m);
        int r = mct_tune_model_load(shipped[i], &m, err, sizeof err);
        CHECKF(r == 0 && m.n > 0, "%s: %s", shipped[i], err);
        mct_tune_model_free(&m);
    }
    /* "b": the variants of matmul layers, per layer or for the file; packed first */
    write_file(p, "{\"name\":\"t\",\"b\":\"raw\",\"layers\":[{\"name\":\"q\",\"op\":\"matmul\","
                  "\"N\":64,\"K\":32,\"M\":[1,16],\"b\":\"both\"},{\"name\":\"o\","
                  "\"op\":\"matmul\",\"N\":32,\"K\":64,\"M\":[4]},{\"name\":\"s\",\"op\":\"bmm\","
                  "\"B\":8,\"G\":2,\"N\":128,\"K\":64,\"M\":[4]}]}");
    memset(&m, 0, sizeof m);
    CHECKF(mct_tune_model_load(p, &m, err, sizeof err) == 0, "%s", err);
    CHECK(m.n == 6);
    if (m.n == 6) {
        CHECK(m.w[0].M == 1 && !m.w[0].braw && m.w[1].M == 1 && m.w[1].braw);
        CHECK(m.w[2].M == 16 && !m.w[2].braw && m.w[3].M == 16 && m.w[3].braw);
        CHECK(m.w[4].N == 32 && m.w[4].braw);            /* the file's "b" */
        CHECK(m.w[5].op == MCT_OP_BMM && !m.w[5].braw);  /* bmm: one variant */
    }
    /* mctune tune --b: every matmul in the variants asked for, whatever the file said */
    CHECK(mct_tune_model_variants(&m, MCT_TUNE_B_PACKED) == 0 && m.n == 4);
    CHECK(m.n == 4 && !m.w[0].braw && !m.w[1].braw && !m.w[2].braw && m.w[3].op == MCT_OP_BMM);
    CHECK(mct_tune_model_variants(&m, MCT_TUNE_B_BOTH) == 0 && m.n == 7);
    CHECK(m.n == 7 && !m.w[2].braw && m.w[3].braw && m.w[3].M == 16 && m.w[6].op == MCT_OP_BMM);
    CHECK(mct_tune_model_variants(&m, MCT_TUNE_B_ASIS) == 0 && m.n == 7);
    CHECK(mct_tune_model_variants(&m, MCT_TUNE_B_RAW) == 0 && m.n == 4 && m.w[0].braw);
    mct_tune_model_free(&m);
    mct_tune_bvar bv;
    CHECK(mct_tune_bvar_parse("both", &bv) == 0 && bv == MCT_TUNE_B_BOTH);
    CHECK(mct_tune_bvar_parse("raw", &bv) == 0 && bv == MCT_TUNE_B_RAW);
    CHECK(mct_tune_bvar_parse("packed", &bv) == 0 && bv == MCT_TUNE_B_PACKED);
    CHECK(mct_tune_bvar_parse("b=raw", &bv) == MCT_EINVAL);
    struct { const char *text, *want; } badb[] = {
        {"{\"name\":\"t\",\"layers\":[{\"name\":\"q\",\"op\":\"matmul\",\"N\":6,\"K\":3,"
         "\"b\":\"prepacked\"}]}", "layer 0 (q): field \"b\""},
        {"{\"name\":\"t\",\"layers\":[{\"name\":\"s\",\"op\":\"bmm\",\"B\":2,\"N\":6,"
         "\"K\":3,\"b\":\"raw\"}]}", "layer 0 (s): field \"b\": bmm"},
        {"{\"name\":\"t\",\"b\":1,\"layers\":[{\"name\":\"q\",\"op\":\"matmul\",\"N\":6,"
         "\"K\":3}]}", "field \"b\""},
    };
    for (size_t i = 0; i < sizeof badb / sizeof badb[0]; i++) {
        write_file(p, badb[i].text);
        memset(&m, 0, sizeof m);
        err[0] = 0;
        int r = mct_tune_model_load(p, &m, err, sizeof err);
        CHECKF(r == MCT_EINVAL && strstr(err, badb[i].want) && strstr(err, p),
               "b case %zu: %d '%s'", i, r, err);
    }
    /* "w": weight formats per layer or for the file, each a workload (packed variant only for
     * low-precision ones); bmm stays f32 */
    write_file(p, "{\"name\":\"t\",\"w\":[\"f32\",\"i8\"],\"b\":\"both\",\"layers\":["
                  "{\"name\":\"q\",\"op\":\"matmul\",\"N\":64,\"K\":32,\"M\":[1]},"
                  "{\"name\":\"o\",\"op\":\"matmul\",\"N\":32,\"K\":64,\"M\":[4],"
                  "\"w\":\"q4g32\"},{\"name\":\"s\",\"op\":\"bmm\",\"B\":8,\"G\":2,"
                  "\"N\":128,\"K\":64,\"M\":[4]}]}");
    memset(&m, 0, sizeof m);
    CHECKF(mct_tune_model_load(p, &m, err, sizeof err) == 0, "%s", err);
    CHECKF(m.n == 5, "%d workloads", m.n);
    if (m.n == 5) {
        CHECK(!m.w[0].wfmt && !m.w[0].braw && !m.w[1].wfmt && m.w[1].braw);
        CHECK(m.w[2].wfmt == MCT_RT_WF_I8 && !m.w[2].braw && m.w[2].N == 64);
        CHECK(m.w[3].wfmt == MCT_RT_WF_Q4 && m.w[3].wgroup == 32 && m.w[3].N == 32);
        CHECK(m.w[4].op == MCT_OP_BMM && !m.w[4].wfmt);
    }
    /* mctune tune --weights: every matmul in each format asked for */
    mct_tune_wfmts wf;
    CHECK(mct_tune_wfmts_parse("bf16,q4g16,bf16", &wf, err, sizeof err) == 0 && wf.n == 2 &&
          wf.fmt[0] == MCT_RT_WF_BF16 && wf.fmt[1] == MCT_RT_WF_Q4 && wf.group[1] == 16);
    CHECK(mct_tune_model_weights(&m, &wf, err, sizeof err) == 0);
    CHECKF(m.n == 5 && m.w[0].wfmt == MCT_RT_WF_BF16 && m.w[1].wgroup == 16 &&
           m.w[4].op == MCT_OP_BMM, "%d", m.n);
    CHECK(mct_tune_wfmts_parse("q4g64", &wf, err, sizeof err) == 0);
    CHECKF(mct_tune_model_weights(&m, &wf, err, sizeof err) == MCT_ERANGE && strstr(err, "K=32")
           && strstr(err, "q4g64") && m.n == 5, "%s", err);
    CHECKF(mct_tune_wfmts_parse("f32,,i8", &wf, err, sizeof err) == MCT_EINVAL &&
           strstr(err, "empty"), "%s", err);
    CHECKF(mct_tune_wfmts_parse("f32,int4", &wf, err, sizeof err) == MCT_EINVAL &&
           strstr(err, "int4"), "%s", err);
    mct_tune_model_free(&m);
    struct { const char *text, *want; } badw[] = {
        {"{\"name\":\"t\",\"w\":\"int4\",\"layers\":[{\"name\":\"q\",\"op\":\"matmul\","
         "\"N\":6,\"K\":4}]}", "field \"w\": weight formats 'int4'"},
        {"{\"name\":\"t\",\"w\":[],\"layers\":[{\"name\":\"q\",\"op\":\"matmul\","
         "\"N\":6,\"K\":4}]}", "field \"w\": must be"},
        {"{\"name\":\"t\",\"layers\":[{\"name\":\"q\",\"op\":\"matmul\",\"N\":6,"
         "\"K\":48,\"w\":[\"q4g32\"]}]}", "layer 0 (q): field \"w\": 'matmul f32 nt M=1 N=6 "
         "K=48 epi=none' in weight format q4g32"},
        {"{\"name\":\"t\",\"layers\":[{\"name\":\"s\",\"op\":\"bmm\",\"B\":2,\"N\":6,"
         "\"K\":4,\"w\":\"i8\"}]}", "layer 0 (s): field \"w\": bmm"},
    };
    for (size_t i = 0; i < sizeof badw / sizeof badw[0]; i++) {
        write_file(p, badw[i].text);
        memset(&m, 0, sizeof m);
        err[0] = 0;
        int r = mct_tune_model_load(p, &m, err, sizeof err);
        CHECKF(r == MCT_EINVAL && strstr(err, badw[i].want) && strstr(err, p),
               "w case %zu: %d '%s'", i, r, err);
    }
    /* the CLI names the file and the field too */
    char cmd[4096], out[4096];
    snprintf(cmd, sizeof cmd, "%s tune --model %s --db %s/x 2>&1", mctune, p, tmp);
    CHECK(run_cmd(cmd, out, sizeof out) == 2 && strstr(out, p));
}

static int has_wl(const mct_tune_model *m, const char *text)
{
    mct_workload w;
    if (mct_wl_parse(text, &w, NULL, 0))
        return 0;
    for (int i = 0; i < m->n; i++)
        if (!memcmp(&m->w[i], &w, sizeof w))
            return 1;
    return 0;
}

static void test_shapes(void)
{
    char cfg[400], outp[400], cmd[4096], out[256];
    snprintf(cfg, sizeof cfg, "%s/config.json", tmp);
    snprintf(outp, sizeof outp, "%s/llama.json", tmp);
    /* Llama-3-8B's config.json (the fields that matter) */
    write_file(cfg, "{\"architectures\":[\"LlamaForCausalLM\"],\"model_type\":\"llama\","
                    "\"hidden_size\":4096,\"intermediate_size\":14336,\"num_attention_heads\":32,"
                    "\"num_key_value_heads\":8,\"vocab_size\":128256,\"rms_norm_eps\":1e-05}");
    snprintf(cmd, sizeof cmd, "%s shapes %s --name llama-3-8b --M 1,128 > %s", mctune, cfg, outp);
    CHECK(run_cmd(cmd, out, sizeof out) == 0);
    mct_tune_model m = {0};
    char err[512];
    CHECKF(mct_tune_model_load(outp, &m, err, sizeof err) == 0, "%s", err);
    CHECK(!strcmp(m.name, "llama-3-8b"));
    CHECK(has_wl(&m, "matmul f32 nt M=128 N=4096 K=4096 epi=none"));
    CHECK(has_wl(&m, "matmul f32 nt M=1 N=1024 K=4096 epi=none"));
    CHECK(has_wl(&m, "matmul f32 nt M=1 N=14336 K=4096 epi=none"));
    CHECK(has_wl(&m, "matmul f32 nt M=128 N=4096 K=14336 epi=none"));
    CHECK(has_wl(&m, "matmul f32 nt M=1 N=128256 K=4096 epi=none"));
    CHECK(has_wl(&m, "bmm f32 nt B=32 G=4 M=1 N=512 K=128 epi=none"));
    CHECK(has_wl(&m, "bmm f32 nn B=32 G=4 M=128 N=128 K=2048 epi=none"));
    mct_tune_model_free(&m);
    /* Mixtral-style MoE: experts of intermediate_size, no dense MLP */
    write_file(cfg, "{\"model_type\":\"mixtral\",\"hidden_size\":4096,\"intermediate_size\":14336,"
                    "\"num_attention_heads\":32,\"num_key_value_heads\":8,\"vocab_size\":32000,"
                    "\"num_local_experts\":8,\"num_experts_per_tok\":2}");
    CHECK(run_cmd(cmd, out, sizeof out) == 0);
    memset(&m, 0, sizeof m);
    CHECK(mct_tune_model_load(outp, &m, err, sizeof err) == 0);
    CHECK(has_wl(&m, "matmul f32 nt M=1 N=14336 K=4096 epi=none"));
    CHECK(has_wl(&m, "matmul f32 nt M=1 N=4096 K=14336 epi=none"));
    mct_tune_model_free(&m);
    /* DeepSeek-style: routed and shared experts with moe_intermediate_size */
    write_file(cfg, "{\"model_type\":\"deepseek_v3\",\"hidden_size\":7168,\"intermediate_size\":"
                    "18432,\"moe_intermediate_size\":2048,\"n_routed_experts\":256,"
                    "\"n_shared_experts\":1,\"num_attention_heads\":128,\"num_key_value_heads\":"
                    "128,\"vocab_size\":129280}");
    CHECK(run_cmd(cmd, out, sizeof out) == 0);
    memset(&m, 0, sizeof m);
    CHECK(mct_tune_model_load(outp, &m, err, sizeof err) == 0);
    CHECK(has_wl(&m, "matmul f32 nt M=1 N=2048 K=7168 epi=none"));
    CHECK(has_wl(&m, "matmul f32 nt M=128 N=7168 K=2048 epi=none"));
    CHECK(has_wl(&m, "matmul f32 nt M=1 N=18432 K=7168 epi=none"));
    mct_tune_model_free(&m);
    /* Llama 4 Scout: a text_config, experts and a shared expert of 8192, dense MLP of 16384 */
    write_file(cfg, "{\"model_type\":\"llama4\",\"text_config\":{\"hidden_size\":5120,"
                    "\"intermediate_size\":8192,\"intermediate_size_mlp\":16384,"
                    "\"num_local_experts\":16,\"num_attention_heads\":40,"
                    "\"num_key_value_heads\":8,\"head_dim\":128,\"vocab_size\":202048}}");
    CHECK(run_cmd(cmd, out, sizeof out) == 0);
    memset(&m, 0, sizeof m);
    CHECK(mct_tune_model_load(outp, &m, err, sizeof err) == 0);
    CHECK(has_wl(&m, "matmul f32 nt M=1 N=8192 K=5120 epi=none"));
    CHECK(has_wl(&m, "matmul f32 nt M=128 N=5120 K=8192 epi=none"));
    CHECK(has_wl(&m, "matmul f32 nt M=1 N=16384 K=5120 epi=none"));
    CHECK(has_wl(&m, "bmm f32 nt B=40 G=5 M=1 N=2048 K=128 epi=none"));
    mct_tune_model_free(&m);
    /* --weights: the file's "w", so each matmul layer comes in each format; bmm stays f32 */
    snprintf(cmd, sizeof cmd, "%s shapes %s --M 1 --weights f32,i8 > %s", mctune, cfg, outp);
    CHECK(run_cmd(cmd, out, sizeof out) == 0);
    memset(&m, 0, sizeof m);
    CHECKF(mct_tune_model_load(outp, &m, err, sizeof err) == 0, "%s", err);
    CHECK(has_wl(&m, "matmul f32 nt M=1 N=8192 K=5120 epi=none"));
    CHECK(has_wl(&m, "matmul f32 nt M=1 N=8192 K=5120 epi=none w=i8"));
    CHECK(has_wl(&m, "bmm f32 nt B=40 G=5 M=1 N=2048 K=128 epi=none"));
    mct_tune_model_free(&m);
    snprintf(cmd, sizeof cmd, "%s shapes %s --weights f32,int4 2>&1", mctune, cfg);
    CHECK(run_cmd(cmd, out, sizeof out) == 2 && strstr(out, "int4"));
    /* a config without the fields is refused, naming the field */
    write_file(cfg, "{\"model_type\":\"bert\"}");
    snprintf(cmd, sizeof cmd, "%s shapes %s 2>&1", mctune, cfg);
    char o2[1024];
    CHECK(run_cmd(cmd, o2, sizeof o2) == 1 && strstr(o2, "hidden_size"));
}

/* A legal schedule that does not compile is a code generator bug, reported with its schedule,
 * counted apart from candidate failures. A compiler that cannot read its forced include stands
 * in for the emitter writing C that does not compile. */
static char bug_note[2048];
/* The raw variant (b=raw): the heuristic guide never proposes a prepack for it and proposes
 * packing B inside the kernel where its model says the copy pays; the prompt says B is taken
 * as given. */
static int propose_all(mct_guide *g, const mct_workload *w, const mct_sched *node, int threads,
                       const mct_target *t, char **props, int want)
{
    mct_guide_node nd = {.sched = node, .trace = "", .latency_s = -1, .visits = 1};
    mct_guide_ctx c = {0};
    uint64_t rng = 11;
    c.w = w;
    c.cpu = mct_cpu_host();
    c.target = t;
    c.threads = threads;
    c.node = &nd;
    c.base_latency_s = -1;
    c.want = want;
    c.rng = &rng;
    int n = 0;
    char err[256];
    if (mct_guide_propose(g, &c, props, &n, err, sizeof err))
        return -1;
    return n;
}

static void test_raw_guide(void)
{
    static const char *keys[] = {"matmul f32 nt M=1 N=4096 K=4096 epi=none",
                                 "matmul f32 nt M=4 N=4096 K=4096 epi=none",
                                 "matmul f32 nn M=4 N=4096 K=4096 epi=bias+silu",
                                 "matmul f32 nt M=16 N=4096 K=4096 epi=none",
                                 "matmul f32 nt M=128 N=4096 K=1024 epi=none beta=1",
                                 "matmul f32 nn M=512 N=1024 K=1024 epi=gelu"};
    mct_target tg[2] = {mct_target_of_isa(MCT_ISA_AVX2), mct_target_host()};
    int pre_raw = 0, pre_packed = 0, packb_raw = 0, total = 0, illegal = 0;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        for (int raw = 0; raw < 2; raw++)
            for (int th = 1; th <= 2; th++)
                for (int ti = 0; ti < 2; ti++) {
                    char key[256];
                    mct_workload w;
                    snprintf(key, sizeof key, "%s%s", keys[i], raw ? " b=raw" : "");
                    CHECK(mct_wl_parse(key, &w, NULL, 0) == 0);
                    mct_guide *g = NULL;
                    CHECK(mct_guide_heuristic_create(&g) == 0);
                    mct_sched *node = NULL;
                    mct_sched_create(&w, &node);
                    /* from the untuned nest, then from its first proposals */
                    for (int depth = 0; depth < 3 && node; depth++) {
                        char *props[16];
                        int n = propose_all(g, &w, node, th, &tg[ti], props, 16);
                        mct_sched *next = NULL;
                        for (int q = 0; q < n; q++) {
                            total++;
                            int pre = strstr(props[q], "prepack") != NULL;
                            pre_raw += raw && pre;
                            pre_packed += !raw && pre;
                            packb_raw += raw && strstr(props[q], "pack(B, ") != NULL;
                            mct_sched *c;
                            mct_sched_clone(node, &c);
                            if (mct_sched_apply(c, props[q], NULL, 0))
                                illegal++;
                            if (!next && strstr(props[q], "reorder"))
                                next = c;
                            else
                                mct_sched_destroy(c);
                            free(props[q]);
                        }
                        mct_sched_destroy(node);
                        node = next;
                    }
                    mct_sched_destroy(node);
                    mct_guide_destroy(g);
                }
    printf("heuristic guide: %d proposals; raw: %d prepack, %d pack B; packed: %d prepack\n",
           total, pre_raw, packb_raw, pre_packed);
    CHECK(total > 100 && illegal == 0);
    CHECKF(pre_raw == 0, "%d raw proposals prepack", pre_raw);
    CHECK(packb_raw > 0 && pre_packed > 0);

    /* a BLIS node at M = 128: B copied per KC x NC block or per micro-panel, never prepacked;
     * at M = 4 (one row tile) the copy does not pay */
    const char *blis = "tile(i, 128, 4); tile(j, 512, 16); tile(k, 256); "
                       "reorder(j0, k0, i0, j1, i1, k1, i2, j2); pack(B, k0, j2); "
                       "cache_write(i1); unroll(i2, 4); vectorize(j2)";
    for (int mi = 0; mi < 2; mi++) {
        mct_workload w;
        char key[128];
        snprintf(key, sizeof key, "matmul f32 nt M=%d N=4096 K=4096 epi=none b=raw",
                 mi ? 4 : 128);
        mct_wl_parse(key, &w, NULL, 0);
        mct_sched *node = NULL;
        CHECK(mct_sched_parse(&w, blis, &node, NULL, 0) == 0);
        mct_guide *g = NULL;
        mct_guide_heuristic_create(&g);
        char *props[64];
        int n = node ? propose_all(g, &w, node, 1, &tg[0], props, 64) : 0, micro = 0, pre = 0;
        for (int q = 0; q < n; q++) {
            micro += !strcmp(props[q], "pack(B, j1, j2)");
            pre += strstr(props[q], "prepack") != NULL;
            free(props[q]);
        }
        CHECKF(pre == 0 && micro == !mi, "M=%d: %d proposals, micro-panel %d, prepack %d",
               mi ? 4 : 128, n, micro, pre);
        mct_guide_destroy(g);
        mct_sched_destroy(node);
    }

    /* the prompt */
    for (int raw = 0; raw < 2; raw++) {
        mct_workload w;
        mct_wl_parse(raw ? "matmul f32 nt M=4 N=64 K=64 epi=none b=raw"
                         : "matmul f32 nt M=4 N=64 K=64 epi=none", &w, NULL, 0);
        mct_sched *s;
        mct_sched_create(&w, &s);
        mct_guide_node nd = {.sched = s, .trace = "", .latency_s = -1, .visits = 1};
        mct_guide_ctx c = {0};
        c.w = &w;
        c.cpu = mct_cpu_host();
        c.node = &nd;
        c.threads = 1;
        c.want = 2;
        char *p = NULL;
        CHECK(mct_guide_prompt(&c, &p) == 0 && p);
        if (p && raw)
            CHECKF(strstr(p, "M=4 N=64 K=64 epi=none b=raw") &&
                   strstr(p, "takes B as given (b=raw)") &&
                   strstr(p, "prepack is not available") &&
                   strstr(p, "- prepack(B, PANEL[, KCHUNK]): not available for this workload") &&
                   !strstr(p, "\"prepack(B, j2, k1)\"") && !strstr(p, "packed once ahead of time"),
                   "raw prompt:\n%s", p);
        if (p && !raw)
            CHECK(!strstr(p, "b=raw") && strstr(p, "\"prepack(B, j2, k1)\"") &&
                  strstr(p, "B (the weights) packed once ahead of time"));
        free(p);
        mct_sched_destroy(s);
    }
}

static int raw_trial_fn(const mct_db_rec *r, void *ctx)
{
    int *n = ctx;
    if (!strstr(r->workload, "b=raw"))
        return 0;
    n[0]++;
    n[1] += strstr(r->schedule, "prepack") != NULL;
    return 0;
}

typedef struct { const char *sched; int found; } find_ctx;

static int find_trial_fn(const mct_db_rec *r, void *ctx)
{
    find_ctx *f = ctx;
    f->found += strstr(r->workload, "b=raw") && !strcmp(r->schedule, f->sched);
    return 0;
}

/* `mctune tune --b both`: the packed variant, then the raw one, seeded from the packed best
 * records of the same M with their prepack turned into a pack; no raw trial prepacks. */
static void test_tune_both(void)
{
    char db[400], cmd[4096], out[16384], err[256];
    snprintf(db, sizeof db, "%s/both-db", tmp);
    const char *pre = "tile(i, 16, 4); tile(j, 32, 16); tile(k, 32); "
                      "reorder(j0, k0, i0, j1, i1, k1, i2, j2); prepack(B, j2); "
                      "cache_write(i1); unroll(i2, 4); vectorize(j2)";
    CHECK(put_other_cpu_best(db, WL, pre) == 0);
    /* what the raw search must be seeded with */
    mct_workload w;
    mct_sched *s = NULL, *c = NULL;
    char want[4096] = "";
    mct_wl_parse(WL, &w, NULL, 0);
    CHECKF(mct_sched_parse(&w, pre, &s, err, sizeof err) == 0, "%s", err);
    CHECK(s && mct_sched_without_prepack(s, &c) == 0);
    if (c)
        mct_sched_format(c, want, sizeof want);
    mct_sched_destroy(s);
    mct_sched_destroy(c);
    CHECKF(strstr(want, "pack(B, ") && !strstr(want, "prepack"), "%s", want);

    snprintf(cmd, sizeof cmd, "%s tune --workload '%s' --b both --budget 5 --db %s --cache %s "
             "--min-time 0.01 2>&1", mctune, WL, db, cache);
    int rc = run_cmd(cmd, out, sizeof out);
    char l1[300], l2[300];
    snprintf(l1, sizeof l1, "[1/2] %s: ", WL);
    snprintf(l2, sizeof l2, "[2/2] %s b=raw: ", WL);
    CHECKF(rc == 0 && strstr(out, "tune: 2 workloads") && strstr(out, l1) && strstr(out, l2) &&
           strstr(out, "done: 2 tuned"), "rc %d: %s", rc, out);
    const char *sd = strstr(out, l2);
    CHECKF(sd && strstr(sd, "transfer seed"), "the raw search has no transfer seed: %s", out);
    mct_db *d = NULL;
    CHECK(mct_db_open(db, MCT_DB_RDONLY, NULL, 0, &d) == 0);
    if (d) {
        mct_workload wr = w;
        wr.braw = 1;
        uint8_t h[16], hr[16];
        mct_wl_hash(&w, h);
        mct_wl_hash(&wr, hr);
        mct_db_rec r;
        uint64_t me = mct_cpu_key(mct_cpu_host());
        CHECK(mct_db_get_best(d, h, me, 1, &r) == 0);
        CHECK(mct_db_get_best(d, hr, me, 1, &r) == 0 && !strstr(r.schedule, "prepack"));
        int n[2] = {0, 0};
        CHECK(mct_db_iter(d, MCT_DB_TRIALS, raw_trial_fn, n) == 0);
        CHECKF(n[0] == 5 && n[1] == 0, "%d raw trials, %d prepack", n[0], n[1]);
        find_ctx f = {want, 0};
        mct_db_iter(d, MCT_DB_TRIALS, find_trial_fn, &f);
        CHECKF(f.found == 1, "the carried-over seed '%s' was not measured", want);
        mct_db_close(d);
    }
    /* again: both variants are tuned, so both are skipped */
    rc = run_cmd(cmd, out, sizeof out);
    CHECKF(rc == 0 && strstr(out, "done: 0 tuned, 2 skipped"), "%s", out);
    /* --b raw alone names only the raw key; a bad value is refused */
    snprintf(cmd, sizeof cmd, "%s tune --workload '%s' --b raw --budget 5 --db %s --cache %s "
             "--min-time 0.01 2>&1", mctune, WL, db, cache);
    rc = run_cmd(cmd, out, sizeof out);
    CHECKF(rc == 0 && strstr(out, "tune: 1 workload,") && strstr(out, "b=raw: skipped"), "%s",
           out);
    snprintf(cmd, sizeof cmd, "%s tune --workload '%s' --b prepacked --db %s 2>&1", mctune, WL,
             db);
    rc = run_cmd(cmd, out, sizeof out);
    CHECKF(rc == 2 && strstr(out, "--b 'prepacked'"), "rc %d: %s", rc, out);
}

static void keep_note(void *ctx, int loud, const char *line)
{
    (void)ctx;
    if (loud && !bug_note[0])
        snprintf(bug_note, sizeof bug_note, "%s", line);
}

static void test_codegen_bug(void)
{
    mct_meas_opts o;
    mct_meas_opts_default(&o);
    o.cache_dir = cache;
    o.cflags = "-O2 -fPIC -shared -include /nonexistent/mctune-test.h";
    mct_meas *m = NULL;
    char err[512];
    CHECKF(mct_meas_create(&o, &m, err, sizeof err) == 0, "%s", err);
    if (!m)
        return;
    mct_workload w;
    mct_wl_parse(WL, &w, NULL, 0);
    mct_search_opts so = {0};
    mct_search_stats st;
    so.kind = MCT_SEARCH_RANDOM;
    so.budget = 3;
    so.seed = 3;
    so.meas = m;
    so.on_note = keep_note;
    int r = mct_search_run(&w, &so, &st, err, sizeof err);
    CHECKF(r == 0 && st.measured == 3 && st.failed == 3 && st.codegen_bugs == 3,
           "rc %d measured %d failed %d bugs %d", r, st.measured, st.failed, st.codegen_bugs);
    CHECKF(strstr(bug_note, "workload matmul") && strstr(bug_note, "schedule") &&
           strstr(bug_note, "please report"), "note: %s", bug_note);
    mct_meas_destroy(m);
}

int main(void)
{
    sanitized = getenv("MCTUNE_SANITIZED") != NULL;
    const char *mc = getenv("MCTUNE");
    snprintf(mctune, sizeof mctune, "%s", mc && *mc ? mc : "build/mctune");
    if (mctune[0] != '/') {
        char cwd[256];
        if (getcwd(cwd, sizeof cwd)) {
            char t[2048];
            int k = snprintf(t, sizeof t, "%s/%s", cwd, mctune);
            if (k > 0 && (size_t)k < sizeof mctune)
                memcpy(mctune, t, (size_t)k + 1);
        }
    }
    snprintf(tmp, sizeof tmp, "/tmp/mct-test-search-XXXXXX");
    if (!mkdtemp(tmp)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(cache, sizeof cache, "%s/cc", tmp);
    mct_meas_opts o;
    mct_meas_opts_default(&o);
    o.cache_dir = cache;
    o.min_time_s = 0.01;
    mct_meas *m = NULL;
    char err[512];
    CHECKF(mct_meas_create(&o, &m, err, sizeof err) == 0, "%s", err);
    if (m) {
        test_library(m);
        test_db_refused(m);
    }
    mct_meas_destroy(m);
    test_codegen_bug();
    test_models();
    test_shapes();
    test_transfer();
    test_raw_guide();
    test_tune_both();
    test_llmcmd();
    test_resume();
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmp);
    return check_done();
}
