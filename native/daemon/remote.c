/* remote.c -- simulated remote daemons and network events (remote.h). */
#include "remote.h"

#include <stdlib.h>
#include <string.h>

#define MAX_D SPD_REMOTE_MAX_DAEMONS

typedef struct {
    int used, alive;
    char name[WIRE_MAX_PROC_NAME + 1];
    size_t name_len;
    uint32_t addr;
    int comp;        /* component label: the lowest daemon index in it */
    int32_t memb[2]; /* its component's daemon membership id */
    int unreachable; /* its traffic no longer reaches us (a change is on its way) */
} rdaemon;

typedef struct {
    uint8_t slot[WIRE_SLOT]; /* private group */
    int daemon;
} gmember;

typedef struct {
    uint8_t name[WIRE_SLOT];
    gmember *members; /* canonical order: daemon address, then slot bytes */
    size_t n, cap;
    int32_t view[MAX_D][3]; /* the group's id as daemon d's component sees it */
    int in_trans;           /* TRANSITION_MESS told, the regular membership not yet */
} rgroup;

typedef struct {
    int used, daemon;
    uint8_t slot[WIRE_SLOT];
} rmember;

struct spd_remote {
    rdaemon d[MAX_D];
    int n_daemons;
    rmember *members;
    size_t n_members, cap_members; /* slots in use (high water), allocated */
    size_t live_members;
    rgroup **groups; /* by name, byte-wise */
    size_t n_groups, cap_groups;
    int64_t last_b; /* time of the latest daemon membership formed */
    /* A change begun and not yet installed (spd_remote_begin): the
     * components it installs, the daemons that crash in it, and the id of
     * its transitional membership (the a, b of group ids inside it). The
     * installed components (rdaemon.comp) stay as they were meanwhile. */
    int pending;
    int pend_label[MAX_D];
    uint32_t pend_dying;
    int32_t trans_id[2];
};

/* ---- small helpers --------------------------------------------------- */

static int grow(void **items, size_t *cap, size_t need, size_t size, size_t limit)
{
    if (need <= *cap)
        return 0;
    if (need > limit)
        return SPD_REMOTE_E_LIMIT;
    size_t n = *cap ? *cap * 2 : 8;
    while (n < need)
        n *= 2;
    if (n > limit)
        n = limit;
    void *p = realloc(*items, n * size);
    if (!p)
        return SPD_REMOTE_E_NOMEM;
    *items = p;
    *cap = n;
    return 0;
}

static int name_ok(const char *s, size_t len, size_t max)
{
    if (!s || len < 1 || len > max)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!wire_name_char_ok((uint8_t)s[i]))
            return 0;
    return 1;
}

static int daemon_ok(const spd_remote *r, int d)
{
    return d >= 0 && d < r->n_daemons && r->d[d].used;
}

static int local_comp(const spd_remote *r)
{
    return r->d[SPD_REMOTE_LOCAL].comp;
}

static int in_comp(const spd_remote *r, int daemon, int comp)
{
    return r->d[daemon].alive && r->d[daemon].comp == comp;
}

static int32_t next_b(const spd_remote *r, int64_t now)
{
    int64_t b = now > r->last_b ? now : r->last_b + 1;
    if (b > INT32_MAX)
        b = INT32_MAX;
    if (b < INT32_MIN)
        b = INT32_MIN;
    return (int32_t)b;
}

static int member_cmp(const spd_remote *r, const gmember *m, int daemon, const uint8_t *slot)
{
    uint32_t a = r->d[m->daemon].addr, b = r->d[daemon].addr;
    if (a != b)
        return a < b ? -1 : 1;
    return memcmp(m->slot, slot, WIRE_SLOT);
}

