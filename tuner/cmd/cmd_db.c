/* mctune db: look up, list, export, import, merge and remove tuning records. */
#include "tuner/cmd/cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "db/db.h"

#define CMD "db"

static const char *const usage_text =
    "usage: mctune db SUBCOMMAND [--db PATH] [ARGS...]\n\n"
    "subcommands:\n"
    "  get WORKLOAD     the best record for a workload on a CPU (with fallbacks)\n"
    "  list             best records (or trials), filtered, as a table, JSON or CSV\n"
    "  stats            record counts and sizes\n"
    "  export           every record as JSON Lines on stdout\n"
    "  import FILE...   add JSON Lines files (each all or nothing; faster record wins)\n"
    "  merge OTHER_DB   add another database's records (faster record wins; reports conflicts)\n"
    "  rm WORKLOAD      delete a workload's records\n"
    "  check            read every record, report damage; --salvage NEWDIR copies what is readable\n\n"
    "The database is --db PATH, else $MCTUNE_DB, else $XDG_CACHE_HOME/mctune, else\n"
    "~/.cache/mctune. 'mctune db SUBCOMMAND --help' describes each subcommand.\n";

struct opts {
    const char *sub;
    const char *db;
    const char *cpu;
    const char *op;
    const char *model;
    const char *format;
    const char *salvage;
    long threads;       /* 0: not given */
    int trials;
    int no_trials;
    const char *pos[16];
    int npos;
};

static void sub_help(const char *sub)
{
    if (!strcmp(sub, "get"))
        printf("usage: mctune db get WORKLOAD [--cpu KEY|host] [--threads N] [--format text|json]"
               " [--db PATH]\n\n"
               "Prints the best record for WORKLOAD (e.g. 'matmul f32 nt M=128 N=4096 K=4096\n"
               "epi=none', or @FILE) on a CPU (default: this host) with N threads (default 1).\n"
               "When that CPU has no record it falls back to a CPU of the same vendor and ISA\n"
               "tier, then of the same tier; when the exact M is missing, to the nearest tuned\n"
               "M of the same (op, N, K, epilogue). It says which fallback matched.\n"
               "Exit status 1 when nothing matches.\n");
    else if (!strcmp(sub, "list"))
        printf("usage: mctune db list [--op matmul|bmm] [--cpu KEY|host] [--model NAME]\n"
               "                      [--threads N] [--trials] [--format table|json|csv]"
               " [--db PATH]\n\n"
               "Lists best records (or, with --trials, every measurement) that match all the\n"
               "filters given. --model matches the model a record was tuned for.\n");
    else if (!strcmp(sub, "stats"))
        printf("usage: mctune db stats [--db PATH]\n\nPrints record counts and sizes.\n");
    else if (!strcmp(sub, "export"))
        printf("usage: mctune db export [--cpu KEY|host] [--no-trials] [--db PATH] > FILE.jsonl"
               "\n\nWrites the database as JSON Lines on stdout: CPU descriptions, workloads, "
               "best\nrecords, trials and cached LLM replies. With --cpu only that CPU's "
               "description,\nbest records and trials. The first line is {\"type\":\"begin\", "
               "...} and the last\n{\"type\":\"end\",\"records\":N}: import refuses an "
               "export cut short.\n");
    else if (!strcmp(sub, "import"))
        printf("usage: mctune db import FILE.jsonl... [--db PATH]\n\n"
               "Adds the records of each file in one transaction: a file with any bad line\n"
               "changes nothing and the error names the file, line and field. A best record\n"
               "replaces the stored one only when faster.\n");
    else if (!strcmp(sub, "merge"))
        printf("usage: mctune db merge OTHER_DB [--db PATH]\n\n"
               "Adds another database's records in one transaction. Per key the faster best\n"
               "record wins; it prints what changed and what conflicted (same key, different\n"
               "schedule or description).\n");
    else if (!strcmp(sub, "rm"))
        printf("usage: mctune db rm WORKLOAD [--cpu KEY|host|all] [--threads N] [--db PATH]\n\n"
               "Deletes the best records and trials of WORKLOAD (every CPU and thread count\n"
               "unless narrowed).\n");
    else if (!strcmp(sub, "check"))
        printf("usage: mctune db check [--salvage NEWDIR] [--db PATH]\n\n"
               "Reads every record of the database (read-only): each must decode, match its key\n"
               "and pass the checks of an import; every best record must have a trial of its\n"
               "schedule. Prints each problem. With --salvage, copies the readable records into\n"
               "the new database NEWDIR. Exit status 0 when nothing is damaged, 1 otherwise.\n");
    else
        fputs(usage_text, stdout);
}

