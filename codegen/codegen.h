/* mctune codegen: workloads, the schedule IR and its transformations, lowering to C.
 *
 * A workload is an op plus everything that changes its code (dtype, layout, shape, epilogue).
 * A schedule is a workload's loop nest after a sequence of transformations from the fixed set O
 * (tile, reorder, vectorize, unroll, parallel, cache_write, buffer, pack, prepack, fuse_epilogue,
 * prefetch, and drop, which removes an earlier step). Its canonical text lists the *resulting*
 * state as a normalized transformation sequence, so two sequences that build the same program
 * print (and hash) the same, and parse(print(s)) prints the same bytes.
 *
 * Generated kernel ABI (every lowered kernel has exactly this signature; its one definition is
 * MCT_RT_KERNEL_PARAMS in runtime/dispatch.h, which the lowering prints; see mct_cg_lower_c):
 *
 *   int  FN(long M, long N, long K,
 *           const float *A, long lda,          A[M,K] row-major (row stride lda >= K)
 *           const float *B, long ldb,          nn: B[K,N] (ldb >= N); nt: B[N,K] (ldb >= K);
 *                                              with prepack: the buffer FN_pack_b filled
 *           float *C, long ldc,                C[M,N] row-major (ldc >= N)
 *           const float *bias,                 N floats, or NULL when the workload has none
 *           long batch, long group,            bmm: batch heads, `group` query heads per
 *           long sA, long sB, long sC);        kv head; element strides between heads of
 *                                              A, B (per kv head) and C. matmul: 1, 1, 0, 0, 0.
 *
 *   out = act(A*B + bias);  C = out (beta 0)  or  C += out (beta 1).
 *   Returns 0, or -2 (MCT_ENOMEM) when a packing or scratch buffer cannot be allocated (C is then
 *   not fully written).
 *
 * Kernels are correct for every M, N, K >= 1 (no tile size is assumed to divide a size); the
 * workload's sizes are what they were tuned for. With prepack(B) the source also defines
 *   size_t FN_packed_size(long N, long K);   floats needed for the packed B
 *   void   FN_pack_b(long N, long K, const float *B, long ldb, float *Bp);
 *
 * Low-precision weights (a workload with w=FMT): the kernel always takes B as the buffer its
 * FN_pack_b filled (so both functions are always defined), and FN_pack_b's input B is the
 * format's plain layout (runtime/quant.h; cast to const float *, ldb unused), which
 * mct_rt_q_quantize makes from f32 weights and mct_rt_q_assemble from an engine's own files:
 *   without prepack(B): the plain layout itself (FN_pack_b copies it);
 *   with prepack(B, PANEL[, KCHUNK]): the f32 prepack order of elements (panels, k chunks),
 *     each element in the format's type (bf16 2 bytes, i8 1 byte, q4 one nibble: element e of
 *     the packed order in the low nibble of byte e/2 when e is even), padding elements 0; then
 *     at the data size rounded up to 16 bytes the scales exactly as in the plain layout.
 * Weights are widened to f32 where the schedule says (widen(B, reg): at each load, the default;
 * widen(B, panel): into the f32 panel of pack(B, ...) inside the kernel) and multiplied by their
 * scale there (i8: per channel; q4: per (channel, group) on the widened weight), then the f32
 * arithmetic runs as for f32 weights; or never (widen(B, dot): A rounded per row and integer or
 * bf16 dot products; widen(B, amx): the same rounding and AMX tiles; see mct_cg_dot_path).
 * Parallel loops use OpenMP when compiled with -fopenmp and run serially otherwise.
 */
#ifndef MCT_CODEGEN_H
#define MCT_CODEGEN_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/cpu.h"
#include "runtime/mct_err.h"
#include "runtime/quant.h"

typedef enum { MCT_OP_MATMUL = 0, MCT_OP_BMM = 1 } mct_op;
typedef enum { MCT_NN = 0, MCT_NT = 1 } mct_layout;
typedef enum { MCT_ACT_NONE = 0, MCT_ACT_RELU, MCT_ACT_GELU, MCT_ACT_SILU } mct_act;

