/*
 * sl_lua_vm.h: creating and preparing a LuaJIT VM.
 *
 * sl_lua_vm_create() opens the standard libraries, sets package.path/cpath (Sluice's own Lua
 * tree first, then lua_package_path, then luarocks' system and user trees) and preloads the
 * C module "sluice.core". The VM is owned by the caller (lua_close). Also finds the directory
 * Sluice's Lua tree lives in: the checkout (next to build/) or the installed share dir.
 */
#ifndef SL_LUA_VM_H
#define SL_LUA_VM_H

#include <lua.h>

#include "sl_core.h"

struct sl_conf_s;

/* The Sluice root that holds lua/ and plugins/; never NULL; static storage. */
const char *sl_lua_root(void);

/* NULL with a message in err on failure. conf may be NULL (defaults). */
lua_State *sl_lua_vm_create(const struct sl_conf_s *conf, char *err, size_t errlen);

/* Calls the function on top of the stack with nargs arguments under a traceback handler.
 * Returns SL_OK, or SL_ERROR with the message (and traceback) in err. */
int sl_lua_pcall(lua_State *L, int nargs, int nresults, char *err, size_t errlen);

/* Yields the running coroutine as waiting on the event loop: `return sl_lua_yield_wait(L)`
 * from a C function; it returns what the coroutine is resumed with. */
int sl_lua_yield_wait(lua_State *L);

#endif
