/* Search strategies over the schedule space of one workload: mcts (guided), evolutionary and
 * random, all with the same sample accounting.
 *
 * Sample accounting (the same for every strategy):
 *   - one sample = one distinct candidate schedule (by mct_sched_hash) whose measurement the
 *     search used, whether its status is ok or not (a compile error or a wrong result costs a
 *     sample, as it costs a measurement);
 *   - a candidate whose hash was already seen in this search is never measured again and never
 *     counted again (it is counted in mct_search_stats.duplicates);
 *   - the untuned schedule is measured first and is sample 1: it is the reward baseline
 *     (reward = speedup = untuned latency / candidate latency);
 *   - seed schedules (transfer from other CPUs or shapes) are measured next, one sample each;
 *   - a candidate found by the `lookup` callback (a trial already in the database, e.g. from an
 *     interrupted run) is used as measured and counts as a sample, so a resumed search follows
 *     the same path as the uninterrupted one and spends the same budget.
 *
 * Determinism: every random draw comes from one 64-bit state seeded with opts.seed; random
 * search is reproducible from the seed alone, mcts and evolutionary from the seed and the
 * measured latencies (the same when they are read back through `lookup`, or from an
 * `evaluate` callback that is itself deterministic).
 *
 * Strategies and their defaults:
 *   mcts          UCT selection with exploration constant c (default sqrt 2) over normalized
 *                 rewards (mean speedup of a subtree / best speedup so far, in [0, 1]); each
 *                 expansion asks the guide for `branching` proposals (default 2); a proposal is
 *                 applied to a clone of the node's schedule with mct_sched_apply, an illegal one
 *                 is dropped (its reason goes to on_note) and counted, a duplicate is dropped
 *                 and counted; an expansion left with no new legal child falls back to
 *                 mct_sched_mutate (counted). Children are measured (one sample each) and their
 *                 speedup is backpropagated with visit counts. Failed candidates get reward 0
 *                 and are never expanded. Without a model only measured rewards are used.
 *                 With a cost model (opts.model, or rank / rollout set: the search then trains
 *                 a private model on its own samples), `rank` > 1 asks the guide for
 *                 branching * rank proposals and keeps the `branching` the model predicts
 *                 fastest (the rest are counted in stats.ranked_out and never measured), and
 *                 `rollout` > 0 scores a new child without measuring it: `rollout` random
 *                 mutations from it, each predicted by the model, give an estimated speedup
 *                 (the parent's measured speedup times the best predicted ratio to the parent)
 *                 that is backpropagated like a reward; when selection reaches a node that
 *                 holds only an estimate, the node is measured (one sample) and its measured
 *                 speedup replaces the estimate in every ancestor. Measured samples are added
 *                 to the model, which is retrained after each expansion.
 *   evolutionary  as TVM MetaSchedule's evolutionary search: each round breeds a population
 *                 (`population`, default 2048) inside the cost model and measures only the
 *                 model's best `generation` (default 64, fewer when the budget has less left)
 *                 candidates not measured yet. A round's initial population is the best measured
 *                 schedules (up to a fifth of it) and random ones; 4 generations follow, each
 *                 child bred from a parent picked with probability proportional to its
 *                 predicted score: a crossover (probability 0.15, tile factors of one parent with
 *                 the order and annotations of another, skipped when illegal), then with
 *                 probability 0.85 (MetaSchedule's genetic_mutate_prob) one mutation
 *                 (mct_sched_mutate: tile sizes, unroll, parallel loop, pack location, ...).
 *                 Each measured slot is, with probability epsilon (default 0.05), a random
 *                 schedule of the initial population instead. The measurements train the model
 *                 (opts.model, else a private one) after each round; before it has
 *                 MCT_COSTMODEL_MIN_TRIALS trials the model is the analytical estimate.
 *   evolutionary-measured
 *                 the ablation without a model, every child measured: an initial generation of
 *                 random schedules (population / 4), then generations of `generation`
 *                 (default 16) children bred from the `population` (default 64) fastest
 *                 measured schedules: parents picked with probability proportional to their
 *                 speed; a child is a crossover (probability 0.15, as above) followed by 1..3
 *                 parameter mutations; with probability epsilon (default 0.05,
 *                 MetaSchedule's eps_greedy) a fresh random schedule.
 *   random        mct_sched_random, batches of 8.
 */
#ifndef MCT_SEARCH_H
#define MCT_SEARCH_H

#include <stddef.h>
#include <stdint.h>

#include "codegen/codegen.h"
#include "runtime/cpu.h"
#include "tuner/costmodel.h"
#include "tuner/guide.h"
#include "tuner/measure.h"

typedef enum {
    MCT_SEARCH_MCTS = 0, MCT_SEARCH_EVO = 1, MCT_SEARCH_RANDOM = 2, MCT_SEARCH_EVO_MEASURED = 3
} mct_search_kind;
#define MCT_SEARCH_NKINDS 4

/* "mcts", "evolutionary", "random", "evolutionary-measured" (static strings; "?" out of range);
 * parse accepts those and "evo" (s not NULL) and returns 0, or MCT_EINVAL with *out unchanged. */
const char *mct_search_kind_name(mct_search_kind k);
int mct_search_kind_parse(const char *s, mct_search_kind *out);

/* One sample (a measured or reused candidate), as passed to on_sample. Its pointers (sched,
 * schedule, applied, detail, res) are valid during the callback only. */
