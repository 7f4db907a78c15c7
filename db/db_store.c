/* The store: workloads and the M-family index, trials and best records, the CPU ladder, nearest
 * M, delete, iteration and statistics. */
#include "db/db_int.h"
#include "runtime/dispatch.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- workloads and the M-family index -------------------------------------------------------- */

typedef struct { uint8_t fam[16]; uint8_t m[8]; } fam_key;  /* M big-endian: ordered by M */

static void family_key(const mct_workload *w, fam_key *k)
{
    memset(k, 0, sizeof *k);
    mct_wl_family_hash(w, k->fam);
    for (int i = 0; i < 8; i++)
        k->m[i] = (uint8_t)((uint64_t)w->M >> (56 - 8 * i));
}

int db_put_wl_txn(mct_db *db, MDB_txn *t, const mct_workload *w, const char *canon,
                  const uint8_t h[16])
{
    MDB_val k = {16, (void *)h}, v = {strlen(canon), (void *)canon};
    fam_key fk;
    int rc = mdb_put(t, db->wls, &k, &v, MDB_NOOVERWRITE);
    if (rc == MDB_KEYEXIST) {
        if (v.mv_size != strlen(canon) || memcmp(v.mv_data, canon, v.mv_size))
            return db_damaged(db, "workload '%s' and stored workload '%.*s' share one hash "
                              "(damage or a hash collision)", canon, (int)v.mv_size,
                              (const char *)v.mv_data);
        return MCT_OK;
    }
    if (rc)
        return db_lmdb(db, rc, "storing a workload");
    family_key(w, &fk);
    MDB_val fk_v = {sizeof fk, &fk}, hv = {16, (void *)h};
    rc = mdb_put(t, db->mfam, &fk_v, &hv, 0);
    return rc ? db_lmdb(db, rc, "storing the M index") : MCT_OK;
}

struct wl_ctx { const mct_workload *w; const char *canon; uint8_t h[16]; };

static int put_wl_fn(mct_db *db, MDB_txn *t, void *p)
{
    struct wl_ctx *c = p;
    return db_put_wl_txn(db, t, c->w, c->canon, c->h);
}

int mct_db_put_workload(mct_db *db, const mct_workload *w)
{
    char canon[256], why[256];
    struct wl_ctx c;
    if (mct_wl_check(w, why, sizeof why) < 0)
        return db_fail(db, MCT_EINVAL, "workload: %s", why);
    if (mct_wl_format(w, canon, sizeof canon) < 0)
        return db_fail(db, MCT_ERANGE, "workload text too long");
    c.w = w;
    c.canon = canon;
    mct_wl_hash(w, c.h);
    return db_write(db, put_wl_fn, &c);
}

int mct_db_get_workload(mct_db *db, const uint8_t wl[16], char *buf, size_t len)
{
    MDB_txn *t;
    MDB_val k = {16, (void *)wl}, v;
    int rc = db_rbegin(db, &t);
    if (rc)
        return rc;
    rc = mdb_get(t, db->wls, &k, &v);
    if (rc == 0) {
        if (v.mv_size >= len)
            rc = db_fail(db, MCT_ERANGE, "workload text of %zu bytes does not fit", v.mv_size);
        else {
            memcpy(buf, v.mv_data, v.mv_size);
            buf[v.mv_size] = 0;
        }
    } else {
        rc = db_lmdb(db, rc, "reading a workload");
    }
    db_rend(db, t);
    return rc;
}

/* ---- keys ------------------------------------------------------------------------------------ */

void mct_db_key_make(const uint8_t wl[16], uint64_t cpu, int threads, mct_db_key *out)
{
    memset(out, 0, sizeof *out);
    memcpy(out->wl, wl, 16);
    out->cpu = cpu;
    out->threads = (uint32_t)threads;
}

/* ---- trials and best ------------------------------------------------------------------------- */

struct put_ctx {
    mct_db_rec r;
    mct_workload w;     /* r.workload, parsed once for the whole put */
    mct_db_key k;
    uint8_t sched[16];
    int best;
    int stored;
};

