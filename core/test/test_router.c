/*
 * test_router.c: sl_router as tables of routes and requests.
 *
 * Most cases are Kong's own (spec/01-unit/08-router_spec.lua, traditional_compatible flavour,
 * and spec/fixtures/router_path_handling_tests.lua for the upstream path joins); the rest pin
 * the rules of sl_router.h one by one.
 */
#include "http/sl_router.h"
#include "test/sl_test.h"

#include <stdlib.h>
#include <string.h>

#define S(x) {(x), sizeof(x) - 1}
#define STRS(...) ((const sl_str_t[]){__VA_ARGS__})
#define NSTRS(...) (sizeof(STRS(__VA_ARGS__)) / sizeof(sl_str_t))
#define PATHS(...) .paths = STRS(__VA_ARGS__), .npaths = NSTRS(__VA_ARGS__)
#define HOSTS(...) .hosts = STRS(__VA_ARGS__), .nhosts = NSTRS(__VA_ARGS__)
#define METHODS(...) .methods = STRS(__VA_ARGS__), .nmethods = NSTRS(__VA_ARGS__)
#define SNIS(...) .snis = STRS(__VA_ARGS__), .nsnis = NSTRS(__VA_ARGS__)
#define HDR(name, ...) {S(name), STRS(__VA_ARGS__), NSTRS(__VA_ARGS__)}
#define HEADERS(...)                                                                          \
    .headers = ((const sl_router_header_t[]){__VA_ARGS__}),                                   \
    .nheaders = sizeof((const sl_router_header_t[]){__VA_ARGS__}) / sizeof(sl_router_header_t)

#define NONE -1
#define BAD -2 /* SL_ERROR expected */

typedef struct {
    const char *method, *host, *path;
    const char *hdrs[4][2];
    const char *sni;
    unsigned proto, port;
    int want;              /* route index, NONE or BAD */
    const char *want_path; /* matched_path expected, NULL: not checked */
} rq_t;

static sl_str_t str(const char *s)
{
    return (sl_str_t){s ? s : "", s ? strlen(s) : 0};
}

static int do_match(const sl_router_t *r, const rq_t *c, char *scratch, size_t len,
                    sl_router_match_t *m)
{
    sl_header_t hdrs[4];
    size_t nh = 0;
    while (nh < 4 && c->hdrs[nh][0]) {
        hdrs[nh].name = str(c->hdrs[nh][0]);
        hdrs[nh].value = str(c->hdrs[nh][1]);
        nh++;
    }
    sl_router_request_t req = {
        .method = str(c->method ? c->method : "GET"),
        .host = str(c->host),
        .port = c->port ? c->port : 8000, /* Kong's proxy listener */
        .path = str(c->path ? c->path : "/"),
        .headers = hdrs,
        .nheaders = nh,
        .sni = str(c->sni),
        .protocol = c->proto ? c->proto : SL_PROTO_HTTP,
    };
    return sl_router_match(r, &req, scratch, len, m);
}

static void run(const char *name, const sl_route_def_t *defs, size_t ndefs, const rq_t *cases,
                size_t ncases)
{
    char err[256];
    sl_router_t *r = sl_router_create(defs, ndefs, err, sizeof(err));
    SL_CHECK(r != NULL, "%s: create failed: %s", name, err);
    if (r == NULL)
        return;
    for (size_t i = 0; i < ncases; i++) {
        const rq_t *c = &cases[i];
        char scratch[512];
        sl_router_match_t m;
        int rc = do_match(r, c, scratch, sizeof(scratch), &m);
        int got = rc == SL_OK ? (int)m.route_index : rc == SL_DECLINED ? NONE : BAD;
        SL_CHECK(got == c->want, "%s case %zu (%s %s%s): route %d, want %d", name, i,
                 c->host ? c->host : "", c->path ? c->path : "/", c->sni ? " sni" : "", got,
                 c->want);
        if (rc == SL_OK) {
            SL_CHECK(m.data == defs[m.route_index].data, "%s case %zu: data", name, i);
            if (c->want_path)
                SL_CHECK(m.matched_path.len == strlen(c->want_path) &&
                             memcmp(m.matched_path.data, c->want_path, m.matched_path.len) == 0,
                         "%s case %zu: matched path '%.*s', want '%s'", name, i,
                         (int)m.matched_path.len, m.matched_path.data, c->want_path);
        }
    }
    sl_router_destroy(r);
}

#define RUN(name, defs, cases) run(name, defs, SL_ARRAY_SIZE(defs), cases, SL_ARRAY_SIZE(cases))

