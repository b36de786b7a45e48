/* fuzz_receive.c -- the client library's receive path against a hostile
 * daemon. The input is the daemon's side of a connection whose handshake is
 * done (the session is registered on one end of a socketpair, as an accept
 * would leave it):
 *   byte 0    bit 0: read-ahead on; bit 1: then lend it a buffer
 *             (SPX_lend_readahead), of 4 KiB with bit 2, else of 128 KiB;
 *             bits 3-7 unused
 *   byte 1    which receive call takes each message (2 bits a message,
 *             cycling: SP_receive, SP_receive with short buffers then
 *             DROP_RECV, SPX_receive_records, SPX_receive_records_nowait)
 *   byte 2    n, the private group's length (at most 31), then n bytes of it
 *   the rest  what the daemon writes, then end of stream.
 * Membership messages are decoded with SPX_get_memb_info,
 * SPX_get_vs_sets_info and SPX_get_vs_set_members, told the returned
 * length. */
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client/session.h"
#include "fuzz_common.h"

#define MAX_STREAM (1 << 16)  /* what one socketpair write always takes */

static const int readahead_sizes[4] = {64, 1024, 8192, 200000};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    uint8_t flags = data[0], how = data[1];
    size_t group_len = data[2];
    if (group_len > WIRE_MAX_NAME || size < 3 + group_len)
        return 0;
    const uint8_t *group = data + 3, *stream = group + group_len;
    size_t stream_len = size - 3 - group_len;
    if (stream_len > MAX_STREAM)
        stream_len = MAX_STREAM;

    int sv[2], big = 4 * MAX_STREAM;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        abort();
    setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
    if (stream_len && send(sv[1], stream, stream_len, MSG_NOSIGNAL) != (ssize_t)stream_len)
        abort();
    shutdown(sv[1], SHUT_WR);

    if (!sess_register(sv[0], group, group_len))
        abort();
    mailbox m = sv[0];
    char *lent = NULL;
    if (flags & 1) {
        SPX_set_readahead(m, readahead_sizes[(how >> 6) & 3]);
        if (flags & 2) {
            int cap = flags & 4 ? 4096 : 2 * MAX_STREAM;
            lent = malloc((size_t)cap);
            if (!lent || SPX_lend_readahead(m, lent, cap) != 0)
                abort();
        }
    }
    fuzz_receive_all(m, how);
    SP_kill(m); /* closes sv[0] */
    close(sv[1]);
    free(lent);
    return 0;
}
