/* mctune dispatch runtime: what a generated kernel library is made of, and the calls that walk it.
 *
 * This file ships inside every generated library (`mctune gen` copies it, with cpu.h, cpu.c,
 * err.c, dispatch.c and generic.c, into NAME.c): libc headers only, baseline ISA only. The
 * generator emits the tables (one per CPU, each a hash table of shapes pointing at kernels sorted
 * by M) and one mct_rt_lib that the public NAME_* functions pass to these calls; the runtime
 * never names an ISA, it only walks what was generated (STYLE.md).
 *
 * Kernels have the ABI of codegen/codegen.h: out = act(A*B + bias); C = out (beta 0) or
 * C += out (beta 1); A row-major, B [K,N] (nn) or [N,K] (nt) or prepacked.
 */
#ifndef MCT_DISPATCH_H
#define MCT_DISPATCH_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/cpu.h"
#include "runtime/mct_err.h"

/* The kernel ABI, written once: these parameter lists are the only definition. The lowering
 * (codegen/lower.c), the measurement driver (tuner/measure_driver.h) and the generated library
 * (codegen emission) all print them with MCT_RT_STR, so a change here changes every copy.
 * A kernel returns 0, or MCT_ENOMEM when a packing or scratch buffer cannot be allocated, or
 * (a widen(B, amx) kernel) MCT_EUNSUPPORTED before touching C when the OS refuses the AMX tile
 * state; NAME_matmul_packed then runs the generic kernel instead. */
#define MCT_RT_KERNEL_PARAMS                                                                  \
    long M, long N, long K, const float *A, long lda, const float *B, long ldb, float *C,    \
        long ldc, const float *bias, long batch, long group, long sA, long sB, long sC
#define MCT_RT_PSIZE_PARAMS long N, long K
#define MCT_RT_PACK_PARAMS long N, long K, const float *B, long ldb, float *Bp
#define MCT_RT_STR_(...) #__VA_ARGS__
#define MCT_RT_STR(...) MCT_RT_STR_(__VA_ARGS__)

typedef int (*mct_rt_kernel_fn)(MCT_RT_KERNEL_PARAMS);
typedef size_t (*mct_rt_psize_fn)(MCT_RT_PSIZE_PARAMS);
typedef void (*mct_rt_pack_fn)(MCT_RT_PACK_PARAMS);

/* The nearest-M rule, written once (the database's nearest-M lookup, transfer seeds in tuning
 * and this runtime's kernel lookup all call it): 1 when a record tuned for M = cand serves a
 * call of M rows better than one tuned for M = best. Distance is on a log scale (|log(cand/M)|),
 * ties go to the larger M: a kernel tuned for 16 rows serves 4 better than one tuned for a
 * single row, which re-streams the weights per row. All values >= 1. */
static inline int mct_rt_m_nearer(long cand, long best, long M)
{
    /* |log(c/m)| against |log(b/m)| without logs: cand is nearer when lhs < rhs. Sizes are
     * below 2^24, so the products are exact in a double. */
    double c = (double)cand, b = (double)best, m = (double)M, lhs, rhs;
    if (c >= m && b >= m)
        lhs = c, rhs = b;
    else if (c <= m && b <= m)
        lhs = b, rhs = c;
    else if (c >= m)
        lhs = c * b, rhs = m * m;
    else
        lhs = m * m, rhs = b * c;
    return lhs < rhs || (lhs == rhs && cand > best);
}

enum { MCT_RT_MATMUL = 0, MCT_RT_BMM = 1 };
enum { MCT_RT_NN = 0, MCT_RT_NT = 1 };
enum { MCT_RT_ACT_NONE = 0, MCT_RT_ACT_RELU, MCT_RT_ACT_GELU, MCT_RT_ACT_SILU };

/* Everything but M that selects a kernel. Zero unused fields (batch = group = 1 for matmul).
 * wfmt, wgroup: the weight format (runtime/quant.h: MCT_RT_WF_*, the q4 group; 0, 0 for f32),
 * so a quantized kernel is found only by calls that hold weights of its format. */
