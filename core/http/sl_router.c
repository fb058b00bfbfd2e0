/*
 * sl_router.c: Kong "traditional_compatible" routing on PCRE2. See sl_router.h.
 *
 * Build: every definition becomes an rt_route_t (strings copied into the router's arena,
 * regexes compiled and JIT-compiled when possible); every route becomes one rt_entry_t per
 * group of paths (one per prefix length, one for all its regexes, one if it has no paths).
 * Entries are sorted once by Kong's priority key. Match: walk the entries in order and return
 * the first whose categories all match, cheapest checks first, regexes last.
 */
#include "sl_router.h"

#include <stdalign.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#define RT_MAX_HEADER_COUNT 255

/* ---- arena: every string and array of a router lives here, freed at once ---- */

typedef struct rt_chunk_s {
    struct rt_chunk_s *next;
    size_t used, cap;
    max_align_t data[];
} rt_chunk_t;

enum { RT_HOST_EXACT, RT_HOST_SUFFIX, RT_HOST_PREFIX };

typedef struct {
    sl_str_t source; /* as configured, for matched_host */
    sl_str_t name;   /* lower-case, without '*' and port */
    unsigned port;   /* 0: any port */
    int kind;
} rt_host_t;

typedef struct {
    sl_str_t value; /* lower-case, for equality */
    pcre2_code *re; /* set for "~*re" values */
} rt_hvalue_t;

typedef struct {
    sl_str_t name; /* lower-case, '_' replaced by '-' */
    rt_hvalue_t *values;
    size_t nvalues;
} rt_header_t;

typedef struct {
    sl_str_t source;  /* as configured ("/p" or "~re") */
    sl_str_t prefix;  /* normalized prefix (prefix paths) */
    pcre2_code *re;   /* regex paths */
    sl_str_t *names;  /* [ngroups + 1] group names, regex paths */
    uint32_t ngroups; /* capture groups, not counting the whole match */
} rt_path_t;

typedef struct {
    size_t index;
    void *data;
    sl_str_t *methods;
    size_t nmethods;
    sl_str_t *snis;
    size_t nsnis;
    rt_host_t *hosts;
    size_t nhosts;
    rt_header_t *headers;
    size_t nheaders;
    rt_path_t *paths;
    size_t npaths;
    int strip_path, preserve_host, path_handling, regex_priority;
    unsigned weight;  /* categories set */
    int plain_hosts;  /* hosts set and none has a wildcard */
    int port_hosts;   /* some host has an explicit port (tie-break) */
} rt_route_t;

typedef struct {
    const rt_route_t *route;
    const rt_path_t **paths; /* this group's paths, in definition order */
    size_t npaths;
    int regex;
    size_t prefix_len;
    size_t seq; /* creation order of entries, last tie-break */
} rt_entry_t;

struct sl_router_s {
    rt_chunk_t *chunks;
    rt_route_t *routes;
    size_t nroutes;
    rt_entry_t *entries;
    size_t nentries;
    pcre2_match_data *md; /* shared by all regexes; NULL when there is none */
};

typedef struct {
    sl_router_t *r;
    char *err;
    size_t errlen;
    size_t index;
    uint32_t max_pairs;
} rt_build_t;

static void *rt_alloc(sl_router_t *r, size_t size)
{
    size_t align = alignof(max_align_t);
    size = size ? (size + align - 1) / align * align : align;
    rt_chunk_t *c = r->chunks;
    if (c == NULL || c->cap - c->used < size) {
        size_t cap = size > 16384 ? size : 16384;
        c = malloc(sizeof(*c) + cap);
        if (c == NULL)
            return NULL;
        c->next = r->chunks;
        c->used = 0;
        c->cap = cap;
        r->chunks = c;
    }
    void *p = (char *)c->data + c->used;
    c->used += size;
    memset(p, 0, size);
    return p;
}

static void rt_error(rt_build_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void rt_error(rt_build_t *b, const char *fmt, ...)
{
    if (b->err == NULL || b->errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->err, b->errlen, fmt, ap);
    va_end(ap);
}

static int rt_oom(rt_build_t *b)
{
    rt_error(b, "out of memory");
    return SL_ERROR;
}

static inline unsigned char rt_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

static int rt_case_eq(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (rt_lower((unsigned char)a[i]) != rt_lower((unsigned char)b[i]))
            return 0;
    }
    return 1;
}

