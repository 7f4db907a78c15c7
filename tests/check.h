/* The one test macro: CHECK(expr) counts a pass or reports the failing expression and line.
 * Each test program ends with `return check_done();`, which prints "N passed, N failed". */
#ifndef MCT_TESTS_CHECK_H
#define MCT_TESTS_CHECK_H
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

static int check_pass_, check_fail_;
#define CHECK(e) do { if (e) check_pass_++; else { check_fail_++; \
    fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #e); } } while (0)
#define CHECKF(e, ...) do { if (e) check_pass_++; else { check_fail_++; \
    fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #e); \
    fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } } while (0)
/* Runs a shell command built printf-style, keeps up to len-1 bytes of what it prints (stdout;
 * add 2>&1 for stderr) in out (may be NULL), reads the rest so the command never blocks, and
 * returns its exit status (-1 when it did not exit normally). */
static inline __attribute__((format(printf, 3, 4))) int check_sh(char *out, size_t len,
                                                               const char *fmt, ...)
{
    char cmd[8192], buf[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    size_t n = 0, got;
    while ((got = fread(buf, 1, sizeof buf, p)) > 0)
        if (out && n + 1 < len) {
            size_t k = got < len - 1 - n ? got : len - 1 - n;
            memcpy(out + n, buf, k);
            n += k;
        }
    if (out && len)
        out[n] = 0;
    int st = pclose(p);
    return st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* A whole file as a NUL-terminated malloc'ed string (free it), its length in *len when len is
 * not NULL; NULL when it cannot be read. */
static inline char *check_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    if (b) {
        b[n] = 0;
        if (len)
            *len = (size_t)n;
    }
    fclose(f);
    return b;
}

/* A fresh folder for one test program: $TMPDIR (or /tmp)/mct-TAG-XXXXXX into buf; 0, or -1
 * with a message. check_rmtree removes it at the end. */
static inline int check_tmpdir(char *buf, size_t len, const char *tag)
{
    const char *tmp = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(buf, len, "%s/mct-%s-XXXXXX", tmp, tag);
    if (!mkdtemp(buf)) {
        perror("mkdtemp");
        return -1;
    }
    return 0;
}

static inline void check_rmtree(const char *dir)
{
    if (check_sh(NULL, 0, "rm -rf '%s'", dir) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

static inline int check_done(void)
{
    printf("%d passed, %d failed\n", check_pass_, check_fail_);
    return check_fail_ ? 1 : 0;
}
#endif