typedef struct mct_rt_shape {
    long N, K, batch, group;
    int op, layout, bias, act, beta;
    int wfmt, wgroup;
} mct_rt_shape;

/* One tuned kernel: the M bucket and the thread count it was tuned for, and the code (its
 * parallel loops run on exactly that many threads). */
typedef struct mct_rt_kernel {
    long M;
    int threads;
    mct_rt_kernel_fn fn;
    mct_rt_psize_fn packed_size;    /* NULL unless the kernel takes a prepacked B */
    mct_rt_pack_fn pack_b;
    const char *name;
    double gflops;                  /* measured when tuned */
    double base_gflops;             /* the fastest library on the same call, measured beside it,
                                     * on gflops's scale (b=raw kernels; db.h); 0: not measured */
} mct_rt_kernel;

/* One shape: kernels[first .. first+count) of its table, sorted by M, then threads. */
typedef struct mct_rt_entry {
    mct_rt_shape s;
    int first, count;
} mct_rt_entry;

/* One CPU's kernels. slots: open addressing by mct_rt_shape_hash, nslots a power of two,
 * slot value = entry index + 1, 0 = empty (at least one slot is always empty). */
typedef struct mct_rt_table {
    const char *label;          /* "GenuineIntel 6/207 avx512 <key>" */
    uint64_t key;               /* mct_cpu_key of the CPU it was tuned on */
    const char *vendor;
    int tier;                   /* mct_tier of that CPU (the ladder matches on it) */
    int isa;                    /* mct_isa_id its code is compiled for (runtime/cpu.h), lowered
                                 * for the CPU's tier: it needs mct_isa_code_tier(isa, tier) */
    int nentries;
    const mct_rt_entry *entries;
    unsigned nslots;
    const int *slots;
    int nkernels;
    const mct_rt_kernel *kernels;
    unsigned exts;              /* the ISA extensions its code uses beside that tier (MCT_EXT_*,
                                 * runtime/cpu.h; AVX-VNNI): runs only where mct_cpu_exts of the
                                 * host at its tier has them all */
} mct_rt_table;

/* Rungs of the ladder, as NAME_cpu() names them. */
enum { MCT_RT_RUNG_EXACT = 0, MCT_RT_RUNG_VENDOR_TIER, MCT_RT_RUNG_TIER, MCT_RT_RUNG_GENERIC,
       MCT_RT_RUNG_FORCED };

#define MCT_RT_SEEN 512 /* distinct debug lines remembered (logging stops when full) */

/* A generated library: the tables and generic kernels (const, generated) and the state the
 * runtime fills once (thread-safe). */
typedef struct mct_rt_lib {
    const char *name;           /* library name, as in NAME_sgemm */
    const char *env_cpu;        /* "NAME_CPU" */
    const char *env_debug;      /* "NAME_DEBUG" */
    int ntables;
    const mct_rt_table *const *tables;
    /* generic kernels: [isa][layout][beta], correct for every shape and stride */
    mct_rt_kernel_fn generic[MCT_ISA_COUNT][2][2];
    /* state: written once by mct_rt_init */
    int state;                  /* 0 not started, 1 initializing, 2 ready */
    const mct_rt_table *table;  /* NULL: generic kernels only */
    int rung;
    int gisa;                   /* mct_isa_id of the generic kernels used */
    int debug;
    int nthreads;               /* NAME_set_num_threads; 0: OpenMP's current maximum */
    char desc[320];             /* what NAME_cpu() returns */
    uint64_t seen[MCT_RT_SEEN]; /* debug: hashes of the lines already logged */
} mct_rt_lib;

/* A 64-bit finalizer (murmur3's fmix64), the mixing step of mct_rt_shape_hash. */
static inline uint64_t mct_rt_mix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

