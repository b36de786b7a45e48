/* control.c -- the daemon's control channel: figures and faults for tests,
 * served by the event loop itself (server.c), so that they are read and
 * applied between two events, never while one is half done, and without
 * a lock or a thread.
 *
 * Where: a unix socket (a path), a TCP port on 127.0.0.1 only, and/or one
 * already connected descriptor (a binding's socketpair). It never listens
 * beyond loopback: any other host is refused when the daemon opens, and a
 * TCP peer that is not on 127.0.0.0/8 is closed unanswered.
 *
 * The format: a request is one line of printable ASCII (0x20..0x7E),
 * words separated by spaces, ended by "\n" (a "\r" before it is dropped),
 * at most SPD_CTL_LINE_MAX bytes with the newline. The answer is one line
 * "ok ..." or "error <text>"; "ok N" for sessions is followed by N lines.
 * A line longer than the limit is answered with an error and skipped to
 * its newline; no error closes the connection.
 *
 *   ping                       ok pong
 *   totals                     ok key=value ...       (daemon-wide figures)
 *   sessions                   ok N, then N lines "session key=value ... reason=TEXT"
 *   session NAME               ok 1, then its line (the newest ended one, if not open)
 *   kill NAME                  ok   the slow-reader kill ("killing ... for not reading")
 *   drop NAME                  ok   the socket closed at once, as a crash closes it
 *   pause NAME [requests|deliveries|both]   ok   (requests if not said)
 *   resume NAME                ok   both resumed
 *   pause-daemon               ok   nothing read or written but this channel
 *   resume-daemon              ok
 *
 * NAME is a session's private name ("alice") or private group
 * ("#alice#localhost"). A session line's reason comes last, to the end of
 * the line (it may hold spaces; empty while the session is open).
 *
 * The simulated network (remote.h; the model is created by the first
 * remote-add, with the groups that exist then). Events answer
 * "ok notices=N": the messages they queued for local clients, through
 * the same output queues as any other (so the slow-reader rules apply).
 *
 *   remote-add NAME [ADDRESS] [connected|alone]   ok index=I address=A
 *                              a remote daemon (ADDRESS a.b.c.d, default the
 *                              next above the highest; alone: not connected)
 *   remote-member DAEMON MEMBER                   ok member=#MEMBER#DAEMON
 *   remote-member DAEMON MEMBER join GROUP        (created if new)
 *   remote-member DAEMON MEMBER leave GROUP
 *   remote-member DAEMON MEMBER disconnect
 *   remote-multicast DAEMON MEMBER SERVICE TYPE GROUP[,GROUP...] LEN
 *                              then exactly LEN payload bytes (0..144000)
 *                              after the newline; SERVICE a number (one
 *                              service bit, SELF_DISCARD allowed) or a name
 *                              (agreed, safe, ...), TYPE -32768..65535,
 *                              GROUP a group or a private group. A refused
 *                              line whose last word is a number is
 *                              followed by that many bytes, skipped.
 *   partition DAEMON...        the daemons leave our component, together
 *   merge DAEMON...            their components and ours become one
 *   crash DAEMON               it stops; its members are gone
 *   begin partition|merge|crash DAEMON...
 *                              the change begins: TRANSITION_MESS now, the
 *                              change pending (remote.h, spd_remote_begin)
 *   settle                     the pending change is installed
 *   after MS REQUEST           REQUEST (one of the five above) runs MS ms
 *                              later (0..3600000), in the loop; answered
 *                              "ok notices=0 scheduled=MS" at once; the
 *                              daemons a partition or crash cuts off are
 *                              unreachable meanwhile (their data lost);
 *                              a failure then is logged
 *   network                    ok N memb_id=A,B clock=T pending=P
 *                              scheduled=S, then N lines "daemon name=..
 *                              index=.. address=.. local=.. connected=..
 *                              alive=.. reachable=.."
 *   network-clock SECONDS|real the time events are stamped with (before the
 *                              first remote-add it also restarts our
 *                              membership id at SECONDS - 1)
 *   network-address ADDRESS    our address in it (before the first remote-add)
 */
#include "internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define TAG_LISTEN  ((void *)5)
#define CTL_OUT_MAX (16u << 20) /* a reader of answers that never reads is closed */

typedef struct ctl_conn {
    int fd;
    char in[SPD_CTL_LINE_MAX];
    size_t in_len;
    char *out;
    size_t out_len, out_off, out_cap;
    int closing;    /* close once the answers are written */
    int skipping;   /* inside a line past the limit, dropped to its newline */
    uint32_t events; /* what ctl_epfd watches */
    /* A remote-multicast whose payload is still coming (the request
     * parsed, the payload's bytes gathered), or a refused one's to skip. */
    ctl_request *pending;
    uint8_t *payload;
    size_t payload_have, skip;
} ctl_conn;

/* ---- the request parser (sans-IO) ----------------------------------- */

static const struct {
    const char *word;
    ctl_verb verb;
    int name; /* takes a session name */
} verbs[] = {
    {"ping", CTL_PING, 0},
    {"totals", CTL_TOTALS, 0},
    {"sessions", CTL_SESSIONS, 0},
    {"session", CTL_SESSION, 1},
    {"kill", CTL_KILL, 1},
    {"drop", CTL_DROP, 1},
    {"pause", CTL_PAUSE, 1},
    {"resume", CTL_RESUME, 1},
    {"pause-daemon", CTL_PAUSE_DAEMON, 0},
    {"resume-daemon", CTL_RESUME_DAEMON, 0},
    {"remote-add", CTL_REMOTE_ADD, 0},
    {"remote-member", CTL_REMOTE_MEMBER, 0},
    {"remote-multicast", CTL_REMOTE_MULTICAST, 0},
    {"partition", CTL_PARTITION, 0},
    {"merge", CTL_MERGE, 0},
    {"crash", CTL_CRASH, 0},
    {"network", CTL_NETWORK, 0},
    {"network-clock", CTL_NETWORK_CLOCK, 0},
    {"network-address", CTL_NETWORK_ADDRESS, 0},
    {"settle", CTL_SETTLE, 0},
};

/* "after MS begin partition" and every remote daemon */
#define MAX_WORDS    (4 + SPD_REMOTE_MAX_DAEMONS)
#define MAX_AFTER_MS 3600000 /* an hour */

