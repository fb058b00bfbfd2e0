/*
 * SigV4: every case of the AWS test suite (canonical request, string to sign and
 * Authorization compared byte for byte), then our own cases: presigned URLs, session tokens,
 * the signing-key cache, input limits, unsigned payloads, S3 paths, Lambda ARNs, Host with a
 * port, the date at midnight, and output buffers that are too small.
 *
 * The suite is read from $SLUICE_SIGV4_SUITE, else <repo>/../shared/conformance/sigv4 (the
 * repo root is found from this binary's path, build/test/test_sigv4, then from the working
 * directory). Without it the suite part prints SKIP and the other cases still run.
 *
 * Every signature is also recomputed here from the returned string to sign with OpenSSL's
 * own HMAC() and EVP_Digest(), independently of the signer's HMAC code.
 */
#include <dirent.h>
#include <limits.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "aws/sl_sigv4.h"
#include "sl_core.h"
#include "test/sl_test.h"

#define AKID "AKIDEXAMPLE"
#define SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define DATE "20150830T123600Z"
#define SCOPE "20150830/us-east-1/service/aws4_request"
#define BUF 131072 /* > the largest canonical request the limits allow */

/* ---- helpers ---- */

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    size_t cap = 4096, n = 0;
    char *p = malloc(cap + 1);
    if (p == NULL)
        abort();
    for (;;) {
        size_t r = fread(p + n, 1, cap - n, f);
        n += r;
        if (n < cap)
            break;
        cap *= 2;
        p = realloc(p, cap + 1);
        if (p == NULL)
            abort();
    }
    fclose(f);
    p[n] = '\0';
    *len = n;
    return p;
}

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static sl_str_t cstr(const char *s)
{
    return (sl_str_t){s, strlen(s)};
}

typedef struct {
    char creq[BUF];
    char sts[1024];
    char authz[BUF];
    char query[BUF];
    sl_sigv4_output_t o;
} outbuf_t;

static void out_init(outbuf_t *b)
{
    memset(&b->o, 0, sizeof(b->o));
    b->o.canonical_request = (sl_sigv4_buf_t){b->creq, sizeof(b->creq), 0};
    b->o.string_to_sign = (sl_sigv4_buf_t){b->sts, sizeof(b->sts), 0};
    b->o.authorization = (sl_sigv4_buf_t){b->authz, sizeof(b->authz), 0};
    b->o.query = (sl_sigv4_buf_t){b->query, sizeof(b->query), 0};
}

static int buf_is(const sl_sigv4_buf_t *b, const char *s, size_t n)
{
    return b->len == n && memcmp(b->data, s, n) == 0;
}

static int buf_is_str(const sl_sigv4_buf_t *b, const char *s)
{
    return buf_is(b, s, strlen(s));
}

static void hex(const unsigned char *d, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", d[i]);
}

/* The signature of the returned string to sign, and its last line, recomputed with
 * OpenSSL's HMAC() and EVP_Digest(): 1 when both agree with the signer. */
static int independent_ok(const sl_sigv4_input_t *in, const outbuf_t *b)
{
    unsigned char k[64], d[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    char key0[300];
    char h[65];
    snprintf(key0, sizeof(key0), "AWS4%.*s", (int)in->secret_key.len, in->secret_key.data);
    HMAC(EVP_sha256(), key0, (int)strlen(key0), (const unsigned char *)in->amz_date.data, 8, k,
         &n);
    HMAC(EVP_sha256(), k, 32, (const unsigned char *)in->region.data, in->region.len, k, &n);
    HMAC(EVP_sha256(), k, 32, (const unsigned char *)in->service.data, in->service.len, k, &n);
    HMAC(EVP_sha256(), k, 32, (const unsigned char *)"aws4_request", 12, k, &n);
    HMAC(EVP_sha256(), k, 32, (const unsigned char *)b->o.string_to_sign.data,
         b->o.string_to_sign.len, d, &n);
    hex(d, 32, h);
    if (strcmp(h, b->o.signature) != 0)
        return 0;
    EVP_Digest(b->o.canonical_request.data, b->o.canonical_request.len, d, &n, EVP_sha256(),
               NULL);
    hex(d, 32, h);
    return b->o.string_to_sign.len > 64 &&
           memcmp(b->o.string_to_sign.data + b->o.string_to_sign.len - 64, h, 64) == 0;
}

static int no_secret(const char *err)
{
    return strstr(err, SECRET) == NULL && strstr(err, "K7MDENG") == NULL;
}

/* ---- the AWS suite ---- */

typedef struct {
    char *line; /* the request line, split in place */
    sl_str_t method, path, query;
    sl_header_t hdrs[SL_SIGV4_MAX_HEADERS];
    size_t nhdrs;
    char folded[SL_SIGV4_MAX_HEADERS][1024]; /* header values joined across obs-fold lines */
    sl_str_t body;
} req_t;

/* Parses a .req as the suite README says: request line split at the first and last space,
 * continuation lines joined with one space, body after the first empty line. */
static int parse_req(char *text, size_t len, req_t *r)
{
    memset(r, 0, sizeof(*r));
    char *end = text + len;
    char *eol = memchr(text, '\n', len);
    char *line_end = eol ? eol : end;
    char *sp1 = memchr(text, ' ', (size_t)(line_end - text));
    char *sp2 = line_end;
    while (sp2 > text && sp2[-1] != ' ')
        sp2--;
    if (sp1 == NULL || sp2 <= sp1 + 1)
        return -1;
    r->method = (sl_str_t){text, (size_t)(sp1 - text)};
    char *target = sp1 + 1;
    size_t tlen = (size_t)(sp2 - 1 - target);
    char *q = memchr(target, '?', tlen);
    if (q) {
        r->path = (sl_str_t){target, (size_t)(q - target)};
        r->query = (sl_str_t){q + 1, (size_t)(target + tlen - q - 1)};
    } else {
        r->path = (sl_str_t){target, tlen};
        r->query = (sl_str_t){"", 0};
    }
    char *p = eol ? eol + 1 : end;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *le = nl ? nl : end;
        if (le == p) { /* empty line: the body follows */
            p = le + 1;
            r->body = (sl_str_t){p, p <= end ? (size_t)(end - p) : 0};
            return 0;
        }
        if ((*p == ' ' || *p == '\t') && r->nhdrs > 0) {
            size_t k = r->nhdrs - 1;
            size_t cur = r->hdrs[k].value.len;
            size_t add = (size_t)(le - p);
            if (cur + 1 + add >= sizeof(r->folded[k]))
                return -1;
            if (r->hdrs[k].value.data != r->folded[k])
                memcpy(r->folded[k], r->hdrs[k].value.data, cur);
            r->folded[k][cur] = ' ';
            memcpy(r->folded[k] + cur + 1, p, add);
            r->hdrs[k].value = (sl_str_t){r->folded[k], cur + 1 + add};
        } else {
            char *colon = memchr(p, ':', (size_t)(le - p));
            if (colon == NULL || r->nhdrs >= SL_SIGV4_MAX_HEADERS)
                return -1;
            r->hdrs[r->nhdrs].name = (sl_str_t){p, (size_t)(colon - p)};
            r->hdrs[r->nhdrs].value = (sl_str_t){colon + 1, (size_t)(le - colon - 1)};
            r->nhdrs++;
        }
        p = nl ? nl + 1 : end;
    }
    r->body = (sl_str_t){"", 0};
    return 0;
}

