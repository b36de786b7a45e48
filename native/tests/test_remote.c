/* test_remote.c -- the simulated network (daemon/remote.[ch]) against
 * SPEC.md 6.1-6.3, 6.6 and 6.8: every notice it produces is decoded with
 * our client's decoders (SPX_get_memb_info, SPX_get_vs_sets_info,
 * SPX_get_vs_set_members) and checked field by field, and byte for byte
 * against the vectors where the same case exists.
 *
 * usage: test_remote [vectors-dir]   (default ../tests/vectors) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"
#include "sp.h"
#include "spx.h"
#include "daemon/remote.h"
#include "check.h"

static const char *vectors = "../tests/vectors";

/* ---- decoding what the module produced -------------------------------- */

#define MAXN 64
typedef struct {
    int ok;
    uint32_t type;
    char sender[WIRE_SLOT + 1];
    int n_members;
    char members[MAXN][WIRE_SLOT + 1];
    int data_len;
    const char *body;
    membership_info info;
    int n_sets;
    unsigned int my_index;
    int set_size[MAXN];
    char sets[MAXN][MAXN][WIRE_SLOT + 1];
} decoded;

static void slot_str(char out[WIRE_SLOT + 1], const uint8_t *slot)
{
    size_t n = wire_slot_len(slot);
    memcpy(out, slot, n);
    out[n] = '\0';
}

static decoded *decode(const spd_notice *nt)
{
    static decoded d;
    memset(&d, 0, sizeof d);
    wire_header h;
    if (nt->len < WIRE_HEADER_SIZE || wire_decode_header(nt->bytes, &h) != 0 ||
        !wire_header_plausible(&h) || wire_message_size(&h) != nt->len || h.num_groups > MAXN)
        return &d;
    CHECK(memcmp(h.hint, "\x80\x00\x00\x80", 4) == 0 || nt->kind == SPD_NOTICE_DATA);
    d.type = h.type;
    slot_str(d.sender, h.sender);
    d.n_members = h.num_groups;
    for (int i = 0; i < h.num_groups; i++)
        slot_str(d.members[i], nt->bytes + WIRE_HEADER_SIZE + (size_t)i * WIRE_SLOT);
    d.data_len = h.data_len;
    d.body = (const char *)nt->bytes + WIRE_HEADER_SIZE + (size_t)h.num_groups * WIRE_SLOT;
    if (nt->kind == SPD_NOTICE_DATA) {
        d.ok = 1;
        return &d;
    }
    if (SPX_get_memb_info(d.body, d.data_len, (service)d.type, &d.info) != 1)
        return &d;
    if (d.type & REG_MEMB_MESS) {
        vs_set_info sets[MAXN];
        d.n_sets = SPX_get_vs_sets_info(d.body, d.data_len, sets, MAXN, &d.my_index);
        if (d.n_sets < 1)
            return &d;
        if (d.n_sets > 1) { /* a too-short array is refused (SPEC.md 6.7) */
            unsigned int ignored;
            CHECK_EQ(SPX_get_vs_sets_info(d.body, d.data_len, sets, d.n_sets - 1, &ignored),
                     BUFFER_TOO_SHORT);
        }
        for (int i = 0; i < d.n_sets; i++) {
            char names[MAXN][MAX_GROUP_NAME];
            int n = SPX_get_vs_set_members(d.body, d.data_len, &sets[i], names, MAXN);
            if (n < 0)
                return &d;
            d.set_size[i] = n;
            for (int j = 0; j < n; j++)
                slot_str(d.sets[i][j], (const uint8_t *)names[j]);
        }
        /* my_vs_set of memb-info is the set the offset names. */
        CHECK_EQ(d.info.my_vs_set.num_members, sets[d.my_index].num_members);
        CHECK_EQ(d.info.my_vs_set.members_offset, sets[d.my_index].members_offset);
        CHECK_EQ(d.info.num_vs_sets, (unsigned int)d.n_sets);
    }
    d.ok = 1;
    return &d;
}

/* "a,b,c" against n names. */
static int names_eq(const char names[][WIRE_SLOT + 1], int n, const char *spec)
{
    int i = 0;
    const char *p = spec;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (i >= n || strlen(names[i]) != len || memcmp(names[i], p, len) != 0)
            return 0;
        i++;
        p += len + (e ? 1 : 0);
    }
    return i == n;
}

/* Sets "a,b|c|d,e" (the receiver's marked by a leading '*'). */
static int sets_eq(const decoded *d, const char *spec)
{
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", spec);
    int i = 0;
    char *save = NULL;
    for (char *s = strtok_r(buf, "|", &save); s; s = strtok_r(NULL, "|", &save), i++) {
        if (i >= d->n_sets)
            return 0;
        if (*s == '*') {
            if (d->my_index != (unsigned int)i)
                return 0;
            s++;
        }
        if (!names_eq((const char (*)[WIRE_SLOT + 1]) d->sets[i], d->set_size[i], s))
            return 0;
    }
    return i == d->n_sets;
}

static int receivers_eq(const spd_notice *nt, const char *spec)
{
    char names[MAXN][WIRE_SLOT + 1];
    if (nt->n_receivers > MAXN)
        return 0;
    for (size_t i = 0; i < nt->n_receivers; i++)
        slot_str(names[i], nt->receivers + i * WIRE_SLOT);
    return names_eq((const char (*)[WIRE_SLOT + 1]) names, (int)nt->n_receivers, spec);
}

static int gid_is(const int32_t *g, int32_t a, int32_t b, int32_t c)
{
    return g[0] == a && g[1] == b && g[2] == c;
}

/* A TRANSITION_MESS for group with the old id (SPEC.md 6.3, 6.5). */
static void expect_trans(const spd_notice *nt, const char *group, int32_t a, int32_t b, int32_t c,
                         const char *receivers)
{
    decoded *d = decode(nt);
    CHECK(d->ok);
    CHECK_EQ(nt->kind, SPD_NOTICE_MEMBERSHIP);
    CHECK_EQ(d->type, TRANSITION_MESS);
    CHECK(strcmp(d->sender, group) == 0);
    CHECK_EQ(d->n_members, 0);
    CHECK_EQ(d->data_len, 12);
    CHECK(gid_is(d->info.gid.id, a, b, c));
    CHECK(gid_is(nt->gid, a, b, c));
    CHECK_EQ(d->info.num_vs_sets, 0);
    CHECK_EQ(d->info.my_vs_set.num_members, 0);
    CHECK_EQ(d->info.changed_member[0], 0);
    CHECK(receivers_eq(nt, receivers));
}

/* A regular membership of cause `cause`. */
static void expect_memb(const spd_notice *nt, uint32_t cause, const char *group,
                        const char *members, const char *sets, int32_t a, int32_t b, int32_t c,
                        const char *receivers)
{
    decoded *d = decode(nt);
    CHECK(d->ok);
    CHECK_EQ(nt->kind, SPD_NOTICE_MEMBERSHIP);
    CHECK_EQ(d->type, REG_MEMB_MESS | cause);
    CHECK(strcmp(d->sender, group) == 0);
    CHECK(memcmp(nt->group, group, strlen(group)) == 0);
    CHECK(names_eq((const char (*)[WIRE_SLOT + 1]) d->members, d->n_members, members));
    CHECK(sets_eq(d, sets));
    CHECK(gid_is(d->info.gid.id, a, b, c));
    CHECK(gid_is(nt->gid, a, b, c));
    if (cause == CAUSED_BY_NETWORK) {
        CHECK_EQ(d->info.changed_member[0], 0); /* SPEC.md 6.7 */
    } else {
        CHECK_EQ(d->n_sets, 1);
        CHECK(strcmp(d->info.changed_member, d->sets[0][0]) == 0);
        CHECK_EQ(d->data_len, WIRE_MEMB_BODY_SIZE);
    }
    /* data_len = 20 + sum(4 + 32 n) (6.2) */
    int want = 20;
    for (int i = 0; i < d->n_sets; i++)
        want += 4 + 32 * d->set_size[i];
    CHECK_EQ(d->data_len, want);
    CHECK(receivers_eq(nt, receivers));
    /* Each receiver is listed, and (network cause) in its own vs-set. */
    for (size_t i = 0; i < nt->n_receivers; i++) {
        char me[WIRE_SLOT + 1];
        slot_str(me, nt->receivers + i * WIRE_SLOT);
        int listed = 0, mine = cause != CAUSED_BY_NETWORK;
        for (int j = 0; j < d->n_members; j++)
            listed |= strcmp(d->members[j], me) == 0;
        for (int j = 0; !mine && j < d->set_size[d->my_index]; j++)
            mine |= strcmp(d->sets[d->my_index][j], me) == 0;
        CHECK(listed && mine);
    }
}

