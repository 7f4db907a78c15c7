/* The schedule IR: a loop nest over axes b, i, j, k, changed by the transformations of O.
 * Transformations change the state structurally; legality is judged on the resulting state as a
 * whole (cg_validate), so a sequence is accepted or refused as one unit and nothing half-applied
 * survives a refusal. */
#include "codegen/cg_int.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static const char axis_ch[AX_N] = {'b', 'i', 'j', 'k'};

/* The one reason prepack is refused on a b=raw workload (apply and the whole-state check). */
#define BRAW_NO_PREPACK \
    "prepack B: this workload takes B as given (b=raw); pack B inside the kernel instead"

static int64_t dim_of(const mct_workload *w, int ax)
{
    switch (ax) {
    case AX_B: return w->batch;
    case AX_I: return w->M;
    case AX_J: return w->N;
    default: return w->K;
    }
}

int cg_loop_id(const mct_sched *s, int axis, int level)
{
    for (int id = 0; id < s->nloops; id++)
        if (s->loops[id].axis == axis && s->loops[id].level == level)
            return id;
    return -1;
}

int cg_pos(const mct_sched *s, int id)
{
    for (int p = 0; p < s->nloops; p++)
        if (s->order[p] == id)
            return p;
    return -1;
}

const char *cg_loop_name(const mct_sched *s, int id, char buf[8])
{
    const cg_loop *l = &s->loops[id];
    if (s->ax[l->axis].nlev == 1)
        snprintf(buf, 8, "%c", axis_ch[l->axis]);
    else
        snprintf(buf, 8, "%c%d", axis_ch[l->axis], l->level);
    return buf;
}

int64_t cg_step(const mct_sched *s, int id)
{
    const cg_loop *l = &s->loops[id];
    const cg_axis *a = &s->ax[l->axis];
    return l->level + 1 < a->nlev ? a->f[l->level + 1] : 1;
}

int64_t cg_extent(const mct_sched *s, int id)
{
    const cg_loop *l = &s->loops[id];
    return l->level == 0 ? 0 : s->ax[l->axis].f[l->level];
}

/* Rebuilds the loop table after a tile: levels of one axis replace its old loops in place. */
static void set_levels(mct_sched *s, int axis, int nlev)
{
    int old = s->ax[axis].nlev;
    int first_pos = -1;
    /* remove old loops of the axis, remembering where the first one stood */
    int keep[CG_MAXLOOPS], nk = 0, remap[CG_MAXLOOPS];
    cg_loop nl[CG_MAXLOOPS];
    for (int p = 0; p < s->nloops; p++) {
        int id = s->order[p];
        if (s->loops[id].axis == axis) {
            if (first_pos < 0)
                first_pos = nk;
            continue;
        }
        keep[nk++] = id;
    }
    (void)old;
    int n = 0, order[CG_MAXLOOPS];
    for (int p = 0; p <= nk; p++) {
        if (p == first_pos)
            for (int l = 0; l < nlev; l++) {
                nl[n] = (cg_loop){.axis = axis, .level = l};
                order[n] = n;
                n++;
            }
        if (p < nk) {
            nl[n] = s->loops[keep[p]];
            remap[keep[p]] = n;
            order[n] = n;
            n++;
        }
    }
    /* references to loops of other axes move with them; references to this axis are dropped
     * by the caller (a tile only happens on an axis whose levels carry no references) */
    if (s->cw >= 0)
        s->cw = s->loops[s->cw].axis == axis ? -1 : remap[s->cw];
    if (s->cbuf >= 0)
        s->cbuf = s->loops[s->cbuf].axis == axis ? -1 : remap[s->cbuf];
    for (int o = 0; o < 2; o++)
        if (s->pack[o].on && s->pack[o].at >= 0)
            s->pack[o].at = remap[s->pack[o].at];
    for (int q = 0; q < s->npf; q++)
        s->pf[q].loop = remap[s->pf[q].loop];
    memcpy(s->loops, nl, sizeof nl);
    memcpy(s->order, order, sizeof order);
    s->nloops = n;
    s->ax[axis].nlev = nlev;
}

int mct_sched_create(const mct_workload *w, mct_sched **out)
{
    char err[256];
    int r = mct_wl_check(w, err, sizeof err);
    if (r)
        return r;
    mct_sched *s = calloc(1, sizeof *s);
    if (!s)
        return MCT_ENOMEM;
    s->w = *w;
    s->cw = -1;
    s->cbuf = -1;
    for (int a = 0; a < AX_N; a++) {
        if (a == AX_B && w->op != MCT_OP_BMM)
            continue;
        s->ax[a].present = 1;
        s->ax[a].nlev = 1;
        s->ax[a].f[0] = dim_of(w, a);
        s->loops[s->nloops] = (cg_loop){.axis = a, .level = 0};
        s->order[s->nloops] = s->nloops;
        s->nloops++;
    }
    *out = s;
    return 0;
}

void mct_sched_destroy(mct_sched *s)
{
    free(s);
}

int mct_sched_clone(const mct_sched *s, mct_sched **out)
{
    mct_sched *c = malloc(sizeof *c);
    if (!c)
        return MCT_ENOMEM;
    *c = *s;
    *out = c;
    return 0;
}

const mct_workload *mct_sched_workload(const mct_sched *s)
{
    return &s->w;
}

int mct_sched_prepacked(const mct_sched *s)
{
    return s->prepack;
}

int mct_sched_reg_tile(const mct_sched *s, int *rows, int *cols)
{
    int mi = 1, ju = 0, jvec = 0;
    for (int p = 0; p < s->nloops; p++) {
        const cg_loop *l = &s->loops[s->order[p]];
        if (l->axis == AX_I && l->unroll)
            mi = l->unroll;
        if (l->axis == AX_J && l->unroll)
            ju = l->unroll;
        jvec |= l->axis == AX_J && l->vec;
    }
    const cg_axis *j = &s->ax[AX_J];
    int64_t jlast = j->nlev > 1 ? j->f[j->nlev - 1] : 0;
    *rows = mi;
    *cols = jvec && jlast ? (int)jlast : ju ? ju : 1;
    return 0;
}

