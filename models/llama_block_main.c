/* llama_block: runs the Llama-3-8B decoder block (llama_block.h) on each backend built in, to
 * check that they agree (--check) or to time prefill and decode side by side (--bench), for
 * each weight format asked for (--weights), with the error quantization adds against the block
 * with f32 weights. */
#include "models/llama_block.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAXL 16
#define MAXW 8
#define MAXB 8

static const char usage_text[] =
    "usage: llama_block (--check | --bench | --shapes) [options]\n"
    "\n"
    "  --check         run every backend on the same input, compare with openblas (exit 1 when\n"
    "                  one differs by more than --tol of the largest |out - x|). gen with\n"
    "                  low-precision weights runs kernels that may round the activations\n"
    "                  (int8 per row, bf16), which compounds through the block: its block line\n"
    "                  only reports the difference, and each of its calls is computed again by\n"
    "                  openblas on the same inputs, every projection element held to the bound\n"
    "                  of one layer's rounding (llama_block.h), each bmm to --tol; a line per M\n"
    "                  gives the calls checked and the worst as a fraction of its bound\n"
    "  --bench         time each backend: tokens per second, GFLOP/s and the ratios\n"
    "  --shapes        print the block's kernel calls as mctune workloads for each M\n"
    "  --small         hidden 256, 8 heads, 2 kv heads, head dim 32, intermediate 896\n"
    "                  (default: Llama-3-8B, hidden 4096, 32/8 heads, 128, 14336)\n"
    "  --m LIST        token counts (default 1,4,16,128,512; --small --check: 1,5,16,64)\n"
    "  --threads LIST  thread counts for --bench (default 1,2)\n"
    "  --backends LIST some of openblas,gen,gen-sgemm,generic,onednn (default all built in\n"
    "                  but onednn, which needs libdnnl.so.2 at run time)\n"
    "  --seq S         positions in the KV cache; the M new tokens are the last M (default 512,\n"
    "                  --small 64; at least the largest M)\n"
    "  --min-time S    --bench: repeat each measurement at least this long (default 0.5)\n"
    "  --tol X         --check: tolerance relative to the largest |out - x| (default 2e-4;\n"
    "                  gen with low-precision weights: of each bmm call's largest output)\n"
    "  --seed N        weights, cache and input (default 1)\n"
    "  --weights LIST  formats of the projections' weights, some of f32,bf16,i8,q4gG (e.g.\n"
    "                  f32,i8,q4g32; default f32). Each format is a block of its own from the\n"
    "                  same f32 draw: --check compares the backends on it and reports its error\n"
    "                  against the f32-weight block; --bench times it and, for several formats,\n"
    "                  prints each backend's tokens/s per format and the ratio to f32\n";

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int parse_list(const char *s, long *v, int *n, long lo, long hi)
{
    *n = 0;
    while (*s) {
        char *e;
        long x = strtol(s, &e, 10);
        if (e == s || x < lo || x > hi || (*e && *e != ',') || *n >= MAXL)
            return -1;
        v[(*n)++] = x;
        s = *e ? e + 1 : e;
    }
    return *n ? 0 : -1;
}

/* The f32-weight block's outputs (openblas, one thread) for each M, what a quantized block's
 * error is measured against; out[i] is M_i * hidden floats, malloc'ed. 0, or -1 with a message. */
static int f32_outputs(const mct_blk_cfg *cfg, long maxm, long seq, unsigned long long seed,
                       const long *ms, int nm, const float *x, float **out)
{
    mct_blk *b = NULL;
    char err[512];
    const mct_blk_backend *ob = mct_blk_backend_find("openblas");
    if (mct_blk_create(cfg, "f32", maxm, seq, seed, &b, err, sizeof err)) {
        fprintf(stderr, "llama_block: the f32-weight block: %s\n", err);
        return -1;
    }
    ob->set_threads(1);
    for (int i = 0; i < nm; i++)
        if (!(out[i] = malloc((size_t)(ms[i] * cfg->hidden) * sizeof(float))) ||
            mct_blk_forward(b, ob, ms[i], x, out[i])) {
            fprintf(stderr, "llama_block: the f32-weight block failed at M %ld\n", ms[i]);
            mct_blk_destroy(b);
            return -1;
        }
    mct_blk_destroy(b);
    return 0;
}