/* ---- vectors ---------------------------------------------------------- */

typedef struct {
    char dir[4];
    int conn;
    char unit[16];
    uint8_t *bytes;
    size_t len;
} record;

static char *slurp(const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", vectors, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t len = 0, cap = 0, got;
    char chunk[4096];
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (len + got + 1 > cap) {
            cap = (len + got + 1) * 2;
            char *p = realloc(buf, cap);
            if (!p) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = p;
        }
        memcpy(buf + len, chunk, got);
        len += got;
    }
    fclose(f);
    if (buf)
        buf[len] = '\0';
    return buf;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* The records of a vector: dir, conn, hex, unit, in the file's order. */
static int load_records(const char *name, record *out, int max)
{
    char *text = slurp(name);
    if (!text)
        return -1;
    int n = 0;
    const char *p = text;
    while (n < max && (p = strstr(p, "\"dir\": \"")) != NULL) {
        record *r = &out[n];
        memset(r, 0, sizeof *r);
        p += 8;
        memcpy(r->dir, p, 3);
        const char *c = strstr(p, "\"conn\": ");
        const char *h = strstr(p, "\"hex\": \"");
        if (!c || !h)
            break;
        r->conn = atoi(c + 8);
        h += 8;
        const char *e = strchr(h, '"');
        if (!e)
            break;
        r->len = (size_t)(e - h) / 2;
        r->bytes = malloc(r->len ? r->len : 1);
        for (size_t i = 0; r->bytes && i < r->len; i++)
            r->bytes[i] = (uint8_t)(hexval(h[2 * i]) << 4 | hexval(h[2 * i + 1]));
        const char *u = strstr(e, "\"unit\": \"");
        if (u) {
            u += 9;
            size_t ul = strcspn(u, "\"");
            if (ul >= sizeof r->unit)
                ul = sizeof r->unit - 1;
            memcpy(r->unit, u, ul);
        }
        p = e;
        n++;
    }
    free(text);
    return n;
}

static void free_records(record *r, int n)
{
    for (int i = 0; i < n; i++)
        free(r[i].bytes);
}

/* ---- helpers ---------------------------------------------------------- */

static int32_t ip(int last)
{
    return (int32_t)(0x7F000000u | (uint32_t)last);
}

static void slot_of(uint8_t slot[WIRE_SLOT], const char *s)
{
    wire_put_slot(slot, s, strlen(s));
}

static int ljoin(spd_remote *r, const char *group, const char *member, spd_notices *out)
{
    uint8_t s[WIRE_SLOT];
    slot_of(s, member);
    return spd_remote_local_join(r, (const uint8_t *)group, strlen(group), s, out);
}

static int lleave(spd_remote *r, const char *group, const char *member, uint32_t cause,
                  spd_notices *out)
{
    uint8_t s[WIRE_SLOT];
    slot_of(s, member);
    return spd_remote_local_leave(r, (const uint8_t *)group, strlen(group), s, cause, out);
}

static int rjoin(spd_remote *r, int m, const char *group, spd_notices *out)
{
    return spd_remote_member_join(r, m, group, strlen(group), out);
}

static int rleave(spd_remote *r, int m, const char *group, spd_notices *out)
{
    return spd_remote_member_leave(r, m, group, strlen(group), out);
}

static int add_daemon(spd_remote *r, const char *name, int last, int connected, int64_t now)
{
    return spd_remote_add_daemon(r, name, strlen(name), last ? (uint32_t)ip(last) : 0, connected,
                                 now);
}

static int add_member(spd_remote *r, int daemon, const char *name)
{
    return spd_remote_member_add(r, daemon, name, strlen(name));
}

/* Our daemon "L" (127.0.0.1, membership time t) and n connected remote
 * daemons "A", "B", ... (127.0.0.2, ...) added at t: their indexes in d. */
static spd_remote *network_of(int64_t t, int n, int d[])
{
    const int32_t memb[2] = {ip(1), (int32_t)t};
    spd_remote *r = spd_remote_new("L", 1, memb);
    for (int i = 0; i < n; i++) {
        const char name[2] = {(char)('A' + i), 0};
        d[i] = add_daemon(r, name, 0, 1, t);
    }
    return r;
}

/* ---- the cases -------------------------------------------------------- */

/* vectors/synthetic_network_membership: a heal of a three-way split, built
 * by the model event by event, is the vector's message byte for byte. */
static void test_vector_network(void)
{
    record recs[4];
    int nr = load_records("synthetic_network_membership.json", recs, 4);
    CHECK_EQ(nr, 1);
    if (nr != 1)
        return;
    const int32_t memb[2] = {ip(3), 1699999000};
    spd_remote *r = spd_remote_new("localhost", 9, memb);
    spd_notices out = {0};
    int d1 = add_daemon(r, "d1", 1, 1, 1699999100);
    int d2 = add_daemon(r, "d2", 2, 1, 1699999100);
    CHECK_EQ(d1, 1);
    CHECK_EQ(d2, 2);
    int32_t id[2];
    spd_remote_memb_id(r, id);
    CHECK(id[0] == ip(1) && id[1] == 1699999101); /* two memberships: b + 1 each */
    int a = add_member(r, d1, "d1a"), b = add_member(r, d1, "d1b"), x = add_member(r, d2, "x");
    CHECK(a >= 0 && b >= 0 && x >= 0);
    CHECK_EQ(ljoin(r, "grp", "#alice#localhost", &out), 1);
    CHECK_EQ(rjoin(r, a, "grp", &out), 1);
    CHECK_EQ(rjoin(r, b, "grp", &out), 1);
    CHECK_EQ(rjoin(r, x, "grp", &out), 1);
    CHECK_EQ(ljoin(r, "grp", "#y#localhost", &out), 1);
    CHECK_EQ(out.n, 5);
    expect_memb(&out.items[4], CAUSED_BY_JOIN, "grp",
                "#d1a#d1,#d1b#d1,#x#d2,#alice#localhost,#y#localhost", "#y#localhost", ip(1),
                1699999101, 5, "#alice#localhost,#y#localhost");
    spd_notices_clear(&out);

    /* d1 is cut off: d2 (127.0.0.2) now leads our side. */
    CHECK_EQ(spd_remote_partition(r, &d1, 1, 1700000000, &out), 2);
    expect_trans(&out.items[0], "grp", ip(1), 1699999101, 5, "#alice#localhost,#y#localhost");
    expect_memb(&out.items[1], CAUSED_BY_NETWORK, "grp", "#x#d2,#alice#localhost,#y#localhost",
                "*#x#d2,#alice#localhost,#y#localhost", ip(2), 1700000000, 1,
                "#alice#localhost,#y#localhost");
    spd_notices_clear(&out);
    CHECK_EQ(spd_remote_partition(r, &d2, 1, 1700000050, &out), 2);
    expect_trans(&out.items[0], "grp", ip(2), 1700000000, 1, "#alice#localhost,#y#localhost");
    expect_memb(&out.items[1], CAUSED_BY_NETWORK, "grp", "#alice#localhost,#y#localhost",
                "*#alice#localhost,#y#localhost", ip(3), 1700000050, 1,
                "#alice#localhost,#y#localhost");
    spd_notices_clear(&out);

    /* The heal: one network membership, three sets, no transitional. */
    const int both[2] = {d1, d2};
    CHECK_EQ(spd_remote_merge(r, both, 2, 1700000100, &out), 1);
    CHECK_EQ(out.items[0].len, recs[0].len);
    CHECK(out.items[0].len == recs[0].len &&
          memcmp(out.items[0].bytes, recs[0].bytes, recs[0].len) == 0);
    expect_memb(&out.items[0], CAUSED_BY_NETWORK, "grp",
                "#d1a#d1,#d1b#d1,#x#d2,#alice#localhost,#y#localhost",
                "#d1a#d1,#d1b#d1|#x#d2|*#alice#localhost,#y#localhost", ip(1), 1700000100, 1,
                "#alice#localhost,#y#localhost");
    /* The reference library's results recorded in the vector. */
    decoded *d = decode(&out.items[0]);
    CHECK_EQ(d->data_len, 192);
    CHECK_EQ(d->info.my_vs_set.num_members, 2);
    CHECK_EQ(d->info.my_vs_set.members_offset, 128);
    CHECK_EQ(d->my_index, 2);
    CHECK_EQ(d->n_members, 5);
    CHECK(strcmp(d->members[3], "#alice#localhost") == 0); /* alice's mess_type: 3 */
    spd_notices_clear(&out);
    free_records(recs, nr);
    spd_remote_free(r);
}

