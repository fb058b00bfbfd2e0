/*
 * sl_shdict.c: shared dictionaries in anonymous shared mappings (see sl_shdict.h).
 *
 * Zone layout, all links being byte offsets from the zone's start (0 = none):
 *
 *   [zone_hdr_t | bucket array (size_t x nbuckets) | heap ............ | end sentinel]
 *
 * Heap blocks: a 16-byte header {prev_size, size | USED | PREV_USED} then the payload.
 * prev_size is meaningful only when the previous block is free. Free blocks keep
 * {next, prev} free-list links in their payload and sit in one of NBINS lists by
 * floor(log2(size)). Neighbouring free blocks are always merged. The end sentinel is a
 * USED block of size 0, so nothing walks past the heap.
 *
 * Items (node_t) live in the heap: hash chain link, LRU links, expiry, then the key and
 * the value (or, for a list, {head, tail} of list elements, each its own heap block).
 */
#include "lua/sl_shdict.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define ZONE_MAGIC 0x534c53484449435aULL /* "SLSHDICZ" */

#define NBINS 48
#define BLK_USED 1u
#define BLK_PREV_USED 2u
#define BLK_HDR 16
#define BLK_MIN 32
#define BLK_FLAGS 15u

#define EXPIRE_TAIL_ON_WRITE 8 /* expired items freed at the LRU tail per write */
#define EVICT_SWEEP 256        /* LRU items inspected for expired ones when full */
#define EVICT_FORCE 30         /* live LRU items evicted at most per write */

typedef struct {
    uint64_t magic;
    pthread_mutex_t mutex;
    uint64_t dirty; /* a writer holds the lock; atomic */
    uint64_t recovered, reset;
    size_t size;
    size_t buckets_off, nbuckets; /* nbuckets is a power of two */
    size_t heap_start, heap_end;  /* heap_end: offset of the end sentinel */
    size_t lru_head, lru_tail;    /* head = most recently used */
    size_t free_bytes, nitems;
    size_t bins[NBINS];
} zone_hdr_t;

typedef struct {
    size_t hnext;
    size_t lru_prev, lru_next;
    uint64_t expires; /* ms; 0 = never */
    uint32_t hash;
    uint32_t flags;
    uint32_t vlen; /* value bytes, or list element count */
    uint16_t klen;
    uint8_t type;
    uint8_t pad;
} node_t;

typedef struct {
    size_t head, tail;
} list_t;

typedef struct {
    size_t prev, next;
    uint32_t len;
    uint8_t type;
    uint8_t pad[3];
} elem_t;

struct sl_shdict_s {
    char *name;
    size_t name_len;
    size_t size;
    unsigned char *base;
    zone_hdr_t *hdr;
};

static sl_shdict_t **zones;
static size_t nzones, zones_cap;
static sl_shdict_clock_cb clock_cb;

/* ---- helpers ------------------------------------------------------------------------ */

#define AT(base, off, type) ((type *)((base) + (off)))

static size_t align_up(size_t n, size_t a)
{
    return (n + a - 1) & ~(a - 1);
}

static uint64_t default_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t now_ms(void)
{
    return clock_cb ? clock_cb() : default_now_ms();
}

void sl_shdict_set_clock(sl_shdict_clock_cb cb)
{
    clock_cb = cb;
}

static uint32_t hash_key(const char *key, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)key[i];
        h *= 16777619u;
    }
    return h;
}

static int bin_of(size_t size)
{
    int b = 63 - __builtin_clzll((unsigned long long)size);
    return b >= NBINS ? NBINS - 1 : b;
}

/* ---- allocator ---------------------------------------------------------------------- */

static uint64_t *blk_word(unsigned char *b, size_t blk)
{
    return AT(b, blk + 8, uint64_t);
}

static uint64_t *blk_prev_size(unsigned char *b, size_t blk)
{
    return AT(b, blk, uint64_t);
}

static size_t *blk_link(unsigned char *b, size_t blk, int which)
{
    return AT(b, blk + BLK_HDR + (which ? sizeof(size_t) : 0), size_t);
}

static size_t blk_size(unsigned char *b, size_t blk)
{
    return (size_t)(*blk_word(b, blk) & ~(uint64_t)BLK_FLAGS);
}

static void bin_insert(unsigned char *b, zone_hdr_t *h, size_t blk)
{
    int i = bin_of(blk_size(b, blk));
    size_t head = h->bins[i];
    *blk_link(b, blk, 0) = head;
    *blk_link(b, blk, 1) = 0;
    if (head)
        *blk_link(b, head, 1) = blk;
    h->bins[i] = blk;
}

static void bin_remove(unsigned char *b, zone_hdr_t *h, size_t blk)
{
    size_t next = *blk_link(b, blk, 0), prev = *blk_link(b, blk, 1);
    if (prev)
        *blk_link(b, prev, 0) = next;
    else
        h->bins[bin_of(blk_size(b, blk))] = next;
    if (next)
        *blk_link(b, next, 1) = prev;
}