/* Kong 08-router_spec.lua select(): the 15 routes of its use_case, in order (index = i - 1). */
static void test_kong_select(void)
{
    const sl_route_def_t defs[] = {
        {HOSTS(S("domain-1.org"), S("domain-2.org"))},
        {METHODS(S("TRACE"))},
        {PATHS(S("/my-route"))},
        {PATHS(S("/route-4")), HOSTS(S("domain-1.org"), S("domain-2.org"))},
        {HOSTS(S("domain-1.org"), S("domain-2.org")), METHODS(S("POST"), S("PUT"), S("PATCH"))},
        {METHODS(S("POST"), S("PUT"), S("PATCH")), PATHS(S("/route-6"))},
        {HOSTS(S("domain-with-uri-1.org"), S("domain-with-uri-2.org")),
         METHODS(S("POST"), S("PUT"), S("PATCH")), PATHS(S("/my-route-uri"))},
        {PATHS(S("/serviceless"))},
        {HEADERS(HDR("location", S("my-location-1"), S("my-location-2")))},
        {HEADERS(HDR("location", S("my-location-1")), HDR("version", S("v1"), S("v2")))},
        {HEADERS(HDR("location", S("my-location-1"), S("my-location-2"))),
         PATHS(S("/headers-uri"))},
        {HOSTS(S("domain-with-headers-1.org"), S("domain-with-headers-2.org")),
         HEADERS(HDR("location", S("my-location-1"), S("my-location-2"))),
         METHODS(S("POST"), S("PUT"), S("PATCH")), PATHS(S("/headers-host-uri-method"))},
        {HOSTS(S("domain-1.org:321"), S("domain-2.org"))},
        {HOSTS(S("domain-3.org:321"))},
        {HEADERS(HDR("user_agent", S("~*windows|linux|os\\s+x\\s*[\\d\\._]+|solaris|bsd")))},
    };
    const rq_t cases[] = {
        {.host = "domain-1.org", .want = 0},
        {.host = "domain-1.org:80", .want = 0},  /* ignores default port */
        {.host = "domain-1.org:321", .want = 12}, /* matches specific port */
        {.host = "domain-3.org:321", .want = 13},
        {.host = "domain-3.org:123", .want = NONE}, /* fails just because of port */
        {.host = "domain.org", .path = "/my-route", .want = 2, .want_path = "/my-route"},
        {.host = "", .path = "/my-route-uri", .want = 2},
        {.method = "TRACE", .host = "domain.org", .want = 1},
        {.host = "domain-1.org", .path = "/route-4", .want = 3},
        {.method = "POST", .host = "domain-1.org", .want = 4},
        {.method = "PUT", .host = "domain.org", .path = "/route-6", .want = 5},
        {.method = "PUT", .host = "domain-with-uri-2.org", .path = "/my-route-uri", .want = 6},
        {.hdrs = {{"location", "my-location-1"}}, .want = 8},
        {.hdrs = {{"location", "my-location-2"}}, .want = 8},
        {.hdrs = {{"location", "my-location-3"}, {"location", "my-location-2"}}, .want = 8},
        {.hdrs = {{"location", "my-location-3"}}, .want = NONE},
        {.hdrs = {{"location", "my-location-3"}, {"location", "foo"}}, .want = NONE},
        {.hdrs = {{"User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, "
                                 "like Gecko) Chrome/83.0.4103.116 Safari/537.36"}},
         .want = 14},
        {.hdrs = {{"location", "my-location-1"}, {"version", "v1"}}, .want = 9},
        {.hdrs = {{"location", "my-location-1"}, {"version", "v2"}}, .want = 9},
        {.hdrs = {{"location", "my-location-3"}, {"location", "my-location-1"}, {"version", "v2"}},
         .want = 9},
        {.hdrs = {{"location", "my-location-3"}, {"location", "my-location-2"}, {"version", "v2"}},
         .want = 8}, /* falls back to the single-header route */
        {.path = "/headers-uri", .hdrs = {{"location", "my-location-2"}}, .want = 10},
        {.method = "PUT", .host = "domain-with-headers-1.org", .path = "/headers-host-uri-method",
         .hdrs = {{"location", "my-location-2"}}, .want = 11},
        {.path = "/serviceless", .want = 7},
        {.host = "domain.org", .path = "/my-route/some/path", .want = 2},
        {.method = "get", .host = "domain.org", .want = NONE}, /* methods are case-sensitive */
    };
    RUN("kong select", defs, cases);
}

static void test_prefix_priority(void)
{
    /* Kong: "does not supersede another route with a longer [uri]" (and with methods/hosts) */
    const sl_route_def_t plain[] = {{PATHS(S("/my-route/hello"))}, {PATHS(S("/my-route"))}};
    const sl_route_def_t methods[] = {
        {METHODS(S("POST"), S("PUT"), S("GET")), PATHS(S("/my-route"))},
        {METHODS(S("POST"), S("PUT"), S("GET")), PATHS(S("/my-route/hello"))},
    };
    const sl_route_def_t hosts[] = {
        {HOSTS(S("domain.org")), PATHS(S("/my-route"))},
        {HOSTS(S("domain.org")), PATHS(S("/my-route/hello"))},
    };
    const rq_t c1[] = {
        {.path = "/my-route/hello", .want = 0},
        {.path = "/my-route/hello/world", .want = 0},
        {.path = "/my-route", .want = 1},
        {.path = "/my-route/world", .want = 1},
        {.path = "/my-rout", .want = NONE},
    };
    const rq_t c2[] = {
        {.host = "domain.org", .path = "/my-route/hello", .want = 1},
        {.host = "domain.org", .path = "/my-route/hello/world", .want = 1},
        {.host = "domain.org", .path = "/my-route", .want = 0},
        {.host = "domain.org", .path = "/my-route/world", .want = 0},
    };
    RUN("longer prefix", plain, c1);
    RUN("longer prefix + methods", methods, c2);
    RUN("longer prefix + hosts", hosts, c2);

    /* Kong: a better [uri] match for another [host] does not win; prefix is anchored */
    const sl_route_def_t other_host[] = {
        {HOSTS(S("example.com")), PATHS(S("/my-route"))},
        {HOSTS(S("example.com")), PATHS(S("/my-route/hello"))},
        {HOSTS(S("example.net")), PATHS(S("/my-route/hello/world"))},
        {PATHS(S("/something/my-route"))},
        {HOSTS(S("example.org")), PATHS(S("/my-route"))},
    };
    const rq_t c3[] = {
        {.host = "example.com", .path = "/my-route/hello/world", .want = 1},
        {.host = "example.com", .path = "/my-route/hello/world/and/goodnight", .want = 1},
        {.host = "example.org", .path = "/something/my-route", .want = 3},
    };
    RUN("other host", other_host, c3);

    /* more categories beat a longer prefix; equal routes go by creation order */
    const sl_route_def_t cats[] = {
        {PATHS(S("/very/long/prefix"))},
        {METHODS(S("GET")), PATHS(S("/"))},
        {PATHS(S("/same"))},
        {PATHS(S("/same"))},
    };
    const rq_t c4[] = {
        {.path = "/very/long/prefix", .want = 1},
        {.method = "POST", .path = "/very/long/prefix", .want = 0},
        {.method = "POST", .path = "/same", .want = 2},
        {.method = "POST", .path = "/other", .want = NONE},
    };
    RUN("categories", cats, c4);
}

