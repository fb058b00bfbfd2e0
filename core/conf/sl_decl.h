/*
 * sl_decl.h: the C view of one declarative configuration generation.
 *
 * sl_decl_load() runs the Lua declarative loader (lua/sluice/declarative) on a kong.yml,
 * then copies the services and routes the proxy needs into C structures and builds the
 * router. The result is immutable. It is reference counted: the worker holds one reference
 * for the generation it routes new requests with, and every request routed with it holds
 * one until it ends, so a generation swapped out (Admin API, store poller) lives on until
 * its last request is done. A fresh generation has one reference (its creator's).
 */
#ifndef SL_DECL_H
#define SL_DECL_H

#include <lua.h>

#include "http/sl_router.h"
#include "sl_core.h"

typedef struct sl_service_s {
    char *id;
    char *name;           /* may be NULL */
    char *protocol;       /* "http", "https", ... */
    int tls;              /* protocol is https */
    char *host;
    unsigned port;
    char *path;           /* NULL when the service has none */
    int retries;
    int connect_timeout;  /* ms */
    int write_timeout;    /* ms */
    int read_timeout;     /* ms */
    int tls_verify;       /* -1 unset (off), 0, 1 */
    int tls_verify_depth; /* -1 unset */
    int enabled;
    char *host_header;    /* "host" or "host:port" when the port is not the default */
    char *pool_key;       /* "host:port|tls|sni|verify": which pooled connections fit */
    char *upstream_addr;  /* "http://host:port", for logs */
} sl_service_t;

typedef struct sl_route_s {
    char *id;
    char *name;
    sl_service_t *service; /* NULL when the route has none (503) */
    unsigned protocols;    /* SL_PROTO_* */
    int strip_path;
    int preserve_host;
    int https_redirect_status_code;
    int request_buffering;
    int response_buffering;
} sl_route_t;

typedef struct sl_decl_s {
    char *source;          /* the file it came from, or "<string>" */
    sl_service_t *services;
    size_t nservices;
    sl_route_t *routes;
    size_t nroutes;
    size_t nplugins;
    size_t nconsumers;
    sl_router_t *router;
    int lua_ref;           /* registry ref of the normalized Lua table, in the loading VM */
    unsigned refs;
    unsigned long generation; /* process-wide counter, 1 for the first */
} sl_decl_t;

/* Loads path (or, if path is NULL, the string text named "<string>") with the VM's
 * `sluice.declarative` module. On error returns NULL and err holds the loader's message,
 * which names the file, the entity and the field. */
sl_decl_t *sl_decl_load(lua_State *L, const char *path, const char *text, char *err,
                        size_t errlen);

/* Builds a generation from a normalized configuration table (the loader's result) at
 * index idx of L. source names it in messages. NULL + err on failure (router errors). */
sl_decl_t *sl_decl_build(lua_State *L, int idx, const char *source, char *err, size_t errlen);

/* An empty configuration: no services, no routes (every request gets 404). */
sl_decl_t *sl_decl_empty(char *err, size_t errlen);

void sl_decl_ref(sl_decl_t *d);
/* Drops one reference; the last one destroys it. */
void sl_decl_unref(sl_decl_t *d, lua_State *L);
/* Destroys regardless of references (process exit). */
void sl_decl_destroy(sl_decl_t *d, lua_State *L);

#endif
