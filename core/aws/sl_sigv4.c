#include "aws/sl_sigv4.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lua/sl_lua_ffi.h"

#define SCOPE_TERM "aws4_request"
#define UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"
#define HDR_DATE "x-amz-date"
#define HDR_TOKEN "x-amz-security-token"
#define HDR_SHA256 "x-amz-content-sha256"
#define PRESIGN_PARAMS 7 /* X-Amz-* query parameters presigning may add */

static const char HEX_LOWER[] = "0123456789abcdef";
static const char HEX_UPPER[] = "0123456789ABCDEF";

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ---- bytes ---- */

static int is_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_' || c == '.' || c == '~';
}

/* RFC 9110 tchar */
static int is_tchar(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int hex_val(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static void to_hex(const uint8_t *in, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = HEX_LOWER[in[i] >> 4];
        out[2 * i + 1] = HEX_LOWER[in[i] & 15];
    }
}

/* ---- a bounded string builder: an append past cap sets `over` and writes nothing ---- */

typedef struct {
    char *p;
    size_t len;
    size_t cap;
    int over;
} sb_t;

static void sb_init(sb_t *b, char *p, size_t cap)
{
    b->p = p;
    b->len = 0;
    b->cap = cap;
    b->over = 0;
}

static void sb_add(sb_t *b, const void *s, size_t n)
{
    if (b->over || n > b->cap - b->len) {
        b->over = 1;
        return;
    }
    if (n)
        memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void sb_ch(sb_t *b, char c)
{
    sb_add(b, &c, 1);
}

static void sb_str(sb_t *b, sl_str_t s)
{
    sb_add(b, s.data, s.len);
}

static void sb_enc_byte(sb_t *b, unsigned char c)
{
    if (is_unreserved(c)) {
        sb_ch(b, (char)c);
    } else {
        char e[3] = {'%', HEX_UPPER[c >> 4], HEX_UPPER[c & 15]};
        sb_add(b, e, 3);
    }
}

static void sb_enc(sb_t *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        sb_enc_byte(b, (unsigned char)s[i]);
}

/* ---- SHA-256 and HMAC-SHA256 over EVP, one fetched method and context per thread ---- */

static _Thread_local EVP_MD *tl_md;
static _Thread_local EVP_MD_CTX *tl_ctx;

static EVP_MD_CTX *digest_ctx(void)
{
    if (tl_ctx == NULL) {
        tl_md = EVP_MD_fetch(NULL, "SHA256", NULL);
        tl_ctx = EVP_MD_CTX_new();
        if (tl_md == NULL || tl_ctx == NULL)
            abort(); /* libcrypto without SHA-256 or out of memory */
    }
    return tl_ctx;
}

/* SHA-256 of up to three pieces */
static int sha256_3(const void *a, size_t alen, const void *b, size_t blen, const void *c,
                    size_t clen, uint8_t out[32])
{
    EVP_MD_CTX *ctx = digest_ctx();
    unsigned n = 0;
    if (EVP_DigestInit_ex(ctx, tl_md, NULL) != 1)
        return SL_ERROR;
    if ((alen && EVP_DigestUpdate(ctx, a, alen) != 1) ||
        (blen && EVP_DigestUpdate(ctx, b, blen) != 1) ||
        (clen && EVP_DigestUpdate(ctx, c, clen) != 1))
        return SL_ERROR;
    if (EVP_DigestFinal_ex(ctx, out, &n) != 1 || n != 32)
        return SL_ERROR;
    return SL_OK;
}

static int hmac_sha256(const void *key, size_t klen, const void *msg, size_t mlen,
                       uint8_t out[32])
{
    uint8_t k[64], pad[64], inner[32];
    int rc = SL_ERROR;
    memset(k, 0, sizeof(k));
    if (klen > sizeof(k)) {
        if (sha256_3(key, klen, NULL, 0, NULL, 0, k) != SL_OK)
            goto done;
    } else if (klen) {
        memcpy(k, key, klen);
    }
    for (size_t i = 0; i < sizeof(pad); i++)
        pad[i] = k[i] ^ 0x36;
    if (sha256_3(pad, sizeof(pad), msg, mlen, NULL, 0, inner) != SL_OK)
        goto done;
    for (size_t i = 0; i < sizeof(pad); i++)
        pad[i] = k[i] ^ 0x5c;
    rc = sha256_3(pad, sizeof(pad), inner, sizeof(inner), NULL, 0, out);
done:
    OPENSSL_cleanse(k, sizeof(k));
    OPENSSL_cleanse(pad, sizeof(pad));
    OPENSSL_cleanse(inner, sizeof(inner));
    return rc;
}

/* ---- the signing-key cache ---- */

typedef struct {
    uint8_t fp[32]; /* SHA-256(salt || secret): finds the entry, never the secret */
    char date[8];
    uint8_t region_len;
    uint8_t service_len;
    char region[SL_SIGV4_MAX_SCOPE_PART];
    char service[SL_SIGV4_MAX_SCOPE_PART];
    uint8_t key[32];
    uint64_t used; /* LRU tick; 0 = empty */
} key_entry_t;

typedef struct {
    key_entry_t e[SL_SIGV4_CACHE_SIZE];
    uint8_t salt[32];
    int salted; /* 1 salted, -1 no randomness: the cache stays off */
    uint64_t tick;
    uint64_t hits;
    uint64_t misses;
} key_cache_t;

static _Thread_local key_cache_t tl_cache;

static int derive_key(sl_str_t secret, sl_str_t date8, sl_str_t region, sl_str_t service,
                      uint8_t key[32])
{
    /* "AWS4" + secret; the secret is at most SL_SIGV4_MAX_SECRET bytes */
    uint8_t k0[4 + SL_SIGV4_MAX_SECRET];
    uint8_t a[32], b[32];
    int rc = SL_ERROR;
    memcpy(k0, "AWS4", 4);
    memcpy(k0 + 4, secret.data, secret.len);
    if (hmac_sha256(k0, 4 + secret.len, date8.data, date8.len, a) == SL_OK &&
        hmac_sha256(a, 32, region.data, region.len, b) == SL_OK &&
        hmac_sha256(b, 32, service.data, service.len, a) == SL_OK &&
        hmac_sha256(a, 32, SCOPE_TERM, sizeof(SCOPE_TERM) - 1, key) == SL_OK)
        rc = SL_OK;
    OPENSSL_cleanse(k0, sizeof(k0));
    OPENSSL_cleanse(a, sizeof(a));
    OPENSSL_cleanse(b, sizeof(b));
    return rc;
}

static int cache_key(sl_str_t secret, sl_str_t date8, sl_str_t region, sl_str_t service,
                     uint8_t key[32])
{
    key_cache_t *c = &tl_cache;
    if (c->salted == 0)
        c->salted = RAND_bytes(c->salt, sizeof(c->salt)) == 1 ? 1 : -1;
    if (c->salted < 0 || region.len > SL_SIGV4_MAX_SCOPE_PART ||
        service.len > SL_SIGV4_MAX_SCOPE_PART) {
        c->misses++;
        return derive_key(secret, date8, region, service, key);
    }

    uint8_t fp[32];
    if (sha256_3(c->salt, sizeof(c->salt), secret.data, secret.len, NULL, 0, fp) != SL_OK)
        return SL_ERROR;
    key_entry_t *victim = &c->e[0];
    for (size_t i = 0; i < SL_SIGV4_CACHE_SIZE; i++) {
        key_entry_t *e = &c->e[i];
        if (e->used && memcmp(e->date, date8.data, 8) == 0 && e->region_len == region.len &&
            e->service_len == service.len && memcmp(e->fp, fp, 32) == 0 &&
            memcmp(e->region, region.data, region.len) == 0 &&
            memcmp(e->service, service.data, service.len) == 0) {
            e->used = ++c->tick;
            c->hits++;
            memcpy(key, e->key, 32);
            return SL_OK;
        }
        if (e->used < victim->used)
            victim = e;
    }

    c->misses++;
    if (derive_key(secret, date8, region, service, key) != SL_OK)
        return SL_ERROR;
    OPENSSL_cleanse(victim, sizeof(*victim));
    memcpy(victim->fp, fp, 32);
    memcpy(victim->date, date8.data, 8);
    victim->region_len = (uint8_t)region.len;
    victim->service_len = (uint8_t)service.len;
    memcpy(victim->region, region.data, region.len);
    memcpy(victim->service, service.data, service.len);
    memcpy(victim->key, key, 32);
    victim->used = ++c->tick;
    return SL_OK;
}

void sl_sigv4_cache_clear(void)
{
    key_cache_t *c = &tl_cache;
    OPENSSL_cleanse(c->e, sizeof(c->e));
    c->tick = 0;
    c->hits = 0;
    c->misses = 0;
}

void sl_sigv4_cache_stats(uint64_t *hits, uint64_t *misses, unsigned *entries)
{
    key_cache_t *c = &tl_cache;
    unsigned n = 0;
    for (size_t i = 0; i < SL_SIGV4_CACHE_SIZE; i++)
        n += c->e[i].used != 0;
    if (hits)
        *hits = c->hits;
    if (misses)
        *misses = c->misses;
    if (entries)
        *entries = n;
}

/* ---- validation ---- */

static int check_len(sl_str_t s, size_t min, size_t max, const char *field, char *err,
                     size_t errlen)
{
    if (s.len > 0 && s.data == NULL) {
        set_err(err, errlen, "%s: NULL data", field);
        return SL_ERROR;
    }
    if (s.len < min) {
        set_err(err, errlen, "%s: required", field);
        return SL_ERROR;
    }
    if (s.len > max) {
        set_err(err, errlen, "%s: longer than %zu bytes", field, max);
        return SL_ERROR;
    }
    return SL_OK;
}

/* region, service: letters, digits, '-', '_', '.' */
static int check_scope_part(sl_str_t s, const char *field, char *err, size_t errlen)
{
    if (check_len(s, 1, SL_SIGV4_MAX_SCOPE_PART, field, err, errlen) != SL_OK)
        return SL_ERROR;
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.data[i];
        if (!is_unreserved(c) || c == '~') {
            set_err(err, errlen, "%s: invalid character at offset %zu", field, i);
            return SL_ERROR;
        }
    }
    return SL_OK;
}

/* visible ASCII; `reject` lists more bytes refused */
static int check_visible(sl_str_t s, const char *reject, const char *field, char *err,
                         size_t errlen)
{
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.data[i];
        if (c <= 0x20 || c >= 0x7f || (reject && strchr(reject, c) != NULL)) {
            set_err(err, errlen, "%s: invalid character at offset %zu", field, i);
            return SL_ERROR;
        }
    }
    return SL_OK;
}

