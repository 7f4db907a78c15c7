/* widen(B, amx): the AMX kernel of a bf16 or i8 workload (lower.c calls in where the path is
 * taken; codegen.h states the contract).
 *
 * The kernel keeps the schedule's tile block and nothing else of its nest: C is computed in blocks
 * of RB rows and CB columns (the block the cache_write loop holds: RB rows in RI tiles of TR rows,
 * CB = 16 or 32 columns in RJ tiles of 16), j blocks outermost (the parallel loop when the schedule
 * has one), i blocks inside, K whole in steps of KS (32 bf16 pairs / 64 int8 quads), so each B
 * column strip is read once per call from the cache while every row block passes over it. All
 * sizes are padded: A rounded into a zeroed buffer of Mp x Kp, B packed by FN_pack_b into zeroed
 * tiles of Np x Kp, so the tiles always load whole and zero padding adds nothing to the exact
 * sums; the write-back keeps rows < M and columns < N only. */
#include "codegen/cg_int.h"
#include "codegen/text.h"
#include "runtime/dispatch.h"

#include <stdio.h>
#include <string.h>

/* The block of axis ax that the body of the loop at position pc sees: the step of the innermost
 * loop of ax at or outside pc, the whole extent when there is none. */
static int64_t amx_block(const mct_sched *s, int ax, int pc, int64_t whole)
{
    int64_t e = whole;
    for (int q = 0; q <= pc && q < s->nloops; q++)
        if (s->loops[s->order[q]].axis == ax)
            e = cg_step(s, s->order[q]);
    return e;
}

int cg_amx_shape(const mct_sched *s, int isa, int tier, cg_amx *out, char *why, size_t len)
{
    const mct_workload *w = &s->w;
    cg_amx a = {0};
    if (s->widen != CG_WIDEN_AMX)
        return mct_errf(why, len, MCT_ENOTAPPLIC, "no widen(B, amx)");
    if (isa != MCT_ISA_AVX512 || tier < MCT_TIER_AMX)
        return mct_errf(why, len, MCT_ENOTAPPLIC, "AMX tiles need tier amx (amx-tile, amx-bf16, "
                        "amx-int8 with the OS's tile state); the target's tier is %s",
                        mct_tier_name((mct_tier)tier));
    if (w->wfmt == MCT_RT_WF_Q4 && w->wgroup % 32)
        return mct_errf(why, len, MCT_ENOTAPPLIC, "AMX tiles take q4 in whole groups of 32 k (an "
                        "int8 tile's k step): group %d is not a multiple of 32", w->wgroup);
    if (w->wfmt != MCT_RT_WF_BF16 && w->wfmt != MCT_RT_WF_I8 && w->wfmt != MCT_RT_WF_Q4)
        return mct_errf(why, len, MCT_ENOTAPPLIC, "AMX tiles take bf16, i8 and q4 weights");
    if (s->cw < 0)
        return mct_errf(why, len, MCT_ENOTAPPLIC, "AMX tiles need a cache_write: its block is the "
                        "tile block of C");
    if (s->prepack || s->pack[OPD_A].on || s->pack[OPD_B].on)
        return mct_errf(why, len, MCT_ENOTAPPLIC, "AMX tiles read B in their own tile layout "
                        "(FN_pack_b) and A rounded per call: drop pack and prepack");
    int pc = cg_pos(s, s->cw);
    int64_t ei = amx_block(s, AX_I, pc, w->M), ej = amx_block(s, AX_J, pc, w->N);
    if (!(ei >= 1 && ei <= 16) && ei != 32)
        return mct_errf(why, len, MCT_ENOTAPPLIC, "AMX tiles hold 16 rows: the cache_write block "
                        "has %lld rows of C (1..16, or 32 in two tiles)", (long long)ei);
    if (ej != 16 && ej != 32)
        return mct_errf(why, len, MCT_ENOTAPPLIC, "AMX tiles hold 16 columns: the cache_write "
                        "block has %lld columns of C (16, or 32 in two tiles)", (long long)ej);
    /* q4: one tile step never crosses a group, whose int32 sum is scaled before the next */
    a.ks = w->wfmt == MCT_RT_WF_BF16 ? 32 : w->wfmt == MCT_RT_WF_Q4 && w->wgroup % 64 ? 32 : 64;
    for (int l = 1; l < s->ax[AX_K].nlev; l++)
        if (s->ax[AX_K].f[l] % a.ks)
            return mct_errf(why, len, MCT_ENOTAPPLIC, "AMX tiles step k by %d (%s): a k block of "
                            "%lld is not a multiple", a.ks,
                            w->wfmt == MCT_RT_WF_BF16 ? "bf16 pairs" : "int8 quads",
                            (long long)s->ax[AX_K].f[l]);
    a.ri = ei > 16 ? 2 : 1;
    a.tr = ei > 16 ? 16 : (int)ei;
    a.rj = (int)(ej / 16);
    for (int p = 0; p < s->nloops; p++)
        if (s->loops[s->order[p]].par)
            a.par = 1;
    *out = a;
    if (why && len)
        why[0] = 0;
    return 0;
}

