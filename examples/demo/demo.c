/* reqsign demo: keygen -> sign -> verify -> replay rejected -> tampered body rejected.
 * Everything below is the public API a client (signer.h) and a server
 * (verifier.h, nonce.h) use. Run it with ./dev.sh demo. */
#include <reqsign/signer.h>
#include <reqsign/verifier.h>

#include <stdio.h>
#include <string.h>

static void show(const char *step, enum reqsign_status st, const struct reqsign_error *err)
{
    char json[512];
    if (st == REQSIGN_OK) {
        printf("   -> ok\n");
        return;
    }
    if (reqsign_error_json(err, 0, json, sizeof(json), NULL) != REQSIGN_OK)
        json[0] = '\0';
    printf("   -> rejected: HTTP %d %s\n      %s\n", reqsign_http_status(st), reqsign_errname(st),
           json);
    (void)step;
}

/* The request as the server receives it. */
static enum reqsign_status receive(const struct reqsign_verifier *v,
                                   const struct reqsign_signed *sig, const char *body,
                                   struct reqsign_error *err)
{
    char len[32];
    snprintf(len, sizeof(len), "%zu", strlen(body));
    struct reqsign_header h[] = {
        {{"Host", 4}, {"api.example.com", 15}},
        {{"Content-Type", 12}, {"application/json", 16}},
        {{"Content-Length", 14}, {len, strlen(len)}},
        {{"Content-Digest", 14}, sig->headers[0].value},
        {{"Signature-Input", 15}, sig->headers[1].value},
        {{"Signature", 9}, sig->headers[2].value},
    };
    struct reqsign_request req = {
        .method = {"POST", 4},
        .scheme = {"https", 5},
        .authority = {"api.example.com", 15},
        .target = {"/v1/payments?currency=EUR", 25},
        .headers = h,
        .n_headers = sizeof(h) / sizeof(h[0]),
    };
    struct reqsign_verification vs;
    reqsign_verification_init(&vs);
    reqsign_error_clear(err);
    /* two-phase: headers first (before reading the body), then the body */
    enum reqsign_status st = reqsign_verifier_verify_headers(v, &req, &vs, err);
    if (st == REQSIGN_OK)
        st = reqsign_verification_body(&vs, body, strlen(body), err);
    if (st == REQSIGN_OK)
        st = reqsign_verification_finish(&vs, err);
    if (st == REQSIGN_OK)
        printf("   verified: keyid %s, created %lld\n", vs.keyid, (long long)vs.created);
    reqsign_verification_cleanup(&vs);
    return st;
}

int main(void)
{
    struct reqsign_error err;
    struct reqsign_key *key = NULL;
    char pem[256];
    size_t n;
    int rc = 1;

    reqsign_error_clear(&err);
    printf("1. keygen: a fresh Ed25519 key; the server stores only the public half\n");
    if ((key = reqsign_key_generate(&err)) == NULL ||
        reqsign_key_public_pem(key, pem, sizeof(pem), &n) != REQSIGN_OK) {
        fprintf(stderr, "keygen failed: %s\n", err.message);
        return 1;
    }
    struct reqsign_static_key server_key = {NULL, {0}, "payments:write"};
    reqsign_key_public_raw(key, server_key.public_key);
    struct reqsign_signer_opts so = {.key = key};
    struct reqsign_signer *signer = reqsign_signer_new(&so, &err);
    reqsign_key_free(key); /* the signer keeps its own copy */
    if (signer == NULL) {
        fprintf(stderr, "signer: %s\n", err.message);
        return 1;
    }
    printf("%s   keyid (RFC 7638 thumbprint): %s\n", pem, reqsign_signer_keyid(signer));
    server_key.keyid = reqsign_signer_keyid(signer);

    struct reqsign_nonce_store *nonces = reqsign_nonce_store_memory_new(NULL, NULL);
    struct reqsign_verifier_opts vo = {.lookup = reqsign_static_key_lookup,
                                       .lookup_ctx = &server_key,
                                       .nonces = nonces,
                                       /* who we are: a request signed for another
                                        * service is refused */
                                       .public_authority = "api.example.com"};
    struct reqsign_verifier *verifier = nonces ? reqsign_verifier_new(&vo, &err) : NULL;
    if (verifier == NULL) {
        fprintf(stderr, "verifier: %s\n", err.message);
        goto out;
    }

    const char *body = "{\"amount\": 100}";
    printf("\n2. sign: POST https://api.example.com/v1/payments?currency=EUR %s\n", body);
    char base[1024];
    struct reqsign_signed sig = {.base_buf = base, .base_cap = sizeof(base)};
    struct reqsign_sign_input in = {.method = "POST",
                                    .url = "https://api.example.com/v1/payments?currency=EUR",
                                    .body = body,
                                    .body_len = strlen(body)};
    if (reqsign_signer_sign(signer, &in, &sig, &err) != REQSIGN_OK) {
        fprintf(stderr, "sign: %s\n", err.message);
        goto out;
    }
    printf("   signature base:\n      ");
    for (size_t i = 0; i < sig.base_len; i++)
        fputs(base[i] == '\n' ? "\n      " : (char[2]){base[i], 0}, stdout);
    printf("\n");
    for (size_t i = 0; i < sig.n_headers; i++)
        printf("   %.*s: %.*s\n", (int)sig.headers[i].name.len, sig.headers[i].name.ptr,
               (int)sig.headers[i].value.len, sig.headers[i].value.ptr);

    printf("\n3. verify the request\n");
    enum reqsign_status st = receive(verifier, &sig, body, &err);
    show("verify", st, &err);
    if (st != REQSIGN_OK)
        goto out;

    printf("\n4. send the very same request again (a captured request replayed)\n");
    enum reqsign_status st2 = receive(verifier, &sig, body, &err);
    show("replay", st2, &err);

    printf("\n5. tamper with the body of a freshly signed request\n");
    if (reqsign_signer_sign(signer, &in, &sig, &err) != REQSIGN_OK)
        goto out;
    enum reqsign_status st3 = receive(verifier, &sig, "{\"amount\": 999}", &err);
    show("tamper", st3, &err);

    rc = (st2 == REQSIGN_E_REPLAY && st3 == REQSIGN_E_DIGEST_MISMATCH) ? 0 : 1;
    printf("\n%s\n", rc == 0 ? "demo: all steps behaved as expected" : "demo: UNEXPECTED RESULT");
out:
    reqsign_verifier_free(verifier);
    reqsign_nonce_store_free(nonces);
    reqsign_signer_free(signer);
    return rc;
}
