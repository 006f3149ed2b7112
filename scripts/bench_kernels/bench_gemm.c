// GEMM throughput on the shapes onnxc's models produce: our CKernels kernel (compiled in) against OpenBLAS, BLIS
// and oneDNN (each dlopen'ed privately, so their cblas_sgemm symbols do not collide). Built and run by
// scripts/bench_kernels.py, which sets the thread counts through the environment (ONNXC_NUM_THREADS,
// OPENBLAS_NUM_THREADS, BLIS_NUM_THREADS, OMP_NUM_THREADS).
//
// The machine may be shared, so the libraries run interleaved (at one thread; with more, each library runs in its
// own process, see the script, since thread pools that spin after a call steal the other libraries' cores): for
// each shape, ROUNDS rounds, each timing every library for at least BENCH_SECONDS (default 0.1; a tiny value only
// checks the results), after a warm-up call and a 20 ms pause that lets other libraries' spinning threads go
// idle; a library's rate is its best round. Every shape is C[M×N] = W[M×K]·X[K×N] (a Conv as im2col:
// M = Cout, N = H·W, K = Cin·kh·kw) or, for the transformer rows, X[M×K]·W[K×N]. "ours, W packed" packs the weight
// operand once outside the timed loop (the compile-time prepacked case).
// Output: one tab-separated line per shape: name M N K, then GFLOP/s per library in the order of the header line.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ckernels.h"

#define ROUNDS 5

typedef struct { const char *name; int m, n, k, weight_is_a; } shape;

static const shape shapes[] = {
    {"resnet50 conv1 7x7/2 3->64", 64, 12544, 147, 1},
    {"resnet50 l1 1x1 64->64", 64, 3136, 64, 1},
    {"resnet50 l1 3x3 64->64", 64, 3136, 576, 1},
    {"resnet50 l1 1x1 64->256", 256, 3136, 64, 1},
    {"resnet50 l2 3x3 128->128", 128, 784, 1152, 1},
    {"resnet50 l2 1x1 128->512", 512, 784, 128, 1},
    {"resnet50 l3 3x3 256->256", 256, 196, 2304, 1},
    {"resnet50 l3 1x1 1024->256", 256, 196, 1024, 1},
    {"resnet50 l4 3x3 512->512", 512, 49, 4608, 1},
    {"resnet50 l4 1x1 512->2048", 2048, 49, 512, 1},
    {"mobilenet_v2 1x1 16->96 @112", 96, 12544, 16, 1},
    {"mobilenet_v2 1x1 144->24 @56", 24, 3136, 144, 1},
    {"mobilenet_v2 1x1 160->960 @7", 960, 49, 160, 1},
    {"mobilenet_v2 1x1 320->1280 @7", 1280, 49, 320, 1},
    {"bert_tiny qkv [16x64]x[64x192]", 16, 192, 64, 0},
    {"bert_tiny ffn1 [16x64]x[64x256]", 16, 256, 64, 0},
    {"bert_tiny ffn2 [16x256]x[256x64]", 16, 64, 256, 0},
    {"bert-base ffn1 [128x768]x[768x3072]", 128, 3072, 768, 0},
};

typedef void (*cblas_sgemm_fn)(int, int, int, int, int, int, float, const float *, int, const float *, int, float, float *, int);
typedef int (*dnnl_sgemm_fn)(char, char, long, long, long, float, const float *, long, const float *, long, float, float *, long);

static cblas_sgemm_fn openblas, blis;
static dnnl_sgemm_fn dnnl;

static void *load(const char *path, const char *symbol) {
    void *library = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!library) { fprintf(stderr, "skipping %s: %s\n", path, dlerror()); return NULL; }
    return dlsym(library, symbol);
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

typedef struct { int m, n, k; const float *a, *b; float *c; const float *packed; int weight_is_a; } call;

enum { OURS, OURS_PACKED, OPENBLAS, BLIS, DNNL, LIBS };
static const char *names[LIBS] = {"ours", "ours, W packed", "OpenBLAS", "BLIS", "oneDNN"};