/* the value of "name:" at the start of a line in text, or an empty view */
static sl_str_t line_value(const char *text, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncasecmp(p, name, n) == 0) {
            const char *v = p + n;
            const char *e = strchr(v, '\n');
            return (sl_str_t){v, e ? (size_t)(e - v) : strlen(v)};
        }
    }
    return (sl_str_t){NULL, 0};
}

static int has_header(const req_t *r, const char *name)
{
    for (size_t i = 0; i < r->nhdrs; i++)
        if (sl_str_case_eq(r->hdrs[i].name, cstr(name)))
            return 1;
    return 0;
}

static void strip_final_newline(char *s, size_t *len)
{
    while (*len && s[*len - 1] == '\n')
        s[--*len] = '\0';
}

/* dir/name.ext, or NULL */
static char *read_case_file(const char *dir, const char *name, const char *ext, size_t *len)
{
    char path[PATH_MAX];
    int n = snprintf(path, sizeof(path), "%s/%s.%s", dir, name, ext);
    if (n < 0 || (size_t)n >= sizeof(path))
        return NULL;
    return read_file(path, len);
}

static int run_case(const char *dir, const char *name)
{
    size_t rlen, clen, slen, alen, srlen = 0;
    char *req = read_case_file(dir, name, "req", &rlen);
    char *creq = read_case_file(dir, name, "creq", &clen);
    char *sts = read_case_file(dir, name, "sts", &slen);
    char *authz = read_case_file(dir, name, "authz", &alen);
    char *sreq = read_case_file(dir, name, "sreq", &srlen);
    SL_CHECK(req && creq && sts && authz, "%s: missing .req/.creq/.sts/.authz", name);
    if (!(req && creq && sts && authz)) {
        free(req), free(creq), free(sts), free(authz), free(sreq);
        return 0;
    }
    strip_final_newline(authz, &alen);

    static req_t r;
    int prc = parse_req(req, rlen, &r);
    SL_CHECK(prc == 0, "%s: cannot parse .req", name);

    /* the session token: signed when the .creq has it (and taken from there when the .req
     * lacks it), added after signing when only the .sreq has it */
    sl_sigv4_input_t in = {
        .method = r.method,
        .path = r.path,
        .query = r.query,
        .headers = r.hdrs,
        .nheaders = r.nhdrs,
        .body = r.body,
        .region = SL_STR("us-east-1"),
        .service = SL_STR("service"),
        .amz_date = SL_STR(DATE),
        .access_key = SL_STR(AKID),
        .secret_key = SL_STR(SECRET),
    };
    sl_str_t tok = line_value(creq, "x-amz-security-token:");
    if (tok.data) {
        if (!has_header(&r, "x-amz-security-token"))
            in.session_token = tok;
    } else if (sreq) {
        tok = line_value(sreq, "X-Amz-Security-Token:");
        if (tok.data) {
            in.session_token = tok;
            in.flags |= SL_SIGV4_TOKEN_AFTER;
        }
    }

    static outbuf_t b;
    out_init(&b);
    char err[256] = "";
    int rc = prc == 0 ? sl_sigv4_sign(&in, &b.o, err, sizeof(err)) : SL_ERROR;
    int ok = rc == SL_OK;
    SL_CHECK(rc == SL_OK, "%s: sign failed: %s", name, err);
    if (rc == SL_OK) {
        int c1 = buf_is(&b.o.canonical_request, creq, clen);
        int c2 = buf_is(&b.o.string_to_sign, sts, slen);
        int c3 = buf_is(&b.o.authorization, authz, alen);
        SL_CHECK(c1, "%s: canonical request\n--- got\n%.*s\n--- want\n%s", name,
                 (int)b.o.canonical_request.len, b.creq, creq);
        SL_CHECK(c2, "%s: string to sign\n--- got\n%.*s\n--- want\n%s", name,
                 (int)b.o.string_to_sign.len, b.sts, sts);
        SL_CHECK(c3, "%s: authorization\n--- got\n%.*s\n--- want\n%s", name,
                 (int)b.o.authorization.len, b.authz, authz);
        SL_CHECK(independent_ok(&in, &b), "%s: OpenSSL HMAC() disagrees", name);
        ok = c1 && c2 && c3;
    }
    free(req), free(creq), free(sts), free(authz), free(sreq);
    return ok;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* runs every case under dir (a case is a folder X holding X.req), one level of nesting */
static int walk(const char *dir, int depth, int *cases)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return 0;
    char *names[256];
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < SL_ARRAY_SIZE(names)) {
        if (e->d_name[0] == '.')
            continue;
        names[n] = strdup(e->d_name);
        if (names[n] == NULL)
            abort();
        n++;
    }
    closedir(d);
    qsort(names, n, sizeof(char *), cmp_names);
    int passed = 0;
    for (size_t i = 0; i < n; i++) {
        char sub[PATH_MAX], req[PATH_MAX];
        int n1 = snprintf(sub, sizeof(sub), "%s/%s", dir, names[i]);
        int n2 = snprintf(req, sizeof(req), "%s/%s/%s.req", dir, names[i], names[i]);
        if (n1 < 0 || (size_t)n1 >= sizeof(sub) || n2 < 0 || (size_t)n2 >= sizeof(req)) {
            free(names[i]);
            continue;
        }
        if (is_dir(sub)) {
            if (access(req, R_OK) == 0) {
                (*cases)++;
                passed += run_case(sub, names[i]);
            } else if (depth < 1) {
                passed += walk(sub, depth + 1, cases);
            }
        }
        free(names[i]);
    }
    return passed;
}

static int find_suite(char *out, size_t cap, const char *argv0)
{
    const char *env = getenv("SLUICE_SIGV4_SUITE");
    if (env && *env) {
        snprintf(out, cap, "%s", env);
        return is_dir(out);
    }
    /* <root>/build/test/test_sigv4 -> <root>/../shared/conformance/sigv4 */
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0 && argv0)
        n = (ssize_t)snprintf(exe, sizeof(exe), "%s", argv0);
    if (n > 0) {
        exe[n] = '\0';
        for (int up = 0; up < 3; up++) {
            char *slash = strrchr(exe, '/');
            if (slash == NULL)
                break;
            *slash = '\0';
        }
        int w = snprintf(out, cap, "%s/../shared/conformance/sigv4", exe);
        if (w > 0 && (size_t)w < cap && is_dir(out))
            return 1;
    }
    snprintf(out, cap, "../shared/conformance/sigv4");
    return is_dir(out);
}