/* vectors/synthetic_transitional: a cut of a group at [127.0.0.1,
 * 1700000000, 6] gives the vector's TRANSITION_MESS byte for byte, then the
 * network membership of the side that stays. Also remote joins and leaves
 * while connected: plain CAUSED_BY_JOIN / LEAVE (6.1), c counting on. */
static void test_vector_transitional(void)
{
    record recs[4];
    int nr = load_records("synthetic_transitional.json", recs, 4);
    CHECK_EQ(nr, 1);
    if (nr != 1)
        return;
    const int32_t memb[2] = {ip(1), 1699999999};
    spd_remote *r = spd_remote_new("localhost", 9, memb);
    spd_notices out = {0};
    int r1 = add_daemon(r, "r1", 0, 1, 1700000000);
    CHECK_EQ(r1, 1);
    int m1 = add_member(r, r1, "m1"), m2 = add_member(r, r1, "m2");
    CHECK_EQ(ljoin(r, "grp", "#bob#localhost", &out), 1);
    CHECK_EQ(rjoin(r, m1, "grp", &out), 1);
    expect_memb(&out.items[1], CAUSED_BY_JOIN, "grp", "#bob#localhost,#m1#r1", "#m1#r1", ip(1),
                1700000000, 2, "#bob#localhost");
    CHECK_EQ(ljoin(r, "grp", "#alice#localhost", &out), 1);
    CHECK_EQ(rleave(r, m1, "grp", &out), 1);
    expect_memb(&out.items[3], CAUSED_BY_LEAVE, "grp", "#alice#localhost,#bob#localhost", "#m1#r1",
                ip(1), 1700000000, 4, "#alice#localhost,#bob#localhost");
    CHECK_EQ(rjoin(r, m1, "grp", &out), 1);
    CHECK_EQ(rjoin(r, m2, "grp", &out), 1);
    CHECK_EQ(rjoin(r, m2, "grp", &out), 0); /* already a member */
    CHECK_EQ(rleave(r, m2, "nope", &out), 0);
    expect_memb(&out.items[5], CAUSED_BY_JOIN, "grp",
                "#alice#localhost,#bob#localhost,#m1#r1,#m2#r1", "#m2#r1", ip(1), 1700000000, 6,
                "#alice#localhost,#bob#localhost");
    spd_notices_clear(&out);

    CHECK_EQ(spd_remote_partition(r, &r1, 1, 1700000200, &out), 2);
    CHECK(out.items[0].len == recs[0].len &&
          memcmp(out.items[0].bytes, recs[0].bytes, recs[0].len) == 0);
    expect_trans(&out.items[0], "grp", ip(1), 1700000000, 6, "#alice#localhost,#bob#localhost");
    record cut[2];
    CHECK_EQ(load_records("synthetic_network_cut.json", cut, 2), 1);
    CHECK(out.items[1].len == cut[0].len &&
          memcmp(out.items[1].bytes, cut[0].bytes, cut[0].len) == 0);
    free_records(cut, 1);
    expect_memb(&out.items[1], CAUSED_BY_NETWORK, "grp", "#alice#localhost,#bob#localhost",
                "*#alice#localhost,#bob#localhost", ip(1), 1700000200, 1,
                "#alice#localhost,#bob#localhost");
    spd_notices_clear(&out);

    /* Cut off, r1's members are not seen; their multicasts do not cross. */
    CHECK_EQ(rleave(r, m2, "grp", &out), 0);
    uint8_t g[WIRE_SLOT];
    slot_of(g, "grp");
    CHECK_EQ(spd_remote_multicast(r, m1, AGREED_MESS, g, 1, 0, (const uint8_t *)"x", 1, &out), 0);
    CHECK_EQ(out.n, 0);
    /* r1's side saw its own cut: [127.0.0.2, 1700000200, 1], then m2 left. */
    int32_t gid[3];
    uint8_t names[4 * WIRE_SLOT];
    CHECK_EQ(spd_remote_view(r, r1, "grp", 3, gid, names, 4), 1);
    CHECK(gid_is(gid, ip(2), 1700000200, 2));
    CHECK(memcmp(names, "#m1#r1", 7) == 0);
    CHECK_EQ(spd_remote_view(r, 0, "grp", 3, gid, names, 4), 2);
    CHECK(gid_is(gid, ip(1), 1700000200, 1));

    /* The merge back: no transitional, a set per side, ours first (its
     * previous id [127.0.0.1, ...] sorts before r1's [127.0.0.2, ...]). */
    CHECK_EQ(spd_remote_merge(r, &r1, 1, 1700000300, &out), 1);
    record merged[2];
    CHECK_EQ(load_records("synthetic_network_merge.json", merged, 2), 1);
    CHECK(out.items[0].len == merged[0].len &&
          memcmp(out.items[0].bytes, merged[0].bytes, merged[0].len) == 0);
    free_records(merged, 1);
    expect_memb(&out.items[0], CAUSED_BY_NETWORK, "grp", "#alice#localhost,#bob#localhost,#m1#r1",
                "*#alice#localhost,#bob#localhost|#m1#r1", ip(1), 1700000300, 1,
                "#alice#localhost,#bob#localhost");
    spd_notices_clear(&out);
    free_records(recs, nr);
    spd_remote_free(r);
}

/* A captured vector replayed through the local hooks with no remote daemon:
 * every REG_MEMB message each connection received is the notice the model
 * gives that receiver, byte for byte (the daemon's own path, SPEC.md 6.1). */
