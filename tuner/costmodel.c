/* The learned cost model over mct_cg_features: XGBoost boosters trained on normalized
 * throughput, saved beside the database. See tuner/costmodel.h. */
#include "tuner/costmodel.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xgboost/c_api.h>

#define NF MCT_CG_NFEATURES

typedef struct group {
    uint8_t wl[16];
    double best;            /* best GFLOP/s among the trials of this workload */
} group;

struct mct_costmodel {
    mct_cpu cpu;
    uint64_t key;
    float *x;               /* n rows of NF features */
    double *y;              /* GFLOP/s (0: failed) */
    int *g;                 /* group of each row */
    size_t n, cap;
    group *gr;
    int ng, capg;
    BoosterHandle bst;
    size_t trained_on;      /* rows the booster was trained on (or the file said) */
};

static int xgb_fail(char *err, size_t errlen, const char *what)
{
    return mct_errf(err, errlen, MCT_EIO, "cost model: %s failed: %s", what, XGBGetLastError());
}

int mct_costmodel_create(const mct_cpu *cpu, mct_costmodel **out)
{
    mct_costmodel *m = calloc(1, sizeof *m);
    if (!m)
        return MCT_ENOMEM;
    m->cpu = cpu ? *cpu : *mct_cpu_host();
    m->key = mct_cpu_key(&m->cpu);
    *out = m;
    return 0;
}

void mct_costmodel_destroy(mct_costmodel *m)
{
    if (!m)
        return;
    if (m->bst)
        XGBoosterFree(m->bst);
    free(m->x);
    free(m->y);
    free(m->g);
    free(m->gr);
    free(m);
}

uint64_t mct_costmodel_cpu(const mct_costmodel *m)
{
    return m->key;
}

size_t mct_costmodel_count(const mct_costmodel *m)
{
    return m->n;
}

int mct_costmodel_trained(const mct_costmodel *m)
{
    return m->bst != NULL;
}

static int group_of(mct_costmodel *m, const uint8_t wl[16])
{
    for (int i = 0; i < m->ng; i++)
        if (!memcmp(m->gr[i].wl, wl, 16))
            return i;
    if (m->ng == m->capg) {
        int nc = m->capg ? m->capg * 2 : 16;
        group *ng = realloc(m->gr, (size_t)nc * sizeof *ng);
        if (!ng)
            return MCT_ENOMEM;
        m->gr = ng;
        m->capg = nc;
    }
    memcpy(m->gr[m->ng].wl, wl, 16);
    m->gr[m->ng].best = 0;
    return m->ng++;
}

int mct_costmodel_add_features(mct_costmodel *m, const uint8_t wl[16], const float *f, int n,
                               double gflops)
{
    if (!m || !wl || !f || n != NF)
        return MCT_EINVAL;
    if (m->n == m->cap) {
        size_t nc = m->cap ? m->cap * 2 : 256;
        float *nx = realloc(m->x, nc * NF * sizeof *nx);
        if (!nx)
            return MCT_ENOMEM;
        m->x = nx;
        double *ny = realloc(m->y, nc * sizeof *ny);
        if (!ny)
            return MCT_ENOMEM;
        m->y = ny;
        int *ng = realloc(m->g, nc * sizeof *ng);
        if (!ng)
            return MCT_ENOMEM;
        m->g = ng;
        m->cap = nc;
    }
    int g = group_of(m, wl);
    if (g < 0)
        return g;
    if (!(gflops > 0) || !isfinite(gflops))
        gflops = 0;
    memcpy(m->x + m->n * NF, f, NF * sizeof *f);
    m->y[m->n] = gflops;
    m->g[m->n] = g;
    if (gflops > m->gr[g].best)
        m->gr[g].best = gflops;
    m->n++;
    return 0;
}

int mct_costmodel_add(mct_costmodel *m, const mct_sched *s, const mct_target *t, double gflops)
{
    if (!m || !s)
        return MCT_EINVAL;
    float f[NF];
    int r = mct_cg_features(s, t, &m->cpu, f, NF);
    if (r < 0)
        return r;
    uint8_t wl[16];
    mct_wl_hash(mct_sched_workload(s), wl);
    return mct_costmodel_add_features(m, wl, f, NF, gflops);
}