/* ---- our own cases ---- */

static sl_sigv4_input_t base_input(const sl_header_t *h, size_t n)
{
    return (sl_sigv4_input_t){
        .method = SL_STR("GET"),
        .path = SL_STR("/"),
        .query = SL_STR(""),
        .headers = h,
        .nheaders = n,
        .region = SL_STR("us-east-1"),
        .service = SL_STR("service"),
        .amz_date = SL_STR(DATE),
        .access_key = SL_STR(AKID),
        .secret_key = SL_STR(SECRET),
    };
}

static const sl_header_t HOST[] = {{SL_STR("Host"), SL_STR("example.amazonaws.com")}};

/* the canonical request line n (0-based) */
static sl_str_t creq_line(const outbuf_t *b, int n)
{
    const char *p = b->o.canonical_request.data;
    const char *end = p + b->o.canonical_request.len;
    for (int i = 0; i < n && p < end; i++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        p = nl ? nl + 1 : end;
    }
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    return (sl_str_t){p, nl ? (size_t)(nl - p) : (size_t)(end - p)};
}

static int creq_has_line(const outbuf_t *b, const char *line)
{
    for (int i = 0; i < 64; i++) {
        sl_str_t l = creq_line(b, i);
        if (sl_str_eq(l, cstr(line)))
            return 1;
        if (l.data + l.len >= b->o.canonical_request.data + b->o.canonical_request.len)
            break;
    }
    return 0;
}

static void test_presign(void)
{
    static outbuf_t b;
    char err[256] = "";
    /* aws-c-auth v4 get-vanilla, query signing: Expires=3600, SignedHeaders=host */
    sl_sigv4_input_t in = base_input(HOST, 1);
    in.flags = SL_SIGV4_PRESIGN;
    in.expires = 3600;
    out_init(&b);
    int rc = sl_sigv4_sign(&in, &b.o, err, sizeof(err));
    SL_CHECK(rc == SL_OK, "presign: %s", err);
    const char *want_q = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F"
                         "20150830%2Fus-east-1%2Fservice%2Faws4_request&X-Amz-Date="
                         "20150830T123600Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host";
    SL_CHECK(sl_str_eq(creq_line(&b, 2), cstr(want_q)), "presign: canonical query %.*s",
             (int)creq_line(&b, 2).len, creq_line(&b, 2).data);
    SL_CHECK(strcmp(b.o.signature,
                    "e93c787ed7f371d5c6b165c1b38ede9550f4dce4144713e844b25b7192d3865d") == 0,
             "presign: aws-c-auth signature, got %s", b.o.signature);
    char want_full[1024];
    snprintf(want_full, sizeof(want_full), "%s&X-Amz-Signature=%s", want_q, b.o.signature);
    SL_CHECK(buf_is_str(&b.o.query, want_full), "presign: query %.*s", (int)b.o.query.len,
             b.query);
    SL_CHECK(b.o.authorization.len == 0, "presign: no Authorization");
    SL_CHECK(!creq_has_line(&b, "x-amz-date:" DATE), "presign: no x-amz-date header");
    SL_CHECK(sl_str_eq(creq_line(&b, 6), SL_STR(SL_SIGV4_EMPTY_SHA256)),
             "presign: empty-body hash");
    SL_CHECK(independent_ok(&in, &b), "presign: independent HMAC");

    /* with a session token: in the query and signed */
    in.session_token = SL_STR("tok/en+=");
    out_init(&b);
    rc = sl_sigv4_sign(&in, &b.o, err, sizeof(err));
    SL_CHECK(rc == SL_OK, "presign token: %s", err);
    SL_CHECK(strstr(b.creq, "&X-Amz-Security-Token=tok%2Fen%2B%3D&X-Amz-SignedHeaders=host\n"),
             "presign token: signed, in sorted place: %.*s", (int)b.o.canonical_request.len,
             b.creq);
    SL_CHECK(b.o.query.len > 64 + 17 &&
                 memcmp(b.query + b.o.query.len - 64 - 17, "&X-Amz-Signature=", 17) == 0,
             "presign token: signature last");
    SL_CHECK(independent_ok(&in, &b), "presign token: independent HMAC");

    /* token after signing: not in the canonical query, appended after the signature */
    in.flags |= SL_SIGV4_TOKEN_AFTER;
    out_init(&b);
    rc = sl_sigv4_sign(&in, &b.o, err, sizeof(err));
    SL_CHECK(rc == SL_OK && strcmp(b.o.signature,
                                   "e93c787ed7f371d5c6b165c1b38ede9550f4dce4144713e844b25b"
                                   "7192d3865d") == 0,
             "presign token after: same signature as without token, got %s", b.o.signature);
    char tail[200];
    snprintf(tail, sizeof(tail), "&X-Amz-Signature=%s&X-Amz-Security-Token=tok%%2Fen%%2B%%3D",
             b.o.signature);
    SL_CHECK(b.o.query.len > strlen(tail) &&
                 memcmp(b.query + b.o.query.len - strlen(tail), tail, strlen(tail)) == 0,
             "presign token after: %.*s", (int)b.o.query.len, b.query);

    /* an existing query is kept, sorted with the X-Amz-* parameters */
    in = base_input(HOST, 1);
    in.flags = SL_SIGV4_PRESIGN | SL_SIGV4_UNSIGNED_PAYLOAD;
    in.expires = 900;
    in.query = SL_STR("zeta=1&Action=List");
    out_init(&b);
    rc = sl_sigv4_sign(&in, &b.o, err, sizeof(err));
    SL_CHECK(rc == SL_OK, "presign query: %s", err);
    SL_CHECK(strncmp(b.query, "Action=List&X-Amz-Algorithm=", 28) == 0 &&
                 strstr(b.query, "&X-Amz-SignedHeaders=host&zeta=1&X-Amz-Signature=") != NULL,
             "presign query order: %.*s", (int)b.o.query.len, b.query);
    SL_CHECK(sl_str_eq(creq_line(&b, 6), SL_STR("UNSIGNED-PAYLOAD")), "presign unsigned");

    /* refusals */
    static const char *const clash[] = {"X-Amz-Signature=x", "x-amz-date=1",
                                        "X-Amz-Credential=a"};
    for (size_t i = 0; i < SL_ARRAY_SIZE(clash); i++) {
        in.query = cstr(clash[i]);
        err[0] = '\0';
        rc = sl_sigv4_sign(&in, &b.o, err, sizeof(err));
        SL_CHECK(rc == SL_ERROR && strstr(err, "query: already holds"), "presign clash %s: %s",
                 clash[i], err);
    }
    in.query = SL_STR("");
    uint32_t bad_exp[] = {0, SL_SIGV4_MAX_EXPIRES + 1};
    for (size_t i = 0; i < SL_ARRAY_SIZE(bad_exp); i++) {
        in.expires = bad_exp[i];
        rc = sl_sigv4_sign(&in, &b.o, err, sizeof(err));
        SL_CHECK(rc == SL_ERROR && strncmp(err, "expires:", 8) == 0, "expires %u: %s",
                 bad_exp[i], err);
    }
    in.expires = SL_SIGV4_MAX_EXPIRES;
    SL_CHECK(sl_sigv4_sign(&in, &b.o, err, sizeof(err)) == SL_OK, "expires max: %s", err);
}

