/*
 * sl_lua_socket.c: ngx.socket.tcp cosockets (see sl_lua_socket.h).
 *
 * Every primitive first tries to complete at once (data already buffered, a pooled
 * connection); otherwise it records the operation on the socket, arms the operation's
 * timeout, makes the running coroutine wait and yields. The bufferevent callbacks finish
 * the operation by pushing its results on the waiting coroutine and resuming it. Input is
 * read only while a receive is pending, so a peer cannot make a socket buffer without
 * bound behind Lua's back.
 */
#include "lua/sl_lua_socket.h"

#include <ctype.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <lauxlib.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "base/sl_log.h"
#include "lua/sl_lua_runtime.h"
#include "lua/sl_lua_vm.h"

#define SOCK_MT "sluice.cosocket"
#define DEFAULT_TIMEOUT_MS 60000
#define MAX_PATTERN 4096

enum { OP_NONE = 0, OP_CONNECT, OP_HANDSHAKE, OP_SEND, OP_RECV };
enum { RECV_LINE, RECV_ALL, RECV_COUNT, RECV_ANY, RECV_UNTIL };

typedef struct sl_cosock_s {
    struct bufferevent *bev; /* NULL when closed */
    SSL *ssl;                /* owned by bev once the handshake started */
    char *pool_key;          /* owned */
    unsigned reused;
    int connect_timeout, send_timeout, read_timeout; /* ms, <= 0: none */
    int eof;                 /* the peer closed its side */
    int sock_err;            /* errno of a failed socket, 0 if none */

    /* the pending operation */
    int op;
    sl_lua_wait_t wait;
    struct event *timer;
    struct evdns_getaddrinfo_request *dns;
    int dns_failed;          /* resolution or connect failed before the coroutine yielded */
    char dns_err[512];
    char host[256];          /* for messages (truncated) */
    int port;
    int verify;
    size_t sent;
    int recv_mode;
    size_t recv_n;           /* RECV_COUNT/ANY: bytes; RECV_UNTIL: the size argument or 0 */
    char pattern[MAX_PATTERN];
    size_t patlen;
    int inclusive;
} sl_cosock_t;

typedef struct sl_idle_s {
    struct bufferevent *bev;
    SSL *ssl;
    char *key;
    unsigned reused;
    struct event *timer;
    TAILQ_ENTRY(sl_idle_s) link;
} sl_idle_t;

static TAILQ_HEAD(, sl_idle_s) idle_pool = TAILQ_HEAD_INITIALIZER(idle_pool);

static void sock_read_cb(struct bufferevent *bev, void *arg);
static void sock_write_cb(struct bufferevent *bev, void *arg);
static void sock_event_cb(struct bufferevent *bev, short what, void *arg);

/* ---- the pool of idle connections ---- */

static void idle_free(sl_idle_t *e)
{
    TAILQ_REMOVE(&idle_pool, e, link);
    if (e->timer)
        event_free(e->timer);
    bufferevent_free(e->bev);
    free(e->key);
    free(e);
}

static void idle_timeout_cb(evutil_socket_t fd, short what, void *arg) { idle_free(arg); }

/* An idle connection that becomes readable was closed by the peer (or sent something
 * nobody asked for): either way it is no longer reusable. */
static void idle_read_cb(struct bufferevent *bev, void *arg) { idle_free(arg); }

static void idle_event_cb(struct bufferevent *bev, short what, void *arg) { idle_free(arg); }

void sl_lua_socket_pool_close_all(void)
{
    while (!TAILQ_EMPTY(&idle_pool))
        idle_free(TAILQ_FIRST(&idle_pool));
}

static sl_idle_t *idle_take(const char *key)
{
    sl_idle_t *e;
    TAILQ_FOREACH(e, &idle_pool, link)
    {
        if (strcmp(e->key, key) == 0) {
            TAILQ_REMOVE(&idle_pool, e, link);
            if (e->timer)
                event_free(e->timer);
            e->timer = NULL;
            return e;
        }
    }
    return NULL;
}

/* ---- helpers ---- */

static sl_cosock_t *check_sock(lua_State *L) { return luaL_checkudata(L, 1, SOCK_MT); }

