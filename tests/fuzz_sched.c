/* libFuzzer target: the schedule text parser, on a fixed matmul and a fixed bmm workload.
 * Text is refused with a reason, or parses into a schedule whose canonical text parses back to
 * the same canonical text (print, parse, print gives the same bytes). Built by `make fuzz`. */
#include "codegen/codegen.h"

#include <stdlib.h>
#include <string.h>

static void one(const char *wl, const char *text)
{
    mct_workload w;
    mct_sched *s = NULL, *s2 = NULL;
    char why[256];
    static char c1[8192], c2[8192];
    if (mct_wl_parse(wl, &w, NULL, 0) != MCT_OK)
        __builtin_trap();
    why[0] = 0;
    int rc = mct_sched_parse(&w, text, &s, why, sizeof why);
    if (rc != MCT_OK) {
        if (rc >= 0)
            __builtin_trap();
        return;
    }
    int n = mct_sched_format(s, c1, sizeof c1);
    if (n < 0)
        __builtin_trap();
    if (mct_sched_parse(&w, c1, &s2, why, sizeof why) != MCT_OK)
        __builtin_trap();
    if (mct_sched_format(s2, c2, sizeof c2) != n || strcmp(c1, c2))
        __builtin_trap();
    mct_sched_destroy(s);
    mct_sched_destroy(s2);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = 0;
    one("matmul f32 nt M=37 N=64 K=29 epi=bias+relu", text);
    one("bmm f32 nn B=8 G=2 M=5 N=16 K=12 epi=none", text);
    free(text);
    return 0;
}