static int set_params(BoosterHandle b, char *err, size_t errlen)
{
    static const char *const kv[][2] = {
        {"objective", "reg:squarederror"}, {"eta", "0.3"}, {"max_depth", "6"},
        {"min_child_weight", "1"}, {"tree_method", "hist"}, {"nthread", "1"}, {"seed", "0"},
        {"verbosity", "0"},
    };
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++)
        if (XGBoosterSetParam(b, kv[i][0], kv[i][1]))
            return xgb_fail(err, errlen, "setting a parameter");
    return 0;
}

int mct_costmodel_train(mct_costmodel *m, char *err, size_t errlen)
{
    if (m->n < MCT_COSTMODEL_MIN_TRIALS)
        return 0;
    float *lab = malloc(m->n * sizeof *lab);
    if (!lab)
        return MCT_ENOMEM;
    int distinct = 0;
    for (size_t i = 0; i < m->n; i++) {
        double b = m->gr[m->g[i]].best;
        lab[i] = b > 0 ? (float)(m->y[i] / b) : 0.0f;
        if (i && lab[i] != lab[0])
            distinct = 1;
    }
    DMatrixHandle d = NULL;
    BoosterHandle b = NULL;
    int r = 0;
    if (!distinct)
        goto fail;
    if (XGDMatrixCreateFromMat(m->x, (bst_ulong)m->n, NF, NAN, &d)) {
        r = xgb_fail(err, errlen, "building the training matrix");
        goto fail;
    }
    if (XGDMatrixSetFloatInfo(d, "label", lab, (bst_ulong)m->n)) {
        r = xgb_fail(err, errlen, "setting the labels");
        goto fail;
    }
    if (XGBoosterCreate(&d, 1, &b)) {
        r = xgb_fail(err, errlen, "creating the booster");
        goto fail;
    }
    if ((r = set_params(b, err, errlen)))
        goto fail;
    for (int it = 0; it < MCT_COSTMODEL_ROUNDS; it++)
        if (XGBoosterUpdateOneIter(b, it, d)) {
            r = xgb_fail(err, errlen, "training");
            goto fail;
        }
    if (m->bst)
        XGBoosterFree(m->bst);
    m->bst = b;
    b = NULL;
    m->trained_on = m->n;
fail:
    if (b)
        XGBoosterFree(b);
    if (d)
        XGDMatrixFree(d);
    free(lab);
    return r;
}

int mct_costmodel_predict_features(mct_costmodel *m, const float *f, int n, double *out,
                                   char *err, size_t errlen)
{
    if (!m || (!f && n) || (!out && n) || n < 0)
        return MCT_EINVAL;
    if (!n)
        return 0;
    if (!m->bst) {
        for (int i = 0; i < n; i++)
            out[i] = mct_cg_estimate(f + (size_t)i * NF, NF);
        return 0;
    }
    DMatrixHandle d = NULL;
    if (XGDMatrixCreateFromMat(f, (bst_ulong)n, NF, NAN, &d))
        return xgb_fail(err, errlen, "building the prediction matrix");
    bst_ulong len = 0;
    const float *res = NULL;
    int r = 0;
    if (XGBoosterPredict(m->bst, d, 0, 0, 0, &len, &res)) {
        r = xgb_fail(err, errlen, "predicting");
        goto fail;
    }
    if (len != (bst_ulong)n) {
        r = mct_errf(err, errlen, MCT_EIO, "cost model: %llu predictions for %d rows",
                     (unsigned long long)len, n);
        goto fail;
    }
    for (int i = 0; i < n; i++)
        out[i] = res[i];
fail:
    XGDMatrixFree(d);
    return r;
}

int mct_costmodel_predict(mct_costmodel *m, const mct_sched *const *s, int n,
                          const mct_target *t, double *out, char *err, size_t errlen)
{
    if (!m || (!s && n) || (!out && n) || n < 0)
        return MCT_EINVAL;
    if (!n)
        return 0;
    float *f = malloc((size_t)n * NF * sizeof *f);
    if (!f)
        return MCT_ENOMEM;
    int r = 0;
    for (int i = 0; i < n; i++)
        if ((r = mct_cg_features(s[i], t, &m->cpu, f + (size_t)i * NF, NF)) < 0)
            goto fail;
    r = mct_costmodel_predict_features(m, f, n, out, err, errlen);
fail:
    free(f);
    return r < 0 ? r : 0;
}

/* the database ------------------------------------------------------------------------------ */

typedef struct dbctx {
    mct_costmodel *m;
    mct_target t;
    int (*keep)(void *ctx, const mct_db_rec *r);
    void *ctx;
    size_t skipped;
} dbctx;

