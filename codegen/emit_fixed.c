/* codegen emission: what every generated library holds whatever its kernels. NAME.h (the API
 * and its contract), the runtime of runtime/ copied into NAME.c with its names made private,
 * the public functions that end NAME.c, the Makefile and NAME.pc. Texts are templates: @n@
 * stands for the library name, @U@ for its upper-case form. */
#include "codegen/emit_int.h"

#include <stdlib.h>
#include <string.h>

#include "mct_rt_embed.h"  /* build/gen: runtime/ sources as strings (Makefile) */

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

static const char *const api_h_head =
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
" * Weights: @n@_sgemm, @n@_matmul and cblas_sgemm take B as given and run the kernels tuned\n"
" * for a B as given (`mctune tune --b raw`); kernels tuned to read a prepacked B run through\n"
" * @n@_prepack_b / @n@_matmul_packed (and from @n@_matmul, which then packs B on each call,\n"
" * when no kernel for a B as given is tuned).\n"
" *\n"
" * Low-precision weights (formats \"bf16\"; \"i8\", symmetric 8-bit integers with one f32 scale\n"
" * per output channel n; \"q4gG\", symmetric 4-bit integers in groups of G consecutive k with one\n"
" * f32 scale per (n, group); A, C, bias and the arithmetic stay f32): @n@_prepack_b_fmt\n"
" * quantizes f32 weights (round to nearest even: i8 scale = max|w|/127 per channel, q4 scale =\n"
" * max|w|/7 per group), @n@_prepack_b_quantized takes weights already quantized in the plain\n"
" * layout below; @n@_matmul_packed then runs the kernel tuned for that format and shape, or\n"
" * dequantizes and runs the generic kernels when the shape or format was not tuned. The plain\n"
" * layout is one buffer, row n = output channel whatever layout the f32 weights had:\n"
" *   bytes [0, D)        data, element (n, k) at index e = n*K + k:\n"
" *                         bf16: uint16 [N][K] (the high half of the f32 bits),  D = 2*N*K\n"
" *                         i8:   int8   [N][K],                                  D = N*K\n"
" *                         q4:   bytes [N][K/2], element e in the low nibble of byte e/2 when e\n"
" *                               is even, the high nibble when odd; q in [-8, 7] stored as q+8,\n"
" *                                                                              D = N*K/2\n"
" *   bytes [R, R + 4*S)  float scales, R = D rounded up to a multiple of 16: none (bf16), [N]\n"
" *                       (i8), [N][K/G] (q4); native byte order.\n"
" * The weight (n, k) is q*scale (bf16: the bf16 value). Its size is R + 4*S bytes.\n"
" *\n"
" * Build option -D@U@_PROVIDE_CBLAS: the library also defines cblas_sgemm and cblas_sgemv (the\n"
" * matmul of one row: the kernels tuned for M = 1), running the shapes it has kernels for a B\n"
" * as given itself and forwarding every other call to the next cblas_sgemm or cblas_sgemv in\n"
" * link order (dlsym RTLD_NEXT), so a program linked with OpenBLAS gains the\n"
" * tuned kernels by linking this library first or preloading it (LD_PRELOAD), and never\n"
" * packs weights on a call. Its thread budget is the thread count of the library it stands in\n"
" * for (openblas_get_num_threads when that library has it), else @n@_set_num_threads's.\n"
" */\n"
"#ifndef @U@_H\n#define @U@_H\n\n#include <stddef.h>\n\n#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n"
"enum { @U@_ROW_MAJOR = 101, @U@_COL_MAJOR = 102 };                      /* as CBLAS_ORDER */\n"
"enum { @U@_NO_TRANS = 111, @U@_TRANS = 112, @U@_CONJ_TRANS = 113 };    /* as CBLAS_TRANSPOSE */\n"
"enum { @U@_NN = 0, @U@_NT = 1 };  /* B stored [K,N] (nn) or [N,K] (nt, how weights are stored) */\n"
"enum { @U@_ACT_NONE = 0, @U@_ACT_RELU = 1, @U@_ACT_GELU = 2, @U@_ACT_SILU = 3 };\n"
"enum { @U@_OP_MATMUL = 0, @U@_OP_BMM = 1 };\n"
"enum { @U@_OK = 0, @U@_EINVAL = -1, @U@_ENOMEM = -2, @U@_EUNSUPPORTED = -15 };\n\n";

