/*
 * sl_hdr_list.h: an ordered list of owned header fields.
 *
 * Used where headers are edited before they are written: the response head that header_filter
 * plugins may change, the upstream request edits from kong.service.request. Every entry owns
 * one heap block holding its name and value (NUL-terminated, for convenience); the list owns
 * its entries. Names compare case-insensitively.
 */
#ifndef SL_HDR_LIST_H
#define SL_HDR_LIST_H

#include "sl_core.h"

typedef struct {
    char *name;       /* points into the entry's block */
    size_t name_len;
    char *value;
    size_t value_len;
} sl_hdr_t;

typedef struct {
    sl_hdr_t *items;
    size_t n, cap;
} sl_hdr_list_t;

void sl_hdr_list_init(sl_hdr_list_t *l);
void sl_hdr_list_dispose(sl_hdr_list_t *l);
void sl_hdr_list_clear(sl_hdr_list_t *l);
/* Appends a copy of name and value. */
void sl_hdr_list_add(sl_hdr_list_t *l, sl_str_t name, sl_str_t value);
/* Removes every entry named name; returns how many. */
size_t sl_hdr_list_remove(sl_hdr_list_t *l, sl_str_t name);
/* Removes every entry named name, then appends one. */
void sl_hdr_list_set(sl_hdr_list_t *l, sl_str_t name, sl_str_t value);
/* The first entry named name, or NULL. */
const sl_hdr_t *sl_hdr_list_find(const sl_hdr_list_t *l, sl_str_t name);

#endif
