/* Editing a schedule as a sequence: drop(N), the transformation of O that removes step N of the
 * canonical sequence (mct_sched_drop in codegen/codegen.h).
 *
 * The canonical text lists the resulting state, one statement per feature of the nest, so step
 * N names one feature (a tile of an axis, the order, a pack, the cache_write, an annotation of
 * one loop, a prefetch). Removing it and re-parsing the rest onto the untuned nest gives the
 * program without that feature; the parse is the legality check, so a step that others depend
 * on (the tile whose loops a later step names) cannot be dropped alone, and the reason says
 * which step failed. Only the public schedule API is used, so this stays right whatever the
 * IR adds. */
#include "codegen/codegen.h"

#include <stdio.h>
#include <string.h>

#include "codegen/cg_int.h"

/* Steps of a canonical text, split at ';': writes up to max (start, length) pairs, spaces
 * trimmed, and returns the count (the text never holds a ';' inside a step). */
static int split_steps(const char *text, const char *st[], int ln[], int max)
{
    int n = 0;
    const char *p = text;
    while (*p && n < max) {
        while (*p == ' ' || *p == ';')
            p++;
        if (!*p)
            break;
        const char *e = strchr(p, ';');
        int l = e ? (int)(e - p) : (int)strlen(p);
        while (l > 0 && p[l - 1] == ' ')
            l--;
        st[n] = p;
        ln[n] = l;
        n++;
        p = e ? e + 1 : p + strlen(p);
    }
    return n;
}

int mct_sched_drop(mct_sched *s, int step, char *why, size_t whylen)
{
    char text[4096], rest[4096];
    const char *st[CG_MAXLOOPS * 4 + 16];
    int ln[CG_MAXLOOPS * 4 + 16];
    if (why && whylen)
        why[0] = 0;
    if (mct_sched_format(s, text, sizeof text) < 0)
        return mct_errf(why, whylen, MCT_ENOTAPPLIC, "drop(%d): the schedule's text is too long "
                        "to edit", step);
    int n = split_steps(text, st, ln, (int)(sizeof st / sizeof *st));
    if (n == 0)
        return mct_errf(why, whylen, MCT_ENOTAPPLIC, "drop(%d): the program is untuned; there is "
                        "no step to drop", step);
    if (step < 1 || step > n)
        return mct_errf(why, whylen, MCT_ENOTAPPLIC, "drop(%d): the schedule has %d step%s; give "
                        "N in 1..%d (steps as its canonical schedule lists them)", step, n,
                        n == 1 ? "" : "s", n);
    size_t k = 0;
    rest[0] = 0;
    for (int i = 0; i < n; i++) {
        if (i == step - 1)
            continue;
        int w = snprintf(rest + k, sizeof rest - k, "%s%.*s", k ? "; " : "", ln[i], st[i]);
        if (w < 0 || (size_t)w >= sizeof rest - k)
            return mct_errf(why, whylen, MCT_ENOTAPPLIC, "drop(%d): the schedule's text is too "
                            "long to edit", step);
        k += (size_t)w;
    }
    mct_sched *d;
    char r_why[256] = "";
    int r = mct_sched_parse(mct_sched_workload(s), rest, &d, r_why, sizeof r_why);
    if (r == MCT_ENOMEM)
        return mct_errf(why, whylen, r, "drop(%d): out of memory", step);
    if (r)
        return mct_errf(why, whylen, MCT_ENOTAPPLIC, "drop(%d) (%.*s): the steps left do not "
                        "apply without it: %s", step, ln[step - 1], st[step - 1], r_why);
    *s = *d;
    mct_sched_destroy(d);
    return 0;
}
