/*
 * sl_conf.h: Sluice's kong.conf-style properties loader.
 *
 * sl_conf_load() builds one immutable sl_conf_t from three layers, each overriding the one
 * before: the built-in defaults, an optional file of `name = value` lines, and the process
 * environment (KONG_<UPPER_NAME>, then SLUICE_<UPPER_NAME>, which wins over KONG_).
 *
 * File format (as Kong's conf_loader): one `name = value` per line; '#' starts a comment
 * unless written '\#'; blank lines are ignored; whitespace around name and value is trimmed;
 * names are case-sensitive. A property set twice: the last wins, with a warning. An unknown
 * property: a warning naming file:line, the value is still kept in props. Any nginx_* key is
 * accepted silently and kept in props (and may come from KONG_NGINX_* / SLUICE_NGINX_*).
 *
 * Value types: booleans on/off/true/false (any case); sizes N, Nk, Nm, Ng in bytes;
 * durations nginx style (500ms, 60s, 1m, 1h, 1d, or combined as 1m30s; a plain number is
 * seconds and may have up to 3 decimals) stored in milliseconds; listen lists (below).
 *
 * Errors are fatal and name where the value came from and the property, e.g.
 *   sluice.conf:12: property 'worker_processes': expected "auto" or a positive integer, got "x"
 *   environment KONG_WORKER_PROCESSES: property 'worker_processes': ...
 *
 * Ownership: sl_conf_load() returns a heap object owned by the caller; every string and
 * array inside it belongs to it and lives until sl_conf_destroy(). String fields are never
 * NULL (an unset string property is ""), except conf_path, which is NULL when no file was
 * read. Nothing here keeps global state; sl_conf_load reads environ when envp is NULL.
 */
#ifndef SL_CONF_H
#define SL_CONF_H

#include "sl_core.h"

/* One entry of a listen list: "<host>:<port> [flags]". */
typedef struct {
    char host[256]; /* "0.0.0.0", "127.0.0.1", "::1" (brackets stripped), "*", or a name */
    unsigned port;  /* 1..65535 */
    unsigned ssl : 1, http2 : 1, reuseport : 1, deferred : 1, bind : 1, proxy_protocol : 1,
        ipv6only : 1;
    int backlog; /* 511 unless backlog=N */
} sl_listen_t;

/* A heap array of listen entries, owned by whoever holds the list; "off" gives n = 0. */
typedef struct {
    sl_listen_t *items;
    size_t n;
} sl_listen_list_t;

/* One final property as strings, for kong.configuration and the Admin API's `GET /`. */
typedef struct {
    char *name;
    char *value;
} sl_conf_prop_t;

/* Bits of sl_conf_t.headers / headers_upstream. */
enum {
    SL_HDR_SERVER = 1,
    SL_HDR_VIA = 2,
    SL_HDR_PROXY_LATENCY = 4,
    SL_HDR_UPSTREAM_LATENCY = 8,
    SL_HDR_RESPONSE_LATENCY = 16,
    SL_HDR_ADMIN_LATENCY = 32,
    SL_HDR_UPSTREAM_STATUS = 64,
    SL_HDR_REQUEST_ID = 128
};

