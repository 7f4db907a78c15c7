/* LLM guides: the prompt, the reply parser, the chat-completions client against a scripted
 * HTTP/1.1 server on 127.0.0.1 (a thread of this process, real sockets, an ephemeral port), the
 * reply cache in a fresh database, caps, and llm-cmd with real child processes. No network. */
#include "tests/check.h"
#include "tests/http_double.h"
#include "tuner/guide.h"
#include "tuner/search.h"
#include "db/db.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#define KEY "sk-test-FAKEKEY-0123456789abcdef"
#define KEY2 "sk-env-OTHERKEY-fedcba9876543210"

/* Every error message seen, to check that no key ever appears in one. */
static char all_err[1 << 16];
static void note_err(const char *e)
{
    size_t n = strlen(all_err);
    snprintf(all_err + n, sizeof all_err - n, "%s\n", e);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- the scripted server ----------------------------------------------------------------- */

typedef struct {
    int status;          /* HTTP status */
    char *body;          /* response body (owned by the script) */
    const char *hdr;     /* extra header line(s), each ending in \r\n */
    int delay_ms;        /* wait before answering (cut short when the client leaves) */
    int drop;            /* close without any response */
    int repeat;          /* times this action is used; -1 forever */
} act_t;

typedef struct {
    int lfd, port;
    pthread_t th;
    volatile int stop;
    pthread_mutex_t mu;
    act_t script[16];
    int nscript, pos;
    int requests;
    int saw_auth;
    char auth[256];
    char *last_body;
    char *bodies[64];    /* every request body since the last srv_script, oldest first */
    int nbodies;
} srv_t;

static srv_t S;

static void srv_script(int n, const act_t *a)
{
    pthread_mutex_lock(&S.mu);
    for (int i = 0; i < S.nscript; i++)
        free(S.script[i].body);
    for (int i = 0; i < n; i++) {
        S.script[i] = a[i];
        S.script[i].body = strdup(a[i].body ? a[i].body : "");
    }
    S.nscript = n;
    for (int i = 0; i < S.nbodies; i++)
        free(S.bodies[i]);
    S.nbodies = 0;
    S.pos = 0;
    S.requests = 0;
    S.saw_auth = 0;
    S.auth[0] = 0;
    pthread_mutex_unlock(&S.mu);
}

static int srv_requests(void)
{
    pthread_mutex_lock(&S.mu);
    int n = S.requests;
    pthread_mutex_unlock(&S.mu);
    return n;
}

/* Waits ms, returning early when the client has gone (closed its end) or the server stops. */
static void wait_or_gone(int fd, int ms)
{
    for (int t = 0; t < ms && !S.stop; t += 50) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 50) > 0) {
            char c;
            if (recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) <= 0)
                return;
        }
    }
}

static void *srv_main(void *arg)
{
    (void)arg;
    static char req[1 << 20];
    while (!S.stop) {
        int fd = http_double_accept(S.lfd);
        if (fd < 0)
            continue;
        long n = http_double_read(fd, req, sizeof req);
        if (n < 0) {
            close(fd);
            continue;
        }
        act_t a = {.status = 500, .body = "{\"error\": {\"message\": \"script exhausted\"}}"};
        pthread_mutex_lock(&S.mu);
        S.requests++;
        char *he = strstr(req, "\r\n\r\n");
        S.saw_auth = 0;
        S.auth[0] = 0;
        for (char *l = req; l && l < he; l = strstr(l, "\r\n") ? strstr(l, "\r\n") + 2 : NULL)
            if (!strncasecmp(l, "Authorization:", 14)) {
                const char *v = l + 14;
                while (*v == ' ')
                    v++;
                size_t m = strcspn(v, "\r\n");
                if (m >= sizeof S.auth)
                    m = sizeof S.auth - 1;
                memcpy(S.auth, v, m);
                S.auth[m] = 0;
                S.saw_auth = 1;
            }
        free(S.last_body);
        S.last_body = strdup(he ? he + 4 : "");
        if (S.nbodies < 64)
            S.bodies[S.nbodies++] = strdup(he ? he + 4 : "");
        char body_copy[4096] = "";
        if (S.pos < S.nscript) {
            a = S.script[S.pos];
            snprintf(body_copy, sizeof body_copy, "%s", a.body);
            a.body = body_copy;
            if (S.script[S.pos].repeat > 1)
                S.script[S.pos].repeat--;
            else if (S.script[S.pos].repeat != -1)
                S.pos++;
        } else {
            snprintf(body_copy, sizeof body_copy, "%s", a.body);
            a.body = body_copy;
        }
        pthread_mutex_unlock(&S.mu);
        if (a.drop) {
            close(fd);
            continue;
        }
        if (a.delay_ms)
            wait_or_gone(fd, a.delay_ms);
        http_double_reply(fd, a.status, a.hdr, a.body);
        close(fd);
    }
    return NULL;
}

static int srv_start(void)
{
    pthread_mutex_init(&S.mu, NULL);
    if ((S.lfd = http_double_listen(&S.port)) < 0)
        return -1;
    return pthread_create(&S.th, NULL, srv_main, NULL) ? -1 : 0;
}

static void srv_stop(void)
{
    S.stop = 1;
    pthread_join(S.th, NULL);
    close(S.lfd);
    for (int i = 0; i < S.nscript; i++)
        free(S.script[i].body);
    free(S.last_body);
    for (int i = 0; i < S.nbodies; i++)
        free(S.bodies[i]);
    pthread_mutex_destroy(&S.mu);
}

/* A chat-completions response whose message content is `content`. */
static char *chat(const char *content, int pt, int ct)
{
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "id", "chatcmpl-test");
    cJSON_AddStringToObject(r, "object", "chat.completion");
    cJSON *ch = cJSON_AddArrayToObject(r, "choices");
    cJSON *c0 = cJSON_CreateObject();
    cJSON_AddItemToArray(ch, c0);
    cJSON_AddNumberToObject(c0, "index", 0);
    cJSON *m = cJSON_AddObjectToObject(c0, "message");
    cJSON_AddStringToObject(m, "role", "assistant");
    cJSON_AddStringToObject(m, "content", content);
    cJSON_AddStringToObject(c0, "finish_reason", "stop");
    cJSON *u = cJSON_AddObjectToObject(r, "usage");
    cJSON_AddNumberToObject(u, "prompt_tokens", pt);
    cJSON_AddNumberToObject(u, "completion_tokens", ct);
    cJSON_AddNumberToObject(u, "total_tokens", pt + ct);
    char *s = cJSON_PrintUnformatted(r);
    cJSON_Delete(r);
    return s;
}

/* ---- fixtures ---------------------------------------------------------------------------- */

static mct_workload W;
static mct_sched *S_root, *S_par, *S_node;
static mct_target T = {8, "", 16, MCT_ISA_AVX2, 0, MCT_TIER_AVX2, 0};
static mct_guide_node N_grand, N_par, N_node;

#define NODE_SCHED "tile(i, 16, 4); tile(j, 64, 16); tile(k, 64); " \
                   "reorder(i0, j0, k0, i1, j1, k1, i2, j2)"

static int fixtures(void)
{
    char e[256];
    if (mct_wl_parse("matmul f32 nn M=64 N=256 K=128 epi=bias+relu", &W, e, sizeof e))
        return -1;
    if (mct_sched_create(&W, &S_root) ||
        mct_sched_parse(&W, "tile(i, 16, 4); tile(j, 64, 16)", &S_par, e, sizeof e) ||
        mct_sched_parse(&W, NODE_SCHED, &S_node, e, sizeof e)) {
        fprintf(stderr, "fixture schedule: %s\n", e);
        return -1;
    }
    N_grand = (mct_guide_node){.sched = S_root, .trace = "", .latency_s = 2e-3, .gflops = 2.1,
                               .visits = 5, .spread_s = 1e-4};
    N_par = (mct_guide_node){.sched = S_par, .trace = "tile(i, 16, 4); tile(j, 64, 16)",
                             .latency_s = 1.5e-3, .gflops = 2.8, .visits = 3,
                             .applied = "tile(i, 16, 4); tile(j, 64, 16)"};
    N_node = (mct_guide_node){.sched = S_node, .trace = NODE_SCHED, .latency_s = -1,
                              .visits = 1};
    return 0;
}

/* A context; `visits` makes prompts distinct (it is shown in the prompt). */
static mct_guide_ctx ctx_v(int visits, mct_guide_node *node)
{
    *node = N_node;
    node->visits = visits;
    return (mct_guide_ctx){.w = &W, .cpu = mct_cpu_host(), .target = &T, .threads = 4,
                           .node = node, .parent = &N_par, .grand = &N_grand,
                           .base_latency_s = 2e-3, .want = 2, .rng = NULL};
}

static void free_out(char **out, int n)
{
    for (int i = 0; i < n; i++)
        free(out[i]);
}

static void url_of(char *buf, size_t len)
{
    snprintf(buf, len, "http://127.0.0.1:%d/v1/", S.port);
}

static mct_llm_opts opts_base(void)
{
    static char url[64];
    url_of(url, sizeof url);
    return (mct_llm_opts){.base_url = url, .model = "test-model", .api_key = KEY,
                          .connect_timeout_s = 2, .request_timeout_s = 5, .max_retries = -1,
                          .temperature = 0.2};
}

/* One propose with a fresh guide. Returns the code; out/n filled; err noted. */
static int propose_once(const mct_llm_opts *o, int visits, char **out, int *n, char *err,
                        size_t errlen, mct_guide_stats *st)
{
    mct_guide *g = NULL;
    mct_guide_node nd;
    int r = mct_guide_llm_create(o, &g, err, errlen);
    if (r) {
        note_err(err);
        return r;
    }
    mct_guide_ctx c = ctx_v(visits, &nd);
    r = mct_guide_propose(g, &c, out, n, err, errlen);
    note_err(err);
    if (st)
        mct_guide_get_stats(g, st);
    mct_guide_destroy(g);
    return r;
}

/* ---- tests ------------------------------------------------------------------------------- */

static void test_prompt(void)
{
    mct_guide_node nd;
    mct_guide_ctx c = ctx_v(7, &nd);
    char *p = NULL;
    CHECK(mct_guide_prompt(&c, &p) == 0 && p);
    if (!p)
        return;
    const char *must[] = {
        "matmul f32 nn M=64 N=256 K=128 epi=bias+relu", "### Grandparent program",
        "### Parent program", "### Current program", "for i0 in", "# schedule: " NODE_SCHED,
        "Trace (transformations applied to the untuned program, in order): " NODE_SCHED,
        "none (this is the untuned program)", "1.500 ms per call, 2.80 GFLOP/s",
        "speedup 1.33x over the untuned program", "Measured cost: none",
        "Visits in the search tree: 7",
        "tile(AXIS, f1[, f2[, f3]])", "reorder(L1, L2, ...)", "vectorize(L)", "unroll(L, N)",
        "parallel(L)", "cache_write(L)", "pack(A|B, L, PANEL)", "prepack(B, PANEL[, KCHUNK])",
        "fuse_epilogue(L)", "prefetch(A|B|C, L, DIST)", "ISA tier: ", "SIMD width 8 f32 lanes",
        "runs with 4 threads", "Reason step by step", "C[M,N] = relu(A[M,K] x B + bias)",
        "up to 2 proposals", "```json\n[[",
    };
    for (size_t i = 0; i < sizeof must / sizeof *must; i++)
        CHECKF(strstr(p, must[i]), "prompt lacks '%s'", must[i]);
    CHECK(strstr(p, mct_tier_name(mct_cpu_tier_of(mct_cpu_host()))) != NULL);
    /* the order the paper uses: grandparent, parent, then the current program */
    char *gp = strstr(p, "### Grandparent"), *pp = strstr(p, "### Parent"),
         *cp = strstr(p, "### Current");
    CHECK(gp && pp && cp && gp < pp && pp < cp);
    free(p);
    /* at the root: no parent, no grandparent */
    c.parent = c.grand = NULL;
    CHECK(mct_guide_prompt(&c, &p) == 0 && p && !strstr(p, "### Parent") &&
          !strstr(p, "### Grandparent"));
    free(p);
    c.node = NULL;
    p = (char *)1;
    CHECK(mct_guide_prompt(&c, &p) == MCT_EINVAL && p == NULL);
}

