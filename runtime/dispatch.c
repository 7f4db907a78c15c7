/* Dispatch runtime of a generated library: picks one CPU table at load time (the ladder, the
 * NAME_CPU override, the NAME_DEBUG log), then on every call finds the kernel of a shape in O(1)
 * and the nearest tuned M, or sends the call down the generic path. libc only; the generator
 * copies this file into NAME.c (see dispatch.h). */
#include "runtime/dispatch.h"
#include "runtime/quant.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(_OPENMP) && !defined(__clang__)
#include <omp.h>
#endif

#define RT_ROW 101
#define RT_COL 102
#define RT_NOTRANS 111
#define RT_TRANS 112
#define RT_CONJTRANS 113

static const char *const rung_names[] = {"exact CPU", "same vendor and tier", "same tier",
                                         "generic", "forced"};

/* The tier a table's code needs: its kernels are lowered for its CPU's own tier (the dot
 * products of an avx512-bf16-vnni CPU's table are vpdpbusd), not only for its ISA row. */
static int need_tier(const mct_rt_table *t)
{
    return (int)mct_isa_code_tier(t->isa, (mct_tier)t->tier);
}

/* The extensions a table's code uses that the host (of extensions hx) lacks: a Zen 3 host never
 * runs an Alder Lake table's AVX-VNNI kernels, whatever its rung. */
static unsigned lacks(const mct_rt_table *t, unsigned hx)
{
    return t->exts & ~hx;
}

int mct_rt_choose(const mct_rt_lib *L, const mct_cpu *host, mct_tier host_tier,
                  const char *force, const mct_rt_table **table, int *rung, int *gisa,
                  char *msg, size_t msglen)
{
    uint64_t fkey;
    mct_tier ft;
    int rc = MCT_OK;
    unsigned hx = mct_cpu_exts(host, host_tier);
    char xn[64];
    *table = NULL;
    *rung = MCT_RT_RUNG_GENERIC;
    *gisa = (int)mct_isa_of_tier(host_tier);
    if (msg && msglen)
        msg[0] = 0;
    if (force && *force) {
        const mct_rt_table *pick = NULL;
        if (mct_cpu_key_parse(force, &fkey) == MCT_OK) {
            for (int i = 0; i < L->ntables && !pick; i++)
                if (L->tables[i]->key == fkey)
                    pick = L->tables[i];
            if (!pick) {
                snprintf(msg, msglen, "%s=%s: this library has no table for that CPU key; "
                         "use one of the keys `mctune gen` listed, or a tier name", L->env_cpu,
                         force);
                rc = MCT_EINVAL;
            } else if (need_tier(pick) > (int)host_tier) {
                snprintf(msg, msglen, "%s=%s: that table needs %s and this CPU has only %s; "
                         "ignored", L->env_cpu, force, mct_tier_name((mct_tier)need_tier(pick)),
                         mct_tier_name(host_tier));
                rc = MCT_EUNSUPPORTED;
            } else if (lacks(pick, hx)) {
                snprintf(msg, msglen, "%s=%s: that table's code uses %s, which this CPU lacks; "
                         "ignored", L->env_cpu, force, mct_ext_names(lacks(pick, hx), xn,
                                                                      sizeof xn));
                rc = MCT_EUNSUPPORTED;
            } else {
                *table = pick;
                *rung = MCT_RT_RUNG_FORCED;
                *gisa = pick->isa;
                return MCT_OK;
            }
        } else if (mct_tier_parse(force, &ft) == MCT_OK) {
            if (ft > host_tier) {
                snprintf(msg, msglen, "%s=%s: this CPU supports only up to %s; ignored; set a "
                         "tier at or below %s", L->env_cpu, force, mct_tier_name(host_tier),
                         mct_tier_name(host_tier));
                rc = MCT_EUNSUPPORTED;
            } else {
                for (int pass = 0; pass < 2 && !pick; pass++)
                    for (int i = 0; i < L->ntables && !pick; i++) {
                        const mct_rt_table *t = L->tables[i];
                        if (t->tier == (int)ft && !lacks(t, hx) &&
                            (pass || !strcmp(t->vendor, host->vendor)))
                            pick = t;
                    }
                *table = pick;
                *rung = MCT_RT_RUNG_FORCED;
                *gisa = (int)mct_isa_of_tier(ft);
                return MCT_OK;
            }
        } else {
            snprintf(msg, msglen, "%s=%s is neither a CPU key (16 hex digits) nor a tier "
                     "(generic, sse4.2, avx2, avx512, avx512-bf16-vnni, amx); ignored",
                     L->env_cpu, force);
            rc = MCT_EINVAL;
        }
    }
    for (int i = 0; i < L->ntables; i++) {
        const mct_rt_table *t = L->tables[i];
        int r = mct_rt_rung_of(host, host_tier, t->key, t->vendor, t->tier, need_tier(t));
        if (r < *rung && !lacks(t, hx)) {
            *table = t;
            *rung = r;
        }
    }
    return rc;
}