/* The hash the generator and the runtime agree on (batch and group count for bmm only). */
static inline uint64_t mct_rt_shape_hash(const mct_rt_shape *s)
{
    uint64_t h = (uint64_t)s->op | (uint64_t)s->layout << 2 | (uint64_t)s->bias << 3 |
                 (uint64_t)s->act << 4 | (uint64_t)s->beta << 7;
    h = mct_rt_mix(h ^ (uint64_t)s->N * 0x9e3779b97f4a7c15ull);
    h = mct_rt_mix(h ^ (uint64_t)s->K * 0x9e3779b97f4a7c15ull);
    if (s->op == MCT_RT_BMM)
        h = mct_rt_mix(h ^ ((uint64_t)s->batch << 32 | (uint64_t)s->group));
    if (s->wfmt)  /* f32 shapes hash as they always did */
        h = mct_rt_mix(h ^ ((uint64_t)s->wfmt << 40 | (uint64_t)s->wgroup) * 0xc2b2ae3d27d4eb4full);
    return h;
}

/* 1 when a and b select the same kernels (batch and group compared for bmm only), else 0. */
static inline int mct_rt_shape_eq(const mct_rt_shape *a, const mct_rt_shape *b)
{
    return a->N == b->N && a->K == b->K && a->op == b->op && a->layout == b->layout &&
           a->bias == b->bias && a->act == b->act && a->beta == b->beta &&
           a->wfmt == b->wfmt && a->wgroup == b->wgroup &&
           (a->op != MCT_RT_BMM || (a->batch == b->batch && a->group == b->group));
}

/* The CPU fallback ladder, written once (the runtime's table choice and the database's
 * mct_db_get_best_ladder both call it): the rung on which kernels tuned on a CPU (key, vendor,
 * tier, whose code needs tier isa_tier: mct_isa_code_tier) serve the host: MCT_RT_RUNG_EXACT
 * (same key), MCT_RT_RUNG_VENDOR_TIER (same vendor and tier), MCT_RT_RUNG_TIER (same tier), else
 * MCT_RT_RUNG_GENERIC (not usable: another tier, or code the host cannot run). A pure function
 * of its arguments; cannot fail. The ISA extensions of a table's code (mct_rt_table.exts) are
 * compiled code's, not a schedule's, so mct_rt_choose checks them beside the ladder: a table
 * whose code uses one the host lacks is on no rung (the database's records are schedules, which
 * the host lowers for its own target). */
int mct_rt_rung_of(const mct_cpu *host, mct_tier host_tier, uint64_t key, const char *vendor,
                   int tier, int isa_tier);

/* Picks the table (the ladder, NAME_CPU, NAME_DEBUG) and fills L's state once; every entry point
 * calls it, cheap after the first call. Thread-safe: concurrent first callers wait for the one
 * that probes. Cannot fail: a refused NAME_CPU goes to stderr as "NAME: why" and the ladder's
 * choice is used; NAME_DEBUG logs the decision to stderr. */
void mct_rt_init(mct_rt_lib *L);

/* Same decision without the environment or the once-guard, for tests and tools: the host record
 * and tier, the forced choice (NULL/"" for none: a CPU key or a tier name). Tables whose code
 * uses an ISA extension the host lacks at host_tier (mct_cpu_exts) are never chosen: the ladder
 * passes over them, a forced tier picks only tables the host runs. Returns 0 with msg "" (a
 * forced tier with no table of its own gives *table NULL, rung MCT_RT_RUNG_FORCED), or on a
 * refused force MCT_EINVAL (no table with that key; neither a key nor a tier) or
 * MCT_EUNSUPPORTED (a table or tier above host_tier, or a table by key using an extension the
 * host lacks), with msg set and *table, *rung, *gisa the ladder's choice anyway. *table points
 * into L; msg (msglen bytes) may be NULL only when msglen is 0. */
int mct_rt_choose(const mct_rt_lib *L, const mct_cpu *host, mct_tier host_tier,
                  const char *force, const mct_rt_table **table, int *rung, int *gisa,
                  char *msg, size_t msglen);

