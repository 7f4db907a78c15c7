/* mctune CPU identity: what this x86-64 CPU is and which ISA tier its kernels may use.
 *
 * This file ships inside every generated library: libc headers only, compiled for the baseline
 * ISA (no -march), so the probe itself never executes an instruction the CPU may lack.
 *
 * The probe reads CPUID (vendor, family/model/stepping, brand string, feature words of leaves 1,
 * 7.0, 7.1, 0x80000001, 0xD) and XGETBV (the register state the OS saves), so a VM that does not
 * enable AVX-512 state is not taken for an AVX-512 machine. ISA tiers are ordered, so code reads
 * `tier >= MCT_TIER_AVX2`.
 *
 * The CPU key is a 64-bit FNV-1a hash of vendor, family, model, the ISA feature words and the
 * OS-enabled state (not stepping, brand, caches or frequency): two machines with the same key run
 * the same kernels equally well as far as the tuner can tell.
 *
 * Environment:
 *   MCTUNE_TIER=NAME     forces the tier used by mct_cpu_tier() (generic, sse4.2, avx2, avx512,
 *                        avx512-bf16-vnni, amx). A tier above what the host supports is refused
 *                        with a message on stderr and the host tier is used.
 *   MCTUNE_CPU_DEBUG=1   logs the detection and the tier decision to stderr (once).
 */
#ifndef MCT_CPU_H
#define MCT_CPU_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/mct_err.h"

typedef enum {
    MCT_TIER_GENERIC = 0,
    MCT_TIER_SSE42 = 1,           /* sse4.2 (and ssse3, popcnt) */
    MCT_TIER_AVX2 = 2,            /* avx, avx2, fma; OS saves ymm */
    MCT_TIER_AVX512 = 3,          /* avx512 f, cd, bw, dq, vl; OS saves zmm and opmask */
    MCT_TIER_AVX512_BF16VNNI = 4, /* + avx512_bf16 and avx512_vnni */
    MCT_TIER_AMX = 5,             /* + amx tile, bf16, int8; OS enables tile state */
    MCT_TIER_COUNT = 6
} mct_tier;

/* Feature words, indexes into mct_cpu.feat. */
enum {
    MCT_CPUID_1_ECX = 0,
    MCT_CPUID_1_EDX,
    MCT_CPUID_7_EBX,
    MCT_CPUID_7_ECX,
    MCT_CPUID_7_EDX,
    MCT_CPUID_71_EAX,       /* leaf 7 subleaf 1 */
    MCT_CPUID_71_EDX,
    MCT_CPUID_81_ECX,       /* leaf 0x80000001 */
    MCT_CPUID_81_EDX,
    MCT_CPUID_D_EAX,        /* leaf 0xD subleaf 0: XCR0 bits the CPU supports (low word) */
    MCT_CPUID_D1_EAX,       /* leaf 0xD subleaf 1: xsaveopt, xsavec, xgetbv1, xsaves */
    MCT_CPUID_NWORDS
};

/* XCR0 bits (OS-enabled register state). */
#define MCT_XCR0_SSE   (1u << 1)
#define MCT_XCR0_YMM   (1u << 2)
#define MCT_XCR0_ZMM   ((1u << 5) | (1u << 6) | (1u << 7))  /* opmask, zmm_hi256, hi16_zmm */
#define MCT_XCR0_TILE  ((1u << 17) | (1u << 18))            /* xtilecfg, xtiledata */

typedef struct mct_cpu {
    char vendor[16];        /* "GenuineIntel", "AuthenticAMD", ...; "" when not x86 */
    char brand[52];         /* brand string, trimmed */
    int family, model, stepping;   /* display family/model (extended fields folded in) */
    uint32_t feat[MCT_CPUID_NWORDS];
    uint64_t xcr0;          /* 0 when the OS does not enable XSAVE */
    uint32_t cache_kb[4];   /* L1d, L1i, L2, L3 in KiB, 0 when unknown */
    int cores;              /* physical cores per package, 0 when unknown */
    int threads;            /* logical processors per package, 0 when unknown */
} mct_cpu;

/* Reads CPUID/XGETBV into *out (zeroed first). Returns 0 on x86-64 (it cannot fail there);
 * elsewhere *out stays zeroed (vendor "", tier generic) and it returns MCT_EUNSUPPORTED. Not
 * cached: see mct_cpu_host. */