typedef struct mct_workload {
    mct_op op;
    mct_layout layout;
    int64_t M, N, K;
    int64_t batch;  /* bmm: number of query heads (1 for matmul) */
    int64_t group;  /* bmm: query heads sharing one key/value head, divides batch (1: MHA) */
    int bias;       /* 1: add bias[N] before the activation */
    mct_act act;
    int beta;       /* 0: C = out; 1: C += out */
    int braw;       /* 1 (key " b=raw"): the kernel takes B as the caller stores it; no
                       prepack(B) (B may still be packed inside the kernel with pack). matmul
                       only: the variant behind entry points that cannot prepack B. 0: B may
                       be prepacked ahead of time by FN_pack_b (every key without b=). */
    int wfmt;       /* weight format of B (key " w=FMT", runtime/quant.h): MCT_RT_WF_F32 (no
                       field), _BF16 ("bf16"), _I8 ("i8"), _Q4 ("q4gG"). matmul only, never with
                       b=raw. A, C, bias and the arithmetic stay f32. */
    int wgroup;     /* q4: the group size G along K (even, divides K); 0 otherwise */
} mct_workload;

/* 1 when w's weights are in a low-precision format (w= in the key). */
#define MCT_WL_QUANT(w) ((w)->wfmt != MCT_RT_WF_F32)

/* Largest size accepted for any dimension, and for M*N*K*batch products. */
#define MCT_MAX_DIM   ((int64_t)1 << 24)
#define MCT_MAX_FLOPS ((int64_t)1 << 50)

/* Parses a canonical workload key such as
 *   "matmul f32 nt M=128 N=4096 K=4096 epi=none"
 *   "matmul f32 nn M=16 N=14336 K=4096 epi=bias+silu beta=1"
 *   "matmul f32 nt M=16 N=4096 K=4096 epi=none b=raw"
 *   "bmm f32 nt B=32 G=4 M=128 N=512 K=128 epi=none"
 * Fields may come in any order after the op; unknown fields, missing sizes, zero, negative or
 * overflowing sizes are refused with MCT_EINVAL/MCT_ERANGE and a message in err naming the field.
 * "b=raw" (matmul only; no other b= value) sets braw; the canonical key carries it last, after
 * beta=1. "w=FMT" (matmul only, not with b=raw) sets wfmt/wgroup: bf16, i8 or q4gG (G even, K a
 * multiple of G, else MCT_ERANGE naming K and G); the canonical key carries it after beta=1, e.g.
 *   "matmul f32 nt M=1 N=4096 K=4096 epi=none w=q4g32"
 * (f32 weights have no w= field, so every f32 key is what it was; "w=f32" parses as f32). err may be NULL; text NULL is MCT_EINVAL. *out is written on success only. */
int mct_wl_parse(const char *text, mct_workload *out, char *err, size_t errlen);

/* Checks a workload's fields: 0, MCT_ERANGE (a size below 1 or above MCT_MAX_DIM, a group that
 * does not divide B, products too large) or MCT_EINVAL (op, layout, a matmul with B or G not 1,
 * activation, beta, a weight format that is unknown, on bmm or with b=raw; a q4 group that is odd
 * or does not divide K is MCT_ERANGE), with the message in err (may be NULL). bias is not checked: any nonzero
 * value formats as "bias". */
int mct_wl_check(const mct_workload *w, char *err, size_t errlen);

/* Writes the canonical key into buf (NUL-terminated). Returns its length, or MCT_ERANGE if
 * buf is too small (buf then holds a cut key). 256 bytes always suffice. */
int mct_wl_format(const mct_workload *w, char *buf, size_t len);

/* xxh3-128 of the canonical key. Cannot fail. */
void mct_wl_hash(const mct_workload *w, uint8_t out[16]);

