/* Baseline libraries for comparisons (see baseline.h). */
#define _GNU_SOURCE 1
#include "tuner/baseline.h"

#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef void (*cblas_gemm_fn)(int, int, int, int, int, int, float, const float *, int,
                              const float *, int, float, float *, int);
typedef void (*cblas_gemv_fn)(int, int, int, int, float, const float *, int, const float *, int,
                              float, float *, int);
typedef int (*dnnl_gemm_fn)(char, char, int64_t, int64_t, int64_t, float, const float *, int64_t,
                            const float *, int64_t, float, float *, int64_t);
typedef struct {
    int major, minor, patch;
    const char *hash;
    unsigned cpu_runtime, gpu_runtime;
} dnnl_version_rec;   /* dnnl_version_t of oneDNN 2.x */

struct mct_base_lib {
    mct_base_kind kind;
    void *h;
    char label[240], shortname[48], core[32];
    cblas_gemm_fn gemm;
    cblas_gemv_fn gemv;
    dnnl_gemm_fn dgemm;
    void (*set_threads)(int);
    int (*get_threads)(void);
};

const char *mct_base_kind_name(mct_base_kind k)
{
    static const char *const n[] = {"openblas", "openblas-forced", "onednn", "blis"};
    return (unsigned)k < MCT_BASE_COUNT ? n[k] : "?";
}

static int has(const mct_cpu *c, const char *name)
{
    int i = mct_cpu_feature_find(name);
    return i >= 0 && mct_cpu_has(c, i);
}

int mct_base_openblas_cores(const mct_cpu *c, mct_tier tier, const char **out, int max)
{
    mct_tier t = mct_cpu_tier_of(c);
    if (tier < t)
        t = tier;
    const char *list[4];
    int n = 0;
    int amd = !strcmp(c->vendor, "AuthenticAMD") || !strcmp(c->vendor, "HygonGenuine");
    int os_avx = has(c, "os-avx") && has(c, "avx");
    if (amd && t >= MCT_TIER_AVX2) {
        /* Zen cores: AVX2 kernels; Zen 4's 512-bit FMA is 2x256, where they beat Cooperlake */
        list[n++] = "Zen";
    } else if (t >= MCT_TIER_AVX512) {
        if (t >= MCT_TIER_AMX)
            list[n++] = "SapphireRapids";
        if (has(c, "avx512bf16") && tier > MCT_TIER_AVX512) /* not when capped at avx512 */
            list[n++] = "Cooperlake";
        list[n++] = "SkylakeX";
    } else if (t >= MCT_TIER_AVX2) {
        list[n++] = "Haswell";
    } else if (t >= MCT_TIER_SSE42 && os_avx && tier > MCT_TIER_SSE42) {
        list[n++] = "Sandybridge";
    }
    int k = n < max ? n : max;
    for (int i = 0; i < k; i++)
        out[i] = list[i];
    return k;
}

/* "OpenBLAS 0.3.21 DYNAMIC_ARCH ..." -> "0.3.21" */
static void openblas_version(void *h, char *out, size_t len)
{
    char *(*cfg)(void) = (char *(*)(void))dlsym(h, "openblas_get_config");
    const char *s = cfg ? cfg() : NULL;
    out[0] = 0;
    if (s && !strncmp(s, "OpenBLAS ", 9)) {
        size_t n = strcspn(s + 9, " ");
        snprintf(out, len, "%.*s", (int)(n < 24 ? n : 24), s + 9);
    }
}

static int bind_cblas(mct_base_lib *l, const char *lib, char *err, size_t errlen)
{
    l->gemm = (cblas_gemm_fn)dlsym(l->h, "cblas_sgemm");
    l->gemv = (cblas_gemv_fn)dlsym(l->h, "cblas_sgemv");
    if (!l->gemm || !l->gemv)
        return mct_errf(err, errlen, MCT_ENOTFOUND, "%s has no cblas_sgemm/cblas_sgemv", lib);
    return 0;
}

/* Takes OpenBLAS handle h as l's library, running core `core`: its cblas calls, its thread
 * calls, and its labels; own is the core it picks itself when `core` was forced, else NULL. */