/* The tuned kernel for (shape, M) in table t (NULL: none) for a caller with a budget of
 * `threads` threads (>= 1), or NULL. Among the shape's kernels (with MCT_RT_RAW in flags only
 * those that take B as given, packed_size NULL) it takes the largest tuned thread count at or
 * below the budget (the smallest tuned count when all are above it), then the nearest M
 * (mct_rt_m_nearer), then the higher measured GFLOP/s. NULL when t is NULL or lacks the shape;
 * the pointer is into t (generated, static). */
enum { MCT_RT_RAW = 1 };
const mct_rt_kernel *mct_rt_lookup(const mct_rt_table *t, const mct_rt_shape *s, long M,
                                   int threads, int flags);

/* The thread budget of a call: NAME_set_num_threads's value, else (0) OpenMP's current maximum
 * (1 inside a parallel region, or when the library is built without OpenMP, or with clang,
 * whose kernels run on the calling thread). */
int mct_rt_threads(const mct_rt_lib *L);
/* Sets the budget; n = 0 returns to OpenMP's maximum. MCT_EINVAL for n < 0 or n > 4096. */
int mct_rt_set_num_threads(mct_rt_lib *L, int n);

/* Entry points behind NAME_sgemm, NAME_matmul, NAME_bmm (the generated NAME.h states their
 * arguments). Each runs mct_rt_init first and returns 0 or a negative code:
 *   MCT_EINVAL        bad order, transpose, layout, activation or beta; a negative size; a
 *                     leading dimension below its row length; a NULL operand that would be read;
 *                     a matrix (bmm: the last head) spanning more than PTRDIFF_MAX bytes; bmm
 *                     also batch < 0, group < 1 or not dividing batch, a negative stride.
 *                     Nothing is written.
 *   MCT_ENOMEM        a temporary (a prepacked kernel's B, the generic path's transposed A or
 *                     staging buffer) or the kernel's own buffer; C may then be partly written.
 *   MCT_EUNSUPPORTED  the library holds no generic kernel usable here (mct_rt_generic).
 * Sizes of 0 return 0 (sgemm with K 0 or alpha 0 only scales C by beta; with K 0 matmul writes
 * act(bias) and bmm zeros, or adds them with beta 1). sgemm takes cblas's codes (order 101/102,
 * transpose 111/112/113; 113 reads as 112). tuned_only: return MCT_ENOTFOUND, writing nothing,
 * whenever the call would not run a tuned kernel, bad arguments included (the cblas drop-in
 * forwards those). threads: sgemm's thread budget for this call (the drop-in passes the thread
 * count of the library it stands in for); 0: the library's (mct_rt_threads). */
int mct_rt_sgemm(mct_rt_lib *L, int order, int transA, int transB, long M, long N, long K,
                 float alpha, const float *A, long lda, const float *B, long ldb, float beta,
                 float *C, long ldc, int tuned_only, int threads);
int mct_rt_matmul(mct_rt_lib *L, int layout, long M, long N, long K, const float *A, long lda,
                  const float *B, long ldb, float *C, long ldc, const float *bias, int act,
                  int beta);
int mct_rt_bmm(mct_rt_lib *L, int layout, long batch, long group, long M, long N, long K,
               const float *A, long lda, long sA, const float *B, long ldb, long sB, float *C,
               long ldc, long sC, int beta);

/* A B prepacked for the kernels of L's chosen table. mct_rt_prepack_b copies B (the caller's may
 * go away) and packs it for every prepacking kernel of the table's matmul entries with that
 * (layout, N, K). On success *out is owned by the caller and freed with mct_rt_packed_free
 * (with another library it only takes the unpacked path). Returns 0, MCT_EINVAL (out NULL, bad
 * layout, N or K < 1, B NULL, ldb too small, span overflow) or MCT_ENOMEM, *out NULL then.
 * mct_rt_matmul_packed is mct_rt_matmul with B, layout, N and K taken from P, with its errors
 * (MCT_EINVAL also for P NULL). mct_rt_packed_free: NULL is ignored. */
typedef struct mct_rt_packed mct_rt_packed;
int mct_rt_prepack_b(mct_rt_lib *L, int layout, long N, long K, const float *B, long ldb,
                     mct_rt_packed **out);
