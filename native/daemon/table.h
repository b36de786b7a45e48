/* table.h -- a small open-addressing hash map from byte strings to pointers
 * (the daemon's private-name and group tables). Keys are owned by values.
 * Deletion leaves no tombstones and the table shrinks as entries go, so its
 * size follows the live entries, not how many names were ever used. */
#ifndef SPREAD_CLIENT_DAEMON_TABLE_H
#define SPREAD_CLIENT_DAEMON_TABLE_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    const uint8_t *key;  /* points into the value; NULL = empty slot */
    size_t len;
    void *value;
} spd_slot;

typedef struct {
    spd_slot *slots;
    size_t cap, used;    /* used = live entries */
} spd_table;

void *spd_table_get(const spd_table *t, const uint8_t *key, size_t len);
/* Inserts or replaces; the key must stay valid while present. 0 or -1 (memory). */
int spd_table_put(spd_table *t, const uint8_t *key, size_t len, void *value);
void spd_table_del(spd_table *t, const uint8_t *key, size_t len);
void spd_table_free(spd_table *t);

#endif