int mct_sched_loops(const mct_sched *s, const char **names, int max)
{
    static _Thread_local char bufs[CG_MAXLOOPS][8];
    int n = 0;
    for (int p = 0; p < s->nloops && n < max; p++) {
        cg_loop_name(s, s->order[p], bufs[p]);
        names[n++] = bufs[p];
    }
    return n;
}

/* ---- parsing one transformation ---------------------------------------------------------- */

#define MAXARGS 12

typedef struct {
    char name[24];
    int nargs;
    char args[MAXARGS][24];
} tx_t;

/* Splits "name(a, b, c)" at *p; advances *p past it and a following separator. */
static int parse_tx(const char **p, tx_t *t, char *why, size_t len)
{
    const char *s = *p;
    while (isspace((unsigned char)*s))
        s++;
    int n = 0;
    while (isalnum((unsigned char)*s) || *s == '_') {
        if (n + 1 >= (int)sizeof t->name)
            return mct_errf(why, len, MCT_EINVAL, "transformation name too long near '%.20s'", *p);
        t->name[n++] = *s++;
    }
    t->name[n] = 0;
    if (!n)
        return mct_errf(why, len, MCT_EINVAL, "expected a transformation near '%.30s'", s);
    while (isspace((unsigned char)*s))
        s++;
    if (*s != '(')
        return mct_errf(why, len, MCT_EINVAL, "%s: expected '(' after the name", t->name);
    s++;
    t->nargs = 0;
    for (;;) {
        while (isspace((unsigned char)*s))
            s++;
        if (*s == ')' && t->nargs == 0) {
            s++;
            break;
        }
        int m = 0;
        if (t->nargs == MAXARGS)
            return mct_errf(why, len, MCT_EINVAL, "%s: too many arguments", t->name);
        /* accept an optional name= prefix (at=, loop=, ...) for readability */
        const char *a0 = s;
        while (isalnum((unsigned char)*s) || *s == '_' || *s == '-' || *s == '"' || *s == '\'') {
            if (m + 1 >= 24)
                return mct_errf(why, len, MCT_EINVAL, "%s: argument too long", t->name);
            if (*s != '"' && *s != '\'')
                t->args[t->nargs][m++] = *s;
            s++;
        }
        if (*s == '=' && m) {
            s++;
            m = 0;
            while (isspace((unsigned char)*s))
                s++;
            while (isalnum((unsigned char)*s) || *s == '_' || *s == '-' || *s == '"' ||
                   *s == '\'') {
                if (m + 1 >= 24)
                    return mct_errf(why, len, MCT_EINVAL, "%s: argument too long", t->name);
                if (*s != '"' && *s != '\'')
                    t->args[t->nargs][m++] = *s;
                s++;
            }
        }
        t->args[t->nargs][m] = 0;
        if (!m)
            return mct_errf(why, len, MCT_EINVAL, "%s: empty or malformed argument near '%.20s'",
                         t->name, a0);
        t->nargs++;
        while (isspace((unsigned char)*s))
            s++;
        if (*s == ',') {
            s++;
            continue;
        }
        if (*s == ')') {
            s++;
            break;
        }
        return mct_errf(why, len, MCT_EINVAL, "%s: expected ',' or ')' near '%.20s'", t->name, s);
    }
    while (isspace((unsigned char)*s))
        s++;
    if (*s == ';' || *s == ',')
        s++;
    *p = s;
    return 0;
}

static int find_loop(const mct_sched *s, const char *name, const char *tx, int *id, char *why,
                     size_t len)
{
    char buf[8];
    for (int q = 0; q < s->nloops; q++)
        if (!strcmp(cg_loop_name(s, q, buf), name)) {
            *id = q;
            return 0;
        }
    char list[160] = "";
    for (int p = 0; p < s->nloops; p++) {
        strcat(list, " ");
        strcat(list, cg_loop_name(s, s->order[p], buf));
    }
    return mct_errf(why, len, MCT_ENOTAPPLIC, "%s %s: no loop named '%s' (loops:%s)", tx, name, name,
                 list);
}

static int parse_num(const char *tx, const char *a, long lo, long hi, long *v, char *why,
                     size_t len)
{
    char *end;
    long x = strtol(a, &end, 10);
    if (*end || end == a)
        return mct_errf(why, len, MCT_EINVAL, "%s: '%s' is not a whole number", tx, a);
    if (x < lo || x > hi)
        return mct_errf(why, len, MCT_ENOTAPPLIC, "%s: %ld is out of range [%ld, %ld]", tx, x, lo, hi);
    *v = x;
    return 0;
}

static int opd_of(const char *tx, const char *a, int *o, char *why, size_t len)
{
    if (!strcmp(a, "A"))
        *o = OPD_A;
    else if (!strcmp(a, "B"))
        *o = OPD_B;
    else
        return mct_errf(why, len, MCT_EINVAL, "%s: operand '%s' must be A or B", tx, a);
    return 0;
}

/* Panel layout argument: a loop of the operand's panel axis (its block is the panel width), or
 * "k" for plain rows along k. */