/* Copies s into the arena, lower-cased when asked. */
static int rt_copy(rt_build_t *b, sl_str_t s, int lower, sl_str_t *out)
{
    char *p = rt_alloc(b->r, s.len + 1);
    if (p == NULL)
        return rt_oom(b);
    for (size_t i = 0; i < s.len; i++)
        p[i] = lower ? (char)rt_lower((unsigned char)s.data[i]) : s.data[i];
    p[s.len] = '\0';
    out->data = p;
    out->len = s.len;
    return SL_OK;
}

/* ---- path normalization (kong.tools.uri.normalize with merge_slashes) ---- */

static int rt_hex(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = rt_lower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

static int rt_reserved(unsigned char c)
{
    return c != '\0' && strchr("!*'();:@&=+$,/?%#[]", c) != NULL;
}

/* Removes the last output segment (it starts at the last '/', or at 0). */
static size_t rt_pop(const char *b, size_t o)
{
    while (o > 0 && b[o - 1] != '/')
        o--;
    return o > 0 ? o - 1 : 0;
}

/* Kong's dot-segment loop, in place: the output never overtakes the input. */
static size_t rt_remove_dots(char *b, size_t n)
{
    size_t r = 0, o = 0;
    while (r < n) {
        const char *p = b + r;
        size_t rest = n - r;
        if (rest == 2 && p[0] == '/' && p[1] == '.') { /* "/." -> "/" */
            r += 1;
            b[r] = '/';
        } else if (rest == 3 && p[0] == '/' && p[1] == '.' && p[2] == '.') { /* "/.." */
            r += 2;
            b[r] = '/';
            o = rt_pop(b, o);
        } else if ((rest == 1 && p[0] == '.') || (rest == 2 && p[0] == '.' && p[1] == '.')) {
            r = n;
        } else if (rest >= 3 && p[0] == '.' && p[1] == '.' && p[2] == '/') {
            r += 3;
        } else if (rest >= 2 && p[0] == '.' && p[1] == '/') {
            r += 2;
        } else if (rest >= 3 && p[0] == '/' && p[1] == '.' && p[2] == '/') {
            r += 2;
        } else if (rest >= 4 && p[0] == '/' && p[1] == '.' && p[2] == '.' && p[3] == '/') {
            r += 3;
            o = rt_pop(b, o);
        } else if (rest >= 2 && p[0] == '/' && p[1] == '/') {
            r += 1;
        } else {
            const char *slash = rest > 1 ? memchr(p + 1, '/', rest - 1) : NULL;
            size_t seg = slash ? (size_t)(slash - p) : rest;
            memmove(b + o, p, seg);
            o += seg;
            r += seg;
        }
    }
    return o;
}

/* Normalizes in[0..len) (up to the first '?') into out; SL_ERROR on a malformed escape or
 * when out is too small. */
static int rt_normalize(const char *in, size_t len, char *out, size_t outlen, size_t *olen)
{
    const char *q = len ? memchr(in, '?', len) : NULL;
    if (q)
        len = (size_t)(q - in);
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == '%') {
            int hi = i + 2 < len ? rt_hex((unsigned char)in[i + 1]) : -1;
            int lo = hi >= 0 ? rt_hex((unsigned char)in[i + 2]) : -1;
            if (lo < 0)
                return SL_ERROR;
            c = (unsigned char)(hi * 16 + lo);
            i += 2;
            if (rt_reserved(c)) {
                if (outlen - o < 3)
                    return SL_ERROR;
                out[o++] = '%';
                out[o++] = "0123456789ABCDEF"[hi];
                out[o++] = "0123456789ABCDEF"[lo];
                continue;
            }
        }
        if (o >= outlen)
            return SL_ERROR;
        out[o++] = (char)c;
    }
    *olen = rt_remove_dots(out, o);
    return SL_OK;
}

/* ---- host patterns ---- */

