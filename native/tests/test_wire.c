/* test_wire.c -- the wire codec against the byte examples of SPEC.md. */
#include <string.h>

#include "wire.h"
#include "check.h"

static void test_header(void)
{
    /* SPEC.md 5: join of "grp" by #alice#localhost. */
    static const uint8_t join[48] = {
        0x80, 0x00, 0x01, 0x80, '#', 'a', 'l', 'i', 'c', 'e', '#', 'l', 'o', 'c', 'a', 'l',
        'h', 'o', 's', 't', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0x01, 0, 0, 0, 0x80, 0, 0, 0x80, 0, 0, 0, 0};
    uint8_t sender[WIRE_SLOT], hint[4], out[48];
    wire_put_slot(sender, "#alice#localhost", 16);
    wire_make_hint(hint, 0);
    wire_encode_header(out, WIRE_JOIN_MESS, sender, 1, hint, 0);
    CHECK(memcmp(out, join, 48) == 0);

    wire_header h;
    CHECK_EQ(wire_decode_header(join, &h), 0);
    CHECK_EQ(h.type, WIRE_JOIN_MESS);
    CHECK_EQ(h.num_groups, 1);
    CHECK_EQ(h.data_len, 0);
    CHECK_EQ(h.order, WIRE_LE);

    /* The same header from a big-endian sender decodes to the same values. */
    uint8_t be[48];
    memcpy(be, join, 48);
    wire_put_u32(be, 0x00010000, WIRE_BE);
    wire_put_u32(be + 36, 1, WIRE_BE);
    wire_put_u32(be + 44, 7, WIRE_BE);
    CHECK_EQ(wire_decode_header(be, &h), 0);
    CHECK_EQ(h.order, WIRE_BE);
    CHECK_EQ(h.type, WIRE_JOIN_MESS);
    CHECK_EQ(h.num_groups, 1);
    CHECK_EQ(h.data_len, 7);

    /* Mixed marker bits are invalid. */
    uint8_t mixed[48];
    memcpy(mixed, join, 48);
    mixed[3] = 0x00;
    CHECK_EQ(wire_decode_header(mixed, &h), -1);

    /* Negative counts decode as negative (callers reject them). */
    memcpy(mixed, join, 48);
    wire_put_u32(mixed + 36, 0xFFFFFFFFu, WIRE_LE);
    CHECK_EQ(wire_decode_header(mixed, &h), 0);
    CHECK_EQ(h.num_groups, -1);
}