static void test_regex(void)
{
    const sl_route_def_t one[] = {{PATHS(S("~/users/\\d+/profile"))}};
    const rq_t c1[] = {
        {.path = "/users/123/profile", .want = 0, .want_path = "~/users/\\d+/profile"},
        {.path = "/users/abc/profile", .want = NONE},
        {.path = "/x/users/123/profile", .want = NONE}, /* anchored */
    };
    RUN("regex", one, c1);

    const sl_route_def_t several[] = {
        {PATHS(S("~/route/persons/\\d{3}"))},
        {PATHS(S("~/route/persons/\\d{3}/following"))},
        {PATHS(S("~/route/persons/\\d{3}/[a-z]+"))},
    };
    const rq_t c2[] = {
        {.path = "/route/persons/456", .want = 0},
        {.path = "/route/persons/456/following", .want = 0}, /* same priority: first route */
    };
    RUN("several regex", several, c2);

    /* Kong: regex beats a prefix match, even an exact one; regex + host beats prefixes */
    const sl_route_def_t vs_prefix[] = {
        {PATHS(S("/route/persons"))},
        {PATHS(S("~/route/persons/\\d+/profile"))},
        {PATHS(S("/route/fixture"))},
        {PATHS(S("~/route/(fixture)"))},
        {HOSTS(S("route.com")), PATHS(S("/pat"))},
        {HOSTS(S("route.com")), PATHS(S("/path")), METHODS(S("POST"))},
        {HOSTS(S("route.com")), PATHS(S("~/(path)"))},
        {PATHS(S("~/prefix/[0-9]+"))},
        {PATHS(S("~/a|/b"))},
    };
    const rq_t c3[] = {
        {.path = "/route/persons/123/profile", .want = 1},
        {.path = "/route/persons/123", .want = 0},
        {.path = "/route/fixture", .want = 3},
        {.host = "route.com", .path = "/path", .want = 6},
        {.method = "POST", .host = "route.com", .path = "/path", .want = 5},
        {.path = "/prefix/123", .want = 7},
        {.path = "/extra/prefix/123", .want = NONE},
        {.path = "/b/x", .want = 8},
        {.path = "/x/b", .want = NONE}, /* every alternative is anchored */
    };
    RUN("regex vs prefix", vs_prefix, c3);

    /* regex_priority orders regex routes only; negative values sort last */
    const sl_route_def_t prio[] = {
        {PATHS(S("~/p/\\d+")), .regex_priority = 0},
        {PATHS(S("~/p/1")), .regex_priority = 5},
        {PATHS(S("~/p/[12]")), .regex_priority = 5},
        {PATHS(S("~/q")), .regex_priority = -1},
        {PATHS(S("~/q/x"))},
        {PATHS(S("/q/x/y")), .regex_priority = 100},
    };
    const rq_t c4[] = {
        {.path = "/p/1", .want = 1},
        {.path = "/p/2", .want = 2},
        {.path = "/p/3", .want = 0},
        {.path = "/q/x", .want = 4},
        {.path = "/q/y", .want = 3},
        {.path = "/q/x/y", .want = 4}, /* regex beats prefix whatever its regex_priority */
    };
    RUN("regex_priority", prio, c4);
}

