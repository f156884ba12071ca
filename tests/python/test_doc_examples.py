"""The documentation's examples (examples/python/), run unchanged in
subprocesses, print what the documentation shows.

On asyncio an example runs as `python3 EXAMPLE`; on tapio as
`python3 run_on_tapio.py EXAMPLE` (tapio.install(), then the file as
__main__). Servers are started in the background, exercised by their
client example, then stopped with SIGTERM; their output is checked last.
The examples use fixed ports (8888, 9999, 2222, 80, 443), so each test waits
for its port to be free before starting and for its server to bind it.
"""

import ast
import os
import re
import socket
import subprocess
import sys
import threading
import time
from unittest import mock

from . import tls_certs
from .loops import import_tapio, loop_tests
from .run_on_tapio import REPORT_PREFIX

LOOPS = ("asyncio", "tapio")

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(HERE)), "examples", "python")
LAUNCHER = os.path.join(HERE, "run_on_tapio.py")
PROCESS_TIMEOUT = 30.0
PORT_TIMEOUT = 10.0

HELLO_CLIENT_LINES = ["Send: 'Hello World!'", "Received: 'Hello World!'", "Close the connection"]


def bound_ports(protocol):
    """Local ports with a listening (tcp) or bound (udp) socket, from /proc."""
    ports = set()
    for suffix in ("", "6"):
        try:
            table = open(f"/proc/net/{protocol}{suffix}")
        except FileNotFoundError:  # no IPv6
            continue
        with table:
            next(table)
            for row in table:
                fields = row.split()
                port, state = int(fields[1].rsplit(":", 1)[1], 16), fields[3]
                if protocol == "udp" or state == "0A":  # 0A: LISTEN
                    ports.add(port)
    return ports


def wait_for_port(port, protocol, bound, process=None):
    """Wait until port is bound (bound=True) or free; False on timeout or if
    process ends first. Reads /proc rather than connecting, so the servers
    see no probe."""
    deadline = time.monotonic() + PORT_TIMEOUT
    while (port in bound_ports(protocol)) != bound:
        if time.monotonic() > deadline or (process and process.poll() is not None):
            return False
        time.sleep(0.02)
    return True


def line_pattern(expected):
    """A literal line where <port> stands for any port number."""
    return re.escape(expected).replace(re.escape("<port>"), r"\d+")


