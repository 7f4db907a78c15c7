/* The sample-efficiency study of the search strategies (the paper's comparison), as tables.
 *
 *   build/bench/bench-search [--budget 128] [--seeds 3] [--layers LIST] [--strategies LIST]
 *                            [--guide heuristic|llm|llm-cmd] [--min-time 0.02] [--min-runs 1]
 *                            [--final-min-time 0.2] [--timeout S] [--cache DIR] [--models DIR]
 *                            [--shrink 1] [--tolerance 0] [--rank 4] [--rollout 4] [--cut 4]
 *                            [--out FILE] [--help]
 *
 * For each layer (full-size layers of the model files in models/: M = 1, 16, 128, 512, a small
 * odd M and an attention bmm, from three models) and each strategy (mcts with the heuristic
 * guide, the same with the learned cost model ranking and rolling out as `mctune tune
 * --cost-model` does, MetaSchedule's evolutionary search inside the cost model, its
 * measure-every-child ablation, random), seeds 1..S, all in one run:
 *   - the best GFLOP/s after 16, 32, 64, 128 samples (geometric mean over the seeds);
 *   - the samples each needs to reach evolutionary's best at the full budget (the geometric mean
 *     over its seeds), mean over seeds, ">B" when a seed never does (then counted as B, so the
 *     figure is a lower bound);
 *   - each strategy's best schedule re-measured side by side with the normal minimum time, and
 *     the libraries (OpenBLAS, its forced core, oneDNN: the harness's baseline) on the same data.
 * A summary gives, per strategy, the geometric mean over the layers of the samples-to-reach and
 * of the ratio of its 32-sample best to evolutionary's full-budget best. Everything printed on
 * stdout also goes to --out (build/bench-search.txt); progress with elapsed time and an estimate
 * of the time left goes to stderr.
 *
 * Cost control, so the full study fits about an hour on two cores:
 *   - the compile cache is a persistent folder (--cache, default build/bench-search-cc), so a
 *     second run compiles almost nothing;
 *   - the searches measure with a short minimum time (--min-time, --min-runs); only the final
 *     bests are measured with the normal one (--final-min-time);
 *   - a candidate gets a time limit per layer (the untuned schedule's latency plus 2 s, within
 *     [3, 120] s; --timeout fixes it): a candidate slower than the untuned schedule can never
 *     be a speedup, so it is cut as a failed sample (tuner/search.h counts failures so) instead
 *     of costing several of its slow calls;
 *   - a candidate whose checked first run is --cut (4) times slower than its search's best so
 *     far is recorded at that run and not warmed up or timed (mct_search_opts.cut): it can never
 *     be the best, and on large layers such candidates' calls were most of the measuring time;
 *   - every search goes through the tuning library (tuner/tune.h) on one scratch database with
 *     retune on and transfer off: a candidate measured once in this run is not measured again by
 *     another strategy or seed (its stored trial is reused, as `mctune tune` reuses trials), but
 *     it still costs each search that draws it one sample.
 * The cost model of the model-based strategies is private to each search: it starts untrained
 * (the analytical estimate) and learns from that search's own samples only, never from another
 * strategy's, another seed's or an earlier run's trials, so no strategy gets samples for free.
 *
 * --layers takes indices into the default list (0..5) and MODEL:LAYER:M items (a model file
 * models/MODEL.json and a layer name in it); --shrink S divides N and K by S (at least 16) for
 * quick checks. --guide llm or llm-cmd adds the rows mcts+llm and mcts+llm+model (the endpoint
 * from MCTUNE_LLM_URL, MCTUNE_LLM_MODEL, MCTUNE_LLM_API_KEY; scripts/llm-eval runs that).
 *
 * Not part of `make bench` (it takes long): `make bench-search`. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cJSON.h>

#include "tuner/guide.h"
#include "tuner/measure.h"
#include "tuner/tune.h"
#include "tuner/tune_model.h"

/* The default layers: one per regime a serving engine runs, from three models, chosen so the
 * whole study fits about an hour on two cores: from M=16 on, real but narrower projections (the
 * key projection, an expert's gate), since a 4096x4096 projection at M=128 costs about 8 s per
 * candidate on such a machine (its untuned schedule runs 5 s a call). */
static const char *const default_layers[] = {
    "llama-3-8b:q_proj:1",
    "deepseek-r1:expert_gate_proj:16",
    "llama-3-8b:k_proj:128",
    "qwen2.5-7b:k_proj:512",
    "qwen2.5-7b:o_proj:7",
    "llama-3-8b:attn_scores_s512:128",
};
#define NDEFAULT ((int)(sizeof default_layers / sizeof default_layers[0]))

enum { G_NONE, G_HEUR, G_RANDOM, G_LLM, G_LLMCMD };