/* Returns the payload offset of a block with at least n bytes, or 0. */
static size_t heap_alloc(unsigned char *b, zone_hdr_t *h, size_t n)
{
    if (n > h->heap_end - h->heap_start)
        return 0;
    size_t need = align_up(n + BLK_HDR, 16);
    if (need < BLK_MIN)
        need = BLK_MIN;

    size_t blk = 0;
    int first = bin_of(need);
    for (size_t p = h->bins[first]; p; p = *blk_link(b, p, 0)) {
        if (blk_size(b, p) >= need) {
            blk = p;
            break;
        }
    }
    for (int i = first + 1; !blk && i < NBINS; i++)
        blk = h->bins[i];
    if (!blk)
        return 0;

    bin_remove(b, h, blk);
    size_t size = blk_size(b, blk);
    uint64_t prev_flag = *blk_word(b, blk) & BLK_PREV_USED;
    if (size - need >= BLK_MIN) {
        size_t rest = blk + need, rest_size = size - need;
        *blk_word(b, rest) = rest_size | BLK_PREV_USED;
        *blk_prev_size(b, rest + rest_size) = rest_size;
        bin_insert(b, h, rest);
        size = need;
    } else {
        *blk_word(b, blk + size) |= BLK_PREV_USED;
    }
    *blk_word(b, blk) = size | BLK_USED | prev_flag;
    h->free_bytes -= size;
    return blk + BLK_HDR;
}

static void heap_free(unsigned char *b, zone_hdr_t *h, size_t payload)
{
    size_t blk = payload - BLK_HDR;
    size_t size = blk_size(b, blk);
    h->free_bytes += size;

    size_t next = blk + size;
    if (!(*blk_word(b, next) & BLK_USED)) {
        bin_remove(b, h, next);
        size += blk_size(b, next);
    }
    if (!(*blk_word(b, blk) & BLK_PREV_USED)) {
        size_t prev = blk - (size_t)*blk_prev_size(b, blk);
        bin_remove(b, h, prev);
        size += blk_size(b, prev);
        blk = prev;
    }
    *blk_word(b, blk) = size | (*blk_word(b, blk) & BLK_PREV_USED);
    *blk_word(b, blk + size) &= ~(uint64_t)BLK_PREV_USED;
    *blk_prev_size(b, blk + size) = size;
    bin_insert(b, h, blk);
}

/* Empties the zone: buckets, LRU, heap. The mutex and the counters are kept. */
static void zone_reset(unsigned char *b, zone_hdr_t *h)
{
    memset(b + h->buckets_off, 0, h->nbuckets * sizeof(size_t));
    memset(h->bins, 0, sizeof(h->bins));
    h->lru_head = h->lru_tail = 0;
    h->nitems = 0;
    size_t free_size = h->heap_end - h->heap_start;
    *blk_prev_size(b, h->heap_start) = 0;
    *blk_word(b, h->heap_start) = free_size | BLK_PREV_USED;
    *blk_prev_size(b, h->heap_end) = free_size;
    *blk_word(b, h->heap_end) = BLK_USED; /* sentinel, size 0 */
    h->free_bytes = free_size;
    bin_insert(b, h, h->heap_start);
}

/* ---- items -------------------------------------------------------------------------- */

static node_t *N(sl_shdict_t *d, size_t off)
{
    return AT(d->base, off, node_t);
}

static unsigned char *node_key(node_t *n)
{
    return (unsigned char *)n + sizeof(node_t);
}

static unsigned char *node_val(node_t *n)
{
    return node_key(n) + align_up(n->klen, 8);
}

static size_t *bucket(sl_shdict_t *d, uint32_t hash)
{
    return AT(d->base, d->hdr->buckets_off, size_t) + (hash & (d->hdr->nbuckets - 1));
}

static int expired(const node_t *n, uint64_t now)
{
    return n->expires != 0 && n->expires <= now;
}

static size_t lookup(sl_shdict_t *d, const char *key, size_t klen, uint32_t hash)
{
    for (size_t off = *bucket(d, hash); off; off = N(d, off)->hnext) {
        node_t *n = N(d, off);
        if (n->hash == hash && n->klen == klen && memcmp(node_key(n), key, klen) == 0)
            return off;
    }
    return 0;
}

static void lru_unlink(sl_shdict_t *d, size_t off)
{
    zone_hdr_t *h = d->hdr;
    node_t *n = N(d, off);
    if (n->lru_prev)
        N(d, n->lru_prev)->lru_next = n->lru_next;
    else
        h->lru_head = n->lru_next;
    if (n->lru_next)
        N(d, n->lru_next)->lru_prev = n->lru_prev;
    else
        h->lru_tail = n->lru_prev;
    n->lru_prev = n->lru_next = 0;
}

static void lru_push_head(sl_shdict_t *d, size_t off)
{
    zone_hdr_t *h = d->hdr;
    node_t *n = N(d, off);
    n->lru_prev = 0;
    n->lru_next = h->lru_head;
    if (h->lru_head)
        N(d, h->lru_head)->lru_prev = off;
    else
        h->lru_tail = off;
    h->lru_head = off;
}

static void lru_touch(sl_shdict_t *d, size_t off)
{
    if (d->hdr->lru_head != off) {
        lru_unlink(d, off);
        lru_push_head(d, off);
    }
}