/* The better-informed prompt: children already measured, rejected proposals with reasons, the
 * noise of each cost, the numbered steps for drop(N), the rules of re-application; and the same
 * context gives the same bytes (the reply cache is keyed by the prompt). */
static void test_prompt_info(void)
{
    mct_guide_node nd, kids[3];
    mct_guide_ctx c = ctx_v(8, &nd);
    nd.latency_s = 1e-3;
    nd.gflops = 4.2;
    nd.spread_s = 1e-4;
    kids[0] = (mct_guide_node){.sched = S_node, .trace = "t", .latency_s = 8e-4, .gflops = 5.25,
                               .spread_s = 4e-5, .applied = "unroll(i2, 4)"};
    kids[1] = (mct_guide_node){.sched = S_node, .trace = "t", .latency_s = -1,
                               .applied = "vectorize(j2); prefetch(B, k1, 64)", .status = 4};
    kids[2] = (mct_guide_node){.sched = S_node, .trace = "t", .latency_s = 1.25e-3, .gflops = 3.36,
                               .applied = "fallback: swap i0 and j0"};
    mct_guide_reject rej[2] = {{"tile(q, 4)", "tile q: no axis named 'q' (axes: i j k)"},
                               {"unroll(j2, 4)", "it builds a program already in the tree"}};
    c.kids = kids;
    c.nkids = 3;
    c.rejected = rej;
    c.nrejected = 2;
    char *p = NULL, *p2 = NULL;
    CHECK(mct_guide_prompt(&c, &p) == 0 && p);
    CHECK(mct_guide_prompt(&c, &p2) == 0 && p2);
    CHECK(p && p2 && !strcmp(p, p2));
    free(p2);
    if (!p)
        return;
    const char *must[] = {
        "### Children of the current program already measured",
        "- unroll(i2, 4): 800.0 us per call, 5.25 GFLOP/s, 1.25x the current program's speed; "
        "noise: IQR 40.0 us (5.0% of the median)",
        "- vectorize(j2); prefetch(B, k1, 64): failed (wrong)\n",
        "- fallback: swap i0 and j0: 1.250 ms per call, 3.36 GFLOP/s, 0.80x the current "
        "program's speed\n",
        "A step that reads \"fallback: ...\" was a random edit",
        "### Proposals rejected at the current program",
        "- tile(q, 4): tile q: no axis named 'q' (axes: i j k)",
        "- unroll(j2, 4): it builds a program already in the tree",
        /* the node's own noise and the grandparent's */
        "1.000 ms per call, 4.20 GFLOP/s, speedup 2.00x over the untuned program; noise: IQR "
        "100.0 us (10.0% of the median)",
        "2.000 ms per call, 2.10 GFLOP/s, speedup 1.00x over the untuned program; noise: IQR "
        "100.0 us (5.0% of the median)",
        "A difference smaller than the noise",
        "### Steps of the current program", "1. tile(i, 16, 4)\n2. tile(j, 64, 16)\n"
        "3. tile(k, 64)\n4. reorder(i0, j0, k0, i1, j1, k1, i2, j2)\n",
        "- drop(N): removes step N", "Applying a transformation again:",
        "prefetch of the same operand at the same loop replaces its distance",
        "unroll(L, 1) removes it", "pack(B, ...) is refused once B is prepacked",
    };
    for (size_t i = 0; i < sizeof must / sizeof *must; i++)
        CHECKF(strstr(p, must[i]), "prompt lacks '%s'", must[i]);
    CHECK(!strstr(p, "The head loop b"));   /* a matmul has no b loop */
    /* the sections come after the current program and before the set O */
    char *cp = strstr(p, "### Current program"), *kp = strstr(p, "### Children"),
         *rp = strstr(p, "### Proposals rejected"), *op = strstr(p, "## Transformations");
    CHECK(cp && kp && rp && op && cp < kp && kp < rp && rp < op);
    free(p);
    /* none of them: no empty sections */
    c = ctx_v(8, &nd);
    CHECK(mct_guide_prompt(&c, &p) == 0 && p && !strstr(p, "### Children") &&
          !strstr(p, "### Proposals rejected") && !strstr(p, "noise: IQR 0"));
    free(p);
    /* bmm: what the IR does with the head loop b and the packs of grouped heads */
    mct_workload bw;
    mct_sched *bs = NULL;
    CHECK(mct_wl_parse("bmm f32 nt B=8 G=4 M=16 N=64 K=32 epi=none", &bw, NULL, 0) == 0);
    CHECK(mct_sched_parse(&bw, "tile(j, 16)", &bs, NULL, 0) == 0);
    if (bs) {
        mct_guide_node bn = {.sched = bs, .trace = "tile(j, 16)", .latency_s = -1, .visits = 1};
        mct_guide_ctx bc = {.w = &bw, .cpu = mct_cpu_host(), .target = &T, .threads = 1,
                            .node = &bn, .want = 2};
        CHECK(mct_guide_prompt(&bc, &p) == 0 && p);
        CHECKF(p && strstr(p, "it may be reordered") &&
               strstr(p, "nothing shares a pack across them") &&
               !strstr(p, "pack(B, ...) is refused once B is prepacked"), "%s", p ? p : "");
        free(p);
        mct_sched_destroy(bs);
    }
}

/* drop(N): step N of the canonical sequence goes, the rest is re-parsed; illegal drops leave the
 * schedule unchanged with the reason. */
static void test_drop(void)
{
    const char *base = NODE_SCHED "; unroll(i2, 4); vectorize(j2)";
    mct_sched *s = NULL;
    char why[512], a[4096], b[4096];
    CHECK(mct_sched_parse(&W, base, &s, why, sizeof why) == 0);
    if (!s)
        return;
    mct_sched_format(s, a, sizeof a);
    CHECKF(!strcmp(a, base), "canonical '%s'", a);
    struct { const char *text; int code; const char *res_or_why; } cs[] = {
        {"drop(5)", 0, NODE_SCHED "; vectorize(j2)"},
        {"drop(6)", 0, NODE_SCHED "; unroll(i2, 4)"},
        {"drop(6); drop(5)", 0, NODE_SCHED},
        {"drop(4)", MCT_ENOTAPPLIC, "drop(4) (reorder(i0, j0, k0, i1, j1, k1, i2, j2)): the "
                                    "steps left do not apply without it: vectorize j2: not the "
                                    "innermost"},
        {"drop(1)", MCT_ENOTAPPLIC, "drop(1) (tile(i, 16, 4)): the steps left do not apply "
                                    "without it: reorder"},
        {"drop(7)", MCT_ENOTAPPLIC, "the schedule has 6 steps; give N in 1..6"},
        {"drop(0)", MCT_ENOTAPPLIC, "out of range"},
        {"drop(x)", MCT_EINVAL, "drop: 'x' is not a whole number"},
        {"drop()", MCT_EINVAL, "drop: expects drop(STEP)"},
        {"drop(1, 2)", MCT_EINVAL, "drop: expects drop(STEP)"},
        /* a later step of one proposal sees the state the drop left */
        {"drop(6); vectorize(j2); unroll(i2, 2)", 0, NODE_SCHED "; unroll(i2, 2); vectorize(j2)"},
    };
    for (size_t i = 0; i < sizeof cs / sizeof *cs; i++) {
        mct_sched *c;
        CHECK(mct_sched_clone(s, &c) == 0);
        int r = mct_sched_apply(c, cs[i].text, why, sizeof why);
        mct_sched_format(c, b, sizeof b);
        if (cs[i].code == 0)
            CHECKF(r == 0 && !strcmp(b, cs[i].res_or_why), "%s: %d '%s' -> '%s'", cs[i].text, r,
                   why, b);
        else
            CHECKF(r == cs[i].code && strstr(why, cs[i].res_or_why) && !strcmp(a, b),
                   "%s: %d '%s' (schedule '%s')", cs[i].text, r, why, b);
        mct_sched_destroy(c);
    }
    mct_sched_destroy(s);
    /* the untuned nest has no step */
    CHECK(mct_sched_create(&W, &s) == 0);
    CHECK(mct_sched_drop(s, 1, why, sizeof why) == MCT_ENOTAPPLIC && strstr(why, "untuned"));
    mct_sched_destroy(s);
    /* every step of some full schedules: a legal drop gives exactly the other steps (re-parsed,
     * they print the same bytes); an illegal one changes nothing */
    const char *full[] = {
        "tile(i, 64, 4); tile(j, 256, 16); tile(k, 128); reorder(j0, k0, i0, j1, i1, k1, i2, j2); "
        "prepack(B, j2, k1); pack(A, i0, i2); cache_write(i1); fuse_epilogue(i1); "
        "parallel(j0); unroll(i2, 4); vectorize(j2); prefetch(A, k1, 8); prefetch(B, k1, 16)",
        "tile(j, 8); tile(k, 16); reorder(i, j0, k0, j1, k1); pack(B, j0, k); cache_write(j0); "
        "unroll(j1, 8); vectorize(k1); prefetch(C, i, 1)",
    };
    for (size_t f = 0; f < sizeof full / sizeof *full; f++) {
        CHECKF(mct_sched_parse(&W, full[f], &s, why, sizeof why) == 0, "%s: %s", full[f], why);
        if (!s)
            continue;
        mct_sched_format(s, a, sizeof a);
        int n = 1;
        for (const char *q = a; *q; q++)
            n += *q == ';';
        int legal = 0;
        for (int k = 1; k <= n; k++) {
            mct_sched *c;
            CHECK(mct_sched_clone(s, &c) == 0);
            int r = mct_sched_drop(c, k, why, sizeof why);
            mct_sched_format(c, b, sizeof b);
            /* the text of a with step k cut out */
            char want[4096] = "";
            int idx = 1;
            size_t wl = 0;
            for (const char *q = a; *q;) {
                const char *e = strchr(q, ';');
                size_t l = e ? (size_t)(e - q) : strlen(q);
                if (idx != k)
                    wl += (size_t)snprintf(want + wl, sizeof want - wl, "%s%.*s", wl ? "; " : "",
                                           (int)l, q);
                idx++;
                q = e ? e + 2 : q + l;
            }
            if (r == 0) {
                legal++;
                CHECKF(!strcmp(b, want), "drop(%d) of '%s' gave '%s', wanted '%s'", k, a, b,
                       want);
            } else {
                CHECKF(r == MCT_ENOTAPPLIC && !strcmp(a, b) && strstr(why, "drop("),
                       "drop(%d) of '%s': %d '%s'", k, a, r, why);
            }
            mct_sched_destroy(c);
        }
        CHECKF(legal >= 3, "only %d of %d steps of '%s' could be dropped", legal, n, a);
        mct_sched_destroy(s);
        s = NULL;
    }
}

/* Proposals of a fresh heuristic guide for ctx (up to 16). */
static int heur_props(mct_guide_ctx *c, char **out)
{
    mct_guide *g = NULL;
    int n = 0;
    char err[256];
    if (mct_guide_heuristic_create(&g))
        return 0;
    if (mct_guide_propose(g, c, out, &n, err, sizeof err))
        n = 0;
    mct_guide_destroy(g);
    return n;
}

/* The heuristic's proposals at the untuned nest of the workload named by key, on cpu and t with
 * the given threads and seed; *root gets the nest (the caller destroys it; NULL when the key did
 * not parse), out[] the proposals (the caller frees them). */
