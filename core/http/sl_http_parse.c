/*
 * sl_http_parse.c: HTTP/1.x syntax (request line, status line, header fields, chunked
 * framing). See sl_http_parse.h for the contract.
 *
 * How it scans: one pass, left to right, with a 256-entry class table; each byte class is a
 * bit so a scan loop is `while (p < lend && CT(*p, CLASS)) p++` and the byte that stopped it
 * decides. Every decision is taken at a byte position and depends only on the bytes before
 * and at it, which is what makes a prefix parse agree with a whole-buffer parse. Line limits
 * are enforced by shortening the scan end (`lend`): a scan that reaches the limit looks at the
 * byte there, which must end the line. The head limit is enforced by never looking past
 * max_header_bytes.
 */
#include "http/sl_http_parse.h"

#include <limits.h>
#include <string.h>

#define CT_TCHAR 0x01   /* RFC 9110 tchar */
#define CT_TARGET 0x02  /* request-target bytes: 0x21-0x7E and obs-text */
#define CT_VALUE 0x04   /* field-value bytes: HTAB, SP, VCHAR, obs-text */
#define CT_VCHAR 0x08   /* 0x21-0x7E */
#define CT_HEX 0x10     /* HEXDIG */
#define CT_REGNAME 0x20 /* RFC 3986 unreserved and sub-delims */
#define CT_QDTEXT 0x40  /* quoted-string text: HTAB, SP, 0x21, 0x23-0x5B, 0x5D-0x7E, obs-text */

static const unsigned char sl_http_ctype[256] = {
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* 00 */
    0x00, 0x44, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* 08 */
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* 10 */
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* 18 */
    0x44, 0x6f, 0x0e, 0x4f, 0x6f, 0x4f, 0x6f, 0x6f, /* 20 */
    0x6e, 0x6e, 0x6f, 0x6f, 0x6e, 0x6f, 0x6f, 0x4e, /* 28 */
    0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, /* 30 */
    0x7f, 0x7f, 0x4e, 0x6e, 0x4e, 0x6e, 0x4e, 0x4e, /* 38 */
    0x4e, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x6f, /* 40 */
    0x6f, 0x6f, 0x6f, 0x6f, 0x6f, 0x6f, 0x6f, 0x6f, /* 48 */
    0x6f, 0x6f, 0x6f, 0x6f, 0x6f, 0x6f, 0x6f, 0x6f, /* 50 */
    0x6f, 0x6f, 0x6f, 0x4e, 0x0e, 0x4e, 0x4f, 0x6f, /* 58 */
    0x4f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x6f, /* 60 */
    0x6f, 0x6f, 0x6f, 0x6f, 0x6f, 0x6f, 0x6f, 0x6f, /* 68 */
    0x6f, 0x6f, 0x6f, 0x6f, 0x6f, 0x6f, 0x6f, 0x6f, /* 70 */
    0x6f, 0x6f, 0x6f, 0x4e, 0x4f, 0x4e, 0x6f, 0x00, /* 78 */
    0x46, 0x46, 0x46, 0x46, 0x46, 0x46, 0x46, 0x46, /* 80 */
    0x46, 0x46, 0x46, 0x46, 0x46, 0x46, 0x46, 0x46, /* 88 */
    0x46, 0x46, 0x46, 0x46, 0x46, 0x46, 0x46, 0x46, /* 90 */
    0x46, 0x46, 0x46, 0x46, 0x46, 0x46, 0x46, 0x46, /* 98 */
    0x46, 0x46, 0x46, 0x46, 0x46, 0x46, 0x46, 0x46, /* a0 */
    0x46, 0x46, 0x46, 0x46, 0x46, 0x46, 0x46, 0x46, /* a8 */
    0x46, 0x46, 0x46, 0x46, 0x46, 0x46, 0x46, 0x46, /* b0 */
    0x46, 0x46, 0x46, 0x46, 0x46, 0x46, 0x46, 0x46, /* b8 */
    0x46, 0x46, 0x46, 0x46, 0x46, 0x46, 0x46, 0x46, /* c0 */
    0x46, 0x46, 0x46, 0x46, 0x46, 0x46, 0x46, 0x46, /* c8 */
    0x46, 0x46, 0x46, 0x46, 0x46, 0x46, 0x46, 0x46, /* d0 */
    0x46, 0x46, 0x46, 0x46, 0x46, 0x46, 0x46, 0x46, /* d8 */
    0x46, 0x46, 0x46, 0x46, 0x46, 0x46, 0x46, 0x46, /* e0 */
    0x46, 0x46, 0x46, 0x46, 0x46, 0x46, 0x46, 0x46, /* e8 */
    0x46, 0x46, 0x46, 0x46, 0x46, 0x46, 0x46, 0x46, /* f0 */
    0x46, 0x46, 0x46, 0x46, 0x46, 0x46, 0x46, 0x46, /* f8 */
};

