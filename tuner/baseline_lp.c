/* oneDNN matmul with bf16 or int8 weights as a baseline (tuner/baseline_lp.h). The types come
 * from oneDNN's headers when they are installed; every call goes through dlsym, so nothing links
 * against libdnnl. */
#include "tuner/baseline_lp.h"

#include <dlfcn.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/cpu.h"
#include "runtime/mct_err.h"
#include "tuner/baseline.h"

#if defined(__has_include)
#if __has_include(<oneapi/dnnl/dnnl.h>)
#define MCT_HAVE_DNNL_H 1
#include <oneapi/dnnl/dnnl.h>
#endif
#endif

#ifndef MCT_HAVE_DNNL_H

struct mct_base_lp {
    char label[8];
};

int mct_base_lp_open(const char *fmt, int nt, long M, long N, long K, int threads,
                     const float *A, const float *B, mct_base_lp **out, char *err,
                     size_t errlen)
{
    *out = NULL;
    return mct_errf(err, errlen, MCT_ENOTFOUND, "built without oneDNN's headers: install "
                    "libdnnl-dev (scripts/install-deps.sh) and rebuild");
}
int mct_base_lp_run(mct_base_lp *l) { return MCT_EINVAL; }
const float *mct_base_lp_out(const mct_base_lp *l) { return NULL; }
const char *mct_base_lp_label(const mct_base_lp *l) { return ""; }
int mct_base_lp_wmax(const mct_base_lp *l) { return 0; }
void mct_base_lp_close(mct_base_lp *l) { free(l); }

#else

/* The oneDNN calls used here, loaded once. */
#define DNNL_FNS(X)                                                                        \
    X(dnnl_status_t, dnnl_engine_create, (dnnl_engine_t *, dnnl_engine_kind_t, size_t))   \
    X(dnnl_status_t, dnnl_engine_destroy, (dnnl_engine_t))                                \
    X(dnnl_status_t, dnnl_stream_create, (dnnl_stream_t *, dnnl_engine_t, unsigned))      \
    X(dnnl_status_t, dnnl_stream_wait, (dnnl_stream_t))                                   \
    X(dnnl_status_t, dnnl_stream_destroy, (dnnl_stream_t))                                \
    X(dnnl_status_t, dnnl_memory_desc_init_by_tag,                                        \
      (dnnl_memory_desc_t *, int, const dnnl_dims_t, dnnl_data_type_t, dnnl_format_tag_t)) \
    X(dnnl_status_t, dnnl_matmul_desc_init,                                               \
      (dnnl_matmul_desc_t *, const dnnl_memory_desc_t *, const dnnl_memory_desc_t *,      \
       const dnnl_memory_desc_t *, const dnnl_memory_desc_t *))                           \
    X(dnnl_status_t, dnnl_primitive_attr_create, (dnnl_primitive_attr_t *))               \
    X(dnnl_status_t, dnnl_primitive_attr_destroy, (dnnl_primitive_attr_t))                \
    X(dnnl_status_t, dnnl_primitive_attr_set_output_scales,                               \
      (dnnl_primitive_attr_t, dnnl_dim_t, int, const float *))                            \
    X(dnnl_status_t, dnnl_primitive_desc_create,                                          \
      (dnnl_primitive_desc_t *, const_dnnl_op_desc_t, const_dnnl_primitive_attr_t,        \
       dnnl_engine_t, const_dnnl_primitive_desc_t))                                       \
    X(dnnl_status_t, dnnl_primitive_desc_destroy, (dnnl_primitive_desc_t))                \
    X(const dnnl_memory_desc_t *, dnnl_primitive_desc_query_md,                           \
      (const_dnnl_primitive_desc_t, dnnl_query_t, int))                                   \
    X(dnnl_status_t, dnnl_reorder_primitive_desc_create,                                  \
      (dnnl_primitive_desc_t *, const dnnl_memory_desc_t *, dnnl_engine_t,                \
       const dnnl_memory_desc_t *, dnnl_engine_t, const_dnnl_primitive_attr_t))           \
    X(dnnl_status_t, dnnl_primitive_create, (dnnl_primitive_t *, const_dnnl_primitive_desc_t)) \
    X(dnnl_status_t, dnnl_primitive_destroy, (dnnl_primitive_t))                          \
    X(dnnl_status_t, dnnl_primitive_execute,                                              \
      (const_dnnl_primitive_t, dnnl_stream_t, int, const dnnl_exec_arg_t *))              \
    X(dnnl_status_t, dnnl_memory_create,                                                  \
      (dnnl_memory_t *, const dnnl_memory_desc_t *, dnnl_engine_t, void *))               \
    X(dnnl_status_t, dnnl_memory_destroy, (dnnl_memory_t))                                \
    X(const dnnl_version_t *, dnnl_version, (void))                                       \
    X(dnnl_cpu_isa_t, dnnl_get_effective_cpu_isa, (void))                                 \
    X(dnnl_status_t, dnnl_set_max_cpu_isa, (dnnl_cpu_isa_t))

