/* send.c -- join, leave and the four multicast calls (SPEC.md 5, 9.7). */
#include "session.h"
#include "spx.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* Everything a send may carry besides exactly one service bit. Request and
 * internal bits get a connection killed by the daemon, so they are refused;
 * so are membership and reject bits: daemons forward them (Spread 4 does),
 * and every receiver would take the message for a daemon's notice. */
#define SEND_ALLOWED (WIRE_SERVICE_BITS | WIRE_SELF_DISCARD | WIRE_DROP_RECV | WIRE_MARKER)

static int service_ok(service service_type)
{
    uint32_t t = (uint32_t)service_type;
    uint32_t svc = t & WIRE_SERVICE_BITS;
    if (svc == 0 || (svc & (svc - 1)) != 0)
        return 0; /* none, or more than one service bit */
    return (t & ~SEND_ALLOWED) == 0;
}

/* A non-blocking send wrote part of a message: keep the rest for
 * SPX_finish_send, which the caller makes next (the send lock stays held, so
 * nothing can interleave). 0, or -1 without memory. */
static int keep_tail(session *s, struct iovec *iov, int iovcnt, int data_len)
{
    size_t len = 0;
    for (int i = 0; i < iovcnt; i++)
        len += iov[i].iov_len;
    uint8_t *tail = malloc(len ? len : 1);
    if (!tail)
        return -1;
    size_t at = 0;
    for (int i = 0; i < iovcnt; i++) {
        memcpy(tail + at, iov[i].iov_base, iov[i].iov_len);
        at += iov[i].iov_len;
    }
    s->tail = tail;
    s->tail_len = len;
    s->tail_result = data_len;
    return 0;
}

/* Writes one message atomically with respect to other senders on the
 * connection: header, group slots, then the payload pieces. With `nowait`,
 * returns SPX_WOULD_BLOCK (nothing sent) instead of waiting for room, or
 * SPX_PARTIAL (the rest is kept for SPX_finish_send; send lock held). */
static int send_message(session *s, uint32_t type, int num_groups, const uint8_t *slots,
                        int16 mess_type, const scatter *payload, int data_len, int nowait)
{
    uint8_t header[WIRE_HEADER_SIZE], hint[4];
    struct iovec iov[2 + MAX_CLIENT_SCATTER_ELEMENTS];
    int n = 0;

    wire_make_hint(hint, mess_type);
    wire_encode_header(header, type, s->private_group, num_groups, hint, data_len);
    iov[n].iov_base = header;
    iov[n++].iov_len = sizeof header;
    if (num_groups > 0) {
        iov[n].iov_base = (void *)slots;
        iov[n++].iov_len = (size_t)num_groups * WIRE_SLOT;
    }
    for (int i = 0; i < payload->num_elements; i++) {
        if (payload->elements[i].len > 0) {
            iov[n].iov_base = payload->elements[i].buf;
            iov[n++].iov_len = (size_t)payload->elements[i].len;
        }
    }

    int r;
    if (!nowait)
        pthread_mutex_lock(&s->send_lock);
    else if (pthread_mutex_trylock(&s->send_lock) != 0)
        return SPX_WOULD_BLOCK; /* another thread is sending: wait in the blocking form */
    sess_state st = sess_get_state(s);
    if (st == SESS_CLOSED) {
        r = ILLEGAL_SESSION;
    } else if (st == SESS_ERROR) {
        r = NET_ERROR_ON_SESSION;
    } else if (nowait) {
        struct msghdr msg = {0};
        msg.msg_iov = iov;
        msg.msg_iovlen = (size_t)n;
        ssize_t w;
        do
            w = sendmsg(s->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        while (w < 0 && errno == EINTR);
        size_t total = sizeof header + (size_t)num_groups * WIRE_SLOT + (size_t)data_len;
        if (w >= 0 && (size_t)w == total) {
            r = data_len;
        } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            r = SPX_WOULD_BLOCK;
        } else if (w < 0) {
            sess_set_error(s);
            r = CONNECTION_CLOSED;
        } else {
            struct iovec *rest = iov;
            int left = n;
            io_advance(&rest, &left, (size_t)w);
            if (keep_tail(s, rest, left, data_len) == 0)
                return SPX_PARTIAL; /* the send lock stays held */
            r = io_writev_full(s->fd, rest, left) == 0 ? data_len : CONNECTION_CLOSED;
        }
    } else if (io_writev_full(s->fd, iov, n) != 0) {
        sess_set_error(s);
        r = CONNECTION_CLOSED;
    } else {
        r = data_len;
    }
    pthread_mutex_unlock(&s->send_lock);
    return r;
}

