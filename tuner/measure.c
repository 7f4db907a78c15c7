/* Measurement harness: compile cache, child runs with guard pages, oracle check, timing.
 * The contract is in tuner/measure.h; the child program is in tuner/measure_driver.h. */
#include "tuner/measure.h"
#include "tuner/measure_driver.h"
#include "tuner/oracle.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

MCT_MEAS_PROTO_DEF

extern char **environ;

#define KERNEL_FN "mct_cand"
#define DRIVER_CFLAGS "-O2 -std=c11 -D_GNU_SOURCE"
#define MAX_ARGS 64

struct data {
    int valid;
    char key[300];          /* canonical workload text + hot + copies */
    mct_workload w;
    int fd;                 /* the memfd the children map */
    char *map;
    size_t len;
    struct mct_job job;
    float *cref;            /* the oracle's answer */
    size_t rotate_bytes;
};

struct mct_meas {
    mct_meas_opts o;
    char *cache_dir, *cc, *cc_version, *cflags, *host;
    char *argv_store;       /* cflags split in place */
    char *cflag_argv[MAX_ARGS];
    int ncflags;
    char *driver;           /* path of the built driver, NULL until the first run */
    int cpus[MCT_MAXCPU], ncpu;
    long llc;
    long pg;
    unsigned long tmp_seq;
    mct_meas_counters ctr;
    struct data d;
};

const char *mct_meas_status_name(mct_meas_status s)
{
    switch (s) {
    case MCT_MEAS_OK: return "ok";
    case MCT_MEAS_COMPILE_ERROR: return "compile-error";
    case MCT_MEAS_CRASH: return "crash";
    case MCT_MEAS_TIMEOUT: return "timeout";
    case MCT_MEAS_WRONG: return "wrong";
    }
    return "unknown";
}

void mct_meas_opts_default(mct_meas_opts *o)
{
    memset(o, 0, sizeof *o);
    o->threads = 1;
    o->min_time_s = 0.2;
    o->min_runs = 5;
    o->max_runs = 100000;
    o->warmup_s = 0.02;
    o->timeout_s = 30;
    o->compile_timeout_s = 120;
    o->rotate_cap = (size_t)1 << 30;
    o->seed = 1;
}

static void fill_defaults(mct_meas_opts *o)
{
    mct_meas_opts d;
    mct_meas_opts_default(&d);
    if (o->threads <= 0) o->threads = d.threads;
    if (o->min_time_s <= 0) o->min_time_s = d.min_time_s;
    if (o->min_runs <= 0) o->min_runs = d.min_runs;
    if (o->max_runs <= 0) o->max_runs = d.max_runs;
    if (o->max_runs < o->min_runs) o->max_runs = o->min_runs;
    if (o->warmup_s <= 0) o->warmup_s = d.warmup_s;
    if (o->timeout_s <= 0) o->timeout_s = d.timeout_s;
    if (o->compile_timeout_s <= 0) o->compile_timeout_s = d.compile_timeout_s;
    if (o->rotate_cap == 0) o->rotate_cap = d.rotate_cap;
    if (o->seed == 0) o->seed = d.seed;
}

static void set_err(char *err, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t len, const char *fmt, ...)
{
    if (!err || !len)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;
    va_start(ap, fmt);
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    return s;
}

/* mkdir -p */
static int make_dirs(const char *path)
{
    char *p = strdup(path);
    if (!p)
        return MCT_ENOMEM;
    for (char *s = p + 1;; s++) {
        if (*s == '/' || *s == 0) {
            char c = *s;
            *s = 0;
            if (mkdir(p, 0777) && errno != EEXIST) {
                free(p);
                return MCT_EIO;
            }
            *s = c;
            if (!c)
                break;
        }
    }
    free(p);
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode) ? 0 : MCT_EIO;
}

static char *find_in_path(const char *name)
{
    if (strchr(name, '/'))
        return access(name, X_OK) == 0 ? strdup(name) : NULL;
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = "/usr/local/bin:/usr/bin:/bin";
    while (*path) {
        const char *e = strchr(path, ':');
        size_t n = e ? (size_t)(e - path) : strlen(path);
        char *cand = xasprintf("%.*s/%s", (int)n, path, name);
        if (cand && access(cand, X_OK) == 0)
            return cand;
        free(cand);
        path += n + (e ? 1 : 0);
    }
    return NULL;
}

/* fork + exec with fds moved into place. pairs: {src, dst}; src -1 means /dev/null. Only
 * async-signal-safe calls between fork and exec. The child leads its own process group (so a
 * timeout kills everything it started), dies with the parent, and dumps no core. */
static int spawn(const char *path, char *const argv[], char *const envp[], const int (*fds)[2],
                 int nfd, pid_t *out)
{
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
        for (int i = 0; i < nfd && i < 8; i++) {
            int s = fds[i][0] >= 0 ? fds[i][0] : open("/dev/null", O_RDWR);
            tmp[i] = fcntl(s, F_DUPFD_CLOEXEC, 64);
            if (tmp[i] < 0)
                _exit(126);
        }
        for (int i = 0; i < nfd && i < 8; i++)
            if (dup2(tmp[i], fds[i][1]) < 0)
                _exit(126);
        execve(path, argv, envp);
        _exit(127);
    }
    *out = pid;
    return 0;
}

