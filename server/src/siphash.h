/* reqsign (private): SipHash-2-4 with 64- or 128-bit output.
 *
 * The algorithm of J.-P. Aumasson and D. J. Bernstein, "SipHash: a fast
 * short-input PRF" (2012), with the 128-bit output mode of their reference
 * implementation (v1 ^= 0xee at start, v2 ^= 0xee before finalisation, a
 * second finalisation after v1 ^= 0xdd). Checked against the published
 * vectors (vectors_sip64, vectors_sip128) in tests/unit/test_nonce.c.
 *
 * Header-only and static, so the unit test runs exactly the code the nonce
 * store runs without the library exporting it.
 */
#ifndef REQSIGN_SIPHASH_H
#define REQSIGN_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

#define REQSIGN__SIPHASH_KEY_LEN 16

static inline uint64_t reqsign__sip_load64_le(const uint8_t *p)
{
    return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24 |
           (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 | (uint64_t)p[6] << 48 |
           (uint64_t)p[7] << 56;
}

static inline uint64_t reqsign__sip_rotl(uint64_t x, unsigned b)
{
    return (x << b) | (x >> (64 - b));
}

#define REQSIGN__SIPROUND(v0, v1, v2, v3)                                                          \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = reqsign__sip_rotl(v1, 13);                                                            \
        v1 ^= v0;                                                                                  \
        v0 = reqsign__sip_rotl(v0, 32);                                                            \
        v2 += v3;                                                                                  \
        v3 = reqsign__sip_rotl(v3, 16);                                                            \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = reqsign__sip_rotl(v3, 21);                                                            \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = reqsign__sip_rotl(v1, 17);                                                            \
        v1 ^= v2;                                                                                  \
        v2 = reqsign__sip_rotl(v2, 32);                                                            \
    } while (0)

/* SipHash-2-4 of @in[0..@len) under @key. @wide: 0 for the 64-bit output
 * (out[0] only), 1 for the 128-bit output (out[0] then out[1]; as bytes, each
 * word little-endian, out[0] first, which is the reference byte order). */
static inline void reqsign__siphash24(const uint8_t key[REQSIGN__SIPHASH_KEY_LEN],
                                      const uint8_t *in, size_t len, int wide, uint64_t out[2])
{
    const uint64_t k0 = reqsign__sip_load64_le(key);
    const uint64_t k1 = reqsign__sip_load64_le(key + 8);
    uint64_t v0 = UINT64_C(0x736f6d6570736575) ^ k0;
    uint64_t v1 = UINT64_C(0x646f72616e646f6d) ^ k1;
    uint64_t v2 = UINT64_C(0x6c7967656e657261) ^ k0;
    uint64_t v3 = UINT64_C(0x7465646279746573) ^ k1;
    const uint8_t *end = in + (len & ~(size_t)7);
    uint64_t m, last = (uint64_t)len << 56;

    if (wide)
        v1 ^= 0xee;
    for (; in != end; in += 8) {
        m = reqsign__sip_load64_le(in);
        v3 ^= m;
        REQSIGN__SIPROUND(v0, v1, v2, v3);
        REQSIGN__SIPROUND(v0, v1, v2, v3);
        v0 ^= m;
    }
    for (size_t i = 0; i < (len & 7); i++)
        last |= (uint64_t)in[i] << (8 * i);
    v3 ^= last;
    REQSIGN__SIPROUND(v0, v1, v2, v3);
    REQSIGN__SIPROUND(v0, v1, v2, v3);
    v0 ^= last;

    v2 ^= wide ? 0xee : 0xff;
    for (int i = 0; i < 4; i++)
        REQSIGN__SIPROUND(v0, v1, v2, v3);
    out[0] = v0 ^ v1 ^ v2 ^ v3;
    if (!wide)
        return;
    v1 ^= 0xdd;
    for (int i = 0; i < 4; i++)
        REQSIGN__SIPROUND(v0, v1, v2, v3);
    out[1] = v0 ^ v1 ^ v2 ^ v3;
}

#endif
