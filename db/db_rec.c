/* The record codec: best records and trials as JSON (encoder, cJSON decoder, fast decoder),
 * the checks a stored record must pass, and reading one back against its key. */
#include "db/db_int.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* ---- the field table ------------------------------------------------------------------------- */

/* A record's JSON form, written once: each field with its JSON name, its type, whether a
 * decoder refuses a record without it, where it lives in mct_db_rec and the range a number must
 * fall in. The encoder writes the fields in this order (the bytes of stored records and exports
 * depend on it), and both decoders read by it. */
enum {
    F_STR,      /* char array: a string shorter than the array */
    F_CPU,      /* uint64_t CPU key: a string of 16 hex digits */
    F_HASH,     /* no storage: the hash of the workload text, written for readers (an import
                 * checks it in mct_db_item_parse); the record decoders skip it */
    F_INT,      /* int: a whole number in [lo, hi] */
    F_I64,      /* int64_t: a whole number in [lo, hi] */
    F_NUM       /* double: a number in [lo, hi] */
};

typedef struct rec_field {
    const char *name;
    int type;
    int required;       /* 1: required; 0: optional; 2: optional, left out when 0 */
    size_t off, size;
    double lo, hi;
} rec_field;

#define REC_THREADS_MAX 65536
#define FIELD(f, type, req, lo, hi) \
    {#f, type, req, offsetof(mct_db_rec, f), sizeof(((mct_db_rec *)0)->f), lo, hi}

static const rec_field fields[] = {
    FIELD(workload, F_STR, 1, 0, 0),
    {"wl_hash", F_HASH, 0, 0, 0, 0, 0},
    FIELD(cpu, F_CPU, 1, 0, 0),
    FIELD(threads, F_INT, 1, 1, REC_THREADS_MAX),
    FIELD(schedule, F_STR, 1, 0, 0),
    FIELD(median_ns, F_NUM, 1, 1e-6, 1e18),
    FIELD(spread_ns, F_NUM, 0, 0, 1e18),
    FIELD(gflops, F_NUM, 0, 0, 1e12),
    FIELD(samples, F_I64, 0, 0, 9e15),
    FIELD(search, F_STR, 0, 0, 0),
    FIELD(guide, F_STR, 0, 0, 0),
    FIELD(compiler, F_STR, 0, 0, 0),
    FIELD(flags, F_STR, 0, 0, 0),
    FIELD(tool, F_STR, 0, 0, 0),
    FIELD(timestamp, F_I64, 0, 0, 9e15),
    FIELD(model, F_STR, 0, 0, 0),
    FIELD(base_gflops, F_NUM, 2, 0, 1e12),   /* 2: optional, left out of the JSON when 0 */
};
#define NFIELDS (sizeof fields / sizeof fields[0])

_Static_assert(sizeof(((mct_db_rec *)0)->threads) == sizeof(int), "threads is an int");
_Static_assert(sizeof(((mct_db_rec *)0)->samples) == sizeof(int64_t), "samples is an int64_t");
_Static_assert(sizeof(((mct_db_rec *)0)->timestamp) == sizeof(int64_t), "timestamp: int64_t");
_Static_assert(NFIELDS <= 32, "the fast decoder keeps one bit per field");

static double num_get(const mct_db_rec *r, const rec_field *f)
{
    const char *p = (const char *)r + f->off;
    int i;
    int64_t l;
    double d;
    switch (f->type) {
    case F_INT: memcpy(&i, p, sizeof i); return i;
    case F_I64: memcpy(&l, p, sizeof l); return (double)l;
    default: memcpy(&d, p, sizeof d); return d;
    }
}

/* Stores x (in range, whole for F_INT and F_I64: checked by the caller). */
static void num_set(mct_db_rec *r, const rec_field *f, double x)
{
    char *p = (char *)r + f->off;
    int i;
    int64_t l;
    /* convert only to the field's own type: x is in that type's range, not in the others' */
    switch (f->type) {
    case F_INT: i = (int)x; memcpy(p, &i, sizeof i); break;
    case F_I64: l = (int64_t)x; memcpy(p, &l, sizeof l); break;
    default: memcpy(p, &x, sizeof x); break;
    }
}

static int num_ok(const rec_field *f, double x)
{
    return isfinite(x) && x >= f->lo && x <= f->hi && (f->type == F_NUM || x == floor(x));
}

/* ---- the encoder ----------------------------------------------------------------------------- */

int db_rec_json(const mct_db_rec *r, const char *type, char **out)
{
    cJSON *o = cJSON_CreateObject();
    *out = NULL;
    if (!o)
        return MCT_ENOMEM;
    if (type)
        cJSON_AddStringToObject(o, "type", type);
    for (size_t i = 0; i < NFIELDS; i++) {
        const rec_field *f = &fields[i];
        char text[33];
        uint8_t h[16];
        uint64_t cpu;
        switch (f->type) {
        case F_STR:
            cJSON_AddStringToObject(o, f->name, (const char *)r + f->off);
            break;
        case F_CPU:
            memcpy(&cpu, (const char *)r + f->off, sizeof cpu);
            mct_cpu_key_format(cpu, text);
            cJSON_AddStringToObject(o, f->name, text);
            break;
        case F_HASH:
            mct_hash_text(r->workload, strlen(r->workload), h);
            db_hex(h, 16, text);
            cJSON_AddStringToObject(o, f->name, text);
            break;
        default:
            if (f->required == 2 && num_get(r, f) == 0)
                break;  /* absent reads back as 0: records without it keep their bytes */
            cJSON_AddNumberToObject(o, f->name, num_get(r, f));
            break;
        }
    }
    *out = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return *out ? MCT_OK : MCT_ENOMEM;
}

/* ---- the cJSON decoder (any valid JSON; words every refusal) --------------------------------- */

static int field_from_cjson(const cJSON *o, const rec_field *f, mct_db_rec *r, char *err,
                            size_t n)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, f->name);
    char cpu[32];
    if (f->type == F_HASH)
        return MCT_OK;
    if (!v)  /* an optional field stays 0 or "" */
        return f->required == 1 ? mct_errf(err, n, MCT_EINVAL, "field '%s' is missing", f->name)
                           : MCT_OK;
    if (f->type == F_STR || f->type == F_CPU) {
        char *dst = f->type == F_CPU ? cpu : (char *)r + f->off;
        size_t cap = f->type == F_CPU ? sizeof cpu : f->size, len;
        if (!cJSON_IsString(v) || !v->valuestring)
            return mct_errf(err, n, MCT_EINVAL, "field '%s' must be a string", f->name);
        if ((len = strlen(v->valuestring)) >= cap)
            return mct_errf(err, n, MCT_ERANGE, "field '%s' is %zu bytes long; the limit is %zu",
                            f->name, len, cap - 1);
        memcpy(dst, v->valuestring, len + 1);
        if (f->type == F_CPU && mct_cpu_key_parse(cpu, &r->cpu) < 0)
            return mct_errf(err, n, MCT_EINVAL, "field '%s' = '%s' is not a CPU key (16 hex "
                            "digits)", f->name, cpu);
        return MCT_OK;
    }
    if (!cJSON_IsNumber(v))
        return mct_errf(err, n, MCT_EINVAL, "field '%s' must be a number", f->name);
    if (!num_ok(f, v->valuedouble))
        return mct_errf(err, n, MCT_ERANGE, "field '%s' = %g is out of range (%s in [%g, %g])",
                        f->name, v->valuedouble, f->type == F_NUM ? "a number" : "a whole number",
                        f->lo, f->hi);
    num_set(r, f, v->valuedouble);
    return MCT_OK;
}

