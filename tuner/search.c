/* Search strategies: mcts (guided), evolutionary (inside the cost model, or measured), random.
 * See tuner/search.h for the sample accounting that all of them share. */
#include "tuner/search.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct cand {
    mct_sched *s;
    char *applied;          /* what made it from its parent */
    char *trace;            /* transformations from the root, "; "-separated */
    int parent;
    int *kids, nkids, capkids;
    int visits;
    double value;           /* sum of speedups in the subtree (mcts) */
    int measured;
    int status;
    double lat, spread, gflops;
    int dead, exhausted;
    int estimated;          /* mcts rollout: not measured, value holds est */
    double est;
    /* mcts: the latest proposals refused at this node, "text\0reason" each (a ring) */
    char *rej[MCT_GUIDE_MAX_REJECT];
    int nrej;
} cand;

typedef struct srch {
    const mct_workload *w;
    const mct_search_opts *o;
    mct_target tgt;
    const mct_cpu *cpu;
    uint64_t rng;
    int budget;
    cand *c;
    int n, cap;
    uint8_t (*hk)[16];      /* open-addressing set of schedule hashes */
    char *hused;
    size_t hcap, hn;
    mct_search_stats *st;
    double ref_lat;         /* reward reference: the untuned latency (or first ok one) */
    double best_speedup;
    int stop;               /* nonzero: an on_sample callback's value or a harness error */
    mct_costmodel *model;   /* o->model or own */
    mct_costmodel *own;
    int model_dirty;        /* samples added since the last training */
    char *err;
    size_t errlen;
} srch;

static const char *const kind_names[MCT_SEARCH_NKINDS] = {"mcts", "evolutionary", "random",
                                                         "evolutionary-measured"};

const char *mct_search_kind_name(mct_search_kind k)
{
    return (unsigned)k < MCT_SEARCH_NKINDS ? kind_names[k] : "?";
}

int mct_search_kind_parse(const char *s, mct_search_kind *out)
{
    for (int i = 0; i < MCT_SEARCH_NKINDS; i++)
        if (!strcmp(s, kind_names[i])) {
            *out = (mct_search_kind)i;
            return 0;
        }
    if (!strcmp(s, "evo")) {
        *out = MCT_SEARCH_EVO;
        return 0;
    }
    return MCT_EINVAL;
}

/* the search's draws and the guides' come from one generator (tuner/guide.h) */
#define rnd mct_guide_rand
#define unif mct_guide_unif

