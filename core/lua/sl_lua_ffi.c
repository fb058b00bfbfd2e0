#include "lua/sl_lua_ffi.h"
#include "process/sl_stats.h"

#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "lua/sl_lua_runtime.h"

#define REQ_OR(ret)                                                                           \
    sl_req_t *r = sl_lua_current_request();                                                   \
    if (r == NULL || r->head_len == 0)                                                        \
        return (ret)

static int out_str(sl_str_t s, const char **p, size_t *len)
{
    *p = s.data ? s.data : "";
    *len = s.len;
    return SL_OK;
}

static char *dup_mem(const char *p, size_t len)
{
    char *s = malloc(len + 1);
    if (s == NULL)
        abort();
    if (len)
        memcpy(s, p, len);
    s[len] = '\0';
    return s;
}

int sl_ffi_req_in_request(void)
{
    sl_req_t *r = sl_lua_current_request();
    return r != NULL && r->head_len > 0;
}

double sl_ffi_req_serial(void)
{
    REQ_OR(0);
    return (double)r->serial;
}

int sl_ffi_req_method(const char **p, size_t *len)
{
    REQ_OR(SL_DECLINED);
    return out_str(r->h.method, p, len);
}

int sl_ffi_req_target(const char **p, size_t *len)
{
    REQ_OR(SL_DECLINED);
    return out_str(r->h.target, p, len);
}

int sl_ffi_req_raw_path(const char **p, size_t *len)
{
    REQ_OR(SL_DECLINED);
    return out_str(r->h.path, p, len);
}

int sl_ffi_req_norm_path(const char **p, size_t *len)
{
    REQ_OR(SL_DECLINED);
    if (r->route == NULL || r->match.path.data == NULL)
        return SL_DECLINED;
    return out_str(r->match.path, p, len);
}

int sl_ffi_req_raw_query(const char **p, size_t *len)
{
    REQ_OR(SL_DECLINED);
    const char *q = memchr(r->h.target.data, '?', r->h.target.len);
    if (q == NULL)
        return out_str(SL_NULL_STR, p, len);
    return out_str((sl_str_t){q + 1, (size_t)(r->h.target.data + r->h.target.len - q - 1)}, p,
                   len);
}

int sl_ffi_req_host(const char **p, size_t *len)
{
    REQ_OR(SL_DECLINED);
    if (r->info.host.len)
        return out_str(r->info.host, p, len);
    const sl_str_t *host = sl_req_header(r, SL_STR("host"));
    return out_str(host ? *host : SL_NULL_STR, p, len);
}

int sl_ffi_req_id(const char **p, size_t *len)
{
    REQ_OR(SL_DECLINED);
    return out_str((sl_str_t){r->id, 32}, p, len);
}

int sl_ffi_req_sni(const char **p, size_t *len)
{
    REQ_OR(SL_DECLINED);
    const char *sni = r->c != NULL ? sl_conn_sni(r->c) : NULL;
    if (sni == NULL)
        return SL_DECLINED;
    return out_str((sl_str_t){sni, strlen(sni)}, p, len);
}

int sl_ffi_req_scheme_is_https(void)
{
    REQ_OR(0);
    return r->c->ssl;
}

int sl_ffi_req_http_minor(void)
{
    REQ_OR(-1);
    return r->h.minor_version;
}

int sl_ffi_req_server_port(void)
{
    REQ_OR(-1);
    return (int)r->c->local_port;
}

int sl_ffi_req_client_ip(const char **p, size_t *len)
{
    REQ_OR(SL_DECLINED);
    const char *ip = r->client_ip[0] ? r->client_ip : r->c->peer_ip;
    return out_str((sl_str_t){ip, strlen(ip)}, p, len);
}

int sl_ffi_req_peer_ip(const char **p, size_t *len)
{
    REQ_OR(SL_DECLINED);
    return out_str((sl_str_t){r->c->peer_ip, strlen(r->c->peer_ip)}, p, len);
}

int sl_ffi_req_peer_port(void)
{
    REQ_OR(-1);
    return (int)r->c->peer_port;
}

