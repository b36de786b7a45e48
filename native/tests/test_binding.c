/* test_binding.c -- the C helpers both Python backends share: the growing
 * receive loop (SPX_receive_grow) against a scripted SP_receive, and the
 * drain thread's table of the library in use (spl_receiver_library), ours
 * and, given the path of a libspread as argv[1], an external one. */
#include <string.h>

#include "library.h"
#include "receiver.h"
#include "spx.h"
#include "check.h"

/* A scripted SP_receive: each call takes the next step. A step that asks
 * for more than the buffers given reports it as sp.h does (a short code,
 * -names and -bytes needed); one that fits delivers. */
typedef struct {
    int result;      /* what the call returns if it fits (a length, or an error) */
    int groups;      /* names the message has */
    int bytes;       /* payload bytes */
} step;

static const step *script;
static int calls, last_max_groups, last_max_len;
static service service_seen;

static int scripted(mailbox mbox, service *service_type, char sender[MAX_GROUP_NAME],
                    int max_groups, int *num_groups, char groups[][MAX_GROUP_NAME],
                    int16 *mess_type, int *endian_mismatch, int max_mess_len, char *mess)
{
    (void)mbox;
    const step *s = &script[calls++];
    service_seen = *service_type;
    last_max_groups = max_groups;
    last_max_len = max_mess_len;
    *mess_type = 7;
    if (s->result < 0 && s->result != BUFFER_TOO_SHORT && s->result != GROUPS_TOO_SHORT) {
        *num_groups = 0;
        *endian_mismatch = 0;
        return s->result; /* an error, passed through */
    }
    int groups_short = s->groups > max_groups, data_short = s->bytes > max_mess_len;
    if (groups_short || data_short || s->result == BUFFER_TOO_SHORT ||
        s->result == GROUPS_TOO_SHORT) {
        *num_groups = groups_short || s->result == GROUPS_TOO_SHORT ? -s->groups : 0;
        *endian_mismatch = data_short || s->result == BUFFER_TOO_SHORT ? -s->bytes : 0;
        return groups_short || s->result == GROUPS_TOO_SHORT ? GROUPS_TOO_SHORT : BUFFER_TOO_SHORT;
    }
    strcpy(sender, "#tx#localhost");
    for (int i = 0; i < s->groups; i++)
        snprintf(groups[i], MAX_GROUP_NAME, "g%d", i);
    memset(mess, 'x', (size_t)s->bytes);
    *num_groups = s->groups;
    *endian_mismatch = 0;
    return s->bytes;
}

static int run(const step *steps, spx_recv_buffers *b, int *num_groups)
{
    char sender[MAX_GROUP_NAME];
    service svc = DROP_RECV; /* must be cleared before every call */
    int16 mt;
    int endian;
    script = steps;
    calls = 0;
    return SPX_receive_grow(scripted, 3, b, &svc, sender, num_groups, &mt, &endian);
}