#define CT(c, cls) (sl_http_ctype[(unsigned char)(c)] & (cls))

static inline int sl_http_fail(int *status, int code)
{
    *status = code;
    return SL_ERROR;
}

/*
 * Eight bytes at a time for the long runs (values, targets): 1 when no byte of the word is
 * below `lo` (lo <= 0x80) and none is 0x7F. Exact for "some byte", whatever the byte order.
 * A word that fails is rescanned bytewise, so a rare HTAB only costs one slow word.
 */
#define SL_HTTP_ONES 0x0101010101010101ULL
#define SL_HTTP_HIGHS 0x8080808080808080ULL

static inline int sl_http_word_plain(const char *p, uint64_t lo)
{
    uint64_t x, y;

    memcpy(&x, p, sizeof(x));
    y = x ^ (SL_HTTP_ONES * 0x7f);
    return (((x - SL_HTTP_ONES * lo) & ~x) | ((y - SL_HTTP_ONES) & ~y)) & SL_HTTP_HIGHS ? 0 : 1;
}

/* Advances p over bytes of class cls; `lo` is the fast-path bound matching that class. */
static inline const char *sl_http_scan(const char *p, const char *lend, unsigned cls, uint64_t lo)
{
    while (p < lend) {
        if (lend - p >= 8 && sl_http_word_plain(p, lo)) {
            p += 8;
            continue;
        }
        if (!CT(*p, cls))
            break;
        p++;
    }
    return p;
}

/* The scan end for a line starting at ls: ls + max, or end when that comes first. */
static inline const char *sl_http_line_limit(const char *ls, const char *end, size_t max)
{
    return (size_t)(end - ls) > max ? ls + max : end;
}

/*
 * After a scan loop stopped at p (p <= lend <= end): SL_OK when *p may be examined (the scan
 * stopped on a byte inside the line limit, or exactly at the limit on a line terminator),
 * SL_AGAIN when the input ran out, SL_ERROR/limit_status when the line goes on past its limit.
 */
static inline int sl_http_scan_stop(const char *p, const char *lend, const char *end,
                                    int limit_status, int *status)
{
    if (p < lend)
        return SL_OK;
    if (p == end)
        return SL_AGAIN;
    if (*p == '\r' || *p == '\n')
        return SL_OK;
    return sl_http_fail(status, limit_status);
}

/* Consumes the line end at *pp (p < end): CRLF or a bare LF; anything else is a 400. */
static inline int sl_http_eat_eol(const char **pp, const char *end, int *status)
{
    const char *p = *pp;

    if (*p == '\n') {
        *pp = p + 1;
        return SL_OK;
    }
    if (*p != '\r')
        return sl_http_fail(status, 400);
    if (p + 1 == end)
        return SL_AGAIN;
    if (p[1] != '\n')
        return sl_http_fail(status, 400); /* a bare CR */
    *pp = p + 2;
    return SL_OK;
}

/*
 * Header field lines from p through the blank line that ends the head. *count: fields already
 * seen before p (in) and in all (out, on SL_OK). out may be NULL (validate only). *done: the
 * byte after the blank line.
 */