static void node_remove(sl_shdict_t *d, size_t off)
{
    node_t *n = N(d, off);
    size_t *link = bucket(d, n->hash);
    while (*link != off)
        link = &N(d, *link)->hnext;
    *link = n->hnext;
    lru_unlink(d, off);
    if (n->type == SL_SHDICT_TLIST) {
        list_t *l = (list_t *)node_val(n);
        for (size_t e = l->head; e;) {
            size_t next = AT(d->base, e, elem_t)->next;
            heap_free(d->base, d->hdr, e);
            e = next;
        }
    }
    heap_free(d->base, d->hdr, off);
    d->hdr->nitems--;
}

/* Frees up to max expired items at the LRU tail, stopping at the first live one. */
static void expire_tail(sl_shdict_t *d, uint64_t now, int max)
{
    for (int i = 0; i < max && d->hdr->lru_tail; i++) {
        size_t off = d->hdr->lru_tail;
        if (!expired(N(d, off), now))
            return;
        node_remove(d, off);
    }
}

/* Allocates n bytes; unless safe, frees expired items then evicts LRU ones to fit. */
static size_t make_room(sl_shdict_t *d, size_t n, int safe, uint64_t now, int *forcible)
{
    size_t off = heap_alloc(d->base, d->hdr, n);
    if (off || safe || n + BLK_HDR > d->hdr->heap_end - d->hdr->heap_start)
        return off; /* fits, must not evict, or could never fit: evict nothing */

    int freed = 0;
    size_t p = d->hdr->lru_tail;
    for (int i = 0; p && i < EVICT_SWEEP; i++) {
        size_t prev = N(d, p)->lru_prev;
        if (expired(N(d, p), now)) {
            node_remove(d, p);
            freed = 1;
        }
        p = prev;
    }
    if (freed && (off = heap_alloc(d->base, d->hdr, n)) != 0)
        return off;

    for (int i = 0; i < EVICT_FORCE && d->hdr->lru_tail; i++) {
        size_t tail = d->hdr->lru_tail;
        if (!expired(N(d, tail), now))
            *forcible = 1;
        node_remove(d, tail);
        if ((off = heap_alloc(d->base, d->hdr, n)) != 0)
            return off;
    }
    return 0;
}

static size_t node_create(sl_shdict_t *d, const char *key, size_t klen, uint32_t hash,
                          int type, size_t vlen, int safe, uint64_t now, int *forcible)
{
    size_t off = make_room(d, sizeof(node_t) + align_up(klen, 8) + vlen, safe, now, forcible);
    if (!off)
        return 0;
    node_t *n = N(d, off);
    memset(n, 0, sizeof(*n));
    n->hash = hash;
    n->klen = (uint16_t)klen;
    n->type = (uint8_t)type;
    n->vlen = (uint32_t)vlen;
    memcpy(node_key(n), key, klen);
    size_t *b = bucket(d, hash);
    n->hnext = *b;
    *b = off;
    lru_push_head(d, off);
    d->hdr->nitems++;
    return off;
}

static uint64_t expiry(uint64_t now, int64_t ttl_ms)
{
    return ttl_ms > 0 ? now + (uint64_t)ttl_ms : 0;
}

/* ---- locking ------------------------------------------------------------------------ */

int sl_shdict_lock(sl_shdict_t *d, int write)
{
    zone_hdr_t *h = d->hdr;
    int rc = pthread_mutex_lock(&h->mutex);
    if (rc == EOWNERDEAD) {
        /* The owner died inside its critical section: take over; if it was writing,
         * the structure may be half-updated, so start the zone afresh. */
        if (pthread_mutex_consistent(&h->mutex) != 0) {
            pthread_mutex_unlock(&h->mutex);
            return SL_ERROR;
        }
        h->recovered++;
        if (__atomic_load_n(&h->dirty, __ATOMIC_SEQ_CST)) {
            zone_reset(d->base, h);
            h->reset++;
            __atomic_store_n(&h->dirty, 0, __ATOMIC_SEQ_CST);
        }
    } else if (rc != 0) {
        return SL_ERROR;
    }
    if (write)
        __atomic_store_n(&h->dirty, 1, __ATOMIC_SEQ_CST);
    return SL_OK;
}

void sl_shdict_unlock(sl_shdict_t *d)
{
    __atomic_store_n(&d->hdr->dirty, 0, __ATOMIC_SEQ_CST);
    pthread_mutex_unlock(&d->hdr->mutex);
}

void sl_shdict_recoveries(sl_shdict_t *d, uint64_t *recovered, uint64_t *reset)
{
    if (sl_shdict_lock(d, 0) != SL_OK) {
        *recovered = *reset = 0;
        return;
    }
    *recovered = d->hdr->recovered;
    *reset = d->hdr->reset;
    sl_shdict_unlock(d);
}

/* ---- consistency check -------------------------------------------------------------- */

#define CHECK_FAIL(...)                                                                       \
    do {                                                                                      \
        snprintf(err, errlen, __VA_ARGS__);                                                   \
        rc = SL_ERROR;                                                                        \
        goto done;                                                                            \
    } while (0)