int sl_ffi_req_peer_trusted(void)
{
    REQ_OR(0);
    return r->c->trusted;
}

double sl_ffi_req_start_time(void)
{
    REQ_OR(0);
    return (double)r->start_us / 1e6;
}

int sl_ffi_req_header_count(void)
{
    REQ_OR(-1);
    return (int)r->h.num_headers;
}

int sl_ffi_req_header(int i, const char **name, size_t *name_len, const char **value,
                      size_t *value_len)
{
    REQ_OR(SL_DECLINED);
    if (i < 0 || (size_t)i >= r->h.num_headers)
        return SL_DECLINED;
    out_str(r->headers[i].name, name, name_len);
    return out_str(r->headers[i].value, value, value_len);
}

int sl_ffi_req_route_index(void)
{
    REQ_OR(-1);
    return r->route ? (int)r->match.route_index : -1;
}

unsigned long sl_ffi_req_generation(void)
{
    sl_req_t *r = sl_lua_current_request();
    if (r != NULL && r->decl != NULL)
        return r->decl->generation;
    sl_worker_t *w = sl_lua_worker();
    return w != NULL && w->decl != NULL ? w->decl->generation : 0;
}

void sl_ffi_server_stats(uint64_t out[7])
{
    sl_worker_t *w = sl_lua_worker();
    if (w != NULL)
        sl_server_publish_stats(w);
    uint64_t sum[SL_STAT_COUNT];
    sl_stats_sum(sum);
    for (int i = 0; i < 7 && i < SL_STAT_COUNT; i++)
        out[i] = sum[i];
}

int sl_ffi_req_capture_count(void)
{
    REQ_OR(0);
    return r->route ? (int)r->match.ncaptures : 0;
}

int sl_ffi_req_capture(int i, const char **name, size_t *name_len, const char **value,
                       size_t *value_len)
{
    REQ_OR(SL_DECLINED);
    if (r->route == NULL || i < 0 || (size_t)i >= r->match.ncaptures)
        return SL_DECLINED;
    out_str(r->match.captures[i].name, name, name_len);
    if (r->match.captures[i].value.data == NULL) {
        *value = NULL;
        *value_len = 0;
        return SL_OK;
    }
    return out_str(r->match.captures[i].value, value, value_len);
}

int sl_ffi_up_header(const char *name, size_t name_len, const char *value, size_t value_len,
                     int mode)
{
    REQ_OR(SL_DECLINED);
    sl_str_t n = {name, name_len}, v = {value, value_len};
    if (mode == SL_FFI_HDR_ADD) {
        sl_hdr_list_add(&r->up_set, n, v);
        return SL_OK;
    }
    /* set and clear drop the client's values for the name */
    if (sl_hdr_list_find(&r->up_removed, n) == NULL)
        sl_hdr_list_add(&r->up_removed, n, SL_NULL_STR);
    sl_hdr_list_remove(&r->up_set, n);
    if (mode == SL_FFI_HDR_SET)
        sl_hdr_list_add(&r->up_set, n, v);
    return SL_OK;
}

int sl_ffi_up_set_path(const char *p, size_t len)
{
    REQ_OR(SL_DECLINED);
    free(r->up_path);
    r->up_path = dup_mem(p, len);
    return SL_OK;
}

int sl_ffi_up_set_query(const char *p, size_t len)
{
    REQ_OR(SL_DECLINED);
    free(r->up_query);
    r->up_query = dup_mem(p, len);
    r->up_query_set = 1;
    return SL_OK;
}

int sl_ffi_up_set_method(const char *p, size_t len)
{
    REQ_OR(SL_DECLINED);
    free(r->up_method);
    r->up_method = dup_mem(p, len);
    return SL_OK;
}

int sl_ffi_up_set_timeouts(int connect_ms, int write_ms, int read_ms)
{
    REQ_OR(SL_DECLINED);
    r->up_connect_timeout = connect_ms;
    r->up_write_timeout = write_ms;
    r->up_read_timeout = read_ms;
    return SL_OK;
}

