/* mctune report: the sample-efficiency figure of a tuning log (JSON Lines of `mctune tune --log`):
 * best-so-far speedup over the untuned schedule against samples, one series per strategy/guide,
 * drawn by gnuplot (a child process) as PNG and SVG, and a Markdown table of the speedup at fixed
 * sample counts and the samples each search needed to reach a target. */
#include "tuner/cmd/cli.h"
#include "tuner/proc.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cJSON.h>

#define CMD "report"
#define MAXAT 16


static const char usage_text[] =
    "usage: mctune report LOG.jsonl [LOG2.jsonl ...] [--out DIR] [options]\n"
    "\n"
    "Reads tuning logs (mctune tune --log FILE) and writes to DIR (default report):\n"
    "  sample_efficiency.svg, .png  best-so-far speedup over the untuned schedule against\n"
    "                               samples, one series per strategy/guide (geometric mean over\n"
    "                               the runs: workloads and seeds), drawn by gnuplot\n"
    "  sample_efficiency.dat, .gp   the data and the gnuplot script that drew it\n"
    "  report.md                    speedup at fixed sample counts and samples to target, per\n"
    "                               strategy/guide and per workload\n"
    "A run is one search of one workload: its lines from sample 1 on. A run that a later run of\n"
    "the same workload, strategy and guide repeats (a resumed search) is counted once. A run\n"
    "shorter than a sample count keeps its last best (its search stopped: space exhausted).\n"
    "\n"
    "  --out DIR          output folder (created when absent)\n"
    "  --at N,N,...       sample counts of the table (default 16,32,64,128 up to what the log\n"
    "                     has, and the largest count in the log)\n"
    "  --target F         samples to target: samples a run needed to reach F times the best\n"
    "                     speedup any run found for that workload (default 0.95)\n"
    "  --by-workload      one series per strategy/guide and workload in the figure\n"
    "  --no-plot          write the table and the data only (no gnuplot needed)\n";

/* One search of one workload. */
typedef struct run {
    char *strategy, *guide, *workload;
    int n, cap;             /* samples held (index i = sample i + 1) */
    double *gflops;         /* measured (0: failed) */
    char (*hash)[33];
    int dropped;            /* repeated by a later run */
} run;

typedef struct rep {
    run *r;
    int n, cap;
    int skipped_lines;
} rep;

static void runs_free(rep *R)
{
    for (int i = 0; i < R->n; i++) {
        free(R->r[i].strategy);
        free(R->r[i].guide);
        free(R->r[i].workload);
        free(R->r[i].gflops);
        free(R->r[i].hash);
    }
    free(R->r);
}

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int jnum(const cJSON *o, const char *k, double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (cJSON_IsNumber(v)) {
        *out = v->valuedouble;
        return 1;
    }
    if (cJSON_IsNull(v)) {
        *out = 0;
        return 1;
    }
    return 0;
}

static int same_key(const run *a, const char *s, const char *g, const char *w)
{
    return !strcmp(a->strategy, s) && !strcmp(a->guide, g) && !strcmp(a->workload, w);
}

/* Appends one sample; starts a new run at sample 1 or when the sample number does not follow the
 * open run of that key. Returns 0 or -1 (out of memory). */
