/*
 * daemon.h -- the embedded single-node Spread daemon (SPEC.md 8): a
 * single-threaded event loop that speaks Spread 4's client protocol through
 * the shared wire codec. Bindings open it, run it (without the GIL) until
 * their stop descriptor becomes readable, and close it.
 */
#ifndef SPREAD_CLIENT_DAEMON_H
#define SPREAD_CLIENT_DAEMON_H

#ifdef __cplusplus
extern "C" {
#endif

enum { SPD_LOG_QUIET = 0, SPD_LOG_ERROR = 1, SPD_LOG_INFO = 2, SPD_LOG_DEBUG = 3 };

typedef struct spd_config {
    int port;                 /* TCP port and /tmp/<port>; 0..32767 */
    const char *host;         /* TCP address to bind; NULL or "" = 127.0.0.1 */
    const char *name;         /* daemon name in private groups; NULL = "localhost" */
    int max_session_messages; /* slow-reader limit; <= 0 = 1000 */
    int tcp;                  /* listen on TCP */
    int unix_socket;          /* listen on /tmp/<port> */
    int log_level;            /* SPD_LOG_*; lines go to stderr */
} spd_config;

typedef struct spd_daemon spd_daemon;

/* Binds the sockets. On failure returns NULL and writes a reason to err. */
spd_daemon *spd_open(const spd_config *config, char *err, int err_size);
/* Serves until stop_fd (if >= 0) becomes readable. 0, or -1 on failure. */
int spd_run(spd_daemon *d, int stop_fd);
/* Closes every connection, removes the unix socket and frees the daemon. */
void spd_close(spd_daemon *d);

#ifdef __cplusplus
}
#endif

#endif /* SPREAD_CLIENT_DAEMON_H */
