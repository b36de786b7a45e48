/* connect.c -- daemon address strings, socket set-up and the handshake
 * (SPEC.md 1.2, 1.3, 2.5), plus disconnect, kill and version. */
#include "session.h"
#include "spx.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_ADDRESS_STRING  70
#define DISCONNECT_DRAIN_MS 500 /* at most, for a daemon that does not hang up */
#define MAX_PORT            32767

/* Registered authentication methods (default: NULL only). */
static pthread_mutex_t auth_lock = PTHREAD_MUTEX_INITIALIZER;
static int auth_count = 1;
static char auth_names[WIRE_AUTH_METHODS][WIRE_AUTH_NAME] = {"NULL"};
static int (*auth_funcs[WIRE_AUTH_METHODS])(int, void *);
static void *auth_data[WIRE_AUTH_METHODS];

int SP_version(int *major_version, int *minor_version, int *patch_version)
{
    if (!major_version || !minor_version || !patch_version)
        return 0;
    *major_version = WIRE_VERSION_MAJOR;
    *minor_version = WIRE_VERSION_MINOR;
    *patch_version = WIRE_VERSION_PATCH;
    return 1;
}

int SP_set_auth_methods(int num_methods, const char *auth_name[],
                        int (*auth_function[])(int, void *), void *auth_data_in[])
{
    if (num_methods < 1 || num_methods > WIRE_AUTH_METHODS || !auth_name)
        return 0;
    for (int i = 0; i < num_methods; i++)
        if (!auth_name[i] || strlen(auth_name[i]) >= WIRE_AUTH_NAME)
            return 0;
    pthread_mutex_lock(&auth_lock);
    memset(auth_names, 0, sizeof auth_names);
    for (int i = 0; i < num_methods; i++) {
        memcpy(auth_names[i], auth_name[i], strlen(auth_name[i]));
        auth_funcs[i] = auth_function ? auth_function[i] : NULL;
        auth_data[i] = auth_data_in ? auth_data_in[i] : NULL;
    }
    auth_count = num_methods;
    pthread_mutex_unlock(&auth_lock);
    return 1;
}

int SP_set_auth_method(const char *auth_name, int (*auth_function)(int, void *), void *data)
{
    const char *names[1] = {auth_name};
    int (*funcs[1])(int, void *) = {auth_function};
    void *datas[1] = {data};
    return SP_set_auth_methods(1, names, funcs, datas);
}

/* Parses "<port>" or "<port>@<host>" (SPEC.md 1.2). */
int SPX_parse_address(const char *spread_name, int *port, char *host, size_t host_size)
{
    const char *s = (spread_name && *spread_name) ? spread_name : "4803";
    size_t len = strlen(s);
    if (len > MAX_ADDRESS_STRING || strchr(s, ' '))
        return ILLEGAL_SPREAD;
    const char *p = s;
    if (*p == '+')
        p++;
    if (*p < '0' || *p > '9')
        return ILLEGAL_SPREAD;
    long value = 0;
    while (*p >= '0' && *p <= '9') {
        value = value * 10 + (*p - '0');
        if (value > MAX_PORT)
            return ILLEGAL_SPREAD;
        p++;
    }
    *port = (int)value;
    host[0] = '\0';
    if (*p == '\0')
        return 0;
    if (*p != '@' || p[1] == '\0' || strlen(p + 1) >= host_size)
        return ILLEGAL_SPREAD;
    strcpy(host, p + 1);
    return 0;
}

/* Spread's own library's buffers: SO_SNDBUF and SO_RCVBUF raised together
 * in 5 KiB steps up to 200 KiB, stopping where the kernel gives less. */
static void grow_buffers(int fd)
{
    for (int k = 10; k <= 200; k += 5) {
        int want = k * 1024, got;
        socklen_t len = sizeof got;
        if (setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &want, sizeof want) != 0 ||
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &want, sizeof want) != 0)
            return;
        if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &got, &len) != 0 || got < want)
            return;
        len = sizeof got;
        if (getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &got, &len) != 0 || got < want)
            return;
    }
}

