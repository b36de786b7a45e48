/* stream.c -- the input side of a connection: exact reads of message parts,
 * optionally through a read-ahead buffer (SPX_set_readahead), which a
 * background receiver that owns the socket uses to take many messages per
 * system call. Callers hold the session's receive lock. */
#include "session.h"
#include "spx.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* One read from the socket: >0 bytes, 0 to retry, or an error code. Before
 * any progress on a message (may_interrupt), a signal interrupts the wait if
 * the session wants that, and a nowait receive does not wait at all. */
static ssize_t read_some(session *s, struct iovec *iov, int iovcnt, int may_interrupt)
{
    ssize_t n;
    if (may_interrupt && s->try_first) {
        struct msghdr mh = {0};
        mh.msg_iov = iov;
        mh.msg_iovlen = (size_t)iovcnt;
        n = recvmsg(s->fd, &mh, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return SPX_WOULD_BLOCK;
    } else {
        n = readv(s->fd, iov, iovcnt);
    }
    if (n > 0)
        return n;
    if (n < 0 && errno == EINTR)
        return may_interrupt && atomic_load(&s->interruptible) ? SPX_INTERRUPTED : 0;
    return CONNECTION_CLOSED;
}

int stream_readv(session *s, struct iovec *iov, int iovcnt, int first)
{
    /* Fast path: one piece, already buffered. */
    if (iovcnt == 1 && iov->iov_len > 0 && s->ra_end - s->ra_pos >= iov->iov_len) {
        memcpy(iov->iov_base, s->ra_buf + s->ra_pos, iov->iov_len);
        s->ra_pos += iov->iov_len;
        return 0;
    }
    int progress = 0;
    while (iovcnt > 0) {
        if (iov->iov_len == 0) {
            iov++;
            iovcnt--;
            continue;
        }
        if (s->ra_pos < s->ra_end) {
            size_t n = s->ra_end - s->ra_pos;
            if (n > iov->iov_len)
                n = iov->iov_len;
            memcpy(iov->iov_base, s->ra_buf + s->ra_pos, n);
            s->ra_pos += n;
            io_advance(&iov, &iovcnt, n);
            progress = 1;
            continue;
        }
        size_t wanted = 0;
        for (int i = 0; i < iovcnt; i++)
            wanted += iov[i].iov_len;
        ssize_t n;
        /* The buffer is empty here: refill it from the start, or in lent
         * memory after what was handed out. */
        size_t at = s->ra_lent ? s->ra_end : 0;
        size_t room = s->ra_cap - at < s->ra_size ? s->ra_cap - at : s->ra_size;
        if (s->ra_on && wanted < room) {
            struct iovec fill = {s->ra_buf + at, room};
            n = read_some(s, &fill, 1, first && !progress);
            if (n > 0) {
                s->ra_pos = at;
                s->ra_end = at + (size_t)n;
            }
        } else {
            n = read_some(s, iov, iovcnt, first && !progress);
            if (n > 0)
                io_advance(&iov, &iovcnt, (size_t)n);
        }
        if (n < 0)
            return (int)n;
        if (n > 0)
            progress = 1;
    }
    return 0;
}

void stream_fill_nowait(session *s)
{
    if (!s->ra_on || !s->ra_buf)
        return;
    if (!s->ra_lent && s->ra_pos > 0) { /* own buffer: the rest to the front */
        size_t have = s->ra_end - s->ra_pos;
        memmove(s->ra_buf, s->ra_buf + s->ra_pos, have);
        s->ra_pos = 0;
        s->ra_end = have;
    }
    size_t room = s->ra_cap - s->ra_end < s->ra_size ? s->ra_cap - s->ra_end : s->ra_size;
    if (room == 0)
        return;
    struct iovec iov = {s->ra_buf + s->ra_end, room};
    struct msghdr mh = {0};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    ssize_t n = recvmsg(s->fd, &mh, MSG_DONTWAIT);
    if (n > 0)
        s->ra_end += (size_t)n;
    /* Nothing, an end or an error: the next waiting receive meets it. */
}

int stream_discard(session *s, size_t len)
{
    uint8_t sink[4096];
    while (len > 0) {
        struct iovec iov = {sink, len < sizeof sink ? len : sizeof sink};
        int r = stream_readv(s, &iov, 1, 0);
        if (r != 0)
            return r;
        len -= sizeof sink < len ? sizeof sink : len;
    }
    return 0;
}

size_t stream_buffered(const session *s)
{
    return s->ra_end - s->ra_pos;
}

long stream_peek_fill(session *s, int wait)
{
    if (!s->pk_buf && !(s->pk_buf = malloc(STREAM_PEEK_SIZE)))
        return 0;
    ssize_t n = recv(s->fd, s->pk_buf, STREAM_PEEK_SIZE, MSG_PEEK | (wait ? 0 : MSG_DONTWAIT));
    if (n > 0) {
        s->pk_pos = 0;
        s->pk_end = (size_t)n;
        s->pk_next_ok = 0;
        return (long)n;
    }
    if (n < 0 && errno == EINTR && wait && atomic_load(&s->interruptible))
        return SPX_INTERRUPTED;
    return 0;
}

int stream_peek_settle(session *s)
{
    size_t left = s->pk_pos;
    s->pk_pos = s->pk_end = 0;
    s->pk_next_ok = 0;
    atomic_store_explicit(&s->pk_returned, 0, memory_order_relaxed);
    while (left > 0) { /* bytes the socket holds: this never waits */
        ssize_t n = recv(s->fd, s->pk_buf, left, MSG_DONTWAIT);
        if (n > 0)
            left -= (size_t)n;
        else if (!(n < 0 && errno == EINTR))
            return CONNECTION_CLOSED;
    }
    return 0;
}

int SPX_set_peek(mailbox mbox, int on)
{
    session *s = sess_acquire(mbox);
    if (!s)
        return ILLEGAL_SESSION;
    sess_recv_lock(s);
    if (!on && stream_peek_settle(s) != 0)
        sess_set_error(s);
    s->pk_on = on != 0;
    sess_recv_unlock(s);
    sess_release(s);
    return 0;
}

/* Moves what is buffered to the start of buf (cap bytes) and reads ahead
 * there from now on. Under the receive lock. */
static void move_readahead(session *s, uint8_t *buf, size_t cap, int lent)
{
    size_t have = s->ra_end - s->ra_pos;
    if (have)
        memmove(buf, s->ra_buf + s->ra_pos, have);
    s->ra_buf = buf;
    s->ra_cap = cap;
    s->ra_pos = 0;
    s->ra_end = have;
    s->ra_lent = lent;
}

/* Makes the library's own buffer at least `bytes` long. Under the receive lock. */
static int grow_own(session *s, size_t bytes)
{
    if (bytes <= s->ra_own_cap)
        return 0;
    uint8_t *buf = malloc(bytes);
    if (!buf)
        return ILLEGAL_MESSAGE;
    if (!s->ra_lent)
        move_readahead(s, buf, bytes, 0); /* keep what is buffered */
    free(s->ra_own);
    s->ra_own = buf;
    s->ra_own_cap = bytes;
    return 0;
}

int SPX_set_readahead(mailbox mbox, int bytes)
{
    session *s = sess_acquire(mbox);
    if (!s)
        return ILLEGAL_SESSION;
    sess_recv_lock(s);
    int r = bytes > 0 ? grow_own(s, (size_t)bytes) : 0;
    if (r == 0 && bytes > 0 && stream_peek_settle(s) != 0) /* what it took, off the socket */
        sess_set_error(s);
    if (r == 0) {
        s->ra_on = bytes > 0;
        if (bytes > 0)
            s->ra_size = (size_t)bytes;
    }
    sess_recv_unlock(s);
    sess_release(s);
    return r;
}

int SPX_lend_readahead(mailbox mbox, char *buf, int cap)
{
    session *s = sess_acquire(mbox);
    if (!s)
        return ILLEGAL_SESSION;
    sess_recv_lock(s);
    size_t have = s->ra_end - s->ra_pos;
    int r = 0;
    if (buf) {
        if (cap < 0 || (size_t)cap < have)
            r = ILLEGAL_MESSAGE;
        else
            move_readahead(s, (uint8_t *)buf, (size_t)cap, 1);
    } else if (s->ra_lent) {
        r = grow_own(s, have > 0 ? have : 1);
        if (r == 0) {
            move_readahead(s, s->ra_own, s->ra_own_cap, 0);
        } else {
            /* Nowhere to keep the rest of the stream: the session cannot go on,
             * and must not keep pointing at memory about to be returned. */
            s->ra_pos = s->ra_end = 0;
            move_readahead(s, s->ra_own, s->ra_own_cap, 0);
            sess_set_error(s);
        }
    }
    sess_recv_unlock(s);
    sess_release(s);
    return r;
}

int SPX_lent_room(mailbox mbox)
{
    session *s = sess_acquire(mbox);
    if (!s)
        return ILLEGAL_SESSION;
    sess_recv_lock(s);
    size_t room = s->ra_lent ? s->ra_cap - s->ra_end : 0;
    sess_recv_unlock(s);
    sess_release(s);
    return room > 0x7fffffff ? 0x7fffffff : (int)room;
}

int SPX_pending(mailbox mbox)
{
    session *s = sess_acquire(mbox);
    if (!s)
        return ILLEGAL_SESSION;
    sess_recv_lock(s);
    size_t n = stream_buffered(s);
    sess_recv_unlock(s);
    sess_release(s);
    return n > 0x7fffffff ? 0x7fffffff : (int)n;
}