/* Splits "name[:port]" ("[v6]:port" too); a suffix that is not a port stays in the name. */
static void rt_split_host(sl_str_t h, sl_str_t *name, unsigned *port)
{
    *name = h;
    *port = 0;
    const char *colon = NULL;
    if (h.len && h.data[0] == '[') {
        const char *close = memchr(h.data, ']', h.len);
        if (close && (size_t)(close - h.data) + 1 < h.len && close[1] == ':')
            colon = close + 1;
    } else {
        colon = h.len ? memchr(h.data, ':', h.len) : NULL;
        if (colon && memchr(colon + 1, ':', h.len - (size_t)(colon + 1 - h.data)))
            colon = NULL; /* bare IPv6 literal */
    }
    if (colon == NULL)
        return;
    size_t plen = h.len - (size_t)(colon + 1 - h.data);
    unsigned long v = 0;
    for (size_t i = 0; i < plen; i++) {
        unsigned char c = (unsigned char)colon[1 + i];
        if (c < '0' || c > '9' || i >= 5)
            return;
        v = v * 10 + (c - '0');
    }
    if (v > 65535)
        return;
    name->len = (size_t)(colon - h.data);
    *port = (unsigned)v;
}

static int rt_host_matches(const rt_host_t *h, sl_str_t name, unsigned port)
{
    if (h->port && h->port != port)
        return 0;
    switch (h->kind) {
    case RT_HOST_EXACT:
        return name.len == h->name.len && rt_case_eq(name.data, h->name.data, name.len);
    case RT_HOST_SUFFIX:
        return name.len >= h->name.len &&
               rt_case_eq(name.data + name.len - h->name.len, h->name.data, h->name.len);
    default:
        return name.len >= h->name.len && rt_case_eq(name.data, h->name.data, h->name.len);
    }
}

/* ---- build ---- */

static pcre2_code *rt_compile(rt_build_t *b, sl_str_t src, uint32_t opts, const char *what,
                              sl_str_t shown)
{
    int code;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)(src.data ? src.data : ""), src.len, opts, &code,
                                   &off, NULL);
    if (re == NULL) {
        PCRE2_UCHAR msg[256];
        if (pcre2_get_error_message(code, msg, sizeof(msg)) < 0)
            strcpy((char *)msg, "unknown error");
        rt_error(b, "route %zu: invalid %s '%.*s': %s at offset %zu", b->index, what,
                 (int)shown.len, shown.data, (const char *)msg, (size_t)off);
        return NULL;
    }
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* no JIT: the interpreter is used */
    uint32_t groups = 0;
    pcre2_pattern_info(re, PCRE2_INFO_CAPTURECOUNT, &groups);
    if (groups + 1 > b->max_pairs)
        b->max_pairs = groups + 1;
    return re;
}

static int rt_build_path(rt_build_t *b, sl_str_t src, rt_path_t *p)
{
    if (rt_copy(b, src, 0, &p->source) != SL_OK)
        return SL_ERROR;
    if (src.len && src.data[0] == '~') {
        sl_str_t body = {src.data + 1, src.len - 1};
        p->re = rt_compile(b, body, PCRE2_ANCHORED | PCRE2_DOLLAR_ENDONLY, "regex", src);
        if (p->re == NULL)
            return SL_ERROR;
        pcre2_pattern_info(p->re, PCRE2_INFO_CAPTURECOUNT, &p->ngroups);
        p->names = rt_alloc(b->r, sizeof(sl_str_t) * (p->ngroups + 1));
        if (p->names == NULL)
            return rt_oom(b);
        uint32_t count = 0, size = 0;
        PCRE2_SPTR table = NULL;
        pcre2_pattern_info(p->re, PCRE2_INFO_NAMECOUNT, &count);
        pcre2_pattern_info(p->re, PCRE2_INFO_NAMEENTRYSIZE, &size);
        pcre2_pattern_info(p->re, PCRE2_INFO_NAMETABLE, &table);
        for (uint32_t i = 0; i < count; i++) {
            PCRE2_SPTR e = table + (size_t)i * size;
            uint32_t n = ((uint32_t)e[0] << 8) | e[1];
            if (n <= p->ngroups) { /* names live in the compiled pattern, freed with it */
                p->names[n].data = (const char *)e + 2;
                p->names[n].len = strlen((const char *)e + 2);
            }
        }
        return SL_OK;
    }
    if (src.len == 0 || src.data[0] != '/') {
        rt_error(b, "route %zu: invalid path '%.*s'", b->index, (int)src.len,
                 src.data ? src.data : "");
        return SL_ERROR;
    }
    char *buf = rt_alloc(b->r, src.len + 1);
    if (buf == NULL)
        return rt_oom(b);
    size_t n = 0;
    if (rt_normalize(src.data, src.len, buf, src.len, &n) != SL_OK) {
        rt_error(b, "route %zu: invalid path '%.*s'", b->index, (int)src.len, src.data);
        return SL_ERROR;
    }
    p->prefix.data = buf;
    p->prefix.len = n;
    return SL_OK;
}