static int from_trial(const mct_db_rec *r, void *vctx)
{
    dbctx *c = vctx;
    if (r->cpu != c->m->key || (c->keep && !c->keep(c->ctx, r)))
        return 0;
    mct_workload w;
    mct_sched *s;
    if (mct_wl_parse(r->workload, &w, NULL, 0) || mct_sched_parse(&w, r->schedule, &s, NULL, 0)) {
        c->skipped++;
        return 0;
    }
    mct_target t = c->t;
    t.threads = r->threads;
    /* failed trials are stored with 0 GFLOP/s: they train the model to rank them last */
    int rc = mct_costmodel_add(c->m, s, &t, r->gflops);
    mct_sched_destroy(s);
    return rc;
}

int mct_costmodel_add_db(mct_costmodel *m, mct_db *db,
                         int (*keep)(void *ctx, const mct_db_rec *r), void *ctx,
                         size_t *skipped, char *err, size_t errlen)
{
    dbctx c = {m, mct_target_of_tier(mct_cpu_tier_of(&m->cpu)), keep, ctx, 0};
    int r = mct_db_iter(db, MCT_DB_TRIALS, from_trial, &c);
    if (skipped)
        *skipped = c.skipped;
    if (r == MCT_ENOMEM)
        return mct_errf(err, errlen, r, "cost model: out of memory reading the trials");
    if (r)
        return mct_errf(err, errlen, r, "cost model: reading the trials of %s: %s",
                        mct_db_path(db), mct_db_errmsg(db));
    return 0;
}

/* files ------------------------------------------------------------------------------------- */

int mct_costmodel_path(const char *dbpath, uint64_t cpu, char *buf, size_t len)
{
    char key[17];
    struct stat st;
    mct_cpu_key_format(cpu, key);
    int dir = stat(dbpath, &st) == 0 ? S_ISDIR(st.st_mode) : 1;
    size_t dl = strlen(dbpath);
    while (dir && dl > 1 && dbpath[dl - 1] == '/')
        dl--;
    int n = snprintf(buf, len, "%.*s%scostmodel-%s.json", (int)dl, dbpath, dir ? "/" : ".", key);
    return n < 0 || (size_t)n >= len ? MCT_ERANGE : 0;
}

#define ATTR_VERSION "mctune_feature_version"
#define ATTR_NFEAT "mctune_features"
#define ATTR_CPU "mctune_cpu"
#define ATTR_TRIALS "mctune_trials"

int mct_costmodel_save(const mct_costmodel *m, const char *path, char *err, size_t errlen)
{
    if (!m->bst)
        return mct_errf(err, errlen, MCT_EINVAL, "cost model: nothing to save: the model has "
                        "not been trained (it needs %d trials)", MCT_COSTMODEL_MIN_TRIALS);
    char tmp[4200], v[32], key[17];
    /* XGBoost picks the format from the name: the temporary file ends in .json too */
    if (snprintf(tmp, sizeof tmp, "%s.%ld.tmp.json", path, (long)getpid()) >= (int)sizeof tmp)
        return mct_errf(err, errlen, MCT_EINVAL, "cost model: path too long: %s", path);
    mct_cpu_key_format(m->key, key);
    snprintf(v, sizeof v, "%d", MCT_CG_FEATURE_VERSION);
    if (XGBoosterSetAttr(m->bst, ATTR_VERSION, v))
        return xgb_fail(err, errlen, "setting an attribute");
    snprintf(v, sizeof v, "%d", NF);
    if (XGBoosterSetAttr(m->bst, ATTR_NFEAT, v) || XGBoosterSetAttr(m->bst, ATTR_CPU, key))
        return xgb_fail(err, errlen, "setting an attribute");
    snprintf(v, sizeof v, "%zu", m->trained_on);
    if (XGBoosterSetAttr(m->bst, ATTR_TRIALS, v))
        return xgb_fail(err, errlen, "setting an attribute");
    if (XGBoosterSaveModel(m->bst, tmp)) {
        int r = mct_errf(err, errlen, MCT_EIO, "cost model: cannot write %s: %s", tmp,
                         XGBGetLastError());
        unlink(tmp);
        return r;
    }
    if (rename(tmp, path)) {
        unlink(tmp);
        return mct_errf(err, errlen, MCT_EIO, "cost model: cannot rename %s to %s", tmp, path);
    }
    return 0;
}