#define L1(...) (mct_str_addf(b, __VA_ARGS__), mct_str_puts(b, "\n"))

/* FN_packed_size and FN_pack_b: the plain layout (runtime/quant.h) into whole B tiles. Tile
 * (c, kb), c a strip of 16 columns, kb a block of KS k, is 1024 bytes at (c * nkb + kb) * 1024:
 * row r holds for each column n the 64/16 = 4 bytes of k = kb*KS + r*(KS/16) + 0.. (the VNNI
 * pairs of bf16 or quads of int8 that tdpbf16ps and tdpbssd read). Then (i8) the Np scales. */
static void emit_amx_pack_q4(mct_str *b, const mct_sched *s, const cg_amx *a, const char *fn,
                             const char *attr_s);

static void emit_amx_pack(mct_str *b, const mct_sched *s, const cg_amx *a, const char *fn,
                          const char *attr_s)
{
    int bf = s->w.wfmt == MCT_RT_WF_BF16, es = bf ? 2 : 1, cb = 16 * a->rj;
    if (s->w.wfmt == MCT_RT_WF_Q4) {
        emit_amx_pack_q4(b, s, a, fn, attr_s);
        return;
    }
    L1("static inline size_t %s_amx_at(long N, long K)", fn);
    L1("{");
    L1("    return (size_t)((N + %d) / %d * %d) * (size_t)((K + %d) / %d * %d) * %d;", cb - 1, cb,
       cb, a->ks - 1, a->ks, a->ks, es);
    L1("}");
    L1("size_t %s_packed_size(" MCT_RT_STR(MCT_RT_PSIZE_PARAMS) ")", fn);
    L1("{");
    L1("    return (%s_amx_at(N, K) + %s + 3) / 4;", fn,
       bf ? "0" : "4 * (size_t)((N + 31) / 32 * 32)");
    L1("}");
    L1("%svoid %s_pack_b(" MCT_RT_STR(MCT_RT_PACK_PARAMS) ")", attr_s, fn);
    L1("{");
    L1("    const unsigned char *q = (const unsigned char *)B;");
    L1("    unsigned char *d = (unsigned char *)Bp;");
    L1("    const long nkb = (K + %d) / %d, np = (N + %d) / %d * %d;", a->ks - 1, a->ks, cb - 1, cb,
       cb);
    L1("    (void)ldb;");
    L1("    memset(d, 0, %s_amx_at(N, K));", fn);
    L1("    for (long n = 0; n < N; n++)");
    L1("        for (long k = 0; k < K; k++) {");
    L1("            const long kb = k / %d, r = (k %% %d) / %d, o = k %% %d;", a->ks, a->ks,
       a->ks / 16, a->ks / 16);
    L1("            unsigned char *t = d + ((size_t)(n / 16) * (size_t)nkb + (size_t)kb) * 1024 + "
       "r * 64 + (n %% 16) * 4 + o * %d;", es);
    L1("            memcpy(t, q + ((size_t)n * (size_t)K + (size_t)k) * %d, %d);", es, es);
    L1("        }");
    if (!bf) {  /* the scales: [N] floats after the data at 16 bytes, padding channels 0 */
        L1("    const size_t pat = ((size_t)N * (size_t)K + 15) / 16 * 16;");
        L1("    float *sc = (float *)(void *)(d + %s_amx_at(N, K));", fn);
        L1("    memcpy(sc, q + pat, 4 * (size_t)N);");
        L1("    for (long n = N; n < (N + 31) / 32 * 32; n++) sc[n] = 0.0f;");
    }
    L1("    (void)np;");
    L1("}");
}

