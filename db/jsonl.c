/* JSON Lines items, export, import and merge (the rules of applying an item). */
#include "db/db_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- items ----------------------------------------------------------------------------------- */

void mct_db_item_clear(mct_db_item *it)
{
    free(it->model);
    free(it->params);
    free(it->prompt);
    free(it->reply);
    it->model = it->params = it->prompt = it->reply = NULL;
}

/* Parses the item's workload (the one parse of its text: applying the item uses it->wl),
 * canonicalizes it and checks the line's wl_hash against it. */
static int wl_check_hash(const cJSON *o, mct_db_item *it, char *err, size_t n)
{
    mct_db_rec *r = &it->rec;
    char why[256];
    uint8_t h[16], given[16];
    int rc = mct_wl_parse(r->workload, &it->wl, why, sizeof why);
    if (rc < 0)
        return mct_errf(err, n, rc, "field 'workload' = '%s': %s", r->workload, why);
    it->wl_set = 1;
    mct_wl_format(&it->wl, r->workload, sizeof r->workload);
    mct_wl_hash(&it->wl, h);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "wl_hash");
    if (!v)
        return MCT_OK;
    if (!cJSON_IsString(v) || strlen(v->valuestring) != 32 ||
        db_unhex(v->valuestring, given, 16) < 0)
        return mct_errf(err, n, MCT_EINVAL, "field 'wl_hash' must be 32 hex digits");
    if (memcmp(h, given, 16)) {
        char hex[33];
        db_hex(h, 16, hex);
        return mct_errf(err, n, MCT_ECORRUPT, "field 'wl_hash' = '%s' does not match workload '%s' "
                     "(whose hash is %s)", v->valuestring, r->workload, hex);
    }
    return MCT_OK;
}

int mct_db_item_parse(const char *line, size_t len, mct_db_item *it, char *err, size_t n)
{
    cJSON *o = NULL;
    const cJSON *ty;
    int rc = MCT_EINVAL;
    memset(it, 0, sizeof *it);
    o = cJSON_ParseWithLength(line, len);
    if (!o) {
        const char *at = cJSON_GetErrorPtr();
        long off = at && at >= line && at <= line + len ? (long)(at - line) : -1;
        rc = mct_errf(err, n, MCT_EINVAL, "not valid JSON (near byte %ld)", off + 1);
        goto fail;
    }
    if (!cJSON_IsObject(o)) {
        rc = mct_errf(err, n, MCT_EINVAL, "a line must be a JSON object with a \"type\" field");
        goto fail;
    }
    ty = cJSON_GetObjectItemCaseSensitive(o, "type");
    if (!cJSON_IsString(ty)) {
        rc = mct_errf(err, n, MCT_EINVAL, "field 'type' is missing or not a string (use cpu, "
                   "workload, best, trial or llm)");
        goto fail;
    }
    if (!strcmp(ty->valuestring, "cpu")) {
        it->kind = MCT_DB_ITEM_CPU;
        rc = db_cpu_from_cjson(o, &it->cpu, err, n);
    } else if (!strcmp(ty->valuestring, "workload")) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "workload");
        it->kind = MCT_DB_ITEM_WORKLOAD;
        if (!cJSON_IsString(v) || strlen(v->valuestring) >= sizeof it->rec.workload)
            rc = mct_errf(err, n, MCT_EINVAL, "field 'workload' must be a string of at most 255 "
                       "bytes");
        else {
            strcpy(it->rec.workload, v->valuestring);
            rc = wl_check_hash(o, it, err, n);
        }
    } else if (!strcmp(ty->valuestring, "best") || !strcmp(ty->valuestring, "trial")) {
        it->kind = ty->valuestring[0] == 'b' ? MCT_DB_ITEM_BEST : MCT_DB_ITEM_TRIAL;
        rc = db_rec_from_cjson(o, &it->rec, err, n);
        if (rc == MCT_OK)
            rc = wl_check_hash(o, it, err, n);
    } else if (!strcmp(ty->valuestring, "llm")) {
        char *s[4];
        it->kind = MCT_DB_ITEM_LLM;
        if ((rc = db_llm_from_cjson(o, s, err, n)) == MCT_OK)
            db_llm_item(it, s);
    } else {
        rc = mct_errf(err, n, MCT_EINVAL, "field 'type' = '%.40s' is unknown (use cpu, workload, "
                   "best, trial or llm)", ty->valuestring);
    }