static int put_json_rec(mct_db *db, MDB_txn *t, MDB_dbi dbi, const void *key, size_t klen,
                        const mct_db_rec *r)
{
    char *json = NULL;
    int rc = db_rec_json(r, NULL, &json);
    if (rc != MCT_OK)
        return db_fail(db, rc, "out of memory");
    MDB_val k = {klen, (void *)key}, v = {strlen(json), json};
    rc = mdb_put(t, dbi, &k, &v, 0);
    free(json);
    return rc ? db_lmdb(db, rc, "storing a record") : MCT_OK;
}

static void copy_measurement(mct_db_rec *dst, const mct_db_rec *src)
{
    dst->median_ns = src->median_ns;
    dst->spread_ns = src->spread_ns;
    dst->gflops = src->gflops;
}

int db_align_best_txn(mct_db *db, MDB_txn *t, const mct_db_trial_key *tk)
{
    mct_db_rec *b = malloc(2 * sizeof *b), *tr = b + 1;
    uint8_t h[16];
    int rc;
    if (!b)
        return db_fail(db, MCT_ENOMEM, "out of memory");
    if ((rc = db_get_rec_txn(db, t, db->trials, tk, sizeof *tk, tr)) != MCT_OK ||
        (rc = db_get_rec_txn(db, t, db->best, &tk->k, sizeof tk->k, b)) != MCT_OK) {
        rc = rc == MCT_ENOTFOUND ? MCT_OK : rc;
        goto fail;
    }
    mct_hash_text(b->schedule, strlen(b->schedule), h);
    if (memcmp(h, tk->sched, 16) || (b->median_ns == tr->median_ns &&
                                     b->spread_ns == tr->spread_ns && b->gflops == tr->gflops))
        goto fail;  /* another schedule's best, or already in line: rc is MCT_OK */
    copy_measurement(b, tr);
    rc = put_json_rec(db, t, db->best, &tk->k, sizeof tk->k, b);
fail:
    free(b);
    return rc;
}

/* What concurrent writers can rely on (each put is one LMDB write transaction, and LMDB
 * serializes those):
 * - a trial is replaced only by a faster measurement of the same schedule;
 * - the best record always equals a stored trial: same schedule, same median. A best whose
 *   schedule has a stored trial takes that trial's measurement; one without gets its trial
 *   written with it; a faster trial of the best's schedule updates the best. */
static int put_rec_fn(mct_db *db, MDB_txn *t, void *p)
{
    struct put_ctx *c = p;
    mct_db_trial_key tk;
    mct_db_rec *old = malloc(2 * sizeof *old), *tr = old + 1;
    int rc = db_put_wl_txn(db, t, &c->w, c->r.workload, c->k.wl);
    c->stored = 0;
    if (!old)
        return db_fail(db, MCT_ENOMEM, "out of memory");
    if (rc)
        goto fail;
    memset(&tk, 0, sizeof tk);
    tk.k = c->k;
    memcpy(tk.sched, c->sched, 16);
    rc = db_get_rec_txn(db, t, db->trials, &tk, sizeof tk, tr);
    if (rc != MCT_OK && rc != MCT_ENOTFOUND && rc != MCT_ECORRUPT)
        goto fail;  /* a damaged old record is replaced by the new one */
    int have_trial = rc == MCT_OK;
    if (c->best) {
        if (have_trial)
            copy_measurement(&c->r, tr);
        rc = db_get_rec_txn(db, t, db->best, &c->k, sizeof c->k, old);
        int same = rc == MCT_OK && strcmp(old->schedule, c->r.schedule) == 0;
        if (same && !(c->r.base_gflops > 0))
            c->r.base_gflops = old->base_gflops;  /* a re-put keeps the measured baseline */
        if (rc == MCT_OK && old->median_ns <= c->r.median_ns &&
            !(same && (old->median_ns != c->r.median_ns ||
                       old->base_gflops != c->r.base_gflops))) {
            rc = MCT_OK;
            goto fail;
        }
        if (rc != MCT_OK && rc != MCT_ENOTFOUND && rc != MCT_ECORRUPT)
            goto fail;
        if (!have_trial) {
            mct_db_rec trial = c->r;
            trial.samples = 1;
            if ((rc = put_json_rec(db, t, db->trials, &tk, sizeof tk, &trial)) != MCT_OK)
                goto fail;
        }
        rc = put_json_rec(db, t, db->best, &c->k, sizeof c->k, &c->r);
    } else {
        if (have_trial && tr->median_ns <= c->r.median_ns) {
            rc = MCT_OK;  /* the stored measurement stays: nothing is measured twice */
            goto fail;
        }
        if ((rc = put_json_rec(db, t, db->trials, &tk, sizeof tk, &c->r)) != MCT_OK)
            goto fail;
        rc = db_get_rec_txn(db, t, db->best, &c->k, sizeof c->k, old);
        if (rc == MCT_OK && !strcmp(old->schedule, c->r.schedule)) {
            copy_measurement(old, &c->r);
            rc = put_json_rec(db, t, db->best, &c->k, sizeof c->k, old);
        } else if (rc == MCT_ENOTFOUND || rc == MCT_OK || rc == MCT_ECORRUPT) {
            rc = MCT_OK;
        }
    }
    if (rc == MCT_OK)
        c->stored = 1;
fail:
    free(old);
    return rc;
}

