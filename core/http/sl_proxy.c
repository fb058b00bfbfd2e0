/*
 * sl_proxy.c: one proxied request: the upstream request head, streaming the request body up,
 * the response head back (with Kong's headers), streaming the response body down with
 * backpressure, retries, timeouts and the 502/503/504 answers.
 *
 * Buffered proxying (Kong's `response` phase, kong.service.request.enable_buffering): the
 * whole upstream response is read first (P_BUFFER, at most SL_BUFFERED_BODY_MAX bytes of
 * body, else 502), the upstream connection goes back to the pool, the plugins' response
 * handlers run (P_RESPONSE, a coroutine that may yield), then header_filter, body_filter
 * once with the whole body, and one write with a Content-Length.
 */
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/sl_log.h"
#include "http/sl_server.h"
#include "http/sl_upstream.h"
#include "lua/sl_lua_runtime.h"

#define REPLAY_MAX (64 * 1024)
#define RESP_MAX_HEADERS 128
/* the largest upstream body buffered proxying holds in memory (larger: 502) */
#define SL_BUFFERED_BODY_MAX ((size_t)64 * 1024 * 1024)

enum { P_CONNECTING = 0, P_HEAD, P_BODY, P_DONE, P_TUNNEL, P_BUFFER, P_RESPONSE };

struct sl_proxy_s {
    sl_req_t *r;
    sl_worker_t *w;
    sl_upconn_t *uc;
    void *connecting;
    int state;
    int tries_left;
    int stale_retry_used;
    int reused;
    int idempotent;
    int sent;                   /* bytes of the request went out on this try */
    int up_eof;                 /* the upstream closed (or failed): no more input */
    char sni[256];              /* TLS server name when it is not the service host */
    int up_error;               /* ... and it was an error, not a clean close */
    sl_proxy_t *next_free;      /* link in the worker's free list */
    char *uri;                  /* upstream path (no query), built once; owned */
    size_t uri_len, uri_cap;
    struct evbuffer *replay;    /* request body bytes sent so far, while <= REPLAY_MAX */
    int replayable;
    int up_chunked;             /* request body goes up chunked */
    int resp_bytes;             /* any response byte seen on this try */
    sl_http_resp_head_t rh;
    sl_header_t *rhdrs;         /* RESP_MAX_HEADERS, owned */
    sl_http_response_info_t ri;
    int out_chunked;            /* response body re-encoded chunked to the client */
    int out_close;              /* response body ends with the client connection */
    int64_t remaining;
    sl_http_chunked_t rchunk;
    uint64_t t_first_try_us;
    uint64_t t_connected_us;
    int buffering;              /* buffered proxying: no byte goes out before the response phase */
    int up_status;              /* the upstream's status (buffered) */
    sl_hdr_list_t bhdrs;        /* the upstream's headers, copied (buffered; owned) */
    struct evbuffer *bbody;     /* the upstream's body (buffered; owned) */
};

static void up_read_cb(struct bufferevent *bev, void *arg);
static int buffer_head(sl_proxy_t *p, size_t head_len);
static int pump_buffer(sl_proxy_t *p);
static void up_write_cb(struct bufferevent *bev, void *arg);
static void up_event_cb(struct bufferevent *bev, short what, void *arg);
static void try_connect(sl_proxy_t *p);

/* Is name one of the comma-separated tokens of the Connection header? */
static int in_connection_tokens(const sl_str_t *conn, sl_str_t name)
{
    if (conn == NULL)
        return 0;
    const char *s = conn->data, *end = conn->data + conn->len;
    while (s < end) {
        while (s < end && (*s == ' ' || *s == '\t' || *s == ','))
            s++;
        const char *t = s;
        while (t < end && *t != ',')
            t++;
        const char *e = t;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if (e > s && sl_str_case_eq((sl_str_t){s, (size_t)(e - s)}, name))
            return 1;
        s = t;
    }
    return 0;
}

static int is_hop_header(sl_str_t n)
{
    static const sl_str_t hop[] = {
        SL_STR("connection"),        SL_STR("keep-alive"), SL_STR("proxy-connection"),
        SL_STR("te"),                SL_STR("transfer-encoding"), SL_STR("content-length"),
        SL_STR("upgrade"),           SL_STR("trailer"),    SL_STR("expect"),
        SL_STR("host"),              SL_STR("x-real-ip"),  SL_STR("x-forwarded-for"),
        SL_STR("x-forwarded-proto"), SL_STR("x-forwarded-host"), SL_STR("x-forwarded-port"),
        SL_STR("x-forwarded-path"),  SL_STR("x-forwarded-prefix"), SL_STR("via"),
        SL_STR("x-kong-request-id"),
    };
    for (size_t i = 0; i < SL_ARRAY_SIZE(hop); i++) {
        if (sl_str_case_eq(n, hop[i]))
            return 1;
    }
    return 0;
}

/* The upstream path for this request, computed once (a retry reuses it). */
static int build_uri(sl_proxy_t *p)
{
    sl_req_t *r = p->r;
    const sl_service_t *s = r->service;
    size_t cap = r->h.path.len * 3 + (s->path ? strlen(s->path) : 0) + 16;
    if (p->uri_cap < cap) {
        free(p->uri);
        p->uri_cap = cap < 256 ? 256 : cap;
        p->uri = malloc(p->uri_cap);
        if (p->uri == NULL)
            abort();
    }
    sl_str_t spath = s->path ? (sl_str_t){s->path, strlen(s->path)} : SL_NULL_STR;
    return sl_router_upstream_path(&r->match, spath, p->uri, p->uri_cap, &p->uri_len);
}

/* A header kong.service.request replaced or cleared: the computed one is not sent. */
#define EDITED(r, lit) ((r)->up_removed.n && sl_hdr_list_find(&(r)->up_removed, SL_STR(lit)))