static void test_hosts(void)
{
    /* Kong [wildcard host] */
    const sl_route_def_t wild[] = {
        {HOSTS(S("*.route.com"))},
        {HOSTS(S("route.*"))},
        {HOSTS(S("*.route.net:123"))},
        {HOSTS(S("route.*:123"))},
        {HOSTS(S("route.*:80"))},
    };
    const rq_t c1[] = {
        {.host = "foo.route.com", .want = 0},
        {.host = "route.org", .want = 1},
        {.host = "route.org:124", .want = 1},
        {.host = "foo.route.com:123", .want = 0},
        {.host = "foo.route.net:123", .want = 2},
        {.host = "foo.route.net:456", .want = NONE},
        {.host = "route.org:123", .want = 3}, /* port-specific is preferred */
        {.host = "route.org:80", .want = 4},
        {.host = "route.org", .port = 80, .want = 4}, /* Host without port: listener port */
        {.host = "route.org", .port = 8000, .want = 1},
        {.host = "ROUTE.org", .want = 1},
        {.host = "route.com", .want = 1},
        {.host = "xroute.com", .want = NONE},
    };
    RUN("wildcard hosts", wild, c1);

    /* Kong: a wildcard does not take precedence over a plain host */
    const sl_route_def_t plain[] = {
        {HOSTS(S("plain.route.com"))},
        {HOSTS(S("*.route.com"))},
        {HOSTS(S("route.*"))},
        {HOSTS(S("route.com"))},
    };
    const rq_t c2[] = {
        {.host = "route.com", .want = 3},
        {.host = "route.org", .want = 2},
        {.host = "plain.route.com", .want = 0},
        {.host = "foo.route.com", .want = 1},
        {.host = "Plain.Route.COM:8080", .want = 0},
    };
    RUN("plain vs wildcard", plain, c2);

    /* the plain-host bit outranks prefix length; a mixed list is not plain */
    const sl_route_def_t bit[] = {
        {HOSTS(S("*.a.com")), PATHS(S("/long/path"))},
        {HOSTS(S("x.a.com")), PATHS(S("/"))},
        {HOSTS(S("y.a.com"), S("*.b.com")), PATHS(S("/long/path/x"))},
        {HOSTS(S("y.a.com"), S("[::1]")), PATHS(S("/"))},
        {HOSTS(S("[::2]:8080"))},
    };
    const rq_t c3[] = {
        {.host = "x.a.com", .path = "/long/path", .want = 1},
        {.host = "z.a.com", .path = "/long/path", .want = 0},
        {.host = "y.a.com", .path = "/long/path/x", .want = 3},
        {.host = "q.b.com", .path = "/long/path/x", .want = 2},
        {.host = "[::1]:80", .want = 3},
        {.host = "[::2]:8080", .want = 4},
        {.host = "[::2]", .port = 8080, .want = 4},
        {.host = "[::2]:8081", .want = NONE},
    };
    RUN("plain host bit", bit, c3);
}

static void test_headers_snis(void)
{
    const sl_route_def_t defs[] = {
        {HEADERS(HDR("x-a", S("one")))},
        {HEADERS(HDR("x-a", S("one")), HDR("x_b", S("Two")))},
        {HEADERS(HDR("x-c", S("~*^v\\d+$"))), PATHS(S("~/r"))},
        {HEADERS(HDR("x-c", S("v1")), HDR("x-d", S("d"))), PATHS(S("/r"))},
    };
    const rq_t c1[] = {
        {.hdrs = {{"X-A", "ONE"}}, .want = 0},
        {.hdrs = {{"x-a", "one"}, {"X-B", "two"}}, .want = 1}, /* more headers win */
        {.hdrs = {{"x-a", "one"}, {"x-b", "three"}}, .want = 0},
        {.hdrs = {{"x-a", "onex"}}, .want = NONE},
        {.hdrs = {{"x-c", "V12"}}, .path = "/r", .want = 2},
        {.hdrs = {{"x-c", "v12x"}}, .path = "/r", .want = NONE},
        {.hdrs = {{"x-c", "v1"}, {"x-d", "d"}}, .path = "/r", .want = 3}, /* count before regex */
    };
    RUN("headers", defs, c1);

    const sl_route_def_t snis[] = {
        {SNIS(S("example.com.")), PATHS(S("/"))},
        {PATHS(S("/"))},
    };
    const rq_t c2[] = {
        {.sni = "example.com", .proto = SL_PROTO_HTTPS, .want = 0},
        {.sni = "Example.com.", .proto = SL_PROTO_HTTPS, .want = 0},
        {.sni = "other.com", .proto = SL_PROTO_HTTPS, .want = 1},
        {.proto = SL_PROTO_HTTPS, .want = 1},
        {.proto = SL_PROTO_HTTP, .want = 0}, /* SNIs are not checked for plain http */
    };
    RUN("snis", snis, c2);
}

static void test_split_paths(void)
{
    /* Kong splits a route per prefix length (and one entry for its regexes) */
    const sl_route_def_t defs[] = {
        {PATHS(S("/a"), S("/abc/def"), S("~/r/\\d+"))},
        {PATHS(S("/abc"))},
        {PATHS(S("~/r/1")), .regex_priority = 1},
        {PATHS(S("/x/1"), S("/x/2"), S("/y"))},
        {PATHS(S("~/m/(a)"), S("~/m/(a)(b)"))},
    };
    const rq_t cases[] = {
        {.path = "/abc/def/x", .want = 0, .want_path = "/abc/def"},
        {.path = "/abc/x", .want = 1},
        {.path = "/a/x", .want = 0, .want_path = "/a"},
        {.path = "/r/1", .want = 2},
        {.path = "/r/22", .want = 0, .want_path = "~/r/\\d+"},
        {.path = "/x/2/z", .want = 3, .want_path = "/x/2"},
        {.path = "/y", .want = 3, .want_path = "/y"},
        {.path = "/m/ab", .want = 4, .want_path = "~/m/(a)"}, /* first regex in order */
    };
    RUN("split paths", defs, cases);
}

typedef struct {
    const char *in, *out; /* out NULL: SL_ERROR */
} norm_t;