int mct_rt_rung_of(const mct_cpu *host, mct_tier host_tier, uint64_t key, const char *vendor,
                   int tier, int isa_tier)
{
    if (isa_tier > (int)host_tier)
        return MCT_RT_RUNG_GENERIC;
    if (key == mct_cpu_key(host))
        return MCT_RT_RUNG_EXACT;
    if (tier != (int)host_tier)
        return MCT_RT_RUNG_GENERIC;
    return strcmp(vendor, host->vendor) ? MCT_RT_RUNG_TIER : MCT_RT_RUNG_VENDOR_TIER;
}

void mct_rt_init(mct_rt_lib *L)
{
    int expect = 0;
    if (__atomic_load_n(&L->state, __ATOMIC_ACQUIRE) == 2)
        return;
    if (!__atomic_compare_exchange_n(&L->state, &expect, 1, 0, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE)) {
        while (__atomic_load_n(&L->state, __ATOMIC_ACQUIRE) != 2)
            ;  /* another thread is probing: microseconds */
        return;
    }
    const mct_cpu *host = mct_cpu_host();
    mct_tier ht = mct_cpu_tier_of(host);
    const char *force = getenv(L->env_cpu), *dbg = getenv(L->env_debug);
    char msg[512], keys[17];
    int debug = dbg && *dbg && strcmp(dbg, "0");
    if (mct_rt_choose(L, host, ht, force, &L->table, &L->rung, &L->gisa, msg, sizeof msg) < 0)
        fprintf(stderr, "%s: %s\n", L->name, msg);
    if (L->table)
        snprintf(L->desc, sizeof L->desc, "%s (%s; generic kernels %s)", L->table->label,
                 rung_names[L->rung], mct_tier_name(mct_isa_get(L->gisa)->tier));
    else
        snprintf(L->desc, sizeof L->desc, "generic %s (%s; no tuned table%s)",
                 mct_tier_name(mct_isa_get(L->gisa)->tier), rung_names[L->rung],
                 L->rung == MCT_RT_RUNG_FORCED ? " of that tier" : " for this CPU");
    if (debug) {
        mct_cpu_key_format(mct_cpu_key(host), keys);
        fprintf(stderr, "%s: cpu %s family %d model %d key %s tier %s; %d tables; %s=%s\n",
                L->name, host->vendor[0] ? host->vendor : "?", host->family, host->model, keys,
                mct_tier_name(ht), L->ntables, L->env_cpu, force ? force : "(unset)");
        for (int i = 0; i < L->ntables; i++)
            fprintf(stderr, "%s:   table %s: %d shapes, %d kernels\n", L->name,
                    L->tables[i]->label, L->tables[i]->nentries, L->tables[i]->nkernels);
        if (L->rung != MCT_RT_RUNG_EXACT && L->rung != MCT_RT_RUNG_FORCED)
            fprintf(stderr, "%s: fallback: no table for this exact CPU\n", L->name);
        fprintf(stderr, "%s: using %s\n", L->name, L->desc);
    }
    L->debug = debug;
    __atomic_store_n(&L->state, 2, __ATOMIC_RELEASE);
}

const char *mct_rt_cpu(mct_rt_lib *L)
{
    mct_rt_init(L);
    return L->desc;
}

const mct_rt_kernel *mct_rt_lookup(const mct_rt_table *t, const mct_rt_shape *s, long M,
                                   int threads, int flags)
{
    if (!t || !t->nentries)
        return NULL;
    unsigned mask = t->nslots - 1;
    for (unsigned i = (unsigned)mct_rt_shape_hash(s) & mask;; i = (i + 1) & mask) {
        int e = t->slots[i];
        if (!e)
            return NULL;
        const mct_rt_entry *E = &t->entries[e - 1];
        if (!mct_rt_shape_eq(&E->s, s))
            continue;
        const mct_rt_kernel *k = &t->kernels[E->first], *best = NULL;
        int nt = 0;
        /* the thread count: the largest tuned at or below the budget, else the smallest */
        for (int j = 0; j < E->count; j++) {
            int c = k[j].threads;
            if ((flags & MCT_RT_RAW) && k[j].packed_size)
                continue;
            if (!nt || (c <= threads ? nt > threads || c > nt : nt > threads && c < nt))
                nt = c;
        }
        for (int j = 0; j < E->count; j++) {
            if (k[j].threads != nt || ((flags & MCT_RT_RAW) && k[j].packed_size))
                continue;
            if (!best || mct_rt_m_nearer(k[j].M, best->M, M) ||
                (k[j].M == best->M && k[j].gflops > best->gflops))
                best = &k[j];
        }
        return best;
    }
}

int mct_rt_threads(const mct_rt_lib *L)
{
    int n = __atomic_load_n(&L->nthreads, __ATOMIC_RELAXED);
    if (n > 0)
        return n;
#if defined(_OPENMP) && !defined(__clang__)
    return omp_in_parallel() ? 1 : omp_get_max_threads();
#else
    return 1;
#endif
}

