/*
 * test_http_parse.c: table-driven tests of sl_http_parse (syntax) and sl_http_request
 * (semantics): requests including every smuggling rule, responses and chunked bodies.
 *
 * Every request case is also fed byte by byte (lengths 1..len, passing last_len), and every
 * prefix is parsed a second time from scratch: the two answers must agree with each other at
 * every step and the final one with the one-shot parse. Each call gets a heap copy of exactly
 * the bytes it may read, so ASan catches any read past len. Chunked bodies are decoded in one
 * go, split at every offset and byte by byte, with the same checks.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/sl_http_parse.h"
#include "http/sl_http_request.h"
#include "sl_test.h"

#define RAW(s) .raw = (s), .len = sizeof(s) - 1
#define H "Host: h\r\n"
#define CAP 64

enum { X_OK = 1, X_AGAIN, X_PARSE, X_SEM };

static const sl_http_limits_t lim_default = {8192, 8192, 65536, 64};
static const sl_http_limits_t lim_tight = {24, 16, 200, 3};
static const sl_http_limits_t lim_head27 = {8192, 8192, 27, 64};
static const sl_http_limits_t lim_head26 = {8192, 8192, 26, 64};

typedef struct {
    const char *name;
    const char *raw;
    size_t len;
    int expect;      /* X_OK, X_AGAIN, X_PARSE (parser status), X_SEM (validator status) */
    int status;      /* X_PARSE, X_SEM */
    size_t head_len; /* X_OK: 0 means the whole input */
    const char *method, *path, *query, *authority, *host; /* NULL query/authority: empty;
                                                             NULL host: not checked */
    int minor;
    size_t nhdr;
    long long cl;
    int chunked, keepalive, expect_continue, upgrade;
    const sl_http_limits_t *lim; /* NULL: lim_default */
    size_t cap;                  /* 0: CAP */
    int hidx;                    /* with hvalue: header index to check */
    const char *hname, *hvalue;
} req_case_t;

#define OK1(m, p) .expect = X_OK, .method = (m), .path = (p), .minor = 1
#define OK0(m, p) .expect = X_OK, .method = (m), .path = (p), .minor = 0
#define BAD(st) .expect = X_PARSE, .status = (st)
#define SEM(st) .expect = X_SEM, .status = (st)

