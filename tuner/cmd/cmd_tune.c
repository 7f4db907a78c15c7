/* mctune tune: search the fastest schedule of each workload of a model (or of one workload) and
 * record every trial and the best schedule in the tuning database as it goes. */
#include "tuner/cmd/cli.h"
#include "tuner/tune.h"
#include "tuner/tune_model.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "db/db.h"

#define CMD "tune"

static const char usage_text[] =
    "usage: mctune tune (--model FILE.json | --workload TEXT) [options]\n"
    "\n"
    "Searches the fastest schedule of each workload for this CPU and thread count. Every\n"
    "measured candidate (trial) and the best schedule so far are written to the database as\n"
    "they come, so an interrupted run loses nothing: run the same command again and it goes\n"
    "on, reusing the trials already stored instead of measuring them again. Workloads that\n"
    "already have a best record for this CPU and thread count are skipped (--retune searches\n"
    "them again), unless the search that wrote it stopped before --budget samples (then it is\n"
    "resumed). When other CPUs (or other M of the same layer) have best records, those\n"
    "schedules seed the search and are measured first.\n"
    "\n"
    "  --model FILE.json    layers of a model (models/README.md describes the format)\n"
    "  --workload TEXT      one workload, e.g. \"matmul f32 nt M=16 N=4096 K=4096 epi=none\"\n"
    "  --b packed|raw|both  which variant of each matmul workload to tune: packed (kernels\n"
    "                       may prepack B ahead of time, NAME_prepack_b), raw (b=raw: kernels\n"
    "                       take B as given, for the entry points that cannot prepack, such\n"
    "                       as the cblas drop-in), or both (packed first; the raw search is\n"
    "                       seeded from the packed best). Default: as each workload says (a\n"
    "                       key with b=raw, a model layer's \"b\"), else packed\n"
    "  --weights LIST       weight formats to tune each matmul workload in, e.g.\n"
    "                       f32,bf16,i8,q4g32 (whatever the model file's \"w\" or the key's\n"
    "                       w= said; low-precision formats take the packed variant only)\n"
    "  --budget N           samples per workload, the untuned schedule included (default 32)\n"
    "  --search S           mcts | evolutionary | evolutionary-measured | random (default\n"
    "                       mcts). evolutionary breeds a population inside the learned cost\n"
    "                       model and measures its best candidates each round (as TVM\n"
    "                       MetaSchedule); evolutionary-measured measures every child\n"
    "  --cost-model         mcts with the learned cost model: the guide proposes 4 times the\n"
    "                       branching and the model keeps the best (--rank N), and new\n"
    "                       children are scored by model rollouts of 4 mutations (--rollout\n"
    "                       N) until selection reaches them and measures them. The model of\n"
    "                       this CPU is loaded from beside the database (DB/costmodel-KEY.json,\n"
    "                       `mctune model train`) or trained on its trials, updated with each\n"
    "                       sample and saved there at the end\n"
    "  --rank N, --rollout N  as --cost-model with other factors (0: off)\n"
    "  --guide G            heuristic | random | llm | llm-cmd: who proposes mcts expansions\n"
    "                       (default: llm when --llm-url or MCTUNE_LLM_URL is set, llm-cmd\n"
    "                       when --llm-cmd is given, else heuristic; the choice is printed)\n"
    "  --llm-url URL        OpenAI-compatible base URL (else MCTUNE_LLM_URL)\n"
    "  --llm-model NAME     model name (else MCTUNE_LLM_MODEL)\n"
    "  --llm-cmd 'CMD ARGS' a command that reads the prompt on stdin, answers on stdout\n"
    "  --threads N          kernel threads (default 1)\n"
    "  --tier NAME          tune kernels for a lower ISA tier than this CPU's (generic,\n"
    "                       sse4.2, avx2, avx512, avx512-bf16-vnni; default: this CPU's, or\n"
    "                       MCTUNE_TIER): they are stored under this CPU restricted to that\n"
    "                       tier, which generated libraries use on CPUs of that tier\n"
    "  --seed N             random seed (default 1); the same seed repeats the same search\n"
    "  --db PATH            database (default $MCTUNE_DB, else $XDG_CACHE_HOME/mctune)\n"
    "  --log FILE           append one JSON line per sample (time, strategy, guide, workload,\n"
    "                       node, parent, schedule hash and text, transformation, latency,\n"
    "                       GFLOP/s, status, best so far)\n"
    "  --retune             search workloads that already have a best record\n"
    "  --no-transfer        do not seed from other CPUs' or shapes' records\n"
    "  --timeout SECONDS    time limit of one candidate's first run (default 10; the untuned\n"
    "                       baseline gets 60 times this, and a single timed call)\n"
    "  --min-time SECONDS   timed calls per candidate last at least this long (default 0.2)\n"
    "  --cut F              a candidate whose checked first run is F (> 1) times slower than\n"
    "                       the best so far is recorded at that run and not timed further:\n"
    "                       it can never be the best (default 0: every candidate timed)\n"
    "  --cache DIR          compile cache folder (as for mctune measure)\n"
    "  --verbose            print dropped proposals and fallbacks\n";