static int sl_http_parse_fields(const char *p, const char *end, sl_header_t *out, size_t *count,
                                size_t max_count, size_t max_line, int *status,
                                const char **done)
{
    size_t n = *count;
    int rc;

    for (;;) {
        const char *ls = p, *lend, *name_end, *vs, *ve;

        if (p == end)
            return SL_AGAIN;
        if (*p == '\r' || *p == '\n') {
            if ((rc = sl_http_eat_eol(&p, end, status)) != SL_OK)
                return rc;
            break;
        }
        if (*p == ' ' || *p == '\t')
            return sl_http_fail(status, 400); /* obs-fold, or whitespace before a field */
        if (n >= max_count)
            return sl_http_fail(status, 431);

        lend = sl_http_line_limit(ls, end, max_line);
        while (p < lend && CT(*p, CT_TCHAR))
            p++;
        if ((rc = sl_http_scan_stop(p, lend, end, 431, status)) != SL_OK)
            return rc;
        if (*p != ':' || p == ls)
            return sl_http_fail(status, 400);
        name_end = p++;

        while (p < lend && (*p == ' ' || *p == '\t'))
            p++;
        vs = p;
        p = sl_http_scan(p, lend, CT_VALUE, 0x20);
        if ((rc = sl_http_scan_stop(p, lend, end, 431, status)) != SL_OK)
            return rc;
        ve = p;
        if ((rc = sl_http_eat_eol(&p, end, status)) != SL_OK)
            return rc;
        while (ve > vs && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;

        if (out != NULL) {
            out[n].name.data = ls;
            out[n].name.len = (size_t)(name_end - ls);
            out[n].value.data = vs;
            out[n].value.len = (size_t)(ve - vs);
        }
        n++;
    }
    *count = n;
    *done = p;
    return SL_OK;
}

/* Case-insensitive prefix test against a lower-case literal of n bytes. */
static int sl_http_lower_eq(const char *s, const char *lit, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 'A' && c <= 'Z')
            c += 32;
        if (c != (unsigned char)lit[i])
            return 0;
    }
    return 1;
}

int sl_http_authority_valid(const char *s, size_t len, int port_required)
{
    size_t i = 0, digits;
    unsigned long port = 0;

    if (len == 0)
        return 0;
    if (s[0] == '[') {
        for (i = 1; i < len && s[i] != ']'; i++) {
            if (!CT(s[i], CT_REGNAME) && s[i] != ':' && s[i] != '%')
                return 0;
        }
        if (i == len || i == 1)
            return 0;
        i++;
    } else {
        while (i < len && s[i] != ':') {
            if (s[i] == '%') {
                if (len - i < 3 || !CT(s[i + 1], CT_HEX) || !CT(s[i + 2], CT_HEX))
                    return 0;
                i += 3;
            } else if (CT(s[i], CT_REGNAME)) {
                i++;
            } else {
                return 0;
            }
        }
        if (i == 0)
            return 0;
    }
    if (i == len)
        return !port_required;
    if (s[i++] != ':')
        return 0;
    digits = len - i;
    if (digits == 0)
        return !port_required;
    if (digits > 5)
        return 0;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        port = port * 10 + (unsigned long)(s[i] - '0');
    }
    return port <= 65535;
}

