/* llama_block: runs the Llama-3-8B decoder block (llama_block.h) on each backend built in, to
 * check that they agree (--check) or to time prefill and decode side by side (--bench). */
#include "models/llama_block.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAXL 16

static const char usage_text[] =
    "usage: llama_block (--check | --bench | --shapes) [options]\n"
    "\n"
    "  --check         run every backend on the same input, compare with openblas (exit 1 when\n"
    "                  one differs by more than --tol of the largest |out - x|)\n"
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
    "  --tol X         --check: tolerance relative to the largest |out - x| (default 2e-4)\n"
    "  --seed N        weights, cache and input (default 1)\n";

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

int main(int argc, char **argv)
{
    int mode = 0, small = 0, nm = 0, nt = 2, nbe = 0, rc = 1;
    long ms[MAXL], ts[MAXL] = {1, 2}, seq = 0;
    double min_time = 0.5, tol = 2e-4;
    unsigned long long seed = 1;
    const mct_blk_backend *be[8];
    mct_blk *b = NULL;
    float *x = NULL, *ref = NULL, *y = NULL;
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
                if (nbe < 8)
                    be[nbe++] = f;
            }
            i++;
        } else if (v && !strcmp(a, "--seq")) {
            seq = atol(v);
            i++;
        } else if (v && !strcmp(a, "--min-time")) {
            min_time = atof(v);
            i++;
        } else if (v && !strcmp(a, "--tol")) {
            tol = atof(v);
            i++;
        } else if (v && !strcmp(a, "--seed")) {
            seed = strtoull(v, NULL, 10);
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
    if (!nbe) {
        int nall;
        const mct_blk_backend *all = mct_blk_backends(&nall);
        for (int i = 0; i < nall; i++)
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
    if (mct_blk_create(&cfg, maxm, seq, seed, &b, err, sizeof err)) {
        fprintf(stderr, "llama_block: %s\n", err);
        return 1;
    }
    if (mode == 's') {
        for (int i = 0; i < nm; i++) {
            char buf[2048];
            mct_blk_workloads(b, ms[i], buf, sizeof buf);
            fputs(buf, stdout);
        }
        mct_blk_destroy(b);
        return 0;
    }
    long H = cfg.hidden;
    x = malloc((size_t)(maxm * H) * sizeof *x);
    ref = malloc((size_t)(maxm * H) * sizeof *ref);
    y = malloc((size_t)(maxm * H) * sizeof *y);
    if (!x || !ref || !y) {
        fprintf(stderr, "llama_block: out of memory for activations (M %ld)\n", maxm);
        goto fail;
    }
    mct_blk_fill(x, maxm * H, seed + 100);
    printf("block: %s decoder layer, hidden %d, heads %d/%d kv, head dim %d, intermediate %d, "
           "seq %ld, f32 weights %.0f MB\n", small ? "small (Llama-3 structure)" : "Llama-3-8B",
           cfg.hidden, cfg.heads, cfg.kv_heads, cfg.head_dim, cfg.inter, seq,
           4e-6 * ((double)H * cfg.heads * cfg.head_dim * 2 + 2.0 * H * cfg.kv_heads *
                   cfg.head_dim + 3.0 * H * cfg.inter));
    for (int i = 0; i < nbe; i++)
        printf("backend %-8s %s\n", be[i]->name, be[i]->describe());

    if (mode == 'c') {
        const mct_blk_backend *ob = mct_blk_backend_find("openblas");
        int bad = 0;
        for (int i = 0; i < nm; i++) {
            long M = ms[i];
            for (int k = 0; k < nbe; k++)
                be[k]->set_threads(1);
            if (mct_blk_forward(b, ob, M, x, ref)) {
                fprintf(stderr, "llama_block: openblas forward failed at M %ld\n", M);
                goto fail;
            }
            /* against the block's own contribution (out - x): the residual would hide errors */
            double mx = 0;
            for (long j = 0; j < M * H; j++)
                mx = fmax(mx, fabs((double)ref[j] - x[j]));
            for (int k = 0; k < nbe; k++) {
                int r = mct_blk_forward(b, be[k], M, x, y);
                double d = 0;
                long finite = 1;
                for (long j = 0; j < M * H; j++) {
                    if (!isfinite(y[j]))
                        finite = 0;
                    d = fmax(d, fabs((double)y[j] - ref[j]));
                }
                int ok = !r && finite && mx > 0 && d <= tol * mx;
                printf("check M=%-4ld %-8s max |diff| %.3g, largest out-x %.3g, relative %.3g: "
                       "%s\n", M, be[k]->name, d, mx, mx > 0 ? d / mx : 0.0,
                       ok ? "ok" : r ? "backend error" : "MISMATCH");
                bad += !ok;
            }
        }
        printf("check: %s\n", bad ? "FAILED" : "all backends agree");
        rc = bad ? 1 : 0;
        goto fail;
    }

    /* --bench */
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
        if (be[k]->pack && mct_blk_forward(b, be[k], 1, x, y)) {
            fprintf(stderr, "llama_block: %s could not pack the weights\n", be[k]->name);
            goto fail;
        }
    for (int i = 0; i < nm; i++)
        for (int t = 0; t < nt; t++) {
            long M = ms[i];
            double tps[8] = {0};
            printf("%-8s %5ld %7ld", M <= 16 ? "decode" : "prefill", M, ts[t]);
            fflush(stdout);
            for (int k = 0; k < nbe; k++) {
                be[k]->set_threads((int)ts[t]);
                double t0 = now();
                if (mct_blk_forward(b, be[k], M, x, y)) {     /* warm-up */
                    fprintf(stderr, "llama_block: %s forward failed at M %ld\n", be[k]->name, M);
                    goto fail;
                }
                double first = now() - t0, best = first;
                int reps = 0;
                double spent = 0;
                /* a slow backend's first run counts when it alone exceeds the minimum time */
                while (spent < min_time && !(reps == 0 && first > 2 * min_time)) {
                    double s = now();
                    mct_blk_forward(b, be[k], M, x, y);
                    double e = now() - s;
                    best = reps ? fmin(best, e) : e;
                    spent += e;
                    reps++;
                }
                tps[k] = (double)M / best;
                printf(" | %15.1f %8.1f", tps[k], mct_blk_flops(b, M) / best * 1e-9);
                fflush(stdout);
            }
            if (gi >= 0 && oi >= 0)
                printf(" | %11.2fx", tps[gi] / tps[oi]);
            if (gi >= 0 && nlib > 1) {
                double bl = 0;
                for (int k = 0; k < nbe; k++)
                    if (!strcmp(be[k]->name, "openblas") || !strcmp(be[k]->name, "onednn"))
                        bl = fmax(bl, tps[k]);
                printf(" | %12.2fx", tps[gi] / bl);
            }
            if (gi >= 0 && ni >= 0)
                printf(" | %10.2fx", tps[gi] / tps[ni]);
            if (gi < 0 && oi >= 0 && ni >= 0)
                printf(" | %15.2fx", tps[oi] / tps[ni]);
            printf("\n");
        }
    printf("(tok/s: M / the fastest forward of the block; GFLOP/s over projections and "
           "attention)\n");
    rc = 0;
fail:
    free(x);
    free(ref);
    free(y);
    mct_blk_destroy(b);
    return rc;
}
