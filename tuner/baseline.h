/* mctune baselines: the libraries a serving team would otherwise call, loaded for comparison.
 *
 * One place decides, for every benchmark, `mctune measure --baseline`, the demo and the decoder
 * block, which libraries a tuned kernel is compared with and how they are labelled:
 *
 *   MCT_BASE_OPENBLAS         OpenBLAS with the core it picks itself (openblas_get_corename())
 *   MCT_BASE_OPENBLAS_FORCED  OpenBLAS loaded again in a separate link namespace (dlmopen) with
 *                             OPENBLAS_CORETYPE set to the best core it has for this CPU family
 *                             (mct_base_openblas_cores), verified by reading the core name back;
 *                             "does not apply" when that is the core it picks itself
 *   MCT_BASE_ONEDNN           oneDNN (libdnnl.so.2, dnnl_sgemm), labelled with dnnl_version() and
 *                             dnnl_get_effective_cpu_isa()
 *   MCT_BASE_BLIS             BLIS (libblis.so.4), in its own link namespace, since it exports
 *                             cblas_sgemm and sgemm_ as OpenBLAS does
 *
 * Every library is loaded with dlopen/dlmopen, so a program linking this module builds and runs
 * when any of them is absent: opening it then answers MCT_ENOTFOUND with a message saying what to
 * install. M = 1 goes to the library's gemv (sgemv, or dnnl_sgemm at M=1, which oneDNN routes to
 * its gemv), as serving engines call it.
 *
 * The choice follows the probed CPU (runtime/cpu.h), capped at the tier this process uses
 * (mct_cpu_tier(), so MCTUNE_TIER=avx2 on an AVX-512 machine compares with the AVX2 cores and
 * limits oneDNN to AVX2 through dnnl_set_max_cpu_isa). Nothing here names a CPU it did not read.
 */
#ifndef MCT_BASELINE_H
#define MCT_BASELINE_H

#include <stddef.h>

#include "runtime/cpu.h"

typedef enum {
    MCT_BASE_OPENBLAS = 0,
    MCT_BASE_OPENBLAS_FORCED = 1,
    MCT_BASE_ONEDNN = 2,
    MCT_BASE_BLIS = 3,
    MCT_BASE_COUNT = 4
} mct_base_kind;

/* Short name of a kind: "openblas", "openblas-forced", "onednn", "blis"; "?" out of range. */
const char *mct_base_kind_name(mct_base_kind k);

/* The OpenBLAS cores (OPENBLAS_CORETYPE names) worth forcing on CPU c when it runs code of tier
 * `tier` at most (pass mct_cpu_tier(), or MCT_TIER_COUNT for no cap), best first, into
 * out[0..max-1]; returns how many (0: none better than OpenBLAS's own generic choice, e.g. an
 * SSE-only CPU). Static strings. Cannot fail. The rule, by vendor and ISA:
 *   AMD/Hygon with AVX2+FMA (Zen 1-5): "Zen" (its AVX2 kernels; on Zen 4, whose AVX-512 runs as
 *     2x256, OpenBLAS picks Cooperlake itself and Zen is the faster second);
 *   AVX-512 with AMX: "SapphireRapids", then "Cooperlake", "SkylakeX" (for OpenBLAS builds that
 *     lack the newer core); AVX-512 with BF16: "Cooperlake", "SkylakeX"; AVX-512: "SkylakeX";
 *   other AVX2+FMA: "Haswell"; AVX only: "Sandybridge"; else none. */
int mct_base_openblas_cores(const mct_cpu *c, mct_tier tier, const char **out, int max);

/* The dnnl_cpu_isa_t value to pass to oneDNN's dnnl_set_max_cpu_isa so that it runs no more than
 * `tier` on CPU c: 0 when the tier is at or above the CPU's own (no cap). */
int mct_base_onednn_isa_cap(const mct_cpu *c, mct_tier tier);
/* The name of a dnnl_cpu_isa_t value (oneDNN 2.x): "avx2", "avx512_core_amx", ...; "isa?" for
 * one it does not know. Static string. */
const char *mct_base_onednn_isa_name(int isa);

typedef struct mct_base_lib mct_base_lib;  /* opaque */

/* Loads library `kind` for comparisons on this host (cpu: mct_cpu_host(); tier: mct_cpu_tier()).
 * Returns 0 and *out (the caller's, released with mct_base_close), or with *out NULL:
 * MCT_EINVAL (kind out of range, cpu NULL), MCT_ENOTFOUND when the library is not installed or
 * lacks its calls, MCT_ENOTAPPLIC for MCT_BASE_OPENBLAS_FORCED when no forced core differs from
 * OpenBLAS's own choice or none could be verified, MCT_ENOMEM; err (may be NULL) says why. */
int mct_base_open(mct_base_kind kind, const mct_cpu *cpu, mct_tier tier, mct_base_lib **out,
                  char *err, size_t errlen);
/* Frees l (NULL is ignored). The library itself stays loaded: it is never dlclose'd. */
void mct_base_close(mct_base_lib *l);

/* The label, e.g. "OpenBLAS 0.3.21 core Zen (its own choice)", "OpenBLAS 0.3.21 core SkylakeX
 * (forced with OPENBLAS_CORETYPE; its own choice here is Haswell)", "oneDNN 2.6.3 dnnl_sgemm,
 * ISA avx512_core_bf16", "BLIS 0.9.0, skx kernels". Owned by l, valid until mct_base_close. */
const char *mct_base_label(const mct_base_lib *l);
/* A short column name: "OpenBLAS Zen", "OpenBLAS SkylakeX*", "oneDNN", "BLIS". Owned by l, valid
 * until mct_base_close. */
const char *mct_base_short(const mct_base_lib *l);
/* The kind l was opened as. */
mct_base_kind mct_base_kind_of(const mct_base_lib *l);
/* OpenBLAS kinds: the core read back from the library ("Zen", "SkylakeX"); else "". Owned by l,
 * valid until mct_base_close. */
const char *mct_base_core(const mct_base_lib *l);

/* Threads the library uses from now on (openblas_set_num_threads, omp_set_num_threads through
 * oneDNN's OpenMP runtime, bli_thread_set_num_threads). Returns the count the library reports
 * back afterwards (0 when it cannot say). */
int mct_base_set_threads(mct_base_lib *l, int n);

/* C[M,N] = A[M,K] * op(B) + beta*C, row-major; nt 1: B stored [N,K], 0: [K,N]. Sizes and leading
 * dimensions must fit in an int for the cblas libraries; nothing is checked and no error is
 * reported (the same for mct_base_sgemv). */
void mct_base_sgemm(const mct_base_lib *l, int nt, long M, long N, long K, const float *A,
                    long lda, const float *B, long ldb, float beta, float *C, long ldc);
/* The M = 1 call a serving engine makes: c[N] = op(B) a + beta*c through the library's gemv
 * (oneDNN: dnnl_sgemm at M=1). */
void mct_base_sgemv(const mct_base_lib *l, int nt, long N, long K, const float *B, long ldb,
                    const float *a, float beta, float *c);

#endif
