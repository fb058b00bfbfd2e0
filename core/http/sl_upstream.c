/*
 * sl_upstream.c: connections to upstreams: non-blocking DNS (evdns, which reads /etc/hosts),
 * TCP connect, TLS with SNI and optional verification, and the worker's keepalive pool.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/util.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/sl_log.h"
#include "http/sl_server.h"
#include "http/sl_upstream.h"

typedef struct {
    sl_worker_t *w;
    sl_upstream_connect_cb cb;
    void *arg;
    char *key;
    char host[256];
    char sni[256];
    unsigned port;
    int tls;
    int verify;
    int verify_depth;
    struct bufferevent *bev;
    struct evdns_getaddrinfo_request *dnsreq;
    struct event *timer;
    int failed;
    int kind;
    int cancelled;
    int in_dns;
    char msg[512];
} sl_connect_t;

void sl_upstream_cancel(void *handle);

static void connect_free(sl_connect_t *ct)
{
    if (ct->bev)
        bufferevent_free(ct->bev);
    if (ct->timer)
        event_free(ct->timer);
    free(ct->key);
    free(ct);
}

static void connect_fail(sl_connect_t *ct, int kind, const char *msg)
{
    if (ct->failed)
        return;
    ct->failed = 1;
    ct->kind = kind;
    snprintf(ct->msg, sizeof(ct->msg), "%s", msg);
    struct timeval zero = {0, 0};
    evtimer_del(ct->timer);
    evtimer_add(ct->timer, &zero); /* report from the loop, never from inside get() */
}

static void connect_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    sl_connect_t *ct = arg;
    int kind = ct->failed ? ct->kind : SL_UP_ERR_TIMEOUT;
    const char *msg = ct->failed ? ct->msg : "upstream timed out while connecting";
    char buf[512];
    snprintf(buf, sizeof(buf), "%s", msg);
    sl_upstream_connect_cb cb = ct->cb;
    void *cbarg = ct->arg;
    sl_upstream_cancel(ct);
    cb(cbarg, NULL, kind, buf);
}

static void connected(sl_connect_t *ct)
{
    sl_upconn_t *uc = calloc(1, sizeof(*uc));
    if (uc == NULL)
        abort();
    uc->w = ct->w;
    uc->bev = ct->bev;
    uc->key = ct->key;
    uc->read_timeout_ms = uc->write_timeout_ms = -1;
    ct->bev = NULL;
    ct->key = NULL;
    int one = 1;
    setsockopt(bufferevent_getfd(uc->bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    bufferevent_setcb(uc->bev, NULL, NULL, NULL, NULL);
    sl_upstream_connect_cb cb = ct->cb;
    void *cbarg = ct->arg;
    connect_free(ct);
    cb(cbarg, uc, 0, NULL);
}

static void connect_event_cb(struct bufferevent *bev, short what, void *arg)
{
    sl_connect_t *ct = arg;
    if (what & BEV_EVENT_CONNECTED) {
        connected(ct);
        return;
    }
    char msg[256];
    unsigned long ssl_err = ct->tls ? bufferevent_get_openssl_error(bev) : 0;
    if (ssl_err != 0) {
        char e[200];
        ERR_error_string_n(ssl_err, e, sizeof(e));
        snprintf(msg, sizeof(msg), "upstream TLS handshake failed: %s", e);
        connect_fail(ct, SL_UP_ERR_TLS, msg);
        return;
    }
    int err = EVUTIL_SOCKET_ERROR();
    snprintf(msg, sizeof(msg), "connect() failed (%d: %s) while connecting to upstream", err,
             err ? evutil_socket_error_to_string(err) : "connection closed");
    connect_fail(ct, SL_UP_ERR_CONNECT, msg);
}

static void start_connect(sl_connect_t *ct, struct sockaddr *sa, int salen)
{
    sl_worker_t *w = ct->w;
    if (ct->tls) {
        SSL *ssl = SSL_new(w->up_ssl);
        if (ssl == NULL) {
            connect_fail(ct, SL_UP_ERR_TLS, "SSL_new() failed");
            return;
        }
        struct in6_addr tmp;
        if (ct->sni[0] && inet_pton(AF_INET, ct->sni, &tmp) != 1 &&
            inet_pton(AF_INET6, ct->sni, &tmp) != 1)
            SSL_set_tlsext_host_name(ssl, ct->sni);
        if (ct->verify) {
            SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
            SSL_set1_host(ssl, ct->sni[0] ? ct->sni : ct->host);
            if (ct->verify_depth >= 0)
                SSL_set_verify_depth(ssl, ct->verify_depth);
        } else {
            SSL_set_verify(ssl, SSL_VERIFY_NONE, NULL);
        }
        ct->bev = bufferevent_openssl_socket_new(w->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
                                                 BEV_OPT_CLOSE_ON_FREE);
        if (ct->bev == NULL) {
            SSL_free(ssl);
            connect_fail(ct, SL_UP_ERR_TLS, "cannot create a TLS connection");
            return;
        }
        bufferevent_openssl_set_allow_dirty_shutdown(ct->bev, 1);
    } else {
        ct->bev = bufferevent_socket_new(w->base, -1, BEV_OPT_CLOSE_ON_FREE);
        if (ct->bev == NULL) {
            connect_fail(ct, SL_UP_ERR_CONNECT, "cannot create a socket");
            return;
        }
    }
    bufferevent_setcb(ct->bev, NULL, NULL, connect_event_cb, ct);
    if (bufferevent_socket_connect(ct->bev, sa, salen) < 0) {
        char msg[256];
        int err = EVUTIL_SOCKET_ERROR();
        snprintf(msg, sizeof(msg), "connect() failed (%d: %s) while connecting to upstream", err,
                 evutil_socket_error_to_string(err));
        connect_fail(ct, SL_UP_ERR_CONNECT, msg);
    }
}

static void dns_cb(int result, struct evutil_addrinfo *res, void *arg)
{
    sl_connect_t *ct = arg;
    if (ct->cancelled) {
        /* evdns reports a cancel later, from the loop: ct was kept alive for this */
        if (res)
            evutil_freeaddrinfo(res);
        connect_free(ct);
        return;
    }
    ct->dnsreq = NULL;
    if (result != 0 || res == NULL) {
        char msg[300];
        snprintf(msg, sizeof(msg), "%s could not be resolved (%s)", ct->host,
                 evutil_gai_strerror(result));
        connect_fail(ct, SL_UP_ERR_DNS, msg);
        if (res)
            evutil_freeaddrinfo(res);
        return;
    }
    struct evutil_addrinfo *ai = res;
    for (struct evutil_addrinfo *p = res; p; p = p->ai_next) {
        if (p->ai_family == AF_INET) {
            ai = p;
            break;
        }
    }
    struct sockaddr_storage ss;
    memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
    int len = (int)ai->ai_addrlen;
    if (ss.ss_family == AF_INET)
        ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)ct->port);
    else
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)ct->port);
    evutil_freeaddrinfo(res);
    start_connect(ct, (struct sockaddr *)&ss, len);
}

