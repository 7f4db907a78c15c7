/* Child processes, one way for the whole tuner: the measurement harness (compiler, driver),
 * the llm-cmd guide, and the tools `report` and `tree` run (gnuplot, dot).
 *
 * Every child leads its own process group (a timeout kills everything it started), dies with
 * the tuner (PR_SET_PDEATHSIG), dumps no core, and starts with an empty signal mask and
 * SIGPIPE at its default. Only async-signal-safe calls run between fork and exec.
 */
#ifndef MCT_PROC_H
#define MCT_PROC_H

#include <stddef.h>
#include <sys/types.h>

/* The executable for name: name itself when it holds a '/' (and is executable), else the first
 * match on $PATH (/usr/local/bin:/usr/bin:/bin when unset). malloc'ed, the caller free()s it;
 * NULL when none (or out of memory). */
char *mct_proc_which(const char *name);

/* fork + exec path with argv and envp (NULL: environ). fds: nfd pairs {src, dst} (at most 8)
 * moved into place in the child; src -1 is /dev/null; every other descriptor the tuner opened
 * with O_CLOEXEC stays closed. *out gets the pid; the caller reaps it (mct_proc_wait).
 * Returns 0, MCT_EINVAL (nfd > 8) or MCT_EIO (fork failed). In the child, a descriptor that
 * cannot be moved shows as exit status 126, an exec failure as 127. */
int mct_proc_spawn(const char *path, char *const argv[], char *const envp[],
                   const int (*fds)[2], int nfd, pid_t *out);

/* Waits for pid; with timeout_s > 0 kills its process group (SIGKILL) once that many seconds
 * have passed and reaps it. *status gets the waitpid status, *timed_out (may be NULL) 1 when it
 * was killed for the limit. Returns 0 or MCT_EIO (waitpid failed: not a child of ours). */
int mct_proc_wait(pid_t pid, double timeout_s, int *status, int *timed_out);

enum { MCT_PROC_OUT = 1, MCT_PROC_ERR = 2 };

/* What mct_proc_run feeds a child and keeps of its output. */
typedef struct mct_proc_io {
    const char *in;         /* written to stdin, then stdin is closed; NULL: /dev/null */
    size_t in_len;
    size_t out_max;         /* stdout kept up to this many bytes; more stops the child
                               (out_over); 0: /dev/null, or the tuner's (inherit) */
    size_t err_max;         /* the first err_max bytes of stderr are kept (the rest is read
                               and dropped); 0: /dev/null, or the tuner's (inherit) */
    int inherit;            /* MCT_PROC_OUT | MCT_PROC_ERR: with max 0, share the tuner's */
    double timeout_s;       /* > 0: the whole run's limit (then timed_out) */
    char *const *envp;      /* NULL: environ */
} mct_proc_io;

/* What happened. out and err are malloc'ed, NUL-terminated (NULL when not kept); release with
 * mct_proc_result_free. */
typedef struct mct_proc_result {
    int status;             /* waitpid status; check WIFEXITED / WEXITSTATUS */
    int timed_out;          /* killed at io->timeout_s */
    int out_over;           /* stdout passed io->out_max: killed */
    char *out, *err;
    size_t out_len, err_len;
} mct_proc_result;

/* Runs argv (argv[0] looked up with mct_proc_which) to completion; whatever it left running in
 * its process group is killed when it exits. io may be NULL (no input, outputs to /dev/null).
 * *res is zeroed first. Returns 0 when it ran (its own failure is in res->status), MCT_ENOTFOUND
 * when argv[0] is not on PATH, MCT_EIO when a pipe, fork or wait failed, MCT_ENOMEM (the output
 * buffers); on failure res->out and res->err are NULL. SIGPIPE from a child that does not read
 * its stdin never reaches the tuner. */
int mct_proc_run(char *const argv[], const mct_proc_io *io, mct_proc_result *res);
/* Frees res->out and res->err and sets them NULL; twice is harmless. */
void mct_proc_result_free(mct_proc_result *res);

/* 1 when the status is a clean exit with code 0. */
int mct_proc_ok(int status);

#endif
