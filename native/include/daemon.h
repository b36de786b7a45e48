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

#define SPD_DEFAULT_MAX_SESSION_BYTES (64LL * 1024 * 1024)

typedef struct spd_config {
    int port;                 /* TCP port and /tmp/<port>; 1..32767, or 0 = pick a free one */
    const char *host;         /* IPv4 address or host name to bind; NULL or "" = 127.0.0.1 */
    const char *name;         /* daemon name in private groups; NULL = "localhost" */
    int max_session_messages; /* slow-reader limit, messages; <= 0 = 1000 */
    long long max_session_bytes; /* slow-reader limit, queued bytes; <= 0 = 64 MiB */
    int tcp;                  /* listen on TCP */
    int unix_socket;          /* listen on /tmp/<port> (at least one of the two) */
    int log_level;            /* SPD_LOG_*; lines go to stderr */
} spd_config;

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
/* Only while spd_run is not running. */
void spd_get_stats(const spd_daemon *d, spd_stats *out);
/* Closes every connection, removes the unix socket and frees the daemon. */
void spd_close(spd_daemon *d);

#ifdef __cplusplus
}
#endif

#endif /* SPREAD_CLIENT_DAEMON_H */