/* Writes the upstream request head into b (the upstream connection's output). */
static void build_head(sl_proxy_t *p, struct evbuffer *dst)
{
    sl_hbuf_t hb;
    hb.eb = dst;
    hb.len = 0;
    sl_hbuf_t *b = &hb;
    sl_req_t *r = p->r;
    sl_conn_t *c = r->c;
    const sl_service_t *s = r->service;
    unsigned hdrs = p->w->conf->headers;

    if (r->up_method)
        sl_hbuf_add(b, r->up_method, strlen(r->up_method));
    else
        SL_HB_STR(b, r->h.method);
    SL_HB_LIT(b, " ");
    if (r->up_path)
        sl_hbuf_add(b, r->up_path, strlen(r->up_path));
    else
        sl_hbuf_add(b, p->uri, p->uri_len);
    if (r->up_query_set) {
        if (r->up_query[0] != '\0') {
            SL_HB_LIT(b, "?");
            sl_hbuf_add(b, r->up_query, strlen(r->up_query));
        }
    } else {
        /* keep the query exactly as the client sent it */
        const char *q = memchr(r->h.target.data, '?', r->h.target.len);
        if (q != NULL)
            sl_hbuf_add(b, q, (size_t)(r->h.target.data + r->h.target.len - q));
    }
    sl_hbuf_add(b, " HTTP/1.1\r\n", 11);

    const sl_str_t *host = sl_req_header(r, SL_STR("host"));
    const sl_hdr_t *host_edit = sl_hdr_list_find(&r->up_set, SL_STR("host"));
    if (host_edit != NULL) {
        SL_HB_LIT(b, "Host: ");
        sl_hbuf_add(b, host_edit->value, host_edit->value_len);
        SL_HB_LIT(b, "\r\n");
    } else if (r->route->preserve_host && (r->info.host.len || host)) {
        sl_str_t h = r->info.host.len ? r->info.host : *host;
        SL_HB_LIT(b, "Host: ");
        SL_HB_STR(b, h);
        SL_HB_LIT(b, "\r\n");
    } else {
        SL_HB_LIT(b, "Host: ");
        sl_hbuf_add(b, s->host_header, strlen(s->host_header));
        SL_HB_LIT(b, "\r\n");
    }
    const sl_str_t *conn = sl_req_header(r, SL_STR("connection"));
    const sl_str_t *xff = NULL, *via = NULL;
    for (size_t i = 0; i < r->h.num_headers; i++) {
        sl_header_t *h = &r->headers[i];
        if (sl_str_case_eq(h->name, SL_STR("x-forwarded-for"))) {
            xff = &h->value;
            continue;
        }
        if (sl_str_case_eq(h->name, SL_STR("via"))) {
            via = &h->value;
            continue;
        }
        if (is_hop_header(h->name) || in_connection_tokens(conn, h->name) ||
            (r->up_removed.n && sl_hdr_list_find(&r->up_removed, h->name)))
            continue;
        sl_hbuf_add(b, h->name.data, h->name.len);
        sl_hbuf_add(b, ": ", 2);
        sl_hbuf_add(b, h->value.data, h->value.len);
        sl_hbuf_add(b, "\r\n", 2);
    }
    const sl_str_t *upgrade = sl_req_header(r, SL_STR("upgrade"));
    if (r->info.upgrade && upgrade) {
        sl_hbuf_printf(b, "Connection: upgrade\r\nUpgrade: %.*s\r\n", (int)upgrade->len,
                            upgrade->data);
    } else {
        sl_hbuf_add(b, "Connection: keep-alive\r\n", 24);
    }
    size_t iplen = strlen(r->client_ip);
    if (!EDITED(r, "x-real-ip")) {
        SL_HB_LIT(b, "X-Real-IP: ");
        sl_hbuf_add(b, r->client_ip, iplen);
        SL_HB_LIT(b, "\r\n");
    }
    if (!EDITED(r, "x-forwarded-for")) {
        SL_HB_LIT(b, "X-Forwarded-For: ");
        if (xff) {
            SL_HB_STR(b, *xff);
            SL_HB_LIT(b, ", ");
        }
        sl_hbuf_add(b, r->client_ip, iplen);
        SL_HB_LIT(b, "\r\n");
    }
    /* a trusted peer's own X-Forwarded-* values are kept, as Kong does */
    const sl_str_t *fwd;
    if (EDITED(r, "x-forwarded-proto")) {
        /* set or cleared by a plugin */
    } else if (c->trusted && (fwd = sl_req_header(r, SL_STR("x-forwarded-proto"))) != NULL) {
        SL_HB_LIT(b, "X-Forwarded-Proto: ");
        SL_HB_STR(b, *fwd);
        SL_HB_LIT(b, "\r\n");
    } else if (c->ssl) {
        SL_HB_LIT(b, "X-Forwarded-Proto: https\r\n");
    } else {
        SL_HB_LIT(b, "X-Forwarded-Proto: http\r\n");
    }
    sl_str_t fh = r->info.host.len ? r->info.host : (host ? *host : SL_NULL_STR);
    size_t fhl = fh.len;
    if (fhl > 0 && fh.data[0] != '[') {
        const char *colon = memchr(fh.data, ':', fh.len);
        if (colon)
            fhl = (size_t)(colon - fh.data);
    }
    if (c->trusted && (fwd = sl_req_header(r, SL_STR("x-forwarded-host"))) != NULL) {
        fh = *fwd;
        fhl = fh.len;
    }
    if (!EDITED(r, "x-forwarded-host")) {
        SL_HB_LIT(b, "X-Forwarded-Host: ");
        sl_hbuf_add(b, fh.data, fhl);
        SL_HB_LIT(b, "\r\n");
    }
    if (EDITED(r, "x-forwarded-port")) {
        /* set or cleared by a plugin */
    } else if (c->trusted && (fwd = sl_req_header(r, SL_STR("x-forwarded-port"))) != NULL) {
        SL_HB_LIT(b, "X-Forwarded-Port: ");
        SL_HB_STR(b, *fwd);
        SL_HB_LIT(b, "\r\n");
    } else {
        SL_HB_HEADER_U64(b, "X-Forwarded-Port: ", c->local_port);
    }
    fwd = c->trusted ? sl_req_header(r, SL_STR("x-forwarded-path")) : NULL;
    if (!EDITED(r, "x-forwarded-path")) {
        SL_HB_LIT(b, "X-Forwarded-Path: ");
        SL_HB_STR(b, fwd ? *fwd : r->h.path);
        SL_HB_LIT(b, "\r\n");
    }
    fwd = c->trusted ? sl_req_header(r, SL_STR("x-forwarded-prefix")) : NULL;
    if (EDITED(r, "x-forwarded-prefix")) {
        /* set or cleared by a plugin */
    } else if (fwd != NULL) {
        SL_HB_LIT(b, "X-Forwarded-Prefix: ");
        SL_HB_STR(b, *fwd);
        SL_HB_LIT(b, "\r\n");
    } else if (r->match.strip_path && r->match.match_len > 1 && r->match.path.data) {
        SL_HB_LIT(b, "X-Forwarded-Prefix: ");
        sl_hbuf_add(b, r->match.path.data, r->match.match_len);
        SL_HB_LIT(b, "\r\n");
    }
    if (EDITED(r, "via")) {
        /* set or cleared by a plugin */
    } else if (hdrs & SL_HDR_VIA) {
        if (via)
            sl_hbuf_printf(b, "Via: %.*s, 1.1 sluice/%s\r\n", (int)via->len, via->data,
                                SLUICE_VERSION);
        else
            SL_HB_LIT(b, "Via: 1.1 sluice/" SLUICE_VERSION "\r\n");
    } else if (via) {
        sl_hbuf_printf(b, "Via: %.*s\r\n", (int)via->len, via->data);
    }
    if ((p->w->conf->headers_upstream & SL_HDR_REQUEST_ID) && !EDITED(r, "x-kong-request-id")) {
        SL_HB_LIT(b, "X-Kong-Request-Id: ");
        sl_hbuf_add(b, r->id, 32);
        SL_HB_LIT(b, "\r\n");
    }
    for (size_t i = 0; i < r->up_set.n; i++) {
        sl_hdr_t *e = &r->up_set.items[i];
        if (sl_str_case_eq((sl_str_t){e->name, e->name_len}, SL_STR("host")))
            continue;
        sl_hbuf_add(b, e->name, e->name_len);
        SL_HB_LIT(b, ": ");
        sl_hbuf_add(b, e->value, e->value_len);
        SL_HB_LIT(b, "\r\n");
    }
    if (r->new_body_set) {
        /* kong.service.request.set_raw_body: the client's body is dropped as it comes */
        SL_HB_HEADER_U64(b, "Content-Length: ", (uint64_t)r->new_body_len);
    } else if (r->body_buf != NULL && r->body_done) {
        /* read whole for the plugins: sent with its length, whatever its framing was */
        SL_HB_HEADER_U64(b, "Content-Length: ", (uint64_t)evbuffer_get_length(r->body_buf));
    } else if (r->body_kind == SL_BODY_CHUNKED) {
        sl_hbuf_add(b, "Transfer-Encoding: chunked\r\n", 28);
        p->up_chunked = 1;
    } else if (r->body_kind == SL_BODY_LENGTH) {
        SL_HB_HEADER_U64(b, "Content-Length: ", (uint64_t)r->info.content_length);
    } else if (r->info.content_length == 0) {
        sl_hbuf_add(b, "Content-Length: 0\r\n", 19);
    }
    sl_hbuf_add(b, "\r\n", 2);
    sl_hbuf_flush(b);
}

#define PROXY_CACHE_MAX 64

void sl_proxy_free(sl_proxy_t *p)
{
    if (p == NULL)
        return;
    if (p->connecting)
        sl_upstream_cancel(p->connecting);
    if (p->uc)
        sl_upstream_discard(p->uc);
    if (p->replay)
        evbuffer_free(p->replay);
    if (p->bbody) {
        evbuffer_free(p->bbody);
        p->bbody = NULL;
    }
    sl_hdr_list_dispose(&p->bhdrs);
    if (p->r)
        p->r->proxy = NULL;
    sl_worker_t *w = p->w;
    if (w->nfree_proxies >= PROXY_CACHE_MAX) {
        free(p->uri);
        free(p->rhdrs);
        free(p);
        return;
    }
    p->next_free = w->free_proxies;
    w->free_proxies = p;
    w->nfree_proxies++;
}