/* ---- --check of a backend that runs the weight format's own kernels (gen with low-precision
 * weights): each of its calls is computed again by openblas on the same inputs (the backend's own
 * activations, so an error does not carry over to the next call) and the same dequantized
 * weights, and held to a bound of that one call. A projection's bound is elementwise, derived from
 * the activation rounding its kernel may do (mct_blk_lowp_bound, llama_block.h); a bmm stays f32
 * (attention is f32 in every format), held to --tol of its largest |output|. The whole block
 * cannot be held to the one-layer bound: the rounding of seven projections compounds through
 * the norms, the softmax and the SwiGLU, so its difference from openblas is reported only. */
struct call_check {
    const char *wf;             /* the block's weight format */
    double tol;                 /* a bmm's tolerance, of its largest |openblas output| */
    /* per weight (mct_blk_call.wi, q k v o gate up down): mct_blk_wnorms, on its first call */
    double *l1[MCT_BLK_NWEIGHTS], *l2[MCT_BLK_NWEIGHTS];
    float *ref;                 /* openblas's answer to the call, cap floats */
    size_t cap;
    int oom;                    /* the check itself ran out of memory */
    /* per forward */
    int proj, nbmm, bad;
    double worst;               /* the worst call's |diff| as a fraction of its bound */
    const char *worst_name;
    char first[400];            /* the first call out of its bound, what and where */
};

static void call_check_free(struct call_check *k)
{
    for (int i = 0; i < MCT_BLK_NWEIGHTS; i++) {
        free(k->l1[i]);
        free(k->l2[i]);
    }
    free(k->ref);
}

static int ref_room(struct call_check *k, size_t n)
{
    if (n <= k->cap)
        return 0;
    float *r = realloc(k->ref, n * sizeof *r);
    if (!r)
        return -1;
    k->ref = r;
    k->cap = n;
    return 0;
}

/* the hook (mct_blk_hook): 0, or -2 when the check itself ran out of memory (k->oom) */
static int check_call(void *ctx, const mct_blk_call *c)
{
    struct call_check *k = ctx;
    k->oom = 1;     /* until it gets to a verdict */
    const mct_blk_backend *ob = mct_blk_backend_find("openblas");
    double q, bd = 0;
    char where[200];
    if (!c->bmm) {
        int wi = c->wi;
        if (wi < 0 || wi >= MCT_BLK_NWEIGHTS || ref_room(k, (size_t)(c->M * c->N)))
            return -2;
        if (!k->l1[wi]) {
            k->l1[wi] = malloc((size_t)c->N * sizeof(double));
            k->l2[wi] = malloc((size_t)c->N * sizeof(double));
            if (!k->l1[wi] || !k->l2[wi])
                return -2;
            mct_blk_wnorms(c->N, c->K, c->W, k->l1[wi], k->l2[wi]);
        }
        if (ob->linear(c->M, c->N, c->K, c->A, c->W, k->ref))
            return -2;
        long at;
        q = mct_blk_lowp_worst(k->wf, c->M, c->N, c->K, c->A, k->l1[wi], k->l2[wi], c->C, k->ref,
                               &at, &bd);
        snprintf(where, sizeof where, "C[%ld][%ld] = %.7g, openblas %.7g, bound %.3g (the "
                 "activation rounding of w=%s)", at / c->N, at % c->N, c->C[at], k->ref[at], bd,
                 k->wf);
        k->proj++;
    } else {
        size_t n = (size_t)((c->batch - 1) * c->sC + (c->M - 1) * c->ldc + c->N);
        if (ref_room(k, n) || ob->bmm(c->nt, c->batch, c->group, c->M, c->N, c->K, c->A, c->lda,
                                      c->sA, c->W, c->ldb, c->sB, k->ref, c->ldc, c->sC))
            return -2;
        double mx = 0, d = 0;
        long at = 0;
        int finite = 1;
        for (long h = 0; h < c->batch; h++)
            for (long i = 0; i < c->M; i++)
                for (long j = 0; j < c->N; j++) {
                    long e = h * c->sC + i * c->ldc + j;
                    double g = c->C[e], r = k->ref[e];
                    finite &= isfinite(g) && isfinite(r);
                    mx = fmax(mx, fabs(r));
                    if (fabs(g - r) > d || !isfinite(g)) {
                        d = isfinite(g) ? fabs(g - r) : INFINITY;
                        at = e;
                    }
                }
        bd = k->tol * mx;
        q = !finite ? INFINITY : bd > 0 ? d / bd : d > 0 ? INFINITY : 0;
        snprintf(where, sizeof where, "C offset %ld = %.7g, openblas %.7g, bound %.3g (--tol of "
                 "the largest |output| %.3g)", at, c->C[at], k->ref[at], bd, mx);
        k->nbmm++;
    }
    k->oom = 0;
    if (q > k->worst || !k->worst_name) {
        k->worst = q;
        k->worst_name = c->name;
    }
    if (!(q <= 1) && !k->bad++)
        snprintf(k->first, sizeof k->first, "%s (M=%ld N=%ld K=%ld): %s", c->name, c->M, c->N,
                 c->K, where);
    return 0;
}