static int add_sample(rep *R, const char *s, const char *g, const char *w, int sample,
                      double gf, const char *hash)
{
    run *x = NULL;
    for (int i = R->n - 1; i >= 0; i--)
        if (same_key(&R->r[i], s, g, w)) {
            x = &R->r[i];
            break;
        }
    if (!x || sample == 1 || sample != x->n + 1) {
        if (sample != 1)
            return 1;           /* a run whose start is not in the log: nothing to compare to */
        if (R->n == R->cap) {
            int nc = R->cap ? 2 * R->cap : 16;
            run *nr = realloc(R->r, (size_t)nc * sizeof *nr);
            if (!nr)
                return -1;
            R->r = nr;
            R->cap = nc;
        }
        x = &R->r[R->n++];
        memset(x, 0, sizeof *x);
        x->strategy = strdup(s);
        x->guide = strdup(g);
        x->workload = strdup(w);
        if (!x->strategy || !x->guide || !x->workload)
            return -1;
    }
    if (x->n == x->cap) {
        int nc = x->cap ? 2 * x->cap : 64;
        double *ng = realloc(x->gflops, (size_t)nc * sizeof *ng);
        if (!ng)
            return -1;
        x->gflops = ng;
        char (*nh)[33] = realloc(x->hash, (size_t)nc * sizeof *nh);
        if (!nh)
            return -1;
        x->hash = nh;
        x->cap = nc;
    }
    x->gflops[x->n] = gf > 0 && isfinite(gf) ? gf : 0;
    snprintf(x->hash[x->n], 33, "%s", hash ? hash : "");
    x->n++;
    return 0;
}

static int read_log(const char *path, rep *R)
{
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long lineno = 0;
    int rc = 1;
    if (!f) {
        fprintf(stderr, "mctune report: cannot open the log '%s': %s (give the file that "
                "mctune tune --log wrote)\n", path, strerror(errno));
        return 1;
    }
    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if (len <= 1)
            continue;
        cJSON *o = cJSON_Parse(line);
        const char *s = o ? jstr(o, "strategy") : NULL, *g = o ? jstr(o, "guide") : NULL;
        const char *w = o ? jstr(o, "workload") : NULL;
        double sample = 0, gf = 0;
        if (!s || !g || !w || !jnum(o, "sample", &sample) || !jnum(o, "gflops", &gf) ||
            sample < 1 || sample > 1e7) {
            if (R->skipped_lines++ < 3)
                fprintf(stderr, "mctune report: %s:%ld: not a tuning log line (needs strategy, "
                        "guide, workload, sample, gflops); skipped\n", path, lineno);
            cJSON_Delete(o);
            continue;
        }
        int r = add_sample(R, s, g, w, (int)sample, gf, jstr(o, "hash"));
        cJSON_Delete(o);
        if (r < 0) {
            fprintf(stderr, "mctune report: out of memory reading '%s'\n", path);
            goto fail;
        }
        if (r > 0 && R->skipped_lines++ < 3)
            fprintf(stderr, "mctune report: %s:%ld: sample %.0f of a run whose sample 1 is not "
                    "in the log; skipped\n", path, lineno, sample);
    }
    rc = 0;
fail:
    free(line);
    fclose(f);
    return rc;
}

/* A run whose hashes are a prefix of a later run of the same key is the same search, resumed. */
static void drop_repeats(rep *R)
{
    for (int i = 0; i < R->n; i++)
        for (int j = 0; j < R->n; j++) {
            run *a = &R->r[i], *b = &R->r[j];
            if (i == j || a->dropped || b->dropped || a->n > b->n ||
                !same_key(a, b->strategy, b->guide, b->workload))
                continue;
            if (a->n == b->n && i > j)
                continue;       /* of two equal runs keep the first */
            int k = 0;
            while (k < a->n && a->hash[k][0] && !strcmp(a->hash[k], b->hash[k]))
                k++;
            if (k == a->n)
                a->dropped = 1;
        }
}

/* Best-so-far speedup of run x after s samples (its last best when shorter); 0 when its untuned
 * baseline failed. */
static double speedup_at(const run *x, int s)
{
    if (x->n < 1 || !(x->gflops[0] > 0))
        return 0;
    double best = 0;
    for (int i = 0; i < s && i < x->n; i++)
        if (x->gflops[i] > best)
            best = x->gflops[i];
    return best / x->gflops[0];
}

static double run_best(const run *x)
{
    return speedup_at(x, x->n);
}

