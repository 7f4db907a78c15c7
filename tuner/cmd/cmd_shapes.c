/* mctune shapes CONFIG.json: derives a model file (models/README.md) from a Hugging Face
 * config.json (Llama, Mistral, Qwen2 and their MoE variants). Loading model files is
 * tuner/model.c's. */
#include "tuner/cmd/cli.h"
#include "tuner/tune_model.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

static const char shapes_usage[] =
    "usage: mctune shapes CONFIG.json [--name NAME] [--seq 512,2048] [--M 1,16,128,512]\n"
    "                     [--weights f32,i8]\n"
    "\n"
    "Derives a model file (models/README.md) from a Hugging Face config.json of a Llama,\n"
    "Mistral, Qwen2 or MoE model (Mixtral, Qwen2-MoE, DeepSeek, Llama 4: a \"text_config\"\n"
    "object is used when present) and prints it on stdout. Layers: q/k/v/o projections,\n"
    "gate/up/down (dense, and per expert and shared expert for MoE), lm_head, and the attention\n"
    "bmm (scores Q K^T and values P V) at each --seq length (default 512,2048). The file's\n"
    "\"w\" lists the weight formats of the matmul layers (--weights, default f32; e.g.\n"
    "f32,bf16,i8,q4g32); bmm layers are f32.\n";

/* Reads integer field f of config c into *out when present (absent or null leaves *out as it
 * is). Anything else than a whole number in [lo, hi] is refused with a message naming the field
 * and its value. Returns 0, or -1 after printing. */
static int cfg_num(const cJSON *c, const char *file, const char *f, long lo, long hi, long *out)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(c, f);
    if (!x || cJSON_IsNull(x))
        return 0;
    char got[64];
    if (cJSON_IsNumber(x)) {
        double v = x->valuedouble;
        if (v >= (double)lo && v <= (double)hi && v == (double)(long)v) {
            *out = (long)v;
            return 0;
        }
        snprintf(got, sizeof got, "%.17g", v);
    } else if (cJSON_IsString(x)) {
        snprintf(got, sizeof got, "the string \"%.40s\"", x->valuestring);
    } else {
        snprintf(got, sizeof got, "%s", cJSON_IsBool(x) ? "a boolean" : cJSON_IsArray(x)
                 ? "a list" : "an object");
    }
    fprintf(stderr, "mctune shapes: %s: field \"%s\" is %s; it must be a whole number from %ld to "
            "%ld (fix the config, or remove the field if it is optional)\n", file, f, got, lo, hi);
    return -1;
}

static int parse_list(const char *s, long *v, int max)
{
    int n = 0;
    char *end;
    while (*s) {
        if (n == max)
            return -1;
        errno = 0;
        long x = strtol(s, &end, 10);
        if (errno || end == s || x < 1 || x > MCT_MAX_DIM)
            return -1;
        v[n++] = x;
        s = end;
        if (*s == ',')
            s++;
        else if (*s)
            return -1;
    }
    return n;
}

