/*
 * spx.h -- extensions of the spread-client native library beyond Spread 4's
 * API. Bindings use them when they run on our library; none of them exist
 * in Spread's own libspread.
 */
#ifndef SPREAD_CLIENT_SPX_H
#define SPREAD_CLIENT_SPX_H

#include <stddef.h>
#include <stdint.h>

#include "sp.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The text SP_error prints for a code ("unrecognized error" for others). */
const char *SPX_error_text(int error);

/* Parses a daemon address string ("4803", "4803@host"); 0 or ILLEGAL_SPREAD.
 * host is "" for the unix socket /tmp/<port>. */
int SPX_parse_address(const char *spread_name, int *port, char *host, size_t host_size);

#define SPX_INTERRUPTED (-1000)

/* The most payload, plus 32 bytes per group it is sent to, that the
 * bindings send (MESSAGE_TOO_LONG above it, nothing sent). Every Spread 4
 * daemon kills a connection above 143952 (its check of data_len + 32 *
 * num_groups, WIRE_DAEMON_MAX_TOTAL, which our embedded daemon enforces),
 * but the 4.0.0 daemon aborts on an assertion, taking every client with it,
 * from 48 + data_len + 32 * num_groups >= 143600 on (SPEC §3.5; seen again:
 * a 143920-byte multicast to one group). So 143551, SPEC's portable limit.
 * Spread's own library allows up to 144000. */
#define SPX_MAX_SAFE_BODY 143551

/* SP_connect with the failures told apart, for bindings: timeout_ms bounds
 * the connect and the handshake together (-1: no limit); with interruptible
 * set, a signal that interrupts a wait ends the call with SPX_INTERRUPTED
 * (the half-made connection is closed; the caller runs its handlers and may
 * call again). Returns ACCEPT_SESSION, sp.h's error codes, SPX_INTERRUPTED,
 * SPX_TIMED_OUT, or SPX_NOT_SPREAD for a peer that answered with bytes no
 * Spread daemon sends. (SP_connect_timeout reports the last two as
 * COULD_NOT_CONNECT or CONNECTION_CLOSED, as Spread's library does.) */
#define SPX_TIMED_OUT  (-1003)
#define SPX_NOT_SPREAD (-1004)
/* socket_buffer sizes the socket before it connects: 0 leaves the kernel's
 * sizes alone (for TCP, its buffer autotuning); a positive number fixes
 * SO_SNDBUF and SO_RCVBUF at it (the kernel doubles it for its bookkeeping
 * and caps it at net.core.wmem_max / rmem_max); SPX_SOCKET_BUFFER_DEFAULT
 * (any negative number) is the library's choice, which SP_connect and
 * SP_connect_timeout make too: autotuning over TCP, and Spread's 200 KiB on
 * the unix socket. (Spread's library fixes 200 KiB over TCP as well; against
 * a Spread 4 daemon a sender's connection sized so stalls for 200 ms
 * retransmission time-outs, and its readers with it: README.md, "Socket
 * buffers".) */
#define SPX_SOCKET_BUFFER_DEFAULT (-1)
int SPX_connect(const char *spread_name, const char *private_name, int priority,
                int group_membership, mailbox *mbox, char *private_group, int timeout_ms,
                int interruptible, int socket_buffer);

/* SP_get_memb_info, SP_get_vs_sets_info and SP_get_vs_set_members told the
 * body's length (SP_receive's return value): ILLEGAL_MESSAGE for a body that
 * does not hold what they would read, so that a malformed or forged
 * membership message can never make them read past it. */
int SPX_get_memb_info(const char *body, int len, service service_type, membership_info *memb_info);
int SPX_get_vs_sets_info(const char *body, int len, vs_set_info *vs_sets, int num_vs_sets,
                         unsigned int *my_vs_set_index);
int SPX_get_vs_set_members(const char *body, int len, const vs_set_info *vs_set,
                           char member_names[][MAX_GROUP_NAME], int member_names_count);

/* Keeps a mailbox's descriptor open after SP_disconnect until SPX_release,
 * so that a thread racing into a call on it gets ILLEGAL_SESSION and never
 * reaches a new connection that reused the number. 0 or ILLEGAL_SESSION. */
int SPX_hold(mailbox mbox);
void SPX_release(mailbox mbox);

/* With this set, a receive on the mailbox that is waiting for the start of a
 * message returns SPX_INTERRUPTED when a signal interrupts the wait (EINTR),
 * instead of waiting on; nothing has been consumed. Bindings use it to run
 * their signal handlers (Ctrl-C) without polling first. 0 or ILLEGAL_SESSION. */