/* --check of one block: every backend against openblas on the same (dequantized) weights, then
 * openblas's output against the f32-weight block's (ref32, when given). Returns the number of
 * backends that failed, -1 when openblas itself (or the check) failed. */
static int check_block(mct_blk *b, const mct_blk_backend **be, int nbe, const long *ms, int nm,
                       long H, const float *x, float *ref, float *y, float **ref32, double tol)
{
    const mct_blk_backend *ob = mct_blk_backend_find("openblas");
    const char *wf = mct_blk_weights(b);
    char wl[32] = "";
    int bad = 0;
    struct call_check cc = {.wf = wf, .tol = tol};
    if (strcmp(wf, "f32"))
        snprintf(wl, sizeof wl, "w=%s ", wf);
    for (int i = 0; i < nm; i++) {
        long M = ms[i];
        for (int k = 0; k < nbe; k++)
            be[k]->set_threads(1);
        if (mct_blk_forward(b, ob, M, x, ref)) {
            fprintf(stderr, "llama_block: openblas forward failed at M %ld\n", M);
            bad = -1;
            goto done;
        }
        /* against the block's own contribution (out - x): the residual would hide errors */
        double mx = 0;
        for (long j = 0; j < M * H; j++)
            mx = fmax(mx, fabs((double)ref[j] - x[j]));
        for (int k = 0; k < nbe; k++) {
            /* a backend that packs the quantized weights runs the format's kernels, which may
             * round the activations (the bound of llama_block.h): checked call by call; every
             * other backend runs f32 arithmetic on the dequantized weights, the whole block
             * held to tol */
            int lp = strcmp(wf, "f32") && be[k]->pack_q;
            if (lp) {
                cc.proj = cc.nbmm = cc.bad = 0;
                cc.worst = 0;
                cc.worst_name = NULL;
                mct_blk_set_hook(b, check_call, &cc);
            }
            int r = mct_blk_forward(b, be[k], M, x, y);
            mct_blk_set_hook(b, NULL, NULL);
            if (lp && cc.oom) {
                fprintf(stderr, "llama_block: the check of %s's calls failed at M %ld (out of "
                        "memory)\n", be[k]->name, M);
                bad = -1;
                goto done;
            }
            double d = 0;
            long finite = 1;
            for (long j = 0; j < M * H; j++) {
                if (!isfinite(y[j]))
                    finite = 0;
                d = fmax(d, fabs((double)y[j] - ref[j]));
            }
            int ok = !r && finite && mx > 0 && (lp || d <= tol * mx);
            printf("check M=%-4ld %s%-8s max |diff| %.3g, largest out-x %.3g, relative %.3g: "
                   "%s\n", M, wl, be[k]->name, d, mx, mx > 0 ? d / mx : 0.0,
                   r ? "backend error" : !ok ? "MISMATCH" : lp ? "report (checked per call)"
                                                         : "ok");
            if (lp && !r) {
                ok = ok && !cc.bad;
                printf("check M=%-4ld %s%-8s per call: %d checked (%d projections against their "
                       "rounding bounds, %d bmm against --tol), worst %s at %.3g of its bound: "
                       "%s\n", M, wl, be[k]->name, cc.proj + cc.nbmm, cc.proj, cc.nbmm,
                       cc.worst_name ? cc.worst_name : "-", cc.worst, cc.bad ? "MISMATCH" : "ok");
                if (cc.bad)
                    printf("      %d of them out of bound, the first %s\n", cc.bad, cc.first);
            }
            bad += !ok;
        }
        if (!ref32)
            continue;
        /* quantization error, relative to the f32 block's contribution: rms and largest */
        double se = 0, sc = 0, de = 0, dc = 0;
        for (long j = 0; j < M * H; j++) {
            double e = (double)ref[j] - ref32[i][j], c = (double)ref32[i][j] - x[j];
            se += e * e;
            sc += c * c;
            de = fmax(de, fabs(e));
            dc = fmax(dc, fabs(c));
        }
        printf("quant M=%-4ld w=%-6s vs the f32-weight block (openblas): rms relative %.3e, "
               "max relative %.3e\n", M, wf, sc > 0 ? sqrt(se / sc) : 0.0, dc > 0 ? de / dc : 0.0);
    }
done:
    call_check_free(&cc);
    return bad;
}