static int use_openblas(mct_base_lib *l, void *h, const char *lib, const char *ver,
                        const char *core, const char *own, char *err, size_t errlen)
{
    l->h = h;
    int rc = bind_cblas(l, lib, err, errlen);
    if (rc)
        return rc;
    l->set_threads = (void (*)(int))dlsym(h, "openblas_set_num_threads");
    l->get_threads = (int (*)(void))dlsym(h, "openblas_get_num_threads");
    if (own)
        snprintf(l->label, sizeof l->label, "OpenBLAS %s core %s (forced with "
                 "OPENBLAS_CORETYPE; its own choice here is %s)", ver, core, own);
    else
        snprintf(l->label, sizeof l->label, "OpenBLAS %s core %s (its own choice)", ver, core);
    snprintf(l->shortname, sizeof l->shortname, "OpenBLAS %s%s", core, own ? "*" : "");
    snprintf(l->core, sizeof l->core, "%s", core);
    return 0;
}

/* Appends "CORE (why)" to the list of forced cores that did not work. */
static void tried_add(char *tried, size_t len, const char *core, const char *why)
{
    size_t tl = strlen(tried);
    snprintf(tried + tl, len - tl, "%s%s (%s)", tl ? ", " : "", core, why);
}

static int open_openblas(mct_base_lib *l, const mct_cpu *cpu, mct_tier tier, int forced,
                         char *err, size_t errlen)
{
    static const char lib[] = "libopenblas.so.0";
    char ver[32];
    void *own = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    if (!own)
        return mct_errf(err, errlen, MCT_ENOTFOUND, "OpenBLAS not loadable (%s): %s; install "
                        "libopenblas-dev (scripts/install-deps.sh)", lib, dlerror());
    char *(*cn)(void) = (char *(*)(void))dlsym(own, "openblas_get_corename");
    const char *own_core = cn ? cn() : "?";
    openblas_version(own, ver, sizeof ver);
    if (!forced)
        return use_openblas(l, own, lib, ver, own_core, NULL, err, errlen);
    char own_copy[64];
    snprintf(own_copy, sizeof own_copy, "%s", own_core);
    dlclose(own);
    const char *cores[4];
    int n = mct_base_openblas_cores(cpu, tier, cores, 4);
    if (n == 0)
        return mct_errf(err, errlen, MCT_ENOTAPPLIC, "no OpenBLAS core to force for tier %s "
                        "(its own choice, %s, is used)", mct_tier_name(tier), own_copy);
    char tried[200] = "";
    for (int i = 0; i < n; i++) {
        if (!strcasecmp(cores[i], own_copy))
            return mct_errf(err, errlen, MCT_ENOTAPPLIC, "OpenBLAS picks core %s itself, the "
                            "best it has for this CPU; no forced second", own_copy);
        /* a separate namespace: a second, independent OpenBLAS that reads OPENBLAS_CORETYPE
         * at its own initialization */
        char *saved = getenv("OPENBLAS_CORETYPE") ? strdup(getenv("OPENBLAS_CORETYPE")) : NULL;
        setenv("OPENBLAS_CORETYPE", cores[i], 1);
        void *h = dlmopen(LM_ID_NEWLM, lib, RTLD_NOW | RTLD_LOCAL);
        if (saved)
            setenv("OPENBLAS_CORETYPE", saved, 1);
        else
            unsetenv("OPENBLAS_CORETYPE");
        free(saved);
        if (!h) {
            tried_add(tried, sizeof tried, cores[i], "dlmopen failed");
            continue;
        }
        char *(*fcn)(void) = (char *(*)(void))dlsym(h, "openblas_get_corename");
        const char *got = fcn ? fcn() : "?";
        if (strcasecmp(got, cores[i])) {
            char why[64];
            snprintf(why, sizeof why, "runs %s", got);
            tried_add(tried, sizeof tried, cores[i], why);
            dlclose(h);
            continue;
        }
        return use_openblas(l, h, lib, ver, got, own_copy, err, errlen);
    }
    return mct_errf(err, errlen, MCT_ENOTAPPLIC, "no forced OpenBLAS core could be verified: "
                    "tried %s", tried);
}

