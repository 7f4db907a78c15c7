/* The Llama-3-8B decoder block and its three backends (see llama_block.h). */
#include "models/llama_block.h"
#include "runtime/quant.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#include <dlfcn.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* ---- backends */

/* openblas: cblas_sgemm per projection (cblas_sgemv for one token, the call serving engines
 * make at M=1: OpenBLAS's sgemm runs it several times slower), one cblas_sgemm per head for bmm */
static int ob_linear(long M, long N, long K, const float *A, const float *W, float *C)
{
    if (M == 1) {
        cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)N, (int)K, 1.0f, W, (int)K, A, 1, 0.0f, C,
                    1);
        return 0;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, (int)N, (int)K, 1.0f, A, (int)K,
                W, (int)K, 0.0f, C, (int)N);
    return 0;
}

static int ob_bmm(int nt, long batch, long group, long M, long N, long K, const float *A, long lda,
                  long sA, const float *B, long ldb, long sB, float *C, long ldc, long sC)
{
    for (long h = 0; h < batch; h++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, nt ? CblasTrans : CblasNoTrans, (int)M, (int)N,
                    (int)K, 1.0f, A + h * sA, (int)lda, B + (h / group) * sB, (int)ldb, 0.0f,
                    C + h * sC, (int)ldc);
    return 0;
}

static void ob_threads(int n)
{
    openblas_set_num_threads(n);
}

static const char *ob_describe(void)
{
    static char s[256];
    snprintf(s, sizeof s, "OpenBLAS core %s (%s)", openblas_get_corename(),
             openblas_get_config());
    return s;
}

/* onednn: dnnl_sgemm (row-major, char transa/transb) per projection and per head, from
 * libdnnl.so.2 loaded at first use, so the program builds and runs without oneDNN (the backend
 * then says it is unavailable and its calls fail). At M=1 oneDNN routes dnnl_sgemm to its gemv.
 * Threads through its OpenMP runtime (Debian's build). */
typedef int (*dn_gemm_fn)(char, char, int64_t, int64_t, int64_t, float, const float *, int64_t,
                          const float *, int64_t, float, float *, int64_t);
static dn_gemm_fn dn_gemm;
static char dn_text[200];

static int dn_load(void)
{
    if (dn_gemm || dn_text[0])
        return dn_gemm ? 0 : -1;
    void *h = dlopen("libdnnl.so.2", RTLD_NOW | RTLD_LOCAL);
    dn_gemm = h ? (dn_gemm_fn)dlsym(h, "dnnl_sgemm") : NULL;
    if (!dn_gemm) {
        snprintf(dn_text, sizeof dn_text, "unavailable: libdnnl.so.2 %s (install libdnnl-dev)",
                 h ? "has no dnnl_sgemm" : "not found");
        return -1;
    }
    const int *(*ver)(void) = (const int *(*)(void))dlsym(h, "dnnl_version");
    int (*isa)(void) = (int (*)(void))dlsym(h, "dnnl_get_effective_cpu_isa");
    const int *v = ver ? ver() : NULL;
    int i = isa ? isa() : -1;   /* dnnl_cpu_isa_t values of oneDNN 2.6 */
    const char *in = i == 0x1 ? "sse41" : i == 0x3 ? "avx" : i == 0x7 ? "avx2"
                   : i == 0x27 ? "avx512_core" : i == 0x67 ? "avx512_core_vnni"
                   : i == 0xe7 ? "avx512_core_bf16" : i == 0x3e7 ? "avx512_core_amx"
                   : i == 0x407 ? "avx2_vnni" : "?";
    snprintf(dn_text, sizeof dn_text, "oneDNN %d.%d.%d dnnl_sgemm, ISA %s", v ? v[0] : 0,
             v ? v[1] : 0, v ? v[2] : 0, in);
    return 0;
}

static int dn_linear(long M, long N, long K, const float *A, const float *W, float *C)
{
    if (dn_load())
        return -1;
    return dn_gemm('N', 'T', M, N, K, 1.0f, A, K, W, K, 0.0f, C, N) ? -1 : 0;
}