static void sock_close(sl_cosock_t *s)
{
    if (s->dns != NULL) {
        struct evdns_getaddrinfo_request *d = s->dns;
        s->dns = NULL;
        evdns_getaddrinfo_cancel(d);
    }
    if (s->timer)
        evtimer_del(s->timer);
    if (s->bev != NULL) {
        bufferevent_free(s->bev);
        s->bev = NULL;
    }
    s->ssl = NULL;
    s->eof = 0;
    s->sock_err = 0;
}

static void lower_first(char *msg)
{
    if (msg[0] && isupper((unsigned char)msg[0]) && !isupper((unsigned char)msg[1]))
        msg[0] = (char)tolower((unsigned char)msg[0]);
}

/* nil, msg: an operation's failure as OpenResty reports it */
static int push_error(lua_State *L, const char *msg)
{
    lua_pushnil(L);
    lua_pushstring(L, msg);
    return 2;
}

static void push_errno(lua_State *L, int err)
{
    char msg[128];
    snprintf(msg, sizeof(msg), "%s", evutil_socket_error_to_string(err));
    lower_first(msg);
    lua_pushstring(L, msg);
}

static void op_timeout_cb(evutil_socket_t fd, short what, void *arg);

static void arm_timer(sl_cosock_t *s, int ms)
{
    sl_worker_t *w = sl_lua_worker();
    if (s->timer == NULL) {
        s->timer = evtimer_new(w->base, op_timeout_cb, s);
        if (s->timer == NULL)
            abort();
    } else {
        evtimer_del(s->timer);
    }
    if (ms > 0) {
        struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
        event_base_update_cache_time(w->base);
        evtimer_add(s->timer, &tv);
    }
}

/* The coroutine was abandoned while waiting on s: the operation is dropped and, as its
 * state is unknown (half sent, half read), the connection too. */
static void sock_cancel(void *obj)
{
    sl_cosock_t *s = obj;
    s->op = OP_NONE;
    s->wait.r = NULL;
    s->wait.timer = NULL;
    sock_close(s);
}

static int wait_op(lua_State *L, sl_cosock_t *s, int op)
{
    if (sl_lua_wait(&s->wait, s, sock_cancel) != SL_OK)
        return luaL_error(L, "API disabled in the current context");
    s->op = op;
    return sl_lua_yield_wait(L);
}

/* Ends the pending operation with the n results already pushed on the waiting thread. */
static void op_done(sl_cosock_t *s, int n)
{
    s->op = OP_NONE;
    if (s->timer)
        evtimer_del(s->timer);
    sl_lua_wait_resume(&s->wait, n);
}

static void set_callbacks(sl_cosock_t *s)
{
    bufferevent_setcb(s->bev, sock_read_cb, sock_write_cb, sock_event_cb, s);
}

/* ---- receive ---- */

/* Pushes the receive's results on L and returns how many, or 0 when more input is needed.
 * final: no more input will come (err names why: "closed", "timeout", an errno text). */
