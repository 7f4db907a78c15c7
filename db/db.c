/* The tuning database on LMDB: environment, keys, records, ladder, nearest M, stats, LLM cache. */
#include "db/db_int.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAP_INITIAL ((size_t)64 << 20)

int db_fail(mct_db *db, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(db->err, sizeof db->err, fmt, ap);
    va_end(ap);
    return code;
}

/* Advice every damage message ends with: the tool that tells what is readable and saves it. */
int db_damaged(mct_db *db, const char *fmt, ...)
{
    char what[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return db_fail(db, MCT_ECORRUPT, "%s; the database is damaged: run 'mctune db check --db %s' "
                   "to see what is readable, then 'mctune db check --db %s --salvage NEWDIR' to "
                   "copy the readable records into a new database (or restore it from an export)",
                   what, db->path, db->path);
}

/* Maps an LMDB or errno code to MCT_E* with a message saying what it means for the user and
 * what to do: damaged, foreign, locked, no space, permissions. */
int db_lmdb(mct_db *db, int rc, const char *what)
{
    switch (rc) {
    case 0: return MCT_OK;
    case MDB_NOTFOUND: return MCT_ENOTFOUND;
    case MDB_MAP_FULL: return DB_EFULL;
    case MDB_CORRUPTED: case MDB_PAGE_NOTFOUND: case MDB_INCOMPATIBLE: case MDB_BAD_VALSIZE:
    case MDB_BAD_TXN: case MDB_PANIC: case MDB_INVALID: case MDB_KEYEXIST:
        return db_damaged(db, "database '%s': %s: %s", db->file, what, mdb_strerror(rc));
    case MDB_VERSION_MISMATCH:
        return db_fail(db, MCT_EVERSION, "database '%s': %s: it was written by another LMDB "
                       "version (%s); open it with the mctune that wrote it and export it "
                       "('mctune db export --db %s > old.jsonl')", db->file, what,
                       mdb_strerror(rc), db->path);
    case MDB_READERS_FULL:
        return db_fail(db, MCT_EBUSY, "database '%s': %s: too many processes have it open (%s); "
                       "wait for some to finish, or remove its lock.mdb when none runs",
                       db->file, what, mdb_strerror(rc));
    case MDB_TXN_FULL: case MDB_DBS_FULL: case MDB_MAP_RESIZED: case MDB_TLS_FULL:
        return db_fail(db, MCT_EBUSY, "database '%s': %s: %s; retry the command", db->file, what,
                       mdb_strerror(rc));
    case EAGAIN: case EBUSY:
        return db_fail(db, MCT_EBUSY, "database '%s': %s: it is locked by another process (%s); "
                       "wait for it to finish, or check that no stale process holds it",
                       db->file, what, strerror(rc));
    case ENOSPC: case EDQUOT:
        return db_fail(db, MCT_EIO, "database '%s': %s: no space left on the device (%s); free "
                       "some space or choose another location with --db or MCTUNE_DB", db->file,
                       what, strerror(rc));
    case EACCES: case EPERM: case EROFS:
        return db_fail(db, MCT_EIO, "database '%s': %s: permission denied (%s); check the "
                       "permissions of %s and its folder, or choose a writable location with "
                       "--db or MCTUNE_DB", db->file, what, strerror(rc), db->file);
    case ENOMEM:
        return db_fail(db, MCT_ENOMEM, "database '%s': %s: out of memory or address space (%s); "
                       "close other programs or raise the limit (ulimit -v)", db->file, what,
                       strerror(rc));
    case EIO:
        return db_fail(db, MCT_EIO, "database '%s': %s: the disk reported an I/O error (%s); check "
                       "the disk, then run 'mctune db check --db %s'", db->file, what,
                       strerror(rc), db->path);
    default:
        return db_fail(db, MCT_EIO, "database '%s': %s: %s (LMDB code %d); check the file and "
                       "the disk, then run 'mctune db check --db %s'", db->file, what,
                       mdb_strerror(rc), rc, db->path);
    }
}

int db_put_json(mct_db *db, MDB_txn *t, MDB_dbi dbi, MDB_val *k, char *json, int overwrite,
                int *outcome, const char *what)
{
    MDB_val v, nv = {strlen(json), json};
    *outcome = 0;
    int rc = mdb_get(t, dbi, k, &v);
    if (rc == 0) {
        *outcome = v.mv_size == nv.mv_size && !memcmp(v.mv_data, json, v.mv_size) ? 1 : 2;
        if (*outcome == 1 || !overwrite) {
            free(json);
            return MCT_OK;
        }
    }
    rc = mdb_put(t, dbi, k, &nv, 0);
    free(json);
    return rc ? db_lmdb(db, rc, what) : MCT_OK;
}

const char *mct_db_errmsg(const mct_db *db) { return db ? db->err : ""; }
const char *mct_db_path(const mct_db *db) { return db->path; }

void db_hex(const uint8_t *b, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[b[i] >> 4];
        out[2 * i + 1] = hex[b[i] & 15];
    }
    out[2 * n] = 0;
}

int db_unhex(const char *s, uint8_t *b, size_t n)
{
    for (size_t i = 0; i < 2 * n; i++) {
        char ch = s[i];
        int d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
              : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1;
        if (d < 0)
            return MCT_EINVAL;
        if (i % 2 == 0)
            b[i / 2] = (uint8_t)(d << 4);
        else
            b[i / 2] |= (uint8_t)d;
    }
    return s[2 * n] ? MCT_EINVAL : MCT_OK;
}

/* ---- location and open -------------------------------------------------------------------- */

int mct_db_default_path(char *buf, size_t len)
{
    const char *e = getenv("MCTUNE_DB"), *x = getenv("XDG_CACHE_HOME"), *h = getenv("HOME");
    int n;
    if (e && *e)
        n = snprintf(buf, len, "%s", e);
    else if (x && *x)
        n = snprintf(buf, len, "%s/mctune", x);
    else if (h && *h)
        n = snprintf(buf, len, "%s/.cache/mctune", h);
    else
        return MCT_EINVAL;
    return n < 0 || (size_t)n >= len ? MCT_ERANGE : MCT_OK;
}

