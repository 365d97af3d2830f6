/* fuzz_sf_dict: RFC 8941 dict fields, parse + round trip (see fuzz_sf.h). */
#define SF_PARSE reqsign_sf_parse_dict
#define SF_WRITE reqsign_sf_write_dict
#include "fuzz_sf.h"
