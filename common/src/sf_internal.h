/* reqsign: structured-field internals shared by sf.c and base.c. Not installed. */
#ifndef REQSIGN_SF_INTERNAL_H
#define REQSIGN_SF_INTERNAL_H

#include <stddef.h>

#include <reqsign/error.h>
#include <reqsign/sf.h>

/* The top-level type of a structured field (RFC 8941 section 3); SF_NONE: a
 * field that is not a known structured field (base.c's table). */
enum sf_kind { SF_NONE = 0, SF_DICT, SF_LIST, SF_ITEM };

/**
 * reqsign__sf_parse() - reqsign_sf_parse_dict / _list / _item by @kind
 * (SF_DICT, SF_LIST or SF_ITEM; SF_NONE is REQSIGN_E_INVALID_ARG).
 */
enum reqsign_status reqsign__sf_parse(enum sf_kind kind, const char *in, size_t len,
                                      struct reqsign_sf_parsed *out, struct reqsign_error *err);

#endif