/* q4: the int8 tiles of emit_amx_pack (KS/4 rows of 64 bytes) kept as nibbles q + 8, half the
 * bytes: in each 128 bytes of a tile, byte x < 64 in the low nibble of packed byte x, byte 64 + x
 * in its high nibble, so the kernel stages a tile with a mask, a shift and a subtract per 64
 * bytes. Tile (c, kb) at (c * nkb + kb) * KS * 8; then the scales group-major, [K/G][Np], so the
 * scales of a group for 16 columns are one vector. */
static void emit_amx_pack_q4(mct_str *b, const mct_sched *s, const cg_amx *a, const char *fn,
                             const char *attr_s)
{
    int cb = 16 * a->rj, G = s->w.wgroup;
    L1("static inline size_t %s_amx_at(long N, long K)", fn);
    L1("{");
    L1("    return (size_t)((N + %d) / %d * %d) * (size_t)K / 2;", cb - 1, cb, cb);
    L1("}");
    L1("size_t %s_packed_size(" MCT_RT_STR(MCT_RT_PSIZE_PARAMS) ")", fn);
    L1("{");
    L1("    return (%s_amx_at(N, K) + 4 * (size_t)(K / %d) * (size_t)((N + %d) / %d * %d) + 3) "
       "/ 4;", fn, G, cb - 1, cb, cb);
    L1("}");
    L1("%svoid %s_pack_b(" MCT_RT_STR(MCT_RT_PACK_PARAMS) ")", attr_s, fn);
    L1("{");
    L1("    const unsigned char *q = (const unsigned char *)B;");
    L1("    unsigned char *d = (unsigned char *)Bp;");
    L1("    const long nkb = K / %d, np = (N + %d) / %d * %d, ng = K / %d;", a->ks, cb - 1, cb, cb,
       G);
    L1("    (void)ldb;");
    L1("    memset(d, 0x88, %s_amx_at(N, K));  /* padding: q = 0 */", fn);
    L1("    for (long n = 0; n < N; n++)");
    L1("        for (long k = 0; k < K; k++) {");
    L1("            const size_t e = (size_t)n * (size_t)K + (size_t)k;");
    L1("            const unsigned v = (q[e >> 1] >> ((e & 1) * 4)) & 15u;");
    L1("            const long t = ((k %% %d) / 4) * 64 + (n %% 16) * 4 + k %% 4;", a->ks);
    L1("            unsigned char *p = d + ((size_t)(n / 16) * (size_t)nkb + (size_t)(k / %d)) * "
       "%d + (t / 128) * 64 + t %% 64;", a->ks, a->ks * 8);
    L1("            *p = (t %% 128) >= 64 ? (unsigned char)((*p & 0x0F) | (v << 4)) "
       ": (unsigned char)((*p & 0xF0) | v);");
    L1("        }");
    L1("    const size_t pat = ((size_t)N * (size_t)K / 2 + 15) / 16 * 16;");
    L1("    float *sc = (float *)(void *)(d + %s_amx_at(N, K));", fn);
    L1("    const float *ps = (const float *)(const void *)(q + pat);");
    L1("    for (long g = 0; g < ng; g++)");
    L1("        for (long n = 0; n < np; n++) sc[g * np + n] = n < N ? ps[n * ng + g] : 0.0f;");
    L1("}");
}

/* A rounded per row into Aq_ (Mp x Kp elements, zero padding): bf16 (round to nearest even, a NaN
 * kept quiet) or int8 s8 with the row's scale Asc_[i] = max|a|/127, the same rounding as
 * widen(B, dot) (lower.c, emit_dot_prologue), so the same bound holds. */
