/* handshake.c -- the connect request, the authentication choice and the
 * accept (SPEC.md 2.4), and the quota reject.
 *
 * The reference reads the connect request with a few non-blocking reads as
 * soon as its first bytes arrive; what it answers depends only on the bytes
 * of each unit, so this daemon buffers what arrives and decides once a unit
 * is complete (or, for a unit cut short, once the client has gone quiet for
 * GRACE_MS or closed: then the answer is the reference's for those bytes).
 * Bytes behind a unit are kept for the next one: a client may write the
 * connect request and its auth choice (and more) in one go. */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define HANDSHAKE_MS 1000
#define GRACE_MS     250
#define MAX_LINGERING 64

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

void spd_handshake_begin(client *c)
{
    c->state = CL_CONNECT;
    c->grace_armed = 0;
    now_plus_ms(&c->deadline, HANDSHAKE_MS);
}

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

/* Drops the first n buffered bytes (a finished unit). */
static void consume(client *c, size_t n)
{
    memmove(c->in, c->in + n, c->in_len - n);
    c->in_len -= n;
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
    spd_log(d, SPD_LOG_DEBUG, "connection %llu is %.*s", c->id, (int)c->private_group_len,
            (const char *)c->private_group);
    spd_process_requests(d, c); /* any sent behind the handshake */
}

static void set_private_group(spd_daemon *d, client *c)
{
    char buf[WIRE_SLOT + 1];
    int n = snprintf(buf, sizeof buf, "#%.*s#%s", (int)c->name_len, c->name, d->name);
    wire_put_slot(c->private_group, buf, (size_t)n);
    c->private_group_len = wire_slot_len(c->private_group);
}

static void invent_name(spd_daemon *d, client *c)
{
    do {
        d->rng = d->rng * 1103515245u + 12345u;
        c->name_len = (size_t)snprintf(c->name, 10, "r%u-%d", d->rng % 9999u, c->fd);
    } while (spd_table_get(&d->names, (const uint8_t *)c->name, c->name_len));
}

/* The connect request at the head of the buffer. With `final` no more bytes
 * will come. Returns the bytes it took, 0 to wait for more, -1 when the
 * connection was refused. */
static long parse_connect(spd_daemon *d, client *c, int final)
{
    const uint8_t *b = c->in;
    size_t len = c->in_len;
    if (len < 2 && !final)
        return 0;
    int major = len > 0 ? b[0] : 0, minor = len > 1 ? b[1] : 0, patch = 0;
    size_t at = len < 2 ? len : 2;
    if (wire_version_has_patch(major, minor)) {
        if (at == len && !final)
            return 0;
        patch = at < len ? b[at++] : 0;
    }
    c->version = wire_version_value(major, minor, patch);
    if (c->version < WIRE_MIN_VERSION) {
        reject(d, c, REJECT_VERSION, "library version too old");
        return -1;
    }
    if (len - at < 2 && !final)
        return 0;
    if (len - at == 0) {
        spd_kill(d, c, "no connect flags");
        return -1;
    }
    if (len - at == 1) {
        reject(d, c, REJECT_NO_NAME, "no name length");
        return -1;
    }
    int flags = b[at], name_len = (int8_t)b[at + 1];
    at += 2;
    c->membership = flags & 1;
    c->priority = (flags >> 4) & 0xF;
    if (name_len < 0 || name_len > WIRE_MAX_PRIVATE_NAME) {
        reject(d, c, REJECT_ILLEGAL_NAME, "bad name length");
        return -1;
    }
    if (name_len == 0) {
        invent_name(d, c);
    } else {
        size_t avail = len - at;
        if (avail < (size_t)name_len && !final)
            return 0;
        /* The reference reads up to 10 name bytes at once: with a shorter
         * name, bytes pipelined behind it make a mismatch (SPEC.md 2.4). */
        size_t got = avail > WIRE_MAX_PRIVATE_NAME ? WIRE_MAX_PRIVATE_NAME : avail;
        if (got != (size_t)name_len || !wire_private_name_ok((const char *)b + at, got)) {
            reject(d, c, REJECT_ILLEGAL_NAME, "illegal name");
            return -1;
        }
        memcpy(c->name, b + at, got);
        c->name[got] = '\0';
        c->name_len = got;
        at += got;
        if (spd_table_get(&d->names, (const uint8_t *)c->name, c->name_len)) {
            reject(d, c, REJECT_NOT_UNIQUE, "name not unique");
            return -1;
        }
    }
    if (spd_table_put(&d->names, (const uint8_t *)c->name, c->name_len, c) != 0) {
        spd_kill(d, c, "out of memory");
        return -1;
    }
    c->name_registered = 1;
    set_private_group(d, c);
    return (long)at;
}

