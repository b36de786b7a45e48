/* receiver_queue.c -- the receiver's queue: records stored back to back in
 * blocks, emptied blocks kept for reuse, and the consumers' side of it
 * (spr_peek, spr_consume, spr_get_stats, spr_pending_bytes). */
#include "receiver_internal.h"
#include "wire.h"

_Static_assert(SPR_HEADER_BYTES == WIRE_HEADER_SIZE, "spr_pending_bytes counts wire headers");

spr_block *spr_block_new(spr_receiver *r, size_t need)
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

int spr_peek(spr_receiver *r, const spr_msg **out, int max)
{
    /* The head block's committed records need no lock: only the consumer
     * (one at a time) moves head and read_off, and the producer commits
     * records with a release store of used. Past them, the lock: the next
     * block's link and its records. */
    int n = 0;
    spr_block *b = r->head;
    size_t off = r->read_off;
    size_t used = atomic_load_explicit(&b->used, memory_order_acquire);
    while (n < max && off < used) {
        const spr_msg *m = (const spr_msg *)(b->data + off);
        out[n++] = m;
        off += m->size;
    }
    if (n == max)
        return n;
    pthread_mutex_lock(&r->lock);
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
    if (r->space_waiting)
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

size_t spr_pending_bytes(spr_receiver *r)
{
    pthread_mutex_lock(&r->lock);
    size_t bytes = r->st.backlog_bytes + SPR_HEADER_BYTES * r->st.backlog_messages;
    pthread_mutex_unlock(&r->lock);
    return bytes;
}
