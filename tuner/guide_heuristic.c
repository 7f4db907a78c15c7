/* Built-in guides: heuristic (an analytical model of registers and caches plus the trend
 * between grandparent, parent and node) and random (a random legal mutation).
 *
 * The heuristic reasons the way a BLIS configuration is derived:
 *   - register tile: MR rows x NV vectors of VLEN floats, with MR*NV accumulators plus NV B
 *     vectors plus one A broadcast fitting the register file (the target's count: 32 zmm with
 *     AVX-512, 16 with AVX2); all M rows in one tile first when they fit, so each weight is
 *     loaded once; with 16 registers, 8-10 accumulators before 12 (see reg_tiles);
 *   - KC so that a KC x NR micro-panel of B fits L1, MC so that the MC x KC block of A fits in
 *     half of L2, NC so that a KC x NC block of B fits in half of L2 as well;
 *   - A packed in MR-row panels per KC block, B prepacked in NR-column panels (matmul: weights)
 *     or packed per KC block (bmm: activations, and b=raw matmuls: B taken as given, so it is
 *     copied inside the kernel); one parallel loop when threads > 1;
 *   - M <= 4: the dot form (k vectorized, several B rows at once), the shape of a GEMV.
 *   - b=raw (no prepack): copying B inside the kernel costs a read and a write of B per call;
 *     the copy pays when more than one register tile of rows reads each packed panel (M > MR),
 *     so at M <= MR the forms that read B where it is (the dot form, the nn streaming form) come
 *     first, and the packed forms follow as alternatives.
 * A step that made the parent slower than the grandparent (beyond the noise of both) is undone
 * with drop(N) on the node, keeping what the node added since.
 * Once a node has that structure it moves one knob at a time (KC, MC, NC, MR, NR, k unroll,
 * prefetch, packing); the trend decides which first: a knob whose last move made the node
 * faster than its parent is moved again the same way, one that made it slower is moved the
 * other way. Every proposal is tried on a clone of the node first; proposals that do not apply,
 * that change nothing, or that produce a schedule this guide already proposed are skipped, so
 * the `want` proposals returned are distinct and new. */
#include "tuner/guide.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/text.h"

#define MAXP 96

typedef struct hguide {
    mct_guide g;
    uint8_t (*seen)[16];    /* schedule hashes (xor workload hash) already proposed */
    size_t nseen, capseen;
    int random;             /* 1: the random guide */
} hguide;

static int seen_has(hguide *h, const uint8_t k[16])
{
    for (size_t i = 0; i < h->nseen; i++)
        if (!memcmp(h->seen[i], k, 16))
            return 1;
    return 0;
}

static int seen_add(hguide *h, const uint8_t k[16])
{
    if (h->nseen == h->capseen) {
        size_t n = h->capseen ? h->capseen * 2 : 256;
        uint8_t (*p)[16] = realloc(h->seen, n * 16);
        if (!p)
            return MCT_ENOMEM;
        h->seen = p;
        h->capseen = n;
    }
    memcpy(h->seen[h->nseen++], k, 16);
    return 0;
}

/* The schedule's statements, parsed from its canonical text. */
typedef struct stmt {
    char name[16];
    char args[6][24];
    int nargs;
} stmt;

static int parse_stmts(const mct_sched *s, stmt *st, int max)
{
    char text[4096], *save = NULL;
    mct_sched_format(s, text, sizeof text);
    int n = 0;
    for (char *t = strtok_r(text, ";", &save); t && n < max; t = strtok_r(NULL, ";", &save)) {
        while (*t == ' ')
            t++;
        char *op = strchr(t, '(');
        if (!op)
            continue;
        stmt *x = &st[n];
        memset(x, 0, sizeof *x);
        snprintf(x->name, sizeof x->name, "%.*s", (int)(op - t), t);
        char *a = op + 1, *end = strrchr(a, ')');
        if (end)
            *end = 0;
        char *s2 = NULL;
        for (char *p = strtok_r(a, ",", &s2); p && x->nargs < 6; p = strtok_r(NULL, ",", &s2)) {
            while (*p == ' ')
                p++;
            snprintf(x->args[x->nargs++], 24, "%s", p);
        }
        n++;
    }
    return n;
}

static const stmt *find_stmt(const stmt *st, int n, const char *name, const char *arg0)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(st[i].name, name) && (!arg0 || !strcmp(st[i].args[0], arg0)))
            return &st[i];
    return NULL;
}

/* Factor l (1-based) of tile(axis, ...), or 0. */
static long tile_f(const stmt *st, int n, const char *axis, int l)
{
    const stmt *t = find_stmt(st, n, "tile", axis);
    if (!t || l >= t->nargs)
        return 0;
    return atol(t->args[l]);
}

typedef struct model {
    int V, nreg;
    long L1, L2, L3;
    long M, N, K;
    int bmm, threads, nn;
    int raw;                /* b=raw: B taken as given, never prepacked */
    int q;                  /* low-precision weights (w=) */
} model;

static void model_of(const mct_guide_ctx *c, model *m)
{
    m->V = c->target && c->target->vlen > 0 ? c->target->vlen : 8;
    /* the ISA table's register count (16 on AVX2, 32 on AVX-512); a target without one is
     * taken by its width */
    m->nreg = c->target && c->target->nregs > 0 ? c->target->nregs : m->V >= 16 ? 32 : 16;
    const mct_cpu *cpu = c->cpu ? c->cpu : mct_cpu_host();
    m->L1 = cpu->cache_kb[0] ? (long)cpu->cache_kb[0] * 1024 : 32768;
    m->L2 = cpu->cache_kb[2] ? (long)cpu->cache_kb[2] * 1024 : 1 << 20;
    m->L3 = cpu->cache_kb[3] ? (long)cpu->cache_kb[3] * 1024 : 8 << 20;
    m->M = (long)c->w->M;
    m->N = (long)c->w->N;
    m->K = (long)c->w->K;
    m->bmm = c->w->op == MCT_OP_BMM;
    m->nn = c->w->layout == MCT_NN;
    m->raw = c->w->braw;
    m->q = MCT_WL_QUANT(c->w);
    m->threads = c->threads > 0 ? c->threads : 1;
}

static long pow2_floor(long x)
{
    long p = 1;
    while (p * 2 <= x)
        p *= 2;
    return p;
}

/* A register tile of mr rows x nv vectors fits the register file: mr * nv accumulators, nv
 * vectors of B and one broadcast of A. */
static int tile_fits(const model *m, long mr, long nv)
{
    return mr * nv + nv + 1 <= m->nreg;
}

static long round_up(long x, long m)
{
    return (x + m - 1) / m * m;
}

