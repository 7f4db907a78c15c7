/* CPU identity: CPUID/XGETBV probe, ISA tiers, CPU key. libc only; baseline ISA only. */
#include "runtime/cpu.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint64_t mct_fnv64(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* ---- feature table ------------------------------------------------------------------------ */

#define W_XCR0 MCT_CPUID_NWORDS  /* pseudo word: the OS-enabled state, tested as a whole mask */

static const struct {
    const char *name;
    int word;
    uint32_t mask;
} feats[] = {
    {"sse3", MCT_CPUID_1_ECX, 1u << 0},
    {"pclmulqdq", MCT_CPUID_1_ECX, 1u << 1},
    {"ssse3", MCT_CPUID_1_ECX, 1u << 9},
    {"fma", MCT_CPUID_1_ECX, 1u << 12},
    {"sse4.1", MCT_CPUID_1_ECX, 1u << 19},
    {"sse4.2", MCT_CPUID_1_ECX, 1u << 20},
    {"movbe", MCT_CPUID_1_ECX, 1u << 22},
    {"popcnt", MCT_CPUID_1_ECX, 1u << 23},
    {"aes", MCT_CPUID_1_ECX, 1u << 25},
    {"xsave", MCT_CPUID_1_ECX, 1u << 26},
    {"osxsave", MCT_CPUID_1_ECX, 1u << 27},
    {"avx", MCT_CPUID_1_ECX, 1u << 28},
    {"f16c", MCT_CPUID_1_ECX, 1u << 29},
    {"hypervisor", MCT_CPUID_1_ECX, 1u << 31},
    {"sse", MCT_CPUID_1_EDX, 1u << 25},
    {"sse2", MCT_CPUID_1_EDX, 1u << 26},
    {"bmi1", MCT_CPUID_7_EBX, 1u << 3},
    {"avx2", MCT_CPUID_7_EBX, 1u << 5},
    {"bmi2", MCT_CPUID_7_EBX, 1u << 8},
    {"avx512f", MCT_CPUID_7_EBX, 1u << 16},
    {"avx512dq", MCT_CPUID_7_EBX, 1u << 17},
    {"avx512ifma", MCT_CPUID_7_EBX, 1u << 21},
    {"avx512cd", MCT_CPUID_7_EBX, 1u << 28},
    {"avx512bw", MCT_CPUID_7_EBX, 1u << 30},
    {"avx512vl", MCT_CPUID_7_EBX, 1u << 31},
    {"avx512vbmi", MCT_CPUID_7_ECX, 1u << 1},
    {"avx512vbmi2", MCT_CPUID_7_ECX, 1u << 6},
    {"avx512vnni", MCT_CPUID_7_ECX, 1u << 11},
    {"avx512bitalg", MCT_CPUID_7_ECX, 1u << 12},
    {"avx512vpopcntdq", MCT_CPUID_7_ECX, 1u << 14},
    {"avx512vp2intersect", MCT_CPUID_7_EDX, 1u << 8},
    {"amx-bf16", MCT_CPUID_7_EDX, 1u << 22},
    {"avx512fp16", MCT_CPUID_7_EDX, 1u << 23},
    {"amx-tile", MCT_CPUID_7_EDX, 1u << 24},
    {"amx-int8", MCT_CPUID_7_EDX, 1u << 25},
    {"avxvnni", MCT_CPUID_71_EAX, 1u << 4},
    {"avx512bf16", MCT_CPUID_71_EAX, 1u << 5},
    {"amx-fp16", MCT_CPUID_71_EAX, 1u << 21},
    {"avxvnniint8", MCT_CPUID_71_EDX, 1u << 4},
    {"lahf_lm", MCT_CPUID_81_ECX, 1u << 0},
    {"abm", MCT_CPUID_81_ECX, 1u << 5},
    {"sse4a", MCT_CPUID_81_ECX, 1u << 6},
    {"fma4", MCT_CPUID_81_ECX, 1u << 16},
    {"topoext", MCT_CPUID_81_ECX, 1u << 22},
    {"lm", MCT_CPUID_81_EDX, 1u << 29},
    {"xsaveopt", MCT_CPUID_D1_EAX, 1u << 0},
    {"xsavec", MCT_CPUID_D1_EAX, 1u << 1},
    {"os-avx", W_XCR0, MCT_XCR0_SSE | MCT_XCR0_YMM},
    {"os-avx512", W_XCR0, MCT_XCR0_SSE | MCT_XCR0_YMM | MCT_XCR0_ZMM},
    {"os-amx", W_XCR0, MCT_XCR0_TILE},
};
#define NFEATS ((int)(sizeof feats / sizeof feats[0]))

