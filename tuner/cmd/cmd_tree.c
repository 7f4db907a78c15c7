/* mctune tree: the search tree of one run in a tuning log (JSON Lines of `mctune tune --log`) as
 * Graphviz: a node per sample with the transformation that made it, its GFLOP/s and its visits
 * (samples in its subtree, as MCTS backpropagation counts them); the path from the root to the
 * fastest node highlighted. `dot` (a child process) renders an SVG beside it when on PATH. */
#include "tuner/cmd/cli.h"
#include "tuner/proc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cJSON.h>

#define CMD "tree"


static const char usage_text[] =
    "usage: mctune tree LOG.jsonl --workload TEXT [--out FILE.dot] [options]\n"
    "\n"
    "Draws the search tree of one run of TEXT in a tuning log (mctune tune --log FILE) as\n"
    "Graphviz: one node per sample with the transformation the guide applied, the measured\n"
    "GFLOP/s and speedup over the untuned root, and visits (samples in the node's subtree, as\n"
    "mcts counts them); failed candidates dashed; the path from the root to the fastest node in\n"
    "bold red. When `dot` is on PATH, FILE.svg is rendered beside FILE.dot.\n"
    "\n"
    "  --workload TEXT  the workload as the log spells it, e.g.\n"
    "                   \"matmul f32 nt M=16 N=4096 K=4096 epi=none\" (the workloads in the log\n"
    "                   are listed when it is missing or not found)\n"
    "  --out FILE.dot   output (default tree.dot)\n"
    "  --strategy S     only runs of this strategy (mcts, evolutionary, random)\n"
    "  --guide G        only runs of this guide\n"
    "  --run N          the Nth matching run (default 1; a run starts at sample 1)\n"
    "  --no-svg         do not run dot\n";

typedef struct node {
    int id, parent, sample, ok, visits, best_path;
    double gflops;
    char *applied;
} node;