static int mkdirs(const char *path)
{
    char tmp[1024];
    size_t n = strlen(path);
    if (n >= sizeof tmp)
        return ENAMETOOLONG;
    memcpy(tmp, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (tmp[i] != '/' && tmp[i] != 0)
            continue;
        char c = tmp[i];
        tmp[i] = 0;
        if (mkdir(tmp, 0775) != 0 && errno != EEXIST)
            return errno;
        tmp[i] = c;
    }
    return 0;
}

static int has_mctune_marker(const char *file);

static int meta_check(mct_db *db, MDB_txn *t, int create)
{
    MDB_val k = {6, "schema"}, v;
    char want[256];
    int rc = mdb_get(t, db->meta, &k, &v);
    snprintf(want, sizeof want, "{\"schema\":%d,\"codegen\":\"%s\"}", MCT_DB_SCHEMA,
             MCT_CG_VERSION);
    if (rc == MDB_NOTFOUND) {
        if (!create)
            return MCT_OK;
        MDB_val nv = {strlen(want), want};
        rc = mdb_put(t, db->meta, &k, &nv, 0);
        return rc ? db_lmdb(db, rc, "writing the schema record") : MCT_OK;
    }
    if (rc)
        return db_lmdb(db, rc, "reading the schema record");
    cJSON *o = cJSON_ParseWithLength(v.mv_data, v.mv_size);
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, "schema");
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(o, "codegen");
    if (!cJSON_IsNumber(s) || !cJSON_IsString(g)) {
        cJSON_Delete(o);
        return db_damaged(db, "database '%s': the schema record is damaged ('%.*s')", db->file,
                          (int)(v.mv_size > 80 ? 80 : v.mv_size), (const char *)v.mv_data);
    }
    int ok = s->valueint == MCT_DB_SCHEMA && !strcmp(g->valuestring, MCT_CG_VERSION);
    if (!ok)
        db_fail(db, MCT_EVERSION, "database '%s' was written with schema %d and code generator "
                "'%s'; this mctune uses schema %d and '%s'. Export it with the mctune that wrote "
                "it ('mctune db export --db %s > old.jsonl'), then import that file into a new "
                "database ('mctune db import old.jsonl --db NEWDIR'), or point --db elsewhere",
                db->path, s->valueint, g->valuestring, MCT_DB_SCHEMA, MCT_CG_VERSION, db->path);
    cJSON_Delete(o);
    return ok ? MCT_OK : MCT_EVERSION;
}

static int open_dbis(mct_db *db)
{
    static const char *names[] = {"meta", "cpus", "workloads", "best", "trials", "llm", "mfam"};
    MDB_dbi *dbis[] = {&db->meta, &db->cpus, &db->wls, &db->best, &db->trials, &db->llm,
                       &db->mfam};
    int ro = db->flags & MCT_DB_RDONLY;
    MDB_txn *t = NULL;
    int rc = mdb_txn_begin(db->env, NULL, ro ? MDB_RDONLY : 0, &t);
    for (int i = 0; i < 8 && rc == MDB_MAP_RESIZED; i++) {
        /* another process grew the map since we opened: adopt its size */
        mdb_env_set_mapsize(db->env, 0);
        rc = mdb_txn_begin(db->env, NULL, ro ? MDB_RDONLY : 0, &t);
    }
    if (rc)
        return db_lmdb(db, rc, "starting a transaction");
    /* tables are created only in a new (empty) environment, never added to a foreign one */
    int create = 0;
    if (!ro) {
        MDB_dbi main_dbi;
        MDB_stat ms;
        rc = mdb_dbi_open(t, "meta", 0, &db->meta);
        if (rc == MDB_NOTFOUND && mdb_dbi_open(t, NULL, 0, &main_dbi) == 0 &&
            mdb_stat(t, main_dbi, &ms) == 0 && ms.ms_entries == 0)
            create = MDB_CREATE;
    }
    for (int i = 0; i < 7; i++) {
        rc = mdb_dbi_open(t, names[i], create, dbis[i]);
        if (rc == MDB_NOTFOUND || rc == MDB_INCOMPATIBLE) {
            mdb_txn_abort(t);
            if (has_mctune_marker(db->file))
                return db_damaged(db, "'%s': the table of tables is damaged (no '%s' table)",
                                  db->file, names[i]);
            return db_fail(db, MCT_ECORRUPT, "'%s' is an LMDB database but not an mctune one (no "
                           "'%s' table); point --db at an mctune database, or give a new folder "
                           "to start one", db->file, names[i]);
        }
        if (rc) {
            int code = db_lmdb(db, rc, names[i]);
            mdb_txn_abort(t);
            return code == DB_EFULL ? MCT_EBUSY : code;
        }
    }
    rc = meta_check(db, t, !ro);
    if (rc) {
        mdb_txn_abort(t);
        return rc == DB_EFULL ? db_fail(db, MCT_EBUSY, "database '%s' is full", db->file) : rc;
    }
    rc = mdb_txn_commit(t);
    return rc ? db_lmdb(db, rc, "committing the tables") : MCT_OK;
}

/* LMDB's on-disk meta page (lmdb.h does not export it): two at the start of the file, the one
 * with the larger txnid is current. Read before mdb_env_open so that damage is named for what it
 * is instead of surfacing as ENOMEM (a damaged map size) or EINVAL (a damaged page size). */
struct lmdb_meta {
    uint64_t pgno;            /* page header */
    uint16_t pad, flags;
    uint16_t lower, upper;
    uint32_t magic, version;
    uint64_t address, mapsize;
    struct { uint32_t pad; uint16_t flags, depth; uint64_t branch, leaf, ovf, entries, root; }
        dbs[2];
    uint64_t last_pg, txnid;
};
#define LMDB_MAGIC 0xBEEFC0DEu

