/* mctune gen: the database's best records -> NAME.h, NAME.c, Makefile, NAME.pc. */
#include "tuner/gen.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "codegen/codegen.h"
#include "db/db.h"
#include "runtime/cpu.h"
#include "runtime/dispatch.h"
#include "tuner/tune_model.h"

#include "mct_rt_embed.h"  /* build/gen: runtime/ sources as strings (Makefile) */

#define MAXCPU 64


typedef struct kern {
    char name[96];          /* function name */
    int dup;                /* same function as an earlier kernel: not emitted again */
    int isa;
    int prepacked;
    mct_workload w;
    mct_db_rec rec;
} kern;

typedef struct table {
    mct_cpu cpu;
    uint64_t key;
    int isa;
    kern *k;                /* sorted: entry by entry, M ascending */
    int nk, capk;
} table;

typedef struct gen {
    const mct_gen_opts *o;
    FILE *log;
    mct_db *db;
    mct_cpu cpus[MAXCPU];
    int ncpus;
    table t[MAXCPU];
    int nt;
    mct_workload *fam;      /* --model filter */
    int nfam;
    int records, skipped;
    uint64_t sig;           /* fingerprint of the records used */
    char *err;
    size_t errlen;
    int rc;
} gen;

static int fail_msg(gen *g, int rc, const char *fmt, const char *a, const char *b)
{
    snprintf(g->err, g->errlen, fmt, a, b);
    g->rc = rc;
    return rc;
}

static int same_family(const mct_workload *a, const mct_workload *b)
{
    return a->op == b->op && a->layout == b->layout && a->N == b->N && a->K == b->K &&
           a->batch == b->batch && a->group == b->group && a->bias == b->bias &&
           a->act == b->act && a->beta == b->beta;
}

static int cpu_cb(const mct_cpu *c, void *ctx)
{
    gen *g = ctx;
    if (g->ncpus < MAXCPU)
        g->cpus[g->ncpus++] = *c;
    return 0;
}

static const mct_cpu *find_cpu(gen *g, uint64_t key)
{
    for (int i = 0; i < g->ncpus; i++)
        if (mct_cpu_key(&g->cpus[i]) == key)
            return &g->cpus[i];
    return NULL;
}

static int add_table(gen *g, const mct_cpu *c)
{
    uint64_t key = mct_cpu_key(c);
    for (int i = 0; i < g->nt; i++)
        if (g->t[i].key == key)
            return 0;
    if (g->nt == MAXCPU)
        return fail_msg(g, MCT_ERANGE, "more than 64 CPUs selected%s%s; narrow --cpus", "", "");
    table *t = &g->t[g->nt++];
    memset(t, 0, sizeof *t);
    t->cpu = *c;
    t->key = key;
    t->isa = mct_isa_of_tier(mct_cpu_tier_of(c));
    return 0;
}

static int select_cpus(gen *g)
{
    const char *s = g->o->cpus;
    if (!s || !strcmp(s, "all")) {
        for (int i = 0; i < g->ncpus; i++)
            if (add_table(g, &g->cpus[i]) < 0)
                return g->rc;
        return 0;
    }
    if (!strcmp(s, "host")) {
        const mct_cpu *h = mct_cpu_host(), *c = find_cpu(g, mct_cpu_key(h));
        return add_table(g, c ? c : h);
    }
    char buf[32];
    while (*s) {
        size_t n = strcspn(s, ",");
        uint64_t key;
        const mct_cpu *c;
        snprintf(buf, sizeof buf, "%.*s", (int)(n < 31 ? n : 31), s);
        if (mct_cpu_key_parse(buf, &key) < 0)
            return fail_msg(g, MCT_EINVAL, "--cpus: '%s' is not a CPU key (16 hex digits, see "
                            "'mctune db list'), 'host' or 'all'%s", buf, "");
        if (!(c = find_cpu(g, key))) {
            const mct_cpu *h = mct_cpu_host();
            if (mct_cpu_key(h) != key)
                return fail_msg(g, MCT_ENOTFOUND, "--cpus: the database has no CPU record %s "
                                "(its ISA tier is needed); list them with 'mctune db list'%s",
                                buf, "");
            c = h;
        }
        if (add_table(g, c) < 0)
            return g->rc;
        s += n;
        if (*s == ',')
            s++;
    }
    return 0;
}

static int load_model(gen *g)
{
    FILE *f = fopen(g->o->model, "r");
    char line[512], why[256];
    int lineno = 0, c;
    if (!f)
        return fail_msg(g, MCT_EIO, "--model: cannot read '%s': %s", g->o->model,
                        strerror(errno));
    while ((c = fgetc(f)) == ' ' || c == '\n' || c == '\t' || c == '\r')
        ;
    if (c == '{') {  /* a model file of models/ (README.md there) */
        mct_tune_model m;
        char merr[1024];
        fclose(f);
        memset(&m, 0, sizeof m);
        if (mct_tune_model_load(g->o->model, &m, merr, sizeof merr) < 0)
            return fail_msg(g, MCT_EINVAL, "--model: %s%s", merr, "");
        g->fam = m.w;  /* taken over: freed with free() like the line form */
        g->nfam = m.n;
        return 0;
    }
    rewind(f);
    while (fgets(line, sizeof line, f)) {
        mct_workload w;
        lineno++;
        line[strcspn(line, "\r\n#")] = 0;
        if (!line[strspn(line, " \t")])
            continue;
        if (mct_wl_parse(line, &w, why, sizeof why) < 0) {
            char where[600];
            snprintf(where, sizeof where, "%s:%d", g->o->model, lineno);
            fclose(f);
            return fail_msg(g, MCT_EINVAL, "--model %s: %s; lines are workload keys such as "
                            "'matmul f32 nt M=16 N=4096 K=4096 epi=none'", where, why);
        }
        mct_workload *nf = realloc(g->fam, sizeof *nf * (size_t)(g->nfam + 1));
        if (!nf) {
            fclose(f);
            return fail_msg(g, MCT_ENOMEM, "out of memory%s%s", "", "");
        }
        g->fam = nf;
        g->fam[g->nfam++] = w;
    }
    fclose(f);
    return 0;
}

