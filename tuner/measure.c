/* The measurement harness (tuner/measure.h): creating and destroying it, candidates, and the flow
 * of a measurement: lower, compile (tuner/meas_cache.c), prepare the inputs (tuner/meas_data.c),
 * run each candidate in a child (tuner/meas_proto.c). The files are listed in tuner/meas_int.h. */
#include "tuner/meas_int.h"

#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codegen/text.h"
#include "tuner/proc.h"

const char *mct_meas_status_name(mct_meas_status s)
{
    switch (s) {
    case MCT_MEAS_OK: return "ok";
    case MCT_MEAS_COMPILE_ERROR: return "compile-error";
    case MCT_MEAS_CRASH: return "crash";
    case MCT_MEAS_TIMEOUT: return "timeout";
    case MCT_MEAS_WRONG: return "wrong";
    }
    return "unknown";
}

void mct_meas_opts_default(mct_meas_opts *o)
{
    memset(o, 0, sizeof *o);
    o->threads = 1;
    o->min_time_s = 0.2;
    o->min_runs = 5;
    o->max_runs = 100000;
    o->warmup_s = 0.02;
    o->timeout_s = 30;
    o->compile_timeout_s = 120;
    o->rotate_cap = (size_t)1 << 30;
    o->seed = 1;
}

static void fill_defaults(mct_meas_opts *o)
{
    mct_meas_opts d;
    mct_meas_opts_default(&d);
    if (o->threads <= 0) o->threads = d.threads;
    if (o->min_time_s <= 0) o->min_time_s = d.min_time_s;
    if (o->min_runs <= 0) o->min_runs = d.min_runs;
    if (o->max_runs <= 0) o->max_runs = d.max_runs;
    if (o->max_runs < o->min_runs) o->max_runs = o->min_runs;
    if (o->warmup_s <= 0) o->warmup_s = d.warmup_s;
    if (o->timeout_s <= 0) o->timeout_s = d.timeout_s;
    if (o->compile_timeout_s <= 0) o->compile_timeout_s = d.compile_timeout_s;
    if (o->rotate_cap == 0) o->rotate_cap = d.rotate_cap;
    if (o->seed == 0) o->seed = d.seed;
}

char *meas_asprintf(const char *fmt, ...)
{
    mct_str b = {0};
    va_list ap;
    va_start(ap, fmt);
    mct_str_vaddf(&b, fmt, ap);
    va_end(ap);
    return mct_str_take(&b);
}

void meas_kill(pid_t pid, int *st)
{
    kill(-pid, SIGKILL);
    kill(pid, SIGKILL);
    int ignored;
    mct_proc_wait(pid, 0, st ? st : &ignored, NULL);
}

int mct_meas_create(const mct_meas_opts *opts, mct_meas **out, char *err, size_t errlen)
{
    if (!out)
        return mct_errf(err, errlen, MCT_EINVAL, "mct_meas_create: out is NULL");
    *out = NULL;
    int rc = MCT_ENOMEM;
    mct_meas *m = calloc(1, sizeof *m);
    if (!m)
        goto fail;
    if (opts)
        m->o = *opts;
    else
        mct_meas_opts_default(&m->o);
    fill_defaults(&m->o);
    m->d.fd = -1;
    m->pg = sysconf(_SC_PAGESIZE);
    m->llc = meas_llc_bytes();
    rc = meas_cache_open(m, err, errlen);
    if (rc)
        goto fail;
    rc = meas_cache_compiler(m, err, errlen);
    if (rc)
        goto fail;
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        for (int c = 0; c < CPU_SETSIZE && m->ncpu < MCT_MAXCPU; c++)
            if (CPU_ISSET(c, &set))
                m->cpus[m->ncpu++] = c;
    if (m->o.jobs <= 0)
        m->o.jobs = m->ncpu > 0 ? m->ncpu : 1;
    /* the strings in o now point into m (or at static text); the caller's may go away */
    m->o.cache_dir = m->cache_dir;
    m->o.cc = m->cc;
    m->o.cflags = m->cflags;
    *out = m;
    return 0;
fail:
    if (rc == MCT_ENOMEM)
        mct_errf(err, errlen, rc, "out of memory while creating the measurement harness");
    mct_meas_destroy(m);
    return rc;
}

void mct_meas_destroy(mct_meas *m)
{
    if (!m)
        return;
    meas_data_release(&m->d);
    free(m->cache_dir);
    free(m->cc);
    free(m->cc_version);
    free(m->cflags);
    free(m->argv_store);
    free(m->host);
    free(m->driver);
    free(m);
}

void mct_meas_set_cut(mct_meas *m, double cut_s)
{
    if (m)
        m->o.cut_s = cut_s > 0 ? cut_s : 0;
}

const char *mct_meas_cache_dir(const mct_meas *m)
{
    return m->cache_dir;
}

void mct_meas_get_counters(const mct_meas *m, mct_meas_counters *out)
{
    *out = m->ctr;
}

/* Lowers a schedule (a failure is the candidate's, recorded in c->detail) or copies a source,
 * then looks the candidate up in the compile cache. */
