/* The parent side of the measurement harness's child protocol: fills the job header, starts the
 * driver (tuner/measure_driver.h) with its environment and descriptors, reads its messages
 * within the time limits, and turns each answer, fault, error, silence or death into a record.
 * Contract: tuner/measure.h; layout: tuner/meas_int.h. */
#include "tuner/meas_int.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tuner/baseline.h"
#include "tuner/proc.h"

extern char **environ;

static const char *sig_name(int s)
{
    switch (s) {
    case SIGSEGV: return "SIGSEGV";
    case SIGBUS: return "SIGBUS";
    case SIGILL: return "SIGILL";
    case SIGFPE: return "SIGFPE";
    case SIGABRT: return "SIGABRT";
    case SIGTRAP: return "SIGTRAP";
    case SIGSYS: return "SIGSYS";
    case SIGKILL: return "SIGKILL";
    case SIGTERM: return "SIGTERM";
    }
    return "a signal";
}

/* Environment of the child: ours, with the thread and binding settings replaced and LD_PRELOAD
 * dropped (a preloaded tool would change the figures). */
static char **child_env(const mct_meas *m, char store[4][64])
{
    static const char *drop[] = {"OMP_NUM_THREADS=", "OMP_PROC_BIND=", "OMP_PLACES=",
                                 "OPENBLAS_NUM_THREADS=", "GOMP_CPU_AFFINITY=", "LD_PRELOAD=",
                                 NULL};
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = malloc(sizeof *env * (n + 6));
    if (!env)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int skip = 0;
        for (int d = 0; drop[d]; d++)
            if (!strncmp(environ[i], drop[d], strlen(drop[d])))
                skip = 1;
        if (!skip)
            env[k++] = environ[i];
    }
    snprintf(store[0], 64, "OMP_NUM_THREADS=%d", m->o.threads);
    snprintf(store[1], 64, "OPENBLAS_NUM_THREADS=%d", m->o.threads);
    snprintf(store[2], 64, "OMP_PROC_BIND=close");
    snprintf(store[3], 64, "OMP_PLACES=cores");
    for (int i = 0; i < 4; i++)
        env[k++] = store[i];
    env[k] = NULL;
    return env;
}

/* Waits up to secs for one message; 1 got it, 0 the child closed the socket, -1 timeout. */
static int recv_msg(int fd, struct mct_msg *msg, double secs)
{
    double end = meas_now() + secs;
    for (;;) {
        double left = end - meas_now();
        if (left <= 0)
            return -1;
        struct pollfd p = {fd, POLLIN, 0};
        int r = poll(&p, 1, (int)(left * 1000) + 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r == 0)
            continue;
        ssize_t got = recv(fd, msg, sizeof *msg, 0);
        if (got < 0 && errno == EINTR)
            continue;
        if (got == (ssize_t)sizeof *msg)
            return 1;
        return 0;
    }
}

/* Last line the child wrote on stderr (glibc's "free(): invalid pointer" and the like). */
static void stderr_tail(int fd, char *out, size_t len)
{
    char buf[400];
    off_t end = lseek(fd, 0, SEEK_END);
    off_t from = end > (off_t)sizeof buf - 1 ? end - (off_t)sizeof buf + 1 : 0;
    ssize_t r = pread(fd, buf, sizeof buf - 1, from);
    out[0] = 0;
    if (r <= 0)
        return;
    buf[r] = 0;
    while (r > 0 && (buf[r - 1] == '\n' || buf[r - 1] == ' '))
        buf[--r] = 0;
    char *nl = strrchr(buf, '\n');
    snprintf(out, len, "%s", nl ? nl + 1 : buf);
}