static int rt_build_host(rt_build_t *b, sl_str_t src, rt_host_t *h)
{
    sl_str_t name;
    if (rt_copy(b, src, 0, &h->source) != SL_OK)
        return SL_ERROR;
    rt_split_host(h->source, &name, &h->port);
    h->kind = RT_HOST_EXACT;
    if (name.len && name.data[0] == '*') {
        h->kind = RT_HOST_SUFFIX;
        name.data++;
        name.len--;
    } else if (name.len && name.data[name.len - 1] == '*') {
        h->kind = RT_HOST_PREFIX;
        name.len--;
    }
    if (name.len == 0 || memchr(name.data, '*', name.len) != NULL) {
        rt_error(b, "route %zu: invalid host '%.*s'", b->index, (int)src.len,
                 src.data ? src.data : "");
        return SL_ERROR;
    }
    return rt_copy(b, name, 1, &h->name);
}

static int rt_build_header(rt_build_t *b, const sl_router_header_t *src, rt_header_t *h)
{
    if (src->name.len == 0 || sl_str_case_eq(src->name, SL_STR("host"))) {
        rt_error(b, "route %zu: invalid header name '%.*s'", b->index, (int)src->name.len,
                 src->name.data ? src->name.data : "");
        return SL_ERROR;
    }
    if (src->nvalues == 0) {
        rt_error(b, "route %zu: header '%.*s' has no values", b->index, (int)src->name.len,
                 src->name.data);
        return SL_ERROR;
    }
    if (rt_copy(b, src->name, 1, &h->name) != SL_OK)
        return SL_ERROR;
    for (size_t i = 0; i < h->name.len; i++) {
        if (h->name.data[i] == '_')
            ((char *)h->name.data)[i] = '-';
    }
    h->values = rt_alloc(b->r, sizeof(*h->values) * src->nvalues);
    if (h->values == NULL)
        return rt_oom(b);
    h->nvalues = src->nvalues;
    for (size_t i = 0; i < src->nvalues; i++) {
        sl_str_t v = src->values[i];
        if (v.len >= 2 && v.data[0] == '~' && v.data[1] == '*') {
            sl_str_t body = {v.data + 2, v.len - 2};
            h->values[i].re = rt_compile(b, body, PCRE2_CASELESS, "header regex", v);
            if (h->values[i].re == NULL)
                return SL_ERROR;
        } else if (rt_copy(b, v, 1, &h->values[i].value) != SL_OK) {
            return SL_ERROR;
        }
    }
    return SL_OK;
}

/* Copies a list of methods (as is) or SNIs (lower-cased, without a trailing dot). */
static int rt_copy_list(rt_build_t *b, const sl_str_t *src, size_t n, int is_sni,
                        sl_str_t **out)
{
    if (n == 0)
        return SL_OK;
    *out = rt_alloc(b->r, sizeof(sl_str_t) * n);
    if (*out == NULL)
        return rt_oom(b);
    for (size_t i = 0; i < n; i++) {
        sl_str_t s = src[i];
        if (is_sni && s.len > 1 && s.data[s.len - 1] == '.')
            s.len--; /* the last dot of an FQDN is not used for routing */
        if (s.len == 0) {
            rt_error(b, "route %zu: invalid %s '%.*s'", b->index, is_sni ? "sni" : "method",
                     (int)src[i].len, src[i].data ? src[i].data : "");
            return SL_ERROR;
        }
        if (rt_copy(b, s, is_sni, &(*out)[i]) != SL_OK)
            return SL_ERROR;
    }
    return SL_OK;
}