static void test_normalize(void)
{
    static const norm_t cases[] = {
        {"/", "/"},
        {"/a/./b", "/a/b"},
        {"/a/../b", "/b"},
        {"/a/b/..", "/a/"},
        {"/a/.", "/a/"},
        {"/..", "/"},
        {"/../../a", "/a"},
        {"/a//b///c", "/a/b/c"},
        {"//", "/"},
        {"/%7Euser", "/~user"},
        {"/%41%62c", "/Abc"},
        {"/a%2fb", "/a%2Fb"},
        {"/a%2Fb", "/a%2Fb"},
        {"/%3f%25%23", "/%3F%25%23"},
        {"/%2e%2e/x", "/x"},
        {"/a/%2E%2E/b", "/b"},
        {"/a/.%2e/b", "/b"},
        {"/%20x", "/ x"},
        {"/.foo/..bar", "/.foo/..bar"},
        {"/a?x=/../", "/a"},
        {"/%zz", NULL},
        {"/%4", NULL},
        {"/%", NULL},
        {"/ok/%g0", NULL},
    };
    const sl_route_def_t defs[] = {{PATHS(S("/"))}};
    sl_router_t *r = sl_router_create(defs, 1, NULL, 0);
    SL_CHECK(r != NULL, "normalize: create");
    if (r == NULL)
        return;
    for (size_t i = 0; i < SL_ARRAY_SIZE(cases); i++) {
        char scratch[64];
        sl_router_match_t m;
        rq_t c = {.path = cases[i].in};
        int rc = do_match(r, &c, scratch, sizeof(scratch), &m);
        if (cases[i].out == NULL) {
            SL_CHECK(rc == SL_ERROR, "normalize '%s': rc %d, want SL_ERROR", cases[i].in, rc);
            continue;
        }
        SL_CHECK(rc == SL_OK && m.path.len == strlen(cases[i].out) &&
                     memcmp(m.path.data, cases[i].out, m.path.len) == 0,
                 "normalize '%s': rc %d '%.*s', want '%s'", cases[i].in, rc,
                 rc == SL_OK ? (int)m.path.len : 0, rc == SL_OK ? m.path.data : "",
                 cases[i].out);
    }
    /* scratch too small */
    char tiny[4];
    sl_router_match_t m;
    rq_t c = {.path = "/abcdef"};
    SL_CHECK(do_match(r, &c, tiny, sizeof(tiny), &m) == SL_ERROR, "small scratch");
    sl_router_destroy(r);

    /* prefix paths are normalized too, and match the normalized request */
    const sl_route_def_t pre[] = {{PATHS(S("/a%2fb"))}, {PATHS(S("/foo%2Dbar"))},
                                  {PATHS(S("/x//y/./z"))}};
    const rq_t c2[] = {
        {.path = "/a%2Fb/c", .want = 0},
        {.path = "/a/b", .want = NONE},
        {.path = "/foo-bar", .want = 1},
        {.path = "/foo%2dbar/x", .want = 1},
        {.path = "/x/y/z", .want = 2},
        {.path = "/x/y/../y/z", .want = 2},
        {.path = "/%", .want = BAD},
    };
    RUN("normalized prefixes", pre, c2);
}

static void test_captures(void)
{
    const sl_route_def_t defs[] = {
        {PATHS(S("~/users/(?<id>\\d+)/(\\w+)"))},
        {PATHS(S("~/opt(/b)?(?P<tail>/c)?"))},
    };
    sl_router_t *r = sl_router_create(defs, 2, NULL, 0);
    SL_CHECK(r != NULL, "captures: create");
    if (r == NULL)
        return;
    char scratch[128];
    sl_router_match_t m;
    rq_t c = {.path = "/users/42/profile/more"};
    int rc = do_match(r, &c, scratch, sizeof(scratch), &m);
    SL_CHECK(rc == SL_OK && m.route_index == 0 && m.ncaptures == 3, "captures: rc %d n %zu", rc,
             rc == SL_OK ? m.ncaptures : 0);
    if (rc == SL_OK && m.ncaptures == 3) {
        SL_CHECK(m.match_len == 17, "captures: match_len %zu", m.match_len);
        SL_CHECK(sl_str_eq(m.captures[0].value, SL_STR("/users/42/profile")), "capture 0");
        SL_CHECK(m.captures[0].name.len == 0, "capture 0 has no name");
        SL_CHECK(sl_str_eq(m.captures[1].value, SL_STR("42")), "capture 1");
        SL_CHECK(sl_str_eq(m.captures[1].name, SL_STR("id")), "capture 1 name");
        SL_CHECK(sl_str_eq(m.captures[2].value, SL_STR("profile")), "capture 2");
        SL_CHECK(m.captures[2].name.len == 0, "capture 2 unnamed");
        SL_CHECK(m.captures[1].value.data >= scratch &&
                     m.captures[1].value.data < scratch + sizeof(scratch),
                 "captures point into scratch");
    }
    rq_t c2 = {.path = "/opt/c"};
    rc = do_match(r, &c2, scratch, sizeof(scratch), &m);
    SL_CHECK(rc == SL_OK && m.route_index == 1 && m.ncaptures == 3, "optional groups: rc %d",
             rc);
    if (rc == SL_OK && m.ncaptures == 3) {
        SL_CHECK(m.captures[1].value.data == NULL, "unset group has no value");
        SL_CHECK(sl_str_eq(m.captures[2].value, SL_STR("/c")), "group after an unset one");
        SL_CHECK(sl_str_eq(m.captures[2].name, SL_STR("tail")), "P<name> syntax");
        SL_CHECK(m.match_len == 6, "match_len %zu", m.match_len);
    }
    sl_router_destroy(r);
}

