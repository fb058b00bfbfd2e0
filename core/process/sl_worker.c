#include "process/sl_worker.h"
#include "process/sl_stats.h"

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/sl_log.h"
#include "http/sl_server.h"
#include "lua/sl_lua_runtime.h"
#include "lua/sl_lua_socket.h"
#include "net/sl_listener.h"

#define DRAIN_MAX_SECONDS 60

static void quit_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    sl_worker_t *w = arg;
    sl_log_notice("graceful shutdown timed out with %zu connections left", w->nconns);
    event_base_loopexit(w->base, NULL);
}

static void close_listeners(sl_worker_t *w)
{
    for (size_t i = 0; i < w->nlisteners; i++) {
        if (w->listeners[i].ev) {
            evconnlistener_free(w->listeners[i].ev);
            w->listeners[i].ev = NULL;
        }
    }
}

/* Before a graceful exit closes this worker's own (reuseport) sockets, take the
 * connections already waiting in their accept queues: closing would reset them. */
static void drain_accept_queues(sl_worker_t *w)
{
    for (size_t i = 0; i < w->nlisteners; i++) {
        sl_listener_t *ls = &w->listeners[i];
        if (ls->ev == NULL)
            continue;
        evconnlistener_disable(ls->ev);
        for (int k = 0; k < 4096; k++) {
            struct sockaddr_storage ss;
            socklen_t len = sizeof(ss);
            int fd = accept4(ls->fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0)
                break;
            sl_server_accept_cb(ls->ev, fd, (struct sockaddr *)&ss, (int)len, ls);
        }
    }
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
    sl_worker_t *w = arg;
    if (sig == SIGQUIT) {
        if (w->quitting)
            return;
        sl_log_notice("gracefully shutting down");
        w->quitting = 1;
        drain_accept_queues(w);
        close_listeners(w);
        sl_lua_timers_shutdown();
        sl_server_close_idle(w);
        sl_upstream_pool_close_all(w);
        if (w->nconns == 0) {
            event_base_loopexit(w->base, NULL);
            return;
        }
        w->quit_timer = evtimer_new(w->base, quit_timer_cb, w);
        struct timeval tv = {DRAIN_MAX_SECONDS, 0};
        evtimer_add(w->quit_timer, &tv);
        return;
    }
    sl_log_notice("exiting on signal %d", (int)sig);
    event_base_loopbreak(w->base);
}

static void stats_cb(evutil_socket_t fd, short what, void *arg) { sl_server_publish_stats(arg); }