static int dn_bmm(int nt, long batch, long group, long M, long N, long K, const float *A, long lda,
                  long sA, const float *B, long ldb, long sB, float *C, long ldc, long sC)
{
    if (dn_load())
        return -1;
    for (long h = 0; h < batch; h++)
        if (dn_gemm('N', nt ? 'T' : 'N', M, N, K, 1.0f, A + h * sA, lda, B + (h / group) * sB,
                    ldb, 0.0f, C + h * sC, ldc))
            return -1;
    return 0;
}

static void dn_threads(int n)
{
#ifdef _OPENMP
    omp_set_num_threads(n);
#endif
}

static const char *dn_describe(void)
{
    dn_load();
    return dn_text;
}

/* generic: the untuned loop nest a compiler makes of the textbook code, blocked over 4 rows of A
 * and 64 rows of W so that W rows are reused from cache; dot products vectorized by omp simd */
static int gn_threads_n = 1;

static int gn_linear(long M, long N, long K, const float *A, const float *W, float *C)
{
#pragma omp parallel for schedule(static) num_threads(gn_threads_n) if (gn_threads_n > 1)
    for (long jb = 0; jb < N; jb += 64)
        for (long ib = 0; ib < M; ib += 4)
            for (long j = jb; j < jb + 64 && j < N; j++)
                for (long i = ib; i < ib + 4 && i < M; i++) {
                    const float *a = A + i * K, *w = W + j * K;
                    float s = 0;
#pragma omp simd reduction(+:s)
                    for (long k = 0; k < K; k++)
                        s += a[k] * w[k];
                    C[i * N + j] = s;
                }
    return 0;
}

static int gn_bmm(int nt, long batch, long group, long M, long N, long K, const float *A, long lda,
                  long sA, const float *B, long ldb, long sB, float *C, long ldc, long sC)
{
#pragma omp parallel for schedule(static) num_threads(gn_threads_n) if (gn_threads_n > 1)
    for (long h = 0; h < batch; h++) {
        const float *a = A + h * sA, *b = B + (h / group) * sB;
        float *c = C + h * sC;
        for (long i = 0; i < M; i++) {
            if (nt) {
                for (long j = 0; j < N; j++) {
                    float s = 0;
#pragma omp simd reduction(+:s)
                    for (long k = 0; k < K; k++)
                        s += a[i * lda + k] * b[j * ldb + k];
                    c[i * ldc + j] = s;
                }
            } else {
                for (long j = 0; j < N; j++)
                    c[i * ldc + j] = 0;
                for (long k = 0; k < K; k++) {
                    float av = a[i * lda + k];
#pragma omp simd
                    for (long j = 0; j < N; j++)
                        c[i * ldc + j] += av * b[k * ldb + j];
                }
            }
        }
    }
    return 0;
}

static void gn_threads(int n)
{
    gn_threads_n = n;
}

static const char *gn_describe(void)
{
    return "plain blocked C loop nest (untuned), omp simd dot products";
}

#ifdef MCT_BLOCK_GEN
/* gen: the library `mctune gen` wrote, NAME_sgemm and NAME_bmm */
#include MCT_BLOCK_GEN_H
#define GEN_CAT2(a, b) a##b
#define GEN_CAT(a, b) GEN_CAT2(a, b)
#define GEN_FN(x) GEN_CAT(MCT_BLOCK_GEN, x)

static int ge_linear(long M, long N, long K, const float *A, const float *W, float *C)
{
    /* 101 row-major, 111 no transpose, 112 transpose (the CBLAS values) */
    return GEN_FN(_sgemm)(101, 111, 112, (int)M, (int)N, (int)K, 1.0f, A, (int)K, W, (int)K,
                          0.0f, C, (int)N);
}

