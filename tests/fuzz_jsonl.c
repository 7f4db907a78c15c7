/* libFuzzer target: the JSON Lines import parser (mct_db_item_parse). Every line either is
 * refused with a message or parses into an item whose formatted line parses back to the same
 * line (the export/import round trip). Built by `make fuzz`. */
#include "db/db.h"

#include <stdlib.h>
#include <string.h>

static void one(const char *line, size_t len)
{
    mct_db_item it, back;
    char err[512], *s1 = NULL, *s2 = NULL;
    err[0] = 0;
    int rc = mct_db_item_parse(line, len, &it, err, sizeof err);
    if (rc != MCT_OK) {
        if (rc >= 0 || !err[0])
            __builtin_trap();  /* a refusal must carry a code and a message */
        return;
    }
    if (mct_db_item_format(&it, &s1) != MCT_OK)
        __builtin_trap();
    if (mct_db_item_parse(s1, strlen(s1), &back, err, sizeof err) != MCT_OK)
        __builtin_trap();
    if (mct_db_item_format(&back, &s2) != MCT_OK || strcmp(s1, s2))
        __builtin_trap();
    free(s1);
    free(s2);
    mct_db_item_clear(&it);
    mct_db_item_clear(&back);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    const char *p = (const char *)data, *end = p + size;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        char *line = malloc(len + 1);
        if (!line)
            return 0;
        memcpy(line, p, len);
        line[len] = 0;
        one(line, len);
        free(line);
        p += len + 1;
    }
    return 0;
}
