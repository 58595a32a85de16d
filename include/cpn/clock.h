#pragma once
/*
 * Monotonic deadlines for pthread_cond_timedwait. Every timed wait in the
 * project runs on CLOCK_MONOTONIC, so a wall clock stepped by NTP or a VM
 * resume can neither stretch nor cut a wait short.
 */
#include <pthread.h>
#include <stdbool.h>
#include <time.h>

/* Initialises @cv to time its waits on CLOCK_MONOTONIC. Returns 0 or an
 * errno value, as pthread_cond_init. */
static inline int cpn_cond_init_monotonic(pthread_cond_t *cv) {
        pthread_condattr_t attr;
        int r = pthread_condattr_init(&attr);

        if (r)
                return r;
        r = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
        if (!r)
                r = pthread_cond_init(cv, &attr);
        pthread_condattr_destroy(&attr);
        return r;
}

/* *@dl = @from + @ms (ms >= 0). */
static inline void cpn_deadline_after(struct timespec *dl, const struct timespec *from, long ms) {
        dl->tv_sec = from->tv_sec + ms / 1000;
        dl->tv_nsec = from->tv_nsec + (ms % 1000) * 1000000L;
        if (dl->tv_nsec >= 1000000000L) {
                dl->tv_sec++;
                dl->tv_nsec -= 1000000000L;
        }
}

/* *@dl = now (CLOCK_MONOTONIC) + @ms. */
static inline void cpn_deadline_in(struct timespec *dl, long ms) {
        struct timespec now;

        clock_gettime(CLOCK_MONOTONIC, &now);
        cpn_deadline_after(dl, &now, ms);
}

/* With @mu held: sleeps on @cv until *@stop is set (and @cv signalled) or
 * @ms have passed on CLOCK_MONOTONIC (@cv made by cpn_cond_init_monotonic).
 * The sleep of a background thread between two rounds of its work. */
static inline void cpn_cond_nap(pthread_cond_t *cv, pthread_mutex_t *mu, long ms, const bool *stop) {
        struct timespec dl;

        cpn_deadline_in(&dl, ms);
        while (!*stop)
                if (pthread_cond_timedwait(cv, mu, &dl) != 0)
                        break;
}
