# libspread.pxd -- the C API of native/include/sp.h (and our spx.h
# extensions), declared once for Cython. Blocking calls are nogil.

cdef extern from "sp.h" nogil:
    # The constants are declared in _constants.pxi, which exports them to Python.

    ctypedef int mailbox
    ctypedef int service
    ctypedef short int16

    ctypedef struct sp_time:
        long sec
        long usec

    ctypedef struct scat_element:
        char *buf
        int len

    ctypedef struct scatter:
        int num_elements
        scat_element elements[100]

    ctypedef struct group_id:
        int id[3]

    ctypedef struct vs_set_info:
        unsigned int num_members
        unsigned int members_offset

    ctypedef struct membership_info:
        group_id gid
        char changed_member[32]
        unsigned int num_vs_sets
        vs_set_info my_vs_set

    bint Is_regular_mess(int t)
    bint Is_membership_mess(int t)
    bint Is_reg_memb_mess(int t)
    bint Is_transition_mess(int t)
    bint Is_self_leave(int t)
    bint Is_reject_mess(int t)

    int SP_version(int *major, int *minor, int *patch)
    int SP_connect(const char *spread_name, const char *private_name, int priority,
                   int group_membership, mailbox *mbox, char *private_group)
    int SP_connect_timeout(const char *spread_name, const char *private_name, int priority,
                           int group_membership, mailbox *mbox, char *private_group,
                           sp_time time_out)
    int SP_disconnect(mailbox mbox)
    void SP_kill(mailbox mbox)
    int SP_join(mailbox mbox, const char *group)
    int SP_leave(mailbox mbox, const char *group)
    int SP_multicast(mailbox mbox, service service_type, const char *group,
                     int16 mess_type, int mess_len, const char *mess)
    int SP_scat_multicast(mailbox mbox, service service_type, const char *group,
                          int16 mess_type, const scatter *scat_mess)
    int SP_multigroup_multicast(mailbox mbox, service service_type, int num_groups,
                                const char (*groups)[32], int16 mess_type,
                                int mess_len, const char *mess)
    int SP_receive(mailbox mbox, service *service_type, char *sender,
                   int max_groups, int *num_groups, char (*groups)[32],
                   int16 *mess_type, int *endian_mismatch, int max_mess_len, char *mess)
    int SP_get_memb_info(const char *memb_mess, service service_type,
                         membership_info *memb_info)
    int SP_get_vs_sets_info(const char *memb_mess, vs_set_info *vs_sets, int num_vs_sets,
                            unsigned int *my_vs_set_index)
    int SP_get_vs_set_members(const char *memb_mess, const vs_set_info *vs_set,
                              char (*member_names)[32], int member_names_count)
    int SP_poll(mailbox mbox)
    int SP_equal_group_ids(group_id g1, group_id g2)


cdef extern from "spx.h" nogil:
    ctypedef struct spx_record:
        unsigned int size
        int service
        int data_len
        int num_groups
        int endian
        int16 mess_type
        char sender[32]
        const char *data
        const char *groups

    const char *spx_record_data(const spx_record *r)
    const char (*spx_record_groups(const spx_record *r))[32]

    const char *SPX_error_text(int error)
    int SPX_hold(mailbox mbox)
    void SPX_release(mailbox mbox)
    int SPX_INTERRUPTED
    int SPX_TIMED_OUT
    int SPX_get_memb_info(const char *body, int len, service service_type,
                          membership_info *memb_info)
    int SPX_get_vs_sets_info(const char *body, int len, vs_set_info *vs_sets, int num_vs_sets,
                             unsigned int *my_vs_set_index)
    int SPX_get_vs_set_members(const char *body, int len, const vs_set_info *vs_set,
                               char member_names[][32], int member_names_count)
    int SPX_NOT_SPREAD
    int SPX_connect(const char *spread_name, const char *private_name, int priority,
                    int group_membership, mailbox *mbox, char *private_group, int timeout_ms,
                    int interruptible, int socket_buffer)
    int SPX_set_interruptible(mailbox mbox, int on)
    int SPX_set_readahead(mailbox mbox, int bytes)
    int SPX_pending(mailbox mbox)
    int SPX_set_peek(mailbox mbox, int on)
    int SPX_NOT_VIEWED
    ctypedef struct spx_session:
        pass
    ctypedef struct spx_view:
        service service_type
        int num_groups
        int16 mess_type
        int endian_mismatch
        const char *data
    spx_session *SPX_session(mailbox mbox)
    int SPX_view_next(spx_session *s, char *sender, int max_groups, char (*groups)[32],
                      spx_view *v)
    void SPX_view_done(spx_session *s, int taken)
    void SPX_group_slot(char *slot, const char *group)
    int SPX_send_nowait(spx_session *s, service service_type, const char *slot,
                        int16 mess_type, int mess_len, const char *mess)
    int SPX_receive_nowait(mailbox mbox, service *service_type, char *sender,
                           int max_groups, int *num_groups, char (*groups)[32],
                           int16 *mess_type, int *endian_mismatch, int max_mess_len, char *mess)
    int SPX_receive_records(mailbox mbox, char *buf, int buf_len, int *used)
    int SPX_receive_records_nowait(mailbox mbox, char *buf, int buf_len, int *used, int how)
    int SPX_lend_readahead(mailbox mbox, char *buf, int cap)
    int SPX_lent_room(mailbox mbox)
    int SPX_WOULD_BLOCK
    int SPX_PARTIAL
    int SPX_multicast_nowait(mailbox mbox, service service_type, const char *group,
                             int16 mess_type, int mess_len, const char *mess)
    int SPX_multigroup_multicast_nowait(mailbox mbox, service service_type, int num_groups,
                                        const char (*groups)[32], int16 mess_type,
                                        int mess_len, const char *mess)
    int SPX_finish_send(mailbox mbox)
    int SPX_finish_send_nowait(mailbox mbox)
    int SPX_abort_send(mailbox mbox)
    int SPX_join_nowait(mailbox mbox, const char *group)
    int SPX_leave_nowait(mailbox mbox, const char *group)
    int SPX_check_service(service service_type)


