/*
 * sl_lua_runtime.c: the C side of lua/sluice/runtime.lua: the access coroutine and its
 * yields, the filter and log calls, ngx.sleep, and the current request.
 */
#include "lua/sl_lua_runtime.h"

#include <event2/buffer.h>
#include <lauxlib.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/sl_log.h"
#include "lua/sl_lua_socket.h"
#include "lua/sl_lua_vm.h"

enum { FN_ACCESS = 0, FN_HEADER_FILTER, FN_BODY_FILTER, FN_LOG, FN_DONE, FN_ADMIN, FN_COUNT };

static const char *const fn_names[FN_COUNT] = {"access", "header_filter", "body_filter", "log",
                                               "done", "admin"};

static sl_req_t *current;
static sl_worker_t *the_worker;

/* ---- the watchdog ----
 * A thread of the worker checks every 50 ms how long the current run of Lua (one resume
 * or one pcall) has lasted. Past lua_watchdog_timeout it signals the worker's thread, whose
 * handler sets a count hook that raises "execution timed out": the plugin's handler fails,
 * the request gets a 500 and the worker goes on. Code LuaJIT has compiled to machine code
 * does not run hooks; if the run still has not ended at three times the budget, the worker
 * exits and the master starts a new one. Sandboxed code (pre-function) is never compiled,
 * so its endless loops always end in the hook. */
static _Atomic uint64_t watch_entered_ms; /* 0: not in Lua */
static _Atomic uint64_t watch_signalled;  /* the entry the signal was sent for */
static uint64_t watch_budget_ms;
static pthread_t watch_main;
static int watch_hook_set;
static lua_State *watch_L;

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void watchdog_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    lua_sethook(L, NULL, 0, 0);
    watch_hook_set = 0;
    luaL_error(L, "execution timed out (lua_watchdog_timeout)");
}

