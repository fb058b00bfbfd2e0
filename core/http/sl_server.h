/*
 * sl_server.h: the worker's HTTP/1.1 server and reverse proxy.
 *
 * One sl_conn_t per client connection (a bufferevent), at most one sl_req_t in flight on it
 * (pipelined requests wait in the input buffer), and for a proxied request one sl_proxy_t
 * that owns an upstream connection (sl_upconn_t) taken from the worker's keepalive pool.
 * Ownership: the worker owns its connections; a connection owns its request; a request owns
 * its proxy; a proxy owns its upstream connection until it hands it back to the pool.
 * Everything here runs on the worker's single event_base: no locks.
 */
#ifndef SL_SERVER_H
#define SL_SERVER_H

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <lua.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include "conf/sl_conf.h"
#include "conf/sl_decl.h"
#include "http/sl_http_parse.h"
#include "http/sl_hdr_list.h"
#include "http/sl_http_request.h"
#include "http/sl_router.h"
#include "net/sl_cidr.h"
#include "sl_core.h"

typedef struct sl_worker_s sl_worker_t;
typedef struct sl_conn_s sl_conn_t;
typedef struct sl_req_s sl_req_t;
typedef struct sl_proxy_s sl_proxy_t;
typedef struct sl_upconn_s sl_upconn_t;

/* An idle or busy connection to an upstream. */
struct sl_upconn_s {
    sl_worker_t *w;
    struct bufferevent *bev;
    char *key;             /* "host:port|tls|sni|verify": what may reuse it */
    unsigned requests;     /* requests sent on it */
    uint64_t idle_since_ms;
    int read_timeout_ms;   /* the timeouts the bufferevent has now (-1: none) */
    int write_timeout_ms;
    struct event *idle_timer;
    TAILQ_ENTRY(sl_upconn_s) link;
};
TAILQ_HEAD(sl_upconn_list_s, sl_upconn_s);

typedef struct {
    struct sl_upconn_list_s idle;
    size_t nidle;
} sl_upstream_pool_t;

typedef struct {
    int fd;                /* -1 when off */
    char *buf;
    size_t len, cap;
    struct event *flush_timer;
} sl_access_log_t;

typedef struct {
    sl_worker_t *w;
    int fd;
    int ssl;
    int admin;
    unsigned port;
    struct evconnlistener *ev;
    SSL_CTX *ssl_ctx;      /* ssl listeners: borrowed from sl_listener_tls_current() */
} sl_listener_t;

struct sl_worker_s {
    struct event_base *base;
    struct evdns_base *dns;
    sl_conf_t *conf;
    sl_decl_t *decl;
    lua_State *L;
    SSL_CTX *up_ssl;
    sl_http_limits_t limits;
    size_t read_hwm;
    int index;
    int quitting;
    sl_listener_t *listeners;
    size_t nlisteners;
    TAILQ_HEAD(, sl_conn_s) conns;
    size_t nconns;
    sl_upstream_pool_t pool;
    sl_access_log_t alog;
    sl_cidr_t *trusted;    /* trusted_ips */
    size_t ntrusted;
    sl_req_t *free_reqs;   /* finished requests kept with their buffers, for reuse */
    size_t nfree_reqs;
    sl_proxy_t *free_proxies;
    size_t nfree_proxies;
    int lua_active;        /* plugins are configured: requests go through runtime.lua */
    int lua_fn_refs[8];    /* registry refs: runtime access, header_filter, body_filter, log, done, admin */
    uint64_t next_serial;
    uint64_t total_requests;
    struct event *quit_timer;
};

enum {
    SL_CONN_HEAD = 0,   /* waiting for (more of) a request head */
    SL_CONN_ACTIVE,     /* a request is being handled */
    SL_CONN_LINGER,     /* response sent, discarding input before close */
    SL_CONN_TUNNEL      /* 101 Switching Protocols: bytes flow both ways */
};

struct sl_conn_s {
    sl_worker_t *w;
    struct bufferevent *bev;
    int state;
    unsigned requests;
    size_t last_len;
    int close_after;       /* close once the current response is flushed */
    int head_started;      /* bytes of a head have arrived (header timeout runs) */
    struct event *timer;   /* header / keepalive / linger deadline */
    sl_req_t *req;
    char peer_ip[64];
    unsigned peer_port;
    unsigned local_port;
    int ssl;
    int admin;             /* accepted on admin_listen */
    int trusted;           /* the peer is in trusted_ips */
    TAILQ_ENTRY(sl_conn_s) link;
    SSL *tls;              /* ssl listeners: owned by bev; NULL on plain connections */
    int tls_done;          /* the handshake completed */
    int tls_cert_phase;    /* the certificate phase ran for this connection */
};

