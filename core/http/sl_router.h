/*
 * sl_router.h: the request router (Kong's "traditional_compatible" flavour).
 *
 * sl_router_create() compiles an array of route definitions (paths, hosts, methods, headers,
 * SNIs, regex_priority, strip_path, preserve_host, path_handling) into an immutable router;
 * sl_router_match() picks the route for one request; sl_router_upstream_path() joins a
 * service path with the request path as Kong's router utils do.
 *
 * Matching (Kong kong/router/compat.lua + transform.lua + atc.lua):
 *   - paths: "/prefix" is a prefix match on the normalized request path; "~re" is a PCRE2
 *     regex anchored at the start of the path (PCRE2_ANCHORED, so every alternative is
 *     anchored, as the traditional router did). Prefix paths are normalized at create time.
 *   - normalization (kong.tools.uri.normalize): "%XX" of a reserved character
 *     (!*'();:@&=+$,/?%#[]) stays encoded with upper-case hex, every other "%XX" is decoded
 *     (unreserved and "other" bytes alike, as Kong does); dot segments are removed; "//" is
 *     merged. A malformed escape ("%zz", "%4") makes the path invalid (SL_ERROR -> 400).
 *     Anything from the first '?' on is ignored.
 *   - hosts: exact, "*.suffix" or "prefix.*", case-insensitive, optionally ":port". The
 *     request Host's port is ignored by host patterns without a port; a pattern with a port
 *     needs the Host's port, or the destination port when the Host carries none.
 *   - methods: exact, case-sensitive. headers: names case-insensitive ("_" in a route's
 *     header name stands for "-"); a route header matches when any request line of that name
 *     equals (case-insensitively) any listed value, or matches a "~*re" value (unanchored,
 *     caseless); all route headers must match. snis: checked only when the request protocol
 *     is SL_PROTO_HTTPS (a trailing dot is ignored on both sides).
 *   - priority, highest first: number of categories set (methods, hosts, headers, snis,
 *     paths), hosts all plain (no '*'), header count (capped at 255), regex path, regex_priority
 *     (regex paths only), prefix length. A route with several paths is split into one entry
 *     per prefix length plus one for all its regexes, as Kong does; inside an entry the paths
 *     are tried in definition order. Equal keys: a route with a port-specific host first (the
 *     ordering Kong's own router spec expects), then lower index in defs.
 *
 * Ownership and lifetime: sl_router_create() copies every string it needs; the defs array and
 * its strings may be freed as soon as it returns. The router owns its memory (compiled regexes,
 * one pcre2_match_data) until sl_router_destroy(). Strings handed back in a match
 * (matched_path, matched_host, capture names) point into the router and live as long as it;
 * the normalized path and capture values point into the caller's scratch buffer.
 *
 * Threads: a router is immutable after create except for its one pcre2_match_data, which
 * sl_router_match() reuses; use one router from one thread at a time (one per worker is the
 * intended use). sl_router_match() allocates nothing and costs O(routes); PCRE2 is called only
 * for routes whose other categories already matched.
 *
 * Errors: sl_router_create() returns NULL and writes a message into err (if err/errlen allow)
 * naming the route by its 0-based index in defs and the bad value, e.g.
 * "route 3: invalid regex '~/(a': missing closing parenthesis at offset 3".
 */
#ifndef SL_ROUTER_H
#define SL_ROUTER_H

#include "sl_core.h"

enum { SL_PROTO_HTTP = 1, SL_PROTO_HTTPS = 2 };

/* One header condition of a route: a value "~*re" is a case-insensitive regex. */
typedef struct {
    sl_str_t name;
    const sl_str_t *values;
    size_t nvalues;
} sl_router_header_t;

