/* The measurement harness's test data: one memfd per workload holding A, bias, C0, the out area
 * and the B copies (laid out for the driver's guard pages), the oracle's answer, and the check
 * of a candidate's first run against it. Contract: tuner/measure.h; layout: tuner/meas_int.h. */
#include "tuner/meas_int.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "codegen/text.h"
#include "tuner/oracle.h"

long meas_llc_bytes(void)
{
    long v = sysconf(_SC_LEVEL3_CACHE_SIZE);
    if (v > 0)
        return v;
    v = sysconf(_SC_LEVEL2_CACHE_SIZE);
    char *text = NULL;
    if (mct_slurp("/sys/devices/system/cpu/cpu0/cache/index3/size", 64, &text, NULL, NULL, 0) ==
        0) {
        long k = 0;
        char unit = 0;
        if (sscanf(text, "%ld%c", &k, &unit) >= 1 && k > 0)
            v = unit == 'M' ? k << 20 : k << 10;
        free(text);
    }
    return v > 0 ? v : 32L << 20;
}

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

void meas_data_release(struct meas_data *d)
{
    if (d->map)
        munmap(d->map, d->len);
    if (d->fd >= 0)
        close(d->fd);
    free(d->cref);
    free(d->wabs);
    free(d->ascale);
    free(d->absprod);
    memset(d, 0, sizeof *d);
    d->fd = -1;
}

/* The job header's sizes, strides and section layout for w: each array ends (64-byte aligned)
 * at the end of its section, next to the guard page the driver puts there. Returns the memfd's
 * length. */
static long layout(const mct_meas *m, const mct_workload *w, long copies, long b_stride,
                   struct mct_job *j)
{
    long heads = (long)(w->batch / w->group);
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
    j->a_floats = (long)(w->M * w->K * w->batch);
    j->b_floats = (long)(w->N * w->K) * heads;
    if (MCT_WL_QUANT(w)) {  /* B holds the plain layout FN_pack_b reads (runtime/quant.h) */
        j->b_floats = (long)(mct_rt_q_plain_bytes(w->wfmt, w->wgroup, j->N, j->K) / 4);
        j->ldb = j->K;
    }
    j->c_floats = (long)(w->M * w->N * w->batch);
    j->copies = copies;
    j->b_stride = b_stride;
    long a_bytes = round_up(j->a_floats * 4, 64), c_bytes = round_up(j->c_floats * 4, 64);
    long bias_bytes = round_up(j->N * 4, 64);
    long lens[MCT_NSEC] = {
        round_up(a_bytes, m->pg),
        w->bias ? round_up(bias_bytes, m->pg) : 0,
        round_up(c_bytes, m->pg),
        round_up(c_bytes, m->pg),
        b_stride * copies,
    };
    long off = m->pg; /* page 0: the job header */
    for (int s = 0; s < MCT_NSEC; s++) {
        j->sec_off[s] = off;
        j->sec_len[s] = lens[s];
        off += lens[s];
    }
    j->a_at = j->sec_off[SEC_A] + lens[SEC_A] - a_bytes;
    j->bias_at = w->bias ? j->sec_off[SEC_BIAS] + lens[SEC_BIAS] - bias_bytes : 0;
    j->c0_at = j->sec_off[SEC_C0] + lens[SEC_C0] - c_bytes;
    j->out_at = j->sec_off[SEC_OUT] + lens[SEC_OUT] - c_bytes;
    j->b_at = j->sec_off[SEC_B] + b_stride - round_up(j->b_floats * 4, 64);
    return off;
}

/* What the bounds of a kernel that rounds A need (widen(B, dot), meas_data_check): per channel
 * sum_k |w|, per row max|a| / 127, and |A| |W| (through the oracle, on absolute copies). */
