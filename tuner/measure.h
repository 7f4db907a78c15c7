/* mctune measurement harness: compile, run, check and time candidate kernels.
 *
 * A candidate is a schedule (lowered to C with mct_cg_lower_c) or a raw C11 source that defines
 * a kernel with the ABI of codegen/codegen.h (runtime/dispatch.h: it returns 0, or MCT_ENOMEM
 * when a packing or scratch buffer cannot be allocated). Measuring one:
 *
 *   1. compile: `cc` (default flags MCT_MEAS_CFLAGS) into a shared object, through an on-disk
 *      cache keyed by xxh3-128 of (source, compiler path, compiler version, flags, host CPU when
 *      the flags say -march=native). A hit compiles nothing. Entries are written to a temporary
 *      name and renamed into place, so two processes may fill one cache at once and a reader
 *      never sees a torn file. Compile errors are cached too (KEY.err), so they cost once.
 *   2. run: a child process (a small driver program, compiled once into the same cache from a
 *      source held in tuner/measure_driver.h) dlopens the object, maps the inputs from a memfd
 *      the parent filled once per workload, and runs the kernel. Its output C sits between two
 *      PROT_NONE guard pages with canary bytes in the slack, the inputs are read-only with guard
 *      pages after them, so a crash, a hang, an out-of-bounds write or an early exit is one
 *      recorded status and the tuner goes on. So is a kernel that returns nonzero: its C is
 *      not fully written, so it is neither checked nor timed.
 *   3. check: the first run is compared with the oracle (tuner/oracle.h: OpenBLAS + epilogue)
 *      with mct_oracle_relerr; above mct_oracle_tolerance(K) the status is `wrong` and the
 *      candidate is never timed. A widen(B, dot) kernel, which rounds A (mct_cg_dot_path), may
 *      instead be within its rounding's bound at every element (meas_data.c: int8 per row
 *      scale_i/2 * sum_k |w|, bf16 2^-8 * sum_k |a w|, plus the f32 tolerance); relerr is
 *      then above the tolerance and the status ok.
 *   4. time: warm-up (untimed calls for warmup_s, at least one), then single calls timed with
 *      CLOCK_MONOTONIC until both min_time_s and min_runs are reached (or max_runs); median,
 *      quartiles, min and max. B (the weights) rotates through enough copies that their total
 *      exceeds the last-level cache (sysconf(_SC_LEVEL3_CACHE_SIZE), else /sys, else 32 MiB),
 *      so small-M figures see weights coming from memory as in serving; the copies are capped
 *      at rotate_cap bytes (default 1 GiB: some VMs report a several-hundred-MiB L3). With
 *      `hot` there is one copy (cache-resident case). With prepacked schedules FN_pack_b runs
 *      once per copy before timing, untimed. With `baseline` the libraries are bound first
 *      and timed side by side with the candidate, so that a shared host's drift falls on all
 *      of them alike: with one thread call by call in a rotating order, until each has
 *      min_runs calls and the slowest min_time_s in all; with more threads in 3 rounds of
 *      blocks, each after 0.15 s of untimed calls (a library's pool spins after a call and
 *      would take the next one's cores). The child runs with OMP_NUM_THREADS=threads,
 *      OMP_PROC_BIND=close, OMP_PLACES=cores and its affinity set to `threads` CPUs of this
 *      process's affinity mask (the last ones), so one-thread figures stay on one core.
 *
 * Batches (mct_meas_batch) compile every missing candidate first, up to `jobs` compilers at
 * once, and only then run the candidates one at a time: timing never overlaps a compile that
 * this harness started.
 *
 * The child's environment is this process's, with OMP_NUM_THREADS, OMP_PROC_BIND, OMP_PLACES,
 * OPENBLAS_NUM_THREADS and GOMP_CPU_AFFINITY replaced and LD_PRELOAD removed (a preloaded tool
 * would change the figures).
 *
 * A harness is not thread-safe: use one per thread. Several processes may share a cache.
 *
 * Errors: functions return 0 or a negative MCT_E* code (runtime/mct_err.h) for failures of
 * the harness itself (bad argument, cache folder not writable, no compiler, fork failed); each
 * function lists its codes. What happened to a candidate is never a return code: it is the
 * record's status.
 */
#ifndef MCT_MEASURE_H
#define MCT_MEASURE_H

#include <stddef.h>
#include <stdint.h>

#include "codegen/codegen.h"

/* Flags used when mct_meas_opts.cflags is NULL: the flags of a generated library's Makefile
 * (`cc -O2`, -fopenmp for parallel kernels) and no -march, because the lowered kernel carries
 * its ISA itself (target attributes from the ISA table in runtime/cpu.h). A candidate is thus
 * compiled exactly as `mctune gen` ships it, and the figure measured is the one users get. -O2:
 * on the generated kernels (explicit SIMD, explicit unrolls) -O3 ran no faster and compiled
 * about 1.6x slower. */
#define MCT_MEAS_CFLAGS "-O2 -fopenmp -fPIC -shared -pipe"

