/*
 * cffi_fast.h -- the cffi backend's hot paths in C (src/spread/_cffi_core):
 * one call per received batch, per message and per send, where the backend
 * would otherwise make a cffi call for every field of every message, and
 * nothing allocated per call (a cff_batch is made once per mailbox and per
 * receiver).
 *
 * Functions named cff_ never block: src/spread/_cffi_build.py builds the
 * cffi module so that calls of them keep the interpreter lock (cffi gives
 * it up around every other call, and under CPU-bound Python threads each
 * give-up costs up to the 5 ms switch interval). Functions named cffw_ may
 * wait, and are called without it.
 *
 * A batch describes the messages it holds in info and scratch: CFF_INFO
 * ints per message (service, data_len, num_groups, endian, mess_type,
 * flags). Scratch holds, per message and in order: the sender's 32-byte
 * name if flags has CFF_SENDER (else it is the previous message's), its
 * num_groups names if flags has CFF_GROUPS (likewise), then the payload.
 * A membership notice (flag CFF_NOTICE) always carries both. Calls that
 * fill a batch add CFF_MOVED to their count when scratch has moved (a view
 * of it must be made again).
 */
#ifndef SPREAD_CLIENT_CFFI_FAST_H
#define SPREAD_CLIENT_CFFI_FAST_H

#include <stddef.h>
#include <stdint.h>

#include "receiver.h"
#include "sp.h"
#include "spx.h"

#define CFF_BATCH         256 /* messages per cff_take at most */
#define CFF_INFO          6   /* ints per message in info */
#define CFF_CACHED_GROUPS 8   /* group lists longer than this are always sent */
#define CFF_SCRATCH       (64 * 1024) /* scratch bytes a batch starts with (it grows) */
enum { CFF_SENDER = 1, CFF_GROUPS = 2, CFF_NOTICE = 4 };
#define CFF_MOVED (1 << 20)
/* cff_take's help argument: our library (spr_help never waits, done inside),
 * an external one (report that help is due: the caller helps, unlocked), or
 * the caller has just helped. */
enum { CFF_HELP_INLINE = 0, CFF_HELP_ASK = 1, CFF_HELP_DONE = 2 };
/* cff_take's results besides a count: no message and the receiver has ended;
 * help is due (CFF_HELP_ASK). SPX_NO_MEMORY when scratch cannot grow. */
#define CFF_ENDED    (-1)
#define CFF_HELP_DUE (-2)

typedef struct cff_batch {
    int32_t info[CFF_BATCH * CFF_INFO];
    int moved;                /* scratch moved since the batch was last filled */
    char *scratch;
    size_t scratch_size;
    int since_help;           /* messages taken since the consumer last helped */
    int last_ngroups;         /* -1: no previous message to compare with */
    char last_sender[MAX_GROUP_NAME];
    char last_groups[CFF_CACHED_GROUPS][MAX_GROUP_NAME];
    spx_recv_buffers bufs;    /* cffw_receive's (the growing receive loop's) */
    service svc;              /* cffw_receive's outputs */
    char sender[MAX_GROUP_NAME];
    int num_groups, endian;
    int16 mess_type;
    int held, held_len;       /* 1: a message received when scratch could not grow */
} cff_batch;

/* A batch, or NULL when out of memory. */
cff_batch *cff_batch_new(void);
void cff_batch_free(cff_batch *b);
/* Forgets the previous message: the next one carries its sender and groups
 * (after the caller failed to build a message, its names may be stale). */
void cff_batch_forget(cff_batch *b);

/* Up to max (at most CFF_BATCH) queued messages of r into b, without
 * removing them (cff_consume does, once their objects exist); first takes
 * what waits on the socket as the Cython backend does (every 64 messages,
 * and whenever the queue has run dry). Returns how many, 0 when none is
 * queued and r still runs (CFF_MOVED added, see above), CFF_ENDED,
 * CFF_HELP_DUE or SPX_NO_MEMORY. */
int cff_take(spr_receiver *r, cff_batch *b, int max, int help);
/* Removes the first n messages of the last cff_take. */
void cff_consume(spr_receiver *r, int n);

/* With our library (peeked read-ahead on, SPX_set_peek): a message that has
 * wholly arrived and fits b's buffers, described in b as a batch of one,
 * without waiting (SPX_receive_nowait). Returns 1 (CFF_MOVED added, see
 * above); SPX_WOULD_BLOCK when there is none such (nothing consumed: call
 * cffw_receive); SPX_NO_MEMORY as cffw_receive; or the error that message
 * was (ILLEGAL_MESSAGE, say), as SP_receive would return it. */
int cff_receive(mailbox mbox, cff_batch *b);
/* One message with `receive` (SP_receive of whichever library), growing the
 * buffers as SPX_receive_grow does, described in b as a batch of one.
 * Returns 1 (CFF_MOVED added, see above), or what SPX_receive_grow returns
 * on failure. May wait.
 * SPX_NO_MEMORY also when scratch cannot grow for a message already taken
 * off the socket: it is kept, and the next call describes it. */
int cffw_receive(spr_receive_fn receive, mailbox mbox, cff_batch *b);

/* SPX_multicast_nowait and SPX_multigroup_multicast_nowait, under the
 * names whose calls keep the interpreter lock. */
int cff_multicast(mailbox mbox, service service_type, const char *group, int16 mess_type,
                  int mess_len, const char *mess);
int cff_multigroup_multicast(mailbox mbox, service service_type, int num_groups,
                             const char groups[][MAX_GROUP_NAME], int16 mess_type, int mess_len,
                             const char *mess);
/* The same for the rest of a message after SPX_PARTIAL, written without
 * waiting (SPX_finish_send_nowait). */
int cff_finish_send(mailbox mbox);

#endif /* SPREAD_CLIENT_CFFI_FAST_H */
