/*
 * sl_http_request.h: HTTP/1.x message semantics on top of a parsed head: framing (how long
 * the body is), persistence, Host, Expect and Upgrade, and the request-smuggling rules.
 *
 * Input is a head filled by sl_http_parse.h; nothing is allocated or copied, and the views in
 * the info structs point into the same buffer as the head (valid as long as it is).
 * Strict by default: a request whose framing could be read two ways is refused.
 */
#ifndef SL_HTTP_REQUEST_H
#define SL_HTTP_REQUEST_H

#include <stdint.h>

#include "http/sl_http_parse.h"
#include "sl_core.h"

/* Content-Length values above this are refused (2^62). */
#define SL_HTTP_MAX_CONTENT_LENGTH ((int64_t)1 << 62)

typedef struct {
    int64_t content_length;       /* -1 when absent (or when chunked) */
    unsigned chunked : 1;         /* Transfer-Encoding: chunked */
    unsigned keepalive : 1;       /* 1.1: on unless "Connection: close"; 1.0: only with
                                     "Connection: keep-alive" (and no "close") */
    unsigned expect_continue : 1; /* Expect: 100-continue on an HTTP/1.1 request */
    unsigned upgrade : 1;         /* HTTP/1.1, Connection lists "upgrade", an Upgrade field */
    sl_str_t host;                /* the authority of an absolute-form (or CONNECT) target if
                                     any, else the Host value (len 0, maybe NULL data, when
                                     absent or empty) */
} sl_http_request_info_t;

/*
 * Applies the semantic rules to a successfully parsed request head. Returns SL_OK, or
 * SL_ERROR with *status: 400 (no Host on 1.1, several Host fields, a Host that is not an
 * authority, Transfer-Encoding with Content-Length, Transfer-Encoding on 1.0, a malformed,
 * out-of-range or conflicting Content-Length), 501 (Transfer-Encoding other than exactly one
 * field "chunked") or 417 (an expectation other than 100-continue). The checks run in that
 * order, so a request breaking several rules gets the first status of this list.
 */
int sl_http_request_validate(const sl_http_req_head_t *h, sl_http_request_info_t *info,
                             int *status);

typedef struct {
    int64_t content_length;       /* -1 when absent or overridden by chunked; for no_body
                                     responses the value as sent (informational) */
    unsigned chunked : 1;         /* body is chunked */
    unsigned keepalive : 1;       /* the upstream connection may be reused after this body */
    unsigned no_body : 1;         /* 1xx, 204, 304, or a response to HEAD */
    unsigned close_delimited : 1; /* neither length nor chunked: body ends at close */
} sl_http_response_info_t;

/*
 * Framing of an upstream response (RFC 9112 6.3). SL_OK, or SL_ERROR (the caller answers
 * 502): status outside 100..599, malformed or differing Content-Length, Transfer-Encoding on
 * an HTTP/1.0 response or with chunked applied twice or an empty coding. Transfer-Encoding with
 * chunked last wins over Content-Length (which is dropped, and keepalive cleared); with any
 * other last coding the body is close-delimited. For no_body responses framing fields are not
 * applied (Transfer-Encoding is ignored) but Content-Length must still be well formed.
 */
int sl_http_response_validate(const sl_http_resp_head_t *h, int request_was_head,
                              sl_http_response_info_t *info);

#endif
