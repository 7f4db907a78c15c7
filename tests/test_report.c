/* mctune report and mctune tree on a small recorded log written here by hand (the field names of
 * `mctune tune --log`): the outputs are parsed and compared with the figures worked out below.
 * Runs the built binary ($MCTUNE, default build/mctune). */
#include "tests/check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[256];
static const char *mctune;

#define W1 "matmul f32 nt M=16 N=256 K=256 epi=none"
#define W2 "matmul f32 nt M=1 N=512 K=256 epi=none"

static void line(FILE *f, const char *strategy, const char *guide, const char *w, int sample,
                 int node, int parent, const char *applied, double gflops, double best)
{
    fprintf(f, "{\"time\":1795710451.%03d,\"strategy\":\"%s\",\"guide\":\"%s\",\"workload\":\"%s\","
            "\"sample\":%d,\"node\":%d,\"parent\":%d,\"hash\":\"%032x\",\"schedule\":\"%s\","
            "\"applied\":\"%s\",", sample, strategy, guide, w, sample, node, parent,
            (unsigned)(sample * 7919 + node), applied, applied);
    if (gflops > 0)
        fprintf(f, "\"latency_s\":%.9g,\"gflops\":%.4f,\"status\":\"ok\"", 1e-3 / gflops, gflops);
    else
        fprintf(f, "\"latency_s\":null,\"gflops\":0,\"status\":\"wrong\"");
    fprintf(f, ",\"reused\":false,\"best_gflops\":%.4f}\n", best);
}

/* The log: W1 by mcts/heuristic (a tree whose fastest node 5 is reached 0 -> 2 -> 4 -> 5, node 3
 * failed), W1 by random, W2 by mcts/heuristic; then a junk line. Speedups of W1 mcts after
 * 1..6 samples: 1, 2, 3, 3, 4, 8; W1 random: 1, 1.5, 1.5, 2, 2, 2; W2 mcts: 1, 4, 4, 4 (4 samples,
 * then it keeps its last best). */
static int write_log(const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    line(f, "mcts", "heuristic", W1, 1, 0, -1, "untuned", 10, 10);
    line(f, "mcts", "heuristic", W1, 2, 1, 0, "tile(i, 16, 4); vectorize(j1)", 20, 20);
    line(f, "mcts", "heuristic", W1, 3, 2, 0, "tile(j, 256, 32); vectorize(j1)", 30, 30);
    line(f, "mcts", "heuristic", W1, 4, 3, 2, "unroll(k, 64)", 0, 30);
    line(f, "mcts", "heuristic", W1, 5, 4, 2, "pack(A, i0, i1)", 40, 40);
    line(f, "mcts", "heuristic", W1, 6, 5, 4, "prepack(B, j1)", 80, 80);
    line(f, "random", "", W1, 1, 0, -1, "untuned", 10, 10);
    line(f, "random", "", W1, 2, 1, -1, "random", 15, 15);
    line(f, "random", "", W1, 3, 2, -1, "random", 12, 15);
    line(f, "random", "", W1, 4, 3, -1, "random", 20, 20);
    line(f, "random", "", W1, 5, 4, -1, "random", 5, 20);
    line(f, "random", "", W1, 6, 5, -1, "random", 19, 20);
    line(f, "mcts", "heuristic", W2, 1, 0, -1, "untuned", 5, 5);
    line(f, "mcts", "heuristic", W2, 2, 1, 0, "vectorize(j)", 20, 20);
    line(f, "mcts", "heuristic", W2, 3, 2, 0, "unroll(k, 4)", 10, 20);
    line(f, "mcts", "heuristic", W2, 4, 3, 1, "unroll(k, 8)", 18, 20);
    fprintf(f, "this is not json\n");
    return fclose(f);
}

/* Runs a shell command; returns its exit status (-1 when it did not exit). */
static int sh(const char *fmt, const char *a, const char *b, const char *c)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, fmt, a, b, c);
    int st = system(cmd);
    return st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* A small XML well-formedness check: tags balance and nest, comments, declarations and CDATA
 * skipped, attribute quotes closed. Returns 1 when well formed. */
static int xml_ok(const char *s)
{
    char stack[256][64];
    int depth = 0, root_seen = 0;
    for (const char *p = s; *p; p++) {
        if (*p != '<')
            continue;
        if (!strncmp(p, "<!--", 4)) {
            const char *e = strstr(p, "-->");
            if (!e)
                return 0;
            p = e + 2;
        } else if (!strncmp(p, "<![CDATA[", 9)) {
            const char *e = strstr(p, "]]>");
            if (!e)
                return 0;
            p = e + 2;
        } else if (p[1] == '?' || p[1] == '!') {
            const char *e = strchr(p, '>');
            if (!e)
                return 0;
            p = e;
        } else {
            int close = p[1] == '/';
            const char *n = p + 1 + close, *q = n;
            while (*q && !strchr(" \t\r\n/>", *q))
                q++;
            size_t len = (size_t)(q - n);
            if (!len || len >= 64)
                return 0;
            char quote = 0;
            while (*q && (quote || *q != '>')) {
                if (quote && *q == quote)
                    quote = 0;
                else if (!quote && (*q == '"' || *q == '\''))
                    quote = *q;
                q++;
            }
            if (!*q)
                return 0;
            int empty = q[-1] == '/';
            if (close) {
                if (!depth || strlen(stack[depth - 1]) != len || strncmp(stack[depth - 1], n, len))
                    return 0;
                depth--;
            } else if (!empty) {
                if (depth == 0 && root_seen)
                    return 0;
                if (depth == 256)
                    return 0;
                memcpy(stack[depth], n, len);
                stack[depth][len] = 0;
                depth++;
                root_seen = 1;
            }
            p = q;
        }
    }
    return depth == 0 && root_seen;
}

