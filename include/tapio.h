/*
 * tapio.h — asyncio's transports and protocols, in C.
 *
 * This header is the C API reference. It follows the asyncio documentation
 * ("Transports and Protocols"): an event loop runs callbacks; a transport
 * moves bytes over a socket; a protocol is a table of callbacks that the
 * transport calls as things happen.
 *
 * Conventions
 *   - Functions that can fail return 0 or a negative errno value
 *     (-ECONNREFUSED, ...). tapio_strerror() names it. A call that fails never
 *     runs its callback later.
 *   - Callbacks take the object first and the user's `void *` last.
 *   - Everything except tapio_call_soon_threadsafe() is called on the loop's
 *     thread.
 *   - An error of 0 passed to connection_lost means "no error" (asyncio's
 *     `None`).
 */
#ifndef TAPIO_H
#define TAPIO_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define TAPIO_API __attribute__((visibility("default")))
#else
#define TAPIO_API
#endif

#define TAPIO_VERSION_MAJOR 0
#define TAPIO_VERSION_MINOR 1
#define TAPIO_VERSION_PATCH 0

/* asyncio's defaults for write flow control: a stream, pipe or datagram
 * transport's high-water mark (a TLS transport's is 512 KiB, as asyncio's
 * SSL transports); low defaults to high / 4. */
#define TAPIO_DEFAULT_HIGH_WATER (64 * 1024)
/* A write-buffer limit not given (None in asyncio): the transport kind's
 * default. Any negative value means the same. */
#define TAPIO_LIMIT_DEFAULT ((ssize_t)-1)

typedef struct tapio_loop tapio_loop;
typedef struct tapio_handle tapio_handle;
typedef struct tapio_transport tapio_transport;
typedef struct tapio_server tapio_server;
typedef struct tapio_connect_req tapio_connect_req;

/** Name of a (negative) error code returned by tapio, e.g. "Connection refused". */
TAPIO_API const char *tapio_strerror(int err);

/*
 * Name resolution failures are getaddrinfo's EAI_* codes (negative in glibc)
 * moved below TAPIO_EAI_BASE, so they never collide with a negative errno:
 * TAPIO_ERR_EAI(EAI_NONAME). tapio_strerror names them as gai_strerror does.
 */
#define TAPIO_EAI_BASE (-3000)
#define TAPIO_ERR_EAI(eai) (TAPIO_EAI_BASE + (eai))
/** True for a name resolution failure; tapio_error_eai gives its EAI_* code. */
TAPIO_API bool tapio_error_is_eai(int err);
TAPIO_API int tapio_error_eai(int err);

/* ======================================================================
 * Event loop
 * ====================================================================== */

typedef void (*tapio_callback)(tapio_loop *loop, void *arg);

/**
 * Create a loop. The I/O backend is epoll, or poll when the environment
 * variable TAPIO_BACKEND=poll is set. Returns 0 and stores the loop in *out.
 */
TAPIO_API int tapio_loop_new(tapio_loop **out);

/**
 * Close and free the loop. Fails with -EBUSY while it runs. Pending
 * callbacks are dropped, watchers removed, transports that are still open
 * are aborted without running their protocol callbacks, and the loop's
 * worker threads are joined. Afterwards no fd and no memory of the loop
 * remains.
 */
TAPIO_API int tapio_loop_close(tapio_loop *loop);

/** Run until tapio_loop_stop(). Returns -EBUSY if already running. */
TAPIO_API int tapio_loop_run_forever(tapio_loop *loop);

/**
 * Run one iteration: wait for I/O (not at all if callbacks are ready, and no
 * longer than the nearest timer), then run every callback that was ready
 * when the iteration began. Returns -EBUSY if the loop is already running.
 */
TAPIO_API int tapio_loop_run_once(tapio_loop *loop);

/**
 * Ask a running loop to stop after the current iteration (asyncio's
 * loop.stop()). Called before run_forever, the next run_forever runs a single
 * iteration.
 */
TAPIO_API void tapio_loop_stop(tapio_loop *loop);

/**
 * Stop at once: the callback that is running finishes, the rest of the
 * iteration's ready callbacks stay queued for the next run, and
 * run_forever/run_once return. For a binding whose callback raised an error
 * that must leave the loop (asyncio's KeyboardInterrupt/SystemExit).
 */
TAPIO_API void tapio_loop_interrupt(tapio_loop *loop);

TAPIO_API bool tapio_loop_is_running(const tapio_loop *loop);

/**
 * Hooks around a poll that may block (timeout other than 0): `before` runs
 * just before it, `after` just after with 0 or a negative errno (-EINTR when
 * a signal interrupted the wait). A language binding releases its
 * interpreter lock in `before`, takes it back and checks for signals in
 * `after`. Either may be NULL.
 */
typedef void (*tapio_poll_hook)(tapio_loop *loop, int result, void *arg);
TAPIO_API void tapio_loop_set_poll_hooks(tapio_loop *loop,
                                         tapio_poll_hook before,
                                         tapio_poll_hook after, void *arg);

/** The name of the loop's I/O backend: "epoll" or "poll". */
TAPIO_API const char *tapio_loop_backend(const tapio_loop *loop);

/**
 * Monotonic time in seconds, the clock of call_at (asyncio's loop.time()).
 * The clock is process-wide: `loop` may be NULL or closed.
 */
TAPIO_API double tapio_loop_time(const tapio_loop *loop);

/**
 * Called for errors that have no caller to return to (asyncio's exception
 * handler): a failing accept, a fatal transport error. `message` describes
 * the context; `err` is a negative errno or 0.
 */
typedef void (*tapio_error_handler)(tapio_loop *loop, const char *message,
                                    int err, void *arg);

