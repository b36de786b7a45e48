/*
 * wire.h -- the Spread 4 client protocol's byte layout (SPEC.md 2, 3, 6, 7).
 *
 * This is the only place in the tree that knows where bytes go on the wire,
 * in both directions: every unit has its encoder and its decoder here (the
 * handshake's too), and tests/test_wire.c round-trips each. It is sans-IO:
 * pure functions over caller-supplied buffers with explicit lengths; a
 * decoder checks every length it reads before it uses it. The client
 * library and the embedded daemon both use it.
 */
#ifndef SPREAD_CLIENT_WIRE_H
#define SPREAD_CLIENT_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define WIRE_HEADER_SIZE      48
#define WIRE_SLOT             32     /* group / member name slot (MAX_GROUP_NAME) */
#define WIRE_MAX_NAME         31     /* bytes of a name inside a slot */
#define WIRE_MAX_PRIVATE_NAME 10
#define WIRE_MAX_PROC_NAME    19     /* daemon name, without NUL */
#define WIRE_MARKER           0x80000080u
#define WIRE_MAX_BODY         144000 /* MAX_MESSAGE_BODY_LEN */
#define WIRE_DAEMON_MAX_TOTAL \
    143952 /* data_len + 32*num_groups, daemon check (above SPX_MAX_SAFE_BODY) */
#define WIRE_MAX_GROUPS   100    /* MAX_GROUPS_PER_MESSAGE */
#define WIRE_REJECT_EXTRA 4      /* old-type word after a reject header */

/* Sanity bounds for what a client accepts from a daemon. Membership messages
 * may list more than 100 members, so these are wider than the send limits. */
#define WIRE_MAX_RECV_GROUPS 65536
#define WIRE_MAX_RECV_DATA   (4 * 1024 * 1024)

/* Request types (c2s only) and internal bits never valid in a request. */
#define WIRE_JOIN_MESS       0x00010000u
#define WIRE_LEAVE_MESS      0x00020000u
#define WIRE_KILL_MESS       0x00040000u
#define WIRE_INTERNAL_BITS   (0x0000C000u | 0x00080000u | 0x00100000u | 0x00200000u)
#define WIRE_REJECT_MESS     0x00400000u
#define WIRE_SERVICE_BITS    0x0000003Fu
#define WIRE_SELF_DISCARD    0x00000040u
#define WIRE_DROP_RECV       0x01000000u
#define WIRE_MEMBERSHIP_BITS 0x00003F00u
#define WIRE_CAUSED_BY_JOIN  0x00000100u
#define WIRE_CAUSED_BY_LEAVE 0x00000200u
#define WIRE_CAUSED_BY_DISC  0x00000400u
#define WIRE_CAUSED_BY_NET   0x00000800u
#define WIRE_REG_MEMB_MESS   0x00001000u
#define WIRE_TRANSITION_MESS 0x00002000u
#define WIRE_HINT_ALLOWED    (WIRE_MARKER | 0x00FFFF00u)

/* Membership bodies (SPEC.md 6.1, 6.3): the group id (three int32), the
 * number of vs-sets, the offset of the receiver's own vs-set (counted from
 * WIRE_MEMB_SETS_AT), then the vs-sets, each a member count (int32) and
 * that many name slots. A transitional body is the group id alone. */
#define WIRE_MEMB_GID_AT      0
#define WIRE_MEMB_NUM_SETS_AT 12
#define WIRE_MEMB_LOCAL_AT    16
#define WIRE_MEMB_SETS_AT     20     /* first vs-set, and base of the local offset */
#define WIRE_MEMB_CHANGED_AT \
    24     /* join, leave, disconnect: the changed member (the
                                        first name of the first vs-set) */
#define WIRE_MEMB_BODY_SIZE  56     /* a body naming one changed member */
#define WIRE_MEMB_GID_SIZE   12     /* the group id: three int32 */
#define WIRE_TRANS_BODY_SIZE 12

/* Handshake (SPEC.md 2). */
#define WIRE_VERSION_MAJOR        4
#define WIRE_VERSION_MINOR        0
#define WIRE_VERSION_PATCH        0
#define WIRE_CONNECT_MAX          (5 + WIRE_MAX_PRIVATE_NAME)
#define WIRE_AUTH_NAME            30
#define WIRE_AUTH_METHODS         3
#define WIRE_AUTH_CHOICE          (WIRE_AUTH_NAME * WIRE_AUTH_METHODS)
#define WIRE_AUTH_LIST_MAX        90     /* bytes of the list after its length byte */
#define WIRE_AUTH_LIST_UNIT_MAX   (1 + WIRE_AUTH_LIST_MAX)
#define WIRE_ACCEPT               1
#define WIRE_ACCEPT_MAX           (1 + 3 + 1 + WIRE_MAX_NAME)
#define WIRE_MIN_VERSION          30100  /* 3.1.0 */
#define WIRE_PATCH_THRESHOLD      31400  /* a patch byte follows when maj*10000+min*100 > this */
#define WIRE_AUTH_THRESHOLD       31600  /* auth negotiation from 3.16.0 */
#define WIRE_PRIORITY_VERSION     30800  /* priority > 0 needs a daemon >= 3.8.0 */
#define WIRE_ACCEPT_PATCH_VERSION 31500 /* the accept carries a patch byte for clients >= 3.15.0 */
/* The reject codes a daemon may send in place of an auth list or an accept
 * (sp.h's REJECT_QUOTA .. REJECT_AUTH, CONNECTION_CLOSED among them). */
