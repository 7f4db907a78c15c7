/* The prompt the LLM guides send (mct_guide_prompt in tuner/guide.h): the workload, the CPU, the
 * node, its parent and grandparent as loop nests with costs (and their noise) and traces, the
 * node's children already measured and the proposals refused at it with their reasons, the
 * set O with its syntax and the rules of re-applying a transformation, and the task with the
 * reply format llm_reply.c parses. The prompt is the cache key of a reply (with the model and
 * PROMPT_TAG, tuner/llm_int.h), so it is built from the context alone: the same context gives
 * the same bytes. */
#include "tuner/guide.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/text.h"
#include "tuner/measure.h"

static void fmt_time(double s, char *buf, size_t len)
{
    if (s < 1e-3)
        snprintf(buf, len, "%.1f us", s * 1e6);
    else if (s < 1.0)
        snprintf(buf, len, "%.3f ms", s * 1e3);
    else
        snprintf(buf, len, "%.3f s", s);
}

/* "noise: IQR 3.1 us (4.2% of the median)" after a measured cost, or nothing when unknown. */
static void add_noise(mct_str *b, double lat, double spread)
{
    char tb[32];
    if (!(lat > 0) || !(spread > 0))
        return;
    fmt_time(spread, tb, sizeof tb);
    mct_str_addf(b, "; noise: IQR %s (%.1f%% of the median)", tb, 100.0 * spread / lat);
}

static void prompt_node(mct_str *b, const char *title, const mct_guide_node *nd,
                        const mct_guide_ctx *ctx, const mct_target *t)
{
    char tb[32];
    mct_str_addf(b, "### %s\n", title);
    mct_str_addf(b, "Trace (transformations applied to the untuned program, in order): %s\n",
                 nd->trace && *nd->trace ? nd->trace : "none (this is the untuned program)");
    if (nd->latency_s > 0) {
        fmt_time(nd->latency_s, tb, sizeof tb);
        mct_str_addf(b, "Measured cost: %s per call, %.2f GFLOP/s", tb, nd->gflops);
        if (ctx->base_latency_s > 0)
            mct_str_addf(b, ", speedup %.2fx over the untuned program",
                         ctx->base_latency_s / nd->latency_s);
        add_noise(b, nd->latency_s, nd->spread_s);
        mct_str_puts(b, "\n");
    } else {
        mct_str_puts(b, "Measured cost: none (not measured, or it failed to compile, crashed or "
                        "gave a wrong result)\n");
    }
    mct_str_addf(b, "Visits in the search tree: %d\n", nd->visits);
    char *code = NULL;
    if (nd->sched && mct_cg_lower_pseudo(nd->sched, t, &code) == 0 && code) {
        mct_str_puts(b, "Program:\n```\n");
        mct_str_puts(b, code);
        if (code[0] && code[strlen(code) - 1] != '\n')
            mct_str_puts(b, "\n");
        mct_str_puts(b, "```\n");
    }
    free(code);
    mct_str_puts(b, "\n");
}

/* The current program's canonical steps, numbered as drop(N) counts them. */
static void prompt_steps(mct_str *b, const mct_guide_node *nd)
{
    char text[4096];
    if (mct_sched_format(nd->sched, text, sizeof text) <= 0)
        return;
    mct_str_puts(b, "### Steps of the current program\n"
                    "Its schedule in canonical form, one step a line, numbered as drop(N) "
                    "counts them:\n");
    int k = 1;
    for (char *p = text; *p;) {
        while (*p == ' ' || *p == ';')
            p++;
        if (!*p)
            break;
        char *e = strchr(p, ';');
        int l = e ? (int)(e - p) : (int)strlen(p);
        mct_str_addf(b, "%d. %.*s\n", k++, l, p);
        p += l;
    }
    mct_str_puts(b, "\n");
}