static int word_is(const char *w, size_t len, const char *word)
{
    return strlen(word) == len && memcmp(w, word, len) == 0;
}

/* A decimal number 0..max (no sign, at most 10 digits): 0, or -1. */
static int parse_number(const char *w, size_t len, unsigned long long max, unsigned long long *out)
{
    if (len == 0 || len > 10)
        return -1;
    unsigned long long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (w[i] < '0' || w[i] > '9')
            return -1;
        v = v * 10 + (unsigned)(w[i] - '0');
    }
    if (v > max)
        return -1;
    *out = v;
    return 0;
}

/* A name of 1..max bytes from '$' to '~' (so no '#'), copied NUL-terminated. */
static int parse_plain_name(const char *w, size_t len, size_t max, char *out, size_t *out_len)
{
    if (len == 0 || len > max)
        return -1;
    for (size_t i = 0; i < len; i++)
        if (!wire_name_char_ok((uint8_t)w[i]))
            return -1;
    memcpy(out, w, len);
    out[len] = '\0';
    *out_len = len;
    return 0;
}

/* A dotted IPv4 address, not 0.0.0.0: 0, or -1. */
static int parse_addr(const char *w, size_t len, uint32_t *out)
{
    uint32_t a = 0;
    size_t i = 0;
    for (int part = 0; part < 4; part++) {
        if (part > 0) {
            if (i >= len || w[i] != '.')
                return -1;
            i++;
        }
        size_t start = i;
        while (i < len && w[i] >= '0' && w[i] <= '9' && i - start < 3)
            i++;
        unsigned long long v;
        if (parse_number(w + start, i - start, 255, &v) != 0)
            return -1;
        a = (a << 8) | (uint32_t)v;
    }
    if (i != len || a == 0)
        return -1;
    *out = a;
    return 0;
}

static const char daemon_name_rule[] =
    "remote daemon name must be 1 to 19 characters from '$' to '~', without '#'";

static const struct {
    const char *word;
    uint32_t bits;
} services[] = {
    {"unreliable", 0x01}, {"reliable", 0x02}, {"fifo", 0x04},
    {"causal", 0x08},     {"agreed", 0x10},   {"safe", 0x20},
};

/* remote-multicast DAEMON MEMBER SERVICE TYPE GROUP[,GROUP...] LEN */
static const char *parse_multicast(const char **w, const size_t *wl, size_t n, ctl_request *out)
{
    unsigned long long v;
    /* The payload length first: the payload is skipped even if the rest is bad. */
    if (n >= 2 && parse_number(w[n - 1], wl[n - 1], WIRE_MAX_BODY, &v) == 0)
        out->data_len = (size_t)v;
    if (n != 7)
        return "remote-multicast takes DAEMON MEMBER SERVICE TYPE GROUP[,GROUP...] LEN "
               "(LEN payload bytes follow the line)";
    if (parse_plain_name(w[1], wl[1], WIRE_MAX_PROC_NAME, out->name, &out->name_len))
        return daemon_name_rule;
    if (parse_plain_name(w[2], wl[2], WIRE_MAX_PRIVATE_NAME, out->member, &out->member_len))
        return "remote member name must be 1 to 10 characters from '$' to '~', without '#'";
    uint32_t service = 0;
    for (size_t i = 0; i < sizeof services / sizeof services[0]; i++)
        if (word_is(w[3], wl[3], services[i].word))
            service = services[i].bits;
    if (!service) {
        if (parse_number(w[3], wl[3], 0xFFFFFFFFull, &v) != 0)
            return "service: unreliable, reliable, fifo, causal, agreed, safe, or a number";
        service = (uint32_t)v;
    }
    uint32_t kinds = service & WIRE_SERVICE_BITS;
    if ((service & ~(WIRE_SERVICE_BITS | WIRE_SELF_DISCARD)) || kinds == 0 ||
        (kinds & (kinds - 1)) != 0)
        return "service must be exactly one of UNRELIABLE_MESS .. SAFE_MESS, optionally with "
               "SELF_DISCARD";
    out->service = service;
    const char *t = w[4];
    size_t tl = wl[4];
    int negative = tl > 0 && t[0] == '-';
    if (parse_number(t + negative, tl - (size_t)negative, negative ? 32768 : 65535, &v) != 0)
        return "message type must be -32768 to 65535";
    long value = negative ? -(long)v : (long)v;
    out->mess_type = (int16_t)(value > 32767 ? value - 65536 : value);
    const char *g = w[5];
    size_t gl = wl[5], at = 0;
    while (at <= gl) {
        size_t start = at;
        while (at < gl && g[at] != ',')
            at++;
        size_t len = at - start;
        if (out->n_groups == CTL_MAX_GROUPS)
            return "at most 100 groups";
        if (len == 0 || len > WIRE_MAX_NAME)
            return "a group name must be 1 to 31 characters";
        for (size_t i = start; i < at; i++)
            if (g[i] != '#' && !wire_name_char_ok((uint8_t)g[i]))
                return "illegal character in a group name";
        if (g[start] == '#') {
            size_t name_len, daemon_len;
            const uint8_t *daemon;
            if (wire_split_private_group((const uint8_t *)g + start, len, &name_len, &daemon,
                                         &daemon_len) != 0)
                return "a private group is #NAME#DAEMON";
        } else if (memchr(g + start, '#', len)) {
            return "illegal character in a group name";
        }
        wire_put_slot(out->groups + out->n_groups * WIRE_SLOT, g + start, len);
        out->n_groups++;
        at++; /* past the comma (or the end) */
    }
    if (parse_number(w[6], wl[6], WIRE_MAX_BODY, &v) != 0)
        return "payload length must be 0 to 144000 bytes";
    if (out->data_len + WIRE_SLOT * out->n_groups > WIRE_DAEMON_MAX_TOTAL)
        return "payload + 32 bytes per group must be at most 143952 bytes";
    return NULL;
}

