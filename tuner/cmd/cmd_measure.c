/* mctune measure: compile, check and time one schedule (or a raw C kernel), optionally against
 * OpenBLAS on the same data in the same child process. */
#include "codegen/text.h"
#include "tuner/cmd/cli.h"
#include "tuner/measure.h"
#include "tuner/oracle.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage_text[] =
    "usage: mctune measure WORKLOAD [options]\n"
    "\n"
    "Lowers the schedule to C, compiles it (through the compile cache), runs it in a child\n"
    "process, checks its first run against OpenBLAS and times it.\n"
    "\n"
    "  WORKLOAD             e.g. \"matmul f32 nt M=16 N=4096 K=4096 epi=none\"\n"
    "  --schedule TEXT|@FILE  transformations, e.g. \"tile(j, 16); vectorize(j1)\" (default:\n"
    "                       the untuned nest)\n"
    "  --source FILE        measure a hand-written C kernel with the ABI of codegen/codegen.h\n"
    "                       (it returns int: 0, or -2 when out of memory) instead of a schedule\n"
    "  --fn NAME            the kernel's name in --source (default mct_cand)\n"
    "  --prepacked          the --source kernel also defines NAME_packed_size, NAME_pack_b\n"
    "  --threads N          threads of the kernel (OMP_NUM_THREADS, pinned; default 1)\n"
    "  --hot                B stays cache-resident (default: B rotates through copies that\n"
    "                       exceed the last-level cache, capped at 1 GiB)\n"
    "  --baseline           also time the libraries on the same data with the same threads:\n"
    "                       OpenBLAS with its own core, OpenBLAS with the best core it has for\n"
    "                       this CPU forced (when that differs), oneDNN (when installed); for\n"
    "                       M=1 OpenBLAS also runs cblas_sgemv (the faster is shown); the ratio\n"
    "                       is to the fastest. Their calls are interleaved with the candidate's\n"
    "                       (1 thread: call by call; more: in blocks), so host noise hits all\n"
    "                       of them alike. Each line gives the library's thread count as it\n"
    "                       reports it, and OpenBLAS's the CPUs its threads may run on\n"
    "  --min-time SECONDS   timed calls last at least this long in total (default 0.2)\n"
    "  --min-runs N         and number at least N (default 5)\n"
    "  --timeout SECONDS    limit for start-up and the checked first run (default 30)\n"
    "  --cache DIR          compile cache folder (default $MCTUNE_CC_CACHE, else\n"
    "                       $XDG_CACHE_HOME/mctune/cc, else ~/.cache/mctune/cc)\n"
    "  --cc PATH            C compiler (default cc)\n"
    "  --cflags FLAGS       compiler flags (default \"" MCT_MEAS_CFLAGS "\")\n"
    "\n"
    "Exit status: 0 when the candidate is ok, 1 when it is not (compile-error, crash, timeout,\n"
    "wrong) or the harness failed, 2 for a usage error.\n";

static int parse_secs(const char *opt, const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v > 0) || v > 86400) {
        mct_cli_usage_error("measure", "%s '%s' is not a number of seconds in (0, 86400]", opt,
                            s);
        return -1;
    }
    *out = v;
    return 0;
}

static void print_time(const char *label, double s)
{
    if (s >= 1)
        printf("%s%.3f s", label, s);
    else if (s >= 1e-3)
        printf("%s%.3f ms", label, s * 1e3);
    else
        printf("%s%.2f us", label, s * 1e6);
}