static void note_at(srch *S, int loud, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void note_at(srch *S, int loud, const char *fmt, ...)
{
    if (!S->o->on_note)
        return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    S->o->on_note(S->o->ctx, loud, line);
}
#define note(S, ...) note_at(S, 0, __VA_ARGS__)

/* hash set ------------------------------------------------------------------------------- */

static size_t hslot(const uint8_t h[16], size_t cap)
{
    uint64_t v;
    memcpy(&v, h, 8);
    return (size_t)(v & (cap - 1));
}

static int hgrow(srch *S)
{
    size_t ncap = S->hcap ? S->hcap * 2 : 256;
    uint8_t (*nk)[16] = calloc(ncap, 16);
    char *nu = calloc(ncap, 1);
    if (!nk || !nu) {
        free(nk);
        free(nu);
        return MCT_ENOMEM;
    }
    for (size_t i = 0; i < S->hcap; i++)
        if (S->hused[i]) {
            size_t j = hslot(S->hk[i], ncap);
            while (nu[j])
                j = (j + 1) & (ncap - 1);
            nu[j] = 1;
            memcpy(nk[j], S->hk[i], 16);
        }
    free(S->hk);
    free(S->hused);
    S->hk = nk;
    S->hused = nu;
    S->hcap = ncap;
    return 0;
}

/* 1 when h was already in the set; else inserts it and returns 0 (negative on no memory). */
static int hseen(srch *S, const uint8_t h[16])
{
    if ((S->hn + 1) * 2 > S->hcap) {
        int r = hgrow(S);
        if (r)
            return r;
    }
    size_t j = hslot(h, S->hcap);
    while (S->hused[j]) {
        if (!memcmp(S->hk[j], h, 16))
            return 1;
        j = (j + 1) & (S->hcap - 1);
    }
    S->hused[j] = 1;
    memcpy(S->hk[j], h, 16);
    S->hn++;
    return 0;
}

/* 1 when h is in the set (nothing inserted). */
static int hhas(const srch *S, const uint8_t h[16])
{
    if (!S->hcap)
        return 0;
    size_t j = hslot(h, S->hcap);
    while (S->hused[j]) {
        if (!memcmp(S->hk[j], h, 16))
            return 1;
        j = (j + 1) & (S->hcap - 1);
    }
    return 0;
}

/* candidates ------------------------------------------------------------------------------ */

static char *dupstr(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

/* Adds s (taking ownership) as a new candidate unless its hash was seen: returns its id, -1
 * for a duplicate (s destroyed, counted), or a code < -1 on no memory. */
static int add_cand(srch *S, mct_sched *s, int parent, const char *applied)
{
    uint8_t h[16];
    mct_sched_hash(s, h);
    int r = hseen(S, h);
    if (r) {
        mct_sched_destroy(s);
        if (r == 1) {
            S->st->duplicates++;
            return -1;
        }
        return MCT_ENOMEM - 100;
    }
    if (S->n == S->cap) {
        int ncap = S->cap ? S->cap * 2 : 64;
        cand *nc = realloc(S->c, (size_t)ncap * sizeof *nc);
        if (!nc) {
            mct_sched_destroy(s);
            return MCT_ENOMEM - 100;
        }
        S->c = nc;
        S->cap = ncap;
    }
    cand *x = &S->c[S->n];
    memset(x, 0, sizeof *x);
    x->s = s;
    x->parent = parent;
    x->lat = -1;
    x->applied = dupstr(applied);
    const char *pt = parent >= 0 && S->c[parent].trace ? S->c[parent].trace : "";
    size_t tl = strlen(pt) + strlen(applied) + 3;
    x->trace = malloc(tl);
    if (x->trace)
        snprintf(x->trace, tl, "%s%s%s", pt, *pt && *applied ? "; " : "", applied);
    if (!x->applied || !x->trace) {
        free(x->applied);
        free(x->trace);
        mct_sched_destroy(s);
        return MCT_ENOMEM - 100;
    }
    if (parent >= 0) {
        cand *p = &S->c[parent];
        if (p->nkids == p->capkids) {
            int nk = p->capkids ? p->capkids * 2 : 4;
            int *k = realloc(p->kids, (size_t)nk * sizeof *k);
            if (!k) {
                free(x->applied);
                free(x->trace);
                mct_sched_destroy(s);
                return MCT_ENOMEM - 100;
            }
            p->kids = k;
            p->capkids = nk;
        }
        p->kids[p->nkids++] = S->n;
    }
    return S->n++;
}

static double speedup_of(srch *S, const cand *x)
{
    if (x->status != MCT_MEAS_OK || !(x->lat > 0) || !(S->ref_lat > 0))
        return 0;
    return S->ref_lat / x->lat;
}

/* 1 when s asks for widen(B, dot|amx) that the search's target or s's tile cannot take
 * (mct_cg_dot_path, why set): legal as a schedule, but the harness refuses it, so it is a
 * rejected proposal, not a code generator bug. */
static int dot_refused(srch *S, const mct_sched *s, char *why, size_t len)
{
    mct_target t = S->tgt;
    if (t.threads <= 0)
        t.threads = S->o->threads > 0 ? S->o->threads : 1;
    char tmp[256];
    if (mct_cg_dot_path(s, &t, tmp, sizeof tmp) >= 0)
        return 0;
    if (why && len)
        snprintf(why, len, "%s", tmp);
    return 1;
}

/* Measures candidates ids[0..n) (lookup first, then one harness batch), in order, counting one
 * sample each and calling on_sample. base: use meas_base. Returns 0 or stops the search. */
static int measure(srch *S, const int *ids, int n, int base)
{
    const mct_search_opts *o = S->o;
    mct_search_meas *got = calloc((size_t)n, sizeof *got);
    int *reused = calloc((size_t)n, sizeof *reused);
    mct_meas_cand *mc = calloc((size_t)n, sizeof *mc);
    mct_meas_result *res = calloc((size_t)n, sizeof *res);
    int *slot = calloc((size_t)n, sizeof *slot);
    int nm = 0, r = 0;
    if (!got || !reused || !mc || !res || !slot) {
        r = MCT_ENOMEM;
        goto fail;
    }
    for (int i = 0; i < n; i++) {
        cand *x = &S->c[ids[i]];
        uint8_t h[16];
        mct_sched_hash(x->s, h);
        if (o->lookup && o->lookup(o->ctx, x->s, h, &got[i]) == 0) {
            reused[i] = 1;
            continue;
        }
        if (o->evaluate) {
            if ((r = o->evaluate(o->ctx, x->s, &got[i])))
                goto fail;
            continue;
        }
        mc[nm].sched = x->s;
        slot[i] = nm++;
    }
    if (nm) {
        mct_meas *m = base && o->meas_base ? o->meas_base : o->meas;
        double best = S->st->best_latency_s;
        mct_meas_set_cut(m, !base && o->cut > 1 && best > 0 ? o->cut * best : 0);
        r = mct_meas_batch(m, S->w, mc, nm, res);
        mct_meas_set_cut(m, 0);
        if (r) {
            snprintf(S->err, S->errlen, "the measurement harness failed: %s", mct_strerror(r));
            goto fail;
        }
        for (int i = 0, q = 0; i < n; i++) {
            if (reused[i] || o->evaluate)
                continue;
            (void)q;
            mct_meas_result *x = &res[slot[i]];
            got[i].status = x->status;
            got[i].latency_s = x->status == MCT_MEAS_OK ? x->median_s : -1;
            got[i].spread_s = x->status == MCT_MEAS_OK ? x->q3_s - x->q1_s : 0;
            got[i].gflops = x->status == MCT_MEAS_OK ? x->gflops : 0;
            snprintf(got[i].detail, sizeof got[i].detail, "%.255s", x->detail);
        }
    }
    for (int i = 0; i < n && !S->stop; i++) {
        cand *x = &S->c[ids[i]];
        mct_search_stats *st = S->st;
        x->measured = 1;
        x->status = got[i].status;
        x->lat = x->status == MCT_MEAS_OK && got[i].latency_s > 0 ? got[i].latency_s : -1;
        if (x->lat < 0 && x->status == MCT_MEAS_OK)
            x->status = MCT_MEAS_CRASH;  /* a record without a time is unusable */
        x->spread = got[i].spread_s;
        x->gflops = x->lat > 0 ? got[i].gflops : 0;
        x->dead = x->status != MCT_MEAS_OK;
        st->samples++;
        if (reused[i])
            st->reused++;
        else
            st->measured++;
        if (x->status != MCT_MEAS_OK)
            st->failed++;
        if (x->status == MCT_MEAS_COMPILE_ERROR && !reused[i] && !o->evaluate &&
            !dot_refused(S, x->s, NULL, 0)) {
            /* every schedule here passed the legality checks, so this is the emitter's fault */
            char wl[256], sc[4096];
            st->codegen_bugs++;
            mct_wl_format(S->w, wl, sizeof wl);
            mct_sched_format(x->s, sc, sizeof sc);
            note_at(S, 1, "code generator bug: a legal schedule did not compile (please report it with "
                 "this line): workload %s; schedule %.600s; compiler: %.200s", wl, sc,
                 got[i].detail);
        }
        if (x->lat > 0 && !(S->ref_lat > 0))
            S->ref_lat = x->lat;
        char text[4096];
        mct_sched_format(x->s, text, sizeof text);
        if (x->lat > 0 && (st->best_latency_s < 0 || x->lat < st->best_latency_s)) {
            st->best_latency_s = x->lat;
            st->best_gflops = x->gflops;
            st->best_index = st->samples;
            snprintf(st->best_schedule, sizeof st->best_schedule, "%s", text);
        }
        double sp = speedup_of(S, x);
        if (sp > S->best_speedup)
            S->best_speedup = sp;
        /* a shared model trained on the database holds the trials lookup finds already */
        if (S->model && (!reused[i] || S->own)) {
            mct_target t = S->tgt;
            t.threads = o->threads > 0 ? o->threads : 1;
            if (mct_costmodel_add(S->model, x->s, &t, x->gflops) == 0)
                S->model_dirty = 1;
        }
        if (o->on_sample) {
            mct_search_sample smp = {0};
            smp.index = st->samples;
            smp.node = ids[i];
            smp.parent = x->parent;
            smp.sched = x->s;
            smp.schedule = text;
            mct_sched_hash(x->s, smp.hash);
            smp.applied = x->applied;
            smp.status = x->status;
            smp.detail = got[i].detail;
            smp.latency_s = x->lat;
            smp.spread_s = x->spread;
            smp.gflops = x->gflops;
            smp.best_gflops = st->best_gflops;
            smp.reused = reused[i];
            smp.res = reused[i] || o->evaluate ? NULL : &res[slot[i]];
            int cr = o->on_sample(o->ctx, &smp);
            if (cr)
                S->stop = cr;
        }
    }
fail:
    free(got);
    free(reused);
    free(mc);
    free(res);
    free(slot);
    if (r && !S->stop)
        S->stop = r;
    return S->stop;
}

/* The untuned schedule (sample 1) and the seeds. */
static int start(srch *S)
{
    mct_sched *s;
    int r = mct_sched_create(S->w, &s);
    if (r)
        return r;
    int id = add_cand(S, s, -1, "untuned");
    if (id < 0)
        return MCT_ENOMEM;
    if ((r = measure(S, &id, 1, 1)))
        return r;
    S->st->base_latency_s = S->c[0].lat;
    S->c[0].visits = 1;
    S->c[0].value = speedup_of(S, &S->c[0]);
    int ids[16], n = 0;
    for (int i = 0; i < S->o->nseeds && n < 16; i++) {
        char why[256];
        if (S->st->samples + n >= S->budget)
            break;
        if (mct_sched_parse(S->w, S->o->seeds[i], &s, why, sizeof why)) {
            note(S, "seed '%s' dropped: %s", S->o->seeds[i], why);
            continue;
        }
        int k = add_cand(S, s, 0, S->o->seeds[i]);
        if (k < -1)
            return MCT_ENOMEM;
        if (k >= 0)
            ids[n++] = k;
    }
    if (n && (r = measure(S, ids, n, 0)))
        return r;
    for (int i = 0; i < n; i++) {
        cand *x = &S->c[ids[i]];
        x->visits = 1;
        x->value = speedup_of(S, x);
        S->c[0].visits++;
        S->c[0].value += x->value;
    }
    return 0;
}

/* the cost model ---------------------------------------------------------------------------- */

static mct_target model_target(const srch *S)
{
    mct_target t = S->tgt;
    t.threads = S->o->threads > 0 ? S->o->threads : 1;
    return t;
}

/* Retrains after new samples; a failure is a note, and the search goes on with the old model. */
static void model_train(srch *S)
{
    if (!S->model || !S->model_dirty)
        return;
    char e[512] = "";
    S->model_dirty = 0;
    if (mct_costmodel_train(S->model, e, sizeof e)) {
        S->st->model_failures++;
        note(S, "%s", e);
    }
}

/* Scores of n schedules (higher: predicted faster); 0 each after a failure (noted). */
static void model_score(srch *S, const mct_sched *const *s, int n, double *out)
{
    char e[512] = "";
    mct_target t = model_target(S);
    if (mct_costmodel_predict(S->model, s, n, &t, out, e, sizeof e)) {
        S->st->model_failures++;
        note(S, "%s", e);
        for (int i = 0; i < n; i++)
            out[i] = 0;
    }
}

/* mcts ------------------------------------------------------------------------------------ */

static void guide_node(srch *S, int id, mct_guide_node *g)
{
    cand *x = &S->c[id];
    g->sched = x->s;
    g->trace = x->trace;
    g->latency_s = x->lat;
    g->gflops = x->gflops;
    g->visits = x->visits;
    g->spread_s = x->spread;
    g->applied = x->parent >= 0 ? x->applied : NULL;
    g->status = x->status;
}

/* Keeps a refused proposal and its reason on the node for the guide's next look at it; the
 * oldest goes when the ring is full (no memory: the note is lost, the search goes on). */
static void keep_reject(cand *x, const char *text, const char *why)
{
    size_t a = strlen(text), b = strlen(why);
    char *e = malloc(a + b + 2);
    if (!e)
        return;
    memcpy(e, text, a + 1);
    memcpy(e + a + 1, why, b + 1);
    int slot = x->nrej % MCT_GUIDE_MAX_REJECT;
    free(x->rej[slot]);
    x->rej[slot] = e;
    x->nrej++;
}

static int kid_limit(srch *S, int id, int branching)
{
    /* the root also holds the seeds */
    return id == 0 ? branching + S->o->nseeds : branching;
}

/* rank: a legal proposal c is held for ranking unless it duplicates a candidate or one held
 * already (then it is destroyed and 1 returned). */
static int hold(srch *S, mct_sched *c, char *prop, mct_sched **held, char **heldp, int *nheld)
{
    uint8_t h[16], g[16];
    mct_sched_hash(c, h);
    int dup = hhas(S, h);
    for (int i = 0; i < *nheld && !dup; i++) {
        mct_sched_hash(held[i], g);
        dup = !memcmp(g, h, 16);
    }
    if (dup) {
        S->st->duplicates++;
        mct_sched_destroy(c);
        return 1;
    }
    held[*nheld] = c;
    heldp[*nheld] = prop;
    (*nheld)++;
    return 0;
}

/* Adds the `want` held schedules the model scores best as children of id (in the guide's order
 * among equals), destroys the rest; returns the number of ids written. */
static int keep_ranked(srch *S, int id, mct_sched **held, char **heldp, int nheld, int want,
                       int *ids)
{
    double sc[64];
    int ord[64], n = 0;
    model_score(S, (const mct_sched *const *)held, nheld, sc);
    for (int i = 0; i < nheld; i++)
        ord[i] = i;
    for (int i = 1; i < nheld; i++)  /* stable: insertion sort, best first */
        for (int j = i; j > 0 && sc[ord[j]] > sc[ord[j - 1]]; j--) {
            int t = ord[j];
            ord[j] = ord[j - 1];
            ord[j - 1] = t;
        }
    for (int q = 0; q < nheld; q++) {
        int i = ord[q];
        if (n >= want || !held[i]) {
            S->st->ranked_out++;
            note(S, "node %d: proposal '%s' ranked out by the cost model (score %.4g)", id,
                 heldp[i], sc[i]);
            mct_sched_destroy(held[i]);
            continue;
        }
        int k = add_cand(S, held[i], id, heldp[i]);
        if (k >= 0)
            ids[n++] = k;
    }
    return n;
}

/* rollout: the estimated speedup of child k of a measured node p, from the best model score
 * along `rollout` random mutations of it against p's score, times p's measured speedup (so it
 * is on the rewards' scale whatever the model's). */
static double rollout_estimate(srch *S, int p, int k)
{
    int depth = S->o->rollout < 16 ? S->o->rollout : 16;
    const mct_sched *path[18];
    mct_sched *own[17] = {0};
    double sc[18];
    int n = 0;
    path[n++] = S->c[p].s;
    path[n++] = S->c[k].s;
    mct_sched *cur = NULL;
    if (mct_sched_clone(S->c[k].s, &cur) == 0) {
        for (int d = 0; d < depth; d++) {
            if (mct_sched_mutate(cur, &S->rng, S->tgt.vlen, NULL, 0))
                break;
            if (mct_sched_clone(cur, &own[d]))
                break;
            path[n++] = own[d];
        }
        mct_sched_destroy(cur);
    }
    model_score(S, path, n, sc);
    double best = sc[1];
    for (int i = 2; i < n; i++)
        if (sc[i] > best)
            best = sc[i];
    for (int d = 0; d < 17; d++)
        mct_sched_destroy(own[d]);
    double base = sc[0] > 1e-6 ? sc[0] : 1e-6, sp = speedup_of(S, &S->c[p]);
    return sp * (best > 1e-6 ? best : 1e-6) / base;
}

static int estimate_kids(srch *S, int id, const int *ids, int n, int *made)
{
    for (int i = 0; i < n; i++) {
        cand *k = &S->c[ids[i]];
        k->est = rollout_estimate(S, id, ids[i]);
        k->estimated = 1;
        S->st->estimates++;
        for (int a = ids[i]; a >= 0; a = S->c[a].parent) {
            S->c[a].visits++;
            S->c[a].value += k->est;
        }
        (*made)++;
    }
    return 0;
}

/* rollout: selection reached a node that holds an estimate: measure it (one sample), and its
 * measured speedup replaces the estimate in every ancestor. */
static int measure_estimated(srch *S, int id)
{
    int r = measure(S, &id, 1, 0);
    model_train(S);
    cand *x = &S->c[id];
    if (!x->measured)
        return r;
    double d = speedup_of(S, x) - x->est;
    x->estimated = 0;
    for (int a = id; a >= 0; a = S->c[a].parent)
        S->c[a].value += d;
    return r;
}

static int expand(srch *S, int id, int branching, int *made)
{
    const mct_search_opts *o = S->o;
    cand *x = &S->c[id];
    int want = kid_limit(S, id, branching) - x->nkids;
    if (want > S->budget - S->st->samples)
        want = S->budget - S->st->samples;
    if (want > 64)
        want = 64;
    *made = 0;
    if (want <= 0)
        return 0;
    S->st->expansions++;
    mct_guide_node gn = {0}, gp = {0}, gg = {0};
    guide_node(S, id, &gn);
    mct_guide_ctx ctx = {0};
    ctx.w = S->w;
    ctx.cpu = S->cpu;
    ctx.target = &S->tgt;
    ctx.threads = o->threads > 0 ? o->threads : 1;
    ctx.node = &gn;
    if (x->parent >= 0) {
        guide_node(S, x->parent, &gp);
        ctx.parent = &gp;
        if (S->c[x->parent].parent >= 0) {
            guide_node(S, S->c[x->parent].parent, &gg);
            ctx.grand = &gg;
        }
    }
    ctx.base_latency_s = S->ref_lat;
    mct_guide_node kids[MCT_GUIDE_MAX_KIDS];
    mct_guide_reject rej[MCT_GUIDE_MAX_REJECT];
    for (int q = x->nkids > MCT_GUIDE_MAX_KIDS ? x->nkids - MCT_GUIDE_MAX_KIDS : 0;
         q < x->nkids; q++)
        guide_node(S, x->kids[q], &kids[ctx.nkids++]);
    ctx.kids = kids;
    int nr = x->nrej < MCT_GUIDE_MAX_REJECT ? x->nrej : MCT_GUIDE_MAX_REJECT;
    for (int q = 0; q < nr; q++) {
        const char *e = x->rej[(x->nrej - nr + q) % MCT_GUIDE_MAX_REJECT];
        rej[q] = (mct_guide_reject){e, e + strlen(e) + 1};
    }
    ctx.rejected = rej;
    ctx.nrejected = nr;
    /* with rank, the model picks the `want` best of more proposals */
    int rank = S->model && o->rank > 1 ? o->rank : 1;
    int cap = want * rank < 64 ? want * rank : 64;
    mct_sched *held[64];
    char *heldp[64];
    int nheld = 0;
    ctx.want = cap;
    ctx.rng = &S->rng;
    char *props[64] = {0};
    int np = 0;
    char gerr[512] = "";
    int gr = mct_guide_propose(o->guide, &ctx, props, &np, gerr, sizeof gerr);
    if (gr)
        note(S, "guide %s failed at node %d: %s (%s)", mct_guide_name(o->guide), id,
             mct_strerror(gr), gerr);
    if (np > 64)
        np = 64;
    int ids[64], n = 0;
    for (int i = 0; i < np; i++) {
        if (!props[i] || n + nheld >= cap || (rank == 1 && n >= want))
            continue;
        mct_sched *c;
        char why[256] = "";
        if (mct_sched_clone(S->c[id].s, &c))
            break;
        int ar = mct_sched_apply(c, props[i], why, sizeof why);
        if (!ar && dot_refused(S, c, why, sizeof why))
            ar = MCT_ENOTAPPLIC;
        if (ar) {
            S->st->invalid++;
            note(S, "node %d: proposal '%s' dropped: %s", id, props[i], why);
            keep_reject(&S->c[id], props[i], why);
            mct_sched_destroy(c);
            continue;
        }
        if (rank > 1) {
            if (hold(S, c, props[i], held, heldp, &nheld))
                note(S, "node %d: proposal '%s' dropped: duplicate of a measured schedule", id,
                     props[i]);
            continue;
        }
        int k = add_cand(S, c, id, props[i]);
        if (k < -1)
            break;
        if (k == -1) {
            note(S, "node %d: proposal '%s' dropped: duplicate of a measured schedule", id,
                 props[i]);
            keep_reject(&S->c[id], props[i], "it builds a program already in the search tree "
                        "(measured once, never twice)");
        } else
            ids[n++] = k;
    }
    if (nheld)
        n = keep_ranked(S, id, held, heldp, nheld, want, ids);
    for (int i = 0; i < np; i++)
        free(props[i]);
    if (n == 0) {
        /* no new legal child from the guide: one random legal mutation instead */
        for (int t = 0; t < 16 && n == 0; t++) {
            mct_sched *c;
            char what[256], ap[300];
            if (mct_sched_clone(S->c[id].s, &c))
                break;
            if (mct_sched_mutate(c, &S->rng, S->tgt.vlen, what, sizeof what)) {
                mct_sched_destroy(c);
                break;
            }
            snprintf(ap, sizeof ap, "fallback: %s", what);
            int k = add_cand(S, c, id, ap);
            if (k < -1)
                break;
            if (k >= 0) {
                ids[n++] = k;
                S->st->fallbacks++;
                note(S, "node %d: fallback to a random mutation: %s", id, what);
            }
        }
    }
    if (n == 0) {
        S->c[id].exhausted = 1;
        return 0;
    }
    if (S->model && o->rollout > 0)
        return estimate_kids(S, id, ids, n, made);
    int r = measure(S, ids, n, 0);
    model_train(S);
    for (int i = 0; i < n; i++) {
        cand *k = &S->c[ids[i]];
        if (!k->measured)
            continue;
        double sp = speedup_of(S, k);
        for (int a = ids[i]; a >= 0; a = S->c[a].parent) {
            S->c[a].visits++;
            S->c[a].value += sp;
        }
        (*made)++;
    }
    return r;
}

static int run_mcts(srch *S)
{
    int branching = S->o->branching > 0 ? S->o->branching : 2;
    double cu = S->o->c > 0 ? S->o->c : sqrt(2.0);
    long guard = 0, max_guard = (long)S->budget * 50 + 200;
    while (S->st->samples < S->budget && !S->stop && guard++ < max_guard) {
        int sel = 0;
        for (;;) {
            cand *x = &S->c[sel];
            if (!x->exhausted && x->nkids < kid_limit(S, sel, branching))
                break;
            int best = -1;
            double bv = -1;
            for (int q = 0; q < x->nkids; q++) {
                cand *k = &S->c[x->kids[q]];
                if (k->dead || k->visits == 0)
                    continue;
                double qv = S->best_speedup > 0 ? k->value / k->visits / S->best_speedup : 0;
                double u = qv + cu * sqrt(log((double)x->visits) / k->visits);
                if (u > bv) {
                    bv = u;
                    best = x->kids[q];
                }
            }
            if (best < 0) {
                x->dead = 1;
                sel = -1;
                break;
            }
            sel = best;
        }
        if (sel < 0) {
            if (S->c[0].dead)
                break;  /* the whole space reachable from here is measured */
            continue;
        }
        int made, r;
        if (S->c[sel].estimated) {
            if ((r = measure_estimated(S, sel)))
                return r;
            continue;
        }
        r = expand(S, sel, branching, &made);
        if (r)
            return r;
    }
    return S->stop;
}

/* evolutionary ---------------------------------------------------------------------------- */

static int by_lat(const void *a, const void *b, void *ctx)
{
    const cand *c = ctx;
    double x = c[*(const int *)a].lat, y = c[*(const int *)b].lat;
    if (x < y)
        return -1;
    if (x > y)
        return 1;
    return *(const int *)a - *(const int *)b;
}

/* Tiles of a, everything else of b: a new schedule or NULL when the mix is illegal. */
static mct_sched *crossover(srch *S, const mct_sched *a, const mct_sched *b)
{
    char ta[4096], tb[4096], out[8192];
    mct_sched_format(a, ta, sizeof ta);
    mct_sched_format(b, tb, sizeof tb);
    size_t n = 0;
    out[0] = 0;
    for (int pass = 0; pass < 2; pass++) {
        char *src = pass ? tb : ta, *save = NULL;
        for (char *t = strtok_r(src, ";", &save); t; t = strtok_r(NULL, ";", &save)) {
            while (*t == ' ')
                t++;
            int tile = !strncmp(t, "tile(", 5);
            if (tile != !pass || !*t)
                continue;
            n += (size_t)snprintf(out + n, sizeof out - n, "%s%s", n ? "; " : "", t);
            if (n >= sizeof out)
                return NULL;
        }
    }
    mct_sched *s;
    if (mct_sched_parse(S->w, out, &s, NULL, 0))
        return NULL;
    return s;
}

static int pick_parent(srch *S, const int *pool, int np)
{
    double tot = 0;
    for (int i = 0; i < np; i++)
        tot += S->c[pool[i]].gflops;
    double u = unif(&S->rng) * tot;
    for (int i = 0; i < np; i++) {
        u -= S->c[pool[i]].gflops;
        if (u <= 0)
            return pool[i];
    }
    return pool[np - 1];
}

static int run_random_batch(srch *S, int want, int parent_none)
{
    int ids[64], n = 0;
    if (want > 64)
        want = 64;
    for (int t = 0; t < want * 20 && n < want; t++) {
        mct_sched *s;
        if (mct_sched_random(S->w, &S->rng, S->tgt.vlen, &s))
            return MCT_ENOMEM;
        int k = add_cand(S, s, parent_none, "random");
        if (k < -1)
            return MCT_ENOMEM;
        if (k >= 0)
            ids[n++] = k;
    }
    if (n == 0)
        return 1;   /* nothing new found */
    return measure(S, ids, n, 0);
}

static int run_evo_measured(srch *S)
{
    const mct_search_opts *o = S->o;
    int pop = o->population > 0 ? o->population : 64;
    int gen = o->generation > 0 ? o->generation : 16;
    double eps = o->epsilon > 0 ? o->epsilon : 0.05;
    int init = pop / 4 > 8 ? pop / 4 : 8;
    if (init > S->budget - S->st->samples)
        init = S->budget - S->st->samples;
    if (init > 0) {
        int r = run_random_batch(S, init, -1);
        if (r < 0 || S->stop)
            return r < 0 ? r : S->stop;
    }
    int *pool = NULL;
    int stale = 0, r = 0;
    while (S->st->samples < S->budget && !S->stop && stale < 20) {
        int np = 0;
        int *np_ = realloc(pool, (size_t)(S->n + 1) * sizeof *pool);
        if (!np_) {
            r = MCT_ENOMEM;
            goto fail;
        }
        pool = np_;
        for (int i = 0; i < S->n; i++)
            if (S->c[i].measured && S->c[i].lat > 0)
                pool[np++] = i;
        qsort_r(pool, (size_t)np, sizeof *pool, by_lat, S->c);
        if (np > pop)
            np = pop;
        int want = gen < S->budget - S->st->samples ? gen : S->budget - S->st->samples;
        int ids[256], n = 0;
        if (want > 256)
            want = 256;
        for (int t = 0; t < want * 20 && n < want; t++) {
            mct_sched *c = NULL;
            char desc[512];
            int parent = -1;
            if (np == 0 || unif(&S->rng) < eps) {
                if (mct_sched_random(S->w, &S->rng, S->tgt.vlen, &c)) {
                    r = MCT_ENOMEM;
                    goto fail;
                }
                snprintf(desc, sizeof desc, "random");
            } else {
                parent = pick_parent(S, pool, np);
                int dn = 0;
                desc[0] = 0;
                if (np > 1 && unif(&S->rng) < 0.15) {
                    int other = pick_parent(S, pool, np);
                    if (other != parent && (c = crossover(S, S->c[parent].s, S->c[other].s)))
                        dn += snprintf(desc, sizeof desc, "crossover(tiles of %d, rest of %d)",
                                       parent, other);
                }
                if (!c && mct_sched_clone(S->c[parent].s, &c)) {
                    r = MCT_ENOMEM;
                    goto fail;
                }
                int muts = 1 + (int)(rnd(&S->rng) % 3);
                for (int m = 0; m < muts; m++) {
                    char what[256];
                    if (mct_sched_mutate(c, &S->rng, S->tgt.vlen, what, sizeof what))
                        break;
                    dn += snprintf(desc + dn, sizeof desc - (size_t)(dn < 511 ? dn : 511),
                                   "%s%s", dn ? "; " : "", what);
                    if (dn >= (int)sizeof desc)
                        dn = (int)sizeof desc - 1;
                }
            }
            int k = add_cand(S, c, parent, desc);
            if (k < -1) {
                r = MCT_ENOMEM;
                goto fail;
            }
            if (k >= 0)
                ids[n++] = k;
        }
        if (n == 0) {
            stale++;
            continue;
        }
        stale = 0;
        if ((r = measure(S, ids, n, 0)))
            goto fail;
    }
fail:
    free(pool);
    return r ? r : S->stop;
}

/* evolutionary inside the cost model ---------------------------------------------------------- */

/* The best unmeasured schedules a round has seen, by score, distinct by hash. */
typedef struct topk {
    int n, cap;
    mct_sched **s;
    double *sc;
    uint8_t (*h)[16];
} topk;

/* Offers a copy of s with score sc; keeps it when it is among the best cap not measured. */
static int top_offer(srch *S, topk *t, const mct_sched *s, double sc)
{
    uint8_t h[16];
    if (t->n == t->cap && !(sc > t->sc[t->n - 1]))
        return 0;
    mct_sched_hash(s, h);
    if (hhas(S, h))
        return 0;
    for (int i = 0; i < t->n; i++)
        if (!memcmp(t->h[i], h, 16))
            return 0;
    mct_sched *c;
    if (mct_sched_clone(s, &c))
        return MCT_ENOMEM;
    if (t->n == t->cap)
        mct_sched_destroy(t->s[--t->n]);
    int at = t->n;
    while (at > 0 && sc > t->sc[at - 1])
        at--;
    memmove(t->s + at + 1, t->s + at, (size_t)(t->n - at) * sizeof *t->s);
    memmove(t->sc + at + 1, t->sc + at, (size_t)(t->n - at) * sizeof *t->sc);
    memmove(t->h + at + 1, t->h + at, (size_t)(t->n - at) * sizeof *t->h);
    t->s[at] = c;
    t->sc[at] = sc;
    memcpy(t->h[at], h, 16);
    t->n++;
    return 0;
}

/* Picks an index of pop with probability proportional to its score (shifted above 0). */
static int pick_scored(srch *S, const double *sc, int n, double lo, double tot)
{
    double u = unif(&S->rng) * tot;
    for (int i = 0; i < n; i++) {
        u -= sc[i] - lo;
        if (u <= 0)
            return i;
    }
    return n - 1;
}

static void free_pop(mct_sched **p, int n)
{
    for (int i = 0; i < n; i++)
        mct_sched_destroy(p[i]);
}

/* One round: breeds inside the model and measures its best `want` (epsilon of them random). */
static int evo_round(srch *S, int pop, int want, double eps, int round)
{
    enum { ITERS = 4 };  /* MetaSchedule's genetic_num_iters */
    mct_sched **P = calloc((size_t)pop, sizeof *P), **Q = calloc((size_t)pop, sizeof *Q);
    mct_sched **R = calloc((size_t)pop, sizeof *R);   /* the random part, for epsilon */
    double *sc = calloc((size_t)pop, sizeof *sc);
    int *ord = calloc((size_t)S->n + 1, sizeof *ord);
    topk T = {0, want, calloc((size_t)want, sizeof(mct_sched *)),
              calloc((size_t)want, sizeof(double)), calloc((size_t)want, 16)};
    int np = 0, nr = 0, r = 0, n = 0, ids[256];
    if (!P || !Q || !R || !sc || !ord || !T.s || !T.sc || !T.h) {
        r = MCT_ENOMEM;
        goto fail;
    }
    /* initial population: the best measured (up to a fifth), then random schedules */
    int nm = 0;
    for (int i = 0; i < S->n; i++)
        if (S->c[i].measured && S->c[i].lat > 0)
            ord[nm++] = i;
    qsort_r(ord, (size_t)nm, sizeof *ord, by_lat, S->c);
    for (int i = 0; i < nm && np < pop / 5; i++)
        if (mct_sched_clone(S->c[ord[i]].s, &P[np]) == 0)
            np++;
    for (int t = 0; t < pop * 2 && np < pop; t++) {
        mct_sched *x;
        if (mct_sched_random(S->w, &S->rng, S->tgt.vlen, &x)) {
            r = MCT_ENOMEM;
            goto fail;
        }
        if (mct_sched_clone(x, &R[nr]) == 0)
            nr++;
        P[np++] = x;
    }
    for (int g = 0; g <= ITERS && !r; g++) {
        model_score(S, (const mct_sched *const *)P, np, sc);
        double lo = sc[0], hi = sc[0], tot = 0;
        for (int i = 0; i < np; i++) {
            if (sc[i] < lo)
                lo = sc[i];
            if (sc[i] > hi)
                hi = sc[i];
            if ((r = top_offer(S, &T, P[i], sc[i])))
                goto fail;
        }
        if (g == ITERS)
            break;
        /* a floor above the worst keeps every member a possible parent */
        lo -= (hi - lo) * 0.05 + 1e-9;
        for (int i = 0; i < np; i++)
            tot += sc[i] - lo;
        int nq = 0;
        for (int c = 0; c < pop; c++) {
            int a = pick_scored(S, sc, np, lo, tot);
            mct_sched *x = NULL;
            if (np > 1 && unif(&S->rng) < 0.15) {
                int b = pick_scored(S, sc, np, lo, tot);
                if (b != a)
                    x = crossover(S, P[a], P[b]);
            }
            if (!x && mct_sched_clone(P[a], &x)) {
                r = MCT_ENOMEM;
                break;
            }
            /* mutated with MetaSchedule's genetic_mutate_prob, else the parent's copy (as is a
             * child whose mutation finds nothing) */
            if (unif(&S->rng) < 0.85)
                mct_sched_mutate(x, &S->rng, S->tgt.vlen, NULL, 0);
            Q[nq++] = x;
        }
        free_pop(P, np);
        memcpy(P, Q, (size_t)nq * sizeof *P);
        np = nq;
    }
    if (r)
        goto fail;
    /* the measured slots: the model's best, each one with probability eps a random schedule */
    int ti = 0, ri = 0;
    while (n < want && (ti < T.n || ri < nr)) {
        int rand_pick = ri < nr && (ti >= T.n || unif(&S->rng) < eps);
        mct_sched *x = NULL;
        char desc[96];
        if (rand_pick) {
            x = R[ri];
            R[ri++] = NULL;
            snprintf(desc, sizeof desc, "round %d: random (epsilon)", round);
        } else {
            x = T.s[ti];
            T.s[ti] = NULL;
            snprintf(desc, sizeof desc, "round %d: evolved, predicted %.4g", round, T.sc[ti]);
            ti++;
        }
        int k = add_cand(S, x, -1, desc);
        if (k < -1) {
            r = MCT_ENOMEM;
            goto fail;
        }
        if (k >= 0)
            ids[n++] = k;
    }
    if (n && (r = measure(S, ids, n, 0)))
        goto fail;
    model_train(S);
    r = n ? 0 : 1;
fail:
    if (P)
        free_pop(P, np);
    if (R)
        free_pop(R, nr);
    if (T.s)
        free_pop(T.s, T.n);
    free(P);
    free(Q);
    free(R);
    free(sc);
    free(ord);
    free(T.s);
    free(T.sc);
    free(T.h);
    return r;
}

static int run_evo(srch *S)
{
    const mct_search_opts *o = S->o;
    int pop = o->population > 0 ? o->population : 2048;
    int k = o->generation > 0 ? o->generation : 64;
    double eps = o->epsilon > 0 ? o->epsilon : 0.05;
    if (k > 256)
        k = 256;
    int stale = 0;
    while (S->st->samples < S->budget && !S->stop && stale < 3) {
        int want = k < S->budget - S->st->samples ? k : S->budget - S->st->samples;
        S->st->rounds++;
        int r = evo_round(S, pop, want, eps, S->st->rounds);
        if (r < 0 || S->stop)
            return r < 0 ? r : S->stop;
        stale = r == 1 ? stale + 1 : 0;
    }
    return S->stop;
}

static int run_random(srch *S)
{
    while (S->st->samples < S->budget && !S->stop) {
        int want = S->budget - S->st->samples < 8 ? S->budget - S->st->samples : 8;
        int r = run_random_batch(S, want, -1);
        if (r == 1)
            break;  /* the random draws keep hitting measured schedules */
        if (r)
            return r;
    }
    return S->stop;
}

int mct_search_run(const mct_workload *w, const mct_search_opts *o, mct_search_stats *stats,
                   char *err, size_t errlen)
{
    mct_search_stats local;
    char lerr[8];
    if (!stats)
        stats = &local;
    if (!err || !errlen) {
        err = lerr;
        errlen = sizeof lerr;
    }
    memset(stats, 0, sizeof *stats);
    stats->base_latency_s = -1;
    stats->best_latency_s = -1;
    err[0] = 0;
    if (!w || !o || (unsigned)o->kind >= MCT_SEARCH_NKINDS) {
        snprintf(err, errlen, "search: bad arguments (workload and options are required)");
        return MCT_EINVAL;
    }
    if (o->kind == MCT_SEARCH_MCTS && !o->guide) {
        snprintf(err, errlen, "search mcts: no guide given (use heuristic, random or llm)");
        return MCT_EINVAL;
    }
    if (!o->evaluate && !o->meas) {
        snprintf(err, errlen, "search: no measurement harness given");
        return MCT_EINVAL;
    }
    if (o->budget < 0) {
        snprintf(err, errlen, "search: budget %d is negative; give a number of samples >= 1",
                 o->budget);
        return MCT_EINVAL;
    }
    srch S;
    memset(&S, 0, sizeof S);
    S.w = w;
    S.o = o;
    S.tgt = o->target.vlen > 0 ? o->target : mct_target_host();
    S.cpu = o->cpu ? o->cpu : mct_cpu_host();
    /* the strategy is mixed in so that strategies given one seed do not share their draws
     * (evolutionary-measured draws as the measured evolutionary search always did) */
    int mixk = o->kind == MCT_SEARCH_EVO_MEASURED ? MCT_SEARCH_EVO : o->kind;
    S.rng = (o->seed ^ 0x6d6374756e65ULL) + 0x9e3779b97f4a7c15ULL * (uint64_t)(mixk + 1);
    S.budget = o->budget > 0 ? o->budget : 32;
    S.st = stats;
    S.err = err;
    S.errlen = errlen;
    int r = 0;
    int wants_model = o->kind == MCT_SEARCH_EVO ||
                      (o->kind == MCT_SEARCH_MCTS && (o->model || o->rank > 1 || o->rollout > 0));
    if (wants_model && !(S.model = o->model)) {
        if ((r = mct_costmodel_create(S.cpu, &S.own)))
            return r;
        S.model = S.own;
    }
    r = start(&S);
    if (!r && S.st->samples < S.budget) {
        model_train(&S);
        if (o->kind == MCT_SEARCH_MCTS)
            r = run_mcts(&S);
        else if (o->kind == MCT_SEARCH_EVO)
            r = run_evo(&S);
        else if (o->kind == MCT_SEARCH_EVO_MEASURED)
            r = run_evo_measured(&S);
        else
            r = run_random(&S);
    }
    if (!r)
        r = S.stop;
    for (int i = 0; i < S.n; i++) {
        mct_sched_destroy(S.c[i].s);
        free(S.c[i].applied);
        free(S.c[i].trace);
        free(S.c[i].kids);
        for (int q = 0; q < MCT_GUIDE_MAX_REJECT; q++)
            free(S.c[i].rej[q]);
    }
    free(S.c);
    free(S.hk);
    free(S.hused);
    mct_costmodel_destroy(S.own);
    return r;
}
