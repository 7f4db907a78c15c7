/* scripts/bench-search.c and scripts/llm-eval in their quickest form: one layer shrunk 16 times,
 * budget 4, one seed. Checks the tables' shape (every strategy, every mark, samples to reach,
 * the summary, the re-measured bests and the libraries), the sample accounting (distinct
 * candidates never exceed the samples; evolutionary reaches its own best), the --out file, the
 * refusal of bad options, and llm-eval: its refusal without an endpoint, and a run against a
 * chat-completions server on 127.0.0.1 (a thread of this process, real sockets) that answers
 * every request with one fixed list of transformations, with a key that must never be printed.
 * Figures are never asserted on: they depend on the machine. */
#include "tests/check.h"
#include "tests/http_double.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define KEY "sk-bench-search-SECRET-5f3a9c"

static const char *bin;
static char dir[64];
static char out[1 << 17];

/* ---- a chat-completions endpoint: every POST gets the same reply ------------------------ */
static struct {
    int lfd, port;
    volatile int stop;
    pthread_t th;
    pthread_mutex_t mu;
    int requests, with_key;
} srv;

static const char reply_body[] =
    "{\"id\":\"t\",\"object\":\"chat.completion\",\"choices\":[{\"index\":0,\"message\":"
    "{\"role\":\"assistant\",\"content\":\"Tile j for the vector lanes.\\n```json\\n"
    "[[\\\"tile(j, 16)\\\", \\\"vectorize(j1)\\\"], [\\\"tile(k, 64)\\\"]]\\n```\"},"
    "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":100,\"completion_tokens\":20,"
    "\"total_tokens\":120}}";

static void *srv_main(void *arg)
{
    static char req[1 << 20];
    (void)arg;
    while (!srv.stop) {
        int fd = http_double_accept(srv.lfd);
        if (fd < 0)
            continue;
        if (http_double_read(fd, req, sizeof req) > 0) {
            char *he = strstr(req, "\r\n\r\n");
            *he = 0;
            pthread_mutex_lock(&srv.mu);
            srv.requests++;
            srv.with_key += strstr(req, "Bearer " KEY) != NULL;
            pthread_mutex_unlock(&srv.mu);
            http_double_reply(fd, 200, NULL, reply_body);
        }
        close(fd);
    }
    return NULL;
}

static int srv_start(void)
{
    pthread_mutex_init(&srv.mu, NULL);
    if ((srv.lfd = http_double_listen(&srv.port)) < 0)
        return -1;
    return pthread_create(&srv.th, NULL, srv_main, NULL) ? -1 : 0;
}

static void srv_stop(void)
{
    srv.stop = 1;
    pthread_join(srv.th, NULL);
    close(srv.lfd);
    pthread_mutex_destroy(&srv.mu);
}

/* ---- the checks ------------------------------------------------------------------------- */

/* The line of the per-layer table that starts with the strategy's name ("  NAME  ..."). */
static const char *row(const char *text, const char *name)
{
    char pat[80];
    snprintf(pat, sizeof pat, "\n  %s ", name);
    const char *p = strstr(text, pat);
    return p ? p + 1 : NULL;
}

/* The table of one layer: every strategy with a figure at mark 4 and a samples-to-reach. */
static void check_table(const char *text, const char *const *names, int n)
{
    CHECK(strstr(text, "best GFLOP/s at") != NULL);
    const char *hdr = strstr(text, "best GFLOP/s at");
    CHECK(hdr && strstr(hdr, " 4   samples to reach ") != NULL);
    for (int i = 0; i < n; i++) {
        const char *r = row(text, names[i]);
        CHECKF(r != NULL, "no row for %s", names[i]);
        if (!r)
            continue;
        double gf = 0, need = 0;
        char rest[32] = "";
        int got = sscanf(r + 2 + strlen(names[i]), " %lf %31s", &gf, rest);
        CHECKF(got == 2 && gf > 0, "row of %s: %.60s", names[i], r);
        if (rest[0] == '>')
            CHECKF(!strcmp(rest, ">4"), "row of %s: %s", names[i], rest);
        else
            CHECKF(sscanf(rest, "%lf", &need) == 1 && need >= 1 && need <= 4, "row of %s: %s",
                   names[i], rest);
        /* the reference reaches its own best, by definition, within the budget */
        if (!strcmp(names[i], "evolutionary"))
            CHECKF(rest[0] != '>', "evolutionary never reached its own best: %s", rest);
        /* the summary and the re-measured bests name it too */
        const char *sum = strstr(text, "== summary over 1 layers");
        CHECK(sum && row(sum, names[i]) != NULL);
        const char *re = strstr(text, "re-measured with min-time");
        char pat[80];
        snprintf(pat, sizeof pat, "    %s ", names[i]);
        CHECKF(re && strstr(re, pat) != NULL, "%s not re-measured", names[i]);
    }
    /* the accounting: distinct candidates measured never exceed the samples used */
    const char *u = strstr(text, "distinct candidates measured for ");
    long cand = -1, samples = -1;
    if (u) {
        const char *b = u;
        while (b > text && b[-1] != ';')
            b--;
        cand = atol(b + 1);
        samples = atol(u + strlen("distinct candidates measured for "));
    }
    CHECKF(cand >= 4 && samples == 4L * n && cand <= samples, "candidates %ld, samples %ld",
           cand, samples);
    CHECK(strstr(text, "libraries") != NULL);
    CHECK(strstr(text, "goal ") != NULL);
}

static const char *quick = "--budget 4 --seeds 1 --layers 0 --shrink 16 --min-time 0.005 "
                           "--final-min-time 0.01";