static int rt_build_route(rt_build_t *b, const sl_route_def_t *d, rt_route_t *rt)
{
    rt->index = b->index;
    rt->data = d->data;
    rt->strip_path = d->strip_path;
    rt->preserve_host = d->preserve_host;
    rt->path_handling = d->path_handling;
    rt->regex_priority = d->regex_priority;

    if (rt_copy_list(b, d->methods, d->nmethods, 0, &rt->methods) != SL_OK ||
        rt_copy_list(b, d->snis, d->nsnis, 1, &rt->snis) != SL_OK)
        return SL_ERROR;
    rt->nmethods = d->nmethods;
    rt->nsnis = d->nsnis;

    if (d->nhosts) {
        rt->hosts = rt_alloc(b->r, sizeof(*rt->hosts) * d->nhosts);
        if (rt->hosts == NULL)
            return rt_oom(b);
        rt->plain_hosts = 1;
        for (size_t i = 0; i < d->nhosts; i++) {
            if (rt_build_host(b, d->hosts[i], &rt->hosts[i]) != SL_OK)
                return SL_ERROR;
            rt->nhosts = i + 1;
            if (rt->hosts[i].kind != RT_HOST_EXACT)
                rt->plain_hosts = 0;
            if (rt->hosts[i].port)
                rt->port_hosts = 1;
        }
    }
    if (d->nheaders) {
        rt->headers = rt_alloc(b->r, sizeof(*rt->headers) * d->nheaders);
        if (rt->headers == NULL)
            return rt_oom(b);
        for (size_t i = 0; i < d->nheaders; i++) {
            rt->nheaders = i + 1; /* counted first so destroy sees a half-built header */
            if (rt_build_header(b, &d->headers[i], &rt->headers[i]) != SL_OK)
                return SL_ERROR;
        }
    }
    if (d->npaths) {
        rt->paths = rt_alloc(b->r, sizeof(*rt->paths) * d->npaths);
        if (rt->paths == NULL)
            return rt_oom(b);
        for (size_t i = 0; i < d->npaths; i++) {
            rt->npaths = i + 1;
            if (rt_build_path(b, d->paths[i], &rt->paths[i]) != SL_OK)
                return SL_ERROR;
        }
    }
    rt->weight = (rt->nmethods > 0) + (rt->nhosts > 0) + (rt->nheaders > 0) + (rt->nsnis > 0) +
                 (rt->npaths > 0);
    return SL_OK;
}

/* Group key of a path: all regexes together, prefixes by length. */
static int rt_same_group(const rt_path_t *a, const rt_path_t *b)
{
    if ((a->re != NULL) != (b->re != NULL))
        return 0;
    return a->re != NULL || a->prefix.len == b->prefix.len;
}

static int rt_entry_cmp(const void *pa, const void *pb)
{
    const rt_entry_t *a = pa, *b = pb;
    const rt_route_t *x = a->route, *y = b->route;
    size_t hx = x->nheaders > RT_MAX_HEADER_COUNT ? RT_MAX_HEADER_COUNT : x->nheaders;
    size_t hy = y->nheaders > RT_MAX_HEADER_COUNT ? RT_MAX_HEADER_COUNT : y->nheaders;
    if (x->weight != y->weight)
        return x->weight > y->weight ? -1 : 1;
    if (x->plain_hosts != y->plain_hosts)
        return x->plain_hosts ? -1 : 1;
    if (hx != hy)
        return hx > hy ? -1 : 1;
    if (a->regex != b->regex)
        return a->regex ? -1 : 1;
    if (a->regex && x->regex_priority != y->regex_priority)
        return x->regex_priority > y->regex_priority ? -1 : 1;
    if (a->prefix_len != b->prefix_len)
        return a->prefix_len > b->prefix_len ? -1 : 1;
    if (x->port_hosts != y->port_hosts)
        return x->port_hosts ? -1 : 1;
    if (a->seq != b->seq)
        return a->seq < b->seq ? -1 : 1;
    return 0;
}

