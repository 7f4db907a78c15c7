/* The measurement harness's compile cache: the folder, the compiler it keys on, keys (xxh3-128
 * of everything that changes an object), entries written atomically, compiler jobs run in
 * parallel, and the driver built once. Contract: tuner/measure.h; layout: tuner/meas_int.h. */
#include "tuner/meas_int.h"
#include "tuner/measure_driver.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "codegen/text.h"
#include "tuner/proc.h"

#define DRIVER_CFLAGS "-O2 -std=c11 -D_GNU_SOURCE"

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

int meas_cache_open(mct_meas *m, char *err, size_t errlen)
{
    const char *dir = m->o.cache_dir, *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (!dir || !*dir)
        dir = getenv("MCTUNE_CC_CACHE");
    if (dir && *dir)
        m->cache_dir = strdup(dir);
    else if (xdg && *xdg)
        m->cache_dir = meas_asprintf("%s/mctune/cc", xdg);
    else if (home && *home)
        m->cache_dir = meas_asprintf("%s/.cache/mctune/cc", home);
    else
        return mct_errf(err, errlen, MCT_EINVAL, "no compile cache folder: set MCTUNE_CC_CACHE, "
                        "XDG_CACHE_HOME or HOME");
    if (!m->cache_dir)
        return MCT_ENOMEM;
    int rc = make_dirs(m->cache_dir);
    if (rc || access(m->cache_dir, W_OK))
        return mct_errf(err, errlen, rc ? rc : MCT_EIO, "compile cache folder '%s' cannot be "
                        "created or written (%s); choose another with MCTUNE_CC_CACHE",
                        m->cache_dir, strerror(errno));
    remove_stale_tmp(m->cache_dir);
    return 0;
}

/* What -march=native means here: the CPU's model name and flags lines, so a cache shared between
 * machines (NFS home) never hands one CPU's object to another. */
static char *host_id(void)
{
    char *text = NULL;
    const char *model = NULL, *flags = NULL;
    size_t model_len = 0, flags_len = 0;
    if (mct_slurp("/proc/cpuinfo", 0, &text, NULL, NULL, 0))
        text = NULL;
    for (const char *l = text; l && *l && (!model || !flags);) {
        const char *nl = strchr(l, '\n');
        size_t n = nl ? (size_t)(nl - l) + 1 : strlen(l);
        if (!model && !strncmp(l, "model name", 10))
            model = l, model_len = n;
        else if (!flags && !strncmp(l, "flags", 5))
            flags = l, flags_len = n;
        l += n;
    }
    mct_str b = {0};
    mct_str_add(&b, model ? model : "?\n", model ? model_len : 2);
    mct_str_add(&b, flags ? flags : "?\n", flags ? flags_len : 2);
    free(text);
    return mct_str_take(&b);
}

int meas_cache_compiler(mct_meas *m, char *err, size_t errlen)
{
    const char *ccname = m->o.cc && *m->o.cc ? m->o.cc : "cc";
    m->cc = mct_proc_which(ccname);
    if (!m->cc)
        return mct_errf(err, errlen, MCT_EUNSUPPORTED, "compiler '%s' not found in PATH; install "
                        "a C compiler (gcc or clang) or name one with --cc / mct_meas_opts.cc",
                        ccname);
    char *vargv[] = {m->cc, "--version", NULL};
    mct_proc_io io = {.out_max = 4096};
    mct_proc_result res;
    if (mct_proc_run(vargv, &io, &res) == 0 && res.out_len) {
        res.out[strcspn(res.out, "\n")] = 0;
        m->cc_version = res.out;
        res.out = NULL;
    }
    mct_proc_result_free(&res);
    if (!m->cc_version)
        return mct_errf(err, errlen, MCT_EUNSUPPORTED, "compiler '%s' does not answer "
                        "'--version'; is it a C compiler?", m->cc);
    m->cflags = strdup(m->o.cflags ? m->o.cflags : MCT_MEAS_CFLAGS);
    m->argv_store = strdup(m->cflags ? m->cflags : "");
    if (!m->cflags || !m->argv_store)
        return MCT_ENOMEM;
    char *save = NULL;
    for (char *s = strtok_r(m->argv_store, " \t", &save); s; s = strtok_r(NULL, " \t", &save)) {
        if (m->ncflags >= MEAS_MAX_ARGS - 8)
            return mct_errf(err, errlen, MCT_ERANGE, "too many compiler flags in '%s' (at most "
                            "%d)", m->cflags, MEAS_MAX_ARGS - 8);
        m->cflag_argv[m->ncflags++] = s;
    }
    m->host = strstr(m->cflags, "native") ? host_id() : strdup("");
    return m->host ? 0 : MCT_ENOMEM;
}

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

/* A temporary name next to path, unique to this process and call: a reader of the cache never
 * sees a half-written entry, and two processes never write one file. */
static char *tmp_name(mct_meas *m, const char *path)
{
    return meas_asprintf("%s.tmp.%ld.%lu", path, (long)getpid(), m->tmp_seq++);
}

