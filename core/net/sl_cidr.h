/*
 * sl_cidr.h: address ranges for trusted_ips.
 *
 * Parses "10.0.0.0/8, 127.0.0.1, ::1, 0.0.0.0/0, ::/0" (and "unix:", which trusts unix
 * socket peers) into a caller-owned array, and matches textual or socket addresses
 * against it. No allocation when matching.
 */
#ifndef SL_CIDR_H
#define SL_CIDR_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int family;           /* AF_INET, AF_INET6, or AF_UNIX for "unix:" */
    uint8_t addr[16];
    unsigned bits;        /* prefix length */
} sl_cidr_t;

/* Returns SL_OK with *out (free() it) and *n, or SL_ERROR with a message naming the item. */
int sl_cidr_parse_list(const char *list, sl_cidr_t **out, size_t *n, char *err, size_t errlen);

/* Does the textual address ip (IPv4 or IPv6, no port) fall in one of the ranges? */
int sl_cidr_match_text(const sl_cidr_t *list, size_t n, const char *ip, size_t len);

#endif