static int root_props(const char *key, const mct_cpu *cpu, const mct_target *t, int threads,
                      uint64_t seed, char **out, mct_sched **root)
{
    mct_workload w;
    *root = NULL;
    CHECKF(mct_wl_parse(key, &w, NULL, 0) == 0 && mct_sched_create(&w, root) == 0, "%s", key);
    if (!*root)
        return 0;
    uint64_t rng = seed;
    mct_guide_node nd = {.sched = *root, .trace = "", .latency_s = 1e-3, .visits = 1};
    mct_guide_ctx c = {.w = &w, .cpu = cpu, .target = t, .threads = threads, .node = &nd,
                       .want = 16, .rng = &rng};
    return heur_props(&c, out);
}

/* 1 when proposal p has the loop order that starts with order and its five tile sizes parse:
 * MC, MR, NC, NR, KC into v[0..4]. */
static int tiles_of(const char *p, const char *order, long *v)
{
    return strstr(p, order) && sscanf(p, "tile(i, %ld, %ld); tile(j, %ld, %ld); tile(k, %ld)",
                                      &v[0], &v[1], &v[2], &v[3], &v[4]) == 5;
}

/* The heuristic's rules from measurements: a register tile over all M rows when they fit the
 * register file (16 on AVX2, 32 on AVX-512, from the target), before tiles that split the rows;
 * and drop(N) of a step that made the parent slower than the grandparent. */
static void test_heuristic_rules(void)
{
    mct_target t2 = mct_target_of_isa(MCT_ISA_AVX2), t5 = mct_target_of_isa(MCT_ISA_AVX512);
    struct { int M; const mct_target *t; int want_rows; } cs[] = {
        {5, &t2, 5}, {6, &t2, 6}, {5, &t5, 5}, {12, &t5, 12}, {40, &t2, 0}, {40, &t5, 0},
    };
    for (size_t i = 0; i < sizeof cs / sizeof *cs; i++) {
        char key[128];
        mct_sched *root = NULL;
        snprintf(key, sizeof key, "matmul f32 nt M=%d N=4096 K=1024 epi=none", cs[i].M);
        char *out[16];
        int n = root_props(key, mct_cpu_host(), cs[i].t, 1, 7, out, &root);
        int first_all = -1, first_split = -1;
        for (int q = 0; q < n; q++) {
            mct_sched *x;
            int rows = 0, cols = 0;
            if (mct_sched_clone(root, &x) || mct_sched_apply(x, out[q], NULL, 0))
                continue;
            mct_sched_reg_tile(x, &rows, &cols);
            mct_sched_destroy(x);
            if (rows == cs[i].M && first_all < 0)
                first_all = q;
            if (rows > 1 && rows < cs[i].M && first_split < 0 && strstr(out[q], "prepack"))
                first_split = q;
        }
        /* nt at M=5 with 32 registers: the row-block dot form over all 5 rows comes first */
        if (cs[i].M == 5 && cs[i].t->nregs == 32)
            CHECKF(first_all == 0 && n > 0 && strstr(out[0], "unroll(i1, 5); unroll(j1, 4)"),
                   "M=5 avx512: first proposal '%s'", n > 0 ? out[0] : "");
        if (cs[i].want_rows)
            CHECKF(first_all >= 0 && (first_split < 0 || first_all < first_split),
                   "M=%d nregs %d: all-rows tile at %d, split at %d of %d", cs[i].M,
                   cs[i].t->nregs, first_all, first_split, n);
        else
            CHECKF(first_all < 0 && n > 0, "M=%d nregs %d: an all-rows tile at %d", cs[i].M,
                   cs[i].t->nregs, first_all);
        free_out(out, n);
        mct_sched_destroy(root);
    }
    /* the parent's prefetch made it slower than the grandparent: the node (which unrolled since)
     * gets drop(N) of that prefetch; when it made the parent faster, no drop */
    const char *tg = "tile(i, 16, 4); tile(j, 64, 16); tile(k, 64)";
    mct_sched *sg = NULL, *sp = NULL, *sn = NULL;
    CHECK(mct_sched_parse(&W, tg, &sg, NULL, 0) == 0 && mct_sched_clone(sg, &sp) == 0 &&
          mct_sched_apply(sp, "prefetch(A, k1, 32)", NULL, 0) == 0 &&
          mct_sched_clone(sp, &sn) == 0 && mct_sched_apply(sn, "unroll(i2, 4)", NULL, 0) == 0);
    if (sg && sp && sn) {
        char tn[4096];
        mct_sched_format(sn, tn, sizeof tn);
        CHECKF(!strcmp(tn, "tile(i, 16, 4); tile(j, 64, 16); tile(k, 64); unroll(i2, 4); "
                           "prefetch(A, k1, 32)"), "node '%s'", tn);
        for (int slower = 1; slower >= 0; slower--) {
            uint64_t rng = 3;
            mct_guide_node g = {.sched = sg, .trace = tg, .latency_s = 1e-3, .visits = 3,
                                .spread_s = 2e-5};
            mct_guide_node pa = {.sched = sp, .latency_s = slower ? 1.5e-3 : 0.9e-3,
                                 .visits = 2, .spread_s = 2e-5, .applied = "prefetch(A, k1, 32)"};
            mct_guide_node nd = {.sched = sn, .latency_s = 1.4e-3, .visits = 1,
                                 .applied = "unroll(i2, 4)"};
            mct_guide_ctx c = {.w = &W, .cpu = mct_cpu_host(), .target = &T, .threads = 1,
                               .node = &nd, .parent = &pa, .grand = &g, .want = 16, .rng = &rng};
            char *out[16];
            int n = heur_props(&c, out), has = 0;
            for (int q = 0; q < n; q++)
                has |= !strcmp(out[q], "drop(5)");
            CHECKF(has == slower, "parent %s: drop(5) %s among %d proposals",
                   slower ? "slower" : "faster", has ? "is" : "is not", n);
            free_out(out, n);
        }
    }
    mct_sched_destroy(sg);
    mct_sched_destroy(sp);
    mct_sched_destroy(sn);
    /* large M on a CPU with 48 KiB L1 and 2 MiB L2 (synthetic, whatever this host has): the
     * BLIS forms prefetch the next B micro-panel spread over the row tiles (the lowering takes
     * the spread form) and the next tile's C; the C-resident order (i0 and j0 outside k0) comes
     * before the BLIS order once the BLIS order's block of C outgrows half of L2 (M=512), after
     * it while that block fits (M=128) */
    mct_cpu cpu = *mct_cpu_host();
    cpu.cache_kb[0] = 48;
    cpu.cache_kb[2] = 2048;
    for (int big = 0; big < 2; big++) {
        char key[128];
        mct_sched *root = NULL;
        snprintf(key, sizeof key, "matmul f32 nt M=%d N=14336 K=4096 epi=none", big ? 512 : 128);
        char *out[16];
        int n = root_props(key, &cpu, &t5, 1, 11, out, &root);
        int first_blis = -1, first_cres = -1, spread = 0;
        for (int q = 0; q < n; q++) {
            if (strstr(out[q], "reorder(j0, k0, i0") && first_blis < 0)
                first_blis = q;
            if (strstr(out[q], "reorder(i0, j0, k0") && first_cres < 0)
                first_cres = q;
            if (strstr(out[q], "prepack") && strstr(out[q], "prefetch(B, j1, 1)") &&
                strstr(out[q], "prefetch(C, i1, 1)")) {
                mct_sched *x = NULL;
                char *src = NULL;
                if (!mct_sched_clone(root, &x) && !mct_sched_apply(x, out[q], NULL, 0) &&
                    !mct_cg_lower_c(x, &t5, "k", &src))
                    spread += strstr(src, "pfn_lo_") != NULL;
                free(src);
                mct_sched_destroy(x);
            }
        }
        CHECKF(first_blis >= 0 && first_cres >= 0 && (big ? first_cres < first_blis :
                                                      first_blis < first_cres),
               "M=%d: BLIS order first at %d, C-resident at %d of %d", big ? 512 : 128,
               first_blis, first_cres, n);
        CHECKF(spread >= 2, "M=%d: %d BLIS forms with the spread B prefetch", big ? 512 : 128,
               spread);
        free_out(out, n);
        mct_sched_destroy(root);
    }
    /* 16-32 rows over prepacked B: the outer-product form of the register tile
     * that wastes the fewest rows comes first, then the same with k chunks, both before the
     * row-block dot forms (vectorize(k...)); b=raw keeps the dot forms first. On a 512 KiB L2
     * (synthetic) the C-resident form at M=512 cuts MC so that its KC slice of A takes at most a
     * quarter of L2. */
    static const struct { int M, raw; } sm[] = {{16, 0}, {20, 0}, {24, 0}, {16, 1}};
    for (size_t i = 0; i < sizeof sm / sizeof sm[0]; i++)
        for (int tt = 0; tt < 2; tt++) {
            const mct_target *tg = tt ? &t5 : &t2;
            char key[128];
            mct_sched *root = NULL;
            snprintf(key, sizeof key, "matmul f32 nt M=%d N=4096 K=4096 epi=none%s", sm[i].M,
                     sm[i].raw ? " b=raw" : "");
            char *out[16];
            int n = root_props(key, mct_cpu_host(), tg, 1, 5, out, &root), first_dot = -1;
            for (int q = 0; q < n; q++)
                if (strstr(out[q], "vectorize(k") && first_dot < 0)
                    first_dot = q;
            if (sm[i].raw) {
                CHECKF(n > 0 && !strstr(out[0], "prepack"), "%s: first '%s'", key,
                       n > 0 ? out[0] : "");
            } else {
                int rows = 0, cols = 0;
                mct_sched *x = NULL;
                if (n > 0 && !mct_sched_clone(root, &x) && !mct_sched_apply(x, out[0], NULL, 0))
                    mct_sched_reg_tile(x, &rows, &cols);
                mct_sched_destroy(x);
                CHECKF(n > 1 && strstr(out[0], "prepack(B, j2);") &&
                       strstr(out[1], "prepack(B, j2, k1);") && rows > 1 && sm[i].M % rows == 0 &&
                       (first_dot < 0 || first_dot > 1), "%s nregs %d: first '%s' (%d rows), "
                       "second '%s', first dot form at %d", key, tg->nregs, n > 0 ? out[0] : "",
                       rows, n > 1 ? out[1] : "", first_dot);
                /* the k-chunked form at the first's KC, k unrolled 16 times, B prefetched 8
                 * iterations ahead */
                long v0[5] = {0}, v1[5] = {0};
                CHECKF(n > 1 && tiles_of(out[0], "reorder(j0, k0, i0", v0) &&
                       tiles_of(out[1], "reorder(j0, k0, i0", v1) && v0[4] == v1[4] &&
                       strstr(out[1], "unroll(k1, 16)") && strstr(out[1], "prefetch(B, k1, 8)"),
                       "%s nregs %d: second '%s'", key, tg->nregs, n > 1 ? out[1] : "");
            }
            free_out(out, n);
            mct_sched_destroy(root);
        }
    cpu = *mct_cpu_host();
    cpu.cache_kb[0] = 32;
    cpu.cache_kb[2] = 512;
    {
        mct_sched *root = NULL;
        char *out[16];
        int n = root_props("matmul f32 nt M=512 N=4096 K=4096 epi=none", &cpu, &t2, 1, 7, out,
                           &root), seen = 0;
        for (int q = 0; q < n; q++) {
            long v[5];
            if (!tiles_of(out[q], "reorder(i0, j0, k0", v))
                continue;
            long mc = v[0], mr = v[1], kc = v[4];
            seen++;
            CHECKF(mc * kc * 4 <= 512 * 1024 / 4 && mc >= 2 * mr, "C-resident MC %ld KC %ld: '%s'",
                   mc, kc, out[q]);
        }
        CHECK(seen >= 1);
        free_out(out, n);
        mct_sched_destroy(root);
    }
    /* above 32 rows the BLIS order's j block is all of N, split evenly over the threads, on
     * the j0 loop when there are several (each j0 block packs A again); N ragged for the
     * threads and the vector width; and its KC deep, MC from it */
    static const struct { int M, N, threads; } wn[] = {
        {128, 4096, 1}, {128, 4096, 2}, {512, 1000, 2}, {64, 1024, 3}, {200, 14336, 1}};
    for (size_t i = 0; i < sizeof wn / sizeof wn[0]; i++) {
        char key[128];
        mct_sched *root = NULL;
        snprintf(key, sizeof key, "matmul f32 nt M=%d N=%d K=4096 epi=none", wn[i].M, wn[i].N);
        char *out[16];
        int n = root_props(key, &cpu, &t2, wn[i].threads, 3, out, &root), seen = 0;
        for (int q = 0; q < n; q++) {
            long v[5];
            if (!tiles_of(out[q], "reorder(j0, k0, i0", v))
                continue;
            long mc = v[0], mr = v[1], nc = v[2], nr = v[3], kc = v[4];
            seen++;
            long blocks = (wn[i].N + nc - 1) / nc;
            CHECKF(nc % nr == 0 && blocks == wn[i].threads && nc - (wn[i].N + wn[i].threads - 1) /
                   wn[i].threads < nr && (wn[i].threads == 1 ? !strstr(out[q], "parallel") :
                   strstr(out[q], "parallel(j0)") != NULL),
                   "%s, %d threads: NC %ld (%ld blocks): '%s'", key, wn[i].threads, nc, blocks,
                   out[q]);
            /* a deep KC: the B micro-panel an eighth of L2 (K at most), the A block at most
             * twice L2 with the rows split evenly over its blocks */
            long l2 = 512 * 1024, deep = 1, mb = (wn[i].M + mc - 1) / mc;
            while (deep * 2 <= l2 / 8 / (nr * 4))
                deep *= 2;
            CHECKF(kc >= (deep < 4096 ? deep : 4096) && mc * kc * 4 <= 2 * l2 + mr * kc * 4 &&
                   mb * mc - wn[i].M < mb * mr, "%s: KC %ld (deep %ld), MC %ld x %ld blocks: '%s'",
                   key, kc, deep, mc, mb, out[q]);
        }
        CHECKF(seen >= 2, "%s: %d BLIS-order proposals", key, seen);
        free_out(out, n);
        mct_sched_destroy(root);
    }
}

