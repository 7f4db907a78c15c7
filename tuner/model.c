/* Model files: loading a model's layers (models/README.md) or a list of workload keys into
 * workloads, and reading the files that describe models (tuner/tune_model.h). */
#include "tuner/tune_model.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "codegen/text.h"

int mct_tune_model_read(const char *file, char **text, char *err, size_t errlen)
{
    size_t len = 0;
    int rc = mct_slurp(file, 0, text, &len, NULL, 0);
    const char *nul = rc == MCT_OK ? memchr(*text, 0, len) : NULL;
    if (nul) {
        /* parsed as a C string, the rest would be silently ignored */
        snprintf(err, errlen, "%s holds a NUL byte at offset %ld; a model file or config.json is "
                 "plain text (remove the byte)", file, (long)(nul - *text));
        free(*text);
        *text = NULL;
        return MCT_EINVAL;
    }
    if (rc == MCT_EINVAL)
        snprintf(err, errlen, "%s is a directory; give a model file (models/*.json) or a Hugging "
                 "Face config.json", file);
    else if (rc == MCT_ENOMEM)
        snprintf(err, errlen, "%s: out of memory", file);
    else if (rc < 0)
        snprintf(err, errlen, "%s: cannot read: %s", file, strerror(errno));
    return rc;
}

int mct_tune_model_add(mct_tune_model *m, const mct_workload *w, const char *name)
{
    if (!m->name[0] && name)
        snprintf(m->name, sizeof m->name, "%s", name);
    for (int i = 0; i < m->n; i++)
        if (!memcmp(&m->w[i], w, sizeof *w))
            return 0;
    if (m->n == m->cap) {
        int nc = m->cap ? m->cap * 2 : 16;
        mct_workload *p = realloc(m->w, (size_t)nc * sizeof *p);
        if (!p)
            return MCT_ENOMEM;
        m->w = p;
        m->cap = nc;
    }
    m->w[m->n++] = *w;
    return 0;
}

int mct_tune_bvar_parse(const char *s, mct_tune_bvar *out)
{
    if (!s)
        return MCT_EINVAL;
    if (!strcmp(s, "packed"))
        *out = MCT_TUNE_B_PACKED;
    else if (!strcmp(s, "raw"))
        *out = MCT_TUNE_B_RAW;
    else if (!strcmp(s, "both"))
        *out = MCT_TUNE_B_BOTH;
    else
        return MCT_EINVAL;
    return 0;
}

/* Appends w's variants vb (matmul; bmm has one) to m: the packed one first. */
static int add_variants(mct_tune_model *m, const mct_workload *w, mct_tune_bvar vb)
{
    mct_workload v = *w;
    if (w->op != MCT_OP_MATMUL || vb == MCT_TUNE_B_ASIS)
        return mct_tune_model_add(m, w, NULL);
    if (MCT_WL_QUANT(w))  /* low-precision weights have the packed variant only */
        vb = MCT_TUNE_B_PACKED;
    int rc = 0;
    if (vb & MCT_TUNE_B_PACKED) {
        v.braw = 0;
        rc = mct_tune_model_add(m, &v, NULL);
    }
    if (!rc && (vb & MCT_TUNE_B_RAW)) {
        v.braw = 1;
        rc = mct_tune_model_add(m, &v, NULL);
    }
    return rc;
}

int mct_tune_model_variants(mct_tune_model *m, mct_tune_bvar vb)
{
    if (vb == MCT_TUNE_B_ASIS)
        return 0;
    mct_tune_model t = {0};
    memcpy(t.name, m->name, sizeof t.name);
    for (int i = 0; i < m->n; i++)
        if (add_variants(&t, &m->w[i], vb)) {
            mct_tune_model_free(&t);
            return MCT_ENOMEM;
        }
    mct_tune_model_free(m);
    *m = t;
    return 0;
}

