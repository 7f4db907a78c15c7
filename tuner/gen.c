/* mctune gen: the database's side of library generation. Reads the CPU and best records,
 * selects the CPUs (--cpus), the thread count and the families (--model), parses each record's
 * schedule once and hands the tables to the writer (codegen/emit.h). */
#include "tuner/gen.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codegen/codegen.h"
#include "codegen/emit.h"
#include "db/db.h"
#include "runtime/cpu.h"
#include "tuner/tune_model.h"

#define MAXCPU 64

typedef struct kern {
    mct_db_rec rec;
    mct_sched *s;           /* rec.schedule parsed on rec.workload (owned) */
} kern;

typedef struct table {
    mct_cpu cpu;
    uint64_t key;
    int isa;
    kern *k;                /* in the database's order */
    int nk, capk;
} table;

typedef struct gen {
    const mct_gen_opts *o;
    FILE *log;
    mct_cpu *cpus;          /* the database's CPU records, all of them (malloc'ed) */
    int ncpus, capcpus;
    table t[MAXCPU];        /* the selected ones, in --cpus order */
    int nt;
    mct_tune_model fam;     /* --model: the families kept */
    int records, skipped;
    uint64_t sig;           /* fingerprint of the records used */
    char *err;
    size_t errlen;
    int rc;
} gen;

static int fail(gen *g, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(gen *g, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g->err, g->errlen, fmt, ap);
    va_end(ap);
    return g->rc = rc;
}

static int cpu_cb(const mct_cpu *c, void *ctx)
{
    gen *g = ctx;
    if (g->ncpus == g->capcpus) {
        int cap = g->capcpus ? 2 * g->capcpus : 16;
        mct_cpu *n = realloc(g->cpus, sizeof *n * (size_t)cap);
        if (!n)
            return fail(g, MCT_ENOMEM, "out of memory reading %d CPU records", g->ncpus + 1);
        g->cpus = n;
        g->capcpus = cap;
    }
    g->cpus[g->ncpus++] = *c;
    return 0;
}

static const mct_cpu *find_cpu(gen *g, uint64_t key)
{
    for (int i = 0; i < g->ncpus; i++)
        if (mct_cpu_key(&g->cpus[i]) == key)
            return &g->cpus[i];
    return NULL;
}

static int add_table(gen *g, const mct_cpu *c)
{
    uint64_t key = mct_cpu_key(c);
    for (int i = 0; i < g->nt; i++)
        if (g->t[i].key == key)
            return 0;
    if (g->nt == MAXCPU)
        return fail(g, MCT_ERANGE, "more than 64 CPUs selected; narrow --cpus");
    table *t = &g->t[g->nt++];
    memset(t, 0, sizeof *t);
    t->cpu = *c;
    t->key = key;
    /* the CPU's own ISA row; emit lowers for the CPU's tier on top of it (mct_isa_code_tier), as
     * the harness measured the kernels, and dispatch requires that tier of the host */
    t->isa = mct_isa_of_tier(mct_cpu_tier_of(c));
    return 0;
}

static int select_cpus(gen *g)
{
    const char *s = g->o->cpus;
    if (!s || !strcmp(s, "all")) {
        for (int i = 0; i < g->ncpus; i++)
            if (add_table(g, &g->cpus[i]) < 0)
                return g->rc;
        return 0;
    }
    if (!strcmp(s, "host")) {
        const mct_cpu *h = mct_cpu_host(), *c = find_cpu(g, mct_cpu_key(h));
        return add_table(g, c ? c : h);
    }
    char buf[32];
    while (*s) {
        size_t n = strcspn(s, ",");
        uint64_t key;
        const mct_cpu *c;
        snprintf(buf, sizeof buf, "%.*s", (int)(n < 31 ? n : 31), s);
        if (mct_cpu_key_parse(buf, &key) < 0)
            return fail(g, MCT_EINVAL, "--cpus: '%s' is not a CPU key (16 hex digits, see "
                        "'mctune db list'), 'host' or 'all'", buf);
        if (!(c = find_cpu(g, key))) {
            const mct_cpu *h = mct_cpu_host();
            if (mct_cpu_key(h) != key)
                return fail(g, MCT_ENOTFOUND, "--cpus: the database has no CPU record %s (its "
                            "ISA tier is needed); list them with 'mctune db list'", buf);
            c = h;
        }
        if (add_table(g, c) < 0)
            return g->rc;
        s += n;
        if (*s == ',')
            s++;
    }
    return 0;
}

