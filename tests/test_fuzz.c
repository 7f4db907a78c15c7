/* Runs each libFuzzer target built by `make fuzz` (build/fuzz/fuzz_*) for a few seconds from a
 * small seed corpus and checks that it exits cleanly: a crash, a sanitizer report or a broken
 * round-trip property makes the fuzzer exit nonzero, which fails this test. Without clang and
 * libFuzzer the targets are not built and this test says so and checks nothing. */
#include "tests/check.h"

#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const struct {
    const char *name;
    const char *seeds[8];
} targets[] = {
    {"fuzz_jsonl", {
        "{\"type\":\"best\",\"workload\":\"matmul f32 nt M=128 N=4096 K=4096 epi=none\","
        "\"cpu\":\"00000000000000ab\",\"threads\":1,\"schedule\":\"tile(i, 8)\","
        "\"median_ns\":5,\"gflops\":1.5,\"search\":\"mcts\",\"model\":\"m\"}",
        "{\"type\":\"trial\",\"workload\":\"bmm f32 nt B=32 G=4 M=128 N=512 K=128 epi=none\","
        "\"wl_hash\":\"00112233445566778899aabbccddeeff\",\"cpu\":\"00000000000000ab\","
        "\"threads\":4,\"schedule\":\"\",\"median_ns\":1e3}",
        "{\"type\":\"cpu\",\"vendor\":\"GenuineIntel\",\"family\":6,\"model\":143,"
        "\"cpuid\":{\"1.ecx\":\"0x1\",\"1.edx\":\"0x0\",\"7.ebx\":\"0x0\",\"7.ecx\":\"0x0\","
        "\"7.edx\":\"0x0\",\"7.1.eax\":\"0x0\",\"7.1.edx\":\"0x0\",\"80000001.ecx\":\"0x0\","
        "\"80000001.edx\":\"0x0\",\"d.eax\":\"0x0\",\"d.1.eax\":\"0x0\"},\"xcr0\":\"0xe7\"}",
        "{\"type\":\"workload\",\"workload\":\"matmul f32 nn M=1 N=2 K=3 epi=bias+gelu beta=1\"}",
        "{\"type\":\"llm\",\"model\":\"m\",\"params\":\"{}\",\"prompt\":\"p\",\"reply\":\"r\"}",
        "{\"type\":\"best\",\"workload\":\"matmul f32 nt M=4 N=64 K=64 epi=none b=raw\","
        "\"cpu\":\"00000000000000ab\",\"threads\":1,\"schedule\":\"tile(j, 16); pack(B, j0, j1)\","
        "\"median_ns\":5,\"gflops\":1.5,\"search\":\"mcts\",\"model\":\"m\"}",
        NULL}},
    {"fuzz_workload", {
        "matmul f32 nt M=128 N=4096 K=4096 epi=none",
        "matmul f32 nn M=16 N=14336 K=4096 epi=bias+silu beta=1",
        "bmm f32 nt B=32 G=4 M=128 N=512 K=128 epi=none",
        "matmul f32 nt K=7 N=5 M=3 epi=relu",
        "matmul f32 nt M=16 N=4096 K=4096 epi=none b=raw",
        "matmul f32 nn b=raw M=1 N=7 K=3 epi=bias+gelu beta=1",
        "bmm f32 nt B=2 G=1 M=4 N=8 K=8 epi=none b=raw",
        NULL}},
    {"fuzz_sched", {
        "tile(i, 8); tile(j, 16); reorder(i0, j0, k, i1, j1); vectorize(j1)",
        "tile(i, 4, 2); unroll(k, 4); parallel(i0)",
        "pack(B, j0, nt); cache_write(k); fuse_epilogue(j0); prefetch(A, k, 4)",
        "prepack(B)",
        NULL}},
};

static int write_seeds(const char *dir, const char *const *seeds)
{
    for (int i = 0; seeds[i]; i++) {
        char path[800];
        snprintf(path, sizeof path, "%s/seed%d", dir, i);
        FILE *f = fopen(path, "w");
        if (!f)
            return -1;
        fputs(seeds[i], f);
        fclose(f);
    }
    return 0;
}

int main(int argc, char **argv)
{
    char self[512], fuzzdir[600], tmp[] = "/tmp/mctune-test-fuzz-XXXXXX";
    const char *env = getenv("MCTUNE_FUZZ_DIR");
    int secs = getenv("MCTUNE_SANITIZED") ? 2 : 5;
    (void)argc;
    /* build/tests/test_fuzz -> build/fuzz */
    snprintf(self, sizeof self, "%s", argv[0]);
    char *d = dirname(self);
    snprintf(fuzzdir, sizeof fuzzdir, "%s/../fuzz", d);
    if (env && *env)
        snprintf(fuzzdir, sizeof fuzzdir, "%s", env);
    if (!mkdtemp(tmp)) {
        perror("mkdtemp");
        return 1;
    }
    int have_clang = system("command -v clang >/dev/null 2>&1") == 0;
    for (size_t t = 0; t < sizeof targets / sizeof targets[0]; t++) {
        char bin[800], corpus[700], log[700], cmd[3000];
        struct stat st;
        snprintf(bin, sizeof bin, "%s/%s", fuzzdir, targets[t].name);
        if (stat(bin, &st) != 0) {
            if (have_clang) {
                CHECKF(0, "%s is not built; run 'make fuzz'", bin);
            } else {
                printf("note: %s skipped: clang with libFuzzer is not installed\n",
                       targets[t].name);
            }
            continue;
        }
        snprintf(corpus, sizeof corpus, "%s/%s", tmp, targets[t].name);
        mkdir(corpus, 0755);
        CHECK(write_seeds(corpus, targets[t].seeds) == 0);
        snprintf(log, sizeof log, "%s/%s.log", tmp, targets[t].name);
        snprintf(cmd, sizeof cmd, "'%s' -max_total_time=%d -rss_limit_mb=1024 -timeout=10 "
                 "-artifact_prefix='%s/' '%s' >'%s' 2>&1", bin, secs, tmp, corpus, log);
        int rc = system(cmd);
        int ok = rc != -1 && WIFEXITED(rc) && WEXITSTATUS(rc) == 0;
        CHECKF(ok, "%s failed (status %d); its log follows", targets[t].name, rc);
        if (!ok) {
            snprintf(cmd, sizeof cmd, "tail -30 '%s' >&2; ls '%s' >&2", log, tmp);
            if (system(cmd) != 0)
                fprintf(stderr, "(no log)\n");
        } else {
            printf("%s: ran %d s without a finding\n", targets[t].name, secs);
        }
    }
    snprintf(self, sizeof self, "rm -rf '%s'", tmp);
    if (system(self) != 0)
        fprintf(stderr, "could not remove %s\n", tmp);
    return check_done();
}