enum { SL_BODY_NONE = 0, SL_BODY_LENGTH, SL_BODY_CHUNKED };

struct sl_req_s {
    sl_conn_t *c;
    sl_req_t *next_free;   /* link in the worker's free list */
    char *head;            /* owned copy of the head bytes; every view points into it */
    size_t head_len;
    size_t head_cap;
    size_t norm_cap;
    sl_http_req_head_t h;
    sl_header_t *headers;  /* owned, limits.max_headers entries */
    sl_http_request_info_t info;
    uint64_t start_us;
    char id[33];
    char client_ip[64];    /* the peer, or the real_ip_header address from a trusted peer */
    uint64_t serial;       /* unique per worker, the key of the request's Lua state */

    /* Lua (sl_lua_runtime.h); all of it reset when the request is freed */
    unsigned lua_flags;
    int lua_co_ref;        /* the access coroutine, anchored in the registry */
    lua_State *lua_co;
    struct event *lua_timer;   /* ngx.sleep */
    void *lua_wait_obj;        /* what the coroutine waits on (a cosocket), see sl_lua_wait */
    void (*lua_wait_cancel)(void *obj);
    sl_hdr_list_t up_set;      /* kong.service.request header edits to send */
    sl_hdr_list_t up_removed;  /* names whose client values are not sent */
    char *up_path;             /* kong.service.request.set_path (owned) */
    char *up_query;            /* set_raw_query / set_query (owned), with up_query_set */
    int up_query_set;
    char *up_method;
    int up_connect_timeout, up_write_timeout, up_read_timeout, up_retries; /* -1 unset */
    sl_hdr_list_t resp_headers;  /* the response head while plugins may edit it */
    int resp_headers_ready;
    sl_hdr_list_t resp_pre_set;     /* kong.response header edits made before the head */
    sl_hdr_list_t resp_pre_removed; /* exists: names those edits replace or clear */
    char *exit_body;           /* kong.response.exit body (owned) */
    size_t exit_body_len;
    struct evbuffer *body_buf; /* request body read for Lua (decoded), sent before the rest */
    size_t body_limit;         /* how much read_body may buffer */
    int body_wait;             /* the access coroutine waits for more body */
    int body_over;             /* the body did not fit body_limit */
    char *new_body;            /* kong.service.request.set_raw_body (owned), with new_body_set */
    size_t new_body_len;
    int new_body_set;

    /* body from the client */
    int body_kind;
    int64_t body_remaining;
    uint64_t body_received;
    sl_http_chunked_t chunked;
    int body_done;
    int sent_continue;

    /* routing */
    char *norm;            /* router scratch: the normalized path */
    sl_router_match_t match;
    sl_decl_t *decl;       /* the generation it was routed with (one reference held) */
    const sl_route_t *route;
    const sl_service_t *service;

    /* response */
    int status;
    uint64_t bytes_sent;   /* body bytes sent to the client */
    int response_started;  /* head handed to the client */
    int response_done;     /* the whole response is in the output buffer */
    int from_upstream;     /* the response head came from the upstream */
    int keepalive;
    uint64_t upstream_latency_ms, proxy_latency_ms;
    sl_proxy_t *proxy;
};

/* sl_http_server.c */
void sl_server_accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                         int socklen, void *arg);
void sl_conn_close(sl_conn_t *c);
void sl_server_close_idle(sl_worker_t *w);
/* The per-handshake hook of TLS listeners (sl_listener_tls_hook_cb): runs the plugins'
 * certificate phase for the connection the SSL belongs to, once per connection. */
void sl_server_tls_hook(SSL *ssl, const char *sni, void *arg);
/* The SNI the client sent on c, or NULL (plain connections, no SNI). */
const char *sl_conn_sni(const sl_conn_t *c);
/* The request's response is entirely in the client's output buffer (or failed). */
void sl_req_response_done(sl_req_t *r);
/* Reads request body bytes from the client input into dst (NULL: discard), re-encoding as
 * chunked when chunked_out. Returns SL_OK (more to come), SL_DONE, or SL_ERROR (*status). */
int sl_req_body_pump(sl_req_t *r, struct evbuffer *dst, int chunked_out, size_t max_out,
                     int *status);
/* Sends a Kong-style error (format from Accept / Content-Type / error_default_type unless
 * json_default) and closes the connection afterwards when close is set. */
void sl_req_send_error(sl_req_t *r, int status, const char *message, int json_default,
                       int close_conn);
/* Sends a response Sluice produces itself (errors, kong.response.exit) through the
 * plugins' header_filter and body_filter. ctype may be NULL. */
void sl_req_send_generated(sl_req_t *r, int status, const char *ctype, const char *body,
                           size_t len, int close_conn);
