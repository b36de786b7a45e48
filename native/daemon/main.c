/* main.c -- the embedded daemon as a stand-alone program, with the options
 * and ready line of `python -m spread.daemon`. The C tests and the
 * sanitizer runs use it; Python users run the module instead. */
#include "daemon.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int stop_pipe[2] = {-1, -1};

static void on_signal(int sig)
{
    (void)sig;
    char b = 'x';
    ssize_t r = write(stop_pipe[1], &b, 1);
    (void)r;
}

static int usage(const char *prog)
{
    fprintf(stderr,
            "usage: %s [--port N] [--host ADDR] [--name NAME] [--max-session-messages N]\n"
            "          [--no-unix-socket] [--no-tcp] [--log-level quiet|error|info|debug]\n",
            prog);
    return 2;
}

int main(int argc, char **argv)
{
    spd_config cfg = {4803, "127.0.0.1", "localhost", 1000, 1, 1, SPD_LOG_INFO};
    static const char *levels[] = {"quiet", "error", "info", "debug"};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--no-unix-socket")) {
            cfg.unix_socket = 0;
        } else if (!strcmp(a, "--no-tcp")) {
            cfg.tcp = 0;
        } else if (!v) {
            return usage(argv[0]);
        } else if (!strcmp(a, "--port")) {
            cfg.port = atoi(v), i++;
        } else if (!strcmp(a, "--host")) {
            cfg.host = v, i++;
        } else if (!strcmp(a, "--name")) {
            cfg.name = v, i++;
        } else if (!strcmp(a, "--max-session-messages")) {
            cfg.max_session_messages = atoi(v), i++;
        } else if (!strcmp(a, "--log-level")) {
            int found = 0;
            for (int l = 0; l < 4; l++)
                if (!strcmp(v, levels[l]))
                    cfg.log_level = l, found = 1;
            if (!found)
                return usage(argv[0]);
            i++;
        } else {
            return usage(argv[0]);
        }
    }
    char err[256] = "";
    spd_daemon *d = spd_open(&cfg, err, sizeof err);
    if (!d) {
        fprintf(stderr, "spread-daemon: %s\n", err);
        return 1;
    }
    if (pipe(stop_pipe) != 0) {
        spd_close(d);
        return 1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    printf("spread-daemon ready: %s on port %d\n", cfg.name, cfg.port);
    fflush(stdout);
    int r = spd_run(d, stop_pipe[0]);
    spd_close(d);
    close(stop_pipe[0]);
    close(stop_pipe[1]);
    return r == 0 ? 0 : 1;
}
