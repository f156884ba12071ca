/*
 * udp_floor: the plainest, fastest UDP echo server we know how to write.
 *
 * It is the UDP benchmark's floor: the C datagram endpoint is reported as a
 * ratio to it. One thread and one blocking socket: each datagram costs one
 * recvfrom() and one sendto(), with no readiness notification in between.
 *
 * Usage: udp_floor PORT
 * Binds 127.0.0.1:PORT, prints "ready", echoes every datagram to its sender
 * until SIGTERM or SIGINT, then exits 0.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define MAX_DATAGRAM 65536

static volatile sig_atomic_t stopping;

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static void on_signal(int signum)
{
    (void)signum;
    stopping = 1;
}

/*
 * Without SA_RESTART a signal interrupts the blocked recvfrom() with EINTR.
 * One that lands between the flag check and the call is caught by the
 * socket's receive timeout instead, so the server never sleeps on it.
 */
static void catch_stop_signals(void)
{
    struct sigaction sa = {.sa_handler = on_signal};

    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGTERM, &sa, NULL) < 0 || sigaction(SIGINT, &sa, NULL) < 0)
        die("sigaction");
}

static int bind_udp(int port)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
    struct timeval timeout = {.tv_usec = 100 * 1000};
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        die("socket");
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
        die("bind");
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout)) < 0)
        die("setsockopt SO_RCVTIMEO");
    return fd;
}

static void echo_until_stopped(int fd)
{
    static char buf[MAX_DATAGRAM];

    while (!stopping) {
        struct sockaddr_storage peer;
        socklen_t peer_len = sizeof(peer);
        ssize_t n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&peer,
                             &peer_len);

        if (n >= 0) {
            /* a failed send is a lost datagram, which the client resends */
            sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&peer, peer_len);
        } else if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK) {
            die("recvfrom");
        }
    }
}

int main(int argc, char **argv)
{
    int port = argc == 2 ? atoi(argv[1]) : 0;
    int fd;

    if (port <= 0 || port > 65535) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 2;
    }
    catch_stop_signals();
    fd = bind_udp(port);
    printf("ready\n");
    fflush(stdout);
    echo_until_stopped(fd);
    close(fd);
    return 0;
}