/* 0 when page i looks like a meta page of this file, else a reason in why. */
static int meta_sane(const struct lmdb_meta *m, int i, uint64_t size, char *why, size_t n)
{
    uint32_t psize = m->dbs[0].pad;
    if (m->magic != LMDB_MAGIC)
        return snprintf(why, n, "meta page %d has no LMDB signature", i), -1;
    if (m->version != 1)
        return snprintf(why, n, "meta page %d names LMDB format %u (this LMDB reads 1)", i,
                        m->version), -2;
    if (m->pgno != (uint64_t)i || !(m->flags & 0x08))
        return snprintf(why, n, "meta page %d has a damaged page header", i), -1;
    if (psize < 512 || psize > 65536 || (psize & (psize - 1)))
        return snprintf(why, n, "meta page %d names a page size of %u bytes", i, psize), -1;
    if (m->last_pg < 1 || (m->last_pg + 1) * psize > ((uint64_t)1 << 44) ||
        m->mapsize < (m->last_pg + 1) * psize || m->mapsize > ((uint64_t)1 << 44))
        return snprintf(why, n, "meta page %d names an impossible size (last page %llu, map "
                        "%llu bytes, file %llu bytes)", i, (unsigned long long)m->last_pg,
                        (unsigned long long)m->mapsize, (unsigned long long)size), -1;
    for (int d = 0; d < 2; d++)
        if (m->dbs[d].root != ~(uint64_t)0 && m->dbs[d].root > m->last_pg)
            return snprintf(why, n, "meta page %d names root page %llu beyond its last page "
                            "%llu", i, (unsigned long long)m->dbs[d].root,
                            (unsigned long long)m->last_pg), -1;
    return 0;
}

/* Checks the two meta pages of an existing data file: MCT_ECORRUPT when damaged (the message
 * says so and points to mctune db check) or not an LMDB file at all (the message says that). */
static int header_check(mct_db *db, uint64_t size)
{
    struct lmdb_meta m[2];
    char why[2][256];
    int bad[2];
    FILE *f = fopen(db->file, "rb");
    if (!f)
        return MCT_OK;  /* mdb_env_open words the error */
    for (int i = 0; i < 2; i++) {
        memset(&m[i], 0, sizeof m[i]);
        if (fseek(f, (long)i * 4096, SEEK_SET) != 0 || fread(&m[i], sizeof m[i], 1, f) != 1) {
            fclose(f);
            return MCT_OK;
        }
        bad[i] = meta_sane(&m[i], i, size, why[i], sizeof why[i]);
    }
    fclose(f);
    if (bad[0] == -2 && bad[1] == -2)
        return db_fail(db, MCT_EVERSION, "'%s' is an LMDB file of another format version (%u); "
                       "export it with the tool that wrote it, or point --db elsewhere", db->file,
                       m[0].version);
    if (m[0].magic != LMDB_MAGIC && m[1].magic != LMDB_MAGIC)
        return db_fail(db, MCT_ECORRUPT, "'%s' is not an LMDB database (no LMDB signature in its "
                       "first pages; some other file?); point --db at an mctune database, or "
                       "give a new folder to start one", db->file);
    /* LMDB reads the meta with the larger txnid and refuses a file whose other meta lacks its
     * signature; damage elsewhere in the older one is harmless (the next commit rewrites it). */
    int cur = m[0].txnid < m[1].txnid;
    int sig_bad = m[0].magic != LMDB_MAGIC || m[1].magic != LMDB_MAGIC || m[0].version != 1 ||
                  m[1].version != 1;
    if (bad[cur] || sig_bad)
        return db_damaged(db, "'%s': %s%s%s", db->file, bad[0] ? why[0] : why[1],
                          bad[0] && bad[1] ? " and " : "", bad[0] && bad[1] ? why[1] : "");
    return MCT_OK;
}

/* Whether the file holds mctune's schema record somewhere: a damaged main table of an mctune
 * database still does; a foreign LMDB file does not. */
static int has_mctune_marker(const char *file)
{
    static const char mark[] = "{\"schema\":", mark2[] = "\"codegen\":\"mctune";
    char buf[65536 + 16];
    size_t keep = 0, got;
    int found = 0;
    FILE *f = fopen(file, "rb");
    if (!f)
        return 0;
    while (!found && (got = fread(buf + keep, 1, sizeof buf - 16 - keep, f)) > 0) {
        size_t n = keep + got;
        found = memmem(buf, n, mark, sizeof mark - 1) != NULL &&
                memmem(buf, n, mark2, sizeof mark2 - 1) != NULL;
        keep = n < 32 ? n : 32;
        memmove(buf, buf + n - keep, keep);
    }
    fclose(f);
    return found;
}

