/*
 * sl_shdict.h: shared dictionaries (OpenResty's ngx.shared.DICT) for every worker.
 *
 * A zone is one anonymous MAP_SHARED mapping made by the master before it forks the
 * workers; the workers inherit the mapping at the same address and the process-local
 * registry that names it. Inside a zone: a header with a process-shared robust mutex, a
 * fixed hash table, an LRU list and a first-fit allocator (size-class free lists,
 * boundary tags, coalescing) bounded by the zone's size. Nothing in a zone ever points
 * outside it: links are offsets from the zone's start.
 *
 * Values are nil, booleans, numbers (double) and strings with 32-bit user flags and an
 * expiry in milliseconds (0 = never). Expired items are removed lazily (a lookup treats
 * them as missing; a write frees expired items at the LRU tail) and, when a write does
 * not fit, expired items then the least recently used ones are evicted ("forcible").
 * The safe_* writes never evict and fail with "no memory". A key may also hold a list
 * of numbers and strings (push/pop/llen); list pushes never evict.
 *
 * Concurrency: every operation takes the zone's mutex. A process that dies holding it
 * (SIGKILL) leaves it EOWNERDEAD; the next locker marks it consistent and, when the dead
 * owner was in the middle of a write, empties the zone (its structure cannot be trusted)
 * so the zone never wedges and is never corrupt.
 *
 * Errors: the FFI functions return SL_OK, SL_DECLINED (a normal failure: "exists",
 * "not found", "no memory", "not a number", "value not a list", "value is a list"),
 * SL_AGAIN (the caller's buffer is too small; the needed size is reported and nothing
 * changed) or SL_ERROR (bad arguments, lock failure). Messages are static strings.
 */
#ifndef SL_SHDICT_H
#define SL_SHDICT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "sl_core.h"

typedef struct sl_shdict_s sl_shdict_t;

#define SL_SHDICT_MIN_SIZE 8192
#define SL_SHDICT_MAX_KEY_LEN 65535
#define SL_SHDICT_MAX_NAME_LEN 255

/* Value types: the same numbers as Lua's type tags (and lua-nginx-module's). */
#define SL_SHDICT_TNIL 0
#define SL_SHDICT_TBOOLEAN 1
#define SL_SHDICT_TNUMBER 3
#define SL_SHDICT_TSTRING 4
#define SL_SHDICT_TLIST 5

/* Store operations (bits, as lua-nginx-module's): 0 = set, ADD, REPLACE, | SAFE. */
#define SL_SHDICT_ADD 0x0001
#define SL_SHDICT_REPLACE 0x0002
#define SL_SHDICT_SAFE 0x0004

/* ---- master side ------------------------------------------------------------------- */

/*
 * Creates zone `name` of `size` bytes (at least SL_SHDICT_MIN_SIZE) and registers it.
 * Call in the master before forking workers. Returns the zone (owned by the registry,
 * valid until sl_shdict_destroy_all) or NULL with a message in err (NUL-terminated,
 * truncated to errlen): bad name, duplicate name, too small, mmap/mutex failure.
 */
sl_shdict_t *sl_shdict_create(const char *name, size_t size, char *err, size_t errlen);

/* The registered zone called name[0..len), or NULL. */
sl_shdict_t *sl_shdict_find(const char *name, size_t len);

/* Unmaps every zone in this process and empties the registry. Other processes keep
 * their own mappings. Handles obtained before are invalid afterwards. */
void sl_shdict_destroy_all(void);

/* Parses an nginx size: digits with an optional k/K or m/M or g/G suffix ("5m").
 * Returns the byte count or -1 (empty, junk, overflow). */
ssize_t sl_shdict_parse_size(const char *s, size_t len);

/* Milliseconds for expiry; defaults to CLOCK_MONOTONIC (one clock for every process on
 * the machine). Tests inject their own; NULL restores the default. Process-local. */
typedef uint64_t (*sl_shdict_clock_cb)(void);
void sl_shdict_set_clock(sl_shdict_clock_cb now_ms);

/* Takes / releases the zone's lock as an operation does (write != 0 marks the zone as
 * being modified until the unlock). For tests and diagnostics only. sl_shdict_lock
 * returns SL_OK or SL_ERROR. */
int sl_shdict_lock(sl_shdict_t *d, int write);
void sl_shdict_unlock(sl_shdict_t *d);

/* Walks the zone's heap, free lists, hash table and LRU list and verifies they agree.
 * SL_OK, or SL_ERROR with the first inconsistency in err. For tests and diagnostics. */
int sl_shdict_check(sl_shdict_t *d, char *err, size_t errlen);

/* How many times this zone was recovered from a dead lock owner, and how many of those
 * emptied it (shared counters). */
void sl_shdict_recoveries(sl_shdict_t *d, uint64_t *recovered, uint64_t *reset);

/* ---- FFI (LuaJIT) -------------------------------------------------------------------- */

/*
 * In/out record of one value. Inputs as marked; outputs are written by the call.
 * `str` is borrowed for the duration of the call only. `err` points to a static string.
 */