/* Best speedup any run found for workload w (the target's reference). */
static double workload_best(const rep *R, const char *w)
{
    double b = 0;
    for (int i = 0; i < R->n; i++)
        if (!R->r[i].dropped && !strcmp(R->r[i].workload, w) && run_best(&R->r[i]) > b)
            b = run_best(&R->r[i]);
    return b;
}

/* Samples run x needed to reach frac * the workload's best speedup; 0 when never. */
static int samples_to(const rep *R, const run *x, double frac)
{
    double t = frac * workload_best(R, x->workload);
    for (int s = 1; s <= x->n; s++)
        if (t > 0 && speedup_at(x, s) >= t * (1 - 1e-12))
            return s;
    return 0;
}

/* Series: groups of runs by strategy/guide (and workload). */
typedef struct series {
    char name[320];
    int *runs, nruns;
    int maxn;
} series;

static int series_build(const rep *R, int by_wl, series **out, int *nout)
{
    series *S = calloc((size_t)R->n + 1, sizeof *S);
    int n = 0;
    if (!S)
        return -1;
    for (int i = 0; i < R->n; i++) {
        const run *x = &R->r[i];
        if (x->dropped || !(x->n >= 1 && x->gflops[0] > 0))
            continue;
        char name[320];
        if (by_wl)
            snprintf(name, sizeof name, "%s%s%s %s", x->strategy, *x->guide ? "/" : "",
                     x->guide, x->workload);
        else
            snprintf(name, sizeof name, "%s%s%s", x->strategy, *x->guide ? "/" : "", x->guide);
        int k = 0;
        while (k < n && strcmp(S[k].name, name))
            k++;
        if (k == n) {
            snprintf(S[n].name, sizeof S[n].name, "%s", name);
            if (!(S[n].runs = malloc((size_t)R->n * sizeof(int)))) {
                for (int j = 0; j < n; j++)
                    free(S[j].runs);
                free(S);
                return -1;
            }
            n++;
        }
        S[k].runs[S[k].nruns++] = i;
        if (x->n > S[k].maxn)
            S[k].maxn = x->n;
    }
    *out = S;
    *nout = n;
    return 0;
}

static double series_at(const rep *R, const series *s, int at)
{
    double lg = 0;
    for (int i = 0; i < s->nruns; i++)
        lg += log(speedup_at(&R->r[s->runs[i]], at));
    return s->nruns ? exp(lg / s->nruns) : 0;
}

static int parse_at(const char *v, int *at, int *nat)
{
    *nat = 0;
    const char *p = v;
    while (*p) {
        char *end;
        errno = 0;
        long x = strtol(p, &end, 10);
        if (end == p || errno || x < 1 || x > 10000000 || (*end && *end != ',') || *nat >= MAXAT)
            return -1;
        at[(*nat)++] = (int)x;
        p = *end ? end + 1 : end;
    }
    return *nat ? 0 : -1;
}

static void default_at(int maxn, int *at, int *nat)
{
    static const int fixed[] = {16, 32, 64, 128};
    *nat = 0;
    for (int i = 0; i < 4; i++)
        if (fixed[i] <= maxn)
            at[(*nat)++] = fixed[i];
    if (*nat < 2) {             /* a short log: powers of two from 4 below its length */
        *nat = 0;
        for (int p = 4; p < maxn && p <= 16 && *nat < 3; p *= 2)
            at[(*nat)++] = p;
    }
    if (!*nat || at[*nat - 1] != maxn)
        at[(*nat)++] = maxn;
}

/* gnuplot titles and Markdown cells: no quotes, no pipes. */
static void clean(char *dst, size_t n, const char *src)
{
    size_t j = 0;
    for (; *src && j + 1 < n; src++)
        dst[j++] = (*src == '"' || *src == '|' || *src == '\\' || *src == '\n') ? '_' : *src;
    dst[j] = 0;
}