/* The Markdown table row that starts with `start`, or NULL. */
static const char *row(const char *md, const char *start)
{
    for (const char *p = md; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (!strncmp(p, start, strlen(start)))
            return p;
    return NULL;
}

static int row_is(const char *md, const char *expect)
{
    const char *r = row(md, expect);
    if (!r)
        fprintf(stderr, "report.md lacks the row: %s\n", expect);
    return r && (r[strlen(expect)] == '\n' || r[strlen(expect)] == 0);
}

static int has_python(void)
{
    return sh("python3 -c 'import xml.dom.minidom' >/dev/null 2>&1", "", "", "") == 0;
}

static void test_report(const char *log)
{
    char out[512], path[600];
    snprintf(out, sizeof out, "%s/rep", dir);
    CHECK(sh("%s report %s --out %s >/dev/null 2>&1", mctune, log, out) == 0);

    snprintf(path, sizeof path, "%s/report.md", out);
    char *md = check_slurp(path, NULL);
    CHECK(md != NULL);
    if (md) {
        /* log of 6 samples at most: sample counts 4 and 6. geomean @4 of mcts (3 on W1, 4 on W2)
         * = sqrt 12 = 3.46; @6: sqrt(8*4) = 5.66. Target 95% of the workload's best: W1 best is
         * 8 (mcts, sample 6), random never reaches it; W2 best 4 at sample 2. Median of {6, 2}
         * (sorted 2, 6, index 1) = 6. */
        CHECK(row_is(md, "| strategy/guide | runs | @4 | @6 | best | samples to target (median, "
                     "reached) |"));
        CHECK(row_is(md, "| mcts/heuristic | 2 | 3.46x | 5.66x | 5.66x | 6 (2/2) |"));
        CHECK(row_is(md, "| random | 1 | 2.00x | 2.00x | 2.00x | not reached (0/1) |"));
        CHECK(row_is(md, "| " W1 " | mcts/heuristic | 6 | 10.00 | 3.00x | 8.00x | 80.00 | 6 |"));
        CHECK(row_is(md, "| " W1 " | random | 6 | 10.00 | 2.00x | 2.00x | 20.00 | not reached |"));
        CHECK(row_is(md, "| " W2 " | mcts/heuristic | 4 | 5.00 | 4.00x | - | 20.00 | 2 |"));
        free(md);
    }

    snprintf(path, sizeof path, "%s/sample_efficiency.svg", out);
    char *svg = check_slurp(path, NULL);
    CHECK(svg != NULL);
    if (svg) {
        CHECK(xml_ok(svg));
        CHECK(strstr(svg, "<title>mcts/heuristic</title>") != NULL);
        CHECK(strstr(svg, "<title>random</title>") != NULL);
        free(svg);
    }
    if (has_python())
        CHECK(sh("python3 -c 'import sys, xml.dom.minidom as m; d = m.parse(sys.argv[1]); "
                 "t = [e.firstChild.data for e in d.getElementsByTagName(\"title\") if e.firstChild]; "
                 "sys.exit(0 if \"mcts/heuristic\" in t and \"random\" in t else 1)' %s%s%s",
                 out, "/sample_efficiency.svg", "") == 0);
    else
        printf("note: python3 not found, the SVG was checked by the built-in parser only\n");

    snprintf(path, sizeof path, "%s/sample_efficiency.png", out);
    char *png = check_slurp(path, NULL);
    CHECK(png && !memcmp(png, "\x89PNG\r\n\x1a\n", 8));
    free(png);

    /* the data file: one row per sample count, the mcts column's sample-6 value */
    snprintf(path, sizeof path, "%s/sample_efficiency.dat", out);
    char *dat = check_slurp(path, NULL);
    CHECK(dat && strstr(dat, "\n6\t5.65685\t2\n"));
    free(dat);

    /* a series per workload, fixed counts, another target */
    CHECK(sh("%s report %s --by-workload --at 2,3 --target 0.5 --no-plot --out %s/rep2 "
             ">/dev/null 2>&1", mctune, log, dir) == 0);
    snprintf(path, sizeof path, "%s/rep2/report.md", dir);
    md = check_slurp(path, NULL);
    CHECK(md && row_is(md, "| mcts/heuristic " W1 " | 1 | 2.00x | 3.00x | 8.00x | 5 (1/1) |"));
    /* random reaches half of 8 (4) never: its best is 2 */
    CHECK(md && row_is(md, "| random " W1 " | 1 | 1.50x | 1.50x | 2.00x | not reached (0/1) |"));
    free(md);

    /* errors: a missing log, no gnuplot on PATH, a bad option value */
    CHECK(sh("%s report %s/nope.jsonl --out %s/rep3 2>/dev/null", mctune, dir, dir) == 1);
    CHECK(sh("PATH=/nonexistent %s report %s --out %s/rep4 2>&1 | grep -q 'gnuplot not found'",
             mctune, log, dir) == 0);
    CHECK(sh("%s report %s --target 2 2>/dev/null; test $? = 2", mctune, log, "") == 0);
}

static void test_tree(const char *log)
{
    char out[512], path[600];
    snprintf(out, sizeof out, "%s/t.dot", dir);
    CHECK(sh("%s tree %s --workload '" W1 "' --strategy mcts --out %s >/dev/null", mctune, log,
             out) == 0);
    char *dot = check_slurp(out, NULL);
    CHECK(dot != NULL);
    if (dot) {
        CHECK(strstr(dot, "digraph") != NULL);
        /* nodes with transformation, GFLOP/s, speedup and visits (samples in the subtree) */
        CHECK(strstr(dot, "n0 [label=\"node 0 (sample 1)\\luntuned\\l10.00 GFLOP/s (1.00x)\\l"
                          "visits 6\\l\", color=red") != NULL);
        CHECK(strstr(dot, "n2 [label=\"node 2 (sample 3)\\ltile(j, 256, 32); vectorize(j1)\\l"
                          "30.00 GFLOP/s (3.00x)\\lvisits 4\\l\", color=red") != NULL);
        CHECK(strstr(dot, "n5 [label=\"node 5 (sample 6)\\lprepack(B, j1)\\l80.00 GFLOP/s "
                          "(8.00x)\\lvisits 1\\l\", color=red") != NULL);
        CHECK(strstr(dot, "n1 [label=\"node 1 (sample 2)\\ltile(i, 16, 4); vectorize(j1)\\l"
                          "20.00 GFLOP/s (2.00x)\\lvisits 1\\l\"];") != NULL);
        CHECK(strstr(dot, "n3 [label=\"node 3 (sample 4)\\lunroll(k, 64)\\lfailed\\lvisits 1\\l\""
                          ", style=dashed") != NULL);
        /* the best path 0 -> 2 -> 4 -> 5 highlighted, the other edges not */
        CHECK(strstr(dot, "n0 -> n2 [color=red, penwidth=3];") != NULL);
        CHECK(strstr(dot, "n2 -> n4 [color=red, penwidth=3];") != NULL);
        CHECK(strstr(dot, "n4 -> n5 [color=red, penwidth=3];") != NULL);
        CHECK(strstr(dot, "n0 -> n1;") != NULL);
        CHECK(strstr(dot, "n2 -> n3;") != NULL);
        int edges = 0;
        for (const char *p = dot; (p = strstr(p, " -> ")); p++)
            edges++;
        CHECK(edges == 5);
        free(dot);
    }
    /* dot renders an SVG beside it (graphviz comes with scripts/install-deps.sh) */
    if (sh("command -v dot >/dev/null", "", "", "") == 0) {
        snprintf(path, sizeof path, "%s/t.svg", dir);
        char *svg = check_slurp(path, NULL);
        CHECK(svg && xml_ok(svg) && strstr(svg, "prepack(B, j1)"));
        free(svg);
    } else {
        printf("note: dot not on PATH, the SVG of mctune tree was not checked\n");
    }
    /* the other workload: its own tree; an unknown one lists what the log holds */
    CHECK(sh("%s tree %s --workload '" W2 "' --no-svg --out %s/t2.dot >/dev/null", mctune, log,
             dir) == 0);
    snprintf(path, sizeof path, "%s/t2.dot", dir);
    dot = check_slurp(path, NULL);
    CHECK(dot && strstr(dot, "n1 -> n3;") && strstr(dot, "n0 -> n1 [color=red, penwidth=3];"));
    free(dot);
    CHECK(sh("%s tree %s --workload 'matmul f32 nt M=7 N=7 K=7 epi=none' --out %s/t3.dot 2>&1 "
             "| grep -q '\"" W2 "\"'", mctune, log, dir) == 0);
    CHECK(sh("%s tree %s --workload 'matmul f32 nt M=7 N=7 K=7 epi=none' --out %s/t3.dot "
             "2>/dev/null; test $? = 2", mctune, log, dir) == 0);
}

int main(void)
{
    char log[300];
    mctune = getenv("MCTUNE") ? getenv("MCTUNE") : "build/mctune";
    if (access(mctune, X_OK)) {
        fprintf(stderr, "test_report: %s is not an executable; build it (make) or set MCTUNE\n",
                mctune);
        CHECK(0);
        return check_done();
    }
    snprintf(dir, sizeof dir, "/tmp/mct_test_report_XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
    snprintf(log, sizeof log, "%s/tune.jsonl", dir);
    CHECK(write_log(log) == 0);
    test_report(log);
    test_tree(log);
    sh("rm -rf %s%s%s", dir, "", "");
    return check_done();
}
