/* mctune tuning database: one LMDB environment with named databases
 *
 *   meta       "schema" -> {"schema": N, "codegen": MCT_CG_VERSION}; checked on open
 *   cpus       cpu key (8 bytes)                               -> CPU record (JSON)
 *   workloads  workload hash (16)                              -> canonical workload text
 *   best       mct_db_key (workload hash, cpu key, threads)    -> best record (JSON)
 *   trials     mct_db_trial_key (+ schedule hash)              -> one measurement (JSON)
 *   llm        hash of (model, params, prompt) (16)            -> cached reply (JSON)
 *   mfam       workload family hash + M (index for nearest-M lookups, derived data)
 *
 * Keys are fixed-width structs, zeroed before use and compared with memcmp. Values are JSON
 * so that a dump is readable; every value carries its workload text, which is hashed again on
 * read, so a damaged or colliding record is reported (MCT_ECORRUPT), never believed.
 *
 * Several processes may write one database at once (LMDB serializes writers). One mct_db
 * handle must be used by one thread at a time. The map grows when it fills up.
 *
 * Concurrent tuning (several `mctune tune` processes, or any callers of these functions, on one
 * workload, CPU and thread count of one database) can rely on:
 * - the best record always equals one stored trial: the same schedule and the same median
 *   (mct_db_put_best writes the trial with it when there is none and otherwise takes the
 *   trial's measurement; a faster trial of the best's schedule updates the best), and a best
 *   record is replaced only by a faster one (or brought back in line with its own trial);
 * - a trial is replaced only by a faster measurement of the same schedule;
 * - no schedule is measured twice when a stored trial of it exists at the time the search picks
 *   it (`mctune tune` looks each candidate up with mct_db_get_trial_key before measuring; the
 *   search's lookup). Two processes that pick one schedule before either has stored it may
 *   both measure it; the faster measurement is kept. So the trials of a workload are exactly
 *   the distinct schedules measured by all runs, and no run measures more than its budget.
 * Each put is one write transaction: a reader sees a put completely or not at all.
 *
 * Errors: functions return 0 or a negative MCT_E* code; the handle keeps a message naming the
 * file, record or field and saying what to do (mct_db_errmsg), valid until the next call on it.
 * A success does not always clear it: read it only after a failure. A missing record is
 * MCT_ENOTFOUND with no message. "Storage errors" below are those any read
 * or write of the file can meet: MCT_ECORRUPT (the file or the record read is damaged, or does
 * not match its key; the message points to `mctune db check`), MCT_EIO (disk error, no space,
 * permissions), MCT_EBUSY (locked, too many readers, the map cannot grow), MCT_ENOMEM,
 * MCT_EVERSION (another LMDB version). Writes also refuse a handle opened MCT_DB_RDONLY
 * (MCT_EIO). On failure, out-parameters hold nothing usable unless said otherwise.
 *
 * Ownership: the handle owns everything it returns by pointer (mct_db_errmsg, mct_db_path);
 * what a function malloc's for the caller (JSON text, an LLM reply) says so and is free()d by
 * the caller. Records are plain structs copied into the caller's storage. Callbacks get
 * pointers valid during the call only; a write through the same handle from inside one fails
 * with MCT_EBUSY when the map would have to grow.
 */
#ifndef MCT_DB_H
#define MCT_DB_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "codegen/codegen.h"
#include "runtime/cpu.h"
#include "runtime/mct_err.h"

#define MCT_DB_SCHEMA 1

typedef struct mct_db mct_db;  /* opaque; mct_db_open / mct_db_close */

/* best-record key: 32 bytes; build it with mct_db_key_make */
typedef struct mct_db_key {
    uint8_t wl[16];     /* mct_wl_hash of the canonical workload text */
    uint64_t cpu;       /* mct_cpu_key */
    uint32_t threads;
    uint32_t zero;      /* padding, always 0 */
} mct_db_key;