static void prompt_kids(mct_str *b, const mct_guide_ctx *ctx)
{
    char tb[32];
    if (ctx->nkids <= 0 || !ctx->kids)
        return;
    mct_str_puts(b, "### Children of the current program already measured\n"
                    "Each was made from the current program by the step shown; a proposal that "
                    "builds one of these programs again is dropped as a duplicate, so propose "
                    "something else.\n");
    for (int i = 0; i < ctx->nkids; i++) {
        const mct_guide_node *k = &ctx->kids[i];
        mct_str_addf(b, "- %s: ", k->applied && *k->applied ? k->applied : "(no step)");
        if (k->latency_s > 0) {
            fmt_time(k->latency_s, tb, sizeof tb);
            mct_str_addf(b, "%s per call, %.2f GFLOP/s", tb, k->gflops);
            if (ctx->node->latency_s > 0)
                mct_str_addf(b, ", %.2fx the current program's speed",
                             ctx->node->latency_s / k->latency_s);
            add_noise(b, k->latency_s, k->spread_s);
        } else if (k->status) {
            mct_str_addf(b, "failed (%s)", mct_meas_status_name((mct_meas_status)k->status));
        } else {
            mct_str_puts(b, "not measured yet");
        }
        mct_str_puts(b, "\n");
    }
    for (int i = 0; i < ctx->nkids; i++)
        if (ctx->kids[i].applied && !strncmp(ctx->kids[i].applied, "fallback: ", 10)) {
            mct_str_puts(b, "A step that reads \"fallback: ...\" was a random edit the search "
                            "made when no proposal was usable, described in words (not "
                            "transformation syntax).\n");
            break;
        }
    mct_str_puts(b, "\n");
}

static void prompt_rejected(mct_str *b, const mct_guide_ctx *ctx)
{
    if (ctx->nrejected <= 0 || !ctx->rejected)
        return;
    mct_str_puts(b, "### Proposals rejected at the current program\n"
                    "Earlier proposals for this program that were refused, with the reason; "
                    "nothing of a refused proposal was applied.\n");
    for (int i = 0; i < ctx->nrejected; i++)
        mct_str_addf(b, "- %s: %s\n", ctx->rejected[i].text ? ctx->rejected[i].text : "",
                     ctx->rejected[i].reason ? ctx->rejected[i].reason : "");
    mct_str_puts(b, "\n");
}