/* A full outer-product (BLIS) schedule for register tile mr x nv vectors and KC kc.
 * Two rules were measured and not adopted (2026-12-01, `mctune measure`, B from memory, 1
 * thread, medians of 3 interleaved runs), so B is prepacked without k chunks here and the B
 * prefetch stays 8 iterations of k1 ahead (the knobs still move both):
 *   - k chunks: prepack(B, j2, k1) vs prepack(B, j2), matmul nt N=1024 K=4096, avx512, 8x2v,
 *     KC 256: M=16 57.85 vs 59.28 GFLOP/s (0.98x); M=128 94.98 vs 128.74 (noisy runs, not
 *     faster in any);
 *   - prefetch distance, matmul nt N=4096 K=1024, prefetch(B, k1, D): M=4 avx512 D=8 23.87,
 *     16 23.85, 64 22.90 (none 20.92); M=4 avx2 D=8 21.09, 16 22.04, 64 23.19 (none 19.26);
 *     M=128 avx512 and avx2 within 3% of each other. 16 never beat 8 by more than 5%, and on
 *     avx2 64 was the fastest, so "about 16, not 64" did not hold on this host. */
static void blis_text_c(const model *m, int mr, int nv, long kc, int kunroll, int pf, int cres,
                        char *out, size_t len);

static void blis_text(const model *m, int mr, int nv, long kc, int kunroll, int pf, char *out,
                      size_t len)
{
    blis_text_c(m, mr, nv, kc, kunroll, pf, 0, out, len);
}

/* b=raw (f32): B is copied one KC x NR micro-panel at a time, at j1, and the row tiles that read
 * a micro-panel prefetch the next one's rows of B where they are (the spread prefetch) for the
 * next copy. Measured (2026-12-01, `mctune measure`, B from memory, 1 thread, avx512 8x2v, KC
 * 256, medians of 4 interleaved runs): matmul nt M=128 N=14336 K=4096 b=raw, pack(B, k0, j2)
 * 117.3, pack(B, j1, j2) 124.4, with prefetch(B, j1, 1) 131.8 GFLOP/s (OpenBLAS 120.5).
 * cres: the C-resident order for large M. With j0 outside k0 (BLIS), each KC step reads and
 * writes the whole MC x NC block of C back, and at large M that block no longer fits L2 beside
 * the blocks of A and B, so every step takes C from beyond L2. Here i0 and j0 go outside k0 and
 * NC is cut so the MC x NC block of C takes a quarter of L2: it stays there over the whole k
 * loop. A is packed once per i0 block over all of K when that block is at most 4x L2 (MC cut to
 * fit), else per KC step. Measured (2026-12-01, `mctune measure`, B from memory, 1 thread,
 * avx512 8x2v, KC 256, medians of 6 interleaved runs): matmul nt M=512 N=14336 K=4096 BLIS
 * order 125.7, C-resident (NC 256) 135.2 GFLOP/s (1.08x); at M=128 within 3% either way. */
static void blis_text_c(const model *m, int mr, int nv, long kc, int kunroll, int pf, int cres,
                        char *out, size_t len)
{
    long nr = (long)nv * m->V;
    if (kc > m->K)
        kc = m->K;  /* one k block */
    if (kc < 1)
        kc = 1;
    long mc = m->L2 / 2 / (kc * 4);
    mc = mc / mr * mr;
    if (mc > round_up(m->M, mr))
        mc = round_up(m->M, mr);
    if (mc <= mr)
        mc = mr * 2;
    long nc = m->L2 / 2 / (kc * 4);
    nc = nc / nr * nr;
    if (nc > round_up(m->N, nr))
        nc = round_up(m->N, nr);
    if (nc <= nr)
        nc = nr * 2;
    const char *b = m->bmm ? "b, " : "";
    const char *apk = "i0";
    int whole_n = 0;
    if (!cres && m->M > 32) {
        /* large M in the BLIS order: each j0 block packs the A block again, (N / NC) copies of
         * A per call, while B's panels come once whatever NC is when the A block holds every
         * row, and from beyond L2 under the spread prefetch when it does not: so all of N in
         * one block per thread (each thread packs its A block once per KC step). Measured
         * (2026-12-02, interleaved per-call timing against OpenBLAS in one process, B from
         * memory, 1 thread, AMD EPYC Zen 3, avx2 6x2v, medians of the per-round ratios of 3
         * runs): matmul nt M=128 N=K=4096 KC 512, NC 128 1.00/0.94/0.99x OpenBLAS, NC 4096
         * 1.12/1.00/1.03x (KC 256 1.14/1.11/1.06x); 2 threads parallel(j0), NC 128
         * 1.43/1.34/1.33x OpenBLAS's one thread, NC 2048 (N / 2) 1.55/1.54/1.25x; M=512 MC 126
         * KC 512, NC 128 0.77-0.79x; NC 4096 (KC 512-2048, MC 30-120) 0.93-0.98x in the
         * runs the host left quiet. */
        nc = round_up((m->N + m->threads - 1) / m->threads, nr);
        whole_n = 1;
        /* and a deep KC over prepacked B: the row tiles that read a B micro-panel take it from
         * L2 rather than L1, so KC grows until the micro-panel fills an eighth of L2, and the
         * A block takes up to twice L2 (MC from KC, not from half of L2). Each KC step writes the whole block of C
         * back (from beyond L2 at these M) and pays each row tile's set-up and write-back, so
         * fewer, longer steps win. Measured (2026-12-02, `mctune measure --baseline`, B from
         * memory, 1 thread, Intel Xeon 6/207, 2 MiB L2, avx512 6x4v, against oneDNN 2.6, the
         * best library there): matmul nt M=512 N=K=4096 MC 516, KC 128 0.88-0.92x, 256 0.89x,
         * 512 0.95x, 1024 1.05/1.06x, 2048 0.99x, 4096 0.87x; KC 1024 MC 258 1.00x; M=128 KC
         * 128 1.09x, 1024 1.14x. On Zen 3 (512 KiB L2, 6x2v) the same rule gives KC 1024
         * (measured there before: KC 1024 0.96-1.0x OpenBLAS, KC 512 0.93-0.98x). */
        if (!m->bmm && !m->raw && !m->q) {
            long deep = pow2_floor(m->L2 / 8 / (nr * 4));
            if (deep > kc)
                kc = deep < m->K ? deep : m->K;
            /* the A block up to twice L2, the rows split evenly over the blocks it takes */
            long cap = 2 * m->L2 / (kc * 4), rows = round_up(m->M, mr);
            long nb = cap >= mr ? (rows + cap - 1) / cap : rows / mr;
            mc = round_up((m->M + nb - 1) / nb, mr);
        }
    }
    if (cres) {
        /* the KC slice of A's block a quarter of L2 (not half: C's block takes the next
         * quarter). Measured (2026-12-02, `mctune measure`, B from memory, 1 thread, AMD EPYC
         * Zen 3, 512 KiB L2, avx2 6x2v, KC 512, NC 256, medians of 3 interleaved runs): matmul
         * nt M=512 N=14336 K=4096, MC 126 (a half) 52.2, MC 60 66.2 GFLOP/s */
        long mq = m->L2 / 4 / (kc * 4) / mr * mr;
        if (mq >= 2 * mr && mq < mc)
            mc = mq;
        long cap = 4 * m->L2 / (m->K * 4) / mr * mr;  /* A's i0 block over all of K */
        if (cap >= mr && cap < mc)
            mc = cap;
        else if (cap < mr)
            apk = "k0";
        nc = m->L2 / 4 / (mc * 4) / nr * nr;
        if (nc < 2 * nr)
            nc = 2 * nr;
        if (nc > round_up(m->N, nr))
            nc = round_up(m->N, nr);
    }
    int n = snprintf(out, len,
                     "tile(i, %ld, %d); tile(j, %ld, %ld); tile(k, %ld); "
                     "reorder(%s%s, j1, i1, k1, i2, j2); pack(A, %s, i2); %s; "
                     "cache_write(i1); unroll(i2, %d); vectorize(j2)",
                     mc, mr, nc, nr, kc, b, cres ? "i0, j0, k0" : "j0, k0, i0", apk,
                     m->bmm || (m->raw && m->q) ? "pack(B, k0, j2)" :
                     m->raw ? "pack(B, j1, j2)" : "prepack(B, j2)", mr);
    if (kunroll > 1 && n > 0 && (size_t)n < len)
        n += snprintf(out + n, len - (size_t)n, "; unroll(k1, %d)", kunroll);
    if (pf > 0 && n > 0 && (size_t)n < len)
        n += snprintf(out + n, len - (size_t)n, "; prefetch(B, k1, %d)", pf);
    else if (m->M > mr && n > 0 && (size_t)n < len)
        /* several row tiles read each B micro-panel: they prefetch the next one into L2, each
         * its share (the spread form of prefetch(B, j1, D), codegen.h). Measured (2026-12-01,
         * `mctune measure`, B from memory, 1 thread, avx512, 8x2v, KC 256, medians of 5
         * interleaved runs): matmul nt M=128 N=K=4096 136.6 -> 152.2 GFLOP/s (1.11x); M=16
         * 77.4 (prefetch(B, k1, 16)) -> 80.2. The next tile's rows of C as well: M=128 143.0
         * -> 147.8, M=512 (C-resident order) 131.0 -> 135.2. */
        n += snprintf(out + n, len - (size_t)n, "; prefetch(B, j1, 1); prefetch(C, i1, 1)");
    if (m->threads > 1 && n > 0 && (size_t)n < len)
        snprintf(out + n, len - (size_t)n, "; parallel(%s)",
                 m->bmm ? "b" : (whole_n || m->N / nc >= m->threads ? "j0" : "j1"));
}

