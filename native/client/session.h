/*
 * session.h -- the client library's connection table and socket I/O
 * (internal). Locking follows SPEC.md 9.9: one global table lock held only
 * briefly, and per connection a send lock and a receive lock.
 *
 * A mailbox number is the connection's socket descriptor, as in Spread, so
 * existing programs may select() on it. Sessions are reference counted:
 * every call holds a reference while it runs, and the descriptor is closed
 * only when the last reference goes. A disconnect therefore wakes a blocked
 * receive (shutdown) but cannot let a new connection reuse the descriptor
 * while that receive is still inside.
 */
#ifndef SPREAD_CLIENT_SESSION_H
#define SPREAD_CLIENT_SESSION_H

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "sp.h"
#include "wire.h"

typedef enum { SESS_OPEN, SESS_ERROR, SESS_CLOSED } sess_state;

typedef struct session {
    int fd;
    atomic_int refs;           /* table + calls in progress + holds */
    atomic_int state;          /* sess_state; changed under the table lock */
    atomic_int interruptible;  /* SPX_set_interruptible */
    pthread_mutex_t send_lock;
    pthread_mutex_t recv_lock;
    atomic_int recv_held;      /* see sess_recv_lock */
    atomic_int view_busy;
    uint8_t private_group[WIRE_SLOT]; /* NUL padded */
    size_t private_group_len;
    /* Read-ahead (SPX_set_readahead), under the receive lock. ra_buf is the
     * library's own buffer (ra_own) or the caller's lent memory (ra_lent,
     * SPX_lend_readahead): there bytes before ra_pos are the caller's, and
     * fills append at ra_end instead of starting over. */
    uint8_t *ra_buf;
    size_t ra_cap, ra_pos, ra_end;
    int ra_on, ra_lent;
    uint8_t *ra_own;
    size_t ra_own_cap;
    size_t ra_size;            /* the most one read takes: SPX_set_readahead's bytes */
    /* Peeked read-ahead (SPX_set_peek), under the receive lock: bytes read
     * with MSG_PEEK stay in the socket. pk_buf[0, pk_pos) were returned but
     * are still in the socket (whose head is pk_buf[0]); [pk_pos, pk_end)
     * are not returned yet. Between calls either nothing is peeked or a
     * whole message waits at pk_pos: the socket holds an unreturned message
     * exactly while one is pending, so select() on it stays exact. */
    int pk_on;
    uint8_t *pk_buf;           /* STREAM_PEEK_SIZE bytes, allocated on first use */
    size_t pk_pos, pk_end;
    atomic_size_t pk_returned; /* pk_pos, for SP_poll (which takes no lock) */
    int pk_next_ok;            /* pk_next is the header of the whole message at pk_pos */
    wire_header pk_next;
    size_t pk_view_size;       /* the message SPX_view_next handed out */
    int pk_skip;               /* receives left that do not peek (see stream_peek_fill) */
    /* The unsent rest of a message after SPX_PARTIAL, for SPX_finish_send. */
    uint8_t *tail;
    size_t tail_len;
    int tail_result;
    /* SPX_receive_records: group names land here first; an error met after
     * some records were written waits for the next call. */
    char (*rec_groups)[MAX_GROUP_NAME];
    int rec_groups_cap;
    int deferred_error;
    int try_first;             /* SPX_receive_records_nowait is running */
    /* Saved header of a message left unconsumed by a short buffer (9.3). */
    int have_saved;
    wire_header saved;
    uint32_t saved_old_type;   /* reject messages only */
} session;

/* Registers a connected socket; returns the new session (table ref only). */
session *sess_register(int fd, const uint8_t *private_group, size_t len);
/* Takes a call reference on an open or errored session, or NULL (ILLEGAL_SESSION). */
session *sess_acquire(mailbox mbox);
void sess_release(session *s);
/* Marks the session failed (NET_ERROR_ON_SESSION from now on). */
void sess_set_error(session *s);
/* Removes the session from use: later calls get ILLEGAL_SESSION. Wakes a
 * blocked receive. Returns 0, or -1 if it was already closed. */
int sess_close(session *s);
/* Returns the current state (under the table lock). */
sess_state sess_get_state(session *s);
/* Extra references that keep the descriptor open after a disconnect. */
int sess_hold(mailbox mbox);
void sess_unhold(mailbox mbox);

/* The receive side's lock: recv_lock, and beside it a flag that lets
 * SPX_view_next (the bindings' hot path, which never waits) take the receive
 * side with three atomic operations where a mutex's lock and unlock cost ~55
 * instructions. Each side sets its flag before it looks at the other's
 * (sequentially consistent: at least one sees the other), so they never run
 * together; the mutex side waits out a viewer, which holds the flag only
 * while its binding copies one payload. */
static inline void sess_recv_lock(session *s)
{
    pthread_mutex_lock(&s->recv_lock);
    atomic_store(&s->recv_held, 1);
    while (atomic_load(&s->view_busy))
        sched_yield();
}

static inline void sess_recv_unlock(session *s)
{
    atomic_store_explicit(&s->recv_held, 0, memory_order_release);
    pthread_mutex_unlock(&s->recv_lock);
}

/* 0 with the receive side taken, or -1 (busy). */
static inline int sess_recv_trylock(session *s)
{
    if (pthread_mutex_trylock(&s->recv_lock) != 0)
        return -1;
    atomic_store(&s->recv_held, 1);
    if (atomic_load(&s->view_busy)) {
        sess_recv_unlock(s);
        return -1;
    }
    return 0;
}

static inline int sess_view_trylock(session *s)
{
    if (atomic_exchange(&s->view_busy, 1))
        return -1;
    if (atomic_load(&s->recv_held)) {
        atomic_store_explicit(&s->view_busy, 0, memory_order_release);
        return -1;
    }
    return 0;
}

static inline void sess_view_unlock(session *s)
{
    atomic_store_explicit(&s->view_busy, 0, memory_order_release);
}

/* stream.c: exact reads of message parts, through the read-ahead buffer when
 * there is one. `first`: the start of a message (may be interrupted). 0,
 * CONNECTION_CLOSED or SPX_INTERRUPTED. Callers hold the receive lock. */
int stream_readv(session *s, struct iovec *iov, int iovcnt, int first);
int stream_discard(session *s, size_t len);
/* One read into read-ahead that never waits (MSG_DONTWAIT); ends and errors
 * are left for the next waiting read to meet. */
void stream_fill_nowait(session *s);
size_t stream_buffered(const session *s);
/* Peeked read-ahead. stream_peek_fill: one MSG_PEEK read into the empty
 * peek buffer, waiting for data if `wait`: >0 bytes, 0 none (an end or an
 * error is left to the consuming read), or SPX_INTERRUPTED.
 * stream_peek_settle: removes what was returned from the socket and forgets
 * the rest (still in the socket); 0, or CONNECTION_CLOSED if the socket
 * failed. */
#define STREAM_PEEK_SIZE (64 * 1024)
long stream_peek_fill(session *s, int wait);
int stream_peek_settle(session *s);

/* Blocking socket writes. 0 on success, -1 on EOF or error. */
int io_writev_full(int fd, struct iovec *iov, int iovcnt);
/* Moves an iovec cursor past `n` transferred bytes. */
void io_advance(struct iovec **iov, int *iovcnt, size_t n);

#endif /* SPREAD_CLIENT_SESSION_H */
