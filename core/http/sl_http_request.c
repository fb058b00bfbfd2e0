/*
 * sl_http_request.c: framing, persistence and smuggling rules for parsed HTTP/1.x heads
 * (RFC 9112 6, 9.3; RFC 9110 7.2, 7.6.1, 7.8, 8.6, 10.1.1). See sl_http_request.h.
 */
#include "http/sl_http_request.h"

#include <string.h>

/* Iterates over the elements of a comma-separated list value, OWS trimmed; empty elements
 * (",,", a trailing ',') are returned too, with len 0. */
typedef struct {
    const char *p, *end;
    int done;
} sl_http_list_t;

static void sl_http_list_init(sl_http_list_t *it, sl_str_t v)
{
    it->p = v.data;
    it->end = v.len > 0 ? v.data + v.len : v.data;
    it->done = 0;
}

static int sl_http_list_next(sl_http_list_t *it, sl_str_t *elem)
{
    const char *s = it->p, *e, *comma;

    if (it->done)
        return 0;
    comma = s < it->end ? memchr(s, ',', (size_t)(it->end - s)) : NULL;
    e = comma != NULL ? comma : it->end;
    if (comma != NULL)
        it->p = comma + 1;
    else
        it->done = 1;
    while (s < e && (*s == ' ' || *s == '\t'))
        s++;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    elem->data = s;
    elem->len = (size_t)(e - s);
    return 1;
}

/*
 * Content-Length = 1*DIGIT, possibly sent as a list or in several fields; every element must
 * be digits only, at most SL_HTTP_MAX_CONTENT_LENGTH, and equal to the others (and to *cl if
 * that is already >= 0). Returns SL_OK with *cl set, or SL_ERROR.
 */
static int sl_http_content_length(sl_str_t v, int64_t *cl)
{
    sl_http_list_t it;
    sl_str_t e;

    sl_http_list_init(&it, v);
    while (sl_http_list_next(&it, &e)) {
        int64_t x = 0;

        if (e.len == 0)
            return SL_ERROR;
        for (size_t i = 0; i < e.len; i++) {
            unsigned char c = (unsigned char)e.data[i];
            if (c < '0' || c > '9')
                return SL_ERROR;
            if (x > (SL_HTTP_MAX_CONTENT_LENGTH - (c - '0')) / 10)
                return SL_ERROR;
            x = x * 10 + (c - '0');
        }
        if (*cl >= 0 && *cl != x)
            return SL_ERROR;
        *cl = x;
    }
    return SL_OK;
}

/* Connection options this unit cares about. */
#define SL_CONN_CLOSE 0x1
#define SL_CONN_KEEPALIVE 0x2
#define SL_CONN_UPGRADE 0x4

static unsigned sl_http_connection_options(sl_str_t v)
{
    sl_http_list_t it;
    sl_str_t e;
    unsigned opts = 0;

    sl_http_list_init(&it, v);
    while (sl_http_list_next(&it, &e)) {
        if (sl_str_case_eq(e, SL_STR("close")))
            opts |= SL_CONN_CLOSE;
        else if (sl_str_case_eq(e, SL_STR("keep-alive")))
            opts |= SL_CONN_KEEPALIVE;
        else if (sl_str_case_eq(e, SL_STR("upgrade")))
            opts |= SL_CONN_UPGRADE;
    }
    return opts;
}

static int sl_http_keepalive(int minor_version, unsigned opts)
{
    if (opts & SL_CONN_CLOSE)
        return 0;
    return minor_version >= 1 || (opts & SL_CONN_KEEPALIVE) != 0;
}

/* The header names the rules look at, found by length first. */
enum { F_OTHER, F_HOST, F_CL, F_TE, F_CONNECTION, F_EXPECT, F_UPGRADE };

static int sl_http_field_kind(sl_str_t name)
{
    switch (name.len) {
    case 4:
        return sl_str_case_eq(name, SL_STR("host")) ? F_HOST : F_OTHER;
    case 6:
        return sl_str_case_eq(name, SL_STR("expect")) ? F_EXPECT : F_OTHER;
    case 7:
        return sl_str_case_eq(name, SL_STR("upgrade")) ? F_UPGRADE : F_OTHER;
    case 10:
        return sl_str_case_eq(name, SL_STR("connection")) ? F_CONNECTION : F_OTHER;
    case 14:
        return sl_str_case_eq(name, SL_STR("content-length")) ? F_CL : F_OTHER;
    case 17:
        return sl_str_case_eq(name, SL_STR("transfer-encoding")) ? F_TE : F_OTHER;
    default:
        return F_OTHER;
    }
}