static int digits(const char *p, size_t n, int min, int max)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return 0;
        v = v * 10 + (p[i] - '0');
    }
    return v >= min && v <= max;
}

static int check_date(sl_str_t d, char *err, size_t errlen)
{
    if (d.len != SL_SIGV4_DATE_LEN || d.data == NULL || !digits(d.data, 4, 0, 9999) ||
        !digits(d.data + 4, 2, 1, 12) || !digits(d.data + 6, 2, 1, 31) || d.data[8] != 'T' ||
        !digits(d.data + 9, 2, 0, 23) || !digits(d.data + 11, 2, 0, 59) ||
        !digits(d.data + 13, 2, 0, 60) || d.data[15] != 'Z') {
        set_err(err, errlen, "amz_date: expected YYYYMMDDTHHMMSSZ");
        return SL_ERROR;
    }
    return SL_OK;
}

static int check_input(const sl_sigv4_input_t *in, char *err, size_t errlen)
{
    if (check_len(in->method, 1, SL_SIGV4_MAX_METHOD, "method", err, errlen) != SL_OK)
        return SL_ERROR;
    for (size_t i = 0; i < in->method.len; i++) {
        if (!is_tchar((unsigned char)in->method.data[i])) {
            set_err(err, errlen, "method: invalid character at offset %zu", i);
            return SL_ERROR;
        }
    }
    if (check_len(in->path, 0, SL_SIGV4_MAX_PATH, "path", err, errlen) != SL_OK ||
        check_len(in->query, 0, SL_SIGV4_MAX_QUERY, "query", err, errlen) != SL_OK ||
        check_len(in->body, 0, SIZE_MAX, "body", err, errlen) != SL_OK ||
        check_len(in->payload_hash, 0, SL_SIGV4_MAX_PAYLOAD_HASH, "payload_hash", err,
                  errlen) != SL_OK ||
        check_visible(in->payload_hash, NULL, "payload_hash", err, errlen) != SL_OK ||
        check_scope_part(in->region, "region", err, errlen) != SL_OK ||
        check_scope_part(in->service, "service", err, errlen) != SL_OK ||
        check_date(in->amz_date, err, errlen) != SL_OK ||
        check_len(in->access_key, 1, SL_SIGV4_MAX_ACCESS_KEY, "access_key", err, errlen) !=
            SL_OK ||
        check_visible(in->access_key, "/,", "access_key", err, errlen) != SL_OK ||
        check_len(in->secret_key, 1, SL_SIGV4_MAX_SECRET, "secret_key", err, errlen) !=
            SL_OK ||
        check_len(in->session_token, 0, SL_SIGV4_MAX_TOKEN, "session_token", err, errlen) !=
            SL_OK ||
        check_visible(in->session_token, NULL, "session_token", err, errlen) != SL_OK)
        return SL_ERROR;
    if (in->nheaders > SL_SIGV4_MAX_HEADERS) {
        set_err(err, errlen, "headers: more than %d", SL_SIGV4_MAX_HEADERS);
        return SL_ERROR;
    }
    if (in->nheaders && in->headers == NULL) {
        set_err(err, errlen, "headers: NULL array");
        return SL_ERROR;
    }
    if ((in->flags & SL_SIGV4_PRESIGN) &&
        (in->expires < 1 || in->expires > SL_SIGV4_MAX_EXPIRES)) {
        set_err(err, errlen, "expires: must be 1 to %d seconds", SL_SIGV4_MAX_EXPIRES);
        return SL_ERROR;
    }
    if ((in->flags & SL_SIGV4_UNSIGNED_PAYLOAD) && in->payload_hash.len) {
        set_err(err, errlen, "payload_hash: given with an unsigned payload");
        return SL_ERROR;
    }
    return SL_OK;
}

