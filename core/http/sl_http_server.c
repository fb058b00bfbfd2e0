/*
 * sl_http_server.c: client connections, request heads, routing, generated responses, the
 * request body pump and the access log.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "base/sl_log.h"
#include "lua/sl_lua_runtime.h"
#include "process/sl_stats.h"
#include <lauxlib.h>
#include "http/sl_server.h"

static void conn_read_cb(struct bufferevent *bev, void *arg);
static void conn_write_cb(struct bufferevent *bev, void *arg);
static void conn_event_cb(struct bufferevent *bev, short what, void *arg);
static void conn_process(sl_conn_t *c);

void sl_bev_write_now(struct bufferevent *bev)
{
    struct evbuffer *out = bufferevent_get_output(bev);
    if (evbuffer_get_length(out) > 0) {
        /* a socket bufferevent freezes the start of its output so only it drains it */
        evbuffer_unfreeze(out, 1);
        evbuffer_write(out, bufferevent_getfd(bev));
        evbuffer_freeze(out, 1);
    }
    if (evbuffer_get_length(out) == 0)
        bufferevent_disable(bev, EV_WRITE);
    else
        bufferevent_enable(bev, EV_WRITE);
}

uint64_t sl_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

const char *sl_http_date(void)
{
    static char buf[64];
    static time_t last;
    time_t now = time(NULL);
    if (now != last) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(buf, sizeof(buf), "%a, %d %b %Y %H:%M:%S GMT", &tm);
        last = now;
    }
    return buf;
}

const char *sl_status_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 203: return "Non-Authoritative Information";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 303: return "See Other";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 406: return "Not Acceptable";
    case 407: return "Proxy Authentication Required";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 412: return "Precondition Failed";
    case 411: return "Length Required";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 418: return "I'm a teapot";
    case 422: return "Unprocessable Entity";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

/* Kong's default messages (kong/error_handlers.lua, kong.response.error). */
static const char *default_message(int status)
{
    switch (status) {
    case 400: return "Bad request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not found";
    case 405: return "Method not allowed";
    case 408: return "Request timeout";
    case 411: return "Length required";
    case 412: return "Precondition failed";
    case 413: return "Payload too large";
    case 414: return "URI too long";
    case 417: return "Expectation failed";
    case 429: return "Too many requests";
    case 431: return "Request header fields too large";
    case 500: return "An unexpected error occurred";
    case 501: return "Not implemented";
    case 502: return "An invalid response was received from the upstream server";
    case 503: return "The upstream server is currently unavailable";
    case 504: return "The upstream server is timing out";
    case 505: return "HTTP version not supported";
    default: return NULL;
    }
}

static uint64_t rng_state;

static void request_id(char out[33])
{
    if (rng_state == 0) {
        if (getrandom(&rng_state, sizeof(rng_state), 0) != sizeof(rng_state) || rng_state == 0)
            rng_state = sl_now_us() ^ ((uint64_t)getpid() << 32) ^ 0x9e3779b97f4a7c15u;
    }
    static const char hex[] = "0123456789abcdef";
    for (int half = 0; half < 2; half++) {
        /* xorshift64* */
        rng_state ^= rng_state >> 12;
        rng_state ^= rng_state << 25;
        rng_state ^= rng_state >> 27;
        uint64_t v = rng_state * 0x2545F4914F6CDD1Du;
        for (int i = 0; i < 16; i++) {
            out[half * 16 + i] = hex[v & 15];
            v >>= 4;
        }
    }
    out[32] = '\0';
}

const sl_str_t *sl_req_header(const sl_req_t *r, sl_str_t name)
{
    for (size_t i = 0; i < r->h.num_headers; i++) {
        if (sl_str_case_eq(r->headers[i].name, name))
            return &r->headers[i].value;
    }
    return NULL;
}

static int contains_ci(sl_str_t hay, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; i + n <= hay.len; i++) {
        if (sl_str_case_eq((sl_str_t){hay.data + i, n}, (sl_str_t){needle, n}))
            return 1;
    }
    return 0;
}

enum { FMT_JSON, FMT_TEXT, FMT_HTML, FMT_XML };

static int format_from(sl_str_t v, int *fmt)
{
    if (contains_ci(v, "application/json") || contains_ci(v, "+json")) {
        *fmt = FMT_JSON;
    } else if (contains_ci(v, "text/html")) {
        *fmt = FMT_HTML;
    } else if (contains_ci(v, "application/xml") || contains_ci(v, "text/xml")) {
        *fmt = FMT_XML;
    } else if (contains_ci(v, "text/plain")) {
        *fmt = FMT_TEXT;
    } else {
        return 0;
    }
    return 1;
}

void sl_hbuf_printf(sl_hbuf_t *h, const char *fmt, ...)
{
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof(tmp)) {
        sl_hbuf_add(h, tmp, (size_t)n);
        return;
    }
    sl_hbuf_flush(h);
    va_start(ap, fmt);
    evbuffer_add_vprintf(h->eb, fmt, ap);
    va_end(ap);
}

