/* wire.c -- see wire.h. No I/O, no allocation. */
#include "wire.h"

#include <string.h>

/* Byte order from the marker bits of a raw 32-bit field: bit 7 and bit 31
 * are either both set (LE sender) or both clear (BE sender). The pattern
 * reads the same in both orders, so bytes 0 and 3 decide. */
static int marker_order(const uint8_t raw[4], wire_order *order)
{
    int lo = (raw[0] & 0x80) != 0, hi = (raw[3] & 0x80) != 0;
    if (lo != hi)
        return -1;
    *order = lo ? WIRE_LE : WIRE_BE;
    return 0;
}

int wire_decode_header(const uint8_t in[WIRE_HEADER_SIZE], wire_header *h)
{
    if (marker_order(in, &h->order) != 0)
        return -1;
    h->type = wire_get_u32(in, h->order) & ~WIRE_MARKER;
    memcpy(h->sender, in + 4, WIRE_SLOT);
    h->num_groups = wire_get_i32(in + 36, h->order);
    memcpy(h->hint, in + 40, 4);
    h->data_len = wire_get_i32(in + 44, h->order);
    return 0;
}

int wire_request_groups_ok(const wire_header *h)
{
    return h->num_groups >= 0 && h->num_groups <= WIRE_MAX_GROUPS;
}

int wire_request_size_ok(const wire_header *h)
{
    return h->data_len >= 0 && h->data_len <= WIRE_MAX_BODY &&
           (long long)h->data_len + (long long)WIRE_SLOT * h->num_groups <= WIRE_DAEMON_MAX_TOTAL;
}

void wire_encode_header(uint8_t out[WIRE_HEADER_SIZE], uint32_t type,
                        const uint8_t sender[WIRE_SLOT], int32_t num_groups, const uint8_t hint[4],
                        int32_t data_len)
{
    wire_put_u32(out, (type & ~WIRE_MARKER) | WIRE_MARKER, WIRE_LE);
    memcpy(out + 4, sender, WIRE_SLOT);
    wire_put_u32(out + 36, (uint32_t)num_groups, WIRE_LE);
    memcpy(out + 40, hint, 4);
    wire_put_u32(out + 44, (uint32_t)data_len, WIRE_LE);
}

void wire_make_hint(uint8_t hint[4], int16_t mess_type)
{
    uint32_t m = (uint32_t)(uint16_t)mess_type;
    wire_put_u32(hint, ((m << 8) & 0x00FFFF00u) | WIRE_MARKER, WIRE_LE);
}

wire_order wire_hint_order(const uint8_t hint[4])
{
    wire_order order;
    /* A hint with mixed marker bits has no order; read it as little-endian. */
    if (marker_order(hint, &order) != 0)
        return WIRE_LE;
    return order;
}

int16_t wire_hint_mess_type(const uint8_t hint[4])
{
    uint32_t v = wire_get_u32(hint, wire_hint_order(hint)) & ~WIRE_MARKER;
    uint16_t m = (uint16_t)((v >> 8) & 0xFFFFu);
    int16_t out;
    memcpy(&out, &m, sizeof out); /* sign extension without UB */
    return out;
}

int wire_hint_valid(const uint8_t hint[4])
{
    wire_order order;
    if (marker_order(hint, &order) != 0)
        return 0;
    return (wire_get_u32(hint, order) & ~WIRE_HINT_ALLOWED) == 0;
}

void wire_put_slot(uint8_t slot[WIRE_SLOT], const char *name, size_t len)
{
    if (len > WIRE_MAX_NAME)
        len = WIRE_MAX_NAME;
    memset(slot, 0, WIRE_SLOT);
    if (len)
        memcpy(slot, name, len);
}

size_t wire_slot_len(const uint8_t slot[WIRE_SLOT])
{
    const uint8_t *nul = memchr(slot, 0, WIRE_SLOT);
    return nul ? (size_t)(nul - slot) : WIRE_SLOT;
}

int wire_name_char_ok(uint8_t c)
{
    return c >= 0x24 && c <= 0x7E;
}

static int chars_ok(const uint8_t *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!wire_name_char_ok(s[i]))
            return 0;
    return 1;
}

int wire_group_name_ok(const char *name, size_t len)
{
    return len >= 1 && len <= WIRE_MAX_NAME && chars_ok((const uint8_t *)name, len);
}

