/* receiver_wait.c -- consumers: spr_wait, and taking what arrived off the
 * socket themselves when they are woken for it (spr_help, take_woken). */
#include "receiver_internal.h"

#include <errno.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>

/* A consumer takes what has arrived: the number of messages, or -1 when
 * the drain thread is at the socket. */
static int help_take(spr_receiver *r)
{
    int took = 0;
    if (pthread_mutex_trylock(&r->produce_lock) != 0)
        return -1;
    pthread_mutex_lock(&r->lock);
    int ok = may_produce(r) && !r->closing && r->thread_running;
    pthread_mutex_unlock(&r->lock);
    if (ok)
        took = spr_take_arrived(r, BY_HELPER);
    pthread_mutex_unlock(&r->produce_lock);
    return took > 0 ? took : 0;
}

int spr_help(spr_receiver *r)
{
    return help_take(r) > 0;
}

/* Bytes the kernel holds for the socket, or -1. */
static int unread(int fd)
{
    int n = 0;
    return ioctl(fd, FIONREAD, &n) == 0 ? n : -1;
}

static void nudge_drain(spr_receiver *r)
{
    uint64_t one = 1;
    ssize_t w = write(r->nudge_fd, &one, sizeof one);
    (void)w;
}

/* A consumer woken for data on the socket takes it. The kernel woke no one
 * else for that data, so whatever the consumer leaves (more than it took,
 * the drain thread already at the socket, a message larger than
 * read-ahead, an end) goes to the drain thread with a nudge: otherwise a
 * full socket, with no more arrivals to wake anyone, would stall the
 * daemon. Part of a message read ahead needs none: the rest wakes whoever
 * waits then. Returns whether the consumer goes on watching the socket
 * for the rest of its wait. */
static int take_woken(spr_receiver *r, int ended)
{
    int took = help_take(r), watch = 1;
    pthread_mutex_lock(&r->lock);
    if (took >= SOCKET_GAIN) {
        r->socket_misses = r->socket_backoff = 0;
    } else if (++r->socket_misses >= SOCKET_MISSES) {
        r->socket_misses = 0;
        r->socket_pause = SOCKET_PAUSE << r->socket_backoff;
        if (r->socket_backoff < SOCKET_BACKOFF_MAX)
            r->socket_backoff++;
        watch = 0; /* what comes now wakes the drain thread */
    }
    pthread_mutex_unlock(&r->lock);
    if (took < 0 || ended || unread(r->mbox) != 0 || (took > 0 && buffered(r))) {
        nudge_drain(r);
        return 0;
    }
    return watch;
}

int spr_wait(spr_receiver *r, int timeout_ms)
{
    pthread_mutex_lock(&r->lock);
    if (has_news(r)) {
        pthread_mutex_unlock(&r->lock);
        return 1;
    }
    int watch_socket = r->consumer_ep >= 0, res, stale = 0, timed_out = 0;
    if (watch_socket && r->socket_pause > 0) {
        r->socket_pause--;
        watch_socket = 0;
    }
    r->consumers_waiting++;
    int64_t deadline = timeout_ms < 0 ? 0 : now_ns() + (int64_t)timeout_ms * 1000000;
    for (;;) { /* the lock is held here */
        /* Clear the signal, then look at the queue (see ready_changed). The
         * descriptor can be readable with the flag clear (a write that came
         * after the last clear): a wake-up for nothing says so. */
        if (!r->fileno_exported && (atomic_exchange(&r->ready_signalled, 0) || stale))
            set_ready(r, 0);
        int ready = has_news(r);
        pthread_mutex_unlock(&r->lock);
        if (ready || timed_out) {
            res = ready;
            break;
        }
        int ms = timeout_ms;
        if (timeout_ms >= 0) {
            int64_t left = deadline - now_ns();
            ms = left <= 0 ? 0 : (int)((left + 999999) / 1000000);
        }
        int n, e, sock = 0, ended = 0;
        if (watch_socket) {
            struct epoll_event ev[2];
            n = epoll_wait(r->consumer_ep, ev, 2, ms);
            e = errno;
            for (int i = 0; i < n; i++) {
                if (ev[i].data.fd == r->mbox) {
                    sock = 1;
                    ended = (ev[i].events & (EPOLLHUP | EPOLLERR)) != 0;
                }
            }
        } else {
            struct pollfd p = {r->ready_fd, POLLIN, 0};
            n = poll(&p, 1, ms);
            e = errno;
        }
        if (n < 0) {
            res = e == EINTR ? -1 : 1;
            break;
        }
        if (sock)
            watch_socket = take_woken(r, ended);
        stale = n > 0 && !sock;
        timed_out = timeout_ms >= 0 && now_ns() >= deadline;
        pthread_mutex_lock(&r->lock);
    }
    pthread_mutex_lock(&r->lock);
    r->consumers_waiting--;
    pthread_mutex_unlock(&r->lock);
    return res;
}