/* trial key: 48 bytes; zero it, set k with mct_db_key_make and sched with mct_hash_text of the
 * canonical schedule text */
typedef struct mct_db_trial_key {
    mct_db_key k;
    uint8_t sched[16];  /* xxh3-128 of the canonical schedule text */
} mct_db_trial_key;

/* A best record or a trial, with its provenance. Plain fixed-size fields: copy freely. */
typedef struct mct_db_rec {
    char workload[256];     /* canonical workload text (mct_wl_format) */
    uint64_t cpu;           /* CPU key */
    int threads;            /* >= 1 */
    char schedule[4096];    /* canonical schedule text (mct_sched_format); "" = untuned nest */
    double median_ns;       /* median latency of one call, > 0 */
    double spread_ns;       /* spread of the samples (e.g. p90 - p10), >= 0 */
    double gflops;
    int64_t samples;        /* candidates measured by the search that found it (1 for a trial) */
    char search[32];        /* "mcts", "evolutionary", "random", "manual" */
    char guide[32];         /* "llm", "heuristic", "random", "" */
    char compiler[128];     /* "gcc 12.2.0" */
    char flags[256];        /* "-O3 -march=native -fopenmp" */
    char tool[64];          /* "mctune 0.1.0" */
    int64_t timestamp;      /* seconds since the Unix epoch */
    char model[64];         /* optional tag: the model the workload came from ("llama-3-8b") */
    double base_gflops;     /* optional (0: not measured): the fastest library (OpenBLAS,
                             * oneDNN) on the same call and thread count, measured beside the
                             * best schedule of a b=raw workload, on this record's scale (its
                             * speed over the schedule's in that run, times gflops: the ratio to
                             * gflops is the side-by-side one); the cblas drop-in runs a kernel
                             * only where it is faster than this */
} mct_db_rec;

/* Open flags. */
#define MCT_DB_RDONLY 1     /* never writes; a database without meta counts as empty */
#define MCT_DB_NOSYNC 2     /* no fsync on commit (benchmarks, scratch databases) */

/* The default location: $MCTUNE_DB, else $XDG_CACHE_HOME/mctune, else $HOME/.cache/mctune,
 * written into buf (len bytes). Returns 0, MCT_ERANGE if buf is too small (buf then holds a cut
 * path), MCT_EINVAL when none of these is set. No message. */
int mct_db_default_path(char *buf, size_t len);

/* Opens (creating when absent, unless MCT_DB_RDONLY) the database at path: a directory holding
 * data.mdb, or an LMDB data file itself. Checks the schema version and the codegen signature.
 * On success *out is a handle the caller closes with mct_db_close; on failure *out is NULL and
 * err (may be NULL) says what was wrong and what to do: MCT_EINVAL (path empty or too long),
 * MCT_EIO (cannot create or read; read-only location; no database there with MCT_DB_RDONLY),
 * MCT_ECORRUPT (not an LMDB file, not an mctune one, damaged or truncated), MCT_EVERSION
 * (written by another schema, code generator or LMDB format), MCT_EBUSY, MCT_ENOMEM. */
int mct_db_open(const char *path, int flags, char *err, size_t errlen, mct_db **out);
/* Closes the handle and frees it; NULL is ignored. Pointers it returned become invalid. */
void mct_db_close(mct_db *db);

/* The last error message on this handle ("" when none, or db NULL). Owned by the handle, valid
 * until the next call on it. */
const char *mct_db_errmsg(const mct_db *db);
/* The path given to mct_db_open (db not NULL). Owned by the handle, valid until mct_db_close. */
const char *mct_db_path(const mct_db *db);

/* The best-record key of (workload hash, CPU key, thread count) into *out: zeroed (padding
 * included), then filled. Cannot fail. */
void mct_db_key_make(const uint8_t wl[16], uint64_t cpu, int threads, mct_db_key *out);

