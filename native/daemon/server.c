/* server.c -- sockets, the event loop, the handshake (SPEC.md 2.4), request
 * validation (8.2), output queues and the slow-reader kill (8.6, 8.7). */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
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
#define HANDSHAKE_MS 1000
#define WRITE_BATCH 64
#define FLUSH_EARLY 64          /* flush a queue this long before queueing more */
#define PAUSE_MAX_NS 100000000LL /* pause budget: at most 100 ms at a time ... */
#define PAUSE_REFILL 10          /* ... refilled at 1/10 of elapsed time */

/* Back-pressure. The reference daemon stops reading requests while its own
 * ordering queue is long; it is also slow enough that senders rarely outrun
 * a reader that reads. This daemon is much faster, so on a busy machine a
 * reader that is merely descheduled for a few milliseconds would be killed.
 * Instead, while some reader's queue is past half the limit, requests are not
 * read (senders block in their sockets, and the CPU goes to the readers), but
 * only within a budget: 100 ms at most, refilled at a tenth of real time. A
 * reader that keeps falling behind therefore gets no lasting flow control and
 * is killed at the same queue length as before. */

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

static void now_plus_ms(struct timespec *t, int ms)
{
    clock_gettime(CLOCK_MONOTONIC, t);
    t->tv_sec += ms / 1000;
    t->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (t->tv_nsec >= 1000000000L) {
        t->tv_sec++;
        t->tv_nsec -= 1000000000L;
    }
}

static int expired(const struct timespec *t)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > t->tv_sec || (now.tv_sec == t->tv_sec && now.tv_nsec >= t->tv_nsec);
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
}