#define WIRE_REJECT_FIRST (-9)
#define WIRE_REJECT_LAST  (-3)

typedef enum { WIRE_LE = 0, WIRE_BE = 1 } wire_order;

/* A decoded message header. `type` has the marker stripped. */
typedef struct {
    uint32_t type;
    uint8_t sender[WIRE_SLOT];
    int32_t num_groups;
    int32_t data_len;
    uint8_t hint[4]; /* raw bytes: daemons forward them untouched */
    wire_order order; /* byte order of type, num_groups and data_len */
} wire_header;

/* Integer access in a given byte order; inline, as every message needs it. */
static inline wire_order wire_host_order(void)
{
#if defined(__BYTE_ORDER__) && defined(__ORDER_BIG_ENDIAN__)
    return __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__ ? WIRE_BE : WIRE_LE;
#else
    const uint16_t probe = 1;
    uint8_t first;
    memcpy(&first, &probe, 1);
    return first ? WIRE_LE : WIRE_BE;
#endif
}

static inline uint32_t wire_get_u32(const uint8_t *p, wire_order order)
{
    if (order == WIRE_LE)
        return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    return (uint32_t)p[3] | (uint32_t)p[2] << 8 | (uint32_t)p[1] << 16 | (uint32_t)p[0] << 24;
}

static inline void wire_put_u32(uint8_t *p, uint32_t v, wire_order order)
{
    for (int i = 0; i < 4; i++)
        p[order == WIRE_LE ? i : 3 - i] = (uint8_t)(v >> (8 * i));
}

static inline int32_t wire_get_i32(const uint8_t *p, wire_order order)
{
    uint32_t u = wire_get_u32(p, order);
    int32_t v;
    memcpy(&v, &u, sizeof v); /* two's complement reinterpretation, no UB */
    return v;
}

/* Header. Decoding fails (-1) on mixed byte-order marker bits. */
int wire_decode_header(const uint8_t in[WIRE_HEADER_SIZE], wire_header *h);

/* Does a header a client received hold sizes it may act on (group count
 * 0..WIRE_MAX_RECV_GROUPS, body 0..WIRE_MAX_RECV_DATA)? A header that does
 * not is a broken stream. The one check of every reader of headers. */
static inline int wire_header_plausible(const wire_header *h)
{
    return h->num_groups >= 0 && h->num_groups <= WIRE_MAX_RECV_GROUPS && h->data_len >= 0 &&
           h->data_len <= WIRE_MAX_RECV_DATA;
}

/* Bytes of the whole message a plausible header (or a valid request)
 * starts: the header, a reject's old-type word, the group slots, the body. */
static inline size_t wire_message_size(const wire_header *h)
{
    return WIRE_HEADER_SIZE + ((h->type & WIRE_REJECT_MESS) ? WIRE_REJECT_EXTRA : 0) +
           (size_t)h->num_groups * WIRE_SLOT + (size_t)h->data_len;
}

/* What a daemon accepts in a request: 0..WIRE_MAX_GROUPS groups; and a body
 * of at most WIRE_MAX_BODY bytes whose size with 32 bytes a group stays
 * within WIRE_DAEMON_MAX_TOTAL (SPEC.md 8.2). 1 or 0. */
int wire_request_groups_ok(const wire_header *h);
int wire_request_size_ok(const wire_header *h);
/* Encodes little-endian with the marker set; `sender` is a slot (32 bytes). */
void wire_encode_header(uint8_t out[WIRE_HEADER_SIZE], uint32_t type,
                        const uint8_t sender[WIRE_SLOT], int32_t num_groups, const uint8_t hint[4],
                        int32_t data_len);

/* The 16-bit message type carried in the hint (SPEC.md 3.3). */
void wire_make_hint(uint8_t hint[4], int16_t mess_type);
int16_t wire_hint_mess_type(const uint8_t hint[4]);
wire_order wire_hint_order(const uint8_t hint[4]);
int wire_hint_valid(const uint8_t hint[4]);