static void accept_error_cb(struct evconnlistener *l, void *arg)
{
    sl_log_error("accept() failed: %s", evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
}

void sl_worker_main(int index, sl_conf_t *conf, sl_decl_t *decl, lua_State *L,
                    const sl_listen_fd_t *fds, size_t nfds)
{
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    signal(SIGPIPE, SIG_IGN);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGHUP, SIG_IGN);
    signal(SIGUSR1, SIG_IGN);
    signal(SIGUSR2, SIG_IGN);

    static sl_worker_t worker;
    sl_worker_t *w = &worker;
    memset(w, 0, sizeof(*w));
    w->index = index;
    w->conf = conf;
    w->decl = decl;
    w->L = L;
    TAILQ_INIT(&w->conns);
    TAILQ_INIT(&w->pool.idle);
    w->limits.max_request_line = (size_t)conf->large_header_buffer_size;
    w->limits.max_header_line = (size_t)conf->large_header_buffer_size;
    w->limits.max_header_bytes =
        (size_t)conf->large_header_buffer_size * (size_t)(conf->large_header_buffers > 0 ? conf->large_header_buffers : 1);
    w->limits.max_headers = (size_t)(conf->client_max_headers > 0 ? conf->client_max_headers : 100);
    w->read_hwm = w->limits.max_header_bytes + 1 > 65536 ? w->limits.max_header_bytes + 1 : 65536;

    /* One thread per worker: no locks. The changelist folds the add/delete pairs that
     * bufferevents make for every write into nothing when they cancel out. */
    struct event_config *ecfg = event_config_new();
    event_config_set_flag(ecfg, EVENT_BASE_FLAG_NOLOCK | EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    w->base = event_base_new_with_config(ecfg);
    event_config_free(ecfg);
    if (w->base == NULL) {
        sl_log(SL_LOG_EMERG, "event_base_new() failed");
        _exit(2);
    }
    w->dns = evdns_base_new(w->base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
                                         EVDNS_BASE_DISABLE_WHEN_INACTIVE);
    if (w->dns == NULL)
        w->dns = evdns_base_new(w->base, EVDNS_BASE_DISABLE_WHEN_INACTIVE);
    if (w->dns != NULL && conf->dns_hostsfile && conf->dns_hostsfile[0])
        evdns_base_load_hosts(w->dns, conf->dns_hostsfile);

    char err[512];
    if (sl_upstream_ssl_init(w, err, sizeof(err)) != SL_OK) {
        sl_log(SL_LOG_EMERG, "%s", err);
        _exit(2);
    }

    if (sl_cidr_parse_list(conf->trusted_ips, &w->trusted, &w->ntrusted, err, sizeof(err)) !=
        SL_OK) {
        sl_log(SL_LOG_EMERG, "%s", err);
        _exit(2);
    }

    w->alog.fd = -1;
    if (conf->proxy_access_log && strcmp(conf->proxy_access_log, "off") != 0) {
        char *path = sl_conf_prefixed(conf, conf->proxy_access_log);
        w->alog.fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (w->alog.fd < 0)
            sl_log_error("cannot open access log %s", path);
        free(path);
        w->alog.cap = 64 * 1024;
        w->alog.buf = malloc(w->alog.cap);
        if (w->alog.buf == NULL)
            abort();
    }

    w->listeners = calloc(nfds ? nfds : 1, sizeof(sl_listener_t));
    if (w->listeners == NULL)
        abort();
    for (size_t i = 0; i < nfds; i++) {
        if (fds[i].fd < 0)
            continue;
        sl_listener_t *ls = &w->listeners[w->nlisteners];
        ls->w = w;
        ls->fd = fds[i].fd;
        ls->ssl = fds[i].ssl;
        ls->port = fds[i].port;
        ls->admin = fds[i].admin;
        if (ls->ssl) {
            sl_listener_tls_t *tls = sl_listener_tls_current(ls->admin);
            if (tls == NULL) {
                sl_log_error("no TLS context for the ssl listener on port %u", ls->port);
                close(fds[i].fd);
                continue;
            }
            sl_listener_tls_set_hook(tls, sl_server_tls_hook, w);
            ls->ssl_ctx = sl_listener_tls_ctx(tls);
        }
        ls->ev = evconnlistener_new(w->base, sl_server_accept_cb, ls, LEV_OPT_CLOSE_ON_FREE, -1,
                                    fds[i].fd);
        if (ls->ev == NULL) {
            sl_log_error("cannot listen on fd %d", fds[i].fd);
            continue;
        }
        evconnlistener_set_error_cb(ls->ev, accept_error_cb);
        w->nlisteners++;
    }

    if (sl_lua_worker_init(w, err, sizeof(err)) != SL_OK) {
        sl_log(SL_LOG_EMERG, "Lua runtime: %s", err);
        _exit(2);
    }

    struct event *sigs[4];
    int signums[4] = {SIGQUIT, SIGTERM, SIGINT, SIGWINCH};
    for (int i = 0; i < 4; i++) {
        sigs[i] = evsignal_new(w->base, signums[i], signal_cb, w);
        evsignal_add(sigs[i], NULL);
    }
    /* GET /status: this worker's connection states, published every second */
    sl_stats_bind(index);
    struct event *stats_ev = event_new(w->base, -1, EV_PERSIST, stats_cb, w);
    struct timeval second = {1, 0};
    evtimer_add(stats_ev, &second);
    sl_log_debug("worker %d started", index);

    event_base_dispatch(w->base);
    event_free(stats_ev);

    sl_access_log_flush(w);
    close_listeners(w);
    sl_lua_timers_shutdown();
    while (!TAILQ_EMPTY(&w->conns))
        sl_conn_close(TAILQ_FIRST(&w->conns));
    sl_upstream_pool_close_all(w);
    sl_req_cache_clear(w);
    sl_proxy_cache_clear(w);
    for (int i = 0; i < 4; i++)
        event_free(sigs[i]);
    if (w->quit_timer)
        event_free(w->quit_timer);
    if (w->alog.flush_timer)
        event_free(w->alog.flush_timer);
    if (w->alog.fd >= 0)
        close(w->alog.fd);
    free(w->alog.buf);
    free(w->listeners);
    free(w->trusted);
    if (w->dns)
        evdns_base_free(w->dns, 1);
    /* Lua first: cosockets and their pool free bufferevents of this base */
    sl_lua_socket_pool_close_all();
    sl_decl_unref(w->decl, L);
    if (L)
        lua_close(L);
    SSL_CTX_free(w->up_ssl);
    event_base_free(w->base);
    sl_conf_destroy(conf);
    sl_log_debug("worker %d exiting", index);
    exit(0);
}
