/**
 * @file tapio.h
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
 *   - Everything except tapio_call_soon_threadsafe() and the tapio_waker
 *     calls is called on the loop's thread.
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

/** @{ */
/**
 * The version, defined here only: CMake (project version, tapio.pc, the
 * shared library's soname), the Python package (`tapio.__version__`, the
 * wheel's metadata) and the build backend all read these three lines.
 */
#define TAPIO_VERSION_MAJOR 0
#define TAPIO_VERSION_MINOR 1
#define TAPIO_VERSION_PATCH 0
/** @} */

#define TAPIO__STR(x) #x
#define TAPIO__XSTR(x) TAPIO__STR(x)
/** The version these headers declare, as "MAJOR.MINOR.PATCH". */
#define TAPIO_VERSION                                                   \
    TAPIO__XSTR(TAPIO_VERSION_MAJOR) "." TAPIO__XSTR(TAPIO_VERSION_MINOR) \
    "." TAPIO__XSTR(TAPIO_VERSION_PATCH)

/** asyncio's defaults for write flow control: a stream, pipe or datagram
 * transport's high-water mark (a TLS transport's is 512 KiB, as asyncio's
 * SSL transports); low defaults to high / 4. */
#define TAPIO_DEFAULT_HIGH_WATER (64 * 1024)
/** A write-buffer limit not given (None in asyncio): the transport kind's
 * default. Any negative value means the same. */
#define TAPIO_LIMIT_DEFAULT ((ssize_t)-1)

/** An event loop (asyncio's event loop): tapio_loop_new() makes one. */
typedef struct tapio_loop tapio_loop;
/** A scheduled callback (asyncio's Handle or TimerHandle). */
typedef struct tapio_handle tapio_handle;
/** A stream, pipe or TLS transport (asyncio's Transport). */
typedef struct tapio_transport tapio_transport;
/** A listening server (asyncio's Server). */
typedef struct tapio_server tapio_server;
/** A pending outgoing connection, for tapio_connect_cancel(). */
typedef struct tapio_connect_req tapio_connect_req;

/**
 * The version of the libtapio this program runs with, as "MAJOR.MINOR.PATCH":
 * compare it with TAPIO_VERSION (the headers it was compiled with) to detect
 * a shared library other than the one the program was built against.
 */
TAPIO_API const char *tapio_version(void);

/** Name of a (negative) error code returned by tapio, e.g. "Connection refused". */
TAPIO_API const char *tapio_strerror(int err);

/**
 * Name resolution failures are getaddrinfo's EAI_* codes (negative in glibc)
 * moved below TAPIO_EAI_BASE, so they never collide with a negative errno:
 * TAPIO_ERR_EAI(EAI_NONAME). tapio_strerror names them as gai_strerror does.
 */
#define TAPIO_EAI_BASE (-3000)
/** The tapio error code of getaddrinfo's `eai` (an EAI_* code). */
#define TAPIO_ERR_EAI(eai) (TAPIO_EAI_BASE + (eai))
/** @{ */
/** True for a name resolution failure; tapio_error_eai gives its EAI_* code. */
TAPIO_API bool tapio_error_is_eai(int err);
TAPIO_API int tapio_error_eai(int err);
/** @} */

/**
 * @defgroup loop Event loop
 * @{
 */

/** A loop callback: call_soon, call_later, call_at, call_soon_threadsafe. */
typedef void (*tapio_callback)(tapio_loop *loop, void *arg);

/**
 * Create a loop. The I/O backend is io_uring, unless the environment
 * variable TAPIO_BACKEND names another: "epoll" or "poll". epoll serves
 * instead when the kernel lacks or forbids io_uring, or (unless
 * TAPIO_BACKEND=io_uring) lacks deferred completion work (Linux 6.1).
 * tapio_loop_backend() tells which runs. Returns 0 and stores the loop in
 * *out.
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

/** Whether the loop is running (inside run_forever or run_once). */
TAPIO_API bool tapio_loop_is_running(const tapio_loop *loop);

/** @{ */
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
/** @} */

/** The name of the loop's I/O backend: "epoll", "poll" or "io_uring". */
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

/** @} */

/**
 * @defgroup callbacks Callbacks and timers
 * Callbacks and timers (asyncio's Handle and TimerHandle)
 *
 * call_soon/call_later/call_at return a handle owned by the loop: it is valid
 * until its callback has run or it was cancelled, then the loop releases it.
 * To keep using it beyond that point, take a reference with
 * tapio_handle_ref() and drop it with tapio_handle_unref(); a referenced
 * handle stays valid even after its loop is closed.
 * @{
 */

/** Run cb(loop, arg) on the next iteration, in FIFO order. NULL on -ENOMEM. */
TAPIO_API tapio_handle *tapio_call_soon(tapio_loop *loop, tapio_callback cb,
                                        void *arg);

/**
 * Run cb after `delay` seconds (negative counts as 0; NaN is due at once,
 * as in asyncio). NULL on -ENOMEM.
 */
TAPIO_API tapio_handle *tapio_call_later(tapio_loop *loop, double delay,
                                         tapio_callback cb, void *arg);

/**
 * Run cb at loop time `when` (NaN: at once). Equal deadlines run in
 * scheduling order.
 */
TAPIO_API tapio_handle *tapio_call_at(tapio_loop *loop, double when,
                                      tapio_callback cb, void *arg);

/**
 * Schedule cb from any thread and wake the loop if it sleeps. Calls keep
 * one FIFO order with call_soon: a threadsafe call that returned before a
 * call_soon runs before that call_soon's callback. Returns 0 or -ENOMEM, or
 * -ESHUTDOWN once tapio_loop_close has begun; calls still queued then are
 * dropped. The loop pointer must stay valid for the whole call: a thread
 * that may call while another closes the loop uses a tapio_waker instead.
 */
TAPIO_API int tapio_call_soon_threadsafe(tapio_loop *loop, tapio_callback cb,
                                         void *arg);

/** @{ */
/**
 * A thread's handle for scheduling calls on a loop that it may outlive:
 * tapio_waker_call is tapio_call_soon_threadsafe, and keeps working
 * (returning -ESHUTDOWN) while and after the loop closes and is freed.
 * Make it on the loop's thread (it cannot fail: it shares the loop's
 * wakeup state); use and free it from any thread.
 */
typedef struct tapio_waker tapio_waker;
TAPIO_API tapio_waker *tapio_waker_new(tapio_loop *loop);
TAPIO_API int tapio_waker_call(tapio_waker *waker, tapio_callback cb,
                               void *arg);
