/* receiver_drain.c -- the drain thread: waits for data, takes it off the
 * socket into the tail block (many records per call from our library, one
 * message through SP_receive otherwise), and naps while messages trickle. */
#include "receiver_internal.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>

/* Waits until the mailbox has data (1) or the receiver is told to stop (0). */
static int wait_for_data(spr_receiver *r)
{
    if (r->drain_ep >= 0) {
        struct epoll_event ev[3];
        for (;;) {
            int n = epoll_wait(r->drain_ep, ev, 3, -1);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                return 0;
            int data = 0;
            for (int i = 0; i < n; i++) {
                if (ev[i].data.fd == r->wake_fd)
                    return 0;
                if (ev[i].data.fd == r->nudge_fd) {
                    uint64_t v;
                    ssize_t got = read(r->nudge_fd, &v, sizeof v);
                    (void)got;
                }
                data = 1; /* the socket (data, hang-up or error), or a nudge to look */
            }
            if (data)
                return 1;
        }
    }
    struct pollfd p[2] = {{r->mbox, POLLIN, 0}, {r->wake_fd, POLLIN, 0}};
    for (;;) {
        int n = poll(p, 2, -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || (p[1].revents & POLLIN))
            return 0;
        if (p[0].revents)
            return 1; /* data, hang-up or error: SP_receive reports which */
    }
}

/* One message through SP_receive into the record at m (room bytes): its
 * payload in place, its groups through a side array. BUFFER_TOO_SHORT and
 * GROUPS_TOO_SHORT leave it pending, with *need_room (and the side array)
 * grown to take it. */
static int receive_one(spr_receiver *r, spr_msg *m, size_t room, char (**groups)[MAX_GROUP_NAME],
                       int *max_groups, size_t *need_room)
{
    size_t groups_room = (size_t)*max_groups * MAX_GROUP_NAME;
    size_t data_room = room > sizeof *m + groups_room + 8 ? room - sizeof *m - groups_room - 8 : 0;
    service svc = 0;
    int ng = 0, endian = 0;
    int16 mt = 0;
    int n = r->lib.receive(r->mbox, &svc, m->sender, *max_groups, &ng, *groups, &mt, &endian,
                           data_room > 0x7fffffff ? 0x7fffffff : (int)data_room, (char *)(m + 1));
    if (n == BUFFER_TOO_SHORT || n == GROUPS_TOO_SHORT) {
        if (ng < -*max_groups) {
            void *g = realloc(*groups, (size_t)(-ng) * MAX_GROUP_NAME);
            if (!g)
                return ILLEGAL_MESSAGE;
            *groups = g;
            *max_groups = -ng;
        }
        size_t data = endian < 0 ? (size_t)(-endian) : data_room;
        /* The record, plus the 8 bytes of slack data_room keeps and 8 more. */
        *need_room = spx_record_size(data, (size_t)*max_groups) + 16;
        return n;
    }
    if (n == ILLEGAL_MESSAGE && Is_membership_mess(svc)) {
        /* Our library refuses (and consumes) a membership whose body does not
         * fit its type; queue it bodiless so that the binding's decoder
         * refuses it in its turn, alone, instead of ending the stream. */
        n = 0;
        ng = 0;
    } else if (n < 0) {
        return n;
    }
    m->service = svc;
    m->data_len = n;
    m->num_groups = ng;
    m->endian = endian;
    m->mess_type = mt;
    spx_record_place_inline(m, (size_t)n);
    memcpy((char *)m->groups, *groups, (size_t)ng * MAX_GROUP_NAME);
    m->size = (uint32_t)spx_record_size((size_t)n, (size_t)ng);
    return n;
}

/* Is a message (or part of one) waiting, so that taking it will not wait long? */
static int data_waiting(spr_receiver *r)
{
    if (r->lib.pending && r->lib.pending(r->mbox) > 0)
        return 1;
    struct pollfd p = {r->mbox, POLLIN, 0};
    return poll(&p, 1, 0) > 0;
}

/* Keeps a raw block with room lent to the library as its read-ahead memory,
 * while emptied blocks come back for reuse; the caller holds produce_lock.
 * While the backlog grows into fresh memory, nothing is lent: then the
 * kernel copies into the library's small, hot buffer and records carry
 * their payloads, which measured much faster there than the kernel's copy
 * into fresh memory (a real daemon killed a reader whose backlog kept
 * growing). 0, or the error to end with. */
