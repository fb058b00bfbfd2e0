/*
 * sl_lua_ffi.h: every function the Lua side reaches through the LuaJIT FFI.
 *
 * They act on the current request (sl_lua_current_request()); called outside a request
 * they return SL_DECLINED (or -1 / 0 as said). Strings handed out point into memory the
 * request owns and stay valid until the request ends or the same field is set again: Lua
 * copies them at once (ffi.string). Strings handed in are copied. No function here
 * yields, raises or keeps a pointer it was given. lua/sluice/ffi/cdefs.lua mirrors the
 * declarations between the BEGIN/END markers (generated: see tools/gen-cdefs).
 */
#ifndef SL_LUA_FFI_H
#define SL_LUA_FFI_H

#include <stddef.h>
#include <stdint.h>

/* BEGIN FFI */
int sl_ffi_req_in_request(void);
double sl_ffi_req_serial(void);
int sl_ffi_req_method(const char **p, size_t *len);
int sl_ffi_req_target(const char **p, size_t *len);
int sl_ffi_req_raw_path(const char **p, size_t *len);
int sl_ffi_req_norm_path(const char **p, size_t *len);
int sl_ffi_req_raw_query(const char **p, size_t *len);
int sl_ffi_req_host(const char **p, size_t *len);
int sl_ffi_req_id(const char **p, size_t *len);
/* the TLS server name (SNI) the client sent on this connection; SL_DECLINED if none */
int sl_ffi_req_sni(const char **p, size_t *len);
int sl_ffi_req_scheme_is_https(void);
int sl_ffi_req_http_minor(void);
int sl_ffi_req_server_port(void);
int sl_ffi_req_client_ip(const char **p, size_t *len);
int sl_ffi_req_peer_ip(const char **p, size_t *len);
int sl_ffi_req_peer_port(void);
int sl_ffi_req_peer_trusted(void);
double sl_ffi_req_start_time(void);
int sl_ffi_req_header_count(void);
int sl_ffi_req_header(int i, const char **name, size_t *name_len, const char **value,
                      size_t *value_len);
int sl_ffi_req_route_index(void);
/* the configuration generation the request was routed with (else the worker's current) */
unsigned long sl_ffi_req_generation(void);
/* nginx's stub_status for the node: active, reading, writing, waiting, accepted, handled,
 * requests (this worker's states are published first) */
void sl_ffi_server_stats(uint64_t out[7]);
int sl_ffi_req_capture_count(void);
int sl_ffi_req_capture(int i, const char **name, size_t *name_len, const char **value,
                       size_t *value_len);
int sl_ffi_up_header(const char *name, size_t name_len, const char *value, size_t value_len,
                     int mode);
int sl_ffi_up_set_path(const char *p, size_t len);
int sl_ffi_up_set_query(const char *p, size_t len);
int sl_ffi_up_set_method(const char *p, size_t len);
int sl_ffi_up_set_timeouts(int connect_ms, int write_ms, int read_ms);
int sl_ffi_up_set_retries(int retries);
int sl_ffi_up_set_body(const char *body, size_t len);
int sl_ffi_resp_status(void);
int sl_ffi_resp_set_status(int status);
int sl_ffi_resp_header_count(void);
int sl_ffi_resp_header(int i, const char **name, size_t *name_len, const char **value,
                       size_t *value_len);
int sl_ffi_resp_header_edit(const char *name, size_t name_len, const char *value,
                            size_t value_len, int mode);
int sl_ffi_resp_exit(int status, const char *body, size_t body_len);
int sl_ffi_resp_source(void);
double sl_ffi_now(void);
int sl_ffi_ip_is_trusted(const char *ip, size_t len);
/* SigV4 (core/aws/sl_sigv4.h); pure functions, callable outside a request too. Strings in
 * are borrowed for the call; the four outputs go to caller buffers (cap bytes; on SL_ERROR
 * for a too small one its *_len is the size needed). flags: 1 S3 path, 2 unsigned payload,
 * 4 x-amz-content-sha256 header, 8 token added after signing, 16 presign. */
typedef struct {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
} sl_ffi_sigv4_header_t;
typedef struct {
    const char *method;
    size_t method_len;
    const char *path;
    size_t path_len;
    const char *query;
    size_t query_len;
    const sl_ffi_sigv4_header_t *headers;
    size_t nheaders;
    const char *body;
    size_t body_len;
    const char *region;
    size_t region_len;
    const char *service;
    size_t service_len;
    const char *access_key;
    size_t access_key_len;
    const char *secret_key;
    size_t secret_key_len;
    const char *session_token;
    size_t session_token_len;
    int64_t timestamp;
    unsigned flags;
    unsigned expires;
} sl_ffi_sigv4_in_t;
typedef struct {
    char *creq;
    size_t creq_cap;
    size_t creq_len;
    char *sts;
    size_t sts_cap;
    size_t sts_len;
    char *authz;
    size_t authz_cap;
    size_t authz_len;
    char *query;
    size_t query_cap;
    size_t query_len;
    char signature[65];
    char amz_date[17];
} sl_ffi_sigv4_out_t;
int sl_ffi_sigv4_sign(const sl_ffi_sigv4_in_t *in, sl_ffi_sigv4_out_t *out, char *err,
                      size_t errlen);
int sl_ffi_sigv4_cache_stats(double *hits, double *misses, int *entries);
void sl_ffi_sigv4_cache_clear(void);
/* END FFI */

/* modes of sl_ffi_up_header / sl_ffi_resp_header_edit */
#define SL_FFI_HDR_SET 0
#define SL_FFI_HDR_ADD 1
#define SL_FFI_HDR_CLEAR 2

#endif
