/* Workloads: canonical text keys, parsing with field-level errors, hashing. */
#include "codegen/codegen.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

const char *mct_act_name(mct_act a)
{
    switch (a) {
    case MCT_ACT_RELU: return "relu";
    case MCT_ACT_GELU: return "gelu";
    case MCT_ACT_SILU: return "silu";
    case MCT_ACT_NONE: break;
    }
    return "none";
}

int mct_wl_check(const mct_workload *w, char *err, size_t errlen)
{
    const char *names[] = {"M", "N", "K", "B"};
    int64_t vals[] = {w->M, w->N, w->K, w->batch};
    for (int i = 0; i < 4; i++) {
        if (vals[i] < 1)
            return mct_errf(err, errlen, MCT_ERANGE, "%s=%lld: sizes must be at least 1", names[i],
                        (long long)vals[i]);
        if (vals[i] > MCT_MAX_DIM)
            return mct_errf(err, errlen, MCT_ERANGE, "%s=%lld: larger than the limit %lld", names[i],
                        (long long)vals[i], (long long)MCT_MAX_DIM);
    }
    if (w->op != MCT_OP_MATMUL && w->op != MCT_OP_BMM)
        return mct_errf(err, errlen, MCT_EINVAL, "op %d: unknown (use matmul or bmm)", (int)w->op);
    if (w->layout != MCT_NN && w->layout != MCT_NT)
        return mct_errf(err, errlen, MCT_EINVAL, "layout %d: unknown (use nn or nt)", (int)w->layout);
    if (w->op == MCT_OP_MATMUL && (w->batch != 1 || w->group != 1))
        return mct_errf(err, errlen, MCT_EINVAL, "B=%lld G=%lld: matmul has no batch (use bmm)",
                    (long long)w->batch, (long long)w->group);
    if (w->group < 1 || w->group > w->batch || w->batch % w->group)
        return mct_errf(err, errlen, MCT_ERANGE,
                    "G=%lld: the group (query heads per kv head) must divide B=%lld",
                    (long long)w->group, (long long)w->batch);
    if ((unsigned)w->act > MCT_ACT_SILU)
        return mct_errf(err, errlen, MCT_EINVAL, "epi: unknown activation %d", (int)w->act);
    if (w->bias != 0 && w->bias != 1)
        return mct_errf(err, errlen, MCT_EINVAL, "bias=%d: must be 0 (no bias) or 1 (a bias "
                        "vector of N floats added to every row)", w->bias);
    if (w->beta != 0 && w->beta != 1)
        return mct_errf(err, errlen, MCT_EINVAL, "beta=%d: must be 0 (C = out) or 1 (C += out)",
                    w->beta);
    if (w->braw != 0 && w->braw != 1)
        return mct_errf(err, errlen, MCT_EINVAL, "b=%d: must be 0 (B may be prepacked) or 1 "
                    "(b=raw: B taken as given)", w->braw);
    if (w->braw && w->op == MCT_OP_BMM)
        return mct_errf(err, errlen, MCT_EINVAL, "b=raw: bmm takes B as given already (its "
                    "operands are activations, never prepacked); leave b= out for bmm");
    if (w->wfmt != MCT_RT_WF_F32) {
        char fb[24];
        if (w->wfmt != MCT_RT_WF_BF16 && w->wfmt != MCT_RT_WF_I8 && w->wfmt != MCT_RT_WF_Q4)
            return mct_errf(err, errlen, MCT_EINVAL, "w=%d: unknown weight format (use bf16, i8 "
                        "or q4gG)", w->wfmt);
        if (w->op != MCT_OP_MATMUL)
            return mct_errf(err, errlen, MCT_EINVAL, "w=%s: bmm operands are activations and stay "
                        "f32; leave w= out for bmm", mct_rt_wfmt_name(w->wfmt, w->wgroup, fb));
        if (w->braw)
            return mct_errf(err, errlen, MCT_EINVAL, "w=%s with b=raw: the kernel behind the "
                        "cblas entry points takes f32 B as given; quantized weights always go "
                        "through prepack (drop b=raw or w=)",
                        mct_rt_wfmt_name(w->wfmt, w->wgroup, fb));
        int r = mct_rt_q_check(w->wfmt, w->wgroup, (long)w->N, (long)w->K, err, errlen);
        if (r)
            return r;
    } else if (w->wgroup != 0)
        return mct_errf(err, errlen, MCT_EINVAL, "w: a group size (%d) without q4 weights",
                    w->wgroup);
    /* products: flops and every operand's element count must stay representable */
    double f = (double)w->M * (double)w->N * (double)w->K * (double)w->batch;
    if (f > (double)MCT_MAX_FLOPS)
        return mct_errf(err, errlen, MCT_ERANGE,
                    "M*N*K*B = %.3g: product too large (limit %lld); the shape is impossible",
                    f, (long long)MCT_MAX_FLOPS);
    double ea = (double)w->M * w->K * w->batch, eb = (double)w->N * w->K * w->batch,
           ec = (double)w->M * w->N * w->batch;
    if (ea > 4e12 || eb > 4e12 || ec > 4e12)
        return mct_errf(err, errlen, MCT_ERANGE, "operand size overflows (M*K, N*K or M*N too large)");
    return 0;
}