static void emit_amx_round_a(mct_str *b, int bf)
{
    L1("    for (long i_ = 0; i_ < M; i_++) {");
    L1("        const float *a_ = A + i_ * lda;");
    if (bf) {
        L1("        unsigned short *q_ = Aq_ + i_ * Kp_;");
        L1("        for (long k_ = 0; k_ < K; k_++) {");
        L1("            unsigned int u_;");
        L1("            memcpy(&u_, a_ + k_, 4);");
        L1("            if ((u_ & 0x7F800000u) == 0x7F800000u && (u_ & 0x7FFFFFu)) "
           "u_ |= 0x400000u;");
        L1("            else u_ += 0x7FFFu + ((u_ >> 16) & 1u);");
        L1("            q_[k_] = (unsigned short)(u_ >> 16);");
        L1("        }");
    } else {
        L1("        float mx_ = 0.0f;");
        L1("        for (long k_ = 0; k_ < K; k_++) {");
        L1("            float v_ = a_[k_] < 0 ? -a_[k_] : a_[k_];");
        L1("            if (!(v_ <= mx_)) mx_ = v_;  /* a NaN is kept */");
        L1("        }");
        L1("        const float sc_ = mx_ / 127.0f, inv_ = mx_ > 0.0f ? 127.0f / mx_ : 0.0f;");
        L1("        Asc_[i_] = sc_;");
        L1("        signed char *q_ = Aq_ + i_ * Kp_;");
        L1("        for (long k_ = 0; k_ < K; k_++) {");
        L1("            float x_ = a_[k_] * inv_;");
        L1("            x_ = x_ >= 127.0f ? 127.0f : x_ >= -127.0f ? x_ : -127.0f;");
        L1("            x_ = (x_ + 12582912.0f) - 12582912.0f;");
        L1("            q_[k_] = (signed char)(int)x_;");
        L1("        }");
    }
    L1("    }");
}

