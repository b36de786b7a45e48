/* receive.c -- SP_receive, SP_scat_receive and SP_poll (SPEC.md 6.5, 9.1-9.6).
 *
 * The library never takes off the socket more than the message it returns
 * (unless a background receiver that owns the socket asks it to,
 * SPX_set_readahead): a program that select()s on the mailbox must see it
 * readable while messages are pending. Each message costs two reads: the
 * header, then groups and payload together; with SPX_set_peek, a burst
 * costs two (a peek at all of it, then removing what was returned).
 */
#include "session.h"
#include "spx.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

/* Reads the next header (and a reject's old-type word) off the socket. */
static int read_header(session *s, wire_header *h, uint32_t *old_type)
{
    uint8_t raw[WIRE_HEADER_SIZE + WIRE_REJECT_EXTRA];
    struct iovec iov = {raw, WIRE_HEADER_SIZE};
    int r = stream_readv(s, &iov, 1, 1);
    if (r != 0)
        return r;
    if (wire_decode_header(raw, h) != 0)
        return ILLEGAL_MESSAGE;
    *old_type = 0;
    if (h->type & WIRE_REJECT_MESS) {
        struct iovec extra = {raw + WIRE_HEADER_SIZE, WIRE_REJECT_EXTRA};
        if ((r = stream_readv(s, &extra, 1, 0)) != 0)
            return r;
        *old_type = wire_get_u32(raw + WIRE_HEADER_SIZE, h->order) & ~WIRE_MARKER;
    }
    if (!wire_header_plausible(h))
        return ILLEGAL_MESSAGE;
    return 0;
}

/* Copies `len` body bytes at offset `off` of a scatter into or out of `flat`. */
static void scat_copy(scatter *scat, uint8_t *flat, size_t len, int to_flat)
{
    size_t done = 0;
    for (int i = 0; i < scat->num_elements && done < len; i++) {
        size_t n = (size_t)scat->elements[i].len;
        if (n > len - done)
            n = len - done;
        if (to_flat)
            memcpy(flat + done, scat->elements[i].buf, n);
        else
            memcpy(scat->elements[i].buf, flat + done, n);
        done += n;
    }
}

/* Validates a membership body for its type and brings it to host order. */
static int fix_membership_body(scatter *scat, size_t len, wire_order order, uint32_t type)
{
    uint8_t *body = NULL;
    int flat = scat->num_elements >= 1 && (size_t)scat->elements[0].len >= len;
    if (flat) {
        body = (uint8_t *)scat->elements[0].buf;
    } else {
        body = calloc(1, len ? len
                             : 1); /* zeroed: the scatter fills it, but the compiler cannot tell */
        if (!body)
            return ILLEGAL_MESSAGE;
        scat_copy(scat, body, len, 1);
    }
    int ok = wire_memb_body_fits(body, len, order, type);
    if (ok)
        wire_memb_body_to_host(body, len, order, type);
    if (!flat) {
        if (ok)
            scat_copy(scat, body, len, 0);
        free(body);
    }
    return ok ? 0 : ILLEGAL_MESSAGE;
}

static int own_index(const session *s, const char groups[][MAX_GROUP_NAME], int n)
{
    for (int i = 0; i < n; i++)
        if (memcmp(groups[i], s->private_group, WIRE_SLOT) == 0)
            return i;
    return -1;
}

/* The service type SP_receive reports: a reject's is its old type. */
static uint32_t service_of(const wire_header *h, uint32_t old_type)
{
    return (h->type & WIRE_REJECT_MESS) ? (old_type | WIRE_REJECT_MESS) : h->type;
}

/* The outputs that depend on the kind of message (SPEC.md 6.5, 9.1), once
 * its groups and body are in place: mess_type and endian_mismatch, and for a
 * membership a body checked for its type, in host order. 0, or
 * ILLEGAL_MESSAGE for a membership whose body does not fit its type (the
 * outputs are then those of a membership whose body is left as it came). */
