/* Lowering a schedule: to readable loop-nest pseudo-code, and to a C11 kernel.
 *
 * The nest is emitted loop by loop with block bounds (lo, min(lo + step, hi)), so no tile size
 * ever has to divide a size. Where a cache_write region holds a register tile (every spatial loop
 * inside it fully unrolled or vectorized), the region is emitted twice: a fast path with named
 * vector accumulators, per-row base pointers clamped to the valid rows, and a hoisted k loop;
 * and the generic path (scalar loops over an accumulator array) for tiles the fast path cannot
 * take (a partial vector tile). Both compute the same values. */
#include "codegen/cg_int.h"
#include "codegen/text.h"
#include "runtime/dispatch.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *dim_name[AX_N] = {"batch", "M", "N", "K"};

/* ---- string builder ---------------------------------------------------------------------- */

typedef struct {
    mct_str t;  /* sticky oom: checked once at the end */
    int ind;
} sb_t;

static void sb_vadd(sb_t *b, const char *fmt, va_list ap) { mct_str_vaddf(&b->t, fmt, ap); }

static void sb_add(sb_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_add(sb_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sb_vadd(b, fmt, ap);
    va_end(ap);
}

/* One indented line. */
static void ln(sb_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ln(sb_t *b, const char *fmt, ...)
{
    for (int i = 0; i < b->ind; i++)
        sb_add(b, "    ");
    va_list ap;
    va_start(ap, fmt);
    sb_vadd(b, fmt, ap);
    va_end(ap);
    sb_add(b, "\n");
}

/* ---- the lowering context ---------------------------------------------------------------- */

typedef struct {
    const mct_sched *s;
    const mct_workload *w;
    int W;               /* vector lanes */
    const char *fn;
    int scratch;         /* accumulate into a scratch buffer S (beta=1, nonlinear, unfused) */
    int has_epi;         /* bias or activation */
    int post;            /* epilogue runs as a pass after the nest */
    int par_pos;         /* position of the parallel loop or -1 */
    int cw_pos;
    int64_t acc_ej;      /* row length of the generic accumulator array */
    int threads;        /* > 0: the parallel loop runs on exactly this many threads */
    int q;               /* low-precision B (w=): reads widen through FN_wq unless packed f32 */
    int isa;             /* the target's ISA table row (MCT_ISA_*); generic without a target */
    int tier;            /* the target's tier (mct_tier): which dot-product instructions exist */
    unsigned exts;       /* the target's extensions beside its tier (MCT_EXT_*, runtime/cpu.h) */
    int intr;            /* 1: the ISA's intrinsics match W (avx512 16, avx2 8, sse4.2 4 lanes) */
    int nregs;           /* vector registers of the target (16 without one) */
    int dp;              /* widen(B, dot): the path the tile takes (DP_*), 0 when none */
    char dp_why[240];    /* widen(B, dot) or widen(B, amx) not taken: why */
    int amx;             /* widen(B, amx) taken: the kernel is lower_amx.c's, of shape amx_sh */
    cg_amx amx_sh;
    int pfs;             /* the prefetch (index into s->pf) the fast tile spreads, or -1 */
    int cb;              /* buffer(C, X): the tiles write the block of X into Wb (setup) */
    int cb_pos;          /* X's position */
    int64_t cb_ld;       /* the buffer's row stride in floats */
} lw_t;

/* The tiles' write-back: plain sums into the buffer of buffer(C, X), whose write to C applies the
 * epilogue; else as the workload asks (beta: C keeps its values; fuse_epilogue). */
static int tile_beta(const lw_t *L)
{
    return L->w->beta && !L->scratch && !L->cb;
}

static int tile_fuse(const lw_t *L)
{
    return L->s->fuse && !L->cb;
}

static const char *lname(const lw_t *L, int id, char buf[8])
{
    return cg_loop_name(L->s, id, buf);
}

static int is_last_level(const mct_sched *s, int id)
{
    return s->loops[id].level == s->ax[s->loops[id].axis].nlev - 1;
}

/* Block of axis `ax` seen inside the body of the loop at position p: C expressions for lo and hi
 * (hi exclusive), and the constant extent (0 when runtime: the whole axis). */
static void region(const lw_t *L, int ax, int p, char lo[32], char hi[40], int64_t *ext)
{
    const mct_sched *s = L->s;
    int best = -1;
    for (int q = 0; q <= p && q < s->nloops; q++)
        if (s->loops[s->order[q]].axis == ax)
            best = s->order[q];
    char nb[8];
    if (best < 0) {
        snprintf(lo, 32, "0");
        snprintf(hi, 40, "%s", dim_name[ax]);
        *ext = 0;
        return;
    }
    lname(L, best, nb);
    snprintf(lo, 32, "%s", nb);
    if (is_last_level(s, best)) {
        snprintf(hi, 40, "(%s + 1)", nb);
        *ext = 1;
    } else {
        snprintf(hi, 40, "%s_e", nb);
        *ext = cg_step(s, best);
    }
}

/* Index expression of an axis at the innermost point: its last level's variable. */
static const char *idx(const lw_t *L, int ax, char buf[8])
{
    return lname(L, cg_loop_id(L->s, ax, L->s->ax[ax].nlev - 1), buf);
}

/* Address expressions of A(i,k) and B(k,j) with i/j/k given as C expressions. */
static void addr_A(const lw_t *L, const char *i, const char *k, char *out, size_t n)
{
    const cg_pack *pk = &L->s->pack[OPD_A];
    if (!pk->on)
        snprintf(out, n, "Ab[(%s) * lda + (%s)]", i, k);
    else if (pk->panel_axis == AX_K)
        snprintf(out, n, "pkA[((%s) - pkA_ilo) * pkA_kn + ((%s) - pkA_klo)]", i, k);
    else
        snprintf(out, n,
                 "pkA[(((%s) - pkA_ilo) / %lld) * (pkA_kn * %lld) + ((%s) - pkA_klo) * %lld + "
                 "((%s) - pkA_ilo) %% %lld]", i, (long long)pk->panel_w,
                 (long long)pk->panel_w, k, (long long)pk->panel_w, i, (long long)pk->panel_w);
}

static void addr_B(const lw_t *L, const char *k, const char *j, char *out, size_t n)
{
    const cg_pack *pk = &L->s->pack[OPD_B];
    if (!pk->on) {
        if (L->w->layout == MCT_NN)
            snprintf(out, n, "Bb[(%s) * ldb + (%s)]", k, j);
        else
            snprintf(out, n, "Bb[(%s) * ldb + (%s)]", j, k);
    } else if (pk->kb > 0) {
        /* prepacked in k chunks: [K/kb][N/w][kb][w], the last chunk shorter */
        long long kb = (long long)pk->kb, w = (long long)pk->panel_w;
        snprintf(out, n,
                 "pkB[((%s) / %lld) * %lld * pkB_np + ((%s) / %lld) * (((%s) / %lld) * %lld + %lld "
                 "< K ? %lld : K - ((%s) / %lld) * %lld) * %lld + ((%s) %% %lld) * %lld + "
                 "(%s) %% %lld]", k, kb, kb, j, w, k, kb, kb, kb, kb, k, kb, kb, w, k, kb, w, j,
                 w);
    } else if (pk->panel_axis == AX_K)
        snprintf(out, n, "pkB[((%s) - pkB_jlo) * pkB_kn + ((%s) - pkB_klo)]", j, k);
    else
        snprintf(out, n,
                 "pkB[(((%s) - pkB_jlo) / %lld) * (pkB_kn * %lld) + ((%s) - pkB_klo) * %lld + "
                 "((%s) - pkB_jlo) %% %lld]", j, (long long)pk->panel_w,
                 (long long)pk->panel_w, k, (long long)pk->panel_w, j, (long long)pk->panel_w);
}

/* 1 when reads of B go to low-precision weights (not to an f32 panel packed in the kernel). */
static int b_lowp(const lw_t *L)
{
    const cg_pack *pk = &L->s->pack[OPD_B];
    return L->q && !(pk->on && pk->at >= 0);
}

/* Element index of B(k, j) in the low-precision buffer: plain [N][K], or prepacked in the f32
 * prepack order. */
static void idx_Bq(const lw_t *L, const char *k, const char *j, char *out, size_t n)
{
    if (L->s->prepack) {
        char a[400];
        addr_B(L, k, j, a, sizeof a);  /* "pkB[...]": the same order, other element types */
        snprintf(out, n, "%.*s", (int)strlen(a) - 5, a + 4);
    } else
        snprintf(out, n, "(%s) * K + (%s)", j, k);
}

/* Value of B(k, j) as f32. */
static void val_B(const lw_t *L, const char *k, const char *j, char *out, size_t n)
{
    if (!b_lowp(L)) {
        addr_B(L, k, j, out, n);
        return;
    }
    char e[400];
    idx_Bq(L, k, j, e, sizeof e);
    snprintf(out, n, "%s_wq(Bq, Bs, %s, %s, %s, ng_)", L->fn, e, j, k);
}

/* ---- fast register-tile analysis ---------------------------------------------------------- */

typedef struct {
    int ok;
    int dot;             /* 1: k vectorized (lanes summed at write-back); 0: j vectorized */
    int vec;             /* some loop vectorized */
    int64_t ei, ej;      /* tile extents (rows, columns) */
    int unroll_k;        /* unroll of the hoisted k loop */
    int order_ij;        /* 1: i loops outside j loops among the unrolled ones */
    char why[160];
} fast_t;

/* widen(B, reg) in the fast tile: the tile widens W consecutive weights per load, so the loads
 * must be vectors of consecutive elements: along j in prepacked j panels (j vectorized; the
 * plain layout is [N][K]), or along k in rows of the plain layout or prepack(B, k) (the dot
 * form). A q4 vector must start on a byte (an even element): in j panels it always does (panel
 * widths and offsets are multiples of W); along k the tile's first k must be even, so every k
 * step at or outside the tile. 1 (with the reason in why) when the tile is not fast. */
static int analyse_fast_q(const lw_t *L, fast_t *f, int pc)
{
    const mct_sched *s = L->s;
    const cg_pack *pb = &s->pack[OPD_B];
    if (!f->vec || L->W == 1) {
        snprintf(f->why, sizeof f->why, "B is widened at each load (widen(B, reg)) and no loop "
                 "is vectorized: the tile widens weights a vector at a time");
        return 1;
    }
    if (!f->dot && !(s->prepack && pb->panel_axis == AX_J)) {
        snprintf(f->why, sizeof f->why, "widen(B, reg) with j vectorized reads prepacked j "
                 "panels: prepack(B, jN)");
        return 1;
    }
    if (f->dot && s->prepack && pb->panel_axis != AX_K) {
        snprintf(f->why, sizeof f->why, "widen(B, reg) with k vectorized reads B along k: no "
                 "prepack or prepack(B, k)");
        return 1;
    }
    if (f->dot && L->w->wfmt == MCT_RT_WF_Q4)
        for (int z = 0; z <= pc; z++) {
            int id = s->order[z];
            if (s->loops[id].axis == AX_K && cg_step(s, id) % 2) {
                char nb[8];
                snprintf(f->why, sizeof f->why, "q4 weights read along k need even k steps (%s "
                         "steps by %lld)", lname(L, id, nb), (long long)cg_step(s, id));
                return 1;
            }
        }
    return 0;
}

static void analyse_fast(const lw_t *L, fast_t *f)
{
    const mct_sched *s = L->s;
    memset(f, 0, sizeof *f);
    if (s->cw < 0) {
        snprintf(f->why, sizeof f->why, "no cache_write");
        return;
    }
    int pc = cg_pos(s, s->cw), n = s->nloops;
    int q = pc + 1, first_i = -1, first_j = -1;
    for (int o = 0; o < 2; o++)
        if (s->pack[o].on && s->pack[o].at >= 0 && cg_pos(s, s->pack[o].at) > pc) {
            snprintf(f->why, sizeof f->why, "%c is packed inside the tile", "AB"[o]);
            return;
        }
    /* runtime k loops first */
    for (; q < n; q++) {
        const cg_loop *l = &s->loops[s->order[q]];
        if (l->axis != AX_K || l->vec)
            break;
        if (l->unroll > f->unroll_k)
            f->unroll_k = l->unroll;
    }
    for (; q < n; q++) {
        int id = s->order[q];
        const cg_loop *l = &s->loops[id];
        char nb[8];
        if (l->axis == AX_K) {
            if (!l->vec || q != n - 1) {
                snprintf(f->why, sizeof f->why,
                         "k loop %s sits between the tile's spatial loops", lname(L, id, nb));
                return;
            }
            f->dot = 1;
            f->vec = 1;
            continue;
        }
        if (l->axis == AX_I && first_i < 0)
            first_i = q;
        if (l->axis == AX_J && first_j < 0)
            first_j = q;
        if (l->vec) {
            f->vec = 1;
            continue;
        }
        int64_t iters = (cg_extent(s, id) + cg_step(s, id) - 1) / cg_step(s, id);
        if (l->unroll < iters) {
            snprintf(f->why, sizeof f->why, "spatial loop %s is not fully unrolled (unroll(%s, %lld))",
                     lname(L, id, nb), nb, (long long)iters);
            return;
        }
    }
    char lo[32], hi[40];
    region(L, AX_I, pc, lo, hi, &f->ei);
    region(L, AX_J, pc, lo, hi, &f->ej);
    if (f->ei == 0 || f->ej == 0) {
        snprintf(f->why, sizeof f->why, "tile extents are not constant");
        return;
    }
    f->order_ij = !(first_j >= 0 && first_i >= 0 && first_j < first_i);
    if (f->ei * f->ej * (f->dot ? 1 : 1) > 512) {
        snprintf(f->why, sizeof f->why, "register tile of %lld x %lld is too large to unroll",
                 (long long)f->ei, (long long)f->ej);
        return;
    }
    int W = L->W;
    if (f->vec && W > 1) {
        if (f->dot) {
            int vid = s->order[n - 1];
            if (cg_extent(s, vid) % W) {
                snprintf(f->why, sizeof f->why, "vectorized k block %lld is not a multiple of %d "
                         "lanes", (long long)cg_extent(s, vid), W);
                return;
            }
        } else {
            if (f->ej % W) {
                snprintf(f->why, sizeof f->why, "vectorized j block %lld is not a multiple of %d "
                         "lanes", (long long)f->ej, W);
                return;
            }
            const cg_pack *pb = &s->pack[OPD_B];
            if (pb->on) {
                if (pb->panel_w % W) {
                    snprintf(f->why, sizeof f->why, "B panel width %lld is not a multiple of %d "
                             "lanes", (long long)pb->panel_w, W);
                    return;
                }
                /* the tile's offset inside the packed region moves in multiples of the steps of
                 * the j loops between the pack and the tile */
                int from = pb->at < 0 ? 0 : cg_pos(s, pb->at) + 1;
                for (int z = from; z <= pc; z++) {
                    int id = s->order[z];
                    if (s->loops[id].axis == AX_J && cg_step(s, id) % W) {
                        char nb[8];
                        snprintf(f->why, sizeof f->why, "j step %lld of %s is not a multiple of "
                                 "%d lanes", (long long)cg_step(s, id), lname(L, id, nb), W);
                        return;
                    }
                }
            }
        }
    }
    const cg_pack *pkb = &s->pack[OPD_B];
    if (pkb->on && pkb->kb > 0) {
        /* the tile's k range must stay inside one chunk: the innermost k loop at or outside
         * the tile steps by a divisor of the chunk, and every outer k loop by a multiple of it */
        int64_t st = 0;
        for (int z = pc; z >= 0 && !st; z--)
            if (s->loops[s->order[z]].axis == AX_K)
                st = cg_step(s, s->order[z]);
        int okk = st > 0 && pkb->kb % st == 0;
        for (int z = 0; okk && z <= pc; z++)
            if (s->loops[s->order[z]].axis == AX_K && cg_step(s, s->order[z]) % st)
                okk = 0;
        if (!okk) {
            snprintf(f->why, sizeof f->why, "the tile's k range may cross a prepacked k chunk of "
                     "%lld", (long long)pkb->kb);
            return;
        }
    }
    if (b_lowp(L) && analyse_fast_q(L, f, pc))
        return;
    if (f->vec && W == 1)
        f->vec = 0, f->dot = 0;
    f->ok = 1;
}

/* ---- C emission -------------------------------------------------------------------------- */

/* FN_wv's body with the target's own intrinsics (L->intr): gcc 12 splits the vector-extension
 * conversions of 512-bit vectors into 128-bit halves with inserts and extracts, which made the
 * widening, not the memory, the bound at M=1. One load, one extension and one conversion per
 * vector: bf16 zero-extends and shifts by 16; i8 sign-extends bytes to 32 bits; q4 zero-extends
 * its W/2 bytes to 16-bit lanes and puts the high nibble into the upper byte of each lane with
 * one shift, or and mask (x | x << 4, & 0x0F0F), so the W nibbles lie in element order as bytes,
 * then extends those to 32 bits and subtracts the offset 8. */
static void emit_wv_intrinsics(sb_t *b, const lw_t *L)
{
    const char *fn = L->fn;
    int fmt = L->w->wfmt, W = L->W;
    /* per ISA: the f32 and integer vector types, their prefix, the load of 2W, W and W/2 bytes */
    const char *pf = W == 16 ? "_mm512" : W == 8 ? "_mm256" : "_mm";
    const char *ld2 = W == 16 ? "_mm256_loadu_si256((const __m256i *)p)"
                      : W == 8 ? "_mm_loadu_si128((const __m128i *)p)"
                               : "_mm_loadl_epi64((const __m128i *)p)";
    if (fmt == MCT_RT_WF_BF16) {
        ln(b, "    return (%s_vf)%s_castsi%s_ps(%s_slli_epi32(%s_cvtepu16_epi32(%s), 16));", fn, pf,
           W == 16 ? "512" : W == 8 ? "256" : "128", pf, pf, ld2);
        return;
    }
    if (fmt == MCT_RT_WF_I8) {
        if (W == 16)
            ln(b, "    __m128i x = _mm_loadu_si128((const __m128i *)p);");
        else if (W == 8)
            ln(b, "    __m128i x = _mm_loadl_epi64((const __m128i *)p);");
        else {
            ln(b, "    int v;");
            ln(b, "    memcpy(&v, p, 4);");
            ln(b, "    __m128i x = _mm_cvtsi32_si128(v);");
        }
        ln(b, "    return (%s_vf)%s_cvtepi32_ps(%s_cvtepi8_epi32(x));", fn, pf, pf);
        return;
    }
    if (W == 16)
        ln(b, "    __m128i x = _mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)p));");
    else if (W == 8) {
        ln(b, "    int v;");
        ln(b, "    memcpy(&v, p, 4);");
        ln(b, "    __m128i x = _mm_cvtepu8_epi16(_mm_cvtsi32_si128(v));");
    } else {
        ln(b, "    unsigned short v;");
        ln(b, "    memcpy(&v, p, 2);");
        ln(b, "    __m128i x = _mm_cvtepu8_epi16(_mm_cvtsi32_si128(v));");
    }
    ln(b, "    x = _mm_and_si128(_mm_or_si128(x, _mm_slli_epi16(x, 4)), _mm_set1_epi16(0x0F0F));");
    ln(b, "    return (%s_vf)%s_cvtepi32_ps(%s_sub_epi32(%s_cvtepu8_epi32(x), %s_set1_epi32(8)));",
       fn, pf, pf, pf, pf);
}

/* Widening in the fast register tile (widen(B, reg)): FN_wv loads the W consecutive elements
 * that start at byte p (for q4 an even element, so at a byte boundary) and widens them to an f32
 * vector, FN_ws widens element o counted from p; both raw, without a scale: the tile applies it
 * (i8 at write-back, q4 per group). Vector extensions only, so every tier's compiler maps them to
 * its own instructions (bf16: zero-extend and shift; i8: sign-extend and convert; q4: mask and
 * shift the nibbles, interleave them, subtract the offset 8 and convert). */
static void emit_qvec_helpers(sb_t *b, const lw_t *L, const char *ta)
{
    const char *fn = L->fn;
    int W = L->W, fmt = L->w->wfmt;
    ln(b, "typedef int %s_vi __attribute__((vector_size(%d)));", fn, 4 * W);
    /* bytes widen through 16-bit lanes: gcc (12) turns a direct 8-to-32-bit convertvector into
     * scalar code, the two steps into sign/zero extensions */
    ln(b, "typedef short %s_vs __attribute__((vector_size(%d)));", fn, 2 * W);
    if (fmt == MCT_RT_WF_BF16) {
        ln(b, "typedef unsigned short %s_vh __attribute__((vector_size(%d), aligned(1), "
              "may_alias));", fn, 2 * W);
        ln(b, "typedef unsigned int %s_vu __attribute__((vector_size(%d)));", fn, 4 * W);
    } else if (fmt == MCT_RT_WF_I8)
        ln(b, "typedef signed char %s_vc __attribute__((vector_size(%d), aligned(1), may_alias));",
           fn, W);
    else {
        ln(b, "typedef unsigned char %s_vn __attribute__((vector_size(%d), aligned(1), "
              "may_alias));", fn, W / 2);
        ln(b, "typedef unsigned char %s_vb __attribute__((vector_size(%d)));", fn, W);
    }
    ln(b, "static inline __attribute__((unused)) %s%s_vf %s_wv(const unsigned char *p)", ta, fn,
       fn);
    ln(b, "{");
    if (L->intr)
        emit_wv_intrinsics(b, L);
    else if (fmt == MCT_RT_WF_BF16) {
        ln(b, "    %s_vu u = __builtin_convertvector(*(const %s_vh *)p, %s_vu) << 16;", fn, fn, fn);
        ln(b, "    return (%s_vf)u;", fn);
    } else if (fmt == MCT_RT_WF_I8)
        ln(b, "    return __builtin_convertvector(__builtin_convertvector(__builtin_convertvector("
              "*(const %s_vc *)p, %s_vs), %s_vi), %s_vf);", fn, fn, fn, fn);
    else {
        ln(b, "    %s_vn n = *(const %s_vn *)p;", fn, fn);
        ln(b, "    %s_vn lo = n & 15, hi = n >> 4;", fn);
        /* element 2m is the low nibble of byte m, element 2m+1 its high nibble */
        sb_add(b, "    %s_vb x = __builtin_shufflevector(lo, hi", fn);
        for (int m = 0; m < W / 2; m++)
            sb_add(b, ", %d, %d", m, W / 2 + m);
        sb_add(b, ");\n");
        ln(b, "    return __builtin_convertvector(__builtin_convertvector(__builtin_convertvector("
              "x, %s_vs), %s_vi) - 8, %s_vf);", fn, fn, fn);
    }
    ln(b, "}");
    ln(b, "static inline __attribute__((unused)) %sfloat %s_ws(const unsigned char *p, long o)",
       ta, fn);
    ln(b, "{");
    if (fmt == MCT_RT_WF_BF16) {
        ln(b, "    unsigned short h;");
        ln(b, "    memcpy(&h, p + 2 * o, 2);");
        ln(b, "    unsigned int u = (unsigned int)h << 16;");
        ln(b, "    float f;");
        ln(b, "    memcpy(&f, &u, 4);");
        ln(b, "    return f;");
    } else if (fmt == MCT_RT_WF_I8)
        ln(b, "    return (float)(signed char)p[o];");
    else
        ln(b, "    return (float)(((p[o >> 1] >> ((o & 1) * 4)) & 15) - 8);");
    ln(b, "}");
}

/* The byte offset of element offset x (a C expression) in a low-precision buffer. */
static void qbytes_of(const lw_t *L, const char *x, char *out, size_t n)
{
    int fmt = L->w->wfmt;
    if (fmt == MCT_RT_WF_BF16)
        snprintf(out, n, "2 * (%s)", x);
    else if (fmt == MCT_RT_WF_Q4)
        snprintf(out, n, "(%s) / 2", x);
    else
        snprintf(out, n, "(%s)", x);
}

/* Low-precision weights: FN_wq widens element e of a buffer (channel j, reduction index k; ng =
 * K / G groups per channel) to f32 with its scale; FN_qpack_* copy a block of the plain layout
 * into an f32 panel (widen(B, panel)); FN_qput/FN_qzero move raw elements for FN_pack_b; FN_qdata
 * and FN_qat give the kernel buffer's data bytes and scale offset (runtime/quant.h's plain
 * layout, or the prepacked order). */
static void emit_qhelpers(sb_t *b, const lw_t *L, const char *ta)
{
    const char *fn = L->fn;
    const cg_pack *pb = &L->s->pack[OPD_B];
    int fmt = L->w->wfmt;
    ln(b, "static inline __attribute__((unused)) %sfloat %s_wq(const unsigned char *q, const "
          "float *sc, long e, long j, long k, long ng)", ta, fn);
    ln(b, "{");
    ln(b, "    (void)sc; (void)j; (void)k; (void)ng;");
    if (fmt == MCT_RT_WF_BF16) {
        ln(b, "    unsigned short h;");
        ln(b, "    memcpy(&h, q + 2 * e, 2);");
        ln(b, "    unsigned int u = (unsigned int)h << 16;");
        ln(b, "    float f;");
        ln(b, "    memcpy(&f, &u, 4);");
        ln(b, "    return f;");
    } else if (fmt == MCT_RT_WF_I8)
        ln(b, "    return (float)(signed char)q[e] * sc[j];");
    else
        ln(b, "    return (float)(((q[e >> 1] >> ((e & 1) * 4)) & 15) - 8) * sc[j * ng + k / %d];",
           L->w->wgroup);
    ln(b, "}");
    /* element (x, k) of the plain layout is e = x * K + k */
    ln(b, "static __attribute__((unused)) %svoid %s_qpack_panel(const unsigned char *q, const "
          "float *sc, long K, long ng, long xlo, long xhi, long klo, long khi, long w, float *dst)",
       ta, fn);
    ln(b, "{");
    ln(b, "    long kn = khi - klo;");
    ln(b, "    for (long x0 = xlo; x0 < xhi; x0 += w) {");
    ln(b, "        float *d = dst + ((x0 - xlo) / w) * kn * w;");
    ln(b, "        long xe = x0 + w < xhi ? x0 + w : xhi;");
    ln(b, "        for (long x = x0; x < xe; x++)");
    ln(b, "            for (long k = klo; k < khi; k++) d[(k - klo) * w + (x - x0)] = %s_wq(q, sc, "
          "x * K + k, x, k, ng);", fn);
    ln(b, "        for (long x = xe; x < x0 + w; x++)");
    ln(b, "            for (long k = 0; k < kn; k++) d[k * w + (x - x0)] = 0.0f;");
    ln(b, "    }");
    ln(b, "}");
    ln(b, "static __attribute__((unused)) %svoid %s_qpack_rows(const unsigned char *q, const "
          "float *sc, long K, long ng, long xlo, long xhi, long klo, long khi, float *dst)", ta,
       fn);
    ln(b, "{");
    ln(b, "    long kn = khi - klo;");
    ln(b, "    for (long x = xlo; x < xhi; x++)");
    ln(b, "        for (long k = klo; k < khi; k++) dst[(x - xlo) * kn + (k - klo)] = %s_wq(q, sc, "
          "x * K + k, x, k, ng);", fn);
    ln(b, "}");
    ln(b, "static inline __attribute__((unused)) void %s_qput(unsigned char *d, long e, const "
          "unsigned char *s, long f)", fn);
    ln(b, "{");
    if (fmt == MCT_RT_WF_BF16)
        ln(b, "    memcpy(d + 2 * e, s + 2 * f, 2);");
    else if (fmt == MCT_RT_WF_I8)
        ln(b, "    d[e] = s[f];");
    else {
        ln(b, "    int v = (s[f >> 1] >> ((f & 1) * 4)) & 15;");
        ln(b, "    d[e >> 1] = (unsigned char)((d[e >> 1] & (0xF0 >> ((e & 1) * 4))) | (v << ((e & "
              "1) * 4)));");
    }
    ln(b, "}");
    ln(b, "static inline __attribute__((unused)) void %s_qzero(unsigned char *d, long e)", fn);
    ln(b, "{");
    if (fmt == MCT_RT_WF_BF16)
        ln(b, "    memset(d + 2 * e, 0, 2);");
    else if (fmt == MCT_RT_WF_I8)
        ln(b, "    d[e] = 0;");
    else  /* q = 0 is stored as 8 */
        ln(b, "    d[e >> 1] = (unsigned char)((d[e >> 1] & (0xF0 >> ((e & 1) * 4))) | (8 << ((e & "
              "1) * 4)));");
    ln(b, "}");
    /* bytes of n elements */
    ln(b, "static inline __attribute__((unused)) size_t %s_qbytes(size_t n)", fn);
    ln(b, "{");
    ln(b, "    return %s;", fmt == MCT_RT_WF_BF16 ? "2 * n" : fmt == MCT_RT_WF_Q4 ? "(n + 1) / 2" : "n");
    ln(b, "}");
    ln(b, "static inline __attribute__((unused)) size_t %s_qplain_data(long N, long K)", fn);
    ln(b, "{");
    ln(b, "    return %s_qbytes((size_t)N * (size_t)K);", fn);
    ln(b, "}");
    ln(b, "static inline __attribute__((unused)) size_t %s_qdata(long N, long K)", fn);
    ln(b, "{");
    if (L->s->prepack && pb->panel_axis != AX_K)
        ln(b, "    return %s_qbytes((size_t)((N + %lld) / %lld * %lld) * (size_t)K);", fn,
           (long long)pb->panel_w - 1, (long long)pb->panel_w, (long long)pb->panel_w);
    else
        ln(b, "    return %s_qplain_data(N, K);", fn);
    ln(b, "}");
    ln(b, "static inline __attribute__((unused)) size_t %s_qat(long N, long K)", fn);
    ln(b, "{");
    ln(b, "    return (%s_qdata(N, K) + 15) / 16 * 16;", fn);
    ln(b, "}");
    if (L->W > 1)
        emit_qvec_helpers(b, L, ta);
    ln(b, "static inline __attribute__((unused)) size_t %s_qscales(long N, long K)", fn);
    ln(b, "{");
    if (fmt == MCT_RT_WF_BF16)
        ln(b, "    (void)N; (void)K; return 0;");
    else if (fmt == MCT_RT_WF_I8)
        ln(b, "    (void)K; return (size_t)N;");
    else
        ln(b, "    return (size_t)N * (size_t)(K / %d);", L->w->wgroup);
    ln(b, "}");
}

/* The lines that sum the eight floats of the __m256 named x and return the sum (the lane sum of
 * an AVX2 dot tile, and of the dot paths' 256-bit accumulators) */
static void ln_sum256(sb_t *b, const char *x)
{
    ln(b, "    __m128 x = _mm_add_ps(_mm256_castps256_ps128(%s), _mm256_extractf128_ps(%s, 1));", x,
       x);
    ln(b, "    x = _mm_add_ps(x, _mm_movehl_ps(x, x));");
    ln(b, "    x = _mm_add_ss(x, _mm_movehdup_ps(x));");
    ln(b, "    return _mm_cvtss_f32(x);");
}

static void emit_helpers(sb_t *b, const lw_t *L, const mct_target *t)
{
    const char *fn = L->fn;
    int W = L->W;
    /* helpers take and return vectors: they get the kernel's target too, so the file builds
     * without any -march */
    char ta[200] = "";
    if (t && t->attr && t->attr[0])
        snprintf(ta, sizeof ta, "__attribute__((target(\"%s\"))) ", t->attr);
    ln(b, "typedef float %s_vf __attribute__((vector_size(%d), aligned(4), may_alias));", fn,
       W * 4);
    /* activation: exp through range reduction and a polynomial, so no libm is needed and the
     * loop over a tile vectorizes */
    ln(b, "static inline __attribute__((unused)) %sfloat %s_exp(float x)", ta, fn);
    ln(b, "{");
    ln(b, "    if (x > 88.0f) x = 88.0f;");
    ln(b, "    if (x < -87.0f) x = -87.0f;");
    ln(b, "    float n = (float)(int)(x * 1.44269504f + (x >= 0 ? 0.5f : -0.5f));");
    ln(b, "    float r = x - n * 0.693359375f + n * 2.12194440e-4f;");
    ln(b, "    float p = 1.0f + r * (1.0f + r * (0.5f + r * (0.166666672f + r * (0.0416666418f "
          "+ r * (0.00833336823f + r * 0.00138888892f)))));");
    ln(b, "    union { float f; int i; } u;");
    ln(b, "    u.i = ((int)n + 127) << 23;");
    ln(b, "    return p * u.f;");
    ln(b, "}");
    ln(b, "static inline __attribute__((unused)) %sfloat %s_act(float v)", ta, fn);
    ln(b, "{");
    switch (L->w->act) {
    case MCT_ACT_RELU: ln(b, "    return v > 0.0f ? v : 0.0f;"); break;
    case MCT_ACT_GELU:
        ln(b, "    float y = 0.7978845608f * (v + 0.044715f * v * v * v);");
        ln(b, "    float e = %s_exp(2.0f * y);", fn);
        ln(b, "    return 0.5f * v * (1.0f + (1.0f - 2.0f / (e + 1.0f)));");
        break;
    case MCT_ACT_SILU: ln(b, "    return v / (1.0f + %s_exp(-v));", fn); break;
    default: ln(b, "    return v;"); break;
    }
    ln(b, "}");
    ln(b, "static inline __attribute__((unused)) %s%s_vf %s_bc(float x)", ta, fn, fn);
    ln(b, "{");
    sb_add(b, "    %s_vf v = {", fn);
    for (int l = 0; l < W; l++)
        sb_add(b, "%sx", l ? ", " : "");
    sb_add(b, "};\n");
    ln(b, "    return v;");
    ln(b, "}");
    /* the sum of a vector's lanes, which a dot tile (vectorize on k) takes once per output
     * element: as a tree of halves in registers. A lane-by-lane sum in order is a chain of W
     * dependent scalar adds that compilers may not reorder, and with a short k (attention's
     * head dim, 128) it took as long as the tile's FMAs (a bmm at M=16 ran at half speed) */
    ln(b, "static inline __attribute__((unused)) %sfloat %s_hsum(%s_vf v)", ta, fn, fn);
    ln(b, "{");
    if (L->intr && L->isa == MCT_ISA_AVX512) {
        ln(b, "    return _mm512_reduce_add_ps((__m512)v);");
    } else if (L->intr && L->isa == MCT_ISA_AVX2) {
        ln(b, "    const __m256 y = (__m256)v;");
        ln_sum256(b, "y");
    } else {
        ln(b, "    float a[%d];", W);
        ln(b, "    memcpy(a, &v, sizeof a);");
        ln(b, "    for (int h = %d / 2; h > 0; h /= 2)", W);
        ln(b, "        for (int l = 0; l < h; l++) a[l] += a[l + h];");
        ln(b, "    return a[0];");
    }
    ln(b, "}");
    /* packing: element (x, k) of the source is src[x * rs + k * cs] */
    /* rows along k into a k-major panel is a transpose: on AVX targets 8 x 8 blocks at a time in
     * registers (8 loads, 24 shuffles, 8 stores per 64 elements) instead of one strided store per
     * element. It is what a kernel that takes B as given (b=raw, the cblas drop-in) spends on
     * every call copying B stored [N,K] into its panels. Not inlined: inlined into a kernel whose
     * pack buffer has a constant size, gcc's -Warray-bounds cannot see that a block of 8 only
     * runs when the panel holds one, and warns (an error under -Werror). */
    int tr8 = L->intr && (L->isa == MCT_ISA_AVX512 || L->isa == MCT_ISA_AVX2);
    if (tr8) {
        ln(b, "static __attribute__((unused, noinline)) %svoid %s_tr8(const float *s, long rs, float "
              "*d, long ds)", ta, fn);
        ln(b, "{");
        for (int r = 0; r < 8; r++)
            ln(b, "    const __m256 r%d = _mm256_loadu_ps(s + %d * rs);", r, r);
        for (int r = 0; r < 8; r += 2) {
            ln(b, "    const __m256 t%d = _mm256_unpacklo_ps(r%d, r%d);", r, r, r + 1);
            ln(b, "    const __m256 t%d = _mm256_unpackhi_ps(r%d, r%d);", r + 1, r, r + 1);
        }
        for (int h = 0; h < 8; h += 4) {
            ln(b, "    const __m256 u%d = _mm256_shuffle_ps(t%d, t%d, 0x44);", h, h, h + 2);
            ln(b, "    const __m256 u%d = _mm256_shuffle_ps(t%d, t%d, 0xEE);", h + 1, h, h + 2);
            ln(b, "    const __m256 u%d = _mm256_shuffle_ps(t%d, t%d, 0x44);", h + 2, h + 1, h + 3);
            ln(b, "    const __m256 u%d = _mm256_shuffle_ps(t%d, t%d, 0xEE);", h + 3, h + 1, h + 3);
        }
        for (int c = 0; c < 8; c++)
            ln(b, "    _mm256_storeu_ps(d + %d * ds, _mm256_permute2f128_ps(u%d, u%d, 0x%s));", c,
               c % 4, c % 4 + 4, c < 4 ? "20" : "31");
        ln(b, "}");
    }
    ln(b, "static __attribute__((unused)) %svoid %s_pack_panel(const float *src, long rs, long cs, long xlo, long xhi, "
          "long klo, long khi, long w, float *dst)", ta, fn);
    ln(b, "{");
    ln(b, "    long kn = khi - klo;");
    ln(b, "    for (long x0 = xlo; x0 < xhi; x0 += w) {");
    ln(b, "        float *d = dst + ((x0 - xlo) / w) * kn * w;");
    ln(b, "        long xe = x0 + w < xhi ? x0 + w : xhi;");
    /* rows along k (A, or B stored [N,K]): walk k in chunks so each source row is read as a
     * short contiguous run while the panel is written in order */
    ln(b, "        if (cs == 1) {");
    if (tr8) {
        ln(b, "            long xv = x0 + (xe - x0) / 8 * 8;");
        ln(b, "            for (long xb = x0; xb < xv; xb += 8) {");
        ln(b, "                const float *sp = src + xb * rs + klo;");
        ln(b, "                long k = 0;");
        ln(b, "                for (; k + 8 <= kn; k += 8) %s_tr8(sp + k, rs, d + k * w + (xb - x0), w);",
           fn);
        ln(b, "                for (; k < kn; k++)");
        ln(b, "                    for (long x = 0; x < 8; x++) d[k * w + (xb - x0) + x] = sp[x * rs + k];");
        ln(b, "            }");
    } else
        ln(b, "            long xv = x0;");
    ln(b, "            for (long kc = 0; kc < kn; kc += 64) {");
    ln(b, "                long ke = kc + 64 < kn ? kc + 64 : kn;");
    ln(b, "                for (long x = xv; x < xe; x++) {");
    ln(b, "                    const float *sp = src + x * rs + klo;");
    ln(b, "                    for (long k = kc; k < ke; k++) d[k * w + (x - x0)] = sp[k];");
    ln(b, "                }");
    ln(b, "            }");
    ln(b, "        } else {");
    ln(b, "            for (long k = 0; k < kn; k++)");
    ln(b, "                for (long x = x0; x < xe; x++) d[k * w + (x - x0)] = src[x * rs + (k + klo) * cs];");
    ln(b, "        }");
    ln(b, "        for (long x = xe; x < x0 + w; x++)");
    ln(b, "            for (long k = 0; k < kn; k++) d[k * w + (x - x0)] = 0.0f;");
    ln(b, "    }");
    ln(b, "}");
    ln(b, "static __attribute__((unused)) %svoid %s_pack_rows(const float *src, long rs, long cs, long xlo, long xhi, "
          "long klo, long khi, float *dst)", ta, fn);
    ln(b, "{");
    ln(b, "    long kn = khi - klo;");
    ln(b, "    if (cs == 1) {");
    ln(b, "        for (long x = xlo; x < xhi; x++) memcpy(dst + (x - xlo) * kn, src + x * rs + klo, sizeof(float) * (size_t)kn);");
    ln(b, "    } else {");
    ln(b, "        for (long k = klo; k < khi; k++)");
    ln(b, "            for (long x = xlo; x < xhi; x++) dst[(x - xlo) * kn + (k - klo)] = src[x * rs + k * cs];");
    ln(b, "    }");
    ln(b, "}");
    if (L->q)
        emit_qhelpers(b, L, ta);
    (void)t;
}

/* Size (floats) of a pack buffer for the region at loop position p, as a C expression. */
static void pack_size(const lw_t *L, int opd, int p, char *out, size_t n)
{
    const cg_pack *pk = &L->s->pack[opd];
    int xa = opd == OPD_A ? AX_I : AX_J;
    char lo[32], hi[40];
    int64_t ex, ek;
    region(L, xa, p, lo, hi, &ex);
    region(L, AX_K, p, lo, hi, &ek);
    char xs[48], ks[48];
    if (ex)
        snprintf(xs, sizeof xs, "(%lld < %s ? %lldL : %s)", (long long)ex, dim_name[xa],
                 (long long)ex, dim_name[xa]);
    else
        snprintf(xs, sizeof xs, "%s", dim_name[xa]);
    if (ek)
        snprintf(ks, sizeof ks, "(%lld < K ? %lldL : K)", (long long)ek, (long long)ek);
    else
        snprintf(ks, sizeof ks, "K");
    if (pk->panel_axis == AX_K)
        snprintf(out, n, "(size_t)%s * (size_t)%s", xs, ks);
    else
        snprintf(out, n, "(size_t)((%s + %lld) / %lld * %lld) * (size_t)%s", xs,
                 (long long)pk->panel_w - 1, (long long)pk->panel_w, (long long)pk->panel_w, ks);
}

static void emit_pack_call(sb_t *b, const lw_t *L, int opd, int p)
{
    const cg_pack *pk = &L->s->pack[opd];
    int xa = opd == OPD_A ? AX_I : AX_J;
    char xlo[32], xhi[40], klo[32], khi[40];
    int64_t e;
    region(L, xa, p, xlo, xhi, &e);
    region(L, AX_K, p, klo, khi, &e);
    const char *nm = opd == OPD_A ? "pkA" : "pkB";
    char x = opd == OPD_A ? 'i' : 'j';
    ln(b, "const long %s_%clo = %s, %s_klo = %s, %s_kn = %s - %s;", nm, x, xlo, nm, klo, nm,
       khi, klo);
    if (opd == OPD_B && L->q) {  /* widen(B, panel): the copy converts to f32 */
        if (pk->panel_axis == AX_K)
            ln(b, "%s_qpack_rows(Bq, Bs, K, ng_, %s, %s, %s, %s, %s);", L->fn, xlo, xhi, klo, khi,
               nm);
        else
            ln(b, "%s_qpack_panel(Bq, Bs, K, ng_, %s, %s, %s, %s, %lld, %s);", L->fn, xlo, xhi,
               klo, khi, (long long)pk->panel_w, nm);
        return;
    }
    const char *src, *rs, *cs;
    if (opd == OPD_A)
        src = "Ab", rs = "lda", cs = "1";
    else if (L->w->layout == MCT_NN)
        src = "Bb", rs = "1", cs = "ldb";
    else
        src = "Bb", rs = "ldb", cs = "1";
    if (pk->panel_axis == AX_K)
        ln(b, "%s_pack_rows(%s, %s, %s, %s, %s, %s, %s, %s);", L->fn, src, rs, cs, xlo, xhi, klo,
           khi, nm);
    else
        ln(b, "%s_pack_panel(%s, %s, %s, %s, %s, %s, %s, %lld, %s);", L->fn, src, rs, cs, xlo,
           xhi, klo, khi, (long long)pk->panel_w, nm);
}

/* Target of accumulation (C or the scratch buffer) at (i, j). */
static void tgt(const lw_t *L, const char *i, const char *j, char *out, size_t n)
{
    if (L->cb)
        snprintf(out, n, "Wb[((%s) - wi_lo_) * %lld + ((%s) - wj_lo_)]", i, (long long)L->cb_ld, j);
    else if (L->scratch)
        snprintf(out, n, "Tb[(%s) * N + (%s)]", i, j);
    else
        snprintf(out, n, "Cb[(%s) * ldc + (%s)]", i, j);
}

/* Writes back one output value v at (i, j) given the first/last flags (C expressions). */
static void emit_store_scalar(sb_t *b, const lw_t *L, const char *i, const char *j,
                              const char *v)
{
    char t[160];
    tgt(L, i, j, t, sizeof t);
    const char *bias = L->w->bias ? " + bias[%s]" : "";
    char bexpr[64] = "";
    if (L->w->bias)
        snprintf(bexpr, sizeof bexpr, " + bias[%s]", j);
    (void)bias;
    if (tile_fuse(L)) {
        if (L->w->beta)
            ln(b, "if (last_) %s += %s_act(%s%s); else %s += %s;", t, L->fn, v, bexpr, t, v);
        else
            ln(b, "if (last_) %s = %s_act((first_ ? 0.0f : %s) + %s%s); else if (first_) %s = "
                  "%s; else %s += %s;", t, L->fn, t, v, bexpr, t, v, t, v);
    } else {
        if (tile_beta(L))
            ln(b, "%s += %s;", t, v);
        else
            ln(b, "if (first_) %s = %s; else %s += %s;", t, v, t, v);
    }
}

/* The scalar store of column v of a tile row (j = tj_lo + v), when the tile has that column. */
static void emit_store_col(sb_t *b, lw_t *L, const char *ie, int64_t v, const char *val)
{
    char je[48];
    snprintf(je, sizeof je, "tj_lo + %lld", (long long)v);
    ln(b, "if (%lld < nj_) {", (long long)v);
    b->ind++;
    emit_store_scalar(b, L, ie, je, val);
    b->ind--;
    ln(b, "}");
}

/* The generic (scalar) nest from position p on, accumulating into acc_ when inside a
 * cache_write region, else into the target directly. */
static void emit_loops(sb_t *b, lw_t *L, int p, int in_acc);

static void emit_stmt(sb_t *b, lw_t *L, int in_acc)
{
    char i[8], j[8], k[8], a[256], bb[512], t[160];
    idx(L, AX_I, i);
    idx(L, AX_J, j);
    idx(L, AX_K, k);
    addr_A(L, i, k, a, sizeof a);
    val_B(L, k, j, bb, sizeof bb);
    if (in_acc) {
        ln(b, "acc_[(%s - ti_lo) * %lld + (%s - tj_lo)] += %s * %s;", i, (long long)L->acc_ej, j,
           a, bb);
    } else {
        tgt(L, i, j, t, sizeof t);
        ln(b, "%s += %s * %s;", t, a, bb);
    }
}

/* Prefetch at the top of a loop body (outside a fast register tile): the operand's element
 * `dist` iterations ahead along that loop's axis. */
static void emit_prefetch_generic(sb_t *b, lw_t *L, int p)
{
    const mct_sched *s = L->s;
    int id = s->order[p];
    for (int q = 0; q < s->npf; q++) {
        if (s->pf[q].loop != id)
            continue;
        int opd = s->pf[q].opd, ax = s->loops[id].axis;
        if (opd == OPD_C || q == L->pfs)
            continue; /* C is prefetched by the register tile that writes it, and a spread
                       * prefetch of B by the tiles inside its loop (pf_spread) */
        if ((opd == OPD_A && ax == AX_J) || (opd == OPD_B && ax == AX_I) || ax == AX_B)
            continue; /* the operand does not move along this loop */
        char nb[8], lo1[32], hi1[40], lo2[32], hi2[40], ahead[96], e[300];
        int64_t ex;
        lname(L, id, nb);
        snprintf(ahead, sizeof ahead, "(%s + %lld < %s ? %s + %lld : %s - 1)", nb,
                 (long long)(s->pf[q].dist * cg_step(s, id)), dim_name[ax], nb,
                 (long long)(s->pf[q].dist * cg_step(s, id)), dim_name[ax]);
        if (opd == OPD_A) {
            region(L, AX_I, p, lo1, hi1, &ex);
            region(L, AX_K, p, lo2, hi2, &ex);
            addr_A(L, ax == AX_I ? ahead : lo1, ax == AX_K ? ahead : lo2, e, sizeof e);
        } else {
            region(L, AX_K, p, lo1, hi1, &ex);
            region(L, AX_J, p, lo2, hi2, &ex);
            addr_B(L, ax == AX_K ? ahead : lo1, ax == AX_J ? ahead : lo2, e, sizeof e);
            if (b_lowp(L)) {  /* the byte of that element in the low-precision buffer */
                char ix[300];
                idx_Bq(L, ax == AX_K ? ahead : lo1, ax == AX_J ? ahead : lo2, ix, sizeof ix);
                ln(b, "__builtin_prefetch(Bq + (%s)%s, 0, 3);", ix,
                   L->w->wfmt == MCT_RT_WF_BF16 ? " * 2" : L->w->wfmt == MCT_RT_WF_Q4 ? " / 2" : "");
                continue;
            }
        }
        /* packed operands are prefetched only inside their packed region */
        if (s->pack[opd].on && s->pack[opd].at >= 0 && cg_pos(s, s->pack[opd].at) >= p)
            continue;
        ln(b, "__builtin_prefetch(&%s, 0, 3);", e);
    }
}

static void emit_tile(sb_t *b, lw_t *L, int pc);

static void emit_loop_head(sb_t *b, lw_t *L, int p)
{
    const mct_sched *s = L->s;
    int id = s->order[p];
    const cg_loop *l = &s->loops[id];
    char nb[8], parent[8];
    lname(L, id, nb);
    char lo[40], hi[48];
    if (l->level == 0) {
        snprintf(lo, sizeof lo, "0");
        snprintf(hi, sizeof hi, "%s", dim_name[l->axis]);
    } else {
        lname(L, cg_loop_id(s, l->axis, l->level - 1), parent);
        snprintf(lo, sizeof lo, "%s", parent);
        snprintf(hi, sizeof hi, "%s_e", parent);
    }
    int64_t st = cg_step(s, id);
    if (l->unroll && !l->par && !(s->cw >= 0 && p > cg_pos(s, s->cw)))
        ln(b, "#pragma GCC unroll %d", l->unroll);
    if (st == 1)
        ln(b, "for (long %s = %s; %s < %s; %s++) {", nb, lo, nb, hi, nb);
    else
        ln(b, "for (long %s = %s; %s < %s; %s += %lld) {", nb, lo, nb, hi, nb, (long long)st);
    b->ind++;
    if (!is_last_level(s, id))
        ln(b, "const long %s_e = %s + %lld < %s ? %s + %lld : %s;", nb, nb, (long long)st, hi, nb,
           (long long)st, hi);
    if (l->axis == AX_B) {
        ln(b, "const float *Ab = A + %s * sA;", nb);
        ln(b, "const float *Bb = B + (%s / group) * sB;", nb);
        ln(b, "float *Cb = C + %s * sC;", nb);
        if (L->scratch)
            ln(b, "float *Tb = S + %s * M * N; (void)Tb;", nb);
        ln(b, "(void)Ab; (void)Bb; (void)Cb;");
    }
}

/* buffer(C, X): at the top of X's body, its block of C and the buffer (this thread's when X is
 * at or inside the parallel loop) the tiles accumulate it in, rows cb_ld floats apart. */
static void emit_cbuf_head(sb_t *b, lw_t *L, int p)
{
    char ilo[32], ihi[40], jlo[32], jhi[40];
    int64_t ei, ej;
    region(L, AX_I, p, ilo, ihi, &ei);
    region(L, AX_J, p, jlo, jhi, &ej);
    ln(b, "const long wi_lo_ = %s, wi_hi_ = %s, wj_lo_ = %s, wj_hi_ = %s;", ilo, ihi, jlo, jhi);
    if (L->par_pos >= 0 && L->par_pos <= p)
        ln(b, "float *Wb = W_pool + (size_t)%s_TID() * W_sz;", L->fn);
    else
        ln(b, "float *Wb = W_pool;");
}

/* buffer(C, X): after X's body, its block (the whole reduction) is written to C once, with the
 * workload's epilogue: C = act(W + bias), or C += act(W + bias) with beta=1. */
static void emit_cbuf_out(sb_t *b, const lw_t *L)
{
    const mct_workload *w = L->w;
    const char *fn = L->fn, *op = w->beta ? "+=" : "=";
    ln(b, "for (long i_ = wi_lo_; i_ < wi_hi_; i_++) {");
    b->ind++;
    ln(b, "const float *w_ = Wb + (i_ - wi_lo_) * %lld;", (long long)L->cb_ld);
    ln(b, "float *c_ = Cb + i_ * ldc + wj_lo_;");
    ln(b, "const long n_ = wj_hi_ - wj_lo_;");
    ln(b, "long j_ = 0;");
    if (L->W > 1 && w->act == MCT_ACT_NONE) {
        ln(b, "for (; j_ + %d <= n_; j_ += %d) {", L->W, L->W);
        ln(b, "    %s_vf v_ = *(const %s_vf *)(w_ + j_);", fn, fn);
        if (w->bias)
            ln(b, "    v_ += *(const %s_vf *)(bias + wj_lo_ + j_);", fn);
        ln(b, "    *(%s_vf *)(c_ + j_) %s v_;", fn, op);
        ln(b, "}");
    }
    ln(b, "for (; j_ < n_; j_++) c_[j_] %s %s_act(w_[j_]%s);", op, fn,
       w->bias ? " + bias[wj_lo_ + j_]" : "");
    b->ind--;
    ln(b, "}");
}

static void emit_loops(sb_t *b, lw_t *L, int p, int in_acc)
{
    const mct_sched *s = L->s;
    if (p == s->nloops) {
        emit_stmt(b, L, in_acc);
        return;
    }
    int id = s->order[p];
    const cg_loop *l = &s->loops[id];
    int par = l->par && !in_acc;
    if (par) {
        ln(b, "#ifdef %s_OMP", L->fn);
        if (L->threads > 0)
            ln(b, "#pragma omp parallel num_threads(%d)", L->threads);
        else
            ln(b, "#pragma omp parallel");
        ln(b, "#endif");
        ln(b, "{");
        b->ind++;
        for (int o = 0; o < 2; o++)
            if (s->pack[o].on && s->pack[o].at >= 0 && cg_pos(s, s->pack[o].at) >= p) {
                const char *nm = o ? "pkB" : "pkA";
                ln(b, "float *%s = %s_pool + (size_t)%s_TID() * %s_sz;", nm, nm, L->fn, nm);
            }
        ln(b, "#ifdef %s_OMP", L->fn);
        ln(b, "#pragma omp for schedule(static)");
        ln(b, "#endif");
    }
    emit_loop_head(b, L, p);
    emit_prefetch_generic(b, L, p);
    for (int o = 0; o < 2; o++)
        if (s->pack[o].on && s->pack[o].at == id)
            emit_pack_call(b, L, o, p);
    if (L->cb && p == L->cb_pos)
        emit_cbuf_head(b, L, p);
    if (id == s->cw && !in_acc)
        emit_tile(b, L, p);
    else
        emit_loops(b, L, p + 1, in_acc);
    if (L->cb && p == L->cb_pos)
        emit_cbuf_out(b, L);
    b->ind--;
    ln(b, "}");
    if (par) {
        b->ind--;
        ln(b, "}");
    }
}

/* Write-back of the generic accumulator array. */
static void emit_generic_tile(sb_t *b, lw_t *L, int pc, int64_t ei, int64_t ej)
{
    L->acc_ej = ej;
    ln(b, "float acc_[%lld];", (long long)(ei * ej));
    ln(b, "memset(acc_, 0, sizeof acc_);");
    emit_loops(b, L, pc + 1, 1);
    ln(b, "for (long i_ = ti_lo; i_ < ti_hi; i_++)");
    ln(b, "    for (long j_ = tj_lo; j_ < tj_hi; j_++) {");
    b->ind += 2;
    char v[64];
    snprintf(v, sizeof v, "acc_[(i_ - ti_lo) * %lld + (j_ - tj_lo)]", (long long)ej);
    emit_store_scalar(b, L, "i_", "j_", v);
    b->ind -= 2;
    ln(b, "    }");
}

/* 1 when the tile's `ext` rows (A) or columns (B) always lie inside one packed panel at
 * consecutive offsets: the panel width is a multiple of the tile and every loop of that axis
 * between the pack and the tile steps by a multiple of it. */
static int panel_contig(const lw_t *L, int opd, int pc, int64_t ext)
{
    const mct_sched *s = L->s;
    const cg_pack *pk = &s->pack[opd];
    int ax = opd == OPD_A ? AX_I : AX_J;
    if (!pk->on || pk->panel_axis != ax || pk->panel_w % ext)
        return 0;
    int from = pk->at < 0 ? 0 : cg_pos(s, pk->at) + 1;
    for (int z = from; z <= pc; z++) {
        int id = s->order[z];
        if (s->loops[id].axis == ax && cg_step(s, id) % ext)
            return 0;
    }
    return 1;
}

/* prefetch(B, L, d) at a j loop L at or outside the register tile, with only i loops between L
 * and the tile (so every tile inside one iteration of L reads the same block of B: L's columns
 * over the tile's k range), is spread: the block of L's iteration d ahead is prefetched into L2,
 * each tile inside L's body taking its share of the block's cache lines, one line every few k
 * steps of its k loop. A whole block is far more than one tile's k loop can ask for at once, and
 * spread over the tiles that reuse the current block it arrives before the next block's first
 * tile, which would otherwise wait on memory (the hardware prefetchers start on a stream only
 * after its first misses, and every block is a new one). The form needs the f32 fast tile with
 * j vectorized and B laid out along j (prepacked or packed j panels, or plain nn rows), packed
 * at a loop outside L when packed in the kernel, or at L itself: then the lines are those of B
 * where it is, which L's next pack reads (a b=raw kernel copying B one micro-panel at a time);
 * elsewhere a prefetch at L is one element of L's
 * next iteration at the top of its body (emit_prefetch_generic). The prefetch's index, or -1. */
static int pf_spread(const lw_t *L)
{
    const mct_sched *s = L->s;
    if (L->cw_pos < 0 || L->q || L->amx || L->dp || L->W < 2)
        return -1;
    const cg_pack *pb = &s->pack[OPD_B];
    if (pb->on ? pb->panel_axis != AX_J : L->w->layout != MCT_NN)
        return -1;
    fast_t f;
    analyse_fast(L, &f);
    if (!f.ok || !f.vec || f.dot)
        return -1;
    for (int q = 0; q < s->npf; q++) {
        int id = s->pf[q].loop, pp = cg_pos(s, id);
        if (s->pf[q].opd != OPD_B || s->loops[id].axis != AX_J || pp > L->cw_pos)
            continue;
        if (pb->on && pb->at >= 0 && cg_pos(s, pb->at) > pp)
            continue;  /* the next block is not packed yet */
        if (pb->on && pb->at == id) {
            /* packed at L itself: the next block is read where it is, by L's next pack, so
             * that is what is prefetched; its share needs the nominal sizes */
            char lo[32], hi[40];
            int64_t ei, ek;
            region(L, AX_I, pp, lo, hi, &ei);
            region(L, AX_K, L->cw_pos, lo, hi, &ek);
            if (ei <= 0 || ek <= 0)
                continue;
        }
        int only_i = 1;
        for (int z = pp + 1; z <= L->cw_pos; z++)
            if (s->loops[s->order[z]].axis != AX_I)
                only_i = 0;
        if (only_i)
            return q;
    }
    return -1;
}

/* The spread prefetch (pf_spread) in a fast tile. Its share of the next block is cut from the
 * nominal sizes, known when lowering: the block's lines are its k rows (the tile's k step, kn)
 * times cj lines of js floats across L's columns; nt tiles of ei rows share them, sh lines each,
 * this tile's from line ord * sh; one line every r k steps (m lines when the share has more lines
 * than kn). A tile at a ragged end has the same share, its lines clamped into the block, since a
 * prefetch is only a hint. Everything but the tile's ordinal is a constant, so the tile's set-up
 * costs no division and the k loop tests a constant stride. Sizes that are not constant (an axis
 * not tiled) make it all runtime values. */
typedef struct {
    int src;    /* B is packed at L itself: the lines are those of B where it is (L's next pack) */
    int kline;  /* those lines run along k (B stored [N,K]): cj lines of js floats down each of
                 * L's st columns; otherwise along j, across them */
    long long st, d, js, cj, nt, kn, sh, m, r;  /* nt, kn: 0 when not constant */
    char hi[48], ilo[32], ihi[40], nb[8];
} pfs_t;

static void pf_spread_plan(const lw_t *L, int pc, const fast_t *f, pfs_t *P)
{
    const mct_sched *s = L->s;
    const cg_pf *pf = &s->pf[L->pfs];
    int id = pf->loop, pp = cg_pos(s, id);
    const cg_loop *l = &s->loops[id];
    const cg_pack *pb = &s->pack[OPD_B];
    memset(P, 0, sizeof *P);
    P->st = (long long)cg_step(s, id);
    P->d = (long long)pf->dist * P->st;
    P->src = pb->on && pb->at == id;
    P->kline = P->src && L->w->layout == MCT_NT;
    P->js = pb->on && !P->src && pb->panel_w < 16 ? (long long)pb->panel_w : 16;
    P->cj = (P->st + P->js - 1) / P->js;
    lname(L, id, P->nb);
    if (l->level == 0)
        snprintf(P->hi, sizeof P->hi, "N");
    else {
        char parent[8];
        snprintf(P->hi, sizeof P->hi, "%s_e", lname(L, cg_loop_id(s, l->axis, l->level - 1), parent));
    }
    int64_t iext, kext;
    char klo[32], khi[40];
    region(L, AX_I, pp, P->ilo, P->ihi, &iext);
    region(L, AX_K, pc, klo, khi, &kext);
    P->nt = iext > 0 ? (iext + f->ei - 1) / f->ei : 0;
    P->kn = kext;
    if (P->kline)  /* pf_spread made sure both are constant */
        P->cj = (P->kn + P->js - 1) / P->js;
    if (P->nt && P->kn) {
        P->sh = ((P->kline ? P->st : P->kn) * P->cj + P->nt - 1) / P->nt;
        P->m = (P->sh + P->kn - 1) / P->kn;
        P->r = P->kn * P->m / P->sh;
    }
}

static void emit_pf_spread_decl(sb_t *b, const lw_t *L, const pfs_t *P, const fast_t *f)
{
    const cg_pf *pf = &L->s->pf[L->pfs];
    ln(b, "/* prefetch(B, %s, %d): this tile's share of the B block of %s's iteration %d ahead, "
          "into L2 */", P->nb, pf->dist, P->nb, pf->dist);
    ln(b, "const long pfn_lo_ = %s + %lld, pfn_hi_ = pfn_lo_ + %lld < %s ? pfn_lo_ + %lld : %s;",
       P->nb, P->d, P->st, P->hi, P->st, P->hi);
    if (P->sh) {
        ln(b, "long pf_e_ = (ti_lo - (%s)) / %lld * %lld;", P->ilo, (long long)f->ei, P->sh);
        ln(b, "const long pf_end_ = pfn_lo_ < pfn_hi_ ? pf_e_ + %lld : 0;", P->sh);
        if (P->kline)
            ln(b, "long pf_j_ = pfn_lo_ + pf_e_ / %lld, pf_k_ = tk_lo + pf_e_ %% %lld * %lld;",
               P->cj, P->cj, P->js);
        else
            ln(b, "long pf_k_ = tk_lo + pf_e_ / %lld, pf_j_ = pfn_lo_ + pf_e_ %% %lld * %lld;",
               P->cj, P->cj, P->js);
        return;
    }
    ln(b, "const long nt_ = ((%s) - (%s) + %lld) / %lld, sh_ = (kn_ * %lld + nt_ - 1) / nt_;",
       P->ihi, P->ilo, (long long)f->ei - 1, (long long)f->ei, P->cj);
    ln(b, "const long pf_m_ = (sh_ + kn_ - 1) / kn_, pf_r_ = kn_ * pf_m_ / sh_;");
    ln(b, "long pf_e_ = (ti_lo - (%s)) / %lld * sh_, pf_n_ = 0;", P->ilo, (long long)f->ei);
    ln(b, "const long pf_end_ = pfn_lo_ < pfn_hi_ ? pf_e_ + sh_ : 0;");
    ln(b, "long pf_k_ = tk_lo + pf_e_ / %lld, pf_j_ = pfn_lo_ + pf_e_ %% %lld * %lld;", P->cj,
       P->cj, P->js);
}

/* At the head of each k step of the tile: the lines due then. */
static void emit_pf_spread_step(sb_t *b, const lw_t *L, const pfs_t *P)
{
    char e[400];
    const char *kc = "(pf_k_ < tk_hi ? pf_k_ : tk_hi - 1)", *jc = "(pf_j_ < pfn_hi_ ? pf_j_ : "
                                                                 "pfn_hi_ - 1)";
    if (!P->src)
        addr_B(L, kc, jc, e, sizeof e);
    else if (L->w->layout == MCT_NT)
        snprintf(e, sizeof e, "Bb[%s * ldb + %s]", jc, kc);
    else
        snprintf(e, sizeof e, "Bb[%s * ldb + %s]", kc, jc);
    if (P->sh) {
        if (P->r > 1 && (P->r & (P->r - 1)) == 0)
            ln(b, "if ((kk & %lld) == 0 && pf_e_ < pf_end_) {", P->r - 1);
        else if (P->r > 1)
            ln(b, "if (kk %% %lld == 0 && pf_e_ < pf_end_) {", P->r);
        else
            ln(b, "if (pf_e_ < pf_end_) {");
    } else
        ln(b, "if (kk == pf_n_ && pf_e_ < pf_end_) {");
    b->ind++;
    if (!P->sh)
        ln(b, "pf_n_ += pf_r_;");
    if (!P->sh || P->m > 1) {
        if (P->sh)
            ln(b, "for (int z_ = 0; z_ < %lld; z_++, pf_e_++) {", P->m);
        else
            ln(b, "for (long z_ = 0; z_ < pf_m_; z_++, pf_e_++) {");
        b->ind++;
    } else
        ln(b, "pf_e_++;");
    ln(b, "__builtin_prefetch(&%s, 0, 2);", e);
    const char *along = P->kline ? "k" : "j", *across = P->kline ? "j" : "k";
    const char *base = P->kline ? "tk_lo" : "pfn_lo_";
    if (P->cj > 1) {
        ln(b, "pf_%s_ += %lld;", along, P->js);
        ln(b, "if (pf_%s_ >= %s + %lld) { pf_%s_ = %s; pf_%s_++; }", along, base, P->cj * P->js,
           along, base, across);
    } else
        ln(b, "pf_%s_++;", across);
    if (!P->sh || P->m > 1) {
        b->ind--;
        ln(b, "}");
    }
    b->ind--;
    ln(b, "}");
}

static void emit_fast_tile(sb_t *b, lw_t *L, int pc, const fast_t *f)
{
    const mct_sched *s = L->s;
    const char *fn = L->fn;
    int W = L->W;
    int vecj = f->vec && !f->dot;
    int64_t nv = vecj ? f->ej / W : f->ej; /* column groups: vectors or single columns */
    char e[400], ix[128];
    const cg_pack *pa = &s->pack[OPD_A], *pb = &s->pack[OPD_B];
    const char *ksa = pa->on && pa->panel_axis != AX_K ? NULL : "1";
    char ksa_b[24], ksb_b[24];
    if (!ksa) {
        snprintf(ksa_b, sizeof ksa_b, "%lld", (long long)pa->panel_w);
        ksa = ksa_b;
    }
    const char *ksb;
    int qv = b_lowp(L);  /* widen(B, reg): pb_ point to low-precision elements */
    int q4 = qv && L->w->wfmt == MCT_RT_WF_Q4, qi8 = qv && L->w->wfmt == MCT_RT_WF_I8;
    if (qv && f->dot)
        ksb = "1";  /* rows along k (analyse_fast_q) */
    else if (!pb->on)
        ksb = L->w->layout == MCT_NN ? "ldb" : "1";
    else if (pb->panel_axis == AX_K)
        ksb = "1";
    else {
        snprintf(ksb_b, sizeof ksb_b, "%lld", (long long)pb->panel_w);
        ksb = ksb_b;
    }
    ln(b, "const long ni_ = ti_hi - ti_lo, nj_ = tj_hi - tj_lo, kn_ = tk_hi - tk_lo;");
    ln(b, "(void)nj_;");
    /* rows (columns) of the tile that sit side by side in one zero-padded packed panel are
     * addressed from one base pointer; otherwise each has its own, clamped to the valid range */
    int a_contig = !f->dot && panel_contig(L, OPD_A, pc, f->ei);
    int b_contig = !qv && vecj && ((!pb->on && L->w->layout == MCT_NN) ||
                                   panel_contig(L, OPD_B, pc, f->ej));
    for (int64_t di = 0; di < f->ei; di++) {
        if (a_contig && di) {
            ln(b, "const float *pa_%lld = pa_0 + %lld;", (long long)di, (long long)di);
            continue;
        }
        snprintf(ix, sizeof ix, "(ti_lo + %lld < ti_hi ? ti_lo + %lld : ti_hi - 1)",
                 (long long)di, (long long)di);
        addr_A(L, ix, "tk_lo", e, sizeof e);
        ln(b, "const float *pa_%lld = &%s;", (long long)di, e);
    }
    for (int64_t v = 0; v < nv; v++) {
        if (b_contig && v) {
            ln(b, "const float *pb_%lld = pb_0 + %lld;", (long long)v, (long long)(v * W));
            continue;
        }
        if (vecj)
            snprintf(ix, sizeof ix, "tj_lo + %lld", (long long)(v * W));
        else
            snprintf(ix, sizeof ix, "(tj_lo + %lld < tj_hi ? tj_lo + %lld : tj_hi - 1)",
                     (long long)v, (long long)v);
        if (qv) {
            char by[460];
            idx_Bq(L, "tk_lo", ix, e, sizeof e);
            qbytes_of(L, e, by, sizeof by);
            ln(b, "const unsigned char *pb_%lld = Bq + %s;", (long long)v, by);
            continue;
        }
        addr_B(L, "tk_lo", ix, e, sizeof e);
        ln(b, "const float *pb_%lld = &%s;", (long long)v, e);
    }
    const char *ty = f->vec ? "vf" : "float";
    char tyb[64];
    if (f->vec) {
        snprintf(tyb, sizeof tyb, "%s_vf", fn);
        ty = tyb;
    }
    for (int64_t di = 0; di < f->ei; di++)
        for (int64_t v = 0; v < nv; v++)
            ln(b, "%s c_%lld_%lld = {0};", ty, (long long)di, (long long)v);
    /* prefetches that belong to the hoisted k loop */
    int pfk[CG_MAXPF], npfk = 0;
    for (int q = 0; q < s->npf; q++) {
        int pp = cg_pos(s, s->pf[q].loop);
        if (pp > pc && s->loops[s->pf[q].loop].axis == AX_K && s->pf[q].opd != OPD_C)
            pfk[npfk++] = q;
    }
    /* prefetch(C, L, d) at a loop at or outside the tile: the output rows of the tile d
     * iterations of L ahead, for writing, before the k loop runs */
    for (int q = 0; q < s->npf; q++) {
        if (s->pf[q].opd != OPD_C || cg_pos(s, s->pf[q].loop) > pc)
            continue;
        int lid = s->pf[q].loop, ax = s->loops[lid].axis;
        long long ahead = (long long)s->pf[q].dist * cg_step(s, lid);
        for (int64_t di = 0; di < f->ei; di++)
            for (int64_t c = 0; c < f->ej; c += 16) {
                char ie[96], je[96], t[300];
                /* in the buffer of buffer(C, X): the rows and columns of X's block */
                const char *hm = L->cb ? "wi_hi_" : "M", *hn = L->cb ? "wj_hi_" : "N";
                long long oi = ax == AX_I ? ahead + (long long)di : (long long)di;
                long long oj = ax == AX_J ? ahead + (long long)c : (long long)c;
                snprintf(ie, sizeof ie, "(ti_lo + %lld < %s ? ti_lo + %lld : %s - 1)", oi, hm, oi,
                         hm);
                snprintf(je, sizeof je, "(tj_lo + %lld < %s ? tj_lo + %lld : %s - 1)", oj, hn, oj,
                         hn);
                tgt(L, ie, je, t, sizeof t);
                ln(b, "__builtin_prefetch(&%s, 1, 3);", t);
            }
    }
    /* q4: the k range runs in segments of one group each. When the register file holds a second
     * set of accumulators (pg), each segment sums raw products into p_ and one fma per
     * accumulator applies the group's scale at the segment's end: one multiply per group instead
     * of one per weight vector. Otherwise the weights of a segment are multiplied by its scale
     * vector (loaded once per segment): spills of a tile sized to fill the register file would
     * cost more than one multiply shared by all the tile's rows. */
    int pg = q4 && 2 * f->ei * nv + nv + f->ei + 1 <= L->nregs;
    if (q4) {
        if (f->dot)
            for (int64_t di = 0; di < f->ei; di++)
                for (int64_t v = 0; v < nv; v++)
                    ln(b, "float t_%lld_%lld = 0.0f;", (long long)di, (long long)v);
        ln(b, "for (long g0_ = 0; g0_ < kn_;) {");
        b->ind++;
        ln(b, "const long gi_ = (tk_lo + g0_) / %d, gq_ = (gi_ + 1) * %d - tk_lo;", L->w->wgroup,
           L->w->wgroup);
        ln(b, "const long ge_ = gq_ < kn_ ? gq_ : kn_;");
        for (int64_t v = 0; v < nv; v++) {
            if (vecj) {
                sb_add(b, "%*sconst %s s_%lld = {", b->ind * 4, "", ty, (long long)v);
                for (int l = 0; l < W; l++)
                    sb_add(b, "%sBs[(tj_lo + %lld) * ng_ + gi_]", l ? ", " : "",
                           (long long)(v * W + l));
                sb_add(b, "};\n");
            } else {
                ln(b, "const float ss_%lld = Bs[(tj_lo + %lld < tj_hi ? tj_lo + %lld : tj_hi - 1) "
                      "* ng_ + gi_];", (long long)v, (long long)v, (long long)v);
                ln(b, "const %s s_%lld = %s_bc(ss_%lld);", ty, (long long)v, fn, (long long)v);
            }
        }
        if (pg)
            for (int64_t di = 0; di < f->ei; di++)
                for (int64_t v = 0; v < nv; v++)
                    ln(b, "%s p_%lld_%lld = {0};", ty, (long long)di, (long long)v);
        ln(b, "long kk = g0_;");
    } else if (f->dot)  /* the declaration first: an unroll pragma must stand right before the
                         * loop statement */
        ln(b, "long kk = 0;");
    int spread = L->pfs >= 0;  /* pf_spread: an f32 tile, j vectorized */
    pfs_t P;
    if (spread) {
        pf_spread_plan(L, pc, f, &P);
        emit_pf_spread_decl(b, L, &P, f);
    }
    if (f->unroll_k > 1)
        ln(b, "#pragma GCC unroll %d", f->unroll_k);
    const char *kend = q4 ? "ge_" : "kn_";
    if (f->dot)
        ln(b, "for (; kk + %d <= %s; kk += %d) {", W, kend, W);
    else if (q4)
        ln(b, "for (; kk < ge_; kk++) {");
    else
        ln(b, "for (long kk = 0; kk < kn_; kk++) {");
    b->ind++;
    if (spread)
        emit_pf_spread_step(b, L, &P);
    for (int z = 0; z < npfk; z++) {
        const cg_pf *pf = &s->pf[pfk[z]];
        long long d = (long long)pf->dist * cg_step(s, pf->loop);
        if (f->dot)
            d = (long long)pf->dist * W;
        if (pf->opd == OPD_A)
            for (int64_t di = 0; di < f->ei; di++)
                ln(b, "__builtin_prefetch(pa_%lld + (kk + %lld) * %s, 0, 3);", (long long)di, d,
                   ksa);
        else
            for (int64_t v = 0; v < nv; v++) {
                char x[64], by[96];
                snprintf(x, sizeof x, "(kk + %lld) * %s", d, ksb);
                if (qv)
                    qbytes_of(L, x, by, sizeof by);
                ln(b, "__builtin_prefetch(pb_%lld + %s, 0, 3);", (long long)v, qv ? by : x);
            }
    }
    if (qv) {
        char x[64], by[96];
        snprintf(x, sizeof x, f->dot ? "kk" : "kk * %s", ksb);
        qbytes_of(L, x, by, sizeof by);
        for (int64_t v = 0; v < nv; v++)
            ln(b, "const %s b_%lld = %s_wv(pb_%lld + %s);", ty, (long long)v, fn, (long long)v,
               by);
        if (q4 && !pg)  /* the group's scale */
            for (int64_t v = 0; v < nv; v++)
                ln(b, "const %s bs_%lld = b_%lld * s_%lld;", ty, (long long)v, (long long)v,
                   (long long)v);
        if (f->dot)
            for (int64_t di = 0; di < f->ei; di++)
                ln(b, "const %s a_%lld = *(const %s *)(pa_%lld + kk);", ty, (long long)di, ty,
                   (long long)di);
    } else if (f->dot) {
        for (int64_t v = 0; v < nv; v++)
            ln(b, "const %s b_%lld = *(const %s *)(pb_%lld + kk);", ty, (long long)v, ty,
               (long long)v);
        for (int64_t di = 0; di < f->ei; di++)
            ln(b, "const %s a_%lld = *(const %s *)(pa_%lld + kk);", ty, (long long)di, ty,
               (long long)di);
    } else {
        for (int64_t v = 0; v < nv; v++) {
            if (vecj)
                ln(b, "const %s b_%lld = *(const %s *)(pb_%lld + kk * %s);", ty, (long long)v, ty,
                   (long long)v, ksb);
            else
                ln(b, "const float b_%lld = pb_%lld[kk * %s];", (long long)v, (long long)v, ksb);
        }
    }
    /* the FMAs, in the order of the unrolled loops */
    int64_t n1 = f->order_ij ? f->ei : nv, n2 = f->order_ij ? nv : f->ei;
    for (int64_t x = 0; x < n1; x++) {
        for (int64_t y = 0; y < n2; y++) {
            int64_t di = f->order_ij ? x : y, v = f->order_ij ? y : x;
            if (!f->dot && ((f->order_ij && y == 0) || (!f->order_ij && x == 0))) {
                if (vecj)
                    ln(b, "const %s a_%lld = %s_bc(pa_%lld[kk * %s]);", ty, (long long)di, fn,
                       (long long)di, ksa);
                else
                    ln(b, "const float a_%lld = pa_%lld[kk * %s];", (long long)di, (long long)di,
                       ksa);
            }
            ln(b, "%c_%lld_%lld += a_%lld * b%s_%lld;", pg ? 'p' : 'c', (long long)di,
               (long long)v, (long long)di, q4 && !pg ? "s" : "", (long long)v);
        }
    }
    b->ind--;
    ln(b, "}");
    if (q4) {
        if (f->dot) {  /* the segment's last k that do not fill a vector */
            ln(b, "for (; kk < ge_; kk++) {");
            for (int64_t di = 0; di < f->ei; di++)
                for (int64_t v = 0; v < nv; v++)
                    ln(b, "    t_%lld_%lld += pa_%lld[kk] * %s_ws(pb_%lld, kk) * ss_%lld;",
                       (long long)di, (long long)v, (long long)di, fn, (long long)v,
                       (long long)v);
            ln(b, "}");
        }
        if (pg)
            for (int64_t di = 0; di < f->ei; di++)
                for (int64_t v = 0; v < nv; v++)
                    ln(b, "c_%lld_%lld += p_%lld_%lld * s_%lld;", (long long)di, (long long)v,
                       (long long)di, (long long)v, (long long)v);
        ln(b, "g0_ = ge_;");
        b->ind--;
        ln(b, "}");
        if (f->dot)
            for (int64_t di = 0; di < f->ei; di++)
                for (int64_t v = 0; v < nv; v++)
                    ln(b, "t_%lld_%lld += %s_hsum(c_%lld_%lld);", (long long)di, (long long)v,
                       fn, (long long)di, (long long)v);
    } else if (f->dot) {
        for (int64_t di = 0; di < f->ei; di++)
            for (int64_t v = 0; v < nv; v++)
                ln(b, "float t_%lld_%lld = %s_hsum(c_%lld_%lld);", (long long)di, (long long)v, fn,
                   (long long)di, (long long)v);
        ln(b, "for (; kk < kn_; kk++) {");
        b->ind++;
        for (int64_t di = 0; di < f->ei; di++)
            for (int64_t v = 0; v < nv; v++) {
                if (qv)
                    ln(b, "t_%lld_%lld += pa_%lld[kk] * %s_ws(pb_%lld, kk);", (long long)di,
                       (long long)v, (long long)di, fn, (long long)v);
                else
                    ln(b, "t_%lld_%lld += pa_%lld[kk] * pb_%lld[kk];", (long long)di,
                       (long long)v, (long long)di, (long long)v);
            }
        b->ind--;
        ln(b, "}");
    }
    /* i8: the scale depends on the channel only, so it multiplies the accumulators once */
    if (qi8) {
        for (int64_t v = 0; v < nv; v++) {
            if (vecj) {
                ln(b, "const %s sc_%lld = *(const %s *)(Bs + tj_lo + %lld);", ty, (long long)v, ty,
                   (long long)(v * W));
                for (int64_t di = 0; di < f->ei; di++)
                    ln(b, "c_%lld_%lld *= sc_%lld;", (long long)di, (long long)v, (long long)v);
            } else {
                ln(b, "const float sc_%lld = Bs[tj_lo + %lld < tj_hi ? tj_lo + %lld : tj_hi - 1];",
                   (long long)v, (long long)v, (long long)v);
                for (int64_t di = 0; di < f->ei; di++)
                    ln(b, "%s_%lld_%lld *= sc_%lld;", f->dot ? "t" : "c", (long long)di,
                       (long long)v, (long long)v);
            }
        }
    }
    for (int64_t di = 0; di < f->ei; di++) {
        ln(b, "if (%lld < ni_) {", (long long)di);
        b->ind++;
        char ie[48], je[48], val[48];
        snprintf(ie, sizeof ie, "ti_lo + %lld", (long long)di);
        for (int64_t v = 0; v < nv; v++) {
            if (vecj) {
                snprintf(je, sizeof je, "tj_lo + %lld", (long long)(v * W));
                char t[160];
                tgt(L, ie, je, t, sizeof t);
                int simple = !tile_fuse(L) || !L->has_epi;
                if (simple && tile_beta(L))
                    ln(b, "*(%s *)&%s += c_%lld_%lld;", ty, t, (long long)di, (long long)v);
                else if (simple)
                    ln(b, "if (first_) *(%s *)&%s = c_%lld_%lld; else *(%s *)&%s += c_%lld_%lld;",
                       ty, t, (long long)di, (long long)v, ty, t, (long long)di, (long long)v);
                else {
                    ln(b, "for (int l_ = 0; l_ < %d; l_++) {", W);
                    b->ind++;
                    snprintf(je, sizeof je, "tj_lo + %lld + l_", (long long)(v * W));
                    snprintf(val, sizeof val, "c_%lld_%lld[l_]", (long long)di, (long long)v);
                    emit_store_scalar(b, L, ie, je, val);
                    b->ind--;
                    ln(b, "}");
                }
            } else {
                snprintf(val, sizeof val, "%s_%lld_%lld", f->dot ? "t" : "c", (long long)di,
                         (long long)v);
                emit_store_col(b, L, ie, v, val);
            }
        }
        b->ind--;
        ln(b, "}");
    }
}

/* ---- widen(B, dot): the target's dot-product instructions ---------------------------------- */

/* The paths of widen(B, dot). VNNI: vpdpbusd on 512-bit vectors (u8 x s8, four products per
 * int32 lane); AVX2: vpmaddubsw + vpmaddwd on 256-bit vectors; BF16: vdpbf16ps (pairs of bf16
 * products summed into f32 lanes); AVXVNNI: the AVX2 tile with AVX-VNNI's vpdpbusd on ymm (the
 * VEX encoding) in place of vpmaddubsw + vpmaddwd. */
enum { DP_NONE = 0, DP_VNNI, DP_AVX2, DP_BF16, DP_AVXVNNI };

/* Which path the tile at the cache_write loop takes (f its analysis), or DP_NONE with the reason
 * in why: an instruction of the target's tier (or, below avx512-bf16-vnni, of its AVX-VNNI
 * extension: the AVX2 path's tile with vpdpbusd on ymm), and the fast dot form (k vectorized, B
 * read along k). q4 also needs groups of whole 32-nibble blocks (G a multiple of 32) and a tile
 * whose k range starts on a block of the activations' order (every k step at or outside the tile
 * a multiple of the block: 64 elements for VNNI, 32 for AVX2 and AVX-VNNI). */
static int dot_path(const lw_t *L, const fast_t *f, char *why, size_t len)
{
    const mct_sched *s = L->s;
    int fmt = L->w->wfmt;
    if (s->widen != CG_WIDEN_DOT)
        return DP_NONE;
    int p = DP_NONE;
    if (fmt == MCT_RT_WF_BF16) {
        if (L->isa == MCT_ISA_AVX512 && L->tier >= MCT_TIER_AVX512_BF16VNNI)
            p = DP_BF16;
        else
            snprintf(why, len, "bf16 dot products need avx512-bf16 (tier avx512-bf16-vnni); the "
                     "target's tier is %s", mct_tier_name((mct_tier)L->tier));
    } else if (L->isa == MCT_ISA_AVX512 && (L->tier >= MCT_TIER_AVX512_BF16VNNI ||
                                            L->exts & MCT_EXT_AVX512VNNI))
        p = DP_VNNI;
    else if ((L->isa == MCT_ISA_AVX512 || L->isa == MCT_ISA_AVX2) && L->tier >= MCT_TIER_AVX2)
        p = L->exts & MCT_EXT_AVXVNNI ? DP_AVXVNNI : DP_AVX2;
    else
        snprintf(why, len, "int8 dot products need avx2 (vpmaddubsw), avx-vnni or avx512-vnni; "
                 "the target's tier is %s", mct_tier_name((mct_tier)L->tier));
    if (p == DP_NONE)
        return p;
    if (!f->ok || !f->dot || !b_lowp(L)) {
        snprintf(why, len, "the tile is not the fast dot form (k vectorized innermost, B read "
                 "along k): %s", f->ok ? "j is vectorized" : f->why);
        return DP_NONE;
    }
    if (fmt != MCT_RT_WF_Q4)
        return p;
    int blk = p == DP_VNNI ? 64 : 32;
    if (L->w->wgroup % 32) {
        snprintf(why, len, "q4 dot products take whole groups of 32 weights: group %d is not a "
                 "multiple of 32", L->w->wgroup);
        return DP_NONE;
    }
    int pc = cg_pos(s, s->cw);
    for (int z = 0; z <= pc; z++) {
        int id = s->order[z];
        if (s->loops[id].axis == AX_K && cg_step(s, id) % blk) {
            char nb[8];
            snprintf(why, len, "q4 dot products read the activations in blocks of %d: %s steps "
                     "by %lld", blk, lname(L, id, nb), (long long)cg_step(s, id));
            return DP_NONE;
        }
    }
    return p;
}

/* The elements of one vector step of a dot path's tile, which for q4 is also the block of the
 * activations' nibble order. VNNI's q4 takes 128 (one 512-bit load of 64 bytes unpacks with one
 * and for the even elements and one shift + and for the odd ones, so each lane of vpdpbusd sums
 * 8 consecutive weights and a step touches whole groups: G 32, 64 or a multiple of 128) where the
 * tile's k range starts on such a block (every k step at or outside the tile a multiple of 128);
 * else 64 (VNNI: one 256-bit load split into halves) or 32 (AVX2). */
static int dot_step(const lw_t *L, int dp)
{
    const mct_sched *s = L->s;
    int G = L->w->wgroup;
    if (dp != DP_VNNI)
        return 32;
    if (L->w->wfmt != MCT_RT_WF_Q4 || !(G == 32 || G == 64 || G % 128 == 0))
        return 64;
    int pc = cg_pos(s, s->cw);
    for (int z = 0; z <= pc; z++) {
        int id = s->order[z];
        if (s->loops[id].axis == AX_K && cg_step(s, id) % 128)
            return 64;
    }
    return 128;
}

/* The kernel's prologue for a dot path: A rounded once per call, row by row, into Aq_ (Kq_ bytes
 * a row). int8: scale Asc_[i] = max|a| / 127 over the row, q = rne(a / scale) in [-127, 127];
 * i8 under VNNI and AVX-VNNI stores q + 128 (vpdpbusd's first operand is unsigned; the tile
 * subtracts 128 * sum(w)), AVX2 q.
 * q4 keeps a second copy Ap_ in the order the tile unpacks nibbles: in each block of 64 (VNNI) or
 * 32 (AVX2) elements, the even elements of each half of 32, then the odd ones. bf16: the bf16 of
 * each a (round to nearest even) as uint16. A NaN or infinite a makes its row's results NaN. */
static void emit_dot_prologue(sb_t *b, const lw_t *L, int dp)
{
    int q4 = L->w->wfmt == MCT_RT_WF_Q4;
    if (dp == DP_BF16) {
        ln(b, "const long Kq_ = K;");
        ln(b, "unsigned short *Aq_ = (unsigned short *)malloc(sizeof(unsigned short) * (size_t)M * "
              "(size_t)K);");
        ln(b, "float *Asc_ = NULL, *Ap_ = NULL; (void)Asc_; (void)Ap_;");
        ln(b, "if (!Aq_) { rc_ = -2; goto done_; }");
        ln(b, "for (long i_ = 0; i_ < M; i_++)");
        ln(b, "    for (long k_ = 0; k_ < K; k_++) {");
        ln(b, "        unsigned int u_;");
        ln(b, "        memcpy(&u_, A + i_ * lda + k_, 4);");
        ln(b, "        if ((u_ & 0x7F800000u) == 0x7F800000u && (u_ & 0x7FFFFFu)) u_ |= 0x400000u;");
        ln(b, "        else u_ += 0x7FFFu + ((u_ >> 16) & 1u);");
        ln(b, "        Aq_[i_ * K + k_] = (unsigned short)(u_ >> 16);");
        ln(b, "    }");
        return;
    }
    int blk = dot_step(L, dp);
    ln(b, "const long Kq_ = (K + 63) / 64 * 64;");
    ln(b, "signed char *Aq_ = (signed char *)calloc((size_t)M * (size_t)Kq_, 1);");
    if (q4)
        ln(b, "signed char *Ap_ = (signed char *)calloc((size_t)M * (size_t)Kq_, 1);");
    else
        ln(b, "signed char *Ap_ = NULL;");
    ln(b, "float *Asc_ = (float *)malloc(sizeof(float) * (size_t)M);");
    ln(b, "if (!Aq_ || !Asc_%s) { rc_ = -2; goto done_; }", q4 ? " || !Ap_" : "");
    ln(b, "for (long i_ = 0; i_ < M; i_++) {");
    ln(b, "    const float *a_ = A + i_ * lda;");
    ln(b, "    float mx_ = 0.0f;");
    ln(b, "    for (long k_ = 0; k_ < K; k_++) {");
    ln(b, "        float v_ = a_[k_] < 0 ? -a_[k_] : a_[k_];");
    ln(b, "        if (!(v_ <= mx_)) mx_ = v_;  /* a NaN is kept */");
    ln(b, "    }");
    ln(b, "    const float sc_ = mx_ / 127.0f, inv_ = mx_ > 0.0f ? 127.0f / mx_ : 0.0f;");
    ln(b, "    Asc_[i_] = sc_;");
    ln(b, "    signed char *q_ = Aq_ + i_ * Kq_;");
    ln(b, "    for (long k_ = 0; k_ < K; k_++) {");
    /* adding and subtracting 1.5 * 2^23 rounds to nearest even for |x| < 2^22 */
    ln(b, "        float x_ = a_[k_] * inv_;");
    ln(b, "        x_ = x_ >= 127.0f ? 127.0f : x_ >= -127.0f ? x_ : -127.0f;");
    ln(b, "        x_ = (x_ + 12582912.0f) - 12582912.0f;");
    ln(b, "        q_[k_] = (signed char)(int)x_;");
    ln(b, "    }");
    if (q4) {
        /* whole blocks only: a shorter last block is read by the tile's scalar tail from Aq_ */
        ln(b, "    signed char *p_ = Ap_ + i_ * Kq_;");
        ln(b, "    for (long k0_ = 0; k0_ + %d <= K; k0_ += %d)", blk, blk);
        ln(b, "        for (long m_ = 0; m_ < %d; m_++)", blk);
        ln(b, "            p_[k0_ + (m_ & 1) * %d + m_ / 2] = q_[k0_ + m_];", blk / 2);
    }
    if ((dp == DP_VNNI || dp == DP_AVXVNNI) && !q4)
        ln(b, "    for (long k_ = 0; k_ < K; k_++) q_[k_] = (signed char)((unsigned char)q_[k_] ^ "
              "0x80u);  /* q + 128 */");
    ln(b, "}");
}

/* Two consecutive group scales of column V's row in one 8-byte load, spread over the step's
 * lanes by the tile's permutation sx_ (q4, two groups per dot step). */
static void emit_two_scales(sb_t *b, long long V)
{
    ln(b, "const __m512 s_%lld = _mm512_permutexvar_ps(sx_, _mm512_castpd_ps("
          "_mm512_castpd128_pd512(_mm_load_sd((const double *)(const void *)(Bs + "
          "n_%lld * ng_ + g0_)))));", V, V);
}
/* The prefetches of a dot tile's B rows, d elements ahead of kk. With next (the tile declared
 * pn_V, the next tile's column V) a prefetch that would pass the end of its row's k range asks
 * for the start of the next tile's row instead: short rows (q4 at K = 4096 is 2 KiB a column)
 * would otherwise start every tile on misses. */
static void emit_dot_pf(sb_t *b, const lw_t *L, int64_t nv, long long d, int next)
{
    char x[64], pb[96], xn[64], pn[96];
    snprintf(x, sizeof x, "kk + %lld", d);
    qbytes_of(L, x, pb, sizeof pb);
    snprintf(xn, sizeof xn, "kk + %lld - kn_", d);
    qbytes_of(L, xn, pn, sizeof pn);
    for (int64_t v = 0; v < nv; v++)
        if (next)
            ln(b, "__builtin_prefetch(kk + %lld < kn_ ? pb_%lld + %s : pn_%lld + %s, 0, 3);", d,
               (long long)v, pb, (long long)v, pn);
        else
            ln(b, "__builtin_prefetch(pb_%lld + %s, 0, 3);", (long long)v, pb);
}

/* The register tile of a dot path (dot_path): t_D_V, the f32 result of row D and column V, goes
 * to the same write-back as the fast tile's dot form. Integer sums are exact (K <= CG_DOT_KMAX);
 * i8 multiplies the sum by the row's and the channel's scales once; q4 converts each block's
 * int32 lanes (whole groups) and multiplies them by their group's scale in one fma; bf16 sums
 * f32 lanes. The k range's last elements that do not fill a block run in scalar code on the same
 * rounded activations, so the result does not depend on where the blocks fall. */
static void emit_dot_tile(sb_t *b, lw_t *L, int pc, const fast_t *f, int dp)
{
    const mct_sched *s = L->s;
    const char *fn = L->fn;
    int fmt = L->w->wfmt, q4 = fmt == MCT_RT_WF_Q4, G = L->w->wgroup;
    int64_t ei = f->ei, nv = f->ej;
    /* AVX-VNNI is the AVX2 tile (256-bit vectors, 32-element steps, the same layouts) whose
     * products are vpdpbusd's: dp reads as AVX2 below except where avn names the instruction */
    int avn = dp == DP_AVXVNNI;
    if (avn)
        dp = DP_AVX2;
    int step = dp == DP_VNNI && !q4 ? 64 : dot_step(L, dp);  /* elements per vector step */
    int wide = q4 && step == 128;  /* a 64-byte load of nibbles: even and odd elements */
    const char *vi = dp == DP_AVX2 ? "__m256i" : "__m512i";
    const char *vf = dp == DP_AVX2 ? "__m256" : "__m512";
    const char *px = dp == DP_AVX2 ? "_mm256" : "_mm512";
    ln(b, "const long ni_ = ti_hi - ti_lo, nj_ = tj_hi - tj_lo, kn_ = tk_hi - tk_lo;");
    ln(b, "(void)nj_;");
    const char *aty = dp == DP_BF16 ? "unsigned short" : "signed char";
    for (int64_t d = 0; d < ei; d++) {
        ln(b, "const long r_%lld = ti_lo + %lld < ti_hi ? ti_lo + %lld : ti_hi - 1;", (long long)d,
           (long long)d, (long long)d);
        ln(b, "const %s *qa_%lld = Aq_ + r_%lld * Kq_ + tk_lo;", aty, (long long)d, (long long)d);
        if (q4)
            ln(b, "const signed char *qp_%lld = Ap_ + r_%lld * Kq_ + tk_lo;", (long long)d,
               (long long)d);
    }
    for (int64_t v = 0; v < nv; v++) {
        char ix[128], e[400], by[460];
        snprintf(ix, sizeof ix, "(tj_lo + %lld < tj_hi ? tj_lo + %lld : tj_hi - 1)", (long long)v,
                 (long long)v);
        ln(b, "const long n_%lld = %s;", (long long)v, ix);
        ln(b, "(void)n_%lld;", (long long)v);
        idx_Bq(L, "tk_lo", ix, e, sizeof e);
        qbytes_of(L, e, by, sizeof by);
        ln(b, "const unsigned char *pb_%lld = Bq + %s;", (long long)v, by);
        if (wide) {  /* the next tile's column: where this column's prefetches go past its end */
            char jn[64], en[400], bn[460];
            snprintf(jn, sizeof jn, "n_%lld + %lld", (long long)v, (long long)nv);
            idx_Bq(L, "tk_lo", jn, en, sizeof en);
            qbytes_of(L, en, bn, sizeof bn);
            ln(b, "const unsigned char *pn_%lld = Bq + %s;", (long long)v, bn);
            ln(b, "(void)pn_%lld;", (long long)v);
        }
    }
    int ints = dp != DP_BF16 && !q4;  /* int32 accumulators (i8); f32 ones otherwise */
    for (int64_t d = 0; d < ei; d++)
        for (int64_t v = 0; v < nv; v++)
            ln(b, "%s c_%lld_%lld = %s_setzero_%s();", ints ? vi : vf, (long long)d, (long long)v,
               px, ints ? (dp == DP_AVX2 ? "si256" : "si512") : "ps");
    if (dp == DP_VNNI && !q4) {  /* sum(w) per column: the correction of a + 128 */
        ln(b, "const __m512i one8_ = _mm512_set1_epi8(1);");
        for (int64_t v = 0; v < nv; v++)
            ln(b, "__m512i ws_%lld = _mm512_setzero_si512();", (long long)v);
    }
    if (avn && !q4) {  /* vpdpbusd's a + 128 on ymm: the same correction by sum(w) */
        ln(b, "const __m256i one8_ = _mm256_set1_epi8(1);");
        for (int64_t v = 0; v < nv; v++)
            ln(b, "__m256i ws_%lld = _mm256_setzero_si256();", (long long)v);
    }
    if (dp == DP_AVX2 && !avn)
        ln(b, "const __m256i one16_ = _mm256_set1_epi16(1);");
    if (q4) {
        ln(b, "const %s m4_ = %s_set1_epi8(15), e8_ = %s_set1_epi8(8);", vi, px, px);
        ln(b, "(void)e8_;");
        if (wide && G == 32)  /* lanes 4g .. 4g + 3 sum group g's elements */
            ln(b, "const __m512i sx_ = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, "
                  "0, 0);");
        else if (wide && G == 64)
            ln(b, "const __m512i sx_ = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, "
                  "0, 0);");
        else if (dp == DP_VNNI && G == 32)
            ln(b, "const __m512i sx_ = _mm512_set_epi32(1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, "
                  "0, 0);");
    }
    /* prefetches of B that belong to the hoisted k loops: d iterations of that loop ahead */
    int pfk[CG_MAXPF], npfk = 0;
    for (int q = 0; q < s->npf; q++)
        if (cg_pos(s, s->pf[q].loop) > pc && s->loops[s->pf[q].loop].axis == AX_K &&
            s->pf[q].opd == OPD_B)
            pfk[npfk++] = q;
    /* q4's rows are short streams (K/2 bytes, one per column of the tile, the next tile's rows
     * right after): without a prefetch of the schedule's own the 128-element step asks for its
     * bytes (and, for groups below 128, its scales) 4 steps ahead (measured at M=1, 4096 x 4096:
     * 0.95 -> 0.79 ms for q4g128; the hardware prefetchers alone left it short of bandwidth),
     * and near a row's end for the next tile's row (emit_dot_pf; then 0.83 -> 0.73 ms for q4g32,
     * 0.73 -> 0.66 ms for q4g128, where every tile had started on cold rows and scales) */
    int autopf = wide && npfk == 0;
    ln(b, "long kk = 0;");
    ln(b, "for (; kk + %d <= kn_; kk += %d) {", step, step);
    b->ind++;
    if (autopf)
        emit_dot_pf(b, L, nv, 512, wide);
    for (int z = 0; z < npfk; z++)
        emit_dot_pf(b, L, nv, (long long)s->pf[pfk[z]].dist * step, wide);
    if (q4) {
        if (dp == DP_VNNI) {
            ln(b, "const long g0_ = (tk_lo + kk) / %d, g1_ = (tk_lo + kk + 32) / %d;", G, G);
            ln(b, "(void)g1_;");
        }
        else
            ln(b, "const long g0_ = (tk_lo + kk) / %d;", G);
    }
    for (int64_t v = 0; v < nv; v++) {
        long long V = (long long)v;
        if (fmt == MCT_RT_WF_I8)
            ln(b, "const %s b_%lld = %s_loadu_si%s((const void *)(pb_%lld + kk));", vi, V, px,
               dp == DP_AVX2 ? "256" : "512", V);
        else if (fmt == MCT_RT_WF_BF16)
            ln(b, "const __m512i b_%lld = _mm512_loadu_si512((const void *)(pb_%lld + 2 * kk));",
               V, V);
        else if (wide) {
            /* 128 nibbles: the low ones (even elements) and the high ones (odd), in place */
            ln(b, "const __m512i x_%lld = _mm512_loadu_si512((const void *)(pb_%lld + kk / 2));",
               V, V);
            ln(b, "const __m512i b_%lld = _mm512_and_si512(x_%lld, m4_), h_%lld = _mm512_and_si512("
                  "_mm512_srli_epi16(x_%lld, 4), m4_);", V, V, V, V);
            if (G % 128 == 0)  /* one group for the whole step */
                ln(b, "const __m512 s_%lld = _mm512_set1_ps(Bs[n_%lld * ng_ + g0_]);", V, V);
            else if (G == 64)  /* two consecutive scales, one load */
                emit_two_scales(b, V);
            else  /* four */
                ln(b, "const __m512 s_%lld = _mm512_permutexvar_ps(sx_, _mm512_castps128_ps512("
                      "_mm_loadu_ps(Bs + n_%lld * ng_ + g0_)));", V, V);
            if (autopf && G < 128)  /* small groups: the scales are a stream of their own */
                ln(b, "__builtin_prefetch(g0_ + %d < ng_ ? Bs + n_%lld * ng_ + g0_ + %d : Bs + "
                      "(n_%lld + %lld) * ng_ + g0_ + %d - ng_, 0, 3);", 512 / G, V, 512 / G, V,
                   (long long)nv, 512 / G);
        } else if (dp == DP_VNNI) {
            /* 64 nibbles: the low ones (even elements) in the low half, the high ones above */
            ln(b, "const __m256i x_%lld = _mm256_loadu_si256((const void *)(pb_%lld + kk / 2));",
               V, V);
            ln(b, "const __m512i b_%lld = _mm512_and_si512(_mm512_inserti64x4(_mm512_castsi256_"
                  "si512(x_%lld), _mm256_srli_epi16(x_%lld, 4), 1), m4_);", V, V, V);
            /* lanes 0-3 and 8-11 hold the block's first 32 elements, 4-7 and 12-15 the next */
            if (G % 64 == 0)  /* one group for the whole block */
                ln(b, "const __m512 s_%lld = _mm512_set1_ps(Bs[n_%lld * ng_ + g0_]);", V, V);
            else if (G == 32)  /* two consecutive scales, one load */
                emit_two_scales(b, V);
            else {
                ln(b, "const __m256 h_%lld = _mm256_set_m128(_mm_set1_ps(Bs[n_%lld * ng_ + g1_]), "
                      "_mm_set1_ps(Bs[n_%lld * ng_ + g0_]));", V, V, V);
                ln(b, "const __m512 s_%lld = _mm512_insertf32x8(_mm512_castps256_ps512(h_%lld), "
                      "h_%lld, 1);", V, V, V);
            }
        } else {
            ln(b, "const __m128i x_%lld = _mm_loadu_si128((const void *)(pb_%lld + kk / 2));", V,
               V);
            ln(b, "const __m256i b_%lld = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(x_%lld, "
                  "4), x_%lld), m4_);", V, V, V);
            ln(b, "const __m256 s_%lld = _mm256_set1_ps(Bs[n_%lld * ng_ + g0_]);", V, V);
        }
        if (dp == DP_VNNI && !q4)
            ln(b, "ws_%lld = _mm512_dpbusd_epi32(ws_%lld, one8_, b_%lld);", V, V, V);
        if (avn && !q4)
            ln(b, "ws_%lld = _mm256_dpbusd_avx_epi32(ws_%lld, one8_, b_%lld);", V, V, V);
        else if (dp == DP_AVX2 && !q4)  /* |w| and the sign moved onto a: no int16 saturation */
            ln(b, "const __m256i u_%lld = _mm256_abs_epi8(b_%lld);", V, V);
    }
    for (int64_t d = 0; d < ei; d++) {
        long long D = (long long)d;
        ln(b, "const %s a_%lld = %s_loadu_si%s((const void *)(q%c_%lld + kk));", vi, D, px,
           dp == DP_AVX2 ? "256" : "512", q4 ? 'p' : 'a', D);
        if (wide) {  /* the odd elements' activations, then -8 * sum(a) per lane */
            ln(b, "const __m512i ah_%lld = _mm512_loadu_si512((const void *)(qp_%lld + kk + 64));",
               D, D);
            ln(b, "const __m512i o_%lld = _mm512_sub_epi32(_mm512_setzero_si512(), "
                  "_mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), e8_, a_%lld), "
                  "e8_, ah_%lld));", D, D, D);
        } else if (q4 && dp == DP_VNNI)  /* -8 * sum(a) per lane: the nibbles are q + 8 */
            ln(b, "const __m512i o_%lld = _mm512_sub_epi32(_mm512_setzero_si512(), "
                  "_mm512_dpbusd_epi32(_mm512_setzero_si512(), e8_, a_%lld));", D, D);
        else if (q4 && avn)
            ln(b, "const __m256i o_%lld = _mm256_sub_epi32(_mm256_setzero_si256(), "
                  "_mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), e8_, a_%lld));", D, D);
        else if (q4)
            ln(b, "const __m256i o_%lld = _mm256_madd_epi16(_mm256_maddubs_epi16(e8_, a_%lld), "
                  "one16_);", D, D);
        for (int64_t v = 0; v < nv; v++) {
            long long V = (long long)v;
            if (dp == DP_BF16)
                ln(b, "c_%lld_%lld = _mm512_dpbf16_ps(c_%lld_%lld, (__m512bh)a_%lld, "
                      "(__m512bh)b_%lld);", D, V, D, V, D, V);
            else if (dp == DP_VNNI && !q4)
                ln(b, "c_%lld_%lld = _mm512_dpbusd_epi32(c_%lld_%lld, a_%lld, b_%lld);", D, V, D,
                   V, D, V);
            else if (wide)
                ln(b, "c_%lld_%lld = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_dpbusd_epi32("
                      "_mm512_dpbusd_epi32(o_%lld, b_%lld, a_%lld), h_%lld, ah_%lld)), s_%lld, "
                      "c_%lld_%lld);", D, V, D, V, D, V, D, V, D, V);
            else if (dp == DP_VNNI)
                ln(b, "c_%lld_%lld = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_dpbusd_epi32(o_%lld, "
                      "b_%lld, a_%lld)), s_%lld, c_%lld_%lld);", D, V, D, V, D, V, D, V);
            else if (avn && !q4)  /* int32 lanes straight away: no int16 step to saturate */
                ln(b, "c_%lld_%lld = _mm256_dpbusd_avx_epi32(c_%lld_%lld, a_%lld, b_%lld);", D,
                   V, D, V, D, V);
            else if (avn)
                ln(b, "c_%lld_%lld = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_dpbusd_avx_epi32("
                      "o_%lld, b_%lld, a_%lld)), s_%lld, c_%lld_%lld);", D, V, D, V, D, V, D, V);
            else if (!q4)
                ln(b, "c_%lld_%lld = _mm256_add_epi32(c_%lld_%lld, _mm256_madd_epi16(_mm256_"
                      "maddubs_epi16(u_%lld, _mm256_sign_epi8(a_%lld, b_%lld)), one16_));", D, V,
                   D, V, V, D, V);
            else
                ln(b, "c_%lld_%lld = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_"
                      "madd_epi16(_mm256_maddubs_epi16(b_%lld, a_%lld), one16_), o_%lld)), s_%lld, "
                      "c_%lld_%lld);", D, V, V, D, D, V, D, V);
        }
    }
    b->ind--;
    ln(b, "}");
    /* the sums, the scalar tail, the scales */
    for (int64_t d = 0; d < ei; d++)
        for (int64_t v = 0; v < nv; v++) {
            long long D = (long long)d, V = (long long)v;
            if (ints) {
                if (dp == DP_VNNI)
                    ln(b, "int i_%lld_%lld = _mm512_reduce_add_epi32(c_%lld_%lld) - 128 * "
                          "_mm512_reduce_add_epi32(ws_%lld);", D, V, D, V, V);
                else if (avn)
                    ln(b, "int i_%lld_%lld = %s_hsum8i(c_%lld_%lld) - 128 * %s_hsum8i(ws_%lld);",
                       D, V, fn, D, V, fn, V);
                else
                    ln(b, "int i_%lld_%lld = %s_hsum8i(c_%lld_%lld);", D, V, fn, D, V);
                if (dp == DP_VNNI || avn)  /* the tail's activations are stored as q + 128 */
                    ln(b, "for (long k_ = kk; k_ < kn_; k_++) i_%lld_%lld += ((int)(unsigned "
                          "char)qa_%lld[k_] - 128) * (int)(signed char)pb_%lld[k_];", D, V, D, V);
                else
                    ln(b, "for (long k_ = kk; k_ < kn_; k_++) i_%lld_%lld += (int)qa_%lld[k_] * "
                          "(int)(signed char)pb_%lld[k_];", D, V, D, V);
                ln(b, "const float t_%lld_%lld = (float)i_%lld_%lld * Asc_[r_%lld] * Bs[n_%lld];",
                   D, V, D, V, D, V);
            } else if (dp == DP_BF16) {
                ln(b, "float t_%lld_%lld = _mm512_reduce_add_ps(c_%lld_%lld);", D, V, D, V);
                ln(b, "for (long k_ = kk; k_ < kn_; k_++) t_%lld_%lld += %s_bf(qa_%lld[k_]) * "
                      "%s_ws(pb_%lld, k_);", D, V, fn, D, fn, V);
            } else {
                if (dp == DP_VNNI)
                    ln(b, "float t_%lld_%lld = _mm512_reduce_add_ps(c_%lld_%lld);", D, V, D, V);
                else
                    ln(b, "float t_%lld_%lld = %s_hsum8f(c_%lld_%lld);", D, V, fn, D, V);
                ln(b, "for (long k_ = kk; k_ < kn_; k_++) t_%lld_%lld += (float)((int)qa_%lld[k_] * "
                      "(((pb_%lld[k_ >> 1] >> ((k_ & 1) * 4)) & 15) - 8)) * Bs[n_%lld * ng_ + "
                      "(tk_lo + k_) / %d];", D, V, D, V, V, G);
                ln(b, "t_%lld_%lld *= Asc_[r_%lld];", D, V, D);
            }
        }
    for (int64_t d = 0; d < ei; d++) {
        ln(b, "if (%lld < ni_) {", (long long)d);
        b->ind++;
        char ie[48], val[48];
        snprintf(ie, sizeof ie, "ti_lo + %lld", (long long)d);
        for (int64_t v = 0; v < nv; v++) {
            snprintf(val, sizeof val, "t_%lld_%lld", (long long)d, (long long)v);
            emit_store_col(b, L, ie, v, val);
        }
        b->ind--;
        ln(b, "}");
    }
}

/* Helpers of the dot paths: horizontal sums of 256-bit vectors and the f32 of a bf16. */
static void emit_dot_helpers(sb_t *b, const lw_t *L, const char *ta)
{
    const char *fn = L->fn;
    ln(b, "static inline __attribute__((unused)) %sint %s_hsum8i(__m256i v)", ta, fn);
    ln(b, "{");
    ln(b, "    __m128i x = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));");
    ln(b, "    x = _mm_add_epi32(x, _mm_shuffle_epi32(x, 0x4E));");
    ln(b, "    x = _mm_add_epi32(x, _mm_shuffle_epi32(x, 0xB1));");
    ln(b, "    return _mm_cvtsi128_si32(x);");
    ln(b, "}");
    ln(b, "static inline __attribute__((unused)) %sfloat %s_hsum8f(__m256 v)", ta, fn);
    ln(b, "{");
    ln_sum256(b, "v");
    ln(b, "}");
    ln(b, "static inline __attribute__((unused)) %sfloat %s_bf(unsigned short h)", ta, fn);
    ln(b, "{");
    ln(b, "    unsigned int u = (unsigned int)h << 16;");
    ln(b, "    float f;");
    ln(b, "    memcpy(&f, &u, 4);");
    ln(b, "    return f;");
    ln(b, "}");
}

static void emit_tile(sb_t *b, lw_t *L, int pc)
{
    char ilo[32], ihi[40], jlo[32], jhi[40], klo[32], khi[40];
    int64_t ei, ej, ek;
    region(L, AX_I, pc, ilo, ihi, &ei);
    region(L, AX_J, pc, jlo, jhi, &ej);
    region(L, AX_K, pc, klo, khi, &ek);
    ln(b, "const long ti_lo = %s, ti_hi = %s, tj_lo = %s, tj_hi = %s;", ilo, ihi, jlo, jhi);
    ln(b, "const long tk_lo = %s, tk_hi = %s;", klo, khi);
    ln(b, "const int first_ = tk_lo == 0, last_ = tk_hi == K;");
    ln(b, "(void)first_; (void)last_;");
    fast_t f;
    analyse_fast(L, &f);
    if (f.ok && L->dp) {
        ln(b, "{");
        b->ind++;
        emit_dot_tile(b, L, pc, &f, L->dp);
        b->ind--;
        ln(b, "}");
    } else if (f.ok) {
        int vecj = f.vec && !f.dot;
        if (vecj)
            ln(b, "if (tj_hi - tj_lo == %lld) {", (long long)f.ej);
        else
            ln(b, "{");
        b->ind++;
        emit_fast_tile(b, L, pc, &f);
        b->ind--;
        if (vecj) {
            ln(b, "} else {");
            b->ind++;
            emit_generic_tile(b, L, pc, ei, ej);
            b->ind--;
        }
        ln(b, "}");
    } else {
        emit_generic_tile(b, L, pc, ei, ej);
    }
}

static void emit_post(sb_t *b, lw_t *L)
{
    const mct_workload *w = L->w;
    if (!L->post)
        return;
    ln(b, "for (long b_ = 0; b_ < batch; b_++)");
    ln(b, "    for (long i_ = 0; i_ < M; i_++) {");
    ln(b, "        float *c_ = C + b_ * sC + i_ * ldc;");
    if (L->scratch)
        ln(b, "        const float *t_ = S + b_ * M * N + i_ * N;");
    ln(b, "        for (long j_ = 0; j_ < N; j_++) {");
    const char *src = L->scratch ? "t_[j_]" : "c_[j_]";
    char v[96];
    snprintf(v, sizeof v, "%s%s", src, w->bias ? " + bias[j_]" : "");
    if (L->scratch)
        ln(b, "            c_[j_] += %s_act(%s);", L->fn, v);
    else if (w->beta) /* linear epilogue: only a bias to add */
        ln(b, "            c_[j_] += bias[j_];");
    else
        ln(b, "            c_[j_] = %s_act(%s);", L->fn, v);
    ln(b, "        }");
    ln(b, "    }");
}

static int setup(lw_t *L, const mct_sched *s, const mct_target *t, const char *fn)
{
    memset(L, 0, sizeof *L);
    L->s = s;
    L->w = &s->w;
    L->W = t && t->vlen > 0 ? t->vlen : 1;
    L->fn = fn;
    L->threads = t && t->threads > 0 ? t->threads : 0;
    L->has_epi = s->w.bias || s->w.act != MCT_ACT_NONE;
    L->scratch = s->w.beta && s->w.act != MCT_ACT_NONE && !s->fuse;
    L->post = L->has_epi && !s->fuse;
    L->par_pos = -1;
    for (int p = 0; p < s->nloops; p++)
        if (s->loops[s->order[p]].par)
            L->par_pos = p;
    L->cw_pos = s->cw >= 0 ? cg_pos(s, s->cw) : -1;
    L->q = MCT_WL_QUANT(&s->w);
    L->isa = t && t->attr && t->attr[0] ? t->isa : MCT_ISA_GENERIC;
    L->nregs = t && t->nregs > 0 ? t->nregs : 16;
    L->tier = t && L->isa != MCT_ISA_GENERIC ? t->tier : MCT_TIER_GENERIC;
    L->exts = t && L->isa != MCT_ISA_GENERIC ? t->exts : 0;
    L->intr = (L->isa == MCT_ISA_AVX512 && L->W == 16) || (L->isa == MCT_ISA_AVX2 && L->W == 8) ||
              (L->isa == MCT_ISA_SSE42 && L->W == 4);
    if (L->q && s->widen == CG_WIDEN_DOT) {
        if (s->cw < 0)
            snprintf(L->dp_why, sizeof L->dp_why, "the tile is not the fast dot form: no "
                     "cache_write");
        else {
            fast_t f;
            analyse_fast(L, &f);
            L->dp = dot_path(L, &f, L->dp_why, sizeof L->dp_why);
        }
    }
    if (L->q && s->widen == CG_WIDEN_AMX)  /* elsewhere the kernel runs the widen(B, reg) code */
        L->amx = !cg_amx_shape(s, L->isa, L->tier, &L->amx_sh, L->dp_why, sizeof L->dp_why);
    L->pfs = pf_spread(L);
    L->cb = s->cbuf >= 0;  /* never with low-precision weights (cg_validate) */
    if (L->cb) {
        /* the epilogue runs where the buffer is written to C; rows of an odd number of 64-byte
         * lines apart, so the rows of a tile fall into different L1 sets whatever ldc is */
        int64_t ej;
        char lo[32], hi[40];
        L->cb_pos = cg_pos(s, s->cbuf);
        region(L, AX_J, L->cb_pos, lo, hi, &ej);
        L->cb_ld = (ej + 15) / 16 * 16;
        if (L->cb_ld / 16 % 2 == 0)
            L->cb_ld += 16;
        L->scratch = 0;
        L->post = 0;
    }
    return 0;
}

int mct_cg_dot_path(const mct_sched *s, const mct_target *t, char *why, size_t len)
{
    lw_t L;
    if (why && len)
        why[0] = 0;
    if (!s)
        return MCT_EINVAL;
    if (s->widen != CG_WIDEN_DOT && s->widen != CG_WIDEN_AMX)
        return MCT_CG_DOT_NONE;
    setup(&L, s, t, "k");
    if (s->widen == CG_WIDEN_AMX) {
        if (!L.amx)
            return mct_errf(why, len, MCT_ENOTAPPLIC, "widen(B, amx): %s", L.dp_why);
        return s->w.wfmt == MCT_RT_WF_BF16 ? MCT_CG_DOT_BF16 : MCT_CG_DOT_INT8;
    }
    if (!L.dp)
        return mct_errf(why, len, MCT_ENOTAPPLIC, "widen(B, dot): %s", L.dp_why);
    return L.dp == DP_BF16 ? MCT_CG_DOT_BF16 : MCT_CG_DOT_INT8;
}

/* The extensions of the target that the lowered kernel uses (its attribute names them). */
static unsigned exts_used(const lw_t *L)
{
    if (L->dp == DP_VNNI && L->tier < MCT_TIER_AVX512_BF16VNNI)
        return MCT_EXT_AVX512VNNI;
    return L->dp == DP_AVXVNNI ? MCT_EXT_AVXVNNI : 0;
}

unsigned mct_cg_exts(const mct_sched *s, const mct_target *t)
{
    lw_t L;
    if (!s)
        return 0;
    setup(&L, s, t, "k");
    return exts_used(&L);
}

/* FN_packed_size and FN_pack_b of a low-precision workload (codegen.h): the plain layout copied,
 * or rearranged into the prepack order with the scales after it. */
static void emit_qpack_b(sb_t *b, const lw_t *L, const char *attr_s)
{
    const mct_sched *s = L->s;
    const cg_pack *pb = &s->pack[OPD_B];
    const char *fn = L->fn;
    ln(b, "size_t %s_packed_size(" MCT_RT_STR(MCT_RT_PSIZE_PARAMS) ")", fn);
    ln(b, "{");
    ln(b, "    return (%s_qat(N, K) + 4 * %s_qscales(N, K) + 3) / 4;", fn, fn);
    ln(b, "}");
    ln(b, "%svoid %s_pack_b(" MCT_RT_STR(MCT_RT_PACK_PARAMS) ")", attr_s, fn);
    ln(b, "{");
    ln(b, "    const unsigned char *q = (const unsigned char *)B;");
    ln(b, "    unsigned char *d = (unsigned char *)Bp;");
    ln(b, "    const size_t pat = (%s_qplain_data(N, K) + 15) / 16 * 16;", fn);
    ln(b, "    (void)ldb;");
    if (!s->prepack || pb->panel_axis == AX_K) {
        /* the plain order is the order of rows along k */
        ln(b, "    memcpy(d, q, %s_qplain_data(N, K));", fn);
    } else {
        long long w = (long long)pb->panel_w, kb = pb->kb > 0 ? (long long)pb->kb : 0;
        ln(b, "    memset(d, 0, %s_qdata(N, K));", fn);
        ln(b, "    const long np = (N + %lld) / %lld * %lld;", w - 1, w, w);
        /* k chunks of kb (one chunk of K without): [K/kb][np/w][kb][w], the last one shorter */
        if (kb)
            ln(b, "    const long KB_ = %lld;", kb);
        else
            ln(b, "    const long KB_ = K;");
        ln(b, "    for (long k0 = 0; k0 < K; k0 += KB_) {");
        ln(b, "        const long ke = k0 + KB_ < K ? k0 + KB_ : K, kn = ke - k0;");
        ln(b, "        for (long x0 = 0; x0 < np; x0 += %lld)", w);
        ln(b, "            for (long k = k0; k < ke; k++)");
        ln(b, "                for (long x = x0; x < x0 + %lld; x++) {", w);
        ln(b, "                    long e = k0 * np + (x0 / %lld) * kn * %lld + (k - k0) * %lld + "
              "(x - x0);", w, w, w);
        ln(b, "                    if (x < N) %s_qput(d, e, q, x * K + k); else %s_qzero(d, e);",
           fn, fn);
        ln(b, "                }");
        ln(b, "    }");
    }
    ln(b, "    memset(d + %s_qdata(N, K), 0, %s_qat(N, K) - %s_qdata(N, K));", fn, fn, fn);
    ln(b, "    memcpy(d + %s_qat(N, K), q + pat, 4 * %s_qscales(N, K));", fn, fn);
    ln(b, "}");
}

int mct_cg_lower_c(const mct_sched *s, const mct_target *t, const char *fn, char **out)
{
    lw_t L;
    sb_t b = {0};
    char wl[256], sc[4096];
    if (!s || !fn || !out)
        return MCT_EINVAL;
    setup(&L, s, t, fn);
    mct_wl_format(&s->w, wl, sizeof wl);
    mct_sched_format(s, sc, sizeof sc);
    uint8_t h[16];
    mct_sched_hash(s, h);
    ln(&b, "/* generated by %s, do not edit; workload: %s; schedule: %s; schedule hash: "
           "%02x%02x%02x%02x%02x%02x%02x%02x */", MCT_CG_VERSION, wl, sc[0] ? sc : "(untuned)",
       h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]);
    ln(&b, "#include <stddef.h>");
    ln(&b, "#include <stdlib.h>");
    ln(&b, "#include <string.h>");
    /* the widening's intrinsics, dot paths, AMX, the packs' transposes */
    if ((L.intr && L.q) || L.dp || L.amx ||
        (L.intr && (L.isa == MCT_ISA_AVX512 || L.isa == MCT_ISA_AVX2)))
        ln(&b, "#include <immintrin.h>");
    /* threads: OpenMP under gcc. clang (14) compiles the body of an OpenMP region as a function
     * without the kernel's target attribute and then refuses its vector calls ("AVX vector
     * return ... changes the ABI"), so under clang the kernel runs on the calling thread */
    ln(&b, "#if defined(_OPENMP) && !defined(__clang__)");
    ln(&b, "#define %s_OMP 1", fn);
    ln(&b, "#include <omp.h>");
    ln(&b, "#define %s_TID() omp_get_thread_num()", fn);
    if (L.threads > 0)  /* the thread count the kernel was tuned for: its pools' size */
        ln(&b, "#define %s_NT() %d", fn, L.threads);
    else
        ln(&b, "#define %s_NT() omp_get_max_threads()", fn);
    ln(&b, "#else");
    ln(&b, "#define %s_TID() 0", fn);
    ln(&b, "#define %s_NT() 1", fn);
    ln(&b, "#endif");
    ln(&b, "#if defined(__GNUC__) && !defined(__clang__)");
    ln(&b, "#pragma GCC optimize(\"fp-contract=fast\")");
    ln(&b, "#endif");
    /* unroll counts are hints: clang reports the ones it cannot honour as warnings */
    ln(&b, "#if defined(__clang__)");
    ln(&b, "#pragma clang diagnostic ignored \"-Wpass-failed\"");
    ln(&b, "#endif");
    /* every function of the kernel is compiled for the target's ISA (the attribute on each, and
     * the pragma for what the compiler creates itself): the same text builds the measured
     * candidate and the shipped library, with no -march */
    const char *ta = t && t->attr && t->attr[0] ? t->attr : NULL;
    char tx[200];  /* the dot paths' instructions on top of the ISA's (the tier has them) */
    if (ta && (L.dp == DP_VNNI || L.dp == DP_BF16)) {
        snprintf(tx, sizeof tx, "%s,%s", ta, L.dp == DP_VNNI ? "avx512vnni" : "avx512bf16");
        ta = tx;
    } else if (ta && L.amx) {
        snprintf(tx, sizeof tx, "%s,amx-tile,amx-int8,amx-bf16", ta);
        ta = tx;
    } else if (ta && exts_used(&L)) {  /* only the kernels that use one name it */
        size_t n = (size_t)snprintf(tx, sizeof tx, "%s", ta);
        for (int i = 0; i < MCT_EXT_COUNT; i++)
            if (exts_used(&L) & mct_ext_get(i)->bit && n < sizeof tx)
                n += (size_t)snprintf(tx + n, sizeof tx - n, ",%s", mct_ext_get(i)->attr);
        ta = tx;
    }
    if (ta) {
        ln(&b, "#if defined(__clang__)");
        ln(&b, "#pragma clang attribute push (__attribute__((target(\"%s\"))), apply_to = "
               "function)", ta);
        ln(&b, "#elif defined(__GNUC__)");
        ln(&b, "#pragma GCC push_options");
        ln(&b, "#pragma GCC target(\"%s\")", ta);
        ln(&b, "#endif");
    }
    emit_helpers(&b, &L, t);
    const char *attr = ta;
    char attr_s[260] = "";
    if (attr)
        snprintf(attr_s, sizeof attr_s, "__attribute__((target(\"%s\"))) ", attr);
    if (L.dp)
        emit_dot_helpers(&b, &L, attr_s);
    if (L.amx) {  /* the AMX kernel keeps only the tile block of the nest (lower_amx.c) */
        cg_amx_emit(&b.t, s, &L.amx_sh, fn, attr_s, L.threads);
        goto amx_done;
    }
    const cg_pack *pb = &s->pack[OPD_B];
    if (L.q)
        emit_qpack_b(&b, &L, attr_s);
    else if (s->prepack) {
        ln(&b, "size_t %s_packed_size(" MCT_RT_STR(MCT_RT_PSIZE_PARAMS) ")", fn);
        ln(&b, "{");
        if (pb->panel_axis == AX_K)
            ln(&b, "    return (size_t)N * (size_t)K;");
        else
            ln(&b, "    return (size_t)((N + %lld) / %lld * %lld) * (size_t)K;",
               (long long)pb->panel_w - 1, (long long)pb->panel_w, (long long)pb->panel_w);
        ln(&b, "}");
        ln(&b, "%svoid %s_pack_b(" MCT_RT_STR(MCT_RT_PACK_PARAMS) ")", attr_s, fn);
        ln(&b, "{");
        const char *rs = s->w.layout == MCT_NN ? "1" : "ldb", *cs = s->w.layout == MCT_NN ? "ldb"
                                                                                        : "1";
        if (pb->kb > 0) {
            ln(&b, "    const long np = (N + %lld) / %lld * %lld;", (long long)pb->panel_w - 1,
               (long long)pb->panel_w, (long long)pb->panel_w);
            ln(&b, "    for (long k0 = 0; k0 < K; k0 += %lld)", (long long)pb->kb);
            ln(&b, "        %s_pack_panel(B, %s, %s, 0, N, k0, k0 + %lld < K ? k0 + %lld : K, "
                   "%lld, Bp + k0 * np);", fn, rs, cs, (long long)pb->kb, (long long)pb->kb,
               (long long)pb->panel_w);
        } else if (pb->panel_axis == AX_K)
            ln(&b, "    %s_pack_rows(B, %s, %s, 0, N, 0, K, Bp);", fn, rs, cs);
        else
            ln(&b, "    %s_pack_panel(B, %s, %s, 0, N, 0, K, %lld, Bp);", fn, rs, cs,
               (long long)pb->panel_w);
        ln(&b, "}");
    }
    ln(&b, "%sint %s(" MCT_RT_STR(MCT_RT_KERNEL_PARAMS) ")", attr_s, fn);
    ln(&b, "{");
    b.ind++;
    ln(&b, "if (M <= 0 || N <= 0 || K <= 0 || batch <= 0) return 0;");
    ln(&b, "if (group <= 0) group = 1;");
    ln(&b, "(void)lda; (void)ldb; (void)bias; (void)sA; (void)sB; (void)sC; (void)group;");
    ln(&b, "int rc_ = 0;");
    if (L.scratch) {
        ln(&b, "float *S = (float *)calloc((size_t)batch * (size_t)M * (size_t)N, sizeof(float));");
        ln(&b, "if (!S) return -2;");
    }
    /* pack buffers: shared ones once, per-thread pools for packs inside the parallel loop */
    for (int o = 0; o < 2; o++) {
        const cg_pack *pk = &s->pack[o];
        const char *nm = o ? "pkB" : "pkA";
        if (!pk->on || pk->at < 0) {
            ln(&b, "float *%s_pool = NULL; (void)%s_pool;", nm, nm);
            continue;
        }
        int p = cg_pos(s, pk->at);
        char sz[200];
        pack_size(&L, o, p, sz, sizeof sz);
        ln(&b, "const size_t %s_sz = ((%s) + 31) / 32 * 32;", nm, sz);
        if (L.par_pos >= 0 && p >= L.par_pos)
            ln(&b, "float *%s_pool = (float *)aligned_alloc(64, %s_sz * sizeof(float) * "
                   "(size_t)%s_NT());", nm, nm, fn);
        else {
            ln(&b, "float *%s_pool = (float *)aligned_alloc(64, %s_sz * sizeof(float));", nm, nm);
            ln(&b, "float *%s = %s_pool;", nm, nm);
        }
    }
    if (L.cb) {
        char lo[32], hi[40];
        int64_t ei;
        region(&L, AX_I, L.cb_pos, lo, hi, &ei);
        ln(&b, "const size_t W_sz = %lld;", (long long)((ei * L.cb_ld + 31) / 32 * 32));
        if (L.par_pos >= 0 && L.par_pos <= L.cb_pos)
            ln(&b, "float *W_pool = (float *)aligned_alloc(64, W_sz * sizeof(float) * "
                   "(size_t)%s_NT());", fn);
        else
            ln(&b, "float *W_pool = (float *)aligned_alloc(64, W_sz * sizeof(float));");
    } else
        ln(&b, "float *W_pool = NULL;");
    if (L.dp)
        emit_dot_prologue(&b, &L, L.dp);
    ln(&b, "if ((%s && !pkA_pool) || (%s && !pkB_pool) || (%s && !W_pool)) { rc_ = -2; goto "
           "done_; }", s->pack[0].on && s->pack[0].at >= 0 ? "1" : "0",
       s->pack[1].on && s->pack[1].at >= 0 ? "1" : "0", L.cb ? "1" : "0");
    if (s->prepack) {
        ln(&b, "const float *pkB = B;");
        ln(&b, "const long pkB_jlo = 0, pkB_klo = 0, pkB_kn = K;");
        ln(&b, "const long pkB_np = (N + %lld) / %lld * %lld;", (long long)pb->panel_w - 1,
           (long long)pb->panel_w, (long long)pb->panel_w);
        ln(&b, "(void)pkB; (void)pkB_jlo; (void)pkB_klo; (void)pkB_kn; (void)pkB_np;");
    }
    if (L.q) {
        ln(&b, "const unsigned char *Bq = (const unsigned char *)B;");
        ln(&b, "const float *Bs = (const float *)(const void *)(Bq + %s_qat(N, K));", fn);
        if (s->w.wfmt == MCT_RT_WF_Q4)
            ln(&b, "const long ng_ = K / %d;", s->w.wgroup);
        else
            ln(&b, "const long ng_ = 1;");
        ln(&b, "(void)Bq; (void)Bs; (void)ng_;");
    }
    if (s->w.op == MCT_OP_MATMUL) {
        ln(&b, "const float *Ab = A, *Bb = B;");
        ln(&b, "float *Cb = C;");
        if (L.scratch)
            ln(&b, "float *Tb = S; (void)Tb;");
        ln(&b, "(void)Ab; (void)Bb; (void)Cb;");
    }
    if (s->cw < 0 && !L.scratch && !s->w.beta) {
        ln(&b, "for (long b_ = 0; b_ < batch; b_++)");
        ln(&b, "    for (long i_ = 0; i_ < M; i_++) memset(C + b_ * sC + i_ * ldc, 0, sizeof(float) "
               "* (size_t)N);");
    }
    emit_loops(&b, &L, 0, 0);
    emit_post(&b, &L);
    b.ind--;
    ln(&b, "done_:");
    ln(&b, "    free(pkA_pool);");
    ln(&b, "    free(pkB_pool);");
    ln(&b, "    free(W_pool);");
    if (L.dp) {
        ln(&b, "    free(Aq_);");
        ln(&b, "    free(Ap_);");
        ln(&b, "    free(Asc_);");
    }
    if (L.scratch)
        ln(&b, "    free(S);");
    ln(&b, "    return rc_;");
    ln(&b, "}");
amx_done:
    if (ta) {
        ln(&b, "#if defined(__clang__)");
        ln(&b, "#pragma clang attribute pop");
        ln(&b, "#elif defined(__GNUC__)");
        ln(&b, "#pragma GCC pop_options");
        ln(&b, "#endif");
    }
    *out = mct_str_take(&b.t);
    return *out ? 0 : MCT_ENOMEM;
}

/* ---- pseudo-code ------------------------------------------------------------------------- */

static void pseudo_loops(sb_t *b, lw_t *L, int p, const fast_t *f)
{
    const mct_sched *s = L->s;
    char nb[8], nb2[8], i[8], j[8], k[8];
    if (p == s->nloops) {
        idx(L, AX_I, i);
        idx(L, AX_J, j);
        idx(L, AX_K, k);
        const char *pa = s->pack[OPD_A].on ? "Ap" : "A", *pb = s->pack[OPD_B].on ? "Bp" : "B";
        if (s->cw >= 0)
            ln(b, "acc[%s, %s] += %s[%s, %s] * %s[%s, %s]", i, j, pa, i, k, pb, k, j);
        else
            ln(b, "%s[%s, %s] += %s[%s, %s] * %s[%s, %s]", L->scratch ? "T" : "C", i, j, pa, i,
               k, pb, k, j);
        return;
    }
    int id = s->order[p];
    const cg_loop *l = &s->loops[id];
    lname(L, id, nb);
    char range[64], notes[160] = "";
    int64_t st = cg_step(s, id);
    if (l->level == 0)
        snprintf(range, sizeof range, "0..%s=%lld", dim_name[l->axis],
                 (long long)s->ax[l->axis].f[0]);
    else
        snprintf(range, sizeof range, "block of %s (%lld)",
                 lname(L, cg_loop_id(s, l->axis, l->level - 1), nb2), (long long)cg_extent(s, id));
    if (st > 1)
        snprintf(range + strlen(range), sizeof range - strlen(range), " step %lld", (long long)st);
    if (l->par)
        strcat(notes, "  # parallel");
    if (l->vec)
        snprintf(notes + strlen(notes), sizeof notes - strlen(notes), "  # vectorized (%d lanes)",
                 L->W);
    if (l->unroll)
        snprintf(notes + strlen(notes), sizeof notes - strlen(notes), "  # unroll %d", l->unroll);
    if (l->axis == AX_K)
        strcat(notes, "  # reduction");
    ln(b, "for %s in %s:%s", nb, range, notes);
    b->ind++;
    for (int q = 0; q < s->npf; q++)
        if (q == L->pfs && s->pf[q].loop == id)
            ln(b, "prefetch B's block of %s %d iterations ahead into L2, spread over the tiles "
                  "inside", nb, s->pf[q].dist);
        else if (s->pf[q].loop == id)
            ln(b, "prefetch %s %d iterations of %s ahead", s->pf[q].opd == OPD_C ? "C" : s->pf[q].opd ? "B" : "A",
               s->pf[q].dist, nb);
    for (int o = 0; o < 2; o++) {
        const cg_pack *pk = &s->pack[o];
        if (!pk->on || pk->at != id)
            continue;
        char lo[32], hi[40];
        int64_t ex, ek;
        region(L, o ? AX_J : AX_I, p, lo, hi, &ex);
        region(L, AX_K, p, lo, hi, &ek);
        char xs[32], ks[32];
        if (ex)
            snprintf(xs, sizeof xs, "%lld", (long long)ex);
        else
            snprintf(xs, sizeof xs, "%s", o ? "N" : "M");
        if (ek)
            snprintf(ks, sizeof ks, "%lld", (long long)ek);
        else
            snprintf(ks, sizeof ks, "K");
        if (pk->panel_axis == AX_K)
            ln(b, "pack %s[%s x %s block] -> %sp as rows along k", o ? "B" : "A", xs, ks,
               o ? "B" : "A");
        else
            ln(b, "pack %s[%s x %s block] -> %sp in panels of %lld %s, k-major inside", o ? "B" : "A",
               xs, ks, o ? "B" : "A", (long long)pk->panel_w, o ? "columns" : "rows");
    }
    if (L->cb && p == L->cb_pos) {
        char lo[32], hi[40];
        int64_t ei, ej;
        region(L, AX_I, p, lo, hi, &ei);
        region(L, AX_J, p, lo, hi, &ej);
        ln(b, "Cw[%lld x %lld]  # buffer(C, %s): this block of C, rows %lld floats apart, summed "
              "over the whole reduction", (long long)ei, (long long)ej, nb, (long long)L->cb_ld);
    }
    if (id == s->cw) {
        char lo[32], hi[40];
        int64_t ei, ej;
        region(L, AX_I, p, lo, hi, &ei);
        region(L, AX_J, p, lo, hi, &ej);
        if (f->ok)
            ln(b, "acc[%lld x %lld] = 0  # cache_write: register tile, %s", (long long)ei,
               (long long)ej,
               f->dot ? "k lanes summed at write-back"
                      : f->vec ? "vector accumulators" : "scalar accumulators");
        else
            ln(b, "acc[%lld x %lld] = 0  # cache_write: local array (no register tile: %s)",
               (long long)ei, (long long)ej, f->why);
    }
    pseudo_loops(b, L, p + 1, f);
    if (id == s->cw) {
        const char *epi = tile_fuse(L) ? " then epilogue on the last k block" : "";
        ln(b, "%s[tile] %s= acc (= on the first k block)%s",
           L->cb ? "Cw" : L->scratch ? "T" : "C", !L->cb && s->w.beta ? "+" : "", epi);
    }
    if (L->cb && p == L->cb_pos) {
        char e[96];
        snprintf(e, sizeof e, "%s%s%s", s->w.act != MCT_ACT_NONE ? mct_act_name(s->w.act) : "",
                 s->w.act != MCT_ACT_NONE ? "(Cw" : "Cw", s->w.bias ? " + bias" : "");
        ln(b, "C[block] %s= %s%s", s->w.beta ? "+" : "", e, s->w.act != MCT_ACT_NONE ? ")" : "");
    }
    b->ind--;
}

int mct_cg_lower_pseudo(const mct_sched *s, const mct_target *t, char **out)
{
    lw_t L;
    sb_t b = {0};
    char wl[256], sc[4096];
    if (!s || !out)
        return MCT_EINVAL;
    setup(&L, s, t, "k");
    mct_wl_format(&s->w, wl, sizeof wl);
    mct_sched_format(s, sc, sizeof sc);
    ln(&b, "# %s", wl);
    ln(&b, "# schedule: %s", sc[0] ? sc : "(untuned: the plain loop nest)");
    if (s->w.op == MCT_OP_BMM)
        ln(&b, "# per head b: A = Q[b], B = KV[b / %lld], C = C[b]", (long long)s->w.group);
    fast_t f;
    analyse_fast(&L, &f);
    if (L.q) {
        char fb[24];
        const char *sc = s->w.wfmt == MCT_RT_WF_I8 ? " times its channel's scale"
                         : s->w.wfmt == MCT_RT_WF_Q4 ? " times its group's scale" : "";
        static const char *const dpn[] = {"", "int8 dot products (vpdpbusd, 512-bit)",
                                          "int8 dot products (vpmaddubsw + vpmaddwd, 256-bit)",
                                          "bf16 dot products (vdpbf16ps)",
                                          "int8 dot products (AVX-VNNI vpdpbusd, 256-bit)"};
        if (L.amx)
            ln(&b, "# B is %s: widen(B, amx): A rounded once per call, row by row, to %s; AMX "
                   "tiles (%s) on blocks of %d x %d of C, k in steps of %d, B in the tiles' VNNI "
                   "layout; the nest's other loops do not apply",
               mct_rt_wfmt_name(s->w.wfmt, s->w.wgroup, fb),
               s->w.wfmt == MCT_RT_WF_BF16 ? "bf16" : "int8 with the row's scale max|a|/127",
               s->w.wfmt == MCT_RT_WF_BF16 ? "tdpbf16ps" : "tdpbssd", L.amx_sh.ri * L.amx_sh.tr,
               16 * L.amx_sh.rj, L.amx_sh.ks);
        else if (s->widen == CG_WIDEN_AMX)
            ln(&b, "# B is %s: widen(B, amx) not taken (%s): each load of B converts the weight "
                   "to f32%s", mct_rt_wfmt_name(s->w.wfmt, s->w.wgroup, fb), L.dp_why, sc);
        else if (L.dp)
            ln(&b, "# B is %s: widen(B, dot): A rounded once per call, row by row, to %s; %s; the "
                   "weights are never widened", mct_rt_wfmt_name(s->w.wfmt, s->w.wgroup, fb),
               L.dp == DP_BF16 ? "bf16" : "int8 with the row's scale max|a|/127", dpn[L.dp]);
        else if (s->widen == CG_WIDEN_DOT)
            ln(&b, "# B is %s: widen(B, dot) not taken (%s): each load of B converts the weight "
                   "to f32%s", mct_rt_wfmt_name(s->w.wfmt, s->w.wgroup, fb), L.dp_why, sc);
        else if (s->widen == CG_WIDEN_PANEL)
            ln(&b, "# B is %s: widen(B, panel): the pack of B converts each weight to f32%s, so "
                   "the tile reads f32", mct_rt_wfmt_name(s->w.wfmt, s->w.wgroup, fb), sc);
        else
            ln(&b, "# B is %s: widen(B, reg): each load of B converts the weight to f32%s (%s "
                   "bytes per weight streamed)", mct_rt_wfmt_name(s->w.wfmt, s->w.wgroup, fb), sc,
               s->w.wfmt == MCT_RT_WF_BF16 ? "2" : s->w.wfmt == MCT_RT_WF_I8 ? "1" : "1/2");
    }
    if (s->prepack) {
        const cg_pack *pk = &s->pack[OPD_B];
        if (pk->panel_axis == AX_K)
            ln(&b, "prepack B -> Bp as rows along k (once, ahead of time)");
        else
            ln(&b, "prepack B -> Bp in panels of %lld columns, k-major inside (once, ahead of "
                   "time)", (long long)pk->panel_w);
    }
    if (s->cw < 0)
        ln(&b, "%s", L.scratch ? "T = 0" : s->w.beta ? "(C keeps its values: C += ...)" : "C = 0");
    pseudo_loops(&b, &L, 0, &f);
    if (L.post) {
        char e[64] = "";
        snprintf(e, sizeof e, "%s%s%s", mct_act_name(s->w.act), s->w.bias ? "(x + bias)" : "(x)",
                 "");
        if (L.scratch)
            ln(&b, "C += %s for x in T  # epilogue pass", e);
        else
            ln(&b, "C = %s  # epilogue pass", e);
    }
    *out = mct_str_take(&b.t);
    return *out ? 0 : MCT_ENOMEM;
}

mct_target mct_target_of_isa(int isa)
{
    if (!mct_isa_get(isa))
        isa = MCT_ISA_GENERIC;
    const mct_isa *x = mct_isa_get(isa);
    return (mct_target){x->vlen, x->attr, x->nregs, isa, 0, (int)x->tier, 0};
}

mct_target mct_target_of_tier(mct_tier t)
{
    mct_target r = mct_target_of_isa(mct_isa_of_tier(t));
    if ((int)t > r.tier && t < MCT_TIER_COUNT)  /* tiers above avx512 lower f32 code as avx512 */
        r.tier = (int)t;
    return r;
}

mct_target mct_target_of_cpu(const mct_cpu *c, mct_tier t)
{
    mct_target r = mct_target_of_tier(t);
    if (c && r.isa != MCT_ISA_GENERIC)
        r.exts = mct_cpu_exts(c, t);
    return r;
}

mct_target mct_target_host(void)
{
    return mct_target_of_cpu(mct_cpu_host(), mct_cpu_tier());
}
