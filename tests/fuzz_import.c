/* libFuzzer target: importing a JSON Lines file (mct_db_import) into a scratch database. Each
 * input is one file. The import either succeeds or fails with a negative code and a message
 * that names the file and a non-blank line of it (or, for an export cut short, the file); a
 * failed import changes nothing (the database's export and counts are the same before and
 * after). After a successful import the database keeps its invariants: every best record has a
 * trial of the same schedule, every stored workload and schedule is canonical (format(parse(s))
 * == s, the schedule parsed for its workload), and importing the database's own export again
 * succeeds and changes nothing. The database lives in a mkdtemp folder ($TMPDIR or /tmp), is
 * opened once per process without fsync and is started afresh every RESET_EVERY inputs, so a
 * finding may need what earlier inputs stored: rerun the artifact alone first, else the run.
 * Built by `make fuzz`. */
#include "db/db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RESET_EVERY 200

static char dir[512];
static char dbpath[600], infile[600], expfile[600];
static mct_db *db;
static char *state;         /* the export of the database as it is now */
static size_t state_len;
static int inputs;

static void cleanup(void)
{
    char p[700];
    mct_db_close(db);
    db = NULL;
    const char *names[] = {"db/data.mdb", "db/lock.mdb", "db", "in.jsonl", "export.jsonl"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        if (unlink(p) != 0)
            rmdir(p);
    }
    rmdir(dir);
}

/* The whole database as JSON Lines (trials included); malloc'ed. */
static char *export_all(size_t *len)
{
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    if (!f)
        __builtin_trap();
    if (mct_db_export(db, f, 0, 1, NULL) != MCT_OK) {
        fprintf(stderr, "fuzz_import: export failed: %s\n", mct_db_errmsg(db));
        __builtin_trap();
    }
    fclose(f);
    return buf;
}

static void reset(void)
{
    char p[700], err[512];
    static int made;
    if (!made++) {
        const char *tmp = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/mctune-fuzz-import-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(dir))
            __builtin_trap();
        snprintf(dbpath, sizeof dbpath, "%s/db", dir);
        snprintf(infile, sizeof infile, "%s/in.jsonl", dir);
        snprintf(expfile, sizeof expfile, "%s/export.jsonl", dir);
        atexit(cleanup);
    }
    mct_db_close(db);
    db = NULL;
    snprintf(p, sizeof p, "%s/data.mdb", dbpath);
    unlink(p);
    snprintf(p, sizeof p, "%s/lock.mdb", dbpath);
    unlink(p);
    if (mct_db_open(dbpath, MCT_DB_NOSYNC, err, sizeof err, &db) != MCT_OK) {
        fprintf(stderr, "fuzz_import: cannot open %s: %s\n", dbpath, err);
        __builtin_trap();
    }
    free(state);
    state = export_all(&state_len);
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0)
        __builtin_trap();
}

static int same_stats(const mct_db_stats *a, const mct_db_stats *b)
{
    return a->cpus == b->cpus && a->workloads == b->workloads && a->best == b->best &&
           a->trials == b->trials && a->llm == b->llm;
}

/* Line `no` (1-based, as the importer counts them) of data exists and is not blank. */
static int nonblank_line(const char *data, size_t size, long no)
{
    const char *p = data, *end = data + size;
    for (long i = 1; p < end; i++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (i == no) {
            while (n && p[n - 1] == '\r')
                n--;
            for (size_t k = 0; k < n; k++)
                if (p[k] != ' ' && p[k] != '\t')
                    return 1;
            return 0;
        }
        p += n + 1;
    }
    return 0;
}

/* A refusal: a negative code and a message "FILE:LINE: ..." naming a non-blank line of the
 * input, or "FILE: ..." for an export whose end line is missing (the whole file is at fault). */
static void check_refusal(int rc, const char *data, size_t size)
{
    const char *msg = mct_db_errmsg(db);
    size_t fl = strlen(infile);
    if (rc >= 0 || !msg[0] || strncmp(msg, infile, fl) || msg[fl] != ':') {
        fprintf(stderr, "fuzz_import: refusal %d without a message naming the file: '%s'\n", rc,
                msg);
        __builtin_trap();
    }
    char *end;
    long no = strtol(msg + fl + 1, &end, 10);
    if (end != msg + fl + 1) {
        if (*end != ':' || !nonblank_line(data, size, no)) {
            fprintf(stderr, "fuzz_import: the message names no line of the input: '%s'\n", msg);
            __builtin_trap();
        }
    } else if (rc != MCT_ECORRUPT || msg[fl + 1] != ' ') {
        fprintf(stderr, "fuzz_import: refusal %d names no line: '%s'\n", rc, msg);
        __builtin_trap();
    }
}