/** @} */
/** Release the waker (any thread); NULL is ignored. */
TAPIO_API void tapio_waker_free(tapio_waker *waker);

/**
 * Cancel: the callback will not run. Returns true if this call stopped a
 * pending callback, false if it had already run or been cancelled (or the
 * loop was closed). Harmless at any time while the handle is valid.
 */
TAPIO_API bool tapio_handle_cancel(tapio_handle *h);
/** Whether the handle was cancelled. */
TAPIO_API bool tapio_handle_cancelled(const tapio_handle *h);
/** The deadline of a timer handle in loop time; 0 for call_soon handles. */
TAPIO_API double tapio_handle_when(const tapio_handle *h);
/** Take a reference that keeps the handle valid (see above). */
TAPIO_API void tapio_handle_ref(tapio_handle *h);
/** Drop a reference taken with tapio_handle_ref(). */
TAPIO_API void tapio_handle_unref(tapio_handle *h);

/** @} */

/**
 * @defgroup watchers File descriptor watchers
 * File descriptor watchers (loop.add_reader / add_writer)
 * @{
 */

/** An fd watcher's callback (add_reader, add_writer). */
typedef void (*tapio_fd_callback)(tapio_loop *loop, int fd, void *arg);

/**
 * Call cb whenever fd is readable (level-triggered), replacing an earlier
 * reader of the same fd. -EBUSY if a transport owns the fd, -EBADF for an
 * invalid fd, -EPERM for a regular file (not pollable).
 */
TAPIO_API int tapio_add_reader(tapio_loop *loop, int fd, tapio_fd_callback cb,
                               void *arg);
/** As tapio_add_reader, for fd being writable. */
TAPIO_API int tapio_add_writer(tapio_loop *loop, int fd, tapio_fd_callback cb,
                               void *arg);
/** Returns true if a watcher was removed. */
TAPIO_API bool tapio_remove_reader(tapio_loop *loop, int fd);
/** As tapio_remove_reader, for the writer. */
TAPIO_API bool tapio_remove_writer(tapio_loop *loop, int fd);
/** Whether a transport, server or other libtapio object (not an fd watcher)
 *  has fd registered with the loop, or fd is a live alias of such an fd
 *  (tapio_fd_dup_alias), so that add_reader/add_writer refuse it. */
TAPIO_API bool tapio_fd_is_owned(const tapio_loop *loop, int fd);
/** The fd a transport, server or endpoint owns that fd is or stands for
 *  (fd itself, or the duplicate of a live alias), or -1. */
TAPIO_API int tapio_fd_owner(const tapio_loop *loop, int fd);
/**
 * A duplicate of fd (close-on-exec) to hand to a *_from_fd call, for a
 * caller that keeps fd open (asyncio's sock= arguments: the user's socket
 * object keeps its number). The transport then works on its own fd: closing
 * fd, or its number coming back for another file, cannot make the
 * transport read, write or close that other file. While fd still refers
 * to the same socket as the owned duplicate, it counts as owned
 * (tapio_fd_is_owned, tapio_fd_owner, add_reader/add_writer's -EBUSY);
 * the check compares the files (fstat), so it ends by itself when fd is
 * closed or reused. Returns the duplicate or a negative errno.
 */
TAPIO_API int tapio_fd_dup_alias(tapio_loop *loop, int fd);

/** @} */

/**
 * @defgroup signals Signals
 * Signals (loop.add_signal_handler): the callback runs as a loop callback,
 * never inside the signal handler. One loop per signal number in a process.
 * @{
 */

/** A signal handler's callback, run from the loop. */
typedef void (*tapio_signal_callback)(tapio_loop *loop, int signum, void *arg);

/** -EINVAL for SIGKILL/SIGSTOP or an invalid number, -EBUSY if another loop has it. */
TAPIO_API int tapio_add_signal_handler(tapio_loop *loop, int signum,
                                       tapio_signal_callback cb, void *arg);
/** Restores the default disposition. Returns true if a handler was removed. */
TAPIO_API bool tapio_remove_signal_handler(tapio_loop *loop, int signum);

/** @} */

/**
 * @defgroup protocols Protocols
 * @{
 */

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
     * 0 for no preference. Returning NULL or a size of 0 reads nothing and is
 * a fatal error (unless the callback already closed or failed the
 * transport).
     */
    void *(*get_buffer)(tapio_transport *t, size_t sizehint, size_t *len,
                        void *user);
    /** Buffered protocol: `nbytes` were written at the start of the buffer. */
    void (*buffer_updated)(tapio_transport *t, size_t nbytes, void *user);
} tapio_protocol;

/** Fatal protocol error reported through connection_lost by tapio_transport_fail(). */
#define TAPIO_EPROTOCOL (-EPROTO)

/** @} */

/**
 * @defgroup transports Stream transports
 * Stream transports (TCP, Unix stream sockets; asyncio's Transport)
 *
 * A transport lives from creation until its connection_lost callback has run;
 * then the loop frees it. Hold a reference (tapio_transport_ref) to use the
 * pointer after that; every call on a closed transport is then harmless.
 * @{
 */

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
 * err is 0 or a negative errno (-ECANCELED when the transport was aborted
 * or the sendfile cancelled).
 * -EINVAL, -ESPIPE or -ENOSYS with nothing sent means sendfile(2) cannot
 * serve this file (a pipe, say): the caller may fall back to reading and
 * writing.
 */
typedef void (*tapio_sendfile_callback)(tapio_transport *t, size_t sent,
                                        int err, void *arg);

/**
 * Send `count` bytes of `file_fd` from `offset` (count 0: to the end of the
 * file) with zero-copy sendfile(2), after the bytes already buffered. The
 * file offset of file_fd is not used or moved, and the transport sends from
 * its own duplicate of the fd: closing or reusing file_fd meanwhile changes
 * nothing. While it runs, write and writev return -EBUSY; close and
 * write_eof wait for it. Returns 0, -EBUSY if one is already running,
 * -ESHUTDOWN after write_eof, -EPIPE once closing.
 */
TAPIO_API int tapio_transport_sendfile(tapio_transport *t, int file_fd,
                                       off_t offset, size_t count,
                                       tapio_sendfile_callback cb, void *arg);

/**
 * Stop the running sendfile after the bytes sent so far (asyncio's cancelled
 * loop.sendfile); writes are accepted again at once, and what waited for it
 * (close, write_eof) goes on. Its callback still runs from the loop, with
 * -ECANCELED. Returns the bytes sent, or -ENOENT when none is running.
 */
