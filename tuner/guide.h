/* Guides: who proposes the expansions of the MCTS search.
 *
 * At each expansion the search shows the guide the current node, its parent and grandparent
 * (program as readable loop nest, measured cost with its noise, transformation trace), the
 * node's children already in the tree and the proposals refused at the node with their
 * reasons, and asks for up to `want` proposals. A proposal is a text of transformations from
 * the fixed set O (the syntax of mct_sched_apply in codegen/codegen.h), applied in order to the
 * node's schedule to make one child. Proposals are untrusted data: the search applies them
 * with mct_sched_apply, which accepts nothing outside O; illegal ones are dropped with their
 * reason and counted, and an expansion left with no legal proposal falls back to
 * mct_sched_mutate (counted as a fallback).
 *
 * Implementations: heuristic and random (tuner/guide_heuristic.c); llm and llm-cmd
 * (tuner/guide_llm.c, the guide object, with its parts tuner/llm_prompt.c, llm_reply.c,
 * llm_http.c (the only file that includes curl.h) and llm_cmd.c, sharing tuner/llm_int.h). */
#ifndef MCT_GUIDE_H
#define MCT_GUIDE_H

#include <stddef.h>
#include <stdint.h>

#include "codegen/codegen.h"
#include "runtime/cpu.h"

struct mct_db;

typedef struct mct_guide_node {
    const mct_sched *sched;  /* the program (lower it with mct_cg_lower_pseudo to show it) */
    const char *trace;       /* transformations applied from the untuned root, "; "-separated */
    double latency_s;        /* measured median latency, < 0 when not measured or failed */
    double gflops;           /* measured GFLOP/s, 0 when unknown */
    int visits;              /* MCTS visit count */
    double spread_s;         /* the measurement's spread: interquartile range of the timed
                                runs (q3 - q1), 0 when unknown */
    const char *applied;     /* the step that made it from its parent (NULL or "" at the
                                root); a fallback mutation reads "fallback: ..." */
    int status;              /* MCT_MEAS_* of its measurement (0: ok or not measured) */
} mct_guide_node;

/* A proposal the search refused at a node, with its reason (mct_sched_apply's, or that it
 * duplicates a schedule already in the tree). */
typedef struct mct_guide_reject {
    const char *text;
    const char *reason;
} mct_guide_reject;

/* Most rejected proposals a node keeps (the latest), and most children shown to a guide. */
#define MCT_GUIDE_MAX_REJECT 8
#define MCT_GUIDE_MAX_KIDS 16

typedef struct mct_guide_ctx {
    const mct_workload *w;
    const mct_cpu *cpu;      /* the CPU being tuned for (ISA, caches, cores) */
    const mct_target *target;
    int threads;             /* threads the kernel will run with */
    const mct_guide_node *node;    /* never NULL */
    const mct_guide_node *parent;  /* NULL at the root */
    const mct_guide_node *grand;   /* NULL near the root */
    double base_latency_s;   /* the untuned schedule's latency (reward = base / latency) */
    /* Children of the node already in the tree (measured, or failed: status says), oldest
     * first, at most MCT_GUIDE_MAX_KIDS; a proposal that builds one again is a duplicate. */
    const mct_guide_node *kids;
    int nkids;
    /* Proposals refused at this node so far, oldest first, at most MCT_GUIDE_MAX_REJECT. */
    const mct_guide_reject *rejected;
    int nrejected;
    int want;                /* proposals wanted (the branching factor) */
    uint64_t *rng;           /* the search's random state; guides draw only from it, with
                                mct_guide_rand */
} mct_guide_ctx;

typedef struct mct_guide_stats {
    long calls;              /* propose() calls */
    long proposals;          /* proposals returned */
    long failures;           /* calls that returned no proposal (error, garbage, timeout) */
    long retries;            /* LLM: retried requests */
    long cache_hits;         /* LLM: replies served from the database's llm table */
    long prompt_tokens, completion_tokens; /* LLM: usage as reported by the server */
    double retry_wait_s;     /* LLM: seconds slept before retries (backoff or Retry-After) */
    int stopped;             /* an error no retry can fix stopped the guide (see propose) */
    int stop_code;           /* its MCT_E* code */
    long stop_call;          /* the propose() call (1-based) that stopped it */
    char stop_reason[512];   /* its message: what was wrong and what to check (never a key) */
} mct_guide_stats;

typedef struct mct_guide mct_guide;  /* opaque */

/* Fills out[0..*n) with up to ctx->want proposals (out has room for ctx->want), each a malloc'ed
 * string the caller frees whatever the return: the heuristic and random guides may return
 * MCT_ENOMEM (without a message) after some proposals. Returns 0 (possibly with *n == 0, err
 * then says why when the guide knows), or a negative MCT_E* code with a message in err (errlen
 * bytes, may be NULL; never the API key); the search then falls back and goes on. LLM guides:
 * MCT_EINVAL (want < 1, a reply with no usable list), MCT_EBUSY (the call or token cap
 * reached), the request's MCT_ENET, MCT_ETIMEOUT, MCT_EIO, ... Never blocks past the guide's
 * own time limits.
 *
 * Transient failures (HTTP 408, 429, 5xx, timeouts, dropped connections) are retried inside one
 * call with backoff: Retry-After when the server sends it, else 1 s, 2 s, 4 s ... capped at 30 s,
 * each drawn uniformly in [d/2, d). Failures that no retry can fix (a refused key: HTTP 401 or
 * 403; a wrong URL or model: 404; no server listening, a host that does not resolve, a TLS
 * failure; for llm-cmd, a command not found) stop the guide: the call that hits one returns
 * its message and sets stats.stopped, stop_code and stop_reason (the same message); every later
 * call returns stop_code at once with err "<name>: stopped: <reason>", asking nothing. */