int wire_private_name_ok(const char *name, size_t len)
{
    return len >= 1 && len <= WIRE_MAX_PRIVATE_NAME && chars_ok((const uint8_t *)name, len);
}

int wire_split_private_group(const uint8_t *s, size_t len, size_t *name_len, const uint8_t **daemon,
                             size_t *daemon_len)
{
    if (len < 4 || s[0] != '#')
        return -1;
    const uint8_t *sep = memchr(s + 1, '#', len - 1);
    if (!sep)
        return -1;
    size_t n = (size_t)(sep - (s + 1));
    size_t d = len - n - 2;
    if (n < 1 || n > WIRE_MAX_PRIVATE_NAME || d < 1 || d > WIRE_MAX_PROC_NAME)
        return -1;
    if (!chars_ok(s + 1, n) || !chars_ok(sep + 1, d))
        return -1;
    *name_len = n;
    *daemon = sep + 1;
    *daemon_len = d;
    return 0;
}

int wire_version_value(int major, int minor, int patch)
{
    return major * 10000 + minor * 100 + patch;
}

int wire_version_has_patch(int major, int minor)
{
    return wire_version_value(major, minor, 0) > WIRE_PATCH_THRESHOLD;
}

int wire_is_reject(int code)
{
    return code >= WIRE_REJECT_FIRST && code <= WIRE_REJECT_LAST;
}

size_t wire_encode_connect(uint8_t out[WIRE_CONNECT_MAX], int membership, int priority,
                           const char *name, size_t name_len)
{
    if (priority < 0)
        priority = 0;
    if (priority > 1)
        priority = 1;
    if (!name)
        name_len = 0;
    if (name_len > WIRE_MAX_PRIVATE_NAME)
        name_len = WIRE_MAX_PRIVATE_NAME;
    out[0] = WIRE_VERSION_MAJOR;
    out[1] = WIRE_VERSION_MINOR;
    out[2] = WIRE_VERSION_PATCH;
    out[3] = (uint8_t)((membership ? 1 : 0) | (priority << 4));
    out[4] = (uint8_t)name_len;
    if (name_len)
        memcpy(out + 5, name, name_len);
    return 5 + name_len;
}

int wire_decode_connect(const uint8_t *in, size_t len, int final, wire_connect *out)
{
    memset(out, 0, sizeof *out);
    out->version = -1;
    if (len < 2 && !final)
        return WIRE_UNIT_MORE;
    /* Cut short with `final`: missing bytes read as 0, as the reference's. */
    int major = len > 0 ? in[0] : 0, minor = len > 1 ? in[1] : 0, patch = 0;
    size_t at = len < 2 ? len : 2;
    if (wire_version_has_patch(major, minor)) {
        if (at == len && !final)
            return WIRE_UNIT_MORE;
        patch = at < len ? in[at++] : 0;
    }
    out->version = wire_version_value(major, minor, patch);
    out->defect = WIRE_CONNECT_OLD_VERSION;
    if (out->version < WIRE_MIN_VERSION)
        return WIRE_UNIT_BAD;
    if (len - at < 2 && !final)
        return WIRE_UNIT_MORE;
    out->defect = len - at == 0 ? WIRE_CONNECT_NO_FLAGS : WIRE_CONNECT_NO_NAME_LENGTH;
    if (len - at < 2)
        return WIRE_UNIT_BAD;
    int flags = in[at], name_len = (int8_t)in[at + 1];
    at += 2;
    out->membership = flags & 1;
    out->priority = (flags >> 4) & 0xF;
    out->defect = WIRE_CONNECT_BAD_NAME_LENGTH;
    if (name_len < 0 || name_len > WIRE_MAX_PRIVATE_NAME)
        return WIRE_UNIT_BAD;
    if (name_len > 0) {
        size_t avail = len - at;
        if (avail < (size_t)name_len && !final)
            return WIRE_UNIT_MORE;
        size_t got = avail > WIRE_MAX_PRIVATE_NAME ? WIRE_MAX_PRIVATE_NAME : avail;
        out->defect = WIRE_CONNECT_BAD_NAME;
        if (got != (size_t)name_len || !wire_private_name_ok((const char *)in + at, got))
            return WIRE_UNIT_BAD;
        out->name = in + at;
        out->name_len = got;
        at += got;
    }
    out->defect = 0;
    out->used = at;
    return WIRE_UNIT_OK;
}

