/* cffi_fast.c -- the cffi backend's hot paths (cffi_fast.h). */
#include "cffi_fast.h"

#include <stdlib.h>
#include <string.h>

#define HELP_EVERY 64 /* as the Cython backend's receiver */

cff_batch *cff_batch_new(void)
{
    cff_batch *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->scratch = malloc(CFF_SCRATCH);
    if (!b->scratch || spx_recv_buffers_init(&b->bufs) != 0) {
        free(b->scratch);
        free(b);
        return NULL;
    }
    b->scratch_size = CFF_SCRATCH;
    b->last_ngroups = -1;
    return b;
}

void cff_batch_free(cff_batch *b)
{
    if (!b)
        return;
    spx_recv_buffers_free(&b->bufs);
    free(b->scratch);
    free(b);
}

void cff_batch_forget(cff_batch *b)
{
    b->last_ngroups = -1;
}

static int is_membership(int32_t service)
{
    return Is_membership_mess(service) != 0; /* sp.h: and not a reject */
}

/* The scratch bytes one message needs at most. */
static size_t need_of(int32_t data_len, int32_t num_groups)
{
    return MAX_GROUP_NAME * (1 + (size_t)num_groups) + (size_t)data_len;
}

/* Scratch of at least need bytes (what it held is not kept): 0 or -1. */
static int grow_scratch(cff_batch *b, size_t need)
{
    char *p = malloc(need);
    if (!p)
        return -1;
    free(b->scratch);
    b->scratch = p;
    b->scratch_size = need;
    b->moved = 1;
    return 0;
}

/* CFF_MOVED if scratch moved since the last call that told so, else 0. */
static int moved(cff_batch *b)
{
    int m = b->moved ? CFF_MOVED : 0;
    b->moved = 0;
    return m;
}

/* Appends message k's description at *at in scratch (which has room). */
static void put(cff_batch *b, int k, size_t *at, int32_t service, const char *sender,
                const char *groups, int32_t num_groups, int32_t endian, int16 mess_type,
                const char *data, int32_t data_len)
{
    int32_t *info = &b->info[k * CFF_INFO];
    int flags = 0;
    size_t group_bytes = (size_t)num_groups * MAX_GROUP_NAME;
    int membership = is_membership(service);
    if (membership)
        flags |= CFF_NOTICE;
    if (membership || b->last_ngroups < 0 || memcmp(sender, b->last_sender, MAX_GROUP_NAME) != 0) {
        flags |= CFF_SENDER;
        memcpy(b->last_sender, sender, MAX_GROUP_NAME);
        memcpy(b->scratch + *at, sender, MAX_GROUP_NAME);
        *at += MAX_GROUP_NAME;
    }
    if (membership || num_groups > CFF_CACHED_GROUPS || num_groups != b->last_ngroups ||
        (group_bytes && memcmp(groups, b->last_groups, group_bytes) != 0)) {
        flags |= CFF_GROUPS;
        if (group_bytes)
            memcpy(b->scratch + *at, groups, group_bytes);
        *at += group_bytes;
        if (num_groups <= CFF_CACHED_GROUPS) {
            if (group_bytes)
                memcpy(b->last_groups, groups, group_bytes);
            b->last_ngroups = num_groups;
        } else {
            b->last_ngroups = CFF_CACHED_GROUPS + 1; /* never equal to a cached count */
        }
    }
    if (data_len > 0)
        memcpy(b->scratch + *at, data, (size_t)data_len);
    *at += (size_t)(data_len > 0 ? data_len : 0);
    info[0] = service;
    info[1] = data_len;
    info[2] = num_groups;
    info[3] = endian;
    info[4] = mess_type;
    info[5] = flags;
}

/* Whether messages wait in r's queue, or 0 with CFF_ENDED's condition in
 * *ended: one snapshot of the stats, so that messages queued before the end
 * are taken before it is reported. */