void sl_hbuf_header_u64(sl_hbuf_t *h, const char *name, size_t name_len, uint64_t v)
{
    char digits[24];
    size_t d = 0;
    do {
        digits[d++] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    sl_hbuf_add(h, name, name_len);
    char out[24];
    size_t n = 0;
    while (d > 0)
        out[n++] = digits[--d];
    out[n++] = '\r';
    out[n++] = '\n';
    sl_hbuf_add(h, out, n);
}

void sl_req_send_error(sl_req_t *r, int status, const char *message, int json_default,
                       int close_conn)
{
    sl_conn_t *c = r->c;
    sl_worker_t *w = c->w;
    if (r->response_started) {
        /* Too late for an error page: cut the connection so the client sees the failure. */
        r->keepalive = 0;
        r->response_done = 1;
        c->close_after = 1;
        sl_conn_close(c);
        return;
    }
    if (message == NULL)
        message = default_message(status);
    char fallback[64];
    if (message == NULL) {
        snprintf(fallback, sizeof(fallback), "The upstream server responded with %d", status);
        message = fallback;
    }
    int fmt = FMT_JSON, found = 0;
    if (r->head_len > 0) {
        const sl_str_t *accept = sl_req_header(r, SL_STR("accept"));
        if (accept)
            found = format_from(*accept, &fmt);
        if (!found && !json_default) {
            const sl_str_t *ct = sl_req_header(r, SL_STR("content-type"));
            if (ct)
                found = format_from(*ct, &fmt);
        }
    }
    if (!found && !json_default) {
        const char *def = w->conf->error_default_type ? w->conf->error_default_type : "";
        if (!format_from((sl_str_t){def, strlen(def)}, &fmt))
            fmt = FMT_TEXT;
    }
    char body[1024];
    const char *ctype;
    int n;
    switch (fmt) {
    case FMT_JSON:
        ctype = "application/json; charset=utf-8";
        n = snprintf(body, sizeof(body), "{\n  \"message\":\"%s\",\n  \"request_id\":\"%s\"\n}",
                     message, r->id);
        break;
    case FMT_HTML:
        ctype = "text/html; charset=utf-8";
        n = snprintf(body, sizeof(body),
                     "<!doctype html>\n<html>\n  <head>\n    <meta charset=\"utf-8\">\n"
                     "    <title>Error</title>\n  </head>\n  <body>\n    <h1>Error</h1>\n"
                     "    <p>%s.</p>\n    <p>request_id: %s</p>\n  </body>\n</html>\n",
                     message, r->id);
        break;
    case FMT_XML:
        ctype = "application/xml; charset=utf-8";
        n = snprintf(body, sizeof(body),
                     "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<error>\n  <message>%s</message>\n"
                     "  <requestid>%s</requestid>\n</error>\n",
                     message, r->id);
        break;
    default:
        ctype = "text/plain; charset=utf-8";
        n = snprintf(body, sizeof(body), "%s\nrequest_id: %s\n", message, r->id);
        break;
    }
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof(body))
        n = sizeof(body) - 1;
    sl_req_send_generated(r, status, ctype, body, (size_t)n, close_conn);
}

void sl_req_apply_resp_pre(sl_req_t *r)
{
    for (size_t i = 0; i < r->resp_pre_removed.n; i++) {
        sl_hdr_t *h = &r->resp_pre_removed.items[i];
        sl_hdr_list_remove(&r->resp_headers, (sl_str_t){h->name, h->name_len});
    }
    for (size_t i = 0; i < r->resp_pre_set.n; i++) {
        sl_hdr_t *h = &r->resp_pre_set.items[i];
        sl_hdr_list_add(&r->resp_headers, (sl_str_t){h->name, h->name_len},
                        (sl_str_t){h->value, h->value_len});
    }
}

static void add_u64_header(sl_hdr_list_t *l, sl_str_t name, uint64_t v)
{
    char buf[24];
    int n = snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v);
    sl_hdr_list_add(l, name, (sl_str_t){buf, (size_t)n});
}