/* xxh3-128 of n bytes, in canonical (big-endian) byte order: the hash every key text uses. */
void mct_hash_text(const char *s, size_t n, uint8_t out[16]);

/* The workload "family": every field but M (op, layout, N, K, batch, group, epilogue, beta,
 * b=raw: the raw variant's kernels have another ABI, so they are a family of their own; w=, the
 * weight format). Records
 * of one family differ only in the M they were tuned for; the nearest-M rule
 * (mct_rt_m_nearer, runtime/dispatch.h) picks among them. 1 when a and b are of
 * one family, else 0. */
int mct_wl_same_family(const mct_workload *a, const mct_workload *b);
/* xxh3-128 of the family: the canonical key of w with M = 1. */
void mct_wl_family_hash(const mct_workload *w, uint8_t out[16]);

/* Floating-point operations of one call: 2*M*N*K*batch. */
double mct_wl_flops(const mct_workload *w);

/* Name of the activation ("none", "relu", "gelu", "silu"; "none" for any other value). Static
 * string. */
const char *mct_act_name(mct_act a);

/* Schedules ------------------------------------------------------------------------------ */

typedef struct mct_sched mct_sched;  /* opaque; owned by the caller, freed by _destroy */

/* Code-generation target: the SIMD width in floats (16 avx512, 8 avx2, 4 sse, 1 scalar), an
 * optional GCC/Clang target attribute string for the kernel ("avx512f,avx512vl,fma", or ""),
 * the vector registers the guide's register model may assume (0: 16) and the ISA id of the
 * runtime table (runtime/cpu.h) it came from. Build targets with mct_target_of_isa; the
 * attribute string then is the table's, which `mctune gen` and the measurement harness share. */
typedef struct mct_target {
    int vlen;
    const char *attr;
    int nregs;
    int isa;
    int threads;    /* > 0: the parallel loops run on exactly this many threads (the count the
                     * kernel is tuned and shipped for); 0: OpenMP's maximum at run time */
    int tier;       /* the tier (mct_tier) the code may assume: the ISA row's own tier, or the
                     * higher tier mct_target_of_tier was given (its dot-product instructions:
                     * widen(B, dot)); 0 (generic) where a target is written by hand */
    unsigned exts;  /* the ISA extensions beside the tier the code may use (MCT_EXT_*,
                     * runtime/cpu.h: AVX-VNNI), set from a CPU record by mct_target_of_cpu and
                     * mct_target_host; 0 from mct_target_of_isa / _of_tier or by hand. Which of
                     * them a kernel uses is mct_cg_exts */
} mct_target;

/* The target of an ISA table row (runtime/cpu.h); an id out of range gives generic. attr points
 * into the static ISA table. These three cannot fail. */
mct_target mct_target_of_isa(int isa);

/* The target code for tier t is lowered for (mct_isa_of_tier), without extensions. */
mct_target mct_target_of_tier(mct_tier t);

/* The target of CPU c's code at tier t: mct_target_of_tier(t) with the extensions c has at t
 * (mct_cpu_exts; none for c NULL or a generic target). What the harness lowers for on that CPU
 * and what `mctune gen` lowers a table of that CPU for, so the shipped code is the measured one. */
mct_target mct_target_of_cpu(const mct_cpu *c, mct_tier t);

/* The target of this process: mct_target_of_cpu(mct_cpu_host(), mct_cpu_tier()) (the host's
 * tier, or MCTUNE_TIER when set, and the host's extensions at that tier). */
mct_target mct_target_host(void);

/* The untuned schedule: the plain nest (i, j, k), or (b, i, j, k) for bmm. On success *out is
 * the caller's, freed with mct_sched_destroy. Errors, *out unchanged: mct_wl_check's code for a
 * bad w (no message; call mct_wl_check for one), MCT_ENOMEM. */
int mct_sched_create(const mct_workload *w, mct_sched **out);
/* Frees s; NULL is ignored. */
void mct_sched_destroy(mct_sched *s);
/* An independent copy of s into *out (the caller's, freed with mct_sched_destroy); MCT_ENOMEM,
 * *out unchanged. */