void sl_proxy_cache_clear(sl_worker_t *w)
{
    while (w->free_proxies != NULL) {
        sl_proxy_t *p = w->free_proxies;
        w->free_proxies = p->next_free;
        free(p->uri);
        free(p->rhdrs);
        free(p);
    }
    w->nfree_proxies = 0;
}

/* Fails the request with status unless it can be tried again. */
static void proxy_fail(sl_proxy_t *p, int status, const char *msg, int retry_ok,
                       const char *client_msg)
{
    sl_req_t *r = p->r;
    sl_log_error("%s, client: %s, server: sluice, request: \"%.*s %.*s\", upstream: \"%s\"", msg,
                 r->c->peer_ip, (int)r->h.method.len, r->h.method.data, (int)r->h.path.len,
                 r->h.path.data, r->service->upstream_addr);
    if (p->uc) {
        sl_upstream_discard(p->uc);
        p->uc = NULL;
    }
    int can_replay = p->replayable && !r->response_started && p->resp_bytes == 0;
    if (retry_ok && can_replay && p->reused && !p->stale_retry_used) {
        p->stale_retry_used = 1;
        try_connect(p);
        return;
    }
    if (retry_ok && can_replay && p->tries_left > 0 && (p->idempotent || !p->sent)) {
        p->tries_left--;
        try_connect(p);
        return;
    }
    sl_proxy_free(p);
    /* Kong answers its balancer failures (DNS) with kong.response.error: JSON by default */
    sl_req_send_error(r, status, client_msg, client_msg != NULL, 0);
}

/* Moves request body bytes up, bounded by the upstream output buffer. */
static void pump_body(sl_proxy_t *p)
{
    sl_req_t *r = p->r;
    if (p->uc == NULL || r->body_done)
        return;
    struct evbuffer *out = bufferevent_get_output(p->uc->bev);
    size_t have = evbuffer_get_length(out);
    if (have >= SL_UPSTREAM_IN_HIGH) {
        bufferevent_disable(r->c->bev, EV_READ);
        return;
    }
    if (r->new_body_set) {
        int st = 400;
        int drc = sl_req_body_pump(r, NULL, 0, SIZE_MAX, &st);
        if (drc == SL_DONE)
            sl_req_set_body_timeout(r, 0);
        return;
    }
    struct evbuffer *tmp = evbuffer_new();
    int status = 400;
    int rc = sl_req_body_pump(r, tmp, p->up_chunked, SL_UPSTREAM_IN_HIGH - have, &status);
    size_t n = evbuffer_get_length(tmp);
    if (n > 0 && p->replayable && p->replay == NULL)
        p->replay = evbuffer_new();
    if (n > 0 && p->replayable) {
        if (evbuffer_get_length(p->replay) + n <= REPLAY_MAX) {
            const unsigned char *bytes = evbuffer_pullup(tmp, -1);
            evbuffer_add(p->replay, bytes, n);
        } else {
            p->replayable = 0;
            evbuffer_drain(p->replay, evbuffer_get_length(p->replay));
        }
    }
    evbuffer_add_buffer(out, tmp);
    evbuffer_free(tmp);
    /* EV_WRITE only while there is something to write: an enabled write event on an empty
     * buffer fires forever, and re-enabling the client's read would restart its timeout */
    if (evbuffer_get_length(out) > 0)
        bufferevent_enable(p->uc->bev, EV_WRITE);
    if (rc == SL_ERROR) {
        sl_log_info("client sent an invalid or too large body (%d), client: %s", status,
                    r->c->peer_ip);
        sl_proxy_free(p);
        sl_req_send_error(r, status, NULL, 0, 1);
        return;
    }
    if (rc == SL_DONE) {
        sl_req_set_body_timeout(r, 0);
        return;
    }
    if (evbuffer_get_length(out) >= SL_UPSTREAM_IN_HIGH)
        bufferevent_disable(r->c->bev, EV_READ);
    else if (!(bufferevent_get_enabled(r->c->bev) & EV_READ))
        bufferevent_enable(r->c->bev, EV_READ);
}

static void on_connected(sl_proxy_t *p, sl_upconn_t *uc)
{
    sl_req_t *r = p->r;
    const sl_service_t *s = r->service;
    p->uc = uc;
    p->t_connected_us = sl_now_us();
    p->state = P_HEAD;
    p->resp_bytes = 0;
    p->up_eof = 0;
    p->up_error = 0;
    p->sent = 1;
    uc->requests++;
    bufferevent_setcb(uc->bev, up_read_cb, up_write_cb, up_event_cb, p);
    int rt = r->up_read_timeout > 0 ? r->up_read_timeout : s->read_timeout;
    int wt = r->up_write_timeout > 0 ? r->up_write_timeout : s->write_timeout;
    if (uc->read_timeout_ms != rt || uc->write_timeout_ms != wt) {
        struct timeval rtv = {rt / 1000, (rt % 1000) * 1000};
        struct timeval wtv = {wt / 1000, (wt % 1000) * 1000};
        bufferevent_set_timeouts(uc->bev, &rtv, &wtv);
        uc->read_timeout_ms = rt;
        uc->write_timeout_ms = wt;
    }
    bufferevent_setwatermark(uc->bev, EV_READ, 0, SL_UPSTREAM_IN_HIGH);
    bufferevent_setwatermark(uc->bev, EV_WRITE, SL_UPSTREAM_IN_HIGH / 2, 0);
    struct evbuffer *out = bufferevent_get_output(uc->bev);
    build_head(p, out);
    if (r->new_body_set) {
        if (r->new_body_len)
            evbuffer_add(out, r->new_body, r->new_body_len);
    } else if (r->body_buf != NULL && evbuffer_get_length(r->body_buf) > 0) {
        /* the part the plugins read comes first (kept for a retry) */
        size_t n = evbuffer_get_length(r->body_buf);
        if (p->up_chunked)
            evbuffer_add_printf(out, "%zx\r\n", n);
        evbuffer_add(out, evbuffer_pullup(r->body_buf, -1), n);
        if (p->up_chunked)
            evbuffer_add(out, "\r\n", 2);
    }
    if (p->replayable && p->replay != NULL && evbuffer_get_length(p->replay) > 0) {
        const unsigned char *b = evbuffer_pullup(p->replay, -1);
        evbuffer_add(out, b, evbuffer_get_length(p->replay));
    }
    bufferevent_enable(uc->bev, EV_READ | EV_WRITE);
    if (!s->tls && r->body_done)
        sl_bev_write_now(uc->bev); /* the whole request: skip a trip through epoll */
    if (!r->body_done) {
        if (r->info.expect_continue && !r->sent_continue && r->h.minor_version == 1) {
            r->sent_continue = 1;
            evbuffer_add(bufferevent_get_output(r->c->bev), "HTTP/1.1 100 Continue\r\n\r\n", 25);
            bufferevent_enable(r->c->bev, EV_WRITE);
        }
        sl_req_set_body_timeout(r, 1);
        pump_body(p);
    }
}

static void connect_cb(void *arg, sl_upconn_t *uc, int error, const char *msg)
{
    sl_proxy_t *p = arg;
    p->connecting = NULL;
    if (error) {
        int status = error == SL_UP_ERR_TIMEOUT ? 504 : error == SL_UP_ERR_DNS ? 503 : 502;
        proxy_fail(p, status, msg, error != SL_UP_ERR_DNS,
                   error == SL_UP_ERR_DNS ? "name resolution failed" : NULL);
        return;
    }
    on_connected(p, uc);
}

static void try_connect(sl_proxy_t *p)
{
    sl_req_t *r = p->r;
    const sl_service_t *s = r->service;
    p->state = P_CONNECTING;
    p->reused = 0;
    p->sent = 0;
    sl_upconn_t *uc = NULL;
    int ct = r->up_connect_timeout > 0 ? r->up_connect_timeout : s->connect_timeout;
    int rc = sl_upstream_get(p->w, s, p->sni[0] ? p->sni : s->host, ct, connect_cb, p, &uc,
                             &p->connecting);
    if (rc == SL_OK) {
        p->reused = 1;
        on_connected(p, uc);
    }
}

