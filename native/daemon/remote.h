/*
 * remote.h -- simulated remote daemons and network events for the embedded
 * daemon (issue 14; SPEC.md 6.1, 6.2, 6.3, 6.6, 6.8).
 *
 * A model of a Spread network seen from the one real daemon: other daemons
 * that exist only here, their members (private groups "#member#daemon"),
 * which daemons see each other (components), and every group's state as
 * each component sees it. Each call is one event -- a remote member joins,
 * leaves, disconnects or multicasts; daemons partition, merge, crash -- and
 * appends to a caller's list the messages the local daemon's clients get,
 * as the bytes they read and the private groups of the local clients that
 * get them (spd_notice). It is sans-IO, like wire.c: no sockets, no clock
 * (times are arguments), no globals; all memory is its own, bounded by the
 * SPD_REMOTE_MAX_* limits, and freed by spd_remote_free and
 * spd_notices_clear. It depends on wire.h only.
 *
 * What a client gets (SPEC.md 6.8 followed; remote.md has the table):
 *
 *   remote join / leave / disconnect, its daemon connected to ours:
 *       REG_MEMB|CAUSED_BY_JOIN / _LEAVE / _DISCONNECT, as for a local one:
 *       all members (local and remote) in canonical order, one vs-set
 *       naming the member that changed, c + 1.
 *   a cut (partition of daemons holding members of G; a crash):
 *       TRANSITION_MESS with G's old id, then REG_MEMB|CAUSED_BY_NETWORK
 *       listing our side's members, one vs-set (the members that stay),
 *       a fresh id [leader address, membership time, 1].
 *   a merge (also a heal after a multi-way split, one event):
 *       no TRANSITION_MESS; REG_MEMB|CAUSED_BY_NETWORK listing all members,
 *       one vs-set per previous component holding members of G, the local
 *       offset at ours, a fresh id.
 *   a cut and a merge in one reconfiguration: TRANSITION_MESS, then one
 *       network membership with a set per component.
 *   a group without members on the daemons that come or go: nothing, and
 *       its id is kept.
 *   In one event the transitional messages of every group come first (by
 *   group name), then the network memberships (by group name).
 *
 * Model rules (where SPEC.md leaves a choice):
 *   - Configuration order = ascending daemon address; members are listed by
 *     daemon in that order, then by private group name, byte-wise (6.1).
 *   - A daemon membership's id (group ids' a, b; 6.6): a = the lowest
 *     address in the component (its leader), b = max(now, last b + 1) over
 *     every membership this model forms, so it increases strictly. All
 *     components formed in one event get the same b.
 *   - A changed component forms a new daemon membership. A group's id
 *     changes only when the group changed in it (lost members, or members of
 *     two previous components meet); then it is [a, b, 1].
 *   - vs-sets are ordered by the group id of the previous component they
 *     come from (a unsigned, then b, then c), then by their lowest daemon
 *     address; members inside a set in canonical order.
 *   - A crashed daemon's members are gone; merging a crashed daemon brings
 *     it back without members (a restart, folded into the merge).
 *   - Adding a daemon is a daemon membership change with nothing to tell.
 *
 * Limits (SPD_REMOTE_E_LIMIT past them): SPD_REMOTE_MAX_DAEMONS daemons
 * (ours included), SPD_REMOTE_MAX_MEMBERS remote members at once,
 * SPD_REMOTE_MAX_GROUPS groups with a member anywhere, and
 * SPD_REMOTE_MAX_GROUP_MEMBERS members in one group over all daemons.
 *
 * How the daemon uses it (server.c, groups.c, control.c):
 *   - spd_daemon gets `spd_remote *remote` (NULL: a lone daemon, today's
 *     code paths unchanged) and a `spd_notices` scratch list. It is created
 *     on the first add-remote-daemon control request with
 *     spd_remote_new(d->name, d->memb_id); existing groups are handed over
 *     with spd_remote_adopt_group (their gid and members' private groups).
 *   - groups.c, when d->remote is set: spd_join calls
 *     spd_remote_local_join, spd_leave (after its self-leave) and
 *     spd_remove_from_groups (per group, in its name order) call
 *     spd_remote_local_leave with WIRE_CAUSED_BY_LEAVE / _DISC; then, in
 *     place of notify_members, it delivers the notices (below). A group
 *     whose local members are gone is deleted from groups.c as today; the
 *     model keeps it while remote members remain, and the next local join
 *     gets its continuing id from the notice. -1 from a hook means the join
 *     could not be recorded: treat it like groups.c's out-of-memory (no
 *     join).
 *   - Delivering a notice: for each slot of receivers, the local client of
 *     that private group (d->names, by the name between the '#'s); a
 *     SPD_NOTICE_MEMBERSHIP goes only to clients with the membership flag, a
 *     SPD_NOTICE_DATA to every one; bytes are shared (one msgbuf per notice,
 *     spd_enqueue for each). For a membership notice set the group's
 *     g->gid = notice.gid when groups.c has the group. Then
 *     spd_notices_clear.
 *   - Control requests (remote.md: the Python API and the control channel)
 *     map one to one on spd_remote_add_daemon, _member_add, _member_join,
 *     _member_leave, _member_remove, _multicast, _partition, _merge,
 *     _crash, _begin and _settle, with now = time(NULL) (or the set
 *     network clock); "after MS" ones later (control.c); server.c runs them in
 *     its loop between two epoll batches, so notices are ordered with the
 *     local requests like any other message.
 *   - spd_deliver (local senders) is unchanged: remote members receive
 *     nothing; unicasts to "#x#remote" are dropped as today.
 */