static int describe(const session *s, const wire_header *h, uint32_t svc,
                    const char groups[][MAX_GROUP_NAME], int kept_groups, int groups_short,
                    scatter *body, int data_short, int16 *mess_type, int *endian_mismatch)
{
    if (!Is_membership_mess(svc)) {
        *mess_type = wire_hint_mess_type(h->hint);
        *endian_mismatch = wire_hint_order(h->hint) != wire_host_order();
        return 0;
    }
    *endian_mismatch = 0;
    *mess_type = -1;
    if ((svc & (WIRE_REG_MEMB_MESS | WIRE_TRANSITION_MESS)) && !data_short) {
        if (fix_membership_body(body, (size_t)h->data_len, h->order, svc) != 0)
            return ILLEGAL_MESSAGE;
        if (!groups_short)
            *mess_type = (int16)own_index(s, groups, kept_groups);
    }
    return 0;
}

#define NOT_PEEKED (-2002)

/* Does p (have bytes) start with a whole message the caller's buffers take?
 * Its header and size then; a header the general path must refuse is not. */
static int peeked_whole(const uint8_t *p, size_t have, wire_header *h, size_t *size)
{
    *size = 0;
    if (have < WIRE_HEADER_SIZE || wire_decode_header(p, h) != 0 || !wire_header_plausible(h))
        return 0;
    *size = wire_message_size(h);
    return have >= *size;
}

static size_t scat_capacity(const scatter *scat)
{
    size_t capacity = 0;
    for (int i = 0; i < scat->num_elements; i++)
        capacity += (size_t)scat->elements[i].len;
    return capacity;
}

/* The header (decoded once) of the whole message at pk_pos, or NULL; *size
 * is then what peeked_whole says (0 for no header). */
static inline const wire_header *peeked_next(session *s, size_t *size)
{
    if (s->pk_next_ok) {
        *size = wire_message_size(&s->pk_next);
        return &s->pk_next;
    }
    if (!peeked_whole(s->pk_buf + s->pk_pos, s->pk_end - s->pk_pos, &s->pk_next, size))
        return NULL;
    s->pk_next_ok = 1;
    return &s->pk_next;
}

/* Past a returned message of `size` bytes; once no whole message follows,
 * what was returned leaves the socket. */
static inline void peeked_advance(session *s, size_t size)
{
    size_t next_size;
    s->pk_pos += size;
    s->pk_next_ok = 0;
    atomic_store_explicit(&s->pk_returned, s->pk_pos, memory_order_relaxed);
    if (!peeked_next(s, &next_size) && stream_peek_settle(s) != 0)
        sess_set_error(s); /* the message returned is whole: the error is the next call's */
}

/* Error after a failed socket: the session's end from now on. */
static int socket_failed(session *s)
{
    sess_set_error(s);
    return sess_get_state(s) == SESS_CLOSED ? ILLEGAL_SESSION : CONNECTION_CLOSED;
}

/* Makes sure a whole message waits at pk_pos, peeking first if nothing is
 * (waiting for data if `wait`): 1 (*h its header, *size its size), 0 (none
 * has wholly arrived; nothing is peeked now) or SPX_INTERRUPTED. */
static inline int peek_ready(session *s, int wait, const wire_header **h, size_t *size)
{
    if (s->pk_end == 0) {
        if (s->pk_skip > 0) {
            s->pk_skip--;
            return 0;
        }
        long got = stream_peek_fill(s, wait);
        if (got <= 0)
            return (int)got;
    }
    if ((*h = peeked_next(s, size)) != NULL)
        return 1;
    /* Only a fill leaves a part at pk_pos (0): nothing was returned. A
     * message larger than one peek takes: read the next few the plain way. */
    if (*size > STREAM_PEEK_SIZE)
        s->pk_skip = 8;
    if (stream_peek_settle(s) != 0)
        sess_set_error(s); /* met by the read that follows */
    return 0;
}

/* The next message from the peek buffer (see peek_ready), with
 * receive_locked's outputs; NOT_PEEKED (nothing peeked or returned: the
 * general path reads the socket) when no whole message that fits has been
 * peeked. */