int db_rec_from_cjson(const cJSON *o, mct_db_rec *r, char *err, size_t n)
{
    int rc = MCT_OK;
    memset(r, 0, sizeof *r);
    if (!cJSON_IsObject(o))
        return mct_errf(err, n, MCT_EINVAL, "the record is not a JSON object");
    for (size_t i = 0; i < NFIELDS && rc == MCT_OK; i++)
        rc = field_from_cjson(o, &fields[i], r, err, n);
    return rc;
}

/* ---- the fast decoder ------------------------------------------------------------------------ */

/* The hot path of get-best: our own values are flat objects of strings and numbers written by
 * cJSON_PrintUnformatted. This reader decodes them without allocating; on anything unusual
 * (other escapes, nesting, a missing, repeated or out-of-range field) it returns -1 and the
 * caller falls back to cJSON, which also words the error. */
static int fast_str(const char **pp, const char *end, char *dst, size_t cap)
{
    const char *p = *pp;
    size_t n = 0;
    if (p >= end || *p != '"')
        return -1;
    for (p++; p < end && *p != '"'; p++) {
        char c = *p;
        if ((unsigned char)c < 0x20)
            return -1;
        if (c == '\\') {
            if (++p >= end)
                return -1;
            switch (*p) {
            case '"': c = '"'; break;
            case '\\': c = '\\'; break;
            case '/': c = '/'; break;
            case 'b': c = '\b'; break;
            case 'f': c = '\f'; break;
            case 'n': c = '\n'; break;
            case 'r': c = '\r'; break;
            case 't': c = '\t'; break;
            case 'u': {
                unsigned v = 0;
                if (end - p < 5)
                    return -1;
                for (int i = 1; i <= 4; i++) {
                    char h = p[i];
                    v = v * 16 + (unsigned)(h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f'
                                            ? h - 'a' + 10 : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                            : 1000);
                }
                if (v == 0 || v >= 0x80)
                    return -1;
                c = (char)v;
                p += 4;
                break;
            }
            default: return -1;
            }
        }
        if (dst) {
            if (n + 1 >= cap)
                return -1;
            dst[n++] = c;
        }
    }
    if (p >= end)
        return -1;
    if (dst)
        dst[n] = 0;
    *pp = p + 1;
    return 0;
}