int mct_tune_wfmts_parse(const char *s, mct_tune_wfmts *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!s)
        return mct_errf(err, errlen, MCT_EINVAL, "weight formats: missing");
    for (const char *p = s;;) {
        size_t n = strcspn(p, ",");
        char item[32];
        int f, g;
        if (n == 0 || n >= sizeof item)
            return mct_errf(err, errlen, MCT_EINVAL, "weight formats '%s': item '%.*s' is %s; "
                            "give a comma-separated list such as f32,bf16,i8,q4g32", s, (int)n, p,
                            n ? "too long" : "empty");
        memcpy(item, p, n);
        item[n] = 0;
        char why[256];
        if (mct_rt_wfmt_parse(item, &f, &g, why, sizeof why) < 0)
            return mct_errf(err, errlen, MCT_EINVAL, "weight formats '%s': %s", s, why);
        int dup = 0;
        for (int i = 0; i < out->n; i++)
            dup |= out->fmt[i] == f && out->group[i] == g;
        if (!dup) {
            if (out->n == MCT_TUNE_MAX_WFMTS)
                return mct_errf(err, errlen, MCT_EINVAL, "weight formats '%s': more than %d "
                                "formats", s, MCT_TUNE_MAX_WFMTS);
            out->fmt[out->n] = f;
            out->group[out->n++] = g;
        }
        p += n;
        if (!*p)
            break;
        p++;
    }
    return 0;
}

/* w in format (f, g): 0, or mct_wl_check's code with err naming the workload. */
static int with_format(const mct_workload *w, int f, int g, mct_workload *out, char *err,
                       size_t errlen)
{
    *out = *w;
    out->wfmt = f;
    out->wgroup = g;
    if (f != MCT_RT_WF_F32)
        out->braw = 0;
    char why[256], key[256], fb[24];
    int rc = mct_wl_check(out, why, sizeof why);
    if (rc < 0) {
        mct_wl_format(w, key, sizeof key);
        return mct_errf(err, errlen, rc, "'%s' in weight format %s: %s", key,
                        mct_rt_wfmt_name(f, g, fb), why);
    }
    return 0;
}

int mct_tune_model_weights(mct_tune_model *m, const mct_tune_wfmts *f, char *err,
                           size_t errlen)
{
    if (!f || f->n < 1)
        return mct_errf(err, errlen, MCT_EINVAL, "weight formats: none given");
    mct_tune_model t = {0};
    int rc = 0;
    memcpy(t.name, m->name, sizeof t.name);
    for (int i = 0; i < m->n && !rc; i++) {
        if (m->w[i].op != MCT_OP_MATMUL) {
            rc = mct_tune_model_add(&t, &m->w[i], NULL);
            continue;
        }
        for (int q = 0; q < f->n && !rc; q++) {
            mct_workload v;
            rc = with_format(&m->w[i], f->fmt[q], f->group[q], &v, err, errlen);
            if (!rc && (rc = mct_tune_model_add(&t, &v, NULL)) < 0)
                mct_errf(err, errlen, rc, "out of memory");
        }
    }
    if (rc) {
        mct_tune_model_free(&t);
        return rc;
    }
    mct_tune_model_free(m);
    *m = t;
    return 0;
}

/* A model file's "w" (x): a format or a list of them, into *out. 0 or -1 (why says what). */
static int json_wfmts(const cJSON *x, mct_tune_wfmts *out, char *why, size_t len)
{
    char list[256] = "";
    size_t n = 0;
    const cJSON *it;
    if (cJSON_IsString(x))
        snprintf(list, sizeof list, "%s", x->valuestring);
    else if (cJSON_IsArray(x) && cJSON_GetArraySize(x) > 0) {
        cJSON_ArrayForEach(it, x) {
            if (!cJSON_IsString(it) || strchr(it->valuestring, ',')) {
                snprintf(why, len, "items must be format names such as \"f32\", \"i8\" or "
                         "\"q4g32\"");
                return -1;
            }
            int k = snprintf(list + n, sizeof list - n, "%s%s", n ? "," : "", it->valuestring);
            if (k < 0 || (size_t)k >= sizeof list - n) {
                snprintf(why, len, "too many formats");
                return -1;
            }
            n += (size_t)k;
        }
    } else {
        snprintf(why, len, "must be a format (\"f32\", \"bf16\", \"i8\", \"q4gG\") or a "
                 "non-empty list of them");
        return -1;
    }
    return mct_tune_wfmts_parse(list, out, why, len) < 0 ? -1 : 0;
}

