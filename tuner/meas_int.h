/* Internals of the measurement harness, shared by its files and by nothing else: the harness
 * struct, the parent <-> driver protocol, and the calls one file makes into another.
 *
 *   measure.c      create/destroy, candidates, the flow of a measurement (batch, run, compile)
 *   meas_cache.c   the compile cache: keys, atomic entries, compiler jobs, building the driver
 *   meas_data.c    the inputs in shared memory, the oracle's answer and the check against it
 *   meas_proto.c   the parent side of the child protocol: start the driver, read its messages
 *   measure_driver.h  the driver itself (the child), as C source text
 *
 * The public contract is tuner/measure.h; no file outside this list includes this header. */
#ifndef MCT_MEAS_INT_H
#define MCT_MEAS_INT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "tuner/measure.h"

/* The parent <-> driver protocol, one definition for both sides: the harness expands it below,
 * and tuner/measure_driver.h gives it to the driver stringified, so the two always agree. Bump
 * MCT_MEAS_PROTO_VERSION on any change. */
#define MCT_MEAS_PROTO_VERSION 3
#define MCT_MEAS_PROTO_DEF                                                                     \
    enum { MCT_JOB_MAGIC = 0x6d63746a, MCT_NSEC = 5, MCT_MAXCPU = 256 };                       \
    enum { MCT_NCORE = 4, MCT_NLIB = 3, LIB_OB = 0, LIB_OB_FORCED = 1, LIB_DNNL = 2 };         \
    enum { SEC_A = 0, SEC_BIAS = 1, SEC_C0 = 2, SEC_OUT = 3, SEC_B = 4 };                       \
    struct mct_job {                                                                           \
        unsigned magic, version, size, pad_;                                                   \
        long M, N, K, batch, group, lda, ldb, ldc, sA, sB, sC;                                 \
        int layout, beta, has_bias, prepacked, baseline, threads, ncpu, pad2_;                 \
        int cpus[MCT_MAXCPU];                                                                  \
        long sec_off[MCT_NSEC], sec_len[MCT_NSEC];                                             \
        long a_at, bias_at, c0_at, out_at, b_at, b_stride, copies;                             \
        long a_floats, b_floats, c_floats;                                                     \
        double min_time, warmup_time;                                                          \
        long min_runs, max_runs;                                                               \
        char ob_cores[MCT_NCORE][24]; /* OpenBLAS cores to force, best first ("" ends) */     \
        int dnnl_isa_cap, pad3_;      /* dnnl_set_max_cpu_isa value, 0 for none */             \
    };                                                                                         \
    /* MSG_START: set up (inputs mapped, B packed), the checked first run begins */            \
    enum { MSG_FIRST = 1, MSG_DONE = 2, MSG_FAULT = 3, MSG_ERROR = 4, MSG_START = 5 };         \
    /* ERR_KERNEL: the kernel returned nonzero; off holds what it returned */                 \
    enum { ERR_SETUP = 1, ERR_LOAD = 2, ERR_SYMBOL = 3, ERR_CANARY = 4, ERR_KERNEL = 5 };      \
    enum { BASE_NONE = 0, BASE_SGEMM = 1, BASE_SGEMV = 2, BASE_UNAVAILABLE = -1 };            \
    struct mct_stats { long n; double med, min, max, q1, q3; };                                \
    /* one baseline library: kind BASE_SGEMM/BASE_SGEMV when timed, else BASE_UNAVAILABLE or  \
     * BASE_NONE; name: "OpenBLAS 0.3.21 core Zen", "oneDNN 2.6.3 ISA avx2", or why not */    \
    struct mct_lib_res { int kind, threads, cpus; char name[160]; struct mct_stats st; };    \
    struct mct_msg {                                                                           \
        int kind, code, where, base_kind;                                                      \
        long off;                                                                              \
        double first_s;                                                                        \
        struct mct_stats run, base;                                                            \
        struct mct_lib_res lib[MCT_NLIB];                                                      \
        char text[512];                                                                        \
    };

MCT_MEAS_PROTO_DEF

#define MEAS_KERNEL_FN "mct_cand" /* the name a lowered schedule's kernel gets */
#define MEAS_MAX_ARGS 64          /* compiler flags, plus room for -o, the files and libraries */

/* The inputs of one workload in a memfd the children map, and the oracle's answer. */
struct meas_data {
    int valid;
    char key[300];          /* canonical workload text + hot + copies + seed */
    mct_workload w;
    int fd;                 /* the memfd; -1 when none */
    char *map;
    size_t len;
    struct mct_job job;     /* the header the driver reads, sizes and offsets filled */
    float *cref;            /* the oracle's answer */
    /* low-precision B: what the bounds of widen(B, dot) need (meas_data_check) */
    float *wabs;            /* N: sum_k |w(k, j)| of the dequantized weights */
    float *ascale;          /* M: max_k |a(i, k)| / 127, the int8 rounding's scale */
    float *absprod;         /* M x N (ldc): sum_k |a(i, k) w(k, j)| */
    size_t rotate_bytes;
};

