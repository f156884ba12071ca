/*
 * pyrepr.h — print values the way the Python examples print them.
 *
 * The C examples reproduce the output of the documentation's Python code
 * line for line, so they need Python's repr() of a str, of bytes and of a
 * socket address tuple, and the check that bytes.decode() makes. The
 * functions are static inline so that each example compiles the ones it uses.
 */
#ifndef TAPIO_EXAMPLES_PYREPR_H
#define TAPIO_EXAMPLES_PYREPR_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>

#include "tapio.h"

/* The opening quote repr() picks: '"' only if the text has ' but no ". */
static inline char py_quote(const unsigned char *s, size_t len)
{
    bool single = false, dbl = false;
    for (size_t i = 0; i < len; i++) {
        single |= s[i] == '\'';
        dbl |= s[i] == '"';
    }
    return single && !dbl ? '"' : '\'';
}

/* Print one character of a repr() body; false if it needs no escape. */
static inline bool py_escape(FILE *out, unsigned c, char quote)
{
    switch (c) {
    case '\\': fputs("\\\\", out); return true;
    case '\t': fputs("\\t", out); return true;
    case '\n': fputs("\\n", out); return true;
    case '\r': fputs("\\r", out); return true;
    }
    if (c == (unsigned char)quote) {
        fprintf(out, "\\%c", quote);
        return true;
    }
    if (c < 0x20 || c == 0x7f) {
        fprintf(out, "\\x%02x", c);
        return true;
    }
    return false;
}

/*
 * bytes.decode(): true if `data` is valid UTF-8. Otherwise print the
 * UnicodeDecodeError Python would raise to stderr and return false; the
 * caller then fails the transport, as asyncio does when data_received raises.
 */
static inline bool py_decode_utf8(const void *data, size_t len)
{
    const unsigned char *s = data;

    for (size_t i = 0; i < len; i++) {
        unsigned c = s[i], lo = 0x80, hi = 0xbf;
        size_t n = 0, k, last = i;   /* n: continuation bytes expected */
        const char *why = NULL;

        if (c < 0x80)
            continue;
        if (c < 0xc2 || c > 0xf4) {
            why = "invalid start byte";
        } else {
            n = c < 0xe0 ? 1 : c < 0xf0 ? 2 : 3;
            /* The second byte's range excludes overlong forms, surrogates
             * and code points above U+10FFFF. */
            if (c == 0xe0)
                lo = 0xa0;
            else if (c == 0xf0)
                lo = 0x90;
            else if (c == 0xed)
                hi = 0x9f;
            else if (c == 0xf4)
                hi = 0x8f;
            for (k = 1; k <= n && !why; k++, lo = 0x80, hi = 0xbf) {
                if (i + k == len)
                    why = "unexpected end of data";
                else if (s[i + k] < lo || s[i + k] > hi)
                    why = "invalid continuation byte";
            }
            /* Python reports the valid prefix: the lead byte and the
             * continuation bytes before the one at k - 1. */
            last = i + k - 2;
        }
        if (why) {
            fputs("UnicodeDecodeError: 'utf-8' codec can't decode ", stderr);
            if (last > i)
                fprintf(stderr, "bytes in position %zu-%zu", i, last);
            else
                fprintf(stderr, "byte 0x%02x in position %zu", c, i);
            fprintf(stderr, ": %s\n", why);
            return false;
        }
        i += n;
    }
    return true;
}

/*
 * repr() of the str that valid UTF-8 `data` decodes to. Escapes are exact for
 * U+0000..U+00FF; other code points are printed as they are (Python would
 * also escape the few of them that are not printable, such as U+2028).
 */
static inline void py_print_str(FILE *out, const void *data, size_t len)
{
    const unsigned char *s = data;
    char quote = py_quote(s, len);

    putc(quote, out);
    for (size_t i = 0; i < len; i++) {
        if (s[i] == 0xc2 && i + 1 < len &&
            (s[i + 1] <= 0xa0 || s[i + 1] == 0xad)) {
            /* U+0080..U+00A0 and U+00AD are not printable. */
            fprintf(out, "\\x%02x", s[++i]);
        } else if (s[i] >= 0x80 || !py_escape(out, s[i], quote)) {
            putc(s[i], out);
        }
    }
    putc(quote, out);
}

/* repr() of a bytes object: b'...' */
static inline void py_print_bytes(FILE *out, const void *data, size_t len)
{
    const unsigned char *s = data;
    char quote = py_quote(s, len);

    putc('b', out);
    putc(quote, out);
    for (size_t i = 0; i < len; i++) {
        if (s[i] >= 0x80)
            fprintf(out, "\\x%02x", s[i]);
        else if (!py_escape(out, s[i], quote))
            putc(s[i], out);
    }
    putc(quote, out);
}

/*
 * A socket address as print() shows Python's: ('127.0.0.1', 54321) or
 * ('::1', 54321, 0, 0); None when there is none.
 */
static inline void py_print_sockaddr(FILE *out, const struct sockaddr *sa,
                                     socklen_t len)
{
    char host[INET6_ADDRSTRLEN];

    if (!sa || len == 0) {
        fputs("None", out);
    } else if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &sin->sin_addr, host, sizeof host);
        fprintf(out, "('%s', %u)", host, ntohs(sin->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof host);
        fprintf(out, "('%s', %u, %u, %u)", host, ntohs(sin6->sin6_port),
                (unsigned)ntohl(sin6->sin6_flowinfo),
                (unsigned)sin6->sin6_scope_id);
    } else {
        fputs("None", out);
    }
}

/* transport.get_extra_info('peername') as print() shows it. */
static inline void py_print_peername(FILE *out, const tapio_transport *t)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;

    if (tapio_transport_peername(t, &ss, &len) < 0)
        len = 0;
    py_print_sockaddr(out, (const struct sockaddr *)&ss, len);
}

#endif /* TAPIO_EXAMPLES_PYREPR_H */
