/* server.c -- sockets, the event loop, request validation (SPEC.md 8.2),
 * output queues and the slow-reader kill (8.6, 8.7). The handshake is in
 * handshake.c. */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#define TAG_TCP  ((void *)1)
#define TAG_UNIX ((void *)2)
#define TAG_STOP ((void *)3)
#define WRITE_BATCH 64
#define FLUSH_EARLY 64          /* flush a queue this long before queueing more */
#define PAUSE_MAX_NS 100000000LL /* pause budget: at most 100 ms at a time ... */
#define PAUSE_REFILL 10          /* ... refilled at 1/10 of elapsed time */
#define PICK_FIRST 10000         /* --port 0 picks from PICK_FIRST..32767 */
#define PICK_TRIES 200

/* Back-pressure. The reference daemon stops reading requests while its own
 * ordering queue is long; it is also slow enough that senders rarely outrun
 * a reader that reads. This daemon is much faster, so on a busy machine a
 * reader that is merely descheduled for a few milliseconds would be killed.
 * Instead, while some reader's queue is past half the limit, requests are not
 * read (senders block in their sockets, and the CPU goes to the readers), but
 * only within a budget: 100 ms at most, refilled at a tenth of real time. A
 * reader that keeps falling behind therefore gets no lasting flow control and
 * is killed at the same queue length as before.
 *
 * A queue is limited in messages (the reference's rule) and in bytes: 1000
 * messages of 144 KB are 144 MB held for one client that never reads. */

