/* Runs each libFuzzer target built by `make fuzz` (build/fuzz/fuzz_*) for a few seconds from a
 * small seed corpus and checks that it exits cleanly: a crash, a sanitizer report or a broken
 * round-trip property makes the fuzzer exit nonzero, which fails this test. The seeds are
 * written here; fuzz_model also gets the model files of models/ (found from the current folder
 * or from this binary's build/tests/..). Without clang and libFuzzer the targets are not
 * built and this test says so and checks nothing. */
#include "tests/check.h"

#include <glob.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* JSON Lines pieces of the fuzz_import seeds */
#define WL1 "\"workload\":\"matmul f32 nt M=1 N=64 K=96 epi=none\""
#define WL2 "\"workload\":\"bmm f32 nt B=8 G=4 M=3 N=40 K=16 epi=none\""
#define SCH1 "\"schedule\":\"tile(j, 8); tile(k, 16); reorder(i, j0, k0, j1, k1); " \
    "cache_write(j0); unroll(j1, 8); vectorize(k1)\""
#define SCH2 "\"schedule\":\"tile(k, 8); cache_write(j); vectorize(k1)\""
#define PROV ",\"spread_ns\":335,\"gflops\":4.8,\"samples\":2,\"search\":\"mcts\"," \
    "\"guide\":\"heuristic\",\"compiler\":\"cc 12.2.0\",\"flags\":\"-O2 -fopenmp -fPIC " \
    "-shared -pipe\",\"tool\":\"mctune 0.1.0\",\"timestamp\":1700000000,\"model\":\"m\"}\n"
#define CPUL "{\"type\":\"cpu\",\"vendor\":\"GenuineIntel\",\"family\":6,\"model\":143," \
    "\"cpuid\":{\"1.ecx\":\"0x1\",\"1.edx\":\"0x0\",\"7.ebx\":\"0x0\",\"7.ecx\":\"0x0\"," \
    "\"7.edx\":\"0x0\",\"7.1.eax\":\"0x0\",\"7.1.edx\":\"0x0\",\"80000001.ecx\":\"0x0\"," \
    "\"80000001.edx\":\"0x0\",\"d.eax\":\"0x0\",\"d.1.eax\":\"0x0\"},\"xcr0\":\"0xe7\"}\n"
#define REC(type, wl, cpu, sched, ns) "{\"type\":\"" type "\"," wl ",\"cpu\":\"" cpu "\"," \
    "\"threads\":1," sched ",\"median_ns\":" ns PROV
#define BEGIN "{\"type\":\"begin\",\"format\":1}\n"

/* Hugging Face config.json files (the fields `mctune shapes` reads) */
#define CFG_LLAMA "{\"architectures\":[\"LlamaForCausalLM\"],\"model_type\":\"llama\"," \
    "\"hidden_size\":4096,\"intermediate_size\":14336,\"num_attention_heads\":32," \
    "\"num_key_value_heads\":8,\"vocab_size\":128256,\"rms_norm_eps\":1e-05," \
    "\"max_position_embeddings\":8192,\"torch_dtype\":\"bfloat16\"}"

