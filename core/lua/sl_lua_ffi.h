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
/* END FFI */

/* modes of sl_ffi_up_header / sl_ffi_resp_header_edit */
#define SL_FFI_HDR_SET 0
#define SL_FFI_HDR_ADD 1
#define SL_FFI_HDR_CLEAR 2

#endif
