"""Builds spread._cffi_native: the cffi backend's native module, in cffi's
out-of-line API mode, from the same native/ sources as the Cython module.
setup.py also takes NATIVE_SOURCES from here: one list for both."""

from glob import glob
from pathlib import Path

from cffi import FFI

ROOT = Path(__file__).resolve().parents[2]

NATIVE_SOURCES = [
    "native/wire.c",
    "native/receiver.c",
    "native/bench.c",
    "native/library.c",
    *sorted(glob("native/client/*.c", root_dir=ROOT)),
    *sorted(f for f in glob("native/daemon/*.c", root_dir=ROOT) if not f.endswith("main.c")),
]
INCLUDE_DIRS = ["native/include", "native", "native/daemon"]

import sys  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _names import INTERNAL_CONSTANTS, SP_CONSTANTS  # noqa: E402  (one list)

CONSTANTS = SP_CONSTANTS + INTERNAL_CONSTANTS

CDEF = "".join(f"#define {name} ...\n" for name in CONSTANTS) + """
typedef int mailbox;
typedef int service;
typedef short int16;
typedef struct { long sec; long usec; } sp_time;
typedef struct { char *buf; int len; } scat_element;
typedef struct { int num_elements; scat_element elements[100]; } scatter;
typedef struct { int id[3]; } group_id;
typedef struct { unsigned int num_members; unsigned int members_offset; } vs_set_info;
typedef struct { group_id gid; char changed_member[32]; unsigned int num_vs_sets;
                 vs_set_info my_vs_set; } membership_info;

int SP_version(int *major, int *minor, int *patch);
int SP_connect(const char *spread_name, const char *private_name, int priority,
               int group_membership, mailbox *mbox, char *private_group);
int SP_connect_timeout(const char *spread_name, const char *private_name, int priority,
                       int group_membership, mailbox *mbox, char *private_group,
                       sp_time time_out);
int SP_disconnect(mailbox mbox);
void SP_kill(mailbox mbox);
int SP_join(mailbox mbox, const char *group);
int SP_leave(mailbox mbox, const char *group);
int SP_multicast(mailbox mbox, service service_type, const char *group, int16 mess_type,
                 int mess_len, const char *mess);
int SP_multigroup_multicast(mailbox mbox, service service_type, int num_groups,
                            const char groups[][32], int16 mess_type, int mess_len,
                            const char *mess);
int SP_receive(mailbox mbox, service *service_type, char sender[32], int max_groups,
               int *num_groups, char groups[][32], int16 *mess_type, int *endian_mismatch,
               int max_mess_len, char *mess);
int SP_get_memb_info(const char *memb_mess, const service service_type,
                     membership_info *memb_info);
int SP_get_vs_sets_info(const char *memb_mess, vs_set_info *vs_sets, int num_vs_sets,
                        unsigned int *my_vs_set_index);
int SP_get_vs_set_members(const char *memb_mess, const vs_set_info *vs_set,
                          char member_names[][32], int member_names_count);
int SP_poll(mailbox mbox);
int SP_equal_group_ids(group_id g1, group_id g2);

const char *SPX_error_text(int error);
int SPX_hold(mailbox mbox);
void SPX_release(mailbox mbox);
int SPX_set_interruptible(mailbox mbox, int on);
int SPX_set_readahead(mailbox mbox, int bytes);
int SPX_pending(mailbox mbox);
int SPX_receive_records(mailbox mbox, char *buf, int buf_len, int *used);

typedef struct { uint32_t size; int32_t service; int32_t data_len; int32_t num_groups;
                 int32_t endian; int16 mess_type; char sender[32]; } spx_record;
const char *spx_record_data(const spx_record *r);
const char *spx_record_groups_flat(const spx_record *r);

typedef struct {
    int (*receive)(mailbox, service *, char *, int, int *, char (*)[32], int16 *, int *,
                   int, char *);
    int (*disconnect)(mailbox);
    int (*hold)(mailbox);
    void (*release)(mailbox);
    int (*readahead)(mailbox, int);
    int (*pending)(mailbox);
    int (*records)(mailbox, char *, int, int *);
} spr_library;
typedef struct {
    unsigned long long received, delivered;
    size_t backlog_messages, backlog_bytes, peak_messages, peak_bytes;
    double first_at, last_at;
    int state, error;
} spr_stats;
typedef struct spr_receiver spr_receiver;
spr_receiver *spr_start(mailbox mbox, const spr_library *lib, size_t max_backlog_bytes,
                        int on_overflow, int *err);
int spr_fileno(const spr_receiver *r);
int spr_wait(spr_receiver *r, int timeout_ms);
int spr_help(spr_receiver *r);
int spr_peek(spr_receiver *r, const spx_record **out, int max);
void spr_consume(spr_receiver *r, int n);
void spr_get_stats(spr_receiver *r, spr_stats *out);
void spr_close(spr_receiver *r);
void spr_free(spr_receiver *r);

typedef struct { int port; const char *host; const char *name; int max_session_messages;
                 int tcp; int unix_socket; int log_level; } spd_config;
typedef struct spd_daemon spd_daemon;
spd_daemon *spd_open(const spd_config *config, char *err, int err_size);
int spd_run(spd_daemon *d, int stop_fd);
void spd_close(spd_daemon *d);

typedef struct {
    int (*SP_version)(int *, int *, int *);
    int (*SP_connect)(const char *, const char *, int, int, mailbox *, char *);
    int (*SP_connect_timeout)(const char *, const char *, int, int, mailbox *, char *, sp_time);
    int (*SP_disconnect)(mailbox);
    void (*SP_kill)(mailbox);
    int (*SP_join)(mailbox, const char *);
    int (*SP_leave)(mailbox, const char *);
    int (*SP_multicast)(mailbox, service, const char *, int16, int, const char *);
    int (*SP_multigroup_multicast)(mailbox, service, int, const char (*)[32], int16, int,
                                   const char *);
    int (*SP_receive)(mailbox, service *, char *, int, int *, char (*)[32], int16 *, int *,
                      int, char *);
    int (*SP_get_memb_info)(const char *, const service, membership_info *);
    int (*SP_get_vs_sets_info)(const char *, vs_set_info *, int, unsigned int *);
    int (*SP_get_vs_set_members)(const char *, const vs_set_info *, char (*)[32], int);
    int (*SP_poll)(mailbox);
    int (*SP_equal_group_ids)(group_id, group_id);
} spl_table;
spl_table spl;
int spl_load(const char *path, char *err, int err_size);

int spb_multicast(mailbox m, const char *group, int size, int count, int16 last_type,
                  double *seconds);
int spb_self(mailbox m, const char *group, int size, int count, int window, double *seconds);
int spb_receive(mailbox m, int16 end_type, long *messages, double *seconds, int *error);
int spb_ping(mailbox m, const char *peer_group, int size, int warmup, int rounds,
             double *rtt_us);
int spb_pong(mailbox m, const char *reply_group, int16 end_type, long *echoed);
"""

SOURCE = """
#include "sp.h"
#include "spx.h"
#include "receiver.h"
#include "daemon.h"
#include "bench.h"
#include "library.h"
/* The groups of a record as one flat pointer (cffi has no pointer-to-array returns). */
static const char *spx_record_groups_flat(const spx_record *r)
{
    return (const char *)spx_record_groups(r);
}
"""

ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source("spread._cffi_native", SOURCE, sources=NATIVE_SOURCES,
                      include_dirs=INCLUDE_DIRS, extra_compile_args=["-D_GNU_SOURCE"],
                      libraries=["dl"])

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
