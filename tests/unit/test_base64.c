/* Criterion suite `base64`: strict base64 / base64url (reqsign/base64.h). */
#include <criterion/criterion.h>

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <reqsign/base64.h>

#include "testutil.h"

/* RFC 4648 section 10 test vectors. */
static const struct {
    const char *plain, *b64, *b64url;
} rfc4648[] = {
    {"", "", ""},
    {"f", "Zg==", "Zg"},
    {"fo", "Zm8=", "Zm8"},
    {"foo", "Zm9v", "Zm9v"},
    {"foob", "Zm9vYg==", "Zm9vYg"},
    {"fooba", "Zm9vYmE=", "Zm9vYmE"},
    {"foobar", "Zm9vYmFy", "Zm9vYmFy"},
};

Test(base64, rfc4648_vectors)
{
    for (size_t i = 0; i < sizeof(rfc4648) / sizeof(rfc4648[0]); i++) {
        const char *p = rfc4648[i].plain;
        size_t plen = strlen(p), n = 99;
        char enc[32];
        uint8_t dec[32];

        cr_assert_eq(reqsign_base64_encode((const uint8_t *)p, plen, enc, sizeof(enc), &n),
                     REQSIGN_OK);
        cr_assert_eq(n, strlen(rfc4648[i].b64));
        cr_assert_eq(n, REQSIGN_BASE64_LEN(plen));
        cr_assert_str_eq(enc, rfc4648[i].b64);

        cr_assert_eq(reqsign_base64url_encode((const uint8_t *)p, plen, enc, sizeof(enc), &n),
                     REQSIGN_OK);
        cr_assert_eq(n, REQSIGN_BASE64URL_LEN(plen));
        cr_assert_str_eq(enc, rfc4648[i].b64url);

        const char *b = rfc4648[i].b64;
        cr_assert_eq(reqsign_base64_decode(b, strlen(b), dec, sizeof(dec), &n, NULL), REQSIGN_OK);
        cr_assert_eq(n, plen);
        cr_assert(memcmp(dec, p, plen) == 0);

        b = rfc4648[i].b64url;
        cr_assert_eq(reqsign_base64url_decode(b, strlen(b), dec, sizeof(dec), &n, NULL),
                     REQSIGN_OK);
        cr_assert_eq(n, plen);
        cr_assert(memcmp(dec, p, plen) == 0);
    }
}

Test(base64, alphabets_differ)
{
    const uint8_t in[] = {0xfb, 0xff, 0xbf};
    char enc[16];
    uint8_t dec[8];
    size_t n;

    cr_assert_eq(reqsign_base64_encode(in, 3, enc, sizeof(enc), &n), REQSIGN_OK);
    cr_assert_str_eq(enc, "+/+/");
    cr_assert_eq(reqsign_base64url_encode(in, 3, enc, sizeof(enc), &n), REQSIGN_OK);
    cr_assert_str_eq(enc, "-_-_");
    cr_assert_eq(reqsign_base64_encode(in, 2, enc, sizeof(enc), &n), REQSIGN_OK);
    cr_assert_str_eq(enc, "+/8=");
    cr_assert_eq(reqsign_base64url_encode(in, 2, enc, sizeof(enc), &n), REQSIGN_OK);
    cr_assert_str_eq(enc, "-_8");
    cr_assert_eq(reqsign_base64url_decode("-_-_", 4, dec, sizeof(dec), &n, NULL), REQSIGN_OK);
    cr_assert(n == 3 && memcmp(dec, in, 3) == 0);
    cr_assert_eq(reqsign_base64_decode("+/+/", 4, dec, sizeof(dec), &n, NULL), REQSIGN_OK);
    cr_assert(n == 3 && memcmp(dec, in, 3) == 0);
}