int mct_rt_set_num_threads(mct_rt_lib *L, int n)
{
    if (n < 0 || n > 4096)
        return MCT_EINVAL;
    __atomic_store_n(&L->nthreads, n, __ATOMIC_RELAXED);
    return MCT_OK;
}

/* Debug lines, each printed once per process (a lock-free set of hashes). */
static void rt_note(mct_rt_lib *L, uint64_t h, const char *fmt, ...)
{
    if (!h)
        h = 1;
    for (unsigned n = 0, i = (unsigned)h & (MCT_RT_SEEN - 1); n < MCT_RT_SEEN;
         n++, i = (i + 1) & (MCT_RT_SEEN - 1)) {
        uint64_t cur = __atomic_load_n(&L->seen[i], __ATOMIC_RELAXED);
        if (cur == h)
            return;
        if (cur)
            continue;
        if (!__atomic_compare_exchange_n(&L->seen[i], &cur, h, 0, __ATOMIC_RELAXED,
                                         __ATOMIC_RELAXED)) {
            if (cur == h)
                return;
            continue;
        }
        va_list ap;
        va_start(ap, fmt);
        fprintf(stderr, "%s: ", L->name);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
        return;
    }
}

/* A tuned kernel that expects a prepacked B, called with a plain B: pack into a temporary. */
static int rt_call(const mct_rt_kernel *k, long M, long N, long K, const float *A, long lda,
                   const float *B, long ldb, float *C, long ldc, const float *bias, long batch,
                   long group, long sA, long sB, long sC)
{
    float *Bp;
    int rc;
    if (!k->packed_size)
        return k->fn(M, N, K, A, lda, B, ldb, C, ldc, bias, batch, group, sA, sB, sC);
    Bp = malloc(sizeof(float) * k->packed_size(N, K));
    if (!Bp)
        return MCT_ENOMEM;
    k->pack_b(N, K, B, ldb, Bp);
    rc = k->fn(M, N, K, A, lda, Bp, ldb, C, ldc, bias, batch, group, sA, sB, sC);
    free(Bp);
    return rc;
}

