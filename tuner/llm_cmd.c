/* The `llm-cmd` guide's client: runs the user's command through /bin/sh -c with the prompt on
 * stdin and takes its stdout as the reply, within the request time limit (tuner/proc.h kills
 * the command's whole process group past it). Its stdout and stderr are untrusted: stdout is
 * bounded by REPLY_MAX, and only a short excerpt of the start of stderr reaches a message. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "runtime/mct_err.h"
#include "tuner/llm_int.h"
#include "tuner/proc.h"

#define STDERR_KEEP 4096              /* bytes of the start of stderr kept for messages */

int llm_cmd_ask(llm_guide *g, const char *prompt, char **reply, char *err, size_t errlen)
{
    char sh[] = "/bin/sh", dash_c[] = "-c";
    char *argv[] = {sh, dash_c, g->cmd, NULL};
    size_t plen = strlen(prompt);
    mct_proc_io io = {.in = prompt, .in_len = plen, .out_max = REPLY_MAX,
                      .err_max = STDERR_KEEP, .timeout_s = g->request_s};
    mct_proc_result res;
    char ex[300];
    int r;
    *reply = NULL;
    double t0 = llm_now_s();
    llm_log(g, "running '%s' (prompt %zu bytes, limit %.3g s)", g->cmd, plen, g->request_s);
    r = mct_proc_run(argv, &io, &res);
    if (r == MCT_ENOMEM)
        return llm_err(g, err, errlen, r, "llm-cmd: out of memory");
    if (r == MCT_ENOTFOUND) {
        g->fatal = 1;   /* no shell: no command can run */
        return llm_err(g, err, errlen, MCT_EIO, "llm-cmd: cannot run '%s': %s not found", g->cmd,
                       sh);
    }
    if (r)
        return llm_err(g, err, errlen, r, "llm-cmd: cannot start '%s' (pipe or fork failed: %s)",
                       g->cmd, strerror(errno));
    int st = res.status;
    llm_excerpt(res.err ? res.err : "", 240, ex, sizeof ex);
    if (res.timed_out) {
        r = llm_err(g, err, errlen, MCT_ETIMEOUT,
                    "llm-cmd: '%s' gave no complete answer within %.3g s and was killed (its "
                    "process group); raise the LLM time limit or use a faster model", g->cmd,
                    g->request_s);
        goto fail;
    }
    if (res.out_over) {
        r = llm_err(g, err, errlen, MCT_ERANGE, "llm-cmd: '%s' wrote over %zu bytes; refused",
                    g->cmd, REPLY_MAX);
        goto fail;
    }
    if (WIFSIGNALED(st)) {
        r = llm_err(g, err, errlen, MCT_EIO, "llm-cmd: '%s' was killed by signal %d%s%s", g->cmd,
                    WTERMSIG(st), ex[0] ? "; stderr: " : "", ex);
        goto fail;
    }
    if (!mct_proc_ok(st)) {
        int code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        g->fatal = code == 127;   /* the shell found no such command: asking again cannot help */
        r = llm_err(g, err, errlen, MCT_EIO, "llm-cmd: '%s' failed with exit status %d%s%s%s",
                    g->cmd, code, code == 127 ? " (command not found?)" : "",
                    ex[0] ? "; stderr: " : "", ex);
        goto fail;
    }
    llm_log(g, "answered in %.2f s, %zu bytes", llm_now_s() - t0, res.out_len);
    if (!res.out_len) {
        r = llm_err(g, err, errlen, MCT_EINVAL, "llm-cmd: '%s' printed nothing on stdout",
                    g->cmd);
        goto fail;
    }
    *reply = res.out;
    res.out = NULL;
    r = 0;
fail:
    mct_proc_result_free(&res);
    return r;
}