/* The 90-byte auth choice; same contract as parse_connect. */
static long parse_auth(spd_daemon *d, client *c, int final)
{
    if (c->in_len < WIRE_AUTH_CHOICE) {
        if (final)
            reject(d, c, REJECT_AUTH, "no auth choice");
        return final ? -1 : 0;
    }
    int named = 0;
    for (int i = 0; i < WIRE_AUTH_METHODS; i++) {
        const uint8_t *slot = c->in + i * WIRE_AUTH_NAME;
        if (slot[0] == '\0')
            break;
        if (strnlen((const char *)slot, WIRE_AUTH_NAME) != 4 || memcmp(slot, "NULL", 4) != 0) {
            reject(d, c, REJECT_AUTH, "authentication method refused");
            return -1;
        }
        named++;
    }
    if (!named) {
        reject(d, c, REJECT_AUTH, "no authentication method");
        return -1;
    }
    return WIRE_AUTH_CHOICE;
}

/* Runs the handshake on what is buffered, unit by unit. */
static void advance(spd_daemon *d, client *c, int final)
{
    while (c->state == CL_CONNECT || c->state == CL_AUTH) {
        int connecting = c->state == CL_CONNECT;
        long n = connecting ? parse_connect(d, c, final) : parse_auth(d, c, final);
        if (n < 0)
            return;
        if (n == 0) {
            /* A unit begun but not finished: wait a little for the rest,
             * counted from the last bytes that came. */
            if (c->in_len > 0) {
                now_plus_ms(&c->grace, GRACE_MS);
                c->grace_armed = 1;
            }
            return;
        }
        consume(c, (size_t)n);
        c->grace_armed = 0;
        if (!connecting || c->version < WIRE_AUTH_THRESHOLD) {
            accept_session(d, c); /* old clients: no authentication exchange */
            return;
        }
        static const uint8_t null_list[] = {5, 'N', 'U', 'L', 'L', ' '};
        if (send_bytes(c, null_list, sizeof null_list) != 0) {
            spd_kill(d, c, "auth list not sent");
            return;
        }
        c->state = CL_AUTH;
        now_plus_ms(&c->deadline, HANDSHAKE_MS);
    }
}

void spd_handshake_input(spd_daemon *d, client *c)
{
    if (c->state == CL_LINGER) {
        /* A quota reject: read and drop until the client closes. */
        uint8_t sink[512];
        ssize_t n = recv(c->fd, sink, sizeof sink, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            spd_kill(d, c, "rejected: too many connections");
        return;
    }
    if (c->in_len == c->in_cap) { /* cannot happen: each unit is decided by 90 bytes */
        spd_kill(d, c, "handshake too long");
        return;
    }
    ssize_t n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n < 0) {
        spd_kill(d, c, "handshake read failed");
        return;
    }
    c->in_len += (size_t)n;
    advance(d, c, n == 0); /* end of file: nothing more will come */
    if (n == 0 && c->state != CL_CLOSED && c->state != CL_OPEN)
        spd_kill(d, c, "end of file in handshake");
}

void spd_handshake_check_time(spd_daemon *d, client *c)
{
    if (c->state == CL_LINGER) {
        if (expired(&c->deadline))
            spd_kill(d, c, "rejected: too many connections");
        return;
    }
    if (c->grace_armed && expired(&c->grace)) {
        advance(d, c, 1);
    } else if (expired(&c->deadline)) {
        if (c->state == CL_CONNECT && c->in_len == 0)
            spd_kill(d, c, "handshake timed out"); /* silent, as the reference */
        else
            advance(d, c, 1);
    }
}

/* Over the limit of connections the reference sends REJECT_QUOTA and closes
 * at once. Over a unix socket that close races with the client's write of
 * its connect request: a write that comes second fails (EPIPE), and the
 * client reports a closed connection instead of the reject. So the reject
 * is sent, and the socket stays open, its input dropped, until the client
 * closes it or HANDSHAKE_MS pass (at most MAX_LINGERING of them at once). */
void spd_reject_quota(spd_daemon *d, int fd)
{
    uint8_t b = (uint8_t)(int8_t)REJECT_QUOTA;
    send(fd, &b, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    client *c = d->n_lingering < MAX_LINGERING ? spd_client_new(d, fd) : NULL;
    if (!c) {
        close(fd);
        return;
    }
    c->state = CL_LINGER;
    now_plus_ms(&c->deadline, HANDSHAKE_MS);
    d->n_lingering++;
}