/* dnnl_cpu_isa_t of oneDNN 2.6 (dnnl_types.h) */
const char *mct_base_onednn_isa_name(int isa)
{
    switch (isa) {
    case 0x0: return "all";
    case 0x1: return "sse41";
    case 0x3: return "avx";
    case 0x7: return "avx2";
    case 0xf: return "avx512_mic";
    case 0x1f: return "avx512_mic_4ops";
    case 0x27: return "avx512_core";
    case 0x67: return "avx512_core_vnni";
    case 0xe7: return "avx512_core_bf16";
    case 0x3e7: return "avx512_core_amx";
    case 0x407: return "avx2_vnni";
    }
    return "isa?";
}

/* the oneDNN ISA cap for an mctune tier below the host's (MCTUNE_TIER), 0 for none */
int mct_base_onednn_isa_cap(const mct_cpu *cpu, mct_tier tier)
{
    if (tier >= mct_cpu_tier_of(cpu))
        return 0;
    switch (tier) {
    case MCT_TIER_GENERIC:
    case MCT_TIER_SSE42: return 0x1;
    case MCT_TIER_AVX2: return 0x7;
    case MCT_TIER_AVX512: return 0x27;
    case MCT_TIER_AVX512_BF16VNNI: return 0xe7;
    default: return 0;
    }
}

static int open_onednn(mct_base_lib *l, const mct_cpu *cpu, mct_tier tier, char *err,
                       size_t errlen)
{
    static const char lib[] = "libdnnl.so.2";
    l->h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    if (!l->h)
        return mct_errf(err, errlen, MCT_ENOTFOUND, "oneDNN not loadable (%s): %s; install "
                        "libdnnl-dev (scripts/install-deps.sh)", lib, dlerror());
    l->dgemm = (dnnl_gemm_fn)dlsym(l->h, "dnnl_sgemm");
    const dnnl_version_rec *(*ver)(void) =
        (const dnnl_version_rec *(*)(void))dlsym(l->h, "dnnl_version");
    int (*isa)(void) = (int (*)(void))dlsym(l->h, "dnnl_get_effective_cpu_isa");
    int (*setisa)(int) = (int (*)(int))dlsym(l->h, "dnnl_set_max_cpu_isa");
    if (!l->dgemm || !ver)
        return mct_errf(err, errlen, MCT_ENOTFOUND, "%s has no dnnl_sgemm/dnnl_version", lib);
    int cap = mct_base_onednn_isa_cap(cpu, tier);
    if (cap && setisa)
        setisa(cap);
    /* OpenMP runtime (Debian's build): its omp_* through oneDNN's own dependencies */
    l->set_threads = (void (*)(int))dlsym(l->h, "omp_set_num_threads");
    l->get_threads = (int (*)(void))dlsym(l->h, "omp_get_max_threads");
    const dnnl_version_rec *v = ver();
    const char *in = isa ? mct_base_onednn_isa_name(isa()) : "isa unknown";
    snprintf(l->label, sizeof l->label, "oneDNN %d.%d.%d dnnl_sgemm, ISA %s%s", v->major,
             v->minor, v->patch, in, cap ? " (capped by MCTUNE_TIER)" : "");
    snprintf(l->shortname, sizeof l->shortname, "oneDNN");
    return 0;
}

