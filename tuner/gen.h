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
    const char *name;       /* C identifier: [a-z_][a-z0-9_]*, at most 40 characters */
    const char *cpus;       /* "all" (NULL), "host", or comma-separated CPU keys */
    const char *model;      /* NULL, a model file (models/NAME.json) or a file of workload keys
                             * (one a line, # comments): only records of those (op, layout, N,
                             * K, epilogue) are kept */
    int threads;            /* records of this thread count; 0: every thread count the database
                             * holds (each call then runs the kernel tuned for its budget) */
    const char *tool;       /* MCT_TOOL ("mctune 0.1.0"), named in every generated file */
} mct_gen_opts;

/* What was written. */
typedef struct mct_gen_report {
    int tables;             /* CPU tables */
    int kernels;            /* tuned kernels (distinct functions) */
    int records;            /* best records used */
    int skipped;            /* records that did not parse or lower (each reported on log) */
} mct_gen_report;

/* Writes the library. Progress and skipped records go to log (may be NULL). Returns 0 and fills
 * *rep (may be NULL); on failure a negative MCT_E* code, and err (errlen > 0) says what was
 * wrong and what to do. */
int mct_gen_library(const mct_gen_opts *o, FILE *log, mct_gen_report *rep, char *err,
                    size_t errlen);

#endif