typedef struct {
    int index;
    const char *path, *host, *header;
    const char *want;
} bad_t;

static void test_errors(void)
{
    static const bad_t cases[] = {
        {3, "~/(a", NULL, NULL,
         "route 3: invalid regex '~/(a': missing closing parenthesis at offset 3"},
        {0, "~/a[", NULL, NULL,
         "route 0: invalid regex '~/a[': missing terminating ] for character class at offset 3"},
        {1, "no-slash", NULL, NULL, "route 1: invalid path 'no-slash'"},
        {1, "/bad%zz", NULL, NULL, "route 1: invalid path '/bad%zz'"},
        {2, NULL, "*", NULL, "route 2: invalid host '*'"},
        {2, NULL, "a.*.com", NULL, "route 2: invalid host 'a.*.com'"},
        {0, NULL, NULL, "~*(x",
         "route 0: invalid header regex '~*(x': missing closing parenthesis at offset 2"},
    };
    for (size_t i = 0; i < SL_ARRAY_SIZE(cases); i++) {
        const bad_t *c = &cases[i];
        sl_route_def_t defs[4] = {{PATHS(S("/ok"))}, {PATHS(S("/ok"))}, {PATHS(S("/ok"))},
                                  {PATHS(S("/ok"))}};
        sl_str_t v = str(c->path ? c->path : c->host ? c->host : c->header);
        sl_router_header_t h = {SL_STR("x-h"), &v, 1};
        if (c->path) {
            defs[c->index].paths = &v;
        } else if (c->host) {
            defs[c->index].hosts = &v;
            defs[c->index].nhosts = 1;
        } else {
            defs[c->index].headers = &h;
            defs[c->index].nheaders = 1;
        }
        char err[160] = "untouched";
        sl_router_t *r = sl_router_create(defs, 4, err, sizeof(err));
        SL_CHECK(r == NULL, "error case %zu: created", i);
        sl_router_destroy(r);
        SL_CHECK(strcmp(err, c->want) == 0, "error case %zu: '%s', want '%s'", i, err, c->want);
    }
    /* "host" is not a route header; errors are truncated to errlen */
    sl_str_t v = SL_STR("x");
    sl_router_header_t h = {SL_STR("Host"), &v, 1};
    sl_route_def_t d = {.headers = &h, .nheaders = 1};
    char err[16];
    SL_CHECK(sl_router_create(&d, 1, err, sizeof(err)) == NULL, "host header rejected");
    SL_CHECK(strcmp(err, "route 0: invali") == 0, "truncated error '%s'", err);
    SL_CHECK(sl_router_create(&d, 1, NULL, 0) == NULL, "NULL err is fine");

    /* no routes: nothing matches */
    sl_router_t *r = sl_router_create(NULL, 0, err, sizeof(err));
    SL_CHECK(r != NULL, "empty router");
    char scratch[16];
    sl_router_match_t m;
    rq_t c = {.path = "/"};
    SL_CHECK(r && do_match(r, &c, scratch, sizeof(scratch), &m) == SL_DECLINED, "empty: none");
    sl_router_destroy(r);
}

/* The router copies its definitions: they can be freed right after create. */
static void test_copies(void)
{
    char *p = strdup("~/c/(\\d+)"), *h = strdup("*.copy.com"), *meth = strdup("GET");
    char *hn = strdup("x-copy"), *hv = strdup("yes"), *sni = strdup("copy.com");
    sl_str_t paths[] = {str(p)}, hosts[] = {str(h)}, methods[] = {str(meth)}, vals[] = {str(hv)};
    sl_str_t snis[] = {str(sni)};
    sl_router_header_t hdrs[] = {{str(hn), vals, 1}};
    sl_route_def_t *defs = calloc(1, sizeof(*defs));
    if (defs == NULL || !p || !h || !meth || !hn || !hv || !sni) {
        SL_CHECK(0, "copies: out of memory");
        return;
    }
    *defs = (sl_route_def_t){.paths = paths, .npaths = 1, .hosts = hosts, .nhosts = 1,
                             .methods = methods, .nmethods = 1, .headers = hdrs, .nheaders = 1,
                             .snis = snis, .nsnis = 1, .strip_path = 1, .data = &test_copies};
    sl_router_t *r = sl_router_create(defs, 1, NULL, 0);
    memset(p, 'z', strlen(p));
    memset(h, 'z', strlen(h));
    free(p), free(h), free(meth), free(hn), free(hv), free(sni), free(defs);
    SL_CHECK(r != NULL, "copies: create");
    if (r == NULL)
        return;
    char scratch[64];
    sl_router_match_t m;
    rq_t c = {.host = "a.copy.com", .path = "/c/7", .hdrs = {{"X-Copy", "YES"}},
              .sni = "copy.com", .proto = SL_PROTO_HTTPS};
    int rc = do_match(r, &c, scratch, sizeof(scratch), &m);
    SL_CHECK(rc == SL_OK && m.data == (void *)&test_copies && m.strip_path == 1,
             "copies: rc %d", rc);
    if (rc == SL_OK) {
        SL_CHECK(sl_str_eq(m.matched_host, SL_STR("*.copy.com")), "copies: matched_host");
        SL_CHECK(sl_str_eq(m.matched_path, SL_STR("~/c/(\\d+)")), "copies: matched_path");
        SL_CHECK(sl_str_eq(m.captures[1].value, SL_STR("7")), "copies: capture");
    }
    sl_router_destroy(r);
}

