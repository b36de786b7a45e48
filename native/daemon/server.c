/* server.c -- the daemon's event loop: accepting connections, reading and
 * checking requests (SPEC.md 8.2) and dispatching them, the pause budget of
 * back-pressure (queue.c), disconnects, and opening and closing the daemon.
 * The control channel (control.c) is served from this loop too: its
 * descriptors sit in an epoll set of their own, nested in both of the
 * loop's, which is all the loop watches while the daemon is paused.
 * The handshake is in handshake.c, groups and delivery in groups.c, the
 * listening sockets in listen.c, output queues in queue.c. */
#include "internal.h"
#include "spx.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

/* The daemon takes everything our bindings send (and more: the documented limit). */
_Static_assert(WIRE_DAEMON_MAX_TOTAL >= SPX_MAX_SAFE_BODY, "the daemon takes what bindings send");

#define TAG_TCP      ((void *)1)
#define TAG_UNIX     ((void *)2)
#define TAG_STOP     SPD_TAG_STOP
#define TAG_CTL      ((void *)4)
#define PAUSE_REFILL 10 /* the pause budget refills at 1/10 of elapsed time */

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
    if (d->paused_all)
        return; /* the dirty list may name them: freed once resumed */
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
    uint32_t kinds = h->type &
                     (WIRE_SERVICE_BITS | WIRE_JOIN_MESS | WIRE_LEAVE_MESS | WIRE_KILL_MESS);
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
    c->fig.requests++;
    d->tot.requests++;
    if (h->type & WIRE_KILL_MESS) {
        c->client_ended = 1;
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
    c->fig.multicasts++;
    d->tot.multicasts++;
    spd_deliver(d, c, h, groups, data);
}

static void process_requests(spd_daemon *d, client *c);

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
        c->client_ended = 1;
        spd_kill(d, c, n == 0 ? "end of file" : "read failed");
        return;
    }
    c->in_len += (size_t)n;
    process_requests(d, c);
}

/* Whether back-pressure holds requests now: a reader lags and the budget
 * is not spent (see update_pause). */
static int holding(const spd_daemon *d)
{
    return d->n_lagging > 0 && d->pause_budget_ns > 0;
}