int mct_cpu_feature_count(void) { return NFEATS; }

const char *mct_cpu_feature_name(int i)
{
    return i >= 0 && i < NFEATS ? feats[i].name : NULL;
}

int mct_cpu_has(const mct_cpu *c, int i)
{
    if (i < 0 || i >= NFEATS)
        return 0;
    uint32_t w = feats[i].word == W_XCR0 ? (uint32_t)c->xcr0 : c->feat[feats[i].word];
    return (w & feats[i].mask) == feats[i].mask;
}

int mct_cpu_set(mct_cpu *c, int i)
{
    if (i < 0 || i >= NFEATS)
        return MCT_EINVAL;
    if (feats[i].word == W_XCR0)
        c->xcr0 |= feats[i].mask;
    else
        c->feat[feats[i].word] |= feats[i].mask;
    return MCT_OK;
}

int mct_cpu_feature_find(const char *name)
{
    for (int i = 0; i < NFEATS; i++)
        if (!strcmp(feats[i].name, name))
            return i;
    return MCT_ENOTFOUND;
}

/* ---- tiers -------------------------------------------------------------------------------- */

static const char *const tier_names[MCT_TIER_COUNT] = {
    "generic", "sse4.2", "avx2", "avx512", "avx512-bf16-vnni", "amx",
};

const char *mct_tier_name(mct_tier t)
{
    return (int)t >= 0 && t < MCT_TIER_COUNT ? tier_names[t] : "?";
}

static int lower_eq(const char *a, const char *b)
{
    for (; *a && *b; a++, b++) {
        char x = *a >= 'A' && *a <= 'Z' ? (char)(*a - 'A' + 'a') : *a;
        if (x != *b)
            return 0;
    }
    return *a == *b;
}

int mct_tier_parse(const char *s, mct_tier *out)
{
    static const struct { const char *name; mct_tier t; } alias[] = {
        {"sse42", MCT_TIER_SSE42}, {"sse4_2", MCT_TIER_SSE42}, {"avx2+fma", MCT_TIER_AVX2},
        {"avx512_bf16vnni", MCT_TIER_AVX512_BF16VNNI}, {"avx512-bf16", MCT_TIER_AVX512_BF16VNNI},
        {"avx512_bf16_vnni", MCT_TIER_AVX512_BF16VNNI},
    };
    if (!s)
        return MCT_EINVAL;
    for (int t = 0; t < MCT_TIER_COUNT; t++)
        if (lower_eq(s, tier_names[t])) {
            *out = (mct_tier)t;
            return MCT_OK;
        }
    for (size_t i = 0; i < sizeof alias / sizeof alias[0]; i++)
        if (lower_eq(s, alias[i].name)) {
            *out = alias[i].t;
            return MCT_OK;
        }
    return MCT_EINVAL;
}

static int has_all(const mct_cpu *c, const char *const *names)
{
    for (; *names; names++)
        if (!mct_cpu_has(c, mct_cpu_feature_find(*names)))
            return 0;
    return 1;
}

mct_tier mct_cpu_tier_of(const mct_cpu *c)
{
    static const char *const sse42[] = {"sse2", "ssse3", "sse4.1", "sse4.2", "popcnt", NULL};
    static const char *const avx2[] = {"osxsave", "os-avx", "avx", "avx2", "fma", NULL};
    static const char *const avx512[] = {"os-avx512", "avx512f", "avx512cd", "avx512bw",
                                         "avx512dq", "avx512vl", NULL};
    static const char *const bf16[] = {"avx512bf16", "avx512vnni", NULL};
    static const char *const amx[] = {"os-amx", "amx-tile", "amx-bf16", "amx-int8", NULL};
    mct_tier t = MCT_TIER_GENERIC;
    if (!has_all(c, sse42))
        return t;
    t = MCT_TIER_SSE42;
    if (!has_all(c, avx2))
        return t;
    t = MCT_TIER_AVX2;
    if (!has_all(c, avx512))
        return t;
    t = MCT_TIER_AVX512;
    if (!has_all(c, bf16))
        return t;
    t = MCT_TIER_AVX512_BF16VNNI;
    if (!has_all(c, amx))
        return t;
    return MCT_TIER_AMX;
}

/* Features that code of a tier below `keep` must not see. Anything not listed survives every
 * restriction (sse2, bmi, ...). */