static void test_session_token(void)
{
    static outbuf_t b;
    char err[256] = "";
    sl_sigv4_input_t in = base_input(HOST, 1);
    in.session_token = SL_STR("FQoGZXIvYXdzEXAMPLE//token==");
    out_init(&b);
    int rc = sl_sigv4_sign(&in, &b.o, err, sizeof(err));
    SL_CHECK(rc == SL_OK, "token: %s", err);
    SL_CHECK(creq_has_line(&b, "x-amz-security-token:FQoGZXIvYXdzEXAMPLE//token=="),
             "token: signed header");
    SL_CHECK(strstr(b.authz, "SignedHeaders=host;x-amz-date;x-amz-security-token,") != NULL,
             "token: signed list %s", b.authz);
    SL_CHECK(independent_ok(&in, &b), "token: independent HMAC");

    /* the same token given as a header: signed once */
    sl_header_t h2[] = {HOST[0], {SL_STR("X-Amz-Security-Token"), in.session_token}};
    sl_sigv4_input_t in2 = in;
    in2.headers = h2;
    in2.nheaders = 2;
    static outbuf_t b2;
    out_init(&b2);
    rc = sl_sigv4_sign(&in2, &b2.o, err, sizeof(err));
    SL_CHECK(rc == SL_OK && strcmp(b.o.signature, b2.o.signature) == 0,
             "token as header: same signature: %s", err);

    /* a different token in the header: refused */
    h2[1].value = SL_STR("other");
    rc = sl_sigv4_sign(&in2, &b2.o, err, sizeof(err));
    SL_CHECK(rc == SL_ERROR && strstr(err, "x-amz-security-token differs"), "token clash: %s",
             err);

    /* after signing: not signed */
    in.flags = SL_SIGV4_TOKEN_AFTER;
    out_init(&b);
    rc = sl_sigv4_sign(&in, &b.o, err, sizeof(err));
    SL_CHECK(rc == SL_OK && strstr(b.creq, "security-token") == NULL, "token after: %s", err);

    /* a token with a control character or a space */
    in.session_token = SL_STR("ab\ncd");
    rc = sl_sigv4_sign(&in, &b.o, err, sizeof(err));
    SL_CHECK(rc == SL_ERROR && strncmp(err, "session_token:", 14) == 0, "token CTL: %s", err);
}

static void test_cache(void)
{
    static outbuf_t b1, b2;
    char err[256] = "";
    uint64_t hits, misses;
    unsigned entries;
    sl_sigv4_cache_clear();
    sl_sigv4_cache_stats(&hits, &misses, &entries);
    SL_CHECK(hits == 0 && misses == 0 && entries == 0, "cache: clear");

    sl_sigv4_input_t in = base_input(HOST, 1);
    out_init(&b1);
    SL_CHECK(sl_sigv4_sign(&in, &b1.o, err, sizeof(err)) == SL_OK, "cache 1: %s", err);
    out_init(&b2);
    SL_CHECK(sl_sigv4_sign(&in, &b2.o, err, sizeof(err)) == SL_OK, "cache 2: %s", err);
    sl_sigv4_cache_stats(&hits, &misses, &entries);
    SL_CHECK(misses == 1 && hits == 1 && entries == 1, "cache: one miss then one hit (%lu/%lu)",
             (unsigned long)misses, (unsigned long)hits);
    SL_CHECK(strcmp(b1.o.signature, b2.o.signature) == 0, "cache: same signature");
    SL_CHECK(strcmp(b1.o.signature,
                    "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31") == 0,
             "cache: get-vanilla signature %s", b1.o.signature);

    /* the same time of another day, region, service or secret: another key */
    sl_sigv4_input_t v[4];
    for (int i = 0; i < 4; i++)
        v[i] = in;
    v[0].amz_date = SL_STR("20150831T123600Z");
    v[1].region = SL_STR("eu-west-1");
    v[2].service = SL_STR("lambda");
    v[3].secret_key = SL_STR("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEZ");
    for (int i = 0; i < 4; i++) {
        out_init(&b2);
        SL_CHECK(sl_sigv4_sign(&v[i], &b2.o, err, sizeof(err)) == SL_OK, "cache v%d: %s", i,
                 err);
        SL_CHECK(strcmp(b1.o.signature, b2.o.signature) != 0, "cache v%d: other signature", i);
        SL_CHECK(independent_ok(&v[i], &b2), "cache v%d: independent HMAC", i);
    }
    sl_sigv4_cache_stats(&hits, &misses, &entries);
    SL_CHECK(misses == 5 && hits == 1 && entries == 5, "cache: 5 keys (%lu misses, %u entries)",
             (unsigned long)misses, entries);

    /* bounded: 40 secrets leave SL_SIGV4_CACHE_SIZE entries, every signature still right */
    char secrets[40][48];
    int all_ok = 1;
    for (int i = 0; i < 40; i++) {
        snprintf(secrets[i], sizeof(secrets[i]), "secret-number-%02d", i);
        sl_sigv4_input_t x = in;
        x.secret_key = cstr(secrets[i]);
        out_init(&b2);
        all_ok &= sl_sigv4_sign(&x, &b2.o, err, sizeof(err)) == SL_OK && independent_ok(&x, &b2);
    }
    sl_sigv4_cache_stats(&hits, &misses, &entries);
    SL_CHECK(all_ok, "cache: 40 secrets signed right");
    SL_CHECK(entries == SL_SIGV4_CACHE_SIZE, "cache: bounded at %d, has %u", SL_SIGV4_CACHE_SIZE,
             entries);
    /* the most recent ones are still there, the first evicted */
    uint64_t m0 = misses;
    sl_sigv4_input_t last = in;
    last.secret_key = cstr(secrets[39]);
    out_init(&b2);
    sl_sigv4_sign(&last, &b2.o, err, sizeof(err));
    sl_sigv4_cache_stats(&hits, &misses, &entries);
    SL_CHECK(misses == m0, "cache: the last secret is a hit");
    out_init(&b2);
    sl_sigv4_sign(&in, &b2.o, err, sizeof(err));
    sl_sigv4_cache_stats(&hits, &misses, &entries);
    SL_CHECK(misses == m0 + 1 && strcmp(b2.o.signature, b1.o.signature) == 0,
             "cache: an evicted key is derived again, same signature");

    /* the stage function uses the cache too */
    uint8_t key[32];
    SL_CHECK(sl_sigv4_signing_key(SL_STR(SECRET), SL_STR("20150830"), SL_STR("us-east-1"),
                                  SL_STR("service"), key, err, sizeof(err)) == SL_OK,
             "signing_key: %s", err);
    char kh[65];
    hex(key, 32, kh);
    /* kSigning for the suite's inputs, as HMAC() computes it */
    unsigned char k[64];
    unsigned n;
    HMAC(EVP_sha256(), "AWS4" SECRET, (int)strlen("AWS4" SECRET),
         (const unsigned char *)"20150830", 8, k, &n);
    HMAC(EVP_sha256(), k, 32, (const unsigned char *)"us-east-1", 9, k, &n);
    HMAC(EVP_sha256(), k, 32, (const unsigned char *)"service", 7, k, &n);
    HMAC(EVP_sha256(), k, 32, (const unsigned char *)"aws4_request", 12, k, &n);
    SL_CHECK(memcmp(k, key, 32) == 0, "signing_key: equals HMAC() chain");
    SL_CHECK(sl_sigv4_signing_key(SL_STR(SECRET), SL_STR("2015083"), SL_STR("us-east-1"),
                                  SL_STR("service"), key, err, sizeof(err)) == SL_ERROR,
             "signing_key: bad date refused");

    /* a cached longer region or service is no match for its prefix */
    for (int i = 0; i < 2; i++) {
        sl_sigv4_cache_clear();
        sl_sigv4_input_t longer = in;
        if (i == 0)
            longer.region = SL_STR("us-east-10");
        else
            longer.service = SL_STR("services");
        out_init(&b2);
        SL_CHECK(sl_sigv4_sign(&longer, &b2.o, err, sizeof(err)) == SL_OK, "cache: longer");
        out_init(&b2);
        SL_CHECK(sl_sigv4_sign(&in, &b2.o, err, sizeof(err)) == SL_OK &&
                     independent_ok(&in, &b2) && strcmp(b2.o.signature, b1.o.signature) == 0,
                 "cache: a prefix of a cached %s is another key", i ? "service" : "region");
    }

    sl_sigv4_cache_clear();
    sl_sigv4_cache_stats(&hits, &misses, &entries);
    SL_CHECK(entries == 0 && hits == 0 && misses == 0, "cache: cleared");
}