/* Register tile "<rows>x<cols>" read from the schedule: rows from unroll of an i loop, columns
 * from the vectorized (or unrolled) j loop's innermost split. */
static void tile_of(const char *s, char *out, size_t len)
{
    long mi = 1, nj = 1, jlast = 0, junroll = 0;
    int jvec = 0;
    const char *p;
    for (p = s; (p = strstr(p, "tile(j,")); p++) {
        const char *q = p + 7;
        char *end;
        long v;
        while ((v = strtol(q, &end, 10)) > 0 && end != q) {
            jlast = v;
            q = end;
            while (*q == ',' || *q == ' ')
                q++;
        }
    }
    for (p = s; (p = strstr(p, "unroll(")); p++) {
        char loop = p[7];
        const char *c = strchr(p, ',');
        long v = c ? strtol(c + 1, NULL, 10) : 0;
        if (loop == 'i' && v > 0)
            mi = v;
        if (loop == 'j' && v > 0)
            junroll = v;
    }
    if ((p = strstr(s, "vectorize(j")))
        jvec = 1;
    nj = jvec && jlast ? jlast : junroll ? junroll : 1;
    snprintf(out, len, "%ldx%ld", mi, nj);
}

static int rec_cb(const mct_db_rec *r, void *ctx)
{
    gen *g = ctx;
    mct_workload w;
    table *t = NULL;
    char why[256];
    if (r->threads != g->o->threads)
        return 0;
    for (int i = 0; i < g->nt; i++)
        if (g->t[i].key == r->cpu)
            t = &g->t[i];
    if (!t)
        return 0;
    if (mct_wl_parse(r->workload, &w, why, sizeof why) < 0) {
        if (g->log)
            fprintf(g->log, "mctune gen: skipped record '%s': %s\n", r->workload, why);
        g->skipped++;
        return 0;
    }
    if (g->o->model) {
        int keep = 0;
        for (int i = 0; i < g->nfam && !keep; i++)
            keep = same_family(&w, &g->fam[i]);
        if (!keep)
            return 0;
    }
    if (t->nk == t->capk) {
        int cap = t->capk ? 2 * t->capk : 16;
        kern *nk = realloc(t->k, sizeof *nk * (size_t)cap);
        if (!nk)
            return fail_msg(g, MCT_ENOMEM, "out of memory%s%s", "", "");
        t->k = nk;
        t->capk = cap;
    }
    kern *k = &t->k[t->nk];
    memset(k, 0, sizeof *k);
    k->w = w;
    k->rec = *r;
    k->isa = t->isa;
    mct_sched *s;
    if (mct_sched_parse(&w, r->schedule, &s, why, sizeof why) < 0) {
        if (g->log)
            fprintf(g->log, "mctune gen: skipped record '%s' schedule '%s': %s (tuned by "
                    "another code generator? re-tune it)\n", r->workload, r->schedule, why);
        g->skipped++;
        return 0;
    }
    k->prepacked = mct_sched_prepacked(s);
    mct_sched_destroy(s);
    char tile[32], text[4400];
    tile_of(r->schedule, tile, sizeof tile);
    snprintf(text, sizeof text, "%s\n%s\n%d", r->workload, r->schedule, k->isa);
    uint64_t h = mct_fnv64(MCT_FNV64_INIT, text, strlen(text));
    snprintf(k->name, sizeof k->name, "k_%s_f32_%s_%s_%08x", w.op == MCT_OP_BMM ? "bmm" : "matmul",
             mct_isa_get(k->isa)->tag, tile, (unsigned)(h >> 32));
    g->sig = mct_fnv64(g->sig, text, strlen(text));
    g->sig = mct_fnv64(g->sig, &r->cpu, sizeof r->cpu);
    t->nk++;
    g->records++;
    return 0;
}

static int kern_cmp(const void *a, const void *b)
{
    const kern *x = a, *y = b;
    mct_workload wx = x->w, wy = y->w;
    wx.M = wy.M = 0;
    char fx[256], fy[256];
    mct_wl_format(&wx, fx, sizeof fx);
    mct_wl_format(&wy, fy, sizeof fy);
    int c = strcmp(fx, fy);
    if (c)
        return c;
    return x->w.M < y->w.M ? -1 : x->w.M > y->w.M;
}

/* ---- emission ----------------------------------------------------------------------------- */

static void put_cstr(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', f), fputc(*s, f);
        else if (*s == '\n')
            fputs("\\n", f);
        else if ((unsigned char)*s < 32)
            fprintf(f, "\\%03o", (unsigned char)*s);
        else
            fputc(*s, f);
    }
    fputc('"', f);
}

/* A comment must not contain its terminator. */
static void put_comment_text(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (s[0] == '*' && s[1] == '/')
            fputs("* /", f), s++;
        else if (*s == '\n')
            fputs(" ", f);
        else
            fputc(*s, f);
    }
}

/* Lowers one kernel into f with internal linkage; the lowered text itself compiles every
 * function of it for the kernel's ISA (mct_cg_lower_c), as the measurement harness did. */
