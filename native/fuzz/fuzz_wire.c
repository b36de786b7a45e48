/* fuzz_wire.c -- the wire codec's decoders (wire.c) on raw bytes, and the
 * length-checked membership helpers on the bodies they accept. The input is
 * a message as it travels: a 48-byte header, the group names it counts,
 * and the rest as the body, whatever the header's data length says (every
 * decoder must be safe on any bytes of any length; with a group count that
 * does not fit, all after the header is the body). Shorter inputs go to the
 * decoders of small units only (hints, slots, private group names, and the
 * handshake's units: connect request, auth list, auth choice, accept). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"
#include "fuzz_common.h"

/* Every type a reader might give a body of this header: its own, and its
 * own with each membership kind forced, so that any body meets each check. */
static const uint32_t forced[] = {
    0,
    WIRE_TRANSITION_MESS,
    WIRE_REG_MEMB_MESS,
    WIRE_REG_MEMB_MESS | WIRE_CAUSED_BY_JOIN,
    WIRE_REG_MEMB_MESS | WIRE_CAUSED_BY_LEAVE,
    WIRE_REG_MEMB_MESS | WIRE_CAUSED_BY_DISC,
    WIRE_REG_MEMB_MESS | WIRE_CAUSED_BY_NET,
    WIRE_CAUSED_BY_LEAVE, /* our own leave */
};

/* The handshake's decoders on a copy of exactly `size` bytes (so that a read
 * past the input is caught), with what they report checked against it. */
static void handshake_units(const uint8_t *in, size_t size)
{
    uint8_t *data = malloc(size ? size : 1);
    if (!data)
        abort();
    memcpy(data, in, size);
    for (int final = 0; final <= 1; final++) {
        wire_connect c;
        int r = wire_decode_connect(data, size, final, &c);
        if (r == WIRE_UNIT_OK && (c.used > size || c.name_len > WIRE_MAX_PRIVATE_NAME ||
                                  (c.name && c.name + c.name_len > data + size)))
            abort();
        if (final && r == WIRE_UNIT_MORE)
            abort(); /* a final decode decides */
    }
    wire_auth_list al;
    int r = wire_decode_auth_list(data, size, &al);
    if ((r == WIRE_UNIT_OK && (al.len + 1 > size || al.len > WIRE_AUTH_LIST_MAX)) ||
        (r == WIRE_UNIT_MORE && (al.need <= size || al.need > WIRE_AUTH_LIST_UNIT_MAX)))
        abort();
    if (r == WIRE_UNIT_OK)
        (void)wire_auth_list_has(al.list, al.len, "NULL");
    wire_auth_choice ch;
    if (wire_decode_auth_choice(data, size, &ch) == WIRE_UNIT_OK)
        for (int i = 0; i < ch.n; i++)
            if (ch.lens[i] > WIRE_AUTH_NAME || ch.names[i] + ch.lens[i] > data + size)
                abort();
    wire_accept acc;
    r = wire_decode_accept(data, size, &acc);
    if ((r == WIRE_UNIT_OK && (acc.group_len < 2 || acc.group_len > WIRE_MAX_NAME ||
                               acc.group + acc.group_len > data + size)) ||
        (r == WIRE_UNIT_MORE && (acc.need <= size || acc.need > WIRE_ACCEPT_MAX)))
        abort();
    free(data);
}

static void small_units(const uint8_t *data, size_t size)
{
    if (size >= 4) {
        (void)wire_hint_valid(data);
        (void)wire_hint_mess_type(data);
        (void)wire_hint_order(data);
    }
    if (size >= WIRE_SLOT)
        (void)wire_slot_len(data);
    size_t name_len, daemon_len;
    const uint8_t *daemon;
    if (wire_split_private_group(data, size, &name_len, &daemon, &daemon_len) == 0 &&
        (name_len + daemon_len + 2 != size || daemon != data + name_len + 2))
        abort(); /* the parts must cover the name exactly */
    (void)wire_auth_list_has(data, size, "NULL");
    handshake_units(data, size);
    (void)wire_group_name_ok((const char *)data, size);
    (void)wire_private_name_ok((const char *)data, size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    small_units(data, size);
    wire_header h;
    if (size < WIRE_HEADER_SIZE || wire_decode_header(data, &h) != 0)
        return 0;
    if (wire_header_plausible(&h) && wire_message_size(&h) < WIRE_HEADER_SIZE)
        abort();
    size_t at = WIRE_HEADER_SIZE;
    if (h.num_groups >= 0 && (size_t)h.num_groups <= (size - at) / WIRE_SLOT)
        at += (size_t)h.num_groups * WIRE_SLOT;
    size_t len = size - at;
    /* A body of exactly len bytes, so that reading past it is caught. */
    uint8_t *body = malloc(len ? len : 1);
    if (!body)
        abort();
    for (size_t i = 0; i < sizeof forced / sizeof forced[0]; i++) {
        uint32_t type = i == 0 ? h.type : forced[i];
        memcpy(body, data + at, len);
        (void)wire_memb_body_valid(body, len, h.order);
        if (!wire_memb_body_fits(body, len, h.order, type))
            continue;
        wire_memb_body_to_host(body, len, h.order, type);
        /* In host order now: what SP_receive hands the helpers. */
        if (!wire_memb_body_fits(body, len, wire_host_order(), type))
            abort(); /* converting must not break a body that fitted */
        fuzz_decode_membership((const char *)body, (int)len, (service)type);
    }
    free(body);
    return 0;
}