static void test_receive_grow(void)
{
    spx_recv_buffers b;
    int ng = 0;
    CHECK_EQ(spx_recv_buffers_init(&b), 0);
    CHECK_EQ(b.data_size, SPX_RECV_FIRST_DATA);
    CHECK_EQ(b.groups_size, SPX_RECV_FIRST_GROUPS);

    /* Fits at once: one call, the buffers as they were. */
    static const step small[] = {{0, 2, 100}};
    CHECK_EQ(run(small, &b, &ng), 100);
    CHECK_EQ(calls, 1);
    CHECK_EQ(ng, 2);
    CHECK_EQ(service_seen, 0);
    CHECK(strcmp(b.groups[1], "g1") == 0 && b.data[99] == 'x');

    /* The payload grows: one call short, then it fits; the groups stay. */
    static const step big[] = {{0, 2, 100000}, {0, 2, 100000}};
    CHECK_EQ(run(big, &b, &ng), 100000);
    CHECK_EQ(calls, 2);
    CHECK_EQ(b.data_size, 100000);
    CHECK_EQ(b.groups_size, SPX_RECV_FIRST_GROUPS);
    CHECK_EQ(last_max_len, 100000);

    /* Short of one, then of the other: two calls short, then it fits. */
    static const step twice[] = {{0, 2, 120000}, {0, 20, 120000}, {0, 20, 120000}};
    CHECK_EQ(run(twice, &b, &ng), 120000);
    CHECK_EQ(calls, 3);
    CHECK_EQ(b.groups_size, 20);

    static const step many[] = {{0, 40, 10}, {0, 40, 10}};
    CHECK_EQ(run(many, &b, &ng), 10);
    CHECK_EQ(calls, 2);
    CHECK_EQ(b.groups_size, 40);
    CHECK_EQ(ng, 40);
    CHECK(strcmp(b.groups[39], "g39") == 0);
    CHECK_EQ(service_seen, 0);
    CHECK_EQ(last_max_groups, 40);

    /* Both at once (a message short of both), and kept for the next. */
    static const step both[] = {{GROUPS_TOO_SHORT, 300, 300000}, {0, 300, 300000}};
    CHECK_EQ(run(both, &b, &ng), 300000);
    CHECK_EQ(calls, 2);
    CHECK_EQ(b.groups_size, 300);
    CHECK_EQ(b.data_size, 300000);
    CHECK_EQ(last_max_len, 300000);
    static const step again[] = {{0, 300, 300000}};
    CHECK_EQ(run(again, &b, &ng), 300000);
    CHECK_EQ(calls, 1);

    /* Errors pass through unchanged, SPX_INTERRUPTED among them. */
    static const int errors[] = {SPX_INTERRUPTED, CONNECTION_CLOSED,    ILLEGAL_SESSION,
                                 ILLEGAL_MESSAGE, NET_ERROR_ON_SESSION, SPX_WOULD_BLOCK};
    for (size_t i = 0; i < sizeof errors / sizeof errors[0]; i++) {
        const step e[] = {{errors[i], 0, 0}};
        CHECK_EQ(run(e, &b, &ng), errors[i]);
        CHECK_EQ(calls, 1);
    }
    /* A short code that asks for nothing more than b has: returned, no loop. */
    static const step broken[] = {{BUFFER_TOO_SHORT, 1, 10}};
    CHECK_EQ(run(broken, &b, &ng), BUFFER_TOO_SHORT);
    CHECK_EQ(calls, 1);

    spx_recv_buffers_free(&b);
    CHECK(b.data == NULL && b.groups == NULL && b.data_size == 0 && b.groups_size == 0);
    spx_recv_buffers_free(&b); /* twice is fine */
}

static void test_constants(void)
{
    CHECK_EQ(SPX_MAX_SAFE_BODY, 143551);
    CHECK_EQ(SPR_HEADER_BYTES, 48);
    CHECK_EQ(spx_record_size(0, 0), spx_align8(sizeof(spx_record)));
    CHECK_EQ(spx_record_size(1, 0), spx_align8(sizeof(spx_record)) + 8);
    CHECK_EQ(spx_record_size(8, 2), spx_align8(sizeof(spx_record) + 8 + 64));
    CHECK_EQ(spx_record_size(9, 1) % 8, 0);
}

static void test_receiver_library(const char *external)
{
    spr_library l;
    memset(&l, 0x55, sizeof l);
    spl_receiver_library(&l);
    CHECK(l.receive == SP_receive && l.disconnect == SP_disconnect);
    CHECK(l.hold == SPX_hold && l.release == SPX_release && l.readahead == SPX_set_readahead);
    CHECK(l.pending == SPX_pending && l.records == SPX_receive_records_nowait);
    CHECK(l.lend == SPX_lend_readahead && l.lent_room == SPX_lent_room);
    if (!external)
        return;
    char err[256];
    CHECK_EQ(spl_load(external, err, sizeof err), 0);
    memset(&l, 0x55, sizeof l);
    spl_receiver_library(&l);
    CHECK(l.receive == spl.SP_receive && l.disconnect == spl.SP_disconnect);
    CHECK(l.receive != SP_receive); /* the loaded library's own */
    CHECK(!l.hold && !l.release && !l.readahead && !l.pending && !l.records && !l.lend &&
          !l.lent_room);
    /* And it runs: no such mailbox in the loaded library. */
    char sender[MAX_GROUP_NAME];
    service svc;
    int ng, endian;
    int16 mt;
    spx_recv_buffers b;
    CHECK_EQ(spx_recv_buffers_init(&b), 0);
    CHECK_EQ(SPX_receive_grow(l.receive, 12345, &b, &svc, sender, &ng, &mt, &endian),
             ILLEGAL_SESSION);
    spx_recv_buffers_free(&b);
}

int main(int argc, char **argv)
{
    test_receive_grow();
    test_constants();
    test_receiver_library(argc > 1 ? argv[1] : NULL);
    return check_summary("test_binding");
}