static int parse_layout(mct_sched *s, const char *tx, int opd, const char *a, cg_pack *pk,
                        char *why, size_t len)
{
    if (!strcmp(a, "k")) {
        pk->panel_axis = AX_K;
        pk->panel_lv = 0;
        pk->panel_w = 1;
        return 0;
    }
    int id, r = find_loop(s, a, tx, &id, why, len);
    if (r)
        return r;
    int want = opd == OPD_A ? AX_I : AX_J;
    const cg_loop *l = &s->loops[id];
    if (l->axis != want || l->level == 0)
        return mct_errf(why, len, MCT_ENOTAPPLIC,
                     "%s: layout '%s' must be a tiled %c loop (its block is the panel width) or "
                     "'k' for rows", tx, a, axis_ch[want]);
    pk->panel_axis = want;
    pk->panel_lv = l->level;
    pk->panel_w = s->ax[want].f[l->level];
    if (pk->panel_w > 256)
        return mct_errf(why, len, MCT_ENOTAPPLIC, "%s: panel width %lld (block of %s) is over 256",
                     tx, (long long)pk->panel_w, a);
    return 0;
}

/* Drops annotations that name levels of `axis` deeper than nlev (none may exist: checked). */
static int axis_referenced(const mct_sched *s, int axis)
{
    for (int id = 0; id < s->nloops; id++)
        if (s->loops[id].axis == axis &&
            (s->loops[id].vec || s->loops[id].par || s->loops[id].unroll))
            return 1;
    if (s->cw >= 0 && s->loops[s->cw].axis == axis)
        return 1;
    if (s->cbuf >= 0 && s->loops[s->cbuf].axis == axis)
        return 1;
    for (int o = 0; o < 2; o++)
        if (s->pack[o].on && ((s->pack[o].at >= 0 && s->loops[s->pack[o].at].axis == axis) ||
                              (s->pack[o].panel_axis == axis && s->pack[o].panel_lv > 0)))
            return 1;
    for (int q = 0; q < s->npf; q++)
        if (s->loops[s->pf[q].loop].axis == axis)
            return 1;
    return 0;
}

