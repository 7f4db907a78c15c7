/* The fleet on a real Slurm: starts a private one-node cluster (scripts/fleet/slurm-local.sh:
 * munge key and slurm.conf in a temporary folder, daemons on 127.0.0.1, their PIDs recorded),
 * submits the tuning array of scripts/fleet/fleet-slurm.sh with a tiny model, one task per ISA
 * tier this host runs, and checks that every task's records reached the merged database, that
 * the generated library holds one table per tier and that forcing each table (MCTFLEET_CPU=KEY)
 * computes correctly. Then a second fleet is cancelled mid-task (scancel: SIGTERM, as on
 * preemption) and resumed with --resume, which must continue from the exported trials; a cut
 * export must be refused by import. The cluster is stopped at the end, on a signal or a crash,
 * and no process of it may be left. Before that, the Kubernetes variant (no cluster here): the
 * manifests scripts/fleet/k8s/render.sh writes are validated offline by check.py.
 * When Slurm cannot be installed (scripts/install-deps.sh fleet) or started, the test prints
 * SKIP and ends with "0 passed, 0 failed, 1 skipped": not run, not passed. */
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/check.h"

static char root[PATH_MAX], cluster[PATH_MAX + 16], conf[PATH_MAX + 48], mctune[PATH_MAX];
static char srcdir[PATH_MAX];
static volatile sig_atomic_t cluster_up;
static char out[1 << 16];

static const char *const tiers[] = {"generic", "sse4.2", "avx2", "avx512", "avx512-bf16-vnni",
                                    "amx"};
enum { NTIERS = 6 };