static int receive_peeked(session *s, service *service_type, char sender[MAX_GROUP_NAME],
                          int max_groups, int *num_groups, char groups[][MAX_GROUP_NAME],
                          int16 *mess_type, int *endian_mismatch, scatter *scat, int wait)
{
    const wire_header *hp = NULL;
    size_t size;
    int ready = peek_ready(s, wait, &hp, &size);
    if (ready != 1)
        return ready == SPX_INTERRUPTED ? ready : NOT_PEEKED;
    wire_header h = *hp;
    if (h.num_groups > max_groups || (size_t)h.data_len > scat_capacity(scat))
        return stream_peek_settle(s) != 0 ? socket_failed(s) : NOT_PEEKED;
    const uint8_t *p = s->pk_buf + s->pk_pos;
    size_t at = WIRE_HEADER_SIZE, ng = (size_t)h.num_groups, dl = (size_t)h.data_len;
    uint32_t old_type = 0;
    if (h.type & WIRE_REJECT_MESS) {
        old_type = wire_get_u32(p + at, h.order) & ~WIRE_MARKER;
        at += WIRE_REJECT_EXTRA;
    }
    if (ng > 0)
        memcpy(groups, p + at, ng * WIRE_SLOT);
    for (size_t i = 0; i < ng; i++)
        groups[i][WIRE_SLOT - 1] = '\0';
    scat_copy(scat, (uint8_t *)(p + at + ng * WIRE_SLOT), dl, 0);
    memcpy(sender, h.sender, WIRE_SLOT);
    sender[WIRE_SLOT - 1] = '\0';
    peeked_advance(s, size);
    uint32_t svc = service_of(&h, old_type);
    *service_type = (service)svc;
    *num_groups = (int)ng;
    if (describe(s, &h, svc, (const char (*)[MAX_GROUP_NAME])groups, (int)ng, 0, scat, 0, mess_type,
                 endian_mismatch) != 0)
        return ILLEGAL_MESSAGE;
    return (int)dl;
}

/* pass_bad: a membership whose body does not fit its type is returned like
 * any message (records: the binding's decoder refuses it, alone) instead of
 * as ILLEGAL_MESSAGE (SP_receive: a C caller never sees such a body). */
static int receive_locked(session *s, service *service_type, char sender[MAX_GROUP_NAME],
                          int max_groups, int *num_groups, char groups[][MAX_GROUP_NAME],
                          int16 *mess_type, int *endian_mismatch, scatter *scat, int pass_bad)
{
    sess_state st = sess_get_state(s);
    if (st == SESS_CLOSED)
        return ILLEGAL_SESSION;
    if (st == SESS_ERROR)
        return NET_ERROR_ON_SESSION;

    int drop = (*service_type & DROP_RECV) != 0;
    if (s->pk_on && !drop && !s->have_saved && !s->ra_on && s->ra_pos == s->ra_end) {
        int r = receive_peeked(s, service_type, sender, max_groups, num_groups, groups, mess_type,
                               endian_mismatch, scat, 1);
        if (r != NOT_PEEKED)
            return r;
    } else if (s->pk_end > 0 && stream_peek_settle(s) != 0) {
        return socket_failed(s);
    }
    wire_header h;
    uint32_t old_type;
    if (s->have_saved) {
        h = s->saved;
        old_type = s->saved_old_type;
    } else {
        int r = read_header(s, &h, &old_type);
        if (r == SPX_INTERRUPTED || r == SPX_WOULD_BLOCK)
            return r; /* nothing consumed */
        if (r != 0) {
            sess_set_error(s);
            return sess_get_state(s) == SESS_CLOSED ? ILLEGAL_SESSION : r;
        }
    }

    uint32_t svc = service_of(&h, old_type);
    int is_memb = Is_membership_mess(svc) != 0;
    size_t capacity = scat_capacity(scat);
    if (max_groups < 0)
        max_groups = 0;

    *service_type = (service)svc;
    memcpy(sender, h.sender, WIRE_SLOT);
    sender[WIRE_SLOT - 1] = '\0';
    int16 hinted = wire_hint_mess_type(h.hint);

    int groups_short = h.num_groups > max_groups;
    int data_short = (size_t)h.data_len > capacity;
    if (!drop && (groups_short || data_short)) {
        /* Leave the message pending; the next call sees it again (9.3). */
        s->have_saved = 1;
        s->saved = h;
        s->saved_old_type = old_type;
        *mess_type = is_memb ? 0 : hinted;
        *num_groups = groups_short ? -h.num_groups : 0;
        *endian_mismatch = data_short ? -h.data_len : 0;
        return groups_short ? GROUPS_TOO_SHORT : BUFFER_TOO_SHORT;
    }
    s->have_saved = 0; /* consumed from here on, whatever happens */

    int kept_groups = groups_short ? max_groups : h.num_groups;
    size_t kept_data = data_short ? capacity : (size_t)h.data_len;
    struct iovec iov[1 + MAX_CLIENT_SCATTER_ELEMENTS];
    int n = 0;
    iov[n].iov_base = groups;
    iov[n++].iov_len = (size_t)kept_groups * WIRE_SLOT;
    int io_ok = 1;
    if (groups_short) {
        io_ok = stream_readv(s, iov, n, 0) == 0 &&
                stream_discard(s, (size_t)(h.num_groups - kept_groups) * WIRE_SLOT) == 0;
        n = 0;
    }
    size_t left = kept_data;
    for (int i = 0; i < scat->num_elements && left > 0; i++) {
        size_t take = (size_t)scat->elements[i].len < left ? (size_t)scat->elements[i].len : left;
        iov[n].iov_base = scat->elements[i].buf;
        iov[n++].iov_len = take;
        left -= take;
    }
    if (io_ok)
        io_ok = stream_readv(s, iov, n, 0) == 0;
    if (io_ok && data_short)
        io_ok = stream_discard(s, (size_t)h.data_len - kept_data) == 0;
    if (!io_ok)
        return socket_failed(s);
    for (int i = 0; i < kept_groups; i++)
        groups[i][WIRE_SLOT - 1] = '\0';

    *num_groups = groups_short ? -h.num_groups : h.num_groups;
    if (describe(s, &h, svc, (const char (*)[MAX_GROUP_NAME])groups, kept_groups, groups_short,
                 scat, data_short, mess_type, endian_mismatch) != 0 &&
        !pass_bad)
        return ILLEGAL_MESSAGE;
    return data_short ? BUFFER_TOO_SHORT : h.data_len;
}

