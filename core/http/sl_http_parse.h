/*
 * sl_http_parse.h: HTTP/1.x message syntax, zero copy and incremental.
 *
 * Provides the request-head parser (request line + header fields), the response-head parser
 * (status line + header fields) and an incremental chunked-body decoder. Nothing here
 * allocates: every sl_str_t and sl_header_t filled in is a view into the caller's buffer and
 * stays valid as long as those bytes stay where they are. Semantics (framing, smuggling rules,
 * Host, Connection, Expect) are not decided here but in sl_http_request.h.
 *
 * Determinism contract (what makes the incremental path safe): for a given buffer prefix the
 * request parser's answer depends only on those bytes and the limits. An error is reported as
 * soon as the bytes that prove it have arrived (a bad byte, a line over its limit, the head
 * over its limit), a complete head as soon as its blank line has arrived; otherwise SL_AGAIN.
 * Feeding a message in pieces therefore gives the same result as parsing it in one go, and a
 * caller never needs to read past the first byte that makes the message invalid.
 *
 * Depends only on libc and sl_core.h (the fuzzer links this unit alone).
 */
#ifndef SL_HTTP_PARSE_H
#define SL_HTTP_PARSE_H

#include <stddef.h>
#include <stdint.h>

#include "sl_core.h"

/* Bounds for one request head. Line lengths exclude the line terminator (CRLF or LF). */
typedef struct {
    size_t max_request_line; /* bytes of the request line; over it -> 414 */
    size_t max_header_line;  /* bytes of one header line; over it -> 431 */
    size_t max_header_bytes; /* whole head incl. request line, skipped leading empty lines and
                                the blank line; over it -> 431 (values over INT_MAX act as
                                INT_MAX, since the head length is returned as an int) */
    size_t max_headers;      /* header count; should be <= the capacity passed in (the smaller
                                of the two is what is enforced); over it -> 431 */
} sl_http_limits_t;

typedef struct {
    sl_str_t method;      /* a token, case as sent */
    sl_str_t target;      /* request-target exactly as sent */
    sl_str_t path;        /* origin-form: target up to '?'; absolute-form: the path part ("/"
                             if empty, a view of the '/' after the scheme); "*" for OPTIONS *;
                             len 0 for CONNECT's authority-form */
    sl_str_t query;       /* after the first '?', without it; len 0 when none */
    sl_str_t authority;   /* absolute-form host[:port]; for CONNECT the whole authority-form
                             target; else len 0 */
    int minor_version;    /* 0 or 1 (HTTP/1.x) */
    sl_header_t *headers; /* caller's array, names and values are views into buf, values
                             with leading and trailing SP/HTAB removed */
    size_t num_headers;   /* in: capacity of headers[]; out: count (written only when a
                             whole head was parsed, so a caller may pass h again as is after
                             SL_AGAIN) */
} sl_http_req_head_t;

/*
 * Parses one request head from buf[0..len). last_len: how many of those bytes were already
 * seen by a previous call on the same bytes that returned SL_AGAIN (0 the first time); the
 * parser then only rescans the last incomplete line, so feeding a head in n small pieces
 * costs about O(size) rather than O(size^2). The answer does not depend on last_len.
 *
 * Returns > 0: the length of the head including skipped leading empty lines and the blank
 * line (the body or the next request starts there); SL_AGAIN: need more bytes; SL_ERROR with
 * *status set to 400 (syntax), 414 (request line over max_request_line), 431 (a header line,
 * the head or the header count over its limit) or 505 (HTTP version other than 1.0/1.1).
 * When len already exceeds max_header_bytes and no head ended within it, the answer is
 * SL_ERROR/431 at once (unless an earlier byte already proved another error).
 * Only on success are h's fields and h->num_headers meaningful.
 */
int sl_http_parse_request(const char *buf, size_t len, size_t last_len, sl_http_req_head_t *h,
                          const sl_http_limits_t *lim, int *status);

typedef struct {
    int minor_version;    /* 0 or 1 */
    int status;           /* three digits, 100..999 */
    sl_str_t reason;      /* reason phrase as sent (may be empty) */
    sl_header_t *headers; /* caller's array, as in the request head */
    size_t num_headers;   /* in: capacity; out: count (written only on success) */
} sl_http_resp_head_t;

/*
 * Parses one response head ("HTTP/1.0" or "HTTP/1.1", SP, three digits, then SP and a reason
 * or the line end) from buf[0..len). Same field rules as requests (token names, no obs-fold,
 * no CTLs in values, CRLF or bare LF line ends, no bare CR). Returns > 0 the head length,
 * SL_AGAIN, or SL_ERROR (malformed, more headers than the capacity, or the head longer than
 * max_bytes; when len > max_bytes and no head ended within it, SL_ERROR at once).
 */
int sl_http_parse_response(const char *buf, size_t len, sl_http_resp_head_t *h,
                           size_t max_bytes);

/* Incremental chunked-body decoder state; caller-owned storage, no cleanup needed. */
typedef struct {
    uint64_t remaining;       /* payload bytes left in the current chunk */
    size_t line_bytes;        /* bytes of the current chunk-size line so far */
    size_t trailer_bytes;     /* bytes of trailer field lines so far */
    size_t max_trailer_bytes; /* bound on trailer field lines (the final CRLF not counted) */
    unsigned state;
} sl_http_chunked_t;

/* The bound on one chunk-size line (hex digits, extensions, CRLF). */
#define SL_HTTP_CHUNK_LINE_MAX 4096

void sl_http_chunked_init(sl_http_chunked_t *c, size_t max_trailer_bytes);

/*
 * Consumes framing and at most ONE contiguous run of payload from in[0..len); works on any
 * split of the input. *consumed = bytes the caller must drop from its input; if
 * *payload_len > 0 the payload is in[*payload_off .. *payload_off + *payload_len) (inside the
 * consumed part; a call returns right after the run it reports).
 * Returns SL_OK (progress made, or *consumed == 0 meaning more input is needed: with len > 0
 * the decoder always consumes at least one byte), SL_DONE (last chunk and trailers fully read;
 * *consumed ends exactly there, the rest of in is the next message; never carries payload;
 * later calls return SL_DONE with *consumed == 0), SL_ERROR (malformed: bad or missing hex,
 * size >= 2^63, a bare LF or CR, missing CRLF after data, a malformed extension, a chunk-size
 * line over SL_HTTP_CHUNK_LINE_MAX, trailers over max_trailer_bytes, a malformed trailer
 * field; sticky). Line ends inside chunked framing must be CRLF (no bare LF).
 */
int sl_http_chunked_parse(sl_http_chunked_t *c, const char *in, size_t len, size_t *consumed,
                          size_t *payload_off, size_t *payload_len);

/*
 * 1 if s[0..len) is a valid URI authority for HTTP: host [":" port], host being a non-empty
 * reg-name (unreserved, sub-delims, %HH) or a bracketed IP literal, no userinfo, port at most
 * 65535 (may be empty unless port_required). Used for absolute-form, CONNECT and Host.
 */
int sl_http_authority_valid(const char *s, size_t len, int port_required);

#endif