class ExampleCases:
    fresh_loop = False  # the examples make their own loops

    def command(self, example, *args):
        path = os.path.join(EXAMPLES, example)
        if self.loop_name == "tapio":
            return [sys.executable, LAUNCHER, path, *args]
        return [sys.executable, path, *args]

    def environment(self):
        env = dict(os.environ, PYTHONUNBUFFERED="1")  # keep output of killed servers
        if self.loop_name == "tapio":
            # The child imports the same tapio as this process.
            package_root = os.path.dirname(os.path.dirname(import_tapio().__file__))
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
        return env

    def run_example(self, example, *args, expect_success=True):
        result = subprocess.run(self.command(example, *args), env=self.environment(),
                                capture_output=True, text=True, timeout=PROCESS_TIMEOUT)
        if expect_success:
            self.assertEqual(result.returncode, 0, f"{example} failed:\n{result.stderr}")
        self.assert_ran_on_this_loop(example, result.stderr)
        return result

    def start_example(self, example, port, protocol="tcp"):
        """Start a server example once port is free; return when it is bound."""
        self.assertTrue(wait_for_port(port, protocol, bound=False),
                        f"port {port} stays in use by something else")
        process = subprocess.Popen(self.command(example), env=self.environment(), text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.addCleanup(self.stop_example, process)
        if not wait_for_port(port, protocol, bound=True, process=process):
            _, stderr = self.stop_example(process)
            self.fail(f"{example} did not bind port {port}:\n{stderr}")
        return process

    def stop_example(self, process, terminate=True):
        """SIGTERM the server if it still runs (or let it end by itself);
        return its (stdout, stderr)."""
        if terminate and process.poll() is None:
            process.terminate()
        try:
            return process.communicate(timeout=PROCESS_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.communicate()

    def server_output(self, example, process, terminate=True):
        stdout, stderr = self.stop_example(process, terminate)
        self.assert_ran_on_this_loop(example, stderr)
        return stdout, stderr

    def assert_ran_on_this_loop(self, example, stderr):
        if self.loop_name == "tapio":
            self.assertRegex(stderr, re.escape(REPORT_PREFIX) + r"tapio\b",
                             f"{example} did not make a tapio loop:\n{stderr}")

    def assert_lines(self, output, expected, stderr=""):
        """output is exactly the expected lines (see line_pattern)."""
        lines = output.splitlines()
        message = f"output:\n{output}\nstderr:\n{stderr}"
        self.assertEqual(len(lines), len(expected), message)
        for line, want in zip(lines, expected):
            self.assertRegex(line, f"^{line_pattern(want)}$", message)


@loop_tests(LOOPS)
class StreamExampleTests(ExampleCases):
    def test_tcp_echo_server_and_client_protocol(self):
        server = self.start_example("tcp_echo_server_protocol.py", 8888)
        for _ in range(2):
            client = self.run_example("tcp_echo_client_protocol.py")
            self.assert_lines(client.stdout, [
                "Data sent: 'Hello World!'",
                "Data received: 'Hello World!'",
                "The server closed the connection",
            ], client.stderr)
        stdout, stderr = self.server_output("tcp_echo_server_protocol.py", server)
        self.assert_lines(stdout, [
            "Connection from ('127.0.0.1', <port>)",
            "Data received: 'Hello World!'",
            "Send: 'Hello World!'",
            "Close the client socket",
        ] * 2, stderr)

    def test_tcp_echo_client_protocol_without_a_server_fails(self):
        self.assertTrue(wait_for_port(8888, "tcp", bound=False))
        client = self.run_example("tcp_echo_client_protocol.py", expect_success=False)
        self.assertNotEqual(client.returncode, 0)
        self.assertIn("ConnectionRefusedError", client.stderr)

    def test_connect_existing_socket_protocol(self):
        result = self.run_example("connect_existing_socket_protocol.py")
        self.assert_lines(result.stdout, ["Received: abc"], result.stderr)

    def test_streams_tcp_echo_server_and_clients(self):
        server = self.start_example("streams_tcp_echo_server.py", 8888)
        for client_example in ("streams_tcp_echo_client.py", "streams_intro_echo_client.py"):
            client = self.run_example(client_example)
            self.assert_lines(client.stdout, HELLO_CLIENT_LINES, client.stderr)
        stdout, stderr = self.server_output("streams_tcp_echo_server.py", server)
        self.assert_lines(stdout, ["Serving on ('127.0.0.1', 8888)"] + [
            "Received 'Hello World!' from ('127.0.0.1', <port>)",
            "Send: 'Hello World!'",
            "Close the connection",
        ] * 2, stderr)

    def test_wait_for_data(self):
        result = self.run_example("wait_for_data.py")
        self.assert_lines(result.stdout, ["Received: abc"], result.stderr)

    def test_print_http_headers(self):
        # The example connects to port 80 of the URL's host: serve HEAD there.
        if not wait_for_port(80, "tcp", bound=False):
            self.fail("port 80 stays in use by something else")
        requests = []
        try:
            listener = socket.create_server(("127.0.0.1", 80))
        except PermissionError:
            self.skipTest("binding port 80 needs root")
        with listener:
            server = threading.Thread(target=serve_one_head_request, args=(listener, requests))
            server.start()
            try:
                result = self.run_example("print_http_headers.py", "http://127.0.0.1/path/page.html")
            finally:
                listener.close()
                server.join(PROCESS_TIMEOUT)
        self.assertEqual(requests, ["HEAD /path/page.html HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"])
        self.assert_lines(result.stdout, [
            "HTTP header> HTTP/1.0 200 OK",
            "HTTP header> Content-Type: text/html; charset=utf-8",
            "HTTP header> Content-Length: 1234",
        ], result.stderr)

    def test_print_http_headers_https(self):
        # https: the example connects to port 443 with ssl=True, that is
        # ssl.create_default_context(), which trusts the CA file OpenSSL's
        # SSL_CERT_FILE names: here the test CA, which signed the server's
        # certificate for localhost.
        if not wait_for_port(443, "tcp", bound=False):
            self.fail("port 443 stays in use by something else")
        requests = []
        try:
            listener = socket.create_server(("127.0.0.1", 443))
        except PermissionError:
            self.skipTest("binding port 443 needs root")
        with listener:
            server = threading.Thread(target=serve_one_head_request,
                                      args=(listener, requests, start_tls_server))
            server.start()
            try:
                with mock.patch.dict(os.environ, {"SSL_CERT_FILE": tls_certs.ca_file()}):
                    result = self.run_example("print_http_headers.py",
                                              "https://localhost/path/page.html")
            finally:
                listener.close()
                server.join(PROCESS_TIMEOUT)
        self.assertEqual(requests, ["HEAD /path/page.html HTTP/1.0\r\nHost: localhost\r\n\r\n"])
        self.assert_lines(result.stdout, [
            "HTTP header> HTTP/1.0 200 OK",
            "HTTP header> Content-Type: text/html; charset=utf-8",
            "HTTP header> Content-Length: 1234",
        ], result.stderr)

    def test_tutorial_simple_echo_server(self):
        server = self.start_example("tutorial_simple_echo_server.py", 2222)
        with socket.create_connection(("127.0.0.1", 2222), timeout=PROCESS_TIMEOUT) as client:
            client.sendall(b"abc")
            reply = b""
            while len(reply) < 8:
                chunk = client.recv(100)
                if not chunk:
                    break
                reply += chunk
        self.assertEqual(reply, b"echo:abc")
        # The server closes itself when its connection is lost.
        stdout, stderr = self.server_output("tutorial_simple_echo_server.py", server,
                                            terminate=False)
        self.assertEqual(server.returncode, 0, stderr)
        self.assert_lines(stdout, [
            "Connection received!",
            "b'abc'",
            "Connection lost! Closing server...",
        ], stderr)

    def test_tutorial_streams_echo_server_and_client(self):
        lines = [b"First line.\n", b"Second line.\n", b"Third line.\n", b"Last line.\n"]
        server = self.start_example("tutorial_streams_echo_server.py", 2222)
        client = self.run_example("tutorial_streams_echo_client.py")
        self.assert_lines(client.stdout, ["Lines received"] + [repr(line) for line in lines],
                          client.stderr)
        stdout, stderr = self.server_output("tutorial_streams_echo_server.py", server)
        first, *chunks = stdout.splitlines()
        self.assertEqual(first, "Connection received!", stderr)
        # The document shows one chunk; TCP may deliver the lines in several.
        try:
            received = b"".join(ast.literal_eval(chunk) for chunk in chunks)
        except SyntaxError:
            self.fail(f"server output:\n{stdout}")
        self.assertEqual(received, b"".join(lines), stdout)


@loop_tests(LOOPS)
class DatagramExampleTests(ExampleCases):
    def test_udp_echo_server_and_client_protocol(self):
        server = self.start_example("udp_echo_server_protocol.py", 9999, "udp")
        client = self.run_example("udp_echo_client_protocol.py")
        self.assert_lines(client.stdout, [
            "Send: Hello World!",
            "Received: Hello World!",
            "Close the socket",
            "Connection closed",
        ], client.stderr)
        stdout, stderr = self.server_output("udp_echo_server_protocol.py", server)
        self.assert_lines(stdout, [
            "Starting UDP server",
            "Received 'Hello World!' from ('127.0.0.1', <port>)",
            "Send 'Hello World!' to ('127.0.0.1', <port>)",
        ], stderr)


@loop_tests(LOOPS)
class SubprocessExampleTests(ExampleCases):
    def test_subprocess_date(self):
        result = self.run_example("subprocess_date.py")
        self.assertRegex(result.stdout,
                         r"^Current date: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{6})?\n$")


def serve_one_head_request(listener, requests, wrap=None):
    """Answer one HTTP request on listener with fixed headers, then close.
    wrap(conn), if given, returns the connection to use instead (TLS)."""
    listener.settimeout(PORT_TIMEOUT)
    try:
        conn, _ = listener.accept()
        if wrap is not None:
            conn = wrap(conn)
    except OSError:
        return  # the listener was closed (no connection) or the TLS handshake failed
    with conn:
        request = b""
        while b"\r\n\r\n" not in request:
            chunk = conn.recv(4096)
            if not chunk:
                break
            request += chunk
        requests.append(request.decode("latin-1"))
        conn.sendall(b"HTTP/1.0 200 OK\r\n"
                     b"Content-Type: text/html; charset=utf-8\r\n"
                     b"Content-Length: 1234\r\n"
                     b"\r\n")


def start_tls_server(conn):
    """conn as the TLS server of the test certificate for localhost."""
    conn.settimeout(PORT_TIMEOUT)
    return tls_certs.server_context().wrap_socket(conn, server_side=True)