size_t wire_encode_auth_list(uint8_t out[WIRE_AUTH_LIST_UNIT_MAX], const char *const names[], int n)
{
    size_t at = 1;
    for (int i = 0; i < n; i++) {
        size_t len = strlen(names[i]);
        /* The name and its space after the at - 1 list bytes so far. */
        if (len + 1 > WIRE_AUTH_LIST_MAX - (at - 1) || len == 0 ||
            !wire_auth_list_plausible((const uint8_t *)names[i], len) || memchr(names[i], ' ', len))
            return 0;
        memcpy(out + at, names[i], len);
        at += len;
        out[at++] = ' ';
    }
    out[0] = (uint8_t)(at - 1);
    return at;
}

int wire_auth_list_plausible(const uint8_t *list, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (list[i] < 0x20 || list[i] > 0x7e)
            return 0;
    return 1;
}

int wire_decode_auth_list(const uint8_t *in, size_t len, wire_auth_list *out)
{
    memset(out, 0, sizeof *out);
    out->need = 1;
    if (len < 1)
        return WIRE_UNIT_MORE;
    int first = (int8_t)in[0];
    if (first < 0) {
        out->code = first;
        return wire_is_reject(first) ? WIRE_UNIT_REJECT : WIRE_UNIT_BAD;
    }
    if (first > WIRE_AUTH_LIST_MAX)
        return WIRE_UNIT_BAD;
    out->need = 1 + (size_t)first;
    size_t have = len < out->need ? len : out->need;
    if (!wire_auth_list_plausible(in + 1, have - 1))
        return WIRE_UNIT_BAD;
    if (len < out->need)
        return WIRE_UNIT_MORE;
    out->list = in + 1;
    out->len = (size_t)first;
    return WIRE_UNIT_OK;
}

void wire_encode_auth_choice(uint8_t out[WIRE_AUTH_CHOICE], const char *const names[], int n)
{
    memset(out, 0, WIRE_AUTH_CHOICE);
    for (int i = 0; i < n && i < WIRE_AUTH_METHODS; i++) {
        size_t len = strnlen(names[i], WIRE_AUTH_NAME - 1);
        memcpy(out + i * WIRE_AUTH_NAME, names[i], len);
    }
}

int wire_decode_auth_choice(const uint8_t *in, size_t len, wire_auth_choice *out)
{
    memset(out, 0, sizeof *out);
    if (len < WIRE_AUTH_CHOICE)
        return WIRE_UNIT_MORE;
    for (int i = 0; i < WIRE_AUTH_METHODS; i++) {
        const uint8_t *slot = in + (size_t)i * WIRE_AUTH_NAME;
        if (slot[0] == '\0')
            break;
        const uint8_t *nul = memchr(slot, 0, WIRE_AUTH_NAME);
        out->names[i] = slot;
        out->lens[i] = nul ? (size_t)(nul - slot) : WIRE_AUTH_NAME;
        out->n++;
    }
    return WIRE_UNIT_OK;
}

int wire_auth_list_has(const uint8_t *list, size_t len, const char *name)
{
    size_t want = strlen(name), i = 0;
    while (i < len) {
        size_t j = i;
        while (j < len && list[j] != ' ')
            j++;
        if (j - i == want && want > 0 && memcmp(list + i, name, want) == 0)
            return 1;
        i = j + 1;
    }
    return 0;
}

size_t wire_encode_accept(uint8_t out[WIRE_ACCEPT_MAX], int with_patch,
                          const uint8_t *private_group, size_t len)
{
    size_t n = 0;
    if (len > WIRE_MAX_NAME)
        len = WIRE_MAX_NAME;
    out[n++] = WIRE_ACCEPT;
    out[n++] = WIRE_VERSION_MAJOR;
    out[n++] = WIRE_VERSION_MINOR;
    if (with_patch)
        out[n++] = WIRE_VERSION_PATCH;
    out[n++] = (uint8_t)len;
    memcpy(out + n, private_group, len);
    return n + len;
}