static int get_attr(BoosterHandle b, const char *name, char *out, size_t len)
{
    const char *v = NULL;
    int ok = 0;
    if (XGBoosterGetAttr(b, name, &v, &ok) || !ok || !v)
        return -1;
    snprintf(out, len, "%s", v);
    return 0;
}

int mct_costmodel_load(mct_costmodel *m, const char *path, size_t *trials, char *err,
                       size_t errlen)
{
    struct stat st;
    if (stat(path, &st))
        return mct_errf(err, errlen, MCT_ENOTFOUND, "cost model: no model file %s", path);
    if (!S_ISREG(st.st_mode))
        return mct_errf(err, errlen, MCT_ECORRUPT, "cost model: %s is not a file", path);
    BoosterHandle b = NULL;
    char ver[32], nf[32], key[32], tr[32], want[17];
    int r = 0;
    if (XGBoosterCreate(NULL, 0, &b))
        return xgb_fail(err, errlen, "creating the booster");
    if (XGBoosterLoadModel(b, path)) {
        r = mct_errf(err, errlen, MCT_ECORRUPT, "cost model: %s is not a readable XGBoost model "
                     "(%s); delete it, or run `mctune model train` to write it again", path,
                     XGBGetLastError());
        goto fail;
    }
    if (get_attr(b, ATTR_VERSION, ver, sizeof ver) || get_attr(b, ATTR_NFEAT, nf, sizeof nf) ||
        get_attr(b, ATTR_CPU, key, sizeof key) || get_attr(b, ATTR_TRIALS, tr, sizeof tr)) {
        r = mct_errf(err, errlen, MCT_ECORRUPT, "cost model: %s is an XGBoost model without "
                     "mctune's attributes (feature version, CPU); delete it or run `mctune "
                     "model train` to replace it", path);
        goto fail;
    }
    if (atoi(ver) != MCT_CG_FEATURE_VERSION || atoi(nf) != NF) {
        r = mct_errf(err, errlen, MCT_EVERSION, "cost model: %s was trained on feature version "
                     "%s (%s features); this mctune computes version %d (%d features): it is "
                     "retrained from the trials (`mctune model train`)", path, ver, nf,
                     MCT_CG_FEATURE_VERSION, NF);
        goto fail;
    }
    mct_cpu_key_format(m->key, want);
    if (strcmp(key, want)) {
        r = mct_errf(err, errlen, MCT_EINVAL, "cost model: %s is the model of CPU %s, not of "
                     "CPU %s", path, key, want);
        goto fail;
    }
    /* the training parameters are not all part of the model file: set them for retraining */
    if ((r = set_params(b, err, errlen)))
        goto fail;
    if (m->bst)
        XGBoosterFree(m->bst);
    m->bst = b;
    b = NULL;
    m->trained_on = (size_t)strtoull(tr, NULL, 10);
    if (trials)
        *trials = m->trained_on;
fail:
    if (b)
        XGBoosterFree(b);
    return r;
}

int mct_costmodel_open(mct_db *db, const mct_cpu *cpu, mct_costmodel **out, char *note,
                       size_t notelen, char *err, size_t errlen)
{
    mct_costmodel *m;
    char path[4200], lerr[1024] = "";
    size_t skipped = 0, saved = 0;
    char dummy[1];
    if (!note || !notelen) {
        note = dummy;
        notelen = sizeof dummy;
    }
    note[0] = 0;
    int r = mct_costmodel_create(cpu, &m);
    if (r)
        return mct_errf(err, errlen, r, "cost model: out of memory");
    if ((r = mct_costmodel_add_db(m, db, NULL, NULL, &skipped, err, errlen)))
        goto fail;
    int have = mct_costmodel_path(mct_db_path(db), m->key, path, sizeof path) == 0;
    int lr = have ? mct_costmodel_load(m, path, &saved, lerr, sizeof lerr) : MCT_ENOTFOUND;
    if (!lr && saved == m->n) {
        snprintf(note, notelen, "cost model %s loaded (%zu trials)", path, saved);
    } else {
        if (m->bst) {
            XGBoosterFree(m->bst);
            m->bst = NULL;
        }
        if ((r = mct_costmodel_train(m, err, errlen)))
            goto fail;
        char serr[512] = "";
        int sr = m->bst && have ? mct_costmodel_save(m, path, serr, sizeof serr) : 0;
        size_t l = 0;
        if (lr && lr != MCT_ENOTFOUND)
            l = (size_t)snprintf(note, notelen, "%s; ", lerr);
        if (l < notelen && m->bst)
            l += (size_t)snprintf(note + l, notelen - l, "cost model trained on %zu trials%s%s",
                                  m->n, sr ? "; not saved: " : ", saved to ", sr ? serr : path);
        else if (l < notelen)
            l += (size_t)snprintf(note + l, notelen - l, "cost model: %zu trials, too few to "
                                  "train: the analytical estimate until there are %d", m->n,
                                  MCT_COSTMODEL_MIN_TRIALS);
        if (l < notelen && skipped)
            snprintf(note + l, notelen - l, " (%zu trials skipped: schedules that no longer "
                     "parse)", skipped);
    }
    *out = m;
    return 0;
fail:
    mct_costmodel_destroy(m);
    return r;
}

