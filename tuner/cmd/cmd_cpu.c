/* mctune cpu [--json]: this machine's CPU identity and ISA tier. */
#include "tuner/cmd/cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "db/db.h"
#include "runtime/cpu.h"
#include "tuner/baseline.h"

static void help(FILE *f)
{
    fprintf(f,
            "usage: mctune cpu [--json]\n\n"
            "Prints this machine's CPU identity: vendor, family/model/stepping, brand, ISA\n"
            "features (CPUID and the OS-enabled state from XGETBV), caches, cores, the ISA tier\n"
            "and the CPU key under which the database stores its tuning records.\n\n"
            "  --json        one JSON object (the record stored in the database, plus tier_used)\n"
            "  --tier NAME   the record `mctune tune --tier NAME` stores: this CPU restricted to\n"
            "                a lower tier (its features above that tier cleared, its own key)\n\n"
            "environment:\n"
            "  MCTUNE_TIER=NAME     use a lower tier than the host's (generic, sse4.2, avx2,\n"
            "                       avx512, avx512-bf16-vnni, amx)\n"
            "  MCTUNE_CPU_DEBUG=1   log the tier decision to stderr\n");
}

int mct_cmd_cpu(int argc, char **argv)
{
    int json = 0, r;
    const char *tier_s = NULL, *val;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            help(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--json")) {
            json = 1;
        } else if ((r = mct_cli_opt("cpu", argc, argv, &i, "--tier", &val))) {
            if (r < 0)
                return 2;
            tier_s = val;
        } else {
            return mct_cli_usage_error("cpu", "unknown argument '%s'", argv[i]);
        }
    }
    mct_cpu rec;
    mct_tier used;
    if (mct_cli_tier("cpu", tier_s, &rec, &used))
        return 2;
    const mct_cpu *c = &rec;
    mct_tier host = mct_cpu_tier_of(mct_cpu_host());
    char key[17];
    mct_cpu_key_format(mct_cpu_key(c), key);
    if (json) {
        char *s = NULL;
        if (mct_db_cpu_to_json(c, 0, &s) != MCT_OK) {
            fprintf(stderr, "mctune cpu: out of memory\n");
            return 1;
        }
        cJSON *o = cJSON_Parse(s);
        free(s);
        if (!o || !cJSON_AddStringToObject(o, "tier_used", mct_tier_name(used))) {
            cJSON_Delete(o);
            fprintf(stderr, "mctune cpu: out of memory\n");
            return 1;
        }
        s = cJSON_Print(o);
        cJSON_Delete(o);
        if (!s)
            return 1;
        printf("%s\n", s);
        free(s);
        return 0;
    }
    printf("vendor     %s\n", c->vendor[0] ? c->vendor : "(not x86)");
    printf("brand      %s\n", c->brand[0] ? c->brand : "(none)");
    printf("family     %d (0x%x)  model %d (0x%x)  stepping %d\n", c->family, c->family,
           c->model, c->model, c->stepping);
    printf("key        %s\n", key);
    if (used == host)
        printf("tier       %s\n", mct_tier_name(host));
    else
        printf("tier       %s (%s; the host supports %s: this record names its kernels tuned "
               "for %s)\n", mct_tier_name(used), tier_s ? "--tier" : "forced by MCTUNE_TIER",
               mct_tier_name(host), mct_tier_name(used));
    printf("features  ");
    int col = 11;
    for (int i = 0; i < mct_cpu_feature_count(); i++) {
        if (!mct_cpu_has(c, i))
            continue;
        const char *n = mct_cpu_feature_name(i);
        if (col + (int)strlen(n) + 1 > 96) {
            printf("\n          ");
            col = 11;
        }
        printf(" %s", n);
        col += (int)strlen(n) + 1;
    }
    printf("\n");
    printf("os state   xcr0 0x%llx (avx %s, avx-512 %s, amx tiles %s)\n",
           (unsigned long long)c->xcr0,
           (c->xcr0 & (MCT_XCR0_SSE | MCT_XCR0_YMM)) == (MCT_XCR0_SSE | MCT_XCR0_YMM) ? "on" : "off",
           (c->xcr0 & MCT_XCR0_ZMM) == MCT_XCR0_ZMM ? "on" : "off",
           (c->xcr0 & MCT_XCR0_TILE) == MCT_XCR0_TILE ? "on" : "off");
    printf("caches     L1d %u KiB, L1i %u KiB, L2 %u KiB, L3 %u KiB\n", c->cache_kb[0],
           c->cache_kb[1], c->cache_kb[2], c->cache_kb[3]);
    printf("cores      %d cores, %d threads per package\n", c->cores, c->threads);
    /* the benchmarks' forced OpenBLAS core (tuner/baseline.h), for scripts */
    const char *cores[4];
    int nc = mct_base_openblas_cores(c, used, cores, 4);
    printf("openblas   cores to force for tier %s:", mct_tier_name(used));
    for (int i = 0; i < nc; i++)
        printf(" %s", cores[i]);
    printf("%s\n", nc ? " (best first)" : " none");
    return 0;
}
