/* test_client.c -- the sp.h API used the way Spread's example clients use it
 * (a chat user: connect with a time-out, join, multicast, receive and decode
 * memberships; a flooder: send and read back its own messages), plus the
 * library's error paths and thread behaviour. Needs a running daemon:
 *     test_client <port>
 */
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "sp.h"
#include "spx.h"
#include "wire.h"
#include "check.h"
#include "fake_peer.h"

#define MAX_MEMBERS 100
#define MAX_MESSLEN 102400

static char tcp_addr[64], unix_addr[16];

static int recv_one(mailbox m, service *svc, char *sender, int *ng, char groups[][MAX_GROUP_NAME],
                    int16 *mt, int *endian, char *mess)
{
    *svc = 0; /* always initialise: DROP_RECV is an input */
    return SP_receive(m, svc, sender, MAX_MEMBERS, ng, groups, mt, endian, MAX_MESSLEN, mess);
}

static void test_connect_errors(void)
{
    mailbox m;
    char pg[MAX_GROUP_NAME];
    CHECK_EQ(SP_connect("4803x", "a", 0, 1, &m, pg), ILLEGAL_SPREAD);
    CHECK_EQ(SP_connect("40000@127.0.0.1", "a", 0, 1, &m, pg), ILLEGAL_SPREAD);
    CHECK_EQ(SP_connect("4803@", "a", 0, 1, &m, pg), ILLEGAL_SPREAD);
    CHECK_EQ(SP_connect("1@127.0.0.1", "a", 0, 1, &m, pg), COULD_NOT_CONNECT);
    CHECK_EQ(SP_connect(tcp_addr, "bad name", 0, 1, &m, pg), REJECT_ILLEGAL_NAME);
    int major, minor, patch;
    CHECK_EQ(SP_version(&major, &minor, &patch), 1);
    CHECK(major == 4 && minor == 0 && patch == 0);
}

static int sock_opt(mailbox m, int name)
{
    int v = -1;
    socklen_t len = sizeof v;
    CHECK_EQ(getsockopt(m, SOL_SOCKET, name, &v, &len), 0);
    return v;
}

/* SPX_connect's socket_buffer reaches the socket; SP_connect leaves TCP's
 * autotuning alone and gives the unix socket Spread's fixed buffers (200 KiB
 * each where the kernel allows it). */
static void test_socket_buffers(void)
{
    mailbox m;
    char pg[MAX_GROUP_NAME];
    int fresh = socket(AF_INET, SOCK_STREAM, 0), kernel_rcvbuf = -1;
    socklen_t len = sizeof kernel_rcvbuf;
    CHECK(fresh >= 0);
    CHECK_EQ(getsockopt(fresh, SOL_SOCKET, SO_RCVBUF, &kernel_rcvbuf, &len), 0);
    close(fresh);

    CHECK_EQ(SPX_connect(tcp_addr, "", 0, 0, &m, pg, 5000, 0, 100000), ACCEPT_SESSION);
    CHECK_EQ(sock_opt(m, SO_RCVBUF), 200000); /* Linux doubles what is asked */
    CHECK_EQ(sock_opt(m, SO_SNDBUF), 200000);
    CHECK_EQ(SP_disconnect(m), 0);

    CHECK_EQ(SPX_connect(tcp_addr, "", 0, 0, &m, pg, 5000, 0, 0), ACCEPT_SESSION);
    CHECK_EQ(sock_opt(m, SO_RCVBUF), kernel_rcvbuf); /* untouched: autotuned */
    CHECK_EQ(SP_disconnect(m), 0);

    CHECK_EQ(SPX_connect(tcp_addr, "", 0, 0, &m, pg, 5000, 0, SPX_SOCKET_BUFFER_DEFAULT),
             ACCEPT_SESSION);
    CHECK_EQ(sock_opt(m, SO_RCVBUF), kernel_rcvbuf);
    CHECK_EQ(SP_disconnect(m), 0);

    CHECK_EQ(SPX_connect(tcp_addr, "", 0, 0, &m, pg, 5000, 0, -7), ACCEPT_SESSION);
    CHECK_EQ(sock_opt(m, SO_RCVBUF), kernel_rcvbuf); /* any negative: the default */
    CHECK_EQ(SP_disconnect(m), 0);

    CHECK_EQ(SP_connect(tcp_addr, "", 0, 0, &m, pg), ACCEPT_SESSION);
    CHECK_EQ(sock_opt(m, SO_RCVBUF), kernel_rcvbuf);
    CHECK_EQ(SP_disconnect(m), 0);

    fresh = socket(AF_UNIX, SOCK_STREAM, 0);
    int kernel_sndbuf = -1;
    len = sizeof kernel_sndbuf;
    CHECK(fresh >= 0);
    CHECK_EQ(getsockopt(fresh, SOL_SOCKET, SO_SNDBUF, &kernel_sndbuf, &len), 0);
    close(fresh);
    CHECK_EQ(SP_connect(unix_addr, "", 0, 0, &m, pg), ACCEPT_SESSION);
    int rcv = sock_opt(m, SO_RCVBUF), snd = sock_opt(m, SO_SNDBUF);
    CHECK(rcv == snd && snd != kernel_sndbuf && snd <= 2 * 200 * 1024);
    CHECK_EQ(SP_disconnect(m), 0);
}