static void process_requests(spd_daemon *d, client *c)
{
    size_t at = 0;
    while (c->state == CL_OPEN && c->in_len - at >= WIRE_HEADER_SIZE) {
        /* Requests already read wait too, while back-pressure holds or
         * this session's requests are paused: run_backlog takes them up. */
        if (holding(d) || (c->paused & SPD_PAUSE_REQUESTS)) {
            c->backlog = 1;
            d->has_backlog = 1;
            break;
        }
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

/* The requests held back by process_requests, once they may go on. */
static void run_backlog(spd_daemon *d)
{
    d->has_backlog = 0;
    for (client *c = d->all; c; c = c->all_next) {
        if (c->backlog && c->state == CL_OPEN) {
            c->backlog = 0;
            process_requests(d, c); /* may hold them back again */
        }
    }
    spd_flush_dirty(d);
    process_disconnects(d);
    spd_flush_dirty(d);
    free_closed(d);
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
        spd_tune_socket(fd, is_tcp);
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
        d->cfg.max_session_messages = SPD_DEFAULT_MAX_SESSION_MESSAGES;
    if (d->cfg.max_session_bytes <= 0)
        d->cfg.max_session_bytes = SPD_DEFAULT_MAX_SESSION_BYTES;
    if (d->cfg.slow_reader_budget < 0 || d->cfg.slow_reader_budget > SPD_MAX_SLOW_READER_BUDGET)
        return "slow_reader_budget must be 0..60000 ms (0 turns back-pressure off)";
    d->budget_ns = d->cfg.slow_reader_budget * 1000000LL;
    if (!d->cfg.tcp && !d->cfg.unix_socket)
        return "nothing to listen on: TCP and the unix socket are both turned off "
               "(keep at least one)";
    if (d->cfg.port < 0 || d->cfg.port > 32767)
        return "port must be 0..32767, the range clients accept (0 picks a free one)";
    const char *name = d->cfg.name && *d->cfg.name ? d->cfg.name : SPD_DEFAULT_NAME;
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

void spd_default_config(spd_config *out)
{
    memset(out, 0, sizeof *out);
    out->port = SPD_DEFAULT_PORT;
    out->host = SPD_DEFAULT_HOST;
    out->name = SPD_DEFAULT_NAME;
    out->max_session_messages = SPD_DEFAULT_MAX_SESSION_MESSAGES;
    out->max_session_bytes = SPD_DEFAULT_MAX_SESSION_BYTES;
    out->slow_reader_budget = SPD_DEFAULT_SLOW_READER_BUDGET;
    out->tcp = 1;
    out->unix_socket = 1;
    out->log_level = SPD_DEFAULT_LOG_LEVEL;
    out->control = NULL;
    out->control_fd = -1;
}

spd_daemon *spd_open(const spd_config *config, char *err, int err_size)
{
    spd_daemon *d = calloc(1, sizeof *d);
    if (!d) {
        snprintf(err, (size_t)err_size, "out of memory");
        return NULL;
    }
    d->cfg = *config;
    d->tcp_fd = d->unix_fd = d->epfd = d->out_epfd = d->ctl_epfd = d->ctl_fd = -1;
    const char *bad = check_config(d);
    if (bad) {
        snprintf(err, (size_t)err_size, "%s", bad);
        if (d->cfg.control_fd > 0)
            close(d->cfg.control_fd); /* the daemon's to close, in every case */
        free(d);
        return NULL;
    }
    d->memb_id[0] = 0x7F000001;
    d->memb_id[1] = (int32_t)(time(NULL) + 1);
    d->rng = (unsigned int)time(NULL) ^ (unsigned int)getpid();
    d->epfd = epoll_create1(EPOLL_CLOEXEC);
    d->out_epfd = epoll_create1(EPOLL_CLOEXEC);
    d->ctl_epfd = epoll_create1(EPOLL_CLOEXEC);
    if (d->epfd < 0 || d->out_epfd < 0 || d->ctl_epfd < 0 ||
        watch(d->epfd, d->ctl_epfd, TAG_CTL) != 0 ||
        watch(d->out_epfd, d->ctl_epfd, TAG_CTL) != 0) {
        snprintf(err, (size_t)err_size, "epoll: %s", strerror(errno));
        spd_close(d);
        return NULL;
    }
    if (spd_control_open(d, err, err_size) != 0) {
        spd_close(d);
        return NULL;
    }
    int r = spd_listen(d, err, err_size);
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

int spd_control_port(const spd_daemon *d)
{
    return d->ctl_port;
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
    if ((!d->n_handshaking && !d->n_lingering) || d->paused_all)
        return;
    for (client *c = d->all; c; c = c->all_next) {
        if (c->state == CL_CONNECT || c->state == CL_AUTH || c->state == CL_LINGER) {
            spd_handshake_check_time(d, c);
            if (c->state == CL_OPEN)
                process_requests(d, c); /* any sent behind the handshake */
        }
    }
    spd_flush_dirty(d);
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
    if (d->paused)
        d->tot.backpressure_ns += elapsed;
    d->pause_budget_ns += d->paused ? -elapsed : elapsed / PAUSE_REFILL;
    if (d->pause_budget_ns > d->budget_ns)
        d->pause_budget_ns = d->budget_ns;
    int paused = d->n_lagging > 0 && d->pause_budget_ns > 0;
    if (paused && !d->paused)
        d->tot.backpressure_pauses++;
    d->paused = paused;
    return d->paused;
}

int spd_run(spd_daemon *d, int stop_fd)
{
    clock_gettime(CLOCK_MONOTONIC, &d->pause_stamp);
    d->pause_budget_ns = d->budget_ns;
    if (stop_fd >= 0 && watch(d->ctl_epfd, stop_fd, TAG_STOP) != 0)
        return -1;
    struct epoll_event events[256];
    spd_log(d, SPD_LOG_INFO, "serving as %s on port %d", d->name, d->cfg.port);
    for (;;) {
        if (d->paused_all) {
            /* Hung, as far as clients can tell: only the control channel
             * (and the stop fd) is served. Kills it asks for are queued;
             * nothing is written, and nothing freed (the dirty list may
             * name a connection), until it resumes. */
            if (spd_control_serve(d, 100))
                goto stop;
            process_disconnects(d);
            if (!d->paused_all) {
                clock_gettime(CLOCK_MONOTONIC, &d->pause_stamp);
                spd_flush_dirty(d);
                process_disconnects(d);
                spd_flush_dirty(d);
                free_closed(d);
            }
            continue;
        }
        int paused = update_pause(d);
        if (!paused && d->has_backlog) {
            run_backlog(d);
            paused = update_pause(d);
        }
        int n = epoll_wait(paused ? d->out_epfd : d->epfd, events, 256, paused ? 5 : 100);
        if (n < 0 && errno != EINTR)
            return -1;
        for (int i = 0; i < n; i++) {
            void *tag = events[i].data.ptr;
            if (tag == TAG_STOP)
                goto stop;
            if (tag == TAG_CTL) {
                if (spd_control_serve(d, 0))
                    goto stop;
                process_disconnects(d);
                continue;
            }
            if (tag == TAG_TCP || tag == TAG_UNIX) {
                accept_clients(d, tag == TAG_TCP ? d->tcp_fd : d->unix_fd, tag == TAG_TCP);
                continue;
            }
            client *c = tag;
            if (c->state == CL_CLOSED)
                continue;
            if (events[i].events & EPOLLOUT)
                spd_flush(d, c);
            if (c->state == CL_CLOSED || !(events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                continue;
            if (c->state == CL_OPEN) {
                if (c->paused & SPD_PAUSE_REQUESTS) {
                    /* Hung up or failed while its requests are paused. */
                    c->client_ended = 1;
                    spd_kill(d, c, "end of file");
                } else {
                    read_requests(d, c);
                }
            } else {
                spd_handshake_input(d, c);
                if (c->state == CL_OPEN)
                    process_requests(d, c); /* any sent behind the handshake */
            }
            process_disconnects(d);
        }
        spd_control_timers(d); /* scheduled network events, flushed with the rest */
        spd_flush_dirty(d);
        process_disconnects(d);
        spd_flush_dirty(d);
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
    d->paused_all = 0;
    for (client *c = d->all; c; c = c->all_next)
        spd_kill(d, c, "daemon stopping");
    process_disconnects(d);
    free_closed(d);
    spd_close_listeners(d);
    spd_control_close(d);
    if (d->cfg.control_fd > 0) /* not served yet: spd_open failed before */
        close(d->cfg.control_fd);
    if (d->epfd >= 0)
        close(d->epfd);
    if (d->out_epfd >= 0)
        close(d->out_epfd);
    if (d->ctl_epfd >= 0)
        close(d->ctl_epfd);
    spd_table_free(&d->names);
    spd_table_free(&d->groups);
    spd_remote_free(d->remote);
    free(d->dirty);
    free(d);
}