static void describe_fault(const struct mct_msg *msg, const char *phase, char *out, size_t len)
{
    const char *what;
    switch (msg->where) {
    case 1: what = "out-of-bounds write before the start of C (guard page)"; break;
    case 2: what = "out-of-bounds access past the end of C (guard page)"; break;
    case 4: what = "write into a read-only input (A, B or bias)"; break;
    case 5: what = "out-of-bounds read past an input (A, B or bias) into a guard page"; break;
    default: what = "bad memory access or faulting instruction"; break;
    }
    if (msg->where == 1 || msg->where == 2)
        snprintf(out, len, "%s: %s, %ld bytes from the start of C (during %s)",
                 sig_name(msg->code), what, msg->off, phase);
    else
        snprintf(out, len, "%s: %s (during %s)", sig_name(msg->code), what, phase);
}

/* The ABI lets a kernel return 0 or MCT_ENOMEM (runtime/dispatch.h), and an AMX kernel
 * MCT_EUNSUPPORTED (codegen.h); anything else is a bug of the kernel, named as such. */
static void describe_kernel_error(long rc, const char *phase, char *out, size_t len)
{
    if (rc == MCT_ENOMEM)
        snprintf(out, len, "kernel returned MCT_ENOMEM (%ld): its packing or scratch buffer "
                 "could not be allocated, so C is not fully written (during %s)", rc, phase);
    else if (rc == MCT_EUNSUPPORTED)  /* widen(B, amx): the OS refused the tile state */
        snprintf(out, len, "kernel returned MCT_EUNSUPPORTED (%ld): the OS refused what it needs "
                 "(widen(B, amx): the AMX tile state, arch_prctl ARCH_REQ_XCOMP_PERM), so C is not "
                 "written (during %s)", rc, phase);
    else
        snprintf(out, len, "kernel returned %ld (%s), which the kernel ABI does not allow (0 or "
                 "MCT_ENOMEM) (during %s)", rc, mct_strerror((int)rc), phase);
}

/* The run-specific part of the job header: the candidate, the protocol's settings, the CPUs. */
static void job_fill(const mct_meas *m, const struct meas_cand *c, struct mct_job *j)
{
    j->prepacked = c->prepacked;
    /* the f32 libraries cannot read low-precision B; comparing with them on f32 weights is a
     * benchmark of its own */
    j->baseline = m->o.baseline && !MCT_WL_QUANT(&m->d.w);
    j->threads = m->o.threads;
    if (m->o.baseline) { /* the baseline libraries' choice: tuner/baseline.h */
        const char *cores[MCT_NCORE];
        int nc = mct_base_openblas_cores(mct_cpu_host(), mct_cpu_tier(), cores, MCT_NCORE);
        memset(j->ob_cores, 0, sizeof j->ob_cores);
        for (int i = 0; i < nc; i++)
            snprintf(j->ob_cores[i], sizeof j->ob_cores[i], "%s", cores[i]);
        j->dnnl_isa_cap = mct_base_onednn_isa_cap(mct_cpu_host(), mct_cpu_tier());
    }
    j->min_time = m->o.min_time_s;
    j->warmup_time = m->o.warmup_s;
    j->min_runs = m->o.min_runs;
    j->max_runs = m->o.max_runs;
    j->ncpu = 0;
    if (m->o.threads <= m->ncpu)
        for (int i = 0; i < m->o.threads; i++)
            j->cpus[j->ncpu++] = m->cpus[m->ncpu - m->o.threads + i];
}

