/* test_receiver.c -- the background receiver against a running daemon:
 *     test_receiver <port>
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>

#include "receiver.h"
#include "sp.h"
#include "spx.h"
#include "wire.h"
#include "check.h"
#include "fake_peer.h"

static char addr[16];
/* Our library with its extensions, and the bare SP_receive path that an
 * external libspread gets. */
static const spr_library native = {SP_receive,
                                   SP_disconnect,
                                   SPX_hold,
                                   SPX_release,
                                   SPX_set_readahead,
                                   SPX_pending,
                                   SPX_receive_records_nowait,
                                   SPX_lend_readahead,
                                   SPX_lent_room};
static const spr_library bare = {SP_receive, SP_disconnect, NULL, NULL, NULL,
                                 NULL,       NULL,          NULL, NULL};
static const spr_library *lib = &native;

static mailbox connect_to(const char *name, const char *group)
{
    mailbox m = -1;
    char pg[MAX_GROUP_NAME], unique[MAX_PRIVATE_NAME + 1];
    snprintf(unique, sizeof unique, "%s%c", name, lib == &native ? 'n' : 'b');
    CHECK_EQ(SP_connect(addr, unique, 0, 0, &m, pg), ACCEPT_SESSION);
    if (group)
        CHECK_EQ(SP_join(m, group), 0);
    return m;
}

/* Takes `count` messages, checking that mess_type counts up from 0. */
static int take(spr_receiver *r, int count, int *sizes_seen)
{
    const spr_msg *batch[64];
    int got = 0, in_order = 1;
    while (got < count) {
        if (spr_wait(r, 5000) != 1)
            break;
        int n = spr_peek(r, batch, 64);
        if (n == 0) {
            spr_stats st;
            spr_get_stats(r, &st);
            if (st.state != SPR_RUNNING)
                break;
            continue;
        }
        for (int i = 0; i < n; i++) {
            in_order &= batch[i]->mess_type == (int16)got;
            if (sizes_seen)
                sizes_seen[got] = batch[i]->data_len;
            got++;
        }
        spr_consume(r, n);
    }
    CHECK(in_order);
    return got;
}

static void test_drain(void)
{
    static int sizes[2000], seen[2000];
    char *payload = calloc(1, 120000);
    mailbox rm = connect_to("rx1", "drain"), sm = connect_to("tx1", NULL);
    int err = 0;
    spr_receiver *r = spr_start(rm, lib, 0, SPR_OVERFLOW_DISCONNECT, &err);
    CHECK(r != NULL);
    for (int i = 0; i < 2000; i++) {
        sizes[i] = i == 1000 ? 120000 : (i * 37) % 3000; /* one message above a block's room */
        CHECK_EQ(SP_multicast(sm, AGREED_MESS, "drain", (int16)i, sizes[i], payload), sizes[i]);
    }
    CHECK_EQ(take(r, 2000, seen), 2000);
    CHECK(memcmp(sizes, seen, sizeof sizes) == 0);
    spr_stats st;
    spr_get_stats(r, &st);
    CHECK_EQ(st.received, 2000);
    CHECK_EQ(st.delivered, 2000);
    CHECK_EQ(st.backlog_messages, 0);
    CHECK(st.peak_bytes >= 120000);
    CHECK_EQ(spr_wait(r, 10), 0); /* nothing queued: times out */

    spr_close(r); /* the thread is blocked waiting for data */
    spr_get_stats(r, &st);
    CHECK_EQ(st.state, SPR_CLOSED);
    spr_free(r);
    /* The mailbox is ours again. */
    CHECK_EQ(SP_multicast(sm, AGREED_MESS, "drain", 0, 3, "abc"), 3);
    char sender[MAX_GROUP_NAME], groups[4][MAX_GROUP_NAME], buf[16];
    service svc = 0;
    int ng, endian;
    int16 mt;
    CHECK_EQ(SP_receive(rm, &svc, sender, 4, &ng, groups, &mt, &endian, sizeof buf, buf), 3);
    SP_disconnect(rm);
    SP_disconnect(sm);
    free(payload);
}

/* Waits (at most 5 s) until the receiver has taken `count` messages off the
 * socket, whoever took them. */
