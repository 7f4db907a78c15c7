/* CPU records: their JSON form (stored, exported, printed by `mctune cpu --json`) and storage. */
#include "db/db_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static const char *const word_names[MCT_CPUID_NWORDS] = {
    "1.ecx", "1.edx", "7.ebx", "7.ecx", "7.edx", "7.1.eax", "7.1.edx",
    "80000001.ecx", "80000001.edx", "d.eax", "d.1.eax",
};

int mct_db_cpu_to_json(const mct_cpu *c, int pretty, char **out)
{
    char buf[32], key[17];
    cJSON *o = cJSON_CreateObject(), *f, *w, *ca;
    *out = NULL;
    if (!o)
        return MCT_ENOMEM;
    mct_cpu_key_format(mct_cpu_key(c), key);
    cJSON_AddStringToObject(o, "key", key);
    cJSON_AddStringToObject(o, "vendor", c->vendor);
    cJSON_AddStringToObject(o, "brand", c->brand);
    cJSON_AddNumberToObject(o, "family", c->family);
    cJSON_AddNumberToObject(o, "model", c->model);
    cJSON_AddNumberToObject(o, "stepping", c->stepping);
    cJSON_AddStringToObject(o, "tier", mct_tier_name(mct_cpu_tier_of(c)));
    f = cJSON_AddArrayToObject(o, "features");
    for (int i = 0; f && i < mct_cpu_feature_count(); i++)
        if (mct_cpu_has(c, i))
            cJSON_AddItemToArray(f, cJSON_CreateString(mct_cpu_feature_name(i)));
    w = cJSON_AddObjectToObject(o, "cpuid");
    for (int i = 0; w && i < MCT_CPUID_NWORDS; i++) {
        snprintf(buf, sizeof buf, "0x%08" PRIx32, c->feat[i]);
        cJSON_AddStringToObject(w, word_names[i], buf);
    }
    snprintf(buf, sizeof buf, "0x%" PRIx64, c->xcr0);
    cJSON_AddStringToObject(o, "xcr0", buf);
    ca = cJSON_AddObjectToObject(o, "cache_kb");
    if (ca) {
        cJSON_AddNumberToObject(ca, "l1d", c->cache_kb[0]);
        cJSON_AddNumberToObject(ca, "l1i", c->cache_kb[1]);
        cJSON_AddNumberToObject(ca, "l2", c->cache_kb[2]);
        cJSON_AddNumberToObject(ca, "l3", c->cache_kb[3]);
    }
    cJSON_AddNumberToObject(o, "cores", c->cores);
    cJSON_AddNumberToObject(o, "threads", c->threads);
    *out = pretty ? cJSON_Print(o) : cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return *out ? MCT_OK : MCT_ENOMEM;
}

static int hex_u64(const cJSON *v, const char *name, uint64_t max, uint64_t *out, char *err,
                   size_t n)
{
    char *end;
    if (!cJSON_IsString(v) || !v->valuestring)
        return mct_errf(err, n, MCT_EINVAL, "field '%s' must be a hex string like \"0x1f\"", name);
    const char *s = v->valuestring;
    if (s[0] != '0' || (s[1] != 'x' && s[1] != 'X') || !s[2] || strlen(s) > 18 ||
        strspn(s + 2, "0123456789abcdefABCDEF") != strlen(s + 2))
        return mct_errf(err, n, MCT_EINVAL, "field '%s' = '%s' is not a hex number like \"0x1f\"",
                     name, s);
    errno = 0;
    unsigned long long x = strtoull(s + 2, &end, 16);
    if (errno || x > max)
        return mct_errf(err, n, MCT_ERANGE, "field '%s' = '%s' is out of range", name, s);
    *out = x;
    return MCT_OK;
}