int SP_scat_receive(mailbox mbox, service *service_type, char sender[MAX_GROUP_NAME],
                    int max_groups, int *num_groups, char groups[][MAX_GROUP_NAME],
                    int16 *mess_type, int *endian_mismatch, scatter *scat_mess)
{
    if (!scat_mess || scat_mess->num_elements < 0 ||
        scat_mess->num_elements > MAX_CLIENT_SCATTER_ELEMENTS)
        return ILLEGAL_MESSAGE;
    for (int i = 0; i < scat_mess->num_elements; i++)
        if (scat_mess->elements[i].len < 0)
            return ILLEGAL_MESSAGE;
    session *s = sess_acquire(mbox);
    if (!s)
        return ILLEGAL_SESSION;
    service ignored = 0;
    sess_recv_lock(s);
    int r = receive_locked(s, service_type ? service_type : &ignored, sender, max_groups,
                           num_groups, groups, mess_type, endian_mismatch, scat_mess, 0);
    sess_recv_unlock(s);
    sess_release(s);
    return r;
}

int SP_receive(mailbox mbox, service *service_type, char sender[MAX_GROUP_NAME], int max_groups,
               int *num_groups, char groups[][MAX_GROUP_NAME], int16 *mess_type,
               int *endian_mismatch, int max_mess_len, char *mess)
{
    scatter scat;
    scat.num_elements = 1;
    scat.elements[0].buf = mess;
    scat.elements[0].len = max_mess_len;
    return SP_scat_receive(mbox, service_type, sender, max_groups, num_groups, groups, mess_type,
                           endian_mismatch, &scat);
}

int SPX_receive_nowait(mailbox mbox, service *service_type, char sender[MAX_GROUP_NAME],
                       int max_groups, int *num_groups, char groups[][MAX_GROUP_NAME],
                       int16 *mess_type, int *endian_mismatch, int max_mess_len, char *mess)
{
    if (max_mess_len < 0 || (service_type && (*service_type & DROP_RECV)))
        return SPX_WOULD_BLOCK;
    session *s = sess_acquire(mbox);
    if (!s)
        return ILLEGAL_SESSION;
    int r = SPX_WOULD_BLOCK;
    if (sess_recv_trylock(s) == 0) {
        if (s->pk_on && !s->have_saved && !s->ra_on && s->ra_pos == s->ra_end &&
            sess_get_state(s) == SESS_OPEN) {
            service ignored = 0;
            scatter scat;
            scat.num_elements = 1;
            scat.elements[0].buf = mess;
            scat.elements[0].len = max_mess_len;
            r = receive_peeked(s, service_type ? service_type : &ignored, sender, max_groups,
                               num_groups, groups, mess_type, endian_mismatch, &scat, 0);
            if (r == NOT_PEEKED)
                r = SPX_WOULD_BLOCK;
        }
        sess_recv_unlock(s);
    }
    sess_release(s);
    return r;
}