void sl_req_send_generated(sl_req_t *r, int status, const char *ctype, const char *body,
                           size_t len, int close_conn)
{
    sl_conn_t *c = r->c;
    sl_worker_t *w = c->w;
    unsigned hdrs = w->conf->headers;
    if (r->response_started) {
        r->keepalive = 0;
        r->response_done = 1;
        c->close_after = 1;
        sl_conn_close(c);
        return;
    }
    if (close_conn || !r->body_done)
        r->keepalive = 0;
    r->status = status;

    sl_hdr_list_t *hl = &r->resp_headers;
    sl_hdr_list_clear(hl);
    r->resp_headers_ready = 1;
    const char *date = sl_http_date();
    sl_hdr_list_add(hl, SL_STR("Date"), (sl_str_t){date, strlen(date)});
    if (ctype != NULL)
        sl_hdr_list_add(hl, SL_STR("Content-Type"), (sl_str_t){ctype, strlen(ctype)});
    if (hdrs & SL_HDR_SERVER)
        sl_hdr_list_add(hl, SL_STR("Server"), SL_STR("sluice/" SLUICE_VERSION));
    if (hdrs & SL_HDR_RESPONSE_LATENCY)
        add_u64_header(hl, SL_STR("X-Kong-Response-Latency"),
                       (sl_now_us() - r->start_us) / 1000);
    if (hdrs & SL_HDR_REQUEST_ID)
        sl_hdr_list_add(hl, SL_STR("X-Kong-Request-Id"), (sl_str_t){r->id, 32});
    if (status == 426)
        sl_hdr_list_add(hl, SL_STR("Upgrade"), SL_STR("TLS/1.2, HTTP/1.1"));
    sl_req_apply_resp_pre(r);

    struct evbuffer *filtered = NULL;
    if (r->lua_flags & SL_LUA_HEADER_FILTER)
        sl_lua_header_filter(r);
    if (r->lua_flags & SL_LUA_BODY_FILTER) {
        filtered = evbuffer_new();
        sl_lua_body_filter(r, body, len, 1, filtered);
        len = evbuffer_get_length(filtered);
        body = (const char *)evbuffer_pullup(filtered, -1);
    }
    sl_hdr_list_remove(hl, SL_STR("Content-Length"));
    sl_hdr_list_remove(hl, SL_STR("Transfer-Encoding"));
    add_u64_header(hl, SL_STR("Content-Length"), len);

    struct evbuffer *out = bufferevent_get_output(c->bev);
    sl_hbuf_t hb;
    hb.eb = out;
    hb.len = 0;
    char sl[64];
    int sn = snprintf(sl, sizeof(sl), "HTTP/1.1 %d %s\r\n", r->status, sl_status_reason(r->status));
    sl_hbuf_add(&hb, sl, (size_t)sn);
    for (size_t i = 0; i < hl->n; i++) {
        if (sl_str_case_eq((sl_str_t){hl->items[i].name, hl->items[i].name_len},
                           SL_STR("connection")))
            continue;
        sl_hbuf_add(&hb, hl->items[i].name, hl->items[i].name_len);
        SL_HB_LIT(&hb, ": ");
        sl_hbuf_add(&hb, hl->items[i].value, hl->items[i].value_len);
        SL_HB_LIT(&hb, "\r\n");
    }
    if (r->status == 426)
        SL_HB_LIT(&hb, "Connection: Upgrade\r\n\r\n");
    else if (r->keepalive)
        SL_HB_LIT(&hb, "Connection: keep-alive\r\n\r\n");
    else
        SL_HB_LIT(&hb, "Connection: close\r\n\r\n");
    sl_hbuf_flush(&hb);
    int is_head = r->head_len > 0 && sl_str_eq(r->h.method, SL_STR("HEAD"));
    if (!is_head && len > 0) {
        evbuffer_add(out, body, len);
        r->bytes_sent = len;
    }
    if (filtered)
        evbuffer_free(filtered);
    r->response_started = 1;
    sl_req_response_done(r);
}

/* ---- access log ---- */

static void alog_flush_cb(evutil_socket_t fd, short what, void *arg)
{
    sl_access_log_flush(arg);
}

void sl_access_log_flush(sl_worker_t *w)
{
    sl_access_log_t *a = &w->alog;
    if (a->fd >= 0 && a->len > 0) {
        ssize_t n = write(a->fd, a->buf, a->len);
        (void)n;
    }
    a->len = 0;
}