cdef extern from "daemon.h" nogil:
    enum:
        SPD_LOG_QUIET
        SPD_LOG_ERROR
        SPD_LOG_INFO
        SPD_LOG_DEBUG

    ctypedef struct spd_config:
        int port
        const char *host
        const char *name
        int max_session_messages
        long long max_session_bytes
        int slow_reader_budget
        int tcp
        int unix_socket
        int log_level
        const char *control
        int control_fd

    ctypedef struct spd_daemon:
        pass

    ctypedef struct spd_stats:
        size_t groups, group_slots, names, name_slots, connections

    spd_daemon *spd_open(const spd_config *config, char *err, int err_size)
    int spd_run(spd_daemon *d, int stop_fd)
    int spd_port(const spd_daemon *d)
    int spd_control_port(const spd_daemon *d)
    void spd_default_config(spd_config *out)
    void spd_get_stats(const spd_daemon *d, spd_stats *out)
    void spd_close(spd_daemon *d)


cdef extern from "receiver.h" nogil:
    ctypedef int (*spr_receive_fn)(mailbox, service *, char *, int, int *, char (*)[32],
                                   int16 *, int *, int, char *)
    ctypedef int (*spr_mailbox_fn)(mailbox)
    ctypedef void (*spr_release_fn)(mailbox)

    ctypedef struct spr_library:
        spr_receive_fn receive
        spr_mailbox_fn disconnect
        spr_mailbox_fn hold
        spr_release_fn release
        int (*readahead)(mailbox, int)
        spr_mailbox_fn pending
        int (*records)(mailbox, char *, int, int *, int)
        int (*lend)(mailbox, char *, int)
        spr_mailbox_fn lent_room

    enum:
        SPR_OVERFLOW_DISCONNECT
        SPR_OVERFLOW_BLOCK
        SPR_RUNNING
        SPR_CLOSED
        SPR_FAILED
        SPR_OVERFLOWED

    ctypedef spx_record spr_msg

    ctypedef struct spr_stats:
        unsigned long long received
        unsigned long long received_by_consumers
        unsigned long long delivered
        size_t backlog_messages
        size_t backlog_bytes
        size_t peak_messages
        size_t peak_bytes
        double first_at
        double last_at
        int state
        int error

    ctypedef struct spr_receiver:
        pass

    spr_receiver *spr_start(mailbox mbox, const spr_library *lib, size_t max_backlog_bytes,
                            int on_overflow, int *err)
    int spr_fileno(spr_receiver *r)
    int spr_wait(spr_receiver *r, int timeout_ms)
    int spr_help(spr_receiver *r)
    int spr_peek(spr_receiver *r, const spr_msg **out, int max)
    void spr_consume(spr_receiver *r, int n)
    void spr_get_stats(spr_receiver *r, spr_stats *out)
    void spr_close(spr_receiver *r)
    void spr_free(spr_receiver *r)


cdef extern from "bench.h" nogil:
    int spb_multicast(mailbox m, const char *group, int size, int count, int16 last_type,
                      double *seconds)
    int spb_self(mailbox m, const char *group, int size, int count, int window, double *seconds)
    int spb_receive(mailbox m, int16 end_type, long *messages, double *seconds, int *error)
    int spb_ping(mailbox m, const char *peer_group, int size, int warmup, int rounds,
                 double *rtt_us)
    int spb_pong(mailbox m, const char *reply_group, int16 end_type, long *echoed)


# -- added by the native restructure
# Shared by both backends (native/include): the constants, the growing
# receive loop and the drain thread's library table in C.
cdef extern from "spx.h" nogil:
    enum: SPX_MAX_SAFE_BODY  # payload + 32 a group above which a Spread 4 daemon kills us
    enum: SPX_NO_MEMORY      # SPX_receive_grow: a buffer could not grow
    enum: SPX_RECV_FIRST_DATA
    enum: SPX_RECV_FIRST_GROUPS
    ctypedef struct spx_recv_buffers:
        char *data
        int data_size
        char (*groups)[32]
        int groups_size
    int spx_recv_buffers_init(spx_recv_buffers *b)
    void spx_recv_buffers_free(spx_recv_buffers *b)
    int SPX_receive_grow(spr_receive_fn receive, mailbox mbox, spx_recv_buffers *b,
                         service *service_type, char *sender, int *num_groups, int16 *mess_type,
                         int *endian)
    size_t spx_record_size(size_t data_len, size_t num_groups)
    # SPX_receive_grow's growth step, for the Cython loop that calls SP_receive itself.
    int spx_recv_buffers_grow(spx_recv_buffers *b, int num_groups, int endian)

cdef extern from "receiver.h" nogil:
    enum: SPR_HEADER_BYTES
    size_t spr_pending_bytes(spr_receiver *r)

cdef extern from "library.h" nogil:
    void spl_receiver_library(spr_library *out)