int mct_db_open(const char *path, int flags, char *err, size_t errlen, mct_db **out)
{
    struct stat st;
    mct_db *db = calloc(1, sizeof *db);
    int rc, code = MCT_ENOMEM, ro = flags & MCT_DB_RDONLY;
    unsigned eflags = MDB_NOTLS;
    *out = NULL;
    if (!db)
        goto fail;
    db->flags = flags;
    if (!path || !*path || strlen(path) >= sizeof db->path) {
        code = db_fail(db, MCT_EINVAL, "database path '%s' is empty or too long",
                       path ? path : "");
        goto fail;
    }
    snprintf(db->path, sizeof db->path, "%s", path);
    if (stat(path, &st) == 0 && !S_ISDIR(st.st_mode)) {
        db->nosubdir = 1;
        snprintf(db->file, sizeof db->file, "%s", path);
    } else {
        snprintf(db->file, sizeof db->file, "%s/data.mdb", path);
        if (ro && stat(db->file, &st) != 0) {
            code = db_fail(db, MCT_EIO, "no database at '%s' (%s is missing: %s); check the "
                           "path given with --db or MCTUNE_DB", path, db->file, strerror(errno));
            goto fail;
        }
        if (!ro && (rc = mkdirs(path)) != 0) {
            code = db_fail(db, MCT_EIO, "cannot create the database folder '%s': %s; choose a "
                           "writable location with --db or MCTUNE_DB", path, strerror(rc));
            goto fail;
        }
    }
    if (db->nosubdir)
        eflags |= MDB_NOSUBDIR;
    if (ro)
        eflags |= MDB_RDONLY;
    if (flags & MCT_DB_NOSYNC)
        eflags |= MDB_NOSYNC;
    /* An empty data file is not a new database: LMDB writes its meta pages as it creates the
     * file, so a file that stays empty was truncated or never finished. Give a creating process
     * a moment, then refuse rather than silently start over. */
    if (stat(db->file, &st) == 0 && st.st_size == 0) {
        for (int i = 0; i < 50 && stat(db->file, &st) == 0 && st.st_size == 0; i++)
            usleep(20000);
        if (st.st_size == 0) {
            code = db_fail(db, MCT_ECORRUPT, "'%s' is empty (0 bytes): the database was truncated "
                           "or its creation never finished; restore it from an export, or "
                           "remove it ('rm %s') to start a new database there", db->file,
                           db->file);
            goto fail;
        }
    }
    /* A data file smaller than LMDB's two meta pages cannot be a database. */
    if (stat(db->file, &st) == 0 && st.st_size > 0 && st.st_size < 2 * 4096) {
        code = db_fail(db, MCT_ECORRUPT, "'%s' is not a database: only %lld bytes (it may be "
                       "truncated); restore it from an export, or point --db elsewhere",
                       db->file, (long long)st.st_size);
        goto fail;
    }
    if (stat(db->file, &st) == 0 && (code = header_check(db, (uint64_t)st.st_size)) != MCT_OK)
        goto fail;
    if ((rc = mdb_env_create(&db->env)) != 0) {
        code = db_lmdb(db, rc, "creating the environment");
        goto fail;
    }
    /* MCTUNE_DB_MAP_INITIAL (bytes) lets tests start small and exercise the growth path */
    const char *mi = getenv("MCTUNE_DB_MAP_INITIAL");
    size_t map = mi && atoll(mi) > 0 ? (size_t)atoll(mi) : MAP_INITIAL;
    mdb_env_set_maxdbs(db->env, 8);
    mdb_env_set_mapsize(db->env, map);
    rc = mdb_env_open(db->env, path, eflags, 0664);
    if (rc && ro && (rc == EACCES || rc == EROFS)) {
        /* read-only location: read without the lock file (no concurrent writer expected) */
        mdb_env_close(db->env);
        mdb_env_create(&db->env);
        mdb_env_set_maxdbs(db->env, 8);
        mdb_env_set_mapsize(db->env, map);
        rc = mdb_env_open(db->env, path, eflags | MDB_NOLOCK, 0664);
    }
    if (rc) {
        if (rc == MDB_INVALID)
            code = db_damaged(db, "'%s' is not a readable LMDB database (%s)", db->file,
                              mdb_strerror(rc));
        else if (rc == EACCES || rc == EROFS || rc == EPERM)
            code = db_fail(db, MCT_EIO, "cannot open '%s' for %s: %s; choose a writable location "
                           "with --db or MCTUNE_DB", db->file, ro ? "reading" : "writing",
                           mdb_strerror(rc));
        else
            code = db_lmdb(db, rc, "opening");
        goto fail;
    }
    /* LMDB maps pages beyond the end of a truncated file, and touching them raises SIGBUS:
     * check that every page the meta page claims is really in the file. */
    MDB_envinfo info;
    MDB_stat est;
    mdb_env_info(db->env, &info);
    mdb_env_stat(db->env, &est);
    if (stat(db->file, &st) == 0 &&
        (uint64_t)(info.me_last_pgno + 1) * est.ms_psize > (uint64_t)st.st_size) {
        code = db_fail(db, MCT_ECORRUPT, "'%s' is truncated: %lld bytes, but its pages reach "
                       "%llu bytes; restore it from an export or remove it", db->file,
                       (long long)st.st_size,
                       (unsigned long long)(info.me_last_pgno + 1) * est.ms_psize);
        goto fail;
    }
    if ((code = open_dbis(db)) != MCT_OK)
        goto fail;
    db->err[0] = 0;
    *out = db;
    return MCT_OK;
fail:
    if (err && errlen)
        snprintf(err, errlen, "%s", db ? db->err : "out of memory opening the database");
    if (db && db->env)
        mdb_env_close(db->env);
    free(db);
    return code;
}

void mct_db_close(mct_db *db)
{
    if (!db)
        return;
    if (db->rtxn)
        mdb_txn_abort(db->rtxn);
    mdb_env_close(db->env);
    free(db->pend);
    free(db);
}

/* ---- transactions ------------------------------------------------------------------------- */

int db_rbegin(mct_db *db, MDB_txn **t)
{
    int rc;
    *t = NULL;
    if (db->rtxn && !db->rtxn_busy) {
        rc = mdb_txn_renew(db->rtxn);
        if (rc == 0) {
            db->rtxn_busy = 1;
            *t = db->rtxn;
            return MCT_OK;
        }
        mdb_txn_abort(db->rtxn);
        db->rtxn = NULL;
    }
    for (int i = 0; i < 2; i++) {
        rc = mdb_txn_begin(db->env, NULL, MDB_RDONLY, t);
        if (rc != MDB_MAP_RESIZED)
            break;
        if (!db->rtxn)   /* another process grew the map: adopt its size */
            mdb_env_set_mapsize(db->env, 0);
    }
    if (rc)
        return db_lmdb(db, rc, "starting a read");
    if (!db->rtxn) {
        db->rtxn = *t;
        db->rtxn_busy = 1;
    }
    return MCT_OK;
}

void db_rend(mct_db *db, MDB_txn *t)
{
    if (!t)
        return;
    if (t == db->rtxn) {
        mdb_txn_reset(t);
        db->rtxn_busy = 0;
    } else {
        mdb_txn_abort(t);
    }
}

static int grow(mct_db *db)
{
    MDB_envinfo info;
    mdb_env_info(db->env, &info);
    size_t want = info.me_mapsize * 2;
    if (want < info.me_mapsize)
        return db_fail(db, MCT_EBUSY, "database '%s' cannot grow beyond %zu bytes", db->file,
                       info.me_mapsize);
    int rc = mdb_env_set_mapsize(db->env, want);
    return rc ? db_lmdb(db, rc, "growing the map") : MCT_OK;
}