static void replay_vector(const char *name, int expect_count)
{
    record recs[64];
    int nr = load_records(name, recs, 64);
    CHECK(nr > 0);
    if (nr <= 0)
        return;
    /* The membership time is the capture's: take it from the first id. */
    int32_t memb[2] = {ip(1), 0};
    for (int i = 0; i < nr && !memb[1]; i++) {
        wire_header h;
        if (strcmp(recs[i].unit, "message") == 0 && strcmp(recs[i].dir, "s2c") == 0 &&
            wire_decode_header(recs[i].bytes, &h) == 0 && (h.type & WIRE_REG_MEMB_MESS))
            memb[1] = wire_get_i32(recs[i].bytes + 48 + 32 * h.num_groups + 4, WIRE_LE);
    }
    spd_remote *r = spd_remote_new("localhost", 9, memb);
    spd_notices out = {0};
    /* Per connection: its private group, its groups, what it got. */
    char priv[8][WIRE_SLOT + 1] = {{0}};
    char groups[8][4][WIRE_SLOT + 1] = {{{0}}};
    int matched = 0, expected = 0;
    for (int i = 0; i < nr; i++) {
        record *rec = &recs[i];
        wire_header h;
        if (strcmp(rec->unit, "message") != 0 || rec->conn < 1 || rec->conn > 7 ||
            wire_decode_header(rec->bytes, &h) != 0)
            continue;
        int c = rec->conn;
        if (strcmp(rec->dir, "c2s") == 0) {
            slot_str(priv[c], h.sender);
            char g[WIRE_SLOT + 1];
            slot_str(g, rec->bytes + 48);
            if (h.type == WIRE_JOIN_MESS) {
                for (int k = 0; k < 4; k++)
                    if (!groups[c][k][0]) {
                        strcpy(groups[c][k], g);
                        break;
                    }
                CHECK(ljoin(r, g, priv[c], &out) >= 0);
            } else if (h.type == WIRE_LEAVE_MESS) {
                for (int k = 0; k < 4; k++)
                    if (strcmp(groups[c][k], g) == 0)
                        groups[c][k][0] = 0;
                CHECK(lleave(r, g, priv[c], WIRE_CAUSED_BY_LEAVE, &out) >= 0);
            } else if (h.type == WIRE_KILL_MESS) {
                for (int k = 0; k < 4; k++)
                    if (groups[c][k][0]) {
                        CHECK(lleave(r, groups[c][k], priv[c], WIRE_CAUSED_BY_DISC, &out) >= 0);
                        groups[c][k][0] = 0;
                    }
            }
            continue;
        }
        if (!(h.type & WIRE_REG_MEMB_MESS))
            continue;
        /* The oldest notice still owed to this connection. */
        expected++;
        uint8_t me[WIRE_SLOT];
        slot_of(me, priv[c]);
        for (int attempt = 0; attempt < 2; attempt++) {
            int served = 0;
            for (size_t k = 0; k < out.n && !served; k++) {
                spd_notice *nt = &out.items[k];
                size_t j = 0;
                while (j < nt->n_receivers && memcmp(nt->receivers + j * WIRE_SLOT, me, WIRE_SLOT))
                    j++;
                if (j == nt->n_receivers)
                    continue;
                int same = nt->len == rec->len && memcmp(nt->bytes, rec->bytes, rec->len) == 0;
                CHECK(same);
                matched += same;
                /* Served: drop this receiver from the notice. */
                memmove(nt->receivers + j * WIRE_SLOT, nt->receivers + (j + 1) * WIRE_SLOT,
                        (nt->n_receivers - j - 1) * WIRE_SLOT);
                nt->n_receivers--;
                served = 1;
            }
            if (served || !(h.type & WIRE_CAUSED_BY_DISC))
                break;
            /* A client that closed its socket without a request (no c2s
             * record): the disconnect the daemon saw, then match again. */
            char gone[WIRE_SLOT + 1];
            slot_str(gone, rec->bytes + 48 + 32 * (size_t)h.num_groups + WIRE_MEMB_CHANGED_AT);
            for (int o = 1; o < 8; o++) {
                if (strcmp(priv[o], gone) != 0)
                    continue;
                for (int k = 0; k < 4; k++)
                    if (groups[o][k][0]) {
                        CHECK(lleave(r, groups[o][k], priv[o], WIRE_CAUSED_BY_DISC, &out) >= 0);
                        groups[o][k][0] = 0;
                    }
            }
        }
    }
    CHECK_EQ(expected, expect_count);
    CHECK_EQ(matched, expected);
    for (size_t k = 0; k < out.n; k++)
        CHECK_EQ(out.items[k].n_receivers, 0); /* nothing the daemon did not send */
    spd_notices_clear(&out);
    free_records(recs, nr);
    spd_remote_free(r);
}

/* Three daemons (SPEC.md 6.8): a crash is a cut; a group without members
 * on the lost daemon hears nothing; transitional messages of one event
 * come before its network memberships. */
static void test_crash_and_order(void)
{
    const int32_t memb[2] = {ip(1), 1000};
    spd_remote *r = spd_remote_new("L", 1, memb);
    spd_notices out = {0};
    int A = add_daemon(r, "A", 0, 1, 1000), B = add_daemon(r, "B", 0, 1, 1000);
    int a = add_member(r, A, "a"), b = add_member(r, B, "b");
    CHECK_EQ(ljoin(r, "g1", "#l#L", &out), 1);
    CHECK_EQ(ljoin(r, "g2", "#l#L", &out), 1);
    CHECK_EQ(ljoin(r, "g3", "#l#L", &out), 1);
    CHECK_EQ(ljoin(r, "g4", "#l#L", &out), 1);
    CHECK_EQ(rjoin(r, a, "g1", &out), 1);
    CHECK_EQ(rjoin(r, b, "g1", &out), 1);
    CHECK_EQ(rjoin(r, b, "g2", &out), 1);
    CHECK_EQ(rjoin(r, a, "g3", &out), 1);
    CHECK_EQ(rjoin(r, b, "only-b", &out), 0); /* no local member: nothing to tell */
    spd_notices_clear(&out);
    int32_t id[2];
    spd_remote_memb_id(r, id);
    CHECK_EQ(id[1], 1002);

    CHECK_EQ(spd_remote_crash(r, B, 1001, &out), 4); /* b = 1003: strictly after 1002 */
    expect_trans(&out.items[0], "g1", ip(1), 1002, 3, "#l#L");
    expect_trans(&out.items[1], "g2", ip(1), 1002, 2, "#l#L");
    expect_memb(&out.items[2], CAUSED_BY_NETWORK, "g1", "#l#L,#a#A", "*#l#L,#a#A", ip(1), 1003, 1,
                "#l#L");
    expect_memb(&out.items[3], CAUSED_BY_NETWORK, "g2", "#l#L", "*#l#L", ip(1), 1003, 1, "#l#L");
    spd_notices_clear(&out);
    CHECK_EQ(spd_remote_alive(r, B), 0);
    CHECK(spd_remote_member_slot(r, b) == NULL); /* its members are gone */
    CHECK_EQ(spd_remote_crash(r, B, 1004, &out), SPD_REMOTE_E_INVALID);
    int32_t gid[3];
    CHECK_EQ(spd_remote_view(r, 0, "only-b", 6, gid, NULL, 0), 0);
    /* g3, g4 kept their ids: the next join counts on. */
    CHECK_EQ(ljoin(r, "g3", "#m#L", &out), 1);
    expect_memb(&out.items[0], CAUSED_BY_JOIN, "g3", "#l#L,#m#L,#a#A", "#m#L", ip(1), 1002, 3,
                "#l#L,#m#L");
    spd_notices_clear(&out);

    /* B restarts empty and merges: no group gains a member, nothing. */
    CHECK_EQ(spd_remote_merge(r, &B, 1, 1010, &out), 0);
    CHECK_EQ(spd_remote_alive(r, B), 1);
    CHECK_EQ(spd_remote_connected(r, B), 1);
    spd_remote_memb_id(r, id);
    CHECK_EQ(id[1], 1010);
    int b2 = add_member(r, B, "b");
    CHECK(b2 >= 0);
    CHECK_EQ(rjoin(r, b2, "g1", &out), 1);
    expect_memb(&out.items[0], CAUSED_BY_JOIN, "g1", "#l#L,#a#A,#b#B", "#b#B", ip(1), 1003, 2,
                "#l#L");
    spd_notices_clear(&out);

    /* A remote member's disconnect: DISCONNECT in each of its groups, by name. */
    CHECK_EQ(spd_remote_member_remove(r, a, &out), 2);
    expect_memb(&out.items[0], CAUSED_BY_DISCONNECT, "g1", "#l#L,#b#B", "#a#A", ip(1), 1003, 3,
                "#l#L");
    expect_memb(&out.items[1], CAUSED_BY_DISCONNECT, "g3", "#l#L,#m#L", "#a#A", ip(1), 1002, 4,
                "#l#L,#m#L");
    CHECK(spd_remote_member_slot(r, a) == NULL);
    spd_notices_clear(&out);
    spd_remote_free(r);
}

