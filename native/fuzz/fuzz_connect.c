/* fuzz_connect.c -- the client library's handshake (SPX_connect) against a
 * hostile daemon. The library connects by address only, so the harness
 * listens on a unix socket /tmp/<port> of its own (a free port drawn at
 * start-up, removed at exit) and a peer thread answers each connection:
 *   byte 0    bit 0: group membership; bit 1: priority 1; bit 2: no private
 *             name (the daemon invents one); bit 3: offer the methods
 *             "NULL" and "IP" instead of "NULL" alone; bits 4-7: the receive
 *             calls after an accept (as fuzz_receive's byte 1)
 *   the rest  what the daemon writes (auth list, accept or reject, and
 *             messages), then end of stream.
 * A connection that is accepted is then received from until it fails, as
 * fuzz_receive does. No library change was needed for this. */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "fuzz_common.h"

static int listen_fd = -1;
static char port_text[16];
static struct sockaddr_un where;
static const uint8_t *peer_data; /* the current input, for the peer thread */
static size_t peer_len;
static sem_t peer_done;

static void remove_socket(void)
{
    if (listen_fd >= 0)
        unlink(where.sun_path);
}

/* Per connection: write the input, end the stream, read what the client
 * sends until it closes, close. */
static void *peer_main(void *arg)
{
    (void)arg;
    for (;;) {
        int fd = accept(listen_fd, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR)
                continue;
            abort();
        }
        size_t at = 0;
        while (at < peer_len) {
            ssize_t n = send(fd, peer_data + at, peer_len - at, MSG_NOSIGNAL);
            if (n <= 0)
                break; /* the client gave up and closed */
            at += (size_t)n;
        }
        shutdown(fd, SHUT_WR);
        char sink[4096];
        while (recv(fd, sink, sizeof sink, 0) > 0)
            ;
        close(fd);
        sem_post(&peer_done);
    }
    return NULL;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    unsigned int seed = (unsigned int)time(NULL) ^ (unsigned int)getpid();
    for (int tries = 0; tries < 200 && listen_fd < 0; tries++) {
        int port = 10000 + (int)(rand_r(&seed) % 22768u);
        struct stat st;
        memset(&where, 0, sizeof where);
        where.sun_family = AF_UNIX;
        snprintf(where.sun_path, sizeof where.sun_path, "/tmp/%d", port);
        if (lstat(where.sun_path, &st) == 0)
            continue; /* someone else's */
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || bind(fd, (struct sockaddr *)&where, sizeof where) != 0 ||
            listen(fd, 4) != 0) {
            if (fd >= 0)
                close(fd);
            continue;
        }
        listen_fd = fd;
        snprintf(port_text, sizeof port_text, "%d", port);
    }
    if (listen_fd < 0 || sem_init(&peer_done, 0, 0) != 0) {
        fprintf(stderr, "fuzz_connect: no unix socket to listen on\n");
        abort();
    }
    atexit(remove_socket);
    pthread_t t;
    if (pthread_create(&t, NULL, peer_main, NULL) != 0)
        abort();
    pthread_detach(t);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t flags = data[0];
    static const char *const one[] = {"NULL"}, *const two[] = {"NULL", "IP"};
    if (!SP_set_auth_methods(flags & 8 ? 2 : 1, flags & 8 ? (const char **)two : (const char **)one,
                             NULL, NULL))
        abort();
    peer_data = data + 1;
    peer_len = size - 1;
    mailbox m = -1;
    char group[MAX_GROUP_NAME];
    int r = SPX_connect(port_text, flags & 4 ? NULL : "fz", flags & 2 ? 1 : 0, flags & 1, &m, group,
                        5000, 0, SPX_SOCKET_BUFFER_DEFAULT);
    if (r == ACCEPT_SESSION) {
        if (strlen(group) >= MAX_GROUP_NAME || group[0] != '#')
            abort(); /* the library promised a private group */
        fuzz_receive_all(m, (uint8_t)(flags >> 4));
        SP_disconnect(m);
    }
    while (sem_wait(&peer_done) != 0)
        ;
    return 0;
}