/* Key of a record into *out: parses and hashes its workload text, after the checks of a put
 * (threads, median_ns, a legal canonical schedule). No handle, so no message: MCT_EINVAL or
 * MCT_ERANGE for a record a put would refuse, MCT_ENOMEM. */
int mct_db_rec_key(const mct_db_rec *r, mct_db_key *out);

/* CPU records ------------------------------------------------------------------------------ */

/* Stores c under mct_cpu_key(c), replacing a stored description of that key. Errors: storage
 * errors (MCT_ENOMEM included). */
int mct_db_put_cpu(mct_db *db, const mct_cpu *c);
/* The CPU record of key into *out. MCT_ENOTFOUND when absent; MCT_ECORRUPT when the stored
 * record does not parse; storage errors. */
int mct_db_get_cpu(mct_db *db, uint64_t key, mct_cpu *out);

/* JSON form of a CPU record (also what `mctune cpu --json` prints): key, vendor, family, model,
 * stepping, brand, tier, feature names, raw CPUID words, xcr0, caches, cores; indented when
 * pretty. *out is malloc'ed (the caller free()s it); MCT_ENOMEM (then *out is NULL). */
int mct_db_cpu_to_json(const mct_cpu *c, int pretty, char **out);
/* Parses it back into *out. err (may be NULL) names the field: MCT_EINVAL (not JSON, a field
 * missing or of the wrong type), MCT_ERANGE (a number out of range), MCT_ECORRUPT (a "key" that
 * does not match the record). */
int mct_db_cpu_from_json(const char *text, size_t len, mct_cpu *out, char *err, size_t errlen);

/* Workloads, trials, best records --------------------------------------------------------- */

/* Called with each record of an iteration; the record is valid during the call only. A nonzero
 * return stops the iteration, which returns it. */
typedef int (*mct_db_rec_fn)(const mct_db_rec *r, void *ctx);

/* Registers a workload (hash -> canonical text) and its M index entry; a put of a record does
 * this too. MCT_EINVAL (w fails mct_wl_check), MCT_ERANGE (text too long), MCT_ECORRUPT (another
 * stored text has its hash), storage errors. */
int mct_db_put_workload(mct_db *db, const mct_workload *w);
/* Canonical text of a stored workload hash into buf (len bytes; 256 always suffice).
 * MCT_ENOTFOUND when absent, MCT_ERANGE when it does not fit, storage errors. */
int mct_db_get_workload(mct_db *db, const uint8_t wl[16], char *buf, size_t len);

/* Stores one measurement unless a trial of the same schedule is at least as fast (that is not an
 * error: 0); a faster one also updates the best record when that has this schedule. The
 * workload text is canonicalized and must parse, the schedule must be a legal canonical
 * schedule of it. MCT_EINVAL, MCT_ERANGE (a record put refuses: workload, threads, median_ns,
 * schedule; the message names it), MCT_ECORRUPT (another stored workload text has this one's
 * hash), storage errors (MCT_ENOMEM included). A damaged stored trial is replaced (a damaged best
 * stays). */
int mct_db_put_trial(mct_db *db, const mct_db_rec *r);
/* The trial whose key fields (workload, cpu, threads, schedule; the rest is ignored) are those
 * of key_fields, into *out. MCT_ENOTFOUND when absent; MCT_EINVAL or MCT_ERANGE when the key
 * fields are not a valid record's (as put); MCT_ECORRUPT, storage errors. Kept for callers that
 * hold a record; mct_db_get_trial_key takes the key. */
int mct_db_get_trial(mct_db *db, const mct_db_rec *key_fields, mct_db_rec *out);
/* The trial of one schedule, by its key, into *out. MCT_ENOTFOUND when absent; MCT_ECORRUPT
 * when the stored record is damaged or does not match k; storage errors. */
int mct_db_get_trial_key(mct_db *db, const mct_db_trial_key *k, mct_db_rec *out);
/* The number of trials stored under (workload, cpu, threads) of k into *n: a cursor range scan
 * on the 32-byte key prefix, not a scan of every trial; the values are not read (a damaged one
 * counts). Storage errors (then *n is 0). */