static int ge_bmm(int nt, long batch, long group, long M, long N, long K, const float *A,
                  long lda, long sA, const float *B, long ldb, long sB, float *C, long ldc,
                  long sC)
{
    return GEN_FN(_bmm)(nt ? 1 : 0, batch, group, M, N, K, A, lda, sA, B, ldb, sB, C, ldc, sC,
                        0);
}

static void *ge_pack(long N, long K, const float *W)
{
    GEN_FN(_packed) *P = NULL;
    /* 1: B stored [N,K] (nt) */
    return GEN_FN(_prepack_b)(1, N, K, W, K, &P) ? NULL : (void *)P;
}

/* the plain layout as the block quantized it: the library packs it for its kernels of the format
 * (or keeps it for the path that dequantizes blocks of channels where none is tuned) */
static void *ge_pack_q(const char *fmt, long N, long K, const void *plain, size_t bytes)
{
    GEN_FN(_packed) *P = NULL;
    return GEN_FN(_prepack_b_quantized)(fmt, N, K, plain, bytes, &P) ? NULL : (void *)P;
}

static int ge_linear_packed(const void *P, long M, long N, long K, const float *A, float *C)
{
    (void)N;
    return GEN_FN(_matmul_packed)((const GEN_FN(_packed) *)P, M, A, K, C, N, NULL, 0, 0);
}

static void ge_unpack(void *P)
{
    GEN_FN(_packed_free)((GEN_FN(_packed) *)P);
}

static void ge_threads(int n)
{
#ifdef _OPENMP
    omp_set_num_threads(n);
#endif
}

#define GEN_STR2(x) #x
#define GEN_STR(x) GEN_STR2(x)
static const char *ge_describe(void)
{
    static char s[320];
    snprintf(s, sizeof s, "generated library %s, table %s", GEN_STR(MCT_BLOCK_GEN),
             GEN_FN(_cpu)());
    return s;
}
#endif

static const mct_blk_backend backends[] = {
    {"openblas", ob_linear, ob_bmm, NULL, NULL, NULL, NULL, ob_threads, ob_describe},
#ifdef MCT_BLOCK_GEN
    {"gen", ge_linear, ge_bmm, ge_pack, ge_pack_q, ge_linear_packed, ge_unpack, ge_threads,
     ge_describe},
    {"gen-sgemm", ge_linear, ge_bmm, NULL, NULL, NULL, NULL, ge_threads, ge_describe},
#endif
    {"generic", gn_linear, gn_bmm, NULL, NULL, NULL, NULL, gn_threads, gn_describe},
    {"onednn", dn_linear, dn_bmm, NULL, NULL, NULL, NULL, dn_threads, dn_describe},
};

const mct_blk_backend *mct_blk_backends(int *n)
{
    *n = (int)(sizeof backends / sizeof backends[0]);
    return backends;
}

const mct_blk_backend *mct_blk_backend_find(const char *name)
{
    for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++)
        if (!strcmp(backends[i].name, name))
            return &backends[i];
    return NULL;
}

/* ---- the block */

mct_blk_cfg mct_blk_cfg_llama3_8b(void)
{
    mct_blk_cfg c = {4096, 32, 8, 128, 14336, 1e-5f, 500000.0f};
    return c;
}

mct_blk_cfg mct_blk_cfg_small(void)
{
    mct_blk_cfg c = {256, 8, 2, 32, 896, 1e-5f, 500000.0f};
    return c;
}

/* the projections, in the order of the weight arrays */
enum { WQ, WK, WV, WO, WG, WU, WD, NW };
_Static_assert((int)NW == (int)MCT_BLK_NWEIGHTS, "the header counts the projections' weights");

struct mct_blk {
    mct_blk_cfg c;
    long max_m, seq;
    char wname[24];         /* weight format, runtime/quant.h's name */
    int wfmt, wgroup;
    /* f32 weights [N,K] (dequantized when wfmt is not f32) and their plain layout (wfmt not
     * f32) with its size */
    float *w[NW];
    void *wplain[NW];
    size_t wbytes[NW];
    float *n1, *n2;
    float *kc, *vc;         /* [seq, kv_heads*head_dim] */
    float *t, *q, *kn, *vn, *att, *ao, *h, *g, *u, *sc;
    float *rope_cos, *rope_sin; /* [seq, head_dim/2] */
    /* weights packed by a backend's pack: q k v o gate up down */
    const mct_blk_backend *pk_be[4];
    void *pk[4][NW];
    mct_blk_hook hook;      /* mct_blk_set_hook */
    void *hook_ctx;
};