typedef struct sl_conf_s {
    char *conf_path;          /* the file it came from, or NULL for defaults + environment only */
    char *prefix;             /* default "/usr/local/sluice/"; made absolute against the cwd */
    char *database;           /* "off" (default), "embedded", "postgres" */
    char *declarative_config; /* "" or a path, made absolute against the cwd */
    char *declarative_config_string; /* "" or YAML/JSON text */
    char *plugins;                   /* "bundled", or a comma list; "off" */
    sl_listen_list_t proxy_listen;   /* default "0.0.0.0:8000 reuseport backlog=16384" */
    sl_listen_list_t admin_listen;   /* default "127.0.0.1:8001 reuseport backlog=16384" */
    sl_listen_list_t status_listen;  /* default off */
    int worker_processes;            /* 0 = auto; alias nginx_worker_processes, nginx_main_... */
    int daemon;                      /* alias nginx_daemon, nginx_main_daemon; default on */
    char *log_level; /* debug info notice warn error crit alert emerg; default notice */
    /* "off" or a path, relative ones to prefix (see sl_conf_prefixed) */
    char *proxy_access_log, *proxy_error_log, *admin_access_log, *admin_error_log;
    unsigned headers;          /* SL_HDR_* mask; default server_tokens, latency_tokens, id */
    unsigned headers_upstream; /* SL_HDR_REQUEST_ID (default) or 0 */
    char *trusted_ips;         /* "" or a comma list of IPs/CIDRs (validated) or "unix:" */
    char *real_ip_header;      /* default "X-Real-IP" */
    int real_ip_recursive;     /* default off */
    /* text/plain (default), application/json, text/html, text/xml, application/xml */
    char *error_default_type;
    int upstream_keepalive_pool_size;           /* 512; 0 disables */
    int upstream_keepalive_max_requests;        /* 10000; 0 = unlimited */
    int64_t upstream_keepalive_idle_timeout_ms; /* 60s; 0 = no timeout */
    int64_t client_max_body_size;      /* alias nginx_http_client_max_body_size; 0 = unlimited */
    int64_t client_body_buffer_size;   /* 8k; alias nginx_http_client_body_buffer_size */
    int64_t client_header_buffer_size; /* 1k (accepted); alias nginx_http_... */
    /* large_client_header_buffers / nginx_http_large_client_header_buffers "4 8k" */
    int large_header_buffers;
    int64_t large_header_buffer_size;
    int client_max_headers; /* Sluice's own; default 100 */
    /* 60s each; aliases nginx_http_client_header_timeout and so on */
    int64_t client_header_timeout_ms, client_body_timeout_ms, send_timeout_ms;
    int64_t lua_watchdog_timeout_ms; /* 0 = off; default 5s */
    int64_t keepalive_timeout_ms; /* 75s; 0 disables; alias nginx_http_keepalive_timeout */
    int keepalive_requests;       /* 10000; alias nginx_http_keepalive_requests */
    char *lua_package_path, *lua_package_cpath;
    char *lua_ssl_trusted_certificate;  /* default "system" */
    int lua_ssl_verify_depth;           /* 1 */
    int lua_socket_pool_size;           /* 256 */
    char *dns_resolver, *dns_hostsfile; /* "", "/etc/hosts" */
    char *untrusted_lua;                /* off | sandbox (default) | on */
    char *untrusted_lua_sandbox_requires, *untrusted_lua_sandbox_environment;
    /* TLS listeners (net/sl_listener.h). Cert and key: "" or comma lists of PEM paths,
     * relative ones to the cwd at start; "" = the generated default under <prefix>/ssl/. */
    char *ssl_cert, *ssl_cert_key;
    char *admin_ssl_cert, *admin_ssl_cert_key;
    char *ssl_cipher_suite;            /* modern | intermediate (default) | old | custom | fips */
    char *ssl_ciphers;                 /* OpenSSL cipher string, used with custom */
    char *ssl_protocols;               /* "TLSv1.2 TLSv1.3", used with custom */
    int ssl_prefer_server_ciphers;     /* on */
    int ssl_session_tickets;           /* on */
    int64_t ssl_session_timeout_ms;    /* 1d */
    int64_t ssl_session_cache_size;    /* 10m (bytes; about 4000 sessions per megabyte) */
    char *node_id; /* "" or a UUID */
    /* Every property (defaults, file, environment; aliases too, with their property's
     * value) as final strings, sorted by name. Owned by the sl_conf_t. */
    size_t nprops;
    sl_conf_prop_t *props;
} sl_conf_t;

/* Receives each warning as one NUL-terminated line, valid only during the call. */
typedef void (*sl_conf_warn_cb)(void *ud, const char *msg);

/*
 * Loads defaults, then path (NULL: defaults + environment only), then the environment
 * (envp is a NULL-terminated "NAME=value" array; NULL means environ). Returns a heap
 * sl_conf_t owned by the caller (free with sl_conf_destroy) or NULL with a message in err
 * (always NUL-terminated when errlen > 0). Warnings go to warn (may be NULL).
 */
sl_conf_t *sl_conf_load(const char *path, char *const *envp, sl_conf_warn_cb warn, void *ud,
                        char *err, size_t errlen);

/* Frees c and everything it owns; NULL is fine. */
void sl_conf_destroy(sl_conf_t *c);

/*
 * Parses a listen list: "off", or comma-separated "<host>:<port> [flags]" entries where host
 * is IPv4, [IPv6], "*" or a name and flags are ssl http2 proxy_protocol deferred bind
 * reuseport backlog=N ipv6only=on|off so_keepalive=on|off|[idle]:[intvl]:[cnt] (so_keepalive
 * is validated, not stored). On SL_OK *out holds a heap array the caller frees with
 * sl_conf_listen_free; on SL_ERROR *out is empty and err says why.
 */
int sl_conf_parse_listen(const char *value, sl_listen_list_t *out, char *err, size_t errlen);

/* Frees l->items and empties l; NULL is fine. */
void sl_conf_listen_free(sl_listen_list_t *l);

/*
 * Resolves path against c->prefix: "logs/error.log" -> "<prefix>/logs/error.log"; absolute
 * paths, "off" and "" come back unchanged. Returns a heap string the caller frees, or NULL
 * when out of memory or path is NULL.
 */
char *sl_conf_prefixed(const sl_conf_t *c, const char *path);

/* The final string of a property, an alias, or a kept nginx_ or unknown key; NULL if none.
 * Borrowed from c; valid until sl_conf_destroy. */
const char *sl_conf_get(const sl_conf_t *c, const char *name);

#endif