int mct_guide_propose(mct_guide *g, const mct_guide_ctx *ctx, char **out, int *n, char *err,
                      size_t errlen);
/* The guide's name ("heuristic", "random", "llm", "llm-cmd"): a static string. */
const char *mct_guide_name(const mct_guide *g);
/* Copies the counters into *out. Cannot fail. */
void mct_guide_get_stats(const mct_guide *g, mct_guide_stats *out);
/* Frees g and what it owns (an LLM guide wipes its key first); NULL is ignored. */
void mct_guide_destroy(mct_guide *g);

/* The random draws of the search and of every guide, one rule (splitmix64): the next 64 random
 * bits from *state, advancing it; any state, 0 included, is valid. mct_guide_unif: a double
 * uniform in [0, 1) from the top 53 of those bits. The same state gives the same sequence, so a
 * search with a fixed seed and a deterministic guide repeats itself. */
uint64_t mct_guide_rand(uint64_t *state);
double mct_guide_unif(uint64_t *state);

/* Built-in guides (tuner/guide_heuristic.c). On success *out is the caller's, freed with
 * mct_guide_destroy; MCT_ENOMEM, *out unchanged. */
int mct_guide_heuristic_create(mct_guide **out);
int mct_guide_random_create(mct_guide **out);

/* LLM guides (tuner/guide_llm.c). Fields left NULL/0 take the environment
 * (MCTUNE_LLM_URL, MCTUNE_LLM_MODEL, MCTUNE_LLM_API_KEY else OPENAI_API_KEY; llm-cmd:
 * MCTUNE_LLM_CMD, MCTUNE_LLM_API_KEY) or defaults. The key is kept in memory only: never written
 * to the database, a log or an error message. */
typedef struct mct_llm_opts {
    const char *base_url;    /* e.g. http://127.0.0.1:8080/v1 (".../chat/completions" appended) */
    const char *model;
    const char *api_key;
    const char *cmd;         /* llm-cmd: command that reads the prompt on stdin */
    double connect_timeout_s, request_timeout_s;
    int max_retries;
    long max_calls, max_tokens;   /* caps per run; 0 = defaults */
    double temperature;
    struct mct_db *cache;    /* replies cached in the llm table; may be NULL */
    int verbose;             /* log requests (never the key) to stderr */
} mct_llm_opts;

/* o may be NULL. Its strings are copied; o->cache is borrowed and must stay open until
 * mct_guide_destroy. On success *out is the caller's (mct_guide_destroy); on failure *out is
 * NULL and err (may be NULL) says why: MCT_EINVAL (no model, a URL that is not http(s), a model
 * name over 200 or a command over 4000 characters; llm-cmd: no command), MCT_ENET (libcurl
 * cannot start), MCT_ENOMEM. */
int mct_guide_llm_create(const mct_llm_opts *o, mct_guide **out, char *err, size_t errlen);
int mct_guide_llmcmd_create(const mct_llm_opts *o, mct_guide **out, char *err, size_t errlen);

/* The prompt for one expansion (the paper's: node, parent, grandparent with programs, costs with
 * their noise (IQR) and traces; the node's numbered steps, its children already measured and the
 * proposals refused at it with their reasons; the set O with its syntax and the rules of
 * applying a transformation again; the CPU; the instruction to reason and end with a fenced
 * JSON list; tuner/llm_prompt.c). The same ctx gives the same bytes (replies are cached by
 * it). *out is malloc'ed (free()). Returns 0, MCT_EINVAL (no node
 * or no schedule in ctx) or MCT_ENOMEM, *out NULL then. Shared by the LLM guides; tests print
 * it. */
int mct_guide_prompt(const mct_guide_ctx *ctx, char **out);

/* Parses a model reply into proposals (tuner/llm_reply.c): the last fenced JSON block (or the
 * last JSON array in the text) must be a list whose items are either strings of transformations
 * or lists of such strings; each item becomes one proposal text (its strings joined by "; ",
 * trimmed, at most 4096 bytes, duplicates dropped). Nothing else in the reply is used. Returns
 * the count (1..max; out has room for max; out[0..count) malloc'ed, the caller frees them) or a
 * negative code with a reason in err (MCT_EINVAL: max < 1, no usable list; MCT_ENOMEM, maybe
 * without a message), nothing left in out then. */
int mct_guide_parse_reply(const char *reply, char **out, int max, char *err, size_t errlen);

/* Internal: the vtable every guide implementation fills (used by the guide_*.c files). */
struct mct_guide {
    const char *name;
    int (*propose)(mct_guide *g, const mct_guide_ctx *ctx, char **out, int *n, char *err,
                   size_t errlen);
    void (*destroy)(mct_guide *g);
    mct_guide_stats stats;
};

#endif
