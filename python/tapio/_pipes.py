"""loop.connect_read_pipe / connect_write_pipe: libtapio's pipe transports
over a pipe, FIFO, socket or terminal given as a file object."""
import os
import stat

from ._helpers import connection_made


def _pipe_fd(pipe, writing):
    """A dup of the pipe's fd for libtapio, after asyncio's checks."""
    fileno = pipe.fileno()
    mode = os.fstat(fileno).st_mode
    if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode)):
        raise ValueError("Pipe transport is only for pipes, sockets and character "
                         "devices" if writing else
                         "Pipe transport is for pipes/sockets only.")
    os.set_blocking(fileno, False)
    return os.dup(fileno)


# How _wrap_pipe opens the fd (libtapio's tapio_pipe_read, _write,
# _read_relayed).
_READ, _WRITE, _READ_RELAYED = 0, 1, 2


class RelayedPipe:
    """A child's output pipe given to connect_read_pipe: read through
    libtapio's splice relay (tapio_pipe_read_relayed), the transport is
    otherwise the pipe's own."""

    __slots__ = ("pipe",)

    def __init__(self, pipe):
        self.pipe = pipe

    def fileno(self):
        return self.pipe.fileno()


class PipesMixin:
    async def _connect_pipe(self, protocol_factory, pipe, writing):
        mode = _WRITE if writing else _READ
        if isinstance(pipe, RelayedPipe):
            pipe, mode = pipe.pipe, _READ_RELAYED
        protocol = protocol_factory()
        fd = _pipe_fd(pipe, writing)
        transport = self._wrap_pipe(fd, pipe, protocol, mode, {"pipe": pipe})
        return await connection_made(self, transport, protocol)

    async def connect_read_pipe(self, protocol_factory, pipe):
        return await self._connect_pipe(protocol_factory, pipe, False)

    async def connect_write_pipe(self, protocol_factory, pipe):
        return await self._connect_pipe(protocol_factory, pipe, True)