int mct_cmd_measure(int argc, char **argv)
{
    const char *wl_text = NULL, *sched_arg = NULL, *source = NULL, *fn = "mct_cand";
    const char *val;
    mct_meas_opts o;
    mct_meas_opts_default(&o);
    int prepacked = 0, rc = 1, r;
    long n;
    char *sched_text = NULL, *src_text = NULL, err[512] = "";
    mct_sched *s = NULL;
    mct_meas *m = NULL;

    /* the switches, and the options whose text is kept as given */
    const struct { const char *name; int *on; } switches[] = {
        {"--hot", &o.hot}, {"--baseline", &o.baseline}, {"--prepacked", &prepacked}};
    const struct { const char *name; const char **text; } texts[] = {
        {"--schedule", &sched_arg}, {"--source", &source}, {"--fn", &fn},
        {"--cache", &o.cache_dir},  {"--cc", &o.cc},        {"--cflags", &o.cflags}};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(usage_text, stdout);
            return 0;
        }
        int known = 0;
        for (size_t k = 0; k < sizeof switches / sizeof switches[0] && !known; k++)
            if (!strcmp(a, switches[k].name))
                *switches[k].on = known = 1;
        for (size_t k = 0; k < sizeof texts / sizeof texts[0] && !known; k++)
            if ((r = mct_cli_opt("measure", argc, argv, &i, texts[k].name, &val))) {
                if (r < 0)
                    return 2;
                *texts[k].text = val;
                known = 1;
            }
        if (known)
            continue;
        if ((r = mct_cli_opt("measure", argc, argv, &i, "--threads", &val))) {
            if (r < 0 || mct_cli_int("measure", "--threads", val, 1, 1024, &n))
                return 2;
            o.threads = (int)n;
        } else if ((r = mct_cli_opt("measure", argc, argv, &i, "--min-runs", &val))) {
            if (r < 0 || mct_cli_int("measure", "--min-runs", val, 1, 1000000, &n))
                return 2;
            o.min_runs = (int)n;
            if (o.max_runs < o.min_runs)
                o.max_runs = o.min_runs;
        } else if ((r = mct_cli_opt("measure", argc, argv, &i, "--min-time", &val))) {
            if (r < 0 || parse_secs("--min-time", val, &o.min_time_s))
                return 2;
        } else if ((r = mct_cli_opt("measure", argc, argv, &i, "--timeout", &val))) {
            if (r < 0 || parse_secs("--timeout", val, &o.timeout_s))
                return 2;
        } else if (a[0] == '-' && a[1]) {
            return mct_cli_usage_error("measure", "unknown option '%s'", a);
        } else if (wl_text) {
            return mct_cli_usage_error("measure", "unexpected argument '%s' (the workload is "
                                       "already '%s'; quote the workload text)", a, wl_text);
        } else {
            wl_text = a;
        }
    }
    if (!wl_text)
        return mct_cli_usage_error("measure", "missing WORKLOAD, e.g. \"matmul f32 nt M=16 "
                                   "N=4096 K=4096 epi=none\"");
    if (source && sched_arg)
        return mct_cli_usage_error("measure", "--source and --schedule exclude each other: "
                                   "measure a schedule or a hand-written kernel");

    mct_workload w;
    if (mct_wl_parse(wl_text, &w, err, sizeof err)) {
        fprintf(stderr, "mctune measure: workload '%s': %s\n", wl_text, err);
        return 2;
    }
    mct_meas_cand c = {0};
    if (source) {
        size_t len = 0;
        if (!mct_slurp(source, 0, &src_text, &len, err, sizeof err) && strlen(src_text) != len)
            snprintf(err, sizeof err, "'%s' holds a NUL byte; give a C source", source);
        if (!src_text || strlen(src_text) != len) {
            fprintf(stderr, "mctune measure: --source: %s\n", err);
            rc = 2;
            goto fail;
        }
        c.source = src_text;
        c.fn = fn;
        c.prepacked = prepacked;
    } else {
        sched_text = sched_arg ? mct_cli_text_arg("measure", sched_arg) : strdup("");
        if (!sched_text) {
            rc = 2;
            goto fail;
        }
        if (mct_sched_parse(&w, sched_text, &s, err, sizeof err)) {
            fprintf(stderr, "mctune measure: schedule '%.200s%s': %s\n", sched_text,
                    strlen(sched_text) > 200 ? "..." : "", err);
            rc = 2;
            goto fail;
        }
        c.sched = s;
    }

    if (mct_meas_create(&o, &m, err, sizeof err)) {
        fprintf(stderr, "mctune measure: %s\n", err);
        goto fail;
    }
    mct_meas_result res;
    int e = mct_meas_run(m, &w, &c, &res);
    if (e) {
        fprintf(stderr, "mctune measure: the harness failed: %s%s%s\n", mct_strerror(e),
                *res.detail ? ": " : "", res.detail);
        goto fail;
    }

    char key[256], stext[4096];
    mct_wl_format(&w, key, sizeof key);
    printf("workload   %s\n", key);
    if (s) {
        mct_sched_format(s, stext, sizeof stext);
        printf("schedule   %s\n", *stext ? stext : "(untuned nest)");
    } else {
        printf("source     %s (kernel %s%s)\n", source, fn, prepacked ? ", prepacked" : "");
    }
    printf("status     %s%s%s\n", mct_meas_status_name(res.status),
           res.status != MCT_MEAS_OK && *res.detail ? ": " : "",
           res.status != MCT_MEAS_OK ? res.detail : "");
    if (res.status == MCT_MEAS_OK) {
        print_time("latency    median ", res.median_s);
        print_time("  (min ", res.min_s);
        print_time(", q1 ", res.q1_s);
        print_time(", q3 ", res.q3_s);
        print_time(", max ", res.max_s);
        printf("; %ld timed calls)\n", res.runs);
        printf("speed      %.2f GFLOP/s\n", res.gflops);
        printf("check      relative error %.2g (tolerance %.2g)\n", res.relerr,
               mct_oracle_tolerance((long)w.K));
    }
    printf("threads    %d\n", res.threads);
    if (res.hot)
        printf("weights    hot: one copy of B (cache-resident)\n");
    else
        printf("weights    B rotated through %ld copies (%.1f MiB) to come from memory\n",
               res.copies, (double)res.rotate_bytes / (1 << 20));
    if (res.cached)
        printf("compile    cached (%s)\n", mct_meas_cache_dir(m));
    else
        printf("compile    %.3f s\n", res.compile_s);
    printf("compiler   %s (%s) %s\n", res.cc, res.cc_version, res.cflags);
    if (o.baseline && res.status == MCT_MEAS_OK) {
        /* one line per library, all on the same data in the same child, with the candidate's
         * thread count; the ratio is to the fastest, as targets are judged */
        static const char *const tag[3] = {"OpenBLAS", "OpenBLAS forced", "oneDNN"};
        for (int i = 0; i < 3; i++) {
            const struct mct_meas_lib *b = &res.libs[i];
            if (!b->ok) {
                printf("baseline   %s: unavailable: %s\n", tag[i], b->label);
                continue;
            }
            printf("baseline   %s ", b->label);
            print_time("", b->median_s);
            printf(" median with %s, %.2f GFLOP/s, %d thread%s", b->call, b->gflops, b->threads,
                   b->threads == 1 ? "" : "s");
            /* where the threads may run: several threads on one CPU run at one core's speed */
            if (b->threads > 1 && b->cpus > 0)
                printf(" on %d CPU%s", b->cpus, b->cpus == 1 ? "" : "s");
            printf("%s\n", res.best_lib == i ? " (best)" : "");
        }
        if (res.best_lib >= 0) {
            const struct mct_meas_lib *b = &res.libs[res.best_lib];
            printf("ratio      %.2fx the speed of the best baseline, %s (>1: the candidate is "
                   "faster; epilogue not included in the baselines)\n",
                   b->median_s / res.median_s, b->label);
        } else {
            printf("baseline   unavailable: %s\n", res.detail);
        }
    }
    rc = res.status == MCT_MEAS_OK ? 0 : 1;
fail:
    mct_meas_destroy(m);
    mct_sched_destroy(s);
    free(sched_text);
    free(src_text);
    return rc;
}