/* The requests of the simulated network (remote.h). */
static const char *parse_network(const char **w, const size_t *wl, size_t n, ctl_request *out)
{
    unsigned long long v;
    switch (out->verb) {
    case CTL_REMOTE_ADD:
        if (n < 2 || n > 4)
            return "remote-add takes NAME [ADDRESS] [connected|alone]";
        if (parse_plain_name(w[1], wl[1], WIRE_MAX_PROC_NAME, out->name, &out->name_len))
            return daemon_name_rule;
        out->connected = 1;
        for (size_t i = 2; i < n; i++) {
            if (i == n - 1 && word_is(w[i], wl[i], "alone"))
                out->connected = 0;
            else if (i == n - 1 && word_is(w[i], wl[i], "connected"))
                out->connected = 1;
            else if (i == 2 && parse_addr(w[i], wl[i], &out->addr) == 0)
                continue;
            else
                return "remote-add takes NAME [ADDRESS] [connected|alone] (ADDRESS: a.b.c.d, "
                       "not 0.0.0.0)";
        }
        return NULL;
    case CTL_REMOTE_MEMBER:
        if (n < 3 || n > 5)
            return "remote-member takes DAEMON MEMBER [join GROUP|leave GROUP|disconnect]";
        if (parse_plain_name(w[1], wl[1], WIRE_MAX_PROC_NAME, out->name, &out->name_len))
            return daemon_name_rule;
        if (parse_plain_name(w[2], wl[2], WIRE_MAX_PRIVATE_NAME, out->member, &out->member_len))
            return "remote member name must be 1 to 10 characters from '$' to '~', without '#'";
        out->action = CTL_MEMBER_ADD;
        if (n == 3)
            return NULL;
        if (n == 4 && word_is(w[3], wl[3], "disconnect")) {
            out->action = CTL_MEMBER_DISCONNECT;
            return NULL;
        }
        if (n == 5 && (word_is(w[3], wl[3], "join") || word_is(w[3], wl[3], "leave"))) {
            out->action = wl[3] == 4 ? CTL_MEMBER_JOIN : CTL_MEMBER_LEAVE;
            if (!wire_group_name_ok(w[4], wl[4]))
                return "group name must be 1 to 31 characters from '$' to '~', without '#'";
            wire_put_slot(out->group, w[4], wl[4]);
            out->group_len = wl[4];
            return NULL;
        }
        return "remote-member takes DAEMON MEMBER [join GROUP|leave GROUP|disconnect]";
    case CTL_REMOTE_MULTICAST: return parse_multicast(w, wl, n, out);
    case CTL_PARTITION:
    case CTL_MERGE:
    case CTL_CRASH:
        if (n < 2 || (out->verb == CTL_CRASH && n != 2))
            return out->verb == CTL_CRASH ? "crash takes one DAEMON"
                                          : "partition and merge take DAEMON [DAEMON...]";
        if (n - 1 > SPD_REMOTE_MAX_DAEMONS - 1)
            return "at most 15 remote daemons";
        for (size_t i = 1; i < n; i++) {
            size_t len;
            if (parse_plain_name(w[i], wl[i], WIRE_MAX_PROC_NAME, out->daemons[i - 1], &len))
                return daemon_name_rule;
            for (size_t j = 0; j + 1 < i; j++)
                if (strcmp(out->daemons[j], out->daemons[i - 1]) == 0)
                    return "a daemon named twice";
        }
        out->n_daemons = n - 1;
        memcpy(out->name, out->daemons[0], strlen(out->daemons[0]) + 1);
        out->name_len = strlen(out->daemons[0]);
        return NULL;
    case CTL_NETWORK: return n == 1 ? NULL : "network takes no arguments";
    case CTL_SETTLE: return n == 1 ? NULL : "settle takes no arguments";
    case CTL_NETWORK_CLOCK:
        if (n != 2)
            return "network-clock takes SECONDS (1 to 2147483647) or real";
        if (word_is(w[1], wl[1], "real"))
            return NULL;
        if (parse_number(w[1], wl[1], 2147483647ull, &v) != 0 || v == 0)
            return "network-clock takes SECONDS (1 to 2147483647) or real";
        out->clock = (long long)v;
        return NULL;
    case CTL_NETWORK_ADDRESS:
        if (n != 2 || parse_addr(w[1], wl[1], &out->addr) != 0)
            return "network-address takes ADDRESS (a.b.c.d, not 0.0.0.0)";
        return NULL;
    default: return "unknown request";
    }
}

const char *spd_ctl_parse(const char *line, size_t len, ctl_request *out)
{
    memset(out, 0, sizeof *out);
    if (len >= SPD_CTL_LINE_MAX)
        return "request too long";
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)line[i] < 0x20 || (unsigned char)line[i] > 0x7e)
            return "malformed request: printable ASCII only";
    const char *w[MAX_WORDS];
    size_t wl[MAX_WORDS], n = 0, i = 0;
    while (i < len) {
        if (line[i] == ' ') {
            i++;
            continue;
        }
        if (n == MAX_WORDS)
            return "too many words";
        size_t start = i;
        while (i < len && line[i] != ' ')
            i++;
        w[n] = line + start;
        wl[n++] = i - start;
    }
    if (n == 0)
        return "empty request";
    /* Prefixes of network events: "after MS" (later), "begin" (pending). */
    size_t at = 0;
    if (word_is(w[0], wl[0], "after")) {
        unsigned long long ms;
        if (n < 3 || parse_number(w[1], wl[1], MAX_AFTER_MS, &ms) != 0)
            return "after takes MS (0 to 3600000) and a partition, merge, crash, begin or settle";
        out->after_ms = (long long)ms;
        at = 2;
    }
    if (word_is(w[at], wl[at], "begin")) {
        if (n < at + 2)
            return "begin takes partition, merge or crash and their daemons";
        out->begin = 1;
        at++;
    }
    size_t v = 0, nverbs = sizeof verbs / sizeof verbs[0];
    while (v < nverbs && !word_is(w[at], wl[at], verbs[v].word))
        v++;
    if (v == nverbs)
        return "unknown request (ping, totals, sessions, session, kill, drop, pause, resume, "
               "pause-daemon, resume-daemon, remote-add, remote-member, remote-multicast, "
               "partition, merge, crash, settle, begin, after, network, network-clock, "
               "network-address)";
    out->verb = verbs[v].verb;
    int event = out->verb == CTL_PARTITION || out->verb == CTL_MERGE || out->verb == CTL_CRASH;
    if (out->begin && !event)
        return "begin takes partition, merge or crash";
    if (at && !out->begin && !event && out->verb != CTL_SETTLE)
        return "after takes a partition, merge, crash, begin or settle";
    if (out->verb >= CTL_REMOTE_ADD)
        return parse_network(w + at, wl + at, n - at, out);
    size_t most = verbs[v].name ? (out->verb == CTL_PAUSE ? 3 : 2) : 1;
    if (verbs[v].name && n < 2)
        return "missing session name";
    if (n > most)
        return "too many words";
    if (verbs[v].name) {
        if (wl[1] >= WIRE_SLOT)
            return "session name too long";
        for (size_t k = 0; k < wl[1]; k++)
            if (w[1][k] != '#' && !wire_name_char_ok((uint8_t)w[1][k]))
                return "illegal character in session name";
        memcpy(out->name, w[1], wl[1]);
        out->name[wl[1]] = '\0';
        out->name_len = wl[1];
    }
    if (out->verb == CTL_PAUSE) {
        out->pause_bits = SPD_PAUSE_REQUESTS;
        if (n == 3) {
            if (word_is(w[2], wl[2], "requests"))
                out->pause_bits = SPD_PAUSE_REQUESTS;
            else if (word_is(w[2], wl[2], "deliveries"))
                out->pause_bits = SPD_PAUSE_DELIVERIES;
            else if (word_is(w[2], wl[2], "both"))
                out->pause_bits = SPD_PAUSE_REQUESTS | SPD_PAUSE_DELIVERIES;
            else
                return "pause takes requests, deliveries or both";
        }
    }
    return NULL;
}

