/* mctune show WORKLOAD [--schedule TEXT|@FILE] [--c|--pseudo] [--vlen N] */
#include "codegen/codegen.h"
#include "tuner/cmd/cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void help(void)
{
    printf("usage: mctune show WORKLOAD [--schedule TEXT|@FILE] [--pseudo|--c] [--vlen N]\n"
           "\n"
           "Prints the workload's schedule as a readable loop nest (what a reasoning guide reads)\n"
           "and as the C11 kernel it lowers to.\n"
           "\n"
           "  WORKLOAD          e.g. 'matmul f32 nt M=128 N=4096 K=4096 epi=none'\n"
           "                    or   'bmm f32 nt B=32 G=4 M=128 N=512 K=128 epi=none'\n"
           "  --schedule TEXT   transformations, ';'-separated, e.g.\n"
           "                    'tile(j, 32); tile(k, 16); reorder(i, j0, k0, j1, k1);\n"
           "                     cache_write(j0); unroll(j1, 32); vectorize(k1)'\n"
           "                    @FILE reads them from a file. Default: the untuned nest.\n"
           "  --pseudo | --c    print only the loop nest, or only the C\n"
           "  --vlen N          SIMD width in floats to lower for (default: this CPU's)\n");
}

int mct_cmd_show(int argc, char **argv)
{
    const char *wl_text = NULL, *sched_arg = NULL, *v;
    int only = 0; /* 1 pseudo, 2 c */
    long vlen = 0;
    for (int i = 1; i < argc; i++) {
        int r;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            help();
            return 0;
        }
        if ((r = mct_cli_opt("show", argc, argv, &i, "--schedule", &sched_arg)))
            { if (r < 0) return 2; continue; }
        if ((r = mct_cli_opt("show", argc, argv, &i, "--vlen", &v))) {
            if (r < 0 || mct_cli_int("show", "--vlen", v, 1, 16, &vlen))
                return 2;
            if (vlen != 1 && vlen != 4 && vlen != 8 && vlen != 16)
                return mct_cli_usage_error("show", "--vlen %ld: use 1, 4, 8 or 16", vlen);
            continue;
        }
        if (!strcmp(argv[i], "--pseudo")) { only = 1; continue; }
        if (!strcmp(argv[i], "--c")) { only = 2; continue; }
        if (argv[i][0] == '-' && argv[i][1])
            return mct_cli_usage_error("show", "unknown option '%s'", argv[i]);
        if (wl_text)
            return mct_cli_usage_error("show", "unexpected argument '%s' (quote the workload)",
                                       argv[i]);
        wl_text = argv[i];
    }
    if (!wl_text)
        return mct_cli_usage_error("show", "missing WORKLOAD");
    mct_workload w;
    char err[512];
    if (mct_wl_parse(wl_text, &w, err, sizeof err)) {
        fprintf(stderr, "mctune show: bad workload: %s\n", err);
        return 1;
    }
    char *stext = sched_arg ? mct_cli_text_arg("show", sched_arg) : strdup("");
    if (!stext)
        return 1;
    mct_sched *s;
    int r = mct_sched_parse(&w, stext, &s, err, sizeof err);
    free(stext);
    if (r) {
        fprintf(stderr, "mctune show: schedule refused (%s): %s\n", mct_strerror(r), err);
        return 1;
    }
    mct_target t = mct_target_host();
    if (vlen)
        t.vlen = (int)vlen, t.attr = "";
    char *ps = NULL, *cs = NULL;
    if (only != 2 && (r = mct_cg_lower_pseudo(s, &t, &ps)) == 0) {
        if (!only)
            printf("=== loop nest\n");
        fputs(ps, stdout);
    }
    if (!r && only != 1 && (r = mct_cg_lower_c(s, &t, "mct_kernel", &cs)) == 0) {
        if (!only)
            printf("\n=== C (kernel ABI: see codegen/codegen.h)\n");
        fputs(cs, stdout);
    }
    free(ps);
    free(cs);
    mct_sched_destroy(s);
    if (r) {
        fprintf(stderr, "mctune show: lowering failed: %s\n", mct_strerror(r));
        return 1;
    }
    return 0;
}