static void rt_scale(long M, long N, float beta, float *C, long ldc)
{
    for (long i = 0; i < M; i++)
        for (long j = 0; j < N; j++)
            C[i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
}

static int rt_gemm(mct_rt_lib *L, const char *who, int tA, int layout, long M, long N, long K,
                   float alpha, const float *A, long lda, const float *B, long ldb, float beta,
                   float *C, long ldc, const float *bias, int act, int tuned_only, int threads)
{
    mct_rt_shape s = {N, K, 1, 1, MCT_RT_MATMUL, layout, bias != NULL, act,
                      beta == 1.0f ? 1 : 0, 0, 0};
    const mct_rt_kernel *k = NULL;
    const char *why = "shape not tuned";
    int rc;
    if (tA)
        why = "A transposed";
    else if (alpha != 1.0f && beta != 0.0f)
        why = "alpha != 1 with beta != 0";
    else if (beta != 0.0f && beta != 1.0f)
        why = "beta not 0 or 1";
    else {
        /* B as given: a kernel that takes it so; else (not for the cblas drop-in, which then
         * forwards rather than lose) one that packs B per call */
        int nt = threads > 0 ? threads : mct_rt_threads(L);
        if (!(k = mct_rt_lookup(L->table, &s, M, nt, MCT_RT_RAW)) && !tuned_only)
            k = mct_rt_lookup(L->table, &s, M, nt, 0);
        if (!k && !L->table)
            why = "no tuned table";
        else if (!k && tuned_only && mct_rt_lookup(L->table, &s, M, nt, 0))
            why = "only kernels that need a prepacked B are tuned";
        else if (k && tuned_only && k->base_gflops > k->gflops) {
            /* the kernel for this call (its M, its threads) lost to the library when measured
             * beside it: that library runs the call */
            k = NULL;
            why = "its kernel was measured slower than the library it would replace";
        }
    }
    if (k) {
        if (L->debug)
            rt_note(L, mct_rt_shape_hash(&s) ^ (uint64_t)(uintptr_t)k, "%s %s M=%ld N=%ld K=%ld"
                    " -> tuned %s (M bucket %ld, %d thread%s, %.1f GFLOP/s when tuned%s)", who,
                    layout ? "nt" : "nn", M, N, K, k->name, k->M, k->threads,
                    k->threads == 1 ? "" : "s", k->gflops,
                    k->packed_size ? "; B packed on this call" : "");
        rc = rt_call(k, M, N, K, A, lda, B, ldb, C, ldc, bias, 1, 1, 0, 0, 0);
        if (rc == MCT_OK && alpha != 1.0f)  /* beta is 0 here: C = alpha * (A*B) */
            rt_scale(M, N, alpha, C, ldc);
        return rc;
    }
    if (tuned_only) {
        if (L->debug)
            rt_note(L, mct_rt_shape_hash(&s) ^ (uint64_t)M * 37 ^ (uint64_t)tA << 61, "%s %s "
                    "M=%ld N=%ld K=%ld -> not run here (%s)", who, layout ? "nt" : "nn", M, N,
                    K, why);
        return MCT_ENOTFOUND;
    }
    if (L->debug)
        rt_note(L, mct_rt_shape_hash(&s) ^ (uint64_t)M * 31 ^ (uint64_t)tA << 60, "%s %s%s "
                "M=%ld N=%ld K=%ld -> generic %s (%s)", who, tA ? "A^T " : "",
                layout ? "nt" : "nn", M, N, K, mct_tier_name(mct_isa_get(L->gisa)->tier), why);
    return mct_rt_generic(L, tA, layout, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, bias,
                          act);
}

/* Whether a rows x cols matrix with leading dimension ld (>= cols >= 0, ld >= 1) plus an offset
 * of `off` elements spans no more bytes than a pointer difference holds: the kernels index with
 * long products i * ld + j, which then cannot overflow. */
static int rt_span_ok(long rows, long cols, long ld, long off)
{
    const long lim = (long)(PTRDIFF_MAX / (ptrdiff_t)sizeof(float));
    if (rows <= 0 || cols <= 0)
        return 1;
    if (cols > lim || off < 0 || off > lim - cols)
        return 0;
    return rows - 1 <= (lim - cols - off) / ld;
}

int mct_rt_sgemm(mct_rt_lib *L, int order, int transA, int transB, long M, long N, long K,
                 float alpha, const float *A, long lda, const float *B, long ldb, float beta,
                 float *C, long ldc, int tuned_only, int threads)
{
    mct_rt_init(L);
    if ((order != RT_ROW && order != RT_COL) || transA < RT_NOTRANS || transA > RT_CONJTRANS ||
        transB < RT_NOTRANS || transB > RT_CONJTRANS)
        return tuned_only ? MCT_ENOTFOUND : MCT_EINVAL;
    if (order == RT_COL) {  /* C^T = op(B)^T op(A)^T: a row-major call with roles swapped */
        const float *t = A;
        long l = lda, n = M;
        int tr = transA;
        A = B, lda = ldb, B = t, ldb = l, M = N, N = n, transA = transB, transB = tr;
    }
    int tA = transA != RT_NOTRANS, tB = transB != RT_NOTRANS;
    if (M < 0 || N < 0 || K < 0 || lda < (tA ? M : K) || lda < 1 || ldb < (tB ? K : N) ||
        ldb < 1 || ldc < N || ldc < 1 || (!C && M && N) || (!A && M && K) || (!B && K && N))
        return tuned_only ? MCT_ENOTFOUND : MCT_EINVAL;
    if (!rt_span_ok(tA ? K : M, tA ? M : K, lda, 0) ||
        !rt_span_ok(tB ? N : K, tB ? K : N, ldb, 0) || !rt_span_ok(M, N, ldc, 0))
        return tuned_only ? MCT_ENOTFOUND : MCT_EINVAL;
    if (M == 0 || N == 0)
        return tuned_only ? MCT_ENOTFOUND : MCT_OK;
    if (K == 0 || alpha == 0.0f) {
        if (tuned_only)
            return MCT_ENOTFOUND;
        if (beta != 1.0f)
            rt_scale(M, N, beta, C, ldc);
        return MCT_OK;
    }
    return rt_gemm(L, "sgemm", tA, tB ? MCT_RT_NT : MCT_RT_NN, M, N, K, alpha, A, lda, B, ldb,
                   beta, C, ldc, NULL, MCT_RT_ACT_NONE, tuned_only, threads);
}

static int rt_check_mm(int layout, long M, long N, long K, const float *A, long lda,
                       const float *B, long ldb, float *C, long ldc, int act, int beta)
{
    if ((layout != MCT_RT_NN && layout != MCT_RT_NT) || act < MCT_RT_ACT_NONE ||
        act > MCT_RT_ACT_SILU || (beta != 0 && beta != 1) || M < 0 || N < 0 || K < 0 ||
        lda < K || lda < 1 || ldb < (layout == MCT_RT_NT ? K : N) || ldb < 1 || ldc < N ||
        ldc < 1 || (!C && M && N) || (!A && M && K) || (!B && K && N))
        return MCT_EINVAL;
    int nt = layout == MCT_RT_NT;
    if (!rt_span_ok(M, K, lda, 0) || !rt_span_ok(nt ? N : K, nt ? K : N, ldb, 0) ||
        !rt_span_ok(M, N, ldc, 0))
        return MCT_EINVAL;
    return MCT_OK;
}

/* Storage of one kernel's prepacked weights (free()d as usual): from 2 MiB on it sits on 2 MiB
 * boundaries with transparent huge pages asked for, so streaming the panels walks a few page
 * table entries instead of one per 4 KiB (measured about 1.5% at M=1 on a 64 MiB B), and the
 * tuner's harness measures kernels on weights allocated the same way (tuner/measure_driver.h). */
#if defined(__linux__)
/* Declared here, as glibc does, so a strict C11 build of a generated library needs no
 * feature-test macro (default visibility: a generated library declares its runtime hidden);
 * 14 is Linux's MADV_HUGEPAGE. */
extern int madvise(void *, size_t, int) __attribute__((visibility("default")));
#define RT_MADV_HUGEPAGE 14
#endif

static float *rt_weights_alloc(size_t floats)
{
    const size_t huge = (size_t)2 << 20, bytes = sizeof(float) * floats;
    if (bytes < huge)
        return malloc(bytes ? bytes : 1);
    size_t len = (bytes + huge - 1) / huge * huge;
    void *p = aligned_alloc(huge, len);
#if defined(__linux__)
    if (p)
        madvise(p, len, RT_MADV_HUGEPAGE);  /* advice: without THP it changes nothing */
#endif
    return p;
}

/* K == 0: out = act(bias) (or act(0)) for every row. */
static void rt_empty_k(long M, long N, float *C, long ldc, const float *bias, int act, int beta)
{
    for (long i = 0; i < M; i++)
        for (long j = 0; j < N; j++) {
            float v = mct_rt_act(act, bias ? bias[j] : 0.0f);
            C[i * ldc + j] = beta ? C[i * ldc + j] + v : v;
        }
}

int mct_rt_matmul(mct_rt_lib *L, int layout, long M, long N, long K, const float *A, long lda,
                  const float *B, long ldb, float *C, long ldc, const float *bias, int act,
                  int beta)
{
    mct_rt_init(L);
    if (rt_check_mm(layout, M, N, K, A, lda, B, ldb, C, ldc, act, beta) < 0)
        return MCT_EINVAL;
    if (M == 0 || N == 0)
        return MCT_OK;
    if (K == 0) {
        rt_empty_k(M, N, C, ldc, bias, act, beta);
        return MCT_OK;
    }
    return rt_gemm(L, "matmul", 0, layout, M, N, K, 1.0f, A, lda, B, ldb, beta ? 1.0f : 0.0f,
                   C, ldc, bias, act, 0, 0);
}

int mct_rt_bmm(mct_rt_lib *L, int layout, long batch, long group, long M, long N, long K,
               const float *A, long lda, long sA, const float *B, long ldb, long sB, float *C,
               long ldc, long sC, int beta)
{
    mct_rt_init(L);
    if (batch < 0 || group < 1 || (batch && batch % group) || sA < 0 || sB < 0 || sC < 0 ||
        rt_check_mm(layout, M, N, K, A, lda, B, ldb, C, ldc, MCT_RT_ACT_NONE, beta) < 0 ||
        (!A && batch && M && K) || (!B && batch && K && N) || (!C && batch && M && N))
        return MCT_EINVAL;
    if (batch > 1) {
        /* the last matrix of each operand starts (batch - 1) strides in and must fit too */
        const long lim = (long)(PTRDIFF_MAX / (ptrdiff_t)sizeof(float));
        long nb = batch - 1, nbB = batch / group - 1;
        int nt = layout == MCT_RT_NT;
        if ((sA && nb > lim / sA) || (sB && nbB > lim / sB) || (sC && nb > lim / sC) ||
            !rt_span_ok(M, K, lda, nb * sA) ||
            !rt_span_ok(nt ? N : K, nt ? K : N, ldb, nbB * sB) ||
            !rt_span_ok(M, N, ldc, nb * sC))
            return MCT_EINVAL;
    }
    if (batch == 0 || M == 0 || N == 0)
        return MCT_OK;
    mct_rt_shape s = {N, K, batch, group, MCT_RT_BMM, layout, 0, MCT_RT_ACT_NONE, beta, 0, 0};
    const mct_rt_kernel *k = K ? mct_rt_lookup(L->table, &s, M, mct_rt_threads(L), MCT_RT_RAW)
                               : NULL;
    if (k) {
        if (L->debug)
            rt_note(L, mct_rt_shape_hash(&s) ^ (uint64_t)(uintptr_t)k, "bmm %s B=%ld G=%ld "
                    "M=%ld N=%ld K=%ld -> tuned %s (M bucket %ld)", layout ? "nt" : "nn", batch,
                    group, M, N, K, k->name, k->M);
        return k->fn(M, N, K, A, lda, B, ldb, C, ldc, NULL, batch, group, sA, sB, sC);
    }
    if (L->debug)
        rt_note(L, mct_rt_shape_hash(&s) ^ (uint64_t)M * 31, "bmm %s B=%ld G=%ld M=%ld N=%ld "
                "K=%ld -> generic %s (shape not tuned)", layout ? "nt" : "nn", batch, group, M,
                N, K, mct_tier_name(mct_isa_get(L->gisa)->tier));
    for (long b = 0; b < batch; b++) {
        float *Cb = C + b * sC;
        int rc;
        if (K == 0) {
            rt_empty_k(M, N, Cb, ldc, NULL, MCT_RT_ACT_NONE, beta);
            continue;
        }
        rc = mct_rt_generic(L, 0, layout, M, N, K, 1.0f, A + b * sA, lda, B + (b / group) * sB,
                            ldb, beta ? 1.0f : 0.0f, Cb, ldc, NULL, MCT_RT_ACT_NONE);
        if (rc < 0)
            return rc;
    }
    return MCT_OK;
}

struct mct_rt_packed {
    const mct_rt_table *table;  /* the table the packed copies are for */
    int layout;
    long N, K, ldb;
    float *B;                   /* plain copy, for the generic path and unpacked kernels (NULL
                                 * for low-precision weights) */
    float **pk;                 /* per kernel of the table: its packed B, or NULL */
    int wfmt, wgroup;           /* weight format (MCT_RT_WF_F32: 0, 0) */
    unsigned char *Q;           /* low-precision weights: the plain layout (runtime/quant.h) */
};

void mct_rt_packed_free(mct_rt_packed *P)
{
    if (!P)
        return;
    if (P->pk)
        for (int i = 0; i < P->table->nkernels; i++)
            free(P->pk[i]);
    free(P->pk);
    free(P->B);
    free(P->Q);
    free(P);
}

int mct_rt_prepack_b(mct_rt_lib *L, int layout, long N, long K, const float *B, long ldb,
                     mct_rt_packed **out)
{
    mct_rt_packed *P = NULL;
    int rc = MCT_EINVAL;
    mct_rt_init(L);
    if (!out)
        return MCT_EINVAL;
    *out = NULL;
    if ((layout != MCT_RT_NN && layout != MCT_RT_NT) || N < 1 || K < 1 || !B ||
        ldb < (layout == MCT_RT_NT ? K : N) ||
        !rt_span_ok(layout == MCT_RT_NT ? N : K, layout == MCT_RT_NT ? K : N, ldb, 0))
        goto fail;
    rc = MCT_ENOMEM;
    if (!(P = calloc(1, sizeof *P)))
        goto fail;
    P->table = L->table;
    P->layout = layout;
    P->N = N;
    P->K = K;
    P->ldb = layout == MCT_RT_NT ? K : N;
    long rows = layout == MCT_RT_NT ? N : K;
    if (!(P->B = malloc(sizeof(float) * (size_t)rows * (size_t)P->ldb)))
        goto fail;
    for (long r = 0; r < rows; r++)
        memcpy(P->B + r * P->ldb, B + r * ldb, sizeof(float) * (size_t)P->ldb);
    if (P->table && P->table->nkernels) {
        const mct_rt_table *t = P->table;
        if (!(P->pk = calloc((size_t)t->nkernels, sizeof *P->pk)))
            goto fail;
        for (int e = 0; e < t->nentries; e++) {
            const mct_rt_entry *E = &t->entries[e];
            if (E->s.op != MCT_RT_MATMUL || E->s.layout != layout || E->s.N != N ||
                E->s.K != K || E->s.wfmt)
                continue;
            for (int j = E->first; j < E->first + E->count; j++) {
                const mct_rt_kernel *k = &t->kernels[j];
                if (!k->packed_size)
                    continue;
                if (!(P->pk[j] = rt_weights_alloc(k->packed_size(N, K))))
                    goto fail;
                k->pack_b(N, K, P->B, P->ldb, P->pk[j]);
            }
        }
    }
    *out = P;
    return MCT_OK;
fail:
    mct_rt_packed_free(P);
    return rc;
}

/* P (fields set, Q filled) packed for every kernel of P->table tuned for its (N, K, format). */
static int rt_pack_q(mct_rt_packed *P)
{
    const mct_rt_table *t = P->table;
    if (!t || !t->nkernels)
        return MCT_OK;
    if (!(P->pk = calloc((size_t)t->nkernels, sizeof *P->pk)))
        return MCT_ENOMEM;
    for (int e = 0; e < t->nentries; e++) {
        const mct_rt_entry *E = &t->entries[e];
        if (E->s.op != MCT_RT_MATMUL || E->s.N != P->N || E->s.K != P->K ||
            E->s.wfmt != P->wfmt || E->s.wgroup != P->wgroup)
            continue;
        for (int j = E->first; j < E->first + E->count; j++) {
            const mct_rt_kernel *k = &t->kernels[j];
            if (!k->packed_size)  /* every low-precision kernel has one; never guess */
                continue;
            if (!(P->pk[j] = rt_weights_alloc(k->packed_size(P->N, P->K))))
                return MCT_ENOMEM;
            k->pack_b(P->N, P->K, (const float *)(const void *)P->Q, P->K, P->pk[j]);
        }
    }
    return MCT_OK;
}

/* A packed handle for the low-precision format fmt (already parsed) of N x K weights, its plain
 * layout allocated but not filled. */
static int rt_packed_q_new(mct_rt_lib *L, const char *who, int fmt, int group, long N, long K,
                           mct_rt_packed **out)
{
    char err[256];
    int rc = mct_rt_q_check(fmt, group, N, K, err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "%s: %s: %s\n", L->name, who, err);
        return MCT_EINVAL;
    }
    mct_rt_packed *P = calloc(1, sizeof *P);
    if (!P)
        return MCT_ENOMEM;
    P->table = L->table;
    P->layout = MCT_RT_NT;
    P->N = N;
    P->K = K;
    P->ldb = K;
    P->wfmt = fmt;
    P->wgroup = group;
    if (!(P->Q = malloc(mct_rt_q_plain_bytes(fmt, group, N, K)))) {
        free(P);
        return MCT_ENOMEM;
    }
    *out = P;
    return MCT_OK;
}