void mct_tune_model_free(mct_tune_model *m)
{
    free(m->w);
    memset(m, 0, sizeof *m);
}

/* How a JSON value reads in a message: the number, or what it is instead. */
static const char *jdesc(const cJSON *x, char *buf, size_t len)
{
    if (cJSON_IsNumber(x))
        snprintf(buf, len, "%.17g", x->valuedouble);
    else if (cJSON_IsString(x))
        snprintf(buf, len, "the string \"%.40s\"", x->valuestring);
    else
        snprintf(buf, len, "%s", cJSON_IsBool(x) ? "a boolean" : cJSON_IsArray(x) ? "a list"
                 : cJSON_IsNull(x) ? "null" : "an object");
    return buf;
}

static int int_field(const cJSON *o, const char *f, int required, long *out)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, f);
    if (!x)
        return required ? 1 : 0;
    if (!cJSON_IsNumber(x) || x->valuedouble < 1 || x->valuedouble > (double)MCT_MAX_DIM ||
        x->valuedouble != (double)(long)x->valuedouble)
        return 2;
    *out = (long)x->valuedouble;
    return 0;
}

/* The model file FILE whose text is text into *m. */
static int parse_json(const char *file, const char *text, mct_tune_model *m, char *err,
                      size_t errlen)
{
    int rc = MCT_EINVAL;
    cJSON *root = cJSON_Parse(text);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        long off = at && at >= text ? (long)(at - text) : -1;
        snprintf(err, errlen, "%s: not valid JSON (near byte %ld); see models/README.md", file,
                 off);
        goto fail;
    }
    const cJSON *nm = cJSON_GetObjectItemCaseSensitive(root, "name");
    if (!cJSON_IsString(nm) || !nm->valuestring[0]) {
        snprintf(err, errlen, "%s: field \"name\": missing or not a string", file);
        goto fail;
    }
    snprintf(m->name, sizeof m->name, "%s", nm->valuestring);
    /* "b": the variants of every matmul layer that has no "b" of its own */
    mct_tune_bvar fb = MCT_TUNE_B_PACKED;
    const cJSON *fbj = cJSON_GetObjectItemCaseSensitive(root, "b");
    if (fbj && (!cJSON_IsString(fbj) || mct_tune_bvar_parse(fbj->valuestring, &fb))) {
        snprintf(err, errlen, "%s: field \"b\": must be \"packed\", \"raw\" or \"both\"", file);
        goto fail;
    }
    /* "w": the weight formats of every matmul layer that has no "w" of its own */
    mct_tune_wfmts fw = {1, {MCT_RT_WF_F32}, {0}};
    const cJSON *fwj = cJSON_GetObjectItemCaseSensitive(root, "w");
    char wwhy[300];
    if (fwj && json_wfmts(fwj, &fw, wwhy, sizeof wwhy) < 0) {
        snprintf(err, errlen, "%s: field \"w\": %s", file, wwhy);
        goto fail;
    }
    const cJSON *layers = cJSON_GetObjectItemCaseSensitive(root, "layers");
    if (!cJSON_IsArray(layers) || cJSON_GetArraySize(layers) == 0) {
        snprintf(err, errlen, "%s: field \"layers\": missing, not a list, or empty", file);
        goto fail;
    }
    int li = 0;
    const cJSON *L;
    cJSON_ArrayForEach(L, layers) {
        const cJSON *ln = cJSON_GetObjectItemCaseSensitive(L, "name");
        const char *lname = cJSON_IsString(ln) ? ln->valuestring : "?";
#define LERR(...) do { int k_ = snprintf(err, errlen, "%s: layer %d (%s): ", file, li, lname); \
        if (k_ > 0 && (size_t)k_ < errlen) snprintf(err + k_, errlen - (size_t)k_, __VA_ARGS__); \
        goto fail; } while (0)
        if (!cJSON_IsObject(L))
            LERR("not an object");
        if (!cJSON_IsString(ln))
            LERR("field \"name\": missing or not a string");
        const cJSON *op = cJSON_GetObjectItemCaseSensitive(L, "op");
        if (!cJSON_IsString(op) || (strcmp(op->valuestring, "matmul") &&
                                    strcmp(op->valuestring, "bmm")))
            LERR("field \"op\": must be \"matmul\" or \"bmm\"");
        int bmm = !strcmp(op->valuestring, "bmm");
        const cJSON *lay = cJSON_GetObjectItemCaseSensitive(L, "layout");
        const char *layout = "nt";
        if (lay) {
            if (!cJSON_IsString(lay) || (strcmp(lay->valuestring, "nn") &&
                                         strcmp(lay->valuestring, "nt")))
                LERR("field \"layout\": must be \"nn\" or \"nt\"");
            layout = lay->valuestring;
        }
        const cJSON *epi = cJSON_GetObjectItemCaseSensitive(L, "epi");
        const char *epis = "none";
        if (epi) {
            if (!cJSON_IsString(epi))
                LERR("field \"epi\": must be a string such as \"none\" or \"bias+silu\"");
            epis = epi->valuestring;
        }
        long N = 0, K = 0, B = 1, G = 1, beta = 0;
        int e;
        char jb[64];