/* Runs a short command and returns the first line of its stdout (malloc'ed), or NULL. */
static char *first_line_of(const char *path, char *const argv[])
{
    int p[2];
    if (pipe2(p, O_CLOEXEC))
        return NULL;
    const int fds[3][2] = {{-1, 0}, {p[1], 1}, {-1, 2}};
    pid_t pid;
    if (spawn(path, argv, environ, fds, 3, &pid)) {
        close(p[0]);
        close(p[1]);
        return NULL;
    }
    close(p[1]);
    char buf[512];
    size_t len = 0;
    ssize_t r;
    while (len < sizeof buf - 1 && (r = read(p[0], buf + len, sizeof buf - 1 - len)) != 0) {
        if (r < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        len += (size_t)r;
    }
    close(p[0]);
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    buf[len] = 0;
    buf[strcspn(buf, "\n")] = 0;
    return len ? strdup(buf) : NULL;
}

/* What -march=native means here: the CPU's model name and flags, so a cache shared between
 * machines (NFS home) never hands one CPU's object to another. */
static char *host_id(void)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    char *model = NULL, *flags = NULL, *line = NULL;
    size_t cap = 0;
    if (f) {
        while (getline(&line, &cap, f) > 0 && (!model || !flags)) {
            if (!model && !strncmp(line, "model name", 10))
                model = strdup(line);
            else if (!flags && !strncmp(line, "flags", 5))
                flags = strdup(line);
        }
        fclose(f);
    }
    char *id = xasprintf("%s%s", model ? model : "?\n", flags ? flags : "?\n");
    free(model);
    free(flags);
    free(line);
    return id;
}

static long llc_bytes(void)
{
    long v = sysconf(_SC_LEVEL3_CACHE_SIZE);
    if (v > 0)
        return v;
    v = sysconf(_SC_LEVEL2_CACHE_SIZE);
    FILE *f = fopen("/sys/devices/system/cpu/cpu0/cache/index3/size", "r");
    if (f) {
        long k = 0;
        char unit = 0;
        if (fscanf(f, "%ld%c", &k, &unit) >= 1 && k > 0)
            v = unit == 'M' ? k << 20 : k << 10;
        fclose(f);
    }
    return v > 0 ? v : 32L << 20;
}

/* Temporary files of a process that died mid-write stay behind; anything older than an hour
 * is such a leftover (a live compile or write takes seconds). */
static void remove_stale_tmp(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    time_t limit = time(NULL) - 3600;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strstr(e->d_name, ".tmp."))
            continue;
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
            st.st_mtime < limit)
            unlinkat(dirfd(d), e->d_name, 0);
    }
    closedir(d);
}

int mct_meas_create(const mct_meas_opts *opts, mct_meas **out, char *err, size_t errlen)
{
    int rc = MCT_ENOMEM;
    mct_meas *m = calloc(1, sizeof *m);
    if (!m)
        goto fail;
    if (opts)
        m->o = *opts;
    else
        mct_meas_opts_default(&m->o);
    fill_defaults(&m->o);
    m->d.fd = -1;
    m->pg = sysconf(_SC_PAGESIZE);
    m->llc = llc_bytes();

    const char *dir = m->o.cache_dir;
    if (!dir || !*dir)
        dir = getenv("MCTUNE_CC_CACHE");
    if (dir && *dir)
        m->cache_dir = strdup(dir);
    else if (getenv("XDG_CACHE_HOME") && *getenv("XDG_CACHE_HOME"))
        m->cache_dir = xasprintf("%s/mctune/cc", getenv("XDG_CACHE_HOME"));
    else if (getenv("HOME") && *getenv("HOME"))
        m->cache_dir = xasprintf("%s/.cache/mctune/cc", getenv("HOME"));
    else {
        rc = MCT_EINVAL;
        set_err(err, errlen, "no compile cache folder: set MCTUNE_CC_CACHE, XDG_CACHE_HOME or "
                "HOME");
        goto fail;
    }
    if (!m->cache_dir)
        goto fail;
    rc = make_dirs(m->cache_dir);
    if (rc || access(m->cache_dir, W_OK)) {
        set_err(err, errlen, "compile cache folder '%s' cannot be created or written (%s); "
                "choose another with MCTUNE_CC_CACHE", m->cache_dir, strerror(errno));
        rc = rc ? rc : MCT_EIO;
        goto fail;
    }

    remove_stale_tmp(m->cache_dir);

    const char *ccname = m->o.cc && *m->o.cc ? m->o.cc : "cc";
    m->cc = find_in_path(ccname);
    if (!m->cc) {
        rc = MCT_EUNSUPPORTED;
        set_err(err, errlen, "compiler '%s' not found in PATH; install a C compiler (gcc or "
                "clang) or name one with --cc / mct_meas_opts.cc", ccname);
        goto fail;
    }
    char *vargv[] = {m->cc, "--version", NULL};
    m->cc_version = first_line_of(m->cc, vargv);
    if (!m->cc_version) {
        rc = MCT_EUNSUPPORTED;
        set_err(err, errlen, "compiler '%s' does not answer '--version'; is it a C compiler?",
                m->cc);
        goto fail;
    }
    rc = MCT_ENOMEM;
    m->cflags = strdup(m->o.cflags ? m->o.cflags : MCT_MEAS_CFLAGS);
    m->argv_store = strdup(m->cflags ? m->cflags : "");
    if (!m->cflags || !m->argv_store)
        goto fail;
    char *save = NULL;
    for (char *s = strtok_r(m->argv_store, " \t", &save); s;
         s = strtok_r(NULL, " \t", &save)) {
        if (m->ncflags >= MAX_ARGS - 8) {
            rc = MCT_ERANGE;
            set_err(err, errlen, "too many compiler flags in '%s' (at most %d)", m->cflags,
                    MAX_ARGS - 8);
            goto fail;
        }
        m->cflag_argv[m->ncflags++] = s;
    }
    m->host = strstr(m->cflags, "native") ? host_id() : strdup("");
    if (!m->host)
        goto fail;

    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        for (int c = 0; c < CPU_SETSIZE && m->ncpu < MCT_MAXCPU; c++)
            if (CPU_ISSET(c, &set))
                m->cpus[m->ncpu++] = c;
    if (m->o.jobs <= 0)
        m->o.jobs = m->ncpu > 0 ? m->ncpu : 1;
    /* the strings in o now point into m (or at static text); the caller's may go away */
    m->o.cache_dir = m->cache_dir;
    m->o.cc = m->cc;
    m->o.cflags = m->cflags;
    *out = m;
    return 0;
fail:
    if (rc == MCT_ENOMEM)
        set_err(err, errlen, "out of memory while creating the measurement harness");
    mct_meas_destroy(m);
    return rc;
}