/* Applies the kong.response edits made before the head to r->resp_headers. */
void sl_req_apply_resp_pre(sl_req_t *r);
/* The first value of a request header (case-insensitive name), or NULL. */
const sl_str_t *sl_req_header(const sl_req_t *r, sl_str_t name);
/* Arms (on) or clears the client's client_body_timeout; send_timeout always applies. */
void sl_req_set_body_timeout(sl_req_t *r, int on);
void sl_access_log_write(sl_worker_t *w, sl_req_t *r);
void sl_access_log_flush(sl_worker_t *w);
uint64_t sl_now_us(void);
/* Writes what the bufferevent's output holds right away (plain sockets only). When all of
 * it went out, EV_WRITE is disabled so libevent's changelist cancels the add/delete pair it
 * would otherwise make per response; else EV_WRITE stays on and the bufferevent writes the
 * rest. Code that queues output without calling this must enable EV_WRITE itself. */
void sl_bev_write_now(struct bufferevent *bev);
/* A head being written: bytes gather in a stack buffer and reach the evbuffer in one add
 * (or a few, for very large heads), instead of dozens of small evbuffer_add calls. */
typedef struct {
    struct evbuffer *eb;
    size_t len;
    char buf[4096];
} sl_hbuf_t;

static inline void sl_hbuf_flush(sl_hbuf_t *h)
{
    if (h->len > 0)
        evbuffer_add(h->eb, h->buf, h->len);
    h->len = 0;
}

static inline void sl_hbuf_add(sl_hbuf_t *h, const void *d, size_t n)
{
    if (n == 0)
        return; /* d may be NULL for an empty view */
    if (h->len + n > sizeof(h->buf)) {
        sl_hbuf_flush(h);
        if (n > sizeof(h->buf)) {
            evbuffer_add(h->eb, d, n);
            return;
        }
    }
    memcpy(h->buf + h->len, d, n);
    h->len += n;
}

void sl_hbuf_printf(sl_hbuf_t *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sl_hbuf_header_u64(sl_hbuf_t *h, const char *name, size_t name_len, uint64_t v);

#define SL_HB_LIT(h, lit) sl_hbuf_add((h), (lit), sizeof(lit) - 1)
#define SL_HB_STR(h, s) sl_hbuf_add((h), (s).data, (s).len)
#define SL_HB_HEADER_U64(h, lit, v) sl_hbuf_header_u64((h), (lit), sizeof(lit) - 1, (v))

#define SL_EVB_LIT(b, lit) evbuffer_add((b), (lit), sizeof(lit) - 1)
#define SL_EVB_STR(b, s) evbuffer_add((b), (s).data, (s).len)

const char *sl_http_date(void);
const char *sl_status_reason(int status);

/* sl_proxy.c */
void sl_proxy_start(sl_req_t *r);
void sl_proxy_client_readable(sl_req_t *r);  /* more request body arrived */
void sl_proxy_client_drained(sl_req_t *r);   /* client output fell under the low mark */
void sl_proxy_free(sl_proxy_t *p);
void sl_proxy_cache_clear(sl_worker_t *w);
/* The response phase of a buffered response ended (failed: a plugin raised): sends what the
 * plugins left (or kong.response.exit's answer, or 500), through header_filter/body_filter.
 * Called by sl_lua_runtime.c; the proxy and maybe the request are gone afterwards. */
void sl_proxy_buffered_done(sl_req_t *r, int failed);
void sl_req_cache_clear(sl_worker_t *w);

/* sl_upstream.c */
typedef void (*sl_upstream_connect_cb)(void *arg, sl_upconn_t *uc, int error, const char *msg);
/* Returns a pooled connection at once (cb is not called, *out set, returns SL_OK) or starts
 * connecting (returns SL_AGAIN; cb runs later, exactly once, unless sl_upstream_cancel). */
int sl_upstream_get(sl_worker_t *w, const sl_service_t *s, const char *sni, int timeout_ms,
                    sl_upstream_connect_cb cb, void *arg, sl_upconn_t **out, void **handle);
void sl_upstream_cancel(void *handle);
void sl_upstream_release(sl_worker_t *w, sl_upconn_t *uc, int reusable);
void sl_upstream_pool_close_all(sl_worker_t *w);
int sl_upstream_ssl_init(sl_worker_t *w, char *err, size_t errlen);

#define SL_CLIENT_OUT_HIGH (256 * 1024)
#define SL_CLIENT_OUT_LOW (64 * 1024)
#define SL_UPSTREAM_IN_HIGH (256 * 1024)
#define SL_UPSTREAM_HEAD_MAX (64 * 1024)

/* Publishes this worker's connection states to its sl_stats slot. */
void sl_server_publish_stats(sl_worker_t *w);

#endif