typedef enum {
    MCT_MEAS_OK = 0,
    MCT_MEAS_COMPILE_ERROR, /* lowering or cc failed, or the object lacks the kernel symbol;
                               also widen(B, dot) where the tile or the target lacks the
                               instructions (detail: mct_cg_dot_path's reason) */
    MCT_MEAS_CRASH,         /* signal, out-of-bounds write (guard page or canary), early exit,
                               or the kernel returned nonzero (MCT_ENOMEM: no packing or scratch
                               buffer; detail "kernel returned MCT_ENOMEM (-2): ...") */
    MCT_MEAS_TIMEOUT,       /* the child ran past its time limit and was killed */
    MCT_MEAS_WRONG          /* first run differs from the oracle beyond the tolerance */
} mct_meas_status;

/* "ok", "compile-error", "crash", "timeout", "wrong" ("unknown" for any other value); static,
 * never NULL. */
const char *mct_meas_status_name(mct_meas_status s);

/* Settings. Zero / NULL fields take the defaults written beside them; start from
 * mct_meas_opts_default() or a zeroed struct. mct_meas_create copies cache_dir, cc and cflags:
 * the caller's may go away once it returns. target.attr is kept as a pointer: use a target of
 * mct_target_of_isa (static strings) or keep the string alive as long as the harness. */
typedef struct mct_meas_opts {
    const char *cache_dir;  /* NULL: $MCTUNE_CC_CACHE, else $XDG_CACHE_HOME/mctune/cc,
                               else $HOME/.cache/mctune/cc (created when missing) */
    const char *cc;         /* NULL: "cc" (searched in PATH) */
    const char *cflags;     /* NULL: MCT_MEAS_CFLAGS, split on spaces */
    mct_target target;      /* ISA schedules are lowered for; vlen 0: mct_target_host() */
    int threads;            /* 0: 1 */
    int hot;                /* 1: one B copy, cache-resident figures */
    int baseline;           /* 1: also time OpenBLAS on the same data in the same child */
    double min_time_s;      /* 0: 0.2 s of timed calls at least ... */
    int min_runs;           /* 0: ... and 5 timed calls at least */
    int max_runs;           /* 0: 100000 */
    double warmup_s;        /* 0: 0.02 s (after one call per B copy) */
    double timeout_s;       /* 0: 30 s for start-up and the checked first run; the timed phase
                               gets this plus room for the calls the protocol needs */
    double compile_timeout_s; /* 0: 120 s per compiler invocation */
    int jobs;               /* 0: CPUs in this process's affinity mask */
    size_t rotate_cap;      /* 0: 1 GiB, most bytes spent on B copies */
    uint64_t seed;          /* 0: 1; input data are uniform in [-1, 1) from this seed */
    double cut_s;           /* 0: off. A candidate whose checked first run takes longer is not
                               timed further: still running after cut_s it is killed (status
                               timeout, cut 1, detail "cut: ..."); done just past it, its record
                               is that one run (ok, runs 1, median = first run, cut 1). A search
                               sets it to a multiple of its best latency (mct_meas_set_cut): such
                               a candidate can never be its best, and its calls were most of a
                               search's measuring time on large layers. With baseline: never. */
} mct_meas_opts;

/* Fills *o with the defaults (every field as documented above; jobs 0, strings NULL, target
 * zero). Cannot fail. */
void mct_meas_opts_default(mct_meas_opts *o);

/* One candidate: either sched (lowered for opts.target, kernel name "mct_cand"), or
 * source + fn (a C source defining FN with the kernel ABI; prepacked says whether it also
 * defines FN_packed_size and FN_pack_b). When sched is set, the other fields are ignored.
 * Borrowed: the harness reads them during the call and keeps no pointer to them. */
typedef struct mct_meas_cand {
    const mct_sched *sched;
    const char *source;
    const char *fn;
    int prepacked;
} mct_meas_cand;

typedef struct mct_meas_result {
    mct_meas_status status;
    char detail[512];       /* why, for anything but ok: the signal and address, the first
                               compiler error, relerr vs tolerance, ...; when ok, "" or why the
                               asked-for baseline is missing */
    double median_s, min_s, max_s, q1_s, q3_s; /* seconds per call; 0 unless ok */
    long runs;              /* timed calls */
    double gflops;          /* mct_wl_flops / median */
    double relerr;          /* of the checked first run (-1 when it did not run) */
    double first_s;         /* duration of the checked first run */
    double compile_s;       /* compiler wall time for this candidate; 0 when cached */
    int cached;             /* 1: the compile cache had it (nothing was compiled) */
    double run_s;           /* child wall time: start-up, check, warm-up, timing, baseline */
    int threads;
    int hot;
    long copies;            /* B copies rotated through */
    size_t rotate_bytes;    /* their total size */
    uint8_t key[16];        /* compile-cache key (xxh3-128) */
    /* compiler and flags used; owned by the mct_meas context, valid until it is destroyed */
    const char *cc, *cc_version, *cflags;
    /* baseline (opts.baseline): OpenBLAS on the same data, same child, same protocol */
    int has_baseline;       /* 1 when measured; 0 with base_name "" when not asked, or with
                               detail in base_name's place when OpenBLAS could not be loaded */
    char base_name[64];     /* "cblas_sgemm" or "cblas_sgemv" (M=1: the faster of the two) */
    double base_median_s, base_min_s, base_max_s, base_gflops;
    long base_runs;
    /* every baseline library (opts.baseline), run in the same child with `threads` threads:
     * [0] OpenBLAS with its own core (the base_* fields above), [1] OpenBLAS with the best core
     * tuner/baseline.h forces for this CPU (when it differs and loads), [2] oneDNN (dnnl_sgemm).
     * label names the library, its version, core or ISA; when ok is 0 it says why not. */
    struct mct_meas_lib {
        int ok;
        char label[160];
        char call[16];      /* "sgemm", "sgemv" (OpenBLAS at M=1: the faster), "dnnl_sgemm" */
        int threads;        /* as the library reports it after being asked (0: cannot say) */
        int cpus;           /* OpenBLAS: the CPUs its threads may run on (0: cannot say) */
        double median_s, gflops;
    } libs[3];
    int best_lib;           /* index of the fastest of libs, -1 when none ran */
    int cut;                /* 1: ok, but only the checked first run was timed (opts.cut_s) */
} mct_meas_result;

