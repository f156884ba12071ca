"""Tests of CPython's test_asyncio that tapio does not run, and why.

Keys are fnmatch patterns over the ids cpython_asyncio.py gives the tests:
"<module>.<class>.<method>", where the classes that bind a stock loop in a
hook are replaced by "Chosen<name>" classes (test_events.ChosenEventLoopTests).
One reason only is allowed: the test reads or replaces a private attribute
of stock asyncio (or mocks asyncio's internals), named in the reason. The
skip list applies to --loop tapio only; stock asyncio runs every test. A
behaviour a user can see is never skipped: it is a tapio bug to fix.
"""

EVENTS = 'test_events.ChosenEventLoopTests.'
SSL = 'test_ssl.TestSSL.'
UNIX_SENDFILE = 'test_unix_events.SelectorEventLoopUnixSockSendfileTests.'

SKIPS = {
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

    # test_server: TestServer2 (3.12+)
    'test_server.TestServer2.test_wait_closed_basic':
        'private: counts a client with Server._attach() and _detach()',
    'test_server.TestServer2.test_wait_closed_race':
        'private: counts a client with Server._attach() and _detach()',

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