/* A real search (MCTS, the llm guide against the scripted server, every candidate compiled and
 * timed by the harness): the prompts it sends show the proposals refused at a node with their
 * reasons and the node's children already measured, with the GFLOP/s the search measured. */
typedef struct { char applied[64]; int parent; double gflops; } seen_t;
static seen_t Seen[32];
static int NSeen;

static int on_sample_keep(void *ctx, const mct_search_sample *smp)
{
    (void)ctx;
    if (NSeen < 32) {
        snprintf(Seen[NSeen].applied, sizeof Seen[NSeen].applied, "%s", smp->applied);
        Seen[NSeen].parent = smp->parent;
        Seen[NSeen].gflops = smp->gflops;
        NSeen++;
    }
    return 0;
}

/* 1 when the line of text that starts with prefix contains needle. */
static int line_has(const char *text, const char *prefix, const char *needle)
{
    const char *l = strstr(text, prefix);
    if (!l)
        return 0;
    const char *e = strchr(l, '\n'), *f = strstr(l, needle);
    return f && (!e || f < e);
}

static void note_line(void *ctx, int loud, const char *line)
{
    (void)ctx;
    (void)loud;
    if (getenv("TEST_GUIDE_NOTES"))
        fprintf(stderr, "note: %s\n", line);
}

static void test_search_info(const char *dir)
{
    /* three expansions of the root (branching 3): an illegal step and a legal one; the same
     * program spelled again and another legal one; then one more */
    const char *replies[3] = {
        "```json\n[[\"tile(q, 4)\"], [\"tile(j, 16)\"]]\n```",
        "```json\n[[\"tile(j,16)\"], [\"tile(i, 4)\"]]\n```",
        "```json\n[[\"tile(k, 8)\"]]\n```",
    };
    act_t acts[3];
    char *bodies[3];
    for (int i = 0; i < 3; i++) {
        bodies[i] = chat(replies[i], 10, 10);
        acts[i] = (act_t){200, bodies[i], NULL, 0, 0, 1};
    }
    srv_script(3, acts);
    for (int i = 0; i < 3; i++)
        free(bodies[i]);
    mct_llm_opts lo = opts_base();
    mct_guide *g = NULL;
    char err[512] = "", cdir[600];
    CHECKF(mct_guide_llm_create(&lo, &g, err, sizeof err) == 0, "%s", err);
    snprintf(cdir, sizeof cdir, "%s/cc-search", dir);
    mct_meas_opts mo;
    mct_meas_opts_default(&mo);
    mo.cache_dir = cdir;
    mo.min_time_s = 0.005;
    mct_meas *m = NULL;
    CHECKF(mct_meas_create(&mo, &m, err, sizeof err) == 0, "%s", err);
    mct_workload w;
    CHECK(mct_wl_parse("matmul f32 nn M=8 N=32 K=32 epi=none", &w, NULL, 0) == 0);
    if (!g || !m) {
        mct_guide_destroy(g);
        mct_meas_destroy(m);
        return;
    }
    mct_search_opts so = {0};
    mct_search_stats st;
    so.kind = MCT_SEARCH_MCTS;
    so.budget = 4;
    so.branching = 3;
    so.seed = 1;
    so.guide = g;
    so.meas = m;
    so.on_sample = on_sample_keep;
    so.on_note = note_line;
    NSeen = 0;
    int r = mct_search_run(&w, &so, &st, err, sizeof err);
    CHECKF(r == 0 && st.samples == 4 && st.invalid == 1 && st.duplicates == 1 &&
           st.fallbacks == 0,
           "search: %d '%s' samples %d invalid %d duplicates %d", r, err, st.samples, st.invalid,
           st.duplicates);
    /* the root's children as the search measured them */
    double g_tj = -1, g_ti = -1;
    for (int i = 0; i < NSeen; i++) {
        if (Seen[i].parent == 0 && !strcmp(Seen[i].applied, "tile(j, 16)"))
            g_tj = Seen[i].gflops;
        if (Seen[i].parent == 0 && !strcmp(Seen[i].applied, "tile(i, 4)"))
            g_ti = Seen[i].gflops;
    }
    CHECKF(g_tj > 0 && g_ti > 0, "root children measured: %g %g", g_tj, g_ti);
    pthread_mutex_lock(&S.mu);
    int nb = S.nbodies, with_rej = 0, with_dup = 0, with_kids = 0;
    char kid_tj[96], kid_ti[96];
    snprintf(kid_tj, sizeof kid_tj, "%.2f GFLOP/s", g_tj);
    snprintf(kid_ti, sizeof kid_ti, "%.2f GFLOP/s", g_ti);
    for (int i = 0; i < nb; i++) {
        cJSON *req = cJSON_Parse(S.bodies[i]);
        cJSON *u = cJSON_GetArrayItem(cJSON_GetObjectItem(req, "messages"), 1);
        cJSON *ct = cJSON_GetObjectItem(u, "content");
        const char *pr = cJSON_IsString(ct) ? ct->valuestring : "";
        if (i == nb - 1 && getenv("TEST_GUIDE_NOTES"))
            fprintf(stderr, "the last prompt of the search:\n%s\n", pr);
        char *rs = strstr(pr, "### Proposals rejected at the current program");
        if (i == 0)
            CHECKF(!rs && !strstr(pr, "### Children"), "first prompt: %.300s", pr);
        if (rs && strstr(rs, "- tile(q, 4): tile q: no axis named 'q'"))
            with_rej++;
        if (rs && strstr(rs, "already in the search tree"))
            with_dup++;
        char *ks = strstr(pr, "### Children of the current program already measured");
        if (ks && line_has(ks, "- tile(j, 16): ", kid_tj) &&
            line_has(ks, "- tile(i, 4): ", kid_ti) && strstr(ks, "% of the median"))
            with_kids++;
        cJSON_Delete(req);
    }
    pthread_mutex_unlock(&S.mu);
    /* the second prompt shows the first one's refusal and child; the third both refusals and
     * both children */
    CHECKF(nb == 3, "the guide was asked %d times", nb);
    CHECKF(with_rej == 2 && with_dup == 1, "prompts with rejects %d, duplicates %d of %d",
           with_rej, with_dup, nb);
    CHECKF(with_kids == 1, "prompts showing the root's children: %d of %d", with_kids, nb);
    mct_guide_destroy(g);
    g = NULL;

    /* the node keeps its latest MCT_GUIDE_MAX_REJECT refusals: 7 at the first expansion, 7
     * more at the second (which falls back), so the third prompt shows the last 8, oldest
     * first */
    char *many = chat("```json\n[[\"tile(q1, 4)\"], [\"tile(q2, 4)\"], [\"tile(q3, 4)\"], "
                      "[\"tile(q4, 4)\"], [\"tile(q5, 4)\"], [\"tile(q6, 4)\"], "
                      "[\"tile(q7, 4)\"], [\"tile(j, 8)\"]]\n```", 10, 10);
    srv_script(1, (act_t[]){{200, many, NULL, 0, 0, -1}});
    free(many);
    CHECKF(mct_guide_llm_create(&lo, &g, err, sizeof err) == 0, "%s", err);
    so.guide = g;
    so.branching = 8;
    so.budget = 9;          /* so that the root asks for 8 */
    so.on_sample = NULL;
    r = g ? mct_search_run(&w, &so, &st, err, sizeof err) : -1;
    CHECKF(r == 0 && st.samples == 9 && st.invalid >= 14 && st.fallbacks >= 2,
           "search: %d '%s' samples %d invalid %d fallbacks %d", r, err, st.samples, st.invalid,
           st.fallbacks);
    pthread_mutex_lock(&S.mu);
    nb = S.nbodies;
    int entries = -1;
    const char *oldest = NULL;
    char first[32] = "";
    if (nb >= 3) {
        cJSON *req = cJSON_Parse(S.bodies[2]);
        cJSON *u = cJSON_GetArrayItem(cJSON_GetObjectItem(req, "messages"), 1);
        cJSON *ct = cJSON_GetObjectItem(u, "content");
        const char *pr = cJSON_IsString(ct) ? ct->valuestring : "";
        const char *rs = strstr(pr, "### Proposals rejected at the current program");
        const char *end = rs ? strstr(rs, "\n\n") : NULL;
        entries = 0;
        for (const char *q = rs; q && end && (q = strstr(q, "\n- ")) && q < end; q++)
            if (!entries++)
                oldest = q + 3;
        if (oldest)
            snprintf(first, sizeof first, "%.11s", oldest);
        cJSON_Delete(req);
    }
    pthread_mutex_unlock(&S.mu);
    CHECKF(nb >= 3 && entries == MCT_GUIDE_MAX_REJECT && !strcmp(first, "tile(q7, 4)"),
           "prompts %d; the third lists %d refusals, the oldest '%s'", nb, entries, first);
    mct_guide_destroy(g);
    mct_meas_destroy(m);
}

