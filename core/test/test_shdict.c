/*
 * test_shdict.c: shared dictionaries: operations table, expiry on an injected clock,
 * eviction order, safe_* "no memory", lists, key listing, allocator accounting, and
 * several processes sharing a zone (concurrent incr; a lock owner killed by SIGKILL).
 */
#include "lua/sl_shdict.h"
#include "test/sl_test.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static uint64_t fake_now = 1000000;

static uint64_t fake_clock(void)
{
    return fake_now;
}

static sl_shdict_t *zone(const char *name, size_t size)
{
    char err[256];
    sl_shdict_t *d = sl_shdict_create(name, size, err, sizeof(err));
    SL_CHECK(d != NULL, "create %s: %s", name, err);
    if (!d)
        exit(1);
    return d;
}

static sl_shdict_val_t V;
static char BUF[256];

static int store_str(sl_shdict_t *d, int op, const char *k, const char *s, int64_t ttl,
                     uint32_t flags)
{
    memset(&V, 0, sizeof(V));
    V.type = SL_SHDICT_TSTRING;
    V.str = s;
    V.len = strlen(s);
    V.ttl_ms = ttl;
    V.flags = flags;
    return sl_ffi_shdict_store(d, op, k, strlen(k), &V);
}

static int store_num(sl_shdict_t *d, int op, const char *k, double n, int64_t ttl)
{
    memset(&V, 0, sizeof(V));
    V.type = SL_SHDICT_TNUMBER;
    V.num = n;
    V.ttl_ms = ttl;
    return sl_ffi_shdict_store(d, op, k, strlen(k), &V);
}

static int get(sl_shdict_t *d, const char *k, int stale)
{
    memset(&V, 0, sizeof(V));
    memset(BUF, 0, sizeof(BUF));
    return sl_ffi_shdict_get(d, k, strlen(k), stale, BUF, sizeof(BUF) - 1, &V);
}

static int has(sl_shdict_t *d, const char *k)
{
    return get(d, k, 0) == SL_OK && V.type != SL_SHDICT_TNIL;
}

/* Presence without touching the LRU order. */
static int exists(sl_shdict_t *d, const char *k)
{
    int64_t ttl;
    return sl_ffi_shdict_ttl(d, k, strlen(k), &ttl) == SL_OK;
}

static size_t live_keys(sl_shdict_t *d)
{
    size_t n, total;
    sl_ffi_shdict_get_keys_count(d, 0, &n, &total);
    return n;
}

static void consistent(sl_shdict_t *d, const char *where)
{
    char err[160];
    int rc = sl_shdict_check(d, err, sizeof(err));
    SL_CHECK(rc == SL_OK, "%s: zone inconsistent: %s", where, rc == SL_OK ? "" : err);
}

static size_t free_space(sl_shdict_t *d)
{
    size_t n;
    sl_ffi_shdict_free_space(d, &n);
    return n;
}

static void test_parse_size(void)
{
    static const struct {
        const char *in;
        ssize_t out;
    } cases[] = {
        {"8192", 8192}, {"8k", 8192}, {"8K", 8192}, {"5m", 5 * 1024 * 1024},
        {"1G", 1024L * 1024 * 1024}, {"", -1}, {"m", -1}, {"5x", -1}, {"-5m", -1},
        {"5 m", -1}, {"99999999999999999999", -1},
    };
    for (size_t i = 0; i < SL_ARRAY_SIZE(cases); i++) {
        ssize_t got = sl_shdict_parse_size(cases[i].in, strlen(cases[i].in));
        SL_CHECK(got == cases[i].out, "parse_size(%s) = %zd, want %zd", cases[i].in, got,
                 cases[i].out);
    }
}

static void test_create(void)
{
    char err[128];
    SL_CHECK(sl_shdict_create("tiny", 4096, err, sizeof(err)) == NULL, "too small");
    SL_CHECK(strstr(err, "too small") != NULL, "err: %s", err);
    SL_CHECK(sl_shdict_create("", 8192, err, sizeof(err)) == NULL, "empty name");
    sl_shdict_t *a = zone("create_a", 8192);
    SL_CHECK(sl_shdict_create("create_a", 8192, err, sizeof(err)) == NULL, "duplicate");
    SL_CHECK(strstr(err, "duplicate") != NULL, "err: %s", err);
    SL_CHECK(sl_shdict_find("create_a", 8) == a, "find");
    SL_CHECK(sl_shdict_find("create_", 7) == NULL, "find prefix");
    sl_shdict_t *f = NULL;
    SL_CHECK(sl_ffi_shdict_find("create_a", 8, &f) == SL_OK && f == a, "ffi find");
    SL_CHECK(sl_ffi_shdict_find("nope", 4, &f) == SL_DECLINED, "ffi find missing");
    int n = sl_ffi_shdict_zones_count();
    SL_CHECK(n >= 1, "zones count %d", n);
    const char *name;
    size_t len;
    SL_CHECK(sl_ffi_shdict_zone(n - 1, &f, &name, &len) == SL_OK && f == a &&
                 len == 8 && memcmp(name, "create_a", 8) == 0,
             "zone at");
    SL_CHECK(sl_ffi_shdict_zone(n, &f, &name, &len) == SL_DECLINED, "zone past end");
    size_t cap;
    sl_ffi_shdict_capacity(a, &cap);
    SL_CHECK(cap == 8192, "capacity %zu", cap);
    SL_CHECK(free_space(a) > 6000 && free_space(a) < 8192, "free %zu", free_space(a));
}