int main(void)
{
    bin = getenv("BENCH_SEARCH") ? getenv("BENCH_SEARCH") : "build/bench/bench-search";
    if (access(bin, X_OK)) {
        fprintf(stderr, "%s is not built (make %s)\n", bin, bin);
        CHECK(0);
        return check_done();
    }
    snprintf(dir, sizeof dir, "/tmp/mct_bench_search_XXXXXX");
    if (!mkdtemp(dir)) {
        CHECK(0);
        return check_done();
    }
    unsetenv("MCTUNE_LLM_URL");
    unsetenv("MCTUNE_LLM_MODEL");
    unsetenv("MCTUNE_LLM_CMD");
    unsetenv("MCTUNE_LLM_API_KEY");
    unsetenv("OPENAI_API_KEY");

    /* the default strategies */
    int rc = check_sh(out, sizeof out, "%s %s --cache %s/cc --out %s/t.txt 2>%s/err", bin,
                      quick, dir, dir, dir);
    CHECKF(rc == 0, "exit %d:\n%s", rc, out);
    const char *dflt[] = {"mcts+heuristic", "mcts+heuristic+model", "evolutionary",
                          "evolutionary-measured", "random"};
    check_table(out, dflt, 5);
    CHECK(strstr(out, "llama-3-8b q_proj M=1: matmul f32 nt M=1 N=256 K=256") != NULL);
    CHECK(row(out, "mcts+llm") == NULL && row(out, "mcts+random") == NULL);
    static char file[1 << 17];
    CHECK(check_sh(file, sizeof file, "cat %s/t.txt", dir) == 0 && !strcmp(file, out));
    /* progress: one line per (layer, strategy, seed) with the time left */
    static char err[1 << 16];
    CHECK(check_sh(err, sizeof err, "grep -c 'left\\] 1/1 llama-3-8b q_proj M=1 | ' %s/err",
                   dir) == 0 && atoi(err) == 5);

    /* bad input: each refused with the value named */
    CHECK(check_sh(out, sizeof out, "%s --budget 1 2>&1", bin) == 2 && strstr(out, "'1'"));
    CHECK(check_sh(out, sizeof out, "%s --layers llama-3-8b:nope:4 2>&1", bin) == 2 &&
          strstr(out, "no layer named 'nope'"));
    CHECK(check_sh(out, sizeof out, "%s --layers 99 2>&1", bin) == 2 && strstr(out, "99"));
    CHECK(check_sh(out, sizeof out, "%s --strategies mcts+magic 2>&1", bin) == 2 &&
          strstr(out, "'mcts+magic'"));
    CHECK(check_sh(out, sizeof out, "%s --guide oracle 2>&1", bin) == 2 &&
          strstr(out, "'oracle'"));
    CHECK(check_sh(out, sizeof out, "%s --min-time 0 2>&1", bin) == 2 && strstr(out, "'0'"));
    CHECK(check_sh(out, sizeof out, "%s --guide llm 2>&1", bin) == 2 &&
          strstr(out, "MCTUNE_LLM_URL"));
    CHECK(check_sh(out, sizeof out, "%s --help", bin) == 0 && strstr(out, "--strategies") &&
          strstr(out, "llama-3-8b:q_proj:1"));

    /* llm-eval without an endpoint: refused, nothing run */
    CHECK(check_sh(out, sizeof out, "BENCH_SEARCH=%s sh scripts/llm-eval %s 2>&1", bin, quick)
          == 2 && strstr(out, "no LLM endpoint is configured") && !strstr(out, "best GFLOP/s"));
    CHECK(check_sh(out, sizeof out, "MCTUNE_LLM_URL=ftp://x MCTUNE_LLM_MODEL=m BENCH_SEARCH=%s "
                   "sh scripts/llm-eval 2>&1", bin) == 2 && strstr(out, "'ftp://x'"));

    /* llm-eval against the local endpoint: the LLM rows beside the heuristic ones */
    CHECK(srv_start() == 0);
    rc = check_sh(out, sizeof out, "MCTUNE_LLM_URL=http://127.0.0.1:%d/v1 MCTUNE_LLM_MODEL=test "
                  "MCTUNE_LLM_API_KEY=%s BUILD=%s BENCH_SEARCH=%s sh scripts/llm-eval %s "
                  "--strategies mcts+heuristic,random --cache %s/cc 2>&1", srv.port, KEY, dir,
                  bin, quick, dir);
    srv_stop();
    CHECKF(rc == 0, "exit %d:\n%s", rc, out);
    const char *llm[] = {"mcts+heuristic", "mcts+llm", "mcts+llm+model", "evolutionary",
                         "random"};
    check_table(out, llm, 5);
    CHECKF(srv.requests > 0 && srv.with_key == srv.requests, "%d requests, %d with the key",
           srv.requests, srv.with_key);
    CHECK(strstr(out, "guide llm, http://127.0.0.1") && strstr(out, "MCTUNE_LLM_API_KEY"));
    CHECK(strstr(out, "llm: ") && !strstr(out, "llm: 0 calls") && !strstr(out, "STOPPED"));
    CHECK(strstr(out, KEY) == NULL);
    CHECK(check_sh(file, sizeof file, "cat %s/llm-eval.txt", dir) == 0 &&
          strstr(file, "mcts+llm+model") && !strstr(file, KEY));

    char rm[128];
    snprintf(rm, sizeof rm, "rm -rf '%s'", dir);
    CHECK(system(rm) == 0);
    return check_done();
}
