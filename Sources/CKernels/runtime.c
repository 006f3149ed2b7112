// runtime.c — CPU detection, the instruction-set switch and the persistent thread pool every kernel shares.
#define _GNU_SOURCE
#ifdef __linux__
#include <malloc.h>
#endif
#include "ck_internal.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef CK_X86
#include <cpuid.h>
#endif

// MARK: - CPU detection

static int ck_detect_avx2_fma(void) {
#ifdef CK_X86
    unsigned eax, ebx, ecx, edx;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return 0;
    int osxsave = (ecx >> 27) & 1, avx = (ecx >> 28) & 1, fma = (ecx >> 12) & 1;
    if (!(osxsave && avx && fma)) return 0;
    unsigned xcr0_lo, xcr0_hi;
    __asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
    if ((xcr0_lo & 6) != 6) return 0;  // the OS saves XMM and YMM state
    if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return 0;
    return (ebx >> 5) & 1;
#else
    return 0;
#endif
}

/// `int name(void)` answering `detect()` once: cpuid traps to the hypervisor in a virtual machine (tens of
/// microseconds), so each answer is read once and kept.
#define CK_DETECTED_ONCE(name, detect)                                                 \
    static _Atomic int name##_known = -1;                                              \
    int name(void) {                                                                   \
        int known = atomic_load_explicit(&name##_known, memory_order_relaxed);         \
        if (known < 0) {                                                               \
            known = detect();                                                          \
            atomic_store_explicit(&name##_known, known, memory_order_relaxed);         \
        }                                                                              \
        return known;                                                                  \
    }

CK_DETECTED_ONCE(ck_cpu_has_avx2_fma, ck_detect_avx2_fma)

static int ck_detect_avx512(void) {
#ifdef CK_X86
    if (!ck_cpu_has_avx2_fma()) return 0;
    unsigned eax, ebx, ecx, edx;
    if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return 0;
    int f = (ebx >> 16) & 1, dq = (ebx >> 17) & 1, vl = (ebx >> 31) & 1;
    if (!(f && dq && vl)) return 0;
    unsigned xcr0_lo, xcr0_hi;
    __asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
    return (xcr0_lo & 0xE6) == 0xE6;  // XMM, YMM, opmask, ZMM_Hi256 and Hi16_ZMM state saved by the OS
#else
    return 0;
#endif
}

CK_DETECTED_ONCE(ck_cpu_has_avx512, ck_detect_avx512)

/// AMD family 19h (Zen 3 has no AVX-512, so: Zen 4) runs a 512-bit operation as two 256-bit halves, so its
/// AVX-512 FMA throughput is AVX2's; Zen 5 and Intel's AVX-512 cores run it at full width.
static int ck_detect_avx512_half_width(void) {
#ifdef CK_X86
    unsigned eax, ebx, ecx, edx;
    if (!__get_cpuid(0, &eax, &ebx, &ecx, &edx)) return 0;
    int amd = ebx == 0x68747541 && edx == 0x69746e65 && ecx == 0x444d4163;  // "AuthenticAMD"
    if (!amd || !__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return 0;
    unsigned family = (eax >> 8) & 0xF;
    if (family == 0xF) family += (eax >> 20) & 0xFF;
    return family == 0x19;
#else
    return 0;
#endif
}

CK_DETECTED_ONCE(ck_cpu_avx512_half_width, ck_detect_avx512_half_width)

static int ck_detect_avx512_vnni(void) {
#ifdef CK_X86
    if (!ck_cpu_has_avx512()) return 0;
    unsigned eax, ebx, ecx, edx;
    if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return 0;
    int bw = (ebx >> 30) & 1, vnni = (ecx >> 11) & 1;
    return bw && vnni;
#else
    return 0;
#endif
}

CK_DETECTED_ONCE(ck_cpu_has_avx512_vnni, ck_detect_avx512_vnni)

static _Atomic int ck_isa_state = CK_ISA_AUTO;

/// Whether the CPU and OS run the instruction-set level `isa` (scalar always).
static int ck_cpu_has(ck_isa isa) {
    switch (isa) {
    case CK_ISA_AVX2_FMA: return ck_cpu_has_avx2_fma();
    case CK_ISA_AVX512: return ck_cpu_has_avx512();
    case CK_ISA_AVX512_VNNI: return ck_cpu_has_avx512_vnni();
    default: return 1;
    }
}

/// The best instruction set the CPU offers, unless ONNXC_ISA (scalar, avx2, avx512, avx512vnni) asks for a lower
/// one: for comparisons, and for machines where AVX-512 lowers the clock more than it gains.
static ck_isa ck_best_isa(void) {
    ck_isa best = ck_cpu_has_avx512_vnni() ? CK_ISA_AVX512_VNNI
                  : ck_cpu_has_avx512()    ? CK_ISA_AVX512
                  : ck_cpu_has_avx2_fma()  ? CK_ISA_AVX2_FMA
                                           : CK_ISA_SCALAR;
    const char *requested = getenv("ONNXC_ISA");
    if (requested) {
        static const struct { const char *name; ck_isa isa; } names[] = {
            {"scalar", CK_ISA_SCALAR}, {"avx2", CK_ISA_AVX2_FMA}, {"avx512", CK_ISA_AVX512}, {"avx512vnni", CK_ISA_AVX512_VNNI}};
        for (size_t i = 0; i < sizeof names / sizeof *names; i++)
            if (strcmp(requested, names[i].name) == 0 && names[i].isa < best) return names[i].isa;
    }
    return best;
}

ck_isa ck_active_isa(void) {
    int isa = atomic_load_explicit(&ck_isa_state, memory_order_relaxed);
    if (isa == CK_ISA_AUTO) {
        isa = ck_best_isa();
        atomic_store(&ck_isa_state, isa);
    }
    return (ck_isa)isa;
}

ck_isa ck_set_isa(ck_isa isa) {
    if (isa < CK_ISA_AUTO || isa > CK_ISA_AVX512_VNNI || !ck_cpu_has(isa)) isa = CK_ISA_AUTO;
    if (isa == CK_ISA_AUTO) isa = ck_best_isa();
    atomic_store(&ck_isa_state, isa);
    return isa;
}

// MARK: - Thread pool

/// Physical cores: distinct (package, core) pairs in sysfs, else the online processor count.
static int ck_physical_cores(void) {
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    if (online < 1) online = 1;
    int seen[1024][2];
    int distinct = 0;
    for (long cpu = 0; cpu < online && cpu < 1024; cpu++) {
        char path[128];
        int ids[2] = {-1, -1};
        const char *names[2] = {"physical_package_id", "core_id"};
        for (int f = 0; f < 2; f++) {
            snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%ld/topology/%s", cpu, names[f]);
            FILE *file = fopen(path, "r");
            if (!file) return (int)online;
            if (fscanf(file, "%d", &ids[f]) != 1) ids[f] = -1;
            fclose(file);
        }
        int found = 0;
        for (int i = 0; i < distinct; i++) found |= seen[i][0] == ids[0] && seen[i][1] == ids[1];
        if (!found) { seen[distinct][0] = ids[0]; seen[distinct][1] = ids[1]; distinct++; }
    }
    return distinct > 0 ? distinct : (int)online;
}

#define CK_MAX_THREADS 64

/// The pool's job state in one atomic word: generation (high 32 bits), an "open" bit, and how many workers are
/// inside the job. A worker joins only while the job it saw is still open, so the caller never waits for a worker
/// that has not started (a descheduled worker on a busy machine costs nothing), and never overwrites the job's
/// fields while a joined worker may still read them.
#define CK_OPEN ((uint64_t)1 << 31)
#define CK_ACTIVE_MASK (CK_OPEN - 1)

static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int started;                          // workers created so far (only the caller owning `busy` touches it)
    _Atomic uint64_t state;               // generation << 32 | open | active workers
    void (*body)(void *, int);
    void *context;
    int count;
    _Atomic int next;                     // next index to hand out
    _Atomic int busy;                     // a caller owns the pool
} ck_pool = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER};

static _Atomic int ck_threads = 0;
static _Thread_local int ck_is_worker = 0;

int ck_num_threads(void) {
    int n = atomic_load_explicit(&ck_threads, memory_order_relaxed);
    if (n > 0) return n;
    const char *env = getenv("ONNXC_NUM_THREADS");
    n = env ? atoi(env) : 0;
    if (n <= 0) n = ck_physical_cores();
    if (n > CK_MAX_THREADS) n = CK_MAX_THREADS;
    atomic_store(&ck_threads, n);
    return n;
}

int ck_set_num_threads(int n) {
    if (n < 1) n = 1;
    if (n > CK_MAX_THREADS) n = CK_MAX_THREADS;
    atomic_store(&ck_threads, n);
    return n;
}

/// Pause instructions (tens of microseconds) a worker spins waiting for the next job before it sleeps: layers
/// follow each other closely, and a wake-up through the condition variable costs tens of microseconds.
#define CK_SPIN_PAUSES 4000

static inline void ck_pause(void) {
#ifdef CK_X86
    _mm_pause();
#endif
}

static inline uint32_t ck_generation(uint64_t state) { return (uint32_t)(state >> 32); }

static void *ck_worker(void *arg) {
    (void)arg;
    ck_is_worker = 1;
    uint32_t seen = 0;
    for (;;) {
        uint64_t state;
        int spins = 0;
        while (ck_generation(state = atomic_load_explicit(&ck_pool.state, memory_order_acquire)) == seen) {
            if (++spins < CK_SPIN_PAUSES) { ck_pause(); continue; }
            pthread_mutex_lock(&ck_pool.lock);
            while (ck_generation(atomic_load_explicit(&ck_pool.state, memory_order_acquire)) == seen)
                pthread_cond_wait(&ck_pool.wake, &ck_pool.lock);
            pthread_mutex_unlock(&ck_pool.lock);
        }
        seen = ck_generation(state);
        // Join the job only if it is still the one seen and still open.
        int joined = 0;
        while (ck_generation(state) == seen && (state & CK_OPEN)) {
            if (atomic_compare_exchange_weak_explicit(&ck_pool.state, &state, state + 1, memory_order_acquire,
                                                      memory_order_acquire)) {
                joined = 1;
                break;
            }
        }
        if (!joined) continue;
        void (*body)(void *, int) = ck_pool.body;
        void *context = ck_pool.context;
        int count = ck_pool.count, i;
        while ((i = atomic_fetch_add_explicit(&ck_pool.next, 1, memory_order_relaxed)) < count) body(context, i);
        atomic_fetch_sub_explicit(&ck_pool.state, 1, memory_order_release);
    }
    return NULL;
}

/// ck_parallel_for on at most `threads` threads.
void ck_parallel_run(int threads, int count, void (*body)(void *context, int index), void *context) {
    if (threads > count) threads = count;
    int expected = 0;
    if (threads <= 1 || ck_is_worker ||
        !atomic_compare_exchange_strong(&ck_pool.busy, &expected, 1)) {
        for (int i = 0; i < count; i++) body(context, i);
        return;
    }
    while (ck_pool.started < threads - 1) {
        pthread_t thread;
        pthread_attr_t attributes;
        pthread_attr_init(&attributes);
        pthread_attr_setdetachstate(&attributes, PTHREAD_CREATE_DETACHED);
        int failed = pthread_create(&thread, &attributes, ck_worker, NULL);
        pthread_attr_destroy(&attributes);
        if (failed) break;
        ck_pool.started++;
    }
    // Workers beyond `threads - 1` (after ck_set_num_threads lowered the count) may still join; the extra
    // parallelism is harmless, and results do not depend on who runs which index.
    ck_pool.body = body;
    ck_pool.context = context;
    ck_pool.count = count;
    atomic_store_explicit(&ck_pool.next, 0, memory_order_relaxed);
    uint64_t state = atomic_load_explicit(&ck_pool.state, memory_order_relaxed);
    uint64_t opened = ((uint64_t)(ck_generation(state) + 1) << 32) | CK_OPEN;
    pthread_mutex_lock(&ck_pool.lock);
    atomic_store_explicit(&ck_pool.state, opened, memory_order_release);
    pthread_cond_broadcast(&ck_pool.wake);
    pthread_mutex_unlock(&ck_pool.lock);
    int i;
    while ((i = atomic_fetch_add_explicit(&ck_pool.next, 1, memory_order_relaxed)) < count) body(context, i);
    // Every index is handed out: close the job, then wait for the workers inside it to finish theirs.
    atomic_fetch_and_explicit(&ck_pool.state, ~(uint64_t)CK_OPEN, memory_order_acq_rel);
    int spins = 0;
    while (atomic_load_explicit(&ck_pool.state, memory_order_acquire) & CK_ACTIVE_MASK) {
        if (++spins < CK_SPIN_PAUSES) ck_pause(); else sched_yield();
    }
    atomic_store_explicit(&ck_pool.busy, 0, memory_order_release);
}

static void ck_warm_task(void *context, int index) {
    (void)context;
    (void)index;
}

int ck_keep_freed_memory(void) {
#ifdef __GLIBC__
    return mallopt(M_TRIM_THRESHOLD, 256 << 20) == 1 && mallopt(M_MMAP_THRESHOLD, 32 << 20) == 1;
#else
    return 0;
#endif
}

void ck_pool_warm_up(void) {
    int threads = ck_num_threads();
    if (threads > 1) ck_parallel_run(threads, threads, ck_warm_task, NULL);
}

void ck_parallel_for(int count, void (*body)(void *context, int index), void *context) {
    ck_parallel_run(ck_num_threads(), count, body, context);
}

