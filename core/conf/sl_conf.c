/*
 * sl_conf.c: the kong.conf-style properties loader (see sl_conf.h for the contract).
 *
 * One table, sl_conf_defs, describes every known property: its default, its aliases, how its
 * value is checked and which sl_conf_t field (if any) receives it. Loading applies the
 * defaults, then each file line, then the environment, each value checked as it arrives so
 * that the first bad one is the one reported; then relative paths are made absolute and the
 * final strings are gathered, sorted, into props.
 */
#include "conf/sl_conf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>
#include <unistd.h>

extern char **environ;

/* How a value is checked and stored. */
enum {
    K_STR,        /* char *; min 1 = must not be empty */
    K_LIST,       /* char *; comma list without empty items (or "") */
    K_ENUM,       /* char *; one of choices (any case), stored as spelled in choices */
    K_BOOL,       /* int */
    K_INT,        /* int in min..max */
    K_WORKERS,    /* int; "auto" = 0 or 1..max */
    K_SIZE,       /* int64_t bytes in min..max */
    K_MS,         /* int64_t milliseconds in min..max */
    K_LISTEN,     /* sl_listen_list_t */
    K_HEADERS,    /* unsigned SL_HDR_* mask */
    K_HEADERS_UP, /* unsigned, SL_HDR_REQUEST_ID or 0 */
    K_LARGE_BUFS, /* "N size" into large_header_buffers and large_header_buffer_size */
    K_IPS,        /* char *; comma list of IPs/CIDRs or "unix:" */
    K_NODE_ID     /* char *; "" or a UUID */
};

#define SUPPORTED 1
#define ACCEPTED 0
#define NOF ((size_t)-1)
#define F(field) offsetof(sl_conf_t, field)
#define MAXI INT_MAX
#define MAXL INT64_MAX
#define P(n, d, k, u, o) .name = n, .def = d, .kind = k, .used = u, .off = o
#define R(lo, hi) .min = lo, .max = hi

typedef struct {
    const char *name;
    const char *def;
    unsigned char kind;
    unsigned char used; /* SUPPORTED or ACCEPTED (kept in props, not used yet) */
    size_t off;         /* field in sl_conf_t, or NOF */
    int64_t min, max;
    const char *const *choices;
    const char *alias[2];
} sl_conf_def_t;

static const char *const log_levels[] = {"debug", "info",  "notice", "warn", "error",
                                         "crit",  "alert", "emerg",  NULL};
static const char *const databases[] = {"off", "embedded", "postgres", NULL};
static const char *const untrusted[] = {"off", "sandbox", "on", NULL};
static const char *const error_types[] = {"text/plain", "application/json", "text/html",
                                          "text/xml",   "application/xml",  NULL};
static const char *const router_flavors[] = {"traditional", "traditional_compatible", "expressions",
                                             NULL};
static const char *const consistencies[] = {"strict", "eventual", NULL};
static const char *const cipher_suites[] = {"modern", "intermediate", "old",
                                            "fips",   "custom",       NULL};
static const char *const roles[] = {"traditional", "control_plane", "data_plane", NULL};