/** Replace the error handler; NULL restores the default (print to stderr). */
TAPIO_API void tapio_loop_set_error_handler(tapio_loop *loop,
                                            tapio_error_handler handler,
                                            void *arg);

/* ----------------------------------------------------------------------
 * Callbacks and timers (asyncio's Handle and TimerHandle)
 *
 * call_soon/call_later/call_at return a handle owned by the loop: it is valid
 * until its callback has run or it was cancelled, then the loop releases it.
 * To keep using it beyond that point, take a reference with
 * tapio_handle_ref() and drop it with tapio_handle_unref(); a referenced
 * handle stays valid even after its loop is closed.
 * ---------------------------------------------------------------------- */

/** Run cb(loop, arg) on the next iteration, in FIFO order. NULL on -ENOMEM. */
TAPIO_API tapio_handle *tapio_call_soon(tapio_loop *loop, tapio_callback cb,
                                        void *arg);

/** Run cb after `delay` seconds (negative counts as 0). NULL on -ENOMEM. */
TAPIO_API tapio_handle *tapio_call_later(tapio_loop *loop, double delay,
                                         tapio_callback cb, void *arg);

/** Run cb at loop time `when`. Equal deadlines run in scheduling order. */
TAPIO_API tapio_handle *tapio_call_at(tapio_loop *loop, double when,
                                      tapio_callback cb, void *arg);

/**
 * Schedule cb from any thread and wake the loop if it sleeps. Calls keep
 * one FIFO order with call_soon: a threadsafe call that returned before a
 * call_soon runs before that call_soon's callback. Returns 0 or -ENOMEM, or
 * -ESHUTDOWN once the loop is closing.
 */
TAPIO_API int tapio_call_soon_threadsafe(tapio_loop *loop, tapio_callback cb,
                                         void *arg);

/**
 * Cancel: the callback will not run. Returns true if this call stopped a
 * pending callback, false if it had already run or been cancelled (or the
 * loop was closed). Harmless at any time while the handle is valid.
 */
TAPIO_API bool tapio_handle_cancel(tapio_handle *h);
TAPIO_API bool tapio_handle_cancelled(const tapio_handle *h);
/** The deadline of a timer handle in loop time; 0 for call_soon handles. */
TAPIO_API double tapio_handle_when(const tapio_handle *h);
TAPIO_API void tapio_handle_ref(tapio_handle *h);
TAPIO_API void tapio_handle_unref(tapio_handle *h);

/* ----------------------------------------------------------------------
 * File descriptor watchers (loop.add_reader / add_writer)
 * ---------------------------------------------------------------------- */

typedef void (*tapio_fd_callback)(tapio_loop *loop, int fd, void *arg);

/**
 * Call cb whenever fd is readable (level-triggered), replacing an earlier
 * reader of the same fd. -EBUSY if a transport owns the fd, -EBADF for an
 * invalid fd, -EPERM for a regular file (not pollable).
 */
TAPIO_API int tapio_add_reader(tapio_loop *loop, int fd, tapio_fd_callback cb,
                               void *arg);
TAPIO_API int tapio_add_writer(tapio_loop *loop, int fd, tapio_fd_callback cb,
                               void *arg);
/** Returns true if a watcher was removed. */
TAPIO_API bool tapio_remove_reader(tapio_loop *loop, int fd);
TAPIO_API bool tapio_remove_writer(tapio_loop *loop, int fd);
/** Whether a transport, server or other libtapio object (not an fd watcher)
 *  has fd registered with the loop, so that add_reader/add_writer refuse it. */
TAPIO_API bool tapio_fd_is_owned(const tapio_loop *loop, int fd);

/* ----------------------------------------------------------------------
 * Signals (loop.add_signal_handler): the callback runs as a loop callback,
 * never inside the signal handler. One loop per signal number in a process.
 * ---------------------------------------------------------------------- */

typedef void (*tapio_signal_callback)(tapio_loop *loop, int signum, void *arg);

/** -EINVAL for SIGKILL/SIGSTOP or an invalid number, -EBUSY if another loop has it. */
TAPIO_API int tapio_add_signal_handler(tapio_loop *loop, int signum,
                                       tapio_signal_callback cb, void *arg);
/** Restores the default disposition. Returns true if a handler was removed. */
TAPIO_API bool tapio_remove_signal_handler(tapio_loop *loop, int signum);

/* ======================================================================
 * Protocols
 * ====================================================================== */

/**
 * A protocol is a const table of callbacks plus a user pointer, passed as the
 * last argument of each callback. Any callback may be NULL.
 *
 * A table with get_buffer set is a buffered protocol (asyncio's
 * BufferedProtocol): the transport reads straight into the memory get_buffer
 * returns and reports the byte count through buffer_updated; data_received is
 * then not used.
 */
typedef struct tapio_protocol {
    /** The transport is ready; called once, from the loop. */
    void (*connection_made)(tapio_transport *t, void *user);
    /** Bytes arrived. `data` is valid only during the call. */
    void (*data_received)(tapio_transport *t, const void *data, size_t len,
                          void *user);
    /**
     * The peer shut its write side. Return true to keep the transport open
     * (it stops reading; the protocol may still write), false to close it.
     * A NULL callback counts as returning false.
     */
    bool (*eof_received)(tapio_transport *t, void *user);
    /**
     * The connection is gone: 0 after close()/abort()/EOF, or a negative
     * errno. Called exactly once, from the loop; nothing is called after it.
     */
    void (*connection_lost)(tapio_transport *t, int err, void *user);
    /** The write buffer went over the high-water mark. */
    void (*pause_writing)(tapio_transport *t, void *user);
    /** The write buffer drained to the low-water mark or below. */
    void (*resume_writing)(tapio_transport *t, void *user);
    /**
     * Buffered protocol: return memory to read into and store its size in
     * *len (at least 1). `sizehint` is the size the transport would like, or
     * 0 for no preference. Returning NULL or a size of 0 is a fatal error.
     */
    void *(*get_buffer)(tapio_transport *t, size_t sizehint, size_t *len,
                        void *user);
    /** Buffered protocol: `nbytes` were written at the start of the buffer. */
    void (*buffer_updated)(tapio_transport *t, size_t nbytes, void *user);
} tapio_protocol;