int sl_upstream_get(sl_worker_t *w, const sl_service_t *s, const char *sni, int timeout_ms,
                    sl_upstream_connect_cb cb, void *arg, sl_upconn_t **out, void **handle)
{
    int verify = s->tls && s->tls_verify == 1;
    const char *key = s->pool_key;
    char keybuf[600];
    if (sni != NULL && strcmp(sni, s->host) != 0) {
        snprintf(keybuf, sizeof(keybuf), "%s:%u|%d|%s|%d", s->host, s->port, s->tls, sni,
                 verify);
        key = keybuf;
    }
    sl_upconn_t *uc;
    TAILQ_FOREACH(uc, &w->pool.idle, link)
    {
        if (strcmp(uc->key, key) == 0) {
            TAILQ_REMOVE(&w->pool.idle, uc, link);
            w->pool.nidle--;
            if (uc->idle_timer)
                evtimer_del(uc->idle_timer);
            bufferevent_setcb(uc->bev, NULL, NULL, NULL, NULL);
            *out = uc;
            *handle = NULL;
            return SL_OK;
        }
    }
    sl_connect_t *ct = calloc(1, sizeof(*ct));
    if (ct == NULL)
        abort();
    ct->w = w;
    ct->cb = cb;
    ct->arg = arg;
    ct->key = strdup(key);
    if (ct->key == NULL)
        abort();
    ct->port = s->port;
    ct->tls = s->tls;
    ct->verify = verify;
    ct->verify_depth = s->tls_verify_depth;
    snprintf(ct->host, sizeof(ct->host), "%s", s->host);
    snprintf(ct->sni, sizeof(ct->sni), "%s", sni ? sni : "");
    ct->timer = evtimer_new(w->base, connect_timer_cb, ct);
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    evtimer_add(ct->timer, &tv);
    *out = NULL;
    *handle = ct;

    struct sockaddr_in sin;
    struct sockaddr_in6 sin6;
    memset(&sin, 0, sizeof(sin));
    memset(&sin6, 0, sizeof(sin6));
    if (inet_pton(AF_INET, s->host, &sin.sin_addr) == 1) {
        sin.sin_family = AF_INET;
        sin.sin_port = htons((uint16_t)s->port);
        start_connect(ct, (struct sockaddr *)&sin, sizeof(sin));
    } else if (inet_pton(AF_INET6, s->host, &sin6.sin6_addr) == 1) {
        sin6.sin6_family = AF_INET6;
        sin6.sin6_port = htons((uint16_t)s->port);
        start_connect(ct, (struct sockaddr *)&sin6, sizeof(sin6));
    } else if (w->dns == NULL) {
        connect_fail(ct, SL_UP_ERR_DNS, "no DNS resolver");
    } else {
        struct evutil_addrinfo hints;
        memset(&hints, 0, sizeof(hints));
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_protocol = IPPROTO_TCP;
        ct->in_dns = 1;
        ct->dnsreq = evdns_getaddrinfo(w->dns, s->host, NULL, &hints, dns_cb, ct);
        ct->in_dns = 0;
    }
    return SL_AGAIN;
}

