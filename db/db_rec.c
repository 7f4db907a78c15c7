/* The record codec: best records and trials as JSON (encoder, cJSON decoder, fast decoder),
 * the checks a stored record must pass, and reading one back against its key. */
#include "db/db_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- records as JSON ---------------------------------------------------------------------- */

int db_rec_json(const mct_db_rec *r, const char *type, char **out)
{
    cJSON *o = cJSON_CreateObject();
    char cpu[17], wh[33];
    uint8_t h[16];
    *out = NULL;
    if (!o)
        return MCT_ENOMEM;
    mct_cpu_key_format(r->cpu, cpu);
    mct_hash_text(r->workload, strlen(r->workload), h);
    db_hex(h, 16, wh);
    if (type)
        cJSON_AddStringToObject(o, "type", type);
    cJSON_AddStringToObject(o, "workload", r->workload);
    cJSON_AddStringToObject(o, "wl_hash", wh);
    cJSON_AddStringToObject(o, "cpu", cpu);
    cJSON_AddNumberToObject(o, "threads", r->threads);
    cJSON_AddStringToObject(o, "schedule", r->schedule);
    cJSON_AddNumberToObject(o, "median_ns", r->median_ns);
    cJSON_AddNumberToObject(o, "spread_ns", r->spread_ns);
    cJSON_AddNumberToObject(o, "gflops", r->gflops);
    cJSON_AddNumberToObject(o, "samples", (double)r->samples);
    cJSON_AddStringToObject(o, "search", r->search);
    cJSON_AddStringToObject(o, "guide", r->guide);
    cJSON_AddStringToObject(o, "compiler", r->compiler);
    cJSON_AddStringToObject(o, "flags", r->flags);
    cJSON_AddStringToObject(o, "tool", r->tool);
    cJSON_AddNumberToObject(o, "timestamp", (double)r->timestamp);
    cJSON_AddStringToObject(o, "model", r->model);
    *out = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return *out ? MCT_OK : MCT_ENOMEM;
}

static int jstr(const cJSON *o, const char *name, int required, char *dst, size_t cap,
                char *err, size_t n)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!v) {
        if (required)
            return mct_errf(err, n, MCT_EINVAL, "field '%s' is missing", name);
        dst[0] = 0;
        return MCT_OK;
    }
    if (!cJSON_IsString(v) || !v->valuestring)
        return mct_errf(err, n, MCT_EINVAL, "field '%s' must be a string", name);
    size_t len = strlen(v->valuestring);
    if (len >= cap)
        return mct_errf(err, n, MCT_ERANGE, "field '%s' is %zu bytes long; the limit is %zu", name,
                     len, cap - 1);
    memcpy(dst, v->valuestring, len + 1);
    return MCT_OK;
}

static int jnum(const cJSON *o, const char *name, int required, double lo, double hi,
                int integer, double *dst, char *err, size_t n)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!v) {
        if (required)
            return mct_errf(err, n, MCT_EINVAL, "field '%s' is missing", name);
        *dst = 0;
        return MCT_OK;
    }
    if (!cJSON_IsNumber(v))
        return mct_errf(err, n, MCT_EINVAL, "field '%s' must be a number", name);
    double x = v->valuedouble;
    if (!isfinite(x) || x < lo || x > hi || (integer && x != floor(x)))
        return mct_errf(err, n, MCT_ERANGE, "field '%s' = %g is out of range (%s in [%g, %g])",
                     name, x, integer ? "a whole number" : "a number", lo, hi);
    *dst = x;
    return MCT_OK;
}

int db_rec_from_cjson(const cJSON *o, mct_db_rec *r, char *err, size_t n)
{
    char cpu[32];
    double d;
    int rc;
    memset(r, 0, sizeof *r);
    if (!cJSON_IsObject(o))
        return mct_errf(err, n, MCT_EINVAL, "the record is not a JSON object");
    if ((rc = jstr(o, "workload", 1, r->workload, sizeof r->workload, err, n)) ||
        (rc = jstr(o, "cpu", 1, cpu, sizeof cpu, err, n)))
        return rc;
    if (mct_cpu_key_parse(cpu, &r->cpu) < 0)
        return mct_errf(err, n, MCT_EINVAL, "field 'cpu' = '%s' is not a CPU key (16 hex digits)",
                     cpu);
    if ((rc = jnum(o, "threads", 1, 1, 65536, 1, &d, err, n)))
        return rc;
    r->threads = (int)d;
    if ((rc = jstr(o, "schedule", 1, r->schedule, sizeof r->schedule, err, n)) ||
        (rc = jnum(o, "median_ns", 1, 1e-6, 1e18, 0, &r->median_ns, err, n)) ||
        (rc = jnum(o, "spread_ns", 0, 0, 1e18, 0, &r->spread_ns, err, n)) ||
        (rc = jnum(o, "gflops", 0, 0, 1e12, 0, &r->gflops, err, n)))
        return rc;
    if ((rc = jnum(o, "samples", 0, 0, 9e15, 1, &d, err, n)))
        return rc;
    r->samples = (int64_t)d;
    if ((rc = jnum(o, "timestamp", 0, 0, 9e15, 1, &d, err, n)))
        return rc;
    r->timestamp = (int64_t)d;
    if ((rc = jstr(o, "search", 0, r->search, sizeof r->search, err, n)) ||
        (rc = jstr(o, "guide", 0, r->guide, sizeof r->guide, err, n)) ||
        (rc = jstr(o, "compiler", 0, r->compiler, sizeof r->compiler, err, n)) ||
        (rc = jstr(o, "flags", 0, r->flags, sizeof r->flags, err, n)) ||
        (rc = jstr(o, "tool", 0, r->tool, sizeof r->tool, err, n)) ||
        (rc = jstr(o, "model", 0, r->model, sizeof r->model, err, n)))
        return rc;
    return MCT_OK;
}

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