int db_write(mct_db *db, db_wfn fn, void *ctx)
{
    if (db->flags & MCT_DB_RDONLY)
        return db_fail(db, MCT_EIO, "database '%s' was opened read-only; open it without "
                       "read-only to change it", db->path);
    for (int attempt = 0; attempt < 40; attempt++) {
        MDB_txn *t;
        int rc;
        if (db->rtxn && !db->rtxn_busy) {  /* set_mapsize needs no live read txn here */
            mdb_txn_abort(db->rtxn);
            db->rtxn = NULL;
        }
        rc = mdb_txn_begin(db->env, NULL, 0, &t);
        if (rc == MDB_MAP_RESIZED) {
            mdb_env_set_mapsize(db->env, 0);
            continue;
        }
        if (rc)
            return db_lmdb(db, rc, "starting a write");
        db->err[0] = 0;
        rc = fn(db, t, ctx);
        if (rc == MCT_OK) {
            rc = mdb_txn_commit(t);
            if (rc == 0)
                return MCT_OK;
            rc = db_lmdb(db, rc, "committing");
        } else {
            mdb_txn_abort(t);
        }
        if (rc != DB_EFULL)
            return rc;
        if (db->rtxn_busy)
            return db_fail(db, MCT_EBUSY, "database '%s' is full and cannot grow during an "
                           "iteration; write after it", db->file);
        if ((rc = grow(db)) != MCT_OK)
            return rc;
    }
    return db_fail(db, MCT_EBUSY, "database '%s': the write did not fit after growing the map "
                   "repeatedly", db->file);
}

/* ---- records as JSON ---------------------------------------------------------------------- */

int db_rec_json(const mct_db_rec *r, const char *type, char **out)
{
    cJSON *o = cJSON_CreateObject();
    char cpu[17], wh[33];
    uint8_t h[16];
    *out = NULL;
    if (!o)
        return MCT_ENOMEM;
    mct_cpu_key_format(r->cpu, cpu);
    mct_hash_text(r->workload, strlen(r->workload), h);
    db_hex(h, 16, wh);
    if (type)
        cJSON_AddStringToObject(o, "type", type);
    cJSON_AddStringToObject(o, "workload", r->workload);
    cJSON_AddStringToObject(o, "wl_hash", wh);
    cJSON_AddStringToObject(o, "cpu", cpu);
    cJSON_AddNumberToObject(o, "threads", r->threads);
    cJSON_AddStringToObject(o, "schedule", r->schedule);
    cJSON_AddNumberToObject(o, "median_ns", r->median_ns);
    cJSON_AddNumberToObject(o, "spread_ns", r->spread_ns);
    cJSON_AddNumberToObject(o, "gflops", r->gflops);
    cJSON_AddNumberToObject(o, "samples", (double)r->samples);
    cJSON_AddStringToObject(o, "search", r->search);
    cJSON_AddStringToObject(o, "guide", r->guide);
    cJSON_AddStringToObject(o, "compiler", r->compiler);
    cJSON_AddStringToObject(o, "flags", r->flags);
    cJSON_AddStringToObject(o, "tool", r->tool);
    cJSON_AddNumberToObject(o, "timestamp", (double)r->timestamp);
    cJSON_AddStringToObject(o, "model", r->model);
    *out = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return *out ? MCT_OK : MCT_ENOMEM;
}

static int jstr(const cJSON *o, const char *name, int required, char *dst, size_t cap,
                char *err, size_t n)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!v) {
        if (required)
            return mct_errf(err, n, MCT_EINVAL, "field '%s' is missing", name);
        dst[0] = 0;
        return MCT_OK;
    }
    if (!cJSON_IsString(v) || !v->valuestring)
        return mct_errf(err, n, MCT_EINVAL, "field '%s' must be a string", name);
    size_t len = strlen(v->valuestring);
    if (len >= cap)
        return mct_errf(err, n, MCT_ERANGE, "field '%s' is %zu bytes long; the limit is %zu", name,
                     len, cap - 1);
    memcpy(dst, v->valuestring, len + 1);
    return MCT_OK;
}

static int jnum(const cJSON *o, const char *name, int required, double lo, double hi,
                int integer, double *dst, char *err, size_t n)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!v) {
        if (required)
            return mct_errf(err, n, MCT_EINVAL, "field '%s' is missing", name);
        *dst = 0;
        return MCT_OK;
    }
    if (!cJSON_IsNumber(v))
        return mct_errf(err, n, MCT_EINVAL, "field '%s' must be a number", name);
    double x = v->valuedouble;
    if (!isfinite(x) || x < lo || x > hi || (integer && x != floor(x)))
        return mct_errf(err, n, MCT_ERANGE, "field '%s' = %g is out of range (%s in [%g, %g])",
                     name, x, integer ? "a whole number" : "a number", lo, hi);
    *dst = x;
    return MCT_OK;
}

int db_rec_from_cjson(const cJSON *o, mct_db_rec *r, char *err, size_t n)
{
    char cpu[32];
    double d;
    int rc;
    memset(r, 0, sizeof *r);
    if (!cJSON_IsObject(o))
        return mct_errf(err, n, MCT_EINVAL, "the record is not a JSON object");
    if ((rc = jstr(o, "workload", 1, r->workload, sizeof r->workload, err, n)) ||
        (rc = jstr(o, "cpu", 1, cpu, sizeof cpu, err, n)))
        return rc;
    if (mct_cpu_key_parse(cpu, &r->cpu) < 0)
        return mct_errf(err, n, MCT_EINVAL, "field 'cpu' = '%s' is not a CPU key (16 hex digits)",
                     cpu);
    if ((rc = jnum(o, "threads", 1, 1, 65536, 1, &d, err, n)))
        return rc;
    r->threads = (int)d;
    if ((rc = jstr(o, "schedule", 1, r->schedule, sizeof r->schedule, err, n)) ||
        (rc = jnum(o, "median_ns", 1, 1e-6, 1e18, 0, &r->median_ns, err, n)) ||
        (rc = jnum(o, "spread_ns", 0, 0, 1e18, 0, &r->spread_ns, err, n)) ||
        (rc = jnum(o, "gflops", 0, 0, 1e12, 0, &r->gflops, err, n)))
        return rc;
    if ((rc = jnum(o, "samples", 0, 0, 9e15, 1, &d, err, n)))
        return rc;
    r->samples = (int64_t)d;
    if ((rc = jnum(o, "timestamp", 0, 0, 9e15, 1, &d, err, n)))
        return rc;
    r->timestamp = (int64_t)d;
    if ((rc = jstr(o, "search", 0, r->search, sizeof r->search, err, n)) ||
        (rc = jstr(o, "guide", 0, r->guide, sizeof r->guide, err, n)) ||
        (rc = jstr(o, "compiler", 0, r->compiler, sizeof r->compiler, err, n)) ||
        (rc = jstr(o, "flags", 0, r->flags, sizeof r->flags, err, n)) ||
        (rc = jstr(o, "tool", 0, r->tool, sizeof r->tool, err, n)) ||
        (rc = jstr(o, "model", 0, r->model, sizeof r->model, err, n)))
        return rc;
    return MCT_OK;
}

