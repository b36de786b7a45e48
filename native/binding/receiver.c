/* receiver.c -- see receiver.h. */
#include "receiver.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

/* Queue storage comes in blocks of 2 MiB. (Not huge pages: backing a block
 * with one, the kernel zeroes 2 MiB inside the socket read that first
 * touches it, and a reader whose backlog grows falls behind a real daemon.) */
#define BLOCK_BYTES  (2u << 20)
#define BLOCK_SIZE   (BLOCK_BYTES - sizeof(spr_block)) /* data bytes in a standard block */
#define MIN_ROOM     (64u << 10)  /* start a new block when less than this is left */
#define MIN_RAW_ROOM (256u << 10) /* lend a new raw block when less than this is left */
#define FIRST_GROUPS 16
#define READAHEAD    (256 << 10)  /* bytes per system call with our library */
/* Emptied blocks are kept for reuse, since a fresh one costs the kernel
 * zeroing it (as much as the copy of the data into it): up to SPARE_BLOCKS,
 * so a backlog that keeps growing and shrinking by up to 32 MiB allocates
 * nothing; all but SPARE_KEEP go back once the queue runs empty a second
 * after the last block was taken. */
#define SPARE_BLOCKS 16
#define SPARE_KEEP   2
#define SPARE_IDLE_NS 1000000000
/* A waiting consumer reads the socket itself while that pays, that is while
 * its wake-ups find batches (SOCKET_GAIN messages or more). Where they find
 * a message or less each time (a daemon that writes each message in two
 * pieces, as Spread 4 does, or a trickle), the drain thread, which gathers
 * messages while the consumer is busy with the last ones, costs less: after
 * SOCKET_MISSES such wake-ups in a row, consumers leave the socket to the
 * drain thread for their next SOCKET_PAUSE waits, twice as many after each
 * try that fails again (up to 256 times as many). */
#define SOCKET_GAIN   4
#define SOCKET_MISSES 4
#define SOCKET_PAUSE  256
#define SOCKET_BACKOFF_MAX 8
/* Against a daemon that writes message by message (Spread 4: a header and a
 * body, each its own send), a drain thread that wakes for every arrival
 * spends more than twice a C reader's CPU on wake-ups (and wakes the
 * consumer as often). So when reads keep finding a message or two, each
 * soon after the last, the drain thread naps NAP_NS before reading again,
 * gathering several messages per wake-up. Once a nap no longer gathers
 * more, it stops napping for the next NAP_SKIP small reads, twice as many
 * after each nap that fails again (up to 64 times): a steady trickle, or a
 * request and its reply, gains nothing from naps and would only wait. */
#define NAP_SMALL    2          /* messages: a read this small may lead to a nap */
#define NAP_STREAM_NS 200000    /* ... if the last small read was this recent */
#define NAP_NS       30000
#define NAP_SKIP     64
#define NAP_BACKOFF_MAX 6

typedef struct spr_block {
    struct spr_block *next;
    size_t size, used;       /* used: committed bytes, under the lock */
    unsigned long long last_seq; /* raw blocks: records up to this count (received)
                                    may point into it; ULLONG_MAX while lent */
    char data[];
} spr_block;