spx_session *SPX_session(mailbox mbox)
{
    session *s = sess_acquire(mbox);
    if (s)
        sess_release(s); /* the caller's hold keeps it */
    return s;
}

int SPX_view_next(spx_session *s, char sender[MAX_GROUP_NAME], int max_groups,
                  char groups[][MAX_GROUP_NAME], spx_view *v)
{
    if (!s || sess_view_trylock(s) != 0)
        return SPX_NOT_VIEWED;
    const wire_header *h = NULL;
    size_t size = 0;
    int ready = 0;
    if (s->pk_on && !s->have_saved && !s->ra_on && s->ra_pos == s->ra_end &&
        atomic_load(&s->state) == SESS_OPEN) { /* (sess_get_state, inline) */
        ready = peek_ready(s, 0, &h, &size);
        if (ready == 0) {
            sess_view_unlock(s);
            return SPX_WOULD_BLOCK;
        }
    }
    if (ready != 1 || h->num_groups > max_groups || Is_membership_mess(h->type)) {
        sess_view_unlock(s);
        return SPX_NOT_VIEWED;
    }
    const uint8_t *p = s->pk_buf + s->pk_pos;
    size_t at = WIRE_HEADER_SIZE, ng = (size_t)h->num_groups;
    uint32_t old_type = 0;
    if (h->type & WIRE_REJECT_MESS) {
        old_type = wire_get_u32(p + at, h->order) & ~WIRE_MARKER;
        at += WIRE_REJECT_EXTRA;
    }
    if (ng == 1) { /* the common case, as a copy of known size */
        memcpy(groups[0], p + at, WIRE_SLOT);
        groups[0][WIRE_SLOT - 1] = '\0';
    } else {
        if (ng > 0)
            memcpy(groups, p + at, ng * WIRE_SLOT);
        for (size_t i = 0; i < ng; i++)
            groups[i][WIRE_SLOT - 1] = '\0';
    }
    memcpy(sender, h->sender, WIRE_SLOT);
    sender[WIRE_SLOT - 1] = '\0';
    v->service_type = (service)service_of(h, old_type);
    v->num_groups = (int)ng;
    v->mess_type = wire_hint_mess_type(h->hint);
    v->endian_mismatch = wire_hint_order(h->hint) != wire_host_order();
    v->data = (const char *)(p + at + ng * WIRE_SLOT);
    s->pk_view_size = size;
    return h->data_len; /* the receive side stays taken until SPX_view_done */
}

void SPX_view_done(spx_session *s, int taken)
{
    if (taken)
        peeked_advance(s, s->pk_view_size);
    sess_view_unlock(s);
}

/* Is the next message wholly in the read-ahead buffer (so that taking it
 * cannot block)? 1, and *h its header; or -1 for a header that will be
 * refused (it counts as buffered); or 0. */
static int next_message_buffered(const session *s, wire_header *h)
{
    size_t have = stream_buffered(s);
    if (s->have_saved || have < WIRE_HEADER_SIZE)
        return 0;
    if (wire_decode_header(s->ra_buf + s->ra_pos, h) != 0 || !wire_header_plausible(h))
        return -1;
    return have >= wire_message_size(h);
}

#define NO_ROOM    (-2000)
#define NOT_SIMPLE (-2001)

/* Takes the next message, wholly in the read-ahead buffer, with header h
 * (from next_message_buffered), straight into a record: the payload and
 * names copied after the head or, in lent memory, left where they are.
 * NO_ROOM: it does not fit (nothing consumed). */