static void watchdog_signal(int sig)
{
    (void)sig;
    uint64_t e = atomic_load(&watch_entered_ms);
    if (e != 0 && e == atomic_load(&watch_signalled) && watch_L != NULL) {
        watch_hook_set = 1;
        lua_sethook(watch_L, watchdog_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
    }
}

static void *watchdog_thread(void *arg)
{
    (void)arg;
    for (;;) {
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
        uint64_t e = atomic_load(&watch_entered_ms);
        if (e == 0)
            continue;
        uint64_t now = mono_ms();
        uint64_t elapsed = now > e ? now - e : 0;
        if (elapsed > watch_budget_ms && atomic_load(&watch_signalled) != e) {
            atomic_store(&watch_signalled, e);
            pthread_kill(watch_main, SIGUSR2);
        } else if (elapsed > 3 * watch_budget_ms && atomic_load(&watch_signalled) == e) {
            static const char msg[] = "[emerg] Lua code ran past 3x lua_watchdog_timeout in "
                                      "compiled code: the worker exits and is replaced\n";
            ssize_t w = write(sl_log_fd(), msg, sizeof(msg) - 1);
            (void)w;
            _exit(3);
        }
    }
    return NULL;
}

static void watch_enter(void)
{
    if (watch_budget_ms) {
        uint64_t now = mono_ms();
        atomic_store(&watch_entered_ms, now ? now : 1); /* 0 means "not in Lua" */
    }
}

static void watch_leave(void)
{
    if (!watch_budget_ms)
        return;
    atomic_store(&watch_entered_ms, 0);
    if (watch_hook_set && watch_L != NULL) {
        /* the run ended before the hook fired: it must not hit the next one */
        lua_sethook(watch_L, NULL, 0, 0);
        watch_hook_set = 0;
    }
}

static void watchdog_start(sl_worker_t *w)
{
    watch_budget_ms = w->conf->lua_watchdog_timeout_ms > 0
                          ? (uint64_t)w->conf->lua_watchdog_timeout_ms : 0;
    if (!watch_budget_ms || w->L == NULL)
        return;
    watch_L = w->L;
    watch_main = pthread_self();
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = watchdog_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR2, &sa, NULL);
    /* only the worker's thread takes the signal */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR2);
    sigaddset(&block, SIGQUIT);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGHUP);
    sigaddset(&block, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    pthread_t t;
    if (pthread_create(&t, NULL, watchdog_thread, NULL) == 0)
        pthread_detach(t);
    else
        watch_budget_ms = 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

sl_req_t *sl_lua_current_request(void) { return current; }

sl_worker_t *sl_lua_worker(void) { return the_worker; }

/* sluice.core.sleep(seconds): yields the running coroutine until a timer fires. Only
 * callable where yielding is allowed (rewrite/access): elsewhere it raises, as OpenResty. */
static void sleep_timer_cb(evutil_socket_t fd, short what, void *arg);
static void resume_access(sl_req_t *r, int nargs);
static void response_ended(sl_req_t *r, lua_State *co, int rc);

/* ---- ngx.timer.at / every ---- */

typedef struct sl_lua_timer_s sl_lua_timer_t;
struct sl_lua_timer_s {
    struct event *ev;        /* when the callback runs */
    struct event *sleep_ev;  /* ngx.sleep inside the callback */
    int args_ref;            /* registry: { fn, arg1, ... } */
    int nargs;               /* arguments after fn */
    int co_ref;
    lua_State *co;
    double interval;         /* > 0: ngx.timer.every */
    int running;
    void *wait_obj;          /* a cosocket the callback waits on */
    void (*wait_cancel)(void *obj);
    TAILQ_ENTRY(sl_lua_timer_s) link;
};
static TAILQ_HEAD(, sl_lua_timer_s) timers = TAILQ_HEAD_INITIALIZER(timers);
static size_t timers_pending, timers_running;
static sl_lua_timer_t *current_timer;

#define MAX_PENDING_TIMERS 1024
#define MAX_RUNNING_TIMERS 256

static struct timeval secs_tv(double secs)
{
    struct timeval tv = {(time_t)secs, (suseconds_t)((secs - (double)(time_t)secs) * 1e6)};
    return tv;
}

static void timer_cancel_wait(sl_lua_timer_t *t)
{
    if (t->wait_cancel != NULL) {
        void (*cancel)(void *) = t->wait_cancel;
        t->wait_cancel = NULL;
        cancel(t->wait_obj);
    }
    t->wait_obj = NULL;
}

static void timer_free(sl_lua_timer_t *t)
{
    lua_State *L = the_worker->L;
    timer_cancel_wait(t);
    TAILQ_REMOVE(&timers, t, link);
    if (t->ev)
        event_free(t->ev);
    if (t->sleep_ev)
        event_free(t->sleep_ev);
    luaL_unref(L, LUA_REGISTRYINDEX, t->args_ref);
    if (t->co_ref != LUA_NOREF)
        luaL_unref(L, LUA_REGISTRYINDEX, t->co_ref);
    free(t);
}

static void timer_finished(sl_lua_timer_t *t)
{
    lua_State *L = the_worker->L;
    timer_cancel_wait(t);
    t->running = 0;
    timers_running--;
    if (t->co_ref != LUA_NOREF)
        luaL_unref(L, LUA_REGISTRYINDEX, t->co_ref);
    t->co_ref = LUA_NOREF;
    t->co = NULL;
    if (t->interval > 0 && !the_worker->quitting) {
        struct timeval tv = secs_tv(t->interval);
        evtimer_add(t->ev, &tv);
        timers_pending++;
        return;
    }
    timer_free(t);
}

/* Resumes a timer's coroutine; handles its end. */
static void timer_resume(sl_lua_timer_t *t, int nargs)
{
    sl_req_t *saved = current;
    sl_lua_timer_t *saved_t = current_timer;
    current = NULL;
    current_timer = t;
    watch_enter();
    int rc = lua_resume(t->co, nargs);
    watch_leave();
    current = saved;
    current_timer = saved_t;
    if (rc == LUA_YIELD) {
        lua_settop(t->co, 0);
        return;
    }
    if (rc != 0) {
        const char *msg = lua_tostring(t->co, -1);
        sl_log_error("lua timer callback failed: %s", msg ? msg : "?");
    }
    timer_finished(t);
}

static void timer_sleep_cb(evutil_socket_t fd, short what, void *arg)
{
    sl_lua_timer_t *t = arg;
    if (t->co != NULL)
        timer_resume(t, 0);
}

/* pushes fn, premature, args... onto the coroutine */
static void timer_push_call(sl_lua_timer_t *t, lua_State *co, int premature)
{
    lua_rawgeti(co, LUA_REGISTRYINDEX, t->args_ref);
    lua_rawgeti(co, -1, 1);
    lua_pushboolean(co, premature);
    for (int i = 0; i < t->nargs; i++)
        lua_rawgeti(co, -3 - i, i + 2);
    lua_remove(co, -(t->nargs + 3)); /* the args table */
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    sl_lua_timer_t *t = arg;
    lua_State *L = the_worker->L;
    timers_pending--;
    t->running = 1;
    timers_running++;
    t->co = lua_newthread(L);
    t->co_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    timer_push_call(t, t->co, 0);
    timer_resume(t, t->nargs + 1);
}

/* sluice.core.timer(delay, interval, fn, ...) -> true | nil, err */
static int core_timer(lua_State *L)
{
    double delay = luaL_checknumber(L, 1);
    double interval = luaL_checknumber(L, 2);
    luaL_checktype(L, 3, LUA_TFUNCTION);
    if (the_worker == NULL || the_worker->base == NULL) {
        lua_pushnil(L);
        lua_pushliteral(L, "timers are only available in worker processes");
        return 2;
    }
    if (the_worker->quitting) {
        lua_pushnil(L);
        lua_pushliteral(L, "process exiting");
        return 2;
    }
    if (timers_pending >= MAX_PENDING_TIMERS) {
        lua_pushnil(L);
        lua_pushliteral(L, "too many pending timers");
        return 2;
    }
    int n = lua_gettop(L);
    sl_lua_timer_t *t = calloc(1, sizeof(*t));
    if (t == NULL)
        abort();
    t->nargs = n - 3;
    t->interval = interval;
    t->co_ref = LUA_NOREF;
    lua_createtable(L, n - 2, 0);
    for (int i = 3; i <= n; i++) {
        lua_pushvalue(L, i);
        lua_rawseti(L, -2, i - 2);
    }
    t->args_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    t->ev = evtimer_new(the_worker->base, timer_cb, t);
    TAILQ_INSERT_TAIL(&timers, t, link);
    event_base_update_cache_time(the_worker->base);
    struct timeval tv = secs_tv(delay);
    evtimer_add(t->ev, &tv);
    timers_pending++;
    lua_pushboolean(L, 1);
    return 1;
}

static int core_timer_counts(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)timers_running);
    lua_pushinteger(L, (lua_Integer)timers_pending);
    return 2;
}