void sl_access_log_write(sl_worker_t *w, sl_req_t *r)
{
    sl_access_log_t *a = &w->alog;
    if (a->fd < 0 || r->head_len == 0)
        return;
    char line[2048];
    static char tbuf[64];
    static time_t tlast;
    time_t now = time(NULL);
    if (now != tlast) {
        struct tm tm;
        localtime_r(&now, &tm);
        strftime(tbuf, sizeof(tbuf), "%d/%b/%Y:%H:%M:%S %z", &tm);
        tlast = now;
    }
    const sl_str_t *ref = sl_req_header(r, SL_STR("referer"));
    const sl_str_t *ua = sl_req_header(r, SL_STR("user-agent"));
    int tlen = (int)(r->h.target.len > 1024 ? 1024 : r->h.target.len);
    int n = snprintf(line, sizeof(line),
                     "%s - - [%s] \"%.*s %.*s HTTP/1.%d\" %d %llu \"%.*s\" \"%.*s\" %.3f\n",
                     r->client_ip[0] ? r->client_ip : r->c->peer_ip, tbuf, (int)r->h.method.len, r->h.method.data, tlen,
                     r->h.target.data, r->h.minor_version, r->status,
                     (unsigned long long)r->bytes_sent, ref ? (int)(ref->len > 256 ? 256 : ref->len) : 1,
                     ref ? ref->data : "-", ua ? (int)(ua->len > 256 ? 256 : ua->len) : 1,
                     ua ? ua->data : "-", (double)(sl_now_us() - r->start_us) / 1e6);
    if (n <= 0)
        return;
    size_t len = (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
    if (a->len + len > a->cap)
        sl_access_log_flush(w);
    if (len > a->cap)
        return;
    memcpy(a->buf + a->len, line, len);
    a->len += len;
    if (a->flush_timer == NULL) {
        a->flush_timer = event_new(w->base, -1, EV_PERSIST, alog_flush_cb, w);
        struct timeval tv = {1, 0};
        event_add(a->flush_timer, &tv);
    }
}

/* ---- requests ---- */

#define REQ_CACHE_MAX 64

/* Requests come from the worker's free list when it has one: the struct is reset but its
 * header array, head and path buffers keep their memory. */
static sl_req_t *req_create(sl_conn_t *c)
{
    sl_worker_t *w = c->w;
    sl_req_t *r = w->free_reqs;
    if (r != NULL) {
        w->free_reqs = r->next_free;
        w->nfree_reqs--;
        sl_header_t *headers = r->headers;
        char *head = r->head, *norm = r->norm;
        size_t head_cap = r->head_cap, norm_cap = r->norm_cap;
        memset(r, 0, sizeof(*r));
        r->headers = headers;
        r->head = head;
        r->head_cap = head_cap;
        r->norm = norm;
        r->norm_cap = norm_cap;
    } else {
        r = calloc(1, sizeof(*r));
        if (r == NULL)
            abort();
        r->headers = malloc(w->limits.max_headers * sizeof(sl_header_t));
        if (r->headers == NULL)
            abort();
    }
    r->c = c;
    r->start_us = sl_now_us();
    r->lua_co_ref = LUA_NOREF;
    r->up_connect_timeout = r->up_write_timeout = r->up_read_timeout = r->up_retries = -1;
    request_id(r->id);
    return r;
}

/* Frees what the Lua side attached to a request; the lists keep no memory afterwards. */
static void req_reset_lua(sl_req_t *r)
{
    sl_lua_request_done(r);
    sl_hdr_list_dispose(&r->up_set);
    sl_hdr_list_dispose(&r->up_removed);
    sl_hdr_list_dispose(&r->resp_headers);
    sl_hdr_list_dispose(&r->resp_pre_set);
    sl_hdr_list_dispose(&r->resp_pre_removed);
    free(r->up_path);
    free(r->up_query);
    free(r->up_method);
    free(r->exit_body);
    free(r->new_body);
    if (r->body_buf)
        evbuffer_free(r->body_buf);
    r->body_buf = NULL;
    r->up_path = r->up_query = r->up_method = r->exit_body = r->new_body = NULL;
}

static void req_destroy(sl_req_t *r)
{
    free(r->head);
    free(r->headers);
    free(r->norm);
    free(r);
}

static void req_free(sl_req_t *r)
{
    if (r == NULL)
        return;
    if (r->proxy)
        sl_proxy_free(r->proxy);
    req_reset_lua(r);
    sl_worker_t *w = r->c->w;
    if (r->decl != NULL) {
        sl_decl_unref(r->decl, w->L);
        r->decl = NULL;
    }
    if (w->nfree_reqs >= REQ_CACHE_MAX || r->head_cap > 65536) {
        req_destroy(r);
        return;
    }
    r->next_free = w->free_reqs;
    w->free_reqs = r;
    w->nfree_reqs++;
}

void sl_req_cache_clear(sl_worker_t *w)
{
    while (w->free_reqs != NULL) {
        sl_req_t *r = w->free_reqs;
        w->free_reqs = r->next_free;
        req_destroy(r);
    }
    w->nfree_reqs = 0;
}

void sl_req_set_body_timeout(sl_req_t *r, int on)
{
    const sl_conf_t *conf = r->c->w->conf;
    struct timeval rtv = {(time_t)(conf->client_body_timeout_ms / 1000),
                          (suseconds_t)(conf->client_body_timeout_ms % 1000) * 1000};
    struct timeval stv = {(time_t)(conf->send_timeout_ms / 1000),
                          (suseconds_t)(conf->send_timeout_ms % 1000) * 1000};
    bufferevent_set_timeouts(r->c->bev, on ? &rtv : NULL, &stv);
}

static void rebase(sl_str_t *s, const char *from, const char *to)
{
    if (s->data != NULL)
        s->data = to + (s->data - from);
}

/* ---- connections ---- */

static void conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    sl_conn_t *c = arg;
    if (c->tls != NULL && !c->tls_done) {
        sl_log_info("client timed out during the SSL handshake, client: %s", c->peer_ip);
        sl_conn_close(c);
        return;
    }
    if (c->state == SL_CONN_HEAD && c->head_started && c->req != NULL) {
        sl_log_info("client timed out while reading the request head, client: %s", c->peer_ip);
        sl_req_send_error(c->req, 408, NULL, 0, 1);
        return;
    }
    sl_conn_close(c);
}

static void conn_arm_timer(sl_conn_t *c, int64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    evtimer_add(c->timer, &tv);
}

void sl_conn_close(sl_conn_t *c)
{
    sl_worker_t *w = c->w;
    if (c->req) {
        if (c->req->head_len > 0 && c->req->status != 0 && !c->req->response_done)
            c->req->status = c->req->status ? c->req->status : 499;
        req_free(c->req);
        c->req = NULL;
    }
    if (c->timer)
        event_free(c->timer);
    if (c->bev)
        bufferevent_free(c->bev);
    TAILQ_REMOVE(&w->conns, c, link);
    w->nconns--;
    free(c);
    if (w->quitting && w->nconns == 0)
        event_base_loopexit(w->base, NULL);
}