void spd_log(spd_daemon *d, int level, const char *fmt, ...)
{
    if (level > d->cfg.log_level)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "spread-daemon: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

msgbuf *spd_msg_new(size_t len)
{
    msgbuf *m = malloc(sizeof *m + len);
    if (m) {
        m->refs = 1;
        m->len = len;
    }
    return m;
}

void spd_msg_unref(msgbuf *m)
{
    if (m && --m->refs == 0)
        free(m);
}

static void set_events(spd_daemon *d, client *c, int want_write)
{
    struct epoll_event ev = {0};
    ev.events = EPOLLIN | (want_write ? EPOLLOUT : 0);
    ev.data.ptr = c;
    epoll_ctl(d->epfd, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_write = want_write;
}

static void clear_queue(client *c)
{
    while (c->q_count) {
        spd_msg_unref(c->q[c->q_head]);
        c->q_head = (c->q_head + 1) % c->q_cap;
        c->q_count--;
    }
    c->q_off = 0;
    c->q_bytes = 0;
}

/* The queue is at or past half of either limit. */
static int past_lag_mark(const spd_daemon *d, const client *c)
{
    size_t mark = (size_t)d->cfg.max_session_messages / 2;
    return c->q_count >= (mark ? mark : 1) ||
           c->q_bytes >= (size_t)d->cfg.max_session_bytes / 2;
}

/* The queue is full: the next message kills the connection instead. */
static int queue_full(const spd_daemon *d, const client *c)
{
    return c->q_count >= (size_t)d->cfg.max_session_messages ||
           c->q_bytes >= (size_t)d->cfg.max_session_bytes;
}

static void set_lagging(spd_daemon *d, client *c, int lagging)
{
    if (c->lagging == lagging)
        return;
    c->lagging = lagging;
    if (lagging) {
        struct epoll_event ev = {0};
        ev.events = EPOLLOUT;
        ev.data.ptr = c;
        epoll_ctl(d->out_epfd, EPOLL_CTL_ADD, c->fd, &ev);
        d->n_lagging++;
    } else {
        if (c->fd >= 0)
            epoll_ctl(d->out_epfd, EPOLL_CTL_DEL, c->fd, NULL);
        d->n_lagging--;
    }
}

void spd_kill(spd_daemon *d, client *c, const char *why)
{
    if (c->state == CL_CLOSED)
        return;
    int was_open = c->state == CL_OPEN;
    if (c->state == CL_LINGER)
        d->n_lingering--;
    else
        d->n_clients--;
    if (c->state == CL_CONNECT || c->state == CL_AUTH)
        d->n_handshaking--;
    spd_log(d, was_open ? SPD_LOG_INFO : SPD_LOG_DEBUG, "closing connection %llu (%.*s): %s",
            c->id, (int)c->private_group_len, (const char *)c->private_group, why);
    set_lagging(d, c, 0);
    c->state = CL_CLOSED;
    epoll_ctl(d->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    clear_queue(c);
    /* Group removal is an event of its own, after the current one. */
    c->next_pending = d->pending_disconnect;
    d->pending_disconnect = c;
}

/* Writes as much of c's queue as the socket takes. */
static void flush_client(spd_daemon *d, client *c)
{
    while (c->q_count && c->state != CL_CLOSED) {
        struct iovec iov[WRITE_BATCH];
        int n = 0;
        for (size_t i = 0; i < c->q_count && n < WRITE_BATCH; i++, n++) {
            msgbuf *m = c->q[(c->q_head + i) % c->q_cap];
            size_t off = i == 0 ? c->q_off : 0;
            iov[n].iov_base = m->data + off;
            iov[n].iov_len = m->len - off;
        }
        struct msghdr msg = {0};
        msg.msg_iov = iov;
        msg.msg_iovlen = (size_t)n;
        ssize_t w = sendmsg(c->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            spd_kill(d, c, "write failed");
            return;
        }
        size_t left = (size_t)w;
        while (left > 0) {
            msgbuf *m = c->q[c->q_head];
            size_t rest = m->len - c->q_off;
            if (left < rest) {
                c->q_off += left;
                break;
            }
            left -= rest;
            c->q_bytes -= m->len;
            spd_msg_unref(m);
            c->q_head = (c->q_head + 1) % c->q_cap;
            c->q_count--;
            c->q_off = 0;
        }
    }
    if (c->state != CL_CLOSED && (c->q_count > 0) != c->want_write)
        set_events(d, c, c->q_count > 0);
    if (c->state != CL_CLOSED && c->lagging && !past_lag_mark(d, c))
        set_lagging(d, c, 0);
}

static void mark_dirty(spd_daemon *d, client *c)
{
    if (c->dirty)
        return;
    if (d->n_dirty == d->cap_dirty) {
        size_t cap = d->cap_dirty ? d->cap_dirty * 2 : 64;
        client **p = realloc(d->dirty, cap * sizeof *p);
        if (!p) {
            flush_client(d, c); /* no list: write now */
            return;
        }
        d->dirty = p;
        d->cap_dirty = cap;
    }
    d->dirty[d->n_dirty++] = c;
    c->dirty = 1;
}

void spd_enqueue(spd_daemon *d, client *c, msgbuf *m)
{
    if (c->state != CL_OPEN)
        return;
    if (c->q_count >= FLUSH_EARLY || queue_full(d, c))
        flush_client(d, c);
    if (c->state != CL_OPEN)
        return;
    if (queue_full(d, c)) {
        spd_log(d, SPD_LOG_INFO,
                "killing connection %llu (%.*s) for not reading (%zu messages, %zu bytes queued)",
                c->id, (int)c->private_group_len, (const char *)c->private_group, c->q_count,
                c->q_bytes);
        spd_kill(d, c, "not reading");
        return;
    }
    if (c->q_count == c->q_cap) {
        size_t cap = c->q_cap ? c->q_cap * 2 : 16;
        msgbuf **q = malloc(cap * sizeof *q);
        if (!q) {
            spd_kill(d, c, "out of memory");
            return;
        }
        for (size_t i = 0; i < c->q_count; i++)
            q[i] = c->q[(c->q_head + i) % c->q_cap];
        free(c->q);
        c->q = q;
        c->q_cap = cap;
        c->q_head = 0;
    }
    m->refs++;
    c->q[(c->q_head + c->q_count) % c->q_cap] = m;
    c->q_count++;
    c->q_bytes += m->len;
    if (!c->lagging && past_lag_mark(d, c))
        set_lagging(d, c, 1);
    mark_dirty(d, c);
}

static void flush_dirty(spd_daemon *d)
{
    for (size_t i = 0; i < d->n_dirty; i++) {
        client *c = d->dirty[i];
        c->dirty = 0;
        if (c->state == CL_OPEN)
            flush_client(d, c);
    }
    d->n_dirty = 0;
}

/* Runs the disconnects queued by kills, in order; they may cause more. */
static void process_disconnects(spd_daemon *d)
{
    while (d->pending_disconnect) {
        /* The list is LIFO; take the oldest first to keep the total order. */
        client **pp = &d->pending_disconnect;
        while ((*pp)->next_pending)
            pp = &(*pp)->next_pending;
        client *c = *pp;
        *pp = NULL;
        spd_remove_from_groups(d, c);
        if (c->name_registered)
            spd_table_del(&d->names, (const uint8_t *)c->name, c->name_len);
        c->name_registered = 0;
        c->next_pending = d->to_free;
        d->to_free = c;
    }
}

static void free_closed(spd_daemon *d)
{
    while (d->to_free) {
        client *c = d->to_free;
        d->to_free = c->next_pending;
        if (c->all_prev)
            c->all_prev->all_next = c->all_next;
        else
            d->all = c->all_next;
        if (c->all_next)
            c->all_next->all_prev = c->all_prev;
        free(c->in);
        free(c->q);
        free(c->groups);
        free(c);
    }
}

/* ---- requests ------------------------------------------------------- */

/* SPEC.md 8.2; returns NULL when valid, else the reason. */
static const char *invalid_header(const client *c, const wire_header *h)
{
    uint32_t kinds = h->type & (WIRE_SERVICE_BITS | WIRE_JOIN_MESS | WIRE_LEAVE_MESS |
                                WIRE_KILL_MESS);
    if (kinds == 0 || (kinds & (kinds - 1)) != 0)
        return "not exactly one service or request bit";
    if (h->type & (WIRE_INTERNAL_BITS | WIRE_REJECT_MESS))
        return "internal type bits set";
    /* Membership bits (REG_MEMB, TRANSITION, CAUSED_BY_*) would make every
     * receiver see a forged membership message. The reference passes them
     * through (SPEC.md 8.2); here they are a violation like the internal
     * and reject bits just above: the request is malformed, not refused by
     * a policy, and a reject (SPEC.md 7) is for policy refusals only. */
    if (h->type & WIRE_MEMBERSHIP_BITS)
        return "membership type bits set";
    uint8_t sender[WIRE_SLOT];
    memcpy(sender, h->sender, WIRE_SLOT);
    sender[WIRE_SLOT - 1] = '\0';
    if (wire_slot_len(sender) != c->private_group_len ||
        memcmp(sender, c->private_group, c->private_group_len) != 0)
        return "sender is not the connection's private group";
    if (!wire_request_groups_ok(h))
        return "bad group count";
    if (!wire_hint_valid(h->hint))
        return "bad hint";
    if (!wire_request_size_ok(h))
        return "bad data length";
    if ((kinds & (WIRE_JOIN_MESS | WIRE_LEAVE_MESS)) && h->num_groups < 1)
        return "join or leave without a group";
    return NULL;
}

static void handle_request(spd_daemon *d, client *c, const wire_header *h, const uint8_t *groups,
                           const uint8_t *data)
{
    if (h->type & WIRE_KILL_MESS) {
        spd_kill(d, c, "disconnect requested");
        return;
    }
    if (h->type & (WIRE_JOIN_MESS | WIRE_LEAVE_MESS)) {
        size_t len = wire_slot_len(groups);
        if (!wire_group_name_ok((const char *)groups, len)) {
            spd_kill(d, c, "illegal group name");
            return;
        }
        if (h->type & WIRE_JOIN_MESS)
            spd_join(d, c, groups, len);
        else
            spd_leave(d, c, groups, len);
        return;
    }
    spd_deliver(d, c, h, groups, data);
}

static void read_requests(spd_daemon *d, client *c)
{
    if (c->in_cap - c->in_len < SPD_READ_CHUNK) {
        size_t cap = c->in_len + SPD_READ_CHUNK;
        uint8_t *p = realloc(c->in, cap);
        if (!p) {
            spd_kill(d, c, "out of memory");
            return;
        }
        c->in = p;
        c->in_cap = cap;
    }
    ssize_t n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        spd_kill(d, c, n == 0 ? "end of file" : "read failed");
        return;
    }
    c->in_len += (size_t)n;
    spd_process_requests(d, c);
}

void spd_process_requests(spd_daemon *d, client *c)
{
    size_t at = 0;
    while (c->state == CL_OPEN && c->in_len - at >= WIRE_HEADER_SIZE) {
        wire_header h;
        const char *bad = NULL;
        if (wire_decode_header(c->in + at, &h) != 0)
            bad = "bad byte-order marker";
        else
            bad = invalid_header(c, &h);
        if (bad) {
            spd_log(d, SPD_LOG_INFO, "connection %llu (%.*s) sent an invalid request: %s", c->id,
                    (int)c->private_group_len, (const char *)c->private_group, bad);
            spd_kill(d, c, bad);
            return;
        }
        size_t total = wire_message_size(&h);
        if (c->in_len - at < total)
            break;
        const uint8_t *groups = c->in + at + WIRE_HEADER_SIZE;
        handle_request(d, c, &h, groups, groups + (size_t)h.num_groups * WIRE_SLOT);
        at += total;
    }
    if (c->state == CL_OPEN && at > 0) {
        memmove(c->in, c->in + at, c->in_len - at);
        c->in_len -= at;
    }
}

/* ---- sockets and loop -------------------------------------------------- */

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

client *spd_client_new(spd_daemon *d, int fd)
{
    client *c = calloc(1, sizeof *c);
    uint8_t *in = malloc(SPD_READ_CHUNK);
    struct epoll_event ev = {0};
    ev.events = EPOLLIN;
    ev.data.ptr = c;
    if (!c || !in || epoll_ctl(d->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        free(c);
        free(in);
        return NULL;
    }
    c->fd = fd;
    c->in = in;
    c->in_cap = SPD_READ_CHUNK;
    c->id = ++d->next_id;
    c->all_next = d->all;
    if (d->all)
        d->all->all_prev = c;
    d->all = c;
    return c;
}

static void accept_clients(spd_daemon *d, int lfd, int is_tcp)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return; /* EAGAIN, or a failure that the next wake-up retries */
        if (d->n_clients >= SPD_MAX_CONNECTIONS) {
            spd_reject_quota(d, fd);
            continue;
        }
        grow_buffers(fd);
        if (is_tcp) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        }
        client *c = spd_client_new(d, fd);
        if (!c) {
            close(fd);
            continue;
        }
        c->is_tcp = is_tcp;
        spd_handshake_begin(c);
        d->n_clients++;
        d->n_handshaking++;
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
            snprintf(err, (size_t)err_size, "%s exists and is not a socket; remove it or use "
                     "another port", a.sun_path);
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

static void close_listeners(spd_daemon *d)
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
        close_listeners(d);
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
    snprintf(err, (size_t)err_size, "no free port found in %d..32767 after %d tries",
             PICK_FIRST, PICK_TRIES);
    return -1;
}

static int watch(int epfd, int fd, void *tag)
{
    struct epoll_event ev = {0};
    ev.events = EPOLLIN;
    ev.data.ptr = tag;
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
}

/* The configuration's errors, or NULL; fills in the defaults. */
static const char *check_config(spd_daemon *d)
{
    if (d->cfg.max_session_messages <= 0)
        d->cfg.max_session_messages = 1000;
    if (d->cfg.max_session_bytes <= 0)
        d->cfg.max_session_bytes = SPD_DEFAULT_MAX_SESSION_BYTES;
    if (!d->cfg.tcp && !d->cfg.unix_socket)
        return "nothing to listen on: TCP and the unix socket are both turned off "
               "(keep at least one)";
    if (d->cfg.port < 0 || d->cfg.port > 32767)
        return "port must be 0..32767, the range clients accept (0 picks a free one)";
    const char *name = d->cfg.name && *d->cfg.name ? d->cfg.name : "localhost";
    size_t name_len = strlen(name);
    if (name_len > WIRE_MAX_PROC_NAME || !wire_private_name_ok(name, 1) ||
        memchr(name, '#', name_len))
        return "daemon name must be 1 to 19 characters from '$' to '~', without '#'";
    for (size_t i = 0; i < name_len; i++)
        if (!wire_name_char_ok((uint8_t)name[i]))
            return "illegal character in daemon name (allowed: '$' to '~', without '#')";
    memcpy(d->name, name, name_len + 1);
    d->name_len = name_len;
    return NULL;
}

spd_daemon *spd_open(const spd_config *config, char *err, int err_size)
{
    spd_daemon *d = calloc(1, sizeof *d);
    if (!d) {
        snprintf(err, (size_t)err_size, "out of memory");
        return NULL;
    }
    d->cfg = *config;
    d->tcp_fd = d->unix_fd = d->epfd = d->out_epfd = -1;
    const char *bad = check_config(d);
    if (bad) {
        snprintf(err, (size_t)err_size, "%s", bad);
        free(d);
        return NULL;
    }
    d->memb_id[0] = 0x7F000001;
    d->memb_id[1] = (int32_t)(time(NULL) + 1);
    d->rng = (unsigned int)time(NULL) ^ (unsigned int)getpid();
    d->epfd = epoll_create1(EPOLL_CLOEXEC);
    d->out_epfd = epoll_create1(EPOLL_CLOEXEC);
    if (d->epfd < 0 || d->out_epfd < 0) {
        snprintf(err, (size_t)err_size, "epoll: %s", strerror(errno));
        spd_close(d);
        return NULL;
    }
    int r = d->cfg.port == 0 ? listen_on_free_port(d, err, err_size)
                             : listen_on(d, d->cfg.port, 0, err, err_size);
    if (r != 0 || (d->tcp_fd >= 0 && watch(d->epfd, d->tcp_fd, TAG_TCP) != 0) ||
        (d->unix_fd >= 0 && watch(d->epfd, d->unix_fd, TAG_UNIX) != 0)) {
        if (r == 0)
            snprintf(err, (size_t)err_size, "epoll: %s", strerror(errno));
        spd_close(d);
        return NULL;
    }
    return d;
}

int spd_port(const spd_daemon *d)
{
    return d->cfg.port;
}

void spd_get_stats(const spd_daemon *d, spd_stats *out)
{
    out->groups = d->groups.used;
    out->group_slots = d->groups.cap;
    out->names = d->names.used;
    out->name_slots = d->names.cap;
    out->connections = d->n_clients;
}

/* Handshakes past their time (SPEC.md 2.4), and lingering rejects. */
static void sweep_handshakes(spd_daemon *d)
{
    if (!d->n_handshaking && !d->n_lingering)
        return;
    for (client *c = d->all; c; c = c->all_next)
        if (c->state == CL_CONNECT || c->state == CL_AUTH || c->state == CL_LINGER)
            spd_handshake_check_time(d, c);
    flush_dirty(d);
    process_disconnects(d);
    free_closed(d);
}

/* Charges the time since the last call to the pause budget (spent while
 * paused, refilled otherwise) and says whether to pause now. */
static int update_pause(spd_daemon *d)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long long elapsed = (now.tv_sec - d->pause_stamp.tv_sec) * 1000000000LL +
                        (now.tv_nsec - d->pause_stamp.tv_nsec);
    d->pause_stamp = now;
    d->pause_budget_ns += d->paused ? -elapsed : elapsed / PAUSE_REFILL;
    if (d->pause_budget_ns > PAUSE_MAX_NS)
        d->pause_budget_ns = PAUSE_MAX_NS;
    d->paused = d->n_lagging > 0 && d->pause_budget_ns > 0;
    return d->paused;
}