static void expect_refused(sl_sigv4_input_t *in, const char *field, const char *what)
{
    static outbuf_t b;
    char err[256] = "";
    out_init(&b);
    int rc = sl_sigv4_sign(in, &b.o, err, sizeof(err));
    SL_CHECK(rc == SL_ERROR && strncmp(err, field, strlen(field)) == 0 && no_secret(err),
             "%s: want an error on '%s', got rc=%d '%s'", what, field, rc, err);
}

static void expect_signed(sl_sigv4_input_t *in, const char *what)
{
    static outbuf_t b;
    char err[256] = "";
    out_init(&b);
    int rc = sl_sigv4_sign(in, &b.o, err, sizeof(err));
    SL_CHECK(rc == SL_OK && independent_ok(in, &b), "%s: %s", what, err);
}

static void test_limits(void)
{
    size_t big = 70000;
    char *s = malloc(big);
    if (s == NULL)
        abort();
    memset(s, 'a', big);
    s[0] = '/';

    sl_sigv4_input_t in = base_input(HOST, 1);
    in.path = (sl_str_t){s, SL_SIGV4_MAX_PATH};
    expect_signed(&in, "path at the limit");
    in.path = (sl_str_t){s, SL_SIGV4_MAX_PATH + 1};
    expect_refused(&in, "path: longer than", "path over the limit");

    in = base_input(HOST, 1);
    in.query = (sl_str_t){s + 1, SL_SIGV4_MAX_QUERY};
    expect_signed(&in, "query at the limit");
    in.query = (sl_str_t){s + 1, SL_SIGV4_MAX_QUERY + 1};
    expect_refused(&in, "query: longer than", "query over the limit");

    /* 256 parameters pass, 257 do not */
    char *q = malloc(4 * 300);
    if (q == NULL)
        abort();
    size_t ql = 0;
    for (int i = 0; i < SL_SIGV4_MAX_PARAMS + 1; i++)
        ql += (size_t)sprintf(q + ql, "%sa", i ? "&" : "");
    in.query = (sl_str_t){q, ql - 2};
    expect_signed(&in, "256 parameters");
    in.query = (sl_str_t){q, ql};
    expect_refused(&in, "query: more than", "257 parameters");
    free(q);

    in = base_input(HOST, 1);
    in.method = (sl_str_t){"POSTPOSTPOSTPOSTPOSTPOSTPOSTPOSTP", SL_SIGV4_MAX_METHOD + 1};
    expect_refused(&in, "method: longer than", "method");

    in = base_input(HOST, 1);
    in.session_token = (sl_str_t){s + 1, SL_SIGV4_MAX_TOKEN};
    expect_signed(&in, "token at the limit");
    in.session_token = (sl_str_t){s + 1, SL_SIGV4_MAX_TOKEN + 1};
    expect_refused(&in, "session_token: longer than", "token over the limit");
    in.flags = SL_SIGV4_PRESIGN;
    in.expires = 60;
    in.session_token = (sl_str_t){s + 1, SL_SIGV4_MAX_TOKEN};
    expect_signed(&in, "presign with a token at the limit");

    in = base_input(HOST, 1);
    in.secret_key = (sl_str_t){s, SL_SIGV4_MAX_SECRET};
    expect_signed(&in, "secret at the limit");
    in.secret_key = (sl_str_t){s, SL_SIGV4_MAX_SECRET + 1};
    expect_refused(&in, "secret_key: longer than", "secret over the limit");

    in = base_input(HOST, 1);
    in.access_key = (sl_str_t){s + 1, SL_SIGV4_MAX_ACCESS_KEY + 1};
    expect_refused(&in, "access_key: longer than", "access key");
    in.region = (sl_str_t){s + 1, SL_SIGV4_MAX_SCOPE_PART + 1};
    in.access_key = SL_STR(AKID);
    expect_refused(&in, "region: longer than", "region");
    in.region = SL_STR("us-east-1");
    in.service = (sl_str_t){s + 1, SL_SIGV4_MAX_SCOPE_PART + 1};
    expect_refused(&in, "service: longer than", "service");
    in.service = (sl_str_t){s + 1, SL_SIGV4_MAX_SCOPE_PART};
    expect_signed(&in, "service at the limit");

    /* headers: value size, count, total */
    sl_header_t h[SL_SIGV4_MAX_HEADERS + 1];
    char names[SL_SIGV4_MAX_HEADERS + 1][16];
    h[0] = HOST[0];
    for (int i = 1; i <= SL_SIGV4_MAX_HEADERS; i++) {
        snprintf(names[i], sizeof(names[i]), "x-h%d", i);
        h[i].name = cstr(names[i]);
        h[i].value = SL_STR("v");
    }
    in = base_input(h, SL_SIGV4_MAX_HEADERS);
    expect_signed(&in, "64 headers");
    in.nheaders = SL_SIGV4_MAX_HEADERS + 1;
    expect_refused(&in, "headers: more than", "65 headers");
    in.nheaders = 2;
    h[1].value = (sl_str_t){s + 1, SL_SIGV4_MAX_HEADER_VALUE};
    expect_signed(&in, "header value at the limit");
    h[1].value = (sl_str_t){s + 1, SL_SIGV4_MAX_HEADER_VALUE + 1};
    expect_refused(&in, "headers: value of 'x-h1' longer", "header value over the limit");
    for (int i = 1; i <= 5; i++)
        h[i].value = (sl_str_t){s + 1, SL_SIGV4_MAX_HEADER_VALUE};
    in.nheaders = 6;
    expect_refused(&in, "headers: longer than", "headers over the total");
    h[1].name = (sl_str_t){s + 1, SL_SIGV4_MAX_HEADER_NAME + 1};
    h[1].value = SL_STR("v");
    in.nheaders = 2;
    expect_refused(&in, "headers: name of entry 2 longer", "header name over the limit");

    /* every limit at once, the largest workspace: signed, nothing overflows */
    for (int i = 1; i <= SL_SIGV4_MAX_HEADERS - 1; i++) {
        h[i].name = cstr(names[i]);
        h[i].value = (sl_str_t){s + 1, (SL_SIGV4_MAX_HEADERS_TOTAL - 200) / SL_SIGV4_MAX_HEADERS};
    }
    char *pq = malloc(SL_SIGV4_MAX_QUERY);
    char *pp = malloc(SL_SIGV4_MAX_PATH);
    if (pq == NULL || pp == NULL)
        abort();
    /* one parameter of bytes that each encode to three */
    memset(pq, '*', SL_SIGV4_MAX_QUERY);
    memcpy(pq, "k=", 2);
    memset(pp, ' ', SL_SIGV4_MAX_PATH);
    pp[0] = '/';
    in = base_input(h, SL_SIGV4_MAX_HEADERS);
    in.path = (sl_str_t){pp, SL_SIGV4_MAX_PATH};
    in.query = (sl_str_t){pq, SL_SIGV4_MAX_QUERY};
    in.session_token = (sl_str_t){s + 1, SL_SIGV4_MAX_TOKEN};
    in.access_key = (sl_str_t){s + 1, SL_SIGV4_MAX_ACCESS_KEY};
    in.region = (sl_str_t){s + 1, SL_SIGV4_MAX_SCOPE_PART};
    in.flags = SL_SIGV4_CONTENT_SHA256;
    expect_signed(&in, "all limits, header mode");
    in.flags = SL_SIGV4_PRESIGN;
    in.expires = 1;
    expect_signed(&in, "all limits, presign");
    in.flags = SL_SIGV4_PRESIGN | SL_SIGV4_S3 | SL_SIGV4_TOKEN_AFTER;
    expect_signed(&in, "all limits, presign, S3, token after");
    free(pq);
    free(pp);
    free(s);
}