/* Fatal protocol error reported through connection_lost by tapio_transport_fail(). */
#define TAPIO_EPROTOCOL (-EPROTO)

/* ======================================================================
 * Stream transports (TCP, Unix stream sockets; asyncio's Transport)
 *
 * A transport lives from creation until its connection_lost callback has run;
 * then the loop frees it. Hold a reference (tapio_transport_ref) to use the
 * pointer after that; every call on a closed transport is then harmless.
 * ====================================================================== */

/**
 * Queue bytes for sending; the caller may reuse `data` at once. Writes made
 * while the loop runs callbacks are coalesced: each transport sends what
 * they wrote with one writev when the callbacks are done, before the loop
 * polls again (in the same iteration; counted by get_write_buffer_size
 * until then), and early if holding them would take the buffer past the
 * high-water mark. Outside callbacks a write is tried at once when nothing
 * is queued. May call pause_writing before it returns. Returns 0, -ESHUTDOWN after write_eof(), or -EBUSY while a
 * sendfile runs. Data written after the transport closed is dropped, as
 * asyncio drops it.
 */
TAPIO_API int tapio_transport_write(tapio_transport *t, const void *data,
                                    size_t len);

/** Write several buffers with one writev (asyncio's writelines). */
TAPIO_API int tapio_transport_writev(tapio_transport *t,
                                     const struct iovec *iov, int iovcnt);

/**
 * Called once from the loop when a sendfile ends: `sent` bytes went out, and
 * err is 0 or a negative errno (-ECANCELED when the transport was aborted).
 * -EINVAL, -ESPIPE or -ENOSYS with nothing sent means sendfile(2) cannot
 * serve this file (a pipe, say): the caller may fall back to reading and
 * writing.
 */
typedef void (*tapio_sendfile_callback)(tapio_transport *t, size_t sent,
                                        int err, void *arg);

/**
 * Send `count` bytes of `file_fd` from `offset` (count 0: to the end of the
 * file) with zero-copy sendfile(2), after the bytes already buffered. The
 * file offset of file_fd is not used or moved. While it runs, write and
 * writev return -EBUSY; close and write_eof wait for it. Returns 0, -EBUSY if
 * one is already running, -ESHUTDOWN after write_eof, -EPIPE once closing.
 */
TAPIO_API int tapio_transport_sendfile(tapio_transport *t, int file_fd,
                                       off_t offset, size_t count,
                                       tapio_sendfile_callback cb, void *arg);

/**
 * Shut the write side once the buffer has drained. Idempotent; -ENOTSUP if
 * the transport cannot (see can_write_eof).
 */
TAPIO_API int tapio_transport_write_eof(tapio_transport *t);
TAPIO_API bool tapio_transport_can_write_eof(const tapio_transport *t);

/**
 * Stop reading, send what is buffered, then call connection_lost(0).
 * Idempotent.
 */
TAPIO_API void tapio_transport_close(tapio_transport *t);

/** Drop the buffer and call connection_lost(0) without waiting. */
TAPIO_API void tapio_transport_abort(tapio_transport *t);

/**
 * Close at once like abort, reporting `err` (a negative errno, for example
 * TAPIO_EPROTOCOL when a protocol callback failed) to connection_lost. The
 * loop's error handler is not called: the caller knows the error already.
 */
TAPIO_API void tapio_transport_fail(tapio_transport *t, int err);

TAPIO_API bool tapio_transport_is_closing(const tapio_transport *t);

/** Stop calling data_received until resume_reading. Idempotent. */
TAPIO_API void tapio_transport_pause_reading(tapio_transport *t);
TAPIO_API void tapio_transport_resume_reading(tapio_transport *t);
/** False when paused or closing (a TLS transport, as asyncio's, tells
 * only whether its protocol paused it). */
TAPIO_API bool tapio_transport_is_reading(const tapio_transport *t);

TAPIO_API size_t tapio_transport_get_write_buffer_size(const tapio_transport *t);

/**
 * Set the write watermarks. TAPIO_LIMIT_DEFAULT (any negative value) means
 * "not given", as None in asyncio: high defaults to the transport's default
 * (TAPIO_DEFAULT_HIGH_WATER; 512 KiB for TLS) or to 4 * low (saturated),
 * low to high / 4. Returns -EINVAL unless high >= low >= 0 (the limits then
 * stay). May call pause_writing.
 */
TAPIO_API int tapio_transport_set_write_buffer_limits(tapio_transport *t,
                                                      ssize_t high,
                                                      ssize_t low);
TAPIO_API void tapio_transport_get_write_buffer_limits(const tapio_transport *t,
                                                       size_t *low,
                                                       size_t *high);

/**
 * asyncio's check of set_write_buffer_limits(high, low) for values as a
 * binding received them, negative ones included: has_high/has_low false
 * means not given (None). Returns 0 when the call would be accepted, else
 * -EINVAL with *out_high and *out_low (either may be NULL) set to the
 * values asyncio's ValueError names ("high (%r) must be >= low (%r) must
 * be >= 0"). With neither given it returns 0 and both are 0.
 */