static int open_blis(mct_base_lib *l, char *err, size_t errlen)
{
    static const char lib[] = "libblis.so.4";
    /* its own namespace: BLIS exports cblas_sgemm and sgemm_ as OpenBLAS does, and its cblas
     * layer would otherwise bind to whichever came first */
    l->h = dlmopen(LM_ID_NEWLM, lib, RTLD_NOW | RTLD_LOCAL);
    if (!l->h)
        l->h = dlopen(lib, RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
    if (!l->h)
        return mct_errf(err, errlen, MCT_ENOTFOUND, "BLIS not loadable (%s): %s; install "
                        "libblis-dev (scripts/install-deps.sh)", lib, dlerror());
    int rc = bind_cblas(l, lib, err, errlen);
    if (rc)
        return rc;
    l->set_threads = (void (*)(int))dlsym(l->h, "bli_thread_set_num_threads");
    l->get_threads = (int (*)(void))dlsym(l->h, "bli_thread_get_num_threads");
    const char *(*vs)(void) = (const char *(*)(void))dlsym(l->h, "bli_info_get_version_str");
    int (*aq)(void) = (int (*)(void))dlsym(l->h, "bli_arch_query_id");
    const char *(*as)(int) = (const char *(*)(int))dlsym(l->h, "bli_arch_string");
    snprintf(l->label, sizeof l->label, "BLIS %s, %s kernels", vs ? vs() : "?",
             aq && as ? as(aq()) : "?");
    snprintf(l->shortname, sizeof l->shortname, "BLIS");
    return 0;
}

int mct_base_open(mct_base_kind kind, const mct_cpu *cpu, mct_tier tier, mct_base_lib **out,
                  char *err, size_t errlen)
{
    *out = NULL;
    if ((unsigned)kind >= MCT_BASE_COUNT || !cpu)
        return mct_errf(err, errlen, MCT_EINVAL, "baseline kind %d is not one of openblas, "
                        "openblas-forced, onednn, blis", (int)kind);
    mct_base_lib *l = calloc(1, sizeof *l);
    if (!l)
        return mct_errf(err, errlen, MCT_ENOMEM, "out of memory");
    l->kind = kind;
    int rc;
    switch (kind) {
    case MCT_BASE_OPENBLAS:
    case MCT_BASE_OPENBLAS_FORCED:
        rc = open_openblas(l, cpu, tier, kind == MCT_BASE_OPENBLAS_FORCED, err, errlen);
        break;
    case MCT_BASE_ONEDNN:
        rc = open_onednn(l, cpu, tier, err, errlen);
        break;
    default:
        rc = open_blis(l, err, errlen);
        break;
    }
    if (rc) {
        mct_base_close(l);
        return rc;
    }
    *out = l;
    return 0;
}

void mct_base_close(mct_base_lib *l)
{
    /* never dlclose: OpenBLAS and oneDNN keep thread pools that outlive an unload badly */
    free(l);
}

const char *mct_base_label(const mct_base_lib *l)
{
    return l->label;
}

const char *mct_base_short(const mct_base_lib *l)
{
    return l->shortname;
}

mct_base_kind mct_base_kind_of(const mct_base_lib *l)
{
    return l->kind;
}

const char *mct_base_core(const mct_base_lib *l)
{
    return l->core;
}

int mct_base_set_threads(mct_base_lib *l, int n)
{
    if (l->set_threads)
        l->set_threads(n);
    return l->get_threads ? l->get_threads() : 0;
}

void mct_base_sgemm(const mct_base_lib *l, int nt, long M, long N, long K, const float *A,
                    long lda, const float *B, long ldb, float beta, float *C, long ldc)
{
    if (l->dgemm)
        l->dgemm('N', nt ? 'T' : 'N', M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
    else /* 101 row-major, 111 no transpose, 112 transpose */
        l->gemm(101, 111, nt ? 112 : 111, (int)M, (int)N, (int)K, 1.0f, A, (int)lda, B,
                (int)ldb, beta, C, (int)ldc);
}

void mct_base_sgemv(const mct_base_lib *l, int nt, long N, long K, const float *B, long ldb,
                    const float *a, float beta, float *c)
{
    if (l->dgemm)
        l->dgemm('N', nt ? 'T' : 'N', 1, N, K, 1.0f, a, K, B, ldb, beta, c, N);
    else if (nt) /* c[N] = B[N,K] a */
        l->gemv(101, 111, (int)N, (int)K, 1.0f, B, (int)ldb, a, 1, beta, c, 1);
    else         /* c[N] = B[K,N]^T a */
        l->gemv(101, 112, (int)K, (int)N, 1.0f, B, (int)ldb, a, 1, beta, c, 1);
}