static void test_refusals(void)
{
    sl_sigv4_input_t in;
    sl_header_t h[2] = {HOST[0], {SL_STR("X-Ok"), SL_STR("v")}};

    in = base_input(h, 2);
    in.method = SL_STR("GE T");
    expect_refused(&in, "method:", "method with a space");
    in = base_input(h, 2);
    in.method = SL_STR("");
    expect_refused(&in, "method: required", "empty method");
    in = base_input(h, 2);
    in.path = SL_STR("relative/path");
    expect_refused(&in, "path: must start", "relative path");
    in.path = SL_STR("/a?b=c");
    expect_refused(&in, "path: holds '?'", "path with a query");
    in.path = SL_STR("/a\r\nX: y");
    expect_refused(&in, "path: control", "path with CRLF");
    in = base_input(h, 2);
    in.flags = SL_SIGV4_S3;
    in.path = SL_STR("/a%zz");
    expect_refused(&in, "path: bad percent", "S3 path with a bad escape");
    in = base_input(h, 2);
    in.query = SL_STR("a=%4");
    expect_refused(&in, "query: bad percent", "query with a bad escape");
    in.query = SL_STR("a=b\nc");
    expect_refused(&in, "query: invalid", "query with LF");

    in = base_input(h, 2);
    h[1].name = SL_STR("X Bad");
    expect_refused(&in, "headers: invalid character", "header name with a space");
    h[1].name = SL_STR("");
    expect_refused(&in, "headers: entry 2", "empty header name");
    h[1].name = SL_STR("X-Ok");
    h[1].value = SL_STR("a\r\nInjected: 1");
    expect_refused(&in, "headers: control character", "header value with CRLF");
    h[1].value = (sl_str_t){"a\0b", 3};
    expect_refused(&in, "headers: control character", "header value with NUL");
    h[1].value = SL_STR("v");
    h[1].name = SL_STR("Authorization");
    expect_refused(&in, "headers: authorization", "authorization signed");
    h[1].name = SL_STR("X-Amz-Date");
    h[1].value = SL_STR("20150830T123601Z");
    expect_refused(&in, "headers: x-amz-date differs", "x-amz-date clash");
    h[1].value = SL_STR(DATE);
    expect_signed(&in, "x-amz-date agreeing");
    h[1] = (sl_header_t){SL_STR("X-Ok"), SL_STR("v")};

    sl_header_t nohost[] = {{SL_STR("X-Ok"), SL_STR("v")}};
    in = base_input(nohost, 1);
    expect_refused(&in, "headers: host is required", "no host");
    in = base_input(NULL, 2);
    expect_refused(&in, "headers: NULL", "NULL headers");

    static const char *const dates[] = {"20150830T123600", "2015-08-30T12:36", "20151330T123600Z",
                                        "20150830X123600Z", "20150830T253600Z", ""};
    for (size_t i = 0; i < SL_ARRAY_SIZE(dates); i++) {
        in = base_input(h, 2);
        in.amz_date = cstr(dates[i]);
        expect_refused(&in, "amz_date:", dates[i]);
    }
    in = base_input(h, 2);
    in.region = SL_STR("us/east");
    expect_refused(&in, "region: invalid", "region with a slash");
    in = base_input(h, 2);
    in.service = SL_STR("");
    expect_refused(&in, "service: required", "empty service");
    in = base_input(h, 2);
    in.access_key = SL_STR("AK ID");
    expect_refused(&in, "access_key: invalid", "access key with a space");
    in.access_key = SL_STR("AK,ID");
    expect_refused(&in, "access_key: invalid", "access key with a comma");
    in = base_input(h, 2);
    in.secret_key = SL_STR("");
    expect_refused(&in, "secret_key: required", "empty secret");
    in = base_input(h, 2);
    in.payload_hash = SL_STR("abc def");
    expect_refused(&in, "payload_hash: invalid", "payload hash with a space");
    in.payload_hash = SL_STR("abc");
    in.flags = SL_SIGV4_UNSIGNED_PAYLOAD;
    expect_refused(&in, "payload_hash: given", "payload hash and unsigned");

    /* errors never carry the secret, even with a secret in a bad spot */
    in = base_input(h, 2);
    in.region = SL_STR(SECRET);
    expect_refused(&in, "region: invalid", "secret as region");

    char err[64];
    SL_CHECK(sl_sigv4_sign(NULL, NULL, err, sizeof(err)) == SL_ERROR, "NULL input");
}

