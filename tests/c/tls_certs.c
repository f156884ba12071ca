/* tls_certs.c — a test CA and its certificates, made with the OpenSSL API. */
#define _GNU_SOURCE /* mkdtemp */
#include "tls_certs.h"

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* One key and certificate being made. */
typedef struct issued {
    EVP_PKEY *key;
    X509 *cert;
} issued;

static void issued_free(issued *i)
{
    EVP_PKEY_free(i->key);
    X509_free(i->cert);
    i->key = NULL;
    i->cert = NULL;
}

static EVP_PKEY *ec_p256_key(void)
{
    EVP_PKEY *key = NULL;
    EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_id(EVP_PKEY_EC, NULL);
    if (pctx && EVP_PKEY_keygen_init(pctx) == 1 &&
        EVP_PKEY_CTX_set_ec_paramgen_curve_nid(pctx, NID_X9_62_prime256v1) == 1 &&
        EVP_PKEY_keygen(pctx, &key) == 1) {
        EVP_PKEY_CTX_free(pctx);
        return key;
    }
    EVP_PKEY_CTX_free(pctx);
    EVP_PKEY_free(key);
    return NULL;
}

static bool add_ext(X509 *cert, X509V3_CTX *ctx, int nid, const char *value)
{
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
    if (!ext)
        return false;
    bool ok = X509_add_ext(cert, ext, -1) == 1;
    X509_EXTENSION_free(ext);
    return ok;
}

/* A random positive 63-bit serial number. */
static bool set_serial(X509 *cert)
{
    unsigned char bytes[8];
    if (RAND_bytes(bytes, sizeof bytes) != 1)
        return false;
    bytes[0] &= 0x7f;
    BIGNUM *bn = BN_bin2bn(bytes, sizeof bytes, NULL);
    bool ok = bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) != NULL;
    BN_free(bn);
    return ok;
}

/*
 * Make a certificate for a new key with subject CN=cn, signed by `ca` (NULL:
 * self-signed, a CA). `san` and `eku` may be NULL.
 */
static bool issue(issued *out, const issued *ca, const char *cn,
                  const char *san, const char *eku)
{
    out->key = ec_p256_key();
    out->cert = X509_new();
    X509 *cert = out->cert;
    if (!out->key || !cert)
        return false;
    X509_NAME *name = X509_get_subject_name(cert);
    if (X509_set_version(cert, 2) != 1 || !set_serial(cert) ||
        !X509_gmtime_adj(X509_getm_notBefore(cert), -3600) ||
        !X509_gmtime_adj(X509_getm_notAfter(cert), 2 * 24 * 3600) ||
        X509_set_pubkey(cert, out->key) != 1 ||
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                   (const unsigned char *)cn, -1, -1, 0) != 1 ||
        X509_set_issuer_name(cert, ca ? X509_get_subject_name(ca->cert)
                                      : name) != 1)
        return false;

    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, ca ? ca->cert : cert, cert, NULL, NULL, 0);
    bool ok = add_ext(cert, &ctx, NID_subject_key_identifier, "hash");
    if (ca) {
        ok = ok &&
             add_ext(cert, &ctx, NID_authority_key_identifier, "keyid:always") &&
             add_ext(cert, &ctx, NID_basic_constraints, "critical,CA:FALSE") &&
             add_ext(cert, &ctx, NID_key_usage,
                     "critical,digitalSignature,keyEncipherment");
    } else {
        ok = ok &&
             add_ext(cert, &ctx, NID_basic_constraints, "critical,CA:TRUE") &&
             add_ext(cert, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign");
    }
    if (ok && san)
        ok = add_ext(cert, &ctx, NID_subject_alt_name, san);
    if (ok && eku)
        ok = add_ext(cert, &ctx, NID_ext_key_usage, eku);
    return ok && X509_sign(cert, ca ? ca->key : out->key, EVP_sha256()) > 0;
}

static bool set_path(char *buf, const char *dir, const char *file)
{
    int n = snprintf(buf, TLS_CERTS_PATH, "%s/%s", dir, file);
    return n > 0 && n < TLS_CERTS_PATH;
}

static bool write_cert(const char *path, X509 *cert)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return false;
    bool ok = PEM_write_X509(f, cert) == 1;
    return fclose(f) == 0 && ok;
}

static bool write_key(const char *path, EVP_PKEY *key)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return false;
    fchmod(fileno(f), 0600);
    bool ok = PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) == 1;
    return fclose(f) == 0 && ok;
}

static bool write_pair(const char *cert_path, const char *key_path,
                       const issued *i)
{
    return write_cert(cert_path, i->cert) && write_key(key_path, i->key);
}

void tls_certs_remove(const tls_certs *c)
{
    const char *files[] = {c->ca,          c->server_cert, c->server_key,
                           c->wrong_cert,  c->wrong_key,   c->client_cert,
                           c->client_key,  c->other_ca};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++)
        if (files[i][0])
            unlink(files[i]);
    if (c->dir[0])
        rmdir(c->dir);
}

int tls_certs_make(tls_certs *c, char *err, size_t err_len)
{
    memset(c, 0, sizeof *c);
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !*tmp)
        tmp = "/tmp";
    if (!set_path(c->dir, tmp, "tapio-tls-XXXXXX") || !mkdtemp(c->dir)) {
        snprintf(err, err_len, "cannot make a directory in %s", tmp);
        c->dir[0] = '\0';
        return -1;
    }
    bool ok = set_path(c->ca, c->dir, "ca.pem") &&
              set_path(c->server_cert, c->dir, "server.pem") &&
              set_path(c->server_key, c->dir, "server.key") &&
              set_path(c->wrong_cert, c->dir, "wrong.pem") &&
              set_path(c->wrong_key, c->dir, "wrong.key") &&
              set_path(c->client_cert, c->dir, "client.pem") &&
              set_path(c->client_key, c->dir, "client.key") &&
              set_path(c->other_ca, c->dir, "other_ca.pem");

    issued ca = {0}, server = {0}, wrong = {0}, client = {0}, other = {0};
    ok = ok && issue(&ca, NULL, "tapio test CA", NULL, NULL) &&
         issue(&server, &ca, TLS_CERTS_SERVER_CN,
               "DNS:localhost,IP:127.0.0.1,IP:::1", "serverAuth") &&
         issue(&wrong, &ca, "wrong.example", "DNS:wrong.example",
               "serverAuth") &&
         issue(&client, &ca, TLS_CERTS_CLIENT_CN, NULL, "clientAuth") &&
         issue(&other, NULL, "tapio other CA", NULL, NULL);
    if (!ok) {
        unsigned long e = ERR_get_error();
        snprintf(err, err_len, "making the certificates failed: %s",
                 e ? ERR_error_string(e, NULL) : "(no OpenSSL error)");
    } else {
        ok = write_cert(c->ca, ca.cert) &&
             write_pair(c->server_cert, c->server_key, &server) &&
             write_pair(c->wrong_cert, c->wrong_key, &wrong) &&
             write_pair(c->client_cert, c->client_key, &client) &&
             write_cert(c->other_ca, other.cert);
        if (!ok)
            snprintf(err, err_len, "cannot write the PEM files in %s", c->dir);
    }
    issued_free(&ca);
    issued_free(&server);
    issued_free(&wrong);
    issued_free(&client);
    issued_free(&other);
    ERR_clear_error();
    if (!ok) {
        tls_certs_remove(c);
        memset(c, 0, sizeof *c);
        return -1;
    }
    return 0;
}