static int keep_lent(spr_receiver *r)
{
    if (r->lending && r->lib.lent_room(r->mbox) >= (int)MIN_RAW_ROOM)
        return 0;
    pthread_mutex_lock(&r->lock);
    int recycled = r->n_spare > 0;
    pthread_mutex_unlock(&r->lock);
    if (!recycled && !r->lending)
        return 0;
    spr_block *b = recycled ? spr_block_new(r, BLOCK_SIZE) : NULL;
    int e = b ? r->lib.lend(r->mbox, b->data, (int)b->size) : r->lib.lend(r->mbox, NULL, 0);
    if (e != 0) {
        free(b);
        return e;
    }
    pthread_mutex_lock(&r->lock);
    if (r->raw_tail && r->lending)
        r->raw_tail->last_seq = r->st.received; /* later records point elsewhere */
    if (b) {
        b->last_seq = ULLONG_MAX;
        if (r->raw_tail)
            r->raw_tail->next = b;
        else
            r->raw_head = b;
        r->raw_tail = b;
    }
    r->lending = b != NULL;
    pthread_mutex_unlock(&r->lock);
    return 0;
}

/* produce(): nothing has arrived (our library only: with the bare one,
 * callers poll first). */
#define NOTHING_YET (-2)

/* Takes what the socket has into the tail block and queues it; the caller
 * holds produce_lock. The number of messages queued, 0: try again,
 * NOTHING_YET, -1: the receiver ended. */
static int produce(spr_receiver *r, int who)
{
    if (r->stopped)
        return 0;
    if (r->lib.lend) {
        int e = keep_lent(r);
        if (e != 0) {
            spr_end_with(r, SPR_FAILED, e);
            return -1;
        }
    }
    spr_block *cur = r->tail; /* only producers change the tail */
    if (cur->size - cur->used < r->need_room) {
        spr_block *b = spr_block_new(r, r->need_room);
        if (!b) {
            spr_end_with(r, SPR_FAILED, ILLEGAL_MESSAGE);
            return -1;
        }
        pthread_mutex_lock(&r->lock);
        cur->next = b; /* seals cur: nothing more is written to it */
        r->tail = b;
        pthread_mutex_unlock(&r->lock);
        cur = b;
        r->need_room = MIN_ROOM;
    }
    /* Receive straight into the block: many records per call from our
     * library, else one message at a time through SP_receive. */
    size_t room = cur->size - cur->used;
    int count = 0, used = 0, n;
    if (r->lib.records) {
        n = r->lib.records(r->mbox, cur->data + cur->used,
                           room > 0x7fffffff ? 0x7fffffff : (int)room, &used,
                           who == BY_HELPER ? SPX_NOWAIT_AT_ALL : SPX_NOWAIT_START);
        if (n == BUFFER_TOO_SHORT) {
            r->need_room = (size_t)(-used);
            return 0; /* still pending: take it into a larger block */
        }
        count = n;
    } else {
        n = receive_one(r, (spr_msg *)(cur->data + cur->used), room, &r->groups, &r->max_groups,
                        &r->need_room);
        if (n == BUFFER_TOO_SHORT || n == GROUPS_TOO_SHORT)
            return 0;
        if (n >= 0) {
            count = 1;
            used = (int)((spr_msg *)(cur->data + cur->used))->size;
        }
    }
    if (n == SPX_INTERRUPTED)
        return 0; /* nothing consumed */
    if (n == SPX_WOULD_BLOCK)
        return NOTHING_YET;
    if (n < 0) {
        spr_end_with(r, SPR_FAILED, n);
        return -1;
    }
    size_t bytes = 0;
    for (int off = 0, i = 0; i < count; i++) {
        const spr_msg *m = (const spr_msg *)(cur->data + cur->used + off);
        bytes += (size_t)m->data_len;
        off += (int)m->size;
    }
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    pthread_mutex_lock(&r->lock);
    r->st.last_at = (double)now.tv_sec + (double)now.tv_nsec / 1e9;
    if (r->st.received == 0)
        r->st.first_at = r->st.last_at;
    /* Release: a consumer peeking without the lock sees the records first. */
    atomic_store_explicit(&cur->used, cur->used + (size_t)used, memory_order_release);
    r->st.received += (unsigned long long)count;
    if (who != BY_DRAIN)
        r->st.received_by_consumers += (unsigned long long)count;
    r->st.backlog_messages += (size_t)count;
    r->st.backlog_bytes += bytes;
    if (r->st.backlog_messages > r->st.peak_messages)
        r->st.peak_messages = r->st.backlog_messages;
    if (r->st.backlog_bytes > r->st.peak_bytes)
        r->st.peak_bytes = r->st.backlog_bytes;
    int signal = ready_changed(r);
    int over = r->on_overflow == SPR_OVERFLOW_DISCONNECT && r->max_backlog &&
               r->st.backlog_bytes > r->max_backlog;
    pthread_mutex_unlock(&r->lock);
    ready_signal(r, signal);
    if (over) {
        /* Never a silent drop: stop here, leave the daemon cleanly, and let
         * the consumer see the overflow after what is queued. */
        r->lib.disconnect(r->mbox);
        spr_end_with(r, SPR_OVERFLOWED, 0);
        return -1;
    }
    return count > 0 ? count : 1;
}