/* ---- stage 1a: canonical URI ---- */

static int check_path(sl_str_t path, char *err, size_t errlen)
{
    if (path.len && path.data[0] != '/') {
        set_err(err, errlen, "path: must start with '/'");
        return SL_ERROR;
    }
    for (size_t i = 0; i < path.len; i++) {
        unsigned char c = (unsigned char)path.data[i];
        if (c == '?' || c == '#') {
            set_err(err, errlen, "path: holds '%c' (pass the query separately)", c);
            return SL_ERROR;
        }
        if (c == '\0' || c == '\r' || c == '\n') {
            set_err(err, errlen, "path: control character at offset %zu", i);
            return SL_ERROR;
        }
    }
    return SL_OK;
}

static void uri_normalized(sb_t *b, sl_str_t path)
{
    size_t start = b->len;
    int trailing = 0;
    size_t i = 0;
    while (i < path.len) {
        while (i < path.len && path.data[i] == '/')
            i++;
        size_t s = i;
        while (i < path.len && path.data[i] != '/')
            i++;
        size_t n = i - s;
        const char *seg = path.data + s;
        trailing = i == path.len ? (n == 0 || (n == 1 && seg[0] == '.') ||
                                    (n == 2 && seg[0] == '.' && seg[1] == '.'))
                                 : 1;
        if (n == 0 || (n == 1 && seg[0] == '.'))
            continue;
        if (n == 2 && seg[0] == '.' && seg[1] == '.') {
            /* drop the last output segment: encoded segments hold no '/' */
            while (b->len > start && b->p[b->len - 1] != '/')
                b->len--;
            if (b->len > start)
                b->len--;
            continue;
        }
        sb_ch(b, '/');
        sb_enc(b, seg, n);
    }
    if (b->len == start || (trailing && !b->over))
        sb_ch(b, '/');
}

static int uri_s3(sb_t *b, sl_str_t path, char *err, size_t errlen)
{
    if (path.len == 0) {
        sb_ch(b, '/');
        return SL_OK;
    }
    for (size_t i = 0; i < path.len; i++) {
        unsigned char c = (unsigned char)path.data[i];
        if (c == '/') {
            sb_ch(b, '/');
        } else if (c == '%') {
            int hi = i + 2 < path.len ? hex_val((unsigned char)path.data[i + 1]) : -1;
            int lo = hi >= 0 ? hex_val((unsigned char)path.data[i + 2]) : -1;
            if (lo < 0) {
                set_err(err, errlen, "path: bad percent-encoding at offset %zu", i);
                return SL_ERROR;
            }
            sb_enc_byte(b, (unsigned char)(hi * 16 + lo)); /* '/' becomes %2F again */
            i += 2;
        } else {
            sb_enc_byte(b, c);
        }
    }
    return SL_OK;
}

static int build_uri(sb_t *b, sl_str_t path, int s3, char *err, size_t errlen)
{
    if (check_path(path, err, errlen) != SL_OK)
        return SL_ERROR;
    if (s3)
        return uri_s3(b, path, err, errlen);
    uri_normalized(b, path);
    return SL_OK;
}

long sl_sigv4_canonical_uri(sl_str_t path, int s3, char *out, size_t cap, char *err,
                            size_t errlen)
{
    if (check_len(path, 0, SL_SIGV4_MAX_PATH, "path", err, errlen) != SL_OK)
        return -1;
    sb_t b;
    sb_init(&b, out, cap);
    if (build_uri(&b, path, s3, err, errlen) != SL_OK)
        return -1;
    if (b.over) {
        set_err(err, errlen, "canonical URI: buffer too small");
        return -1;
    }
    return (long)b.len;
}

/* ---- stage 1b: canonical query ---- */

typedef struct {
    size_t name; /* offsets into the scratch builder */
    size_t name_len;
    size_t value;
    size_t value_len;
} param_t;

