// Pieces of the shared-memory collective (ShoalTrain's SharedMemoryCollective): a barrier for
// processes that map one segment, waiting on a futex, and the fixed-order sum of N slots.
#include "kernel_attributes.h"
#include "shoal_kernels.h"

#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <time.h>

#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif


#if defined(__x86_64__)
#include <immintrin.h>
#define SHOAL_PAUSE() _mm_pause()
#else
#define SHOAL_PAUSE() ((void)0)
#endif

typedef struct {
    _Atomic uint32_t arrived;
    _Atomic uint32_t generation;
    _Atomic uint32_t aborted;
    uint32_t unused;
} barrier_words;

_Static_assert(sizeof(barrier_words) == sizeof(shoal_shm_barrier), "the barrier's layout");

static long futex(_Atomic uint32_t *word, int operation, uint32_t value, const struct timespec *timeout) {
#if defined(__linux__)
    // Not FUTEX_PRIVATE_FLAG: the word lives in memory that other processes map.
    return syscall(SYS_futex, (uint32_t *)word, operation, value, timeout, NULL, 0);
#else
    (void)word; (void)operation; (void)value; (void)timeout;
    errno = ENOSYS;
    return -1;
#endif
}

uint32_t shoal_barrier_arrive(shoal_shm_barrier *barrier, uint32_t parties) {
    barrier_words *words = (barrier_words *)barrier;
    uint32_t generation = atomic_load_explicit(&words->generation, memory_order_acquire);
    if (atomic_fetch_add_explicit(&words->arrived, 1, memory_order_acq_rel) + 1 == parties) {
        // The others wait on the generation, so none can arrive again before it moves on.
        atomic_store_explicit(&words->arrived, 0, memory_order_relaxed);
        atomic_fetch_add_explicit(&words->generation, 1, memory_order_release);
        futex(&words->generation, FUTEX_WAKE, INT_MAX, NULL);
    }
    return generation;
}

int shoal_barrier_await(shoal_shm_barrier *barrier, uint32_t generation, long spins, int timeout_ms) {
    barrier_words *words = (barrier_words *)barrier;
    for (long i = 0; i < spins; i++) {
        if (atomic_load_explicit(&words->generation, memory_order_acquire) != generation) return 0;
        SHOAL_PAUSE();
    }
    struct timespec timeout = {timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000L};
    while (atomic_load_explicit(&words->generation, memory_order_acquire) == generation) {
        if (atomic_load_explicit(&words->aborted, memory_order_acquire)) return 2;
        long result = futex(&words->generation, FUTEX_WAIT, generation, &timeout);
        if (result == -1 && errno == ETIMEDOUT) {
            return atomic_load_explicit(&words->generation, memory_order_acquire) != generation ? 0 : 1;
        }
        if (result == -1 && errno == ENOSYS) return 3;
    }
    return 0;
}

void shoal_barrier_abort(shoal_shm_barrier *barrier) {
    barrier_words *words = (barrier_words *)barrier;
    atomic_store_explicit(&words->aborted, 1, memory_order_release);
    futex(&words->generation, FUTEX_WAKE, INT_MAX, NULL);
}

int shoal_barrier_aborted(const shoal_shm_barrier *barrier) {
    const barrier_words *words = (const barrier_words *)barrier;
    return (int)atomic_load_explicit(&((barrier_words *)words)->aborted, memory_order_acquire);
}

SHOAL_KERNEL void shoal_sum_slots(
    const float *slots, long slot_stride, int count, long offset, long n, float scale, float *out) {
    const float *first = slots + offset;
    for (long i = 0; i < n; i++) out[i] = first[i];
    // Slot after slot, in rank order: every rank of every run adds in the same order.
    for (int slot = 1; slot < count; slot++) {
        const float *source = slots + (long)slot * slot_stride + offset;
        for (long i = 0; i < n; i++) out[i] += source[i];
    }
    if (scale != 1.0f) {
        for (long i = 0; i < n; i++) out[i] *= scale;
    }
}
