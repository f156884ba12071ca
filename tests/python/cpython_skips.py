"""Tests of CPython's test_asyncio mixins that tapio does not run, and why.

Keys are fnmatch patterns over the ids that cpython_asyncio.py gives its test
classes ("<module>.<class>.<method>"). Only two reasons are allowed: the test
inspects stock asyncio's private internals, or it exercises a feature of a
later issue (TLS: 6). The skip list applies to --loop tapio only; stock
asyncio runs every test.
"""

TLS = 'TLS, ssl= (issue 6)'

EVENTS = 'test_events.EventLoopTests.'
SENDFILE = 'test_sendfile.SendfileTests.'
STREAMS = 'test_streams.StreamTests.'

SKIPS = {
    # test_events: EventLoopTestsMixin
    EVENTS + 'test_create_server_multiple_hosts_ipv*':
        'private: patches asyncio.base_events.socket and replaces '
        'loop._start_serving/_stop_serving with mocks',
    EVENTS + 'test_prompt_cancellation':
        'private: calls loop._stop_serving()',
    EVENTS + 'test_timeout_rounding':
        'private: wraps loop._run_once and reads _clock_resolution, _selector',
    EVENTS + 'test_create_ssl_connection': TLS,
    EVENTS + 'test_create_ssl_unix_connection': TLS,
    EVENTS + 'test_ssl_connect_accepted_socket': TLS,
    EVENTS + 'test_create_server_ssl': TLS,
    EVENTS + 'test_create_unix_server_ssl': TLS,
    EVENTS + 'test_create_server_ssl_verify_failed': TLS,
    EVENTS + 'test_create_unix_server_ssl_verify_failed': TLS,
    EVENTS + 'test_create_server_ssl_match_failed': TLS,
    EVENTS + 'test_create_server_ssl_verified': TLS,
    EVENTS + 'test_create_unix_server_ssl_verified': TLS,

    # test_sendfile: SendfileMixin
    SENDFILE + 'test_sendfile_ssl': TLS,
    SENDFILE + 'test_sendfile_ssl_partial': TLS,
    SENDFILE + 'test_sendfile_ssl_pre_and_post_data': TLS,
    SENDFILE + 'test_sendfile_ssl_close_peer_after_receiving': TLS,

    # test_streams: StreamTests
    STREAMS + 'test_open_connection_no_loop_ssl': TLS,
    STREAMS + 'test_open_unix_connection_no_loop_ssl': TLS,
    STREAMS + 'test_start_tls': TLS,
}