int sl_shdict_check(sl_shdict_t *d, char *err, size_t errlen)
{
    if (sl_shdict_lock(d, 0) != SL_OK) {
        snprintf(err, errlen, "lock failed");
        return SL_ERROR;
    }
    unsigned char *b = d->base;
    zone_hdr_t *h = d->hdr;
    int rc = SL_OK;
    size_t free_sum = 0, free_blocks = 0, listed = 0, items = 0, lru = 0;
    int prev_free = 0;
    size_t blk = h->heap_start;

    while (blk < h->heap_end) {
        uint64_t w = *blk_word(b, blk);
        size_t size = blk_size(b, blk);
        if (size < BLK_MIN || size % 16 || blk + size > h->heap_end)
            CHECK_FAIL("block at %zu: bad size %zu", blk, size);
        if (!!(w & BLK_PREV_USED) == prev_free)
            CHECK_FAIL("block at %zu: PREV_USED flag wrong", blk);
        if (!(w & BLK_USED)) {
            if (prev_free)
                CHECK_FAIL("block at %zu: two free blocks in a row", blk);
            if (*blk_prev_size(b, blk + size) != size)
                CHECK_FAIL("block at %zu: next prev_size wrong", blk);
            free_sum += size;
            free_blocks++;
        }
        prev_free = !(w & BLK_USED);
        blk += size;
    }
    if (blk != h->heap_end || !(*blk_word(b, blk) & BLK_USED))
        CHECK_FAIL("heap does not end at the sentinel");
    if (!!(*blk_word(b, blk) & BLK_PREV_USED) == prev_free)
        CHECK_FAIL("sentinel PREV_USED flag wrong");
    if (free_sum != h->free_bytes)
        CHECK_FAIL("free bytes %zu, counted %zu", h->free_bytes, free_sum);
    for (int i = 0; i < NBINS; i++) {
        size_t prev = 0;
        for (size_t p = h->bins[i]; p; p = *blk_link(b, p, 0)) {
            if (p < h->heap_start || p >= h->heap_end || (*blk_word(b, p) & BLK_USED) ||
                bin_of(blk_size(b, p)) != i || *blk_link(b, p, 1) != prev)
                CHECK_FAIL("bad free list entry %zu in bin %d", p, i);
            prev = p;
            if (++listed > free_blocks)
                CHECK_FAIL("free lists longer than the free blocks");
        }
    }
    if (listed != free_blocks)
        CHECK_FAIL("%zu free blocks, %zu listed", free_blocks, listed);
    for (size_t i = 0; i < h->nbuckets; i++) {
        for (size_t off = AT(b, h->buckets_off, size_t)[i]; off; off = N(d, off)->hnext) {
            if ((N(d, off)->hash & (h->nbuckets - 1)) != i)
                CHECK_FAIL("item in the wrong bucket");
            if (++items > h->nitems)
                CHECK_FAIL("more items in buckets than counted");
        }
    }
    size_t prev = 0;
    for (size_t off = h->lru_head; off; off = N(d, off)->lru_next) {
        if (N(d, off)->lru_prev != prev || ++lru > h->nitems)
            CHECK_FAIL("LRU list broken");
        prev = off;
    }
    if (prev != h->lru_tail || items != h->nitems || lru != h->nitems)
        CHECK_FAIL("items %zu, in buckets %zu, in LRU %zu", h->nitems, items, lru);

done:
    sl_shdict_unlock(d);
    return rc;
}

/* ---- master side -------------------------------------------------------------------- */

ssize_t sl_shdict_parse_size(const char *s, size_t len)
{
    size_t mult = 1, v = 0;
    if (len > 0) {
        switch (s[len - 1]) {
        case 'k': case 'K': mult = 1024; len--; break;
        case 'm': case 'M': mult = 1024 * 1024; len--; break;
        case 'g': case 'G': mult = 1024 * 1024 * 1024; len--; break;
        default: break;
        }
    }
    if (len == 0 || len > 18)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (size_t)(s[i] - '0');
    }
    if (v > (size_t)SSIZE_MAX / mult)
        return -1;
    return (ssize_t)(v * mult);
}