/* The figures of a MSG_DONE: the candidate's, then every baseline library's. */
static void take_done(const mct_meas *m, const struct mct_msg *msg, mct_meas_result *r)
{
    double flops = mct_wl_flops(&m->d.w);
    r->status = MCT_MEAS_OK;
    r->detail[0] = 0;
    r->runs = msg->run.n;
    r->median_s = msg->run.med;
    r->min_s = msg->run.min;
    r->max_s = msg->run.max;
    r->q1_s = msg->run.q1;
    r->q3_s = msg->run.q3;
    r->gflops = r->median_s > 0 ? flops / r->median_s * 1e-9 : 0;
    if (m->o.baseline && msg->base_kind > 0) {
        r->has_baseline = 1;
        snprintf(r->base_name, sizeof r->base_name, "%s",
                 msg->base_kind == BASE_SGEMV ? "cblas_sgemv" : "cblas_sgemm");
        r->base_median_s = msg->base.med;
        r->base_min_s = msg->base.min;
        r->base_max_s = msg->base.max;
        r->base_runs = msg->base.n;
        r->base_gflops = msg->base.med > 0 ? flops / msg->base.med * 1e-9 : 0;
    } else if (m->o.baseline) {
        snprintf(r->base_name, sizeof r->base_name, "unavailable");
        snprintf(r->detail, sizeof r->detail, "baseline: %.400s", msg->text);
    }
    r->best_lib = -1;
    for (int i = 0; m->o.baseline && i < MCT_NLIB; i++) {
        const struct mct_lib_res *b = &msg->lib[i];
        struct mct_meas_lib *o = &r->libs[i];
        o->ok = b->kind > 0 && b->st.med > 0;
        memcpy(o->label, b->name, sizeof o->label);
        o->label[sizeof o->label - 1] = 0;
        snprintf(o->call, sizeof o->call, "%s", i == LIB_DNNL ? "dnnl_sgemm"
                 : b->kind == BASE_SGEMV ? "sgemv" : "sgemm");
        o->threads = b->threads;
        o->cpus = b->cpus;
        o->median_s = o->ok ? b->st.med : 0;
        o->gflops = o->ok ? flops / b->st.med * 1e-9 : 0;
        if (o->ok && (r->best_lib < 0 || o->median_s < r->libs[r->best_lib].median_s))
            r->best_lib = i;
    }
}

/* A MSG_ERROR: what the driver could not do, or what the kernel said. */
static void take_error(struct mct_msg *msg, const char *phase, mct_meas_result *r)
{
    msg->text[sizeof msg->text - 1] = 0;
    if (msg->code == ERR_LOAD || msg->code == ERR_SYMBOL) {
        r->status = MCT_MEAS_COMPILE_ERROR;
        snprintf(r->detail, sizeof r->detail, "%s%.400s",
                 msg->code == ERR_LOAD ? "the object does not load: " : "", msg->text);
    } else if (msg->code == ERR_CANARY) {
        snprintf(r->detail, sizeof r->detail, "out-of-bounds write (canary bytes changed), "
                 "%.400s", msg->text);
    } else if (msg->code == ERR_KERNEL) {
        describe_kernel_error(msg->off, phase, r->detail, sizeof r->detail);
    } else {
        snprintf(r->detail, sizeof r->detail, "driver set-up failed: %.400s", msg->text);
    }
}

