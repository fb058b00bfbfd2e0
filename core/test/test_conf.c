/*
 * test_conf.c: sl_conf, the kong.conf-style loader. Tables of good and bad files (written
 * to a temporary directory), environment overrides through a custom envp, the exact shape
 * of error and warning messages, listen parsing, prefixed paths, props, and the shipped
 * examples/sluice.conf.
 */
#include "conf/sl_conf.h"
#include "test/sl_test.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *const no_env[] = {NULL};
static char tmpdir[PATH_MAX];

/* Collects warnings: how many and all their text. */
typedef struct {
    int n;
    char text[4096];
} warnings_t;

static void collect_warning(void *ud, const char *msg)
{
    warnings_t *w = ud;
    size_t used = strlen(w->text);
    w->n++;
    snprintf(w->text + used, sizeof(w->text) - used, "%s\n", msg);
}

/* Writes text to <tmpdir>/<name> and returns the path in a static buffer. */
static const char *write_conf(const char *name, const char *text)
{
    static char path[PATH_MAX + 64];
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        perror(path);
        exit(2);
    }
    fputs(text, f);
    fclose(f);
    return path;
}

static int contains(const char *hay, const char *needle)
{
    return hay != NULL && strstr(hay, needle) != NULL;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* ---- typed field getters for the tables ---- */

typedef int64_t (*getter_t)(const sl_conf_t *c);

static int64_t g_workers(const sl_conf_t *c)
{
    return c->worker_processes;
}
static int64_t g_daemon(const sl_conf_t *c)
{
    return c->daemon;
}
static int64_t g_max_body(const sl_conf_t *c)
{
    return c->client_max_body_size;
}
static int64_t g_body_buf(const sl_conf_t *c)
{
    return c->client_body_buffer_size;
}
static int64_t g_ka_timeout(const sl_conf_t *c)
{
    return c->keepalive_timeout_ms;
}
static int64_t g_idle(const sl_conf_t *c)
{
    return c->upstream_keepalive_idle_timeout_ms;
}
static int64_t g_pool(const sl_conf_t *c)
{
    return c->upstream_keepalive_pool_size;
}
static int64_t g_large_n(const sl_conf_t *c)
{
    return c->large_header_buffers;
}
static int64_t g_large_size(const sl_conf_t *c)
{
    return c->large_header_buffer_size;
}
static int64_t g_headers(const sl_conf_t *c)
{
    return c->headers;
}
static int64_t g_headers_up(const sl_conf_t *c)
{
    return c->headers_upstream;
}
static int64_t g_recursive(const sl_conf_t *c)
{
    return c->real_ip_recursive;
}
static int64_t g_send_timeout(const sl_conf_t *c)
{
    return c->send_timeout_ms;
}
static int64_t g_proxy_port(const sl_conf_t *c)
{
    return c->proxy_listen.n ? (int64_t)c->proxy_listen.items[0].port : -1;
}
static int64_t g_status_n(const sl_conf_t *c)
{
    return (int64_t)c->status_listen.n;
}

#define LATENCY                                                                                    \
    (SL_HDR_PROXY_LATENCY | SL_HDR_RESPONSE_LATENCY | SL_HDR_UPSTREAM_LATENCY |                    \
     SL_HDR_ADMIN_LATENCY)

static void test_defaults(void)
{
    char err[512];
    warnings_t w = {0};
    sl_conf_t *c = sl_conf_load(NULL, no_env, collect_warning, &w, err, sizeof(err));
    SL_CHECK(c != NULL, "defaults load: %s", err);
    if (c == NULL)
        return;
    SL_CHECK(w.n == 0, "no warnings for defaults, got %s", w.text);
    SL_CHECK(c->conf_path == NULL, "conf_path NULL without a file");
    SL_CHECK(strcmp(c->prefix, "/usr/local/sluice/") == 0, "prefix %s", c->prefix);
    SL_CHECK(strcmp(c->database, "embedded") == 0, "database %s", c->database);
    SL_CHECK(strcmp(c->declarative_config, "") == 0, "declarative_config empty");
    SL_CHECK(strcmp(c->plugins, "bundled") == 0, "plugins %s", c->plugins);
    /* Kong's default: plain 8000 and TLS 8443 */
    SL_CHECK(c->proxy_listen.n == 2 && strcmp(c->proxy_listen.items[0].host, "0.0.0.0") == 0 &&
                 c->proxy_listen.items[0].port == 8000 && c->proxy_listen.items[0].reuseport &&
                 c->proxy_listen.items[0].backlog == 16384 && !c->proxy_listen.items[0].ssl,
             "proxy_listen default");
    SL_CHECK(c->proxy_listen.n == 2 && c->proxy_listen.items[1].port == 8443 &&
                 c->proxy_listen.items[1].ssl && c->proxy_listen.items[1].reuseport,
             "proxy_listen default TLS");
    SL_CHECK(c->admin_listen.n == 1 && strcmp(c->admin_listen.items[0].host, "127.0.0.1") == 0 &&
                 c->admin_listen.items[0].port == 8001,
             "admin_listen default");
    SL_CHECK(c->status_listen.n == 0 && c->status_listen.items == NULL, "status_listen off");
    SL_CHECK(c->worker_processes == 0, "worker_processes auto = 0");
    SL_CHECK(c->daemon == 1, "daemon on");
    SL_CHECK(strcmp(c->log_level, "notice") == 0, "log_level %s", c->log_level);
    SL_CHECK(strcmp(c->proxy_access_log, "logs/access.log") == 0, "proxy_access_log");
    SL_CHECK(strcmp(c->proxy_error_log, "logs/error.log") == 0, "proxy_error_log");
    SL_CHECK(strcmp(c->admin_access_log, "logs/admin_access.log") == 0, "admin_access_log");
    SL_CHECK(strcmp(c->admin_error_log, "logs/error.log") == 0, "admin_error_log");
    SL_CHECK(c->headers == (SL_HDR_SERVER | SL_HDR_VIA | LATENCY | SL_HDR_REQUEST_ID),
             "headers mask %u", c->headers);
    SL_CHECK(c->headers_upstream == SL_HDR_REQUEST_ID, "headers_upstream");
    SL_CHECK(strcmp(c->trusted_ips, "") == 0, "trusted_ips");
    SL_CHECK(strcmp(c->real_ip_header, "X-Real-IP") == 0, "real_ip_header");
    SL_CHECK(c->real_ip_recursive == 0, "real_ip_recursive");
    SL_CHECK(strcmp(c->error_default_type, "text/plain") == 0, "error_default_type");
    SL_CHECK(c->upstream_keepalive_pool_size == 512, "pool size");
    SL_CHECK(c->upstream_keepalive_max_requests == 10000, "max requests");
    SL_CHECK(c->upstream_keepalive_idle_timeout_ms == 60000, "idle timeout");
    SL_CHECK(c->client_max_body_size == 0, "client_max_body_size");
    SL_CHECK(c->client_body_buffer_size == 8192, "client_body_buffer_size");
    SL_CHECK(c->client_header_buffer_size == 1024, "client_header_buffer_size");
    SL_CHECK(c->large_header_buffers == 4 && c->large_header_buffer_size == 8192, "large bufs");
    SL_CHECK(c->client_max_headers == 100, "client_max_headers");
    SL_CHECK(c->client_header_timeout_ms == 60000 && c->client_body_timeout_ms == 60000 &&
                 c->send_timeout_ms == 60000,
             "client timeouts");
    SL_CHECK(c->keepalive_timeout_ms == 75000, "keepalive_timeout");
    SL_CHECK(c->keepalive_requests == 10000, "keepalive_requests");
    SL_CHECK(strcmp(c->lua_package_path, "./?.lua;./?/init.lua;") == 0, "lua_package_path");
    SL_CHECK(strcmp(c->lua_package_cpath, "") == 0, "lua_package_cpath");
    SL_CHECK(strcmp(c->lua_ssl_trusted_certificate, "system") == 0, "lua_ssl_trusted_cert");
    SL_CHECK(c->lua_ssl_verify_depth == 1, "lua_ssl_verify_depth");
    SL_CHECK(c->lua_socket_pool_size == 256, "lua_socket_pool_size");
    SL_CHECK(strcmp(c->dns_resolver, "") == 0, "dns_resolver");
    SL_CHECK(strcmp(c->dns_hostsfile, "/etc/hosts") == 0, "dns_hostsfile");
    SL_CHECK(strcmp(c->untrusted_lua, "sandbox") == 0, "untrusted_lua");
    SL_CHECK(strcmp(c->untrusted_lua_sandbox_requires, "") == 0, "sandbox requires");
    SL_CHECK(strcmp(c->ssl_cert, "") == 0 && strcmp(c->ssl_cert_key, "") == 0, "ssl_cert");
    SL_CHECK(strcmp(c->node_id, "") == 0, "node_id");

    /* props: sorted, unique, aliases share their property's value, accepted keys present */
    int sorted = c->nprops > 50;
    for (size_t i = 1; i < c->nprops; i++)
        if (strcmp(c->props[i - 1].name, c->props[i].name) >= 0)
            sorted = 0;
    SL_CHECK(sorted, "props sorted and unique (%zu)", c->nprops);
    static const struct {
        const char *name, *value;
    } props[] = {
        {"worker_processes", "auto"},
        {"nginx_worker_processes", "auto"},
        {"nginx_main_worker_processes", "auto"},
        {"nginx_daemon", "on"},
        {"nginx_http_client_max_body_size", "0"},
        {"nginx_http_large_client_header_buffers", "4 8k"},
        {"mem_cache_size", "128m"},
        {"router_flavor", "traditional_compatible"},
        {"headers", "server_tokens, latency_tokens, X-Kong-Request-Id"},
        {"proxy_listen", "0.0.0.0:8000 reuseport backlog=16384, 0.0.0.0:8443 http2 ssl reuseport backlog=16384"},
        {"status_listen", "off"},
        {"pg_port", "5432"},
        {"prefix", "/usr/local/sluice/"},
    };
    for (size_t i = 0; i < SL_ARRAY_SIZE(props); i++) {
        const char *v = sl_conf_get(c, props[i].name);
        SL_CHECK(v && strcmp(v, props[i].value) == 0, "get %s = %s, got %s", props[i].name,
                 props[i].value, v ? v : "(null)");
    }
    SL_CHECK(sl_conf_get(c, "no_such_property") == NULL, "unknown get NULL");
    SL_CHECK(sl_conf_get(c, "Worker_Processes") == NULL, "names are case-sensitive");

    /* prefixed paths */
    static const struct {
        const char *in, *out;
    } pre[] = {
        {"logs/error.log", "/usr/local/sluice/logs/error.log"},
        {"/var/log/sluice.log", "/var/log/sluice.log"},
        {"off", "off"},
        {"", ""},
    };
    for (size_t i = 0; i < SL_ARRAY_SIZE(pre); i++) {
        char *p = sl_conf_prefixed(c, pre[i].in);
        SL_CHECK(p && strcmp(p, pre[i].out) == 0, "prefixed(%s) = %s, got %s", pre[i].in,
                 pre[i].out, p ? p : "(null)");
        free(p);
    }
    SL_CHECK(sl_conf_prefixed(c, NULL) == NULL, "prefixed(NULL)");
    sl_conf_destroy(c);
    sl_conf_destroy(NULL);
}

static void test_good_files(void)
{
    static const struct {
        const char *text;
        const char *prop;    /* checked with sl_conf_get, or NULL */
        const char *want;    /* its final string */
        getter_t get;        /* typed field, or NULL */
        int64_t num;         /* its expected value */
        int warnings;        /* how many */
        const char *warning; /* a substring of them, or NULL */
    } cases[] = {
        {"worker_processes = 4\n", "worker_processes", "4", g_workers, 4, 0, NULL},
        {"worker_processes = AUTO\n", NULL, NULL, g_workers, 0, 0, NULL},
        {"nginx_worker_processes = 3\n", "worker_processes", "3", g_workers, 3, 0, NULL},
        {"nginx_main_worker_processes = 2\n", "nginx_worker_processes", "2", g_workers, 2, 0, NULL},
        {"worker_processes = 2\nnginx_worker_processes = 5\n", "worker_processes", "5", g_workers,
         5, 1, ":2: property 'nginx_worker_processes' set again (before at line 1)"},
        {"daemon = off\n", "daemon", "off", g_daemon, 0, 0, NULL},
        {"daemon = FALSE\n", NULL, NULL, g_daemon, 0, 0, NULL},
        {"nginx_daemon = True\n", "daemon", "True", g_daemon, 1, 0, NULL},
        {"real_ip_recursive = on\n", NULL, NULL, g_recursive, 1, 0, NULL},
        {"client_max_body_size = 10m\n", NULL, NULL, g_max_body, 10 * 1024 * 1024, 0, NULL},
        {"nginx_http_client_max_body_size = 2g\n", "client_max_body_size", "2g", g_max_body,
         2LL * 1024 * 1024 * 1024, 0, NULL},
        {"client_max_body_size = 0\n", NULL, NULL, g_max_body, 0, 0, NULL},
        {"client_body_buffer_size = 512\n", NULL, NULL, g_body_buf, 512, 0, NULL},
        {"client_body_buffer_size = 16K\n", NULL, NULL, g_body_buf, 16384, 0, NULL},
        {"keepalive_timeout = 500ms\n", NULL, NULL, g_ka_timeout, 500, 0, NULL},
        {"keepalive_timeout = 1m30s\n", NULL, NULL, g_ka_timeout, 90000, 0, NULL},
        {"keepalive_timeout = 1h\n", NULL, NULL, g_ka_timeout, 3600000, 0, NULL},
        {"keepalive_timeout = 5\n", NULL, NULL, g_ka_timeout, 5000, 0, NULL},
        {"keepalive_timeout = 1.5\n", NULL, NULL, g_ka_timeout, 1500, 0, NULL},
        {"keepalive_timeout = 0\n", NULL, NULL, g_ka_timeout, 0, 0, NULL},
        {"nginx_http_send_timeout = 2d\n", NULL, NULL, g_send_timeout, 172800000, 0, NULL},
        {"upstream_keepalive_idle_timeout = 30\n", NULL, NULL, g_idle, 30000, 0, NULL},
        {"upstream_keepalive_pool_size = 0\n", NULL, NULL, g_pool, 0, 0, NULL},
        {"large_client_header_buffers = 8 16k\n", NULL, NULL, g_large_n, 8, 0, NULL},
        {"nginx_http_large_client_header_buffers =  2   32k \n", NULL, NULL, g_large_size, 32768, 0,
         NULL},
        {"headers = off\n", "headers", "off", g_headers, 0, 0, NULL},
        {"headers = server_tokens\n", NULL, NULL, g_headers, SL_HDR_SERVER | SL_HDR_VIA, 0, NULL},
        {"headers = latency_tokens\n", NULL, NULL, g_headers, LATENCY, 0, NULL},
        {"headers = via, x-kong-upstream-status\n", NULL, NULL, g_headers,
         SL_HDR_VIA | SL_HDR_UPSTREAM_STATUS, 0, NULL},
        {"headers = Server,X-Kong-Request-Id,X-Kong-Admin-Latency\n", NULL, NULL, g_headers,
         SL_HDR_SERVER | SL_HDR_REQUEST_ID | SL_HDR_ADMIN_LATENCY, 0, NULL},
        {"headers_upstream = off\n", NULL, NULL, g_headers_up, 0, 0, NULL},
        {"proxy_listen = 0.0.0.0:9000, 0.0.0.0:9443 ssl http2\n", NULL, NULL, g_proxy_port, 9000, 0,
         NULL},
        {"status_listen = 127.0.0.1:8007 reuseport backlog=16384\n", NULL, NULL, g_status_n, 1, 0,
         NULL},
        {"log_level = DEBUG\n", "log_level", "debug", NULL, 0, 0, NULL},
        {"log_level = warn # a trailing comment\n", "log_level", "warn", NULL, 0, 0, NULL},
        {"# only a comment\n\n   \n\t# another\nlog_level = crit\n", "log_level", "crit", NULL, 0,
         0, NULL},
        {"real_ip_header = X-\\#Foo # comment\n", "real_ip_header", "X-#Foo", NULL, 0, 0, NULL},
        {"   \t log_level\t=\t  error   \r\n", "log_level", "error", NULL, 0, 0, NULL},
        {"log_level = info\nlog_level = alert\n", "log_level", "alert", NULL, 0, 1,
         ":2: property 'log_level' set again (before at line 1); the last value wins"},
        {"error_default_type = Application/JSON\n", "error_default_type", "application/json", NULL,
         0, 0, NULL},
        {"database = embedded\n", "database", "embedded", NULL, 0, 0, NULL},
        {"untrusted_lua = on\n", "untrusted_lua", "on", NULL, 0, 0, NULL},
        {"untrusted_lua_sandbox_requires = resty.http, cjson\n", "untrusted_lua_sandbox_requires",
         "resty.http, cjson", NULL, 0, 0, NULL},
        {"trusted_ips = 10.0.0.0/8, ::1, 0.0.0.0/0,::/0, unix:\n", "trusted_ips",
         "10.0.0.0/8, ::1, 0.0.0.0/0,::/0, unix:", NULL, 0, 0, NULL},
        {"node_id = 123e4567-e89b-12d3-a456-426614174000\n", "node_id",
         "123e4567-e89b-12d3-a456-426614174000", NULL, 0, 0, NULL},
        {"declarative_config =\n", "declarative_config", "", NULL, 0, 0, NULL},
        {"declarative_config_string = {\"_format_version\":\"3.0\",\"a\":\"b=c\"}\n",
         "declarative_config_string", "{\"_format_version\":\"3.0\",\"a\":\"b=c\"}", NULL, 0, 0,
         NULL},
        {"plugins = bundled, my-plugin\n", "plugins", "bundled, my-plugin", NULL, 0, 0, NULL},
        {"nginx_http_lua_shared_dict = foo 1m\n", "nginx_http_lua_shared_dict", "foo 1m", NULL, 0,
         0, NULL},
        {"nginx_proxy_proxy_buffering = off\n", "nginx_proxy_proxy_buffering", "off", NULL, 0, 0,
         NULL},
        {"proxy_lisen = 0.0.0.0:1\n", "proxy_lisen", "0.0.0.0:1", g_proxy_port, 8000, 1,
         ":1: unknown property 'proxy_lisen'"},
        {"mem_cache_size = 256m\n", "mem_cache_size", "256m", NULL, 0, 0, NULL},
        {"router_flavor = expressions\n", "router_flavor", "expressions", NULL, 0, 0, NULL},
        {"pg_password = s3cr=t\n", "pg_password", "s3cr=t", NULL, 0, 0, NULL},
        {"proxy_access_log = off\n", "proxy_access_log", "off", NULL, 0, 0, NULL},
        {"", "log_level", "notice", NULL, 0, 0, NULL},
        {"log_level = info", "log_level", "info", NULL, 0, 0, NULL}, /* no final newline */
    };
    for (size_t i = 0; i < SL_ARRAY_SIZE(cases); i++) {
        char err[512];
        warnings_t w = {0};
        const char *path = write_conf("good.conf", cases[i].text);
        sl_conf_t *c = sl_conf_load(path, no_env, collect_warning, &w, err, sizeof(err));
        SL_CHECK(c != NULL, "good case %zu (%s) loads: %s", i, cases[i].text, err);
        if (c == NULL)
            continue;
        SL_CHECK(c->conf_path && strcmp(c->conf_path, path) == 0, "case %zu conf_path", i);
        if (cases[i].prop) {
            const char *v = sl_conf_get(c, cases[i].prop);
            SL_CHECK(v && strcmp(v, cases[i].want) == 0, "case %zu: %s = \"%s\", got \"%s\"", i,
                     cases[i].prop, cases[i].want, v ? v : "(null)");
        }
        if (cases[i].get) {
            int64_t got = cases[i].get(c);
            SL_CHECK(got == cases[i].num, "case %zu (%s): typed value %lld, got %lld", i,
                     cases[i].text, (long long)cases[i].num, (long long)got);
        }
        SL_CHECK(w.n == cases[i].warnings, "case %zu: %d warnings, got %d: %s", i,
                 cases[i].warnings, w.n, w.text);
        if (cases[i].warning) {
            char want[PATH_MAX + 256];
            snprintf(want, sizeof(want), "%s%s", path, cases[i].warning);
            SL_CHECK(contains(w.text, want), "case %zu: warning \"%s\" in \"%s\"", i, want, w.text);
        }
        sl_conf_destroy(c);
    }
}

static void test_typed_fields(void)
{
    char err[512];
    const char *path = write_conf("typed.conf", "log_level = Info\n"
                                                "proxy_listen = [::1]:8443 ssl http2, *:80\n"
                                                "untrusted_lua = OFF\n"
                                                "large_client_header_buffers = 8 16k\n"
                                                "prefix = /srv/sluice\n");
    sl_conf_t *c = sl_conf_load(path, no_env, NULL, NULL, err, sizeof(err));
    SL_CHECK(c != NULL, "typed.conf loads: %s", err);
    if (c == NULL)
        return;
    SL_CHECK(strcmp(c->log_level, "info") == 0, "enum normalised: %s", c->log_level);
    SL_CHECK(strcmp(c->untrusted_lua, "off") == 0, "untrusted_lua %s", c->untrusted_lua);
    SL_CHECK(c->proxy_listen.n == 2, "two proxy listeners");
    if (c->proxy_listen.n == 2) {
        SL_CHECK(strcmp(c->proxy_listen.items[0].host, "::1") == 0 &&
                     c->proxy_listen.items[0].port == 8443 && c->proxy_listen.items[0].ssl &&
                     c->proxy_listen.items[0].http2,
                 "first listener");
        SL_CHECK(strcmp(c->proxy_listen.items[1].host, "*") == 0 &&
                     c->proxy_listen.items[1].port == 80 && !c->proxy_listen.items[1].ssl &&
                     c->proxy_listen.items[1].backlog == 511,
                 "second listener");
    }
    SL_CHECK(c->large_header_buffers == 8 && c->large_header_buffer_size == 16384, "large");
    char *p = sl_conf_prefixed(c, "logs/access.log");
    SL_CHECK(p && strcmp(p, "/srv/sluice/logs/access.log") == 0, "prefixed %s", p);
    free(p);
    sl_conf_destroy(c);

    /* relative prefix and declarative_config are made absolute against the cwd */
    char cwd[PATH_MAX], want[PATH_MAX + 64];
    SL_CHECK(getcwd(cwd, sizeof(cwd)) != NULL, "getcwd");
    path = write_conf("rel.conf", "prefix = servroot\ndeclarative_config = ./conf/kong.yml\n");
    c = sl_conf_load(path, no_env, NULL, NULL, err, sizeof(err));
    SL_CHECK(c != NULL, "rel.conf loads: %s", err);
    if (c == NULL)
        return;
    snprintf(want, sizeof(want), "%s/servroot", cwd);
    SL_CHECK(strcmp(c->prefix, want) == 0, "prefix %s, want %s", c->prefix, want);
    SL_CHECK(strcmp(sl_conf_get(c, "prefix"), want) == 0, "prefix prop absolute too");
    snprintf(want, sizeof(want), "%s/conf/kong.yml", cwd);
    SL_CHECK(strcmp(c->declarative_config, want) == 0, "declarative_config %s",
             c->declarative_config);
    snprintf(want, sizeof(want), "%s/servroot/logs/error.log", cwd);
    p = sl_conf_prefixed(c, "logs/error.log");
    SL_CHECK(p && strcmp(p, want) == 0, "prefixed relative %s", p);
    free(p);
    sl_conf_destroy(c);
}

static void test_bad_files(void)
{
    static const struct {
        const char *text;
        const char *want; /* substring of the error after "<path>" */
    } cases[] = {
        {"worker_processes = x\n",
         ":1: property 'worker_processes': expected \"auto\" or a positive integer, got \"x\""},
        {"# c\n\nworker_processes = 0\n", ":3: property 'worker_processes': expected \"auto\""},
        {"worker_processes = -2\n", ":1: property 'worker_processes'"},
        {"worker_processes = 100000\n", ":1: property 'worker_processes': expected \"auto\" or at "
                                        "most 4096"},
        {"nginx_worker_processes = many\n", ":1: property 'nginx_worker_processes'"},
        {"daemon = maybe\n", ":1: property 'daemon': expected on, off, true or false, got "
                             "\"maybe\""},
        {"client_max_body_size = 10x\n", ":1: property 'client_max_body_size': expected a size"},
        {"client_max_body_size = -1\n", ":1: property 'client_max_body_size'"},
        {"client_max_body_size = 99999999999999g\n", ":1: property 'client_max_body_size'"},
        {"client_max_body_size = m\n", ":1: property 'client_max_body_size'"},
        {"client_body_buffer_size = 0\n", ":1: property 'client_body_buffer_size'"},
        {"keepalive_timeout = 5 s\n", ":1: property 'keepalive_timeout': expected a duration"},
        {"keepalive_timeout = 1m30\n", ":1: property 'keepalive_timeout'"},
        {"keepalive_timeout = ms\n", ":1: property 'keepalive_timeout'"},
        {"keepalive_timeout = 1.2345\n", ":1: property 'keepalive_timeout'"},
        {"keepalive_timeout = 1.\n", ":1: property 'keepalive_timeout'"},
        {"keepalive_timeout = 5y\n", ":1: property 'keepalive_timeout'"},
        {"client_header_timeout = 0\n", ":1: property 'client_header_timeout'"},
        {"log_level = verbose\n", ":1: property 'log_level': expected debug, info, notice, warn, "
                                  "error, crit, alert or emerg, got \"verbose\""},
        {"database = cassandra\n", ":1: property 'database': expected off, embedded or postgres"},
        {"untrusted_lua = maybe\n", ":1: property 'untrusted_lua'"},
        {"error_default_type = text/csv\n", ":1: property 'error_default_type'"},
        {"headers = Server, Bogus\n", ":1: property 'headers': unknown header \"Bogus\""},
        {"headers = off, Server\n", ":1: property 'headers': 'off' cannot be combined"},
        {"headers = Server,,Via\n", ":1: property 'headers': empty item"},
        {"headers_upstream = Server\n", ":1: property 'headers_upstream': expected "
                                        "X-Kong-Request-Id or off"},
        {"proxy_listen = 0.0.0.0\n", ":1: property 'proxy_listen': invalid listen entry "
                                     "\"0.0.0.0\": expected <host>:<port>"},
        {"proxy_listen = 0.0.0.0:0\n", ":1: property 'proxy_listen': invalid listen entry"},
        {"proxy_listen = 0.0.0.0:8000 foo\n", ":1: property 'proxy_listen': invalid listen entry "
                                              "\"0.0.0.0:8000 foo\": unknown flag \"foo\""},
        {"admin_listen = 127.0.0.1:8001,\n", ":1: property 'admin_listen': empty entry"},
        {"status_listen = ::1:8000\n", ":1: property 'status_listen': invalid listen entry "
                                       "\"::1:8000\": an IPv6 address must be in brackets"},
        {"proxy_listen =\n", ":1: property 'proxy_listen'"},
        {"stream_listen = 1.2.3.4\n", ":1: property 'stream_listen'"},
        {"trusted_ips = 10.0.0.0/33\n", ":1: property 'trusted_ips': expected IP addresses"},
        {"trusted_ips = nope\n", ":1: property 'trusted_ips'"},
        {"trusted_ips = 10.0.0.1,\n", ":1: property 'trusted_ips': empty item"},
        {"node_id = abc\n", ":1: property 'node_id': expected a UUID"},
        {"node_id = 123e4567-e89b-12d3-a456-42661417400g\n", ":1: property 'node_id'"},
        {"large_client_header_buffers = 4\n", ":1: property 'large_client_header_buffers'"},
        {"large_client_header_buffers = 0 8k\n", ":1: property 'large_client_header_buffers'"},
        {"upstream_keepalive_pool_size = -1\n", ":1: property 'upstream_keepalive_pool_size': "
                                                "expected an integer from 0 to 1000000"},
        {"lua_ssl_verify_depth = 101\n", ":1: property 'lua_ssl_verify_depth'"},
        {"client_max_headers = 0\n", ":1: property 'client_max_headers'"},
        {"prefix =\n", ":1: property 'prefix': must not be empty"},
        {"plugins = bundled,,x\n", ":1: property 'plugins': empty item"},
        {"mem_cache_size = lots\n", ":1: property 'mem_cache_size'"},
        {"router_flavor = fast\n", ":1: property 'router_flavor'"},
        {"pg_port = 70000\n", ":1: property 'pg_port'"},
        {"allow_debug_header = yes\n", ":1: property 'allow_debug_header'"},
        {"this line has no equals\n", ":1: expected 'name = value'"},
        {"bad name = 1\n", ":1: invalid property name \"bad name\""},
        {"= 1\n", ":1: invalid property name"},
        {"log_level = info\nworker_processes = x\nlog_level = bogus\n",
         ":2: property 'worker_processes'"},
        {"log_level = info # worker_processes = x\nlog_level = bogus\n",
         ":2: property 'log_level'"},
    };
    for (size_t i = 0; i < SL_ARRAY_SIZE(cases); i++) {
        char err[512], want[PATH_MAX + 256];
        const char *path = write_conf("bad.conf", cases[i].text);
        sl_conf_t *c = sl_conf_load(path, no_env, NULL, NULL, err, sizeof(err));
        SL_CHECK(c == NULL, "bad case %zu (%s) fails", i, cases[i].text);
        sl_conf_destroy(c);
        snprintf(want, sizeof(want), "%s%s", path, cases[i].want);
        SL_CHECK(c == NULL && strncmp(err, path, strlen(path)) == 0 && contains(err, want),
                 "bad case %zu: want \"%s\" in \"%s\"", i, want, err);
    }

    /* the message from the brief, exactly */
    char err[512], want[PATH_MAX + 256];
    const char *path = write_conf("sluice.conf", "\n\n\n\n\n\n\n\n\n\n\nworker_processes = x\n");
    SL_CHECK(sl_conf_load(path, no_env, NULL, NULL, err, sizeof(err)) == NULL, "line 12 fails");
    snprintf(want, sizeof(want),
             "%s:12: property 'worker_processes': expected \"auto\" or a positive integer, got "
             "\"x\"",
             path);
    SL_CHECK(strcmp(err, want) == 0, "exact message: %s", err);

    /* a missing file */
    snprintf(want, sizeof(want), "%s/does-not-exist.conf", tmpdir);
    SL_CHECK(sl_conf_load(want, no_env, NULL, NULL, err, sizeof(err)) == NULL, "missing file");
    SL_CHECK(contains(err, "cannot open") && contains(err, "does-not-exist.conf"), "%s", err);

    /* a short error buffer is still NUL-terminated, and a NULL one is tolerated */
    char small[16];
    path = write_conf("bad.conf", "worker_processes = x\n");
    SL_CHECK(sl_conf_load(path, no_env, NULL, NULL, small, sizeof(small)) == NULL &&
                 strlen(small) == sizeof(small) - 1,
             "truncated error");
    SL_CHECK(sl_conf_load(path, no_env, NULL, NULL, NULL, 0) == NULL, "NULL err buffer");
}

static void test_env(void)
{
    const char *path = write_conf("env.conf", "log_level = warn\n"
                                              "worker_processes = 2\n"
                                              "nginx_http_lua_shared_dict = file 1m\n");
    static const struct {
        const char *file_or_null; /* "file" = env.conf, NULL = defaults only */
        char *env[5];
        const char *prop, *want;
    } cases[] = {
        {"file", {NULL}, "log_level", "warn"},
        {"file", {"KONG_LOG_LEVEL=debug", NULL}, "log_level", "debug"},
        {"file", {"KONG_LOG_LEVEL=debug", "SLUICE_LOG_LEVEL=error", NULL}, "log_level", "error"},
        {"file", {"SLUICE_LOG_LEVEL=error", "KONG_LOG_LEVEL=debug", NULL}, "log_level", "error"},
        {"file", {"KONG_NGINX_WORKER_PROCESSES=3", NULL}, "worker_processes", "3"},
        {"file",
         {"KONG_WORKER_PROCESSES=7", "KONG_NGINX_WORKER_PROCESSES=3", NULL},
         "worker_processes",
         "7"},
        {"file",
         {"SLUICE_NGINX_WORKER_PROCESSES=4", "KONG_WORKER_PROCESSES=7", NULL},
         "nginx_worker_processes",
         "4"},
        {"file",
         {"KONG_NGINX_HTTP_LUA_SHARED_DICT=env 2m", NULL},
         "nginx_http_lua_shared_dict",
         "env 2m"},
        {"file", {"SLUICE_NGINX_HTTP_FOO=b", "KONG_NGINX_HTTP_FOO=a", NULL}, "nginx_http_foo", "b"},
        {"file", {"KONG_NGINX_HTTP_FOO=a", NULL}, "nginx_http_foo", "a"},
        {"file",
         {"KONG_REAL_IP_HEADER=X-Client # not a comment", NULL},
         "real_ip_header",
         "X-Client # not a comment"},
        {"file",
         {"KONG_VERSION=3.9", "KONG_PROXY_LISTEN_X=1", "PATH=/bin", NULL},
         "log_level",
         "warn"},
        {"file", {"KONG_LOG_LEVEL=  crit  ", NULL}, "log_level", "crit"},
        {"file", {"kong_log_level=debug", NULL}, "log_level", "warn"},
        {NULL,
         {"KONG_DATABASE=off", "KONG_DECLARATIVE_CONFIG=/etc/kong/kong.yml", NULL},
         "declarative_config",
         "/etc/kong/kong.yml"},
        {NULL, {"KONG_MEM_CACHE_SIZE=64m", NULL}, "mem_cache_size", "64m"},
        {NULL, {"KONG_NGINX_HTTP_CLIENT_MAX_BODY_SIZE=1m", NULL}, "client_max_body_size", "1m"},
    };
    for (size_t i = 0; i < SL_ARRAY_SIZE(cases); i++) {
        char err[512];
        warnings_t w = {0};
        sl_conf_t *c = sl_conf_load(cases[i].file_or_null ? path : NULL, cases[i].env,
                                    collect_warning, &w, err, sizeof(err));
        SL_CHECK(c != NULL, "env case %zu loads: %s", i, err);
        if (c == NULL)
            continue;
        const char *v = sl_conf_get(c, cases[i].prop);
        SL_CHECK(v && strcmp(v, cases[i].want) == 0, "env case %zu: %s = \"%s\", got \"%s\"", i,
                 cases[i].prop, cases[i].want, v ? v : "(null)");
        SL_CHECK(w.n == 0, "env case %zu: no warnings, got %s", i, w.text);
        sl_conf_destroy(c);
    }

    /* typed fields follow the environment too */
    char *env[] = {"KONG_PROXY_LISTEN=127.0.0.1:9000 ssl http2", "SLUICE_DAEMON=off",
                   "KONG_NGINX_HTTP_CLIENT_MAX_BODY_SIZE=1m", NULL};
    char err[512];
    sl_conf_t *c = sl_conf_load(path, env, NULL, NULL, err, sizeof(err));
    SL_CHECK(c != NULL, "typed env loads: %s", err);
    if (c != NULL) {
        SL_CHECK(c->proxy_listen.n == 1 && c->proxy_listen.items[0].port == 9000 &&
                     c->proxy_listen.items[0].ssl && c->proxy_listen.items[0].http2 &&
                     strcmp(c->proxy_listen.items[0].host, "127.0.0.1") == 0,
                 "proxy_listen from env");
        SL_CHECK(c->daemon == 0, "daemon from SLUICE_DAEMON");
        SL_CHECK(c->client_max_body_size == 1024 * 1024, "max body from env");
        SL_CHECK(c->worker_processes == 2, "file value kept where env is silent");
        sl_conf_destroy(c);
    }

    /* errors name the variable and the property */
    static const struct {
        char *env[3];
        const char *want;
    } bad[] = {
        {{"KONG_WORKER_PROCESSES=x", NULL},
         "environment KONG_WORKER_PROCESSES: property 'worker_processes': expected \"auto\" or a "
         "positive integer, got \"x\""},
        {{"SLUICE_DAEMON=nope", NULL}, "environment SLUICE_DAEMON: property 'daemon': expected on"},
        {{"KONG_NGINX_DAEMON=bad", NULL}, "environment KONG_NGINX_DAEMON: property 'nginx_daemon'"},
        {{"KONG_PROXY_LISTEN=nowhere", NULL},
         "environment KONG_PROXY_LISTEN: property 'proxy_listen': invalid listen entry"},
        {{"KONG_LOG_LEVEL=debug", "SLUICE_LOG_LEVEL=loud", NULL},
         "environment SLUICE_LOG_LEVEL: property 'log_level'"},
    };
    for (size_t i = 0; i < SL_ARRAY_SIZE(bad); i++) {
        c = sl_conf_load(path, bad[i].env, NULL, NULL, err, sizeof(err));
        SL_CHECK(c == NULL, "bad env %zu fails", i);
        sl_conf_destroy(c);
        SL_CHECK(c == NULL && strncmp(err, bad[i].want, strlen(bad[i].want)) == 0,
                 "bad env %zu: want \"%s\", got \"%s\"", i, bad[i].want, err);
    }
}

static void test_listen(void)
{
    static const struct {
        const char *value;
        size_t n; /* entries expected; (size_t)-1 = error */
        const char *host;
        unsigned port;
        unsigned ssl, http2, reuseport, deferred, bind, proxy_protocol, ipv6only;
        int backlog;
        const char *err; /* substring when failing */
    } cases[] = {
        {"off", 0, NULL, 0, 0, 0, 0, 0, 0, 0, 0, 0, NULL},
        {"  off  ", 0, NULL, 0, 0, 0, 0, 0, 0, 0, 0, 0, NULL},
        {"0.0.0.0:8000", 1, "0.0.0.0", 8000, 0, 0, 0, 0, 0, 0, 0, 511, NULL},
        {"0.0.0.0:8000 reuseport backlog=16384, [::1]:8443 ssl", 2, "0.0.0.0", 8000, 0, 0, 1, 0, 0,
         0, 0, 16384, NULL},
        {"[::1]:8443 ssl http2", 1, "::1", 8443, 1, 1, 0, 0, 0, 0, 0, 511, NULL},
        {"*:80 deferred bind proxy_protocol", 1, "*", 80, 0, 0, 0, 1, 1, 1, 0, 511, NULL},
        {"[::]:65535 ipv6only=on", 1, "::", 65535, 0, 0, 0, 0, 0, 0, 1, 511, NULL},
        {"[::]:1 ipv6only=on ipv6only=off", 1, "::", 1, 0, 0, 0, 0, 0, 0, 0, 511, NULL},
        {"localhost:8000\tssl", 1, "localhost", 8000, 1, 0, 0, 0, 0, 0, 0, 511, NULL},
        {"0.0.0.0:8000 so_keepalive=on", 1, "0.0.0.0", 8000, 0, 0, 0, 0, 0, 0, 0, 511, NULL},
        {"0.0.0.0:8000 so_keepalive=30m::10", 1, "0.0.0.0", 8000, 0, 0, 0, 0, 0, 0, 0, 511, NULL},
        {"a:1, b:2, c:3", 3, "a", 1, 0, 0, 0, 0, 0, 0, 0, 511, NULL},
        {"", (size_t)-1, NULL, 0, 0, 0, 0, 0, 0, 0, 0, 0, "expected \"off\""},
        {"OFF", (size_t)-1, NULL, 0, 0, 0, 0, 0, 0, 0, 0, 0, "expected <host>:<port>"},
        {"0.0.0.0", (size_t)-1, NULL, 0, 0, 0, 0, 0, 0, 0, 0, 0, "expected <host>:<port>"},
        {"0.0.0.0:", (size_t)-1, NULL, 0, 0, 0, 0, 0, 0, 0, 0, 0, "expected a port"},
        {"0.0.0.0:65536", (size_t)-1, NULL, 0, 0, 0, 0, 0, 0, 0, 0, 0, "from 1 to 65535"},
        {"0.0.0.0:0", (size_t)-1, NULL, 0, 0, 0, 0, 0, 0, 0, 0, 0, "from 1 to 65535"},
        {"0.0.0.0:80x", (size_t)-1, NULL, 0, 0, 0, 0, 0, 0, 0, 0, 0, "expected a port"},
        {":80", (size_t)-1, NULL, 0, 0, 0, 0, 0, 0, 0, 0, 0, "invalid host"},
        {"256.1.1.1:80", (size_t)-1, NULL, 0, 0, 0, 0, 0, 0, 0, 0, 0, "invalid host"},
        {"bad/host:80", (size_t)-1, NULL, 0, 0, 0, 0, 0, 0, 0, 0, 0, "invalid host"},
        {"[::1:80", (size_t)-1, NULL, 0, 0, 0, 0, 0, 0, 0, 0, 0, "expected [<IPv6>]:<port>"},
        {"[zz]:80", (size_t)-1, NULL, 0, 0, 0, 0, 0, 0, 0, 0, 0, "invalid IPv6"},
        {"::1:80", (size_t)-1, NULL, 0, 0, 0, 0, 0, 0, 0, 0, 0, "must be in brackets"},
        {"0.0.0.0:80 SSL", (size_t)-1, NULL, 0, 0, 0, 0, 0, 0, 0, 0, 0, "unknown flag \"SSL\""},
        {"0.0.0.0:80 backlog=0", (size_t)-1, NULL, 0, 0, 0, 0, 0, 0, 0, 0, 0, "backlog="},
        {"0.0.0.0:80 backlog=x", (size_t)-1, NULL, 0, 0, 0, 0, 0, 0, 0, 0, 0, "backlog="},
        {"0.0.0.0:80 backlog=99999999999", (size_t)-1, NULL, 0, 0, 0, 0, 0, 0, 0, 0, 0, "backlog="},
        {"0.0.0.0:80 ipv6only=yes", (size_t)-1, NULL, 0, 0, 0, 0, 0, 0, 0, 0, 0, "unknown flag"},
        {"0.0.0.0:80 so_keepalive=bad", (size_t)-1, NULL, 0, 0, 0, 0, 0, 0, 0, 0, 0,
         "so_keepalive="},
        {"a:1,,b:2", (size_t)-1, NULL, 0, 0, 0, 0, 0, 0, 0, 0, 0, "empty entry"},
        {"a:1, off", (size_t)-1, NULL, 0, 0, 0, 0, 0, 0, 0, 0, 0, "expected <host>:<port>"},
        {"a:1, b:2 wat", (size_t)-1, NULL, 0, 0, 0, 0, 0, 0, 0, 0, 0,
         "invalid listen entry \"b:2 wat\": unknown flag \"wat\""},
    };
    for (size_t i = 0; i < SL_ARRAY_SIZE(cases); i++) {
        sl_listen_list_t l = {(sl_listen_t *)1, 99};
        char err[512] = "";
        int rc = sl_conf_parse_listen(cases[i].value, &l, err, sizeof(err));
        if (cases[i].n == (size_t)-1) {
            SL_CHECK(rc == SL_ERROR && l.n == 0 && l.items == NULL, "listen %zu \"%s\" fails", i,
                     cases[i].value);
            SL_CHECK(contains(err, cases[i].err), "listen %zu: \"%s\" in \"%s\"", i, cases[i].err,
                     err);
            continue;
        }
        SL_CHECK(rc == SL_OK && l.n == cases[i].n, "listen %zu \"%s\": %zu entries, got %zu (%s)",
                 i, cases[i].value, cases[i].n, l.n, err);
        if (rc == SL_OK && l.n > 0) {
            const sl_listen_t *e = &l.items[0];
            SL_CHECK(strcmp(e->host, cases[i].host) == 0 && e->port == cases[i].port,
                     "listen %zu: %s:%u, got %s:%u", i, cases[i].host, cases[i].port, e->host,
                     e->port);
            SL_CHECK(e->ssl == cases[i].ssl && e->http2 == cases[i].http2 &&
                         e->reuseport == cases[i].reuseport && e->deferred == cases[i].deferred &&
                         e->bind == cases[i].bind && e->proxy_protocol == cases[i].proxy_protocol &&
                         e->ipv6only == cases[i].ipv6only && e->backlog == cases[i].backlog,
                     "listen %zu: flags", i);
        }
        if (rc == SL_OK && l.n == 0)
            SL_CHECK(l.items == NULL, "listen %zu: off has no items", i);
        sl_conf_listen_free(&l);
        SL_CHECK(l.items == NULL && l.n == 0, "listen_free empties");
    }

    /* the second entry of a list */
    sl_listen_list_t l;
    char err[256];
    SL_CHECK(sl_conf_parse_listen("0.0.0.0:8000 reuseport, [::1]:8443 ssl backlog=10", &l, err,
                                  sizeof(err)) == SL_OK &&
                 l.n == 2,
             "two entries: %s", err);
    if (l.n == 2)
        SL_CHECK(strcmp(l.items[1].host, "::1") == 0 && l.items[1].port == 8443 && l.items[1].ssl &&
                     !l.items[1].reuseport && l.items[1].backlog == 10,
                 "second entry");
    sl_conf_listen_free(&l);
    sl_conf_listen_free(NULL);

    /* a host that does not fit sl_listen_t.host */
    char longv[400];
    memset(longv, 'a', 300);
    memcpy(longv + 300, ":80", 4);
    SL_CHECK(sl_conf_parse_listen(longv, &l, err, sizeof(err)) == SL_ERROR &&
                 contains(err, "longer than 255"),
             "long host: %s", err);
}

/* A kong.conf as Kong users write them: Kong's names, nginx_* injections, datastore and TLS
 * settings Sluice does not act on yet. It must load without a single warning. */
static void test_kong_style_file(void)
{
    const char *text =
        "# a Kong 3.x node, DB-less\n"
        "prefix = /usr/local/kong/        # working directory\n"
        "log_level = info\n"
        "proxy_access_log = logs/access.log\n"
        "proxy_stream_access_log = logs/access.log basic\n"
        "status_access_log = off\n"
        "vaults = bundled\n"
        "plugins = bundled,custom-auth\n"
        "anonymous_reports = off\n"
        "tracing_instrumentations = off\n"
        "tracing_sampling_rate = 1.0\n"
        "role = traditional\n"
        "cluster_mtls = shared\n"
        "proxy_listen = 0.0.0.0:8000 reuseport backlog=16384, 0.0.0.0:8443 http2 ssl reuseport "
        "backlog=16384\n"
        "stream_listen = off\n"
        "admin_listen = 127.0.0.1:8001 reuseport backlog=16384, 127.0.0.1:8444 http2 ssl "
        "reuseport backlog=16384\n"
        "status_listen = 0.0.0.0:8100 ssl http2\n"
        "admin_gui_listen = 0.0.0.0:8002, 0.0.0.0:8445 ssl\n"
        "nginx_user = kong kong\n"
        "nginx_worker_processes = auto\n"
        "nginx_daemon = on\n"
        "nginx_main_worker_rlimit_nofile = auto\n"
        "nginx_events_worker_connections = auto\n"
        "nginx_http_client_header_buffer_size = 1k\n"
        "nginx_http_large_client_header_buffers = 4 8k\n"
        "nginx_http_client_max_body_size = 0\n"
        "nginx_admin_client_max_body_size = 10m\n"
        "nginx_http_charset = UTF-8\n"
        "nginx_http_client_body_buffer_size = 8k\n"
        "nginx_admin_client_body_buffer_size = 10m\n"
        "nginx_http_lua_regex_match_limit = 100000\n"
        "nginx_proxy_proxy_buffer_size = 160k\n"
        "nginx_stream_lua_shared_dict = stream_cache 1m\n"
        "mem_cache_size = 128m\n"
        "ssl_cipher_suite = intermediate\n"
        "ssl_protocols = TLSv1.2 TLSv1.3\n"
        "ssl_prefer_server_ciphers = on\n"
        "ssl_session_tickets = on\n"
        "ssl_session_timeout = 1d\n"
        "ssl_session_cache_size = 10m\n"
        "headers = server_tokens, latency_tokens\n"
        "trusted_ips = 0.0.0.0/0,::/0\n"
        "real_ip_header = X-Forwarded-For\n"
        "real_ip_recursive = on\n"
        "error_default_type = application/xml\n"
        "upstream_keepalive_pool_size = 60\n"
        "upstream_keepalive_max_requests = 100\n"
        "upstream_keepalive_idle_timeout = 60\n"
        "allow_debug_header = off\n"
        "database = off\n"
        "declarative_config = /etc/kong/kong.yml\n"
        "lmdb_environment_path = dbless.lmdb\n"
        "lmdb_map_size = 2048m\n"
        "pg_host = 127.0.0.1\n"
        "pg_port = 5432\n"
        "pg_timeout = 5000\n"
        "pg_user = kong\n"
        "pg_database = kong\n"
        "pg_ssl = off\n"
        "db_update_frequency = 5\n"
        "db_update_propagation = 0\n"
        "db_cache_ttl = 0\n"
        "db_resurrect_ttl = 30\n"
        "db_cache_warmup_entities = services\n"
        "dns_resolver = 127.0.0.53, [::1]:53\n"
        "dns_hostsfile = /etc/hosts\n"
        "dns_order = LAST,SRV,A,CNAME\n"
        "dns_stale_ttl = 4\n"
        "dns_not_found_ttl = 30\n"
        "dns_error_ttl = 1\n"
        "dns_no_sync = off\n"
        "worker_consistency = eventual\n"
        "worker_state_update_frequency = 5\n"
        "router_flavor = traditional_compatible\n"
        "lua_ssl_trusted_certificate = system\n"
        "lua_ssl_verify_depth = 1\n"
        "lua_ssl_protocols = TLSv1.2 TLSv1.3\n"
        "lua_package_path = ./?.lua;./?/init.lua;\n"
        "lua_package_cpath =\n"
        "lua_socket_pool_size = 30\n"
        "lua_max_req_headers = 100\n"
        "untrusted_lua = sandbox\n"
        "untrusted_lua_sandbox_requires =\n"
        "untrusted_lua_sandbox_environment =\n";
    char err[512];
    warnings_t w = {0};
    const char *path = write_conf("kong.conf", text);
    sl_conf_t *c = sl_conf_load(path, no_env, collect_warning, &w, err, sizeof(err));
    SL_CHECK(c != NULL, "kong-style file loads: %s", err);
    if (c == NULL)
        return;
    SL_CHECK(w.n == 0, "kong-style file: no warnings, got %s", w.text);
    SL_CHECK(c->proxy_listen.n == 2 && c->proxy_listen.items[1].port == 8443 &&
                 c->proxy_listen.items[1].ssl && c->proxy_listen.items[1].http2,
             "kong-style proxy_listen");
    SL_CHECK(c->admin_listen.n == 2 && c->status_listen.n == 1, "kong-style admin/status");
    SL_CHECK(c->headers == (SL_HDR_SERVER | SL_HDR_VIA | LATENCY), "kong-style headers");
    SL_CHECK(c->upstream_keepalive_pool_size == 60 && c->lua_socket_pool_size == 30,
             "kong-style numbers");
    SL_CHECK(strcmp(c->error_default_type, "application/xml") == 0, "application/xml");
    SL_CHECK(strcmp(c->prefix, "/usr/local/kong/") == 0, "prefix %s", c->prefix);
    const char *v = sl_conf_get(c, "nginx_main_worker_rlimit_nofile");
    SL_CHECK(v && strcmp(v, "auto") == 0, "nginx_main_ key kept");
    v = sl_conf_get(c, "nginx_stream_lua_shared_dict");
    SL_CHECK(v && strcmp(v, "stream_cache 1m") == 0, "nginx_stream_ key kept");
    sl_conf_destroy(c);
}

static void test_example_file(void)
{
    static const char *const candidates[] = {"examples/sluice.conf", "../examples/sluice.conf",
                                             "../../examples/sluice.conf"};
    const char *found = NULL;
    for (size_t i = 0; i < SL_ARRAY_SIZE(candidates) && !found; i++)
        if (access(candidates[i], R_OK) == 0)
            found = candidates[i];
    SL_CHECK(found != NULL, "examples/sluice.conf reachable from the cwd");
    if (found == NULL)
        return;
    char err[512];
    warnings_t w = {0};
    sl_conf_t *c = sl_conf_load(found, no_env, collect_warning, &w, err, sizeof(err));
    SL_CHECK(c != NULL, "example loads: %s", err);
    if (c == NULL)
        return;
    SL_CHECK(w.n == 0, "example has no warnings: %s", w.text);
    SL_CHECK(c->proxy_listen.n == 1 && c->proxy_listen.items[0].port == 8000 &&
                 strcmp(c->proxy_listen.items[0].host, "0.0.0.0") == 0,
             "example proxy_listen");
    SL_CHECK(c->admin_listen.n == 1 && c->admin_listen.items[0].port == 8001 &&
                 strcmp(c->admin_listen.items[0].host, "127.0.0.1") == 0,
             "example admin_listen");
    SL_CHECK(c->daemon == 0, "example daemon off");
    SL_CHECK(c->worker_processes == 0, "example workers auto");
    SL_CHECK(c->prefix[0] == '/' && ends_with(c->prefix, "/servroot"), "prefix %s", c->prefix);
    SL_CHECK(ends_with(c->declarative_config, "/examples/kong.yml"), "declarative_config %s",
             c->declarative_config);
    SL_CHECK(strcmp(c->database, "off") == 0, "example database off");
    sl_conf_destroy(c);
}

int main(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof(tmpdir), "%s/sl_conf_test.XXXXXX", base && *base ? base : "/tmp");
    if (mkdtemp(tmpdir) == NULL) {
        perror("mkdtemp");
        return 2;
    }
    test_defaults();
    test_good_files();
    test_typed_fields();
    test_bad_files();
    test_env();
    test_kong_style_file();
    test_listen();
    test_example_file();

    static const char *const names[] = {"good.conf",   "typed.conf", "rel.conf", "bad.conf",
                                        "sluice.conf", "env.conf",   "kong.conf"};
    char path[PATH_MAX + 64];
    for (size_t i = 0; i < SL_ARRAY_SIZE(names); i++) {
        snprintf(path, sizeof(path), "%s/%s", tmpdir, names[i]);
        unlink(path);
    }
    rmdir(tmpdir);
    SL_TEST_MAIN("conf");
}