int wire_decode_accept(const uint8_t *in, size_t len, wire_accept *out)
{
    memset(out, 0, sizeof *out);
    out->version = -1;
    out->need = 1;
    if (len < 1)
        return WIRE_UNIT_MORE;
    if (in[0] != WIRE_ACCEPT) {
        out->code = (int8_t)in[0];
        return wire_is_reject(out->code) ? WIRE_UNIT_REJECT : WIRE_UNIT_BAD;
    }
    out->need = 1 + 3;
    if (len < out->need)
        return WIRE_UNIT_MORE;
    out->version = wire_version_value(in[1], in[2], in[3]);
    out->need = 1 + 3 + 1;
    if (len < out->need)
        return WIRE_UNIT_MORE;
    size_t group_len = in[4];
    if (group_len < 2 || group_len > WIRE_MAX_NAME)
        return WIRE_UNIT_BAD;
    out->need += group_len;
    if (len < out->need)
        return WIRE_UNIT_MORE;
    if (in[5] != '#')
        return WIRE_UNIT_BAD; /* a private group is "#name#daemon" */
    out->group = in + 5;
    out->group_len = group_len;
    return WIRE_UNIT_OK;
}

void wire_encode_memb_body(uint8_t out[WIRE_MEMB_BODY_SIZE], const int32_t gid[3],
                           const uint8_t member[WIRE_SLOT])
{
    for (int i = 0; i < 3; i++)
        wire_put_u32(out + WIRE_MEMB_GID_AT + 4 * i, (uint32_t)gid[i], WIRE_LE);
    wire_put_u32(out + WIRE_MEMB_NUM_SETS_AT, 1, WIRE_LE); /* one vs-set */
    wire_put_u32(out + WIRE_MEMB_LOCAL_AT, 0, WIRE_LE);    /* ours is the first */
    wire_put_u32(out + WIRE_MEMB_SETS_AT, 1, WIRE_LE);     /* holding one member */
    memcpy(out + WIRE_MEMB_CHANGED_AT, member, WIRE_SLOT);
}

int wire_memb_body_valid(const uint8_t *body, size_t len, wire_order order)
{
    if (len < WIRE_MEMB_SETS_AT)
        return 0;
    int32_t k = wire_get_i32(body + WIRE_MEMB_NUM_SETS_AT, order);
    int32_t local = wire_get_i32(body + WIRE_MEMB_LOCAL_AT, order);
    if (k < 1 || local < 0)
        return 0;
    size_t pos = WIRE_MEMB_SETS_AT, want = WIRE_MEMB_SETS_AT + (size_t)local;
    int found = 0;
    for (int32_t i = 0; i < k; i++) {
        if (len - pos < 4)
            return 0;
        int32_t n = wire_get_i32(body + pos, order);
        if (n < 0 || (size_t)n > (len - pos - 4) / WIRE_SLOT)
            return 0;
        if (pos == want)
            found = 1;
        pos += 4 + (size_t)n * WIRE_SLOT;
    }
    return found;
}

int wire_memb_body_fits(const uint8_t *body, size_t len, wire_order order, uint32_t type)
{
    if (!(type & (WIRE_REG_MEMB_MESS | WIRE_TRANSITION_MESS)) && (type & WIRE_CAUSED_BY_LEAVE))
        return 1; /* our own leave: nothing is read */
    /* Any other membership type has its group id read (SP_get_memb_info),
     * one with no kind bit at all (a forged CAUSED_BY_JOIN alone) too. */
    if (len < WIRE_MEMB_GID_SIZE)
        return 0;
    if (!(type & WIRE_REG_MEMB_MESS))
        return 1;
    if ((type & (WIRE_CAUSED_BY_JOIN | WIRE_CAUSED_BY_LEAVE | WIRE_CAUSED_BY_DISC)) &&
        len < WIRE_MEMB_BODY_SIZE)
        return 0;
    return wire_memb_body_valid(body, len, order);
}

void wire_memb_body_to_host(uint8_t *body, size_t len, wire_order order, uint32_t type)
{
    wire_order host = wire_host_order();
    if (order == host || !(type & (WIRE_REG_MEMB_MESS | WIRE_TRANSITION_MESS)))
        return;
    size_t head = type & WIRE_REG_MEMB_MESS ? WIRE_MEMB_SETS_AT : WIRE_MEMB_GID_SIZE;
    for (size_t off = 0; off < head; off += 4)
        wire_put_u32(body + off, wire_get_u32(body + off, order), host);
    if (!(type & WIRE_REG_MEMB_MESS))
        return; /* transitional: the group id only */
    int32_t k = wire_get_i32(body + WIRE_MEMB_NUM_SETS_AT, host);
    size_t pos = WIRE_MEMB_SETS_AT;
    for (int32_t i = 0; i < k && len - pos >= 4; i++) {
        uint32_t n = wire_get_u32(body + pos, order);
        wire_put_u32(body + pos, n, host);
        pos += 4 + (size_t)n * WIRE_SLOT;
        if (pos > len)
            break;
    }
}

