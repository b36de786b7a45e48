/* main.c -- the embedded daemon as a stand-alone program, with the options
 * and ready line of `python -m spread.daemon`. The C tests and the
 * sanitizer runs use it; Python users run the module instead. Its defaults
 * are daemon.h's (spd_default_config). */
#include "daemon.h"

#include <errno.h>
#include <limits.h>
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
    fprintf(
        stderr,
        "usage: %s [options]\n"
        "  --port N                  TCP port and unix socket /tmp/N, 1..32767, or 0 to\n"
        "                            pick a free one (default %d)\n"
        "  --host ADDR               IPv4 address or host name for TCP (default %s)\n"
        "  --name NAME               daemon name, the end of private groups (default %s)\n"
        "  --max-session-messages N  undelivered messages that get a client killed (default %d)\n"
        "  --max-session-bytes N     undelivered bytes that get a client killed (default %lld)\n"
        "  --slow-reader-budget MS   back-pressure for slow readers, ms at a time; 0 = off, as\n"
        "                            a real Spread daemon (default %d)\n"
        "  --control ADDR            control channel: a unix socket path, or a port (0 = a\n"
        "                            free one) on 127.0.0.1 only (default: none)\n"
        "  --no-unix-socket          listen on TCP only\n"
        "  --no-tcp                  listen on the unix socket only\n"
        "  --log-level LEVEL         quiet, error, info or debug (default info)\n",
        prog, SPD_DEFAULT_PORT, SPD_DEFAULT_HOST, SPD_DEFAULT_NAME,
        SPD_DEFAULT_MAX_SESSION_MESSAGES, SPD_DEFAULT_MAX_SESSION_BYTES,
        SPD_DEFAULT_SLOW_READER_BUDGET);
    return 2;
}

/* A whole decimal number in lo..hi, or usage. */
static int number(const char *prog, const char *opt, const char *v, long long lo, long long hi,
                  long long *out)
{
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (errno || end == v || *end || n < lo || n > hi) {
        fprintf(stderr, "%s: %s wants a whole number from %lld to %lld, not '%s'\n", prog, opt, lo,
                hi, v);
        return usage(prog);
    }
    *out = n;
    return 0;
}

int main(int argc, char **argv)
{
    spd_config cfg;
    spd_default_config(&cfg);
    static const char *levels[] = {"quiet", "error", "info", "debug"};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long long n = 0;
        if (!strcmp(a, "--no-unix-socket")) {
            cfg.unix_socket = 0;
        } else if (!strcmp(a, "--no-tcp")) {
            cfg.tcp = 0;
        } else if (!v) {
            return usage(argv[0]);
        } else if (!strcmp(a, "--port")) {
            if (number(argv[0], a, v, 0, 32767, &n))
                return 2;
            cfg.port = (int)n, i++;
        } else if (!strcmp(a, "--host")) {
            cfg.host = v, i++;
        } else if (!strcmp(a, "--name")) {
            cfg.name = v, i++;
        } else if (!strcmp(a, "--max-session-messages")) {
            if (number(argv[0], a, v, 1, INT_MAX, &n))
                return 2;
            cfg.max_session_messages = (int)n, i++;
        } else if (!strcmp(a, "--max-session-bytes")) {
            if (number(argv[0], a, v, 1, LLONG_MAX, &n))
                return 2;
            cfg.max_session_bytes = n, i++;
        } else if (!strcmp(a, "--slow-reader-budget")) {
            if (number(argv[0], a, v, 0, SPD_MAX_SLOW_READER_BUDGET, &n))
                return 2;
            cfg.slow_reader_budget = (int)n, i++;
        } else if (!strcmp(a, "--control")) {
            cfg.control = v, i++;
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
    if (cfg.control && *cfg.control && spd_control_port(d))
        printf("spread-daemon ready: %s on port %d; control 127.0.0.1:%d\n", cfg.name, spd_port(d),
               spd_control_port(d));
    else if (cfg.control && *cfg.control)
        printf("spread-daemon ready: %s on port %d; control %s\n", cfg.name, spd_port(d),
               cfg.control);
    else
        printf("spread-daemon ready: %s on port %d\n", cfg.name, spd_port(d));
    fflush(stdout);
    int r = spd_run(d, stop_pipe[0]);
    spd_close(d);
    close(stop_pipe[0]);
    close(stop_pipe[1]);
    return r == 0 ? 0 : 1;
}