static int take_buffered(session *s, spx_record *rec, size_t room, wire_header h)
{
    uint8_t *p = s->ra_buf + s->ra_pos;
    size_t at = WIRE_HEADER_SIZE, ng = (size_t)h.num_groups, dl = (size_t)h.data_len;
    uint32_t old_type = 0;
    if (h.type & WIRE_REJECT_MESS) {
        old_type = wire_get_u32(p + at, h.order) & ~WIRE_MARKER;
        at += WIRE_REJECT_EXTRA;
    }
    size_t size = s->ra_lent ? spx_record_size(0, 0) : spx_record_size(dl, ng);
    if (size > room)
        return NO_ROOM;
    char *data, (*groups)[MAX_GROUP_NAME];
    if (s->ra_lent) {
        /* Lent memory is the caller's for good once handed out: use it in place. */
        groups = (char (*)[MAX_GROUP_NAME])(p + at);
        data = (char *)(p + at + ng * WIRE_SLOT);
        rec->data = data;
        rec->groups = (const char *)groups;
    } else {
        spx_record_place_inline(rec, dl);
        data = (char *)rec->data;
        groups = (char (*)[MAX_GROUP_NAME])rec->groups;
        memcpy(data, p + at + ng * WIRE_SLOT, dl);
        memcpy(groups, p + at, ng * WIRE_SLOT);
    }
    rec->data_len = (int32_t)dl;
    for (size_t i = 0; i < ng; i++)
        groups[i][WIRE_SLOT - 1] = '\0';
    memcpy(rec->sender, h.sender, WIRE_SLOT);
    rec->sender[WIRE_SLOT - 1] = '\0';
    s->ra_pos += at + ng * WIRE_SLOT + dl; /* consumed */
    uint32_t svc = service_of(&h, old_type);
    scatter body;
    body.num_elements = 1;
    body.elements[0].buf = data;
    body.elements[0].len = (int)dl;
    int16 mt;
    int endian;
    describe(s, &h, svc, (const char (*)[MAX_GROUP_NAME])groups, (int)ng, 0, &body, 0, &mt,
             &endian); /* a body that does not fit is the binding's decoder's to refuse */
    rec->service = (int32_t)svc;
    rec->num_groups = (int32_t)ng;
    rec->mess_type = mt;
    rec->endian = endian;
    rec->size = (uint32_t)size;
    return (int)dl;
}

static int grow_record_groups(session *s, int need)
{
    if (need <= s->rec_groups_cap)
        return 0;
    int cap = s->rec_groups_cap ? s->rec_groups_cap : 16;
    while (cap < need)
        cap *= 2;
    void *p = realloc(s->rec_groups, (size_t)cap * MAX_GROUP_NAME);
    if (!p)
        return -1;
    s->rec_groups = p;
    s->rec_groups_cap = cap;
    return 0;
}