/* A graceful exit runs every pending timer once with premature = true (as OpenResty),
 * under pcall, then drops them; running ones are abandoned. */
void sl_lua_timers_shutdown(void)
{
    if (the_worker == NULL || the_worker->L == NULL)
        return;
    lua_State *L = the_worker->L;
    sl_lua_timer_t *t, *next;
    for (t = TAILQ_FIRST(&timers); t != NULL; t = next) {
        next = TAILQ_NEXT(t, link);
        if (t->running)
            continue;
        evtimer_del(t->ev);
        timers_pending--;
        timer_push_call(t, L, 1);
        char err[1024];
        current_timer = NULL;
        if (sl_lua_pcall(L, t->nargs + 1, 0, err, sizeof(err)) != SL_OK)
            sl_log_error("lua timer callback failed: %s", err);
        timer_free(t);
    }
    for (t = TAILQ_FIRST(&timers); t != NULL; t = next) {
        next = TAILQ_NEXT(t, link);
        timer_free(t);
    }
    timers_pending = timers_running = 0;
}

static int core_sleep(lua_State *L)
{
    double secs = luaL_checknumber(L, 1);
    sl_req_t *r = current;
    if (secs < 0)
        return luaL_error(L, "invalid sleep duration \"%f\"", secs);
    if (r == NULL && current_timer != NULL && current_timer->co != NULL) {
        sl_lua_timer_t *t = current_timer;
        if (t->sleep_ev == NULL)
            t->sleep_ev = evtimer_new(the_worker->base, timer_sleep_cb, t);
        event_base_update_cache_time(the_worker->base);
        struct timeval tv = secs_tv(secs);
        evtimer_add(t->sleep_ev, &tv);
        return sl_lua_yield_wait(L);
    }
    if (r == NULL || !(r->lua_flags & SL_LUA_RUNNING) || r->lua_co == NULL)
        return luaL_error(L, "API disabled in the current context");
    if (r->lua_timer == NULL)
        r->lua_timer = evtimer_new(r->c->w->base, sleep_timer_cb, r);
    /* the loop's cached time may lag: a sleep must not end early */
    event_base_update_cache_time(r->c->w->base);
    struct timeval tv = {(time_t)secs, (suseconds_t)((secs - (double)(time_t)secs) * 1e6)};
    evtimer_add(r->lua_timer, &tv);
    return sl_lua_yield_wait(L);
}