static int rt_build_entries(rt_build_t *b)
{
    sl_router_t *r = b->r;
    size_t total = 0;
    for (size_t i = 0; i < r->nroutes; i++) {
        const rt_route_t *rt = &r->routes[i];
        size_t groups = rt->npaths ? 0 : 1;
        for (size_t j = 0; j < rt->npaths; j++) {
            size_t k = 0;
            while (k < j && !rt_same_group(&rt->paths[k], &rt->paths[j]))
                k++;
            groups += (k == j);
        }
        total += groups;
    }
    r->entries = rt_alloc(r, sizeof(*r->entries) * (total ? total : 1));
    if (r->entries == NULL)
        return rt_oom(b);
    for (size_t i = 0; i < r->nroutes; i++) {
        const rt_route_t *rt = &r->routes[i];
        if (rt->npaths == 0) {
            r->entries[r->nentries] = (rt_entry_t){.route = rt, .seq = r->nentries};
            r->nentries++;
            continue;
        }
        for (size_t j = 0; j < rt->npaths; j++) {
            size_t k = 0;
            while (k < j && !rt_same_group(&rt->paths[k], &rt->paths[j]))
                k++;
            if (k < j)
                continue; /* already in the group that path k opened */
            size_t n = 0;
            for (size_t m = j; m < rt->npaths; m++)
                n += rt_same_group(&rt->paths[j], &rt->paths[m]);
            const rt_path_t **list = rt_alloc(r, sizeof(*list) * n);
            if (list == NULL)
                return rt_oom(b);
            n = 0;
            for (size_t m = j; m < rt->npaths; m++) {
                if (rt_same_group(&rt->paths[j], &rt->paths[m]))
                    list[n++] = &rt->paths[m];
            }
            r->entries[r->nentries] = (rt_entry_t){
                .route = rt,
                .paths = list,
                .npaths = n,
                .regex = rt->paths[j].re != NULL,
                .prefix_len = rt->paths[j].re ? 0 : rt->paths[j].prefix.len,
                .seq = r->nentries,
            };
            r->nentries++;
        }
    }
    qsort(r->entries, r->nentries, sizeof(*r->entries), rt_entry_cmp);
    return SL_OK;
}

sl_router_t *sl_router_create(const sl_route_def_t *defs, size_t n, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    rt_build_t b = {.err = err, .errlen = errlen};
    sl_router_t *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        rt_oom(&b);
        return NULL;
    }
    b.r = r;
    if (n && defs == NULL) {
        rt_error(&b, "routes missing");
        goto fail;
    }
    r->routes = rt_alloc(r, sizeof(*r->routes) * (n ? n : 1));
    if (r->routes == NULL) {
        rt_oom(&b);
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        b.index = i;
        r->nroutes = i + 1; /* counted first: destroy frees what a failed build compiled */
        if (rt_build_route(&b, &defs[i], &r->routes[i]) != SL_OK)
            goto fail;
    }
    if (rt_build_entries(&b) != SL_OK)
        goto fail;
    if (b.max_pairs) {
        r->md = pcre2_match_data_create(b.max_pairs, NULL);
        if (r->md == NULL) {
            rt_oom(&b);
            goto fail;
        }
    }
    return r;

fail:
    sl_router_destroy(r);
    return NULL;
}

void sl_router_destroy(sl_router_t *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->nroutes; i++) {
        const rt_route_t *rt = &r->routes[i];
        for (size_t j = 0; j < rt->npaths; j++)
            pcre2_code_free(rt->paths[j].re);
        for (size_t j = 0; j < rt->nheaders; j++) {
            for (size_t k = 0; k < rt->headers[j].nvalues; k++)
                pcre2_code_free(rt->headers[j].values[k].re);
        }
    }
    pcre2_match_data_free(r->md);
    rt_chunk_t *c = r->chunks;
    while (c) {
        rt_chunk_t *next = c->next;
        free(c);
        c = next;
    }
    free(r);
}

/* ---- match ---- */

static int rt_list_has(const sl_str_t *list, size_t n, sl_str_t v, int caseless)
{
    for (size_t i = 0; i < n; i++) {
        if (list[i].len == v.len &&
            (caseless ? rt_case_eq(list[i].data, v.data, v.len)
                      : memcmp(list[i].data, v.data, v.len) == 0))
            return 1;
    }
    return 0;
}

static int rt_regex_find(const sl_router_t *r, const pcre2_code *re, sl_str_t s)
{
    return pcre2_match(re, (PCRE2_SPTR)(s.data ? s.data : ""), s.len, 0, 0, r->md, NULL) >= 0;
}

static int rt_headers_match(const sl_router_t *r, const rt_route_t *rt,
                            const sl_router_request_t *req)
{
    for (size_t i = 0; i < rt->nheaders; i++) {
        const rt_header_t *h = &rt->headers[i];
        int found = 0;
        for (size_t j = 0; j < req->nheaders && !found; j++) {
            const sl_header_t *rh = &req->headers[j];
            if (rh->name.len != h->name.len ||
                !rt_case_eq(rh->name.data, h->name.data, h->name.len))
                continue;
            for (size_t k = 0; k < h->nvalues && !found; k++) {
                const rt_hvalue_t *v = &h->values[k];
                if (v->re)
                    found = rt_regex_find(r, v->re, rh->value);
                else
                    found = rh->value.len == v->value.len &&
                            rt_case_eq(rh->value.data, v->value.data, v->value.len);
            }
        }
        if (!found)
            return 0;
    }
    return 1;
}