static void data_release(struct data *d)
{
    if (d->map)
        munmap(d->map, d->len);
    if (d->fd >= 0)
        close(d->fd);
    free(d->cref);
    memset(d, 0, sizeof *d);
    d->fd = -1;
}

void mct_meas_destroy(mct_meas *m)
{
    if (!m)
        return;
    data_release(&m->d);
    free(m->cache_dir);
    free(m->cc);
    free(m->cc_version);
    free(m->cflags);
    free(m->argv_store);
    free(m->host);
    free(m->driver);
    free(m);
}

const char *mct_meas_cache_dir(const mct_meas *m)
{
    return m->cache_dir;
}

void mct_meas_get_counters(const mct_meas *m, mct_meas_counters *out)
{
    *out = m->ctr;
}

/* Compile cache ---------------------------------------------------------------------------- */

static void cache_key(const mct_meas *m, const char *kind, const char *flags, const char *src,
                      uint8_t out[16])
{
    XXH3_state_t st;
    XXH3_128bits_reset(&st);
    const char *parts[] = {"mctune-meas-cc 1", kind, m->cc, m->cc_version, flags, m->host, src};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        XXH3_128bits_update(&st, parts[i], strlen(parts[i]) + 1);
    XXH128_canonical_t c;
    XXH128_canonicalFromHash(&c, XXH3_128bits_digest(&st));
    memcpy(out, c.digest, 16);
}

static void hex16(const uint8_t k[16], char out[33])
{
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", k[i]);
}

static int file_exists(const char *p)
{
    return access(p, F_OK) == 0;
}

/* Writes data to path atomically (temporary file in the same folder, then rename). */
static int write_atomic(mct_meas *m, const char *path, const char *data, size_t len)
{
    char *tmp = xasprintf("%s.tmp.%ld.%lu", path, (long)getpid(), m->tmp_seq++);
    if (!tmp)
        return MCT_ENOMEM;
    int rc = MCT_EIO;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        goto fail;
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            close(fd);
            unlink(tmp);
            goto fail;
        }
        off += (size_t)w;
    }
    if (close(fd) || rename(tmp, path)) {
        unlink(tmp);
        goto fail;
    }
    rc = 0;
fail:
    free(tmp);
    return rc;
}

/* One compiler invocation in flight. */
struct job {
    uint8_t key[16];
    char *src_path, *obj, *obj_tmp, *err_path, *err_tmp;
    pid_t pid;
    double t0, secs;
    int done, ok, cached;
    char detail[512];
};

static void job_free(struct job *j)
{
    free(j->src_path);
    free(j->obj);
    free(j->obj_tmp);
    free(j->err_path);
    free(j->err_tmp);
    memset(j, 0, sizeof *j);
}

/* The first line of a compiler log that says "error", else its first line. */
static void log_summary(const char *path, char *out, size_t len)
{
    FILE *f = fopen(path, "r");
    char *line = NULL, *first = NULL;
    size_t cap = 0;
    int found = 0;
    if (f) {
        while (getline(&line, &cap, f) > 0) {
            line[strcspn(line, "\n")] = 0;
            if (!first)
                first = strdup(line);
            if (strstr(line, "error")) {
                snprintf(out, len, "%s", line);
                found = 1;
                break;
            }
        }
        fclose(f);
    }
    if (!found)
        snprintf(out, len, "%s", first ? first : "the compiler failed and printed nothing");
    free(line);
    free(first);
}