static const char *const api_c_tail =
"/* load time: probe the CPU and choose the table before main() */\n"
"__attribute__((constructor)) static void @n@__load(void)\n{\n    mct_rt_init(&@n@__lib);\n}\n\n"
"#ifdef @U@_PROVIDE_CBLAS\n#include <dlfcn.h>\n"
"typedef void (*@n@__cblas_fn)(int, int, int, int, int, int, float, const float *, int,\n"
"                             const float *, int, float, float *, int);\n"
"static @n@__cblas_fn @n@__next;\n"
"typedef int (*@n@__nt_fn)(void);\n"
"static @n@__nt_fn @n@__ob_threads;\n"
"static int @n@__ob_looked;\n"
"/* the thread budget of a call: the thread count of the library this one stands in for\n"
" * (openblas_set_num_threads, OPENBLAS_NUM_THREADS), else the library's own */\n"
"static int @n@__cblas_threads(void)\n"
"{\n"
"    @n@__nt_fn f;\n"
"    if (!__atomic_load_n(&@n@__ob_looked, __ATOMIC_ACQUIRE)) {\n"
"        void *p = dlsym(RTLD_NEXT, \"openblas_get_num_threads\");\n"
"        memcpy(&f, &p, sizeof f);\n"
"        __atomic_store_n(&@n@__ob_threads, f, __ATOMIC_RELEASE);\n"
"        __atomic_store_n(&@n@__ob_looked, 1, __ATOMIC_RELEASE);\n"
"    }\n"
"    f = __atomic_load_n(&@n@__ob_threads, __ATOMIC_ACQUIRE);\n"
"    return f ? f() : 0;\n"
"}\n"
"void cblas_sgemm(int order, int transA, int transB, int M, int N, int K, float alpha,\n"
"                 const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc)\n"
"{\n"
"    @n@__cblas_fn next;\n"
"    if (mct_rt_sgemm(&@n@__lib, order, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C,\n"
"                     ldc, 1, @n@__cblas_threads()) == 0)\n"
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
"}\n"
"/* y = alpha*op(A)*x + beta*y is the matmul of one row: x (1 x n) times op(A) transposed, so the\n"
" * kernels tuned for M = 1 and a B as given run it (the call a serving engine makes for one\n"
" * token); a stride in x or y, or a shape not tuned, goes to the next cblas_sgemv */\n"
"typedef void (*@n@__gemv_fn)(int, int, int, int, float, const float *, int, const float *,\n"
"                             int, float, float *, int);\n"
"static @n@__gemv_fn @n@__next_gemv;\n"
"void cblas_sgemv(int order, int trans, int M, int N, float alpha, const float *A, int lda,\n"
"                 const float *X, int incX, float beta, float *Y, int incY)\n"
"{\n"
"    @n@__gemv_fn next;\n"
"    /* the rows of A in memory: [M][N] row-major, [N][M] column-major */\n"
"    int rows_m = order == @U@_ROW_MAJOR, tr = trans == @U@_TRANS || trans == @U@_CONJ_TRANS;\n"
"    int ny = tr ? N : M, nx = tr ? M : N;\n"
"    if (incX == 1 && incY == 1 && (order == @U@_ROW_MAJOR || order == @U@_COL_MAJOR) &&\n"
"        (tr || trans == @U@_NO_TRANS) && M > 0 && N > 0 &&\n"
"        mct_rt_sgemm(&@n@__lib, @U@_ROW_MAJOR, @U@_NO_TRANS, rows_m != tr ? @U@_TRANS :\n"
"                     @U@_NO_TRANS, 1, ny, nx, alpha, X, nx, A, lda, beta, Y, ny, 1,\n"
"                     @n@__cblas_threads()) == 0)\n"
"        return;\n"
"    next = __atomic_load_n(&@n@__next_gemv, __ATOMIC_ACQUIRE);\n"
"    if (!next) {\n"
"        void *p = dlsym(RTLD_NEXT, \"cblas_sgemv\");\n"
"        memcpy(&next, &p, sizeof next);\n"
"        __atomic_store_n(&@n@__next_gemv, next, __ATOMIC_RELEASE);\n"
"    }\n"
"    if (!next) {\n"
"        fprintf(stderr, \"@n@: cblas_sgemv M=%d N=%d is not tuned and no other cblas_sgemv\"\n"
"                \" follows this library in link order; link a CBLAS (e.g. -lopenblas) after it\\n\","
"\n                M, N);\n"
"        return;\n"
"    }\n"
"    next(order, trans, M, N, alpha, A, lda, X, incX, beta, Y, incY);\n"
"}\n#endif\n";