#define DNNL_PTR(ret, name, args) ret(*name) args;
static struct {
    int state;  /* 0 not tried, 1 loaded, -1 failed */
    char why[256];
    void (*omp_set)(int);
    DNNL_FNS(DNNL_PTR)
} dn;

static int dnnl_load(char *err, size_t errlen)
{
    if (dn.state == 0) {
        void *h = dlopen("libdnnl.so.2", RTLD_NOW | RTLD_LOCAL);
        dn.state = -1;
        if (!h) {
            snprintf(dn.why, sizeof dn.why, "oneDNN not loadable (libdnnl.so.2): %s; install "
                     "libdnnl-dev (scripts/install-deps.sh)", dlerror());
        } else {
            const char *missing = NULL;
#define DNNL_SYM(ret, name, args)                                                          \
    if (!(*(void **)&dn.name = dlsym(h, #name)) && !missing)                               \
        missing = #name;
            DNNL_FNS(DNNL_SYM)
            *(void **)&dn.omp_set = dlsym(h, "omp_set_num_threads");
            if (missing)
                snprintf(dn.why, sizeof dn.why, "libdnnl.so.2 has no %s (oneDNN 2.x needed)",
                         missing);
            else {
                const mct_cpu *c = mct_cpu_host();
                int cap = mct_base_onednn_isa_cap(c, mct_cpu_tier());
                if (cap)
                    dn.dnnl_set_max_cpu_isa((dnnl_cpu_isa_t)cap);
                dn.state = 1;
            }
        }
    }
    return dn.state == 1 ? 0 : mct_errf(err, errlen, MCT_ENOTFOUND, "%s", dn.why);
}

struct mct_base_lp {
    int i8, nt;
    int wmax;                     /* i8: weights in [-wmax, wmax] (127, or 63 without VNNI) */
    long M, N, K;
    int threads;
    float *A, *C, *scales;        /* the f32 activations (converted per call), output, scales */
    void *a_lp;                   /* A in the source type, written per call */
    float *bscale;                /* i8: per-channel scales of B */
    dnnl_engine_t eng;
    dnnl_stream_t strm;
    dnnl_primitive_desc_t pd;
    dnnl_primitive_t prim;
    dnnl_primitive_attr_t attr;
    dnnl_memory_t msrc, mwei, mdst, mscale;
    void *wei;                    /* the reordered weights (oneDNN's blocked layout) */
    char label[256];
};

/* bf16 of an f32, round to nearest even (NaN stays NaN) */
static uint16_t to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

static int8_t q8(float v, float inv, int qmax)
{
    float r = nearbyintf(v * inv);
    return (int8_t)(r > qmax ? qmax : r < -qmax ? -qmax : r);
}

/* oneDNN's ISA has integer dot products without an int16 intermediate (VNNI, AMX)? Without,
 * its int8 kernels (vpmaddubsw) saturate pairs of products, and its documentation asks for 7-bit
 * weights. */
static int isa_has_vnni(int isa)
{
    return isa == 0x67 || isa == 0xe7 || isa == 0x3e7 || isa == 0x407;
}

/* the per-call work: A into the source type (i8: a per-tensor scale, output scales updated) */
static void convert_a(mct_base_lp *l)
{
    long n = l->M * l->K;
    if (!l->i8) {
        uint16_t *d = l->a_lp;
        for (long i = 0; i < n; i++)
            d[i] = to_bf16(l->A[i]);
        return;
    }
    float mx = 0;
    for (long i = 0; i < n; i++)
        mx = fabsf(l->A[i]) > mx ? fabsf(l->A[i]) : mx;
    float sa = mx > 0 ? mx / 127.0f : 1.0f, inv = 1.0f / sa;
    int8_t *d = l->a_lp;
    for (long i = 0; i < n; i++)
        d[i] = q8(l->A[i], inv, 127);
    for (long j = 0; j < l->N; j++)
        l->scales[j] = sa * l->bscale[j];
}

#define DN(call)                                                                            \
    do {                                                                                    \
        dnnl_status_t st_ = (call);                                                         \
        if (st_ != dnnl_success) {                                                          \
            rc = mct_errf(err, errlen, st_ == dnnl_unimplemented ? MCT_ENOTFOUND : MCT_EIO,  \
                          "oneDNN %s matmul %ldx%ldx%ld: %s failed (status %d)%s", fmt, M, N, \
                          K, #call, (int)st_, st_ == dnnl_unimplemented ?                   \
                          ": not implemented for this CPU or ISA cap" : "");               \
            goto fail;                                                                      \
        }                                                                                   \
    } while (0)

int mct_base_lp_open(const char *fmt, int nt, long M, long N, long K, int threads,
                     const float *A, const float *B, mct_base_lp **out, char *err,
                     size_t errlen)
{
    *out = NULL;
    if (!fmt || (strcmp(fmt, "bf16") && strcmp(fmt, "i8")))
        return mct_errf(err, errlen, MCT_EINVAL, "low-precision baseline format '%s': use bf16 "
                        "or i8", fmt ? fmt : "(null)");
    if (M < 1 || N < 1 || K < 1 || threads < 1 || !A || !B)
        return mct_errf(err, errlen, MCT_EINVAL, "low-precision baseline: sizes M=%ld N=%ld "
                        "K=%ld and threads %d must be >= 1, with A and B given", M, N, K,
                        threads);
    int rc = dnnl_load(err, errlen);
    if (rc)
        return rc;
    mct_base_lp *l = calloc(1, sizeof *l);
    dnnl_memory_t mb = NULL;
    dnnl_primitive_desc_t rpd = NULL;
    dnnl_primitive_t rp = NULL;
    void *bsrc = NULL;
    if (!l)
        return mct_errf(err, errlen, MCT_ENOMEM, "out of memory");
    l->i8 = !strcmp(fmt, "i8");
    l->nt = nt, l->M = M, l->N = N, l->K = K, l->threads = threads;
    l->wmax = isa_has_vnni((int)dn.dnnl_get_effective_cpu_isa()) ? 127 : 63;
    size_t esz = l->i8 ? 1 : 2;
    l->A = malloc(sizeof(float) * (size_t)(M * K));
    l->C = malloc(sizeof(float) * (size_t)(M * N));
    l->a_lp = malloc(esz * (size_t)(M * K));
    bsrc = malloc(esz * (size_t)(N * K));
    l->scales = malloc(sizeof(float) * (size_t)N);
    l->bscale = malloc(sizeof(float) * (size_t)N);
    if (!l->A || !l->C || !l->a_lp || !bsrc || !l->scales || !l->bscale) {
        rc = mct_errf(err, errlen, MCT_ENOMEM, "out of memory for a %ldx%ldx%ld baseline", M,
                      N, K);
        goto fail;
    }
    memcpy(l->A, A, sizeof(float) * (size_t)(M * K));
    /* B into the weight type, in the caller's layout ([N,K] nt, [K,N] nn) */
    for (long n = 0; n < N; n++) {
        float mx = 0;
        for (long k = 0; k < K; k++) {
            float v = nt ? B[n * K + k] : B[k * N + n];
            mx = fabsf(v) > mx ? fabsf(v) : mx;
        }
        l->bscale[n] = mx > 0 ? mx / (float)l->wmax : 1.0f;
    }
    for (long n = 0; n < N; n++)
        for (long k = 0; k < K; k++) {
            long at = nt ? n * K + k : k * N + n;
            if (l->i8)
                ((int8_t *)bsrc)[at] = q8(B[at], 1.0f / l->bscale[n], l->wmax);
            else
                ((uint16_t *)bsrc)[at] = to_bf16(B[at]);
        }
    if (dn.omp_set)
        dn.omp_set(threads);
    dnnl_data_type_t dt = l->i8 ? dnnl_s8 : dnnl_bf16;
    dnnl_memory_desc_t src_md, wei_md, wei_plain, dst_md;
    dnnl_matmul_desc_t md;
    dnnl_dims_t ds = {M, K}, dw = {K, N}, dd = {M, N};
    DN(dn.dnnl_engine_create(&l->eng, dnnl_cpu, 0));
    DN(dn.dnnl_stream_create(&l->strm, l->eng, dnnl_stream_default_flags));
    DN(dn.dnnl_memory_desc_init_by_tag(&src_md, 2, ds, dt, dnnl_ab));
    DN(dn.dnnl_memory_desc_init_by_tag(&wei_md, 2, dw, dt, dnnl_format_tag_any));
    DN(dn.dnnl_memory_desc_init_by_tag(&wei_plain, 2, dw, dt, nt ? dnnl_ba : dnnl_ab));
    DN(dn.dnnl_memory_desc_init_by_tag(&dst_md, 2, dd, dnnl_f32, dnnl_ab));
    DN(dn.dnnl_matmul_desc_init(&md, &src_md, &wei_md, NULL, &dst_md));
    DN(dn.dnnl_primitive_attr_create(&l->attr));
    if (l->i8) { /* per column of C: one scale each, given per call (the A scale changes) */
        const float rt = DNNL_RUNTIME_F32_VAL;
        DN(dn.dnnl_primitive_attr_set_output_scales(l->attr, 1, 1 << 1, &rt));
        dnnl_memory_desc_t sc_md;
        dnnl_dims_t dsc = {N};
        DN(dn.dnnl_memory_desc_init_by_tag(&sc_md, 1, dsc, dnnl_f32, dnnl_a));
        DN(dn.dnnl_memory_create(&l->mscale, &sc_md, l->eng, l->scales));
    }
    DN(dn.dnnl_primitive_desc_create(&l->pd, &md, l->attr, l->eng, NULL));
    DN(dn.dnnl_primitive_create(&l->prim, l->pd));
    const dnnl_memory_desc_t *wq = dn.dnnl_primitive_desc_query_md(l->pd,
                                                                    dnnl_query_weights_md, 0);
    DN(dn.dnnl_memory_create(&l->msrc, &src_md, l->eng, l->a_lp));
    DN(dn.dnnl_memory_create(&l->mdst, &dst_md, l->eng, l->C));
    DN(dn.dnnl_memory_create(&l->mwei, wq, l->eng, DNNL_MEMORY_ALLOCATE));
    DN(dn.dnnl_memory_create(&mb, &wei_plain, l->eng, bsrc));
    DN(dn.dnnl_reorder_primitive_desc_create(&rpd, &wei_plain, l->eng, wq, l->eng, NULL));
    DN(dn.dnnl_primitive_create(&rp, rpd));
    dnnl_exec_arg_t ra[2] = {{DNNL_ARG_FROM, mb}, {DNNL_ARG_TO, l->mwei}};
    DN(dn.dnnl_primitive_execute(rp, l->strm, 2, ra));
    DN(dn.dnnl_stream_wait(l->strm));
    dn.dnnl_primitive_destroy(rp);
    dn.dnnl_primitive_desc_destroy(rpd);
    dn.dnnl_memory_destroy(mb);
    free(bsrc);
    const dnnl_version_t *v = dn.dnnl_version();
    snprintf(l->label, sizeof l->label, "oneDNN %d.%d.%d matmul %s (src %s, weights %s%s, dst "
             "f32%s), ISA %s", v->major, v->minor, v->patch, fmt, fmt, fmt,
             l->i8 && l->wmax < 127 ? " 7-bit (no VNNI: oneDNN's int8 rule)" : "",
             l->i8 ? ", A quantized per call" : ", A converted per call",
             mct_base_onednn_isa_name((int)dn.dnnl_get_effective_cpu_isa()));
    *out = l;
    return 0;
fail:
    if (rp)
        dn.dnnl_primitive_destroy(rp);
    if (rpd)
        dn.dnnl_primitive_desc_destroy(rpd);
    if (mb)
        dn.dnnl_memory_destroy(mb);
    free(bsrc);
    mct_base_lp_close(l);
    return rc;
}

int mct_base_lp_run(mct_base_lp *l)
{
    if (!l)
        return MCT_EINVAL;
    if (dn.omp_set)
        dn.omp_set(l->threads);
    convert_a(l);
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, l->msrc}, {DNNL_ARG_WEIGHTS, l->mwei},
                               {DNNL_ARG_DST, l->mdst}, {DNNL_ARG_ATTR_OUTPUT_SCALES, l->mscale}};
    if (dn.dnnl_primitive_execute(l->prim, l->strm, l->i8 ? 4 : 3, args) != dnnl_success ||
        dn.dnnl_stream_wait(l->strm) != dnnl_success)
        return MCT_EIO;
    return 0;
}

const float *mct_base_lp_out(const mct_base_lp *l)
{
    return l->C;
}

int mct_base_lp_wmax(const mct_base_lp *l)
{
    return l->i8 ? l->wmax : 0;
}

const char *mct_base_lp_label(const mct_base_lp *l)
{
    return l->label;
}

void mct_base_lp_close(mct_base_lp *l)
{
    if (!l)
        return;
    if (l->prim)
        dn.dnnl_primitive_destroy(l->prim);
    if (l->pd)
        dn.dnnl_primitive_desc_destroy(l->pd);
    if (l->attr)
        dn.dnnl_primitive_attr_destroy(l->attr);
    if (l->msrc)
        dn.dnnl_memory_destroy(l->msrc);
    if (l->mwei)
        dn.dnnl_memory_destroy(l->mwei);
    if (l->mdst)
        dn.dnnl_memory_destroy(l->mdst);
    if (l->mscale)
        dn.dnnl_memory_destroy(l->mscale);
    if (l->strm)
        dn.dnnl_stream_destroy(l->strm);
    if (l->eng)
        dn.dnnl_engine_destroy(l->eng);
    free(l->A);
    free(l->C);
    free(l->a_lp);
    free(l->scales);
    free(l->bscale);
    free(l);
}

#endif