int SPX_finish_send(mailbox mbox)
{
    session *s = sess_acquire(mbox);
    if (!s)
        return ILLEGAL_SESSION; /* cannot happen while the caller holds it */
    int r = s->tail_result;
    struct iovec iov = {s->tail, s->tail_len};
    if (io_writev_full(s->fd, &iov, 1) != 0) {
        sess_set_error(s);
        r = CONNECTION_CLOSED;
    }
    free(s->tail);
    s->tail = NULL;
    s->tail_len = 0;
    pthread_mutex_unlock(&s->send_lock);
    sess_release(s);
    return r;
}

int SPX_finish_send_nowait(mailbox mbox)
{
    session *s = sess_acquire(mbox);
    if (!s)
        return ILLEGAL_SESSION;
    if (!s->tail) {
        sess_release(s);
        return ILLEGAL_SESSION; /* no SPX_PARTIAL to finish */
    }
    int r = s->tail_result;
    size_t left = s->tail_len;
    size_t done = 0;
    while (done < left) {
        ssize_t w = send(s->fd, s->tail + done, left - done, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            done += (size_t)w;
        } else if (w < 0 && errno == EINTR) {
            continue;
        } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        } else {
            sess_set_error(s);
            r = CONNECTION_CLOSED;
            done = left;
        }
    }
    if (done < left) {
        memmove(s->tail, s->tail + done, left - done);
        s->tail_len = left - done;
        sess_release(s);
        return SPX_PARTIAL; /* the send lock stays held */
    }
    free(s->tail);
    s->tail = NULL;
    s->tail_len = 0;
    pthread_mutex_unlock(&s->send_lock);
    sess_release(s);
    return r;
}

int SPX_abort_send(mailbox mbox)
{
    session *s = sess_acquire(mbox);
    if (!s)
        return ILLEGAL_SESSION;
    if (s->tail) {
        sess_set_error(s); /* the daemon has half a message: nothing may follow it */
        free(s->tail);
        s->tail = NULL;
        s->tail_len = 0;
        pthread_mutex_unlock(&s->send_lock);
    }
    sess_release(s);
    return 0;
}

int SPX_check_service(service service_type)
{
    return service_ok(service_type) ? 0 : ILLEGAL_SERVICE;
}

static int scat_send(mailbox mbox, service service_type, int num_groups, const uint8_t *slots,
                     int16 mess_type, const scatter *scat, int nowait)
{
    if (!service_ok(service_type))
        return ILLEGAL_SERVICE;
    if (num_groups < 0 || num_groups > WIRE_MAX_GROUPS)
        return ILLEGAL_GROUP;
    if (!scat || scat->num_elements < 0 || scat->num_elements > MAX_CLIENT_SCATTER_ELEMENTS)
        return ILLEGAL_MESSAGE;
    session *s = sess_acquire(mbox);
    if (!s)
        return ILLEGAL_SESSION;
    int r;
    long long total = 0;
    for (int i = 0; i < scat->num_elements; i++) {
        if (scat->elements[i].len < 0) {
            sess_release(s);
            return ILLEGAL_MESSAGE;
        }
        total += scat->elements[i].len;
    }
    if (sess_get_state(s) == SESS_ERROR)
        r = NET_ERROR_ON_SESSION;
    else if (total + (long long)WIRE_SLOT * num_groups > WIRE_MAX_BODY)
        r = MESSAGE_TOO_LONG;
    else
        r = send_message(s, (uint32_t)service_type & ~WIRE_DROP_RECV, num_groups, slots, mess_type,
                         scat, (int)total, nowait);
    sess_release(s);
    return r;
}

static int single_group(mailbox mbox, service service_type, const char *group, int16 mess_type,
                        const scatter *scat, int nowait)
{
    uint8_t slot[WIRE_SLOT];
    wire_put_slot(slot, group, group ? strnlen(group, WIRE_MAX_NAME) : 0);
    return scat_send(mbox, service_type, 1, slot, mess_type, scat, nowait);
}

static int multi_group(mailbox mbox, service service_type, int num_groups,
                       const char groups[][MAX_GROUP_NAME], int16 mess_type, const scatter *scat,
                       int nowait)
{
    uint8_t slots[WIRE_MAX_GROUPS][WIRE_SLOT];
    if (num_groups < 0 || num_groups > WIRE_MAX_GROUPS || (num_groups > 0 && !groups))
        return ILLEGAL_GROUP;
    /* Re-slot each name so that every slot is NUL terminated and padded. */
    for (int i = 0; i < num_groups; i++)
        wire_put_slot(slots[i], groups[i], strnlen(groups[i], WIRE_MAX_NAME));
    return scat_send(mbox, service_type, num_groups, &slots[0][0], mess_type, scat, nowait);
}

