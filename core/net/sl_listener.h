/*
 * sl_listener.h: opening listening sockets for proxy_listen / admin_listen entries, and the
 * server TLS contexts of the entries with the ssl flag.
 *
 * The master opens them once (bind + listen, SO_REUSEADDR, SO_REUSEPORT with the `reuseport`
 * flag, IPV6_V6ONLY, TCP_DEFER_ACCEPT with `deferred`); workers inherit the descriptors.
 *
 * TLS: the master builds one context for the proxy listeners (ssl_cert / ssl_cert_key) and
 * one for the admin listeners (admin_ssl_cert / admin_ssl_cert_key) before it forks, so a
 * bad certificate stops `start` (or a reload) with a message naming the property and the
 * file, and every worker inherits the same context (and so the same session ticket keys).
 * Without configured certificates a self-signed RSA + ECDSA pair is generated once under
 * <prefix>/ssl/ and reused on restart. Protocols and ciphers follow ssl_cipher_suite (Kong:
 * ssl_protocols and ssl_ciphers apply with `custom` only); ALPN offers http/1.1 only.
 */
#ifndef SL_LISTENER_H
#define SL_LISTENER_H

#include <openssl/ssl.h>

#include "conf/sl_conf.h"

/* Returns a listening, non-blocking fd, or -1 with a message in err. */
int sl_listener_open(const sl_listen_t *l, const char *property, char *err, size_t errlen);

typedef struct sl_listener_tls_s sl_listener_tls_t;

/* Runs during each handshake once the ClientHello is read (OpenSSL's certificate callback,
 * where nginx runs ssl_certificate_by_lua), after the certificate for the SNI is chosen.
 * sni is NULL when the client sent none. It must not fail the handshake: errors are its
 * own to log. */
typedef void (*sl_listener_tls_hook_cb)(SSL *ssl, const char *sni, void *arg);

/* Builds the server context of the proxy (admin = 0) or admin listeners from c, generating
 * the default certificates under c->prefix/ssl/ when none are configured. Returns a heap
 * object owned by the caller, or NULL with a message in err. */
sl_listener_tls_t *sl_listener_tls_create(const sl_conf_t *c, int admin, char *err,
                                          size_t errlen);
/* Frees t (and its SSL_CTX reference); NULL is fine. */
void sl_listener_tls_destroy(sl_listener_tls_t *t);
/* The context to create each connection's SSL from; borrowed from t. */
SSL_CTX *sl_listener_tls_ctx(const sl_listener_tls_t *t);
/* Installs the per-handshake hook (NULL: none). */
void sl_listener_tls_set_hook(sl_listener_tls_t *t, sl_listener_tls_hook_cb cb, void *arg);

/* The process-wide pair (either may be NULL); install takes ownership and destroys the
 * pair it replaces. The master installs before forking; workers read their copy. */
void sl_listener_tls_install(sl_listener_tls_t *proxy, sl_listener_tls_t *admin);
sl_listener_tls_t *sl_listener_tls_current(int admin);

/* The paths of the generated default certificate and key (ecdsa: the P-256 pair) for the
 * proxy or admin listeners, written to crt and key. */
void sl_listener_tls_default_paths(const char *prefix, int admin, int ecdsa, char *crt,
                                   char *key, size_t len);

#endif