fail:
    cJSON_Delete(o);
    if (rc)
        mct_db_item_clear(it);
    return rc;
}

int mct_db_item_format(const mct_db_item *it, char **out)
{
    cJSON *o;
    char *s;
    int rc;
    *out = NULL;
    switch (it->kind) {
    case MCT_DB_ITEM_BEST:
    case MCT_DB_ITEM_TRIAL:
        return db_rec_json(&it->rec, it->kind == MCT_DB_ITEM_BEST ? "best" : "trial", out);
    case MCT_DB_ITEM_CPU:
        if ((rc = mct_db_cpu_to_json(&it->cpu, 0, &s)) != MCT_OK)
            return rc;
        /* "type" first for readability: splice it in front */
        *out = malloc(strlen(s) + 16);
        if (*out)
            sprintf(*out, "{\"type\":\"cpu\",%s", s + 1);
        free(s);
        return *out ? MCT_OK : MCT_ENOMEM;
    case MCT_DB_ITEM_WORKLOAD: {
        uint8_t h[16];
        char hex[33];
        o = cJSON_CreateObject();
        if (!o)
            return MCT_ENOMEM;
        mct_hash_text(it->rec.workload, strlen(it->rec.workload), h);
        db_hex(h, 16, hex);
        cJSON_AddStringToObject(o, "type", "workload");
        cJSON_AddStringToObject(o, "workload", it->rec.workload);
        cJSON_AddStringToObject(o, "wl_hash", hex);
        break;
    }
    case MCT_DB_ITEM_LLM:
        o = cJSON_CreateObject();
        if (!o)
            return MCT_ENOMEM;
        cJSON_AddStringToObject(o, "type", "llm");
        cJSON_AddStringToObject(o, "model", it->model ? it->model : "");
        cJSON_AddStringToObject(o, "params", it->params ? it->params : "");
        cJSON_AddStringToObject(o, "prompt", it->prompt ? it->prompt : "");
        cJSON_AddStringToObject(o, "reply", it->reply ? it->reply : "");
        break;
    default:
        return MCT_EINVAL;
    }
    *out = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return *out ? MCT_OK : MCT_ENOMEM;
}

/* ---- apply (import and merge rules) ---------------------------------------------------------- */

