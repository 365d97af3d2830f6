/* reqsign: RFC 8941 structured field values, zero-copy.
 *
 * The parser never allocates and never copies: results are spans into the
 * caller's input, stored in caller-owned arrays (capacity in, count out).
 * Strings keep their escapes (`escaped` = 1) and byte sequences keep their
 * base64 text (`wire` = 1) until the caller asks for the decoded bytes.
 * A parse failure fails the whole field (RFC 8941 4.2) with REQSIGN_E_SF_PARSE
 * and the byte offset of the offending character, or REQSIGN_E_LIMIT when the
 * caller's arrays are too small.
 *
 * Thread safety: every function is safe on distinct arguments; none has state.
 */
#ifndef REQSIGN_SF_H
#define REQSIGN_SF_H

#include <reqsign/defs.h>
#include <reqsign/error.h>
#include <reqsign/limits.h>

#ifdef __cplusplus
extern "C" {
#endif

enum reqsign_sf_type {
    REQSIGN_SF_INTEGER = 1,
    REQSIGN_SF_DECIMAL,
    REQSIGN_SF_STRING,
    REQSIGN_SF_TOKEN,
    REQSIGN_SF_BINARY,
    REQSIGN_SF_BOOLEAN,
};

/* A bare item.
 * INTEGER: `num`. DECIMAL: `num` = value x 1000 (exact: at most 3 fraction digits).
 * BOOLEAN: `num` 0 or 1. STRING: `str` holds the characters between the quotes;
 * `escaped` = 1 means `\"` and `\\` escapes are still in it (as parsed),
 * 0 means plain content (as built by a caller; the serializer escapes it).
 * TOKEN: `str`. BINARY: `wire` = 1: `str` is the base64 text between the colons
 * (as parsed); 0: `str` holds the raw bytes (the serializer encodes them). */
struct reqsign_sf_bare {
    enum reqsign_sf_type type;
    int64_t num;
    struct reqsign_span str;
    uint8_t escaped;
    uint8_t wire;
};

struct reqsign_sf_param {
    struct reqsign_span key;
    struct reqsign_sf_bare value;
};

/* An item of an inner list: a bare item and its parameters
 * (params[params_off .. params_off + params_len) of the parse result). */
struct reqsign_sf_item {
    struct reqsign_sf_bare value;
    uint32_t params_off, params_len;
};

/* A top-level member: a list member, a dictionary member (with `key`) or the
 * single item of an Item field. Either an item (`is_inner_list` = 0, `value`)
 * or an inner list (items[items_off .. items_off + items_len)). The params are
 * those of the item or of the inner list. Dictionary members whose value is
 * Boolean true without `=` are returned as BOOLEAN 1. */
struct reqsign_sf_member {
    struct reqsign_span key;
    uint8_t is_inner_list;
    struct reqsign_sf_bare value;
    uint32_t items_off, items_len;
    uint32_t params_off, params_len;
};

/* Caller-owned storage for one parse. Set the three arrays and capacities;
 * the parser sets the counts. Entries of a dictionary member that was
 * overwritten by a later duplicate key may stay in items/params unreferenced. */
struct reqsign_sf_parsed {
    struct reqsign_sf_member *members;
    size_t members_cap, n_members;
    struct reqsign_sf_item *items;
    size_t items_cap, n_items;
    struct reqsign_sf_param *params;
    size_t params_cap, n_params;
};

/**
 * reqsign_sf_parse_dict() / _list() / _item() - parse a whole field value.
 * @in, @len: the field value (all lines combined with ", "); need not be NUL-terminated.
 * @out: caller storage; counts are reset on entry.
 * @err: on failure, code, offset into @in and message; may be NULL.
 * Return: REQSIGN_OK, REQSIGN_E_SF_PARSE, REQSIGN_E_LIMIT.
 * Dictionary: duplicate keys keep the first position and take the last value.
 * Item: exactly one member with an empty key.
 * Thread safety: safe on distinct @out. Allocates: nothing.
 */
REQSIGN_API REQSIGN_NODISCARD enum reqsign_status
reqsign_sf_parse_dict(const char *in, size_t len, struct reqsign_sf_parsed *out,
                      struct reqsign_error *err);
REQSIGN_API REQSIGN_NODISCARD enum reqsign_status
reqsign_sf_parse_list(const char *in, size_t len, struct reqsign_sf_parsed *out,
                      struct reqsign_error *err);
REQSIGN_API REQSIGN_NODISCARD enum reqsign_status
reqsign_sf_parse_item(const char *in, size_t len, struct reqsign_sf_parsed *out,
                      struct reqsign_error *err);

/**
 * reqsign_sf_dict_find() - find the member with key @key in a parsed dictionary.
 * Return: true with *@idx its index into p->members, false (*@idx untouched)
 * if there is none.
 * Thread safety: thread-safe. Allocates: nothing.
 */
REQSIGN_API bool reqsign_sf_dict_find(const struct reqsign_sf_parsed *p, const char *key,
                                      size_t key_len, size_t *idx);

/**
 * reqsign_sf_string_value() - the content of a STRING with escapes undone.
 * Writes at most @cap bytes to @out and sets *@out_len.
 * Return: REQSIGN_OK or REQSIGN_E_BUFFER_TOO_SMALL (*@out_len = needed).
 */
REQSIGN_API REQSIGN_NODISCARD enum reqsign_status
reqsign_sf_string_value(const struct reqsign_sf_bare *b, char *out, size_t cap, size_t *out_len);

/**
 * reqsign_sf_binary_value() - the decoded bytes of a BINARY item.
 * Return: REQSIGN_OK, REQSIGN_E_BUFFER_TOO_SMALL (*@out_len = needed),
 * REQSIGN_E_BASE64.
 */
REQSIGN_API REQSIGN_NODISCARD enum reqsign_status
reqsign_sf_binary_value(const struct reqsign_sf_bare *b, uint8_t *out, size_t cap, size_t *out_len);

/* ---- serialization (RFC 8941 4.1, strict/canonical form) ----
 * Each writer appends to out[*pos ..] without exceeding @cap and advances
 * *@pos. Return REQSIGN_OK, REQSIGN_E_BUFFER_TOO_SMALL, or
 * REQSIGN_E_SF_SERIALIZE for a value that has no serialization (integer out
 * of range, bad key, string with a byte outside %x20-7E, bad token). Output
 * is not NUL-terminated.
 */
REQSIGN_API REQSIGN_NODISCARD enum reqsign_status
reqsign_sf_write_bare(const struct reqsign_sf_bare *b, char *out, size_t cap, size_t *pos);
REQSIGN_API REQSIGN_NODISCARD enum reqsign_status
reqsign_sf_write_params(const struct reqsign_sf_param *params, size_t n, char *out, size_t cap,
                        size_t *pos);
/* An inner list: `(` items `)` params. @params/@n_params are the inner
 * list's own parameters; the items must have no parameters (params_len 0,
 * else REQSIGN_E_INVALID_ARG): use reqsign_sf_write_inner_list_ex() for items
 * with parameters. */
REQSIGN_API REQSIGN_NODISCARD enum reqsign_status
reqsign_sf_write_inner_list(const struct reqsign_sf_item *items, size_t n_items,
                            const struct reqsign_sf_param *params, size_t n_params, char *out,
                            size_t cap, size_t *pos);
/* An inner list whose items have parameters: item i's parameters are
 * @item_params[items[i].params_off .. + params_len) (offsets are checked
 * against @n_item_params: REQSIGN_E_INVALID_ARG); @params/@n_params are the
 * inner list's own parameters. */
REQSIGN_API REQSIGN_NODISCARD enum reqsign_status
reqsign_sf_write_inner_list_ex(const struct reqsign_sf_item *items, size_t n_items,
                               const struct reqsign_sf_param *item_params, size_t n_item_params,
                               const struct reqsign_sf_param *params, size_t n_params, char *out,
                               size_t cap, size_t *pos);
/* The value of member @m of @p (item with params, or inner list with params),
 * without its key: what RFC 9421 uses for @signature-params and `;key=`. */
REQSIGN_API REQSIGN_NODISCARD enum reqsign_status
reqsign_sf_write_member_value(const struct reqsign_sf_parsed *p, const struct reqsign_sf_member *m,
                              char *out, size_t cap, size_t *pos);
/* Whole fields from a parse result (members joined with ", "). */
REQSIGN_API REQSIGN_NODISCARD enum reqsign_status
reqsign_sf_write_dict(const struct reqsign_sf_parsed *p, char *out, size_t cap, size_t *pos);
REQSIGN_API REQSIGN_NODISCARD enum reqsign_status
reqsign_sf_write_list(const struct reqsign_sf_parsed *p, char *out, size_t cap, size_t *pos);
REQSIGN_API REQSIGN_NODISCARD enum reqsign_status
reqsign_sf_write_item(const struct reqsign_sf_parsed *p, char *out, size_t cap, size_t *pos);

#ifdef __cplusplus
}
#endif
#endif
