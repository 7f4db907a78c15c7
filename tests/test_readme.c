/* The README's commands, exercised in a reduced form (tiny shapes and budgets) so the
 * documentation cannot rot: each step first checks that README.md still shows the command, then
 * runs it for real in a fresh temporary folder. */
#include "tests/check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char readme[1 << 17];
static char dir[64];
static const char *bin;

static int documented(const char *needle)
{
    int ok = strstr(readme, needle) != NULL;
    if (!ok)
        fprintf(stderr, "README.md no longer shows '%s'\n", needle);
    return ok;
}

/* Runs a command line with $M = the mctune binary and $D = the temp folder, from that folder. */
static int sh(const char *cmdline, char *out, size_t len)
{
    int rc = check_sh(out, len, "cd %s && M=%s D=%s; export M D; ( %s ) 2>&1", dir, bin, dir,
                      cmdline);
    if (rc)
        fprintf(stderr, "command failed (%d): %s\n%s\n", rc, cmdline, out);
    return rc;
}

int main(void)
{
    static char out[1 << 16];
    char cwd[1024];
    bin = getenv("MCTUNE") ? getenv("MCTUNE") : "build/mctune";
    if (!getcwd(cwd, sizeof cwd))
        return 1;
    static char absbin[1200];
    if (bin[0] != '/') {
        snprintf(absbin, sizeof absbin, "%s/%s", cwd, bin);
        bin = absbin;
    }
    FILE *f = fopen("README.md", "r");
    CHECK(f != NULL);
    if (!f)
        return check_done();
    size_t n = fread(readme, 1, sizeof readme - 1, f);
    readme[n] = 0;
    fclose(f);
    snprintf(dir, sizeof dir, "/tmp/mct_readme_XXXXXX");
    if (!mkdtemp(dir)) {
        CHECK(0);
        return check_done();
    }
    setenv("MCTUNE_DB", "", 1);
    char wl[] = "matmul f32 nt M=4 N=64 K=64 epi=none";
    char cmd[1024];

    CHECK(documented("make demo") && documented("make test"));
    CHECK(documented("mctune cpu") && sh("$M cpu", out, sizeof out) == 0 && strstr(out, "tier"));
    CHECK(documented("build/mctune show") &&
          sh("$M show 'matmul f32 nt M=128 N=4096 K=4096 epi=none' --schedule 'tile(i, 128, 8); "
             "tile(j, 512, 32); tile(k, 512); reorder(j0, k0, i0, j1, i1, k1, i2, j2); "
             "prepack(B, j2, k1); cache_write(i1); unroll(i2, 8); vectorize(j2); "
             "prefetch(C, i1, 1)'", out, sizeof out) == 0 &&
          strstr(out, "register tile"));
    /* tune (a tiny shape, budget 4), then the second run searches nothing */
    CHECK(documented("mctune tune --model models/llama-3-8b.json"));
    snprintf(cmd, sizeof cmd, "$M tune --workload '%s' --budget 4 --db $D/db --log $D/t.jsonl "
             "--min-time 0.01", wl);
    CHECK(sh(cmd, out, sizeof out) == 0);
    CHECK(sh(cmd, out, sizeof out) == 0 && strstr(out, "skipped"));
    /* look up without searching */
    CHECK(documented("mctune db get \""));
    snprintf(cmd, sizeof cmd, "$M db get '%s' --db $D/db", wl);
    CHECK(sh(cmd, out, sizeof out) == 0 && strstr(out, "tile") != NULL);
    /* generate and build the library as the README says */
    CHECK(documented("mctune gen --out out --name llk") && documented("cc -O2 -fopenmp -c out/llk.c"));
    CHECK(sh("$M gen --db $D/db --out out --name llk && cc -O2 -fopenmp -c out/llk.c -o llk.o",
             out, sizeof out) == 0);
    snprintf(cmd, sizeof cmd, "test -s %s/llk.o && test -s %s/out/llk.h", dir, dir);
    CHECK(system(cmd) == 0);
    /* the fleet recipe: export, import into another database, gen from it */
    CHECK(documented("mctune db export --db") && documented("mctune db import --db fleet.db"));
    CHECK(sh("$M db export --db $D/db > tuned-a.jsonl && $M db import --db fleet.db tuned-*.jsonl "
             "&& $M gen --db fleet.db --out out2 --name llk", out, sizeof out) == 0);
    CHECK(sh("test -s out2/llk.c", out, sizeof out) == 0);
    /* report from the tuning log */
    CHECK(documented("mctune report"));
    CHECK(sh("$M report t.jsonl --out rep --no-plot", out, sizeof out) == 0);
    CHECK(sh("test -s rep/report.md", out, sizeof out) == 0);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (!check_fail_ && system(cmd)) {}
    return check_done();
}