int mct_sched_clone(const mct_sched *s, mct_sched **out);
/* The schedule's workload (M included). Points into s: valid until mct_sched_destroy(s). */
const mct_workload *mct_sched_workload(const mct_sched *s);

/* Applies transformations in order, e.g. "tile(i, 64, 8); reorder(i0, j0, k0); vectorize(j2)".
 * Separators: ';' or newline. On any failure nothing is applied (s is unchanged) and `why`
 * holds the reason: MCT_EINVAL for text that is not a transformation of O, MCT_ENOTAPPLIC when
 * it does not apply here ("vectorize j1: not the innermost loop"). why may be NULL; it is ""
 * after success. */
int mct_sched_apply(mct_sched *s, const char *text, char *why, size_t whylen);

/* drop(N), the removal of O (codegen/sched_edit.c; mct_sched_apply accepts "drop(N)" too):
 * removes step N (1-based) of the schedule's canonical sequence as mct_sched_format prints it,
 * and re-parses the steps left onto the untuned nest. Legal when they parse; otherwise
 * MCT_ENOTAPPLIC with the reason (N outside 1..steps, the untuned nest, or the step that no
 * longer applies without step N, such as a vectorize of a loop the dropped tile made), and s is
 * unchanged. MCT_ENOMEM likewise. why (whylen bytes) may be NULL; "" after success. */
int mct_sched_drop(mct_sched *s, int step, char *why, size_t whylen);

/* Parses a schedule text (NULL reads as "") onto the workload's default nest: create + apply.
 * On success *out is the caller's (mct_sched_destroy); on failure *out is unchanged and the
 * code is mct_sched_apply's, MCT_ENOMEM, or mct_wl_check's for a bad w (why then only says
 * "invalid workload"). */
int mct_sched_parse(const mct_workload *w, const char *text, mct_sched **out,
                    char *why, size_t whylen);

/* Canonical text of the schedule (normalized; "" for the untuned nest). Returns its length or
 * MCT_ERANGE when buf is too small (buf then holds a cut text; 4096 bytes always suffice). */
int mct_sched_format(const mct_sched *s, char *buf, size_t len);

/* xxh3-128 of the canonical schedule text. Cannot fail. */
void mct_sched_hash(const mct_sched *s, uint8_t out[16]);

/* 1 when the schedule prepacks B (the kernel then expects FN_pack_b's buffer), else 0. */
int mct_sched_prepacked(const mct_sched *s);

/* The schedule s carried over to the b=raw variant of its workload (braw set, every other field
 * the same), as a transfer seed: prepack(B, PANEL[, KCHUNK]) becomes pack(B, L, PANEL), the same
 * panel layout copied inside the kernel, at the loop L where the copy costs least. L is the loop
 * just outside the first i loop after the outermost loop that iterates more than once at the
 * workload's M (the last loop when there is none): B is then copied once per call, or once per
 * block of an outermost i loop. L is no deeper than the cache_write loop (the last loop but one
 * without cache_write), and moves outward while the j block inside it is narrower than a panel.
 * When pack(B) at L is not legal, the loops outside it are tried in turn, then the pack is
 * dropped. KCHUNK goes: the copy at L is already chunked by the k block there. A schedule
 * without prepack is carried over unchanged. *out (the caller destroys it) is legal for the b=raw
 * workload. Returns 0; MCT_EINVAL when the workload is bmm or has low-precision weights (no
 * b=raw variant); MCT_ENOTAPPLIC
 * when no legal schedule results (a vectorized j loop that needs the pack nowhere legal);
 * MCT_ENOMEM. */
int mct_sched_without_prepack(const mct_sched *s, mct_sched **out);

/* The register tile a schedule computes per step, as generated kernel names carry it ("6x32"):
 * rows, the unroll factor of the innermost unrolled i loop (1 when none); columns, the innermost
 * j block when a j loop is vectorized and j is tiled, else the unroll factor of the innermost
 * unrolled j loop, else 1. Returns 0. */