typedef struct tree {
    node *v;
    int n, cap;
} tree;

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double jnum(const cJSON *o, const char *k, double dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

static void tree_free(tree *t)
{
    for (int i = 0; i < t->n; i++)
        free(t->v[i].applied);
    free(t->v);
}

/* Collects the nodes of run number `want` (1-based) of workload w; lists the workloads seen in
 * wl_list (comma separated, truncated) for the not-found message. Returns 0, 1 on error. */
static int read_run(const char *path, const char *w, const char *strategy, const char *guide,
                    int want, tree *t, char *wl_list, size_t wl_len, char *which, size_t wh_len)
{
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    int runs = 0, rc = 1, in_run = 0;
    char key[512] = "";
    if (!f) {
        fprintf(stderr, "mctune tree: cannot open the log '%s': %s (give the file that "
                "mctune tune --log wrote)\n", path, strerror(errno));
        return 1;
    }
    wl_list[0] = 0;
    while (getline(&line, &cap, f) >= 0) {
        cJSON *o = cJSON_Parse(line);
        const char *ow = o ? jstr(o, "workload") : NULL, *os = o ? jstr(o, "strategy") : NULL;
        const char *og = o ? jstr(o, "guide") : NULL;
        int sample = o ? (int)jnum(o, "sample", 0) : 0;
        if (!ow || !os || !og || sample < 1) {
            cJSON_Delete(o);
            continue;
        }
        if (!strstr(wl_list, ow) && strlen(wl_list) + strlen(ow) + 8 < wl_len)
            snprintf(wl_list + strlen(wl_list), wl_len - strlen(wl_list), "%s  \"%s\"\n",
                     "", ow);
        char k[512];
        snprintf(k, sizeof k, "%s/%s", os, og);
        if (strcmp(ow, w) || (strategy && strcmp(os, strategy)) || (guide && strcmp(og, guide))) {
            cJSON_Delete(o);
            continue;
        }
        if (sample == 1) {
            runs++;
            in_run = runs == want;
            if (in_run)
                snprintf(key, sizeof key, "%s", k);
        } else if (in_run && strcmp(k, key)) {
            /* another strategy's lines interleaved: not ours */
            cJSON_Delete(o);
            continue;
        }
        if (in_run) {
            if (t->n == t->cap) {
                int nc = t->cap ? 2 * t->cap : 64;
                node *nv = realloc(t->v, (size_t)nc * sizeof *nv);
                if (!nv) {
                    cJSON_Delete(o);
                    fprintf(stderr, "mctune tree: out of memory\n");
                    goto fail;
                }
                t->v = nv;
                t->cap = nc;
            }
            node *x = &t->v[t->n];
            memset(x, 0, sizeof *x);
            x->id = (int)jnum(o, "node", t->n);
            x->parent = (int)jnum(o, "parent", -1);
            x->sample = sample;
            x->gflops = jnum(o, "gflops", 0);
            const char *st = jstr(o, "status");
            x->ok = st && !strcmp(st, "ok") && x->gflops > 0;
            const char *ap = jstr(o, "applied");
            if (!(x->applied = strdup(ap ? ap : ""))) {
                cJSON_Delete(o);
                fprintf(stderr, "mctune tree: out of memory\n");
                goto fail;
            }
            t->n++;
        }
        cJSON_Delete(o);
    }
    snprintf(which, wh_len, "%s", key);
    rc = 0;
fail:
    free(line);
    fclose(f);
    return rc;
}

static int find(const tree *t, int id)
{
    for (int i = 0; i < t->n; i++)
        if (t->v[i].id == id)
            return i;
    return -1;
}

/* Writes s into a Graphviz double-quoted label, wrapped at "; " near 36 columns, at most 6
 * lines. */
static void label_text(FILE *f, const char *s)
{
    int col = 0, lines = 0;
    for (const char *p = s; *p; p++) {
        if (lines >= 6) {
            fputs("...", f);
            return;
        }
        if (*p == '"' || *p == '\\')
            fputc('\\', f);
        if (*p == '\n' || *p == '\r')
            continue;
        fputc(*p, f);
        col++;
        if (*p == ';' && p[1] == ' ' && col > 24) {
            fputs("\\l", f);
            p++;
            col = 0;
            lines++;
        }
    }
    fputs("\\l", f);
}

static int write_dot(const char *path, const tree *t, const char *w, const char *which)
{
    FILE *f = fopen(path, "w");
    double base = t->n && t->v[0].ok ? t->v[0].gflops : 0;
    if (!f) {
        fprintf(stderr, "mctune tree: cannot write '%s': %s (choose another --out)\n", path,
                strerror(errno));
        return 1;
    }
    fprintf(f, "// drawn by mctune tree\ndigraph search_tree {\n  graph [label=\"");
    label_text(f, w);
    fprintf(f, "%s, %d samples; bold red: path to the fastest\", labelloc=t, rankdir=TB];\n",
            which, t->n);
    fprintf(f, "  node [shape=box, fontname=\"monospace\", fontsize=9];\n");
    for (int i = 0; i < t->n; i++) {
        const node *x = &t->v[i];
        fprintf(f, "  n%d [label=\"node %d (sample %d)\\l", x->id, x->id, x->sample);
        label_text(f, x->applied);
        if (x->ok && base > 0)
            fprintf(f, "%.2f GFLOP/s (%.2fx)\\lvisits %d\\l\"", x->gflops, x->gflops / base,
                    x->visits);
        else if (x->ok)
            fprintf(f, "%.2f GFLOP/s\\lvisits %d\\l\"", x->gflops, x->visits);
        else
            fprintf(f, "failed\\lvisits %d\\l\"", x->visits);
        if (x->best_path)
            fprintf(f, ", color=red, penwidth=3, style=\"bold,filled\", fillcolor=\"#ffe0e0\"");
        else if (!x->ok)
            fprintf(f, ", style=dashed, color=gray50");
        fprintf(f, "];\n");
    }
    for (int i = 0; i < t->n; i++) {
        const node *x = &t->v[i];
        int p = find(t, x->parent);
        if (p < 0)
            continue;
        fprintf(f, "  n%d -> n%d", t->v[p].id, x->id);
        if (x->best_path && t->v[p].best_path)
            fprintf(f, " [color=red, penwidth=3]");
        fprintf(f, ";\n");
    }
    fprintf(f, "}\n");
    if (fclose(f)) {
        fprintf(stderr, "mctune tree: cannot write '%s': %s\n", path, strerror(errno));
        return 1;
    }
    return 0;
}

/* dot -Tsvg DOT -o SVG; returns 0, 1 on failure, 2 when dot is not on PATH. */
static int run_dot(const char *dot, const char *svg)
{
    char *argv[] = {"dot", "-Tsvg", (char *)dot, "-o", (char *)svg, NULL};
    mct_proc_io io = {.inherit = MCT_PROC_OUT | MCT_PROC_ERR};
    mct_proc_result res;
    int r = mct_proc_run(argv, &io, &res);
    mct_proc_result_free(&res);
    if (r)
        return r == MCT_ENOTFOUND ? 2 : 1;
    return mct_proc_ok(res.status) ? 0 : 1;
}

int mct_cmd_tree(int argc, char **argv)
{
    const char *log = NULL, *w = NULL, *out = "tree.dot", *strategy = NULL, *guide = NULL, *val;
    int svg = 1, r, rc = 1;
    long want = 1;
    tree t = {0};
    char wl_list[2048], which[512], svg_path[4096];

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(usage_text, stdout);
            return 0;
        }
        if ((r = mct_cli_opt(CMD, argc, argv, &i, "--workload", &val))) {
            if (r < 0)
                return 2;
            w = val;
        } else if ((r = mct_cli_opt(CMD, argc, argv, &i, "--out", &val))) {
            if (r < 0)
                return 2;
            out = val;
        } else if ((r = mct_cli_opt(CMD, argc, argv, &i, "--strategy", &val))) {
            if (r < 0)
                return 2;
            strategy = val;
        } else if ((r = mct_cli_opt(CMD, argc, argv, &i, "--guide", &val))) {
            if (r < 0)
                return 2;
            guide = val;
        } else if ((r = mct_cli_opt(CMD, argc, argv, &i, "--run", &val))) {
            if (r < 0 || mct_cli_int(CMD, "--run", val, 1, 1000000, &want))
                return 2;
        } else if (!strcmp(argv[i], "--no-svg")) {
            svg = 0;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return mct_cli_usage_error(CMD, "unknown option '%s'", argv[i]);
        } else if (!log) {
            log = argv[i];
        } else {
            return mct_cli_usage_error(CMD, "one log only ('%s' is a second one)", argv[i]);
        }
    }
    if (!log)
        return mct_cli_usage_error(CMD, "give the log that mctune tune --log FILE wrote");
    if (read_run(log, w ? w : "", strategy, guide, (int)want, &t, wl_list, sizeof wl_list,
                 which, sizeof which))
        goto fail;
    if (!w || !t.n) {
        if (w)
            fprintf(stderr, "mctune tree: no run %ld of workload '%s'%s%s%s%s in %s; ", want, w,
                    strategy ? " strategy " : "", strategy ? strategy : "",
                    guide ? " guide " : "", guide ? guide : "", log);
        else
            fprintf(stderr, "mctune tree: --workload is missing; ");
        fprintf(stderr, "the log holds these workloads (pass one with --workload):\n%s",
                wl_list[0] ? wl_list : "  (none: is it a mctune tune --log file?)\n");
        rc = 2;
        goto fail;
    }
    /* visits: samples in each subtree; then the path to the fastest node */
    int best = 0;
    for (int i = 0; i < t.n; i++) {
        int guard = 0;
        for (int a = i; a >= 0 && guard++ <= t.n; a = find(&t, t.v[a].parent))
            t.v[a].visits++;
        if (t.v[i].ok && t.v[i].gflops > t.v[best].gflops)
            best = i;
    }
    int guard = 0;
    for (int a = best; a >= 0 && guard++ <= t.n; a = find(&t, t.v[a].parent))
        t.v[a].best_path = 1;
    if (write_dot(out, &t, w, which))
        goto fail;
    printf("tree: %d nodes, fastest node %d (%.2f GFLOP/s) -> %s", t.n, t.v[best].id,
           t.v[best].gflops, out);
    if (svg) {
        size_t n = strlen(out);
        if (n > 4 && !strcmp(out + n - 4, ".dot"))
            snprintf(svg_path, sizeof svg_path, "%.*s.svg", (int)(n - 4), out);
        else
            snprintf(svg_path, sizeof svg_path, "%s.svg", out);
        r = run_dot(out, svg_path);
        if (r == 2)
            printf("\ntree: dot (Graphviz) not on PATH, no SVG: install graphviz "
                   "(scripts/install-deps.sh) or render it elsewhere with dot -Tsvg %s", out);
        else if (r) {
            printf("\n");
            fprintf(stderr, "mctune tree: dot failed to render %s (its messages are above)\n",
                    out);
            goto fail;
        } else {
            printf(", %s", svg_path);
        }
    }
    printf("\n");
    rc = 0;
fail:
    tree_free(&t);
    return rc;
}