static void test_unsigned_payload(void)
{
    static outbuf_t b;
    char err[256] = "";
    sl_header_t h[] = {{SL_STR("Host"), SL_STR("examplebucket.s3.amazonaws.com")}};
    sl_sigv4_input_t in = base_input(h, 1);
    in.service = SL_STR("s3");
    in.flags = SL_SIGV4_UNSIGNED_PAYLOAD | SL_SIGV4_CONTENT_SHA256 | SL_SIGV4_S3;
    in.body = SL_STR("ignored body");
    in.path = SL_STR("/test.txt");
    out_init(&b);
    int rc = sl_sigv4_sign(&in, &b.o, err, sizeof(err));
    SL_CHECK(rc == SL_OK, "unsigned: %s", err);
    SL_CHECK(b.o.canonical_request.len > 17 &&
                 memcmp(b.creq + b.o.canonical_request.len - 17, "\nUNSIGNED-PAYLOAD", 17) == 0,
             "unsigned: last line: %.*s", (int)b.o.canonical_request.len, b.creq);
    SL_CHECK(creq_has_line(&b, "x-amz-content-sha256:UNSIGNED-PAYLOAD"),
             "unsigned: content-sha256 header signed");
    SL_CHECK(strstr(b.authz, "SignedHeaders=host;x-amz-content-sha256;x-amz-date,") != NULL,
             "unsigned: signed list %s", b.authz);
    SL_CHECK(independent_ok(&in, &b), "unsigned: independent HMAC");

    /* a signed body with the header: its hash in both places */
    in.flags = SL_SIGV4_CONTENT_SHA256;
    in.body = SL_STR("Param1=value1");
    out_init(&b);
    rc = sl_sigv4_sign(&in, &b.o, err, sizeof(err));
    SL_CHECK(rc == SL_OK && creq_has_line(&b, "x-amz-content-sha256:9095672bbd1f56dfc5b65f3e"
                                              "153adc8731a4a654192329106275f4c7b24d0b6e"),
             "content sha256 of body: %s", err);

    /* a precomputed payload hash is used as is */
    in.flags = 0;
    in.payload_hash = SL_STR("STREAMING-AWS4-HMAC-SHA256-PAYLOAD");
    out_init(&b);
    rc = sl_sigv4_sign(&in, &b.o, err, sizeof(err));
    SL_CHECK(rc == SL_OK && memcmp(b.creq + b.o.canonical_request.len - 34,
                                   "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", 34) == 0,
             "payload_hash given: %s", err);
}

static void test_paths(void)
{
    static const struct {
        const char *path;
        int s3;
        const char *want;
    } cases[] = {
        /* Lambda: a full ARN as one path label, ':' sent as %3A, signed as %253A */
        {"/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Amy-fn"
         "/invocations",
         0,
         "/2015-03-31/functions/arn%253Aaws%253Alambda%253Aus-east-1%253A123456789012%253Afunction"
         "%253Amy-fn/invocations"},
        {"/2015-03-31/functions/my-fn:v1/invocations", 0,
         "/2015-03-31/functions/my-fn%3Av1/invocations"},
        {"/example%20space/", 0, "/example%2520space/"},
        {"", 0, "/"},
        {"/", 0, "/"},
        {"/a/b/../c/./d", 0, "/a/c/d"},
        {"/a/b/..", 0, "/a/"},
        {"/a/b/.", 0, "/a/b/"},
        {"/../../a", 0, "/a"},
        {"/a//b///", 0, "/a/b/"},
        {"/...", 0, "/..."},
        {"/.a/..b", 0, "/.a/..b"},
        {"/$LATEST*", 0, "/%24LATEST%2A"},
        /* S3: not normalized, encoded once */
        {"/my-object//example//photo.user", 1, "/my-object//example//photo.user"},
        {"/a/../b/./c", 1, "/a/../b/./c"},
        {"/my%20key+plus", 1, "/my%20key%2Bplus"},
        {"/my key", 1, "/my%20key"},
        {"/dir%2Fkey", 1, "/dir%2Fkey"},
        {"/%e1%88%b4", 1, "/%E1%88%B4"},
        {"", 1, "/"},
    };
    for (size_t i = 0; i < SL_ARRAY_SIZE(cases); i++) {
        char out[1024], err[128] = "";
        long n = sl_sigv4_canonical_uri(cstr(cases[i].path), cases[i].s3, out, sizeof(out), err,
                                        sizeof(err));
        SL_CHECK(n >= 0 && (size_t)n == strlen(cases[i].want) &&
                     memcmp(out, cases[i].want, (size_t)n) == 0,
                 "uri '%s' s3=%d: got '%.*s' want '%s' %s", cases[i].path, cases[i].s3,
                 (int)(n < 0 ? 0 : n), out, cases[i].want, err);
    }
    char small[4], err[128];
    SL_CHECK(sl_sigv4_canonical_uri(SL_STR("/abcdef"), 0, small, sizeof(small), err,
                                    sizeof(err)) == -1,
             "uri: small buffer refused");
}

static void test_queries(void)
{
    static const struct {
        const char *q;
        const char *want;
    } cases[] = {
        {"Qualifier=%24LATEST", "Qualifier=%24LATEST"},
        {"Qualifier=$LATEST", "Qualifier=%24LATEST"},
        {"b=2&a=1&a=0", "a=0&a=1&b=2"},
        {"Param=a&Param-3=b&param=c", "Param=a&Param-3=b&param=c"},
        {"flag&x=", "flag=&x="},
        {"a=b=c", "a=b%3Dc"},
        {"sp=a b&plus=a+b&pct=a%20b", "pct=a%20b&plus=a%2Bb&sp=a%20b"},
        {"k=%2f%2A*", "k=%2F%2A%2A"},
        {"&&a=1&", "a=1"},
        {"", ""},
    };
    for (size_t i = 0; i < SL_ARRAY_SIZE(cases); i++) {
        char out[1024], err[128] = "";
        long n = sl_sigv4_canonical_query(cstr(cases[i].q), out, sizeof(out), err, sizeof(err));
        SL_CHECK(n >= 0 && (size_t)n == strlen(cases[i].want) &&
                     memcmp(out, cases[i].want, (size_t)n) == 0,
                 "query '%s': got '%.*s' want '%s' %s", cases[i].q, (int)(n < 0 ? 0 : n), out,
                 cases[i].want, err);
    }
}