static size_t lag_mark(const spd_daemon *d)
{
    size_t mark = (size_t)d->cfg.max_session_messages / 2;
    return mark ? mark : 1;
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
    if (!was_open)
        d->n_handshaking--;
    spd_log(d, was_open ? SPD_LOG_INFO : SPD_LOG_DEBUG, "closing connection %llu (%.*s): %s",
            c->id, (int)c->private_group_len, (const char *)c->private_group, why);
    set_lagging(d, c, 0);
    c->state = CL_CLOSED;
    epoll_ctl(d->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    clear_queue(c);
    d->n_clients--;
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
            spd_msg_unref(m);
            c->q_head = (c->q_head + 1) % c->q_cap;
            c->q_count--;
            c->q_off = 0;
        }
    }
    if (c->state != CL_CLOSED && (c->q_count > 0) != c->want_write)
        set_events(d, c, c->q_count > 0);
    if (c->state != CL_CLOSED && c->lagging && c->q_count < lag_mark(d))
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
    size_t limit = (size_t)d->cfg.max_session_messages;
    if (c->q_count >= FLUSH_EARLY || c->q_count >= limit)
        flush_client(d, c);
    if (c->state != CL_OPEN)
        return;
    if (c->q_count >= limit) {
        spd_log(d, SPD_LOG_INFO, "killing connection %llu (%.*s) for not reading", c->id,
                (int)c->private_group_len, (const char *)c->private_group);
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
    if (!c->lagging && c->q_count >= lag_mark(d))
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

/* ---- handshake ------------------------------------------------------- */

static int send_bytes(client *c, const void *buf, size_t len)
{
    /* Handshake replies are tiny; a fresh socket buffer always takes them. */
    return send(c->fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT) == (ssize_t)len ? 0 : -1;
}

static void reject(spd_daemon *d, client *c, int code, const char *why)
{
    uint8_t b = (uint8_t)(int8_t)code;
    send_bytes(c, &b, 1);
    spd_kill(d, c, why);
}

static void accept_session(spd_daemon *d, client *c)
{
    uint8_t out[WIRE_ACCEPT_MAX];
    size_t n = wire_encode_accept(out, c->version >= 31500, c->private_group,
                                  c->private_group_len);
    if (send_bytes(c, out, n) != 0) {
        spd_kill(d, c, "accept not sent");
        return;
    }
    c->state = CL_OPEN;
    d->n_handshaking--;
    c->in_len = 0;
    spd_log(d, SPD_LOG_DEBUG, "connection %llu is %.*s", c->id, (int)c->private_group_len,
            (const char *)c->private_group);
}

static void set_private_group(spd_daemon *d, client *c)
{
    char buf[WIRE_SLOT + 1];
    int n = snprintf(buf, sizeof buf, "#%.*s#%s", (int)c->name_len, c->name, d->name);
    wire_put_slot(c->private_group, buf, (size_t)n);
    c->private_group_len = wire_slot_len(c->private_group);
}

/* The connect request, read in one go as the reference does (SPEC.md 2.4). */
static void handle_connect(spd_daemon *d, client *c)
{
    uint8_t b[64];
    ssize_t n = recv(c->fd, b, sizeof b, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n < 0) {
        spd_kill(d, c, "handshake read failed");
        return;
    }
    size_t len = (size_t)n, at = 0;
    int major = len > 0 ? b[0] : 0, minor = len > 1 ? b[1] : 0, patch = 0;
    at = len < 2 ? len : 2;
    if (wire_version_has_patch(major, minor))
        patch = at < len ? b[at++] : 0;
    c->version = wire_version_value(major, minor, patch);
    if (c->version < WIRE_MIN_VERSION) {
        reject(d, c, REJECT_VERSION, "library version too old");
        return;
    }
    if (len - at == 0) {
        spd_kill(d, c, "no connect flags");
        return;
    }
    if (len - at == 1) {
        reject(d, c, REJECT_NO_NAME, "no name length");
        return;
    }
    int flags = b[at], name_len = (int8_t)b[at + 1];
    at += 2;
    c->membership = flags & 1;
    c->priority = (flags >> 4) & 0xF;
    if (name_len < 0 || name_len > WIRE_MAX_PRIVATE_NAME) {
        reject(d, c, REJECT_ILLEGAL_NAME, "bad name length");
        return;
    }
    if (name_len == 0) {
        do {
            c->name_len = (size_t)snprintf(c->name, 10, "r%u-%d",
                                           (d->rng = d->rng * 1103515245u + 12345u) % 9999u,
                                           c->fd);
        } while (spd_table_get(&d->names, (const uint8_t *)c->name, c->name_len));
    } else {
        size_t got = len - at;
        if (got > WIRE_MAX_PRIVATE_NAME)
            got = WIRE_MAX_PRIVATE_NAME; /* the reference reads at most 10 */
        if (got != (size_t)name_len || !wire_private_name_ok((const char *)b + at, got)) {
            reject(d, c, REJECT_ILLEGAL_NAME, "illegal name");
            return;
        }
        memcpy(c->name, b + at, got);
        c->name[got] = '\0';
        c->name_len = got;
        if (spd_table_get(&d->names, (const uint8_t *)c->name, c->name_len)) {
            reject(d, c, REJECT_NOT_UNIQUE, "name not unique");
            return;
        }
    }
    if (spd_table_put(&d->names, (const uint8_t *)c->name, c->name_len, c) != 0) {
        spd_kill(d, c, "out of memory");
        return;
    }
    c->name_registered = 1;
    set_private_group(d, c);
    if (c->version < WIRE_AUTH_THRESHOLD) {
        accept_session(d, c); /* old clients: no authentication exchange */
        return;
    }
    static const uint8_t null_list[] = {5, 'N', 'U', 'L', 'L', ' '};
    if (send_bytes(c, null_list, sizeof null_list) != 0) {
        spd_kill(d, c, "auth list not sent");
        return;
    }
    c->state = CL_AUTH;
    c->in_len = 0;
    now_plus_ms(&c->deadline, HANDSHAKE_MS);
}

static void handle_auth(spd_daemon *d, client *c)
{
    ssize_t n = recv(c->fd, c->in + c->in_len, WIRE_AUTH_CHOICE - c->in_len, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        reject(d, c, REJECT_AUTH, "no auth choice");
        return;
    }
    c->in_len += (size_t)n;
    if (c->in_len < WIRE_AUTH_CHOICE)
        return;
    int named = 0;
    for (int i = 0; i < WIRE_AUTH_METHODS; i++) {
        const uint8_t *slot = c->in + i * WIRE_AUTH_NAME;
        if (slot[0] == '\0')
            break;
        if (strnlen((const char *)slot, WIRE_AUTH_NAME) != 4 || memcmp(slot, "NULL", 4) != 0) {
            reject(d, c, REJECT_AUTH, "authentication method refused");
            return;
        }
        named++;
    }
    if (!named) {
        reject(d, c, REJECT_AUTH, "no authentication method");
        return;
    }
    accept_session(d, c);
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
    uint8_t sender[WIRE_SLOT];
    memcpy(sender, h->sender, WIRE_SLOT);
    sender[WIRE_SLOT - 1] = '\0';
    if (wire_slot_len(sender) != c->private_group_len ||
        memcmp(sender, c->private_group, c->private_group_len) != 0)
        return "sender is not the connection's private group";
    if (h->num_groups < 0 || h->num_groups > WIRE_MAX_GROUPS)
        return "bad group count";
    if (!wire_hint_valid(h->hint))
        return "bad hint";
    if (h->data_len < 0 || h->data_len > WIRE_MAX_BODY ||
        (long)h->data_len + (long)WIRE_SLOT * h->num_groups > WIRE_DAEMON_MAX_TOTAL)
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

static void handle_input(spd_daemon *d, client *c)
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
        size_t total = WIRE_HEADER_SIZE + (size_t)h.num_groups * WIRE_SLOT + (size_t)h.data_len;
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

static void accept_clients(spd_daemon *d, int lfd, int is_tcp)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return; /* EAGAIN, or a failure that the next wake-up retries */
        if (d->n_clients >= SPD_MAX_CONNECTIONS) {
            uint8_t b = (uint8_t)(int8_t)REJECT_QUOTA;
            send(fd, &b, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
            close(fd);
            continue;
        }
        grow_buffers(fd);
        if (is_tcp) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        }
        client *c = calloc(1, sizeof *c);
        uint8_t *in = malloc(SPD_READ_CHUNK);
        if (!c || !in) {
            free(c);
            free(in);
            close(fd);
            continue;
        }
        c->fd = fd;
        c->in = in;
        c->in_cap = SPD_READ_CHUNK;
        c->is_tcp = is_tcp;
        c->id = ++d->next_id;
        c->state = CL_CONNECT;
        now_plus_ms(&c->deadline, HANDSHAKE_MS);
        struct epoll_event ev = {0};
        ev.events = EPOLLIN;
        ev.data.ptr = c;
        if (epoll_ctl(d->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
            free(in);
            free(c);
            close(fd);
            continue;
        }
        d->n_clients++;
        d->n_handshaking++;
        c->all_next = d->all;
        if (d->all)
            d->all->all_prev = c;
        d->all = c;
    }
}

static int listen_tcp(spd_daemon *d, char *err, int err_size)
{
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)d->cfg.port);
    const char *host = d->cfg.host && *d->cfg.host ? d->cfg.host : "127.0.0.1";
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1) {
        snprintf(err, (size_t)err_size, "not an IPv4 address: %s", host);
        return -1;
    }
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
fail:
    snprintf(err, (size_t)err_size, "cannot listen on %s:%d: %s", host, d->cfg.port,
             strerror(errno));
    if (fd >= 0)
        close(fd);
    return -1;
}