int spd_run(spd_daemon *d, int stop_fd)
{
    clock_gettime(CLOCK_MONOTONIC, &d->pause_stamp);
    d->pause_budget_ns = PAUSE_MAX_NS;
    if (stop_fd >= 0 && (watch(d->epfd, stop_fd, TAG_STOP) != 0 ||
                         watch(d->out_epfd, stop_fd, TAG_STOP) != 0))
        return -1;
    struct epoll_event events[256];
    spd_log(d, SPD_LOG_INFO, "serving as %s on port %d", d->name, d->cfg.port);
    for (;;) {
        int paused = update_pause(d);
        int n = epoll_wait(paused ? d->out_epfd : d->epfd, events, 256, paused ? 5 : 100);
        if (n < 0 && errno != EINTR)
            return -1;
        for (int i = 0; i < n; i++) {
            void *tag = events[i].data.ptr;
            if (tag == TAG_STOP)
                goto stop;
            if (tag == TAG_TCP || tag == TAG_UNIX) {
                accept_clients(d, tag == TAG_TCP ? d->tcp_fd : d->unix_fd, tag == TAG_TCP);
                continue;
            }
            client *c = tag;
            if (c->state == CL_CLOSED)
                continue;
            if (events[i].events & EPOLLOUT)
                flush_client(d, c);
            if (c->state == CL_CLOSED || !(events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                continue;
            if (c->state == CL_OPEN)
                read_requests(d, c);
            else
                spd_handshake_input(d, c);
            process_disconnects(d);
        }
        flush_dirty(d);
        process_disconnects(d);
        flush_dirty(d);
        free_closed(d);
        sweep_handshakes(d);
    }
stop:
    spd_log(d, SPD_LOG_INFO, "stopping");
    return 0;
}

void spd_close(spd_daemon *d)
{
    if (!d)
        return;
    for (client *c = d->all; c; c = c->all_next)
        spd_kill(d, c, "daemon stopping");
    process_disconnects(d);
    free_closed(d);
    close_listeners(d);
    if (d->epfd >= 0)
        close(d->epfd);
    if (d->out_epfd >= 0)
        close(d->out_epfd);
    spd_table_free(&d->names);
    spd_table_free(&d->groups);
    free(d->dirty);
    free(d);
}