static const char *const wnames[NW] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                       "up_proj", "down_proj"};

static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s += 0x9e3779b97f4a7c15ull;   /* splitmix64 */
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

void mct_blk_fill(float *x, long n, uint64_t seed)
{
    uint64_t s = seed;
    for (long i = 0; i < n; i++)
        x[i] = (float)((double)(rng_next(&s) >> 40) / (double)(1ull << 24) * 2.0 - 1.0);
}

static void fill_scaled(float *x, long n, uint64_t seed, float scale)
{
    mct_blk_fill(x, n, seed);
    for (long i = 0; i < n; i++)
        x[i] *= scale;
}

void mct_blk_destroy(mct_blk *b)
{
    if (!b)
        return;
    float *all[] = {b->n1, b->n2, b->kc, b->vc, b->t, b->q, b->kn, b->vn, b->att, b->ao, b->h,
                    b->g, b->u, b->sc, b->rope_cos, b->rope_sin};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        free(all[i]);
    for (int i = 0; i < NW; i++) {
        free(b->w[i]);
        free(b->wplain[i]);
    }
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < NW && b->pk_be[i]; j++)
            if (b->pk[i][j])
                b->pk_be[i]->unpack(b->pk[i][j]);
    free(b);
}

/* Weight wi as [N, K] from its f32 draw: kept as is (f32), or quantized into the plain layout
 * by the runtime's rules and dequantized in place, so every backend sees the weights the
 * quantized kernels compute with. */
static int quantize_weight(mct_blk *b, int wi, long N, long K, char *err, size_t errlen)
{
    if (b->wfmt == MCT_RT_WF_F32)
        return 0;
    b->wbytes[wi] = mct_rt_q_plain_bytes(b->wfmt, b->wgroup, N, K);
    if (!(b->wplain[wi] = malloc(b->wbytes[wi]))) {
        snprintf(err, errlen, "out of memory for the %s weights (%zu bytes): use --small",
                 b->wname, b->wbytes[wi]);
        return -1;
    }
    char e[256];
    if (mct_rt_q_quantize(b->wfmt, b->wgroup, 1, N, K, b->w[wi], K, b->wplain[wi], e, sizeof e) ||
        mct_rt_q_dequantize(b->wfmt, b->wgroup, N, K, b->wplain[wi], b->w[wi])) {
        snprintf(err, errlen, "quantizing a %ldx%ld weight to %s: %s", N, K, b->wname, e);
        return -1;
    }
    return 0;
}

