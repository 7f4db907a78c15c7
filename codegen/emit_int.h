/* codegen emission internals shared by emit.c (kernels, dispatch tables, the files) and
 * emit_fixed.c (what every library holds whatever its kernels: the API, the runtime copy, the
 * Makefile and NAME.pc). Other modules never include this file. */
#ifndef MCT_EMIT_INT_H
#define MCT_EMIT_INT_H

#include <stddef.h>
#include <stdio.h>

#include "codegen/emit.h"

/* One library being written. The first failure sticks (em_fail); later ones keep it. */
typedef struct em {
    const mct_emit_opts *o;
    const char *n;          /* o->name */
    char U[64];             /* its upper-case form */
    char date[32];          /* "2025-01-31 12:00 UTC" */
    char *err;
    size_t errlen;
    int rc;
} em;

/* Records a failure (the first one) and returns the code that stands. */
int em_fail(em *e, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* The first line of every file: open and close are the comment's delimiters. */
void em_header_line(em *e, FILE *f, const char *open, const char *close);

/* Opens path for writing, or fails with the system's reason (NULL). */
FILE *em_open(em *e, const char *path);
/* Closes f, failing when a write was lost. Returns e->rc. */
int em_close(em *e, FILE *f, const char *path);

/* A set of byte strings, hashed and confirmed byte for byte: how the emitter recognises what it
 * has already written (kernel contents, kernel names, runtime identifiers). The strings are
 * borrowed and must outlive the set; zero-initialize, free with em_set_free. */
typedef struct em_set {
    size_t cap, n;
    struct em_slot {
        const char *p;
        size_t len;
        int val;
    } *slot;
} em_set;

/* The value stored with (p, len), or -1 when absent. */
int em_set_find(const em_set *s, const char *p, size_t len);
/* Adds (p, len), which must be absent, with value val >= 0. 0 or MCT_ENOMEM. */
int em_set_add(em_set *s, const char *p, size_t len, int val);
void em_set_free(em_set *s);

/* emit_fixed.c */

/* NAME.h. */
int em_write_api_header(em *e, const char *path);
/* The runtime copied into NAME.c, its mct_ identifiers renamed NAME__mct_... first. */
int em_put_runtime(em *e, FILE *f);
/* The public API at the end of NAME.c (after NAME__lib). */
void em_put_api(em *e, FILE *f);
/* Makefile and NAME.pc. */
int em_write_build(em *e);

#endif
