/* reqsign: wire limits shared by the signer, the verifier and the stores.
 * Every limit is documented in spec/PROTOCOL.md ("Limits").
 */
#ifndef REQSIGN_LIMITS_H
#define REQSIGN_LIMITS_H

#define REQSIGN_NONCE_MIN_LEN 8    /* characters of a nonce parameter, at least */
#define REQSIGN_NONCE_MAX_LEN 128  /* characters of a nonce parameter, at most */
#define REQSIGN_KEYID_MAX_LEN 256  /* characters of a keyid parameter, at most */
#define REQSIGN_TAG_MAX_LEN 256    /* characters of a tag parameter, at most */
#define REQSIGN_SCOPES_MAX 512     /* bytes of a key's scopes, space-separated, with NUL */

#endif