struct spr_receiver {
    mailbox mbox;
    spr_library lib;
    size_t max_backlog;
    int on_overflow;
    int ready_fd;            /* eventfd: readable while messages are queued */
    int wake_fd;             /* eventfd: tells the thread to stop */
    /* Who is woken when data arrives (our library only; else -1). Both
     * epoll sets watch the socket with EPOLLEXCLUSIVE, the consumers' set
     * registered first: the kernel wakes the first exclusive watcher that
     * has a thread waiting. So a consumer waiting for messages is woken for
     * what arrives and takes it off the socket itself (one wake-up, where a
     * hand-over from the drain thread costs two), and the drain thread is
     * woken for data only while no consumer waits for it. */
    int consumer_ep;         /* socket + ready_fd, for spr_wait */
    int drain_ep;            /* socket + wake_fd + nudge_fd, for the drain thread */
    int nudge_fd;            /* eventfd: a consumer left data on the socket to the drain */
    int socket_misses;       /* consumer wake-ups in a row that found little (lock) */
    int socket_pause;        /* waits left that leave the socket to the drain (lock) */
    int socket_backoff;      /* pauses since a consumer's wake-up last paid (lock) */
    atomic_int ready_signalled; /* ready_fd made readable (see ready_changed) */
    atomic_int signals_pending; /* writes decided under the lock, not made yet */
    pthread_t thread;
    int thread_running;
    /* A close that finds the drain thread inside a message that stopped
     * arriving does not wait for it (spr_close): the thread is detached and
     * finishes the close itself once the read ends (the rest arrives, or the
     * connection goes), and frees the receiver if spr_free came first. All
     * three under the lock. */
    int detached, thread_done, freed;
    pthread_mutex_t lock;
    pthread_cond_t space;    /* the backlog shrank, or closing */
    /* Producing (taking messages off the socket into the tail block) is done
     * by the drain thread, or by a consumer that finds data waiting while the
     * drain thread waits for a CPU; produce_lock makes them take turns. */
    pthread_mutex_t produce_lock;
    int consumers_waiting;   /* consumers in spr_wait */
    int fileno_exported;     /* ready_fd has been handed out: keep it exact */
    char (*groups)[MAX_GROUP_NAME]; /* SP_receive's side array (bare library) */
    int max_groups;
    size_t need_room;
    int closing;
    spr_block *head, *tail;  /* consumer reads from head, producer writes to tail */
    spr_block *raw_head, *raw_tail; /* lent read-ahead memory, oldest first; the
                                       tail is the one lent now, if lending */
    int lending;
    int stopped;             /* no more producing (set under produce_lock) */
    size_t read_off;         /* consumer position in head */
    spr_block *spare[SPARE_BLOCKS]; /* emptied blocks kept for reuse */
    int n_spare;
    int64_t block_taken;     /* when the producer last started a block */
    spr_stats st;
};

static int64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static void free_chain(spr_block *b)
{
    while (b) {
        spr_block *next = b->next;
        free(b);
        b = next;
    }
}

static spr_block *block_new(spr_receiver *r, size_t need)
{
    size_t size = need > BLOCK_SIZE ? need : BLOCK_SIZE;
    spr_block *b = NULL;
    int64_t now = now_ns();
    pthread_mutex_lock(&r->lock);
    r->block_taken = now;
    for (int i = 0; i < r->n_spare; i++) {
        if (r->spare[i]->size >= size) {
            b = r->spare[i];
            r->spare[i] = r->spare[--r->n_spare];
            break;
        }
    }
    pthread_mutex_unlock(&r->lock);
    if (!b)
        b = malloc(sizeof *b + size);
    if (!b)
        return NULL;
    b->size = size;
    b->next = NULL;
    b->used = 0;
    return b;
}

/* Readability of ready_fd. Once the descriptor is handed out (spr_fileno)
 * it is exact, kept so under the lock: readable while messages are queued
 * or the receiver has ended. Otherwise only consumers waiting in spr_wait
 * look at it, and the system calls are made outside the lock (one made
 * under it, waking a consumer that then wanted the lock, put both threads
 * to sleep on it): a producer that finds consumers waiting sets
 * ready_signalled and, if it was clear, writes the descriptor after
 * unlocking; a waiting consumer clears both before it checks the queue
 * and sleeps, so a signal is either seen by that check or wakes it. */
/* Something for a consumer: messages queued, or the end. Under the lock. */
static int has_news(const spr_receiver *r)
{
    return r->st.backlog_messages > 0 || r->st.state != SPR_RUNNING;
}

static void set_ready(spr_receiver *r, int readable)
{
    if (readable) {
        uint64_t one = 1;
        ssize_t w = write(r->ready_fd, &one, sizeof one);
        (void)w;
    } else {
        uint64_t v;
        ssize_t n = read(r->ready_fd, &v, sizeof v);
        (void)n;
    }
}

/* Under the lock, after the queue or the state changed. Returns 1 when the
 * caller must make ready_fd readable once it has released the lock. */
static int ready_changed(spr_receiver *r)
{
    int want = has_news(r);
    if (r->fileno_exported) {
        if (want != atomic_load(&r->ready_signalled)) {
            set_ready(r, want);
            atomic_store(&r->ready_signalled, want);
        }
        return 0;
    }
    if (want && r->consumers_waiting > 0 && !atomic_exchange(&r->ready_signalled, 1)) {
        atomic_fetch_add(&r->signals_pending, 1);
        return 1;
    }
    return 0;
}