/* What the progress line and the notes need; the tuning itself is tuner/tune.c. */
typedef struct tctx {
    char wl_text[256];
    int tty, verbose;
    int wi, wn;             /* workload index (1-based) and count */
    int budget;
    double t0;              /* start of the whole run */
    long samples_total;     /* samples measured over all workloads */
    long samples_left_est;  /* estimate of samples still to do after this workload */
    const char *guide;
    mct_guide *gd;          /* the mcts guide, NULL otherwise */
    int guide_stop_shown;   /* its stop message was printed */
} tctx;

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void progress(tctx *t, int samples, double best_gflops, int final)
{
    double el = now_s() - t->t0;
    double per = t->samples_total ? el / (double)t->samples_total : 0;
    long left = (long)(t->budget - samples) + t->samples_left_est;
    if (left < 0)
        left = 0;
    if (t->tty) {
        fprintf(stderr, "\r\033[K[%d/%d] %.60s  samples %d/%d  best %.2f GFLOP/s  ETA %.0f s",
                t->wi, t->wn, t->wl_text, samples, t->budget, best_gflops, per * (double)left);
        if (final)
            fputc('\n', stderr);
        fflush(stderr);
    }
}

static int on_sample(void *ctx, const mct_search_sample *smp)
{
    tctx *t = ctx;
    t->samples_total += !smp->reused;
    progress(t, smp->index, smp->best_gflops, 0);
    return 0;
}

static void on_note(void *ctx, int loud, const char *line)
{
    tctx *t = ctx;
    if (t->verbose || loud)
        fprintf(stderr, "%s  %s\n", t->tty ? "\r\033[K" : "", line);
    /* a guide stopped by an error no retry can fix says so once, with or without --verbose */
    if (t->gd && !t->guide_stop_shown) {
        mct_guide_stats gs;
        mct_guide_get_stats(t->gd, &gs);
        if (gs.stopped) {
            t->guide_stop_shown = 1;
            fprintf(stderr, "%smctune tune: the %s guide is stopped, the search goes on with "
                    "random mutations: %s\n", t->tty ? "\r\033[K" : "", t->guide,
                    gs.stop_reason);
        }
    }
}

static void on_start(void *ctx, const mct_workload *w, const mct_tune_result *res)
{
    tctx *t = ctx;
    (void)w;
    if (res->outcome == MCT_TUNE_SKIPPED) {
        printf("[%d/%d] %s: skipped, already tuned (%.2f GFLOP/s, best found at sample %lld, "
               "%s); --retune searches again\n", t->wi, t->wn, t->wl_text, res->best.gflops,
               (long long)res->best.samples, res->best.search);
        return;
    }
    if (res->resumed)
        printf("[%d/%d] %s: resuming: %zu trials already in the database are reused\n",
               t->wi, t->wn, t->wl_text, res->stored_trials);
    if (!t->tty && res->nseeds)
        printf("[%d/%d] %s: %d transfer seed%s from the database\n", t->wi, t->wn, t->wl_text,
               res->nseeds, res->nseeds == 1 ? "" : "s");
    fflush(stdout);
}