static void one_piece(scatter *scat, const char *mess, int mess_len)
{
    scat->num_elements = 1;
    scat->elements[0].buf = (char *)mess;
    scat->elements[0].len = mess_len;
}

int SP_scat_multicast(mailbox mbox, service service_type, const char *group, int16 mess_type,
                      const scatter *scat_mess)
{
    return single_group(mbox, service_type, group, mess_type, scat_mess, 0);
}

int SP_multicast(mailbox mbox, service service_type, const char *group, int16 mess_type,
                 int mess_len, const char *mess)
{
    scatter scat;
    one_piece(&scat, mess, mess_len);
    return single_group(mbox, service_type, group, mess_type, &scat, 0);
}

int SPX_multicast_nowait(mailbox mbox, service service_type, const char *group, int16 mess_type,
                         int mess_len, const char *mess)
{
    scatter scat;
    one_piece(&scat, mess, mess_len);
    return single_group(mbox, service_type, group, mess_type, &scat, 1);
}

int SP_multigroup_scat_multicast(mailbox mbox, service service_type, int num_groups,
                                 const char groups[][MAX_GROUP_NAME], int16 mess_type,
                                 const scatter *scat_mess)
{
    return multi_group(mbox, service_type, num_groups, groups, mess_type, scat_mess, 0);
}

int SP_multigroup_multicast(mailbox mbox, service service_type, int num_groups,
                            const char groups[][MAX_GROUP_NAME], int16 mess_type, int mess_len,
                            const char *mess)
{
    scatter scat;
    one_piece(&scat, mess, mess_len);
    return multi_group(mbox, service_type, num_groups, groups, mess_type, &scat, 0);
}

int SPX_multigroup_multicast_nowait(mailbox mbox, service service_type, int num_groups,
                                    const char groups[][MAX_GROUP_NAME], int16 mess_type,
                                    int mess_len, const char *mess)
{
    scatter scat;
    one_piece(&scat, mess, mess_len);
    return multi_group(mbox, service_type, num_groups, groups, mess_type, &scat, 1);
}

void SPX_group_slot(char slot[MAX_GROUP_NAME], const char *group)
{
    wire_put_slot((uint8_t *)slot, group, group ? strnlen(group, WIRE_MAX_NAME) : 0);
}

int SPX_send_nowait(spx_session *s, service service_type, const char slot[MAX_GROUP_NAME],
                    int16 mess_type, int mess_len, const char *mess)
{
    if (!service_ok(service_type))
        return ILLEGAL_SERVICE;
    if (mess_len < 0)
        return ILLEGAL_MESSAGE;
    if ((long long)mess_len + WIRE_SLOT > WIRE_MAX_BODY)
        return MESSAGE_TOO_LONG;
    if (!s)
        return ILLEGAL_SESSION;
    scatter scat;
    one_piece(&scat, mess, mess_len);
    return send_message(s, (uint32_t)service_type & ~WIRE_DROP_RECV, 1, (const uint8_t *)slot,
                        mess_type, &scat, mess_len, 1);
}

static int membership_request(mailbox mbox, uint32_t type, const char *group, int nowait)
{
    size_t len = group ? strnlen(group, WIRE_SLOT) : 0;
    if (!wire_group_name_ok(group, len))
        return ILLEGAL_GROUP;
    session *s = sess_acquire(mbox);
    if (!s)
        return ILLEGAL_SESSION;
    uint8_t slot[WIRE_SLOT];
    scatter none;
    none.num_elements = 0;
    wire_put_slot(slot, group, len);
    int r = send_message(s, type, 1, slot, 0, &none, 0, nowait);
    sess_release(s);
    return r;
}

int SP_join(mailbox mbox, const char *group)
{
    return membership_request(mbox, WIRE_JOIN_MESS, group, 0);
}

int SP_leave(mailbox mbox, const char *group)
{
    return membership_request(mbox, WIRE_LEAVE_MESS, group, 0);
}

int SPX_join_nowait(mailbox mbox, const char *group)
{
    return membership_request(mbox, WIRE_JOIN_MESS, group, 1);
}

int SPX_leave_nowait(mailbox mbox, const char *group)
{
    return membership_request(mbox, WIRE_LEAVE_MESS, group, 1);
}