static const struct {
    const char *name;
    const char *seeds[10];
    const char *seed_files;     /* a glob below the source tree, or NULL */
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
        NULL}, NULL},
    {"fuzz_workload", {
        "matmul f32 nt M=128 N=4096 K=4096 epi=none",
        "matmul f32 nn M=16 N=14336 K=4096 epi=bias+silu beta=1",
        "bmm f32 nt B=32 G=4 M=128 N=512 K=128 epi=none",
        "matmul f32 nt K=7 N=5 M=3 epi=relu",
        "matmul f32 nt M=16 N=4096 K=4096 epi=none b=raw",
        "matmul f32 nn b=raw M=1 N=7 K=3 epi=bias+gelu beta=1",
        "bmm f32 nt B=2 G=1 M=4 N=8 K=8 epi=none b=raw",
        NULL}, NULL},
    {"fuzz_sched", {
        "tile(i, 8); tile(j, 16); reorder(i0, j0, k, i1, j1); vectorize(j1)",
        "tile(i, 4, 2); unroll(k, 4); parallel(i0)",
        "pack(B, j0, nt); cache_write(k); fuse_epilogue(j0); prefetch(A, k, 4)",
        "prepack(B)",
        NULL}, NULL},
    {"fuzz_import", {
        /* an export: cpu, workload, a best with its trial, another trial */
        BEGIN CPUL "{\"type\":\"workload\"," WL1 "}\n"
        REC("best", WL1, "00000000000000ab", SCH1, "2557")
        REC("trial", WL1, "00000000000000ab", SCH1, "2557")
        REC("trial", WL1, "00000000000000ab", "\"schedule\":\"\"", "8091")
        "{\"type\":\"end\",\"records\":5}\n",
        /* no frame: a bmm best, its trial after it, a cached LLM reply, blank and CRLF lines */
        REC("best", WL2, "00000000000000cd", SCH2, "900")
        "\r\n  \n"
        REC("trial", WL2, "00000000000000cd", SCH2, "900")
        "{\"type\":\"llm\",\"model\":\"m\",\"params\":\"{}\",\"prompt\":\"p\",\"reply\":\"r\"}\n",
        /* two exports one after the other, a best after its trial */
        BEGIN REC("trial", WL1, "00000000000000ab", SCH1, "3000")
        REC("best", WL1, "00000000000000ab", SCH1, "3000") "{\"type\":\"end\",\"records\":2}\n"
        BEGIN REC("trial", WL1, "00000000000000ab", "\"schedule\":\"\"", "8091")
        "{\"type\":\"end\",\"records\":1}\n",
        /* refused: an export cut short; a best without a trial; a bad schedule */
        BEGIN CPUL "{\"type\":\"workload\"," WL1 "}\n",
        REC("best", WL1, "00000000000000ab", SCH1, "2557"),
        REC("trial", WL1, "00000000000000ab", "\"schedule\":\"tile(q, 3)\"", "10"),
        NULL}, NULL},
    {"fuzz_model", {
        CFG_LLAMA,
        "{\"model_type\":\"mixtral\",\"hidden_size\":4096,\"intermediate_size\":14336,"
        "\"num_attention_heads\":32,\"num_key_value_heads\":8,\"vocab_size\":32000,"
        "\"num_local_experts\":8,\"num_experts_per_tok\":2}",
        "{\"model_type\":\"qwen2_moe\",\"hidden_size\":2048,\"intermediate_size\":5632,"
        "\"moe_intermediate_size\":1408,\"shared_expert_intermediate_size\":5632,"
        "\"num_experts\":60,\"num_attention_heads\":16,\"num_key_value_heads\":16,"
        "\"vocab_size\":151936}",
        "{\"model_type\":\"deepseek_v3\",\"hidden_size\":7168,\"intermediate_size\":18432,"
        "\"moe_intermediate_size\":2048,\"n_routed_experts\":256,\"n_shared_experts\":1,"
        "\"num_attention_heads\":128,\"num_key_value_heads\":128,\"vocab_size\":129280}",
        "{\"model_type\":\"llama4\",\"text_config\":{\"hidden_size\":5120,"
        "\"intermediate_size\":8192,\"intermediate_size_mlp\":16384,\"num_local_experts\":16,"
        "\"num_attention_heads\":40,\"num_key_value_heads\":8,\"head_dim\":128,"
        "\"vocab_size\":202048}}",
        "{\"name\":\"tiny\",\"layers\":[{\"name\":\"up\",\"op\":\"matmul\",\"layout\":\"nn\","
        "\"N\":64,\"K\":96,\"epi\":\"bias+silu\",\"beta\":1,\"M\":[1,3]},{\"name\":\"att\","
        "\"op\":\"bmm\",\"B\":8,\"G\":2,\"N\":40,\"K\":16}]}",
        /* a list of workload keys, as `mctune gen --model` also takes */
        "# keys\nmatmul f32 nt M=16 N=4096 K=4096 epi=none\n\n"
        "bmm f32 nn B=32 G=4 M=1 N=128 K=512 epi=none  # attention values\r\n",
        NULL}, "models/*.json"},
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

/* Copies the files matching pattern below the first root that has any into dir; returns how
 * many were copied, -1 when one could not be written. */
static int copy_seed_files(const char *dir, const char *pattern, const char *const *roots)
{
    int n = 0;
    for (int r = 0; roots[r] && !n; r++) {
        char pat[800];
        glob_t g;
        snprintf(pat, sizeof pat, "%s/%s", roots[r], pattern);
        if (glob(pat, 0, NULL, &g) != 0)
            continue;
        for (size_t i = 0; i < g.gl_pathc; i++) {
            size_t len;
            char *text = check_slurp(g.gl_pathv[i], &len), path[900];
            snprintf(path, sizeof path, "%s/file%zu", dir, i);
            FILE *f = text ? fopen(path, "wb") : NULL;
            int ok = f && fwrite(text, 1, len, f) == len;
            if (f && fclose(f) != 0)
                ok = 0;
            free(text);
            if (!ok) {
                globfree(&g);
                return -1;
            }
            n++;
        }
        globfree(&g);
    }
    return n;
}

int main(int argc, char **argv)
{
    char self[512], fuzzdir[600], tmp[] = "/tmp/mctune-test-fuzz-XXXXXX";
    const char *env = getenv("MCTUNE_FUZZ_DIR");
    int secs = getenv("MCTUNE_SANITIZED") ? 2 : 5;
    (void)argc;
    /* build/tests/test_fuzz -> build/fuzz */
    snprintf(self, sizeof self, "%s", argv[0]);
    char *d = dirname(self), srcroot[600];
    snprintf(fuzzdir, sizeof fuzzdir, "%s/../fuzz", d);
    snprintf(srcroot, sizeof srcroot, "%s/../..", d);
    const char *roots[] = {".", srcroot, NULL};
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
        if (targets[t].seed_files) {
            int n = copy_seed_files(corpus, targets[t].seed_files, roots);
            CHECKF(n >= 0, "cannot copy the seeds %s into %s", targets[t].seed_files, corpus);
            if (n == 0)
                printf("note: %s: no %s found (run from the source tree); inline seeds only\n",
                       targets[t].name, targets[t].seed_files);
        }
        snprintf(log, sizeof log, "%s/%s.log", tmp, targets[t].name);
        /* TMPDIR: the scratch files of a target that stops at a finding go with tmp */
        snprintf(cmd, sizeof cmd, "TMPDIR='%s' '%s' -max_total_time=%d -rss_limit_mb=1024 "
                 "-timeout=10 -artifact_prefix='%s/' '%s' >'%s' 2>&1", tmp, bin, secs, tmp,
                 corpus, log);
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