static int put_rec(mct_db *db, const mct_db_rec *r, int best, int *stored)
{
    struct put_ctx *c = malloc(sizeof *c);
    char why[512];
    int rc;
    if (!c)
        return db_fail(db, MCT_ENOMEM, "out of memory");
    c->r = *r;
    c->best = best;
    c->stored = 0;
    rc = db_rec_canon(&c->r, &c->w, 0, &c->k, c->sched, why, sizeof why);
    if (rc) {
        db_fail(db, rc, "%s", why);
        goto fail;
    }
    rc = db_write(db, put_rec_fn, c);
    if (stored)
        *stored = c->stored;
fail:
    free(c);
    return rc;
}

int mct_db_put_trial(mct_db *db, const mct_db_rec *r) { return put_rec(db, r, 0, NULL); }

int mct_db_put_best(mct_db *db, const mct_db_rec *r, int *stored)
{
    return put_rec(db, r, 1, stored);
}

int mct_db_get_best(mct_db *db, const uint8_t wl[16], uint64_t cpu, int threads,
                    mct_db_rec *out)
{
    mct_db_key k;
    MDB_txn *t;
    int rc;
    mct_db_key_make(wl, cpu, threads, &k);
    if ((rc = db_rbegin(db, &t)) != MCT_OK)
        return rc;
    rc = db_get_rec_txn(db, t, db->best, &k, sizeof k, out);
    db_rend(db, t);
    return rc;
}

int mct_db_get_trial_key(mct_db *db, const mct_db_trial_key *k, mct_db_rec *out)
{
    MDB_txn *t;
    int rc = db_rbegin(db, &t);
    if (rc)
        return rc;
    rc = db_get_rec_txn(db, t, db->trials, k, sizeof *k, out);
    db_rend(db, t);
    return rc;
}

int mct_db_get_trial(mct_db *db, const mct_db_rec *key_fields, mct_db_rec *out)
{
    mct_db_rec r = *key_fields;
    mct_db_trial_key tk;
    mct_workload w;
    char why[512];
    int rc;
    memset(&tk, 0, sizeof tk);
    if (r.median_ns <= 0)
        r.median_ns = 1;  /* only the key fields matter here */
    if ((rc = db_rec_canon(&r, &w, 0, &tk.k, tk.sched, why, sizeof why)) != MCT_OK)
        return db_fail(db, rc, "%s", why);
    return mct_db_get_trial_key(db, &tk, out);
}

static int count_one(mct_db *db, MDB_cursor *cur, const MDB_val *k, const MDB_val *v, void *p)
{
    if (k->mv_size == sizeof(mct_db_trial_key))
        (*(size_t *)p)++;
    return 0;
}

int mct_db_count_trials(mct_db *db, const mct_db_key *k, size_t *n)
{
    MDB_txn *t;
    size_t count = 0;
    int rc = db_rbegin(db, &t);
    *n = 0;
    if (rc)
        return rc;
    rc = db_scan(db, t, db->trials, k, sizeof *k, "counting trials", count_one, &count);
    db_rend(db, t);
    if (rc == MCT_OK)
        *n = count;
    return rc;
}