/* The B-resident order for large M (GotoBLAS's layout with the operands' roles swapped): per KC
 * step, A's rows are packed once into MR-row panels, in a block shared by every thread (it lives
 * in L3); the threads split N into NC-column blocks of B that stay in L2 while every A micro-panel
 * (MR x KC, in L1) passes over them: i0 (an L3-sized block of rows), k0, j0 (parallel), i1, j1.
 * In the BLIS order (blis_text) each thread instead streams its own KC x N/threads block of B
 * from L3 once per MC rows, and that block (2-8 MiB per thread) is what a second busy core, or a
 * neighbour on the host, evicts. KC: an A micro-panel in half of L1; NC: the KC x NC block of
 * B in half of L2; MC: A's block in a quarter of L3 (all the rows at prefill sizes). b=raw: the
 * NC x KC block of B is copied at j0, once per KC step, so B is read once per call as a
 * library's packing does. Measured (2026-12-04, `mctune measure --baseline`, B from memory,
 * AMD EPYC Zen 3, 512 KiB L2, avx2, against the best of OpenBLAS 0.3.21 and oneDNN 2.6.3 in the
 * same process, one run each): matmul nt M=512 N=K=4096, 2 threads: the demo's BLIS-order
 * record (KC 1024, NC 2048) 0.62x and 0.84x, this order 6x2v NC 128 KC 512 1.02x and 1.03x (NC
 * 256 1.00x and 1.01x, KC 256 0.95x and 0.96x); 1 thread: the record 0.73x and 0.81x, this
 * order 1.02x and 1.03x (5x2v 1.04x); M=128 b=raw, 1 thread: the record 0.75x and 0.79x, this
 * order 1.07x and 1.07x. */
static void bres_text(const model *m, int mr, int nv, char *out, size_t len)
{
    long nr = (long)nv * m->V;
    long kc = pow2_floor(m->L1 / 2 / (mr * 4));
    if (kc > m->K)
        kc = m->K;
    long nc = m->L2 / 2 / (kc * 4) / nr * nr;
    if (nc < nr)
        nc = nr;
    if (nc > round_up(m->N, nr))
        nc = round_up(m->N, nr);
    long mc = m->L3 / 4 / (kc * 4) / mr * mr;
    if (mc > round_up(m->M, mr))
        mc = round_up(m->M, mr);
    if (mc < 2 * mr)
        mc = 2 * mr;
    int n = snprintf(out, len,
                     "tile(i, %ld, %d); tile(j, %ld, %ld); tile(k, %ld); "
                     "reorder(i0, k0, j0, i1, j1, k1, i2, j2); pack(A, k0, i2); %s; "
                     "cache_write(j1); unroll(k1, 4); unroll(i2, %d); vectorize(j2)",
                     mc, mr, nc, nr, kc, m->raw ? "pack(B, j0, j2)" : "prepack(B, j2)", mr);
    if (m->threads > 1 && n > 0 && (size_t)n < len)
        snprintf(out + n, len - (size_t)n, "; parallel(j0)");
}

/* The dot form for small M: k vectorized, nr rows of B at once (B stored [K,N] is first copied
 * into rows along k for the nr columns of the tile). */
static void dot_text(const model *m, int nr, int kv, int outer_j, char *out, size_t len)
{
    const char *b = m->bmm ? "b, " : "";
    int n = snprintf(out, len, "tile(j, %d); tile(k, %d); reorder(%s%s); %scache_write(j0); "
                     "unroll(j1, %d); vectorize(k1)", nr, kv, b,
                     outer_j ? "j0, i, k0, j1, k1" : "i, j0, k0, j1, k1",
                     m->nn ? "pack(B, j0, k); " : "", nr);
    if (m->threads > 1 && n > 0 && (size_t)n < len)
        snprintf(out + n, len - (size_t)n, "; parallel(%s)", m->bmm ? "b" : "j0");
}

/* The dot form over a block of rows (B stored [N,K], M > 1): a register tile of mr rows of A by
 * nr rows of B, k vectorized, the k loop hoisted outside the tile's unrolled loops and the lanes
 * summed at write-back. B is read where it is: each block of nr rows once from memory, then
 * from cache by every block of mr rows, so decoding streams the weights once without a copy of
 * B (the form a kernel that takes B as given needs; the one-row dot form re-reads B per row). */
static void rowdot_text(const model *m, long mr, int nr, char *out, size_t len)
{
    const char *b = m->bmm ? "b, " : "";
    int n = snprintf(out, len, "tile(i, %ld); tile(j, %d); tile(k, %d); reorder(%sj0, i0, k0, i1, "
                     "j1, k1); cache_write(i0); unroll(i1, %ld); unroll(j1, %d); vectorize(k1)",
                     mr, nr, m->V, b, mr, nr);
    if (m->threads > 1 && n > 0 && (size_t)n < len)
        snprintf(out + n, len - (size_t)n, "; parallel(%s)", m->bmm ? "b" : "j0");
}

/* b=raw: packing B inside the kernel pays for its copy when more than one register tile of mr
 * rows reads each packed panel. */