typedef struct {
    param_t p[SL_SIGV4_MAX_PARAMS + PRESIGN_PARAMS];
    size_t n;
    const char *base; /* the scratch builder's memory, for sorting */
} params_t;

/* appends the decoded, then encoded bytes of s; '+' stays a literal plus */
static int enc_decoded(sb_t *b, const char *s, size_t n, const char *field, char *err,
                       size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '%') {
            int hi = i + 2 < n ? hex_val((unsigned char)s[i + 1]) : -1;
            int lo = hi >= 0 ? hex_val((unsigned char)s[i + 2]) : -1;
            if (lo < 0) {
                set_err(err, errlen, "%s: bad percent-encoding", field);
                return SL_ERROR;
            }
            c = (unsigned char)(hi * 16 + lo);
            i += 2;
        } else if (c == '\0' || c == '\r' || c == '\n' || c == '#') {
            set_err(err, errlen, "%s: invalid character '%s'", field,
                    c == '#' ? "#" : "\\x00-\\x1f");
            return SL_ERROR;
        }
        sb_enc_byte(b, c);
    }
    return SL_OK;
}

/* parses a wire query into encoded parameters in scratch */
static int parse_query(params_t *ps, sb_t *scratch, sl_str_t q, char *err, size_t errlen)
{
    size_t i = 0;
    while (i < q.len) {
        size_t s = i;
        while (i < q.len && q.data[i] != '&')
            i++;
        size_t e = i++;
        if (e == s)
            continue; /* "a=1&&b=2" */
        if (ps->n >= SL_SIGV4_MAX_PARAMS) {
            set_err(err, errlen, "query: more than %d parameters", SL_SIGV4_MAX_PARAMS);
            return SL_ERROR;
        }
        const char *eq = memchr(q.data + s, '=', e - s);
        size_t name_end = eq ? (size_t)(eq - q.data) : e;
        param_t *p = &ps->p[ps->n++];
        p->name = scratch->len;
        if (enc_decoded(scratch, q.data + s, name_end - s, "query", err, errlen) != SL_OK)
            return SL_ERROR;
        p->name_len = scratch->len - p->name;
        p->value = scratch->len;
        if (eq && enc_decoded(scratch, eq + 1, e - name_end - 1, "query", err, errlen) != SL_OK)
            return SL_ERROR;
        p->value_len = scratch->len - p->value;
    }
    return SL_OK;
}

/* adds a parameter from decoded name and value */
static void add_param(params_t *ps, sb_t *scratch, const char *name, sl_str_t value)
{
    param_t *p = &ps->p[ps->n++];
    p->name = scratch->len;
    sb_enc(scratch, name, strlen(name));
    p->name_len = scratch->len - p->name;
    p->value = scratch->len;
    sb_enc(scratch, value.data, value.len);
    p->value_len = scratch->len - p->value;
}

static int cmp_bytes(const char *a, size_t an, const char *b, size_t bn)
{
    int r = memcmp(a, b, an < bn ? an : bn);
    if (r)
        return r;
    return an < bn ? -1 : an > bn;
}

static _Thread_local const char *tl_sort_base;

static int cmp_param(const void *x, const void *y)
{
    const param_t *a = x, *b = y;
    int r = cmp_bytes(tl_sort_base + a->name, a->name_len, tl_sort_base + b->name, b->name_len);
    if (r)
        return r;
    return cmp_bytes(tl_sort_base + a->value, a->value_len, tl_sort_base + b->value,
                     b->value_len);
}

static void emit_query(sb_t *out, params_t *ps, const char *base)
{
    tl_sort_base = base;
    qsort(ps->p, ps->n, sizeof(param_t), cmp_param);
    for (size_t i = 0; i < ps->n; i++) {
        if (i)
            sb_ch(out, '&');
        sb_add(out, base + ps->p[i].name, ps->p[i].name_len);
        sb_ch(out, '=');
        sb_add(out, base + ps->p[i].value, ps->p[i].value_len);
    }
}

long sl_sigv4_canonical_query(sl_str_t query, char *out, size_t cap, char *err, size_t errlen)
{
    if (check_len(query, 0, SL_SIGV4_MAX_QUERY, "query", err, errlen) != SL_OK)
        return -1;
    size_t scap = 3 * query.len + 1;
    char *mem = malloc(scap);
    params_t *ps = malloc(sizeof(*ps));
    long rc = -1;
    if (mem == NULL || ps == NULL)
        abort();
    ps->n = 0;
    sb_t scratch, b;
    sb_init(&scratch, mem, scap);
    sb_init(&b, out, cap);
    if (parse_query(ps, &scratch, query, err, errlen) == SL_OK) {
        emit_query(&b, ps, mem);
        if (b.over)
            set_err(err, errlen, "canonical query: buffer too small");
        else
            rc = (long)b.len;
    }
    free(ps);
    free(mem);
    return rc;
}

/* ---- stage 1c: canonical headers ---- */

typedef struct {
    size_t name; /* offsets into scratch: lower-cased name, canonical value */
    size_t name_len;
    size_t value;
    size_t value_len;
    size_t order;
} hdr_t;

static int cmp_hdr(const void *x, const void *y)
{
    const hdr_t *a = x, *b = y;
    int r = cmp_bytes(tl_sort_base + a->name, a->name_len, tl_sort_base + b->name, b->name_len);
    if (r)
        return r;
    return a->order < b->order ? -1 : a->order > b->order;
}

static int hdr_is(const hdr_t *h, const char *base, const char *lname)
{
    size_t n = strlen(lname);
    return h->name_len == n && memcmp(base + h->name, lname, n) == 0;
}

static int hdr_value_is(const hdr_t *h, const char *base, sl_str_t v)
{
    return h->value_len == v.len && memcmp(base + h->value, v.data, v.len) == 0;
}

/* trimmed value, inner runs of SP/HT folded to one SP */
static void add_value(sb_t *b, sl_str_t v)
{
    size_t i = 0, e = v.len;
    while (i < e && (v.data[i] == ' ' || v.data[i] == '\t'))
        i++;
    while (e > i && (v.data[e - 1] == ' ' || v.data[e - 1] == '\t'))
        e--;
    int space = 0;
    for (; i < e; i++) {
        char c = v.data[i];
        if (c == ' ' || c == '\t') {
            space = 1;
            continue;
        }
        if (space)
            sb_ch(b, ' ');
        space = 0;
        sb_ch(b, c);
    }
}

