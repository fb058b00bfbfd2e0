/*
 * sl_sigv4.h: AWS Signature Version 4 (AWS4-HMAC-SHA256), header and presigned-URL forms.
 *
 * One call turns a request description into the canonical request, the string to sign, the
 * signature and either the Authorization header value (header signing) or the signed query
 * string (presigning). Each stage is also callable on its own (canonical URI, canonical
 * query, signing key) so tests can check them one by one.
 *
 * Rules (AWS's, and what the aws-sig-v4 test suite expects):
 *  - Path: by default (every service but S3) the wire path has its dot segments removed and
 *    its empty segments merged, keeps a trailing slash, and every byte outside
 *    A-Z a-z 0-9 - _ . ~ and '/' is then percent-encoded (so an encoded wire path is
 *    encoded again: %20 -> %2520). With SL_SIGV4_S3 the path is not normalized and is
 *    decoded, then encoded once (a decoded "%2F" stays "%2F"). An empty path is "/".
 *  - Query: split on '&', then the first '='; names and values are percent-decoded ('+' is
 *    a literal plus, not a space), re-encoded with the unreserved set, sorted by name then
 *    value, bytewise; a missing value is "name=".
 *  - Headers: names lower-cased, values trimmed with inner runs of spaces and tabs folded
 *    to one space; repeated names are joined with ',' in their given order; sorted by
 *    name. Every header given is signed: the caller chooses which ones to pass. "host" is
 *    required; "x-amz-date" (from amz_date), "x-amz-security-token" (when a session token
 *    is given and not SL_SIGV4_TOKEN_AFTER) and "x-amz-content-sha256" (with
 *    SL_SIGV4_CONTENT_SHA256) are added when absent. In presign mode they go to the query
 *    instead (X-Amz-Date, X-Amz-Security-Token) and content-sha256 is not added.
 *  - Payload hash: payload_hash when given, else "UNSIGNED-PAYLOAD" with
 *    SL_SIGV4_UNSIGNED_PAYLOAD, else the hex SHA-256 of body.
 *
 * Inputs are borrowed for the duration of the call and never kept. Outputs go to caller
 * buffers; a buffer that is too small makes the call fail (nothing is truncated) with
 * its needed size in len. Every input has a maximum length (SL_SIGV4_MAX_*); longer input
 * is refused with a message naming the field. Errors never contain the secret.
 *
 * The signing key (four chained HMACs) is cached per (secret, date, region, service) in a
 * small bounded per-thread cache. Entries are found by a salted SHA-256 of the secret; the
 * secret itself is never stored, and the cache is wiped by sl_sigv4_cache_clear().
 * Crypto is OpenSSL's libcrypto. Thread use: any thread; the cache and digest contexts are
 * per thread.
 */
#ifndef SL_SIGV4_H
#define SL_SIGV4_H

#include <stddef.h>
#include <stdint.h>

#include "sl_core.h"

/* flags */
#define SL_SIGV4_S3 0x01                /* no path normalization, path encoded once */
#define SL_SIGV4_UNSIGNED_PAYLOAD 0x02  /* payload hash "UNSIGNED-PAYLOAD" */
#define SL_SIGV4_CONTENT_SHA256 0x04    /* add and sign x-amz-content-sha256 (header mode) */
#define SL_SIGV4_TOKEN_AFTER 0x08       /* the session token is added after signing */
#define SL_SIGV4_PRESIGN 0x10           /* query signing (X-Amz-* parameters) */

/* input limits (bytes unless said) */
#define SL_SIGV4_MAX_METHOD 32
#define SL_SIGV4_MAX_PATH 8192
#define SL_SIGV4_MAX_QUERY 8192
#define SL_SIGV4_MAX_PARAMS 256          /* query parameters */
#define SL_SIGV4_MAX_HEADERS 64          /* header fields given */
#define SL_SIGV4_MAX_HEADER_NAME 256
#define SL_SIGV4_MAX_HEADER_VALUE 8192
#define SL_SIGV4_MAX_HEADERS_TOTAL 32768 /* all names and values together */
#define SL_SIGV4_MAX_SCOPE_PART 64       /* region, service */
#define SL_SIGV4_MAX_ACCESS_KEY 128
#define SL_SIGV4_MAX_SECRET 256
#define SL_SIGV4_MAX_TOKEN 8192
#define SL_SIGV4_MAX_PAYLOAD_HASH 128
#define SL_SIGV4_MAX_EXPIRES 604800      /* presign: 7 days */

