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

/* Keeps a mailbox's descriptor open after SP_disconnect until SPX_release,
 * so that a thread racing into a call on it gets ILLEGAL_SESSION and never
 * reaches a new connection that reused the number. 0 or ILLEGAL_SESSION. */
int SPX_hold(mailbox mbox);
void SPX_release(mailbox mbox);

/* With this set, a receive on the mailbox that is waiting for the start of a
 * message returns SPX_INTERRUPTED when a signal interrupts the wait (EINTR),
 * instead of waiting on; nothing has been consumed. Bindings use it to run
 * their signal handlers (Ctrl-C) without polling first. 0 or ILLEGAL_SESSION. */
#define SPX_INTERRUPTED (-1000)
int SPX_set_interruptible(mailbox mbox, int on);

/* Read-ahead, for a reader that owns the socket (a background receiver): with
 * bytes > 0, receives take many messages per system call through a buffer of
 * that size; 0 turns it off (what is buffered is still returned first).
 * While it is on, select() on the mailbox no longer shows buffered
 * messages: SPX_pending tells how many bytes wait in the buffer. */
int SPX_set_readahead(mailbox mbox, int bytes);
int SPX_pending(mailbox mbox);

/* Sends that never wait, so that a binding need not give up its interpreter
 * lock when the socket has room (the common case). They return what
 * SP_multicast / SP_multigroup_multicast return, or SPX_WOULD_BLOCK: nothing
 * was sent, call the blocking form; or SPX_PARTIAL: part was sent, and the
 * caller must call SPX_finish_send next (it may block) to send the rest. */
#define SPX_WOULD_BLOCK (-1001)
#define SPX_PARTIAL (-1002)
int SPX_multicast_nowait(mailbox mbox, service service_type, const char *group,
                         int16 mess_type, int mess_len, const char *mess);
int SPX_multigroup_multicast_nowait(mailbox mbox, service service_type, int num_groups,
                                    const char groups[][MAX_GROUP_NAME], int16 mess_type,
                                    int mess_len, const char *mess);
int SPX_finish_send(mailbox mbox);

/* Many messages per call, for a reader that owns the socket. Each message is
 * written to buf as a record: this head, the payload, padding to 8 bytes,
 * then the group names; `size` is the whole record, a multiple of 8. */
typedef struct spx_record {
    uint32_t size;
    int32_t service;        /* as SP_receive's service_type */
    int32_t data_len;       /* as SP_receive's return value */
    int32_t num_groups;
    int32_t endian;         /* endian_mismatch */
    int16 mess_type;
    char sender[MAX_GROUP_NAME];
} spx_record;

#ifdef SPREAD_CDEF /* cffi reads these headers preprocessed: prototypes only */
const char *spx_record_data(const spx_record *r);
const char *spx_record_groups_flat(const spx_record *r);
#else
static inline const char *spx_record_data(const spx_record *r)
{
    return (const char *)(r + 1);
}

static inline const char (*spx_record_groups(const spx_record *r))[MAX_GROUP_NAME]
{
    size_t padded = ((size_t)r->data_len + 7u) & ~(size_t)7u;
    return (const char(*)[MAX_GROUP_NAME])(spx_record_data(r) + padded);
}

/* The same as one flat pointer, for bindings that cannot return pointers to arrays. */
static inline const char *spx_record_groups_flat(const spx_record *r)
{
    return (const char *)spx_record_groups(r);
}
#endif

/* Receives one message as SP_receive does (waiting for it, interruptibly if
 * set), then every further message that read-ahead already holds in full and
 * that fits, as records in buf. Returns how many, with *used set to the bytes
 * written; or an error code. When the first message does not fit, returns
 * BUFFER_TOO_SHORT with *used = -(bytes it needs), leaving it pending. */
int SPX_receive_records(mailbox mbox, char *buf, int buf_len, int *used);

#ifdef __cplusplus
}
#endif

#endif /* SPREAD_CLIENT_SPX_H */
