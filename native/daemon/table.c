/* table.c -- see table.h. Linear probing, power-of-two capacity, load kept
 * between 1/8 and 3/4 (never below the minimum capacity). */
#include "table.h"

#include <stdlib.h>
#include <string.h>

#define MIN_CAP 64

static uint64_t hash(const uint8_t *key, size_t len)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (size_t i = 0; i < len; i++) {
        h ^= key[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static size_t home(const spd_table *t, const uint8_t *key, size_t len)
{
    return (size_t)hash(key, len) & (t->cap - 1);
}

static spd_slot *find(const spd_table *t, const uint8_t *key, size_t len)
{
    if (!t->cap)
        return NULL;
    size_t mask = t->cap - 1;
    for (size_t i = home(t, key, len);; i = (i + 1) & mask) {
        spd_slot *s = &t->slots[i];
        if (!s->key)
            return NULL;
        if (s->len == len && memcmp(s->key, key, len) == 0)
            return s;
    }
}

void *spd_table_get(const spd_table *t, const uint8_t *key, size_t len)
{
    spd_slot *s = find(t, key, len);
    return s ? s->value : NULL;
}

/* Places an entry known to be absent; the table has room. */
static void place(spd_table *t, const uint8_t *key, size_t len, void *value)
{
    size_t mask = t->cap - 1, i = home(t, key, len);
    while (t->slots[i].key)
        i = (i + 1) & mask;
    t->slots[i] = (spd_slot){key, len, value};
    t->used++;
}

static int resize(spd_table *t, size_t cap)
{
    spd_slot *old = t->slots, *fresh = calloc(cap, sizeof *fresh);
    size_t old_cap = t->cap;
    if (!fresh)
        return -1;
    t->slots = fresh;
    t->cap = cap;
    t->used = 0;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].key)
            place(t, old[i].key, old[i].len, old[i].value);
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
    if ((t->used + 1) * 4 >= t->cap * 3 && resize(t, t->cap ? t->cap * 2 : MIN_CAP) != 0)
        return -1;
    place(t, key, len, value);
    return 0;
}

/* Backward-shift deletion: entries after the hole that may live in it move
 * back, so that every probe run stays unbroken without tombstones. */
void spd_table_del(spd_table *t, const uint8_t *key, size_t len)
{
    spd_slot *s = find(t, key, len);
    if (!s)
        return;
    size_t mask = t->cap - 1, hole = (size_t)(s - t->slots);
    for (size_t j = (hole + 1) & mask; t->slots[j].key; j = (j + 1) & mask) {
        size_t h = home(t, t->slots[j].key, t->slots[j].len);
        /* The entry at j may move to the hole unless its home lies
         * cyclically after the hole and at or before j. */
        if (((j - h) & mask) >= ((j - hole) & mask)) {
            t->slots[hole] = t->slots[j];
            hole = j;
        }
    }
    t->slots[hole] = (spd_slot){NULL, 0, NULL};
    t->used--;
    if (t->cap > MIN_CAP && t->used * 8 < t->cap)
        resize(t, t->cap / 2); /* on failure the larger table stays valid */
}

void spd_table_free(spd_table *t)
{
    free(t->slots);
    t->slots = NULL;
    t->cap = t->used = 0;
}