void sl_proxy_start(sl_req_t *r)
{
    sl_worker_t *w = r->c->w;
    sl_proxy_t *p = w->free_proxies;
    if (p != NULL) {
        w->free_proxies = p->next_free;
        w->nfree_proxies--;
        sl_header_t *rhdrs = p->rhdrs;
        char *uri = p->uri;
        size_t uri_cap = p->uri_cap;
        memset(p, 0, sizeof(*p));
        p->rhdrs = rhdrs;
        p->uri = uri;
        p->uri_cap = uri_cap;
    } else {
        p = calloc(1, sizeof(*p));
        if (p == NULL)
            abort();
        p->rhdrs = malloc(RESP_MAX_HEADERS * sizeof(sl_header_t));
        if (p->rhdrs == NULL)
            abort();
    }
    p->r = r;
    p->w = w;
    r->proxy = p;
    p->tries_left = r->up_retries >= 0 ? r->up_retries : r->service->retries;
    /* Kong never buffers upgrade (WebSocket) requests */
    p->buffering = (r->lua_flags & SL_LUA_BUFFER) && !r->info.upgrade;
    p->replayable = 1;
    sl_str_t m = r->h.method;
    p->idempotent = !(sl_str_eq(m, SL_STR("POST")) || sl_str_eq(m, SL_STR("PATCH")) ||
                      sl_str_eq(m, SL_STR("LOCK")));
    if (build_uri(p) != SL_OK) {
        sl_proxy_free(p);
        sl_req_send_error(r, 414, NULL, 0, 1);
        return;
    }
    if (r->service->tls && r->route->preserve_host) {
        /* Kong sends the preserved Host (without its port) as SNI and verifies against it */
        const sl_str_t *host = sl_req_header(r, SL_STR("host"));
        sl_str_t h = r->info.host.len ? r->info.host : (host ? *host : SL_NULL_STR);
        size_t n = h.len;
        if (n > 0 && h.data[0] != '[') {
            const char *colon = memchr(h.data, ':', h.len);
            if (colon)
                n = (size_t)(colon - h.data);
        }
        if (n > 0 && n < sizeof(p->sni)) {
            memcpy(p->sni, h.data, n);
            p->sni[n] = '\0';
        }
    }
    p->t_first_try_us = sl_now_us();
    r->proxy_latency_ms = (p->t_first_try_us - r->start_us) / 1000;
    try_connect(p);
}

void sl_proxy_client_readable(sl_req_t *r)
{
    sl_proxy_t *p = r->proxy;
    if (p->state == P_TUNNEL) {
        if (p->uc) {
            struct evbuffer *in = bufferevent_get_input(r->c->bev);
            evbuffer_add_buffer(bufferevent_get_output(p->uc->bev), in);
        }
        return;
    }
    if (!r->body_done && p->uc)
        pump_body(p);
}

/* ---- response ---- */

static int skip_resp_header(sl_proxy_t *p, sl_str_t n)
{
    static const sl_str_t hop[] = {
        SL_STR("connection"), SL_STR("keep-alive"), SL_STR("proxy-connection"),
        SL_STR("transfer-encoding"), SL_STR("trailer"), SL_STR("te"),
    };
    for (size_t i = 0; i < SL_ARRAY_SIZE(hop); i++) {
        if (sl_str_case_eq(n, hop[i]))
            return 1;
    }
    if (sl_str_case_eq(n, SL_STR("upgrade")) && p->rh.status != 101)
        return 1;
    if (sl_str_case_eq(n, SL_STR("content-length")) && (p->ri.chunked || p->ri.close_delimited))
        return 1;
    /* the headers Sluice sets itself replace the upstream's (as Kong's header_filter does) */
    if (n.len > 7 && sl_str_case_eq((sl_str_t){n.data, 7}, SL_STR("x-kong-"))) {
        unsigned hdrs = p->w->conf->headers;
        if (((hdrs & SL_HDR_REQUEST_ID) && sl_str_case_eq(n, SL_STR("x-kong-request-id"))) ||
            ((hdrs & SL_HDR_UPSTREAM_LATENCY) &&
             sl_str_case_eq(n, SL_STR("x-kong-upstream-latency"))) ||
            ((hdrs & SL_HDR_PROXY_LATENCY) && sl_str_case_eq(n, SL_STR("x-kong-proxy-latency"))) ||
            ((hdrs & SL_HDR_UPSTREAM_STATUS) &&
             sl_str_case_eq(n, SL_STR("x-kong-upstream-status"))))
            return 1;
    }
    return 0;
}

static int skip_resp_header(sl_proxy_t *p, sl_str_t n);
static void body_to_client_eof(sl_proxy_t *p, const char *data, size_t len, int eof);

/* The client's response head: the status line, hl's headers but Connection, the framing
 * and the Connection header. The caller flushes hb. */
static void write_head(sl_hbuf_t *hb, const sl_req_t *r, const char *status_line, size_t len,
                       const sl_hdr_list_t *hl, int chunked, int upgrade)
{
    sl_hbuf_add(hb, status_line, len);
    for (size_t i = 0; i < hl->n; i++) {
        if (sl_str_case_eq((sl_str_t){hl->items[i].name, hl->items[i].name_len},
                           SL_STR("connection")))
            continue;
        sl_hbuf_add(hb, hl->items[i].name, hl->items[i].name_len);
        SL_HB_LIT(hb, ": ");
        sl_hbuf_add(hb, hl->items[i].value, hl->items[i].value_len);
        SL_HB_LIT(hb, "\r\n");
    }
    if (chunked)
        SL_HB_LIT(hb, "Transfer-Encoding: chunked\r\n");
    if (upgrade)
        SL_HB_LIT(hb, "Connection: upgrade\r\n\r\n");
    else if (r->keepalive)
        SL_HB_LIT(hb, "Connection: keep-alive\r\n\r\n");
    else
        SL_HB_LIT(hb, "Connection: close\r\n\r\n");
}

/* The response head when plugins may change it: gathered into r->resp_headers, edited by
 * the kong.response calls made in access and by header_filter, then written. */