static int fast_num(const char **pp, const char *end, double *out)
{
    char buf[40];
    size_t n = 0;
    const char *p = *pp;
    if (p >= end || (*p != '-' && (*p < '0' || *p > '9')))
        return -1;  /* what JSON (and so cJSON) takes for the start of a number */
    while (p < end && n < sizeof buf - 1 && strchr("0123456789+-.eE", *p) && *p)
        buf[n++] = *p++;
    if (!n || n == sizeof buf - 1)
        return -1;
    buf[n] = 0;
    /* Fast path, exact: "[-]digits[.digits]" with a mantissa below 2^53 and at most 22
     * decimals is mantissa / 10^k, both exact doubles, so one division rounds correctly. */
    {
        static const double p10[23] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
                                       1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19,
                                       1e20, 1e21, 1e22};
        const char *q = buf;
        int neg = *q == '-', digits = 0, frac = -1;
        uint64_t m = 0;
        if (neg)
            q++;
        for (; *q; q++) {
            if (*q >= '0' && *q <= '9') {
                m = m * 10 + (uint64_t)(*q - '0');
                if (++digits > 15)
                    break;
                if (frac >= 0)
                    frac++;
            } else if (*q == '.' && frac < 0 && digits) {
                frac = 0;
            } else {
                break;
            }
        }
        if (!*q && digits && frac != 0) {
            double v = (double)m / p10[frac < 0 ? 0 : frac];
            *out = neg ? -v : v;
            *pp = p;
            return 0;
        }
    }
    char *e;
    *out = strtod(buf, &e);
    if (*e || !isfinite(*out))
        return -1;
    *pp = p;
    return 0;
}

static int rec_fast(const char *p, size_t len, mct_db_rec *r)
{
    const char *end = p + len;
    char key[16], cpu[32];
    uint32_t seen = 0, required = 0;
    double d;
    memset(r, 0, sizeof *r);
    if (p >= end || *p++ != '{')
        return -1;
    while (p < end && *p != '}') {
        const rec_field *f = NULL;
        if (fast_str(&p, end, key, sizeof key) < 0 || p >= end || *p++ != ':')
            return -1;
        for (size_t i = 0; i < NFIELDS && !f; i++)
            if (!strcmp(key, fields[i].name))
                f = &fields[i];
        if (!f) {  /* only the item's "type" may stand beside the fields */
            if (strcmp(key, "type") || fast_str(&p, end, NULL, 0) < 0)
                return -1;
        } else {
            uint32_t bit = 1u << (f - fields);
            if (seen & bit)
                return -1;
            seen |= bit;
            if (f->type == F_STR || f->type == F_CPU || f->type == F_HASH) {
                char *dst = f->type == F_STR ? (char *)r + f->off : f->type == F_CPU ? cpu : NULL;
                if (fast_str(&p, end, dst, f->type == F_STR ? f->size : sizeof cpu) < 0)
                    return -1;
            } else {
                if (fast_num(&p, end, &d) < 0 || !num_ok(f, d))
                    return -1;
                num_set(r, f, d);
            }
        }
        if (p < end && *p == ',' && p + 1 < end && p[1] != '}')
            p++;
        else if (p >= end || *p != '}')
            return -1;
    }
    for (size_t i = 0; i < NFIELDS; i++)
        if (fields[i].required == 1)
            required |= 1u << i;
    if ((seen & required) != required || p >= end || p + 1 != end)
        return -1;
    return mct_cpu_key_parse(cpu, &r->cpu) < 0 ? -1 : 0;
}

/* Decodes a record value and checks it against its key's workload hash, CPU and threads. */
int db_decode_rec(mct_db *db, const void *key, size_t klen, const void *val, size_t vlen,
                  mct_db_rec *out)
{
    char why[256], wh[33];
    uint8_t h[16];
    int rc;
    if (klen < 16)
        return db_damaged(db, "database '%s': a record key has %zu bytes", db->file, klen);
    db_hex(key, 16, wh);
    if (rec_fast(val, vlen, out) == 0)
        goto check;
    cJSON *o = cJSON_ParseWithLength(val, vlen);
    if (!o)
        return db_damaged(db, "database '%s': the record of workload hash %s is not valid JSON",
                          db->file, wh);
    rc = db_rec_from_cjson(o, out, why, sizeof why);
    cJSON_Delete(o);
    if (rc)
        return db_damaged(db, "database '%s': the record of workload hash %s: %s", db->file, wh,
                          why);
check:
    mct_hash_text(out->workload, strlen(out->workload), h);
    if (memcmp(h, key, 16))
        return db_damaged(db, "database '%s': the record stored under workload hash %s holds "
                          "workload '%s', whose hash differs (damaged file or hash collision)",
                          db->file, wh, out->workload);
    if (klen >= sizeof(mct_db_key)) {
        mct_db_key mk;  /* keys inside LMDB pages are not aligned */
        memcpy(&mk, key, sizeof mk);
        if (mk.cpu != out->cpu || mk.threads != (uint32_t)out->threads)
            return db_damaged(db, "database '%s': the record of workload '%s' names another CPU "
                              "or thread count than its key", db->file, out->workload);
    }
    return MCT_OK;
}