TAPIO_API int tapio_write_limits_check(bool has_high, ssize_t high,
                                       bool has_low, ssize_t low,
                                       ssize_t *out_high, ssize_t *out_low);

/** Switch to another protocol; the old one gets no further callbacks. */
TAPIO_API void tapio_transport_set_protocol(tapio_transport *t,
                                            const tapio_protocol *proto,
                                            void *user);
TAPIO_API const tapio_protocol *tapio_transport_get_protocol(
    const tapio_transport *t, void **user);

TAPIO_API tapio_loop *tapio_transport_loop(const tapio_transport *t);

/** Extra info: the socket fd (-1 once closed). */
TAPIO_API int tapio_transport_fd(const tapio_transport *t);
/**
 * Extra info: the peer's / local address, as they were when the transport
 * was made (still given after it closed, as asyncio gives them). -ENOTCONN
 * if the socket had none (an unnamed Unix socket has an empty address).
 */
TAPIO_API int tapio_transport_peername(const tapio_transport *t,
                                       struct sockaddr_storage *addr,
                                       socklen_t *len);
TAPIO_API int tapio_transport_sockname(const tapio_transport *t,
                                       struct sockaddr_storage *addr,
                                       socklen_t *len);

TAPIO_API void tapio_transport_ref(tapio_transport *t);
TAPIO_API void tapio_transport_unref(tapio_transport *t);

/**
 * Wrap a connected stream socket (asyncio's connect_accepted_socket and
 * "Connecting Existing Sockets"). The transport owns `fd` from then on, even
 * when the call fails. connection_made runs on the next iteration.
 */
TAPIO_API int tapio_transport_from_fd(tapio_loop *loop, int fd,
                                      const tapio_protocol *proto, void *user,
                                      tapio_transport **out);

/* ======================================================================
 * TLS (asyncio's SSL transport: ssl=, start_tls)
 *
 * A TLS transport is a tapio_transport whose bytes are plaintext: it is a
 * layer over a stream transport carrying the TLS records, and every
 * tapio_transport_* call works on it as asyncio's SSL transport behaves:
 * - connection_made runs once the handshake has completed;
 * - close() sends close_notify after the buffered data and waits for the
 *   peer's (up to the shutdown timeout), then closes the socket; receiving
 *   the peer's close_notify calls eof_received (its answer is ignored) and
 *   closes the same way;
 * - write_eof() returns -ENOTSUP (TLS has no half-close) and sendfile
 *   -ENOTSUP (the bytes must be encrypted: read and write instead);
 * - write flow control counts plaintext not yet encrypted plus TLS records
 *   not yet handed to the socket (defaults: high 512 KiB, low high / 4;
 *   pause_writing at or above high); records stay inside the layer while
 *   the socket's own buffer is over its limits, so they count too;
 * - pause_reading stops data_received; the layer stops reading the socket
 *   once 256 KiB of records wait undecrypted.
 * Errors reach connection_lost (and the handshake callback) as
 * TAPIO_ETLS (a TLS protocol error), TAPIO_ETLS_VERIFY (the peer's
 * certificate was refused), -ECONNABORTED (the handshake timed out),
 * -ETIMEDOUT (the shutdown timed out), -ECONNRESET (the peer closed during
 * the handshake) or the socket's errno; tapio_tls_error() describes the
 * last one.
 * ====================================================================== */

#define TAPIO_ETLS (-3500)
#define TAPIO_ETLS_VERIFY (-3501)

/** asyncio's defaults, in seconds. */
#define TAPIO_TLS_HANDSHAKE_TIMEOUT 60.0
#define TAPIO_TLS_SHUTDOWN_TIMEOUT 30.0

/** A TLS configuration (an OpenSSL SSL_CTX), shared by many connections. */
typedef struct tapio_tls_context tapio_tls_context;

typedef struct tapio_tls_context_options {
    bool server;               /* accept connections (else connect) */
    const char *cert_file;     /* PEM certificate chain; required for servers */
    const char *key_file;      /* PEM private key (NULL: in cert_file) */
    const char *ca_file;       /* trusted CAs (PEM); with ca_path NULL too, */
    const char *ca_path;       /* the system's store is trusted */
    bool no_verify;            /* client: accept any server (insecure) */
    bool no_hostname_check;    /* client: verify the chain only */
    bool require_client_cert;  /* server: ask for one and refuse without */
    const char *alpn;          /* comma-separated protocols, "h2,http/1.1" */
    const char *ciphers;       /* OpenSSL cipher list for TLS <= 1.2 */
} tapio_tls_context_options;

/**
 * Make a context: TLS 1.2 or later, renegotiation refused, a client
 * verifying the server's certificate and name by default. Returns 0 or a
 * negative error (TAPIO_ETLS with a file that cannot be loaded, -ENOMEM).
 * The context is reference counted; connections hold their own reference.
 */
TAPIO_API int tapio_tls_context_new(const tapio_tls_context_options *opts,
                                    tapio_tls_context **out);
TAPIO_API void tapio_tls_context_ref(tapio_tls_context *ctx);
TAPIO_API void tapio_tls_context_unref(tapio_tls_context *ctx);
/** The OpenSSL SSL_CTX, for settings the options do not cover. */
TAPIO_API void *tapio_tls_context_ssl_ctx(tapio_tls_context *ctx);

/**
 * A TLS engine: the cryptography behind the layer, as an SSL object with
 * memory buffers for the records in and out. libtapio's own engine is
 * OpenSSL (tapio_tls_options.context); a binding may bring another (the
 * Python package drives the user's ssl.SSLContext through it). Results:
 * -EAGAIN means "more records from the peer are needed", other negative
 * values are errors (TAPIO_ETLS, TAPIO_ETLS_VERIFY, ...).
 */
