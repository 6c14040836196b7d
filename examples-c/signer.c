/*
 * signer.c: private_key_jwt with a key the library never sees. The signature is made here,
 * by OpenSSL's libcrypto (a stand-in for an HSM, a cloud KMS or a TPM); the library builds
 * the assertion and asks only for the signature of its signing input.
 *
 *     LWOLF_CLIENT_ID=... LWOLF_PRIVATE_KEY_ID=my-key-1 ./signer key.pem
 *     ./signer --fail     # a signer that refuses: the token request fails, nothing is sent
 *
 * Build: cc signer.c -o signer -llwolf_auth -lcrypto   (Debian: apt-get install libssl-dev)
 * LWOLF_ASSERTION_ALG picks RS256 (the default), RS384 or PS256.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "lwolf_auth.h"

struct vault {
    EVP_PKEY *key; /* NULL: refuse to sign */
    const char *alg;
};

/* The lwolf_sign_fn: may run on any thread, never under a lock of the library. */
static int32_t sign(void *userdata, const uint8_t *input, size_t input_len, uint8_t *sig,
                    size_t sig_cap, size_t *sig_len) {
    struct vault *vault = userdata;
    EVP_MD_CTX *ctx;
    EVP_PKEY_CTX *pctx = NULL;
    const EVP_MD *md = strcmp(vault->alg, "RS384") == 0 ? EVP_sha384() : EVP_sha256();
    size_t len = sig_cap;
    int32_t rc = 2;

    if (vault->key == NULL) return 7; /* the vault said no: the library names 7 */
    ctx = EVP_MD_CTX_new();
    if (ctx == NULL) return 1;
    if (EVP_DigestSignInit(ctx, &pctx, md, NULL, vault->key) == 1 &&
        (strcmp(vault->alg, "PS256") != 0 ||
         (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
          EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32) == 1)) &&
        EVP_DigestSign(ctx, sig, &len, input, input_len) == 1) {
        *sig_len = len;
        rc = 0;
    }
    EVP_MD_CTX_free(ctx);
    return rc;
}

static int fail(const char *what, lwolf_status status) {
    fprintf(stderr, "%s failed: %s: %s\n", what, lwolf_status_name(status),
            lwolf_last_error_message());
    return 1;
}

int main(int argc, char **argv) {
    struct vault vault = {NULL, "RS256"};
    lwolf_config *cfg = NULL;
    lwolf_client *client = NULL;
    lwolf_token_info info;
    lwolf_stats stats;
    lwolf_status st;
    const char *alg = getenv("LWOLF_ASSERTION_ALG");
    int rc = 1;

    if (argc != 2) {
        fprintf(stderr, "usage: %s KEY.pem | --fail\n", argv[0]);
        return 2;
    }
    if (alg != NULL && *alg != '\0') vault.alg = alg;
    if (strcmp(argv[1], "--fail") != 0) {
        FILE *f = fopen(argv[1], "r");
        if (f == NULL) {
            perror(argv[1]);
            return 1;
        }
        vault.key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
        fclose(f);
        if (vault.key == NULL) {
            fprintf(stderr, "%s: not a PEM private key\n", argv[1]);
            return 1;
        }
    }

    st = lwolf_config_from_env(&cfg);
    if (st != LWOLF_OK) return fail("lwolf_config_from_env", st);
    /* The vault must outlive the client: the library calls sign() whenever it needs a token. */
    st = lwolf_config_set_signer(cfg, sign, &vault);
    if (st == LWOLF_OK) st = lwolf_client_new(cfg, &client);
    lwolf_config_free(cfg);
    if (st != LWOLF_OK) {
        rc = fail("lwolf_client_new", st);
        goto out;
    }
    st = lwolf_client_token_info(client, &info);
    if (st != LWOLF_OK) {
        rc = fail("lwolf_client_token_info", st);
        goto out;
    }
    stats.size = sizeof stats;
    st = lwolf_client_stats(client, &stats);
    if (st != LWOLF_OK) {
        rc = fail("lwolf_client_stats", st);
        goto out;
    }
    printf("fingerprint: %s\n", info.fingerprint);
    printf("token_requests: %llu\n", (unsigned long long)stats.token_requests);
    rc = 0;

out:
    lwolf_client_free(client);
    EVP_PKEY_free(vault.key);
    return rc;
}