/* nowait: -1 waits for the first message, else an SPX_NOWAIT_ value. */
static int receive_records(mailbox mbox, char *buf, int buf_len, int *used, int nowait)
{
    *used = 0;
    if (!buf || buf_len < 0)
        return ILLEGAL_MESSAGE;
    session *s = sess_acquire(mbox);
    if (!s)
        return ILLEGAL_SESSION;
    sess_recv_lock(s);
    if (s->pk_end > 0 && stream_peek_settle(s) != 0)
        sess_set_error(s); /* met below */
    s->try_first = nowait >= 0;
    int at_all = nowait == SPX_NOWAIT_AT_ALL;
    int count = 0, r = 0;
    size_t at = 0, len = (size_t)buf_len;
    if (s->deferred_error) {
        r = s->deferred_error;
        s->deferred_error = 0;
    } else if (grow_record_groups(s, 16) != 0) {
        r = ILLEGAL_MESSAGE;
    }
    sess_state st = sess_get_state(s);
    if (r == 0 && st != SESS_OPEN)
        r = st == SESS_CLOSED ? ILLEGAL_SESSION : NET_ERROR_ON_SESSION;
    wire_header h;
    if (r == 0 && at_all && !next_message_buffered(s, &h)) {
        stream_fill_nowait(s);
        if (!next_message_buffered(s, &h))
            r = SPX_WOULD_BLOCK;
    }
    while (r == 0) {
        int buffered = next_message_buffered(s, &h);
        if (buffered) {
            spx_record *rec = (spx_record *)(buf + at);
            int n = buffered < 0 ? NOT_SIMPLE : take_buffered(s, rec, len - at, h);
            if (n >= 0) {
                at += rec->size;
                count++;
                continue;
            }
            if (n == NO_ROOM && count > 0)
                break;
            if (n == ILLEGAL_MESSAGE) { /* consumed: report it now or next time */
                if (count == 0)
                    r = n;
                else
                    s->deferred_error = n;
                break;
            }
            /* NO_ROOM for the first, or NOT_SIMPLE: the general path says why. */
        } else if (count > 0) {
            break; /* only the first message may wait */
        }
        if (at_all) { /* the general path may wait: leave the message to a caller that can */
            if (count == 0)
                r = SPX_WOULD_BLOCK;
            break;
        }
        spx_record *rec = (spx_record *)(buf + at);
        /* Room for the head, all the names the side array takes, and 8 bytes
         * of slack for the payload's padding: what is left takes the payload. */
        size_t reserve = spx_record_size(0, (size_t)s->rec_groups_cap) + 8;
        size_t room = len - at > reserve ? len - at - reserve : 0;
        scatter scat;
        scat.num_elements = 1;
        scat.elements[0].buf = (char *)(rec + 1);
        scat.elements[0].len = room > 0x7fffffff ? 0x7fffffff : (int)room;
        service svc = 0;
        int ng = 0, endian = 0;
        int16 mt = 0;
        char sender[MAX_GROUP_NAME];
        /* With less than the reserve left, group names might not fit after
         * the head (and a message without data is never short of room), so
         * none are taken: a message with groups stays pending, told short. */
        int tight = len - at < reserve;
        int n = len - at >= sizeof *rec
                    ? receive_locked(s, &svc, sender, tight ? 0 : s->rec_groups_cap, &ng,
                                     s->rec_groups, &mt, &endian, &scat, 1)
                    : BUFFER_TOO_SHORT;
        if (n == GROUPS_TOO_SHORT) {
            if (grow_record_groups(s, -ng) != 0) {
                r = ILLEGAL_MESSAGE;
                continue;
            }
            if (!tight)
                continue; /* the message is still pending */
            reserve = spx_record_size(0, (size_t)s->rec_groups_cap) + 8;
            n = BUFFER_TOO_SHORT;
        }
        if (n == BUFFER_TOO_SHORT) {
            if (count == 0) {
                size_t data = endian < 0 ? (size_t)(-endian) : room;
                size_t need = spx_record_size(data, (size_t)s->rec_groups_cap) + 8;
                *used = need > 0x7fffffff ? -0x7fffffff : -(int)need;
                r = BUFFER_TOO_SHORT;
            }
            break;
        }
        if (n < 0) {
            if (count == 0)
                r = n;
            else if (n != SPX_WOULD_BLOCK)
                s->deferred_error = n; /* reported by the next call */
            break;
        }
        rec->service = svc;
        rec->data_len = n;
        rec->num_groups = ng;
        rec->endian = endian;
        rec->mess_type = mt;
        memcpy(rec->sender, sender, MAX_GROUP_NAME);
        spx_record_place_inline(rec, (size_t)n); /* the payload is there already */
        memcpy((char *)rec->groups, s->rec_groups, (size_t)ng * MAX_GROUP_NAME);
        rec->size = (uint32_t)spx_record_size((size_t)n, (size_t)ng);
        at += rec->size;
        count++;
    }
    s->try_first = 0;
    sess_recv_unlock(s);
    sess_release(s);
    if (count > 0) {
        *used = (int)at;
        return count;
    }
    return r;
}

int SPX_receive_records(mailbox mbox, char *buf, int buf_len, int *used)
{
    return receive_records(mbox, buf, buf_len, used, -1);
}

int SPX_receive_records_nowait(mailbox mbox, char *buf, int buf_len, int *used, int how)
{
    if (how != SPX_NOWAIT_START && how != SPX_NOWAIT_AT_ALL)
        return ILLEGAL_MESSAGE;
    return receive_records(mbox, buf, buf_len, used, how);
}

int SP_poll(mailbox mbox)
{
    session *s = sess_acquire(mbox);
    if (!s)
        return ILLEGAL_SESSION;
    int pending = 0;
    int r = ioctl(s->fd, FIONREAD, &pending);
    pending += (int)stream_buffered(s); /* a racy read is fine for a poll */
    pending -= (int)atomic_load_explicit(&s->pk_returned, memory_order_relaxed);
    sess_release(s);
    return r == 0 ? pending : ILLEGAL_SESSION;
}

int SPX_set_interruptible(mailbox mbox, int on)
{
    session *s = sess_acquire(mbox);
    if (!s)
        return ILLEGAL_SESSION;
    atomic_store(&s->interruptible, on ? 1 : 0);
    sess_release(s);
    return 0;
}