static int write_dat(const char *path, const rep *R, const series *S, int ns, int maxn)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "mctune report: cannot write '%s': %s (choose another --out)\n", path,
                strerror(errno));
        return 1;
    }
    fprintf(f, "# best-so-far speedup over the untuned schedule (geometric mean over runs)\n");
    fprintf(f, "# samples");
    for (int k = 0; k < ns; k++)
        fprintf(f, "\t\"%s\"", S[k].name);
    fprintf(f, "\n");
    for (int s = 1; s <= maxn; s++) {
        fprintf(f, "%d", s);
        for (int k = 0; k < ns; k++)
            if (s <= S[k].maxn)
                fprintf(f, "\t%.6g", series_at(R, &S[k], s));
            else
                fprintf(f, "\tNaN");
        fprintf(f, "\n");
    }
    if (fclose(f)) {
        fprintf(stderr, "mctune report: cannot write '%s': %s\n", path, strerror(errno));
        return 1;
    }
    return 0;
}

static int write_gp(const char *path, const char *dir, const char *title, const series *S,
                    int ns)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "mctune report: cannot write '%s': %s (choose another --out)\n", path,
                strerror(errno));
        return 1;
    }
    char t[512];
    clean(t, sizeof t, title);
    fprintf(f, "# drawn by mctune report; run from any folder: gnuplot %s\n", path);
    fprintf(f, "set encoding utf8\nset key left top noenhanced\nset grid\n"
            "set title \"Sample efficiency: %s\" noenhanced\n"
            "set xlabel \"samples (measured candidates)\"\n"
            "set ylabel \"best-so-far speedup over untuned\"\nset yrange [0:*]\n"
            "set datafile missing \"NaN\"\n", t);
    fprintf(f, "dat = \"%s/sample_efficiency.dat\"\n", dir);
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 0)
            fprintf(f, "set terminal svg size 900,560 dynamic font \"sans,12\"\n"
                    "set output \"%s/sample_efficiency.svg\"\n", dir);
        else
            fprintf(f, "if (strstrt(GPVAL_TERMINALS, \"pngcairo\") > 0) "
                    "{ set terminal pngcairo size 900,560 } else { set terminal png size 900,560 }\n"
                    "set output \"%s/sample_efficiency.png\"\n", dir);
        fprintf(f, "plot ");
        for (int k = 0; k < ns; k++) {
            char nm[320];
            clean(nm, sizeof nm, S[k].name);
            fprintf(f, "%sdat using 1:%d with steps linewidth 2 title \"%s\"", k ? ", \\\n     " : "",
                    k + 2, nm);
        }
        fprintf(f, "\nunset output\n");
    }
    if (fclose(f)) {
        fprintf(stderr, "mctune report: cannot write '%s': %s\n", path, strerror(errno));
        return 1;
    }
    return 0;
}

/* Runs gnuplot SCRIPT as a child; 0 on success. */
static int run_gnuplot(const char *script)
{
    char *argv[] = {"gnuplot", (char *)script, NULL};
    mct_proc_io io = {.inherit = MCT_PROC_OUT | MCT_PROC_ERR};
    mct_proc_result res;
    int r = mct_proc_run(argv, &io, &res);
    mct_proc_result_free(&res);
    if (r == MCT_ENOTFOUND) {
        fprintf(stderr, "mctune report: gnuplot not found on PATH: install it "
                "(sh scripts/install-deps.sh installs gnuplot-nox; or apt-get install "
                "gnuplot-nox) or pass --no-plot for the table only\n");
        return 1;
    }
    if (r) {
        fprintf(stderr, "mctune report: cannot run gnuplot: %s\n", mct_strerror(r));
        return 1;
    }
    if (!mct_proc_ok(res.status)) {
        fprintf(stderr, "mctune report: gnuplot failed on %s (its messages are above); the data "
                "is in the same folder\n", script);
        return 1;
    }
    return 0;
}

static void md_cell_speedup(FILE *f, double v)
{
    if (v > 0)
        fprintf(f, " %.2fx |", v);
    else
        fprintf(f, " - |");
}