/* --bench of one block: the table of tokens/s per backend as before, its figures into tps
 * [M index][thread index][backend]. Returns 0, or -1 when a backend failed. */
static int bench_block(mct_blk *b, const mct_blk_backend **be, int nbe, const long *ms, int nm,
                       const long *ts, int nt, const float *x, float *y, double min_time,
                       double tps[MAXL][MAXL][MAXB])
{
    printf("\n%-8s %5s %7s", "phase", "M", "threads");
    for (int k = 0; k < nbe; k++)
        printf(" | %9s tok/s  GFLOP/s", be[k]->name);
    const mct_blk_backend *gen = mct_blk_backend_find("gen"), *ob = mct_blk_backend_find("openblas"),
                          *gn = mct_blk_backend_find("generic");
    int gi = -1, oi = -1, ni = -1;
    for (int k = 0; k < nbe; k++) {
        if (be[k] == gen)
            gi = k;
        if (be[k] == ob)
            oi = k;
        if (be[k] == gn)
            ni = k;
    }
    /* the libraries a serving team would otherwise call: the best of them per row */
    int nlib = 0;
    for (int k = 0; k < nbe; k++)
        nlib += !strcmp(be[k]->name, "openblas") || !strcmp(be[k]->name, "onednn");
    if (gi >= 0 && oi >= 0)
        printf(" | gen/openblas");
    if (gi >= 0 && nlib > 1)
        printf(" | gen/best-lib");
    if (gi >= 0 && ni >= 0)
        printf(" | gen/generic");
    if (gi < 0 && oi >= 0 && ni >= 0)
        printf(" | openblas/generic");
    printf("\n");
    /* a backend that packs weights does it on its first forward, as an engine does at load
     * time: not part of any timing below */
    for (int k = 0; k < nbe; k++)
        if ((be[k]->pack || be[k]->pack_q) && mct_blk_forward(b, be[k], 1, x, y)) {
            fprintf(stderr, "llama_block: %s could not pack the %s weights\n", be[k]->name,
                    mct_blk_weights(b));
            return -1;
        }
    int last = -1; /* the backend whose forward ran last, across rows */
    for (int i = 0; i < nm; i++)
        for (int t = 0; t < nt; t++) {
            long M = ms[i];
            double *tp = tps[i][t];
            printf("%-8s %5ld %7ld", M <= 16 ? "decode" : "prefill", M, ts[t]);
            fflush(stdout);
            /* the backends side by side: a warm-up forward each, then rounds in which each
             * backend not yet done runs one timed forward (the order rotates every round), so
             * that a shared host's slow seconds fall on all of them rather than on whichever
             * ran then; each keeps its fastest forward. With several threads a backend's turn
             * starts with an untimed forward, since a library's pool goes on spinning for a
             * while after its last call and would take the next backend's cores. */
            double best[MAXB], spent[MAXB];
            int done[MAXB];
            for (int k = 0; k < nbe; k++) {
                be[k]->set_threads((int)ts[t]);
                /* the warm-up may be the only forward a slow backend times: with several
                 * threads it too starts after the last backend's pool has stopped spinning */
                int bad = ts[t] > 1 && last != k && mct_blk_forward(b, be[k], M, x, y);
                last = k;
                double t0 = now();
                if (bad || mct_blk_forward(b, be[k], M, x, y)) {     /* warm-up */
                    fprintf(stderr, "llama_block: %s forward failed at M %ld\n", be[k]->name, M);
                    return -1;
                }
                best[k] = now() - t0;
                spent[k] = 0;
            }
            /* the untuned reference alone may be timed by its warm-up: a backend whose warm-up
             * took more than twice the minimum time and three times the fastest one's */
            double fastest = best[0];
            for (int k = 1; k < nbe; k++)
                fastest = fmin(fastest, best[k]);
            for (int k = 0; k < nbe; k++)
                done[k] = best[k] > 2 * min_time && best[k] > 3 * fastest;
            for (int r = 0;; r++) {
                int ran = 0;
                for (int q = 0; q < nbe; q++) {
                    int k = (q + r) % nbe;
                    if (done[k])
                        continue;
                    be[k]->set_threads((int)ts[t]);
                    if (ts[t] > 1 && last != k)
                        mct_blk_forward(b, be[k], M, x, y);   /* settle */
                    double s0 = now();
                    mct_blk_forward(b, be[k], M, x, y);
                    double e = now() - s0;
                    best[k] = fmin(best[k], e); /* the warm-up is a forward too */
                    spent[k] += e;
                    done[k] = spent[k] >= min_time;
                    last = k;
                    ran++;
                }
                if (!ran)
                    break;
            }
            for (int k = 0; k < nbe; k++) {
                tp[k] = (double)M / best[k];
                printf(" | %15.1f %8.1f", tp[k], mct_blk_flops(b, M) / best[k] * 1e-9);
            }
            fflush(stdout);
            if (gi >= 0 && oi >= 0)
                printf(" | %11.2fx", tp[gi] / tp[oi]);
            if (gi >= 0 && nlib > 1) {
                double bl = 0;
                for (int k = 0; k < nbe; k++)
                    if (!strcmp(be[k]->name, "openblas") || !strcmp(be[k]->name, "onednn"))
                        bl = fmax(bl, tp[k]);
                printf(" | %12.2fx", tp[gi] / bl);
            }
            if (gi >= 0 && ni >= 0)
                printf(" | %10.2fx", tp[gi] / tp[ni]);
            if (gi < 0 && oi >= 0 && ni >= 0)
                printf(" | %15.2fx", tp[oi] / tp[ni]);
            printf("\n");
        }
    printf("(tok/s: M / the fastest forward of the block; GFLOP/s over projections and "
           "attention)\n");
    return 0;
}