static unsigned long long wait_received(spr_receiver *r, unsigned long long count)
{
    spr_stats st;
    for (int tries = 0; tries < 500; tries++) {
        spr_get_stats(r, &st);
        if (st.received >= count)
            break;
        usleep(10000);
    }
    return st.received;
}

static void test_overflow(void)
{
    char kb[1024] = {0};
    mailbox rm = connect_to("rx2", "over"), sm = connect_to("tx2", NULL);
    int err = 0;
    spr_receiver *r = spr_start(rm, lib, 10 * 1024, SPR_OVERFLOW_DISCONNECT, &err);
    for (int i = 0; i < 300; i++)
        SP_multicast(sm, AGREED_MESS, "over", (int16)i, sizeof kb, kb);
    /* Nothing is taken until the drain thread has stopped: a consumer taking
     * messages as they come could keep the backlog under the limit (seen under
     * ASan on a loaded machine), which is not what this test is about. */
    spr_stats st;
    for (int tries = 0; tries < 500; tries++) {
        spr_get_stats(r, &st);
        if (st.state != SPR_RUNNING)
            break;
        usleep(10000);
    }
    int got = take(r, 300, NULL); /* a read may pass the limit, by one read-ahead at most */
    CHECK(got >= 10 && got < 300);
    spr_get_stats(r, &st);
    CHECK_EQ(st.state, SPR_OVERFLOWED);
    CHECK_EQ(SP_multicast(rm, AGREED_MESS, "over", 0, 1, "x"), ILLEGAL_SESSION);
    spr_free(r);
    SP_disconnect(sm);
}

static void test_failure(void)
{
    mailbox rm = connect_to("rx3", "fail"), sm = connect_to("tx3", NULL);
    int err = 0;
    spr_receiver *r = spr_start(rm, lib, 0, SPR_OVERFLOW_DISCONNECT, &err);
    for (int i = 0; i < 20; i++)
        SP_multicast(sm, AGREED_MESS, "fail", (int16)i, 5, "hello");
    spr_stats st;
    CHECK_EQ(wait_received(r, 20), 20);
    /* A request with two service bits: the daemon drops the connection. */
    unsigned char raw[48] = {0x80 | 0x12, 0, 0, 0x80};
    snprintf((char *)raw + 4, 32, "#rx3%c#localhost", lib == &native ? 'n' : 'b');
    raw[40] = 0x80, raw[43] = 0x80;
    CHECK_EQ(write(rm, raw, sizeof raw), 48);
    CHECK_EQ(take(r, 20, NULL), 20); /* everything before the failure */
    CHECK_EQ(spr_wait(r, 5000), 1);
    spr_get_stats(r, &st);
    CHECK_EQ(st.state, SPR_FAILED);
    CHECK_EQ(st.error, CONNECTION_CLOSED);
    spr_free(r);
    SP_disconnect(rm);
    SP_disconnect(sm);
}

/* Polls the receiver's counters (at most 5 s) until a consumer waits in
 * spr_wait and `delivered` messages have been taken: then what is sent
 * next arrives while that consumer waits. 1 when it came to that. */
static int until_consumer_waits(spr_receiver *r, unsigned long long delivered)
{
    spr_stats st;
    for (int tries = 0; tries < 50000; tries++) {
        spr_get_stats(r, &st);
        if (st.consumers_waiting > 0 && st.delivered == delivered)
            return 1;
        usleep(100);
    }
    return 0;
}

/* One data message from "#other#localhost" to group "g", as a daemon sends
 * it, at `at`; returns its length. */
static size_t put_message(uint8_t *at, int16 type, const void *payload, int len)
{
    uint8_t sender[WIRE_SLOT], hint[4];
    wire_put_slot(sender, "#other#localhost", 16);
    wire_make_hint(hint, type);
    wire_encode_header(at, AGREED_MESS, sender, 1, hint, len);
    wire_put_slot(at + WIRE_HEADER_SIZE, "g", 1);
    memcpy(at + WIRE_HEADER_SIZE + WIRE_SLOT, payload, (size_t)len);
    return WIRE_HEADER_SIZE + WIRE_SLOT + (size_t)len;
}

struct feeder {
    fake_link *f;
    spr_receiver *r;
    int writes, per_write;
};

