/* library.c -- see library.h. */
#include "library.h"

#include <dlfcn.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "spx.h"

#define ENTRY(name) {#name, offsetof(spl_table, name)}

spl_table spl = {
    SP_version,
    SP_connect,
    SP_connect_timeout,
    SP_disconnect,
    SP_kill,
    SP_join,
    SP_leave,
    SP_multicast,
    SP_multigroup_multicast,
    SP_receive,
    SP_get_memb_info,
    SP_get_vs_sets_info,
    SP_get_vs_set_members,
    SP_poll,
    SP_equal_group_ids,
};

/* spl_load has replaced our library with another. */
static int external;

static const struct {
    const char *name;
    size_t offset;
} entries[] = {
    ENTRY(SP_version),
    ENTRY(SP_connect),
    ENTRY(SP_connect_timeout),
    ENTRY(SP_disconnect),
    ENTRY(SP_kill),
    ENTRY(SP_join),
    ENTRY(SP_leave),
    ENTRY(SP_multicast),
    ENTRY(SP_multigroup_multicast),
    ENTRY(SP_receive),
    ENTRY(SP_get_memb_info),
    ENTRY(SP_get_vs_sets_info),
    ENTRY(SP_get_vs_set_members),
    ENTRY(SP_poll),
    ENTRY(SP_equal_group_ids),
};

int spl_load(const char *path, char *err, int err_size)
{
    void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        snprintf(err, (size_t)err_size, "cannot load it: %s", dlerror());
        return -1;
    }
    spl_table loaded;
    size_t at = 0;
    err[0] = '\0';
    for (size_t i = 0; i < sizeof entries / sizeof entries[0]; i++) {
        void *sym = dlsym(handle, entries[i].name);
        if (!sym) {
            at += (size_t)snprintf(err + at, at < (size_t)err_size ? (size_t)err_size - at : 0,
                                   "%s%s", at ? ", " : "lacks ", entries[i].name);
            continue;
        }
        memcpy((char *)&loaded + entries[i].offset, &sym, sizeof sym);
    }
    if (err[0]) {
        dlclose(handle);
        return -1;
    }
    spl = loaded; /* the handle stays open for the life of the process */
    external = 1;
    return 0;
}

void spl_receiver_library(spr_library *out)
{
    memset(out, 0, sizeof *out);
    out->receive = spl.SP_receive;
    out->disconnect = spl.SP_disconnect;
    if (external)
        return; /* Spread's API only: the extensions are ours */
    out->hold = SPX_hold;
    out->release = SPX_release;
    out->readahead = SPX_set_readahead;
    out->pending = SPX_pending;
    out->records = SPX_receive_records_nowait;
    out->lend = SPX_lend_readahead;
    out->lent_room = SPX_lent_room;
}