/* A three-way split healed in one event (6.8), the sets ordered by their
 * previous ids; members that joined or left on the far side meanwhile. */
static void test_multiway(void)
{
    const int32_t memb[2] = {ip(1), 500};
    spd_remote *r = spd_remote_new("L", 1, memb);
    spd_notices out = {0};
    int A = add_daemon(r, "A", 0, 1, 500), B = add_daemon(r, "B", 0, 1, 500);
    int a1 = add_member(r, A, "a1"), a2 = add_member(r, A, "a2"), b1 = add_member(r, B, "b1");
    CHECK_EQ(ljoin(r, "g", "#z#L", &out), 1);
    CHECK_EQ(rjoin(r, a1, "g", &out), 1);
    CHECK_EQ(rjoin(r, b1, "g", &out), 1);
    spd_notices_clear(&out);
    /* A and B cut off together: one component on their side. */
    const int ab[2] = {A, B};
    CHECK_EQ(spd_remote_partition(r, ab, 2, 600, &out), 2);
    expect_trans(&out.items[0], "g", ip(1), 502, 3, "#z#L");
    expect_memb(&out.items[1], CAUSED_BY_NETWORK, "g", "#z#L", "*#z#L", ip(1), 600, 1, "#z#L");
    spd_notices_clear(&out);
    CHECK_EQ(spd_remote_connected(r, A), 0);
    /* Then A and B split from each other: nothing here. */
    CHECK_EQ(spd_remote_partition(r, &B, 1, 610, &out), 0);
    CHECK_EQ(out.n, 0);
    /* Meanwhile: a2 joins on A, a1 leaves; a local member joins. */
    CHECK_EQ(rjoin(r, a2, "g", &out), 0);
    CHECK_EQ(rleave(r, a1, "g", &out), 0);
    CHECK_EQ(ljoin(r, "g", "#y#L", &out), 1);
    expect_memb(&out.items[0], CAUSED_BY_JOIN, "g", "#y#L,#z#L", "#y#L", ip(1), 600, 2,
                "#y#L,#z#L");
    spd_notices_clear(&out);
    int32_t gid[3];
    CHECK_EQ(spd_remote_view(r, A, "g", 1, gid, NULL, 0), 1);
    CHECK(gid_is(gid, ip(2), 610, 3)); /* A alone since 610, then join + leave */
    CHECK_EQ(spd_remote_view(r, B, "g", 1, gid, NULL, 0), 1);
    CHECK(gid_is(gid, ip(3), 610, 1));

    /* The heal: one message, three sets (ours [ip1,600,2] first), no TRANS. */
    CHECK_EQ(spd_remote_merge(r, ab, 2, 700, &out), 1);
    expect_memb(&out.items[0], CAUSED_BY_NETWORK, "g", "#y#L,#z#L,#a2#A,#b1#B",
                "*#y#L,#z#L|#a2#A|#b1#B", ip(1), 700, 1, "#y#L,#z#L");
    spd_notices_clear(&out);
    /* A merge of what is merged already: no change, no membership. */
    CHECK_EQ(spd_remote_merge(r, &A, 1, 800, &out), 0);
    int32_t id[2];
    spd_remote_memb_id(r, id);
    CHECK_EQ(id[1], 700);

    /* reconfigure: a cut and a merge at once (A leaves, B stays): first a
     * regrouping L+B | A, then L+A | B in one event: TRANS and two sets. */
    const int lb_a[3] = {0, 1, 0};
    CHECK_EQ(spd_remote_reconfigure(r, lb_a, 3, 900, &out), 2);
    spd_notices_clear(&out);
    const int la_b[3] = {5, 5, 7};
    CHECK_EQ(spd_remote_reconfigure(r, la_b, 3, 901, &out), 2);
    expect_trans(&out.items[0], "g", ip(1), 900, 1, "#y#L,#z#L");
    expect_memb(&out.items[1], CAUSED_BY_NETWORK, "g", "#y#L,#z#L,#a2#A", "*#y#L,#z#L|#a2#A", ip(1),
                901, 1, "#y#L,#z#L");
    spd_notices_clear(&out);
    CHECK_EQ(spd_remote_reconfigure(r, la_b, 2, 902, &out), SPD_REMOTE_E_INVALID);
    spd_remote_free(r);
}

/* Remote multicasts reach local members as from another daemon (8.4). */
static void test_multicast(void)
{
    const int32_t memb[2] = {ip(1), 10};
    spd_remote *r = spd_remote_new("L", 1, memb);
    spd_notices out = {0};
    int A = add_daemon(r, "A", 0, 1, 10);
    int m = add_member(r, A, "m");
    CHECK_EQ(ljoin(r, "g", "#x#L", &out), 1);
    CHECK_EQ(ljoin(r, "g", "#y#L", &out), 1);
    CHECK_EQ(ljoin(r, "h", "#y#L", &out), 1);
    CHECK_EQ(rjoin(r, m, "g", &out), 1);
    spd_notices_clear(&out);
    uint8_t to[4 * WIRE_SLOT];
    slot_of(to, "g");
    slot_of(to + 32, "h");
    slot_of(to + 64, "#w#L");     /* a local private group, even not in a group */
    slot_of(to + 96, "#other#A"); /* a remote one: not ours to deliver */
    const uint8_t payload[5] = {'h', 'e', 'l', 'l', 'o'};
    CHECK_EQ(spd_remote_multicast(r, m, SAFE_MESS | SELF_DISCARD, to, 4, 0x1234, payload, 5, &out),
             1);
    spd_notice *nt = &out.items[0];
    CHECK_EQ(nt->kind, SPD_NOTICE_DATA);
    CHECK(receivers_eq(nt, "#w#L,#x#L,#y#L"));
    wire_header h;
    CHECK_EQ(wire_decode_header(nt->bytes, &h), 0);
    CHECK_EQ(h.type, SAFE_MESS | SELF_DISCARD);
    CHECK(memcmp(h.sender, "#m#A\0", 5) == 0);
    CHECK_EQ(h.num_groups, 4);
    CHECK_EQ(h.data_len, 5);
    CHECK_EQ(wire_hint_mess_type(h.hint), 0x1234);
    CHECK(memcmp(nt->bytes + 48, to, sizeof to) == 0);
    CHECK(memcmp(nt->bytes + 48 + sizeof to, payload, 5) == 0);
    CHECK_EQ(nt->len, 48 + sizeof to + 5);
    spd_notices_clear(&out);
    /* Nobody local: nothing. Bad service, too many groups: refused. */
    slot_of(to, "nobody");
    CHECK_EQ(spd_remote_multicast(r, m, AGREED_MESS, to, 1, 0, NULL, 0, &out), 0);
    CHECK_EQ(spd_remote_multicast(r, m, WIRE_JOIN_MESS, to, 1, 0, NULL, 0, &out),
             SPD_REMOTE_E_INVALID);
    CHECK_EQ(spd_remote_multicast(r, m, 0, to, 1, 0, NULL, 0, &out), SPD_REMOTE_E_INVALID);
    CHECK_EQ(spd_remote_multicast(r, m, AGREED_MESS, to, 101, 0, NULL, 0, &out),
             SPD_REMOTE_E_INVALID);
    CHECK_EQ(spd_remote_multicast(r, m, AGREED_MESS, to, 1, 0, payload, WIRE_MAX_BODY, &out),
             SPD_REMOTE_E_INVALID);
    CHECK_EQ(spd_remote_multicast(r, 99, AGREED_MESS, to, 1, 0, NULL, 0, &out),
             SPD_REMOTE_E_INVALID);
    CHECK_EQ(out.n, 0);
    spd_remote_free(r);
}

/* A group whose local members all left lives on with its remote members
 * and its id; the next local join continues it. adopt_group hands over a
 * group that predates the model. */
