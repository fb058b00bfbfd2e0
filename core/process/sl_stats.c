/*
 * sl_stats.c: the shared counter slots (see sl_stats.h). Each slot has one writer (its
 * worker); readers may see a counter mid-update of another, which for statistics is fine,
 * so plain relaxed atomics suffice.
 */
#include "process/sl_stats.h"

#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>

static _Atomic uint64_t (*slots)[SL_STAT_COUNT];

int sl_stats_init(void)
{
    if (slots != NULL)
        return SL_OK;
    void *p = mmap(NULL, sizeof(*slots) * SL_STATS_SLOTS, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return SL_ERROR;
    slots = p;
    return SL_OK;
}

static _Atomic uint64_t *own;

void sl_stats_bind(int index)
{
    if (slots == NULL || index < 0)
        return;
    own = slots[index % SL_STATS_SLOTS];
    for (int k = SL_STAT_ACTIVE; k <= SL_STAT_WAITING; k++)
        atomic_store_explicit(&own[k], 0, memory_order_relaxed);
}

void sl_stats_add(int counter, uint64_t n)
{
    if (own != NULL && counter >= 0 && counter < SL_STAT_COUNT)
        atomic_fetch_add_explicit(&own[counter], n, memory_order_relaxed);
}

void sl_stats_set(int counter, uint64_t v)
{
    if (own != NULL && counter >= 0 && counter < SL_STAT_COUNT)
        atomic_store_explicit(&own[counter], v, memory_order_relaxed);
}

void sl_stats_sum(uint64_t out[SL_STAT_COUNT])
{
    memset(out, 0, sizeof(uint64_t) * SL_STAT_COUNT);
    if (slots == NULL)
        return;
    for (size_t i = 0; i < SL_STATS_SLOTS; i++) {
        for (int k = 0; k < SL_STAT_COUNT; k++)
            out[k] += atomic_load_explicit(&slots[i][k], memory_order_relaxed);
    }
}