static int raw_pack_pays(const model *m, long mr)
{
    return m->M > mr;
}

/* A register tile over all M rows, so each vector of B loaded is used by every row and the
 * weights stream through the registers once: the widest nv (at most 4 vectors) with M * nv
 * accumulators, nv B vectors and one broadcast in the register file; 0 when even one vector
 * column does not fit (M > nreg - 2) or M is 1 (the GEMV forms cover it).
 * Measured, not assumed (2026-12-01, `mctune measure`, B from memory, 1 thread, medians of 3
 * interleaved runs on a shared AVX-512 host): matmul nt M=5 N=4096 K=1024, all 5 rows against
 * the 4+1 split the reg tile list gave: avx512 5x4v 26.05 vs 4x4v 23.51 GFLOP/s (1.11x); avx2
 * (MCTUNE_TIER) 5x2v 24.41 vs 4x3v 19.35 (1.26x); M=6 avx2 6x2v 27.04 vs 4x3v 22.98 (1.18x);
 * M=12 avx512 (5 runs) 12x2v 47.96 vs 8x2v 42.84 (1.12x). (At these M the row-block dot form,
 * proposed before these for nt, was faster still: M=12 4x4 dot 54.20 vs 12x2v 51.54.) */
static int all_rows_nv(const model *m)
{
    if (m->M < 2)
        return 0;
    for (int nv = 4; nv >= 1; nv--)
        if (tile_fits(m, m->M, nv))
            return nv;
    return 0;
}

/* Register tiles that fit the register file, best first: all M rows when they fit
 * (all_rows_nv), then most accumulators, then squarer. */
static int reg_tiles(const model *m, int mr[8], int nv[8])
{
    int n = 0;
    int anv = all_rows_nv(m);
    if (anv) {
        mr[n] = (int)m->M;
        nv[n] = anv;
        n++;
    }
    int cand[][2] = {{8, 2}, {6, 4}, {12, 2}, {4, 4}, {14, 2}, {6, 2}, {4, 3}, {3, 4}, {4, 2},
                     {8, 1}, {2, 2}};
    /* A 16-register file: 8-10 accumulators first, then 12 in two vector columns; 12 in three
     * columns last. Measured (2026-12-01, avx2 via MCTUNE_TIER on the AVX-512 host, prepacked
     * B from memory, 1 thread, medians of 5 interleaved runs): matmul nt M=128 N=1024 K=1024:
     * 5x2v (10 acc) 85.6, 4x2v (8) 83.4, 6x2v (12) 81.6, 8x1v (8) 77.4, 4x3v (12) 52.8 GFLOP/s;
     * M=64 N=4096 K=512: 5x2v 79.1, 6x2v 78.9, 4x2v 77.4. Ten accumulators in two columns are
     * never slower than twelve; three columns lose a third. */
    int cand16[][2] = {{5, 2}, {6, 2}, {4, 2}, {8, 1}, {4, 3}, {3, 2}, {2, 2}};
    int (*cl)[2] = m->nreg <= 16 ? cand16 : cand;
    size_t ncl = m->nreg <= 16 ? sizeof cand16 / sizeof cand16[0] : sizeof cand / sizeof cand[0];
    for (size_t i = 0; i < ncl && n < 8; i++) {
        int r = cl[i][0], v = cl[i][1];
        if (!tile_fits(m, r, v))
            continue;
        if (r > m->M && m->M >= 1)
            continue;
        if (anv && r == m->M && v == anv)
            continue;
        mr[n] = r;
        nv[n] = v;
        n++;
    }
    if (n == 0) {
        mr[0] = m->M < 8 ? (int)m->M : 8;
        nv[0] = 1;
        n = 1;
    }
    return n;
}

typedef struct plist {
    char *t[MAXP];
    int n;
} plist;