/* Canonicalizes r->workload, checks the schedule and computes the keys. */
int db_rec_canon(mct_db_rec *r, mct_db_key *k, uint8_t sched[16], char *err, size_t n)
{
    mct_workload w;
    char why[256];
    int rc = mct_wl_parse(r->workload, &w, why, sizeof why);
    if (rc < 0)
        return mct_errf(err, n, rc, "workload '%s': %s", r->workload, why);
    if (mct_wl_format(&w, r->workload, sizeof r->workload) < 0)
        return mct_errf(err, n, MCT_ERANGE, "workload '%s' is too long", r->workload);
    if (r->threads < 1 || r->threads > 65536)
        return mct_errf(err, n, MCT_ERANGE, "threads = %d: use 1 to 65536", r->threads);
    if (!(r->median_ns > 0) || !isfinite(r->median_ns))
        return mct_errf(err, n, MCT_ERANGE, "median_ns = %g: must be a positive time", r->median_ns);
    if (!memchr(r->schedule, 0, sizeof r->schedule))
        return mct_errf(err, n, MCT_ERANGE, "schedule text is not terminated");
    if ((rc = db_sched_check(&w, r->schedule, err, n)) != MCT_OK)
        return rc;
    memset(k, 0, sizeof *k);
    mct_wl_hash(&w, k->wl);
    k->cpu = r->cpu;
    k->threads = (uint32_t)r->threads;
    if (sched)
        mct_hash_text(r->schedule, strlen(r->schedule), sched);
    return MCT_OK;
}

int mct_db_rec_key(const mct_db_rec *r, mct_db_key *out)
{
    mct_db_rec tmp = *r;
    return db_rec_canon(&tmp, out, NULL, NULL, 0);
}

/* The hot path of get-best: our own values are flat objects of strings and numbers written by
 * cJSON_PrintUnformatted. This reader decodes them without allocating; on anything unusual
 * (other escapes, nesting, a missing or out-of-range field) it returns -1 and the caller falls
 * back to cJSON, which also words the error. */
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
    char key[16], cpu[20];
    unsigned seen = 0;
    double d;
    memset(r, 0, sizeof *r);
    if (p >= end || *p++ != '{')
        return -1;
    while (p < end && *p != '}') {
        if (fast_str(&p, end, key, sizeof key) < 0 || p >= end || *p++ != ':')
            return -1;
        struct { const char *name; char *dst; size_t cap; } strs[] = {
            {"workload", r->workload, sizeof r->workload}, {"cpu", cpu, sizeof cpu},
            {"schedule", r->schedule, sizeof r->schedule}, {"search", r->search, sizeof r->search},
            {"guide", r->guide, sizeof r->guide}, {"compiler", r->compiler, sizeof r->compiler},
            {"flags", r->flags, sizeof r->flags}, {"tool", r->tool, sizeof r->tool},
            {"model", r->model, sizeof r->model}, {"wl_hash", NULL, 0}, {"type", NULL, 0},
        };
        int done = 0;
        for (size_t i = 0; i < sizeof strs / sizeof strs[0] && !done; i++)
            if (!strcmp(key, strs[i].name)) {
                if (fast_str(&p, end, strs[i].dst, strs[i].cap) < 0)
                    return -1;
                seen |= 1u << i;
                done = 1;
            }
        if (!done) {
            if (fast_num(&p, end, &d) < 0)
                return -1;
            if (!strcmp(key, "threads") && d >= 1 && d <= 65536 && d == (int)d)
                r->threads = (int)d, seen |= 1u << 16;
            else if (!strcmp(key, "median_ns") && d >= 1e-6 && d <= 1e18)
                r->median_ns = d, seen |= 1u << 17;
            else if (!strcmp(key, "spread_ns") && d >= 0 && d <= 1e18)
                r->spread_ns = d;
            else if (!strcmp(key, "gflops") && d >= 0 && d <= 1e12)
                r->gflops = d;
            else if (!strcmp(key, "samples") && d >= 0 && d <= 9e15 && d == (double)(int64_t)d)
                r->samples = (int64_t)d;
            else if (!strcmp(key, "timestamp") && d >= 0 && d <= 9e15 &&
                     d == (double)(int64_t)d)
                r->timestamp = (int64_t)d;
            else
                return -1;
        }
        if (p < end && *p == ',')
            p++;
        else if (p >= end || *p != '}')
            return -1;
    }
    /* workload, cpu, schedule, threads, median_ns are required */
    if ((seen & 0x30007u) != 0x30007u || p >= end || p + 1 != end)
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