static int apply_one(mct_sched *s, const tx_t *t, char *why, size_t len)
{
    const char *n = t->name;
    char tx[64];
    snprintf(tx, sizeof tx, "%s", n);
    int r, id;
    long v;
    if (!strcmp(n, "tile")) {
        if (t->nargs < 2 || t->nargs > CG_MAXLV)
            return mct_errf(why, len, MCT_EINVAL, "tile: expects tile(LOOP, f1[, f2[, f3]])");
        const char *an = t->args[0];
        int axis = -1;
        for (int a = 0; a < AX_N; a++)
            if (an[0] == axis_ch[a] && (an[1] == 0 || isdigit((unsigned char)an[1])))
                axis = a;
        if (axis < 0 || !s->ax[axis].present)
            return mct_errf(why, len, MCT_ENOTAPPLIC, "tile %s: no axis named '%s' (axes: i j k)",
                         an, an);
        if (axis == AX_B)
            return mct_errf(why, len, MCT_ENOTAPPLIC,
                         "tile b: the head loop is not tiled (each head is its own matmul)");
        int64_t f[CG_MAXLV];
        f[0] = dim_of(&s->w, axis);
        for (int q = 1; q < t->nargs; q++) {
            if ((r = parse_num("tile", t->args[q], 1, 1 << 20, &v, why, len)))
                return r;
            f[q] = v;
            if (q > 1 && f[q] >= f[q - 1])
                return mct_errf(why, len, MCT_ENOTAPPLIC,
                             "tile %s: factors must decrease from outer to inner (%lld then %lld)",
                             an, (long long)f[q - 1], (long long)f[q]);
        }
        int nlev = t->nargs;
        if (s->ax[axis].nlev != 1 && s->ax[axis].nlev != nlev)
            return mct_errf(why, len, MCT_ENOTAPPLIC,
                         "tile %s: already tiled into %d loops; re-tile with %d factors",
                         an, s->ax[axis].nlev, s->ax[axis].nlev - 1);
        if (s->ax[axis].nlev == 1) {
            if (axis_referenced(s, axis))
                return mct_errf(why, len, MCT_ENOTAPPLIC,
                             "tile %s: annotations name the untiled loop; tile before them", an);
            set_levels(s, axis, nlev);
        }
        memcpy(s->ax[axis].f, f, sizeof f);
        /* panel widths follow the blocks they name */
        for (int o = 0; o < 2; o++)
            if (s->pack[o].on && s->pack[o].panel_axis == axis && s->pack[o].panel_lv > 0)
                s->pack[o].panel_w = f[s->pack[o].panel_lv];
        if (axis == AX_K && s->pack[OPD_B].on && s->pack[OPD_B].kb_lv > 0)
            s->pack[OPD_B].kb = f[s->pack[OPD_B].kb_lv];
        return 0;
    }
    if (!strcmp(n, "reorder")) {
        if (t->nargs < 2)
            return mct_errf(why, len, MCT_EINVAL, "reorder: name at least two loops");
        int ids[CG_MAXLOOPS], pos[CG_MAXLOOPS];
        for (int q = 0; q < t->nargs; q++) {
            if (t->nargs > s->nloops)
                return mct_errf(why, len, MCT_ENOTAPPLIC, "reorder: more loops than the nest has");
            if ((r = find_loop(s, t->args[q], "reorder", &ids[q], why, len)))
                return r;
            for (int z = 0; z < q; z++)
                if (ids[z] == ids[q])
                    return mct_errf(why, len, MCT_EINVAL, "reorder: loop %s named twice",
                                 t->args[q]);
            pos[q] = cg_pos(s, ids[q]);
        }
        /* the named loops fill the positions they held, in the order given */
        for (int a = 1; a < t->nargs; a++)
            for (int b = a; b > 0 && pos[b] < pos[b - 1]; b--) {
                int x = pos[b];
                pos[b] = pos[b - 1];
                pos[b - 1] = x;
            }
        for (int q = 0; q < t->nargs; q++)
            s->order[pos[q]] = ids[q];
        return 0;
    }
    if (!strcmp(n, "vectorize") || !strcmp(n, "parallel") || !strcmp(n, "cache_write") ||
        !strcmp(n, "fuse_epilogue")) {
        if (t->nargs != 1)
            return mct_errf(why, len, MCT_EINVAL, "%s: expects %s(LOOP)", n, n);
        if ((r = find_loop(s, t->args[0], n, &id, why, len)))
            return r;
        if (n[0] == 'v') {
            for (int q = 0; q < s->nloops; q++)
                s->loops[q].vec = 0;
            s->loops[id].vec = 1;
        } else if (n[0] == 'p') {
            for (int q = 0; q < s->nloops; q++)
                s->loops[q].par = 0;
            s->loops[id].par = 1;
        } else if (n[0] == 'c') {
            s->cw = id;
        } else {
            if (s->cw != id)
                return mct_errf(why, len, MCT_ENOTAPPLIC,
                             "fuse_epilogue %s: the epilogue can only be fused where the output "
                             "tile is written back; add cache_write(%s) first", t->args[0],
                             t->args[0]);
            s->fuse = 1;
        }
        return 0;
    }
    if (!strcmp(n, "unroll")) {
        if (t->nargs != 2)
            return mct_errf(why, len, MCT_EINVAL, "unroll: expects unroll(LOOP, N)");
        if ((r = find_loop(s, t->args[0], n, &id, why, len)))
            return r;
        if ((r = parse_num("unroll", t->args[1], 1, 64, &v, why, len)))
            return r;
        s->loops[id].unroll = v == 1 ? 0 : (int)v;
        return 0;
    }
    if (!strcmp(n, "pack")) {
        int o = 0;
        if (t->nargs != 3)
            return mct_errf(why, len, MCT_EINVAL, "pack: expects pack(A|B, LOOP, LAYOUT)");
        if ((r = opd_of("pack", t->args[0], &o, why, len)))
            return r;
        if (o == OPD_B && s->prepack)
            return mct_errf(why, len, MCT_ENOTAPPLIC, "pack B: B is already prepacked");
        cg_pack pk = {.on = 1};
        if ((r = find_loop(s, t->args[1], "pack", &pk.at, why, len)))
            return r;
        if ((r = parse_layout(s, "pack", o, t->args[2], &pk, why, len)))
            return r;
        s->pack[o] = pk;
        return 0;
    }
    if (!strcmp(n, "prepack")) {
        if (t->nargs < 2 || t->nargs > 3 || strcmp(t->args[0], "B"))
            return mct_errf(why, len, MCT_EINVAL, "prepack: expects prepack(B, LAYOUT[, KCHUNK])");
        if (s->w.op != MCT_OP_MATMUL)
            return mct_errf(why, len, MCT_ENOTAPPLIC,
                         "prepack B: bmm operands are activations, not weights packed ahead of "
                         "time");
        if (s->w.braw)
            return mct_errf(why, len, MCT_ENOTAPPLIC, "%s", BRAW_NO_PREPACK);
        cg_pack pk = {.on = 1, .at = -1};
        if ((r = parse_layout(s, "prepack", OPD_B, t->args[1], &pk, why, len)))
            return r;
        if (t->nargs == 3) {
            int kid;
            if ((r = find_loop(s, t->args[2], "prepack", &kid, why, len)))
                return r;
            if (s->loops[kid].axis != AX_K || s->loops[kid].level == 0)
                return mct_errf(why, len, MCT_ENOTAPPLIC,
                             "prepack B: k chunk '%s' must be a tiled k loop (its block is the "
                             "chunk)", t->args[2]);
            if (pk.panel_axis != AX_J)
                return mct_errf(why, len, MCT_ENOTAPPLIC,
                             "prepack B: a k chunk needs a j panel layout");
            pk.kb_lv = s->loops[kid].level;
            pk.kb = s->ax[AX_K].f[pk.kb_lv];
        }
        s->pack[OPD_B] = pk;
        s->prepack = 1;
        return 0;
    }
    if (!strcmp(n, "widen")) {
        if (t->nargs != 2 || strcmp(t->args[0], "B"))
            return mct_errf(why, len, MCT_EINVAL, "widen: expects widen(B, reg|panel|dot|amx)");
        if (!MCT_WL_QUANT(&s->w))
            return mct_errf(why, len, MCT_ENOTAPPLIC, "widen B: the weights are f32 already "
                            "(widen applies to w=bf16, i8 or q4gG workloads)");
        if (!strcmp(t->args[1], "reg"))
            s->widen = CG_WIDEN_REG;
        else if (!strcmp(t->args[1], "panel"))
            s->widen = CG_WIDEN_PANEL;
        else if (!strcmp(t->args[1], "dot"))
            s->widen = CG_WIDEN_DOT;
        else if (!strcmp(t->args[1], "amx"))
            s->widen = CG_WIDEN_AMX;
        else
            return mct_errf(why, len, MCT_EINVAL, "widen B: '%s' is not a place (use reg: at each "
                            "load, panel: into the f32 panel of pack(B), dot: the target's "
                            "integer or bf16 dot-product instructions, or amx: AMX tiles)",
                            t->args[1]);
        return 0;
    }
    if (!strcmp(n, "prefetch")) {
        int o = 0;
        if (t->nargs != 3)
            return mct_errf(why, len, MCT_EINVAL, "prefetch: expects prefetch(A|B, LOOP, DISTANCE)");
        if (!strcmp(t->args[0], "C"))
            o = OPD_C;
        else if ((r = opd_of("prefetch", t->args[0], &o, why, len)))
            return r;
        if ((r = find_loop(s, t->args[1], "prefetch", &id, why, len)))
            return r;
        if ((r = parse_num("prefetch", t->args[2], o == OPD_C ? 0 : 1, 64, &v, why, len)))
            return r;
        for (int q = 0; q < s->npf; q++)
            if (s->pf[q].opd == o && s->pf[q].loop == id) {
                s->pf[q].dist = (int)v;
                return 0;
            }
        if (s->npf == CG_MAXPF)
            return mct_errf(why, len, MCT_ENOTAPPLIC, "prefetch: at most %d prefetches", CG_MAXPF);
        s->pf[s->npf++] = (cg_pf){.opd = o, .loop = id, .dist = (int)v};
        return 0;
    }
    if (!strcmp(n, "buffer")) {
        if (t->nargs != 2 || strcmp(t->args[0], "C"))
            return mct_errf(why, len, MCT_EINVAL, "buffer: expects buffer(C, LOOP)");
        if ((r = find_loop(s, t->args[1], "buffer", &id, why, len)))
            return r;
        s->cbuf = id;
        return 0;
    }
    if (!strcmp(n, "drop")) {
        if (t->nargs != 1)
            return mct_errf(why, len, MCT_EINVAL, "drop: expects drop(STEP)");
        if ((r = parse_num("drop", t->args[0], 1, 64, &v, why, len)))
            return r;
        return mct_sched_drop(s, (int)v, why, len);
    }
    return mct_errf(why, len, MCT_EINVAL,
                 "'%s' is not a transformation (use tile, reorder, vectorize, unroll, parallel, "
                 "cache_write, buffer, pack, prepack, widen, fuse_epilogue, prefetch, drop)", n);
}

