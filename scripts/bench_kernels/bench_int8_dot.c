// The inner loops an int8 convolution can be built on, alone: each variant runs its register tile over K = 512
// input channels of activations and weights that stay in L1 (4 output pixels × 16 output channels unless named
// otherwise), repeated, and prints multiply-adds as GOP/s (2 ops each) for one core. Built and run by
// scripts/bench_kernels.py --int8-dot; the choice it informs is written up at the top of Sources/CKernels/qconv_nhwc.c.
//
// Variants (AVX2 unless named):
//   fp32 fma 6x16          the float kernel's tile, for scale (FLOP/s)
//   sign transfer          VPMADDUBSW(|x'|, VPSIGNB(w, x')) with x' = x ^ 0x80 made per broadcast (XOR + ABS): exact
//   sign transfer, pre     the same with x' and |x'| precomputed (two broadcasts per row, no XOR/ABS): exact
//   7-bit weights          VPMADDUBSW(x, w) with |w| ≤ 63 (ONNX Runtime's reduce_range): exact only for 7-bit weights
//   s16 vpmaddwd           x − z and w widened to s16, VPMADDWD on pairs of input channels: exact
//   vnni zmm 12x32         AVX-512 VNNI vpdpbusd, the quantized kernel's VNNI tile
//   vnni ymm 4x16          vpdpbusd on 256-bit registers (AVX-512 VL encoding), the AVX2 tile's shape
// Each variant's result is checked against a scalar sum (the 7-bit one with its own weights).
#define _GNU_SOURCE
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define K 512
#define ROWS 12

static uint8_t x[ROWS][K], xflip[ROWS][K], xabs[ROWS][K];
static int16_t x16[ROWS][K];
static int8_t w[K * 32], w7[K * 32];     // packed: quad q, column col, 4 channels: [(q·32 + col)·4 + i]
static int16_t w16[K * 16];             // pairs: [(k/2)·16 + col]·2 + k%2
static float xf[ROWS][K], wf[K * 16];
static int32_t result[ROWS][32];
static float resultf[ROWS][16];

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static inline int32_t load32(const void *p) { int32_t v; memcpy(&v, p, 4); return v; }

// Weights for 16 columns in the quad layout read with stride 32 columns so the zmm tile (32) can share them.
#define WQ(q) (w + (size_t)(q) * 128)

__attribute__((target("avx2,fma"))) static void fp32_tile(void) {
    __m256 c[6][2];
    for (int r = 0; r < 6; r++) c[r][0] = c[r][1] = _mm256_setzero_ps();
    for (int k = 0; k < K; k++) {
        __m256 b0 = _mm256_loadu_ps(wf + k * 16), b1 = _mm256_loadu_ps(wf + k * 16 + 8);
        for (int r = 0; r < 6; r++) {
            __m256 a = _mm256_broadcast_ss(&xf[r][k]);
            c[r][0] = _mm256_fmadd_ps(a, b0, c[r][0]);
            c[r][1] = _mm256_fmadd_ps(a, b1, c[r][1]);
        }
    }
    for (int r = 0; r < 6; r++) { _mm256_storeu_ps(resultf[r], c[r][0]); _mm256_storeu_ps(resultf[r] + 8, c[r][1]); }
}

__attribute__((target("avx2"))) static void sign_tile(void) {
    const __m256i ones = _mm256_set1_epi16(1), flip = _mm256_set1_epi8((char)0x80);
    __m256i c[4][2];
    for (int r = 0; r < 4; r++) c[r][0] = c[r][1] = _mm256_setzero_si256();
    for (int q = 0; q < K / 4; q++) {
        __m256i w0 = _mm256_loadu_si256((const __m256i *)WQ(q)), w1 = _mm256_loadu_si256((const __m256i *)(WQ(q) + 32));
        for (int r = 0; r < 4; r++) {
            __m256i v = _mm256_xor_si256(_mm256_set1_epi32(load32(&x[r][4 * q])), flip), a = _mm256_abs_epi8(v);
            c[r][0] = _mm256_add_epi32(c[r][0], _mm256_madd_epi16(_mm256_maddubs_epi16(a, _mm256_sign_epi8(w0, v)), ones));
            c[r][1] = _mm256_add_epi32(c[r][1], _mm256_madd_epi16(_mm256_maddubs_epi16(a, _mm256_sign_epi8(w1, v)), ones));
        }
    }
    for (int r = 0; r < 4; r++) { _mm256_storeu_si256((__m256i *)result[r], c[r][0]); _mm256_storeu_si256((__m256i *)(result[r] + 8), c[r][1]); }
}