int mct_cpu_detect(mct_cpu *out);

/* This machine's record, detected once (thread-safe) and cached for the life of the process.
 * The pointer is to static storage, valid forever; never NULL. */
const mct_cpu *mct_cpu_host(void);

/* The highest tier the record's features and OS-enabled state support. Cannot fail. */
mct_tier mct_cpu_tier_of(const mct_cpu *c);

/* The tier this process uses: the host tier, or MCTUNE_TIER when set and not above the host
 * tier. Decided once, thread-safe; refusals and MCTUNE_CPU_DEBUG logs go to stderr. */
mct_tier mct_cpu_tier(void);

/* The decision behind mct_cpu_tier, without the environment: given the host tier and the
 * requested tier name (NULL or "" for none), stores the tier to use in *out. Returns 0,
 * MCT_EINVAL for an unknown name or MCT_EUNSUPPORTED for a tier above host; on either error *out
 * is host and err (errlen bytes, may be NULL) says why; on success err is "". */
int mct_cpu_select_tier(mct_tier host, const char *want, char *err, size_t errlen,
                        mct_tier *out);

/* Tier name ("generic", "sse4.2", "avx2", "avx512", "avx512-bf16-vnni", "amx"); "?" if out of
 * range. Static string. */
const char *mct_tier_name(mct_tier t);

/* Parses a tier name (case-insensitive; also accepts "avx2+fma", "sse42", "avx512_bf16vnni").
 * Returns 0, or MCT_EINVAL for anything else (s NULL included); *out is written on success only. */
int mct_tier_parse(const char *s, mct_tier *out);

/* The same CPU as seen by code limited to tier t: *out is *in with every feature above t
 * cleared (and the OS state of the registers t does not use), so mct_cpu_tier_of(out) is t and
 * mct_cpu_key(out) names "this CPU at tier t". At or above the record's own tier, *out is *in
 * unchanged (in and out may be the same). Cannot fail. Tuning for a lower tier stores its
 * records under such a record, which is what the "same vendor and tier" and "same tier" rungs
 * of the ladder match on. The VEX-encoded extensions of AVX2-class cores (avxvnni, avxvnniint8)
 * survive down to avx2: an AVX-512 CPU restricted to avx2 is the AVX2 + AVX-VNNI CPU that its
 * code at that tier may use (mct_cpu_exts). */
void mct_cpu_restrict(const mct_cpu *in, mct_tier t, mct_cpu *out);

/* ---- the ISA table ------------------------------------------------------------------------
 * What code compiled for a tier may use, written once and read by the code generator (vector
 * width, register file), the measurement harness and `mctune gen` (the target attribute and
 * compiler flags, so a measured kernel is compiled exactly as the shipped one) and dispatch
 * (which ISA a table's code needs). Tiers above avx512 lower their f32 code as avx512; their
 * extra instructions belong to ops that ask for them. */
typedef enum {
    MCT_ISA_GENERIC = 0,    /* scalar C, the x86-64 baseline */
    MCT_ISA_SSE42 = 1,
    MCT_ISA_AVX2 = 2,
    MCT_ISA_AVX512 = 3,
    MCT_ISA_COUNT = 4
} mct_isa_id;

typedef struct mct_isa {
    const char *tag;        /* in kernel names: "generic", "sse42", "avx2", "avx512" */
    mct_tier tier;          /* the lowest tier that runs this code */
    int vlen;               /* f32 lanes of one vector register (1: scalar) */
    int nregs;              /* vector registers the compiler may allocate */
    const char *attr;       /* GCC/Clang target attribute string; "" for the baseline */
    const char *cflags;     /* the same as compiler flags ("" for the baseline) */
} mct_isa;

/* The table row of an ISA id; NULL when out of range. Static storage, valid forever. */
const mct_isa *mct_isa_get(int isa);

/* The ISA that code for tier t is lowered for (tiers above avx512 give MCT_ISA_AVX512, below
 * generic give generic). */
mct_isa_id mct_isa_of_tier(mct_tier t);