int mct_blk_create(const mct_blk_cfg *cfg, const char *wfmt, long max_m, long seq, uint64_t seed,
                   mct_blk **out, char *err, size_t errlen)
{
    mct_blk *b = NULL;
    const mct_blk_cfg *c = cfg;
    int fmt = MCT_RT_WF_F32, group = 0;
    char e[256];
    *out = NULL;
    if (wfmt && mct_rt_wfmt_parse(wfmt, &fmt, &group, e, sizeof e)) {
        snprintf(err, errlen, "%s", e);
        return -1;
    }
    if (c->hidden < 1 || c->heads < 1 || c->kv_heads < 1 || c->heads % c->kv_heads ||
        c->head_dim < 2 || c->head_dim % 2 || c->inter < 1 || max_m < 1 || seq < max_m) {
        snprintf(err, errlen, "bad block sizes: hidden %d, heads %d, kv heads %d (must divide "
                 "heads), head dim %d (even), intermediate %d, max M %ld, seq %ld (>= max M)",
                 c->hidden, c->heads, c->kv_heads, c->head_dim, c->inter, max_m, seq);
        return -1;
    }
    long H = c->hidden, Q = (long)c->heads * c->head_dim, KV = (long)c->kv_heads * c->head_dim;
    long NI = c->inter, M = max_m, hd2 = c->head_dim / 2;
    /* [N, K] of each projection, in the order of the weight arrays */
    const long wn[NW] = {Q, KV, KV, H, NI, NI, H}, wk[NW] = {H, H, H, Q, H, H, NI};
    if (fmt != MCT_RT_WF_F32)
        for (int i = 0; i < NW; i++)
            if (mct_rt_q_check(fmt, group, wn[i], wk[i], e, sizeof e)) {
                snprintf(err, errlen, "weight format %s does not fit the block's weight N=%ld "
                         "K=%ld: %s (here: one that divides %d and %d)", wfmt, wn[i], wk[i], e,
                         c->hidden, c->inter);
                return -1;
            }
    if (!(b = calloc(1, sizeof *b)))
        goto fail;
    b->c = *c;
    b->max_m = max_m;
    b->seq = seq;
    b->wfmt = fmt;
    b->wgroup = group;
    mct_rt_wfmt_name(fmt, group, b->wname);
#define ALLOC(p, n) do { if (!((p) = malloc((size_t)(n) * sizeof(float)))) goto fail; } while (0)
    for (int i = 0; i < NW; i++)
        ALLOC(b->w[i], wn[i] * wk[i]);
    ALLOC(b->n1, H);
    ALLOC(b->n2, H);
    ALLOC(b->kc, seq * KV);
    ALLOC(b->vc, seq * KV);
    ALLOC(b->t, M * H);
    ALLOC(b->q, M * Q);
    ALLOC(b->kn, M * KV);
    ALLOC(b->vn, M * KV);
    ALLOC(b->att, (long)c->heads * M * seq);
    ALLOC(b->ao, M * Q);
    ALLOC(b->h, M * H);
    ALLOC(b->g, M * NI);
    ALLOC(b->u, M * NI);
    ALLOC(b->sc, M * H);
    ALLOC(b->rope_cos, seq * hd2);
    ALLOC(b->rope_sin, seq * hd2);
#undef ALLOC
    /* weights ~ U(-1,1)/sqrt(K): activations keep their scale through the block; the same draw
     * for every format, so a quantized block differs from the f32 one by quantization only */
    for (int i = 0; i < NW; i++) {
        fill_scaled(b->w[i], wn[i] * wk[i], seed + 1 + (uint64_t)i, 1.0f / sqrtf((float)wk[i]));
        if (quantize_weight(b, i, wn[i], wk[i], err, errlen)) {
            mct_blk_destroy(b);
            return -1;
        }
    }
    mct_blk_fill(b->n1, H, seed + 8);
    mct_blk_fill(b->n2, H, seed + 9);
    for (long i = 0; i < H; i++) {
        b->n1[i] = 1.0f + 0.1f * b->n1[i];
        b->n2[i] = 1.0f + 0.1f * b->n2[i];
    }
    mct_blk_fill(b->kc, seq * KV, seed + 10);
    mct_blk_fill(b->vc, seq * KV, seed + 11);
    for (long p = 0; p < seq; p++)
        for (long d = 0; d < hd2; d++) {
            double f = pow((double)c->rope_theta, -2.0 * (double)d / (double)c->head_dim);
            b->rope_cos[p * hd2 + d] = (float)cos((double)p * f);
            b->rope_sin[p * hd2 + d] = (float)sin((double)p * f);
        }
    *out = b;
    return 0;
fail:
    snprintf(err, errlen, "out of memory allocating the block (hidden %d, intermediate %d, max M "
             "%ld, seq %ld): use --small or a smaller M", c->hidden, c->inter, max_m, seq);
    mct_blk_destroy(b);
    return -1;
}