sl_shdict_t *sl_shdict_create(const char *name, size_t size, char *err, size_t errlen)
{
    size_t name_len = name ? strlen(name) : 0;
    if (name_len == 0 || name_len > SL_SHDICT_MAX_NAME_LEN) {
        snprintf(err, errlen, "bad shared dict name");
        return NULL;
    }
    if (sl_shdict_find(name, name_len)) {
        snprintf(err, errlen, "duplicate shared dict \"%s\"", name);
        return NULL;
    }
    if (size < SL_SHDICT_MIN_SIZE) {
        snprintf(err, errlen, "shared dict \"%s\" is too small: %zu bytes, at least %d",
                 name, size, SL_SHDICT_MIN_SIZE);
        return NULL;
    }
    if (size > ((size_t)1 << 46)) {
        snprintf(err, errlen, "shared dict \"%s\" is too large", name);
        return NULL;
    }

    sl_shdict_t *d = calloc(1, sizeof(*d));
    char *copy = malloc(name_len + 1);
    unsigned char *base = MAP_FAILED;
    int mutex_ok = 0;
    pthread_mutexattr_t attr;
    if (!d || !copy) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (nzones == zones_cap) {
        size_t cap = zones_cap ? zones_cap * 2 : 8;
        sl_shdict_t **nz = realloc(zones, cap * sizeof(*nz));
        if (!nz) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
        zones = nz;
        zones_cap = cap;
    }
    base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) {
        snprintf(err, errlen, "shared dict \"%s\": mmap(%zu) failed: %s", name, size,
                 strerror(errno));
        goto fail;
    }

    zone_hdr_t *h = (zone_hdr_t *)base;
    if (pthread_mutexattr_init(&attr) == 0) {
        mutex_ok = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED) == 0 &&
                   pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST) == 0 &&
                   pthread_mutex_init(&h->mutex, &attr) == 0;
        pthread_mutexattr_destroy(&attr);
    }
    if (!mutex_ok) {
        snprintf(err, errlen, "shared dict \"%s\": cannot create its mutex", name);
        goto fail;
    }

    size_t nb = 8;
    while (nb * 2 <= size / 256)
        nb *= 2;
    h->magic = ZONE_MAGIC;
    h->size = size;
    h->buckets_off = align_up(sizeof(zone_hdr_t), 16);
    h->nbuckets = nb;
    h->heap_start = align_up(h->buckets_off + nb * sizeof(size_t), 16);
    h->heap_end = (size & ~(size_t)15) - BLK_HDR;
    zone_reset(base, h);

    memcpy(copy, name, name_len + 1);
    d->name = copy;
    d->name_len = name_len;
    d->size = size;
    d->base = base;
    d->hdr = h;
    zones[nzones++] = d;
    return d;

fail:
    if (base != MAP_FAILED)
        munmap(base, size);
    free(copy);
    free(d);
    return NULL;
}

sl_shdict_t *sl_shdict_find(const char *name, size_t len)
{
    for (size_t i = 0; i < nzones; i++) {
        if (zones[i]->name_len == len && memcmp(zones[i]->name, name, len) == 0)
            return zones[i];
    }
    return NULL;
}

void sl_shdict_destroy_all(void)
{
    for (size_t i = 0; i < nzones; i++) {
        munmap(zones[i]->base, zones[i]->size);
        free(zones[i]->name);
        free(zones[i]);
    }
    free(zones);
    zones = NULL;
    nzones = zones_cap = 0;
}

/* ---- FFI ---------------------------------------------------------------------------- */

static const char *check_key(const char *key, size_t klen)
{
    if (klen == 0 || key == NULL)
        return "empty key";
    if (klen > SL_SHDICT_MAX_KEY_LEN)
        return "key too long";
    return NULL;
}

#define LOCK_OR_FAIL(d, write, v)                                                             \
    do {                                                                                      \
        if (sl_shdict_lock((d), (write)) != SL_OK) {                                          \
            if (v)                                                                            \
                (v)->err = "failed to lock the zone";                                         \
            return SL_ERROR;                                                                  \
        }                                                                                     \
    } while (0)

int sl_ffi_shdict_find(const char *name, size_t len, sl_shdict_t **out)
{
    *out = sl_shdict_find(name, len);
    return *out ? SL_OK : SL_DECLINED;
}

int sl_ffi_shdict_zones_count(void)
{
    return (int)nzones;
}

int sl_ffi_shdict_zone(int i, sl_shdict_t **out, const char **name, size_t *len)
{
    if (i < 0 || (size_t)i >= nzones)
        return SL_DECLINED;
    *out = zones[i];
    *name = zones[i]->name;
    *len = zones[i]->name_len;
    return SL_OK;
}

/* Reads a scalar value out of node n into v (string into buf when it fits). */
static int read_value(node_t *n, char *buf, size_t buflen, sl_shdict_val_t *v)
{
    unsigned char *val = node_val(n);
    v->type = n->type;
    v->len = 0;
    switch (n->type) {
    case SL_SHDICT_TSTRING:
        v->len = n->vlen;
        if (n->vlen > buflen)
            return SL_AGAIN;
        if (n->vlen)
            memcpy(buf, val, n->vlen);
        break;
    case SL_SHDICT_TNUMBER:
        memcpy(&v->num, val, sizeof(double));
        break;
    case SL_SHDICT_TBOOLEAN:
        v->num = val[0] ? 1 : 0;
        break;
    default:
        break;
    }
    return SL_OK;
}

int sl_ffi_shdict_get(sl_shdict_t *d, const char *key, size_t klen, int get_stale, char *buf,
                      size_t buflen, sl_shdict_val_t *v)
{
    v->type = SL_SHDICT_TNIL;
    v->flags = 0;
    v->stale = 0;
    v->len = 0;
    v->err = check_key(key, klen);
    if (v->err)
        return SL_ERROR;
    uint32_t hash = hash_key(key, klen);
    LOCK_OR_FAIL(d, 1, v);
    uint64_t now = now_ms();
    if (!get_stale)
        expire_tail(d, now, 2);
    int rc = SL_OK;
    size_t off = lookup(d, key, klen, hash);
    if (off) {
        node_t *n = N(d, off);
        int stale = expired(n, now);
        if (stale && !get_stale) {
            /* missing */
        } else if (n->type == SL_SHDICT_TLIST) {
            v->err = "value is a list";
            rc = SL_DECLINED;
        } else {
            rc = read_value(n, buf, buflen, v);
            if (rc == SL_OK) {
                v->flags = n->flags;
                v->stale = stale;
                if (!stale)
                    lru_touch(d, off);
            } else {
                v->type = SL_SHDICT_TNIL;
            }
        }
    }
    sl_shdict_unlock(d);
    return rc;
}