/* Each write: `per_write` whole messages at once, once the consumer has taken
 * all before them and waits again. */
static void *feed_waiting(void *arg)
{
    struct feeder *w = arg;
    static uint8_t buf[64 * 128];
    for (int i = 0; i < w->writes; i++) {
        size_t len = 0;
        for (int k = 0; k < w->per_write; k++)
            len += put_message(buf + len, (int16)(i * w->per_write + k), "hello", 5);
        CHECK(until_consumer_waits(w->r, (unsigned long long)(i * w->per_write)));
        CHECK_EQ(write(w->f->peer, buf, len), (ssize_t)len);
    }
    return NULL;
}

/* Takes `count` messages one wait at a time; 1 if all came, in order. */
static int take_waiting(spr_receiver *r, int count)
{
    int got = 0, in_order = 1;
    for (; got < count; got++) {
        const spr_msg *m;
        if (spr_wait(r, 5000) != 1 || spr_peek(r, &m, 1) != 1)
            break;
        in_order &= m->mess_type == (int16)got && m->data_len == 5;
        spr_consume(r, 1);
    }
    return got == count && in_order;
}

/* Batches that arrive while a consumer waits in spr_wait wake that consumer,
 * which takes them off the socket itself (the drain thread is not woken for
 * them). Messages that arrive one at a time make consumers leave the socket
 * to the drain thread, after a few such wake-ups. */
static void test_consumer_reads(void)
{
    fake_link f;
    fake_connect(&f, 30700 + (int)(getpid() % 300), "cr");
    int err = 0;
    spr_receiver *r = spr_start(f.m, &native, 0, SPR_OVERFLOW_DISCONNECT, &err);
    CHECK(r != NULL);
    struct feeder w = {&f, r, 20, 8};
    pthread_t t;
    alarm(30); /* a lost wake-up would hang the test: fail it instead */
    pthread_create(&t, NULL, feed_waiting, &w);
    CHECK(take_waiting(r, 160));
    pthread_join(t, NULL);
    spr_stats st;
    spr_get_stats(r, &st);
    CHECK_EQ(st.received, 160);
    CHECK(st.received_by_consumers >= 80); /* all but a rare batch that beat the wait */
    spr_free(r);
    fake_close(&f);

    fake_connect(&f, 30700 + (int)(getpid() % 300), "cs");
    r = spr_start(f.m, &native, 0, SPR_OVERFLOW_DISCONNECT, &err);
    CHECK(r != NULL);
    struct feeder single = {&f, r, 40, 1};
    pthread_create(&t, NULL, feed_waiting, &single);
    CHECK(take_waiting(r, 40));
    pthread_join(t, NULL);
    alarm(0);
    spr_get_stats(r, &st);
    CHECK_EQ(st.received, 40);
    CHECK(st.received_by_consumers <= 4); /* SOCKET_MISSES in receiver.c */
    spr_free(r);
    fake_close(&f);
}

struct partial_writer {
    fake_link *f;
    spr_receiver *r;
    const uint8_t *small, *big;
    size_t small_len, big_len;
};

static int socket_unread(int fd)
{
    int n = -1;
    return ioctl(fd, FIONREAD, &n) == 0 ? n : -1;
}

/* While the consumer waits: the first 60 bytes of a small message, and its
 * rest once they have been read; then a message larger than read-ahead. */
static void *write_partial(void *arg)
{
    struct partial_writer *w = arg;
    CHECK(until_consumer_waits(w->r, 0));
    CHECK_EQ(write(w->f->peer, w->small, 60), 60);
    int tries = 0;
    while (socket_unread(w->f->m) != 0 && tries++ < 50000)
        usleep(100);
    CHECK_EQ(socket_unread(w->f->m), 0);
    CHECK_EQ(write(w->f->peer, w->small + 60, w->small_len - 60), (ssize_t)(w->small_len - 60));
    CHECK(until_consumer_waits(w->r, 1));
    for (size_t at = 0; at < w->big_len;) {
        ssize_t n = write(w->f->peer, w->big + at, w->big_len - at);
        if (n <= 0)
            break;
        at += (size_t)n;
    }
    return NULL;
}

