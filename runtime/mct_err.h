/* mctune error codes: one table for every module (and for generated libraries).
 * Functions return int: 0 on success, a negative MCT_E* code on failure.
 * MCT_ENOTAPPLIC is an answer, not a failure: "this transformation does not apply here",
 * and the search uses it to drop a proposal. Plain C, libc only. */
#ifndef MCT_ERR_H
#define MCT_ERR_H

#include <stddef.h>

enum {
    MCT_OK = 0,
    MCT_EINVAL = -1,      /* bad argument or malformed text */
    MCT_ENOMEM = -2,      /* allocation failed */
    MCT_ENOTAPPLIC = -3,  /* transformation not legal here (reason given) */
    MCT_ERANGE = -4,      /* value out of range (size, factor, overflow) */
    MCT_EIO = -5,         /* file or process I/O failed */
    MCT_ENOTFOUND = -6,   /* no such record */
    MCT_ECORRUPT = -7,    /* stored data is damaged or does not match its key */
    MCT_EVERSION = -8,    /* schema or signature mismatch */
    MCT_ECOMPILE = -9,    /* candidate did not compile */
    MCT_ECRASH = -10,     /* candidate crashed */
    MCT_ETIMEOUT = -11,   /* candidate or request ran past its time limit */
    MCT_EWRONG = -12,     /* candidate gave a wrong answer */
    MCT_ENET = -13,       /* network or remote service failure */
    MCT_EBUSY = -14,      /* resource busy / limit reached */
    MCT_EUNSUPPORTED = -15 /* the host lacks what this needs (ISA, tool) */
};

/* A static, human-readable name for an error code ("unknown error" for any other value); never
 * NULL, valid forever. */
const char *mct_strerror(int err);

/* Formats a message into err (when err is not NULL and len > 0; cut to len - 1 bytes, always
 * NUL-terminated) and returns code unchanged, so a failure path reads
 * `return mct_errf(err, len, MCT_EINVAL, "M=%ld: ...", m);`. Cannot fail. */
int mct_errf(char *err, size_t len, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
