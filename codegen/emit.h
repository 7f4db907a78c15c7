/* codegen emission: tables of parsed schedules held in memory -> a standalone C kernel library.
 *
 * mct_emit_library writes into one folder:
 *   NAME.h     the API (NAME_sgemm, NAME_matmul, NAME_bmm, NAME_prepack_b, NAME_cpu, ...), a
 *              documented contract;
 *   NAME.c     one C11 translation unit, libc only: the runtime of runtime/ embedded (its mct_
 *              names made private as NAME__mct_...), each table's kernels lowered for the
 *              table's ISA and its CPU's tier under target attributes, generic kernels per ISA
 *              tier, the dispatch tables (one per CPU, walked by runtime/dispatch.c) and the
 *              public API;
 *   Makefile   static and shared library, make install;
 *   NAME.pc    pkg-config.
 * The first line of each names the tool, the code generator (MCT_CG_VERSION), the caller's
 * account of where the kernels came from, and the date. The bytes written are a function of
 * the arguments alone.
 *
 * The emitter does not know where kernels come from (`mctune gen` reads them from the tuning
 * database: tuner/gen.h); it only needs what is below.
 *
 * Kernels are named as STYLE.md has it, op, dtype, ISA, register tile and a hash of the
 * content: k_matmul_f32_avx512_6x32_3fa9c2d1. A kernel's content is its workload, its schedule
 * (canonical text) and the ISA it is lowered for, which together fix the lowered C; kernels of
 * equal content, in one table or in several, are one function, written once. Two different
 * contents whose names would be equal (the hash is 32 bits) get a suffix: NAME_2, NAME_3, ...
 */
#ifndef MCT_EMIT_H
#define MCT_EMIT_H

#include <stddef.h>
#include <stdint.h>

#include "codegen/codegen.h"
#include "runtime/cpu.h"

/* One tuned kernel. Nothing is kept after mct_emit_library returns. */
typedef struct mct_emit_kernel {
    const mct_sched *sched; /* the parsed schedule (owned by the caller); its workload
                             * (mct_sched_workload), M included, is the kernel's: the table
                             * serves that workload's family (mct_wl_same_family) and picks
                             * among its Ms with the nearest-M rule */
    double gflops;          /* measured: in the dispatch table and the kernel's comment */
    /* how it was measured, for the comment only (NULL reads as "") */
    double median_ns;
    const char *search, *guide, *compiler, *flags;
    double base_gflops;     /* the fastest library on the same call when measured beside it
                             * (0: not measured): the cblas drop-in skips a kernel slower than it */
    int threads;            /* the thread count it was tuned for (>= 1; 0 reads as 1): lowered
                             * into the kernel (its parallel loops run on that many threads) and
                             * what the runtime matches against the caller's thread budget */
} mct_emit_kernel;

/* The kernels tuned on one CPU. */
typedef struct mct_emit_table {
    mct_cpu cpu;                /* the CPU they were tuned on: its key, label and ISA tier are
                                 * what the runtime's ladder matches (runtime/dispatch.h) */
    int isa;                    /* mct_isa_id the kernels are lowered for, usually
                                 * mct_isa_of_tier(mct_cpu_tier_of(&cpu)); then for the CPU's
                                 * own tier too (mct_isa_code_tier: its dot products), which
                                 * dispatch requires of the host */
    const mct_emit_kernel *k;   /* in any order; at most one kernel per workload and thread
                                 * count */
    int nk;                     /* 0: the table is named in a comment and left out */
} mct_emit_table;

typedef struct mct_emit_opts {
    const char *name;       /* library name, see mct_emit_name_ok */
    const char *out_dir;    /* created when absent (one level) */
    const char *tool;       /* the generating tool, e.g. MCT_TOOL */
    const char *source;     /* where the kernels came from, for the first lines (NULL: none),
                             * e.g. "database signature schema 1, mctune-cg 1, 11 records, ..." */
    int64_t time;           /* the date written, in seconds since 1970 (UTC), 0 to
                             * 253402300799 (the caller decides: now, or SOURCE_DATE_EPOCH) */
} mct_emit_opts;

/* What was written. */
typedef struct mct_emit_report {
    int tables;             /* tables with kernels */
    int kernels;            /* distinct kernel functions */
} mct_emit_report;

/* 1 when name can name a library: 1 to 40 of [a-z0-9_], not first a digit, not starting with
 * "mct_" (the runtime's names) and not "cblas"; else 0 (NULL included). */
int mct_emit_name_ok(const char *name);

/* Writes the library of the nt tables t (numbered by position in the output: NAME__t0, ...).
 * o and t are only read, and nothing of them is kept. Returns 0 and fills *rep (may be NULL;
 * written on success only), or a negative code with err (errlen bytes, may be NULL) saying what
 * was wrong, the first failure only: MCT_EINVAL (an unusable name, no out_dir, time out of
 * range, nt < 0, a table whose ISA is out of range or whose nk is negative or has no k array, a
 * kernel without a schedule, two kernels for one workload in a table), MCT_ERANGE (a workload or
 * schedule text too long to format), MCT_EIO (the folder or a file cannot be created or written:
 * err names the path and the system's reason), MCT_ENOMEM, or the code of a kernel that does not
 * lower (err names the kernel). Files already written are then left as they are. */
int mct_emit_library(const mct_emit_opts *o, const mct_emit_table *t, int nt, char *err,
                     size_t errlen, mct_emit_report *rep);

#endif