static const char *const makefile_tpl =
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
"clean:\n\trm -f @n@.o @n@.pic.o lib@n@.a lib@n@.so\n\n.PHONY: all install clean\n";

/* The public functions, each written once: NAME.h prints doc, the signature, ';' and sep;
 * NAME.c prints the signature and a body of the one statement that calls the runtime. */
static const struct api_fn {
    const char *doc, *sig, *sep, *body;
} api[] = {
    {"/* C = alpha*op(A)*op(B) + beta*C with cblas_sgemm's arguments and meaning (both orders, both\n"
     " * transposes of A and B; conjugate transpose = transpose). Tuned kernels run for op(A) = A,\n"
     " * alpha = 1 (or any alpha with beta = 0) and beta 0 or 1; everything else takes the generic\n"
     " * path. When beta is 0, C is not read (NaNs in it are overwritten). Invalid arguments\n"
     " * (unknown enum, negative size, lda/ldb/ldc too small for the order and transposes, NULL with\n"
     " * a nonzero size) return @U@_EINVAL and write nothing. */\n",
     "int @n@_sgemm(int order, int transA, int transB, int M, int N, int K, float alpha,\n"
     "             const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc)",
     "\n\n",
     "return mct_rt_sgemm(&@n@__lib, order, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, "
     "ldc, 0, 0);"},
    {"/* out = act(A*B + bias); C = out (beta 0) or C += out (beta 1). A [M,K] (lda >= K); B [K,N]\n"
     " * with layout @U@_NN (ldb >= N) or [N,K] with @U@_NT (ldb >= K); C [M,N] (ldc >= N); bias: N\n"
     " * floats or NULL; act: @U@_ACT_*. */\n",
     "int @n@_matmul(int layout, long M, long N, long K, const float *A, long lda, const float *B,\n"
     "              long ldb, float *C, long ldc, const float *bias, int act, int beta)",
     "\n\n",
     "return mct_rt_matmul(&@n@__lib, layout, M, N, K, A, lda, B, ldb, C, ldc, bias, act, beta);"},
    {"/* Batched matmul for attention (Q K^T with @U@_NT, P V with @U@_NN), grouped-query: head b uses\n"
     " * A + b*sA, B + (b/group)*sB, C + b*sC (strides in elements, >= 0); group query heads share\n"
     " * one key/value head and must divide batch (1: plain multi-head). C = or += A*B per beta. */\n",
     "int @n@_bmm(int layout, long batch, long group, long M, long N, long K, const float *A,\n"
     "           long lda, long sA, const float *B, long ldb, long sB, float *C, long ldc, long sC,\n"
     "           int beta)",
     "\n\n",
     "return mct_rt_bmm(&@n@__lib, layout, batch, group, M, N, K, A, lda, sA, B, ldb, sB, C, ldc, "
     "sC, beta);"},
    {"/* Weights packed once: copies B (the caller may free it afterwards) and packs it for every\n"
     " * tuned kernel of (layout, N, K) in the chosen table. *out is owned by the caller and freed\n"
     " * with @n@_packed_free; it may be used by several threads at once (read only). */\n"
     "typedef struct @n@_packed @n@_packed;\n",
     "int @n@_prepack_b(int layout, long N, long K, const float *B, long ldb, @n@_packed **out)",
     "\n",
     "return mct_rt_prepack_b(&@n@__lib, layout, N, K, B, ldb, (mct_rt_packed **)out);"},
    {"/* Low-precision weights (see the top of this file): fmt \"bf16\", \"i8\" or \"q4gG\" (G even, K\n"
     " * a multiple of G; \"f32\" is @n@_prepack_b). Quantizes B (layout and ldb as @n@_prepack_b)\n"
     " * and packs it for every tuned kernel of (N, K, fmt) in the chosen table. @U@_EINVAL (with\n"
     " * the reason on stderr) for an unknown format, a K the group does not divide, bad sizes or\n"
     " * ldb, B NULL, or a weight that is not finite in an i8/q4 channel. */\n",
     "int @n@_prepack_b_fmt(const char *fmt, int layout, long N, long K, const float *B, long ldb,\n"
     "                     @n@_packed **out)",
     "\n",
     "return mct_rt_prepack_b_fmt(&@n@__lib, fmt, layout, N, K, B, ldb, (mct_rt_packed **)out);"},
    {"/* The same from weights already quantized: plain holds the format's plain layout (see the top\n"
     " * of this file), copied, so the caller may free it afterwards; bytes must be exactly its size\n"
     " * (@U@_EINVAL, with both sizes on stderr, when it differs). */\n",
     "int @n@_prepack_b_quantized(const char *fmt, long N, long K, const void *plain, size_t bytes,\n"
     "                           @n@_packed **out)",
     "\n",
     "return mct_rt_prepack_b_quantized(&@n@__lib, fmt, N, K, plain, bytes, (mct_rt_packed **)out);"},
    {"/* @n@_matmul with the prepacked B (its layout, N and K; low-precision weights: its format). */\n",
     "int @n@_matmul_packed(const @n@_packed *P, long M, const float *A, long lda, float *C, long ldc,\n"
     "                     const float *bias, int act, int beta)",
     "\n",
     "return mct_rt_matmul_packed(&@n@__lib, (const mct_rt_packed *)P, M, A, lda, C, ldc, bias, "
     "act, beta);"},
    {"", "void @n@_packed_free(@n@_packed *P)", "\n\n",
     "mct_rt_packed_free((mct_rt_packed *)P);"},
    {"/* The table chosen at load time and the rung of the ladder that chose it, e.g.\n"
     " * \"GenuineIntel 6/207 avx512 0123456789abcdef (exact CPU; generic kernels avx512)\". Static\n"
     " * string, valid for the life of the process. */\n",
     "const char *@n@_cpu(void)", "\n\n", "return mct_rt_cpu(&@n@__lib);"},
    {"/* 1 when the chosen table holds a tuned kernel for (op, layout, N, K, batch, group, bias,\n"
     " * act, beta) (any M: the nearest tuned M is used), 0 when not, @U@_EINVAL for bad arguments.\n"
     " * batch and group are ignored for @U@_OP_MATMUL; bias is 0 or 1. */\n",
     "int @n@_is_tuned(int op, int layout, long M, long N, long K, long batch, long group, int bias,\n"
     "                int act, int beta)",
     "\n\n",
     "return mct_rt_is_tuned(&@n@__lib, op, layout, M, N, K, batch, group, bias, act, beta);"},
    {"/* The thread budget of the calls: each call runs the kernel tuned for the largest thread\n"
     " * count at or below it (the smallest tuned count when every one is above it), whose parallel\n"
     " * loops run on exactly that many threads. n = 0 (the default) follows OpenMP's current\n"
     " * maximum (omp_set_num_threads, OMP_NUM_THREADS; 1 inside a parallel region, or when\n"
     " * @n@.c is built without -fopenmp or with clang). Returns 0, or @U@_EINVAL for n < 0 or\n"
     " * n > 4096. Process-wide; safe to call from any thread. */\n",
     "int @n@_set_num_threads(int n)", "\n\n",
     "return mct_rt_set_num_threads(&@n@__lib, n);"},
    {"/* The thread budget a call made now would use (see @n@_set_num_threads). */\n",
     "int @n@_get_num_threads(void)", "\n\n", "return mct_rt_threads(&@n@__lib);"},
    {"/* A static name for a return code. */\n", "const char *@n@_strerror(int err)", "\n\n",
     "return mct_strerror(err);"},
};