static const struct { const char *name; mct_tier keep; } tier_feats[] = {
    {"ssse3", MCT_TIER_SSE42}, {"sse4.1", MCT_TIER_SSE42}, {"sse4.2", MCT_TIER_SSE42},
    {"popcnt", MCT_TIER_SSE42},
    {"avx", MCT_TIER_AVX2}, {"avx2", MCT_TIER_AVX2}, {"fma", MCT_TIER_AVX2},
    {"f16c", MCT_TIER_AVX2}, {"fma4", MCT_TIER_AVX2},
    {"avxvnni", MCT_TIER_AVX2}, {"avxvnniint8", MCT_TIER_AVX2},  /* VEX on ymm: AVX2 class */
    {"avx512f", MCT_TIER_AVX512}, {"avx512dq", MCT_TIER_AVX512}, {"avx512ifma", MCT_TIER_AVX512},
    {"avx512cd", MCT_TIER_AVX512}, {"avx512bw", MCT_TIER_AVX512}, {"avx512vl", MCT_TIER_AVX512},
    {"avx512vbmi", MCT_TIER_AVX512}, {"avx512vbmi2", MCT_TIER_AVX512},
    {"avx512bitalg", MCT_TIER_AVX512}, {"avx512vpopcntdq", MCT_TIER_AVX512},
    {"avx512vp2intersect", MCT_TIER_AVX512}, {"avx512fp16", MCT_TIER_AVX512},
    {"avx512vnni", MCT_TIER_AVX512}, {"avx512bf16", MCT_TIER_AVX512_BF16VNNI},
    {"amx-bf16", MCT_TIER_AMX}, {"amx-tile", MCT_TIER_AMX}, {"amx-int8", MCT_TIER_AMX},
    {"amx-fp16", MCT_TIER_AMX},
};

void mct_cpu_restrict(const mct_cpu *in, mct_tier t, mct_cpu *out)
{
    if (out != in)
        memcpy(out, in, sizeof *out);
    if (t >= mct_cpu_tier_of(in))
        return;  /* the record itself: no feature of it is above its own tier */
    for (size_t i = 0; i < sizeof tier_feats / sizeof tier_feats[0]; i++) {
        int f = mct_cpu_feature_find(tier_feats[i].name);
        if (f >= 0 && t < tier_feats[i].keep && feats[f].word != W_XCR0)
            out->feat[feats[f].word] &= ~feats[f].mask;
    }
    if (t < MCT_TIER_AMX)
        out->xcr0 &= ~(uint64_t)MCT_XCR0_TILE;
    if (t < MCT_TIER_AVX512)
        out->xcr0 &= ~(uint64_t)MCT_XCR0_ZMM;
    if (t < MCT_TIER_AVX2)
        out->xcr0 &= ~(uint64_t)MCT_XCR0_YMM;
}

/* ---- the ISA table ------------------------------------------------------------------------ */

static const mct_isa isa_table[MCT_ISA_COUNT] = {
    {"generic", MCT_TIER_GENERIC, 1, 16, "", ""},
    {"sse42", MCT_TIER_SSE42, 4, 16, "sse4.2", "-msse4.2"},
    {"avx2", MCT_TIER_AVX2, 8, 16, "avx2,fma", "-mavx2 -mfma"},
    {"avx512", MCT_TIER_AVX512, 16, 32, "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma",
     "-mavx512f -mavx512vl -mavx512bw -mavx512dq -mavx2 -mfma"},
};

const mct_isa *mct_isa_get(int isa)
{
    return isa >= 0 && isa < MCT_ISA_COUNT ? &isa_table[isa] : NULL;
}

mct_isa_id mct_isa_of_tier(mct_tier t)
{
    mct_isa_id best = MCT_ISA_GENERIC;
    for (int i = 0; i < MCT_ISA_COUNT; i++)
        if (isa_table[i].tier <= t)
            best = (mct_isa_id)i;
    return best;
}

mct_tier mct_isa_code_tier(int isa, mct_tier t)
{
    if (isa < 0 || isa >= MCT_ISA_COUNT || isa == (int)mct_isa_of_tier(t))
        return t;
    return isa_table[isa].tier;
}

/* ---- ISA extensions ----------------------------------------------------------------------- */

static const mct_ext ext_table[MCT_EXT_COUNT] = {
    {MCT_EXT_AVXVNNI, "avxvnni", "avxvnni", MCT_TIER_AVX2},
    {MCT_EXT_AVX512VNNI, "avx512vnni", "avx512vnni", MCT_TIER_AVX512},
};