int sl_http_request_validate(const sl_http_req_head_t *h, sl_http_request_info_t *info,
                             int *status)
{
    size_t nhost = 0, nte = 0, ncl = 0;
    sl_str_t host = SL_NULL_STR, te = SL_NULL_STR;
    int64_t cl = -1;
    int cl_bad = 0, has_upgrade = 0, expect_continue = 0, expect_other = 0;
    unsigned opts = 0;
    sl_http_list_t it;
    sl_str_t e;

    memset(info, 0, sizeof(*info));
    info->content_length = -1;

    for (size_t i = 0; i < h->num_headers; i++) {
        const sl_header_t *f = &h->headers[i];

        switch (sl_http_field_kind(f->name)) {
        case F_HOST:
            nhost++;
            host = f->value;
            break;
        case F_CL:
            ncl++;
            if (!cl_bad && sl_http_content_length(f->value, &cl) != SL_OK)
                cl_bad = 1;
            break;
        case F_TE:
            nte++;
            te = f->value;
            break;
        case F_CONNECTION:
            opts |= sl_http_connection_options(f->value);
            break;
        case F_EXPECT:
            sl_http_list_init(&it, f->value);
            while (sl_http_list_next(&it, &e)) {
                if (sl_str_case_eq(e, SL_STR("100-continue")))
                    expect_continue = 1;
                else if (e.len > 0)
                    expect_other = 1;
            }
            break;
        case F_UPGRADE:
            has_upgrade = 1;
            break;
        default:
            break;
        }
    }

    /* RFC 9112 3.2: Host is required on 1.1, once, and must be a valid authority. */
    if ((h->minor_version >= 1 && nhost == 0) || nhost > 1)
        goto bad_request;
    if (host.len > 0 && !sl_http_authority_valid(host.data, host.len, 0))
        goto bad_request;

    /* RFC 9112 6.1/6.3: both framings at once, or chunked on 1.0, are smuggling vectors. */
    if (nte > 0 && ncl > 0)
        goto bad_request;
    if (nte > 0 && h->minor_version == 0)
        goto bad_request;
    if (nte > 0) {
        if (nte > 1 || !sl_str_case_eq(te, SL_STR("chunked"))) {
            *status = 501;
            return SL_ERROR;
        }
        info->chunked = 1;
    }
    if (cl_bad)
        goto bad_request;
    info->content_length = cl;

    if (expect_other) {
        *status = 417;
        return SL_ERROR;
    }
    /* RFC 9110 10.1.1: a 100-continue expectation on an HTTP/1.0 request is ignored. */
    info->expect_continue = expect_continue && h->minor_version >= 1;
    info->keepalive = (unsigned)sl_http_keepalive(h->minor_version, opts);
    /* RFC 9110 7.8: Upgrade on an HTTP/1.0 request is ignored. */
    info->upgrade = h->minor_version >= 1 && (opts & SL_CONN_UPGRADE) && has_upgrade;
    info->host = h->authority.len > 0 ? h->authority : host;
    return SL_OK;

bad_request:
    *status = 400;
    return SL_ERROR;
}

int sl_http_response_validate(const sl_http_resp_head_t *h, int request_was_head,
                              sl_http_response_info_t *info)
{
    size_t nte = 0, ncodings = 0, nchunked = 0;
    int64_t cl = -1;
    int last_chunked = 0;
    unsigned opts = 0;
    sl_http_list_t it;
    sl_str_t e;

    memset(info, 0, sizeof(*info));
    info->content_length = -1;
    if (h->status < 100 || h->status > 599)
        return SL_ERROR;

    for (size_t i = 0; i < h->num_headers; i++) {
        const sl_header_t *f = &h->headers[i];

        switch (sl_http_field_kind(f->name)) {
        case F_CL:
            if (sl_http_content_length(f->value, &cl) != SL_OK)
                return SL_ERROR;
            break;
        case F_TE:
            nte++;
            sl_http_list_init(&it, f->value);
            while (sl_http_list_next(&it, &e)) {
                size_t n = 0;

                if (e.len == 0)
                    continue;
                /* the coding name ends at its parameters */
                while (n < e.len && e.data[n] != ';' && e.data[n] != ' ' && e.data[n] != '\t')
                    n++;
                ncodings++;
                e.len = n;
                last_chunked = sl_str_case_eq(e, SL_STR("chunked"));
                nchunked += (size_t)last_chunked;
            }
            break;
        case F_CONNECTION:
            opts |= sl_http_connection_options(f->value);
            break;
        default:
            break;
        }
    }

    info->keepalive = (unsigned)sl_http_keepalive(h->minor_version, opts);
    if (h->status < 200 || h->status == 204 || h->status == 304 || request_was_head) {
        info->no_body = 1;
        info->content_length = cl;
        return SL_OK;
    }

    if (nte > 0) {
        /* RFC 9112 6.1: Transfer-Encoding in a 1.0 message means faulty framing. */
        if (h->minor_version == 0 || ncodings == 0 || nchunked > 1)
            return SL_ERROR;
        if (last_chunked) {
            info->chunked = 1;
            if (cl >= 0)
                info->keepalive = 0; /* RFC 9112 6.3: CL dropped, connection not reused */
        } else {
            info->close_delimited = 1; /* RFC 9112 6.3 (3): read until close */
            info->keepalive = 0;
        }
        return SL_OK;
    }
    if (cl >= 0) {
        info->content_length = cl;
        return SL_OK;
    }
    info->close_delimited = 1;
    info->keepalive = 0;
    return SL_OK;
}
