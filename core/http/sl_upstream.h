/*
 * sl_upstream.h: error kinds reported by upstream connects (the functions themselves are
 * declared in sl_server.h with the types they use).
 */
#ifndef SL_UPSTREAM_H
#define SL_UPSTREAM_H

enum {
    SL_UP_ERR_NONE = 0,
    SL_UP_ERR_CONNECT, /* refused, reset, unreachable: 502 */
    SL_UP_ERR_TIMEOUT, /* 504 */
    SL_UP_ERR_DNS,     /* 503 "name resolution failed" */
    SL_UP_ERR_TLS      /* 502 */
};

struct sl_upconn_s;
/* Frees a busy upstream connection that must not be reused. */
void sl_upstream_discard(struct sl_upconn_s *uc);

#endif