/* ---- answers --------------------------------------------------------- */

static void conn_close(spd_daemon *d, ctl_conn *k)
{
    for (int i = 0; i < SPD_CTL_MAX_CONNS; i++)
        if (d->ctl[i] == k)
            d->ctl[i] = NULL;
    epoll_ctl(d->ctl_epfd, EPOLL_CTL_DEL, k->fd, NULL);
    close(k->fd);
    free(k->out);
    free(k->pending);
    free(k->payload);
    free(k);
}

static void reply(ctl_conn *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void reply(ctl_conn *k, const char *fmt, ...)
{
    for (int tries = 0; tries < 2; tries++) {
        size_t room = k->out_cap - k->out_len;
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(k->out ? k->out + k->out_len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if ((size_t)n < room) {
            k->out_len += (size_t)n;
            return;
        }
        size_t cap = k->out_cap ? k->out_cap : 4096;
        while (cap - k->out_len <= (size_t)n)
            cap *= 2;
        char *p = cap <= CTL_OUT_MAX ? realloc(k->out, cap) : NULL;
        if (!p) {
            k->closing = 1; /* too much unread: the answers end here */
            return;
        }
        k->out = p;
        k->out_cap = cap;
    }
}

static void flush_conn(spd_daemon *d, ctl_conn *k)
{
    while (k->out_off < k->out_len) {
        ssize_t w = send(k->fd, k->out + k->out_off, k->out_len - k->out_off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (w <= 0) {
            conn_close(d, k);
            return;
        }
        k->out_off += (size_t)w;
    }
    if (k->out_off == k->out_len) {
        k->out_off = k->out_len = 0;
        if (k->closing) {
            conn_close(d, k);
            return;
        }
    }
    uint32_t events = (k->closing ? 0 : EPOLLIN) | (k->out_len > 0 ? EPOLLOUT : 0);
    if (events != k->events) {
        struct epoll_event ev = {0};
        ev.events = events;
        ev.data.ptr = k;
        epoll_ctl(d->ctl_epfd, EPOLL_CTL_MOD, k->fd, &ev);
        k->events = events;
    }
}

static const char *state_name(const client *c)
{
    return c->state == CL_OPEN ? "open" : "closed";
}

static void session_line(ctl_conn *k, const uint8_t *pg, unsigned long long id, const char *state,
                         int killed, size_t qm, size_t qb, const session_figures *f, int paused,
                         int lagging, const char *reason)
{
    uint8_t name[WIRE_SLOT];
    memcpy(name, pg, WIRE_SLOT);
    name[WIRE_SLOT - 1] = '\0';
    reply(k,
          "session group=%s id=%llu state=%s killed=%d queued_messages=%zu queued_bytes=%zu "
          "peak_messages=%zu peak_bytes=%zu queued_total=%llu delivered=%llu "
          "delivered_bytes=%llu requests=%llu multicasts=%llu paused_requests=%d "
          "paused_deliveries=%d lagging=%d reason=%s\n",
          (const char *)name, id, state, killed, qm, qb, f->peak_messages, f->peak_bytes,
          f->queued_total, f->delivered, f->delivered_bytes, f->requests, f->multicasts,
          !!(paused & SPD_PAUSE_REQUESTS), !!(paused & SPD_PAUSE_DELIVERIES), lagging, reason);
}

static void open_line(ctl_conn *k, const client *c)
{
    session_line(k, c->private_group, c->id, state_name(c), 0, c->q_count, c->q_bytes, &c->fig,
                 c->paused, c->lagging, "");
}

static void ended_line(ctl_conn *k, const ended_session *e)
{
    session_line(k, e->private_group, e->id, "closed", e->killed, 0, 0, &e->fig, 0, 0, e->reason);
}

/* Whether the private group pg (a slot) is the session r names. */
static int names(const ctl_request *r, const uint8_t *pg)
{
    size_t len = wire_slot_len(pg);
    if (len == r->name_len && memcmp(pg, r->name, len) == 0)
        return 1;
    return len > r->name_len + 1 && pg[0] == '#' && memcmp(pg + 1, r->name, r->name_len) == 0 &&
           pg[r->name_len + 1] == '#';
}

static client *find_open(spd_daemon *d, const ctl_request *r)
{
    for (client *c = d->all; c; c = c->all_next)
        if (c->state == CL_OPEN && names(r, c->private_group))
            return c;
    return NULL;
}

static const ended_session *find_ended(const spd_daemon *d, const ctl_request *r)
{
    for (size_t i = 1; i <= d->ended_count; i++) {
        const ended_session *e = &d->ended[(d->ended_next + SPD_ENDED_KEEP - i) % SPD_ENDED_KEEP];
        if (names(r, e->private_group))
            return e;
    }
    return NULL;
}

static void totals(spd_daemon *d, ctl_conn *k)
{
    const daemon_totals *t = &d->tot;
    reply(k,
          "ok sessions_open=%zu sessions_opened=%llu sessions_killed=%llu sessions_closed=%llu "
          "connections=%zu groups=%zu queued_messages=%zu queued_bytes=%zu peak_messages=%zu "
          "peak_bytes=%zu requests=%llu multicasts=%llu queued_total=%llu delivered=%llu "
          "delivered_bytes=%llu backpressure_pauses=%llu backpressure_ms=%lld lagging_sessions=%zu "
          "paused=%d max_session_messages=%d max_session_bytes=%lld slow_reader_budget=%d\n",
          d->n_clients - d->n_handshaking, t->opened, t->killed, t->closed, d->n_clients,
          d->groups.used, t->queued_messages, t->queued_bytes, t->peak_messages, t->peak_bytes,
          t->requests, t->multicasts, t->queued_total, t->delivered, t->delivered_bytes,
          t->backpressure_pauses, t->backpressure_ns / 1000000, d->n_lagging, d->paused_all,
          d->cfg.max_session_messages, d->cfg.max_session_bytes, d->cfg.slow_reader_budget);
}

/* ---- the simulated network (remote.h) --------------------------------- */

static int64_t net_now(const spd_daemon *d)
{
    return d->net_clock ? d->net_clock : (int64_t)time(NULL);
}

static const char *remote_error(int e)
{
    switch (e) {
    case SPD_REMOTE_E_LIMIT:
        return "a limit of the simulated network (16 daemons, 1024 remote members, 4096 groups, "
               "2048 members in a group)";
    case SPD_REMOTE_E_NOMEM: return "out of memory";
    case SPD_REMOTE_E_BUSY:
        return "refused: a network change on its way cuts that daemon off (settle it, or wait "
               "for it, first)";
    default: return "refused by the simulated network";
    }
}

/* The model, created on first use with the groups that exist already. */
static const char *ensure_remote(spd_daemon *d)
{
    if (d->remote)
        return NULL;
    spd_remote *r = spd_remote_new(d->name, d->name_len, d->memb_id);
    if (!r)
        return "out of memory";
    for (size_t i = 0; i < d->groups.cap; i++) {
        const group *g = d->groups.slots[i].key ? d->groups.slots[i].value : NULL;
        if (!g || g->n_members == 0)
            continue;
        uint8_t *slots = malloc(g->n_members * WIRE_SLOT);
        int e = slots ? 0 : SPD_REMOTE_E_NOMEM;
        for (size_t j = 0; slots && j < g->n_members; j++)
            memcpy(slots + j * WIRE_SLOT, g->members[j]->private_group, WIRE_SLOT);
        if (!e)
            e = spd_remote_adopt_group(r, g->name, g->name_len, g->gid, slots, g->n_members);
        free(slots);
        if (e < 0) {
            spd_remote_free(r);
            return remote_error(e);
        }
    }
    d->remote = r;
    spd_log(d, SPD_LOG_INFO, "simulated network started");
    return NULL;
}

/* A remote daemon that exists (its index), or -1 with the answer given. */
static int remote_daemon(spd_daemon *d, ctl_conn *k, const char *name, int up)
{
    int i = d->remote ? spd_remote_find_daemon(d->remote, name, strlen(name)) : -1;
    if (i < 0) {
        reply(k, "error no remote daemon %s (remote-add it first)\n", name);
        return -1;
    }
    if (i == SPD_REMOTE_LOCAL) {
        reply(k, "error %s is this daemon, not a remote one\n", name);
        return -1;
    }
    if (up && spd_remote_alive(d->remote, i) != 1) {
        reply(k, "error remote daemon %s has crashed (merge it to restart it)\n", name);
        return -1;
    }
    return i;
}

/* Delivers an event's notices and answers it: e its result. */
static void event_done(spd_daemon *d, ctl_conn *k, int e, spd_notices *notes)
{
    size_t n = notes->n;
    spd_deliver_notices(d, notes);
    spd_remote_memb_id(d->remote, d->memb_id); /* new local groups' ids (spd_join) */
    if (e < 0)
        reply(k, "error %s\n", remote_error(e));
    else
        reply(k, "ok notices=%zu\n", n);
}

static void remote_multicast(spd_daemon *d, ctl_conn *k, const ctl_request *r, const uint8_t *data)
{
    int i = remote_daemon(d, k, r->name, 1);
    if (i < 0)
        return;
    int m = spd_remote_find_member(d->remote, i, r->member, r->member_len);
    if (m < 0) {
        reply(k, "error no member #%s#%s (remote-member %s %s creates it)\n", r->member, r->name,
              r->name, r->member);
        return;
    }
    spd_notices notes = {0};
    int e = spd_remote_multicast(d->remote, m, r->service, r->groups, r->n_groups, r->mess_type,
                                 data, r->data_len, &notes);
    event_done(d, k, e, &notes);
}

static void network_line(ctl_conn *k, const spd_remote *r, int i)
{
    char name[WIRE_MAX_PROC_NAME + 1];
    uint32_t a = 0;
    spd_remote_daemon_info(r, i, name, &a);
    reply(k,
          "daemon name=%s index=%d address=%u.%u.%u.%u local=%d connected=%d alive=%d "
          "reachable=%d\n",
          name, i, a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255, i == SPD_REMOTE_LOCAL,
          spd_remote_connected(r, i) == 1, spd_remote_alive(r, i) == 1,
          spd_remote_reachable(r, i) == 1);
}

static void handle_network(spd_daemon *d, ctl_conn *k, const ctl_request *r)
{
    spd_notices notes = {0};
    int e;
    switch (r->verb) {
    case CTL_NETWORK_CLOCK:
        if (r->clock && !d->remote)
            d->memb_id[1] = (int32_t)(r->clock - 1); /* ids read as formed just before */
        d->net_clock = r->clock;
        reply(k, "ok\n");
        return;
    case CTL_NETWORK_ADDRESS:
        if (d->remote) {
            reply(k, "error network-address comes before the first remote-add\n");
            return;
        }
        d->memb_id[0] = (int32_t)r->addr; /* groups formed from now on: their id's a */
        reply(k, "ok\n");
        return;
    case CTL_NETWORK: {
        int n = d->remote ? spd_remote_n_daemons(d->remote) : 0;
        int32_t id[2] = {d->memb_id[0], d->memb_id[1]};
        if (d->remote)
            spd_remote_memb_id(d->remote, id);
        int waiting = 0;
        for (int i = 0; i < SPD_CTL_SCHED_MAX; i++)
            waiting += d->sched[i] != NULL;
        reply(k, "ok %d memb_id=%ld,%ld clock=%lld pending=%d scheduled=%d\n", n ? n : 1,
              (long)id[0], (long)id[1], d->net_clock, d->remote && spd_remote_pending(d->remote),
              waiting);
        uint32_t a = (uint32_t)d->memb_id[0];
        if (!n)
            reply(k,
                  "daemon name=%s index=0 address=%u.%u.%u.%u local=1 connected=1 alive=1 "
                  "reachable=1\n",
                  d->name, a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255);
        for (int i = 0; i < n; i++)
            network_line(k, d->remote, i);
        return;
    }
    case CTL_REMOTE_ADD: {
        const char *bad = ensure_remote(d);
        if (bad) {
            reply(k, "error %s\n", bad);
            return;
        }
        if (spd_remote_find_daemon(d->remote, r->name, r->name_len) >= 0) {
            reply(k, "error a daemon named %s exists already\n", r->name);
            return;
        }
        e = spd_remote_add_daemon(d->remote, r->name, r->name_len, r->addr, r->connected,
                                  net_now(d));
        if (e < 0) {
            reply(k, "error %s\n",
                  e == SPD_REMOTE_E_INVALID ? "refused: its address is taken" : remote_error(e));
            return;
        }
        spd_remote_memb_id(d->remote, d->memb_id);
        uint32_t a = 0;
        spd_remote_daemon_info(d->remote, e, NULL, &a);
        reply(k, "ok index=%d address=%u.%u.%u.%u\n", e, a >> 24, (a >> 16) & 255, (a >> 8) & 255,
              a & 255);
        return;
    }
    case CTL_REMOTE_MEMBER: {
        int i = remote_daemon(d, k, r->name, 1);
        if (i < 0)
            return;
        int m = spd_remote_find_member(d->remote, i, r->member, r->member_len);
        if (m < 0 && (r->action == CTL_MEMBER_ADD || r->action == CTL_MEMBER_JOIN))
            m = spd_remote_member_add(d->remote, i, r->member, r->member_len);
        if (m < 0) {
            if (r->action == CTL_MEMBER_ADD || r->action == CTL_MEMBER_JOIN)
                reply(k, "error %s\n", remote_error(m));
            else
                reply(k, "error no member #%s#%s\n", r->member, r->name);
            return;
        }
        if (r->action == CTL_MEMBER_ADD) {
            reply(k, "ok member=#%s#%s\n", r->member, r->name);
            return;
        }
        if (r->action == CTL_MEMBER_JOIN)
            e = spd_remote_member_join(d->remote, m, (const char *)r->group, r->group_len, &notes);
        else if (r->action == CTL_MEMBER_LEAVE)
            e = spd_remote_member_leave(d->remote, m, (const char *)r->group, r->group_len, &notes);
        else
            e = spd_remote_member_remove(d->remote, m, &notes);
        event_done(d, k, e, &notes);
        return;
    }
    case CTL_SETTLE:
        if (!d->remote || spd_remote_pending(d->remote) != 1) {
            reply(k, "error no network change is pending (begin one first)\n");
            return;
        }
        e = spd_remote_settle(d->remote, net_now(d), &notes);
        event_done(d, k, e, &notes);
        return;
    case CTL_PARTITION:
    case CTL_MERGE:
    case CTL_CRASH: {
        int idx[SPD_REMOTE_MAX_DAEMONS];
        for (size_t j = 0; j < r->n_daemons; j++)
            if ((idx[j] = remote_daemon(d, k, r->daemons[j], r->verb != CTL_MERGE)) < 0)
                return;
        int64_t now = net_now(d);
        int event = r->verb == CTL_PARTITION ? SPD_EVENT_PARTITION
                    : r->verb == CTL_MERGE   ? SPD_EVENT_MERGE
                                             : SPD_EVENT_CRASH;
        if (r->begin)
            e = spd_remote_begin(d->remote, event, idx, r->n_daemons, now, &notes);
        else if (r->verb == CTL_PARTITION)
            e = spd_remote_partition(d->remote, idx, r->n_daemons, now, &notes);
        else if (r->verb == CTL_MERGE)
            e = spd_remote_merge(d->remote, idx, r->n_daemons, now, &notes);
        else
            e = spd_remote_crash(d->remote, idx[0], now, &notes);
        event_done(d, k, e, &notes);
        return;
    }
    default: reply(k, "error unknown request\n"); return;
    }
}

/* ---- network events later ("after MS ...") ------------------------- */

static long long mono_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Keeps r to run after r->after_ms. Traffic from the daemons a partition
 * or a crash cuts off stops at once: detection takes time, the cut not. */
static void schedule(spd_daemon *d, ctl_conn *k, const ctl_request *r)
{
    int idx[SPD_REMOTE_MAX_DAEMONS];
    if (r->verb != CTL_SETTLE) /* they must exist now: a clear error now */
        for (size_t j = 0; j < r->n_daemons; j++)
            if ((idx[j] = remote_daemon(d, k, r->daemons[j], r->verb != CTL_MERGE)) < 0)
                return;
    int slot = -1;
    for (int i = 0; i < SPD_CTL_SCHED_MAX && slot < 0; i++)
        if (!d->sched[i])
            slot = i;
    ctl_request *copy = slot >= 0 ? malloc(sizeof *copy) : NULL;
    if (!copy) {
        reply(k, "error %s\n",
              slot < 0 ? "at most 16 network events wait at a time" : "out of memory");
        return;
    }
    *copy = *r;
    copy->after_ms = 0;
    d->sched[slot] = copy;
    d->sched_due[slot] = mono_ms() + r->after_ms;
    if (r->verb == CTL_PARTITION || r->verb == CTL_CRASH)
        for (size_t j = 0; j < r->n_daemons; j++)
            spd_remote_set_unreachable(d->remote, idx[j], 1);
    reply(k, "ok notices=0 scheduled=%lld\n", r->after_ms);
}

void spd_control_timers(spd_daemon *d)
{
    long long now = mono_ms();
    for (;;) {
        int next = -1; /* the earliest due, the first scheduled among equals */
        for (int i = 0; i < SPD_CTL_SCHED_MAX; i++)
            if (d->sched[i] && d->sched_due[i] <= now &&
                (next < 0 || d->sched_due[i] < d->sched_due[next]))
                next = i;
        if (next < 0)
            return;
        ctl_request *r = d->sched[next];
        d->sched[next] = NULL;
        if (d->remote && r->verb != CTL_SETTLE)
            for (size_t j = 0; j < r->n_daemons; j++) {
                int i = spd_remote_find_daemon(d->remote, r->daemons[j], strlen(r->daemons[j]));
                if (i > 0)
                    spd_remote_set_unreachable(d->remote, i, 0);
            }
        ctl_conn quiet = {0}; /* the answer, kept for the log */
        quiet.fd = -1;
        handle_network(d, &quiet, r);
        if (quiet.out_len > 6 && memcmp(quiet.out, "error ", 6) == 0)
            spd_log(d, SPD_LOG_ERROR, "a scheduled network event failed: %.*s",
                    (int)(quiet.out_len - 7), quiet.out + 6);
        free(quiet.out);
        free(r);
    }
}

static void handle(spd_daemon *d, ctl_conn *k, const char *line, size_t len)
{
    ctl_request r;
    const char *bad = spd_ctl_parse(line, len, &r);
    if (bad) {
        k->skip = r.verb == CTL_REMOTE_MULTICAST ? r.data_len : 0;
        reply(k, "error %s\n", bad);
        return;
    }
    if (r.verb == CTL_REMOTE_MULTICAST) {
        if (r.data_len == 0) {
            remote_multicast(d, k, &r, NULL);
            return;
        }
        k->pending = malloc(sizeof r);
        k->payload = malloc(r.data_len);
        if (!k->pending || !k->payload) {
            free(k->pending);
            free(k->payload);
            k->pending = NULL;
            k->payload = NULL;
            k->skip = r.data_len;
            reply(k, "error out of memory\n");
            return;
        }
        *k->pending = r;
        k->payload_have = 0;
        return; /* answered once its payload is in (conn_input) */
    }
    if (r.after_ms > 0) {
        schedule(d, k, &r);
        return;
    }
    if (r.verb >= CTL_REMOTE_ADD) {
        handle_network(d, k, &r);
        return;
    }
    client *c = NULL;
    if (r.verb == CTL_KILL || r.verb == CTL_DROP || r.verb == CTL_PAUSE || r.verb == CTL_RESUME) {
        c = find_open(d, &r);
        if (!c) {
            reply(k, "error no open session %s\n", r.name);
            return;
        }
    }
    switch (r.verb) {
    case CTL_PING: reply(k, "ok pong\n"); break;
    case CTL_TOTALS: totals(d, k); break;
    case CTL_SESSIONS: {
        size_t n = d->ended_count;
        for (client *o = d->all; o; o = o->all_next)
            n += o->state == CL_OPEN;
        reply(k, "ok %zu\n", n);
        for (client *o = d->all; o; o = o->all_next)
            if (o->state == CL_OPEN)
                open_line(k, o);
        for (size_t i = d->ended_count; i > 0; i--) /* oldest first */
            ended_line(k, &d->ended[(d->ended_next + SPD_ENDED_KEEP - i) % SPD_ENDED_KEEP]);
        break;
    }
    case CTL_SESSION: {
        const client *o = find_open(d, &r);
        const ended_session *e = o ? NULL : find_ended(d, &r);
        if (!o && !e) {
            reply(k, "error no session %s\n", r.name);
            break;
        }
        reply(k, "ok 1\n");
        if (o)
            open_line(k, o);
        else
            ended_line(k, e);
        break;
    }
    case CTL_KILL:
        spd_kill_slow_reader(d, c);
        reply(k, "ok\n");
        break;
    case CTL_DROP:
        if (c->is_tcp) { /* a reset, as a crashed peer's unread data makes */
            struct linger l = {1, 0};
            setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
        }
        spd_kill(d, c, "dropped without a goodbye");
        reply(k, "ok\n");
        break;
    case CTL_PAUSE:
        spd_set_paused(d, c, c->paused | r.pause_bits);
        reply(k, "ok\n");
        break;
    case CTL_RESUME:
        spd_set_paused(d, c, 0);
        reply(k, "ok\n");
        break;
    case CTL_PAUSE_DAEMON:
        if (!d->paused_all)
            spd_log(d, SPD_LOG_INFO, "paused by the control channel");
        d->paused_all = 1;
        reply(k, "ok\n");
        break;
    case CTL_RESUME_DAEMON:
        if (d->paused_all)
            spd_log(d, SPD_LOG_INFO, "resumed by the control channel");
        d->paused_all = 0;
        reply(k, "ok\n");
        break;
    default: break; /* the network's: handle_network */
    }
}

/* ---- connections ----------------------------------------------------- */

static void conn_input(spd_daemon *d, ctl_conn *k)
{
    for (;;) {
        ssize_t n = recv(k->fd, k->in + k->in_len, sizeof k->in - k->in_len, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n <= 0) {
            k->closing = 1; /* answered what it asked, then closed */
            break;
        }
        k->in_len += (size_t)n;
        if (k->skipping) {
            char *nl = memchr(k->in, '\n', k->in_len);
            size_t drop = nl ? (size_t)(nl - k->in) + 1 : k->in_len;
            memmove(k->in, k->in + drop, k->in_len - drop);
            k->in_len -= drop;
            k->skipping = !nl;
        }
        size_t at = 0;
        for (;;) {
            if (k->skip || k->pending) {
                /* A remote-multicast's payload: bytes, not lines. */
                size_t want = k->skip ? k->skip : k->pending->data_len - k->payload_have;
                size_t take = k->in_len - at < want ? k->in_len - at : want;
                if (k->pending)
                    memcpy(k->payload + k->payload_have, k->in + at, take);
                else
                    k->skip -= take;
                at += take;
                if (k->pending && (k->payload_have += take) == k->pending->data_len) {
                    remote_multicast(d, k, k->pending, k->payload);
                    free(k->pending);
                    free(k->payload);
                    k->pending = NULL;
                    k->payload = NULL;
                }
                if (k->skip || k->pending)
                    break;
                continue;
            }
            char *nl = memchr(k->in + at, '\n', k->in_len - at);
            if (!nl)
                break;
            size_t len = (size_t)(nl - (k->in + at));
            if (len > 0 && k->in[at + len - 1] == '\r')
                len--;
            handle(d, k, k->in + at, len);
            at = (size_t)(nl - k->in) + 1;
        }
        memmove(k->in, k->in + at, k->in_len - at);
        k->in_len -= at;
        if (k->in_len == sizeof k->in) {
            reply(k, "error request too long (at most %d bytes with the newline)\n",
                  SPD_CTL_LINE_MAX);
            k->in_len = 0;
            k->skipping = 1;
        }
        if (k->closing)
            break;
    }
    flush_conn(d, k);
}

/* Serves fd as a control connection, or closes it. */
static int conn_add(spd_daemon *d, int fd)
{
    int slot = -1;
    for (int i = 0; i < SPD_CTL_MAX_CONNS && slot < 0; i++)
        if (!d->ctl[i])
            slot = i;
    ctl_conn *k = slot >= 0 ? calloc(1, sizeof *k) : NULL;
    if (!k) {
        static const char busy[] = "error too many control connections\n";
        ssize_t w = send(fd, busy, sizeof busy - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)w;
        close(fd);
        return -1;
    }
    k->fd = fd;
    k->events = EPOLLIN;
    struct epoll_event ev = {0};
    ev.events = EPOLLIN;
    ev.data.ptr = k;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0 ||
        epoll_ctl(d->ctl_epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        close(fd);
        free(k);
        return -1;
    }
    d->ctl[slot] = k;
    return 0;
}

static void accept_conns(spd_daemon *d)
{
    for (;;) {
        struct sockaddr_storage peer;
        socklen_t len = sizeof peer;
        int fd = accept4(d->ctl_fd, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        if (peer.ss_family == AF_INET &&
            (ntohl(((struct sockaddr_in *)&peer)->sin_addr.s_addr) >> 24) != 127) {
            close(fd); /* cannot happen on a loopback listener: never served */
            continue;
        }
        conn_add(d, fd);
    }
}

int spd_control_serve(spd_daemon *d, int timeout_ms)
{
    struct epoll_event ev[16];
    int n = epoll_wait(d->ctl_epfd, ev, 16, timeout_ms);
    for (int i = 0; i < n; i++) {
        void *tag = ev[i].data.ptr;
        if (tag == SPD_TAG_STOP)
            return 1;
        if (tag == TAG_LISTEN) {
            accept_conns(d);
            continue;
        }
        ctl_conn *k = tag;
        if (!k->closing && (ev[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
            conn_input(d, k);
        else
            flush_conn(d, k); /* a closing one's EPOLLHUP/ERR: the send fails, it closes */
    }
    return 0;
}

/* ---- opening and closing ---------------------------------------------- */

static int listen_unix(spd_daemon *d, const char *path, char *err, int err_size)
{
    struct sockaddr_un a = {0};
    struct stat st;
    a.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof a.sun_path) {
        snprintf(err, (size_t)err_size, "control socket path too long (at most %zu bytes)",
                 sizeof a.sun_path - 1);
        return -1;
    }
    if (lstat(path, &st) == 0) {
        snprintf(err, (size_t)err_size, "control socket %s exists: remove it or give another path",
                 path);
        return -1;
    }
    memcpy(a.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        snprintf(err, (size_t)err_size, "cannot listen on control socket %s: %s", path,
                 strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    memcpy(d->ctl_path, a.sun_path, sizeof d->ctl_path);
    chmod(path, 0600);
    d->ctl_fd = fd;
    return 0;
}

static int listen_loopback(spd_daemon *d, long port, char *err, int err_size)
{
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK); /* never anything else */
    a.sin_port = htons((uint16_t)port);
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
    if (fd >= 0)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        snprintf(err, (size_t)err_size, "cannot listen on control port 127.0.0.1:%ld: %s", port,
                 strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    d->ctl_fd = fd;
    d->ctl_port = ntohs(a.sin_port);
    return 0;
}

/* "PORT", "127.0.0.1:PORT" or "localhost:PORT": the port, else -1. */
static long loopback_port(const char *a)
{
    const char *colon = strrchr(a, ':');
    if (colon) {
        size_t host = (size_t)(colon - a);
        if (!((host == 9 && !memcmp(a, "127.0.0.1", 9)) ||
              (host == 9 && !memcmp(a, "localhost", 9))))
            return -1;
        a = colon + 1;
    }
    if (!*a || strlen(a) > 5)
        return -1;
    long port = 0;
    for (; *a; a++) {
        if (*a < '0' || *a > '9')
            return -1;
        port = port * 10 + (*a - '0');
    }
    return port <= 65535 ? port : -1;
}

int spd_control_open(spd_daemon *d, char *err, int err_size)
{
    int fd = d->cfg.control_fd;
    d->cfg.control_fd = -1;
    if (fd > 0 && conn_add(d, fd) != 0) {
        snprintf(err, (size_t)err_size, "cannot serve the control descriptor: %s", strerror(errno));
        return -1;
    }
    const char *a = d->cfg.control;
    if (!a || !*a)
        return 0;
    int r;
    if (strchr(a, '/')) {
        r = listen_unix(d, a, err, err_size);
    } else {
        long port = loopback_port(a);
        if (port < 0) {
            snprintf(err, (size_t)err_size,
                     "the control channel listens on loopback only: give a unix socket path, "
                     "a port, or 127.0.0.1:PORT, not '%.64s'",
                     a);
            return -1;
        }
        r = listen_loopback(d, port, err, err_size);
    }
    if (r != 0)
        return -1;
    struct epoll_event ev = {0};
    ev.events = EPOLLIN;
    ev.data.ptr = TAG_LISTEN;
    if (listen(d->ctl_fd, 8) != 0 || epoll_ctl(d->ctl_epfd, EPOLL_CTL_ADD, d->ctl_fd, &ev) != 0) {
        snprintf(err, (size_t)err_size, "control channel: %s", strerror(errno));
        return -1;
    }
    return 0;
}

void spd_control_close(spd_daemon *d)
{
    for (int i = 0; i < SPD_CTL_SCHED_MAX; i++) {
        free(d->sched[i]);
        d->sched[i] = NULL;
    }
    for (int i = 0; i < SPD_CTL_MAX_CONNS; i++)
        if (d->ctl[i])
            conn_close(d, d->ctl[i]);
    if (d->ctl_fd >= 0)
        close(d->ctl_fd);
    d->ctl_fd = -1;
    if (d->ctl_path[0])
        unlink(d->ctl_path);
    d->ctl_path[0] = '\0';
}
