/* Concurrent tuning: two `mctune tune` processes ($MCTUNE, default build/mctune) on one tiny
 * workload and one fresh database, then a third run after them. Checks what db/db.h promises:
 * the best record equals one stored trial, the trials are the distinct schedules the runs
 * measured (no run measures a schedule whose trial was stored when it picked it), and nothing
 * is lost or measured past the budgets. No assertion on time. */
#include "tests/check.h"
#include "db/db.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WL "matmul f32 nn M=8 N=16 K=16 epi=none"
#define BUDGET 6

static char dir[] = "/tmp/mctune-test-concurrency-XXXXXX";

typedef struct {
    int n;
    int best_has_trial;
    mct_db_rec best;
} scan_t;

static int count_fn(const mct_db_rec *r, void *ctx)
{
    scan_t *s = ctx;
    if (strcmp(r->workload, WL))
        return 0;
    s->n++;
    if (!strcmp(r->schedule, s->best.schedule) &&
        fabs(r->median_ns - s->best.median_ns) <= 1e-9 * s->best.median_ns)
        s->best_has_trial++;
    return 0;
}

static int best_fn(const mct_db_rec *r, void *ctx)
{
    scan_t *s = ctx;
    if (!strcmp(r->workload, WL))
        s->best = *r;
    return 0;
}

/* Trials of WL and whether the best record equals one of them. */
static int scan(scan_t *s)
{
    char path[512], err[512];
    mct_db *db = NULL;
    memset(s, 0, sizeof *s);
    snprintf(path, sizeof path, "%s/db", dir);
    if (mct_db_open(path, MCT_DB_RDONLY, err, sizeof err, &db)) {
        fprintf(stderr, "test_concurrency: %s\n", err);
        return -1;
    }
    int rc = mct_db_iter(db, MCT_DB_BEST, best_fn, s);
    if (!rc)
        rc = mct_db_iter(db, MCT_DB_TRIALS, count_fn, s);
    mct_db_close(db);
    return rc;
}

/* "(N measured, R reused" of a run's output; -1 when absent. */
static int measured_of(const char *path, int *reused)
{
    char *t = check_slurp(path, NULL);
    const char *p = t ? strstr(t, " samples (") : NULL;
    int m = -1;
    *reused = -1;
    if (!p || sscanf(p, " samples (%d measured, %d reused", &m, reused) != 2)
        m = -1;
    free(t);
    return m;
}

int main(void)
{
    const char *bin = getenv("MCTUNE") && *getenv("MCTUNE") ? getenv("MCTUNE") : "build/mctune";
    if (!mkdtemp(dir)) {
        CHECK(0);
        return check_done();
    }
    char out[4096], pa[600], pb[600], pc[600];
    snprintf(pa, sizeof pa, "%s/a.out", dir);
    snprintf(pb, sizeof pb, "%s/b.out", dir);
    snprintf(pc, sizeof pc, "%s/c.out", dir);
    /* the same seed: both runs tend to pick the same schedules, the case that matters. --retune
     * so that the later one searches even when the other has stored a best already. */
    const char *args = "--workload '" WL "' --budget 6 --min-time 0.01 --guide random --seed 3 "
                       "--retune";
    int rc = check_sh(out, sizeof out, "%s tune --db %s/db %s > %s 2>&1 & p1=$!; "
                      "%s tune --db %s/db %s > %s 2>&1 & p2=$!; "
                      "wait $p1; a=$?; wait $p2; b=$?; echo $a $b", bin, dir, args, pa,
                      bin, dir, args, pb);
    int ra = -1, rb = -1;
    CHECKF(rc == 0 && sscanf(out, "%d %d", &ra, &rb) == 2 && ra == 0 && rb == 0,
           "two runs: '%s'", out);
    int reA, reB, mA = measured_of(pa, &reA), mB = measured_of(pb, &reB);
    CHECKF(mA >= 1 && mB >= 0 && mA <= BUDGET && mB <= BUDGET && reA >= 0 && reB >= 0,
           "measured %d and %d (reused %d, %d)", mA, mB, reA, reB);
    scan_t s;
    CHECK(scan(&s) == 0);
    /* every measured schedule is stored once; a schedule both picked before either stored it
     * may be measured by both */
    int hi = mA > mB ? mA : mB;
    CHECKF(s.n >= hi && s.n <= mA + mB, "%d trials for %d + %d measured", s.n, mA, mB);
    CHECKF(s.best.median_ns > 0 && s.best_has_trial == 1,
           "the best (%s, %g ns) equals %d stored trials", s.best.schedule, s.best.median_ns,
           s.best_has_trial);

    /* a third run after them: whatever it measures is new (a stored trial is never measured
     * again), whatever it reuses was stored */
    int before = s.n;
    rc = check_sh(NULL, 0, "%s tune --db %s/db %s > %s 2>&1", bin, dir, args, pc);
    int reC, mC = measured_of(pc, &reC);
    CHECKF(rc == 0 && mC >= 0 && reC >= 1 && mC + reC <= BUDGET, "third run: rc %d, %d "
           "measured, %d reused", rc, mC, reC);
    CHECK(scan(&s) == 0);
    CHECKF(s.n == before + mC, "third run measured %d, trials %d -> %d", mC, before, s.n);
    CHECKF(s.best_has_trial == 1, "after the third run the best (%s) has %d trials",
           s.best.schedule, s.best_has_trial);

    char rm[600];
    snprintf(rm, sizeof rm, "rm -rf '%s'", dir);
    if (system(rm) != 0)
        fprintf(stderr, "test_concurrency: could not remove %s\n", dir);
    return check_done();
}
