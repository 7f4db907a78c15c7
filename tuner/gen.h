/* mctune gen: writes a standalone C kernel library from the tuning database.
 *
 * Output in out_dir: NAME.h (the API, a documented contract), NAME.c (one C11 translation unit:
 * the runtime of runtime/ embedded, every selected CPU's kernels lowered for that CPU's ISA tier
 * under target attributes, generic kernels per tier, the dispatch tables), Makefile (static and
 * shared library, install) and NAME.pc (pkg-config).
 *
 * This side reads the database (CPU records, best records of one thread count, optionally only
 * the families of a model file) and parses each schedule once; the files are written by
 * codegen/emit.h, which a program holding kernels in memory may call directly. Every file's
 * first line carries the database signature (schema, code generator, records used and their
 * fingerprint) and the date: SOURCE_DATE_EPOCH when set, else now. */
#ifndef MCT_GEN_H
#define MCT_GEN_H

#include <stddef.h>
#include <stdio.h>

typedef struct mct_gen_opts {
    const char *db;         /* database path */
    const char *out_dir;    /* created when absent (one level) */
    const char *name;       /* library name: 1 to 40 of [a-z0-9_], not first a digit, not
                             * starting with "mct_", not "cblas" (mct_emit_name_ok) */
    const char *cpus;       /* "all" (NULL), "host", or comma-separated CPU keys */
    const char *model;      /* NULL, a model file (models/NAME.json) or a file of workload keys
                             * (one a line, # comments): only records of those families (every
                             * field but M, mct_wl_same_family) are kept */
    int threads;            /* records of this thread count; 0: every thread count the database
                             * holds (each call then runs the kernel tuned for its budget) */
    const char *tool;       /* MCT_TOOL ("mctune 0.1.0"), named in every generated file */
} mct_gen_opts;

/* What was written. */
typedef struct mct_gen_report {
    int tables;             /* CPU tables */
    int kernels;            /* tuned kernels (distinct functions) */
    int records;            /* best records used */
    int skipped;            /* records whose workload or schedule did not parse (each reported
                             * on log); a kernel that does not lower fails the whole call */
} mct_gen_report;

/* Writes the library. Skipped records go to log (may be NULL). Returns 0 and fills *rep (may be
 * NULL; written on success only); on failure a negative MCT_E* code, and err (not NULL,
 * errlen > 0) says what was wrong and what to do: MCT_EINVAL (an unusable name, threads < 1, a
 * --cpus entry that is not a CPU key, 'host' or 'all', a bad SOURCE_DATE_EPOCH), MCT_ENOTFOUND
 * (a --cpus key with no CPU record, other than the host's), MCT_ERANGE (more than 64 CPUs
 * selected), the errors of mct_db_open and of reading the database, of
 * mct_tune_model_load_any for --model and of mct_emit_library, MCT_ENOMEM. Files written before
 * a failure stay. Only the first 64 CPU records of the database (in key order) are read; the
 * others are ignored. */
int mct_gen_library(const mct_gen_opts *o, FILE *log, mct_gen_report *rep, char *err,
                    size_t errlen);

#endif