static int emit_kernel(gen *g, FILE *f, const mct_workload *w, const char *sched, int isa,
                       const char *fn, int prepacked)
{
    mct_sched *s = NULL;
    mct_target tg = mct_target_of_isa(isa);
    char why[256], *code = NULL;
    int rc = mct_sched_parse(w, sched, &s, why, sizeof why);
    if (rc < 0)
        return fail_msg(g, rc, "schedule '%s' does not apply: %s", sched, why);
    rc = mct_cg_lower_c(s, &tg, fn, &code);
    mct_sched_destroy(s);
    if (rc < 0)
        return fail_msg(g, rc, "lowering %s failed: %s", fn, mct_strerror(rc));
    fprintf(f, "static int %s(long M, long N, long K, const float *A, long lda, const float *B, "
            "long ldb, float *C, long ldc, const float *bias, long batch, long group, long sA, "
            "long sB, long sC);\n", fn);
    if (prepacked)
        fprintf(f, "static size_t %s_packed_size(long N, long K);\nstatic void %s_pack_b(long N, "
                "long K, const float *B, long ldb, float *Bp);\n", fn, fn);
    /* the lowered text guards its OpenMP pragmas itself (FN_OMP, defined only under OpenMP) */
    fputs(code, f);
    free(code);
    return 0;
}

/* Generic kernels: one fixed blocked schedule per ISA (register tile rows x 2 vectors, A and B
 * packed per cache block), correct for every shape and stride. */
static void generic_sched(int isa, char *buf, size_t len)
{
    const mct_isa *x = mct_isa_get(isa);
    int V = x->vlen, R = x->nregs >= 32 ? 8 : isa == MCT_ISA_GENERIC ? 4 : 6;
    int J = V == 1 ? 4 : 2 * V;
    snprintf(buf, len, "tile(i, 96, %d); tile(j, 512, %d); tile(k, 256); reorder(j0, k0, i0, j1, "
             "i1, k1, i2, j2); pack(A, i0, i2); pack(B, k0, j2); cache_write(i1); unroll(i2, %d);"
             " vectorize(j2); unroll(k1, 4)", R, J, R);
}

static void upper(const char *s, char *out, size_t len)
{
    size_t i;
    for (i = 0; s[i] && i + 1 < len; i++)
        out[i] = s[i] >= 'a' && s[i] <= 'z' ? (char)(s[i] - 32) : s[i];
    out[i] = 0;
}

static void header_line(FILE *f, const char *open, const char *close, gen *g, const char *date)
{
    fprintf(f, "%s generated by %s (%s), do not edit; database signature schema %d, %s, %d records,"
            " fingerprint %016llx; date %s%s\n", open, g->o->tool, MCT_CG_VERSION, MCT_DB_SCHEMA,
            MCT_CG_VERSION, g->records, (unsigned long long)g->sig, date, close);
}

/* Collects the mct_ identifiers of the embedded runtime, so they can be renamed NAME__mct_...
 * (two generated libraries, or one and libmctune, link together). */