int sl_ffi_up_set_retries(int retries)
{
    REQ_OR(SL_DECLINED);
    r->up_retries = retries;
    return SL_OK;
}

int sl_ffi_up_set_body(const char *body, size_t len)
{
    REQ_OR(SL_DECLINED);
    if (r->proxy != NULL)
        return SL_ERROR; /* already on its way upstream */
    free(r->new_body);
    r->new_body = dup_mem(body, len);
    r->new_body_len = len;
    r->new_body_set = 1;
    return SL_OK;
}

int sl_ffi_resp_status(void)
{
    REQ_OR(-1);
    return r->status;
}

int sl_ffi_resp_set_status(int status)
{
    REQ_OR(SL_DECLINED);
    if (r->response_started)
        return SL_ERROR;
    r->status = status;
    return SL_OK;
}

/* Before the response head exists (access), reads and edits go to the pending edits that
 * are applied to whatever head comes (sl_req_apply_resp_pre). */
static sl_hdr_list_t *resp_list(sl_req_t *r)
{
    return r->resp_headers_ready ? &r->resp_headers : &r->resp_pre_set;
}

int sl_ffi_resp_header_count(void)
{
    REQ_OR(-1);
    return (int)resp_list(r)->n;
}

int sl_ffi_resp_header(int i, const char **name, size_t *name_len, const char **value,
                       size_t *value_len)
{
    REQ_OR(SL_DECLINED);
    sl_hdr_list_t *l = resp_list(r);
    if (i < 0 || (size_t)i >= l->n)
        return SL_DECLINED;
    sl_hdr_t *h = &l->items[i];
    *name = h->name;
    *name_len = h->name_len;
    *value = h->value;
    *value_len = h->value_len;
    return SL_OK;
}

int sl_ffi_resp_header_edit(const char *name, size_t name_len, const char *value,
                            size_t value_len, int mode)
{
    REQ_OR(SL_DECLINED);
    if (r->response_started)
        return SL_ERROR;
    sl_str_t n = {name, name_len}, v = {value, value_len};
    if (r->resp_headers_ready) {
        if (mode == SL_FFI_HDR_ADD)
            sl_hdr_list_add(&r->resp_headers, n, v);
        else if (mode == SL_FFI_HDR_SET)
            sl_hdr_list_set(&r->resp_headers, n, v);
        else
            sl_hdr_list_remove(&r->resp_headers, n);
        return SL_OK;
    }
    if (mode != SL_FFI_HDR_ADD) {
        if (sl_hdr_list_find(&r->resp_pre_removed, n) == NULL)
            sl_hdr_list_add(&r->resp_pre_removed, n, SL_NULL_STR);
        sl_hdr_list_remove(&r->resp_pre_set, n);
    }
    if (mode != SL_FFI_HDR_CLEAR)
        sl_hdr_list_add(&r->resp_pre_set, n, v);
    return SL_OK;
}

int sl_ffi_resp_exit(int status, const char *body, size_t body_len)
{
    REQ_OR(SL_DECLINED);
    if (r->response_started)
        return SL_ERROR;
    r->status = status;
    free(r->exit_body);
    r->exit_body = body ? dup_mem(body, body_len) : NULL;
    r->exit_body_len = body ? body_len : 0;
    r->lua_flags |= SL_LUA_EXIT;
    return SL_OK;
}

/* 0 = service (proxied), 1 = exit (kong.response.exit), 2 = error (Sluice's own answer) */
int sl_ffi_resp_source(void)
{
    REQ_OR(-1);
    if (r->lua_flags & SL_LUA_EXIT)
        return 1;
    return r->from_upstream ? 0 : 2;
}

double sl_ffi_now(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + (double)(tv.tv_usec / 1000) / 1000.0;
}

int sl_ffi_ip_is_trusted(const char *ip, size_t len)
{
    sl_worker_t *w = sl_lua_worker();
    if (w == NULL)
        return 0;
    return sl_cidr_match_text(w->trusted, w->ntrusted, ip, len);
}