/* Random data of every length 0..300 against OpenSSL's independent encoder. */
Test(base64, random_round_trips)
{
    uint8_t in[301], dec[310];
    char enc[420], ref[420], url[420];
    size_t n, m;

    srand(4648);
    for (size_t len = 0; len <= 300; len++) {
        for (int rep = 0; rep < 4; rep++) {
            for (size_t i = 0; i < len; i++)
                in[i] = (uint8_t)(rand() & 0xff);
            int rl = EVP_EncodeBlock((unsigned char *)ref, in, (int)len);
            cr_assert_eq(reqsign_base64_encode(in, len, enc, sizeof(enc), &n), REQSIGN_OK);
            cr_assert_eq(n, (size_t)rl, "len %zu", len);
            cr_assert_eq(n, REQSIGN_BASE64_LEN(len));
            cr_assert_str_eq(enc, ref, "len %zu", len);

            /* base64url = std with -_ and no padding */
            m = 0;
            for (int i = 0; i < rl; i++) {
                char c = ref[i];
                if (c == '=')
                    break;
                url[m++] = c == '+' ? '-' : c == '/' ? '_' : c;
            }
            url[m] = '\0';
            cr_assert_eq(reqsign_base64url_encode(in, len, enc, sizeof(enc), &n), REQSIGN_OK);
            cr_assert_eq(n, m);
            cr_assert_eq(n, REQSIGN_BASE64URL_LEN(len));
            cr_assert_str_eq(enc, url, "len %zu", len);

            cr_assert_eq(reqsign_base64_decode(ref, (size_t)rl, dec, sizeof(dec), &n, NULL),
                         REQSIGN_OK, "len %zu", len);
            cr_assert_eq(n, len);
            cr_assert(memcmp(dec, in, len) == 0);
            cr_assert_leq(n, REQSIGN_BASE64_DECODED_MAX(rl));
            cr_assert_eq(reqsign_base64url_decode(url, m, dec, sizeof(dec), &n, NULL), REQSIGN_OK);
            cr_assert_eq(n, len);
            cr_assert(memcmp(dec, in, len) == 0);
            cr_assert_leq(n, REQSIGN_BASE64_DECODED_MAX(m));
        }
    }
}

struct bad_case {
    const char *in;
    size_t len; /* 0: strlen */
    int url;
    size_t offset;
};

static const struct bad_case bad_cases[] = {
    /* standard alphabet */
    {"Zg", 0, 0, 2},         /* missing padding */
    {"Zg=", 0, 0, 3},        /* incomplete padding */
    {"Zm8", 0, 0, 3},        /* missing padding */
    {"Zg===", 0, 0, 4},      /* too much padding */
    {"Zm8==", 0, 0, 4},      /* too much padding */
    {"Zm9v=", 0, 0, 4},      /* padding on a full group */
    {"Zm9v====", 0, 0, 4},   /* padding on a full group */
    {"=", 0, 0, 0},          /* padding only */
    {"====", 0, 0, 0},       /* padding only */
    {"Zh==", 0, 0, 1},       /* non-zero pad bits (4 bits) */
    {"Zm9=", 0, 0, 2},       /* non-zero pad bits (2 bits) */
    {"Z=g=", 0, 0, 1},       /* '=' in the middle */
    {"Zg==Zg==", 0, 0, 2},   /* concatenated padded groups */
    {"=Zm9v", 0, 0, 0},      /* '=' at the start */
    {"Z", 0, 0, 0},          /* wrong length: lone char */
    {"Zm9vY", 0, 0, 4},      /* wrong length: 5 chars */
    {"Zm9vY===", 0, 0, 4},   /* wrong length, padded */
    {"Zm9v Zg==", 0, 0, 4},  /* space */
    {" Zm9v", 0, 0, 0},      /* leading space */
    {"Zm9v ", 0, 0, 4},      /* trailing space */
    {"Zm9v\nZg==", 0, 0, 4}, /* line feed */
    {"Zm9v\r\n", 0, 0, 4},   /* CRLF */
    {"Zm9v\t", 0, 0, 4},     /* tab */
    {"Zg= =", 0, 0, 3},      /* space inside padding */
    {"Zm9v-_==", 0, 0, 4},   /* base64url chars in base64 */
    {"Zm9v.A==", 0, 0, 4},   /* stray char */
    {"Zm\x80v", 0, 0, 2},    /* non-ASCII */
    {"Zm9v\0Zg==", 9, 0, 4}, /* embedded NUL */
    {"Zm9vZg==\0", 9, 0, 8}, /* trailing NUL */
    /* base64url */
    {"Zg==", 0, 1, 2},    /* padding not accepted */
    {"Zm8=", 0, 1, 3},    /* padding not accepted */
    {"=", 0, 1, 0},       /* padding not accepted */
    {"Zh", 0, 1, 1},      /* non-zero pad bits */
    {"Zm9", 0, 1, 2},     /* non-zero pad bits */
    {"Z", 0, 1, 0},       /* wrong length */
    {"Zm9vY", 0, 1, 4},   /* wrong length */
    {"+/8", 0, 1, 0},     /* standard alphabet chars */
    {"Zm/8", 0, 1, 2},    /* standard alphabet chars */
    {"Zm9v Zg", 0, 1, 4}, /* space */
    {"Zm9v\n", 0, 1, 4},  /* line feed */
    {"Z=g", 0, 1, 1},     /* '=' in the middle */
};