typedef struct strat {
    const char *name;
    mct_search_kind kind;
    int guide;              /* G_* */
    int model;              /* mcts with the cost model (rank, rollout) */
} strat;

static const strat all_strats[] = {
    {"mcts+heuristic", MCT_SEARCH_MCTS, G_HEUR, 0},
    {"mcts+heuristic+model", MCT_SEARCH_MCTS, G_HEUR, 1},
    {"mcts+llm", MCT_SEARCH_MCTS, G_LLM, 0},
    {"mcts+llm+model", MCT_SEARCH_MCTS, G_LLM, 1},
    {"mcts+llm-cmd", MCT_SEARCH_MCTS, G_LLMCMD, 0},
    {"mcts+llm-cmd+model", MCT_SEARCH_MCTS, G_LLMCMD, 1},
    {"mcts+random", MCT_SEARCH_MCTS, G_RANDOM, 0},
    {"evolutionary", MCT_SEARCH_EVO, G_NONE, 0},
    {"evolutionary-measured", MCT_SEARCH_EVO_MEASURED, G_NONE, 0},
    {"random", MCT_SEARCH_RANDOM, G_NONE, 0},
};
#define NALL ((int)(sizeof all_strats / sizeof all_strats[0]))
#define MAXSEEDS 16
#define MAXLAYERS 32

static const int marks[] = {16, 32, 64, 128};
#define NMARKS 4

/* stdout and the --out file get the same text */
static FILE *outf;
static void __attribute__((format(printf, 1, 2))) say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    if (outf) {
        va_start(ap, fmt);
        vfprintf(outf, fmt, ap);
        va_end(ap);
    }
}

static void usage(FILE *f)
{
    fprintf(f,
        "usage: bench-search [options]\n"
        "  --budget N          samples per search, the untuned schedule included (default 128)\n"
        "  --seeds N           seeds 1..N per strategy (default 3, at most %d)\n"
        "  --layers LIST       comma-separated: indices into the default layers, or\n"
        "                      MODEL:LAYER:M (models/MODEL.json, its layer LAYER, M tokens)\n"
        "  --strategies LIST   comma-separated strategy names (default mcts+heuristic,\n"
        "                      mcts+heuristic+model,evolutionary,evolutionary-measured,random);\n"
        "                      evolutionary is always run: it is the reference\n"
        "  --guide G           heuristic (default), llm or llm-cmd: llm adds mcts+llm and\n"
        "                      mcts+llm+model (endpoint from MCTUNE_LLM_URL, MCTUNE_LLM_MODEL,\n"
        "                      MCTUNE_LLM_API_KEY; llm-cmd: MCTUNE_LLM_CMD)\n"
        "  --mcts-random       also run mcts with the random guide\n"
        "  --min-time S        minimum timed seconds per candidate in the searches (0.02)\n"
        "  --min-runs N        and timed calls at least (1)\n"
        "  --cut F             a candidate whose checked first run is F times slower than its\n"
        "                      search's best so far is recorded at that run, not timed further\n"
        "                      (4; 0 off: mctune tune --cut)\n"
        "  --final-min-time S  for the final bests and the libraries (0.2)\n"
        "  --timeout S         time limit per candidate (default: per layer, the untuned\n"
        "                      latency + 2 s within [3, 120]); a candidate cut is a failed sample\n"
        "  --cache DIR         compile cache, kept between runs (build/bench-search-cc)\n"
        "  --models DIR        model files (models)\n"
        "  --shrink S          divide N and K by S, at least 16 (1: full size; quick checks)\n"
        "  --tolerance F       a search reaches the target at >= (1 - F) x it (0)\n"
        "  --rank N, --rollout N  the +model rows' factors, as mctune tune's (4, 4)\n"
        "  --out FILE          the tables also go there (build/bench-search.txt; '' none)\n"
        "default layers:\n", MAXSEEDS);
    for (int i = 0; i < NDEFAULT; i++)
        fprintf(f, "  %d  %s\n", i, default_layers[i]);
    fprintf(f, "strategies:");
    for (int i = 0; i < NALL; i++)
        fprintf(f, " %s", all_strats[i].name);
    fprintf(f, "\n");
}

static int bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int bad(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "bench-search: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s\n", strstr(fmt, "--help") ? "" : " (bench-search --help)");
    return 2;
}

static int parse_long(const char *opt, const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return bad("%s '%s' is not a whole number in [%ld, %ld]", opt, s, lo, hi);
    *out = v;
    return 0;
}

static int parse_double(const char *opt, const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi))
        return bad("%s '%s' is not a number in [%g, %g]", opt, s, lo, hi);
    *out = v;
    return 0;
}

/* One layer: MODEL:LAYER:M resolved through the model file into a workload key. */
typedef struct layer {
    char name[288];         /* "llama-3-8b q_proj M=1" */
    mct_workload w;
} layer;

static int json_int(const cJSON *o, const char *k, int dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valueint : dflt;
}

