/*
 * print_http_headers.c — "Get HTTP headers" from the asyncio documentation
 * (Streams, Examples), on libtapio's streams.
 *
 * Sends "HEAD path HTTP/1.0" to the URL's host (TLS for https), reads the
 * answer line by line until EOF and prints each non-empty line as
 * "HTTP header> ...", as the Python example does.
 *
 *   usage: print_http_headers [--ca FILE] URL
 *          URL: http://HOST[:PORT][/PATH] or https://...; the port defaults
 *          to 80 or 443 as in the example. For https the server's
 *          certificate is verified against FILE, else $TAPIO_TLS_CA, else
 *          the system's store, and its name against HOST.
 *
 * Exits 0 after the connection ended, 1 if it could not be made.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tapio.h"

struct url {
    bool https;
    char host[256], port[8];
    const char *path;
};

struct fetch {
    tapio_loop *loop;
    struct url url;
    int status;
};

/* urlsplit, for the URLs the example takes. */
static bool parse_url(const char *text, struct url *u)
{
    const char *rest;
    if (strncmp(text, "https://", 8) == 0)
        u->https = true, rest = text + 8;
    else if (strncmp(text, "http://", 7) == 0)
        u->https = false, rest = text + 7;
    else
        return false;
    size_t hostlen = strcspn(rest, ":/");
    if (hostlen == 0 || hostlen >= sizeof u->host)
        return false;
    memcpy(u->host, rest, hostlen);
    u->host[hostlen] = '\0';
    rest += hostlen;
    strcpy(u->port, u->https ? "443" : "80");
    if (*rest == ':') {
        size_t portlen = strcspn(++rest, "/");
        if (portlen == 0 || portlen >= sizeof u->port)
            return false;
        memcpy(u->port, rest, portlen);
        u->port[portlen] = '\0';
        rest += portlen;
    }
    u->path = *rest ? rest : "/";
    return true;
}

/* str.rstrip() of latin-1 text: Unicode whitespace below U+0100. */
static bool latin1_space(unsigned char c)
{
    return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) ||
           c == 0x85 || c == 0xa0;
}

/* line.decode('latin1'), printed as UTF-8. */
static void print_latin1(const unsigned char *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (p[i] < 0x80) {
            putchar(p[i]);
        } else {
            putchar(0xc0 | p[i] >> 6);
            putchar(0x80 | (p[i] & 0x3f));
        }
    }
}

static void on_closed(tapio_stream *s, int err, void *arg)
{
    struct fetch *f = arg;
    (void)err;
    tapio_stream_free(s);
    tapio_loop_stop(f->loop);
}

static void on_line(tapio_stream *s, const void *data, size_t len, int err,
                    void *arg)
{
    struct fetch *f = arg;
    const unsigned char *line = data;
    if (err < 0)
        fprintf(stderr, "print_http_headers: %s\n", tapio_strerror(err));
    if (err < 0 || len == 0) {
        f->status = err < 0;
        /* Ignore the body, close the socket */
        tapio_stream_close(s);
        tapio_stream_wait_closed(s, on_closed, f);
        return;
    }
    while (len > 0 && latin1_space(line[len - 1]))
        len--;
    if (len > 0) {
        fputs("HTTP header> ", stdout);
        print_latin1(line, len);
        putchar('\n');
    }
    tapio_stream_readline(s, on_line, f);
}

static void on_open(tapio_stream *s, int err, void *arg)
{
    struct fetch *f = arg;
    if (err < 0) {
        fprintf(stderr, "print_http_headers: cannot connect to %s:%s: %s\n",
                f->url.host, f->url.port, tapio_strerror(err));
        tapio_loop_stop(f->loop);
        return;
    }
    char query[1024];
    int n = snprintf(query, sizeof query, "HEAD %s HTTP/1.0\r\nHost: %s\r\n\r\n",
                     f->url.path, f->url.host);
    tapio_stream_write(s, query, (size_t)n < sizeof query ? (size_t)n : 0);
    tapio_stream_readline(s, on_line, f);
}

/* ssl=True: a client context verifying the server (CA: see usage). */
static int make_tls(const char *ca, tapio_tls_context **ctx)
{
    tapio_tls_context_options o = {.ca_file = ca};
    return tapio_tls_context_new(&o, ctx);
}

static int start(struct fetch *f, const char *ca, tapio_tls_context **ctx)
{
    tapio_tls_options tls = {.server_hostname = f->url.host};
    tapio_connect_options opts = {.tls = &tls};
    if (f->url.https) {
        int err = make_tls(ca, ctx);
        if (err < 0)
            return err;
        tls.context = *ctx;
    }
    return tapio_open_connection(f->loop, f->url.host, f->url.port,
                                 f->url.https ? &opts : NULL, 0, on_open, f);
}

int main(int argc, char **argv)
{
    struct fetch f = {.status = 1};
    const char *ca = getenv("TAPIO_TLS_CA");
    tapio_tls_context *ctx = NULL;
    int i = 1;
    if (argc > 2 && strcmp(argv[1], "--ca") == 0)
        ca = argv[2], i = 3;
    if (argc != i + 1 || !parse_url(argv[i], &f.url)) {
        fprintf(stderr, "usage: %s [--ca FILE] http[s]://HOST[:PORT][/PATH]\n",
                argv[0]);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    int err = tapio_loop_new(&f.loop);
    if (err == 0) {
        err = start(&f, ca, &ctx);
        if (err == 0)
            tapio_loop_run_forever(f.loop);
        tapio_loop_close(f.loop);
    }
    if (ctx)
        tapio_tls_context_unref(ctx);
    if (err < 0)
        fprintf(stderr, "print_http_headers: %s\n", tapio_strerror(err));
    return err < 0 ? 1 : f.status;
}
