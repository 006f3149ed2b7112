// linalg.c — dense double-precision Cholesky factorization and solves, for compile-time fits (the least-squares
// refit of pruned layers): n³/6 multiply-adds in dot products of rows, which want FMA lanes, not Swift's SSE2.
#include "ck_internal.h"

static double ck_dot_f64_scalar(const double *a, const double *b, int n) {
    double s = 0;
    for (int k = 0; k < n; k++) s += a[k] * b[k];
    return s;
}

static void ck_axpy_f64_scalar(double *y, const double *x, double f, int n) {
    for (int k = 0; k < n; k++) y[k] -= f * x[k];
}

#ifdef CK_X86
CK_AVX2 static double ck_dot_f64_avx2(const double *a, const double *b, int n) {
    __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd(), s2 = _mm256_setzero_pd(), s3 = _mm256_setzero_pd();
    int k = 0;
    for (; k + 16 <= n; k += 16) {
        s0 = _mm256_fmadd_pd(_mm256_loadu_pd(a + k), _mm256_loadu_pd(b + k), s0);
        s1 = _mm256_fmadd_pd(_mm256_loadu_pd(a + k + 4), _mm256_loadu_pd(b + k + 4), s1);
        s2 = _mm256_fmadd_pd(_mm256_loadu_pd(a + k + 8), _mm256_loadu_pd(b + k + 8), s2);
        s3 = _mm256_fmadd_pd(_mm256_loadu_pd(a + k + 12), _mm256_loadu_pd(b + k + 12), s3);
    }
    for (; k + 4 <= n; k += 4) s0 = _mm256_fmadd_pd(_mm256_loadu_pd(a + k), _mm256_loadu_pd(b + k), s0);
    __m256d s = _mm256_add_pd(_mm256_add_pd(s0, s1), _mm256_add_pd(s2, s3));
    __m128d h = _mm_add_pd(_mm256_castpd256_pd128(s), _mm256_extractf128_pd(s, 1));
    double r = _mm_cvtsd_f64(_mm_add_sd(h, _mm_unpackhi_pd(h, h)));
    for (; k < n; k++) r += a[k] * b[k];
    return r;
}

CK_AVX2 static void ck_axpy_f64_avx2(double *y, const double *x, double f, int n) {
    __m256d v = _mm256_set1_pd(f);
    int k = 0;
    for (; k + 4 <= n; k += 4) _mm256_storeu_pd(y + k, _mm256_fnmadd_pd(v, _mm256_loadu_pd(x + k), _mm256_loadu_pd(y + k)));
    for (; k < n; k++) y[k] -= f * x[k];
}
#endif

/// Row-oriented (Crout) order in blocks of rows: each finished row j is read once per block while it is hot in L1
/// and the block's rows sit in L2, instead of once per row (the plain order streams the whole triangle from memory
/// n times: 45 GB for a 3,232-wide fit).
int ck_cholesky_f64(int n, double *a) {
    double (*dot)(const double *, const double *, int) = ck_dot_f64_scalar;
#ifdef CK_X86
    if (ck_isa_avx2(CK_ISA_AUTO)) dot = ck_dot_f64_avx2;
#endif
    enum { block = 16 };
    for (int first = 0; first < n; first += block) {
        int last = first + block < n ? first + block : n;
        for (int j = 0; j < last; j++) {
            const double *rj = a + (size_t)j * n;
            for (int i = j > first ? j : first; i < last; i++) {
                double *ri = a + (size_t)i * n;
                double v = ri[j] - dot(ri, rj, j);
                if (i == j) {
                    if (!(v > 0)) return 0;
                    ri[j] = sqrt(v);
                } else {
                    ri[j] = v / rj[j];
                }
            }
        }
    }
    return 1;
}

void ck_cholesky_solve_f64(int n, const double *l, int m, double *b) {
    void (*axpy)(double *, const double *, double, int) = ck_axpy_f64_scalar;
#ifdef CK_X86
    if (ck_isa_avx2(CK_ISA_AUTO)) axpy = ck_axpy_f64_avx2;
#endif
    for (int i = 0; i < n; i++) {
        double *bi = b + (size_t)i * m;
        for (int k = 0; k < i; k++) {
            double f = l[(size_t)i * n + k];
            if (f != 0) axpy(bi, b + (size_t)k * m, f, m);
        }
        double d = l[(size_t)i * n + i];
        for (int c = 0; c < m; c++) bi[c] /= d;
    }
    for (int i = n - 1; i >= 0; i--) {
        double *bi = b + (size_t)i * m;
        for (int k = i + 1; k < n; k++) {
            double f = l[(size_t)k * n + i];
            if (f != 0) axpy(bi, b + (size_t)k * m, f, m);
        }
        double d = l[(size_t)i * n + i];
        for (int c = 0; c < m; c++) bi[c] /= d;
    }
}