#define BADINT(f_) LERR("field \"%s\" is %s; it must be a whole number from 1 to %ld", f_, \
                        jdesc(cJSON_GetObjectItemCaseSensitive(L, f_), jb, sizeof jb), \
                        (long)MCT_MAX_DIM)
        if ((e = int_field(L, "N", 1, &N)) == 1)
            LERR("field \"N\" is missing");
        else if (e)
            BADINT("N");
        if ((e = int_field(L, "K", 1, &K)) == 1)
            LERR("field \"K\" is missing");
        else if (e)
            BADINT("K");
        if ((e = int_field(L, "B", bmm, &B)) == 1)
            LERR("field \"B\" is missing (bmm needs the head count)");
        else if (e)
            BADINT("B");
        if ((e = int_field(L, "G", 0, &G)))
            BADINT("G");
        const cJSON *bt = cJSON_GetObjectItemCaseSensitive(L, "beta");
        if (bt) {
            if (!cJSON_IsNumber(bt) || (bt->valuedouble != 0 && bt->valuedouble != 1))
                LERR("field \"beta\": must be 0 or 1");
            beta = (long)bt->valuedouble;
        }
        mct_tune_bvar vb = fb;
        const cJSON *bj = cJSON_GetObjectItemCaseSensitive(L, "b");
        if (bj && (!cJSON_IsString(bj) || mct_tune_bvar_parse(bj->valuestring, &vb)))
            LERR("field \"b\": must be \"packed\" (B may be prepacked), \"raw\" (B taken as "
                 "given) or \"both\"");
        if (bj && bmm && vb != MCT_TUNE_B_PACKED)
            LERR("field \"b\": bmm takes B as given already (it has no prepack); leave \"b\" "
                 "out");
        mct_tune_wfmts wf = fw;
        const cJSON *wj = cJSON_GetObjectItemCaseSensitive(L, "w");
        if (wj && json_wfmts(wj, &wf, wwhy, sizeof wwhy) < 0)
            LERR("field \"w\": %s", wwhy);
        if (bmm && wj && (wf.n != 1 || wf.fmt[0] != MCT_RT_WF_F32))
            LERR("field \"w\": bmm multiplies activations, whose format is f32; leave \"w\" "
                 "out");
        if (bmm)
            wf = (mct_tune_wfmts){1, {MCT_RT_WF_F32}, {0}};
        const cJSON *Ms = cJSON_GetObjectItemCaseSensitive(L, "M");
        long defM[] = {1, 16, 128, 512};
        int nM = Ms ? cJSON_GetArraySize(Ms) : 4;
        if (Ms && (!cJSON_IsArray(Ms) || nM == 0))
            LERR("field \"M\": must be a non-empty list of positive integers");
        for (int q = 0; q < nM; q++) {
            long Mv = defM[q % 4];
            if (Ms) {
                const cJSON *x = cJSON_GetArrayItem(Ms, q);
                if (!cJSON_IsNumber(x) || x->valuedouble < 1 ||
                    x->valuedouble > (double)MCT_MAX_DIM ||
                    x->valuedouble != (double)(long)x->valuedouble)
                    LERR("field \"M\" item %d is %s; it must be a whole number from 1 to %ld",
                         q, jdesc(x, jb, sizeof jb), (long)MCT_MAX_DIM);
                Mv = (long)x->valuedouble;
            }
            char wt[256], why[256];
            if (bmm)
                snprintf(wt, sizeof wt, "bmm f32 %s B=%ld G=%ld M=%ld N=%ld K=%ld epi=%s%s",
                         layout, B, G, Mv, N, K, epis, beta ? " beta=1" : "");
            else
                snprintf(wt, sizeof wt, "matmul f32 %s M=%ld N=%ld K=%ld epi=%s%s", layout, Mv,
                         N, K, epis, beta ? " beta=1" : "");
            mct_workload w0;
            if (mct_wl_parse(wt, &w0, why, sizeof why))
                LERR("workload '%s': %s", wt, why);
            for (int q = 0; q < wf.n; q++) {
                mct_workload w;
                if (with_format(&w0, wf.fmt[q], wf.group[q], &w, why, sizeof why) < 0)
                    LERR("field \"w\": %s", why);
                if (add_variants(m, &w, vb)) {
                    rc = MCT_ENOMEM;
                    LERR("out of memory");
                }
            }
        }
        li++;
