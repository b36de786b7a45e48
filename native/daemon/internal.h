/* internal.h -- the embedded daemon's state, shared by its modules. */
#ifndef SPREAD_CLIENT_DAEMON_INTERNAL_H
#define SPREAD_CLIENT_DAEMON_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "wire.h"
#include "sp.h"
#include "daemon.h"
#include "table.h"
#include "remote.h"

#define SPD_MAX_CONNECTIONS 997
#define SPD_READ_CHUNK      65536
#define SPD_ENDED_KEEP      256 /* ended sessions whose figures are kept */
#define SPD_CTL_MAX_CONNS   8   /* control connections at a time */
#define SPD_CTL_LINE_MAX    256 /* a control request, its newline included */
#define SPD_CTL_SCHED_MAX   16  /* network events waiting for their time ("after") */
#define SPD_TAG_STOP        ((void *)3) /* the stop fd's tag, in every epoll set */

/* A session's pause (control.c): the daemon stops reading its requests,
 * or writing its deliveries (it then looks like a reader that never reads). */
enum { SPD_PAUSE_REQUESTS = 1, SPD_PAUSE_DELIVERIES = 2 };

/* A session's figures, read over the control channel. */
typedef struct session_figures {
    size_t peak_messages, peak_bytes;      /* the output queue at its longest */
    unsigned long long queued_total;       /* messages ever queued for it */
    unsigned long long delivered;          /* messages written whole to its socket */
    unsigned long long delivered_bytes;
    unsigned long long requests;           /* requests read from it (all kinds) */
    unsigned long long multicasts;         /* of which data messages */
} session_figures;

/* What is kept of a session once it has ended. */
typedef struct ended_session {
    unsigned long long id;
    uint8_t private_group[WIRE_SLOT];
    session_figures fig;
    const char *reason;                    /* a string literal */
    int killed;                            /* ended by the daemon, not the client */
} ended_session;

/* Daemon-wide figures. */
typedef struct daemon_totals {
    unsigned long long opened, killed, closed; /* sessions: accepted, killed, ended by clients */
    unsigned long long requests, multicasts, queued_total, delivered, delivered_bytes;
    unsigned long long backpressure_pauses;
    long long backpressure_ns;
    size_t queued_messages, queued_bytes;  /* in every queue now */
    size_t peak_messages, peak_bytes;      /* the longest queue of any session */
} daemon_totals;

struct ctl_conn;

/* A message as delivered: shared by every receiver, freed with its last ref. */
typedef struct msgbuf {
    int refs;
    size_t len;
    uint8_t data[];
} msgbuf;

/* CL_LINGER: refused for the quota, waiting for the client to close. */
typedef enum { CL_CONNECT, CL_AUTH, CL_OPEN, CL_LINGER, CL_CLOSED } client_state;

typedef struct group group;

typedef struct client {
    int fd;
    client_state state;
    unsigned long long id;      /* for logs */
    int is_tcp;
    int version;                /* major*10000 + minor*100 + patch */
    int membership;
    int priority;
    char name[WIRE_MAX_PRIVATE_NAME + 1];
    size_t name_len;
    uint8_t private_group[WIRE_SLOT];
    size_t private_group_len;
    int name_registered;
    struct timespec deadline;   /* handshake */
    struct timespec grace;      /* a handshake unit begun: the rest is due */
    int grace_armed;
    /* input */
    uint8_t *in;
    size_t in_len, in_cap;
    /* output queue: a ring of messages; the head may be partly written */
    msgbuf **q;
    size_t q_cap, q_head, q_count, q_off;
    size_t q_bytes;             /* bytes of the queued messages */
    int want_write;             /* EPOLLOUT armed */
    int dirty;                  /* in the daemon's to-flush list */
    int lagging;                /* queue at or above the back-pressure mark */
    int paused;                 /* SPD_PAUSE_* bits (control.c) */
    int backlog;                /* requests buffered, held back (server.c) */
    int client_ended;           /* the client ended it (kill request, EOF, read error) */
    session_figures fig;
    /* groups this client belongs to */
    group **groups;
    size_t n_groups, cap_groups;
    unsigned long long stamp;   /* de-duplicates receivers of one message */
    struct client *next_pending; /* disconnect / free lists */
    struct client *all_prev, *all_next; /* every connection */
} client;

struct group {
    uint8_t name[WIRE_SLOT];
    size_t name_len;
    int32_t gid[3];
    client **members;           /* sorted by private group name, byte-wise */
    size_t n_members, cap_members;
};

