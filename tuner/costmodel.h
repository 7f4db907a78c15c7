/* The learned cost model: gradient-boosted trees (XGBoost through its C API, as TVM
 * MetaSchedule uses) over the features of the lowered program (mct_cg_features), trained per
 * CPU on measured trials and used by the searches to rank candidates they have not measured.
 *
 * Target: a trial's GFLOP/s divided by the best GFLOP/s among the model's trials of the same
 * workload (MetaSchedule's normalized throughput), so workloads of any size train one model; a
 * failed trial is 0. A prediction is that normalized throughput: it ranks candidates of one
 * workload, and its ratio between two of them estimates their speedup.
 *
 * Cold start: until the model holds MCT_COSTMODEL_MIN_TRIALS trials and has been trained on
 * them, predictions are the analytical estimate (mct_cg_estimate), on another scale: compare
 * predictions only within one state of the model (mct_costmodel_trained says which one).
 *
 * Files: a model is saved beside its database, DB/costmodel-<cpu key>.json (mct_costmodel_path),
 * in XGBoost's JSON model format with attributes naming the feature version, the feature count,
 * the CPU key and the trial count it was trained on. Loading refuses another feature version
 * (MCT_EVERSION) so features are recomputed from the trials (their schedule texts) instead.
 *
 * Threads: one handle is used by one thread at a time. XGBoost runs on one thread, so training
 * is deterministic for given trials.
 */
#ifndef MCT_COSTMODEL_H
#define MCT_COSTMODEL_H

#include <stddef.h>
#include <stdint.h>

#include "codegen/codegen.h"
#include "db/db.h"
#include "runtime/cpu.h"

/* Fewest trials (and at least two distinct targets) the booster is trained on. */
#define MCT_COSTMODEL_MIN_TRIALS 8
/* Boosting rounds per training: few, so retraining after each round of a search is cheap. */
#define MCT_COSTMODEL_ROUNDS 40

typedef struct mct_costmodel mct_costmodel;  /* opaque; _create / _destroy */

/* A new empty model (analytical until trained) for features computed with cpu's caches (copied;
 * NULL: mct_cpu_host()). *out is the caller's (mct_costmodel_destroy). MCT_ENOMEM. */
int mct_costmodel_create(const mct_cpu *cpu, mct_costmodel **out);
/* Frees m and its booster; NULL is ignored. */
void mct_costmodel_destroy(mct_costmodel *m);

/* The CPU key the model's features are computed for (mct_cpu_key of its CPU record). */
uint64_t mct_costmodel_cpu(const mct_costmodel *m);
/* Trials held, and 1 when predictions come from a trained booster (else the estimate). */
size_t mct_costmodel_count(const mct_costmodel *m);
int mct_costmodel_trained(const mct_costmodel *m);

/* Adds one trial: s lowered for t (NULL: scalar) measured at gflops (<= 0 or not finite: a failed
 * candidate, target 0). The booster is not retrained (mct_costmodel_train). MCT_EINVAL (m or s
 * NULL), MCT_ENOMEM. */
int mct_costmodel_add(mct_costmodel *m, const mct_sched *s, const mct_target *t, double gflops);
/* The same with precomputed features (n == MCT_CG_NFEATURES) and the workload hash that groups
 * trials for the normalization. */
int mct_costmodel_add_features(mct_costmodel *m, const uint8_t wl[16], const float *f, int n,
                               double gflops);

/* Trains the booster anew on every trial held (MCT_COSTMODEL_ROUNDS rounds, squared error on
 * the normalized target). With fewer than MCT_COSTMODEL_MIN_TRIALS trials, or one target value
 * only, it keeps whatever it had (the estimate before any training) and returns 0. Errors:
 * MCT_ENOMEM, MCT_EIO with XGBoost's message in err ("cost model: training failed: ..."). */
int mct_costmodel_train(mct_costmodel *m, char *err, size_t errlen);

/* Predictions for n schedules lowered for t into out[0..n). MCT_EINVAL (a NULL argument),
 * MCT_ENOMEM, MCT_EIO with XGBoost's message. */
int mct_costmodel_predict(mct_costmodel *m, const mct_sched *const *s, int n,
                          const mct_target *t, double *out, char *err, size_t errlen);
/* Predictions for n precomputed feature rows (row-major, MCT_CG_NFEATURES each). */
int mct_costmodel_predict_features(mct_costmodel *m, const float *f, int n, double *out,
                                   char *err, size_t errlen);

/* Adds the trials of db measured on the model's CPU (any thread count), recomputing features
 * from their workload and schedule texts for the target of the CPU record's tier and the trial's
 * threads. keep (may be NULL: all) filters them; a trial whose schedule no longer parses (an
 * older code generator) is skipped and counted in *skipped (may be NULL). The booster is not
 * retrained. Errors: the iteration's (db/db.h, message in mct_db_errmsg copied to err),
 * MCT_ENOMEM. */
