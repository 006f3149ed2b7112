// check_requant.c — the folded requantization of ck_quant.h (AVX2 and AVX-512 forms) against TFLite's two roundings
// (ck_q_round_fixed, the scalar reference) plus the zero point, before the clamp, over the inputs ck_q_plan_folding
// admits: every right shift r = 1 … 31, zero points 0 … 255 (all of them at the edges of x, a spread otherwise),
// multipliers 0, 1, 2^30, 2^30 + 1, 2^31 − 1 and random ones, and x at ± the largest admitted |x|, around 0, around
// the rounding points of both roundings (x·M near odd multiples of 2^30, h near odd multiples of 2^(r−1)) and random.
//
//   clang -O2 -I Sources/CKernels -I Sources/CKernels/include scripts/bench_kernels/check_requant.c -o /tmp/check_requant
//   /tmp/check_requant [samples per (r, M)]      (default 200000; prints the count of cases and of mismatches)
//
// Exit status 1 on any mismatch. Needs AVX-512 (VNNI) for the 16-lane form; without it only AVX2 is checked.
#include "ck_quant.h"

#include <stdio.h>
#include <stdlib.h>

static uint64_t state = 0x9E3779B97F4A7C15u;
static uint64_t next(void) {
    state = state * 6364136223846793005u + 1442695040888963407u;
    return state >> 11;
}

/// The largest |x| ck_q_plan_folding admits for (r, zp).
static int64_t admitted(int r, int zp) { return ((int64_t)1 << 31) - 3 - ((int64_t)1 << (r - 1)) - ((int64_t)zp << r); }

static int32_t reference(int32_t x, int32_t m, int r, int zp) { return zp + ck_q_round_fixed(x, m, -r); }

typedef struct {
    int32_t x[16], m[16], shift[16], zp;
} batch;

static long cases = 0, mismatches = 0;

CK_AVX2 static void check_avx2(const batch *b) {
    int32_t zero[16] = {0};
    ck_qout out = {zero, b->m, b->shift, NULL, b->zp, 0, 255, NULL, 0, NULL};
    for (int h = 0; h < 2; h++) {
        ck_q8_cols c = ck_q8_columns(&out, 8 * h, 8);
        int32_t y[8];
        _mm256_storeu_si256((__m256i *)y, ck_q8_round_folded(_mm256_loadu_si256((const __m256i *)(b->x + 8 * h)), &c));
        for (int l = 0; l < 8; l++) {
            int i = 8 * h + l;
            int32_t want = reference(b->x[i], b->m[i], -b->shift[i], b->zp);
            if (y[l] != want && mismatches++ < 10)
                printf("AVX2 x %d m %d r %d zp %d: %d, expected %d\n", b->x[i], b->m[i], -b->shift[i], b->zp, y[l], want);
        }
    }
}

CK_AVX512_VNNI static void check_avx512(const batch *b) {
    int32_t zero[16] = {0};
    ck_qout out = {zero, b->m, b->shift, NULL, b->zp, 0, 255, NULL, 0, NULL};
    ck_q16_cols c = ck_q16_columns(&out, 0, 16);
    int32_t y[16];
    _mm512_storeu_si512(y, ck_q16_round_folded(_mm512_loadu_si512(b->x), &c));
    for (int i = 0; i < 16; i++) {
        int32_t want = reference(b->x[i], b->m[i], -b->shift[i], b->zp);
        if (y[i] != want && mismatches++ < 10)
            printf("AVX-512 x %d m %d r %d zp %d: %d, expected %d\n", b->x[i], b->m[i], -b->shift[i], b->zp, y[i], want);
    }
}

static int avx512;

static void check(batch *b) {
    check_avx2(b);
    if (avx512) check_avx512(b);
    cases += 16;
}

/// x values worth trying for (m, r, zp): edges, rounding points, random.
static int32_t pick(int32_t m, int r, int zp, int64_t limit) {
    switch (next() % 8) {
    case 0: return (int32_t)(limit - (int64_t)(next() % 4));
    case 1: return (int32_t)(-limit + (int64_t)(next() % 4));
    case 2: return (int32_t)((int64_t)(next() % 64) - 32);
    case 3:
    case 4: {
        // x·M near an odd multiple of 2^30 (the high product's half), or h near an odd multiple of 2^(r−1).
        if (m == 0) return (int32_t)((int64_t)(next() % (2 * (uint64_t)limit + 1)) - limit);
        double unit = (double)((int64_t)1 << 30) * ((next() & 1) ? 1.0 : (double)((int64_t)1 << r));
        double k = (double)(int64_t)((next() % (2 * (uint64_t)limit + 1)) - limit) * m / unit;
        int64_t odd = (int64_t)k | 1;
        int64_t x = (int64_t)((double)odd * unit / m) + (int64_t)(next() % 5) - 2;
        if (x > limit) x = limit;
        if (x < -limit) x = -limit;
        return (int32_t)x;
    }
    default: return (int32_t)((int64_t)(next() % (2 * (uint64_t)limit + 1)) - limit);
    }
}

int main(int argc, char **argv) {
    long samples = argc > 1 ? atol(argv[1]) : 200000;
    avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw");
    const int32_t fixed[] = {0, 1, 1 << 30, (1 << 30) + 1, 0x7FFFFFFF, 1431655765, 1717986918};
    for (int r = 1; r <= 31; r++) {
        for (int mi = 0; mi < 7 + 8; mi++) {
            int32_t m = mi < 7 ? fixed[mi] : (int32_t)((1u << 30) + (uint32_t)(next() % (1u << 30)));
            // Every zero point at the edges of x; a spread of them on the rest.
            for (int zp = 0; zp <= 255; zp++) {
                int64_t limit = admitted(r, zp);
                if (limit < 0) continue;
                batch b = {.zp = zp};
                int32_t edges[16] = {(int32_t)limit, (int32_t)-limit, (int32_t)limit - 1, (int32_t)-limit + 1, 0, -1, 1, -2,
                                     2, (int32_t)(limit / 2), (int32_t)(-limit / 2), -3, 3, (int32_t)limit - 7, (int32_t)-limit + 7, -4};
                for (int i = 0; i < 16; i++) {
                    b.x[i] = edges[i];
                    b.m[i] = m;
                    b.shift[i] = -r;
                }
                check(&b);
            }
            for (long s = 0; s < samples / 16; s++) {
                batch b = {.zp = (int)(next() % 256)};
                int64_t limit = admitted(r, b.zp);
                if (limit < 0) continue;
                for (int i = 0; i < 16; i++) {
                    b.m[i] = m;
                    b.shift[i] = -r;
                    b.x[i] = pick(m, r, b.zp, limit);
                }
                check(&b);
            }
        }
    }
    printf("%ld cases (%s), %ld mismatches\n", cases, avx512 ? "AVX2 and AVX-512" : "AVX2", mismatches);
    return mismatches != 0;
}