/* ---- the CPU ladder ---------------------------------------------------------------------------- */

const char *mct_db_rung_name(mct_db_rung r)
{
    switch (r) {
    case MCT_RUNG_EXACT: return "exact";
    case MCT_RUNG_VENDOR_TIER: return "same vendor and tier";
    case MCT_RUNG_TIER: return "same tier";
    case MCT_RUNG_NONE: break;
    }
    return "none";
}

/* The rung of records tuned on CPU (key, vendor, tier) for host, by the runtime's rule
 * (mct_rt_rung_of): a record's code is compiled for the tier of the CPU it was tuned on. */
static mct_db_rung rung_for(const mct_cpu *host, mct_tier host_tier, uint64_t key,
                            const char *vendor, mct_tier tier)
{
    switch (mct_rt_rung_of(host, host_tier, key, vendor, (int)tier, (int)tier)) {
    case MCT_RT_RUNG_EXACT: return MCT_RUNG_EXACT;
    case MCT_RT_RUNG_VENDOR_TIER: return MCT_RUNG_VENDOR_TIER;
    case MCT_RT_RUNG_TIER: return MCT_RUNG_TIER;
    default: return MCT_RUNG_NONE;  /* not usable on this host */
    }
}

struct ladder_ctx {
    const mct_cpu *host;
    mct_tier tier;
    uint64_t key;
    uint32_t threads;
    mct_db_rung rung;       /* of best so far; MCT_RUNG_NONE: none yet */
    mct_db_rec *best, *cand;
};

static int ladder_one(mct_db *db, MDB_cursor *cur, const MDB_val *k, const MDB_val *v, void *p)
{
    struct ladder_ctx *c = p;
    mct_db_key ck;
    mct_cpu oc;
    if (k->mv_size != sizeof ck)
        return 0;
    memcpy(&ck, k->mv_data, sizeof ck);
    if (ck.threads != c->threads || ck.cpu == c->key)
        return 0;
    int rc = db_get_cpu_txn(db, mdb_cursor_txn(cur), ck.cpu, &oc);
    if (rc == MCT_ENOTFOUND)
        return 0;  /* a CPU without a description cannot be placed on the ladder */
    if (rc)
        return rc;
    mct_db_rung r = rung_for(c->host, c->tier, ck.cpu, oc.vendor, mct_cpu_tier_of(&oc));
    if (r == MCT_RUNG_NONE)
        return 0;
    if ((rc = db_decode_rec(db, k->mv_data, k->mv_size, v->mv_data, v->mv_size, c->cand)))
        return rc;
    if (r < c->rung || (r == c->rung && c->cand->median_ns < c->best->median_ns)) {
        *c->best = *c->cand;
        c->rung = r;
    }
    return 0;
}

int mct_db_get_best_ladder(mct_db *db, const uint8_t wl[16], const mct_cpu *cpu, int threads,
                           mct_db_rec *out, mct_db_rung *rung)
{
    struct ladder_ctx c = {cpu, mct_cpu_tier_of(cpu), mct_cpu_key(cpu), (uint32_t)threads,
                           MCT_RUNG_NONE, NULL, NULL};
    MDB_txn *t = NULL;
    mct_db_key k;
    int rc;
    *rung = MCT_RUNG_NONE;
    mct_db_key_make(wl, c.key, threads, &k);
    if ((rc = db_rbegin(db, &t)) != MCT_OK)
        return rc;
    rc = db_get_rec_txn(db, t, db->best, &k, sizeof k, out);
    if (rc != MCT_ENOTFOUND) {  /* the host's own record (or an error) */
        if (rc == MCT_OK)
            *rung = rung_for(cpu, c.tier, c.key, cpu->vendor, c.tier);
        goto fail;
    }
    if (!(c.best = malloc(2 * sizeof *c.best))) {
        rc = db_fail(db, MCT_ENOMEM, "out of memory");
        goto fail;
    }
    c.cand = c.best + 1;
    rc = db_scan(db, t, db->best, wl, 16, "scanning best records", ladder_one, &c);
    if (rc == MCT_OK && c.rung == MCT_RUNG_NONE)
        rc = MCT_ENOTFOUND;
    if (rc == MCT_OK) {
        *out = *c.best;
        *rung = c.rung;
    }
fail:
    db_rend(db, t);
    free(c.best);
    return rc;
}