static int parse_int(const char *field, const char *s, int64_t *out, char *err, size_t errlen)
{
    char *end;
    errno = 0;
    if (!*s)
        return mct_errf(err, errlen, MCT_EINVAL, "%s: missing value", field);
    long long v = strtoll(s, &end, 10);
    if (*end)
        return mct_errf(err, errlen, MCT_EINVAL, "%s=%s: not a whole number", field, s);
    if (errno == ERANGE || v > MCT_MAX_DIM)
        return mct_errf(err, errlen, MCT_ERANGE, "%s=%s: larger than the limit %lld", field, s,
                    (long long)MCT_MAX_DIM);
    if (v < 1)
        return mct_errf(err, errlen, MCT_ERANGE, "%s=%s: sizes must be at least 1", field, s);
    *out = v;
    return 0;
}

static int parse_epi(const char *s, mct_workload *w, char *err, size_t errlen)
{
    char buf[64];
    if (strlen(s) >= sizeof buf)
        return mct_errf(err, errlen, MCT_EINVAL, "epi=%.40s...: too long", s);
    strcpy(buf, s);
    w->bias = 0;
    w->act = MCT_ACT_NONE;
    if (!strcmp(buf, "none"))
        return 0;
    int nact = 0;
    for (char *save = NULL, *t = strtok_r(buf, "+", &save); t; t = strtok_r(NULL, "+", &save)) {
        if (!strcmp(t, "bias") && !w->bias && !nact)
            w->bias = 1;
        else if (!strcmp(t, "relu") && !nact)
            w->act = MCT_ACT_RELU, nact++;
        else if (!strcmp(t, "gelu") && !nact)
            w->act = MCT_ACT_GELU, nact++;
        else if (!strcmp(t, "silu") && !nact)
            w->act = MCT_ACT_SILU, nact++;
        else
            return mct_errf(err, errlen, MCT_EINVAL,
                        "epi=%s: unknown or misplaced epilogue '%s' (use none, bias, relu, gelu, "
                        "silu, or bias+ACT)", s, t);
    }
    if (!w->bias && !nact)
        return mct_errf(err, errlen, MCT_EINVAL, "epi=%s: empty epilogue", s);
    return 0;
}

int mct_wl_parse(const char *text, mct_workload *out, char *err, size_t errlen)
{
    mct_workload w = {.batch = 1, .group = 1};
    char buf[512];
    if (!text)
        return mct_errf(err, errlen, MCT_EINVAL, "empty workload");
    if (strlen(text) >= sizeof buf)
        return mct_errf(err, errlen, MCT_EINVAL, "workload text longer than %zu bytes",
                    sizeof buf - 1);
    strcpy(buf, text);
    char *save = NULL, *tok[16];
    int n = 0;
    for (char *t = strtok_r(buf, " \t\r\n", &save); t; t = strtok_r(NULL, " \t\r\n", &save)) {
        if (n == 16)
            return mct_errf(err, errlen, MCT_EINVAL, "workload has too many fields");
        tok[n++] = t;
    }
    if (n < 3)
        return mct_errf(err, errlen, MCT_EINVAL,
                    "'%s': expected 'OP f32 LAYOUT M=.. N=.. K=.. [epi=..]', e.g. "
                    "'matmul f32 nt M=128 N=4096 K=4096 epi=none'", text);
    if (!strcmp(tok[0], "matmul"))
        w.op = MCT_OP_MATMUL;
    else if (!strcmp(tok[0], "bmm"))
        w.op = MCT_OP_BMM;
    else
        return mct_errf(err, errlen, MCT_EINVAL, "op '%s': unknown (use matmul or bmm)", tok[0]);
    if (strcmp(tok[1], "f32"))
        return mct_errf(err, errlen, MCT_EINVAL, "dtype '%s': unsupported (use f32)", tok[1]);
    if (!strcmp(tok[2], "nn"))
        w.layout = MCT_NN;
    else if (!strcmp(tok[2], "nt"))
        w.layout = MCT_NT;
    else
        return mct_errf(err, errlen, MCT_EINVAL,
                    "layout '%s': unknown (use nn for B[K,N] or nt for B[N,K])", tok[2]);
    int seen_m = 0, seen_n = 0, seen_k = 0, seen_b = 0, seen_g = 0, seen_e = 0, seen_beta = 0,
        seen_braw = 0, seen_w = 0;
    for (int i = 3; i < n; i++) {
        char *eq = strchr(tok[i], '=');
        if (!eq)
            return mct_errf(err, errlen, MCT_EINVAL, "field '%s': expected NAME=VALUE", tok[i]);
        *eq = 0;
        const char *k = tok[i], *v = eq + 1;
        int r = 0, dup = 0;
        if (!strcmp(k, "M"))
            dup = seen_m++, r = parse_int("M", v, &w.M, err, errlen);
        else if (!strcmp(k, "N"))
            dup = seen_n++, r = parse_int("N", v, &w.N, err, errlen);
        else if (!strcmp(k, "K"))
            dup = seen_k++, r = parse_int("K", v, &w.K, err, errlen);
        else if (!strcmp(k, "B") && w.op == MCT_OP_BMM)
            dup = seen_b++, r = parse_int("B", v, &w.batch, err, errlen);
        else if (!strcmp(k, "G") && w.op == MCT_OP_BMM)
            dup = seen_g++, r = parse_int("G", v, &w.group, err, errlen);
        else if (!strcmp(k, "epi"))
            dup = seen_e++, r = parse_epi(v, &w, err, errlen);
        else if (!strcmp(k, "beta")) {
            dup = seen_beta++;
            if (!strcmp(v, "0") || !strcmp(v, "1"))
                w.beta = v[0] - '0';
            else
                r = mct_errf(err, errlen, MCT_EINVAL, "beta=%s: must be 0 (C = out) or 1 (C += out)",
                         v);
        } else if (!strcmp(k, "b")) {
            dup = seen_braw++;
            if (!strcmp(v, "raw"))
                w.braw = 1;
            else
                r = mct_errf(err, errlen, MCT_EINVAL, "b=%s: unknown (b=raw: B taken as given, "
                             "never prepacked; leave b= out for the default, where B may be "
                             "prepacked)", v);
        } else if (!strcmp(k, "w")) {
            dup = seen_w++;
            r = mct_rt_wfmt_parse(v, &w.wfmt, &w.wgroup, err, errlen);
        } else
            return mct_errf(err, errlen, MCT_EINVAL, "field '%s': unknown for %s (fields: M N K%s "
                        "epi beta b w)", k, tok[0], w.op == MCT_OP_BMM ? " B G" : "");
        if (r)
            return r;
        if (dup)
            return mct_errf(err, errlen, MCT_EINVAL, "field '%s' given twice", k);
    }
    if (!seen_m || !seen_n || !seen_k)
        return mct_errf(err, errlen, MCT_EINVAL, "missing size %s (need M=, N= and K=)",
                    !seen_m ? "M" : !seen_n ? "N" : "K");
    if (w.op == MCT_OP_BMM && !seen_b)
        return mct_errf(err, errlen, MCT_EINVAL, "bmm needs B= (number of heads)");
    int r = mct_wl_check(&w, err, errlen);
    if (r)
        return r;
    *out = w;
    return 0;
}