int mct_sched_apply(mct_sched *s, const char *text, char *why, size_t whylen)
{
    mct_sched tmp = *s;
    const char *p = text;
    int r;
    if (why && whylen)
        why[0] = 0;
    for (;;) {
        while (isspace((unsigned char)*p) || *p == ';')
            p++;
        if (!*p)
            break;
        tx_t t;
        if ((r = parse_tx(&p, &t, why, whylen)))
            return r;
        if ((r = apply_one(&tmp, &t, why, whylen)))
            return r;
    }
    if ((r = cg_validate(&tmp, why, whylen)))
        return r;
    *s = tmp;
    return 0;
}

int mct_sched_parse(const mct_workload *w, const char *text, mct_sched **out, char *why,
                    size_t whylen)
{
    mct_sched *s;
    int r = mct_sched_create(w, &s);
    if (r)
        return mct_errf(why, whylen, r, "invalid workload");
    if ((r = mct_sched_apply(s, text ? text : "", why, whylen))) {
        mct_sched_destroy(s);
        return r;
    }
    *out = s;
    return 0;
}

/* ---- legality of a whole state --------------------------------------------------------- */

/* The block (constant extent) of axis `ax` as seen inside the body of the loop at position p,
 * or 0 when it is the whole (runtime) axis. */
static int64_t block_inside(const mct_sched *s, int ax, int p)
{
    int64_t b = 0;
    for (int q = 0; q <= p; q++) {
        int id = s->order[q];
        if (s->loops[id].axis == ax) {
            int64_t st = cg_step(s, id);
            if (s->loops[id].level + 1 < s->ax[ax].nlev)
                b = st;
            else
                b = 1;
        }
    }
    return b;
}

