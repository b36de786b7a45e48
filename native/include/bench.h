/*
 * bench.h -- the C baseline of the benchmarks: the same workloads as the
 * Python side, run through sp.h with no Python in the loop. Every figure the
 * project reports is divided by these, measured in the same run.
 */
#ifndef SPREAD_CLIENT_BENCH_H
#define SPREAD_CLIENT_BENCH_H

#include "sp.h"

/* The loops call the library in use (library.h): ours, or an external one.
 * Every function returns 0 or a negative Spread error code. Times are in
 * seconds (CLOCK_MONOTONIC). */

/* Multicasts `count` messages of `size` bytes to `group` (not joined). */
int spb_multicast(mailbox m, const char *group, int size, int count, int16 last_type,
                  double *seconds);
/* Sends `count` messages to `group` (joined) and reads them back, keeping
 * at most `window` of its own in flight. */
int spb_self(mailbox m, const char *group, int size, int count, int window, double *seconds);
/* Receives until a message of msg_type `end_type` (or an error); counts data
 * messages and times from the first to the last. *error gets the error.
 * The loop owns the socket, so it reads ahead as a background receiver does. */
int spb_receive(mailbox m, int16 end_type, long *messages, double *seconds, int *error);
/* Ping: sends `size` bytes to `peer_group`, waits for one data message back;
 * `rounds` times after `warmup` untimed ones. rtt_us gets each round trip. */
int spb_ping(mailbox m, const char *peer_group, int size, int warmup, int rounds, double *rtt_us);
/* Pong: echoes every data message to `reply_group` until msg_type `end_type`. */
int spb_pong(mailbox m, const char *reply_group, int16 end_type, long *echoed);

#endif /* SPREAD_CLIENT_BENCH_H */