static void expect_parse(const char *reply, int max, int n_want, const char *first,
                         const char *last, const char *err_has)
{
    char *out[16] = {0}, err[512];
    int n = mct_guide_parse_reply(reply, out, max, err, sizeof err);
    if (n_want < 0) {
        CHECKF(n < 0, "parse of '%.60s' gave %d, wanted an error", reply ? reply : "(null)", n);
        CHECKF(err_has == NULL || strstr(err, err_has), "error '%s' lacks '%s'", err,
               err_has ? err_has : "");
        if (n > 0)
            free_out(out, n);
        return;
    }
    CHECKF(n == n_want, "parse of '%.60s' gave %d (%s), wanted %d", reply, n, n < 0 ? err : "",
           n_want);
    if (n > 0) {
        CHECKF(!first || !strcmp(out[0], first), "first '%s', wanted '%s'", out[0], first);
        CHECKF(!last || !strcmp(out[n - 1], last), "last '%s', wanted '%s'", out[n - 1], last);
        free_out(out, n);
    }
}

static void test_parse(void)
{
    /* good, fenced, items are lists */
    expect_parse("```json\n[[\"tile(j, 64, 16)\", \"vectorize(j2)\"], [\"parallel(i0)\"]]\n```",
                 4, 2, "tile(j, 64, 16); vectorize(j2)", "parallel(i0)", NULL);
    /* wrapped in prose, several fenced blocks: the last json one wins */
    expect_parse("Step 1: the parent was faster.\n```python\nx = [1, 2]\n```\nA first idea:\n"
                 "```json\n[[\"unroll(i2, 4)\"]]\n```\nOn reflection:\n```JSON\n"
                 "[\"tile(k, 32)\", [\"parallel(i0)\", \"unroll(i2, 2)\"]]\n```\nThat is all.",
                 4, 2, "tile(k, 32)", "parallel(i0); unroll(i2, 2)", NULL);
    /* a bare array in prose; the last top-level one with the right shape */
    expect_parse("I compared them [see above]. Answer: [[\"parallel(j0)\"]] and done", 4, 1,
                 "parallel(j0)", NULL, NULL);
    expect_parse("[\"a(1)\"] then finally [[\"parallel(i0)\"], \"unroll(i2, 4)\"]", 4, 2,
                 "parallel(i0)", "unroll(i2, 4)", NULL);
    /* an untagged fenced block holding a list */
    expect_parse("```\n[\"parallel(i0)\"]\n```", 4, 1, "parallel(i0)", NULL, NULL);
    /* {"proposals": [...]} */
    expect_parse("```json\n{\"proposals\": [[\"parallel(i0)\"]]}\n```", 4, 1, "parallel(i0)",
                 NULL, NULL);
    /* max caps the count; duplicates and empty items dropped; bad items skipped */
    expect_parse("```json\n[\"a(1)\", \"b(2)\", \"c(3)\"]\n```", 2, 2, "a(1)", "b(2)", NULL);
    expect_parse("```json\n[\"a(1)\", \" a(1) \", [], \"\", 5, {\"x\": 1}, [\"b(2)\", 3], "
                 "\"c(3)\"]\n```", 8, 2, "a(1)", "c(3)", NULL);
    /* rejections with reasons */
    expect_parse(NULL, 4, -1, NULL, NULL, "empty reply");
    expect_parse("", 4, -1, NULL, NULL, "empty reply");
    expect_parse(" \n\t ", 4, -1, NULL, NULL, "empty reply");
    expect_parse("```json\n[[\"tile(i, 32)\", \"vecto", 4, -1, NULL, NULL, "truncated");
    expect_parse("Thinking...\n```json\n[[\"tile(i, 32)\"],\n```", 4, -1, NULL, NULL,
                 "truncated");
    expect_parse("I would tile the i loop by 32 and vectorize j.", 4, -1, NULL, NULL,
                 "no ```json block");
    expect_parse("```json\n{not json at all}\n```", 4, -1, NULL, NULL, "not valid JSON");
    expect_parse("```json\n\n```", 4, -1, NULL, NULL, "empty");
    expect_parse("```json\n[]\n```", 4, -1, NULL, NULL, "empty");
    expect_parse("```json\n\"tile(i, 32)\"\n```", 4, -1, NULL, NULL, "a string; expected a list");
    expect_parse("```json\n[1, 2, {\"a\": 1}]\n```", 4, -1, NULL, NULL, "item 1 is a number");
    expect_parse("```json\n[[\"tile(i, 32)\", [\"nested\"]]]\n```", 4, -1, NULL, NULL,
                 "element 2 is a list");
    expect_parse("answer: [[\"tile(i, 32)\"", 4, -1, NULL, NULL, "no complete JSON list");
    expect_parse("```json\n[\"a\"]\n```", 0, -1, NULL, NULL, "at least 1");
    /* deep nesting and a huge item do not crash and are refused */
    char *deep = malloc(20000);
    for (int i = 0; i < 9000; i++)
        deep[i] = '[';
    deep[9000] = 0;
    expect_parse(deep, 4, -1, NULL, NULL, NULL);
    size_t big = 10000;
    char *huge = malloc(big + 32);
    strcpy(huge, "[\"");
    memset(huge + 2, 'x', big);
    strcpy(huge + 2 + big, "\"]");
    expect_parse(huge, 4, -1, NULL, NULL, "limit");
    free(deep);
    free(huge);
}

/* Parsed proposals that are not legal transformations: the parse accepts them as data, then
 * mct_sched_apply refuses each with its reason and leaves the schedule unchanged. */
static void test_illegal(void)
{
    const char *reply =
        "Let me reason.\n```json\n[[\"exec(\\\"rm -rf /\\\")\"], [\"system(ls)\"], "
        "[\"tile(q, 4)\"], [\"vectorize(i2)\"], [\"unroll(i2, 1000)\"], [\"tile(j, 2000000)\"], "
        "[\"prefetch(A, k1, 65)\"], [\"tile(i, 0)\"], [\"parallel(k0)\"], "
        "[\"tile(j, 64, 16)\", \"vectorize(j2)\"]]\n```";
    struct { int code; const char *why; } want[] = {
        {MCT_EINVAL, "exec"}, {MCT_EINVAL, "not a transformation"},
        {MCT_ENOTAPPLIC, "no axis named 'q'"}, {MCT_ENOTAPPLIC, "innermost"},
        {MCT_ENOTAPPLIC, "out of range"}, {MCT_ENOTAPPLIC, "out of range"},
        {MCT_ENOTAPPLIC, "out of range"}, {MCT_ENOTAPPLIC, "out of range"},
        {MCT_ENOTAPPLIC, "reduction"}, {0, ""},
    };
    char *out[16], err[256];
    int n = mct_guide_parse_reply(reply, out, 16, err, sizeof err);
    CHECKF(n == 10, "parse gave %d: %s", n, n < 0 ? err : "");
    char before[4096], after[4096];
    mct_sched_format(S_node, before, sizeof before);
    for (int i = 0; i < n && i < 10; i++) {
        mct_sched *s;
        char why[256] = "";
        CHECK(mct_sched_clone(S_node, &s) == 0);
        int r = mct_sched_apply(s, out[i], why, sizeof why);
        CHECKF(r == want[i].code && strstr(why, want[i].why),
               "apply '%s': %d '%s', wanted %d '%s'", out[i], r, why, want[i].code,
               want[i].why);
        if (r) {
            mct_sched_format(s, after, sizeof after);
            CHECK(!strcmp(before, after));
        }
        mct_sched_destroy(s);
    }
    free_out(out, n);
}

static void test_http_good(void)
{
    char *body = chat("Comparing the grandparent and parent: tiling helped.\n"
                      "```json\n[[\"vectorize(j2)\"], [\"parallel(i0)\", \"unroll(i2, 4)\"]]\n"
                      "```\nThese should help.", 1234, 56);
    srv_script(1, (act_t[]){{200, body, NULL, 0, 0, 1}});
    free(body);
    mct_llm_opts o = opts_base();
    char *out[4], err[512] = "";
    int n = 0;
    mct_guide_stats st;
    int r = propose_once(&o, 11, out, &n, err, sizeof err, &st);
    CHECKF(r == 0 && n == 2, "good reply: r=%d n=%d %s", r, n, err);
    if (r == 0 && n == 2) {
        CHECK(!strcmp(out[0], "vectorize(j2)"));
        CHECK(!strcmp(out[1], "parallel(i0); unroll(i2, 4)"));
        for (int i = 0; i < 2; i++) {   /* both apply to the current program */
            mct_sched *s;
            char why[256];
            CHECK(mct_sched_clone(S_node, &s) == 0);
            CHECKF(mct_sched_apply(s, out[i], why, sizeof why) == 0, "%s: %s", out[i], why);
            mct_sched_destroy(s);
        }
        free_out(out, n);
    }
    CHECK(srv_requests() == 1);
    CHECK(st.calls == 1 && st.proposals == 2 && st.failures == 0 && st.retries == 0);
    CHECK(st.prompt_tokens == 1234 && st.completion_tokens == 56);
    /* the request: Bearer key, model, messages with the prompt, temperature */
    pthread_mutex_lock(&S.mu);
    CHECKF(S.saw_auth && !strcmp(S.auth, "Bearer " KEY), "auth '%s'", S.auth);
    cJSON *req = cJSON_Parse(S.last_body ? S.last_body : "");
    pthread_mutex_unlock(&S.mu);
    CHECK(req != NULL);
    if (req) {
        cJSON *m = cJSON_GetObjectItem(req, "model");
        CHECK(cJSON_IsString(m) && !strcmp(m->valuestring, "test-model"));
        cJSON *msgs = cJSON_GetObjectItem(req, "messages");
        CHECK(cJSON_GetArraySize(msgs) == 2);
        cJSON *u = cJSON_GetArrayItem(msgs, 1);
        cJSON *role = cJSON_GetObjectItem(u, "role"), *ct = cJSON_GetObjectItem(u, "content");
        CHECK(cJSON_IsString(role) && !strcmp(role->valuestring, "user"));
        CHECK(cJSON_IsString(ct) && strstr(ct->valuestring, "### Current program") &&
              strstr(ct->valuestring, "prefetch(A|B|C, L, DIST)"));
        cJSON *t = cJSON_GetObjectItem(req, "temperature");
        CHECK(cJSON_IsNumber(t) && t->valuedouble > 0.19 && t->valuedouble < 0.21);
        cJSON_Delete(req);
    }
}

