/*
 * sl_core.h: what every Sluice C unit shares.
 *
 * Return codes (the same numbers in C, in the FFI and in Lua), the borrowed string view
 * sl_str_t and the header pair sl_header_t. Nothing here allocates.
 */
#ifndef SL_CORE_H
#define SL_CORE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define SL_OK 0
#define SL_ERROR -1
#define SL_AGAIN -2
#define SL_BUSY -3
#define SL_DONE -4
#define SL_DECLINED -5

#define SLUICE_VERSION "0.1.0"
#define SLUICE_VERSION_NUM 100 /* major * 10000 + minor * 100 + patch */

/* A view of bytes owned by someone else; not NUL-terminated unless said so. */
typedef struct {
    const char *data;
    size_t len;
} sl_str_t;

#define SL_STR(lit) ((sl_str_t){(lit), sizeof(lit) - 1})
#define SL_NULL_STR ((sl_str_t){NULL, 0})

/* One header field as it appeared on the wire; both views point into the parse buffer. */
typedef struct {
    sl_str_t name;
    sl_str_t value;
} sl_header_t;

static inline int sl_str_eq(sl_str_t a, sl_str_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.data, b.data, a.len) == 0);
}

/* ASCII case-insensitive equality; b is usually a lower-case literal. */
static inline int sl_str_case_eq(sl_str_t a, sl_str_t b)
{
    if (a.len != b.len)
        return 0;
    for (size_t i = 0; i < a.len; i++) {
        unsigned char x = (unsigned char)a.data[i], y = (unsigned char)b.data[i];
        if (x >= 'A' && x <= 'Z')
            x += 32;
        if (y >= 'A' && y <= 'Z')
            y += 32;
        if (x != y)
            return 0;
    }
    return 1;
}

#define SL_UNUSED(x) ((void)(x))
#define SL_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif
