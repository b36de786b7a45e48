/* receive_grow.c -- the bindings' growing receive loop (spx.h,
 * SPX_receive_grow): one loop for both backends, over whichever library
 * runs. */
#include "spx.h"

#include <stdlib.h>

int spx_recv_buffers_init(spx_recv_buffers *b)
{
    b->data = malloc(SPX_RECV_FIRST_DATA);
    b->groups = malloc((size_t)SPX_RECV_FIRST_GROUPS * MAX_GROUP_NAME);
    b->data_size = SPX_RECV_FIRST_DATA;
    b->groups_size = SPX_RECV_FIRST_GROUPS;
    if (!b->data || !b->groups) {
        spx_recv_buffers_free(b);
        return -1;
    }
    return 0;
}

void spx_recv_buffers_free(spx_recv_buffers *b)
{
    free(b->data);
    free(b->groups);
    b->data = NULL;
    b->groups = NULL;
    b->data_size = b->groups_size = 0;
}

int spx_recv_buffers_grow(spx_recv_buffers *b, int num_groups, int endian)
{
    /* sp.h: the sizes needed, negated; a size not reported is 0 or more. */
    int need_groups = num_groups < 0 ? -num_groups : 0;
    int need_bytes = endian < 0 ? -endian : 0;
    int grew = 0;
    if (need_groups > b->groups_size) {
        void *p = realloc(b->groups, (size_t)need_groups * MAX_GROUP_NAME);
        if (!p)
            return -1;
        b->groups = p;
        b->groups_size = need_groups;
        grew = 1;
    }
    if (need_bytes > b->data_size) {
        void *p = realloc(b->data, (size_t)need_bytes);
        if (!p)
            return -1;
        b->data = p;
        b->data_size = need_bytes;
        grew = 1;
    }
    return grew;
}

int SPX_receive_grow(spr_receive_fn receive, mailbox mbox, spx_recv_buffers *b,
                     service *service_type, char sender[MAX_GROUP_NAME], int *num_groups,
                     int16 *mess_type, int *endian)
{
    for (;;) {
        *service_type = 0;
        int n = receive(mbox, service_type, sender, b->groups_size, num_groups, b->groups,
                        mess_type, endian, b->data_size, b->data);
        if (n != BUFFER_TOO_SHORT && n != GROUPS_TOO_SHORT)
            return n;
        int g = spx_recv_buffers_grow(b, *num_groups, *endian);
        if (g < 0)
            return SPX_NO_MEMORY;
        if (g == 0)
            return n; /* asks for nothing more than b has: leave it to the caller */
    }
}
