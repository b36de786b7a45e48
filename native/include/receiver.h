/*
 * receiver.h -- the background receiver: a thread that drains a mailbox with
 * SP_receive into an in-process queue owned by C, so the daemon never sees a
 * slow reader (SPEC.md 8.7). It never touches Python: bindings take messages
 * from the queue when their consumer asks, building objects then.
 *
 * The library is called through function pointers, so the same loop runs on
 * our native library and on an external libspread.
 *
 * Messages are stored back to back in large blocks, and nothing is allocated
 * per message: with our library the socket is read straight into blocks lent
 * as read-ahead memory, and records point at payloads where they were read
 * (the kernel's copy is the only one); through SP_receive each payload is
 * written into its record.
 * Consumers (spr_peek, spr_consume) must not run concurrently with each
 * other; the producer thread runs alongside them. spr_peek reads the
 * consumer's own position without a lock: only a consumer may call it.
 */
#ifndef SPREAD_CLIENT_RECEIVER_H
#define SPREAD_CLIENT_RECEIVER_H

#include <stddef.h>
#include <stdint.h>

#include "sp.h"
#include "spx.h"

/* spr_receive_fn, SP_receive's signature, is spx.h's. */
typedef int (*spr_mailbox_fn)(mailbox mbox);
typedef void (*spr_release_fn)(mailbox mbox);

typedef struct spr_library {
    spr_receive_fn receive;        /* SP_receive */
    spr_mailbox_fn disconnect;     /* SP_disconnect */
    spr_mailbox_fn hold;           /* SPX_hold, or NULL */
    spr_release_fn release;        /* SPX_release, or NULL */
    int (*readahead)(mailbox mbox, int bytes); /* SPX_set_readahead, or NULL */
    spr_mailbox_fn pending;        /* SPX_pending, or NULL */
    int (*records)(mailbox mbox, char *buf, int len, int *used,
                   int how); /* SPX_receive_records_nowait, or NULL */
    int (*lend)(mailbox mbox, char *buf, int cap); /* SPX_lend_readahead, or NULL */
    spr_mailbox_fn lent_room;      /* SPX_lent_room, or NULL */
} spr_library;

enum { SPR_OVERFLOW_DISCONNECT = 0, SPR_OVERFLOW_BLOCK = 1 };

/* Why the queue will get no more messages. */
enum { SPR_RUNNING = 0, SPR_CLOSED = 1, SPR_FAILED = 2, SPR_OVERFLOWED = 3 };

/* One queued message: the record layout of spx.h (head, payload, padding to 8,
 * group names), whichever library call filled it. */
typedef spx_record spr_msg;

typedef struct spr_stats {
    unsigned long long received;   /* messages taken off the socket */
    unsigned long long received_by_consumers; /* of which consumers took themselves */
    unsigned long long delivered;  /* messages consumers took from the queue */
    size_t backlog_messages, backlog_bytes; /* queued now (payload bytes) */
    size_t peak_messages, peak_bytes;
    double first_at, last_at;      /* CLOCK_MONOTONIC seconds of the first and the
                                      latest message taken off the socket */
    int state;                     /* SPR_* */
    int error;                     /* the Spread error code when SPR_FAILED */
    int consumers_waiting;         /* threads in spr_wait now */
} spr_stats;

typedef struct spr_receiver spr_receiver;

/* Starts draining mbox. max_backlog_bytes 0 means unbounded. Returns NULL
 * with *err set to an errno value on failure. */
spr_receiver *spr_start(mailbox mbox, const spr_library *lib, size_t max_backlog_bytes,
                        int on_overflow, int *err);
/* A descriptor readable exactly while messages are queued, or once the
 * receiver has ended (so that select() wakes to see why). */
int spr_fileno(spr_receiver *r);
/* Waits for a message or an end: 1 ready, 0 time-out, -1 interrupted (EINTR).
 * timeout_ms < 0 waits forever. Several threads may wait at once. With our
 * library a waiting consumer takes what arrives off the socket itself (never
 * waiting for the rest of a message: that is left to the drain thread). */
int spr_wait(spr_receiver *r, int timeout_ms);
/* A consumer's offer to take waiting messages off the socket itself, when the
 * drain thread is not at it (it may be waiting for a CPU). With our library
 * it never waits at all (callers may hold an interpreter lock); through bare
 * SP_receive it may wait for the rest of a message that has begun to arrive.
 * Returns 1 if it queued some. */
int spr_help(spr_receiver *r);
/* Up to max queued messages in order, without removing them. */
int spr_peek(spr_receiver *r, const spr_msg **out, int max);
/* Removes the first n messages (all previously peeked). */
void spr_consume(spr_receiver *r, int n);
void spr_get_stats(spr_receiver *r, spr_stats *out);
/* What Mailbox.poll() reports while a receiver is attached: the bytes the
 * queued messages would be on the socket, as SP_poll counts bytes there,
 * that is their payloads plus a message header (SPR_HEADER_BYTES, the
 * wire's 48) each. Any thread may call it. */
#define SPR_HEADER_BYTES 48
size_t spr_pending_bytes(spr_receiver *r);
/* Stops the thread (waking it from a blocked receive) and waits for it.
 * Queued messages stay readable. Safe to call twice. */
void spr_close(spr_receiver *r);
/* Closes, then frees the queue. */
void spr_free(spr_receiver *r);

#endif /* SPREAD_CLIENT_RECEIVER_H */