static const sl_conf_def_t sl_conf_defs[] = {
    /* core */
    {P("prefix", "/usr/local/sluice/", K_STR, SUPPORTED, F(prefix)), .min = 1},
    {P("database", "embedded", K_ENUM, SUPPORTED, F(database)), .choices = databases},
    {P("embedded_db", "sluice.db", K_STR, SUPPORTED, NOF)},
    {P("declarative_config", "", K_STR, SUPPORTED, F(declarative_config))},
    {P("declarative_config_string", "", K_STR, SUPPORTED, F(declarative_config_string))},
    {P("plugins", "bundled", K_LIST, SUPPORTED, F(plugins))},
    {P("worker_processes", "auto", K_WORKERS, SUPPORTED, F(worker_processes)), R(1, 4096),
     .alias = {"nginx_worker_processes", "nginx_main_worker_processes"}},
    {P("daemon", "on", K_BOOL, SUPPORTED, F(daemon)),
     .alias = {"nginx_daemon", "nginx_main_daemon"}},
    {P("node_id", "", K_NODE_ID, SUPPORTED, F(node_id))},
    {P("lua_package_path", "./?.lua;./?/init.lua;", K_STR, SUPPORTED, F(lua_package_path))},
    {P("lua_package_cpath", "", K_STR, SUPPORTED, F(lua_package_cpath))},
    {P("lua_shared_dict", "kong 5m, kong_locks 8m, kong_rate_limiting_counters 12m, "
       "kong_db_cache 32m, kong_core_db_cache 32m", K_STR, SUPPORTED, NOF)},
    {P("mem_cache_size", "128m", K_SIZE, ACCEPTED, NOF), R(1, MAXL)},
    {P("router_flavor", "traditional_compatible", K_ENUM, ACCEPTED, NOF),
     .choices = router_flavors},
    {P("worker_consistency", "eventual", K_ENUM, ACCEPTED, NOF), .choices = consistencies},
    {P("worker_state_update_frequency", "5", K_MS, ACCEPTED, NOF), R(1, MAXL)},
    {P("role", "traditional", K_ENUM, ACCEPTED, NOF), .choices = roles},
    {P("vaults", "bundled", K_LIST, ACCEPTED, NOF)},
    {P("anonymous_reports", "on", K_BOOL, ACCEPTED, NOF)},
    {P("dedicated_config_processing", "on", K_BOOL, ACCEPTED, NOF)},
    {P("lmdb_environment_path", "dbless.lmdb", K_STR, ACCEPTED, NOF)},
    {P("lmdb_map_size", "2048m", K_SIZE, ACCEPTED, NOF), R(1, MAXL)},
    {P("pluginserver_names", "", K_LIST, ACCEPTED, NOF)},
    {P("port_maps", "", K_LIST, ACCEPTED, NOF)},
    {P("host_ports", "", K_LIST, ACCEPTED, NOF)},
    {P("wasm", "off", K_BOOL, ACCEPTED, NOF)},
    {P("request_debug", "on", K_BOOL, ACCEPTED, NOF)},
    {P("request_debug_token", "", K_STR, ACCEPTED, NOF)},
    {P("tracing_instrumentations", "off", K_LIST, ACCEPTED, NOF)},
    {P("tracing_sampling_rate", "0.01", K_STR, ACCEPTED, NOF)},
    /* listeners */
    {P("proxy_listen",
       "0.0.0.0:8000 reuseport backlog=16384, 0.0.0.0:8443 http2 ssl reuseport backlog=16384",
       K_LISTEN, SUPPORTED, F(proxy_listen))},
    {P("admin_listen", "127.0.0.1:8001 reuseport backlog=16384", K_LISTEN, SUPPORTED,
       F(admin_listen))},
    {P("status_listen", "off", K_LISTEN, SUPPORTED, F(status_listen))},
    {P("stream_listen", "off", K_LISTEN, ACCEPTED, NOF)},
    {P("admin_gui_listen", "0.0.0.0:8002, 0.0.0.0:8445 ssl", K_LISTEN, ACCEPTED, NOF)},
    {P("admin_gui_url", "", K_STR, ACCEPTED, NOF)},
    {P("admin_gui_path", "/", K_STR, ACCEPTED, NOF)},
    {P("admin_gui_api_url", "", K_STR, ACCEPTED, NOF)},
    {P("cluster_listen", "0.0.0.0:8005", K_STR, ACCEPTED, NOF)},
    {P("cluster_control_plane", "", K_STR, ACCEPTED, NOF)},
    {P("cluster_mtls", "shared", K_STR, ACCEPTED, NOF)},
    {P("cluster_cert", "", K_STR, ACCEPTED, NOF)},
    {P("cluster_cert_key", "", K_STR, ACCEPTED, NOF)},
    /* logs */
    {P("log_level", "notice", K_ENUM, SUPPORTED, F(log_level)), .choices = log_levels},
    {P("proxy_access_log", "logs/access.log", K_STR, SUPPORTED, F(proxy_access_log)), .min = 1},
    {P("proxy_error_log", "logs/error.log", K_STR, SUPPORTED, F(proxy_error_log)), .min = 1},
    {P("admin_access_log", "logs/admin_access.log", K_STR, SUPPORTED, F(admin_access_log)),
     .min = 1},
    {P("admin_error_log", "logs/error.log", K_STR, SUPPORTED, F(admin_error_log)), .min = 1},
    {P("status_access_log", "off", K_STR, ACCEPTED, NOF)},
    {P("status_error_log", "logs/status_error.log", K_STR, ACCEPTED, NOF)},
    {P("admin_gui_access_log", "logs/admin_gui_access.log", K_STR, ACCEPTED, NOF)},
    {P("admin_gui_error_log", "logs/admin_gui_error.log", K_STR, ACCEPTED, NOF)},
    {P("proxy_stream_access_log", "logs/access.log basic", K_STR, ACCEPTED, NOF)},
    {P("proxy_stream_error_log", "logs/error.log", K_STR, ACCEPTED, NOF)},
    /* serverless */
    {P("untrusted_lua", "sandbox", K_ENUM, SUPPORTED, F(untrusted_lua)), .choices = untrusted},
    {P("untrusted_lua_sandbox_requires", "", K_LIST, SUPPORTED, F(untrusted_lua_sandbox_requires))},
    {P("untrusted_lua_sandbox_environment", "", K_LIST, SUPPORTED,
       F(untrusted_lua_sandbox_environment))},
    /* headers, client address, errors */
    {P("headers", "server_tokens, latency_tokens, X-Kong-Request-Id", K_HEADERS, SUPPORTED,
       F(headers))},
    {P("headers_upstream", "X-Kong-Request-Id", K_HEADERS_UP, SUPPORTED, F(headers_upstream))},
    {P("allow_debug_header", "off", K_BOOL, ACCEPTED, NOF)},
    {P("trusted_ips", "", K_IPS, SUPPORTED, F(trusted_ips))},
    {P("real_ip_header", "X-Real-IP", K_STR, SUPPORTED, F(real_ip_header)), .min = 1},
    {P("real_ip_recursive", "off", K_BOOL, SUPPORTED, F(real_ip_recursive))},
    {P("error_default_type", "text/plain", K_ENUM, SUPPORTED, F(error_default_type)),
     .choices = error_types},
    {P("error_template_html", "", K_STR, ACCEPTED, NOF)},
    {P("error_template_json", "", K_STR, ACCEPTED, NOF)},
    {P("error_template_xml", "", K_STR, ACCEPTED, NOF)},
    {P("error_template_plain", "", K_STR, ACCEPTED, NOF)},
    /* upstream keepalive */
    {P("upstream_keepalive_pool_size", "512", K_INT, SUPPORTED, F(upstream_keepalive_pool_size)),
     R(0, 1000000)},
    {P("upstream_keepalive_max_requests", "10000", K_INT, SUPPORTED,
       F(upstream_keepalive_max_requests)),
     R(0, MAXI)},
    {P("upstream_keepalive_idle_timeout", "60", K_MS, SUPPORTED,
       F(upstream_keepalive_idle_timeout_ms)),
     R(0, MAXL)},
    /* sluice's own: how long one run of plugin Lua may take before it is stopped */
    {P("lua_watchdog_timeout", "5s", K_MS, SUPPORTED, F(lua_watchdog_timeout_ms)), R(0, MAXL)},
    /* client side limits and timeouts (Kong's nginx_http_* injections) */
    {P("client_max_body_size", "0", K_SIZE, SUPPORTED, F(client_max_body_size)), R(0, MAXL),
     .alias = {"nginx_http_client_max_body_size"}},
    {P("client_body_buffer_size", "8k", K_SIZE, SUPPORTED, F(client_body_buffer_size)), R(1, MAXL),
     .alias = {"nginx_http_client_body_buffer_size"}},
    {P("client_header_buffer_size", "1k", K_SIZE, ACCEPTED, F(client_header_buffer_size)),
     R(1, MAXL), .alias = {"nginx_http_client_header_buffer_size"}},
    {P("large_client_header_buffers", "4 8k", K_LARGE_BUFS, SUPPORTED, F(large_header_buffers)),
     R(1, 1024), .alias = {"nginx_http_large_client_header_buffers"}},
    {P("client_max_headers", "100", K_INT, SUPPORTED, F(client_max_headers)), R(1, 10000)},
    {P("client_header_timeout", "60s", K_MS, SUPPORTED, F(client_header_timeout_ms)), R(1, MAXL),
     .alias = {"nginx_http_client_header_timeout"}},
    {P("client_body_timeout", "60s", K_MS, SUPPORTED, F(client_body_timeout_ms)), R(1, MAXL),
     .alias = {"nginx_http_client_body_timeout"}},
    {P("send_timeout", "60s", K_MS, SUPPORTED, F(send_timeout_ms)), R(1, MAXL),
     .alias = {"nginx_http_send_timeout"}},
    {P("keepalive_timeout", "75s", K_MS, SUPPORTED, F(keepalive_timeout_ms)), R(0, MAXL),
     .alias = {"nginx_http_keepalive_timeout"}},
    {P("keepalive_requests", "10000", K_INT, SUPPORTED, F(keepalive_requests)), R(1, MAXI),
     .alias = {"nginx_http_keepalive_requests"}},
    /* Lua */
    {P("lua_ssl_trusted_certificate", "system", K_STR, SUPPORTED, F(lua_ssl_trusted_certificate))},
    {P("lua_ssl_verify_depth", "1", K_INT, SUPPORTED, F(lua_ssl_verify_depth)), R(0, 100)},
    {P("lua_ssl_protocols", "TLSv1.2 TLSv1.3", K_STR, ACCEPTED, NOF)},
    {P("lua_socket_pool_size", "256", K_INT, SUPPORTED, F(lua_socket_pool_size)), R(1, 1000000)},
    {P("lua_max_req_headers", "100", K_INT, ACCEPTED, NOF), R(1, 1000)},
    {P("lua_max_resp_headers", "100", K_INT, ACCEPTED, NOF), R(1, 1000)},
    {P("lua_max_uri_args", "100", K_INT, ACCEPTED, NOF), R(1, 1000)},
    {P("lua_max_post_args", "100", K_INT, ACCEPTED, NOF), R(1, 1000)},
    /* DNS */
    {P("dns_resolver", "", K_LIST, SUPPORTED, F(dns_resolver))},
    {P("dns_hostsfile", "/etc/hosts", K_STR, SUPPORTED, F(dns_hostsfile))},
    {P("dns_order", "LAST,SRV,A,CNAME", K_LIST, ACCEPTED, NOF)},
    {P("dns_valid_ttl", "", K_STR, ACCEPTED, NOF)},
    {P("dns_stale_ttl", "3600", K_INT, ACCEPTED, NOF), R(0, MAXI)},
    {P("dns_not_found_ttl", "30", K_INT, ACCEPTED, NOF), R(0, MAXI)},
    {P("dns_error_ttl", "1", K_INT, ACCEPTED, NOF), R(0, MAXI)},
    {P("dns_cache_size", "10000", K_INT, ACCEPTED, NOF), R(0, MAXI)},
    {P("dns_no_sync", "off", K_BOOL, ACCEPTED, NOF)},
    {P("new_dns_client", "off", K_BOOL, ACCEPTED, NOF)},
    /* TLS */
    {P("ssl_cert", "", K_STR, SUPPORTED, F(ssl_cert))},
    {P("ssl_cert_key", "", K_STR, SUPPORTED, F(ssl_cert_key))},
    {P("ssl_cipher_suite", "intermediate", K_ENUM, SUPPORTED, F(ssl_cipher_suite)),
     .choices = cipher_suites},
    {P("ssl_ciphers", "", K_STR, SUPPORTED, F(ssl_ciphers))},
    {P("ssl_protocols", "TLSv1.2 TLSv1.3", K_STR, SUPPORTED, F(ssl_protocols))},
    {P("ssl_prefer_server_ciphers", "on", K_BOOL, SUPPORTED, F(ssl_prefer_server_ciphers))},
    {P("ssl_dhparam", "", K_STR, ACCEPTED, NOF)},
    {P("ssl_session_tickets", "on", K_BOOL, SUPPORTED, F(ssl_session_tickets))},
    {P("ssl_session_timeout", "1d", K_MS, SUPPORTED, F(ssl_session_timeout_ms)), R(0, MAXL)},
    {P("ssl_session_cache_size", "10m", K_SIZE, SUPPORTED, F(ssl_session_cache_size)),
     R(0, MAXL)},
    {P("client_ssl", "off", K_BOOL, ACCEPTED, NOF)},
    {P("client_ssl_cert", "", K_STR, ACCEPTED, NOF)},
    {P("client_ssl_cert_key", "", K_STR, ACCEPTED, NOF)},
    {P("admin_ssl_cert", "", K_STR, SUPPORTED, F(admin_ssl_cert))},
    {P("admin_ssl_cert_key", "", K_STR, SUPPORTED, F(admin_ssl_cert_key))},
    {P("status_ssl_cert", "", K_STR, ACCEPTED, NOF)},
    {P("status_ssl_cert_key", "", K_STR, ACCEPTED, NOF)},
    {P("proxy_server", "", K_STR, ACCEPTED, NOF)},
    {P("proxy_server_ssl_verify", "off", K_BOOL, ACCEPTED, NOF)},
    /* datastore (postgres is planned; the cache settings apply to any store) */
    {P("pg_host", "127.0.0.1", K_STR, SUPPORTED, NOF)},
    {P("pg_port", "5432", K_INT, SUPPORTED, NOF), R(1, 65535)},
    {P("pg_timeout", "5000", K_INT, SUPPORTED, NOF), R(1, MAXI)},
    {P("pg_user", "kong", K_STR, SUPPORTED, NOF)},
    {P("pg_password", "", K_STR, SUPPORTED, NOF)},
    {P("pg_database", "kong", K_STR, SUPPORTED, NOF)},
    {P("pg_schema", "", K_STR, SUPPORTED, NOF)},
    {P("pg_ssl", "off", K_BOOL, SUPPORTED, NOF)},
    {P("pg_ssl_verify", "off", K_BOOL, SUPPORTED, NOF)},
    {P("pg_max_concurrent_queries", "0", K_INT, ACCEPTED, NOF), R(0, MAXI)},
    {P("pg_semaphore_timeout", "60000", K_INT, ACCEPTED, NOF), R(0, MAXI)},
    {P("pg_keepalive_timeout", "", K_STR, ACCEPTED, NOF)},
    {P("pg_pool_size", "", K_STR, ACCEPTED, NOF)},
    {P("pg_backlog", "", K_STR, ACCEPTED, NOF)},
    {P("db_update_frequency", "5", K_MS, ACCEPTED, NOF), R(1, MAXL)},
    {P("db_update_propagation", "0", K_MS, ACCEPTED, NOF), R(0, MAXL)},
    {P("db_cache_ttl", "0", K_INT, ACCEPTED, NOF), R(0, MAXI)},
    {P("db_cache_neg_ttl", "", K_STR, ACCEPTED, NOF)},
    {P("db_resurrect_ttl", "30", K_INT, ACCEPTED, NOF), R(0, MAXI)},
    {P("db_cache_warmup_entities", "services", K_LIST, ACCEPTED, NOF)},
};