int sl_router_match(const sl_router_t *r, const sl_router_request_t *req, char *scratch,
                    size_t scratch_len, sl_router_match_t *m)
{
    size_t plen = 0;
    if (r == NULL || req == NULL || m == NULL || (scratch == NULL && scratch_len))
        return SL_ERROR;
    if (rt_normalize(req->path.data, req->path.len, scratch, scratch_len, &plen) != SL_OK)
        return SL_ERROR;
    sl_str_t path = {scratch, plen};

    sl_str_t hname;
    unsigned hport;
    rt_split_host(req->host, &hname, &hport);
    unsigned port = hport ? hport : req->port;
    sl_str_t sni = req->sni;
    if (sni.len > 1 && sni.data[sni.len - 1] == '.')
        sni.len--;
    int https = req->protocol == SL_PROTO_HTTPS;

    for (size_t e = 0; e < r->nentries; e++) {
        const rt_entry_t *en = &r->entries[e];
        const rt_route_t *rt = en->route;
        if (rt->nmethods && !rt_list_has(rt->methods, rt->nmethods, req->method, 0))
            continue;
        if (rt->nsnis && https && !rt_list_has(rt->snis, rt->nsnis, sni, 1))
            continue;
        const rt_host_t *host = NULL;
        for (size_t i = 0; i < rt->nhosts && host == NULL; i++) {
            if (rt_host_matches(&rt->hosts[i], hname, port))
                host = &rt->hosts[i];
        }
        if (rt->nhosts && host == NULL)
            continue;
        const rt_path_t *hit = NULL;
        if (!en->regex) {
            for (size_t i = 0; i < en->npaths && hit == NULL; i++) {
                sl_str_t p = en->paths[i]->prefix;
                if (path.len >= p.len && memcmp(path.data, p.data, p.len) == 0)
                    hit = en->paths[i];
            }
            if (en->npaths && hit == NULL)
                continue;
        }
        if (rt->nheaders && !rt_headers_match(r, rt, req))
            continue;
        int rc = 0;
        if (en->regex) {
            for (size_t i = 0; i < en->npaths && hit == NULL; i++) {
                rc = pcre2_match(en->paths[i]->re, (PCRE2_SPTR)(path.data ? path.data : ""),
                                 path.len, 0, 0, r->md, NULL);
                if (rc > 0)
                    hit = en->paths[i];
            }
            if (hit == NULL)
                continue;
        }

        memset(m, 0, sizeof(*m));
        m->data = rt->data;
        m->route_index = rt->index;
        m->path = path;
        m->matched_host = host ? host->source : (sl_str_t){NULL, 0};
        m->strip_path = rt->strip_path;
        m->preserve_host = rt->preserve_host;
        m->path_handling = rt->path_handling;
        if (hit && hit->re) {
            const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(r->md);
            size_t n = (size_t)hit->ngroups + 1;
            if (n > SL_ROUTER_MAX_CAPTURES)
                n = SL_ROUTER_MAX_CAPTURES;
            for (size_t i = 0; i < n; i++) {
                m->captures[i].name = hit->names[i];
                if ((int)i < rc && ov[2 * i] != PCRE2_UNSET && ov[2 * i + 1] >= ov[2 * i]) {
                    m->captures[i].value.data = path.data + ov[2 * i];
                    m->captures[i].value.len = ov[2 * i + 1] - ov[2 * i];
                }
            }
            m->ncaptures = n;
            m->matched_path = hit->source;
            m->match_len = ov[1];
        } else if (hit) {
            m->matched_path = hit->source;
            m->match_len = hit->prefix.len;
        }
        return SL_OK;
    }
    return SL_DECLINED;
}

/* ---- upstream path ---- */

typedef struct {
    char *out;
    size_t cap, len;
    int ok;
} rt_out_t;