static int queued_or_ended(spr_receiver *r, int *ended)
{
    spr_stats st;
    spr_get_stats(r, &st);
    *ended = st.state != SPR_RUNNING && st.backlog_messages == 0;
    return st.backlog_messages > 0;
}

int cff_take(spr_receiver *r, cff_batch *b, int max, int help)
{
    const spr_msg *ms[CFF_BATCH];
    if (max > CFF_BATCH)
        max = CFF_BATCH;
    int n = spr_peek(r, ms, max);
    if (help == CFF_HELP_DONE) {
        b->since_help = 0;
    } else if (b->since_help >= HELP_EVERY || n == 0) {
        if (help == CFF_HELP_ASK)
            return CFF_HELP_DUE;
        b->since_help = 0;
        if (spr_help(r) > 0 || n == 0)
            n = spr_peek(r, ms, max);
    }
    if (n == 0) {
        int ended = 0;
        if (!queued_or_ended(r, &ended))
            return ended ? CFF_ENDED : 0;
        n = spr_peek(r, ms, max); /* arrived meanwhile */
    }
    size_t at = 0;
    int k = 0;
    for (; k < n; k++) {
        const spr_msg *m = ms[k];
        size_t need = need_of(m->data_len, m->num_groups);
        if (at + need > b->scratch_size) {
            if (k > 0)
                break; /* the rest next time */
            if (grow_scratch(b, need) != 0)
                return SPX_NO_MEMORY;
        }
        put(b, k, &at, m->service, m->sender, spx_record_groups_flat(m), m->num_groups, m->endian,
            m->mess_type, spx_record_data(m), m->data_len);
    }
    b->since_help += k;
    return k + moved(b);
}

void cff_consume(spr_receiver *r, int n)
{
    spr_consume(r, n);
}

/* Describes the message of n bytes that a receive left in b's buffers as a
 * batch of one (see cffw_receive). */
static int describe_received(cff_batch *b, int n)
{
    size_t need = need_of(n, b->num_groups);
    if (need > b->scratch_size && grow_scratch(b, need) != 0) {
        b->held = 1; /* taken off the socket: kept for the next call */
        b->held_len = n;
        return SPX_NO_MEMORY;
    }
    b->held = 0;
    size_t at = 0;
    put(b, 0, &at, b->svc, b->sender, &b->bufs.groups[0][0], b->num_groups, b->endian, b->mess_type,
        b->bufs.data, n);
    return 1 + moved(b);
}

int cff_receive(mailbox mbox, cff_batch *b)
{
    if (b->held)
        return SPX_WOULD_BLOCK; /* cffw_receive describes it */
    b->svc = 0;
    int n = SPX_receive_nowait(mbox, &b->svc, b->sender, b->bufs.groups_size, &b->num_groups,
                               b->bufs.groups, &b->mess_type, &b->endian, b->bufs.data_size,
                               b->bufs.data);
    return n < 0 ? n : describe_received(b, n);
}

int cffw_receive(spr_receive_fn receive, mailbox mbox, cff_batch *b)
{
    int n = b->held_len;
    if (!b->held) {
        n = SPX_receive_grow(receive, mbox, &b->bufs, &b->svc, b->sender, &b->num_groups,
                             &b->mess_type, &b->endian);
        if (n < 0)
            return n;
    }
    return describe_received(b, n);
}

int cff_multicast(mailbox mbox, service service_type, const char *group, int16 mess_type,
                  int mess_len, const char *mess)
{
    return SPX_multicast_nowait(mbox, service_type, group, mess_type, mess_len, mess);
}

int cff_multigroup_multicast(mailbox mbox, service service_type, int num_groups,
                             const char groups[][MAX_GROUP_NAME], int16 mess_type, int mess_len,
                             const char *mess)
{
    return SPX_multigroup_multicast_nowait(mbox, service_type, num_groups, groups, mess_type,
                                           mess_len, mess);
}

int cff_finish_send(mailbox mbox)
{
    return SPX_finish_send_nowait(mbox);
}
