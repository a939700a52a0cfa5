/*
 * threadpool.c — a small persistent pool for the kernels' parallel-for.
 *
 * Workers are started lazily, up to the most threads a call has asked for,
 * and split each region into contiguous chunks (a GEMV streams one slice of
 * the weights per thread). After a region they spin briefly before sleeping,
 * since a decode step issues its regions back to back; the caller is
 * thread 0 and does its own chunk. The thread count is chosen per call
 * (n_threads) under a process-wide cap (a simulated phone's cores).
 */
#include "kernels/kernels.h"

#include <pthread.h>
#include <stdlib.h>
#include <sched.h>
#include <unistd.h>

#define PLM_MAX_THREADS 256
#define PLM_SPIN_ITERS 20000

typedef struct {
    plm_task_fn fn;
    void *ctx;
    int64_t n;
    int n_threads;      /* threads in the current region, caller included */
} plm_job;

static pthread_mutex_t g_region_lock = PTHREAD_MUTEX_INITIALIZER; /* one region at a time */
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_wake = PTHREAD_COND_INITIALIZER;
static pthread_cond_t g_done = PTHREAD_COND_INITIALIZER;

static plm_job g_job;
static uint64_t g_generation;   /* bumped for each region; workers wait for a change */
static int g_pending;           /* workers of the current region still running */
static int g_sleeping_caller;   /* the caller waits on g_done */
static int g_workers;           /* started workers */
static int g_default_threads;   /* 0 until first use */
static int g_max_threads;       /* cap, 0 = none */
static int g_peak;              /* most threads that ran a chunk in one region */

static void run_chunk(const plm_job *job, int idx) {
    const int64_t per = job->n / job->n_threads, extra = job->n % job->n_threads;
    const int64_t begin = idx * per + (idx < extra ? idx : extra);
    const int64_t end = begin + per + (idx < extra ? 1 : 0);
    if (begin < end) job->fn(job->ctx, begin, end, idx);
}

static uint64_t g_start_gen[PLM_MAX_THREADS]; /* generation each worker was created in */

static void *worker_main(void *arg) {
    const int idx = (int)(intptr_t)arg;
    /* The region that created this worker may already have bumped the
     * generation; starting from the value before it means it is not missed. */
    uint64_t seen = g_start_gen[idx];
    for (;;) {
        /* spin a little: the next region of a decode step usually follows at once */
        int spins = 0;
        while (__atomic_load_n(&g_generation, __ATOMIC_ACQUIRE) == seen && spins < PLM_SPIN_ITERS) {
#if PLM_X86
            _mm_pause();
#endif
            spins++;
        }
        pthread_mutex_lock(&g_lock);
        while (g_generation == seen) pthread_cond_wait(&g_wake, &g_lock);
        seen = g_generation;
        const plm_job job = g_job;
        pthread_mutex_unlock(&g_lock);

        if (idx < job.n_threads) {
            run_chunk(&job, idx);
            if (__atomic_sub_fetch(&g_pending, 1, __ATOMIC_ACQ_REL) == 0) {
                pthread_mutex_lock(&g_lock);
                if (g_sleeping_caller) pthread_cond_signal(&g_done);
                pthread_mutex_unlock(&g_lock);
            }
        }
    }
    return NULL;
}

static int online_cpus(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (n > PLM_MAX_THREADS ? PLM_MAX_THREADS : (int)n);
}

int plm_set_num_threads(int n) {
    pthread_mutex_lock(&g_lock);
    const int prev = g_default_threads ? g_default_threads : online_cpus();
    g_default_threads = n > 0 ? (n > PLM_MAX_THREADS ? PLM_MAX_THREADS : n) : online_cpus();
    pthread_mutex_unlock(&g_lock);
    return prev;
}

int plm_get_num_threads(void) {
    pthread_mutex_lock(&g_lock);
    const int n = g_default_threads ? g_default_threads : online_cpus();
    pthread_mutex_unlock(&g_lock);
    return n;
}

int plm_set_max_threads(int n) {
    pthread_mutex_lock(&g_lock);
    const int prev = g_max_threads;
    g_max_threads = n > 0 ? n : 0;
    pthread_mutex_unlock(&g_lock);
    return prev;
}

int plm_get_max_threads(void) {
    pthread_mutex_lock(&g_lock);
    const int n = g_max_threads;
    pthread_mutex_unlock(&g_lock);
    return n;
}

int plm_effective_threads(int n_threads) {
    int n = n_threads > 0 ? n_threads : plm_get_num_threads();
    const int cap = plm_get_max_threads();
    if (cap > 0 && n > cap) n = cap;
    return n > PLM_MAX_THREADS ? PLM_MAX_THREADS : n;
}

