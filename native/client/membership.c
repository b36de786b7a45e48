/* membership.c -- membership body helpers (SPEC.md 6.7) and group ids.
 * Bodies handed to these functions come from SP_receive, which has checked
 * their structure and converted their integers to host order. */
#include "session.h"
#include "spx.h"

#include <stdlib.h>
#include <string.h>

static int32_t body_int(const char *body, size_t off)
{
    return wire_get_i32((const uint8_t *)body + off, wire_host_order());
}

/* The sp.h helpers trust the body (as Spread's library does: it came from
 * SP_receive, which checks it against its type); the SPX_ forms are told the
 * body's length and refuse, with ILLEGAL_MESSAGE, a body that does not hold
 * what they would read. Bindings use those. */
#define TRUSTED ((size_t)-1)

static int memb_info(const char *memb_mess, size_t len, service service_type,
                     membership_info *memb_info)
{
    if (!Is_membership_mess(service_type))
        return ILLEGAL_MESSAGE;
    if (len != TRUSTED &&
        !wire_memb_body_fits((const uint8_t *)memb_mess, len, wire_host_order(), service_type))
        return ILLEGAL_MESSAGE;
    memset(memb_info, 0, sizeof *memb_info);
    if (Is_self_leave(service_type))
        return 1; /* empty body: zero group id, no vs-sets */
    for (int i = 0; i < 3; i++)
        memb_info->gid.id[i] = body_int(memb_mess, WIRE_MEMB_GID_AT + 4 * (size_t)i);
    if (!Is_reg_memb_mess(service_type))
        return 1; /* transitional: the group id only */
    if (service_type & (CAUSED_BY_JOIN | CAUSED_BY_LEAVE | CAUSED_BY_DISCONNECT)) {
        memcpy(memb_info->changed_member, memb_mess + WIRE_MEMB_CHANGED_AT, MAX_GROUP_NAME);
        memb_info->changed_member[MAX_GROUP_NAME - 1] = '\0';
    }
    memb_info->num_vs_sets = (unsigned int)body_int(memb_mess, WIRE_MEMB_NUM_SETS_AT);
    size_t mine = WIRE_MEMB_SETS_AT + (size_t)(unsigned int)body_int(memb_mess, WIRE_MEMB_LOCAL_AT);
    memb_info->my_vs_set.num_members = (unsigned int)body_int(memb_mess, mine);
    memb_info->my_vs_set.members_offset = (unsigned int)(mine + 4);
    return 1;
}

static int vs_sets_info(const char *memb_mess, size_t len, vs_set_info *vs_sets, int num_vs_sets,
                        unsigned int *my_vs_set_index)
{
    if (len != TRUSTED && !wire_memb_body_valid((const uint8_t *)memb_mess, len, wire_host_order()))
        return ILLEGAL_MESSAGE;
    int32_t k = body_int(memb_mess, WIRE_MEMB_NUM_SETS_AT);
    size_t mine = WIRE_MEMB_SETS_AT + (size_t)(unsigned int)body_int(memb_mess, WIRE_MEMB_LOCAL_AT);
    if (k > num_vs_sets)
        return BUFFER_TOO_SHORT;
    size_t pos = WIRE_MEMB_SETS_AT;
    for (int32_t i = 0; i < k; i++) {
        unsigned int n = (unsigned int)body_int(memb_mess, pos);
        if (pos == mine && my_vs_set_index)
            *my_vs_set_index = (unsigned int)i;
        vs_sets[i].num_members = n;
        vs_sets[i].members_offset = (unsigned int)(pos + 4);
        pos += 4 + (size_t)n * MAX_GROUP_NAME;
    }
    return k;
}

static int vs_set_members(const char *memb_mess, size_t len, const vs_set_info *vs_set,
                          char member_names[][MAX_GROUP_NAME], int member_names_count)
{
    if (member_names_count < 0 || vs_set->num_members > (unsigned int)member_names_count)
        return BUFFER_TOO_SHORT;
    size_t names = (size_t)vs_set->num_members * MAX_GROUP_NAME;
    if (len != TRUSTED && (vs_set->members_offset > len || names > len - vs_set->members_offset))
        return ILLEGAL_MESSAGE;
    memcpy(member_names, memb_mess + vs_set->members_offset, names);
    return (int)vs_set->num_members;
}