/* Group slots: a name of 0..31 bytes, NUL padded to 32. */
void wire_put_slot(uint8_t slot[WIRE_SLOT], const char *name, size_t len);
size_t wire_slot_len(const uint8_t slot[WIRE_SLOT]);
int wire_name_char_ok(uint8_t c);
int wire_group_name_ok(const char *name, size_t len); /* 1..31 legal bytes */
int wire_private_name_ok(const char *name, size_t len); /* 1..10 legal bytes */
/* Splits "#name#daemon" (len bytes); returns 0 and the two parts, or -1. */
int wire_split_private_group(const uint8_t *s, size_t len, size_t *name_len, const uint8_t **daemon,
                             size_t *daemon_len);

/* Handshake (SPEC.md 2): the client sends the connect request, the daemon
 * answers with its auth list (or a reject), the client sends its auth
 * choice, the daemon answers with the accept (or a reject).
 *
 * Every decoder of a unit takes the bytes received so far and returns one
 * of these; those that can be fed byte by byte also say how many bytes the
 * unit needs at least (`need`, past what they had), so that a reader reads
 * exactly the unit and leaves what follows on the socket. */
#define WIRE_UNIT_MORE   0 /* incomplete: read up to `need` bytes and decode again */
#define WIRE_UNIT_OK     1 /* decoded */
#define WIRE_UNIT_BAD    (-1) /* bytes no Spread peer sends */
#define WIRE_UNIT_REJECT (-2) /* a daemon's reject code in place of the unit (`code`) */

int wire_version_value(int major, int minor, int patch);
int wire_version_has_patch(int major, int minor);
/* Is code (a signed byte) one a daemon rejects a connection with? */
int wire_is_reject(int code);
/* A reject: one byte, the code as a signed byte. */
static inline uint8_t wire_encode_reject(int code)
{
    return (uint8_t)(int8_t)code;
}

/* The connect request: version (major, minor, and a patch byte for versions
 * that have one), flags (membership bit 0, priority bits 4-7), name length
 * (a signed byte), name. */
size_t wire_encode_connect(uint8_t out[WIRE_CONNECT_MAX], int membership, int priority,
                           const char *name, size_t name_len);
/* Why a connect request is refused (wire_connect.defect). */
typedef enum {
    WIRE_CONNECT_OLD_VERSION = 1, /* below WIRE_MIN_VERSION */
    WIRE_CONNECT_NO_FLAGS, /* ends after the version */
    WIRE_CONNECT_NO_NAME_LENGTH, /* ends after the flags */
    WIRE_CONNECT_BAD_NAME_LENGTH, /* negative, or above WIRE_MAX_PRIVATE_NAME */
    WIRE_CONNECT_BAD_NAME, /* fewer or more bytes than said, or illegal ones */
} wire_connect_defect;
typedef struct {
    int version; /* wire_version_value of what was sent (-1: not yet known) */
    int membership; /* flag bit 0 */
    int priority; /* flag bits 4-7, as sent */
    const uint8_t *name; /* in the input; NULL for a name length of 0 (the daemon picks) */
    size_t name_len;
    size_t used; /* WIRE_UNIT_OK: bytes of the request */
    int defect; /* WIRE_UNIT_BAD: a wire_connect_defect */
} wire_connect;
/* The daemon's decoder, as the reference daemon reads the request: in
 * pieces as they come, and up to WIRE_MAX_PRIVATE_NAME name bytes at once,
 * so that bytes pipelined behind a shorter name make it a bad one. `final`:
 * no more bytes will come (the client closed, or went quiet): what there is
 * is decided, never WIRE_UNIT_MORE. */
int wire_decode_connect(const uint8_t *in, size_t len, int final, wire_connect *out);

/* The auth list: a length byte (or a reject code), then method names
 * separated and ended by spaces, printable ASCII. Encoding returns the unit's
 * size, or 0 if the names do not fit in WIRE_AUTH_LIST_MAX bytes. */
size_t wire_encode_auth_list(uint8_t out[WIRE_AUTH_LIST_UNIT_MAX], const char *const names[],
                             int n);
/* Could these bytes be part of an auth list (printable ASCII)? For a reader
 * that tells a peer of another protocol at once, not at its time-out. */
int wire_auth_list_plausible(const uint8_t *list, size_t len);
typedef struct {
    const uint8_t *list; /* WIRE_UNIT_OK: the names, in the input */
    size_t len;
    size_t need; /* WIRE_UNIT_MORE: bytes the unit needs */
    int code; /* WIRE_UNIT_REJECT: the code */
} wire_auth_list;
int wire_decode_auth_list(const uint8_t *in, size_t len, wire_auth_list *out);
/* Is `name` one of the space-separated words of `list` (len bytes)? */
int wire_auth_list_has(const uint8_t *list, size_t len, const char *name);