int mct_cmd_shapes(int argc, char **argv)
{
    const char *file = NULL, *name = NULL, *seq_s = "512,2048", *m_s = "1,16,128,512";
    const char *w_s = "f32";
    const struct { const char *opt, **val; } opts[] = {{"--name", &name}, {"--seq", &seq_s},
                                                       {"--M", &m_s}, {"--weights", &w_s}};
    for (int i = 1; i < argc; i++) {
        int r = 0;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(shapes_usage, stdout);
            return 0;
        }
        for (size_t o = 0; o < sizeof opts / sizeof opts[0] && !r; o++)
            r = mct_cli_opt("shapes", argc, argv, &i, opts[o].opt, opts[o].val);
        if (r < 0)
            return 2;
        if (r)
            continue;
        if (argv[i][0] == '-' && argv[i][1]) {
            return mct_cli_usage_error("shapes", "unknown option '%s'", argv[i]);
        } else if (file) {
            return mct_cli_usage_error("shapes", "unexpected argument '%s'", argv[i]);
        } else {
            file = argv[i];
        }
    }
    if (!file)
        return mct_cli_usage_error("shapes", "missing CONFIG.json");
    long seq[8], Ms[16];
    int nseq = parse_list(seq_s, seq, 8), nM = parse_list(m_s, Ms, 16);
    if (nseq < 0)
        return mct_cli_usage_error("shapes", "--seq '%s' is not a comma-separated list of "
                                   "at most 8 whole numbers from 1 to %ld", seq_s,
                                   (long)MCT_MAX_DIM);
    if (nM <= 0)
        return mct_cli_usage_error("shapes", "--M '%s' is not a comma-separated list of "
                                   "at most 16 whole numbers from 1 to %ld", m_s,
                                   (long)MCT_MAX_DIM);
    char err[512];
    mct_tune_wfmts wf;
    if (mct_tune_wfmts_parse(w_s, &wf, err, sizeof err) < 0)
        return mct_cli_usage_error("shapes", "--weights: %s", err);
    char *text;
    if (mct_tune_model_read(file, &text, err, sizeof err) < 0) {
        fprintf(stderr, "mctune shapes: %s\n", err);
        return 1;
    }
    int rc = 1;
    cJSON *root = cJSON_Parse(text), *out = NULL;
    if (!root) {
        fprintf(stderr, "mctune shapes: %s: not valid JSON\n", file);
        goto fail;
    }
    const cJSON *c = root, *tc = cJSON_GetObjectItemCaseSensitive(root, "text_config");
    if (cJSON_IsObject(tc))
        c = tc;
    const long D = (long)MCT_MAX_DIM;
    long H = 0, I = 0, nh = 0, nkv = 0, hd = 0, V = 0, I_mlp = 0, moeI = 0, nexp = 0, shI = 0;
    long nshared = 0, e1 = 0, e2 = 0, e3 = 0;
    if (cfg_num(c, file, "hidden_size", 1, D, &H) ||
        cfg_num(c, file, "intermediate_size", 1, D, &I) ||
        cfg_num(c, file, "num_attention_heads", 1, D, &nh) ||
        cfg_num(c, file, "num_key_value_heads", 1, D, &nkv) ||
        cfg_num(c, file, "head_dim", 1, D, &hd) ||
        cfg_num(c, file, "vocab_size", 1, D, &V) ||
        cfg_num(c, file, "intermediate_size_mlp", 1, D, &I_mlp) ||      /* Llama 4 dense */
        cfg_num(c, file, "moe_intermediate_size", 1, D, &moeI) ||       /* Qwen2-MoE, DeepSeek */
        cfg_num(c, file, "num_local_experts", 0, D, &e1) ||             /* Mixtral, Llama 4 */
        cfg_num(c, file, "n_routed_experts", 0, D, &e2) ||              /* DeepSeek */
        cfg_num(c, file, "num_experts", 0, D, &e3) ||                   /* Qwen2-MoE */
        cfg_num(c, file, "shared_expert_intermediate_size", 1, D, &shI) || /* Qwen2-MoE */
        cfg_num(c, file, "n_shared_experts", 0, D, &nshared))           /* DeepSeek */
        goto fail;
    nexp = e1 ? e1 : e2 ? e2 : e3;
    const char *missing = !H ? "hidden_size" : !nh ? "num_attention_heads" : !V ? "vocab_size"
                          : !I && !(nexp && moeI) ? "intermediate_size" : NULL;
    if (missing) {
        fprintf(stderr, "mctune shapes: %s: field \"%s\" is missing (is this a Llama, Mistral "
                "or Qwen2 config.json?)\n", file, missing);
        goto fail;
    }
    if (!nkv)
        nkv = nh;
    if (!hd) {
        if (H % nh) {
            fprintf(stderr, "mctune shapes: %s: hidden_size %ld is not a multiple of "
                    "num_attention_heads %ld and there is no head_dim; give head_dim or fix "
                    "the config\n", file, H, nh);
            goto fail;
        }
        hd = H / nh;
    }
    if (nh % nkv) {
        fprintf(stderr, "mctune shapes: %s: num_attention_heads %ld is not a multiple of "
                "num_key_value_heads %ld; fix the config\n", file, nh, nkv);
        goto fail;
    }
    if (nh * hd > D) {
        fprintf(stderr, "mctune shapes: %s: num_attention_heads %ld times head_dim %ld is over "
                "the largest dimension %ld; fix the config\n", file, nh, hd, D);
        goto fail;
    }
    if (nexp && !moeI)
        moeI = I;  /* Mixtral and Llama 4: intermediate_size is the expert's */
    if (nexp && !shI && nshared) {
        if (nshared > D / moeI) {
            fprintf(stderr, "mctune shapes: %s: n_shared_experts %ld times the expert's "
                    "intermediate size %ld is over the largest dimension %ld; fix the config\n",
                    file, nshared, moeI, D);
            goto fail;
        }
        shI = nshared * moeI;
    }
    if (nexp && !shI && tc)
        shI = I;   /* Llama 4 (text_config): one shared expert of the expert's size */
    long denseI = nexp ? (I_mlp ? I_mlp : (moeI != I ? I : 0)) : I;

    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    const cJSON *ar = cJSON_GetObjectItemCaseSensitive(root, "_name_or_path");
    char mname[64];
    snprintf(mname, sizeof mname, "%s", name ? name : cJSON_IsString(ar) ? ar->valuestring
             : cJSON_IsString(mt) ? mt->valuestring : "model");
    char src[1024];
    snprintf(src, sizeof src, "derived by mctune shapes from %s: hidden_size=%ld, "
             "intermediate_size=%ld, num_attention_heads=%ld, num_key_value_heads=%ld, "
             "head_dim=%ld, vocab_size=%ld%s", file, H, I, nh, nkv, hd, V, nexp ? ", MoE" : "");
    if (nexp) {
        size_t l = strlen(src);
        snprintf(src + l, sizeof src - l, ": experts=%ld, expert intermediate=%ld, shared "
                 "intermediate=%ld", nexp, moeI, shI);
    }
    out = cJSON_CreateObject();
    cJSON_AddStringToObject(out, "name", mname);
    cJSON_AddStringToObject(out, "source", src);
    cJSON *wl = cJSON_AddArrayToObject(out, "w");
    for (int q = 0; q < wf.n; q++) {
        char fb[24];
        cJSON_AddItemToArray(wl, cJSON_CreateString(mct_rt_wfmt_name(wf.fmt[q], wf.group[q], fb)));
    }
    cJSON *layers = cJSON_AddArrayToObject(out, "layers");
    cJSON *mlist = cJSON_CreateIntArray((const int[]){0}, 0);
    for (int q = 0; q < nM; q++)
        cJSON_AddItemToArray(mlist, cJSON_CreateNumber((double)Ms[q]));
