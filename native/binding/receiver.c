/* receiver.c -- see receiver.h: starting, closing and freeing a receiver
 * (receiver_internal.h lists its other parts). */
#include "receiver_internal.h"

#include <errno.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

static int watch(int ep, int fd, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.fd = fd};
    return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
}

/* Sets up consumer_ep and drain_ep (see struct spr_receiver), the consumers'
 * watch on the socket first; without them (EPOLLEXCLUSIVE needs Linux 4.5)
 * the drain thread alone watches the socket, with poll. */
static void watch_exclusively(spr_receiver *r)
{
    r->consumer_ep = epoll_create1(EPOLL_CLOEXEC);
    r->drain_ep = epoll_create1(EPOLL_CLOEXEC);
    if (r->consumer_ep < 0 || r->drain_ep < 0 ||
        watch(r->consumer_ep, r->mbox, EPOLLIN | EPOLLEXCLUSIVE) != 0 ||
        watch(r->consumer_ep, r->ready_fd, EPOLLIN) != 0 ||
        watch(r->drain_ep, r->mbox, EPOLLIN | EPOLLEXCLUSIVE) != 0 ||
        watch(r->drain_ep, r->wake_fd, EPOLLIN) != 0 ||
        watch(r->drain_ep, r->nudge_fd, EPOLLIN) != 0) {
        if (r->consumer_ep >= 0)
            close(r->consumer_ep);
        if (r->drain_ep >= 0)
            close(r->drain_ep);
        r->consumer_ep = r->drain_ep = -1;
    }
}

spr_receiver *spr_start(mailbox mbox, const spr_library *lib, size_t max_backlog_bytes,
                        int on_overflow, int *err)
{
    spr_receiver *r = calloc(1, sizeof *r);
    if (!r) {
        *err = ENOMEM;
        return NULL;
    }
    r->mbox = mbox;
    r->lib = *lib;
    r->max_backlog = max_backlog_bytes;
    r->on_overflow = on_overflow;
    r->ready_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    r->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    r->nudge_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    r->consumer_ep = r->drain_ep = -1;
    /* Adaptive: the drain thread and consumers take these briefly and often
     * from different CPUs; a short spin beats going to sleep on a futex. */
    pthread_mutexattr_t spin;
    pthread_mutexattr_init(&spin);
    pthread_mutexattr_settype(&spin, PTHREAD_MUTEX_ADAPTIVE_NP);
    pthread_mutex_init(&r->lock, &spin);
    pthread_cond_init(&r->space, NULL);
    pthread_mutex_init(&r->produce_lock, &spin);
    pthread_mutexattr_destroy(&spin);
    r->max_groups = FIRST_GROUPS;
    r->need_room = MIN_ROOM;
    r->groups = malloc((size_t)r->max_groups * MAX_GROUP_NAME);
    r->head = r->tail = spr_block_new(r, BLOCK_SIZE);
    if (r->ready_fd < 0 || r->wake_fd < 0 || r->nudge_fd < 0 || !r->head || !r->groups) {
        *err = r->head ? errno : ENOMEM;
        spr_free(r);
        return NULL;
    }
    /* Keep the descriptor ours while the thread uses it (native library). */
    if (r->lib.hold && r->lib.hold(mbox) != 0) {
        *err = EBADF;
        r->lib.release = NULL;
        spr_free(r);
        return NULL;
    }
    if (r->lib.records) /* consumers can take what arrived without waiting */
        watch_exclusively(r);
    int e = pthread_create(&r->thread, NULL, spr_drain, r);
    if (e != 0) {
        *err = e;
        spr_free(r);
        return NULL;
    }
    pthread_setname_np(r->thread, "spread-drain"); /* for top -H, perf, py-spy */
    r->thread_running = 1;
    return r;
}

/* What a close does once the drain thread has stopped. */
void spr_finish_close(spr_receiver *r)
{
    spr_end_with(r, SPR_CLOSED, 0);
    if (r->lib.release) {
        r->lib.release(r->mbox);
        r->lib.release = NULL;
    }
}

/* How long a close waits for a drain thread that is inside a message (its
 * rest may never come), in slices that also see a thread that was merely
 * not scheduled: that one is waited for, however long the machine takes. */
#define CLOSE_WAIT_NS  200000000LL
#define CLOSE_SLICE_NS 10000000LL

static int join_within(pthread_t t, long long ns)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    ns += until.tv_nsec;
    until.tv_sec += (time_t)(ns / 1000000000LL);
    until.tv_nsec = (long)(ns % 1000000000LL);
    return pthread_timedjoin_np(t, NULL, &until) == 0;
}

void spr_close(spr_receiver *r)
{
    if (!r->thread_running)
        return;
    pthread_mutex_lock(&r->lock);
    r->closing = 1;
    r->thread_running = 0;
    pthread_cond_broadcast(&r->space);
    pthread_mutex_unlock(&r->lock);
    uint64_t one = 1;
    ssize_t w = write(r->wake_fd, &one, sizeof one);
    (void)w;
    long long stuck = 0; /* time seen inside one read, in slices */
    while (!join_within(r->thread, CLOSE_SLICE_NS)) {
        if (!atomic_load_explicit(&r->in_read, memory_order_relaxed)) {
            stuck = 0; /* waiting for a CPU, a lock, or to see the wake-up */
            continue;
        }
        stuck += CLOSE_SLICE_NS;
        if (stuck < CLOSE_WAIT_NS)
            continue;
        /* Still reading a message whose rest has not come: leave it the close. */
        pthread_mutex_lock(&r->lock);
        int done = r->thread_done;
        if (!done)
            r->detached = 1;
        pthread_mutex_unlock(&r->lock);
        if (!done) {
            pthread_detach(r->thread);
            return;
        }
        pthread_join(r->thread, NULL); /* it ended just now, without taking over */
        break;
    }
    spr_finish_close(r);
}

void spr_free(spr_receiver *r)
{
    if (!r)
        return;
    spr_close(r);
    pthread_mutex_lock(&r->lock);
    int thread_owns = r->detached && !r->thread_done;
    if (thread_owns)
        r->freed = 1;
    pthread_mutex_unlock(&r->lock);
    if (!thread_owns)
        spr_destroy(r);
}

void spr_destroy(spr_receiver *r)
{
    if (r->lib.release)
        r->lib.release(r->mbox);
    free_chain(r->head);
    free_chain(r->raw_head);
    for (int i = 0; i < r->n_spare; i++)
        free(r->spare[i]);
    if (r->ready_fd >= 0)
        close(r->ready_fd);
    if (r->wake_fd >= 0)
        close(r->wake_fd);
    if (r->nudge_fd >= 0)
        close(r->nudge_fd);
    if (r->consumer_ep >= 0)
        close(r->consumer_ep);
    if (r->drain_ep >= 0)
        close(r->drain_ep);
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->space);
    pthread_mutex_destroy(&r->produce_lock);
    free(r->groups);
    free(r);
}