__attribute__((target("avx2"))) static void sign_pre_tile(void) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i c[4][2];
    for (int r = 0; r < 4; r++) c[r][0] = c[r][1] = _mm256_setzero_si256();
    for (int q = 0; q < K / 4; q++) {
        __m256i w0 = _mm256_loadu_si256((const __m256i *)WQ(q)), w1 = _mm256_loadu_si256((const __m256i *)(WQ(q) + 32));
        for (int r = 0; r < 4; r++) {
            __m256i v = _mm256_set1_epi32(load32(&xflip[r][4 * q])), a = _mm256_set1_epi32(load32(&xabs[r][4 * q]));
            c[r][0] = _mm256_add_epi32(c[r][0], _mm256_madd_epi16(_mm256_maddubs_epi16(a, _mm256_sign_epi8(w0, v)), ones));
            c[r][1] = _mm256_add_epi32(c[r][1], _mm256_madd_epi16(_mm256_maddubs_epi16(a, _mm256_sign_epi8(w1, v)), ones));
        }
    }
    for (int r = 0; r < 4; r++) { _mm256_storeu_si256((__m256i *)result[r], c[r][0]); _mm256_storeu_si256((__m256i *)(result[r] + 8), c[r][1]); }
}

__attribute__((target("avx2"))) static void seven_bit_tile(void) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i c[4][2];
    for (int r = 0; r < 4; r++) c[r][0] = c[r][1] = _mm256_setzero_si256();
    for (int q = 0; q < K / 4; q++) {
        const int8_t *b = w7 + (size_t)q * 128;
        __m256i w0 = _mm256_loadu_si256((const __m256i *)b), w1 = _mm256_loadu_si256((const __m256i *)(b + 32));
        for (int r = 0; r < 4; r++) {
            __m256i v = _mm256_set1_epi32(load32(&x[r][4 * q]));
            c[r][0] = _mm256_add_epi32(c[r][0], _mm256_madd_epi16(_mm256_maddubs_epi16(v, w0), ones));
            c[r][1] = _mm256_add_epi32(c[r][1], _mm256_madd_epi16(_mm256_maddubs_epi16(v, w1), ones));
        }
    }
    for (int r = 0; r < 4; r++) { _mm256_storeu_si256((__m256i *)result[r], c[r][0]); _mm256_storeu_si256((__m256i *)(result[r] + 8), c[r][1]); }
}

__attribute__((target("avx2"))) static void s16_tile(void) {
    __m256i c[4][2];
    for (int r = 0; r < 4; r++) c[r][0] = c[r][1] = _mm256_setzero_si256();
    for (int p = 0; p < K / 2; p++) {
        __m256i w0 = _mm256_loadu_si256((const __m256i *)(w16 + (size_t)p * 32)), w1 = _mm256_loadu_si256((const __m256i *)(w16 + (size_t)p * 32 + 16));
        for (int r = 0; r < 4; r++) {
            __m256i v = _mm256_set1_epi32(load32(&x16[r][2 * p]));
            c[r][0] = _mm256_add_epi32(c[r][0], _mm256_madd_epi16(v, w0));
            c[r][1] = _mm256_add_epi32(c[r][1], _mm256_madd_epi16(v, w1));
        }
    }
    for (int r = 0; r < 4; r++) { _mm256_storeu_si256((__m256i *)result[r], c[r][0]); _mm256_storeu_si256((__m256i *)(result[r] + 8), c[r][1]); }
}