static int recv_try(sl_cosock_t *s, lua_State *L, const char *final)
{
    struct evbuffer *in = bufferevent_get_input(s->bev);
    size_t len = evbuffer_get_length(in);
    switch (s->recv_mode) {
    case RECV_LINE: {
        size_t eol_len = 0;
        struct evbuffer_ptr p = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_LF);
        if (p.pos >= 0) {
            size_t n = (size_t)p.pos;
            char *line = malloc(n + 1);
            if (line == NULL)
                abort();
            evbuffer_remove(in, line, n);
            evbuffer_drain(in, eol_len);
            /* as OpenResty: the LF ends the line, CRs anywhere in it are dropped */
            size_t keep = 0;
            for (size_t i = 0; i < n; i++) {
                if (line[i] != '\r')
                    line[keep++] = line[i];
            }
            lua_pushlstring(L, line, keep);
            free(line);
            return 1;
        }
        break;
    }
    case RECV_ALL:
        if (final && strcmp(final, "closed") == 0) {
            char *all = malloc(len ? len : 1);
            if (all == NULL)
                abort();
            evbuffer_remove(in, all, len);
            lua_pushlstring(L, all, len);
            free(all);
            return 1;
        }
        break;
    case RECV_COUNT:
    case RECV_ANY: {
        size_t want = s->recv_n;
        if (s->recv_mode == RECV_ANY && len > 0 && len < want)
            want = len;
        if (len >= want) {
            char *buf = malloc(want ? want : 1);
            if (buf == NULL)
                abort();
            evbuffer_remove(in, buf, want);
            lua_pushlstring(L, buf, want);
            free(buf);
            return 1;
        }
        break;
    }
    case RECV_UNTIL: {
        struct evbuffer_ptr p = evbuffer_search(in, s->pattern, s->patlen, NULL);
        size_t size = s->recv_n;
        if (p.pos >= 0) {
            size_t n = (size_t)p.pos;
            if (size > 0 && n == 0) {
                /* chunked reading reached the boundary: consume it, report the end */
                evbuffer_drain(in, s->patlen);
                lua_pushnil(L);
                return 1;
            }
            if (size > 0 && n > size)
                n = size;
            int whole = size == 0 || n == (size_t)p.pos;
            size_t take = n + (size == 0 && s->inclusive ? s->patlen : 0);
            char *buf = malloc(take ? take : 1);
            if (buf == NULL)
                abort();
            evbuffer_remove(in, buf, take);
            if (size == 0 && !s->inclusive)
                evbuffer_drain(in, s->patlen);
            lua_pushlstring(L, buf, take);
            free(buf);
            lua_pushboolean(L, whole);
            return 2;
        }
        if (size > 0 && len >= s->patlen) {
            /* bytes that cannot start the pattern may go out already */
            size_t safe = len - (s->patlen - 1);
            if (safe > size)
                safe = size;
            if (safe >= size || final) {
                char *buf = malloc(safe);
                if (buf == NULL)
                    abort();
                evbuffer_remove(in, buf, safe);
                lua_pushlstring(L, buf, safe);
                free(buf);
                lua_pushboolean(L, 0);
                return 2;
            }
        }
        break;
    }
    }
    if (final == NULL)
        return 0;
    /* failed: nil, err, the partial data (consumed) */
    char *part = malloc(len ? len : 1);
    if (part == NULL)
        abort();
    evbuffer_remove(in, part, len);
    lua_pushnil(L);
    lua_pushstring(L, final);
    lua_pushlstring(L, part, len);
    free(part);
    return 3;
}

static const char *input_end_reason(sl_cosock_t *s, char *buf, size_t buflen)
{
    if (s->sock_err) {
        snprintf(buf, buflen, "%s", evutil_socket_error_to_string(s->sock_err));
        lower_first(buf);
        return buf;
    }
    return s->eof ? "closed" : NULL;
}

/* The pending operation's deadline passed. A receive keeps the connection (OpenResty
 * lets the caller read on); connect, handshake and send close it. */
static void op_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    sl_cosock_t *s = arg;
    if (s->op == OP_NONE)
        return;
    lua_State *co = sl_lua_wait_thread(&s->wait);
    if (s->op == OP_RECV) {
        bufferevent_disable(s->bev, EV_READ);
        op_done(s, recv_try(s, co, "timeout"));
        return;
    }
    sock_close(s);
    lua_pushnil(co);
    lua_pushliteral(co, "timeout");
    op_done(s, 2);
}
static void recv_progress(sl_cosock_t *s)
{
    char reason[128];
    const char *end = input_end_reason(s, reason, sizeof(reason));
    lua_State *co = sl_lua_wait_thread(&s->wait);
    int n = recv_try(s, co, end);
    if (n == 0)
        return;
    bufferevent_disable(s->bev, EV_READ);
    if (end != NULL && n == 3)
        sock_close(s); /* a failed receive closes the connection, as OpenResty */
    op_done(s, n);
}

static int recv_start(lua_State *L, sl_cosock_t *s)
{
    if (!sl_lua_can_wait())
        return luaL_error(L, "API disabled in the current context");
    char reason[128];
    int n = recv_try(s, L, input_end_reason(s, reason, sizeof(reason)));
    if (n > 0) {
        if (n == 3)
            sock_close(s);
        return n;
    }
    bufferevent_enable(s->bev, EV_READ);
    arm_timer(s, s->read_timeout);
    return wait_op(L, s, OP_RECV);
}

/* sock_receive(sock, mode[, n]) -> data | nil, err, partial
 * mode: "l" a line, "a" everything until the peer closes, "n" exactly n bytes,
 * "any" what is there (at least 1, at most n bytes). */
