/*
 * sl_lua_runtime.h: running the Lua side of a request (plugins, the kong.* PDK).
 *
 * The worker's VM is the one the master loaded the configuration into (inherited over
 * fork); sl_lua_worker_init() hands it the worker facts and runs init_worker handlers.
 * Per request, C calls into lua/sluice/runtime.lua only when plugins are configured:
 * rewrite+access run in a coroutine that may yield to the event loop (ngx.sleep, and
 * later cosockets); header_filter, body_filter and log run under lua_pcall and may not
 * yield, as in OpenResty. While Lua runs, sl_lua_current_request() is the request the
 * FFI accessors (sl_lua_ffi.h) act on.
 */
#ifndef SL_LUA_RUNTIME_H
#define SL_LUA_RUNTIME_H

#include "http/sl_server.h"

/* bits of sl_req_t.lua_flags */
#define SL_LUA_USED 0x1          /* runtime.lua holds state for the request */
#define SL_LUA_HEADER_FILTER 0x2 /* a collected plugin has header_filter */
#define SL_LUA_BODY_FILTER 0x4
#define SL_LUA_LOG 0x8
#define SL_LUA_EXIT 0x10         /* the response is the one Lua produced (r->exit_*) */
#define SL_LUA_RUNNING 0x20      /* the access coroutine is alive */
#define SL_LUA_BUFFER 0x100      /* buffered proxying: read the whole upstream response, then
                                  * run the response phase (kong.service.request.enable_buffering
                                  * or a collected plugin with a `response` handler) */
#define SL_LUA_IN_RESPONSE 0x200 /* the running coroutine is the response phase's */

int sl_lua_worker_init(sl_worker_t *w, char *err, size_t errlen);

sl_req_t *sl_lua_current_request(void);
sl_worker_t *sl_lua_worker(void);

/* Runs rewrite + access after routing. Calls sl_req_access_done(r) when the coroutine
 * ends, at once or after yields; the request may have been answered by then. */
void sl_lua_run_access(sl_req_t *r);
/* Runs the Admin API handler (sluice.runtime.admin) for a request on admin_listen, in a
 * coroutine like access; sl_req_access_done(r) sends what it answered. */
void sl_lua_run_admin(sl_req_t *r);
/* More request body arrived while the access coroutine waits for it (read_body). */
void sl_lua_body_readable(sl_req_t *r);
/* The request is going away (client closed): stop its coroutine and timers. */
void sl_lua_abort(sl_req_t *r);

/* Response head: r->resp_headers and r->status may be edited by the plugins. */
void sl_lua_header_filter(sl_req_t *r);
/* One body chunk through the plugins; the result is appended to out. */
void sl_lua_body_filter(sl_req_t *r, const char *data, size_t len, int eof,
                        struct evbuffer *out);
void sl_lua_log(sl_req_t *r);
/* Graceful exit: pending ngx.timer callbacks run once with premature = true. */
void sl_lua_timers_shutdown(void);
/* Drops the request's Lua state (ngx.ctx and friends). */
void sl_lua_request_done(sl_req_t *r);

/* A coroutine waiting on an event source (a cosocket): the request's access/admin
 * coroutine or an ngx.timer callback's. */
typedef struct sl_lua_wait_s {
    sl_req_t *r;
    void *timer;
} sl_lua_wait_t;

/* Makes the running coroutine wait on obj: it yields after this returns SL_OK (the caller
 * does `return lua_yield(L, 0)`), and sl_lua_wait_resume() continues it. If the coroutine
 * is abandoned first (client gone, process exiting), cancel(obj) is called and it never
 * resumes. SL_ERROR when the running Lua may not yield (filters, log, init). */
int sl_lua_wait(sl_lua_wait_t *wt, void *obj, void (*cancel)(void *obj));
/* Whether the running Lua may wait (sl_lua_wait would succeed). */
int sl_lua_can_wait(void);
/* The thread to push the results on before sl_lua_wait_resume(wt, nresults). */
lua_State *sl_lua_wait_thread(const sl_lua_wait_t *wt);
void sl_lua_wait_resume(sl_lua_wait_t *wt, int nresults);

/* In sl_http_server.c: continue after access (proxy, 503, or the response Lua made). */
void sl_req_access_done(sl_req_t *r);

/* Runs the response phase of a buffered response in a coroutine like access (it may yield):
 * status, body and the upstream's headers (up_headers, copied) are handed to
 * sluice.runtime.response; r->resp_headers is the head the plugins edit. Calls
 * sl_proxy_buffered_done(r, failed) when it ends, at once or after yields. */
void sl_lua_run_response(sl_req_t *r, const char *body, size_t len,
                         const sl_hdr_list_t *up_headers);

/* The certificate phase of a TLS handshake on c (SNI known, no request yet): the global
 * plugins' certificate handlers run under pcall and may not yield, as Kong's
 * ssl_certificate_by_lua; their ngx.ctx is their own, never the later requests'. Errors are
 * logged and the handshake goes on. */
void sl_lua_certificate(sl_conn_t *c);

#endif