/* A stored schedule must be one the tuner could have written: it parses into transformations of
 * O, each legal for the workload, and its text is the canonical form (so its hash names it). */
int db_sched_check(const mct_workload *w, const char *text, char *err, size_t n)
{
    mct_sched *s = NULL;
    char why[512], *canon = malloc(4096);
    int rc;
    if (!canon)
        return mct_errf(err, n, MCT_ENOMEM, "out of memory");
    canon[0] = 0;
    rc = mct_sched_parse(w, text, &s, why, sizeof why);
    if (rc == MCT_ENOMEM) {
        rc = mct_errf(err, n, rc, "out of memory");
    } else if (rc < 0) {
        rc = mct_errf(err, n, MCT_EINVAL, "field 'schedule' = '%.120s%s' is not a legal schedule "
                      "for this workload: %s", text, strlen(text) > 120 ? "..." : "", why);
    } else if (mct_sched_format(s, canon, 4096) < 0 || strcmp(canon, text)) {
        rc = mct_errf(err, n, MCT_EINVAL, "field 'schedule' = '%.120s%s' is not in canonical "
                      "form (the tuner writes '%.120s%s'); write it that way", text,
                      strlen(text) > 120 ? "..." : "", canon, strlen(canon) > 120 ? "..." : "");
    }
    mct_sched_destroy(s);
    free(canon);
    return rc;
}

/* Canonicalizes r->workload, checks the schedule and computes the keys. */
int db_rec_canon(mct_db_rec *r, mct_db_key *k, uint8_t sched[16], char *err, size_t n)
{
    mct_workload w;
    char why[256];
    int rc = mct_wl_parse(r->workload, &w, why, sizeof why);
    if (rc < 0)
        return mct_errf(err, n, rc, "workload '%s': %s", r->workload, why);
    if (mct_wl_format(&w, r->workload, sizeof r->workload) < 0)
        return mct_errf(err, n, MCT_ERANGE, "workload '%s' is too long", r->workload);
    if (r->threads < 1 || r->threads > 65536)
        return mct_errf(err, n, MCT_ERANGE, "threads = %d: use 1 to 65536", r->threads);
    if (!(r->median_ns > 0) || !isfinite(r->median_ns))
        return mct_errf(err, n, MCT_ERANGE, "median_ns = %g: must be a positive time", r->median_ns);
    if (!memchr(r->schedule, 0, sizeof r->schedule))
        return mct_errf(err, n, MCT_ERANGE, "schedule text is not terminated");
    if ((rc = db_sched_check(&w, r->schedule, err, n)) != MCT_OK)
        return rc;
    memset(k, 0, sizeof *k);
    mct_wl_hash(&w, k->wl);
    k->cpu = r->cpu;
    k->threads = (uint32_t)r->threads;
    if (sched)
        mct_hash_text(r->schedule, strlen(r->schedule), sched);
    return MCT_OK;
}

int mct_db_rec_key(const mct_db_rec *r, mct_db_key *out)
{
    mct_db_rec tmp = *r;
    return db_rec_canon(&tmp, out, NULL, NULL, 0);
}

/* The hot path of get-best: our own values are flat objects of strings and numbers written by
 * cJSON_PrintUnformatted. This reader decodes them without allocating; on anything unusual
 * (other escapes, nesting, a missing or out-of-range field) it returns -1 and the caller falls
 * back to cJSON, which also words the error. */
static int fast_str(const char **pp, const char *end, char *dst, size_t cap)
{
    const char *p = *pp;
    size_t n = 0;
    if (p >= end || *p != '"')
        return -1;
    for (p++; p < end && *p != '"'; p++) {
        char c = *p;
        if ((unsigned char)c < 0x20)
            return -1;
        if (c == '\\') {
            if (++p >= end)
                return -1;
            switch (*p) {
            case '"': c = '"'; break;
            case '\\': c = '\\'; break;
            case '/': c = '/'; break;
            case 'b': c = '\b'; break;
            case 'f': c = '\f'; break;
            case 'n': c = '\n'; break;
            case 'r': c = '\r'; break;
            case 't': c = '\t'; break;
            case 'u': {
                unsigned v = 0;
                if (end - p < 5)
                    return -1;
                for (int i = 1; i <= 4; i++) {
                    char h = p[i];
                    v = v * 16 + (unsigned)(h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f'
                                            ? h - 'a' + 10 : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                            : 1000);
                }
                if (v == 0 || v >= 0x80)
                    return -1;
                c = (char)v;
                p += 4;
                break;
            }
            default: return -1;
            }
        }
        if (dst) {
            if (n + 1 >= cap)
                return -1;
            dst[n++] = c;
        }
    }
    if (p >= end)
        return -1;
    if (dst)
        dst[n] = 0;
    *pp = p + 1;
    return 0;
}

