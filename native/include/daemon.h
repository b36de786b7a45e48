/*
 * daemon.h -- the embedded single-node Spread daemon (SPEC.md 8): a
 * single-threaded event loop that speaks Spread 4's client protocol through
 * the shared wire codec. Bindings open it, run it (without the GIL) until
 * their stop descriptor becomes readable, and close it.
 */
#ifndef SPREAD_CLIENT_DAEMON_H
#define SPREAD_CLIENT_DAEMON_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

enum { SPD_LOG_QUIET = 0, SPD_LOG_ERROR = 1, SPD_LOG_INFO = 2, SPD_LOG_DEBUG = 3 };

/* The daemon's defaults: the one C definition (main.c and spd_open use
 * these; spd_default_config hands them to the bindings' tests, which check
 * that src/spread/_daemon_options.py, Python's source of truth, agrees). */
#define SPD_DEFAULT_PORT                 4803
#define SPD_DEFAULT_HOST                 "127.0.0.1"
#define SPD_DEFAULT_NAME                 "localhost"
#define SPD_DEFAULT_MAX_SESSION_MESSAGES 1000
#define SPD_DEFAULT_MAX_SESSION_BYTES    (64LL * 1024 * 1024)
#define SPD_DEFAULT_SLOW_READER_BUDGET   100 /* ms; 0 = off (a real Spread daemon) */
#define SPD_DEFAULT_LOG_LEVEL            SPD_LOG_INFO /* the stand-alone program's */

/* The slow-reader back-pressure budget (queue.c, server.c): while some
 * reader's queue is at or past half of a limit, the daemon stops reading
 * requests from every connection, so that senders block in their sockets
 * and the reader gets the CPU, for at most slow_reader_budget ms at a time;
 * the allowance refills at a tenth of real time. A reader that keeps
 * falling behind is killed at the limits all the same. 0 turns it off: a
 * real Spread daemon's behaviour, where a fast sender fills a slow reader's
 * queue until the reader is killed. */
#define SPD_MAX_SLOW_READER_BUDGET 60000

typedef struct spd_config {
    int port;                 /* TCP port and /tmp/<port>; 1..32767, or 0 = pick a free one */
    const char *host;         /* IPv4 address or host name to bind; NULL or "" = 127.0.0.1 */
    const char *name;         /* daemon name in private groups; NULL = "localhost" */
    int max_session_messages; /* slow-reader limit, messages; <= 0 = the default */
    long long max_session_bytes; /* slow-reader limit, queued bytes; <= 0 = the default */
    int slow_reader_budget;   /* back-pressure budget in ms, 0..SPD_MAX_SLOW_READER_BUDGET */
    int tcp;                  /* listen on TCP */
    int unix_socket;          /* listen on /tmp/<port> (at least one of the two) */
    int log_level;            /* SPD_LOG_*; lines go to stderr */
    /* The control channel (control.c): NULL or "" = no listener; a path
     * with a '/' = a unix socket there; "PORT" or "127.0.0.1:PORT" = TCP on
     * the loopback address only (0 = a free port, see spd_control_port).
     * Any other host is refused: the channel never listens beyond loopback. */
    const char *control;
    int control_fd;           /* >= 0: one end of a connected socket served as a
                                 control connection (the daemon closes it); -1 = none */
} spd_config;

/* The defaults above in a configuration (no control channel). */
void spd_default_config(spd_config *out);

/* Table sizes, for tests that check that the daemon's state stays bounded. */
typedef struct spd_stats {
    size_t groups, group_slots; /* live groups, capacity of the group table */
    size_t names, name_slots;   /* registered private names, capacity */
    size_t connections;
} spd_stats;

typedef struct spd_daemon spd_daemon;

/* Binds the sockets. On failure returns NULL and writes a reason to err. */
spd_daemon *spd_open(const spd_config *config, char *err, int err_size);
/* Serves until stop_fd (if >= 0) becomes readable. 0, or -1 on failure. */
int spd_run(spd_daemon *d, int stop_fd);
/* The port it listens on (the one picked, when configured with 0). */
int spd_port(const spd_daemon *d);
/* The control channel's TCP port (the one picked for "0"), or 0. */
int spd_control_port(const spd_daemon *d);
/* Only while spd_run is not running (while it runs: the control channel). */
void spd_get_stats(const spd_daemon *d, spd_stats *out);
/* Closes every connection, removes the unix socket and frees the daemon. */
void spd_close(spd_daemon *d);

#ifdef __cplusplus
}
#endif

#endif /* SPREAD_CLIENT_DAEMON_H */
