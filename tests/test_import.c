/* Class 1 of the reliability pass: every record that enters the database (import, merge, put)
 * passes the checks a tuner-written one passes. The schedule parses, is legal for its workload,
 * is canonical; a best record has a trial of its schedule; anything else is refused naming the
 * file, line and field, and the import changes nothing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db/db.h"
#include "tests/check.h"

#define WL "matmul f32 nn M=16 N=256 K=512 epi=none"
#define CPU "00000000000000ab"
#define GOOD "tile(j, 16); reorder(i, k, j0, j1); vectorize(j1)"

static char root[256];
static int seq;

static const char *newdir(const char *tag)
{
    static char p[8][400];
    static int ring;
    char *d = p[ring++ % 8];
    snprintf(d, 400, "%s/%s%d", root, tag, seq++);
    return d;
}

static mct_db *open_db(const char *path)
{
    mct_db *db = NULL;
    char err[2048];
    int rc = mct_db_open(path, MCT_DB_NOSYNC, err, sizeof err, &db);
    CHECKF(rc == 0 && db, "open %s: %s", path, err);
    return db;
}

static const char *write_file(const char *text)
{
    static char f[8][400];
    static int ring;
    char *p = f[ring++ % 8];
    snprintf(p, 400, "%s/in%d.jsonl", root, seq++);
    FILE *o = fopen(p, "w");
    if (o) {
        fputs(text, o);
        fclose(o);
    }
    return p;
}

/* One record line; the schedule text goes in as a JSON string (escaped by the caller). */
static void line(char *buf, size_t n, const char *type, const char *sched, double ns)
{
    snprintf(buf, n, "{\"type\":\"%s\",\"workload\":\"" WL "\",\"cpu\":\"" CPU "\",\"threads\":1,"
             "\"schedule\":\"%s\",\"median_ns\":%g,\"gflops\":1,\"samples\":3}\n", type, sched, ns);
}

static int count_cb(const mct_db_rec *r, void *ctx)
{
    (void)r;
    (*(size_t *)ctx)++;
    return 0;
}

static void best_of(mct_db *db, mct_db_rec *out, int *rc)
{
    mct_workload w;
    uint8_t h[16];
    mct_wl_parse(WL, &w, NULL, 0);
    mct_wl_hash(&w, h);
    *rc = mct_db_get_best(db, h, 0xab, 1, out);
}