int mct_costmodel_save_db(mct_costmodel *m, mct_db *db, char *path, size_t pathlen, char *err,
                          size_t errlen)
{
    int r;
    if (mct_costmodel_path(mct_db_path(db), m->key, path, pathlen))
        return mct_errf(err, errlen, MCT_ERANGE, "cost model: the path beside %s is too long",
                        mct_db_path(db));
    if ((!m->bst || m->trained_on != m->n) && (r = mct_costmodel_train(m, err, errlen)))
        return r;
    return mct_costmodel_save(m, path, err, errlen);
}

int mct_costmodel_train_db(mct_db *db, const mct_cpu *cpu, size_t *trials, size_t *skipped,
                           char *path, size_t pathlen, char *err, size_t errlen)
{
    mct_costmodel *m;
    size_t sk = 0;
    char key[17];
    int r = mct_costmodel_create(cpu, &m);
    if (r)
        return mct_errf(err, errlen, r, "cost model: out of memory");
    mct_cpu_key_format(m->key, key);
    if ((r = mct_costmodel_add_db(m, db, NULL, NULL, &sk, err, errlen)))
        goto fail;
    if (trials)
        *trials = m->n;
    if (skipped)
        *skipped = sk;
    if ((r = mct_costmodel_path(mct_db_path(db), m->key, path, pathlen))) {
        r = mct_errf(err, errlen, r, "cost model: the path beside %s is too long", mct_db_path(db));
        goto fail;
    }
    if ((r = mct_costmodel_train(m, err, errlen)))
        goto fail;
    if (!m->bst) {
        r = mct_errf(err, errlen, MCT_EINVAL, "cost model: %zu usable trials of CPU %s in %s "
                     "(%zu skipped); the model needs at least %d with different speeds: tune "
                     "on that CPU first (`mctune tune`)", m->n, key, mct_db_path(db), sk,
                     MCT_COSTMODEL_MIN_TRIALS);
        goto fail;
    }
    r = mct_costmodel_save(m, path, err, errlen);
fail:
    mct_costmodel_destroy(m);
    return r;
}

/* evaluation ------------------------------------------------------------------------------- */

static int cmp_idx(const void *a, const void *b, void *ctx)
{
    const double *v = ctx;
    double x = v[*(const int *)a], y = v[*(const int *)b];
    return x < y ? -1 : x > y ? 1 : 0;
}

static int ranks(const double *v, int n, double *rk)
{
    int *ix = malloc((size_t)n * sizeof *ix);
    if (!ix)
        return MCT_ENOMEM;
    for (int i = 0; i < n; i++)
        ix[i] = i;
    qsort_r(ix, (size_t)n, sizeof *ix, cmp_idx, (void *)v);
    for (int i = 0; i < n;) {
        int j = i;
        while (j + 1 < n && v[ix[j + 1]] == v[ix[i]])
            j++;
        for (int q = i; q <= j; q++)
            rk[ix[q]] = (i + j) / 2.0;
        i = j + 1;
    }
    free(ix);
    return 0;
}

double mct_costmodel_spearman(const double *a, const double *b, int n)
{
    if (n < 2)
        return 0;
    double *ra = malloc((size_t)n * sizeof *ra), *rb = malloc((size_t)n * sizeof *rb);
    double rho = 0;
    if (!ra || !rb || ranks(a, n, ra) || ranks(b, n, rb))
        goto fail;
    double ma = 0, mb = 0;
    for (int i = 0; i < n; i++)
        ma += ra[i], mb += rb[i];
    ma /= n, mb /= n;
    double sab = 0, saa = 0, sbb = 0;
    for (int i = 0; i < n; i++) {
        sab += (ra[i] - ma) * (rb[i] - mb);
        saa += (ra[i] - ma) * (ra[i] - ma);
        sbb += (rb[i] - mb) * (rb[i] - mb);
    }
    rho = saa > 0 && sbb > 0 ? sab / sqrt(saa * sbb) : 0;
fail:
    free(ra);
    free(rb);
    return rho;
}

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    return x ^ (x >> 33);
}