/* Sizes the socket's buffers before it connects (spx.h, SPX_connect):
 * SPX_SOCKET_BUFFER_DEFAULT, 0 (the kernel's sizes, untouched: for TCP its
 * autotuning), or a size for both SO_SNDBUF and SO_RCVBUF. The default is
 * autotuning for TCP (with Spread's fixed buffers a sender's connection
 * stalls for retransmission time-outs, and every reader with it: README.md,
 * "Socket buffers") and Spread's sizes for the unix socket, which has no
 * autotuning and no retransmissions to stall on. */
static void size_buffers(int fd, int family, int socket_buffer)
{
    if (socket_buffer < 0 && family == AF_UNIX) {
        grow_buffers(fd);
    } else if (socket_buffer > 0) {
        /* The kernel caps it at net.core.wmem_max / rmem_max; a failure
         * leaves the kernel's own sizes, which always work. */
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &socket_buffer, sizeof socket_buffer);
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &socket_buffer, sizeof socket_buffer);
    }
}

/* Milliseconds left before `deadline`, or -1 for no deadline. */
static int ms_left(const struct timespec *deadline)
{
    if (!deadline)
        return -1;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long long ns = (deadline->tv_sec - now.tv_sec) * 1000000000LL +
                   (deadline->tv_nsec - now.tv_nsec);
    long long ms = (ns + 999999) / 1000000; /* rounded up: never wake before it */
    return ms <= 0 ? 0 : (ms > 1000000000LL ? 1000000000 : (int)ms);
}

/* Waits for `events` on fd: 0 when ready, SPX_TIMED_OUT at the deadline,
 * SPX_INTERRUPTED when a signal interrupts an interruptible wait, -1 on a
 * poll failure. */
static int wait_fd(int fd, short events, const struct timespec *deadline, int interruptible)
{
    for (;;) {
        struct pollfd pfd = {fd, events, 0};
        int r = poll(&pfd, 1, ms_left(deadline));
        if (r > 0)
            return 0;
        if (r == 0)
            return SPX_TIMED_OUT;
        if (errno != EINTR)
            return -1;
        if (interruptible)
            return SPX_INTERRUPTED;
    }
}

/* Opens and connects the socket: 0, ILLEGAL_SPREAD (a host name that does
 * not resolve), COULD_NOT_CONNECT, or wait_fd's SPX_TIMED_OUT / SPX_INTERRUPTED.
 * The connect waits in poll (never in connect(2)) whenever there is a deadline
 * or a signal must be able to end it. */
static int open_socket(int port, const char *host, const struct timespec *deadline,
                       int interruptible, int socket_buffer, int *out)
{
    struct sockaddr_storage addr;
    socklen_t addr_len;
    int family, fd;
    memset(&addr, 0, sizeof addr);
    if (host[0] == '\0') {
        struct sockaddr_un *un = (struct sockaddr_un *)&addr;
        un->sun_family = AF_UNIX;
        snprintf(un->sun_path, sizeof un->sun_path, "/tmp/%d", port);
        addr_len = sizeof *un;
        family = AF_UNIX;
    } else {
        struct addrinfo hints, *res = NULL;
        memset(&hints, 0, sizeof hints);
        hints.ai_family = AF_INET;
        hints.ai_socktype = SOCK_STREAM;
        if (getaddrinfo(host, NULL, &hints, &res) != 0 || !res)
            return ILLEGAL_SPREAD;
        memcpy(&addr, res->ai_addr, res->ai_addrlen);
        addr_len = res->ai_addrlen;
        freeaddrinfo(res);
        ((struct sockaddr_in *)&addr)->sin_port = htons((uint16_t)port);
        family = AF_INET;
    }
    fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return COULD_NOT_CONNECT;
    size_buffers(fd, family, socket_buffer);
    if (family == AF_INET) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    int flags = fcntl(fd, F_GETFL);
    int polled = deadline || interruptible;
    if (polled)
        fcntl(fd, F_SETFL, flags | O_NONBLOCK);
    int r = connect(fd, (struct sockaddr *)&addr, addr_len);
    if (r != 0 && (polled || errno == EINTR) &&
        (errno == EINPROGRESS || errno == EAGAIN || errno == EINTR)) {
        /* The connect goes on in the kernel; its outcome shows as writability. */
        int err = 0;
        socklen_t len = sizeof err;
        r = wait_fd(fd, POLLOUT, deadline, interruptible);
        if (r == 0 && (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0))
            r = COULD_NOT_CONNECT;
    } else if (r != 0) {
        r = COULD_NOT_CONNECT;
    }
    if (r != 0) {
        close(fd);
        return r == SPX_TIMED_OUT || r == SPX_INTERRUPTED ? r : COULD_NOT_CONNECT;
    }
    fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    *out = fd;
    return 0;
}

