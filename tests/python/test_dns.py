"""getaddrinfo/getnameinfo give what the socket module gives (local names only)."""

import asyncio
import socket

from .loops import loop_tests

LOOPS = ("asyncio", "tapio")


@loop_tests(LOOPS)
class ResolverTests:
    def assert_getaddrinfo_like_socket_module(self, *args, **kwargs):
        expected = socket.getaddrinfo(*args, **kwargs)
        result = self.run_coro(self.loop.getaddrinfo(*args, **kwargs))
        self.assertEqual(result, expected)
        self.assertIsInstance(result, list)
        return result

    def test_numeric_ipv4(self):
        [info] = self.assert_getaddrinfo_like_socket_module("127.0.0.1", 80, type=socket.SOCK_STREAM)
        self.assertEqual(info, (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("127.0.0.1", 80)))

    def test_numeric_ipv6(self):
        [info] = self.assert_getaddrinfo_like_socket_module("::1", 443, type=socket.SOCK_STREAM)
        self.assertEqual(info[0], socket.AF_INET6)
        self.assertEqual(info[4][:2], ("::1", 443))

    def test_localhost(self):
        infos = self.assert_getaddrinfo_like_socket_module("localhost", 8080)
        self.assertTrue(infos)

    def test_family_filter(self):
        infos = self.assert_getaddrinfo_like_socket_module("localhost", 8080, family=socket.AF_INET)
        self.assertEqual({info[0] for info in infos}, {socket.AF_INET})

    def test_service_name_and_string_port(self):
        self.assert_getaddrinfo_like_socket_module("127.0.0.1", "8080", type=socket.SOCK_STREAM)
        self.assert_getaddrinfo_like_socket_module("127.0.0.1", "http", type=socket.SOCK_STREAM)

    def test_no_host_passive(self):
        self.assert_getaddrinfo_like_socket_module(None, 0, family=socket.AF_INET,
                                                   type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)

    def test_datagram_and_proto(self):
        self.assert_getaddrinfo_like_socket_module("127.0.0.1", 53, type=socket.SOCK_DGRAM,
                                                   proto=socket.IPPROTO_UDP)

    def test_bad_numeric_host_is_a_gaierror(self):
        with self.assertRaises(socket.gaierror):
            self.run_coro(self.loop.getaddrinfo("not-an-address", 80, flags=socket.AI_NUMERICHOST))

    def test_concurrent_lookups(self):
        async def many():
            return await asyncio.gather(*(
                self.loop.getaddrinfo("127.0.0.1", port, type=socket.SOCK_STREAM)
                for port in range(1000, 1020)))
        results = self.run_coro(many())
        self.assertEqual([infos[0][4][1] for infos in results], list(range(1000, 1020)))

    def test_getnameinfo_numeric(self):
        flags = socket.NI_NUMERICHOST | socket.NI_NUMERICSERV
        result = self.run_coro(self.loop.getnameinfo(("127.0.0.1", 80), flags))
        self.assertEqual(result, ("127.0.0.1", "80"))

    def test_getnameinfo_like_socket_module(self):
        # 127.0.0.1 is named in /etc/hosts; ::1 stays numeric (no DNS query).
        cases = [(("127.0.0.1", 22), 0),
                 (("::1", 8080), socket.NI_NUMERICHOST | socket.NI_NUMERICSERV)]
        for address, flags in cases:
            with self.subTest(address=address):
                result = self.run_coro(self.loop.getnameinfo(address, flags))
                self.assertEqual(result, socket.getnameinfo(address, flags))