void meas_proto_run(mct_meas *m, const struct meas_cand *c, const char *obj,
                    mct_meas_result *r)
{
    struct meas_data *d = &m->d;
    struct mct_job *j = &d->job;
    int sv[2] = {-1, -1}, efd = -1;
    char **env = NULL, store[4][64];
    pid_t pid = -1;
    double t0 = meas_now();
    const char *phase = "start-up and the checked first run";

    job_fill(m, c, j);
    r->status = MCT_MEAS_CRASH;
    if (pwrite(d->fd, j, sizeof *j, 0) != (ssize_t)sizeof *j) {
        snprintf(r->detail, sizeof r->detail, "harness: cannot write the job: %s",
                 strerror(errno));
        goto fail;
    }
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) ||
        (efd = memfd_create("mctune-stderr", MFD_CLOEXEC)) < 0 || !(env = child_env(m, store))) {
        snprintf(r->detail, sizeof r->detail, "harness: cannot set up the child: %s",
                 strerror(errno));
        goto fail;
    }
    char *argv[] = {m->driver, (char *)obj, (char *)c->fn, NULL};
    const int fds[5][2] = {{-1, 0}, {-1, 1}, {efd, 2}, {d->fd, 3}, {sv[1], 4}};
    if (mct_proc_spawn(m->driver, argv, env, fds, 5, &pid)) {
        snprintf(r->detail, sizeof r->detail, "harness: cannot fork the driver: %s",
                 strerror(errno));
        goto fail;
    }
    m->ctr.runs++;
    close(sv[1]);
    sv[1] = -1;

    struct mct_msg msg;
    double limit = m->o.timeout_s;
    int got = recv_msg(sv[0], &msg, limit), cutting = 0;
    if (got == 1 && msg.kind == MSG_START) {
        /* the first run gets what is left of the limit, or the cut when that is shorter */
        double left = limit - (meas_now() - t0);
        if (m->o.cut_s > 0 && !m->o.baseline && m->o.cut_s < left) {
            left = m->o.cut_s;
            cutting = 1;
        }
        got = recv_msg(sv[0], &msg, left > 0 ? left : 0.001);
        if (got < 0 && cutting) {
            r->status = MCT_MEAS_TIMEOUT;
            r->cut = 1;
            snprintf(r->detail, sizeof r->detail, "cut: the checked first run took over %.3f s "
                     "(the caller's cut, a multiple of its best latency); killed", m->o.cut_s);
            kill(-pid, SIGKILL);
            kill(pid, SIGKILL);
            goto reap;
        }
    }
    if (got == 1 && msg.kind == MSG_FIRST) {
        r->first_s = msg.first_s;
        if (!meas_data_check(d, r, c->dot)) {
            r->status = MCT_MEAS_WRONG;
            send(sv[0], "q", 1, MSG_NOSIGNAL);
            goto reap;
        }
        if (m->o.cut_s > 0 && !m->o.baseline && msg.first_s > m->o.cut_s) {
            /* far slower than what the caller already has: the first run is its figure */
            send(sv[0], "q", 1, MSG_NOSIGNAL);
            struct mct_msg one = msg;
            one.run.n = 1;
            one.run.med = one.run.min = one.run.max = one.run.q1 = one.run.q3 = msg.first_s;
            take_done(m, &one, r);
            r->cut = 1;
            goto reap;
        }
        send(sv[0], "g", 1, MSG_NOSIGNAL);
        phase = "the timed runs";
        /* room for warm-up and the calls the protocol needs, twice over, plus the baseline */
        double need = m->o.warmup_s + m->o.min_time_s + (m->o.min_runs + 2) * msg.first_s;
        limit = m->o.timeout_s + 2 * need * (m->o.baseline ? 7 : 1);
        got = recv_msg(sv[0], &msg, limit);
    }
    if (got == 1 && msg.kind == MSG_DONE) {
        take_done(m, &msg, r);
    } else if (got == 1 && msg.kind == MSG_FAULT) {
        describe_fault(&msg, phase, r->detail, sizeof r->detail);
    } else if (got == 1 && msg.kind == MSG_ERROR) {
        take_error(&msg, phase, r);
    } else if (got == 1) {
        snprintf(r->detail, sizeof r->detail, "harness: unexpected message %d from the driver "
                 "during %s", msg.kind, phase);
    } else if (got < 0) {
        r->status = MCT_MEAS_TIMEOUT;
        snprintf(r->detail, sizeof r->detail, "no answer within %.1f s during %s; killed (the "
                 "limit is timeout_s, now %.1f s)", limit, phase, m->o.timeout_s);
        kill(-pid, SIGKILL);
        kill(pid, SIGKILL);
    }
reap:;
    /* the child has answered (or is being killed); give it a moment to exit, then insist */
    int st = 0;
    mct_proc_wait(pid, 5, &st, NULL);
    if (got == 0) { /* no message at all: the child died or left early */
        char tail[400];
        stderr_tail(efd, tail, sizeof tail);
        if (WIFSIGNALED(st))
            snprintf(r->detail, sizeof r->detail, "killed by %s during %s%s%s",
                     sig_name(WTERMSIG(st)), phase, *tail ? ": " : "", tail);
        else
            snprintf(r->detail, sizeof r->detail, "exited early with status %d during %s%s%s",
                     WIFEXITED(st) ? WEXITSTATUS(st) : -1, phase, *tail ? ": " : "", tail);
    }
fail:
    r->run_s = meas_now() - t0;
    m->ctr.run_wall_s += r->run_s;
    if (sv[0] >= 0)
        close(sv[0]);
    if (sv[1] >= 0)
        close(sv[1]);
    if (efd >= 0)
        close(efd);
    free(env);
}