/* Reads request body bytes into r->body_buf up to r->body_limit. SL_DONE: all of it;
 * SL_OK: more to come; SL_DECLINED: over the limit; SL_ERROR: a bad body (*status). */
static int body_step(sl_req_t *r, int *status)
{
    if (r->body_done)
        return SL_DONE;
    size_t have = evbuffer_get_length(r->body_buf);
    if (have > r->body_limit)
        return SL_DECLINED;
    int rc = sl_req_body_pump(r, r->body_buf, 0, r->body_limit + 1 - have, status);
    if (rc == SL_ERROR)
        return SL_ERROR;
    if (rc == SL_DONE)
        return evbuffer_get_length(r->body_buf) > r->body_limit ? SL_DECLINED : SL_DONE;
    return evbuffer_get_length(r->body_buf) > r->body_limit ? SL_DECLINED : SL_OK;
}

/* sluice.core.read_body(limit) -> body | nil, "too big" | nothing (call again after a
 * wait: the coroutine yielded until more of the body arrived). */
static int core_read_body(lua_State *L)
{
    sl_req_t *r = current;
    if (r == NULL || !(r->lua_flags & SL_LUA_RUNNING))
        return luaL_error(L, "API disabled in the current context");
    lua_Integer limit = luaL_optinteger(L, 1, 8192);
    if (r->body_buf == NULL) {
        r->body_buf = evbuffer_new();
        r->body_limit = limit > 0 ? (size_t)limit : 0;
        if (!r->body_done && r->info.expect_continue && !r->sent_continue &&
            r->h.minor_version == 1) {
            r->sent_continue = 1;
            evbuffer_add(bufferevent_get_output(r->c->bev), "HTTP/1.1 100 Continue\r\n\r\n", 25);
            bufferevent_enable(r->c->bev, EV_WRITE);
        }
    }
    int status = 400;
    int rc = r->body_over ? SL_DECLINED : body_step(r, &status);
    if (rc != SL_OK)
        sl_req_set_body_timeout(r, 0);
    if (rc == SL_DONE) {
        size_t n = evbuffer_get_length(r->body_buf);
        lua_pushlstring(L, n ? (const char *)evbuffer_pullup(r->body_buf, -1) : "", n);
        return 1;
    }
    if (rc == SL_DECLINED) {
        r->body_over = 1;
        lua_pushnil(L);
        lua_pushliteral(L, "too big");
        return 2;
    }
    if (rc == SL_ERROR) {
        lua_pushnil(L);
        lua_pushinteger(L, status);
        return 2;
    }
    /* wait for the client, under client_body_timeout */
    r->body_wait = 1;
    sl_req_set_body_timeout(r, 1);
    bufferevent_enable(r->c->bev, EV_READ);
    return sl_lua_yield_wait(L);
}

