/* Random legal schedules and random mutations: the space that random search, evolutionary search
 * and the MCTS fallback draw from, and what the property test compiles. */
#include "codegen/cg_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rnd(uint64_t *s)
{
    /* splitmix64 */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static long rint_(uint64_t *s, long lo, long hi) /* inclusive */
{
    return lo + (long)(rnd(s) % (uint64_t)(hi - lo + 1));
}

static int chance(uint64_t *s, int pct)
{
    return (int)(rnd(s) % 100) < pct;
}

static const long sizes[] = {2, 3, 4, 5, 6, 7, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384,
                             512, 1024};

static long rsize(uint64_t *s, long below)
{
    for (int t = 0; t < 16; t++) {
        long v = sizes[rnd(s) % (sizeof sizes / sizeof sizes[0])];
        if (v < below)
            return v;
    }
    return below > 2 ? below - 1 : 1;
}

#define CAT(...) (n += snprintf(t + n, sizeof t - (size_t)n, __VA_ARGS__))

/* A register-tile schedule: BLIS-like outer product (j vectorized) or dot product (k vectorized),
 * parameters drawn at random. */
static void tile_form(const mct_workload *w, uint64_t *r, int vlen, int dot, char *out, size_t len)
{
    char t[1024];
    int n = 0;
    int W = vlen > 1 ? vlen : 4;
    const char *b = w->op == MCT_OP_BMM ? "b, " : "";
    if (!dot) {
        long mr = rint_(r, 1, 8), nr = W * rint_(r, 1, 3);
        long mc = mr * rint_(r, 1, 16), nc = nr * rint_(r, 1, 16), kc = rsize(r, 1 << 12);
        if (mc == mr)
            mc = mr + 1 + rint_(r, 0, 7);
        if (nc == nr)
            nc = nr * 2;
        CAT("tile(i, %ld, %ld); tile(j, %ld, %ld); tile(k, %ld); ", mc, mr, nc, nr, kc);
        if (chance(r, 50))
            CAT("reorder(%sj0, k0, i0, j1, i1, k1, i2, j2); ", b);
        else
            CAT("reorder(%si0, j0, k0, i1, j1, k1, i2, j2); ", b);
        int bpk = cg_b_layout(w) == MCT_NT || chance(r, 40);
        if (bpk) {
            /* b=raw: never prepack (the draw is made all the same, so the other workloads'
             * streams stay as they were) */
            if (w->op == MCT_OP_MATMUL && chance(r, 40) && !w->braw)
                CAT("prepack(B, j2); ");
            else  /* low-precision weights: the in-kernel panel is f32, widened at the copy */
                CAT("pack(B, k0, j2); %s", MCT_WL_QUANT(w) ? "widen(B, panel); " : "");
        }
        if (chance(r, 50))
            CAT("pack(A, %s, %s); ", chance(r, 50) ? "k0" : "i1", chance(r, 60) ? "i2" : "k");
        CAT("cache_write(i1); unroll(i2, %ld); vectorize(j2)", mr);
        if (chance(r, 40))
            CAT("; unroll(k1, %ld)", rint_(r, 2, 8));
        if (chance(r, 30))
            CAT("; prefetch(B, k1, %ld)", rint_(r, 1, 16));
        if (chance(r, 30))
            CAT("; prefetch(C, i1, %ld)", rint_(r, 0, 2));
    } else {
        long mr = rint_(r, 1, 4), nr = rint_(r, 1, 6), kv = W * rint_(r, 1, 2);
        long mc = mr * rint_(r, 2, 8);
        CAT("tile(i, %ld, %ld); tile(j, %ld); tile(k, %ld); ", mc, mr, nr, kv);
        CAT("reorder(%si0, i1, j0, k0, i2, j1, k1); ", b);
        if (cg_b_layout(w) == MCT_NN)
            CAT("pack(B, %s, k); ", chance(r, 50) ? "j0" : "i1");
        if (chance(r, 30))
            CAT("pack(A, i0, k); ");
        CAT("cache_write(j0); unroll(i2, %ld); unroll(j1, %ld); vectorize(k1)", mr, nr);
        if (chance(r, 30))
            CAT("; prefetch(B, k0, %ld)", rint_(r, 1, 8));
    }
    snprintf(out, len, "%s", t);
}

/* Random tiles, a random order that keeps levels nested, random annotations. */
static void plain_form(const mct_sched *s0, uint64_t *r, char *out, size_t len)
{
    const mct_workload *w = &s0->w;
    char t[1024];
    int n = 0;
    long dims[3] = {w->M, w->N, w->K};
    int nlev[3] = {1, 1, 1};
    for (int a = 0; a < 3; a++) {
        if (!chance(r, 70))
            continue;
        int lv = (int)rint_(r, 1, 3);
        long f = rsize(r, dims[a] * 2 + 8);
        CAT("tile(%c, %ld", "ijk"[a], f);
        for (int q = 1; q < lv && f > 1; q++) {
            f = rsize(r, f);
            CAT(", %ld", f);
            nlev[a]++;
        }
        nlev[a]++;
        CAT("); ");
    }
    /* random interleaving of the levels */
    char names[16][16];
    int cnt = 0, next[3] = {0, 0, 0};
    if (w->op == MCT_OP_BMM)
        snprintf(names[cnt++], 16, "b");
    int left = nlev[0] + nlev[1] + nlev[2];
    while (left) {
        int a;
        do
            a = (int)rint_(r, 0, 2);
        while (next[a] >= nlev[a]);
        if (nlev[a] == 1)
            snprintf(names[cnt++], 16, "%c", "ijk"[a]);
        else
            snprintf(names[cnt++], 16, "%c%d", "ijk"[a], next[a]);
        next[a]++;
        left--;
    }
    if (w->op == MCT_OP_BMM && chance(r, 30)) { /* move b inward */
        int to = (int)rint_(r, 0, cnt - 1);
        char tmp[16];
        memcpy(tmp, names[0], 16);
        memmove(names[0], names[1], (size_t)to * 16);
        memcpy(names[to], tmp, 16);
    }
    CAT("reorder(");
    for (int q = 0; q < cnt; q++)
        CAT("%s%s", q ? ", " : "", names[q]);
    CAT(")");
    int inner = cnt - 1;
    char ann[8][300];
    int na = 0;
    int pick = (int)rint_(r, 0, cnt - 1);
    snprintf(ann[na++], 300, "cache_write(%s)", names[pick]);
    snprintf(ann[na++], 300, "vectorize(%s)", names[inner]);
    snprintf(ann[na++], 300, "unroll(%s, %ld)", names[rint_(r, 0, cnt - 1)], rint_(r, 2, 8));
    snprintf(ann[na++], 300, "parallel(%s)", names[rint_(r, 0, cnt - 1)]);
    snprintf(ann[na++], 300, "pack(%c, %s, k)", chance(r, 50) ? 'A' : 'B',
             names[rint_(r, 0, cnt - 1)]);
    if (MCT_WL_QUANT(w) && ann[na - 1][5] == 'B')
        strcat(ann[na - 1], "; widen(B, panel)");
    snprintf(ann[na++], 300, "prefetch(%c, %s, %ld)", chance(r, 50) ? 'A' : 'B',
             names[rint_(r, 0, cnt - 1)], rint_(r, 1, 8));
    snprintf(ann[na++], 300, "fuse_epilogue(%s)", names[pick]);
    for (int q = 0; q < na; q++)
        if (chance(r, 45))
            CAT("; %s", ann[q]);
    snprintf(out, len, "%s", t);
}

/* The target whose dot products the draws may use: this process's (what the harness lowers for
 * unless told otherwise) when the width is its own, else one of that width without any. */
static mct_target dot_target(int vlen)
{
    mct_target t = mct_target_host();
    if (t.vlen != vlen)
        t = (mct_target){vlen, "", 0, MCT_ISA_GENERIC, 0, MCT_TIER_GENERIC, 0};
    return t;
}

/* 1 when c with widen(B, dot) is a dot path of t (mct_cg_dot_path), which the harness would
 * otherwise refuse. */
static int takes_dot(const mct_sched *c, const mct_target *t)
{
    return t && mct_cg_dot_path(c, t, NULL, 0) > 0;
}

int mct_sched_random(const mct_workload *w, uint64_t *rng, int vlen, mct_sched **out)
{
    mct_target t = dot_target(vlen);
    return mct_sched_random_for(w, rng, &t, out);
}

int mct_sched_random_for(const mct_workload *w, uint64_t *rng, const mct_target *t,
                         mct_sched **out)
{
    int vlen = t && t->vlen > 0 ? t->vlen : 1;
    char text[1100], why[256];
    mct_sched *s;
    int r = mct_sched_create(w, &s);
    if (r)
        return r;
    for (int attempt = 0; attempt < 200; attempt++) {
        int form = (int)rint_(rng, 0, 2);
        if (form == 0)
            plain_form(s, rng, text, sizeof text);
        else
            tile_form(w, rng, vlen, form == 2, text, sizeof text);
        mct_sched *c;
        if (mct_sched_clone(s, &c))
            break;
        if (mct_sched_apply(c, text, why, sizeof why) == 0) {
            /* sometimes add a parallel loop and a fused epilogue to the tile forms */
            if (form && chance(rng, 40))
                mct_sched_apply(c, chance(rng, 50) ? "parallel(j0)" : "parallel(i0)", NULL, 0);
            if (form && chance(rng, 50))
                mct_sched_apply(c, form == 2 ? "fuse_epilogue(j0)" : "fuse_epilogue(i1)", NULL, 0);
            /* low-precision weights on a dot-form tile: the target's dot products, where it has
             * them (drawn only then, so the other workloads' streams stay as they were) */
            if (form == 2 && MCT_WL_QUANT(w)) {
                mct_sched *d;
                if (mct_sched_clone(c, &d) == 0) {
                    if (mct_sched_apply(d, "widen(B, dot)", NULL, 0) == 0 && takes_dot(d, t) &&
                        chance(rng, 60)) {
                        mct_sched_destroy(c);
                        c = d;
                    } else {
                        mct_sched_destroy(d);
                    }
                }
            }
            mct_sched_destroy(s);
            *out = c;
            return 0;
        }
        mct_sched_destroy(c);
    }
    /* the untuned nest is always legal */
    *out = s;
    return 0;
}

/* Mutations edit the state directly, then the whole state is validated. */
int mct_sched_mutate(mct_sched *s, uint64_t *rng, int vlen, char *what, size_t len)
{
    char nb[8], why[256];
    mct_target dt = dot_target(vlen);
    for (int tries = 0; tries < 64; tries++) {
        mct_sched c = *s;
        int kind = (int)rint_(rng, 0, 7);
        int id = (int)rint_(rng, 0, c.nloops - 1);
        const char *nm = cg_loop_name(&c, id, nb);
        char desc[160];
        switch (kind) {
        case 0: { /* change one tile factor */
            int a = (int)rint_(rng, AX_I, AX_K);
            if (c.ax[a].nlev < 2)
                continue;
            int l = (int)rint_(rng, 1, c.ax[a].nlev - 1);
            int64_t old = c.ax[a].f[l], nv;
            int64_t hi = l > 1 ? c.ax[a].f[l - 1] - 1 : c.ax[a].f[0] * 2;
            int64_t lo = l + 1 < c.ax[a].nlev ? c.ax[a].f[l + 1] + 1 : 1;
            if (hi < lo)
                continue;
            if (chance(rng, 50) && vlen > 1 && (old % vlen) == 0)
                nv = old + (chance(rng, 50) ? vlen : -vlen);
            else if (chance(rng, 50))
                nv = chance(rng, 50) ? old * 2 : old / 2;
            else
                nv = rint_(rng, lo, hi < lo + 512 ? hi : lo + 512);
            if (nv < lo || nv > hi || nv == old)
                continue;
            c.ax[a].f[l] = nv;
            for (int o = 0; o < 2; o++)
                if (c.pack[o].on && c.pack[o].panel_axis == a && c.pack[o].panel_lv == l)
                    c.pack[o].panel_w = nv;
            if (a == AX_K && c.pack[OPD_B].on && c.pack[OPD_B].kb_lv == l)
                c.pack[OPD_B].kb = nv;
            snprintf(desc, sizeof desc, "tile %c level %d: %lld -> %lld", "bijk"[a], l,
                     (long long)old, (long long)nv);
            break;
        }
        case 1: { /* swap two adjacent loops */
            int p = (int)rint_(rng, 0, c.nloops - 2);
            int x = c.order[p];
            c.order[p] = c.order[p + 1];
            c.order[p + 1] = x;
            char n2[8];
            snprintf(desc, sizeof desc, "swap %s and %s", cg_loop_name(&c, c.order[p], nb),
                     cg_loop_name(&c, c.order[p + 1], n2));
            break;
        }
        case 2: /* unroll */
            c.loops[id].unroll = chance(rng, 25) ? 0 : (int)rint_(rng, 2, 16);
            snprintf(desc, sizeof desc, "unroll(%s, %d)", nm, c.loops[id].unroll ? c.loops[id].unroll : 1);
            break;
        case 3: /* parallel on another loop, or none */
            for (int q = 0; q < c.nloops; q++)
                c.loops[q].par = 0;
            if (chance(rng, 80))
                c.loops[id].par = 1;
            snprintf(desc, sizeof desc, c.loops[id].par ? "parallel(%s)" : "no parallel loop", nm);
            break;
        case 4: /* move the cache_write */
            c.cw = chance(rng, 10) ? -1 : id;
            if (c.cw < 0)
                c.fuse = 0;
            snprintf(desc, sizeof desc, c.cw < 0 ? "no cache_write" : "cache_write(%s)", nm);
            break;
        case 5: { /* move or drop a pack */
            int o = (int)rint_(rng, 0, 1);
            if (c.pack[o].on && c.pack[o].at < 0)
                continue;
            if (c.pack[o].on && chance(rng, 30)) {
                c.pack[o].on = 0;
                snprintf(desc, sizeof desc, "no pack of %c", "AB"[o]);
            } else {
                if (!c.pack[o].on) {
                    c.pack[o].on = 1;
                    c.pack[o].panel_axis = AX_K;
                    c.pack[o].panel_w = 1;
                    c.pack[o].panel_lv = 0;
                }
                c.pack[o].at = id;
                snprintf(desc, sizeof desc, "pack %c at %s", "AB"[o], nm);
            }
            /* low-precision B: a pack inside the kernel is where it widens (an f32 panel) */
            if (o == OPD_B && MCT_WL_QUANT(&c.w))
                c.widen = c.pack[o].on ? CG_WIDEN_PANEL : CG_WIDEN_REG;
            break;
        }
        case 6: { /* prefetch */
            int o = (int)rint_(rng, 0, 2), d = (int)rint_(rng, o == OPD_C ? 0 : 1, 16);
            /* the operand's first prefetch moves; another one of it already at that loop goes
             * (two at one loop would print twice and parse back as one) */
            int found = 0;
            for (int q = 0; q < c.npf; q++)
                if (c.pf[q].opd == o && !found) {
                    c.pf[q].loop = id;
                    c.pf[q].dist = d;
                    found = 1;
                } else if (c.pf[q].opd == o && c.pf[q].loop == id) {
                    c.pf[q--] = c.pf[--c.npf];
                }
            if (!found && c.npf < CG_MAXPF)
                c.pf[c.npf++] = (cg_pf){.opd = o, .loop = id, .dist = d};
            snprintf(desc, sizeof desc, "prefetch(%c, %s, %d)", "ABC"[o], nm, d);
            break;
        }
        default: /* fuse or unfuse the epilogue; low-precision B: or flip widen(B, reg|dot) */
            if (MCT_WL_QUANT(&c.w) && chance(rng, 50)) {
                if (c.widen == CG_WIDEN_DOT)
                    c.widen = CG_WIDEN_REG;
                else if (c.widen == CG_WIDEN_REG) {
                    c.widen = CG_WIDEN_DOT;
                    if (cg_validate(&c, why, sizeof why) || !takes_dot(&c, &dt))
                        continue;
                } else
                    continue;
                snprintf(desc, sizeof desc, "widen(B, %s)", c.widen == CG_WIDEN_DOT ? "dot"
                         : "reg");
                break;
            }
            if (c.cw < 0)
                continue;
            c.fuse = !c.fuse;
            snprintf(desc, sizeof desc, c.fuse ? "fuse_epilogue" : "unfused epilogue");
            break;
        }
        if (cg_validate(&c, why, sizeof why))
            continue;
        /* an edit that leaves the dot form keeps the edit and widens at each load instead: the
         * harness refuses a dot the target does not take */
        if (c.widen == CG_WIDEN_DOT && !takes_dot(&c, &dt))
            c.widen = CG_WIDEN_REG;
        char a[4096], b[4096];
        mct_sched_format(s, a, sizeof a);
        mct_sched_format(&c, b, sizeof b);
        if (!strcmp(a, b))
            continue;
        *s = c;
        if (what && len)
            snprintf(what, len, "%s", desc);
        return 0;
    }
    return MCT_ENOTAPPLIC;
}