/* fork and exec only: also called from signal handlers */
static int stop_cluster(void)
{
    char script[PATH_MAX + 64];
    int st = 0;
    if (!cluster_up)
        return 0;
    cluster_up = 0;
    snprintf(script, sizeof script, "%s/scripts/fleet/slurm-local.sh", srcdir);
    pid_t p = fork();
    if (p == 0) {
        execl("/bin/bash", "bash", script, "stop", cluster, (char *)NULL);
        _exit(127);
    }
    if (p < 0 || waitpid(p, &st, 0) < 0)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void on_signal(int sig)
{
    static const char msg[] = "test_fleet: signal; stopping the private Slurm\n";
    if (write(2, msg, sizeof msg - 1) < 0) { /* nothing to do */ }
    stop_cluster();
    signal(sig, SIG_DFL);
    raise(sig);
}

static void at_exit(void)
{
    stop_cluster();
}

static int skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int skip(const char *fmt, ...)
{
    va_list ap;
    printf("SKIP test_fleet: ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n%d passed, %d failed, 1 skipped\n", check_pass_, check_fail_);
    if (root[0] && !check_fail_)
        check_sh(NULL, 0, "rm -rf %s", root);
    return check_fail_ ? 1 : 0;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec / 1e9;
}

/* value of "key=" in a line of text (up to the next space), or "" */
static const char *field(const char *line, const char *key, char *buf, size_t n)
{
    char pat[64];
    snprintf(pat, sizeof pat, " %s=", key);
    const char *p = strstr(line, pat);
    if (!p && !strncmp(line, pat + 1, strlen(pat + 1)))
        p = line - 1;
    buf[0] = 0;
    if (!p)
        return buf;
    p += strlen(pat);
    size_t i = 0;
    while (p[i] && p[i] != ' ' && p[i] != '\n' && i + 1 < n) {
        buf[i] = p[i];
        i++;
    }
    buf[i] = 0;
    return buf;
}

/* the line of text starting with prefix, copied into buf ("" when none) */
static const char *line_of(const char *text, const char *prefix, char *buf, size_t n)
{
    const char *p = text;
    buf[0] = 0;
    while (p && *p) {
        if (!strncmp(p, prefix, strlen(prefix))) {
            const char *e = strchr(p, '\n');
            size_t len = e ? (size_t)(e - p) : strlen(p);
            snprintf(buf, n, "%.*s", (int)len, p);
            return buf;
        }
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return buf;
}

static int count_lines(const char *file, const char *needle)
{
    char cmd_out[64];
    if (check_sh(cmd_out, sizeof cmd_out, "grep -c -- '%s' '%s' 2>/dev/null", needle, file) > 1)
        return -1;
    return atoi(cmd_out);
}

int main(void)
{
    double t0 = now();
    int rc;
    const char *m = getenv("MCTUNE");
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (!getcwd(srcdir, sizeof srcdir) || !realpath(m && *m ? m : "build/mctune", mctune)) {
        fprintf(stderr, "test_fleet: the mctune binary ($MCTUNE, default build/mctune) is not "
                "there; build it first (make)\n");
        printf("0 passed, 1 failed\n");
        return 1;
    }
    snprintf(root, sizeof root, "/tmp/mctune-fleet-test.XXXXXX");
    if (!mkdtemp(root)) {
        printf("0 passed, 1 failed\n");
        return 1;
    }

    /* ---- Kubernetes variant: no cluster here, so its manifests are validated offline ---- */
    const char *k8s = "scripts/fleet/k8s";
    rc = check_sh(out, sizeof out, "cd %1$s && R=%2$s/%3$s; "
                  "$R/render.sh tune --targets icelake,sapphirerapids,genoa --image r/mctune:1 "
                  "--pvc fleet > pools.yaml && $R/render.sh merge --targets "
                  "icelake,sapphirerapids,genoa --image r/mctune:1 --pvc fleet > merge1.yaml && "
                  "python3 $R/check.py pools.yaml merge1.yaml 2>&1", root, srcdir, k8s);
    CHECKF(rc == 0 && strstr(out, "ok: 4 Jobs valid; 3 targets"), "pools manifests:\n%s", out);
    rc = check_sh(out, sizeof out, "cd %1$s && R=%2$s/%3$s; "
                  "$R/render.sh tune --place tier --pool spr --targets generic,avx2,avx512 "
                  "--image r/mctune:1 --pvc fleet > tiers.yaml && $R/render.sh merge --targets "
                  "generic,avx2,avx512 --image r/mctune:1 --pvc fleet > merge2.yaml && "
                  "python3 $R/check.py tiers.yaml merge2.yaml 2>&1", root, srcdir, k8s);
    CHECKF(rc == 0 && strstr(out, "ok: 2 Jobs valid; 3 targets"), "tier manifests:\n%s", out);
    /* the check catches a misspelt field, a wrong index count and mismatched targets */
    rc = check_sh(out, sizeof out, "cd %1$s && sed 's/nodeSelector/nodeselector/' pools.yaml > "
                  "b1.yaml && python3 %2$s/%3$s/check.py b1.yaml merge1.yaml 2>&1", root, srcdir,
                  k8s);
    CHECKF(rc == 1 && strstr(out, "'nodeselector' was unexpected"), "misspelt field:\n%s", out);
    rc = check_sh(out, sizeof out, "cd %1$s && sed 's/completions: 3/completions: 2/' tiers.yaml "
                  "> b2.yaml && python3 %2$s/%3$s/check.py b2.yaml merge2.yaml 2>&1", root,
                  srcdir, k8s);
    CHECKF(rc == 1 && strstr(out, "2 completions for 3 targets"), "index count:\n%s", out);
    rc = check_sh(out, sizeof out, "cd %s && python3 %s/%s/check.py pools.yaml merge2.yaml 2>&1",
                  root, srcdir, k8s);
    CHECKF(rc == 1 && strstr(out, "differ from the tuning Jobs'"), "targets:\n%s", out);
    rc = check_sh(out, sizeof out, "bash %s/render.sh tune --targets Bad_Pool --image i --pvc p "
                  "2>&1", k8s);
    CHECKF(rc == 2 && strstr(out, "Bad_Pool"), "render.sh with a bad pool name:\n%s", out);

    if (geteuid() != 0)
        return skip("needs root to run slurmd (it starts jobs as their user)");

    /* Slurm and munge: installed here when missing */
    const char *have = "PATH=$PATH:/usr/sbin:/sbin; command -v sbatch && command -v squeue && "
                       "command -v slurmctld && command -v slurmd && command -v munged";
    if (check_sh(NULL, 0, "%s >/dev/null 2>&1", have) != 0) {
        printf("note: installing Slurm and munge (scripts/install-deps.sh fleet)\n");
        int rc = check_sh(out, sizeof out, "sh scripts/install-deps.sh fleet 2>&1 | tail -5");
        if (rc != 0 || check_sh(NULL, 0, "%s >/dev/null 2>&1", have) != 0)
            return skip("Slurm could not be installed (apt-get install slurm-wlm munge): %s",
                        out);
    }

    snprintf(cluster, sizeof cluster, "%s/cluster", root);
    snprintf(conf, sizeof conf, "SLURM_CONF=%s/slurm.conf", cluster);
    atexit(at_exit);
    int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGSEGV, SIGABRT, SIGBUS};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        signal(sigs[i], on_signal);

    /* the private cluster: marked up before start returns, so a failure half way stops it */
    cluster_up = 1;
    rc = check_sh(out, sizeof out, "bash scripts/fleet/slurm-local.sh start %s 2>&1", cluster);
    if (rc != 0) {
        cluster_up = 0;   /* start stops what it started when it fails */
        char *e = strrchr(out, '\n');
        if (e && !e[1]) *e = 0;
        printf("%s\n", out);
        return skip("a private Slurm could not be started here (log above)");
    }
    printf("%s\n", out);
    double t_up = now();

    /* the tiers this host runs */
    char hosttier[64] = "", tlist[256] = "", buf[4096];
    check_sh(out, sizeof out, "%s cpu", mctune);
    line_of(out, "tier", buf, sizeof buf);
    sscanf(buf, "tier %63s", hosttier);
    int nt = 0, host_i = -1;
    for (int i = 0; i < NTIERS; i++)
        if (!strcmp(tiers[i], hosttier))
            host_i = i;
    CHECKF(host_i >= 0, "host tier '%s' from `mctune cpu`", hosttier);
    for (int i = 0; i <= host_i; i++) {
        snprintf(tlist + strlen(tlist), sizeof tlist - strlen(tlist), "%s%s", nt ? "," : "",
                 tiers[i]);
        nt++;
    }

    char model[PATH_MAX + 32], shared[PATH_MAX + 32], local[PATH_MAX + 32];
    snprintf(model, sizeof model, "%s/tiny.json", root);
    snprintf(shared, sizeof shared, "%s/shared", root);
    snprintf(local, sizeof local, "%s/node-local", root);
    FILE *f = fopen(model, "w");
    CHECK(f != NULL);
    if (!f)
        return check_done();
    fprintf(f, "{\"name\": \"fleet-tiny\", \"source\": \"tests/test_fleet.c\", \"layers\": [\n"
               "  {\"name\": \"proj\", \"op\": \"matmul\", \"layout\": \"nt\", \"N\": 64, "
               "\"K\": 96, \"epi\": \"none\", \"M\": [1, 16]}]}\n");
    fclose(f);

    /* ---- the fleet: one array task per tier, the merge job after them ---- */
    rc = check_sh(out, sizeof out, "%s bash scripts/fleet/fleet-slurm.sh --model %s --targets %s "
                  "--budget 3 --min-time 0.01 --checkpoint 1 --shared %s --local %s --mctune %s "
                  "--wait --timeout 240 2>&1", conf, model, tlist, shared, local, mctune);
    CHECKF(rc == 0, "fleet-slurm.sh failed (%d):\n%s", rc, out);
    printf("%s", out);
    double t_fleet = now();
    char summary_path[PATH_MAX + 64];
    snprintf(summary_path, sizeof summary_path, "%s/merge.summary", shared);
    char *summary = check_slurp(summary_path, NULL);
    CHECKF(summary != NULL, "no %s", summary_path);
    if (!summary)
        return check_done();

    char keys[NTIERS][32], v[64], per_task[512] = "";
    for (int i = 0; i < nt; i++) {
        char pre[64], line[1024], done[PATH_MAX + 96];
        snprintf(pre, sizeof pre, "target=%s ", tiers[i]);
        line_of(summary, pre, line, sizeof line);
        CHECKF(line[0], "merge.summary has no line for target %s", tiers[i]);
        snprintf(done, sizeof done, "%s/exports/%s.done", shared, tiers[i]);
        CHECKF(access(done, F_OK) == 0, "%s missing", done);
        CHECKF(atoi(field(line, "best", v, sizeof v)) == 2, "target %s: best=%s, want 2 (both "
               "workloads)", tiers[i], v);
        int trials = atoi(field(line, "trials", v, sizeof v));
        CHECKF(trials >= 2 && trials <= 6, "target %s: %d trials for 2 workloads at budget 3",
               tiers[i], trials);
        snprintf(keys[i], sizeof keys[i], "%s", field(line, "cpu", v, sizeof v));
        CHECKF(strlen(keys[i]) == 16, "target %s: cpu key '%s'", tiers[i], keys[i]);
        for (int j = 0; j < i; j++)
            CHECKF(strcmp(keys[i], keys[j]), "targets %s and %s share CPU key %s: each tier must "
                   "give its own CPU record", tiers[i], tiers[j], keys[i]);
        snprintf(per_task + strlen(per_task), sizeof per_task - strlen(per_task), "%s%s %s",
                 i ? ", " : "", tiers[i], field(line, "records", v, sizeof v));
    }
    /* every task's best records are in the merged database, under its CPU */
    char fleetdb_export[PATH_MAX + 64];
    snprintf(fleetdb_export, sizeof fleetdb_export, "%s/fleet.jsonl", root);
    rc = check_sh(NULL, 0, "%s db export --db %s/fleet.db > %s 2>/dev/null", mctune, shared,
                  fleetdb_export);
    CHECK(rc == 0);
    for (int i = 0; i < nt; i++) {
        char needle[96];
        snprintf(needle, sizeof needle, "\"type\":\"best\".*\"cpu\":\"%s\"", keys[i]);
        int n = count_lines(fleetdb_export, needle);
        CHECKF(n == 2, "merged db: %d best records of %s (%s), want 2", n, tiers[i], keys[i]);
    }
    char lib_line[512], merged_line[512];
    line_of(summary, "library ", lib_line, sizeof lib_line);
    line_of(summary, "merged ", merged_line, sizeof merged_line);
    int tables = atoi(field(lib_line, "tables", v, sizeof v));
    int conflicts = atoi(field(merged_line, "conflicts", v, sizeof v));
    CHECKF(tables == nt, "library has %d tables for %d targets", tables, nt);
    for (int i = 0; i < nt; i++) {
        char pre[64], line[512];
        snprintf(pre, sizeof pre, "table key=%s ", keys[i]);
        CHECKF(line_of(summary, pre, line, sizeof line)[0], "no table for %s (%s) in the library",
               tiers[i], keys[i]);
    }
    /* the node-local databases are gone */
    CHECK(check_sh(out, sizeof out, "ls -A %s 2>/dev/null", local) == 0 && out[0] == 0);

    /* the library builds with plain cc; each table, forced, computes correctly */
    rc = check_sh(out, sizeof out, "cd %s/lib && cc -std=c11 -O2 -Wall -Wextra -c mctfleet.c -o "
                  "mctfleet.o 2>&1 && cc -std=c11 -O2 -I. %s/tests/fleet_consumer.c mctfleet.o -lm "
                  "-o consumer 2>&1", shared, srcdir);
    CHECKF(rc == 0, "building the library and its consumer:\n%s", out);
    for (int i = 0; i < nt && rc == 0; i++) {
        int r = check_sh(out, sizeof out, "cd %s/lib && MCTFLEET_CPU=%s ./consumer 64 96 1,16 2>&1",
                         shared, keys[i]);
        char cpu[512];
        line_of(out, "CPU: ", cpu, sizeof cpu);
        CHECKF(r == 0 && strstr(cpu, keys[i]) && strstr(cpu, "forced") &&
               strstr(out, "TUNED: 1") && strstr(out, "RESULT pass=12 fail=0"),
               "MCTFLEET_CPU=%s (%s):\n%s", keys[i], tiers[i], out);
        printf("MCTFLEET_CPU=%s: %s, %s\n", keys[i], cpu,
               line_of(out, "RESULT", buf, sizeof buf));
    }
    /* without forcing, this host gets its own table */
    if (rc == 0) {
        check_sh(out, sizeof out, "cd %s/lib && ./consumer 64 96 1,16 2>&1", shared);
        CHECKF(strstr(out, keys[host_i]) && strstr(out, "exact CPU") &&
               strstr(out, "RESULT pass=12 fail=0"), "default choice:\n%s", out);
    }

    /* ---- resume: a task cancelled (SIGTERM) mid-run continues from its export ---- */
    const char *rt = host_i >= 2 ? "avx2" : tiers[host_i];
    char shared2[PATH_MAX + 32], exp2[PATH_MAX + 96], done2[PATH_MAX + 96];
    snprintf(shared2, sizeof shared2, "%s/shared-resume", root);
    snprintf(exp2, sizeof exp2, "%s/exports/%s.jsonl", shared2, rt);
    snprintf(done2, sizeof done2, "%s/exports/%s.done", shared2, rt);
    char fleet2[6 * PATH_MAX];
    snprintf(fleet2, sizeof fleet2, "%s bash scripts/fleet/fleet-slurm.sh --model %s --targets %s "
             "--budget 10 --min-time 0.01 --checkpoint 1 --shared %s --local %s --mctune %s",
             conf, model, rt, shared2, local, mctune);
    rc = check_sh(out, sizeof out, "%s 2>&1", fleet2);
    CHECKF(rc == 0, "fleet-slurm.sh (to be cancelled) failed (%d):\n%s", rc, out);
    int got_trial = 0;
    for (int i = 0; i < 600 && !got_trial && access(done2, F_OK) != 0; i++) {
        got_trial = count_lines(exp2, "\"type\":\"trial\"") > 0;
        if (!got_trial)
            usleep(100000);
    }
    CHECKF(got_trial, "no trial exported by the %s task within 60 s", rt);
    rc = check_sh(out, sizeof out, "%s scancel $(cut -d' ' -f1 %s/jobs) 2>&1", conf, shared2);
    CHECKF(rc == 0, "scancel: %s", out);
    /* the task saves its trials on SIGTERM and the merge job goes with it (invalid dependency) */
    int gone = 0;
    for (int i = 0; i < 300 && !gone; i++) {
        check_sh(out, sizeof out, "%s squeue -h -j $(tr ' ' , < %s/jobs) 2>/dev/null", conf,
                 shared2);
        gone = out[0] == 0;
        if (!gone)
            usleep(100000);
    }
    CHECKF(gone, "the cancelled fleet's jobs are still queued after 30 s:\n%s", out);
    CHECKF(access(done2, F_OK) != 0, "the %s task finished before it was cancelled; the resume "
           "was not exercised (budget 10 should last longer than the first export)", rt);
    int cut_trials = count_lines(exp2, "\"type\":\"trial\"");
    CHECKF(cut_trials > 0 && cut_trials < 20, "%d trials in the cancelled task's export", cut_trials);
    check_sh(out, sizeof out, "cat %s/logs/tune-*.out 2>&1", shared2);
    CHECKF(strstr(out, "SIGTERM") && strstr(out, "(after SIGTERM)"), "cancelled task's log:\n%s",
           out);
    char merge_status[PATH_MAX + 64];
    snprintf(merge_status, sizeof merge_status, "%s/merge.status", shared2);
    CHECKF(access(merge_status, F_OK) != 0, "the merge ran although a task was cancelled");
    /* an export cut at a line boundary is refused whole; the whole one imports */
    rc = check_sh(out, sizeof out, "head -n -1 %s > %s/cut.jsonl && %s db import %s/cut.jsonl "
                  "--db %s/cut.db 2>&1", exp2, root, mctune, root, root);
    CHECKF(rc != 0 && strstr(out, "without its end line") && strstr(out, "nothing was imported"),
           "import of a cut export: rc %d\n%s", rc, out);
    rc = check_sh(out, sizeof out, "%s db stats --db %s/cut.db 2>&1", mctune, root);
    CHECKF(rc != 0 || (strstr(out, "trials     0") && strstr(out, "best       0")),
           "the refused import left records:\n%s", out);
    rc = check_sh(out, sizeof out, "%s db import %s --db %s/whole.db 2>&1", mctune, exp2, root);
    CHECKF(rc == 0, "import of the whole export after SIGTERM:\n%s", out);
    /* resubmitted: continues from the exported trials */
    rc = check_sh(out, sizeof out, "%s --resume --wait --timeout 240 2>&1", fleet2);
    CHECKF(rc == 0, "fleet-slurm.sh --resume failed (%d):\n%s", rc, out);
    char *summary2 = NULL, line2[1024] = "";
    snprintf(summary_path, sizeof summary_path, "%s/merge.summary", shared2);
    summary2 = check_slurp(summary_path, NULL);
    CHECK(summary2 != NULL);
    if (summary2) {
        char pre[64];
        snprintf(pre, sizeof pre, "target=%s ", rt);
        line_of(summary2, pre, line2, sizeof line2);
        CHECKF(atoi(field(line2, "best", v, sizeof v)) == 2, "resumed target: %s", line2);
        CHECKF(atoi(field(line2, "trials", v, sizeof v)) >= cut_trials, "resumed target: %s",
               line2);
    }
    check_sh(out, sizeof out, "cat %s/logs/tune-*.out 2>&1", shared2);
    /* what the cancelled task had measured is not measured again: the searches it had begun
     * reuse their trials, the ones it had finished are skipped */
    char reused[1024] = "";
    const char *ru = strstr(out, "trials already in the database are reused");
    if (!ru)
        ru = strstr(out, "skipped, already tuned");
    CHECKF(strstr(out, "resuming from") && ru, "the resubmitted task did not resume:\n%s", out);
    if (ru) {
        const char *b = ru;
        while (b > out && b[-1] != '\n')
            b--;
        line_of(b, "", reused, sizeof reused);
    }

    /* ---- stop: no process of the cluster left ---- */
    double t_stop0 = now();
    rc = stop_cluster();
    CHECKF(rc == 0, "slurm-local.sh stop reported leftovers or failed (%d)", rc);
    rc = check_sh(out, sizeof out, "for e in /proc/[0-9]*/environ; do { tr '\\0' '\\n' < $e; } "
                  "2>/dev/null | grep -q '^SLURM_CONF=%s/slurm.conf$' && echo ${e%%/environ}; "
                  "done; ps -eo pid,args | grep -F '%s' | grep -v -e grep -e '/proc/' || true",
                  cluster, cluster);
    CHECKF(out[0] == 0, "processes of the private Slurm left after stop:\n%s", out);

    printf("fleet: %d array tasks (tiers %s), 1 merge job; records per task: %s; merge: %d "
           "conflicts; library: %d tables; each table forced: correct\n", nt, tlist, per_task,
           conflicts, tables);
    printf("resume: task %s cancelled with %d trials exported; resubmitted: %s\n", rt, cut_trials,
           reused[0] ? reused : "?");
    printf("wall: cluster up %.1f s, fleet %.1f s, resume %.1f s, stop %.1f s, total %.1f s\n",
           t_up - t0, t_fleet - t_up, t_stop0 - t_fleet, now() - t_stop0, now() - t0);
    free(summary);
    free(summary2);
    if (check_fail_ == 0)
        check_sh(NULL, 0, "rm -rf %s", root);
    else
        printf("kept %s for a look\n", root);
    return check_done();
}
