/* session.c -- see session.h. */
#include "session.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static session **table;   /* indexed by descriptor */
static size_t table_size;

session *sess_register(int fd, const uint8_t *private_group, size_t len)
{
    if (fd < 0)
        return NULL;
    session *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->fd = fd;
    atomic_init(&s->refs, 1);
    atomic_init(&s->state, SESS_OPEN);
    atomic_init(&s->interruptible, 0);
    pthread_mutex_init(&s->send_lock, NULL);
    pthread_mutex_init(&s->recv_lock, NULL);
    wire_put_slot(s->private_group, (const char *)private_group, len);
    s->private_group_len = wire_slot_len(s->private_group);

    pthread_mutex_lock(&table_lock);
    if ((size_t)fd >= table_size) {
        size_t n = table_size ? table_size : 64;
        while (n <= (size_t)fd)
            n *= 2;
        session **grown = realloc(table, n * sizeof *grown);
        if (!grown) {
            pthread_mutex_unlock(&table_lock);
            free(s);
            return NULL;
        }
        memset(grown + table_size, 0, (n - table_size) * sizeof *grown);
        table = grown;
        table_size = n;
    }
    /* The descriptor is ours, so no live session can still own this slot. */
    table[fd] = s;
    pthread_mutex_unlock(&table_lock);
    return s;
}

session *sess_acquire(mailbox mbox)
{
    session *s = NULL;
    pthread_mutex_lock(&table_lock);
    if (mbox >= 0 && (size_t)mbox < table_size && table[mbox] &&
        atomic_load(&table[mbox]->state) != SESS_CLOSED) {
        s = table[mbox];
        atomic_fetch_add(&s->refs, 1);
    }
    pthread_mutex_unlock(&table_lock);
    return s;
}

static void destroy(session *s)
{
    pthread_mutex_lock(&table_lock);
    if ((size_t)s->fd < table_size && table[s->fd] == s)
        table[s->fd] = NULL;
    pthread_mutex_unlock(&table_lock);
    close(s->fd);
    free(s->ra_own); /* lent memory is the caller's */
    free(s->pk_buf);
    free(s->rec_groups);
    free(s->tail);
    pthread_mutex_destroy(&s->send_lock);
    pthread_mutex_destroy(&s->recv_lock);
    free(s);
}

/* References reach zero only after sess_close dropped the table's one, and
 * sess_acquire never takes a closed session, so zero is final. */
void sess_release(session *s)
{
    if (atomic_fetch_sub(&s->refs, 1) == 1)
        destroy(s);
}

void sess_set_error(session *s)
{
    int open = SESS_OPEN;
    atomic_compare_exchange_strong(&s->state, &open, SESS_ERROR);
}

sess_state sess_get_state(session *s)
{
    return (sess_state)atomic_load(&s->state);
}

int sess_close(session *s)
{
    pthread_mutex_lock(&table_lock);
    if (atomic_load(&s->state) == SESS_CLOSED) {
        pthread_mutex_unlock(&table_lock);
        return -1;
    }
    atomic_store(&s->state, SESS_CLOSED);
    /* Wake any thread blocked on the socket; the descriptor itself stays
     * open until the last reference is gone. */
    shutdown(s->fd, SHUT_RDWR);
    pthread_mutex_unlock(&table_lock);
    sess_release(s); /* the table's reference */
    return 0;
}

int sess_hold(mailbox mbox)
{
    session *s = sess_acquire(mbox);
    return s ? 0 : ILLEGAL_SESSION; /* the call reference becomes the hold */
}

void sess_unhold(mailbox mbox)
{
    session *s = NULL;
    pthread_mutex_lock(&table_lock);
    if (mbox >= 0 && (size_t)mbox < table_size)
        s = table[mbox];
    pthread_mutex_unlock(&table_lock);
    if (s)
        sess_release(s);
}

int io_writev_full(int fd, struct iovec *iov, int iovcnt)
{
    while (iovcnt > 0) {
        struct msghdr msg = {0};
        msg.msg_iov = iov;
        msg.msg_iovlen = (size_t)iovcnt;
        ssize_t n = sendmsg(fd, &msg, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        io_advance(&iov, &iovcnt, (size_t)n);
    }
    return 0;
}

void io_advance(struct iovec **iov, int *iovcnt, size_t n)
{
    while (*iovcnt > 0 && n >= (*iov)->iov_len) {
        n -= (*iov)->iov_len;
        (*iov)++;
        (*iovcnt)--;
    }
    if (*iovcnt > 0) {
        (*iov)->iov_base = (uint8_t *)(*iov)->iov_base + n;
        (*iov)->iov_len -= n;
    }
}