int cg_validate(const mct_sched *s, char *why, size_t len)
{
    char nb[8], nb2[8];
    const mct_workload *w = &s->w;
    /* levels of each axis stay in order */
    for (int a = 0; a < AX_N; a++) {
        int last = -1;
        for (int p = 0; p < s->nloops; p++) {
            int id = s->order[p];
            if (s->loops[id].axis != a)
                continue;
            if (s->loops[id].level < last)
                return mct_errf(why, len, MCT_ENOTAPPLIC,
                             "reorder: %s must stay outside %c%d (%c%d iterates within %s's "
                             "block)", cg_loop_name(s, id, nb), axis_ch[a], last, axis_ch[a],
                             last, nb);
            last = s->loops[id].level;
        }
    }
    int inner = s->order[s->nloops - 1], npar = 0;
    for (int id = 0; id < s->nloops; id++) {
        const cg_loop *l = &s->loops[id];
        cg_loop_name(s, id, nb);
        if (l->par) {
            npar++;
            if (l->axis == AX_K)
                return mct_errf(why, len, MCT_ENOTAPPLIC,
                             "parallel %s: a reduction loop; threads would race on C", nb);
        }
        if (l->vec) {
            if (id != inner)
                return mct_errf(why, len, MCT_ENOTAPPLIC,
                             "vectorize %s: not the innermost loop (innermost is %s)", nb,
                             cg_loop_name(s, inner, nb2));
            if (l->axis == AX_I || l->axis == AX_B)
                return mct_errf(why, len, MCT_ENOTAPPLIC,
                             "vectorize %s: C is row-major, so %c is strided; vectorize a j or k "
                             "loop", nb, axis_ch[l->axis]);
            if (l->level == 0 || cg_extent(s, id) < 4)
                return mct_errf(why, len, MCT_ENOTAPPLIC,
                             "vectorize %s: needs a tiled loop with a constant block of at least "
                             "4 (tile %c first)", nb, axis_ch[l->axis]);
            if (l->axis == AX_J) {
                const cg_pack *pb = &s->pack[OPD_B];
                int bcontig = (cg_b_layout(w) == MCT_NN && !pb->on) ||
                              (pb->on && pb->panel_axis == AX_J);
                if (!bcontig)
                    return mct_errf(why, len, MCT_ENOTAPPLIC,
                                 "vectorize %s: j is strided in B (%s); pack or prepack B with a "
                                 "j panel, or vectorize k", nb,
                                 pb->on ? "packed as rows along k" : "stored [N,K], nt");
            } else {
                const cg_pack *pa = &s->pack[OPD_A], *pb = &s->pack[OPD_B];
                if (pa->on && pa->panel_axis != AX_K)
                    return mct_errf(why, len, MCT_ENOTAPPLIC,
                                 "vectorize %s: A is packed in i panels, so k is strided in it; "
                                 "pack A as rows (layout k)", nb);
                int bcontig = (cg_b_layout(w) == MCT_NT && !pb->on) ||
                              (pb->on && pb->panel_axis == AX_K);
                if (!bcontig)
                    return mct_errf(why, len, MCT_ENOTAPPLIC,
                                 "vectorize %s: k is strided in B (%s); pack B as rows (layout "
                                 "k), or vectorize j", nb,
                                 pb->on ? "packed in j panels" : "stored [K,N], nn");
                if (s->cw < 0)
                    return mct_errf(why, len, MCT_ENOTAPPLIC,
                                 "vectorize %s: a vectorized reduction needs cache_write outside "
                                 "it (lanes are summed at write-back)", nb);
            }
        }
    }
    if (npar > 1)
        return mct_errf(why, len, MCT_ENOTAPPLIC, "parallel: only one loop may be parallel");
    if (s->cw >= 0) {
        int p = cg_pos(s, s->cw);
        int64_t acc = 1;
        cg_loop_name(s, s->cw, nb);
        for (int q = p + 1; q < s->nloops; q++) {
            const cg_loop *l = &s->loops[s->order[q]];
            if (l->axis == AX_K)
                continue;
            if (l->axis == AX_B)
                return mct_errf(why, len, MCT_ENOTAPPLIC,
                             "cache_write %s: the head loop b is inside it; move b outside", nb);
            if (l->par)
                return mct_errf(why, len, MCT_ENOTAPPLIC,
                             "cache_write %s: parallel loop %s is inside the accumulated tile",
                             nb, cg_loop_name(s, s->order[q], nb2));
        }
        for (int a = AX_I; a <= AX_J; a++) {
            int has_inner = 0;
            for (int q = p + 1; q < s->nloops; q++)
                if (s->loops[s->order[q]].axis == a)
                    has_inner = 1;
            if (!has_inner)
                continue;
            int64_t b = block_inside(s, a, p);
            if (b == 0)
                return mct_errf(why, len, MCT_ENOTAPPLIC,
                             "cache_write %s: loop %c inside it has no constant extent; tile %c "
                             "and keep an outer level outside %s", nb, axis_ch[a], axis_ch[a], nb);
            acc *= b;
        }
        if (acc > CG_ACC_MAX)
            return mct_errf(why, len, MCT_ENOTAPPLIC,
                         "cache_write %s: the accumulated tile has %lld elements (limit %d)", nb,
                         (long long)acc, CG_ACC_MAX);
        if (s->fuse && w->beta && w->act != MCT_ACT_NONE) {
            /* the cache_write loop itself runs the tile once per iteration: it counts too */
            for (int q = 0; q <= p; q++)
                if (s->loops[s->order[q]].axis == AX_K)
                    return mct_errf(why, len, MCT_ENOTAPPLIC,
                                 "fuse_epilogue %s: with beta=1 and %s the whole reduction must "
                                 "finish inside the tile, but k loop %s is outside it", nb,
                                 mct_act_name(w->act), cg_loop_name(s, s->order[q], nb2));
        }
    }
    if (s->fuse && s->cw < 0)
        return mct_errf(why, len, MCT_ENOTAPPLIC, "fuse_epilogue: needs a cache_write at the same "
                     "loop");
    if (s->cbuf >= 0) {
        int p = cg_pos(s, s->cbuf);
        cg_loop_name(s, s->cbuf, nb);
        if (MCT_WL_QUANT(w))
            return mct_errf(why, len, MCT_ENOTAPPLIC, "buffer(C, %s): the low-precision kernels "
                            "write C from tiles of their own; buffer f32 kernels only", nb);
        if (s->loops[s->cbuf].axis == AX_K)
            return mct_errf(why, len, MCT_ENOTAPPLIC, "buffer(C, %s): a reduction loop; buffer "
                            "at an i, j or b loop outside every k loop", nb);
        if (s->cw < 0 || cg_pos(s, s->cw) <= p)
            return mct_errf(why, len, MCT_ENOTAPPLIC, "buffer(C, %s): needs the output tile "
                            "(cache_write) inside %s", nb, nb);
        for (int q = 0; q <= p; q++)
            if (s->loops[s->order[q]].axis == AX_K)
                return mct_errf(why, len, MCT_ENOTAPPLIC, "buffer(C, %s): k loop %s is outside "
                                "it; the buffer holds its block of C over the whole reduction, "
                                "so every k loop must be inside %s", nb,
                                cg_loop_name(s, s->order[q], nb2), nb);
        for (int q = p + 1; q < s->nloops; q++) {
            const cg_loop *l = &s->loops[s->order[q]];
            if (l->par)
                return mct_errf(why, len, MCT_ENOTAPPLIC, "buffer(C, %s): parallel loop %s is "
                                "inside it, and its threads would share one buffer; make a loop "
                                "at or outside %s parallel", nb, cg_loop_name(s, s->order[q], nb2),
                                nb);
            if (l->axis == AX_B)
                return mct_errf(why, len, MCT_ENOTAPPLIC, "buffer(C, %s): the head loop b is "
                                "inside it; move b outside", nb);
        }
        int64_t bi = block_inside(s, AX_I, p), bj = block_inside(s, AX_J, p);
        if (bi == 0 || bj == 0)
            return mct_errf(why, len, MCT_ENOTAPPLIC, "buffer(C, %s): its block of C has no "
                            "constant size (%c is not tiled at or outside %s); tile i and j with "
                            "a level outside %s", nb, bi == 0 ? 'i' : 'j', nb, nb);
        if (bi * (bj + 32) > CG_CBUF_MAX)
            return mct_errf(why, len, MCT_ENOTAPPLIC, "buffer(C, %s): its block of C has %lld x "
                            "%lld elements (limit %d); buffer at a loop with a smaller block", nb,
                            (long long)bi, (long long)bj, CG_CBUF_MAX);
    }
    if (s->prepack && w->braw)
        return mct_errf(why, len, MCT_ENOTAPPLIC, "%s", BRAW_NO_PREPACK);
    if (MCT_WL_QUANT(w)) {
        int kpack = s->pack[OPD_B].on && s->pack[OPD_B].at >= 0;
        if (s->widen == CG_WIDEN_PANEL && !kpack)
            return mct_errf(why, len, MCT_ENOTAPPLIC, "widen(B, panel): needs pack(B, LOOP, "
                            "LAYOUT) inside the kernel to hold the f32 panel (or widen(B, reg))");
        if (s->widen != CG_WIDEN_PANEL && kpack)
            return mct_errf(why, len, MCT_ENOTAPPLIC, "pack B inside the kernel on low-precision "
                            "weights: add widen(B, panel) (the panel holds f32; a low-precision "
                            "panel comes from prepack(B))");
        /* the int8 paths sum exact products in int32 lanes: K * 255 * 127 must fit */
        if ((s->widen == CG_WIDEN_DOT || s->widen == CG_WIDEN_AMX) &&
            w->wfmt != MCT_RT_WF_BF16 && w->K > CG_DOT_KMAX)
            return mct_errf(why, len, MCT_ENOTAPPLIC, "widen(B, %s): K=%lld exceeds %d, beyond "
                            "which int32 sums of int8 products may overflow (use widen(B, reg))",
                            s->widen == CG_WIDEN_AMX ? "amx" : "dot", (long long)w->K,
                            CG_DOT_KMAX);
    } else if (s->widen != CG_WIDEN_REG)
        return mct_errf(why, len, MCT_ENOTAPPLIC, "widen B: the weights are f32 already");
    for (int o = 0; o < 2; o++) {
        const cg_pack *pk = &s->pack[o];
        if (!pk->on)
            continue;
        const char *on = o == OPD_A ? "A" : "B";
        if (pk->panel_axis != AX_K) {
            int pid = cg_loop_id(s, pk->panel_axis, pk->panel_lv);
            if (pid < 0 || s->ax[pk->panel_axis].f[pk->panel_lv] != pk->panel_w)
                return mct_errf(why, len, MCT_ENOTAPPLIC, "pack %s: its panel loop no longer exists",
                             on);
            if (pk->panel_w > 256)
                return mct_errf(why, len, MCT_ENOTAPPLIC,
                             "pack %s: panel width %lld is over 256; use a smaller %c tile", on,
                             (long long)pk->panel_w, "bijk"[pk->panel_axis]);
        }
        if (pk->kb_lv > 0) {
            if (pk->kb_lv >= s->ax[AX_K].nlev || s->ax[AX_K].f[pk->kb_lv] != pk->kb)
                return mct_errf(why, len, MCT_ENOTAPPLIC,
                             "prepack B: its k chunk loop no longer exists");
        }
        if (pk->at < 0)
            continue;
        int p = cg_pos(s, pk->at);
        cg_loop_name(s, pk->at, nb);
        if (w->op == MCT_OP_BMM) {
            int bp = cg_pos(s, cg_loop_id(s, AX_B, 0));
            if (bp > p)
                return mct_errf(why, len, MCT_ENOTAPPLIC,
                             "pack %s at %s: the head loop b must be outside the pack", on, nb);
        }
        /* the packed region must be inside the accumulator's scope or outside it entirely */
        if (s->cw >= 0 && p > cg_pos(s, s->cw)) {
            for (int q = cg_pos(s, s->cw) + 1; q <= p; q++)
                if (s->loops[s->order[q]].axis != AX_K)
                    return mct_errf(why, len, MCT_ENOTAPPLIC,
                                 "pack %s at %s: inside the register tile of cache_write; pack "
                                 "at a loop outside the tile's spatial loops", on, nb);
        }
        (void)block_inside;
    }
    for (int q = 0; q < s->npf; q++) {
        if (s->pf[q].loop >= s->nloops)
            return mct_errf(why, len, MCT_ENOTAPPLIC, "prefetch: loop no longer exists");
        /* the operands of one head exist only inside the head loop b */
        for (int p = 0; p < s->nloops && s->w.op == MCT_OP_BMM; p++) {
            int id = s->order[p];
            if (s->loops[id].axis == AX_B)
                break;
            if (id == s->pf[q].loop) {
                char nb[8];
                return mct_errf(why, len, MCT_ENOTAPPLIC, "prefetch at %s: the loop is outside "
                                "the head loop b, where no head's operands exist yet; prefetch at "
                                "a loop inside b", cg_loop_name(s, id, nb));
            }
        }
    }
    return 0;
}