static int check_header(const sl_header_t *h, size_t i, char *err, size_t errlen)
{
    if (h->name.len == 0 || (h->name.data == NULL) || (h->value.len && h->value.data == NULL)) {
        set_err(err, errlen, "headers: entry %zu has no name", i + 1);
        return SL_ERROR;
    }
    if (h->name.len > SL_SIGV4_MAX_HEADER_NAME) {
        set_err(err, errlen, "headers: name of entry %zu longer than %d bytes", i + 1,
                SL_SIGV4_MAX_HEADER_NAME);
        return SL_ERROR;
    }
    for (size_t k = 0; k < h->name.len; k++) {
        if (!is_tchar((unsigned char)h->name.data[k])) {
            set_err(err, errlen, "headers: invalid character in the name of entry %zu", i + 1);
            return SL_ERROR;
        }
    }
    if (h->value.len > SL_SIGV4_MAX_HEADER_VALUE) {
        set_err(err, errlen, "headers: value of '%.*s' longer than %d bytes",
                (int)h->name.len, h->name.data, SL_SIGV4_MAX_HEADER_VALUE);
        return SL_ERROR;
    }
    for (size_t k = 0; k < h->value.len; k++) {
        unsigned char c = (unsigned char)h->value.data[k];
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            set_err(err, errlen, "headers: control character in the value of '%.*s'",
                    (int)h->name.len, h->name.data);
            return SL_ERROR;
        }
    }
    if (sl_str_case_eq(h->name, SL_STR("authorization"))) {
        set_err(err, errlen, "headers: authorization cannot be signed");
        return SL_ERROR;
    }
    return SL_OK;
}

/* ---- the whole signature ---- */

typedef struct {
    const sl_sigv4_input_t *in;
    int presign;
    sb_t scratch;                /* encoded params, lower-cased names, canonical values */
    sb_t creq;                   /* the canonical request */
    params_t params;
    hdr_t hdrs[SL_SIGV4_MAX_HEADERS + 3];
    size_t nhdrs;
    size_t signed_off;           /* the signed-header list inside creq */
    size_t signed_len;
    size_t query_off;            /* the canonical query inside creq */
    size_t query_len;
    char payload_hex[SL_SIGV4_MAX_PAYLOAD_HASH];
    sl_str_t payload;
    char sts[320]; /* at most 17 + 17 + 151 (scope) + 1 + 64 */
    size_t sts_len;
    char signature[SL_SIGV4_SIG_LEN + 1];
} signer_t;