/* The chat user: memberships decoded with the helper functions. */
static void test_user(void)
{
    mailbox a, b;
    char pg_a[MAX_GROUP_NAME], pg_b[MAX_GROUP_NAME], sender[MAX_GROUP_NAME];
    char groups[MAX_MEMBERS][MAX_GROUP_NAME], *mess = malloc(MAX_MESSLEN);
    service svc;
    int ng, endian;
    int16 mt;
    sp_time five = {5, 0};
    CHECK_EQ(SP_connect_timeout(tcp_addr, "user_a", 0, 1, &a, pg_a, five), ACCEPT_SESSION);
    CHECK(strcmp(pg_a, "#user_a#localhost") == 0);
    CHECK_EQ(SP_connect(unix_addr, "user_b", 0, 1, &b, pg_b), ACCEPT_SESSION);
    CHECK_EQ(SP_join(a, "chat"), 0);
    CHECK_EQ(recv_one(a, &svc, sender, &ng, groups, &mt, &endian, mess), 56);
    CHECK_EQ(SP_join(b, "chat"), 0);
    CHECK_EQ(recv_one(b, &svc, sender, &ng, groups, &mt, &endian, mess), 56);
    CHECK(Is_membership_mess(svc) && Is_reg_memb_mess(svc) && Is_caused_join_mess(svc));
    CHECK(!Is_regular_mess(svc) && !Is_self_leave(svc));
    CHECK_EQ(ng, 2);
    CHECK_EQ(mt, 1); /* our index among the members */
    CHECK(strcmp(sender, "chat") == 0 && strcmp(groups[0], pg_a) == 0);

    membership_info info;
    CHECK_EQ(SP_get_memb_info(mess, svc, &info), 1);
    CHECK_EQ(info.gid.id[0], 0x7F000001);
    CHECK_EQ(info.gid.id[2], 2);
    CHECK(strcmp(info.changed_member, pg_b) == 0);
    CHECK_EQ(info.num_vs_sets, 1);
    CHECK_EQ(info.my_vs_set.num_members, 1);
    CHECK_EQ(info.my_vs_set.members_offset, 24);
    vs_set_info sets[4];
    unsigned int mine = 9;
    CHECK_EQ(SP_get_vs_sets_info(mess, sets, 4, &mine), 1);
    CHECK_EQ(mine, 0);
    char names[4][MAX_GROUP_NAME];
    CHECK_EQ(SP_get_vs_set_members(mess, &sets[0], names, 4), 1);
    CHECK(strcmp(names[0], pg_b) == 0);
    CHECK_EQ(SP_get_vs_set_members(mess, &sets[0], names, 0), BUFFER_TOO_SHORT);
    CHECK_EQ(SP_get_memb_info(mess, SAFE_MESS, &info), ILLEGAL_MESSAGE);

    /* a sees b join too; the group ids agree. */
    CHECK_EQ(recv_one(a, &svc, sender, &ng, groups, &mt, &endian, mess), 56);
    membership_info info_a;
    SP_get_memb_info(mess, svc, &info_a);
    CHECK(SP_equal_group_ids(info.gid, info_a.gid));

    /* Scatter send, scatter receive. */
    scatter out, in;
    char p1[] = "hello ", p2[] = "scattered ", p3[] = "world", r1[8], r2[64];
    out.num_elements = 3;
    out.elements[0].buf = p1, out.elements[0].len = 6;
    out.elements[1].buf = p2, out.elements[1].len = 10;
    out.elements[2].buf = p3, out.elements[2].len = 5;
    CHECK_EQ(SP_scat_multicast(a, SAFE_MESS, "chat", 77, &out), 21);
    in.num_elements = 2;
    in.elements[0].buf = r1, in.elements[0].len = sizeof r1;
    in.elements[1].buf = r2, in.elements[1].len = sizeof r2;
    svc = 0;
    CHECK_EQ(SP_scat_receive(b, &svc, sender, MAX_MEMBERS, &ng, groups, &mt, &endian, &in), 21);
    CHECK(Is_safe_mess(svc) && Is_regular_mess(svc));
    CHECK_EQ(mt, 77);
    CHECK_EQ(endian, 0);
    CHECK(memcmp(r1, "hello sc", 8) == 0 && memcmp(r2, "attered world", 13) == 0);
    CHECK(strcmp(sender, pg_a) == 0);
    CHECK_EQ(recv_one(a, &svc, sender, &ng, groups, &mt, &endian, mess), 21);

    /* Multigroup, with the private group as a unicast destination. */
    char dests[2][MAX_GROUP_NAME];
    memset(dests, 0, sizeof dests);
    strcpy(dests[0], "nobody-here");
    strcpy(dests[1], pg_b);
    CHECK_EQ(SP_multigroup_multicast(a, FIFO_MESS | SELF_DISCARD, 2, dests, -5, 4, "uni!"), 4);
    CHECK_EQ(recv_one(b, &svc, sender, &ng, groups, &mt, &endian, mess), 4);
    CHECK_EQ(ng, 2);
    CHECK_EQ(mt, -5);
    CHECK_EQ(svc, FIFO_MESS | SELF_DISCARD);
    CHECK_EQ(SP_poll(a), 0);

    /* Short buffers: the message stays until a big enough call. */
    CHECK_EQ(SP_multicast(a, AGREED_MESS, "chat", 3, 10, "0123456789"), 10);
    svc = 0;
    CHECK_EQ(SP_receive(b, &svc, sender, MAX_MEMBERS, &ng, groups, &mt, &endian, 4, mess),
             BUFFER_TOO_SHORT);
    CHECK_EQ(endian, -10);
    svc = 0;
    CHECK_EQ(SP_receive(b, &svc, sender, 0, &ng, groups, &mt, &endian, 100, mess),
             GROUPS_TOO_SHORT);
    CHECK_EQ(ng, -1);
    CHECK_EQ(recv_one(b, &svc, sender, &ng, groups, &mt, &endian, mess), 10);
    CHECK(memcmp(mess, "0123456789", 10) == 0);
    CHECK_EQ(recv_one(a, &svc, sender, &ng, groups, &mt, &endian, mess), 10);

    /* Send-side checks. */
    CHECK_EQ(SP_multicast(a, 0, "chat", 0, 1, "x"), ILLEGAL_SERVICE);
    CHECK_EQ(SP_multicast(a, FIFO_MESS | SAFE_MESS, "chat", 0, 1, "x"), ILLEGAL_SERVICE);
    CHECK_EQ(SP_multicast(a, SAFE_MESS, "chat", 0, 144001, mess), MESSAGE_TOO_LONG);
    CHECK_EQ(SP_multicast(a, SAFE_MESS, "chat", 0, -1, mess), ILLEGAL_MESSAGE);
    CHECK_EQ(SP_join(a, "#private"), ILLEGAL_GROUP);
    CHECK_EQ(SP_join(a, ""), ILLEGAL_GROUP);
    CHECK_EQ(SP_multigroup_multicast(a, SAFE_MESS, 101, dests, 0, 1, "x"), ILLEGAL_GROUP);

    /* Leave: a self-leave notice for b, a leave membership for a. */
    CHECK_EQ(SP_leave(b, "chat"), 0);
    CHECK_EQ(recv_one(b, &svc, sender, &ng, groups, &mt, &endian, mess), 0);
    CHECK(Is_self_leave(svc) && Is_membership_mess(svc));
    CHECK_EQ(mt, -1);
    CHECK_EQ(SP_get_memb_info(mess, svc, &info), 1);
    CHECK_EQ(info.num_vs_sets, 0);
    CHECK_EQ(recv_one(a, &svc, sender, &ng, groups, &mt, &endian, mess), 56);
    CHECK(Is_caused_leave_mess(svc) && Is_reg_memb_mess(svc));

    CHECK_EQ(SP_disconnect(b), 0);
    CHECK_EQ(SP_disconnect(b), ILLEGAL_SESSION);
    CHECK_EQ(SP_disconnect(a), 0);
    CHECK_EQ(SP_poll(a), ILLEGAL_SESSION);
    CHECK_EQ(SP_join(a, "chat"), ILLEGAL_SESSION);
    free(mess);
}