static int l_sock_receive(lua_State *L)
{
    sl_cosock_t *s = check_sock(L);
    const char *mode = luaL_checkstring(L, 2);
    if (s->bev == NULL) {
        return push_error(L, "closed");
    }
    if (s->op != OP_NONE)
        return luaL_error(L, "socket busy reading");
    if (strcmp(mode, "l") == 0) {
        s->recv_mode = RECV_LINE;
    } else if (strcmp(mode, "a") == 0) {
        s->recv_mode = RECV_ALL;
    } else if (strcmp(mode, "n") == 0 || strcmp(mode, "any") == 0) {
        lua_Number n = luaL_checknumber(L, 3);
        int any = mode[0] == 'a';
        if (n < 0 || (any && n < 1))
            return luaL_error(L, "bad argument #2 to 'receive' (bad pattern argument)");
        s->recv_mode = any ? RECV_ANY : RECV_COUNT;
        s->recv_n = (size_t)n;
    } else {
        return luaL_error(L, "bad argument #2 to 'receive' (bad pattern argument)");
    }
    return recv_start(L, s);
}

/* sock_receiveuntil(sock, pattern, inclusive, size) -> data, whole | nil | nil, err, partial */
static int l_sock_receiveuntil(lua_State *L)
{
    sl_cosock_t *s = check_sock(L);
    size_t plen;
    const char *pat = luaL_checklstring(L, 2, &plen);
    if (plen == 0 || plen > MAX_PATTERN)
        return luaL_error(L, "bad pattern argument: %s", plen ? "too long" : "empty");
    if (s->bev == NULL) {
        return push_error(L, "closed");
    }
    if (s->op != OP_NONE)
        return luaL_error(L, "socket busy reading");
    memcpy(s->pattern, pat, plen);
    s->patlen = plen;
    s->inclusive = lua_toboolean(L, 3);
    lua_Number size = luaL_optnumber(L, 4, 0);
    s->recv_n = size > 0 ? (size_t)size : 0;
    s->recv_mode = RECV_UNTIL;
    return recv_start(L, s);
}

/* ---- send ---- */

/* sock_send(sock, data) -> bytes | nil, err */
static int l_sock_send(lua_State *L)
{
    sl_cosock_t *s = check_sock(L);
    size_t len;
    const char *data = luaL_checklstring(L, 2, &len);
    if (s->bev == NULL || s->eof || s->sock_err) {
        sock_close(s);
        return push_error(L, "closed");
    }
    if (s->op != OP_NONE)
        return luaL_error(L, "socket busy writing");
    if (!sl_lua_can_wait())
        return luaL_error(L, "API disabled in the current context");
    if (len == 0) {
        lua_pushinteger(L, 0);
        return 1;
    }
    if (bufferevent_write(s->bev, data, len) != 0) {
        return push_error(L, "closed");
    }
    s->sent = len;
    arm_timer(s, s->send_timeout);
    return wait_op(L, s, OP_SEND);
}

/* ---- callbacks ---- */

static void sock_read_cb(struct bufferevent *bev, void *arg)
{
    sl_cosock_t *s = arg;
    if (s->op == OP_RECV)
        recv_progress(s);
    else
        bufferevent_disable(bev, EV_READ);
}

static void sock_write_cb(struct bufferevent *bev, void *arg)
{
    sl_cosock_t *s = arg;
    if (s->op != OP_SEND || evbuffer_get_length(bufferevent_get_output(bev)) > 0)
        return;
    lua_pushinteger(sl_lua_wait_thread(&s->wait), (lua_Integer)s->sent);
    op_done(s, 1);
}

static void handshake_failed(sl_cosock_t *s, lua_State *co)
{
    long vr = s->ssl ? SSL_get_verify_result(s->ssl) : X509_V_OK;
    char msg[256];
    unsigned long e = bufferevent_get_openssl_error(s->bev);
    if (s->verify && vr != X509_V_OK) {
        snprintf(msg, sizeof(msg), "%ld: %s", vr, X509_verify_cert_error_string(vr));
    } else if (e != 0) {
        char es[200];
        ERR_error_string_n(e, es, sizeof(es));
        snprintf(msg, sizeof(msg), "handshake failed: %s", es);
    } else {
        snprintf(msg, sizeof(msg), "handshake failed");
    }
    lua_pushnil(co);
    lua_pushstring(co, msg);
    sock_close(s);
}