static int parse_args(int argc, char **argv, struct opts *o)
{
    for (int i = 1; i < argc; i++) {
        const char *v;
        int r;
        const char *names[] = {"--db", "--cpu", "--op", "--model", "--format", "--salvage",
                               "--threads"};
        const char **dst[] = {&o->db, &o->cpu, &o->op, &o->model, &o->format, &o->salvage,
                              NULL};
        int matched = 0;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            if (o->sub)
                sub_help(o->sub);
            else
                fputs(usage_text, stdout);
            return 1;
        }
        for (int k = 0; k < 7 && !matched; k++) {
            r = mct_cli_opt(CMD, argc, argv, &i, names[k], &v);
            if (r < 0)
                return -1;
            if (r == 0)
                continue;
            matched = 1;
            if (dst[k])
                *dst[k] = v;
            else if (mct_cli_int(CMD, "--threads", v, 1, 65536, &o->threads) < 0)
                return -1;
        }
        if (matched)
            continue;
        if (!strcmp(argv[i], "--trials"))
            o->trials = 1;
        else if (!strcmp(argv[i], "--no-trials"))
            o->no_trials = 1;
        else if (argv[i][0] == '-' && argv[i][1])
            return mct_cli_usage_error(CMD, "unknown option '%s'", argv[i]), -1;
        else if (!o->sub)
            o->sub = argv[i];
        else if (o->npos < 16)
            o->pos[o->npos++] = argv[i];
        else
            return mct_cli_usage_error(CMD, "too many arguments"), -1;
    }
    return 0;
}

/* Checks that only the options a subcommand knows were given. */
static int allow(const struct opts *o, const char *opts)
{
    struct { const char *name; int given; } all[] = {
        {"--cpu", o->cpu != NULL}, {"--op", o->op != NULL}, {"--model", o->model != NULL},
        {"--format", o->format != NULL}, {"--threads", o->threads != 0},
        {"--trials", o->trials}, {"--no-trials", o->no_trials}, {"--salvage", o->salvage != NULL},
    };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (all[i].given && !strstr(opts, all[i].name))
            return mct_cli_usage_error(CMD, "'db %s' does not take %s", o->sub, all[i].name), -1;
    return 0;
}

/* A failed call's message; never empty. */
static void db_error(mct_db *db, int rc)
{
    const char *m = mct_db_errmsg(db);
    if (m && *m)
        fprintf(stderr, "mctune db: %s\n", m);
    else
        fprintf(stderr, "mctune db: database '%s': %s; run 'mctune db check --db %s'\n",
                db ? mct_db_path(db) : "?", mct_strerror(rc), db ? mct_db_path(db) : "PATH");
}

static int open_db(const struct opts *o, int flags, mct_db **db)
{
    char path[1024], err[2048];
    if (o->db) {
        snprintf(path, sizeof path, "%s", o->db);
    } else if (mct_db_default_path(path, sizeof path) < 0) {
        fprintf(stderr, "mctune db: no database location: set --db PATH, MCTUNE_DB, "
                "XDG_CACHE_HOME or HOME\n");
        return -1;
    }
    int rc = mct_db_open(path, flags, err, sizeof err, db);
    if (rc < 0) {
        fprintf(stderr, "mctune db: %s\n", err[0] ? err : mct_strerror(rc));
        return -1;
    }
    return 0;
}

/* --cpu: "host", "all" (when allowed: key 0) or 16 hex digits. */
static int parse_cpu(const char *s, int allow_all, uint64_t *key)
{
    if (!s || !strcmp(s, "host")) {
        *key = mct_cpu_key(mct_cpu_host());
        return 0;
    }
    if (allow_all && !strcmp(s, "all")) {
        *key = 0;
        return 0;
    }
    if (mct_cpu_key_parse(s, key) < 0) {
        mct_cli_usage_error(CMD, "--cpu '%s' is not a CPU key (16 hex digits, see 'mctune cpu')"
                            " or 'host'%s", s, allow_all ? " or 'all'" : "");
        return -1;
    }
    return 0;
}