/* The flooder: send and read back our own messages with a window. */
static void test_flooder(void)
{
    mailbox m;
    char pg[MAX_GROUP_NAME], sender[MAX_GROUP_NAME], groups[MAX_MEMBERS][MAX_GROUP_NAME];
    char *mess = malloc(MAX_MESSLEN), payload[1000];
    service svc;
    int ng, endian, sent = 0, got = 0;
    int16 mt;
    memset(payload, 'f', sizeof payload);
    CHECK_EQ(SP_connect(unix_addr, "flooder", 0, 0, &m, pg), ACCEPT_SESSION);
    CHECK_EQ(SP_join(m, "flood"), 0);
    int ok = 1;
    while (got < 5000 && ok) {
        while (sent < 5000 && sent - got < 200)
            ok &= SP_multicast(m, RELIABLE_MESS, "flood", (int16)(sent++ & 0x7fff), sizeof payload,
                               payload) == (int)sizeof payload;
        int r = recv_one(m, &svc, sender, &ng, groups, &mt, &endian, mess);
        ok &= r == (int)sizeof payload && mt == (int16)(got & 0x7fff);
        got++;
    }
    CHECK(ok);
    CHECK_EQ(got, 5000);
    CHECK_EQ(SP_disconnect(m), 0);
    free(mess);
}

struct blocked {
    mailbox m;
    int result;
};

static void *receive_thread(void *arg)
{
    struct blocked *b = arg;
    char sender[MAX_GROUP_NAME], groups[4][MAX_GROUP_NAME], mess[64];
    service svc = 0;
    int ng, endian;
    int16 mt;
    b->result = SP_receive(b->m, &svc, sender, 4, &ng, groups, &mt, &endian, sizeof mess, mess);
    return NULL;
}

