/*
 * receiver_internal.h -- the background receiver's state, shared by its
 * parts (receiver.md says how they fit together):
 *
 *   receiver.c        starting, closing and freeing (the lifecycle)
 *   receiver_queue.c  block storage, the spare pool, peek/consume, stats
 *   receiver_ready.c  the ready descriptor (spr_fileno) and the end states
 *   receiver_drain.c  the drain thread: producing records off the socket
 *   receiver_wait.c   consumers: spr_wait, and taking arrivals themselves
 *
 * What runs once per message or per wake-up stays static inline here, so
 * that the split costs no calls.
 */
#ifndef SPREAD_CLIENT_RECEIVER_INTERNAL_H
#define SPREAD_CLIENT_RECEIVER_INTERNAL_H

#include "receiver.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
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
#define SPARE_BLOCKS  16
#define SPARE_KEEP    2
#define SPARE_IDLE_NS 1000000000
/* A waiting consumer reads the socket itself while that pays, that is while
 * its wake-ups find batches (SOCKET_GAIN messages or more). Where they find
 * a message or less each time (a daemon that writes each message in two
 * pieces, as Spread 4 does, or a trickle), the drain thread, which gathers
 * messages while the consumer is busy with the last ones, costs less: after
 * SOCKET_MISSES such wake-ups in a row, consumers leave the socket to the
 * drain thread for their next SOCKET_PAUSE waits, twice as many after each
 * try that fails again (up to 256 times as many). */
#define SOCKET_GAIN        4
#define SOCKET_MISSES      4
#define SOCKET_PAUSE       256
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
#define NAP_SMALL       2          /* messages: a read this small may lead to a nap */
#define NAP_STREAM_NS   200000    /* ... if the last small read was this recent */
#define NAP_NS          30000
#define NAP_SKIP        64
#define NAP_BACKOFF_MAX 6

typedef struct spr_block {
    struct spr_block *next;
    size_t size;
    /* Committed bytes: written by the producer under the lock, with release
     * order (the records before it are then visible), so that a consumer can
     * peek into its head block without the lock (spr_peek). */
    _Atomic size_t used;
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
    /* The drain thread is taking messages off the socket (it may wait there
     * for the rest of one): only that wait makes a close give up on it. */
    atomic_int in_read;
    pthread_mutex_t lock;
    pthread_cond_t space;    /* the backlog shrank, or closing */
    int space_waiting;       /* the drain thread waits on space (lock): only
                                then does a consume signal it */
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

/* Who takes messages off the socket: the drain thread, or a consumer that
 * helps in passing and must never wait (it may hold an interpreter lock). */
enum { BY_DRAIN, BY_HELPER };

static inline int64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static inline void free_chain(spr_block *b)
{
    while (b) {
        spr_block *next = b->next;
        free(b);
        b = next;
    }
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
static inline int has_news(const spr_receiver *r)
{
    return r->st.backlog_messages > 0 || r->st.state != SPR_RUNNING;
}

static inline void set_ready(spr_receiver *r, int readable)
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
static inline int ready_changed(spr_receiver *r)
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
static inline void ready_signal(spr_receiver *r, int signal)
{
    if (signal) {
        set_ready(r, 1);
        atomic_fetch_sub(&r->signals_pending, 1);
    }
}

static inline int buffered(spr_receiver *r)
{
    return r->lib.pending && r->lib.pending(r->mbox) > 0;
}

/* May the receiver take more now? Under r->lock. */
static inline int may_produce(const spr_receiver *r)
{
    return r->st.state == SPR_RUNNING && !(r->on_overflow == SPR_OVERFLOW_BLOCK && r->max_backlog &&
                                           r->st.backlog_bytes >= r->max_backlog);
}

/* receiver_queue.c: a block of at least `need` data bytes, from the spare
 * pool or fresh (uninitialised data); NULL when out of memory. */
spr_block *spr_block_new(spr_receiver *r, size_t need);
/* receiver_ready.c: ends the receiver with an SPR_* state (the first end
 * counts), and tells consumers. */
void spr_end_with(spr_receiver *r, int state, int error);
/* receiver_drain.c: the drain thread; takes what has arrived, never waiting
 * for a message to start (the caller holds produce_lock): messages queued,
 * 0 none, -1 the receiver ended. */
void *spr_drain(void *arg);
int spr_take_arrived(spr_receiver *r, int who);
/* receiver.c: what a close does once the drain thread has stopped, and the
 * freeing of everything. */
void spr_finish_close(spr_receiver *r);
void spr_destroy(spr_receiver *r);

#endif /* SPREAD_CLIENT_RECEIVER_INTERNAL_H */