Test(base64, rejections_with_offset)
{
    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        const struct bad_case *c = &bad_cases[i];
        size_t len = c->len ? c->len : strlen(c->in), n = 77;
        uint8_t out[64];
        struct reqsign_error err;
        enum reqsign_status st;

        memset(out, 0xaa, sizeof(out));
        reqsign_error_clear(&err);
        st = c->url ? reqsign_base64url_decode(c->in, len, out, sizeof(out), &n, &err)
                    : reqsign_base64_decode(c->in, len, out, sizeof(out), &n, &err);
        cr_assert_eq(st, REQSIGN_E_BASE64, "case %zu (%s): status %d", i, c->in, (int)st);
        cr_assert_eq(err.code, REQSIGN_E_BASE64, "case %zu", i);
        cr_assert_eq(err.offset, c->offset, "case %zu (%s): offset %zu, want %zu", i, c->in,
                     err.offset, c->offset);
        cr_assert(err.message[0] != '\0');
        cr_assert_eq(out[0], 0xaa, "case %zu: output written on failure", i);
        /* NULL err is fine */
        st = c->url ? reqsign_base64url_decode(c->in, len, out, sizeof(out), &n, NULL)
                    : reqsign_base64_decode(c->in, len, out, sizeof(out), &n, NULL);
        cr_assert_eq(st, REQSIGN_E_BASE64);
    }
}

Test(base64, every_byte_outside_alphabet)
{
    for (int c = 0; c < 256; c++) {
        int std_ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                     c == '+' || c == '/';
        int url_ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                     c == '-' || c == '_';
        char in[4] = {'Q', 'Q', (char)c, 'A'};
        uint8_t out[8];
        size_t n;
        struct reqsign_error err;

        reqsign_error_clear(&err);
        enum reqsign_status st = reqsign_base64_decode(in, 4, out, sizeof(out), &n, &err);
        cr_assert_eq(st, std_ok ? REQSIGN_OK : REQSIGN_E_BASE64, "byte %d", c);
        if (!std_ok)
            cr_assert_eq(err.offset, 2, "byte %d", c);
        reqsign_error_clear(&err);
        st = reqsign_base64url_decode(in, 4, out, sizeof(out), &n, &err);
        cr_assert_eq(st, url_ok ? REQSIGN_OK : REQSIGN_E_BASE64, "byte %d", c);
        if (!url_ok)
            cr_assert_eq(err.offset, 2, "byte %d", c);
    }
}

/* The first error wins only within one call (issue 11): each call resets
 * @err, so a reused struct reports the latest call's error, not an earlier one. */
Test(base64, each_call_reports_its_own_error)
{
    struct reqsign_error err;
    uint8_t out[8];
    size_t n;

    cr_assert_eq(reqsign_base64_decode("Z", 1, out, sizeof(out), &n, &err), REQSIGN_E_BASE64);
    cr_assert_eq(err.offset, 0);
    cr_assert_eq(reqsign_base64_decode("Zm9v Zg==", 9, out, sizeof(out), &n, &err),
                 REQSIGN_E_BASE64);
    cr_assert_eq(err.offset, 4);
}