static void rmsnorm(const float *x, const float *w, float *y, long M, long H, float eps)
{
    for (long i = 0; i < M; i++) {
        double ss = 0;
        for (long k = 0; k < H; k++)
            ss += (double)x[i * H + k] * x[i * H + k];
        float r = (float)(1.0 / sqrt(ss / (double)H + eps));
        for (long k = 0; k < H; k++)
            y[i * H + k] = x[i * H + k] * r * w[k];
    }
}

/* rotate_half RoPE (as Hugging Face Llama) of nh heads per row, row i at position p0 + i */
static void rope(const mct_blk *b, float *x, long M, long nh, long p0)
{
    long hd = b->c.head_dim, hd2 = hd / 2;
    for (long i = 0; i < M; i++) {
        const float *cs = b->rope_cos + (p0 + i) * hd2, *sn = b->rope_sin + (p0 + i) * hd2;
        for (long h = 0; h < nh; h++) {
            float *v = x + (i * nh + h) * hd;
            for (long d = 0; d < hd2; d++) {
                float x1 = v[d], x2 = v[d + hd2];
                v[d] = x1 * cs[d] - x2 * sn[d];
                v[d + hd2] = x2 * cs[d] + x1 * sn[d];
            }
        }
    }
}

/* C = A W^T for weight number wi, through the backend's packed weights when it packs (from the
 * plain layout when the weights are quantized and it packs those) */
static int lin_call(mct_blk *b, const mct_blk_backend *be, int wi, long M, long N, long K,
                    const float *A, float *C)
{
    const float *W = b->w[wi];
    int q = b->wfmt != MCT_RT_WF_F32 && be->pack_q;
    if (!be->pack && !q)
        return be->linear(M, N, K, A, W, C);
    int s = 0;
    while (s < 4 && b->pk_be[s] && b->pk_be[s] != be)
        s++;
    if (s == 4)
        return be->linear(M, N, K, A, W, C);    /* more packing backends than slots */
    b->pk_be[s] = be;
    if (!b->pk[s][wi] &&
        !(b->pk[s][wi] = q ? be->pack_q(b->wname, N, K, b->wplain[wi], b->wbytes[wi])
                           : be->pack(N, K, W)))
        return -2;
    return be->linear_packed(b->pk[s][wi], M, N, K, A, C);
}

/* lin_call, then the hook on what it computed */
static int lin(mct_blk *b, const mct_blk_backend *be, int wi, long M, long N, long K,
               const float *A, float *C)
{
    int r = lin_call(b, be, wi, M, N, K, A, C);
    if (r || !b->hook)
        return r;
    mct_blk_call c = {.name = wnames[wi], .wi = wi, .M = M, .N = N, .K = K, .A = A,
                      .W = b->w[wi], .C = C};
    return b->hook(b->hook_ctx, &c);
}

/* the backend's bmm, then the hook */
static int bmm(mct_blk *b, const mct_blk_backend *be, const char *name, int nt, long batch,
               long group, long M, long N, long K, const float *A, long lda, long sA,
               const float *B, long ldb, long sB, float *C, long ldc, long sC)
{
    int r = be->bmm(nt, batch, group, M, N, K, A, lda, sA, B, ldb, sB, C, ldc, sC);
    if (r || !b->hook)
        return r;
    mct_blk_call c = {.name = name, .bmm = 1, .wi = -1, .M = M, .N = N, .K = K, .A = A, .W = B,
                      .C = C, .nt = nt, .batch = batch, .group = group, .lda = lda, .sA = sA,
                      .ldb = ldb, .sB = sB, .ldc = ldc, .sC = sC};
    return b->hook(b->hook_ctx, &c);
}

void mct_blk_set_hook(mct_blk *b, mct_blk_hook fn, void *ctx)
{
    b->hook = fn;
    b->hook_ctx = ctx;
}

