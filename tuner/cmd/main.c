/* mctune: ahead-of-time tuning database and code generator for CPU inference kernels. */
#include "tuner/cmd/cli.h"

#include <stdio.h>
#include <string.h>

#include "codegen/codegen.h"  /* MCT_VERSION */

static const struct {
    const char *name;
    mct_cmd_fn fn;
    const char *what;
} cmds[] = {
    {"show", mct_cmd_show, "print a workload's schedule as a loop nest and as C"},
    {"measure", mct_cmd_measure, "compile, check and time one schedule (optionally vs OpenBLAS)"},
    {"cpu", mct_cmd_cpu, "print this machine's CPU identity and ISA tier"},
    {"db", mct_cmd_db, "look up, list, export, import and merge tuning records"},
    {"gen", mct_cmd_gen, "write a standalone C kernel library with CPU dispatch"},
    {"tune", mct_cmd_tune, "search the fastest schedules of a model's layers into the database"},
    {"shapes", mct_cmd_shapes, "derive a model file from a Hugging Face config.json"},
    {"report", mct_cmd_report, "plot sample efficiency and tabulate speedups of a tuning log"},
    {"tree", mct_cmd_tree, "draw the search tree of one workload in a tuning log (Graphviz)"},
    {"model", mct_cmd_model, "train the learned cost model, or report its held-out ranking"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: mctune COMMAND [ARGS...]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        fprintf(f, "  %-9s %s\n", cmds[i].name, cmds[i].what);
    fprintf(f, "\n'mctune COMMAND --help' describes each command.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("mctune %s\n", MCT_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (!strcmp(argv[1], cmds[i].name))
            return cmds[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "mctune: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