typedef struct {
    const char *service, *route; /* route NULL: the route matches on host only */
    int strip;                   /* 0, 1, or 2 for both */
    int handling;                /* 0 = v0, 1 = v1, 2 = both */
    const char *request, *want;
} join_t;

/* Kong spec/fixtures/router_path_handling_tests.lua, row for row. */
static const join_t kong_joins[] = {
    {"/", "/", 2, 2, "/", "/"},
    {"/", "/", 2, 2, "/route", "/route"},
    {"/", "/", 2, 2, "/route/", "/route/"},
    {"/", "/", 2, 2, "/routereq", "/routereq"},
    {"/", "/", 2, 2, "/route/req", "/route/req"},
    {"/", "/route", 0, 2, "/route", "/route"},
    {"/", "/route", 0, 2, "/route/", "/route/"},
    {"/", "/route", 0, 2, "/routereq", "/routereq"},
    {"/", "/route", 1, 2, "/route", "/"},
    {"/", "/route", 1, 2, "/route/", "/"},
    {"/", "/route", 1, 2, "/routereq", "/req"},
    {"/", "/route/", 0, 2, "/route/", "/route/"},
    {"/", "/route/", 0, 2, "/route/req", "/route/req"},
    {"/", "/route/", 1, 2, "/route/", "/"},
    {"/", "/route/", 1, 2, "/route/req", "/req"},
    {"/srv", "/rou", 0, 0, "/roureq", "/srv/roureq"},
    {"/srv", "/rou", 0, 1, "/roureq", "/srvroureq"},
    {"/srv", "/rou", 1, 0, "/roureq", "/srv/req"},
    {"/srv", "/rou", 1, 1, "/roureq", "/srvreq"},
    {"/srv/", "/rou", 0, 2, "/rou", "/srv/rou"},
    {"/srv/", "/rou", 1, 0, "/rou", "/srv"},
    {"/srv/", "/rou", 1, 1, "/rou", "/srv/"},
    {"/service", "/", 2, 2, "/", "/service"},
    {"/service", "/", 2, 0, "/route", "/service/route"},
    {"/service", "/", 2, 1, "/route", "/serviceroute"},
    {"/service", "/", 2, 0, "/route/", "/service/route/"},
    {"/service", "/", 2, 1, "/route/", "/serviceroute/"},
    {"/service", "/", 2, 0, "/routereq", "/service/routereq"},
    {"/service", "/", 2, 1, "/routereq", "/serviceroutereq"},
    {"/service", "/", 2, 0, "/route/req", "/service/route/req"},
    {"/service", "/", 2, 1, "/route/req", "/serviceroute/req"},
    {"/service", "/route", 0, 0, "/route", "/service/route"},
    {"/service", "/route", 0, 1, "/route", "/serviceroute"},
    {"/service", "/route", 0, 0, "/route/", "/service/route/"},
    {"/service", "/route", 0, 1, "/route/", "/serviceroute/"},
    {"/service", "/route", 0, 0, "/routereq", "/service/routereq"},
    {"/service", "/route", 0, 1, "/routereq", "/serviceroutereq"},
    {"/service", "/route", 1, 2, "/route", "/service"},
    {"/service", "/route", 1, 2, "/route/", "/service/"},
    {"/service", "/route", 1, 0, "/routereq", "/service/req"},
    {"/service", "/route", 1, 1, "/routereq", "/servicereq"},
    {"/service", "/route/", 0, 0, "/route/", "/service/route/"},
    {"/service", "/route/", 0, 1, "/route/", "/serviceroute/"},
    {"/service", "/route/", 0, 0, "/route/req", "/service/route/req"},
    {"/service", "/route/", 0, 1, "/route/req", "/serviceroute/req"},
    {"/service", "/route/", 1, 0, "/route/", "/service/"},
    {"/service", "/route/", 1, 1, "/route/", "/service"},
    {"/service", "/route/", 1, 0, "/route/req", "/service/req"},
    {"/service", "/route/", 1, 1, "/route/req", "/servicereq"},
    {"/service/", "/", 2, 0, "/route/", "/service/route/"},
    {"/service/", "/", 2, 1, "/route/", "/service/route/"},
    {"/service/", "/", 2, 2, "/", "/service/"},
    {"/service/", "/", 2, 2, "/route", "/service/route"},
    {"/service/", "/", 2, 2, "/routereq", "/service/routereq"},
    {"/service/", "/", 2, 2, "/route/req", "/service/route/req"},
    {"/service/", "/route", 0, 2, "/route", "/service/route"},
    {"/service/", "/route", 0, 2, "/route/", "/service/route/"},
    {"/service/", "/route", 0, 2, "/routereq", "/service/routereq"},
    {"/service/", "/route", 1, 0, "/route", "/service"},
    {"/service/", "/route", 1, 1, "/route", "/service/"},
    {"/service/", "/route", 1, 2, "/route/", "/service/"},
    {"/service/", "/route", 1, 2, "/routereq", "/service/req"},
    {"/service/", "/route/", 0, 2, "/route/", "/service/route/"},
    {"/service/", "/route/", 0, 2, "/route/req", "/service/route/req"},
    {"/service/", "/route/", 1, 2, "/route/", "/service/"},
    {"/service/", "/route/", 1, 2, "/route/req", "/service/req"},
    {"/", NULL, 2, 2, "/", "/"},
    {"/", NULL, 2, 2, "/route", "/route"},
    {"/", NULL, 2, 2, "/route/", "/route/"},
    {"/service", NULL, 2, 2, "/", "/service"},
    {"/service", NULL, 2, 0, "/route", "/service/route"},
    {"/service", NULL, 2, 1, "/route", "/serviceroute"},
    {"/service", NULL, 2, 0, "/route/", "/service/route/"},
    {"/service", NULL, 2, 1, "/route/", "/serviceroute/"},
    {"/service/", NULL, 2, 2, "/", "/service/"},
    {"/service/", NULL, 2, 2, "/route", "/service/route"},
    {"/service/", NULL, 2, 2, "/route/", "/service/route/"},
    /* the lead's examples, an empty service path, a regex strip, dots and escaping */
    {"/s", "/r", 1, 0, "/r/x", "/s/x"},
    {"/s", "/r", 0, 0, "/r/x", "/s/r/x"},
    {"/s", "/r", 1, 0, "/r", "/s"},
    {"", "/r", 1, 0, "/r/x", "/x"},
    {"/s", "~/r/\\d+", 1, 0, "/r/12/x", "/s/x"},
    {"/s", "~/r/\\d+", 0, 0, "/r/12/x", "/s/r/12/x"},
    {"/s", "/r", 1, 0, "/r./x", "/s/x"},     /* postfix "./x" sanitized */
    {"/s", "/r", 1, 0, "/r../x", "/s/x"},    /* postfix "../x" sanitized */
    {"/s", "/r", 1, 0, "/r/a%20b", "/s/a%20b"}, /* decoded for matching, escaped again */
    {"/s", "/r", 1, 0, "/r/%2F%3F", "/s/%2F%3F"},
    {"/s", "/r", 1, 0, "/r/\xc3\xa4", "/s/%C3%A4"},
};

