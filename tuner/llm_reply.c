/* A model's reply -> proposal texts (mct_guide_parse_reply in tuner/guide.h). The reply is
 * untrusted data: only lists of strings are taken from it (the last fenced JSON block, else the
 * last JSON list in the text), bounded in count and size; the search then applies each text
 * with mct_sched_apply, which accepts only transformations of O. */
#include "tuner/guide.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "codegen/text.h"
#include "runtime/mct_err.h"
#include "tuner/llm_int.h"

#define PROPOSAL_MAX 4096             /* bytes of one proposal text */
#define ITEMS_MAX 64                  /* reply items examined */

static const char *type_name(const cJSON *x)
{
    if (cJSON_IsString(x)) return "a string";
    if (cJSON_IsArray(x)) return "a list";
    if (cJSON_IsObject(x)) return "an object";
    if (cJSON_IsNumber(x)) return "a number";
    if (cJSON_IsBool(x)) return "a boolean";
    if (cJSON_IsNull(x)) return "null";
    return "invalid";
}

/* One item -> one proposal text, or a reason in why. *text is malloc'ed. */
static int item_text(const cJSON *it, char **text, char *why, size_t len)
{
    mct_str b = {0};
    int r;
    *text = NULL;
    if (cJSON_IsString(it)) {
        mct_str_puts(&b, it->valuestring);
    } else if (cJSON_IsArray(it)) {
        int i = 0;
        const cJSON *s;
        cJSON_ArrayForEach(s, it) {
            if (!cJSON_IsString(s)) {
                r = mct_errf(why, len, MCT_EINVAL, "element %d is %s, not a string", i + 1,
                             type_name(s));
                goto fail;
            }
            const char *v = s->valuestring;
            while (isspace((unsigned char)*v))
                v++;
            if (*v) {
                if (b.n)
                    mct_str_puts(&b, "; ");
                mct_str_puts(&b, v);
            }
            i++;
        }
    } else {
        return mct_errf(why, len, MCT_EINVAL, "%s, not a string or a list of strings",
                        type_name(it));
    }
    if (b.oom) {
        r = MCT_ENOMEM;
        goto fail;
    }
    /* trim */
    size_t n = b.n;
    while (n && isspace((unsigned char)b.s[n - 1]))
        n--;
    size_t s = 0;
    while (s < n && isspace((unsigned char)b.s[s]))
        s++;
    if (s == n) {
        r = mct_errf(why, len, MCT_EINVAL, "empty");
        goto fail;
    }
    if (n - s > PROPOSAL_MAX) {
        r = mct_errf(why, len, MCT_ERANGE, "%zu bytes long (limit %d)", n - s, PROPOSAL_MAX);
        goto fail;
    }
    memmove(b.s, b.s + s, n - s);
    b.s[n - s] = 0;
    *text = mct_str_take(&b);
    return 0;
fail:
    mct_str_free(&b);
    return r;
}

/* Checks the shape of a parsed value and extracts up to max proposals. */
static int take_list(const cJSON *root, char **out, int max, char *err, size_t errlen)
{
    const cJSON *list = root;
    if (cJSON_IsObject(root)) {
        list = cJSON_GetObjectItemCaseSensitive(root, "proposals");
        if (!list)
            return mct_errf(err, errlen, MCT_EINVAL,
                            "the JSON block is an object without \"proposals\"; expected a "
                            "list of proposals");
    }
    if (!cJSON_IsArray(list))
        return mct_errf(err, errlen, MCT_EINVAL,
                        "the JSON block is %s; expected a list of proposals", type_name(list));
    int n = 0, idx = 0, bad = 0;
    char first_bad[200] = "";
    const cJSON *it;
    cJSON_ArrayForEach(it, list) {
        if (n >= max || idx >= ITEMS_MAX)
            break;
        idx++;
        char *text, why[160];
        int r = item_text(it, &text, why, sizeof why);
        if (r == MCT_ENOMEM)
            goto fail;
        if (r) {
            if (!bad++)
                snprintf(first_bad, sizeof first_bad, "item %d is %s", idx, why);
            continue;
        }
        int dup = 0;
        for (int q = 0; q < n; q++)
            if (!strcmp(out[q], text))
                dup = 1;
        if (dup) {
            free(text);
            continue;
        }
        out[n++] = text;
    }
    if (n == 0) {
        if (bad)
            return mct_errf(err, errlen, MCT_EINVAL, "no usable proposal in the JSON list: %s",
                            first_bad);
        return mct_errf(err, errlen, MCT_EINVAL, "the JSON list of proposals is empty");
    }
    return n;
fail:
    for (int q = 0; q < n; q++)
        free(out[q]);
    return MCT_ENOMEM;
}

static int ci_prefix(const char *s, const char *p)
{
    for (; *p; s++, p++)
        if (tolower((unsigned char)*s) != *p)
            return 0;
    return 1;
}