static void test_threads(void)
{
    char pg[MAX_GROUP_NAME];
    struct blocked b;
    pthread_t t;

    /* A receive blocked in one thread; a multicast from another wakes it. */
    CHECK_EQ(SP_connect(unix_addr, "thr1", 0, 0, &b.m, pg), ACCEPT_SESSION);
    pthread_create(&t, NULL, receive_thread, &b);
    usleep(50000);
    CHECK_EQ(SP_multicast(b.m, AGREED_MESS, pg, 0, 4, "wake"), 4);
    pthread_join(t, NULL);
    CHECK_EQ(b.result, 4);

    /* Disconnect from another thread wakes it with an error. */
    pthread_create(&t, NULL, receive_thread, &b);
    usleep(50000);
    CHECK_EQ(SP_disconnect(b.m), 0);
    pthread_join(t, NULL);
    CHECK(b.result == ILLEGAL_SESSION || b.result == CONNECTION_CLOSED);

    /* A held mailbox keeps its descriptor after disconnect: a new connection
     * gets another number, and the old one answers ILLEGAL_SESSION. */
    mailbox old, fresh;
    CHECK_EQ(SP_connect(unix_addr, "thr2", 0, 0, &old, pg), ACCEPT_SESSION);
    CHECK_EQ(SPX_hold(old), 0);
    CHECK_EQ(SP_disconnect(old), 0);
    CHECK_EQ(SP_connect(unix_addr, "thr3", 0, 0, &fresh, pg), ACCEPT_SESSION);
    CHECK(fresh != old);
    CHECK_EQ(SP_multicast(old, AGREED_MESS, pg, 0, 1, "x"), ILLEGAL_SESSION);
    CHECK_EQ(SP_poll(old), ILLEGAL_SESSION);
    SPX_release(old);
    CHECK_EQ(SP_disconnect(fresh), 0);
}

static void test_nowait(void)
{
    fake_link f;
    fake_connect(&f, 32000 + (int)(getpid() % 700), "nw");
    mailbox m = f.m;
    int peer = f.peer;
    static char big[50000];
    int full = 0, partial = 0, sent = 0;
    for (int i = 0; i < 1000 && !full; i++) {
        int r = SPX_multicast_nowait(m, AGREED_MESS, "g", 0, sizeof big, big);
        if (r == SPX_WOULD_BLOCK) {
            full = 1;
        } else if (r == SPX_PARTIAL) {
            partial = 1;
            full = 1; /* finishing would block on a peer that never reads: */
            shutdown(peer, SHUT_RDWR); /* make the rest fail instead */
            CHECK_EQ(SPX_finish_send(m), CONNECTION_CLOSED);
        } else {
            CHECK_EQ(r, (int)sizeof big);
            sent++;
        }
    }
    CHECK(full);
    CHECK(sent > 0);
    if (!partial) { /* a whole refusal leaves the connection usable */
        CHECK_EQ(SPX_multicast_nowait(m, AGREED_MESS, "g", 0, sizeof big, big), SPX_WOULD_BLOCK);
        CHECK_EQ(SPX_multicast_nowait(m, 0, "g", 0, 1, "x"), ILLEGAL_SERVICE);
    }
    fake_close(&f);
}

/* Records in order from one SPX_receive_records call: checks each carries
 * mess_type `next`, `next`+1, ... and a payload of its number's digits;
 * counts those whose payload lies inside [lo, hi). */
static int check_records(const char *buf, int count, int *next, const char *lo, const char *hi,
                         int *inside)
{
    int at = 0, ok = 1;
    for (int i = 0; i < count; i++) {
        const spx_record *r = (const spx_record *)(buf + at);
        char want[16];
        int len = snprintf(want, sizeof want, "m%05d", *next);
        ok &= r->mess_type == (int16)*next && r->data_len == len &&
              memcmp(spx_record_data(r), want, (size_t)len) == 0 && r->num_groups == 1 &&
              strcmp(spx_record_groups(r)[0], "lend") == 0;
        *inside += spx_record_data(r) >= lo && spx_record_data(r) < hi;
        (*next)++;
        at += (int)r->size;
    }
    return ok;
}

/* Zero-copy read-ahead: records point into lent memory, lending another
 * buffer moves what is buffered, and taking the library's own buffer back
 * leaves the stream intact for SP_receive. */
/* Receives records until message `until`, checking each (check_records). */
static int take_records(mailbox rx, int until, int *next, const char *lo, const char *hi,
                        int *inside)
{
    static char recs[1 << 16];
    int used = 0;
    while (*next < until) {
        int n = SPX_receive_records(rx, recs, sizeof recs, &used);
        if (n <= 0 || !check_records(recs, n, next, lo, hi, inside))
            return 0;
    }
    return 1;
}