struct spd_daemon {
    spd_config cfg;
    char name[WIRE_MAX_PROC_NAME + 1];
    size_t name_len;
    int epfd;
    int tcp_fd, unix_fd;
    char unix_path[108];
    int32_t memb_id[2];         /* group id words 0 and 1 */
    unsigned long long next_id, stamp;
    size_t n_clients;
    spd_table names;            /* private name -> client */
    spd_table groups;           /* group name -> group */
    client *pending_disconnect; /* closed, not yet removed from groups */
    client *to_free;            /* removed; freed after the epoll batch */
    client *all;                /* every connection, newest first */
    size_t n_handshaking;
    size_t n_lingering;         /* CL_LINGER connections (not in n_clients) */
    dev_t unix_dev;             /* the socket file this daemon bound, */
    ino_t unix_ino;             /* the only one it removes */
    /* Back-pressure (SPEC.md 8.6): while a reader lags, stop reading requests
     * for a while so that it gets the CPU to catch up; see server.c. */
    int out_epfd;               /* lagging readers' EPOLLOUT, and the stop fd */
    size_t n_lagging;
    long long pause_budget_ns;  /* pause time left; refills at a tenth of real time */
    struct timespec pause_stamp;
    int paused;
    client **dirty;
    size_t n_dirty, cap_dirty;
    unsigned int rng;
    long long budget_ns;        /* cfg.slow_reader_budget in ns */
    /* The control channel (control.c), served from the loop itself. */
    int ctl_epfd;               /* control connections, the listener, the stop fd */
    int ctl_fd;                 /* the listener, or -1 */
    int ctl_port;               /* its TCP port, or 0 */
    char ctl_path[108];         /* its unix socket, or "" */
    struct ctl_conn *ctl[SPD_CTL_MAX_CONNS];
    int paused_all;             /* pause-daemon: nothing read or written */
    int has_backlog;            /* some connection's requests are held back */
    daemon_totals tot;
    /* Simulated remote daemons (remote.h), created by the first remote-add
     * request (control.c); NULL: a lone daemon, groups.c as without it. */
    spd_remote *remote;
    long long net_clock;        /* network events' time (s); 0 = time(NULL) */
    struct ctl_request *sched[SPD_CTL_SCHED_MAX]; /* "after MS ..." events, */
    long long sched_due[SPD_CTL_SCHED_MAX];       /* due (CLOCK_MONOTONIC ms) */
    ended_session ended[SPD_ENDED_KEEP]; /* a ring, oldest overwritten */
    size_t ended_next, ended_count;
};

/* The modules, lowest first: queue.c (below every other), listen.c,
 * groups.c and handshake.c (above queue.c only), server.c (above all). */

