"""loop.sendfile: zero-copy through libtapio for tapio's transports, and
asyncio's read-and-write fallback with flow control for everything else."""
import asyncio
import errno
import io
import os

from . import _tapio

_FALLBACK_CHUNK = 16 * 1024
_MAX_OFFSET = 2 ** 63 - 1  # off_t
_NATIVE_UNUSABLE = (errno.EINVAL, errno.ESPIPE, errno.ENOSYS)


class _FlowControl(asyncio.Protocol):
    """Stands in for the transport's protocol while the fallback writes, so
    that it can wait for resume_writing; restore() puts the protocol back."""

    def __init__(self, transport):
        self._transport = transport
        self._protocol = transport.get_protocol()
        self._resume_reading = transport.is_reading()
        low, high = transport.get_write_buffer_limits()
        self._paused = transport.get_write_buffer_size() > high
        self._should_resume_writing = self._paused
        self._waiter = None
        self._lost = None
        transport.pause_reading()
        transport.set_protocol(self)

    async def drain(self):
        if self._transport.is_closing():
            raise ConnectionError("Connection closed by peer")
        while self._paused:
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        if self._lost is not None:
            raise self._lost

    def pause_writing(self):
        self._paused = True

    def resume_writing(self):
        self._paused = False
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def data_received(self, data):
        raise RuntimeError("Invalid state: reading should be paused")

    def eof_received(self):
        raise RuntimeError("Invalid state: reading should be paused")

    def connection_lost(self, exc):
        self._lost = ConnectionError("Connection is closed by peer")
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(self._lost)
        self._protocol.connection_lost(exc)

    def restore(self):
        self._transport.set_protocol(self._protocol)
        if self._resume_reading:
            self._transport.resume_reading()
        if self._should_resume_writing and not self._paused:
            self._protocol.resume_writing()


class SendfileMixin:
    async def sendfile(self, transport, file, offset=0, count=None, *, fallback=True):
        if transport.is_closing():
            raise RuntimeError("Transport is closing")
        # A TLS transport must encrypt every byte: only the fallback serves.
        # A pipe has no socket: asyncio supports neither way on it.
        if (isinstance(transport, _tapio.Transport)
                and transport.get_extra_info("sslcontext") is None
                and transport.get_extra_info("socket") is not None):
            try:
                return await self._sendfile_native(transport, file, offset, count)
            except asyncio.SendfileNotAvailableError:
                if not fallback:
                    raise
        elif not _supports_fallback(transport):
            raise RuntimeError(f"sendfile is not supported for transport {transport!r}")
        if not fallback:
            raise RuntimeError(f"fallback is disabled and native sendfile is not "
                               f"supported for transport {transport!r}")
        return await self._sendfile_fallback(transport, file, offset, count)

    async def _sendfile_native(self, transport, file, offset, count):
        self._check_sendfile_params(transport.get_extra_info("socket"), file, offset, count)
        try:
            fileno = file.fileno()
            size = os.fstat(fileno).st_size
        except (AttributeError, io.UnsupportedOperation, OSError):
            raise asyncio.SendfileNotAvailableError("not a regular file")
        if offset > _MAX_OFFSET:  # os.sendfile, which asyncio calls, refuses it
            raise OverflowError("Python int too large to convert to C off_t")
        length = count if count else max(size - offset, 0)
        if not length:
            return 0
        done = self.create_future()

        def finished(sent, err):
            if not done.done():
                done.set_result((sent, err))

        resume_reading = transport.is_reading()
        transport.pause_reading()  # as asyncio: nothing arrives meanwhile
        try:
            transport._sendfile(fileno, offset, length, finished)
            sent, err = await done
        except asyncio.CancelledError:
            # As asyncio: nothing more is sent, and the file's position
            # says how far it got.
            sent = transport._sendfile_cancel()
            if sent:
                file.seek(offset + sent)
            raise
        finally:
            if resume_reading:
                transport.resume_reading()
        if sent:
            file.seek(offset + sent)
        if err and not sent and err in _NATIVE_UNUSABLE:
            raise asyncio.SendfileNotAvailableError("os.sendfile() is not usable")
        if err:
            raise OSError(err, os.strerror(err))
        return sent

    async def _sendfile_fallback(self, transport, file, offset, count):
        if offset:
            file.seek(offset)
        blocksize = min(count, _FALLBACK_CHUNK) if count else _FALLBACK_CHUNK
        buf = bytearray(blocksize)
        total = 0
        flow = _FlowControl(transport)
        try:
            while True:
                want = min(count - total, blocksize) if count else blocksize
                if want <= 0:
                    return total
                view = memoryview(buf)[:want]
                read = await self.run_in_executor(None, file.readinto, view)
                if not read:
                    return total
                await flow.drain()
                transport.write(bytes(view[:read]))
                total += read
        finally:
            if total > 0 and hasattr(file, "seek"):
                file.seek(offset + total)
            flow.restore()


def _supports_fallback(transport):
    """asyncio marks the transports a read-and-write sendfile works on."""
    mode = getattr(transport, "_sendfile_compatible", None)
    return mode is not None and getattr(mode, "name", "") in ("FALLBACK", "TRY_NATIVE")
