/* Internals of the LLM guides, shared by their files and included by no other:
 *   guide_llm.c   the guide object (create/destroy, propose, retries and backoff, stopping on
 *                 errors no retry can fix, stats) and the helpers below;
 *   llm_prompt.c  the prompt (mct_guide_prompt);
 *   llm_reply.c   a reply -> proposal texts (mct_guide_parse_reply);
 *   llm_http.c    the chat-completions client over libcurl (the only file that includes curl.h);
 *   llm_cmd.c     the llm-cmd client (a command run through /bin/sh -c).
 *
 * The API key lives in llm_guide.key only. Every message these files produce goes through
 * llm_err or llm_log, which build it in full, scrub the key out, then copy or print it, so a
 * truncated copy cannot leave a prefix of the key behind. */
#ifndef MCT_LLM_INT_H
#define MCT_LLM_INT_H

#include <stddef.h>
#include <stdint.h>

#include "tuner/guide.h"

#define REPLY_MAX ((size_t)8 << 20)   /* bytes of a response body or command output */
/* Tag of the system message and reply format: part of the cache key's parameters, so a change
 * of either invalidates cached replies instead of replaying answers to another question. */
#define PROMPT_TAG "mctune-guide-1"

enum { LLM_HTTP, LLM_CMD };

struct llm_http;             /* llm_http.c: the curl handle and the request headers */

typedef struct llm_guide {
    mct_guide base;          /* first: the search holds a mct_guide * */
    int kind;                /* LLM_HTTP or LLM_CMD */
    char *url;               /* full chat/completions URL (http) */
    char *model;             /* http: model; cmd: "cmd:" + command (the cache key's model) */
    char *key;               /* API key or NULL; never leaves this struct */
    char *cmd;
    char params[128];        /* cache key parameters */
    double connect_s, request_s, temperature;
    int max_retries, verbose;
    int fatal;               /* set by a client: the last failure cannot be fixed by asking
                                again (the guide stops) */
    const char *key_src;     /* where the key came from, for messages (never the key) */
    const char *url_src;     /* where the base URL came from */
    long max_calls, max_tokens, calls_made, tokens_used;
    struct mct_db *cache;    /* replies cached in the llm table; may be NULL */
    struct llm_http *http;   /* LLM_HTTP only */
    uint64_t jitter;         /* own random state: retries must not perturb the search's draws */
} llm_guide;

/* ---- guide_llm.c: helpers ---- */

/* Formats the message, scrubs g's key out of it (g may be NULL: nothing to scrub), copies it
 * into err (may be NULL) with mct_errf and returns code. */
int llm_err(const llm_guide *g, char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* With g->verbose: "mctune <name>: <message>" on stderr, the key scrubbed out. */
void llm_log(const llm_guide *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Replaces every occurrence of key in s (in place, shrinking) by "***"; NULL s or key: no-op. */
void llm_scrub(char *s, const char *key);
/* A one-line excerpt of untrusted text (at most n bytes of s) for a message: control
 * characters become spaces, "..." marks a cut; out gets at most len - 1 characters. */
void llm_excerpt(const char *s, size_t n, char *out, size_t len);
double llm_now_s(void);

/* ---- llm_http.c ---- */

/* What one failed POST was, for the retry loop in guide_llm.c. */
typedef struct llm_try {
    int retry;               /* transient (HTTP 408, 429, 5xx, a timeout, a dropped
                                connection): worth asking again */
    long retry_after;        /* seconds the server's Retry-After asked for; -1: none sent */
    long status;             /* the HTTP status (0: no response) */
    size_t bytes;            /* bytes of the response body */
    char why[600];           /* with retry: the failure in short (scrubbed), for the log and
                                the give-up message */
} llm_try;

/* Initializes libcurl (once per process), creates g->http with the headers (the key in the
 * Authorization header when g->key is set). Returns 0, MCT_ENET or MCT_ENOMEM with a message. */
int llm_http_open(llm_guide *g, char *err, size_t errlen);
void llm_http_close(llm_guide *g);
/* The chat-completions request body for prompt: *req malloc'ed (free()). 0 or MCT_ENOMEM. */
int llm_http_request(const llm_guide *g, const char *prompt, char **req);
/* One POST of req to g->url. 0: a 2xx response, its body in *body (malloc'ed, scrubbed of the
 * key). Otherwise a negative code and *body NULL: with t->retry set, MCT_ENET or MCT_ETIMEOUT
 * with err untouched (the caller words the last failure from t->why); without, the message in
 * err, and g->fatal set when no retry can fix it (a refused key, a wrong URL, no server). */
int llm_http_post(llm_guide *g, const char *req, char **body, llm_try *t, char *err,
                  size_t errlen);
/* The reply text of a 2xx body (choices[0].message.content), counting its usage into the stats
 * and g->tokens_used. *reply malloc'ed. 0, MCT_EINVAL or MCT_ENOMEM with a message. */
int llm_http_content(llm_guide *g, const char *body, char **reply, char *err, size_t errlen);

/* ---- llm_cmd.c ---- */

/* Runs g->cmd once with prompt on stdin, within g->request_s; *reply gets its stdout
 * (malloc'ed). Errors as llm_http_post's without retry; g->fatal when the shell found no
 * such command. */
int llm_cmd_ask(llm_guide *g, const char *prompt, char **reply, char *err, size_t errlen);

#endif