/* A waiting consumer never blocks on the rest of a message: one that has
 * partly arrived waits for it (the rest wakes whoever waits then), one larger
 * than read-ahead goes to the drain thread; both arrive whole. */
static void test_waiting_partial(void)
{
    enum { BIG = 400000 };
    fake_link f;
    fake_connect(&f, 30000 + (int)(getpid() % 700), "wp");
    int err = 0;
    spr_receiver *r = spr_start(f.m, &native, 0, SPR_OVERFLOW_DISCONNECT, &err);
    CHECK(r != NULL);
    static uint8_t small[WIRE_HEADER_SIZE + WIRE_SLOT + 5], big[WIRE_HEADER_SIZE + WIRE_SLOT + BIG];
    static uint8_t pattern[BIG];
    for (int i = 0; i < BIG; i++)
        pattern[i] = (uint8_t)(i % 251);
    put_message(small, 1, "hello", 5);
    put_message(big, 2, pattern, BIG);
    struct partial_writer w = {&f, r, small, big, sizeof small, sizeof big};
    pthread_t t;
    alarm(30); /* a lost wake-up would hang the test: fail it instead */
    pthread_create(&t, NULL, write_partial, &w);
    const spr_msg *m;
    CHECK_EQ(spr_wait(r, 10000), 1);
    CHECK_EQ(spr_peek(r, &m, 1), 1);
    CHECK_EQ(m->mess_type, 1);
    CHECK_EQ(m->data_len, 5);
    CHECK(memcmp(spx_record_data(m), "hello", 5) == 0);
    spr_consume(r, 1);
    CHECK_EQ(spr_wait(r, 10000), 1);
    CHECK_EQ(spr_peek(r, &m, 1), 1);
    CHECK_EQ(m->mess_type, 2);
    CHECK_EQ(m->data_len, BIG);
    CHECK(memcmp(spx_record_data(m), pattern, BIG) == 0);
    spr_consume(r, 1);
    pthread_join(t, NULL);
    alarm(0);
    spr_stats st;
    spr_get_stats(r, &st);
    CHECK_EQ(st.received, 2);
    CHECK(st.received_by_consumers <= 1); /* the small one, perhaps; never the large one */
    spr_free(r);
    fake_close(&f);
}

/* spr_pending_bytes: payloads plus a 48-byte header a queued message, as
 * both backends' Mailbox.poll() reported it. */
static void test_pending_bytes(void)
{
    mailbox rm = connect_to("rx5", "pend"), sm = connect_to("tx5", NULL);
    int err = 0;
    spr_receiver *r = spr_start(rm, lib, 0, SPR_OVERFLOW_DISCONNECT, &err);
    CHECK(r != NULL);
    CHECK_EQ(spr_pending_bytes(r), 0);
    char payload[100] = {0};
    for (int i = 0; i < 10; i++)
        CHECK_EQ(SP_multicast(sm, AGREED_MESS, "pend", (int16)i, 10 * i, payload), 10 * i);
    CHECK_EQ(wait_received(r, 10), 10);
    spr_stats st;
    spr_get_stats(r, &st);
    CHECK_EQ(st.backlog_messages, 10);
    CHECK_EQ(spr_pending_bytes(r), 450 + 10 * 48);
    CHECK_EQ(spr_pending_bytes(r), st.backlog_bytes + SPR_HEADER_BYTES * st.backlog_messages);
    const spr_msg *batch[4];
    CHECK_EQ(spr_peek(r, batch, 4), 4);
    spr_consume(r, 4); /* 0 + 10 + 20 + 30 bytes gone */
    CHECK_EQ(spr_pending_bytes(r), 390 + 6 * 48);
    spr_free(r);
    SP_disconnect(rm);
    SP_disconnect(sm);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s <daemon port>\n", argv[0]);
        return 2;
    }
    snprintf(addr, sizeof addr, "%s", argv[1]);
    for (int pass = 0; pass < 2; pass++) {
        lib = pass == 0 ? &native : &bare;
        test_drain();
        test_overflow();
        test_failure();
        test_pending_bytes();
    }
    test_consumer_reads(); /* our library only: a bare one offers no waiting-free read */
    test_waiting_partial();
    return check_summary("test_receiver");
}