typedef struct tapio_tls_engine {
    /** Advance the handshake: 0 once complete, -EAGAIN, or an error. */
    int (*handshake)(void *state);
    /** Decrypt into buf: > 0 bytes, 0 after the peer's close_notify,
     *  -EAGAIN, or an error. */
    ssize_t (*read)(void *state, void *buf, size_t len);
    /** Encrypt from buf: bytes taken (> 0), -EAGAIN, or an error. */
    ssize_t (*write)(void *state, const void *buf, size_t len);
    /** Send close_notify and see the peer's: 0 when done, -EAGAIN, or an
     *  error. */
    int (*shutdown)(void *state);
    /** Records received from the peer: 0 or an error. */
    int (*feed)(void *state, const void *data, size_t len);
    /** Bytes of records fed and not yet decrypted. */
    size_t (*pending_in)(void *state);
    /** Records waiting to be sent: their bytes and count (0: none). */
    size_t (*peek_out)(void *state, const void **data);
    /** Drop `n` bytes from the front of what peek_out gave. */
    void (*consume_out)(void *state, size_t n);
    /** A description of the last error, or NULL. */
    const char *(*error)(void *state);
    /** Free the state, once: when the TLS transport's connection_lost (or
     *  its failed handshake's callback) has run, or the loop closed, even
     *  if references to the transport remain (its context goes with it). */
    void (*destroy)(void *state);
} tapio_tls_engine;

typedef struct tapio_tls_options {
    tapio_tls_context *context;   /* OpenSSL: the configuration, or */
    const tapio_tls_engine *engine; /* another engine and its state */
    void *engine_state;           /* (destroyed by the transport, even when
                                     the call fails) */
    bool server_side;             /* with context: accept, else connect */
    const char *server_hostname;  /* client: SNI and the name verified */
    double handshake_timeout;     /* seconds; 0: TAPIO_TLS_HANDSHAKE_TIMEOUT */
    double shutdown_timeout;      /* seconds; 0: TAPIO_TLS_SHUTDOWN_TIMEOUT */
    bool skip_connection_made;    /* the protocol already saw the connection
                                     (asyncio's start_tls does not call
                                     connection_made again) */
} tapio_tls_options;

/**
 * Called once when the handshake ends: err 0 after the protocol's
 * connection_made ran, or a negative error; the transport is then closed
 * (the protocol gets no connection_lost) and `tls` is valid only during
 * this call.
 */
typedef void (*tapio_tls_handshake_callback)(tapio_transport *tls, int err,
                                             void *arg);

/**
 * Start TLS over the live socket transport `raw` (asyncio's start_tls),
 * which may itself be TLS (TLS through a TLS tunnel): the TLS transport
 * takes raw's protocol slot and a reference to it, and gives `proto`
 * plaintext. Bytes already read stay read; a live raw transport starts the
 * handshake on the next iteration and is read again then, even if it was
 * paused (asyncio's start_tls resumes it). Returns 0 and the TLS transport
 * in *out (valid until its connection_lost, or the handshake callback on
 * failure), or a negative error (-EINVAL when raw is closing or a pipe).
 */
TAPIO_API int tapio_tls_start(tapio_transport *raw,
                              const tapio_tls_options *opts,
                              const tapio_protocol *proto, void *user,
                              tapio_tls_handshake_callback cb, void *arg,
                              tapio_transport **out);

/** Whether t is a TLS transport. */
TAPIO_API bool tapio_transport_is_tls(const tapio_transport *t);
/** The stream transport under a TLS transport (NULL for others). */
TAPIO_API tapio_transport *tapio_tls_raw(const tapio_transport *t);
/** A description of the transport's last TLS error, or NULL (kept after
 *  connection_lost). */
TAPIO_API const char *tapio_tls_error(const tapio_transport *t);
/** The engine state (the binding's, for another engine); NULL once the
 *  engine was destroyed (after connection_lost). */
TAPIO_API void *tapio_tls_engine_state(const tapio_transport *t);
/* Extra info of the OpenSSL engine from the end of the handshake until
 * connection_lost has run (NULL otherwise): the cipher's name, the protocol
 * ("TLSv1.3"), the ALPN protocol chosen, the peer's certificate (an X509 *,
 * borrowed) and the SSL object (an SSL *). */
TAPIO_API const char *tapio_tls_cipher(const tapio_transport *t);
TAPIO_API const char *tapio_tls_version(const tapio_transport *t);
TAPIO_API const char *tapio_tls_alpn(const tapio_transport *t);
TAPIO_API void *tapio_tls_peer_certificate(const tapio_transport *t);
TAPIO_API void *tapio_tls_ssl(const tapio_transport *t);

/* ======================================================================
 * Pipes (loop.connect_read_pipe / connect_write_pipe)
 *
 * A pipe transport is a tapio_transport over one end of a pipe, FIFO,
 * socket or character device (a terminal); a regular file is refused with
 * -EINVAL, as asyncio refuses it. The transport owns `fd` from then on, even
 * when the call fails, and makes it non-blocking.
 *
 * Read side: data_received, then at EOF eof_received (its answer is ignored,
 * as asyncio ignores it for pipes) and connection_lost(0); write and
 * write_eof return -ENOTSUP.
 * Write side: write/writev with flow control; write_eof closes it; the
 * reader going away closes it with connection_lost(-EPIPE) if data was
 * still queued, (0) otherwise. Writing to a pipe whose reader left raises
 * SIGPIPE unless the process ignores it, as Python does.
 * ====================================================================== */

TAPIO_API int tapio_pipe_read(tapio_loop *loop, int fd,
                              const tapio_protocol *proto, void *user,
                              tapio_transport **out);