static int write_md(const char *path, const rep *R, const series *S, int ns, const int *at,
                    int nat, double frac, char **logs, int nlogs)
{
    FILE *f = fopen(path, "w");
    int runs = 0, nwl = 0;
    if (!f) {
        fprintf(stderr, "mctune report: cannot write '%s': %s (choose another --out)\n", path,
                strerror(errno));
        return 1;
    }
    for (int i = 0; i < R->n; i++) {
        if (R->r[i].dropped)
            continue;
        runs++;
        int seen = 0;
        for (int j = 0; j < i; j++)
            if (!R->r[j].dropped && !strcmp(R->r[j].workload, R->r[i].workload))
                seen = 1;
        nwl += !seen;
    }
    fprintf(f, "# Sample efficiency\n\nLog:");
    for (int i = 0; i < nlogs; i++)
        fprintf(f, " `%s`", logs[i]);
    fprintf(f, " (%d runs, %d workloads). Speedup: best GFLOP/s after N samples over the untuned "
            "schedule's (sample 1); geometric mean over runs. Samples to target: samples until a "
            "run reached %.0f%% of the best speedup any run found for its workload.\n\n",
            runs, nwl, frac * 100);
    fprintf(f, "## By strategy/guide\n\n| strategy/guide | runs |");
    for (int a = 0; a < nat; a++)
        fprintf(f, " @%d |", at[a]);
    fprintf(f, " best | samples to target (median, reached) |\n|---|---:|");
    for (int a = 0; a < nat; a++)
        fprintf(f, "---:|");
    fprintf(f, "---:|---|\n");
    for (int k = 0; k < ns; k++) {
        char nm[320];
        clean(nm, sizeof nm, S[k].name);
        fprintf(f, "| %s | %d |", nm, S[k].nruns);
        for (int a = 0; a < nat; a++)
            md_cell_speedup(f, at[a] <= S[k].maxn ? series_at(R, &S[k], at[a]) : 0);
        md_cell_speedup(f, series_at(R, &S[k], S[k].maxn));
        int st[4096], n = 0;
        for (int i = 0; i < S[k].nruns && n < 4096; i++) {
            int v = samples_to(R, &R->r[S[k].runs[i]], frac);
            if (v)
                st[n++] = v;
        }
        for (int i = 1; i < n; i++)         /* insertion sort for the median */
            for (int j = i; j > 0 && st[j - 1] > st[j]; j--) {
                int t = st[j];
                st[j] = st[j - 1];
                st[j - 1] = t;
            }
        if (n)
            fprintf(f, " %d (%d/%d) |\n", st[n / 2], n, S[k].nruns);
        else
            fprintf(f, " not reached (0/%d) |\n", S[k].nruns);
    }
    fprintf(f, "\n## By workload\n\n| workload | strategy/guide | samples | untuned GFLOP/s |");
    for (int a = 0; a < nat; a++)
        fprintf(f, " @%d |", at[a]);
    fprintf(f, " best GFLOP/s | samples to target |\n|---|---|---:|---:|");
    for (int a = 0; a < nat; a++)
        fprintf(f, "---:|");
    fprintf(f, "---:|---:|\n");
    for (int i = 0; i < R->n; i++) {
        const run *x = &R->r[i];
        if (x->dropped)
            continue;
        char w[320];
        clean(w, sizeof w, x->workload);
        fprintf(f, "| %s | %s%s%s | %d | %.2f |", w, x->strategy, *x->guide ? "/" : "", x->guide,
                x->n, x->gflops[0]);
        for (int a = 0; a < nat; a++)
            md_cell_speedup(f, at[a] <= x->n ? speedup_at(x, at[a]) : 0);
        int st = samples_to(R, x, frac);
        if (st)
            fprintf(f, " %.2f | %d |\n", run_best(x) * x->gflops[0], st);
        else
            fprintf(f, " %.2f | not reached |\n", run_best(x) * x->gflops[0]);
    }
    if (fclose(f)) {
        fprintf(stderr, "mctune report: cannot write '%s': %s\n", path, strerror(errno));
        return 1;
    }
    return 0;
}