static void run(int lib, const call *x) {
    // Row-major C = A·B: cblas with CblasRowMajor (101), CblasNoTrans (111); oneDNN's sgemm is row-major.
    switch (lib) {
    case OURS: {
        ck_operand A = {x->a, x->k, 1, 0}, B = {x->b, x->n, 1, 0};
        ck_sgemm(x->m, x->n, x->k, A, B, x->c, x->n, NULL);
        break;
    }
    case OURS_PACKED: {
        ck_operand A = {x->a, x->k, 1, 0}, B = {x->b, x->n, 1, 0};
        if (x->weight_is_a) A = (ck_operand){x->packed, 0, 0, 1}; else B = (ck_operand){x->packed, 0, 0, 1};
        ck_sgemm(x->m, x->n, x->k, A, B, x->c, x->n, NULL);
        break;
    }
    case OPENBLAS: openblas(101, 111, 111, x->m, x->n, x->k, 1, x->a, x->k, x->b, x->n, 0, x->c, x->n); break;
    case BLIS: blis(101, 111, 111, x->m, x->n, x->k, 1, x->a, x->k, x->b, x->n, 0, x->c, x->n); break;
    case DNNL: dnnl('N', 'N', x->m, x->n, x->k, 1, x->a, x->k, x->b, x->n, 0, x->c, x->n); break;
    }
}

static int selected[LIBS] = {1, 1, 1, 1, 1};

static int available(int lib) {
    if (!selected[lib]) return 0;
    return lib == OURS || lib == OURS_PACKED || (lib == OPENBLAS && openblas) || (lib == BLIS && blis) || (lib == DNNL && dnnl);
}

/// argv[1], if given: the libraries to run, comma-separated among ours, openblas, blis, dnnl ("ours" runs both
/// of our columns); the others print "-".
int main(int argc, char **argv) {
    if (argc > 1) {
        const char *keys[LIBS] = {"ours", "ours", "openblas", "blis", "dnnl"};
        for (int lib = 0; lib < LIBS; lib++) selected[lib] = strstr(argv[1], keys[lib]) != NULL;
    }
    openblas = (cblas_sgemm_fn)load("/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0", "cblas_sgemm");
    blis = (cblas_sgemm_fn)load("/usr/lib/x86_64-linux-gnu/blis-openmp/libblis.so.4", "cblas_sgemm");
    dnnl = (dnnl_sgemm_fn)load("libdnnl.so.2", "dnnl_sgemm");
    const char *seconds_env = getenv("BENCH_SECONDS");
    double seconds = seconds_env ? atof(seconds_env) : 0.1;
    printf("shape\tM\tN\tK");
    for (int lib = 0; lib < LIBS; lib++) printf("\t%s", names[lib]);
    printf("\tmax error\n");
    srand(1);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        shape sh = shapes[s];
        float *a = malloc(sizeof(float) * sh.m * sh.k), *b = malloc(sizeof(float) * sh.k * sh.n);
        float *c = malloc(sizeof(float) * sh.m * sh.n);
        for (int i = 0; i < sh.m * sh.k; i++) a[i] = (float)((double)rand() / RAND_MAX) - 0.5f;
        for (int i = 0; i < sh.k * sh.n; i++) b[i] = (float)((double)rand() / RAND_MAX) - 0.5f;
        float *p = malloc(sizeof(float) * (sh.weight_is_a ? ck_sgemm_packed_a_size(sh.m, sh.k) : ck_sgemm_packed_b_size(sh.k, sh.n)));
        if (sh.weight_is_a) ck_sgemm_pack_a(sh.m, sh.k, a, sh.k, 1, p); else ck_sgemm_pack_b(sh.k, sh.n, b, sh.n, 1, p);
        call x = {sh.m, sh.n, sh.k, a, b, c, p, sh.weight_is_a};
        double best[LIBS] = {0}, err = 0;
        for (int round = 0; round < ROUNDS; round++) {
            for (int lib = 0; lib < LIBS; lib++) {
                if (!available(lib)) continue;
                usleep(20000);
                run(lib, &x);
                int reps = 0;
                double start = now(), elapsed;
                do { run(lib, &x); reps++; } while ((elapsed = now() - start) < seconds);
                double gflops = 2.0 * sh.m * sh.n * sh.k * reps / elapsed * 1e-9;
                if (gflops > best[lib]) best[lib] = gflops;
                // Every library's product against a double-precision reference on a few entries.
                for (int t = 0; t < 16; t++) {
                    int i = rand() % sh.m, j = rand() % sh.n;
                    double r = 0;
                    for (int q = 0; q < sh.k; q++) r += (double)a[i * sh.k + q] * b[q * sh.n + j];
                    err = fmax(err, fabs(r - c[i * sh.n + j]));
                }
                memset(c, 0, sizeof(float) * sh.m * sh.n);
            }
        }
        printf("%s\t%d\t%d\t%d", sh.name, sh.m, sh.n, sh.k);
        for (int lib = 0; lib < LIBS; lib++) {
            if (available(lib)) printf("\t%.1f", best[lib]); else printf("\t-");
        }
        printf("\t%.1e\n", err);
        fflush(stdout);
        free(a); free(b); free(c); free(p);
    }
    return 0;
}