int mct_db_count_trials(mct_db *db, const mct_db_key *k, size_t *n);

/* Stores r as the best record of its key unless the stored one is at least as fast (lower
 * median_ns), with the trial of its schedule when none is stored (see above). *stored (may be
 * NULL) is 1 when r was written, 0 when the old record stayed. Errors as mct_db_put_trial; a
 * damaged stored best or trial is replaced. */
int mct_db_put_best(mct_db *db, const mct_db_rec *r, int *stored);

/* The best record of exactly (workload hash, cpu, threads) into *out. MCT_ENOTFOUND when
 * absent; MCT_ECORRUPT when damaged or not matching its key; storage errors. */
int mct_db_get_best(mct_db *db, const uint8_t wl[16], uint64_t cpu, int threads,
                    mct_db_rec *out);

/* Fallback ladder for a CPU: its own record, else the fastest record of a CPU with the same
 * vendor and tier, else of a CPU with the same tier (CPUs must be in `cpus`), else none. The
 * rung of each record is the runtime's (mct_rt_rung_of), so the generated library falls back
 * the same way. */
typedef enum {
    MCT_RUNG_EXACT = 0,
    MCT_RUNG_VENDOR_TIER = 1,
    MCT_RUNG_TIER = 2,
    MCT_RUNG_NONE = 3
} mct_db_rung;
/* A static string naming the rung ("exact", "same vendor and tier", "same tier", "none"). */
const char *mct_db_rung_name(mct_db_rung r);

/* The record the ladder picks for (wl, cpu, threads) into *out and its rung into *rung, inside
 * one read snapshot. MCT_ENOTFOUND with *rung = MCT_RUNG_NONE when no rung matches;
 * MCT_ECORRUPT when a record or CPU record on the way is damaged; storage errors. */
int mct_db_get_best_ladder(mct_db *db, const uint8_t wl[16], const mct_cpu *cpu, int threads,
                           mct_db_rec *out, mct_db_rung *rung);

/* The best record for (cpu, threads) of the workload that differs from w only in M and has the
 * M nearest to w->M by mct_rt_m_nearer (log scale, ties to the larger M: the rule the generated
 * library's lookup uses); the exact M when stored. out->workload names it. One read snapshot.
 * MCT_ENOTFOUND when the family has no record for (cpu, threads); MCT_ECORRUPT, storage
 * errors. */
int mct_db_get_best_nearest_m(mct_db *db, const mct_workload *w, uint64_t cpu, int threads,
                              mct_db_rec *out);

/* Calls fn with every best record (any CPU, any thread count, any M) of w's family (every field
 * but M, mct_wl_same_family) found through the M index, in ascending M (records of one M in key
 * order), inside one read snapshot. w's own M need not be stored. Returns 0 when all were seen
 * (none is 0 too), fn's nonzero return when it stopped, MCT_ECORRUPT for a damaged record,
 * MCT_ENOMEM, storage errors. */
int mct_db_iter_family(mct_db *db, const mct_workload *w, mct_db_rec_fn fn, void *ctx);

/* Deletes best records and trials of a workload; cpu 0 = every CPU, threads 0 = every count.
 * *count (may be NULL) gets the number of records removed; none is MCT_ENOTFOUND (no message).
 * Storage errors: nothing was removed, and *count is not meaningful. The workload text and its
 * M index entry stay. */
int mct_db_delete(mct_db *db, const uint8_t wl[16], uint64_t cpu, int threads, int *count);

/* Iteration: calls fn for each record of table t (MCT_DB_BEST or MCT_DB_TRIALS; any other value
 * reads as BEST), or each CPU record, in key order inside one read snapshot; a nonzero return
 * from fn stops and is returned as it is. The pointer is valid during the call only.
 * MCT_ECORRUPT at the first damaged record (the iteration stops there), MCT_ENOMEM, storage
 * errors. */
