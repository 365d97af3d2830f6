/* fuzz_sf_list: RFC 8941 list fields, parse + round trip (see fuzz_sf.h). */
#define SF_PARSE reqsign_sf_parse_list
#define SF_WRITE reqsign_sf_write_list
#include "fuzz_sf.h"