int mct_blk_forward(mct_blk *b, const mct_blk_backend *be, long M, const float *x, float *out)
{
    const mct_blk_cfg *c = &b->c;
    long H = c->hidden, nh = c->heads, nkv = c->kv_heads, hd = c->head_dim;
    long Q = nh * hd, KV = nkv * hd, NI = c->inter, S = b->seq, ctx = S - M;
    int r;
    if (M < 1 || M > b->max_m)
        return -1;
    /* attention */
    rmsnorm(x, b->n1, b->t, M, H, c->eps);
    if ((r = lin(b, be, WQ, M, Q, H, b->t, b->q)) ||
        (r = lin(b, be, WK, M, KV, H, b->t, b->kn)) ||
        (r = lin(b, be, WV, M, KV, H, b->t, b->vn)))
        return r;
    rope(b, b->q, M, nh, ctx);
    rope(b, b->kn, M, nkv, ctx);
    memcpy(b->kc + ctx * KV, b->kn, (size_t)(M * KV) * sizeof(float));
    memcpy(b->vc + ctx * KV, b->vn, (size_t)(M * KV) * sizeof(float));
    /* scores[h, i, j] = q[i, h] . k[j, h / group] */
    if ((r = bmm(b, be, "attn_scores", 1, nh, nh / nkv, M, S, hd, b->q, Q, hd, b->kc, KV, hd,
                 b->att, S, M * S)))
        return r;
    float scale = 1.0f / sqrtf((float)hd);
    for (long hi = 0; hi < nh * M; hi++) {
        float *s = b->att + hi * S;
        long last = ctx + hi % M;       /* causal: keys 0 .. position of this query */
        float mx = -INFINITY;
        for (long j = 0; j <= last; j++)
            mx = fmaxf(mx, s[j] * scale);
        float sum = 0;
        for (long j = 0; j <= last; j++) {
            s[j] = expf(s[j] * scale - mx);
            sum += s[j];
        }
        for (long j = 0; j <= last; j++)
            s[j] /= sum;
        for (long j = last + 1; j < S; j++)
            s[j] = 0;
    }
    /* ao[i, h] = P[h, i, :] V[:, h / group] */
    if ((r = bmm(b, be, "attn_values", 0, nh, nh / nkv, M, hd, S, b->att, S, M * S, b->vc, KV,
                 hd, b->ao, Q, hd)))
        return r;
    if ((r = lin(b, be, WO, M, H, Q, b->ao, b->h)))
        return r;
    for (long i = 0; i < M * H; i++)
        b->h[i] += x[i];
    /* SwiGLU MLP */
    rmsnorm(b->h, b->n2, b->t, M, H, c->eps);
    if ((r = lin(b, be, WG, M, NI, H, b->t, b->g)) ||
        (r = lin(b, be, WU, M, NI, H, b->t, b->u)))
        return r;
    for (long i = 0; i < M * NI; i++)
        b->g[i] = b->g[i] / (1.0f + expf(-b->g[i])) * b->u[i];
    if ((r = lin(b, be, WD, M, H, NI, b->g, out)))
        return r;
    for (long i = 0; i < M * H; i++)
        out[i] += b->h[i];
    return 0;
}

const char *mct_blk_weights(const mct_blk *b)
{
    return b->wname;
}

double mct_blk_weight_bytes(const mct_blk *b)
{
    const mct_blk_cfg *c = &b->c;
    double H = c->hidden, Q = (double)c->heads * c->head_dim, KV = (double)c->kv_heads *
        c->head_dim, NI = c->inter;
    if (b->wfmt == MCT_RT_WF_F32)
        return 4.0 * (2 * H * Q + 2 * H * KV + 3 * H * NI);
    double s = 0;
    for (int i = 0; i < NW; i++)
        s += (double)b->wbytes[i];
    return s;
}

double mct_blk_flops(const mct_blk *b, long M)
{
    const mct_blk_cfg *c = &b->c;
    double H = c->hidden, Q = (double)c->heads * c->head_dim, KV = (double)c->kv_heads *
        c->head_dim, NI = c->inter;
    double proj = 2.0 * M * (H * Q + 2 * H * KV + Q * H + 3 * H * NI);
    double att = 2.0 * 2.0 * c->heads * (double)M * (double)b->seq * c->head_dim;
    return proj + att;
}