#undef BADINT
#undef LERR
    }
    rc = 0;
fail:
    cJSON_Delete(root);
    if (rc)
        mct_tune_model_free(m);
    return rc;
}


int mct_tune_model_parse(const char *name, const char *text, mct_tune_model *m, char *err,
                         size_t errlen)
{
    return parse_json(name, text, m, err, errlen);
}

int mct_tune_model_load(const char *file, mct_tune_model *m, char *err, size_t errlen)
{
    char *text;
    if (mct_tune_model_read(file, &text, err, errlen) < 0)
        return MCT_EIO;
    int rc = parse_json(file, text, m, err, errlen);
    free(text);
    return rc;
}

/* Workload keys one a line, in text (modified: lines are cut in place). */
static int parse_keys(const char *file, char *text, mct_tune_model *m, char *err, size_t errlen)
{
    int lineno = 0;
    for (char *line = text, *next; *line; line = next) {
        mct_workload w;
        char why[256];
        size_t n = strcspn(line, "\n");
        next = line + n + (line[n] == '\n');
        lineno++;
        line[n] = 0;
        line[strcspn(line, "\r#")] = 0;
        if (!line[strspn(line, " \t")])
            continue;
        if (mct_wl_parse(line, &w, why, sizeof why) < 0) {
            snprintf(err, errlen, "%s:%d: %s; lines are workload keys such as 'matmul f32 nt "
                     "M=16 N=4096 K=4096 epi=none'", file, lineno, why);
            return MCT_EINVAL;
        }
        if (mct_tune_model_add(m, &w, NULL) < 0) {
            snprintf(err, errlen, "%s: out of memory", file);
            return MCT_ENOMEM;
        }
    }
    return 0;
}

int mct_tune_model_load_any(const char *file, mct_tune_model *m, char *err, size_t errlen)
{
    char *text;
    size_t len;
    int rc = mct_slurp(file, 0, &text, &len, err, errlen);
    if (rc < 0)
        return rc;
    const char *nul = memchr(text, 0, len);
    if (nul) {
        snprintf(err, errlen, "%s holds a NUL byte at offset %ld; a model file or a list of "
                 "workload keys is plain text (remove the byte)", file, (long)(nul - text));
        free(text);
        return MCT_EINVAL;
    }
    const char *p = text + strspn(text, " \t\r\n");
    rc = *p == '{' ? parse_json(file, text, m, err, errlen)
                   : parse_keys(file, text, m, err, errlen);
    free(text);
    if (rc)
        mct_tune_model_free(m);
    return rc;
}
