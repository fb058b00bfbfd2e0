#include "http/sl_hdr_list.h"

#include <stdlib.h>
#include <string.h>

void sl_hdr_list_init(sl_hdr_list_t *l)
{
    l->items = NULL;
    l->n = 0;
    l->cap = 0;
}

void sl_hdr_list_clear(sl_hdr_list_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->items[i].name);
    l->n = 0;
}

void sl_hdr_list_dispose(sl_hdr_list_t *l)
{
    sl_hdr_list_clear(l);
    free(l->items);
    sl_hdr_list_init(l);
}

void sl_hdr_list_add(sl_hdr_list_t *l, sl_str_t name, sl_str_t value)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        sl_hdr_t *items = realloc(l->items, cap * sizeof(*items));
        if (items == NULL)
            abort();
        l->items = items;
        l->cap = cap;
    }
    char *block = malloc(name.len + value.len + 2);
    if (block == NULL)
        abort();
    if (name.len)
        memcpy(block, name.data, name.len);
    block[name.len] = '\0';
    if (value.len)
        memcpy(block + name.len + 1, value.data, value.len);
    block[name.len + 1 + value.len] = '\0';
    sl_hdr_t *h = &l->items[l->n++];
    h->name = block;
    h->name_len = name.len;
    h->value = block + name.len + 1;
    h->value_len = value.len;
}

size_t sl_hdr_list_remove(sl_hdr_list_t *l, sl_str_t name)
{
    size_t kept = 0, removed = 0;
    for (size_t i = 0; i < l->n; i++) {
        sl_hdr_t *h = &l->items[i];
        if (sl_str_case_eq((sl_str_t){h->name, h->name_len}, name)) {
            free(h->name);
            removed++;
            continue;
        }
        l->items[kept++] = *h;
    }
    l->n = kept;
    return removed;
}

void sl_hdr_list_set(sl_hdr_list_t *l, sl_str_t name, sl_str_t value)
{
    sl_hdr_list_remove(l, name);
    sl_hdr_list_add(l, name, value);
}

const sl_hdr_t *sl_hdr_list_find(const sl_hdr_list_t *l, sl_str_t name)
{
    for (size_t i = 0; i < l->n; i++) {
        if (sl_str_case_eq((sl_str_t){l->items[i].name, l->items[i].name_len}, name))
            return &l->items[i];
    }
    return NULL;
}