int mct_guide_parse_reply(const char *reply, char **out, int max, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = 0;
    if (max <= 0)
        return mct_errf(err, errlen, MCT_EINVAL, "asked for %d proposals; ask for at least 1", max);
    const char *p = reply ? reply : "";
    while (isspace((unsigned char)*p))
        p++;
    if (!*p)
        return mct_errf(err, errlen, MCT_EINVAL, "empty reply (no text at all)");

    /* Fenced blocks: remember the last one tagged json, else the last untagged one. */
    const char *json_s = NULL, *json_e = NULL, *any_s = NULL, *any_e = NULL;
    int json_open = 0, any_open = 0;
    const char *q = reply;
    for (int guard = 0; guard < 100000; guard++) {
        const char *f = strstr(q, "```");
        if (!f)
            break;
        const char *info = f + 3;
        while (*info == '`')
            info++;
        const char *nl = strchr(info, '\n');
        const char *body = nl ? nl + 1 : info + strlen(info);
        const char *tag = info;
        while (*tag == ' ' || *tag == '\t')
            tag++;
        int is_json = ci_prefix(tag, "json");
        int untagged = *tag == '\n' || *tag == '\r' || *tag == 0;
        const char *close = strstr(body, "```");
        const char *end = close ? close : body + strlen(body);
        if (is_json) {
            json_s = body, json_e = end, json_open = !close;
        } else if (untagged) {
            any_s = body, any_e = end, any_open = !close;
        }
        if (!close)
            break;
        q = close + 3;
        while (*q == '`')
            q++;
    }
    int open = 0;
    if (!json_s && any_s) {
        /* an untagged block counts only when it holds a list */
        const char *t = any_s;
        while (isspace((unsigned char)*t))
            t++;
        if (*t == '[' || *t == '{')
            json_s = any_s, json_e = any_e, open = any_open;
    } else {
        open = json_open;
    }

    if (json_s) {
        size_t n = (size_t)(json_e - json_s);
        char *txt = malloc(n + 1);
        if (!txt)
            return MCT_ENOMEM;
        memcpy(txt, json_s, n);
        txt[n] = 0;
        const char *t = txt;
        while (isspace((unsigned char)*t))
            t++;
        if (!*t) {
            free(txt);
            return mct_errf(err, errlen, MCT_EINVAL, "the last ```json block is empty");
        }
        const char *endp = NULL;
        cJSON *root = cJSON_ParseWithOpts(t, &endp, 0);
        if (!root) {
            char ex[64];
            size_t off = endp ? (size_t)(endp - t) : 0;
            llm_excerpt(t + off, 40, ex, sizeof ex);
            int truncated = open || (endp && !*endp);
            free(txt);
            if (truncated)
                return mct_errf(err, errlen, MCT_EINVAL,
                                "truncated JSON: the last ```json block ends before its list is "
                                "complete (the reply may have hit the token limit)");
            return mct_errf(err, errlen, MCT_EINVAL,
                            "the last ```json block is not valid JSON (at byte %zu: '%s')", off,
                            ex);
        }
        int r = take_list(root, out, max, err, errlen);
        cJSON_Delete(root);
        free(txt);
        return r;
    }

    /* No fenced block: top-level JSON arrays in the text; the last with a usable shape wins. */
    int last_r = 0, found = 0;
    char last_err[256] = "";
    const char *s = reply;
    int tries = 0;
    while ((s = strchr(s, '[')) && tries < 10000) {
        tries++;
        const char *endp = NULL;
        cJSON *root = cJSON_ParseWithOpts(s, &endp, 0);
        if (!root) {
            s++;
            continue;
        }
        found++;
        char *tmp[ITEMS_MAX];
        int cap = max < ITEMS_MAX ? max : ITEMS_MAX;
        int r = take_list(root, tmp, cap, last_err, sizeof last_err);
        cJSON_Delete(root);
        if (r == MCT_ENOMEM) {
            for (int i = 0; i < last_r; i++)
                free(out[i]);
            return r;
        }
        if (r > 0) {
            for (int i = 0; i < last_r; i++)
                free(out[i]);
            memcpy(out, tmp, sizeof(char *) * (size_t)r);
            last_r = r;
        }
        s = endp && endp > s ? endp : s + 1;
    }
    if (last_r > 0)
        return last_r;
    if (found)
        return mct_errf(err, errlen, MCT_EINVAL, "%s", last_err);
    char ex[64];
    llm_excerpt(p, 40, ex, sizeof ex);
    if (strchr(p, '['))
        return mct_errf(err, errlen, MCT_EINVAL, "no complete JSON list in the reply "
                        "(truncated or malformed; it starts '%s')", ex);
    return mct_errf(err, errlen, MCT_EINVAL,
                    "no ```json block and no JSON list in the reply (it starts '%s')", ex);
}
