/* mct_db_check: read every record of a possibly damaged database, report what is damaged and
 * optionally copy the readable records into a new database. */
#include "db/db_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct chk {
    mct_db *src;
    MDB_txn *st;
    mct_db *dst;             /* NULL: check only */
    MDB_txn *dt;
    mct_db_note_fn note;
    void *ctx;
    mct_db_check_report rep;
    size_t notes;
};

static void chk_note(struct chk *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void chk_note(struct chk *c, const char *fmt, ...)
{
    char line[1400];
    va_list ap;
    if (!c->note || c->notes++ >= 200)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    c->note(line, c->ctx);
}

static const char *const tables[5] = {"cpus", "workloads", "best", "trials", "llm"};

/* Decodes one entry into it; 0 or a reason in why. Best records also need a readable trial of
 * their schedule. */
static int decode(struct chk *c, int ti, const MDB_val *k, const MDB_val *v, mct_db_item *it,
                  char *why, size_t n)
{
    mct_db *db = c->src;
    memset(it, 0, sizeof *it);
    if (ti == 0) {
        uint64_t key;
        it->kind = MCT_DB_ITEM_CPU;
        if (k->mv_size != 8)
            return snprintf(why, n, "a key of %zu bytes", k->mv_size), -1;
        memcpy(&key, k->mv_data, 8);
        if (mct_db_cpu_from_json(v->mv_data, v->mv_size, &it->cpu, why, n))
            return -1;
        if (mct_cpu_key(&it->cpu) != key)
            return snprintf(why, n, "stored under another key"), -1;
        return 0;
    }
    if (ti == 1) {
        uint8_t h[16];
        it->kind = MCT_DB_ITEM_WORKLOAD;
        if (k->mv_size != 16 || v->mv_size >= sizeof it->rec.workload)
            return snprintf(why, n, "a %zu-byte key and a %zu-byte text", k->mv_size,
                            v->mv_size), -1;
        memcpy(it->rec.workload, v->mv_data, v->mv_size);
        it->rec.workload[v->mv_size] = 0;
        mct_hash_text(it->rec.workload, v->mv_size, h);
        if (memcmp(h, k->mv_data, 16) || mct_wl_parse(it->rec.workload, &it->wl, NULL, 0) < 0)
            return snprintf(why, n, "workload '%.100s' does not match its key", it->rec.workload),
                   -1;
        it->wl_set = 1;  /* the salvage applies it without parsing again */
        return 0;
    }
    if (ti == 2 || ti == 3) {
        it->kind = ti == 2 ? MCT_DB_ITEM_BEST : MCT_DB_ITEM_TRIAL;
        if (k->mv_size != (ti == 2 ? sizeof(mct_db_key) : sizeof(mct_db_trial_key)))
            return snprintf(why, n, "a key of %zu bytes", k->mv_size), -1;
        if (db_decode_rec(db, k->mv_data, k->mv_size, v->mv_data, v->mv_size, &it->rec)) {
            snprintf(why, n, "%.300s", db->err);
            char *cut = strstr(why, "; the database is damaged");
            if (cut)
                *cut = 0;
            return -1;
        }
        if (mct_wl_parse(it->rec.workload, &it->wl, why, n) < 0 ||
            db_sched_check(&it->wl, it->rec.schedule, why, n))
            return -1;
        it->wl_set = 1;
        if (ti == 3) {
            uint8_t sh[16];
            mct_hash_text(it->rec.schedule, strlen(it->rec.schedule), sh);
            if (memcmp(sh, (const uint8_t *)k->mv_data + sizeof(mct_db_key), 16))
                return snprintf(why, n, "schedule '%.100s' does not match its key",
                                it->rec.schedule), -1;
            return 0;
        }
        mct_db_trial_key tk;
        mct_db_rec *tr = malloc(sizeof *tr);
        int rc;
        if (!tr)
            return snprintf(why, n, "out of memory"), -1;
        memset(&tk, 0, sizeof tk);
        memcpy(&tk.k, k->mv_data, sizeof tk.k);
        mct_hash_text(it->rec.schedule, strlen(it->rec.schedule), tk.sched);
        rc = db_get_rec_txn(db, c->st, db->trials, &tk, sizeof tk, tr);
        free(tr);
        if (rc == MCT_ENOTFOUND) {
            c->rep.best_no_trial++;
            return snprintf(why, n, "no trial of its schedule '%.100s'", it->rec.schedule), -1;
        }
        if (rc)
            return snprintf(why, n, "its trial is unreadable"), -1;
        return 0;
    }
    char *s[4];
    it->kind = MCT_DB_ITEM_LLM;
    if (db_llm_decode(v->mv_data, v->mv_size, s, why, n))
        return -1;
    db_llm_item(it, s);
    return 0;
}

static int walk(struct chk *c)
{
    mct_db *db = c->src;
    MDB_dbi dbis[5] = {db->cpus, db->wls, db->best, db->trials, db->llm};
    mct_db_item *it = calloc(1, sizeof *it);
    mct_db_report ar;
    int rc = MCT_OK;
    if (!it)
        return MCT_ENOMEM;
    memset(&ar, 0, sizeof ar);
    for (int ti = 0; ti < 5 && rc == MCT_OK; ti++) {
        MDB_cursor *cur;
        MDB_val k, v;
        size_t seen = 0;
        /* a fresh snapshot per table: LMDB refuses every later call in a read that met damage */
        db_rend(db, c->st);
        c->st = NULL;
        if ((rc = db_rbegin(db, &c->st)) != MCT_OK)
            break;
        int lr = mdb_cursor_open(c->st, dbis[ti], &cur);
        if (lr) {
            c->rep.damaged++;
            chk_note(c, "table '%s': unreadable: %s", tables[ti], mdb_strerror(lr));
            continue;
        }
        while ((lr = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
            char why[512], hex[33];
            seen++;
            if (decode(c, ti, &k, &v, it, why, sizeof why)) {
                c->rep.damaged++;
                db_hex(k.mv_data, k.mv_size < 16 ? k.mv_size : 16, hex);
                chk_note(c, "damaged: %s record %zu (key %s): %s", tables[ti], seen, hex, why);
                mct_db_item_clear(it);
                continue;
            }
            c->rep.ok++;
            if (c->dst) {
                rc = db_apply_item(c->dst, c->dt, it, NULL, NULL, &ar);
                if (rc == MCT_OK)
                    c->rep.salvaged++;
                else if (rc != DB_EFULL) {
                    /* refused by the destination's checks: report it and go on */
                    chk_note(c, "not copied: %s record %zu: %s", tables[ti], seen, c->dst->err);
                    rc = MCT_OK;
                }
            }
            mct_db_item_clear(it);
            if (rc)
                break;
        }
        if (lr != 0 && lr != MDB_NOTFOUND) {
            c->rep.damaged++;
            chk_note(c, "damaged: table '%s' cannot be read past record %zu: %s", tables[ti],
                     seen, mdb_strerror(lr));
        }
        mdb_cursor_close(cur);
    }
    free(it);
    return rc;
}

static int salvage_fn(mct_db *dst, MDB_txn *t, void *p)
{
    struct chk *c = p;
    memset(&c->rep, 0, sizeof c->rep);
    c->notes = 0;
    c->dt = t;
    dst->npend = 0;
    dst->line = 0;
    int rc = walk(c);
    dst->npend = 0;  /* bests without a readable trial were not copied */
    return rc;
}

/* A copy of the data file with its current (damaged) meta page replaced by the other one, which
 * LMDB keeps intact as the previous snapshot. Returns 0 and the copy's path in out. */
static int repair_meta_copy(const char *file, char *out, size_t n)
{
    char meta[2][4096];
    const char *tmp = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    FILE *f = fopen(file, "rb"), *g = NULL;
    int fd, rc = -1;
    char buf[65536];
    size_t got;
    if (!f)
        return -1;
    if (fread(meta, 4096, 2, f) != 2)
        goto fail;
    uint64_t tx0, tx1;
    memcpy(&tx0, meta[0] + 144, 8);
    memcpy(&tx1, meta[1] + 144, 8);
    int cur = tx0 < tx1, old = !cur;
    uint32_t magic;
    memcpy(&magic, meta[old] + 16, 4);
    if (magic != 0xBEEFC0DEu)
        goto fail;
    snprintf(out, n, "%s/mctune-salvage-XXXXXX", tmp);
    if ((fd = mkstemp(out)) < 0 || !(g = fdopen(fd, "wb")))
        goto fail;
    uint64_t pg = (uint64_t)cur;
    memcpy(meta[cur], meta[old], 4096);
    memcpy(meta[cur], &pg, 8);
    if (fwrite(meta, 4096, 2, g) != 2)
        goto fail;
    while ((got = fread(buf, 1, sizeof buf, f)) > 0)
        if (fwrite(buf, 1, got, g) != got)
            goto fail;
    rc = ferror(f) ? -1 : 0;
fail:
    if (g && fclose(g) != 0)
        rc = -1;
    fclose(f);
    if (rc && g)
        unlink(out);
    return rc;
}

int mct_db_check(const char *path, const char *salvage, mct_db_note_fn note, void *ctx,
                 mct_db_check_report *rep, char *err, size_t errlen)
{
    struct chk c;
    char why[2048], copy[1100] = "";
    int rc;
    memset(&c, 0, sizeof c);
    memset(rep, 0, sizeof *rep);
    c.note = note;
    c.ctx = ctx;
    rc = mct_db_open(path, MCT_DB_RDONLY, why, sizeof why, &c.src);
    if (rc == MCT_ECORRUPT && strstr(why, "meta page")) {
        /* the current meta page is damaged: read the previous snapshot instead */
        struct stat st;
        char file[1100];
        snprintf(file, sizeof file, stat(path, &st) == 0 && S_ISDIR(st.st_mode) ? "%s/data.mdb"
                 : "%s", path);
        if (repair_meta_copy(file, copy, sizeof copy) == 0) {
            if (note) {
                char line[2300];
                snprintf(line, sizeof line, "damaged: %.2000s; reading the previous snapshot "
                         "(the last write may be missing)", why);
                char *cut = strstr(line, "; the database is damaged");
                if (cut)
                    memmove(cut, strstr(cut, "; reading"), strlen(strstr(cut, "; reading")) + 1);
                note(line, ctx);
            }
            rep->damaged++;
            rc = mct_db_open(copy, MCT_DB_RDONLY, why, sizeof why, &c.src);
        }
    }
    if (rc) {
        snprintf(err, errlen, "%s", why);
        goto fail;
    }
    if ((rc = db_rbegin(c.src, &c.st)) != MCT_OK) {
        snprintf(err, errlen, "%s", c.src->err);
        goto fail;
    }
    if (salvage) {
        struct stat a, b;
        if (stat(salvage, &a) == 0 && stat(path, &b) == 0 && a.st_dev == b.st_dev &&
            a.st_ino == b.st_ino) {
            rc = mct_errf(err, errlen, MCT_EINVAL, "--salvage '%s' is the damaged database "
                          "itself; name a new folder", salvage);
            goto fail;
        }
        if (stat(salvage, &a) == 0) {
            char f[1100];
            snprintf(f, sizeof f, S_ISDIR(a.st_mode) ? "%s/data.mdb" : "%s", salvage);
            if (stat(f, &b) == 0) {
                rc = mct_errf(err, errlen, MCT_EINVAL, "--salvage '%s' already holds a "
                              "database; name a new folder (the salvage never mixes into an "
                              "existing one)", salvage);
                goto fail;
            }
        }
        if ((rc = mct_db_open(salvage, MCT_DB_NOSYNC, why, sizeof why, &c.dst)) != MCT_OK) {
            snprintf(err, errlen, "--salvage: %s", why);
            goto fail;
        }
        rc = db_write(c.dst, salvage_fn, &c);
        if (rc == MCT_OK && mdb_env_sync(c.dst->env, 1) != 0)
            rc = db_fail(c.dst, MCT_EIO, "--salvage '%s': cannot sync it to disk", salvage);
        if (rc) {
            snprintf(err, errlen, "%s", c.dst->err);
            goto fail;
        }
    } else {
        rc = walk(&c);
        if (rc) {
            snprintf(err, errlen, "%s", c.src->err[0] ? c.src->err : mct_strerror(rc));
            goto fail;
        }
    }
    c.rep.damaged += rep->damaged;
    *rep = c.rep;
fail:
    if (c.src)
        db_rend(c.src, c.st);
    mct_db_close(c.src);
    mct_db_close(c.dst);
    if (copy[0]) {
        char lock[1200];
        unlink(copy);
        snprintf(lock, sizeof lock, "%s-lock", copy);
        unlink(lock);
    }
    return rc;
}