void sl_lua_body_readable(sl_req_t *r)
{
    int status = 400;
    int rc = body_step(r, &status);
    if (rc == SL_OK)
        return;
    r->body_wait = 0;
    sl_req_set_body_timeout(r, 0);
    if (rc == SL_ERROR) {
        sl_lua_abort(r);
        sl_req_send_error(r, status, NULL, 0, 1);
        return;
    }
    if (rc == SL_DECLINED)
        r->body_over = 1;
    if (r->lua_co != NULL)
        resume_access(r, 0);
}

static int core_worker_info(lua_State *L)
{
    sl_worker_t *w = the_worker;
    lua_newtable(L);
    lua_pushinteger(L, w ? w->index : -1);
    lua_setfield(L, -2, "id");
    lua_pushinteger(L, (lua_Integer)getpid());
    lua_setfield(L, -2, "pid");
    long count = w ? w->conf->worker_processes : 1;
    if (count <= 0)
        count = sysconf(_SC_NPROCESSORS_ONLN) > 0 ? sysconf(_SC_NPROCESSORS_ONLN) : 1;
    lua_pushinteger(L, count);
    lua_setfield(L, -2, "count");
    return 1;
}

/* sluice.core.swap_config(normalized, lua_active[, source]) -> generation | nil, err
 * Builds a generation from a normalized configuration and makes it the one new requests
 * are routed with; the old one lives until its last request ends. */
static int core_swap_config(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    sl_worker_t *w = the_worker;
    if (w == NULL || w->base == NULL) {
        lua_pushnil(L);
        lua_pushliteral(L, "configurations are swapped in worker processes only");
        return 2;
    }
    const char *source = luaL_optstring(L, 3, "<store>");
    char err[512];
    sl_decl_t *d = sl_decl_build(L, 1, source, err, sizeof(err));
    if (d == NULL) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    sl_decl_t *old = w->decl;
    w->decl = d;
    w->lua_active = lua_toboolean(L, 2);
    sl_decl_unref(old, L);
    lua_pushnumber(L, (lua_Number)d->generation);
    return 1;
}

int sl_lua_worker_init(sl_worker_t *w, char *err, size_t errlen)
{
    lua_State *L = w->L;
    the_worker = w;
    for (int i = 0; i < FN_COUNT; i++)
        w->lua_fn_refs[i] = LUA_NOREF;
    if (L == NULL)
        return SL_OK;
    int top = lua_gettop(L);
    /* the C functions runtime.lua needs */
    lua_getglobal(L, "require");
    lua_pushstring(L, "sluice.core");
    lua_call(L, 1, 1);
    lua_pushcfunction(L, core_sleep);
    lua_setfield(L, -2, "sleep");
    lua_pushcfunction(L, core_worker_info);
    lua_setfield(L, -2, "worker_info");
    lua_pushcfunction(L, core_read_body);
    lua_setfield(L, -2, "read_body");
    lua_pushcfunction(L, core_timer);
    lua_setfield(L, -2, "timer");
    lua_pushcfunction(L, core_timer_counts);
    lua_setfield(L, -2, "timer_counts");
    lua_pushcfunction(L, core_swap_config);
    lua_setfield(L, -2, "swap_config");
    sl_lua_socket_register(L, -1);
    lua_pop(L, 1);

    lua_getglobal(L, "require");
    lua_pushstring(L, "sluice.runtime");
    if (sl_lua_pcall(L, 1, 1, err, errlen) != SL_OK)
        return SL_ERROR;
    int rt = lua_gettop(L);
    watchdog_start(w);
    lua_getfield(L, rt, "init_worker");
    watch_enter();
    int irc = sl_lua_pcall(L, 0, 1, err, errlen);
    watch_leave();
    if (irc != SL_OK) {
        lua_settop(L, top);
        return SL_ERROR;
    }
    w->lua_active = lua_toboolean(L, -1);
    lua_pop(L, 1);
    for (int i = 0; i < FN_COUNT; i++) {
        lua_getfield(L, rt, fn_names[i]);
        if (!lua_isfunction(L, -1)) {
            snprintf(err, errlen, "sluice.runtime.%s is not a function", fn_names[i]);
            lua_settop(L, top);
            return SL_ERROR;
        }
        w->lua_fn_refs[i] = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    lua_settop(L, top);
    return SL_OK;
}

static void push_fn(sl_worker_t *w, lua_State *L, int fn)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, w->lua_fn_refs[fn]);
}

