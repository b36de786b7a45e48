/* fuzz_daemon.c -- the embedded daemon's handshake (handshake.c) and request
 * parsing (server.c) against a hostile client. The daemon runs as it does
 * in a binding: spd_open on a unix socket /tmp/<port> of a free port (TCP
 * off), spd_run in a thread of its own. Each input is what one client
 * writes on a fresh connection (connect request, auth choice, requests),
 * then end of stream; the harness reads everything the daemon answers
 * until the daemon closes the connection, which it does at the latest at
 * that end of stream. The daemon's state carries over from input to input
 * as it does from connection to connection. Beside it, for each input, a
 * well-behaved client (#fzpeer#localhost, in the groups "grp" and "chat",
 * the vectors' most used) reads all it is sent, so that joins, messages and
 * disconnects of the fuzzed client reach another member too.
 *
 * The input is cut into writes at each FUZZ_SPLIT (the two bytes F5 5F),
 * and each write waits until the daemon has read the one before: where
 * units are cut matters (a connect request with bytes behind it in one
 * read is refused, as by the reference daemon). No library change was
 * needed: the connection goes through the daemon's own accept and loop. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <linux/sockios.h>

#include "fuzz_common.h"
#include "wire.h"

#define MAX_INPUT  (1 << 16)
#define QUIET_MS   10000 /* a daemon silent this long with the connection open is stuck */
#define FUZZ_SPLIT "\xf5\x5f"

static struct sockaddr_un where;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    spd_config cfg = {.control_fd = -1, .name = "localhost"};
    int port = fuzz_start_daemon(&cfg, "fuzz_daemon");
    memset(&where, 0, sizeof where);
    where.sun_family = AF_UNIX;
    snprintf(where.sun_path, sizeof where.sun_path, "/tmp/%d", port);
    return 0;
}

static int companion = -1; /* the well-behaved client, while an input runs */

/* Reads and drops what the daemon sent (to the companion too). 0, or -1
 * once it has closed fd. */
static int drain(int fd)
{
    if (companion >= 0 && fd != companion && fuzz_drain(companion) != 0) {
        close(companion); /* killed, say for a slow read: the input goes on alone */
        companion = -1;
    }
    return fuzz_drain(fd);
}

/* Waits for fd to be readable (or writable too, with `out`), or dies. */
static short wait_for(int fd, int out, int ms)
{
    for (;;) {
        struct pollfd p = {fd, (short)(POLLIN | (out ? POLLOUT : 0)), 0};
        int r = poll(&p, 1, ms);
        if (r > 0)
            return p.revents;
        if (r == 0 && ms < QUIET_MS)
            return 0;
        if (r == 0 || errno != EINTR) {
            fprintf(stderr, "fuzz_daemon: the daemon neither answered nor closed\n");
            abort();
        }
    }
}

/* Writes len bytes, reading the answers meanwhile, then waits until the
 * daemon has read them all (nothing left in the socket). 0, or -1 once the
 * daemon has closed. */
static int write_unit(int fd, const uint8_t *p, size_t len)
{
    size_t at = 0;
    while (at < len) {
        short ev = wait_for(fd, 1, QUIET_MS);
        if ((ev & (POLLIN | POLLHUP | POLLERR)) && drain(fd) != 0)
            return -1;
        if (ev & POLLOUT) {
            ssize_t n = send(fd, p + at, len - at, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n > 0)
                at += (size_t)n;
            else if (n < 0 && errno != EAGAIN && errno != EINTR)
                return -1;
        }
    }
    time_t since = time(NULL);
    for (int spins = 0;; spins++) {
        int queued = 0;
        if (ioctl(fd, SIOCOUTQ, &queued) != 0 || queued == 0)
            return 0;
        if (spins < 1000) { /* the daemon is usually a moment away */
            sched_yield();
            continue;
        }
        if (time(NULL) - since > QUIET_MS / 1000) {
            fprintf(stderr, "fuzz_daemon: the daemon stopped reading\n");
            abort();
        }
        if ((wait_for(fd, 0, 1) & (POLLIN | POLLHUP | POLLERR)) && drain(fd) != 0)
            return -1;
    }
}

static int connect_daemon(void)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&where, sizeof where) != 0) {
        fprintf(stderr, "fuzz_daemon: cannot connect: %s\n", strerror(errno));
        abort();
    }
    return fd;
}

/* The companion's handshake (library 4.0.0, with memberships) and joins;
 * -1 if the daemon refused it (rarely, a unit is read together with the
 * next, which a daemon may refuse): the input then runs alone. */
static int open_companion(void)
{
    static const uint8_t hello[] = {4, 0, 0, 1, 6, 'f', 'z', 'p', 'e', 'e', 'r'};
    static const char *const groups[] = {"grp", "chat"};
    uint8_t choice[WIRE_AUTH_CHOICE] = "NULL", join[WIRE_HEADER_SIZE + WIRE_SLOT];
    uint8_t sender[WIRE_SLOT], hint[4];
    int fd = connect_daemon();
    if (write_unit(fd, hello, sizeof hello) != 0 || write_unit(fd, choice, sizeof choice) != 0) {
        close(fd);
        return -1;
    }
    wire_put_slot(sender, "#fzpeer#localhost", 17);
    wire_make_hint(hint, 0);
    for (size_t i = 0; i < sizeof groups / sizeof groups[0]; i++) {
        wire_encode_header(join, WIRE_JOIN_MESS, sender, 1, hint, 0);
        wire_put_slot(join + WIRE_HEADER_SIZE, groups[i], strlen(groups[i]));
        if (write_unit(fd, join, sizeof join) != 0) {
            close(fd);
            return -1;
        }
    }
    return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_INPUT)
        size = MAX_INPUT;
    companion = open_companion();
    int fd = connect_daemon();
    const uint8_t *p = data, *end = data + size;
    int open = 1;
    while (open && p < end) {
        const uint8_t *cut = memmem(p, (size_t)(end - p), FUZZ_SPLIT, 2);
        size_t len = (size_t)((cut ? cut : end) - p);
        if (len && write_unit(fd, p, len) != 0)
            open = 0;
        p += len + (cut ? 2 : 0);
    }
    shutdown(fd, SHUT_WR);
    while (open)
        if ((wait_for(fd, 0, QUIET_MS) & (POLLIN | POLLHUP | POLLERR)) && drain(fd) != 0)
            open = 0;
    close(fd);
    if (companion >= 0) {
        /* Its own end, as a client's: drained to the daemon's close. */
        int peer = companion;
        companion = -1;
        shutdown(peer, SHUT_WR);
        while ((wait_for(peer, 0, QUIET_MS) & (POLLIN | POLLHUP | POLLERR)) == 0 ||
               drain(peer) == 0)
            ;
        close(peer);
    }
    return 0;
}
