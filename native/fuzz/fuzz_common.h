/* fuzz_common.h -- what the client-side harnesses do with a connection once
 * they have one: receive from it until it fails, the way a binding would,
 * and decode every membership message with the length-checked helpers; and
 * for the daemon-side harnesses (fuzz_daemon, fuzz_control), the embedded
 * daemon run in-process as a binding runs it. */
#ifndef SPREAD_FUZZ_COMMON_H
#define SPREAD_FUZZ_COMMON_H

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon.h"
#include "sp.h"
#include "spx.h"

#define FUZZ_MAX_MESSAGES 64   /* receive calls per input, at most */
#define FUZZ_BIG_DATA     (1 << 16)
#define FUZZ_BIG_GROUPS   128
#define FUZZ_VS_SETS      8
#define FUZZ_MEMBERS      64

/* The membership helpers on a body of len bytes, as a binding calls them.
 * They work on a copy of exactly len bytes: a read past the body inside a
 * bigger receive buffer would go unseen. */
static inline void fuzz_decode_membership(const char *received, int len, service svc)
{
    membership_info info;
    vs_set_info sets[FUZZ_VS_SETS];
    unsigned int mine = 0;
    static char names[FUZZ_MEMBERS][MAX_GROUP_NAME];
    if (len < 0)
        return;
    char *body = malloc(len ? (size_t)len : 1);
    if (!body)
        abort();
    memcpy(body, received, (size_t)len);
    if (SPX_get_memb_info(body, len, svc, &info) == 1) {
        SPX_get_vs_set_members(body, len, &info.my_vs_set, names, FUZZ_MEMBERS);
        int k = Is_reg_memb_mess(svc) ? SPX_get_vs_sets_info(body, len, sets, FUZZ_VS_SETS, &mine)
                                      : 0;
        for (int i = 0; i < k; i++)
            SPX_get_vs_set_members(body, len, &sets[i], names, FUZZ_MEMBERS);
    }
    free(body);
}

/* SP_receive with buffers too small for most messages: the header is saved
 * (GROUPS_TOO_SHORT / BUFFER_TOO_SHORT), and the next call takes the message
 * with DROP_RECV, which truncates it. */
static inline int fuzz_receive_short(mailbox m, char *data, char (*groups)[MAX_GROUP_NAME])
{
    service svc = 0;
    char sender[MAX_GROUP_NAME];
    int ng, endian;
    int16 mt;
    int r = SP_receive(m, &svc, sender, 1, &ng, groups, &mt, &endian, 16, data);
    if (r != GROUPS_TOO_SHORT && r != BUFFER_TOO_SHORT)
        return r;
    svc = DROP_RECV;
    r = SP_receive(m, &svc, sender, 1, &ng, groups, &mt, &endian, 16, data);
    return r == BUFFER_TOO_SHORT || r == GROUPS_TOO_SHORT ? 0 : r;
}

static inline int fuzz_receive_one(mailbox m, char *data, char (*groups)[MAX_GROUP_NAME])
{
    service svc = 0;
    char sender[MAX_GROUP_NAME];
    int ng, endian;
    int16 mt;
    int r = SP_receive(m, &svc, sender, FUZZ_BIG_GROUPS, &ng, groups, &mt, &endian, FUZZ_BIG_DATA,
                       data);
    if (r >= 0)
        fuzz_decode_membership(data, r, svc);
    return r == BUFFER_TOO_SHORT || r == GROUPS_TOO_SHORT ? 0 : r;
}

/* SPX_receive_records (nowait: 0 waits, else how + 1); a first message too
 * big for the buffer is taken again with one big enough. Returns how many
 * records or an error. */