/* One route as configured. An empty list (n == 0) means the category is not set. */
typedef struct {
    const sl_str_t *paths;
    size_t npaths; /* "/prefix" or "~regex" */
    const sl_str_t *hosts;
    size_t nhosts; /* "a.com", "*.a.com", "a.*", optional ":port" */
    const sl_str_t *methods;
    size_t nmethods;
    const sl_router_header_t *headers;
    size_t nheaders;
    const sl_str_t *snis;
    size_t nsnis;
    int regex_priority;
    unsigned protocols; /* SL_PROTO_* mask; informational, matching ignores it (caller: 426) */
    int strip_path;     /* Kong default 1 */
    int preserve_host;  /* default 0 */
    int path_handling;  /* 0 = "v0" (default), 1 = "v1" */
    void *data;         /* caller's route object, handed back on match */
} sl_route_def_t;

typedef struct sl_router_s sl_router_t;

/*
 * Builds a router from n definitions; copies everything it needs. On error returns NULL and
 * writes a NUL-terminated message naming the route index and the bad value into err
 * (truncated to errlen; err may be NULL). Rejected: a path not starting with '/' or '~', a
 * prefix path with a malformed %-escape, a regex (path or header) that does not compile, an
 * empty host/method/SNI/header name, a header named "host". n == 0 builds a router that
 * matches nothing.
 */
sl_router_t *sl_router_create(const sl_route_def_t *defs, size_t n, char *err, size_t errlen);
void sl_router_destroy(sl_router_t *r);

typedef struct {
    sl_str_t method;
    sl_str_t host;     /* Host header value as sent, may carry ":port" */
    unsigned port;     /* destination (listener) port, for host patterns with :port */
    sl_str_t path;     /* raw request path, no query */
    const sl_header_t *headers;
    size_t nheaders;
    sl_str_t sni;      /* empty for plain http */
    unsigned protocol; /* SL_PROTO_HTTP or SL_PROTO_HTTPS */
} sl_router_request_t;

#define SL_ROUTER_MAX_CAPTURES 16

typedef struct {
    void *data;            /* the matched route's data */
    size_t route_index;    /* its index in defs */
    sl_str_t path;         /* the normalized request path (in scratch) */
    sl_str_t matched_path; /* the route path that matched, as configured ("/p" or "~re"); len 0
                              when the route has no paths */
    size_t match_len;      /* bytes of the normalized path consumed by the match (prefix len, or
                              the regex's whole-match end); 0 when the route has no paths */
    sl_str_t matched_host; /* the route host pattern that matched, len 0 if none */
    size_t ncaptures;      /* regex captures: index 0 = whole match; 0 for prefix matches */
    struct {
        sl_str_t name;  /* len 0 for numbered groups; points into the router */
        sl_str_t value; /* points into scratch; data NULL when the group did not take part */
    } captures[SL_ROUTER_MAX_CAPTURES];
    int strip_path, preserve_host, path_handling;
} sl_router_match_t;

/*
 * Matches without allocating: the normalized path is written into scratch (the caller's
 * buffer; req->path.len bytes always suffice). Returns SL_OK with *m filled, SL_DECLINED when
 * no route matches, SL_ERROR when scratch is too small or the path cannot be normalized
 * (caller answers 400). Groups past SL_ROUTER_MAX_CAPTURES - 1 are not reported.
 */
int sl_router_match(const sl_router_t *r, const sl_router_request_t *req, char *scratch,
                    size_t scratch_len, sl_router_match_t *m);

/*
 * Joins service_path (empty means "/") and the matched request path per strip_path and
 * path_handling (Kong kong/router/utils.lua get_upstream_uri_v0; "v1" as the traditional
 * router did it) and writes the upstream path (no query) to out, percent-encoding bytes
 * outside Kong's safe set as Kong's runloop does before proxying (kong.tools.uri.escape).
 * out is NUL-terminated; *written excludes the NUL. Returns SL_OK, or SL_ERROR when it does
 * not fit in outlen bytes (out then holds no valid path).
 */
int sl_router_upstream_path(const sl_router_match_t *m, sl_str_t service_path, char *out,
                            size_t outlen, size_t *written);

#endif
