/* mctune tuning as a library: tune one workload for one CPU and thread count, recording every
 * trial and the best schedule in the database as it goes. `mctune tune`, scripts/bench-search.c
 * and the tests call this; the command only parses options and prints.
 *
 * The policy, in one place (mct_tune_workload):
 *   skip      a workload whose best record for (CPU, threads) came from a complete search (at
 *             least `budget` trials stored here) or from elsewhere (import, merge: no trials
 *             here) is not searched again, unless retune is set;
 *   resume    a best record with fewer trials than the budget is a search that stopped short:
 *             it is searched again, and every trial already stored is reused through the
 *             search's lookup (used as measured, counted as a sample), so the resumed search
 *             follows the interrupted one's path and spends the same budget;
 *   transfer  the schedules of up to 3 other CPUs' (or thread counts') best records of the same
 *             workload, then of the best record of the nearest M of its family (the nearest-M
 *             rule, mct_rt_m_nearer), are measured right after the untuned baseline; for a
 *             b=raw workload, between the two, up to 3 best records of its packed variant (the
 *             same key without b=raw: same M, this CPU and thread count first, then others),
 *             their prepack turned into a pack inside the kernel (mct_sched_without_prepack);
 *   record    every sample measured now is stored as a trial (a failed one with median 1e18
 *             ns and 0 GFLOP/s, so a resumed run does not measure it again and it never
 *             becomes a best), and each faster one becomes the best record at once, so a run
 *             killed at any point loses at most the sample in flight;
 *   log       with a log file, one JSON line per sample (flushed per line, so a killed run's
 *             log holds every sample it recorded).
 *
 * Threads: one mct_tune call at a time per database handle (mct_db's rule); several processes
 * may tune one database at once (db/db.h states what they can rely on).
 */
#ifndef MCT_TUNE_H
#define MCT_TUNE_H

#include <stddef.h>
#include <stdio.h>

#include "db/db.h"
#include "tuner/search.h"

/* A trial that failed is stored with this latency (and 0 GFLOP/s). */
#define MCT_TUNE_FAILED_NS 1e18

struct mct_tune_result;

typedef struct mct_tune_opts {
    mct_db *db;             /* required: trials and best records go here */
    const mct_cpu *cpu;     /* required: the CPU record they are stored under (the host, or the
                               host restricted to a lower tier); the caller stores it with
                               mct_db_put_cpu first */
    mct_target target;      /* code-generation target; vlen 0: mct_target_host() */
    int threads;            /* kernel threads; 0: 1 */
    mct_search_kind kind;
    int budget;             /* samples per workload, the untuned schedule included; 0: 32 */
    uint64_t seed;
    mct_guide *guide;       /* required for mcts; not owned */
    const char *guide_name; /* recorded with each record ("heuristic", "llm", ...); mcts only */
    mct_meas *meas;         /* required: candidates */
    mct_meas *meas_base;    /* the untuned baseline (a long limit, one run); NULL: meas */
    mct_meas *meas_libs;    /* optional, a harness with opts.baseline set: the best schedule of
                             * a b=raw workload is measured once more beside the libraries, and
                             * the fastest one's GFLOP/s is stored with its best record
                             * (base_gflops, on the record's scale: see db.h), so the cblas
                             * drop-in runs it only where it wins */
    mct_costmodel *costmodel; /* optional, not owned: the learned cost model of this CPU
                             * (mct_costmodel_open) for evolutionary and for mcts with rank or
                             * rollout; the search adds the samples it measures and retrains it.
                             * NULL: those searches train a private model per workload */
    int rank, rollout;      /* mcts with the model (mct_search_opts): 0 off */
    double cut;             /* mct_search_opts.cut: 0 off */
    int retune;             /* search even when a complete best record exists */
    int transfer;           /* measure transfer seeds first (see above) */
    const char *model;      /* model tag recorded with each record ("" or NULL: none) */
    FILE *log;              /* NULL: no log; one JSON line per sample */
    /* hooks, all optional, called with ctx:
     *   on_start:  the decision is made (res->outcome, resumed, nseeds), before the search;
     *   on_sample: after a sample is recorded; a nonzero return stops the search and is
     *              returned by mct_tune_workload;
     *   on_note:   the search's notes (loud: the user must see it whatever the verbosity). */
    void (*on_start)(void *ctx, const mct_workload *w, const struct mct_tune_result *res);
    int (*on_sample)(void *ctx, const mct_search_sample *smp);
    void (*on_note)(void *ctx, int loud, const char *line);
    void *ctx;
} mct_tune_opts;

typedef enum { MCT_TUNE_SEARCHED = 0, MCT_TUNE_SKIPPED = 1 } mct_tune_outcome;

/* What one call did. Plain fields: copy freely. */
typedef struct mct_tune_result {
    mct_tune_outcome outcome;
    size_t stored_trials;   /* trials of (workload, CPU, threads) stored when it started */
    int resumed;            /* 1: searched because a best record came from a search cut short */
    int nseeds;             /* transfer seeds handed to the search */
    mct_db_rec best;        /* SKIPPED: the stored best record; SEARCHED: the fastest sample of
                               this run (a stored best from another run may be faster) */
    mct_search_stats st;    /* SEARCHED: the search's statistics */
    double seconds;         /* wall time of the search */
    int db_failed;          /* a write to the database failed (err says which); stop tuning */
    /* b=raw with meas_libs: the stored best timed once more beside the libraries, both speeds
     * from that one run (0 when it did not run), and the fastest library's label */
    double side_kernel_gflops, side_lib_gflops;
    char side_lib[160];
} mct_tune_result;

/* The search options of a tuning run, built in one place: *so is zeroed, then kind, budget
 * (0: 32), seed, guide, CPU, threads (0: 1), target, meas, meas_base, the cost model, rank and
 * rollout are taken from o; no
 * seeds, no callbacks (mct_tune_workload adds its own; a caller running mct_search_run directly
 * sets those it needs). Pointers are copied, not owned. Cannot fail. */
void mct_tune_search_opts(const mct_tune_opts *o, mct_search_opts *so);

/* Tunes w (see the policy above). Returns 0 when skipped or searched to the end (res says
 * which); MCT_EINVAL when db, cpu or meas is missing, or mcts has no guide; MCT_ENOMEM; the
 * search's error (mct_search_run: e.g. a harness failure); the nonzero value on_sample returned;
 * or, with res->db_failed set, the database's own code for a write it refused (MCT_EINVAL or
 * MCT_ERANGE for a record it refuses, a w that mct_db_put_workload refuses included; MCT_EIO
 * and the like for storage failures; MCT_EIO when it gives none). err (may be NULL) says what failed (the
 * database's message for a refused write; empty when the search gave none); res is zeroed first
 * and filled as far as the call got. Failed reads of the database (counting trials, the stored
 * best, transfer seeds) are not errors: they read as nothing stored. */
int mct_tune_workload(const mct_workload *w, const mct_tune_opts *o, mct_tune_result *res,
                      char *err, size_t errlen);

#endif