/* Replies the parser refuses: each an error with a reason, counted as a failure. */
static void test_http_bad_replies(void)
{
    struct { char *body; const char *err_has; } cases[] = {
        {chat("", 10, 0), "empty content"},
        {chat("Thinking hard...\n```json\n[[\"tile(i, 32)\", \"vectorize(", 10, 10), "truncated"},
        {chat("I recommend tiling i by 32.", 10, 10), "no ```json block"},
        {strdup("<html><body>502 Bad Gateway</body></html>"), "not JSON"},
        {strdup("{\"object\": \"list\", \"data\": []}"), "no choices[0].message"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        srv_script(1, (act_t[]){{200, cases[i].body, NULL, 0, 0, 1}});
        free(cases[i].body);
        mct_llm_opts o = opts_base();
        char *out[4], err[512] = "";
        int n = -1;
        mct_guide_stats st;
        int r = propose_once(&o, 20 + (int)i, out, &n, err, sizeof err, &st);
        CHECKF(r < 0 && n == 0 && strstr(err, cases[i].err_has), "case %zu: r=%d n=%d '%s'", i,
               r, n, err);
        CHECK(st.failures == 1 && st.proposals == 0 && srv_requests() == 1);
    }
}

/* A port on 127.0.0.1 with nothing listening (the port of a socket bound, then closed). */
static int dead_port(void)
{
    int tmp = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    bind(tmp, (struct sockaddr *)&a, sizeof a);
    getsockname(tmp, (struct sockaddr *)&a, &al);
    close(tmp);
    return ntohs(a.sin_port);
}

static void test_http_retries(void)
{
    char *ok = chat("```json\n[[\"parallel(i0)\"]]\n```", 100, 20);
    mct_llm_opts o = opts_base();
    char *out[4], err[512];
    int n, r;
    mct_guide_stats st;

    /* 429 with Retry-After: 2 (longer than any first backoff), then success: one retry, the
     * delay honoured */
    srv_script(2, (act_t[]){{429, "{\"error\": {\"message\": \"rate limited\"}}",
                             "Retry-After: 2\r\n", 0, 0, 1},
                            {200, ok, NULL, 0, 0, 1}});
    o.max_retries = 3;
    double t0 = now_s();
    r = propose_once(&o, 30, out, &n, err, sizeof err, &st);
    double dt = now_s() - t0;
    CHECKF(r == 0 && n == 1, "429 then ok: %d %s", r, err);
    if (r == 0)
        free_out(out, n);
    CHECK(st.retries == 1 && srv_requests() == 2);
    CHECKF(dt >= 1.9, "Retry-After 2 s not honoured: %.2f s", dt);

    /* 500 then success */
    srv_script(2, (act_t[]){{500, "{\"error\": \"boom\"}", NULL, 0, 0, 1},
                            {200, ok, NULL, 0, 0, 1}});
    o.max_retries = 2;
    r = propose_once(&o, 31, out, &n, err, sizeof err, &st);
    CHECKF(r == 0 && n == 1, "500 then ok: %d %s", r, err);
    if (r == 0)
        free_out(out, n);
    CHECK(st.retries == 1 && srv_requests() == 2);

    /* 500 forever: an error after max_retries retries */
    srv_script(1, (act_t[]){{503, "{\"error\": \"overloaded\"}", NULL, 0, 0, -1}});
    o.max_retries = 2;
    r = propose_once(&o, 32, out, &n, err, sizeof err, &st);
    CHECKF(r == MCT_ENET && n == 0 && strstr(err, "after 3 attempts") && strstr(err, "HTTP 503"),
           "503 forever: %d '%s'", r, err);
    CHECK(st.retries == 2 && srv_requests() == 3 && st.failures == 1);
    CHECK(!st.stopped);   /* transient: the next call asks again */

    /* 5xx without Retry-After: the documented backoff (1 s then 2 s, each drawn in [d/2, d)),
     * never an immediate retry */
    srv_script(1, (act_t[]){{502, "{\"error\": \"bad gateway\"}", NULL, 0, 0, -1}});
    o.max_retries = 2;
    t0 = now_s();
    r = propose_once(&o, 39, out, &n, err, sizeof err, &st);
    dt = now_s() - t0;
    CHECKF(r == MCT_ENET && st.retries == 2 && srv_requests() == 3, "502: %d '%s'", r, err);
    CHECKF(st.retry_wait_s >= 1.5 && st.retry_wait_s < 3.0, "502 backoff: waited %.2f s",
           st.retry_wait_s);
    CHECKF(dt >= 1.4, "502: the backoff was not slept: %.2f s", dt);

    /* Retry-After: 0 is the server's own answer: honoured (no wait) */
    srv_script(2, (act_t[]){{503, "{}", "Retry-After: 0\r\n", 0, 0, 1},
                            {200, ok, NULL, 0, 0, 1}});
    o.max_retries = 1;
    r = propose_once(&o, 40, out, &n, err, sizeof err, &st);
    CHECKF(r == 0 && n == 1 && st.retries == 1 && st.retry_wait_s == 0, "RA 0: %d '%s' %.2f",
           r, err, st.retry_wait_s);
    if (r == 0)
        free_out(out, n);

    /* a slow reply past the request timeout */
    srv_script(1, (act_t[]){{200, ok, NULL, 4000, 0, 1}});
    o.max_retries = -1;
    o.request_timeout_s = 1;
    t0 = now_s();
    r = propose_once(&o, 33, out, &n, err, sizeof err, &st);
    dt = now_s() - t0;
    CHECKF(r == MCT_ETIMEOUT && strstr(err, "timeout"), "slow: %d '%s'", r, err);
    CHECKF(dt < 3.5, "the request timeout of 1 s was not enforced: %.2f s", dt);
    CHECK(srv_requests() == 1 && st.retries == 0);

    /* a slow reply, then a prompt one: a timeout is retried */
    srv_script(2, (act_t[]){{200, ok, NULL, 4000, 0, 1}, {200, ok, NULL, 0, 0, 1}});
    o.max_retries = 1;
    r = propose_once(&o, 34, out, &n, err, sizeof err, &st);
    CHECKF(r == 0 && n == 1, "slow then ok: %d '%s'", r, err);
    if (r == 0)
        free_out(out, n);
    CHECK(st.retries == 1 && srv_requests() == 2);
    o.request_timeout_s = 5;

    /* a dropped connection (closed without a response), then success */
    srv_script(2, (act_t[]){{0, NULL, NULL, 0, 1, 1}, {200, ok, NULL, 0, 0, 1}});
    o.max_retries = 1;
    r = propose_once(&o, 35, out, &n, err, sizeof err, &st);
    CHECKF(r == 0 && n == 1, "drop then ok: %d '%s'", r, err);
    if (r == 0)
        free_out(out, n);
    CHECK(st.retries == 1 && srv_requests() == 2);

    /* dropped, no retries allowed: an error naming the server */
    srv_script(1, (act_t[]){{0, NULL, NULL, 0, 1, -1}});
    o.max_retries = -1;
    r = propose_once(&o, 36, out, &n, err, sizeof err, &st);
    CHECKF(r == MCT_ENET && strstr(err, "127.0.0.1"), "drop: %d '%s'", r, err);
    CHECK(srv_requests() == 1);

    /* 401 whose body echoes the Authorization header: not retried, the key scrubbed */
    srv_script(1, (act_t[]){{401, "{\"error\": {\"message\": \"bad key: Authorization: Bearer "
                             KEY "\"}}", NULL, 0, 0, -1}});
    o.max_retries = 3;
    r = propose_once(&o, 37, out, &n, err, sizeof err, &st);
    CHECKF(r == MCT_ENET && strstr(err, "HTTP 401") && strstr(err, "API key") &&
           !strstr(err, KEY) && !strstr(err, "FAKEKEY"), "401: %d '%s'", r, err);
    CHECK(srv_requests() == 1 && st.retries == 0);

    /* a server that is not there: refused at once (port of a closed socket) */
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1", dead_port());
    o.base_url = url;
    r = propose_once(&o, 38, out, &n, err, sizeof err, &st);
    CHECKF(r == MCT_ENET && strstr(err, "is the server running"), "refused: %d '%s'", r, err);
    free(ok);
}

/* Errors no retry can fix stop the guide: one request, the reason kept in the stats, and every
 * later call answered at once from it (no second request). */
static void expect_stop(const mct_llm_opts *o, int visits, int want_requests, const char *what,
                        const char *needle1, const char *needle2)
{
    mct_guide *g = NULL;
    mct_guide_node nd;
    char err[512], *out[4];
    int n;
    if (mct_guide_llm_create(o, &g, err, sizeof err)) {
        CHECKF(0, "%s: create: %s", what, err);
        return;
    }
    mct_guide_ctx c = ctx_v(visits, &nd);
    int r = mct_guide_propose(g, &c, out, &n, err, sizeof err);
    note_err(err);
    mct_guide_stats st;
    mct_guide_get_stats(g, &st);
    CHECKF(r == MCT_ENET && n == 0 && st.stopped && st.stop_code == MCT_ENET &&
           st.stop_call == 1 && st.retries == 0 && strstr(st.stop_reason, needle1) &&
           strstr(st.stop_reason, needle2), "%s: %d stopped %d '%s'", what, r, st.stopped,
           st.stop_reason);
    CHECKF(srv_requests() == want_requests, "%s: %d requests", what, srv_requests());
    c = ctx_v(visits + 1, &nd);
    r = mct_guide_propose(g, &c, out, &n, err, sizeof err);
    note_err(err);
    mct_guide_get_stats(g, &st);
    CHECKF(r == MCT_ENET && n == 0 && strstr(err, "stopped") && strstr(err, needle1) &&
           st.calls == 2 && st.failures == 2 && st.proposals == 0, "%s again: %d '%s'", what, r,
           err);
    CHECKF(srv_requests() == want_requests, "%s: asked again after the stop", what);
    CHECK(!strstr(st.stop_reason, KEY) && !strstr(st.stop_reason, "FAKEKEY"));
    mct_guide_destroy(g);
}

static void test_http_fatal(void)
{
    mct_llm_opts o = opts_base();
    o.max_retries = 3;
    srv_script(1, (act_t[]){{401, "{\"error\": \"invalid key Bearer " KEY "\"}", NULL, 0, 0,
                             -1}});
    expect_stop(&o, 60, 1, "401", "HTTP 401", "API key");
    srv_script(1, (act_t[]){{403, "{\"error\": \"forbidden\"}", NULL, 0, 0, -1}});
    expect_stop(&o, 62, 1, "403", "HTTP 403", "check the API key (it came from the caller's");
    srv_script(1, (act_t[]){{404, "{\"error\": \"no route\"}", NULL, 0, 0, -1}});
    expect_stop(&o, 64, 1, "404", "HTTP 404", "base URL");
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1", dead_port());
    o.base_url = url;
    srv_script(0, NULL);
    expect_stop(&o, 66, 0, "refused", url, "is the server running");
}

/* `mctune tune` without --verbose: a refused key and a server not running are printed once,
 * naming the key's variable or the URL, never the key; the summary says the LLM was not used. */
static void test_tune_cli(const char *dir)
{
    const char *bin = getenv("MCTUNE") ? getenv("MCTUNE") : "build/mctune";
    static char out[1 << 16];
    srv_script(1, (act_t[]){{401, "{\"error\": \"bad key " KEY "\"}", NULL, 0, 0, -1}});
    int rc = check_sh(out, sizeof out, "MCTUNE_LLM_API_KEY=%s %s tune --db %s/tdb1 --workload "
                      "'matmul f32 nn M=8 N=16 K=16 epi=none' --budget 4 --min-time 0.01 "
                      "--guide llm --llm-url http://127.0.0.1:%d/v1 --llm-model m 2>&1",
                      KEY, bin, dir, S.port);
    CHECKF(rc == 0 && strstr(out, "done: 1 tuned"), "tune 401: rc %d: %.3000s", rc, out);
    const char *m = strstr(out, "the llm guide is stopped");
    CHECKF(m && strstr(m, "HTTP 401") && strstr(m, "it came from MCTUNE_LLM_API_KEY") &&
           !strstr(m + 1, "the llm guide is stopped"), "tune 401 message: %.3000s", out);
    CHECKF(strstr(out, "the LLM was not used"), "tune 401 summary: %.3000s", out);
    CHECK(!strstr(out, KEY) && !strstr(out, "FAKEKEY"));
    CHECKF(srv_requests() == 1, "tune 401: %d requests", srv_requests());

    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1", dead_port());
    rc = check_sh(out, sizeof out, "OPENAI_API_KEY=%s %s tune --db %s/tdb2 --workload "
                  "'matmul f32 nn M=8 N=16 K=16 epi=none' --budget 4 --min-time 0.01 "
                  "--llm-url %s --llm-model m 2>&1", KEY, bin, dir, url);
    m = strstr(out, "the llm guide is stopped");
    CHECKF(rc == 0 && m && strstr(m, url) && strstr(m, "is the server running") &&
           strstr(m, "--llm-url") && strstr(out, "the LLM was not used"),
           "tune refused: rc %d: %.3000s", rc, out);
    CHECK(!strstr(out, KEY) && !strstr(out, "FAKEKEY"));
}

static int file_has(const char *path, const char *needle)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    size_t cap = 1 << 20, n = 0, nl = strlen(needle);
    char *b = malloc(cap);
    size_t k;
    while ((k = fread(b + n, 1, cap - n, f)) > 0) {
        n += k;
        if (n == cap) {
            cap *= 2;
            b = realloc(b, cap);
        }
    }
    fclose(f);
    int hit = 0;
    for (size_t i = 0; i + nl <= n && !hit; i++)
        hit = !memcmp(b + i, needle, nl);
    free(b);
    return hit;
}

