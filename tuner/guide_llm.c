/* The LLM guides as guide objects: `llm` (chat completions, llm_http.c) and `llm-cmd` (a
 * command, llm_cmd.c). This file owns their creation and destruction, the propose loop (prompt,
 * cache, caps, ask, parse), the retries with backoff, stopping the guide on an error no retry
 * can fix, the stats, and the helpers every llm_*.c file uses (tuner/llm_int.h).
 *
 * The API key lives in memory only: every message is built in full, then scrubbed of the key,
 * then copied out, so a truncated copy cannot leave a prefix of the key behind; replies are
 * scrubbed before they are cached or parsed.
 *
 * Option conventions (mct_llm_opts): a timeout, max_retries, max_calls or max_tokens of 0 takes
 * the default below; max_retries < 0 means no retry; temperature < 0 leaves it to the server. */
#include "tuner/guide.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "codegen/text.h"
#include "db/db.h"
#include "runtime/mct_err.h"
#include "tuner/llm_int.h"

#define DEF_URL "https://api.openai.com/v1"
#define DEF_CONNECT_S 10.0
#define DEF_REQUEST_S 300.0
#define DEF_RETRIES 3
#define DEF_MAX_CALLS 2000L
#define DEF_MAX_TOKENS 10000000L
#define BACKOFF_BASE_S 1.0
#define BACKOFF_CAP_S 30.0
#define RETRY_AFTER_MAX_S 120L

/* ---- helpers (tuner/llm_int.h) ----------------------------------------------------------- */

void llm_scrub(char *s, const char *key)
{
    if (!s || !key || !*key)
        return;
    size_t kl = strlen(key);
    char *p = s;
    while ((p = strstr(p, key))) {
        if (kl >= 3) {
            memcpy(p, "***", 3);
            memmove(p + 3, p + kl, strlen(p + kl) + 1);
            p += 3;
        } else {
            memset(p, '*', kl);
            p += kl;
        }
    }
}

/* The message in full (malloc'ed), the key scrubbed out; NULL when out of memory. Formatting
 * into a fixed buffer first would cut a long message (a long command, say) before the scrub,
 * and a key across the cut would leave its prefix behind. */
static char *vformat_scrubbed(const llm_guide *g, const char *fmt, va_list ap)
{
    mct_str b = {0};
    mct_str_vaddf(&b, fmt, ap);
    char *s = mct_str_take(&b);
    if (s && g)
        llm_scrub(s, g->key);
    return s;
}

int llm_err(const llm_guide *g, char *err, size_t errlen, int code, const char *fmt, ...)
{
    if (!err || !errlen)
        return code;
    va_list ap;
    va_start(ap, fmt);
    char *msg = vformat_scrubbed(g, fmt, ap);
    va_end(ap);
    if (!msg)
        return mct_errf(err, errlen, code, "%s: %s (out of memory for its message)",
                        g ? g->base.name : "llm", mct_strerror(code));
    mct_errf(err, errlen, code, "%s", msg);
    free(msg);
    return code;
}

void llm_log(const llm_guide *g, const char *fmt, ...)
{
    if (!g->verbose)
        return;
    va_list ap;
    va_start(ap, fmt);
    char *msg = vformat_scrubbed(g, fmt, ap);
    va_end(ap);
    fprintf(stderr, "mctune %s: %s\n", g->base.name, msg ? msg : "(out of memory for a log line)");
    free(msg);
}

double llm_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void llm_excerpt(const char *s, size_t n, char *out, size_t len)
{
    size_t o = 0;
    for (size_t i = 0; s && i < n && s[i] && o + 4 < len; i++)
        out[o++] = (unsigned char)s[i] < 32 ? ' ' : s[i];
    if (s && o + 4 >= len && strlen(s) > o)
        memcpy(out + o, "...", 3), o += 3;
    out[o] = 0;
}

static void sleep_s(double s)
{
    if (s <= 0)
        return;
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)}, rem;
    while (nanosleep(&ts, &rem) && errno == EINTR)
        ts = rem;
}