static void sock_event_cb(struct bufferevent *bev, short what, void *arg)
{
    sl_cosock_t *s = arg;
    lua_State *co = s->op != OP_NONE ? sl_lua_wait_thread(&s->wait) : NULL;
    if (what & BEV_EVENT_CONNECTED) {
        if (s->op == OP_CONNECT) {
            lua_pushinteger(co, 1);
            op_done(s, 1);
        } else if (s->op == OP_HANDSHAKE) {
            lua_pushboolean(co, 1);
            op_done(s, 1);
        }
        return;
    }
    if (what & BEV_EVENT_EOF)
        s->eof = 1;
    if (what & BEV_EVENT_ERROR) {
        s->sock_err = EVUTIL_SOCKET_ERROR();
        if (s->sock_err == 0)
            s->eof = 1;
    }
    switch (s->op) {
    case OP_CONNECT: {
        lua_pushnil(co);
        if (s->sock_err)
            push_errno(co, s->sock_err);
        else
            lua_pushliteral(co, "closed");
        sock_close(s);
        op_done(s, 2);
        break;
    }
    case OP_HANDSHAKE:
        handshake_failed(s, co);
        op_done(s, 2);
        break;
    case OP_SEND:
        lua_pushnil(co);
        lua_pushliteral(co, "closed");
        sock_close(s);
        op_done(s, 2);
        break;
    case OP_RECV:
        recv_progress(s);
        break;
    default:
        break;
    }
}

/* ---- connect ---- */

static int start_connect(sl_cosock_t *s, const struct sockaddr *sa, int salen, char *err,
                         size_t errlen)
{
    sl_worker_t *w = sl_lua_worker();
    s->bev = bufferevent_socket_new(w->base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (s->bev == NULL) {
        snprintf(err, errlen, "no memory");
        return SL_ERROR;
    }
    set_callbacks(s);
    if (bufferevent_socket_connect(s->bev, sa, salen) != 0) {
        int e = EVUTIL_SOCKET_ERROR();
        snprintf(err, errlen, "%s", evutil_socket_error_to_string(e));
        lower_first(err);
        sock_close(s);
        return SL_ERROR;
    }
    return SL_OK;
}

static void dns_cb(int result, struct evutil_addrinfo *res, void *arg)
{
    sl_cosock_t *s = arg;
    if (result == EVUTIL_EAI_CANCEL)
        return;
    s->dns = NULL;
    int waiting = s->op == OP_CONNECT;
    char err[512] = "";
    if (result != 0 || res == NULL) {
        char why[160];
        snprintf(why, sizeof(why), "%s", evutil_gai_strerror(result));
        lower_first(why);
        snprintf(err, sizeof(err), "%s could not be resolved (%s)", s->host, why);
    } else {
        struct sockaddr_storage ss;
        memcpy(&ss, res->ai_addr, res->ai_addrlen);
        int len = (int)res->ai_addrlen;
        if (ss.ss_family == AF_INET)
            ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)s->port);
        else
            ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)s->port);
        if (start_connect(s, (struct sockaddr *)&ss, len, err, sizeof(err)) == SL_OK)
            err[0] = '\0';
    }
    if (res)
        evutil_freeaddrinfo(res);
    if (err[0] == '\0')
        return; /* connecting: the event callback finishes */
    if (!waiting) {
        /* resolved (and failed) before the coroutine yielded: l_sock_connect answers */
        s->dns_failed = 1;
        snprintf(s->dns_err, sizeof(s->dns_err), "%s", err);
        return;
    }
    lua_State *co = sl_lua_wait_thread(&s->wait);
    lua_pushnil(co);
    lua_pushstring(co, err);
    op_done(s, 2);
}

