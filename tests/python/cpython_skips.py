"""Tests of CPython's test_asyncio mixins that tapio does not run, and why.

Keys are fnmatch patterns over the ids that cpython_asyncio.py gives its test
classes ("<module>.<class>.<method>"). Only two reasons are allowed: the test
inspects stock asyncio's private internals, or it exercises a feature of a
later issue. The skip list applies to --loop tapio only; stock asyncio runs
every test.
"""

EVENTS = 'test_events.EventLoopTests.'
SSL = 'test_ssl.SSLTests.'

SKIPS = {
    # test_events: EventLoopTestsMixin
    EVENTS + 'test_create_server_multiple_hosts_ipv*':
        'private: patches asyncio.base_events.socket and replaces '
        'loop._start_serving/_stop_serving with mocks',
    EVENTS + 'test_prompt_cancellation':
        'private: calls loop._stop_serving()',
    EVENTS + 'test_timeout_rounding':
        'private: wraps loop._run_once and reads _clock_resolution, _selector',

    # test_ssl: TestSSL
    SSL + 'test_flush_before_shutdown':
        'private: pauses and resumes writing through '
        'writer.transport._ssl_protocol',
    SSL + 'test_remote_shutdown_receives_trailing_data':
        'private: fills the write backlog with '
        'writer.transport._test__append_write_backlog()',
}
