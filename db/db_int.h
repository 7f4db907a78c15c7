/* Internals shared by the db/ sources; no other module includes this.
 *
 * db_env.c    errors, hex encoding, location, open/close, meta and schema checks, transactions,
 *             map growth, db_scan
 * db_rec.c    the record codec (one field table: encoder, cJSON decoder, fast decoder), the
 *             checks of a record to store, reading a record against its key
 * db_store.c  workloads and the M-family index, trials and best, the ladder, nearest M,
 *             families, delete, iterate, stats
 * db_cpu.c    CPU records: their JSON form and storage
 * db_llm.c    the LLM reply cache
 * jsonl.c     JSON Lines items, export, import, merge (the rules of applying an item)
 * check.c     mct_db_check: reading a damaged database, salvage
 * The store (db_*.c) never calls jsonl.c or check.c. */
#ifndef MCT_DB_INT_H
#define MCT_DB_INT_H

#include <lmdb.h>
#include <cJSON.h>

#include "db/db.h"

/* Private code: the map is full; write_txn grows it and runs the transaction again. */
#define DB_EFULL (-1000)

struct mct_db {
    MDB_env *env;
    MDB_dbi meta, cpus, wls, best, trials, llm, mfam;
    MDB_txn *rtxn;       /* cached read transaction, reset between calls */
    int rtxn_busy;       /* the cached one is in use (nested reads get their own) */
    int flags;
    int nosubdir;
    char path[1024];
    char file[1100];     /* the data file */
    char err[1536];
    /* import and merge: best records written in the running transaction, each checked for a
     * trial of its schedule once every item is in (an export lists best before trials) */
    /* records an import or merge wrote, checked before it commits: a best must have a trial
     * of its schedule, and a best and its trial must agree (db_align_best_txn) */
    struct db_pending { mct_db_trial_key tk; long line; int trial; char what[160]; } *pend;
    size_t npend, cappend;
    long line;           /* line of the item being applied (import), 0 for a merge */
};

int db_fail(mct_db *db, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Inside write transaction t: when the best record of tk->k has tk's schedule, it takes the
 * measurement of that trial (the invariant of db.h: a best equals one stored trial). 0 when in
 * line or nothing to align (no such trial or best, another schedule's best), else an error. */
int db_align_best_txn(mct_db *db, MDB_txn *t, const mct_db_trial_key *tk);
/* Maps an LMDB return code to MCT_E*, setting the message "WHAT: lmdb message". */
int db_lmdb(mct_db *db, int rc, const char *what);

int db_rbegin(mct_db *db, MDB_txn **t);
void db_rend(mct_db *db, MDB_txn *t);
typedef int (*db_wfn)(mct_db *db, MDB_txn *t, void *ctx);
int db_write(mct_db *db, db_wfn fn, void *ctx);

/* Calls fn for each entry of dbi whose key starts with the plen bytes at prefix (every entry
 * when plen is 0), in key order, inside t. fn may delete the entry under cur (mdb_cursor_del, in
 * a write transaction). A nonzero return from fn stops the scan and is returned as it is; an
 * LMDB error of the scan itself is mapped by db_lmdb with what. */
typedef int (*db_scan_fn)(mct_db *db, MDB_cursor *cur, const MDB_val *k, const MDB_val *v,
                          void *ctx);
int db_scan(mct_db *db, MDB_txn *t, MDB_dbi dbi, const void *prefix, size_t plen,
            const char *what, db_scan_fn fn, void *ctx);

/* In-transaction helpers; return MCT codes (DB_EFULL when the map is full). */
/* Registers workload w (canon: its canonical text, h: its hash) and its M index entry. */
int db_put_wl_txn(mct_db *db, MDB_txn *t, const mct_workload *w, const char *canon,
                  const uint8_t h[16]);
int db_get_rec_txn(mct_db *db, MDB_txn *t, MDB_dbi dbi, const void *key, size_t klen,
                   mct_db_rec *out);
int db_decode_rec(mct_db *db, const void *key, size_t klen, const void *val, size_t vlen,
                  mct_db_rec *out);
/* Sets a damage message ending with what to do (mctune db check, salvage); MCT_ECORRUPT. */
int db_damaged(mct_db *db, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int db_rec_json(const mct_db_rec *r, const char *type, char **out);
int db_rec_from_cjson(const cJSON *o, mct_db_rec *r, char *err, size_t errlen);
/* MCT_EINVAL, with err naming field 'schedule', unless text is a legal canonical schedule of w. */
int db_sched_check(const mct_workload *w, const char *text, char *err, size_t errlen);
/* Canonicalizes r->workload, checks the record (threads, median, a legal canonical schedule) and
 * computes its key and its schedule's hash (sched may be NULL). The workload text is parsed into
 * *w, unless parsed is nonzero: then *w already holds it parsed (a caller that parsed it once
 * passes it on, so that a put parses its workload once). */
int db_rec_canon(mct_db_rec *r, mct_workload *w, int parsed, mct_db_key *k, uint8_t sched[16],
                 char *err, size_t errlen);
void db_hex(const uint8_t *b, size_t n, char *out);
int db_unhex(const char *s, uint8_t *b, size_t n);

/* Apply one imported item inside t with the merge rules. */
int db_apply_item(mct_db *db, MDB_txn *t, const mct_db_item *it, mct_db_note_fn note,
                  void *ctx, mct_db_report *rep);

/* CPU records (db_cpu.c). put: *outcome as db_put_json (the stored record is overwritten). */
int db_get_cpu_txn(mct_db *db, MDB_txn *t, uint64_t key, mct_cpu *out);
int db_put_cpu_txn(mct_db *db, MDB_txn *t, const mct_cpu *c, int *outcome);
int db_cpu_from_cjson(const cJSON *o, mct_cpu *c, char *err, size_t errlen);

/* LLM cache (db_llm.c): *outcome 0 added, 1 same, 2 conflict (kept unless overwrite). */
int db_llm_put_txn(mct_db *db, MDB_txn *t, const char *model, const char *params,
                   const char *prompt, const char *reply, int overwrite, int *outcome);

/* The four strings of an LLM cache entry (model, params, prompt, reply), each malloc'ed into
 * s[0..3], from a parsed object or a stored value. MCT_EINVAL (why names the field missing or
 * not a string; not JSON at all counts as missing) or MCT_ENOMEM; on failure every s[i] is NULL. */
int db_llm_from_cjson(const cJSON *o, char *s[4], char *why, size_t errlen);
int db_llm_decode(const void *val, size_t len, char *s[4], char *why, size_t errlen);
/* An LLM item takes the four strings (it owns them from now on). */
static inline void db_llm_item(mct_db_item *it, char *s[4])
{
    it->kind = MCT_DB_ITEM_LLM;
    it->model = s[0];
    it->params = s[1];
    it->prompt = s[2];
    it->reply = s[3];
}

/* Stores json (malloc'ed; always freed) under k unless the same bytes are there:
 * *outcome 0 new, 1 identical (nothing written), 2 different (written when overwrite). */
int db_put_json(mct_db *db, MDB_txn *t, MDB_dbi dbi, MDB_val *k, char *json, int overwrite,
                int *outcome, const char *what);

#endif