/* Splits and checks the request-target against the method; 1 when acceptable. */
static int sl_http_parse_target(sl_http_req_head_t *h, const char *t, size_t tlen)
{
    const char *end = t + tlen, *a, *q, *ps;
    int is_connect = h->method.len == 7 && memcmp(h->method.data, "CONNECT", 7) == 0;
    size_t slen;

    h->target.data = t;
    h->target.len = tlen;
    h->authority.data = end;
    h->authority.len = 0;
    h->query.data = end;
    h->query.len = 0;

    if (t[0] == '/') { /* origin-form */
        if (is_connect)
            return 0;
        q = memchr(t, '?', tlen);
        h->path.data = t;
        h->path.len = q != NULL ? (size_t)(q - t) : tlen;
        if (q != NULL) {
            h->query.data = q + 1;
            h->query.len = (size_t)(end - q - 1);
        }
        return 1;
    }
    if (tlen == 1 && t[0] == '*') { /* asterisk-form */
        if (h->method.len != 7 || memcmp(h->method.data, "OPTIONS", 7) != 0)
            return 0;
        h->path = h->target;
        return 1;
    }
    if (is_connect) { /* authority-form, CONNECT only */
        if (!sl_http_authority_valid(t, tlen, 1))
            return 0;
        h->authority = h->target;
        h->path.data = end;
        h->path.len = 0;
        return 1;
    }

    /* absolute-form: http or https only */
    if (tlen >= 7 && sl_http_lower_eq(t, "http://", 7))
        slen = 4;
    else if (tlen >= 8 && sl_http_lower_eq(t, "https://", 8))
        slen = 5;
    else
        return 0;
    a = t + slen + 3;
    for (q = a; q < end && *q != '/' && *q != '?'; q++)
        ;
    if (!sl_http_authority_valid(a, (size_t)(q - a), 0))
        return 0;
    h->authority.data = a;
    h->authority.len = (size_t)(q - a);
    if (q == end || *q == '?') {
        h->path.data = t + slen + 1; /* the first '/' of "//" stands for the empty path */
        h->path.len = 1;
    } else {
        for (ps = q; q < end && *q != '?'; q++)
            ;
        h->path.data = ps;
        h->path.len = (size_t)(q - ps);
    }
    if (q < end) {
        h->query.data = q + 1;
        h->query.len = (size_t)(end - q - 1);
    }
    return 1;
}

/* method SP request-target SP HTTP-version CRLF, starting at p. */
static int sl_http_parse_request_line(const char *p, const char *end, sl_http_req_head_t *h,
                                      size_t max_line, int *status, const char **done)
{
    const char *lend = sl_http_line_limit(p, end, max_line), *m = p, *t, *v;
    int rc;

    while (p < lend && CT(*p, CT_TCHAR))
        p++;
    if ((rc = sl_http_scan_stop(p, lend, end, 414, status)) != SL_OK)
        return rc;
    if (*p != ' ' || p == m)
        return sl_http_fail(status, 400);
    h->method.data = m;
    h->method.len = (size_t)(p - m);

    t = ++p;
    p = sl_http_scan(p, lend, CT_TARGET, 0x21);
    if ((rc = sl_http_scan_stop(p, lend, end, 414, status)) != SL_OK)
        return rc;
    if (*p != ' ' || p == t || !sl_http_parse_target(h, t, (size_t)(p - t)))
        return sl_http_fail(status, 400);

    v = ++p;
    while (p < lend && CT(*p, CT_VCHAR))
        p++;
    if ((rc = sl_http_scan_stop(p, lend, end, 414, status)) != SL_OK)
        return rc;
    if (*p != '\r' && *p != '\n')
        return sl_http_fail(status, 400);
    if (p - v != 8 || memcmp(v, "HTTP/", 5) != 0 || v[5] < '0' || v[5] > '9' || v[6] != '.' ||
        v[7] < '0' || v[7] > '9')
        return sl_http_fail(status, 400);
    if (v[5] != '1' || v[7] > '1')
        return sl_http_fail(status, 505);
    h->minor_version = v[7] - '0';

    if ((rc = sl_http_eat_eol(&p, end, status)) != SL_OK)
        return rc;
    *done = p;
    return SL_OK;
}

/* Empty lines before the request line are skipped (RFC 9112 2.2); they count in the head. */
static int sl_http_skip_empty_lines(const char **pp, const char *end, int *status)
{
    const char *p = *pp;
    int rc;

    while (p < end) {
        if (*p != '\r' && *p != '\n') {
            *pp = p;
            return SL_OK;
        }
        if ((rc = sl_http_eat_eol(&p, end, status)) != SL_OK)
            return rc;
    }
    return SL_AGAIN;
}

static int sl_http_parse_head(const char *buf, const char *end, sl_http_req_head_t *h,
                              size_t max_n, const sl_http_limits_t *lim, int *status)
{
    const char *p = buf;
    size_t n = 0;
    int rc;

    if ((rc = sl_http_skip_empty_lines(&p, end, status)) != SL_OK)
        return rc;
    if ((rc = sl_http_parse_request_line(p, end, h, lim->max_request_line, status, &p)) != SL_OK)
        return rc;
    rc = sl_http_parse_fields(p, end, h->headers, &n, max_n, lim->max_header_line, status, &p);
    if (rc != SL_OK)
        return rc;
    h->num_headers = n;
    return (int)(p - buf);
}