static void send_response_head_lua(sl_proxy_t *p)
{
    sl_req_t *r = p->r;
    r->from_upstream = 1;
    sl_conn_t *c = r->c;
    unsigned hdrs = p->w->conf->headers;
    bufferevent_enable(c->bev, EV_WRITE);
    r->upstream_latency_ms = (sl_now_us() - p->t_connected_us) / 1000;
    r->status = p->rh.status;
    int is_head = sl_str_eq(r->h.method, SL_STR("HEAD"));
    if (!r->body_done)
        r->keepalive = 0;
    sl_hdr_list_t *hl = &r->resp_headers;
    sl_hdr_list_clear(hl);
    r->resp_headers_ready = 1;
    const sl_str_t *conn = NULL, *via = NULL;
    for (size_t i = 0; i < p->rh.num_headers; i++) {
        if (sl_str_case_eq(p->rh.headers[i].name, SL_STR("connection")))
            conn = &p->rh.headers[i].value;
    }
    int has_server = 0, has_date = 0;
    for (size_t i = 0; i < p->rh.num_headers; i++) {
        sl_header_t *h = &p->rh.headers[i];
        if (skip_resp_header(p, h->name) || in_connection_tokens(conn, h->name))
            continue;
        if (sl_str_case_eq(h->name, SL_STR("via")) && (hdrs & SL_HDR_VIA)) {
            via = &h->value;
            continue;
        }
        has_server |= sl_str_case_eq(h->name, SL_STR("server"));
        has_date |= sl_str_case_eq(h->name, SL_STR("date"));
        sl_hdr_list_add(hl, h->name, h->value);
    }
    char buf[512];
    if (!has_date) {
        const char *d = sl_http_date();
        sl_hdr_list_add(hl, SL_STR("Date"), (sl_str_t){d, strlen(d)});
    }
    if (!has_server && (hdrs & SL_HDR_SERVER))
        sl_hdr_list_add(hl, SL_STR("Server"), SL_STR("sluice/" SLUICE_VERSION));
    if (hdrs & SL_HDR_VIA) {
        int n = via ? snprintf(buf, sizeof(buf), "%.*s, 1.1 sluice/%s", (int)via->len, via->data,
                               SLUICE_VERSION)
                    : snprintf(buf, sizeof(buf), "1.1 sluice/%s", SLUICE_VERSION);
        sl_hdr_list_add(hl, SL_STR("Via"), (sl_str_t){buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1});
    }
    if (hdrs & SL_HDR_UPSTREAM_LATENCY) {
        int n = snprintf(buf, sizeof(buf), "%llu", (unsigned long long)r->upstream_latency_ms);
        sl_hdr_list_add(hl, SL_STR("X-Kong-Upstream-Latency"), (sl_str_t){buf, (size_t)n});
    }
    if (hdrs & SL_HDR_PROXY_LATENCY) {
        int n = snprintf(buf, sizeof(buf), "%llu", (unsigned long long)r->proxy_latency_ms);
        sl_hdr_list_add(hl, SL_STR("X-Kong-Proxy-Latency"), (sl_str_t){buf, (size_t)n});
    }
    if (hdrs & SL_HDR_UPSTREAM_STATUS) {
        int n = snprintf(buf, sizeof(buf), "%d", p->rh.status);
        sl_hdr_list_add(hl, SL_STR("X-Kong-Upstream-Status"), (sl_str_t){buf, (size_t)n});
    }
    if (hdrs & SL_HDR_REQUEST_ID)
        sl_hdr_list_add(hl, SL_STR("X-Kong-Request-Id"), (sl_str_t){r->id, 32});
    sl_req_apply_resp_pre(r);
    if (r->lua_flags & SL_LUA_HEADER_FILTER)
        sl_lua_header_filter(r);

    /* framing follows the final head: no Content-Length left means chunked (or close) */
    sl_hdr_list_remove(hl, SL_STR("Transfer-Encoding"));
    int body = p->rh.status != 101 && !p->ri.no_body && !is_head;
    int has_cl = sl_hdr_list_find(hl, SL_STR("content-length")) != NULL;
    if (p->rh.status == 101) {
        r->keepalive = 0;
    } else if (body && !has_cl) {
        if (r->h.minor_version >= 1) {
            p->out_chunked = 1;
        } else {
            p->out_close = 1;
            r->keepalive = 0;
        }
    }
    sl_hbuf_t hb;
    hb.eb = bufferevent_get_output(c->bev);
    hb.len = 0;
    int n;
    if (r->status == p->rh.status)
        n = snprintf(buf, sizeof(buf), "HTTP/1.1 %d %.*s\r\n", r->status,
                     (int)(p->rh.reason.len < 200 ? p->rh.reason.len : 200), p->rh.reason.data);
    else
        n = snprintf(buf, sizeof(buf), "HTTP/1.1 %d %s\r\n", r->status,
                     sl_status_reason(r->status));
    write_head(&hb, r, buf, (size_t)n, hl, p->out_chunked, p->rh.status == 101);
    sl_hbuf_flush(&hb);
    r->response_started = 1;
}

static void send_response_head(sl_proxy_t *p)
{
    p->r->from_upstream = 1;
    if ((p->r->lua_flags & SL_LUA_HEADER_FILTER) || p->r->resp_pre_set.n ||
        p->r->resp_pre_removed.n || (p->r->lua_flags & SL_LUA_BODY_FILTER)) {
        send_response_head_lua(p);
        return;
    }
    sl_req_t *r = p->r;
    sl_conn_t *c = r->c;
    unsigned hdrs = p->w->conf->headers;
    sl_hbuf_t hb;
    hb.eb = bufferevent_get_output(c->bev);
    hb.len = 0;
    sl_hbuf_t *out = &hb;
    uint64_t now = sl_now_us();
    bufferevent_enable(c->bev, EV_WRITE);
    r->upstream_latency_ms = (now - p->t_connected_us) / 1000;
    r->status = p->rh.status;

    int is_head = sl_str_eq(r->h.method, SL_STR("HEAD"));
    if (!r->body_done)
        r->keepalive = 0; /* the upstream answered before the whole body arrived */
    if (p->rh.status == 101) {
        r->keepalive = 0;
    } else if (!p->ri.no_body && !is_head && (p->ri.chunked || p->ri.close_delimited)) {
        if (r->h.minor_version >= 1) {
            p->out_chunked = 1;
        } else {
            p->out_close = 1;
            r->keepalive = 0;
        }
    }
    char sl[16] = "HTTP/1.1 000 ";
    sl[9] = (char)('0' + p->rh.status / 100 % 10);
    sl[10] = (char)('0' + p->rh.status / 10 % 10);
    sl[11] = (char)('0' + p->rh.status % 10);
    sl_hbuf_add(out, sl, 13);
    SL_HB_STR(out, p->rh.reason);
    SL_HB_LIT(out, "\r\n");
    int has_server = 0, has_date = 0;
    const sl_str_t *via = NULL, *conn = NULL;
    for (size_t i = 0; i < p->rh.num_headers; i++) {
        if (sl_str_case_eq(p->rh.headers[i].name, SL_STR("connection")))
            conn = &p->rh.headers[i].value;
    }
    for (size_t i = 0; i < p->rh.num_headers; i++) {
        sl_header_t *h = &p->rh.headers[i];
        if (skip_resp_header(p, h->name) || in_connection_tokens(conn, h->name))
            continue;
        if (sl_str_case_eq(h->name, SL_STR("via")) && (hdrs & SL_HDR_VIA)) {
            via = &h->value;
            continue;
        }
        if (sl_str_case_eq(h->name, SL_STR("server")))
            has_server = 1;
        if (sl_str_case_eq(h->name, SL_STR("date")))
            has_date = 1;
        sl_hbuf_add(out, h->name.data, h->name.len);
        sl_hbuf_add(out, ": ", 2);
        sl_hbuf_add(out, h->value.data, h->value.len);
        sl_hbuf_add(out, "\r\n", 2);
    }
    if (!has_date) {
        SL_HB_LIT(out, "Date: ");
        sl_hbuf_add(out, sl_http_date(), strlen(sl_http_date()));
        SL_HB_LIT(out, "\r\n");
    }
    if (!has_server && (hdrs & SL_HDR_SERVER))
        SL_HB_LIT(out, "Server: sluice/" SLUICE_VERSION "\r\n");
    if (p->out_chunked)
        sl_hbuf_add(out, "Transfer-Encoding: chunked\r\n", 28);
    if (p->rh.status == 101) {
        sl_hbuf_add(out, "Connection: upgrade\r\n", 21);
    } else if (r->keepalive) {
        SL_HB_LIT(out, "Connection: keep-alive\r\n");
    } else {
        SL_HB_LIT(out, "Connection: close\r\n");
    }
    if (hdrs & SL_HDR_VIA) {
        if (via)
            sl_hbuf_printf(out, "Via: %.*s, 1.1 sluice/%s\r\n", (int)via->len, via->data,
                                SLUICE_VERSION);
        else
            SL_HB_LIT(out, "Via: 1.1 sluice/" SLUICE_VERSION "\r\n");
    }
    if (hdrs & SL_HDR_UPSTREAM_LATENCY)
        SL_HB_HEADER_U64(out, "X-Kong-Upstream-Latency: ", r->upstream_latency_ms);
    if (hdrs & SL_HDR_PROXY_LATENCY)
        SL_HB_HEADER_U64(out, "X-Kong-Proxy-Latency: ", r->proxy_latency_ms);
    if (hdrs & SL_HDR_UPSTREAM_STATUS)
        SL_HB_HEADER_U64(out, "X-Kong-Upstream-Status: ", (uint64_t)p->rh.status);
    if (hdrs & SL_HDR_REQUEST_ID) {
        SL_HB_LIT(out, "X-Kong-Request-Id: ");
        sl_hbuf_add(out, r->id, 32);
        SL_HB_LIT(out, "\r\n");
    }
    sl_hbuf_add(out, "\r\n", 2);
    sl_hbuf_flush(out);
    r->response_started = 1;
}