/* Sets up a job: key, paths; a cache hit (object or cached error) finishes it at once. */
static int job_prepare(mct_meas *m, struct job *j, const char *kind, const char *flags,
                       const char *src, const char *ext)
{
    char hex[33];
    cache_key(m, kind, flags, src, j->key);
    hex16(j->key, hex);
    const char *pre = strcmp(kind, "driver") ? "" : "driver-";
    j->src_path = xasprintf("%s/%s%s.c", m->cache_dir, pre, hex);
    j->obj = xasprintf("%s/%s%s%s", m->cache_dir, pre, hex, ext);
    j->err_path = xasprintf("%s/%s%s.err", m->cache_dir, pre, hex);
    if (!j->src_path || !j->obj || !j->err_path)
        return MCT_ENOMEM;
    if (file_exists(j->obj)) {
        j->done = j->ok = j->cached = 1;
        return 0;
    }
    if (file_exists(j->err_path)) {
        j->done = j->cached = 1;
        log_summary(j->err_path, j->detail, sizeof j->detail);
        return 0;
    }
    if (write_atomic(m, j->src_path, src, strlen(src)))
        return MCT_EIO;
    j->obj_tmp = xasprintf("%s.tmp.%ld.%lu", j->obj, (long)getpid(), m->tmp_seq++);
    j->err_tmp = xasprintf("%s.tmp.%ld.%lu", j->err_path, (long)getpid(), m->tmp_seq++);
    return j->obj_tmp && j->err_tmp ? 0 : MCT_ENOMEM;
}