typedef struct mct_search_sample {
    int index;              /* 1-based sample number (1 = the untuned schedule) */
    int node, parent;       /* mcts node ids (root 0); evolutionary/random: candidate id, and
                               the parent id or -1 */
    const mct_sched *sched;
    const char *schedule;   /* canonical text ("" = untuned) */
    uint8_t hash[16];       /* mct_sched_hash */
    const char *applied;    /* transformation that made it from its parent ("untuned",
                               "seed", "random", a guide proposal, "fallback: ...", ...) */
    int status;             /* mct_meas_status */
    const char *detail;     /* why, when status is not ok */
    double latency_s;       /* median; < 0 when failed */
    double spread_s;        /* q3 - q1 */
    double gflops;
    double best_gflops;     /* best so far, including this one */
    int reused;             /* 1: from lookup (not measured now) */
    const mct_meas_result *res; /* the harness record when measured now, else NULL */
} mct_search_sample;

/* What a candidate measured: returned by `lookup` and `evaluate`. */
typedef struct mct_search_meas {
    int status;             /* mct_meas_status */
    double latency_s, spread_s, gflops;
    char detail[256];
} mct_search_meas;

typedef struct mct_search_stats {
    int samples;            /* distinct candidates used, baseline included */
    int measured;           /* of which measured now (the rest came from lookup) */
    int reused;
    int failed;             /* samples whose status was not ok */
    int codegen_bugs;       /* of those, measured ones whose legal schedule did not compile: a
                               code generator bug, not a bad candidate; each is reported through
                               on_note (loud) with workload and schedule */
    int duplicates;         /* candidates skipped because their hash was already seen */
    int invalid;            /* guide proposals refused by mct_sched_apply */
    int fallbacks;          /* mcts expansions that fell back to mct_sched_mutate */
    int expansions;         /* mcts expansions */
    int ranked_out;         /* mcts with rank: legal new proposals the model ranked out */
    int estimates;          /* mcts with rollout: children scored by a model rollout */
    int rounds;             /* evolutionary: rounds (each measures at most `generation`) */
    int model_failures;     /* cost model trainings or predictions that failed (on_note says
                               why; the search goes on with the model it had) */
    double base_latency_s;  /* the untuned schedule's latency (< 0 if it failed) */
    double best_latency_s;
    double best_gflops;
    int best_index;         /* sample number of the best */
    char best_schedule[4096];
} mct_search_stats;

typedef struct mct_search_opts {
    mct_search_kind kind;
    int budget;             /* samples, baseline included; 0: 32 */
    uint64_t seed;          /* 0 counts as 0 (every value is a seed) */
    double c;               /* mcts exploration constant; 0: sqrt 2 */
    int branching;          /* mcts; 0: 2 */
    int population;         /* evolutionary: 0: 2048; evolutionary-measured: 0: 64 */
    int generation;         /* evolutionary: measured per round, 0: 64; evolutionary-measured:
                               children per generation, 0: 16 */
    double epsilon;         /* evolutionary(-measured); < 0 or 0: 0.05 */
    /* the cost model (evolutionary; mcts with rank or rollout): not owned; the search adds its
     * measured samples to it (those it measured now, not those found by lookup, which a model
     * trained on the database holds already) and retrains it. NULL: a private model trained on
     * this search's samples only. */
    mct_costmodel *model;
    int rank;               /* mcts: > 1 asks for branching * rank proposals, keeps the
                               branching the model ranks best; 0 or 1: all, unranked */
    int rollout;            /* mcts: > 0 scores new children by a model rollout of this many
                               mutations and measures them when selection reaches them */
    double cut;             /* > 1: a candidate whose checked first run is slower than cut
                               times the best latency so far is not timed further (the harness's
                               cut_s, tuner/measure.h): it costs at most that long, not a
                               warm-up and the timed calls; killed it is a failed sample; 0: off */
    mct_guide *guide;       /* mcts; required for mcts */
    const mct_cpu *cpu;     /* shown to the guide; NULL: mct_cpu_host() */
    mct_target target;      /* vlen 0: mct_target_host() */
    int threads;            /* kernel threads (shown to the guide); 0: 1 */
    const char *const *seeds; /* schedule texts measured right after the baseline */
    int nseeds;
    /* measurement: meas for candidates, meas_base for the untuned baseline (may be NULL: meas),
     * unless evaluate is set (then neither is used). */
    mct_meas *meas, *meas_base;
    int (*evaluate)(void *ctx, const mct_sched *s, mct_search_meas *out);
    /* returns 0 and fills out when the candidate was measured before (it is then not measured
     * again), MCT_ENOTFOUND otherwise. May be NULL. */
    int (*lookup)(void *ctx, const mct_sched *s, const uint8_t hash[16], mct_search_meas *out);
    /* called once per sample in order; a nonzero return stops the search (returned). */
    int (*on_sample)(void *ctx, const mct_search_sample *smp);
    /* notes for a log: dropped proposals with their reason, fallbacks. May be NULL. */
    /* loud 1: the user must see it whatever the verbosity (a code generator bug); 0: a
     * diagnostic (dropped proposals, fallbacks) */
    void (*on_note)(void *ctx, int loud, const char *line);
    void *ctx;
} mct_search_opts;

/* Runs one search on w until opts->budget samples are used or the space is exhausted (then it
 * returns 0 with fewer samples). Returns 0; MCT_EINVAL for bad options (message in err); the
 * code of mct_sched_create for a w that mct_wl_check refuses (no message); MCT_ENOMEM (no
 * message); a harness failure code ("the measurement harness failed: ..."); or the nonzero
 * value an evaluate or on_sample callback returned. err (errlen bytes) may be NULL. stats (may
 * be NULL) is zeroed first and holds what the search did until it returned. The search keeps no
 * pointer into opts, the guide's proposals or the harness's records after it returns. */
int mct_search_run(const mct_workload *w, const mct_search_opts *opts, mct_search_stats *stats,
                   char *err, size_t errlen);

#endif