/* The upstream side is finished: hand the connection back and complete the request. */
static void response_complete(sl_proxy_t *p, int reusable)
{
    sl_req_t *r = p->r;
    sl_conn_t *c = r->c;
    if (r->lua_flags & SL_LUA_BODY_FILTER)
        body_to_client_eof(p, NULL, 0, 1);
    if (p->out_chunked)
        evbuffer_add(bufferevent_get_output(c->bev), "0\r\n\r\n", 5);
    p->state = P_DONE;
    sl_upconn_t *uc = p->uc;
    p->uc = NULL;
    if (uc)
        bufferevent_setcb(uc->bev, NULL, NULL, NULL, NULL);
    sl_upstream_release(p->w, uc, reusable && r->body_done && p->ri.keepalive);
    sl_proxy_free(p);
    if (!r->body_done)
        r->keepalive = 0;
    if (r->c->state == SL_CONN_ACTIVE && !(bufferevent_get_enabled(c->bev) & EV_READ))
        bufferevent_enable(c->bev, EV_READ);
    sl_req_response_done(r);
}

static void frame_to_client(sl_proxy_t *p, const char *data, size_t len)
{
    if (len == 0)
        return;
    struct evbuffer *out = bufferevent_get_output(p->r->c->bev);
    if (p->out_chunked)
        evbuffer_add_printf(out, "%zx\r\n", len);
    evbuffer_add(out, data, len);
    if (p->out_chunked)
        evbuffer_add(out, "\r\n", 2);
    p->r->bytes_sent += len;
    bufferevent_enable(p->r->c->bev, EV_WRITE);
}

/* One run of body bytes to the client, through the plugins' body_filter when they have
 * one (eof: the last call, possibly with no bytes). */
static void body_to_client_eof(sl_proxy_t *p, const char *data, size_t len, int eof)
{
    sl_req_t *r = p->r;
    if (!(r->lua_flags & SL_LUA_BODY_FILTER)) {
        frame_to_client(p, data, len);
        return;
    }
    struct evbuffer *tmp = evbuffer_new();
    sl_lua_body_filter(r, data, len, eof, tmp);
    size_t n = evbuffer_get_length(tmp);
    if (n > 0)
        frame_to_client(p, (const char *)evbuffer_pullup(tmp, -1), n);
    evbuffer_free(tmp);
}

static void body_to_client(sl_proxy_t *p, const char *data, size_t len)
{
    body_to_client_eof(p, data, len, 0);
}

/* The response cannot be completed (the upstream broke off mid-body): stop proxying, send
 * what is already queued, then close, so the client sees a truncated response, not a
 * hang and not a silent drop. The proxy is gone afterwards and maybe the request too. */
static void abort_to_client(sl_proxy_t *p, const char *msg)
{
    sl_req_t *r = p->r;
    sl_log_error("%s, client: %s, server: sluice, request: \"%.*s %.*s\", upstream: \"%s\"", msg,
                 r->c->peer_ip, (int)r->h.method.len, r->h.method.data, (int)r->h.path.len,
                 r->h.path.data, r->service->upstream_addr);
    sl_proxy_free(p);
    r->keepalive = 0;
    r->c->close_after = 1;
    bufferevent_disable(r->c->bev, EV_READ);
    sl_req_response_done(r);
}

/* Moves response body bytes down while the client keeps up. Returns 1 while the proxy is
 * still working, 0 once it is gone (complete or aborted; the request may be gone too). */
static int pump_response(sl_proxy_t *p)
{
    sl_req_t *r = p->r;
    struct evbuffer *in = bufferevent_get_input(p->uc->bev);
    struct evbuffer *out = bufferevent_get_output(r->c->bev);
    for (;;) {
        if (evbuffer_get_length(out) >= SL_CLIENT_OUT_HIGH) {
            bufferevent_disable(p->uc->bev, EV_READ);
            return 1;
        }
        size_t avail = evbuffer_get_length(in);
        if (avail == 0) {
            if (!p->up_eof)
                return 1;
            if (p->ri.close_delimited && !p->up_error) {
                response_complete(p, 0);
                return 0;
            }
            abort_to_client(p, "upstream prematurely closed connection while reading upstream");
            return 0;
        }
        if (p->ri.chunked) {
            size_t want = avail < 16384 ? avail : 16384;
            const char *d = (const char *)evbuffer_pullup(in, (ev_ssize_t)want);
            size_t consumed = 0, off = 0, plen = 0;
            int rc = sl_http_chunked_parse(&p->rchunk, d, want, &consumed, &off, &plen);
            if (rc == SL_ERROR) {
                abort_to_client(p, "upstream sent invalid chunked response");
                return 0;
            }
            if (plen > 0)
                body_to_client(p, d + off, plen);
            evbuffer_drain(in, consumed);
            if (rc == SL_DONE) {
                response_complete(p, evbuffer_get_length(in) == 0 && !p->up_eof);
                return 0;
            }
            if (consumed == 0) {
                if (want == avail && !p->up_eof)
                    return 1;
                abort_to_client(p, "upstream sent invalid chunked response");
                return 0;
            }
            continue;
        }
        size_t n = avail;
        if (!p->ri.close_delimited && (uint64_t)p->remaining < n)
            n = (size_t)p->remaining;
        if (p->out_chunked || (r->lua_flags & SL_LUA_BODY_FILTER)) {
            const char *d = (const char *)evbuffer_pullup(in, (ev_ssize_t)n);
            body_to_client(p, d, n);
            evbuffer_drain(in, n);
        } else {
            evbuffer_remove_buffer(in, out, n);
            r->bytes_sent += n;
            bufferevent_enable(r->c->bev, EV_WRITE);
        }
        if (!p->ri.close_delimited) {
            p->remaining -= (int64_t)n;
            if (p->remaining == 0) {
                response_complete(p, evbuffer_get_length(in) == 0 && !p->up_eof);
                return 0;
            }
        }
    }
}

static void start_tunnel(sl_proxy_t *p)
{
    sl_req_t *r = p->r;
    p->state = P_TUNNEL;
    r->c->state = SL_CONN_TUNNEL;
    bufferevent_set_timeouts(p->uc->bev, NULL, NULL);
    p->uc->read_timeout_ms = p->uc->write_timeout_ms = -1;
    bufferevent_set_timeouts(r->c->bev, NULL, NULL);
    bufferevent_setwatermark(p->uc->bev, EV_READ, 0, 0);
    struct evbuffer *cin = bufferevent_get_input(r->c->bev);
    evbuffer_add_buffer(bufferevent_get_output(p->uc->bev), cin);
    evbuffer_add_buffer(bufferevent_get_output(r->c->bev), bufferevent_get_input(p->uc->bev));
    bufferevent_enable(r->c->bev, EV_READ | EV_WRITE);
    bufferevent_enable(p->uc->bev, EV_READ | EV_WRITE);
}

/* ---- buffered proxying (the response phase) ---- */