static int rec_cb(const mct_db_rec *r, void *ctx)
{
    gen *g = ctx;
    mct_workload w;
    table *t = NULL;
    char why[256];
    if (g->o->threads && r->threads != g->o->threads)
        return 0;
    for (int i = 0; i < g->nt; i++)
        if (g->t[i].key == r->cpu)
            t = &g->t[i];
    if (!t)
        return 0;
    if (mct_wl_parse(r->workload, &w, why, sizeof why) < 0) {
        if (g->log)
            fprintf(g->log, "mctune gen: skipped record '%s': %s\n", r->workload, why);
        g->skipped++;
        return 0;
    }
    if (g->o->model) {
        int keep = 0;
        /* the filter names shapes: both variants of B (packed, as given) of each are kept */
        mct_workload a = w, b;
        a.braw = 0;
        for (int i = 0; i < g->fam.n && !keep; i++) {
            b = g->fam.w[i];
            b.braw = 0;
            keep = mct_wl_same_family(&a, &b);
        }
        if (!keep)
            return 0;
    }
    if (t->nk == t->capk) {
        int cap = t->capk ? 2 * t->capk : 16;
        kern *nk = realloc(t->k, sizeof *nk * (size_t)cap);
        if (!nk)
            return fail(g, MCT_ENOMEM, "out of memory");
        t->k = nk;
        t->capk = cap;
    }
    kern *k = &t->k[t->nk];
    if (mct_sched_parse(&w, r->schedule, &k->s, why, sizeof why) < 0) {
        if (g->log)
            fprintf(g->log, "mctune gen: skipped record '%s' schedule '%s': %s (tuned by "
                    "another code generator? re-tune it)\n", r->workload, r->schedule, why);
        g->skipped++;
        return 0;
    }
    k->rec = *r;
    char text[4400];
    snprintf(text, sizeof text, "%s\n%s\n%d", r->workload, r->schedule, t->isa);
    g->sig = mct_fnv64(g->sig, text, strlen(text));
    g->sig = mct_fnv64(g->sig, &r->cpu, sizeof r->cpu);
    t->nk++;
    g->records++;
    return 0;
}

static int load_model(gen *g)
{
    char merr[1024];
    int rc;
    if (g->o->model && (rc = mct_tune_model_load_any(g->o->model, &g->fam, merr,
                                                     sizeof merr)) < 0)
        return fail(g, rc, "--model: %s", merr);
    return 0;
}

static int read_db(gen *g)
{
    mct_db *db = NULL;
    char dberr[1024];
    int rc = mct_db_open(g->o->db, MCT_DB_RDONLY, dberr, sizeof dberr, &db);
    if (rc < 0)
        return fail(g, rc, "%s", dberr);
    if ((rc = mct_db_iter_cpus(db, cpu_cb, g)) < 0) {
        if (!g->rc)
            fail(g, rc, "reading CPU records: %s", mct_db_errmsg(db));
    }
    else if (select_cpus(g) == 0 && load_model(g) == 0 &&
             (rc = mct_db_iter(db, MCT_DB_BEST, rec_cb, g)) < 0 && !g->rc)
        fail(g, rc, "reading best records: %s", mct_db_errmsg(db));
    mct_db_close(db);
    return g->rc;
}

