/* The Llama-3 decoder block (models/llama_block*.c) at its reduced size: the openblas and generic
 * backends agree; then a library generated from a database with two of the block's shapes tuned
 * here (`mctune tune`, `mctune gen`) is built in as the gen backends (weights prepacked, and plain
 * NAME_sgemm calls) and agrees too. The block
 * program is compiled by cc from the source tree (under ASan when MCTUNE_SANITIZED is set). */
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
                "%s/block %s/models/llama_block.c %s/models/llama_block_main.c %s -lm 2>&1", san,
                root, dir, root, root, blas);
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

    /* gen: a library from a database where the block's q/o projection (M=16) and its scores
     * bmm are tuned, every other shape on the generated generic kernels */
    if (access(mctune, X_OK)) {
        fprintf(stderr, "test_block: %s is not an executable; build it (make) or set MCTUNE\n",
                mctune);
        CHECK(0);
    } else {
        rc = check_sh(out, sizeof out, "%s tune --db %s/db --workload 'matmul f32 nt M=16 N=256 K=256 "
                "epi=none' --budget 3 --min-time 0.01 2>&1 && %s tune --db %s/db --workload "
                "'bmm f32 nt B=8 G=4 M=16 N=64 K=32 epi=none' --budget 2 --min-time 0.01 2>&1",
                mctune, dir, mctune, dir);
        CHECKF(rc == 0 && count(out, "done: 1 tuned") == 2, "tune: %.3000s", out);
        rc = check_sh(out, sizeof out, "%s gen --db %s/db --out %s/gen --name tblk --cpus host 2>&1",
                mctune, dir, dir);
        CHECKF(rc == 0, "gen: %.3000s", out);
        rc = check_sh(out, sizeof out, "cd %s/gen && cc -std=c11 -O1 -g -fopenmp %s -c tblk.c 2>&1 && "
                "cc -std=c11 -D_GNU_SOURCE -O1 -g -fopenmp %s -I%s -I. -DMCT_BLOCK_GEN=tblk "
                "-DMCT_BLOCK_GEN_H='\"tblk.h\"' -o %s/block-gen %s/models/llama_block.c "
                "%s/models/llama_block_main.c tblk.o %s -lm 2>&1", dir, san, san, root, dir, root,
                root, blas);
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
    }
    check_sh(NULL, 0, "rm -rf %s", dir);
    return check_done();
}