static void test_continuity_and_adopt(void)
{
    const int32_t memb[2] = {ip(1), 10};
    spd_remote *r = spd_remote_new("L", 1, memb);
    spd_notices out = {0};
    int A = add_daemon(r, "A", 0, 1, 10);
    int m = add_member(r, A, "m");
    CHECK_EQ(ljoin(r, "g", "#x#L", &out), 1);
    CHECK_EQ(rjoin(r, m, "g", &out), 1);
    CHECK_EQ(lleave(r, "g", "#x#L", WIRE_CAUSED_BY_LEAVE, &out), 0); /* nobody local to tell */
    CHECK_EQ(lleave(r, "g", "#x#L", WIRE_CAUSED_BY_LEAVE, &out), 0); /* not a member */
    CHECK_EQ(lleave(r, "g", "#x#L", 0x1234, &out), SPD_REMOTE_E_INVALID);
    spd_notices_clear(&out);
    CHECK_EQ(ljoin(r, "g", "#x#L", &out), 1);
    expect_memb(&out.items[0], CAUSED_BY_JOIN, "g", "#x#L,#m#A", "#x#L", ip(1), 11, 4, "#x#L");
    spd_notices_clear(&out);
    /* The remote member goes: the group is ours alone; then it is empty. */
    CHECK_EQ(rleave(r, m, "g", &out), 1);
    CHECK_EQ(lleave(r, "g", "#x#L", WIRE_CAUSED_BY_DISC, &out), 0);
    int32_t gid[3];
    CHECK_EQ(spd_remote_view(r, 0, "g", 1, gid, NULL, 0), 0);
    CHECK_EQ(ljoin(r, "g", "#x#L", &out), 1); /* a new group: c = 1 */
    CHECK(gid_is(out.items[out.n - 1].gid, ip(1), 11, 1));
    spd_notices_clear(&out);

    uint8_t two[2 * WIRE_SLOT];
    slot_of(two, "#q#L");
    slot_of(two + 32, "#p#L");
    const int32_t old[3] = {ip(1), 9, 17};
    CHECK_EQ(spd_remote_adopt_group(r, (const uint8_t *)"old", 3, old, two, 2), 0);
    CHECK_EQ(spd_remote_adopt_group(r, (const uint8_t *)"old", 3, old, two, 2),
             SPD_REMOTE_E_INVALID);
    CHECK_EQ(rjoin(r, m, "old", &out), 1);
    expect_memb(&out.items[0], CAUSED_BY_JOIN, "old", "#p#L,#q#L,#m#A", "#m#A", ip(1), 9, 18,
                "#p#L,#q#L");
    spd_notices_clear(&out);
    spd_remote_free(r);
}

/* Arguments and limits. */
static void test_limits(void)
{
    const int32_t memb[2] = {ip(1), 10};
    CHECK(spd_remote_new("", 0, memb) == NULL);
    CHECK(spd_remote_new("bad#name", 8, memb) == NULL);
    CHECK(spd_remote_new("12345678901234567890", 20, memb) == NULL);
    spd_remote *r = spd_remote_new("L", 1, memb);
    spd_notices out = {0};
    CHECK_EQ(add_daemon(r, "L", 0, 1, 10), SPD_REMOTE_E_INVALID);  /* ours */
    CHECK_EQ(add_daemon(r, "X", 1, 1, 10), SPD_REMOTE_E_INVALID);  /* our address */
    CHECK_EQ(add_daemon(r, "a b", 0, 1, 10), SPD_REMOTE_E_INVALID);
    for (int i = 1; i < SPD_REMOTE_MAX_DAEMONS; i++) {
        char name[16];
        snprintf(name, sizeof name, "d%d", i);
        CHECK_EQ(add_daemon(r, name, 0, i % 2, 10), i);
    }
    CHECK_EQ(add_daemon(r, "more", 0, 1, 10), SPD_REMOTE_E_LIMIT);
    CHECK_EQ(spd_remote_find_daemon(r, "d7", 2), 7);
    CHECK_EQ(spd_remote_connected(r, 2), 0);
    CHECK_EQ(spd_remote_connected(r, 3), 1);
    CHECK_EQ(spd_remote_connected(r, 99), SPD_REMOTE_E_INVALID);
    CHECK_EQ(add_member(r, 0, "local"), SPD_REMOTE_E_INVALID);
    CHECK_EQ(add_member(r, 1, "elevenchars"), SPD_REMOTE_E_INVALID);
    int first = add_member(r, 1, "tenchars10");
    CHECK(first >= 0);
    CHECK(memcmp(spd_remote_member_slot(r, first), "#tenchars10#d1\0", 15) == 0);
    CHECK_EQ(add_member(r, 1, "tenchars10"), SPD_REMOTE_E_INVALID);
    CHECK_EQ(spd_remote_find_member(r, 1, "tenchars10", 10), first);
    int n = 1;
    for (int i = 0; i < SPD_REMOTE_MAX_MEMBERS + 5; i++) {
        char name[16];
        snprintf(name, sizeof name, "m%d", i);
        if (add_member(r, 1 + i % 15, name) >= 0)
            n++;
    }
    CHECK_EQ(n, SPD_REMOTE_MAX_MEMBERS);
    CHECK_EQ(add_member(r, 2, "again"), SPD_REMOTE_E_LIMIT);
    CHECK_EQ(spd_remote_member_remove(r, first, &out), 0);
    CHECK(add_member(r, 2, "again") >= 0);
    CHECK_EQ(rjoin(r, 5, "", &out), SPD_REMOTE_E_INVALID);
    CHECK_EQ(rjoin(r, 5, "#priv", &out), SPD_REMOTE_E_INVALID);
    CHECK_EQ(ljoin(r, "g", "nohash", &out), SPD_REMOTE_E_INVALID);
    int zero = 0, bad = 99, dup[2] = {3, 3};
    CHECK_EQ(spd_remote_partition(r, &zero, 1, 10, &out), SPD_REMOTE_E_INVALID); /* ours */
    CHECK_EQ(spd_remote_partition(r, &bad, 1, 10, &out), SPD_REMOTE_E_INVALID);
    CHECK_EQ(spd_remote_partition(r, dup, 2, 10, &out), SPD_REMOTE_E_INVALID);
    CHECK_EQ(spd_remote_partition(r, dup, 0, 10, &out), SPD_REMOTE_E_INVALID);
    CHECK_EQ(spd_remote_crash(r, 0, 10, &out), SPD_REMOTE_E_INVALID);
    CHECK_EQ(out.n, 0);
    spd_remote_free(r);

    /* Groups: up to SPD_REMOTE_MAX_GROUPS, then refused. */
    r = spd_remote_new("L", 1, memb);
    int ok = 0;
    for (int i = 0; i < SPD_REMOTE_MAX_GROUPS + 3; i++) {
        char g[16];
        snprintf(g, sizeof g, "g%d", i);
        if (ljoin(r, g, "#x#L", &out) == 1)
            ok++;
        spd_notices_clear(&out);
    }
    CHECK_EQ(ok, SPD_REMOTE_MAX_GROUPS);
    CHECK_EQ(ljoin(r, "one-more", "#x#L", &out), SPD_REMOTE_E_LIMIT);
    spd_remote_free(r);

    /* Members of one group: up to SPD_REMOTE_MAX_GROUP_MEMBERS. */
    r = spd_remote_new("L", 1, memb);
    ok = 0;
    for (int i = 0; i < SPD_REMOTE_MAX_GROUP_MEMBERS + 3; i++) {
        char me[WIRE_SLOT];
        snprintf(me, sizeof me, "#u%d#L", i);
        if (ljoin(r, "big", me, &out) == 1)
            ok++;
        spd_notices_clear(&out);
    }
    CHECK_EQ(ok, SPD_REMOTE_MAX_GROUP_MEMBERS);
    spd_remote_free(r);
    spd_notices_clear(NULL);
    spd_remote_free(NULL);
}

/* Random events with a fixed seed: every notice decodes, lists its
 * receivers, and a network membership's sets are its member list. */
/* Under churn (SPEC.md 6.8): a change begun and not yet installed; joins
 * and leaves inside its transitional period are network memberships with
 * the transitional id, c counting on, the leaving daemon's members in a set
 * of their own and a joiner alone in the last, each followed by another
 * TRANSITION_MESS; the installation is one network membership, no second
 * TRANSITION_MESS. */