/* The start of both low-precision prepack entry points: the library initialised, *out NULL,
 * the format read into *f, *g. MCT_EINVAL (out NULL; a format not known, said on stderr). */
static int rt_prepack_start(mct_rt_lib *L, const char *who, const char *fmt,
                            mct_rt_packed **out, int *f, int *g)
{
    char err[256];
    mct_rt_init(L);
    if (!out)
        return MCT_EINVAL;
    *out = NULL;
    if (mct_rt_wfmt_parse(fmt, f, g, err, sizeof err) < 0) {
        fprintf(stderr, "%s: %s: %s\n", L->name, who, err);
        return MCT_EINVAL;
    }
    return MCT_OK;
}

int mct_rt_prepack_b_fmt(mct_rt_lib *L, const char *fmt, int layout, long N, long K,
                         const float *B, long ldb, mct_rt_packed **out)
{
    mct_rt_packed *P = NULL;
    char err[256];
    int f, g, rc;
    if ((rc = rt_prepack_start(L, "prepack_b_fmt", fmt, out, &f, &g)) < 0)
        return rc;
    if (f == MCT_RT_WF_F32)
        return mct_rt_prepack_b(L, layout, N, K, B, ldb, out);
    if ((layout != MCT_RT_NN && layout != MCT_RT_NT) || !B ||
        ldb < (layout == MCT_RT_NT ? K : N) || N < 1 || K < 1 ||
        !rt_span_ok(layout == MCT_RT_NT ? N : K, layout == MCT_RT_NT ? K : N, ldb, 0)) {
        fprintf(stderr, "%s: prepack_b_fmt: layout %d, N=%ld K=%ld, ldb=%ld, B %s: need layout "
                "NN (ldb >= N) or NT (ldb >= K), sizes >= 1 and B\n", L->name, layout, N, K, ldb,
                B ? "given" : "NULL");
        return MCT_EINVAL;
    }
    if ((rc = rt_packed_q_new(L, "prepack_b_fmt", f, g, N, K, &P)) < 0)
        return rc;
    rc = mct_rt_q_quantize(f, g, layout, N, K, B, ldb, P->Q, err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "%s: prepack_b_fmt: %s\n", L->name, err);
        rc = MCT_EINVAL;
        goto fail;
    }
    P->layout = layout;
    if ((rc = rt_pack_q(P)) < 0)
        goto fail;
    *out = P;
    return MCT_OK;