/**
 * As tapio_pipe_read, for a pipe a busy writer fills (a child's output):
 * what arrives is moved with splice(2) into a socket pair the transport
 * reads, so that the reader's copy runs while the writer writes (reading a
 * pipe makes the two take turns under the pipe's lock). The writer still
 * has its pipe, and back-pressure still reaches it. Where splice cannot
 * serve (not a pipe, not Linux) it is tapio_pipe_read.
 */
TAPIO_API int tapio_pipe_read_relayed(tapio_loop *loop, int fd,
                                      const tapio_protocol *proto, void *user,
                                      tapio_transport **out);
TAPIO_API int tapio_pipe_write(tapio_loop *loop, int fd,
                               const tapio_protocol *proto, void *user,
                               tapio_transport **out);

/* ======================================================================
 * Subprocesses (loop.subprocess_exec; asyncio's SubprocessTransport and
 * SubprocessProtocol)
 *
 * Events come in asyncio's order: connection_made once the pipes are
 * connected; pipe_data_received(fd, ...) and pipe_connection_lost(fd, err)
 * per pipe; process_exited once the child has exited (observed with a pidfd,
 * or a waiting thread where pidfds are missing; the child is always reaped);
 * and connection_lost only after the process exited and every pipe closed.
 * Closing the loop kills and reaps children still running, without
 * callbacks.
 * ====================================================================== */

typedef struct tapio_process tapio_process;

typedef struct tapio_subprocess_protocol {
    void (*connection_made)(tapio_process *p, void *user);
    /** Output of the child's stdout (fd 1) or stderr (fd 2). */
    void (*pipe_data_received)(tapio_process *p, int fd, const void *data,
                               size_t len, void *user);
    /** A pipe closed: 0 at its end, or a negative errno. */
    void (*pipe_connection_lost)(tapio_process *p, int fd, int err,
                                 void *user);
    void (*process_exited)(tapio_process *p, void *user);
    void (*connection_lost)(tapio_process *p, int err, void *user);
    /** Flow control of the child's stdin pipe. */
    void (*pause_writing)(tapio_process *p, void *user);
    void (*resume_writing)(tapio_process *p, void *user);
} tapio_subprocess_protocol;

/* What each of the child's stdin, stdout and stderr is; any value >= 0 is
 * an fd of the parent that the child gets in that place. */
#define TAPIO_STDIO_PIPE (-1)    /* a pipe to the parent */
#define TAPIO_STDIO_INHERIT (-2) /* the parent's own */
#define TAPIO_STDIO_DEVNULL (-3) /* /dev/null */
#define TAPIO_STDIO_STDOUT (-4)  /* stderr only: into the stdout pipe/fd */

typedef struct tapio_process_options {
    const char *file;        /* program; without a '/', searched in PATH */
    char *const *argv;       /* NULL-terminated; argv[0] is the name */
    const char *shell;       /* instead of file and argv: /bin/sh -c shell
                                (asyncio's subprocess_shell) */
    char *const *env;        /* NULL-terminated, or NULL to inherit */
    const char *cwd;         /* or NULL */
    int stdio[3];            /* TAPIO_STDIO_* or an fd; 0 means PIPE */
    bool new_session;        /* setsid() in the child */
} tapio_process_options;

/**
 * Spawn a child with every other descriptor closed on exec. A program that
 * cannot be executed fails the call with its errno (-ENOENT for a missing
 * one), and no callback runs.
 */
TAPIO_API int tapio_process_spawn(tapio_loop *loop,
                                  const tapio_process_options *opts,
                                  const tapio_subprocess_protocol *proto,
                                  void *user, tapio_process **out);

/**
 * Take over a child another part of the program spawned (a binding's own
 * spawner): watch `pid` for its exit and connect the given pipe ends (-1 for
 * none): stdin_fd is written to, stdout_fd and stderr_fd are read. The
 * process owns the fds from then on, even when the call fails.
 */
TAPIO_API int tapio_process_adopt(tapio_loop *loop, pid_t pid, int stdin_fd,
                                  int stdout_fd, int stderr_fd,
                                  const tapio_subprocess_protocol *proto,
                                  void *user, tapio_process **out);

TAPIO_API pid_t tapio_process_pid(const tapio_process *p);
/** The pipe transport of the child's fd 0, 1 or 2, or NULL. */
TAPIO_API tapio_transport *tapio_process_pipe(const tapio_process *p, int fd);
/**
 * True once the child exited; *code is its exit status, or minus the signal
 * number that killed it (asyncio's returncode).
 */
TAPIO_API bool tapio_process_returncode(const tapio_process *p, int *code);
/** -ESRCH once the child has exited and been reaped. */
TAPIO_API int tapio_process_send_signal(tapio_process *p, int signum);
TAPIO_API int tapio_process_terminate(tapio_process *p);
TAPIO_API int tapio_process_kill(tapio_process *p);
/**
 * Close the pipes and, if the child still runs, kill it (asyncio's close);
 * connection_lost follows once it has exited.
 */
TAPIO_API void tapio_process_close(tapio_process *p);
TAPIO_API bool tapio_process_is_closing(const tapio_process *p);
TAPIO_API void tapio_process_ref(tapio_process *p);
TAPIO_API void tapio_process_unref(tapio_process *p);

/* ======================================================================
 * Connections (loop.create_connection / create_unix_connection)
 * ====================================================================== */

typedef struct tapio_connect_options {
    int family;              /* AF_UNSPEC (default), AF_INET or AF_INET6 */
    const char *local_host;  /* bind here before connecting (NULL: no bind) */
    const char *local_port;  /* with local_host; NULL means port 0 */
    /* TLS: the callback gets the TLS transport once the handshake is done
     * (NULL: plain TCP). Copied; the context is referenced. */
    const tapio_tls_options *tls;
} tapio_connect_options;