int mct_costmodel_add_db(mct_costmodel *m, mct_db *db,
                         int (*keep)(void *ctx, const mct_db_rec *r), void *ctx,
                         size_t *skipped, char *err, size_t errlen);

/* The model file of CPU key cpu beside the database at dbpath (a directory: DIR/costmodel-KEY.json;
 * an LMDB data file: FILE.costmodel-KEY.json). Returns 0 or MCT_ERANGE (buf too small). */
int mct_costmodel_path(const char *dbpath, uint64_t cpu, char *buf, size_t len);

/* Saves the trained booster to path (written to a temporary file beside it, then renamed).
 * MCT_EINVAL when the model is not trained ("nothing to save"); MCT_EIO with the reason. */
int mct_costmodel_save(const mct_costmodel *m, const char *path, char *err, size_t errlen);

/* Loads the booster saved at path into m, replacing its own; m's trials stay. After success
 * m is trained. Errors, m unchanged, message in err naming the file: MCT_ENOTFOUND (no file),
 * MCT_ECORRUPT (not an XGBoost model, or one without mctune's attributes), MCT_EVERSION
 * (another feature version or count: retrain), MCT_EINVAL (saved for another CPU key),
 * MCT_ENOMEM. *trials (may be NULL) gets the trial count it was trained on. */
int mct_costmodel_load(mct_costmodel *m, const char *path, size_t *trials, char *err,
                       size_t errlen);

/* The model a tuning run uses for cpu: the database's trials of that CPU, with the booster saved
 * beside it when that one was trained on as many trials (so nothing is retrained), else trained
 * anew and saved (a file that cannot be written is not an error: note says so). note (may be
 * NULL, notelen bytes) tells what happened ("loaded", "trained on N trials", "a stale model
 * file was refused: ..."). *out is the caller's. Errors: those of mct_costmodel_add_db and
 * mct_costmodel_train. */
int mct_costmodel_open(mct_db *db, const mct_cpu *cpu, mct_costmodel **out, char *note,
                       size_t notelen, char *err, size_t errlen);

/* Saves m beside db (mct_costmodel_path; the path into path, pathlen bytes), retraining it
 * first when it holds trials it was not trained on: what a tuning run does at its end, so the
 * next run loads it. The errors of train and save (MCT_EINVAL: too few trials to train). */
int mct_costmodel_save_db(mct_costmodel *m, mct_db *db, char *path, size_t pathlen, char *err,
                          size_t errlen);

/* `mctune model train`: trains a model on every trial of cpu in db and saves it beside the
 * database (its path into path, pathlen bytes). *trials and *skipped (may be NULL) get the
 * trials used and those whose schedule did not parse. MCT_EINVAL when there are fewer than
 * MCT_COSTMODEL_MIN_TRIALS usable trials of that CPU (the message says how many and what to
 * do); the errors of add_db, train and save. */
int mct_costmodel_train_db(mct_db *db, const mct_cpu *cpu, size_t *trials, size_t *skipped,
                           char *path, size_t pathlen, char *err, size_t errlen);

/* Spearman's rank correlation of a[0..n) and b[0..n) (ties take their mean rank); 0 when n < 2
 * or either is constant. */
double mct_costmodel_spearman(const double *a, const double *b, int n);

/* Held-out evaluation of a model trained on the rest of the trials. */
typedef struct mct_costmodel_eval {
    size_t train, test;     /* trials in each part */
    size_t skipped;         /* trials whose schedule did not parse */
    int workloads;          /* workloads with at least 3 held-out trials (those rho_* cover) */
    double rho;             /* over all held-out trials (normalized targets) */
    double rho_wl;          /* mean over those workloads */
    double rho_analytical;  /* the analytical estimate's mean over the same workloads */
    int trained;            /* 0: too few training trials, the figures are the estimate's */
} mct_costmodel_eval;

/* Splits db's trials of cpu at random (seed) into a held-out fraction holdout (0 < h < 1) and
 * the rest, trains on the rest and measures Spearman's rho on the held-out part; per_wl (may be
 * NULL) is called for each workload with at least 3 held-out trials. MCT_EINVAL (holdout out of
 * range, message names it), and the errors of add_db and train. */
int mct_costmodel_evaluate(mct_db *db, const mct_cpu *cpu, double holdout, uint64_t seed,
                           void (*per_wl)(void *ctx, const char *wl, int n, double rho,
                                          double rho_analytical),
                           void *ctx, mct_costmodel_eval *out, char *err, size_t errlen);

#endif