#ifndef SPREAD_CLIENT_DAEMON_REMOTE_H
#define SPREAD_CLIENT_DAEMON_REMOTE_H

#include <stddef.h>
#include <stdint.h>

#include "wire.h"

#define SPD_REMOTE_MAX_DAEMONS       16 /* ours included (index SPD_REMOTE_LOCAL) */
#define SPD_REMOTE_MAX_MEMBERS       1024
#define SPD_REMOTE_MAX_GROUPS        4096
#define SPD_REMOTE_MAX_GROUP_MEMBERS 2048
#define SPD_REMOTE_LOCAL             0 /* the daemon index of ours */

/* Results: >= 0 success (a count or an index), else one of these. On an
 * error nothing changed, except where a function says otherwise. */
#define SPD_REMOTE_E_INVALID (-1) /* bad argument: unknown daemon or member, bad name */
#define SPD_REMOTE_E_LIMIT   (-2) /* a SPD_REMOTE_MAX_* limit */
#define SPD_REMOTE_E_NOMEM   (-3)
#define SPD_REMOTE_E_BUSY    (-4) /* a change on its way: the daemon is being cut off */

typedef struct spd_remote spd_remote;

typedef enum { SPD_NOTICE_MEMBERSHIP = 1, SPD_NOTICE_DATA = 2 } spd_notice_kind;

/* One message for local clients. */
typedef struct {
    spd_notice_kind kind;
    uint32_t type;            /* the message's type, without the marker */
    uint8_t group[WIRE_SLOT]; /* membership: the group (also the header's sender) */
    int32_t gid[3];           /* membership: the group's id once this is delivered */
    uint8_t *bytes;           /* the whole message as a client reads it (LE) */
    size_t len;
    uint8_t *receivers;       /* n_receivers private group slots of local clients, */
    size_t n_receivers;       /* each once, byte-wise ascending */
} spd_notice;

/* A caller's list; zero-initialise it. Notices are appended in delivery
 * order; spd_notices_clear frees them (the list can be reused). */
typedef struct {
    spd_notice *items;
    size_t n, cap;
} spd_notices;
void spd_notices_clear(spd_notices *list);

/* Our daemon: its name (as in "#x#name", 1..WIRE_MAX_PROC_NAME bytes) and
 * its current daemon membership id (spd_daemon's memb_id: address, time),
 * which makes its address memb_id[0]. NULL on a bad name or no memory. */