/* The whole body is here: the upstream connection goes back, the response phase runs. */
static void buffered_complete(sl_proxy_t *p, int reusable)
{
    sl_req_t *r = p->r;
    sl_conn_t *c = r->c;
    p->state = P_RESPONSE;
    sl_upconn_t *uc = p->uc;
    p->uc = NULL;
    if (uc)
        bufferevent_setcb(uc->bev, NULL, NULL, NULL, NULL);
    sl_upstream_release(p->w, uc, reusable && r->body_done && p->ri.keepalive);
    if (!r->body_done)
        r->keepalive = 0;
    if (c->state == SL_CONN_ACTIVE && !(bufferevent_get_enabled(c->bev) & EV_READ))
        bufferevent_enable(c->bev, EV_READ);

    /* the head the plugins see and edit: the upstream's, then the edits made in access */
    size_t len = evbuffer_get_length(p->bbody);
    int is_head = sl_str_eq(r->h.method, SL_STR("HEAD"));
    sl_hdr_list_t *hl = &r->resp_headers;
    sl_hdr_list_clear(hl);
    for (size_t i = 0; i < p->bhdrs.n; i++) {
        sl_hdr_t *h = &p->bhdrs.items[i];
        sl_hdr_list_add(hl, (sl_str_t){h->name, h->name_len}, (sl_str_t){h->value, h->value_len});
    }
    if (!p->ri.no_body && !is_head) {
        char buf[24];
        int n = snprintf(buf, sizeof(buf), "%zu", len);
        sl_hdr_list_set(hl, SL_STR("Content-Length"), (sl_str_t){buf, (size_t)n});
    }
    r->resp_headers_ready = 1;
    sl_req_apply_resp_pre(r);
    const char *body = len ? (const char *)evbuffer_pullup(p->bbody, -1) : "";
    /* the request (and p) may be gone when this returns */
    sl_lua_run_response(r, body, len, &p->bhdrs);
}

/* The buffered body would pass the bound: 502, logged. */
static int buffer_too_big(sl_proxy_t *p)
{
    char msg[160];
    snprintf(msg, sizeof(msg),
             "upstream response body is larger than the %zu bytes buffered proxying holds",
             SL_BUFFERED_BODY_MAX);
    proxy_fail(p, 502, msg, 0, NULL);
    return 0;
}

/* Moves upstream body bytes into p->bbody until the end. Returns 1 while the proxy is still
 * working, 0 once it is gone (the response phase started, or it failed). */
static int pump_buffer(sl_proxy_t *p)
{
    struct evbuffer *in = bufferevent_get_input(p->uc->bev);
    for (;;) {
        size_t avail = evbuffer_get_length(in);
        size_t have = evbuffer_get_length(p->bbody);
        if (avail == 0) {
            if (!p->up_eof)
                return 1;
            if (p->ri.close_delimited && !p->up_error) {
                buffered_complete(p, 0);
                return 0;
            }
            proxy_fail(p, 502, "upstream prematurely closed connection while reading upstream",
                       0, NULL);
            return 0;
        }
        if (p->ri.chunked) {
            size_t want = avail < 16384 ? avail : 16384;
            const char *d = (const char *)evbuffer_pullup(in, (ev_ssize_t)want);
            size_t consumed = 0, off = 0, plen = 0;
            int rc = sl_http_chunked_parse(&p->rchunk, d, want, &consumed, &off, &plen);
            if (rc == SL_ERROR) {
                proxy_fail(p, 502, "upstream sent invalid chunked response", 0, NULL);
                return 0;
            }
            if (plen > 0) {
                if (have + plen > SL_BUFFERED_BODY_MAX)
                    return buffer_too_big(p);
                evbuffer_add(p->bbody, d + off, plen);
            }
            evbuffer_drain(in, consumed);
            if (rc == SL_DONE) {
                buffered_complete(p, evbuffer_get_length(in) == 0 && !p->up_eof);
                return 0;
            }
            if (consumed == 0) {
                if (want == avail && !p->up_eof)
                    return 1;
                proxy_fail(p, 502, "upstream sent invalid chunked response", 0, NULL);
                return 0;
            }
            continue;
        }
        size_t n = avail;
        if (!p->ri.close_delimited && (uint64_t)p->remaining < n)
            n = (size_t)p->remaining;
        if (have + n > SL_BUFFERED_BODY_MAX)
            return buffer_too_big(p);
        evbuffer_remove_buffer(in, p->bbody, n);
        if (!p->ri.close_delimited) {
            p->remaining -= (int64_t)n;
            if (p->remaining == 0) {
                buffered_complete(p, evbuffer_get_length(in) == 0 && !p->up_eof);
                return 0;
            }
        }
    }
}

/* The upstream head of a buffered response (head_len bytes at the start of the input):
 * copied, since the views point into the input that buffering drains. Returns like
 * upstream_input. */
static int buffer_head(sl_proxy_t *p, size_t head_len)
{
    sl_req_t *r = p->r;
    struct evbuffer *in = bufferevent_get_input(p->uc->bev);
    r->from_upstream = 1;
    r->upstream_latency_ms = (sl_now_us() - p->t_connected_us) / 1000;
    r->status = p->up_status = p->rh.status;
    if (!r->body_done)
        r->keepalive = 0; /* the upstream answered before the whole body arrived */
    if (!p->ri.chunked && !p->ri.close_delimited && p->ri.content_length > 0 &&
        (uint64_t)p->ri.content_length > SL_BUFFERED_BODY_MAX)
        return buffer_too_big(p);
    const sl_str_t *conn = NULL;
    for (size_t i = 0; i < p->rh.num_headers; i++) {
        if (sl_str_case_eq(p->rh.headers[i].name, SL_STR("connection")))
            conn = &p->rh.headers[i].value;
    }
    sl_hdr_list_clear(&p->bhdrs);
    for (size_t i = 0; i < p->rh.num_headers; i++) {
        sl_header_t *h = &p->rh.headers[i];
        if (skip_resp_header(p, h->name) || in_connection_tokens(conn, h->name))
            continue;
        sl_hdr_list_add(&p->bhdrs, h->name, h->value);
    }
    if (p->bbody == NULL)
        p->bbody = evbuffer_new();
    evbuffer_drain(in, head_len);
    p->state = P_BUFFER;
    if (p->ri.chunked)
        sl_http_chunked_init(&p->rchunk, 64 * 1024);
    p->remaining = p->ri.content_length;
    if (p->ri.no_body || (!p->ri.chunked && !p->ri.close_delimited && p->remaining <= 0)) {
        buffered_complete(p, evbuffer_get_length(in) == 0 && !p->up_eof);
        return 0;
    }
    return pump_buffer(p);
}

static void add_u64(sl_hdr_list_t *hl, sl_str_t name, uint64_t v)
{
    char buf[24];
    int n = snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v);
    sl_hdr_list_add(hl, name, (sl_str_t){buf, (size_t)n});
}