static int parse_workload(const char *arg, mct_workload *w, uint8_t h[16])
{
    char why[256];
    char *text = mct_cli_text_arg(CMD, arg);
    if (!text)
        return -1;
    int rc = mct_wl_parse(text, w, why, sizeof why);
    if (rc < 0) {
        mct_cli_usage_error(CMD, "workload '%s': %s", text, why);
        free(text);
        return -1;
    }
    free(text);
    mct_wl_hash(w, h);
    return 0;
}

static void print_rec(const mct_db_rec *r, const char *format)
{
    if (format && !strcmp(format, "json")) {
        mct_db_item it;
        char *s;
        memset(&it, 0, sizeof it);
        it.kind = MCT_DB_ITEM_BEST;
        it.rec = *r;
        if (mct_db_item_format(&it, &s) == MCT_OK) {
            printf("%s\n", s);
            free(s);
        }
        return;
    }
    char cpu[17];
    mct_cpu_key_format(r->cpu, cpu);
    printf("workload   %s\n", r->workload);
    printf("cpu        %s\n", cpu);
    printf("threads    %d\n", r->threads);
    printf("schedule   %s\n", r->schedule[0] ? r->schedule : "(untuned nest)");
    printf("median     %.3f us (spread %.3f us)\n", r->median_ns / 1e3, r->spread_ns / 1e3);
    printf("gflops     %.2f\n", r->gflops);
    printf("search     %s, guide %s, best found at sample %lld\n", r->search[0] ? r->search : "?",
           r->guide[0] ? r->guide : "?", (long long)r->samples);
    printf("compiler   %s %s\n", r->compiler, r->flags);
    printf("tool       %s, timestamp %lld%s%s\n", r->tool, (long long)r->timestamp,
           r->model[0] ? ", model " : "", r->model);
}

static int cmd_get(struct opts *o)
{
    mct_workload w;
    uint8_t h[16];
    uint64_t key;
    mct_db *db = NULL;
    mct_db_rec *r = malloc(sizeof *r);
    mct_cpu cpu;
    mct_db_rung rung = MCT_RUNG_NONE;
    int rc, ret = 1, have_cpu = 0;
    if (!r)
        return 1;
    if (allow(o, "--cpu --threads --format") < 0 || o->npos != 1) {
        if (o->npos != 1)
            mct_cli_usage_error(CMD, "db get needs one WORKLOAD argument (got %d)", o->npos);
        ret = 2;
        goto fail;
    }
    if (o->format && strcmp(o->format, "text") && strcmp(o->format, "json")) {
        ret = mct_cli_usage_error(CMD, "--format '%s': use text or json", o->format);
        goto fail;
    }
    if (parse_workload(o->pos[0], &w, h) < 0 || parse_cpu(o->cpu, 0, &key) < 0) {
        ret = 2;
        goto fail;
    }
    int threads = o->threads ? (int)o->threads : 1;
    if (open_db(o, MCT_DB_RDONLY, &db) < 0)
        goto fail;
    if (!o->cpu || !strcmp(o->cpu, "host")) {
        cpu = *mct_cpu_host();
        have_cpu = 1;
    } else {
        rc = mct_db_get_cpu(db, key, &cpu);
        if (rc == MCT_OK)
            have_cpu = 1;
        else if (rc != MCT_ENOTFOUND) {
            db_error(db, rc);
            goto fail;
        }
    }
    const char *how = NULL;
    char howbuf[512];
    if (have_cpu)
        rc = mct_db_get_best_ladder(db, h, &cpu, threads, r, &rung);
    else
        rc = mct_db_get_best(db, h, key, threads, r);
    if (rc == MCT_OK) {
        char ck[17];
        mct_cpu_key_format(r->cpu, ck);
        if (have_cpu && rung != MCT_RUNG_EXACT) {
            snprintf(howbuf, sizeof howbuf, "%s (cpu %s)", mct_db_rung_name(rung), ck);
            how = howbuf;
        } else {
            how = "exact";
        }
    } else if (rc == MCT_ENOTFOUND) {
        rc = mct_db_get_best_nearest_m(db, &w, key, threads, r);
        if (rc == MCT_OK) {
            snprintf(howbuf, sizeof howbuf, "nearest M (tuned for '%s')", r->workload);
            how = howbuf;
        }
    }
    if (rc == MCT_ENOTFOUND) {
        char ck[17], text[256];
        mct_cpu_key_format(key, ck);
        mct_wl_format(&w, text, sizeof text);
        fprintf(stderr, "mctune db: no record for '%s' on cpu %s with %d thread%s, nor on a CPU "
                "of the same tier, nor for another M; tune it first\n", text, ck, threads,
                threads == 1 ? "" : "s");
        goto fail;
    }
    if (rc) {
        db_error(db, rc);
        goto fail;
    }
    if (!o->format || strcmp(o->format, "json"))
        printf("matched    %s\n", how);
    print_rec(r, o->format);
    ret = 0;
fail:
    mct_db_close(db);
    free(r);
    return ret;
}

