/* The measured fp32 peak of one core, shared by the benchmarks that quote it (scripts/bench_*.c).
 * Include after <stdio.h>, "runtime/cpu.h" and a `static double now(void)` giving seconds. */
#ifndef MCT_BENCH_PEAK_H
#define MCT_BENCH_PEAK_H

/* Peak fp32 FMA throughput of one core: independent chains of fused multiply-adds in the widest
 * vector registers of the tier (16 zmm chains; 12 ymm of the 16 registers AVX2 has; SSE has no
 * FMA: 6 multiply + 6 add chains). Each variant is compiled for its ISA by a target attribute and
 * only called when the tier allows it, so the binary runs on any x86-64. */
#include <immintrin.h>

#define PEAK_ITERS 20000000L
__attribute__((target("avx512f,fma"))) static double peak_avx512(void)
{
    __m512 a[16], m = _mm512_set1_ps(0.9999999f), x = _mm512_set1_ps(1e-7f);
    for (int i = 0; i < 16; i++)
        a[i] = _mm512_set1_ps((float)i * 1e-7f);
    double t0 = now();
    for (long n = 0; n < PEAK_ITERS; n++) {
#pragma GCC unroll 16
        for (int i = 0; i < 16; i++)
            a[i] = _mm512_fmadd_ps(a[i], m, x);
    }
    double t = now() - t0;
    float s = 0;
    for (int i = 0; i < 16; i++)
        s += _mm512_reduce_add_ps(a[i]);
    if (s == 12345.0f)
        printf("?");
    return PEAK_ITERS * 16.0 * 16 * 2 / t / 1e9;
}

__attribute__((target("avx2,fma"))) static double peak_avx2(void)
{
    __m256 a[12], m = _mm256_set1_ps(0.9999999f), x = _mm256_set1_ps(1e-7f);
    for (int i = 0; i < 12; i++)
        a[i] = _mm256_set1_ps((float)i * 1e-7f);
    double t0 = now();
    for (long n = 0; n < PEAK_ITERS; n++) {
#pragma GCC unroll 12
        for (int i = 0; i < 12; i++)
            a[i] = _mm256_fmadd_ps(a[i], m, x);
    }
    double t = now() - t0;
    float v[8], s = 0;
    for (int i = 0; i < 12; i++) {
        _mm256_storeu_ps(v, a[i]);
        for (int l = 0; l < 8; l++)
            s += v[l];
    }
    if (s == 12345.0f)
        printf("?");
    return PEAK_ITERS * 12.0 * 8 * 2 / t / 1e9;
}

__attribute__((target("sse2"))) static double peak_sse(void)
{
    __m128 a[6], b[6], m = _mm_set1_ps(0.9999999f), x = _mm_set1_ps(1e-7f);
    for (int i = 0; i < 6; i++)
        a[i] = b[i] = _mm_set1_ps((float)i * 1e-7f);
    double t0 = now();
    for (long n = 0; n < PEAK_ITERS; n++) {
#pragma GCC unroll 6
        for (int i = 0; i < 6; i++) {
            a[i] = _mm_mul_ps(a[i], m);
            b[i] = _mm_add_ps(b[i], x);
        }
    }
    double t = now() - t0;
    float v[4], s = 0;
    for (int i = 0; i < 6; i++) {
        _mm_storeu_ps(v, _mm_add_ps(a[i], b[i]));
        for (int l = 0; l < 4; l++)
            s += v[l];
    }
    if (s == 12345.0f)
        printf("?");
    return PEAK_ITERS * 12.0 * 4 / t / 1e9;
}

/* best of 3; *isa names the instructions used */
static double peak_gflops(mct_tier tier, const char **isa)
{
    double best = 0;
    *isa = tier >= MCT_TIER_AVX512 ? "AVX-512 FMA" : tier >= MCT_TIER_AVX2 ? "AVX2 FMA"
                                                                            : "SSE mul+add";
    for (int rep = 0; rep < 3; rep++) {
        double g = tier >= MCT_TIER_AVX512 ? peak_avx512()
                   : tier >= MCT_TIER_AVX2 ? peak_avx2() : peak_sse();
        if (g > best)
            best = g;
    }
    return best;
}

#endif
