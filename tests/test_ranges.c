/* Numbers read from users are range-checked and the error names the field: `mctune shapes` on
 * out-of-range config.json values (and the neighbours that must still work), model files,
 * @FILE arguments holding a NUL byte or naming a directory, SOURCE_DATE_EPOCH for `mctune gen`.
 * Runs $MCTUNE (default build/mctune) in a fresh temporary folder. The generated library's
 * overflow checks are in gen_consumer.c. */
#include "tests/check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[256];
static const char *bin;
static char out[1 << 16];

static void write_file(const char *name, const char *text, size_t len)
{
    char p[600];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    if (!f || fwrite(text, 1, len, f) != len)
        CHECKF(0, "cannot write %s", p);
    if (f)
        fclose(f);
}

/* Runs `mctune shapes` on Llama-3-8B's config fields with `extra` put first (a lookup finds the
 * first key of a name, so `extra` overrides). */
static int shapes(const char *extra, const char *args)
{
    char cfg[2048];
    snprintf(cfg, sizeof cfg, "{%s%s\"model_type\":\"llama\",\"hidden_size\":4096,"
             "\"intermediate_size\":14336,\"num_attention_heads\":32,\"num_key_value_heads\":8,"
             "\"vocab_size\":128256}", extra, *extra ? "," : "");
    write_file("config.json", cfg, strlen(cfg));
    return check_sh(out, sizeof out, "%s shapes %s/config.json --M 1 --seq 512 %s 2>&1", bin,
                    dir, args ? args : "");
}

/* A layer of the shapes output, as "NAME N K" (compact), to compare projections. */
static int has_layer(const char *name, long N, long K)
{
    char pat[128];
    snprintf(pat, sizeof pat, "\"name\":\t\"%s\"", name);
    const char *p = strstr(out, pat);
    if (!p)
        return 0;
    const char *e = strstr(p + 1, "\"name\":");
    char n[64], k[64];
    snprintf(n, sizeof n, "\"N\":\t%ld,", N);
    snprintf(k, sizeof k, "\"K\":\t%ld,", K);
    const char *pn = strstr(p, n), *pk = strstr(p, k);
    return pn && pk && (!e || (pn < e && pk < e));
}

static void expect_refused(const char *extra, const char *field, const char *value)
{
    int rc = shapes(extra, NULL);
    CHECKF(rc == 1 && strstr(out, field) && strstr(out, value) && !strstr(out, "q_proj"),
           "%s: rc %d, '%s'", extra, rc, out);
}

