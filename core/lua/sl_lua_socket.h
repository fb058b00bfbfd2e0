/*
 * sl_lua_socket.h: ngx.socket.tcp cosockets on libevent.
 *
 * A cosocket is a bufferevent owned by a Lua userdata. Its operations (connect with
 * evdns, TLS handshake, send, receive, receiveuntil) complete at once when they can and
 * otherwise make the running coroutine wait (sl_lua_wait) until the event loop has the
 * answer or the operation's timeout fires. setkeepalive() hands the connection to a
 * per-worker pool keyed by "host:port" (or the caller's pool name); connect() takes from
 * it first. lua/sluice/ngx/socket.lua wraps these primitives in OpenResty's API.
 */
#ifndef SL_LUA_SOCKET_H
#define SL_LUA_SOCKET_H

#include <lua.h>

#include "http/sl_server.h"

/* Sets the cosocket primitives into the table at idx (sluice.core). */
void sl_lua_socket_register(lua_State *L, int idx);
/* Closes the pooled idle connections (worker exit). */
void sl_lua_socket_pool_close_all(void);

#endif