Test(base64, decode_buffer_too_small)
{
    uint8_t out[8];
    size_t n = 0;
    struct reqsign_error err;

    memset(out, 0xaa, sizeof(out));
    reqsign_error_clear(&err);
    cr_assert_eq(reqsign_base64_decode("Zm9vYmFy", 8, out, 5, &n, &err),
                 REQSIGN_E_BUFFER_TOO_SMALL);
    cr_assert_eq(n, 6);
    cr_assert_eq(err.code, REQSIGN_E_BUFFER_TOO_SMALL);
    cr_assert_eq(out[0], 0xaa);
    cr_assert_eq(reqsign_base64_decode("Zm9vYmFy", 8, out, 6, &n, NULL), REQSIGN_OK);
    cr_assert_eq(n, 6);
    cr_assert_eq(reqsign_base64url_decode("Zm9vYmE", 7, out, 4, &n, NULL),
                 REQSIGN_E_BUFFER_TOO_SMALL);
    cr_assert_eq(n, 5);
    cr_assert_eq(reqsign_base64url_decode("Zm9vYmE", 7, out, 5, &n, NULL), REQSIGN_OK);
    cr_assert(n == 5 && memcmp(out, "fooba", 5) == 0);
    /* empty input needs no room at all */
    cr_assert_eq(reqsign_base64_decode("", 0, NULL, 0, &n, NULL), REQSIGN_OK);
    cr_assert_eq(n, 0);
    cr_assert_eq(reqsign_base64url_decode(NULL, 0, NULL, 0, &n, NULL), REQSIGN_OK);
    cr_assert_eq(n, 0);
    /* malformed input reports E_BASE64 even when the buffer is also too small */
    cr_assert_eq(reqsign_base64_decode("Zm9 YmFy", 8, out, 1, &n, NULL), REQSIGN_E_BASE64);
}

Test(base64, encode_buffer_too_small)
{
    char out[16];
    size_t n = 0;

    /* text 8 chars + NUL = 9 */
    memset(out, 'x', sizeof(out));
    cr_assert_eq(reqsign_base64_encode((const uint8_t *)"foobar", 6, out, 8, &n),
                 REQSIGN_E_BUFFER_TOO_SMALL);
    cr_assert_eq(n, 9); /* capacity needed, NUL included */
    cr_assert_eq(reqsign_base64_encode((const uint8_t *)"foobar", 6, out, 9, &n), REQSIGN_OK);
    cr_assert_eq(n, 8);
    cr_assert_str_eq(out, "Zm9vYmFy");
    cr_assert_eq(out[9], 'x');

    cr_assert_eq(reqsign_base64url_encode((const uint8_t *)"f", 1, out, 2, &n),
                 REQSIGN_E_BUFFER_TOO_SMALL);
    cr_assert_eq(n, 3);
    cr_assert_eq(reqsign_base64url_encode((const uint8_t *)"f", 1, out, 3, &n), REQSIGN_OK);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(out, "Zg");

    cr_assert_eq(reqsign_base64_encode(NULL, 0, out, 0, &n), REQSIGN_E_BUFFER_TOO_SMALL);
    cr_assert_eq(n, 1);
    cr_assert_eq(reqsign_base64_encode(NULL, 0, out, 1, &n), REQSIGN_OK);
    cr_assert_eq(n, 0);
    cr_assert_str_eq(out, "");
}

/* Decoders never read past len: inputs end right before a PROT_NONE page. */
Test(base64, no_read_past_len)
{
    long pg = sysconf(_SC_PAGESIZE);
    char *map =
        mmap(NULL, (size_t)pg * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert(map != MAP_FAILED);
    cr_assert_eq(mprotect(map + pg, (size_t)pg, PROT_NONE), 0);
    static const char *inputs[] = {"",      "Z",      "Zg",    "Zg=", "Zg==", "Zm9v",
                                   "Zm9vY", "Zm9vYg", "Zm9v=", "Zm9", "Zm8=", "Zh"};
    uint8_t out[16];
    size_t n;

    for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
        size_t len = strlen(inputs[i]);
        char *p = map + pg - len;
        memcpy(p, inputs[i], len);
        enum reqsign_status a = reqsign_base64_decode(p, len, out, sizeof(out), &n, NULL);
        enum reqsign_status b = reqsign_base64url_decode(p, len, out, sizeof(out), &n, NULL);
        /* same answer as from an ordinary buffer */
        cr_assert_eq(a, reqsign_base64_decode(inputs[i], len, out, sizeof(out), &n, NULL));
        cr_assert_eq(b, reqsign_base64url_decode(inputs[i], len, out, sizeof(out), &n, NULL));
    }
    munmap(map, (size_t)pg * 2);
}