void sl_server_close_idle(sl_worker_t *w)
{
    sl_conn_t *c, *next;
    for (c = TAILQ_FIRST(&w->conns); c != NULL; c = next) {
        next = TAILQ_NEXT(c, link);
        if (c->state == SL_CONN_HEAD && !c->head_started)
            sl_conn_close(c);
    }
}

const char *sl_conn_sni(const sl_conn_t *c)
{
    return c->tls ? SSL_get_servername(c->tls, TLSEXT_NAMETYPE_host_name) : NULL;
}

void sl_server_tls_hook(SSL *ssl, const char *sni, void *arg)
{
    sl_conn_t *c = SSL_get_app_data(ssl);
    if (c == NULL || c->tls_cert_phase)
        return;
    c->tls_cert_phase = 1;
    if (c->w->lua_active)
        sl_lua_certificate(c);
}

void sl_server_publish_stats(sl_worker_t *w)
{
    uint64_t reading = 0, writing = 0, waiting = 0;
    sl_conn_t *c;
    TAILQ_FOREACH(c, &w->conns, link)
    {
        if (c->state != SL_CONN_HEAD)
            writing++;
        else if (c->head_started)
            reading++;
        else
            waiting++; /* kept alive, between requests */
    }
    sl_stats_set(SL_STAT_ACTIVE, (uint64_t)w->nconns);
    sl_stats_set(SL_STAT_READING, reading);
    sl_stats_set(SL_STAT_WRITING, writing);
    sl_stats_set(SL_STAT_WAITING, waiting);
}

void sl_server_accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                         int socklen, void *arg)
{
    sl_listener_t *ls = arg;
    sl_worker_t *w = ls->w;
    sl_stats_add(SL_STAT_ACCEPTED, 1);
    sl_conn_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        abort();
    c->w = w;
    c->local_port = ls->port;
    c->ssl = ls->ssl;
    c->admin = ls->admin;
    if (sa->sa_family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, c->peer_ip, sizeof(c->peer_ip));
        c->peer_port = ntohs(in->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, c->peer_ip, sizeof(c->peer_ip));
        c->peer_port = ntohs(in6->sin6_port);
    } else {
        snprintf(c->peer_ip, sizeof(c->peer_ip), "unix:");
    }
    c->trusted = sl_cidr_match_text(w->trusted, w->ntrusted, c->peer_ip, strlen(c->peer_ip));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (ls->ssl) {
        /* the handshake runs inside the bufferevent; client_header_timeout bounds it */
        c->tls = SSL_new(ls->ssl_ctx);
        if (c->tls == NULL) {
            sl_log_error("SSL_new() failed, client: %s", c->peer_ip);
            ERR_clear_error();
            close(fd);
            free(c);
            return;
        }
        SSL_set_app_data(c->tls, c);
        c->bev = bufferevent_openssl_socket_new(w->base, fd, c->tls, BUFFEREVENT_SSL_ACCEPTING,
                                                BEV_OPT_CLOSE_ON_FREE);
        if (c->bev == NULL)
            SSL_free(c->tls);
        else
            bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
    } else {
        c->bev = bufferevent_socket_new(w->base, fd, BEV_OPT_CLOSE_ON_FREE);
    }
    if (c->bev == NULL) {
        close(fd);
        free(c);
        return;
    }
    c->timer = evtimer_new(w->base, conn_timer_cb, c);
    TAILQ_INSERT_TAIL(&w->conns, c, link);
    w->nconns++;
    sl_stats_add(SL_STAT_HANDLED, 1);
    bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb, c);
    bufferevent_setwatermark(c->bev, EV_READ, 0, w->read_hwm);
    bufferevent_setwatermark(c->bev, EV_WRITE, SL_CLIENT_OUT_LOW, 0);
    struct timeval send_tv = {(time_t)(w->conf->send_timeout_ms / 1000),
                              (suseconds_t)(w->conf->send_timeout_ms % 1000) * 1000};
    bufferevent_set_timeouts(c->bev, NULL, &send_tv);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    c->state = SL_CONN_HEAD;
    conn_arm_timer(c, w->conf->client_header_timeout_ms);
    c->head_started = 1;
}

static void conn_linger(sl_conn_t *c)
{
    c->state = SL_CONN_LINGER;
    if (c->req) {
        req_free(c->req);
        c->req = NULL;
    }
    shutdown(bufferevent_getfd(c->bev), SHUT_WR);
    evbuffer_drain(bufferevent_get_input(c->bev), evbuffer_get_length(bufferevent_get_input(c->bev)));
    bufferevent_enable(c->bev, EV_READ);
    conn_arm_timer(c, 2000);
}

