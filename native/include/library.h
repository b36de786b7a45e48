/*
 * library.h -- which Spread client library a binding calls: ours (the
 * default) or one loaded at run time (SPREAD_LIBRARY), through one table of
 * function pointers. Only Spread's own API is taken from an external library.
 */
#ifndef SPREAD_CLIENT_LIBRARY_H
#define SPREAD_CLIENT_LIBRARY_H

#include "receiver.h"
#include "sp.h"

typedef struct spl_table {
    int (*SP_version)(int *, int *, int *);
    int (*SP_connect)(const char *, const char *, int, int, mailbox *, char *);
    int (*SP_connect_timeout)(const char *, const char *, int, int, mailbox *, char *, sp_time);
    int (*SP_disconnect)(mailbox);
    void (*SP_kill)(mailbox);
    int (*SP_join)(mailbox, const char *);
    int (*SP_leave)(mailbox, const char *);
    int (*SP_multicast)(mailbox, service, const char *, int16, int, const char *);
    int (*SP_multigroup_multicast)(mailbox, service, int, const char (*)[MAX_GROUP_NAME], int16,
                                   int, const char *);
    int (*SP_receive)(mailbox, service *, char *, int, int *, char (*)[MAX_GROUP_NAME], int16 *,
                      int *, int, char *);
    int (*SP_get_memb_info)(const char *, const service, membership_info *);
    int (*SP_get_vs_sets_info)(const char *, vs_set_info *, int, unsigned int *);
    int (*SP_get_vs_set_members)(const char *, const vs_set_info *, char (*)[MAX_GROUP_NAME], int);
    int (*SP_poll)(mailbox);
    int (*SP_equal_group_ids)(group_id, group_id);
} spl_table;

/* The library in use: ours until spl_load succeeds. */
extern spl_table spl;

/* Loads an external Spread client library. On failure returns -1 and writes
 * the reason (the symbols it lacks, or dlopen's error) to err. */
int spl_load(const char *path, char *err, int err_size);

/* Fills the drain thread's function table (receiver.h) for the library in
 * use: Spread's own API (receive, disconnect) from the loaded library once
 * spl_load has succeeded, else from ours; our extensions (hold, release,
 * readahead, pending, records, lend, lent_room) only when the library is
 * ours, NULL otherwise. */
void spl_receiver_library(spr_library *out);

#endif /* SPREAD_CLIENT_LIBRARY_H */