static const char *env_or(const char *v, const char *name)
{
    if (v && *v)
        return v;
    const char *e = getenv(name);
    return e && *e ? e : NULL;
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* ---- asking: llm over HTTP with retries, llm-cmd once ------------------------------------ */

/* The delay before retry number attempt + 1: the server's Retry-After when it sent one, else
 * 1 s, 2 s, 4 s ... capped, drawn uniformly in [d/2, d) so that clients do not retry in
 * lockstep. */
static double backoff_s(llm_guide *g, int attempt, long retry_after)
{
    if (retry_after >= 0)
        return (double)retry_after;
    double d = BACKOFF_BASE_S * (double)(1L << (attempt < 10 ? attempt : 10));
    if (d > BACKOFF_CAP_S)
        d = BACKOFF_CAP_S;
    return d * (0.5 + 0.5 * mct_guide_unif(&g->jitter));
}

static int ask_http(llm_guide *g, const char *prompt, char **reply, char *err, size_t errlen)
{
    char *req = NULL, *body = NULL;
    int r;
    if (llm_http_request(g, prompt, &req))
        return llm_err(g, err, errlen, MCT_ENOMEM, "llm: out of memory");
    double t0 = llm_now_s();
    for (int attempt = 0;; attempt++) {
        llm_try t;
        llm_log(g, "POST %s (model %s, prompt %zu bytes, attempt %d)", g->url, g->model,
                strlen(prompt), attempt + 1);
        r = llm_http_post(g, req, &body, &t, err, errlen);
        if (r == 0) {
            llm_log(g, "HTTP %ld in %.2f s, %zu bytes", t.status, llm_now_s() - t0, t.bytes);
            r = llm_http_content(g, body, reply, err, errlen);
            break;
        }
        if (!t.retry)
            break;
        if (attempt >= g->max_retries) {
            r = llm_err(g, err, errlen, r, "llm: giving up on %s after %d attempt%s; last: %s%s",
                        g->url, attempt + 1, attempt ? "s" : "", t.why,
                        r == MCT_ETIMEOUT ? "; raise the LLM request timeout or use a faster "
                                            "model" : "");
            break;
        }
        if (t.retry_after > RETRY_AFTER_MAX_S) {
            r = llm_err(g, err, errlen, MCT_ENET,
                        "llm: %s asks to retry after %ld s (over the %ld s this guide waits); "
                        "last: %s", g->url, t.retry_after, RETRY_AFTER_MAX_S, t.why);
            break;
        }
        double delay = backoff_s(g, attempt, t.retry_after);
        g->base.stats.retries++;
        g->base.stats.retry_wait_s += delay;
        llm_log(g, "%s; retrying in %.2f s (%s)", t.why, delay,
                t.retry_after >= 0 ? "the server's Retry-After" : "backoff");
        sleep_s(delay);
    }
    free(body);
    free(req);
    return r;
}

/* ---- the guide object -------------------------------------------------------------------- */

static int llm_propose(mct_guide *gb, const mct_guide_ctx *ctx, char **out, int *n, char *err,
                       size_t errlen)
{
    llm_guide *g = (llm_guide *)gb;
    char *prompt = NULL, *reply = NULL;
    int r;
    *n = 0;
    if (ctx->want <= 0) {
        r = llm_err(g, err, errlen, MCT_EINVAL, "%s: asked for %d proposals; ask for at least 1",
                    g->base.name, ctx->want);
        goto fail;
    }
    if ((r = mct_guide_prompt(ctx, &prompt))) {
        llm_err(g, err, errlen, r, "%s: cannot build the prompt: %s", g->base.name,
                mct_strerror(r));
        goto fail;
    }
    if (g->cache) {
        r = mct_db_llm_get(g->cache, g->model, g->params, prompt, &reply);
        if (r == 0) {
            g->base.stats.cache_hits++;
            llm_log(g, "reply served from the database cache (%zu bytes)", strlen(reply));
        } else if (r != MCT_ENOTFOUND) {
            llm_log(g, "cache read failed (%s: %s); asking the model", mct_strerror(r),
                    mct_db_errmsg(g->cache));
        }
    }
    if (!reply) {
        if (g->calls_made >= g->max_calls) {
            r = llm_err(g, err, errlen, MCT_EBUSY,
                        "%s: call cap reached (%ld calls this run); raise the cap on LLM calls "
                        "(max_calls) to ask more, the search goes on without the model",
                        g->base.name, g->calls_made);
            goto fail;
        }
        if (g->tokens_used >= g->max_tokens) {
            r = llm_err(g, err, errlen, MCT_EBUSY,
                        "%s: token cap reached (%ld of %ld tokens used this run); raise the cap "
                        "on LLM tokens (max_tokens) to ask more, the search goes on without the "
                        "model", g->base.name, g->tokens_used, g->max_tokens);
            goto fail;
        }
        g->calls_made++;
        g->fatal = 0;
        r = g->kind == LLM_HTTP ? ask_http(g, prompt, &reply, err, errlen)
                                : llm_cmd_ask(g, prompt, &reply, err, errlen);
        if (r) {
            if (g->fatal) {
                /* err is already scrubbed of the key (llm_err) */
                g->base.stats.stopped = 1;
                g->base.stats.stop_code = r;
                g->base.stats.stop_call = g->base.stats.calls;
                snprintf(g->base.stats.stop_reason, sizeof g->base.stats.stop_reason, "%s",
                         err && errlen ? err : mct_strerror(r));
            }
            goto fail;
        }
        llm_scrub(reply, g->key);
        if (g->cache && *reply) {
            int w = mct_db_llm_put(g->cache, g->model, g->params, prompt, reply);
            if (w)
                llm_log(g, "cache write failed (%s: %s); the reply is used uncached",
                        mct_strerror(w), mct_db_errmsg(g->cache));
        }
    }
    char why[512];
    int k = mct_guide_parse_reply(reply, out, ctx->want, why, sizeof why);
    if (k < 0) {
        r = llm_err(g, err, errlen, k, "%s: unusable reply: %s", g->base.name, why);
        goto fail;
    }
    *n = k;
    r = 0;
fail:
    if (err && errlen)
        llm_scrub(err, g->key);
    free(prompt);
    free(reply);
    return r;
}

static void llm_destroy(mct_guide *gb)
{
    llm_guide *g = (llm_guide *)gb;
    llm_http_close(g);
    if (g->key) {
        volatile char *k = g->key;
        for (size_t i = 0; k[i]; i++)
            k[i] = 0;
    }
    free(g->key);
    free(g->url);
    free(g->model);
    free(g->cmd);
    free(g);
}

/* A guide with the options both kinds share; NULL when out of memory. */
static llm_guide *llm_new(const char *name, int kind, const mct_llm_opts *o)
{
    llm_guide *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    g->base.name = name;
    g->base.propose = llm_propose;
    g->base.destroy = llm_destroy;
    g->kind = kind;
    g->connect_s = o && o->connect_timeout_s > 0 ? o->connect_timeout_s : DEF_CONNECT_S;
    g->request_s = o && o->request_timeout_s > 0 ? o->request_timeout_s : DEF_REQUEST_S;
    g->max_retries = !o || o->max_retries == 0 ? DEF_RETRIES : o->max_retries < 0 ? 0
                     : o->max_retries;
    g->max_calls = o && o->max_calls > 0 ? o->max_calls : DEF_MAX_CALLS;
    g->max_tokens = o && o->max_tokens > 0 ? o->max_tokens : DEF_MAX_TOKENS;
    g->temperature = o ? o->temperature : 0;
    g->cache = o ? o->cache : NULL;
    g->verbose = o ? o->verbose : 0;
    g->jitter = ((uint64_t)getpid() << 32) ^ (uint64_t)(llm_now_s() * 1e9);
    if (g->temperature >= 0)
        snprintf(g->params, sizeof g->params, "{\"tag\":\"%s\",\"temperature\":%.3g}",
                 PROMPT_TAG, g->temperature);
    else
        snprintf(g->params, sizeof g->params, "{\"tag\":\"%s\"}", PROMPT_TAG);
    return g;
}

int mct_guide_llm_create(const mct_llm_opts *o, mct_guide **out, char *err, size_t errlen)
{
    *out = NULL;
    const char *base = env_or(o ? o->base_url : NULL, "MCTUNE_LLM_URL");
    const char *model = env_or(o ? o->model : NULL, "MCTUNE_LLM_MODEL");
    const char *key = env_or(o ? o->api_key : NULL, "MCTUNE_LLM_API_KEY");
    const char *key_src = o && o->api_key && *o->api_key ? "it came from the caller's options"
                          : "it came from MCTUNE_LLM_API_KEY";
    if (!key) {
        key = env_or(NULL, "OPENAI_API_KEY");
        key_src = key ? "it came from OPENAI_API_KEY"
                      : "none is set; set MCTUNE_LLM_API_KEY (else OPENAI_API_KEY)";
    }
    const char *url_src = o && o->base_url && *o->base_url ? "--llm-url" : "MCTUNE_LLM_URL";
    if (!base) {
        base = DEF_URL;
        url_src = "the default; set --llm-url or MCTUNE_LLM_URL";
    }
    if (strncmp(base, "http://", 7) && strncmp(base, "https://", 8))
        return mct_errf(err, errlen, MCT_EINVAL,
                        "llm: base URL '%s' must start with http:// or https:// (e.g. "
                        "http://127.0.0.1:8080/v1); set it with MCTUNE_LLM_URL", base);
    if (!model)
        return mct_errf(err, errlen, MCT_EINVAL,
                        "llm: no model named; set MCTUNE_LLM_MODEL (e.g. gpt-4o-mini, or the "
                        "name your local server serves)");
    if (strlen(model) > 200)
        return mct_errf(err, errlen, MCT_EINVAL, "llm: model name over 200 characters");
    llm_guide *g = llm_new("llm", LLM_HTTP, o);
    int r = MCT_ENOMEM;
    if (!g)
        return mct_errf(err, errlen, r, "llm: out of memory");
    g->key_src = key_src;
    g->url_src = url_src;
    size_t bl = strlen(base);
    while (bl > 0 && base[bl - 1] == '/')
        bl--;
    const char *suffix = "/chat/completions";
    int has_suffix = bl >= strlen(suffix) && !strncmp(base + bl - strlen(suffix), suffix,
                                                     strlen(suffix));
    g->url = malloc(bl + strlen(suffix) + 1);
    g->model = strdup(model);
    g->key = dup_or_null(key);
    if (!g->url || !g->model || (key && !g->key)) {
        r = llm_err(g, err, errlen, r, "llm: out of memory");
        goto fail;
    }
    memcpy(g->url, base, bl);
    strcpy(g->url + bl, has_suffix ? "" : suffix);
    if ((r = llm_http_open(g, err, errlen)))
        goto fail;
    llm_log(g, "POST %s, model %s, %s", g->url, g->model,
            g->key ? "with an API key" : "no API key");
    *out = &g->base;
    return 0;
fail:
    llm_destroy(&g->base);
    return r;
}

int mct_guide_llmcmd_create(const mct_llm_opts *o, mct_guide **out, char *err, size_t errlen)
{
    *out = NULL;
    const char *cmd = env_or(o ? o->cmd : NULL, "MCTUNE_LLM_CMD");
    if (!cmd)
        return mct_errf(err, errlen, MCT_EINVAL,
                        "llm-cmd: no command given; pass one that reads the prompt on stdin and "
                        "answers on stdout (e.g. 'llm -m gpt-4o-mini')");
    if (strlen(cmd) > 4000)
        return mct_errf(err, errlen, MCT_EINVAL, "llm-cmd: command over 4000 characters");
    llm_guide *g = llm_new("llm-cmd", LLM_CMD, o);
    if (!g)
        return mct_errf(err, errlen, MCT_ENOMEM, "llm-cmd: out of memory");
    /* a key passed in the options is scrubbed from anything this guide prints */
    g->key = dup_or_null(env_or(o ? o->api_key : NULL, "MCTUNE_LLM_API_KEY"));
    g->cmd = strdup(cmd);
    size_t n = strlen(cmd) + 5;
    g->model = malloc(n);
    if (!g->cmd || !g->model) {
        llm_destroy(&g->base);
        return mct_errf(err, errlen, MCT_ENOMEM, "llm-cmd: out of memory");
    }
    snprintf(g->model, n, "cmd:%s", cmd);
    *out = &g->base;
    return 0;
}