int sl_ffi_shdict_store(sl_shdict_t *d, int op, const char *key, size_t klen,
                        sl_shdict_val_t *v)
{
    v->forcible = 0;
    v->err = check_key(key, klen);
    if (v->err)
        return SL_ERROR;
    size_t vlen;
    switch (v->type) {
    case SL_SHDICT_TNIL: vlen = 0; break;
    case SL_SHDICT_TBOOLEAN: vlen = 1; break;
    case SL_SHDICT_TNUMBER: vlen = sizeof(double); break;
    case SL_SHDICT_TSTRING:
        if (v->len > UINT32_MAX || (v->len && !v->str)) {
            v->err = "bad value";
            return SL_ERROR;
        }
        vlen = v->len;
        break;
    default: v->err = "bad value type"; return SL_ERROR;
    }
    uint32_t hash = hash_key(key, klen);
    LOCK_OR_FAIL(d, 1, v);
    uint64_t now = now_ms();
    expire_tail(d, now, EXPIRE_TAIL_ON_WRITE);

    int rc = SL_OK;
    size_t off = lookup(d, key, klen, hash);
    int live = off && !expired(N(d, off), now);
    if ((op & SL_SHDICT_REPLACE) && !live) {
        v->err = "not found";
        rc = SL_DECLINED;
        goto done;
    }
    if ((op & SL_SHDICT_ADD) && live) {
        v->err = "exists";
        rc = SL_DECLINED;
        goto done;
    }
    if (v->type == SL_SHDICT_TNIL) {
        if (off)
            node_remove(d, off);
        goto done;
    }
    if (off && N(d, off)->type != SL_SHDICT_TLIST && N(d, off)->vlen == vlen) {
        lru_touch(d, off); /* same size: update in place */
    } else {
        if (off)
            node_remove(d, off);
        off = node_create(d, key, klen, hash, v->type, vlen, op & SL_SHDICT_SAFE, now,
                          &v->forcible);
        if (!off) {
            v->err = "no memory";
            rc = SL_DECLINED;
            goto done;
        }
    }
    node_t *n = N(d, off);
    n->type = (uint8_t)v->type;
    n->flags = v->flags;
    n->expires = expiry(now, v->ttl_ms);
    unsigned char *val = node_val(n);
    if (v->type == SL_SHDICT_TSTRING) {
        if (vlen)
            memcpy(val, v->str, vlen);
    } else if (v->type == SL_SHDICT_TNUMBER) {
        memcpy(val, &v->num, sizeof(double));
    } else {
        val[0] = v->num != 0;
    }

done:
    sl_shdict_unlock(d);
    return rc;
}

int sl_ffi_shdict_delete(sl_shdict_t *d, const char *key, size_t klen)
{
    sl_shdict_val_t v;
    memset(&v, 0, sizeof(v));
    v.type = SL_SHDICT_TNIL;
    return sl_ffi_shdict_store(d, 0, key, klen, &v);
}

int sl_ffi_shdict_incr(sl_shdict_t *d, const char *key, size_t klen, double value, int has_init,
                       double init, int64_t init_ttl_ms, sl_shdict_val_t *v)
{
    v->forcible = 0;
    v->err = check_key(key, klen);
    if (v->err)
        return SL_ERROR;
    uint32_t hash = hash_key(key, klen);
    LOCK_OR_FAIL(d, 1, v);
    uint64_t now = now_ms();
    expire_tail(d, now, EXPIRE_TAIL_ON_WRITE);

    int rc = SL_OK;
    double num;
    size_t off = lookup(d, key, klen, hash);
    node_t *n = off ? N(d, off) : NULL;
    if (n && !expired(n, now)) {
        if (n->type != SL_SHDICT_TNUMBER) {
            v->err = "not a number";
            rc = SL_DECLINED;
            goto done;
        }
        memcpy(&num, node_val(n), sizeof(double));
        num += value;
        memcpy(node_val(n), &num, sizeof(double));
        lru_touch(d, off);
        v->num = num;
        goto done;
    }
    if (!has_init) {
        v->err = "not found";
        rc = SL_DECLINED;
        goto done;
    }
    num = init + value;
    if (n && n->type == SL_SHDICT_TNUMBER) {
        lru_touch(d, off); /* expired number: reuse it */
    } else {
        if (n)
            node_remove(d, off);
        off = node_create(d, key, klen, hash, SL_SHDICT_TNUMBER, sizeof(double), 0, now,
                          &v->forcible);
        if (!off) {
            v->err = "no memory";
            rc = SL_DECLINED;
            goto done;
        }
        n = N(d, off);
    }
    n->type = SL_SHDICT_TNUMBER;
    n->flags = 0;
    n->expires = expiry(now, init_ttl_ms);
    memcpy(node_val(n), &num, sizeof(double));
    v->num = num;

done:
    sl_shdict_unlock(d);
    return rc;
}

