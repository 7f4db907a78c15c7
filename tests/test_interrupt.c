/* A killed run leaves complete lines: `mctune tune` ($MCTUNE, default build/mctune) on a model
 * of tiny workloads, a fresh database, stdout and stderr redirected to files (not a terminal)
 * and a --log file, is killed with SIGKILL once its stdout shows the first workload finished
 * and the log shows the second one started. Then every line written so far is complete: stdout
 * ends with a newline, each finished workload has its summary and its "best:" line (the
 * database's best record) and each started one its transfer-seed line; every log line is a
 * whole JSON object, and the log lines of a workload match the trials stored for it (equal for
 * a finished workload; the trial is stored before its log line, so the killed one may have one
 * trial more). No assertion on time: the test polls the files, then kills. */
#include "tests/check.h"
#include "db/db.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define NWL 6           /* workloads of the model: M = 1..NWL */
#define BUDGET "4"

static char tmp[512];
static char bin[1024];

static void wl_name(int m, char *buf, size_t len)
{
    snprintf(buf, len, "matmul f32 nt M=%d N=64 K=96 epi=none", m);
}

/* Records of one workload in a table: how many, and the last one. */
typedef struct { const char *wl; int n; mct_db_rec last; } tcount;

static int count_fn(const mct_db_rec *r, void *ctx)
{
    tcount *c = ctx;
    if (!strcmp(r->workload, c->wl)) {
        c->n++;
        c->last = *r;
    }
    return 0;
}

static int records_of(mct_db *db, mct_db_table t, const char *wl, mct_db_rec *last)
{
    static tcount c;
    memset(&c, 0, sizeof c);
    c.wl = wl;
    if (mct_db_iter(db, t, count_fn, &c) != MCT_OK)
        return -1;
    if (last)
        *last = c.last;
    return c.n;
}

/* Log lines (whole JSON objects) per workload index 1..NWL; -1 when a line is not one. */
static int count_log(const char *text, int *lines, int *measured)
{
    int bad = 0;
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        cJSON *o = cJSON_ParseWithLength(p, n);
        const cJSON *w = cJSON_GetObjectItemCaseSensitive(o, "workload");
        const cJSON *re = cJSON_GetObjectItemCaseSensitive(o, "reused");
        int k = 0;
        for (int m = 1; m <= NWL && cJSON_IsString(w); m++) {
            char name[128];
            wl_name(m, name, sizeof name);
            if (!strcmp(w->valuestring, name))
                k = m;
        }
        if (!cJSON_IsObject(o) || !k || !cJSON_IsBool(re)) {
            fprintf(stderr, "test_interrupt: log line is not a whole record: '%.*s'\n", (int)n, p);
            bad = 1;
        } else {
            lines[k]++;
            measured[k] += cJSON_IsFalse(re);
        }
        cJSON_Delete(o);
        p += n + (nl != NULL);
    }
    return bad ? -1 : 0;
}

/* Workload k's summary line "[k/NWL] WL: N samples (...)" in out, followed by its best line;
 * *samples and best (the schedule text, "" for the untuned nest) from them. 1 when there. */
static int finished(const char *out, int k, int *samples, char *best, size_t len)
{
    char head[200], name[128];
    wl_name(k, name, sizeof name);
    snprintf(head, sizeof head, "[%d/%d] %s: ", k, NWL, name);
    for (const char *p = strstr(out, head); p; p = strstr(p + 1, head)) {
        if ((p != out && p[-1] != '\n') || sscanf(p + strlen(head), "%d samples (", samples) != 1)
            continue;
        const char *nl = strchr(p, '\n');
        if (!nl || strncmp(nl + 1, "    best: ", 10))
            return 0;
        const char *b = nl + 11, *e = strchr(b, '\n');
        if (!e)
            return 0;
        snprintf(best, len, "%.*s", (int)(e - b), b);
        if (!strcmp(best, "(untuned nest)"))
            best[0] = 0;
        return 1;
    }
    return 0;
}

static int started(const char *out, int k)
{
    char line[200], name[128];
    wl_name(k, name, sizeof name);
    snprintf(line, sizeof line, "\n[%d/%d] %s: 1 transfer seed from the database\n", k, NWL,
             name);
    return strstr(out, line) != NULL;
}

