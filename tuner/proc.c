/* Child processes (tuner/proc.h). */
#include "tuner/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "codegen/text.h"
#include "runtime/mct_err.h"

extern char **environ;

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

char *mct_proc_which(const char *name)
{
    if (strchr(name, '/'))
        return access(name, X_OK) == 0 ? strdup(name) : NULL;
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = "/usr/local/bin:/usr/bin:/bin";
    while (*path) {
        const char *e = strchr(path, ':');
        size_t n = e ? (size_t)(e - path) : strlen(path);
        size_t len = n + strlen(name) + 2;
        char *cand = malloc(len);
        if (cand) {
            snprintf(cand, len, "%.*s/%s", (int)n, path, name);
            if (access(cand, X_OK) == 0)
                return cand;
        }
        free(cand);
        path += n + (e ? 1 : 0);
    }
    return NULL;
}

int mct_proc_spawn(const char *path, char *const argv[], char *const envp[],
                   const int (*fds)[2], int nfd, pid_t *out)
{
    if (nfd > 8)
        return MCT_EINVAL;
    pid_t pid = fork();
    if (pid < 0)
        return MCT_EIO;
    if (pid == 0) {
        int tmp[8];
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        struct rlimit rl = {0, 0};
        setrlimit(RLIMIT_CORE, &rl);
        sigset_t all;
        sigemptyset(&all);
        sigprocmask(SIG_SETMASK, &all, NULL);
        signal(SIGPIPE, SIG_DFL);
        /* first out of the way (above 64, close-on-exec), then into place: a source that is
         * itself one of the destinations is never overwritten before it is copied */
        for (int i = 0; i < nfd; i++) {
            int s = fds[i][0] >= 0 ? fds[i][0] : open("/dev/null", O_RDWR);
            tmp[i] = fcntl(s, F_DUPFD_CLOEXEC, 64);
            if (tmp[i] < 0)
                _exit(126);
        }
        for (int i = 0; i < nfd; i++)
            if (dup2(tmp[i], fds[i][1]) < 0)
                _exit(126);
        execve(path, argv, envp ? envp : environ);
        _exit(127);
    }
    setpgid(pid, pid);  /* also here, so the group exists before any kill */
    *out = pid;
    return MCT_OK;
}

int mct_proc_wait(pid_t pid, double timeout_s, int *status, int *timed_out)
{
    double deadline = timeout_s > 0 ? now_s() + timeout_s : 0;
    if (timed_out)
        *timed_out = 0;
    for (;;) {
        pid_t r = waitpid(pid, status, deadline > 0 ? WNOHANG : 0);
        if (r == pid)
            return MCT_OK;
        if (r < 0 && errno != EINTR)
            return MCT_EIO;
        if (r == 0 && now_s() >= deadline) {
            kill(-pid, SIGKILL);
            kill(pid, SIGKILL);
            if (timed_out)
                *timed_out = 1;
            while (waitpid(pid, status, 0) < 0 && errno == EINTR)
                ;
            return MCT_OK;
        }
        if (r == 0) {
            struct timespec ts = {0, 2000000};  /* 2 ms */
            nanosleep(&ts, NULL);
        }
    }
}

static void set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