/* Reads exactly len handshake bytes before the deadline: 0, CONNECTION_CLOSED
 * (end of stream or an error), SPX_TIMED_OUT or SPX_INTERRUPTED; with
 * `plausible`, SPX_NOT_SPREAD as soon as a byte fails it (so a peer that sent
 * too little of something else is told at once, not at the time-out). */
static int hs_read_checked(int fd, void *buf, size_t len, const struct timespec *deadline,
                           int interruptible, int (*plausible)(const uint8_t *, size_t))
{
    uint8_t *p = buf;
    while (len > 0) {
        if (deadline || interruptible) {
            int w = wait_fd(fd, POLLIN, deadline, interruptible);
            if (w != 0)
                return w < 0 && w != SPX_TIMED_OUT && w != SPX_INTERRUPTED ? CONNECTION_CLOSED : w;
        }
        ssize_t n = recv(fd, p, len, 0);
        if (n > 0) {
            if (plausible && !plausible(p, (size_t)n))
                return SPX_NOT_SPREAD;
            p += n;
            len -= (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            if (interruptible)
                return SPX_INTERRUPTED;
        } else {
            return CONNECTION_CLOSED;
        }
    }
    return 0;
}

static int hs_read(int fd, void *buf, size_t len, const struct timespec *deadline,
                   int interruptible)
{
    return hs_read_checked(fd, buf, len, deadline, interruptible, NULL);
}

/* What a decoder's verdict on a handshake unit that is not OK means for the
 * connect: the daemon's reject code, or a peer that is no Spread daemon. */
static int unit_result(int decoded, int code)
{
    return decoded == WIRE_UNIT_REJECT ? code : SPX_NOT_SPREAD;
}

static int hs_write(int fd, const void *buf, size_t len)
{
    struct iovec iov = {(void *)buf, len};
    return io_writev_full(fd, &iov, 1);
}

/* Runs the handshake of SPEC.md 2.5; on success fills private_group. Besides
 * sp.h's codes: SPX_NOT_SPREAD for bytes no Spread daemon sends, and hs_read's
 * SPX_TIMED_OUT / SPX_INTERRUPTED. */
static int handshake(int fd, const char *private_name, int priority, int group_membership,
                     const struct timespec *deadline, int intr, uint8_t *group, size_t *group_len)
{
    uint8_t req[WIRE_CONNECT_MAX], list[WIRE_AUTH_LIST_UNIT_MAX], choice[WIRE_AUTH_CHOICE],
        accept[WIRE_ACCEPT_MAX];
    size_t name_len = private_name ? strnlen(private_name, WIRE_MAX_PRIVATE_NAME) : 0;
    size_t n = wire_encode_connect(req, group_membership, priority, private_name, name_len);
    int r;
    if (hs_write(fd, req, n) != 0)
        return CONNECTION_CLOSED;

    /* The auth list, read as the decoder asks (never past the unit). */
    wire_auth_list al;
    size_t have = 0;
    int d;
    while ((d = wire_decode_auth_list(list, have, &al)) == WIRE_UNIT_MORE) {
        if ((r = hs_read_checked(fd, list + have, al.need - have, deadline, intr,
                                 have ? wire_auth_list_plausible : NULL)) != 0)
            return r;
        have = al.need;
    }
    if (d != WIRE_UNIT_OK)
        return unit_result(d, al.code);

    pthread_mutex_lock(&auth_lock);
    int count = auth_count;
    const char *names[WIRE_AUTH_METHODS];
    int (*funcs[WIRE_AUTH_METHODS])(int, void *);
    void *datas[WIRE_AUTH_METHODS];
    for (int i = 0; i < count; i++) {
        names[i] = auth_names[i];
        funcs[i] = auth_funcs[i];
        datas[i] = auth_data[i];
    }
    int refused = 0;
    for (int i = 0; i < count; i++)
        if (!wire_auth_list_has(al.list, al.len, names[i]))
            refused = 1;
    if (!refused)
        wire_encode_auth_choice(choice, names, count);
    pthread_mutex_unlock(&auth_lock);
    if (refused)
        return REJECT_AUTH;
    if (hs_write(fd, choice, sizeof choice) != 0)
        return CONNECTION_CLOSED;
    for (int i = 0; i < count; i++)
        if (funcs[i] && funcs[i](fd, datas[i]) != 1)
            return REJECT_AUTH;

    /* The accept; a daemon too old is refused as soon as its version is in. */
    wire_accept acc;
    int version_checked = 0;
    have = 0;
    for (;;) {
        d = wire_decode_accept(accept, have, &acc);
        if (acc.version >= 0 && !version_checked) {
            version_checked = 1;
            if (acc.version < WIRE_MIN_VERSION)
                return REJECT_VERSION;
            if (acc.version < WIRE_PRIORITY_VERSION && priority > 0)
                return REJECT_VERSION;
        }
        if (d != WIRE_UNIT_MORE)
            break;
        if ((r = hs_read(fd, accept + have, acc.need - have, deadline, intr)) != 0)
            return r;
        have = acc.need;
    }
    if (d != WIRE_UNIT_OK)
        return unit_result(d, acc.code);
    memcpy(group, acc.group, acc.group_len);
    *group_len = acc.group_len;
    return ACCEPT_SESSION;
}

/* The whole connect. `detailed`: SPX_connect's codes (time-outs, interruptions
 * and non-Spread peers told apart); otherwise sp.h's, as libspread gives them. */
static int do_connect(const char *spread_name, const char *private_name, int priority,
                      int group_membership, mailbox *mbox, char *private_group,
                      const struct timespec *deadline, int interruptible, int detailed,
                      int socket_buffer)
{
    char host[MAX_ADDRESS_STRING + 1];
    int port, fd, r;
    uint8_t group[WIRE_MAX_NAME];
    size_t group_len = 0;

    if (!mbox)
        return ILLEGAL_SESSION;
    if ((r = SPX_parse_address(spread_name, &port, host, sizeof host)) != 0)
        return r;
    if ((r = open_socket(port, host, deadline, interruptible, socket_buffer, &fd)) != 0)
        return detailed || r == ILLEGAL_SPREAD ? r : COULD_NOT_CONNECT;
    r = handshake(fd, private_name, priority, group_membership, deadline, interruptible, group,
                  &group_len);
    if (r != ACCEPT_SESSION) {
        close(fd);
        if (!detailed && (r == SPX_TIMED_OUT || r == SPX_NOT_SPREAD || r == SPX_INTERRUPTED))
            r = CONNECTION_CLOSED;
        return r;
    }
    if (!sess_register(fd, group, group_len)) {
        close(fd);
        return COULD_NOT_CONNECT;
    }
    *mbox = fd;
    if (private_group) {
        memcpy(private_group, group, group_len);
        private_group[group_len] = '\0';
    }
    return ACCEPT_SESSION;
}

static void deadline_after(struct timespec *deadline, long long ms)
{
    clock_gettime(CLOCK_MONOTONIC, deadline);
    long long ns = deadline->tv_nsec + (ms % 1000) * 1000000LL;
    deadline->tv_sec += (time_t)(ms / 1000 + ns / 1000000000LL);
    deadline->tv_nsec = (long)(ns % 1000000000LL);
}

int SP_connect(const char *spread_name, const char *private_name, int priority,
               int group_membership, mailbox *mbox, char *private_group)
{
    return do_connect(spread_name, private_name, priority, group_membership, mbox, private_group,
                      NULL, 0, 0, SPX_SOCKET_BUFFER_DEFAULT);
}

int SP_connect_timeout(const char *spread_name, const char *private_name, int priority,
                       int group_membership, mailbox *mbox, char *private_group, sp_time time_out)
{
    if (time_out.sec <= 0 && time_out.usec <= 0)
        return SP_connect(spread_name, private_name, priority, group_membership, mbox,
                          private_group);
    struct timespec deadline;
    deadline_after(&deadline, (long long)time_out.sec * 1000LL + time_out.usec / 1000);
    if (time_out.usec % 1000) /* round up: a time-out is never shorter than asked */
        deadline_after(&deadline, (long long)time_out.sec * 1000LL + time_out.usec / 1000 + 1);
    return do_connect(spread_name, private_name, priority, group_membership, mbox, private_group,
                      &deadline, 0, 0, SPX_SOCKET_BUFFER_DEFAULT);
}

int SPX_connect(const char *spread_name, const char *private_name, int priority,
                int group_membership, mailbox *mbox, char *private_group, int timeout_ms,
                int interruptible, int socket_buffer)
{
    struct timespec deadline;
    if (timeout_ms >= 0)
        deadline_after(&deadline, timeout_ms);
    return do_connect(spread_name, private_name, priority, group_membership, mbox, private_group,
                      timeout_ms >= 0 ? &deadline : NULL, interruptible, 1, socket_buffer);
}

int SP_disconnect(mailbox mbox)
{
    session *s = sess_acquire(mbox);
    if (!s)
        return ILLEGAL_SESSION;
    /* KILL request naming our own private group; its outcome does not matter. */
    uint8_t header[WIRE_HEADER_SIZE], hint[4];
    wire_make_hint(hint, 0);
    wire_encode_header(header, WIRE_KILL_MESS, s->private_group, 1, hint, 0);
    struct iovec iov[2] = {{header, sizeof header}, {s->private_group, WIRE_SLOT}};
    pthread_mutex_lock(&s->send_lock);
    int polite = sess_get_state(s) == SESS_OPEN && io_writev_full(s->fd, iov, 2) == 0;
    if (polite)
        shutdown(s->fd, SHUT_WR); /* the daemon gets all we sent, then the end */
    pthread_mutex_unlock(&s->send_lock);
    /* Closing a TCP socket that holds unread input resets the connection and
     * throws away what is still unsent. Read (and drop) what comes until the
     * daemon, done with our requests, closes its side; not if another thread
     * is reading (it will meet the end itself). */
    if (polite && sess_recv_trylock(s) == 0) {
        struct timespec deadline;
        deadline_after(&deadline, DISCONNECT_DRAIN_MS);
        char sink[4096];
        while (wait_fd(s->fd, POLLIN, &deadline, 0) == 0 && recv(s->fd, sink, sizeof sink, 0) > 0)
            ;
        sess_recv_unlock(s);
    }
    int r = sess_close(s);
    sess_release(s);
    return r == 0 ? 0 : ILLEGAL_SESSION;
}

void SP_kill(mailbox mbox)
{
    session *s = sess_acquire(mbox);
    if (!s)
        return;
    sess_close(s);
    sess_release(s);
}

int SPX_hold(mailbox mbox)
{
    return sess_hold(mbox);
}

void SPX_release(mailbox mbox)
{
    sess_unhold(mbox);
}