int mct_sched_reg_tile(const mct_sched *s, int *rows, int *cols);

/* Names of the loops in nest order, for guides and mutations: writes up to max pointers into
 * names and returns the count. The names are in thread-local storage, whatever the schedule:
 * valid until the next mct_sched_loops call on the same thread. */
int mct_sched_loops(const mct_sched *s, const char **names, int max);

/* A random legal schedule for w, drawn from the whole space (tiles that need not divide the
 * sizes, orders, packs, register tiles in both vector forms, parallel loops, prefetches; no
 * prepack for a b=raw workload).
 * *rng is a 64-bit state advanced by the call; vlen is the SIMD width the schedule is meant
 * for (it only biases the draws; any schedule lowers for any width). Returns 0 with *out the
 * caller's (mct_sched_destroy): the untuned nest when 200 draws found nothing legal or a copy
 * could not be allocated. Errors, *out unchanged: those of mct_sched_create. */
int mct_sched_random(const mct_workload *w, uint64_t *rng, int vlen, mct_sched **out);

/* mct_sched_random for target t (its vlen; NULL: scalar): on a dot-form register tile of a
 * w=bf16/i8/q4 workload it also draws widen(B, dot) where mct_cg_dot_path says t takes it (never
 * elsewhere: the harness refuses a dot that is not one). mct_sched_random is this with
 * mct_target_host() where vlen is that target's width, else a target of width vlen without dot
 * products; mct_sched_mutate flips widen(B, reg|dot) by the same rule. Same returns. */
int mct_sched_random_for(const mct_workload *w, uint64_t *rng, const mct_target *t,
                         mct_sched **out);

/* One random legal edit of s (a tile factor, two adjacent loops swapped, unroll, parallel,
 * cache_write, pack, prefetch, fused epilogue, widen(B, reg|dot) of low-precision weights), for
 * mutation and MCTS fallback. Returns 0 with a short description in what (len bytes, may be
 * NULL), e.g. "tile i level 1: 64 -> 32" or "swap i0 and j0": words for a log, not
 * transformation text. MCT_ENOTAPPLIC when none of 64 tries gave a legal, different schedule; s
 * and what are then unchanged. It never adds a prepack. */
int mct_sched_mutate(mct_sched *s, uint64_t *rng, int vlen, char *what, size_t len);

/* Lowering ------------------------------------------------------------------------------- */

/* Readable loop-nest pseudo-code (what a reasoning guide reads); t may be NULL (scalar). *out is
 * malloc'ed, the caller free()s it. MCT_EINVAL (s or out NULL; *out unchanged) or MCT_ENOMEM
 * (*out NULL). */
int mct_cg_lower_pseudo(const mct_sched *s, const mct_target *t, char **out);

