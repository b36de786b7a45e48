/* table.c -- see table.h. Linear probing, power-of-two capacity. */
#include "table.h"

#include <stdlib.h>
#include <string.h>

static uint64_t hash(const uint8_t *key, size_t len)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (size_t i = 0; i < len; i++) {
        h ^= key[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static spd_slot *find(const spd_table *t, const uint8_t *key, size_t len)
{
    if (!t->cap)
        return NULL;
    size_t mask = t->cap - 1;
    for (size_t i = hash(key, len) & mask;; i = (i + 1) & mask) {
        spd_slot *s = &t->slots[i];
        if (!s->key && !s->tomb)
            return NULL;
        if (s->key && s->len == len && memcmp(s->key, key, len) == 0)
            return s;
    }
}

void *spd_table_get(const spd_table *t, const uint8_t *key, size_t len)
{
    spd_slot *s = find(t, key, len);
    return s ? s->value : NULL;
}

static int grow(spd_table *t)
{
    size_t cap = t->cap ? t->cap * 2 : 64;
    spd_slot *old = t->slots, *fresh = calloc(cap, sizeof *fresh);
    size_t old_cap = t->cap;
    if (!fresh)
        return -1;
    t->slots = fresh;
    t->cap = cap;
    t->used = 0;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].key)
            spd_table_put(t, old[i].key, old[i].len, old[i].value);
    free(old);
    return 0;
}

int spd_table_put(spd_table *t, const uint8_t *key, size_t len, void *value)
{
    spd_slot *s = find(t, key, len);
    if (s) {
        s->key = key;
        s->value = value;
        return 0;
    }
    if ((t->used + 1) * 4 >= t->cap * 3 && grow(t) != 0)
        return -1;
    size_t mask = t->cap - 1;
    for (size_t i = hash(key, len) & mask;; i = (i + 1) & mask) {
        s = &t->slots[i];
        if (!s->key) {
            if (!s->tomb)
                t->used++;
            s->key = key;
            s->len = len;
            s->value = value;
            s->tomb = 0;
            return 0;
        }
    }
}

void spd_table_del(spd_table *t, const uint8_t *key, size_t len)
{
    spd_slot *s = find(t, key, len);
    if (s) {
        s->key = NULL;
        s->value = NULL;
        s->tomb = 1;
    }
}

void spd_table_free(spd_table *t)
{
    free(t->slots);
    t->slots = NULL;
    t->cap = t->used = 0;
}