int mct_guide_prompt(const mct_guide_ctx *ctx, char **out)
{
    *out = NULL;
    if (!ctx || !ctx->node || !ctx->node->sched)
        return MCT_EINVAL;
    mct_str b = {0};
    mct_target host = mct_target_host();
    const mct_target *t = ctx->target ? ctx->target : &host;
    const mct_workload *w = ctx->w ? ctx->w : mct_sched_workload(ctx->node->sched);
    int want = ctx->want > 0 ? ctx->want : 1;
    char wl[256] = "?", tb[32];
    mct_wl_format(w, wl, sizeof wl);

    mct_str_puts(&b, "You are optimizing the loop schedule of one CPU kernel. Programs are built "
                     "by applying transformations from a fixed set O to an untuned loop nest; you "
                     "choose the next transformations.\n\n");
    mct_str_puts(&b, "## Workload\n");
    mct_str_addf(&b, "%s\n", wl);
    char ex[96];
    if (w->act != MCT_ACT_NONE)
        snprintf(ex, sizeof ex, "%s(A[M,K] x B%s)", mct_act_name(w->act), w->bias ? " + bias" : "");
    else
        snprintf(ex, sizeof ex, "A[M,K] x B%s", w->bias ? " + bias" : "");
    mct_str_addf(&b, "C[M,N] %s %s, f32, row-major; B is stored %s. %.4g GFLOP per call",
                 w->beta ? "+=" : "=", ex,
                 w->layout == MCT_NT ? "[N,K] (nt, as model weights are)" : "[K,N] (nn)",
                 mct_wl_flops(w) * 1e-9);
    if (w->op == MCT_OP_BMM)
        mct_str_addf(&b, "; %lld heads (loop b), %lld query heads per key/value head",
                     (long long)w->batch, (long long)w->group);
    mct_str_puts(&b, ".\n");
    if (w->braw)
        mct_str_puts(&b, "The kernel takes B as given (b=raw): it is called with B as the caller "
                         "stores it, never packed ahead of time, so prepack is not available. "
                         "Copying B inside the kernel with pack(B, ...) costs a read and a write "
                         "of B on every call; it pays where the packed block is reused (by "
                         "several row tiles) or is what makes the vectorized loop contiguous.\n");
    if (ctx->base_latency_s > 0) {
        fmt_time(ctx->base_latency_s, tb, sizeof tb);
        mct_str_addf(&b, "The untuned program takes %s per call.\n", tb);
    }
    mct_str_puts(&b, "\n## CPU\n");
    const mct_cpu *c = ctx->cpu;
    if (c) {
        mct_tier tier = mct_cpu_tier_of(c);
        mct_str_addf(&b, "%s (%s)\n", c->brand[0] ? c->brand : "unknown model",
                     c->vendor[0] ? c->vendor : "unknown vendor");
        mct_str_addf(&b, "ISA tier: %s; %d vector registers\n", mct_tier_name(tier),
                     tier >= MCT_TIER_AVX512 ? 32 : 16);
        mct_str_puts(&b, "Caches:");
        const char *cn[4] = {"L1d", "L1i", "L2", "L3"}, *sep = " ";
        for (int i = 0; i < 4; i++)
            if (c->cache_kb[i]) {
                mct_str_addf(&b, "%s%s %u KiB", sep, cn[i], c->cache_kb[i]);
                sep = ", ";
            }
        mct_str_puts(&b, *sep == ',' ? "\n" : " unknown\n");
        mct_str_addf(&b, "Cores: %d physical, %d logical\n", c->cores, c->threads);
    } else {
        mct_str_puts(&b, "unknown\n");
    }
    mct_str_addf(&b, "Code generation: SIMD width %d f32 lanes per vector%s%s%s\n", t->vlen,
                 t->attr && *t->attr ? " (target " : "", t->attr && *t->attr ? t->attr : "",
                 t->attr && *t->attr ? ")" : "");
    mct_str_addf(&b, "The kernel runs with %d thread%s.\n\n", ctx->threads,
                 ctx->threads == 1 ? "" : "s");

    mct_str_puts(&b, "## Programs\n"
                     "The current program, its parent and its grandparent in the search tree. "
                     "Each is shown as a loop nest; its first comment lines give the workload and "
                     "the schedule in canonical form.\n\n");
    if (ctx->grand)
        prompt_node(&b, "Grandparent program", ctx->grand, ctx, t);
    if (ctx->parent)
        prompt_node(&b, "Parent program", ctx->parent, ctx, t);
    prompt_node(&b, "Current program", ctx->node, ctx, t);
    prompt_steps(&b, ctx->node);
    prompt_kids(&b, ctx);
    prompt_rejected(&b, ctx);
    mct_str_puts(&b, "Costs are medians of several timed runs on a machine that may be busy; "
                     "the IQR (interquartile range of the runs) shown with a cost is its noise, "
                     "often 5-15% of the median. A difference smaller than the noise of the two "
                     "programs compared says nothing about which is faster.\n\n");

    mct_str_addf(&b,
        "## Transformations (the set O)\n"
        "Loops are named by axis: b (heads, bmm only), i (rows of C, size M), j (columns of C, "
        "size N), k (the reduction, size K). An untiled axis has one loop named by its letter; "
        "after tile(x, f1, ...) axis x has loops x0 (outermost), x1, ... where each loop "
        "iterates within the block of the loop above. Use the names the current program has, "
        "and the names a tile in the same proposal creates. Exactly these forms are accepted:\n"
        "- tile(AXIS, f1[, f2[, f3]]): splits axis i, j or k into 2 to 4 nested loops with "
        "blocks f1 > f2 > f3 (whole numbers 1..1048576; they need not divide the size). An axis "
        "already tiled is re-tiled with the same number of factors. Tile an axis before "
        "annotating its loops.\n"
        "- reorder(L1, L2, ...): the named loops (at least two) take the positions they held, in "
        "the order given. Levels of one axis keep their order (i0 stays outside i1).\n"
        "- vectorize(L): the innermost loop becomes SIMD lanes. L must be a tiled j or k loop "
        "with a constant block of at least 4. j needs B contiguous along j (nn layout, or B "
        "packed or prepacked with a j panel); k needs A and B contiguous along k and a "
        "cache_write outside it.\n"
        "- unroll(L, N): unrolls loop L by N (1..64; 1 removes it). Fully unrolling the spatial "
        "loops inside a cache_write turns the accumulator into a register tile.\n"
        "- parallel(L): distributes loop L over the threads. One parallel loop at most; never a "
        "k loop.\n"
        "- cache_write(L): accumulates the output tile of the loops inside L locally (registers "
        "when small and unrolled; at most 4096 elements) and writes it back once. Spatial loops "
        "inside it need constant blocks; no parallel loop inside it.\n"
        "- pack(A|B, L, PANEL): copies the operand's block into a contiguous buffer at loop L. "
        "PANEL is a tiled loop of the operand's panel axis (i for A, j for B; its block, at most "
        "256, is the panel width) or k for plain rows along k.\n"
        "%s%s"
        "- fuse_epilogue(L): applies bias and activation at write-back; needs cache_write(L) at "
        "the same loop.\n"
        "- buffer(C, L): the block of C of one iteration of L is summed in a local buffer over "
        "the whole reduction (its rows an odd number of cache lines apart, so the rows of a "
        "register tile never share L1 sets, whatever C's row stride is) and written to C once, "
        "with the epilogue. L is an i or j loop outside every k loop, with the cache_write loop "
        "inside it, no parallel loop inside it, and i and j tiled at or outside it. f32 weights.\n"
        "- prefetch(A|B|C, L, DIST): software prefetch. A or B: DIST iterations (1..64) of "
        "loop L ahead. B at a j loop outside the register tile with only i loops between it and "
        "the cache_write loop (e.g. prefetch(B, j1, 1)): the whole block of B that L's iteration "
        "DIST ahead reads is prefetched into L2, each register tile inside L taking its share "
        "(the next micro-panel arrives while the row tiles still read this one). C: the output "
        "rows a register tile (cache_write) will write, DIST "
        "iterations (0..64; 0 = its own rows) of L ahead, L at or outside the cache_write loop. "
        "At most 4 prefetches.\n"
        "- drop(N): removes step N of the current program's steps (numbered above; the untuned "
        "program has none); the steps "
        "left are applied again to the untuned program. A step that later steps depend on (the "
        "tile whose loops they name) can only go with them: drop those first. Inside one "
        "proposal each transformation applies to the result of the ones before it, so after a "
        "drop the steps are numbered anew; drop the highest number first.\n"
        "Examples: \"tile(j, 256, 16)\", \"reorder(i0, j0, k0, i1, j1)\", \"vectorize(j2)\", "
        "\"unroll(i2, 4)\", \"parallel(j0)\", \"cache_write(j1)\", \"pack(B, j0, j2)\", "
        "%s\"fuse_epilogue(j1)\", \"prefetch(A, k1, 8)\", "
        "\"prefetch(C, j1, 1)\", \"drop(3)\".\n"
        "A proposal with a transformation that does not apply is rejected as a whole.\n\n"
        "Applying a transformation again:\n"
        "- tile of an axis already tiled replaces its factors (the same number of them); "
        "annotations of its loops stay.\n"
        "- vectorize, parallel and cache_write mark one loop each: naming another loop moves the "
        "mark there. fuse_epilogue belongs to the cache_write loop and moves with it.\n"
        "- unroll(L, N) on a loop already unrolled replaces its factor; unroll(L, 1) removes it.\n"
        "- pack(A|B, ...) replaces that operand's earlier pack%s.\n"
        "- prefetch of the same operand at the same loop replaces its distance; at another loop "
        "it adds a prefetch.\n"
        "- reorder moves only the loops it names.\n"
        "%s\n",
        w->braw ? "- prepack(B, PANEL[, KCHUNK]): not available for this workload (b=raw: B is "
                  "taken as given); use pack(B, L, PANEL) inside the kernel.\n"
                : "- prepack(B, PANEL[, KCHUNK]): matmul only: B (the weights) packed once ahead "
                  "of time; PANEL as for pack; KCHUNK a tiled k loop whose block is the chunk "
                  "(needs a j panel).\n",
        !MCT_WL_QUANT(w) ? ""
            : w->wfmt == MCT_RT_WF_BF16
            ? "- widen(B, reg|panel|dot|amx): B holds bf16 weights (2 bytes each, half of f32's bytes per "
              "FLOP). reg (the default): each load converts to f32; panel: pack(B, L, PANEL) "
              "inside the kernel converts its block to an f32 panel (needs that pack; a pack of "
              "B inside the kernel needs it) and the register tile then runs as for f32. "
              "prepack(B, ...) keeps bf16 panels, widened at each load. dot: never widened: A "
              "is rounded to bf16 once per row and vdpbf16ps multiplies pairs (avx512-bf16 only; "
              "needs the dot form: k vectorized innermost, B read along k). amx: AMX tiles "
              "(tier amx; A to bf16 as for dot): the cache_write block is the tile block (1-16 or "
              "32 rows, 16 or 32 columns, k blocks multiples of 32; no pack or prepack).\n"
            : "- widen(B, reg|panel|dot|amx): B holds integer weights with f32 scales (i8: 1 byte, q4: "
              "half a byte per weight, a quarter or an eighth of f32's bytes per FLOP). reg (the "
              "default): each load converts to f32 times the scale; panel: pack(B, L, PANEL) "
              "inside the kernel converts its block to an f32 panel (needs that pack; a pack of "
              "B inside the kernel needs it) and the register tile then runs as for f32. "
              "prepack(B, ...) keeps integer panels, widened at each load. dot: never widened: A "
              "is rounded to int8 once per row (scale max|a|/127) and integer dot products sum "
              "exactly (vpdpbusd on avx512-vnni, vpmaddubsw on avx2; q4 groups multiples of 32; "
              "needs the dot form: k vectorized innermost, B read along k). amx: AMX tiles (tier "
              "amx; A to int8 as for dot; q4 groups multiples of 32): the cache_write block is the "
              "tile block (1-16 or 32 rows, 16 or 32 columns, k blocks multiples of 64, or of 32 "
              "for q4 groups that are not; no pack or prepack).\n",
        w->braw ? "" : "\"prepack(B, j2, k1)\", ",
        w->op == MCT_OP_MATMUL && !w->braw ? "; prepack(B, ...) replaces B's pack or prepack, "
                                             "and pack(B, ...) is refused once B is prepacked"
                                           : "",
        w->op == MCT_OP_BMM
            ? "The head loop b (bmm): one loop, never tiled or vectorized; it may be reordered "
              "and made parallel, but it must stay outside a cache_write's tile and outside a "
              "pack's loop, and prefetches go at loops inside it. A pack sits inside b, so it "
              "is made for each query head: the query heads that share one key/value head each "
              "copy that head's B again (nothing shares a pack across them). Prefetches at "
              "loops inside b cover the current head only.\n"
            : "");

    mct_str_addf(&b,
        "## Task\n"
        "Compare the programs above and their costs: which transformations made a program "
        "faster or slower, and why, on this CPU. Reason step by step about data reuse in "
        "registers and in each cache level, the vector width, register pressure, memory "
        "bandwidth and the use of the cores. Then propose up to %d different next steps for "
        "the current program. Each proposal is a list of transformation strings from O, "
        "applied in order to the current program to make one new program.\n"
        "End your reply with one fenced JSON block holding a list of up to %d proposals, each a "
        "list of strings, and nothing after it, for example:\n"
        "```json\n"
        "[[\"tile(j, 64, 16)\", \"vectorize(j2)\"], [\"parallel(i0)\"]]\n"
        "```\n", want, want);
    *out = mct_str_take(&b);
    return *out ? 0 : MCT_ENOMEM;
}