const mct_ext *mct_ext_get(int i)
{
    return i >= 0 && i < MCT_EXT_COUNT ? &ext_table[i] : NULL;
}

unsigned mct_cpu_exts(const mct_cpu *c, mct_tier t)
{
    mct_cpu r;
    unsigned m = 0;
    mct_cpu_restrict(c, t, &r);
    for (int i = 0; i < MCT_EXT_COUNT; i++)
        if (t >= ext_table[i].tier && mct_cpu_has(&r, mct_cpu_feature_find(ext_table[i].name)))
            m |= ext_table[i].bit;
    return m;
}

char *mct_ext_names(unsigned mask, char *buf, size_t len)
{
    size_t n = 0;
    if (!len)
        return buf;
    buf[0] = 0;
    for (int i = 0; i < MCT_EXT_COUNT; i++)
        if (mask & ext_table[i].bit) {
            int w = snprintf(buf + n, len - n, "%s%s", n ? "+" : "", ext_table[i].name);
            if (w < 0 || (size_t)w >= len - n)
                break;
            n += (size_t)w;
        }
    return buf;
}

/* ---- key ---------------------------------------------------------------------------------- */

uint64_t mct_cpu_key(const mct_cpu *c)
{
    uint64_t h = MCT_FNV64_INIT;
    size_t vl = 0;
    while (vl < sizeof c->vendor && c->vendor[vl])
        vl++;
    unsigned char b[4];
    h = mct_fnv64(h, c->vendor, vl);
    h = mct_fnv64(h, "", 1);
    int32_t v[2] = {c->family, c->model};
    for (int i = 0; i < 2; i++) {
        for (int j = 0; j < 4; j++)
            b[j] = (unsigned char)((uint32_t)v[i] >> (8 * j));
        h = mct_fnv64(h, b, 4);
    }
    for (int w = 0; w < MCT_CPUID_NWORDS; w++) {
        uint32_t x = c->feat[w];
        if (w == MCT_CPUID_1_ECX)
            x &= ~(1u << 31);  /* "running under a hypervisor" does not change the code */
        for (int j = 0; j < 4; j++)
            b[j] = (unsigned char)(x >> (8 * j));
        h = mct_fnv64(h, b, 4);
    }
    uint32_t os = (uint32_t)c->xcr0 & (MCT_XCR0_SSE | MCT_XCR0_YMM | MCT_XCR0_ZMM | MCT_XCR0_TILE);
    for (int j = 0; j < 4; j++)
        b[j] = (unsigned char)(os >> (8 * j));
    return mct_fnv64(h, b, 4);
}

void mct_cpu_key_format(uint64_t key, char buf[17])
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++)
        buf[i] = hex[(key >> (60 - 4 * i)) & 15];
    buf[16] = 0;
}

int mct_cpu_key_parse(const char *s, uint64_t *out)
{
    uint64_t k = 0;
    int i;
    if (!s)
        return MCT_EINVAL;
    for (i = 0; i < 16; i++) {
        char ch = s[i];
        int d;
        if (ch >= '0' && ch <= '9')
            d = ch - '0';
        else if (ch >= 'a' && ch <= 'f')
            d = ch - 'a' + 10;
        else if (ch >= 'A' && ch <= 'F')
            d = ch - 'A' + 10;
        else
            return MCT_EINVAL;
        k = k << 4 | (uint64_t)d;
    }
    if (s[16])
        return MCT_EINVAL;
    *out = k;
    return MCT_OK;
}

/* ---- probe -------------------------------------------------------------------------------- */

#if defined(__x86_64__)
static void cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4])
{
    __asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3])
                     : "a"(leaf), "c"(sub));
}

static uint64_t xgetbv0(void)
{
    uint32_t lo, hi;
    /* xgetbv spelled as bytes so that no assembler flag is needed */
    __asm__ volatile(".byte 0x0f, 0x01, 0xd0" : "=a"(lo), "=d"(hi) : "c"(0));
    return (uint64_t)hi << 32 | lo;
}