/* sock_connect(sock, host, port, pool_key) -> 1 | nil, err */
static int l_sock_connect(lua_State *L)
{
    sl_cosock_t *s = check_sock(L);
    const char *host = luaL_checkstring(L, 2);
    int port = (int)luaL_optinteger(L, 3, 0);
    const char *key = luaL_checkstring(L, 4);
    sl_worker_t *w = sl_lua_worker();
    if (w == NULL || w->base == NULL || !sl_lua_can_wait())
        return luaL_error(L, "API disabled in the current context");
    if (s->op != OP_NONE)
        return luaL_error(L, "socket busy");
    sock_close(s);
    free(s->pool_key);
    s->pool_key = strdup(key);
    if (s->pool_key == NULL)
        abort();

    sl_idle_t *e = idle_take(key);
    if (e != NULL) {
        s->bev = e->bev;
        s->ssl = e->ssl;
        s->reused = e->reused + 1;
        free(e->key);
        free(e);
        set_callbacks(s);
        bufferevent_disable(s->bev, EV_READ);
        lua_pushinteger(L, 1);
        return 1;
    }
    s->reused = 0;

    char err[160];
    if (strncmp(host, "unix:", 5) == 0) {
        struct sockaddr_un sun;
        memset(&sun, 0, sizeof(sun));
        sun.sun_family = AF_UNIX;
        size_t plen = strlen(host + 5);
        if (plen == 0 || plen >= sizeof(sun.sun_path)) {
            return push_error(L, "bad unix socket path");
        }
        memcpy(sun.sun_path, host + 5, plen);
        if (start_connect(s, (struct sockaddr *)&sun, (int)sizeof(sun), err, sizeof(err)) !=
            SL_OK) {
            return push_error(L, err);
        }
    } else {
        if (port <= 0 || port > 65535)
            return luaL_error(L, "bad port number: %d", port);
        s->port = port;
        s->dns_failed = 0;
        snprintf(s->host, sizeof(s->host), "%s", host);
        struct evutil_addrinfo hints;
        memset(&hints, 0, sizeof(hints));
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_protocol = IPPROTO_TCP;
        hints.ai_flags = EVUTIL_AI_ADDRCONFIG;
        struct evdns_getaddrinfo_request *req =
            evdns_getaddrinfo(w->dns, host, NULL, &hints, dns_cb, s);
        if (s->dns_failed) {
            return push_error(L, s->dns_err);
        }
        s->dns = req; /* NULL when resolved at once (the connect is under way) */
    }
    arm_timer(s, s->connect_timeout);
    return wait_op(L, s, OP_CONNECT);
}

/* ---- TLS ---- */

