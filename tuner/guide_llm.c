/* LLM guides: `llm` (OpenAI-compatible chat completions over libcurl) and `llm-cmd` (a command
 * that reads the prompt on stdin and answers on stdout), the prompt they share, and the parser
 * that turns a reply into proposal texts.
 *
 * The only file that includes curl.h. A reply is untrusted data: the parser extracts lists of
 * strings from it and nothing else; the search applies them with mct_sched_apply, which accepts
 * only transformations of O.
 *
 * The API key lives in memory only. Every message this file produces (errors, verbose logs) is
 * built in full, then scrubbed of the key, then copied out, so a truncated copy cannot leave a
 * prefix of the key behind; replies are scrubbed before they are cached or parsed.
 *
 * Option conventions (mct_llm_opts): a timeout, max_retries, max_calls or max_tokens of 0 takes
 * the default below; max_retries < 0 means no retry; temperature < 0 leaves it to the server. */
#include "tuner/guide.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "db/db.h"

#define DEF_URL "https://api.openai.com/v1"
#define DEF_CONNECT_S 10.0
#define DEF_REQUEST_S 300.0
#define DEF_RETRIES 3
#define DEF_MAX_CALLS 2000L
#define DEF_MAX_TOKENS 10000000L
#define BACKOFF_BASE_S 1.0
#define BACKOFF_CAP_S 30.0
#define RETRY_AFTER_MAX_S 120L
#define REPLY_MAX ((size_t)8 << 20)   /* bytes of a response body or command output */
#define PROPOSAL_MAX 4096             /* bytes of one proposal text */
#define ITEMS_MAX 64                  /* reply items examined */
/* Tag of the system message and reply format: part of the cache key's parameters, so a change
 * of either invalidates cached replies instead of replaying answers to another question. */
#define PROMPT_TAG "mctune-guide-1"

static const char *system_msg =
    "You are an expert performance engineer for CPU inference kernels. You optimize loop "
    "schedules by choosing transformations from a fixed set, and you always end your answer "
    "with a fenced ```json block in the requested format.";

enum { KIND_HTTP, KIND_CMD };

typedef struct llm_guide {
    mct_guide base;          /* first: the search holds a mct_guide * */
    int kind;
    char *url;               /* full chat/completions URL (http) */
    char *model;             /* http: model; cmd: "cmd:" + command (the cache key's model) */
    char *key;               /* API key or NULL; never leaves this struct */
    char *cmd;
    char params[128];        /* cache key parameters */
    double connect_s, request_s, temperature;
    int max_retries, verbose;
    int fatal;               /* the last failure cannot be fixed by asking again */
    const char *key_src;     /* where the key came from, for messages (never the key) */
    const char *url_src;     /* where the base URL came from */
    long max_calls, max_tokens, calls_made, tokens_used;
    mct_db *cache;
    CURL *curl;
    struct curl_slist *hdrs;
    uint64_t jitter;         /* own random state: retries must not perturb the search's draws */
} llm_guide;

/* ---- small helpers ----------------------------------------------------------------------- */

/* Replaces every occurrence of key in s (in place, shrinking) by "***". */
static void scrub(char *s, const char *key)
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

