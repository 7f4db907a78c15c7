/* mctune gen: write a standalone C kernel library from the tuning database. */
#include "tuner/cmd/cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/codegen.h"
#include "db/db.h"
#include "tuner/gen.h"

#define CMD "gen"

static const char *const usage_text =
    "usage: mctune gen --out DIR --name NAME [--db PATH] [--cpus host|all|KEY,...]\n"
    "                  [--model FILE] [--threads N]\n\n"
    "Writes a standalone C kernel library from the best records of the database:\n"
    "  DIR/NAME.h    the API (NAME_sgemm, NAME_matmul, NAME_bmm, NAME_prepack_b, NAME_cpu, ...)\n"
    "  DIR/NAME.c    one C11 translation unit, libc only: each CPU's tuned kernels compiled for\n"
    "                its ISA, generic kernels, dispatch tables and the CPUID runtime\n"
    "  DIR/Makefile  static and shared library, make install PREFIX=...\n"
    "  DIR/NAME.pc   for pkg-config\n"
    "Build with `cc -O2 -c NAME.c` (any -march); -fopenmp for parallel kernels;\n"
    "-DNAME_PROVIDE_CBLAS (NAME in upper case) to also define cblas_sgemm.\n\n"
    "  --cpus      whose records: all CPUs in the database (default), this host, or keys\n"
    "  --model     a model file (models/*.json) or workload keys one a line: only\n"
    "              those shapes (any M)\n"
    "  --threads   only the records tuned for N threads (default: every thread count the\n"
    "              database holds; each call runs the kernel tuned for its thread budget,\n"
    "              NAME_set_num_threads or OpenMP's maximum, the nearest tuned count at or\n"
    "              below it)\n"
    "The database is --db PATH, else $MCTUNE_DB, else $XDG_CACHE_HOME/mctune.\n";

int mct_cmd_gen(int argc, char **argv)
{
    mct_gen_opts o;
    mct_gen_report rep;
    char path[1024], err[2048];
    long threads = 0;
    memset(&o, 0, sizeof o);
    for (int i = 1; i < argc; i++) {
        const char *v;
        int r;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(usage_text, stdout);
            return 0;
        }
        if ((r = mct_cli_opt(CMD, argc, argv, &i, "--db", &o.db)) ||
            (r = mct_cli_opt(CMD, argc, argv, &i, "--out", &o.out_dir)) ||
            (r = mct_cli_opt(CMD, argc, argv, &i, "--name", &o.name)) ||
            (r = mct_cli_opt(CMD, argc, argv, &i, "--cpus", &o.cpus)) ||
            (r = mct_cli_opt(CMD, argc, argv, &i, "--model", &o.model))) {
            if (r < 0)
                return 2;
            continue;
        }
        if ((r = mct_cli_opt(CMD, argc, argv, &i, "--threads", &v))) {
            if (r < 0 || mct_cli_int(CMD, "--threads", v, 1, 65536, &threads) < 0)
                return 2;
            continue;
        }
        return mct_cli_usage_error(CMD, "unknown argument '%s'", argv[i]);
    }
    if (!o.out_dir)
        return mct_cli_usage_error(CMD, "--out DIR is required");
    if (!o.name)
        return mct_cli_usage_error(CMD, "--name NAME is required (a C identifier, e.g. mykernels)");
    if (!o.db) {
        if (mct_db_default_path(path, sizeof path) < 0) {
            fprintf(stderr, "mctune gen: no database location: set --db PATH, MCTUNE_DB, "
                    "XDG_CACHE_HOME or HOME\n");
            return 1;
        }
        o.db = path;
    }
    o.threads = (int)threads;
    o.tool = MCT_TOOL;
    if (mct_gen_library(&o, stderr, &rep, err, sizeof err) < 0) {
        fprintf(stderr, "mctune gen: %s\n", err);
        return 1;
    }
    printf("wrote %s/%s.h, %s/%s.c, %s/Makefile, %s/%s.pc: %d CPU tables, %d tuned kernels from "
           "%d records", o.out_dir, o.name, o.out_dir, o.name, o.out_dir, o.out_dir, o.name,
           rep.tables, rep.kernels, rep.records);
    if (rep.skipped)
        printf(", %d records skipped (see above)", rep.skipped);
    printf("\n");
    return 0;
}