int em_write_api_header(em *e, const char *path)
{
    FILE *f = em_open(e, path);
    if (!f)
        return e->rc;
    em_header_line(e, f, "/*", " */");
    put_tpl(f, api_h_head, e->n, e->U);
    for (size_t i = 0; i < sizeof api / sizeof api[0]; i++) {
        put_tpl(f, api[i].doc, e->n, e->U);
        put_tpl(f, api[i].sig, e->n, e->U);
        fputc(';', f);
        fputs(api[i].sep, f);
    }
    fputs("#ifdef __cplusplus\n}\n#endif\n#endif\n", f);
    return em_close(e, f, path);
}

void em_put_api(em *e, FILE *f)
{
    fputs("\n/* ---- public API ---- */\n", f);
    for (size_t i = 0; i < sizeof api / sizeof api[0]; i++) {
        put_tpl(f, api[i].sig, e->n, e->U);
        fputs("\n{\n    ", f);
        put_tpl(f, api[i].body, e->n, e->U);
        fputs("\n}\n", f);
    }
    put_tpl(f, api_c_tail, e->n, e->U);
}

static int is_id_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* Every mct_ identifier of the embedded runtime becomes NAME__mct_..., so that two generated
 * libraries, or one and libmctune, link into one program. */
static int rename_ids(em *e, FILE *f)
{
    em_set seen = {0};
    int rc = 0;
    for (size_t i = 0; i < sizeof mct_rt_embedded / sizeof mct_rt_embedded[0] && !rc; i++) {
        const char *s = mct_rt_embedded[i].text;
        for (const char *p = s; (p = strstr(p, "mct_")) && !rc; ) {
            const char *q = p;
            while (is_id_char(*q))
                q++;
            size_t len = (size_t)(q - p);
            if ((p == s || !is_id_char(p[-1])) && em_set_find(&seen, p, len) < 0) {
                rc = em_set_add(&seen, p, len, 0);
                fprintf(f, "#define %.*s %s__%.*s\n", (int)len, p, e->n, (int)len, p);
            }
            p = q;
        }
    }
    em_set_free(&seen);
    return rc ? em_fail(e, rc, "out of memory") : 0;
}

