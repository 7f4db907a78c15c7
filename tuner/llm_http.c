/* The `llm` guide's client: OpenAI-compatible chat completions over libcurl. It builds the
 * request, makes one POST at a time and says whether a failure is worth another attempt; the
 * retry loop, the backoff and stopping the guide are guide_llm.c's. The only file that
 * includes curl.h. Response bodies are untrusted: scrubbed of the key before anything reads
 * them, quoted in messages only as short excerpts. */
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "codegen/text.h"
#include "runtime/mct_err.h"
#include "tuner/llm_int.h"

static const char *system_msg =
    "You are an expert performance engineer for CPU inference kernels. You optimize loop "
    "schedules by choosing transformations from a fixed set, and you always end your answer "
    "with a fenced ```json block in the requested format.";

struct llm_http {
    CURL *curl;
    struct curl_slist *hdrs;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;
static void curl_init(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int llm_http_open(llm_guide *g, char *err, size_t errlen)
{
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK)
        return llm_err(g, err, errlen, MCT_ENET, "llm: libcurl failed to initialize: %s",
                       curl_easy_strerror(curl_init_rc));
    struct llm_http *h = calloc(1, sizeof *h);
    if (!h)
        return llm_err(g, err, errlen, MCT_ENOMEM, "llm: out of memory");
    g->http = h;
    if (!(h->curl = curl_easy_init()))
        return llm_err(g, err, errlen, MCT_ENET, "llm: libcurl could not create a handle");
    const char *fixed[] = {"Content-Type: application/json", "Accept: application/json",
                           "Expect:"};
    struct curl_slist *t;
    for (int i = 0; i < 3; i++) {
        if (!(t = curl_slist_append(h->hdrs, fixed[i])))
            goto fail;
        h->hdrs = t;
    }
    if (g->key) {
        size_t n = strlen(g->key) + 32;
        char *a = malloc(n);
        if (!a)
            goto fail;
        snprintf(a, n, "Authorization: Bearer %s", g->key);
        t = curl_slist_append(h->hdrs, a);
        memset(a, 0, n);
        free(a);
        if (!t)
            goto fail;
        h->hdrs = t;
    }
    return 0;
fail:
    return llm_err(g, err, errlen, MCT_ENOMEM, "llm: out of memory");
}

void llm_http_close(llm_guide *g)
{
    struct llm_http *h = g->http;
    if (!h)
        return;
    if (h->curl)
        curl_easy_cleanup(h->curl);
    curl_slist_free_all(h->hdrs);
    free(h);
    g->http = NULL;
}

int llm_http_request(const llm_guide *g, const char *prompt, char **req)
{
    *req = NULL;
    char *s = NULL;
    cJSON *j = cJSON_CreateObject(), *msgs, *m;
    if (!j || !cJSON_AddStringToObject(j, "model", g->model) ||
        !(msgs = cJSON_AddArrayToObject(j, "messages")))
        goto fail;
    if (!(m = cJSON_CreateObject()) || (cJSON_AddItemToArray(msgs, m), 0) ||
        !cJSON_AddStringToObject(m, "role", "system") ||
        !cJSON_AddStringToObject(m, "content", system_msg))
        goto fail;
    if (!(m = cJSON_CreateObject()) || (cJSON_AddItemToArray(msgs, m), 0) ||
        !cJSON_AddStringToObject(m, "role", "user") ||
        !cJSON_AddStringToObject(m, "content", prompt))
        goto fail;
    if (g->temperature >= 0 && !cJSON_AddNumberToObject(j, "temperature", g->temperature))
        goto fail;
    if (!cJSON_AddFalseToObject(j, "stream") || !(s = cJSON_PrintUnformatted(j)))
        goto fail;
    /* a copy the caller frees with free(), whatever allocator cJSON was given */
    *req = strdup(s);
fail:
    cJSON_free(s);
    cJSON_Delete(j);
    return *req ? 0 : MCT_ENOMEM;
}

typedef struct {
    mct_str b;
    int over;
} body_t;

static size_t on_body(char *p, size_t sz, size_t nm, void *ud)
{
    body_t *bd = ud;
    size_t n = sz * nm;
    if (bd->b.n + n > REPLY_MAX) {
        bd->over = 1;
        return 0;
    }
    mct_str_add(&bd->b, p, n);
    return bd->b.oom ? 0 : n;
}

/* Notes whether the response carries a Retry-After header: CURLINFO_RETRY_AFTER reads 0 both
 * for "Retry-After: 0" and for no header, and a missing header must mean our own backoff. */
static size_t on_header(char *p, size_t sz, size_t nm, void *ud)
{
    size_t n = sz * nm;
    if (n >= 12 && !strncasecmp(p, "Retry-After:", 12))
        *(int *)ud = 1;
    return n;
}

static int retryable_curl(CURLcode c)
{
    return c == CURLE_OPERATION_TIMEDOUT || c == CURLE_GOT_NOTHING || c == CURLE_RECV_ERROR ||
           c == CURLE_SEND_ERROR || c == CURLE_PARTIAL_FILE || c == CURLE_HTTP2 ||
           c == CURLE_HTTP2_STREAM;
}

int llm_http_post(llm_guide *g, const char *req, char **body, llm_try *t, char *err,
                  size_t errlen)
{
    CURL *c = g->http->curl;
    char ebuf[CURL_ERROR_SIZE] = "", ex[200];
    body_t bd = {{0}, 0};
    int saw_ra = 0, r;
    *body = NULL;
    *t = (llm_try){.retry_after = -1};
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, g->url);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(c, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, g->http->hdrs);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, req);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(req));
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &bd);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &saw_ra);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, ebuf);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "mctune/0.1");
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)(g->connect_s * 1000));
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(g->request_s * 1000));
    curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");
    CURLcode cc = curl_easy_perform(c);
    curl_off_t ra = -1;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &t->status);
    if (cc == CURLE_OK && saw_ra && curl_easy_getinfo(c, CURLINFO_RETRY_AFTER, &ra) == CURLE_OK)
        t->retry_after = (long)ra;
    llm_scrub(ebuf, g->key);
    if (bd.b.s)
        llm_scrub(bd.b.s, g->key);
    t->bytes = bd.b.n;
    long code = t->status;
    if (cc == CURLE_OK && code >= 200 && code < 300) {
        if (bd.b.oom) {
            r = llm_err(g, err, errlen, MCT_ENOMEM, "llm: out of memory");
            goto fail;
        }
        *body = mct_str_take(&bd.b);
        return *body ? 0 : llm_err(g, err, errlen, MCT_ENOMEM, "llm: out of memory");
    }
    if (cc == CURLE_OK) {
        llm_excerpt(bd.b.s ? bd.b.s : "", 200, ex, sizeof ex);
        snprintf(t->why, sizeof t->why, "HTTP %ld ('%s')", code, ex);
        t->retry = code == 408 || code == 429 || code >= 500;
        if (t->retry) {
            r = MCT_ENET;
            goto fail;
        }
        char hint[300];
        if (code == 401 || code == 403)
            snprintf(hint, sizeof hint, "check the API key (%s)", g->key_src);
        else if (code == 404)
            snprintf(hint, sizeof hint, "check the base URL (from %s; it usually ends in /v1) "
                     "and the model name '%s'", g->url_src, g->model);
        else
            snprintf(hint, sizeof hint, "check the model name '%s' and the server's limits "
                     "(context length)", g->model);
        /* a refused key or a wrong URL fails every prompt alike; another 4xx (say, a prompt
         * over the context length) may be about this prompt only */
        g->fatal = code == 401 || code == 403 || code == 404;
        r = llm_err(g, err, errlen, MCT_ENET, "llm: %s from %s; %s", t->why, g->url, hint);
        goto fail;
    }
    if (cc == CURLE_WRITE_ERROR && bd.over) {
        r = llm_err(g, err, errlen, MCT_ERANGE, "llm: the reply from %s is over %zu bytes; refused",
                    g->url, REPLY_MAX);
        goto fail;
    }
    snprintf(t->why, sizeof t->why, "%s", ebuf[0] ? ebuf : curl_easy_strerror(cc));
    t->retry = retryable_curl(cc);
    r = MCT_ENET;
    if (cc == CURLE_OPERATION_TIMEDOUT) {
        r = MCT_ETIMEOUT;
        snprintf(t->why, sizeof t->why, "no complete reply within the request timeout of %.3g s "
                 "(%s)", g->request_s, ebuf[0] ? ebuf : "timed out");
    }
    if (!t->retry) {
        g->fatal = 1;
        r = llm_err(g, err, errlen, MCT_ENET, "llm: cannot reach %s: %s; is the server running "
                    "and the base URL (from %s) right?", g->url, t->why, g->url_src);
    }
