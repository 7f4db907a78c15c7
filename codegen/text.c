/* Growable strings and whole-file reads (codegen/text.h). */
#include "codegen/text.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "runtime/mct_err.h"

static int reserve(mct_str *b, size_t extra)
{
    if (b->oom)
        return -1;
    if (b->n + extra + 1 <= b->cap)
        return 0;
    size_t c = b->cap ? b->cap : 1024;
    while (c < b->n + extra + 1) {
        if (c > (size_t)-1 / 2) {
            b->oom = 1;
            return -1;
        }
        c *= 2;
    }
    char *q = realloc(b->s, c);
    if (!q) {
        b->oom = 1;
        return -1;
    }
    b->s = q;
    b->cap = c;
    return 0;
}

void mct_str_add(mct_str *b, const char *p, size_t n)
{
    if (reserve(b, n))
        return;
    memcpy(b->s + b->n, p, n);
    b->n += n;
    b->s[b->n] = 0;
}

void mct_str_puts(mct_str *b, const char *s) { mct_str_add(b, s, strlen(s)); }

void mct_str_vaddf(mct_str *b, const char *fmt, va_list ap)
{
    va_list cp;
    va_copy(cp, ap);
    int k = vsnprintf(NULL, 0, fmt, cp);
    va_end(cp);
    if (k < 0) {
        b->oom = 1;
        return;
    }
    if (reserve(b, (size_t)k))
        return;
    vsnprintf(b->s + b->n, (size_t)k + 1, fmt, ap);
    b->n += (size_t)k;
}

void mct_str_addf(mct_str *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    mct_str_vaddf(b, fmt, ap);
    va_end(ap);
}

char *mct_str_take(mct_str *b)
{
    if (!b->oom && !b->s && reserve(b, 0) == 0)
        b->s[0] = 0;
    if (b->oom) {
        mct_str_free(b);
        return NULL;
    }
    char *s = b->s;
    b->s = NULL;
    b->n = b->cap = 0;
    return s;
}

void mct_str_free(mct_str *b)
{
    free(b->s);
    b->s = NULL;
    b->n = b->cap = 0;
    b->oom = 0;
}

int mct_slurp(const char *path, size_t max, char **out, size_t *len, char *err, size_t errlen)
{
    *out = NULL;
    if (len)
        *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return mct_errf(err, errlen, MCT_EIO, "cannot read '%s': %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(f);
        return mct_errf(err, errlen, MCT_EINVAL, "'%s' is a directory; give a file", path);
    }
    mct_str b = {0};
    char tmp[65536];
    size_t got;
    int rc = MCT_OK;
    while ((got = fread(tmp, 1, sizeof tmp, f)) > 0) {
        if (max && b.n + got > max) {
            rc = mct_errf(err, errlen, MCT_ERANGE, "'%s' is larger than %zu bytes; give a "
                          "smaller file", path, max);
            break;
        }
        mct_str_add(&b, tmp, got);
    }
    if (rc == MCT_OK && ferror(f))
        rc = mct_errf(err, errlen, MCT_EIO, "cannot read '%s': %s", path, strerror(errno));
    fclose(f);
    size_t n = b.n;
    char *s = rc == MCT_OK ? mct_str_take(&b) : (mct_str_free(&b), NULL);
    if (rc == MCT_OK && !s)
        rc = mct_errf(err, errlen, MCT_ENOMEM, "'%s': out of memory", path);
    if (rc)
        return rc;
    *out = s;
    if (len)
        *len = n;
    return MCT_OK;
}
