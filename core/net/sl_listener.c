#include "net/sl_listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int sl_listener_open(const sl_listen_t *l, const char *property, char *err, size_t errlen)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    char port[16];
    snprintf(port, sizeof(port), "%u", l->port);
    const char *host = l->host;
    if (strcmp(host, "*") == 0 || host[0] == '\0')
        host = "0.0.0.0";
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0 || res == NULL) {
        snprintf(err, errlen, "%s: cannot resolve '%s': %s", property, l->host, gai_strerror(rc));
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "%s: socket() failed: %s", property, strerror(errno));
        freeaddrinfo(res);
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (l->reuseport)
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (res->ai_family == AF_INET6) {
        int v6only = l->ipv6only ? 1 : 0;
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only));
    }
    if (bind(fd, res->ai_addr, res->ai_addrlen) < 0) {
        snprintf(err, errlen, "%s: could not bind to %s:%u: %s", property, l->host, l->port,
                 strerror(errno));
        close(fd);
        freeaddrinfo(res);
        return -1;
    }
    freeaddrinfo(res);
    if (listen(fd, l->backlog > 0 ? l->backlog : 511) < 0) {
        snprintf(err, errlen, "%s: listen() on %s:%u failed: %s", property, l->host, l->port,
                 strerror(errno));
        close(fd);
        return -1;
    }
    if (l->deferred) {
        int secs = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &secs, sizeof(secs));
    }
    return fd;
}

/* ---- TLS ---- */

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <sys/stat.h>

#define TLS_MAX_CERTS 16

typedef struct {
    X509 *cert;
    STACK_OF(X509) *chain;
    EVP_PKEY *key;
    int type;        /* EVP_PKEY_base_id of the key */
    int is_default;  /* in the context: the first certificate of its key type */
} tls_cert_t;

struct sl_listener_tls_s {
    SSL_CTX *ctx;
    tls_cert_t certs[TLS_MAX_CERTS];
    size_t ncerts;
    sl_listener_tls_hook_cb hook;
    void *hook_arg;
};

static sl_listener_tls_t *installed[2];

/* Mozilla's guideline lists, as Kong's ssl_cipher_suite names them. */
typedef struct {
    const char *name;
    const char *protocols;
    const char *ciphers;  /* TLSv1.2 and below; NULL: OpenSSL's default */
    int prefer_server;
} tls_suite_t;

static const tls_suite_t suites[] = {
    {"modern", "TLSv1.3", NULL, 0},
    {"intermediate", "TLSv1.2 TLSv1.3",
     "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
     "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
     "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
     "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384",
     0},
    {"old", "TLSv1 TLSv1.1 TLSv1.2 TLSv1.3", "ALL:!aNULL:!eNULL:!EXPORT:!RC4:!MD5:@SECLEVEL=0", 1},
    {"fips", "TLSv1.2 TLSv1.3",
     "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
     "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384",
     1},
};

static void tls_err_tail(char *err, size_t errlen)
{
    unsigned long e = ERR_peek_last_error();
    size_t n = strlen(err);
    if (e != 0 && n + 3 < errlen) {
        snprintf(err + n, errlen - n, " (%s)", ERR_reason_error_string(e) ? ERR_reason_error_string(e) : "?");
    }
    ERR_clear_error();
}

void sl_listener_tls_default_paths(const char *prefix, int admin, int ecdsa, char *crt,
                                   char *key, size_t len)
{
    const char *who = admin ? "admin-sluice-default" : "sluice-default";
    const char *kind = ecdsa ? "-ecdsa" : "";
    snprintf(crt, len, "%s/ssl/%s%s.crt", prefix, who, kind);
    snprintf(key, len, "%s/ssl/%s%s.key", prefix, who, kind);
}

/* Writes the PEM of pk (key) or x (certificate) to path through a temporary file. */
static int write_pem(const char *path, EVP_PKEY *pk, X509 *x, char *err, size_t errlen)
{
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.%d.tmp", path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, pk ? 0600 : 0644);
    if (fd < 0) {
        snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
        return -1;
    }
    FILE *f = fdopen(fd, "w");
    if (f == NULL) {
        close(fd);
        unlink(tmp);
        snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
        return -1;
    }
    int ok = pk ? PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL) : PEM_write_X509(f, x);
    if (fclose(f) != 0)
        ok = 0;
    if (!ok || rename(tmp, path) != 0) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* A self-signed certificate for localhost, valid ten years. */