/* Auth choice: up to 3 NUL-terminated names of < 30 bytes in 30-byte slots. */
void wire_encode_auth_choice(uint8_t out[WIRE_AUTH_CHOICE], const char *const names[], int n);
typedef struct {
    int n; /* names before the first empty slot */
    const uint8_t *names[WIRE_AUTH_METHODS]; /* in the input */
    size_t lens[WIRE_AUTH_METHODS]; /* up to the NUL, at most WIRE_AUTH_NAME */
} wire_auth_choice;
/* WIRE_UNIT_MORE until all WIRE_AUTH_CHOICE bytes are there, then OK. */
int wire_decode_auth_choice(const uint8_t *in, size_t len, wire_auth_choice *out);

/* The accept: WIRE_ACCEPT, the daemon's version (a patch byte only for
 * clients of WIRE_ACCEPT_PATCH_VERSION and later), the length of the
 * private group, the private group. */
size_t wire_encode_accept(uint8_t out[WIRE_ACCEPT_MAX], int with_patch,
                          const uint8_t *private_group, size_t len);
typedef struct {
    int version; /* the daemon's, once its bytes are in (-1 before) */
    const uint8_t *group; /* WIRE_UNIT_OK: "#name#daemon", in the input */
    size_t group_len; /* 2..WIRE_MAX_NAME */
    size_t need; /* WIRE_UNIT_MORE: bytes the unit needs */
    int code; /* WIRE_UNIT_REJECT: the code */
} wire_accept;
/* The client's decoder of an accept with the patch byte (ours is 4.0.0). The
 * version is reported as soon as it is in, with WIRE_UNIT_MORE, so that a
 * client can refuse a daemon too old before it reads on. */
int wire_decode_accept(const uint8_t *in, size_t len, wire_accept *out);

/* Membership bodies. A regular membership body is valid when its vs-sets
 * fit in `len` bytes and the local offset points at one of them. */
void wire_encode_memb_body(uint8_t out[WIRE_MEMB_BODY_SIZE], const int32_t gid[3],
                           const uint8_t member[WIRE_SLOT]);
int wire_memb_body_valid(const uint8_t *body, size_t len, wire_order order);
/* Does a membership body of this type hold everything its readers take from
 * it: nothing for our own leave, the group id (12 bytes) for a transitional
 * one or one of neither kind (CAUSED_BY_* alone), and for a regular one valid vs-sets plus, for a join, leave or
 * disconnect, the changed member at WIRE_MEMB_CHANGED_AT (WIRE_MEMB_BODY_SIZE bytes)? */
int wire_memb_body_fits(const uint8_t *body, size_t len, wire_order order, uint32_t type);
/* Converts the integers of a body that fits its type to host order. */
void wire_memb_body_to_host(uint8_t *body, size_t len, wire_order order, uint32_t type);

/* Bodies of the network's membership messages (SPEC.md 6.2, 6.3, 6.8). */
/* A transitional body: the group id before the change. */
void wire_encode_trans_body(uint8_t out[WIRE_TRANS_BODY_SIZE], const int32_t gid[3]);
/* The group id of a transitional body (12 bytes at least): 0, or -1. */
int wire_decode_trans_body(const uint8_t *body, size_t len, wire_order order, int32_t gid[3]);
/* Bytes of a regular membership body with k vs-sets of counts[i] names:
 * 20 + the sum of (4 + 32 counts[i]); 0 if k is 0 or the body would exceed
 * WIRE_MAX_RECV_DATA (or hold more than WIRE_MAX_RECV_GROUPS names). */
size_t wire_memb_sets_size(const size_t counts[], size_t k);
/* A regular membership body with k vs-sets (the network's form, SPEC.md
 * 6.2): the group id, k, the offset of vs-set `local` (the receiver's), then
 * each set's count and names. `names` holds the names of all sets back to
 * back, one slot each, set 0 first. Little-endian, as the daemon writes.
 * Returns the bytes written (wire_memb_sets_size), or 0 (nothing written)
 * if local >= k, the size is 0 or it does not fit in cap. With one set of
 * one name it writes what wire_encode_memb_body does. */
size_t wire_encode_memb_sets(uint8_t *out, size_t cap, const int32_t gid[3], const size_t counts[],
                             size_t k, const uint8_t *names, size_t local);
/* In a body that wire_memb_body_valid accepts: vs-set i's member count and
 * the offset of its first name (0, or -1 if there is no set i), and the
 * index of the receiver's own set (-1 if the body is not valid). */
int wire_memb_set_at(const uint8_t *body, size_t len, wire_order order, size_t i, size_t *count,
                     size_t *names_at);
int wire_memb_local_index(const uint8_t *body, size_t len, wire_order order);

#endif /* SPREAD_CLIENT_WIRE_H */