static void test_hints(void)
{
    /* SPEC.md 3.3: the LE wire bytes of several message types. */
    static const struct { int16_t m; uint8_t b[4]; } cases[] = {
        {0, {0x80, 0x00, 0x00, 0x80}},      {1, {0x80, 0x01, 0x00, 0x80}},
        {0x1234, {0x80, 0x34, 0x12, 0x80}}, {32767, {0x80, 0xff, 0x7f, 0x80}},
        {-1, {0x80, 0xff, 0xff, 0x80}},     {-32768, {0x80, 0x00, 0x80, 0x80}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t hint[4];
        wire_make_hint(hint, cases[i].m);
        CHECK(memcmp(hint, cases[i].b, 4) == 0);
        CHECK_EQ(wire_hint_mess_type(cases[i].b), cases[i].m);
        CHECK(wire_hint_valid(hint));
        CHECK_EQ(wire_hint_order(hint), WIRE_LE);
    }
    /* A big-endian hint carrying 258 (SPEC.md synthetic_foreign_hint). */
    uint8_t be[4];
    wire_put_u32(be, (258u << 8), WIRE_BE);
    CHECK_EQ(wire_hint_order(be), WIRE_BE);
    CHECK_EQ(wire_hint_mess_type(be), 258);
    uint8_t bad[4] = {0x81, 0, 0, 0x80};
    CHECK(!wire_hint_valid(bad));
}

static void test_names(void)
{
    uint8_t slot[WIRE_SLOT];
    wire_put_slot(slot, "grp", 3);
    CHECK_EQ(wire_slot_len(slot), 3);
    memset(slot, 'x', sizeof slot);
    CHECK_EQ(wire_slot_len(slot), 32);
    CHECK(wire_group_name_ok("grp", 3));
    CHECK(!wire_group_name_ok("#grp", 4));
    CHECK(!wire_group_name_ok("a b", 3));
    CHECK(!wire_group_name_ok("", 0));
    CHECK(!wire_group_name_ok("0123456789012345678901234567890123", 32));
    CHECK(wire_private_name_ok("alice", 5));
    CHECK(!wire_private_name_ok("elevenchars", 11));

    size_t n, dl;
    const uint8_t *daemon;
    CHECK_EQ(wire_split_private_group((const uint8_t *)"#bob#localhost", 14, &n, &daemon, &dl), 0);
    CHECK_EQ(n, 3);
    CHECK_EQ(dl, 9);
    CHECK(memcmp(daemon, "localhost", 9) == 0);
    CHECK_EQ(wire_split_private_group((const uint8_t *)"bob#localhost", 13, &n, &daemon, &dl), -1);
    CHECK_EQ(wire_split_private_group((const uint8_t *)"##localhost", 11, &n, &daemon, &dl), -1);
    CHECK_EQ(wire_split_private_group((const uint8_t *)"#bob#", 5, &n, &daemon, &dl), -1);
}

static void test_handshake(void)
{
    uint8_t req[WIRE_CONNECT_MAX];
    static const uint8_t alice[] = {4, 0, 0, 1, 5, 'a', 'l', 'i', 'c', 'e'};
    CHECK_EQ(wire_encode_connect(req, 1, 0, "alice", 5), sizeof alice);
    CHECK(memcmp(req, alice, sizeof alice) == 0);
    CHECK_EQ(wire_encode_connect(req, 1, 2, "abcdefghijklm", 13), 15); /* truncated */
    CHECK_EQ(req[3], 0x11);                                             /* priority clamped */
    CHECK_EQ(wire_encode_connect(req, 0, 0, NULL, 0), 5);

    static const uint8_t list[] = "NULL IP ";
    CHECK(wire_auth_list_has(list, 8, "NULL"));
    CHECK(wire_auth_list_has(list, 8, "IP"));
    CHECK(!wire_auth_list_has(list, 8, "NUL"));
    CHECK(!wire_auth_list_has(list, 8, ""));

    uint8_t choice[WIRE_AUTH_CHOICE];
    const char *names[] = {"NULL"};
    wire_encode_auth_choice(choice, names, 1);
    CHECK(memcmp(choice, "NULL\0", 5) == 0 && choice[30] == 0);

    uint8_t acc[WIRE_ACCEPT_MAX];
    static const uint8_t expect[] = {1, 4, 0, 0, 16, '#', 'a', 'l', 'i', 'c', 'e', '#', 'l',
                                     'o', 'c', 'a', 'l', 'h', 'o', 's', 't'};
    CHECK_EQ(wire_encode_accept(acc, 1, (const uint8_t *)"#alice#localhost", 16), sizeof expect);
    CHECK(memcmp(acc, expect, sizeof expect) == 0);
    CHECK_EQ(wire_encode_accept(acc, 0, (const uint8_t *)"#oldc#localhost", 15), 19);

    CHECK(wire_version_has_patch(3, 15));
    CHECK(!wire_version_has_patch(3, 14));
    CHECK_EQ(wire_version_value(4, 0, 0), 40000);
}

static void test_membership_body(void)
{
    uint8_t body[WIRE_MEMB_BODY_SIZE], member[WIRE_SLOT];
    int32_t gid[3] = {0x7F000001, 1700000000, 3};
    wire_put_slot(member, "#bob#localhost", 14);
    wire_encode_memb_body(body, gid, member);
    CHECK(wire_memb_body_valid(body, sizeof body, WIRE_LE));
    CHECK(!wire_memb_body_valid(body, sizeof body - 1, WIRE_LE)); /* the name does not fit */
    CHECK(!wire_memb_body_valid(body, 19, WIRE_LE));

    uint8_t bad[WIRE_MEMB_BODY_SIZE];
    memcpy(bad, body, sizeof bad);
    wire_put_u32(bad + 16, 4, WIRE_LE); /* the local offset points inside a set */
    CHECK(!wire_memb_body_valid(bad, sizeof bad, WIRE_LE));
    memcpy(bad, body, sizeof bad);
    wire_put_u32(bad + 20, 0x7FFFFFFF, WIRE_LE); /* a huge member count */
    CHECK(!wire_memb_body_valid(bad, sizeof bad, WIRE_LE));
    memcpy(bad, body, sizeof bad);
    wire_put_u32(bad + 12, 0xFFFFFFFF, WIRE_LE); /* a negative set count */
    CHECK(!wire_memb_body_valid(bad, sizeof bad, WIRE_LE));

    /* A big-endian body converts to host order in place. */
    uint8_t be[WIRE_MEMB_BODY_SIZE];
    memcpy(be, body, sizeof be);
    for (int off = 0; off < 24; off += 4)
        wire_put_u32(be + off, wire_get_u32(body + off, WIRE_LE), WIRE_BE);
    CHECK(wire_memb_body_valid(be, sizeof be, WIRE_BE));
    wire_memb_body_to_host(be, sizeof be, WIRE_BE, WIRE_REG_MEMB_MESS | WIRE_CAUSED_BY_JOIN);
    CHECK(memcmp(be, body, sizeof be) == 0 || wire_host_order() == WIRE_BE);

    /* A transitional body converts its group id (SPEC 6.5), and nothing else. */
    uint8_t tr[WIRE_MEMB_GID_SIZE];
    for (int i = 0; i < 3; i++)
        wire_put_u32(tr + 4 * i, (uint32_t)gid[i], WIRE_BE);
    wire_memb_body_to_host(tr, sizeof tr, WIRE_BE, WIRE_TRANSITION_MESS);
    CHECK(memcmp(tr, body, sizeof tr) == 0 || wire_host_order() == WIRE_BE);
}

/* What each membership type needs of its body before anything reads it. */
static void test_membership_fits(void)
{
    int32_t gid[3] = {1, 2, 3};
    uint8_t member[WIRE_SLOT] = {0}, body[WIRE_MEMB_BODY_SIZE];
    wire_put_slot(member, "#bob#localhost", 14);
    wire_encode_memb_body(body, gid, member);
    uint32_t join = WIRE_REG_MEMB_MESS | WIRE_CAUSED_BY_JOIN;
    uint32_t net = WIRE_REG_MEMB_MESS | WIRE_CAUSED_BY_NET;
    CHECK(wire_memb_body_fits(body, sizeof body, WIRE_LE, join));
    CHECK(!wire_memb_body_fits(body, sizeof body - 1, WIRE_LE, join));
    CHECK(wire_memb_body_fits(body, 0, WIRE_LE, WIRE_CAUSED_BY_LEAVE)); /* our own leave */
    CHECK(wire_memb_body_fits(body, 12, WIRE_LE, WIRE_TRANSITION_MESS));
    CHECK(!wire_memb_body_fits(body, 11, WIRE_LE, WIRE_TRANSITION_MESS));
    CHECK(!wire_memb_body_fits(body, 0, WIRE_LE, WIRE_TRANSITION_MESS));
    /* Neither regular nor transitional, and not our leave: the group id is
     * still read (found by fuzz_wire). */
    CHECK(!wire_memb_body_fits(body, 6, WIRE_LE, WIRE_CAUSED_BY_DISC));
    CHECK(wire_memb_body_fits(body, 12, WIRE_LE, WIRE_CAUSED_BY_JOIN));
    /* A network membership whose one set is empty needs no changed member. */
    uint8_t empty[24];
    memcpy(empty, body, 20);
    wire_put_u32(empty + 20, 0, WIRE_LE);
    CHECK(wire_memb_body_fits(empty, sizeof empty, WIRE_LE, net));
    CHECK(!wire_memb_body_fits(empty, sizeof empty, WIRE_LE, join));
}

int main(void)
{
    test_header();
    test_hints();
    test_names();
    test_handshake();
    test_membership_body();
    test_membership_fits();
    return check_summary("test_wire");
}
