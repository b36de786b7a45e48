/* fuzz_control.c -- the daemon's control channel (control.c) against a
 * hostile controller. Each input is what one control connection writes:
 * request lines, any bytes at all. It goes two ways:
 *
 *  - through the parser alone (spd_ctl_parse, sans-IO), line by line, with
 *    the lengths the channel gives it, and on every prefix of the input
 *    (the parser must never read past what it was given);
 *  - to a daemon run in-process as a binding runs it (spd_run in a thread
 *    of its own, the control channel on a unix socket, TCP off), over a
 *    fresh control connection: the harness writes the input, ends its
 *    side, and reads every answer until the daemon closes the connection,
 *    which it must do once it has answered.
 *
 * Beside it, for each input, a client "#fzpeer#localhost" is connected and
 * in the group "grp", so that kill, drop, pause and the figures have a
 * session to act on. After each input a second control connection resumes
 * the daemon and the peer (an input may pause them), so that inputs do not
 * hang one another; the daemon's state otherwise carries over. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon/internal.h"
#include "fuzz_common.h"
#include "wire.h"

#define MAX_INPUT (1 << 16)
#define QUIET_MS  10000 /* a daemon silent this long is stuck */

static struct sockaddr_un client_at, control_at;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    static char path[64];
    snprintf(path, sizeof path, "/tmp/fuzz-control-%d", (int)getpid());
    unlink(path);
    spd_config cfg;
    spd_default_config(&cfg);
    cfg.control = path;
    int port = fuzz_start_daemon(&cfg, "fuzz_control");
    client_at.sun_family = control_at.sun_family = AF_UNIX;
    snprintf(client_at.sun_path, sizeof client_at.sun_path, "/tmp/%d", port);
    snprintf(control_at.sun_path, sizeof control_at.sun_path, "%s", path);
    return 0;
}

static int connect_to(const struct sockaddr_un *where)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (const struct sockaddr *)where, sizeof *where) != 0) {
        fprintf(stderr, "fuzz_control: cannot connect to %s: %s\n", where->sun_path,
                strerror(errno));
        abort();
    }
    return fd;
}

/* Waits for fd to be readable or writable as asked, or dies. */
static short wait_for(int fd, short what)
{
    struct pollfd p = {fd, what, 0};
    for (;;) {
        int r = poll(&p, 1, QUIET_MS);
        if (r > 0)
            return p.revents;
        if (r == 0 || errno != EINTR) {
            fprintf(stderr, "fuzz_control: the daemon neither answered nor closed\n");
            abort();
        }
    }
}

/* Reads what is there; 0, or -1 once the daemon has closed fd. */
static int drain(int fd)
{
    return fuzz_drain(fd);
}

/* Writes len bytes on a control connection, reading answers meanwhile,
 * ends the writing side, and reads until the daemon closes. */
static void exchange(const uint8_t *p, size_t len)
{
    int fd = connect_to(&control_at);
    size_t at = 0;
    int open = 1;
    while (open && at < len) {
        short ev = wait_for(fd, POLLIN | POLLOUT);
        if ((ev & (POLLIN | POLLHUP | POLLERR)) && drain(fd) != 0)
            open = 0;
        if (open && (ev & POLLOUT)) {
            ssize_t n = send(fd, p + at, len - at, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n > 0)
                at += (size_t)n;
            else if (n < 0 && errno != EAGAIN && errno != EINTR)
                open = 0;
        }
    }
    shutdown(fd, SHUT_WR);
    while (open)
        if ((wait_for(fd, POLLIN) & (POLLIN | POLLHUP | POLLERR)) && drain(fd) != 0)
            open = 0;
    close(fd);
}

/* Reads at least one byte (a handshake answer), or returns -1. */
static int read_some(int fd)
{
    char b[256];
    if (!(wait_for(fd, POLLIN) & (POLLIN | POLLHUP | POLLERR)))
        return -1;
    return recv(fd, b, sizeof b, 0) > 0 ? 0 : -1;
}

/* The peer session: handshake (library 4.0.0, memberships), join "grp".
 * -1 if the daemon refused it; the input then runs without it. */
static int open_peer(void)
{
    static const uint8_t hello[] = {4, 0, 0, 1, 6, 'f', 'z', 'p', 'e', 'e', 'r'};
    uint8_t choice[WIRE_AUTH_CHOICE] = "NULL", join[WIRE_HEADER_SIZE + WIRE_SLOT];
    uint8_t sender[WIRE_SLOT], hint[4];
    int fd = connect_to(&client_at);
    if (send(fd, hello, sizeof hello, MSG_NOSIGNAL) != (ssize_t)sizeof hello || read_some(fd) ||
        send(fd, choice, sizeof choice, MSG_NOSIGNAL) != (ssize_t)sizeof choice || read_some(fd)) {
        close(fd);
        return -1;
    }
    wire_put_slot(sender, "#fzpeer#localhost", 17);
    wire_make_hint(hint, 0);
    wire_encode_header(join, WIRE_JOIN_MESS, sender, 1, hint, 0);
    wire_put_slot(join + WIRE_HEADER_SIZE, "grp", 3);
    if (send(fd, join, sizeof join, MSG_NOSIGNAL) != (ssize_t)sizeof join) {
        close(fd);
        return -1;
    }
    return fd;
}

/* The parser on each line as the channel cuts them, and on bare prefixes. */
static void parse_lines(const uint8_t *data, size_t size)
{
    ctl_request r;
    const char *p = (const char *)data, *end = p + size;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = (size_t)((nl ? nl : end) - p);
        if (len > 0 && p[len - 1] == '\r')
            len--;
        if (len < SPD_CTL_LINE_MAX) {
            /* A copy of exactly len bytes: a read past it would be seen. */
            char *line = malloc(len ? len : 1);
            if (!line)
                abort();
            memcpy(line, p, len);
            for (size_t cut = 0; cut <= len; cut++)
                if (cut == len || cut < 8)
                    spd_ctl_parse(line, cut, &r);
            if (!spd_ctl_parse(line, len, &r) && r.name_len >= WIRE_SLOT)
                abort(); /* a valid request's name fits a slot */
            free(line);
        }
        p += (nl ? (size_t)(nl - p) + 1 : (size_t)(end - p));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t reset[] = "resume-daemon\nresume fzpeer\n";
    if (size > MAX_INPUT)
        size = MAX_INPUT;
    parse_lines(data, size);
    int peer = open_peer();
    exchange(data, size);
    exchange(reset, sizeof reset - 1);
    if (peer >= 0) {
        /* Its own end, as a client's: drained to the daemon's close. */
        shutdown(peer, SHUT_WR);
        while ((wait_for(peer, POLLIN) & (POLLIN | POLLHUP | POLLERR)) == 0 || drain(peer) == 0)
            ;
        close(peer);
    }
    return 0;
}