static void test_lend(void)
{
    mailbox rx, tx;
    char pg[MAX_GROUP_NAME];
    CHECK_EQ(SP_connect(unix_addr, "lendrx", 0, 1, &rx, pg), ACCEPT_SESSION);
    CHECK_EQ(SP_connect(unix_addr, "lendtx", 0, 0, &tx, pg), ACCEPT_SESSION);
    CHECK_EQ(SP_join(rx, "lend"), 0);
    { /* the join is in effect once its membership message is here */
        service svc = 0;
        char sender[MAX_GROUP_NAME], groups[4][MAX_GROUP_NAME], buf[1024];
        int ng, endian;
        int16 mt;
        CHECK(SP_receive(rx, &svc, sender, 4, &ng, groups, &mt, &endian, sizeof buf, buf) >= 0);
        CHECK(Is_reg_memb_mess(svc));
    }
    static char lent1[4096], lent2[1 << 16], recs[1 << 16];
    CHECK_EQ(SPX_lent_room(rx), 0);
    CHECK_EQ(SPX_set_readahead(rx, 1 << 16), 0);
    CHECK_EQ(SPX_lend_readahead(rx, lent1, sizeof lent1), 0);
    CHECK_EQ(SPX_lent_room(rx), (int)sizeof lent1);
    int used = 0, n;
    /* Nothing has arrived: neither nowait form waits. */
    CHECK_EQ(SPX_receive_records_nowait(rx, recs, sizeof recs, &used, SPX_NOWAIT_START),
             SPX_WOULD_BLOCK);
    CHECK_EQ(SPX_receive_records_nowait(rx, recs, sizeof recs, &used, SPX_NOWAIT_AT_ALL),
             SPX_WOULD_BLOCK);
    CHECK_EQ(SPX_receive_records_nowait(rx, recs, sizeof recs, &used, 7), ILLEGAL_MESSAGE);
    for (int i = 0; i < 300; i++) {
        char m[16];
        int len = snprintf(m, sizeof m, "m%05d", i);
        CHECK_EQ(SP_multicast(tx, AGREED_MESS, "lend", (int16)i, len, m), len);
    }
    int next = 0, inside = 0;
    /* Once the socket is readable, a call that never waits takes what came. */
    struct pollfd readable = {rx, POLLIN, 0};
    CHECK_EQ(poll(&readable, 1, 5000), 1);
    n = SPX_receive_records_nowait(rx, recs, sizeof recs, &used, SPX_NOWAIT_AT_ALL);
    CHECK(n > 0);
    if (n > 0)
        CHECK(check_records(recs, n, &next, lent1, lent1 + sizeof lent1, &inside));
    /* The small lent buffer fills: whatever the calls take, in order. */
    CHECK(take_records(rx, 40, &next, lent1, lent1 + sizeof lent1, &inside));
    CHECK(inside > 0); /* in place, not copied */
    CHECK(SPX_lent_room(rx) < (int)sizeof lent1);
    CHECK_EQ(SPX_lend_readahead(rx, lent2, 1), ILLEGAL_MESSAGE); /* cannot hold what waits */
    CHECK_EQ(SPX_lend_readahead(rx, lent2, sizeof lent2), 0);
    inside = 0;
    int before = next;
    CHECK(take_records(rx, 200, &next, lent2, lent2 + sizeof lent2, &inside));
    CHECK(inside > (next - before) / 2);
    /* Back to the library's own buffer: the rest arrives through SP_receive. */
    CHECK_EQ(SPX_lend_readahead(rx, NULL, 0), 0);
    CHECK_EQ(SPX_lent_room(rx), 0);
    memset(lent2, 0, sizeof lent2); /* the library must no longer use it */
    int in_order = 1;
    while (next < 300) {
        service svc = 0;
        char sender[MAX_GROUP_NAME], groups[4][MAX_GROUP_NAME], buf[32], want[16];
        int ng, endian;
        int16 mt;
        int len = snprintf(want, sizeof want, "m%05d", next);
        int r = SP_receive(rx, &svc, sender, 4, &ng, groups, &mt, &endian, sizeof buf, buf);
        if (r < 0) {
            CHECK_EQ(r, 0);
            break;
        }
        if (!Is_regular_mess(svc))
            continue;
        in_order &= r == len && mt == (int16)next && memcmp(buf, want, (size_t)len) == 0;
        next++;
    }
    CHECK(in_order);
    CHECK_EQ(SPX_set_readahead(rx, 0), 0);
    SP_disconnect(rx);
    SP_disconnect(tx);
}

/* A message that has only partly arrived: the never-waiting form leaves it
 * (SPX_WOULD_BLOCK, nothing consumed) and takes it whole once the rest came;
 * the waiting-for-a-start form does the same before any byte arrived. */
static void test_nowait_partial(void)
{
    fake_link f;
    fake_connect(&f, 31000 + (int)(getpid() % 700), "np");
    mailbox m = f.m;
    int peer = f.peer;
    CHECK_EQ(SPX_set_readahead(m, 1 << 16), 0);
    uint8_t msg[WIRE_HEADER_SIZE + WIRE_SLOT + 5], sender[WIRE_SLOT], hint[4];
    wire_put_slot(sender, "#other#localhost", 16);
    wire_make_hint(hint, 7);
    wire_encode_header(msg, AGREED_MESS, sender, 1, hint, 5);
    wire_put_slot(msg + WIRE_HEADER_SIZE, "g", 1);
    memcpy(msg + WIRE_HEADER_SIZE + WIRE_SLOT, "hello", 5);
    static char recs[4096];
    int used = 0;
    alarm(10); /* a call that waits here would hang the test: fail it instead */
    CHECK_EQ(SPX_receive_records_nowait(m, recs, sizeof recs, &used, SPX_NOWAIT_START),
             SPX_WOULD_BLOCK);
    CHECK_EQ(write(peer, msg, 60), 60); /* the header and part of the name */
    struct pollfd readable = {m, POLLIN, 0};
    CHECK_EQ(poll(&readable, 1, 5000), 1);
    CHECK_EQ(SPX_receive_records_nowait(m, recs, sizeof recs, &used, SPX_NOWAIT_AT_ALL),
             SPX_WOULD_BLOCK);
    CHECK_EQ(SPX_pending(m), 60); /* read ahead, not consumed */
    CHECK_EQ(write(peer, msg + 60, sizeof msg - 60), (ssize_t)(sizeof msg - 60));
    CHECK_EQ(poll(&readable, 1, 5000), 1);
    CHECK_EQ(SPX_receive_records_nowait(m, recs, sizeof recs, &used, SPX_NOWAIT_AT_ALL), 1);
    alarm(0);
    const spx_record *r = (const spx_record *)recs;
    CHECK_EQ(r->data_len, 5);
    CHECK(memcmp(spx_record_data(r), "hello", 5) == 0);
    CHECK_EQ(r->mess_type, 7);
    CHECK(strcmp(r->sender, "#other#localhost") == 0);
    CHECK(strcmp(spx_record_groups(r)[0], "g") == 0);
    CHECK_EQ(SPX_pending(m), 0);
    fake_close(&f);
}

