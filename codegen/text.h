/* Text helpers for the modules above the runtime (codegen's lowering and the tuner use them): a
 * growable string and reading a whole file. Plain C and libc.
 *
 * mct_str: zero-initialize (`mct_str b = {0};`), append, read b.s (NUL-terminated whenever
 * b.n > 0; NULL while nothing was added), release with mct_str_free or take the buffer with
 * mct_str_take. A failed allocation sets b.oom, keeps what was there and makes every later
 * append a no-op, so a caller checks once at the end (a sticky error, as libxsmm's generator).
 */
#ifndef MCT_TEXT_H
#define MCT_TEXT_H

#include <stdarg.h>
#include <stddef.h>

typedef struct mct_str {
    char *s;        /* owned; NUL-terminated when n > 0 */
    size_t n, cap;  /* length without the NUL, allocated size */
    int oom;        /* sticky: an allocation failed */
} mct_str;

/* Append n bytes at p, a NUL-terminated string, or printf-formatted text. They never fail: an
 * allocation failure (or a format error in addf) sets b->oom and later appends do nothing. b.s
 * may move on any append: pointers into it are valid until the next one. */
void mct_str_add(mct_str *b, const char *p, size_t n);
void mct_str_puts(mct_str *b, const char *s);
void mct_str_addf(mct_str *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void mct_str_vaddf(mct_str *b, const char *fmt, va_list ap);
/* The buffer, NUL-terminated (an empty malloc'ed string when nothing was added), now owned by
 * the caller (free()); b is left empty. NULL when b.oom is set (b is then freed). */
char *mct_str_take(mct_str *b);
/* Frees the buffer and resets b to empty, oom cleared, ready for reuse. */
void mct_str_free(mct_str *b);

/* Reads the whole file at path into *out (malloc'ed, NUL-terminated; the caller free()s it), its
 * length into *len (may be NULL; the text may hold NUL bytes before it). Refuses, with a message
 * in err (may be NULL) naming the file and what to do: MCT_EIO (cannot open or read: the
 * system's reason), MCT_EINVAL (a directory), MCT_ERANGE (larger than max bytes; 0: no limit),
 * MCT_ENOMEM. On failure *out is NULL and *len 0. */
int mct_slurp(const char *path, size_t max, char **out, size_t *len, char *err, size_t errlen);

#endif