struct list_ctx {
    const struct opts *o;
    uint64_t cpu;
    int op;          /* -1 any */
    int fmt;         /* 0 table, 1 json, 2 csv */
    size_t n;
    struct { uint64_t key; mct_tier tier; } cpus[64];   /* the table's tier column */
    int ncpus;
};

static int list_cpu(const mct_cpu *cpu, void *p)
{
    struct list_ctx *c = p;
    if (c->ncpus < (int)(sizeof c->cpus / sizeof c->cpus[0])) {
        c->cpus[c->ncpus].key = mct_cpu_key(cpu);
        c->cpus[c->ncpus++].tier = mct_cpu_tier_of(cpu);
    }
    return 0;
}

static const char *list_tier(const struct list_ctx *c, uint64_t key)
{
    for (int i = 0; i < c->ncpus; i++)
        if (c->cpus[i].key == key)
            return mct_tier_name(c->cpus[i].tier);
    return "?";
}

static void csv_field(const char *s, int last)
{
    putchar('"');
    for (; *s; s++) {
        if (*s == '"')
            putchar('"');
        putchar(*s);
    }
    putchar('"');
    putchar(last ? '\n' : ',');
}

static int list_one(const mct_db_rec *r, void *p)
{
    struct list_ctx *c = p;
    char cpu[17];
    mct_workload w;
    if (c->cpu && r->cpu != c->cpu)
        return 0;
    if (c->o->threads && r->threads != c->o->threads)
        return 0;
    if (c->o->model && strcmp(r->model, c->o->model))
        return 0;
    if (c->op >= 0 && (mct_wl_parse(r->workload, &w, NULL, 0) < 0 || (int)w.op != c->op))
        return 0;
    mct_cpu_key_format(r->cpu, cpu);
    if (c->fmt == 1) {
        mct_db_item it;
        char *s;
        memset(&it, 0, sizeof it);
        it.kind = c->o->trials ? MCT_DB_ITEM_TRIAL : MCT_DB_ITEM_BEST;
        it.rec = *r;
        if (mct_db_item_format(&it, &s) != MCT_OK)
            return MCT_ENOMEM;
        printf("%s%s", c->n ? ",\n  " : "[\n  ", s);
        free(s);
    } else if (c->fmt == 2) {
        char num[64];
        csv_field(r->workload, 0);
        csv_field(cpu, 0);
        snprintf(num, sizeof num, "%d", r->threads);
        csv_field(num, 0);
        snprintf(num, sizeof num, "%.17g", r->median_ns);
        csv_field(num, 0);
        snprintf(num, sizeof num, "%.17g", r->spread_ns);
        csv_field(num, 0);
        snprintf(num, sizeof num, "%.6g", r->gflops);
        csv_field(num, 0);
        snprintf(num, sizeof num, "%lld", (long long)r->samples);
        csv_field(num, 0);
        csv_field(r->search, 0);
        csv_field(r->guide, 0);
        csv_field(r->model, 0);
        csv_field(r->schedule, 1);
    } else {
        printf("%-52.52s %s %-8.8s %3d %12.3f %9.2f %-8.8s %-9.9s %.60s\n", r->workload, cpu,
               list_tier(c, r->cpu), r->threads, r->median_ns / 1e3, r->gflops, r->search, r->guide,
               r->schedule[0] ? r->schedule : "(untuned)");
    }
    c->n++;
    return 0;
}