/* One data message from "#other#localhost" to group "g": `len` bytes at out. */
static size_t peek_message(uint8_t *out, int16 mess_type, const char *data)
{
    uint8_t sender[WIRE_SLOT], hint[4];
    size_t len = strlen(data);
    wire_put_slot(sender, "#other#localhost", 16);
    wire_make_hint(hint, mess_type);
    wire_encode_header(out, AGREED_MESS, sender, 1, hint, (int32_t)len);
    wire_put_slot(out + WIRE_HEADER_SIZE, "g", 1);
    memcpy(out + WIRE_HEADER_SIZE + WIRE_SLOT, data, len);
    return WIRE_HEADER_SIZE + WIRE_SLOT + len;
}

static int fd_readable(int fd)
{
    struct pollfd p = {fd, POLLIN, 0};
    return poll(&p, 1, 0) == 1;
}

/* Peeked read-ahead (SPX_set_peek): messages are taken many a read, the
 * socket stays readable exactly while one is pending (a whole one in the
 * peek buffer, or part of one in the socket, a header-only one included),
 * SP_poll counts what is not returned, and the view, the copying nowait
 * form and SP_receive take turns without losing or doubling a message. */
static void test_peek(void)
{
    fake_link f;
    fake_connect(&f, 31700 + (int)(getpid() % 700), "pk");
    mailbox m = f.m;
    CHECK_EQ(SPX_set_peek(m, 1), 0);
    spx_session *h = SPX_session(m);
    CHECK(h != NULL);
    uint8_t wire[1024];
    size_t at = 0, sizes[4];
    const char *texts[4] = {"one", "two", "three", "four-four"};
    for (int i = 0; i < 4; i++)
        at += sizes[i] = peek_message(wire + at, (int16)(i + 1), texts[i]);
    char sender[MAX_GROUP_NAME], groups[4][MAX_GROUP_NAME], buf[64];
    spx_view v;
    alarm(10); /* a call that waits here would hang the test: fail it instead */
    CHECK_EQ(SPX_view_next(h, sender, 4, groups, &v), SPX_WOULD_BLOCK); /* nothing yet */
    size_t part = at - 5; /* the 4th lacks 5 bytes */
    CHECK_EQ(write(f.peer, wire, part), (ssize_t)part);
    CHECK_EQ(poll(&(struct pollfd){m, POLLIN, 0}, 1, 5000), 1);
    CHECK_EQ(SPX_view_next(h, sender, 4, groups, &v), 3);
    CHECK(memcmp(v.data, "one", 3) == 0);
    CHECK_EQ(v.mess_type, 1);
    CHECK(strcmp(sender, "#other#localhost") == 0 && strcmp(groups[0], "g") == 0);
    SPX_view_done(h, 1);
    CHECK(fd_readable(m));
    CHECK_EQ(SP_poll(m), (int)(part - sizes[0]));
    CHECK_EQ(SPX_view_next(h, sender, 4, groups, &v), 3);
    SPX_view_done(h, 0); /* left: the next receive sees it again */
    CHECK_EQ(SPX_view_next(h, sender, 0, groups, &v), SPX_NOT_VIEWED); /* groups do not fit */
    CHECK_EQ(SPX_view_next(h, sender, 4, groups, &v), 3);
    CHECK(memcmp(v.data, "two", 3) == 0);
    SPX_view_done(h, 1);
    service svc = 0;
    int ng = 0, endian = 0;
    int16 mt = 0;
    CHECK_EQ(SPX_receive_nowait(m, &svc, sender, 4, &ng, groups, &mt, &endian, sizeof buf, buf), 5);
    CHECK(memcmp(buf, "three", 5) == 0 && mt == 3 && ng == 1 && svc == AGREED_MESS);
    /* Only part of the 4th is left, in the socket: readable, but nothing to take yet. */
    CHECK(fd_readable(m));
    CHECK_EQ(SP_poll(m), (int)(sizes[3] - 5));
    CHECK_EQ(SPX_view_next(h, sender, 4, groups, &v), SPX_WOULD_BLOCK);
    CHECK_EQ(SPX_receive_nowait(m, &svc, sender, 4, &ng, groups, &mt, &endian, sizeof buf, buf),
             SPX_WOULD_BLOCK);
    CHECK_EQ(write(f.peer, wire + part, 5), 5);
    svc = 0;
    CHECK_EQ(SP_receive(m, &svc, sender, 4, &ng, groups, &mt, &endian, sizeof buf, buf), 9);
    CHECK(memcmp(buf, "four-four", 9) == 0);
    CHECK(!fd_readable(m));
    CHECK_EQ(SP_poll(m), 0);
    /* A self-leave is a header alone (SPEC.md 6.4): still readable while it waits. */
    uint8_t leave[WIRE_HEADER_SIZE], gname[WIRE_SLOT], hint[4];
    wire_put_slot(gname, "g", 1);
    wire_make_hint(hint, 0);
    wire_encode_header(leave, CAUSED_BY_LEAVE, gname, 0, hint, 0);
    at = peek_message(wire, 9, "x");
    memcpy(wire + at, leave, sizeof leave);
    at += sizeof leave;
    at += peek_message(wire + at, 10, "after");
    CHECK_EQ(write(f.peer, wire, at), (ssize_t)at);
    CHECK_EQ(poll(&(struct pollfd){m, POLLIN, 0}, 1, 5000), 1);
    CHECK_EQ(SPX_view_next(h, sender, 4, groups, &v), 1);
    SPX_view_done(h, 1);
    CHECK(fd_readable(m));
    CHECK_EQ(SPX_view_next(h, sender, 4, groups, &v), SPX_NOT_VIEWED); /* a membership */
    CHECK(fd_readable(m));
    svc = 0;
    CHECK_EQ(SPX_receive_nowait(m, &svc, sender, 4, &ng, groups, &mt, &endian, sizeof buf, buf), 0);
    CHECK(Is_self_leave(svc) && ng == 0 && strcmp(sender, "g") == 0);
    CHECK(fd_readable(m));
    CHECK_EQ(SPX_view_next(h, sender, 4, groups, &v), 5);
    CHECK(memcmp(v.data, "after", 5) == 0 && v.mess_type == 10);
    SPX_view_done(h, 1);
    CHECK(!fd_readable(m));
    CHECK_EQ(SP_poll(m), 0);
    alarm(0);
    CHECK_EQ(SPX_set_peek(m, 0), 0);
    fake_close(&f);
}