int mct_rt_matmul_packed(mct_rt_lib *L, const mct_rt_packed *P, long M, const float *A,
                         long lda, float *C, long ldc, const float *bias, int act, int beta);
void mct_rt_packed_free(mct_rt_packed *P);

/* Low-precision weights (runtime/quant.h; fmt as keys spell it: "bf16", "i8", "q4gG"; "f32"
 * is mct_rt_prepack_b). mct_rt_prepack_b_fmt quantizes the f32 B (layout and ldb as for
 * mct_rt_prepack_b) into the format's plain layout; mct_rt_prepack_b_quantized copies a plain
 * layout the caller made (mct_rt_q_quantize, or mct_rt_q_assemble from an engine's files) of
 * `bytes` bytes, which must be exactly mct_rt_q_plain_bytes. Either then packs the weights for
 * every kernel of the chosen table tuned for (N, K, format) (the f32 layout the weights had does
 * not matter once quantized). mct_rt_matmul_packed then runs the format's kernel for the call's
 * M and thread budget (a kernel tuned with either layout), or, for a shape and format the table
 * does not hold, dequantizes blocks of channels and runs the generic path (mct_rt_generic_q).
 * Returns 0 with *out the caller's (mct_rt_packed_free), or MCT_EINVAL (out NULL; an unknown
 * format; N or K below 1, or K not a multiple of the q4 group; B or plain NULL, a bad layout or
 * ldb; a size that differs from the format's, or a non-finite weight in an i8/q4 channel), with
 * the reason on stderr as "NAME: ...", or MCT_ENOMEM; *out NULL then. */
int mct_rt_prepack_b_fmt(mct_rt_lib *L, const char *fmt, int layout, long N, long K,
                         const float *B, long ldb, mct_rt_packed **out);
int mct_rt_prepack_b_quantized(mct_rt_lib *L, const char *fmt, long N, long K, const void *plain,
                               size_t bytes, mct_rt_packed **out);

/* 1 when the chosen table holds a tuned kernel for the shape (any M: the nearest tuned M serves),
 * 0 when not, MCT_EINVAL for a bad op, layout, act or beta or a size below 1. batch and group
 * count for MCT_RT_BMM only; bias is 0 or nonzero. */
int mct_rt_is_tuned(mct_rt_lib *L, int op, int layout, long M, long N, long K, long batch,
                    long group, int bias, int act, int beta);
/* What NAME_cpu() returns: the chosen table and rung in words (runs mct_rt_init). Points into L,
 * valid as long as L; never NULL. */
const char *mct_rt_cpu(mct_rt_lib *L);

/* generic.c: the path for every shape the tables do not hold: C = beta*C + alpha*act(A*B + bias),
 * C read only when beta != 0. transA: A is stored [K,M] (lda >= M). Arguments are already
 * checked; M, N, K >= 1. Returns 0, MCT_EUNSUPPORTED (L has no generic kernel for this layout at
 * or below L->gisa), MCT_ENOMEM (the transposed A or the staging buffer) or the kernel's code. */
int mct_rt_generic(const mct_rt_lib *L, int transA, int layout, long M, long N, long K,
                   float alpha, const float *A, long lda, const float *B, long ldb, float beta,
                   float *C, long ldc, const float *bias, int act);

/* generic.c: the path for low-precision weights of a shape or format the tables do not hold:
 * out = act(A*B + bias), C = out (beta 0) or C += out (beta 1), B the plain layout of (fmt,
 * group, N, K) (runtime/quant.h), dequantized a block of channels at a time (a bounded
 * temporary) and multiplied by the generic kernels. Arguments are already checked; M, N, K >= 1.
 * Returns 0, MCT_ENOMEM, or mct_rt_generic's codes. */
int mct_rt_generic_q(const mct_rt_lib *L, int fmt, int group, long M, long N, long K,
                     const float *A, long lda, const void *plain, float *C, long ldc,
                     const float *bias, int act, int beta);

/* out = act(v) exactly as the generated kernels compute it; an act outside MCT_RT_ACT_* gives
 * v. */
float mct_rt_act(int act, float v);

#endif