/* The speed-up the block's quantized weights must reach on the gen backend (issue 15, item 6):
 * decode at M=1 3x (i8) and 4x (4-bit) the f32 block, prefill no slower; 0 where none is set. */
static double block_target(const char *wf, long M)
{
    if (M >= 128)
        return 1.0;
    if (M != 1)
        return 0;
    return !strcmp(wf, "i8") ? 3.0 : !strncmp(wf, "q4", 2) ? 4.0 : 0;
}

/* Several formats: each backend's tokens/s per format side by side, with the ratio to the f32
 * weights on the same backend (ref: the index of f32 in wf, -1 when not asked for). */
static void bench_formats(const char **wf, int nwf, const double *wmb, int ref,
                          const mct_blk_backend **be, int nbe, const long *ms, int nm,
                          const long *ts, int nt, double tps[MAXW][MAXL][MAXL][MAXB])
{
    printf("\nweight formats side by side: tokens/s per backend%s\n",
           ref >= 0 ? ", (x) the ratio to f32 weights on the same backend" : " (no f32 asked "
           "for: no ratios)");
    printf("%-8s %5s %7s %-9s", "phase", "M", "threads", "backend");
    for (int f = 0; f < nwf; f++)
        printf(" | %6s %4.0fMB (x f32)", wf[f], wmb[f]);
    printf(" | target (gen)\n");
    for (int i = 0; i < nm; i++)
        for (int t = 0; t < nt; t++)
            for (int k = 0; k < nbe; k++) {
                long M = ms[i];
                printf("%-8s %5ld %7ld %-9s", M <= 16 ? "decode" : "prefill", M, ts[t],
                       be[k]->name);
                for (int f = 0; f < nwf; f++) {
                    double v = tps[f][i][t][k];
                    if (ref >= 0 && tps[ref][i][t][k] > 0)
                        printf(" | %10.1f (%5.2fx)", v, v / tps[ref][i][t][k]);
                    else
                        printf(" | %10.1f %8s", v, "");
                }
                /* the targets are for the tuned library, the backend that has
                 * kernels of each format */
                int first = 1;
                if (!strcmp(be[k]->name, "gen") && ref >= 0)
                    for (int f = 0; f < nwf; f++) {
                        double tg = block_target(wf[f], M);
                        if (!tg || f == ref)
                            continue;
                        double r = tps[f][i][t][k] / tps[ref][i][t][k];
                        printf("%s%s >= %.1fx %s", first ? " | " : ", ", wf[f], tg,
                               r >= tg ? "met" : "NOT met");
                        first = 0;
                    }
                printf("\n");
            }
    printf("(MB: the projections' weights in that format; openblas, generic, onednn and "
           "gen-sgemm run f32 arithmetic on the dequantized weights, so their ratios stay near 1;"
           " gen runs the library's kernels of the format)\n");
}