static const req_case_t req_cases[] = {
    /* ---- valid ---- */
    {"minimal GET", RAW("GET / HTTP/1.1\r\n" H "\r\n"), OK1("GET", "/"), .nhdr = 1, .cl = -1,
     .keepalive = 1, .host = "h", .hidx = 0, .hname = "Host", .hvalue = "h"},
    {"query", RAW("GET /a/b?x=1&y=2 HTTP/1.1\r\n" H "\r\n"), OK1("GET", "/a/b"),
     .query = "x=1&y=2", .nhdr = 1, .cl = -1, .keepalive = 1},
    {"empty query", RAW("GET /a? HTTP/1.1\r\n" H "\r\n"), OK1("GET", "/a"), .nhdr = 1,
     .cl = -1, .keepalive = 1},
    {"second ? stays in query", RAW("GET /a?b?c HTTP/1.1\r\n" H "\r\n"), OK1("GET", "/a"),
     .query = "b?c", .nhdr = 1, .cl = -1, .keepalive = 1},
    {"HTTP/1.0 without Host", RAW("GET / HTTP/1.0\r\n\r\n"), OK0("GET", "/"), .nhdr = 0,
     .cl = -1, .keepalive = 0, .host = ""},
    {"1.0 keep-alive", RAW("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"), OK0("GET", "/"),
     .nhdr = 1, .cl = -1, .keepalive = 1},
    {"1.0 keep-alive and close", RAW("GET / HTTP/1.0\r\nConnection: Keep-Alive, close\r\n\r\n"),
     OK0("GET", "/"), .nhdr = 1, .cl = -1, .keepalive = 0},
    {"1.1 close", RAW("GET / HTTP/1.1\r\n" H "Connection: close\r\n\r\n"), OK1("GET", "/"),
     .nhdr = 2, .cl = -1, .keepalive = 0},
    {"1.1 close in token list",
     RAW("GET / HTTP/1.1\r\n" H "Connection: foo\r\nConnection: bar ,CLOSE\r\n\r\n"),
     OK1("GET", "/"), .nhdr = 3, .cl = -1, .keepalive = 0},
    {"1.1 close as substring is not close",
     RAW("GET / HTTP/1.1\r\n" H "Connection: closed, xclose\r\n\r\n"), OK1("GET", "/"),
     .nhdr = 2, .cl = -1, .keepalive = 1},
    {"POST with Content-Length and body",
     RAW("POST /p HTTP/1.1\r\n" H "Content-Length: 5\r\n\r\nhello"), OK1("POST", "/p"),
     .head_len = 48, .nhdr = 2, .cl = 5, .keepalive = 1},
    {"chunked", RAW("POST /p HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n"),
     OK1("POST", "/p"), .nhdr = 2, .cl = -1, .chunked = 1, .keepalive = 1},
    {"chunked any case", RAW("POST /p HTTP/1.1\r\n" H "transfer-encoding: ChUnKeD\r\n\r\n"),
     OK1("POST", "/p"), .nhdr = 2, .cl = -1, .chunked = 1, .keepalive = 1},
    {"chunked with OWS", RAW("POST /p HTTP/1.1\r\n" H "Transfer-Encoding: \t chunked \t\r\n\r\n"),
     OK1("POST", "/p"), .nhdr = 2, .cl = -1, .chunked = 1, .keepalive = 1, .hidx = 1,
     .hname = "Transfer-Encoding", .hvalue = "chunked"},
    {"leading CRLFs skipped", RAW("\r\n\r\nGET / HTTP/1.1\r\n" H "\r\n"), OK1("GET", "/"),
     .nhdr = 1, .cl = -1, .keepalive = 1},
    {"leading bare LF skipped", RAW("\nGET / HTTP/1.1\r\n" H "\r\n"), OK1("GET", "/"),
     .nhdr = 1, .cl = -1, .keepalive = 1},
    {"bare LF line ends", RAW("GET / HTTP/1.1\nHost: h\nX: y\n\n"), OK1("GET", "/"), .nhdr = 2,
     .cl = -1, .keepalive = 1, .hidx = 1, .hname = "X", .hvalue = "y"},
    {"mixed line ends", RAW("GET / HTTP/1.1\r\nHost: h\n\r\n"), OK1("GET", "/"), .nhdr = 1,
     .cl = -1, .keepalive = 1},
    {"OPTIONS *", RAW("OPTIONS * HTTP/1.1\r\n" H "\r\n"), OK1("OPTIONS", "*"), .nhdr = 1,
     .cl = -1, .keepalive = 1},
    {"absolute-form", RAW("GET http://example.com:8080/p/q?x=1 HTTP/1.1\r\nHost: other\r\n\r\n"),
     OK1("GET", "/p/q"), .query = "x=1", .authority = "example.com:8080",
     .host = "example.com:8080", .nhdr = 1, .cl = -1, .keepalive = 1},
    {"absolute-form without path", RAW("GET http://example.com HTTP/1.1\r\n" H "\r\n"),
     OK1("GET", "/"), .authority = "example.com", .host = "example.com", .nhdr = 1, .cl = -1,
     .keepalive = 1},
    {"absolute-form https, query only", RAW("GET HTTPS://h?x HTTP/1.1\r\n" H "\r\n"),
     OK1("GET", "/"), .query = "x", .authority = "h", .nhdr = 1, .cl = -1, .keepalive = 1},
    {"absolute-form IPv6", RAW("GET http://[::1]:80/ HTTP/1.1\r\n" H "\r\n"), OK1("GET", "/"),
     .authority = "[::1]:80", .nhdr = 1, .cl = -1, .keepalive = 1},
    {"CONNECT authority-form", RAW("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n"
                                   "\r\n"),
     OK1("CONNECT", ""), .authority = "example.com:443", .host = "example.com:443", .nhdr = 1,
     .cl = -1, .keepalive = 1},
    {"duplicate identical Content-Length",
     RAW("POST / HTTP/1.1\r\n" H "Content-Length: 5\r\nContent-Length: 5\r\n\r\n"),
     OK1("POST", "/"), .nhdr = 3, .cl = 5, .keepalive = 1},
    {"Content-Length list of identical values",
     RAW("POST / HTTP/1.1\r\n" H "Content-Length: 5 ,5,\t5\r\n\r\n"), OK1("POST", "/"), .nhdr = 2,
     .cl = 5, .keepalive = 1},
    {"Content-Length leading zeros", RAW("POST / HTTP/1.1\r\n" H "Content-Length: 007\r\n\r\n"),
     OK1("POST", "/"), .nhdr = 2, .cl = 7, .keepalive = 1},
    {"Content-Length 0", RAW("POST / HTTP/1.1\r\n" H "Content-Length: 0\r\n\r\n"),
     OK1("POST", "/"), .nhdr = 2, .cl = 0, .keepalive = 1},
    {"Content-Length 2^62",
     RAW("POST / HTTP/1.1\r\n" H "Content-Length: 4611686018427387904\r\n\r\n"),
     OK1("POST", "/"), .nhdr = 2, .cl = 4611686018427387904LL, .keepalive = 1},
    {"Expect: 100-continue", RAW("PUT / HTTP/1.1\r\n" H "Expect: 100-continue\r\n\r\n"),
     OK1("PUT", "/"), .nhdr = 2, .cl = -1, .keepalive = 1, .expect_continue = 1},
    {"Expect any case", RAW("PUT / HTTP/1.1\r\n" H "expect: 100-Continue\r\n\r\n"),
     OK1("PUT", "/"), .nhdr = 2, .cl = -1, .keepalive = 1, .expect_continue = 1},
    {"Expect on 1.0 ignored", RAW("PUT / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n"),
     OK0("PUT", "/"), .nhdr = 1, .cl = -1, .keepalive = 0, .expect_continue = 0},
    {"Upgrade", RAW("GET /ws HTTP/1.1\r\n" H "Connection: keep-alive, Upgrade\r\n"
                    "Upgrade: websocket\r\n\r\n"),
     OK1("GET", "/ws"), .nhdr = 3, .cl = -1, .keepalive = 1, .upgrade = 1},
    {"Upgrade field without the option", RAW("GET /ws HTTP/1.1\r\n" H "Upgrade: websocket\r\n\r\n"),
     OK1("GET", "/ws"), .nhdr = 2, .cl = -1, .keepalive = 1, .upgrade = 0},
    {"Upgrade on 1.0 ignored", RAW("GET /ws HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: ws\r\n"
                                   "\r\n"),
     OK0("GET", "/ws"), .nhdr = 2, .cl = -1, .keepalive = 0, .upgrade = 0},
    {"obs-text value", RAW("GET / HTTP/1.1\r\n" H "X: caf\xc3\xa9\r\n\r\n"), OK1("GET", "/"),
     .nhdr = 2, .cl = -1, .keepalive = 1, .hidx = 1, .hname = "X", .hvalue = "caf\xc3\xa9"},
    {"empty value", RAW("GET / HTTP/1.1\r\n" H "X-Empty:\r\n\r\n"), OK1("GET", "/"), .nhdr = 2,
     .cl = -1, .keepalive = 1, .hidx = 1, .hname = "X-Empty", .hvalue = ""},
    {"OWS trimmed, inner kept", RAW("GET / HTTP/1.1\r\n" H "X:  \t a \t b \t \r\n\r\n"),
     OK1("GET", "/"), .nhdr = 2, .cl = -1, .keepalive = 1, .hidx = 1, .hname = "X",
     .hvalue = "a \t b"},
    {"extension method", RAW("M-SEARCH /x HTTP/1.1\r\n" H "\r\n"), OK1("M-SEARCH", "/x"),
     .nhdr = 1, .cl = -1, .keepalive = 1},
    {"lower-case method is just a token", RAW("get / HTTP/1.1\r\n" H "\r\n"), OK1("get", "/"),
     .nhdr = 1, .cl = -1, .keepalive = 1},
    {"Host with port", RAW("GET / HTTP/1.1\r\nHost: example.com:8080\r\n\r\n"), OK1("GET", "/"),
     .nhdr = 1, .cl = -1, .keepalive = 1, .host = "example.com:8080"},
    {"Host IPv6", RAW("GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n"), OK1("GET", "/"), .nhdr = 1,
     .cl = -1, .keepalive = 1, .host = "[::1]:8080"},
    {"Host percent-encoded", RAW("GET / HTTP/1.1\r\nHost: a%2Db.c\r\n\r\n"), OK1("GET", "/"),
     .nhdr = 1, .cl = -1, .keepalive = 1, .host = "a%2Db.c"},
    {"empty Host", RAW("GET / HTTP/1.1\r\nHost:\r\n\r\n"), OK1("GET", "/"), .nhdr = 1, .cl = -1,
     .keepalive = 1, .host = ""},
    {"pipelined requests", RAW("GET /a HTTP/1.1\r\n" H "\r\nGET /b HTTP/1.1\r\n"),
     OK1("GET", "/a"), .head_len = 28, .nhdr = 1, .cl = -1, .keepalive = 1},
    {"obs-text in target", RAW("GET /caf\xc3\xa9 HTTP/1.1\r\n" H "\r\n"),
     OK1("GET", "/caf\xc3\xa9"), .nhdr = 1, .cl = -1, .keepalive = 1},
    {"request line at its limit", RAW("GET /1234567890 HTTP/1.1\r\n" H "\r\n"),
     OK1("GET", "/1234567890"), .nhdr = 1, .cl = -1, .keepalive = 1, .lim = &lim_tight},
    {"header line at its limit", RAW("GET / HTTP/1.1\r\n" H "X: 1234567890123\r\n\r\n"),
     OK1("GET", "/"), .nhdr = 2, .cl = -1, .keepalive = 1, .lim = &lim_tight},
    {"header count at its limit", RAW("GET / HTTP/1.1\r\n" H "A: 1\r\nB: 2\r\n\r\n"),
     OK1("GET", "/"), .nhdr = 3, .cl = -1, .keepalive = 1, .lim = &lim_tight},
    {"head at its limit", RAW("GET / HTTP/1.1\r\n" H "\r\nXYZ"), OK1("GET", "/"),
     .head_len = 27, .nhdr = 1, .cl = -1, .keepalive = 1, .lim = &lim_head27},

    /* ---- incomplete ---- */
    {"empty input", RAW(""), .expect = X_AGAIN},
    {"only empty lines", RAW("\r\n\r\n\n"), .expect = X_AGAIN},
    {"truncated request line", RAW("GET /index.ht"), .expect = X_AGAIN},
    {"truncated after CR", RAW("GET / HTTP/1.1\r"), .expect = X_AGAIN},
    {"truncated before blank line", RAW("GET / HTTP/1.1\r\n" H), .expect = X_AGAIN},
    {"truncated in the blank line", RAW("GET / HTTP/1.1\r\n" H "\r"), .expect = X_AGAIN},

    /* ---- request line syntax ---- */
    {"method with a non-tchar", RAW("G@T / HTTP/1.1\r\n" H "\r\n"), BAD(400)},
    {"NUL in method", RAW("G\0T / HTTP/1.1\r\n" H "\r\n"), BAD(400)},
    {"empty method", RAW(" / HTTP/1.1\r\n" H "\r\n"), BAD(400)},
    {"two spaces after method", RAW("GET  / HTTP/1.1\r\n" H "\r\n"), BAD(400)},
    {"two spaces after target", RAW("GET /  HTTP/1.1\r\n" H "\r\n"), BAD(400)},
    {"space after version", RAW("GET / HTTP/1.1 \r\n" H "\r\n"), BAD(400)},
    {"HTAB as separator", RAW("GET\t/ HTTP/1.1\r\n" H "\r\n"), BAD(400)},
    {"target not origin-form", RAW("GET foo HTTP/1.1\r\n" H "\r\n"), BAD(400)},
    {"* with GET", RAW("GET * HTTP/1.1\r\n" H "\r\n"), BAD(400)},
    {"*x with OPTIONS", RAW("OPTIONS *x HTTP/1.1\r\n" H "\r\n"), BAD(400)},
    {"CONNECT with origin-form", RAW("CONNECT / HTTP/1.1\r\n" H "\r\n"), BAD(400)},
    {"CONNECT without port", RAW("CONNECT example.com HTTP/1.1\r\n" H "\r\n"), BAD(400)},
    {"CONNECT with absolute-form", RAW("CONNECT http://h:1/ HTTP/1.1\r\n" H "\r\n"), BAD(400)},
    {"authority-form without CONNECT", RAW("GET example.com:80 HTTP/1.1\r\n" H "\r\n"), BAD(400)},
    {"other scheme", RAW("GET ftp://h/ HTTP/1.1\r\n" H "\r\n"), BAD(400)},
    {"userinfo in absolute-form", RAW("GET http://u:p@h/ HTTP/1.1\r\n" H "\r\n"), BAD(400)},
    {"empty authority", RAW("GET http:///x HTTP/1.1\r\n" H "\r\n"), BAD(400)},
    {"bad port in absolute-form", RAW("GET http://h:99999/ HTTP/1.1\r\n" H "\r\n"), BAD(400)},
    {"CTL in target", RAW("GET /a\x01" "b HTTP/1.1\r\n" H "\r\n"), BAD(400)},
    {"NUL in target", RAW("GET /a\0b HTTP/1.1\r\n" H "\r\n"), BAD(400)},
    {"DEL in target", RAW("GET /a\x7f" "b HTTP/1.1\r\n" H "\r\n"), BAD(400)},
    {"HTAB in target", RAW("GET /a\tb HTTP/1.1\r\n" H "\r\n"), BAD(400)},
    {"HTTP/2.0", RAW("GET / HTTP/2.0\r\n" H "\r\n"), BAD(505)},
    {"HTTP/1.2", RAW("GET / HTTP/1.2\r\n" H "\r\n"), BAD(505)},
    {"HTTP/0.9", RAW("GET / HTTP/0.9\r\n" H "\r\n"), BAD(505)},
    {"HTTP/3.1", RAW("GET / HTTP/3.1\r\n" H "\r\n"), BAD(505)},
    {"HTTX/1.1", RAW("GET / HTTX/1.1\r\n" H "\r\n"), BAD(400)},
    {"lower-case http/1.1", RAW("GET / http/1.1\r\n" H "\r\n"), BAD(400)},
    {"HTTP/1.1x", RAW("GET / HTTP/1.1x\r\n" H "\r\n"), BAD(400)},
    {"HTTP/1.10", RAW("GET / HTTP/1.10\r\n" H "\r\n"), BAD(400)},
    {"HTTP/1", RAW("GET / HTTP/1\r\n" H "\r\n"), BAD(400)},
    {"HTTP/2", RAW("GET / HTTP/2\r\n" H "\r\n"), BAD(400)},
    {"no version (0.9 style)", RAW("GET /\r\n\r\n"), BAD(400)},
    {"bare CR ends the request line", RAW("GET / HTTP/1.1\rHost: h\r\n\r\n"), BAD(400)},
    {"bare CR before the request line", RAW("\rGET / HTTP/1.1\r\n" H "\r\n"), BAD(400)},
    {"request line over its limit", RAW("GET /12345678901 HTTP/1.1\r\n" H "\r\n"), BAD(414),
     .lim = &lim_tight},
    {"request line over its limit, no line end yet", RAW("GET /123456789012345678901234567"),
     BAD(414), .lim = &lim_tight},

    /* ---- header syntax ---- */
    {"bare CR in value", RAW("GET / HTTP/1.1\r\n" H "X: a\rb\r\n\r\n"), BAD(400)},
    {"bare CR in the blank line", RAW("GET / HTTP/1.1\r\n" H "\rX\r\n"), BAD(400)},
    {"SP before colon", RAW("GET / HTTP/1.1\r\nHost : h\r\n\r\n"), BAD(400)},
    {"HTAB before colon", RAW("GET / HTTP/1.1\r\n" H "Content-Length\t: 5\r\n\r\n"), BAD(400)},
    {"empty name", RAW("GET / HTTP/1.1\r\n" H ": v\r\n\r\n"), BAD(400)},
    {"no colon", RAW("GET / HTTP/1.1\r\n" H "NoColon\r\n\r\n"), BAD(400)},
    {"space in name", RAW("GET / HTTP/1.1\r\n" H "X Y: v\r\n\r\n"), BAD(400)},
    {"non-tchar in name", RAW("GET / HTTP/1.1\r\n" H "X(y): v\r\n\r\n"), BAD(400)},
    {"obs-text in name", RAW("GET / HTTP/1.1\r\n" H "X\xff: v\r\n\r\n"), BAD(400)},
    {"obs-fold with SP", RAW("GET / HTTP/1.1\r\n" H "X: a\r\n b\r\n\r\n"), BAD(400)},
    {"obs-fold with HTAB", RAW("GET / HTTP/1.1\r\n" H "X: a\r\n\tb\r\n\r\n"), BAD(400)},
    {"whitespace before the first field", RAW("GET / HTTP/1.1\r\n Host: h\r\n\r\n"), BAD(400)},
    {"NUL in value", RAW("GET / HTTP/1.1\r\n" H "X: a\0b\r\n\r\n"), BAD(400)},
    {"DEL in value", RAW("GET / HTTP/1.1\r\n" H "X: a\x7f" "b\r\n\r\n"), BAD(400)},
    {"VT in value", RAW("GET / HTTP/1.1\r\n" H "X: a\x0b" "b\r\n\r\n"), BAD(400)},
    {"ESC in value", RAW("GET / HTTP/1.1\r\n" H "X: a\x1b" "b\r\n\r\n"), BAD(400)},
    {"header line over its limit", RAW("GET / HTTP/1.1\r\n" H "X: 12345678901234\r\n\r\n"),
     BAD(431), .lim = &lim_tight},
    {"too many headers", RAW("GET / HTTP/1.1\r\n" H "A: 1\r\nB: 2\r\nC: 3\r\n\r\n"), BAD(431),
     .lim = &lim_tight},
    {"more headers than the capacity", RAW("GET / HTTP/1.1\r\n" H "A: 1\r\nB: 2\r\n\r\n"),
     BAD(431), .cap = 2},
    {"head over its limit", RAW("GET / HTTP/1.1\r\n" H "\r\n"), BAD(431), .lim = &lim_head26},
    {"head over its limit, no end yet", RAW("GET / HTTP/1.1\r\n" H "X-A: bbbbbbbbbbbbbb"), BAD(431),
     .lim = &lim_head27},

    /* ---- semantics: framing and smuggling ---- */
    {"TE and CL", RAW("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n"
                      "\r\n"),
     SEM(400)},
    {"CL and TE", RAW("POST / HTTP/1.1\r\n" H "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"
                      "\r\n"),
     SEM(400)},
    {"TE gzip and CL (400 before 501)",
     RAW("POST / HTTP/1.1\r\n" H "Transfer-Encoding: gzip\r\nContent-Length: 5\r\n\r\n"), SEM(400)},
    {"TE on HTTP/1.0", RAW("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), SEM(400)},
    {"TE gzip, chunked", RAW("POST / HTTP/1.1\r\n" H "Transfer-Encoding: gzip, chunked\r\n\r\n"),
     SEM(501)},
    {"TE chunked, chunked", RAW("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked, chunked\r\n"
                                "\r\n"),
     SEM(501)},
    {"TE identity", RAW("POST / HTTP/1.1\r\n" H "Transfer-Encoding: identity\r\n\r\n"), SEM(501)},
    {"TE xchunked", RAW("POST / HTTP/1.1\r\n" H "Transfer-Encoding: xchunked\r\n\r\n"), SEM(501)},
    {"TE chunked with a parameter", RAW("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked;a=b\r\n"
                                        "\r\n"),
     SEM(501)},
    {"TE quoted", RAW("POST / HTTP/1.1\r\n" H "Transfer-Encoding: \"chunked\"\r\n\r\n"), SEM(501)},
    {"TE empty", RAW("POST / HTTP/1.1\r\n" H "Transfer-Encoding:\r\n\r\n"), SEM(501)},
    {"two TE fields", RAW("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n"
                          "Transfer-Encoding: chunked\r\n\r\n"),
     SEM(501)},
    {"CL with plus", RAW("POST / HTTP/1.1\r\n" H "Content-Length: +5\r\n\r\n"), SEM(400)},
    {"CL negative", RAW("POST / HTTP/1.1\r\n" H "Content-Length: -5\r\n\r\n"), SEM(400)},
    {"CL space inside", RAW("POST / HTTP/1.1\r\n" H "Content-Length: 5 5\r\n\r\n"), SEM(400)},
    {"CL empty", RAW("POST / HTTP/1.1\r\n" H "Content-Length:\r\n\r\n"), SEM(400)},
    {"CL hex", RAW("POST / HTTP/1.1\r\n" H "Content-Length: 0x5\r\n\r\n"), SEM(400)},
    {"CL trailing garbage", RAW("POST / HTTP/1.1\r\n" H "Content-Length: 5a\r\n\r\n"), SEM(400)},
    {"CL overflow", RAW("POST / HTTP/1.1\r\n" H "Content-Length: 99999999999999999999\r\n\r\n"),
     SEM(400)},
    {"CL 2^62 + 1", RAW("POST / HTTP/1.1\r\n" H "Content-Length: 4611686018427387905\r\n\r\n"),
     SEM(400)},
    {"CL differing fields", RAW("POST / HTTP/1.1\r\n" H "Content-Length: 5\r\nContent-Length: 6\r\n"
                                "\r\n"),
     SEM(400)},
    {"CL differing list", RAW("POST / HTTP/1.1\r\n" H "Content-Length: 5, 6\r\n\r\n"), SEM(400)},
    {"CL empty list element", RAW("POST / HTTP/1.1\r\n" H "Content-Length: 5,,5\r\n"
                                  "\r\n"), SEM(400)},
    {"CL trailing comma", RAW("POST / HTTP/1.1\r\n" H "Content-Length: 5,\r\n\r\n"), SEM(400)},
    {"CL equal value, other spelling", RAW("POST / HTTP/1.1\r\n" H "Content-Length: 5\r\n"
                                           "Content-Length: 05\r\n\r\n"),
     OK1("POST", "/"), .nhdr = 3, .cl = 5, .keepalive = 1},
    {"no Host on 1.1", RAW("GET / HTTP/1.1\r\n\r\n"), SEM(400)},
    {"no Host on 1.1, absolute-form", RAW("GET http://h/ HTTP/1.1\r\n\r\n"), SEM(400)},
    {"two Host fields", RAW("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"), SEM(400)},
    {"Host with SP", RAW("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), SEM(400)},
    {"Host with slash", RAW("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"), SEM(400)},
    {"Host with userinfo", RAW("GET / HTTP/1.1\r\nHost: u@h\r\n\r\n"), SEM(400)},
    {"Host with a bad port", RAW("GET / HTTP/1.1\r\nHost: h:80x\r\n\r\n"), SEM(400)},
    {"Host port only", RAW("GET / HTTP/1.1\r\nHost: :80\r\n\r\n"), SEM(400)},
    {"Host unterminated IPv6", RAW("GET / HTTP/1.1\r\nHost: [::1\r\n\r\n"), SEM(400)},
    {"Host with obs-text", RAW("GET / HTTP/1.1\r\nHost: caf\xc3\xa9\r\n\r\n"), SEM(400)},
    {"Host with bad percent", RAW("GET / HTTP/1.1\r\nHost: a%zz\r\n\r\n"), SEM(400)},
    {"Expect other", RAW("PUT / HTTP/1.1\r\n" H "Expect: foo\r\n\r\n"), SEM(417)},
    {"Expect list with other", RAW("PUT / HTTP/1.1\r\n" H "Expect: 100-continue, foo\r\n\r\n"),
     SEM(417)},
};

/* ---- request helpers ---- */

typedef struct {
    int rc, status;
    size_t off[5], len[5]; /* method, target, path, query, authority: offsets into the buffer */
    int minor;
    size_t n, hoff[2 * CAP], hlen[2 * CAP];
} req_snap_t;

static void snap_view(const char *base, sl_str_t s, size_t *off, size_t *len)
{
    *off = (size_t)(s.data - base);
    *len = s.len;
}

/* Parses raw[0..k) from a heap copy of exactly k bytes and records the answer by offsets. */
static void req_parse_copy(const char *raw, size_t k, size_t last_len, const sl_http_limits_t *lim,
                           size_t cap, req_snap_t *s)
{
    char *buf = malloc(k ? k : 1);
    sl_header_t hdrs[CAP];
    sl_http_req_head_t h;

    memcpy(buf, raw, k);
    memset(s, 0, sizeof(*s));
    memset(&h, 0, sizeof(h));
    h.headers = hdrs;
    h.num_headers = cap;
    s->rc = sl_http_parse_request(buf, k, last_len, &h, lim, &s->status);
    if (s->rc > 0) {
        s->status = 0;
        snap_view(buf, h.method, &s->off[0], &s->len[0]);
        snap_view(buf, h.target, &s->off[1], &s->len[1]);
        snap_view(buf, h.path, &s->off[2], &s->len[2]);
        snap_view(buf, h.query, &s->off[3], &s->len[3]);
        snap_view(buf, h.authority, &s->off[4], &s->len[4]);
        s->minor = h.minor_version;
        s->n = h.num_headers;
        for (size_t i = 0; i < h.num_headers && i < CAP; i++) {
            snap_view(buf, hdrs[i].name, &s->hoff[2 * i], &s->hlen[2 * i]);
            snap_view(buf, hdrs[i].value, &s->hoff[2 * i + 1], &s->hlen[2 * i + 1]);
        }
    } else if (s->rc == SL_AGAIN) {
        s->status = 0;
        SL_CHECK(h.num_headers == cap, "num_headers must be left alone on SL_AGAIN");
    }
    free(buf);
}

static int str_is(sl_str_t s, const char *want)
{
    if (want == NULL)
        want = "";
    return s.len == strlen(want) && (s.len == 0 || memcmp(s.data, want, s.len) == 0);
}

static void test_request_case(const req_case_t *c)
{
    const sl_http_limits_t *lim = c->lim ? c->lim : &lim_default;
    size_t cap = c->cap ? c->cap : CAP;
    sl_header_t hdrs[CAP];
    sl_http_req_head_t h;
    sl_http_request_info_t info;
    req_snap_t one, inc, fresh;
    size_t last = 0;
    int rc, status = 0;
    char *buf = malloc(c->len ? c->len : 1);

    /* one shot */
    memcpy(buf, c->raw, c->len);
    memset(&h, 0, sizeof(h));
    h.headers = hdrs;
    h.num_headers = cap;
    rc = sl_http_parse_request(buf, c->len, 0, &h, lim, &status);

    switch (c->expect) {
    case X_AGAIN:
        SL_CHECK(rc == SL_AGAIN, "%s: want SL_AGAIN, got %d (status %d)", c->name, rc, status);
        break;
    case X_PARSE:
        SL_CHECK(rc == SL_ERROR && status == c->status,
                 "%s: want parse error %d, got rc %d status %d", c->name, c->status, rc, status);
        break;
    case X_SEM:
        SL_CHECK(rc > 0, "%s: want a parsed head, got rc %d status %d", c->name, rc, status);
        if (rc > 0) {
            status = 0;
            int vrc = sl_http_request_validate(&h, &info, &status);
            SL_CHECK(vrc == SL_ERROR && status == c->status,
                     "%s: want validate error %d, got %d/%d", c->name, c->status, vrc, status);
        }
        break;
    case X_OK: {
        size_t want_len = c->head_len ? c->head_len : c->len;
        SL_CHECK(rc == (int)want_len, "%s: want head length %zu, got %d (status %d)", c->name,
                 want_len, rc, status);
        if (rc <= 0)
            break;
        SL_CHECK(str_is(h.method, c->method), "%s: method '%.*s'", c->name, (int)h.method.len,
                 h.method.data);
        SL_CHECK(str_is(h.path, c->path), "%s: path '%.*s'", c->name, (int)h.path.len, h.path.data);
        SL_CHECK(str_is(h.query, c->query), "%s: query '%.*s'", c->name, (int)h.query.len,
                 h.query.data);
        SL_CHECK(str_is(h.authority, c->authority), "%s: authority '%.*s'", c->name,
                 (int)h.authority.len, h.authority.data);
        SL_CHECK(h.minor_version == c->minor, "%s: minor %d", c->name, h.minor_version);
        SL_CHECK(h.num_headers == c->nhdr, "%s: %zu headers", c->name, h.num_headers);
        SL_CHECK(h.target.data == buf + (h.method.len + 1 + (size_t)(h.method.data - buf)),
                 "%s: target view", c->name);
        if (c->hvalue != NULL && (size_t)c->hidx < h.num_headers) {
            SL_CHECK(str_is(h.headers[c->hidx].name, c->hname), "%s: header name", c->name);
            SL_CHECK(str_is(h.headers[c->hidx].value, c->hvalue), "%s: header value '%.*s'",
                     c->name, (int)h.headers[c->hidx].value.len, h.headers[c->hidx].value.data);
        }
        status = 0;
        int vrc = sl_http_request_validate(&h, &info, &status);
        SL_CHECK(vrc == SL_OK, "%s: validate failed with %d", c->name, status);
        if (vrc != SL_OK)
            break;
        SL_CHECK(info.content_length == c->cl, "%s: content_length %lld", c->name,
                 (long long)info.content_length);
        SL_CHECK(info.chunked == (unsigned)c->chunked, "%s: chunked %u", c->name, info.chunked);
        SL_CHECK(info.keepalive == (unsigned)c->keepalive, "%s: keepalive %u", c->name,
                 info.keepalive);
        SL_CHECK(info.expect_continue == (unsigned)c->expect_continue, "%s: expect_continue",
                 c->name);
        SL_CHECK(info.upgrade == (unsigned)c->upgrade, "%s: upgrade", c->name);
        if (c->host != NULL)
            SL_CHECK(str_is(info.host, c->host), "%s: host '%.*s'", c->name, (int)info.host.len,
                     info.host.data);
        break;
    }
    default:
        SL_CHECK(0, "%s: bad table entry", c->name);
    }

    /* byte by byte, with last_len, each prefix also parsed from scratch */
    req_parse_copy(c->raw, c->len, 0, lim, cap, &one);
    memset(&inc, 0, sizeof(inc));
    inc.rc = SL_AGAIN;
    for (size_t k = 1; k <= c->len; k++) {
        req_parse_copy(c->raw, k, last, lim, cap, &inc);
        req_parse_copy(c->raw, k, 0, lim, cap, &fresh);
        SL_CHECK(memcmp(&inc, &fresh, sizeof(inc)) == 0,
                 "%s: at %zu bytes, last_len %zu gives %d/%d, from scratch %d/%d", c->name, k, last,
                 inc.rc, inc.status, fresh.rc, fresh.status);
        if (inc.rc != SL_AGAIN)
            break;
        last = k;
    }
    SL_CHECK(memcmp(&inc, &one, sizeof(inc)) == 0,
             "%s: incremental result %d/%d differs from one-shot %d/%d", c->name, inc.rc,
             inc.status, one.rc, one.status);
    free(buf);
}

/* Requests built at run time: sizes around the limits. */
static void test_request_generated(void)
{
    sl_http_limits_t lim = {64, 64, 4096, 8};
    sl_header_t hdrs[8];
    sl_http_req_head_t h;
    char buf[8192];
    int status, rc;
    size_t n;

    /* leading empty lines count against the head limit */
    n = 0;
    for (int i = 0; i < 3000; i++) {
        buf[n++] = '\r';
        buf[n++] = '\n';
    }
    memset(&h, 0, sizeof(h));
    h.headers = hdrs;
    h.num_headers = 8;
    rc = sl_http_parse_request(buf, n, 0, &h, &lim, &status);
    SL_CHECK(rc == SL_ERROR && status == 431, "6000 bytes of CRLF: %d/%d", rc, status);

    /* a long head fed in 7-byte pieces reports the same as one shot */
    n = (size_t)snprintf(buf, sizeof(buf), "GET /p HTTP/1.1\r\nHost: h\r\n");
    for (int i = 0; i < 6; i++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "X-%d: %040d\r\n", i, i);
    n += (size_t)snprintf(buf + n, sizeof(buf) - n, "\r\n");
    size_t last = 0;
    rc = SL_AGAIN;
    for (size_t k = 7; rc == SL_AGAIN; k = k + 7 > n ? n : k + 7) {
        h.num_headers = 8;
        rc = sl_http_parse_request(buf, k, last, &h, &lim, &status);
        last = k;
    }
    SL_CHECK(rc == (int)n && h.num_headers == 7, "pieces of 7: %d, %zu headers", rc,
             h.num_headers);

    /* last_len beyond len is ignored rather than trusted */
    h.num_headers = 8;
    rc = sl_http_parse_request(buf, n, n + 10, &h, &lim, &status);
    SL_CHECK(rc == (int)n, "last_len > len: %d", rc);

    /* max_headers over the capacity: the capacity wins */
    lim.max_headers = 100;
    h.num_headers = 2;
    rc = sl_http_parse_request(buf, n, 0, &h, &lim, &status);
    SL_CHECK(rc == SL_ERROR && status == 431, "capacity 2: %d/%d", rc, status);

    /* one odd byte at every position of values and targets of every length up to 40 (the
     * scanners take 8 bytes at a time, so this covers every place in a word) */
    static const struct {
        char byte;
        int in_value, in_target; /* expected: 0 = accepted, else the status */
    } odd[] = {{'\t', 0, 400},     {'\0', 400, 400},   {'\x01', 400, 400}, {'\x1f', 400, 400},
               {'\x7f', 400, 400}, {'\x80', 0, 0},     {'\xff', 0, 0},     {'\r', 400, 400},
               {'\n', 400, 400},   {' ', 0, 400},      {'~', 0, 0}};
    lim.max_headers = 8;
    for (size_t o = 0; o < SL_ARRAY_SIZE(odd); o++) {
        int bad_v = 0, bad_t = 0;
        for (size_t vlen = 1; vlen <= 40; vlen++) {
            for (size_t pos = 0; pos < vlen; pos++) {
                char val[48];
                memset(val, 'a', vlen);
                val[pos] = odd[o].byte;
                /* as a header value (not at its ends, where OWS would be trimmed) */
                n = (size_t)snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nHost: h\r\nX: <");
                memcpy(buf + n, val, vlen);
                n += vlen;
                n += (size_t)snprintf(buf + n, sizeof(buf) - n, ">\r\n\r\n");
                h.num_headers = 8;
                status = 0;
                rc = sl_http_parse_request(buf, n, 0, &h, &lim, &status);
                if (odd[o].in_value == 0) {
                    bad_v += !(rc == (int)n && h.headers[1].value.len == vlen + 2 &&
                               memcmp(h.headers[1].value.data + 1, val, vlen) == 0);
                } else {
                    bad_v += !(rc == SL_ERROR && status == odd[o].in_value);
                }
                /* in the target */
                n = (size_t)snprintf(buf, sizeof(buf), "GET /");
                memcpy(buf + n, val, vlen);
                n += vlen;
                n += (size_t)snprintf(buf + n, sizeof(buf) - n, " HTTP/1.1\r\nHost: h\r\n\r\n");
                h.num_headers = 8;
                status = 0;
                rc = sl_http_parse_request(buf, n, 0, &h, &lim, &status);
                if (odd[o].in_target == 0)
                    bad_t += !(rc == (int)n && h.path.len == vlen + 1);
                else
                    bad_t += !(rc == SL_ERROR && status == odd[o].in_target);
            }
        }
        SL_CHECK(bad_v == 0, "byte 0x%02x in values: %d wrong answers", (unsigned char)odd[o].byte,
                 bad_v);
        SL_CHECK(bad_t == 0, "byte 0x%02x in targets: %d wrong answers", (unsigned char)odd[o].byte,
                 bad_t);
    }
}

/* ---- responses ---- */

typedef struct {
    const char *name;
    const char *raw;
    size_t len;
    int expect; /* X_OK, X_AGAIN, X_PARSE (SL_ERROR from the parser), X_SEM (from validate) */
    size_t head_len;
    int req_head;
    int status, minor;
    const char *reason;
    size_t nhdr;
    long long cl;
    int chunked, keepalive, no_body, close_delimited;
    size_t max, cap;
} resp_case_t;

#define ROK(st, mi) .expect = X_OK, .status = (st), .minor = (mi)

static const resp_case_t resp_cases[] = {
    {"200 with length", RAW("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"), ROK(200, 1),
     .head_len = 38, .reason = "OK", .nhdr = 1, .cl = 5, .keepalive = 1},
    {"1.0 not persistent", RAW("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"), ROK(200, 0),
     .reason = "OK", .nhdr = 1, .cl = 0, .keepalive = 0},
    {"1.0 keep-alive", RAW("HTTP/1.0 200 OK\r\nContent-Length: 0\r\nConnection: keep-alive\r\n"
                           "\r\n"),
     ROK(200, 0), .reason = "OK", .nhdr = 2, .cl = 0, .keepalive = 1},
    {"1.1 close", RAW("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
     ROK(200, 1), .reason = "OK", .nhdr = 2, .cl = 0, .keepalive = 0},
    {"204", RAW("HTTP/1.1 204 No Content\r\n\r\n"), ROK(204, 1), .reason = "No Content",
     .cl = -1, .keepalive = 1, .no_body = 1},
    {"304 with a length", RAW("HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n"),
     ROK(304, 1), .reason = "Not Modified", .nhdr = 1, .cl = 10, .keepalive = 1, .no_body = 1},
    {"100 Continue", RAW("HTTP/1.1 100 Continue\r\n\r\n"), ROK(100, 1), .reason = "Continue",
     .cl = -1, .keepalive = 1, .no_body = 1},
    {"101", RAW("HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n"
                "\r\n"),
     ROK(101, 1), .reason = "Switching Protocols", .nhdr = 2, .cl = -1, .keepalive = 1,
     .no_body = 1},
    {"response to HEAD", RAW("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"), ROK(200, 1),
     .req_head = 1, .reason = "OK", .nhdr = 1, .cl = 100, .keepalive = 1, .no_body = 1},
    {"response to HEAD with TE on 1.0", RAW("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n"
                                            "\r\n"),
     ROK(200, 0), .req_head = 1, .reason = "OK", .nhdr = 1, .cl = -1, .no_body = 1},
    {"chunked", RAW("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), ROK(200, 1),
     .reason = "OK", .nhdr = 1, .cl = -1, .chunked = 1, .keepalive = 1},
    {"chunked wins over CL", RAW("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
                                 "Transfer-Encoding: chunked\r\n\r\n"),
     ROK(200, 1), .reason = "OK", .nhdr = 2, .cl = -1, .chunked = 1, .keepalive = 0},
    {"TE gzip only", RAW("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"), ROK(200, 1),
     .reason = "OK", .nhdr = 1, .cl = -1, .keepalive = 0, .close_delimited = 1},
    {"TE gzip, chunked", RAW("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
     ROK(200, 1), .reason = "OK", .nhdr = 1, .cl = -1, .chunked = 1, .keepalive = 1},
    {"TE over two fields", RAW("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n"
                               "Transfer-Encoding: Chunked\r\n\r\n"),
     ROK(200, 1), .reason = "OK", .nhdr = 2, .cl = -1, .chunked = 1, .keepalive = 1},
    {"TE chunked, gzip", RAW("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"),
     ROK(200, 1), .reason = "OK", .nhdr = 1, .cl = -1, .keepalive = 0, .close_delimited = 1},
    {"no framing: read to close", RAW("HTTP/1.1 200 OK\r\n\r\n"), ROK(200, 1), .reason = "OK",
     .cl = -1, .keepalive = 0, .close_delimited = 1},
    {"identical duplicate CL", RAW("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n"
                                   "\r\n"),
     ROK(200, 1), .reason = "OK", .nhdr = 2, .cl = 3, .keepalive = 1},
    {"no reason, no SP", RAW("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n"), ROK(200, 1),
     .reason = "", .nhdr = 1, .cl = 0, .keepalive = 1},
    {"empty reason", RAW("HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n"), ROK(200, 1),
     .reason = "", .nhdr = 1, .cl = 0, .keepalive = 1},
    {"obs-text reason, bare LF", RAW("HTTP/1.1 404 Nicht gefunden \xe2\x9c\x97\nContent-Length: 0\n"
                                     "\n"),
     ROK(404, 1), .reason = "Nicht gefunden \xe2\x9c\x97", .nhdr = 1, .cl = 0, .keepalive = 1},
    {"599", RAW("HTTP/1.1 599 X\r\nContent-Length: 0\r\n\r\n"), ROK(599, 1), .reason = "X",
     .nhdr = 1, .cl = 0, .keepalive = 1},
    {"differing CL", RAW("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n"),
     .expect = X_SEM},
    {"malformed CL", RAW("HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n"), .expect = X_SEM},
    {"malformed CL on 204", RAW("HTTP/1.1 204 OK\r\nContent-Length: -1\r\n\r\n"), .expect = X_SEM},
    {"TE on 1.0", RAW("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), .expect = X_SEM},
    {"chunked twice", RAW("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"),
     .expect = X_SEM},
    {"empty TE", RAW("HTTP/1.1 200 OK\r\nTransfer-Encoding:\r\n\r\n"), .expect = X_SEM},
    {"status 600", RAW("HTTP/1.1 600 X\r\n\r\n"), .expect = X_SEM},
    {"status 099", RAW("HTTP/1.1 099 X\r\n\r\n"), .expect = X_PARSE},
    {"two-digit status", RAW("HTTP/1.1 20 OK\r\n\r\n"), .expect = X_PARSE},
    {"four-digit status", RAW("HTTP/1.1 2000 OK\r\n\r\n"), .expect = X_PARSE},
    {"status with a letter", RAW("HTTP/1.1 2x0 OK\r\n\r\n"), .expect = X_PARSE},
    {"HTTP/2.0", RAW("HTTP/2.0 200 OK\r\n\r\n"), .expect = X_PARSE},
    {"HTTP/1.2", RAW("HTTP/1.2 200 OK\r\n\r\n"), .expect = X_PARSE},
    {"lower-case version", RAW("http/1.1 200 OK\r\n\r\n"), .expect = X_PARSE},
    {"two spaces", RAW("HTTP/1.1  200 OK\r\n\r\n"), .expect = X_PARSE},
    {"leading CRLF", RAW("\r\nHTTP/1.1 200 OK\r\n\r\n"), .expect = X_PARSE},
    {"obs-fold", RAW("HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n"), .expect = X_PARSE},
    {"bare CR", RAW("HTTP/1.1 200 OK\rX: a\r\n\r\n"), .expect = X_PARSE},
    {"CTL in reason", RAW("HTTP/1.1 200 O\x01K\r\n\r\n"), .expect = X_PARSE},
    {"SP before colon", RAW("HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\n"), .expect = X_PARSE},
    {"more headers than the capacity", RAW("HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\n\r\n"),
     .expect = X_PARSE, .cap = 1},
    {"head over max_bytes", RAW("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
     .expect = X_PARSE, .max = 20},
    {"head over max_bytes, no end yet", RAW("HTTP/1.1 200 OK\r\nX-Long: aaaaaaaaaaaaaaaa"),
     .expect = X_PARSE, .max = 30},
    {"truncated", RAW("HTTP/1.1 200 OK\r\nContent-Len"), .expect = X_AGAIN},
    {"truncated status line", RAW("HTTP/1."), .expect = X_AGAIN},
};

static void test_response_case(const resp_case_t *c)
{
    sl_header_t hdrs[CAP];
    sl_http_resp_head_t h;
    sl_http_response_info_t info;
    size_t max = c->max ? c->max : 8192, cap = c->cap ? c->cap : CAP;
    int rc = SL_AGAIN, prev = SL_AGAIN;

    /* every prefix, each from an exact-size copy: SL_AGAIN until the one-shot answer */
    for (size_t k = 0; k <= c->len; k++) {
        char *buf = malloc(k ? k : 1);
        memcpy(buf, c->raw, k);
        memset(&h, 0, sizeof(h));
        h.headers = hdrs;
        h.num_headers = cap;
        rc = sl_http_parse_response(buf, k, &h, max);
        free(buf);
        if (rc != SL_AGAIN)
            break;
        prev = rc;
    }
    SL_CHECK(prev == SL_AGAIN, "%s: prefixes", c->name);

    char *buf = malloc(c->len ? c->len : 1);
    memcpy(buf, c->raw, c->len);
    memset(&h, 0, sizeof(h));
    h.headers = hdrs;
    h.num_headers = cap;
    int one = sl_http_parse_response(buf, c->len, &h, max);
    SL_CHECK(c->expect == X_AGAIN || one == rc, "%s: prefix answer %d, one shot %d", c->name, rc,
             one);

    switch (c->expect) {
    case X_AGAIN:
        SL_CHECK(one == SL_AGAIN, "%s: want SL_AGAIN, got %d", c->name, one);
        break;
    case X_PARSE:
        SL_CHECK(one == SL_ERROR, "%s: want SL_ERROR, got %d", c->name, one);
        break;
    case X_SEM:
        SL_CHECK(one > 0, "%s: want a head, got %d", c->name, one);
        if (one > 0)
            SL_CHECK(sl_http_response_validate(&h, c->req_head, &info) == SL_ERROR,
                     "%s: want a validate error", c->name);
        break;
    case X_OK: {
        size_t want = c->head_len ? c->head_len : c->len;
        SL_CHECK(one == (int)want, "%s: want %zu, got %d", c->name, want, one);
        if (one <= 0)
            break;
        SL_CHECK(h.status == c->status && h.minor_version == c->minor, "%s: status %d minor %d",
                 c->name, h.status, h.minor_version);
        SL_CHECK(str_is(h.reason, c->reason), "%s: reason '%.*s'", c->name, (int)h.reason.len,
                 h.reason.data);
        SL_CHECK(h.num_headers == c->nhdr, "%s: %zu headers", c->name, h.num_headers);
        int vrc = sl_http_response_validate(&h, c->req_head, &info);
        SL_CHECK(vrc == SL_OK, "%s: validate failed", c->name);
        if (vrc != SL_OK)
            break;
        SL_CHECK(info.content_length == c->cl, "%s: content_length %lld", c->name,
                 (long long)info.content_length);
        SL_CHECK(info.chunked == (unsigned)c->chunked && info.keepalive == (unsigned)c->keepalive &&
                     info.no_body == (unsigned)c->no_body &&
                     info.close_delimited == (unsigned)c->close_delimited,
                 "%s: chunked %u keepalive %u no_body %u close_delimited %u", c->name,
                 info.chunked, info.keepalive, info.no_body, info.close_delimited);
        break;
    }
    default:
        SL_CHECK(0, "%s: bad table entry", c->name);
    }
    free(buf);
}

/* ---- chunked bodies ---- */

typedef struct {
    const char *name;
    const char *raw;
    size_t len;
    int rc;              /* SL_DONE, SL_ERROR, or SL_OK (input ends before the body does) */
    const char *payload; /* SL_DONE, SL_OK: all payload in order */
    size_t consumed;     /* SL_DONE: where the body ends; 0 means the whole input */
    size_t max_trailer;  /* 0: 1024 */
} chunk_case_t;

#define CDONE(p) .rc = SL_DONE, .payload = (p)
#define CBAD .rc = SL_ERROR

static const chunk_case_t chunk_cases[] = {
    {"one chunk", RAW("5\r\nhello\r\n0\r\n\r\n"), CDONE("hello")},
    {"empty body", RAW("0\r\n\r\n"), CDONE("")},
    {"hex digits both cases", RAW("3\r\nabc\r\nA\r\n0123456789\r\nf\r\nABCDEFGHIJKLMNO\r\n0\r\n"
                                  "\r\n"),
     CDONE("abc0123456789ABCDEFGHIJKLMNO")},
    {"leading zeros", RAW("0005\r\nhello\r\n000\r\n\r\n"), CDONE("hello")},
    {"extensions", RAW("5;foo=bar\r\nhello\r\n0;x;y=z\r\n\r\n"), CDONE("hello")},
    {"quoted extension", RAW("5;a=\"b;c\\\"d\"\r\nhello\r\n0\r\n\r\n"), CDONE("hello")},
    {"BWS in extensions", RAW("5 ; a = b ;\tc\r\nhello\r\n0\r\n\r\n"), CDONE("hello")},
    {"trailers", RAW("5\r\nhello\r\n0\r\nX-T: v\r\nY:\r\n\r\n"), CDONE("hello")},
    {"next message follows", RAW("1\r\nx\r\n0\r\n\r\nGET / HTTP/1.1\r\n"), CDONE("x"),
     .consumed = 11},
    {"CRLF bytes inside the data", RAW("4\r\n\r\n\r\n\r\n0\r\n\r\n"), CDONE("\r\n\r\n")},
    {"no trailers allowed, none sent", RAW("0\r\n\r\n"), CDONE(""), .max_trailer = (size_t)-1},
    {"incomplete data", RAW("5\r\nhel"), .rc = SL_OK, .payload = "hel"},
    {"largest size, no data yet", RAW("7fffffffffffffff\r\n"), .rc = SL_OK, .payload = ""},
    {"incomplete trailers", RAW("0\r\nX: y\r\n"), .rc = SL_OK, .payload = ""},
    {"bad hex", RAW("g\r\n"), CBAD},
    {"empty size", RAW("\r\n"), CBAD},
    {"negative size", RAW("-5\r\nhello\r\n0\r\n\r\n"), CBAD},
    {"0x prefix", RAW("0x5\r\nhello\r\n0\r\n\r\n"), CBAD},
    {"size 2^63", RAW("8000000000000000\r\n"), CBAD},
    {"size 2^64", RAW("10000000000000000\r\n"), CBAD},
    {"missing CRLF after data", RAW("5\r\nhelloX\r\n0\r\n\r\n"), CBAD},
    {"bare LF after data", RAW("5\r\nhello\n0\r\n\r\n"), CBAD},
    {"bare LF ends the size line", RAW("5\nhello\r\n0\r\n\r\n"), CBAD},
    {"bare CR ends the size line", RAW("5\rhello\r\n0\r\n\r\n"), CBAD},
    {"whitespace after size without extension", RAW("5 \r\nhello\r\n0\r\n\r\n"), CBAD},
    {"empty extension name", RAW("5;\r\nhello\r\n0\r\n\r\n"), CBAD},
    {"extension without name", RAW("5;=x\r\nhello\r\n0\r\n\r\n"), CBAD},
    {"whitespace before CRLF in extension", RAW("5;a \r\nhello\r\n0\r\n\r\n"), CBAD},
    {"CTL in extension", RAW("5;a\x01\r\nhello\r\n0\r\n\r\n"), CBAD},
    {"LF inside extension", RAW("5;a\nb\r\nhello\r\n0\r\n\r\n"), CBAD},
    {"unterminated quoted extension", RAW("5;a=\"b\r\nhello\r\n0\r\n\r\n"), CBAD},
    {"empty extension value", RAW("5;a=\r\nhello\r\n0\r\n\r\n"), CBAD},
    {"trailers over the bound", RAW("0\r\nX-T: value\r\n\r\n"), CBAD, .max_trailer = 5},
    {"trailer when none allowed", RAW("0\r\nX: v\r\n\r\n"), CBAD, .max_trailer = (size_t)-1},
    {"obs-fold in trailers", RAW("0\r\nX: v\r\n w\r\n\r\n"), CBAD},
    {"trailer without colon", RAW("0\r\nXv\r\n\r\n"), CBAD},
    {"space in trailer name", RAW("0\r\nX Y: v\r\n\r\n"), CBAD},
    {"CTL in trailer value", RAW("0\r\nX: \x01\r\n\r\n"), CBAD},
    {"bare LF ends the body", RAW("0\r\n\n"), CBAD},
    {"bare CR ends the body", RAW("0\r\n\rX"), CBAD},
    {"bare LF after last chunk", RAW("0\n\r\n"), CBAD},
};

/*
 * Decodes raw with data arriving in pieces: first `first` bytes, then `step` more at a time.
 * The caller drops what the decoder consumed; each call sees an exact-size heap copy.
 */
static int chunk_drive(const char *raw, size_t len, size_t max_trailer, size_t first, size_t step,
                       char *out, size_t *out_len, size_t *total)
{
    sl_http_chunked_t c;
    size_t pos = 0, avail = first < len ? first : len;
    int rc;

    sl_http_chunked_init(&c, max_trailer);
    *out_len = 0;
    for (;;) {
        size_t n = avail - pos, consumed, off, plen;
        char *buf = malloc(n ? n : 1);

        memcpy(buf, raw + pos, n);
        rc = sl_http_chunked_parse(&c, buf, n, &consumed, &off, &plen);
        if (consumed > n || (plen > 0 && (off + plen > consumed || rc != SL_OK))) {
            free(buf);
            return -100; /* contract broken */
        }
        memcpy(out + *out_len, buf + off, plen);
        *out_len += plen;
        free(buf);
        pos += consumed;
        if (rc != SL_OK)
            break;
        if (consumed == 0) {
            if (n > 0)
                return -101; /* made no progress on available input */
            if (avail == len)
                break;
            avail = avail + step < len ? avail + step : len;
        }
    }
    *total = pos;
    if (rc == SL_DONE || rc == SL_ERROR) {
        size_t consumed, off, plen;
        int again = sl_http_chunked_parse(&c, raw, 0, &consumed, &off, &plen);
        if (again != rc || consumed != 0)
            return -102; /* not sticky */
    }
    return rc;
}

static void test_chunk_case(const chunk_case_t *c)
{
    size_t max_trailer = c->max_trailer == (size_t)-1 ? 0 : c->max_trailer ? c->max_trailer : 1024;
    size_t want_consumed = c->consumed ? c->consumed : c->len;
    char *out = malloc(c->len + 1);
    size_t out_len, total;
    int fails = 0;

    /* one shot (first = len), every two-way split, byte by byte */
    for (size_t split = 0; split <= c->len + 1; split++) {
        size_t first = split == 0 ? c->len : split == c->len + 1 ? 1 : split;
        size_t step = split == c->len + 1 ? 1 : c->len;
        int rc = chunk_drive(c->raw, c->len, max_trailer, first, step, out, &out_len, &total);
        int ok = rc == c->rc;
        if (ok && c->rc != SL_ERROR)
            ok = out_len == strlen(c->payload) && memcmp(out, c->payload, out_len) == 0;
        if (ok && c->rc == SL_DONE)
            ok = total == want_consumed;
        if (!ok && fails++ == 0)
            SL_CHECK(0, "%s: first %zu, step %zu: rc %d (want %d), payload '%.*s', consumed %zu",
                     c->name, first, step, rc, c->rc, (int)out_len, out, total);
    }
    SL_CHECK(fails == 0, "%s: %d of %zu feeding patterns failed", c->name, fails, c->len + 2);
    free(out);
}

static void test_chunk_generated(void)
{
    char *buf = malloc(16384), out[64];
    size_t n, out_len, total;
    int rc;

    /* a chunk-size line over SL_HTTP_CHUNK_LINE_MAX: long extension, long leading zeros */
    n = (size_t)snprintf(buf, 16384, "5;");
    memset(buf + n, 'a', 5000);
    n += 5000;
    n += (size_t)snprintf(buf + n, 16384 - n, "\r\nhello\r\n0\r\n\r\n");
    rc = chunk_drive(buf, n, 0, n, n, out, &out_len, &total);
    SL_CHECK(rc == SL_ERROR, "5000-byte extension: %d", rc);

    memset(buf, '0', 5000);
    n = 5000 + (size_t)snprintf(buf + 5000, 16384 - 5000, "5\r\nhello\r\n0\r\n\r\n");
    rc = chunk_drive(buf, n, 0, 1, 1, out, &out_len, &total);
    SL_CHECK(rc == SL_ERROR, "5000 leading zeros: %d", rc);

    /* just under the bound is fine */
    n = (size_t)snprintf(buf, 16384, "5;");
    memset(buf + n, 'a', SL_HTTP_CHUNK_LINE_MAX - 5);
    n += SL_HTTP_CHUNK_LINE_MAX - 5;
    n += (size_t)snprintf(buf + n, 16384 - n, "\r\nhello\r\n0\r\n\r\n");
    rc = chunk_drive(buf, n, 0, n, n, out, &out_len, &total);
    SL_CHECK(rc == SL_DONE && out_len == 5 && total == n, "a chunk line of exactly the bound: %d",
             rc);

    /* trailers exactly at the bound ("X: v\r\n" is 6 bytes) */
    rc = chunk_drive("0\r\nX: v\r\n\r\n", 11, 6, 11, 11, out, &out_len, &total);
    SL_CHECK(rc == SL_DONE && total == 11, "trailers at the bound: %d", rc);
    rc = chunk_drive("0\r\nX: v\r\n\r\n", 11, 5, 11, 11, out, &out_len, &total);
    SL_CHECK(rc == SL_ERROR, "trailers one over the bound: %d", rc);
    free(buf);
}

int main(void)
{
    for (size_t i = 0; i < SL_ARRAY_SIZE(req_cases); i++)
        test_request_case(&req_cases[i]);
    test_request_generated();
    for (size_t i = 0; i < SL_ARRAY_SIZE(resp_cases); i++)
        test_response_case(&resp_cases[i]);
    for (size_t i = 0; i < SL_ARRAY_SIZE(chunk_cases); i++)
        test_chunk_case(&chunk_cases[i]);
    test_chunk_generated();
    printf("%zu request, %zu response, %zu chunked cases\n", SL_ARRAY_SIZE(req_cases),
           SL_ARRAY_SIZE(resp_cases), SL_ARRAY_SIZE(chunk_cases));
    SL_TEST_MAIN("test_http_parse");
}