static int generate_default(const char *crt, const char *key, int ecdsa, char *err,
                            size_t errlen)
{
    EVP_PKEY *pk = ecdsa ? EVP_EC_gen("P-256") : EVP_RSA_gen(2048);
    X509 *x = X509_new();
    BIGNUM *bn = BN_new();
    int rc = -1;
    if (pk == NULL || x == NULL || bn == NULL) {
        snprintf(err, errlen, "cannot generate the default certificate %s", crt);
        tls_err_tail(err, errlen);
        goto done;
    }
    X509_set_version(x, 2);
    BN_rand(bn, 63, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY);
    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 10L * 365 * 86400);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"Sluice", -1,
                               -1, 0);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1,
                               -1, 0);
    X509_set_issuer_name(x, name);
    X509_set_pubkey(x, pk);
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, "DNS:localhost");
    if (ext != NULL) {
        X509_add_ext(x, ext, -1);
        X509_EXTENSION_free(ext);
    }
    if (X509_sign(x, pk, EVP_sha256()) == 0) {
        snprintf(err, errlen, "cannot sign the default certificate %s", crt);
        tls_err_tail(err, errlen);
        goto done;
    }
    if (write_pem(key, pk, NULL, err, errlen) != 0 || write_pem(crt, NULL, x, err, errlen) != 0)
        goto done;
    rc = 0;
done:
    BN_free(bn);
    X509_free(x);
    EVP_PKEY_free(pk);
    return rc;
}

static void cert_free(tls_cert_t *tc)
{
    X509_free(tc->cert);
    sk_X509_pop_free(tc->chain, X509_free);
    EVP_PKEY_free(tc->key);
    memset(tc, 0, sizeof(*tc));
}

static BIO *open_pem(const char *value)
{
    if (strncmp(value, "-----BEGIN", 10) == 0)
        return BIO_new_mem_buf(value, -1);
    return BIO_new_file(value, "r");
}

