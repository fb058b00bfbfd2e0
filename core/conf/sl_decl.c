#include "conf/sl_decl.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lua/sl_lua_vm.h"

static unsigned long next_generation;

static char *dup_field(lua_State *L, int idx, const char *name)
{
    lua_getfield(L, idx, name);
    char *s = NULL;
    if (lua_type(L, -1) == LUA_TSTRING) {
        size_t len;
        const char *v = lua_tolstring(L, -1, &len);
        s = malloc(len + 1);
        if (s == NULL)
            abort();
        memcpy(s, v, len + 1);
    }
    lua_pop(L, 1);
    return s;
}

static int int_field(lua_State *L, int idx, const char *name, int def)
{
    lua_getfield(L, idx, name);
    int v = lua_type(L, -1) == LUA_TNUMBER ? (int)lua_tointeger(L, -1) : def;
    lua_pop(L, 1);
    return v;
}

/* -1 when absent */
static int bool_field(lua_State *L, int idx, const char *name, int def)
{
    lua_getfield(L, idx, name);
    int v = lua_type(L, -1) == LUA_TBOOLEAN ? lua_toboolean(L, -1) : def;
    lua_pop(L, 1);
    return v;
}

/* An array of strings at t[name] into a heap array of sl_str_t whose bytes are owned by
 * the Lua table (valid while the decl's table ref is held). */
static sl_str_t *str_array(lua_State *L, int idx, const char *name, size_t *n)
{
    *n = 0;
    lua_getfield(L, idx, name);
    if (lua_type(L, -1) != LUA_TTABLE) {
        lua_pop(L, 1);
        return NULL;
    }
    size_t len = lua_objlen(L, -1);
    sl_str_t *arr = len ? calloc(len, sizeof(*arr)) : NULL;
    if (len && arr == NULL)
        abort();
    for (size_t i = 0; i < len; i++) {
        lua_rawgeti(L, -1, (int)i + 1);
        if (lua_type(L, -1) == LUA_TSTRING) {
            size_t l;
            arr[*n].data = lua_tolstring(L, -1, &l);
            arr[*n].len = l;
            (*n)++;
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return arr;
}

static void service_free(sl_service_t *s)
{
    free(s->id);
    free(s->name);
    free(s->protocol);
    free(s->host);
    free(s->path);
    free(s->host_header);
    free(s->pool_key);
    free(s->upstream_addr);
}

void sl_decl_destroy(sl_decl_t *d, lua_State *L)
{
    if (d == NULL)
        return;
    for (size_t i = 0; i < d->nservices; i++)
        service_free(&d->services[i]);
    for (size_t i = 0; i < d->nroutes; i++) {
        free(d->routes[i].id);
        free(d->routes[i].name);
    }
    free(d->services);
    free(d->routes);
    if (d->router)
        sl_router_destroy(d->router);
    if (L != NULL && d->lua_ref != LUA_NOREF)
        luaL_unref(L, LUA_REGISTRYINDEX, d->lua_ref);
    free(d->source);
    free(d);
}

void sl_decl_ref(sl_decl_t *d) { d->refs++; }

void sl_decl_unref(sl_decl_t *d, lua_State *L)
{
    if (d != NULL && --d->refs == 0)
        sl_decl_destroy(d, L);
}

sl_decl_t *sl_decl_empty(char *err, size_t errlen)
{
    sl_decl_t *d = calloc(1, sizeof(*d));
    if (d == NULL)
        abort();
    d->lua_ref = LUA_NOREF;
    d->refs = 1;
    d->generation = ++next_generation;
    d->source = strdup("<empty>");
    d->router = sl_router_create(NULL, 0, err, errlen);
    if (d->router == NULL) {
        sl_decl_destroy(d, NULL);
        return NULL;
    }
    return d;
}

static size_t count_array(lua_State *L, int idx, const char *name)
{
    lua_getfield(L, idx, name);
    size_t n = lua_type(L, -1) == LUA_TTABLE ? lua_objlen(L, -1) : 0;
    lua_pop(L, 1);
    return n;
}

static void load_service(lua_State *L, int t, sl_service_t *s)
{
    s->id = dup_field(L, t, "id");
    s->name = dup_field(L, t, "name");
    s->protocol = dup_field(L, t, "protocol");
    if (s->protocol == NULL)
        s->protocol = strdup("http");
    s->tls = strcmp(s->protocol, "https") == 0;
    s->host = dup_field(L, t, "host");
    if (s->host == NULL)
        s->host = strdup("localhost");
    s->port = (unsigned)int_field(L, t, "port", s->tls ? 443 : 80);
    s->path = dup_field(L, t, "path");
    s->retries = int_field(L, t, "retries", 5);
    s->connect_timeout = int_field(L, t, "connect_timeout", 60000);
    s->write_timeout = int_field(L, t, "write_timeout", 60000);
    s->read_timeout = int_field(L, t, "read_timeout", 60000);
    s->tls_verify = bool_field(L, t, "tls_verify", -1);
    s->tls_verify_depth = int_field(L, t, "tls_verify_depth", -1);
    s->enabled = bool_field(L, t, "enabled", 1);
    size_t hl = strlen(s->host) + 16;
    s->host_header = malloc(hl);
    if (s->host_header == NULL)
        abort();
    if ((s->tls && s->port == 443) || (!s->tls && s->port == 80))
        snprintf(s->host_header, hl, "%s", s->host);
    else
        snprintf(s->host_header, hl, "%s:%u", s->host, s->port);
    size_t kl = 2 * strlen(s->host) + 48;
    s->pool_key = malloc(kl);
    s->upstream_addr = malloc(kl);
    if (s->pool_key == NULL || s->upstream_addr == NULL)
        abort();
    /* the SNI is the service host; verification changes what a connection proved */
    snprintf(s->pool_key, kl, "%s:%u|%d|%s|%d", s->host, s->port, s->tls, s->host,
             s->tls && s->tls_verify == 1);
    snprintf(s->upstream_addr, kl, "%s://%s:%u", s->tls ? "https" : "http", s->host, s->port);
}

static sl_service_t *find_service(sl_decl_t *d, const char *id)
{
    for (size_t i = 0; id && i < d->nservices; i++) {
        if (d->services[i].id && strcmp(d->services[i].id, id) == 0)
            return &d->services[i];
    }
    return NULL;
}

static unsigned protocols_field(lua_State *L, int t)
{
    size_t n;
    sl_str_t *p = str_array(L, t, "protocols", &n);
    unsigned mask = 0;
    for (size_t i = 0; i < n; i++) {
        if (sl_str_eq(p[i], SL_STR("http")))
            mask |= SL_PROTO_HTTP;
        else if (sl_str_eq(p[i], SL_STR("https")))
            mask |= SL_PROTO_HTTPS;
    }
    free(p);
    return p == NULL && n == 0 && mask == 0 ? (SL_PROTO_HTTP | SL_PROTO_HTTPS) : mask;
}

/* Route headers: { name = { values } } into sl_router_header_t[]. */
static sl_router_header_t *headers_field(lua_State *L, int t, size_t *n)
{
    *n = 0;
    lua_getfield(L, t, "headers");
    if (lua_type(L, -1) != LUA_TTABLE) {
        lua_pop(L, 1);
        return NULL;
    }
    size_t cap = 0;
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        cap++;
        lua_pop(L, 1);
    }
    sl_router_header_t *hs = cap ? calloc(cap, sizeof(*hs)) : NULL;
    if (cap && hs == NULL)
        abort();
    int ht = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, ht)) {
        if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TTABLE && *n < cap) {
            size_t l;
            hs[*n].name.data = lua_tolstring(L, -2, &l);
            hs[*n].name.len = l;
            size_t nv = lua_objlen(L, -1);
            sl_str_t *vals = nv ? calloc(nv, sizeof(*vals)) : NULL;
            if (nv && vals == NULL)
                abort();
            size_t k = 0;
            for (size_t i = 0; i < nv; i++) {
                lua_rawgeti(L, -1, (int)i + 1);
                if (lua_type(L, -1) == LUA_TSTRING) {
                    vals[k].data = lua_tolstring(L, -1, &l);
                    vals[k].len = l;
                    k++;
                }
                lua_pop(L, 1);
            }
            hs[*n].values = vals;
            hs[*n].nvalues = k;
            (*n)++;
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return hs;
}