#define SL_SIGV4_DATE_LEN 16             /* YYYYMMDDTHHMMSSZ */
#define SL_SIGV4_SIG_LEN 64              /* hex HMAC-SHA256 */
#define SL_SIGV4_CACHE_SIZE 16           /* signing keys kept per thread */

#define SL_SIGV4_ALGORITHM "AWS4-HMAC-SHA256"
#define SL_SIGV4_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

typedef struct {
    sl_str_t method;             /* as sent, e.g. "GET" (not case-folded) */
    sl_str_t path;               /* the wire path, without '?' and query */
    sl_str_t query;              /* the wire query, without '?'; may be empty */
    const sl_header_t *headers;  /* the headers to sign (host required), nheaders of them */
    size_t nheaders;
    sl_str_t body;               /* hashed unless payload_hash or UNSIGNED_PAYLOAD */
    sl_str_t payload_hash;       /* optional precomputed payload hash (e.g. hex SHA-256) */
    sl_str_t region;
    sl_str_t service;
    sl_str_t amz_date;           /* YYYYMMDDTHHMMSSZ, UTC */
    sl_str_t access_key;
    sl_str_t secret_key;
    sl_str_t session_token;      /* optional */
    unsigned flags;              /* SL_SIGV4_* */
    uint32_t expires;            /* presign: seconds, 1..SL_SIGV4_MAX_EXPIRES */
} sl_sigv4_input_t;

/* A caller buffer. data NULL (cap 0) means "not wanted". After the call len is the length
 * written (not NUL-terminated), or on failure for a too small buffer the length needed. */
typedef struct {
    char *data;
    size_t cap;
    size_t len;
} sl_sigv4_buf_t;

typedef struct {
    sl_sigv4_buf_t canonical_request;
    sl_sigv4_buf_t string_to_sign;
    sl_sigv4_buf_t authorization; /* header mode: the Authorization value; presign: empty */
    sl_sigv4_buf_t query;         /* header mode: the canonical query (send it as is);
                                     presign: the full signed query, X-Amz-Signature last */
    char signature[SL_SIGV4_SIG_LEN + 1]; /* lowercase hex, NUL-terminated */
} sl_sigv4_output_t;

/* Signs `in`. SL_OK, or SL_ERROR with a message naming the bad field (or the too small
 * output buffer) in err. */
int sl_sigv4_sign(const sl_sigv4_input_t *in, sl_sigv4_output_t *out, char *err,
                  size_t errlen);

/* Stage: the canonical URI of path into out (cap >= 3 * path.len + 1 always suffices).
 * Returns the length, or -1 (err set) on bad input or a too small buffer. */
long sl_sigv4_canonical_uri(sl_str_t path, int s3, char *out, size_t cap, char *err,
                            size_t errlen);

/* Stage: the canonical query string of query into out (cap >= 3 * query.len suffices).
 * Returns the length, or -1 (err set). */
long sl_sigv4_canonical_query(sl_str_t query, char *out, size_t cap, char *err,
                              size_t errlen);

/* Stage: kSigning for (secret, date = first 8 chars of amz_date, region, service) into
 * key[32], through the cache. SL_OK or SL_ERROR (err set). */
int sl_sigv4_signing_key(sl_str_t secret, sl_str_t date8, sl_str_t region, sl_str_t service,
                         uint8_t key[32], char *err, size_t errlen);

/* Formats epoch seconds (0 .. 253402300799) as YYYYMMDDTHHMMSSZ plus NUL. SL_OK/SL_ERROR. */
int sl_sigv4_format_date(int64_t epoch, char out[SL_SIGV4_DATE_LEN + 1]);

/* The calling thread's key cache: wiped (keys cleansed) / hit and miss counters. */
void sl_sigv4_cache_clear(void);
void sl_sigv4_cache_stats(uint64_t *hits, uint64_t *misses, unsigned *entries);

#endif