/**
 * Called once when a connection attempt ends: with the transport (its
 * connection_made already ran) and err 0, or with NULL and a negative errno
 * (-ECANCELED after tapio_connect_cancel).
 */
typedef void (*tapio_connect_callback)(tapio_transport *t, int err, void *arg);

/**
 * Connect to host:port. The name is resolved on a worker thread (numeric
 * addresses without one); each resolved address is tried in turn until one
 * connects. `opts` may be NULL. If `req` is not NULL it receives a request
 * pointer valid until the callback runs, usable with tapio_connect_cancel.
 */
TAPIO_API int tapio_connect(tapio_loop *loop, const char *host,
                            const char *port,
                            const tapio_connect_options *opts,
                            const tapio_protocol *proto, void *user,
                            tapio_connect_callback cb, void *arg,
                            tapio_connect_req **req);

/**
 * Connect to a Unix stream socket. `path_len` 0 means strlen(path); a path
 * starting with '\0' names a Linux abstract socket.
 */
TAPIO_API int tapio_connect_unix(tapio_loop *loop, const char *path,
                                 size_t path_len, const tapio_protocol *proto,
                                 void *user, tapio_connect_callback cb,
                                 void *arg, tapio_connect_req **req);

/** Abandon a pending connect; its callback runs with -ECANCELED. */
TAPIO_API void tapio_connect_cancel(tapio_connect_req *req);

/* ======================================================================
 * Servers (loop.create_server / create_unix_server; asyncio's Server)
 * ====================================================================== */

/**
 * Called for each accepted connection: return the protocol for it and store
 * its user pointer in *user, or return NULL to refuse the connection.
 */
typedef const tapio_protocol *(*tapio_protocol_factory)(tapio_server *server,
                                                        void *arg,
                                                        void **user);

typedef struct tapio_server_options {
    int family;            /* AF_UNSPEC (default), AF_INET or AF_INET6 */
    int backlog;           /* 0 means asyncio's 100 */
    bool no_reuse_address; /* SO_REUSEADDR is on unless this is set */
    bool reuse_port;       /* SO_REUSEPORT */
    bool no_start_serving; /* create without accepting (start_serving=False) */
    double accept_retry_delay; /* back-off after EMFILE etc.; 0 means 1 s */
    /* TLS: each connection is a TLS transport and its protocol's
     * connection_made waits for the handshake; a connection whose
     * handshake fails is closed quietly, as in asyncio (NULL: plain).
     * Copied; the context is referenced. Needs tls->context. */
    const tapio_tls_options *tls;
} tapio_server_options;

/**
 * Listen on every address of each host in `hosts` (a NULL-terminated list;
 * NULL or an empty list, or a host of "" means all interfaces, IPv4 and IPv6)
 * at `port` ("0" picks a free port, the same one for every socket when it
 * can). IPv6 sockets are IPV6_V6ONLY. `opts` may be NULL.
 */
TAPIO_API int tapio_server_listen(tapio_loop *loop, const char *const *hosts,
                                  const char *port,
                                  const tapio_server_options *opts,
                                  tapio_protocol_factory factory, void *arg,
                                  tapio_server **out);

/**
 * Listen on a Unix stream socket. A stale socket file at `path` is removed
 * first. `path_len` 0 means strlen(path); a leading '\0' names a Linux
 * abstract socket.
 */
TAPIO_API int tapio_server_listen_unix(tapio_loop *loop, const char *path,
                                       size_t path_len,
                                       const tapio_server_options *opts,
                                       tapio_protocol_factory factory,
                                       void *arg, tapio_server **out);

/**
 * Serve connections on sockets the caller made and bound. The server takes
 * ownership of the fds (they are put into listening mode).
 */
TAPIO_API int tapio_server_from_fds(tapio_loop *loop, const int *fds,
                                    size_t nfds,
                                    const tapio_server_options *opts,
                                    tapio_protocol_factory factory, void *arg,
                                    tapio_server **out);

TAPIO_API int tapio_server_start_serving(tapio_server *s);
TAPIO_API void tapio_server_stop_serving(tapio_server *s);
TAPIO_API bool tapio_server_is_serving(const tapio_server *s);

/** Number of listening sockets; fills up to `n` of their fds into `fds`. */
TAPIO_API size_t tapio_server_sockets(const tapio_server *s, int *fds, size_t n);

/** The port of the first listening socket (0 for Unix servers). */
TAPIO_API int tapio_server_port(const tapio_server *s);

/**
 * Stop listening and close the listening sockets (a Unix socket file the
 * server created is removed). Connections already accepted stay open. The
 * server is freed once it is closed and all its connections are gone; until
 * then `on_closed` (may be NULL) waits, and it runs once from the loop
 * (asyncio's wait_closed): right after the last connection's connection_lost
 * returns, in the same iteration (after a TLS connection's, in the next), or
 * in the next iteration when no connection was left at close. The pointer must not be used after
 * on_closed.
 */
TAPIO_API void tapio_server_close(tapio_server *s, tapio_callback on_closed,
                                  void *arg);

TAPIO_API tapio_loop *tapio_server_loop(const tapio_server *s);

/* ======================================================================
 * Datagram transports (UDP, Unix datagram sockets; asyncio's
 * DatagramTransport and DatagramProtocol)
 *
 * Lifetime, references and close/abort are as for stream transports.
 * ====================================================================== */

typedef struct tapio_datagram tapio_datagram;

