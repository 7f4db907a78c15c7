/* The guide interface: dispatch through each implementation's vtable, with shared counting. */
#include "tuner/guide.h"

#include <stdio.h>
#include <string.h>

int mct_guide_propose(mct_guide *g, const mct_guide_ctx *ctx, char **out, int *n, char *err,
                      size_t errlen)
{
    *n = 0;
    if (err && errlen)
        err[0] = 0;
    g->stats.calls++;
    if (g->stats.stopped) {
        if (err && errlen)
            snprintf(err, errlen, "%s: stopped: %s", g->name, g->stats.stop_reason);
        g->stats.failures++;
        return g->stats.stop_code;
    }
    int r = g->propose(g, ctx, out, n, err, errlen);
    if (r || *n == 0)
        g->stats.failures++;
    g->stats.proposals += *n;
    return r;
}

const char *mct_guide_name(const mct_guide *g)
{
    return g->name;
}

void mct_guide_get_stats(const mct_guide *g, mct_guide_stats *out)
{
    *out = g->stats;
}

void mct_guide_destroy(mct_guide *g)
{
    if (g)
        g->destroy(g);
}
