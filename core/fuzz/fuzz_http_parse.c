/*
 * fuzz_http_parse.c: libFuzzer target for sl_http_parse and sl_http_request.
 *
 * On every input: the request parser under two sets of limits (generous and tight), one shot
 * and incrementally (byte by byte for the first 256 bytes, then in growing steps, passing
 * last_len), each prefix also from scratch; the validator on every parsed head; the response
 * parser on every prefix; the chunked decoder one shot, byte by byte and split in two, on
 * the input and on the body after a parsed head. Disagreements and broken invariants abort().
 * Every call reads from a heap copy of exactly the bytes it is given, so ASan sees over-reads.
 *
 * Build: see the Makefile target build/fuzz/fuzz_http_parse (clang -fsanitize=fuzzer,...).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/sl_http_parse.h"
#include "http/sl_http_request.h"

#define CAP 16

#define CHECK(cond, what)                                                                     \
    do {                                                                                      \
        if (!(cond)) {                                                                        \
            fprintf(stderr, "fuzz_http_parse: %s (%s:%d)\n", (what), __FILE__, __LINE__);     \
            abort();                                                                          \
        }                                                                                     \
    } while (0)

static const sl_http_limits_t fuzz_limits[2] = {
    {8192, 8192, 65536, CAP},
    {40, 32, 160, 4},
};

typedef struct {
    int rc, status;
    size_t off[5], len[5];
    int minor;
    size_t n, hoff[2 * CAP], hlen[2 * CAP];
} snap_t;

static char *copy_of(const uint8_t *data, size_t n)
{
    char *p = malloc(n ? n : 1);
    if (p == NULL)
        abort();
    if (n)
        memcpy(p, data, n);
    return p;
}

static void view_in(const char *base, size_t head, sl_str_t s, size_t *off, size_t *len)
{
    CHECK(s.len == 0 || (s.data >= base && s.data + s.len <= base + head), "view outside head");
    *off = s.len ? (size_t)(s.data - base) : 0;
    *len = s.len;
}

static int is_tchar_str(sl_str_t s)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.data[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c != 0 && strchr(extra, c) != NULL)))
            return 0;
    }
    return s.len > 0;
}

/* Validates a parsed request head and checks the invariants of the result. */
static void check_request_semantics(const sl_http_req_head_t *h)
{
    sl_http_request_info_t info;
    int status = 0;
    int rc = sl_http_request_validate(h, &info, &status);

    if (rc == SL_ERROR) {
        CHECK(status == 400 || status == 417 || status == 501, "validate status");
        return;
    }
    CHECK(rc == SL_OK, "validate rc");
    CHECK(!(info.chunked && info.content_length >= 0), "chunked with a length");
    CHECK(info.content_length >= -1 && info.content_length <= SL_HTTP_MAX_CONTENT_LENGTH,
          "content_length range");
    CHECK(!(info.chunked && h->minor_version == 0), "chunked on 1.0");
    CHECK(!(info.expect_continue && h->minor_version == 0), "expect on 1.0");
}

static void parse_req(const uint8_t *data, size_t k, size_t last, const sl_http_limits_t *lim,
                      snap_t *s, int semantics)
{
    char *buf = copy_of(data, k);
    sl_header_t hdrs[CAP];
    sl_http_req_head_t h;

    memset(s, 0, sizeof(*s));
    memset(&h, 0, sizeof(h));
    h.headers = hdrs;
    h.num_headers = CAP;
    s->rc = sl_http_parse_request(buf, k, last, &h, lim, &s->status);
    if (s->rc > 0) {
        size_t head = (size_t)s->rc;
        CHECK(head <= k && head <= lim->max_header_bytes, "head length");
        CHECK(h.num_headers <= lim->max_headers && h.num_headers <= CAP, "header count");
        CHECK(h.minor_version == 0 || h.minor_version == 1, "minor version");
        CHECK(is_tchar_str(h.method), "method token");
        CHECK(h.target.len > 0, "empty target");
        s->status = 0;
        view_in(buf, head, h.method, &s->off[0], &s->len[0]);
        view_in(buf, head, h.target, &s->off[1], &s->len[1]);
        view_in(buf, head, h.path, &s->off[2], &s->len[2]);
        view_in(buf, head, h.query, &s->off[3], &s->len[3]);
        view_in(buf, head, h.authority, &s->off[4], &s->len[4]);
        s->minor = h.minor_version;
        s->n = h.num_headers;
        for (size_t i = 0; i < h.num_headers; i++) {
            CHECK(is_tchar_str(hdrs[i].name), "header name token");
            view_in(buf, head, hdrs[i].name, &s->hoff[2 * i], &s->hlen[2 * i]);
            view_in(buf, head, hdrs[i].value, &s->hoff[2 * i + 1], &s->hlen[2 * i + 1]);
            for (size_t j = 0; j < hdrs[i].value.len; j++) {
                unsigned char c = (unsigned char)hdrs[i].value.data[j];
                CHECK(c == '\t' || (c >= 0x20 && c != 0x7f), "CTL in a header value");
            }
        }
        if (semantics)
            check_request_semantics(&h);
    } else if (s->rc == SL_ERROR) {
        CHECK(s->status == 400 || s->status == 414 || s->status == 431 || s->status == 505,
              "parse status");
    } else {
        CHECK(s->rc == SL_AGAIN, "parse rc");
        CHECK(h.num_headers == CAP, "num_headers touched on SL_AGAIN");
        s->status = 0;
    }
    free(buf);
}

