/* mctune model: train the learned cost model on a database's trials, or report how well it
 * ranks trials it was not trained on. */
#include "tuner/cmd/cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/codegen.h"
#include "db/db.h"
#include "tuner/costmodel.h"

#define CMD "model"

static const char *const usage_text =
    "usage: mctune model stats [--db PATH] [--cpu host|KEY] [--holdout F] [--seed N]\n"
    "       mctune model train [--db PATH] [--cpu host|KEY]\n\n"
    "The learned cost model (XGBoost over features of the lowered program, feature version\n"
    "%d) that ranks candidates in `tune --search evolutionary` and `tune --cost-model`.\n"
    "  stats   trains on the CPU's trials but a held-out fraction and prints Spearman's rank\n"
    "          correlation between measured and predicted speed on the held-out trials, per\n"
    "          workload (those with 3 or more held out) and overall, beside the analytical\n"
    "          estimate's; nothing is written\n"
    "  train   trains on every trial of the CPU and saves the model beside the database\n"
    "          (DB/costmodel-KEY.json), where tuning runs load it\n\n"
    "  --cpu      whose trials: this host at its tier (default; MCTUNE_TIER chooses a lower\n"
    "             one) or a CPU key of the database (`mctune db list` shows them)\n"
    "  --holdout  fraction held out, between 0 and 1 (default 0.2)\n"
    "  --seed     the split's seed (default 1)\n"
    "The database is --db PATH, else $MCTUNE_DB, else $XDG_CACHE_HOME/mctune.\n";

static void per_wl(void *ctx, const char *wl, int n, double rho, double rho_a)
{
    (void)ctx;
    printf("  %-60s %5d  %7.3f  %7.3f\n", wl, n, rho, rho_a);
}

int mct_cmd_model(int argc, char **argv)
{
    const char *dbp = NULL, *cpus = NULL, *v;
    char path[1024], err[2048], mpath[1200];
    double holdout = 0.2;
    long seed = 1;
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf(usage_text, MCT_CG_FEATURE_VERSION);
        return 0;
    }
    if (argc < 2 || (strcmp(argv[1], "stats") && strcmp(argv[1], "train")))
        return mct_cli_usage_error(CMD, "give a subcommand: stats or train");
    int stats = !strcmp(argv[1], "stats");
    for (int i = 2; i < argc; i++) {
        int r;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf(usage_text, MCT_CG_FEATURE_VERSION);
            return 0;
        }
        if ((r = mct_cli_opt(CMD, argc, argv, &i, "--db", &dbp)) ||
            (r = mct_cli_opt(CMD, argc, argv, &i, "--cpu", &cpus))) {
            if (r < 0)
                return 2;
            continue;
        }
        if (stats && (r = mct_cli_opt(CMD, argc, argv, &i, "--holdout", &v))) {
            char *end;
            if (r < 0)
                return 2;
            holdout = strtod(v, &end);
            if (*end || end == v || !(holdout > 0 && holdout < 1))
                return mct_cli_usage_error(CMD, "--holdout '%s' is not a fraction between 0 and "
                                           "1 (e.g. 0.2)", v);
            continue;
        }
        if (stats && (r = mct_cli_opt(CMD, argc, argv, &i, "--seed", &v))) {
            if (r < 0 || mct_cli_int(CMD, "--seed", v, 0, 2147483647L, &seed) < 0)
                return 2;
            continue;
        }
        return mct_cli_usage_error(CMD, "unknown argument '%s'", argv[i]);
    }
    if (!dbp) {
        if (mct_db_default_path(path, sizeof path) < 0) {
            fprintf(stderr, "mctune model: no database location: set --db PATH, MCTUNE_DB, "
                    "XDG_CACHE_HOME or HOME\n");
            return 1;
        }
        dbp = path;
    }
    mct_db *db = NULL;
    if (mct_db_open(dbp, stats ? MCT_DB_RDONLY : 0, err, sizeof err, &db)) {
        fprintf(stderr, "mctune model: %s\n", err);
        return 1;
    }
    mct_cpu cpu;
    mct_tier tier;
    int rc = 1;
    if (!cpus || !strcmp(cpus, "host")) {
        if (mct_cli_tier(CMD, NULL, &cpu, &tier)) {
            rc = 2;
            goto out;
        }
    } else {
        uint64_t key;
        if (mct_cpu_key_parse(cpus, &key) < 0) {
            rc = mct_cli_usage_error(CMD, "--cpu '%s' is not host or a CPU key (16 hex digits)",
                                     cpus);
            goto out;
        }
        if (mct_db_get_cpu(db, key, &cpu)) {
            fprintf(stderr, "mctune model: no CPU %s in %s (`mctune db list` shows the CPUs it "
                    "holds)\n", cpus, dbp);
            goto out;
        }
    }
    char key[17];
    mct_cpu_key_format(mct_cpu_key(&cpu), key);
    if (!stats) {
        size_t n = 0, sk = 0;
        if (mct_costmodel_train_db(db, &cpu, &n, &sk, mpath, sizeof mpath, err, sizeof err)) {
            fprintf(stderr, "mctune model: %s\n", err);
            goto out;
        }
        printf("trained on %zu trials of CPU %s (%zu skipped), feature version %d: %s\n", n, key,
               sk, MCT_CG_FEATURE_VERSION, mpath);
        rc = 0;
        goto out;
    }
    mct_costmodel_eval ev;
    printf("cost model of CPU %s in %s, feature version %d (%d features), held out %.2f, "
           "seed %ld\n", key, dbp, MCT_CG_FEATURE_VERSION, MCT_CG_NFEATURES, holdout, seed);
    printf("  %-60s %5s  %7s  %7s\n", "workload", "held", "model", "analyt.");
    if (mct_costmodel_evaluate(db, &cpu, holdout, (uint64_t)seed, per_wl, NULL, &ev, err,
                               sizeof err)) {
        fprintf(stderr, "mctune model: %s\n", err);
        goto out;
    }
    printf("trials: %zu trained on, %zu held out, %zu skipped (schedules that no longer parse)\n",
           ev.train, ev.test, ev.skipped);
    if (!ev.trained)
        printf("too few training trials (fewer than %d): the figures are the analytical "
               "estimate's\n", MCT_COSTMODEL_MIN_TRIALS);
    printf("spearman over all held-out trials (normalized per workload): %.3f\n", ev.rho);
    printf("spearman per workload, mean over %d workloads: model %.3f, analytical %.3f\n",
           ev.workloads, ev.rho_wl, ev.rho_analytical);
    rc = 0;
out:
    mct_db_close(db);
    return rc;
}