int plm_pool_workers_started(void) { return __atomic_load_n(&g_workers, __ATOMIC_ACQUIRE); }
int plm_pool_peak_threads(void) { return __atomic_load_n(&g_peak, __ATOMIC_ACQUIRE); }
void plm_pool_reset_peak(void) { __atomic_store_n(&g_peak, 0, __ATOMIC_RELEASE); }

static void note_peak(int n) {
    int cur = __atomic_load_n(&g_peak, __ATOMIC_RELAXED);
    while (n > cur && !__atomic_compare_exchange_n(&g_peak, &cur, n, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
    }
}

/* Starts workers 1 .. want-1 that are not running yet; returns how many
 * threads (caller included) are available, which is fewer than asked only
 * when the system refuses to create a thread. */
static int ensure_workers(int want) {
    while (g_workers + 1 < want) {
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        g_start_gen[g_workers + 1] = __atomic_load_n(&g_generation, __ATOMIC_ACQUIRE);
        const int rc = pthread_create(&t, &attr, worker_main, (void *)(intptr_t)(g_workers + 1));
        pthread_attr_destroy(&attr);
        if (rc != 0) break;
        __atomic_add_fetch(&g_workers, 1, __ATOMIC_ACQ_REL);
    }
    return g_workers + 1 < want ? g_workers + 1 : want;
}

/* The region proper: nt threads (caller included) split [0, n); n == -1
 * means "one index per thread", n then being the thread count the pool gave. */
static int run_region(int64_t n, plm_task_fn fn, void *ctx, int nt) {
    pthread_mutex_lock(&g_region_lock);
    nt = ensure_workers(nt);
    if (n < 0) n = nt;
    pthread_mutex_lock(&g_lock);
    g_job.fn = fn;
    g_job.ctx = ctx;
    g_job.n = n;
    g_job.n_threads = nt;
    __atomic_store_n(&g_pending, nt - 1, __ATOMIC_RELEASE);
    __atomic_add_fetch(&g_generation, 1, __ATOMIC_ACQ_REL);
    pthread_cond_broadcast(&g_wake);
    pthread_mutex_unlock(&g_lock);

    note_peak(nt);
    run_chunk(&g_job, 0);

    int spins = 0;
    while (__atomic_load_n(&g_pending, __ATOMIC_ACQUIRE) > 0 && spins < PLM_SPIN_ITERS) {
#if PLM_X86
        _mm_pause();
#endif
        spins++;
    }
    if (__atomic_load_n(&g_pending, __ATOMIC_ACQUIRE) > 0) {
        pthread_mutex_lock(&g_lock);
        g_sleeping_caller = 1;
        while (__atomic_load_n(&g_pending, __ATOMIC_ACQUIRE) > 0) pthread_cond_wait(&g_done, &g_lock);
        g_sleeping_caller = 0;
        pthread_mutex_unlock(&g_lock);
    }
    pthread_mutex_unlock(&g_region_lock);
    return nt;
}

void plm_parallel_for(int64_t n, int64_t grain, plm_task_fn fn, void *ctx, int n_threads) {
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    int nt = plm_effective_threads(n_threads);
    const int64_t max_useful = (n + grain - 1) / grain;
    if (nt > max_useful) nt = (int)max_useful;
    if (nt <= 1) {
        note_peak(1);
        fn(ctx, 0, n, 0);
        return;
    }
    run_region(n, fn, ctx, nt);
}

typedef struct {
    plm_region_fn fn;
    void *ctx;
} region_ctx;

static void region_task(void *vctx, int64_t begin, int64_t end, int idx) {
    (void)begin;
    (void)end;
    const region_ctx *r = (const region_ctx *)vctx;
    r->fn(r->ctx, idx, __atomic_load_n(&g_job.n_threads, __ATOMIC_ACQUIRE));
}

int plm_parallel_region(plm_region_fn fn, void *ctx, int n_threads) {
    const int nt = plm_effective_threads(n_threads);
    if (nt <= 1) {
        note_peak(1);
        fn(ctx, 0, 1);
        return 1;
    }
    region_ctx r = {fn, ctx};
    return run_region(-1, region_task, &r, nt);
}

void plm_barrier_wait(plm_barrier *b, int nth) {
    if (nth <= 1) return;
    const int phase = __atomic_load_n(&b->phase, __ATOMIC_ACQUIRE);
    if (__atomic_add_fetch(&b->count, 1, __ATOMIC_ACQ_REL) == nth) {
        __atomic_store_n(&b->count, 0, __ATOMIC_RELAXED);
        __atomic_add_fetch(&b->phase, 1, __ATOMIC_ACQ_REL);
        return;
    }
    int spins = 0;
    while (__atomic_load_n(&b->phase, __ATOMIC_ACQUIRE) == phase) {
        if (++spins < PLM_SPIN_ITERS) {
#if PLM_X86
            _mm_pause();
#endif
        } else {
            sched_yield(); /* more threads than cores: let the late one run */
        }
    }
}