void mct_blk_workloads(const mct_blk *b, long M, char *buf, size_t len)
{
    const mct_blk_cfg *c = &b->c;
    long H = c->hidden, Q = (long)c->heads * c->head_dim, KV = (long)c->kv_heads * c->head_dim;
    char w[32] = "";
    if (b->wfmt != MCT_RT_WF_F32)       /* f32 keys carry no w= field */
        snprintf(w, sizeof w, " w=%s", b->wname);
    snprintf(buf, len,
             "matmul f32 nt M=%ld N=%ld K=%ld epi=none%s\n"
             "matmul f32 nt M=%ld N=%ld K=%ld epi=none%s\n"
             "matmul f32 nt M=%ld N=%ld K=%ld epi=none%s\n"
             "matmul f32 nt M=%ld N=%ld K=%ld epi=none%s\n"
             "matmul f32 nt M=%ld N=%ld K=%ld epi=none%s\n"
             "bmm f32 nt B=%d G=%d M=%ld N=%ld K=%d epi=none\n"
             "bmm f32 nn B=%d G=%d M=%ld N=%d K=%ld epi=none\n",
             M, Q, H, w, M, KV, H, w, M, H, Q, w, M, (long)c->inter, H, w, M, H, (long)c->inter,
             w, c->heads, c->heads / c->kv_heads, M, b->seq, c->head_dim,
             c->heads, c->heads / c->kv_heads, M, c->head_dim, b->seq);
}

/* ---- the bound of a low-precision kernel's projection (the derivation: llama_block.h) */

void mct_blk_wnorms(long N, long K, const float *W, double *l1, double *l2)
{
    for (long n = 0; n < N; n++) {
        double s1 = 0, s2 = 0;
        for (long k = 0; k < K; k++) {
            double w = W[n * K + k];
            s1 += fabs(w);
            s2 += w * w;
        }
        l1[n] = s1;
        l2[n] = sqrt(s2);
    }
}

double mct_blk_lowp_bound(const char *fmt, long K, double amax, double a2, double l1, double l2)
{
    double p = fmin(amax * l1, a2 * l2), r;
    if (!strcmp(fmt, "f32"))
        r = 0;
    else if (!strcmp(fmt, "bf16"))
        r = ldexp(p, -8);
    else
        r = amax / 127 / 2 * (1 + 1e-4) * l1;
    /* the bound is computed in double from sums rounded once: a relative 1e-12 more keeps it
     * an upper bound of the exact one */
    double nu = (double)(K + 4) * ldexp(1.0, -24), g = nu / (1 - nu);
    return (r + 2 * g * (p + r) + (double)K * FLT_MIN) * (1 + 1e-12);
}

double mct_blk_lowp_worst(const char *fmt, long M, long N, long K, const float *A,
                          const double *l1, const double *l2, const float *C, const float *R,
                          long *at, double *bound)
{
    double worst = -1, wb = 0;
    long wat = 0;
    for (long i = 0; i < M; i++) {
        double amax = 0, s2 = 0;
        for (long k = 0; k < K; k++) {
            double a = A[i * K + k];
            amax = fmax(amax, fabs(a));
            s2 += a * a;
        }
        double a2 = sqrt(s2);
        for (long n = 0; n < N; n++) {
            double bd = mct_blk_lowp_bound(fmt, K, amax, a2, l1[n], l2[n]);
            double c = C[i * N + n], ref = R[i * N + n], d = fabs(c - ref), q;
            /* a NaN or infinite value (a NaN difference would compare false everywhere) or a
             * difference where the bound is 0 is out of any bound */
            if (!isfinite(c) || !isfinite(ref))
                q = INFINITY;
            else
                q = bd > 0 ? d / bd : d > 0 ? INFINITY : 0;
            if (q > worst || worst < 0) {
                worst = q;
                wat = i * N + n;
                wb = bd;
            }
        }
    }
    if (at)
        *at = wat;
    if (bound)
        *bound = wb;
    return worst < 0 ? 0 : worst;
}