static inline int fuzz_receive_records(mailbox m, char **buf, int *cap, int nowait)
{
    int used = 0, r;
    for (int tries = 0; tries < 2; tries++) {
        r = nowait ? SPX_receive_records_nowait(m, *buf, *cap, &used, nowait - 1)
                   : SPX_receive_records(m, *buf, *cap, &used);
        if (r != BUFFER_TOO_SHORT || used >= 0 || -used > (1 << 22))
            break;
        char *bigger = realloc(*buf, (size_t)-used);
        if (!bigger)
            return r;
        *buf = bigger;
        *cap = -used;
    }
    if (r <= 0)
        return r == SPX_WOULD_BLOCK ? 0 : r;
    size_t off = 0;
    for (int i = 0; i < r; i++) {
        spx_record rec;
        memcpy(&rec, *buf + off, sizeof rec);
        if (Is_membership_mess(rec.service))
            fuzz_decode_membership(rec.data, rec.data_len, rec.service);
        off += rec.size;
    }
    return r;
}

/* Receives until an error, at most FUZZ_MAX_MESSAGES calls; `how` picks the
 * call per message (two bits each, cycling). */
static inline void fuzz_receive_all(mailbox m, uint8_t how)
{
    char *data = malloc(FUZZ_BIG_DATA);
    static char groups[FUZZ_BIG_GROUPS][MAX_GROUP_NAME];
    int cap = 512;
    char *records = malloc((size_t)cap);
    if (!data || !records)
        abort();
    for (int i = 0, r = 0; i < FUZZ_MAX_MESSAGES && r >= 0; i++) {
        switch ((how >> (2 * (i % 4))) & 3) {
        case 0: r = fuzz_receive_one(m, data, groups); break;
        case 1: r = fuzz_receive_short(m, data, groups); break;
        case 2: r = fuzz_receive_records(m, &records, &cap, 0); break;
        default: r = fuzz_receive_records(m, &records, &cap, 1 + (i & 1)); break;
        }
    }
    free(data);
    free(records);
}

/* ---- the daemon-side harnesses: one daemon for the whole run ---------- */

static spd_daemon *fuzz_daemon;
static int fuzz_stop_pipe[2] = {-1, -1};
static pthread_t fuzz_runner;

static inline void *fuzz_run_daemon(void *arg)
{
    (void)arg;
    if (spd_run(fuzz_daemon, fuzz_stop_pipe[0]) != 0)
        abort();
    return NULL;
}

static inline void fuzz_stop_daemon(void)
{
    if (!fuzz_daemon)
        return;
    if (write(fuzz_stop_pipe[1], "x", 1) == 1)
        pthread_join(fuzz_runner, NULL);
    spd_close(fuzz_daemon); /* removes its socket files */
    fuzz_daemon = NULL;
}

/* Reads and drops what is there on fd; 0, or -1 once the daemon has closed it. */
static inline int fuzz_drain(int fd)
{
    char sink[16384];
    for (;;) {
        ssize_t n = recv(fd, sink, sizeof sink, MSG_DONTWAIT);
        if (n > 0)
            continue;
        if (n < 0 && errno == EINTR)
            continue;
        return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
    }
}

/* Opens a daemon with cfg (a unix socket /tmp/<port> of a free port, TCP
 * off, quiet unless FUZZ_DAEMON_LOG is set), serves it in a thread of its
 * own as a binding does, and stops it at exit; `who` names the harness in
 * a failure. Returns the port. */
static inline int fuzz_start_daemon(spd_config *cfg, const char *who)
{
    cfg->port = 0;
    cfg->tcp = 0;
    cfg->unix_socket = 1;
    cfg->log_level = getenv("FUZZ_DAEMON_LOG") ? SPD_LOG_DEBUG : SPD_LOG_QUIET;
    char err[256];
    fuzz_daemon = spd_open(cfg, err, sizeof err);
    if (!fuzz_daemon || pipe(fuzz_stop_pipe) != 0) {
        fprintf(stderr, "%s: %s\n", who, fuzz_daemon ? strerror(errno) : err);
        abort();
    }
    if (pthread_create(&fuzz_runner, NULL, fuzz_run_daemon, NULL) != 0)
        abort();
    atexit(fuzz_stop_daemon);
    return spd_port(fuzz_daemon);
}

#endif /* SPREAD_FUZZ_COMMON_H */
