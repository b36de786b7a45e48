/* test_wire.c -- the wire codec against the byte examples of SPEC.md, and
 * every unit through its encoder and back through its decoder. */
#include <string.h>

#include "wire.h"
#include "check.h"

static void test_header(void)
{
    /* SPEC.md 5: join of "grp" by #alice#localhost. */
    static const uint8_t join[48] = {
        0x80, 0x00, 0x01, 0x80, '#',  'a', 'l', 'i', 'c',  'e', '#', 'l',  'o', 'c', 'a', 'l',
        'h',  'o',  's',  't',  0,    0,   0,   0,   0,    0,   0,   0,    0,   0,   0,   0,
        0,    0,    0,    0,    0x01, 0,   0,   0,   0x80, 0,   0,   0x80, 0,   0,   0,   0};
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
    static const struct {
        int16_t m;
        uint8_t b[4];
    } cases[] = {
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
    static const uint8_t expect[] = {1,   4,   0,   0,   16,  '#', 'a', 'l', 'i', 'c', 'e',
                                     '#', 'l', 'o', 'c', 'a', 'l', 'h', 'o', 's', 't'};
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

/* Header checks: the receiver's plausibility test, the message size, and
 * the daemon's request limits, at their edges. */
static void test_header_checks(void)
{
    wire_header h;
    memset(&h, 0, sizeof h);
    h.type = 0x20; /* SAFE_MESS */
    CHECK(wire_header_plausible(&h));
    h.num_groups = WIRE_MAX_RECV_GROUPS;
    h.data_len = WIRE_MAX_RECV_DATA;
    CHECK(wire_header_plausible(&h));
    h.num_groups = WIRE_MAX_RECV_GROUPS + 1;
    CHECK(!wire_header_plausible(&h));
    h.num_groups = -1;
    CHECK(!wire_header_plausible(&h));
    h.num_groups = 0;
    h.data_len = WIRE_MAX_RECV_DATA + 1;
    CHECK(!wire_header_plausible(&h));
    h.data_len = -1;
    CHECK(!wire_header_plausible(&h));

    h.num_groups = 3;
    h.data_len = 10;
    CHECK_EQ(wire_message_size(&h), WIRE_HEADER_SIZE + 3 * WIRE_SLOT + 10);
    h.type |= WIRE_REJECT_MESS;
    CHECK_EQ(wire_message_size(&h), WIRE_HEADER_SIZE + WIRE_REJECT_EXTRA + 3 * WIRE_SLOT + 10);

    h.num_groups = WIRE_MAX_GROUPS;
    CHECK(wire_request_groups_ok(&h));
    h.num_groups = WIRE_MAX_GROUPS + 1;
    CHECK(!wire_request_groups_ok(&h));
    h.num_groups = -1;
    CHECK(!wire_request_groups_ok(&h));
    h.num_groups = 1;
    h.data_len = WIRE_DAEMON_MAX_TOTAL - WIRE_SLOT;
    CHECK(wire_request_size_ok(&h));
    h.data_len++;
    CHECK(!wire_request_size_ok(&h));
    h.num_groups = 0;
    h.data_len = WIRE_DAEMON_MAX_TOTAL;
    CHECK(wire_request_size_ok(&h));
    h.data_len = -1;
    CHECK(!wire_request_size_ok(&h));
}

/* Every length of a decode of `unit` cut short decides WIRE_UNIT_MORE, and
 * asks for no more than the unit (a reader never reads past it). */
#define CHECK_PREFIXES_MORE(decode, unit, len, out)                 \
    do {                                                            \
        for (size_t cut_ = 0; cut_ < (len); cut_++) {               \
            CHECK_EQ(decode((unit), cut_, &(out)), WIRE_UNIT_MORE); \
            CHECK((out).need > cut_ && (out).need <= (len));        \
        }                                                           \
    } while (0)

static void test_connect_round_trip(void)
{
    uint8_t req[WIRE_CONNECT_MAX];
    wire_connect c;
    static const struct {
        int membership, priority;
        const char *name;
    } cases[] = {
        {1, 0, "alice"}, {0, 1, "bob"}, {1, 1, "abcdefghij"}, {0, 0, NULL}, {1, 0, "$~x"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t name_len = cases[i].name ? strlen(cases[i].name) : 0;
        size_t n = wire_encode_connect(req, cases[i].membership, cases[i].priority, cases[i].name,
                                       name_len);
        CHECK_EQ(wire_decode_connect(req, n, 0, &c), WIRE_UNIT_OK);
        CHECK_EQ(c.used, n);
        CHECK_EQ(c.version,
                 wire_version_value(WIRE_VERSION_MAJOR, WIRE_VERSION_MINOR, WIRE_VERSION_PATCH));
        CHECK_EQ(c.membership, cases[i].membership);
        CHECK_EQ(c.priority, cases[i].priority);
        CHECK_EQ(c.name_len, name_len);
        CHECK(name_len ? c.name && memcmp(c.name, cases[i].name, name_len) == 0 : !c.name);
        for (size_t cut = 0; cut < n; cut++) /* cut short: wait for the rest */
            CHECK_EQ(wire_decode_connect(req, cut, 0, &c), WIRE_UNIT_MORE);
        CHECK_EQ(wire_decode_connect(req, n, 1, &c), WIRE_UNIT_OK);
    }

    /* Refusals, each with its defect. */
    static const struct {
        uint8_t b[16];
        size_t len;
        int final, defect;
    } bad[] = {
        {{3, 0, 1, 5}, 4, 0, WIRE_CONNECT_OLD_VERSION},         /* 3.0: below 3.1.0 */
        {{4, 0, 0}, 3, 1, WIRE_CONNECT_NO_FLAGS},
        {{4, 0, 0, 1}, 4, 1, WIRE_CONNECT_NO_NAME_LENGTH},
        {{4, 0, 0, 1, 11}, 5, 0, WIRE_CONNECT_BAD_NAME_LENGTH},
        {{4, 0, 0, 1, 0xFF}, 5, 0, WIRE_CONNECT_BAD_NAME_LENGTH}, /* -1 */
        {{4, 0, 0, 1, 3, 'a', 'b'}, 7, 1, WIRE_CONNECT_BAD_NAME},  /* cut short, final */
        {{4, 0, 0, 1, 3, 'a', ' ', 'c'}, 8, 0, WIRE_CONNECT_BAD_NAME}, /* illegal byte */
        {{4, 0, 0, 1, 3, 'a', 'b', 'c', 'X'}, 9, 0, WIRE_CONNECT_BAD_NAME}, /* pipelined byte */
        {{0}, 0, 1, WIRE_CONNECT_OLD_VERSION},                    /* nothing, final */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_EQ(wire_decode_connect(bad[i].b, bad[i].len, bad[i].final, &c), WIRE_UNIT_BAD);
        CHECK_EQ(c.defect, bad[i].defect);
    }
    /* Before 3.14 no patch byte: 3.13 with flags and an empty name. */
    static const uint8_t old[] = {3, 13, 1, 0};
    CHECK_EQ(wire_decode_connect(old, sizeof old, 0, &c), WIRE_UNIT_OK);
    CHECK_EQ(c.version, 31300);
    CHECK_EQ(c.used, 4);
    /* A full ten-byte name with bytes behind it: they are the next unit's. */
    static const uint8_t ten[] = {4,   0,   0,   0,   10,  'a', 'b', 'c', 'd',
                                  'e', 'f', 'g', 'h', 'i', 'j', 'N', 'U'};
    CHECK_EQ(wire_decode_connect(ten, sizeof ten, 0, &c), WIRE_UNIT_OK);
    CHECK_EQ(c.used, 15);
}

static void test_auth_list_round_trip(void)
{
    uint8_t unit[WIRE_AUTH_LIST_UNIT_MAX];
    wire_auth_list al;
    const char *one[] = {"NULL"};
    size_t n = wire_encode_auth_list(unit, one, 1);
    static const uint8_t null_list[] = {5, 'N', 'U', 'L', 'L', ' '}; /* SPEC.md 2.5 */
    CHECK_EQ(n, sizeof null_list);
    CHECK(memcmp(unit, null_list, n) == 0);
    CHECK_EQ(wire_decode_auth_list(unit, n, &al), WIRE_UNIT_OK);
    CHECK_EQ(al.len, 5);
    CHECK(wire_auth_list_has(al.list, al.len, "NULL"));
    CHECK_PREFIXES_MORE(wire_decode_auth_list, unit, n, al);

    const char *two[] = {"NULL", "IP"};
    n = wire_encode_auth_list(unit, two, 2);
    CHECK_EQ(n, 9);
    CHECK_EQ(wire_decode_auth_list(unit, n + 3, &al), WIRE_UNIT_OK); /* bytes behind: not its */
    CHECK_EQ(al.len, 8);
    CHECK(wire_auth_list_has(al.list, al.len, "IP") && wire_auth_list_has(al.list, al.len, "NULL"));

    CHECK_EQ(wire_encode_auth_list(unit, NULL, 0), 1); /* an empty list */
    CHECK_EQ(wire_decode_auth_list(unit, 1, &al), WIRE_UNIT_OK);
    CHECK_EQ(al.len, 0);

    /* Too long for the unit, or not a name: not encoded. */
    const char *long_names[] = {"ABCDEFGHIJKLMNOPQRSTUVWXYZABC", "ABCDEFGHIJKLMNOPQRSTUVWXYZABC",
                                "ABCDEFGHIJKLMNOPQRSTUVWXYZABC", "ABCDEFGH"};
    CHECK_EQ(wire_encode_auth_list(unit, long_names, 3), 91);
    CHECK_EQ(wire_encode_auth_list(unit, long_names, 4), 0);
    const char *spaced[] = {"A B"};
    CHECK_EQ(wire_encode_auth_list(unit, spaced, 1), 0);

    /* A reject in its place, and what no daemon sends. */
    uint8_t b[4] = {wire_encode_reject(-6)};
    CHECK_EQ(wire_decode_auth_list(b, 1, &al), WIRE_UNIT_REJECT);
    CHECK_EQ(al.code, -6);
    b[0] = wire_encode_reject(-1);
    CHECK_EQ(wire_decode_auth_list(b, 1, &al), WIRE_UNIT_BAD);
    b[0] = WIRE_AUTH_LIST_MAX + 1;
    CHECK_EQ(wire_decode_auth_list(b, 1, &al), WIRE_UNIT_BAD);
    b[0] = 3;
    b[1] = 'N';
    b[2] = 0x01;
    CHECK_EQ(wire_decode_auth_list(b, 2, &al), WIRE_UNIT_MORE);
    CHECK_EQ(wire_decode_auth_list(b, 3, &al), WIRE_UNIT_BAD); /* told before the rest */
    CHECK(wire_is_reject(-3) && wire_is_reject(-9) && !wire_is_reject(-2) && !wire_is_reject(-10));
}

static void test_auth_choice_round_trip(void)
{
    uint8_t choice[WIRE_AUTH_CHOICE];
    wire_auth_choice ch;
    const char *names[] = {"NULL", "IP", "ABCDEFGHIJKLMNOPQRSTUVWXYZABC"};
    for (int n = 0; n <= WIRE_AUTH_METHODS; n++) {
        wire_encode_auth_choice(choice, names, n);
        CHECK_EQ(wire_decode_auth_choice(choice, sizeof choice, &ch), WIRE_UNIT_OK);
        CHECK_EQ(ch.n, n);
        for (int i = 0; i < n; i++)
            CHECK(ch.lens[i] == strlen(names[i]) && memcmp(ch.names[i], names[i], ch.lens[i]) == 0);
        for (size_t cut = 0; cut < sizeof choice; cut++)
            CHECK_EQ(wire_decode_auth_choice(choice, cut, &ch), WIRE_UNIT_MORE);
    }
    /* A slot without its NUL: the whole slot, never past it. */
    memset(choice, 'A', sizeof choice);
    CHECK_EQ(wire_decode_auth_choice(choice, sizeof choice, &ch), WIRE_UNIT_OK);
    CHECK_EQ(ch.n, WIRE_AUTH_METHODS);
    CHECK_EQ(ch.lens[0], WIRE_AUTH_NAME);
    /* Names after an empty slot do not count. */
    wire_encode_auth_choice(choice, names, 3);
    memset(choice + WIRE_AUTH_NAME, 0, WIRE_AUTH_NAME);
    CHECK_EQ(wire_decode_auth_choice(choice, sizeof choice, &ch), WIRE_UNIT_OK);
    CHECK_EQ(ch.n, 1);
}

static void test_accept_round_trip(void)
{
    uint8_t acc[WIRE_ACCEPT_MAX];
    wire_accept a;
    static const char *groups[] = {"#alice#localhost", "#a#b", "#abcdefghij#abcdefghijklmnopqrs"};
    for (size_t i = 0; i < sizeof groups / sizeof groups[0]; i++) {
        size_t len = strlen(groups[i]);
        size_t n = wire_encode_accept(acc, 1, (const uint8_t *)groups[i], len);
        CHECK_EQ(n, 5 + len);
        CHECK_EQ(wire_decode_accept(acc, n, &a), WIRE_UNIT_OK);
        CHECK_EQ(a.version, 40000);
        CHECK(a.group_len == len && memcmp(a.group, groups[i], len) == 0);
        CHECK_PREFIXES_MORE(wire_decode_accept, acc, n, a);
    }
    /* The version as soon as it is in, before the rest. */
    wire_encode_accept(acc, 1, (const uint8_t *)"#a#b", 4);
    CHECK_EQ(wire_decode_accept(acc, 3, &a), WIRE_UNIT_MORE);
    CHECK_EQ(a.version, -1);
    CHECK_EQ(wire_decode_accept(acc, 4, &a), WIRE_UNIT_MORE);
    CHECK_EQ(a.version, 40000);
    CHECK_EQ(a.need, 5);

    /* Rejects, and bytes no daemon sends. */
    uint8_t b[8] = {wire_encode_reject(-9)};
    CHECK_EQ(wire_decode_accept(b, 1, &a), WIRE_UNIT_REJECT);
    CHECK_EQ(a.code, -9);
    b[0] = 2;
    CHECK_EQ(wire_decode_accept(b, 1, &a), WIRE_UNIT_BAD);
    static const uint8_t short_group[] = {1, 4, 0, 0, 1, '#'};
    CHECK_EQ(wire_decode_accept(short_group, sizeof short_group, &a), WIRE_UNIT_BAD);
    static const uint8_t long_group[] = {1, 4, 0, 0, 32};
    CHECK_EQ(wire_decode_accept(long_group, sizeof long_group, &a), WIRE_UNIT_BAD);
    static const uint8_t no_hash[] = {1, 4, 0, 0, 4, 'a', '#', 'b', 'c'};
    CHECK_EQ(wire_decode_accept(no_hash, sizeof no_hash, &a), WIRE_UNIT_BAD);
}

/* The membership body's named offsets, on a body the encoder wrote. */
static void test_membership_offsets(void)
{
    uint8_t body[WIRE_MEMB_BODY_SIZE], member[WIRE_SLOT];
    const int32_t gid[3] = {0x7F000001, 77, -5};
    wire_put_slot(member, "#bob#localhost", 14);
    wire_encode_memb_body(body, gid, member);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(wire_get_i32(body + WIRE_MEMB_GID_AT + 4 * i, WIRE_LE), gid[i]);
    CHECK_EQ(wire_get_i32(body + WIRE_MEMB_NUM_SETS_AT, WIRE_LE), 1);
    CHECK_EQ(wire_get_i32(body + WIRE_MEMB_LOCAL_AT, WIRE_LE), 0);
    CHECK_EQ(wire_get_i32(body + WIRE_MEMB_SETS_AT, WIRE_LE), 1);
    CHECK(memcmp(body + WIRE_MEMB_CHANGED_AT, member, WIRE_SLOT) == 0);
    CHECK_EQ(WIRE_MEMB_CHANGED_AT + WIRE_SLOT, WIRE_MEMB_BODY_SIZE);
    CHECK(wire_memb_body_valid(body, sizeof body, WIRE_LE));
}

/* The network's bodies (SPEC.md 6.2, 6.3): encoded with k vs-sets and read
 * back set by set; the three-set example of 6.2 gives its offsets. */
static void test_network_bodies(void)
{
    static const char *const names[] = {"#d1a#d1", "#d1b#d1", "#x#d2", "#alice#localhost",
                                        "#y#localhost"};
    uint8_t slots[5 * WIRE_SLOT];
    for (int i = 0; i < 5; i++)
        wire_put_slot(slots + i * WIRE_SLOT, names[i], strlen(names[i]));
    const size_t counts[3] = {2, 1, 2};
    const int32_t gid[3] = {0x7F000001, 1700000100, 1};
    CHECK_EQ(wire_memb_sets_size(counts, 3), 192);
    CHECK_EQ(wire_memb_sets_size(counts, 0), 0);
    uint8_t body[256];
    memset(body, 0xEE, sizeof body);
    CHECK_EQ(wire_encode_memb_sets(body, sizeof body, gid, counts, 3, slots, 2), 192);
    CHECK_EQ(body[192], 0xEE); /* nothing past the body */
    CHECK(wire_memb_body_valid(body, 192, WIRE_LE));
    CHECK(!wire_memb_body_valid(body, 191, WIRE_LE));
    CHECK_EQ(wire_get_i32(body + WIRE_MEMB_NUM_SETS_AT, WIRE_LE), 3);
    CHECK_EQ(wire_get_i32(body + WIRE_MEMB_LOCAL_AT, WIRE_LE), 104);
    CHECK_EQ(wire_memb_local_index(body, 192, WIRE_LE), 2);
    static const size_t want_at[3] = {24, 92, 128};
    size_t name = 0;
    for (size_t i = 0; i < 3; i++) {
        size_t n = 99, at = 0;
        CHECK_EQ(wire_memb_set_at(body, 192, WIRE_LE, i, &n, &at), 0);
        CHECK_EQ(n, counts[i]);
        CHECK_EQ(at, want_at[i]);
        for (size_t j = 0; j < n; j++, name++)
            CHECK(memcmp(body + at + j * WIRE_SLOT, slots + name * WIRE_SLOT, WIRE_SLOT) == 0);
    }
    size_t n, at;
    CHECK_EQ(wire_memb_set_at(body, 192, WIRE_LE, 3, &n, &at), -1);
    CHECK_EQ(wire_memb_set_at(body, 100, WIRE_LE, 0, &n, &at), -1);
    CHECK_EQ(wire_memb_local_index(body, 100, WIRE_LE), -1);
    for (size_t local = 0; local < 3; local++) {
        CHECK_EQ(wire_encode_memb_sets(body, sizeof body, gid, counts, 3, slots, local), 192);
        CHECK_EQ(wire_memb_local_index(body, 192, WIRE_LE), (int)local);
    }
    /* Refused, nothing written: no set, the local set beyond them, too small. */
    memset(body, 0xEE, sizeof body);
    CHECK_EQ(wire_encode_memb_sets(body, sizeof body, gid, counts, 0, slots, 0), 0);
    CHECK_EQ(wire_encode_memb_sets(body, sizeof body, gid, counts, 3, slots, 3), 0);
    CHECK_EQ(wire_encode_memb_sets(body, 191, gid, counts, 3, slots, 0), 0);
    CHECK_EQ(body[0], 0xEE);
    const size_t huge[2] = {65536, 1};
    CHECK_EQ(wire_memb_sets_size(huge, 2), 0);
    const size_t big[1] = {(WIRE_MAX_RECV_DATA - 24) / WIRE_SLOT + 1};
    CHECK_EQ(wire_memb_sets_size(big, 1), 0);

    /* One set of one name: the body of a join, leave or disconnect. */
    uint8_t one[WIRE_MEMB_BODY_SIZE], classic[WIRE_MEMB_BODY_SIZE];
    const size_t one_count[1] = {1};
    CHECK_EQ(wire_encode_memb_sets(one, sizeof one, gid, one_count, 1, slots + 3 * WIRE_SLOT, 0),
             WIRE_MEMB_BODY_SIZE);
    wire_encode_memb_body(classic, gid, slots + 3 * WIRE_SLOT);
    CHECK(memcmp(one, classic, sizeof one) == 0);
    /* An empty set is legal on the wire. */
    const size_t empty[2] = {0, 1};
    CHECK_EQ(wire_encode_memb_sets(body, sizeof body, gid, empty, 2, slots, 1), 20 + 4 + 36);
    CHECK_EQ(wire_memb_local_index(body, 60, WIRE_LE), 1);

    /* A big-endian body reads the same. */
    uint8_t be[192];
    CHECK_EQ(wire_encode_memb_sets(be, sizeof be, gid, counts, 3, slots, 2), 192);
    static const size_t ints[] = {0, 4, 8, 12, 16, 20, 88, 124};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        wire_put_u32(be + ints[i], wire_get_u32(be + ints[i], WIRE_LE), WIRE_BE);
    CHECK_EQ(wire_memb_local_index(be, 192, WIRE_BE), 2);
    CHECK_EQ(wire_memb_set_at(be, 192, WIRE_BE, 1, &n, &at), 0);
    CHECK_EQ(n, 1);
    CHECK_EQ(at, 92);

    /* Transitional: the group id, 12 bytes (SPEC.md 6.3, synthetic_transitional). */
    static const uint8_t trans_vec[12] = {0x01, 0x00, 0x00, 0x7f, 0x00, 0xf1,
                                          0x53, 0x65, 0x06, 0x00, 0x00, 0x00};
    const int32_t old_gid[3] = {0x7F000001, 1700000000, 6};
    uint8_t tr[WIRE_TRANS_BODY_SIZE];
    wire_encode_trans_body(tr, old_gid);
    CHECK(memcmp(tr, trans_vec, sizeof tr) == 0);
    int32_t back[3] = {0, 0, 0};
    CHECK_EQ(wire_decode_trans_body(tr, sizeof tr, WIRE_LE, back), 0);
    CHECK(back[0] == old_gid[0] && back[1] == old_gid[1] && back[2] == old_gid[2]);
    CHECK_EQ(wire_decode_trans_body(tr, 11, WIRE_LE, back), -1);
    for (int i = 0; i < 3; i++)
        wire_put_u32(tr + 4 * i, (uint32_t)old_gid[i], WIRE_BE);
    CHECK_EQ(wire_decode_trans_body(tr, sizeof tr, WIRE_BE, back), 0);
    CHECK(back[0] == old_gid[0] && back[1] == old_gid[1] && back[2] == old_gid[2]);
}

int main(void)
{
    test_header();
    test_hints();
    test_names();
    test_handshake();
    test_header_checks();
    test_connect_round_trip();
    test_auth_list_round_trip();
    test_auth_choice_round_trip();
    test_accept_round_trip();
    test_membership_offsets();
    test_membership_body();
    test_membership_fits();
    test_network_bodies();
    return check_summary("test_wire");
}
