/* The store: workloads and the M-family index, trials and best records, the CPU ladder, nearest
 * M, delete, iteration and statistics. */
#include "db/db_int.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- workloads and the M-family index -------------------------------------------------------- */

typedef struct { uint8_t fam[16]; uint8_t m[8]; } fam_key;  /* M big-endian: ordered by M */

static void family_key(const mct_workload *w, fam_key *k)
{
    mct_workload f = *w;
    f.M = 1;
    memset(k, 0, sizeof *k);
    mct_wl_hash(&f, k->fam);
    for (int i = 0; i < 8; i++)
        k->m[i] = (uint8_t)((uint64_t)w->M >> (56 - 8 * i));
}

int db_put_wl_txn(mct_db *db, MDB_txn *t, const char *canon, const uint8_t h[16])
{
    MDB_val k = {16, (void *)h}, v = {strlen(canon), (void *)canon};
    mct_workload w;
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
    if (mct_wl_parse(canon, &w, NULL, 0) < 0)
        return db_fail(db, MCT_EINVAL, "workload '%s' does not parse", canon);
    family_key(&w, &fk);
    MDB_val fk_v = {sizeof fk, &fk}, hv = {16, (void *)h};
    rc = mdb_put(t, db->mfam, &fk_v, &hv, 0);
    return rc ? db_lmdb(db, rc, "storing the M index") : MCT_OK;
}

struct wl_ctx { const char *canon; uint8_t h[16]; };

static int put_wl_fn(mct_db *db, MDB_txn *t, void *p)
{
    struct wl_ctx *c = p;
    return db_put_wl_txn(db, t, c->canon, c->h);
}