/* A message with many group names and no data, into a records buffer too
 * small for them: told short with the whole need (never written past), and
 * taken whole into a buffer of that size. Found by fuzz_receive. */
static void test_records_small_buffer(void)
{
    fake_link f;
    fake_connect(&f, 30000 + (int)(getpid() % 700), "sb");
    enum { GROUPS = 19 };
    uint8_t msg[WIRE_HEADER_SIZE + GROUPS * WIRE_SLOT], sender[WIRE_SLOT], hint[4];
    wire_put_slot(sender, "#other#localhost", 16);
    wire_make_hint(hint, 3);
    wire_encode_header(msg, AGREED_MESS, sender, GROUPS, hint, 0);
    for (int i = 0; i < GROUPS; i++)
        wire_put_slot(msg + WIRE_HEADER_SIZE + i * WIRE_SLOT, "g", 1);
    CHECK_EQ(write(f.peer, msg, sizeof msg), (ssize_t)sizeof msg);
    int used = 0, cap = 512;
    char *recs = malloc((size_t)cap);
    CHECK_EQ(SPX_receive_records(f.m, recs, cap, &used), BUFFER_TOO_SHORT);
    CHECK(used < -(int)(GROUPS * WIRE_SLOT));
    cap = -used;
    recs = realloc(recs, (size_t)cap);
    CHECK_EQ(SPX_receive_records(f.m, recs, cap, &used), 1);
    const spx_record *r = (const spx_record *)recs;
    CHECK_EQ(r->num_groups, GROUPS);
    CHECK_EQ(r->data_len, 0);
    CHECK(strcmp(spx_record_groups(r)[GROUPS - 1], "g") == 0);
    free(recs);
    fake_close(&f);
}

static void on_usr1(int sig)
{
    (void)sig;
}

/* With SPX_set_interruptible, a signal ends a receive's wait for a message
 * (SPX_INTERRUPTED) without consuming anything. */
static void test_interruptible(void)
{
    char pg[MAX_GROUP_NAME];
    struct blocked b;
    pthread_t t;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1; /* no SA_RESTART */
    sigaction(SIGUSR1, &sa, NULL);
    CHECK_EQ(SP_connect(unix_addr, "intr", 0, 0, &b.m, pg), ACCEPT_SESSION);
    CHECK_EQ(SPX_set_interruptible(b.m, 1), 0);
    pthread_create(&t, NULL, receive_thread, &b);
    usleep(50000);
    pthread_kill(t, SIGUSR1);
    pthread_join(t, NULL);
    CHECK_EQ(b.result, SPX_INTERRUPTED);
    CHECK_EQ(SP_multicast(b.m, AGREED_MESS, pg, 0, 4, "next"), 4);
    receive_thread(&b);
    CHECK_EQ(b.result, 4);
    CHECK_EQ(SP_disconnect(b.m), 0);
    CHECK_EQ(SPX_set_interruptible(b.m, 1), ILLEGAL_SESSION);
}