/* Reads a record value and checks it against its key. */
int db_get_rec_txn(mct_db *db, MDB_txn *t, MDB_dbi dbi, const void *key, size_t klen,
                   mct_db_rec *out)
{
    MDB_val k = {klen, (void *)key}, v;
    int rc = mdb_get(t, dbi, &k, &v);
    if (rc)
        return db_lmdb(db, rc, "reading a record");
    return db_decode_rec(db, key, klen, v.mv_data, v.mv_size, out);
}

/* ---- checks of a record to store ------------------------------------------------------------- */

/* A stored schedule must be one the tuner could have written: it parses into transformations of
 * O, each legal for the workload, and its text is the canonical form (so its hash names it). */
int db_sched_check(const mct_workload *w, const char *text, char *err, size_t n)
{
    mct_sched *s = NULL;
    char why[512], *canon = malloc(4096);
    int rc;
    if (!canon)
        return mct_errf(err, n, MCT_ENOMEM, "out of memory");
    canon[0] = 0;
    rc = mct_sched_parse(w, text, &s, why, sizeof why);
    if (rc == MCT_ENOMEM) {
        rc = mct_errf(err, n, rc, "out of memory");
    } else if (rc < 0) {
        rc = mct_errf(err, n, MCT_EINVAL, "field 'schedule' = '%.120s%s' is not a legal schedule "
                      "for this workload: %s", text, strlen(text) > 120 ? "..." : "", why);
    } else if (mct_sched_format(s, canon, 4096) < 0 || strcmp(canon, text)) {
        rc = mct_errf(err, n, MCT_EINVAL, "field 'schedule' = '%.120s%s' is not in canonical "
                      "form (the tuner writes '%.120s%s'); write it that way", text,
                      strlen(text) > 120 ? "..." : "", canon, strlen(canon) > 120 ? "..." : "");
    }
    mct_sched_destroy(s);
    free(canon);
    return rc;
}

int db_rec_canon(mct_db_rec *r, mct_workload *w, int parsed, mct_db_key *k, uint8_t sched[16],
                 char *err, size_t n)
{
    char why[256];
    int rc;
    if (!memchr(r->workload, 0, sizeof r->workload))
        return mct_errf(err, n, MCT_ERANGE, "workload text is not terminated within %zu bytes",
                        sizeof r->workload);
    if (!parsed && (rc = mct_wl_parse(r->workload, w, why, sizeof why)) < 0)
        return mct_errf(err, n, rc, "workload '%s': %s", r->workload, why);
    if (mct_wl_format(w, r->workload, sizeof r->workload) < 0)
        return mct_errf(err, n, MCT_ERANGE, "workload '%s' is too long", r->workload);
    if (r->threads < 1 || r->threads > REC_THREADS_MAX)
        return mct_errf(err, n, MCT_ERANGE, "threads = %d: use 1 to %d", r->threads,
                        REC_THREADS_MAX);
    if (!(r->median_ns > 0) || !isfinite(r->median_ns))
        return mct_errf(err, n, MCT_ERANGE, "median_ns = %g: must be a positive time",
                        r->median_ns);
    if (!memchr(r->schedule, 0, sizeof r->schedule))
        return mct_errf(err, n, MCT_ERANGE, "schedule text is not terminated");
    if ((rc = db_sched_check(w, r->schedule, err, n)) != MCT_OK)
        return rc;
    memset(k, 0, sizeof *k);
    mct_hash_text(r->workload, strlen(r->workload), k->wl);  /* = mct_wl_hash(w) */
    k->cpu = r->cpu;
    k->threads = (uint32_t)r->threads;
    if (sched)
        mct_hash_text(r->schedule, strlen(r->schedule), sched);
    return MCT_OK;
}

int mct_db_rec_key(const mct_db_rec *r, mct_db_key *out)
{
    mct_db_rec tmp = *r;
    mct_workload w;
    return db_rec_canon(&tmp, &w, 0, out, NULL, NULL, 0);
}