static int cpu_int(const cJSON *o, const char *name, int req, int lo, int hi, int *out,
                   char *err, size_t n)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!v) {
        *out = 0;
        return req ? mct_errf(err, n, MCT_EINVAL, "field '%s' is missing", name) : MCT_OK;
    }
    if (!cJSON_IsNumber(v))
        return mct_errf(err, n, MCT_EINVAL, "field '%s' must be a number", name);
    if (!(v->valuedouble >= lo && v->valuedouble <= hi) || v->valuedouble != (int)v->valuedouble)
        return mct_errf(err, n, MCT_ERANGE, "field '%s' = %g is not a whole number in [%d, %d]",
                     name, v->valuedouble, lo, hi);
    *out = (int)v->valuedouble;
    return MCT_OK;
}

int db_cpu_from_cjson(const cJSON *o, mct_cpu *c, char *err, size_t n)
{
    const cJSON *v, *w, *ca;
    uint64_t x;
    int rc;
    memset(c, 0, sizeof *c);
    if (!cJSON_IsObject(o))
        return mct_errf(err, n, MCT_EINVAL, "the CPU record is not a JSON object");
    v = cJSON_GetObjectItemCaseSensitive(o, "vendor");
    if (!cJSON_IsString(v) || strlen(v->valuestring) >= sizeof c->vendor)
        return mct_errf(err, n, MCT_EINVAL, "field 'vendor' must be a string of at most %zu bytes",
                     sizeof c->vendor - 1);
    strcpy(c->vendor, v->valuestring);
    v = cJSON_GetObjectItemCaseSensitive(o, "brand");
    if (v && (!cJSON_IsString(v) || strlen(v->valuestring) >= sizeof c->brand))
        return mct_errf(err, n, MCT_EINVAL, "field 'brand' must be a string of at most %zu bytes",
                     sizeof c->brand - 1);
    if (v)
        strcpy(c->brand, v->valuestring);
    if ((rc = cpu_int(o, "family", 1, 0, 1 << 20, &c->family, err, n)) ||
        (rc = cpu_int(o, "model", 1, 0, 1 << 20, &c->model, err, n)) ||
        (rc = cpu_int(o, "stepping", 0, 0, 1 << 20, &c->stepping, err, n)) ||
        (rc = cpu_int(o, "cores", 0, 0, 1 << 24, &c->cores, err, n)) ||
        (rc = cpu_int(o, "threads", 0, 0, 1 << 24, &c->threads, err, n)))
        return rc;
    w = cJSON_GetObjectItemCaseSensitive(o, "cpuid");
    if (!cJSON_IsObject(w))
        return mct_errf(err, n, MCT_EINVAL, "field 'cpuid' must be an object of feature words");
    for (int i = 0; i < MCT_CPUID_NWORDS; i++) {
        char name[40];
        snprintf(name, sizeof name, "cpuid.%s", word_names[i]);
        v = cJSON_GetObjectItemCaseSensitive(w, word_names[i]);
        if (!v)
            return mct_errf(err, n, MCT_EINVAL, "field '%s' is missing", name);
        if ((rc = hex_u64(v, name, UINT32_MAX, &x, err, n)))
            return rc;
        c->feat[i] = (uint32_t)x;
    }
    v = cJSON_GetObjectItemCaseSensitive(o, "xcr0");
    if (v) {
        if ((rc = hex_u64(v, "xcr0", UINT64_MAX, &c->xcr0, err, n)))
            return rc;
    }
    ca = cJSON_GetObjectItemCaseSensitive(o, "cache_kb");
    if (ca) {
        static const char *lv[4] = {"l1d", "l1i", "l2", "l3"};
        if (!cJSON_IsObject(ca))
            return mct_errf(err, n, MCT_EINVAL, "field 'cache_kb' must be an object");
        for (int i = 0; i < 4; i++) {
            int kb;
            if ((rc = cpu_int(ca, lv[i], 0, 0, 1 << 30, &kb, err, n)))
                return rc;
            c->cache_kb[i] = (uint32_t)kb;
        }
    }
    v = cJSON_GetObjectItemCaseSensitive(o, "key");
    if (v) {
        uint64_t k;
        char want[17];
        if (!cJSON_IsString(v) || mct_cpu_key_parse(v->valuestring, &k) < 0)
            return mct_errf(err, n, MCT_EINVAL, "field 'key' must be 16 hex digits");
        if (k != mct_cpu_key(c)) {
            mct_cpu_key_format(mct_cpu_key(c), want);
            return mct_errf(err, n, MCT_ECORRUPT, "field 'key' = '%s' does not match the record "
                         "(its vendor, family, model and features hash to %s)", v->valuestring,
                         want);
        }
    }
    return MCT_OK;
}