/*
 * Cheap continuation after SL_AGAIN on buf[0..last_len): every line before the one that was
 * incomplete then passed, so only that line and what follows need checking. Returns
 * SL_DECLINED when still before the end of the request line (the caller parses from the
 * start, which costs at most one request line), SL_OK when the head is now complete (the
 * caller parses it from the start to fill h), else SL_AGAIN or SL_ERROR as a whole parse would.
 */
static int sl_http_resume_head(const char *buf, const char *end, size_t last_len, size_t max_n,
                               const sl_http_limits_t *lim, int *status)
{
    const char *nl = memrchr(buf, '\n', last_len), *ls, *f, *x, *done;
    size_t n = 0;

    if (nl == NULL)
        return SL_DECLINED;
    ls = nl + 1;
    for (f = buf; f < ls && (*f == '\r' || *f == '\n'); f++)
        ;
    if (f == ls)
        return SL_DECLINED;
    /* The request line starts at f and ends before ls; the lines after it are fields. Each
     * memchr finds a '\n' because ls[-1] is one. */
    x = (const char *)memchr(f, '\n', (size_t)(ls - f)) + 1;
    for (; x < ls; n++)
        x = (const char *)memchr(x, '\n', (size_t)(ls - x)) + 1;
    return sl_http_parse_fields(ls, end, NULL, &n, max_n, lim->max_header_line, status, &done);
}

int sl_http_parse_request(const char *buf, size_t len, size_t last_len, sl_http_req_head_t *h,
                          const sl_http_limits_t *lim, int *status)
{
    size_t hmax = lim->max_header_bytes < INT_MAX ? lim->max_header_bytes : INT_MAX;
    size_t tlen = len < hmax ? len : hmax;
    size_t max_n = lim->max_headers < h->num_headers ? lim->max_headers : h->num_headers;
    int rc;

    if (tlen > 0) {
        rc = SL_DECLINED;
        if (last_len > 0 && last_len <= tlen)
            rc = sl_http_resume_head(buf, buf + tlen, last_len, max_n, lim, status);
        if (rc == SL_OK || rc == SL_DECLINED)
            rc = sl_http_parse_head(buf, buf + tlen, h, max_n, lim, status);
        if (rc != SL_AGAIN)
            return rc;
    }
    if (len > hmax)
        return sl_http_fail(status, 431);
    return SL_AGAIN;
}

int sl_http_parse_response(const char *buf, size_t len, sl_http_resp_head_t *h, size_t max_bytes)
{
    static const char prefix[] = "HTTP/1.";
    size_t hmax = max_bytes < INT_MAX ? max_bytes : INT_MAX;
    size_t tlen = len < hmax ? len : hmax, n = 0, i;
    const char *p = buf, *end = buf + tlen, *rs, *re;
    int rc, st, code = 0, minor;

    if (tlen == 0)
        goto again;
    for (i = 0; i < sizeof(prefix) - 1; i++, p++) {
        if (p == end)
            goto again;
        if (*p != prefix[i])
            return SL_ERROR;
    }
    if (p == end)
        goto again;
    if (*p != '0' && *p != '1')
        return SL_ERROR;
    minor = *p++ - '0';
    if (p == end)
        goto again;
    if (*p++ != ' ')
        return SL_ERROR;
    for (i = 0; i < 3; i++, p++) {
        if (p == end)
            goto again;
        if (*p < '0' || *p > '9' || (i == 0 && *p == '0'))
            return SL_ERROR;
        code = code * 10 + (*p - '0');
    }
    if (p == end)
        goto again;
    rs = re = p;
    if (*p == ' ') {
        rs = ++p;
        while (p < end && CT(*p, CT_VALUE))
            p++;
        if (p == end)
            goto again;
        re = p;
    }
    rc = sl_http_eat_eol(&p, end, &st);
    if (rc == SL_OK)
        rc = sl_http_parse_fields(p, end, h->headers, &n, h->num_headers, SIZE_MAX, &st, &p);
    if (rc == SL_AGAIN)
        goto again;
    if (rc != SL_OK)
        return SL_ERROR;
    h->minor_version = minor;
    h->status = code;
    h->reason.data = rs;
    h->reason.len = (size_t)(re - rs);
    h->num_headers = n;
    return (int)(p - buf);

again:
    return len > hmax ? SL_ERROR : SL_AGAIN;
}

