/* queue.c -- the lowest layer of the daemon: logging, the messages queued
 * for delivery (msgbuf), each connection's output queue with its flush,
 * the back-pressure mark and the slow-reader kill (SPEC.md 8.6, 8.7), and
 * the connection object itself (creation, kill). groups.c, handshake.c and
 * server.c build on it; it calls none of them (the graph: server ->
 * {handshake, groups, listen} -> queue).
 *
 * Back-pressure. The reference daemon stops reading requests while its own
 * ordering queue is long; it is also slow enough that senders rarely outrun
 * a reader that reads. This daemon is much faster, so on a busy machine a
 * reader that is merely descheduled for a few milliseconds would be killed.
 * Instead, while some reader's queue is past half the limit (lagging),
 * requests are not read (senders block in their sockets, and the CPU goes
 * to the readers), but only within a budget (server.c): slow_reader_budget
 * ms at most (100 by default), refilled at a tenth of real time. A reader
 * that keeps falling behind therefore gets no lasting flow control and is
 * killed at the same queue length as before. A budget of 0 turns this off,
 * as in a real Spread daemon.
 *
 * Figures (control.c reads them): each queue's length now and at its
 * peak, messages queued and written whole, and the daemon's totals. A
 * session paused by the control channel (SPD_PAUSE_*) is not read from, or
 * not written to: then it fills like a reader that never reads.
 *
 * A queue is limited in messages (the reference's rule) and in bytes: 1000
 * messages of 144 KB are 144 MB held for one client that never reads. */
#include "internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define WRITE_BATCH 64
#define FLUSH_EARLY 64          /* flush a queue this long before queueing more */

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
    ev.events = (c->paused & SPD_PAUSE_REQUESTS ? 0 : EPOLLIN) |
                (want_write && !(c->paused & SPD_PAUSE_DELIVERIES) ? EPOLLOUT : 0);
    ev.data.ptr = c;
    epoll_ctl(d->epfd, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_write = want_write;
}

static void clear_queue(spd_daemon *d, client *c)
{
    d->tot.queued_messages -= c->q_count;
    d->tot.queued_bytes -= c->q_bytes;
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
    return c->q_count >= (mark ? mark : 1) || c->q_bytes >= (size_t)d->cfg.max_session_bytes / 2;
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
    /* A reader whose deliveries are paused lags, but its EPOLLOUT would
     * wake the paused loop for nothing: it is watched once resumed. */
    if (lagging) {
        if (!(c->paused & SPD_PAUSE_DELIVERIES)) {
            struct epoll_event ev = {0};
            ev.events = EPOLLOUT;
            ev.data.ptr = c;
            epoll_ctl(d->out_epfd, EPOLL_CTL_ADD, c->fd, &ev);
        }
        d->n_lagging++;
    } else {
        if (c->fd >= 0)
            epoll_ctl(d->out_epfd, EPOLL_CTL_DEL, c->fd, NULL);
        d->n_lagging--;
    }
}

void spd_set_paused(spd_daemon *d, client *c, int bits)
{
    if (c->state != CL_OPEN || c->paused == bits)
        return;
    int was_lagging = c->lagging;
    set_lagging(d, c, 0);
    c->paused = bits;
    set_lagging(d, c, was_lagging);
    set_events(d, c, c->q_count > 0);
    if (!(bits & SPD_PAUSE_DELIVERIES) && c->q_count)
        spd_flush(d, c);
}

static void keep_ended(spd_daemon *d, const client *c, const char *why)
{
    ended_session *e = &d->ended[d->ended_next];
    d->ended_next = (d->ended_next + 1) % SPD_ENDED_KEEP;
    if (d->ended_count < SPD_ENDED_KEEP)
        d->ended_count++;
    e->id = c->id;
    memcpy(e->private_group, c->private_group, WIRE_SLOT);
    e->fig = c->fig;
    e->reason = why;
    e->killed = !c->client_ended;
    if (e->killed)
        d->tot.killed++;
    else
        d->tot.closed++;
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
    spd_log(d, was_open ? SPD_LOG_INFO : SPD_LOG_DEBUG, "closing connection %llu (%.*s): %s", c->id,
            (int)c->private_group_len, (const char *)c->private_group, why);
    if (was_open)
        keep_ended(d, c, why);
    set_lagging(d, c, 0);
    c->state = CL_CLOSED;
    epoll_ctl(d->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    clear_queue(d, c);
    /* Group removal is an event of its own, after the current one. */
    c->next_pending = d->pending_disconnect;
    d->pending_disconnect = c;
}

/* Writes as much of c's queue as the socket takes. */
void spd_flush(spd_daemon *d, client *c)
{
    if (d->paused_all || (c->paused & SPD_PAUSE_DELIVERIES))
        return; /* written once resumed (the dirty list is kept meanwhile) */
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
            c->fig.delivered++;
            c->fig.delivered_bytes += m->len;
            d->tot.delivered++;
            d->tot.delivered_bytes += m->len;
            d->tot.queued_messages--;
            d->tot.queued_bytes -= m->len;
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
            spd_flush(d, c); /* no list: write now */
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
        spd_flush(d, c);
    if (c->state != CL_OPEN)
        return;
    if (queue_full(d, c)) {
        spd_kill_slow_reader(d, c);
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
    c->fig.queued_total++;
    d->tot.queued_total++;
    d->tot.queued_messages++;
    d->tot.queued_bytes += m->len;
    if (c->q_count > c->fig.peak_messages)
        c->fig.peak_messages = c->q_count;
    if (c->q_bytes > c->fig.peak_bytes)
        c->fig.peak_bytes = c->q_bytes;
    if (c->q_count > d->tot.peak_messages)
        d->tot.peak_messages = c->q_count;
    if (c->q_bytes > d->tot.peak_bytes)
        d->tot.peak_bytes = c->q_bytes;
    if (!c->lagging && past_lag_mark(d, c))
        set_lagging(d, c, 1);
    mark_dirty(d, c);
}

void spd_kill_slow_reader(spd_daemon *d, client *c)
{
    spd_log(d, SPD_LOG_INFO,
            "killing connection %llu (%.*s) for not reading (%zu messages, %zu bytes queued)",
            c->id, (int)c->private_group_len, (const char *)c->private_group, c->q_count,
            c->q_bytes);
    spd_kill(d, c, "not reading");
}

void spd_flush_dirty(spd_daemon *d)
{
    if (d->paused_all)
        return;
    for (size_t i = 0; i < d->n_dirty; i++) {
        client *c = d->dirty[i];
        c->dirty = 0;
        if (c->state == CL_OPEN)
            spd_flush(d, c);
    }
    d->n_dirty = 0;
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