typedef enum { MCT_DB_BEST = 0, MCT_DB_TRIALS = 1 } mct_db_table;
typedef int (*mct_db_cpu_fn)(const mct_cpu *c, void *ctx);
int mct_db_iter(mct_db *db, mct_db_table t, mct_db_rec_fn fn, void *ctx);
int mct_db_iter_cpus(mct_db *db, mct_db_cpu_fn fn, void *ctx);

typedef struct mct_db_stats {
    size_t cpus, workloads, best, trials, llm;
    uint64_t map_bytes;     /* current map size */
    uint64_t used_bytes;    /* pages in use * page size */
    uint64_t file_bytes;    /* size of data.mdb */
} mct_db_stats;
/* Entry counts and sizes into *out (zeroed first). Storage errors. */
int mct_db_stats_get(mct_db *db, mct_db_stats *out);

/* LLM reply cache: key = xxh3-128 of (model, params, prompt). put replaces a cached reply of
 * the same key: MCT_EINVAL when an argument is NULL, MCT_ENOMEM, storage errors. get sets *reply
 * to a malloc'ed copy (the caller free()s it), NULL on failure: MCT_EINVAL when an argument is
 * NULL (*reply then untouched if reply itself is NULL), MCT_ENOTFOUND when none is cached, MCT_ECORRUPT when the
 * entry is damaged or was asked with another prompt (hash collision), MCT_ENOMEM, storage
 * errors. */
int mct_db_llm_put(mct_db *db, const char *model, const char *params, const char *prompt,
                   const char *reply);
int mct_db_llm_get(mct_db *db, const char *model, const char *params, const char *prompt,
                   char **reply);

/* JSON Lines ------------------------------------------------------------------------------- */

/* One line of an export: {"type": "cpu"|"workload"|"best"|"trial"|"llm", ...}. */
typedef enum {
    MCT_DB_ITEM_CPU, MCT_DB_ITEM_WORKLOAD, MCT_DB_ITEM_BEST, MCT_DB_ITEM_TRIAL, MCT_DB_ITEM_LLM
} mct_db_kind;

typedef struct mct_db_item {
    mct_db_kind kind;
    mct_cpu cpu;                  /* CPU */
    mct_db_rec rec;               /* BEST, TRIAL; WORKLOAD uses rec.workload only */
    mct_workload wl;              /* WORKLOAD, BEST, TRIAL: rec.workload parsed, when wl_set */
    int wl_set;                   /* set by mct_db_item_parse; 0: applying it parses the text */
    char *model, *params, *prompt, *reply;   /* LLM: owned by the item, see mct_db_item_clear */
} mct_db_item;

/* Parses one JSONL line (without its newline) into *out (zeroed first), with the workload
 * canonicalized and parsed into out->wl (wl_set). On error returns MCT_EINVAL (not JSON, unknown
 * type, a field missing or of the wrong type), MCT_ERANGE (a value out of range), MCT_ECORRUPT
 * (wl_hash or a CPU key that does not match the text) or MCT_ENOMEM, and err (may be NULL) names
 * the field. The item must be cleared with mct_db_item_clear after success (it is left clear on
 * failure). */
int mct_db_item_parse(const char *line, size_t len, mct_db_item *out, char *err, size_t errlen);
/* Frees the LLM strings of an item and sets them NULL; clearing twice is harmless. */
void mct_db_item_clear(mct_db_item *it);
/* The line for an item (no newline), as an export writes it; *out is malloc'ed (the caller
 * free()s it). MCT_EINVAL for an unknown kind, MCT_ENOMEM (then *out is NULL). */
int mct_db_item_format(const mct_db_item *it, char **out);