static int rename_ids(FILE *f, const char *name)
{
    char (*seen)[64] = NULL;
    int n = 0, cap = 0;
    for (size_t e = 0; e < sizeof mct_rt_embedded / sizeof mct_rt_embedded[0]; e++) {
        const char *s = mct_rt_embedded[e].text;
        for (const char *p = s; (p = strstr(p, "mct_")); ) {
            const char *q = p;
            int word_start = p == s || !((p[-1] >= 'a' && p[-1] <= 'z') || (p[-1] >= 'A' &&
                             p[-1] <= 'Z') || (p[-1] >= '0' && p[-1] <= '9') || p[-1] == '_');
            while ((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') ||
                   (*q >= '0' && *q <= '9') || *q == '_')
                q++;
            if (word_start && q - p < 64) {
                char id[64];
                int dup = 0;
                memcpy(id, p, (size_t)(q - p));
                id[q - p] = 0;
                for (int i = 0; i < n && !dup; i++)
                    dup = !strcmp(seen[i], id);
                if (!dup) {
                    if (n == cap) {
                        void *ns = realloc(seen, sizeof *seen * (size_t)(cap = cap ? 2 * cap : 64));
                        if (!ns) {
                            free(seen);
                            return MCT_ENOMEM;
                        }
                        seen = ns;
                    }
                    strcpy(seen[n++], id);
                    fprintf(f, "#define %s %s__%s\n", id, name, id);
                }
            }
            p = q;
        }
    }
    free(seen);
    return 0;
}

static void emit_runtime(FILE *f)
{
    for (size_t e = 0; e < sizeof mct_rt_embedded / sizeof mct_rt_embedded[0]; e++) {
        const char *s = mct_rt_embedded[e].text;
        fprintf(f, "/* ---- %s (copied from mctune's runtime/) ---- */\n", mct_rt_embedded[e].path);
        while (*s) {
            size_t n = strcspn(s, "\n");
            if (!strncmp(s, "#include \"runtime/", 18))
                fprintf(f, "/* %.*s: above */\n", (int)n, s);
            else
                fprintf(f, "%.*s\n", (int)n, s);
            s += n;
            if (*s)
                s++;
        }
    }
}

/* Writes a template: @n@ is the library name, @U@ its upper-case form. */
static void put_tpl(FILE *f, const char *tpl, const char *n, const char *U)
{
    for (const char *p = tpl; *p; ) {
        if (!strncmp(p, "@n@", 3)) {
            fputs(n, f);
            p += 3;
        } else if (!strncmp(p, "@U@", 3)) {
            fputs(U, f);
            p += 3;
        } else {
            fputc(*p++, f);
        }
    }
}

static const char *api_h =
"/* @n@: tuned f32 kernels for inference, with load-time CPU dispatch.\n"
" *\n"
" * Built from one translation unit, NAME.c (C11, libc only; `cc -O2 -c @n@.c`; add -fopenmp for\n"
" * parallel kernels, which otherwise run serially). Kernels for several CPUs live side by side,\n"
" * each compiled for its ISA; at load time (once, thread-safe) the library reads CPUID and picks\n"
" * the table of the best rung of the ladder: this exact CPU, else one of the same vendor and ISA\n"
" * tier, else one of the same tier, else none (generic kernels only). Every call then looks its\n"
" * shape up in O(1) and runs the kernel tuned for the nearest M; a shape that was not tuned\n"
" * runs a generic blocked, vectorized kernel for this CPU's tier, correct for every shape.\n"
" *\n"
" * Environment (read once, at load):\n"
" *   @U@_CPU=KEY|TIER  force a table: a CPU key (16 hex digits, see @n@_cpu()) or a tier\n"
" *                    (generic, sse4.2, avx2, avx512, ...). Refused with a message on stderr\n"
" *                    when this CPU lacks the ISA, and the ladder's choice is used.\n"
" *   @U@_DEBUG=1       log the choice, and each distinct call's kernel or fallback once, on stderr.\n"
" *\n"
" * Conventions: all functions are thread-safe and may be called concurrently; they allocate\n"
" * only temporaries, freed before they return. Matrices are row-major with leading dimensions\n"
" * in elements. They return 0, or a negative code (@U@_EINVAL for invalid arguments, in which\n"
" * case nothing is written; @U@_ENOMEM when a temporary could not be allocated). Sizes of 0\n"
" * do what cblas does: nothing, or C = beta*C when K = 0.\n"
" *\n"
" * Build option -D@U@_PROVIDE_CBLAS: the library also defines cblas_sgemm, running tuned shapes\n"
" * itself and forwarding every other call to the next cblas_sgemm in link order (dlsym\n"
" * RTLD_NEXT), so a program linked with OpenBLAS gains the tuned kernels by linking this\n"
" * library first or preloading it (LD_PRELOAD).\n"
" */\n"
"#ifndef @U@_H\n#define @U@_H\n\n#include <stddef.h>\n\n#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n"
"enum { @U@_ROW_MAJOR = 101, @U@_COL_MAJOR = 102 };                      /* as CBLAS_ORDER */\n"
"enum { @U@_NO_TRANS = 111, @U@_TRANS = 112, @U@_CONJ_TRANS = 113 };    /* as CBLAS_TRANSPOSE */\n"
"enum { @U@_NN = 0, @U@_NT = 1 };  /* B stored [K,N] (nn) or [N,K] (nt, how weights are stored) */\n"
"enum { @U@_ACT_NONE = 0, @U@_ACT_RELU = 1, @U@_ACT_GELU = 2, @U@_ACT_SILU = 3 };\n"
"enum { @U@_OP_MATMUL = 0, @U@_OP_BMM = 1 };\n"
"enum { @U@_OK = 0, @U@_EINVAL = -1, @U@_ENOMEM = -2, @U@_EUNSUPPORTED = -15 };\n\n"
"/* C = alpha*op(A)*op(B) + beta*C with cblas_sgemm's arguments and meaning (both orders, both\n"
" * transposes of A and B; conjugate transpose = transpose). Tuned kernels run for op(A) = A,\n"
" * alpha = 1 (or any alpha with beta = 0) and beta 0 or 1; everything else takes the generic\n"
" * path. When beta is 0, C is not read (NaNs in it are overwritten). Invalid arguments\n"
" * (unknown enum, negative size, lda/ldb/ldc too small for the order and transposes, NULL with\n"
" * a nonzero size) return @U@_EINVAL and write nothing. */\n"
"int @n@_sgemm(int order, int transA, int transB, int M, int N, int K, float alpha,\n"
"             const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc);\n\n"
"/* out = act(A*B + bias); C = out (beta 0) or C += out (beta 1). A [M,K] (lda >= K); B [K,N]\n"
" * with layout @U@_NN (ldb >= N) or [N,K] with @U@_NT (ldb >= K); C [M,N] (ldc >= N); bias: N\n"
" * floats or NULL; act: @U@_ACT_*. */\n"
"int @n@_matmul(int layout, long M, long N, long K, const float *A, long lda, const float *B,\n"
"              long ldb, float *C, long ldc, const float *bias, int act, int beta);\n\n"
"/* Batched matmul for attention (Q K^T with @U@_NT, P V with @U@_NN), grouped-query: head b uses\n"
" * A + b*sA, B + (b/group)*sB, C + b*sC (strides in elements, >= 0); group query heads share\n"
" * one key/value head and must divide batch (1: plain multi-head). C = or += A*B per beta. */\n"
"int @n@_bmm(int layout, long batch, long group, long M, long N, long K, const float *A,\n"
"           long lda, long sA, const float *B, long ldb, long sB, float *C, long ldc, long sC,\n"
"           int beta);\n\n"
"/* Weights packed once: copies B (the caller may free it afterwards) and packs it for every\n"
" * tuned kernel of (layout, N, K) in the chosen table. *out is owned by the caller and freed\n"
" * with @n@_packed_free; it may be used by several threads at once (read only). */\n"
"typedef struct @n@_packed @n@_packed;\n"
"int @n@_prepack_b(int layout, long N, long K, const float *B, long ldb, @n@_packed **out);\n"
"/* @n@_matmul with the prepacked B (its layout, N and K). */\n"
"int @n@_matmul_packed(const @n@_packed *P, long M, const float *A, long lda, float *C, long ldc,\n"
"                     const float *bias, int act, int beta);\n"
"void @n@_packed_free(@n@_packed *P);\n\n"
"/* The table chosen at load time and the rung of the ladder that chose it, e.g.\n"
" * \"GenuineIntel 6/207 avx512 0123456789abcdef (exact CPU; generic kernels avx512)\". Static\n"
" * string, valid for the life of the process. */\n"
"const char *@n@_cpu(void);\n\n"
"/* 1 when the chosen table holds a tuned kernel for (op, layout, N, K, batch, group, bias,\n"
" * act, beta) (any M: the nearest tuned M is used), 0 when not, @U@_EINVAL for bad arguments.\n"
" * batch and group are ignored for @U@_OP_MATMUL; bias is 0 or 1. */\n"
"int @n@_is_tuned(int op, int layout, long M, long N, long K, long batch, long group, int bias,\n"
"                int act, int beta);\n\n"
"/* A static name for a return code. */\n"
"const char *@n@_strerror(int err);\n\n"
"#ifdef __cplusplus\n}\n#endif\n#endif\n";

static int write_header(gen *g, const char *path, const char *date)
{
    const char *n = g->o->name;
    char U[64];
    FILE *f = fopen(path, "w");
    upper(n, U, sizeof U);
    if (!f)
        return fail_msg(g, MCT_EIO, "cannot write '%s': %s", path, strerror(errno));
    header_line(f, "/*", " */", g, date);
    put_tpl(f, api_h, n, U);
    if (fclose(f))
        return fail_msg(g, MCT_EIO, "cannot write '%s': %s", path, strerror(errno));
    return 0;
}

static const char *api_c =
"\n/* ---- public API ---- */\n"
"int @n@_sgemm(int order, int transA, int transB, int M, int N, int K, float alpha,\n"
"             const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc)\n"
"{\n    return mct_rt_sgemm(&@n@__lib, order, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta,"
" C, ldc, 0);\n}\n"
"int @n@_matmul(int layout, long M, long N, long K, const float *A, long lda, const float *B,\n"
"              long ldb, float *C, long ldc, const float *bias, int act, int beta)\n"
"{\n    return mct_rt_matmul(&@n@__lib, layout, M, N, K, A, lda, B, ldb, C, ldc, bias, act, beta);\n}\n"
"int @n@_bmm(int layout, long batch, long group, long M, long N, long K, const float *A,\n"
"           long lda, long sA, const float *B, long ldb, long sB, float *C, long ldc, long sC,\n"
"           int beta)\n"
"{\n    return mct_rt_bmm(&@n@__lib, layout, batch, group, M, N, K, A, lda, sA, B, ldb, sB, C, ldc,"
" sC, beta);\n}\n"
"int @n@_prepack_b(int layout, long N, long K, const float *B, long ldb, @n@_packed **out)\n"
"{\n    return mct_rt_prepack_b(&@n@__lib, layout, N, K, B, ldb, (mct_rt_packed **)out);\n}\n"
"int @n@_matmul_packed(const @n@_packed *P, long M, const float *A, long lda, float *C, long ldc,\n"
"                     const float *bias, int act, int beta)\n"
"{\n    return mct_rt_matmul_packed(&@n@__lib, (const mct_rt_packed *)P, M, A, lda, C, ldc, bias,"
" act, beta);\n}\n"
"void @n@_packed_free(@n@_packed *P)\n{\n    mct_rt_packed_free((mct_rt_packed *)P);\n}\n"
"const char *@n@_cpu(void)\n{\n    return mct_rt_cpu(&@n@__lib);\n}\n"
"int @n@_is_tuned(int op, int layout, long M, long N, long K, long batch, long group, int bias,\n"
"                int act, int beta)\n"
"{\n    return mct_rt_is_tuned(&@n@__lib, op, layout, M, N, K, batch, group, bias, act, beta);\n}\n"
"const char *@n@_strerror(int err)\n{\n    return mct_strerror(err);\n}\n"
"/* load time: probe the CPU and choose the table before main() */\n"
"__attribute__((constructor)) static void @n@__load(void)\n{\n    mct_rt_init(&@n@__lib);\n}\n\n"
"#ifdef @U@_PROVIDE_CBLAS\n#include <dlfcn.h>\n"
"typedef void (*@n@__cblas_fn)(int, int, int, int, int, int, float, const float *, int,\n"
"                             const float *, int, float, float *, int);\n"
"static @n@__cblas_fn @n@__next;\n"
"void cblas_sgemm(int order, int transA, int transB, int M, int N, int K, float alpha,\n"
"                 const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc)\n"
"{\n"
"    @n@__cblas_fn next;\n"
"    if (mct_rt_sgemm(&@n@__lib, order, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C,\n"
"                     ldc, 1) == 0)\n"
"        return;\n"
"    next = __atomic_load_n(&@n@__next, __ATOMIC_ACQUIRE);\n"
"    if (!next) {\n"
"        void *p = dlsym(RTLD_NEXT, \"cblas_sgemm\");\n"
"        memcpy(&next, &p, sizeof next);\n"
"        __atomic_store_n(&@n@__next, next, __ATOMIC_RELEASE);\n"
"    }\n"
"    if (!next) {\n"
"        fprintf(stderr, \"@n@: cblas_sgemm M=%d N=%d K=%d is not tuned and no other cblas_sgemm\"\n"
"                \" follows this library in link order; link a CBLAS (e.g. -lopenblas) after it\\n\","
"\n                M, N, K);\n"
"        return;\n"
"    }\n"
"    next(order, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);\n"
"}\n#endif\n";

static int write_source(gen *g, const char *path, const char *date)
{
    const char *n = g->o->name;
    char U[64], sched[512];
    int rc = 0;
    FILE *f = fopen(path, "w");
    upper(n, U, sizeof U);
    if (!f)
        return fail_msg(g, MCT_EIO, "cannot write '%s': %s", path, strerror(errno));
    header_line(f, "/*", " */", g, date);
    fprintf(f, "/* %s.c: one translation unit (C11, libc only). Sections: the runtime copied from\n"
            " * mctune's runtime/, tuned kernels per CPU (each under its ISA's target attribute),\n"
            " * generic kernels per ISA tier, the dispatch tables, the public API. */\n", n);
    fprintf(f, "#if defined(%s_PROVIDE_CBLAS) && !defined(_GNU_SOURCE)\n#define _GNU_SOURCE\n"
            "#endif\n", U);
    fprintf(f, "#include <stdarg.h>\n#include <stddef.h>\n#include <stdint.h>\n#include <stdio.h>\n"
            "#include <stdlib.h>\n#include <string.h>\n#ifdef _OPENMP\n#include <omp.h>\n#endif\n\n"
            "#include \"%s.h\"\n\n", n);
    fprintf(f, "#if defined(__GNUC__)\n#pragma GCC visibility push(hidden)\n#endif\n");
    fprintf(f, "/* the runtime's names, private to this library */\n");
    if ((rc = rename_ids(f, n)) < 0) {
        fail_msg(g, rc, "out of memory%s%s", "", "");
        goto fail;
    }
    emit_runtime(f);
    /* tuned kernels */
    for (int ti = 0; ti < g->nt; ti++) {
        table *t = &g->t[ti];
        char key[17];
        mct_cpu_key_format(t->key, key);
        fprintf(f, "\n/* ==== kernels of CPU %s (%s family %d model %d, \"%s\"), tier %s, lowered for"
                " %s ==== */\n", key, t->cpu.vendor, t->cpu.family, t->cpu.model, t->cpu.brand,
                mct_tier_name(mct_cpu_tier_of(&t->cpu)), mct_isa_get(t->isa)->tag);
        for (int i = 0; i < t->nk; i++) {
            kern *k = &t->k[i];
            if (k->dup)
                continue;
            fprintf(f, "\n/* %s\n * workload: ", k->name);
            put_comment_text(f, k->rec.workload);
            fprintf(f, "\n * schedule: ");
            put_comment_text(f, k->rec.schedule[0] ? k->rec.schedule : "(untuned nest)");
            fprintf(f, "\n * measured: %.2f GFLOP/s, median %.0f ns, %d thread(s), %s search, "
                    "%s guide, %s ", k->rec.gflops, k->rec.median_ns, k->rec.threads,
                    k->rec.search, k->rec.guide[0] ? k->rec.guide : "no", k->rec.compiler);
            put_comment_text(f, k->rec.flags);
            fprintf(f, " */\n");
            if ((rc = emit_kernel(g, f, &k->w, k->rec.schedule, k->isa, k->name,
                                  k->prepacked)) < 0)
                goto fail;
        }
    }
    /* generic kernels */
    fprintf(f, "\n/* ==== generic kernels: any shape and stride, one fixed blocked schedule per "
            "ISA tier ==== */\n");
    for (int isa = 0; isa < MCT_ISA_COUNT; isa++)
        for (int lay = 0; lay < 2; lay++)
            for (int beta = 0; beta < 2; beta++) {
                mct_workload w = {MCT_OP_MATMUL, lay ? MCT_NT : MCT_NN, 96, 512, 512, 1, 1, 0,
                                  MCT_ACT_NONE, beta};
                char fn[96];
                generic_sched(isa, sched, sizeof sched);
                snprintf(fn, sizeof fn, "%s__generic_%s_%s_b%d", n, mct_isa_get(isa)->tag,
                         lay ? "nt" : "nn", beta);
                fprintf(f, "\n/* %s: schedule %s */\n", fn, sched);
                if ((rc = emit_kernel(g, f, &w, sched, isa, fn, 0)) < 0)
                    goto fail;
            }
    /* tables */
    fprintf(f, "\n/* ==== dispatch tables ==== */\n");
    int ntab = 0;
    for (int ti = 0; ti < g->nt; ti++) {
        table *t = &g->t[ti];
        if (!t->nk)
            continue;
        ntab++;
        fprintf(f, "static const mct_rt_kernel %s__t%d_kernels[] = {\n", n, ti);
        for (int i = 0; i < t->nk; i++) {
            kern *k = &t->k[i];
            fprintf(f, "    {%lld, %s, ", (long long)k->w.M, k->name);
            if (k->prepacked)
                fprintf(f, "%s_packed_size, %s_pack_b, ", k->name, k->name);
            else
                fprintf(f, "NULL, NULL, ");
            fprintf(f, "\"%s\", %.3f},\n", k->name, k->rec.gflops);
        }
        fprintf(f, "};\n");
        /* entries: runs of the same family */
        mct_rt_shape *shp = calloc((size_t)t->nk, sizeof *shp);
        int *first = calloc((size_t)t->nk, sizeof *first), *cnt = calloc((size_t)t->nk,
                                                                             sizeof *cnt);
        unsigned nslots = 4;
        int ne = 0, *slots = NULL;
        if (!shp || !first || !cnt) {
            free(shp), free(first), free(cnt);
            rc = fail_msg(g, MCT_ENOMEM, "out of memory%s%s", "", "");
            goto fail;
        }
        for (int i = 0; i < t->nk; i++) {
            if (i && same_family(&t->k[i].w, &t->k[i - 1].w)) {
                cnt[ne - 1]++;
                continue;
            }
            const mct_workload *w = &t->k[i].w;
            mct_rt_shape s = {(long)w->N, (long)w->K, w->op == MCT_OP_BMM ? (long)w->batch : 1,
                              w->op == MCT_OP_BMM ? (long)w->group : 1, (int)w->op,
                              (int)w->layout, w->bias, (int)w->act, w->beta};
            shp[ne] = s;
            first[ne] = i;
            cnt[ne++] = 1;
        }
        while (nslots < 2u * (unsigned)ne + 1)
            nslots *= 2;
        slots = calloc(nslots, sizeof *slots);
        if (!slots) {
            free(shp), free(first), free(cnt);
            rc = fail_msg(g, MCT_ENOMEM, "out of memory%s%s", "", "");
            goto fail;
        }
        fprintf(f, "static const mct_rt_entry %s__t%d_entries[] = {\n", n, ti);
        for (int e = 0; e < ne; e++) {
            unsigned i = (unsigned)mct_rt_shape_hash(&shp[e]) & (nslots - 1);
            while (slots[i])
                i = (i + 1) & (nslots - 1);
            slots[i] = e + 1;
            fprintf(f, "    {{%ld, %ld, %ld, %ld, %d, %d, %d, %d, %d}, %d, %d},\n", shp[e].N,
                    shp[e].K, shp[e].batch, shp[e].group, shp[e].op, shp[e].layout, shp[e].bias,
                    shp[e].act, shp[e].beta, first[e], cnt[e]);
        }
        fprintf(f, "};\nstatic const int %s__t%d_slots[%u] = {", n, ti, nslots);
        for (unsigned i = 0; i < nslots; i++)
            fprintf(f, "%s%d", i ? ", " : "", slots[i]);
        char key[17];
        mct_cpu_key_format(t->key, key);
        fprintf(f, "};\nstatic const mct_rt_table %s__t%d = {\"%s %d/%d %s %s\", 0x%sull, ", n, ti,
                t->cpu.vendor[0] ? t->cpu.vendor : "?", t->cpu.family, t->cpu.model,
                mct_tier_name(mct_cpu_tier_of(&t->cpu)), key, key);
        put_cstr(f, t->cpu.vendor);
        fprintf(f, ", %d, %d, %d, %s__t%d_entries, %uu, %s__t%d_slots, %d, %s__t%d_kernels};\n",
                (int)mct_cpu_tier_of(&t->cpu), t->isa, ne, n, ti, nslots, n, ti, t->nk, n, ti);
        free(shp), free(first), free(cnt), free(slots);
    }
    fprintf(f, "static const mct_rt_table *const %s__tables[%d] = {", n, ntab ? ntab : 1);
    if (!ntab)
        fprintf(f, "NULL");
    for (int ti = 0, c = 0; ti < g->nt; ti++)
        if (g->t[ti].nk)
            fprintf(f, "%s&%s__t%d", c++ ? ", " : "", n, ti);
    fprintf(f, "};\nstatic mct_rt_lib %s__lib = {\"%s\", \"%s_CPU\", \"%s_DEBUG\", %d, %s__tables, {",
            n, n, U, U, ntab, n);
    for (int isa = 0; isa < MCT_ISA_COUNT; isa++)
        fprintf(f, "%s{{%s__generic_%s_nn_b0, %s__generic_%s_nn_b1}, {%s__generic_%s_nt_b0, "
                "%s__generic_%s_nt_b1}}", isa ? ",\n    " : "", n, mct_isa_get(isa)->tag, n, mct_isa_get(isa)->tag,
                n, mct_isa_get(isa)->tag, n, mct_isa_get(isa)->tag);
    fprintf(f, "}, 0, NULL, 0, 0, 0, {0}, {0}};\n");
    fprintf(f, "#if defined(__GNUC__)\n#pragma GCC visibility pop\n#endif\n");
    put_tpl(f, api_c, n, U);
fail:
    if (fclose(f) && rc == 0)
        rc = fail_msg(g, MCT_EIO, "cannot write '%s': %s", path, strerror(errno));
    return rc;
}

static int write_build(gen *g, const char *dir, const char *date)
{
    const char *n = g->o->name;
    char path[4096];
    FILE *f;
    snprintf(path, sizeof path, "%s/Makefile", dir);
    if (!(f = fopen(path, "w")))
        return fail_msg(g, MCT_EIO, "cannot write '%s': %s", path, strerror(errno));
    header_line(f, "#", "", g, date);
    put_tpl(f,
            "# make: lib@n@.a and lib@n@.so; make install PREFIX=/usr/local (also DESTDIR).\n"
            "# Parallel kernels: make CFLAGS='-O2 -fopenmp' LDLIBS=-fopenmp\n"
            "CC ?= cc\nAR ?= ar\nCFLAGS ?= -O2\nLDLIBS ?=\nPREFIX ?= /usr/local\n\n"
            "all: lib@n@.a lib@n@.so\n\n"
            "@n@.o: @n@.c @n@.h\n\t$(CC) $(CFLAGS) -c @n@.c -o $@\n\n"
            "@n@.pic.o: @n@.c @n@.h\n\t$(CC) $(CFLAGS) -fPIC -c @n@.c -o $@\n\n"
            "lib@n@.a: @n@.o\n\trm -f $@ && $(AR) rcs $@ @n@.o\n\n"
            "lib@n@.so: @n@.pic.o\n\t$(CC) -shared -o $@ @n@.pic.o $(LDFLAGS) $(LDLIBS)\n\n"
            "install: all\n\tinstall -d $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include\n"
            "\tinstall -m 644 lib@n@.a $(DESTDIR)$(PREFIX)/lib/\n"
            "\tinstall -m 755 lib@n@.so $(DESTDIR)$(PREFIX)/lib/\n"
            "\tinstall -m 644 @n@.h $(DESTDIR)$(PREFIX)/include/\n"
            "\tsed 's|^prefix=.*|prefix=$(PREFIX)|' @n@.pc > $(DESTDIR)$(PREFIX)/lib/pkgconfig/@n@.pc\n\n"
            "clean:\n\trm -f @n@.o @n@.pic.o lib@n@.a lib@n@.so\n\n.PHONY: all install clean\n",
            n, "");
    if (fclose(f))
        return fail_msg(g, MCT_EIO, "cannot write '%s': %s", path, strerror(errno));
    snprintf(path, sizeof path, "%s/%s.pc", dir, n);
    if (!(f = fopen(path, "w")))
        return fail_msg(g, MCT_EIO, "cannot write '%s': %s", path, strerror(errno));
    header_line(f, "#", "", g, date);
    fprintf(f, "prefix=/usr/local\nlibdir=${prefix}/lib\nincludedir=${prefix}/include\n\n"
            "Name: %s\nDescription: tuned f32 inference kernels with CPU dispatch (mctune gen)\n"
            "Version: 1\nCflags: -I${includedir}\nLibs: -L${libdir} -l%s\n", n, n);
    if (fclose(f))
        return fail_msg(g, MCT_EIO, "cannot write '%s': %s", path, strerror(errno));
    return 0;
}

static int valid_name(const char *s)
{
    size_t n = strlen(s);
    if (!n || n > 40 || (s[0] >= '0' && s[0] <= '9'))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return 0;
    return strncmp(s, "mct_", 4) != 0 && strcmp(s, "cblas") != 0;
}

int mct_gen_library(const mct_gen_opts *o, FILE *log, mct_gen_report *rep, char *err,
                    size_t errlen)
{
    gen *g = calloc(1, sizeof *g);
    char path[4096], dberr[1024], date[32];
    int rc;
    if (!g) {
        snprintf(err, errlen, "out of memory");
        return MCT_ENOMEM;
    }
    g->o = o;
    g->log = log;
    g->err = err;
    g->errlen = errlen;
    g->sig = MCT_FNV64_INIT;
    err[0] = 0;
    if (!o->name || !valid_name(o->name)) {
        rc = fail_msg(g, MCT_EINVAL, "--name '%s' is not usable: use lowercase letters, digits "
                      "and '_' (not first a digit, at most 40, not starting with mct_)%s",
                      o->name ? o->name : "", "");
        goto fail;
    }
    if (o->threads < 1) {
        rc = fail_msg(g, MCT_EINVAL, "threads must be >= 1%s%s", "", "");
        goto fail;
    }
    if ((rc = mct_db_open(o->db, MCT_DB_RDONLY, dberr, sizeof dberr, &g->db)) < 0) {
        fail_msg(g, rc, "%s%s", dberr, "");
        goto fail;
    }
    if ((rc = mct_db_iter_cpus(g->db, cpu_cb, g)) < 0) {
        fail_msg(g, rc, "reading CPU records: %s%s", mct_db_errmsg(g->db), "");
        goto fail;
    }
    if ((rc = select_cpus(g)) < 0 || (o->model && (rc = load_model(g)) < 0))
        goto fail;
    if ((rc = mct_db_iter(g->db, MCT_DB_BEST, rec_cb, g)) < 0) {
        if (!g->rc)
            fail_msg(g, rc, "reading best records: %s%s", mct_db_errmsg(g->db), "");
        goto fail;
    }
    for (int i = 0; i < g->nt; i++) {
        table *t = &g->t[i];
        if (t->nk)
            qsort(t->k, (size_t)t->nk, sizeof *t->k, kern_cmp);
        for (int j = 0; j < t->nk; j++)  /* same function already emitted by an earlier table */
            for (int a = 0; a <= i && !t->k[j].dup; a++)
                for (int b = 0; b < (a == i ? j : g->t[a].nk) && !t->k[j].dup; b++)
                    t->k[j].dup = !strcmp(g->t[a].k[b].name, t->k[j].name);
    }
    if (mkdir(o->out_dir, 0777) < 0 && errno != EEXIST) {
        rc = fail_msg(g, MCT_EIO, "cannot create '%s': %s", o->out_dir, strerror(errno));
        goto fail;
    }
    {
        const char *sde = getenv("SOURCE_DATE_EPOCH");
        time_t now = time(NULL);
        if (sde && *sde) {
            char *end;
            errno = 0;
            long long v = strtoll(sde, &end, 10);
            /* up to the year 9999, so that the date always formats */
            if (errno || end == sde || *end || v < 0 || v > 253402300799LL) {
                rc = fail_msg(g, MCT_EINVAL, "SOURCE_DATE_EPOCH '%.40s' is not a whole number of "
                              "seconds since 1970 (0 to 253402300799)%s; fix or unset it", sde,
                              "");
                goto fail;
            }
            now = (time_t)v;
        }
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", &tm);
    }
    snprintf(path, sizeof path, "%s/%s.h", o->out_dir, o->name);
    if ((rc = write_header(g, path, date)) < 0)
        goto fail;
    snprintf(path, sizeof path, "%s/%s.c", o->out_dir, o->name);
    if ((rc = write_source(g, path, date)) < 0)
        goto fail;
    if ((rc = write_build(g, o->out_dir, date)) < 0)
        goto fail;
    if (rep) {
        memset(rep, 0, sizeof *rep);
        for (int i = 0; i < g->nt; i++) {
            rep->tables += g->t[i].nk > 0;
            for (int j = 0; j < g->t[i].nk; j++)
                rep->kernels += !g->t[i].k[j].dup;
        }
        rep->records = g->records;
        rep->skipped = g->skipped;
    }
    rc = 0;
fail:
    if (g->db)
        mct_db_close(g->db);
    for (int i = 0; i < g->nt; i++)
        free(g->t[i].k);
    free(g->fam);
    free(g);
    return rc;
}