int mct_proc_run(char *const argv[], const mct_proc_io *io, mct_proc_result *res)
{
    static const mct_proc_io none;
    if (!io)
        io = &none;
    memset(res, 0, sizeof *res);
    char *path = mct_proc_which(argv[0]);
    if (!path)
        return MCT_ENOTFOUND;
    int in[2] = {-1, -1}, op[2] = {-1, -1}, ep[2] = {-1, -1}, rc = MCT_EIO;
    mct_str ob = {0}, eb = {0};
    pid_t pid = -1;
    if ((io->in && pipe2(in, O_CLOEXEC)) || (io->out_max && pipe2(op, O_CLOEXEC)) ||
        (io->err_max && pipe2(ep, O_CLOEXEC)))
        goto fail;
    int fds[3][2] = {{in[0], 0}}, nfd = 1;
    if (io->out_max || !(io->inherit & MCT_PROC_OUT))
        fds[nfd][0] = op[1], fds[nfd++][1] = 1;
    if (io->err_max || !(io->inherit & MCT_PROC_ERR))
        fds[nfd][0] = ep[1], fds[nfd++][1] = 2;
    if (mct_proc_spawn(path, argv, io->envp, (const int(*)[2])fds, nfd, &pid))
        goto fail;
    close_fd(&in[0]);
    close_fd(&op[1]);
    close_fd(&ep[1]);
    if (in[1] >= 0)
        set_nonblock(in[1]);
    if (op[0] >= 0)
        set_nonblock(op[0]);
    if (ep[0] >= 0)
        set_nonblock(ep[0]);
    if (io->in && !io->in_len)
        close_fd(&in[1]);

    /* a child that never reads its stdin must not kill the tuner with SIGPIPE: block it on this
     * thread while writing, and swallow any that arrived */
    sigset_t pipe_set, old;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    double deadline = io->timeout_s > 0 ? now_s() + io->timeout_s : 0;
    size_t sent = 0;
    while (op[0] >= 0 || ep[0] >= 0 || in[1] >= 0) {
        double left = deadline > 0 ? deadline - now_s() : 1e9;
        if (left <= 0) {
            res->timed_out = 1;
            break;
        }
        struct pollfd pf[3];
        int np = 0, iw = -1, io_ = -1, ie = -1;
        if (in[1] >= 0)
            iw = np, pf[np++] = (struct pollfd){in[1], POLLOUT, 0};
        if (op[0] >= 0)
            io_ = np, pf[np++] = (struct pollfd){op[0], POLLIN, 0};
        if (ep[0] >= 0)
            ie = np, pf[np++] = (struct pollfd){ep[0], POLLIN, 0};
        int k = poll(pf, (nfds_t)np, left > 1e6 ? -1 : (int)(left * 1000) + 1);
        if (k < 0 && errno != EINTR)
            break;
        if (k <= 0)
            continue;
        if (iw >= 0 && pf[iw].revents) {
            ssize_t w = pf[iw].revents & POLLOUT ? write(in[1], io->in + sent, io->in_len - sent)
                                                 : -1;
            if (w > 0)
                sent += (size_t)w;
            if (!(w < 0 && errno == EAGAIN) && (w <= 0 || sent == io->in_len))
                close_fd(&in[1]);
        }
        int slot[2] = {io_, ie};
        int *fdp[2] = {&op[0], &ep[0]};
        mct_str *bufs[2] = {&ob, &eb};
        size_t caps[2] = {io->out_max, io->err_max};
        for (int s = 0; s < 2 && !res->out_over; s++) {
            if (slot[s] < 0 || !pf[slot[s]].revents)
                continue;
            char tmp[8192];
            ssize_t rd = read(*fdp[s], tmp, sizeof tmp);
            if (rd > 0) {
                size_t keep = bufs[s]->n < caps[s] ? caps[s] - bufs[s]->n : 0;
                mct_str_add(bufs[s], tmp, (size_t)rd < keep ? (size_t)rd : keep);
                if (s == 0 && (size_t)rd > keep)
                    res->out_over = 1;
            } else if (rd == 0 || errno != EAGAIN) {
                close_fd(fdp[s]);
            }
        }
        if (res->out_over)
            break;
    }
    close_fd(&in[1]);
    close_fd(&op[0]);
    close_fd(&ep[0]);
    struct timespec zero = {0, 0};
    while (sigtimedwait(&pipe_set, NULL, &zero) > 0)
        ;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (res->timed_out || res->out_over) {
        kill(-pid, SIGKILL);
        kill(pid, SIGKILL);
    }
    /* outputs closed: the exit follows within what is left of the limit. Wait without reaping
     * (the zombie keeps the group id ours), then kill whatever the child left running in its
     * group, then reap. */
    for (;;) {
        siginfo_t si;
        memset(&si, 0, sizeof si);
        int w = waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT | (deadline > 0 ? WNOHANG : 0));
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            goto fail;
        if (si.si_pid == pid)
            break;
        if (now_s() >= deadline) {
            res->timed_out = 1;
            kill(-pid, SIGKILL);
            kill(pid, SIGKILL);
            deadline = 0;  /* now wait for the kill to land */
            continue;
        }
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    kill(-pid, SIGKILL);
    while (waitpid(pid, &res->status, 0) < 0)
        if (errno != EINTR)
            goto fail;
    pid = -1;
    if (ob.oom || eb.oom) {
        rc = MCT_ENOMEM;
        goto fail;
    }
    res->out_len = ob.n;
    res->err_len = eb.n;
    res->out = io->out_max ? mct_str_take(&ob) : NULL;
    res->err = io->err_max ? mct_str_take(&eb) : NULL;
    rc = MCT_OK;
fail:
    if (pid > 0) {
        kill(-pid, SIGKILL);
        while (waitpid(pid, &res->status, 0) < 0 && errno == EINTR)
            ;
    }
    close_fd(&in[0]);
    close_fd(&in[1]);
    close_fd(&op[0]);
    close_fd(&op[1]);
    close_fd(&ep[0]);
    close_fd(&ep[1]);
    mct_str_free(&ob);
    mct_str_free(&eb);
    free(path);
    return rc;
}

void mct_proc_result_free(mct_proc_result *res)
{
    free(res->out);
    free(res->err);
    res->out = res->err = NULL;
}

int mct_proc_ok(int status) { return WIFEXITED(status) && WEXITSTATUS(status) == 0; }