fail:
    mct_rt_packed_free(P);
    return rc;
}

int mct_rt_prepack_b_quantized(mct_rt_lib *L, const char *fmt, long N, long K, const void *plain,
                               size_t bytes, mct_rt_packed **out)
{
    mct_rt_packed *P = NULL;
    char fb[24];
    int f, g, rc;
    if ((rc = rt_prepack_start(L, "prepack_b_quantized", fmt, out, &f, &g)) < 0)
        return rc;
    if (f == MCT_RT_WF_F32) {
        fprintf(stderr, "%s: prepack_b_quantized: format f32 has no plain layout: use "
                "%s_prepack_b\n", L->name, L->name);
        return MCT_EINVAL;
    }
    if ((rc = rt_packed_q_new(L, "prepack_b_quantized", f, g, N, K, &P)) < 0)
        return rc;
    size_t need = mct_rt_q_plain_bytes(f, g, N, K);
    if (!plain || bytes != need) {
        fprintf(stderr, "%s: prepack_b_quantized: %s N=%ld K=%ld needs a plain layout of %zu bytes "
                "(data, then the scales at %zu), got %zu%s\n", L->name,
                mct_rt_wfmt_name(f, g, fb), N, K, need, mct_rt_q_scale_at(f, N, K), bytes,
                plain ? "" : " and a NULL pointer");
        rc = MCT_EINVAL;
        goto fail;
    }
    memcpy(P->Q, plain, need);
    if ((rc = rt_pack_q(P)) < 0)
        goto fail;
    *out = P;
    return MCT_OK;
fail:
    mct_rt_packed_free(P);
    return rc;
}

