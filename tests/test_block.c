/* The Llama-3 decoder block (models/llama_block*.c) at its reduced size: the openblas and generic
 * backends agree; with each weight format the block's error against the f32-weight block stays
 * within a bound derived from the quantizers (see quant_bounds); then a library generated from a
 * database with three of the block's shapes tuned here (`mctune tune`, `mctune gen`; one of them
 * with i8 weights) is built in as the gen backends (weights prepacked from f32 and from the plain
 * layout, and plain NAME_sgemm calls) and agrees too. The block program is compiled by cc from
 * the source tree (under ASan when MCTUNE_SANITIZED is set). */
#include "tests/check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <limits.h>

static char dir[256], root[512];

/* Runs a shell command, its output into out (NUL-terminated, may be NULL); returns its exit
 * status, -1 when it did not exit. */

static int count(const char *s, const char *what)
{
    int n = 0;
    for (const char *p = s; (p = strstr(p, what)); p++)
        n++;
    return n;
}

/* The "quant M=... w=FMT ... rms relative E" lines of a --check: the largest E per format (over
 * the Ms) into worst[] by the index of fmts; -1 where a format has no line. */
static void quant_errors(const char *out, const char *const *fmts, int n, double *worst, int *lines)
{
    for (int i = 0; i < n; i++)
        worst[i] = -1;
    *lines = 0;
    for (const char *p = out; (p = strstr(p, "\nquant M=")); p++) {
        long M;
        char f[32];
        double rms, mx;
        if (sscanf(p + 1, "quant M=%ld w=%31s vs the f32-weight block (openblas): rms relative "
                   "%lf, max relative %lf", &M, f, &rms, &mx) != 4)
            continue;
        (*lines)++;
        for (int i = 0; i < n; i++)
            if (!strcmp(f, fmts[i]) && rms > worst[i])
                worst[i] = rms;
    }
}

/* Bounds on the block's rms error against the f32-weight block, relative to the f32 block's
 * contribution (out - x). Per weight, rounding to a grid of step s leaves an error e uniform in
 * [-s/2, s/2]: rms(e) = s/sqrt(12); the block's weights are uniform in [-a, a], rms(w) =
 * a/sqrt(3), and a channel's (i8) or a group's (q4) max|w| is close to a, so the relative rms
 * error of one quantized weight matrix is r = s/(2a): i8 s = a/127, r = 1/254; q4 s = a/7,
 * r = 1/14; bf16 keeps 8 significant bits, r <= 2^-8. Independent weight errors give a
 * projection's output the same relative error r. The block's contribution passes two quantized
 * projections in series on each path (q/k/v then o; gate/up then down), so its error is about
 * sqrt(2) to 2 r; the test allows 3 r. It also requires r/4 at least (bf16 r/16: its typical
 * error is well under its bound), so a block that skipped quantization, or quantized with the
 * wrong scale, fails. */
static void quant_bounds(const char *f, double *lo, double *hi)
{
    double r = !strcmp(f, "bf16") ? 1.0 / 256 : !strcmp(f, "i8") ? 1.0 / 254 : 1.0 / 14;
    *hi = 3 * r;
    *lo = !strcmp(f, "bf16") ? r / 16 : r / 4;
}

