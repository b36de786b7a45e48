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

#define HANDSHAKE_MS  1000
#define GRACE_MS      250
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
    uint8_t b = wire_encode_reject(code);
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
    size_t n = wire_encode_accept(out, c->version >= WIRE_ACCEPT_PATCH_VERSION, c->private_group,
                                  c->private_group_len);
    if (send_bytes(c, out, n) != 0) {
        spd_kill(d, c, "accept not sent");
        return;
    }
    c->state = CL_OPEN;
    d->n_handshaking--;
    d->tot.opened++;
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

static void invent_name(spd_daemon *d, client *c)
{
    do {
        d->rng = d->rng * 1103515245u + 12345u;
        c->name_len = (size_t)snprintf(c->name, 10, "r%u-%d", d->rng % 9999u, c->fd);
    } while (spd_table_get(&d->names, (const uint8_t *)c->name, c->name_len));
}

/* The connect request at the head of the buffer (wire_decode_connect). With
 * `final` no more bytes will come. Returns the bytes it took, 0 to wait for
 * more, -1 when the connection was refused. */
static long parse_connect(spd_daemon *d, client *c, int final)
{
    wire_connect req;
    int r = wire_decode_connect(c->in, c->in_len, final, &req);
    if (r == WIRE_UNIT_MORE)
        return 0;
    c->version = req.version;
    if (r != WIRE_UNIT_OK) {
        switch (req.defect) {
        case WIRE_CONNECT_OLD_VERSION:
            reject(d, c, REJECT_VERSION, "library version too old");
            break;
        case WIRE_CONNECT_NO_FLAGS: spd_kill(d, c, "no connect flags"); break;
        case WIRE_CONNECT_NO_NAME_LENGTH: reject(d, c, REJECT_NO_NAME, "no name length"); break;
        case WIRE_CONNECT_BAD_NAME_LENGTH:
            reject(d, c, REJECT_ILLEGAL_NAME, "bad name length");
            break;
        default: reject(d, c, REJECT_ILLEGAL_NAME, "illegal name"); break;
        }
        return -1;
    }
    c->membership = req.membership;
    c->priority = req.priority;
    if (!req.name) {
        invent_name(d, c);
    } else {
        memcpy(c->name, req.name, req.name_len);
        c->name[req.name_len] = '\0';
        c->name_len = req.name_len;
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
    return (long)req.used;
}

/* The auth choice (wire_decode_auth_choice); same contract as parse_connect. */
static long parse_auth(spd_daemon *d, client *c, int final)
{
    wire_auth_choice choice;
    if (wire_decode_auth_choice(c->in, c->in_len, &choice) == WIRE_UNIT_MORE) {
        if (final)
            reject(d, c, REJECT_AUTH, "no auth choice");
        return final ? -1 : 0;
    }
    for (int i = 0; i < choice.n; i++) {
        if (choice.lens[i] != 4 || memcmp(choice.names[i], "NULL", 4) != 0) {
            reject(d, c, REJECT_AUTH, "authentication method refused");
            return -1;
        }
    }
    if (!choice.n) {
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
        static const char *const methods[] = {"NULL"};
        uint8_t list[WIRE_AUTH_LIST_UNIT_MAX];
        size_t list_len = wire_encode_auth_list(list, methods, 1);
        if (send_bytes(c, list, list_len) != 0) {
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
    uint8_t b = wire_encode_reject(REJECT_QUOTA);
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
