/* The mctune command line: one binary, one handler per subcommand.
 * A handler gets argv starting at the subcommand name and returns the process exit code:
 * 0 success, 1 the work failed, 2 a usage error (unknown option, missing argument). Error
 * messages go to stderr; a handler returns its code rather than exiting the process. */
#ifndef MCT_CLI_H
#define MCT_CLI_H

typedef int (*mct_cmd_fn)(int argc, char **argv);

int mct_cmd_show(int argc, char **argv);     /* tuner/cmd/cmd_show.c */
int mct_cmd_cpu(int argc, char **argv);      /* tuner/cmd/cmd_cpu.c */
int mct_cmd_db(int argc, char **argv);       /* tuner/cmd/cmd_db.c */
int mct_cmd_measure(int argc, char **argv);  /* tuner/cmd/cmd_measure.c */
int mct_cmd_gen(int argc, char **argv);      /* tuner/cmd/cmd_gen.c */
int mct_cmd_tune(int argc, char **argv);     /* tuner/cmd/cmd_tune.c */
int mct_cmd_shapes(int argc, char **argv);   /* tuner/cmd/cmd_shapes.c */
int mct_cmd_report(int argc, char **argv);   /* tuner/cmd/cmd_report.c */
int mct_cmd_tree(int argc, char **argv);     /* tuner/cmd/cmd_tree.c */
int mct_cmd_model(int argc, char **argv);    /* tuner/cmd/cmd_model.c */

#include "runtime/cpu.h"

/* Option helpers shared by the handlers. */

/* Prints "mctune CMD: <message>" and a pointer to --help on stderr; returns 2. */
int mct_cli_usage_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* If argv[*i] is NAME (as "--name VALUE" or "--name=VALUE"), stores VALUE in *val (a pointer
 * into argv), advances *i past it and returns 1; returns -1 (after printing a usage error) when
 * the value is missing; 0 when argv[*i] is another argument (*i and *val unchanged). */
int mct_cli_opt(const char *cmd, int argc, char **argv, int *i, const char *name,
                const char **val);

/* Parses a whole decimal integer in [lo, hi] into *out and returns 0; prints a usage error
 * naming OPT and returns -1 on anything else (*out unchanged). */
int mct_cli_int(const char *cmd, const char *opt, const char *s, long lo, long hi, long *out);

/* Reads TEXT or, when TEXT starts with '@', the contents of that file (trailing newlines, CRs
 * and spaces stripped). Returns a malloc'ed string the caller frees, or NULL after printing an
 * error (a file that cannot be read, a directory, a file holding a NUL byte); NULL without a
 * message when a copy of TEXT cannot be allocated. */
char *mct_cli_text_arg(const char *cmd, const char *text);

/* The ISA tier a command tunes or measures for and the CPU record that names it: NAME (a --tier
 * value; NULL: mct_cpu_tier(), which honours MCTUNE_TIER) at or below the host's tier. *cpu is
 * the host record, restricted to the tier when it is below the host's (mct_cpu_restrict), so
 * records tuned for avx2 on an AVX-512 machine land under a CPU key of their own whose tier is
 * avx2. Returns 0, or 2 after printing a usage error naming the value (*cpu and *tier then
 * unchanged). */
int mct_cli_tier(const char *cmd, const char *name, mct_cpu *cpu, mct_tier *tier);

#endif