/* prefetch(A|B|C, L, D) lowers as: A or B at a loop outside the register tile, one element of
 * L's iteration D ahead at the top of L's body; inside the tile (L a k loop), the tile's rows or
 * columns D iterations of L ahead at each k step; C, the output rows a tile will write D
 * iterations of L ahead, for writing, before its k loop. One spread form: prefetch(B, L, D) at a
 * j loop at or outside the register tile (of an f32 tile with j vectorized and B along j:
 * prepacked or packed j panels, or plain nn rows, packed at a loop outside L or at L itself) with
 * only i loops between L and the tile. Every tile inside one iteration of L then reads the same
 * block of B (L's columns over the tile's k range), and the block of L's iteration D ahead is
 * prefetched into L2 while they run (packed at L itself: that block's elements of B where they
 * are, which L's next pack copies; then the tile's k step and the i block must be constants): each tile takes its share of that block's cache lines (by its
 * ordinal among the tiles of L's body), one line every few k steps, so the next micro-panel of
 * B has arrived before its first tile starts instead of that tile waiting on memory.
 *
 * buffer(C, X) lowers as: at the top of X's body, X's block of C (its i and j blocks, constant
 * sizes) gets a buffer of rows cb_ld floats apart, cb_ld the block's width rounded up to an odd
 * number of 64-byte lines; the register tiles inside X write back into it (= on the first k
 * block, += after, no epilogue); after X's body the block is written to C once: C = act(W +
 * bias), or C += with beta=1. The rows of one tile then fall into different L1 sets whatever
 * the caller's ldc is (with ldc a multiple of 1024 floats every row of a tile of C maps to the
 * same sets), and a block that stays in L2 over the reduction is read and written there, C
 * itself only once. One buffer per thread when the parallel loop is X or outside it.
 *
 * A C11 translation unit defining the kernel FN (see the ABI above), static helpers only
 * otherwise. It starts with a comment naming the generator version, workload and schedule.
 * t may be NULL (scalar, no target attribute); fn is used as given (a C identifier). *out is
 * malloc'ed, the caller free()s it. MCT_EINVAL (s, fn or out NULL; *out unchanged) or
 * MCT_ENOMEM (*out NULL). */
int mct_cg_lower_c(const mct_sched *s, const mct_target *t, const char *fn, char **out);

/* widen(B, dot) (codegen/lower.c): the weights are not widened; the kernel rounds A once per
 * call, row by row, and the target's dot-product instructions multiply:
 *   i8, q4: A to int8 with a per-row scale max|a|/127 (round to nearest even), products summed
 *     exactly in int32; i8: vpdpbusd on 512-bit vectors (tier avx512-bf16-vnni and above: A
 *     shifted to a + 128, minus 128 * sum(w) per channel) or on 256-bit vectors where the target
 *     has AVX-VNNI (t->exts & MCT_EXT_AVXVNNI, tiers avx2 and avx512: the VEX vpdpbusd, the same
 *     shift), else vpmaddubsw + vpmaddwd on 256-bit vectors (avx2, avx512: |w| times a with w's
 *     sign, so no int16 sum saturates); q4 the same instructions on the nibbles as unsigned q + 8,
 *     minus 8 * sum(a) per block, each block of whole groups (G a multiple of 32) converted and
 *     multiplied by its scale. The result carries
 *     A's rounding: |C - C_f32| <= a_scale[i]/2 * sum_k |w(k, j)| (plus f32 rounding).
 *   bf16: A to bf16 (round to nearest even), vdpbf16ps (avx512-bf16): relative rounding of each
 *     a <= 2^-8, so |C - C_f32| <= 2^-8 * sum_k |a(i, k) w(k, j)| (plus f32 rounding).
 * The path needs the fast dot form (k vectorized innermost, B read along k) and the tier's
 * instruction; elsewhere the kernel runs the widen(B, reg) code (and the pseudo-code says why).
 * Returns MCT_CG_DOT_NONE when s has neither widen(B, dot) nor widen(B, amx); MCT_CG_DOT_INT8 or MCT_CG_DOT_BF16 (how A
 * is rounded) when the kernel lowered for t (NULL: scalar) takes the path; MCT_ENOTAPPLIC with the
 * reason in why (len bytes, may be NULL) when s asks for it and the kernel cannot; MCT_EINVAL for
 * s NULL. */