/* ---- carrying a schedule over to the b=raw variant ----------------------------------------- */

/* Iterations of loop id at the workload's sizes: its block, clamped to the size, over its step. */
static int64_t trips(const mct_sched *s, int id)
{
    const cg_loop *l = &s->loops[id];
    int64_t blk = s->ax[l->axis].f[l->level], size = dim_of(&s->w, l->axis), st = cg_step(s, id);
    if (blk > size)
        blk = size;
    return (blk + st - 1) / st;
}

int mct_sched_without_prepack(const mct_sched *in, mct_sched **out)
{
    *out = NULL;
    if (in->w.op != MCT_OP_MATMUL || MCT_WL_QUANT(&in->w))
        return MCT_EINVAL;
    mct_sched c = *in;
    c.w.braw = 1;
    if (c.prepack) {
        cg_pack pk = c.pack[OPD_B];
        pk.kb_lv = 0;
        pk.kb = 0;
        c.prepack = 0;
        /* Packing at position p copies B once per iteration of the i loops outside p: each
         * block of B inside p is copied once per call when no i loop outside p iterates.
         * The outermost loop is outside every p, so it does not count. Among the positions with
         * the least copying, the deepest has the smallest buffer; the register tile
         * (cache_write) is the limit, and a j block narrower than the panel would pad it. */
        int p = 1;
        while (p < c.nloops && !(c.loops[c.order[p]].axis == AX_I && trips(&c, c.order[p]) > 1))
            p++;
        p--;
        int cap = c.cw >= 0 ? cg_pos(&c, c.cw) : c.nloops - 2;
        if (p > cap)
            p = cap;
        while (pk.panel_axis == AX_J && p > 0) {
            int64_t b = block_inside(&c, AX_J, p);
            if (b == 0 || b >= pk.panel_w)
                break;
            p--;
        }
        int ok = 0;
        for (; p >= 0 && !ok; p--) {
            c.pack[OPD_B] = pk;
            c.pack[OPD_B].at = c.order[p];
            ok = cg_validate(&c, NULL, 0) == 0;
        }
        if (!ok)
            memset(&c.pack[OPD_B], 0, sizeof c.pack[OPD_B]);
    }
    if (cg_validate(&c, NULL, 0))
        return MCT_ENOTAPPLIC;
    return mct_sched_clone(&c, out);
}

