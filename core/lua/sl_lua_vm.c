#include "lua/sl_lua_vm.h"

#include <lauxlib.h>
#include <limits.h>
#include <lualib.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/sl_log.h"
#include "conf/sl_conf.h"

#ifndef SL_SHARE_DIR
#define SL_SHARE_DIR "/usr/local/share/sluice"
#endif

#define LUAROCKS_PATH                                                                         \
    "/usr/local/share/lua/5.1/?.lua;/usr/local/share/lua/5.1/?/init.lua;"                     \
    "/usr/share/lua/5.1/?.lua;/usr/share/lua/5.1/?/init.lua;"
#define LUAROCKS_CPATH                                                                        \
    "/usr/local/lib/lua/5.1/?.so;/usr/lib/x86_64-linux-gnu/lua/5.1/?.so;"                     \
    "/usr/lib/lua/5.1/?.so;"

static char root_dir[PATH_MAX];

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

const char *sl_lua_root(void)
{
    if (root_dir[0] != '\0')
        return root_dir;
    const char *env = getenv("SLUICE_ROOT");
    if (env != NULL && strlen(env) < sizeof(root_dir)) {
        snprintf(root_dir, sizeof(root_dir), "%s", env);
        return root_dir;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) {
        exe[n] = '\0';
        /* <root>/build/sluice -> <root> */
        for (int up = 0; up < 2; up++) {
            char *slash = strrchr(exe, '/');
            if (slash == NULL)
                break;
            *slash = '\0';
            char probe[PATH_MAX + 32];
            snprintf(probe, sizeof(probe), "%s/lua/sluice", exe);
            if (is_dir(probe)) {
                snprintf(root_dir, sizeof(root_dir), "%s", exe);
                return root_dir;
            }
            /* installed: <prefix>/bin/sluice -> <prefix>/share/sluice */
            snprintf(probe, sizeof(probe), "%s/share/sluice/lua/sluice", exe);
            size_t elen = strlen(exe);
            if (is_dir(probe) && elen + sizeof("/share/sluice") <= sizeof(root_dir)) {
                memcpy(root_dir, exe, elen);
                memcpy(root_dir + elen, "/share/sluice", sizeof("/share/sluice"));
                return root_dir;
            }
        }
    }
    snprintf(root_dir, sizeof(root_dir), "%s", SL_SHARE_DIR);
    return root_dir;
}

/* sluice.core.regex_check(pattern) -> true | nil, message (PCRE2, as the router compiles) */
static int core_regex_check(lua_State *L)
{
    size_t len;
    const char *pat = luaL_checklstring(L, 1, &len);
    int errcode;
    PCRE2_SIZE erroff;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, len, PCRE2_UTF, &errcode, &erroff, NULL);
    if (re != NULL) {
        pcre2_code_free(re);
        lua_pushboolean(L, 1);
        return 1;
    }
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(errcode, msg, sizeof(msg));
    lua_pushnil(L);
    lua_pushfstring(L, "%s at offset %d", (const char *)msg, (int)erroff);
    return 2;
}

/* sluice.core.log(ngx_level, msg): the error log, with nginx's level numbers (ngx.ERR 4). */
static int core_log(lua_State *L)
{
    int level = (int)luaL_checkinteger(L, 1) - 1;
    size_t len;
    const char *msg = luaL_checklstring(L, 2, &len);
    if (level < SL_LOG_EMERG)
        level = SL_LOG_EMERG;
    if (level > SL_LOG_DEBUG)
        level = SL_LOG_DEBUG;
    sl_log(level, "%.*s", (int)(len > 3500 ? 3500 : len), msg);
    return 0;
}

/* The value a coroutine yields when it waits on the event loop (sleep, body, cosocket):
 * the coroutine API that user code sees (lua/sluice/coroutine.lua) passes such yields up
 * to the runtime instead of returning them to the user's resume. */
static const char wait_marker = 'W';

int sl_lua_yield_wait(lua_State *L)
{
    lua_pushlightuserdata(L, (void *)&wait_marker);
    return lua_yield(L, 1);
}