int mct_db_put_workload(mct_db *db, const mct_workload *w)
{
    char canon[256], why[256];
    struct wl_ctx c;
    if (mct_wl_check(w, why, sizeof why) < 0)
        return db_fail(db, MCT_EINVAL, "workload: %s", why);
    if (mct_wl_format(w, canon, sizeof canon) < 0)
        return db_fail(db, MCT_ERANGE, "workload text too long");
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

/* ---- trials and best ------------------------------------------------------------------------- */

struct put_ctx {
    mct_db_rec r;
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
    int rc = db_put_wl_txn(db, t, c->r.workload, c->k.wl);
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
        if (rc == MCT_OK && old->median_ns <= c->r.median_ns &&
            !(strcmp(old->schedule, c->r.schedule) == 0 && old->median_ns != c->r.median_ns)) {
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
    rc = db_rec_canon(&c->r, &c->k, c->sched, why, sizeof why);
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
    memset(&k, 0, sizeof k);
    memcpy(k.wl, wl, 16);
    k.cpu = cpu;
    k.threads = (uint32_t)threads;
    if ((rc = db_rbegin(db, &t)) != MCT_OK)
        return rc;
    rc = db_get_rec_txn(db, t, db->best, &k, sizeof k, out);
    db_rend(db, t);
    return rc;
}

int mct_db_get_trial(mct_db *db, const mct_db_rec *key_fields, mct_db_rec *out)
{
    mct_db_rec r = *key_fields;
    mct_db_trial_key tk;
    MDB_txn *t;
    char why[512];
    int rc;
    memset(&tk, 0, sizeof tk);
    if (r.median_ns <= 0)
        r.median_ns = 1;  /* only the key fields matter here */
    if ((rc = db_rec_canon(&r, &tk.k, tk.sched, why, sizeof why)) != MCT_OK)
        return db_fail(db, rc, "%s", why);
    if ((rc = db_rbegin(db, &t)) != MCT_OK)
        return rc;
    rc = db_get_rec_txn(db, t, db->trials, &tk, sizeof tk, out);
    db_rend(db, t);
    return rc;
}

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


int mct_db_get_best_ladder(mct_db *db, const uint8_t wl[16], const mct_cpu *cpu, int threads,
                           mct_db_rec *out, mct_db_rung *rung)
{
    uint64_t key = mct_cpu_key(cpu);
    mct_tier tier = mct_cpu_tier_of(cpu);
    MDB_txn *t = NULL;
    MDB_cursor *cur = NULL;
    mct_db_rec *cand = NULL;
    mct_db_key k;
    int rc, have[2] = {0, 0};
    *rung = MCT_RUNG_NONE;
    rc = mct_db_get_best(db, wl, key, threads, out);
    if (rc != MCT_ENOTFOUND) {
        if (rc == MCT_OK)
            *rung = MCT_RUNG_EXACT;
        return rc;
    }
    cand = malloc(3 * sizeof *cand);  /* [0] vendor+tier, [1] tier, [2] scratch */
    if (!cand)
        return db_fail(db, MCT_ENOMEM, "out of memory");
    if ((rc = db_rbegin(db, &t)) != MCT_OK)
        goto fail;
    if ((rc = mdb_cursor_open(t, db->best, &cur)) != 0) {
        rc = db_lmdb(db, rc, "opening a cursor");
        goto fail;
    }
    memset(&k, 0, sizeof k);
    memcpy(k.wl, wl, 16);
    MDB_val kv = {sizeof k, &k}, v;
    for (rc = mdb_cursor_get(cur, &kv, &v, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(cur, &kv, &v, MDB_NEXT)) {
        mct_db_key ck;
        mct_cpu oc;
        if (kv.mv_size != sizeof ck)
            continue;
        memcpy(&ck, kv.mv_data, sizeof ck);
        if (memcmp(ck.wl, wl, 16))
            break;
        if (ck.threads != (uint32_t)threads || ck.cpu == key)
            continue;
        int e = db_get_cpu_txn(db, t, ck.cpu, &oc);
        if (e == MCT_ENOTFOUND)
            continue;  /* a CPU without a description cannot be placed on the ladder */
        if (e) {
            rc = e;
            goto fail;
        }
        if (mct_cpu_tier_of(&oc) != tier)
            continue;
        if ((e = db_get_rec_txn(db, t, db->best, &ck, sizeof ck, &cand[2])) != MCT_OK) {
            rc = e;
            goto fail;
        }
        int slot = !strcmp(oc.vendor, cpu->vendor) ? 0 : 1;
        for (int s = slot; s < 2; s++)
            if (!have[s] || cand[2].median_ns < cand[s].median_ns) {
                cand[s] = cand[2];
                have[s] = 1;
            }
    }
    if (rc != MDB_NOTFOUND && rc != 0) {
        rc = db_lmdb(db, rc, "scanning best records");
        goto fail;
    }
    rc = MCT_ENOTFOUND;
    for (int s = 0; s < 2; s++)
        if (have[s]) {
            *out = cand[s];
            *rung = s == 0 ? MCT_RUNG_VENDOR_TIER : MCT_RUNG_TIER;
            rc = MCT_OK;
            break;
        }
fail:
    if (cur)
        mdb_cursor_close(cur);
    db_rend(db, t);
    free(cand);
    return rc;
}

int mct_db_get_best_nearest_m(mct_db *db, const mct_workload *w, uint64_t cpu, int threads,
                              mct_db_rec *out)
{
    fam_key fk, lo;
    MDB_txn *t = NULL;
    MDB_cursor *cur = NULL;
    mct_db_key k;
    int64_t best_d = -1, best_m = 0;
    int rc;
    memset(&k, 0, sizeof k);
    mct_wl_hash(w, k.wl);
    k.cpu = cpu;
    k.threads = (uint32_t)threads;
    rc = mct_db_get_best(db, k.wl, cpu, threads, out);
    if (rc != MCT_ENOTFOUND)
        return rc;
    family_key(w, &fk);
    lo = fk;
    memset(lo.m, 0, 8);
    if ((rc = db_rbegin(db, &t)) != MCT_OK)
        return rc;
    if ((rc = mdb_cursor_open(t, db->mfam, &cur)) != 0) {
        rc = db_lmdb(db, rc, "opening a cursor");
        goto fail;
    }
    MDB_val kv = {sizeof lo, &lo}, v, bv;
    mct_db_key bk = k;
    uint8_t best_wl[16];
    for (rc = mdb_cursor_get(cur, &kv, &v, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(cur, &kv, &v, MDB_NEXT)) {
        if (kv.mv_size != sizeof fk || memcmp(kv.mv_data, fk.fam, 16) || v.mv_size != 16)
            break;
        const uint8_t *mb = (const uint8_t *)kv.mv_data + 16;
        uint64_t m = 0;
        for (int i = 0; i < 8; i++)
            m = m << 8 | mb[i];
        memcpy(bk.wl, v.mv_data, 16);
        MDB_val bkv = {sizeof bk, &bk};
        if (mdb_get(t, db->best, &bkv, &bv) != 0)
            continue;
        int64_t d = (int64_t)m > w->M ? (int64_t)m - w->M : w->M - (int64_t)m;
        if (best_d < 0 || d < best_d || (d == best_d && (int64_t)m > best_m)) {
            best_d = d;
            best_m = (int64_t)m;
            memcpy(best_wl, v.mv_data, 16);
        }
    }
    if (rc != MDB_NOTFOUND && rc != 0) {
        rc = db_lmdb(db, rc, "scanning the M index");
        goto fail;
    }
    if (best_d < 0) {
        rc = MCT_ENOTFOUND;
        goto fail;
    }
    memcpy(bk.wl, best_wl, 16);
    rc = db_get_rec_txn(db, t, db->best, &bk, sizeof bk, out);
fail:
    if (cur)
        mdb_cursor_close(cur);
    db_rend(db, t);
    return rc;
}

/* ---- delete, iterate, stats ------------------------------------------------------------------ */

struct del_ctx { uint8_t wl[16]; uint64_t cpu; int threads; int count; };

static int del_fn(mct_db *db, MDB_txn *t, void *p)
{
    struct del_ctx *c = p;
    MDB_dbi dbis[2] = {db->best, db->trials};
    c->count = 0;
    for (int i = 0; i < 2; i++) {
        MDB_cursor *cur;
        mct_db_key k;
        int rc = mdb_cursor_open(t, dbis[i], &cur);
        if (rc)
            return db_lmdb(db, rc, "opening a cursor");
        memset(&k, 0, sizeof k);
        memcpy(k.wl, c->wl, 16);
        MDB_val kv = {sizeof k, &k}, v;
        for (rc = mdb_cursor_get(cur, &kv, &v, MDB_SET_RANGE); rc == 0;
             rc = mdb_cursor_get(cur, &kv, &v, MDB_NEXT)) {
            mct_db_key ck;
            if (kv.mv_size < sizeof ck)
                continue;
            memcpy(&ck, kv.mv_data, sizeof ck);
            if (memcmp(ck.wl, c->wl, 16))
                break;
            if ((c->cpu && ck.cpu != c->cpu) || (c->threads && ck.threads != (uint32_t)c->threads))
                continue;
            if ((rc = mdb_cursor_del(cur, 0)) != 0)
                break;
            c->count++;
        }
        mdb_cursor_close(cur);
        if (rc && rc != MDB_NOTFOUND)
            return db_lmdb(db, rc, "deleting records");
    }
    return MCT_OK;
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
        *count = c.count;
    if (rc == MCT_OK && c.count == 0)
        return MCT_ENOTFOUND;
    return rc;
}

int mct_db_iter(mct_db *db, mct_db_table which, mct_db_rec_fn fn, void *ctx)
{
    MDB_txn *t;
    MDB_cursor *cur = NULL;
    mct_db_rec *r = malloc(sizeof *r);
    int rc;
    if (!r)
        return db_fail(db, MCT_ENOMEM, "out of memory");
    if ((rc = db_rbegin(db, &t)) != MCT_OK) {
        free(r);
        return rc;
    }
    MDB_dbi dbi = which == MCT_DB_TRIALS ? db->trials : db->best;
    if ((rc = mdb_cursor_open(t, dbi, &cur)) != 0) {
        rc = db_lmdb(db, rc, "opening a cursor");
        goto fail;
    }
    MDB_val k, v;
    while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        int e = db_get_rec_txn(db, t, dbi, k.mv_data, k.mv_size, r);
        if (e) {
            rc = e;
            goto fail;
        }
        if ((e = fn(r, ctx)) != 0) {
            rc = e;
            goto fail;
        }
    }
    rc = rc == MDB_NOTFOUND ? MCT_OK : db_lmdb(db, rc, "iterating");
fail:
    if (cur)
        mdb_cursor_close(cur);
    db_rend(db, t);
    free(r);
    return rc;
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