int SP_get_memb_info(const char *memb_mess, const service service_type,
                     membership_info *memb_info_out)
{
    return memb_info(memb_mess, TRUSTED, service_type, memb_info_out);
}

int SP_get_vs_sets_info(const char *memb_mess, vs_set_info *vs_sets, int num_vs_sets,
                        unsigned int *my_vs_set_index)
{
    return vs_sets_info(memb_mess, TRUSTED, vs_sets, num_vs_sets, my_vs_set_index);
}

int SP_get_vs_set_members(const char *memb_mess, const vs_set_info *vs_set,
                          char member_names[][MAX_GROUP_NAME], int member_names_count)
{
    return vs_set_members(memb_mess, TRUSTED, vs_set, member_names, member_names_count);
}

int SPX_get_memb_info(const char *body, int len, service service_type,
                      membership_info *memb_info_out)
{
    return len < 0 ? ILLEGAL_MESSAGE : memb_info(body, (size_t)len, service_type, memb_info_out);
}

int SPX_get_vs_sets_info(const char *body, int len, vs_set_info *vs_sets, int num_vs_sets,
                         unsigned int *my_vs_set_index)
{
    return len < 0 ? ILLEGAL_MESSAGE
                   : vs_sets_info(body, (size_t)len, vs_sets, num_vs_sets, my_vs_set_index);
}

int SPX_get_vs_set_members(const char *body, int len, const vs_set_info *vs_set,
                           char member_names[][MAX_GROUP_NAME], int member_names_count)
{
    return len < 0 ? ILLEGAL_MESSAGE
                   : vs_set_members(body, (size_t)len, vs_set, member_names, member_names_count);
}

/* The scatter variants work on a flat copy of the scattered body. */
static char *flatten(const scatter *scat)
{
    size_t total = 0;
    for (int i = 0; i < scat->num_elements; i++)
        total += scat->elements[i].len > 0 ? (size_t)scat->elements[i].len : 0;
    char *flat = calloc(1, total + WIRE_MEMB_BODY_SIZE);
    if (!flat)
        return NULL;
    size_t at = 0;
    for (int i = 0; i < scat->num_elements; i++) {
        if (scat->elements[i].len > 0) {
            memcpy(flat + at, scat->elements[i].buf, (size_t)scat->elements[i].len);
            at += (size_t)scat->elements[i].len;
        }
    }
    return flat;
}

int SP_scat_get_memb_info(const scatter *memb_mess_scat, const service service_type,
                          membership_info *memb_info)
{
    char *flat = flatten(memb_mess_scat);
    if (!flat)
        return ILLEGAL_MESSAGE;
    int r = SP_get_memb_info(flat, service_type, memb_info);
    free(flat);
    return r;
}

int SP_scat_get_vs_sets_info(const scatter *memb_mess_scat, vs_set_info *vs_sets, int num_vs_sets,
                             unsigned int *my_vs_set_index)
{
    char *flat = flatten(memb_mess_scat);
    if (!flat)
        return ILLEGAL_MESSAGE;
    int r = SP_get_vs_sets_info(flat, vs_sets, num_vs_sets, my_vs_set_index);
    free(flat);
    return r;
}

int SP_scat_get_vs_set_members(const scatter *memb_mess_scat, const vs_set_info *vs_set,
                               char member_names[][MAX_GROUP_NAME], int member_names_count)
{
    char *flat = flatten(memb_mess_scat);
    if (!flat)
        return ILLEGAL_MESSAGE;
    int r = SP_get_vs_set_members(flat, vs_set, member_names, member_names_count);
    free(flat);
    return r;
}

int SP_equal_group_ids(group_id g1, group_id g2)
{
    return g1.id[0] == g2.id[0] && g1.id[1] == g2.id[1] && g1.id[2] == g2.id[2];
}