static int job_start(mct_meas *m, struct job *j, char *const *flags, int nflags,
                     const char *const *libs)
{
    char *argv[MAX_ARGS + 8];
    int n = 0;
    argv[n++] = m->cc;
    for (int i = 0; i < nflags; i++)
        argv[n++] = flags[i];
    argv[n++] = "-o";
    argv[n++] = j->obj_tmp;
    argv[n++] = j->src_path;
    for (int i = 0; libs && libs[i] && n < MAX_ARGS + 7; i++)
        argv[n++] = (char *)libs[i];
    argv[n] = NULL;
    int efd = open(j->err_tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (efd < 0)
        return MCT_EIO;
    const int fds[3][2] = {{-1, 0}, {-1, 1}, {efd, 2}};
    j->t0 = now();
    int rc = spawn(m->cc, argv, environ, fds, 3, &j->pid);
    close(efd);
    return rc;
}

/* Polls a running job; finishes it (rename into the cache) when the compiler is done. */
static void job_poll(mct_meas *m, struct job *j)
{
    int st;
    pid_t r = waitpid(j->pid, &st, WNOHANG);
    double t = now();
    if (r == 0 && t - j->t0 < m->o.compile_timeout_s)
        return;
    if (r == 0) {
        kill(-j->pid, SIGKILL);
        kill(j->pid, SIGKILL);
        while (waitpid(j->pid, &st, 0) < 0 && errno == EINTR)
            ;
        snprintf(j->detail, sizeof j->detail, "the compiler ran past %.0f s and was killed "
                 "(raise compile_timeout_s)", m->o.compile_timeout_s);
        unlink(j->obj_tmp);
        unlink(j->err_tmp);
    } else if (r < 0) {
        snprintf(j->detail, sizeof j->detail, "lost the compiler process: %s", strerror(errno));
    } else if (WIFEXITED(st) && WEXITSTATUS(st) == 0 && file_exists(j->obj_tmp)) {
        if (rename(j->obj_tmp, j->obj) == 0)
            j->ok = 1;
        else
            snprintf(j->detail, sizeof j->detail, "cannot rename into the cache '%s': %s",
                     j->obj, strerror(errno));
        unlink(j->err_tmp);
    } else if (WIFEXITED(st) && WEXITSTATUS(st) != 126 && WEXITSTATUS(st) != 127) {
        /* a real compile error: cache it so that it costs once */
        unlink(j->obj_tmp);
        rename(j->err_tmp, j->err_path);
        log_summary(j->err_path, j->detail, sizeof j->detail);
    } else {
        unlink(j->obj_tmp);
        unlink(j->err_tmp);
        if (WIFSIGNALED(st))
            snprintf(j->detail, sizeof j->detail, "the compiler was killed by signal %d",
                     WTERMSIG(st));
        else
            snprintf(j->detail, sizeof j->detail, "cannot run the compiler '%s' (exit %d)",
                     m->cc, WEXITSTATUS(st));
    }
    j->secs = t - j->t0;
    j->done = 1;
}

static int ensure_driver(mct_meas *m, char *err, size_t errlen)
{
    if (m->driver)
        return 0;
    struct job j;
    memset(&j, 0, sizeof j);
    char fl[] = DRIVER_CFLAGS;
    char *flags[8];
    int nf = 0;
    char *save = NULL;
    for (char *s = strtok_r(fl, " ", &save); s && nf < 8; s = strtok_r(NULL, " ", &save))
        flags[nf++] = s;
    const char *libs[] = {"-ldl", "-lm", NULL};
    int rc = job_prepare(m, &j, "driver", DRIVER_CFLAGS " -ldl -lm", mct_meas_driver_src, "");
    if (rc)
        goto fail;
    if (!j.done) {
        rc = job_start(m, &j, flags, nf, libs);
        if (rc)
            goto fail;
        while (!j.done) {
            job_poll(m, &j);
            if (!j.done)
                usleep(2000);
        }
    }
    if (!j.ok) {
        rc = MCT_EUNSUPPORTED;
        set_err(err, errlen, "cannot build the measurement driver with '%s': %s (log: %s)",
                m->cc, j.detail, j.err_path);
        goto fail;
    }
    m->driver = j.obj;
    j.obj = NULL;
    rc = 0;
fail:
    job_free(&j);
    return rc;
}

/* Candidates ------------------------------------------------------------------------------ */

struct cand {
    char *src;              /* owned when lowered */
    const char *fn;
    int prepacked;
    int lower_failed;
    char detail[512];
    struct job job;
    int dup_of;             /* index of an earlier candidate with the same key, or -1 */
};

static int cand_prepare(mct_meas *m, const mct_meas_cand *in, struct cand *c)
{
    memset(c, 0, sizeof *c);
    c->dup_of = -1;
    if (in->sched) {
        mct_target t = m->o.target.vlen > 0 ? m->o.target : mct_target_host();
        int rc = mct_cg_lower_c(in->sched, &t, KERNEL_FN, &c->src);
        if (rc) {
            c->lower_failed = 1;
            snprintf(c->detail, sizeof c->detail, "lowering the schedule to C failed: %s",
                     mct_strerror(rc));
            return 0;
        }
        c->fn = KERNEL_FN;
        c->prepacked = mct_sched_prepacked(in->sched);
    } else {
        if (!in->source || !in->fn || !*in->fn)
            return MCT_EINVAL;
        c->src = strdup(in->source);
        if (!c->src)
            return MCT_ENOMEM;
        c->fn = in->fn;
        c->prepacked = in->prepacked;
    }
    return job_prepare(m, &c->job, "kernel -lm", m->cflags, c->src, ".so");
}

static void cand_free(struct cand *c)
{
    free(c->src);
    job_free(&c->job);
}

/* Compiles every candidate that is not done yet, up to jobs at once. */
static int compile_all(mct_meas *m, struct cand *c, int n)
{
    double t0 = now();
    int next = 0, running = 0, rc = 0;
    int *active = calloc((size_t)m->o.jobs, sizeof *active);
    if (!active)
        return MCT_ENOMEM;
    for (int i = 0; i < m->o.jobs; i++)
        active[i] = -1;
    for (;;) {
        while (running < m->o.jobs && next < n) {
            struct cand *x = &c[next];
            if (x->lower_failed || x->job.done || x->dup_of >= 0) {
                next++;
                continue;
            }
            /* -lm: epilogues call expf/tanhf, and the driver does not link libm */
            static const char *const libs[] = {"-lm", NULL};
            int r = job_start(m, &x->job, m->cflag_argv, m->ncflags, libs);
            if (r) {
                snprintf(x->job.detail, sizeof x->job.detail, "cannot start the compiler '%s'",
                         m->cc);
                x->job.done = 1;
                rc = r;
                next++;
                continue;
            }
            m->ctr.compiles++;
            for (int s = 0; s < m->o.jobs; s++)
                if (active[s] < 0) {
                    active[s] = next;
                    break;
                }
            running++;
            next++;
        }
        if (!running)
            break;
        int finished = 0;
        for (int s = 0; s < m->o.jobs; s++) {
            if (active[s] < 0)
                continue;
            job_poll(m, &c[active[s]].job);
            if (c[active[s]].job.done) {
                active[s] = -1;
                running--;
                finished = 1;
            }
        }
        if (!finished)
            usleep(1000);
    }
    free(active);
    m->ctr.compile_wall_s += now() - t0;
    return rc;
}

/* Inputs ----------------------------------------------------------------------------------- */

static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static void fill_uniform(float *p, long n, uint64_t *s)
{
    for (long i = 0; i < n; i++)
        p[i] = (float)((double)(rng_next(s) >> 40) / (double)(1ULL << 24) * 2.0 - 1.0);
}

static long round_up(long x, long to)
{
    return (x + to - 1) / to * to;
}

/* Builds (or reuses) the memfd with A, bias, C0, the out area and the B copies, and the
 * oracle's answer. */
static int data_prepare(mct_meas *m, const mct_workload *w, char *err, size_t errlen)
{
    char wl[256];
    int rc = mct_wl_format(w, wl, sizeof wl);
    if (rc < 0)
        return rc;
    long heads = (long)(w->batch / w->group);
    long a_floats = (long)(w->M * w->K * w->batch);
    long b_floats = (long)(w->N * w->K) * heads;
    long c_floats = (long)(w->M * w->N * w->batch);
    long b_bytes = b_floats * 4, b_stride = round_up(round_up(b_bytes, 64), m->pg);
    long copies = 1;
    if (!m->o.hot) {
        copies = m->llc / b_bytes + 1;
        long cap = (long)(m->o.rotate_cap / (size_t)b_stride);
        if (copies > cap)
            copies = cap > 1 ? cap : 1;
    }
    char key[300];
    snprintf(key, sizeof key, "%s|%d|%ld|%llu", wl, m->o.hot, copies,
             (unsigned long long)m->o.seed);
    if (m->d.valid && !strcmp(m->d.key, key))
        return 0;
    data_release(&m->d);
    struct data *d = &m->d;

    struct mct_job *j = &d->job;
    memset(j, 0, sizeof *j);
    j->magic = MCT_JOB_MAGIC;
    j->version = MCT_MEAS_PROTO_VERSION;
    j->size = sizeof *j;
    j->M = (long)w->M;
    j->N = (long)w->N;
    j->K = (long)w->K;
    j->batch = (long)w->batch;
    j->group = (long)w->group;
    j->lda = j->K;
    j->ldb = w->layout == MCT_NT ? j->K : j->N;
    j->ldc = j->N;
    if (w->op == MCT_OP_BMM) {
        j->sA = j->M * j->K;
        j->sB = j->N * j->K;
        j->sC = j->M * j->N;
    }
    j->layout = w->layout == MCT_NT;
    j->beta = w->beta;
    j->has_bias = w->bias;
    j->a_floats = a_floats;
    j->b_floats = b_floats;
    j->c_floats = c_floats;
    j->copies = copies;
    j->b_stride = b_stride;
    long lens[MCT_NSEC] = {
        round_up(round_up(a_floats * 4, 64), m->pg),
        w->bias ? round_up(round_up(j->N * 4, 64), m->pg) : 0,
        round_up(round_up(c_floats * 4, 64), m->pg),
        round_up(round_up(c_floats * 4, 64), m->pg),
        b_stride * copies,
    };
    long off = m->pg; /* page 0: the job header */
    for (int s = 0; s < MCT_NSEC; s++) {
        j->sec_off[s] = off;
        j->sec_len[s] = lens[s];
        off += lens[s];
    }
    /* each array ends (64-byte aligned) at the end of its section, next to a guard page */
    j->a_at = j->sec_off[SEC_A] + lens[SEC_A] - round_up(a_floats * 4, 64);
    j->bias_at = w->bias ? j->sec_off[SEC_BIAS] + lens[SEC_BIAS] - round_up(j->N * 4, 64) : 0;
    j->c0_at = j->sec_off[SEC_C0] + lens[SEC_C0] - round_up(c_floats * 4, 64);
    j->out_at = j->sec_off[SEC_OUT] + lens[SEC_OUT] - round_up(c_floats * 4, 64);
    j->b_at = j->sec_off[SEC_B] + b_stride - round_up(b_bytes, 64);

    d->len = (size_t)off;
    d->rotate_bytes = (size_t)(b_bytes * copies);
    d->fd = memfd_create("mctune-inputs", MFD_CLOEXEC);
    if (d->fd < 0 || ftruncate(d->fd, (off_t)d->len)) {
        set_err(err, errlen, "cannot create %.0f MiB of shared input memory: %s",
                (double)d->len / (1 << 20), strerror(errno));
        rc = MCT_ENOMEM;
        goto fail;
    }
    d->map = mmap(NULL, d->len, PROT_READ | PROT_WRITE, MAP_SHARED, d->fd, 0);
    if (d->map == MAP_FAILED) {
        d->map = NULL;
        set_err(err, errlen, "cannot map %.0f MiB of shared input memory: %s",
                (double)d->len / (1 << 20), strerror(errno));
        rc = MCT_ENOMEM;
        goto fail;
    }
    uint64_t s = m->o.seed * 0x9E3779B97F4A7C15ULL + 1;
    float *A = (float *)(d->map + j->a_at), *B = (float *)(d->map + j->b_at);
    float *bias = w->bias ? (float *)(d->map + j->bias_at) : NULL;
    float *C0 = (float *)(d->map + j->c0_at);
    fill_uniform(A, a_floats, &s);
    fill_uniform(B, b_floats, &s);
    if (bias)
        fill_uniform(bias, j->N, &s);
    if (w->beta)
        fill_uniform(C0, c_floats, &s);
    else /* C = out must not read C: NaN there turns any read into a wrong answer */
        for (long i = 0; i < c_floats; i++)
            C0[i] = NAN;
    for (long c = 1; c < copies; c++)
        memcpy(d->map + j->b_at + c * b_stride, B, (size_t)b_bytes);
    d->cref = malloc(sizeof(float) * (size_t)c_floats);
    if (!d->cref) {
        rc = MCT_ENOMEM;
        set_err(err, errlen, "out of memory for the oracle's answer (%ld floats)", c_floats);
        goto fail;
    }
    memcpy(d->cref, C0, sizeof(float) * (size_t)c_floats);
    mct_oracle_run(w, j->M, j->N, j->K, A, j->lda, B, j->ldb, d->cref, j->ldc, bias, j->batch,
                   j->group, j->sA, j->sB, j->sC);
    d->w = *w;
    snprintf(d->key, sizeof d->key, "%s", key);
    d->valid = 1;
    return 0;
fail:
    data_release(d);
    return rc;
}

/* Running one candidate ------------------------------------------------------------------- */

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

/* Environment of the child: ours, with the thread and binding settings replaced. */
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
    double end = now() + secs;
    for (;;) {
        double left = end - now();
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

static void describe_fault(const struct mct_msg *msg, char *out, size_t len)
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
        snprintf(out, len, "%s: %s, %ld bytes from the start of C", sig_name(msg->code), what,
                 msg->off);
    else
        snprintf(out, len, "%s: %s", sig_name(msg->code), what);
}

static void run_child(mct_meas *m, const struct cand *c, mct_meas_result *r)
{
    struct data *d = &m->d;
    struct mct_job *j = &d->job;
    int sv[2] = {-1, -1}, efd = -1;
    char **env = NULL, store[4][64];
    pid_t pid = -1;
    double t0 = now();
    const char *phase = "start-up and the checked first run";

    j->prepacked = c->prepacked;
    j->baseline = m->o.baseline;
    j->threads = m->o.threads;
    j->min_time = m->o.min_time_s;
    j->warmup_time = m->o.warmup_s;
    j->min_runs = m->o.min_runs;
    j->max_runs = m->o.max_runs;
    j->ncpu = 0;
    if (m->o.threads <= m->ncpu)
        for (int i = 0; i < m->o.threads; i++)
            j->cpus[j->ncpu++] = m->cpus[m->ncpu - m->o.threads + i];
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
    char *argv[] = {m->driver, c->job.obj, (char *)c->fn, NULL};
    const int fds[5][2] = {{-1, 0}, {-1, 1}, {efd, 2}, {d->fd, 3}, {sv[1], 4}};
    if (spawn(m->driver, argv, env, fds, 5, &pid)) {
        snprintf(r->detail, sizeof r->detail, "harness: cannot fork the driver: %s",
                 strerror(errno));
        goto fail;
    }
    m->ctr.runs++;
    close(sv[1]);
    sv[1] = -1;

    struct mct_msg msg;
    double limit = m->o.timeout_s;
    int got = recv_msg(sv[0], &msg, limit);
    if (got == 1 && msg.kind == MSG_FIRST) {
        r->first_s = msg.first_s;
        float *outp = (float *)(d->map + j->out_at);
        r->relerr = mct_oracle_relerr(j->M, j->N, j->K, outp, d->cref, j->ldc, j->batch, j->sC);
        double tol = mct_oracle_tolerance(j->K);
        if (!(r->relerr <= tol)) {
            r->status = MCT_MEAS_WRONG;
            snprintf(r->detail, sizeof r->detail, "first run differs from the oracle: relative "
                     "error %.3g > tolerance %.3g (K=%ld)", r->relerr, tol, j->K);
            send(sv[0], "q", 1, MSG_NOSIGNAL);
            goto reap;
        }
        send(sv[0], "g", 1, MSG_NOSIGNAL);
        phase = "the timed runs";
        /* room for warm-up and the calls the protocol needs, twice over, plus the baseline */
        double need = m->o.warmup_s + m->o.min_time_s + (m->o.min_runs + 2) * msg.first_s;
        limit = m->o.timeout_s + 2 * need * (m->o.baseline ? 3 : 1);
        got = recv_msg(sv[0], &msg, limit);
    }
    if (got == 1 && msg.kind == MSG_DONE) {
        r->status = MCT_MEAS_OK;
        r->detail[0] = 0;
        r->runs = msg.run.n;
        r->median_s = msg.run.med;
        r->min_s = msg.run.min;
        r->max_s = msg.run.max;
        r->q1_s = msg.run.q1;
        r->q3_s = msg.run.q3;
        r->gflops = r->median_s > 0 ? mct_wl_flops(&d->w) / r->median_s * 1e-9 : 0;
        if (m->o.baseline && msg.base_kind > 0) {
            r->has_baseline = 1;
            snprintf(r->base_name, sizeof r->base_name, "%s",
                     msg.base_kind == BASE_SGEMV ? "cblas_sgemv" : "cblas_sgemm");
            r->base_median_s = msg.base.med;
            r->base_min_s = msg.base.min;
            r->base_max_s = msg.base.max;
            r->base_runs = msg.base.n;
            r->base_gflops = msg.base.med > 0 ? mct_wl_flops(&d->w) / msg.base.med * 1e-9 : 0;
        } else if (m->o.baseline) {
            snprintf(r->base_name, sizeof r->base_name, "unavailable");
            snprintf(r->detail, sizeof r->detail, "baseline: %.400s", msg.text);
        }
    } else if (got == 1 && msg.kind == MSG_FAULT) {
        describe_fault(&msg, r->detail, sizeof r->detail);
        size_t l = strlen(r->detail);
        snprintf(r->detail + l, sizeof r->detail - l, " (during %s)", phase);
    } else if (got == 1 && msg.kind == MSG_ERROR) {
        msg.text[sizeof msg.text - 1] = 0;
        if (msg.code == ERR_LOAD || msg.code == ERR_SYMBOL) {
            r->status = MCT_MEAS_COMPILE_ERROR;
            snprintf(r->detail, sizeof r->detail, "%s%.400s",
                     msg.code == ERR_LOAD ? "the object does not load: " : "", msg.text);
        } else if (msg.code == ERR_CANARY) {
            snprintf(r->detail, sizeof r->detail, "out-of-bounds write (canary bytes changed), "
                     "%.400s", msg.text);
        } else {
            snprintf(r->detail, sizeof r->detail, "driver set-up failed: %.400s", msg.text);
        }
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
    double end = now() + 5;
    pid_t w;
    while ((w = waitpid(pid, &st, WNOHANG)) == 0 && now() < end)
        usleep(500);
    if (w == 0) {
        kill(-pid, SIGKILL);
        kill(pid, SIGKILL);
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
            ;
    }
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
    r->run_s = now() - t0;
    m->ctr.run_wall_s += r->run_s;
    if (sv[0] >= 0)
        close(sv[0]);
    if (sv[1] >= 0)
        close(sv[1]);
    if (efd >= 0)
        close(efd);
    free(env);
}

static void result_init(const mct_meas *m, mct_meas_result *r)
{
    memset(r, 0, sizeof *r);
    r->relerr = -1;
    r->threads = m->o.threads;
    r->hot = m->o.hot;
    r->cc = m->cc;
    r->cc_version = m->cc_version;
    r->cflags = m->cflags;
}

int mct_meas_batch(mct_meas *m, const mct_workload *w, const mct_meas_cand *cands, int n,
                   mct_meas_result *out)
{
    char err[512] = "";
    if (!m || !w || (!cands && n) || (!out && n) || n < 0)
        return MCT_EINVAL;
    int rc = mct_wl_check(w, err, sizeof err);
    if (rc)
        return rc;
    struct cand *c = calloc((size_t)(n ? n : 1), sizeof *c);
    if (!c)
        return MCT_ENOMEM;
    for (int i = 0; i < n; i++) {
        result_init(m, &out[i]);
        rc = cand_prepare(m, &cands[i], &c[i]);
        if (rc)
            goto fail;
        for (int k = 0; k < i && c[i].dup_of < 0; k++)
            if (!c[i].lower_failed && !c[k].lower_failed &&
                !memcmp(c[k].job.key, c[i].job.key, 16))
                c[i].dup_of = k;
        if (c[i].job.done || c[i].dup_of >= 0)
            m->ctr.cache_hits += !c[i].lower_failed;
    }
    rc = ensure_driver(m, err, sizeof err);
    if (rc)
        goto fail;
    rc = data_prepare(m, w, err, sizeof err);
    if (rc)
        goto fail;
    rc = compile_all(m, c, n);
    if (rc)
        goto fail;
    for (int i = 0; i < n; i++) {
        mct_meas_result *r = &out[i];
        struct cand *x = &c[i], *src = x->dup_of >= 0 ? &c[x->dup_of] : x;
        memcpy(r->key, x->job.key, 16);
        r->cached = x->job.cached || x->dup_of >= 0;
        r->compile_s = r->cached ? 0 : x->job.secs;
        r->copies = m->d.job.copies;
        r->rotate_bytes = m->d.rotate_bytes;
        if (x->lower_failed || !src->job.ok) {
            r->status = MCT_MEAS_COMPILE_ERROR;
            snprintf(r->detail, sizeof r->detail, "%s",
                     x->lower_failed ? x->detail : src->job.detail);
            continue;
        }
        struct cand tmp = *x;
        tmp.job.obj = src->job.obj;
        run_child(m, &tmp, r);
    }
    rc = 0;
fail:
    for (int i = 0; i < n; i++)
        cand_free(&c[i]);
    free(c);
    if (rc && *err && n)
        snprintf(out[0].detail, sizeof out[0].detail, "harness: %.500s", err);
    return rc;
}

int mct_meas_run(mct_meas *m, const mct_workload *w, const mct_meas_cand *c,
                 mct_meas_result *out)
{
    return mct_meas_batch(m, w, c, 1, out);
}

int mct_meas_compile(mct_meas *m, const mct_meas_cand *in, mct_meas_status *status,
                     char *detail, size_t detaillen)
{
    struct cand c;
    int rc = cand_prepare(m, in, &c);
    if (rc)
        goto fail;
    if (c.job.done || c.lower_failed)
        m->ctr.cache_hits += !c.lower_failed;
    rc = compile_all(m, &c, 1);
    if (rc)
        goto fail;
    *status = !c.lower_failed && c.job.ok ? MCT_MEAS_OK : MCT_MEAS_COMPILE_ERROR;
    set_err(detail, detaillen, "%s", c.lower_failed ? c.detail : c.job.detail);
fail:
    cand_free(&c);
    return rc;
}
