/*
 * tls_certs.h — certificates for the TLS tests, made at test time.
 *
 * tls_certs_make() generates, in memory with the OpenSSL API, EC P-256 keys
 * and X.509 v3 certificates, and writes them as PEM files into a new
 * temporary directory (nothing is committed to the repository):
 *
 *   ca            the test CA, self-signed (CN=tapio test CA)
 *   server_*      CN=localhost, SAN DNS:localhost, IP:127.0.0.1, IP:::1,
 *                 serverAuth, signed by the CA
 *   wrong_*       CN=wrong.example, SAN DNS:wrong.example only, serverAuth,
 *                 signed by the CA (the right chain, the wrong name)
 *   client_*      CN=tapio test client, clientAuth, signed by the CA
 *   other_ca      a second CA that signed nothing here: trusting only it
 *                 makes every certificate above untrusted
 *
 * The certificates are valid from an hour ago for two days.
 */
#ifndef TAPIO_TEST_TLS_CERTS_H
#define TAPIO_TEST_TLS_CERTS_H

#include <stddef.h>

#define TLS_CERTS_PATH 256

typedef struct tls_certs {
    char dir[TLS_CERTS_PATH];
    char ca[TLS_CERTS_PATH];
    char server_cert[TLS_CERTS_PATH], server_key[TLS_CERTS_PATH];
    char wrong_cert[TLS_CERTS_PATH], wrong_key[TLS_CERTS_PATH];
    char client_cert[TLS_CERTS_PATH], client_key[TLS_CERTS_PATH];
    char other_ca[TLS_CERTS_PATH];
} tls_certs;

/* The subject CNs, for checks on a peer's certificate. */
#define TLS_CERTS_SERVER_CN "localhost"
#define TLS_CERTS_CLIENT_CN "tapio test client"

/*
 * Make the files under a new directory in $TMPDIR (or /tmp). Returns 0, or
 * -1 with a description in err (nothing is left behind then).
 */
int tls_certs_make(tls_certs *certs, char *err, size_t err_len);

/* Remove the files and the directory. */
void tls_certs_remove(const tls_certs *certs);

#endif