void sl_upstream_cancel(void *handle)
{
    sl_connect_t *ct = handle;
    if (ct == NULL)
        return;
    if (ct->dnsreq != NULL) {
        /* the resolver calls dns_cb once more with a cancel result; it frees ct then */
        struct evdns_getaddrinfo_request *req = ct->dnsreq;
        ct->dnsreq = NULL;
        ct->cancelled = 1;
        if (ct->timer) {
            event_free(ct->timer);
            ct->timer = NULL;
        }
        evdns_getaddrinfo_cancel(req);
        return;
    }
    connect_free(ct);
}

static void upconn_free(sl_upconn_t *uc)
{
    if (uc->idle_timer)
        event_free(uc->idle_timer);
    if (uc->bev)
        bufferevent_free(uc->bev);
    free(uc->key);
    free(uc);
}

static void pool_remove(sl_worker_t *w, sl_upconn_t *uc)
{
    TAILQ_REMOVE(&w->pool.idle, uc, link);
    w->pool.nidle--;
    upconn_free(uc);
}

static void idle_event_cb(struct bufferevent *bev, short what, void *arg)
{
    sl_upconn_t *uc = arg;
    pool_remove(uc->w, uc);
}

static void idle_read_cb(struct bufferevent *bev, void *arg)
{
    /* an idle upstream must not talk: whatever it sent, the connection is unusable */
    sl_upconn_t *uc = arg;
    pool_remove(uc->w, uc);
}

static void idle_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    sl_upconn_t *uc = arg;
    pool_remove(uc->w, uc);
}

void sl_upstream_release(sl_worker_t *w, sl_upconn_t *uc, int reusable)
{
    if (uc == NULL)
        return;
    if (!reusable || w->quitting || w->conf->upstream_keepalive_pool_size <= 0 ||
        (int)uc->requests >= w->conf->upstream_keepalive_max_requests ||
        evbuffer_get_length(bufferevent_get_input(uc->bev)) > 0) {
        upconn_free(uc);
        return;
    }
    /* The service's timeouts stay set while idle (a read timeout ends an idle connection
     * like the idle timer does); re-setting them per request costs two timer updates. */
    bufferevent_setcb(uc->bev, idle_read_cb, NULL, idle_event_cb, uc);
    bufferevent_setwatermark(uc->bev, EV_READ, 0, 0);
    if (!(bufferevent_get_enabled(uc->bev) & EV_READ))
        bufferevent_enable(uc->bev, EV_READ);
    if (uc->idle_timer == NULL)
        uc->idle_timer = evtimer_new(w->base, idle_timer_cb, uc);
    int64_t ms = w->conf->upstream_keepalive_idle_timeout_ms;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    evtimer_add(uc->idle_timer, &tv);
    TAILQ_INSERT_HEAD(&w->pool.idle, uc, link);
    w->pool.nidle++;
    while (w->pool.nidle > (size_t)w->conf->upstream_keepalive_pool_size) {
        sl_upconn_t *old = TAILQ_LAST(&w->pool.idle, sl_upconn_list_s);
        pool_remove(w, old);
    }
}

void sl_upstream_discard(sl_upconn_t *uc)
{
    if (uc)
        upconn_free(uc);
}

void sl_upstream_pool_close_all(sl_worker_t *w)
{
    while (!TAILQ_EMPTY(&w->pool.idle))
        pool_remove(w, TAILQ_FIRST(&w->pool.idle));
}

int sl_upstream_ssl_init(sl_worker_t *w, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) {
        snprintf(err, errlen, "SSL_CTX_new() failed");
        return SL_ERROR;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    const char *trusted = w->conf->lua_ssl_trusted_certificate;
    if (trusted == NULL || trusted[0] == '\0')
        trusted = "system";
    char *list = strdup(trusted);
    if (list == NULL)
        abort();
    char *save = NULL;
    for (char *item = strtok_r(list, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        while (*item == ' ')
            item++;
        size_t n = strlen(item);
        while (n > 0 && item[n - 1] == ' ')
            item[--n] = '\0';
        if (n == 0)
            continue;
        if (strcmp(item, "system") == 0) {
            SSL_CTX_set_default_verify_paths(ctx);
        } else if (SSL_CTX_load_verify_locations(ctx, item, NULL) != 1) {
            snprintf(err, errlen, "lua_ssl_trusted_certificate: cannot load '%s'", item);
            free(list);
            SSL_CTX_free(ctx);
            return SL_ERROR;
        }
    }
    free(list);
    SSL_CTX_set_verify_depth(ctx, w->conf->lua_ssl_verify_depth > 0 ? w->conf->lua_ssl_verify_depth : 1);
    w->up_ssl = ctx;
    return SL_OK;
}
