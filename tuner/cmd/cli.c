#include "tuner/cmd/cli.h"
#include "codegen/text.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int mct_cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "mctune %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(see 'mctune %s --help')\n", cmd);
    return 2;
}

int mct_cli_opt(const char *cmd, int argc, char **argv, int *i, const char *name,
                const char **val)
{
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0)
        return 0;
    if (a[n] == '=') {
        *val = a + n + 1;
        return 1;
    }
    if (a[n] != '\0')
        return 0;
    if (*i + 1 >= argc) {
        mct_cli_usage_error(cmd, "option %s needs a value", name);
        return -1;
    }
    *val = argv[++*i];
    return 1;
}

int mct_cli_int(const char *cmd, const char *opt, const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        mct_cli_usage_error(cmd, "%s '%s' is not a whole number in [%ld, %ld]", opt, s, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

char *mct_cli_text_arg(const char *cmd, const char *text)
{
    if (text[0] != '@')
        return strdup(text);
    char *buf, err[1200];
    size_t len;
    int r = mct_slurp(text + 1, 0, &buf, &len, err, sizeof err);
    if (r == MCT_EINVAL) {
        fprintf(stderr, "mctune %s: '%s' is a directory; after @ give a file holding the text\n",
                cmd, text + 1);
        return NULL;
    }
    if (r) {
        fprintf(stderr, "mctune %s: %s\n", cmd, err);
        return NULL;
    }
    /* a NUL inside would silently cut the text there */
    const char *nul = memchr(buf, 0, len);
    if (nul) {
        fprintf(stderr, "mctune %s: '%s' holds a NUL byte at offset %ld; it must be plain text "
                "(remove the byte or give the text itself)\n", cmd, text + 1, (long)(nul - buf));
        free(buf);
        return NULL;
    }
    while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' '))
        buf[--len] = 0;
    return buf;
}

int mct_cli_tier(const char *cmd, const char *name, mct_cpu *cpu, mct_tier *tier)
{
    const mct_cpu *host = mct_cpu_host();
    mct_tier ht = mct_cpu_tier_of(host), t = mct_cpu_tier();
    if (name) {
        if (mct_tier_parse(name, &t))
            return mct_cli_usage_error(cmd, "--tier '%s' is not a tier; use one of generic, "
                                       "sse4.2, avx2, avx512, avx512-bf16-vnni, amx", name);
        if (t > ht)
            return mct_cli_usage_error(cmd, "--tier %s is above what this CPU runs (%s); use a "
                                       "tier at or below %s, or tune on a machine that has it",
                                       mct_tier_name(t), mct_tier_name(ht), mct_tier_name(ht));
    }
    mct_cpu_restrict(host, t, cpu);
    *tier = t;
    return 0;
}
