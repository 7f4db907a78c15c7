#include "runtime/mct_err.h"

#include <stdarg.h>
#include <stdio.h>

const char *mct_strerror(int err)
{
    switch (err) {
    case MCT_OK: return "success";
    case MCT_EINVAL: return "invalid argument";
    case MCT_ENOMEM: return "out of memory";
    case MCT_ENOTAPPLIC: return "transformation does not apply";
    case MCT_ERANGE: return "value out of range";
    case MCT_EIO: return "input/output error";
    case MCT_ENOTFOUND: return "not found";
    case MCT_ECORRUPT: return "corrupt data";
    case MCT_EVERSION: return "version or signature mismatch";
    case MCT_ECOMPILE: return "compile error";
    case MCT_ECRASH: return "candidate crashed";
    case MCT_ETIMEOUT: return "timed out";
    case MCT_EWRONG: return "wrong result";
    case MCT_ENET: return "network or service error";
    case MCT_EBUSY: return "busy or limit reached";
    case MCT_EUNSUPPORTED: return "not supported on this host";
    }
    return "unknown error";
}

int mct_errf(char *err, size_t len, int code, const char *fmt, ...)
{
    if (err && len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, len, fmt, ap);
        va_end(ap);
    }
    return code;
}