spd_remote *spd_remote_new(const char *name, size_t len, const int32_t memb_id[2]);
void spd_remote_free(spd_remote *r);

/* A remote daemon, by name (unique, not ours); addr 0: one above the highest
 * address so far. connected: it joins our component (a daemon membership
 * change: a new membership id for ours, no notices); else it stays alone.
 * Returns its index (1 ..), which stays valid for the model's life. */
int spd_remote_add_daemon(spd_remote *r, const char *name, size_t len, uint32_t addr, int connected,
                          int64_t now);
int spd_remote_find_daemon(const spd_remote *r, const char *name, size_t len);

/* A member of a remote daemon that is up: "#name#daemon". Returns a member
 * handle (0 ..), valid until it is removed or its daemon crashes. */
int spd_remote_member_add(spd_remote *r, int daemon, const char *name, size_t len);
int spd_remote_find_member(const spd_remote *r, int daemon, const char *name, size_t len);

/* The member joins / leaves group (1..31 legal bytes); already a member /
 * not a member: nothing happens (0). Notices only if its daemon is in our
 * component. Returns the number of notices appended. */
int spd_remote_member_join(spd_remote *r, int member, const char *group, size_t len,
                           spd_notices *out);
int spd_remote_member_leave(spd_remote *r, int member, const char *group, size_t len,
                            spd_notices *out);
/* The member disconnects: CAUSED_BY_DISCONNECT in each of its groups (by
 * group name); its handle ends. On SPD_REMOTE_E_NOMEM it is gone all the
 * same, but notices for some groups are missing. */
int spd_remote_member_remove(spd_remote *r, int member, spd_notices *out);

/* A data message from the member to n_groups slots (groups, or private
 * groups: ours reach our clients, other daemons' are dropped), as our
 * daemon delivers a request (SPEC.md 8.4): service = the request's type
 * (service bits, SELF_DISCARD), the hint made from mess_type. Limits as a
 * daemon checks a request (8.2). One SPD_NOTICE_DATA if any local client
 * gets it; nothing if the member's daemon is not in our component. */
int spd_remote_multicast(spd_remote *r, int member, uint32_t service, const uint8_t *groups,
                         size_t n_groups, int16_t mess_type, const uint8_t *data, size_t len,
                         spd_notices *out);

/* Network events. Each is one daemon membership change (no-op changes
 * append nothing and form no membership).
 * partition: the n daemons (remote, up, distinct) leave their components
 *   and form one component together.
 * merge: our component and the components of the n daemons become one (a
 *   crashed daemon among them comes back without members).
 * crash: the daemon (remote, up) stops; its members are gone.
 * reconfigure: any regrouping: daemons with equal comp[i] see each other
 *   (comp has n_daemons entries, those of crashed daemons ignored). */
int spd_remote_partition(spd_remote *r, const int *daemons, size_t n, int64_t now,
                         spd_notices *out);
int spd_remote_merge(spd_remote *r, const int *daemons, size_t n, int64_t now, spd_notices *out);
int spd_remote_crash(spd_remote *r, int daemon, int64_t now, spd_notices *out);
int spd_remote_reconfigure(spd_remote *r, const int *comp, size_t n_daemons, int64_t now,
                           spd_notices *out);