/* Writes the records as JSON Lines to f, between a first line {"type":"begin","format":1} and
 * a last line {"type":"end","records":N}, from one read snapshot, in the order cpus, workloads,
 * best, trials (only with with_trials), llm. With cpu not 0 only that CPU's record, best records
 * and trials are written (no workloads, no llm). *count (may be NULL) gets the records written
 * (N, the frame lines not counted), also on a failure after the read began. MCT_EIO when f
 * cannot be written, MCT_ECORRUPT at a damaged record (what was written stays in f, without the
 * end line, so an import refuses it), MCT_ENOMEM, storage errors. f is flushed, not closed. */
int mct_db_export(mct_db *db, FILE *f, uint64_t cpu, int with_trials, size_t *count);

/* What an import or merge did. */
typedef struct mct_db_report {
    size_t added;       /* new keys */
    size_t replaced;    /* best records and trials replaced by a faster one */
    size_t kept;        /* incoming best records and trials slower than (or equal to) the stored */
    size_t same;        /* identical to what was stored */
    size_t conflicts;   /* same key, different content (reported through the note function) */
} mct_db_report;

/* Called with a one-line description of each conflict and each record replaced by a faster one
 * (valid during the call only); may be NULL. Lines come as the transaction runs: a failed import
 * or merge may have sent some, and a rerun after the map grew sends them again. */
typedef void (*mct_db_note_fn)(const char *line, void *ctx);

/* Imports a JSON Lines file in one transaction: all of it or nothing. Best records and trials
 * keep the faster per key (a tie keeps the stored one); CPU records, workloads and LLM replies
 * are added when absent (a stored CPU record or reply that differs stays: a conflict); each best
 * written must have the trial of its schedule (its key) in the file or the database. The error
 * names the file, the line and the field. A
 * file that starts with an export's begin line must hold its end line with the right record
 * count (several exports one after another are fine): an export cut short is refused
 * (MCT_ECORRUPT). MCT_EIO (the file cannot be read), MCT_EINVAL, MCT_ERANGE, MCT_ECORRUPT,
 * MCT_EVERSION (a begin line of another format), as mct_db_item_parse for a bad line, storage
 * errors. *rep (may be NULL) is what it did, all zero on failure. */
int mct_db_import(mct_db *db, const char *file, mct_db_note_fn note, void *ctx,
                  mct_db_report *rep);

/* Merges another database (opened read-only) into db, in one transaction, with the import rules.
 * MCT_EINVAL (other_path is db itself; a best without its trial), the errors of mct_db_open for
 * other_path, MCT_ECORRUPT (a damaged record in it), MCT_ENOMEM, storage errors; *rep (may be
 * NULL) as for an import. */
int mct_db_merge(mct_db *db, const char *other_path, mct_db_note_fn note, void *ctx,
                 mct_db_report *rep);

/* Checking a damaged database ----------------------------------------------------------------- */

typedef struct mct_db_check_report {
    size_t ok;              /* records that decode and pass the entry checks */
    size_t damaged;         /* records (or whole tables, or the meta page) that do not */
    size_t best_no_trial;   /* of those: best records without a trial of their schedule */
    size_t salvaged;        /* records copied into the salvage database */
} mct_db_check_report;

/* Opens path read-only and reads every record of every table: each must decode, match its key
 * and pass the checks of an import (legal canonical schedule; a best has a readable trial).
 * note (may be NULL) gets one line per problem (the first 200). When the current meta page is
 * damaged the previous snapshot is read instead (from a repaired temporary copy). With salvage
 * (a new folder; NULL for none) the readable records are written there, in one transaction.
 * rep (not NULL) is zeroed first. Returns 0 when the check ran (rep->damaged says what it
 * found), or an error with err (errlen bytes; NULL only with errlen 0) set (the database cannot
 * be opened at all: the errors of mct_db_open; salvage names an existing database or the
 * checked one: MCT_EINVAL; the salvage cannot be written: storage errors; MCT_ENOMEM). */
int mct_db_check(const char *path, const char *salvage, mct_db_note_fn note, void *ctx,
                 mct_db_check_report *rep, char *err, size_t errlen);

#endif