__attribute__((target("avx2"))) static void s16_6_tile(void) {
    __m256i c[6][2];
    for (int r = 0; r < 6; r++) c[r][0] = c[r][1] = _mm256_setzero_si256();
    for (int p = 0; p < K / 2; p++) {
        __m256i w0 = _mm256_loadu_si256((const __m256i *)(w16 + (size_t)p * 32)), w1 = _mm256_loadu_si256((const __m256i *)(w16 + (size_t)p * 32 + 16));
        for (int r = 0; r < 6; r++) {
            __m256i v = _mm256_set1_epi32(load32(&x16[r][2 * p]));
            c[r][0] = _mm256_add_epi32(c[r][0], _mm256_madd_epi16(v, w0));
            c[r][1] = _mm256_add_epi32(c[r][1], _mm256_madd_epi16(v, w1));
        }
    }
    for (int r = 0; r < 6; r++) { _mm256_storeu_si256((__m256i *)result[r], c[r][0]); _mm256_storeu_si256((__m256i *)(result[r] + 8), c[r][1]); }
}

__attribute__((target("avx2"))) static void sign_pre6_tile(void) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i c[5][2];
    for (int r = 0; r < 5; r++) c[r][0] = c[r][1] = _mm256_setzero_si256();
    for (int q = 0; q < K / 4; q++) {
        __m256i w0 = _mm256_loadu_si256((const __m256i *)WQ(q)), w1 = _mm256_loadu_si256((const __m256i *)(WQ(q) + 32));
        for (int r = 0; r < 5; r++) {
            __m256i v = _mm256_set1_epi32(load32(&xflip[r][4 * q])), a = _mm256_set1_epi32(load32(&xabs[r][4 * q]));
            c[r][0] = _mm256_add_epi32(c[r][0], _mm256_madd_epi16(_mm256_maddubs_epi16(a, _mm256_sign_epi8(w0, v)), ones));
            c[r][1] = _mm256_add_epi32(c[r][1], _mm256_madd_epi16(_mm256_maddubs_epi16(a, _mm256_sign_epi8(w1, v)), ones));
        }
    }
    for (int r = 0; r < 5; r++) { _mm256_storeu_si256((__m256i *)result[r], c[r][0]); _mm256_storeu_si256((__m256i *)(result[r] + 8), c[r][1]); }
}

__attribute__((target("avx512f,avx512vl,avx512bw,avx512vnni"))) static void vnni_zmm_tile(void) {
    __m512i c[12][2];
    for (int r = 0; r < 12; r++) c[r][0] = c[r][1] = _mm512_setzero_si512();
    for (int q = 0; q < K / 4; q++) {
        __m512i w0 = _mm512_loadu_si512(WQ(q)), w1 = _mm512_loadu_si512(WQ(q) + 64);
        for (int r = 0; r < 12; r++) {
            __m512i v = _mm512_set1_epi32(load32(&x[r][4 * q]));
            c[r][0] = _mm512_dpbusd_epi32(c[r][0], v, w0);
            c[r][1] = _mm512_dpbusd_epi32(c[r][1], v, w1);
        }
    }
    for (int r = 0; r < 12; r++) { _mm512_storeu_si512(result[r], c[r][0]); _mm512_storeu_si512(result[r] + 16, c[r][1]); }
}

__attribute__((target("avx512f,avx512vl,avx512bw,avx512vnni"))) static void vnni_ymm_tile(void) {
    __m256i c[4][2];
    for (int r = 0; r < 4; r++) c[r][0] = c[r][1] = _mm256_setzero_si256();
    for (int q = 0; q < K / 4; q++) {
        __m256i w0 = _mm256_loadu_si256((const __m256i *)WQ(q)), w1 = _mm256_loadu_si256((const __m256i *)(WQ(q) + 32));
        for (int r = 0; r < 4; r++) {
            __m256i v = _mm256_set1_epi32(load32(&x[r][4 * q]));
            c[r][0] = _mm256_dpbusd_epi32(c[r][0], v, w0);
            c[r][1] = _mm256_dpbusd_epi32(c[r][1], v, w1);
        }
    }
    for (int r = 0; r < 4; r++) { _mm256_storeu_si256((__m256i *)result[r], c[r][0]); _mm256_storeu_si256((__m256i *)(result[r] + 8), c[r][1]); }
}

