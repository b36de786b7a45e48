/* listen.c -- the daemon's listening sockets (TCP and /tmp/<port>, a free
 * port picked for --port 0) and the tuning of accepted ones. */
#include "internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define PICK_FIRST 10000         /* --port 0 picks from PICK_FIRST..32767 */
#define PICK_TRIES 200

/* Spread's buffer sizes: SO_SNDBUF and SO_RCVBUF raised together in 5 KiB
 * steps up to 200 KiB, stopping where the kernel gives less. */
static void grow_buffers(int fd)
{
    for (int k = 10; k <= 200; k += 5) {
        int want = k * 1024, got;
        socklen_t len = sizeof got;
        if (setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &want, sizeof want) != 0 ||
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &want, sizeof want) != 0 ||
            getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &got, &len) != 0 || got < want)
            return;
        len = sizeof got;
        if (getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &got, &len) != 0 || got < want)
            return;
    }
}

void spd_tune_socket(int fd, int is_tcp)
{
    grow_buffers(fd);
    if (is_tcp) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
}

/* The IPv4 address to bind: a dotted address, or a host name resolved. */
static int resolve_host(const char *host, struct in_addr *out, char *err, int err_size)
{
    if (inet_pton(AF_INET, host, out) == 1)
        return 0;
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    int r = getaddrinfo(host, NULL, &hints, &res);
    if (r != 0 || !res) {
        snprintf(err, (size_t)err_size,
                 "cannot resolve host '%s' to an IPv4 address: %s (give an IPv4 address "
                 "such as 127.0.0.1, or a host name that resolves to one)",
                 host, r ? gai_strerror(r) : "no address");
        return -1;
    }
    *out = ((struct sockaddr_in *)res->ai_addr)->sin_addr;
    freeaddrinfo(res);
    return 0;
}

/* Binds TCP on port. 1 if the port is taken (err set), -1 on other errors. */
static int listen_tcp(spd_daemon *d, int port, char *err, int err_size)
{
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    const char *host = d->cfg.host && *d->cfg.host ? d->cfg.host : "127.0.0.1";
    if (resolve_host(host, &a.sin_addr, err, err_size) != 0)
        return -1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
    if (fd < 0)
        goto fail;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 128) != 0)
        goto fail;
    d->tcp_fd = fd;
    /* Group ids carry the address the daemon presents (SPEC.md 6.6). */
    uint32_t ip = ntohl(a.sin_addr.s_addr);
    d->memb_id[0] = (int32_t)(ip ? ip : 0x7F000001u);
    return 0;
fail:;
    int taken = errno == EADDRINUSE;
    snprintf(err, (size_t)err_size, "cannot listen on %s:%d: %s", host, port, strerror(errno));
    if (fd >= 0)
        close(fd);
    return taken ? 1 : -1;
}

/* Whether a daemon accepts connections on the unix socket at path. */
static int socket_answers(const char *path)
{
    struct sockaddr_un a = {0};
    a.sun_family = AF_UNIX;
    snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 1; /* cannot tell: leave it alone */
    int r = connect(fd, (struct sockaddr *)&a, sizeof a);
    /* EAGAIN: a listener whose backlog is full, still alive. */
    int live = r == 0 || errno == EAGAIN || errno == EINPROGRESS;
    close(fd);
    return live;
}

/* Binds /tmp/<port>. A socket file nobody answers on is stale and replaced;
 * a live daemon's socket, or any other file, is left alone (returns 1, the
 * port is taken). With `fresh_only` (a picked port) any existing file counts
 * as taken. -1 on other errors. */
static int listen_unix(spd_daemon *d, int port, int fresh_only, char *err, int err_size)
{
    struct sockaddr_un a = {0};
    a.sun_family = AF_UNIX;
    snprintf(a.sun_path, sizeof a.sun_path, "/tmp/%d", port);
    struct stat st;
    if (lstat(a.sun_path, &st) == 0) {
        if (fresh_only)
            return 1;
        if (!S_ISSOCK(st.st_mode)) {
            snprintf(err, (size_t)err_size,
                     "%s exists and is not a socket; remove it or use "
                     "another port",
                     a.sun_path);
            return 1;
        }
        if (socket_answers(a.sun_path)) {
            snprintf(err, (size_t)err_size, "a daemon is already listening on %s", a.sun_path);
            return 1;
        }
        unlink(a.sun_path); /* stale: left by a daemon that did not stop cleanly */
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 128) != 0 ||
        stat(a.sun_path, &st) != 0) {
        int taken = errno == EADDRINUSE;
        snprintf(err, (size_t)err_size, "cannot listen on %s: %s", a.sun_path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return taken ? 1 : -1;
    }
    chmod(a.sun_path, 0666);
    memcpy(d->unix_path, a.sun_path, sizeof d->unix_path);
    d->unix_fd = fd;
    d->unix_dev = st.st_dev;
    d->unix_ino = st.st_ino;
    return 0;
}

/* Removes the unix socket file if it is still the one this daemon bound. */
static void remove_unix_socket(spd_daemon *d)
{
    struct stat st;
    if (lstat(d->unix_path, &st) == 0 && st.st_dev == d->unix_dev && st.st_ino == d->unix_ino)
        unlink(d->unix_path);
}

void spd_close_listeners(spd_daemon *d)
{
    if (d->tcp_fd >= 0)
        close(d->tcp_fd);
    if (d->unix_fd >= 0) {
        close(d->unix_fd);
        remove_unix_socket(d);
    }
    d->tcp_fd = d->unix_fd = -1;
}

/* Binds what the configuration asks for on port: 0, 1 (taken) or -1. */
static int listen_on(spd_daemon *d, int port, int picked, char *err, int err_size)
{
    int r = d->cfg.tcp ? listen_tcp(d, port, err, err_size) : 0;
    if (r == 0 && d->cfg.unix_socket)
        r = listen_unix(d, port, picked, err, err_size);
    if (r != 0)
        spd_close_listeners(d);
    else
        d->cfg.port = port;
    return r;
}

/* --port 0: the kernel's ephemeral ports lie above 32767, which clients do
 * not accept, so the daemon draws ports itself until one is free. */
static int listen_on_free_port(spd_daemon *d, char *err, int err_size)
{
    for (int i = 0; i < PICK_TRIES; i++) {
        d->rng = d->rng * 1103515245u + 12345u;
        int port = PICK_FIRST + (int)((d->rng >> 8) % (32768u - PICK_FIRST));
        int r = listen_on(d, port, 1, err, err_size);
        if (r <= 0)
            return r;
    }
    snprintf(err, (size_t)err_size, "no free port found in %d..32767 after %d tries", PICK_FIRST,
             PICK_TRIES);
    return -1;
}

int spd_listen(spd_daemon *d, char *err, int err_size)
{
    return d->cfg.port == 0 ? listen_on_free_port(d, err, err_size)
                            : listen_on(d, d->cfg.port, 0, err, err_size);
}