/* The response is complete and flushed: log, then keep the connection or close it. */
static void req_finalize(sl_conn_t *c)
{
    sl_req_t *r = c->req;
    sl_worker_t *w = c->w;
    w->total_requests++;
    sl_stats_add(SL_STAT_REQUESTS, 1);
    c->requests++;
    if (r->lua_flags & SL_LUA_LOG)
        sl_lua_log(r);
    sl_access_log_write(w, r);
    int keep = r->keepalive && !c->close_after && !w->quitting &&
               (int)c->requests < w->conf->keepalive_requests && r->body_done;
    if (!keep) {
        struct evbuffer *in = bufferevent_get_input(c->bev);
        if (!r->body_done || evbuffer_get_length(in) > 0) {
            conn_linger(c);
            return;
        }
        sl_conn_close(c);
        return;
    }
    req_free(r);
    c->req = NULL;
    c->state = SL_CONN_HEAD;
    c->head_started = 0;
    c->last_len = 0;
    bufferevent_enable(c->bev, EV_READ);
    if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0) {
        conn_process(c);
    } else {
        conn_arm_timer(c, w->conf->keepalive_timeout_ms);
    }
}

void sl_req_response_done(sl_req_t *r)
{
    r->response_done = 1;
    sl_conn_t *c = r->c;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    if (!c->ssl)
        sl_bev_write_now(c->bev);
    if (evbuffer_get_length(out) == 0)
        req_finalize(c);
    /* else: conn_write_cb finalizes once the output is flushed */
}

int sl_req_body_pump(sl_req_t *r, struct evbuffer *dst, int chunked_out, size_t max_out,
                     int *status)
{
    struct evbuffer *in = bufferevent_get_input(r->c->bev);
    sl_worker_t *w = r->c->w;
    int64_t limit = w->conf->client_max_body_size;
    size_t moved = 0;
    if (r->body_done)
        return SL_DONE;
    if (r->body_kind == SL_BODY_LENGTH) {
        size_t avail = evbuffer_get_length(in);
        size_t n = avail < (uint64_t)r->body_remaining ? avail : (size_t)r->body_remaining;
        if (n > max_out)
            n = max_out;
        if (n > 0) {
            if (dst)
                evbuffer_remove_buffer(in, dst, n);
            else
                evbuffer_drain(in, n);
            r->body_remaining -= (int64_t)n;
            r->body_received += n;
        }
        if (r->body_remaining == 0) {
            r->body_done = 1;
            return SL_DONE;
        }
        return SL_OK;
    }
    /* chunked */
    for (;;) {
        size_t avail = evbuffer_get_length(in);
        if (avail == 0 || moved >= max_out)
            return SL_OK;
        size_t want = avail < 16384 ? avail : 16384;
        const char *p = (const char *)evbuffer_pullup(in, (ev_ssize_t)want);
        size_t consumed = 0, off = 0, plen = 0;
        int rc = sl_http_chunked_parse(&r->chunked, p, want, &consumed, &off, &plen);
        if (rc == SL_ERROR) {
            *status = 400;
            return SL_ERROR;
        }
        if (plen > 0) {
            r->body_received += plen;
            if (limit > 0 && r->body_received > (uint64_t)limit) {
                *status = 413;
                return SL_ERROR;
            }
            if (dst) {
                if (chunked_out)
                    evbuffer_add_printf(dst, "%zx\r\n", plen);
                evbuffer_add(dst, p + off, plen);
                if (chunked_out)
                    evbuffer_add(dst, "\r\n", 2);
            }
            moved += plen;
        }
        evbuffer_drain(in, consumed);
        if (rc == SL_DONE) {
            if (dst && chunked_out)
                evbuffer_add(dst, "0\r\n\r\n", 5);
            r->body_done = 1;
            return SL_DONE;
        }
        if (consumed == 0) {
            if (want == avail)
                return SL_OK; /* need more bytes */
            /* the decoder wants a longer contiguous run (a long size line) */
            if (want >= 16384) {
                *status = 400;
                return SL_ERROR;
            }
        }
    }
}

static void route_request(sl_req_t *r)
{
    sl_conn_t *c = r->c;
    sl_worker_t *w = c->w;
    const sl_str_t *host = sl_req_header(r, SL_STR("host"));
    sl_router_request_t rq = {
        .method = r->h.method,
        .host = r->info.host.len ? r->info.host : (host ? *host : SL_NULL_STR),
        .port = c->local_port,
        .path = r->h.path,
        .headers = r->headers,
        .nheaders = r->h.num_headers,
        .sni = SL_NULL_STR,
        .protocol = c->ssl ? SL_PROTO_HTTPS : SL_PROTO_HTTP,
    };
    const char *sni = sl_conn_sni(c);
    if (sni != NULL)
        rq.sni = (sl_str_t){sni, strlen(sni)};
    size_t scratch = r->h.path.len * 3 + 16;
    if (r->norm_cap < scratch) {
        free(r->norm);
        r->norm_cap = scratch < 256 ? 256 : scratch;
        r->norm = malloc(r->norm_cap);
        if (r->norm == NULL)
            abort();
    }
    scratch = r->norm_cap;
    if (r->decl == NULL) {
        r->decl = w->decl;
        sl_decl_ref(r->decl);
    }
    int rc = sl_router_match(r->decl->router, &rq, r->norm, scratch, &r->match);
    if (rc == SL_ERROR) {
        sl_req_send_error(r, 400, NULL, 0, 1);
        return;
    }
    if (rc != SL_OK) {
        /* global plugins still run (rewrite, then their filters and log), as in Kong */
        r->route = NULL;
        if (w->lua_active) {
            sl_lua_run_access(r);
            return;
        }
        sl_req_send_error(r, 404, "no Route matched with those values", 1, 0);
        return;
    }
    r->route = r->match.data;
    unsigned proto = c->ssl ? SL_PROTO_HTTPS : SL_PROTO_HTTP;
    if (r->route->protocols && !(r->route->protocols & proto)) {
        sl_req_send_error(r, 426, "Please use HTTPS protocol", 1, 0);
        return;
    }
    r->service = r->route->service;
    if (w->lua_active) {
        sl_lua_run_access(r);
        return;
    }
    sl_req_access_done(r);
}