static int cmd_list(struct opts *o)
{
    struct list_ctx c = {o, 0, -1, 0, 0, {{0, 0}}, 0};
    mct_db *db = NULL;
    if (allow(o, "--cpu --op --model --format --threads --trials") < 0)
        return 2;
    if (o->npos)
        return mct_cli_usage_error(CMD, "db list takes no argument '%s'", o->pos[0]);
    if (o->cpu && parse_cpu(o->cpu, 1, &c.cpu) < 0)
        return 2;
    if (o->op) {
        if (!strcmp(o->op, "matmul"))
            c.op = MCT_OP_MATMUL;
        else if (!strcmp(o->op, "bmm"))
            c.op = MCT_OP_BMM;
        else
            return mct_cli_usage_error(CMD, "--op '%s': use matmul or bmm", o->op);
    }
    if (o->format) {
        if (!strcmp(o->format, "json"))
            c.fmt = 1;
        else if (!strcmp(o->format, "csv"))
            c.fmt = 2;
        else if (strcmp(o->format, "table"))
            return mct_cli_usage_error(CMD, "--format '%s': use table, json or csv", o->format);
    }
    if (open_db(o, MCT_DB_RDONLY, &db) < 0)
        return 1;
    if (c.fmt == 0) {
        mct_db_iter_cpus(db, list_cpu, &c);
        printf("%-52s %-16s %-8s %3s %12s %9s %-8s %-9s %s\n", "workload", "cpu", "tier", "thr",
               "median_us", "gflops", "search", "guide", "schedule");
    }
    else if (c.fmt == 2)
        printf("workload,cpu,threads,median_ns,spread_ns,gflops,samples,search,guide,model,"
               "schedule\n");
    int rc = mct_db_iter(db, o->trials ? MCT_DB_TRIALS : MCT_DB_BEST, list_one, &c);
    if (c.fmt == 1)
        printf(c.n ? "\n]\n" : "[]\n");
    if (rc) {
        db_error(db, rc);
        mct_db_close(db);
        return 1;
    }
    if (c.fmt == 0)
        printf("(%zu record%s)\n", c.n, c.n == 1 ? "" : "s");
    mct_db_close(db);
    return 0;
}

static int cmd_stats(struct opts *o)
{
    mct_db *db = NULL;
    mct_db_stats st;
    if (allow(o, "") < 0)
        return 2;
    if (o->npos)
        return mct_cli_usage_error(CMD, "db stats takes no argument '%s'", o->pos[0]);
    if (open_db(o, MCT_DB_RDONLY, &db) < 0)
        return 1;
    int rc = mct_db_stats_get(db, &st);
    if (rc < 0) {
        db_error(db, rc);
        mct_db_close(db);
        return 1;
    }
    size_t recs = st.best + st.trials;
    printf("database   %s\n", mct_db_path(db));
    printf("cpus       %zu\nworkloads  %zu\nbest       %zu\ntrials     %zu\nllm        %zu\n",
           st.cpus, st.workloads, st.best, st.trials, st.llm);
    printf("used       %.1f KiB of a %.1f MiB map; file %.1f KiB", st.used_bytes / 1024.0,
           st.map_bytes / 1048576.0, st.file_bytes / 1024.0);
    if (recs)
        printf(" (%.0f bytes per record)", (double)st.used_bytes / (double)recs);
    printf("\n");
    mct_db_close(db);
    return 0;
}

static int cmd_export(struct opts *o)
{
    mct_db *db = NULL;
    uint64_t cpu = 0;
    size_t n = 0;
    if (allow(o, "--cpu --no-trials") < 0)
        return 2;
    if (o->npos)
        return mct_cli_usage_error(CMD, "db export writes to stdout; it takes no argument '%s'",
                                   o->pos[0]);
    if (o->cpu && parse_cpu(o->cpu, 1, &cpu) < 0)
        return 2;
    if (open_db(o, MCT_DB_RDONLY, &db) < 0)
        return 1;
    int rc = mct_db_export(db, stdout, cpu, !o->no_trials, &n);
    if (rc)
        db_error(db, rc);
    else
        fprintf(stderr, "mctune db: exported %zu records\n", n);
    mct_db_close(db);
    return rc ? 1 : 0;
}

static void note_print(const char *line, void *ctx)
{
    (void)ctx;
    printf("  %s\n", line);
}

static void print_report(const char *what, const mct_db_report *r)
{
    printf("%s: %zu added, %zu replaced by a faster record, %zu kept (stored one faster), "
           "%zu identical, %zu conflicts\n", what, r->added, r->replaced, r->kept, r->same,
           r->conflicts);
}

static int cmd_import(struct opts *o)
{
    mct_db *db = NULL;
    int ret = 0;
    if (allow(o, "") < 0)
        return 2;
    if (o->npos < 1)
        return mct_cli_usage_error(CMD, "db import needs a FILE.jsonl argument");
    if (open_db(o, 0, &db) < 0)
        return 1;
    for (int i = 0; i < o->npos; i++) {
        mct_db_report rep;
        char what[1100];
        int rc = mct_db_import(db, o->pos[i], note_print, NULL, &rep);
        if (rc < 0) {
            db_error(db, rc);
            ret = 1;
            continue;
        }
        snprintf(what, sizeof what, "imported %s", o->pos[i]);
        print_report(what, &rep);
    }
    mct_db_close(db);
    return ret;
}