static int core_open(lua_State *L)
{
    lua_newtable(L);
    lua_pushlightuserdata(L, (void *)&wait_marker);
    lua_setfield(L, -2, "WAIT");
    lua_pushcfunction(L, core_log);
    lua_setfield(L, -2, "log");
    lua_pushcfunction(L, core_regex_check);
    lua_setfield(L, -2, "regex_check");
    lua_pushstring(L, SLUICE_VERSION);
    lua_setfield(L, -2, "version");
    lua_pushstring(L, sl_lua_root());
    lua_setfield(L, -2, "root");
    return 1;
}

static int traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (msg == NULL)
        msg = "(error object is not a string)";
    luaL_traceback(L, L, msg, 1);
    return 1;
}

int sl_lua_pcall(lua_State *L, int nargs, int nresults, char *err, size_t errlen)
{
    int base = lua_gettop(L) - nargs;
    lua_pushcfunction(L, traceback);
    lua_insert(L, base);
    int rc = lua_pcall(L, nargs, nresults, base);
    lua_remove(L, base);
    if (rc != 0) {
        snprintf(err, errlen, "%s", lua_tostring(L, -1) ? lua_tostring(L, -1) : "lua error");
        lua_pop(L, 1);
        return SL_ERROR;
    }
    return SL_OK;
}

lua_State *sl_lua_vm_create(const struct sl_conf_s *conf, char *err, size_t errlen)
{
    lua_State *L = luaL_newstate();
    if (L == NULL) {
        snprintf(err, errlen, "cannot create a Lua VM: out of memory");
        return NULL;
    }
    luaL_openlibs(L);

    const char *root = sl_lua_root();
    const char *user_path = conf && conf->lua_package_path ? conf->lua_package_path : "";
    const char *user_cpath = conf && conf->lua_package_cpath ? conf->lua_package_cpath : "";
    const char *home = getenv("HOME");

    lua_getglobal(L, "package");
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    lua_pushfstring(L, "%s/lua/?.lua;%s/lua/?/init.lua;", root, root);
    luaL_addvalue(&b);
    if (user_path[0] != '\0') {
        luaL_addstring(&b, user_path);
        if (user_path[strlen(user_path) - 1] != ';')
            luaL_addchar(&b, ';');
    }
    if (home != NULL) {
        lua_pushfstring(L, "%s/.luarocks/share/lua/5.1/?.lua;%s/.luarocks/share/lua/5.1/?/init.lua;",
                        home, home);
        luaL_addvalue(&b);
    }
    luaL_addstring(&b, LUAROCKS_PATH);
    luaL_pushresult(&b);
    lua_setfield(L, -2, "path");

    luaL_buffinit(L, &b);
    if (user_cpath[0] != '\0') {
        luaL_addstring(&b, user_cpath);
        if (user_cpath[strlen(user_cpath) - 1] != ';')
            luaL_addchar(&b, ';');
    }
    if (home != NULL) {
        lua_pushfstring(L, "%s/.luarocks/lib/lua/5.1/?.so;", home);
        luaL_addvalue(&b);
    }
    luaL_addstring(&b, LUAROCKS_CPATH);
    luaL_pushresult(&b);
    lua_setfield(L, -2, "cpath");

    lua_getfield(L, -1, "preload");
    lua_pushcfunction(L, core_open);
    lua_setfield(L, -2, "sluice.core");
    lua_pop(L, 2);

    /* the ngx and kong globals, before any plugin loads */
    lua_getglobal(L, "require");
    lua_pushstring(L, "sluice");
    if (sl_lua_pcall(L, 1, 1, err, errlen) != SL_OK) {
        lua_close(L);
        return NULL;
    }
    lua_getfield(L, -1, "bootstrap");
    lua_remove(L, -2);
    lua_newtable(L);
    for (size_t i = 0; conf != NULL && i < conf->nprops; i++) {
        lua_pushstring(L, conf->props[i].value ? conf->props[i].value : "");
        lua_setfield(L, -2, conf->props[i].name);
    }
    /* the prefix as resolved (-p, made absolute) is the one Lua must see */
    if (conf != NULL && conf->prefix != NULL) {
        lua_pushstring(L, conf->prefix);
        lua_setfield(L, -2, "prefix");
    }
    if (sl_lua_pcall(L, 1, 0, err, errlen) != SL_OK) {
        lua_close(L);
        return NULL;
    }
    return L;
}