/* The daemon kills a connection that sends two service bits: the library
 * reports CONNECTION_CLOSED once, then NET_ERROR_ON_SESSION. */
static void test_error_state(void)
{
    mailbox m;
    char pg[MAX_GROUP_NAME], sender[MAX_GROUP_NAME], groups[4][MAX_GROUP_NAME], mess[64];
    service svc;
    int ng, endian;
    int16 mt;
    CHECK_EQ(SP_connect(unix_addr, "victim", 0, 1, &m, pg), ACCEPT_SESSION);
    unsigned char raw[48] = {0x80 | 0x12, 0, 0, 0x80};
    memcpy(raw + 4, pg, strlen(pg));
    raw[40] = 0x80, raw[43] = 0x80;
    CHECK_EQ(write(m, raw, sizeof raw), 48);
    svc = 0;
    CHECK_EQ(SP_receive(m, &svc, sender, 4, &ng, groups, &mt, &endian, sizeof mess, mess),
             CONNECTION_CLOSED);
    svc = 0;
    CHECK_EQ(SP_receive(m, &svc, sender, 4, &ng, groups, &mt, &endian, sizeof mess, mess),
             NET_ERROR_ON_SESSION);
    CHECK_EQ(SP_multicast(m, SAFE_MESS, "g", 0, 1, "x"), NET_ERROR_ON_SESSION);
    CHECK_EQ(SP_join(m, "g"), NET_ERROR_ON_SESSION);
    CHECK(SP_poll(m) >= 0);
    CHECK_EQ(SP_disconnect(m), 0);
    CHECK_EQ(SP_receive(m, &svc, sender, 4, &ng, groups, &mt, &endian, sizeof mess, mess),
             ILLEGAL_SESSION);
}

/* The length-taking membership decoders refuse what does not fit, and read
 * nothing past len (ASan checks that). */
static void test_memb_decoders_bounded(void)
{
    int32_t gid[3] = {1, 2, 3};
    uint8_t member[WIRE_SLOT] = {0}, full[WIRE_MEMB_BODY_SIZE];
    wire_put_slot(member, "#bob#localhost", 14);
    wire_encode_memb_body(full, gid, member);
    uint32_t join = WIRE_REG_MEMB_MESS | WIRE_CAUSED_BY_JOIN;
    uint8_t *b = malloc(sizeof full);
    memcpy(b, full, sizeof full);
    membership_info info;
    vs_set_info sets[2];
    char names[2][MAX_GROUP_NAME];
    unsigned int mine = 9;
    CHECK(SPX_get_memb_info((const char *)b, WIRE_MEMB_BODY_SIZE, (service)join, &info) == 1);
    CHECK(info.num_vs_sets == 1 && info.my_vs_set.num_members == 1);
    CHECK(strcmp(info.changed_member, "#bob#localhost") == 0);
    CHECK(SPX_get_memb_info((const char *)b, 40, (service)join, &info) == ILLEGAL_MESSAGE);
    CHECK(SPX_get_memb_info((const char *)b, 8, TRANSITION_MESS, &info) == ILLEGAL_MESSAGE);
    CHECK(SPX_get_memb_info((const char *)b, -1, (service)join, &info) == ILLEGAL_MESSAGE);
    /* A kind bit alone (not our leave): the group id is still read. */
    uint8_t *six = malloc(6);
    memcpy(six, full, 6);
    CHECK(SPX_get_memb_info((const char *)six, 6, CAUSED_BY_DISCONNECT, &info) == ILLEGAL_MESSAGE);
    free(six);
    CHECK(SPX_get_vs_sets_info((const char *)b, WIRE_MEMB_BODY_SIZE, sets, 2, &mine) == 1);
    CHECK(mine == 0 && sets[0].members_offset == 24);
    CHECK(SPX_get_vs_sets_info((const char *)b, 30, sets, 2, &mine) == ILLEGAL_MESSAGE);
    CHECK(SPX_get_vs_set_members((const char *)b, WIRE_MEMB_BODY_SIZE, &sets[0], names, 2) == 1);
    CHECK(SPX_get_vs_set_members((const char *)b, 55, &sets[0], names, 2) == ILLEGAL_MESSAGE);
    vs_set_info far = {1, 0x7FFFFFF0u};
    CHECK(SPX_get_vs_set_members((const char *)b, WIRE_MEMB_BODY_SIZE, &far, names, 2) ==
          ILLEGAL_MESSAGE);
    free(b);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s <daemon port>\n", argv[0]);
        return 2;
    }
    snprintf(tcp_addr, sizeof tcp_addr, "%s@127.0.0.1", argv[1]);
    snprintf(unix_addr, sizeof unix_addr, "%s", argv[1]);
    test_connect_errors();
    test_socket_buffers();
    test_user();
    test_flooder();
    test_threads();
    test_error_state();
    test_interruptible();
    test_nowait();
    test_lend();
    test_nowait_partial();
    test_peek();
    test_records_small_buffer();
    test_memb_decoders_bounded();
    SP_error(CONNECTION_CLOSED); /* prints the reference text */
    return check_summary("test_client");
}
