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

/* stream.c: exact reads of message parts, through the read-ahead buffer when
 * there is one. `first`: the start of a message (may be interrupted). 0,
 * CONNECTION_CLOSED or SPX_INTERRUPTED. Callers hold the receive lock. */
int stream_readv(session *s, struct iovec *iov, int iovcnt, int first);
int stream_discard(session *s, size_t len);
/* One read into read-ahead that never waits (MSG_DONTWAIT); ends and errors
 * are left for the next waiting read to meet. */
void stream_fill_nowait(session *s);
size_t stream_buffered(const session *s);

/* Blocking socket writes. 0 on success, -1 on EOF or error. */
int io_writev_full(int fd, struct iovec *iov, int iovcnt);
/* Moves an iovec cursor past `n` transferred bytes. */
void io_advance(struct iovec **iov, int *iovcnt, size_t n);

#endif /* SPREAD_CLIENT_SESSION_H */