int sl_ffi_shdict_push(sl_shdict_t *d, int right, const char *key, size_t klen,
                       sl_shdict_val_t *v)
{
    v->err = check_key(key, klen);
    if (v->err)
        return SL_ERROR;
    size_t dlen;
    if (v->type == SL_SHDICT_TNUMBER) {
        dlen = sizeof(double);
    } else if (v->type == SL_SHDICT_TSTRING && v->len <= UINT32_MAX && (v->str || !v->len)) {
        dlen = v->len;
    } else {
        v->err = "bad value type";
        return SL_ERROR;
    }
    uint32_t hash = hash_key(key, klen);
    LOCK_OR_FAIL(d, 1, v);
    uint64_t now = now_ms();
    expire_tail(d, now, EXPIRE_TAIL_ON_WRITE);

    int rc = SL_OK, created = 0, unused = 0;
    size_t off = lookup(d, key, klen, hash);
    if (off && expired(N(d, off), now)) {
        node_remove(d, off);
        off = 0;
    }
    if (off && N(d, off)->type != SL_SHDICT_TLIST) {
        v->err = "value not a list";
        rc = SL_DECLINED;
        goto done;
    }
    if (!off) {
        off = node_create(d, key, klen, hash, SL_SHDICT_TLIST, sizeof(list_t), 1, now, &unused);
        if (!off) {
            v->err = "no memory";
            rc = SL_DECLINED;
            goto done;
        }
        N(d, off)->vlen = 0;
        memset(node_val(N(d, off)), 0, sizeof(list_t));
        created = 1;
    }
    size_t e = heap_alloc(d->base, d->hdr, sizeof(elem_t) + dlen);
    if (!e) {
        if (created)
            node_remove(d, off);
        v->err = "no memory";
        rc = SL_DECLINED;
        goto done;
    }
    elem_t *el = AT(d->base, e, elem_t);
    el->type = (uint8_t)v->type;
    el->len = (uint32_t)dlen;
    if (v->type == SL_SHDICT_TNUMBER)
        memcpy(el + 1, &v->num, sizeof(double));
    else if (dlen)
        memcpy(el + 1, v->str, dlen);

    node_t *n = N(d, off);
    list_t *l = (list_t *)node_val(n);
    if (right) {
        el->prev = l->tail;
        el->next = 0;
        if (l->tail)
            AT(d->base, l->tail, elem_t)->next = e;
        else
            l->head = e;
        l->tail = e;
    } else {
        el->prev = 0;
        el->next = l->head;
        if (l->head)
            AT(d->base, l->head, elem_t)->prev = e;
        else
            l->tail = e;
        l->head = e;
    }
    n->vlen++;
    lru_touch(d, off);
    v->len = n->vlen;

done:
    sl_shdict_unlock(d);
    return rc;
}

int sl_ffi_shdict_pop(sl_shdict_t *d, int right, const char *key, size_t klen, char *buf,
                      size_t buflen, sl_shdict_val_t *v)
{
    v->type = SL_SHDICT_TNIL;
    v->len = 0;
    v->err = check_key(key, klen);
    if (v->err)
        return SL_ERROR;
    uint32_t hash = hash_key(key, klen);
    LOCK_OR_FAIL(d, 1, v);
    uint64_t now = now_ms();

    int rc = SL_OK;
    size_t off = lookup(d, key, klen, hash);
    if (off && expired(N(d, off), now)) {
        node_remove(d, off);
        off = 0;
    }
    if (!off)
        goto done;
    node_t *n = N(d, off);
    if (n->type != SL_SHDICT_TLIST) {
        v->err = "value not a list";
        rc = SL_DECLINED;
        goto done;
    }
    list_t *l = (list_t *)node_val(n);
    size_t e = right ? l->tail : l->head;
    if (!e) {
        node_remove(d, off);
        goto done;
    }
    elem_t *el = AT(d->base, e, elem_t);
    if (el->type == SL_SHDICT_TSTRING) {
        v->len = el->len;
        if (el->len > buflen) {
            rc = SL_AGAIN;
            goto done;
        }
        if (el->len)
            memcpy(buf, el + 1, el->len);
    } else {
        memcpy(&v->num, el + 1, sizeof(double));
    }
    v->type = el->type;
    if (el->prev)
        AT(d->base, el->prev, elem_t)->next = el->next;
    else
        l->head = el->next;
    if (el->next)
        AT(d->base, el->next, elem_t)->prev = el->prev;
    else
        l->tail = el->prev;
    heap_free(d->base, d->hdr, e);
    if (--n->vlen == 0)
        node_remove(d, off);
    else
        lru_touch(d, off);

done:
    sl_shdict_unlock(d);
    return rc;
}