/* One step of the operations table. */
enum { OP_SET, OP_ADD, OP_REPLACE, OP_SAFE_SET, OP_SAFE_ADD, OP_GET, OP_DEL, OP_INCR,
       OP_INCR_INIT, OP_SETNUM, OP_SETBOOL, OP_SETNIL };

static const struct {
    int op;
    const char *key;
    const char *str; /* string value; expected string for OP_GET */
    double num;      /* number value; expected number for OP_GET / OP_INCR */
    uint32_t flags;
    int rc;
    const char *err;
    int type; /* expected type for OP_GET */
} ops[] = {
    {OP_GET, "a", NULL, 0, 0, SL_OK, NULL, SL_SHDICT_TNIL},
    {OP_SET, "a", "hello", 0, 7, SL_OK, NULL, 0},
    {OP_GET, "a", "hello", 0, 7, SL_OK, NULL, SL_SHDICT_TSTRING},
    {OP_ADD, "a", "other", 0, 0, SL_DECLINED, "exists", 0},
    {OP_SAFE_ADD, "a", "other", 0, 0, SL_DECLINED, "exists", 0},
    {OP_REPLACE, "b", "x", 0, 0, SL_DECLINED, "not found", 0},
    {OP_REPLACE, "a", "world!", 0, 0, SL_OK, NULL, 0},
    {OP_GET, "a", "world!", 0, 0, SL_OK, NULL, SL_SHDICT_TSTRING},
    {OP_ADD, "b", "", 0, 0, SL_OK, NULL, 0},
    {OP_GET, "b", "", 0, 0, SL_OK, NULL, SL_SHDICT_TSTRING},
    {OP_SAFE_SET, "b", "bee", 0, 1, SL_OK, NULL, 0},
    {OP_GET, "b", "bee", 0, 1, SL_OK, NULL, SL_SHDICT_TSTRING},
    {OP_INCR, "b", NULL, 1, 0, SL_DECLINED, "not a number", 0},
    {OP_INCR, "n", NULL, 1, 0, SL_DECLINED, "not found", 0},
    {OP_INCR_INIT, "n", NULL, 10, 0, SL_OK, NULL, 0}, /* init 0 + 10 */
    {OP_INCR, "n", NULL, 10, 0, SL_OK, NULL, 0},      /* expected via GET */
    {OP_GET, "n", NULL, 20, 0, SL_OK, NULL, SL_SHDICT_TNUMBER},
    {OP_INCR, "n", NULL, -25.5, 0, SL_OK, NULL, 0},
    {OP_GET, "n", NULL, -5.5, 0, SL_OK, NULL, SL_SHDICT_TNUMBER},
    {OP_SETNUM, "n", NULL, 3.25, 0, SL_OK, NULL, 0},
    {OP_GET, "n", NULL, 3.25, 0, SL_OK, NULL, SL_SHDICT_TNUMBER},
    {OP_SETBOOL, "t", NULL, 1, 0, SL_OK, NULL, 0},
    {OP_GET, "t", NULL, 1, 0, SL_OK, NULL, SL_SHDICT_TBOOLEAN},
    {OP_SETBOOL, "t", NULL, 0, 0, SL_OK, NULL, 0},
    {OP_GET, "t", NULL, 0, 0, SL_OK, NULL, SL_SHDICT_TBOOLEAN},
    {OP_SET, "t", "now a string", 0, 0, SL_OK, NULL, 0},
    {OP_GET, "t", "now a string", 0, 0, SL_OK, NULL, SL_SHDICT_TSTRING},
    {OP_SETNIL, "t", NULL, 0, 0, SL_OK, NULL, 0},
    {OP_GET, "t", NULL, 0, 0, SL_OK, NULL, SL_SHDICT_TNIL},
    {OP_DEL, "a", NULL, 0, 0, SL_OK, NULL, 0},
    {OP_DEL, "a", NULL, 0, 0, SL_OK, NULL, 0},
    {OP_GET, "a", NULL, 0, 0, SL_OK, NULL, SL_SHDICT_TNIL},
    {OP_SETNIL, "zz", NULL, 0, 0, SL_OK, NULL, 0},
    {OP_SET, "", "x", 0, 0, SL_ERROR, "empty key", 0},
    {OP_GET, "", NULL, 0, 0, SL_ERROR, "empty key", SL_SHDICT_TNIL},
};