TAPIO_API ssize_t tapio_transport_sendfile_cancel(tapio_transport *t);

/**
 * Shut the write side once the buffer has drained. Idempotent; -ENOTSUP if
 * the transport cannot (see can_write_eof).
 */
TAPIO_API int tapio_transport_write_eof(tapio_transport *t);
/** Whether tapio_transport_write_eof() can shut the write side. */
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
 * A TLS transport drops writes from then on but is closing only once its
 * connection is lost, as asyncio's.
 */
TAPIO_API void tapio_transport_fail(tapio_transport *t, int err);

/** True once the transport is closing or closed. */
TAPIO_API bool tapio_transport_is_closing(const tapio_transport *t);

/** Stop calling data_received until resume_reading. Idempotent. */
TAPIO_API void tapio_transport_pause_reading(tapio_transport *t);
/** Call data_received again after pause_reading. Idempotent. */
TAPIO_API void tapio_transport_resume_reading(tapio_transport *t);
/** False when paused or closing (a TLS transport, as asyncio's, tells
 * only whether its protocol paused it). */
TAPIO_API bool tapio_transport_is_reading(const tapio_transport *t);

/** Bytes buffered for writing. */
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
/** The write watermarks. */
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
/** The protocol, and its user pointer in *user (if not NULL). */
TAPIO_API const tapio_protocol *tapio_transport_get_protocol(
    const tapio_transport *t, void **user);

/** The loop the transport belongs to. */
TAPIO_API tapio_loop *tapio_transport_loop(const tapio_transport *t);

/** Extra info: the socket fd (-1 once closed). */
TAPIO_API int tapio_transport_fd(const tapio_transport *t);
/** @{ */
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
/** @} */

/** Take a reference that keeps the pointer valid (see above). */
TAPIO_API void tapio_transport_ref(tapio_transport *t);
/** Drop a reference taken with tapio_transport_ref(). */
TAPIO_API void tapio_transport_unref(tapio_transport *t);

/**
 * Wrap a connected stream socket (asyncio's connect_accepted_socket and
 * "Connecting Existing Sockets"). The transport owns `fd` from then on, even
 * when the call fails. connection_made runs on the next iteration.
 */
TAPIO_API int tapio_transport_from_fd(tapio_loop *loop, int fd,
                                      const tapio_protocol *proto, void *user,
                                      tapio_transport **out);

/** @} */

/**
 * @defgroup tls TLS
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
 *
 * Errors reach connection_lost (and the handshake callback) as
 * TAPIO_ETLS (a TLS protocol error), TAPIO_ETLS_VERIFY (the peer's
 * certificate was refused), -ECONNABORTED (the handshake timed out),
 * -ETIMEDOUT (the shutdown timed out), -ECONNRESET (the peer closed during
 * the handshake) or the socket's errno; tapio_tls_error() describes the
 * last one.
 * @{
 */

/** A TLS protocol error (connection_lost, handshake callbacks). */
#define TAPIO_ETLS (-3500)
/** The peer's certificate was refused. */
#define TAPIO_ETLS_VERIFY (-3501)

/** @{ */
/** asyncio's defaults, in seconds. */
#define TAPIO_TLS_HANDSHAKE_TIMEOUT 60.0 /**< the handshake's */
#define TAPIO_TLS_SHUTDOWN_TIMEOUT 30.0  /**< the shutdown's */
/** @} */

/** A TLS configuration (an OpenSSL SSL_CTX), shared by many connections. */
typedef struct tapio_tls_context tapio_tls_context;

/** What tapio_tls_context_new() makes a context with. */
typedef struct tapio_tls_context_options {
    bool server;               /**< accept connections (else connect) */
    const char *cert_file;     /**< PEM certificate chain; required for servers */
    const char *key_file;      /**< PEM private key (NULL: in cert_file) */
    const char *ca_file;       /**< trusted CAs (PEM); with ca_path NULL too, */
    const char *ca_path;       /**< the system's store is trusted */
    bool no_verify;            /**< client: accept any server (insecure) */
    bool no_hostname_check;    /**< client: verify the chain only */
    bool require_client_cert;  /**< server: ask for one and refuse without */
    const char *alpn;          /**< comma-separated protocols, "h2,http/1.1" */
    const char *ciphers;       /**< OpenSSL cipher list for TLS <= 1.2 */
} tapio_tls_context_options;

/**
 * Make a context: TLS 1.2 or later, renegotiation refused, a client
 * verifying the server's certificate and name by default. Returns 0 or a
 * negative error (TAPIO_ETLS with a file that cannot be loaded, -ENOMEM).
 * The context is reference counted; connections hold their own reference.
 */
TAPIO_API int tapio_tls_context_new(const tapio_tls_context_options *opts,
                                    tapio_tls_context **out);
/** Take a reference to the context. */
TAPIO_API void tapio_tls_context_ref(tapio_tls_context *ctx);
/** Drop a reference; the last one frees the context. */
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