static void test_shapes(void)
{
    /* the valid Llama config: the same shapes as before the checks */
    int rc = shapes("", NULL);
    CHECKF(rc == 0 && has_layer("q_proj", 4096, 4096) && has_layer("k_proj", 1024, 4096) &&
           has_layer("gate_proj", 14336, 4096) && has_layer("down_proj", 4096, 14336) &&
           has_layer("lm_head", 128256, 4096) && has_layer("attn_scores_s512", 512, 128),
           "llama: rc %d: %.2000s", rc, out);

    /* (the config fragment, the field named, its value as the message shows it) */
    static const char *const refused[][3] = {
        {"\"hidden_size\":1e20", "\"hidden_size\"", "1e+20"},
        {"\"hidden_size\":4096.5", "\"hidden_size\"", "4096.5"},
        {"\"hidden_size\":\"4096\"", "\"hidden_size\"", "the string \"4096\""},
        {"\"intermediate_size\":-14336", "\"intermediate_size\"", "-14336"},
        {"\"head_dim\":0", "\"head_dim\"", "is 0;"},
        {"\"head_dim\":-128", "\"head_dim\"", "-128"},
        {"\"head_dim\":\"128\"", "\"head_dim\"", "the string"},
        {"\"num_key_value_heads\":0", "\"num_key_value_heads\"", "is 0;"},
        {"\"num_attention_heads\":true", "\"num_attention_heads\"", "a boolean"},
        {"\"vocab_size\":[1]", "\"vocab_size\"", "a list"},
        {"\"num_local_experts\":-8", "\"num_local_experts\"", "-8"},
        {"\"n_shared_experts\":-1", "\"n_shared_experts\"", "-1"},
        {"\"head_dim\":16777216", "head_dim 16777216", "largest dimension"},
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
        expect_refused(refused[i][0], refused[i][1], refused[i][2]);
    /* hidden_size not divisible by the heads and no head_dim: mismatched projections */
    rc = shapes("\"hidden_size\":4100", NULL);
    CHECKF(rc == 1 && strstr(out, "hidden_size 4100") && strstr(out, "num_attention_heads 32") &&
           strstr(out, "head_dim"), "4100/32: rc %d '%s'", rc, out);
    rc = shapes("\"num_key_value_heads\":5", NULL);
    CHECKF(rc == 1 && strstr(out, "num_key_value_heads 5"), "kv 5: rc %d '%s'", rc, out);
    /* each field in range, their product not: a hidden_size that makes an N*K weight too
     * large for any machine is refused, naming the layer and the sizes, and nothing printed */
    rc = shapes("\"hidden_size\":4096096,\"head_dim\":null", NULL);
    CHECKF(rc == 1 && strstr(out, "q_proj") && strstr(out, "hidden_size 4096096") &&
           strstr(out, "fix the config") && !strstr(out, "\"layers\""),
           "hidden 4096096: rc %d '%s'", rc, out);
    rc = shapes("\"hidden_size\":3000000,\"head_dim\":128,\"intermediate_size\":16000000", NULL);
    CHECKF(rc == 1 && strstr(out, "gate_proj") && !strstr(out, "q_proj") &&
           strstr(out, "intermediate_size 16000000"), "I 16e6: rc %d '%.600s'", rc, out);

    /* neighbours: absent or null optional fields default as documented */
    rc = shapes("\"num_key_value_heads\":null,\"head_dim\":null", NULL);
    CHECKF(rc == 0 && has_layer("k_proj", 4096, 4096) && has_layer("attn_scores_s512", 512, 128),
           "null optional: rc %d: %.1500s", rc, out);
    /* head_dim given: heads * head_dim may differ from hidden_size (projections follow it) */
    rc = shapes("\"head_dim\":256", NULL);
    CHECKF(rc == 0 && has_layer("q_proj", 8192, 4096) && has_layer("o_proj", 4096, 8192) &&
           has_layer("k_proj", 2048, 4096), "head_dim 256: rc %d: %.1500s", rc, out);
    /* hidden_size not divisible by the heads is fine with a head_dim */
    rc = shapes("\"hidden_size\":4100,\"head_dim\":128", NULL);
    CHECKF(rc == 0 && has_layer("q_proj", 4096, 4100), "4100 + head_dim: rc %d: %.1500s", rc,
           out);
    /* zero experts: a dense model, as when the field is absent */
    rc = shapes("\"num_local_experts\":0", NULL);
    CHECKF(rc == 0 && has_layer("gate_proj", 14336, 4096) && !strstr(out, "expert_"),
           "0 experts: rc %d: %.1500s", rc, out);
    /* a whole number written as a float is a whole number */
    rc = shapes("\"hidden_size\":4096.0", NULL);
    CHECKF(rc == 0 && has_layer("q_proj", 4096, 4096), "4096.0: rc %d", rc);

    /* option lists: too many entries are refused, not cut */
    rc = shapes("", "--seq 1,2,3,4,5,6,7,8,9");
    CHECKF(rc == 2 && strstr(out, "--seq") && strstr(out, "at most 8"), "seq: rc %d '%s'", rc,
           out);
    rc = shapes("", "--M 0");
    CHECKF(rc == 2 && strstr(out, "--M '0'"), "M 0: rc %d '%s'", rc, out);
}

static void test_model_file(void)
{
    const char *m = "{\"name\":\"t\",\"layers\":[{\"name\":\"q\",\"op\":\"matmul\","
                    "\"N\":-64,\"K\":64,\"M\":[1]}]}";
    write_file("model.json", m, strlen(m));
    int rc = check_sh(out, sizeof out, "%s tune --model %s/model.json --db %s/db --budget 1 "
                      "2>&1", bin, dir, dir);
    CHECKF(rc != 0 && strstr(out, "field \"N\" is -64") && strstr(out, "16777216"),
           "model N: rc %d '%s'", rc, out);
    m = "{\"name\":\"t\",\"layers\":[{\"name\":\"q\",\"op\":\"matmul\","
        "\"N\":64,\"K\":64,\"M\":[1, 2.5]}]}";
    write_file("model.json", m, strlen(m));
    rc = check_sh(out, sizeof out, "%s tune --model %s/model.json --db %s/db --budget 1 2>&1",
                  bin, dir, dir);
    CHECKF(rc != 0 && strstr(out, "field \"M\" item 1 is 2.5"), "model M: rc %d '%s'", rc, out);
    /* a NUL byte would cut the file where it stands: refused, for a model file, a list of keys
     * (gen --model) and a config (shapes) */
    static const char nulm[] = "{\"name\":\"x\",\"layers\":[{\"name\":\"a\",\"op\":\"matmul\","
                               "\"N\":64,\"K\":96,\"M\":[1]}]}\0{{{ garbage";
    write_file("nul.json", nulm, sizeof nulm - 1);
    rc = check_sh(out, sizeof out, "%s tune --model %s/nul.json --db %s/db --budget 1 2>&1",
                  bin, dir, dir);
    CHECKF(rc != 0 && strstr(out, "NUL byte at offset 72"), "model NUL: rc %d '%s'", rc, out);
    rc = check_sh(out, sizeof out, "%s shapes %s/nul.json 2>&1", bin, dir);
    CHECKF(rc != 0 && strstr(out, "NUL byte"), "shapes NUL: rc %d '%s'", rc, out);
    static const char nulk[] = "matmul f32 nt M=1 N=64 K=96 epi=none\n\0matmul garbage\n";
    write_file("nul.txt", nulk, sizeof nulk - 1);
    rc = check_sh(out, sizeof out, "%s tune --db %s/db --budget 1 --model %s/nul.txt 2>&1; "
                  "%s gen --db %s/db --out %s/gnul --name gn --model %s/nul.txt 2>&1", bin, dir,
                  dir, bin, dir, dir, dir);
    CHECKF(strstr(out, "NUL byte at offset 37") && !strstr(out, "wrote "), "keys NUL: '%s'", out);
}

static void test_text_arg(void)
{
    const char *wl = "'matmul f32 nn M=8 N=16 K=16 epi=none'";
    write_file("s.txt", "tile(i, 4)\n", 11);
    int rc = check_sh(out, sizeof out, "%s show %s --schedule @%s/s.txt --pseudo 2>&1", bin, wl,
                      dir);
    CHECKF(rc == 0 && strstr(out, "tile(i, 4)"), "@file: rc %d '%s'", rc, out);
    write_file("nul.txt", "tile(i, 4)\0; tile(j, 4)", 23);
    rc = check_sh(out, sizeof out, "%s show %s --schedule @%s/nul.txt 2>&1", bin, wl, dir);
    CHECKF(rc != 0 && strstr(out, "nul.txt") && strstr(out, "NUL byte at offset 10") &&
           !strstr(out, "loop nest"), "NUL: rc %d '%s'", rc, out);
    rc = check_sh(out, sizeof out, "%s show %s --schedule @%s 2>&1", bin, wl, dir);
    CHECKF(rc != 0 && strstr(out, "is a directory") && !strstr(out, "loop nest"),
           "@dir: rc %d '%s'", rc, out);
}

/* SOURCE_DATE_EPOCH, the one number `mctune gen` reads from the environment */
static void test_gen_epoch(void)
{
    int rc = check_sh(out, sizeof out, "%s tune --db %s/gdb --workload 'matmul f32 nn M=8 N=16 "
                      "K=16 epi=none' --budget 2 --min-time 0.01 2>&1", bin, dir);
    CHECKF(rc == 0, "tune for gen: rc %d '%s'", rc, out);
    rc = check_sh(out, sizeof out, "SOURCE_DATE_EPOCH=12x %s gen --db %s/gdb --out %s/g1 "
                  "--name tk 2>&1", bin, dir, dir);
    CHECKF(rc != 0 && strstr(out, "SOURCE_DATE_EPOCH '12x'"), "epoch 12x: rc %d '%s'", rc, out);
    rc = check_sh(out, sizeof out, "SOURCE_DATE_EPOCH=-5 %s gen --db %s/gdb --out %s/g2 "
                  "--name tk 2>&1", bin, dir, dir);
    CHECKF(rc != 0 && strstr(out, "SOURCE_DATE_EPOCH '-5'"), "epoch -5: rc %d '%s'", rc, out);
    rc = check_sh(out, sizeof out, "SOURCE_DATE_EPOCH=100 %s gen --db %s/gdb --out %s/g3 "
                  "--name tk >/dev/null 2>&1 && head -c 400 %s/g3/tk.h", bin, dir, dir, dir);
    CHECKF(rc == 0 && strstr(out, "date 1970-01-01 00:01 UTC"), "epoch 100: rc %d '%s'", rc,
           out);
}

int main(void)
{
    bin = getenv("MCTUNE") && *getenv("MCTUNE") ? getenv("MCTUNE") : "build/mctune";
    if (check_tmpdir(dir, sizeof dir, "ranges")) {
        CHECK(0);
        return check_done();
    }
    test_shapes();
    test_model_file();
    test_text_arg();
    test_gen_epoch();
    check_rmtree(dir);
    return check_done();
}