static void test_bad_schedules(void)
{
    mct_db *db = open_db(newdir("sched"));
    char valid[2048], vt[2048], bad[2048], text[8192];
    mct_db_report rep;
    mct_db_rec out;
    int rc;
    if (!db)
        return;
    /* a valid best with its trial goes in */
    line(valid, sizeof valid, "best", GOOD, 1000);
    line(vt, sizeof vt, "trial", GOOD, 1000);
    snprintf(text, sizeof text, "%s%s", valid, vt);
    CHECK(mct_db_import(db, write_file(text), NULL, NULL, &rep) == 0 && rep.added == 2);
    const char *cases[][2] = {
        {"make it faster by tiling the i loop", "not a legal schedule"},
        {"frobnicate(i)", "'frobnicate' is not a transformation"},
        {"tile(i, 99999999999)", "out of range"},
        {"tile(i, 1e30)", "not a whole number"},
        {"$(rm -rf ~); tile(i, 4)", "not a legal schedule"},
        {"} int main(void) { system(\\\"sh\\\"); } {", "not a legal schedule"},
        {"vectorize(q9)", "no loop named 'q9'"},
        {"tile(i, 8);vectorize(j)", "not the innermost loop"},
        /* legal but not canonical: its hash would not name it */
        {"tile(j,16) ; reorder(i,k,j0,j1); vectorize(j1)", "canonical"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int kind = 0; kind < 2; kind++) {
            /* faster than the stored best: must not replace it */
            line(bad, sizeof bad, kind ? "trial" : "best", cases[i][0], 1);
            snprintf(text, sizeof text, "%s%s%s", vt, bad, vt);
            const char *f = write_file(text);
            char want[512];
            snprintf(want, sizeof want, "%s:2: field 'schedule'", f);
            rc = mct_db_import(db, f, NULL, NULL, &rep);
            const char *msg = mct_db_errmsg(db);
            CHECKF(rc == MCT_EINVAL && strstr(msg, want) && strstr(msg, cases[i][1]) &&
                   strstr(msg, "nothing was imported"), "case %zu/%d: rc %d '%s'", i, kind, rc,
                   msg);
            best_of(db, &out, &rc);
            CHECK(rc == 0 && !strcmp(out.schedule, GOOD) && out.median_ns == 1000);
        }
    /* a schedule of another workload's loops (bmm has b) is not legal here */
    line(bad, sizeof bad, "trial", "tile(b, 2)", 5);
    CHECK(mct_db_import(db, write_file(bad), NULL, NULL, &rep) == MCT_EINVAL &&
          strstr(mct_db_errmsg(db), ":1: field 'schedule'"));
    size_t n = 0;
    CHECK(mct_db_iter(db, MCT_DB_TRIALS, count_cb, &n) == 0 && n == 1);
    mct_db_close(db);
}

static void test_best_needs_trial(void)
{
    mct_db *db = open_db(newdir("bt"));
    char b[2048], t[2048], text[8192];
    mct_db_report rep;
    mct_db_rec out;
    int rc;
    if (!db)
        return;
    /* a best without any trial of its schedule: refused, naming its line */
    line(b, sizeof b, "best", GOOD, 10);
    const char *f = write_file(b);
    rc = mct_db_import(db, f, NULL, NULL, &rep);
    CHECKF(rc == MCT_EINVAL && strstr(mct_db_errmsg(db), ":1: field 'schedule'") &&
           strstr(mct_db_errmsg(db), "has no trial") && strstr(mct_db_errmsg(db), f),
           "rc %d '%s'", rc, mct_db_errmsg(db));
    best_of(db, &out, &rc);
    CHECK(rc == MCT_ENOTFOUND);
    /* a trial of another schedule does not count */
    line(t, sizeof t, "trial", "tile(j, 8)", 10);
    snprintf(text, sizeof text, "%s%s", b, t);
    CHECK(mct_db_import(db, write_file(text), NULL, NULL, &rep) == MCT_EINVAL);
    mct_db_stats st;
    CHECK(mct_db_stats_get(db, &st) == 0 && st.best == 0 && st.trials == 0 && st.workloads == 0);
    /* the trial later in the same file (export order: best before trials) is enough */
    line(t, sizeof t, "trial", GOOD, 10);
    snprintf(text, sizeof text, "%s%s", b, t);
    CHECK(mct_db_import(db, write_file(text), NULL, NULL, &rep) == 0);
    /* and so is one already stored */
    line(b, sizeof b, "best", GOOD, 10);
    CHECK(mct_db_import(db, write_file(b), NULL, NULL, &rep) == 0 && rep.same == 1);
    mct_db_close(db);
}

/* A best record equals its trial after an import, as after a put: a best whose trial says
 * otherwise takes the trial's measurement, and a faster trial of the best's schedule updates the
 * best (the invariant of db/db.h that concurrent tuning relies on). */
static void test_best_matches_trial(void)
{
    mct_db *db = open_db(newdir("bm"));
    char b[2048], t[2048], text[8192];
    mct_db_report rep;
    mct_db_rec out;
    int rc;
    if (!db)
        return;
    line(b, sizeof b, "best", GOOD, 100);
    line(t, sizeof t, "trial", GOOD, 50);
    snprintf(text, sizeof text, "%s%s", b, t);
    CHECK(mct_db_import(db, write_file(text), NULL, NULL, &rep) == 0);
    best_of(db, &out, &rc);
    CHECKF(rc == 0 && out.median_ns == 50, "best median %g after import", out.median_ns);
    line(t, sizeof t, "trial", GOOD, 30);
    CHECK(mct_db_import(db, write_file(t), NULL, NULL, &rep) == 0 && rep.replaced == 1);
    best_of(db, &out, &rc);
    CHECKF(rc == 0 && out.median_ns == 30, "best median %g after a faster trial", out.median_ns);
    /* a trial of another schedule, even a faster one, leaves the best record alone */
    line(t, sizeof t, "trial", "tile(j, 8)", 20);
    CHECK(mct_db_import(db, write_file(t), NULL, NULL, &rep) == 0);
    best_of(db, &out, &rc);
    CHECK(rc == 0 && out.median_ns == 30 && !strcmp(out.schedule, GOOD));
    mct_db_close(db);
}

static void test_put_and_merge(void)
{
    const char *pa = newdir("pa"), *pb = newdir("pb");
    mct_db *a = open_db(pa), *b = open_db(pb);
    mct_db_rec r, out;
    mct_db_report rep;
    if (!a || !b)
        return;
    memset(&r, 0, sizeof r);
    snprintf(r.workload, sizeof r.workload, WL);
    r.cpu = 0xab;
    r.threads = 1;
    r.median_ns = 10;
    snprintf(r.schedule, sizeof r.schedule, "frobnicate(i)");
    CHECK(mct_db_put_trial(a, &r) == MCT_EINVAL && strstr(mct_db_errmsg(a), "frobnicate"));
    CHECK(mct_db_put_best(a, &r, NULL) == MCT_EINVAL && strstr(mct_db_errmsg(a), "'schedule'"));
    snprintf(r.schedule, sizeof r.schedule, "tile(j,16)");
    CHECK(mct_db_put_best(a, &r, NULL) == MCT_EINVAL && strstr(mct_db_errmsg(a), "canonical"));
    /* a best put through the API gets its trial with it */
    snprintf(r.schedule, sizeof r.schedule, GOOD);
    CHECK(mct_db_put_best(b, &r, NULL) == 0);
    CHECK(mct_db_get_trial(b, &r, &out) == 0 && out.median_ns == 10);
    mct_db_close(b);
    CHECK(mct_db_merge(a, pb, NULL, NULL, &rep) == 0 && rep.added >= 2);
    int rc;
    best_of(a, &out, &rc);
    CHECK(rc == 0 && !strcmp(out.schedule, GOOD));
    mct_db_close(a);
}

/* The raw variant (b=raw) is stored like any workload: its records go in when their schedule
 * takes B as given, and one that prepacks B is refused (import and put) naming the field. */
#define WL_RAW WL " b=raw"
#define PRE "tile(j, 16); reorder(i, k, j0, j1); prepack(B, j1); vectorize(j1)"
#define PACKB "tile(j, 16); reorder(i, k, j0, j1); pack(B, k, j1); vectorize(j1)"

static void line_wl(char *buf, size_t n, const char *wl, const char *type, const char *sched,
                    double ns)
{
    snprintf(buf, n, "{\"type\":\"%s\",\"workload\":\"%s\",\"cpu\":\"" CPU "\",\"threads\":1,"
             "\"schedule\":\"%s\",\"median_ns\":%g,\"gflops\":1,\"samples\":3}\n", type, wl,
             sched, ns);
}

static int fam_cb(const mct_db_rec *r, void *ctx)
{
    int *n = ctx;
    n[0]++;
    n[1] += strstr(r->workload, "b=raw") != NULL;
    return 0;
}

static void test_raw_records(void)
{
    mct_db *db = open_db(newdir("raw"));
    char l1[2048], l2[2048], l3[2048], l4[2048], text[8192];
    mct_db_report rep;
    mct_db_rec out, r;
    if (!db)
        return;
    /* the packed variant may prepack; the raw one packs inside the kernel */
    line_wl(l1, sizeof l1, WL, "best", PRE, 900);
    line_wl(l2, sizeof l2, WL, "trial", PRE, 900);
    line_wl(l3, sizeof l3, WL_RAW, "best", PACKB, 1100);
    line_wl(l4, sizeof l4, WL_RAW, "trial", PACKB, 1100);
    snprintf(text, sizeof text, "%s%s%s%s", l1, l2, l3, l4);
    int rc = mct_db_import(db, write_file(text), NULL, NULL, &rep);
    CHECKF(rc == 0 && rep.added == 4, "rc %d: %s", rc, mct_db_errmsg(db));
    mct_workload w, wr;
    uint8_t h[16], hr[16];
    mct_wl_parse(WL, &w, NULL, 0);
    mct_wl_parse(WL_RAW, &wr, NULL, 0);
    mct_wl_hash(&w, h);
    mct_wl_hash(&wr, hr);
    CHECK(mct_db_get_best(db, hr, 0xab, 1, &out) == 0 && !strcmp(out.schedule, PACKB) &&
          !strcmp(out.workload, WL_RAW));
    CHECK(mct_db_get_best(db, h, 0xab, 1, &out) == 0 && !strcmp(out.schedule, PRE));
    /* each variant is a family of its own */
    int n[2] = {0, 0};
    CHECK(mct_db_iter_family(db, &wr, fam_cb, n) == 0 && n[0] == 1 && n[1] == 1);
    n[0] = n[1] = 0;
    CHECK(mct_db_iter_family(db, &w, fam_cb, n) == 0 && n[0] == 1 && n[1] == 0);
    /* a raw record that prepacks: refused, nothing imported */
    for (int kind = 0; kind < 2; kind++) {
        line_wl(l1, sizeof l1, WL_RAW, kind ? "trial" : "best", PRE, 1);
        snprintf(text, sizeof text, "%s%s", l4, l1);
        const char *f = write_file(text);
        char want[512];
        snprintf(want, sizeof want, "%s:2: field 'schedule'", f);
        rc = mct_db_import(db, f, NULL, NULL, &rep);
        const char *msg = mct_db_errmsg(db);
        CHECKF(rc == MCT_EINVAL && strstr(msg, want) && strstr(msg, "b=raw") &&
               strstr(msg, "nothing was imported"), "kind %d: rc %d '%s'", kind, rc, msg);
    }
    CHECK(mct_db_get_best(db, hr, 0xab, 1, &out) == 0 && !strcmp(out.schedule, PACKB));
    /* and through the API */
    memset(&r, 0, sizeof r);
    snprintf(r.workload, sizeof r.workload, WL_RAW);
    r.cpu = 0xab;
    r.threads = 1;
    r.median_ns = 1;
    snprintf(r.schedule, sizeof r.schedule, PRE);
    CHECK(mct_db_put_trial(db, &r) == MCT_EINVAL && strstr(mct_db_errmsg(db), "b=raw"));
    CHECK(mct_db_put_best(db, &r, NULL) == MCT_EINVAL && strstr(mct_db_errmsg(db), "'schedule'"));
    /* a raw key on bmm is no workload */
    snprintf(r.workload, sizeof r.workload, "bmm f32 nt B=2 G=1 M=4 N=8 K=8 epi=none b=raw");
    snprintf(r.schedule, sizeof r.schedule, "%s", "");
    CHECK(mct_db_put_trial(db, &r) == MCT_EINVAL && strstr(mct_db_errmsg(db), "b=raw"));
    mct_db_close(db);
}

/* The command line: exit status 1, the message on stderr, the database unchanged. */
static void test_cli(void)
{
    const char *bin = getenv("MCTUNE") ? getenv("MCTUNE") : "build/mctune";
    char out[8192], bad[2048], vt[2048], text[8192];
    if (access(bin, X_OK)) {
        printf("note: %s not built; command-line checks skipped\n", bin);
        return;
    }
    const char *d = newdir("cli");
    line(vt, sizeof vt, "trial", GOOD, 1000);
    line(bad, sizeof bad, "best", "tile(i, 99999999999)", 1);
    snprintf(text, sizeof text, "%s%s", vt, bad);
    const char *f = write_file(text);
    int rc = check_sh(out, sizeof out, "%s db import %s --db %s 2>&1", bin, f, d);
    CHECKF(rc == 1 && strstr(out, ":2: field 'schedule' = 'tile(i, 99999999999)'") &&
           strstr(out, "nothing was imported"), "rc %d: %s", rc, out);
    rc = check_sh(out, sizeof out, "%s db stats --db %s 2>&1", bin, d);
    CHECKF(rc == 0 && strstr(out, "best       0") && strstr(out, "trials     0"), "%s", out);
    /* class 6 neighbours: a folder given as the model file is named as one */
    rc = check_sh(out, sizeof out, "%s tune --model %s --db %s 2>&1", bin, root, d);
    CHECKF(rc != 0 && strstr(out, "is a directory") && !strstr(out, "near byte"), "rc %d: %s", rc,
           out);
    /* db get says at which sample the best was found, not how many ran */
    snprintf(text, sizeof text, "%s", vt);
    line(bad, sizeof bad, "best", GOOD, 1000);
    strcat(text, bad);
    f = write_file(text);
    rc = check_sh(out, sizeof out, "%s db import %s --db %s 2>&1 && %s db get '" WL "' --cpu " CPU
                  " --db %s 2>&1", bin, f, d, bin, d);
    CHECKF(rc == 0 && strstr(out, "best found at sample 3"), "rc %d: %s", rc, out);
}

int main(void)
{
    if (check_tmpdir(root, sizeof root, "import"))
        return 1;
    test_bad_schedules();
    test_best_needs_trial();
    test_best_matches_trial();
    test_put_and_merge();
    test_raw_records();
    test_cli();
    check_rmtree(root);
    return check_done();
}