int mct_costmodel_evaluate(mct_db *db, const mct_cpu *cpu, double holdout, uint64_t seed,
                           void (*per_wl)(void *ctx, const char *wl, int n, double rho,
                                          double rho_analytical),
                           void *ctx, mct_costmodel_eval *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!(holdout > 0 && holdout < 1))
        return mct_errf(err, errlen, MCT_EINVAL, "cost model: held-out fraction %g is not "
                        "between 0 and 1 (e.g. 0.2)", holdout);
    mct_costmodel *all = NULL, *tr = NULL;
    int *test = NULL, nt = 0, r;
    double *pred = NULL, *est = NULL, *yt = NULL, *a = NULL, *b = NULL, *c = NULL;
    if ((r = mct_costmodel_create(cpu, &all)) || (r = mct_costmodel_create(cpu, &tr)))
        goto nomem;
    if ((r = mct_costmodel_add_db(all, db, NULL, NULL, &out->skipped, err, errlen)))
        goto fail;
    size_t n = all->n;
    test = malloc((n + 1) * sizeof *test);
    pred = malloc((n + 1) * sizeof *pred);
    est = malloc((n + 1) * sizeof *est);
    yt = malloc((n + 1) * sizeof *yt);
    a = malloc((n + 1) * sizeof *a);
    b = malloc((n + 1) * sizeof *b);
    c = malloc((n + 1) * sizeof *c);
    if (!test || !pred || !est || !yt || !a || !b || !c)
        goto nomem;
    for (size_t i = 0; i < n; i++) {
        /* the split draws from the seed and the row, so it does not depend on the order */
        uint64_t h = mix(seed ^ mix(i + 0x9e3779b97f4a7c15ULL));
        if ((double)(h >> 11) / 9007199254740992.0 < holdout)
            test[nt++] = (int)i;
        else if ((r = mct_costmodel_add_features(tr, all->gr[all->g[i]].wl, all->x + i * NF, NF,
                                                 all->y[i])))
            goto fail;
    }
    out->train = tr->n;
    out->test = (size_t)nt;
    if ((r = mct_costmodel_train(tr, err, errlen)))
        goto fail;
    out->trained = tr->bst != NULL;
    float *ft = malloc(((size_t)nt + 1) * NF * sizeof *ft);
    if (!ft)
        goto nomem;
    for (int i = 0; i < nt; i++) {
        memcpy(ft + (size_t)i * NF, all->x + (size_t)test[i] * NF, NF * sizeof *ft);
        est[i] = mct_cg_estimate(ft + (size_t)i * NF, NF);
        double best = all->gr[all->g[test[i]]].best;
        yt[i] = best > 0 ? all->y[test[i]] / best : 0;
    }
    r = mct_costmodel_predict_features(tr, ft, nt, pred, err, errlen);
    free(ft);
    if (r)
        goto fail;
    out->rho = mct_costmodel_spearman(yt, pred, nt);
    /* per workload: the ranking a search needs */
    for (int g = 0; g < all->ng; g++) {
        int k = 0;
        for (int i = 0; i < nt; i++)
            if (all->g[test[i]] == g) {
                a[k] = yt[i];
                b[k] = pred[i];
                c[k] = est[i];
                k++;
            }
        if (k < 3)
            continue;
        double rw = mct_costmodel_spearman(a, b, k), ra = mct_costmodel_spearman(a, c, k);
        out->workloads++;
        out->rho_wl += rw;
        out->rho_analytical += ra;
        if (per_wl) {
            char wl[256] = "?";
            mct_db_get_workload(db, all->gr[g].wl, wl, sizeof wl);
            per_wl(ctx, wl, k, rw, ra);
        }
    }
    if (out->workloads) {
        out->rho_wl /= out->workloads;
        out->rho_analytical /= out->workloads;
    }
    r = 0;
    goto fail;
nomem:
    r = mct_errf(err, errlen, MCT_ENOMEM, "cost model: out of memory");
fail:
    mct_costmodel_destroy(all);
    mct_costmodel_destroy(tr);
    free(test);
    free(pred);
    free(est);
    free(yt);
    free(a);
    free(b);
    free(c);
    return r;
}