typedef struct tapio_datagram_protocol {
    void (*connection_made)(tapio_datagram *d, void *user);
    /**
     * A datagram arrived (possibly of 0 bytes) from `addr`. `data` and `addr`
     * are valid only during the call; addrlen is 0 when the sender has no
     * address (an unbound Unix datagram socket).
     */
    void (*datagram_received)(tapio_datagram *d, const void *data, size_t len,
                              const struct sockaddr *addr, socklen_t addrlen,
                              void *user);
    /**
     * A send or receive failed with a negative errno (ECONNREFUSED on a
     * connected socket after the peer's port proved closed, say). The
     * endpoint stays open.
     */
    void (*error_received)(tapio_datagram *d, int err, void *user);
    void (*connection_lost)(tapio_datagram *d, int err, void *user);
    void (*pause_writing)(tapio_datagram *d, void *user);
    void (*resume_writing)(tapio_datagram *d, void *user);
} tapio_datagram_protocol;

typedef struct tapio_datagram_options {
    int family;              /* AF_UNSPEC, AF_INET, AF_INET6 or AF_UNIX */
    /* Inet: bind to local_host:local_port and/or connect to remote_host:
     * remote_port (names resolved with getaddrinfo in the call). Unix: bind
     * to local_host and/or connect to remote_host as paths (a leading '\0'
     * needs the *_len field; 0 means strlen); a stale socket file at
     * local_host is removed first, as asyncio does. */
    const char *local_host, *local_port;
    const char *remote_host, *remote_port;
    size_t local_len, remote_len;
    bool reuse_port;         /* SO_REUSEPORT */
    bool allow_broadcast;    /* SO_BROADCAST; the remote address is then
                                a default destination, not connected */
} tapio_datagram_options;

/**
 * Open a datagram endpoint (asyncio's create_datagram_endpoint): for each
 * address family the names resolve to, a socket is made, bound and connected
 * as asked, until one works. connection_made runs on the next iteration.
 */
TAPIO_API int tapio_datagram_open(tapio_loop *loop,
                                  const tapio_datagram_options *opts,
                                  const tapio_datagram_protocol *proto,
                                  void *user, tapio_datagram **out);

/**
 * Wrap a datagram socket the caller made. `remote` (may be NULL) is the
 * default destination (a connected socket's peer when NULL); sending
 * elsewhere is refused with -EISCONN. The endpoint owns `fd` from then on,
 * even when the call fails.
 */
TAPIO_API int tapio_datagram_from_fd(tapio_loop *loop, int fd,
                                     const struct sockaddr *remote,
                                     socklen_t remote_len,
                                     const tapio_datagram_protocol *proto,
                                     void *user, tapio_datagram **out);

/**
 * Send one datagram (0 bytes allowed) to `addr`, or to the remote address
 * when addr is NULL. Sent at once when nothing is queued and the socket
 * takes it; otherwise queued (a copy) and sent in order when the socket is
 * writable, counted in the write buffer size for flow control. A send error
 * goes to error_received (from inside this call when the immediate send
 * fails, as asyncio does). Returns 0, -EDESTADDRREQ without any address,
 * -EISCONN for an address other than the remote one, -EBADF once
 * connection_lost is due (while close() waits for the queue, datagrams are
 * still queued, as in asyncio).
 */
TAPIO_API int tapio_datagram_sendto(tapio_datagram *d, const void *data,
                                    size_t len, const struct sockaddr *addr,
                                    socklen_t addrlen);

/** Stop receiving, send what is queued, then connection_lost(0). */
TAPIO_API void tapio_datagram_close(tapio_datagram *d);
/** Drop the queue and call connection_lost(0) without waiting. */
TAPIO_API void tapio_datagram_abort(tapio_datagram *d);
TAPIO_API bool tapio_datagram_is_closing(const tapio_datagram *d);
/** Bytes of queued datagrams: their payloads, plus the overhead below for
 *  each. */
TAPIO_API size_t tapio_datagram_get_write_buffer_size(const tapio_datagram *d);
/**
 * Count `bytes` more for each queued datagram in the write-buffer size, and
 * so in flow control (default 0; asyncio from Python 3.13 on counts 8, a UDP
 * header). -EBUSY while datagrams are queued.
 */
TAPIO_API int tapio_datagram_set_queued_overhead(tapio_datagram *d,
                                                 size_t bytes);
/** As tapio_transport_set_write_buffer_limits. */
TAPIO_API int tapio_datagram_set_write_buffer_limits(tapio_datagram *d,
                                                     ssize_t high,
                                                     ssize_t low);
TAPIO_API void tapio_datagram_get_write_buffer_limits(const tapio_datagram *d,
                                                      size_t *low,
                                                      size_t *high);
TAPIO_API void tapio_datagram_set_protocol(tapio_datagram *d,
                                           const tapio_datagram_protocol *proto,
                                           void *user);
TAPIO_API tapio_loop *tapio_datagram_loop(const tapio_datagram *d);
/** The socket fd (-1 once closed). */
TAPIO_API int tapio_datagram_fd(const tapio_datagram *d);
/**
 * The local address, and the connected peer's (-ENOTCONN when the socket is
 * not connected, with allow_broadcast for one), as of creation.
 */
TAPIO_API int tapio_datagram_sockname(const tapio_datagram *d,
                                      struct sockaddr_storage *addr,
                                      socklen_t *len);
TAPIO_API int tapio_datagram_peername(const tapio_datagram *d,
                                      struct sockaddr_storage *addr,
                                      socklen_t *len);
TAPIO_API void tapio_datagram_ref(tapio_datagram *d);
TAPIO_API void tapio_datagram_unref(tapio_datagram *d);

#ifdef __cplusplus
}
#endif

#endif /* TAPIO_H */