static int fast_num(const char **pp, const char *end, double *out)
{
    char buf[40];
    size_t n = 0;
    const char *p = *pp;
    while (p < end && n < sizeof buf - 1 && strchr("0123456789+-.eE", *p) && *p)
        buf[n++] = *p++;
    if (!n || n == sizeof buf - 1)
        return -1;
    buf[n] = 0;
    /* Fast path, exact: "[-]digits[.digits]" with a mantissa below 2^53 and at most 22
     * decimals is mantissa / 10^k, both exact doubles, so one division rounds correctly. */
    {
        static const double p10[23] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
                                       1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19,
                                       1e20, 1e21, 1e22};
        const char *q = buf;
        int neg = *q == '-', digits = 0, frac = -1;
        uint64_t m = 0;
        if (neg)
            q++;
        for (; *q; q++) {
            if (*q >= '0' && *q <= '9') {
                m = m * 10 + (uint64_t)(*q - '0');
                if (++digits > 15)
                    break;
                if (frac >= 0)
                    frac++;
            } else if (*q == '.' && frac < 0 && digits) {
                frac = 0;
            } else {
                break;
            }
        }
        if (!*q && digits && frac != 0) {
            double v = (double)m / p10[frac < 0 ? 0 : frac];
            *out = neg ? -v : v;
            *pp = p;
            return 0;
        }
    }
    char *e;
    *out = strtod(buf, &e);
    if (*e || !isfinite(*out))
        return -1;
    *pp = p;
    return 0;
}

static int rec_fast(const char *p, size_t len, mct_db_rec *r)
{
    const char *end = p + len;
    char key[16], cpu[20];
    unsigned seen = 0;
    double d;
    memset(r, 0, sizeof *r);
    if (p >= end || *p++ != '{')
        return -1;
    while (p < end && *p != '}') {
        if (fast_str(&p, end, key, sizeof key) < 0 || p >= end || *p++ != ':')
            return -1;
        struct { const char *name; char *dst; size_t cap; } strs[] = {
            {"workload", r->workload, sizeof r->workload}, {"cpu", cpu, sizeof cpu},
            {"schedule", r->schedule, sizeof r->schedule}, {"search", r->search, sizeof r->search},
            {"guide", r->guide, sizeof r->guide}, {"compiler", r->compiler, sizeof r->compiler},
            {"flags", r->flags, sizeof r->flags}, {"tool", r->tool, sizeof r->tool},
            {"model", r->model, sizeof r->model}, {"wl_hash", NULL, 0}, {"type", NULL, 0},
        };
        int done = 0;
        for (size_t i = 0; i < sizeof strs / sizeof strs[0] && !done; i++)
            if (!strcmp(key, strs[i].name)) {
                if (fast_str(&p, end, strs[i].dst, strs[i].cap) < 0)
                    return -1;
                seen |= 1u << i;
                done = 1;
            }
        if (!done) {
            if (fast_num(&p, end, &d) < 0)
                return -1;
            if (!strcmp(key, "threads") && d >= 1 && d <= 65536 && d == (int)d)
                r->threads = (int)d, seen |= 1u << 16;
            else if (!strcmp(key, "median_ns") && d >= 1e-6 && d <= 1e18)
                r->median_ns = d, seen |= 1u << 17;
            else if (!strcmp(key, "spread_ns") && d >= 0 && d <= 1e18)
                r->spread_ns = d;
            else if (!strcmp(key, "gflops") && d >= 0 && d <= 1e12)
                r->gflops = d;
            else if (!strcmp(key, "samples") && d >= 0 && d <= 9e15 && d == (double)(int64_t)d)
                r->samples = (int64_t)d;
            else if (!strcmp(key, "timestamp") && d >= 0 && d <= 9e15 &&
                     d == (double)(int64_t)d)
                r->timestamp = (int64_t)d;
            else
                return -1;
        }
        if (p < end && *p == ',')
            p++;
        else if (p >= end || *p != '}')
            return -1;
    }
    /* workload, cpu, schedule, threads, median_ns are required */
    if ((seen & 0x30007u) != 0x30007u || p >= end || p + 1 != end)
        return -1;
    return mct_cpu_key_parse(cpu, &r->cpu) < 0 ? -1 : 0;
}

/* Decodes a record value and checks it against its key's workload hash, CPU and threads. */
int db_decode_rec(mct_db *db, const void *key, size_t klen, const void *val, size_t vlen,
                  mct_db_rec *out)
{
    char why[256], wh[33];
    uint8_t h[16];
    int rc;
    if (klen < 16)
        return db_damaged(db, "database '%s': a record key has %zu bytes", db->file, klen);
    db_hex(key, 16, wh);
    if (rec_fast(val, vlen, out) == 0)
        goto check;
    cJSON *o = cJSON_ParseWithLength(val, vlen);
    if (!o)
        return db_damaged(db, "database '%s': the record of workload hash %s is not valid JSON",
                          db->file, wh);
    rc = db_rec_from_cjson(o, out, why, sizeof why);
    cJSON_Delete(o);
    if (rc)
        return db_damaged(db, "database '%s': the record of workload hash %s: %s", db->file, wh,
                          why);
check:
    mct_hash_text(out->workload, strlen(out->workload), h);
    if (memcmp(h, key, 16))
        return db_damaged(db, "database '%s': the record stored under workload hash %s holds "
                          "workload '%s', whose hash differs (damaged file or hash collision)",
                          db->file, wh, out->workload);
    if (klen >= sizeof(mct_db_key)) {
        mct_db_key mk;  /* keys inside LMDB pages are not aligned */
        memcpy(&mk, key, sizeof mk);
        if (mk.cpu != out->cpu || mk.threads != (uint32_t)out->threads)
            return db_damaged(db, "database '%s': the record of workload '%s' names another CPU "
                              "or thread count than its key", db->file, out->workload);
    }
    return MCT_OK;
}

/* Reads a record value and checks it against its key. */
int db_get_rec_txn(mct_db *db, MDB_txn *t, MDB_dbi dbi, const void *key, size_t klen,
                   mct_db_rec *out)
{
    MDB_val k = {klen, (void *)key}, v;
    int rc = mdb_get(t, dbi, &k, &v);
    if (rc)
        return db_lmdb(db, rc, "reading a record");
    return db_decode_rec(db, key, klen, v.mv_data, v.mv_size, out);
}

/* ---- workloads and the M-family index ----------------------------------------------------- */

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

/* ---- trials and best ---------------------------------------------------------------------- */

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