#define LAYER(nm_, op_, lay_, N_, K_, B_, G_) do { \
        cJSON *l_ = cJSON_CreateObject(); \
        cJSON_AddStringToObject(l_, "name", nm_); \
        cJSON_AddStringToObject(l_, "op", op_); \
        cJSON_AddStringToObject(l_, "layout", lay_); \
        if ((B_) > 0) { cJSON_AddNumberToObject(l_, "B", (double)(B_)); \
                        cJSON_AddNumberToObject(l_, "G", (double)(G_)); } \
        cJSON_AddNumberToObject(l_, "N", (double)(N_)); \
        cJSON_AddNumberToObject(l_, "K", (double)(K_)); \
        cJSON_AddStringToObject(l_, "epi", "none"); \
        cJSON_AddItemToObject(l_, "M", cJSON_Duplicate(mlist, 1)); \
        cJSON_AddItemToArray(layers, l_); } while (0)
    LAYER("q_proj", "matmul", "nt", nh * hd, H, 0, 0);
    LAYER("k_proj", "matmul", "nt", nkv * hd, H, 0, 0);
    LAYER("v_proj", "matmul", "nt", nkv * hd, H, 0, 0);
    LAYER("o_proj", "matmul", "nt", H, nh * hd, 0, 0);
    if (denseI) {
        LAYER("gate_proj", "matmul", "nt", denseI, H, 0, 0);
        LAYER("up_proj", "matmul", "nt", denseI, H, 0, 0);
        LAYER("down_proj", "matmul", "nt", H, denseI, 0, 0);
    }
    if (nexp) {
        LAYER("expert_gate_proj", "matmul", "nt", moeI, H, 0, 0);
        LAYER("expert_up_proj", "matmul", "nt", moeI, H, 0, 0);
        LAYER("expert_down_proj", "matmul", "nt", H, moeI, 0, 0);
        if (shI) {
            LAYER("shared_gate_proj", "matmul", "nt", shI, H, 0, 0);
            LAYER("shared_up_proj", "matmul", "nt", shI, H, 0, 0);
            LAYER("shared_down_proj", "matmul", "nt", H, shI, 0, 0);
        }
    }
    LAYER("lm_head", "matmul", "nt", V, H, 0, 0);
    for (int s = 0; s < nseq; s++) {
        char n1[64], n2[64];
        snprintf(n1, sizeof n1, "attn_scores_s%ld", seq[s]);
        snprintf(n2, sizeof n2, "attn_values_s%ld", seq[s]);
        LAYER(n1, "bmm", "nt", seq[s], hd, nh, nh / nkv);
        LAYER(n2, "bmm", "nn", hd, seq[s], nh, nh / nkv);
    }
#undef LAYER
    cJSON_Delete(mlist);
    char *js = cJSON_Print(out);
    if (!js) {
        fprintf(stderr, "mctune shapes: out of memory\n");
        goto fail;
    }
    /* every derived layer must be a shape the tuner takes (the per-field bounds above do not
     * bound the products: a wide hidden_size makes a weight of N*K elements no machine holds);
     * say which and print nothing rather than a model file that does not load */
    mct_tune_model chk = {0};
    char why[768];
    int pr = mct_tune_model_parse("the derived model", js, &chk, why, sizeof why);
    mct_tune_model_free(&chk);
    if (pr) {
        fprintf(stderr, "mctune shapes: %s: %s; the config's sizes (hidden_size %ld, "
                "intermediate_size %ld, heads %ld x head_dim %ld, vocab_size %ld) make a layer "
                "no kernel can take: fix the config\n", file,
                pr == MCT_ENOMEM ? "out of memory" : why, H, I, nh, hd, V);
        free(js);
        goto fail;
    }
    printf("%s\n", js);
    free(js);
    rc = 0;
fail:
    cJSON_Delete(out);
    cJSON_Delete(root);
    free(text);
    return rc;
}
