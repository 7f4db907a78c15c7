/* The guide interface: dispatch through each implementation's vtable, with shared counting and
 * the stop rule; the random draws the search and the guides share. */
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

uint64_t mct_guide_rand(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

double mct_guide_unif(uint64_t *state)
{
    return (double)(mct_guide_rand(state) >> 11) * (1.0 / 9007199254740992.0);
}