#define NDEFS SL_ARRAY_SIZE(sl_conf_defs)

/* Where a value came from: a file line, an environment variable, or the defaults. */
typedef struct {
    const char *file;
    int line;
    const char *env;
} sl_conf_src_t;

typedef struct {
    sl_conf_t *c;
    char *vals[NDEFS];     /* final string of each known property */
    int lines[NDEFS];      /* file line that last set it, 0 = not from the file */
    sl_conf_prop_t *extra; /* nginx_* and unknown keys */
    int *extra_lines;
    size_t nextra, extra_cap;
    sl_conf_warn_cb warn;
    void *ud;
    char *err;
    size_t errlen;
} sl_conf_loader_t;

/* ---- small helpers ---- */

static void sl_conf_fmt(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void sl_conf_fmt(char *buf, size_t len, const char *fmt, ...)
{
    if (buf == NULL || len == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
}

static int sl_conf_is_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n' || ch == '\v' || ch == '\f';
}

static int sl_conf_is_digit(char ch)
{
    return ch >= '0' && ch <= '9';
}

/* Trims s in place; returns the first non-space byte. */
static char *sl_conf_trim(char *s)
{
    while (sl_conf_is_space(*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && sl_conf_is_space(s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* The view [data, data+len) with surrounding white space removed. */
static sl_str_t sl_conf_trim_view(const char *data, size_t len)
{
    while (len > 0 && sl_conf_is_space(*data)) {
        data++;
        len--;
    }
    while (len > 0 && sl_conf_is_space(data[len - 1]))
        len--;
    return (sl_str_t){data, len};
}

/* Parses all of s[0..len) as a non-negative decimal integer no larger than max. */
static int sl_conf_parse_u64(const char *s, size_t len, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    if (len == 0)
        return SL_ERROR;
    for (size_t i = 0; i < len; i++) {
        if (!sl_conf_is_digit(s[i]))
            return SL_ERROR;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (max - d) / 10)
            return SL_ERROR;
        v = v * 10 + d;
    }
    *out = v;
    return SL_OK;
}

static int sl_conf_parse_bool(const char *v, int *out)
{
    if (strcasecmp(v, "on") == 0 || strcasecmp(v, "true") == 0) {
        *out = 1;
        return SL_OK;
    }
    if (strcasecmp(v, "off") == 0 || strcasecmp(v, "false") == 0) {
        *out = 0;
        return SL_OK;
    }
    return SL_ERROR;
}

/* "N", "Nk", "Nm", "Ng" (any case) in bytes. */
static int sl_conf_parse_size(const char *v, int64_t *out)
{
    size_t len = strlen(v);
    uint64_t mult = 1, n;
    if (len > 0) {
        switch (v[len - 1]) {
        case 'k':
        case 'K':
            mult = 1024;
            len--;
            break;
        case 'm':
        case 'M':
            mult = 1024 * 1024;
            len--;
            break;
        case 'g':
        case 'G':
            mult = 1024 * 1024 * 1024;
            len--;
            break;
        default:
            break;
        }
    }
    if (sl_conf_parse_u64(v, len, (uint64_t)INT64_MAX / mult, &n) != SL_OK)
        return SL_ERROR;
    *out = (int64_t)(n * mult);
    return SL_OK;
}

/* nginx-style duration into milliseconds: "500ms", "60s", "1m30s", "1h", "1d", "2w"; a plain
 * number is seconds, with up to three decimals ("1.5" = 1500). */
static int sl_conf_parse_ms(const char *v, int64_t *out)
{
    const uint64_t max = (uint64_t)INT64_MAX;
    size_t len = strlen(v), i = 0;
    uint64_t total = 0, n;

    size_t digits = 0;
    while (digits < len && sl_conf_is_digit(v[digits]))
        digits++;
    if (digits > 0 && (digits == len || v[digits] == '.')) {
        /* plain seconds */
        uint64_t frac = 0;
        if (sl_conf_parse_u64(v, digits, max / 1000 - 1, &n) != SL_OK)
            return SL_ERROR;
        if (digits < len) {
            size_t fl = len - digits - 1;
            if (fl == 0 || fl > 3 || sl_conf_parse_u64(v + digits + 1, fl, 999, &frac) != SL_OK)
                return SL_ERROR;
            for (size_t k = fl; k < 3; k++)
                frac *= 10;
        }
        *out = (int64_t)(n * 1000 + frac);
        return SL_OK;
    }
    if (len == 0)
        return SL_ERROR;
    while (i < len) {
        size_t start = i;
        while (i < len && sl_conf_is_digit(v[i]))
            i++;
        if (sl_conf_parse_u64(v + start, i - start, max, &n) != SL_OK)
            return SL_ERROR;
        uint64_t mult;
        if (v[i] == 'm' && v[i + 1] == 's') {
            mult = 1;
            i += 2;
        } else {
            switch (v[i]) {
            case 's':
                mult = 1000;
                break;
            case 'm':
                mult = 60 * 1000;
                break;
            case 'h':
                mult = 3600 * 1000;
                break;
            case 'd':
                mult = 86400 * 1000;
                break;
            case 'w':
                mult = 7 * 86400 * 1000ULL;
                break;
            default:
                return SL_ERROR;
            }
            i++;
        }
        if (n > max / mult || n * mult > max - total)
            return SL_ERROR;
        total += n * mult;
    }
    *out = (int64_t)total;
    return SL_OK;
}

static const char *sl_conf_match_choice(const char *const *choices, const char *v)
{
    for (; *choices; choices++)
        if (strcasecmp(*choices, v) == 0)
            return *choices;
    return NULL;
}

/* Writes "a, b or c" into buf. */
static void sl_conf_join_choices(const char *const *choices, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; choices[i] && used < len; i++) {
        const char *sep = i == 0 ? "" : choices[i + 1] ? ", " : " or ";
        int w = snprintf(buf + used, len - used, "%s%s", sep, choices[i]);
        if (w < 0)
            break;
        used += (size_t)w;
    }
}

static const struct {
    const char *name;
    unsigned bits;
} sl_conf_hdr_tokens[] = {
    {"server_tokens", SL_HDR_SERVER | SL_HDR_VIA},
    {"latency_tokens", SL_HDR_PROXY_LATENCY | SL_HDR_RESPONSE_LATENCY | SL_HDR_UPSTREAM_LATENCY |
                           SL_HDR_ADMIN_LATENCY},
    {"Server", SL_HDR_SERVER},
    {"Via", SL_HDR_VIA},
    {"X-Kong-Proxy-Latency", SL_HDR_PROXY_LATENCY},
    {"X-Kong-Response-Latency", SL_HDR_RESPONSE_LATENCY},
    {"X-Kong-Upstream-Latency", SL_HDR_UPSTREAM_LATENCY},
    {"X-Kong-Admin-Latency", SL_HDR_ADMIN_LATENCY},
    {"X-Kong-Upstream-Status", SL_HDR_UPSTREAM_STATUS},
    {"X-Kong-Request-Id", SL_HDR_REQUEST_ID},
};

/* A comma list of header tokens (any case) or "off"; allowed limits the tokens accepted. */
static int sl_conf_parse_headers(const char *v, unsigned allowed, unsigned *out, char *msg,
                                 size_t msglen)
{
    unsigned mask = 0;
    size_t count = 0;
    int off = 0;
    const char *p = v;

    if (*sl_conf_trim_view(v, strlen(v)).data == '\0') {
        *out = 0;
        return SL_OK;
    }
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        sl_str_t tok = sl_conf_trim_view(p, len);
        int found = 0;
        count++;
        if (tok.len == 0) {
            sl_conf_fmt(msg, msglen, "empty item in \"%.80s\"", v);
            return SL_ERROR;
        }
        if (sl_str_case_eq(tok, SL_STR("off"))) {
            off = 1;
            found = 1;
        }
        for (size_t i = 0; !found && i < SL_ARRAY_SIZE(sl_conf_hdr_tokens); i++) {
            sl_str_t name = {sl_conf_hdr_tokens[i].name, strlen(sl_conf_hdr_tokens[i].name)};
            if ((sl_conf_hdr_tokens[i].bits & ~allowed) == 0 && sl_str_case_eq(tok, name)) {
                mask |= sl_conf_hdr_tokens[i].bits;
                found = 1;
            }
        }
        if (!found) {
            if (allowed == SL_HDR_REQUEST_ID)
                sl_conf_fmt(msg, msglen, "expected X-Kong-Request-Id or off, got \"%.*s\"",
                            (int)tok.len, tok.data);
            else
                sl_conf_fmt(msg, msglen,
                            "unknown header \"%.*s\" (expected server_tokens, latency_tokens, "
                            "Server, Via, X-Kong-Proxy-Latency, X-Kong-Response-Latency, "
                            "X-Kong-Upstream-Latency, X-Kong-Admin-Latency, "
                            "X-Kong-Upstream-Status, X-Kong-Request-Id or off)",
                            (int)tok.len, tok.data);
            return SL_ERROR;
        }
        if (!comma)
            break;
        p = comma + 1;
    }
    if (off && count > 1) {
        sl_conf_fmt(msg, msglen, "'off' cannot be combined with other values, got \"%.80s\"", v);
        return SL_ERROR;
    }
    *out = mask;
    return SL_OK;
}

/* A comma list with no empty items; "" is the empty list. */
static int sl_conf_check_list(const char *v, char *msg, size_t msglen)
{
    if (*v == '\0')
        return SL_OK;
    for (const char *p = v;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (sl_conf_trim_view(p, len).len == 0) {
            sl_conf_fmt(msg, msglen, "empty item in list \"%.80s\"", v);
            return SL_ERROR;
        }
        if (!comma)
            return SL_OK;
        p = comma + 1;
    }
}

/* A comma list of IPv4/IPv6 addresses or CIDR blocks, or "unix:". */
static int sl_conf_check_ips(const char *v, char *msg, size_t msglen)
{
    if (sl_conf_check_list(v, msg, msglen) != SL_OK)
        return SL_ERROR;
    for (const char *p = v; *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        sl_str_t tok = sl_conf_trim_view(p, len);
        char ip[64];
        unsigned char bin[16];
        uint64_t bits = 0;
        int ok = 0;

        if (sl_str_eq(tok, SL_STR("unix:"))) {
            ok = 1;
        } else if (tok.len < sizeof(ip)) {
            memcpy(ip, tok.data, tok.len);
            ip[tok.len] = '\0';
            char *slash = strchr(ip, '/');
            if (slash)
                *slash = '\0';
            int family = strchr(ip, ':') ? AF_INET6 : AF_INET;
            uint64_t maxbits = family == AF_INET6 ? 128 : 32;
            ok = inet_pton(family, ip, bin) == 1 &&
                 (!slash ||
                  sl_conf_parse_u64(slash + 1, strlen(slash + 1), maxbits, &bits) == SL_OK);
        }
        if (!ok) {
            sl_conf_fmt(msg, msglen, "expected IP addresses or CIDR blocks, got \"%.*s\"",
                        (int)(tok.len > 80 ? 80 : tok.len), tok.data);
            return SL_ERROR;
        }
        if (!comma)
            break;
        p = comma + 1;
    }
    return SL_OK;
}

static int sl_conf_check_uuid(const char *v)
{
    if (*v == '\0')
        return SL_OK;
    if (strlen(v) != 36)
        return SL_ERROR;
    for (int i = 0; i < 36; i++) {
        char ch = v[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (ch != '-')
                return SL_ERROR;
        } else if (!sl_conf_is_digit(ch) && !(ch >= 'a' && ch <= 'f') &&
                   !(ch >= 'A' && ch <= 'F')) {
            return SL_ERROR;
        }
    }
    return SL_OK;
}

/* ---- listen lists ---- */

void sl_conf_listen_free(sl_listen_list_t *l)
{
    if (l == NULL)
        return;
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

static int sl_conf_listen_host_ok(const char *h)
{
    if (strcmp(h, "*") == 0)
        return 1;
    int dotted = 1;
    for (const char *p = h; *p; p++) {
        char ch = *p;
        if (!sl_conf_is_digit(ch) && ch != '.')
            dotted = 0;
        if (!sl_conf_is_digit(ch) && !(ch >= 'a' && ch <= 'z') && !(ch >= 'A' && ch <= 'Z') &&
            ch != '.' && ch != '-' && ch != '_')
            return 0;
    }
    if (dotted) {
        unsigned char bin[4];
        return inet_pton(AF_INET, h, bin) == 1;
    }
    return 1;
}

/* Parses one "<host>:<port> [flags]" entry (a NUL-terminated, trimmed, writable copy). */
static int sl_conf_parse_listen_entry(char *entry, sl_listen_t *l, char *msg, size_t msglen)
{
    char *save = NULL;
    char *addr = strtok_r(entry, " \t", &save);
    char *port;
    uint64_t n;

    memset(l, 0, sizeof(*l));
    l->backlog = 511;
    if (addr[0] == '[') {
        char *close = strchr(addr, ']');
        if (close == NULL || close[1] != ':') {
            sl_conf_fmt(msg, msglen, "expected [<IPv6>]:<port>, got \"%.80s\"", addr);
            return SL_ERROR;
        }
        *close = '\0';
        port = close + 2;
        unsigned char bin[16];
        if (inet_pton(AF_INET6, addr + 1, bin) != 1) {
            sl_conf_fmt(msg, msglen, "invalid IPv6 address \"%.80s\"", addr + 1);
            return SL_ERROR;
        }
        addr++;
    } else {
        char *colon = strrchr(addr, ':');
        if (colon == NULL) {
            sl_conf_fmt(msg, msglen, "expected <host>:<port>, got \"%.80s\"", addr);
            return SL_ERROR;
        }
        *colon = '\0';
        port = colon + 1;
        if (strchr(addr, ':')) {
            sl_conf_fmt(msg, msglen, "an IPv6 address must be in brackets, as [::1]:8000");
            return SL_ERROR;
        }
        if (addr[0] == '\0' || !sl_conf_listen_host_ok(addr)) {
            sl_conf_fmt(msg, msglen, "invalid host \"%.80s\"", addr);
            return SL_ERROR;
        }
    }
    if (strlen(addr) >= sizeof(l->host)) {
        sl_conf_fmt(msg, msglen, "host name longer than %zu bytes", sizeof(l->host) - 1);
        return SL_ERROR;
    }
    memcpy(l->host, addr, strlen(addr) + 1);
    if (sl_conf_parse_u64(port, strlen(port), 65535, &n) != SL_OK || n == 0) {
        sl_conf_fmt(msg, msglen, "expected a port from 1 to 65535, got \"%.20s\"", port);
        return SL_ERROR;
    }
    l->port = (unsigned)n;

    for (char *f; (f = strtok_r(NULL, " \t", &save)) != NULL;) {
        if (strcmp(f, "ssl") == 0) {
            l->ssl = 1;
        } else if (strcmp(f, "http2") == 0) {
            l->http2 = 1;
        } else if (strcmp(f, "reuseport") == 0) {
            l->reuseport = 1;
        } else if (strcmp(f, "deferred") == 0) {
            l->deferred = 1;
        } else if (strcmp(f, "bind") == 0) {
            l->bind = 1;
        } else if (strcmp(f, "proxy_protocol") == 0) {
            l->proxy_protocol = 1;
        } else if (strcmp(f, "ipv6only=on") == 0) {
            l->ipv6only = 1;
        } else if (strcmp(f, "ipv6only=off") == 0) {
            l->ipv6only = 0;
        } else if (strncmp(f, "backlog=", 8) == 0) {
            if (sl_conf_parse_u64(f + 8, strlen(f + 8), INT_MAX, &n) != SL_OK || n == 0) {
                sl_conf_fmt(msg, msglen, "expected backlog=<positive integer>, got \"%.40s\"", f);
                return SL_ERROR;
            }
            l->backlog = (int)n;
        } else if (strncmp(f, "so_keepalive=", 13) == 0) {
            /* on | off | [idle]:[intvl]:[cnt], each part digits with an optional unit */
            const char *ka = f + 13;
            int colons = 0, ok = *ka != '\0';
            if (strcmp(ka, "on") != 0 && strcmp(ka, "off") != 0) {
                for (const char *q = ka; *q; q++) {
                    if (*q == ':')
                        colons++;
                    else if (!sl_conf_is_digit(*q) && !(*q >= 'a' && *q <= 'z'))
                        ok = 0;
                }
                ok = ok && colons == 2;
            }
            if (!ok) {
                sl_conf_fmt(msg, msglen,
                            "expected so_keepalive=on|off|[idle]:[intvl]:[cnt], got \"%.40s\"", f);
                return SL_ERROR;
            }
        } else {
            sl_conf_fmt(msg, msglen,
                        "unknown flag \"%.40s\" (expected ssl, http2, proxy_protocol, deferred, "
                        "bind, reuseport, backlog=N, ipv6only=on|off or so_keepalive=...)",
                        f);
            return SL_ERROR;
        }
    }
    return SL_OK;
}

int sl_conf_parse_listen(const char *value, sl_listen_list_t *out, char *err, size_t errlen)
{
    sl_listen_list_t l = {NULL, 0};
    size_t cap = 1;
    char msg[256];

    out->items = NULL;
    out->n = 0;
    sl_str_t all = sl_conf_trim_view(value, strlen(value));
    if (sl_str_eq(all, SL_STR("off")))
        return SL_OK;
    if (all.len == 0) {
        sl_conf_fmt(err, errlen, "expected \"off\" or <host>:<port> [flags], ...; got \"\"");
        return SL_ERROR;
    }
    for (const char *p = value; *p; p++)
        cap += *p == ',';
    l.items = calloc(cap, sizeof(*l.items));
    if (l.items == NULL) {
        sl_conf_fmt(err, errlen, "out of memory");
        return SL_ERROR;
    }
    for (const char *p = value;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        sl_str_t e = sl_conf_trim_view(p, len);
        if (e.len == 0) {
            sl_conf_fmt(err, errlen, "empty entry in listen list \"%.80s\"", value);
            goto fail;
        }
        char *copy = strndup(e.data, e.len);
        if (copy == NULL) {
            sl_conf_fmt(err, errlen, "out of memory");
            goto fail;
        }
        int rc = sl_conf_parse_listen_entry(copy, &l.items[l.n], msg, sizeof(msg));
        free(copy);
        if (rc != SL_OK) {
            sl_conf_fmt(err, errlen, "invalid listen entry \"%.*s\": %s",
                        (int)(e.len > 80 ? 80 : e.len), e.data, msg);
            goto fail;
        }
        l.n++;
        if (!comma)
            break;
        p = comma + 1;
    }
    *out = l;
    return SL_OK;
fail:
    sl_conf_listen_free(&l);
    return SL_ERROR;
}

/* ---- applying one value ---- */

static int sl_conf_set_str(char **field, const char *v, char *msg, size_t msglen)
{
    char *copy = strdup(v);
    if (copy == NULL) {
        sl_conf_fmt(msg, msglen, "out of memory");
        return SL_ERROR;
    }
    free(*field);
    *field = copy;
    return SL_OK;
}

/*
 * Checks v against d and, when c is given and d has a field, stores it there (replacing and
 * freeing the previous value). On error writes the reason (without where/property) to msg.
 */
static int sl_conf_apply(sl_conf_t *c, const sl_conf_def_t *d, const char *v, char *msg,
                         size_t msglen)
{
    void *field = c != NULL && d->off != NOF ? (char *)c + d->off : NULL;
    uint64_t u;
    int64_t i64;
    int b;
    unsigned mask;

    switch (d->kind) {
    case K_STR:
        if (d->min > 0 && *v == '\0') {
            sl_conf_fmt(msg, msglen, "must not be empty");
            return SL_ERROR;
        }
        return field ? sl_conf_set_str(field, v, msg, msglen) : SL_OK;
    case K_LIST:
    case K_IPS:
    case K_NODE_ID:
        if (d->kind == K_LIST && sl_conf_check_list(v, msg, msglen) != SL_OK)
            return SL_ERROR;
        if (d->kind == K_IPS && sl_conf_check_ips(v, msg, msglen) != SL_OK)
            return SL_ERROR;
        if (d->kind == K_NODE_ID && sl_conf_check_uuid(v) != SL_OK) {
            sl_conf_fmt(msg, msglen, "expected a UUID, got \"%.80s\"", v);
            return SL_ERROR;
        }
        return field ? sl_conf_set_str(field, v, msg, msglen) : SL_OK;
    case K_ENUM: {
        const char *canon = sl_conf_match_choice(d->choices, v);
        if (canon == NULL) {
            char list[256];
            sl_conf_join_choices(d->choices, list, sizeof(list));
            sl_conf_fmt(msg, msglen, "expected %s, got \"%.80s\"", list, v);
            return SL_ERROR;
        }
        return field ? sl_conf_set_str(field, canon, msg, msglen) : SL_OK;
    }
    case K_BOOL:
        if (sl_conf_parse_bool(v, &b) != SL_OK) {
            sl_conf_fmt(msg, msglen, "expected on, off, true or false, got \"%.80s\"", v);
            return SL_ERROR;
        }
        if (field)
            *(int *)field = b;
        return SL_OK;
    case K_INT:
        if (sl_conf_parse_u64(v, strlen(v), (uint64_t)INT64_MAX, &u) != SL_OK ||
            (int64_t)u < d->min || (int64_t)u > d->max) {
            sl_conf_fmt(msg, msglen, "expected an integer from %lld to %lld, got \"%.80s\"",
                        (long long)d->min, (long long)d->max, v);
            return SL_ERROR;
        }
        if (field)
            *(int *)field = (int)u;
        return SL_OK;
    case K_WORKERS:
        if (strcasecmp(v, "auto") == 0) {
            u = 0;
        } else if (sl_conf_parse_u64(v, strlen(v), (uint64_t)INT64_MAX, &u) != SL_OK || u == 0) {
            sl_conf_fmt(msg, msglen, "expected \"auto\" or a positive integer, got \"%.80s\"", v);
            return SL_ERROR;
        } else if ((int64_t)u > d->max) {
            sl_conf_fmt(msg, msglen, "expected \"auto\" or at most %lld, got \"%.80s\"",
                        (long long)d->max, v);
            return SL_ERROR;
        }
        if (field)
            *(int *)field = (int)u;
        return SL_OK;
    case K_SIZE:
        if (sl_conf_parse_size(v, &i64) != SL_OK || i64 < d->min || i64 > d->max) {
            sl_conf_fmt(msg, msglen, "expected a size such as %s8k, 10m or 1g, got \"%.80s\"",
                        d->min == 0 ? "0, " : "512, ", v);
            return SL_ERROR;
        }
        if (field)
            *(int64_t *)field = i64;
        return SL_OK;
    case K_MS:
        if (sl_conf_parse_ms(v, &i64) != SL_OK || i64 < d->min || i64 > d->max) {
            sl_conf_fmt(msg, msglen,
                        "expected a duration such as %s500ms, 60s, 1m or 1h (a plain number is "
                        "seconds), got \"%.80s\"",
                        d->min == 0 ? "0, " : "", v);
            return SL_ERROR;
        }
        if (field)
            *(int64_t *)field = i64;
        return SL_OK;
    case K_LISTEN: {
        sl_listen_list_t l;
        if (sl_conf_parse_listen(v, &l, msg, msglen) != SL_OK)
            return SL_ERROR;
        if (field) {
            sl_conf_listen_free(field);
            *(sl_listen_list_t *)field = l;
        } else {
            sl_conf_listen_free(&l);
        }
        return SL_OK;
    }
    case K_HEADERS:
    case K_HEADERS_UP:
        if (sl_conf_parse_headers(v, d->kind == K_HEADERS ? ~0u : SL_HDR_REQUEST_ID, &mask, msg,
                                  msglen) != SL_OK)
            return SL_ERROR;
        if (field)
            *(unsigned *)field = mask;
        return SL_OK;
    case K_LARGE_BUFS: {
        const char *sp = v;
        while (*sp && !sl_conf_is_space(*sp))
            sp++;
        const char *sz = sp;
        while (sl_conf_is_space(*sz))
            sz++;
        if (sl_conf_parse_u64(v, (size_t)(sp - v), (uint64_t)d->max, &u) != SL_OK || u == 0 ||
            sl_conf_parse_size(sz, &i64) != SL_OK || i64 == 0 || i64 > INT_MAX) {
            sl_conf_fmt(msg, msglen, "expected \"<number> <size>\" such as \"4 8k\", got \"%.80s\"",
                        v);
            return SL_ERROR;
        }
        if (c) {
            c->large_header_buffers = (int)u;
            c->large_header_buffer_size = i64;
        }
        return SL_OK;
    }
    }
    sl_conf_fmt(msg, msglen, "internal error: unknown kind");
    return SL_ERROR;
}

/* ---- the loader ---- */

static int sl_conf_find_def(const char *name)
{
    for (size_t i = 0; i < NDEFS; i++) {
        const sl_conf_def_t *d = &sl_conf_defs[i];
        if (strcmp(d->name, name) == 0 || (d->alias[0] && strcmp(d->alias[0], name) == 0) ||
            (d->alias[1] && strcmp(d->alias[1], name) == 0))
            return (int)i;
    }
    return -1;
}

static void sl_conf_warnf(sl_conf_loader_t *ld, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void sl_conf_warnf(sl_conf_loader_t *ld, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    if (ld->warn == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    ld->warn(ld->ud, buf);
}

static void sl_conf_fail(sl_conf_loader_t *ld, const sl_conf_src_t *src, const char *prop,
                         const char *msg)
{
    if (src->env)
        sl_conf_fmt(ld->err, ld->errlen, "environment %s: property '%s': %s", src->env, prop, msg);
    else if (src->file)
        sl_conf_fmt(ld->err, ld->errlen, "%s:%d: property '%s': %s", src->file, src->line, prop,
                    msg);
    else
        sl_conf_fmt(ld->err, ld->errlen, "default: property '%s': %s", prop, msg);
}

/* Checks and stores value for known property idx, given under the name given. */
static int sl_conf_set_known(sl_conf_loader_t *ld, int idx, const char *given, const char *value,
                             const sl_conf_src_t *src)
{
    const sl_conf_def_t *d = &sl_conf_defs[idx];
    char msg[512];

    if (sl_conf_apply(ld->c, d, value, msg, sizeof(msg)) != SL_OK) {
        sl_conf_fail(ld, src, given, msg);
        return SL_ERROR;
    }
    if (d->kind == K_ENUM)
        value = sl_conf_match_choice(d->choices, value);
    if (sl_conf_set_str(&ld->vals[idx], value, msg, sizeof(msg)) != SL_OK) {
        sl_conf_fail(ld, src, given, msg);
        return SL_ERROR;
    }
    return SL_OK;
}

/* Keeps an nginx_* or unknown key; returns the index it has in extra, or -1 when out of
 * memory. *prev_line gets the file line that set it before (0 if none). */
static int sl_conf_set_extra(sl_conf_loader_t *ld, const char *name, const char *value, int line,
                             int *prev_line)
{
    size_t i;
    *prev_line = 0;
    for (i = 0; i < ld->nextra; i++)
        if (strcmp(ld->extra[i].name, name) == 0)
            break;
    if (i == ld->nextra) {
        if (ld->nextra == ld->extra_cap) {
            size_t cap = ld->extra_cap ? ld->extra_cap * 2 : 16;
            sl_conf_prop_t *e = realloc(ld->extra, cap * sizeof(*e));
            if (e == NULL)
                return -1;
            ld->extra = e;
            int *lines = realloc(ld->extra_lines, cap * sizeof(*lines));
            if (lines == NULL)
                return -1;
            ld->extra_lines = lines;
            ld->extra_cap = cap;
        }
        ld->extra[i].name = strdup(name);
        ld->extra[i].value = NULL;
        ld->extra_lines[i] = 0;
        if (ld->extra[i].name == NULL)
            return -1;
        ld->nextra++;
    }
    char *copy = strdup(value);
    if (copy == NULL)
        return -1;
    free(ld->extra[i].value);
    ld->extra[i].value = copy;
    *prev_line = ld->extra_lines[i];
    if (line > 0)
        ld->extra_lines[i] = line;
    return (int)i;
}

/* Removes comments ('#' not written as '\#') in place and turns '\#' into '#'. */
static void sl_conf_strip_comment(char *line)
{
    char *w = line;
    for (const char *r = line; *r; r++) {
        if (r[0] == '\\' && r[1] == '#') {
            *w++ = '#';
            r++;
        } else if (r[0] == '#') {
            break;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
}

static int sl_conf_name_ok(const char *name)
{
    if (*name == '\0')
        return 0;
    for (const char *p = name; *p; p++)
        if (!sl_conf_is_digit(*p) && !(*p >= 'a' && *p <= 'z') && !(*p >= 'A' && *p <= 'Z') &&
            *p != '_')
            return 0;
    return 1;
}

static int sl_conf_read_file(sl_conf_loader_t *ld, const char *path)
{
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    int lineno = 0, rc = SL_OK;

    if (f == NULL) {
        sl_conf_fmt(ld->err, ld->errlen, "cannot open \"%s\": %s", path, strerror(errno));
        return SL_ERROR;
    }
    while (getline(&line, &cap, f) != -1) {
        lineno++;
        sl_conf_strip_comment(line);
        char *s = sl_conf_trim(line);
        if (*s == '\0')
            continue;
        char *eq = strchr(s, '=');
        if (eq == NULL) {
            sl_conf_fmt(ld->err, ld->errlen, "%s:%d: expected 'name = value', got \"%.80s\"", path,
                        lineno, s);
            rc = SL_ERROR;
            break;
        }
        *eq = '\0';
        char *name = sl_conf_trim(s), *value = sl_conf_trim(eq + 1);
        if (!sl_conf_name_ok(name)) {
            sl_conf_fmt(ld->err, ld->errlen, "%s:%d: invalid property name \"%.80s\"", path, lineno,
                        name);
            rc = SL_ERROR;
            break;
        }
        sl_conf_src_t src = {path, lineno, NULL};
        int idx = sl_conf_find_def(name), prev;
        if (idx >= 0) {
            prev = ld->lines[idx];
            if (sl_conf_set_known(ld, idx, name, value, &src) != SL_OK) {
                rc = SL_ERROR;
                break;
            }
            ld->lines[idx] = lineno;
        } else {
            if (sl_conf_set_extra(ld, name, value, lineno, &prev) < 0) {
                sl_conf_fmt(ld->err, ld->errlen, "out of memory");
                rc = SL_ERROR;
                break;
            }
            if (strncmp(name, "nginx_", 6) != 0 && prev == 0)
                sl_conf_warnf(ld, "%s:%d: unknown property '%s'", path, lineno, name);
        }
        if (prev > 0)
            sl_conf_warnf(ld,
                          "%s:%d: property '%s' set again (before at line %d); the last "
                          "value wins",
                          path, lineno, name, prev);
    }
    if (rc == SL_OK && ferror(f)) {
        sl_conf_fmt(ld->err, ld->errlen, "cannot read \"%s\": %s", path, strerror(errno));
        rc = SL_ERROR;
    }
    free(line);
    fclose(f);
    return rc;
}

/* The value of NAME in envp, or NULL. */
static const char *sl_conf_env_get(char *const *envp, const char *name)
{
    size_t n = strlen(name);
    for (; *envp; envp++)
        if (strncmp(*envp, name, n) == 0 && (*envp)[n] == '=')
            return *envp + n + 1;
    return NULL;
}

/* "KONG_" + upper(name) into buf; SL_ERROR if it does not fit. */
static int sl_conf_env_name(const char *prefix, const char *name, char *buf, size_t len)
{
    size_t pl = strlen(prefix), nl = strlen(name);
    if (pl + nl + 1 > len)
        return SL_ERROR;
    memcpy(buf, prefix, pl);
    for (size_t i = 0; i < nl; i++) {
        char ch = name[i];
        buf[pl + i] = ch >= 'a' && ch <= 'z' ? (char)(ch - 32) : ch;
    }
    buf[pl + nl] = '\0';
    return SL_OK;
}

static int sl_conf_read_env(sl_conf_loader_t *ld, char *const *envp)
{
    static const char *const prefixes[] = {"KONG_", "SLUICE_"};
    char var[128], best_var[128], given[128];

    /* Known properties: later candidates win (KONG_ aliases, KONG_ name, SLUICE_ ...). */
    for (size_t i = 0; i < NDEFS; i++) {
        const sl_conf_def_t *d = &sl_conf_defs[i];
        const char *names[3] = {d->alias[0], d->alias[1], d->name};
        const char *best = NULL;
        for (size_t p = 0; p < SL_ARRAY_SIZE(prefixes); p++) {
            for (size_t k = 0; k < 3; k++) {
                if (names[k] == NULL ||
                    sl_conf_env_name(prefixes[p], names[k], var, sizeof(var)) != SL_OK)
                    continue;
                const char *v = sl_conf_env_get(envp, var);
                if (v) {
                    best = v;
                    memcpy(best_var, var, sizeof(var));
                    memcpy(given, names[k], strlen(names[k]) + 1);
                }
            }
        }
        if (best == NULL)
            continue;
        char *copy = strdup(best);
        if (copy == NULL) {
            sl_conf_fmt(ld->err, ld->errlen, "out of memory");
            return SL_ERROR;
        }
        sl_conf_src_t src = {NULL, 0, best_var};
        int rc = sl_conf_set_known(ld, (int)i, given, sl_conf_trim(copy), &src);
        free(copy);
        if (rc != SL_OK)
            return SL_ERROR;
    }

    /* Any other KONG_NGINX_* / SLUICE_NGINX_* becomes an nginx_* key; SLUICE_ last. */
    for (size_t p = 0; p < SL_ARRAY_SIZE(prefixes); p++) {
        size_t pl = strlen(prefixes[p]);
        for (char *const *e = envp; *e; e++) {
            const char *eq = strchr(*e, '=');
            if (eq == NULL || strncmp(*e, prefixes[p], pl) != 0 ||
                strncmp(*e + pl, "NGINX_", 6) != 0 || (size_t)(eq - *e) - pl >= sizeof(var))
                continue;
            size_t nl = (size_t)(eq - *e) - pl;
            int ok = 1;
            for (size_t k = 0; k < nl; k++) {
                char ch = (*e)[pl + k];
                if (!(ch >= 'A' && ch <= 'Z') && !sl_conf_is_digit(ch) && ch != '_')
                    ok = 0;
                var[k] = ch >= 'A' && ch <= 'Z' ? (char)(ch + 32) : ch;
            }
            var[nl] = '\0';
            if (!ok || sl_conf_find_def(var) >= 0)
                continue;
            char *copy = strdup(eq + 1);
            int prev;
            int rc = copy ? sl_conf_set_extra(ld, var, sl_conf_trim(copy), 0, &prev) : -1;
            free(copy);
            if (rc < 0) {
                sl_conf_fmt(ld->err, ld->errlen, "out of memory");
                return SL_ERROR;
            }
        }
    }
    return SL_OK;
}

/* Makes *path absolute against the current directory (no change if "" or absolute). */
static int sl_conf_make_absolute(char **path)
{
    if ((*path)[0] == '\0' || (*path)[0] == '/')
        return SL_OK;
    char *cwd = getcwd(NULL, 0);
    if (cwd == NULL)
        return SL_ERROR;
    const char *rel = *path;
    while (rel[0] == '.' && rel[1] == '/')
        rel += 2;
    size_t cl = strlen(cwd), rl = strlen(rel);
    char *abs = malloc(cl + rl + 2);
    if (abs != NULL) {
        memcpy(abs, cwd, cl);
        abs[cl] = '/';
        memcpy(abs + cl + 1, rel, rl + 1);
        free(*path);
        *path = abs;
    }
    free(cwd);
    return abs ? SL_OK : SL_ERROR;
}

static int sl_conf_prop_cmp(const void *a, const void *b)
{
    return strcmp(((const sl_conf_prop_t *)a)->name, ((const sl_conf_prop_t *)b)->name);
}

/* Gathers vals (under each name and alias) and extra into c->props, sorted by name. */
static int sl_conf_build_props(sl_conf_loader_t *ld)
{
    sl_conf_t *c = ld->c;
    size_t n = ld->nextra;
    for (size_t i = 0; i < NDEFS; i++)
        n += 1 + (sl_conf_defs[i].alias[0] != NULL) + (sl_conf_defs[i].alias[1] != NULL);
    c->props = calloc(n, sizeof(*c->props));
    if (c->props == NULL)
        return SL_ERROR;
    for (size_t i = 0; i < NDEFS; i++) {
        const sl_conf_def_t *d = &sl_conf_defs[i];
        const char *names[3] = {d->name, d->alias[0], d->alias[1]};
        for (size_t k = 0; k < 3 && names[k]; k++) {
            sl_conf_prop_t *p = &c->props[c->nprops];
            p->name = strdup(names[k]);
            p->value = strdup(ld->vals[i]);
            c->nprops++;
            if (p->name == NULL || p->value == NULL)
                return SL_ERROR;
        }
    }
    for (size_t i = 0; i < ld->nextra; i++) {
        c->props[c->nprops++] = ld->extra[i];
        ld->extra[i].name = ld->extra[i].value = NULL;
    }
    qsort(c->props, c->nprops, sizeof(*c->props), sl_conf_prop_cmp);
    return SL_OK;
}

sl_conf_t *sl_conf_load(const char *path, char *const *envp, sl_conf_warn_cb warn, void *ud,
                        char *err, size_t errlen)
{
    sl_conf_loader_t ld;
    int rc = SL_ERROR;

    memset(&ld, 0, sizeof(ld));
    ld.warn = warn;
    ld.ud = ud;
    ld.err = err;
    ld.errlen = errlen;
    if (err && errlen)
        err[0] = '\0';
    ld.c = calloc(1, sizeof(*ld.c));
    if (ld.c == NULL) {
        sl_conf_fmt(err, errlen, "out of memory");
        return NULL;
    }

    sl_conf_src_t defsrc = {NULL, 0, NULL};
    for (size_t i = 0; i < NDEFS; i++)
        if (sl_conf_set_known(&ld, (int)i, sl_conf_defs[i].name, sl_conf_defs[i].def, &defsrc) !=
            SL_OK)
            goto done;
    if (path != NULL) {
        ld.c->conf_path = strdup(path);
        if (ld.c->conf_path == NULL) {
            sl_conf_fmt(err, errlen, "out of memory");
            goto done;
        }
        if (sl_conf_read_file(&ld, path) != SL_OK)
            goto done;
    }
    if (sl_conf_read_env(&ld, envp ? envp : environ) != SL_OK)
        goto done;

    /* The master may chdir; paths given relative to the current directory must survive it. */
    int ip = sl_conf_find_def("prefix"), id = sl_conf_find_def("declarative_config");
    if (sl_conf_make_absolute(&ld.c->prefix) != SL_OK ||
        sl_conf_make_absolute(&ld.c->declarative_config) != SL_OK ||
        sl_conf_set_str(&ld.vals[ip], ld.c->prefix, err, errlen) != SL_OK ||
        sl_conf_set_str(&ld.vals[id], ld.c->declarative_config, err, errlen) != SL_OK) {
        sl_conf_fmt(err, errlen, "cannot make paths absolute: %s", strerror(errno));
        goto done;
    }
    if (sl_conf_build_props(&ld) != SL_OK) {
        sl_conf_fmt(err, errlen, "out of memory");
        goto done;
    }
    rc = SL_OK;

done:
    for (size_t i = 0; i < NDEFS; i++)
        free(ld.vals[i]);
    for (size_t i = 0; i < ld.nextra; i++) {
        free(ld.extra[i].name);
        free(ld.extra[i].value);
    }
    free(ld.extra);
    free(ld.extra_lines);
    if (rc != SL_OK) {
        sl_conf_destroy(ld.c);
        return NULL;
    }
    return ld.c;
}

void sl_conf_destroy(sl_conf_t *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < NDEFS; i++) {
        const sl_conf_def_t *d = &sl_conf_defs[i];
        if (d->off == NOF)
            continue;
        void *field = (char *)c + d->off;
        switch (d->kind) {
        case K_STR:
        case K_LIST:
        case K_ENUM:
        case K_IPS:
        case K_NODE_ID:
            free(*(char **)field);
            break;
        case K_LISTEN:
            sl_conf_listen_free(field);
            break;
        default:
            break;
        }
    }
    for (size_t i = 0; i < c->nprops; i++) {
        free(c->props[i].name);
        free(c->props[i].value);
    }
    free(c->props);
    free(c->conf_path);
    free(c);
}

char *sl_conf_prefixed(const sl_conf_t *c, const char *path)
{
    if (path == NULL)
        return NULL;
    if (path[0] == '\0' || path[0] == '/' || strcmp(path, "off") == 0)
        return strdup(path);
    size_t pl = strlen(c->prefix), rl = strlen(path);
    while (pl > 0 && c->prefix[pl - 1] == '/')
        pl--;
    char *out = malloc(pl + rl + 2);
    if (out == NULL)
        return NULL;
    memcpy(out, c->prefix, pl);
    out[pl] = '/';
    memcpy(out + pl + 1, path, rl + 1);
    return out;
}

const char *sl_conf_get(const sl_conf_t *c, const char *name)
{
    sl_conf_prop_t key = {(char *)name, NULL};
    const sl_conf_prop_t *p =
        bsearch(&key, c->props, c->nprops, sizeof(*c->props), sl_conf_prop_cmp);
    return p ? p->value : NULL;
}