/* queue.c */
void spd_log(spd_daemon *d, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
msgbuf *spd_msg_new(size_t len);
void spd_msg_unref(msgbuf *m);
/* Queues m for c (taking a reference); kills c if it is not reading. */
void spd_enqueue(spd_daemon *d, client *c, msgbuf *m);
/* Writes as much of c's queue as the socket takes. */
void spd_flush(spd_daemon *d, client *c);
/* Flushes every connection queued to since the last call. */
void spd_flush_dirty(spd_daemon *d);
/* Ends a connection: closes its socket now, and queues it for removal from
 * its groups after the current event (server.c; SPEC.md 8.1). */
void spd_kill(spd_daemon *d, client *c, const char *why);
/* The slow-reader kill (SPEC.md 8.7), with its log line. */
void spd_kill_slow_reader(spd_daemon *d, client *c);
/* Sets c's SPD_PAUSE_* bits, and what the event loop watches for it. */
void spd_set_paused(spd_daemon *d, client *c, int bits);
/* A connection on fd, watched for input, in the list of all connections;
 * NULL (fd left open) if out of memory. */
client *spd_client_new(spd_daemon *d, int fd);

/* listen.c */
/* Binds what the configuration asks for (a free port for port 0): 0, or -1
 * with the reason in err. */
int spd_listen(spd_daemon *d, char *err, int err_size);
void spd_close_listeners(spd_daemon *d);
/* Socket buffers and TCP_NODELAY of an accepted connection. */
void spd_tune_socket(int fd, int is_tcp);

/* handshake.c */
void spd_handshake_begin(client *c);
/* Input on a connection in CL_CONNECT, CL_AUTH or CL_LINGER. A connection
 * these leave CL_OPEN may have requests buffered behind the handshake: the
 * caller handles them. */
void spd_handshake_input(spd_daemon *d, client *c);
/* Ends handshakes (and lingering rejects) whose time is up. */
void spd_handshake_check_time(spd_daemon *d, client *c);
/* Sends REJECT_QUOTA on a fresh connection and lets it linger. */
void spd_reject_quota(spd_daemon *d, int fd);

/* control.c (above every other module but server.c) */
typedef enum {
    CTL_PING,
    CTL_TOTALS,
    CTL_SESSIONS,
    CTL_SESSION,
    CTL_KILL,
    CTL_DROP,
    CTL_PAUSE,
    CTL_RESUME,
    CTL_PAUSE_DAEMON,
    CTL_RESUME_DAEMON,
    CTL_REMOTE_ADD,
    CTL_REMOTE_MEMBER,
    CTL_REMOTE_MULTICAST,
    CTL_PARTITION,
    CTL_MERGE,
    CTL_CRASH,
    CTL_NETWORK,
    CTL_NETWORK_CLOCK,
    CTL_NETWORK_ADDRESS,
    CTL_SETTLE
} ctl_verb;

/* CTL_REMOTE_MEMBER's action. */
enum { CTL_MEMBER_ADD, CTL_MEMBER_JOIN, CTL_MEMBER_LEAVE, CTL_MEMBER_DISCONNECT };

#define CTL_MAX_GROUPS WIRE_MAX_GROUPS /* groups of one remote-multicast */

typedef struct ctl_request {
    ctl_verb verb;
    char name[WIRE_SLOT];       /* a session (its private name or private group), */
    size_t name_len;            /* or a remote daemon */
    int pause_bits;             /* CTL_PAUSE: SPD_PAUSE_* */
    /* The simulated network's requests. */
    char member[WIRE_MAX_PRIVATE_NAME + 1]; /* a remote member's name */
    size_t member_len;
    int action;                 /* CTL_REMOTE_MEMBER: CTL_MEMBER_* */
    uint8_t group[WIRE_SLOT];   /* CTL_REMOTE_MEMBER join / leave */
    size_t group_len;
    uint32_t addr;              /* CTL_REMOTE_ADD: its address, 0 = the next one;
                                   CTL_NETWORK_ADDRESS: ours */
    int connected;              /* CTL_REMOTE_ADD: 1 unless "alone" */
    uint32_t service;           /* CTL_REMOTE_MULTICAST */
    int16_t mess_type;
    uint8_t groups[CTL_MAX_GROUPS * WIRE_SLOT];
    size_t n_groups;
    size_t data_len;            /* the payload bytes that follow the line */
    char daemons[SPD_REMOTE_MAX_DAEMONS][WIRE_MAX_PROC_NAME + 1]; /* partition, merge */
    size_t n_daemons;
    long long clock;            /* CTL_NETWORK_CLOCK: seconds, 0 = real time */
    int begin;                  /* "begin partition|merge|crash ...": left pending */
    long long after_ms;         /* "after MS ...": run that much later (0: now) */
} ctl_request;

/* Parses one request line (without its newline; len bytes, not
 * NUL-terminated). NULL when valid, else the error to answer. Sans-IO.
 * out->data_len is set whenever a remote-multicast line names its payload
 * length, valid or not, so that the payload is skipped after an error. */
const char *spd_ctl_parse(const char *line, size_t len, ctl_request *out);
/* Opens cfg.control's listener and cfg.control_fd. 0, or -1 with err. */
int spd_control_open(spd_daemon *d, char *err, int err_size);
/* Serves control events for up to timeout_ms; 1 if the stop fd fired. */
int spd_control_serve(spd_daemon *d, int timeout_ms);
/* Runs the scheduled network events whose time has come. */
void spd_control_timers(spd_daemon *d);
void spd_control_close(spd_daemon *d);

/* groups.c */
void spd_join(spd_daemon *d, client *c, const uint8_t *name, size_t len);
void spd_leave(spd_daemon *d, client *c, const uint8_t *name, size_t len);
void spd_remove_from_groups(spd_daemon *d, client *c);
/* Delivers the simulated network's notices (remote.h) to local clients
 * through their output queues, and clears the list. */
void spd_deliver_notices(spd_daemon *d, spd_notices *list);
/* Delivers a validated data request (header h, groups, payload). */
void spd_deliver(spd_daemon *d, client *sender, const wire_header *h, const uint8_t *groups,
                 const uint8_t *data);

#endif /* SPREAD_CLIENT_DAEMON_INTERNAL_H */
