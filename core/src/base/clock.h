/* Internal: the one monotonic clock of libbatchlab and the batchlab command (benchmarks in
 * bench/ link only the public API and keep their own timer). */
#ifndef BATCHLAB_BASE_CLOCK_H
#define BATCHLAB_BASE_CLOCK_H

#include <stdint.h>

/* Seconds on CLOCK_MONOTONIC (an arbitrary origin: only differences mean anything). */
double bl__now(void);

/* The same clock in nanoseconds, for spin-waits that compare many short intervals. */
int64_t bl__now_ns(void);

/* Sleeps for about `us` microseconds (a signal may end it early; the callers poll). */
void bl__sleep_us(int64_t us);

#endif