/* sock_sslhandshake(sock, server_name, verify) -> true | nil, err */
static int l_sock_sslhandshake(lua_State *L)
{
    sl_cosock_t *s = check_sock(L);
    const char *sni = luaL_optstring(L, 2, NULL);
    int verify = lua_toboolean(L, 3);
    sl_worker_t *w = sl_lua_worker();
    if (s->bev == NULL) {
        return push_error(L, "closed");
    }
    if (s->op != OP_NONE)
        return luaL_error(L, "socket busy");
    if (s->ssl != NULL) { /* a pooled TLS connection */
        lua_pushboolean(L, 1);
        return 1;
    }
    if (!sl_lua_can_wait())
        return luaL_error(L, "API disabled in the current context");
    SSL *ssl = SSL_new(w->up_ssl);
    if (ssl == NULL) {
        return push_error(L, "SSL_new() failed");
    }
    if (sni != NULL && sni[0])
        SSL_set_tlsext_host_name(ssl, sni);
    s->verify = verify;
    if (verify) {
        SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
        if (sni != NULL && sni[0])
            SSL_set1_host(ssl, sni);
    } else {
        SSL_set_verify(ssl, SSL_VERIFY_NONE, NULL);
    }
    struct bufferevent *tls = bufferevent_openssl_filter_new(
        w->base, s->bev, ssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
    if (tls == NULL) {
        SSL_free(ssl);
        return push_error(L, "handshake failed");
    }
    bufferevent_openssl_set_allow_dirty_shutdown(tls, 1);
    s->bev = tls;
    s->ssl = ssl;
    set_callbacks(s);
    bufferevent_enable(tls, EV_READ | EV_WRITE);
    arm_timer(s, s->connect_timeout);
    return wait_op(L, s, OP_HANDSHAKE);
}

/* ---- the rest ---- */

/* sock_setkeepalive(sock, timeout_ms, pool_size) -> 1 | nil, err */
static int l_sock_setkeepalive(lua_State *L)
{
    sl_cosock_t *s = check_sock(L);
    int timeout = (int)luaL_optinteger(L, 2, DEFAULT_TIMEOUT_MS);
    int size = (int)luaL_optinteger(L, 3, 0);
    sl_worker_t *w = sl_lua_worker();
    if (s->bev == NULL) {
        return push_error(L, "closed");
    }
    if (s->op != OP_NONE)
        return luaL_error(L, "socket busy");
    if (size <= 0)
        size = w->conf->lua_socket_pool_size > 0 ? w->conf->lua_socket_pool_size : 30;
    if (s->eof || s->sock_err || evbuffer_get_length(bufferevent_get_output(s->bev)) > 0) {
        sock_close(s);
        return push_error(L, "closed");
    }
    if (evbuffer_get_length(bufferevent_get_input(s->bev)) > 0) {
        sock_close(s);
        return push_error(L, "unread data in buffer");
    }
    /* a full pool gives up its least recently used connection for this key */
    int count = 0;
    sl_idle_t *e, *oldest = NULL;
    TAILQ_FOREACH(e, &idle_pool, link)
    {
        if (strcmp(e->key, s->pool_key) == 0) {
            count++;
            oldest = e;
        }
    }
    if (count >= size && oldest != NULL)
        idle_free(oldest);
    e = calloc(1, sizeof(*e));
    if (e == NULL)
        abort();
    e->bev = s->bev;
    e->ssl = s->ssl;
    e->key = s->pool_key;
    e->reused = s->reused;
    s->bev = NULL;
    s->ssl = NULL;
    s->pool_key = NULL;
    if (s->timer)
        evtimer_del(s->timer);
    TAILQ_INSERT_HEAD(&idle_pool, e, link);
    bufferevent_setcb(e->bev, idle_read_cb, NULL, idle_event_cb, e);
    bufferevent_enable(e->bev, EV_READ);
    if (timeout > 0) {
        e->timer = evtimer_new(w->base, idle_timeout_cb, e);
        struct timeval tv = {timeout / 1000, (timeout % 1000) * 1000};
        evtimer_add(e->timer, &tv);
    }
    lua_pushinteger(L, 1);
    return 1;
}

static int l_sock_close(lua_State *L)
{
    sl_cosock_t *s = check_sock(L);
    if (s->op != OP_NONE)
        return luaL_error(L, "socket busy");
    if (s->bev == NULL) {
        return push_error(L, "closed");
    }
    sock_close(s);
    lua_pushinteger(L, 1);
    return 1;
}

static int l_sock_reused(lua_State *L)
{
    sl_cosock_t *s = check_sock(L);
    if (s->bev == NULL) {
        return push_error(L, "closed");
    }
    lua_pushinteger(L, (lua_Integer)s->reused);
    return 1;
}

static int l_sock_settimeouts(lua_State *L)
{
    sl_cosock_t *s = check_sock(L);
    s->connect_timeout = (int)luaL_checkinteger(L, 2);
    s->send_timeout = (int)luaL_checkinteger(L, 3);
    s->read_timeout = (int)luaL_checkinteger(L, 4);
    return 0;
}

static int l_sock_gc(lua_State *L)
{
    sl_cosock_t *s = luaL_checkudata(L, 1, SOCK_MT);
    sock_close(s);
    if (s->timer)
        event_free(s->timer);
    s->timer = NULL;
    free(s->pool_key);
    s->pool_key = NULL;
    return 0;
}

static int l_sock_new(lua_State *L)
{
    sl_cosock_t *s = lua_newuserdata(L, sizeof(*s));
    memset(s, 0, sizeof(*s));
    s->connect_timeout = s->send_timeout = s->read_timeout = DEFAULT_TIMEOUT_MS;
    luaL_getmetatable(L, SOCK_MT);
    lua_setmetatable(L, -2);
    return 1;
}

void sl_lua_socket_register(lua_State *L, int idx)
{
    if (idx < 0)
        idx = lua_gettop(L) + idx + 1;
    if (luaL_newmetatable(L, SOCK_MT)) {
        lua_pushcfunction(L, l_sock_gc);
        lua_setfield(L, -2, "__gc");
    }
    /* sluice.core.cosocket_mt: socket.lua sets __index */
    lua_setfield(L, idx, "cosocket_mt");
    static const luaL_Reg fns[] = {
        {"sock_new", l_sock_new},
        {"sock_connect", l_sock_connect},
        {"sock_sslhandshake", l_sock_sslhandshake},
        {"sock_send", l_sock_send},
        {"sock_receive", l_sock_receive},
        {"sock_receiveuntil", l_sock_receiveuntil},
        {"sock_setkeepalive", l_sock_setkeepalive},
        {"sock_close", l_sock_close},
        {"sock_reused", l_sock_reused},
        {"sock_settimeouts", l_sock_settimeouts},
        {NULL, NULL},
    };
    for (const luaL_Reg *f = fns; f->name; f++) {
        lua_pushcfunction(L, f->func);
        lua_setfield(L, idx, f->name);
    }
}