static int cand_prepare(mct_meas *m, const mct_meas_cand *in, struct meas_cand *c)
{
    memset(c, 0, sizeof *c);
    c->dup_of = -1;
    if (in->sched) {
        mct_target t = m->o.target.vlen > 0 ? m->o.target : mct_target_host();
        if (t.threads <= 0)  /* the kernel runs on the thread count it is measured with */
            t.threads = m->o.threads > 0 ? m->o.threads : 1;
        /* widen(B, dot) where the tile or the target lacks the instructions is refused, not
         * measured as the widen(B, reg) code it would lower to */
        int dp = mct_cg_dot_path(in->sched, &t, c->detail, sizeof c->detail);
        if (dp < 0) {
            c->lower_failed = 1;
            return 0;
        }
        c->dot = dp;
        int rc = mct_cg_lower_c(in->sched, &t, MEAS_KERNEL_FN, &c->src);
        if (rc) {
            c->lower_failed = 1;
            snprintf(c->detail, sizeof c->detail, "lowering the schedule to C failed: %s",
                     mct_strerror(rc));
            return 0;
        }
        c->fn = MEAS_KERNEL_FN;
        /* low-precision weights always reach the kernel through its FN_pack_b */
        c->prepacked = mct_sched_prepacked(in->sched) || MCT_WL_QUANT(mct_sched_workload(in->sched));
    } else {
        if (!in->source || !in->fn || !*in->fn)
            return MCT_EINVAL;
        c->src = strdup(in->source);
        if (!c->src)
            return MCT_ENOMEM;
        c->fn = in->fn;
        c->prepacked = in->prepacked;
    }
    return meas_cache_prepare(m, &c->job, "kernel -lm", m->cflags, c->src, ".so");
}

static void cand_free(struct meas_cand *c)
{
    free(c->src);
    meas_job_free(&c->job);
}

static void result_init(const mct_meas *m, mct_meas_result *r)
{
    memset(r, 0, sizeof *r);
    r->relerr = -1;
    r->best_lib = -1;
    r->threads = m->o.threads;
    r->hot = m->o.hot;
    r->cc = m->cc;
    r->cc_version = m->cc_version;
    r->cflags = m->cflags;
}

int mct_meas_batch(mct_meas *m, const mct_workload *w, const mct_meas_cand *cands, int n,
                   mct_meas_result *out)
{
    char err[512] = "";
    struct meas_cand *c = NULL;
    if (!m || !w || (!cands && n) || (!out && n) || n < 0)
        return MCT_EINVAL;
    int rc = mct_wl_check(w, err, sizeof err);
    if (rc)
        goto fail;
    rc = MCT_ENOMEM;
    c = calloc((size_t)(n ? n : 1), sizeof *c);
    if (!c)
        goto fail;
    for (int i = 0; i < n; i++) {
        result_init(m, &out[i]);
        rc = cand_prepare(m, &cands[i], &c[i]);
        if (rc)
            goto fail;
        for (int k = 0; k < i && c[i].dup_of < 0; k++)
            if (!c[i].lower_failed && !c[k].lower_failed &&
                !memcmp(c[k].job.key, c[i].job.key, 16))
                c[i].dup_of = k;
        if (c[i].job.done || c[i].dup_of >= 0)
            m->ctr.cache_hits += !c[i].lower_failed;
    }
    rc = meas_cache_driver(m, err, sizeof err);
    if (rc)
        goto fail;
    rc = meas_data_prepare(m, w, err, sizeof err);
    if (rc)
        goto fail;
    rc = meas_cache_compile_all(m, c, n);
    if (rc)
        goto fail;
    for (int i = 0; i < n; i++) {
        mct_meas_result *r = &out[i];
        struct meas_cand *x = &c[i], *src = x->dup_of >= 0 ? &c[x->dup_of] : x;
        memcpy(r->key, x->job.key, 16);
        r->cached = x->job.cached || x->dup_of >= 0;
        r->compile_s = r->cached ? 0 : x->job.secs;
        r->copies = m->d.job.copies;
        r->rotate_bytes = m->d.rotate_bytes;
        if (x->lower_failed || !src->job.ok) {
            r->status = MCT_MEAS_COMPILE_ERROR;
            snprintf(r->detail, sizeof r->detail, "%s",
                     x->lower_failed ? x->detail : src->job.detail);
            continue;
        }
        meas_proto_run(m, x, src->job.obj, r);
    }
    rc = 0;
fail:
    for (int i = 0; c && i < n; i++)
        cand_free(&c[i]);
    free(c);
    if (rc && *err && n)
        snprintf(out[0].detail, sizeof out[0].detail, "harness: %.500s", err);
    return rc;
}

int mct_meas_run(mct_meas *m, const mct_workload *w, const mct_meas_cand *c,
                 mct_meas_result *out)
{
    return mct_meas_batch(m, w, c, 1, out);
}

int mct_meas_compile(mct_meas *m, const mct_meas_cand *in, mct_meas_status *status,
                     char *detail, size_t detaillen)
{
    if (!m || !in || !status)
        return MCT_EINVAL;
    struct meas_cand c;
    int rc = cand_prepare(m, in, &c);
    if (rc)
        goto fail;
    if (c.job.done || c.lower_failed)
        m->ctr.cache_hits += !c.lower_failed;
    rc = meas_cache_compile_all(m, &c, 1);
    if (rc)
        goto fail;
    *status = !c.lower_failed && c.job.ok ? MCT_MEAS_OK : MCT_MEAS_COMPILE_ERROR;
    mct_errf(detail, detaillen, 0, "%s", c.lower_failed ? c.detail : c.job.detail);
fail:
    cand_free(&c);
    return rc;
}
