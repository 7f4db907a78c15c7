/* The environment: error messages, hex encoding, the default location, open and close (with the
 * checks of the meta pages and the schema record), transactions and map growth. */
#include "db/db_int.h"

#include <errno.h>
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

/* ---- location and open ----------------------------------------------------------------------- */

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

/* ---- transactions ---------------------------------------------------------------------------- */

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

int db_scan(mct_db *db, MDB_txn *t, MDB_dbi dbi, const void *prefix, size_t plen,
            const char *what, db_scan_fn fn, void *ctx)
{
    MDB_cursor *cur;
    MDB_val k = {plen, (void *)prefix}, v;
    int rc = mdb_cursor_open(t, dbi, &cur);
    if (rc)
        return db_lmdb(db, rc, "opening a cursor");
    for (rc = mdb_cursor_get(cur, &k, &v, plen ? MDB_SET_RANGE : MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        /* keys are sorted by memcmp: the first key without the prefix ends the range */
        if (plen && (k.mv_size < plen || memcmp(k.mv_data, prefix, plen))) {
            rc = MDB_NOTFOUND;
            break;
        }
        if ((rc = fn(db, cur, &k, &v, ctx)) != 0) {
            mdb_cursor_close(cur);
            return rc;
        }
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? MCT_OK : db_lmdb(db, rc, what);
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
