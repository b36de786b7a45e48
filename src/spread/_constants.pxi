# _constants.pxi -- the sp.h constants, exported to Python under their classic
# names with the values sp.h gives them (included by _core.pyx).

cdef extern from "sp.h":
    cpdef enum:
        LOW_PRIORITY
        MEDIUM_PRIORITY
        HIGH_PRIORITY
        DEFAULT_SPREAD_PORT
        SPREAD_VERSION
        MAX_GROUP_NAME
        MAX_PRIVATE_NAME
        MAX_PROC_NAME
        UNRELIABLE_MESS
        RELIABLE_MESS
        FIFO_MESS
        CAUSAL_MESS
        AGREED_MESS
        SAFE_MESS
        REGULAR_MESS
        SELF_DISCARD
        DROP_RECV
        REG_MEMB_MESS
        TRANSITION_MESS
        CAUSED_BY_JOIN
        CAUSED_BY_LEAVE
        CAUSED_BY_DISCONNECT
        CAUSED_BY_NETWORK
        MEMBERSHIP_MESS
        ENDIAN_RESERVED
        RESERVED
        REJECT_MESS
        ACCEPT_SESSION
        ILLEGAL_SPREAD
        COULD_NOT_CONNECT
        REJECT_QUOTA
        REJECT_NO_NAME
        REJECT_ILLEGAL_NAME
        REJECT_NOT_UNIQUE
        REJECT_VERSION
        CONNECTION_CLOSED
        REJECT_AUTH
        ILLEGAL_SESSION
        ILLEGAL_SERVICE
        ILLEGAL_MESSAGE
        ILLEGAL_GROUP
        BUFFER_TOO_SHORT
        GROUPS_TOO_SHORT
        MESSAGE_TOO_LONG
        NET_ERROR_ON_SESSION
        MAX_CLIENT_SCATTER_ELEMENTS