typedef struct sl_shdict_val_s {
    int type;          /* in: store, push; out: get, pop (SL_SHDICT_T*) */
    uint32_t flags;    /* in: store (user flags); out: get */
    double num;        /* in: store/push number or boolean (0/1); out: get, pop, incr */
    const char *str;   /* in: store/push string bytes */
    size_t len;        /* in: string length; out: string length (get, pop), list length */
    int64_t ttl_ms;    /* in: store exptime in ms (0 = never) */
    int stale;         /* out: get with get_stale: the value had expired */
    int forcible;      /* out: store, incr: live items were evicted to make room */
    const char *err;   /* out: why SL_DECLINED / SL_ERROR */
} sl_shdict_val_t;

/* Zone by name: SL_OK with *out, or SL_DECLINED. */
int sl_ffi_shdict_find(const char *name, size_t len, sl_shdict_t **out);

/* Registered zones in creation order: the count, then each zone and its name (borrowed
 * from the registry). sl_ffi_shdict_zone returns SL_DECLINED past the end. */
int sl_ffi_shdict_zones_count(void);
int sl_ffi_shdict_zone(int i, sl_shdict_t **out, const char **name, size_t *len);

/*
 * Looks key up. SL_OK: v->type (TNIL when missing or expired unless get_stale), v->flags,
 * v->num (numbers; booleans as 0/1), v->len and the string copied into buf, v->stale.
 * SL_AGAIN: the string needs v->len bytes, more than buflen; nothing copied, retry with
 * a bigger buffer. SL_DECLINED: "value is a list". A hit moves the key to the LRU head.
 */
int sl_ffi_shdict_get(sl_shdict_t *d, const char *key, size_t klen, int get_stale, char *buf,
                      size_t buflen, sl_shdict_val_t *v);

/*
 * set/add/replace, plain or SL_SHDICT_SAFE, from v->type/num/str/len/flags/ttl_ms.
 * A nil value deletes. SL_OK, v->forcible; SL_DECLINED with "exists" (add on a live key),
 * "not found" (replace on a missing key), "no memory".
 */
int sl_ffi_shdict_store(sl_shdict_t *d, int op, const char *key, size_t klen,
                        sl_shdict_val_t *v);

/* Removes key (a missing key is fine): SL_OK, or SL_ERROR on bad arguments. */
int sl_ffi_shdict_delete(sl_shdict_t *d, const char *key, size_t klen);

/*
 * Adds value to the number at key. Missing/expired: "not found" unless has_init, then
 * the key is created as init + value with expiry init_ttl_ms (0 = never), possibly
 * evicting (v->forcible). SL_OK with v->num = new value; SL_DECLINED "not found",
 * "not a number", "no memory".
 */
int sl_ffi_shdict_incr(sl_shdict_t *d, const char *key, size_t klen, double value, int has_init,
                       double init, int64_t init_ttl_ms, sl_shdict_val_t *v);

/* Pushes v (TNUMBER or TSTRING) at the head (right = 0) or tail (right = 1) of the list
 * at key, creating it. SL_OK with v->len = new length; SL_DECLINED "value not a list",
 * "no memory"; SL_ERROR "bad value type". */
int sl_ffi_shdict_push(sl_shdict_t *d, int right, const char *key, size_t klen,
                       sl_shdict_val_t *v);

/* Pops from the head (right = 0) or tail. SL_OK with v->type TNIL (missing/empty) or the
 * value (string copied into buf); SL_AGAIN when buf is too small (v->len = needed,
 * nothing popped); SL_DECLINED "value not a list". The last pop removes the key. */
int sl_ffi_shdict_pop(sl_shdict_t *d, int right, const char *key, size_t klen, char *buf,
                      size_t buflen, sl_shdict_val_t *v);

/* List length into v->len (0 when missing); SL_DECLINED "value not a list". */
int sl_ffi_shdict_llen(sl_shdict_t *d, const char *key, size_t klen, sl_shdict_val_t *v);

/* Remaining time to live in ms (0 = never expires): SL_OK, or SL_DECLINED when missing
 * or expired. */
int sl_ffi_shdict_ttl(sl_shdict_t *d, const char *key, size_t klen, int64_t *ttl_ms);

/* Sets the expiry of a live key to now + ttl_ms (0 = never): SL_OK or SL_DECLINED. */
int sl_ffi_shdict_expire(sl_shdict_t *d, const char *key, size_t klen, int64_t ttl_ms);

/* Marks every item expired (get_stale still sees them; memory is freed lazily). */
int sl_ffi_shdict_flush_all(sl_shdict_t *d);

/* Frees up to max_count expired items (max_count <= 0: all); *freed = how many. */
int sl_ffi_shdict_flush_expired(sl_shdict_t *d, int max_count, int *freed);

/*
 * Live keys, most recently used first, at most max_count (<= 0: all). _count reports how
 * many and their total length; _get_keys fills lens[0..*n) and buf with the keys
 * concatenated. In: *n = capacity of lens, *buflen = capacity of buf; out: what was
 * written. SL_AGAIN when they do not fit (the zone changed since the count): *n and
 * *buflen hold the sizes needed; retry.
 */
int sl_ffi_shdict_get_keys_count(sl_shdict_t *d, int max_count, size_t *n, size_t *total_len);
int sl_ffi_shdict_get_keys(sl_shdict_t *d, int max_count, char *buf, size_t *buflen,
                           size_t *lens, size_t *n);

/* The zone's size in bytes, and the bytes its allocator has free. */
int sl_ffi_shdict_capacity(sl_shdict_t *d, size_t *out);
int sl_ffi_shdict_free_space(sl_shdict_t *d, size_t *out);

#endif