static void test_churn_window(void)
{
    int d[2];
    spd_remote *r = network_of(1000, 2, d);
    spd_notices out = {0};
    int A = d[0], B = d[1], a = add_member(r, A, "a"), b = add_member(r, B, "b");
    ljoin(r, "g", "#l#L", &out);
    ljoin(r, "g", "#m#L", &out);
    rjoin(r, a, "g", &out);
    rjoin(r, b, "g", &out);
    spd_notices_clear(&out);
    CHECK_EQ(spd_remote_settle(r, 1050, &out), SPD_REMOTE_E_INVALID); /* nothing pending */

    CHECK_EQ(spd_remote_begin(r, SPD_EVENT_PARTITION, &B, 1, 1100, &out), 1);
    CHECK_EQ(spd_remote_pending(r), 1);
    expect_trans(&out.items[0], "g", ip(1), 1002, 4, "#l#L,#m#L");
    spd_notices_clear(&out);
    CHECK_EQ(spd_remote_connected(r, B), 1); /* installed as it was */

    /* A leave in the window: b still listed, in a set of its own. */
    CHECK_EQ(rleave(r, a, "g", &out), 2);
    expect_memb(&out.items[0], CAUSED_BY_NETWORK, "g", "#l#L,#m#L,#b#B", "*#l#L,#m#L|#b#B", ip(1),
                1100, 5, "#l#L,#m#L");
    expect_trans(&out.items[1], "g", ip(1), 1100, 5, "#l#L,#m#L");
    spd_notices_clear(&out);

    /* A local join: the joiner alone in the last set, its offset there. */
    CHECK_EQ(ljoin(r, "g", "#n#L", &out), 3);
    expect_memb(&out.items[0], CAUSED_BY_NETWORK, "g", "#l#L,#m#L,#n#L,#b#B",
                "*#l#L,#m#L|#b#B|#n#L", ip(1), 1100, 6, "#l#L,#m#L");
    expect_memb(&out.items[1], CAUSED_BY_NETWORK, "g", "#l#L,#m#L,#n#L,#b#B",
                "#l#L,#m#L|#b#B|*#n#L", ip(1), 1100, 6, "#n#L");
    expect_trans(&out.items[2], "g", ip(1), 1100, 6, "#l#L,#m#L,#n#L");
    spd_notices_clear(&out);

    /* The leaving daemon's members cannot act; their data is lost. */
    CHECK_EQ(rjoin(r, b, "g2", &out), SPD_REMOTE_E_BUSY);
    CHECK_EQ(spd_remote_member_remove(r, b, &out), SPD_REMOTE_E_BUSY);
    uint8_t to[WIRE_SLOT];
    slot_of(to, "g");
    CHECK_EQ(spd_remote_multicast(r, b, AGREED_MESS, to, 1, 0, (const uint8_t *)"x", 1, &out), 0);
    CHECK_EQ(spd_remote_multicast(r, a, AGREED_MESS, to, 1, 0, (const uint8_t *)"x", 1, &out), 1);
    CHECK_EQ(out.items[0].kind, SPD_NOTICE_DATA); /* from a daemon that stays: delivered */
    spd_notices_clear(&out);
    CHECK_EQ(add_daemon(r, "C", 0, 1, 1150), SPD_REMOTE_E_BUSY);
    CHECK(add_daemon(r, "D", 0, 0, 1150) > 0); /* alone: fine */

    /* A remote join that stays: alone last too. */
    CHECK_EQ(rjoin(r, a, "g", &out), 2);
    expect_memb(&out.items[0], CAUSED_BY_NETWORK, "g", "#l#L,#m#L,#n#L,#a#A,#b#B",
                "*#l#L,#m#L,#n#L|#b#B|#a#A", ip(1), 1100, 7, "#l#L,#m#L,#n#L");
    expect_trans(&out.items[1], "g", ip(1), 1100, 7, "#l#L,#m#L,#n#L");
    spd_notices_clear(&out);

    /* A group not in a transitional period: told as usual. */
    CHECK_EQ(ljoin(r, "g2", "#l#L", &out), 1);
    expect_memb(&out.items[0], CAUSED_BY_JOIN, "g2", "#l#L", "#l#L", ip(1), 1002, 1, "#l#L");
    spd_notices_clear(&out);

    /* Installed: one network membership, no TRANSITION_MESS, c = 1. */
    CHECK_EQ(spd_remote_settle(r, 1200, &out), 1);
    expect_memb(&out.items[0], CAUSED_BY_NETWORK, "g", "#l#L,#m#L,#n#L,#a#A",
                "*#l#L,#m#L,#n#L,#a#A", ip(1), 1200, 1, "#l#L,#m#L,#n#L");
    spd_notices_clear(&out);
    CHECK_EQ(spd_remote_pending(r), 0);
    CHECK_EQ(spd_remote_connected(r, B), 0);
    CHECK_EQ(rjoin(r, b, "g2", &out), 0); /* over there now: not seen */
    spd_notices_clear(&out);
    spd_remote_free(r);
}

/* Cascades: a second cut while one is pending adds no TRANSITION_MESS for
 * a group told already; a merge while a partition is pending settles both
 * in one network membership (a set per component); a change undone before
 * it is installed still ends the transitional period with one. A crash
 * pending: its members cannot act; settled, they are gone. */