/* Loads one certificate file (leaf then chain) and its key; errors name the properties. */
static int load_pair(tls_cert_t *tc, const char *cpath, const char *kpath, const char *cprop,
                     const char *kprop, char *err, size_t errlen)
{
    memset(tc, 0, sizeof(*tc));
    errno = 0;
    BIO *b = open_pem(cpath);
    if (b == NULL) {
        snprintf(err, errlen, "%s: cannot read '%s': %s", cprop, cpath,
                 errno ? strerror(errno) : "unreadable");
        ERR_clear_error();
        return -1;
    }
    tc->cert = PEM_read_bio_X509(b, NULL, NULL, NULL);
    if (tc->cert == NULL) {
        BIO_free(b);
        snprintf(err, errlen, "%s: '%s' holds no PEM certificate", cprop, cpath);
        tls_err_tail(err, errlen);
        return -1;
    }
    tc->chain = sk_X509_new_null();
    if (tc->chain == NULL)
        abort();
    X509 *extra;
    while ((extra = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
        if (!sk_X509_push(tc->chain, extra))
            abort();
    }
    ERR_clear_error();
    BIO_free(b);
    errno = 0;
    b = open_pem(kpath);
    if (b == NULL) {
        snprintf(err, errlen, "%s: cannot read '%s': %s", kprop, kpath,
                 errno ? strerror(errno) : "unreadable");
        ERR_clear_error();
        cert_free(tc);
        return -1;
    }
    tc->key = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
    BIO_free(b);
    if (tc->key == NULL) {
        snprintf(err, errlen, "%s: '%s' holds no PEM private key", kprop, kpath);
        tls_err_tail(err, errlen);
        cert_free(tc);
        return -1;
    }
    if (X509_check_private_key(tc->cert, tc->key) != 1) {
        snprintf(err, errlen, "%s: '%s' does not match the certificate of %s '%s'", kprop, kpath,
                 cprop, cpath);
        ERR_clear_error();
        cert_free(tc);
        return -1;
    }
    tc->type = EVP_PKEY_get_base_id(tc->key);
    return 0;
}

/* Splits a comma list into at most max trimmed items, in place (s is a copy). */
static size_t split_list(char *s, char **items, size_t max)
{
    size_t n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(s, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ' || *tok == '\t')
            tok++;
        char *end = tok + strlen(tok);
        while (end > tok && (end[-1] == ' ' || end[-1] == '\t'))
            *--end = '\0';
        if (*tok == '\0')
            continue;
        if (n == max)
            return max + 1;
        items[n++] = tok;
    }
    return n;
}

static int load_configured(sl_listener_tls_t *t, const char *certs, const char *keys,
                           const char *cprop, const char *kprop, char *err, size_t errlen)
{
    char *cs = strdup(certs), *ks = strdup(keys);
    if (cs == NULL || ks == NULL)
        abort();
    char *citems[TLS_MAX_CERTS], *kitems[TLS_MAX_CERTS];
    size_t nc = split_list(cs, citems, TLS_MAX_CERTS);
    size_t nk = split_list(ks, kitems, TLS_MAX_CERTS);
    int rc = -1;
    if (nc > TLS_MAX_CERTS) {
        snprintf(err, errlen, "%s: at most %d certificates", cprop, TLS_MAX_CERTS);
    } else if (nc != nk) {
        snprintf(err, errlen, "%s lists %zu file(s) and %s %zu: each certificate needs its key",
                 cprop, nc, kprop, nk);
    } else {
        rc = 0;
        for (size_t i = 0; i < nc && rc == 0; i++) {
            rc = load_pair(&t->certs[t->ncerts], citems[i], kitems[i], cprop, kprop, err,
                           errlen);
            if (rc == 0)
                t->ncerts++;
        }
    }
    free(cs);
    free(ks);
    return rc;
}

static int load_defaults(sl_listener_tls_t *t, const char *prefix, int admin, char *err,
                         size_t errlen)
{
    char dir[4200];
    snprintf(dir, sizeof(dir), "%s/ssl", prefix);
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
        return -1;
    }
    for (int ecdsa = 0; ecdsa < 2; ecdsa++) {
        char crt[4200], key[4200];
        sl_listener_tls_default_paths(prefix, admin, ecdsa, crt, key, sizeof(crt));
        struct stat st;
        if (stat(crt, &st) != 0 || stat(key, &st) != 0) {
            if (generate_default(crt, key, ecdsa, err, errlen) != 0)
                return -1;
        }
        if (load_pair(&t->certs[t->ncerts], crt, key, admin ? "admin_ssl_cert" : "ssl_cert",
                      admin ? "admin_ssl_cert_key" : "ssl_cert_key", err, errlen) != 0)
            return -1;
        t->ncerts++;
    }
    return 0;
}

static int parse_protocols(const char *value, int *min, int *max, long *noopts, char *err,
                           size_t errlen)
{
    static const struct {
        const char *name;
        int version;
        long op;
    } known[] = {{"TLSv1", TLS1_VERSION, SSL_OP_NO_TLSv1},
                 {"TLSv1.1", TLS1_1_VERSION, SSL_OP_NO_TLSv1_1},
                 {"TLSv1.2", TLS1_2_VERSION, SSL_OP_NO_TLSv1_2},
                 {"TLSv1.3", TLS1_3_VERSION, SSL_OP_NO_TLSv1_3}};
    int on[4] = {0, 0, 0, 0};
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", value);
    char *save = NULL;
    for (char *tok = strtok_r(buf, " \t,", &save); tok; tok = strtok_r(NULL, " \t,", &save)) {
        size_t i;
        for (i = 0; i < 4; i++) {
            if (strcmp(tok, known[i].name) == 0)
                break;
        }
        if (i == 4) {
            snprintf(err, errlen,
                     "ssl_protocols: unknown protocol '%s' (expected TLSv1, TLSv1.1, TLSv1.2, "
                     "TLSv1.3)",
                     tok);
            return -1;
        }
        on[i] = 1;
    }
    int lo = -1, hi = -1;
    for (int i = 0; i < 4; i++) {
        if (on[i]) {
            if (lo < 0)
                lo = i;
            hi = i;
        }
    }
    if (lo < 0) {
        snprintf(err, errlen, "ssl_protocols: no protocol enabled");
        return -1;
    }
    *min = known[lo].version;
    *max = known[hi].version;
    *noopts = 0;
    for (int i = lo; i <= hi; i++) {
        if (!on[i])
            *noopts |= known[i].op;
    }
    return 0;
}