int main(int argc, char **argv)
{
    int mode = 0, small = 0, nm = 0, nt = 2, nbe = 0, nwf = 0, rc = 1;
    long ms[MAXL], ts[MAXL] = {1, 2}, seq = 0;
    double min_time = 0.5, tol = 2e-4;
    unsigned long long seed = 1;
    const mct_blk_backend *be[MAXB];
    const char *wf[MAXW];
    char wbuf[256] = "f32";
    mct_blk *b = NULL;
    float *x = NULL, *ref = NULL, *y = NULL, *ref32[MAXL] = {0};
    static double tps[MAXW][MAXL][MAXL][MAXB];
    double wmb[MAXW] = {0};
    char err[512];

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--check"))
            mode = 'c';
        else if (!strcmp(a, "--bench"))
            mode = 'b';
        else if (!strcmp(a, "--shapes"))
            mode = 's';
        else if (!strcmp(a, "--small"))
            small = 1;
        else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(usage_text, stdout);
            return 0;
        } else if (v && !strcmp(a, "--m")) {
            if (parse_list(v, ms, &nm, 1, 1 << 20)) {
                fprintf(stderr, "llama_block: --m '%s': give token counts >= 1 separated by "
                        "commas, e.g. --m 1,16,128\n", v);
                return 2;
            }
            i++;
        } else if (v && !strcmp(a, "--threads")) {
            if (parse_list(v, ts, &nt, 1, 1024)) {
                fprintf(stderr, "llama_block: --threads '%s': give thread counts >= 1 separated"
                        " by commas, e.g. --threads 1,2\n", v);
                return 2;
            }
            i++;
        } else if (v && !strcmp(a, "--backends")) {
            char buf[256];
            snprintf(buf, sizeof buf, "%s", v);
            for (char *t = strtok(buf, ","); t; t = strtok(NULL, ",")) {
                const mct_blk_backend *f = mct_blk_backend_find(t);
                if (!f) {
                    fprintf(stderr, "llama_block: backend '%s' is not built in (openblas, "
                            "generic, onednn; gen when built with -DMCT_BLOCK_GEN, see "
                            "scripts/bench-block)\n", t);
                    return 2;
                }
                if (nbe < MAXB)
                    be[nbe++] = f;
            }
            i++;
        } else if (v && !strcmp(a, "--weights")) {
            if (strlen(v) >= sizeof wbuf) {
                fprintf(stderr, "llama_block: --weights '%s' is too long\n", v);
                return 2;
            }
            snprintf(wbuf, sizeof wbuf, "%s", v);
            i++;
        } else if (v && !strcmp(a, "--seq")) {
            long sv[MAXL];
            int ns;
            if (parse_list(v, sv, &ns, 1, 1L << 20) || ns != 1) {
                fprintf(stderr, "llama_block: --seq '%s': give the KV cache's positions as a "
                        "whole number from 1 to %ld (e.g. --seq 512; it is raised to the "
                        "largest --m)\n", v, 1L << 20);
                return 2;
            }
            seq = sv[0];
            i++;
        } else if (v && !strcmp(a, "--min-time")) {
            char *end;
            min_time = strtod(v, &end);
            if (end == v || *end || !(min_time >= 0 && min_time <= 3600)) {
                fprintf(stderr, "llama_block: --min-time '%s' is not a number of seconds from 0 "
                        "to 3600 (e.g. --min-time 2)\n", v);
                return 2;
            }
            i++;
        } else if (v && !strcmp(a, "--tol")) {
            char *end;
            tol = strtod(v, &end);
            if (end == v || *end || !(tol > 0 && tol < 1)) {
                fprintf(stderr, "llama_block: --tol '%s': give a relative tolerance above 0 "
                        "and below 1 (e.g. --tol 2e-4)\n", v);
                return 2;
            }
            i++;
        } else if (v && !strcmp(a, "--seed")) {
            char *end;
            errno = 0;
            seed = strtoull(v, &end, 10);
            if (end == v || *end || errno || *v == '-') {
                fprintf(stderr, "llama_block: --seed '%s': give a whole number >= 0 (e.g. "
                        "--seed 7)\n", v);
                return 2;
            }
            i++;
        } else {
            fprintf(stderr, "llama_block: unknown or incomplete argument '%s' (see --help)\n", a);
            return 2;
        }
    }
    if (!mode) {
        fprintf(stderr, "llama_block: give --check, --bench or --shapes (see --help)\n");
        return 2;
    }
    for (char *t = strtok(wbuf, ","); t; t = strtok(NULL, ",")) {
        if (nwf == MAXW) {
            fprintf(stderr, "llama_block: --weights: at most %d formats\n", MAXW);
            return 2;
        }
        wf[nwf++] = t;
    }
    if (!nwf) {
        fprintf(stderr, "llama_block: --weights: give formats separated by commas, e.g. "
                "f32,i8,q4g32\n");
        return 2;
    }
    if (!nbe) {
        int nall;
        const mct_blk_backend *all = mct_blk_backends(&nall);
        for (int i = 0; i < nall && nbe < MAXB; i++)
            if (strcmp(all[i].name, "onednn"))   /* optional library: when asked for */
                be[nbe++] = &all[i];
    }
    if (!nm) {
        static const long dm[] = {1, 4, 16, 128, 512}, sm[] = {1, 5, 16, 64};
        const long *d = small && mode == 'c' ? sm : dm;
        nm = small && mode == 'c' ? 4 : 5;
        memcpy(ms, d, (size_t)nm * sizeof *ms);
    }
    long maxm = 0;
    for (int i = 0; i < nm; i++)
        maxm = ms[i] > maxm ? ms[i] : maxm;
    if (!seq)
        seq = small ? 64 : 512;
    if (seq < maxm)
        seq = maxm;
    mct_blk_cfg cfg = small ? mct_blk_cfg_small() : mct_blk_cfg_llama3_8b();
    long H = cfg.hidden;
    int ref_f = -1, quantized = 0;
    for (int f = 0; f < nwf; f++) {
        if (!strcmp(wf[f], "f32") && ref_f < 0)
            ref_f = f;
        quantized |= strcmp(wf[f], "f32") != 0;
    }
    x = malloc((size_t)(maxm * H) * sizeof *x);
    ref = malloc((size_t)(maxm * H) * sizeof *ref);
    y = malloc((size_t)(maxm * H) * sizeof *y);
    if (!x || !ref || !y) {
        fprintf(stderr, "llama_block: out of memory for activations (M %ld)\n", maxm);
        goto fail;
    }
    mct_blk_fill(x, maxm * H, seed + 100);
    /* one block at a time (a Llama-3-8B block is about 0.9 GB in f32): the f32-weight outputs
     * a quantized block is compared with first */
    if (mode == 'c' && quantized && f32_outputs(&cfg, maxm, seq, seed, ms, nm, x, ref32))
        goto fail;
    int bad = 0;
    for (int f = 0; f < nwf; f++) {
        if (mct_blk_create(&cfg, wf[f], maxm, seq, seed, &b, err, sizeof err)) {
            fprintf(stderr, "llama_block: %s\n", err);
            goto fail;
        }
        if (mode == 's') {
            for (int i = 0; i < nm; i++) {
                char buf[2048];
                mct_blk_workloads(b, ms[i], buf, sizeof buf);
                fputs(buf, stdout);
            }
            mct_blk_destroy(b);
            b = NULL;
            continue;
        }
        wmb[f] = mct_blk_weight_bytes(b) * 1e-6;
        if (nwf > 1)
            printf("%s== weights %s\n", f ? "\n" : "", wf[f]);
        printf("block: %s decoder layer, hidden %d, heads %d/%d kv, head dim %d, intermediate %d, "
               "seq %ld, %s weights %.0f MB\n", small ? "small (Llama-3 structure)" : "Llama-3-8B",
               cfg.hidden, cfg.heads, cfg.kv_heads, cfg.head_dim, cfg.inter, seq,
               mct_blk_weights(b), wmb[f]);
        for (int i = 0; i < nbe; i++)
            printf("backend %-8s %s\n", be[i]->name, be[i]->describe());
        if (mode == 'c') {
            int r = check_block(b, be, nbe, ms, nm, H, x, ref, y, quantized ? ref32 : NULL, tol);
            if (r < 0)
                goto fail;
            bad += r;
        } else if (bench_block(b, be, nbe, ms, nm, ts, nt, x, y, min_time, tps[f])) {
            goto fail;
        }
        mct_blk_destroy(b);
        b = NULL;
    }
    if (mode == 'c') {
        printf("check: %s\n", bad ? "FAILED" : "all backends agree");
        rc = bad ? 1 : 0;
        goto fail;
    }
    if (mode == 'b' && nwf > 1)
        bench_formats(wf, nwf, wmb, ref_f, be, nbe, ms, nm, ts, nt, tps);
    rc = 0;
fail:
    free(x);
    free(ref);
    free(y);
    for (int i = 0; i < MAXL; i++)
        free(ref32[i]);
    mct_blk_destroy(b);
    return rc;
}