static void test_churn_cascade(void)
{
    int d[3];
    spd_remote *r = network_of(2000, 3, d);
    spd_notices out = {0};
    int A = d[0], B = d[1], C = d[2];
    int a = add_member(r, A, "a"), b = add_member(r, B, "b"), c = add_member(r, C, "c");
    ljoin(r, "g", "#l#L", &out);
    rjoin(r, a, "g", &out);
    rjoin(r, b, "g", &out);
    rjoin(r, c, "g", &out);
    spd_notices_clear(&out);

    CHECK_EQ(spd_remote_partition(r, &C, 1, 2100, &out), 2);
    expect_trans(&out.items[0], "g", ip(1), 2003, 4, "#l#L");
    expect_memb(&out.items[1], CAUSED_BY_NETWORK, "g", "#l#L,#a#A,#b#B", "*#l#L,#a#A,#b#B", ip(1),
                2100, 1, "#l#L");
    spd_notices_clear(&out);

    CHECK_EQ(spd_remote_begin(r, SPD_EVENT_PARTITION, &A, 1, 2200, &out), 1);
    expect_trans(&out.items[0], "g", ip(1), 2100, 1, "#l#L");
    spd_notices_clear(&out);
    CHECK_EQ(spd_remote_begin(r, SPD_EVENT_PARTITION, &B, 1, 2210, &out), 0);
    CHECK_EQ(rjoin(r, b, "g", &out), SPD_REMOTE_E_BUSY);
    /* C merges at once: the pending cuts and the merge in one. */
    CHECK_EQ(spd_remote_merge(r, &C, 1, 2300, &out), 1);
    expect_memb(&out.items[0], CAUSED_BY_NETWORK, "g", "#l#L,#c#C", "*#l#L|#c#C", ip(1), 2300, 1,
                "#l#L");
    spd_notices_clear(&out);
    CHECK_EQ(spd_remote_pending(r), 0);
    CHECK_EQ(spd_remote_connected(r, A) + spd_remote_connected(r, B), 0);
    CHECK_EQ(spd_remote_connected(r, C), 1);

    /* Begun and undone: TRANSITION_MESS, then one network membership. */
    CHECK_EQ(spd_remote_begin(r, SPD_EVENT_PARTITION, &C, 1, 2400, &out), 1);
    expect_trans(&out.items[0], "g", ip(1), 2300, 1, "#l#L");
    spd_notices_clear(&out);
    CHECK_EQ(spd_remote_merge(r, &C, 1, 2500, &out), 1);
    expect_memb(&out.items[0], CAUSED_BY_NETWORK, "g", "#l#L,#c#C", "*#l#L,#c#C", ip(1), 2500, 1,
                "#l#L");
    spd_notices_clear(&out);

    /* A crash begun: C's members cannot act; settled, they are gone. */
    CHECK_EQ(spd_remote_begin(r, SPD_EVENT_CRASH, &C, 1, 2600, &out), 1);
    expect_trans(&out.items[0], "g", ip(1), 2500, 1, "#l#L");
    spd_notices_clear(&out);
    CHECK_EQ(rleave(r, c, "g", &out), SPD_REMOTE_E_BUSY);
    CHECK_EQ(spd_remote_merge(r, &C, 1, 2650, &out), SPD_REMOTE_E_BUSY); /* dying: settle first */
    CHECK_EQ(spd_remote_alive(r, C), 1);
    CHECK_EQ(spd_remote_settle(r, 2700, &out), 1);
    expect_memb(&out.items[0], CAUSED_BY_NETWORK, "g", "#l#L", "*#l#L", ip(1), 2700, 1, "#l#L");
    spd_notices_clear(&out);
    CHECK_EQ(spd_remote_alive(r, C), 0);
    CHECK(spd_remote_member_slot(r, c) == NULL);
    /* A partition keeps the far side's members: merged back, they return. */
    CHECK_EQ(spd_remote_merge(r, &A, 1, 2800, &out), 1);
    expect_memb(&out.items[0], CAUSED_BY_NETWORK, "g", "#l#L,#a#A", "*#l#L|#a#A", ip(1), 2800, 1,
                "#l#L");
    spd_notices_clear(&out);

    /* Unreachable (a delayed event on its way): data lost, changes refused. */
    CHECK_EQ(spd_remote_set_unreachable(r, A, 1), 0);
    uint8_t to[WIRE_SLOT];
    slot_of(to, "g");
    CHECK_EQ(spd_remote_multicast(r, a, AGREED_MESS, to, 1, 0, (const uint8_t *)"x", 1, &out), 0);
    CHECK_EQ(rleave(r, a, "g", &out), SPD_REMOTE_E_BUSY);
    CHECK_EQ(spd_remote_set_unreachable(r, A, 0), 0);
    CHECK_EQ(spd_remote_multicast(r, a, AGREED_MESS, to, 1, 0, (const uint8_t *)"x", 1, &out), 1);
    spd_notices_clear(&out);
    CHECK_EQ(spd_remote_set_unreachable(r, 0, 1), SPD_REMOTE_E_INVALID);
    spd_notices_clear(&out);

    /* A crashed daemon merged while a cut is pending restarts alone: it
     * joins us, not the component being cut off. */
    CHECK_EQ(spd_remote_crash(r, B, 3000, &out) >= 0, 1);  /* B (2) down */
    CHECK_EQ(spd_remote_partition(r, &A, 1, 3010, &out) >= 0, 1); /* A: label 1 */
    CHECK_EQ(spd_remote_merge(r, &C, 1, 3020, &out) >= 0, 1);     /* C restarts, with us */
    CHECK_EQ(spd_remote_begin(r, SPD_EVENT_PARTITION, &C, 1, 3030, &out) >= 0, 1); /* label 2 */
    CHECK_EQ(spd_remote_merge(r, &B, 1, 3040, &out) >= 0, 1);
    CHECK_EQ(spd_remote_connected(r, B), 1);
    CHECK_EQ(spd_remote_connected(r, C), 0);
    CHECK_EQ(spd_remote_connected(r, A), 0);
    CHECK_EQ(spd_remote_pending(r), 0);
    CHECK_EQ(spd_remote_begin(r, 9, &A, 1, 2900, &out), SPD_REMOTE_E_INVALID);
    (void)b;
    spd_notices_clear(&out);
    spd_remote_free(r);
}

static unsigned int rng = 12345;
static unsigned int next(void)
{
    rng = rng * 1103515245u + 12345u;
    return (rng >> 16) & 0x7FFF;
}

static void check_notice_shape(const spd_notice *nt)
{
    decoded *d = decode(nt);
    CHECK(d->ok);
    if (!d->ok || nt->kind != SPD_NOTICE_MEMBERSHIP)
        return;
    CHECK(nt->n_receivers > 0);
    if (!(d->type & REG_MEMB_MESS))
        return;
    int total = 0;
    for (int i = 0; i < d->n_sets; i++)
        total += d->set_size[i];
    if (d->type & CAUSED_BY_NETWORK)
        CHECK_EQ(total, d->n_members);
    for (int i = 0; d->type & CAUSED_BY_NETWORK && i < d->n_sets; i++)
        for (int j = 0; j < d->set_size[i]; j++) {
            int listed = 0;
            for (int k = 0; k < d->n_members; k++)
                listed |= strcmp(d->members[k], d->sets[i][j]) == 0;
            CHECK(listed);
        }
}

static void test_random(void)
{
    const int32_t memb[2] = {ip(1), 100};
    spd_remote *r = spd_remote_new("L", 1, memb);
    spd_notices out = {0};
    for (int i = 0; i < 4; i++) {
        char name[4] = {'R', (char)('a' + i), 0, 0};
        add_daemon(r, name, 0, 1, 100);
    }
    int members[40], n_members = 0, notices = 0;
    int64_t now = 100;
    static const char *const groups[] = {"g0", "g1", "g2"};
    static const char *const locals[] = {"#p#L", "#q#L", "#s#L"};
    for (int step = 0; step < 4000; step++) {
        int op = (int)(next() % 12), e = 0;
        int d = 1 + (int)(next() % 4);
        now += next() % 3;
        const char *g = groups[next() % 3];
        switch (op) {
        case 0:
            if (n_members < 40) {
                char name[16];
                snprintf(name, sizeof name, "m%d", step);
                int m = add_member(r, d, name);
                if (m >= 0)
                    members[n_members++] = m;
            }
            break;
        case 1:
        case 2:
            if (n_members)
                e = rjoin(r, members[next() % (unsigned)n_members], g, &out);
            break;
        case 3:
            if (n_members)
                e = rleave(r, members[next() % (unsigned)n_members], g, &out);
            break;
        case 4: e = ljoin(r, g, locals[next() % 3], &out); break;
        case 5: e = lleave(r, g, locals[next() % 3], WIRE_CAUSED_BY_LEAVE, &out); break;
        case 6: e = spd_remote_partition(r, &d, 1, now, &out); break;
        case 7: e = spd_remote_merge(r, &d, 1, now, &out); break;
        case 8:
            if (next() % 4 == 0)
                e = spd_remote_crash(r, d, now, &out);
            break;
        case 10: e = spd_remote_begin(r, 1 + (int)(next() % 3), &d, 1, now, &out); break;
        case 11:
            if (spd_remote_pending(r))
                e = spd_remote_settle(r, now, &out);
            break;
        default:
            if (n_members) {
                int k = (int)(next() % (unsigned)n_members);
                e = spd_remote_member_remove(r, members[k], &out);
                members[k] = members[--n_members];
            }
        }
        /* Handles of crashed daemons' members end. */
        for (int k = 0; k < n_members;)
            if (!spd_remote_member_slot(r, members[k]))
                members[k] = members[--n_members];
            else
                k++;
        CHECK(e >= 0 || e == SPD_REMOTE_E_INVALID || e == SPD_REMOTE_E_BUSY);
        for (size_t k = 0; k < out.n; k++)
            check_notice_shape(&out.items[k]);
        notices += (int)out.n;
        spd_notices_clear(&out);
    }
    CHECK(notices > 500);
    spd_remote_free(r);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        vectors = argv[1];
    test_vector_network();
    test_vector_transitional();
    replay_vector("membership_join_leave_disconnect.json", 10);
    replay_vector("membership_member_order.json", 9);
    test_crash_and_order();
    test_multiway();
    test_multicast();
    test_continuity_and_adopt();
    test_limits();
    test_churn_window();
    test_churn_cascade();
    test_random();
    return check_summary("test_remote");
}