static void test_ops_table(void)
{
    sl_shdict_t *d = zone("ops", 256 * 1024);
    for (size_t i = 0; i < SL_ARRAY_SIZE(ops); i++) {
        const char *k = ops[i].key;
        int rc = 0;
        switch (ops[i].op) {
        case OP_SET: rc = store_str(d, 0, k, ops[i].str, 0, ops[i].flags); break;
        case OP_ADD: rc = store_str(d, SL_SHDICT_ADD, k, ops[i].str, 0, ops[i].flags); break;
        case OP_REPLACE:
            rc = store_str(d, SL_SHDICT_REPLACE, k, ops[i].str, 0, ops[i].flags);
            break;
        case OP_SAFE_SET:
            rc = store_str(d, SL_SHDICT_SAFE, k, ops[i].str, 0, ops[i].flags);
            break;
        case OP_SAFE_ADD:
            rc = store_str(d, SL_SHDICT_SAFE | SL_SHDICT_ADD, k, ops[i].str, 0, ops[i].flags);
            break;
        case OP_SETNUM: rc = store_num(d, 0, k, ops[i].num, 0); break;
        case OP_SETBOOL:
            memset(&V, 0, sizeof(V));
            V.type = SL_SHDICT_TBOOLEAN;
            V.num = ops[i].num;
            rc = sl_ffi_shdict_store(d, 0, k, strlen(k), &V);
            break;
        case OP_SETNIL:
            memset(&V, 0, sizeof(V));
            rc = sl_ffi_shdict_store(d, 0, k, strlen(k), &V);
            break;
        case OP_DEL:
            V.err = NULL;
            rc = sl_ffi_shdict_delete(d, k, strlen(k));
            break;
        case OP_INCR:
        case OP_INCR_INIT:
            memset(&V, 0, sizeof(V));
            rc = sl_ffi_shdict_incr(d, k, strlen(k), ops[i].num, ops[i].op == OP_INCR_INIT, 0, 0,
                                    &V);
            break;
        case OP_GET: rc = get(d, k, 0); break;
        }
        SL_CHECK(rc == ops[i].rc, "step %zu: rc %d, want %d", i, rc, ops[i].rc);
        if (ops[i].err)
            SL_CHECK(V.err && strcmp(V.err, ops[i].err) == 0, "step %zu: err %s, want %s", i,
                     V.err ? V.err : "(null)", ops[i].err);
        if (ops[i].op == OP_GET && rc == SL_OK) {
            SL_CHECK(V.type == ops[i].type, "step %zu: type %d, want %d", i, V.type,
                     ops[i].type);
            SL_CHECK(V.flags == ops[i].flags, "step %zu: flags %u", i, V.flags);
            if (ops[i].type == SL_SHDICT_TSTRING)
                SL_CHECK(V.len == strlen(ops[i].str) && strcmp(BUF, ops[i].str) == 0,
                         "step %zu: value '%s'", i, BUF);
            if (ops[i].type == SL_SHDICT_TNUMBER || ops[i].type == SL_SHDICT_TBOOLEAN)
                SL_CHECK(V.num == ops[i].num, "step %zu: num %g, want %g", i, V.num,
                         ops[i].num);
        }
    }

    /* a string larger than the caller's buffer: SL_AGAIN with the size, then a retry */
    char big[1000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    SL_CHECK(store_str(d, 0, "big", big, 0, 0) == SL_OK, "set big");
    char small[16];
    memset(&V, 0, sizeof(V));
    SL_CHECK(sl_ffi_shdict_get(d, "big", 3, 0, small, sizeof(small), &V) == SL_AGAIN,
             "get big small buf");
    SL_CHECK(V.len == 999, "needed %zu", V.len);
    char *heap = malloc(V.len);
    SL_CHECK(sl_ffi_shdict_get(d, "big", 3, 0, heap, V.len, &V) == SL_OK &&
                 memcmp(heap, big, 999) == 0,
             "get big retry");
    free(heap);

    /* key bounds */
    char *longkey = malloc(SL_SHDICT_MAX_KEY_LEN + 1);
    memset(longkey, 'k', SL_SHDICT_MAX_KEY_LEN + 1);
    memset(&V, 0, sizeof(V));
    V.type = SL_SHDICT_TNUMBER;
    SL_CHECK(sl_ffi_shdict_store(d, 0, longkey, SL_SHDICT_MAX_KEY_LEN + 1, &V) == SL_ERROR &&
                 strcmp(V.err, "key too long") == 0,
             "key too long");
    SL_CHECK(sl_ffi_shdict_store(d, 0, longkey, SL_SHDICT_MAX_KEY_LEN, &V) == SL_OK,
             "key of max length");
    SL_CHECK(sl_ffi_shdict_get(d, longkey, SL_SHDICT_MAX_KEY_LEN, 0, BUF, 8, &V) == SL_OK &&
                 V.type == SL_SHDICT_TNUMBER,
             "get key of max length");
    free(longkey);
    consistent(d, "ops");
}

static void test_expiry(void)
{
    sl_shdict_t *d = zone("expiry", 64 * 1024);
    int64_t ttl;
    fake_now = 1000000;
    SL_CHECK(store_str(d, 0, "k", "v", 1000, 3) == SL_OK, "set ttl");
    SL_CHECK(sl_ffi_shdict_ttl(d, "k", 1, &ttl) == SL_OK && ttl == 1000, "ttl %ld", (long)ttl);
    fake_now += 400;
    SL_CHECK(sl_ffi_shdict_ttl(d, "k", 1, &ttl) == SL_OK && ttl == 600, "ttl %ld", (long)ttl);
    fake_now += 599;
    SL_CHECK(has(d, "k"), "alive at 999ms");
    fake_now += 1;
    SL_CHECK(get(d, "k", 1) == SL_OK && V.type == SL_SHDICT_TSTRING && V.stale == 1 &&
                 V.flags == 3 && strcmp(BUF, "v") == 0,
             "get_stale of expired");
    SL_CHECK(sl_ffi_shdict_ttl(d, "k", 1, &ttl) == SL_DECLINED, "ttl of expired");
    SL_CHECK(sl_ffi_shdict_expire(d, "k", 1, 100) == SL_DECLINED, "expire of expired");
    SL_CHECK(get(d, "k", 0) == SL_OK && V.type == SL_SHDICT_TNIL, "gone at 1000ms");
    SL_CHECK(get(d, "k", 1) == SL_OK && V.type == SL_SHDICT_TNIL, "a plain get freed it");
    SL_CHECK(store_str(d, SL_SHDICT_REPLACE, "k", "w", 0, 0) == SL_DECLINED, "replace expired");
    SL_CHECK(store_str(d, SL_SHDICT_ADD, "k", "w", 0, 0) == SL_OK, "add over expired");
    SL_CHECK(get(d, "k", 1) == SL_OK && V.stale == 0 && strcmp(BUF, "w") == 0, "fresh");
    SL_CHECK(sl_ffi_shdict_ttl(d, "k", 1, &ttl) == SL_OK && ttl == 0, "no expiry");
    SL_CHECK(sl_ffi_shdict_expire(d, "k", 1, 50) == SL_OK, "expire");
    SL_CHECK(sl_ffi_shdict_ttl(d, "k", 1, &ttl) == SL_OK && ttl == 50, "ttl after expire");
    SL_CHECK(sl_ffi_shdict_expire(d, "k", 1, 0) == SL_OK, "expire 0 = never");
    fake_now += 100000;
    SL_CHECK(has(d, "k"), "never expires");
    SL_CHECK(sl_ffi_shdict_expire(d, "missing", 7, 10) == SL_DECLINED, "expire missing");

    /* incr with init_ttl; incr on a live key keeps its expiry; expired number reused */
    memset(&V, 0, sizeof(V));
    SL_CHECK(sl_ffi_shdict_incr(d, "c", 1, 1, 1, 5, 200, &V) == SL_OK && V.num == 6, "incr init");
    fake_now += 100;
    SL_CHECK(sl_ffi_shdict_incr(d, "c", 1, 1, 1, 5, 200, &V) == SL_OK && V.num == 7, "incr");
    SL_CHECK(sl_ffi_shdict_ttl(d, "c", 1, &ttl) == SL_OK && ttl == 100, "incr kept ttl");
    fake_now += 100;
    SL_CHECK(sl_ffi_shdict_incr(d, "c", 1, 1, 0, 0, 0, &V) == SL_DECLINED &&
                 strcmp(V.err, "not found") == 0,
             "incr expired without init");
    SL_CHECK(sl_ffi_shdict_incr(d, "c", 1, 1, 1, 0, 0, &V) == SL_OK && V.num == 1,
             "incr expired with init");
    SL_CHECK(sl_ffi_shdict_ttl(d, "c", 1, &ttl) == SL_OK && ttl == 0, "init_ttl 0");

    /* flush_all marks expired; get_stale still sees; flush_expired frees */
    size_t before = free_space(d);
    for (int i = 0; i < 10; i++) {
        char k[16];
        snprintf(k, sizeof(k), "f%d", i);
        store_num(d, 0, k, i, 0);
    }
    SL_CHECK(free_space(d) < before, "items use space");
    sl_ffi_shdict_flush_all(d);
    SL_CHECK(!has(d, "f3") && !has(d, "k"), "flushed");
    SL_CHECK(get(d, "f3", 1) == SL_OK && V.stale == 1 && V.num == 3, "stale after flush");
    size_t n, total;
    sl_ffi_shdict_get_keys_count(d, 0, &n, &total);
    SL_CHECK(n == 0, "no live keys after flush_all: %zu", n);
    int freed;
    sl_ffi_shdict_flush_expired(d, 3, &freed);
    SL_CHECK(freed == 3, "flush_expired(3) = %d", freed);
    sl_ffi_shdict_flush_expired(d, 0, &freed);
    SL_CHECK(freed > 0, "flush_expired(0) = %d", freed);
    sl_ffi_shdict_flush_expired(d, 0, &freed);
    SL_CHECK(freed == 0, "nothing left: %d", freed);
    size_t cap;
    sl_ffi_shdict_capacity(d, &cap);
    sl_shdict_t *fresh = zone("expiry_fresh", 64 * 1024);
    SL_CHECK(free_space(d) == free_space(fresh), "all memory back: %zu vs %zu", free_space(d),
             free_space(fresh));
    consistent(d, "expiry");
}

static void test_eviction(void)
{
    sl_shdict_t *d = zone("evict", 8192);
    char val[200];
    memset(val, 'v', sizeof(val) - 1);
    val[sizeof(val) - 1] = 0;
    char k[16];
    int i, first_forcible = -1;
    for (i = 0; i < 200; i++) {
        snprintf(k, sizeof(k), "k%03d", i);
        SL_CHECK(store_str(d, 0, k, val, 0, 0) == SL_OK, "set %s", k);
        if (V.forcible && first_forcible < 0)
            first_forcible = i;
        if (i == 5)
            SL_CHECK(has(d, "k000"), "k000 touched"); /* k000 becomes recent */
    }
    SL_CHECK(first_forcible > 10 && first_forcible < 60, "zone filled at %d", first_forcible);
    SL_CHECK(has(d, "k199") && has(d, "k198"), "newest kept");
    SL_CHECK(!has(d, "k001") && !has(d, "k002"), "oldest evicted");

    /* expired items go before live ones */
    sl_shdict_t *e = zone("evict_expired", 8192);
    fake_now = 5000000;
    int filled = 0;
    for (i = 0; i < 200; i++) {
        snprintf(k, sizeof(k), "live%03d", i);
        store_str(e, 0, k, val, 0, 0);
        if (V.forcible) {
            sl_ffi_shdict_delete(e, k, strlen(k));
            break;
        }
    }
    filled = i; /* live000..live(filled-1) fill the zone, the oldest maybe evicted */
    int oldest = 0;
    while (oldest < filled) {
        snprintf(k, sizeof(k), "live%03d", oldest);
        if (exists(e, k))
            break;
        oldest++;
    }
    SL_CHECK(oldest < 3, "oldest live item %d", oldest);
    /* make the 10 most recently used live items short-lived, then expire them */
    for (i = filled - 10; i < filled; i++) {
        snprintf(k, sizeof(k), "live%03d", i);
        sl_ffi_shdict_expire(e, k, strlen(k), 10);
    }
    fake_now += 20;
    for (i = 0; i < 5; i++) {
        snprintf(k, sizeof(k), "new%d", i);
        SL_CHECK(store_str(e, 0, k, val, 0, 0) == SL_OK && V.forcible == 0,
                 "expired evicted first (%s forcible %d)", k, V.forcible);
    }
    char oldest_key[16];
    snprintf(oldest_key, sizeof(oldest_key), "live%03d", oldest);
    SL_CHECK(exists(e, oldest_key), "live LRU tail untouched");

    /* safe_* never evict */
    size_t before = live_keys(e);
    memset(&V, 0, sizeof(V));
    for (i = 0; i < 200; i++) {
        snprintf(k, sizeof(k), "safe%03d", i);
        if (store_str(e, SL_SHDICT_SAFE, k, val, 0, 0) != SL_OK)
            break;
    }
    SL_CHECK(i < 200 && strcmp(V.err, "no memory") == 0 && V.forcible == 0, "safe_set: %s",
             V.err ? V.err : "ok");
    SL_CHECK(live_keys(e) == before + (size_t)i && exists(e, oldest_key),
             "safe_set evicted nothing");
    SL_CHECK(store_str(e, SL_SHDICT_SAFE | SL_SHDICT_ADD, "safe_add", val, 0, 0) == SL_DECLINED &&
                 strcmp(V.err, "no memory") == 0,
             "safe_add no memory");
    SL_CHECK(store_str(e, 0, "plain", val, 0, 0) == SL_OK && V.forcible == 1, "set evicts");
    SL_CHECK(!exists(e, oldest_key), "the LRU item went");

    /* a value larger than the zone never fits */
    char *huge = malloc(9000);
    memset(huge, 'h', 8999);
    huge[8999] = 0;
    SL_CHECK(store_str(e, 0, "huge", huge, 0, 0) == SL_DECLINED && strcmp(V.err, "no memory") == 0,
             "huge: no memory");
    free(huge);
    SL_CHECK(exists(e, "plain"), "a failed set leaves the rest");
    consistent(d, "evict");
    consistent(e, "evict_expired");
}

static int push(sl_shdict_t *d, int right, const char *k, const char *s, double n)
{
    memset(&V, 0, sizeof(V));
    V.type = s ? SL_SHDICT_TSTRING : SL_SHDICT_TNUMBER;
    V.str = s;
    V.len = s ? strlen(s) : 0;
    V.num = n;
    return sl_ffi_shdict_push(d, right, k, strlen(k), &V);
}

static int pop(sl_shdict_t *d, int right, const char *k)
{
    memset(&V, 0, sizeof(V));
    memset(BUF, 0, sizeof(BUF));
    return sl_ffi_shdict_pop(d, right, k, strlen(k), BUF, sizeof(BUF) - 1, &V);
}

static void test_lists(void)
{
    sl_shdict_t *d = zone("lists", 16 * 1024);
    size_t initial = free_space(d);
    SL_CHECK(pop(d, 0, "l") == SL_OK && V.type == SL_SHDICT_TNIL, "pop missing");
    memset(&V, 0, sizeof(V));
    SL_CHECK(sl_ffi_shdict_llen(d, "l", 1, &V) == SL_OK && V.len == 0, "llen missing");
    SL_CHECK(push(d, 0, "l", "b", 0) == SL_OK && V.len == 1, "lpush b");
    SL_CHECK(push(d, 0, "l", "a", 0) == SL_OK && V.len == 2, "lpush a");
    SL_CHECK(push(d, 1, "l", NULL, 3) == SL_OK && V.len == 3, "rpush 3");
    SL_CHECK(push(d, 1, "l", "", 0) == SL_OK && V.len == 4, "rpush empty");
    memset(&V, 0, sizeof(V));
    SL_CHECK(sl_ffi_shdict_llen(d, "l", 1, &V) == SL_OK && V.len == 4, "llen 4");
    SL_CHECK(get(d, "l", 0) == SL_DECLINED && strcmp(V.err, "value is a list") == 0,
             "get list");
    memset(&V, 0, sizeof(V));
    SL_CHECK(sl_ffi_shdict_incr(d, "l", 1, 1, 0, 0, 0, &V) == SL_DECLINED &&
                 strcmp(V.err, "not a number") == 0,
             "incr list");
    SL_CHECK(store_str(d, SL_SHDICT_ADD, "l", "x", 0, 0) == SL_DECLINED, "add over list");
    SL_CHECK(pop(d, 0, "l") == SL_OK && V.type == SL_SHDICT_TSTRING && strcmp(BUF, "a") == 0,
             "lpop a");
    SL_CHECK(pop(d, 1, "l") == SL_OK && V.type == SL_SHDICT_TSTRING && V.len == 0, "rpop ''");
    SL_CHECK(pop(d, 1, "l") == SL_OK && V.type == SL_SHDICT_TNUMBER && V.num == 3, "rpop 3");
    /* pop into a buffer too small: nothing popped */
    SL_CHECK(push(d, 0, "l", "a longer string", 0) == SL_OK && V.len == 2, "lpush long");
    char tiny[4];
    memset(&V, 0, sizeof(V));
    SL_CHECK(sl_ffi_shdict_pop(d, 0, "l", 1, tiny, sizeof(tiny), &V) == SL_AGAIN && V.len == 15,
             "pop small buffer");
    memset(&V, 0, sizeof(V));
    SL_CHECK(sl_ffi_shdict_llen(d, "l", 1, &V) == SL_OK && V.len == 2, "nothing popped");
    SL_CHECK(pop(d, 0, "l") == SL_OK && strcmp(BUF, "a longer string") == 0, "lpop long");
    SL_CHECK(pop(d, 0, "l") == SL_OK && strcmp(BUF, "b") == 0, "lpop b");
    SL_CHECK(pop(d, 0, "l") == SL_OK && V.type == SL_SHDICT_TNIL, "empty list gone");
    SL_CHECK(!has(d, "l"), "key removed with last element");

    /* value not a list */
    store_str(d, 0, "s", "str", 0, 0);
    SL_CHECK(push(d, 0, "s", "x", 0) == SL_DECLINED && strcmp(V.err, "value not a list") == 0,
             "push on value");
    SL_CHECK(pop(d, 1, "s") == SL_DECLINED && strcmp(V.err, "value not a list") == 0,
             "pop on value");
    memset(&V, 0, sizeof(V));
    SL_CHECK(sl_ffi_shdict_llen(d, "s", 1, &V) == SL_DECLINED &&
                 strcmp(V.err, "value not a list") == 0,
             "llen on value");
    memset(&V, 0, sizeof(V));
    V.type = SL_SHDICT_TBOOLEAN;
    SL_CHECK(sl_ffi_shdict_push(d, 0, "q", 1, &V) == SL_ERROR &&
                 strcmp(V.err, "bad value type") == 0,
             "push boolean");

    /* set over a list replaces it; list with ttl expires */
    push(d, 0, "l2", "x", 0);
    SL_CHECK(store_str(d, 0, "l2", "plain", 0, 0) == SL_OK && has(d, "l2"), "set over list");
    push(d, 0, "l3", "x", 0);
    sl_ffi_shdict_expire(d, "l3", 2, 10);
    fake_now += 10;
    SL_CHECK(push(d, 0, "l3", "y", 0) == SL_OK && V.len == 1, "expired list starts afresh");
    memset(&V, 0, sizeof(V));
    SL_CHECK(sl_ffi_shdict_delete(d, "l3", 2) == SL_OK, "delete list");

    /* pushes never evict: fill, then "no memory"; everything comes back on delete */
    char val[100];
    memset(val, 'p', sizeof(val) - 1);
    val[sizeof(val) - 1] = 0;
    int i;
    for (i = 0; i < 1000; i++) {
        if (push(d, 1, "big", val, 0) != SL_OK)
            break;
    }
    SL_CHECK(i > 50 && i < 1000 && strcmp(V.err, "no memory") == 0, "list full after %d", i);
    SL_CHECK(has(d, "s"), "push evicted nothing");
    SL_CHECK(push(d, 1, "other", val, 0) == SL_DECLINED, "new list: no memory");
    SL_CHECK(!has(d, "other"), "no empty list left behind");
    sl_ffi_shdict_delete(d, "big", 3);
    sl_ffi_shdict_delete(d, "s", 1);
    sl_ffi_shdict_delete(d, "l2", 2);
    SL_CHECK(free_space(d) == initial, "free space back %zu vs %zu", free_space(d), initial);
    consistent(d, "lists");
}

static void test_get_keys(void)
{
    sl_shdict_t *d = zone("keys", 32 * 1024);
    store_num(d, 0, "one", 1, 0);
    store_num(d, 0, "two", 2, 0);
    store_num(d, 0, "three", 3, 10);
    store_num(d, 0, "four", 4, 0);
    size_t n, total;
    sl_ffi_shdict_get_keys_count(d, 0, &n, &total);
    SL_CHECK(n == 4 && total == 15, "count %zu total %zu", n, total);
    sl_ffi_shdict_get_keys_count(d, 2, &n, &total);
    SL_CHECK(n == 2 && total == 9, "count max 2: %zu %zu", n, total); /* four, three */
    fake_now += 10;
    sl_ffi_shdict_get_keys_count(d, 0, &n, &total);
    SL_CHECK(n == 3 && total == 10, "expired skipped: %zu %zu", n, total);

    char buf[64];
    size_t lens[8], blen = sizeof(buf), cnt = 8;
    SL_CHECK(sl_ffi_shdict_get_keys(d, 0, buf, &blen, lens, &cnt) == SL_OK, "get_keys");
    SL_CHECK(cnt == 3 && blen == 10 && lens[0] == 4 && memcmp(buf, "fourtwoone", 10) == 0,
             "keys MRU first: %.*s", (int)blen, buf);
    blen = sizeof(buf);
    cnt = 2;
    SL_CHECK(sl_ffi_shdict_get_keys(d, 0, buf, &blen, lens, &cnt) == SL_AGAIN && cnt == 3 &&
                 blen == 10,
             "too few lens");
    blen = 5;
    cnt = 8;
    SL_CHECK(sl_ffi_shdict_get_keys(d, 0, buf, &blen, lens, &cnt) == SL_AGAIN && blen == 10,
             "too small buf");
    blen = sizeof(buf);
    cnt = 8;
    SL_CHECK(sl_ffi_shdict_get_keys(d, 1, buf, &blen, lens, &cnt) == SL_OK && cnt == 1 &&
                 blen == 4,
             "max 1");
}

/* Random operations; afterwards deleting everything must give all the memory back. */
static void test_allocator_stress(void)
{
    sl_shdict_t *d = zone("stress", 64 * 1024);
    size_t initial = free_space(d);
    char val[3001];
    memset(val, 'r', sizeof(val));
    val[3000] = 0;
    srand(42);
    for (int i = 0; i < 20000; i++) {
        char k[16];
        snprintf(k, sizeof(k), "r%d", rand() % 300);
        int what = rand() % 10;
        if (what < 5) {
            size_t len = (size_t)(rand() % (what == 0 ? 2999 : 80));
            val[len] = 0;
            store_str(d, rand() % 4 == 0 ? SL_SHDICT_SAFE : 0, k, val, 0, 0);
            val[len] = 'r';
        } else if (what < 7) {
            sl_ffi_shdict_delete(d, k, strlen(k));
        } else if (what < 8) {
            push(d, rand() % 2, k, val + 2900, 0);
        } else if (what < 9) {
            pop(d, rand() % 2, k);
        } else {
            memset(&V, 0, sizeof(V));
            sl_ffi_shdict_incr(d, k, strlen(k), 1, 1, 0, 0, &V);
        }
        if (i % 500 == 0)
            consistent(d, "stress");
    }
    size_t n, total;
    sl_ffi_shdict_get_keys_count(d, 0, &n, &total);
    SL_CHECK(n > 0, "stress left %zu keys", n);
    sl_ffi_shdict_flush_all(d);
    int freed;
    sl_ffi_shdict_flush_expired(d, 0, &freed);
    SL_CHECK((size_t)freed == n, "freed %d of %zu", freed, n);
    SL_CHECK(free_space(d) == initial, "stress: free %zu vs %zu", free_space(d), initial);
    consistent(d, "stress end");
    char *all = malloc(initial - 200);
    memset(all, 'a', initial - 201);
    all[initial - 201] = 0;
    SL_CHECK(store_str(d, SL_SHDICT_SAFE, "all", all, 0, 0) == SL_OK,
             "one value as large as the free space fits (coalesced)");
    free(all);
}

static void test_processes(void)
{
    sl_shdict_set_clock(NULL);
    sl_shdict_t *d = zone("procs", 1024 * 1024);
    enum { NPROC = 8, M = 5000 };
    pid_t pids[NPROC];
    for (int i = 0; i < NPROC; i++) {
        pids[i] = fork();
        if (pids[i] == 0) {
            sl_shdict_val_t v;
            for (int j = 0; j < M; j++) {
                memset(&v, 0, sizeof(v));
                if (sl_ffi_shdict_incr(d, "hits", 4, 1, 1, 0, 0, &v) != SL_OK)
                    _exit(1);
                char k[32];
                snprintf(k, sizeof(k), "p%d-%d", i, j % 50);
                memset(&v, 0, sizeof(v));
                v.type = SL_SHDICT_TNUMBER;
                v.num = j;
                if (sl_ffi_shdict_store(d, 0, k, strlen(k), &v) != SL_OK)
                    _exit(2);
            }
            _exit(0);
        }
    }
    int ok = 1;
    for (int i = 0; i < NPROC; i++) {
        int st;
        waitpid(pids[i], &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            ok = 0;
    }
    SL_CHECK(ok, "children succeeded");
    SL_CHECK(get(d, "hits", 0) == SL_OK && V.num == NPROC * M, "hits = %g, want %d", V.num,
             NPROC * M);
    size_t n, total;
    sl_ffi_shdict_get_keys_count(d, 0, &n, &total);
    SL_CHECK(n == 1 + NPROC * 50, "keys %zu", n);
    consistent(d, "procs");

    /* a reader killed while holding the lock: the zone keeps its data */
    uint64_t recovered, reset;
    pid_t p = fork();
    if (p == 0) {
        sl_shdict_lock(d, 0);
        raise(SIGKILL);
        _exit(0);
    }
    int st;
    waitpid(p, &st, 0);
    SL_CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "child killed");
    SL_CHECK(get(d, "hits", 0) == SL_OK && V.num == NPROC * M, "after dead reader: %g", V.num);
    sl_shdict_recoveries(d, &recovered, &reset);
    SL_CHECK(recovered == 1 && reset == 0, "recovered %lu reset %lu", (unsigned long)recovered,
             (unsigned long)reset);

    /* a writer killed while holding the lock: the zone is emptied, never wedged */
    p = fork();
    if (p == 0) {
        sl_shdict_lock(d, 1);
        raise(SIGKILL);
        _exit(0);
    }
    waitpid(p, &st, 0);
    SL_CHECK(WIFSIGNALED(st), "writer killed");
    memset(&V, 0, sizeof(V));
    SL_CHECK(sl_ffi_shdict_incr(d, "hits", 4, 1, 1, 0, 0, &V) == SL_OK && V.num == 1,
             "zone usable after dead writer: %g", V.num);
    sl_shdict_recoveries(d, &recovered, &reset);
    SL_CHECK(recovered == 2 && reset == 1, "recovered %lu reset %lu", (unsigned long)recovered,
             (unsigned long)reset);

    /* killed mid-storm: children hammer the zone and one is SIGKILLed at random times */
    for (int round = 0; round < 5; round++) {
        pid_t victim = fork();
        if (victim == 0) {
            sl_shdict_val_t v;
            for (;;) {
                memset(&v, 0, sizeof(v));
                sl_ffi_shdict_incr(d, "storm", 5, 1, 1, 0, 0, &v);
            }
        }
        usleep(2000 + 1000 * round);
        kill(victim, SIGKILL);
        waitpid(victim, &st, 0);
        memset(&V, 0, sizeof(V));
        SL_CHECK(sl_ffi_shdict_incr(d, "storm", 5, 1, 1, 0, 0, &V) == SL_OK && V.num >= 1,
                 "storm round %d", round);
        consistent(d, "storm");
    }
}

int main(void)
{
    sl_shdict_set_clock(fake_clock);
    test_parse_size();
    test_create();
    test_ops_table();
    test_expiry();
    test_eviction();
    test_lists();
    test_get_keys();
    test_allocator_stress();
    test_processes();
    sl_shdict_destroy_all();
    SL_TEST_MAIN("test_shdict");
}