sl_decl_t *sl_decl_load(lua_State *L, const char *path, const char *text, char *err,
                        size_t errlen)
{
    int top = lua_gettop(L);
    lua_getglobal(L, "require");
    lua_pushstring(L, "sluice.declarative");
    if (sl_lua_pcall(L, 1, 1, err, errlen) != SL_OK)
        return NULL;
    lua_getfield(L, -1, path ? "load_file" : "load_string");
    if (path) {
        lua_pushstring(L, path);
    } else {
        lua_pushstring(L, text ? text : "");
    }
    if (path == NULL)
        lua_pushstring(L, "<string>");
    /* opts = { regex_check = require("sluice.core").regex_check } */
    lua_newtable(L);
    lua_getglobal(L, "require");
    lua_pushstring(L, "sluice.core");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "regex_check");
    lua_setfield(L, -3, "regex_check");
    lua_pop(L, 1);
    lua_getglobal(L, "require");
    lua_pushstring(L, "sluice.plugins");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "check_row");
    lua_setfield(L, -3, "plugin_check");
    lua_pop(L, 1);
    if (sl_lua_pcall(L, path ? 2 : 3, 2, err, errlen) != SL_OK) {
        lua_settop(L, top);
        return NULL;
    }
    if (lua_type(L, -2) != LUA_TTABLE) {
        const char *msg = lua_tostring(L, -1);
        snprintf(err, errlen, "%s", msg ? msg : "invalid declarative configuration");
        lua_settop(L, top);
        return NULL;
    }
    lua_pop(L, 1);
    sl_decl_t *d = sl_decl_build(L, lua_gettop(L), path ? path : "<string>", err, errlen);
    if (d != NULL) {
        /* the generation the runtime (workers) starts with */
        lua_getglobal(L, "require");
        lua_pushstring(L, "sluice.declarative");
        lua_call(L, 1, 1);
        lua_pushvalue(L, -2);
        lua_setfield(L, -2, "current");
    }
    lua_settop(L, top);
    return d;
}

