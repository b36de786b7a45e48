/* fake_peer.h -- a stand-in daemon for the C tests that need to control
 * the bytes a client receives: it completes the handshake on a unix socket
 * and then leaves the connection to the test, which writes what it wants
 * (and never reads, so the client's sends fill the socket). Include after
 * check.h. */
#ifndef SPREAD_CLIENT_FAKE_PEER_H
#define SPREAD_CLIENT_FAKE_PEER_H

#include <pthread.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "sp.h"

/* Accepts one connection on the listening socket *arg and answers the
 * handshake (no authentication, private name "#nw#localhost"); then puts
 * the connection in *arg. */
static void *silent_peer(void *arg)
{
    int lfd = *(int *)arg, fd = accept(lfd, NULL, NULL);
    unsigned char req[64], choice[90];
    static const unsigned char list[] = {5, 'N', 'U', 'L', 'L', ' '};
    static const unsigned char acc[] = {1,   4,   0,   0,   13,  '#', 'n', 'w', '#',
                                        'l', 'o', 'c', 'a', 'l', 'h', 'o', 's', 't'};
    if (fd < 0)
        return NULL;
    ssize_t n = recv(fd, req, sizeof req, 0);
    (void)n;
    n = write(fd, list, sizeof list);
    n = recv(fd, choice, sizeof choice, MSG_WAITALL);
    n = write(fd, acc, sizeof acc);
    *(int *)arg = fd; /* hand the connection back; it is closed by the test */
    return NULL;
}

/* A connection to silent_peer on the unix socket /tmp/<port>. */
typedef struct {
    mailbox m;
    int peer, lfd;
    struct sockaddr_un a;
} fake_link;

static void fake_connect(fake_link *f, int port, const char *name)
{
    f->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    memset(&f->a, 0, sizeof f->a);
    f->a.sun_family = AF_UNIX;
    snprintf(f->a.sun_path, sizeof f->a.sun_path, "/tmp/%d", port);
    unlink(f->a.sun_path);
    CHECK_EQ(bind(f->lfd, (struct sockaddr *)&f->a, sizeof f->a), 0);
    CHECK_EQ(listen(f->lfd, 1), 0);
    pthread_t t;
    f->peer = f->lfd;
    pthread_create(&t, NULL, silent_peer, &f->peer);
    char pg[MAX_GROUP_NAME], where[16];
    snprintf(where, sizeof where, "%d", port);
    CHECK_EQ(SP_connect(where, name, 0, 0, &f->m, pg), ACCEPT_SESSION);
    pthread_join(t, NULL);
}

static void fake_close(fake_link *f)
{
    SP_kill(f->m);
    close(f->peer);
    close(f->lfd);
    unlink(f->a.sun_path);
}

#endif /* SPREAD_CLIENT_FAKE_PEER_H */