/* Writes data to path atomically (temporary file in the same folder, then rename). */
static int write_atomic(mct_meas *m, const char *path, const char *data, size_t len)
{
    char *tmp = tmp_name(m, path);
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

/* The first line of a compiler log that says "error", else its first line. */
static void log_summary(const char *path, char *out, size_t len)
{
    char *text = NULL, *save = NULL;
    const char *pick = NULL;
    if (mct_slurp(path, 0, &text, NULL, NULL, 0))
        text = NULL;
    for (char *l = text ? strtok_r(text, "\n", &save) : NULL; l; l = strtok_r(NULL, "\n", &save)) {
        if (!pick)
            pick = l;
        if (strstr(l, "error")) {
            pick = l;
            break;
        }
    }
    snprintf(out, len, "%s", pick ? pick : "the compiler failed and printed nothing");
    free(text);
}

int meas_cache_prepare(mct_meas *m, struct meas_job *j, const char *kind, const char *flags,
                       const char *src, const char *ext)
{
    char hex[33];
    cache_key(m, kind, flags, src, j->key);
    hex16(j->key, hex);
    const char *pre = strcmp(kind, "driver") ? "" : "driver-";
    j->src_path = meas_asprintf("%s/%s%s.c", m->cache_dir, pre, hex);
    j->obj = meas_asprintf("%s/%s%s%s", m->cache_dir, pre, hex, ext);
    j->err_path = meas_asprintf("%s/%s%s.err", m->cache_dir, pre, hex);
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
    j->obj_tmp = tmp_name(m, j->obj);
    j->err_tmp = tmp_name(m, j->err_path);
    return j->obj_tmp && j->err_tmp ? 0 : MCT_ENOMEM;
}

void meas_job_free(struct meas_job *j)
{
    free(j->src_path);
    free(j->obj);
    free(j->obj_tmp);
    free(j->err_path);
    free(j->err_tmp);
    memset(j, 0, sizeof *j);
}

static int job_start(mct_meas *m, struct meas_job *j, char *const *flags, int nflags,
                     const char *const *libs)
{
    char *argv[MEAS_MAX_ARGS + 8];
    int n = 0;
    argv[n++] = m->cc;
    for (int i = 0; i < nflags; i++)
        argv[n++] = flags[i];
    argv[n++] = "-o";
    argv[n++] = j->obj_tmp;
    argv[n++] = j->src_path;
    for (int i = 0; libs && libs[i] && n < MEAS_MAX_ARGS + 7; i++)
        argv[n++] = (char *)libs[i];
    argv[n] = NULL;
    int efd = open(j->err_tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (efd < 0)
        return MCT_EIO;
    const int fds[3][2] = {{-1, 0}, {-1, 1}, {efd, 2}};
    j->t0 = meas_now();
    int rc = mct_proc_spawn(m->cc, argv, NULL, fds, 3, &j->pid);
    close(efd);
    return rc;
}

/* The compiler has exited with status st (wait_rc: 0, or MCT_EIO when the process was lost), or
 * was killed at compile_timeout_s (timed_out): moves the object or the error log into the cache
 * and says what happened. */
static void job_finish(mct_meas *m, struct meas_job *j, int wait_rc, int st, int timed_out)
{
    if (timed_out) {
        snprintf(j->detail, sizeof j->detail, "the compiler ran past %.0f s and was killed "
                 "(raise compile_timeout_s)", m->o.compile_timeout_s);
        unlink(j->obj_tmp);
        unlink(j->err_tmp);
    } else if (wait_rc) {
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
    j->secs = meas_now() - j->t0;
    j->done = 1;
}

/* Polls a running job without blocking (a batch watches several); finishes it when the compiler
 * is done or past its limit. */
static void job_poll(mct_meas *m, struct meas_job *j)
{
    int st = 0;
    pid_t r = waitpid(j->pid, &st, WNOHANG);
    int late = r == 0 && meas_now() - j->t0 >= m->o.compile_timeout_s;
    if (r == 0 && !late)
        return;
    if (late)
        meas_kill(j->pid, &st);
    job_finish(m, j, r < 0 ? MCT_EIO : 0, st, late);
}

int meas_cache_compile_all(mct_meas *m, struct meas_cand *c, int n)
{
    double t0 = meas_now();
    int next = 0, running = 0, rc = 0;
    int *active = calloc((size_t)m->o.jobs, sizeof *active);
    if (!active)
        return MCT_ENOMEM;
    for (int i = 0; i < m->o.jobs; i++)
        active[i] = -1;
    for (;;) {
        while (running < m->o.jobs && next < n) {
            struct meas_cand *x = &c[next];
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
    m->ctr.compile_wall_s += meas_now() - t0;
    return rc;
}

int meas_cache_driver(mct_meas *m, char *err, size_t errlen)
{
    if (m->driver)
        return 0;
    struct meas_job j;
    memset(&j, 0, sizeof j);
    char fl[] = DRIVER_CFLAGS;
    char *flags[8];
    int nf = 0;
    char *save = NULL;
    for (char *s = strtok_r(fl, " ", &save); s && nf < 8; s = strtok_r(NULL, " ", &save))
        flags[nf++] = s;
    const char *libs[] = {"-ldl", "-lm", NULL};
    int rc = meas_cache_prepare(m, &j, "driver", DRIVER_CFLAGS " -ldl -lm", mct_meas_driver_src,
                                "");
    if (rc)
        goto fail;
    if (!j.done) {
        rc = job_start(m, &j, flags, nf, libs);
        if (rc)
            goto fail;
        int st = 0, late = 0;
        int wait_rc = mct_proc_wait(j.pid, m->o.compile_timeout_s, &st, &late);
        job_finish(m, &j, wait_rc, st, late);
    }
    if (!j.ok) {
        rc = mct_errf(err, errlen, MCT_EUNSUPPORTED, "cannot build the measurement driver with "
                      "'%s': %s (log: %s)", m->cc, j.detail, j.err_path);
        goto fail;
    }
    m->driver = j.obj;
    j.obj = NULL;
    rc = 0;
fail:
    meas_job_free(&j);
    return rc;
}