/* mct_rt_matmul_packed for low-precision weights: the format's kernel (tuned with the weights'
 * f32 layout first, then the other), else the dequantizing generic path. */
static int rt_matmul_q(mct_rt_lib *L, const mct_rt_packed *P, long M, const float *A, long lda,
                       float *C, long ldc, const float *bias, int act, int beta)
{
    mct_rt_shape s = {P->N, P->K, 1, 1, MCT_RT_MATMUL, P->layout, bias != NULL, act, beta,
                      P->wfmt, P->wgroup};
    const mct_rt_kernel *k = NULL;
    char fb[24];
    if (P->table == L->table && L->table) {
        k = mct_rt_lookup(L->table, &s, M, mct_rt_threads(L), 0);
        if (!k) {
            s.layout = !s.layout;
            k = mct_rt_lookup(L->table, &s, M, mct_rt_threads(L), 0);
        }
    }
    const float *Bk = k && k->packed_size && P->pk ? P->pk[k - L->table->kernels] : NULL;
    if (Bk) {
        if (L->debug)
            rt_note(L, mct_rt_shape_hash(&s) ^ (uint64_t)(uintptr_t)k, "matmul_packed w=%s M=%ld"
                    " N=%ld K=%ld -> tuned %s (M bucket %ld, %d thread%s)",
                    mct_rt_wfmt_name(P->wfmt, P->wgroup, fb), M, P->N, P->K, k->name, k->M,
                    k->threads, k->threads == 1 ? "" : "s");
        int rc = k->fn(M, P->N, P->K, A, lda, Bk, P->K, C, ldc, bias, 1, 1, 0, 0, 0);
        /* an AMX kernel the OS refused the tile state returns before it writes C: the generic
         * kernel below answers instead */
        if (rc != MCT_EUNSUPPORTED)
            return rc;
        rt_note(L, mct_rt_shape_hash(&s) ^ 0xA3u, "matmul_packed w=%s: tuned %s refused by the "
                "OS (AMX tile state not granted); generic kernel used",
                mct_rt_wfmt_name(P->wfmt, P->wgroup, fb), k->name);
    }
    if (L->debug)
        rt_note(L, mct_rt_shape_hash(&s) ^ (uint64_t)M * 31, "matmul_packed w=%s M=%ld N=%ld "
                "K=%ld -> generic %s (dequantized; shape and format not tuned)",
                mct_rt_wfmt_name(P->wfmt, P->wgroup, fb), M, P->N, P->K,
                mct_tier_name(mct_isa_get(L->gisa)->tier));
    return mct_rt_generic_q(L, P->wfmt, P->wgroup, M, P->N, P->K, A, lda, P->Q, C, ldc, bias, act,
                            beta);
}

