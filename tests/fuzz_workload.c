/* libFuzzer target: the workload text parser. Text is refused with a message, or parses into a
 * workload whose canonical text parses back to the same workload and the same text and hash.
 * Built by `make fuzz`. */
#include "codegen/codegen.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    char *text = malloc(size + 1), err[256], c1[256], c2[256];
    mct_workload w, w2;
    uint8_t h1[16], h2[16];
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = 0;
    err[0] = 0;
    int rc = mct_wl_parse(text, &w, err, sizeof err);
    if (rc != MCT_OK) {
        if (rc >= 0 || !err[0])
            __builtin_trap();
        free(text);
        return 0;
    }
    if (mct_wl_check(&w, NULL, 0) != MCT_OK)
        __builtin_trap();
    int n = mct_wl_format(&w, c1, sizeof c1);
    if (n <= 0 || (size_t)n != strlen(c1))
        __builtin_trap();
    if (mct_wl_parse(c1, &w2, err, sizeof err) != MCT_OK)
        __builtin_trap();
    if (mct_wl_format(&w2, c2, sizeof c2) != n || strcmp(c1, c2))
        __builtin_trap();
    mct_wl_hash(&w, h1);
    mct_wl_hash(&w2, h2);
    if (memcmp(h1, h2, 16))
        __builtin_trap();
    free(text);
    return 0;
}
