/* test_receiver.c -- the background receiver against a running daemon:
 *     test_receiver <port>
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "receiver.h"
#include "sp.h"
#include "spx.h"
#include "check.h"

static char addr[16];
/* Our library with its extensions, and the bare SP_receive path that an
 * external libspread gets. */
static const spr_library native = {SP_receive, SP_disconnect, SPX_hold, SPX_release,
                                   SPX_set_readahead, SPX_pending, SPX_receive_records_nowait,
                                   SPX_lend_readahead, SPX_lent_room};
static const spr_library bare = {SP_receive, SP_disconnect, NULL, NULL, NULL, NULL, NULL,
                                 NULL, NULL};
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
    int got = take(r, 300, NULL); /* a read may pass the limit, by one read-ahead at most */
    CHECK(got >= 10 && got < 300);
    spr_stats st;
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
    }
    return check_summary("test_receiver");
}