/* A change in two steps, as a real network delivers it under churn (SPEC.md
 * 6.8): spd_remote_begin starts the event (SPD_EVENT_*, the daemons as for
 * partition / merge / crash) and appends only the TRANSITION_MESS (the id
 * before) of each group with local members that loses members in it. The
 * change is then pending: the installed components stay, and
 *   - a join or leave (local, or by a member of a daemon that stays) in a
 *     group told TRANSITION_MESS gives a REG_MEMB|CAUSED_BY_NETWORK
 *     listing every member still installed, vs-sets: those that stay, then
 *     one set per daemon on its way out (address order), then a joiner
 *     alone (a local joiner's own offset points there); the id [a, b, c]
 *     of the transitional membership (a = the lowest address that stays,
 *     b = a fresh membership time no installed membership has), c counting
 *     on from the group's; then another TRANSITION_MESS with that id;
 *   - other groups' joins and leaves are told as usual;
 *   - members of daemons on their way out cannot join, leave or disconnect
 *     (SPD_REMOTE_E_BUSY) and their multicasts are lost; a daemon that
 *     merges in is not reached yet;
 *   - a further event (begun or at once) cascades into the pending change:
 *     its own TRANSITION_MESS for groups it newly cuts, one installation;
 *     adding a connected daemon is SPD_REMOTE_E_BUSY.
 * spd_remote_settle installs it: the network memberships the events would
 * have given at once, without a second TRANSITION_MESS, and one for each
 * group told TRANSITION_MESS even if it lost nothing in the end. An event
 * at once while a change is pending settles it. Settle without a pending
 * change: SPD_REMOTE_E_INVALID. */
enum { SPD_EVENT_PARTITION = 1, SPD_EVENT_MERGE = 2, SPD_EVENT_CRASH = 3 };
int spd_remote_begin(spd_remote *r, int event, const int *daemons, size_t n, int64_t now,
                     spd_notices *out);
int spd_remote_settle(spd_remote *r, int64_t now, spd_notices *out);
/* 1 while a change is pending, else 0. */
int spd_remote_pending(const spd_remote *r);
/* A remote daemon's traffic stops reaching us (on) or reaches us again: its
 * multicasts are lost and its members' changes refused (SPD_REMOTE_E_BUSY),
 * as between a real cut or crash and its detection (control.c's delayed
 * events set it until the event runs). */
int spd_remote_set_unreachable(spd_remote *r, int daemon, int on);

/* Hooks for groups.c: a local client (its private group slot) joins /
 * leaves (cause WIRE_CAUSED_BY_LEAVE or WIRE_CAUSED_BY_DISC) a group. The
 * notice, if the group has local members to tell, is what groups.c sends
 * today with the remote members added, and carries the id to keep. */
int spd_remote_local_join(spd_remote *r, const uint8_t *group, size_t len,
                          const uint8_t member[WIRE_SLOT], spd_notices *out);
int spd_remote_local_leave(spd_remote *r, const uint8_t *group, size_t len,
                           const uint8_t member[WIRE_SLOT], uint32_t cause, spd_notices *out);
/* Hands over a local group that existed before the model: its id and its
 * local members (n slots). The group must not be known to the model yet. */
int spd_remote_adopt_group(spd_remote *r, const uint8_t *group, size_t len, const int32_t gid[3],
                           const uint8_t *members, size_t n);

/* Queries. The daemon membership id of our component (a new group's a, b). */
void spd_remote_memb_id(const spd_remote *r, int32_t out[2]);
int spd_remote_n_daemons(const spd_remote *r);
/* 1 if the daemon is up and in our component, 0 if not, or an error. */
int spd_remote_connected(const spd_remote *r, int daemon);
int spd_remote_alive(const spd_remote *r, int daemon);
/* 1 if its members' changes and data reach us now (up, not unreachable,
 * not on its way out in the pending change), 0 if not, or an error. */
int spd_remote_reachable(const spd_remote *r, int daemon);
/* A daemon's name (NUL-terminated) and address; 0, or an error. */
int spd_remote_daemon_info(const spd_remote *r, int daemon, char name[WIRE_MAX_PROC_NAME + 1],
                           uint32_t *addr);
/* The group as the daemon's component sees it: its id and its members
 * (canonical order, up to cap slots). Returns the member count (0: the
 * group does not exist there), or an error. */
int spd_remote_view(const spd_remote *r, int daemon, const char *group, size_t len, int32_t gid[3],
                    uint8_t *members, size_t cap);
/* A member's private group slot, or NULL. */
const uint8_t *spd_remote_member_slot(const spd_remote *r, int member);

#endif /* SPREAD_CLIENT_DAEMON_REMOTE_H */