/* After the lock, with what ready_changed returned. */
static void ready_signal(spr_receiver *r, int signal)
{
    if (signal) {
        set_ready(r, 1);
        atomic_fetch_sub(&r->signals_pending, 1);
    }
}

static void end_with(spr_receiver *r, int state, int error)
{
    pthread_mutex_lock(&r->lock);
    if (r->st.state == SPR_RUNNING) {
        r->st.state = state;
        r->st.error = error;
    }
    int signal = ready_changed(r);
    pthread_mutex_unlock(&r->lock);
    ready_signal(r, signal);
}

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
                           data_room > 0x7fffffff ? 0x7fffffff : (int)data_room,
                           (char *)(m + 1));
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
    spr_block *b = recycled ? block_new(r, BLOCK_SIZE) : NULL;
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

/* Who takes messages off the socket: the drain thread, or a consumer that
 * helps in passing and must never wait (it may hold an interpreter lock). */
enum { BY_DRAIN, BY_HELPER };

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
            end_with(r, SPR_FAILED, e);
            return -1;
        }
    }
    spr_block *cur = r->tail; /* only producers change the tail */
    if (cur->size - cur->used < r->need_room) {
        spr_block *b = block_new(r, r->need_room);
        if (!b) {
            end_with(r, SPR_FAILED, ILLEGAL_MESSAGE);
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
        n = receive_one(r, (spr_msg *)(cur->data + cur->used), room, &r->groups,
                        &r->max_groups, &r->need_room);
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
        end_with(r, SPR_FAILED, n);
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
    cur->used += (size_t)used;
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
        end_with(r, SPR_OVERFLOWED, 0);
        return -1;
    }
    return count > 0 ? count : 1;
}

/* Takes what has arrived, never waiting for a message to start (where
 * close() could not wake us): our library says when nothing has come, the
 * bare one is asked with a poll first. The caller holds produce_lock.
 * Messages queued, 0 none, -1 the receiver ended. */
static int take_arrived(spr_receiver *r, int who)
{
    if (!r->lib.records && !data_waiting(r))
        return 0;
    int res = produce(r, who);
    return res == NOTHING_YET ? 0 : res;
}

static int buffered(spr_receiver *r)
{
    return r->lib.pending && r->lib.pending(r->mbox) > 0;
}

/* May the receiver take more now? Under r->lock. */
static int may_produce(const spr_receiver *r)
{
    return r->st.state == SPR_RUNNING &&
           !(r->on_overflow == SPR_OVERFLOW_BLOCK && r->max_backlog &&
             r->st.backlog_bytes >= r->max_backlog);
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

static void finish_close(spr_receiver *r);
static void destroy(spr_receiver *r);

static void *drain(void *arg)
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
               r->st.backlog_bytes >= r->max_backlog && !r->closing)
            pthread_cond_wait(&r->space, &r->lock);
        int closing = r->closing, running = r->st.state == SPR_RUNNING;
        pthread_mutex_unlock(&r->lock);
        if (!running)
            break;
        /* Closing: first queue what read-ahead buffered, so that the socket
         * is left at a message boundary for whoever reads it next. */
        if (closing && !buffered(r))
            break;
        pthread_mutex_lock(&r->produce_lock);
        int res = take_arrived(r, BY_DRAIN);
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
        finish_close(r);
        pthread_mutex_lock(&r->lock);
        r->thread_done = 1;
        int freed = r->freed;
        pthread_mutex_unlock(&r->lock);
        if (freed)
            destroy(r); /* spr_free came first and left it to us */
    }
    return NULL;
}

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
        took = take_arrived(r, BY_HELPER);
    pthread_mutex_unlock(&r->produce_lock);
    return took > 0 ? took : 0;
}

int spr_help(spr_receiver *r)
{
    return help_take(r) > 0;
}

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
    r->head = r->tail = block_new(r, BLOCK_SIZE);
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
    int e = pthread_create(&r->thread, NULL, drain, r);
    if (e != 0) {
        *err = e;
        spr_free(r);
        return NULL;
    }
    pthread_setname_np(r->thread, "spread-drain"); /* for top -H, perf, py-spy */
    r->thread_running = 1;
    return r;
}

