/* Tuning one workload (tuner/tune.h): the skip / resume / transfer / record policy around one
 * search, and the per-sample log. */
#include "tuner/tune.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/dispatch.h"

/* The state of one call, handed to the search's callbacks. */
typedef struct tune {
    const mct_tune_opts *o;
    const mct_workload *w;
    char wl[256];           /* canonical workload text */
    mct_db_key key;         /* (workload, CPU, threads) */
    const char *search, *guide;
    const char *cc, *cc_version, *cflags;  /* of the last measurement, for the records */
    double best_ns;
    mct_db_rec rec;         /* scratch record (large: kept out of the callbacks' stack) */
    mct_tune_result *res;
    char *err;
    size_t errlen;
} tune;

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

void mct_tune_search_opts(const mct_tune_opts *o, mct_search_opts *so)
{
    memset(so, 0, sizeof *so);
    so->kind = o->kind;
    so->budget = o->budget > 0 ? o->budget : 32;
    so->seed = o->seed;
    so->guide = o->guide;
    so->cpu = o->cpu;
    so->threads = o->threads > 0 ? o->threads : 1;
    so->target = o->target;  /* vlen 0: the search takes mct_target_host() */
    so->meas = o->meas;
    so->meas_base = o->meas_base;
    so->model = o->costmodel;
    so->rank = o->rank;
    so->rollout = o->rollout;
    so->cut = o->cut;
}

/* A record of this workload, CPU and thread count with the provenance of this run. */
static void fill_rec(tune *t, const mct_search_sample *smp, mct_db_rec *r)
{
    memset(r, 0, sizeof *r);
    snprintf(r->workload, sizeof r->workload, "%s", t->wl);
    r->cpu = t->key.cpu;
    r->threads = (int)t->key.threads;
    snprintf(r->schedule, sizeof r->schedule, "%s", smp->schedule);
    snprintf(r->search, sizeof r->search, "%s", t->search);
    snprintf(r->guide, sizeof r->guide, "%s", t->guide);
    snprintf(r->compiler, sizeof r->compiler, "%s %s", t->cc ? t->cc : "cc",
             t->cc_version ? t->cc_version : "");
    snprintf(r->flags, sizeof r->flags, "%s", t->cflags ? t->cflags : MCT_MEAS_CFLAGS);
    snprintf(r->tool, sizeof r->tool, MCT_TOOL);
    snprintf(r->model, sizeof r->model, "%s", t->o->model ? t->o->model : "");
    r->timestamp = (int64_t)time(NULL);
}

static int lookup(void *ctx, const mct_sched *s, const uint8_t hash[16], mct_search_meas *out)
{
    tune *t = ctx;
    mct_db_trial_key k;
    memset(&k, 0, sizeof k);
    k.k = t->key;
    memcpy(k.sched, hash, 16);
    (void)s;
    if (mct_db_get_trial_key(t->o->db, &k, &t->rec))
        return MCT_ENOTFOUND;
    const mct_db_rec *got = &t->rec;
    memset(out, 0, sizeof *out);
    if (got->median_ns >= MCT_TUNE_FAILED_NS || !(got->gflops > 0)) {
        out->status = MCT_MEAS_CRASH;
        out->latency_s = -1;
        snprintf(out->detail, sizeof out->detail, "failed when measured before (stored trial)");
    } else {
        out->status = MCT_MEAS_OK;
        out->latency_s = got->median_ns * 1e-9;
        out->spread_s = got->spread_ns * 1e-9;
        out->gflops = got->gflops;
    }
    return 0;
}

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