static void test_headers_and_host(void)
{
    static outbuf_t b;
    char err[256] = "";
    /* a mock on a non-default port: host signed with its port; repeated names joined */
    sl_header_t h[] = {
        {SL_STR("Host"), SL_STR("127.0.0.1:9001")},
        {SL_STR("X-Amz-Invocation-Type"), SL_STR("  RequestResponse ")},
        {SL_STR("x-multi"), SL_STR("b")},
        {SL_STR("Content-Type"), SL_STR("application/json")},
        {SL_STR("X-MULTI"), SL_STR("\ta  \t c ")},
        {SL_STR("x-empty"), SL_STR("")},
    };
    sl_sigv4_input_t in = base_input(h, SL_ARRAY_SIZE(h));
    in.method = SL_STR("POST");
    in.service = SL_STR("lambda");
    in.body = SL_STR("{\"k\":1}");
    out_init(&b);
    int rc = sl_sigv4_sign(&in, &b.o, err, sizeof(err));
    SL_CHECK(rc == SL_OK, "headers: %s", err);
    const char *want = "content-type:application/json\n"
                       "host:127.0.0.1:9001\n"
                       "x-amz-date:" DATE "\n"
                       "x-amz-invocation-type:RequestResponse\n"
                       "x-empty:\n"
                       "x-multi:b,a c\n"
                       "\n"
                       "content-type;host;x-amz-date;x-amz-invocation-type;x-empty;x-multi\n";
    SL_CHECK(strstr(b.creq, want) != NULL, "headers: block\n%.*s",
             (int)b.o.canonical_request.len, b.creq);
    SL_CHECK(strstr(b.authz, "Credential=" AKID "/20150830/us-east-1/lambda/aws4_request, "
                             "SignedHeaders=content-type;host;x-amz-date;x-amz-invocation-type;"
                             "x-empty;x-multi, Signature=") == b.authz + 17,
             "headers: authorization %s", b.authz);
    SL_CHECK(independent_ok(&in, &b), "headers: independent HMAC");
}

static void test_midnight(void)
{
    char d[SL_SIGV4_DATE_LEN + 1];
    SL_CHECK(sl_sigv4_format_date(1440938160, d) == SL_OK && strcmp(d, DATE) == 0,
             "format_date: %s", d);
    SL_CHECK(sl_sigv4_format_date(1440979199, d) == SL_OK && strcmp(d, "20150830T235959Z") == 0,
             "format_date before midnight: %s", d);
    SL_CHECK(sl_sigv4_format_date(1440979200, d) == SL_OK && strcmp(d, "20150831T000000Z") == 0,
             "format_date midnight: %s", d);
    SL_CHECK(sl_sigv4_format_date(0, d) == SL_OK && strcmp(d, "19700101T000000Z") == 0,
             "format_date epoch: %s", d);
    SL_CHECK(sl_sigv4_format_date(-1, d) == SL_ERROR, "format_date: negative refused");
    SL_CHECK(sl_sigv4_format_date(INT64_C(253402300800), d) == SL_ERROR,
             "format_date: year 10000 refused");

    /* the scope date always comes from the same timestamp as X-Amz-Date */
    static outbuf_t b1, b2;
    char err[256];
    sl_sigv4_input_t in = base_input(HOST, 1);
    in.amz_date = SL_STR("20150830T235959Z");
    out_init(&b1);
    SL_CHECK(sl_sigv4_sign(&in, &b1.o, err, sizeof(err)) == SL_OK &&
                 strstr(b1.sts, "\n20150830T235959Z\n20150830/us-east-1/service/aws4_request\n"),
             "before midnight: %s", b1.sts);
    in.amz_date = SL_STR("20150831T000000Z");
    out_init(&b2);
    SL_CHECK(sl_sigv4_sign(&in, &b2.o, err, sizeof(err)) == SL_OK &&
                 strstr(b2.sts, "\n20150831T000000Z\n20150831/us-east-1/service/aws4_request\n") &&
                 strstr(b2.authz, "Credential=" AKID "/20150831/"),
             "midnight: %s", b2.sts);
    SL_CHECK(independent_ok(&in, &b2), "midnight: independent HMAC");
}

static void test_small_buffers(void)
{
    static outbuf_t ref;
    char err[256] = "";
    sl_sigv4_input_t in = base_input(HOST, 1);
    out_init(&ref);
    SL_CHECK(sl_sigv4_sign(&in, &ref.o, err, sizeof(err)) == SL_OK, "small: reference");

    const char *names[] = {"canonical_request", "string_to_sign", "authorization", "query"};
    for (int which = 0; which < 3; which++) {
        static outbuf_t b;
        out_init(&b);
        sl_sigv4_buf_t *o = which == 0   ? &b.o.canonical_request
                            : which == 1 ? &b.o.string_to_sign
                                         : &b.o.authorization;
        const sl_sigv4_buf_t *r = which == 0   ? &ref.o.canonical_request
                                  : which == 1 ? &ref.o.string_to_sign
                                               : &ref.o.authorization;
        o->cap = r->len - 1;
        memset(o->data, 'Z', r->len);
        err[0] = '\0';
        int rc = sl_sigv4_sign(&in, &b.o, err, sizeof(err));
        SL_CHECK(rc == SL_ERROR && o->len == r->len && strstr(err, names[which]) &&
                     strstr(err, "too small"),
                 "small %s: rc=%d len=%zu err=%s", names[which], rc, o->len, err);
        SL_CHECK(o->data[0] == 'Z', "small %s: nothing written", names[which]);
        o->cap = o->len;
        rc = sl_sigv4_sign(&in, &b.o, err, sizeof(err));
        SL_CHECK(rc == SL_OK && buf_is(o, r->data, r->len), "small %s: exact size works",
                 names[which]);
    }
    /* outputs not wanted (NULL) are skipped */
    static outbuf_t b;
    out_init(&b);
    b.o.canonical_request = (sl_sigv4_buf_t){NULL, 0, 0};
    b.o.query = (sl_sigv4_buf_t){NULL, 0, 0};
    SL_CHECK(sl_sigv4_sign(&in, &b.o, err, sizeof(err)) == SL_OK &&
                 strcmp(b.o.signature, ref.o.signature) == 0 &&
                 buf_is(&b.o.authorization, ref.authz, ref.o.authorization.len),
             "NULL outputs skipped: %s", err);
}

int main(int argc, char **argv)
{
    char suite[PATH_MAX];
    if (find_suite(suite, sizeof(suite), argc > 0 ? argv[0] : NULL)) {
        int cases = 0;
        int passed = walk(suite, 0, &cases);
        printf("AWS SigV4 suite %s: %d of %d cases pass\n", suite, passed, cases);
        SL_CHECK(cases == 34, "suite: expected 34 cases, found %d", cases);
    } else {
        printf("SKIP: AWS SigV4 suite not found (set SLUICE_SIGV4_SUITE)\n");
    }
    test_paths();
    test_queries();
    test_headers_and_host();
    test_presign();
    test_session_token();
    test_cache();
    test_unsigned_payload();
    test_limits();
    test_refusals();
    test_midnight();
    test_small_buffers();
    SL_TEST_MAIN("test_sigv4");
}