/* Three proposes on g with distinct prompts (visits v0, v0 + 1, v0 + 2): the first two are
 * answered, the third is refused with MCT_EBUSY and an error naming the cap. */
static void three_calls_to_cap(mct_guide *g, int v0, const char *cap)
{
    char err[512], *out[4];
    int n;
    mct_guide_node nd;
    for (int i = 0; i < 3; i++) {
        mct_guide_ctx c = ctx_v(v0 + i, &nd);
        int r = mct_guide_propose(g, &c, out, &n, err, sizeof err);
        note_err(err);
        if (r == 0)
            free_out(out, n);
        CHECKF(i < 2 ? r == 0 : (r == MCT_EBUSY && strstr(err, cap)), "call %d: %d %s", i, r,
               err);
    }
}

static void test_cache_caps_env(const char *dir)
{
    char path[512], err[512], *out[4];
    int n, r;
    snprintf(path, sizeof path, "%s/db", dir);
    mct_db *db = NULL;
    CHECKF(mct_db_open(path, MCT_DB_NOSYNC, err, sizeof err, &db) == 0, "%s", err);
    if (!db)
        return;
    /* the reply carries the key (a server echoing it): scrubbed before it is cached or used */
    char *body = chat("Your key is " KEY ".\n```json\n[[\"parallel(i0)\", \"unroll(i2, 4)\"]]\n"
                      "```", 500, 50);
    srv_script(1, (act_t[]){{200, body, NULL, 0, 0, -1}});
    free(body);
    mct_llm_opts o = opts_base();
    o.cache = db;
    mct_guide *g;
    CHECK(mct_guide_llm_create(&o, &g, err, sizeof err) == 0);
    mct_guide_node nd;
    mct_guide_ctx c = ctx_v(40, &nd);
    r = mct_guide_propose(g, &c, out, &n, err, sizeof err);
    CHECKF(r == 0 && n == 1, "cache first: %d %s", r, err);
    char first[256] = "";
    if (r == 0) {
        snprintf(first, sizeof first, "%s", out[0]);
        CHECK(!strstr(out[0], KEY));
        free_out(out, n);
    }
    CHECK(srv_requests() == 1);
    /* the same prompt again: from the database, no request */
    r = mct_guide_propose(g, &c, out, &n, err, sizeof err);
    CHECKF(r == 0 && n == 1 && !strcmp(out[0], first), "cache second: %d %s", r, err);
    if (r == 0)
        free_out(out, n);
    mct_guide_stats st;
    mct_guide_get_stats(g, &st);
    CHECK(srv_requests() == 1 && st.cache_hits == 1 && st.calls == 2);
    mct_guide_destroy(g);
    /* a rerun (a new guide on the same database) is free too */
    r = propose_once(&o, 40, out, &n, err, sizeof err, &st);
    CHECK(r == 0 && n == 1 && st.cache_hits == 1 && srv_requests() == 1);
    if (r == 0)
        free_out(out, n);
    /* another model name or temperature is another key */
    o.temperature = 0.7;
    r = propose_once(&o, 40, out, &n, err, sizeof err, &st);
    CHECK(r == 0 && st.cache_hits == 0 && srv_requests() == 2);
    if (r == 0)
        free_out(out, n);
    o.temperature = 0.2;
    mct_db_stats ds;
    CHECK(mct_db_stats_get(db, &ds) == 0 && ds.llm == 2);
    mct_db_close(db);
    /* the key is nowhere in the database file */
    snprintf(path, sizeof path, "%s/db/data.mdb", dir);
    CHECK(file_has(path, "parallel(i0)") == 1);   /* the scan does see what was stored */
    CHECK(file_has(path, KEY) == 0);
    CHECK(file_has(path, "FAKEKEY") == 0);

    /* caps: calls */
    char *ok = chat("```json\n[[\"parallel(i0)\"]]\n```", 100, 20);
    srv_script(1, (act_t[]){{200, ok, NULL, 0, 0, -1}});
    o = opts_base();
    o.max_calls = 2;
    CHECK(mct_guide_llm_create(&o, &g, err, sizeof err) == 0);
    three_calls_to_cap(g, 50, "call cap");
    CHECK(srv_requests() == 2);
    mct_guide_destroy(g);
    /* caps: tokens (120 a reply; the third call is over 150) */
    srv_script(1, (act_t[]){{200, ok, NULL, 0, 0, -1}});
    o.max_calls = 0;
    o.max_tokens = 150;
    CHECK(mct_guide_llm_create(&o, &g, err, sizeof err) == 0);
    three_calls_to_cap(g, 60, "token cap");
    mct_guide_get_stats(g, &st);
    CHECK(srv_requests() == 2 && st.prompt_tokens == 200 && st.completion_tokens == 40);
    CHECK(st.calls == 3 && st.failures == 1 && st.proposals == 2);
    mct_guide_destroy(g);

    /* the environment: URL, model and OPENAI_API_KEY when MCTUNE_LLM_API_KEY is unset */
    char url[64];
    url_of(url, sizeof url);
    setenv("MCTUNE_LLM_URL", url, 1);
    setenv("MCTUNE_LLM_MODEL", "env-model", 1);
    setenv("OPENAI_API_KEY", KEY2, 1);
    srv_script(1, (act_t[]){{200, ok, NULL, 0, 0, -1}});
    mct_llm_opts e = {.max_retries = -1, .request_timeout_s = 5};
    r = propose_once(&e, 70, out, &n, err, sizeof err, &st);
    CHECKF(r == 0 && n == 1, "env: %d %s", r, err);
    if (r == 0)
        free_out(out, n);
    pthread_mutex_lock(&S.mu);
    CHECKF(S.saw_auth && !strcmp(S.auth, "Bearer " KEY2), "env auth '%s'", S.auth);
    CHECK(S.last_body && strstr(S.last_body, "\"env-model\""));
    pthread_mutex_unlock(&S.mu);
    /* no key at all: no Authorization header */
    unsetenv("OPENAI_API_KEY");
    r = propose_once(&e, 71, out, &n, err, sizeof err, &st);
    CHECK(r == 0 && n == 1);
    if (r == 0)
        free_out(out, n);
    pthread_mutex_lock(&S.mu);
    CHECK(!S.saw_auth);
    pthread_mutex_unlock(&S.mu);
    unsetenv("MCTUNE_LLM_URL");
    unsetenv("MCTUNE_LLM_MODEL");
    free(ok);

    /* create refuses bad settings with a message naming them */
    o = opts_base();
    o.base_url = "ftp://example.com/v1";
    CHECK(mct_guide_llm_create(&o, &g, err, sizeof err) == MCT_EINVAL && strstr(err, "ftp://"));
    o = opts_base();
    o.model = NULL;
    CHECK(mct_guide_llm_create(&o, &g, err, sizeof err) == MCT_EINVAL &&
          strstr(err, "MCTUNE_LLM_MODEL"));
    note_err(err);
}

/* --verbose logs requests to stderr: never the key, even when the server echoes it */
static void test_verbose_log(const char *dir)
{
    char path[512], err[512], *out[4];
    int n, r;
    mct_guide_stats st;
    snprintf(path, sizeof path, "%s/verbose.log", dir);
    fflush(stderr);
    int saved = dup(2);
    FILE *f = fopen(path, "w");
    if (saved < 0 || !f) {
        CHECK(0);
        return;
    }
    dup2(fileno(f), 2);
    char *body = chat("key " KEY "\n```json\n[[\"parallel(i0)\"]]\n```", 10, 10);
    srv_script(3, (act_t[]){{500, "{\"error\": \"echo Bearer " KEY "\"}", NULL, 0, 0, 1},
                            {200, body, NULL, 0, 0, 1},
                            {401, "{\"error\": \"Authorization: Bearer " KEY "\"}", NULL, 0, 0,
                             1}});
    free(body);
    mct_llm_opts o = opts_base();
    o.verbose = 1;
    o.max_retries = 1;
    r = propose_once(&o, 98, out, &n, err, sizeof err, &st);
    if (r == 0)
        free_out(out, n);
    CHECK(r == 0 && st.retries == 1);
    r = propose_once(&o, 99, out, &n, err, sizeof err, &st);
    CHECK(r == MCT_ENET);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    fclose(f);
    CHECK(file_has(path, "POST http://127.0.0.1") == 1 && file_has(path, "HTTP 500") == 1);
    CHECK(file_has(path, KEY) == 0 && file_has(path, "FAKEKEY") == 0);
}

static int write_script(const char *dir, const char *name, const char *text, char *cmd,
                        size_t len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fputs(text, f);
    fclose(f);
    snprintf(cmd, len, "sh '%s' '%s'", path, dir);
    return 0;
}

static int count_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    int n = 0, ch;
    while ((ch = fgetc(f)) != EOF)
        n += ch == '\n';
    fclose(f);
    return n;
}