static int listen_unix(spd_daemon *d, char *err, int err_size)
{
    struct sockaddr_un a = {0};
    a.sun_family = AF_UNIX;
    snprintf(a.sun_path, sizeof a.sun_path, "/tmp/%d", d->cfg.port);
    unlink(a.sun_path); /* a stale socket from an earlier run */
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 128) != 0) {
        snprintf(err, (size_t)err_size, "cannot listen on %s: %s", a.sun_path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    chmod(a.sun_path, 0666);
    memcpy(d->unix_path, a.sun_path, sizeof d->unix_path);
    d->unix_fd = fd;
    return 0;
}

static int watch(int epfd, int fd, void *tag)
{
    struct epoll_event ev = {0};
    ev.events = EPOLLIN;
    ev.data.ptr = tag;
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
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
    if (d->cfg.max_session_messages <= 0)
        d->cfg.max_session_messages = 1000;
    const char *name = config->name && *config->name ? config->name : "localhost";
    size_t name_len = strlen(name);
    if (name_len > WIRE_MAX_PROC_NAME || !wire_private_name_ok(name, 1) ||
        memchr(name, '#', name_len)) {
        snprintf(err, (size_t)err_size, "daemon name must be 1 to %d characters from '$' to '~'",
                 WIRE_MAX_PROC_NAME);
        free(d);
        return NULL;
    }
    for (size_t i = 0; i < name_len; i++) {
        if (!wire_name_char_ok((uint8_t)name[i])) {
            snprintf(err, (size_t)err_size, "illegal character in daemon name");
            free(d);
            return NULL;
        }
    }
    memcpy(d->name, name, name_len + 1);
    d->name_len = name_len;
    if (d->cfg.port < 0 || d->cfg.port > 32767) {
        snprintf(err, (size_t)err_size, "port must be 0..32767, the range clients accept");
        free(d);
        return NULL;
    }
    d->memb_id[0] = 0x7F000001;
    d->memb_id[1] = (int32_t)(time(NULL) + 1);
    d->rng = (unsigned int)time(NULL) ^ (unsigned int)getpid();
    d->epfd = epoll_create1(EPOLL_CLOEXEC);
    d->out_epfd = epoll_create1(EPOLL_CLOEXEC);
    if (d->epfd < 0 || d->out_epfd < 0 || (d->cfg.tcp && listen_tcp(d, err, err_size) != 0) ||
        (d->cfg.unix_socket && listen_unix(d, err, err_size) != 0) ||
        (d->tcp_fd >= 0 && watch(d->epfd, d->tcp_fd, TAG_TCP) != 0) ||
        (d->unix_fd >= 0 && watch(d->epfd, d->unix_fd, TAG_UNIX) != 0)) {
        if (d->epfd < 0)
            snprintf(err, (size_t)err_size, "epoll: %s", strerror(errno));
        spd_close(d);
        return NULL;
    }
    return d;
}

/* Handshakes that went quiet for a second are closed (SPEC.md 2.4). */
static void sweep_handshakes(spd_daemon *d)
{
    if (!d->n_handshaking)
        return;
    for (client *c = d->all; c; c = c->all_next)
        if ((c->state == CL_CONNECT || c->state == CL_AUTH) && expired(&c->deadline))
            spd_kill(d, c, "handshake timed out");
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
            if (c->state == CL_CONNECT)
                handle_connect(d, c);
            else if (c->state == CL_AUTH)
                handle_auth(d, c);
            else
                handle_input(d, c);
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
    if (d->tcp_fd >= 0)
        close(d->tcp_fd);
    if (d->unix_fd >= 0) {
        close(d->unix_fd);
        unlink(d->unix_path);
    }
    if (d->epfd >= 0)
        close(d->epfd);
    if (d->out_epfd >= 0)
        close(d->out_epfd);
    spd_table_free(&d->names);
    spd_table_free(&d->groups);
    free(d->dirty);
    free(d);
}