/** How a connection uses TLS (tapio_tls_start, connect and server options). */
typedef struct tapio_tls_options {
    tapio_tls_context *context;   /**< OpenSSL: the configuration, or */
    const tapio_tls_engine *engine; /**< another engine and its state */
    void *engine_state;           /**< (destroyed by the transport, even when
                                     the call fails) */
    bool server_side;             /**< with context: accept, else connect */
    const char *server_hostname;  /**< client: SNI and the name verified */
    double handshake_timeout;     /**< seconds; 0: TAPIO_TLS_HANDSHAKE_TIMEOUT */
    double shutdown_timeout;      /**< seconds; 0: TAPIO_TLS_SHUTDOWN_TIMEOUT */
    bool skip_connection_made;    /**< the protocol already saw the connection
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
/** @{ */
/** Extra info of the OpenSSL engine from the end of the handshake until
 * connection_lost has run (NULL otherwise): the cipher's name, the protocol
 * ("TLSv1.3"), the ALPN protocol chosen, the peer's certificate (an X509 *,
 * borrowed) and the SSL object (an SSL *). */
TAPIO_API const char *tapio_tls_cipher(const tapio_transport *t);
TAPIO_API const char *tapio_tls_version(const tapio_transport *t);
TAPIO_API const char *tapio_tls_alpn(const tapio_transport *t);
TAPIO_API void *tapio_tls_peer_certificate(const tapio_transport *t);
TAPIO_API void *tapio_tls_ssl(const tapio_transport *t);
/** @} */

/** @} */

/**
 * @defgroup pipes Pipes
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
 *
 * Write side: write/writev with flow control; write_eof closes it; the
 * reader going away closes it with connection_lost(-EPIPE) if data was
 * still queued, (0) otherwise. Writing to a pipe whose reader left raises
 * SIGPIPE unless the process ignores it, as Python does.
 * @{
 */

/** A transport reading the read end `fd` of a pipe (asyncio's connect_read_pipe). */
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
/** A transport writing to the write end `fd` of a pipe (asyncio's connect_write_pipe). */
TAPIO_API int tapio_pipe_write(tapio_loop *loop, int fd,
                               const tapio_protocol *proto, void *user,
                               tapio_transport **out);

/** @} */

/**
 * @defgroup subprocesses Subprocesses
 * Subprocesses (loop.subprocess_exec; asyncio's SubprocessTransport and
 * SubprocessProtocol)
 *
 * Events come in asyncio's order: connection_made once the pipes are
 * connected; pipe_data_received(fd, ...) and pipe_connection_lost(fd, err)
 * per pipe; process_exited once the child has exited (observed with a pidfd,
 * or a waiting thread where pidfds are missing; the child is always reaped);
 * and connection_lost only after the process exited and every pipe closed.
 * The child's output pipes are read through a relay and get room for 1 MiB.
 * Closing the loop kills and reaps children still running (and closes
 * their pidfds), without callbacks.
 *
 * Testing hook: with TAPIO_FAULT_PIDFD_OPEN=\<errno\> in the environment,
 * pidfd_open fails with that errno, as on kernels without pidfds or under
 * seccomp, so that the fallback can be tested.
 * @{
 */

/** A child process and its pipes (asyncio's SubprocessTransport). */
typedef struct tapio_process tapio_process;

/** The callbacks of a subprocess (asyncio's SubprocessProtocol); any may be NULL. */
typedef struct tapio_subprocess_protocol {
    /** The pipes are connected; called once, from the loop. */
    void (*connection_made)(tapio_process *p, void *user);
    /** Output of the child's stdout (fd 1) or stderr (fd 2). */
    void (*pipe_data_received)(tapio_process *p, int fd, const void *data,
                               size_t len, void *user);
    /** A pipe closed: 0 at its end, or a negative errno. */
    void (*pipe_connection_lost)(tapio_process *p, int fd, int err,
                                 void *user);
    /** The child exited (tapio_process_returncode() gives its status). */
    void (*process_exited)(tapio_process *p, void *user);
    /** The process exited and every pipe closed: called once, last. */
    void (*connection_lost)(tapio_process *p, int err, void *user);
    /** @{ */
    /** Flow control of the child's stdin pipe. */
    void (*pause_writing)(tapio_process *p, void *user);
    void (*resume_writing)(tapio_process *p, void *user);
    /** @} */
} tapio_subprocess_protocol;

/** What each of the child's stdin, stdout and stderr is; any value >= 0 is
 * an fd of the parent that the child gets in that place. */
#define TAPIO_STDIO_PIPE (-1)    /**< a pipe to the parent */
#define TAPIO_STDIO_INHERIT (-2) /**< the parent's own */
#define TAPIO_STDIO_DEVNULL (-3) /**< /dev/null */
#define TAPIO_STDIO_STDOUT (-4)  /**< stderr only: into the stdout pipe/fd */

/** What tapio_process_spawn() runs, and how. */
typedef struct tapio_process_options {
    const char *file;        /**< program; without a '/', searched in PATH */
    char *const *argv;       /**< NULL-terminated; argv[0] is the name */
    const char *shell;       /**< instead of file and argv: /bin/sh -c shell
                                (asyncio's subprocess_shell) */
    char *const *env;        /**< NULL-terminated, or NULL to inherit */
    const char *cwd;         /**< or NULL */
    int stdio[3];            /**< TAPIO_STDIO_* or an fd; 0 means PIPE */
    bool new_session;        /**< setsid() in the child */
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

/** How tapio_process_adopt takes a child over. Every field must be set:
 * an fd of 0 is the parent's stdin, not "none". */
typedef struct tapio_process_adopt_options {
    pid_t pid;     /**< a child of this process, running or exited unreaped */
    int fds[3];    /**< the parent's ends of the child's stdin (written to),
                      stdout and stderr (read) pipes; -1 for none */
    /** false: libtapio watches for the exit (a pidfd; where pidfd_open
     * fails, ENOSYS, EPERM, EMFILE..., a thread blocked in waitpid) and
     * reaps the child. true: the caller does (a binding honouring a child
     * watcher its user installed) and reports the exit with
     * tapio_process_set_exited; libtapio never waits for this pid, and
     * closing the loop neither kills nor reaps it. */
    bool caller_reaps;
    /** true: the fds stay the caller's and libtapio works on duplicates of
     * them (a binding whose file objects keep theirs); a duplicate that
     * cannot be made (EMFILE) fails the call. */
    bool dup_fds;
} tapio_process_adopt_options;

/**
 * Take over a child another part of the program spawned (a binding's own
 * spawner, e.g. Python's subprocess.Popen): connect its pipes and run
 * asyncio's order of events for it, as for a spawned one. Unless dup_fds,
 * the process owns the fds from then on, even when the call fails; a call
 * that fails kills
 * the child (and reaps it unless caller_reaps), so that nothing runs that
 * nobody watches.
 */
TAPIO_API int tapio_process_adopt(tapio_loop *loop,
                                  const tapio_process_adopt_options *opts,
                                  const tapio_subprocess_protocol *proto,
                                  void *user, tapio_process **out);

/**
 * The child of a process adopted with caller_reaps exited with `returncode`
 * (asyncio's: the exit status, or minus the signal number). The returncode
 * is known at once; process_exited and the rest follow from the loop.
 * -EINVAL for a process libtapio watches itself, -EALREADY when the exit
 * is known already, -ESHUTDOWN once the loop closed.
 */
TAPIO_API int tapio_process_set_exited(tapio_process *p, int returncode);

/** The child's process id. */
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
/** Send SIGTERM (as tapio_process_send_signal). */
TAPIO_API int tapio_process_terminate(tapio_process *p);
/** Send SIGKILL (as tapio_process_send_signal). */
TAPIO_API int tapio_process_kill(tapio_process *p);
/**
 * Close the pipes and, if the child still runs, kill it (asyncio's close);
 * connection_lost follows once it has exited.
 */
TAPIO_API void tapio_process_close(tapio_process *p);
/** True once tapio_process_close() was called. */
TAPIO_API bool tapio_process_is_closing(const tapio_process *p);
/** Take a reference that keeps the pointer valid. */
TAPIO_API void tapio_process_ref(tapio_process *p);
/** Drop a reference taken with tapio_process_ref(). */
TAPIO_API void tapio_process_unref(tapio_process *p);

/** @} */

/**
 * @defgroup connections Connections
 * Connections (loop.create_connection / create_unix_connection)
 * @{
 */

/** One resolved address to connect to (or to bind to, as a local address). */
typedef struct tapio_address {
    int family;                   /**< AF_INET, AF_INET6 or AF_UNIX */
    int socktype;                 /**< 0 means SOCK_STREAM */
    int protocol;                 /**< 0: the family's default */
    socklen_t len;                /**< of addr */
    /** The address itself. */
    struct sockaddr_storage addr;
} tapio_address;

/** tapio_connect_options.interleave: keep the addresses in the given order. */
#define TAPIO_CONNECT_NO_INTERLEAVE (-1)

/** How tapio_connect() and tapio_connect_socket() connect; zeroed: the defaults. */
typedef struct tapio_connect_options {
    int family;              /**< AF_UNSPEC (default), AF_INET or AF_INET6 */
    const char *local_host;  /**< tapio_connect: resolve and bind here before
                                connecting (NULL: no bind) */
    const char *local_port;  /**< with local_host; NULL means port 0 */
    /** @{ */
    /** Local addresses already resolved (when local_host is NULL): each
     * attempt binds to the first of its family that binds. Copied. */
    const tapio_address *local_addrs;
    size_t nlocal_addrs;
    /** @} */
    /** @{ */
    /** Happy eyeballs (RFC 8305, asyncio's happy_eyeballs_delay): the next
     * address is tried after `happy_eyeballs_delay` seconds or as soon as
     * the previous attempt fails, whichever comes first; the first to
     * connect wins and the others are closed. Without it each address is
     * tried only after the previous one failed. */
    bool happy_eyeballs;
    double happy_eyeballs_delay;
    /** @} */
    /** Address families alternate (asyncio's interleave): this many of the
     * first family's addresses first, then one of each family in turn.
     * 0: asyncio's default (1 with happy eyeballs, else the given order);
     * TAPIO_CONNECT_NO_INTERLEAVE: the given order. */
    int interleave;
    /** TLS (tapio_connect only): the callback gets the TLS transport once
     * the handshake is done (NULL: plain TCP). Copied; the context is
     * referenced. */
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
 * addresses without one); the resolved addresses are tried as
 * tapio_connect_socket tries them (local addresses, happy eyeballs,
 * interleaving from `opts`). `opts` may be NULL. If `req` is not NULL it
 * receives a request pointer valid until the callback runs, usable with
 * tapio_connect_cancel.
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

/** Which step of one attempt failed (asyncio words each differently). */
typedef enum tapio_connect_step {
    TAPIO_CONNECT_STEP_SOCKET,     /**< socket() */
    TAPIO_CONNECT_STEP_BIND,       /**< bind() to local address `local` */
    TAPIO_CONNECT_STEP_NO_LOCAL,   /**< no local address of the family */
    TAPIO_CONNECT_STEP_CONNECT,    /**< connect() failed at once */
    TAPIO_CONNECT_STEP_CONNECTING, /**< the connection failed later (SO_ERROR) */
} tapio_connect_step;

/** One failed step of a connection attempt. */
typedef struct tapio_connect_error {
    size_t address;          /**< index in the caller's address list */
    size_t local;            /**< STEP_BIND: index in the local address list */
    /** The step that failed. */
    tapio_connect_step step;
    int err;                 /**< negative errno (-EADDRNOTAVAIL for NO_LOCAL) */
} tapio_connect_error;

/** The outcome of tapio_connect_socket, valid during the callback. */
typedef struct tapio_connect_result {
    int fd;         /**< the connected non-blocking socket, now the callee's;
                       -1 on failure */
    int err;        /**< 0, -ECANCELED, or the last failed step's error */
    size_t address; /**< index of the address that connected */
    /** @{ */
    /** Every failed step, grouped by attempt in the order the attempts
     * started, each attempt's steps in the order they failed. */
    const tapio_connect_error *errors;
    size_t nerrors;
    /** @} */
} tapio_connect_result;

/** Called once when tapio_connect_socket() ends, with its outcome. */
typedef void (*tapio_connect_socket_callback)(const tapio_connect_result *r,
                                              void *arg);

/**
 * Connect a new socket to one of `n` resolved addresses and hand over the
 * connected fd without making a transport (bindings make their own). The
 * addresses are tried as asyncio's create_connection tries them, with
 * opts->local_addrs, happy_eyeballs and interleave (opts may be NULL;
 * local_host and tls must be NULL). The callback runs once, from the loop,
 * never inside this call; after tapio_connect_cancel it runs with
 * -ECANCELED and no fd. Every socket of a failed or cancelled request is
 * closed.
 */
TAPIO_API int tapio_connect_socket(tapio_loop *loop, const tapio_address *addrs,
                                   size_t n, const tapio_connect_options *opts,
                                   tapio_connect_socket_callback cb, void *arg,
                                   tapio_connect_req **req);

/**
 * Abandon a pending connect: its sockets are closed and its callback runs
 * with -ECANCELED (tapio_connect's callback still gets a transport whose
 * connection was already reported done).
 */
TAPIO_API void tapio_connect_cancel(tapio_connect_req *req);

/** @} */

/**
 * @defgroup servers Servers
 * Servers (loop.create_server / create_unix_server; asyncio's Server)
 * @{
 */

/**
 * Called for each accepted connection: return the protocol for it and store
 * its user pointer in *user, or return NULL to refuse the connection.
 */
typedef const tapio_protocol *(*tapio_protocol_factory)(tapio_server *server,
                                                        void *arg,
                                                        void **user);

/** How a server listens and accepts; zeroed: asyncio's defaults. */
typedef struct tapio_server_options {
    int family;            /**< AF_UNSPEC (default), AF_INET or AF_INET6 */
    int backlog;           /**< 0 means asyncio's 100 */
    bool no_reuse_address; /**< SO_REUSEADDR is on unless this is set */
    bool reuse_port;       /**< SO_REUSEPORT */
    bool no_start_serving; /**< create without accepting (start_serving=False) */
    bool keep_alive;       /**< SO_KEEPALIVE, inherited by accepted sockets */
    /** A Unix listener's socket file is removed at close, if it is still
     * the one bound there (asyncio 3.13's cleanup_socket); set this to
     * leave it, as asyncio before 3.13 does. */
    bool keep_unix_socket_file;
    double accept_retry_delay; /**< back-off after EMFILE etc.; 0 means 1 s */
    /** TLS: each connection is a TLS transport and its protocol's
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

/** One address to listen on, as getaddrinfo returns it. */
typedef struct tapio_server_address {
    /** @{ */
    /** getaddrinfo's ai_family, ai_socktype, ai_protocol, ai_addr and ai_addrlen. */
    int family, socktype, protocol;
    const struct sockaddr *addr;
    socklen_t addrlen;
    /** @} */
} tapio_server_address;

/**
 * Listen on each of `n` addresses exactly as given (asyncio's
 * create_server once it has resolved its hosts): one socket per address,
 * with the options' SO_REUSEADDR, SO_REUSEPORT, SO_KEEPALIVE, and
 * IPV6_V6ONLY on IPv6. An address whose family the system lacks is skipped
 * (so the server may have no socket at all). When a socket cannot be made
 * or bound, nothing is left open, *failed (if not NULL) gets that
 * address's index and the call returns its negative errno.
 */
TAPIO_API int tapio_server_bind(tapio_loop *loop,
                                const tapio_server_address *addrs, size_t n,
                                const tapio_server_options *opts,
                                tapio_protocol_factory factory, void *arg,
                                tapio_server **out, size_t *failed);

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
 * ownership of the fds (they are put into listening mode), even when the
 * call fails. As such sockets may be shared with other processes, they are
 * accepted from at readiness on every backend: a connection waits for
 * whichever process accepts first, never in a busy one.
 */
TAPIO_API int tapio_server_from_fds(tapio_loop *loop, const int *fds,
                                    size_t nfds,
                                    const tapio_server_options *opts,
                                    tapio_protocol_factory factory, void *arg,
                                    tapio_server **out);

/** Accept connections (after no_start_serving). 0, or -EBADF once closed. */
TAPIO_API int tapio_server_start_serving(tapio_server *s);
/** Stop accepting; the listening sockets stay open. */
TAPIO_API void tapio_server_stop_serving(tapio_server *s);
/** Whether the server accepts connections. */
TAPIO_API bool tapio_server_is_serving(const tapio_server *s);

/** Number of listening sockets; fills up to `n` of their fds into `fds`. */
TAPIO_API size_t tapio_server_sockets(const tapio_server *s, int *fds, size_t n);

/** The port of the first listening socket (0 for Unix servers). */
TAPIO_API int tapio_server_port(const tapio_server *s);

/**
 * Stop listening and close the listening sockets (a Unix listener's socket
 * file is removed, unless keep_unix_socket_file). Connections already accepted stay open. The
 * server is freed once it is closed and all its connections are gone; until
 * then `on_closed` (may be NULL) waits, and it runs once from the loop
 * (asyncio's wait_closed): right after the last connection's connection_lost
 * returns, in the same iteration (after a TLS connection's, in the next), or
 * in the next iteration when no connection was left at close. The pointer must not be used after
 * on_closed.
 */
TAPIO_API void tapio_server_close(tapio_server *s, tapio_callback on_closed,
                                  void *arg);

/** The loop the server belongs to. */
TAPIO_API tapio_loop *tapio_server_loop(const tapio_server *s);

/** @} */

/**
 * @defgroup datagrams Datagram transports
 * Datagram transports (UDP, Unix datagram sockets; asyncio's
 * DatagramTransport and DatagramProtocol)
 *
 * Lifetime, references and close/abort are as for stream transports.
 * @{
 */

/** A datagram endpoint (asyncio's DatagramTransport). */
typedef struct tapio_datagram tapio_datagram;

/** The callbacks of a datagram endpoint (asyncio's DatagramProtocol); any may be NULL. */
typedef struct tapio_datagram_protocol {
    /** The endpoint is ready; called once, from the loop. */
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
    /** The endpoint is closed: 0 or a negative errno; called once, last. */
    void (*connection_lost)(tapio_datagram *d, int err, void *user);
    /** The queue went over the high-water mark. */
    void (*pause_writing)(tapio_datagram *d, void *user);
    /** The queue drained to the low-water mark or below. */
    void (*resume_writing)(tapio_datagram *d, void *user);
} tapio_datagram_protocol;

/** How tapio_datagram_open() makes its socket. */
typedef struct tapio_datagram_options {
    int family;              /**< AF_UNSPEC, AF_INET, AF_INET6 or AF_UNIX */
    /** @{ */
    /** Inet: bind to local_host:local_port and/or connect to remote_host:
     * remote_port (names resolved with getaddrinfo in the call). Unix: bind
     * to local_host and/or connect to remote_host as paths (a leading '\0'
     * needs the *_len field; 0 means strlen); a stale socket file at
     * local_host is removed first, as asyncio does. */
    const char *local_host, *local_port;
    const char *remote_host, *remote_port;
    size_t local_len, remote_len;
    /** @} */
    bool reuse_port;         /**< SO_REUSEPORT */
    bool allow_broadcast;    /**< SO_BROADCAST; the remote address is then
                                a default destination, not connected */
} tapio_datagram_options;

/** One way to open a datagram socket: a family's local and remote address
 * (either may be NULL). */
typedef struct tapio_datagram_candidate {
    /** @{ */
    /** The socket's family and protocol (as getaddrinfo gives them), its local address and the remote one, with their lengths. */
    int family, protocol;
    const struct sockaddr *local;
    socklen_t local_len;
    const struct sockaddr *remote;
    socklen_t remote_len;
    /** @} */
} tapio_datagram_candidate;

/**
 * Make a datagram socket from the first of `n` candidates that works, as
 * asyncio's create_datagram_endpoint does with the address pairs it
 * resolved: the socket gets the options' SO_REUSEPORT and SO_BROADCAST, is
 * bound to the local address (a stale socket file at a Unix path is
 * removed first) and connected to the remote one (unless allow_broadcast,
 * where the remote address is only the default destination). Only
 * reuse_port and allow_broadcast of `opts` (may be NULL) are read. Returns
 * the non-blocking fd, with the candidate's index in *chosen (if not
 * NULL), or the first candidate's negative errno when none works.
 */
TAPIO_API int tapio_datagram_socket(const tapio_datagram_candidate *candidates,
                                    size_t n,
                                    const tapio_datagram_options *opts,
                                    size_t *chosen);

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
/**
 * Close at once like abort, reporting `err` (a negative errno, for example
 * TAPIO_EPROTOCOL) to connection_lost. Does nothing once connection_lost is
 * due, whatever error it was given. The loop's error handler is not called.
 */
TAPIO_API void tapio_datagram_fail(tapio_datagram *d, int err);
/** True once the endpoint is closing or closed. */
TAPIO_API bool tapio_datagram_is_closing(const tapio_datagram *d);
/**
 * Stop calling datagram_received until resume_reading (what arrives waits in
 * the socket's receive buffer, where the kernel drops once it is full).
 * Idempotent, and a no-op once closing; may be called from connection_made,
 * or from datagram_received, after which no more datagrams are delivered in
 * that readiness event.
 */
TAPIO_API void tapio_datagram_pause_reading(tapio_datagram *d);
/** Receive again after pause_reading. A no-op unless paused, or once closing. */
TAPIO_API void tapio_datagram_resume_reading(tapio_datagram *d);
/** False when paused or closing. */
TAPIO_API bool tapio_datagram_is_reading(const tapio_datagram *d);
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
/** The write watermarks. */
TAPIO_API void tapio_datagram_get_write_buffer_limits(const tapio_datagram *d,
                                                      size_t *low,
                                                      size_t *high);
/** Switch to another protocol; the old one gets no further callbacks. */
TAPIO_API void tapio_datagram_set_protocol(tapio_datagram *d,
                                           const tapio_datagram_protocol *proto,
                                           void *user);
/** The loop the endpoint belongs to. */
TAPIO_API tapio_loop *tapio_datagram_loop(const tapio_datagram *d);
/** The socket fd (-1 once closed). */
TAPIO_API int tapio_datagram_fd(const tapio_datagram *d);
/** @{ */
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
/** @} */
/** Take a reference that keeps the pointer valid. */
TAPIO_API void tapio_datagram_ref(tapio_datagram *d);
/** Drop a reference taken with tapio_datagram_ref(). */
TAPIO_API void tapio_datagram_unref(tapio_datagram *d);

/** @} */

/**
 * @defgroup streams Streams
 * Streams (asyncio's StreamReader and StreamWriter, open_connection and
 * start_server)
 *
 * A tapio_stream is asyncio's (reader, writer) pair over one stream
 * transport of any kind (TCP, Unix, TLS, a pipe, an adopted fd): the
 * stream is the transport's protocol (asyncio's StreamReaderProtocol) and
 * keeps what arrives in a buffer that the read calls take from.
 *
 * Each awaitable of asyncio is a request with a callback that runs once,
 * from the loop, never inside the call that made the request (data that is
 * already buffered is delivered on the next iteration). A request that
 * cannot be made returns a negative errno and its callback never runs.
 *
 * Reads: at most one read request is pending per stream; a second one
 * returns -EBUSY (asyncio's RuntimeError). The callback gets
 * - err 0: `data`, `len` are the bytes read (len 0: EOF);
 * - TAPIO_EINCOMPLETE: EOF came first (asyncio's IncompleteReadError);
 *   `data`, `len` are the partial bytes, consumed;
 * - TAPIO_ELIMIT: the limit was overrun (asyncio's LimitOverrunError):
 *   nothing was consumed, `data` is the start of the buffer and `len`
 *   the error's `consumed` count;
 * - another negative errno: the connection failed with it (asyncio's
 *   exception set on the reader; reported before any buffered data).
 *
 * `data` is a view of the stream's buffer (or of the transport's read
 * buffer, so that a line read as it arrives is never copied): it is valid
 * only until the callback returns. Copy what must live longer.
 *
 * Flow control: when more than 2 * limit bytes are buffered and no read
 * waits for more, the stream pauses the transport's reading; it resumes
 * once at most `limit` bytes remain (asyncio's rule). A read that needs
 * more data always lets reading go on.
 *
 * Lifetime: a stream lives while its owner holds it (from the call that
 * made it until tapio_stream_free) and while its transport is connected
 * (until connection_lost). Free every stream before closing its loop, after
 * its connection is lost (wait_closed), or its memory stays.
 * @{
 */

/** asyncio's default buffer limit, 64 KiB. */
#define TAPIO_STREAM_DEFAULT_LIMIT (64 * 1024)
/** EOF before the request was met (IncompleteReadError). */
#define TAPIO_EINCOMPLETE (-3600)
/** The buffer limit was overrun (LimitOverrunError; readline: ValueError). */
#define TAPIO_ELIMIT (-3601)

/** asyncio's StreamReader and StreamWriter over one transport (see above). */
typedef struct tapio_stream tapio_stream;

/** A read request's result; see above for `data`, `len` and `err`. */
typedef void (*tapio_stream_read_callback)(tapio_stream *s, const void *data,
                                           size_t len, int err, void *arg);
/** Completion of open_connection, drain, wait_closed and start_tls: err 0
 * or a negative errno. open_connection's gives s NULL on failure. */
typedef void (*tapio_stream_callback)(tapio_stream *s, int err, void *arg);

/**
 * Make an unconnected stream with buffer limit `limit` (0: the default):
 * give it to a transport as its protocol (tapio_stream_protocol(), user =
 * the stream), e.g. tapio_pipe_read(loop, fd, tapio_stream_protocol(), s,
 * NULL). Writes return -ENOTCONN until connection_made. A stream given
 * to a transport this way is freed only after its connection_made ran.
 */
TAPIO_API int tapio_stream_new(tapio_loop *loop, size_t limit,
                               tapio_stream **out);
/** The protocol table of streams (asyncio's StreamReaderProtocol). */
TAPIO_API const tapio_protocol *tapio_stream_protocol(void);
/**
 * Wrap a live transport (its connection_made already ran): the stream
 * becomes its protocol. -EBUSY if the stream has a transport already.
 */
TAPIO_API int tapio_stream_attach(tapio_stream *s, tapio_transport *t);
/**
 * Wrap a connected stream socket (asyncio's open_connection(sock=...)).
 * The stream owns `fd` from then on, even when the call fails.
 */
TAPIO_API int tapio_stream_from_fd(tapio_loop *loop, int fd, size_t limit,
                                   tapio_stream **out);

/**
 * Connect to host:port (asyncio's open_connection); `opts` may be NULL and
 * carries the TLS options. cb gets the stream (owned by the caller from
 * then on) or NULL and the error.
 */
TAPIO_API int tapio_open_connection(tapio_loop *loop, const char *host,
                                    const char *port,
                                    const tapio_connect_options *opts,
                                    size_t limit, tapio_stream_callback cb,
                                    void *arg);
/** The same over a Unix socket; `tls` (may be NULL) starts TLS on it. */
TAPIO_API int tapio_open_unix_connection(tapio_loop *loop, const char *path,
                                         size_t path_len,
                                         const tapio_tls_options *tls,
                                         size_t limit,
                                         tapio_stream_callback cb, void *arg);

/**
 * What a streams server calls for each connection (asyncio's
 * client_connected_cb): the stream is the callback's to free. The table
 * must stay valid until the server has closed.
 */
typedef struct tapio_stream_handler {
    /** Called for each connection with its stream and `arg`. */
    void (*client_connected)(tapio_stream *s, void *arg);
    /** The second argument of client_connected. */
    void *arg;
    size_t limit; /**< each stream's limit; 0: the default */
} tapio_stream_handler;

/** asyncio's start_server: tapio_server_listen with streams (TLS in opts). */
TAPIO_API int tapio_start_server(tapio_loop *loop, const char *const *hosts,
                                 const char *port,
                                 const tapio_server_options *opts,
                                 const tapio_stream_handler *handler,
                                 tapio_server **out);
/** asyncio's start_unix_server. */
TAPIO_API int tapio_start_unix_server(tapio_loop *loop, const char *path,
                                      size_t path_len,
                                      const tapio_server_options *opts,
                                      const tapio_stream_handler *handler,
                                      tapio_server **out);

/* ---- reading (StreamReader) ---- */

/**
 * read(n): up to n bytes, once at least one is buffered (len 0 at EOF);
 * n < 0 reads until EOF and delivers everything at once (the limit does
 * not pause reading meanwhile); n 0 delivers nothing at once.
 */
TAPIO_API int tapio_stream_read(tapio_stream *s, ssize_t n,
                                tapio_stream_read_callback cb, void *arg);
/**
 * readline(): a line with its "\n"; at EOF the partial line (err 0);
 * past the limit, err TAPIO_ELIMIT with the line dropped from the buffer
 * (as asyncio's ValueError: the separator too when it was there, else the
 * whole buffer).
 */
TAPIO_API int tapio_stream_readline(tapio_stream *s,
                                    tapio_stream_read_callback cb, void *arg);
/**
 * readuntil(separator): the bytes up to and including `sep` (copied;
 * -EINVAL when empty).
 */
TAPIO_API int tapio_stream_readuntil(tapio_stream *s, const void *sep,
                                     size_t seplen,
                                     tapio_stream_read_callback cb, void *arg);
/**
 * readuntil((sep1, sep2, ...)), Python 3.13's form: the shortest chunk that
 * ends with any of the `n` separators (copied; -EINVAL when n is 0 or one
 * is empty). An overrun counts with the shortest separator.
 */
TAPIO_API int tapio_stream_readuntil_any(tapio_stream *s,
                                         const struct iovec *seps, int n,
                                         tapio_stream_read_callback cb,
                                         void *arg);
/** readexactly(n): exactly n bytes, or TAPIO_EINCOMPLETE with fewer. */
TAPIO_API int tapio_stream_readexactly(tapio_stream *s, size_t n,
                                       tapio_stream_read_callback cb,
                                       void *arg);
/** at_eof(): EOF was received and the buffer is empty. */
TAPIO_API bool tapio_stream_at_eof(const tapio_stream *s);
/** Bytes buffered and not read yet. */
TAPIO_API size_t tapio_stream_buffered(const tapio_stream *s);
/** The reader's exception (the connection's error), or 0. */
TAPIO_API int tapio_stream_exception(const tapio_stream *s);
/** The buffer limit. */
TAPIO_API size_t tapio_stream_limit(const tapio_stream *s);

/* ---- writing (StreamWriter) ---- */

/** write(): as tapio_transport_write; -ENOTCONN before connection_made. */
TAPIO_API int tapio_stream_write(tapio_stream *s, const void *data,
                                 size_t len);
/** writelines(): the buffers with one writev. */
TAPIO_API int tapio_stream_writelines(tapio_stream *s,
                                      const struct iovec *iov, int iovcnt);
/**
 * drain(): cb runs once the write buffer is at or below the low-water mark
 * (on the next iteration when it already is); with the reader's exception,
 * or the connection's error (-ECONNRESET when it was lost without one,
 * asyncio's 'Connection lost'). Any number of drains may wait.
 */
TAPIO_API int tapio_stream_drain(tapio_stream *s, tapio_stream_callback cb,
                                 void *arg);
/** write_eof(): as tapio_transport_write_eof. */
TAPIO_API int tapio_stream_write_eof(tapio_stream *s);
/** can_write_eof(): as tapio_transport_can_write_eof. */
TAPIO_API bool tapio_stream_can_write_eof(const tapio_stream *s);
/** close(): close the transport (it flushes first). Idempotent. */
TAPIO_API void tapio_stream_close(tapio_stream *s);
/** is_closing(): the transport is closing or closed. */
TAPIO_API bool tapio_stream_is_closing(const tapio_stream *s);
/** wait_closed(): cb runs once connection_lost has run, with its error. */
TAPIO_API int tapio_stream_wait_closed(tapio_stream *s,
                                       tapio_stream_callback cb, void *arg);
/**
 * The transport (get_extra_info: tapio_transport_peername, ... on it),
 * NULL before connection_made; after start_tls, the TLS transport.
 */
TAPIO_API tapio_transport *tapio_stream_transport(const tapio_stream *s);
/** The loop the stream belongs to. */
TAPIO_API tapio_loop *tapio_stream_loop(const tapio_stream *s);
/**
 * start_tls(): upgrade the connection to TLS (opts as for tapio_tls_start;
 * skip_connection_made is implied). Bytes already buffered stay buffered.
 * cb runs once the handshake ended; after a failure the stream's
 * connection is lost with that error. -EBUSY while a read is pending.
 */
TAPIO_API int tapio_stream_start_tls(tapio_stream *s,
                                     const tapio_tls_options *opts,
                                     tapio_stream_callback cb, void *arg);
/**
 * The owner is done with the stream: pending callbacks are dropped (they
 * never run), the transport is closed if it is open, and the memory goes
 * once connection_lost has run. `s` must not be used afterwards.
 */
TAPIO_API void tapio_stream_free(tapio_stream *s);

/** @} */

#ifdef __cplusplus
}
#endif

#endif /**< TAPIO_H */