int mct_cmd_report(int argc, char **argv)
{
    const char *out = "report", *val;
    char *logs[64];
    int nlogs = 0, by_wl = 0, plot = 1, at[MAXAT + 1], nat = 0, r, rc = 1, ns = 0;
    double frac = 0.95;
    rep R = {0};
    series *S = NULL;
    char p_dat[4096], p_gp[4096], p_md[4096];

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(usage_text, stdout);
            return 0;
        }
        if ((r = mct_cli_opt(CMD, argc, argv, &i, "--out", &val))) {
            if (r < 0)
                return 2;
            out = val;
        } else if ((r = mct_cli_opt(CMD, argc, argv, &i, "--at", &val))) {
            if (r < 0)
                return 2;
            if (parse_at(val, at, &nat))
                return mct_cli_usage_error(CMD, "--at '%s': give up to %d positive sample counts "
                                           "separated by commas, e.g. --at 16,32,64", val, MAXAT);
        } else if ((r = mct_cli_opt(CMD, argc, argv, &i, "--target", &val))) {
            if (r < 0)
                return 2;
            char *end;
            frac = strtod(val, &end);
            if (end == val || *end || !(frac > 0 && frac <= 1))
                return mct_cli_usage_error(CMD, "--target '%s': give a fraction in (0, 1], e.g. "
                                           "0.95", val);
        } else if (!strcmp(argv[i], "--by-workload")) {
            by_wl = 1;
        } else if (!strcmp(argv[i], "--no-plot")) {
            plot = 0;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return mct_cli_usage_error(CMD, "unknown option '%s'", argv[i]);
        } else if (nlogs < 64) {
            logs[nlogs++] = argv[i];
        } else {
            return mct_cli_usage_error(CMD, "more than 64 logs; concatenate them first");
        }
    }
    if (!nlogs)
        return mct_cli_usage_error(CMD, "give the log that mctune tune --log FILE wrote");
    for (int i = 0; i < nlogs; i++)
        if (read_log(logs[i], &R))
            goto fail;
    drop_repeats(&R);
    if (series_build(&R, by_wl, &S, &ns)) {
        fprintf(stderr, "mctune report: out of memory\n");
        goto fail;
    }
    if (!ns) {
        fprintf(stderr, "mctune report: no complete run in %s (a run starts at sample 1 with a "
                "measured untuned schedule); check the file is a mctune tune --log\n", logs[0]);
        goto fail;
    }
    int maxn = 0;
    for (int k = 0; k < ns; k++)
        if (S[k].maxn > maxn)
            maxn = S[k].maxn;
    if (!nat)
        default_at(maxn, at, &nat);
    if (mkdir(out, 0777) && errno != EEXIST) {
        fprintf(stderr, "mctune report: cannot create the folder '%s': %s (choose another "
                "--out)\n", out, strerror(errno));
        goto fail;
    }
    snprintf(p_dat, sizeof p_dat, "%s/sample_efficiency.dat", out);
    snprintf(p_gp, sizeof p_gp, "%s/sample_efficiency.gp", out);
    snprintf(p_md, sizeof p_md, "%s/report.md", out);
    if (write_dat(p_dat, &R, S, ns, maxn) || write_gp(p_gp, out, logs[0], S, ns) ||
        write_md(p_md, &R, S, ns, at, nat, frac, logs, nlogs))
        goto fail;
    if (plot && run_gnuplot(p_gp))
        goto fail;
    printf("report: %d series, %d samples at most -> %s/report.md", ns, maxn, out);
    if (plot)
        printf(", %s/sample_efficiency.svg, %s/sample_efficiency.png", out, out);
    printf("\n");
    rc = 0;
fail:
    for (int k = 0; k < ns; k++)
        free(S[k].runs);
    free(S);
    runs_free(&R);
    return rc;
}
