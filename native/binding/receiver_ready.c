/* receiver_ready.c -- the ready descriptor (spr_fileno) and the end of a
 * receiver; receiver_internal.h holds the protocol's inline part
 * (has_news, set_ready, ready_changed, ready_signal), receiver.md its
 * invariant. */
#include "receiver_internal.h"

#include <sched.h>

void spr_end_with(spr_receiver *r, int state, int error)
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
