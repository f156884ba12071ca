"""loop.connect_read_pipe / connect_write_pipe: libtapio's pipe transports
over a pipe, FIFO, socket or terminal given as a file object."""
import os
import stat

from . import _tapio
from ._helpers import check_protocol, connection_made


def _pipe_fd(pipe, writing):
    """The pipe's fd, after asyncio's checks, made non-blocking."""
    fileno = pipe.fileno()
    mode = os.fstat(fileno).st_mode
    if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode)):
        raise ValueError("Pipe transport is only for pipes, sockets and character "
                         "devices" if writing else
                         "Pipe transport is for pipes/sockets only.")
    os.set_blocking(fileno, False)
    return fileno


class ChildPipe:
    """A child's pipe that libtapio connected when it adopted the child. A
    subprocess transport hands it to connect_read_pipe/connect_write_pipe,
    as asyncio connects a child's pipes through them (so code wrapping those
    methods sees the pipes), and gets back that same transport."""

    __slots__ = ("transport",)

    def __init__(self, transport):
        self.transport = transport


class PipesMixin:
    async def _connect_pipe(self, protocol_factory, pipe, writing):
        if type(pipe) is ChildPipe:
            return pipe.transport, pipe.transport.get_protocol()
        protocol = protocol_factory()
        fd = _pipe_fd(pipe, writing)
        check_protocol(protocol, pipe)
        transport = self._wrap_pipe(
            fd=os.dup(fd), pipe=pipe, protocol=protocol, extra={"pipe": pipe},
            mode=_tapio.PIPE_WRITE if writing else _tapio.PIPE_READ)
        return await connection_made(self, transport, protocol)

    async def connect_read_pipe(self, protocol_factory, pipe):
        return await self._connect_pipe(protocol_factory, pipe, False)

    async def connect_write_pipe(self, protocol_factory, pipe):
        return await self._connect_pipe(protocol_factory, pipe, True)

    def _pipe_ended_twice(self, transport):
        """A write pipe aborted once its end is due: asyncio's runs that end
        a second time, which fails on the pipe object it let go of, and the
        loop's exception handler hears of it."""
        self.call_soon(_end_again, transport)


def _end_again(transport):
    raise AttributeError("'NoneType' object has no attribute 'close'")
