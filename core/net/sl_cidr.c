#include "net/sl_cidr.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "sl_core.h"

static int parse_one(const char *s, size_t len, sl_cidr_t *c)
{
    char buf[64];
    if (len == 0 || len >= sizeof(buf))
        return SL_ERROR;
    memcpy(buf, s, len);
    buf[len] = '\0';
    if (strcmp(buf, "unix:") == 0) {
        memset(c, 0, sizeof(*c));
        c->family = AF_UNIX;
        return SL_OK;
    }
    char *slash = strchr(buf, '/');
    long bits = -1;
    if (slash != NULL) {
        *slash = '\0';
        char *end;
        bits = strtol(slash + 1, &end, 10);
        if (end == slash + 1 || *end != '\0' || bits < 0)
            return SL_ERROR;
    }
    memset(c, 0, sizeof(*c));
    if (inet_pton(AF_INET, buf, c->addr) == 1) {
        c->family = AF_INET;
        if (bits > 32)
            return SL_ERROR;
        c->bits = bits < 0 ? 32 : (unsigned)bits;
    } else if (inet_pton(AF_INET6, buf, c->addr) == 1) {
        c->family = AF_INET6;
        if (bits > 128)
            return SL_ERROR;
        c->bits = bits < 0 ? 128 : (unsigned)bits;
    } else {
        return SL_ERROR;
    }
    return SL_OK;
}

int sl_cidr_parse_list(const char *list, sl_cidr_t **out, size_t *n, char *err, size_t errlen)
{
    *out = NULL;
    *n = 0;
    if (list == NULL)
        return SL_OK;
    size_t cap = 1;
    for (const char *p = list; *p; p++)
        cap += *p == ',';
    sl_cidr_t *arr = calloc(cap, sizeof(*arr));
    if (arr == NULL)
        abort();
    const char *p = list;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *start = p;
        while (*p && *p != ',')
            p++;
        const char *end = p;
        while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
        if (end == start)
            continue;
        if (*n >= cap || parse_one(start, (size_t)(end - start), &arr[*n]) != SL_OK) {
            snprintf(err, errlen, "trusted_ips: invalid address or CIDR '%.*s'",
                     (int)(end - start), start);
            free(arr);
            *n = 0;
            return SL_ERROR;
        }
        (*n)++;
    }
    *out = arr;
    return SL_OK;
}

static int in_range(const sl_cidr_t *c, const uint8_t *addr)
{
    unsigned full = c->bits / 8, rest = c->bits % 8;
    if (memcmp(c->addr, addr, full) != 0)
        return 0;
    if (rest == 0)
        return 1;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (c->addr[full] & mask) == (addr[full] & mask);
}

int sl_cidr_match_text(const sl_cidr_t *list, size_t n, const char *ip, size_t len)
{
    char buf[64];
    if (n == 0 || len == 0 || len >= sizeof(buf))
        return 0;
    memcpy(buf, ip, len);
    buf[len] = '\0';
    if (strcmp(buf, "unix:") == 0) {
        for (size_t i = 0; i < n; i++) {
            if (list[i].family == AF_UNIX)
                return 1;
        }
        return 0;
    }
    uint8_t a[16];
    int fam;
    if (inet_pton(AF_INET, buf, a) == 1)
        fam = AF_INET;
    else if (inet_pton(AF_INET6, buf, a) == 1)
        fam = AF_INET6;
    else
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (list[i].family == fam && in_range(&list[i], a))
            return 1;
        /* an IPv4-mapped IPv6 peer (::ffff:a.b.c.d) matches IPv4 ranges */
        if (fam == AF_INET6 && list[i].family == AF_INET &&
            memcmp(a, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) == 0 && in_range(&list[i], a + 12))
            return 1;
    }
    return 0;
}