int SPX_set_interruptible(mailbox mbox, int on);

/* Read-ahead, for a reader that owns the socket (a background receiver): with
 * bytes > 0, receives take many messages per system call through a buffer of
 * that size; 0 turns it off (what is buffered is still returned first).
 * While it is on, select() on the mailbox no longer shows buffered
 * messages: SPX_pending tells how many bytes wait in the buffer. */
int SPX_set_readahead(mailbox mbox, int bytes);
int SPX_pending(mailbox mbox);

/* Peeked read-ahead, for a binding whose users may select() on the mailbox:
 * with on = 1, receives read all that has arrived with one MSG_PEEK and
 * remove the messages they return from the socket once no whole message is
 * left in that read, so that the socket stays readable exactly while a
 * message is pending (and SP_poll counts only bytes not yet returned). A
 * bare SP_receive reads two pieces a message; this takes a burst in two
 * system calls. 0 turns it off. 0 or ILLEGAL_SESSION. */
int SPX_set_peek(mailbox mbox, int on);
/* SP_receive that never waits, for a binding that keeps its interpreter
 * lock when a message has arrived: with SPX_set_peek on, returns what
 * SP_receive would for a whole message already there, or SPX_WOULD_BLOCK
 * (nothing consumed: none has wholly arrived, it does not fit the buffers,
 * another thread is receiving, or the session has an error to report):
 * then call SP_receive. */
int SPX_receive_nowait(mailbox mbox, service *service_type, char sender[MAX_GROUP_NAME],
                       int max_groups, int *num_groups, char groups[][MAX_GROUP_NAME],
                       int16 *mess_type, int *endian_mismatch, int max_mess_len, char *mess);

/* The fast form of SPX_receive_nowait, for a binding that builds its own
 * objects: no table lookup, and the payload is not copied. SPX_session
 * gives a mailbox's handle (NULL if unknown), valid while the caller holds
 * the mailbox (SPX_hold). SPX_view_next, for a data message or a reject that
 * has wholly arrived (peeked) and whose groups fit: copies sender and groups
 * as SP_receive does, fills *v, and returns the payload's length with the
 * receive lock held: v->data points into the library's buffer until the
 * caller's SPX_view_done, which must follow at once (taken: 1 to consume
 * the message, 0 to leave it for the next receive). Otherwise nothing is
 * held or consumed, and it returns SPX_WOULD_BLOCK when no whole message
 * has arrived (call SP_receive), or SPX_NOT_VIEWED for anything else (a
 * membership, groups that do not fit, another thread receiving, an error to
 * report, peeking off): call SPX_receive_nowait, then SP_receive. */
#define SPX_NOT_VIEWED (-1003)
typedef struct session spx_session;
typedef struct {
    service service_type;
    int num_groups;
    int16 mess_type;
    int endian_mismatch;
    const char *data;
} spx_view;
spx_session *SPX_session(mailbox mbox);
int SPX_view_next(spx_session *s, char sender[MAX_GROUP_NAME], int max_groups,
                  char groups[][MAX_GROUP_NAME], spx_view *v);
void SPX_view_done(spx_session *s, int taken);
/* SPX_multicast_nowait for a binding's hot path: the mailbox's handle and
 * the group as the slot SPX_group_slot makes of its name (32 bytes, NUL
 * padded), so that nothing is looked up or re-slotted per message. The same
 * outcomes (SPX_WOULD_BLOCK, SPX_PARTIAL: see below). */
void SPX_group_slot(char slot[MAX_GROUP_NAME], const char *group);
int SPX_send_nowait(spx_session *s, service service_type, const char slot[MAX_GROUP_NAME],
                    int16 mess_type, int mess_len, const char *mess);

/* Sends that never wait, so that a binding need not give up its interpreter
 * lock when the socket has room (the common case). They return what
 * SP_multicast / SP_multigroup_multicast return, or SPX_WOULD_BLOCK: nothing
 * was sent, call the blocking form; or SPX_PARTIAL: part was sent, and the
 * caller must call SPX_finish_send next (it may block) to send the rest. */
#define SPX_WOULD_BLOCK (-1001)
#define SPX_PARTIAL     (-1002)
int SPX_multicast_nowait(mailbox mbox, service service_type, const char *group, int16 mess_type,
                         int mess_len, const char *mess);