static int set_err(const llm_guide *g, char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int set_err(const llm_guide *g, char *err, size_t errlen, int code, const char *fmt, ...)
{
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (g)
        scrub(buf, g->key);
    if (err && errlen)
        snprintf(err, errlen, "%s", buf);
    return code;
}

static void vlog(const llm_guide *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void vlog(const llm_guide *g, const char *fmt, ...)
{
    if (!g->verbose)
        return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    scrub(buf, g->key);
    fprintf(stderr, "mctune %s: %s\n", g->base.name, buf);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void sleep_s(double s)
{
    if (s <= 0)
        return;
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)}, rem;
    while (nanosleep(&ts, &rem) && errno == EINTR)
        ts = rem;
}

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* A one-line excerpt of untrusted text for a message: control characters become spaces. */
static void excerpt(const char *s, size_t n, char *out, size_t len)
{
    size_t o = 0;
    for (size_t i = 0; s && i < n && s[i] && o + 4 < len; i++)
        out[o++] = (unsigned char)s[i] < 32 ? ' ' : s[i];
    if (s && o + 4 >= len && strlen(s) > o)
        memcpy(out + o, "...", 3), o += 3;
    out[o] = 0;
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

/* ---- growable string --------------------------------------------------------------------- */

typedef struct {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->n + n + 1 > b->cap) {
        size_t c = b->cap ? b->cap : 1024;
        while (c < b->n + n + 1)
            c *= 2;
        char *q = realloc(b->p, c);
        if (!q) {
            b->oom = 1;
            return;
        }
        b->p = q;
        b->cap = c;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void sb_puts(sbuf *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (k < 0)
        return;
    if ((size_t)k < sizeof tmp) {
        sb_add(b, tmp, (size_t)k);
        return;
    }
    char *big = malloc((size_t)k + 1);
    if (!big) {
        b->oom = 1;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)k + 1, fmt, ap);
    va_end(ap);
    sb_add(b, big, (size_t)k);
    free(big);
}

/* ---- the prompt -------------------------------------------------------------------------- */

static void fmt_time(double s, char *buf, size_t len)
{
    if (s < 1e-3)
        snprintf(buf, len, "%.1f us", s * 1e6);
    else if (s < 1.0)
        snprintf(buf, len, "%.3f ms", s * 1e3);
    else
        snprintf(buf, len, "%.3f s", s);
}

static void prompt_node(sbuf *b, const char *title, const mct_guide_node *nd,
                        const mct_guide_ctx *ctx, const mct_target *t)
{
    char tb[32];
    sb_printf(b, "### %s\n", title);
    sb_printf(b, "Trace (transformations applied to the untuned program, in order): %s\n",
              nd->trace && *nd->trace ? nd->trace : "none (this is the untuned program)");
    if (nd->latency_s > 0) {
        fmt_time(nd->latency_s, tb, sizeof tb);
        sb_printf(b, "Measured cost: %s per call, %.2f GFLOP/s", tb, nd->gflops);
        if (ctx->base_latency_s > 0)
            sb_printf(b, ", speedup %.2fx over the untuned program",
                      ctx->base_latency_s / nd->latency_s);
        sb_puts(b, "\n");
    } else {
        sb_puts(b, "Measured cost: none (not measured, or it failed to compile, crashed or gave "
                   "a wrong result)\n");
    }
    sb_printf(b, "Visits in the search tree: %d\n", nd->visits);
    char *code = NULL;
    if (nd->sched && mct_cg_lower_pseudo(nd->sched, t, &code) == 0 && code) {
        sb_puts(b, "Program:\n```\n");
        sb_puts(b, code);
        if (code[0] && code[strlen(code) - 1] != '\n')
            sb_puts(b, "\n");
        sb_puts(b, "```\n");
    }
    free(code);
    sb_puts(b, "\n");
}

int mct_guide_prompt(const mct_guide_ctx *ctx, char **out)
{
    *out = NULL;
    if (!ctx || !ctx->node || !ctx->node->sched)
        return MCT_EINVAL;
    sbuf b = {0};
    mct_target host = mct_target_host();
    const mct_target *t = ctx->target ? ctx->target : &host;
    const mct_workload *w = ctx->w ? ctx->w : mct_sched_workload(ctx->node->sched);
    int want = ctx->want > 0 ? ctx->want : 1;
    char wl[256] = "?", tb[32];
    mct_wl_format(w, wl, sizeof wl);

    sb_puts(&b, "You are optimizing the loop schedule of one CPU kernel. Programs are built by "
                "applying transformations from a fixed set O to an untuned loop nest; you choose "
                "the next transformations.\n\n");
    sb_puts(&b, "## Workload\n");
    sb_printf(&b, "%s\n", wl);
    char ex[96];
    if (w->act != MCT_ACT_NONE)
        snprintf(ex, sizeof ex, "%s(A[M,K] x B%s)", mct_act_name(w->act), w->bias ? " + bias" : "");
    else
        snprintf(ex, sizeof ex, "A[M,K] x B%s", w->bias ? " + bias" : "");
    sb_printf(&b, "C[M,N] %s %s, f32, row-major; B is stored %s. %.4g GFLOP per call",
              w->beta ? "+=" : "=", ex, w->layout == MCT_NT ? "[N,K] (nt, as model weights are)"
              : "[K,N] (nn)", mct_wl_flops(w) * 1e-9);
    if (w->op == MCT_OP_BMM)
        sb_printf(&b, "; %lld heads (loop b), %lld query heads per key/value head",
                  (long long)w->batch, (long long)w->group);
    sb_puts(&b, ".\n");
    if (ctx->base_latency_s > 0) {
        fmt_time(ctx->base_latency_s, tb, sizeof tb);
        sb_printf(&b, "The untuned program takes %s per call.\n", tb);
    }
    sb_puts(&b, "\n## CPU\n");
    const mct_cpu *c = ctx->cpu;
    if (c) {
        mct_tier tier = mct_cpu_tier_of(c);
        sb_printf(&b, "%s (%s)\n", c->brand[0] ? c->brand : "unknown model",
                  c->vendor[0] ? c->vendor : "unknown vendor");
        sb_printf(&b, "ISA tier: %s; %d vector registers\n", mct_tier_name(tier),
                  tier >= MCT_TIER_AVX512 ? 32 : 16);
        sb_puts(&b, "Caches:");
        const char *cn[4] = {"L1d", "L1i", "L2", "L3"}, *sep = " ";
        for (int i = 0; i < 4; i++)
            if (c->cache_kb[i]) {
                sb_printf(&b, "%s%s %u KiB", sep, cn[i], c->cache_kb[i]);
                sep = ", ";
            }
        sb_puts(&b, *sep == ',' ? "\n" : " unknown\n");
        sb_printf(&b, "Cores: %d physical, %d logical\n", c->cores, c->threads);
    } else {
        sb_puts(&b, "unknown\n");
    }
    sb_printf(&b, "Code generation: SIMD width %d f32 lanes per vector%s%s%s\n", t->vlen,
              t->attr && *t->attr ? " (target " : "", t->attr && *t->attr ? t->attr : "",
              t->attr && *t->attr ? ")" : "");
    sb_printf(&b, "The kernel runs with %d thread%s.\n\n", ctx->threads,
              ctx->threads == 1 ? "" : "s");

    sb_puts(&b, "## Programs\n"
                "The current program, its parent and its grandparent in the search tree. "
                "Each is shown as a loop nest; its first comment lines give the workload and "
                "the schedule in canonical form.\n\n");
    if (ctx->grand)
        prompt_node(&b, "Grandparent program", ctx->grand, ctx, t);
    if (ctx->parent)
        prompt_node(&b, "Parent program", ctx->parent, ctx, t);
    prompt_node(&b, "Current program", ctx->node, ctx, t);

    sb_puts(&b,
        "## Transformations (the set O)\n"
        "Loops are named by axis: b (heads, bmm only), i (rows of C, size M), j (columns of C, "
        "size N), k (the reduction, size K). An untiled axis has one loop named by its letter; "
        "after tile(x, f1, ...) axis x has loops x0 (outermost), x1, ... where each loop "
        "iterates within the block of the loop above. Use the names the current program has, "
        "and the names a tile in the same proposal creates. Exactly these forms are accepted:\n"
        "- tile(AXIS, f1[, f2[, f3]]): splits axis i, j or k into 2 to 4 nested loops with "
        "blocks f1 > f2 > f3 (whole numbers 1..1048576; they need not divide the size). An axis "
        "already tiled is re-tiled with the same number of factors. Tile an axis before "
        "annotating its loops.\n"
        "- reorder(L1, L2, ...): the named loops (at least two) take the positions they held, in "
        "the order given. Levels of one axis keep their order (i0 stays outside i1).\n"
        "- vectorize(L): the innermost loop becomes SIMD lanes. L must be a tiled j or k loop "
        "with a constant block of at least 4. j needs B contiguous along j (nn layout, or B "
        "packed or prepacked with a j panel); k needs A and B contiguous along k and a "
        "cache_write outside it.\n"
        "- unroll(L, N): unrolls loop L by N (1..64; 1 removes it). Fully unrolling the spatial "
        "loops inside a cache_write turns the accumulator into a register tile.\n"
        "- parallel(L): distributes loop L over the threads. One parallel loop at most; never a "
        "k loop.\n"
        "- cache_write(L): accumulates the output tile of the loops inside L locally (registers "
        "when small and unrolled; at most 4096 elements) and writes it back once. Spatial loops "
        "inside it need constant blocks; no parallel loop inside it.\n"
        "- pack(A|B, L, PANEL): copies the operand's block into a contiguous buffer at loop L. "
        "PANEL is a tiled loop of the operand's panel axis (i for A, j for B; its block, at most "
        "256, is the panel width) or k for plain rows along k.\n"
        "- prepack(B, PANEL[, KCHUNK]): matmul only: B (the weights) packed once ahead of time; "
        "PANEL as for pack; KCHUNK a tiled k loop whose block is the chunk (needs a j panel).\n"
        "- fuse_epilogue(L): applies bias and activation at write-back; needs cache_write(L) at "
        "the same loop.\n"
        "- prefetch(A|B|C, L, DIST): software prefetch. A or B: DIST iterations (1..64) of "
        "loop L ahead. C: the output rows a register tile (cache_write) will write, DIST "
        "iterations (0..64; 0 = its own rows) of L ahead, L at or outside the cache_write loop. "
        "At most 4 prefetches.\n"
        "Examples: \"tile(j, 256, 16)\", \"reorder(i0, j0, k0, i1, j1)\", \"vectorize(j2)\", "
        "\"unroll(i2, 4)\", \"parallel(j0)\", \"cache_write(j1)\", \"pack(B, j0, j2)\", "
        "\"prepack(B, j2, k1)\", \"fuse_epilogue(j1)\", \"prefetch(A, k1, 8)\", "
        "\"prefetch(C, j1, 1)\".\n"
        "A proposal with a transformation that does not apply is rejected as a whole.\n\n");

    sb_printf(&b,
        "## Task\n"
        "Compare the programs above and their costs: which transformations made a program "
        "faster or slower, and why, on this CPU. Reason step by step about data reuse in "
        "registers and in each cache level, the vector width, register pressure, memory "
        "bandwidth and the use of the cores. Then propose up to %d different next steps for "
        "the current program. Each proposal is a list of transformation strings from O, "
        "applied in order to the current program to make one new program.\n"
        "End your reply with one fenced JSON block holding a list of up to %d proposals, each a "
        "list of strings, and nothing after it, for example:\n"
        "```json\n"
        "[[\"tile(j, 64, 16)\", \"vectorize(j2)\"], [\"parallel(i0)\"]]\n"
        "```\n", want, want);
    if (b.oom) {
        free(b.p);
        return MCT_ENOMEM;
    }
    *out = b.p;
    return 0;
}

/* ---- the reply parser -------------------------------------------------------------------- */

static int perr(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int perr(char *err, size_t errlen, int code, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

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
    sbuf b = {0};
    *text = NULL;
    if (cJSON_IsString(it)) {
        sb_puts(&b, it->valuestring);
    } else if (cJSON_IsArray(it)) {
        int i = 0;
        const cJSON *s;
        cJSON_ArrayForEach(s, it) {
            if (!cJSON_IsString(s)) {
                free(b.p);
                return perr(why, len, MCT_EINVAL, "element %d is %s, not a string", i + 1,
                            type_name(s));
            }
            const char *v = s->valuestring;
            while (isspace((unsigned char)*v))
                v++;
            if (*v) {
                if (b.n)
                    sb_puts(&b, "; ");
                sb_puts(&b, v);
            }
            i++;
        }
    } else {
        return perr(why, len, MCT_EINVAL, "%s, not a string or a list of strings",
                    type_name(it));
    }
    if (b.oom) {
        free(b.p);
        return MCT_ENOMEM;
    }
    /* trim */
    size_t n = b.n;
    while (n && isspace((unsigned char)b.p[n - 1]))
        n--;
    size_t s = 0;
    while (s < n && isspace((unsigned char)b.p[s]))
        s++;
    if (s == n) {
        free(b.p);
        return perr(why, len, MCT_EINVAL, "empty");
    }
    if (n - s > PROPOSAL_MAX) {
        free(b.p);
        return perr(why, len, MCT_ERANGE, "%zu bytes long (limit %d)", n - s, PROPOSAL_MAX);
    }
    memmove(b.p, b.p + s, n - s);
    b.p[n - s] = 0;
    *text = b.p;
    return 0;
}

/* Checks the shape of a parsed value and extracts up to max proposals. */
static int take_list(const cJSON *root, char **out, int max, char *err, size_t errlen)
{
    const cJSON *list = root;
    if (cJSON_IsObject(root)) {
        list = cJSON_GetObjectItemCaseSensitive(root, "proposals");
        if (!list)
            return perr(err, errlen, MCT_EINVAL,
                        "the JSON block is an object without \"proposals\"; expected a list of "
                        "proposals");
    }
    if (!cJSON_IsArray(list))
        return perr(err, errlen, MCT_EINVAL, "the JSON block is %s; expected a list of proposals",
                    type_name(list));
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
            goto oom;
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
            return perr(err, errlen, MCT_EINVAL, "no usable proposal in the JSON list: %s",
                        first_bad);
        return perr(err, errlen, MCT_EINVAL, "the JSON list of proposals is empty");
    }
    return n;
oom:
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
        return perr(err, errlen, MCT_EINVAL, "asked for %d proposals; ask for at least 1", max);
    const char *p = reply ? reply : "";
    while (isspace((unsigned char)*p))
        p++;
    if (!*p)
        return perr(err, errlen, MCT_EINVAL, "empty reply (no text at all)");

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
            return perr(err, errlen, MCT_EINVAL, "the last ```json block is empty");
        }
        const char *endp = NULL;
        cJSON *root = cJSON_ParseWithOpts(t, &endp, 0);
        if (!root) {
            char ex[64];
            size_t off = endp ? (size_t)(endp - t) : 0;
            excerpt(t + off, 40, ex, sizeof ex);
            int truncated = open || (endp && !*endp);
            free(txt);
            if (truncated)
                return perr(err, errlen, MCT_EINVAL,
                            "truncated JSON: the last ```json block ends before its list is "
                            "complete (the reply may have hit the token limit)");
            return perr(err, errlen, MCT_EINVAL,
                        "the last ```json block is not valid JSON (at byte %zu: '%s')", off, ex);
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
        return perr(err, errlen, MCT_EINVAL, "%s", last_err);
    char ex[64];
    excerpt(p, 40, ex, sizeof ex);
    if (strchr(p, '['))
        return perr(err, errlen, MCT_EINVAL,
                    "no complete JSON list in the reply (truncated or malformed; it starts '%s')",
                    ex);
    return perr(err, errlen, MCT_EINVAL,
                "no ```json block and no JSON list in the reply (it starts '%s')", ex);
}

/* ---- shared propose ---------------------------------------------------------------------- */

static int ask_http(llm_guide *g, const char *prompt, char **reply, char *err, size_t errlen);
static int ask_cmd(llm_guide *g, const char *prompt, char **reply, char *err, size_t errlen);

static int llm_propose(mct_guide *gb, const mct_guide_ctx *ctx, char **out, int *n, char *err,
                       size_t errlen)
{
    llm_guide *g = (llm_guide *)gb;
    char *prompt = NULL, *reply = NULL;
    int r;
    *n = 0;
    if (ctx->want <= 0) {
        r = set_err(g, err, errlen, MCT_EINVAL, "%s: asked for %d proposals; ask for at least 1",
                    g->base.name, ctx->want);
        goto fail;
    }
    if ((r = mct_guide_prompt(ctx, &prompt))) {
        set_err(g, err, errlen, r, "%s: cannot build the prompt: %s", g->base.name,
                mct_strerror(r));
        goto fail;
    }
    if (g->cache) {
        r = mct_db_llm_get(g->cache, g->model, g->params, prompt, &reply);
        if (r == 0) {
            g->base.stats.cache_hits++;
            vlog(g, "reply served from the database cache (%zu bytes)", strlen(reply));
        } else if (r != MCT_ENOTFOUND) {
            vlog(g, "cache read failed (%s: %s); asking the model", mct_strerror(r),
                 mct_db_errmsg(g->cache));
        }
    }
    if (!reply) {
        if (g->calls_made >= g->max_calls) {
            r = set_err(g, err, errlen, MCT_EBUSY,
                        "%s: call cap reached (%ld calls this run); raise the cap on LLM calls "
                        "(max_calls) to ask more, the search goes on without the model",
                        g->base.name, g->calls_made);
            goto fail;
        }
        if (g->tokens_used >= g->max_tokens) {
            r = set_err(g, err, errlen, MCT_EBUSY,
                        "%s: token cap reached (%ld of %ld tokens used this run); raise the cap "
                        "on LLM tokens (max_tokens) to ask more, the search goes on without the "
                        "model", g->base.name, g->tokens_used, g->max_tokens);
            goto fail;
        }
        g->calls_made++;
        g->fatal = 0;
        r = g->kind == KIND_HTTP ? ask_http(g, prompt, &reply, err, errlen)
                                 : ask_cmd(g, prompt, &reply, err, errlen);
        if (r) {
            if (g->fatal) {
                /* err is already scrubbed of the key (set_err) */
                g->base.stats.stopped = 1;
                g->base.stats.stop_code = r;
                g->base.stats.stop_call = g->base.stats.calls;
                snprintf(g->base.stats.stop_reason, sizeof g->base.stats.stop_reason, "%s",
                         err && errlen ? err : mct_strerror(r));
            }
            goto fail;
        }
        scrub(reply, g->key);
        if (g->cache && *reply) {
            int w = mct_db_llm_put(g->cache, g->model, g->params, prompt, reply);
            if (w)
                vlog(g, "cache write failed (%s: %s); the reply is used uncached", mct_strerror(w),
                     mct_db_errmsg(g->cache));
        }
    }
    char why[512];
    int k = mct_guide_parse_reply(reply, out, ctx->want, why, sizeof why);
    if (k < 0) {
        r = set_err(g, err, errlen, k, "%s: unusable reply: %s", g->base.name, why);
        goto fail;
    }
    *n = k;
    r = 0;
fail:
    if (err && errlen)
        scrub(err, g->key);
    free(prompt);
    free(reply);
    return r;
}

static void llm_destroy(mct_guide *gb)
{
    llm_guide *g = (llm_guide *)gb;
    if (g->curl)
        curl_easy_cleanup(g->curl);
    curl_slist_free_all(g->hdrs);
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

static int common_opts(llm_guide *g, const mct_llm_opts *o)
{
    g->base.propose = llm_propose;
    g->base.destroy = llm_destroy;
    g->connect_s = o && o->connect_timeout_s > 0 ? o->connect_timeout_s : DEF_CONNECT_S;
    g->request_s = o && o->request_timeout_s > 0 ? o->request_timeout_s : DEF_REQUEST_S;
    g->max_retries = !o || o->max_retries == 0 ? DEF_RETRIES : o->max_retries < 0 ? 0
                     : o->max_retries;
    g->max_calls = o && o->max_calls > 0 ? o->max_calls : DEF_MAX_CALLS;
    g->max_tokens = o && o->max_tokens > 0 ? o->max_tokens : DEF_MAX_TOKENS;
    g->temperature = o ? o->temperature : 0;
    g->cache = o ? o->cache : NULL;
    g->verbose = o ? o->verbose : 0;
    g->jitter = ((uint64_t)getpid() << 32) ^ (uint64_t)(now_s() * 1e9) ^ 0x9e3779b97f4a7c15ull;
    if (!g->jitter)
        g->jitter = 1;
    if (g->temperature >= 0)
        snprintf(g->params, sizeof g->params, "{\"tag\":\"%s\",\"temperature\":%.3g}",
                 PROMPT_TAG, g->temperature);
    else
        snprintf(g->params, sizeof g->params, "{\"tag\":\"%s\"}", PROMPT_TAG);
    return 0;
}

/* ---- llm: chat completions over HTTP ----------------------------------------------------- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;
static void curl_init(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
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
        return set_err(NULL, err, errlen, MCT_EINVAL,
                       "llm: base URL '%s' must start with http:// or https:// (e.g. "
                       "http://127.0.0.1:8080/v1); set it with MCTUNE_LLM_URL", base);
    if (!model)
        return set_err(NULL, err, errlen, MCT_EINVAL,
                       "llm: no model named; set MCTUNE_LLM_MODEL (e.g. gpt-4o-mini, or the "
                       "name your local server serves)");
    if (strlen(model) > 200)
        return set_err(NULL, err, errlen, MCT_EINVAL, "llm: model name over 200 characters");
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK)
        return set_err(NULL, err, errlen, MCT_ENET, "llm: libcurl failed to initialize: %s",
                       curl_easy_strerror(curl_init_rc));
    llm_guide *g = calloc(1, sizeof *g);
    int r = MCT_ENOMEM;
    if (!g)
        return set_err(NULL, err, errlen, r, "llm: out of memory");
    g->base.name = "llm";
    g->kind = KIND_HTTP;
    common_opts(g, o);
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
    if (!g->url || !g->model || (key && !g->key))
        goto fail;
    memcpy(g->url, base, bl);
    strcpy(g->url + bl, has_suffix ? "" : suffix);
    if (!(g->curl = curl_easy_init())) {
        r = set_err(g, err, errlen, MCT_ENET, "llm: libcurl could not create a handle");
        goto fail;
    }
    struct curl_slist *h = NULL, *t;
    const char *fixed[] = {"Content-Type: application/json", "Accept: application/json",
                           "Expect:"};
    for (int i = 0; i < 3; i++) {
        if (!(t = curl_slist_append(h, fixed[i])))
            goto fail_h;
        h = t;
    }
    if (g->key) {
        size_t n = strlen(g->key) + 32;
        char *a = malloc(n);
        if (!a)
            goto fail_h;
        snprintf(a, n, "Authorization: Bearer %s", g->key);
        t = curl_slist_append(h, a);
        memset(a, 0, n);
        free(a);
        if (!t)
            goto fail_h;
        h = t;
    }
    g->hdrs = h;
    vlog(g, "POST %s, model %s, %s", g->url, g->model, g->key ? "with an API key" : "no API key");
    *out = &g->base;
    return 0;
fail_h:
    curl_slist_free_all(h);
    r = set_err(g, err, errlen, MCT_ENOMEM, "llm: out of memory");
fail:
    if (r == MCT_ENOMEM)
        set_err(g, err, errlen, r, "llm: out of memory");
    llm_destroy(&g->base);
    return r;
}

typedef struct {
    sbuf b;
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
    sb_add(&bd->b, p, n);
    return bd->b.oom ? 0 : n;
}

/* Extracts choices[0].message.content and usage from a 2xx body. */
static int parse_chat(llm_guide *g, char *body, char **reply, char *err, size_t errlen)
{
    char ex[200];
    cJSON *root = cJSON_Parse(body);
    int r;
    if (!root) {
        excerpt(body, 120, ex, sizeof ex);
        return set_err(g, err, errlen, MCT_EINVAL,
                       "llm: %s answered with a body that is not JSON ('%s'); is the base URL an "
                       "OpenAI-compatible API (it usually ends in /v1)?", g->url, ex);
    }
    const cJSON *usage = cJSON_GetObjectItemCaseSensitive(root, "usage");
    if (cJSON_IsObject(usage)) {
        const cJSON *pt = cJSON_GetObjectItemCaseSensitive(usage, "prompt_tokens");
        const cJSON *ct = cJSON_GetObjectItemCaseSensitive(usage, "completion_tokens");
        long a = cJSON_IsNumber(pt) && pt->valuedouble > 0 && pt->valuedouble < 1e12
                 ? (long)pt->valuedouble : 0;
        long b = cJSON_IsNumber(ct) && ct->valuedouble > 0 && ct->valuedouble < 1e12
                 ? (long)ct->valuedouble : 0;
        g->base.stats.prompt_tokens += a;
        g->base.stats.completion_tokens += b;
        g->tokens_used += a + b;
    }
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "error");
    const cJSON *ch = cJSON_GetObjectItemCaseSensitive(root, "choices");
    const cJSON *c0 = cJSON_IsArray(ch) ? cJSON_GetArrayItem(ch, 0) : NULL;
    const cJSON *msg = c0 ? cJSON_GetObjectItemCaseSensitive(c0, "message") : NULL;
    const cJSON *content = msg ? cJSON_GetObjectItemCaseSensitive(msg, "content") : NULL;
    if (!c0 || !msg) {
        const cJSON *em = e ? cJSON_GetObjectItemCaseSensitive(e, "message") : NULL;
        if (cJSON_IsString(em))
            excerpt(em->valuestring, 150, ex, sizeof ex);
        else
            excerpt(body, 120, ex, sizeof ex);
        r = set_err(g, err, errlen, MCT_EINVAL,
                    "llm: the reply from %s has no choices[0].message ('%s'); is it a chat "
                    "completions endpoint?", g->url, ex);
        goto fail;
    }
    sbuf b = {0};
    if (cJSON_IsString(content)) {
        sb_puts(&b, content->valuestring);
    } else if (cJSON_IsArray(content)) {
        /* content parts: [{"type": "text", "text": "..."}] */
        const cJSON *part;
        cJSON_ArrayForEach(part, content) {
            const cJSON *tx = cJSON_GetObjectItemCaseSensitive(part, "text");
            if (cJSON_IsString(tx))
                sb_puts(&b, tx->valuestring);
        }
    }
    if (b.oom) {
        free(b.p);
        r = set_err(g, err, errlen, MCT_ENOMEM, "llm: out of memory");
        goto fail;
    }
    const char *t = b.p ? b.p : "";
    while (isspace((unsigned char)*t))
        t++;
    if (!*t) {
        free(b.p);
        const cJSON *fr = cJSON_GetObjectItemCaseSensitive(c0, "finish_reason");
        r = set_err(g, err, errlen, MCT_EINVAL,
                    "llm: model '%s' returned empty content (finish_reason %s)%s", g->model,
                    cJSON_IsString(fr) ? fr->valuestring : "absent",
                    cJSON_IsString(fr) && !strcmp(fr->valuestring, "length")
                    ? "; it ran out of tokens: raise the server's output limit" : "");
        goto fail;
    }
    *reply = b.p;
    r = 0;
fail:
    cJSON_Delete(root);
    return r;
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

static int ask_http(llm_guide *g, const char *prompt, char **reply, char *err, size_t errlen)
{
    char *req = NULL;
    body_t bd = {{0}, 0};
    int r = MCT_ENOMEM;
    cJSON *j = cJSON_CreateObject(), *msgs, *m;
    if (!j || !cJSON_AddStringToObject(j, "model", g->model) ||
        !(msgs = cJSON_AddArrayToObject(j, "messages")))
        goto oom;
    if (!(m = cJSON_CreateObject()) || (cJSON_AddItemToArray(msgs, m), 0) ||
        !cJSON_AddStringToObject(m, "role", "system") ||
        !cJSON_AddStringToObject(m, "content", system_msg))
        goto oom;
    if (!(m = cJSON_CreateObject()) || (cJSON_AddItemToArray(msgs, m), 0) ||
        !cJSON_AddStringToObject(m, "role", "user") ||
        !cJSON_AddStringToObject(m, "content", prompt))
        goto oom;
    if (g->temperature >= 0 && !cJSON_AddNumberToObject(j, "temperature", g->temperature))
        goto oom;
    if (!cJSON_AddFalseToObject(j, "stream") || !(req = cJSON_PrintUnformatted(j)))
        goto oom;

    char ebuf[CURL_ERROR_SIZE];
    CURL *c = g->curl;
    double t0 = now_s();
    for (int attempt = 0;; attempt++) {
        curl_easy_reset(c);
        ebuf[0] = 0;
        free(bd.b.p);
        bd = (body_t){{0}, 0};
        curl_easy_setopt(c, CURLOPT_URL, g->url);
#if LIBCURL_VERSION_NUM >= 0x075500
        curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
#else
        curl_easy_setopt(c, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, g->hdrs);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, req);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(req));
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &bd);
        int saw_ra = 0;
        curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(c, CURLOPT_HEADERDATA, &saw_ra);
        curl_easy_setopt(c, CURLOPT_ERRORBUFFER, ebuf);
        curl_easy_setopt(c, CURLOPT_USERAGENT, "mctune/0.1");
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)(g->connect_s * 1000));
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(g->request_s * 1000));
        curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");
        vlog(g, "POST %s (model %s, prompt %zu bytes, attempt %d)", g->url, g->model,
             strlen(prompt), attempt + 1);
        CURLcode cc = curl_easy_perform(c);
        long code = 0;
        curl_off_t ra = -1;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
        if (cc == CURLE_OK && saw_ra)
            curl_easy_getinfo(c, CURLINFO_RETRY_AFTER, &ra);
        scrub(ebuf, g->key);
        if (bd.b.p)
            scrub(bd.b.p, g->key);
        char why[600], ex[200];
        int retry = 0, code_r = MCT_ENET;
        if (cc == CURLE_OK && code >= 200 && code < 300) {
            vlog(g, "HTTP %ld in %.2f s, %zu bytes", code, now_s() - t0, bd.b.n);
            r = parse_chat(g, bd.b.p ? bd.b.p : "", reply, err, errlen);
            goto done;
        }
        if (cc == CURLE_OK) {
            excerpt(bd.b.p ? bd.b.p : "", 200, ex, sizeof ex);
            snprintf(why, sizeof why, "HTTP %ld ('%s')", code, ex);
            retry = code == 408 || code == 429 || code >= 500;
            if (!retry) {
                char hint[300];
                if (code == 401 || code == 403)
                    snprintf(hint, sizeof hint, "check the API key (%s)", g->key_src);
                else if (code == 404)
                    snprintf(hint, sizeof hint, "check the base URL (from %s; it usually ends "
                             "in /v1) and the model name '%s'", g->url_src, g->model);
                else
                    snprintf(hint, sizeof hint, "check the model name '%s' and the server's "
                             "limits (context length)", g->model);
                /* a refused key or a wrong URL fails every prompt alike; another 4xx (say, a
                 * prompt over the context length) may be about this prompt only */
                g->fatal = code == 401 || code == 403 || code == 404;
                r = set_err(g, err, errlen, MCT_ENET, "llm: %s from %s; %s", why, g->url, hint);
                goto done;
            }
        } else if (cc == CURLE_WRITE_ERROR && bd.over) {
            r = set_err(g, err, errlen, MCT_ERANGE,
                        "llm: the reply from %s is over %zu bytes; refused", g->url, REPLY_MAX);
            goto done;
        } else {
            snprintf(why, sizeof why, "%s", ebuf[0] ? ebuf : curl_easy_strerror(cc));
            retry = retryable_curl(cc);
            if (cc == CURLE_OPERATION_TIMEDOUT) {
                code_r = MCT_ETIMEOUT;
                snprintf(why, sizeof why, "no complete reply within the request timeout of "
                         "%.3g s (%s)", g->request_s, ebuf[0] ? ebuf : "timed out");
            }
            if (!retry) {
                g->fatal = 1;
                r = set_err(g, err, errlen, MCT_ENET,
                            "llm: cannot reach %s: %s; is the server running and the base URL "
                            "(from %s) right?", g->url, why, g->url_src);
                goto done;
            }
        }
        if (attempt >= g->max_retries) {
            r = set_err(g, err, errlen, code_r,
                        "llm: giving up on %s after %d attempt%s; last: %s%s", g->url,
                        attempt + 1, attempt ? "s" : "", why,
                        code_r == MCT_ETIMEOUT ? "; raise the LLM request timeout or use a "
                                                 "faster model" : "");
            goto done;
        }
        double delay;
        if (ra >= 0) {
            if (ra > RETRY_AFTER_MAX_S) {
                r = set_err(g, err, errlen, MCT_ENET,
                            "llm: %s asks to retry after %ld s (over the %ld s this guide "
                            "waits); last: %s", g->url, (long)ra, RETRY_AFTER_MAX_S, why);
                goto done;
            }
            delay = (double)ra;
        } else {
            delay = BACKOFF_BASE_S * (double)(1L << (attempt < 10 ? attempt : 10));
            if (delay > BACKOFF_CAP_S)
                delay = BACKOFF_CAP_S;
            /* jitter: uniform in [delay/2, delay) so clients do not retry in lockstep */
            double u = (double)(xorshift(&g->jitter) >> 11) / 9007199254740992.0;
            delay = delay * (0.5 + 0.5 * u);
        }
        g->base.stats.retries++;
        g->base.stats.retry_wait_s += delay;
        vlog(g, "%s; retrying in %.2f s (%s)", why, delay,
             ra >= 0 ? "the server's Retry-After" : "backoff");
        sleep_s(delay);
    }