/* The tier that code lowered for ISA isa on a CPU of tier t needs: t when isa is t's own ISA
 * (mct_isa_of_tier(t): the code generator then lowers for tier t, whose extra instructions the
 * dot products use, as the measurement harness did on that CPU), else the ISA row's tier (code
 * for a lower ISA uses nothing above it). `mctune gen` lowers a table's kernels for this tier
 * and dispatch never runs a table on a host below it. An isa out of range gives t. Cannot fail. */
mct_tier mct_isa_code_tier(int isa, mct_tier t);

/* ---- ISA extensions beside the tiers -------------------------------------------------------
 * Instructions some CPUs of a tier have and others of the same tier lack, which the ordered
 * ladder cannot hold: AVX-VNNI (the VEX vpdpbusd on ymm) is on AVX2-only client cores (Alder
 * Lake and later, Sierra Forest) and on most AVX-512 CPUs, but not on Zen 3 or Skylake-X;
 * AVX512-VNNI (vpdpbusd on zmm) is on Cascade Lake, Ice Lake and Zen 4 without AVX512-BF16 on
 * the first two (so their tier is avx512, not avx512-bf16-vnni). A code-generation target carries the mask of the extensions its code may use beside its tier
 * (codegen.h, mct_target.exts), a generated table the mask its code does use, and dispatch runs
 * a table only on a host that has every extension of that mask (runtime/dispatch.h). */
enum { MCT_EXT_AVXVNNI = 1u << 0, MCT_EXT_AVX512VNNI = 1u << 1 };
#define MCT_EXT_COUNT 2

typedef struct mct_ext {
    unsigned bit;           /* MCT_EXT_* */
    const char *name;       /* the CPU feature that has it (mct_cpu_feature_find), e.g. "avxvnni" */
    const char *attr;       /* added to a kernel's target attribute where its code uses it */
    mct_tier tier;          /* the lowest tier whose code can use it (the registers it needs) */
} mct_ext;

/* Extension i (0 .. MCT_EXT_COUNT-1), bit 1 << i; NULL when out of range. Static storage. */
const mct_ext *mct_ext_get(int i);

/* The extensions code for tier t may use on CPU c: those whose feature the record restricted to
 * t (mct_cpu_restrict) still has, at a t of at least the extension's tier. Pure; cannot fail.
 * What the code generator actually uses of them is its own decision (widen(B, dot)'s 512-bit
 * VNNI path at tier avx512 with AVX512-VNNI, its AVX-VNNI path only where neither that nor tier
 * avx512-bf16-vnni gives the 512-bit vpdpbusd). */
unsigned mct_cpu_exts(const mct_cpu *c, mct_tier t);

/* The names of the extensions in mask, joined by '+' ("avxvnni"), or "" for none, into buf (len
 * bytes, cut when short; len 0 writes nothing). Returns buf. */
char *mct_ext_names(unsigned mask, char *buf, size_t len);

/* The record's CPU key (see the header comment). Cannot fail. */
uint64_t mct_cpu_key(const mct_cpu *c);

/* Writes the key as 16 lowercase hex digits plus NUL into buf[17]. */
void mct_cpu_key_format(uint64_t key, char buf[17]);

/* Parses exactly 16 hex digits (either case) into *out. Returns 0, or MCT_EINVAL for anything
 * else (s NULL, another length, another character); *out is written on success only. */
int mct_cpu_key_parse(const char *s, uint64_t *out);

/* Named features: number of names known, and the i-th name ("sse4.2", "avx2", "avx512f",
 * "amx-tile", "os-avx512", ...; static string, NULL when i is out of range). */
int mct_cpu_feature_count(void);
const char *mct_cpu_feature_name(int i);

/* 1 when the record has feature i (an index below mct_cpu_feature_count), else 0 (also for an
 * index out of range). */
int mct_cpu_has(const mct_cpu *c, int i);

/* Sets feature i in the record (synthetic CPUs for tests and tools); the os-* features set
 * their XCR0 bits. Returns MCT_EINVAL for an index out of range. */
int mct_cpu_set(mct_cpu *c, int i);

/* Index of a feature by name (exact, case-sensitive; name not NULL), or MCT_ENOTFOUND. */
int mct_cpu_feature_find(const char *name);

/* FNV-1a 64 over n bytes, continuing from h (start with MCT_FNV64_INIT). */
#define MCT_FNV64_INIT 0xcbf29ce484222325ull
uint64_t mct_fnv64(uint64_t h, const void *p, size_t n);

#endif