static int cmd_merge(struct opts *o)
{
    mct_db *db = NULL;
    mct_db_report rep;
    char what[1100];
    if (allow(o, "") < 0)
        return 2;
    if (o->npos != 1)
        return mct_cli_usage_error(CMD, "db merge needs one OTHER_DB argument (got %d)", o->npos);
    if (open_db(o, 0, &db) < 0)
        return 1;
    int rc = mct_db_merge(db, o->pos[0], note_print, NULL, &rep);
    if (rc < 0) {
        db_error(db, rc);
        mct_db_close(db);
        return 1;
    }
    snprintf(what, sizeof what, "merged %s into %s", o->pos[0], mct_db_path(db));
    print_report(what, &rep);
    mct_db_close(db);
    return 0;
}

static int cmd_rm(struct opts *o)
{
    mct_workload w;
    uint8_t h[16];
    uint64_t cpu = 0;
    mct_db *db = NULL;
    int n = 0;
    if (allow(o, "--cpu --threads") < 0)
        return 2;
    if (o->npos != 1)
        return mct_cli_usage_error(CMD, "db rm needs one WORKLOAD argument (got %d)", o->npos);
    if (parse_workload(o->pos[0], &w, h) < 0)
        return 2;
    if (o->cpu && parse_cpu(o->cpu, 1, &cpu) < 0)
        return 2;
    if (open_db(o, 0, &db) < 0)
        return 1;
    int rc = mct_db_delete(db, h, cpu, (int)o->threads, &n);
    if (rc == MCT_ENOTFOUND)
        fprintf(stderr, "mctune db: no record of '%s' matches; nothing removed\n", o->pos[0]);
    else if (rc)
        db_error(db, rc);
    else
        printf("removed %d record%s\n", n, n == 1 ? "" : "s");
    mct_db_close(db);
    return rc ? 1 : 0;
}

static void note_err(const char *line, void *ctx)
{
    (void)ctx;
    printf("  %s\n", line);
}

static int cmd_check(struct opts *o)
{
    char path[1024], err[2048];
    mct_db_check_report rep;
    if (allow(o, "--salvage") < 0)
        return 2;
    if (o->npos)
        return mct_cli_usage_error(CMD, "db check takes no argument '%s' (the database is --db)",
                                   o->pos[0]);
    if (o->db)
        snprintf(path, sizeof path, "%s", o->db);
    else if (mct_db_default_path(path, sizeof path) < 0) {
        fprintf(stderr, "mctune db: no database location: set --db PATH, MCTUNE_DB, "
                "XDG_CACHE_HOME or HOME\n");
        return 1;
    }
    int rc = mct_db_check(path, o->salvage, note_err, NULL, &rep, err, sizeof err);
    if (rc) {
        fprintf(stderr, "mctune db: %s\n", err[0] ? err : mct_strerror(rc));
        return 1;
    }
    printf("checked %s: %zu records readable, %zu damaged (%zu best records without a trial)\n",
           path, rep.ok, rep.damaged, rep.best_no_trial);
    if (o->salvage)
        printf("salvaged %zu records into %s; use it with --db %s\n", rep.salvaged, o->salvage,
               o->salvage);
    else if (rep.damaged)
        printf("copy the readable records into a new database with 'mctune db check --db %s "
               "--salvage NEWDIR'\n", path);
    return rep.damaged ? 1 : 0;
}

int mct_cmd_db(int argc, char **argv)
{
    struct opts o;
    memset(&o, 0, sizeof o);
    int r = parse_args(argc, argv, &o);
    if (r)
        return r > 0 ? 0 : 2;
    if (!o.sub) {
        fputs(usage_text, stderr);
        return 2;
    }
    static const struct { const char *name; int (*fn)(struct opts *); } subs[] = {
        {"get", cmd_get}, {"list", cmd_list}, {"stats", cmd_stats}, {"export", cmd_export},
        {"import", cmd_import}, {"merge", cmd_merge}, {"rm", cmd_rm}, {"check", cmd_check},
    };
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++)
        if (!strcmp(o.sub, subs[i].name))
            return subs[i].fn(&o);
    return mct_cli_usage_error(CMD, "unknown subcommand '%s' (use get, list, stats, export, "
                               "import, merge, rm or check)", o.sub);
}