/* Kong's integration spec repeats the table with regex routes: "/p" becomes "~/[0]?p". */
static int join_case(const join_t *c, int strip, int handling, int regex)
{
    char route[64];
    sl_str_t path;
    if (c->route && regex) {
        snprintf(route, sizeof(route), "~/[0]?%s", c->route + 1);
        path = str(route);
    } else {
        path = str(c->route);
    }
    sl_route_def_t def = {.strip_path = strip, .path_handling = handling};
    const sl_str_t host = SL_STR("localbin.com");
    if (c->route) {
        def.paths = &path;
        def.npaths = 1;
    } else {
        def.hosts = &host;
        def.nhosts = 1;
    }
    char err[128];
    sl_router_t *r = sl_router_create(&def, 1, err, sizeof(err));
    if (r == NULL)
        return 0;
    char scratch[128], out[128];
    sl_router_match_t m;
    rq_t q = {.host = "localbin.com", .path = c->request};
    size_t n = 0;
    int ok = do_match(r, &q, scratch, sizeof(scratch), &m) == SL_OK &&
             sl_router_upstream_path(&m, str(c->service), out, sizeof(out), &n) == SL_OK &&
             n == strlen(c->want) && strcmp(out, c->want) == 0;
    if (!ok)
        fprintf(stderr, "  join got '%s'\n", out);
    sl_router_destroy(r);
    return ok;
}

static void test_upstream_path(void)
{
    for (size_t i = 0; i < SL_ARRAY_SIZE(kong_joins); i++) {
        const join_t *c = &kong_joins[i];
        for (int strip = 0; strip <= 1; strip++) {
            if (c->strip != 2 && c->strip != strip)
                continue;
            for (int h = 0; h <= 1; h++) {
                if (c->handling != 2 && c->handling != h)
                    continue;
                int max_regex = c->route && c->route[0] == '/'; /* also as "~/[0]?..." */
                for (int regex = 0; regex <= max_regex; regex++) {
                    SL_CHECK(join_case(c, strip, h, regex),
                             "join row %zu: service '%s' route '%s' strip %d v%d%s req '%s' "
                             "want '%s'",
                             i + 1, c->service, c->route ? c->route : "(host)", strip, h,
                             regex ? " regex" : "", c->request, c->want);
                }
            }
        }
    }

    /* out too small: SL_ERROR; exactly big enough (with the NUL): SL_OK */
    const sl_route_def_t defs[] = {{PATHS(S("/r")), .strip_path = 1}};
    sl_router_t *r = sl_router_create(defs, 1, NULL, 0);
    SL_CHECK(r != NULL, "join: create");
    if (r == NULL)
        return;
    char scratch[64], out[8];
    sl_router_match_t m;
    rq_t q = {.path = "/r/abc"};
    size_t n = 0;
    SL_CHECK(do_match(r, &q, scratch, sizeof(scratch), &m) == SL_OK, "join: match");
    SL_CHECK(sl_router_upstream_path(&m, SL_STR("/srv"), out, 8, &n) == SL_ERROR, "join: 8");
    char big[9];
    SL_CHECK(sl_router_upstream_path(&m, SL_STR("/srv"), big, sizeof(big), &n) == SL_OK &&
                 n == 8 && strcmp(big, "/srv/abc") == 0,
             "join: exact fit");
    sl_router_destroy(r);
}

int main(void)
{
    test_kong_select();
    test_prefix_priority();
    test_regex();
    test_hosts();
    test_headers_snis();
    test_split_paths();
    test_normalize();
    test_captures();
    test_errors();
    test_copies();
    test_upstream_path();
    SL_TEST_MAIN("test_router");
}