static const char *guide_default(const char *url, const char *cmd)
{
    if (cmd)
        return "llm-cmd";
    if (url || (getenv("MCTUNE_LLM_URL") && *getenv("MCTUNE_LLM_URL")))
        return "llm";
    return "heuristic";
}

static int parse_secs(const char *opt, const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v > 0) || v > 86400) {
        mct_cli_usage_error(CMD, "%s '%s' is not a number of seconds in (0, 86400]", opt, s);
        return -1;
    }
    *out = v;
    return 0;
}

int mct_cmd_tune(int argc, char **argv)
{
    const char *model_path = NULL, *wl_arg = NULL, *search_s = "mcts", *guide_s = NULL;
    const char *llm_url = NULL, *llm_model = NULL, *llm_cmd = NULL, *db_path = NULL;
    const char *log_path = NULL, *cache = NULL, *tier_s = NULL, *b_s = NULL, *w_s = NULL, *val;
    long budget = 32, threads = 1, seed = 1;
    int retune = 0, transfer = 1, verbose = 0, r, rc = 1;
    long rank = 0, rollout = 0;
    mct_costmodel *cm = NULL;
    double timeout = 10, min_time = 0, cut = 0;
    mct_tune_model mdl = {0};
    mct_db *db = NULL;
    mct_guide *guide = NULL;
    mct_meas *meas = NULL, *meas_base = NULL, *meas_libs = NULL;
    FILE *logf = NULL;
    char err[2048] = "";

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(usage_text, stdout);
            return 0;
        }
        if (!strcmp(a, "--retune")) {
            retune = 1;
        } else if (!strcmp(a, "--no-transfer")) {
            transfer = 0;
        } else if (!strcmp(a, "--verbose")) {
            verbose = 1;
        } else if (!strcmp(a, "--cost-model")) {
            rank = rank ? rank : 4;
            rollout = rollout ? rollout : 4;
        } else if ((r = mct_cli_opt(CMD, argc, argv, &i, "--rank", &val))) {
            if (r < 0 || mct_cli_int(CMD, "--rank", val, 0, 32, &rank))
                return 2;
        } else if ((r = mct_cli_opt(CMD, argc, argv, &i, "--rollout", &val))) {
            if (r < 0 || mct_cli_int(CMD, "--rollout", val, 0, 16, &rollout))
                return 2;
        } else if ((r = mct_cli_opt(CMD, argc, argv, &i, "--model", &val))) {
            if (r < 0)
                return 2;
            model_path = val;
        } else if ((r = mct_cli_opt(CMD, argc, argv, &i, "--workload", &val))) {
            if (r < 0)
                return 2;
            wl_arg = val;
        } else if ((r = mct_cli_opt(CMD, argc, argv, &i, "--b", &val))) {
            if (r < 0)
                return 2;
            b_s = val;
        } else if ((r = mct_cli_opt(CMD, argc, argv, &i, "--weights", &val))) {
            if (r < 0)
                return 2;
            w_s = val;
        } else if ((r = mct_cli_opt(CMD, argc, argv, &i, "--budget", &val))) {
            if (r < 0 || mct_cli_int(CMD, "--budget", val, 1, 1000000, &budget))
                return 2;
        } else if ((r = mct_cli_opt(CMD, argc, argv, &i, "--search", &val))) {
            if (r < 0)
                return 2;
            search_s = val;
        } else if ((r = mct_cli_opt(CMD, argc, argv, &i, "--guide", &val))) {
            if (r < 0)
                return 2;
            guide_s = val;
        } else if ((r = mct_cli_opt(CMD, argc, argv, &i, "--llm-url", &val))) {
            if (r < 0)
                return 2;
            llm_url = val;
        } else if ((r = mct_cli_opt(CMD, argc, argv, &i, "--llm-model", &val))) {
            if (r < 0)
                return 2;
            llm_model = val;
        } else if ((r = mct_cli_opt(CMD, argc, argv, &i, "--llm-cmd", &val))) {
            if (r < 0)
                return 2;
            llm_cmd = val;
        } else if ((r = mct_cli_opt(CMD, argc, argv, &i, "--tier", &val))) {
            if (r < 0)
                return 2;
            tier_s = val;
        } else if ((r = mct_cli_opt(CMD, argc, argv, &i, "--threads", &val))) {
            if (r < 0 || mct_cli_int(CMD, "--threads", val, 1, 1024, &threads))
                return 2;
        } else if ((r = mct_cli_opt(CMD, argc, argv, &i, "--seed", &val))) {
            if (r < 0 || mct_cli_int(CMD, "--seed", val, 0, 0x7fffffffL, &seed))
                return 2;
        } else if ((r = mct_cli_opt(CMD, argc, argv, &i, "--db", &val))) {
            if (r < 0)
                return 2;
            db_path = val;
        } else if ((r = mct_cli_opt(CMD, argc, argv, &i, "--log", &val))) {
            if (r < 0)
                return 2;
            log_path = val;
        } else if ((r = mct_cli_opt(CMD, argc, argv, &i, "--cache", &val))) {
            if (r < 0)
                return 2;
            cache = val;
        } else if ((r = mct_cli_opt(CMD, argc, argv, &i, "--timeout", &val))) {
            if (r < 0 || parse_secs("--timeout", val, &timeout))
                return 2;
        } else if ((r = mct_cli_opt(CMD, argc, argv, &i, "--cut", &val))) {
            char *end = NULL;
            if (r < 0)
                return 2;
            cut = strtod(val, &end);
            if (end == val || *end || !(cut == 0 || (cut > 1 && cut <= 1000)))
                return mct_cli_usage_error(CMD, "--cut '%s': give a factor above 1 (at most "
                                           "1000), or 0 to time every candidate", val);
        } else if ((r = mct_cli_opt(CMD, argc, argv, &i, "--min-time", &val))) {
            if (r < 0 || parse_secs("--min-time", val, &min_time))
                return 2;
        } else {
            return mct_cli_usage_error(CMD, "unexpected argument '%s'", a);
        }
    }
    mct_cpu cpu_rec;
    mct_tier tier;
    if (mct_cli_tier(CMD, tier_s, &cpu_rec, &tier))
        return 2;
    const mct_cpu *cpu = &cpu_rec;
    const mct_target target = mct_target_of_cpu(cpu, tier);  /* its extensions too, as gen */
    if (!model_path == !wl_arg)
        return mct_cli_usage_error(CMD, "give exactly one of --model FILE.json or --workload "
                                   "TEXT");
    mct_tune_bvar bvar = MCT_TUNE_B_ASIS;
    if (b_s && mct_tune_bvar_parse(b_s, &bvar))
        return mct_cli_usage_error(CMD, "--b '%s' is not packed, raw or both (packed: B may be "
                                   "prepacked; raw: B taken as given)", b_s);
    mct_tune_wfmts wfmts;
    if (w_s && mct_tune_wfmts_parse(w_s, &wfmts, err, sizeof err))
        return mct_cli_usage_error(CMD, "--weights: %s", err);
    mct_search_kind kind;
    if (mct_search_kind_parse(search_s, &kind))
        return mct_cli_usage_error(CMD, "--search '%s' is not mcts, evolutionary, "
                                   "evolutionary-measured or random", search_s);
    if ((rank || rollout) && kind != MCT_SEARCH_MCTS)
        return mct_cli_usage_error(CMD, "--cost-model, --rank and --rollout are for --search "
                                   "mcts (evolutionary always uses the model)");
    int guide_defaulted = !guide_s;
    if (!guide_s)
        guide_s = guide_default(llm_url, llm_cmd);
    if (strcmp(guide_s, "heuristic") && strcmp(guide_s, "random") && strcmp(guide_s, "llm") &&
        strcmp(guide_s, "llm-cmd"))
        return mct_cli_usage_error(CMD, "--guide '%s' is not heuristic, random, llm or llm-cmd",
                                   guide_s);
    if (!strcmp(guide_s, "llm-cmd") && !llm_cmd)
        return mct_cli_usage_error(CMD, "--guide llm-cmd needs --llm-cmd 'COMMAND ARGS'");

    if (model_path) {
        if (mct_tune_model_load(model_path, &mdl, err, sizeof err)) {
            fprintf(stderr, "mctune tune: %s\n", err);
            return 2;
        }
    } else {
        char *text = mct_cli_text_arg(CMD, wl_arg);
        if (!text)
            return 2;
        mct_workload w;
        if (mct_wl_parse(text, &w, err, sizeof err)) {
            fprintf(stderr, "mctune tune: workload '%s': %s\n", text, err);
            free(text);
            return 2;
        }
        free(text);
        if (mct_tune_model_add(&mdl, &w, "")) {
            fprintf(stderr, "mctune tune: out of memory\n");
            return 1;
        }
    }
    int wrc = w_s ? mct_tune_model_weights(&mdl, &wfmts, err, sizeof err) : 0;
    if (wrc < 0) {
        fprintf(stderr, "mctune tune: --weights: %s\n", err);
        mct_tune_model_free(&mdl);
        return wrc == MCT_ENOMEM ? 1 : 2;
    }
    if (mct_tune_model_variants(&mdl, bvar)) {
        fprintf(stderr, "mctune tune: out of memory\n");
        mct_tune_model_free(&mdl);
        return 1;
    }

    char path[1024];
    if (db_path)
        snprintf(path, sizeof path, "%s", db_path);
    else if (mct_db_default_path(path, sizeof path) < 0) {
        fprintf(stderr, "mctune tune: no database location: set --db PATH, MCTUNE_DB, "
                "XDG_CACHE_HOME or HOME\n");
        goto fail;
    }
    if (mct_db_open(path, 0, err, sizeof err, &db)) {
        fprintf(stderr, "mctune tune: %s\n", err);
        goto fail;
    }
    if (mct_db_put_cpu(db, cpu)) {
        fprintf(stderr, "mctune tune: cannot record this CPU in %s: %s\n", path,
                mct_db_errmsg(db));
        goto fail;
    }

    if (kind == MCT_SEARCH_EVO || rank > 1 || rollout > 0) {
        char note[1024] = "";
        if (mct_costmodel_open(db, cpu, &cm, note, sizeof note, err, sizeof err)) {
            fprintf(stderr, "mctune tune: %s\n", err);
            goto fail;
        }
        printf("%s\n", note);
    }
    if (kind == MCT_SEARCH_MCTS) {
        mct_llm_opts lo = {0};
        lo.base_url = llm_url;
        lo.model = llm_model;
        lo.cmd = llm_cmd;
        lo.cache = db;
        lo.verbose = verbose;
        if (!strcmp(guide_s, "heuristic"))
            r = mct_guide_heuristic_create(&guide);
        else if (!strcmp(guide_s, "random"))
            r = mct_guide_random_create(&guide);
        else if (!strcmp(guide_s, "llm"))
            r = mct_guide_llm_create(&lo, &guide, err, sizeof err);
        else
            r = mct_guide_llmcmd_create(&lo, &guide, err, sizeof err);
        if (r) {
            fprintf(stderr, "mctune tune: cannot start the %s guide: %s%s%s\n", guide_s,
                    mct_strerror(r), *err ? ": " : "", err);
            goto fail;
        }
    }

    mct_meas_opts mo;
    mct_meas_opts_default(&mo);
    mo.cache_dir = cache;
    mo.threads = (int)threads;
    mo.target = target;
    mo.timeout_s = timeout;
    mo.compile_timeout_s = 120;
    if (min_time > 0)
        mo.min_time_s = min_time;
    if (mct_meas_create(&mo, &meas, err, sizeof err)) {
        fprintf(stderr, "mctune tune: %s\n", err);
        goto fail;
    }
    /* the untuned nest can be 100x slower than a tuned kernel: a long limit, one timed call */
    mo.timeout_s = timeout * 60;
    mo.min_runs = 1;
    if (mct_meas_create(&mo, &meas_base, err, sizeof err)) {
        fprintf(stderr, "mctune tune: %s\n", err);
        goto fail;
    }
    /* b=raw kernels are what the cblas drop-in runs instead of a library: each best is timed
     * once beside the libraries (with the same thread count) */
    int any_raw = 0;
    for (int i = 0; i < mdl.n; i++)
        any_raw |= mdl.w[i].braw;
    mo.timeout_s = timeout;
    mo.min_runs = 0;
    mo.baseline = 1;
    if (any_raw && mct_meas_create(&mo, &meas_libs, err, sizeof err)) {
        fprintf(stderr, "mctune tune: %s\n", err);
        goto fail;
    }
    if (log_path && !(logf = fopen(log_path, "a"))) {
        fprintf(stderr, "mctune tune: cannot open the log '%s': %s (choose another --log)\n",
                log_path, strerror(errno));
        goto fail;
    }

    tctx t = {0};
    t.guide = kind == MCT_SEARCH_MCTS ? guide_s : "";
    t.tty = isatty(STDERR_FILENO);
    if (!isatty(STDOUT_FILENO))  /* a log file keeps every line even if the run is killed */
        setvbuf(stdout, NULL, _IOLBF, 0);
    t.verbose = verbose;
    t.gd = guide;
    t.wn = mdl.n;
    t.budget = (int)budget;
    t.t0 = now_s();

    mct_tune_opts to = {0};
    to.db = db;
    to.cpu = cpu;
    to.target = target;
    to.threads = (int)threads;
    to.kind = kind;
    to.budget = (int)budget;
    to.seed = (uint64_t)seed;
    to.guide = guide;
    to.guide_name = guide_s;
    to.meas = meas;
    to.meas_base = meas_base;
    to.meas_libs = meas_libs;
    to.retune = retune;
    to.costmodel = cm;
    to.rank = (int)rank;
    to.rollout = (int)rollout;
    to.cut = cut;
    to.transfer = transfer;
    to.model = mdl.name;
    to.log = logf;
    to.on_start = on_start;
    to.on_sample = on_sample;
    to.on_note = on_note;
    to.ctx = &t;

    char cpukey[17];
    mct_cpu_key_format(mct_cpu_key(cpu), cpukey);
    mct_tier host_tier = mct_cpu_tier_of(mct_cpu_host());
    printf("tune: %d workload%s%s%s, cpu %s (%s%s%s), %ld thread%s, search %s", mdl.n,
           mdl.n == 1 ? "" : "s", mdl.name[0] ? " of " : "", mdl.name, cpukey,
           mct_tier_name(tier), tier < host_tier ? " kernels tuned on a host of tier " : "",
           tier < host_tier ? mct_tier_name(host_tier) : "", threads, threads == 1 ? "" : "s",
           mct_search_kind_name(kind));
    if (cm && kind == MCT_SEARCH_MCTS)
        printf(", cost model (rank %ld, rollout %ld)", rank, rollout);
    if (kind == MCT_SEARCH_MCTS)
        printf(", guide %s%s", guide_s, guide_defaulted ? (strcmp(guide_s, "heuristic") ?
               " (default: an LLM is configured)" : " (default: no LLM configured; set "
               "--llm-url or MCTUNE_LLM_URL for the llm guide)") : "");
    printf(", budget %ld, seed %ld, db %s\n", budget, seed, path);
    fflush(stdout);

    int tuned = 0, skipped = 0, failed = 0;
    for (int i = 0; i < mdl.n; i++) {
        const mct_workload *w = &mdl.w[i];
        mct_wl_format(w, t.wl_text, sizeof t.wl_text);
        t.wi = i + 1;
        t.samples_left_est = (long)(mdl.n - i - 1) * budget;
        mct_tune_result res;
        r = mct_tune_workload(w, &to, &res, err, sizeof err);
        if (res.outcome == MCT_TUNE_SKIPPED) {
            skipped++;
            continue;
        }
        const mct_search_stats *st = &res.st;
        progress(&t, st->samples, st->best_gflops, 1);
        if (r) {
            fprintf(stderr, "mctune tune: %s: search stopped: %s%s%s\n", t.wl_text,
                    mct_strerror(r), *err ? ": " : "", err);
            failed++;
            if (res.db_failed)
                goto fail;
            continue;
        }
        tuned++;
        double base_g = st->base_latency_s > 0 ? mct_wl_flops(w) / st->base_latency_s * 1e-9
                                               : 0;
        printf("[%d/%d] %s: %d samples (%d measured, %d reused, %d failed, %d duplicates",
               t.wi, t.wn, t.wl_text, st->samples, st->measured, st->reused, st->failed,
               st->duplicates);
        if (kind == MCT_SEARCH_MCTS)
            printf(", %d invalid proposals, %d fallbacks", st->invalid, st->fallbacks);
        if (st->ranked_out || st->estimates)
            printf(", %d proposals ranked out, %d rollout estimates", st->ranked_out,
                   st->estimates);
        if (kind == MCT_SEARCH_EVO)
            printf(", %d rounds", st->rounds);
        if (st->codegen_bugs)
            printf(", %d code generator bug%s (legal schedules that did not compile; see above)",
                   st->codegen_bugs, st->codegen_bugs == 1 ? "" : "s");
        printf(") in %.1f s; untuned %.2f GFLOP/s, best %.2f GFLOP/s", res.seconds, base_g,
               st->best_gflops);
        if (st->base_latency_s > 0 && st->best_latency_s > 0)
            printf(" (%.1fx, sample %d)", st->base_latency_s / st->best_latency_s,
                   st->best_index);
        printf("\n    best: %s\n", st->best_schedule[0] ? st->best_schedule : "(untuned nest)");
        if (res.side_kernel_gflops > 0 && res.side_lib_gflops > 0)
            printf("    beside the libraries: the best record %.3f GFLOP/s, the fastest library "
                   "%.3f (%s), side by side: %.2fx; the cblas drop-in %s\n",
                   res.side_kernel_gflops, res.side_lib_gflops, res.side_lib,
                   res.side_kernel_gflops / res.side_lib_gflops,
                   res.side_lib_gflops > res.side_kernel_gflops
                   ? "forwards these calls to that library" : "runs this kernel");
        fflush(stdout);
    }
    if (guide) {
        mct_guide_stats gs;
        mct_guide_get_stats(guide, &gs);
        printf("guide %s: %ld calls, %ld proposals, %ld calls without a proposal", guide_s,
               gs.calls, gs.proposals, gs.failures);
        if (gs.prompt_tokens || gs.completion_tokens || gs.cache_hits)
            printf(", %ld cached replies, %ld+%ld tokens", gs.cache_hits, gs.prompt_tokens,
                   gs.completion_tokens);
        if (gs.stopped)
            printf("\nguide %s: stopped at call %ld by an error no retry can fix (%s); %s",
                   guide_s, gs.stop_call, mct_strerror(gs.stop_code),
                   gs.proposals ? "the LLM was used only before it"
                                : "the LLM was not used: all expansions were random mutations");
        printf("\n");
    }
    if (cm && tuned) {
        char mp[1200];
        if (mct_costmodel_save_db(cm, db, mp, sizeof mp, err, sizeof err))
            printf("cost model not saved: %s\n", err);
        else
            printf("cost model: %zu trials, saved to %s\n", mct_costmodel_count(cm), mp);
    }
    printf("done: %d tuned, %d skipped, %d failed\n", tuned, skipped, failed);
    rc = failed ? 1 : 0;
fail:
    if (logf)
        fclose(logf);
    mct_meas_destroy(meas);
    mct_meas_destroy(meas_base);
    mct_meas_destroy(meas_libs);
    mct_guide_destroy(guide);
    mct_costmodel_destroy(cm);
    mct_db_close(db);
    mct_tune_model_free(&mdl);
    return rc;
}