static int dot_bounds(struct meas_data *d, const mct_workload *wo, const float *A,
                      const float *Bdq, char *err, size_t errlen)
{
    const struct mct_job *j = &d->job;
    long M = j->M, N = j->N, K = j->K;
    float *aa = malloc(sizeof(float) * (size_t)j->a_floats);
    float *wa = malloc(sizeof(float) * (size_t)(N * K));
    d->wabs = calloc((size_t)N, sizeof(float));
    d->ascale = calloc((size_t)M, sizeof(float));
    d->absprod = malloc(sizeof(float) * (size_t)j->c_floats);
    int rc = MCT_ENOMEM;
    if (!aa || !wa || !d->wabs || !d->ascale || !d->absprod)
        goto fail;
    for (long i = 0; i < j->a_floats; i++)
        aa[i] = fabsf(A[i]);
    for (long i = 0; i < M; i++) {
        float mx = 0;
        for (long k = 0; k < K; k++)
            mx = aa[i * j->lda + k] > mx ? aa[i * j->lda + k] : mx;
        d->ascale[i] = mx / 127.0f;
    }
    for (long n = 0; n < N; n++) {
        double sw = 0;
        for (long k = 0; k < K; k++)
            sw += (wa[n * K + k] = fabsf(Bdq[n * K + k]));
        d->wabs[n] = (float)sw;
    }
    mct_workload wp = *wo;
    wp.bias = 0;
    wp.act = MCT_ACT_NONE;
    wp.beta = 0;
    rc = mct_oracle_run(&wp, M, N, K, aa, j->lda, wa, K, d->absprod, j->ldc, NULL, 1, 1, 0, 0,
                        0);
fail:
    if (rc)
        mct_errf(err, errlen, rc, "out of memory for the bounds of rounded activations (M=%ld "
                 "N=%ld K=%ld)", M, N, K);
    free(aa);
    free(wa);
    return rc;
}

int meas_data_prepare(mct_meas *m, const mct_workload *w, char *err, size_t errlen)
{
    char wl[256];
    int rc = mct_wl_format(w, wl, sizeof wl);
    float *Bf = NULL, *Bdq = NULL;
    mct_workload wo = *w;  /* the oracle's view: low-precision B dequantized, [N,K] */
    if (rc < 0)
        return rc;
    long b_bytes = (long)(w->N * w->K) * (long)(w->batch / w->group) * 4;
    if (MCT_WL_QUANT(w))
        b_bytes = (long)mct_rt_q_plain_bytes(w->wfmt, w->wgroup, (long)w->N, (long)w->K);
    long b_stride = round_up(round_up(b_bytes, 64), m->pg);
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
    meas_data_release(&m->d);
    struct meas_data *d = &m->d;
    struct mct_job *j = &d->job;
    d->len = (size_t)layout(m, w, copies, b_stride, j);
    d->rotate_bytes = (size_t)(b_bytes * copies);
    d->fd = memfd_create("mctune-inputs", MFD_CLOEXEC);
    if (d->fd < 0 || ftruncate(d->fd, (off_t)d->len)) {
        rc = mct_errf(err, errlen, MCT_ENOMEM, "cannot create %.0f MiB of shared input memory: "
                      "%s", (double)d->len / (1 << 20), strerror(errno));
        goto fail;
    }
    d->map = mmap(NULL, d->len, PROT_READ | PROT_WRITE, MAP_SHARED, d->fd, 0);
    if (d->map == MAP_FAILED) {
        d->map = NULL;
        rc = mct_errf(err, errlen, MCT_ENOMEM, "cannot map %.0f MiB of shared input memory: %s",
                      (double)d->len / (1 << 20), strerror(errno));
        goto fail;
    }
    uint64_t s = m->o.seed * 0x9E3779B97F4A7C15ULL + 1;
    float *A = (float *)(d->map + j->a_at), *B = (float *)(d->map + j->b_at);
    float *bias = w->bias ? (float *)(d->map + j->bias_at) : NULL;
    float *C0 = (float *)(d->map + j->c0_at);
    fill_uniform(A, j->a_floats, &s);
    if (MCT_WL_QUANT(w)) {
        /* f32 weights quantized by the runtime's quantizer (the one generated libraries and
         * engines' files use), the oracle fed the runtime's dequantized weights: the kernel then
         * differs from the oracle by f32 summation order only */
        long nk = j->N * j->K;
        Bf = malloc(sizeof(float) * (size_t)nk);
        Bdq = malloc(sizeof(float) * (size_t)nk);
        if (!Bf || !Bdq) {
            rc = mct_errf(err, errlen, MCT_ENOMEM, "out of memory for the f32 weights (%ld floats)",
                          nk);
            goto fail;
        }
        fill_uniform(Bf, nk, &s);
        if ((rc = mct_rt_q_quantize(w->wfmt, w->wgroup, w->layout == MCT_NT, j->N, j->K, Bf,
                                    w->layout == MCT_NT ? j->K : j->N, B, err, errlen)))
            goto fail;
        mct_rt_q_dequantize(w->wfmt, w->wgroup, j->N, j->K, B, Bdq);
        wo.layout = MCT_NT;
    } else
        fill_uniform(B, j->b_floats, &s);
    if (bias)
        fill_uniform(bias, j->N, &s);
    if (w->beta)
        fill_uniform(C0, j->c_floats, &s);
    else /* C = out must not read C: NaN there turns any read into a wrong answer */
        for (long i = 0; i < j->c_floats; i++)
            C0[i] = NAN;
    for (long c = 1; c < copies; c++)
        memcpy(d->map + j->b_at + c * b_stride, B, (size_t)b_bytes);
    d->cref = malloc(sizeof(float) * (size_t)j->c_floats);
    if (!d->cref) {
        rc = mct_errf(err, errlen, MCT_ENOMEM, "out of memory for the oracle's answer (%ld "
                      "floats)", j->c_floats);
        goto fail;
    }
    memcpy(d->cref, C0, sizeof(float) * (size_t)j->c_floats);
    rc = mct_oracle_run(&wo, j->M, j->N, j->K, A, j->lda, Bdq ? Bdq : B, j->ldb, d->cref, j->ldc,
                        bias, j->batch, j->group, j->sA, j->sB, j->sC);
    if (rc) {
        mct_errf(err, errlen, rc, "out of memory in the oracle (%s)", wl);
        goto fail;
    }
    if (MCT_WL_QUANT(w) && (rc = dot_bounds(d, &wo, A, Bdq, err, errlen)))
        goto fail;
    d->w = *w;
    snprintf(d->key, sizeof d->key, "%s", key);
    d->valid = 1;
    free(Bf);
    free(Bdq);
    return 0;
fail:
    free(Bf);
    free(Bdq);
    meas_data_release(d);
    return rc;
}

