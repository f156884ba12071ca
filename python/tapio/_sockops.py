"""loop.sock_* operations: try the call at once, and only when the socket is
not ready wait for it with an fd watcher and a future."""
import asyncio
import errno
import io
import os
import socket
import sys

try:
    import ssl
except ImportError:  # pragma: no cover - Python built without ssl
    ssl = None

_SENDFILE_CHUNK = 256 * 1024


def _set_ready(fut, sock):
    if not fut.done():
        fut.set_result(None)


class SockOpsMixin:
    def _check_sock(self, sock):
        if ssl is not None and isinstance(sock, ssl.SSLSocket):
            raise TypeError("Socket cannot be of type SSLSocket")
        if self.get_debug() and sock.gettimeout() != 0:
            raise ValueError("the socket must be non-blocking")

    def _wait_fd(self, add, remove, fd, callback, fut, *args):
        """Watch fd until fut is done; the watcher goes away with it."""
        handle = self._watch(add, fd, callback, (fut, *args))

        def done(_fut):
            if not handle.cancelled():
                remove(fd)
        fut.add_done_callback(done)

    def _wait_readable(self, sock, callback, *args):
        fut = self.create_future()
        self._wait_fd(self._add_reader, self._remove_reader, sock.fileno(), callback, fut,
                      sock, *args)
        return fut

    def _wait_writable(self, sock, callback, *args):
        fut = self.create_future()
        self._wait_fd(self._add_writer, self._remove_writer, sock.fileno(), callback, fut,
                      sock, *args)
        return fut

    @staticmethod
    def _attempt(fut, call):
        """call() for a waiting future: (True, result), or (False, None) when
        the socket is not ready yet or the call failed (fut has the error)."""
        if fut.done():
            return False, None
        try:
            return True, call()
        except (BlockingIOError, InterruptedError):
            return False, None
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            fut.set_exception(exc)
            return False, None

    @classmethod
    def _retry(cls, fut, call):
        """Run call() for a waiting future: its result, an error, or later."""
        ok, result = cls._attempt(fut, call)
        if ok:
            fut.set_result(result)

    # ---- receiving ------------------------------------------------------

    async def _sock_read(self, sock, call):
        self._check_sock(sock)
        try:
            return call()
        except (BlockingIOError, InterruptedError):
            pass
        return await self._wait_readable(sock, lambda fut, s: self._retry(fut, call))

    async def sock_recv(self, sock, n):
        return await self._sock_read(sock, lambda: sock.recv(n))

    async def sock_recv_into(self, sock, buf):
        return await self._sock_read(sock, lambda: sock.recv_into(buf))

    async def sock_recvfrom(self, sock, bufsize):
        return await self._sock_read(sock, lambda: sock.recvfrom(bufsize))

    async def sock_recvfrom_into(self, sock, buf, nbytes=0):
        if not nbytes:
            nbytes = len(buf)
        return await self._sock_read(sock, lambda: sock.recvfrom_into(buf, nbytes))

    # ---- sending ----------------------------------------------------------

    async def sock_sendall(self, sock, data):
        self._check_sock(sock)
        try:
            sent = sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        if sent == len(data):
            return
        view = memoryview(data).cast("B")
        position = [sent]

        def send_more(fut, s):
            ok, n = self._attempt(fut, lambda: s.send(view[position[0]:]))
            if not ok:
                return
            position[0] += n
            if position[0] == len(view):
                fut.set_result(None)

        return await self._wait_writable(sock, send_more)

    async def sock_sendto(self, sock, data, address):
        self._check_sock(sock)
        try:
            return sock.sendto(data, address)
        except (BlockingIOError, InterruptedError):
            pass
        return await self._wait_writable(
            sock, lambda fut, s: self._retry(fut, lambda: s.sendto(data, address)))

    # ---- connecting and accepting -----------------------------------------

    async def _resolve_for(self, sock, address):
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            return address
        infos = await self._ensure_resolved(address, family=sock.family, type=sock.type,
                                            proto=sock.proto)
        if not infos:
            raise OSError(f"getaddrinfo({address[0]!r}) returned empty list")
        return infos[0][4]

    async def sock_connect(self, sock, address):
        self._check_sock(sock)
        address = await self._resolve_for(sock, address)
        try:
            return sock.connect(address)
        except (BlockingIOError, InterruptedError):
            pass

        def check(fut, s):
            if fut.done():
                return
            err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err == 0:
                fut.set_result(None)
            elif err not in (errno.EINPROGRESS, errno.EALREADY):
                fut.set_exception(OSError(err, f"Connect call failed {address}"))

        return await self._wait_writable(sock, check)

    async def sock_accept(self, sock):
        self._check_sock(sock)

        def accept():
            conn, addr = sock.accept()
            conn.setblocking(False)
            return conn, addr

        try:
            return accept()
        except (BlockingIOError, InterruptedError):
            pass
        return await self._wait_readable(sock, lambda fut, s: self._retry(fut, accept))

    # ---- sendfile -------------------------------------------------------

    @staticmethod
    def _check_sendfile_params(sock, file, offset, count):
        if "b" not in getattr(file, "mode", "b"):
            raise ValueError("file should be opened in binary mode")
        if sock.type != socket.SOCK_STREAM:
            raise ValueError("only SOCK_STREAM type sockets are supported")
        if count is not None:
            if not isinstance(count, int):
                raise TypeError(f"count must be a positive integer (got {count!r})")
            if count <= 0:
                raise ValueError(f"count must be a positive integer (got {count!r})")
        if not isinstance(offset, int):
            raise TypeError(f"offset must be a non-negative integer (got {offset!r})")
        if offset < 0:
            raise ValueError(f"offset must be a non-negative integer (got {offset!r})")

    async def sock_sendfile(self, sock, file, offset=0, count=None, *, fallback=True):
        self._check_sock(sock)
        self._check_sendfile_params(sock, file, offset, count)
        try:
            return await self._sock_sendfile_native(sock, file, offset, count)
        except asyncio.SendfileNotAvailableError:
            if not fallback:
                raise
        return await self._sock_sendfile_fallback(sock, file, offset, count)

    async def _sock_sendfile_native(self, sock, file, offset, count):
        try:
            fileno = file.fileno()
        except (AttributeError, io.UnsupportedOperation):
            raise asyncio.SendfileNotAvailableError("not a regular file")
        try:
            size = os.fstat(fileno).st_size
        except OSError:
            raise asyncio.SendfileNotAvailableError("not a regular file")
        # asyncio's os.sendfile() calls: each asks for the rest of count (or
        # the file's size) from where the last ended, so an offset or count
        # out of the C types' range is its OverflowError; 3.13 caps a call.
        blocksize = count if count else size
        total = 0
        try:
            while blocksize:
                if count:
                    blocksize = count - total
                    if blocksize <= 0:
                        break
                if sys.version_info >= (3, 13):
                    blocksize = min(blocksize, sys.maxsize // 2 + 1)
                try:
                    sent = os.sendfile(sock.fileno(), fileno, offset + total, blocksize)
                except (BlockingIOError, InterruptedError):
                    await self._wait_writable(sock, _set_ready)
                    continue
                except OSError as exc:
                    if total == 0 and exc.errno in (errno.EINVAL, errno.ENOSYS, errno.ENOTSOCK):
                        raise asyncio.SendfileNotAvailableError("os.sendfile() is not usable")
                    raise
                if sent == 0:
                    break  # the end of the file
                total += sent
            return total
        finally:
            if total > 0:
                file.seek(offset + total)

    async def _sock_sendfile_fallback(self, sock, file, offset, count):
        if offset:
            file.seek(offset)
        blocksize = min(count, _SENDFILE_CHUNK) if count else _SENDFILE_CHUNK
        buf = bytearray(blocksize)
        total = 0
        try:
            while True:
                want = min(blocksize, count - total) if count else blocksize
                if want <= 0:
                    break
                view = memoryview(buf)[:want]
                read = await self.run_in_executor(None, file.readinto, view)
                if not read:
                    break
                await self.sock_sendall(sock, view[:read])
                total += read
            return total
        finally:
            if total > 0 and hasattr(file, "seek"):
                file.seek(offset + total)