int mct_rt_matmul_packed(mct_rt_lib *L, const mct_rt_packed *P, long M, const float *A,
                         long lda, float *C, long ldc, const float *bias, int act, int beta)
{
    mct_rt_init(L);
    if (P && P->wfmt) {
        if (rt_check_mm(MCT_RT_NT, M, P->N, P->K, A, lda, (const float *)(const void *)P->Q,
                        P->K, C, ldc, act, beta) < 0)
            return MCT_EINVAL;
        return M == 0 ? MCT_OK : rt_matmul_q(L, P, M, A, lda, C, ldc, bias, act, beta);
    }
    if (!P || rt_check_mm(P->layout, M, P->N, P->K, A, lda, P->B, P->ldb, C, ldc, act, beta) < 0)
        return MCT_EINVAL;
    if (M == 0)
        return MCT_OK;
    mct_rt_shape s = {P->N, P->K, 1, 1, MCT_RT_MATMUL, P->layout, bias != NULL, act, beta, 0,
                      0};
    const mct_rt_kernel *k = P->table == L->table
                             ? mct_rt_lookup(L->table, &s, M, mct_rt_threads(L), 0) : NULL;
    const float *Bk = !k ? NULL : !k->packed_size ? P->B
                    : P->pk ? P->pk[k - L->table->kernels] : NULL;
    if (k && Bk) {
        if (L->debug)
            rt_note(L, mct_rt_shape_hash(&s) ^ (uint64_t)(uintptr_t)k, "matmul_packed %s M=%ld"
                    " N=%ld K=%ld -> tuned %s (M bucket %ld, %d thread%s, B %s)",
                    P->layout ? "nt" : "nn", M, P->N, P->K, k->name, k->M, k->threads,
                    k->threads == 1 ? "" : "s", k->packed_size ? "prepacked" : "as given");
        return k->fn(M, P->N, P->K, A, lda, Bk, P->ldb, C, ldc, bias, 1, 1, 0, 0, 0);
    }
    return rt_gemm(L, "matmul_packed", 0, P->layout, M, P->N, P->K, 1.0f, A, lda, P->B, P->ldb,
                   beta ? 1.0f : 0.0f, C, ldc, bias, act, 0, 0);
}

int mct_rt_is_tuned(mct_rt_lib *L, int op, int layout, long M, long N, long K, long batch,
                    long group, int bias, int act, int beta)
{
    mct_rt_init(L);
    if ((op != MCT_RT_MATMUL && op != MCT_RT_BMM) || (layout != MCT_RT_NN &&
        layout != MCT_RT_NT) || M < 1 || N < 1 || K < 1 || act < 0 || act > MCT_RT_ACT_SILU ||
        (beta != 0 && beta != 1))
        return MCT_EINVAL;
    mct_rt_shape s = {N, K, op == MCT_RT_BMM ? batch : 1, op == MCT_RT_BMM ? group : 1, op,
                      layout, bias != 0, act, beta, 0, 0};
    return mct_rt_lookup(L->table, &s, M, mct_rt_threads(L), 0) != NULL;
}