/* Kong's kong.tools.uri.escape: percent-encode what is not in its safe set. */
static void rt_put(rt_out_t *o, const char *s, size_t n)
{
    static const char safe[] = "!#$&'()*+,/:;=?@[]-_.~%";
    for (size_t i = 0; i < n && o->ok; i++) {
        unsigned char c = (unsigned char)s[i];
        int plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    (c != '\0' && strchr(safe, c) != NULL);
        size_t need = plain ? 1 : 3;
        if (o->cap - o->len < need + 1) { /* keep room for the NUL */
            o->ok = 0;
            break;
        }
        if (plain) {
            o->out[o->len++] = (char)c;
        } else {
            o->out[o->len++] = '%';
            o->out[o->len++] = "0123456789ABCDEF"[c >> 4];
            o->out[o->len++] = "0123456789ABCDEF"[c & 15];
        }
    }
}

static sl_str_t rt_sanitize_postfix(sl_str_t p)
{
    if ((p.len == 1 && p.data[0] == '.') || (p.len == 2 && p.data[0] == '.' && p.data[1] == '.'))
        return (sl_str_t){p.data, 0};
    if (p.len >= 2 && p.data[0] == '.' && p.data[1] == '/')
        return (sl_str_t){p.data + 2, p.len - 2};
    if (p.len >= 3 && p.data[0] == '.' && p.data[1] == '.' && p.data[2] == '/')
        return (sl_str_t){p.data + 3, p.len - 3};
    return p;
}

int sl_router_upstream_path(const sl_router_match_t *m, sl_str_t service_path, char *out,
                            size_t outlen, size_t *written)
{
    if (m == NULL || out == NULL || outlen == 0)
        return SL_ERROR;
    rt_out_t o = {out, outlen, 0, 1};
    sl_str_t base = service_path.len ? service_path : SL_STR("/");
    sl_str_t req = m->path;
    if (req.len == 0)
        req = SL_STR("/");
    int base_slash = base.data[base.len - 1] == '/';
    int req_slash = req.data[req.len - 1] == '/';
    sl_str_t tail = {req.data + 1, req.len - 1}; /* the request path without its leading '/' */
    sl_str_t postfix = tail;
    if (m->strip_path && m->matched_path.len && m->match_len <= req.len)
        postfix = (sl_str_t){req.data + m->match_len, req.len - m->match_len};
    postfix = rt_sanitize_postfix(postfix);
    sl_str_t base_cut = {base.data, base.len - 1}; /* base without its last byte */

    if (m->path_handling == 1) { /* "v1", as Kong's traditional router */
        if (!m->strip_path) {
            rt_put(&o, base.data, base.len);
            rt_put(&o, tail.data, tail.len);
        } else if (base_slash && postfix.len && postfix.data[0] == '/') {
            rt_put(&o, base_cut.data, base_cut.len);
            rt_put(&o, postfix.data, postfix.len);
        } else {
            rt_put(&o, base.data, base.len);
            rt_put(&o, postfix.data, postfix.len);
        }
    } else if (base_slash) { /* "v0" (kong/router/utils.lua get_upstream_uri_v0) */
        if (!m->strip_path) {
            rt_put(&o, base.data, base.len);
            rt_put(&o, tail.data, tail.len);
        } else if (postfix.len == 0) {
            if (base.len == 1 || req_slash)
                rt_put(&o, base.data, base.len);
            else
                rt_put(&o, base_cut.data, base_cut.len);
        } else if (postfix.data[0] == '/') {
            rt_put(&o, base_cut.data, base_cut.len);
            rt_put(&o, postfix.data, postfix.len);
        } else {
            rt_put(&o, base.data, base.len);
            rt_put(&o, postfix.data, postfix.len);
        }
    } else {
        if (!m->strip_path) {
            rt_put(&o, base.data, base.len);
            if (!(req.len == 1 && req.data[0] == '/'))
                rt_put(&o, req.data, req.len);
        } else if (postfix.len == 0) {
            rt_put(&o, base.data, base.len);
            if (req.len > 1 && req_slash)
                rt_put(&o, "/", 1);
        } else {
            rt_put(&o, base.data, base.len);
            if (postfix.data[0] != '/')
                rt_put(&o, "/", 1);
            rt_put(&o, postfix.data, postfix.len);
        }
    }
    if (!o.ok)
        return SL_ERROR;
    out[o.len] = '\0';
    if (written)
        *written = o.len;
    return SL_OK;
}