/* Counters since mct_meas_create. */
typedef struct mct_meas_counters {
    long compiles;          /* compiler invocations for candidates (the driver not counted) */
    long cache_hits;        /* candidates found in the compile cache (or compiled earlier in
                               the same batch) */
    long runs;              /* child processes started */
    double compile_wall_s;  /* wall time spent in compile phases */
    double run_wall_s;      /* wall time spent running children */
} mct_meas_counters;

typedef struct mct_meas mct_meas;  /* opaque */

/* Creates a harness: resolves the cache folder (creating it, and removing temporary files that
 * dead processes left there over an hour ago), the compiler and its version, and the host;
 * compiles nothing yet. opts may be NULL (defaults). On success *out is a harness the caller
 * releases with mct_meas_destroy; on failure *out is NULL and err (may be NULL) says what failed
 * and what to do:
 *   MCT_EINVAL        out is NULL, or no cache folder can be named (no opts.cache_dir,
 *                     $MCTUNE_CC_CACHE, $XDG_CACHE_HOME or $HOME)
 *   MCT_EIO           the cache folder cannot be created or written
 *   MCT_EUNSUPPORTED  the compiler is not on $PATH, or does not answer `--version`
 *   MCT_ERANGE        more than 56 compiler flags
 *   MCT_ENOMEM        out of memory */
int mct_meas_create(const mct_meas_opts *opts, mct_meas **out, char *err, size_t errlen);

/* Releases m and everything it owns, the cc, cc_version and cflags strings of its records
 * included; NULL is a no-op. The compile cache stays on disk. */
void mct_meas_destroy(mct_meas *m);

/* The cache folder in use (m not NULL); owned by m, valid until mct_meas_destroy. */
const char *mct_meas_cache_dir(const mct_meas *m);

/* Measures one candidate of workload w into *out: mct_meas_batch with n = 1. */
int mct_meas_run(mct_meas *m, const mct_workload *w, const mct_meas_cand *c,
                 mct_meas_result *out);

/* Measures n candidates of workload w: compiles the missing ones in parallel (up to opts.jobs
 * at once), then runs them one at a time in order. out has n records, all filled when 0 is
 * returned (a candidate that failed in any way is a record, not an error). The first call builds
 * the driver into the cache; the inputs are rebuilt only when the workload changes.
 * Errors, with "harness: ..." in out[0].detail when there is a message (n > 0); the records
 * are then not meaningful:
 *   MCT_EINVAL        m or w NULL, c or out NULL with n > 0, n < 0, a source candidate without
 *                     source or fn, or a field of w that mct_wl_check refuses
 *   MCT_ERANGE        a size of w out of range (mct_wl_check)
 *   MCT_EUNSUPPORTED  the measurement driver does not compile with this compiler
 *   MCT_EIO           a source cannot be written into the cache, or a compiler not started
 *   MCT_ENOMEM        out of memory, the shared input memory for w included */
int mct_meas_batch(mct_meas *m, const mct_workload *w, const mct_meas_cand *c, int n,
                   mct_meas_result *out);

/* Only the compile step: makes sure the candidate's object is in the cache. On success *status
 * is MCT_MEAS_OK or MCT_MEAS_COMPILE_ERROR, and detail (may be NULL) gets the reason for the
 * latter ("" for ok). Errors, *status then unset: MCT_EINVAL (m, c or status NULL, a source
 * candidate without source or fn), MCT_EIO (the source cannot be written into the cache, or
 * the compiler not started), MCT_ENOMEM. */
int mct_meas_compile(mct_meas *m, const mct_meas_cand *c, mct_meas_status *status,
                     char *detail, size_t detaillen);

/* Copies the counters into *out. Cannot fail. */
void mct_meas_get_counters(const mct_meas *m, mct_meas_counters *out);

/* Sets opts.cut_s for the following measurements (0 or less: off). A search calls it before
 * each batch with a multiple of its best latency so far. Cannot fail (m NULL: nothing). */
void mct_meas_set_cut(mct_meas *m, double cut_s);

#endif