void cg_amx_emit(mct_str *b, const mct_sched *s, const cg_amx *a, const char *fn,
                 const char *attr_s, int threads)
{
    const mct_workload *w = &s->w;
    int bf = w->wfmt == MCT_RT_WF_BF16, es = bf ? 2 : 1, q4 = w->wfmt == MCT_RT_WF_Q4;
    int rb = a->ri * a->tr, cb = 16 * a->rj;
    emit_amx_pack(b, s, a, fn, attr_s);
    /* the tile permission, asked once per process (Linux: arch_prctl(ARCH_REQ_XCOMP_PERM,
     * XFEATURE_XTILEDATA)): a kernel whose request the OS refuses returns MCT_EUNSUPPORTED before
     * any tile instruction, so it never faults. syscall is declared here, as glibc does, so the
     * text needs no feature-test macro before its first include */
    L1("#if defined(__linux__) && defined(__x86_64__)");
    /* default visibility: a generated library declares its runtime hidden (emit.c) */
    L1("extern long syscall(long, ...) __attribute__((visibility(\"default\")));");
    L1("#endif");
    L1("static int %s_amx_perm_;  /* 0: not asked, 1: granted, -1: refused */", fn);
    L1("static int %s_amx_ready(void)", fn);
    L1("{");
    L1("    int st = __atomic_load_n(&%s_amx_perm_, __ATOMIC_ACQUIRE);", fn);
    L1("    if (!st) {  /* two threads asking at once both get the same answer */");
    L1("#if defined(__linux__) && defined(__x86_64__)");
    L1("        st = syscall(158 /* SYS_arch_prctl */, 0x1023 /* ARCH_REQ_XCOMP_PERM */, "
       "18 /* XFEATURE_XTILEDATA */) == 0 ? 1 : -1;");
    L1("#else");
    L1("        st = -1;");
    L1("#endif");
    L1("        __atomic_store_n(&%s_amx_perm_, st, __ATOMIC_RELEASE);", fn);
    L1("    }");
    L1("    return st > 0;");
    L1("}");
    L1("%sint %s(" MCT_RT_STR(MCT_RT_KERNEL_PARAMS) ")", attr_s, fn);
    L1("{");
    L1("    if (M <= 0 || N <= 0 || K <= 0 || batch <= 0) return 0;");
    L1("    (void)ldb; (void)bias; (void)group; (void)sA; (void)sB; (void)sC;");
    L1("    if (!%s_amx_ready()) return %d;  /* MCT_EUNSUPPORTED: no tile state */", fn,
       MCT_EUNSUPPORTED);
    L1("    const long Kp_ = (K + %d) / %d * %d, Mp_ = (M + %d) / %d * %d, nkb_ = Kp_ / %d;",
       a->ks - 1, a->ks, a->ks, rb - 1, rb, rb, a->ks);
    L1("    const long njb_ = (N + %d) / %d;", cb - 1, cb);
    const char *aty = bf ? "unsigned short" : "signed char";
    L1("    %s *Aq_ = (%s *)calloc((size_t)Mp_ * (size_t)Kp_, %d);", aty, aty, es);
    L1("    float *Asc_ = (float *)malloc(sizeof(float) * (size_t)M);");
    L1("    const unsigned char *Bq_ = (const unsigned char *)B;");
    L1("    const float *Bs_ = (const float *)(const void *)(Bq_ + %s_amx_at(N, K));", fn);
    L1("    (void)Bs_;");
    L1("    if (!Aq_ || !Asc_) { free(Aq_); free(Asc_); return -2; }");
    emit_amx_round_a(b, bf);
    L1("    int fail_ = 0;");
    L1("    (void)fail_;");
    if (a->par) {
        L1("#ifdef %s_OMP", fn);
        if (threads > 0)
            L1("#pragma omp parallel for schedule(static) num_threads(%d)", threads);
        else
            L1("#pragma omp parallel for schedule(static)");
        L1("#endif");
    }
    L1("    for (long jb_ = 0; jb_ < njb_; jb_++) {");
    if (q4) {  /* the strip's tiles staged as int8 once, read by every row block */
        L1("        signed char *Bt_ = (signed char *)aligned_alloc(64, (size_t)%d * "
           "(size_t)nkb_ * %d);", a->rj, 16 * a->ks);
        L1("        if (!Bt_) { __atomic_store_n(&fail_, 1, __ATOMIC_RELAXED); continue; }");
        L1("        const __m512i m_ = _mm512_set1_epi8(15), e_ = _mm512_set1_epi8(8);");
        L1("        for (long t_ = 0; t_ < %d * nkb_; t_++) {", a->rj);
        L1("            const unsigned char *p_ = Bq_ + ((size_t)jb_ * %d * (size_t)nkb_ + "
           "(size_t)t_) * %d;", a->rj, 8 * a->ks);
        L1("            signed char *d_ = Bt_ + (size_t)t_ * %d;", 16 * a->ks);
        L1("            for (int h_ = 0; h_ < %d; h_++) {", a->ks / 8);
        L1("                __m512i v_ = _mm512_loadu_si512((const void *)(p_ + h_ * 64));");
        L1("                _mm512_store_si512((void *)(d_ + h_ * 128), "
           "_mm512_sub_epi8(_mm512_and_si512(v_, m_), e_));");
        L1("                _mm512_store_si512((void *)(d_ + h_ * 128 + 64), "
           "_mm512_sub_epi8(_mm512_and_si512(_mm512_srli_epi16(v_, 4), m_), e_));");
        L1("            }");
        L1("        }");
    }
    /* palette 1: bytes 16.. the tiles' bytes per row, 48.. their rows; C tiles 0..3 (TR rows of
     * 16 f32 or int32), A tiles 4, 5 (TR rows of KS elements), B tiles 6, 7 (KS/2 or KS/4 rows of
     * 64 bytes); each thread loads its own configuration */
    L1("        unsigned char cfg_[64] __attribute__((aligned(64)));");
    L1("        memset(cfg_, 0, sizeof cfg_);");
    L1("        cfg_[0] = 1;");
    for (int r = 0; r < a->ri; r++) {
        for (int c = 0; c < a->rj; c++)
            L1("        cfg_[16 + 2 * %d] = 64; cfg_[48 + %d] = %d;", r * 2 + c, r * 2 + c, a->tr);
        L1("        cfg_[16 + 2 * %d] = %d; cfg_[48 + %d] = %d;", 4 + r, a->ks * es, 4 + r, a->tr);
    }
    for (int c = 0; c < a->rj; c++)
        L1("        cfg_[16 + 2 * %d] = 64; cfg_[48 + %d] = %d;", 6 + c, 6 + c, a->ks * es / 4);
    L1("        _tile_loadconfig(cfg_);");
    L1("        %s ct_[%d][%d] __attribute__((aligned(64)));", bf ? "float" : "int", rb, cb);
    if (q4)
        L1("        float fa_[%d][%d] __attribute__((aligned(64)));", rb, cb);
    L1("        for (long i0_ = 0; i0_ < Mp_; i0_ += %d) {", rb);
    L1("            const long ie_ = i0_ + %d < M ? i0_ + %d : M;", rb, rb);
    L1("            const long j0_ = jb_ * %d, je_ = j0_ + %d < N ? j0_ + %d : N;", cb, cb, cb);
    if (q4) {  /* each group's exact int32 sum times its scale, summed in f32 */
        L1("            memset(fa_, 0, sizeof fa_);");
        L1("            for (long g_ = 0; g_ < K / %d; g_++) {", w->wgroup);
    } else
        L1("            {");
    for (int r = 0; r < a->ri; r++)
        for (int c = 0; c < a->rj; c++)
            L1("            _tile_zero(%d);", r * 2 + c);
    if (q4)
        L1("            for (long kb_ = g_ * %d; kb_ < (g_ + 1) * %d; kb_++) {",
           w->wgroup / a->ks, w->wgroup / a->ks);
    else
        L1("            for (long kb_ = 0; kb_ < nkb_; kb_++) {");
    for (int r = 0; r < a->ri; r++)
        L1("                _tile_loadd(%d, Aq_ + (i0_ + %d) * Kp_ + kb_ * %d, Kp_ * %d);", 4 + r,
           r * a->tr, a->ks, es);
    for (int c = 0; c < a->rj; c++) {
        if (q4)
            L1("                _tile_loadd(%d, Bt_ + ((size_t)%d * (size_t)nkb_ + (size_t)kb_) * "
               "%d, 64);", 6 + c, c, 16 * a->ks);
        else
            L1("                _tile_loadd(%d, Bq_ + ((size_t)(jb_ * %d + %d) * (size_t)nkb_ + "
               "(size_t)kb_) * 1024, 64);", 6 + c, a->rj, c);
    }
    for (int r = 0; r < a->ri; r++)
        for (int c = 0; c < a->rj; c++)
            L1("                %s(%d, %d, %d);", bf ? "_tile_dpbf16ps" : "_tile_dpbssd", r * 2 + c,
               4 + r, 6 + c);
    L1("            }");
    for (int r = 0; r < a->ri; r++)
        for (int c = 0; c < a->rj; c++)
            L1("            _tile_stored(%d, &ct_[%d][%d], %d);", r * 2 + c, r * a->tr, c * 16,
               cb * 4);
    if (q4) {
        L1("            const float *gs_ = Bs_ + g_ * njb_ * %d + j0_;", cb);
        L1("            for (long x_ = 0; x_ < ie_ - i0_; x_++) {");
        for (int c = 0; c < a->rj; c++)
            L1("                _mm512_store_ps(&fa_[x_][%d], _mm512_fmadd_ps(_mm512_cvtepi32_ps("
               "_mm512_load_si512((const void *)&ct_[x_][%d])), _mm512_loadu_ps(gs_ + %d), "
               "_mm512_load_ps(&fa_[x_][%d])));", 16 * c, 16 * c, 16 * c, 16 * c);
        L1("            }");
    }
    L1("            }");
    /* the write-back: the rounding's scales, then the epilogue as every path applies it */
    L1("            for (long i_ = i0_; i_ < ie_; i_++) {");
    L1("                float *c_ = C + i_ * ldc;");
    L1("                for (long j_ = j0_; j_ < je_; j_++) {");
    if (bf)
        L1("                    float v_ = ct_[i_ - i0_][j_ - j0_];");
    else if (q4)
        L1("                    float v_ = fa_[i_ - i0_][j_ - j0_] * Asc_[i_];");
    else
        L1("                    float v_ = (float)ct_[i_ - i0_][j_ - j0_] * Asc_[i_] * Bs_[j_];");
    if (w->bias)
        L1("                    v_ += bias[j_];");
    if (w->act != MCT_ACT_NONE)
        L1("                    v_ = %s_act(v_);", fn);
    L1("                    c_[j_] %s v_;", w->beta ? "+=" : "=");
    L1("                }");
    L1("            }");
    L1("        }");
    L1("        _tile_release();");
    if (q4)
        L1("        free(Bt_);");
    L1("    }");
    L1("    free(Aq_);");
    L1("    free(Asc_);");
    L1("    return fail_ ? -2 : 0;  /* a strip whose staging could not be allocated */");
    L1("}");
}
