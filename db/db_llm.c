/* The LLM reply cache: key = xxh3-128 of (model, params, prompt), value = the four as JSON. */
#include "db/db_int.h"

#include <stdlib.h>
#include <string.h>

static int llm_key(const char *model, const char *params, const char *prompt, uint8_t h[16])
{
    size_t a = strlen(model), b = strlen(params), c = strlen(prompt);
    char *buf = malloc(a + b + c + 3);
    if (!buf)
        return MCT_ENOMEM;
    memcpy(buf, model, a + 1);
    memcpy(buf + a + 1, params, b + 1);
    memcpy(buf + a + b + 2, prompt, c + 1);
    mct_hash_text(buf, a + b + c + 3, h);
    free(buf);
    return MCT_OK;
}

struct llm_ctx { const char *model, *params, *prompt, *reply; };

/* outcome: 0 added, 1 same, 2 conflict (kept the stored one unless overwrite) */
int db_llm_put_txn(mct_db *db, MDB_txn *t, const char *model, const char *params,
                   const char *prompt, const char *reply, int overwrite, int *outcome)
{
    uint8_t h[16];
    int rc = llm_key(model, params, prompt, h);
    if (rc)
        return db_fail(db, rc, "out of memory");
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return db_fail(db, MCT_ENOMEM, "out of memory");
    cJSON_AddStringToObject(o, "model", model);
    cJSON_AddStringToObject(o, "params", params);
    cJSON_AddStringToObject(o, "prompt", prompt);
    cJSON_AddStringToObject(o, "reply", reply);
    char *json = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!json)
        return db_fail(db, MCT_ENOMEM, "out of memory");
    MDB_val k = {16, h};
    return db_put_json(db, t, db->llm, &k, json, overwrite, outcome, "storing an LLM reply");
}

static int llm_put_fn(mct_db *db, MDB_txn *t, void *p)
{
    struct llm_ctx *c = p;
    int outcome;
    return db_llm_put_txn(db, t, c->model, c->params, c->prompt, c->reply, 1, &outcome);
}

int mct_db_llm_put(mct_db *db, const char *model, const char *params, const char *prompt,
                   const char *reply)
{
    struct llm_ctx c = {model, params, prompt, reply};
    if (!model || !params || !prompt || !reply)
        return db_fail(db, MCT_EINVAL, "LLM cache: model, params, prompt and reply are needed");
    return db_write(db, llm_put_fn, &c);
}

static const char *const llm_fields[4] = {"model", "params", "prompt", "reply"};

int db_llm_from_cjson(const cJSON *o, char *s[4], char *why, size_t n)
{
    int rc = MCT_OK;
    for (int i = 0; i < 4; i++)
        s[i] = NULL;
    for (int i = 0; i < 4 && rc == MCT_OK; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, llm_fields[i]);
        if (!cJSON_IsString(v) || !v->valuestring)
            rc = mct_errf(why, n, MCT_EINVAL, "field '%s' is missing or not a string",
                          llm_fields[i]);
        else if (!(s[i] = strdup(v->valuestring)))
            rc = mct_errf(why, n, MCT_ENOMEM, "out of memory");
    }
    if (rc)
        for (int i = 0; i < 4; i++) {
            free(s[i]);
            s[i] = NULL;
        }
    return rc;
}

int db_llm_decode(const void *val, size_t len, char *s[4], char *why, size_t n)
{
    cJSON *o = cJSON_ParseWithLength(val, len);
    int rc = db_llm_from_cjson(o, s, why, n);  /* NULL (not JSON) has no fields */
    cJSON_Delete(o);
    return rc;
}

int mct_db_llm_get(mct_db *db, const char *model, const char *params, const char *prompt,
                   char **reply)
{
    uint8_t h[16];
    MDB_txn *t;
    MDB_val k = {16, h}, v;
    char *s[4] = {NULL, NULL, NULL, NULL}, why[128];
    int rc;
    if (!reply)
        return db_fail(db, MCT_EINVAL, "LLM cache: no place for the reply (reply is NULL)");
    *reply = NULL;
    if (!model || !params || !prompt)
        return db_fail(db, MCT_EINVAL, "LLM cache: model, params and prompt are needed");
    if ((rc = llm_key(model, params, prompt, h)) != MCT_OK)
        return db_fail(db, rc, "out of memory");
    if ((rc = db_rbegin(db, &t)) != MCT_OK)
        return rc;
    rc = mdb_get(t, db->llm, &k, &v);
    if (rc) {
        rc = db_lmdb(db, rc, "reading an LLM reply");
        goto fail;
    }
    rc = db_llm_decode(v.mv_data, v.mv_size, s, why, sizeof why);
    if (rc == MCT_ENOMEM) {
        rc = db_fail(db, MCT_ENOMEM, "out of memory");
    } else if (rc) {
        rc = db_damaged(db, "database '%s': a cached LLM reply for model '%s' is not a JSON "
                        "object of strings", db->file, model);
    } else if (strcmp(s[0], model) || strcmp(s[1], params) || strcmp(s[2], prompt)) {
        rc = db_damaged(db, "database '%s': the cached LLM reply under this key was asked with "
                        "another prompt (hash collision or damage)", db->file);
    } else {
        *reply = s[3];
        s[3] = NULL;
    }
    for (int i = 0; i < 4; i++)
        free(s[i]);
fail:
    db_rend(db, t);
    return rc;
}