int mct_db_cpu_from_json(const char *text, size_t len, mct_cpu *out, char *err, size_t errlen)
{
    cJSON *o = cJSON_ParseWithLength(text, len);
    if (!o)
        return mct_errf(err, errlen, MCT_EINVAL, "the CPU record is not valid JSON");
    int rc = db_cpu_from_cjson(o, out, err, errlen);
    cJSON_Delete(o);
    return rc;
}

int db_put_cpu_txn(mct_db *db, MDB_txn *t, const mct_cpu *c, int *outcome)
{
    uint64_t key = mct_cpu_key(c);
    char *json;
    int rc = mct_db_cpu_to_json(c, 0, &json);
    if (rc)
        return db_fail(db, rc, "out of memory");
    MDB_val k = {8, &key};
    return db_put_json(db, t, db->cpus, &k, json, 1, outcome, "storing a CPU record");
}

static int put_cpu_fn(mct_db *db, MDB_txn *t, void *p)
{
    int outcome;
    return db_put_cpu_txn(db, t, p, &outcome);
}

int mct_db_put_cpu(mct_db *db, const mct_cpu *c)
{
    return db_write(db, put_cpu_fn, (void *)c);
}

/* A stored CPU record; damage is named as such. */
static int cpu_decode(mct_db *db, uint64_t key, const MDB_val *v, mct_cpu *out)
{
    char why[256], hex[17];
    if (mct_db_cpu_from_json(v->mv_data, v->mv_size, out, why, sizeof why) == MCT_OK)
        return MCT_OK;
    mct_cpu_key_format(key, hex);
    return db_damaged(db, "database '%s': CPU record %s: %s", db->file, hex, why);
}

int db_get_cpu_txn(mct_db *db, MDB_txn *t, uint64_t key, mct_cpu *out)
{
    MDB_val k = {8, &key}, v;
    int rc = mdb_get(t, db->cpus, &k, &v);
    return rc ? db_lmdb(db, rc, "reading a CPU record") : cpu_decode(db, key, &v, out);
}

int mct_db_get_cpu(mct_db *db, uint64_t key, mct_cpu *out)
{
    MDB_txn *t;
    int rc = db_rbegin(db, &t);
    if (rc)
        return rc;
    rc = db_get_cpu_txn(db, t, key, out);
    db_rend(db, t);
    return rc;
}

struct cpu_ctx { mct_db_cpu_fn fn; void *ctx; };

static int cpu_one(mct_db *db, MDB_cursor *cur, const MDB_val *k, const MDB_val *v, void *p)
{
    struct cpu_ctx *c = p;
    mct_cpu cpu;
    uint64_t key;
    int rc;
    if (k->mv_size != 8)
        return db_damaged(db, "database '%s': a CPU key has %zu bytes", db->file, k->mv_size);
    memcpy(&key, k->mv_data, 8);
    if ((rc = cpu_decode(db, key, v, &cpu)) != MCT_OK)
        return rc;
    return c->fn(&cpu, c->ctx);
}

int mct_db_iter_cpus(mct_db *db, mct_db_cpu_fn fn, void *ctx)
{
    struct cpu_ctx c = {fn, ctx};
    MDB_txn *t;
    int rc = db_rbegin(db, &t);
    if (rc)
        return rc;
    rc = db_scan(db, t, db->cpus, NULL, 0, "iterating", cpu_one, &c);
    db_rend(db, t);
    return rc;
}