static void end_coroutine(sl_req_t *r)
{
    sl_worker_t *w = r->c->w;
    /* the object waited on goes first: the coroutine's stack still anchors it */
    if (r->lua_wait_cancel != NULL) {
        void (*cancel)(void *) = r->lua_wait_cancel;
        r->lua_wait_cancel = NULL;
        cancel(r->lua_wait_obj);
    }
    r->lua_wait_obj = NULL;
    if (r->lua_co_ref != LUA_NOREF && r->lua_co_ref != 0)
        luaL_unref(w->L, LUA_REGISTRYINDEX, r->lua_co_ref);
    r->lua_co_ref = LUA_NOREF;
    r->lua_co = NULL;
    r->lua_flags &= ~SL_LUA_RUNNING;
    if (r->lua_timer) {
        event_free(r->lua_timer);
        r->lua_timer = NULL;
    }
}

/* Resumes the access coroutine; on its end reads (action, flags) and continues the
 * request in C. A Lua error that escaped runtime.lua is logged and answered with 500. */
static void resume_access(sl_req_t *r, int nargs)
{
    lua_State *co = r->lua_co;
    sl_req_t *saved = current;
    current = r;
    watch_enter();
    int rc = lua_resume(co, nargs);
    watch_leave();
    current = saved;
    if (rc == LUA_YIELD) {
        lua_settop(co, 0);
        return; /* a timer or an event resumes it */
    }
    if (r->lua_flags & SL_LUA_IN_RESPONSE) {
        response_ended(r, co, rc);
        return;
    }
    if (rc != 0) {
        const char *msg = lua_tostring(co, -1);
        sl_log_error("runtime error in the access phase: %s", msg ? msg : "?");
        end_coroutine(r);
        sl_req_send_error(r, 500, NULL, 1, 0);
        return;
    }
    /* returns: flags (integer) */
    unsigned flags = (unsigned)lua_tointeger(co, 1);
    lua_settop(co, 0);
    end_coroutine(r);
    r->lua_flags |= flags;
    sl_req_access_done(r);
}

static void sleep_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    sl_req_t *r = arg;
    if (r->lua_co != NULL)
        resume_access(r, 0);
}

static void run_coroutine(sl_req_t *r, int fn)
{
    sl_worker_t *w = r->c->w;
    lua_State *L = w->L;
    r->serial = ++w->next_serial;
    r->lua_flags |= SL_LUA_USED | SL_LUA_RUNNING;
    lua_State *co = lua_newthread(L);
    r->lua_co_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    r->lua_co = co;
    push_fn(w, co, fn);
    resume_access(r, 0);
}

void sl_lua_run_access(sl_req_t *r) { run_coroutine(r, FN_ACCESS); }

void sl_lua_run_admin(sl_req_t *r) { run_coroutine(r, FN_ADMIN); }

void sl_lua_abort(sl_req_t *r)
{
    if (r->lua_co != NULL || r->lua_timer != NULL || r->lua_wait_cancel != NULL)
        end_coroutine(r);
}

int sl_lua_can_wait(void)
{
    sl_req_t *r = current;
    if (r != NULL)
        return (r->lua_flags & SL_LUA_RUNNING) && r->lua_co != NULL;
    return current_timer != NULL && current_timer->co != NULL;
}

int sl_lua_wait(sl_lua_wait_t *wt, void *obj, void (*cancel)(void *obj))
{
    sl_req_t *r = current;
    wt->r = NULL;
    wt->timer = NULL;
    if (r != NULL) {
        if (!(r->lua_flags & SL_LUA_RUNNING) || r->lua_co == NULL)
            return SL_ERROR;
        r->lua_wait_obj = obj;
        r->lua_wait_cancel = cancel;
        wt->r = r;
        return SL_OK;
    }
    sl_lua_timer_t *t = current_timer;
    if (t == NULL || t->co == NULL)
        return SL_ERROR;
    t->wait_obj = obj;
    t->wait_cancel = cancel;
    wt->timer = t;
    return SL_OK;
}