void wire_encode_trans_body(uint8_t out[WIRE_TRANS_BODY_SIZE], const int32_t gid[3])
{
    for (int i = 0; i < 3; i++)
        wire_put_u32(out + WIRE_MEMB_GID_AT + 4 * i, (uint32_t)gid[i], WIRE_LE);
}

int wire_decode_trans_body(const uint8_t *body, size_t len, wire_order order, int32_t gid[3])
{
    if (len < WIRE_TRANS_BODY_SIZE)
        return -1;
    for (int i = 0; i < 3; i++)
        gid[i] = wire_get_i32(body + WIRE_MEMB_GID_AT + 4 * i, order);
    return 0;
}

size_t wire_memb_sets_size(const size_t counts[], size_t k)
{
    if (k == 0 || k > WIRE_MAX_RECV_GROUPS)
        return 0;
    size_t size = WIRE_MEMB_SETS_AT, names = 0;
    for (size_t i = 0; i < k; i++) {
        if (counts[i] > WIRE_MAX_RECV_GROUPS - names)
            return 0;
        names += counts[i];
        size += 4 + counts[i] * WIRE_SLOT; /* bounded: names <= 65536 */
        if (size > WIRE_MAX_RECV_DATA)
            return 0;
    }
    return size;
}

size_t wire_encode_memb_sets(uint8_t *out, size_t cap, const int32_t gid[3], const size_t counts[],
                             size_t k, const uint8_t *names, size_t local)
{
    size_t size = wire_memb_sets_size(counts, k);
    if (size == 0 || size > cap || local >= k)
        return 0;
    for (int i = 0; i < 3; i++)
        wire_put_u32(out + WIRE_MEMB_GID_AT + 4 * i, (uint32_t)gid[i], WIRE_LE);
    wire_put_u32(out + WIRE_MEMB_NUM_SETS_AT, (uint32_t)k, WIRE_LE);
    size_t pos = WIRE_MEMB_SETS_AT;
    for (size_t i = 0; i < k; i++) {
        if (i == local)
            wire_put_u32(out + WIRE_MEMB_LOCAL_AT, (uint32_t)(pos - WIRE_MEMB_SETS_AT), WIRE_LE);
        wire_put_u32(out + pos, (uint32_t)counts[i], WIRE_LE);
        pos += 4;
        if (counts[i]) {
            memcpy(out + pos, names, counts[i] * WIRE_SLOT);
            names += counts[i] * WIRE_SLOT;
            pos += counts[i] * WIRE_SLOT;
        }
    }
    return size;
}

int wire_memb_set_at(const uint8_t *body, size_t len, wire_order order, size_t i, size_t *count,
                     size_t *names_at)
{
    if (!wire_memb_body_valid(body, len, order))
        return -1;
    int32_t k = wire_get_i32(body + WIRE_MEMB_NUM_SETS_AT, order);
    if (i >= (size_t)k)
        return -1;
    size_t pos = WIRE_MEMB_SETS_AT;
    for (size_t j = 0;; j++) {
        size_t n = (size_t)wire_get_i32(body + pos, order); /* valid: 0 <= n, fits */
        if (j == i) {
            *count = n;
            *names_at = pos + 4;
            return 0;
        }
        pos += 4 + n * WIRE_SLOT;
    }
}

int wire_memb_local_index(const uint8_t *body, size_t len, wire_order order)
{
    if (!wire_memb_body_valid(body, len, order))
        return -1;
    int32_t k = wire_get_i32(body + WIRE_MEMB_NUM_SETS_AT, order);
    size_t want = WIRE_MEMB_SETS_AT + (size_t)wire_get_i32(body + WIRE_MEMB_LOCAL_AT, order);
    size_t pos = WIRE_MEMB_SETS_AT;
    for (int32_t j = 0; j < k; j++) {
        if (pos == want)
            return (int)j;
        pos += 4 + (size_t)wire_get_i32(body + pos, order) * WIRE_SLOT;
    }
    return -1; /* not reached: a valid body's offset names a set */
}