static const char *json_str(const cJSON *o, const char *k, const char *dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : dflt;
}

/* Resolves spec (MODEL:LAYER:M) into *L; the model file is read with the tuner's reader, its
 * layer fields as models/README.md defines them. Returns 0 or 2 after a message. */
static int resolve_layer(const char *models, const char *spec, int shrink, layer *L)
{
    char model[128], lname[128];
    long M = 0;
    const char *c1 = strchr(spec, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (!c1 || !c2 || c1 == spec || c2 == c1 + 1 || (size_t)(c1 - spec) >= sizeof model ||
        (size_t)(c2 - c1 - 1) >= sizeof lname)
        return bad("--layers item '%s' is neither an index nor MODEL:LAYER:M "
                   "(e.g. llama-3-8b:q_proj:16)", spec);
    snprintf(model, sizeof model, "%.*s", (int)(c1 - spec), spec);
    snprintf(lname, sizeof lname, "%.*s", (int)(c2 - c1 - 1), c1 + 1);
    if (parse_long("--layers M", c2 + 1, 1, 1 << 20, &M))
        return 2;
    char path[512], err[512], key[256];
    snprintf(path, sizeof path, "%s/%s.json", models, model);
    char *text = NULL;
    if (mct_tune_model_read(path, &text, err, sizeof err))
        return bad("--layers '%s': %s (--models DIR names the folder of model files)", spec,
                   err);
    cJSON *root = cJSON_Parse(text);
    free(text);
    const cJSON *layers = cJSON_GetObjectItemCaseSensitive(root, "layers"), *it, *found = NULL;
    cJSON_ArrayForEach(it, layers)
        if (!strcmp(json_str(it, "name", ""), lname))
            found = it;
    if (!found) {
        cJSON_Delete(root);
        return bad("--layers '%s': %s has no layer named '%s' (see its \"layers\")", spec, path,
                   lname);
    }
    const char *op = json_str(found, "op", "matmul"), *lay = json_str(found, "layout", "nt");
    const char *epi = json_str(found, "epi", "none");
    int N = json_int(found, "N", 0), K = json_int(found, "K", 0);
    if (shrink > 1) {
        N = N / shrink > 16 ? N / shrink : 16;
        K = K / shrink > 16 ? K / shrink : 16;
    }
    if (!strcmp(op, "bmm"))
        snprintf(key, sizeof key, "bmm f32 %s B=%d G=%d M=%ld N=%d K=%d epi=%s", lay,
                 json_int(found, "B", 1), json_int(found, "G", 1), M, N, K, epi);
    else
        snprintf(key, sizeof key, "matmul f32 %s M=%ld N=%d K=%d epi=%s%s", lay, M, N, K, epi,
                 json_int(found, "beta", 0) ? " beta=1" : "");
    cJSON_Delete(root);
    if (mct_wl_parse(key, &L->w, err, sizeof err))
        return bad("--layers '%s': the layer in %s makes '%s': %s", spec, path, key, err);
    snprintf(L->name, sizeof L->name, "%s %s M=%ld", model, lname, M);
    return 0;
}

/* One search's curve: the best GFLOP/s after each sample (1-based; 0: none ok yet). */
typedef struct curve {
    int budget;
    double *best;
} curve;

static int on_sample(void *ctx, const mct_search_sample *s)
{
    curve *c = ctx;
    if (s->index >= 1 && s->index <= c->budget) {
        double prev = c->best[s->index - 1];
        c->best[s->index] = s->status == MCT_MEAS_OK && s->gflops > prev ? s->gflops : prev;
    }
    return 0;
}

/* The first sample at which the curve reaches target, 0 when it never does. */
static int reach(const double *best, int budget, double target)
{
    for (int i = 1; i <= budget; i++)
        if (best[i] > 0 && best[i] >= target)
            return i;
    return 0;
}

static void fmt_time(double s, char *buf, size_t len)
{
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, len, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else
        snprintf(buf, len, "%ldm%02lds", t / 60, t % 60);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int make_guide(int kind, mct_db *db, mct_guide **g, char *err, size_t errlen)
{
    mct_llm_opts lo;
    memset(&lo, 0, sizeof lo);
    lo.cache = db;
    switch (kind) {
    case G_HEUR:
        return mct_guide_heuristic_create(g);
    case G_RANDOM:
        return mct_guide_random_create(g);
    case G_LLM:
        return mct_guide_llm_create(&lo, g, err, errlen);
    case G_LLMCMD:
        return mct_guide_llmcmd_create(&lo, g, err, errlen);
    }
    *g = NULL;
    return 0;
}

/* Per-layer results kept for the summary. */
typedef struct layer_sum {
    int ok;
    double need[NALL];      /* mean samples to reach the target (misses count as budget) */
    int miss[NALL];         /* seeds that never reached it */
    double r32[NALL];       /* best at min(32, budget) / evolutionary's best at the budget */
} layer_sum;

int main(int argc, char **argv)
{
    long budget = 128, nseeds = 3, shrink = 1, min_runs = 1, rank = 4, rollout = 4;
    double min_time = 0.02, final_min_time = 0.2, timeout = 0, tol = 0, cut = 4;
    const char *cache = "build/bench-search-cc", *models = "models", *sel = NULL, *strl = NULL;
    const char *guide = "heuristic", *outpath = "build/bench-search.txt";
    int mcts_random = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--mcts-random")) {
            mcts_random = 1;
            continue;
        }
        if (a[0] != '-' || a[1] != '-')
            return bad("unexpected argument '%s'", a);
        if (!v)
            return bad("%s needs a value", a);
        i++;
        int r = 0;
        if (!strcmp(a, "--budget"))
            r = parse_long(a, v, 2, 4096, &budget);
        else if (!strcmp(a, "--seeds"))
            r = parse_long(a, v, 1, MAXSEEDS, &nseeds);
        else if (!strcmp(a, "--shrink"))
            r = parse_long(a, v, 1, 1024, &shrink);
        else if (!strcmp(a, "--min-runs"))
            r = parse_long(a, v, 1, 1000, &min_runs);
        else if (!strcmp(a, "--rank"))
            r = parse_long(a, v, 0, 32, &rank);
        else if (!strcmp(a, "--rollout"))
            r = parse_long(a, v, 0, 16, &rollout);
        else if (!strcmp(a, "--min-time"))
            r = parse_double(a, v, 1e-4, 10, &min_time);
        else if (!strcmp(a, "--final-min-time"))
            r = parse_double(a, v, 1e-4, 10, &final_min_time);
        else if (!strcmp(a, "--timeout"))
            r = parse_double(a, v, 0.5, 3600, &timeout);
        else if (!strcmp(a, "--tolerance"))
            r = parse_double(a, v, 0, 0.5, &tol);
        else if (!strcmp(a, "--cut"))
            r = parse_double(a, v, 0, 1000, &cut);
        else if (!strcmp(a, "--cache"))
            cache = v;
        else if (!strcmp(a, "--models"))
            models = v;
        else if (!strcmp(a, "--layers"))
            sel = v;
        else if (!strcmp(a, "--strategies"))
            strl = v;
        else if (!strcmp(a, "--guide"))
            guide = v;
        else if (!strcmp(a, "--out"))
            outpath = v;
        else
            return bad("unknown option '%s'", a);
        if (r)
            return r;
    }
    if (!*cache)
        return bad("--cache '' names no folder; give one (it is kept between runs)");
    if (cut > 0 && cut <= 1)
        return bad("--cut %g: give a factor above 1 (a first run that many times the best so far "
                   "is cut) or 0 to time every candidate", cut);
    if (rank <= 1 && rollout == 0)
        return bad("--rank %ld with --rollout 0 leaves the +model rows without the model; give "
                   "--rank >= 2 or --rollout >= 1", rank);

    /* strategies: the chosen ones in the table's order, evolutionary always among them */
    int use[NALL] = {0};
    int gk = !strcmp(guide, "heuristic") ? G_HEUR : !strcmp(guide, "llm") ? G_LLM
             : !strcmp(guide, "llm-cmd") ? G_LLMCMD : -1;
    if (gk < 0)
        return bad("--guide '%s' is not heuristic, llm or llm-cmd", guide);
    if (strl) {
        char buf[1024];
        snprintf(buf, sizeof buf, "%s", strl);
        for (char *sv, *t = strtok_r(buf, ",", &sv); t; t = strtok_r(NULL, ",", &sv)) {
            int k = 0;
            while (k < NALL && strcmp(all_strats[k].name, t))
                k++;
            if (k == NALL)
                return bad("--strategies: '%s' is not a strategy (--help lists them)", t);
            use[k] = 1;
        }
    } else
        for (int k = 0; k < NALL; k++)
            use[k] = all_strats[k].guide == G_HEUR || all_strats[k].guide == G_NONE;
    for (int k = 0; k < NALL; k++) {
        if (gk != G_HEUR && all_strats[k].guide == gk)
            use[k] = 1;
        if (mcts_random && all_strats[k].guide == G_RANDOM)
            use[k] = 1;
        if (all_strats[k].kind == MCT_SEARCH_EVO)
            use[k] = 1;
    }
    int ns = 0, sidx[NALL], evo = -1;
    for (int k = 0; k < NALL; k++)
        if (use[k]) {
            if (all_strats[k].kind == MCT_SEARCH_EVO)
                evo = ns;
            sidx[ns++] = k;
        }
    /* an LLM row without an endpoint would be random mutations under the LLM's name */
    for (int j = 0; j < ns; j++) {
        int g = all_strats[sidx[j]].guide;
        if (g == G_LLM && !(getenv("MCTUNE_LLM_MODEL") && *getenv("MCTUNE_LLM_MODEL")))
            return bad("%s needs an endpoint: set MCTUNE_LLM_URL and MCTUNE_LLM_MODEL (and "
                       "MCTUNE_LLM_API_KEY when the server wants a key; docs/llm.md)",
                       all_strats[sidx[j]].name);
        if (g == G_LLMCMD && !(getenv("MCTUNE_LLM_CMD") && *getenv("MCTUNE_LLM_CMD")))
            return bad("%s needs a command: set MCTUNE_LLM_CMD (docs/llm.md)",
                       all_strats[sidx[j]].name);
    }

    /* layers */
    layer L[MAXLAYERS];
    int nl = 0;
    {
        char buf[4096];
        snprintf(buf, sizeof buf, "%s", sel ? sel : "");
        if (!sel)
            for (int i = 0; i < NDEFAULT; i++)
                if (resolve_layer(models, default_layers[i], (int)shrink, &L[nl++]))
                    return 2;
        for (char *sv, *t = sel ? strtok_r(buf, ",", &sv) : NULL; t;
             t = strtok_r(NULL, ",", &sv)) {
            if (nl == MAXLAYERS)
                return bad("--layers: more than %d layers", MAXLAYERS);
            char *end;
            long ix = strtol(t, &end, 10);
            if (end != t && !*end) {
                if (ix < 0 || ix >= NDEFAULT)
                    return bad("--layers: index %ld is not in [0, %d] (the default layers; "
                               "or give MODEL:LAYER:M)", ix, NDEFAULT - 1);
                t = (char *)default_layers[ix];
            }
            if (resolve_layer(models, t, (int)shrink, &L[nl++]))
                return 2;
        }
        if (!nl)
            return bad("--layers '%s' names no layer", sel);
    }

    if (outpath && *outpath && !(outf = fopen(outpath, "w"))) {
        fprintf(stderr, "bench-search: cannot write --out '%s': %s; give a writable file or "
                "--out ''\n", outpath, strerror(errno));
        return 1;
    }

    char err[1024];
    mct_meas_opts o;
    mct_meas_opts_default(&o);
    o.cache_dir = cache;
    mct_meas *mbase = NULL, *mfinal = NULL, *mlibs = NULL;
    /* the untuned schedule: one timed call, a long limit (it is the slowest candidate there is) */
    o.min_time_s = min_time;
    o.min_runs = 1;
    o.timeout_s = 600;
    int rc = mct_meas_create(&o, &mbase, err, sizeof err);
    o.min_time_s = final_min_time;
    o.min_runs = 0;
    o.timeout_s = 120;
    if (!rc)
        rc = mct_meas_create(&o, &mfinal, err, sizeof err);
    o.baseline = 1;
    if (!rc)
        rc = mct_meas_create(&o, &mlibs, err, sizeof err);
    if (rc) {
        fprintf(stderr, "bench-search: measurement harness: %s\n", err);
        return 1;
    }
    char dbdir[] = "/tmp/mct-bench-search-XXXXXX";
    mct_db *db = NULL;
    const mct_cpu *cpu = mct_cpu_host();
    if (!mkdtemp(dbdir) || mct_db_open(dbdir, MCT_DB_NOSYNC, err, sizeof err, &db) ||
        mct_db_put_cpu(db, cpu)) {
        fprintf(stderr, "bench-search: scratch database in %s: %s\n", dbdir,
                db ? mct_db_errmsg(db) : err);
        return 1;
    }

    say("bench-search: %d layers, %d strategies, %ld seeds, budget %ld; searches measure with "
        "min-time %g s, min-runs %ld, cut %g; final bests with min-time %g s; shrink %ld; cpu %s; "
        "compile cache %s\n", nl, ns, nseeds, budget, min_time, min_runs, cut, final_min_time,
        shrink, cpu->brand, mct_meas_cache_dir(mbase));
    say("best GFLOP/s: geometric mean over the seeds; samples to reach: mean over the seeds of "
        "the first sample at which a search's best reaches evolutionary's best at %ld samples "
        "(the geometric mean over its seeds%s); '>' when a seed never does (counted as %ld)\n",
        budget, tol > 0 ? ", less the tolerance" : "", budget);
    say("cost models: private to each search, trained on its own samples only\n");
    if (outf)
        fflush(outf);

    int ncol = 0, cols[NMARKS + 1];
    for (int k = 0; k < NMARKS; k++)
        if (marks[k] < budget)
            cols[ncol++] = marks[k];
    cols[ncol++] = (int)budget;
    int at32 = budget < 32 ? (int)budget : 32;

    layer_sum *sum = calloc((size_t)nl, sizeof *sum);
    curve *cv = calloc((size_t)ns * (size_t)nseeds, sizeof *cv);
    double t0 = now_s();
    long searches_total = (long)nl * ns * nseeds, searches_done = 0;
    int exit_code = 0;
    for (int li = 0; li < nl && sum && cv; li++) {
        const mct_workload *w = &L[li].w;
        char wt[256];
        mct_wl_format(w, wt, sizeof wt);
        say("\n== %s: %s (%.3g GFLOP)\n", L[li].name, wt, mct_wl_flops(w) * 1e-9);
        if (outf)
            fflush(outf);
        fflush(stdout);
        double tl0 = now_s();

        /* the untuned schedule first, with the long limit: stored as a trial, every search
         * below finds it (its sample 1), and its latency sets the candidates' time limit */
        mct_tune_opts to;
        memset(&to, 0, sizeof to);
        to.db = db;
        to.cpu = cpu;
        to.kind = MCT_SEARCH_RANDOM;
        to.budget = 1;
        to.meas = mbase;
        to.meas_base = mbase;
        to.retune = 1;
        mct_tune_result res;
        int e = mct_tune_workload(w, &to, &res, err, sizeof err);
        double base_lat = res.st.base_latency_s;
        if (e || !(base_lat > 0)) {
            say("  the untuned schedule failed (%s%s%s); layer skipped\n",
                e ? mct_strerror(e) : "no latency", e ? ": " : "", e ? err : "");
            searches_done += ns * nseeds;
            exit_code = 1;
            continue;
        }
        double base_gf = mct_wl_flops(w) / base_lat * 1e-9;
        double lim = timeout > 0 ? timeout : base_lat + 2;
        if (!(timeout > 0))
            lim = lim < 3 ? 3 : lim > 120 ? 120 : lim;
        o.baseline = 0;
        o.min_time_s = min_time;
        o.min_runs = (int)min_runs;
        o.timeout_s = lim;
        mct_meas *meas = NULL;
        if (mct_meas_create(&o, &meas, err, sizeof err)) {
            fprintf(stderr, "bench-search: measurement harness: %s\n", err);
            exit_code = 1;
            break;
        }

        char best_sched[NALL][4096];
        double best_gf[NALL];
        for (int j = 0; j < ns; j++) {
            const strat *st = &all_strats[sidx[j]];
            best_sched[j][0] = 0;
            best_gf[j] = 0;
            for (int s = 0; s < nseeds; s++) {
                curve *c = &cv[j * nseeds + s];
                free(c->best);
                c->budget = (int)budget;
                c->best = calloc((size_t)budget + 1, sizeof(double));
                if (!c->best) {
                    fprintf(stderr, "bench-search: out of memory\n");
                    return 1;
                }
                mct_guide *g = NULL;
                if (make_guide(st->guide, db, &g, err, sizeof err)) {
                    fprintf(stderr, "bench-search: %s: guide: %s\n", st->name, err);
                    return 1;
                }
                memset(&to, 0, sizeof to);
                to.db = db;
                to.cpu = cpu;
                to.kind = st->kind;
                to.rank = st->model ? (int)rank : 0;
                to.rollout = st->model ? (int)rollout : 0;
                to.cut = cut;
                to.budget = (int)budget;
                to.seed = (uint64_t)s + 1;
                to.guide = g;
                to.guide_name = g ? mct_guide_name(g) : NULL;
                to.meas = meas;
                to.meas_base = mbase;
                to.retune = 1;
                to.on_sample = on_sample;
                to.ctx = c;
                double ts0 = now_s();
                e = mct_tune_workload(w, &to, &res, err, sizeof err);
                double ts = now_s() - ts0;
                for (int i = 1; i <= budget; i++)  /* a search that ran out keeps its best */
                    if (c->best[i] < c->best[i - 1])
                        c->best[i] = c->best[i - 1];
                const mct_search_stats *S = &res.st;
                if (e) {
                    say("  %s seed %d failed: %s %s\n", st->name, s + 1, mct_strerror(e), err);
                    exit_code = 1;
                }
                if (S->best_gflops > best_gf[j]) {
                    best_gf[j] = S->best_gflops;
                    snprintf(best_sched[j], sizeof best_sched[j], "%s", S->best_schedule);
                }
                char gnote[700] = "";
                if (g && (st->guide == G_LLM || st->guide == G_LLMCMD)) {
                    mct_guide_stats gs;
                    mct_guide_get_stats(g, &gs);
                    snprintf(gnote, sizeof gnote, "; llm: %ld calls, %ld failures, %ld cached, "
                             "%ld+%ld tokens%s%s", gs.calls, gs.failures, gs.cache_hits,
                             gs.prompt_tokens, gs.completion_tokens,
                             gs.stopped ? ", STOPPED: " : "", gs.stopped ? gs.stop_reason : "");
                }
                mct_guide_destroy(g);
                searches_done++;
                double el = now_s() - t0;
                char e1[32], e2[32];
                fmt_time(el, e1, sizeof e1);
                fmt_time(el / searches_done * (searches_total - searches_done), e2, sizeof e2);
                fprintf(stderr, "[%s elapsed, ~%s left] %d/%d %s | %s seed %d: %.1f s, %d "
                        "samples (%d measured, %d reused, %d failed), best %.2f GFLOP/s at "
                        "sample %d%s\n", e1, e2, li + 1, nl, L[li].name, st->name, s + 1, ts,
                        S->samples, S->measured, S->reused, S->failed, S->best_gflops,
                        S->best_index, gnote);
            }
        }

        /* the table */
        uint8_t wh[16];
        mct_db_key key;
        size_t ntrials = 0;
        mct_wl_hash(w, wh);
        mct_db_key_make(wh, mct_cpu_key(cpu), 1, &key);
        mct_db_count_trials(db, &key, &ntrials);
        mct_meas_counters mc;
        mct_meas_get_counters(meas, &mc);
        say("  untuned %.3f ms (%.2f GFLOP/s); %zu distinct candidates measured for %ld samples; "
            "candidate limit %.3g s; harness: %ld compiled, %ld from the cache, compile %.0f s, "
            "runs %.0f s (%.2f s per candidate run); layer %.0f s\n", base_lat * 1e3, base_gf,
            ntrials, (long)ns * nseeds * budget, lim, mc.compiles, mc.cache_hits,
            mc.compile_wall_s, mc.run_wall_s, mc.runs ? mc.run_wall_s / mc.runs : 0.0,
            now_s() - tl0);
        double tgt = 0;
        for (int s = 0; s < nseeds; s++)
            tgt += log(cv[evo * nseeds + s].best[budget] > 0 ? cv[evo * nseeds + s].best[budget]
                                                              : 1e-9);
        tgt = exp(tgt / nseeds);
        /* the last factor keeps evolutionary's own seed from missing the target by a rounding
         * of exp(log(x)) */
        double reach_at = tgt * (1 - tol) * (1 - 1e-9);
        say("  %-22s", "best GFLOP/s at");
        for (int k = 0; k < ncol; k++)
            say(" %8d", cols[k]);
        say("   samples to reach %.2f GFLOP/s\n", tgt);
        for (int j = 0; j < ns; j++) {
            say("  %-22s", all_strats[sidx[j]].name);
            for (int k = 0; k < ncol; k++) {
                double g = 0;
                int zero = 0;
                for (int s = 0; s < nseeds; s++) {
                    double b = cv[j * nseeds + s].best[cols[k]];
                    zero |= !(b > 0);
                    g += log(b > 0 ? b : 1e-9);
                }
                if (zero)
                    say(" %8s", "failed");
                else
                    say(" %8.2f", exp(g / nseeds));
            }
            double nsum = 0, b32 = 0;
            int miss = 0;
            for (int s = 0; s < nseeds; s++) {
                const double *b = cv[j * nseeds + s].best;
                int at = reach(b, (int)budget, reach_at);
                if (!at) {
                    miss++;
                    at = (int)budget;
                }
                nsum += at;
                b32 += log(b[at32] > 0 ? b[at32] : 1e-9);
            }
            sum[li].need[j] = nsum / nseeds;
            sum[li].miss[j] = miss;
            sum[li].r32[j] = exp(b32 / nseeds) / tgt;
            if (miss == nseeds)
                say("   >%ld\n", budget);
            else if (miss)
                say("   >%.1f (%d of %ld seeds never)\n", sum[li].need[j], miss, nseeds);
            else
                say("   %.1f\n", sum[li].need[j]);
        }
        sum[li].ok = 1;

        /* each strategy's best schedule re-measured side by side, then the libraries once on
         * the fastest one (same data, same child) */
        say("  re-measured with min-time %g s (best of each strategy's seeds):\n",
            final_min_time);
        double best_re = 0;
        int best_j = -1;
        for (int j = 0; j < ns; j++) {
            mct_sched *bs = NULL;
            if (!best_sched[j][0] && best_gf[j] <= 0) {
                say("    %-22s no schedule ran\n", all_strats[sidx[j]].name);
                continue;
            }
            int dup = -1;
            for (int q = 0; q < j && dup < 0; q++)
                if (!strcmp(best_sched[q], best_sched[j]) && best_gf[q] > 0)
                    dup = q;
            if (mct_sched_parse(w, best_sched[j], &bs, err, sizeof err)) {
                say("    %-22s its schedule does not parse: %s\n", all_strats[sidx[j]].name,
                    err);
                continue;
            }
            mct_meas_cand cd = {.sched = bs};
            mct_meas_result mr;
            if (mct_meas_run(mfinal, w, &cd, &mr) == 0 && mr.status == MCT_MEAS_OK) {
                say("    %-22s %8.2f GFLOP/s (%.2f in its search)%s\n",
                    all_strats[sidx[j]].name, mr.gflops, best_gf[j],
                    dup >= 0 ? " (the same schedule as above)" : "");
                if (mr.gflops > best_re) {
                    best_re = mr.gflops;
                    best_j = j;
                }
            } else
                say("    %-22s %s: %s\n", all_strats[sidx[j]].name,
                    mct_meas_status_name(mr.status), mr.detail);
            mct_sched_destroy(bs);
        }
        mct_sched *bs = NULL;
        if (best_j >= 0 && !mct_sched_parse(w, best_sched[best_j], &bs, NULL, 0)) {
            mct_meas_cand cd = {.sched = bs};
            mct_meas_result mr;
            if (mct_meas_run(mlibs, w, &cd, &mr) == 0 && mr.status == MCT_MEAS_OK) {
                say("    libraries, beside %s's best (%.2f GFLOP/s in this run):\n",
                    all_strats[sidx[best_j]].name, mr.gflops);
                for (int k = 0; k < 3; k++) {
                    if (mr.libs[k].ok)
                        say("      %-60.60s %8.2f GFLOP/s (%s)%s\n", mr.libs[k].label,
                            mr.libs[k].gflops, mr.libs[k].call,
                            k == mr.best_lib ? " fastest" : "");
                    else if (mr.libs[k].label[0])
                        say("      not run: %s\n", mr.libs[k].label);
                }
                if (mr.best_lib >= 0)
                    say("    best tuned / fastest library: %.2fx\n",
                        mr.gflops / mr.libs[mr.best_lib].gflops);
            } else
                say("    libraries not measured: %s: %s\n", mct_meas_status_name(mr.status),
                    mr.detail);
            say("    fastest schedule: %s\n", best_sched[best_j]);
            mct_sched_destroy(bs);
        }
        mct_meas_destroy(meas);
        if (outf)
            fflush(outf);
        fflush(stdout);
    }

    /* the summary over layers */
    int nok = 0;
    for (int li = 0; li < nl && sum; li++)
        nok += sum[li].ok;
    if (nok) {
        say("\n== summary over %d layers (geometric means)\n", nok);
        say("  %-22s %22s %24s\n", "strategy", "samples to reach evo", "best@32 / evo best");
        for (int j = 0; j < ns; j++) {
            double gn = 0, gr = 0;
            int anymiss = 0;
            for (int li = 0; li < nl; li++)
                if (sum[li].ok) {
                    gn += log(sum[li].need[j]);
                    gr += log(sum[li].r32[j] > 0 ? sum[li].r32[j] : 1e-9);
                    anymiss |= sum[li].miss[j] > 0;
                }
            gn = exp(gn / nok);
            gr = exp(gr / nok);
            char nb[32];
            snprintf(nb, sizeof nb, "%s%.1f", anymiss ? ">" : "", gn);
            say("  %-22s %22s %23.3fx\n", all_strats[sidx[j]].name, nb, gr);
            /* the goal of the guided rows: evolutionary's full-budget best within 32 samples;
             * a seed that never reached it leaves a lower bound, which decides only above 32 */
            if (all_strats[sidx[j]].kind == MCT_SEARCH_MCTS &&
                all_strats[sidx[j]].guide != G_RANDOM) {
                if (gn > 32)
                    say("  %-22s goal not met: %s%.1f samples, %s%.2fx the 32 allowed; its "
                        "32-sample best is %.3fx evolutionary's\n", "", anymiss ? ">" : "", gn,
                        anymiss ? ">" : "", gn / 32, gr);
                else if (anymiss)
                    say("  %-22s goal undecided: some seeds never reached the target within %ld "
                        "samples, so %.1f is only a lower bound\n", "", budget, gn);
                else
                    say("  %-22s goal met: reaches it in %.1f <= 32 samples\n", "", gn);
            }
        }
        if (at32 != 32)
            say("  (budget %ld < 32: best@32 is the best at %d)\n", budget, at32);
    }
    char e1[32];
    fmt_time(now_s() - t0, e1, sizeof e1);
    say("total time %s\n", e1);

    for (int i = 0; cv && i < ns * nseeds; i++)
        free(cv[i].best);
    free(cv);
    free(sum);
    mct_meas_destroy(mbase);
    mct_meas_destroy(mfinal);
    mct_meas_destroy(mlibs);
    mct_db_close(db);
    if (outf && fclose(outf)) {
        fprintf(stderr, "bench-search: writing '%s' failed\n", outpath);
        exit_code = 1;
    }
    char rm[128];
    snprintf(rm, sizeof rm, "rm -rf '%s'", dbdir);
    if (system(rm))
        fprintf(stderr, "bench-search: could not remove %s\n", dbdir);
    return exit_code;
}