fail:
    mct_str_free(&bd.b);
    return r;
}

int llm_http_content(llm_guide *g, const char *body, char **reply, char *err, size_t errlen)
{
    char ex[200];
    mct_str b = {0};
    int r;
    *reply = NULL;
    cJSON *root = cJSON_Parse(body);
    if (!root) {
        llm_excerpt(body, 120, ex, sizeof ex);
        return llm_err(g, err, errlen, MCT_EINVAL,
                       "llm: %s answered with a body that is not JSON ('%s'); is the base URL an "
                       "OpenAI-compatible API (it usually ends in /v1)?", g->url, ex);
    }
    const cJSON *usage = cJSON_GetObjectItemCaseSensitive(root, "usage");
    if (cJSON_IsObject(usage)) {
        const cJSON *pt = cJSON_GetObjectItemCaseSensitive(usage, "prompt_tokens");
        const cJSON *ct = cJSON_GetObjectItemCaseSensitive(usage, "completion_tokens");
        long a = cJSON_IsNumber(pt) && pt->valuedouble > 0 && pt->valuedouble < 1e12
                 ? (long)pt->valuedouble : 0;
        long c = cJSON_IsNumber(ct) && ct->valuedouble > 0 && ct->valuedouble < 1e12
                 ? (long)ct->valuedouble : 0;
        g->base.stats.prompt_tokens += a;
        g->base.stats.completion_tokens += c;
        g->tokens_used += a + c;
    }
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "error");
    const cJSON *ch = cJSON_GetObjectItemCaseSensitive(root, "choices");
    const cJSON *c0 = cJSON_IsArray(ch) ? cJSON_GetArrayItem(ch, 0) : NULL;
    const cJSON *msg = c0 ? cJSON_GetObjectItemCaseSensitive(c0, "message") : NULL;
    const cJSON *content = msg ? cJSON_GetObjectItemCaseSensitive(msg, "content") : NULL;
    if (!c0 || !msg) {
        const cJSON *em = e ? cJSON_GetObjectItemCaseSensitive(e, "message") : NULL;
        if (cJSON_IsString(em))
            llm_excerpt(em->valuestring, 150, ex, sizeof ex);
        else
            llm_excerpt(body, 120, ex, sizeof ex);
        r = llm_err(g, err, errlen, MCT_EINVAL,
                    "llm: the reply from %s has no choices[0].message ('%s'); is it a chat "
                    "completions endpoint?", g->url, ex);
        goto fail;
    }
    if (cJSON_IsString(content)) {
        mct_str_puts(&b, content->valuestring);
    } else if (cJSON_IsArray(content)) {
        /* content parts: [{"type": "text", "text": "..."}] */
        const cJSON *part;
        cJSON_ArrayForEach(part, content) {
            const cJSON *tx = cJSON_GetObjectItemCaseSensitive(part, "text");
            if (cJSON_IsString(tx))
                mct_str_puts(&b, tx->valuestring);
        }
    }
    if (b.oom) {
        r = llm_err(g, err, errlen, MCT_ENOMEM, "llm: out of memory");
        goto fail;
    }
    const char *t = b.s ? b.s : "";
    while (isspace((unsigned char)*t))
        t++;
    if (!*t) {
        const cJSON *fr = cJSON_GetObjectItemCaseSensitive(c0, "finish_reason");
        r = llm_err(g, err, errlen, MCT_EINVAL,
                    "llm: model '%s' returned empty content (finish_reason %s)%s", g->model,
                    cJSON_IsString(fr) ? fr->valuestring : "absent",
                    cJSON_IsString(fr) && !strcmp(fr->valuestring, "length")
                    ? "; it ran out of tokens: raise the server's output limit" : "");
        goto fail;
    }
    *reply = mct_str_take(&b);
    r = 0;
fail:
    mct_str_free(&b);
    cJSON_Delete(root);
    return r;
}