/* 1 when the process is gone (or a zombie waiting for its reaper). */
static int proc_gone(pid_t pid)
{
    char p[64], st[256] = "";
    snprintf(p, sizeof p, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(p, "r");
    if (!f)
        return 1;
    size_t k = fread(st, 1, sizeof st - 1, f);
    fclose(f);
    st[k] = 0;
    char *rp = strrchr(st, ')');
    return rp && rp[1] == ' ' && (rp[2] == 'Z' || rp[2] == 'X');
}

static void test_cmd(const char *dir)
{
    char cmd[1024], err[512], path[512], *out[4];
    int n, r;
    mct_guide *g;
    mct_guide_node nd;
    mct_guide_ctx c;
    mct_guide_stats st;

    CHECK(mct_guide_llmcmd_create(&(mct_llm_opts){0}, &g, err, sizeof err) == MCT_EINVAL &&
          strstr(err, "command"));

    /* a command that reads the prompt and echoes a reply; cached by "cmd:" + command */
    write_script(dir, "echo.sh",
                 "cat > \"$1/prompt.txt\"\necho run >> \"$1/count\"\n"
                 "printf 'I compared them.\\n```json\\n[[\"parallel(i0)\"], [\"unroll(i2, 4)\"]]"
                 "\\n```\\n'\n", cmd, sizeof cmd);
    snprintf(path, sizeof path, "%s/cdb", dir);
    mct_db *db = NULL;
    CHECKF(mct_db_open(path, MCT_DB_NOSYNC, err, sizeof err, &db) == 0, "%s", err);
    mct_llm_opts o = {.cmd = cmd, .request_timeout_s = 10, .cache = db};
    CHECK(mct_guide_llmcmd_create(&o, &g, err, sizeof err) == 0);
    CHECK(!strcmp(mct_guide_name(g), "llm-cmd"));
    c = ctx_v(80, &nd);
    r = mct_guide_propose(g, &c, out, &n, err, sizeof err);
    CHECKF(r == 0 && n == 2, "cmd echo: %d %s", r, err);
    if (r == 0) {
        CHECK(!strcmp(out[0], "parallel(i0)") && !strcmp(out[1], "unroll(i2, 4)"));
        free_out(out, n);
    }
    snprintf(path, sizeof path, "%s/prompt.txt", dir);
    CHECK(file_has(path, "### Current program") == 1 && file_has(path, "```json") == 1);
    r = mct_guide_propose(g, &c, out, &n, err, sizeof err);
    CHECK(r == 0 && n == 2);
    if (r == 0)
        free_out(out, n);
    mct_guide_get_stats(g, &st);
    snprintf(path, sizeof path, "%s/count", dir);
    CHECK(count_lines(path) == 1 && st.cache_hits == 1);
    mct_guide_destroy(g);
    if (db)
        mct_db_close(db);

    /* a command that ignores its stdin (the tuner must not die of SIGPIPE) */
    snprintf(cmd, sizeof cmd, "printf '[[\"parallel(i0)\"]]'");
    o = (mct_llm_opts){.cmd = cmd, .request_timeout_s = 10};
    CHECK(mct_guide_llmcmd_create(&o, &g, err, sizeof err) == 0);
    for (int i = 0; i < 3; i++) {
        c = ctx_v(90 + i, &nd);
        r = mct_guide_propose(g, &c, out, &n, err, sizeof err);
        CHECKF(r == 0 && n == 1, "no stdin: %d %s", r, err);
        if (r == 0)
            free_out(out, n);
    }
    mct_guide_destroy(g);

    /* exit 1: an error with the status and the command's stderr */
    write_script(dir, "fail.sh", "cat > /dev/null\necho 'model not found' >&2\nexit 1\n", cmd,
                 sizeof cmd);
    o = (mct_llm_opts){.cmd = cmd, .request_timeout_s = 10};
    CHECK(mct_guide_llmcmd_create(&o, &g, err, sizeof err) == 0);
    c = ctx_v(95, &nd);
    r = mct_guide_propose(g, &c, out, &n, err, sizeof err);
    note_err(err);
    CHECKF(r == MCT_EIO && n == 0 && strstr(err, "exit status 1") &&
           strstr(err, "model not found"), "cmd exit 1: %d '%s'", r, err);
    mct_guide_get_stats(g, &st);
    CHECK(!st.stopped);   /* a failing command may answer the next prompt */
    mct_guide_destroy(g);

    /* a command the shell cannot find stops the guide: asking again cannot help */
    o = (mct_llm_opts){.cmd = "mctune-no-such-command-here", .request_timeout_s = 10};
    CHECK(mct_guide_llmcmd_create(&o, &g, err, sizeof err) == 0);
    c = ctx_v(96, &nd);
    r = mct_guide_propose(g, &c, out, &n, err, sizeof err);
    note_err(err);
    mct_guide_get_stats(g, &st);
    CHECKF(r == MCT_EIO && st.stopped && strstr(st.stop_reason, "command not found"),
           "cmd 127: %d '%s'", r, err);
    c = ctx_v(97, &nd);
    r = mct_guide_propose(g, &c, out, &n, err, sizeof err);
    CHECKF(r == MCT_EIO && strstr(err, "llm-cmd: stopped:"), "cmd 127 again: %d '%s'", r, err);
    mct_guide_destroy(g);

    /* past the time limit: killed with its whole process group */
    write_script(dir, "slow.sh", "cat > /dev/null\nsleep 30 &\necho $! > \"$1/pid\"\nwait\n", cmd,
                 sizeof cmd);
    o = (mct_llm_opts){.cmd = cmd, .request_timeout_s = 1};
    CHECK(mct_guide_llmcmd_create(&o, &g, err, sizeof err) == 0);
    c = ctx_v(96, &nd);
    double t0 = now_s();
    r = mct_guide_propose(g, &c, out, &n, err, sizeof err);
    double dt = now_s() - t0;
    note_err(err);
    CHECKF(r == MCT_ETIMEOUT && strstr(err, "killed"), "cmd slow: %d '%s'", r, err);
    CHECKF(dt < 5, "the 1 s limit was not enforced: %.2f s", dt);
    mct_guide_destroy(g);
    snprintf(path, sizeof path, "%s/pid", dir);
    FILE *f = fopen(path, "r");
    int pid = 0;
    if (f) {
        if (fscanf(f, "%d", &pid) != 1)
            pid = 0;
        fclose(f);
    }
    CHECK(pid > 0);
    int gone = 0;
    for (int i = 0; i < 100 && pid > 0 && !(gone = proc_gone(pid)); i++)
        usleep(20000);
    CHECKF(gone, "the command's background sleep (pid %d) survived the kill", pid);

    /* the key given in the options never shows in an llm-cmd error either */
    snprintf(cmd, sizeof cmd, "echo 'token " KEY " rejected' >&2; exit 3");
    o = (mct_llm_opts){.cmd = cmd, .api_key = KEY, .request_timeout_s = 10};
    CHECK(mct_guide_llmcmd_create(&o, &g, err, sizeof err) == 0);
    c = ctx_v(97, &nd);
    r = mct_guide_propose(g, &c, out, &n, err, sizeof err);
    note_err(err);
    CHECKF(r == MCT_EIO && strstr(err, "exit status 3") && strstr(err, "rejected"), "%d '%s'", r,
           err);
    mct_guide_destroy(g);
}

/* The B-resident order (tuner/guide_heuristic.c, bres_text) is the first proposal at prefill
 * sizes for f32 matmul, prepacked or b=raw, on any register file and thread count (synthetic
 * caches, whatever this host has): an MR-row micro-panel of A over KC in half of L1 (KC the
 * largest power of two that fits, or all of K), the KC x NC block of B in half of L2 (NC a
 * multiple of NR), A's i0 block in a quarter of L3 (all the rows when it fits), the register tile
 * with the most accumulators, j0 parallel when there are threads, B copied at j0 for b=raw. Not
 * proposed for a few rows, bmm or low-precision weights. */
static void test_bres(void)
{
    mct_target t2 = mct_target_of_isa(MCT_ISA_AVX2), t5 = mct_target_of_isa(MCT_ISA_AVX512);
    static const struct { int M, N, K, threads, raw, l3kb, want; } cs[] = {
        {512, 4096, 4096, 1, 0, 32768, 1}, {128, 1000, 4096, 2, 0, 32768, 1},
        {200, 14336, 777, 3, 1, 32768, 1}, {64, 4096, 100, 2, 1, 16384, 1},
        {512, 4096, 4096, 2, 0, 1024, 1}, {16, 4096, 4096, 1, 0, 32768, 0},
        {8, 4096, 4096, 2, 1, 32768, 0}};
    for (int tt = 0; tt < 2; tt++)
        for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
            const mct_target *tg = tt ? &t5 : &t2;
            mct_cpu cpu = *mct_cpu_host();
            cpu.cache_kb[0] = tt ? 48 : 32;
            cpu.cache_kb[2] = tt ? 2048 : 512;
            cpu.cache_kb[3] = cs[i].l3kb;
            long L1 = cpu.cache_kb[0] * 1024L, L2 = cpu.cache_kb[2] * 1024L,
                 L3 = cpu.cache_kb[3] * 1024L;
            char key[128];
            snprintf(key, sizeof key, "matmul f32 nt M=%d N=%d K=%d epi=none%s", cs[i].M, cs[i].N,
                     cs[i].K, cs[i].raw ? " b=raw" : "");
            mct_sched *root = NULL;
            char *out[16];
            int n = root_props(key, &cpu, tg, cs[i].threads, 3, out, &root), first = -1;
            for (int q = 0; q < n; q++)
                if (strstr(out[q], "reorder(i0, k0, j0, i1, j1, k1, i2, j2)") && first < 0)
                    first = q;
            if (!cs[i].want) {
                CHECKF(first < 0, "%s nregs %d: B-resident order at %d", key, tg->nregs, first);
                free_out(out, n);
                mct_sched_destroy(root);
                continue;
            }
            long v[5] = {0};
            CHECKF(first == 0 && tiles_of(out[0], "reorder(i0, k0, j0", v), "%s nregs %d: "
                   "first '%s', B-resident at %d", key, tg->nregs, n ? out[0] : "", first);
            long mc = v[0], mr = v[1], nc = v[2], nr = v[3], kc = v[4];
            if (first == 0) {
                long nv = nr / tg->vlen;
                CHECKF(mr * 4 * kc <= L1 / 2 && (kc == cs[i].K || mr * 4 * kc * 2 > L1 / 2),
                       "%s: KC %ld for %ld rows, L1 %ld", key, kc, mr, L1);
                CHECKF(nr % tg->vlen == 0 && nc % nr == 0 && nc * kc * 4 <= L2 / 2 &&
                       nc <= (cs[i].N + nr - 1) / nr * nr, "%s: NC %ld NR %ld KC %ld", key, nc,
                       nr, kc);
                long all = (cs[i].M + mr - 1) / mr * mr;
                CHECKF(mc % mr == 0 && (mc == all || (mc * kc * 4 <= L3 / 4 && mc < all)),
                       "%s: MC %ld (all rows %ld), L3 %ld", key, mc, all, L3);
                /* the most accumulators that fit the register file */
                CHECKF(mr * nv + nv + 1 <= tg->nregs && mr * nv >= (tg->nregs <= 16 ? 12 : 24),
                       "%s nregs %d: tile %ldx%ldv", key, tg->nregs, mr, nv);
                CHECKF(!strstr(out[0], "parallel(j0)") == (cs[i].threads == 1) &&
                       !!strstr(out[0], cs[i].raw ? "pack(B, j0, j2)" : "prepack(B, j2)") &&
                       strstr(out[0], "pack(A, k0, i2)") && strstr(out[0], "cache_write(j1)"),
                       "%s threads %d: '%s'", key, cs[i].threads, out[0]);
            }
            free_out(out, n);
            mct_sched_destroy(root);
        }
    /* bmm keeps its own forms */
    mct_sched *root = NULL;
    char *out[16];
    int n = root_props("bmm f32 nt B=32 G=4 M=128 N=512 K=128 epi=none", mct_cpu_host(), &t2, 2,
                       3, out, &root), has = 0;
    for (int q = 0; q < n; q++)
        has |= strstr(out[q], "reorder(i0, k0, j0") != NULL;
    CHECKF(n > 0 && !has, "bmm: %d proposals, B-resident order %s", n, has ? "among them" : "not");
    free_out(out, n);
    mct_sched_destroy(root);
}

int main(void)
{
    signal(SIGPIPE, SIG_DFL);   /* the guides must cope without the caller ignoring it */
    const char *proxies[] = {"http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY",
                             "all_proxy", "ALL_PROXY", "MCTUNE_LLM_URL", "MCTUNE_LLM_MODEL",
                             "MCTUNE_LLM_API_KEY", "OPENAI_API_KEY", "MCTUNE_LLM_CMD"};
    for (size_t i = 0; i < sizeof proxies / sizeof *proxies; i++)
        unsetenv(proxies[i]);
    setenv("no_proxy", "127.0.0.1,localhost", 1);
    char dir[] = "/tmp/mctune-test-guide-XXXXXX";
    if (!mkdtemp(dir) || fixtures() || srv_start()) {
        fprintf(stderr, "test_guide: setup failed: %s\n", strerror(errno));
        CHECK(0);
        return check_done();
    }
    test_prompt();
    test_prompt_info();
    test_drop();
    test_heuristic_rules();
    test_bres();
    test_parse();
    test_illegal();
    test_http_good();
    test_http_bad_replies();
    test_http_retries();
    test_http_fatal();
    test_tune_cli(dir);
    test_cache_caps_env(dir);
    test_cmd(dir);
    test_verbose_log(dir);
    test_search_info(dir);
    srv_stop();
    /* the key never appeared in any error message */
    CHECK(!strstr(all_err, KEY) && !strstr(all_err, "FAKEKEY") && !strstr(all_err, KEY2));
    CHECK(strstr(all_err, "HTTP 401") != NULL);   /* the collection did see the errors */
    mct_sched_destroy(S_root);
    mct_sched_destroy(S_par);
    mct_sched_destroy(S_node);
    char rm[600];
    snprintf(rm, sizeof rm, "rm -rf '%s'", dir);
    if (system(rm) != 0)
        fprintf(stderr, "test_guide: could not remove %s\n", dir);
    return check_done();
}