void sl_req_access_done(sl_req_t *r)
{
    if (r->response_started)
        return;
    if (r->lua_flags & SL_LUA_EXIT) {
        /* the Content-Type, if any, is among the plugin's header edits */
        sl_req_send_generated(r, r->status, NULL, r->exit_body, r->exit_body_len, 0);
        return;
    }
    if (r->route == NULL) {
        sl_req_send_error(r, 404, "no Route matched with those values", 1, 0);
        return;
    }
    if (r->service == NULL) {
        sl_req_send_error(r, 503, "no Service found with those values", 1, 0);
        return;
    }
    if (!r->service->enabled) {
        sl_req_send_error(r, 404, "no Route matched with those values", 1, 0);
        return;
    }
    sl_proxy_start(r);
}

static int valid_ip(const char *s, size_t len)
{
    char buf[64];
    unsigned char a[16];
    if (len == 0 || len >= sizeof(buf))
        return 0;
    memcpy(buf, s, len);
    buf[len] = '\0';
    return inet_pton(AF_INET, buf, a) == 1 || inet_pton(AF_INET6, buf, a) == 1;
}

/* nginx's realip as Kong configures it: from a trusted peer, the client address is taken
 * from real_ip_header (for X-Forwarded-For the last entry, or with real_ip_recursive the
 * last one that is not itself trusted). */
static void set_client_ip(sl_req_t *r)
{
    sl_conn_t *c = r->c;
    sl_worker_t *w = c->w;
    snprintf(r->client_ip, sizeof(r->client_ip), "%s", c->peer_ip);
    const char *hn = w->conf->real_ip_header;
    if (!c->trusted || hn == NULL || hn[0] == '\0' || strcmp(hn, "proxy_protocol") == 0)
        return;
    const sl_str_t *v = sl_req_header(r, (sl_str_t){hn, strlen(hn)});
    if (v == NULL)
        return;
    const char *end = v->data + v->len;
    for (;;) {
        const char *item_end = end;
        while (item_end > v->data && (item_end[-1] == ' ' || item_end[-1] == '\t'))
            item_end--;
        const char *item = item_end;
        while (item > v->data && item[-1] != ',')
            item--;
        const char *start = item;
        while (start < item_end && (*start == ' ' || *start == '\t'))
            start++;
        size_t len = (size_t)(item_end - start);
        if (!valid_ip(start, len))
            return;
        snprintf(r->client_ip, sizeof(r->client_ip), "%.*s", (int)len, start);
        if (!w->conf->real_ip_recursive || item == v->data ||
            !sl_cidr_match_text(w->trusted, w->ntrusted, start, len))
            return;
        end = item - 1;
    }
}

static void handle_request(sl_req_t *r)
{
    sl_conn_t *c = r->c;
    sl_worker_t *w = c->w;
    int status = 0;
    if (sl_http_request_validate(&r->h, &r->info, &status) != SL_OK) {
        sl_req_send_error(r, status, NULL, 0, 1);
        return;
    }
    set_client_ip(r);
    r->keepalive = r->info.keepalive && !w->quitting &&
                   (int)c->requests + 1 < w->conf->keepalive_requests;
    if (r->info.chunked) {
        r->body_kind = SL_BODY_CHUNKED;
        sl_http_chunked_init(&r->chunked, w->limits.max_header_bytes);
    } else if (r->info.content_length > 0) {
        r->body_kind = SL_BODY_LENGTH;
        r->body_remaining = r->info.content_length;
    } else {
        r->body_kind = SL_BODY_NONE;
        r->body_done = 1;
    }
    int64_t limit = w->conf->client_max_body_size;
    if (limit > 0 && r->info.content_length > limit) {
        sl_log_error("client intended to send too large body: %lld bytes, client: %s",
                     (long long)r->info.content_length, c->peer_ip);
        sl_req_send_error(r, 413, NULL, 0, 1);
        return;
    }
    if (c->admin)
        sl_lua_run_admin(r); /* lua/sluice/admin */
    else
        route_request(r);
}