int main(void)
{
    static char out[1 << 16];
    const char *mctune = getenv("MCTUNE") ? getenv("MCTUNE") : "build/mctune";
    int sanitized = getenv("MCTUNE_SANITIZED") != NULL;
    const char *san = sanitized ? "-fsanitize=address,undefined -fno-omit-frame-pointer" : "";
    const char *blas = "$(pkg-config --cflags --libs openblas 2>/dev/null || echo -lopenblas)";

    snprintf(root, sizeof root, "%s", __FILE__);
    char *slash = strrchr(root, '/');
    if (slash && slash != root)
        *slash = 0;
    if (!strcmp(root, "tests") || !strchr(root, '/'))
        snprintf(root, sizeof root, ".");
    else if ((slash = strrchr(root, '/')))
        *slash = 0;
    char *abs = realpath(root, NULL);
    if (abs) {
        snprintf(root, sizeof root, "%s", abs);
        free(abs);
    }
    snprintf(dir, sizeof dir, "/tmp/mct-test-block-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        CHECK(0);
        return check_done();
    }

    /* openblas and generic */
    int rc = check_sh(out, sizeof out, "cc -std=c11 -D_GNU_SOURCE -O1 -g -fopenmp %s -I%s -o "
                "%s/block %s/models/llama_block.c %s/models/llama_block_main.c %s/runtime/quant.c "
                "%s/runtime/err.c %s -lm 2>&1", san, root, dir, root, root, root, root, blas);
    CHECKF(rc == 0, "block build: %.3000s", out);
    rc = check_sh(out, sizeof out, "%s/block --check --small 2>&1", dir);
    CHECKF(rc == 0 && strstr(out, "check: all backends agree") &&
           count(out, " openblas max |diff| ") == 4 && count(out, " generic  max |diff| ") == 4
           && count(out, ": ok\n") == 8, "block --check: %.3000s", out);
    /* the check can fail: a tolerance no f32 reordering meets flags the generic backend */
    rc = check_sh(out, sizeof out, "%s/block --check --small --m 16 --tol 1e-12 2>&1", dir);
    CHECKF(rc == 1 && strstr(out, "generic  max") && strstr(out, "MISMATCH") &&
           strstr(out, "check: FAILED"), "block --check --tol 1e-12: %.3000s", out);
    /* bench runs and prints a row per M and thread count */
    rc = check_sh(out, sizeof out, "%s/block --bench --small --m 1,64 --threads 1 --min-time 0.01 2>&1",
            dir);
    CHECKF(rc == 0 && strstr(out, "decode       1       1 |") &&
           strstr(out, "prefill     64       1 |") && strstr(out, "openblas/generic"),
           "block --bench: %.3000s", out);

    /* weight formats: every backend agrees on the dequantized weights, and the error against
     * the f32-weight block (same seed) is within quant_bounds, growing bf16 < i8 < q4 */
    static const char *const fmts[] = {"f32", "bf16", "i8", "q4g32", "q4g128"};
    double worst[5];
    int lines;
    rc = check_sh(out, sizeof out, "%s/block --check --small --m 1,16 --weights "
                  "f32,bf16,i8,q4g32,q4g128 2>&1", dir);
    quant_errors(out, fmts, 5, worst, &lines);
    CHECKF(rc == 0 && strstr(out, "check: all backends agree") && count(out, ": ok\n") == 20 &&
           lines == 10 && count(out, "== weights ") == 5, "block --check --weights: %.6000s", out);
    CHECKF(worst[0] == 0, "f32 weights differ from the f32-weight block: %g", worst[0]);
    for (int i = 1; i < 5; i++) {
        double lo, hi;
        quant_bounds(fmts[i], &lo, &hi);
        CHECKF(worst[i] >= lo && worst[i] <= hi, "w=%s: rms relative error %g outside [%g, %g]",
               fmts[i], worst[i], lo, hi);
    }
    CHECKF(worst[1] < worst[2] && worst[2] < worst[3], "errors not ordered bf16 %g < i8 %g < "
           "q4g32 %g", worst[1], worst[2], worst[3]);
    /* the quantized weights are what the block's shapes name, with their sizes */
    rc = check_sh(out, sizeof out, "%s/block --shapes --small --m 4 --weights q4g32 2>&1", dir);
    CHECKF(rc == 0 && count(out, "matmul f32 nt M=4 ") == 5 && count(out, " w=q4g32\n") == 5 &&
           strstr(out, "bmm f32 nt B=8 G=4 M=4 N=64 K=32 epi=none\n"), "--shapes: %.2000s", out);
    /* formats the block cannot take say why */
    rc = check_sh(out, sizeof out, "%s/block --check --small --weights q4g256 2>&1", dir);
    CHECKF(rc == 1 && strstr(out, "q4g256 does not fit the block's weight N=256 K=896"),
           "q4g256: %.2000s", out);
    rc = check_sh(out, sizeof out, "%s/block --check --small --weights f32,int4 2>&1", dir);
    CHECKF(rc == 1 && strstr(out, "'int4'"), "int4: %.2000s", out);
    /* bench per format: the side-by-side table with the ratio to f32 on each backend */
    rc = check_sh(out, sizeof out, "%s/block --bench --small --m 1 --threads 1 --min-time 0.01 "
                  "--weights f32,i8 2>&1", dir);
    CHECKF(rc == 0 && strstr(out, "weight formats side by side") &&
           strstr(out, "decode       1       1 openblas  |") &&
           strstr(out, "decode       1       1 generic   |") && count(out, "(x f32)") == 2 &&
           count(out, "x)\n") == 2 && strstr(out, "== weights i8"),
           "block --bench --weights: %.4000s", out);

    /* gen: a library from a database where the block's q/o projection (M=16, f32 and i8
     * weights) and its scores bmm are tuned, every other shape on the generated generic
     * kernels (for q4g32: the path that dequantizes blocks of channels) */
    if (access(mctune, X_OK)) {
        fprintf(stderr, "test_block: %s is not an executable; build it (make) or set MCTUNE\n",
                mctune);
        CHECK(0);
    } else {
        rc = check_sh(out, sizeof out, "%s tune --db %s/db --workload 'matmul f32 nt M=16 N=256 K=256 "
                "epi=none' --budget 3 --min-time 0.01 2>&1 && %s tune --db %s/db --workload "
                "'bmm f32 nt B=8 G=4 M=16 N=64 K=32 epi=none' --budget 2 --min-time 0.01 2>&1 && "
                "%s tune --db %s/db --workload 'matmul f32 nt M=16 N=256 K=256 epi=none w=i8' "
                "--budget 2 --min-time 0.01 2>&1", mctune, dir, mctune, dir, mctune, dir);
        CHECKF(rc == 0 && count(out, "done: 1 tuned") == 3, "tune: %.3000s", out);
        rc = check_sh(out, sizeof out, "%s gen --db %s/db --out %s/gen --name tblk --cpus host 2>&1",
                mctune, dir, dir);
        CHECKF(rc == 0, "gen: %.3000s", out);
        rc = check_sh(out, sizeof out, "cd %s/gen && cc -std=c11 -O1 -g -fopenmp %s -c tblk.c 2>&1 && "
                "cc -std=c11 -D_GNU_SOURCE -O1 -g -fopenmp %s -I%s -I. -DMCT_BLOCK_GEN=tblk "
                "-DMCT_BLOCK_GEN_H='\"tblk.h\"' -o %s/block-gen %s/models/llama_block.c "
                "%s/models/llama_block_main.c %s/runtime/quant.c %s/runtime/err.c tblk.o %s -lm "
                "2>&1", dir, san, san, root, dir, root, root, root, root, blas);
        CHECKF(rc == 0, "block-gen build: %.3000s", out);
        rc = check_sh(out, sizeof out, "TBLK_DEBUG=1 %s/block-gen --check --small 2>&1", dir);
        CHECKF(rc == 0 && strstr(out, "check: all backends agree") &&
               count(out, " gen      max |diff| ") == 4 &&
               count(out, " gen-sgemm max |diff| ") == 4 && count(out, ": ok\n") == 16 &&
               strstr(out, "backend gen      generated library tblk, table "),
               "block-gen --check: %.4000s", out);
        /* the tuned kernels ran (the debug log names each distinct call's kernel once) */
        CHECKF(strstr(out, "k_matmul_f32_") && strstr(out, "k_bmm_f32_"),
               "no tuned kernel named in the gen debug log: %.4000s", out);
        /* quantized: gen packs the plain layout and runs the i8 kernel tuned above (q4g32 has
         * none: the dequantizing path), against openblas on the same dequantized weights */
        rc = check_sh(out, sizeof out, "TBLK_DEBUG=1 %s/block-gen --check --small --m 1,16 "
                      "--weights i8,q4g32 2>&1", dir);
        CHECKF(rc == 0 && strstr(out, "check: all backends agree") &&
               count(out, "w=i8 gen      max |diff| ") == 2 &&
               count(out, "w=q4g32 gen      max |diff| ") == 2 && count(out, ": ok\n") == 16 &&
               strstr(out, "k_matmul_i8_"), "block-gen --check --weights: %.6000s", out);
    }
    check_sh(NULL, 0, "rm -rf %s", dir);
    return check_done();
}