int em_put_runtime(em *e, FILE *f)
{
    fprintf(f, "/* the runtime's names, private to this library */\n");
    if (rename_ids(e, f) < 0)
        return e->rc;
    for (size_t i = 0; i < sizeof mct_rt_embedded / sizeof mct_rt_embedded[0]; i++) {
        const char *s = mct_rt_embedded[i].text;
        fprintf(f, "/* ---- %s (copied from mctune's runtime/) ---- */\n", mct_rt_embedded[i].path);
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
    return 0;
}

int em_write_build(em *e)
{
    char path[4096];
    FILE *f;
    snprintf(path, sizeof path, "%s/Makefile", e->o->out_dir);
    if (!(f = em_open(e, path)))
        return e->rc;
    em_header_line(e, f, "#", "");
    put_tpl(f, makefile_tpl, e->n, e->U);
    if (em_close(e, f, path) < 0)
        return e->rc;
    snprintf(path, sizeof path, "%s/%s.pc", e->o->out_dir, e->n);
    if (!(f = em_open(e, path)))
        return e->rc;
    em_header_line(e, f, "#", "");
    fprintf(f, "prefix=/usr/local\nlibdir=${prefix}/lib\nincludedir=${prefix}/include\n\n"
            "Name: %s\nDescription: tuned f32 inference kernels with CPU dispatch (mctune gen)\n"
            "Version: 1\nCflags: -I${includedir}\nLibs: -L${libdir} -l%s\n", e->n, e->n);
    return em_close(e, f, path);
}
