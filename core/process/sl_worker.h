/*
 * sl_worker.h: a worker process: one event_base, the listeners it inherited from the master,
 * the configuration generation it was forked with. Never returns.
 */
#ifndef SL_WORKER_H
#define SL_WORKER_H

#include <lua.h>

#include "conf/sl_conf.h"
#include "conf/sl_decl.h"

typedef struct {
    int fd;
    int ssl;
    unsigned port;
    int admin;      /* an admin_listen socket (reserved: answers 404 until the Admin API) */
} sl_listen_fd_t;

__attribute__((noreturn)) void sl_worker_main(int index, sl_conf_t *conf, sl_decl_t *decl,
                                              lua_State *L, const sl_listen_fd_t *fds,
                                              size_t nfds);

#endif