sl_decl_t *sl_decl_build(lua_State *L, int cfg, const char *source, char *err, size_t errlen)
{
    int top = lua_gettop(L);
    if (cfg < 0)
        cfg = top + cfg + 1;
    sl_decl_t *d = calloc(1, sizeof(*d));
    if (d == NULL)
        abort();
    d->lua_ref = LUA_NOREF;
    d->refs = 1;
    d->generation = ++next_generation;
    d->source = strdup(source);
    d->nplugins = count_array(L, cfg, "plugins");
    d->nconsumers = count_array(L, cfg, "consumers");

    lua_getfield(L, cfg, "services");
    size_t ns = lua_type(L, -1) == LUA_TTABLE ? lua_objlen(L, -1) : 0;
    d->services = ns ? calloc(ns, sizeof(sl_service_t)) : NULL;
    if (ns && d->services == NULL)
        abort();
    for (size_t i = 0; i < ns; i++) {
        lua_rawgeti(L, -1, (int)i + 1);
        load_service(L, lua_gettop(L), &d->services[i]);
        d->nservices++;
        lua_pop(L, 1);
    }
    lua_pop(L, 1);

    lua_getfield(L, cfg, "routes");
    size_t nr = lua_type(L, -1) == LUA_TTABLE ? lua_objlen(L, -1) : 0;
    int rt = lua_gettop(L);
    d->routes = nr ? calloc(nr, sizeof(sl_route_t)) : NULL;
    sl_route_def_t *defs = nr ? calloc(nr, sizeof(sl_route_def_t)) : NULL;
    if (nr && (d->routes == NULL || defs == NULL))
        abort();
    for (size_t i = 0; i < nr; i++) {
        lua_rawgeti(L, rt, (int)i + 1);
        int t = lua_gettop(L);
        sl_route_t *r = &d->routes[i];
        r->id = dup_field(L, t, "id");
        r->name = dup_field(L, t, "name");
        lua_getfield(L, t, "service");
        if (lua_type(L, -1) == LUA_TTABLE) {
            char *sid = dup_field(L, lua_gettop(L), "id");
            r->service = find_service(d, sid);
            free(sid);
        }
        lua_pop(L, 1);
        r->protocols = protocols_field(L, t);
        r->strip_path = bool_field(L, t, "strip_path", 1);
        r->preserve_host = bool_field(L, t, "preserve_host", 0);
        r->https_redirect_status_code = int_field(L, t, "https_redirect_status_code", 426);
        r->request_buffering = bool_field(L, t, "request_buffering", 1);
        r->response_buffering = bool_field(L, t, "response_buffering", 1);

        sl_route_def_t *def = &defs[i];
        def->paths = str_array(L, t, "paths", &def->npaths);
        def->hosts = str_array(L, t, "hosts", &def->nhosts);
        def->methods = str_array(L, t, "methods", &def->nmethods);
        def->snis = str_array(L, t, "snis", &def->nsnis);
        def->headers = headers_field(L, t, &def->nheaders);
        def->regex_priority = int_field(L, t, "regex_priority", 0);
        def->protocols = r->protocols;
        def->strip_path = r->strip_path;
        def->preserve_host = r->preserve_host;
        lua_getfield(L, t, "path_handling");
        def->path_handling = lua_isstring(L, -1) && strcmp(lua_tostring(L, -1), "v1") == 0;
        lua_pop(L, 1);
        def->data = r;
        d->nroutes++;
        lua_pop(L, 1);
    }
    lua_pop(L, 1);

    char rerr[512];
    d->router = sl_router_create(defs, nr, rerr, sizeof(rerr));
    for (size_t i = 0; i < nr; i++) {
        free((void *)defs[i].paths);
        free((void *)defs[i].hosts);
        free((void *)defs[i].methods);
        free((void *)defs[i].snis);
        for (size_t k = 0; k < defs[i].nheaders; k++)
            free((void *)defs[i].headers[k].values);
        free((void *)defs[i].headers);
    }
    free(defs);
    if (d->router == NULL) {
        snprintf(err, errlen, "%s: %s", d->source, rerr);
        lua_settop(L, top);
        sl_decl_destroy(d, L);
        return NULL;
    }
    lua_pushvalue(L, cfg);
    d->lua_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_settop(L, top);
    return d;
}
