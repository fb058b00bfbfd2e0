/*
 * sl_stats.h: node-wide connection and request counters (nginx's stub_status, which Kong's
 * GET /status and kong.nginx.get_statistics() report).
 *
 * The master maps one shared, anonymous page of slots before it forks; each worker owns
 * the slot of its index. accepted/handled/requests are counted as they happen; the
 * connection states (active, reading, writing, waiting) are a snapshot the worker
 * publishes every second and whenever it is asked for the sum.
 */
#ifndef SL_STATS_H
#define SL_STATS_H

#include <stdint.h>

#include "sl_core.h"

enum {
    SL_STAT_ACTIVE = 0,
    SL_STAT_READING,
    SL_STAT_WRITING,
    SL_STAT_WAITING,
    SL_STAT_ACCEPTED,
    SL_STAT_HANDLED,
    SL_STAT_REQUESTS,
    SL_STAT_COUNT
};

#define SL_STATS_SLOTS 1024

/* In the master, once: the shared slots (zeroed). SL_ERROR if mmap fails. */
int sl_stats_init(void);
/* In a worker: its slot is that of index; the state snapshot starts at zero (a replaced
 * worker's connections are gone), the running totals go on. */
void sl_stats_bind(int index);
/* Updates this worker's slot (no-op before sl_stats_bind). */
void sl_stats_add(int counter, uint64_t n);
void sl_stats_set(int counter, uint64_t v);
/* Sums every slot into out[SL_STAT_COUNT]. */
void sl_stats_sum(uint64_t out[SL_STAT_COUNT]);

#endif
