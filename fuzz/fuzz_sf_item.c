/* fuzz_sf_item: RFC 8941 item fields, parse + round trip (see fuzz_sf.h). */
#define SF_PARSE reqsign_sf_parse_item
#define SF_WRITE reqsign_sf_write_item
#include "fuzz_sf.h"