typedef struct {
    const char *name;
    void (*run)(void);
    int rows, cols;
    int kind;  // 0: Σ x·w, 1: Σ (x − 128)·w (sign transfer), 2: Σ x·w7, 3: Σ (x − z)·w, 4: float
    int needs;  // 0 avx2, 1 avx512 vnni
} variant;

int main(void) {
    srand(7);
    const int z = 100;
    for (int r = 0; r < ROWS; r++)
        for (int k = 0; k < K; k++) {
            x[r][k] = (uint8_t)rand();
            xflip[r][k] = x[r][k] ^ 0x80;
            int v = (int8_t)xflip[r][k];
            xabs[r][k] = (uint8_t)(v < 0 ? -v : v);
            x16[r][k] = (int16_t)(x[r][k] - z);
            xf[r][k] = (float)x[r][k];
        }
    int8_t plain[K][32];
    for (int k = 0; k < K; k++)
        for (int col = 0; col < 32; col++) {
            plain[k][col] = (int8_t)(rand() % 255 - 127);
            w[((size_t)(k / 4) * 32 + col) * 4 + k % 4] = plain[k][col];
            w7[((size_t)(k / 4) * 32 + col) * 4 + k % 4] = (int8_t)(plain[k][col] / 2);
            if (col < 16) {
                w16[((size_t)(k / 2) * 16 + col) * 2 + k % 2] = plain[k][col];
                wf[k * 16 + col] = (float)plain[k][col];
            }
        }
    // 7-bit weights sit in the 16-column layout of the AVX2 tile (stride 32 columns as the others).
    variant variants[] = {
        {"fp32 fma 6x16", fp32_tile, 6, 16, 4, 0},
        {"sign transfer 4x16", sign_tile, 4, 16, 1, 0},
        {"sign transfer, pre 4x16", sign_pre_tile, 4, 16, 1, 0},
        {"7-bit weights 4x16", seven_bit_tile, 4, 16, 2, 0},
        {"sign transfer, pre 5x16", sign_pre6_tile, 5, 16, 1, 0},
        {"s16 vpmaddwd 4x16", s16_tile, 4, 16, 3, 0},
        {"s16 vpmaddwd 6x16", s16_6_tile, 6, 16, 3, 0},
        {"vnni zmm 12x32", vnni_zmm_tile, 12, 32, 0, 1},
        {"vnni ymm 4x16", vnni_ymm_tile, 4, 16, 0, 1},
    };
    __builtin_cpu_init();
    int vnni = __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw");
    printf("variant\tGOP/s\tcheck\n");
    for (size_t v = 0; v < sizeof variants / sizeof *variants; v++) {
        variant *var = &variants[v];
        if (var->needs && !vnni) { printf("%s\t-\tno VNNI\n", var->name); continue; }
        memset(result, 0, sizeof result);
        var->run();
        int ok = 1;
        for (int r = 0; r < var->rows; r++)
            for (int col = 0; col < var->cols; col++) {
                long long s = 0;
                for (int k = 0; k < K; k++) {
                    int xv = var->kind == 1 ? x[r][k] - 128 : var->kind == 3 ? x[r][k] - z : x[r][k];
                    int wv = var->kind == 2 ? plain[k][col] / 2 : plain[k][col];
                    s += (long long)xv * wv;
                }
                if (var->kind == 4 ? resultf[r][col] != (float)s : result[r][col] != s) ok = 0;
            }
        double best = 1e30;
        for (int round = 0; round < 5; round++) {
            int calls = 0;
            double start = now(), elapsed;
            do {
                for (int i = 0; i < 100; i++) var->run();
                calls += 100;
                elapsed = now() - start;
            } while (elapsed < 0.1);
            if (elapsed / calls < best) best = elapsed / calls;
        }
        printf("%s\t%.1f\t%s\n", var->name, 2.0 * var->rows * var->cols * K / best / 1e9, ok ? "exact" : "WRONG");
    }
    return 0;
}
