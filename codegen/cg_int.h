/* codegen internals shared by sched.c (the IR and its transformations) and lower.c (lowering).
 * Other modules never include this file. */
#ifndef MCT_CG_INT_H
#define MCT_CG_INT_H

#include "codegen/codegen.h"

#define CG_MAXLV 4     /* levels per axis: tile(x, f1, f2, f3) */
#define CG_MAXLOOPS 16
#define CG_MAXPF 4
#define CG_ACC_MAX 4096 /* elements in a cache_write accumulator */
#define CG_CBUF_MAX (1 << 22) /* elements of a buffer(C, X) block, padding included (16 MiB) */

/* Axes: b (heads, bmm only), i (rows of C), j (columns of C), k (reduction). */
enum { AX_B = 0, AX_I, AX_J, AX_K, AX_N };
enum { OPD_A = 0, OPD_B = 1, OPD_C = 2 };

typedef struct cg_axis {
    int present;
    int nlev;                /* 1: untiled */
    int64_t f[CG_MAXLV];     /* f[l] = block size entered by level l (f[0] = whole extent) */
} cg_axis;

typedef struct cg_loop {
    int axis, level;
    int vec;                 /* vectorize */
    int unroll;              /* 0 or unroll factor */
    int par;                 /* parallel */
} cg_loop;

typedef struct cg_pack {
    int on;
    int at;                  /* loop id of the level the copy happens in; -1 for prepack */
    int panel_axis;          /* AX_I (A) / AX_J (B): panel of width panel_w; AX_K: rows */
    int panel_lv;            /* level whose block is the panel width */
    int64_t panel_w;
    int kb_lv;               /* prepack only: k level whose block is the k chunk (0: none) */
    int64_t kb;
} cg_pack;

typedef struct cg_pf {
    int opd, loop;
    int dist;
} cg_pf;

struct mct_sched {
    mct_workload w;
    cg_axis ax[AX_N];
    int nloops;
    cg_loop loops[CG_MAXLOOPS];  /* indexed by loop id */
    int order[CG_MAXLOOPS];      /* loop ids, outermost first */
    int cw;                      /* cache_write loop id or -1 */
    int fuse;                    /* fuse_epilogue at cw */
    int cbuf;                    /* buffer(C, X): loop id of X or -1 */
    cg_pack pack[2];             /* A, B */
    int prepack;                 /* B prepacked (pack[OPD_B].at == -1) */
    int widen;                   /* low-precision B: where it becomes f32 (CG_WIDEN_*) */
    int npf;
    cg_pf pf[CG_MAXPF];
};

/* Where low-precision weights are widened to f32 (widen(B, reg|panel|dot)). REG: each load of B
 * converts (the default, printed by no transformation); PANEL: the pack(B) copy inside the kernel
 * converts into an f32 panel, and the register tile then is the f32 one. DOT: they are never
 * widened: the kernel rounds A per row (int8 with a per-row scale for i8 and q4, bf16 for bf16)
 * and the target's dot-product instructions multiply (lower.c, dot_path: which instruction, and
 * why none where the tile or the target lacks it; the tile then runs as REG). */
enum { CG_WIDEN_REG = 0, CG_WIDEN_PANEL = 1, CG_WIDEN_DOT = 2, CG_WIDEN_AMX = 3 };

/* widen(B, amx) (lower_amx.c): AMX tiles on bf16 or i8 weights, A rounded as for widen(B, dot).
 * The tile block: RI A tiles of TR rows (RB = RI * TR rows of C), RJ B tiles of 16 columns, k in
 * steps of KS; par: the j blocks run on the OpenMP threads. */
typedef struct cg_amx {
    int ri, tr, rj, ks, par;
} cg_amx;
/* 0 with *out when s (widen(B, amx)) lowers to AMX tiles for a target of this ISA row and tier;
 * MCT_ENOTAPPLIC with the reason in why (len bytes, may be NULL) otherwise, *out unchanged. */
int cg_amx_shape(const mct_sched *s, int isa, int tier, cg_amx *out, char *why, size_t len);
struct mct_str;
/* Appends FN_packed_size, FN_pack_b and the kernel FN of the shape a (cg_amx_shape) to b; attr_s
 * prefixes each function (the target attribute with the amx features, or ""); threads as
 * mct_target's. The text uses FN_act and FN_OMP, which the lowering defines before. */
void cg_amx_emit(struct mct_str *b, const mct_sched *s, const cg_amx *a, const char *fn,
                 const char *attr_s, int threads);

/* Largest K of widen(B, dot) and widen(B, amx) on integer weights: |sum| <= K * 255 * 127 < 2^31.
 */
#define CG_DOT_KMAX 65536

/* The layout B has inside a kernel: the workload's, except low-precision weights, which are
 * always stored with row n = output channel ([N,K], nt) whatever the f32 layout was. */
static inline int cg_b_layout(const mct_workload *w)
{
    return w->wfmt != MCT_RT_WF_F32 ? MCT_NT : (int)w->layout;
}

/* Loop id of (axis, level), or -1. */
int cg_loop_id(const mct_sched *s, int axis, int level);
/* Position of a loop id in the nest order. */
int cg_pos(const mct_sched *s, int id);
/* Name of a loop ("i", "i0", "j2", ...) into buf[8]. */
const char *cg_loop_name(const mct_sched *s, int id, char buf[8]);
/* Step of a loop: the block size its body covers (1 for the last level). */
int64_t cg_step(const mct_sched *s, int id);
/* Constant block size a loop iterates over (its parent's step), or 0 for level 0 (runtime). */
int64_t cg_extent(const mct_sched *s, int id);
/* Validates the whole state; returns 0 or MCT_ENOTAPPLIC with the reason. */
int cg_validate(const mct_sched *s, char *why, size_t len);

#endif