static size_t member_pos(const spd_remote *r, const rgroup *g, int daemon, const uint8_t *slot,
                         int *found)
{
    size_t lo = 0, hi = g->n;
    *found = 0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = member_cmp(r, &g->members[mid], daemon, slot);
        if (c == 0) {
            *found = 1;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static size_t group_pos(const spd_remote *r, const uint8_t name[WIRE_SLOT], int *found)
{
    size_t lo = 0, hi = r->n_groups;
    *found = 0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = memcmp(r->groups[mid]->name, name, WIRE_SLOT);
        if (c == 0) {
            *found = 1;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static rgroup *find_group(const spd_remote *r, const uint8_t name[WIRE_SLOT])
{
    int found;
    size_t at = group_pos(r, name, &found);
    return found ? r->groups[at] : NULL;
}

static void delete_group_at(spd_remote *r, size_t at)
{
    rgroup *g = r->groups[at];
    free(g->members);
    free(g);
    memmove(&r->groups[at], &r->groups[at + 1], (r->n_groups - at - 1) * sizeof(rgroup *));
    r->n_groups--;
}

static size_t count_in(const spd_remote *r, const rgroup *g, int comp)
{
    size_t n = 0;
    for (size_t i = 0; i < g->n; i++)
        n += in_comp(r, g->members[i].daemon, comp) ? 1 : 0;
    return n;
}

static size_t count_local(const rgroup *g)
{
    size_t n = 0;
    for (size_t i = 0; i < g->n; i++)
        n += g->members[i].daemon == SPD_REMOTE_LOCAL ? 1 : 0;
    return n;
}

/* ---- notices --------------------------------------------------------- */

static void notice_free(spd_notice *n)
{
    free(n->bytes);
    free(n->receivers);
    memset(n, 0, sizeof *n);
}

void spd_notices_clear(spd_notices *list)
{
    if (!list)
        return;
    for (size_t i = 0; i < list->n; i++)
        notice_free(&list->items[i]);
    free(list->items);
    list->items = NULL;
    list->n = list->cap = 0;
}

static int notices_reserve(spd_notices *list, size_t more)
{
    return grow((void **)&list->items, &list->cap, list->n + more, sizeof(spd_notice),
                (size_t)-1 / sizeof(spd_notice));
}

/* Appends (room reserved). */
static void notices_push(spd_notices *list, spd_notice *n)
{
    list->items[list->n++] = *n;
    memset(n, 0, sizeof *n);
}

/* Moves every notice of `from` to the end of `to` (room reserved). */
static void notices_move(spd_notices *to, spd_notices *from)
{
    for (size_t i = 0; i < from->n; i++)
        notices_push(to, &from->items[i]);
    from->n = 0;
}

/* A message of header + list slots + body_len bytes; the body is the caller's. */
static int notice_alloc(spd_notice *nt, spd_notice_kind kind, uint32_t type,
                        const uint8_t sender[WIRE_SLOT], const uint8_t hint[4], const uint8_t *list,
                        size_t n_list, size_t body_len)
{
    memset(nt, 0, sizeof *nt);
    nt->kind = kind;
    nt->type = type;
    nt->len = WIRE_HEADER_SIZE + n_list * WIRE_SLOT + body_len;
    nt->bytes = malloc(nt->len);
    if (!nt->bytes)
        return SPD_REMOTE_E_NOMEM;
    wire_encode_header(nt->bytes, type, sender, (int32_t)n_list, hint, (int32_t)body_len);
    if (n_list)
        memcpy(nt->bytes + WIRE_HEADER_SIZE, list, n_list * WIRE_SLOT);
    return 0;
}

static uint8_t *notice_body(spd_notice *nt, size_t n_list)
{
    return nt->bytes + WIRE_HEADER_SIZE + n_list * WIRE_SLOT;
}

/* The local members of g as the receivers (canonical order is byte-wise
 * among one daemon's members). */
static int notice_receivers(spd_notice *nt, const rgroup *g)
{
    size_t n = count_local(g);
    if (n == 0)
        return 0;
    nt->receivers = malloc(n * WIRE_SLOT);
    if (!nt->receivers)
        return SPD_REMOTE_E_NOMEM;
    for (size_t i = 0; i < g->n; i++)
        if (g->members[i].daemon == SPD_REMOTE_LOCAL)
            memcpy(nt->receivers + WIRE_SLOT * nt->n_receivers++, g->members[i].slot, WIRE_SLOT);
    return 0;
}

/* The members of g on daemons of component comp, into slots (g->n room). */
static size_t list_in(const spd_remote *r, const rgroup *g, int comp, uint8_t *slots)
{
    size_t n = 0;
    for (size_t i = 0; i < g->n; i++)
        if (in_comp(r, g->members[i].daemon, comp))
            memcpy(slots + WIRE_SLOT * n++, g->members[i].slot, WIRE_SLOT);
    return n;
}

/* A regular membership for g's local members: `list` (n_list slots), the
 * id, k vs-sets (counts, names back to back), ours at index local. */
static int make_memb(spd_notice *nt, const rgroup *g, uint32_t type, const int32_t gid[3],
                     const uint8_t *list, size_t n_list, const size_t counts[], size_t k,
                     const uint8_t *set_names, size_t local)
{
    uint8_t hint[4];
    wire_make_hint(hint, 0);
    size_t body = wire_memb_sets_size(counts, k);
    if (body == 0)
        return SPD_REMOTE_E_LIMIT;
    int e = notice_alloc(nt, SPD_NOTICE_MEMBERSHIP, type, g->name, hint, list, n_list, body);
    if (e == 0) {
        wire_encode_memb_sets(notice_body(nt, n_list), body, gid, counts, k, set_names, local);
        e = notice_receivers(nt, g);
    }
    if (e) {
        notice_free(nt);
        return e;
    }
    memcpy(nt->group, g->name, WIRE_SLOT);
    memcpy(nt->gid, gid, sizeof nt->gid);
    return 0;
}

static int make_trans(spd_notice *nt, const rgroup *g, const int32_t gid[3])
{
    uint8_t hint[4];
    wire_make_hint(hint, 0);
    int e = notice_alloc(nt, SPD_NOTICE_MEMBERSHIP, WIRE_TRANSITION_MESS, g->name, hint, NULL, 0,
                         WIRE_TRANS_BODY_SIZE);
    if (e == 0) {
        wire_encode_trans_body(notice_body(nt, 0), gid);
        e = notice_receivers(nt, g);
    }
    if (e) {
        notice_free(nt);
        return e;
    }
    memcpy(nt->group, g->name, WIRE_SLOT);
    memcpy(nt->gid, gid, sizeof nt->gid);
    return 0;
}

/* A join, leave or disconnect notice for g's local members, if there are
 * any and the change happened in our component. 1 appended, 0, or error. */
static int change_notice(const spd_remote *r, const rgroup *g, int daemon, uint32_t cause,
                         const uint8_t slot[WIRE_SLOT], spd_notices *out)
{
    if (!in_comp(r, daemon, local_comp(r)) || count_local(g) == 0)
        return 0;
    uint8_t *list = malloc(g->n * WIRE_SLOT);
    if (!list)
        return SPD_REMOTE_E_NOMEM;
    size_t n = list_in(r, g, local_comp(r), list);
    const size_t one = 1;
    spd_notice nt;
    int e = make_memb(&nt, g, WIRE_REG_MEMB_MESS | cause, g->view[SPD_REMOTE_LOCAL], list, n, &one,
                      1, slot, 0);
    free(list);
    if (e)
        return e;
    notices_push(out, &nt);
    return 1;
}

/* Whether daemon d is in our installed component and stays in it through
 * the pending change (the transitional configuration's daemons). */
static int stays(const spd_remote *r, int d)
{
    return in_comp(r, d, local_comp(r)) && !(r->pend_dying & (1u << d)) &&
           r->pend_label[d] == r->pend_label[SPD_REMOTE_LOCAL];
}

/* Whether a change by a member of daemon d reaches us now: refused while a
 * change on its way cuts d off (SPD_REMOTE_E_BUSY). */
static int reachable(const spd_remote *r, int d)
{
    if (r->d[d].unreachable)
        return 0;
    return !r->pending || !in_comp(r, d, local_comp(r)) || stays(r, d);
}

/* A join or leave inside a transitional period (SPEC.md 6.8, churn): for
 * g's local members a REG_MEMB|CAUSED_BY_NETWORK listing every member our
 * installed component still holds, its vs-sets the members that stay, then
 * one set per daemon on its way out, and a joiner alone in a last set (its
 * own local offset there); the id [trans a, trans b, c] as g->view has it
 * already; then another TRANSITION_MESS with that id. joiner: the joined
 * member's slot, or NULL for a leave. Returns the notices appended. */
static int window_notice(const spd_remote *r, const rgroup *g, const uint8_t *joiner,
                         spd_notices *out)
{
    int comp = local_comp(r);
    const int32_t *gid = g->view[SPD_REMOTE_LOCAL];
    uint8_t *list = malloc(2 * g->n * WIRE_SLOT + 1);
    if (!list)
        return SPD_REMOTE_E_NOMEM;
    uint8_t *sets = list + g->n * WIRE_SLOT;
    size_t n_list = list_in(r, g, comp, list), n_sets = 0, k = 0, counts[MAX_D + 1];
    /* The set of those that stay, then the leaving daemons' by address
     * (members are in canonical order: by daemon address already). */
    int leaving[MAX_D], n_leaving = 0;
    for (size_t i = 0; i < g->n; i++) {
        int d = g->members[i].daemon;
        if (in_comp(r, d, comp) && !stays(r, d) && (n_leaving == 0 || leaving[n_leaving - 1] != d))
            leaving[n_leaving++] = d;
    }
    size_t first = 0;
    for (size_t i = 0; i < g->n; i++) {
        const gmember *m = &g->members[i];
        if (stays(r, m->daemon) && !(joiner && memcmp(m->slot, joiner, WIRE_SLOT) == 0))
            memcpy(sets + WIRE_SLOT * n_sets++, m->slot, WIRE_SLOT);
    }
    if (n_sets)
        counts[k++] = n_sets;
    else
        first = 1; /* no set of stayers: ours is the joiner's */
    for (int j = 0; j < n_leaving; j++) {
        size_t before = n_sets;
        for (size_t i = 0; i < g->n; i++)
            if (g->members[i].daemon == leaving[j])
                memcpy(sets + WIRE_SLOT * n_sets++, g->members[i].slot, WIRE_SLOT);
        counts[k++] = n_sets - before;
    }
    if (joiner) {
        memcpy(sets + WIRE_SLOT * n_sets++, joiner, WIRE_SLOT);
        counts[k++] = 1;
    }
    int local_joiner = joiner && joiner[0] == '#' && count_local(g) > 0;
    if (local_joiner) { /* is the joiner ours? */
        local_joiner = 0;
        for (size_t i = 0; i < g->n; i++)
            if (g->members[i].daemon == SPD_REMOTE_LOCAL &&
                memcmp(g->members[i].slot, joiner, WIRE_SLOT) == 0)
                local_joiner = 1;
    }
    spd_notice nt[3];
    size_t made = 0;
    int e = notices_reserve(out, 3);
    /* The stayers' view (local offset at the first set), unless the only
     * local member is the joiner; then the joiner's (at the last set). */
    if (e == 0 && (!local_joiner || count_local(g) > 1 || first)) {
        e = make_memb(&nt[made], g, WIRE_REG_MEMB_MESS | WIRE_CAUSED_BY_NET, gid, list, n_list,
                      counts, k, sets, first ? k - 1 : 0);
        made += e == 0;
    }
    if (e == 0 && local_joiner && !first) {
        e = make_memb(&nt[made], g, WIRE_REG_MEMB_MESS | WIRE_CAUSED_BY_NET, gid, list, n_list,
                      counts, k, sets, k - 1);
        made += e == 0;
        if (e == 0) { /* the joiner's own: it alone gets it, the others the first */
            spd_notice *mine = &nt[made - 1], *theirs = made > 1 ? &nt[0] : NULL;
            memcpy(mine->receivers, joiner, WIRE_SLOT);
            mine->n_receivers = 1;
            size_t w = 0;
            for (size_t i = 0; theirs && i < theirs->n_receivers; i++)
                if (memcmp(theirs->receivers + WIRE_SLOT * i, joiner, WIRE_SLOT) != 0)
                    memmove(theirs->receivers + WIRE_SLOT * w++, theirs->receivers + WIRE_SLOT * i,
                            WIRE_SLOT);
            if (theirs)
                theirs->n_receivers = w;
        }
    }
    if (e == 0) {
        e = make_trans(&nt[made], g, gid);
        made += e == 0;
    }
    free(list);
    if (e) {
        for (size_t i = 0; i < made; i++)
            notice_free(&nt[i]);
        return e;
    }
    int appended = 0;
    for (size_t i = 0; i < made; i++) {
        if (nt[i].n_receivers) {
            notices_push(out, &nt[i]);
            appended++;
        } else {
            notice_free(&nt[i]);
        }
    }
    return appended;
}

/* ---- life ------------------------------------------------------------ */

spd_remote *spd_remote_new(const char *name, size_t len, const int32_t memb_id[2])
{
    if (!name_ok(name, len, WIRE_MAX_PROC_NAME) || !memb_id)
        return NULL;
    spd_remote *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    rdaemon *d = &r->d[SPD_REMOTE_LOCAL];
    d->used = d->alive = 1;
    memcpy(d->name, name, len);
    d->name_len = len;
    d->addr = (uint32_t)memb_id[0];
    d->comp = SPD_REMOTE_LOCAL;
    d->memb[0] = memb_id[0];
    d->memb[1] = memb_id[1];
    r->n_daemons = 1;
    r->last_b = memb_id[1];
    return r;
}

void spd_remote_free(spd_remote *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_groups; i++) {
        free(r->groups[i]->members);
        free(r->groups[i]);
    }
    free(r->groups);
    free(r->members);
    free(r);
}

/* ---- network changes ------------------------------------------------- */

/* Labels -> the lowest daemon index with the same label; -1 stays. */
static void normalise(int c[MAX_D], int n)
{
    int orig[MAX_D];
    memcpy(orig, c, sizeof orig);
    for (int i = 0; i < n; i++) {
        if (orig[i] < 0)
            continue;
        for (int j = 0; j <= i; j++) {
            if (orig[j] >= 0 && orig[j] == orig[i]) {
                c[i] = j;
                break;
            }
        }
    }
}

typedef struct {
    int ol;      /* the previous component (label) */
    size_t n;    /* members of the group from it */
    uint32_t lo; /* its lowest daemon address */
    const int32_t *gid;
} piece;

static int piece_before(const piece *a, const piece *b)
{
    if ((uint32_t)a->gid[0] != (uint32_t)b->gid[0])
        return (uint32_t)a->gid[0] < (uint32_t)b->gid[0];
    if (a->gid[1] != b->gid[1])
        return a->gid[1] < b->gid[1];
    if (a->gid[2] != b->gid[2])
        return a->gid[2] < b->gid[2];
    return a->lo < b->lo;
}

/* Removes every member of daemon d (crashed) from the groups and handles. */
static void purge_daemon(spd_remote *r, int d)
{
    for (size_t i = r->n_groups; i-- > 0;) {
        rgroup *g = r->groups[i];
        size_t k = 0;
        for (size_t j = 0; j < g->n; j++)
            if (g->members[j].daemon != d)
                g->members[k++] = g->members[j];
        g->n = k;
        if (g->n == 0)
            delete_group_at(r, i);
    }
    for (size_t m = 0; m < r->n_members; m++) {
        if (r->members[m].used && r->members[m].daemon == d) {
            r->members[m].used = 0;
            r->live_members--;
        }
    }
}

/* The network memberships of group g for the new component L. */
typedef struct {
    const int *oldc, *newc;
    const uint32_t *oldmask, *newmask;
    int32_t a, b;
} change_ctx;

static int group_change(const spd_remote *r, const rgroup *g, int L, const change_ctx *x,
                        int32_t newgid[3], spd_notices *trans, spd_notices *net, int *changed)
{
    size_t cnt[MAX_D] = {0};
    int lost[MAX_D] = {0};
    *changed = 0;
    for (size_t i = 0; i < g->n; i++) {
        int dd = g->members[i].daemon, ol = x->oldc[dd];
        if (ol < 0)
            continue; /* not reached: members are on daemons that were up */
        if (x->newc[dd] == L)
            cnt[ol]++;
        else if (x->oldmask[ol] & x->newmask[L])
            lost[ol] = 1;
    }
    piece pieces[MAX_D];
    size_t k = 0;
    for (int ol = 0; ol < MAX_D; ol++) {
        if (cnt[ol] == 0)
            continue;
        piece p = {ol, cnt[ol], UINT32_MAX, g->view[ol]};
        for (int d = 0; d < MAX_D; d++)
            if ((x->oldmask[ol] & x->newmask[L] & (1u << d)) && r->d[d].addr < p.lo)
                p.lo = r->d[d].addr;
        size_t at = k++;
        while (at > 0 && piece_before(&p, &pieces[at - 1])) {
            pieces[at] = pieces[at - 1];
            at--;
        }
        pieces[at] = p;
    }
    if (k == 0 || (k == 1 && !lost[pieces[0].ol] && !g->in_trans))
        return 0; /* (a transitional one is always followed by a regular one) */
    *changed = 1;
    newgid[0] = x->a;
    newgid[1] = x->b;
    newgid[2] = 1;
    if (!(x->newmask[L] & 1u) || count_local(g) == 0)
        return 0; /* not ours to tell */

    int ours = x->oldc[SPD_REMOTE_LOCAL];
    if (lost[ours] && !g->in_trans) {
        spd_notice nt;
        int e = notices_reserve(trans, 1);
        if (e == 0)
            e = make_trans(&nt, g, g->view[SPD_REMOTE_LOCAL]);
        if (e)
            return e;
        notices_push(trans, &nt);
    }
    uint8_t *list = malloc(2 * g->n * WIRE_SLOT);
    if (!list)
        return SPD_REMOTE_E_NOMEM;
    uint8_t *sets = list + g->n * WIRE_SLOT;
    size_t n_list = 0, n_sets = 0, counts[MAX_D], local = 0;
    for (size_t i = 0; i < g->n; i++)
        if (x->newc[g->members[i].daemon] == L)
            memcpy(list + WIRE_SLOT * n_list++, g->members[i].slot, WIRE_SLOT);
    for (size_t p = 0; p < k; p++) {
        counts[p] = pieces[p].n;
        if (pieces[p].ol == ours)
            local = p;
        for (size_t i = 0; i < g->n; i++) {
            int dd = g->members[i].daemon;
            if (x->newc[dd] == L && x->oldc[dd] == pieces[p].ol)
                memcpy(sets + WIRE_SLOT * n_sets++, g->members[i].slot, WIRE_SLOT);
        }
    }
    spd_notice nt;
    int e = notices_reserve(net, 1);
    if (e == 0)
        e = make_memb(&nt, g, WIRE_REG_MEMB_MESS | WIRE_CAUSED_BY_NET, newgid, list, n_list, counts,
                      k, sets, local);
    free(list);
    if (e)
        return e;
    notices_push(net, &nt);
    return 0;
}

/* One daemon membership change: daemon d goes to component label_in[d]
 * (any ints, equal = together); the daemons of `dying` crash. */
static int apply_change(spd_remote *r, const int label_in[MAX_D], uint32_t dying, int64_t now,
                        spd_notices *out)
{
    int force = 0; /* a group told TRANSITION_MESS: our component forms a membership */
    for (size_t gi = 0; gi < r->n_groups; gi++)
        force |= r->groups[gi]->in_trans;
    int nd = r->n_daemons, oldc[MAX_D], newc[MAX_D];
    uint32_t oldmask[MAX_D] = {0}, newmask[MAX_D] = {0};
    for (int d = 0; d < MAX_D; d++) {
        int up = d < nd && r->d[d].used && r->d[d].alive;
        oldc[d] = up ? r->d[d].comp : -1;
        newc[d] = up && !(dying & (1u << d)) ? label_in[d] : -1;
    }
    normalise(newc, nd);
    for (int d = 0; d < nd; d++) {
        if (oldc[d] >= 0)
            oldmask[oldc[d]] |= 1u << d;
        if (newc[d] >= 0)
            newmask[newc[d]] |= 1u << d;
    }
    int changed[MAX_D] = {0}, any = 0;
    int32_t a[MAX_D] = {0};
    for (int L = 0; L < nd; L++) {
        if (!newmask[L] || (oldc[L] >= 0 && oldmask[oldc[L]] == newmask[L] &&
                            !(force && L == newc[SPD_REMOTE_LOCAL])))
            continue;
        changed[L] = any = 1;
        uint32_t lo = UINT32_MAX;
        for (int d = 0; d < nd; d++)
            if ((newmask[L] & (1u << d)) && r->d[d].addr < lo)
                lo = r->d[d].addr;
        a[L] = (int32_t)lo;
    }
    change_ctx x = {oldc, newc, oldmask, newmask, 0, next_b(r, now)};

    int32_t (*nv)[MAX_D][3] = NULL;
    spd_notices trans = {0}, net = {0};
    int e = 0;
    if (any && r->n_groups) {
        nv = malloc(r->n_groups * sizeof *nv);
        if (!nv)
            return SPD_REMOTE_E_NOMEM;
    }
    for (size_t gi = 0; any && gi < r->n_groups && e == 0; gi++) {
        const rgroup *g = r->groups[gi];
        memcpy(nv[gi], g->view, sizeof nv[gi]);
        for (int L = 0; L < nd && e == 0; L++) {
            if (!changed[L])
                continue;
            int32_t gid[3];
            int ch;
            x.a = a[L];
            e = group_change(r, g, L, &x, gid, &trans, &net, &ch);
            for (int d = 0; ch && d < nd; d++)
                if (newmask[L] & (1u << d))
                    memcpy(nv[gi][d], gid, sizeof gid);
        }
    }
    if (e == 0)
        e = notices_reserve(out, trans.n + net.n);
    if (e) {
        free(nv);
        spd_notices_clear(&trans);
        spd_notices_clear(&net);
        return e;
    }
    /* Commit. */
    int appended = (int)(trans.n + net.n);
    notices_move(out, &trans);
    notices_move(out, &net);
    spd_notices_clear(&trans);
    spd_notices_clear(&net);
    for (size_t gi = 0; nv && gi < r->n_groups; gi++)
        memcpy(r->groups[gi]->view, nv[gi], sizeof nv[gi]);
    free(nv);
    for (size_t gi = 0; gi < r->n_groups; gi++)
        r->groups[gi]->in_trans = 0;
    r->pending = 0;
    for (int d = 0; d < nd; d++) {
        if (oldc[d] < 0)
            continue;
        if (newc[d] < 0) {
            r->d[d].alive = 0;
            r->d[d].comp = -1;
            continue;
        }
        r->d[d].comp = newc[d];
        if (changed[newc[d]]) {
            r->d[d].memb[0] = a[newc[d]];
            r->d[d].memb[1] = x.b;
        }
    }
    if (any)
        r->last_b = x.b;
    for (int d = 0; d < nd; d++)
        if (dying & (1u << d))
            purge_daemon(r, d);
    return appended;
}

static void current_labels(const spd_remote *r, int labels[MAX_D])
{
    for (int d = 0; d < MAX_D; d++)
        labels[d] = d < r->n_daemons && r->d[d].alive ? r->d[d].comp : -1;
}

/* n distinct remote daemons; up: each must be up (and not dying in the
 * pending change). */
static int check_list(const spd_remote *r, const int *daemons, size_t n, int up)
{
    if (n == 0 || n >= MAX_D || !daemons)
        return SPD_REMOTE_E_INVALID;
    uint32_t seen = 0;
    for (size_t i = 0; i < n; i++) {
        int d = daemons[i];
        if (!daemon_ok(r, d) || d == SPD_REMOTE_LOCAL || (seen & (1u << d)) ||
            (up && !r->d[d].alive))
            return SPD_REMOTE_E_INVALID;
        if (r->pending && (r->pend_dying & (1u << d)))
            return SPD_REMOTE_E_BUSY;
        seen |= 1u << d;
    }
    return 0;
}

/* Where an event takes the network: the components (labels) and the
 * daemons that crash, from the pending change's if there is one, else from
 * the installed components. Merging a crashed daemon restarts it (alone,
 * no members) at once; *revived says which, to undo on failure. */
static int event_target(spd_remote *r, int event, const int *daemons, size_t n, int64_t now,
                        int labels[MAX_D], uint32_t *dying, uint32_t *revived)
{
    int e = check_list(r, daemons, n, event != SPD_EVENT_MERGE);
    if (e)
        return e;
    *revived = 0;
    if (event == SPD_EVENT_MERGE) {
        for (size_t i = 0; i < n; i++) {
            rdaemon *d = &r->d[daemons[i]];
            if (!d->alive) { /* a restart: up, alone, no members */
                d->alive = 1;
                d->comp = daemons[i];
                d->memb[0] = (int32_t)d->addr;
                d->memb[1] = next_b(r, now);
                *revived |= 1u << daemons[i];
            }
        }
    }
    if (r->pending) {
        memcpy(labels, r->pend_label, sizeof r->pend_label);
        *dying = r->pend_dying;
    } else {
        current_labels(r, labels);
        *dying = 0;
    }
    int fresh = 0; /* above every label in use: a component of its own */
    for (int d = 0; d < MAX_D; d++)
        if (labels[d] >= fresh)
            fresh = labels[d] + 1;
    for (int d = 0; d < r->n_daemons; d++)
        if (*revived & (1u << d))
            labels[d] = fresh++; /* restarted: alone (until the merge below) */
    for (size_t i = 0; i < n; i++) {
        int x = daemons[i], c = labels[x], ours = labels[SPD_REMOTE_LOCAL];
        if (event == SPD_EVENT_PARTITION)
            labels[x] = fresh;
        else if (event == SPD_EVENT_CRASH)
            *dying |= 1u << x;
        else
            for (int d = 0; d < r->n_daemons; d++)
                if (labels[d] == c)
                    labels[d] = ours;
    }
    return 0;
}

static void undo_revive(spd_remote *r, uint32_t revived)
{
    for (int d = 0; d < r->n_daemons; d++) {
        if (revived & (1u << d)) {
            r->d[d].alive = 0;
            r->d[d].comp = -1;
        }
    }
}

/* A change begins: TRANSITION_MESS (the id before) for each group with
 * local members that loses members in it and has not been told already. */
static int begin_change(spd_remote *r, const int labels[MAX_D], uint32_t dying, int64_t now,
                        spd_notices *out)
{
    int was_pending = r->pending;
    int saved_label[MAX_D];
    uint32_t saved_dying = r->pend_dying;
    memcpy(saved_label, r->pend_label, sizeof saved_label);
    memcpy(r->pend_label, labels, sizeof r->pend_label);
    r->pend_dying = dying;
    r->pending = 1;
    spd_notices trans = {0};
    int e = 0;
    size_t told = 0;
    for (size_t gi = 0; gi < r->n_groups && e == 0; gi++) {
        const rgroup *g = r->groups[gi];
        if (g->in_trans || count_local(g) == 0)
            continue;
        int loses = 0;
        for (size_t i = 0; i < g->n && !loses; i++)
            loses = in_comp(r, g->members[i].daemon, local_comp(r)) &&
                    !stays(r, g->members[i].daemon);
        if (!loses)
            continue;
        spd_notice nt;
        e = notices_reserve(&trans, 1);
        if (e == 0)
            e = make_trans(&nt, g, g->view[SPD_REMOTE_LOCAL]);
        if (e == 0) {
            notices_push(&trans, &nt);
            told++;
        }
    }
    if (e == 0)
        e = notices_reserve(out, trans.n);
    if (e) {
        spd_notices_clear(&trans);
        memcpy(r->pend_label, saved_label, sizeof saved_label);
        r->pend_dying = saved_dying;
        r->pending = was_pending;
        return e;
    }
    for (size_t i = 0; i < trans.n; i++) {
        int found;
        r->groups[group_pos(r, trans.items[i].group, &found)]->in_trans = 1;
    }
    notices_move(out, &trans);
    spd_notices_clear(&trans);
    if (!was_pending) {
        uint32_t lo = UINT32_MAX;
        for (int d = 0; d < r->n_daemons; d++)
            if (stays(r, d) && r->d[d].addr < lo)
                lo = r->d[d].addr;
        r->trans_id[0] = (int32_t)lo;
        r->trans_id[1] = next_b(r, now);
        r->last_b = r->trans_id[1];
    }
    return (int)told;
}

int spd_remote_begin(spd_remote *r, int event, const int *daemons, size_t n, int64_t now,
                     spd_notices *out)
{
    if (!r || !out || event < SPD_EVENT_PARTITION || event > SPD_EVENT_CRASH)
        return SPD_REMOTE_E_INVALID;
    int labels[MAX_D];
    uint32_t dying, revived;
    int e = event_target(r, event, daemons, n, now, labels, &dying, &revived);
    if (e == 0) {
        e = begin_change(r, labels, dying, now, out);
        if (e < 0)
            undo_revive(r, revived);
    }
    return e;
}

int spd_remote_settle(spd_remote *r, int64_t now, spd_notices *out)
{
    if (!r || !out || !r->pending)
        return SPD_REMOTE_E_INVALID;
    int labels[MAX_D];
    memcpy(labels, r->pend_label, sizeof labels);
    return apply_change(r, labels, r->pend_dying, now, out);
}

int spd_remote_pending(const spd_remote *r)
{
    return r ? r->pending : SPD_REMOTE_E_INVALID;
}

/* An event at once: the change and its installation in one (a pending
 * change it cascades into is settled with it). */
static int event_now(spd_remote *r, int event, const int *daemons, size_t n, int64_t now,
                     spd_notices *out)
{
    if (!r || !out)
        return SPD_REMOTE_E_INVALID;
    int labels[MAX_D];
    uint32_t dying, revived;
    int e = event_target(r, event, daemons, n, now, labels, &dying, &revived);
    if (e)
        return e;
    if (r->pending) {
        size_t before = out->n;
        e = begin_change(r, labels, dying, now, out);
        if (e >= 0) {
            e = apply_change(r, labels, dying, now, out);
            if (e >= 0)
                e = (int)(out->n - before);
        }
    } else {
        e = apply_change(r, labels, dying, now, out);
    }
    if (e < 0)
        undo_revive(r, revived);
    return e;
}

int spd_remote_partition(spd_remote *r, const int *daemons, size_t n, int64_t now, spd_notices *out)
{
    return event_now(r, SPD_EVENT_PARTITION, daemons, n, now, out);
}

int spd_remote_merge(spd_remote *r, const int *daemons, size_t n, int64_t now, spd_notices *out)
{
    return event_now(r, SPD_EVENT_MERGE, daemons, n, now, out);
}

int spd_remote_crash(spd_remote *r, int daemon, int64_t now, spd_notices *out)
{
    return event_now(r, SPD_EVENT_CRASH, &daemon, 1, now, out);
}

int spd_remote_set_unreachable(spd_remote *r, int daemon, int on)
{
    if (!r || !daemon_ok(r, daemon) || daemon == SPD_REMOTE_LOCAL)
        return SPD_REMOTE_E_INVALID;
    r->d[daemon].unreachable = !!on;
    return 0;
}

int spd_remote_reconfigure(spd_remote *r, const int *comp, size_t n_daemons, int64_t now,
                           spd_notices *out)
{
    if (!r || !out || !comp || n_daemons != (size_t)r->n_daemons)
        return SPD_REMOTE_E_INVALID;
    int labels[MAX_D];
    for (int d = 0; d < MAX_D; d++)
        labels[d] = d < r->n_daemons ? comp[d] : -1;
    return apply_change(r, labels, 0, now, out);
}

/* ---- daemons and members --------------------------------------------- */

int spd_remote_find_daemon(const spd_remote *r, const char *name, size_t len)
{
    if (!r || !name)
        return SPD_REMOTE_E_INVALID;
    for (int d = 0; d < r->n_daemons; d++)
        if (r->d[d].used && r->d[d].name_len == len && memcmp(r->d[d].name, name, len) == 0)
            return d;
    return SPD_REMOTE_E_INVALID;
}

int spd_remote_add_daemon(spd_remote *r, const char *name, size_t len, uint32_t addr, int connected,
                          int64_t now)
{
    if (!r || !name_ok(name, len, WIRE_MAX_PROC_NAME) || spd_remote_find_daemon(r, name, len) >= 0)
        return SPD_REMOTE_E_INVALID;
    if (r->n_daemons >= MAX_D)
        return SPD_REMOTE_E_LIMIT;
    if (r->pending && connected)
        return SPD_REMOTE_E_BUSY; /* it would install the pending change */
    uint32_t top = 0;
    for (int d = 0; d < r->n_daemons; d++) {
        if (r->d[d].addr == addr && addr != 0)
            return SPD_REMOTE_E_INVALID;
        if (r->d[d].addr > top)
            top = r->d[d].addr;
    }
    if (addr == 0) {
        if (top == UINT32_MAX)
            return SPD_REMOTE_E_INVALID;
        addr = top + 1;
    }
    int i = r->n_daemons;
    rdaemon *d = &r->d[i];
    memset(d, 0, sizeof *d);
    d->used = d->alive = 1;
    memcpy(d->name, name, len);
    d->name_len = len;
    d->addr = addr;
    d->comp = i;
    d->memb[0] = (int32_t)addr;
    r->n_daemons++;
    if (!connected) {
        d->memb[1] = next_b(r, now);
        r->last_b = d->memb[1];
        if (r->pending) { /* alone in the pending change too: a label of its own */
            int fresh = 0;
            for (int x = 0; x < MAX_D; x++)
                if (r->pend_label[x] >= fresh)
                    fresh = r->pend_label[x] + 1;
            r->pend_label[i] = fresh;
        }
        return i;
    }
    int labels[MAX_D];
    current_labels(r, labels);
    labels[i] = local_comp(r);
    spd_notices none = {0};
    int e = apply_change(r, labels, 0, now, &none); /* nothing to tell: no members */
    spd_notices_clear(&none);
    if (e < 0) {
        r->n_daemons--;
        memset(d, 0, sizeof *d);
        return e;
    }
    return i;
}

int spd_remote_find_member(const spd_remote *r, int daemon, const char *name, size_t len)
{
    if (!r || !daemon_ok(r, daemon) || !name_ok(name, len, WIRE_MAX_PRIVATE_NAME))
        return SPD_REMOTE_E_INVALID;
    for (size_t m = 0; m < r->n_members; m++) {
        const rmember *x = &r->members[m];
        if (x->used && x->daemon == daemon && x->slot[len + 1] == '#' &&
            memcmp(x->slot + 1, name, len) == 0)
            return (int)m;
    }
    return SPD_REMOTE_E_INVALID;
}

int spd_remote_member_add(spd_remote *r, int daemon, const char *name, size_t len)
{
    if (!r || !daemon_ok(r, daemon) || daemon == SPD_REMOTE_LOCAL || !r->d[daemon].alive ||
        !name_ok(name, len, WIRE_MAX_PRIVATE_NAME) ||
        spd_remote_find_member(r, daemon, name, len) >= 0)
        return SPD_REMOTE_E_INVALID;
    if (r->live_members >= SPD_REMOTE_MAX_MEMBERS)
        return SPD_REMOTE_E_LIMIT;
    size_t m = 0;
    while (m < r->n_members && r->members[m].used)
        m++;
    if (m == r->n_members) {
        int e = grow((void **)&r->members, &r->cap_members, m + 1, sizeof(rmember),
                     SPD_REMOTE_MAX_MEMBERS);
        if (e)
            return e;
        r->n_members++;
    }
    rmember *x = &r->members[m];
    memset(x, 0, sizeof *x);
    x->used = 1;
    x->daemon = daemon;
    char full[WIRE_SLOT];
    size_t n = 0;
    full[n++] = '#';
    memcpy(full + n, name, len);
    n += len;
    full[n++] = '#';
    memcpy(full + n, r->d[daemon].name, r->d[daemon].name_len); /* 1+10+1+19 <= 31 */
    n += r->d[daemon].name_len;
    wire_put_slot(x->slot, full, n);
    r->live_members++;
    return (int)m;
}

static int member_ok(const spd_remote *r, int m)
{
    return m >= 0 && (size_t)m < r->n_members && r->members[m].used;
}

const uint8_t *spd_remote_member_slot(const spd_remote *r, int member)
{
    return r && member_ok(r, member) ? r->members[member].slot : NULL;
}

/* ---- joins and leaves ------------------------------------------------ */

static int do_join(spd_remote *r, int daemon, const uint8_t slot[WIRE_SLOT],
                   const uint8_t name[WIRE_SLOT], spd_notices *out)
{
    int comp = r->d[daemon].comp, gfound, mfound;
    size_t gat = group_pos(r, name, &gfound);
    rgroup *g = gfound ? r->groups[gat] : NULL;
    size_t at = 0;
    if (g) {
        at = member_pos(r, g, daemon, slot, &mfound);
        if (mfound)
            return 0; /* already a member */
        if (g->n >= SPD_REMOTE_MAX_GROUP_MEMBERS)
            return SPD_REMOTE_E_LIMIT;
    } else if (r->n_groups >= SPD_REMOTE_MAX_GROUPS) {
        return SPD_REMOTE_E_LIMIT;
    }
    int e = notices_reserve(out, 1);
    if (e == 0 && !g)
        e = grow((void **)&r->groups, &r->cap_groups, r->n_groups + 1, sizeof(rgroup *),
                 SPD_REMOTE_MAX_GROUPS);
    if (e)
        return e;
    int fresh = !g;
    if (fresh) {
        g = calloc(1, sizeof *g);
        if (!g)
            return SPD_REMOTE_E_NOMEM;
        memcpy(g->name, name, WIRE_SLOT);
    }
    e = grow((void **)&g->members, &g->cap, g->n + 1, sizeof(gmember),
             SPD_REMOTE_MAX_GROUP_MEMBERS);
    if (e) {
        if (fresh)
            free(g);
        return e;
    }
    if (fresh) {
        memmove(&r->groups[gat + 1], &r->groups[gat], (r->n_groups - gat) * sizeof(rgroup *));
        r->groups[gat] = g;
        r->n_groups++;
    }
    int32_t saved[MAX_D][3];
    memcpy(saved, g->view, sizeof saved);
    int existed = count_in(r, g, comp) > 0;
    memmove(&g->members[at + 1], &g->members[at], (g->n - at) * sizeof(gmember));
    memcpy(g->members[at].slot, slot, WIRE_SLOT);
    g->members[at].daemon = daemon;
    g->n++;
    int window = existed && g->in_trans && r->pending && comp == local_comp(r);
    for (int d = 0; d < r->n_daemons; d++) {
        if (!in_comp(r, d, comp))
            continue;
        if (window) { /* the transitional membership's id; c counts on */
            g->view[d][0] = r->trans_id[0];
            g->view[d][1] = r->trans_id[1];
            g->view[d][2]++;
        } else if (existed) {
            g->view[d][2]++;
        } else {
            g->view[d][0] = r->d[comp].memb[0];
            g->view[d][1] = r->d[comp].memb[1];
            g->view[d][2] = 1;
        }
    }
    int n = window ? window_notice(r, g, slot, out)
                   : change_notice(r, g, daemon, WIRE_CAUSED_BY_JOIN, slot, out);
    if (n < 0) { /* undo */
        memmove(&g->members[at], &g->members[at + 1], (g->n - at - 1) * sizeof(gmember));
        g->n--;
        memcpy(g->view, saved, sizeof saved);
        if (g->n == 0)
            delete_group_at(r, gat);
    }
    return n;
}

static int do_leave(spd_remote *r, int daemon, const uint8_t slot[WIRE_SLOT],
                    const uint8_t name[WIRE_SLOT], uint32_t cause, spd_notices *out)
{
    int comp = r->d[daemon].comp, gfound, mfound;
    size_t gat = group_pos(r, name, &gfound);
    if (!gfound)
        return 0;
    rgroup *g = r->groups[gat];
    size_t at = member_pos(r, g, daemon, slot, &mfound);
    if (!mfound)
        return 0; /* not a member */
    int e = notices_reserve(out, 1);
    if (e)
        return e;
    gmember gone = g->members[at];
    int32_t saved[MAX_D][3];
    memcpy(saved, g->view, sizeof saved);
    memmove(&g->members[at], &g->members[at + 1], (g->n - at - 1) * sizeof(gmember));
    g->n--;
    int window = g->in_trans && r->pending && comp == local_comp(r);
    if (count_in(r, g, comp) > 0) {
        for (int d = 0; d < r->n_daemons; d++) {
            if (!in_comp(r, d, comp))
                continue;
            if (window) {
                g->view[d][0] = r->trans_id[0];
                g->view[d][1] = r->trans_id[1];
            }
            g->view[d][2]++;
        }
    }
    int n = window && count_local(g) ? window_notice(r, g, NULL, out)
                                     : change_notice(r, g, daemon, cause, slot, out);
    if (n < 0) { /* undo */
        memmove(&g->members[at + 1], &g->members[at], (g->n - at) * sizeof(gmember));
        g->members[at] = gone;
        g->n++;
        memcpy(g->view, saved, sizeof saved);
        return n;
    }
    if (g->n == 0)
        delete_group_at(r, gat);
    return n;
}

static int group_slot(uint8_t slot[WIRE_SLOT], const char *group, size_t len)
{
    if (!group || !wire_group_name_ok(group, len))
        return SPD_REMOTE_E_INVALID;
    wire_put_slot(slot, group, len);
    return 0;
}

int spd_remote_member_join(spd_remote *r, int member, const char *group, size_t len,
                           spd_notices *out)
{
    uint8_t name[WIRE_SLOT];
    if (!r || !out || !member_ok(r, member) || group_slot(name, group, len))
        return SPD_REMOTE_E_INVALID;
    const rmember *m = &r->members[member];
    if (!reachable(r, m->daemon))
        return SPD_REMOTE_E_BUSY;
    return do_join(r, m->daemon, m->slot, name, out);
}

int spd_remote_member_leave(spd_remote *r, int member, const char *group, size_t len,
                            spd_notices *out)
{
    uint8_t name[WIRE_SLOT];
    if (!r || !out || !member_ok(r, member) || group_slot(name, group, len))
        return SPD_REMOTE_E_INVALID;
    const rmember *m = &r->members[member];
    if (!reachable(r, m->daemon))
        return SPD_REMOTE_E_BUSY;
    return do_leave(r, m->daemon, m->slot, name, WIRE_CAUSED_BY_LEAVE, out);
}

int spd_remote_member_remove(spd_remote *r, int member, spd_notices *out)
{
    if (!r || !out || !member_ok(r, member))
        return SPD_REMOTE_E_INVALID;
    rmember *m = &r->members[member];
    if (!reachable(r, m->daemon))
        return SPD_REMOTE_E_BUSY;
    int total = 0, failed = 0;
    /* By group name, as a disconnect is processed; a leave may delete the
     * group at i, and then the next one has moved to i. */
    for (size_t i = 0; i < r->n_groups;) {
        rgroup *g = r->groups[i];
        int found;
        size_t at = member_pos(r, g, m->daemon, m->slot, &found);
        if (!found) {
            i++;
            continue;
        }
        size_t before = r->n_groups;
        int n = do_leave(r, m->daemon, m->slot, g->name, WIRE_CAUSED_BY_DISC, out);
        if (n < 0) {
            /* No memory for the notice: the member goes without one. */
            failed = 1;
            memmove(&g->members[at], &g->members[at + 1], (g->n - at - 1) * sizeof(gmember));
            g->n--;
            int comp = r->d[m->daemon].comp;
            if (count_in(r, g, comp) > 0)
                for (int d = 0; d < r->n_daemons; d++)
                    if (in_comp(r, d, comp))
                        g->view[d][2]++;
            if (g->n == 0)
                delete_group_at(r, i);
        } else {
            total += n;
        }
        if (r->n_groups == before)
            i++;
    }
    m->used = 0;
    r->live_members--;
    return failed ? SPD_REMOTE_E_NOMEM : total;
}

/* ---- data ------------------------------------------------------------ */

static int slot_order(const void *a, const void *b)
{
    return memcmp(a, b, WIRE_SLOT);
}

int spd_remote_multicast(spd_remote *r, int member, uint32_t service, const uint8_t *groups,
                         size_t n_groups, int16_t mess_type, const uint8_t *data, size_t len,
                         spd_notices *out)
{
    if (!r || !out || !member_ok(r, member) || (n_groups && !groups) || (len && !data))
        return SPD_REMOTE_E_INVALID;
    if ((service & ~(WIRE_SERVICE_BITS | WIRE_SELF_DISCARD)) || !(service & WIRE_SERVICE_BITS) ||
        n_groups > WIRE_MAX_GROUPS || len > WIRE_MAX_BODY ||
        len + WIRE_SLOT * n_groups > WIRE_DAEMON_MAX_TOTAL)
        return SPD_REMOTE_E_INVALID;
    const rmember *m = &r->members[member];
    if (!in_comp(r, m->daemon, local_comp(r)) || !reachable(r, m->daemon))
        return 0; /* not across the partition (or one on its way) */
    size_t cap = 0;
    for (size_t i = 0; i < n_groups; i++) {
        const uint8_t *slot = groups + i * WIRE_SLOT;
        if (slot[0] == '#') {
            cap++;
        } else {
            uint8_t name[WIRE_SLOT];
            wire_put_slot(name, (const char *)slot, wire_slot_len(slot));
            const rgroup *g = find_group(r, name);
            cap += g ? count_local(g) : 0;
        }
    }
    if (cap == 0)
        return 0;
    int e = notices_reserve(out, 1);
    if (e)
        return e;
    uint8_t *recv = malloc(cap * WIRE_SLOT);
    if (!recv)
        return SPD_REMOTE_E_NOMEM;
    size_t n = 0;
    const rdaemon *ours = &r->d[SPD_REMOTE_LOCAL];
    for (size_t i = 0; i < n_groups; i++) {
        const uint8_t *slot = groups + i * WIRE_SLOT;
        size_t sl = wire_slot_len(slot);
        if (sl == 0)
            continue;
        if (slot[0] == '#') {
            size_t name_len, daemon_len;
            const uint8_t *dn;
            if (wire_split_private_group(slot, sl, &name_len, &dn, &daemon_len) == 0 &&
                daemon_len == ours->name_len && memcmp(dn, ours->name, daemon_len) == 0)
                wire_put_slot(recv + WIRE_SLOT * n++, (const char *)slot, sl);
            continue;
        }
        uint8_t name[WIRE_SLOT];
        wire_put_slot(name, (const char *)slot, sl);
        const rgroup *g = find_group(r, name);
        for (size_t j = 0; g && j < g->n; j++)
            if (g->members[j].daemon == SPD_REMOTE_LOCAL)
                memcpy(recv + WIRE_SLOT * n++, g->members[j].slot, WIRE_SLOT);
    }
    if (n == 0) {
        free(recv);
        return 0;
    }
    qsort(recv, n, WIRE_SLOT, slot_order);
    size_t u = 1;
    for (size_t i = 1; i < n; i++)
        if (memcmp(recv + WIRE_SLOT * i, recv + WIRE_SLOT * (u - 1), WIRE_SLOT) != 0)
            memmove(recv + WIRE_SLOT * u++, recv + WIRE_SLOT * i, WIRE_SLOT);
    uint8_t hint[4];
    wire_make_hint(hint, mess_type);
    spd_notice nt;
    e = notice_alloc(&nt, SPD_NOTICE_DATA, service, m->slot, hint, groups, n_groups, len);
    if (e) {
        free(recv);
        return e;
    }
    if (len)
        memcpy(notice_body(&nt, n_groups), data, len);
    nt.receivers = recv;
    nt.n_receivers = u;
    notices_push(out, &nt);
    return 1;
}

/* ---- the local daemon's hooks ---------------------------------------- */

static int local_args(const uint8_t *group, size_t len, const uint8_t *member,
                      uint8_t name[WIRE_SLOT])
{
    if (!member || member[0] != '#' || group_slot(name, (const char *)group, len))
        return SPD_REMOTE_E_INVALID;
    return 0;
}

int spd_remote_local_join(spd_remote *r, const uint8_t *group, size_t len,
                          const uint8_t member[WIRE_SLOT], spd_notices *out)
{
    uint8_t name[WIRE_SLOT], slot[WIRE_SLOT];
    if (!r || !out || local_args(group, len, member, name))
        return SPD_REMOTE_E_INVALID;
    wire_put_slot(slot, (const char *)member, wire_slot_len(member));
    return do_join(r, SPD_REMOTE_LOCAL, slot, name, out);
}

int spd_remote_local_leave(spd_remote *r, const uint8_t *group, size_t len,
                           const uint8_t member[WIRE_SLOT], uint32_t cause, spd_notices *out)
{
    uint8_t name[WIRE_SLOT], slot[WIRE_SLOT];
    if (!r || !out || local_args(group, len, member, name) ||
        (cause != WIRE_CAUSED_BY_LEAVE && cause != WIRE_CAUSED_BY_DISC))
        return SPD_REMOTE_E_INVALID;
    wire_put_slot(slot, (const char *)member, wire_slot_len(member));
    return do_leave(r, SPD_REMOTE_LOCAL, slot, name, cause, out);
}

int spd_remote_adopt_group(spd_remote *r, const uint8_t *group, size_t len, const int32_t gid[3],
                           const uint8_t *members, size_t n)
{
    uint8_t name[WIRE_SLOT];
    if (!r || !gid || (n && !members) || n == 0 || group_slot(name, (const char *)group, len))
        return SPD_REMOTE_E_INVALID;
    int found;
    size_t gat = group_pos(r, name, &found);
    if (found)
        return SPD_REMOTE_E_INVALID;
    if (r->n_groups >= SPD_REMOTE_MAX_GROUPS || n > SPD_REMOTE_MAX_GROUP_MEMBERS)
        return SPD_REMOTE_E_LIMIT;
    int e = grow((void **)&r->groups, &r->cap_groups, r->n_groups + 1, sizeof(rgroup *),
                 SPD_REMOTE_MAX_GROUPS);
    if (e)
        return e;
    rgroup *g = calloc(1, sizeof *g);
    if (!g)
        return SPD_REMOTE_E_NOMEM;
    g->members = malloc(n * sizeof(gmember));
    if (!g->members) {
        free(g);
        return SPD_REMOTE_E_NOMEM;
    }
    g->cap = n;
    memcpy(g->name, name, WIRE_SLOT);
    for (size_t i = 0; i < n; i++) {
        const uint8_t *s = members + i * WIRE_SLOT;
        if (s[0] != '#') {
            free(g->members);
            free(g);
            return SPD_REMOTE_E_INVALID;
        }
        gmember x;
        wire_put_slot(x.slot, (const char *)s, wire_slot_len(s));
        x.daemon = SPD_REMOTE_LOCAL;
        int dup;
        size_t at = member_pos(r, g, SPD_REMOTE_LOCAL, x.slot, &dup);
        if (dup)
            continue;
        memmove(&g->members[at + 1], &g->members[at], (g->n - at) * sizeof(gmember));
        g->members[at] = x;
        g->n++;
    }
    for (int d = 0; d < r->n_daemons; d++)
        if (in_comp(r, d, local_comp(r)))
            memcpy(g->view[d], gid, sizeof g->view[d]);
    memmove(&r->groups[gat + 1], &r->groups[gat], (r->n_groups - gat) * sizeof(rgroup *));
    r->groups[gat] = g;
    r->n_groups++;
    return 0;
}

/* ---- queries --------------------------------------------------------- */

void spd_remote_memb_id(const spd_remote *r, int32_t out[2])
{
    out[0] = r->d[SPD_REMOTE_LOCAL].memb[0];
    out[1] = r->d[SPD_REMOTE_LOCAL].memb[1];
}

int spd_remote_n_daemons(const spd_remote *r)
{
    return r ? r->n_daemons : SPD_REMOTE_E_INVALID;
}

int spd_remote_connected(const spd_remote *r, int daemon)
{
    if (!r || !daemon_ok(r, daemon))
        return SPD_REMOTE_E_INVALID;
    return in_comp(r, daemon, local_comp(r));
}

int spd_remote_daemon_info(const spd_remote *r, int daemon, char name[WIRE_MAX_PROC_NAME + 1],
                           uint32_t *addr)
{
    if (!r || !daemon_ok(r, daemon))
        return SPD_REMOTE_E_INVALID;
    if (name) {
        memcpy(name, r->d[daemon].name, r->d[daemon].name_len);
        name[r->d[daemon].name_len] = '\0';
    }
    if (addr)
        *addr = r->d[daemon].addr;
    return 0;
}

int spd_remote_reachable(const spd_remote *r, int daemon)
{
    if (!r || !daemon_ok(r, daemon))
        return SPD_REMOTE_E_INVALID;
    return r->d[daemon].alive && reachable(r, daemon);
}

int spd_remote_alive(const spd_remote *r, int daemon)
{
    if (!r || !daemon_ok(r, daemon))
        return SPD_REMOTE_E_INVALID;
    return r->d[daemon].alive;
}

int spd_remote_view(const spd_remote *r, int daemon, const char *group, size_t len, int32_t gid[3],
                    uint8_t *members, size_t cap)
{
    uint8_t name[WIRE_SLOT];
    if (!r || !daemon_ok(r, daemon) || !r->d[daemon].alive || group_slot(name, group, len) ||
        (cap && !members))
        return SPD_REMOTE_E_INVALID;
    const rgroup *g = find_group(r, name);
    if (!g)
        return 0;
    int comp = r->d[daemon].comp, n = 0;
    for (size_t i = 0; i < g->n; i++) {
        if (!in_comp(r, g->members[i].daemon, comp))
            continue;
        if ((size_t)n < cap)
            memcpy(members + WIRE_SLOT * (size_t)n, g->members[i].slot, WIRE_SLOT);
        n++;
    }
    if (n && gid)
        memcpy(gid, g->view[daemon], 3 * sizeof(int32_t));
    return n;
}