/* Leaf 4 (Intel) and 0x8000001D (AMD) share one layout. */
static void caches_from(uint32_t leaf, mct_cpu *c)
{
    for (uint32_t i = 0; i < 16; i++) {
        uint32_t r[4];
        cpuid(leaf, i, r);
        uint32_t type = r[0] & 31, level = (r[0] >> 5) & 7;
        if (type == 0)
            break;
        uint64_t size = (uint64_t)((r[1] >> 22) + 1) * (((r[1] >> 12) & 0x3ff) + 1) *
                        ((r[1] & 0xfff) + 1) * ((uint64_t)r[2] + 1);
        uint32_t kb = (uint32_t)(size / 1024);
        if (level == 1 && type == 1)
            c->cache_kb[0] = kb;
        else if (level == 1 && type == 2)
            c->cache_kb[1] = kb;
        else if (level == 2)
            c->cache_kb[2] = kb;
        else if (level == 3)
            c->cache_kb[3] = kb;
    }
}

static void trim_brand(char *s)
{
    char *p = s;
    while (*p == ' ')
        p++;
    memmove(s, p, strlen(p) + 1);
    size_t n = strlen(s);
    while (n && s[n - 1] == ' ')
        s[--n] = 0;
}

int mct_cpu_detect(mct_cpu *c)
{
    uint32_t r[4], max, emax;
    memset(c, 0, sizeof *c);
    cpuid(0, 0, r);
    max = r[0];
    memcpy(c->vendor, &r[1], 4);
    memcpy(c->vendor + 4, &r[3], 4);
    memcpy(c->vendor + 8, &r[2], 4);
    int intel = !strcmp(c->vendor, "GenuineIntel");
    int amd = !strcmp(c->vendor, "AuthenticAMD") || !strcmp(c->vendor, "HygonGenuine");
    if (max >= 1) {
        cpuid(1, 0, r);
        uint32_t fam = (r[0] >> 8) & 15, mod = (r[0] >> 4) & 15;
        c->stepping = (int)(r[0] & 15);
        if (fam == 15)
            fam += (r[0] >> 20) & 0xff;
        if (fam == 6 || fam >= 15)
            mod |= ((r[0] >> 16) & 15) << 4;
        c->family = (int)fam;
        c->model = (int)mod;
        c->feat[MCT_CPUID_1_ECX] = r[2];
        c->feat[MCT_CPUID_1_EDX] = r[3];
        c->threads = (int)((r[1] >> 16) & 0xff);
    }
    if (max >= 7) {
        cpuid(7, 0, r);
        uint32_t sub = r[0];
        c->feat[MCT_CPUID_7_EBX] = r[1];
        c->feat[MCT_CPUID_7_ECX] = r[2];
        c->feat[MCT_CPUID_7_EDX] = r[3];
        if (sub >= 1) {
            cpuid(7, 1, r);
            c->feat[MCT_CPUID_71_EAX] = r[0];
            c->feat[MCT_CPUID_71_EDX] = r[3];
        }
    }
    if (max >= 0xd) {
        cpuid(0xd, 0, r);
        c->feat[MCT_CPUID_D_EAX] = r[0];
        cpuid(0xd, 1, r);
        c->feat[MCT_CPUID_D1_EAX] = r[0];
    }
    if (c->feat[MCT_CPUID_1_ECX] & (1u << 27))  /* osxsave: xgetbv is allowed */
        c->xcr0 = xgetbv0();
    cpuid(0x80000000u, 0, r);
    emax = r[0];
    if (emax >= 0x80000001u) {
        cpuid(0x80000001u, 0, r);
        c->feat[MCT_CPUID_81_ECX] = r[2];
        c->feat[MCT_CPUID_81_EDX] = r[3];
    }
    if (emax >= 0x80000004u) {
        for (uint32_t i = 0; i < 3; i++) {
            cpuid(0x80000002u + i, 0, r);
            memcpy(c->brand + 16 * i, r, 16);
        }
        c->brand[48] = 0;
        trim_brand(c->brand);
    }
    if (intel && max >= 4) {
        caches_from(4, c);
        cpuid(4, 0, r);
        if (r[0] & 31)
            c->cores = (int)(((r[0] >> 26) & 63) + 1);
        if (max >= 0xb) {
            cpuid(0xb, 1, r);
            if (r[1] & 0xffff)
                c->threads = (int)(r[1] & 0xffff);
        }
    } else if (amd) {
        int topo = (c->feat[MCT_CPUID_81_ECX] >> 22) & 1;
        if (topo && emax >= 0x8000001du) {
            caches_from(0x8000001du, c);
        } else {
            if (emax >= 0x80000005u) {
                cpuid(0x80000005u, 0, r);
                c->cache_kb[0] = r[2] >> 24;
                c->cache_kb[1] = r[3] >> 24;
            }
            if (emax >= 0x80000006u) {
                cpuid(0x80000006u, 0, r);
                c->cache_kb[2] = r[2] >> 16;
                c->cache_kb[3] = (r[3] >> 18) * 512;
            }
        }
        if (emax >= 0x80000008u) {
            cpuid(0x80000008u, 0, r);
            c->threads = (int)((r[2] & 0xff) + 1);
        }
        int per_core = 1;
        if (topo && emax >= 0x8000001eu) {
            cpuid(0x8000001eu, 0, r);
            per_core = (int)(((r[1] >> 8) & 0xff) + 1);
        }
        if (c->threads)
            c->cores = c->threads / per_core;
    }
    if (c->cores > c->threads && c->threads)
        c->cores = c->threads;
    return MCT_OK;
}
#else
int mct_cpu_detect(mct_cpu *c)
{
    memset(c, 0, sizeof *c);
    return MCT_EUNSUPPORTED;
}
#endif