/* ---- chunked transfer coding (RFC 9112 7.1) ---- */

enum {
    /* chunk-size line: these states count against SL_HTTP_CHUNK_LINE_MAX */
    CH_SIZE_FIRST,   /* first hex digit */
    CH_SIZE,         /* more hex digits, ';', BWS, CR */
    CH_EXT_WS,       /* BWS that must be followed by ';' */
    CH_EXT_PRE_NAME, /* after ';': BWS, then the extension name */
    CH_EXT_NAME,
    CH_EXT_NAME_WS, /* BWS after a name: '=' or ';' must follow */
    CH_EXT_PRE_VAL, /* after '=': BWS, then a token or a quoted-string */
    CH_EXT_TOKEN,
    CH_EXT_QUOTED,
    CH_EXT_QUOTED_ESC,
    CH_EXT_AFTER_QUOTED,
    CH_SIZE_LF, /* the CR was seen */
    /* payload */
    CH_DATA,
    CH_DATA_CR,
    CH_DATA_LF,
    /* trailer section */
    CH_TRAILER_START,
    CH_TRAILER_NAME,
    CH_TRAILER_VALUE,
    CH_TRAILER_LF,
    CH_END_LF,
    CH_DONE,
    CH_ERROR
};

void sl_http_chunked_init(sl_http_chunked_t *c, size_t max_trailer_bytes)
{
    memset(c, 0, sizeof(*c));
    c->max_trailer_bytes = max_trailer_bytes;
    c->state = CH_SIZE_FIRST;
}

static inline int sl_http_hexval(unsigned char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch |= 0x20;
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    return -1;
}