int SPX_multigroup_multicast_nowait(mailbox mbox, service service_type, int num_groups,
                                    const char groups[][MAX_GROUP_NAME], int16 mess_type,
                                    int mess_len, const char *mess);
int SPX_finish_send(mailbox mbox);

/* For an event loop that must never wait (spread.aio): the rest of a
 * message after SPX_PARTIAL, written without waiting. Returns what the send
 * returns once all of it is written, SPX_PARTIAL while some remains (call
 * again when the socket is writable; the send lock stays held), or
 * CONNECTION_CLOSED. Must be called from the thread that got SPX_PARTIAL. */
int SPX_finish_send_nowait(mailbox mbox);
/* Gives up the rest of a message after SPX_PARTIAL (from the thread that got
 * it): the connection is then failed (NET_ERROR_ON_SESSION: the daemon saw
 * half a message) and the send lock let go, so that it can be closed. For a
 * caller that closes rather than waits. 0, or ILLEGAL_SESSION. */
int SPX_abort_send(mailbox mbox);
/* SP_join and SP_leave without waiting: SPX_WOULD_BLOCK or SPX_PARTIAL as
 * for the sends above, else what SP_join / SP_leave return. */
int SPX_join_nowait(mailbox mbox, const char *group);
int SPX_leave_nowait(mailbox mbox, const char *group);
/* 0 if a send may carry this service type (exactly one service bit,
 * optionally SELF_DISCARD; never membership or reject bits), else
 * ILLEGAL_SERVICE: the check every send makes, for a caller that queues a
 * message to send later and must refuse it now. */
int SPX_check_service(service service_type);

/* Many messages per call, for a reader that owns the socket. Each message is
 * written to buf as a record: this head, then (unless the payload stays where
 * it was read, see SPX_lend_readahead) the payload, padding to 8 bytes and
 * the group names; `size` is the whole record, a multiple of 8. */
typedef struct spx_record {
    uint32_t size;
    int32_t service;        /* as SP_receive's service_type */
    int32_t data_len;       /* as SP_receive's return value */
    int32_t num_groups;
    int32_t endian;         /* endian_mismatch */
    int16 mess_type;
    char sender[MAX_GROUP_NAME];
    const char *data;       /* the payload: after this head, or in lent memory */
    const char *groups;     /* num_groups names of MAX_GROUP_NAME bytes, likewise */
} spx_record;

#ifdef SPREAD_CDEF /* cffi reads these headers preprocessed: prototypes only */
const char *spx_record_data(const spx_record *r);
const char *spx_record_groups_flat(const spx_record *r);
size_t spx_record_size(size_t data_len, size_t num_groups);
#else
/* n rounded up to a multiple of 8. */
static inline size_t spx_align8(size_t n)
{
    return (n + 7u) & ~(size_t)7u;
}

/* The size of a record whose payload (data_len bytes) and num_groups names
 * are inside it, after its head: the one formula of every writer of
 * records. A record whose payload stays in lent memory is
 * spx_record_size(0, 0). */
static inline size_t spx_record_size(size_t data_len, size_t num_groups)
{
    return spx_align8(sizeof(spx_record) + spx_align8(data_len) + num_groups * MAX_GROUP_NAME);
}

static inline const char *spx_record_data(const spx_record *r)
{
    return r->data;
}

static inline const char (*spx_record_groups(const spx_record *r))
    [MAX_GROUP_NAME] { return (const char (*)[MAX_GROUP_NAME])r->groups; }

/* The same as one flat pointer, for bindings that cannot return pointers to arrays. */
static inline const char *spx_record_groups_flat(const spx_record *r)
{
    return r->groups;
}

/* For writers of records: payload and names inside the record, after its head. */
static inline void spx_record_place_inline(spx_record *r, size_t data_len)
{
    r->data = (const char *)(r + 1);
    r->groups = r->data + spx_align8(data_len);
}
#endif

/* SP_receive's signature, for callers that receive through a table of
 * functions (receiver.h's spr_library, SPX_receive_grow): ours, or an
 * external libspread's. */
typedef int (*spr_receive_fn)(mailbox mbox, service *service_type, char sender[MAX_GROUP_NAME],
                              int max_groups, int *num_groups, char groups[][MAX_GROUP_NAME],
                              int16 *mess_type, int *endian_mismatch, int max_mess_len, char *mess);

/* The growing receive loop of the bindings: buffers that start at
 * SPX_RECV_FIRST_DATA payload bytes and SPX_RECV_FIRST_GROUPS group names
 * and grow to whatever a message needs (and stay so, for the next). */