static int alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned int inlen, void *arg)
{
    /* HTTP/1.1 only: a client offering just h2 goes on without ALPN, as nginx does */
    for (unsigned i = 0; i < inlen;) {
        unsigned n = in[i];
        if (i + 1 + n > inlen)
            break;
        if (n == 8 && memcmp(in + i + 1, "http/1.1", 8) == 0) {
            *out = in + i + 1;
            *outlen = (unsigned char)n;
            return SSL_TLSEXT_ERR_OK;
        }
        i += 1 + n;
    }
    return SSL_TLSEXT_ERR_NOACK;
}

/* The certificate callback: the certificates whose names cover the SNI (when they are not
 * the defaults already), then the hook. */
static int cert_cb(SSL *ssl, void *arg)
{
    sl_listener_tls_t *t = arg;
    const char *sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (sni != NULL && t->ncerts > 1) {
        size_t sni_len = strlen(sni);
        int pick[TLS_MAX_CERTS];
        size_t npick = 0;
        int need = 0;
        for (size_t i = 0; i < t->ncerts; i++) {
            tls_cert_t *tc = &t->certs[i];
            if (X509_check_host(tc->cert, sni, sni_len, 0, NULL) != 1)
                continue;
            int dup = 0;
            for (size_t k = 0; k < npick; k++)
                dup |= t->certs[pick[k]].type == tc->type;
            if (dup)
                continue;
            pick[npick++] = (int)i;
            need |= !tc->is_default;
        }
        if (need) {
            SSL_certs_clear(ssl);
            for (size_t k = 0; k < npick; k++) {
                tls_cert_t *tc = &t->certs[pick[k]];
                if (SSL_use_cert_and_key(ssl, tc->cert, tc->key, tc->chain, 1) != 1)
                    ERR_clear_error();
            }
        }
    }
    if (t->hook != NULL)
        t->hook(ssl, sni, t->hook_arg);
    return 1;
}

