/*
 * sl_listener.h: opening listening sockets for proxy_listen / admin_listen entries.
 *
 * The master opens them once (bind + listen, SO_REUSEADDR, SO_REUSEPORT with the `reuseport`
 * flag, IPV6_V6ONLY, TCP_DEFER_ACCEPT with `deferred`); workers inherit the descriptors.
 */
#ifndef SL_LISTENER_H
#define SL_LISTENER_H

#include "conf/sl_conf.h"

/* Returns a listening, non-blocking fd, or -1 with a message in err. */
int sl_listener_open(const sl_listen_t *l, const char *property, char *err, size_t errlen);

#endif
