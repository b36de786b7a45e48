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

/* One read from the socket: >0 bytes, 0 to retry, or an error code. A signal
 * before any progress interrupts the wait if the session wants that. */
static ssize_t read_some(session *s, struct iovec *iov, int iovcnt, int may_interrupt)
{
    ssize_t n = readv(s->fd, iov, iovcnt);
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
        if (s->ra_on && wanted < s->ra_cap) {
            struct iovec fill = {s->ra_buf, s->ra_cap};
            n = read_some(s, &fill, 1, first && !progress);
            if (n > 0) {
                s->ra_pos = 0;
                s->ra_end = (size_t)n;
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

int SPX_set_readahead(mailbox mbox, int bytes)
{
    session *s = sess_acquire(mbox);
    if (!s)
        return ILLEGAL_SESSION;
    int r = 0;
    pthread_mutex_lock(&s->recv_lock);
    if (bytes > 0 && (size_t)bytes > s->ra_cap) {
        uint8_t *buf = malloc((size_t)bytes);
        if (!buf) {
            r = ILLEGAL_MESSAGE;
        } else {
            /* Keep what is buffered, at the front. */
            size_t have = s->ra_end - s->ra_pos;
            if (have)
                memcpy(buf, s->ra_buf + s->ra_pos, have);
            free(s->ra_buf);
            s->ra_buf = buf;
            s->ra_cap = (size_t)bytes;
            s->ra_pos = 0;
            s->ra_end = have;
        }
    }
    if (r == 0)
        s->ra_on = bytes > 0;
    pthread_mutex_unlock(&s->recv_lock);
    sess_release(s);
    return r;
}

int SPX_pending(mailbox mbox)
{
    session *s = sess_acquire(mbox);
    if (!s)
        return ILLEGAL_SESSION;
    pthread_mutex_lock(&s->recv_lock);
    size_t n = stream_buffered(s);
    pthread_mutex_unlock(&s->recv_lock);
    sess_release(s);
    return n > 0x7fffffff ? 0x7fffffff : (int)n;
}