/* Appends a proposal; a full list or a failed allocation drops it (the list is a menu). */
static void padd(plist *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void padd(plist *p, const char *fmt, ...)
{
    if (p->n >= MAXP)
        return;
    mct_str b = {0};
    va_list ap;
    va_start(ap, fmt);
    mct_str_vaddf(&b, fmt, ap);
    va_end(ap);
    char *d = mct_str_take(&b);
    if (d)
        p->t[p->n++] = d;
}

/* Which knob moved from a to b, and which way: returns a knob code and sets *dir (+1/-1). */
enum { KN_NONE, KN_KC, KN_MC, KN_MR, KN_NC, KN_NR, KN_KU, KN_PF };

static int knob_moved(const mct_sched *a, const mct_sched *b, int *dir)
{
    stmt sa[32], sb[32];
    int na = parse_stmts(a, sa, 32), nb = parse_stmts(b, sb, 32);
    struct { int knob; const char *ax; int l; } t[] = {
        {KN_KC, "k", 1}, {KN_MC, "i", 1}, {KN_MR, "i", 2}, {KN_NC, "j", 1}, {KN_NR, "j", 2}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        long x = tile_f(sa, na, t[i].ax, t[i].l), y = tile_f(sb, nb, t[i].ax, t[i].l);
        if (x && y && x != y) {
            *dir = y > x ? 1 : -1;
            return t[i].knob;
        }
    }
    const stmt *ua = find_stmt(sa, na, "unroll", "k1"), *ub = find_stmt(sb, nb, "unroll", "k1");
    long x = ua ? atol(ua->args[1]) : 1, y = ub ? atol(ub->args[1]) : 1;
    if (x != y) {
        *dir = y > x ? 1 : -1;
        return KN_KU;
    }
    const stmt *pa = find_stmt(sa, na, "prefetch", "B"), *pb = find_stmt(sb, nb, "prefetch", "B");
    x = pa ? atol(pa->args[2]) : 0;
    y = pb ? atol(pb->args[2]) : 0;
    if (x != y) {
        *dir = y > x ? 1 : -1;
        return KN_PF;
    }
    return KN_NONE;
}

/* The outer block c of a two-level tile over r, doubled (dir > 0) or halved and kept a multiple
 * of r; 0 when that leaves (r, twice the axis size rounded up to r]. */
static long outer_moved(long c, long r, int dir, long size)
{
    if (!c || !r)
        return 0;
    c = dir > 0 ? c * 2 : c / 2;
    c = c / r * r;
    return c <= r || c > round_up(size, r) * 2 ? 0 : c;
}

/* One move of a knob on the node (text applied to the node), or 0 when it does not exist. */
static int knob_text(const model *m, const stmt *st, int n, int knob, int dir, char *out,
                     size_t len)
{
    long mc = tile_f(st, n, "i", 1), mr = tile_f(st, n, "i", 2);
    long nc = tile_f(st, n, "j", 1), nr = tile_f(st, n, "j", 2);
    long kc = tile_f(st, n, "k", 1);
    switch (knob) {
    case KN_KC:
        if (!kc)
            return 0;
        kc = dir > 0 ? kc * 2 : kc / 2;
        if (kc < 4 || kc >= m->K * 2)
            return 0;
        snprintf(out, len, "tile(k, %ld)", kc);
        return 1;
    case KN_MC:
        if (!(mc = outer_moved(mc, mr, dir, m->M)))
            return 0;
        snprintf(out, len, "tile(i, %ld, %ld)", mc, mr);
        return 1;
    case KN_MR:
        if (!mc || !mr || !nr)
            return 0;
        mr += dir > 0 ? 2 : -2;
        if (mr < 1 || mr >= mc || !tile_fits(m, mr, nr / m->V) || mr > m->M)
            return 0;
        snprintf(out, len, "tile(i, %ld, %ld); unroll(i2, %ld)", mc, mr, mr);
        return 1;
    case KN_NC:
        if (!(nc = outer_moved(nc, nr, dir, m->N)))
            return 0;
        snprintf(out, len, "tile(j, %ld, %ld)", nc, nr);
        return 1;
    case KN_NR:
        if (!nc || !nr || !mr)
            return 0;
        nr += dir > 0 ? m->V : -m->V;
        if (nr < m->V || nr >= nc || !tile_fits(m, mr, nr / m->V))
            return 0;
        snprintf(out, len, "tile(j, %ld, %ld)", nc, nr);
        return 1;
    case KN_KU: {
        const stmt *u = find_stmt(st, n, "unroll", "k1");
        long x = u ? atol(u->args[1]) : 1;
        x = dir > 0 ? x * 2 : x / 2;
        if (x < 1 || x > 16 || !find_stmt(st, n, "tile", "k"))
            return 0;
        snprintf(out, len, "unroll(k1, %ld)", x);
        return 1;
    }
    case KN_PF: {
        const stmt *p = find_stmt(st, n, "prefetch", "B");
        long d = p ? atol(p->args[2]) : 0;
        d = dir > 0 ? (d ? d * 2 : 4) : d / 2;
        if (d < 1 || d > 32 || !find_stmt(st, n, "tile", "k"))
            return 0;
        snprintf(out, len, "prefetch(B, k1, %ld)", d);
        return 1;
    }
    }
    return 0;
}

/* 1 when text applied to s (NULL: the untuned nest) takes a widen(B, dot) path on target t. */
static int dot_takes(const mct_guide_ctx *c, const mct_sched *s, const char *text)
{
    mct_sched *x = NULL;
    int ok = 0;
    if (s ? mct_sched_clone(s, &x) : mct_sched_create(c->w, &x))
        return 0;
    if (!mct_sched_apply(x, text, NULL, 0))
        ok = mct_cg_dot_path(x, c->target, NULL, 0) > 0;
    mct_sched_destroy(x);
    return ok;
}

/* Where the target takes widen(B, amx) (tier amx, bf16 or i8) and M >= 16, AMX tiles first among
 * the model's proposals (before widen(B, dot)): a tile multiply-adds 16 rows by 16 columns by 32
 * (bf16) or 64 (int8) k per instruction, which pays once a block of C has its 16 rows (below that
 * the tile's rows are padding, and widen(B, dot) is the proposal): 32 rows in two tiles from
 * M >= 32, 32 columns, the j blocks on the threads where the kernel has more than one. */
static void amx_props(const mct_guide_ctx *c, const model *m, plist *p)
{
    char t[512];
    if (!MCT_WL_QUANT(c->w) || !c->target || m->M < 16)
        return;
    snprintf(t, sizeof t, "tile(i, %d); tile(j, 32); reorder(j0, i0, k, i1, j1); cache_write(i0); "
             "%swiden(B, amx)", m->M >= 32 ? 32 : 16, m->threads > 1 ? "parallel(j0); " : "");
    if (dot_takes(c, NULL, t))
        padd(p, "%s", t);
}

/* Where the target has integer or bf16 dot products (mct_cg_dot_path), widen(B, dot) on the dot
 * form multiplies the stored bytes directly, a vector holding 4 (int8) or 2 (bf16) times the f32
 * lanes, and never converts a weight: the node's own schedule with it, then a dot-form tile of up
 * to 4 rows and 8 columns, first among the model's proposals. Up to 16 rows for int8, 4 for bf16:
 * its two products per lane gain less than the f32 tile's reuse of each widened weight across
 * many rows (q_proj at M=16: bf16 dot 6.6 ms, widen(B, reg) 5.3 ms; i8 dot 2.3 ms, reg 4.4 ms). */
static void dot_props(const mct_guide_ctx *c, const model *m, plist *p)
{
    char t[512];
    if (!MCT_WL_QUANT(c->w) || !c->target)
        return;
    if (dot_takes(c, c->node->sched, "widen(B, dot)"))
        padd(p, "widen(B, dot)");
    if (m->M > (c->w->wfmt == MCT_RT_WF_BF16 ? 4 : 16))
        return;
    int r = m->M < 4 ? (int)m->M : 4, cols = r > 1 ? 4 : 8;
    if (r > 1)
        snprintf(t, sizeof t, "tile(i, %d); tile(j, %d); tile(k, 64); reorder(j0, i0, k0, i1, j1, "
                 "k1); cache_write(i0); unroll(i1, %d); unroll(j1, %d); vectorize(k1); "
                 "widen(B, dot)", r, cols, r, cols);
    else
        snprintf(t, sizeof t, "tile(j, %d); tile(k, 64); reorder(i, j0, k0, j1, k1); "
                 "cache_write(j0); unroll(j1, %d); vectorize(k1); widen(B, dot)", cols, cols);
    if (dot_takes(c, NULL, t))
        padd(p, "%s", t);
}

/* Low-precision weights: where they widen to f32. At a few rows (decoding) the weights' bytes
 * bound the time, so they stay low precision up to the registers: prepack(B) keeps low-precision
 * panels widened at each load. At many rows each weight is reused across the rows of the tile,
 * so one conversion into an f32 panel per block (pack(B) with widen(B, panel)) pays. */
static void widen_props(const mct_guide_ctx *c, const model *m, int mr, int nv, long kc,
                        plist *p)
{
    char t[1024];
    if (!MCT_WL_QUANT(c->w))
        return;
    model mp = *m;
    mp.raw = m->M > 16;  /* blis_text's in-kernel pack(B, k0, j2) instead of prepack(B, j2) */
    blis_text(&mp, mr, nv, kc, 0, 0, t, sizeof t);
    if (mp.raw)
        padd(p, "%s; widen(B, panel)", t);
    else
        padd(p, "%s", t);
    padd(p, "%s", m->M > 16 ? "pack(B, k0, j2); widen(B, panel)" : "widen(B, reg)");
}

/* 1 when step (len l at t) is one of the ';'-separated steps of the canonical text in. */
static int has_step(const char *in, const char *t, size_t l)
{
    for (const char *q = in; *q;) {
        while (*q == ' ' || *q == ';')
            q++;
        const char *e = strchr(q, ';');
        size_t n = e ? (size_t)(e - q) : strlen(q);
        if (n == l && !strncmp(q, t, l))
            return 1;
        q += n;
    }
    return 0;
}

/* Undoing a step that turned out badly: when the parent was slower than the grandparent by more
 * than both measurements' noise, the steps the parent added (in its canonical text, not in the
 * grandparent's) that the node still has are proposed as drop(N) of the node, keeping what the
 * node added since. (Dropping the node's own last step would rebuild its parent, a duplicate.) */
static void drop_moves(const mct_guide_ctx *c, plist *p)
{
    const mct_guide_node *g = c->grand, *pa = c->parent;
    if (!g || !pa || !(g->latency_s > 0) || !(pa->latency_s > 0) ||
        pa->latency_s <= g->latency_s + g->spread_s + pa->spread_s)
        return;
    char tn[4096], tp[4096], tg[4096];
    mct_sched_format(c->node->sched, tn, sizeof tn);
    mct_sched_format(pa->sched, tp, sizeof tp);
    mct_sched_format(g->sched, tg, sizeof tg);
    int k = 1;
    for (const char *q = tn; *q; k++) {
        while (*q == ' ' || *q == ';')
            q++;
        if (!*q)
            break;
        const char *e = strchr(q, ';');
        size_t n = e ? (size_t)(e - q) : strlen(q);
        if (has_step(tp, q, n) && !has_step(tg, q, n))
            padd(p, "drop(%d)", k);
        q += n;
    }
}

static void heuristic_list(const mct_guide_ctx *c, plist *p)
{
    model m;
    model_of(c, &m);
    stmt st[32];
    int n = parse_stmts(c->node->sched, st, 32);
    char t[1024];
    int blis = tile_f(st, n, "i", 2) && tile_f(st, n, "j", 2) && tile_f(st, n, "k", 1);

    /* 1. the trend: parent -> node (and grandparent -> parent when the last move was neutral) */
    if (c->parent && c->node->latency_s > 0 && c->parent->latency_s > 0) {
        int dir, k = knob_moved(c->parent->sched, c->node->sched, &dir);
        int helped = c->node->latency_s < c->parent->latency_s;
        if (k != KN_NONE && knob_text(&m, st, n, k, helped ? dir : -dir, t, sizeof t)) {
            padd(p, "%s", t);
            if (!helped && knob_text(&m, st, n, k, -2 * dir > 0 ? 1 : -1, t, sizeof t))
                padd(p, "%s", t);
        }
        if (c->grand && c->grand->latency_s > 0) {
            int d2, k2 = knob_moved(c->grand->sched, c->parent->sched, &d2);
            int h2 = c->parent->latency_s < c->grand->latency_s;
            if (k2 != KN_NONE && k2 != k &&
                knob_text(&m, st, n, k2, h2 ? d2 : -d2, t, sizeof t))
                padd(p, "%s", t);
        }
    }
    drop_moves(c, p);
    amx_props(c, &m, p);
    dot_props(c, &m, p);

    /* 2. the analytical model's schedules */
    int mrs[8], nvs[8];
    int nt = reg_tiles(&m, mrs, nvs);
    long kc0 = pow2_floor(m.L1 / (nvs[0] * m.V * 4));
    if (m.M <= 4 && m.nn) {
        /* B stored [K,N]: its rows are contiguous along j, so the outer-product form streams them
         * in place: all M rows at once, nv vectors of columns, k innermost */
        for (int nv = 4; nv >= 1; nv /= 2)
            if (tile_fits(&m, m.M, nv) && m.N >= nv * m.V) {
                const char *b = m.bmm ? "b, " : "";
                if (m.M == 1)
                    snprintf(t, sizeof t, "tile(j, %d); reorder(%si, j0, k, j1); cache_write(j0); "
                             "vectorize(j1)%s", nv * m.V, b, m.threads > 1 && !m.bmm ?
                             "; parallel(j0)" : m.threads > 1 ? "; parallel(b)" : "");
                else
                    snprintf(t, sizeof t, "tile(i, %ld); tile(j, %d); reorder(%si0, j0, k, i1, j1); "
                             "cache_write(j0); unroll(i1, %ld); vectorize(j1)%s", m.M, nv * m.V, b,
                             m.M, m.threads > 1 && !m.bmm ? "; parallel(j0)" :
                             m.threads > 1 ? "; parallel(b)" : "");
                padd(p, "%s", t);
            }
    }
    if (m.M >= 16 && m.M <= 32 && !blis && !m.raw && !m.bmm && nt > 0) {
        /* 16-32 rows over prepacked B: the outer-product form of the tile that wastes the fewest
         * rows, half the L1 KC, the next micro-panel spread over the row tiles; then with k
         * chunks at the same KC, k unrolled 16 times and B prefetched 8 iterations ahead along
         * its chunked stream. Measured (2026-12-02, `mctune measure --baseline`, B from
         * memory, 1 thread, AMD EPYC Zen 3 avx2, medians of 4 runs, each against the libraries
         * in its own process; the host's noise was +-30%): matmul nt M=16 N=K=4096, 4x2v KC 256
         * prepack(B, j2) 2.33x the best library, with k chunks 1.91x (KC 512: 1.74x), 5x2v
         * (ragged) 1.58x, the row-block dot form 2x4 (proposed first before) 1.36x. On an Intel
         * Xeon with AVX-512 the k-chunked form was the faster (M=16 N=2048 K=7168, 16x1v KC 512,
         * 101.8 against 64.4 GFLOP/s; the dot form 72.8); on the Xeon 6/207 (2026-12-02, same
         * protocol, one run each, against oneDNN 2.6) matmul nt M=16 N=1024 K=4096, 16x1v KC
         * 256: prepack(B, j2) unroll 4 1.10x, unroll 16 and prefetch(B, k1, 4) 1.23x; k chunks
         * with them 1.46x, prefetch(B, k1, 8) 1.50x; k chunks at KC 512, unroll 8, no prefetch
         * (the demo's search best) 1.17x; N=K=4096 the same order (1.26x for the demo's best,
         * 1.42x chunked at KC 256, unroll 16, prefetch(B, k1, 4)). Both come before the dot
         * forms. Below 16 rows the dot forms stay first (M=5 and M=12 on AVX-512, see
         * all_rows_nv). */
        int bi = 0;
        for (int i = 1; i < nt; i++)
            if (round_up(m.M, mrs[i]) - m.M < round_up(m.M, mrs[bi]) - m.M)
                bi = i;
        long kcs = pow2_floor(m.L1 / (nvs[bi] * m.V * 4));
        blis_text(&m, mrs[bi], nvs[bi], kcs / 2, 4, 0, t, sizeof t);
        padd(p, "%s", t);
        blis_text(&m, mrs[bi], nvs[bi], kcs / 2, 16, 8, t, sizeof t);
        char *pp = strstr(t, "prepack(B, j2)");
        if (pp && strlen(t) + 4 < sizeof t) {  /* prepack(B, j2) -> prepack(B, j2, k1) */
            memmove(pp + 17, pp + 13, strlen(pp + 13) + 1);
            memcpy(pp + 13, ", k1", 4);
            padd(p, "%s", t);
        }
    }
    if (m.M > 1 && m.M <= 32 && !m.nn && !blis) {
        /* a few rows, B [N,K]: the row-block dot form (first for b=raw, where the packed forms'
         * register tiles would read B with a stride). Accumulators mr x nr plus nr B vectors
         * and one A vector fit the register file. */
        static const int tiles[][2] = {{4, 4}, {4, 6}, {8, 3}, {2, 8}, {3, 4}, {2, 4}, {4, 2}};
        int added = 0;
        /* all M rows over 4 rows of B when they fit, before the 4-row tiles that would split
         * them. Measured (2026-12-01, `mctune measure`, B from memory, 1 thread, medians of 3
         * interleaved runs): matmul nt M=5 N=4096 K=1024 avx512: 5x4 29.26 vs 4x4 26.41 GFLOP/s
         * (1.11x). With 2 rows of B (avx2, 16 registers) 5x2 24.65 was no faster than 2x4
         * 24.74, so only the 4-row form is moved first. */
        if (m.M > 4 && m.M * 4 + 4 + 1 <= m.nreg) {
            rowdot_text(&m, m.M, 4, t, sizeof t);
            padd(p, "%s", t);
            added++;
        }
        for (int i = 0; i < 7 && added < (m.raw ? 4 : 2); i++) {
            long mr = tiles[i][0] < m.M ? tiles[i][0] : m.M;
            int nr = tiles[i][1];
            if (mr * nr + nr + 1 > m.nreg || (mr < tiles[i][0] && i))
                continue;
            rowdot_text(&m, mr, nr, t, sizeof t);
            padd(p, "%s", t);
            added++;
        }
    }
    if (m.M > 1 && m.M <= 4 && !blis && nt > 0 && (!m.raw || raw_pack_pays(&m, mrs[0]))) {
        /* a few rows: a register tile of all M rows over prepacked B panels streams the weights
         * once, where the dot form re-reads them per row; try it first, with B prefetched
         * (b=raw: only when the copy of B pays, else after the forms that read B in place) */
        blis_text(&m, mrs[0], nvs[0], kc0, 1, 8, t, sizeof t);
        padd(p, "%s", t);
    }
    if (m.M <= 4) {
        int nrs[] = {8, 4, 6, 12, 16};
        for (int i = 0; i < 5; i++)
            for (int kv = 1; kv <= 2; kv++)
                if (nrs[i] * kv + 2 <= m.nreg) {
                    dot_text(&m, nrs[i], m.V * kv, 0, t, sizeof t);
                    padd(p, "%s", t);
                    if (m.M > 1) {
                        dot_text(&m, nrs[i], m.V * kv, 1, t, sizeof t);
                        padd(p, "%s", t);
                    }
                }
    }
    /* the C-resident order (blis_text_c) once the blocks of C outgrow L2 beside A and B: first
     * when the BLIS order's MC x NC block of C alone takes more than half of L2 */
    long kcl = pow2_floor(m.L1 / (nvs[0] * m.V * 4));
    int cres_first = m.M > 4 * mrs[0] && round_up(m.M, mrs[0]) * 4 * (m.L2 / 2 / (kcl * 4)) >
                                             m.L2 / 2;
    /* the B-resident order first at prefill sizes (f32 matmul; bmm and low-precision weights
     * keep their own forms) */
    if (nt > 0 && m.M > 4 * mrs[0] && !m.bmm && !m.q) {
        /* the tile with the most accumulators (more rows: B's micro-panels come from L2 here,
         * so each vector loaded serves more of them; on Zen 3 M=512 2 threads 6x2v 0.93-1.13x,
         * 5x2v 0.80-0.81x in three interleaved rounds), then the first of reg_tiles */
        int bi = 0;
        for (int i = 1; i < nt; i++)
            if (mrs[i] * nvs[i] > mrs[bi] * nvs[bi] ||
                (mrs[i] * nvs[i] == mrs[bi] * nvs[bi] && mrs[i] > mrs[bi]))
                bi = i;
        bres_text(&m, mrs[bi], nvs[bi], t, sizeof t);
        padd(p, "%s", t);
        if (bi) {
            bres_text(&m, mrs[0], nvs[0], t, sizeof t);
            padd(p, "%s", t);
        }
    }
    if (nt > 0 && m.M > 4 * mrs[0] && cres_first) {
        blis_text_c(&m, mrs[0], nvs[0], kcl, 4, 0, 1, t, sizeof t);
        padd(p, "%s", t);
    }
    if (!blis || m.M > 4) {
        for (int i = 0; i < nt; i++) {
            blis_text(&m, mrs[i], nvs[i], pow2_floor(m.L1 / (nvs[i] * m.V * 4)), 4, 0, t,
                      sizeof t);
            padd(p, "%s", t);
        }
        blis_text(&m, mrs[0], nvs[0], kc0 * 2, 4, 0, t, sizeof t);
        padd(p, "%s", t);
        blis_text(&m, mrs[0], nvs[0], kc0 / 2, 4, 0, t, sizeof t);
        padd(p, "%s", t);
        blis_text(&m, mrs[0], nvs[0], kc0, 1, 8, t, sizeof t);
        padd(p, "%s", t);
    }
    if (nt > 0 && m.M > 4 * mrs[0] && !cres_first) {
        blis_text_c(&m, mrs[0], nvs[0], kcl, 4, 0, 1, t, sizeof t);
        padd(p, "%s", t);
    }

    /* 3. one knob at a time around the node */
    for (int k = KN_KC; k <= KN_PF; k++)
        for (int d = 1; d >= -1; d -= 2)
            if (knob_text(&m, st, n, k, d, t, sizeof t))
                padd(p, "%s", t);
    if (blis && !m.bmm && !m.raw) {
        padd(p, "prepack(B, j2, k1)");
        padd(p, "prepack(B, j2)");
        padd(p, "pack(A, k0, i2)");
    }
    if (blis) {
        /* the next B micro-panel spread over the row tiles (codegen.h); the next tile's rows of
         * C, which at large M come from beyond L2 (each k block of C is read and written back
         * once per KC) */
        padd(p, "prefetch(B, j1, 1)");
        padd(p, "prefetch(C, i1, 1)");
        /* C-resident forms (i0 and j0 outside k0): the block of C summed in a buffer whose rows
         * never share L1 sets (codegen.h), where C's own rows do: a row stride of a multiple
         * of 4 KiB puts every row of a tile into the same sets. A move, not a first proposal:
         * measured (2026-12-02, `mctune measure`, B from memory, 1 thread, AMD EPYC Zen 3
         * avx2 6x2v, KC 512, medians of 5 interleaved runs) on matmul nt M=512 N=14336
         * K=4096, 56.5 without and 55.7 GFLOP/s with it (the host's noise was +-15%); a hand
         * kernel on an Intel Xeon with AVX-512 had gained 7% from such a buffer. */
        if (!m.q && m.M > 4 * tile_f(st, n, "i", 2) && m.N * 4 % 4096 == 0)
            padd(p, "buffer(C, j0)");
    }
    if (blis && m.raw) {
        /* B copied inside the kernel: per KC x NC block (BLIS), or one KC x NR micro-panel at a
         * time, which stays in L1 while the row tiles read it */
        if (raw_pack_pays(&m, tile_f(st, n, "i", 2))) {
            padd(p, "pack(B, k0, j2)");
            padd(p, "pack(B, j1, j2)");
        }
        padd(p, "pack(A, k0, i2)");
    }
    if (m.threads > 1)
        padd(p, "parallel(%s)", m.bmm ? "b" : "j0");
    widen_props(c, &m, nt > 0 ? mrs[0] : 4, nt > 0 ? nvs[0] : 1, kc0, p);
}

/* Tries proposals in order on clones of the node; keeps the new, distinct, changed ones. */
static int pick(hguide *h, const mct_guide_ctx *c, plist *p, char **out, int *n, int shuffle_from)
{
    uint8_t wl[16], self[16];
    mct_wl_hash(c->w, wl);
    mct_sched_hash(c->node->sched, self);
    /* diversity: shuffle the tail (one-knob moves) with the search's random state */
    for (int i = p->n - 1; i > shuffle_from; i--) {
        int j = shuffle_from + (int)(mct_guide_rand(c->rng) % (uint64_t)(i - shuffle_from + 1));
        char *x = p->t[i];
        p->t[i] = p->t[j];
        p->t[j] = x;
    }
    for (int i = 0; i < p->n && *n < c->want; i++) {
        mct_sched *s;
        if (mct_sched_clone(c->node->sched, &s))
            return MCT_ENOMEM;
        int r = mct_sched_apply(s, p->t[i], NULL, 0);
        uint8_t hh[16];
        mct_sched_hash(s, hh);
        mct_sched_destroy(s);
        if (r || !memcmp(hh, self, 16))
            continue;
        for (int q = 0; q < 16; q++)
            hh[q] ^= wl[q];
        if (seen_has(h, hh))
            continue;
        if (seen_add(h, hh))
            return MCT_ENOMEM;
        out[(*n)++] = p->t[i];
        p->t[i] = NULL;
    }
    return 0;
}

static int heuristic_propose(mct_guide *g, const mct_guide_ctx *c, char **out, int *n, char *err,
                             size_t errlen)
{
    hguide *h = (hguide *)g;
    plist p = {0};
    heuristic_list(c, &p);
    /* proposals before the one-knob moves keep their order (trend, then the model) */
    int fixed = 0;
    for (int i = 0; i < p.n; i++)
        if (!strncmp(p.t[i], "tile(i", 6) || !strncmp(p.t[i], "tile(j", 6))
            if (strstr(p.t[i], "reorder"))
                fixed = i;
    int r = pick(h, c, &p, out, n, fixed + 1 < p.n ? fixed + 1 : p.n);
    for (int i = 0; i < p.n; i++)
        free(p.t[i]);
    if (!r && *n == 0 && err && errlen)
        snprintf(err, errlen, "heuristic: every move from this node was proposed before");
    return r;
}

/* Random guide: one random legal transformation of O applied to the node (the paper's "MCTS
 * without LLM" ablation): a tile of an axis not tiled yet, a vectorize, cache_write or unroll
 * of a random loop, or a random parameter mutation of what the node has (mct_sched_mutate,
 * written as the node's full canonical text after the mutation). Each proposal is checked on a
 * clone of the node: legal, and changing the schedule. */
static int random_one(const mct_guide_ctx *c, int vlen, char *text, size_t len)
{
    static const long sz[] = {2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 256, 512};
    const char *names[32];
    int nl = mct_sched_loops(c->node->sched, names, 32);
    if (nl <= 0)
        return 0;
    int kind = (int)(mct_guide_rand(c->rng) % 5);
    if (kind == 0) {
        const char *ax = NULL;
        for (int t = 0; t < 6 && !ax; t++) {
            const char *cand = (const char *[]){"i", "j", "k"}[mct_guide_rand(c->rng) % 3];
            for (int q = 0; q < nl; q++)
                if (!strcmp(names[q], cand))
                    ax = cand;
        }
        if (!ax)
            kind = 4;
        else {
            long f1 = sz[mct_guide_rand(c->rng) % 13], f2 = sz[mct_guide_rand(c->rng) % 13];
            if (mct_guide_rand(c->rng) % 2 && f2 < f1)
                snprintf(text, len, "tile(%s, %ld, %ld)", ax, f1, f2);
            else
                snprintf(text, len, "tile(%s, %ld)", ax, f1);
            return 1;
        }
    }
    if (kind == 1) {
        snprintf(text, len, "vectorize(%s)", names[nl - 1]);
        return 1;
    }
    if (kind == 2) {
        snprintf(text, len, "cache_write(%s)", names[mct_guide_rand(c->rng) % (uint64_t)nl]);
        return 1;
    }
    if (kind == 3) {
        snprintf(text, len, "unroll(%s, %d)", names[mct_guide_rand(c->rng) % (uint64_t)nl],
                 2 + (int)(mct_guide_rand(c->rng) % 15));
        return 1;
    }
    mct_sched *s, *u;
    char what[256];
    if (mct_sched_clone(c->node->sched, &s))
        return MCT_ENOMEM;
    int r = mct_sched_mutate(s, c->rng, vlen, what, sizeof what);
    mct_sched_format(s, text, len);
    uint8_t a[16], b[16];
    mct_sched_hash(s, a);
    mct_sched_destroy(s);
    if (r)
        return 0;
    /* the text must rebuild exactly the mutated schedule when applied to the node */
    if (mct_sched_clone(c->node->sched, &u))
        return MCT_ENOMEM;
    r = mct_sched_apply(u, text, NULL, 0);
    mct_sched_hash(u, b);
    mct_sched_destroy(u);
    return !r && !memcmp(a, b, 16);
}

static int random_propose(mct_guide *g, const mct_guide_ctx *c, char **out, int *n, char *err,
                          size_t errlen)
{
    int vlen = c->target && c->target->vlen > 0 ? c->target->vlen : 8;
    uint8_t self[16];
    mct_sched_hash(c->node->sched, self);
    for (int tries = 0; tries < c->want * 32 && *n < c->want; tries++) {
        char text[4096];
        int r = random_one(c, vlen, text, sizeof text);
        if (r < 0)
            return r;
        if (!r)
            continue;
        mct_sched *t;
        uint8_t h[16];
        if (mct_sched_clone(c->node->sched, &t))
            return MCT_ENOMEM;
        r = mct_sched_apply(t, text, NULL, 0);
        mct_sched_hash(t, h);
        mct_sched_destroy(t);
        if (r || !memcmp(h, self, 16))
            continue;
        int dup = 0;
        for (int q = 0; q < *n; q++)
            dup |= !strcmp(out[q], text);
        if (dup)
            continue;
        size_t l = strlen(text) + 1;
        if (!(out[*n] = malloc(l)))
            return MCT_ENOMEM;
        memcpy(out[(*n)++], text, l);
    }
    if (*n == 0 && err && errlen)
        snprintf(err, errlen, "random: no legal transformation found from this node");
    return 0;
}

static void hdestroy(mct_guide *g)
{
    hguide *h = (hguide *)g;
    free(h->seen);
    free(h);
}

static int create(int random, mct_guide **out)
{
    hguide *h = calloc(1, sizeof *h);
    if (!h)
        return MCT_ENOMEM;
    h->random = random;
    h->g.name = random ? "random" : "heuristic";
    h->g.propose = random ? random_propose : heuristic_propose;
    h->g.destroy = hdestroy;
    *out = &h->g;
    return 0;
}

int mct_guide_heuristic_create(mct_guide **out)
{
    return create(0, out);
}

int mct_guide_random_create(mct_guide **out)
{
    return create(1, out);
}