oom:
    r = set_err(g, err, errlen, MCT_ENOMEM, "llm: out of memory");
done:
    cJSON_Delete(j);
    if (req) {
        /* the request holds the prompt only, but clear it like every buffer near the key */
        cJSON_free(req);
    }
    free(bd.b.p);
    return r;
}

/* ---- llm-cmd: a command reads the prompt on stdin, answers on stdout ---------------------- */

int mct_guide_llmcmd_create(const mct_llm_opts *o, mct_guide **out, char *err, size_t errlen)
{
    *out = NULL;
    const char *cmd = env_or(o ? o->cmd : NULL, "MCTUNE_LLM_CMD");
    if (!cmd)
        return set_err(NULL, err, errlen, MCT_EINVAL,
                       "llm-cmd: no command given; pass one that reads the prompt on stdin and "
                       "answers on stdout (e.g. 'llm -m gpt-4o-mini')");
    if (strlen(cmd) > 4000)
        return set_err(NULL, err, errlen, MCT_EINVAL, "llm-cmd: command over 4000 characters");
    llm_guide *g = calloc(1, sizeof *g);
    if (!g)
        return set_err(NULL, err, errlen, MCT_ENOMEM, "llm-cmd: out of memory");
    g->base.name = "llm-cmd";
    g->kind = KIND_CMD;
    common_opts(g, o);
    /* a key passed in the options is scrubbed from anything this guide prints */
    g->key = dup_or_null(env_or(o ? o->api_key : NULL, "MCTUNE_LLM_API_KEY"));
    g->cmd = strdup(cmd);
    size_t n = strlen(cmd) + 5;
    g->model = malloc(n);
    if (!g->cmd || !g->model) {
        llm_destroy(&g->base);
        return set_err(NULL, err, errlen, MCT_ENOMEM, "llm-cmd: out of memory");
    }
    snprintf(g->model, n, "cmd:%s", cmd);
    *out = &g->base;
    return 0;
}