/* A kernel that rounds A (widen(B, dot)) differs from the oracle by the rounding of each a
 * (e, with a = a' + e) on top of f32 summation: the error is sum_k e(i, k) w(k, j), so
 *   int8 per row (|e| <= scale_i / 2, round to nearest):  |err| <= scale_i / 2 * sum_k |w(k, j)|
 *   bf16 (|e| <= 2^-8 |a|, round to nearest even):         |err| <= 2^-8 * sum_k |a(i, k) w(k, j)|
 * (the integer sums are exact; bf16 products are exact in f32). An epilogue's bias adds nothing;
 * relu, silu and gelu are 1-Lipschitz (gelu's tanh form up to ~1.13, taken as 1.2), and beta=1
 * adds C exactly: so each element may differ by the bound times 1.2 plus the f32 tolerance. */
static int check_rounded(const struct meas_data *d, mct_meas_result *r, int dot, const float *got)
{
    const struct mct_job *j = &d->job;
    double tol = mct_oracle_tolerance(j->K), scale = sqrt((double)j->K) + 1;
    double lip = d->w.act == MCT_ACT_NONE || d->w.act == MCT_ACT_RELU ? 1.0 : 1.2;
    for (long i = 0; i < j->M; i++)
        for (long n = 0; n < j->N; n++) {
            double want = d->cref[i * j->ldc + n], g = got[i * j->ldc + n];
            double b = dot == MCT_CG_DOT_BF16 ? ldexp(d->absprod[i * j->ldc + n], -8)
                                              : 0.5 * d->ascale[i] * d->wabs[n];
            double lim = lip * b * (1 + 1e-5) + tol * (fabs(want) + scale);
            if (!(fabs(g - want) <= lim)) {
                snprintf(r->detail, sizeof r->detail, "first run differs from the oracle beyond "
                         "the bound of %s activations: C[%ld][%ld] = %.7g, oracle %.7g, bound "
                         "%.3g (K=%ld)", dot == MCT_CG_DOT_BF16 ? "bf16" : "int8-per-row", i, n,
                         g, want, lim, j->K);
                return 0;
            }
        }
    return 1;
}

int meas_data_check(const struct meas_data *d, mct_meas_result *r, int dot)
{
    const struct mct_job *j = &d->job;
    const float *got = (const float *)(d->map + j->out_at);
    r->relerr = mct_oracle_relerr(j->M, j->N, j->K, got, d->cref, j->ldc, j->batch, j->sC);
    double tol = mct_oracle_tolerance(j->K);
    if (r->relerr <= tol)
        return 1;
    if (dot != MCT_CG_DOT_NONE && d->absprod)
        return check_rounded(d, r, dot, got);
    snprintf(r->detail, sizeof r->detail, "first run differs from the oracle: relative error "
             "%.3g > tolerance %.3g (K=%ld)", r->relerr, tol, j->K);
    return 0;
}
