/* errors.c -- error texts (SPEC.md 9.8). */
#include "spx.h"

#include <stdio.h>

const char *SPX_error_text(int error)
{
    switch (error) {
    case ILLEGAL_SPREAD: return "Illegal spread was provided";
    case COULD_NOT_CONNECT: return "Could not connect. Is Spread running?";
    case REJECT_QUOTA: return "Connection rejected, to many users";
    case REJECT_NO_NAME: return "Connection rejected, no name was supplied";
    case REJECT_ILLEGAL_NAME: return "Connection rejected, illegal name";
    case REJECT_NOT_UNIQUE: return "Connection rejected, name not unique";
    case REJECT_VERSION: return "Connection rejected, library does not fit daemon";
    case CONNECTION_CLOSED: return "Connection closed by spread";
    case REJECT_AUTH: return "Connection rejected, authentication failed";
    case ILLEGAL_SESSION: return "Illegal session was supplied";
    case ILLEGAL_SERVICE: return "Illegal service request";
    case ILLEGAL_MESSAGE: return "Illegal message";
    case ILLEGAL_GROUP: return "Illegal group";
    case BUFFER_TOO_SHORT: return "The supplied buffer was too short";
    case GROUPS_TOO_SHORT: return "The supplied groups list was too short";
    case MESSAGE_TOO_LONG:
        return "The message body + group names was too large to fit in a message";
    case NET_ERROR_ON_SESSION:
        return "The network socket experienced an error. This Spread mailbox will no longer "
               "work until the connection is disconnected and then reconnected";
    default: return "unrecognized error";
    }
}

void SP_error(int error)
{
    printf("SP_error: (%d) %s\n", error, SPX_error_text(error));
}