/* ---- once --------------------------------------------------------------------------------- */

/* 0: not started, 1: someone is detecting, 2: done. __atomic builtins instead of pthread_once
 * so that generated libraries need no threads library. */
static int host_state;
static mct_cpu host_cpu;
static int tier_state;
static mct_tier tier_used;

static void once_wait(int *state)
{
    while (__atomic_load_n(state, __ATOMIC_ACQUIRE) != 2)
        ;  /* detection takes microseconds; spinning is cheaper than a futex dependency */
}

const mct_cpu *mct_cpu_host(void)
{
    int expect = 0;
    if (__atomic_load_n(&host_state, __ATOMIC_ACQUIRE) == 2)
        return &host_cpu;
    if (__atomic_compare_exchange_n(&host_state, &expect, 1, 0, __ATOMIC_ACQ_REL,
                                    __ATOMIC_ACQUIRE)) {
        mct_cpu_detect(&host_cpu);
        __atomic_store_n(&host_state, 2, __ATOMIC_RELEASE);
    } else {
        once_wait(&host_state);
    }
    return &host_cpu;
}

int mct_cpu_select_tier(mct_tier host, const char *want, char *err, size_t errlen,
                        mct_tier *out)
{
    mct_tier t;
    *out = host;
    if (err && errlen)
        err[0] = 0;
    if (!want || !*want)
        return MCT_OK;
    if (mct_tier_parse(want, &t) < 0) {
        if (err)
            snprintf(err, errlen, "MCTUNE_TIER='%s' is not a tier; use one of generic, sse4.2, "
                     "avx2, avx512, avx512-bf16-vnni, amx (using %s)", want, mct_tier_name(host));
        return MCT_EINVAL;
    }
    if (t > host) {
        if (err)
            snprintf(err, errlen, "MCTUNE_TIER=%s is above what this CPU supports (%s); "
                     "using %s; set a tier at or below %s", mct_tier_name(t), mct_tier_name(host),
                     mct_tier_name(host), mct_tier_name(host));
        return MCT_EUNSUPPORTED;
    }
    *out = t;
    return MCT_OK;
}

mct_tier mct_cpu_tier(void)
{
    int expect = 0;
    if (__atomic_load_n(&tier_state, __ATOMIC_ACQUIRE) == 2)
        return tier_used;
    if (!__atomic_compare_exchange_n(&tier_state, &expect, 1, 0, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE)) {
        once_wait(&tier_state);
        return tier_used;
    }
    const mct_cpu *c = mct_cpu_host();
    mct_tier host = mct_cpu_tier_of(c), t;
    const char *want = getenv("MCTUNE_TIER");
    const char *dbg = getenv("MCTUNE_CPU_DEBUG");
    char err[256];
    if (mct_cpu_select_tier(host, want, err, sizeof err, &t) < 0)
        fprintf(stderr, "mctune: %s\n", err);
    if (dbg && *dbg && strcmp(dbg, "0")) {
        char key[17];
        mct_cpu_key_format(mct_cpu_key(c), key);
        fprintf(stderr, "mctune cpu: %s family %d model %d stepping %d \"%s\" key %s; "
                "host tier %s; MCTUNE_TIER=%s; using %s\n", c->vendor[0] ? c->vendor : "?",
                c->family, c->model, c->stepping, c->brand, key, mct_tier_name(host),
                want ? want : "(unset)", mct_tier_name(t));
    }
    tier_used = t;
    __atomic_store_n(&tier_state, 2, __ATOMIC_RELEASE);
    return t;
}