/* Every iterated record, copied. */
typedef struct recs { mct_db_rec *r; size_t n, cap; } recs;

static int collect(const mct_db_rec *r, void *ctx)
{
    recs *v = ctx;
    if (v->n == v->cap) {
        v->cap = v->cap ? 2 * v->cap : 16;
        v->r = realloc(v->r, v->cap * sizeof *v->r);
        if (!v->r)
            __builtin_trap();
    }
    v->r[v->n++] = *r;
    return 0;
}

/* The workload text and the schedule text of r are canonical. */
static void check_canonical(const mct_db_rec *r)
{
    mct_workload w;
    mct_sched *s = NULL;
    char why[256], wl[256];
    static char sc[8192];
    if (mct_wl_parse(r->workload, &w, why, sizeof why) != MCT_OK ||
        mct_wl_format(&w, wl, sizeof wl) < 0 || strcmp(wl, r->workload)) {
        fprintf(stderr, "fuzz_import: stored workload '%s' is not canonical\n", r->workload);
        __builtin_trap();
    }
    if (mct_sched_parse(&w, r->schedule, &s, why, sizeof why) != MCT_OK) {
        fprintf(stderr, "fuzz_import: stored schedule '%s' of '%s' does not parse: %s\n",
                r->schedule, r->workload, why);
        __builtin_trap();
    }
    if (mct_sched_format(s, sc, sizeof sc) < 0 || strcmp(sc, r->schedule)) {
        fprintf(stderr, "fuzz_import: stored schedule '%s' is not canonical ('%s')\n",
                r->schedule, sc);
        __builtin_trap();
    }
    mct_sched_destroy(s);
}

static void check_invariants(void)
{
    recs best = {0}, trials = {0};
    if (mct_db_iter(db, MCT_DB_BEST, collect, &best) != MCT_OK ||
        mct_db_iter(db, MCT_DB_TRIALS, collect, &trials) != MCT_OK)
        __builtin_trap();
    for (size_t i = 0; i < best.n; i++) {
        mct_db_rec t;
        const mct_db_rec *b = &best.r[i];
        check_canonical(b);
        if (mct_db_get_trial(db, b, &t) != MCT_OK || strcmp(t.schedule, b->schedule) ||
            strcmp(t.workload, b->workload) || t.cpu != b->cpu || t.threads != b->threads) {
            fprintf(stderr, "fuzz_import: the best record of '%s' has no trial of its schedule "
                    "'%s'\n", b->workload, b->schedule);
            __builtin_trap();
        }
        if (t.median_ns != b->median_ns) {  /* the best equals its trial (db/db.h) */
            fprintf(stderr, "fuzz_import: the best record of '%s' says %g ns, its trial %g ns\n",
                    b->workload, b->median_ns, t.median_ns);
            __builtin_trap();
        }
    }
    for (size_t i = 0; i < trials.n; i++)
        check_canonical(&trials.r[i]);
    free(best.r);
    free(trials.r);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    mct_db_stats before, after;
    mct_db_report rep;
    size_t len;
    if (++inputs % RESET_EVERY == 1)
        reset();
    write_file(infile, data, size);
    if (mct_db_stats_get(db, &before) != MCT_OK)
        __builtin_trap();
    int rc = mct_db_import(db, infile, NULL, NULL, &rep);
    char *now = export_all(&len);
    if (rc != MCT_OK) {
        check_refusal(rc, (const char *)data, size);
        if (mct_db_stats_get(db, &after) != MCT_OK || !same_stats(&before, &after) ||
            len != state_len || memcmp(now, state, len)) {
            fprintf(stderr, "fuzz_import: a refused import changed the database\n");
            __builtin_trap();
        }
        free(now);
        return 0;
    }
    free(state);
    state = now;
    state_len = len;
    check_invariants();
    /* the database's own export imports as a no-op */
    write_file(expfile, state, state_len);
    rc = mct_db_import(db, expfile, NULL, NULL, &rep);
    if (rc != MCT_OK) {
        fprintf(stderr, "fuzz_import: re-importing the export failed: %s\n", mct_db_errmsg(db));
        __builtin_trap();
    }
    now = export_all(&len);
    if (rep.added || rep.replaced || rep.conflicts || len != state_len ||
        memcmp(now, state, len)) {
        fprintf(stderr, "fuzz_import: re-importing the export changed the database (added %zu, "
                "replaced %zu, conflicts %zu)\n", rep.added, rep.replaced, rep.conflicts);
        __builtin_trap();
    }
    free(now);
    return 0;
}