lua_State *sl_lua_wait_thread(const sl_lua_wait_t *wt)
{
    if (wt->r != NULL)
        return wt->r->lua_co;
    return ((sl_lua_timer_t *)wt->timer)->co;
}

void sl_lua_wait_resume(sl_lua_wait_t *wt, int nresults)
{
    sl_req_t *r = wt->r;
    sl_lua_timer_t *t = wt->timer;
    wt->r = NULL;
    wt->timer = NULL;
    if (r != NULL) {
        r->lua_wait_obj = NULL;
        r->lua_wait_cancel = NULL;
        resume_access(r, nresults);
    } else if (t != NULL) {
        t->wait_obj = NULL;
        t->wait_cancel = NULL;
        timer_resume(t, nresults);
    }
}

/* Runs a non-yielding phase function under pcall with the request current. */
static int call_phase(sl_req_t *r, int fn, int nargs, int nresults)
{
    sl_worker_t *w = r->c->w;
    lua_State *L = w->L;
    char err[2048];
    sl_req_t *saved = current;
    current = r;
    watch_enter();
    int rc = sl_lua_pcall(L, nargs, nresults, err, sizeof(err));
    watch_leave();
    current = saved;
    if (rc != SL_OK)
        sl_log_error("runtime error in the %s phase: %s", fn_names[fn], err);
    (void)fn;
    return rc;
}

void sl_lua_header_filter(sl_req_t *r)
{
    lua_State *L = r->c->w->L;
    push_fn(r->c->w, L, FN_HEADER_FILTER);
    call_phase(r, FN_HEADER_FILTER, 0, 0);
}

void sl_lua_body_filter(sl_req_t *r, const char *data, size_t len, int eof,
                        struct evbuffer *out)
{
    lua_State *L = r->c->w->L;
    int top = lua_gettop(L);
    push_fn(r->c->w, L, FN_BODY_FILTER);
    lua_pushlstring(L, data ? data : "", len);
    lua_pushboolean(L, eof);
    if (call_phase(r, FN_BODY_FILTER, 2, 1) != SL_OK) {
        /* as nginx: a failing filter passes the chunk on unchanged */
        if (len)
            evbuffer_add(out, data, len);
        lua_settop(L, top);
        return;
    }
    size_t n = 0;
    const char *s = lua_tolstring(L, -1, &n);
    if (s != NULL && n > 0)
        evbuffer_add(out, s, n);
    lua_settop(L, top);
}

void sl_lua_log(sl_req_t *r)
{
    lua_State *L = r->c->w->L;
    push_fn(r->c->w, L, FN_LOG);
    call_phase(r, FN_LOG, 0, 0);
}

void sl_lua_request_done(sl_req_t *r)
{
    if (!(r->lua_flags & SL_LUA_USED))
        return;
    sl_lua_abort(r);
    lua_State *L = r->c->w->L;
    push_fn(r->c->w, L, FN_DONE);
    lua_pushnumber(L, (lua_Number)r->serial);
    call_phase(r, FN_DONE, 1, 0);
    r->lua_flags = 0;
}

/* ---- the certificate phase ----
 * Looked up on first use (sluice.runtime.certificate) rather than in the fn_refs table.
 * The FFI accessors act on a stand-in request bound to the connection: kong.client.* see
 * the peer; the phase checks keep kong.request.* and kong.response.* out. */
static int cert_fn_ref = LUA_NOREF;