/* ---- nearest M and the family of a workload -------------------------------------------------- */

/* The workloads of one family in the M index: (wl hash, M) in ascending M. */
typedef int (*fam_fn)(mct_db *db, MDB_txn *t, const uint8_t wl[16], uint64_t m, void *ctx);
struct fam_ctx { fam_fn fn; void *ctx; };

static int fam_one(mct_db *db, MDB_cursor *cur, const MDB_val *k, const MDB_val *v, void *p)
{
    struct fam_ctx *c = p;
    const uint8_t *mb = (const uint8_t *)k->mv_data + 16;
    uint8_t wl[16];
    uint64_t m = 0;
    if (k->mv_size != sizeof(fam_key) || v->mv_size != 16)
        return 0;  /* not an index entry: the index is derived data, its damage costs a hit */
    for (int i = 0; i < 8; i++)
        m = m << 8 | mb[i];
    memcpy(wl, v->mv_data, 16);
    return c->fn(db, mdb_cursor_txn(cur), wl, m, c->ctx);
}

static int fam_scan(mct_db *db, MDB_txn *t, const mct_workload *w, fam_fn fn, void *ctx)
{
    struct fam_ctx c = {fn, ctx};
    uint8_t fam[16];
    mct_wl_family_hash(w, fam);
    return db_scan(db, t, db->mfam, fam, 16, "scanning the M index", fam_one, &c);
}

struct near_ctx {
    mct_db_key k;           /* cpu and threads asked; wl set per candidate */
    long M;                 /* asked */
    int found;
    long best_m;
    uint8_t best_wl[16];
};

static int near_one(mct_db *db, MDB_txn *t, const uint8_t wl[16], uint64_t m, void *p)
{
    struct near_ctx *c = p;
    MDB_val k = {sizeof c->k, &c->k}, v;
    memcpy(c->k.wl, wl, 16);
    if (mdb_get(t, db->best, &k, &v) != 0)
        return 0;  /* not tuned for this CPU and thread count */
    if (!c->found || mct_rt_m_nearer((long)m, c->best_m, c->M)) {
        c->found = 1;
        c->best_m = (long)m;
        memcpy(c->best_wl, wl, 16);
    }
    return 0;
}

int mct_db_get_best_nearest_m(mct_db *db, const mct_workload *w, uint64_t cpu, int threads,
                              mct_db_rec *out)
{
    struct near_ctx c;
    uint8_t wl[16];
    MDB_txn *t;
    int rc;
    memset(&c, 0, sizeof c);
    mct_wl_hash(w, wl);
    mct_db_key_make(wl, cpu, threads, &c.k);
    c.M = w->M;
    if ((rc = db_rbegin(db, &t)) != MCT_OK)
        return rc;
    rc = db_get_rec_txn(db, t, db->best, &c.k, sizeof c.k, out);
    if (rc == MCT_ENOTFOUND && (rc = fam_scan(db, t, w, near_one, &c)) == MCT_OK) {
        memcpy(c.k.wl, c.best_wl, 16);
        rc = c.found ? db_get_rec_txn(db, t, db->best, &c.k, sizeof c.k, out) : MCT_ENOTFOUND;
    }
    db_rend(db, t);
    return rc;
}

/* Decodes each record a scan meets and hands it to the caller's function. */
struct rec_ctx { mct_db_rec *r; mct_db_rec_fn fn; void *ctx; };

static int rec_one(mct_db *db, MDB_cursor *cur, const MDB_val *k, const MDB_val *v, void *p)
{
    struct rec_ctx *c = p;
    int rc = db_decode_rec(db, k->mv_data, k->mv_size, v->mv_data, v->mv_size, c->r);
    return rc ? rc : c->fn(c->r, c->ctx);
}

static int family_one(mct_db *db, MDB_txn *t, const uint8_t wl[16], uint64_t m, void *p)
{
    return db_scan(db, t, db->best, wl, 16, "iterating", rec_one, p);
}