static int get_cpu_txn(mct_db *db, MDB_txn *t, uint64_t key, mct_cpu *out)
{
    MDB_val k = {8, &key}, v;
    char why[256], hex[17];
    int rc = mdb_get(t, db->cpus, &k, &v);
    if (rc)
        return db_lmdb(db, rc, "reading a CPU record");
    rc = mct_db_cpu_from_json(v.mv_data, v.mv_size, out, why, sizeof why);
    if (rc) {
        mct_cpu_key_format(key, hex);
        return db_damaged(db, "database '%s': CPU record %s: %s",
                       db->file, hex, why);
    }
    return MCT_OK;
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
        int e = get_cpu_txn(db, t, ck.cpu, &oc);
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

/* ---- delete, iterate, stats --------------------------------------------------------------- */

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

int mct_db_iter_cpus(mct_db *db, mct_db_cpu_fn fn, void *ctx)
{
    MDB_txn *t;
    MDB_cursor *cur = NULL;
    int rc;
    if ((rc = db_rbegin(db, &t)) != MCT_OK)
        return rc;
    if ((rc = mdb_cursor_open(t, db->cpus, &cur)) != 0) {
        rc = db_lmdb(db, rc, "opening a cursor");
        goto fail;
    }
    MDB_val k, v;
    while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        mct_cpu c;
        uint64_t key;
        if (k.mv_size != 8) {
            rc = db_damaged(db, "database '%s': a CPU key has %zu bytes", db->file,
                         k.mv_size);
            goto fail;
        }
        memcpy(&key, k.mv_data, 8);
        int e = get_cpu_txn(db, t, key, &c);
        if (e || (e = fn(&c, ctx)) != 0) {
            rc = e;
            goto fail;
        }
    }
    rc = rc == MDB_NOTFOUND ? MCT_OK : db_lmdb(db, rc, "iterating");
fail:
    if (cur)
        mdb_cursor_close(cur);
    db_rend(db, t);
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

/* ---- LLM cache ---------------------------------------------------------------------------- */

static int llm_key(const char *model, const char *params, const char *prompt, uint8_t h[16])
{
    size_t a = strlen(model), b = strlen(params), c = strlen(prompt);
    char *buf = malloc(a + b + c + 3);
    if (!buf)
        return MCT_ENOMEM;
    memcpy(buf, model, a + 1);
    memcpy(buf + a + 1, params, b + 1);
    memcpy(buf + a + b + 2, prompt, c + 1);
    mct_hash_text(buf, a + b + c + 3, h);
    free(buf);
    return MCT_OK;
}

struct llm_ctx { const char *model, *params, *prompt, *reply; };

int db_llm_put_txn(mct_db *db, MDB_txn *t, const char *model, const char *params,
                   const char *prompt, const char *reply, int overwrite, int *outcome);

/* outcome: 0 added, 1 same, 2 conflict (kept the stored one unless overwrite) */
int db_llm_put_txn(mct_db *db, MDB_txn *t, const char *model, const char *params,
                   const char *prompt, const char *reply, int overwrite, int *outcome)
{
    uint8_t h[16];
    int rc = llm_key(model, params, prompt, h);
    if (rc)
        return db_fail(db, rc, "out of memory");
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return db_fail(db, MCT_ENOMEM, "out of memory");
    cJSON_AddStringToObject(o, "model", model);
    cJSON_AddStringToObject(o, "params", params);
    cJSON_AddStringToObject(o, "prompt", prompt);
    cJSON_AddStringToObject(o, "reply", reply);
    char *json = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!json)
        return db_fail(db, MCT_ENOMEM, "out of memory");
    MDB_val k = {16, h};
    return db_put_json(db, t, db->llm, &k, json, overwrite, outcome, "storing an LLM reply");
}

static int llm_put_fn(mct_db *db, MDB_txn *t, void *p)
{
    struct llm_ctx *c = p;
    int outcome;
    return db_llm_put_txn(db, t, c->model, c->params, c->prompt, c->reply, 1, &outcome);
}

int mct_db_llm_put(mct_db *db, const char *model, const char *params, const char *prompt,
                   const char *reply)
{
    struct llm_ctx c = {model, params, prompt, reply};
    if (!model || !params || !prompt || !reply)
        return db_fail(db, MCT_EINVAL, "LLM cache: model, params, prompt and reply are needed");
    return db_write(db, llm_put_fn, &c);
}

int mct_db_llm_get(mct_db *db, const char *model, const char *params, const char *prompt,
                   char **reply)
{
    uint8_t h[16];
    MDB_txn *t;
    MDB_val k = {16, h}, v;
    int rc;
    *reply = NULL;
    if ((rc = llm_key(model, params, prompt, h)) != MCT_OK)
        return db_fail(db, rc, "out of memory");
    if ((rc = db_rbegin(db, &t)) != MCT_OK)
        return rc;
    rc = mdb_get(t, db->llm, &k, &v);
    if (rc) {
        rc = db_lmdb(db, rc, "reading an LLM reply");
        goto fail;
    }
    cJSON *o = cJSON_ParseWithLength(v.mv_data, v.mv_size);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "model");
    const cJSON *pa = cJSON_GetObjectItemCaseSensitive(o, "params");
    const cJSON *pr = cJSON_GetObjectItemCaseSensitive(o, "prompt");
    const cJSON *re = cJSON_GetObjectItemCaseSensitive(o, "reply");
    if (!cJSON_IsString(m) || !cJSON_IsString(pa) || !cJSON_IsString(pr) || !cJSON_IsString(re)) {
        rc = db_damaged(db, "database '%s': a cached LLM reply for model '%s' is not a JSON "
                        "object of strings", db->file, model);
    } else if (strcmp(m->valuestring, model) || strcmp(pa->valuestring, params) ||
               strcmp(pr->valuestring, prompt)) {
        rc = db_damaged(db, "database '%s': the cached LLM reply under this key was asked with "
                        "another prompt (hash collision or damage)", db->file);
    } else if (!(*reply = strdup(re->valuestring))) {
        rc = db_fail(db, MCT_ENOMEM, "out of memory");
    }
    cJSON_Delete(o);
fail:
    db_rend(db, t);
    return rc;
}