int sl_ffi_shdict_llen(sl_shdict_t *d, const char *key, size_t klen, sl_shdict_val_t *v)
{
    v->len = 0;
    v->err = check_key(key, klen);
    if (v->err)
        return SL_ERROR;
    uint32_t hash = hash_key(key, klen);
    LOCK_OR_FAIL(d, 1, v);
    uint64_t now = now_ms();
    int rc = SL_OK;
    size_t off = lookup(d, key, klen, hash);
    if (off && expired(N(d, off), now)) {
        node_remove(d, off);
        off = 0;
    }
    if (off) {
        node_t *n = N(d, off);
        if (n->type != SL_SHDICT_TLIST) {
            v->err = "value not a list";
            rc = SL_DECLINED;
        } else {
            v->len = n->vlen;
            lru_touch(d, off);
        }
    }
    sl_shdict_unlock(d);
    return rc;
}

int sl_ffi_shdict_ttl(sl_shdict_t *d, const char *key, size_t klen, int64_t *ttl_ms)
{
    *ttl_ms = 0;
    if (check_key(key, klen))
        return SL_ERROR;
    uint32_t hash = hash_key(key, klen);
    LOCK_OR_FAIL(d, 0, (sl_shdict_val_t *)NULL);
    uint64_t now = now_ms();
    int rc = SL_DECLINED;
    size_t off = lookup(d, key, klen, hash);
    if (off && !expired(N(d, off), now)) {
        uint64_t exp = N(d, off)->expires;
        *ttl_ms = exp ? (int64_t)(exp - now) : 0;
        rc = SL_OK;
    }
    sl_shdict_unlock(d);
    return rc;
}

int sl_ffi_shdict_expire(sl_shdict_t *d, const char *key, size_t klen, int64_t ttl_ms)
{
    if (check_key(key, klen))
        return SL_ERROR;
    uint32_t hash = hash_key(key, klen);
    LOCK_OR_FAIL(d, 1, (sl_shdict_val_t *)NULL);
    uint64_t now = now_ms();
    int rc = SL_DECLINED;
    size_t off = lookup(d, key, klen, hash);
    if (off && !expired(N(d, off), now)) {
        N(d, off)->expires = expiry(now, ttl_ms);
        rc = SL_OK;
    }
    sl_shdict_unlock(d);
    return rc;
}

int sl_ffi_shdict_flush_all(sl_shdict_t *d)
{
    LOCK_OR_FAIL(d, 1, (sl_shdict_val_t *)NULL);
    for (size_t off = d->hdr->lru_head; off; off = N(d, off)->lru_next)
        N(d, off)->expires = 1;
    sl_shdict_unlock(d);
    return SL_OK;
}

int sl_ffi_shdict_flush_expired(sl_shdict_t *d, int max_count, int *freed)
{
    *freed = 0;
    LOCK_OR_FAIL(d, 1, (sl_shdict_val_t *)NULL);
    uint64_t now = now_ms();
    size_t off = d->hdr->lru_tail;
    while (off && (max_count <= 0 || *freed < max_count)) {
        size_t prev = N(d, off)->lru_prev;
        if (expired(N(d, off), now)) {
            node_remove(d, off);
            (*freed)++;
        }
        off = prev;
    }
    sl_shdict_unlock(d);
    return SL_OK;
}

int sl_ffi_shdict_get_keys_count(sl_shdict_t *d, int max_count, size_t *n, size_t *total_len)
{
    *n = *total_len = 0;
    LOCK_OR_FAIL(d, 0, (sl_shdict_val_t *)NULL);
    uint64_t now = now_ms();
    for (size_t off = d->hdr->lru_head; off; off = N(d, off)->lru_next) {
        if (max_count > 0 && *n >= (size_t)max_count)
            break;
        if (expired(N(d, off), now))
            continue;
        (*n)++;
        *total_len += N(d, off)->klen;
    }
    sl_shdict_unlock(d);
    return SL_OK;
}

int sl_ffi_shdict_get_keys(sl_shdict_t *d, int max_count, char *buf, size_t *buflen,
                           size_t *lens, size_t *n)
{
    size_t cap_n = *n, cap_len = *buflen, count = 0, used = 0;
    LOCK_OR_FAIL(d, 0, (sl_shdict_val_t *)NULL);
    uint64_t now = now_ms();
    for (size_t off = d->hdr->lru_head; off; off = N(d, off)->lru_next) {
        if (max_count > 0 && count >= (size_t)max_count)
            break;
        node_t *nd = N(d, off);
        if (expired(nd, now))
            continue;
        if (count < cap_n && used + nd->klen <= cap_len) {
            memcpy(buf + used, node_key(nd), nd->klen);
            lens[count] = nd->klen;
        }
        count++;
        used += nd->klen;
    }
    sl_shdict_unlock(d);
    *n = count;
    *buflen = used;
    return count <= cap_n && used <= cap_len ? SL_OK : SL_AGAIN;
}

int sl_ffi_shdict_capacity(sl_shdict_t *d, size_t *out)
{
    *out = d->size;
    return SL_OK;
}

int sl_ffi_shdict_free_space(sl_shdict_t *d, size_t *out)
{
    *out = 0;
    LOCK_OR_FAIL(d, 0, (sl_shdict_val_t *)NULL);
    *out = d->hdr->free_bytes;
    sl_shdict_unlock(d);
    return SL_OK;
}