void sl_proxy_buffered_done(sl_req_t *r, int failed)
{
    sl_proxy_t *p = r->proxy;
    if (p == NULL || r->response_started)
        return;
    if (failed) {
        /* Kong: an error in the response phase ends in its 500 error page */
        sl_proxy_free(p);
        sl_req_send_error(r, 500, NULL, 1, 0);
        return;
    }
    sl_conn_t *c = r->c;
    unsigned hdrs = p->w->conf->headers;
    int exited = (r->lua_flags & SL_LUA_EXIT) != 0;
    const char *body;
    size_t len;
    if (exited) {
        body = r->exit_body;
        len = r->exit_body_len;
    } else {
        len = evbuffer_get_length(p->bbody);
        body = len ? (const char *)evbuffer_pullup(p->bbody, -1) : NULL;
    }

    /* what Kong's header_filter adds before the plugins' */
    sl_hdr_list_t *hl = &r->resp_headers;
    char buf[512];
    if (sl_hdr_list_find(hl, SL_STR("date")) == NULL) {
        const char *d = sl_http_date();
        sl_hdr_list_add(hl, SL_STR("Date"), (sl_str_t){d, strlen(d)});
    }
    if ((hdrs & SL_HDR_SERVER) && sl_hdr_list_find(hl, SL_STR("server")) == NULL)
        sl_hdr_list_add(hl, SL_STR("Server"), SL_STR("sluice/" SLUICE_VERSION));
    if (hdrs & SL_HDR_VIA) {
        const sl_hdr_t *via = sl_hdr_list_find(hl, SL_STR("via"));
        int n = via ? snprintf(buf, sizeof(buf), "%.*s, 1.1 sluice/%s",
                               (int)(via->value_len < 300 ? via->value_len : 300), via->value,
                               SLUICE_VERSION)
                    : snprintf(buf, sizeof(buf), "1.1 sluice/%s", SLUICE_VERSION);
        sl_hdr_list_set(hl, SL_STR("Via"), (sl_str_t){buf, (size_t)n});
    }
    if (hdrs & SL_HDR_UPSTREAM_LATENCY)
        add_u64(hl, SL_STR("X-Kong-Upstream-Latency"), r->upstream_latency_ms);
    if (hdrs & SL_HDR_PROXY_LATENCY)
        add_u64(hl, SL_STR("X-Kong-Proxy-Latency"), r->proxy_latency_ms);
    if (hdrs & SL_HDR_UPSTREAM_STATUS)
        add_u64(hl, SL_STR("X-Kong-Upstream-Status"), (uint64_t)p->up_status);
    if (hdrs & SL_HDR_REQUEST_ID)
        sl_hdr_list_add(hl, SL_STR("X-Kong-Request-Id"), (sl_str_t){r->id, 32});

    if (r->lua_flags & SL_LUA_HEADER_FILTER)
        sl_lua_header_filter(r);
    struct evbuffer *filtered = NULL;
    if (r->lua_flags & SL_LUA_BODY_FILTER) {
        /* once, with the whole body and eof */
        filtered = evbuffer_new();
        sl_lua_body_filter(r, body, len, 1, filtered);
        len = evbuffer_get_length(filtered);
        body = len ? (const char *)evbuffer_pullup(filtered, -1) : NULL;
    }

    /* framing: one write with a Content-Length, no body where HTTP has none */
    int is_head = sl_str_eq(r->h.method, SL_STR("HEAD"));
    int no_body = r->status < 200 || r->status == 204 || r->status == 304;
    sl_hdr_list_remove(hl, SL_STR("Transfer-Encoding"));
    if (no_body) {
        if (r->status != 304)
            sl_hdr_list_remove(hl, SL_STR("Content-Length"));
    } else if (!is_head || exited) {
        char cl[24];
        int n = snprintf(cl, sizeof(cl), "%zu", len);
        sl_hdr_list_set(hl, SL_STR("Content-Length"), (sl_str_t){cl, (size_t)n});
    } /* else HEAD: the upstream's Content-Length describes the GET body; kept */

    sl_hbuf_t hb;
    hb.eb = bufferevent_get_output(c->bev);
    hb.len = 0;
    int n = snprintf(buf, sizeof(buf), "HTTP/1.1 %d %s\r\n", r->status,
                     sl_status_reason(r->status));
    write_head(&hb, r, buf, (size_t)n, hl, 0, 0);
    sl_hbuf_flush(&hb);
    if (!is_head && !no_body && len > 0) {
        evbuffer_add(hb.eb, body, len);
        r->bytes_sent += len;
    }
    bufferevent_enable(c->bev, EV_WRITE);
    r->response_started = 1;
    if (filtered)
        evbuffer_free(filtered);
    sl_proxy_free(p);
    sl_req_response_done(r);
}

/* Handles what the upstream sent: the head, then body bytes. Returns 1 while the proxy is
 * still working, 0 once it is gone. */
static int upstream_input(sl_proxy_t *p)
{
    sl_req_t *r = p->r;
    struct evbuffer *in = bufferevent_get_input(p->uc->bev);
    if (p->state == P_TUNNEL) {
        evbuffer_add_buffer(bufferevent_get_output(r->c->bev), in);
        return 1;
    }
    if (p->state == P_BUFFER)
        return pump_buffer(p);
    while (p->state == P_HEAD) {
        size_t avail = evbuffer_get_length(in);
        if (avail == 0)
            return 1;
        p->resp_bytes = 1;
        size_t want = avail < SL_UPSTREAM_HEAD_MAX ? avail : SL_UPSTREAM_HEAD_MAX;
        char *d = (char *)evbuffer_pullup(in, (ev_ssize_t)want);
        p->rh.headers = p->rhdrs;
        p->rh.num_headers = RESP_MAX_HEADERS;
        int rc = sl_http_parse_response(d, want, &p->rh, SL_UPSTREAM_HEAD_MAX);
        if (rc == SL_AGAIN) {
            if (want < SL_UPSTREAM_HEAD_MAX)
                return 1;
            proxy_fail(p, 502, "upstream sent too big header while reading response header from upstream", 0, NULL);
            return 0;
        }
        if (rc < 0) {
            proxy_fail(p, 502, "upstream sent invalid header while reading response header from upstream", 0, NULL);
            return 0;
        }
        if (p->rh.status >= 100 && p->rh.status < 200 && p->rh.status != 101) {
            evbuffer_drain(in, (size_t)rc);
            continue;
        }
        int is_head = sl_str_eq(r->h.method, SL_STR("HEAD"));
        if (sl_http_response_validate(&p->rh, is_head, &p->ri) != SL_OK) {
            proxy_fail(p, 502, "upstream sent invalid response framing while reading response header from upstream", 0, NULL);
            return 0;
        }
        if (p->rh.status == 101 && !r->info.upgrade) {
            proxy_fail(p, 502, "upstream switched protocols without an upgrade request", 0, NULL);
            return 0;
        }
        if (p->buffering && p->rh.status != 101)
            return buffer_head(p, (size_t)rc);
        /* the views point into the pulled-up input: emit the head before draining */
        send_response_head(p);
        evbuffer_drain(in, (size_t)rc);
        if (p->rh.status == 101) {
            start_tunnel(p);
            return 1;
        }
        p->state = P_BODY;
        if (p->ri.chunked)
            sl_http_chunked_init(&p->rchunk, 64 * 1024);
        p->remaining = p->ri.content_length;
        if (p->ri.no_body || (!p->ri.chunked && !p->ri.close_delimited && p->remaining <= 0)) {
            response_complete(p, evbuffer_get_length(in) == 0 && !p->up_eof);
            return 0;
        }
    }
    return pump_response(p);
}

static void up_read_cb(struct bufferevent *bev, void *arg)
{
    upstream_input(arg);
}

static void up_write_cb(struct bufferevent *bev, void *arg)
{
    sl_proxy_t *p = arg;
    if (p->state != P_TUNNEL && !p->r->body_done)
        pump_body(p);
}

void sl_proxy_client_drained(sl_req_t *r)
{
    sl_proxy_t *p = r->proxy;
    if (p->uc == NULL)
        return;
    if (p->state == P_BODY) {
        if (!p->up_eof)
            bufferevent_enable(p->uc->bev, EV_READ);
        pump_response(p);
    }
}

static void up_event_cb(struct bufferevent *bev, short what, void *arg)
{
    sl_proxy_t *p = arg;
    sl_req_t *r = p->r;
    if (p->state == P_TUNNEL) {
        /* one side closed: pass on what is queued, then close */
        evbuffer_add_buffer(bufferevent_get_output(r->c->bev), bufferevent_get_input(bev));
        sl_proxy_free(p);
        r->keepalive = 0;
        r->c->close_after = 1;
        r->response_done = 1;
        sl_req_response_done(r);
        return;
    }
    if (what & BEV_EVENT_TIMEOUT) {
        if (p->state == P_HEAD) {
            proxy_fail(p, 504,
                       (what & BEV_EVENT_WRITING)
                           ? "upstream timed out while sending request to upstream"
                           : "upstream timed out while reading response header from upstream",
                       p->idempotent, NULL);
        } else if (p->state == P_BUFFER) {
            /* nothing was sent yet: the client gets an answer, as Kong's truncated capture */
            proxy_fail(p, 502, "upstream timed out while reading upstream (buffered)", 0, NULL);
        } else {
            abort_to_client(p, "upstream timed out while reading upstream");
        }
        return;
    }
    /* EOF or error: what arrived before it is still ours to deliver */
    p->up_eof = 1;
    p->up_error = (what & BEV_EVENT_ERROR) != 0;
    if (p->state == P_HEAD && evbuffer_get_length(bufferevent_get_input(bev)) > 0) {
        if (!upstream_input(p))
            return;
    }
    if (p->state == P_BODY) {
        pump_response(p);
        return;
    }
    if (p->state == P_BUFFER) {
        pump_buffer(p);
        return;
    }
    proxy_fail(p, 502,
               (what & BEV_EVENT_EOF)
                   ? "upstream prematurely closed connection while reading response header from upstream"
                   : "recv() failed while reading response header from upstream",
               1, NULL);
}