int sl_http_chunked_parse(sl_http_chunked_t *c, const char *in, size_t len, size_t *consumed,
                          size_t *payload_off, size_t *payload_len)
{
    size_t i = 0;

    *consumed = 0;
    *payload_off = 0;
    *payload_len = 0;
    if (c->state == CH_DONE)
        return SL_DONE;
    if (c->state == CH_ERROR)
        return SL_ERROR;

    while (i < len) {
        unsigned char ch;
        int d;

        if (c->state == CH_DATA) {
            size_t run = len - i;
            if ((uint64_t)run > c->remaining)
                run = (size_t)c->remaining;
            *payload_off = i;
            *payload_len = run;
            c->remaining -= run;
            i += run;
            if (c->remaining == 0)
                c->state = CH_DATA_CR;
            *consumed = i;
            return SL_OK;
        }

        ch = (unsigned char)in[i++];
        if (c->state <= CH_SIZE_LF && ++c->line_bytes > SL_HTTP_CHUNK_LINE_MAX)
            goto fail;
        if (c->state >= CH_TRAILER_NAME && c->state <= CH_TRAILER_LF &&
            ++c->trailer_bytes > c->max_trailer_bytes)
            goto fail;

        switch (c->state) {
        case CH_SIZE_FIRST:
            if ((d = sl_http_hexval(ch)) < 0)
                goto fail;
            c->remaining = (uint64_t)d;
            c->state = CH_SIZE;
            break;
        case CH_SIZE:
            if ((d = sl_http_hexval(ch)) >= 0) {
                if (c->remaining > ((uint64_t)INT64_MAX - (uint64_t)d) >> 4)
                    goto fail; /* the size would not fit in 63 bits */
                c->remaining = (c->remaining << 4) | (uint64_t)d;
            } else if (ch == ';') {
                c->state = CH_EXT_PRE_NAME;
            } else if (ch == ' ' || ch == '\t') {
                c->state = CH_EXT_WS;
            } else if (ch == '\r') {
                c->state = CH_SIZE_LF;
            } else {
                goto fail;
            }
            break;
        case CH_EXT_WS:
            if (ch == ';')
                c->state = CH_EXT_PRE_NAME;
            else if (ch != ' ' && ch != '\t')
                goto fail;
            break;
        case CH_EXT_PRE_NAME:
            if (CT(ch, CT_TCHAR))
                c->state = CH_EXT_NAME;
            else if (ch != ' ' && ch != '\t')
                goto fail;
            break;
        case CH_EXT_NAME:
            if (CT(ch, CT_TCHAR))
                break;
            if (ch == '=')
                c->state = CH_EXT_PRE_VAL;
            else if (ch == ';')
                c->state = CH_EXT_PRE_NAME;
            else if (ch == ' ' || ch == '\t')
                c->state = CH_EXT_NAME_WS;
            else if (ch == '\r')
                c->state = CH_SIZE_LF;
            else
                goto fail;
            break;
        case CH_EXT_NAME_WS:
            if (ch == '=')
                c->state = CH_EXT_PRE_VAL;
            else if (ch == ';')
                c->state = CH_EXT_PRE_NAME;
            else if (ch != ' ' && ch != '\t')
                goto fail;
            break;
        case CH_EXT_PRE_VAL:
            if (CT(ch, CT_TCHAR))
                c->state = CH_EXT_TOKEN;
            else if (ch == '"')
                c->state = CH_EXT_QUOTED;
            else if (ch != ' ' && ch != '\t')
                goto fail;
            break;
        case CH_EXT_TOKEN:
        case CH_EXT_AFTER_QUOTED:
            if (c->state == CH_EXT_TOKEN && CT(ch, CT_TCHAR))
                break;
            if (ch == ';')
                c->state = CH_EXT_PRE_NAME;
            else if (ch == ' ' || ch == '\t')
                c->state = CH_EXT_WS;
            else if (ch == '\r')
                c->state = CH_SIZE_LF;
            else
                goto fail;
            break;
        case CH_EXT_QUOTED:
            if (ch == '"')
                c->state = CH_EXT_AFTER_QUOTED;
            else if (ch == '\\')
                c->state = CH_EXT_QUOTED_ESC;
            else if (!CT(ch, CT_QDTEXT))
                goto fail;
            break;
        case CH_EXT_QUOTED_ESC:
            if (!CT(ch, CT_VALUE))
                goto fail;
            c->state = CH_EXT_QUOTED;
            break;
        case CH_SIZE_LF:
            if (ch != '\n')
                goto fail;
            c->line_bytes = 0;
            c->state = c->remaining > 0 ? CH_DATA : CH_TRAILER_START;
            break;
        case CH_DATA_CR:
            if (ch != '\r')
                goto fail;
            c->state = CH_DATA_LF;
            break;
        case CH_DATA_LF:
            if (ch != '\n')
                goto fail;
            c->state = CH_SIZE_FIRST;
            break;
        case CH_TRAILER_START:
            if (ch == '\r') {
                c->state = CH_END_LF;
            } else if (CT(ch, CT_TCHAR)) {
                if (++c->trailer_bytes > c->max_trailer_bytes)
                    goto fail;
                c->state = CH_TRAILER_NAME;
            } else {
                goto fail; /* obs-fold, a bare LF, or not a field name */
            }
            break;
        case CH_TRAILER_NAME:
            if (ch == ':')
                c->state = CH_TRAILER_VALUE;
            else if (!CT(ch, CT_TCHAR))
                goto fail;
            break;
        case CH_TRAILER_VALUE:
            if (ch == '\r')
                c->state = CH_TRAILER_LF;
            else if (!CT(ch, CT_VALUE))
                goto fail;
            break;
        case CH_TRAILER_LF:
            if (ch != '\n')
                goto fail;
            c->state = CH_TRAILER_START;
            break;
        case CH_END_LF:
            if (ch != '\n')
                goto fail;
            c->state = CH_DONE;
            *consumed = i;
            return SL_DONE;
        default:
            goto fail;
        }
    }
    *consumed = i;
    return SL_OK;

fail:
    c->state = CH_ERROR;
    *consumed = i;
    return SL_ERROR;
}
