/* libFuzzer target: model files and Hugging Face config.json files (tuner/model.c, and the
 * derivation of `mctune shapes`, tuner/cmd/cmd_shapes.c). Each input is written to a file and:
 * - loaded as a model file (mct_tune_model_load) and as a model file or a list of workload keys
 *   (mct_tune_model_load_any; for a text starting with '{' both give the same answer): either
 *   refused with a negative code, a non-empty message and nothing loaded, or every workload
 *   passes mct_wl_check, formats and parses back to itself (the same struct, text and hash),
 *   appears once, and a model file has a name;
 * - given to `mctune shapes` as a config.json (mct_cmd_shapes, its output captured): either
 *   refused (exit 1 and a message on stderr, nothing on stdout) or it prints a model file
 *   that loads as above.
 * Built by `make fuzz` with the extra sources FUZZ_EXTRA_fuzz_model of the Makefile. */
#include "tuner/cmd/cli.h"
#include "tuner/tune_model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[512];
static char infile[600], derived[600];

static void cleanup(void)
{
    unlink(infile);
    unlink(derived);
    rmdir(dir);
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0)
        __builtin_trap();
}

/* The answer of a loader: refused properly, or workloads that are all canonical and distinct. */
static void check_loaded(const char *what, int rc, const mct_tune_model *m, const char *err,
                         int need_name)
{
    if (rc != MCT_OK) {
        if (rc >= 0 || !err[0] || m->n || m->w) {
            fprintf(stderr, "fuzz_model: %s: refusal %d with message '%s' and %d workloads\n",
                    what, rc, err, m->n);
            __builtin_trap();
        }
        return;
    }
    if (need_name && !m->name[0]) {
        fprintf(stderr, "fuzz_model: %s: a model file loaded without a name\n", what);
        __builtin_trap();
    }
    for (int i = 0; i < m->n; i++) {
        const mct_workload *w = &m->w[i];
        mct_workload back;
        char t1[256], t2[256], why[256];
        uint8_t h1[16], h2[16];
        if (mct_wl_check(w, why, sizeof why) != MCT_OK) {
            fprintf(stderr, "fuzz_model: %s: workload %d fails mct_wl_check: %s\n", what, i, why);
            __builtin_trap();
        }
        int n = mct_wl_format(w, t1, sizeof t1);
        if (n <= 0 || mct_wl_parse(t1, &back, why, sizeof why) != MCT_OK) {
            fprintf(stderr, "fuzz_model: %s: workload %d ('%s') does not parse back: %s\n", what,
                    i, n > 0 ? t1 : "?", why);
            __builtin_trap();
        }
        mct_wl_hash(w, h1);
        mct_wl_hash(&back, h2);
        if (memcmp(w, &back, sizeof back) || mct_wl_format(&back, t2, sizeof t2) != n ||
            strcmp(t1, t2) || memcmp(h1, h2, 16)) {
            fprintf(stderr, "fuzz_model: %s: workload '%s' comes back as '%s'\n", what, t1, t2);
            __builtin_trap();
        }
        for (int j = 0; j < i; j++)
            if (!memcmp(&m->w[j], w, sizeof *w)) {
                fprintf(stderr, "fuzz_model: %s: workload '%s' twice\n", what, t1);
                __builtin_trap();
            }
    }
}

static int same_model(const mct_tune_model *a, const mct_tune_model *b)
{
    return a->n == b->n && !strcmp(a->name, b->name) &&
           (!a->n || !memcmp(a->w, b->w, (size_t)a->n * sizeof *a->w));
}

/* mct_cmd_shapes on infile with stdout and stderr captured (the sanitizers and the fuzzer write
 * to file descriptor 2 directly, so a crash report is not captured). */
static int run_shapes(char **out, size_t *outlen, char **errs, size_t *errlen)
{
    char a0[] = "shapes", a1[sizeof infile];
    char *argv[] = {a0, a1, NULL};
    memcpy(a1, infile, sizeof infile);
    FILE *so = stdout, *se = stderr;
    FILE *fo = open_memstream(out, outlen), *fe = open_memstream(errs, errlen);
    if (!fo || !fe)
        __builtin_trap();
    stdout = fo;
    stderr = fe;
    int rc = mct_cmd_shapes(2, argv);
    stdout = so;
    stderr = se;
    fclose(fo);
    fclose(fe);
    return rc;
}

static void check_shapes(void)
{
    char *out = NULL, *errs = NULL, err[1024];
    size_t outlen = 0, errlen = 0;
    int rc = run_shapes(&out, &outlen, &errs, &errlen);
    if (rc != 0) {
        if (rc != 1 || !errlen || outlen) {
            fprintf(stderr, "fuzz_model: shapes: exit %d, stderr '%s', stdout %zu bytes\n", rc,
                    errs, outlen);
            __builtin_trap();
        }
    } else {
        mct_tune_model m = {0};
        write_file(derived, out, outlen);
        err[0] = 0;
        int lr = mct_tune_model_load(derived, &m, err, sizeof err);
        if (lr != MCT_OK || m.n == 0) {
            fprintf(stderr, "fuzz_model: shapes printed a model file that does not load: %s\n",
                    err);
            __builtin_trap();
        }
        check_loaded("shapes output", lr, &m, err, 1);
        mct_tune_model_free(&m);
    }
    free(out);
    free(errs);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    static int made;
    char err[1024], err2[1024];
    if (!made++) {
        const char *tmp = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/mctune-fuzz-model-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(dir))
            __builtin_trap();
        snprintf(infile, sizeof infile, "%s/config.json", dir);
        snprintf(derived, sizeof derived, "%s/derived.json", dir);
        atexit(cleanup);
    }
    write_file(infile, data, size);

    mct_tune_model m = {0}, any = {0};
    err[0] = err2[0] = 0;
    int rc = mct_tune_model_load(infile, &m, err, sizeof err);
    check_loaded("load", rc, &m, err, 1);
    if (rc == MCT_OK && m.n == 0) {
        fprintf(stderr, "fuzz_model: a model file loaded with no workloads\n");
        __builtin_trap();
    }
    int rc2 = mct_tune_model_load_any(infile, &any, err2, sizeof err2);
    check_loaded("load_any", rc2, &any, err2, 0);
    /* a text whose first non-blank character is '{' is a model file for both loaders (a NUL
     * byte ends the text the loaders see, so compare only inputs without one) */
    size_t sp = 0;
    while (sp < size && strchr(" \t\r\n", data[sp]) && data[sp])
        sp++;
    if (sp < size && data[sp] == '{' && !memchr(data, 0, size) &&
        ((rc == MCT_OK) != (rc2 == MCT_OK) || (rc == MCT_OK && !same_model(&m, &any)))) {
        fprintf(stderr, "fuzz_model: load (%d: %s) and load_any (%d: %s) disagree on a model "
                "file\n", rc, err, rc2, err2);
        __builtin_trap();
    }
    mct_tune_model_free(&m);
    mct_tune_model_free(&any);

    /* as a config.json: what `mctune shapes` derives from it loads (a NUL byte cuts the text
     * the loaders see: such inputs are checked above only) */
    if (!memchr(data, 0, size))
        check_shapes();
    return 0;
}