/* One compiler invocation into the cache (or a cache hit, done at once). */
struct meas_job {
    uint8_t key[16];
    char *src_path, *obj, *obj_tmp, *err_path, *err_tmp;
    pid_t pid;
    double t0, secs;
    int done, ok, cached;
    char detail[512];       /* why not ok */
};

/* One candidate of a batch. */
struct meas_cand {
    char *src;              /* owned */
    const char *fn;
    int prepacked;
    int lower_failed;
    int dot;                /* MCT_CG_DOT_*: how the kernel rounds A (widen(B, dot)) */
    char detail[512];       /* why lowering failed */
    struct meas_job job;
    int dup_of;             /* index of an earlier candidate with the same key, or -1 */
};

struct mct_meas {
    mct_meas_opts o;        /* its strings point into this struct (or at static text) */
    char *cache_dir, *cc, *cc_version, *cflags, *host;
    char *argv_store;       /* cflags split in place */
    char *cflag_argv[MEAS_MAX_ARGS];
    int ncflags;
    char *driver;           /* path of the built driver, NULL until the first run */
    int cpus[MCT_MAXCPU], ncpu;
    long llc;
    long pg;
    unsigned long tmp_seq;  /* makes this process's temporary names unique */
    mct_meas_counters ctr;
    struct meas_data d;
};

static inline double meas_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* printf into a malloc'ed string; NULL when out of memory. */
char *meas_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Kills pid's process group and pid, and reaps it (status into *st, may be NULL). */
void meas_kill(pid_t pid, int *st);

/* meas_cache.c --------------------------------------------------------------------------- */

/* Resolves the cache folder (opts, $MCTUNE_CC_CACHE, $XDG_CACHE_HOME, $HOME) into m->cache_dir,
 * creates it and removes temporary files left by dead processes. MCT_EINVAL (no folder can be
 * named), MCT_EIO (cannot be created or written), MCT_ENOMEM; err says which folder and why. */
int meas_cache_open(mct_meas *m, char *err, size_t errlen);

/* Resolves what the cache keys on besides the source: the compiler (opts.cc on $PATH) and its
 * `--version` line, the flags (opts.cflags or MCT_MEAS_CFLAGS, split into m->cflag_argv), and
 * the host CPU when the flags say -march=native. MCT_EUNSUPPORTED (no compiler, or one that does
 * not answer --version), MCT_ERANGE (too many flags), MCT_ENOMEM; err says which. */
int meas_cache_compiler(mct_meas *m, char *err, size_t errlen);

/* Sets up j for source src of kind "kernel -lm" or "driver": its key and paths; a cache hit
 * (object or cached compile error) finishes it at once. MCT_ENOMEM, MCT_EIO (the source cannot
 * be written into the cache). */
int meas_cache_prepare(mct_meas *m, struct meas_job *j, const char *kind, const char *flags,
                       const char *src, const char *ext);
void meas_job_free(struct meas_job *j);

/* Compiles every candidate of c[0..n-1] that is not done, a duplicate or unlowered, up to
 * opts.jobs at once. 0, MCT_ENOMEM, or MCT_EIO when a compiler could not be started (that
 * candidate's job says so). */
int meas_cache_compile_all(mct_meas *m, struct meas_cand *c, int n);

/* Builds the driver once (into m->driver). MCT_EUNSUPPORTED when it does not compile, with the
 * compiler's first error in err; MCT_ENOMEM, MCT_EIO. */
int meas_cache_driver(mct_meas *m, char *err, size_t errlen);

/* meas_data.c ---------------------------------------------------------------------------- */

/* The last-level cache's size in bytes (sysconf, else /sys, else 32 MiB). */
long meas_llc_bytes(void);

/* Makes m->d hold workload w's inputs and the oracle's answer (reused when w, hot, the copies and
 * the seed are the same as last time). MCT_ENOMEM (memfd, mapping or the answer; err says how
 * much), or what mct_wl_format returns. */
int meas_data_prepare(mct_meas *m, const mct_workload *w, char *err, size_t errlen);
void meas_data_release(struct meas_data *d);

/* Compares the first run's output (in the shared out area) with the oracle's answer: fills
 * r->relerr and returns 1 when within mct_oracle_tolerance, else 0 with r->detail saying so. */
/* 1 when the first run matches the oracle: within mct_oracle_tolerance, or for a kernel that
 * rounds A (dot: MCT_CG_DOT_INT8 or _BF16) within the bound its rounding allows (meas_data.c);
 * else 0 with r->detail. */
int meas_data_check(const struct meas_data *d, mct_meas_result *r, int dot);

/* meas_proto.c --------------------------------------------------------------------------- */

/* Runs candidate c (object obj, already compiled) in a driver child on m->d and fills r's
 * status, detail, figures and baselines. Never fails: a harness problem is a crash record with
 * a "harness: " detail. */
void meas_proto_run(mct_meas *m, const struct meas_cand *c, const char *obj,
                    mct_meas_result *r);

#endif