static int load_headers(signer_t *s, char *err, size_t errlen)
{
    const sl_sigv4_input_t *in = s->in;
    size_t total = 0;
    for (size_t i = 0; i < in->nheaders; i++) {
        const sl_header_t *h = &in->headers[i];
        if (check_header(h, i, err, errlen) != SL_OK)
            return SL_ERROR;
        total += h->name.len + h->value.len;
        if (total > SL_SIGV4_MAX_HEADERS_TOTAL) {
            set_err(err, errlen, "headers: longer than %d bytes together",
                    SL_SIGV4_MAX_HEADERS_TOTAL);
            return SL_ERROR;
        }
        hdr_t *e = &s->hdrs[s->nhdrs++];
        e->order = i;
        e->name = s->scratch.len;
        for (size_t k = 0; k < h->name.len; k++) {
            char c = h->name.data[k];
            sb_ch(&s->scratch, (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c);
        }
        e->name_len = s->scratch.len - e->name;
        e->value = s->scratch.len;
        add_value(&s->scratch, h->value);
        e->value_len = s->scratch.len - e->value;
    }
    return SL_OK;
}

static hdr_t *find_hdr(signer_t *s, const char *lname)
{
    for (size_t i = 0; i < s->nhdrs; i++) {
        if (hdr_is(&s->hdrs[i], s->scratch.p, lname))
            return &s->hdrs[i];
    }
    return NULL;
}

static void add_hdr(signer_t *s, const char *lname, sl_str_t value)
{
    hdr_t *e = &s->hdrs[s->nhdrs];
    e->order = s->nhdrs++;
    e->name = s->scratch.len;
    sb_add(&s->scratch, lname, strlen(lname));
    e->name_len = s->scratch.len - e->name;
    e->value = s->scratch.len;
    add_value(&s->scratch, value);
    e->value_len = s->scratch.len - e->value;
}

static int complete_headers(signer_t *s, char *err, size_t errlen)
{
    const sl_sigv4_input_t *in = s->in;
    if (find_hdr(s, "host") == NULL) {
        set_err(err, errlen, "headers: host is required");
        return SL_ERROR;
    }
    if (s->presign)
        return SL_OK;
    hdr_t *d = find_hdr(s, HDR_DATE);
    if (d == NULL)
        add_hdr(s, HDR_DATE, in->amz_date);
    else if (!hdr_value_is(d, s->scratch.p, in->amz_date)) {
        set_err(err, errlen, "headers: x-amz-date differs from amz_date");
        return SL_ERROR;
    }
    if (in->session_token.len && !(in->flags & SL_SIGV4_TOKEN_AFTER)) {
        hdr_t *t = find_hdr(s, HDR_TOKEN);
        if (t == NULL)
            add_hdr(s, HDR_TOKEN, in->session_token);
        else if (!hdr_value_is(t, s->scratch.p, in->session_token)) {
            set_err(err, errlen, "headers: x-amz-security-token differs from session_token");
            return SL_ERROR;
        }
    }
    if (in->flags & SL_SIGV4_CONTENT_SHA256) {
        hdr_t *h = find_hdr(s, HDR_SHA256);
        if (h == NULL)
            add_hdr(s, HDR_SHA256, s->payload);
        else if (!hdr_value_is(h, s->scratch.p, s->payload)) {
            set_err(err, errlen, "headers: x-amz-content-sha256 differs from the payload hash");
            return SL_ERROR;
        }
    }
    return SL_OK;
}

/* the canonical header lines "name:v1,v2\n" into hb, the signed list "a;b" into sl */
static void emit_headers(signer_t *s, sb_t *hb, sb_t *sl)
{
    const char *base = s->scratch.p;
    tl_sort_base = base;
    qsort(s->hdrs, s->nhdrs, sizeof(hdr_t), cmp_hdr);
    for (size_t i = 0; i < s->nhdrs; i++) {
        const hdr_t *h = &s->hdrs[i];
        int first = i == 0 || cmp_bytes(base + h->name, h->name_len, base + h[-1].name,
                                        h[-1].name_len) != 0;
        if (first) {
            if (i)
                sb_ch(hb, '\n');
            sb_add(hb, base + h->name, h->name_len);
            sb_ch(hb, ':');
            if (i)
                sb_ch(sl, ';');
            sb_add(sl, base + h->name, h->name_len);
        } else {
            sb_ch(hb, ',');
        }
        sb_add(hb, base + h->value, h->value_len);
    }
    sb_ch(hb, '\n');
}

static int payload_hash(signer_t *s, char *err, size_t errlen)
{
    const sl_sigv4_input_t *in = s->in;
    if (in->payload_hash.len) {
        s->payload = in->payload_hash;
    } else if (in->flags & SL_SIGV4_UNSIGNED_PAYLOAD) {
        s->payload = SL_STR(UNSIGNED_PAYLOAD);
    } else {
        uint8_t d[32];
        if (sha256_3(in->body.data, in->body.len, NULL, 0, NULL, 0, d) != SL_OK) {
            set_err(err, errlen, "body: SHA-256 failed");
            return SL_ERROR;
        }
        to_hex(d, 32, s->payload_hex);
        s->payload = (sl_str_t){s->payload_hex, 64};
    }
    return SL_OK;
}

static void scope(sb_t *b, const sl_sigv4_input_t *in)
{
    sb_add(b, in->amz_date.data, 8);
    sb_ch(b, '/');
    sb_str(b, in->region);
    sb_ch(b, '/');
    sb_str(b, in->service);
    sb_ch(b, '/');
    sb_add(b, SCOPE_TERM, sizeof(SCOPE_TERM) - 1);
}

static int presign_params(signer_t *s, sl_str_t signed_list, char *err, size_t errlen)
{
    static const char *const names[] = {
        "X-Amz-Algorithm", "X-Amz-Credential",     "X-Amz-Date",      "X-Amz-Expires",
        "X-Amz-SignedHeaders", "X-Amz-Security-Token", "X-Amz-Signature",
    };
    const sl_sigv4_input_t *in = s->in;
    for (size_t i = 0; i < s->params.n; i++) {
        const param_t *p = &s->params.p[i];
        for (size_t k = 0; k < SL_ARRAY_SIZE(names); k++) {
            sl_str_t name = {s->scratch.p + p->name, p->name_len};
            if (sl_str_case_eq(name, (sl_str_t){names[k], strlen(names[k])})) {
                set_err(err, errlen, "query: already holds %s", names[k]);
                return SL_ERROR;
            }
        }
    }

    char cred[SL_SIGV4_MAX_ACCESS_KEY + 2 * SL_SIGV4_MAX_SCOPE_PART + 32];
    sb_t c;
    sb_init(&c, cred, sizeof(cred));
    sb_str(&c, in->access_key);
    sb_ch(&c, '/');
    scope(&c, in);
    char expires[16];
    int elen = snprintf(expires, sizeof(expires), "%u", (unsigned)in->expires);

    add_param(&s->params, &s->scratch, "X-Amz-Algorithm", SL_STR(SL_SIGV4_ALGORITHM));
    add_param(&s->params, &s->scratch, "X-Amz-Credential", (sl_str_t){cred, c.len});
    add_param(&s->params, &s->scratch, "X-Amz-Date", in->amz_date);
    add_param(&s->params, &s->scratch, "X-Amz-Expires", (sl_str_t){expires, (size_t)elen});
    add_param(&s->params, &s->scratch, "X-Amz-SignedHeaders", signed_list);
    if (in->session_token.len && !(in->flags & SL_SIGV4_TOKEN_AFTER))
        add_param(&s->params, &s->scratch, "X-Amz-Security-Token", in->session_token);
    return SL_OK;
}

/* Puts `len` bytes (two pieces) into a caller buffer, or fails naming it. */
static int put_out(sl_sigv4_buf_t *o, const char *name, const char *a, size_t alen,
                   const char *b, size_t blen, char *err, size_t errlen)
{
    if (o->data == NULL) {
        o->len = 0;
        return SL_OK;
    }
    size_t need = alen + blen;
    if (need > o->cap) {
        o->len = need;
        set_err(err, errlen, "%s: output buffer too small (%zu bytes needed)", name, need);
        return SL_ERROR;
    }
    if (alen)
        memcpy(o->data, a, alen);
    if (blen)
        memcpy(o->data + alen, b, blen);
    o->len = need;
    return SL_OK;
}

/* Capacities for one signature of `in`. All are bounded by the input limits, so the total
 * stays under a megabyte (a few KB for usual requests). */
typedef struct {
    size_t scratch; /* params, lower-cased headers, then hb, sl, then the presign/authz tail */
    size_t hb;      /* canonical header block */
    size_t sl;      /* signed-header list */
    size_t creq;
} space_t;

static void workspace_size(const sl_sigv4_input_t *in, space_t *sp)
{
    size_t hdr = 0;
    for (size_t i = 0; i < in->nheaders; i++)
        hdr += in->headers[i].name.len + in->headers[i].value.len;
    size_t n = in->nheaders + 3;
    size_t added = sizeof(HDR_DATE) + SL_SIGV4_DATE_LEN + sizeof(HDR_TOKEN) +
                   in->session_token.len + sizeof(HDR_SHA256) + SL_SIGV4_MAX_PAYLOAD_HASH;
    size_t scope = SL_SIGV4_DATE_LEN + in->region.len + in->service.len + 16;
    sp->hb = hdr + added + 2 * n + 8;
    sp->sl = hdr + added + n + 8;
    /* presign parameters (encoded: 3x) plus the signature or Authorization tail */
    size_t tail = 3 * (in->access_key.len + scope + sp->sl + 2 * in->session_token.len + 64) +
                  256;
    size_t params = 3 * in->query.len;
    sp->scratch = params + (hdr + added) + sp->hb + sp->sl + tail;
    sp->creq = in->method.len + 3 * in->path.len + 4 + params + 2 * (SL_SIGV4_MAX_PARAMS + 8) +
               tail + sp->hb + sp->sl + SL_SIGV4_MAX_PAYLOAD_HASH + 8;
}

int sl_sigv4_sign(const sl_sigv4_input_t *in, sl_sigv4_output_t *out, char *err, size_t errlen)
{
    if (in == NULL || out == NULL) {
        set_err(err, errlen, "sigv4: NULL input or output");
        return SL_ERROR;
    }
    out->signature[0] = '\0';
    if (check_input(in, err, errlen) != SL_OK || check_path(in->path, err, errlen) != SL_OK)
        return SL_ERROR;

    signer_t *s = malloc(sizeof(*s));
    if (s == NULL)
        abort();
    space_t sp;
    workspace_size(in, &sp);
    char *mem = malloc(sp.scratch + sp.creq);
    if (mem == NULL)
        abort();
    int rc = SL_ERROR;
    s->in = in;
    s->presign = (in->flags & SL_SIGV4_PRESIGN) != 0;
    s->params.n = 0;
    s->nhdrs = 0;
    sb_init(&s->scratch, mem, sp.scratch);
    sb_init(&s->creq, mem + sp.scratch, sp.creq);

    /* everything that needs scratch first: headers, payload, query parameters */
    if (load_headers(s, err, errlen) != SL_OK || payload_hash(s, err, errlen) != SL_OK ||
        complete_headers(s, err, errlen) != SL_OK ||
        parse_query(&s->params, &s->scratch, in->query, err, errlen) != SL_OK)
        goto done;

    /* method, URI */
    sb_str(&s->creq, in->method);
    sb_ch(&s->creq, '\n');
    if (build_uri(&s->creq, in->path, (in->flags & SL_SIGV4_S3) != 0, err, errlen) != SL_OK)
        goto done;
    sb_ch(&s->creq, '\n');

    /* the canonical headers and the signed list go to scratch first: presigning needs the
     * signed list as a query parameter before the query is written */
    sb_t hb, sl;
    if (s->scratch.over || sp.hb + sp.sl > s->scratch.cap - s->scratch.len) {
        set_err(err, errlen, "sigv4: internal workspace too small");
        goto done;
    }
    sb_init(&hb, s->scratch.p + s->scratch.len, sp.hb);
    sb_init(&sl, hb.p + hb.cap, sp.sl);
    emit_headers(s, &hb, &sl);
    s->scratch.len += hb.cap + sl.cap;
    if (hb.over || sl.over || s->scratch.over) {
        set_err(err, errlen, "sigv4: internal workspace too small");
        goto done;
    }
    if (s->presign && presign_params(s, (sl_str_t){sl.p, sl.len}, err, errlen) != SL_OK)
        goto done;

    s->query_off = s->creq.len;
    emit_query(&s->creq, &s->params, s->scratch.p);
    s->query_len = s->creq.len - s->query_off;
    sb_ch(&s->creq, '\n');
    sb_add(&s->creq, hb.p, hb.len);
    sb_ch(&s->creq, '\n');
    s->signed_off = s->creq.len;
    sb_add(&s->creq, sl.p, sl.len);
    s->signed_len = sl.len;
    sb_ch(&s->creq, '\n');
    sb_str(&s->creq, s->payload);
    if (s->creq.over || s->scratch.over) {
        set_err(err, errlen, "sigv4: internal workspace too small");
        goto done;
    }

    /* string to sign */
    uint8_t d[32], key[32];
    if (sha256_3(s->creq.p, s->creq.len, NULL, 0, NULL, 0, d) != SL_OK) {
        set_err(err, errlen, "sigv4: SHA-256 failed");
        goto done;
    }
    sb_t st;
    sb_init(&st, s->sts, sizeof(s->sts));
    sb_add(&st, SL_SIGV4_ALGORITHM "\n", sizeof(SL_SIGV4_ALGORITHM));
    sb_str(&st, in->amz_date);
    sb_ch(&st, '\n');
    scope(&st, in);
    sb_ch(&st, '\n');
    char hex[64];
    to_hex(d, 32, hex);
    sb_add(&st, hex, 64);
    if (st.over) {
        set_err(err, errlen, "sigv4: internal workspace too small");
        goto done;
    }
    s->sts_len = st.len;

    /* signature */
    if (sl_sigv4_signing_key(in->secret_key, (sl_str_t){in->amz_date.data, 8}, in->region,
                             in->service, key, err, errlen) != SL_OK)
        goto done;
    int hrc = hmac_sha256(key, 32, s->sts, s->sts_len, d);
    OPENSSL_cleanse(key, sizeof(key));
    if (hrc != SL_OK) {
        set_err(err, errlen, "sigv4: HMAC-SHA256 failed");
        goto done;
    }
    to_hex(d, 32, s->signature);
    s->signature[SL_SIGV4_SIG_LEN] = '\0';

    /* outputs */
    if (put_out(&out->canonical_request, "canonical_request", s->creq.p, s->creq.len, NULL, 0,
                err, errlen) != SL_OK ||
        put_out(&out->string_to_sign, "string_to_sign", s->sts, s->sts_len, NULL, 0, err,
                errlen) != SL_OK)
        goto done;

    /* authorization (header mode) or the signed query (presign), built in scratch */
    size_t aoff = s->scratch.len;
    const char *q = s->creq.p + s->query_off;
    if (s->presign) {
        if (s->query_len)
            sb_ch(&s->scratch, '&');
        sb_add(&s->scratch, "X-Amz-Signature=", 16);
        sb_add(&s->scratch, s->signature, SL_SIGV4_SIG_LEN);
        if (in->session_token.len && (in->flags & SL_SIGV4_TOKEN_AFTER)) {
            sb_add(&s->scratch, "&X-Amz-Security-Token=", 22);
            sb_enc(&s->scratch, in->session_token.data, in->session_token.len);
        }
    } else {
        sb_add(&s->scratch, SL_SIGV4_ALGORITHM " Credential=", sizeof(SL_SIGV4_ALGORITHM) + 11);
        sb_str(&s->scratch, in->access_key);
        sb_ch(&s->scratch, '/');
        scope(&s->scratch, in);
        sb_add(&s->scratch, ", SignedHeaders=", 16);
        sb_add(&s->scratch, s->creq.p + s->signed_off, s->signed_len);
        sb_add(&s->scratch, ", Signature=", 12);
        sb_add(&s->scratch, s->signature, SL_SIGV4_SIG_LEN);
    }
    if (s->scratch.over) {
        set_err(err, errlen, "sigv4: internal workspace too small");
        goto done;
    }
    const char *tail = s->scratch.p + aoff;
    size_t tail_len = s->scratch.len - aoff;
    if (s->presign) {
        out->authorization.len = 0;
        if (put_out(&out->query, "query", q, s->query_len, tail, tail_len, err, errlen) !=
            SL_OK)
            goto done;
    } else if (put_out(&out->authorization, "authorization", tail, tail_len, NULL, 0, err,
                       errlen) != SL_OK ||
               put_out(&out->query, "query", q, s->query_len, NULL, 0, err, errlen) != SL_OK) {
        goto done;
    }
    memcpy(out->signature, s->signature, sizeof(out->signature));
    rc = SL_OK;

done:
    free(mem);
    free(s);
    return rc;
}

int sl_sigv4_signing_key(sl_str_t secret, sl_str_t date8, sl_str_t region, sl_str_t service,
                         uint8_t key[32], char *err, size_t errlen)
{
    if (check_len(secret, 1, SL_SIGV4_MAX_SECRET, "secret_key", err, errlen) != SL_OK ||
        check_scope_part(region, "region", err, errlen) != SL_OK ||
        check_scope_part(service, "service", err, errlen) != SL_OK)
        return SL_ERROR;
    if (date8.len != 8 || date8.data == NULL || !digits(date8.data, 8, 0, 99999999)) {
        set_err(err, errlen, "date: expected YYYYMMDD");
        return SL_ERROR;
    }
    if (cache_key(secret, date8, region, service, key) != SL_OK) {
        set_err(err, errlen, "sigv4: HMAC-SHA256 failed");
        return SL_ERROR;
    }
    return SL_OK;
}

int sl_sigv4_format_date(int64_t epoch, char out[SL_SIGV4_DATE_LEN + 1])
{
    if (epoch < 0 || epoch > INT64_C(253402300799))
        return SL_ERROR;
    time_t t = (time_t)epoch;
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL ||
        strftime(out, SL_SIGV4_DATE_LEN + 1, "%Y%m%dT%H%M%SZ", &tm) != SL_SIGV4_DATE_LEN)
        return SL_ERROR;
    return SL_OK;
}

