"""The cffi backend: the same contract as the Cython module (spread._core;
spread/_backend.py lists it) over spread._cffi_native, which cffi builds in
out-of-line API mode from the same native/ sources. cffi releases the GIL
around every C call, so blocking calls never hold it. Used on PyPy, or with
SPREAD_BACKEND=cffi. One module per concept:

    library    the native module, SPREAD_LIBRARY, constants, error texts
    names      32-byte name slots
    messages   RegularMsg and the membership decoders
    batch      message objects from what the C hot paths (cffi_fast.h) describe
    mailbox    MailboxBase (hot sends and receive) and connect_raw
    receiver   ReceiverBase (hot get paths) over the native drain thread
    daemon     NativeDaemon
    bench      the C baseline loops
"""

from .._names import SP_CONSTANTS
from . import library as _library
from .bench import c_multicast, c_ping, c_pong, c_receive, c_self
from .daemon import LOG_LEVELS, NativeDaemon
from .library import LIBRARY, NATIVE, error_text, ffi, lib, sp, version
from .mailbox import MailboxBase, connect_raw
from .messages import RegularMsg, _memb_info, _vs_sets_info
from .receiver import ReceiverBase, start_receiver

globals().update({n: getattr(_library, n) for n in SP_CONSTANTS})

__all__ = [
    "LIBRARY",
    "LOG_LEVELS",
    "NATIVE",
    "MailboxBase",
    "NativeDaemon",
    "ReceiverBase",
    "RegularMsg",
    "c_multicast",
    "c_ping",
    "c_pong",
    "c_receive",
    "c_self",
    "connect_raw",
    "error_text",
    "ffi",
    "lib",
    "sp",
    "start_receiver",
    "version",
    "_memb_info",
    "_vs_sets_info",
    *SP_CONSTANTS,
]