/* The date the files carry: SOURCE_DATE_EPOCH when set (reproducible builds), else now. */
static int gen_time(gen *g, int64_t *out)
{
    const char *sde = getenv("SOURCE_DATE_EPOCH");
    *out = (int64_t)time(NULL);
    if (!sde || !*sde)
        return 0;
    char *end;
    errno = 0;
    long long v = strtoll(sde, &end, 10);
    /* up to the year 9999, so that the date always formats */
    if (errno || end == sde || *end || v < 0 || v > 253402300799LL)
        return fail(g, MCT_EINVAL, "SOURCE_DATE_EPOCH '%.40s' is not a whole number of seconds "
                    "since 1970 (0 to 253402300799); fix or unset it", sde);
    *out = v;
    return 0;
}

/* The kept records as the writer takes them; pointers into g, valid while g is. */
static int emit(gen *g, mct_emit_report *er)
{
    mct_emit_table *et = calloc((size_t)g->nt + 1, sizeof *et);
    int total = 0, rc;
    for (int i = 0; i < g->nt; i++)
        total += g->t[i].nk;
    mct_emit_kernel *ek = calloc((size_t)total + 1, sizeof *ek), *p = ek;
    mct_emit_opts eo = {g->o->name, g->o->out_dir, g->o->tool, NULL, 0};
    char source[256];
    if (!et || !ek) {
        rc = fail(g, MCT_ENOMEM, "out of memory");
        goto fail;
    }
    if ((rc = gen_time(g, &eo.time)) < 0)
        goto fail;
    for (int i = 0; i < g->nt; i++) {
        const table *t = &g->t[i];
        et[i].cpu = t->cpu;
        et[i].isa = t->isa;
        et[i].k = p;
        et[i].nk = t->nk;
        for (int j = 0; j < t->nk; j++, p++) {
            const mct_db_rec *r = &t->k[j].rec;
            mct_emit_kernel k = {t->k[j].s, r->gflops, r->median_ns, r->search, r->guide,
                                 r->compiler, r->flags, r->base_gflops, r->threads};
            *p = k;
        }
    }
    snprintf(source, sizeof source, "database signature schema %d, %s, %d records, fingerprint "
             "%016llx", MCT_DB_SCHEMA, MCT_CG_VERSION, g->records, (unsigned long long)g->sig);
    eo.source = source;
    if ((rc = mct_emit_library(&eo, et, g->nt, g->err, g->errlen, er)) < 0)
        g->rc = rc;
fail:
    free(et);
    free(ek);
    return rc;
}

int mct_gen_library(const mct_gen_opts *o, FILE *log, mct_gen_report *rep, char *err,
                    size_t errlen)
{
    gen *g = calloc(1, sizeof *g);
    mct_emit_report er;
    int rc;
    if (!g) {
        snprintf(err, errlen, "out of memory");
        return MCT_ENOMEM;
    }
    g->o = o;
    g->log = log;
    g->err = err;
    g->errlen = errlen;
    g->sig = MCT_FNV64_INIT;
    err[0] = 0;
    if (!mct_emit_name_ok(o->name)) {
        rc = fail(g, MCT_EINVAL, "--name '%s' is not usable: use lowercase letters, digits and "
                  "'_' (not first a digit, at most 40, not starting with mct_)",
                  o->name ? o->name : "");
        goto fail;
    }
    if (o->threads < 0) {
        rc = fail(g, MCT_EINVAL, "threads must be >= 0 (0: every thread count)");
        goto fail;
    }
    if ((rc = read_db(g)) < 0 || (rc = emit(g, &er)) < 0)
        goto fail;
    if (rep) {
        memset(rep, 0, sizeof *rep);
        rep->tables = er.tables;
        rep->kernels = er.kernels;
        rep->records = g->records;
        rep->skipped = g->skipped;
    }
    rc = 0;
fail:
    for (int i = 0; i < g->nt; i++) {
        for (int j = 0; j < g->t[i].nk; j++)
            mct_sched_destroy(g->t[i].k[j].s);
        free(g->t[i].k);
    }
    mct_tune_model_free(&g->fam);
    free(g->cpus);
    free(g);
    return rc;
}