static void conn_process(sl_conn_t *c)
{
    sl_worker_t *w = c->w;
    struct evbuffer *in = bufferevent_get_input(c->bev);
    size_t len = evbuffer_get_length(in);
    if (len == 0)
        return;
    int arm_header_timer = !c->head_started;
    c->head_started = 1;
    if (c->req == NULL)
        c->req = req_create(c);
    sl_req_t *r = c->req;
    size_t want = len < w->limits.max_header_bytes + 1 ? len : w->limits.max_header_bytes + 1;
    char *p = (char *)evbuffer_pullup(in, (ev_ssize_t)want);
    r->h.headers = r->headers;
    r->h.num_headers = w->limits.max_headers;
    int status = 400;
    int rc = sl_http_parse_request(p, want, c->last_len, &r->h, &w->limits, &status);
    if (rc == SL_AGAIN) {
        /* only a head that did not arrive whole needs its deadline */
        if (arm_header_timer)
            conn_arm_timer(c, w->conf->client_header_timeout_ms);
        c->last_len = want;
        return;
    }
    if (rc < 0) {
        memset(&r->h, 0, sizeof(r->h));
        sl_log_info("client sent invalid request (%d), client: %s", status, c->peer_ip);
        c->state = SL_CONN_ACTIVE;
        evtimer_del(c->timer);
        r->body_done = 1;
        sl_req_send_error(r, status, NULL, 0, 1);
        return;
    }
    size_t head_len = (size_t)rc;
    if (r->head_cap < head_len) {
        free(r->head);
        r->head_cap = head_len < 1024 ? 1024 : head_len;
        r->head = malloc(r->head_cap);
        if (r->head == NULL)
            abort();
    }
    memcpy(r->head, p, head_len);
    r->head_len = head_len;
    rebase(&r->h.method, p, r->head);
    rebase(&r->h.target, p, r->head);
    rebase(&r->h.path, p, r->head);
    rebase(&r->h.query, p, r->head);
    rebase(&r->h.authority, p, r->head);
    for (size_t i = 0; i < r->h.num_headers; i++) {
        rebase(&r->headers[i].name, p, r->head);
        rebase(&r->headers[i].value, p, r->head);
    }
    evbuffer_drain(in, head_len);
    c->last_len = 0;
    c->state = SL_CONN_ACTIVE;
    evtimer_del(c->timer);
    handle_request(r);
}

static void conn_read_cb(struct bufferevent *bev, void *arg)
{
    sl_conn_t *c = arg;
    switch (c->state) {
    case SL_CONN_HEAD:
        conn_process(c);
        break;
    case SL_CONN_ACTIVE:
    case SL_CONN_TUNNEL:
        if (c->req && c->req->body_wait) {
            sl_lua_body_readable(c->req);
            break;
        }
        if (c->req && c->req->proxy)
            sl_proxy_client_readable(c->req);
        else if (c->req && !c->req->body_done && c->req->response_done) {
            /* discarding what the client still sends */
            int st;
            if (sl_req_body_pump(c->req, NULL, 0, SIZE_MAX, &st) == SL_ERROR)
                c->req->keepalive = 0;
        }
        break;
    case SL_CONN_LINGER: {
        struct evbuffer *in = bufferevent_get_input(bev);
        evbuffer_drain(in, evbuffer_get_length(in));
        break;
    }
    }
}

static void conn_write_cb(struct bufferevent *bev, void *arg)
{
    sl_conn_t *c = arg;
    sl_req_t *r = c->req;
    if (r == NULL) {
        return;
    }
    if (r->proxy && !r->response_done)
        sl_proxy_client_drained(r);
    if (c->req == r && r->response_done &&
        evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        req_finalize(c);
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
    sl_conn_t *c = arg;
    if (what & BEV_EVENT_CONNECTED) {
        c->tls_done = 1; /* the TLS handshake completed */
        return;
    }
    if (c->tls != NULL && !c->tls_done && (what & (BEV_EVENT_ERROR | BEV_EVENT_EOF))) {
        /* as nginx: a failed handshake is the client's business, logged at info */
        unsigned long e = bufferevent_get_openssl_error(bev);
        char buf[256] = "the client closed the connection";
        if (e != 0)
            ERR_error_string_n(e, buf, sizeof(buf));
        else if (what & BEV_EVENT_ERROR)
            snprintf(buf, sizeof(buf), "%s", evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
        sl_log_info("SSL handshake failed: %s, client: %s", buf, c->peer_ip);
        sl_conn_close(c);
        return;
    }
    if (what & BEV_EVENT_TIMEOUT) {
        if ((what & BEV_EVENT_READING) && c->req && !c->req->response_started) {
            sl_log_info("client timed out while reading the request body, client: %s",
                        c->peer_ip);
            sl_req_send_error(c->req, 408, NULL, 0, 1);
            return;
        }
        sl_log_info("client timed out (%s), client: %s",
                    (what & BEV_EVENT_WRITING) ? "sending" : "reading", c->peer_ip);
    }
    if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR) && c->state == SL_CONN_ACTIVE &&
        c->req && c->req->body_done) {
        /* half-close after a complete request: flush what is queued, then close */
        c->close_after = 1;
        c->req->keepalive = 0;
        bufferevent_disable(bev, EV_READ);
        return;
    }
    sl_conn_close(c);
}
