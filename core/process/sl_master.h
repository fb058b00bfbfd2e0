/*
 * sl_master.h: the master process: owns the configuration, the listening sockets and the
 * workers. HUP reloads (validate first; a bad config is logged and the old one keeps
 * serving), QUIT drains, TERM/INT stop fast, a worker that dies is replaced and logged.
 */
#ifndef SL_MASTER_H
#define SL_MASTER_H

#include <lua.h>

#include "conf/sl_conf.h"
#include "conf/sl_decl.h"

typedef struct {
    char *conf_path;      /* absolute, or NULL for defaults */
    char *prefix;         /* absolute */
    sl_conf_t *conf;
    sl_decl_t *decl;
    lua_State *L;
    int ready_fd;         /* daemon start: write one byte here once workers run, -1 if none */
} sl_master_t;

/* Opens listeners, writes the pid file, forks workers and runs the signal loop. Returns the
 * process exit status (0 after a clean stop). Takes ownership of conf, decl and L. */
int sl_master_run(sl_master_t *m, char *err, size_t errlen);

/* Frees what m owns (conf, decl, VM, strings). */
void sl_master_dispose(sl_master_t *m);

/* Loads conf_path (NULL = defaults) with the environment, applying prefix_override. */
sl_conf_t *sl_master_load_conf(const char *conf_path, const char *prefix_override, char *err,
                               size_t errlen);
/* Loads the plugins conf->plugins names into L (handlers and schemas). */
int sl_master_load_plugins(lua_State *L, const sl_conf_t *conf, char *err, size_t errlen);
/* Creates a VM and loads the conf's declarative config (or an empty one). */
int sl_master_load_decl(sl_conf_t *conf, lua_State **Lout, sl_decl_t **dout, char *err,
                        size_t errlen);

/* Builds (then drops) the TLS contexts the conf's ssl listeners need: SL_ERROR + err names
 * the property and file of an unreadable or mismatched certificate/key. */
int sl_master_check_tls(const sl_conf_t *c, char *err, size_t errlen);

#endif