static void set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static int ask_cmd(llm_guide *g, const char *prompt, char **reply, char *err, size_t errlen)
{
    int in[2] = {-1, -1}, outp[2] = {-1, -1}, ep[2] = {-1, -1};
    sbuf ob = {0}, eb = {0};
    pid_t pid = -1;
    int r;
    if (pipe2(in, O_CLOEXEC) || pipe2(outp, O_CLOEXEC) || pipe2(ep, O_CLOEXEC)) {
        r = set_err(g, err, errlen, MCT_EIO, "llm-cmd: pipe failed: %s", strerror(errno));
        goto fail;
    }
    pid = fork();
    if (pid < 0) {
        r = set_err(g, err, errlen, MCT_EIO, "llm-cmd: fork failed: %s", strerror(errno));
        goto fail;
    }
    if (pid == 0) {
        /* child: only async-signal-safe calls until exec */
        setpgid(0, 0);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        /* dup2 clears close-on-exec on 0, 1, 2 (an fd already in place keeps it: clear it); the
         * pipes themselves close at exec */
        int from[3] = {in[0], outp[1], ep[1]};
        for (int f = 0; f < 3; f++) {
            if (from[f] == f)
                fcntl(f, F_SETFD, 0);
            else
                dup2(from[f], f);
        }
        execl("/bin/sh", "sh", "-c", g->cmd, (char *)NULL);
        _exit(127);
    }
    setpgid(pid, pid);   /* also in the parent, so the group exists before any kill */
    close(in[0]), close(outp[1]), close(ep[1]);
    in[0] = outp[1] = ep[1] = -1;
    set_nonblock(in[1]);
    set_nonblock(outp[0]);
    set_nonblock(ep[0]);

    /* SIGPIPE on a command that never reads stdin must not kill the tuner: block it on this
     * thread while writing and swallow any that arrived. */
    sigset_t pipe_set, old;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);

    size_t plen = strlen(prompt), sent = 0;
    double t0 = now_s(), deadline = t0 + g->request_s;
    int timed_out = 0, over = 0, status = 0, reaped = 0;
    vlog(g, "running '%s' (prompt %zu bytes, limit %.3g s)", g->cmd, plen, g->request_s);
    while (outp[0] >= 0 || ep[0] >= 0) {
        double left = deadline - now_s();
        if (left <= 0) {
            timed_out = 1;
            break;
        }
        struct pollfd pf[3];
        int np = 0, iw = -1, io = -1, ie = -1;
        if (in[1] >= 0)
            iw = np, pf[np++] = (struct pollfd){in[1], POLLOUT, 0};
        if (outp[0] >= 0)
            io = np, pf[np++] = (struct pollfd){outp[0], POLLIN, 0};
        if (ep[0] >= 0)
            ie = np, pf[np++] = (struct pollfd){ep[0], POLLIN, 0};
        int k = poll(pf, (nfds_t)np, (int)(left * 1000) + 1);
        if (k < 0 && errno != EINTR)
            break;
        if (k <= 0)
            continue;
        if (iw >= 0 && pf[iw].revents) {
            ssize_t w = pf[iw].revents & POLLOUT ? write(in[1], prompt + sent, plen - sent) : -1;
            if (w > 0)
                sent += (size_t)w;
            if (w < 0 && errno == EAGAIN)
                ;
            else if (w <= 0 || sent == plen) {
                close(in[1]);
                in[1] = -1;
            }
        }
        int fds[2] = {io, ie};
        int *fdp[2] = {&outp[0], &ep[0]};
        sbuf *bufs[2] = {&ob, &eb};
        for (int s = 0; s < 2; s++) {
            if (fds[s] < 0 || !pf[fds[s]].revents)
                continue;
            char tmp[8192];
            ssize_t rd = read(*fdp[s], tmp, sizeof tmp);
            if (rd > 0) {
                if (s == 1 && eb.n > 4096)
                    continue;   /* keep the start of stderr only */
                sb_add(bufs[s], tmp, (size_t)rd);
                if (s == 0 && ob.n > REPLY_MAX) {
                    over = 1;
                    break;
                }
            } else if (rd == 0 || errno != EAGAIN) {
                close(*fdp[s]);
                *fdp[s] = -1;
            }
        }
        if (over)
            break;
    }
    /* outputs closed (or a limit hit): wait for the exit within what is left of the limit */
    while (!timed_out && !over) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid) {
            reaped = 1;
            break;
        }
        if (w < 0 && errno != EINTR)
            break;
        if (now_s() >= deadline) {
            timed_out = 1;
            break;
        }
        sleep_s(0.005);
    }
    if (!reaped) {
        kill(-pid, SIGKILL);
        kill(pid, SIGKILL);
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
    } else {
        /* the command finished; whatever it left running in its group goes too */
        kill(-pid, SIGKILL);
    }
    {
        struct timespec zero = {0, 0};
        while (sigtimedwait(&pipe_set, NULL, &zero) > 0)
            ;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
    pid = -1;
    char ex[300];
    excerpt(eb.p ? eb.p : "", 240, ex, sizeof ex);
    if (ob.oom || eb.oom) {
        r = set_err(g, err, errlen, MCT_ENOMEM, "llm-cmd: out of memory");
        goto fail;
    }
    if (timed_out) {
        r = set_err(g, err, errlen, MCT_ETIMEOUT,
                    "llm-cmd: '%s' gave no complete answer within %.3g s and was killed (its "
                    "process group); raise the LLM time limit or use a faster model", g->cmd,
                    g->request_s);
        goto fail;
    }
    if (over) {
        r = set_err(g, err, errlen, MCT_ERANGE, "llm-cmd: '%s' wrote over %zu bytes; refused",
                    g->cmd, REPLY_MAX);
        goto fail;
    }
    if (WIFSIGNALED(status)) {
        r = set_err(g, err, errlen, MCT_EIO, "llm-cmd: '%s' was killed by signal %d%s%s",
                    g->cmd, WTERMSIG(status), ex[0] ? "; stderr: " : "", ex);
        goto fail;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        int st = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        g->fatal = st == 127;   /* the shell found no such command: asking again cannot help */
        r = set_err(g, err, errlen, MCT_EIO, "llm-cmd: '%s' failed with exit status %d%s%s%s",
                    g->cmd, st, st == 127 ? " (command not found?)" : "",
                    ex[0] ? "; stderr: " : "", ex);
        goto fail;
    }
    vlog(g, "answered in %.2f s, %zu bytes", now_s() - t0, ob.n);
    if (!ob.p) {
        r = set_err(g, err, errlen, MCT_EINVAL, "llm-cmd: '%s' printed nothing on stdout",
                    g->cmd);
        goto fail;
    }
    *reply = ob.p;
    ob.p = NULL;
    r = 0;
fail:
    for (int i = 0; i < 2; i++) {
        if (in[i] >= 0)
            close(in[i]);
        if (outp[i] >= 0)
            close(outp[i]);
        if (ep[i] >= 0)
            close(ep[i]);
    }
    free(ob.p);
    free(eb.p);
    return r;
}