int mct_wl_format(const mct_workload *w, char *buf, size_t len)
{
    char epi[32];
    if (!w->bias && w->act == MCT_ACT_NONE)
        strcpy(epi, "none");
    else if (w->bias && w->act != MCT_ACT_NONE)
        snprintf(epi, sizeof epi, "bias+%s", mct_act_name(w->act));
    else
        strcpy(epi, w->bias ? "bias" : mct_act_name(w->act));
    char bg[64] = "";
    if (w->op == MCT_OP_BMM)
        snprintf(bg, sizeof bg, " B=%lld G=%lld", (long long)w->batch, (long long)w->group);
    char wf[32] = "", fb[24];
    if (w->wfmt != MCT_RT_WF_F32)
        snprintf(wf, sizeof wf, " w=%s", mct_rt_wfmt_name(w->wfmt, w->wgroup, fb));
    int n = snprintf(buf, len, "%s f32 %s%s M=%lld N=%lld K=%lld epi=%s%s%s%s",
                     w->op == MCT_OP_BMM ? "bmm" : "matmul", w->layout == MCT_NT ? "nt" : "nn",
                     bg, (long long)w->M, (long long)w->N, (long long)w->K, epi,
                     w->beta ? " beta=1" : "", wf, w->braw ? " b=raw" : "");
    if (n < 0 || (size_t)n >= len)
        return MCT_ERANGE;
    return n;
}

void mct_hash_text(const char *s, size_t n, uint8_t out[16])
{
    XXH128_canonical_t c;
    XXH128_canonicalFromHash(&c, XXH3_128bits(s, n));
    memcpy(out, c.digest, 16);
}

void mct_wl_hash(const mct_workload *w, uint8_t out[16])
{
    char buf[256];
    int n = mct_wl_format(w, buf, sizeof buf);
    mct_hash_text(buf, n > 0 ? (size_t)n : 0, out);
}

double mct_wl_flops(const mct_workload *w)
{
    return 2.0 * (double)w->M * (double)w->N * (double)w->K * (double)w->batch;
}

int mct_wl_same_family(const mct_workload *a, const mct_workload *b)
{
    return a->op == b->op && a->layout == b->layout && a->N == b->N && a->K == b->K &&
           a->batch == b->batch && a->group == b->group && a->bias == b->bias &&
           a->act == b->act && a->beta == b->beta && a->braw == b->braw &&
           a->wfmt == b->wfmt && a->wgroup == b->wgroup;
}

void mct_wl_family_hash(const mct_workload *w, uint8_t out[16])
{
    mct_workload f = *w;
    f.M = 1;
    mct_wl_hash(&f, out);
}