static void test_kill_mid_run(void)
{
    char model[600], db[600], logf[600], outf[600], errf[600], cache[600];
    snprintf(model, sizeof model, "%s/tiny.json", tmp);
    snprintf(db, sizeof db, "%s/db", tmp);
    snprintf(logf, sizeof logf, "%s/tune.jsonl", tmp);
    snprintf(outf, sizeof outf, "%s/stdout.txt", tmp);
    snprintf(errf, sizeof errf, "%s/stderr.txt", tmp);
    snprintf(cache, sizeof cache, "%s/cc", tmp);
    FILE *f = fopen(model, "w");
    CHECK(f != NULL);
    if (!f)
        return;
    fprintf(f, "{\"name\": \"tiny\", \"layers\": [{\"name\": \"proj\", \"op\": \"matmul\", "
            "\"N\": 64, \"K\": 96, \"M\": [");
    for (int m = 1; m <= NWL; m++)
        fprintf(f, "%d%s", m, m < NWL ? ", " : "]}]}\n");
    fclose(f);

    pid_t pid = fork();
    if (pid == 0) {
        int o = open(outf, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int e = open(errf, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (o < 0 || e < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0)
            _exit(126);
        execl(bin, bin, "tune", "--model", model, "--db", db, "--log", logf, "--cache", cache,
              "--budget", BUDGET, "--min-time", "0.01", "--seed", "1", (char *)0);
        _exit(127);
    }
    CHECK(pid > 0);
    if (pid < 0)
        return;
    /* wait for workload 1 finished (stdout) and workload 2 measuring (its first log line) */
    int st = 0, exited = 0;
    char best[4096], wl2[160];
    int samples = 0;
    wl_name(2, wl2, sizeof wl2);
    for (;;) {
        char *out = check_slurp(outf, NULL), *log = check_slurp(logf, NULL);
        int ready = out && log && finished(out, 1, &samples, best, sizeof best) &&
                    strstr(log, wl2);
        free(out);
        free(log);
        if (ready)
            break;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            exited = 1;
            break;
        }
        usleep(10000);
    }
    if (!exited) {
        kill(pid, SIGKILL);
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
        }
    }
    char *err = check_slurp(errf, NULL);
    CHECKF(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "the run ended before it was killed "
           "(status 0x%x) without showing workload 1 finished and workload 2 started; "
           "stderr: %s", st, err ? err : "");
    free(err);

    size_t olen = 0, llen = 0;
    char *out = check_slurp(outf, &olen), *log = check_slurp(logf, &llen);
    CHECK(out && log);
    if (!out || !log) {
        free(out);
        free(log);
        return;
    }
    /* stdout: complete lines only, the header first */
    CHECKF(olen > 0 && out[olen - 1] == '\n', "stdout ends mid-line: '%s'", out);
    CHECKF(!strncmp(out, "tune: 6 workloads of tiny,", 26), "stdout: %s", out);
    /* log: complete JSON objects only */
    int lines[NWL + 1] = {0}, measured[NWL + 1] = {0};
    CHECKF(llen > 0 && log[llen - 1] == '\n', "the log ends mid-line");
    CHECK(count_log(log, lines, measured) == 0);

    mct_db *d = NULL;
    char e[512];
    CHECKF(mct_db_open(db, MCT_DB_RDONLY, e, sizeof e, &d) == MCT_OK, "%s", e);
    if (!d) {
        free(out);
        free(log);
        return;
    }
    int nfin = 0, last = 0;
    for (int k = 1; k <= NWL; k++) {
        char name[128];
        wl_name(k, name, sizeof name);
        int trials = records_of(d, MCT_DB_TRIALS, name, NULL);
        if (lines[k])
            last = k;
        if (finished(out, k, &samples, best, sizeof best)) {
            nfin++;
            /* its summary and best line, the best record stored, one log line a sample, one
             * trial for each measured one (a fresh database: none reused) */
            static mct_db_rec b;
            int nb = records_of(d, MCT_DB_BEST, name, &b);
            CHECKF(nb == 1 && !strcmp(b.schedule, best), "workload %d: best line '%s', %d best "
                   "records stored ('%s')", k, best, nb, b.schedule);
            CHECKF(samples == atoi(BUDGET) && lines[k] == samples && measured[k] == trials,
                   "workload %d: %d samples, %d log lines (%d measured), %d trials stored", k,
                   samples, lines[k], measured[k], trials);
        } else if (lines[k]) {
            /* the workload being searched when the kill came */
            CHECKF(trials == measured[k] || trials == measured[k] + 1,
                   "killed workload %d: %d log lines measured, %d trials stored", k,
                   measured[k], trials);
        } else {
            CHECKF(trials == 0, "workload %d was not started but has %d trials", k, trials);
        }
        /* a workload that started (log lines) printed its transfer line first: the nearest M
         * of the same layer was tuned before it */
        if (k > 1 && lines[k])
            CHECKF(started(out, k), "workload %d measured samples but its transfer line is not "
                   "in stdout: %s", k, out);
    }
    CHECKF(nfin >= 1 && last >= 2 && nfin >= last - 1, "%d workloads finished, the log reaches "
           "workload %d: %s", nfin, last, out);
    mct_db_close(d);
    free(out);
    free(log);
}

int main(void)
{
    const char *mc = getenv("MCTUNE");
    snprintf(bin, sizeof bin, "%s", mc && *mc ? mc : "build/mctune");
    if (access(bin, X_OK) != 0) {
        fprintf(stderr, "test_interrupt: %s is not built (make build/mctune, or set MCTUNE)\n",
                bin);
        CHECK(0);
        return check_done();
    }
    if (check_tmpdir(tmp, sizeof tmp, "interrupt"))
        return 1;
    test_kill_mid_run();
    check_rmtree(tmp);
    return check_done();
}