/* One JSON line per sample; flushed, so a killed run's log holds every recorded sample. */
static void log_sample(tune *t, FILE *f, const mct_search_sample *smp)
{
    char hx[33];
    for (int i = 0; i < 16; i++)
        snprintf(hx + 2 * i, 3, "%02x", smp->hash[i]);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    fprintf(f, "{\"time\":%.3f,\"strategy\":\"%s\",\"guide\":\"%s\",\"workload\":",
            (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9, t->search, t->guide);
    json_str(f, t->wl);
    fprintf(f, ",\"sample\":%d,\"node\":%d,\"parent\":%d,\"hash\":\"%s\",\"schedule\":",
            smp->index, smp->node, smp->parent, hx);
    json_str(f, smp->schedule);
    fprintf(f, ",\"applied\":");
    json_str(f, smp->applied ? smp->applied : "");
    if (smp->latency_s > 0)
        fprintf(f, ",\"latency_s\":%.9g,\"gflops\":%.4f", smp->latency_s, smp->gflops);
    else
        fprintf(f, ",\"latency_s\":null,\"gflops\":0");
    fprintf(f, ",\"status\":\"%s\",\"reused\":%s,\"best_gflops\":%.4f",
            mct_meas_status_name((mct_meas_status)smp->status), smp->reused ? "true" : "false",
            smp->best_gflops);
    if (smp->status != MCT_MEAS_OK && smp->detail && *smp->detail) {
        fprintf(f, ",\"detail\":");
        json_str(f, smp->detail);
    }
    fprintf(f, "}\n");
    fflush(f);
}

/* A store that failed: the database's own code when it says what kind of failure (an invalid
 * record is MCT_EINVAL or MCT_ERANGE, a full map MCT_EFULL, ...), MCT_EIO when it gives none. */
static int db_failed(tune *t, const char *what, int code)
{
    t->res->db_failed = 1;
    return mct_errf(t->err, t->errlen, code < 0 ? code : MCT_EIO, "cannot write %s to %s: %s",
                    what, mct_db_path(t->o->db), mct_db_errmsg(t->o->db));
}

static int on_sample(void *ctx, const mct_search_sample *smp)
{
    tune *t = ctx;
    mct_db_rec *r = &t->rec;
    if (smp->res && smp->res->cc) {
        t->cc = smp->res->cc;
        t->cc_version = smp->res->cc_version;
        t->cflags = smp->res->cflags;
    }
    int ok = smp->status == MCT_MEAS_OK && smp->latency_s > 0;
    if (!smp->reused) {
        fill_rec(t, smp, r);
        r->median_ns = ok ? smp->latency_s * 1e9 : MCT_TUNE_FAILED_NS;
        r->spread_ns = ok ? smp->spread_s * 1e9 : 0;
        r->gflops = ok ? smp->gflops : 0;
        r->samples = 1;
        int e = mct_db_put_trial(t->o->db, r);
        if (e)
            return db_failed(t, "a trial", e);
    }
    if (ok && (t->best_ns <= 0 || smp->latency_s * 1e9 < t->best_ns)) {
        t->best_ns = smp->latency_s * 1e9;
        fill_rec(t, smp, r);
        r->median_ns = t->best_ns;
        r->spread_ns = smp->spread_s * 1e9;
        r->gflops = smp->gflops;
        r->samples = smp->index;
        int e = mct_db_put_best(t->o->db, r, NULL);
        if (e)
            return db_failed(t, "the best record", e);
        t->res->best = *r;
    }
    if (t->o->log)
        log_sample(t, t->o->log, smp);
    return t->o->on_sample ? t->o->on_sample(t->o->ctx, smp) : 0;
}

static void on_note(void *ctx, int loud, const char *line)
{
    tune *t = ctx;
    if (t->o->on_note)
        t->o->on_note(t->o->ctx, loud, line);
}

/* Transfer seeds from the family's best records: other CPUs' (or thread counts') records of
 * this very workload first, then the nearest M of the family (any CPU, this one included). */
typedef struct xfer {
    const tune *t;
    char exact[3][4096];
    int nexact;
    char near[4096];
    long near_m;
} xfer;

static int xfer_fn(const mct_db_rec *r, void *ctx)
{
    xfer *x = ctx;
    mct_workload o;
    if (mct_wl_parse(r->workload, &o, NULL, 0))
        return 0;
    const mct_workload *w = x->t->w;
    if (o.M == w->M) {
        if (r->cpu == x->t->key.cpu && r->threads == (int)x->t->key.threads)
            return 0;  /* our own record (only there with retune) */
        for (int i = 0; i < x->nexact; i++)
            if (!strcmp(x->exact[i], r->schedule))
                return 0;
        if (x->nexact < 3)
            snprintf(x->exact[x->nexact++], sizeof x->exact[0], "%s", r->schedule);
        return 0;
    }
    if (!x->near[0] || mct_rt_m_nearer((long)o.M, x->near_m, (long)w->M)) {
        snprintf(x->near, sizeof x->near, "%s", r->schedule);
        x->near_m = (long)o.M;
    }
    return 0;
}

/* b=raw: the packed variant's best records of the same M (this CPU and thread count first),
 * their prepack turned into a pack inside the kernel (mct_sched_without_prepack). */
typedef struct xraw {
    const tune *t;
    const xfer *x;          /* seeds already taken: a converted schedule equal to one is dropped */
    char seed[3][4096];
    int n, own;             /* own: seed[0] is this CPU and thread count's */
} xraw;

static int xraw_fn(const mct_db_rec *r, void *ctx)
{
    xraw *x = ctx;
    mct_workload o;
    mct_sched *s = NULL, *c = NULL;
    char text[4096];
    if (mct_wl_parse(r->workload, &o, NULL, 0) || o.M != x->t->w->M || o.braw)
        return 0;
    int own = r->cpu == x->t->key.cpu && r->threads == (int)x->t->key.threads;
    if (x->n == 3 && !(own && !x->own))
        return 0;
    int rc = mct_sched_parse(&o, r->schedule, &s, NULL, 0);
    if (!rc)
        rc = mct_sched_without_prepack(s, &c);
    if (!rc && mct_sched_format(c, text, sizeof text) < 0)
        rc = MCT_ERANGE;
    mct_sched_destroy(s);
    mct_sched_destroy(c);
    if (rc)
        return 0;  /* a record this version does not carry over: no seed */
    for (int i = 0; i < x->x->nexact; i++)
        if (!strcmp(x->x->exact[i], text))
            return 0;
    for (int i = 0; i < x->n; i++)
        if (!strcmp(x->seed[i], text))
            return 0;
    if (own) {
        /* first place: the others move down, the last one out when full */
        memmove(x->seed[1], x->seed[0], sizeof x->seed[0] * (size_t)(x->n < 3 ? x->n : 2));
        x->n += x->n < 3;
        x->own = 1;
        snprintf(x->seed[0], sizeof x->seed[0], "%s", text);
    } else if (x->n < 3)
        snprintf(x->seed[x->n++], sizeof x->seed[0], "%s", text);
    return 0;
}

/* The best kernel of a b=raw workload against the libraries it would replace through the cblas
 * drop-in: measured once more beside them, and the fastest library's speed stored with the best
 * record on the record's scale: the library's speed over the kernel's, both from this one run,
 * times the record's figure. The record's figure is the best of the search's samples, so on a
 * noisy host it is biased upwards; set against one library run it would keep kernels the
 * library beats. Scaled so, base_gflops / gflops is the ratio measured side by side (interleaved
 * call by call at one thread). A failed measurement stores nothing (the drop-in then trusts the
 * kernel). */
static int libs_beside(tune *t, const mct_workload *w, mct_tune_result *res)
{
    /* t->rec is free here: the search is over */
    mct_sched *s = NULL;
    mct_meas_result mr;
    uint8_t wh[16];
    mct_db_rec *b = &t->rec;
    /* the stored best: with retune it can be an earlier run's, faster than this one's */
    mct_wl_hash(w, wh);
    if (mct_db_get_best(t->o->db, wh, t->key.cpu, (int)t->key.threads, b) != MCT_OK)
        *b = res->best;
    if (mct_sched_parse(w, b->schedule, &s, NULL, 0))
        return MCT_OK;
    mct_meas_cand c = {.sched = s};
    int r = mct_meas_run(t->o->meas_libs, w, &c, &mr);
    mct_sched_destroy(s);
    /* the fastest library that ran (OpenBLAS with either core, oneDNN) */
    const struct mct_meas_lib *best = mr.best_lib >= 0 && mr.best_lib < 3 ? &mr.libs[mr.best_lib]
                                                                          : NULL;
    double lib = best ? best->gflops : mr.base_gflops;
    if (r || mr.status != MCT_MEAS_OK || !mr.has_baseline || !(lib > 0) || !(mr.gflops > 0))
        return MCT_OK;
    res->side_kernel_gflops = mr.gflops;
    res->side_lib_gflops = lib;
    snprintf(res->side_lib, sizeof res->side_lib, "%s", best ? best->label : mr.base_name);
    lib *= b->gflops / mr.gflops;
    b->base_gflops = lib;
    int e = mct_db_put_best(t->o->db, b, NULL);
    if (e)
        return db_failed(t, "the best record", e);
    if (!strcmp(b->schedule, res->best.schedule))
        res->best.base_gflops = lib;
    return MCT_OK;
}

int mct_tune_workload(const mct_workload *w, const mct_tune_opts *o, mct_tune_result *res,
                      char *err, size_t errlen)
{
    memset(res, 0, sizeof *res);
    if (err && errlen)
        err[0] = 0;
    if (!o->db || !o->cpu || !o->meas || (o->kind == MCT_SEARCH_MCTS && !o->guide))
        return mct_errf(err, errlen, MCT_EINVAL, "tune: db, cpu, meas (and a guide for mcts) "
                        "are required");
    int budget = o->budget > 0 ? o->budget : 32, rc;
    tune *t = calloc(1, sizeof *t);
    xfer *x = NULL;
    xraw *xr = NULL;
    if (!t)
        return mct_errf(err, errlen, MCT_ENOMEM, "tune: out of memory");
    t->o = o;
    t->w = w;
    t->res = res;
    t->err = err;
    t->errlen = errlen;
    t->search = mct_search_kind_name(o->kind);
    t->guide = o->kind == MCT_SEARCH_MCTS && o->guide_name ? o->guide_name : "";
    mct_wl_format(w, t->wl, sizeof t->wl);
    uint8_t wh[16];
    mct_wl_hash(w, wh);
    mct_db_key_make(wh, mct_cpu_key(o->cpu), o->threads > 0 ? o->threads : 1, &t->key);

    /* skip or resume */
    if (mct_db_count_trials(o->db, &t->key, &res->stored_trials))
        res->stored_trials = 0;
    int have = !o->retune && mct_db_get_best(o->db, wh, t->key.cpu, (int)t->key.threads,
                                             &res->best) == 0;
    if (have && (res->stored_trials == 0 || res->stored_trials >= (size_t)budget)) {
        res->outcome = MCT_TUNE_SKIPPED;
        if (o->on_start)
            o->on_start(o->ctx, w, res);
        rc = MCT_OK;
        goto done;
    }
    res->resumed = have;
    memset(&res->best, 0, sizeof res->best);
    if ((rc = mct_db_put_workload(o->db, w))) {
        rc = db_failed(t, "a workload", rc);
        goto done;
    }

    const char *seeds[7];
    if (o->transfer) {
        if (!(x = calloc(1, sizeof *x)) || (w->braw && !(xr = calloc(1, sizeof *xr)))) {
            rc = mct_errf(err, errlen, MCT_ENOMEM, "tune: out of memory");
            goto done;
        }
        x->t = t;
        mct_db_iter_family(o->db, w, xfer_fn, x);
        for (int q = 0; q < x->nexact; q++)
            seeds[res->nseeds++] = x->exact[q];
        if (xr) {
            mct_workload pw = *w;
            pw.braw = 0;
            xr->t = t;
            xr->x = x;
            mct_db_iter_family(o->db, &pw, xraw_fn, xr);
            for (int q = 0; q < xr->n; q++)
                seeds[res->nseeds++] = xr->seed[q];
        }
        if (x->near[0])
            seeds[res->nseeds++] = x->near;
    }
    mct_search_opts so;
    mct_tune_search_opts(o, &so);
    so.seeds = seeds;
    so.nseeds = res->nseeds;
    so.lookup = lookup;
    so.on_sample = on_sample;
    so.on_note = on_note;
    so.ctx = t;
    if (o->on_start)
        o->on_start(o->ctx, w, res);
    double t0 = now_s();
    char serr[1024] = "";
    rc = mct_search_run(w, &so, &res->st, serr, sizeof serr);
    res->seconds = now_s() - t0;
    if (rc && !res->db_failed && *serr)
        mct_errf(err, errlen, rc, "%s", serr);
    if (rc == MCT_OK && w->braw && o->meas_libs && res->best.schedule[0] &&
        (rc = libs_beside(t, w, res)) != MCT_OK)
        goto done;
done:
    free(xr);
    free(x);
    free(t);
    return rc;
}