/* ---- FFI ---- */

static sl_str_t ffi_str(const char *p, size_t len)
{
    return (sl_str_t){len ? p : "", len};
}

int sl_ffi_sigv4_sign(const sl_ffi_sigv4_in_t *in, sl_ffi_sigv4_out_t *out, char *err,
                      size_t errlen)
{
    if (in == NULL || out == NULL) {
        set_err(err, errlen, "sigv4: NULL input or output");
        return SL_ERROR;
    }
    if (in->nheaders > SL_SIGV4_MAX_HEADERS) {
        set_err(err, errlen, "headers: more than %d", SL_SIGV4_MAX_HEADERS);
        return SL_ERROR;
    }
    if (in->nheaders && in->headers == NULL) {
        set_err(err, errlen, "headers: NULL array");
        return SL_ERROR;
    }
    if (sl_sigv4_format_date(in->timestamp, out->amz_date) != SL_OK) {
        set_err(err, errlen, "timestamp: out of range");
        return SL_ERROR;
    }
    sl_header_t hdrs[SL_SIGV4_MAX_HEADERS];
    for (size_t i = 0; i < in->nheaders; i++) {
        hdrs[i].name = ffi_str(in->headers[i].name, in->headers[i].name_len);
        hdrs[i].value = ffi_str(in->headers[i].value, in->headers[i].value_len);
    }
    sl_sigv4_input_t s = {
        .method = ffi_str(in->method, in->method_len),
        .path = ffi_str(in->path, in->path_len),
        .query = ffi_str(in->query, in->query_len),
        .headers = hdrs,
        .nheaders = in->nheaders,
        .body = ffi_str(in->body, in->body_len),
        .region = ffi_str(in->region, in->region_len),
        .service = ffi_str(in->service, in->service_len),
        .amz_date = {out->amz_date, SL_SIGV4_DATE_LEN},
        .access_key = ffi_str(in->access_key, in->access_key_len),
        .secret_key = ffi_str(in->secret_key, in->secret_key_len),
        .session_token = ffi_str(in->session_token, in->session_token_len),
        .flags = in->flags,
        .expires = in->expires,
    };
    sl_sigv4_output_t o = {
        .canonical_request = {out->creq, out->creq_cap, 0},
        .string_to_sign = {out->sts, out->sts_cap, 0},
        .authorization = {out->authz, out->authz_cap, 0},
        .query = {out->query, out->query_cap, 0},
    };
    int rc = sl_sigv4_sign(&s, &o, err, errlen);
    out->creq_len = o.canonical_request.len;
    out->sts_len = o.string_to_sign.len;
    out->authz_len = o.authorization.len;
    out->query_len = o.query.len;
    memcpy(out->signature, o.signature, sizeof(out->signature));
    return rc;
}

int sl_ffi_sigv4_cache_stats(double *hits, double *misses, int *entries)
{
    uint64_t h, m;
    unsigned n;
    if (hits == NULL || misses == NULL || entries == NULL)
        return SL_ERROR;
    sl_sigv4_cache_stats(&h, &m, &n);
    *hits = (double)h;
    *misses = (double)m;
    *entries = (int)n;
    return SL_OK;
}

void sl_ffi_sigv4_cache_clear(void)
{
    sl_sigv4_cache_clear();
}