/* widen(B, amx) (codegen/lower_amx.c): AMX tiles on bf16 (tdpbf16ps on A rounded to bf16), i8 or
 * q4 weights (tdpbssd, s8 x s8 summed exactly in int32, on A rounded to int8 per row; i8: the sum
 * times a_scale[i] * w_scale[j]; q4: the nibbles staged as int8 tiles once per 16-column strip,
 * one int32 tile sum per group times its scale, summed in f32, times a_scale[i]). A is rounded
 * exactly as for widen(B, dot), so mct_cg_dot_path answers MCT_CG_DOT_BF16 or MCT_CG_DOT_INT8 and
 * the same bound holds. It needs tier amx on an avx512 target; w=bf16, i8, or q4gG with G a
 * multiple of 32; a cache_write whose block is the tile block (1..16 rows of C, or 32 in two
 * tiles; 16 or 32 columns); every tiled k block a multiple of the tile's k step (32: bf16, and q4
 * with G not a multiple of 64; else 64); no pack or prepack; K <= 65536 for i8. Elsewhere the
 * kernel runs the widen(B, reg) code and mct_cg_dot_path returns MCT_ENOTAPPLIC with the reason.
 * Of the nest only the block shape and whether a loop is parallel are kept (j blocks outermost, K
 * whole in tile steps). The kernel asks the OS for the tile state once per process (Linux
 * arch_prctl ARCH_REQ_XCOMP_PERM); where that is refused it returns MCT_EUNSUPPORTED (-15) without
 * touching C or executing a tile instruction. Its FN_pack_b writes B in whole tiles (VNNI pairs or
 * quads of k per column, zero padding; q4 as nibbles), with FN_packed_size to match. */
enum { MCT_CG_DOT_NONE = 0, MCT_CG_DOT_INT8 = 1, MCT_CG_DOT_BF16 = 2 };
int mct_cg_dot_path(const mct_sched *s, const mct_target *t, char *why, size_t len);

/* The extensions of t->exts (MCT_EXT_*) that s's kernel lowered for t uses, which its target
 * attribute then names and a CPU must have to run it (today AVX-VNNI, for widen(B, dot)'s
 * 256-bit path); 0 for every other kernel, for s NULL and for t NULL. Cannot fail. */
unsigned mct_cg_exts(const mct_sched *s, const mct_target *t);

#define MCT_CG_VERSION "mctune-cg 1"

/* The tool's version, named in records (`tool`), generated files and `mctune --version`. */
#define MCT_VERSION "0.1.0"
#define MCT_TOOL "mctune " MCT_VERSION

/* Features of the lowered program, for the learned cost model (tuner/costmodel.h) ------------ */

/* Version of the feature vector's layout: a saved model trained on another version is refused
 * and retrained from the database's trials. Bump it with any change to mct_cg_features. */
#define MCT_CG_FEATURE_VERSION 2
#define MCT_CG_NFEATURES 63

/* Writes the MCT_CG_NFEATURES features of s lowered for t on cpu into out[0..n) (n >= the count;
 * the rest of out is zeroed): the workload's sizes, blocks per level of i, j and k, the loop order,
 * the register tile against the register file (t->nregs, 0: 16) and the vector width (t->vlen),
 * whether the register tile is the lowering's straight-line fast path and the share of C it covers
 * in whole tiles, bytes moved per FLOP into L1, L2, L3 (cpu->cache_kb; unknown sizes read as 32
 * KiB, 1 MiB, 8 MiB) and from memory for the blocks the nest iterates (B at the bytes its weight
 * format stores, scales included: weight_bytes; widen_panel when it is widened into a panel), packing and prepacking,
 * prefetch distances, unroll factors, the parallel loop's iterations and their balance on
 * t->threads (0: cpu->cores, else 1), the epilogue. t and cpu may be NULL (scalar, unknown caches).
 * Deterministic. Returns the count, or MCT_EINVAL (s or out NULL, n too small). */
int mct_cg_features(const mct_sched *s, const mct_target *t, const mct_cpu *cpu, float *out,
                    int n);

/* Name of feature i ("block_i2", "bytes_per_flop_l2", ...); "?" out of range. Static string. */
const char *mct_cg_feature_name(int i);

/* The analytical estimate of a feature vector (n >= MCT_CG_NFEATURES): a roofline of the
 * register tile's arithmetic against the traffic into each cache level, times the parallel
 * loop's effective speedup, in FLOPs per cycle of a model machine. Only the order of estimates
 * means something (the cost model's cold start ranks by it). > 0; 0 for f NULL or n short. */
double mct_cg_estimate(const float *f, int n);

#endif