#define SPX_RECV_FIRST_DATA   16384
#define SPX_RECV_FIRST_GROUPS 16
typedef struct spx_recv_buffers {
    char *data;
    int data_size;                  /* bytes at data */
    char (*groups)[MAX_GROUP_NAME];
    int groups_size;                /* names at groups */
} spx_recv_buffers;
/* 0, or -1 when out of memory (then nothing is held, both sizes 0). */
int spx_recv_buffers_init(spx_recv_buffers *b);
/* Frees both buffers; b may then be initialised again. Safe to call twice. */
void spx_recv_buffers_free(spx_recv_buffers *b);
/* Returned by SPX_receive_grow when a buffer could not grow (realloc
 * failed). Distinct from every sp.h code and SPX_ code above. */
#define SPX_NO_MEMORY (-1005)
/* Receives one message with `receive` (SP_receive, of whichever library)
 * into b: sets *service_type to 0 (no DROP_RECV) and calls it; on
 * BUFFER_TOO_SHORT or GROUPS_TOO_SHORT grows b to the sizes the call
 * reported (-*endian bytes, -*num_groups names, as sp.h says) and calls
 * again. Returns the message's length (its payload in b->data, its groups
 * in b->groups), or any other code of `receive` unchanged: SPX_INTERRUPTED
 * among them, for the caller to run its signal handlers and call again; a
 * too-short code also unchanged when it asks for nothing larger than b
 * (a broken library: never a loop). SPX_NO_MEMORY if b cannot grow (the
 * message is still pending; b stays valid, one of its buffers may have
 * grown). */
int SPX_receive_grow(spr_receive_fn receive, mailbox mbox, spx_recv_buffers *b,
                     service *service_type, char sender[MAX_GROUP_NAME], int *num_groups,
                     int16 *mess_type, int *endian);

/* SPX_receive_grow's growth step, for a binding that calls SP_receive
 * itself (the Cython backend: a direct call on its hot path): grows b to what
 * a too-short receive reported in *num_groups and *endian (negated sizes, as
 * sp.h says): 1 if it grew, 0 if it had room already (a broken library: do
 * not loop), -1 if realloc failed. */
int spx_recv_buffers_grow(spx_recv_buffers *b, int num_groups, int endian);

/* Zero-copy read-ahead, for a reader that owns the socket and keeps what it
 * reads: read-ahead goes into buf (cap bytes of the caller's memory) instead
 * of the library's own buffer, and records from SPX_receive_records point at
 * payloads and group names where they were read, in buf. Bytes already
 * buffered move to the start of buf. The library only appends to buf, after
 * what it has handed out, and stops writing to it at the next call of this;
 * buf NULL takes the library's own buffer back (what is buffered moves there).
 * Needs read-ahead on (SPX_set_readahead). 0 or ILLEGAL_SESSION, or
 * ILLEGAL_MESSAGE if cap cannot hold what is buffered. */
int SPX_lend_readahead(mailbox mbox, char *buf, int cap);
/* How many more bytes the lent buffer can take (0 when none is lent). */
int SPX_lent_room(mailbox mbox);

/* Receives one message as SP_receive does (waiting for it, interruptibly if
 * set), then every further message that read-ahead already holds in full and
 * that fits, as records in buf. Returns how many, with *used set to the bytes
 * written; or an error code. When the first message does not fit, returns
 * BUFFER_TOO_SHORT with *used = -(bytes it needs), leaving it pending. */
int SPX_receive_records(mailbox mbox, char *buf, int buf_len, int *used);
/* The same without waiting for a message to arrive: SPX_WOULD_BLOCK (nothing
 * consumed) instead. `how` SPX_NOWAIT_START: a message that has begun to
 * arrive is still waited for to its end (one system call for a reader that
 * takes what has come, and polls only when nothing has). SPX_NOWAIT_AT_ALL:
 * one non-blocking read, then only messages wholly arrived; for a caller
 * that must never wait (it holds an interpreter lock, say). Needs read-ahead
 * on for SPX_NOWAIT_AT_ALL. */
#define SPX_NOWAIT_START  0
#define SPX_NOWAIT_AT_ALL 1
int SPX_receive_records_nowait(mailbox mbox, char *buf, int buf_len, int *used, int how);

#ifdef __cplusplus
}
#endif

#endif /* SPREAD_CLIENT_SPX_H */