/* One shot against incremental (with last_len), and each prefix against a fresh parse. */
static int fuzz_request(const uint8_t *data, size_t size, const sl_http_limits_t *lim)
{
    snap_t one, inc, fresh;
    size_t last = 0, k = 0;

    parse_req(data, size, 0, lim, &one, 1);
    memset(&inc, 0, sizeof(inc));
    inc.rc = SL_AGAIN;
    while (k < size) {
        k = k < 256 ? k + 1 : k + k / 8;
        if (k > size)
            k = size;
        parse_req(data, k, last, lim, &inc, 0);
        parse_req(data, k, 0, lim, &fresh, 0);
        CHECK(memcmp(&inc, &fresh, sizeof(inc)) == 0, "resumed parse differs from fresh parse");
        if (inc.rc != SL_AGAIN)
            break;
        last = k;
    }
    CHECK(memcmp(&inc, &one, sizeof(inc)) == 0, "incremental parse differs from one shot");
    return one.rc;
}

static void fuzz_response(const uint8_t *data, size_t size, size_t max)
{
    sl_header_t hdrs[CAP];
    sl_http_resp_head_t h;
    sl_http_response_info_t info;
    char *buf = copy_of(data, size);
    int one, rc;

    memset(&h, 0, sizeof(h));
    h.headers = hdrs;
    h.num_headers = CAP;
    one = sl_http_parse_response(buf, size, &h, max);
    if (one > 0) {
        CHECK((size_t)one <= size && (size_t)one <= max, "response head length");
        CHECK(h.status >= 100 && h.status <= 999, "response status");
        CHECK(h.reason.data >= buf && h.reason.data + h.reason.len <= buf + one, "reason view");
        for (int head = 0; head < 2; head++) {
            if (sl_http_response_validate(&h, head, &info) != SL_OK)
                continue;
            if (info.no_body) {
                CHECK(!info.chunked && !info.close_delimited, "no_body framing");
            } else {
                int ways = info.chunked + info.close_delimited + (info.content_length >= 0);
                CHECK(ways == 1, "response framing not exactly one way");
                CHECK(!info.close_delimited || !info.keepalive, "close-delimited keepalive");
            }
        }
    } else {
        CHECK(one == SL_AGAIN || one == SL_ERROR, "response rc");
    }
    free(buf);

    /* prefixes: SL_AGAIN, or the one-shot answer once the head is complete */
    for (size_t k = 0; k < size; k = k < 64 ? k + 1 : k + k / 4 + 1) {
        buf = copy_of(data, k);
        h.num_headers = CAP;
        rc = sl_http_parse_response(buf, k, &h, max);
        free(buf);
        CHECK(rc == SL_AGAIN || rc == one, "response prefix answer");
        if (rc != SL_AGAIN)
            break;
    }
}

/* Feeds in[0..len) in pieces (first, then step bytes at a time); returns the final code. */
static int chunk_drive(const uint8_t *in, size_t len, size_t first, size_t step, uint8_t *out,
                       size_t *out_len, size_t *total)
{
    sl_http_chunked_t c;
    size_t pos = 0, avail = first < len ? first : len;
    int rc;

    sl_http_chunked_init(&c, 64);
    *out_len = 0;
    for (;;) {
        size_t n = avail - pos, consumed, off, plen;
        char *buf = copy_of(in + pos, n);

        rc = sl_http_chunked_parse(&c, buf, n, &consumed, &off, &plen);
        CHECK(consumed <= n, "consumed more than given");
        CHECK(plen == 0 || (off + plen <= consumed && rc == SL_OK), "payload outside consumed");
        CHECK(rc == SL_OK || rc == SL_DONE || rc == SL_ERROR, "chunked rc");
        memcpy(out + *out_len, buf + off, plen);
        *out_len += plen;
        free(buf);
        pos += consumed;
        if (rc != SL_OK)
            break;
        if (consumed == 0) {
            CHECK(n == 0, "no progress on available input");
            if (avail == len)
                break;
            avail = avail + step < len ? avail + step : len;
        }
    }
    *total = pos;
    return rc;
}

static void fuzz_chunked(const uint8_t *data, size_t size)
{
    uint8_t *out1 = malloc(size + 1), *out2 = malloc(size + 1);
    size_t len1, len2, tot1, tot2;
    int rc1, rc2;

    if (out1 == NULL || out2 == NULL)
        abort();
    rc1 = chunk_drive(data, size, size, size, out1, &len1, &tot1);
    for (int mode = 0; mode < 2; mode++) {
        size_t first = mode == 0 ? 1 : (size > 0 ? (size_t)data[0] % (size + 1) : 0);
        size_t step = mode == 0 ? 1 : size;
        if (mode == 0 && size > 2048)
            continue;
        rc2 = chunk_drive(data, size, first, step, out2, &len2, &tot2);
        CHECK(rc1 == rc2, "chunked: split changes the result");
        CHECK(len1 == len2 && memcmp(out1, out2, len1) == 0, "chunked: split changes payload");
        CHECK(rc1 != SL_DONE || tot1 == tot2, "chunked: split changes the end");
    }
    free(out1);
    free(out2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int head = 0;

    for (size_t i = 0; i < SL_ARRAY_SIZE(fuzz_limits); i++) {
        int rc = fuzz_request(data, size, &fuzz_limits[i]);
        if (i == 0 && rc > 0)
            head = rc;
    }
    fuzz_response(data, size, 8192);
    fuzz_response(data, size, 48);
    fuzz_chunked(data, size);
    if (head > 0)
        fuzz_chunked(data + head, size - (size_t)head);
    return 0;
}