int spr_fileno(spr_receiver *r)
{
    pthread_mutex_lock(&r->lock);
    r->fileno_exported = 1; /* no more writes are left to after the lock */
    pthread_mutex_unlock(&r->lock);
    while (atomic_load(&r->signals_pending) > 0)
        sched_yield(); /* one decided before: let it land, then make it exact */
    pthread_mutex_lock(&r->lock);
    set_ready(r, 0);
    atomic_store(&r->ready_signalled, 0);
    ready_changed(r);
    pthread_mutex_unlock(&r->lock);
    return r->ready_fd;
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

int spr_peek(spr_receiver *r, const spr_msg **out, int max)
{
    int n = 0;
    pthread_mutex_lock(&r->lock);
    spr_block *b = r->head;
    size_t off = r->read_off;
    while (n < max && b) {
        if (off < b->used) {
            const spr_msg *m = (const spr_msg *)(b->data + off);
            out[n++] = m;
            off += m->size;
        } else {
            b = b->next;
            off = 0;
        }
    }
    pthread_mutex_unlock(&r->lock);
    return n;
}

void spr_consume(spr_receiver *r, int n)
{
    spr_block *to_free = NULL; /* freed after the lock: returning memory is slow */
    pthread_mutex_lock(&r->lock);
    size_t bytes = 0;
    while (n > 0 && r->head) {
        spr_block *b = r->head;
        if (r->read_off < b->used) {
            const spr_msg *m = (const spr_msg *)(b->data + r->read_off);
            bytes += (size_t)m->data_len;
            r->read_off += m->size;
            n--;
            r->st.backlog_messages--;
            r->st.delivered++;
        } else if (b->next) {
            r->head = b->next; /* sealed and fully read */
            r->read_off = 0;
            if (r->n_spare < SPARE_BLOCKS && b->size == BLOCK_SIZE) {
                r->spare[r->n_spare++] = b;
            } else {
                b->next = to_free;
                to_free = b;
            }
        } else {
            break;
        }
    }
    r->st.backlog_bytes -= bytes;
    /* Raw blocks whose records have all been taken, but for the one lent now. */
    while (r->raw_head && (r->raw_head != r->raw_tail || !r->lending) &&
           r->raw_head->last_seq <= r->st.delivered) {
        spr_block *b = r->raw_head;
        r->raw_head = b->next;
        if (!r->raw_head)
            r->raw_tail = NULL;
        if (r->n_spare < SPARE_BLOCKS && b->size == BLOCK_SIZE) {
            r->spare[r->n_spare++] = b;
        } else {
            b->next = to_free;
            to_free = b;
        }
    }
    if (r->st.backlog_messages == 0 && r->n_spare > SPARE_KEEP &&
        now_ns() - r->block_taken > SPARE_IDLE_NS) {
        while (r->n_spare > SPARE_KEEP) {
            spr_block *b = r->spare[--r->n_spare];
            b->next = to_free;
            to_free = b;
        }
    }
    if (r->fileno_exported)
        ready_changed(r); /* only ever clears it here */
    pthread_cond_signal(&r->space);
    pthread_mutex_unlock(&r->lock);
    free_chain(to_free);
}

void spr_get_stats(spr_receiver *r, spr_stats *out)
{
    pthread_mutex_lock(&r->lock);
    *out = r->st;
    out->consumers_waiting = r->consumers_waiting;
    pthread_mutex_unlock(&r->lock);
}

/* What a close does once the drain thread has stopped. */
static void finish_close(spr_receiver *r)
{
    end_with(r, SPR_CLOSED, 0);
    if (r->lib.release) {
        r->lib.release(r->mbox);
        r->lib.release = NULL;
    }
}

/* How long a close waits for a drain thread that is inside a message. */
#define CLOSE_WAIT_NS 200000000LL

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
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    long long ns = until.tv_nsec + CLOSE_WAIT_NS;
    until.tv_sec += (time_t)(ns / 1000000000LL);
    until.tv_nsec = (long)(ns % 1000000000LL);
    if (pthread_timedjoin_np(r->thread, NULL, &until) != 0) {
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
    }
    finish_close(r);
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
        destroy(r);
}

static void destroy(spr_receiver *r)
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