static void notef(mct_db_note_fn note, void *ctx, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void notef(mct_db_note_fn note, void *ctx, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    if (!note)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    note(line, ctx);
}

static int apply_rec(mct_db *db, MDB_txn *t, const mct_db_item *it, mct_db_note_fn note,
                     void *ctx, mct_db_report *rep)
{
    int best = it->kind == MCT_DB_ITEM_BEST;
    mct_db_rec *r = malloc(2 * sizeof *r), *old = r + 1;
    mct_db_trial_key tk;
    mct_workload w = it->wl;
    char why[512], *json = NULL, cpu[17];
    int rc;
    if (!r)
        return db_fail(db, MCT_ENOMEM, "out of memory");
    *r = it->rec;
    memset(&tk, 0, sizeof tk);
    if ((rc = db_rec_canon(r, &w, it->wl_set, &tk.k, tk.sched, why, sizeof why)) != MCT_OK) {
        rc = db_fail(db, rc, "%s", why);
        goto fail;
    }
    if ((rc = db_put_wl_txn(db, t, &w, r->workload, tk.k.wl)) != MCT_OK)
        goto fail;
    MDB_dbi dbi = best ? db->best : db->trials;
    size_t klen = best ? sizeof tk.k : sizeof tk;
    rc = db_get_rec_txn(db, t, dbi, &tk, klen, old);
    if (rc != MCT_OK && rc != MCT_ENOTFOUND)
        goto fail;
    mct_cpu_key_format(r->cpu, cpu);
    if (rc == MCT_OK) {
        if ((rc = db_rec_json(r, NULL, &json)) != MCT_OK)
            goto fail;
        char *oj = NULL;
        if ((rc = db_rec_json(old, NULL, &oj)) != MCT_OK)
            goto fail;
        int same = !strcmp(oj, json);
        free(oj);
        if (same) {
            rep->same++;
            goto fail;  /* rc is MCT_OK */
        }
        int faster = r->median_ns < old->median_ns;
        if (strcmp(r->schedule, old->schedule)) {
            rep->conflicts++;
            notef(note, ctx, "conflict: %s '%s' cpu %s threads %d: stored schedule '%.200s' "
                  "(%.0f ns) vs incoming '%.200s' (%.0f ns): kept the %s", best ? "best" : "trial",
                  r->workload, cpu, r->threads, old->schedule, old->median_ns, r->schedule,
                  r->median_ns, faster ? "incoming (faster)" : "stored (faster or equal)");
        }
        if (!faster) {
            rep->kept++;
            goto fail;
        }
        rep->replaced++;
        notef(note, ctx, "changed: %s '%s' cpu %s threads %d: %.0f ns -> %.0f ns",
              best ? "best" : "trial", r->workload, cpu, r->threads, old->median_ns,
              r->median_ns);
    } else {
        if ((rc = db_rec_json(r, NULL, &json)) != MCT_OK)
            goto fail;
        rep->added++;
    }
    MDB_val k = {klen, &tk}, v = {strlen(json), json};
    rc = mdb_put(t, dbi, &k, &v, 0);
    rc = rc ? db_lmdb(db, rc, "storing a record") : MCT_OK;
    if (rc == MCT_OK) {
        if (db->npend == db->cappend) {
            size_t cap = db->cappend ? 2 * db->cappend : 64;
            struct db_pending *np = realloc(db->pend, cap * sizeof *np);
            if (!np) {
                rc = db_fail(db, MCT_ENOMEM, "out of memory");
                goto fail;
            }
            db->pend = np;
            db->cappend = cap;
        }
        struct db_pending *pd = &db->pend[db->npend++];
        pd->tk = tk;
        pd->line = db->line;
        pd->trial = !best;
        snprintf(pd->what, sizeof pd->what, "%s of '%.100s' cpu %s threads %d",
                 best ? "best record" : "trial", r->workload, cpu, r->threads);
    }
fail:
    free(json);
    free(r);
    return rc;
}

int db_apply_item(mct_db *db, MDB_txn *t, const mct_db_item *it, mct_db_note_fn note,
                  void *ctx, mct_db_report *rep)
{
    int rc, outcome = 0;
    switch (it->kind) {
    case MCT_DB_ITEM_CPU: {
        char key[17];
        uint64_t k = mct_cpu_key(&it->cpu);
        MDB_val kv = {8, &k}, v;
        int exists = mdb_get(t, db->cpus, &kv, &v) == 0;
        mct_cpu_key_format(k, key);
        if (exists) {
            /* keep the stored description; report when the incoming one differs */
            char *json = NULL;
            if ((rc = mct_db_cpu_to_json(&it->cpu, 0, &json)) != MCT_OK)
                return db_fail(db, rc, "out of memory");
            int same = v.mv_size == strlen(json) && !memcmp(v.mv_data, json, v.mv_size);
            free(json);
            if (same) {
                rep->same++;
            } else {
                rep->conflicts++;
                notef(note, ctx, "conflict: cpu %s: the stored description differs from the "
                      "incoming one (brand or caches); kept the stored one", key);
            }
            return MCT_OK;
        }
        rc = db_put_cpu_txn(db, t, &it->cpu, &outcome);
        if (rc == MCT_OK)
            rep->added++;
        return rc;
    }
    case MCT_DB_ITEM_WORKLOAD: {
        mct_workload w = it->wl;
        uint8_t h[16];
        char why[256];
        if (!it->wl_set && (rc = mct_wl_parse(it->rec.workload, &w, why, sizeof why)) < 0)
            return db_fail(db, rc, "workload '%s': %s", it->rec.workload, why);
        mct_wl_hash(&w, h);
        MDB_val kv = {16, h}, v;
        int exists = mdb_get(t, db->wls, &kv, &v) == 0;
        char canon[256];
        mct_wl_format(&w, canon, sizeof canon);
        if ((rc = db_put_wl_txn(db, t, &w, canon, h)) == MCT_OK) {
            if (exists)
                rep->same++;
            else
                rep->added++;
        }
        return rc;
    }
    case MCT_DB_ITEM_BEST:
    case MCT_DB_ITEM_TRIAL:
        return apply_rec(db, t, it, note, ctx, rep);
    case MCT_DB_ITEM_LLM:
        rc = db_llm_put_txn(db, t, it->model, it->params, it->prompt, it->reply, 0, &outcome);
        if (rc == MCT_OK) {
            if (outcome == 0)
                rep->added++;
            else if (outcome == 1)
                rep->same++;
            else {
                rep->conflicts++;
                notef(note, ctx, "conflict: llm reply of model '%s' for one prompt differs; "
                      "kept the stored one", it->model);
            }
        }
        return rc;
    }
    return db_fail(db, MCT_EINVAL, "unknown item kind %d", (int)it->kind);
}

/* Every best record the transaction wrote must have a trial of its schedule (in the database or
 * the same import): a best without one was not measured by a tuner. */
static int check_pending(mct_db *db, MDB_txn *t, const char *file)
{
    for (size_t i = 0; i < db->npend; i++) {
        const struct db_pending *pd = &db->pend[i];
        MDB_val k = {sizeof pd->tk, (void *)&pd->tk}, v;
        int rc = mdb_get(t, db->trials, &k, &v);
        if (rc == 0) {
            /* a best takes its trial's measurement; a faster trial updates its best */
            if ((rc = db_align_best_txn(db, t, &pd->tk)) != MCT_OK)
                return rc;
            continue;
        }
        if (rc != MDB_NOTFOUND)
            return db_lmdb(db, rc, "reading a trial");
        if (pd->line)
            return db_fail(db, MCT_EINVAL, "%s:%ld: field 'schedule': the %s has no trial "
                           "with its schedule, in the file or the database; export with trials "
                           "(without --no-trials) and import that file; nothing was imported",
                           file, pd->line, pd->what);
        return db_fail(db, MCT_EINVAL, "merge: '%s': the %s has no trial with its schedule; "
                       "run 'mctune db check %s' on it; nothing was merged", file, pd->what,
                       file);
    }
    return MCT_OK;
}

/* ---- walking every item of a database -------------------------------------------------------- */

typedef int (*item_fn)(const mct_db_item *it, void *ctx);

struct each_ctx {
    int table;          /* 0 cpus, 1 workloads, 2 best, 3 trials, 4 llm */
    uint64_t cpu;       /* 0: every CPU */
    item_fn fn;
    void *ctx;
    mct_db_item *it;
};

static int item_one(mct_db *db, MDB_cursor *cur, const MDB_val *k, const MDB_val *v, void *p)
{
    struct each_ctx *c = p;
    mct_db_item *it = c->it;
    char why[512], *s[4];
    int rc = MCT_OK;
    memset(it, 0, sizeof *it);
    if (c->table == 0) {
        uint64_t key;
        if (k->mv_size != 8)
            return db_damaged(db, "database '%s': a CPU key has %zu bytes", db->file, k->mv_size);
        memcpy(&key, k->mv_data, 8);
        if (c->cpu && key != c->cpu)
            return 0;
        it->kind = MCT_DB_ITEM_CPU;
        if (mct_db_cpu_from_json(v->mv_data, v->mv_size, &it->cpu, why, sizeof why) != MCT_OK)
            rc = db_damaged(db, "database '%s': a CPU record: %s", db->file, why);
    } else if (c->table == 1) {
        uint8_t h[16];
        it->kind = MCT_DB_ITEM_WORKLOAD;
        if (v->mv_size >= sizeof it->rec.workload || k->mv_size != 16)
            return db_damaged(db, "database '%s': a workload entry has a %zu-byte key and a "
                              "%zu-byte text", db->file, k->mv_size, v->mv_size);
        memcpy(it->rec.workload, v->mv_data, v->mv_size);
        it->rec.workload[v->mv_size] = 0;
        mct_hash_text(it->rec.workload, v->mv_size, h);
        if (memcmp(h, k->mv_data, 16))
            rc = db_damaged(db, "database '%s': workload '%s' is stored under another hash",
                            db->file, it->rec.workload);
    } else if (c->table == 2 || c->table == 3) {
        mct_db_key ck;
        if (k->mv_size < sizeof ck)
            return db_damaged(db, "database '%s': a record key has %zu bytes", db->file,
                              k->mv_size);
        memcpy(&ck, k->mv_data, sizeof ck);
        if (c->cpu && ck.cpu != c->cpu)
            return 0;
        it->kind = c->table == 2 ? MCT_DB_ITEM_BEST : MCT_DB_ITEM_TRIAL;
        rc = db_decode_rec(db, k->mv_data, k->mv_size, v->mv_data, v->mv_size, &it->rec);
    } else {
        it->kind = MCT_DB_ITEM_LLM;
        if ((rc = db_llm_decode(v->mv_data, v->mv_size, s, why, sizeof why)) == MCT_OK)
            db_llm_item(it, s);
        else
            rc = db_damaged(db, "database '%s': a cached LLM reply is not a JSON object of "
                            "strings", db->file);
    }
    if (rc == MCT_OK)
        rc = c->fn(it, c->ctx);
    mct_db_item_clear(it);
    return rc;
}

static int each_item(mct_db *db, MDB_txn *t, uint64_t cpu, int with_trials, item_fn fn,
                     void *ctx)
{
    MDB_dbi dbis[5] = {db->cpus, db->wls, db->best, db->trials, db->llm};
    struct each_ctx c = {0, cpu, fn, ctx, calloc(1, sizeof *c.it)};
    int rc = MCT_OK;
    if (!c.it)
        return db_fail(db, MCT_ENOMEM, "out of memory");
    for (c.table = 0; c.table < 5 && rc == MCT_OK; c.table++) {
        if ((c.table == 1 || c.table == 4) && cpu)
            continue;  /* a per-CPU export carries that CPU's records only */
        if (c.table == 3 && !with_trials)
            continue;
        rc = db_scan(db, t, dbis[c.table], NULL, 0, "iterating", item_one, &c);
    }
    free(c.it);
    return rc;
}

/* ---- export ---------------------------------------------------------------------------------- */

struct exp_ctx { mct_db *db; FILE *f; size_t count; };

static int export_one(const mct_db_item *it, void *p)
{
    struct exp_ctx *c = p;
    char *line;
    int rc = mct_db_item_format(it, &line);
    if (rc)
        return db_fail(c->db, rc, "out of memory");
    if (fputs(line, c->f) == EOF || fputc('\n', c->f) == EOF)
        rc = db_fail(c->db, MCT_EIO, "export: cannot write: %s", strerror(errno));
    free(line);
    c->count++;
    return rc;
}

/* An export is framed by a first line {"type":"begin","format":1} and a last line
 * {"type":"end","records":N}. Import checks the frame, so an export cut short (a full disk, a
 * killed copy, a preempted job) is refused as a whole instead of being half imported. Files
 * without a begin line (written by hand or by older versions) are read as before. */
#define EXPORT_BEGIN "{\"type\":\"begin\",\"format\":1}"

int mct_db_export(mct_db *db, FILE *f, uint64_t cpu, int with_trials, size_t *count)
{
    struct exp_ctx c = {db, f, 0};
    MDB_txn *t;
    int rc = db_rbegin(db, &t);
    if (rc)
        return rc;
    if (fputs(EXPORT_BEGIN "\n", f) == EOF)
        rc = db_fail(db, MCT_EIO, "export: cannot write: %s", strerror(errno));
    if (rc == MCT_OK)
        rc = each_item(db, t, cpu, with_trials, export_one, &c);
    db_rend(db, t);
    if (rc == MCT_OK && fprintf(f, "{\"type\":\"end\",\"records\":%zu}\n", c.count) < 0)
        rc = db_fail(db, MCT_EIO, "export: cannot write: %s", strerror(errno));
    if (rc == MCT_OK && fflush(f) != 0)
        rc = db_fail(db, MCT_EIO, "export: cannot write: %s", strerror(errno));
    if (count)
        *count = c.count;
    return rc;
}

/* ---- import ---------------------------------------------------------------------------------- */

struct imp_ctx {
    const char *file;
    mct_db_note_fn note;
    void *ctx;
    mct_db_report rep;
};

/* The frame of an export (see EXPORT_BEGIN): 1 for a begin line, 2 for an end line (*records
 * set), 0 for any other line, negative when a frame line is malformed (err says why). */
static int frame_line(const char *line, size_t len, size_t *records, char *err, size_t n)
{
    const char *b = memmem(line, len, "\"begin\"", 7), *e = memmem(line, len, "\"end\"", 5);
    const cJSON *ty, *v;
    int rc = 0;
    if (!b && !e)
        return 0;   /* cheap test first: most lines are records */
    cJSON *o = cJSON_ParseWithLength(line, len);
    ty = o ? cJSON_GetObjectItemCaseSensitive(o, "type") : NULL;
    if (cJSON_IsString(ty) && !strcmp(ty->valuestring, "begin")) {
        v = cJSON_GetObjectItemCaseSensitive(o, "format");
        rc = cJSON_IsNumber(v) && v->valuedouble == 1 ? 1
             : mct_errf(err, n, MCT_EVERSION, "the begin line's field 'format' must be 1 (this "
                        "file comes from a newer mctune; import it with that version)");
    } else if (cJSON_IsString(ty) && !strcmp(ty->valuestring, "end")) {
        v = cJSON_GetObjectItemCaseSensitive(o, "records");
        if (cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble == (double)(size_t)
            v->valuedouble) {
            *records = (size_t)v->valuedouble;
            rc = 2;
        } else {
            rc = mct_errf(err, n, MCT_EINVAL, "the end line's field 'records' must be a whole "
                          "number");
        }
    }
    cJSON_Delete(o);
    return rc;
}

static int import_fn(mct_db *db, MDB_txn *t, void *p)
{
    struct imp_ctx *c = p;
    FILE *f = fopen(c->file, "rb");
    char *line = NULL, why[768];
    size_t cap = 0;
    ssize_t n;
    long lineno = 0;
    int rc = MCT_OK, fr;
    int framed = 0;      /* 0: no begin line seen; 1: inside begin..end; 2: after an end line */
    size_t inside = 0, said = 0;
    mct_db_item *it = NULL;
    memset(&c->rep, 0, sizeof c->rep);
    if (!f)
        return db_fail(db, MCT_EIO, "import: cannot read '%s': %s", c->file, strerror(errno));
    if (!(it = malloc(sizeof *it))) {
        rc = db_fail(db, MCT_ENOMEM, "out of memory");
        goto fail;
    }
    db->npend = 0;
    while ((n = getline(&line, &cap, f)) >= 0) {
        lineno++;
        db->line = lineno;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = 0;
        if (strspn(line, " \t") == (size_t)n)
            continue;
        if (memchr(line, 0, (size_t)n)) {
            rc = db_fail(db, MCT_EINVAL, "%s:%ld: the line holds a NUL byte (not a text file?); "
                         "nothing was imported", c->file, lineno);
            goto fail;
        }
        if ((fr = frame_line(line, (size_t)n, &said, why, sizeof why)) < 0) {
            rc = db_fail(db, fr, "%s:%ld: %s; nothing was imported", c->file, lineno, why);
            goto fail;
        }
        if (fr == 1 && (framed == 1 || (framed == 0 && lineno > 1))) {
            rc = db_fail(db, MCT_EINVAL, "%s:%ld: a begin line inside an export (an export cut "
                         "short, then another appended?); nothing was imported", c->file, lineno);
            goto fail;
        }
        if (fr == 2 && (framed != 1 || said != inside)) {
            rc = db_fail(db, MCT_ECORRUPT, framed != 1
                         ? "%s:%ld: an end line without its begin line; nothing was imported"
                         : "%s:%ld: the export says it holds %zu records but %zu precede its end "
                         "line (the file was cut or edited); nothing was imported", c->file,
                         lineno, said, inside);
            goto fail;
        }
        if (fr) {
            framed = fr;
            inside = 0;
            continue;
        }
        if (framed == 2) {
            rc = db_fail(db, MCT_EINVAL, "%s:%ld: a record after the export's end line; nothing "
                         "was imported", c->file, lineno);
            goto fail;
        }
        inside++;
        if ((rc = mct_db_item_parse(line, (size_t)n, it, why, sizeof why)) != MCT_OK) {
            rc = db_fail(db, rc, "%s:%ld: %s; nothing was imported", c->file, lineno, why);
            goto fail;
        }
        rc = db_apply_item(db, t, it, c->note, c->ctx, &c->rep);
        mct_db_item_clear(it);
        if (rc == DB_EFULL)
            goto fail;
        if (rc) {
            char msg[sizeof db->err];
            snprintf(msg, sizeof msg, "%s", db->err);
            rc = db_fail(db, rc, "%s:%ld: %s; nothing was imported", c->file, lineno, msg);
            goto fail;
        }
    }
    if (ferror(f))
        rc = db_fail(db, MCT_EIO, "import: reading '%s' failed: %s", c->file, strerror(errno));
    else if (framed == 1)
        rc = db_fail(db, MCT_ECORRUPT, "%s: the export ends after %zu records without its end "
                     "line (cut short: a full disk, a killed job or copy?); nothing was imported; "
                     "export it again", c->file, inside);
    else
        rc = check_pending(db, t, c->file);
fail:
    db->npend = 0;
    db->line = 0;
    free(it);
    free(line);
    fclose(f);
    return rc;
}

int mct_db_import(mct_db *db, const char *file, mct_db_note_fn note, void *ctx,
                  mct_db_report *rep)
{
    struct imp_ctx c = {file, note, ctx, {0, 0, 0, 0, 0}};
    int rc = db_write(db, import_fn, &c);
    if (rep)
        *rep = rc == MCT_OK ? c.rep : (mct_db_report){0, 0, 0, 0, 0};
    return rc;
}

/* ---- merge ----------------------------------------------------------------------------------- */

struct merge_ctx {
    mct_db *other;
    mct_db *dst;
    MDB_txn *t;
    mct_db_note_fn note;
    void *ctx;
    mct_db_report rep;
};

static int merge_one(const mct_db_item *it, void *p)
{
    struct merge_ctx *c = p;
    return db_apply_item(c->dst, c->t, it, c->note, c->ctx, &c->rep);
}

static int merge_fn(mct_db *db, MDB_txn *t, void *p)
{
    struct merge_ctx *c = p;
    MDB_txn *rt;
    int rc = db_rbegin(c->other, &rt);
    memset(&c->rep, 0, sizeof c->rep);
    if (rc)
        return db_fail(db, rc, "%s", c->other->err);
    c->dst = db;
    c->t = t;
    db->npend = 0;
    db->line = 0;
    rc = each_item(c->other, rt, 0, 1, merge_one, c);
    db_rend(c->other, rt);
    if (rc == MCT_OK)
        rc = check_pending(db, t, c->other->path);
    db->npend = 0;
    if (rc && rc != DB_EFULL && !db->err[0])
        db_fail(db, rc, "%s", c->other->err);
    return rc;
}

int mct_db_merge(mct_db *db, const char *other_path, mct_db_note_fn note, void *ctx,
                 mct_db_report *rep)
{
    struct merge_ctx c;
    char err[sizeof db->err];
    int rc;
    memset(&c, 0, sizeof c);
    c.note = note;
    c.ctx = ctx;
    struct stat a, b;
    if (stat(other_path, &a) == 0 && stat(db->path, &b) == 0 && a.st_dev == b.st_dev &&
        a.st_ino == b.st_ino)
        return db_fail(db, MCT_EINVAL, "merge: '%s' is this database itself; name another one",
                       other_path);
    if ((rc = mct_db_open(other_path, MCT_DB_RDONLY, err, sizeof err, &c.other)) != MCT_OK)
        return db_fail(db, rc, "merge: %s", err);
    rc = db_write(db, merge_fn, &c);
    mct_db_close(c.other);
    if (rep)
        *rep = rc == MCT_OK ? c.rep : (mct_db_report){0, 0, 0, 0, 0};
    return rc;
}