/* Takes what has arrived, never waiting for a message to start (where
 * close() could not wake us): our library says when nothing has come, the
 * bare one is asked with a poll first. The caller holds produce_lock.
 * Messages queued, 0 none, -1 the receiver ended. */
int spr_take_arrived(spr_receiver *r, int who)
{
    if (!r->lib.records && !data_waiting(r))
        return 0;
    /* (whoever reads holds produce_lock: a close that finds the drain
     * thread waiting for it is held up by this read as much) */
    atomic_store_explicit(&r->in_read, 1, memory_order_relaxed);
    int res = produce(r, who);
    atomic_store_explicit(&r->in_read, 0, memory_order_relaxed);
    return res == NOTHING_YET ? 0 : res;
}

typedef struct {
    int64_t last_small; /* when a read last found NAP_SMALL messages or fewer */
    int napped;         /* the read before this one was followed by a nap */
    int skip;           /* small reads left before napping again */
    int backoff;        /* naps in a row that gathered nothing */
} nap_state;

/* After the drain thread's read found `took` messages (see NAP_NS). */
static void nap_if_trickling(nap_state *n, int took)
{
    if (n->napped && took <= NAP_SMALL) { /* the nap gathered nothing more */
        n->skip = NAP_SKIP << n->backoff;
        if (n->backoff < NAP_BACKOFF_MAX)
            n->backoff++;
    } else if (n->napped) {
        n->backoff = 0;
    }
    n->napped = 0;
    if (took > NAP_SMALL)
        return;
    int64_t t = now_ns();
    int stream = t - n->last_small < NAP_STREAM_NS;
    n->last_small = t;
    if (n->skip > 0) {
        n->skip--;
        return;
    }
    if (stream) {
        struct timespec ts = {0, NAP_NS};
        nanosleep(&ts, NULL);
        n->napped = 1;
    }
}

void *spr_drain(void *arg)
{
    spr_receiver *r = arg;
    nap_state nap = {0, 0, 0, 0};
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL); /* signals belong to the application */
    if (r->lib.readahead)
        r->lib.readahead(r->mbox, READAHEAD);
    for (;;) {
        pthread_mutex_lock(&r->lock);
        while (r->on_overflow == SPR_OVERFLOW_BLOCK && r->max_backlog &&
               r->st.backlog_bytes >= r->max_backlog && !r->closing) {
            r->space_waiting = 1;
            pthread_cond_wait(&r->space, &r->lock);
        }
        r->space_waiting = 0;
        int closing = r->closing, running = r->st.state == SPR_RUNNING;
        pthread_mutex_unlock(&r->lock);
        if (!running)
            break;
        /* Closing: first queue what read-ahead buffered, so that the socket
         * is left at a message boundary for whoever reads it next. */
        if (closing && !buffered(r))
            break;
        pthread_mutex_lock(&r->produce_lock);
        int res = spr_take_arrived(r, BY_DRAIN);
        pthread_mutex_unlock(&r->produce_lock);
        if (res < 0)
            break;
        if (res > 0 && r->lib.records) /* a bare SP_receive takes one at a time */
            nap_if_trickling(&nap, res);
        /* Nothing had arrived: wait (read-ahead may hold a part, then no).
         * Not after taking messages: what came meanwhile may have woken a
         * consumer instead (EPOLLEXCLUSIVE), so look first. */
        if (res == 0 && !buffered(r) && !wait_for_data(r))
            break;
    }
    /* Give the socket back as we found it: the library's own read-ahead
     * buffer takes what the lent memory still holds, then read-ahead stops
     * (what it holds is returned first by later receives). */
    pthread_mutex_lock(&r->produce_lock);
    r->stopped = 1;
    if (r->lib.lend)
        r->lib.lend(r->mbox, NULL, 0);
    if (r->lib.readahead)
        r->lib.readahead(r->mbox, 0);
    pthread_mutex_unlock(&r->produce_lock);
    /* Either spr_close is still to see thread_done (and does the close), or
     * it has detached us first: one decision, under the lock. */
    pthread_mutex_lock(&r->lock);
    int detached = r->detached;
    if (!detached)
        r->thread_done = 1;
    pthread_mutex_unlock(&r->lock);
    if (detached) {
        spr_finish_close(r);
        pthread_mutex_lock(&r->lock);
        r->thread_done = 1;
        int freed = r->freed;
        pthread_mutex_unlock(&r->lock);
        if (freed)
            spr_destroy(r); /* spr_free came first and left it to us */
    }
    return NULL;
}
