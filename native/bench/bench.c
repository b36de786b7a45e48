/* bench.c -- see bench.h. The loops mirror the Python benchmark loops. */
#include "bench.h"
#include "library.h"
#include "spx.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_RECV   (160 * 1024)
#define MAX_GROUPS 128

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

typedef struct {
    service svc;
    char sender[MAX_GROUP_NAME];
    int num_groups, endian;
    int16 mess_type;
    char groups[MAX_GROUPS][MAX_GROUP_NAME];
    char data[MAX_RECV];
} inbox;

static int take(mailbox m, inbox *in)
{
    in->svc = 0;
    return spl.SP_receive(m, &in->svc, in->sender, MAX_GROUPS, &in->num_groups, in->groups,
                          &in->mess_type, &in->endian, MAX_RECV, in->data);
}

int spb_multicast(mailbox m, const char *group, int size, int count, int16 last_type,
                  double *seconds)
{
    char *payload = calloc(1, (size_t)size + 1);
    if (!payload)
        return ILLEGAL_MESSAGE;
    int r = 0;
    double start = now();
    for (int i = 0; i < count && r >= 0; i++)
        r = spl.SP_multicast(m, RELIABLE_MESS, group, i == count - 1 ? last_type : 0, size,
                             payload);
    *seconds = now() - start;
    free(payload);
    return r < 0 ? r : 0;
}

int spb_self(mailbox m, const char *group, int size, int count, int window, double *seconds)
{
    char *payload = calloc(1, (size_t)size + 1);
    inbox *in = malloc(sizeof *in);
    int r = 0, sent = 0, got = 0;
    if (!payload || !in) {
        free(payload);
        free(in);
        return ILLEGAL_MESSAGE;
    }
    double start = now();
    while (got < count && r >= 0) {
        while (sent < count && sent - got < window && r >= 0) {
            r = spl.SP_multicast(m, RELIABLE_MESS, group, 0, size, payload);
            sent++;
        }
        if (r >= 0)
            r = take(m, in);
        if (r >= 0 && Is_regular_mess(in->svc))
            got++;
    }
    *seconds = now() - start;
    free(payload);
    free(in);
    return r < 0 ? r : 0;
}

int spb_receive(mailbox m, int16 end_type, long *messages, double *seconds, int *error)
{
    inbox *in = malloc(sizeof *in);
    double first = 0, last = 0;
    long n = 0;
    if (!in)
        return ILLEGAL_MESSAGE;
    *error = 0;
    if (spl.SP_receive == SP_receive) /* our library: read ahead, as the receiver does */
        SPX_set_readahead(m, 256 << 10);
    for (;;) {
        int r = take(m, in);
        if (r < 0) {
            *error = r;
            break;
        }
        if (!Is_regular_mess(in->svc))
            continue;
        /* The clock is read at the first and the last message only: the
         * Python loops do the same, so neither pays for it per message. */
        if (n == 0)
            first = now();
        if (in->mess_type == end_type)
            break;
        n++;
    }
    last = now(); /* the end message, or the error */
    if (spl.SP_receive == SP_receive)
        SPX_set_readahead(m, 0);
    *messages = n;
    *seconds = last - first;
    free(in);
    return 0;
}

int spb_ping(mailbox m, const char *peer_group, int size, int warmup, int rounds, double *rtt_us)
{
    char *payload = calloc(1, (size_t)size + 1);
    inbox *in = malloc(sizeof *in);
    int r = 0;
    if (!payload || !in) {
        free(payload);
        free(in);
        return ILLEGAL_MESSAGE;
    }
    for (int i = 0; i < warmup + rounds && r >= 0; i++) {
        double start = now();
        r = spl.SP_multicast(m, RELIABLE_MESS, peer_group, 0, size, payload);
        while (r >= 0) {
            r = take(m, in);
            if (r >= 0 && Is_regular_mess(in->svc))
                break;
        }
        if (i >= warmup)
            rtt_us[i - warmup] = (now() - start) * 1e6;
    }
    free(payload);
    free(in);
    return r < 0 ? r : 0;
}

int spb_pong(mailbox m, const char *reply_group, int16 end_type, long *echoed)
{
    inbox *in = malloc(sizeof *in);
    int r = 0;
    long n = 0;
    if (!in)
        return ILLEGAL_MESSAGE;
    while (r >= 0) {
        r = take(m, in);
        if (r < 0 || !Is_regular_mess(in->svc))
            continue;
        if (in->mess_type == end_type)
            break;
        r = spl.SP_multicast(m, RELIABLE_MESS, reply_group, 0, r, in->data);
        n++;
    }
    *echoed = n;
    free(in);
    return r < 0 ? r : 0;
}