/* Every record of dbi (fam NULL), or every best record of fam's family, to fn inside one read
 * snapshot. */
static int iter_recs(mct_db *db, MDB_dbi dbi, const mct_workload *fam, mct_db_rec_fn fn,
                     void *ctx)
{
    struct rec_ctx c = {malloc(sizeof *c.r), fn, ctx};
    MDB_txn *t;
    int rc;
    if (!c.r)
        return db_fail(db, MCT_ENOMEM, "out of memory");
    if ((rc = db_rbegin(db, &t)) == MCT_OK) {
        rc = fam ? fam_scan(db, t, fam, family_one, &c)
                 : db_scan(db, t, dbi, NULL, 0, "iterating", rec_one, &c);
        db_rend(db, t);
    }
    free(c.r);
    return rc;
}

int mct_db_iter_family(mct_db *db, const mct_workload *w, mct_db_rec_fn fn, void *ctx)
{
    return iter_recs(db, db->best, w, fn, ctx);
}

/* ---- delete, iterate, stats ------------------------------------------------------------------ */

struct del_ctx { uint8_t wl[16]; uint64_t cpu; int threads; int count; };

static int del_one(mct_db *db, MDB_cursor *cur, const MDB_val *k, const MDB_val *v, void *p)
{
    struct del_ctx *c = p;
    mct_db_key ck;
    int rc;
    if (k->mv_size < sizeof ck)
        return 0;
    memcpy(&ck, k->mv_data, sizeof ck);
    if ((c->cpu && ck.cpu != c->cpu) || (c->threads && ck.threads != (uint32_t)c->threads))
        return 0;
    if ((rc = mdb_cursor_del(cur, 0)) != 0)
        return db_lmdb(db, rc, "deleting records");
    c->count++;
    return 0;
}

static int del_fn(mct_db *db, MDB_txn *t, void *p)
{
    struct del_ctx *c = p;
    MDB_dbi dbis[2] = {db->best, db->trials};
    int rc = MCT_OK;
    c->count = 0;
    for (int i = 0; i < 2 && rc == MCT_OK; i++)
        rc = db_scan(db, t, dbis[i], c->wl, 16, "deleting records", del_one, c);
    return rc;
}

int mct_db_delete(mct_db *db, const uint8_t wl[16], uint64_t cpu, int threads, int *count)
{
    struct del_ctx c;
    memcpy(c.wl, wl, 16);
    c.cpu = cpu;
    c.threads = threads;
    c.count = 0;
    int rc = db_write(db, del_fn, &c);
    if (count)
        *count = rc == MCT_OK ? c.count : 0;  /* a failed transaction removed nothing */
    if (rc == MCT_OK && c.count == 0)
        return MCT_ENOTFOUND;
    return rc;
}

int mct_db_iter(mct_db *db, mct_db_table which, mct_db_rec_fn fn, void *ctx)
{
    return iter_recs(db, which == MCT_DB_TRIALS ? db->trials : db->best, NULL, fn, ctx);
}

int mct_db_stats_get(mct_db *db, mct_db_stats *out)
{
    MDB_txn *t;
    MDB_stat s;
    MDB_envinfo info;
    struct stat st;
    int rc;
    memset(out, 0, sizeof *out);
    if ((rc = db_rbegin(db, &t)) != MCT_OK)
        return rc;
    MDB_dbi dbis[5] = {db->cpus, db->wls, db->best, db->trials, db->llm};
    size_t *dst[5] = {&out->cpus, &out->workloads, &out->best, &out->trials, &out->llm};
    for (int i = 0; i < 5; i++) {
        if ((rc = mdb_stat(t, dbis[i], &s)) != 0) {
            rc = db_lmdb(db, rc, "reading statistics");
            goto fail;
        }
        *dst[i] = s.ms_entries;
    }
    mdb_env_info(db->env, &info);
    mdb_env_stat(db->env, &s);
    out->map_bytes = info.me_mapsize;
    out->used_bytes = (uint64_t)(info.me_last_pgno + 1) * s.ms_psize;
    if (stat(db->file, &st) == 0)
        out->file_bytes = (uint64_t)st.st_size;
fail:
    db_rend(db, t);
    return rc;
}
