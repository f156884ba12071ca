/*
 * fuzz_address.c — libFuzzer target: socket addresses from outside.
 *
 * The input is cut into: a Unix path (with its length, possibly 0 for
 * strlen, possibly abstract) for tapio__unix_addr, which tapio_connect_unix,
 * tapio_server_listen_unix and Unix datagram endpoints use; and a sockaddr
 * of arbitrary family and length given to tapio_datagram_sendto on a
 * connected UDP endpoint and a connected Unix datagram endpoint (compared
 * with the remote address, refused or sent to our own peer), on an
 * unconnected UDP endpoint (its IP forced to the loopback, so nothing leaves
 * the machine), and to tapio_datagram_from_fd as the default destination.
 */
#define _GNU_SOURCE
#include "../../src/internal.h"
#include "tapio.h"

#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static tapio_loop *loop;
static tapio_datagram *udp_connected, *udp_open, *unix_connected;
static in_port_t own_port; /* udp_open's: unconnected sends go to itself */

static const tapio_datagram_protocol quiet = {0};

static void noop(tapio_loop *l, void *arg)
{
    (void)l;
    (void)arg;
}

static void run(void)
{
    tapio_call_soon(loop, noop, NULL);
    tapio_loop_run_once(loop);
}

static tapio_datagram *open_udp(const char *remote_port)
{
    tapio_datagram_options o = {.family = AF_INET,
                                .local_host = "127.0.0.1",
                                .local_port = "0",
                                .remote_host = remote_port ? "127.0.0.1" : NULL,
                                .remote_port = remote_port};
    tapio_datagram *d;
    if (tapio_datagram_open(loop, &o, &quiet, NULL, &d))
        abort();
    return d;
}

static void setup(void)
{
    if (loop)
        return;
    if (tapio_loop_new(&loop))
        abort();
    udp_open = open_udp(NULL);
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (tapio_datagram_sockname(udp_open, &ss, &len))
        abort();
    own_port = ((struct sockaddr_in *)&ss)->sin_port;
    char port[16];
    snprintf(port, sizeof port, "%d", ntohs(own_port));
    udp_connected = open_udp(port);
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, pair))
        abort();
    close(pair[1]); /* sends fail with ECONNREFUSED: error_received */
    if (tapio_datagram_from_fd(loop, pair[0], NULL, 0, &quiet, NULL,
                               &unix_connected))
        abort();
    run();
}

static void fuzz_unix_addr(const uint8_t *data, size_t size)
{
    char path[256];
    size_t n = size < sizeof path - 1 ? size : sizeof path - 1;
    memcpy(path, data, n);
    path[n] = '\0';
    struct sockaddr_storage ss;
    socklen_t len;
    /* The first byte picks the length argument: 0 (strlen) or n. */
    size_t path_len = n && (data[0] & 1) ? n : 0;
    if (tapio__unix_addr(path, path_len, &ss, &len) == 0 &&
        (len > sizeof(struct sockaddr_un) || len <= offsetof(struct sockaddr_un, sun_path)))
        abort();
}

static void fuzz_sendto(const uint8_t *data, size_t size)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    size_t n = size < sizeof ss ? size : sizeof ss;
    memcpy(&ss, data, n);
    /* The length given may exceed the bytes (up to the storage) or not. */
    socklen_t len = (socklen_t)(size ? data[size - 1] % (sizeof ss + 16) : 0);
    if (len > sizeof ss)
        len = sizeof ss + 1; /* too long: must be refused, not read */
    const struct sockaddr *addr = (const struct sockaddr *)&ss;
    socklen_t safe = len > sizeof ss ? sizeof ss : len;
    tapio_datagram_sendto(udp_connected, "x", 1, addr, safe);
    tapio_datagram_sendto(unix_connected, "x", 1, addr, safe);

    /* Unconnected: only to itself, so that nothing reaches another
     * program on this machine or leaves it. */
    if (ss.ss_family == AF_INET) {
        ((struct sockaddr_in *)&ss)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ((struct sockaddr_in *)&ss)->sin_port = own_port;
    } else if (ss.ss_family == AF_INET6) {
        ((struct sockaddr_in6 *)&ss)->sin6_addr = in6addr_loopback;
        ((struct sockaddr_in6 *)&ss)->sin6_port = own_port;
    }
    if (ss.ss_family != AF_UNIX)
        tapio_datagram_sendto(udp_open, "x", 1, addr, safe);

    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        abort();
    tapio_datagram *d;
    if (tapio_datagram_from_fd(loop, fd, addr, len, &quiet, NULL, &d) == 0)
        tapio_datagram_abort(d);
    run();
    run();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    fuzz_unix_addr(data, size);
    fuzz_sendto(data, size);
    return 0;
}