sl_listener_tls_t *sl_listener_tls_create(const sl_conf_t *c, int admin, char *err,
                                          size_t errlen)
{
    const char *cprop = admin ? "admin_ssl_cert" : "ssl_cert";
    const char *kprop = admin ? "admin_ssl_cert_key" : "ssl_cert_key";
    const char *certs = admin ? c->admin_ssl_cert : c->ssl_cert;
    const char *keys = admin ? c->admin_ssl_cert_key : c->ssl_cert_key;
    sl_listener_tls_t *t = calloc(1, sizeof(*t));
    if (t == NULL)
        abort();
    if ((certs && certs[0]) || (keys && keys[0])) {
        if (!(certs && certs[0]) || !(keys && keys[0])) {
            snprintf(err, errlen, "%s must be set together with %s", certs && certs[0] ? kprop : cprop,
                     certs && certs[0] ? cprop : kprop);
            goto fail;
        }
        if (load_configured(t, certs, keys, cprop, kprop, err, errlen) != 0)
            goto fail;
    } else if (load_defaults(t, c->prefix, admin, err, errlen) != 0) {
        goto fail;
    }

    const tls_suite_t *suite = NULL;
    const char *sname = c->ssl_cipher_suite && c->ssl_cipher_suite[0] ? c->ssl_cipher_suite
                                                                       : "intermediate";
    for (size_t i = 0; i < SL_ARRAY_SIZE(suites); i++) {
        if (strcmp(suites[i].name, sname) == 0)
            suite = &suites[i];
    }
    const char *protocols = suite ? suite->protocols : c->ssl_protocols;
    int minv, maxv;
    long noopts;
    if (parse_protocols(protocols && protocols[0] ? protocols : "TLSv1.2 TLSv1.3", &minv, &maxv,
                        &noopts, err, errlen) != 0)
        goto fail;

    t->ctx = SSL_CTX_new(TLS_server_method());
    if (t->ctx == NULL) {
        snprintf(err, errlen, "SSL_CTX_new() failed");
        tls_err_tail(err, errlen);
        goto fail;
    }
    SSL_CTX *ctx = t->ctx;
    if (minv < TLS1_2_VERSION)
        SSL_CTX_set_security_level(ctx, 0);
    SSL_CTX_set_min_proto_version(ctx, minv);
    SSL_CTX_set_max_proto_version(ctx, maxv);
    long opts = noopts | SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION;
    int prefer = suite ? suite->prefer_server : c->ssl_prefer_server_ciphers;
    if (prefer)
        opts |= SSL_OP_CIPHER_SERVER_PREFERENCE;
    if (!c->ssl_session_tickets)
        opts |= SSL_OP_NO_TICKET;
    SSL_CTX_set_options(ctx, (uint64_t)opts);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    const char *ciphers = suite ? suite->ciphers : c->ssl_ciphers;
    if (ciphers && ciphers[0]) {
        char list[2048];
        snprintf(list, sizeof(list), "%s", ciphers);
        for (char *p = list; *p; p++) {
            if (*p == ',')
                *p = ':';
        }
        if (SSL_CTX_set_cipher_list(ctx, list) != 1) {
            snprintf(err, errlen, "ssl_ciphers: no usable cipher in '%s'", ciphers);
            tls_err_tail(err, errlen);
            goto fail;
        }
    }
    /* sessions: a per-worker cache (nginx counts about 4000 sessions per megabyte) */
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"sluice", 6);
    if (c->ssl_session_cache_size > 0) {
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
        long n = (long)(c->ssl_session_cache_size / 256);
        SSL_CTX_sess_set_cache_size(ctx, n > 0 ? n : 1);
    } else {
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    }
    SSL_CTX_set_timeout(ctx, (long)(c->ssl_session_timeout_ms / 1000));
    if (!c->ssl_session_tickets)
        SSL_CTX_set_num_tickets(ctx, 0);

    /* the first certificate of each key type is the default */
    for (size_t i = 0; i < t->ncerts; i++) {
        tls_cert_t *tc = &t->certs[i];
        int taken = 0;
        for (size_t k = 0; k < i; k++)
            taken |= t->certs[k].is_default && t->certs[k].type == tc->type;
        if (taken)
            continue;
        if (SSL_CTX_use_cert_and_key(ctx, tc->cert, tc->key, tc->chain, 1) != 1) {
            snprintf(err, errlen, "%s: cannot use certificate %zu", cprop, i + 1);
            tls_err_tail(err, errlen);
            goto fail;
        }
        tc->is_default = 1;
    }
    SSL_CTX_set_alpn_select_cb(ctx, alpn_cb, NULL);
    SSL_CTX_set_cert_cb(ctx, cert_cb, t);
    return t;
fail:
    sl_listener_tls_destroy(t);
    return NULL;
}

void sl_listener_tls_destroy(sl_listener_tls_t *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->ncerts; i++)
        cert_free(&t->certs[i]);
    SSL_CTX_free(t->ctx);
    free(t);
}

SSL_CTX *sl_listener_tls_ctx(const sl_listener_tls_t *t) { return t->ctx; }

void sl_listener_tls_set_hook(sl_listener_tls_t *t, sl_listener_tls_hook_cb cb, void *arg)
{
    t->hook = cb;
    t->hook_arg = arg;
}

void sl_listener_tls_install(sl_listener_tls_t *proxy, sl_listener_tls_t *admin)
{
    if (installed[0] != proxy)
        sl_listener_tls_destroy(installed[0]);
    if (installed[1] != admin)
        sl_listener_tls_destroy(installed[1]);
    installed[0] = proxy;
    installed[1] = admin;
}

sl_listener_tls_t *sl_listener_tls_current(int admin) { return installed[admin ? 1 : 0]; }
