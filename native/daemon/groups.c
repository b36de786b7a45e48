/* groups.c -- group state, membership notices and data delivery
 * (SPEC.md 6.1, 6.4, 6.6, 8.4, 8.5).
 *
 * With simulated remote daemons (d->remote, remote.h) the model is told of
 * every local join, leave and disconnect, and its notices (which list the
 * remote members too) replace notify_members; they and the network's other
 * notices reach clients through the same output queues (spd_enqueue), so
 * the slow-reader limits, figures and kills apply to them as to any
 * message. Local multicasts still reach local members only. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

static int slot_cmp(const uint8_t *a, const uint8_t *b)
{
    return memcmp(a, b, WIRE_SLOT); /* NUL padding sorts names byte-wise */
}

static size_t member_pos(const group *g, const client *c, int *found)
{
    size_t lo = 0, hi = g->n_members;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int r = slot_cmp(g->members[mid]->private_group, c->private_group);
        if (r == 0) {
            *found = 1;
            return mid;
        }
        if (r < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = 0;
    return lo;
}

static int grow_array(void **items, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap * 2 : 8;
    while (n < need)
        n *= 2;
    void *p = realloc(*items, n * size);
    if (!p)
        return -1;
    *items = p;
    *cap = n;
    return 0;
}

/* A membership notice for group g (already changed) naming `changed`. */
static msgbuf *membership_msg(group *g, uint32_t type, const client *changed)
{
    size_t n = g->n_members;
    msgbuf *m = spd_msg_new(WIRE_HEADER_SIZE + n * WIRE_SLOT + WIRE_MEMB_BODY_SIZE);
    if (!m)
        return NULL;
    uint8_t hint[4];
    wire_make_hint(hint, 0);
    wire_encode_header(m->data, type, g->name, (int32_t)n, hint, WIRE_MEMB_BODY_SIZE);
    uint8_t *p = m->data + WIRE_HEADER_SIZE;
    for (size_t i = 0; i < n; i++, p += WIRE_SLOT)
        memcpy(p, g->members[i]->private_group, WIRE_SLOT);
    wire_encode_memb_body(p, g->gid, changed->private_group);
    return m;
}

static void notify_members(spd_daemon *d, group *g, uint32_t cause, const client *changed)
{
    msgbuf *m = membership_msg(g, WIRE_REG_MEMB_MESS | cause, changed);
    if (!m)
        return;
    /* Snapshot: a kill while delivering must not disturb this iteration. */
    for (size_t i = 0; i < g->n_members; i++)
        if (g->members[i]->membership)
            spd_enqueue(d, g->members[i], m);
    spd_msg_unref(m);
}

static void self_leave(spd_daemon *d, client *c, group *g)
{
    if (!c->membership)
        return;
    msgbuf *m = spd_msg_new(WIRE_HEADER_SIZE);
    if (!m)
        return;
    uint8_t hint[4];
    wire_make_hint(hint, 0);
    wire_encode_header(m->data, WIRE_CAUSED_BY_LEAVE, g->name, 0, hint, 0);
    spd_enqueue(d, c, m);
    spd_msg_unref(m);
}

static void drop_group_of_client(client *c, group *g)
{
    for (size_t i = 0; i < c->n_groups; i++) {
        if (c->groups[i] == g) {
            c->groups[i] = c->groups[--c->n_groups];
            return;
        }
    }
}

static void delete_group(spd_daemon *d, group *g)
{
    spd_table_del(&d->groups, g->name, g->name_len);
    free(g->members);
    free(g);
}

/* Removes c from g; deletes g when empty. Returns 1 if g still exists. */
static int remove_member(spd_daemon *d, group *g, client *c)
{
    int found;
    size_t at = member_pos(g, c, &found);
    if (!found)
        return 1;
    memmove(&g->members[at], &g->members[at + 1], (g->n_members - at - 1) * sizeof(client *));
    g->n_members--;
    if (g->n_members == 0) {
        delete_group(d, g);
        return 0;
    }
    g->gid[2]++;
    return 1;
}

void spd_join(spd_daemon *d, client *c, const uint8_t *name, size_t len)
{
    group *g = spd_table_get(&d->groups, name, len);
    if (!g) {
        g = calloc(1, sizeof *g);
        if (!g)
            return;
        wire_put_slot(g->name, (const char *)name, len);
        g->name_len = len;
        g->gid[0] = d->memb_id[0];
        g->gid[1] = d->memb_id[1];
        if (spd_table_put(&d->groups, g->name, len, g) != 0) {
            free(g);
            return;
        }
    }
    int found;
    size_t at = member_pos(g, c, &found);
    if (found)
        return; /* already a member: nothing happens */
    spd_notices notes = {0};
    if (grow_array((void **)&g->members, &g->cap_members, g->n_members + 1, sizeof(client *)) ||
        grow_array((void **)&c->groups, &c->cap_groups, c->n_groups + 1, sizeof(group *)) ||
        (d->remote && spd_remote_local_join(d->remote, name, len, c->private_group, &notes) < 0)) {
        spd_notices_clear(&notes); /* the model could not record it: no join */
        if (g->n_members == 0)
            delete_group(d, g);
        return;
    }
    memmove(&g->members[at + 1], &g->members[at], (g->n_members - at) * sizeof(client *));
    g->members[at] = c;
    g->n_members++;
    g->gid[2]++;
    c->groups[c->n_groups++] = g;
    if (d->remote)
        spd_deliver_notices(d, &notes);
    else
        notify_members(d, g, WIRE_CAUSED_BY_JOIN, c);
}

/* Tells the model that c left group (name, len), and delivers what it says. */
static void remote_left(spd_daemon *d, client *c, const uint8_t *name, size_t len, uint32_t cause)
{
    spd_notices notes = {0};
    if (spd_remote_local_leave(d->remote, name, len, c->private_group, cause, &notes) < 0)
        spd_log(d, SPD_LOG_ERROR, "the simulated network missed a leave of %.*s (out of memory)",
                (int)c->private_group_len, (const char *)c->private_group);
    spd_deliver_notices(d, &notes);
}

void spd_leave(spd_daemon *d, client *c, const uint8_t *name, size_t len)
{
    group *g = spd_table_get(&d->groups, name, len);
    int found = 0;
    if (g)
        member_pos(g, c, &found);
    if (!found)
        return; /* not a member: nothing happens */
    self_leave(d, c, g);
    drop_group_of_client(c, g);
    if (remove_member(d, g, c) && !d->remote)
        notify_members(d, g, WIRE_CAUSED_BY_LEAVE, c);
    else if (d->remote)
        remote_left(d, c, name, len, WIRE_CAUSED_BY_LEAVE);
}

static int group_name_order(const void *a, const void *b)
{
    const group *ga = *(group *const *)a, *gb = *(group *const *)b;
    return slot_cmp(ga->name, gb->name);
}

void spd_remove_from_groups(spd_daemon *d, client *c)
{
    if (c->n_groups == 0)
        return;
    /* Ascending group-name order, as the reference processes them. */
    qsort(c->groups, c->n_groups, sizeof(group *), group_name_order);
    for (size_t i = 0; i < c->n_groups; i++) {
        group *g = c->groups[i];
        uint8_t name[WIRE_SLOT];
        size_t len = g->name_len;
        memcpy(name, g->name, WIRE_SLOT); /* g may be deleted just below */
        if (remove_member(d, g, c) && !d->remote)
            notify_members(d, g, WIRE_CAUSED_BY_DISC, c);
        else if (d->remote)
            remote_left(d, c, name, len, WIRE_CAUSED_BY_DISC);
    }
    c->n_groups = 0;
}

/* The open local session of private group slot pg, or NULL. */
static client *local_session(spd_daemon *d, const uint8_t *pg)
{
    size_t len = wire_slot_len(pg), name_len, daemon_len;
    const uint8_t *daemon;
    if (len == 0 || pg[0] != '#' ||
        wire_split_private_group(pg, len, &name_len, &daemon, &daemon_len) != 0 ||
        daemon_len != d->name_len || memcmp(daemon, d->name, daemon_len) != 0)
        return NULL;
    client *c = spd_table_get(&d->names, pg + 1, name_len);
    return c && c->state == CL_OPEN ? c : NULL;
}

void spd_deliver_notices(spd_daemon *d, spd_notices *list)
{
    for (size_t i = 0; i < list->n; i++) {
        const spd_notice *nt = &list->items[i];
        if (nt->kind == SPD_NOTICE_MEMBERSHIP) {
            group *g = spd_table_get(&d->groups, nt->group, wire_slot_len(nt->group));
            if (g)
                memcpy(g->gid, nt->gid, sizeof g->gid);
        }
        if (nt->n_receivers == 0)
            continue;
        msgbuf *m = spd_msg_new(nt->len);
        if (!m)
            continue;
        memcpy(m->data, nt->bytes, nt->len); /* one copy, shared by every receiver */
        for (size_t j = 0; j < nt->n_receivers; j++) {
            client *c = local_session(d, nt->receivers + j * WIRE_SLOT);
            if (c && (nt->kind == SPD_NOTICE_DATA || c->membership))
                spd_enqueue(d, c, m);
        }
        spd_msg_unref(m);
    }
    spd_notices_clear(list);
}

static void add_receiver(spd_daemon *d, client *c, msgbuf *m)
{
    if (c->stamp == d->stamp || c->state != CL_OPEN)
        return;
    c->stamp = d->stamp;
    spd_enqueue(d, c, m);
}

void spd_deliver(spd_daemon *d, client *sender, const wire_header *h, const uint8_t *groups,
                 const uint8_t *data)
{
    size_t ng = (size_t)h->num_groups, dl = (size_t)h->data_len;
    msgbuf *m = spd_msg_new(WIRE_HEADER_SIZE + ng * WIRE_SLOT + dl);
    if (!m)
        return;
    /* The same bytes for every receiver: our byte order, the hint untouched. */
    wire_encode_header(m->data, h->type, sender->private_group, h->num_groups, h->hint,
                       h->data_len);
    memcpy(m->data + WIRE_HEADER_SIZE, groups, ng * WIRE_SLOT);
    memcpy(m->data + WIRE_HEADER_SIZE + ng * WIRE_SLOT, data, dl);

    d->stamp++;
    if (h->type & WIRE_SELF_DISCARD)
        sender->stamp = d->stamp; /* counts as already served */
    for (size_t i = 0; i < ng; i++) {
        const uint8_t *slot = groups + i * WIRE_SLOT;
        size_t len = wire_slot_len(slot);
        if (len > 0 && slot[0] == '#') {
            size_t name_len, daemon_len;
            const uint8_t *daemon;
            if (wire_split_private_group(slot, len, &name_len, &daemon, &daemon_len) != 0 ||
                daemon_len != d->name_len || memcmp(daemon, d->name, daemon_len) != 0)
                continue;
            client *c = spd_table_get(&d->names, slot + 1, name_len);
            if (c)
                add_receiver(d, c, m);
        } else if (len > 0) {
            group *g = spd_table_get(&d->groups, slot, len);
            for (size_t j = 0; g && j < g->n_members; j++)
                add_receiver(d, g->members[j], m);
        }
    }
    spd_msg_unref(m);
}
