"""Tests of CPython's test_asyncio that tapio does not run, and why.

Keys are fnmatch patterns over the ids cpython_asyncio.py gives the tests:
"<module>.<class>.<method>", where the classes that bind a stock loop in a
hook are replaced by "Chosen<name>" classes (test_events.ChosenEventLoopTests).
One reason only is allowed: the test reads or replaces a private attribute
of stock asyncio (or mocks asyncio's internals), named in the reason; an
entry whose reason is None (before()) does not apply to this interpreter. The
skip list applies to --loop tapio only; stock asyncio runs every test. A
behaviour a user can see is never skipped: it is a tapio bug to fix.
"""

import sys


def before(version, reason):
    """A skip for the interpreters older than version only: a later CPython
    rewrote the test without the private attribute."""
    return reason if sys.version_info < version else None


EVENTS = 'test_events.ChosenEventLoopTests.'
SSL = 'test_ssl.TestSSL.'
UNIX_SENDFILE = 'test_unix_events.SelectorEventLoopUnixSockSendfileTests.'

BASE = 'test_base_events.BaseEventLoopWithSelectorTests.'
PATCH_SOCKET = ('private: mocks asyncio.base_events.socket (patch_socket) '
                'and the socket objects asyncio makes from it')

SOCK_CONNECT_MOCK = ('private: mocks loop.sock_connect as the call stock '
                     "asyncio's create_connection makes internally per attempt")

SKIPS = {
    # test_base_events: BaseEventLoopWithSelectorTests (bound to the loop by
    # the harness): create_connection/create_server/create_datagram_endpoint
    # over a mocked socket module
    BASE + 'test_create_connection_bluetooth': PATCH_SOCKET,
    BASE + 'test_create_connection_ip_addr': PATCH_SOCKET,
    BASE + 'test_create_connection_no_inet_pton': PATCH_SOCKET,
    BASE + 'test_create_connection_ipv6_scope': PATCH_SOCKET,
    BASE + 'test_create_connection_multiple_errors': PATCH_SOCKET,
    BASE + 'test_create_connection_multiple_errors_local_addr': PATCH_SOCKET,
    BASE + 'test_create_connection_service_name': PATCH_SOCKET,
    BASE + 'test_create_connection_timeout': PATCH_SOCKET,
    BASE + 'test_create_datagram_endpoint_cant_bind': PATCH_SOCKET,
    BASE + 'test_create_datagram_endpoint_ip_addr': PATCH_SOCKET,
    BASE + 'test_create_datagram_endpoint_no_addrinfo': PATCH_SOCKET,
    BASE + 'test_create_datagram_endpoint_nosoreuseport': PATCH_SOCKET,
    BASE + 'test_create_datagram_endpoint_setblk_err': PATCH_SOCKET,
    BASE + 'test_create_datagram_endpoint_socket_err': PATCH_SOCKET,
    BASE + 'test_create_server_cant_bind': PATCH_SOCKET,
    BASE + 'test_create_server_nosoreuseport': PATCH_SOCKET,
    BASE + 'test_create_server_soreuseport_only_defined': PATCH_SOCKET,
    # Stock create_connection connects each attempt with loop.sock_connect;
    # tapio's connects in libtapio, so the mock steers nothing and the test
    # would open real connections to 107.6.106.82:80 and 0.0.0.1:80.
    BASE + 'test_create_connection_connect_err': SOCK_CONNECT_MOCK,
    BASE + 'test_create_connection_multiple': SOCK_CONNECT_MOCK,
    BASE + 'test_accept_connection_retry':
        'private: calls loop._accept_connection()',
    BASE + 'test_accept_connection_exception':
        'private: calls loop._accept_connection(), mocks loop._remove_reader '
        'and asyncio.base_events.logger',
    BASE + 'test_create_connection_ssl_server_hostname_default':
        'private: replaces loop._make_ssl_transport with a mock',
    BASE + 'test_create_datagram_endpoint_connect_err':
        'private: replaces loop.sock_connect, through which asyncio connects '
        'the socket it makes (libtapio connects it; a refused connect is '
        'tested in tests/python/test_datagram.py)',
    BASE + 'test_create_datagram_endpoint_sock_unix':
        'private: reads transport._sock',
    BASE + 'test_log_slow_callbacks':
        'private: mocks asyncio.base_events.logger (tapio logs slow '
        'callbacks to the same "asyncio" logger from its own module)',

    # test_events: EventLoopTestsMixin
    EVENTS + 'test_create_server_multiple_hosts_ipv*':
        'private: patches asyncio.base_events.socket and replaces '
        'loop._start_serving/_stop_serving with mocks',
    EVENTS + 'test_prompt_cancellation':
        'private: calls loop._stop_serving()',
    EVENTS + 'test_timeout_rounding':
        'private: wraps loop._run_once and reads _clock_resolution, _selector',
    'test_events.HandleTests.test_handle_source_traceback':
        'private: reads Handle._source_traceback and '
        'TimerHandle._source_traceback',

    # test_runners (BaseTest.new_loop bound to the loop by the harness)
    'test_runners.RunTests.test_asyncio_run_debug':
        'private: patches asyncio.coroutines._is_debug_mode (tapio reads '
        'the same dev mode and PYTHONASYNCIODEBUG itself)',

    # test_ssl: TestSSL
    SSL + 'test_flush_before_shutdown':
        'private: pauses and resumes writing through '
        'writer.transport._ssl_protocol',
    SSL + 'test_remote_shutdown_receives_trailing_data':
        'private: fills the write backlog with '
        'writer.transport._test__append_write_backlog()',

    # test_server: TestServer2 (3.12; 3.13's versions use real connections)
    'test_server.TestServer2.test_wait_closed_basic': before(
        (3, 13), 'private: counts a client with Server._attach() and '
        '_detach()'),
    'test_server.TestServer2.test_wait_closed_race': before(
        (3, 13), 'private: counts a client with Server._attach() and '
        '_detach()'),

    # test_unix_events: SelectorEventLoopUnixSocketTests (bound to the loop
    # by the harness)
    'test_unix_events.SelectorEventLoopUnixSocketTests.'
    'test_create_unix_server_bind_error':
        'private: mocks asyncio.unix_events.socket (on another loop the '
        'bind succeeds: the test would create /test)',

    # test_unix_events: the selector loop's os.sendfile path
    UNIX_SENDFILE + 'test_sock_sendfile_not_available':
        'private: mocks asyncio.unix_events.os and calls '
        'loop._sock_sendfile_native()',
    UNIX_SENDFILE + 'test_sock_sendfile_cancel[12]':
        'private: calls loop._sock_sendfile_native_impl()',
    UNIX_SENDFILE + 'test_sock_sendfile_blocking_error':
        'private: calls loop._sock_sendfile_native_impl()',
    UNIX_SENDFILE + 'test_sock_sendfile_os_error_*':
        'private: calls loop._sock_sendfile_native_impl()',
    UNIX_SENDFILE + 'test_sock_sendfile_exception':
        'private: calls loop._sock_sendfile_native_impl()',
}

# Entries that do not apply to this interpreter.
SKIPS = {pattern: reason for pattern, reason in SKIPS.items()
         if reason is not None}