/* ---- canonical text -------------------------------------------------------------------- */

static int append(char *buf, size_t len, size_t *n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int append(char *buf, size_t len, size_t *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(*n < len ? buf + *n : NULL, *n < len ? len - *n : 0, fmt, ap);
    va_end(ap);
    if (k < 0)
        return MCT_ERANGE;
    *n += (size_t)k;
    return 0;
}

int mct_sched_format(const mct_sched *s, char *buf, size_t len)
{
    size_t n = 0;
    char nb[8], nb2[8];
    const char *sep = "";
#define SEP() (append(buf, len, &n, "%s", sep), sep = "; ")
    if (len)
        buf[0] = 0;
    for (int a = AX_I; a <= AX_K; a++) {
        if (s->ax[a].nlev == 1)
            continue;
        SEP();
        append(buf, len, &n, "tile(%c", axis_ch[a]);
        for (int l = 1; l < s->ax[a].nlev; l++)
            append(buf, len, &n, ", %lld", (long long)s->ax[a].f[l]);
        append(buf, len, &n, ")");
    }
    /* reorder only when the order differs from the default (axes in b i j k order, levels
     * nested) */
    int dflt = 1;
    for (int p = 1; p < s->nloops; p++) {
        const cg_loop *x = &s->loops[s->order[p - 1]], *y = &s->loops[s->order[p]];
        if (x->axis > y->axis || (x->axis == y->axis && x->level > y->level))
            dflt = 0;
    }
    if (!dflt) {
        SEP();
        append(buf, len, &n, "reorder(");
        for (int p = 0; p < s->nloops; p++)
            append(buf, len, &n, "%s%s", p ? ", " : "", cg_loop_name(s, s->order[p], nb));
        append(buf, len, &n, ")");
    }
    for (int o = 0; o < 2; o++) {
        const cg_pack *pk = &s->pack[o];
        if (!pk->on)
            continue;
        const char *lay = pk->panel_axis == AX_K ? "k"
                          : cg_loop_name(s, cg_loop_id(s, pk->panel_axis, pk->panel_lv), nb2);
        SEP();
        if (pk->at < 0 && pk->kb_lv > 0) {
            char nb3[8];
            append(buf, len, &n, "prepack(B, %s, %s)", lay,
                   cg_loop_name(s, cg_loop_id(s, AX_K, pk->kb_lv), nb3));
        } else if (pk->at < 0)
            append(buf, len, &n, "prepack(B, %s)", lay);
        else
            append(buf, len, &n, "pack(%s, %s, %s)", o ? "B" : "A",
                   cg_loop_name(s, pk->at, nb), lay);
    }
    if (s->widen != CG_WIDEN_REG) {
        static const char *const wn[] = {"reg", "panel", "dot", "amx"};
        SEP();
        append(buf, len, &n, "widen(B, %s)", wn[s->widen]);
    }
    if (s->cw >= 0) {
        SEP();
        append(buf, len, &n, "cache_write(%s)", cg_loop_name(s, s->cw, nb));
        if (s->fuse) {
            SEP();
            append(buf, len, &n, "fuse_epilogue(%s)", nb);
        }
    }
    if (s->cbuf >= 0) {
        SEP();
        append(buf, len, &n, "buffer(C, %s)", cg_loop_name(s, s->cbuf, nb));
    }
    for (int p = 0; p < s->nloops; p++) {
        int id = s->order[p];
        const cg_loop *l = &s->loops[id];
        cg_loop_name(s, id, nb);
        if (l->par) {
            SEP();
            append(buf, len, &n, "parallel(%s)", nb);
        }
        if (l->unroll) {
            SEP();
            append(buf, len, &n, "unroll(%s, %d)", nb, l->unroll);
        }
        if (l->vec) {
            SEP();
            append(buf, len, &n, "vectorize(%s)", nb);
        }
    }
    for (int o = 0; o < 3; o++)
        for (int p = 0; p < s->nloops; p++)
            for (int q = 0; q < s->npf; q++)
                if (s->pf[q].opd == o && s->pf[q].loop == s->order[p]) {
                    SEP();
                    append(buf, len, &n, "prefetch(%s, %s, %d)", o == 2 ? "C" : o ? "B" : "A",
                           cg_loop_name(s, s->pf[q].loop, nb), s->pf[q].dist);
                }
#undef SEP
    if (n >= len)
        return MCT_ERANGE;
    return (int)n;
}

void mct_sched_hash(const mct_sched *s, uint8_t out[16])
{
    char buf[4096];
    int n = mct_sched_format(s, buf, sizeof buf);
    mct_hash_text(buf, n > 0 ? (size_t)n : 0, out);
}