void sl_lua_certificate(sl_conn_t *c)
{
    sl_worker_t *w = c->w;
    lua_State *L = w->L;
    if (L == NULL)
        return;
    int top = lua_gettop(L);
    if (cert_fn_ref == LUA_NOREF) {
        lua_getglobal(L, "require");
        lua_pushliteral(L, "sluice.runtime");
        char err[512];
        if (sl_lua_pcall(L, 1, 1, err, sizeof(err)) != SL_OK) {
            sl_log_error("runtime error in the certificate phase: %s", err);
            lua_settop(L, top);
            return;
        }
        lua_getfield(L, -1, "certificate");
        if (!lua_isfunction(L, -1)) {
            lua_settop(L, top);
            cert_fn_ref = LUA_REFNIL;
            return;
        }
        cert_fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        lua_settop(L, top);
    }
    if (cert_fn_ref == LUA_REFNIL)
        return;
    sl_req_t *r = calloc(1, sizeof(*r));
    if (r == NULL)
        abort();
    r->c = c;
    r->head_len = 1; /* "in a request" for the FFI; no head is ever read in this phase */
    r->serial = ++w->next_serial;
    r->lua_co_ref = LUA_NOREF;
    r->decl = w->decl;
    r->lua_flags = SL_LUA_USED;
    lua_rawgeti(L, LUA_REGISTRYINDEX, cert_fn_ref);
    lua_pushnumber(L, (lua_Number)r->serial);
    char err[2048];
    sl_req_t *saved = current;
    current = r;
    watch_enter();
    int rc = sl_lua_pcall(L, 1, 0, err, sizeof(err));
    watch_leave();
    current = saved;
    if (rc != SL_OK)
        sl_log_error("runtime error in the certificate phase: %s", err);
    lua_settop(L, top);
    free(r);
}


/* ---- the response phase (buffered proxying) ---- */

static int response_fn_ref = LUA_NOREF; /* sluice.runtime.response */

/* The response coroutine ended (rc: lua_resume's result): sluice.runtime.response returns
 * 0, or 1 when a plugin's handler raised. */
static void response_ended(sl_req_t *r, lua_State *co, int rc)
{
    int failed = 1;
    if (rc != 0) {
        const char *msg = lua_tostring(co, -1);
        sl_log_error("runtime error in the response phase: %s", msg ? msg : "?");
    } else {
        failed = lua_tointeger(co, 1) != 0;
    }
    lua_settop(co, 0);
    end_coroutine(r);
    r->lua_flags &= ~SL_LUA_IN_RESPONSE;
    sl_proxy_buffered_done(r, failed);
}

void sl_lua_run_response(sl_req_t *r, const char *body, size_t len,
                         const sl_hdr_list_t *up_headers)
{
    sl_worker_t *w = r->c->w;
    lua_State *L = w->L;
    if (response_fn_ref == LUA_NOREF) {
        char err[512];
        lua_getglobal(L, "require");
        lua_pushstring(L, "sluice.runtime");
        if (sl_lua_pcall(L, 1, 1, err, sizeof(err)) != SL_OK) {
            sl_log_error("runtime error in the response phase: %s", err);
            sl_proxy_buffered_done(r, 1);
            return;
        }
        lua_getfield(L, -1, "response");
        lua_remove(L, -2);
        if (!lua_isfunction(L, -1)) {
            lua_pop(L, 1);
            sl_log_error("sluice.runtime.response is not a function");
            sl_proxy_buffered_done(r, 1);
            return;
        }
        response_fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    /* the request keeps its serial: ngx.ctx from access carries over */
    r->lua_flags |= SL_LUA_USED | SL_LUA_RUNNING | SL_LUA_IN_RESPONSE;
    lua_State *co = lua_newthread(L);
    r->lua_co_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    r->lua_co = co;
    lua_rawgeti(co, LUA_REGISTRYINDEX, response_fn_ref);
    lua_pushinteger(co, r->status);
    lua_pushlstring(co, body ? body : "", len);
    /* the upstream's headers as { name1, value1, name2, value2, ... } */
    lua_createtable(co, (int)(up_headers->n * 2), 0);
    for (size_t i = 0; i < up_headers->n; i++) {
        const sl_hdr_t *h = &up_headers->items[i];
        lua_pushlstring(co, h->name, h->name_len);
        lua_rawseti(co, -2, (int)(2 * i + 1));
        lua_pushlstring(co, h->value, h->value_len);
        lua_rawseti(co, -2, (int)(2 * i + 2));
    }
    resume_access(r, 3);
}
