"""Real services for the real-world suite, started from Debian's packages in
a temporary directory and stopped afterwards: redis-server, a PostgreSQL
cluster made by initdb, and gunicorn. A missing program raises (the tests
error); nothing here skips.

Each service listens on 127.0.0.1 and on a Unix socket inside its temporary
directory, so that clients exercise both kinds of connection.
"""
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE_DIR = os.path.join(os.path.dirname(os.path.dirname(HERE)), "python")
DEADLINE = 20.0  # seconds for a service to start answering or to stop

POSTGRES_BIN = "/usr/lib/postgresql/15/bin"


def wait_until(predicate, what, timeout=DEADLINE):
    """Poll predicate() until it is true; AssertionError on timeout."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def free_port():
    """A TCP port of 127.0.0.1 that was free a moment ago (for programs that
    cannot be handed a bound socket)."""
    with socket.create_server(("127.0.0.1", 0)) as sock:
        return sock.getsockname()[1]


def read_file(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return "(no log)"


def require_program(path):
    """path itself if it is an executable; FileNotFoundError otherwise, so a
    service that is not installed fails the tests that need it."""
    found = shutil.which(path)
    if found is None:
        raise FileNotFoundError(f"{path} is not installed (scripts/install-deps.sh installs it)")
    return found


class RedisServer:
    """redis-server without persistence, on 127.0.0.1:port and on the Unix
    socket unix_path."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="tapio-redis-")
        self.unix_path = os.path.join(self.dir, "redis.sock")
        self.log_path = os.path.join(self.dir, "redis.log")
        self.port = free_port()
        self.process = None

    def start(self):
        command = [require_program("redis-server"), "--port", str(self.port),
                   "--bind", "127.0.0.1", "--unixsocket", self.unix_path,
                   "--unixsocketperm", "700", "--save", "", "--appendonly", "no",
                   "--dir", self.dir, "--logfile", self.log_path, "--daemonize", "no"]
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_until(self._answers_ping, "redis-server to answer PING")
        except BaseException:
            self.stop()
            raise
        return self

    def _answers_ping(self):
        if self.process.poll() is not None:
            raise AssertionError("redis-server exited:\n" + read_file(self.log_path))
        try:
            with socket.socket(socket.AF_UNIX) as sock:
                sock.settimeout(DEADLINE)
                sock.connect(self.unix_path)
                sock.sendall(b"PING\r\n")
                return sock.recv(64) == b"+PONG\r\n"
        except OSError:
            return False

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(DEADLINE)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class PostgresCluster:
    """A PostgreSQL cluster made by initdb in a temporary directory, trusting
    every local connection, listening on 127.0.0.1:port and on a Unix socket
    in socket_dir. PostgreSQL refuses to run as root: when the tests run as
    root, the cluster belongs to the postgres system user (runuser)."""

    USER = "postgres"  # the superuser initdb creates, and the system user

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="tapio-postgres-")
        self.data_dir = os.path.join(self.dir, "data")
        self.socket_dir = self.dir
        self.log_path = os.path.join(self.dir, "postgres.log")
        self.port = free_port()
        self.started = False

    def _as_owner(self, program, *args):
        command = [require_program(os.path.join(POSTGRES_BIN, program)), *args]
        if os.geteuid() == 0:
            command = [require_program("runuser"), "-u", self.USER, "--", *command]
        return command

    def _run(self, program, *args):
        result = subprocess.run(self._as_owner(program, *args), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if result.returncode != 0:
            raise AssertionError(f"{program} failed ({result.returncode}):\n{result.stdout}\n"
                                 + read_file(self.log_path))

    def start(self):
        try:
            if os.geteuid() == 0:
                owner = pwd.getpwnam(self.USER)
                os.chown(self.dir, owner.pw_uid, owner.pw_gid)
            # -N: no fsync; the cluster is thrown away.
            self._run("initdb", "-D", self.data_dir, "-A", "trust", "-U", self.USER,
                      "-N", "-E", "UTF8", "--no-instructions")
            options = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.socket_dir}"
                       " -c fsync=off -c synchronous_commit=off -c full_page_writes=off")
            self._run("pg_ctl", "-D", self.data_dir, "-l", self.log_path, "-o", options,
                      "-w", "-t", str(int(DEADLINE)), "start")
            self.started = True
        except BaseException:
            self.stop()
            raise
        return self

    def connect_kwargs(self, unix=True):
        """asyncpg.connect() arguments for this cluster."""
        host = self.socket_dir if unix else "127.0.0.1"
        return {"host": host, "port": self.port, "user": self.USER, "database": "postgres"}

    def stop(self):
        if self.started:
            self._run("pg_ctl", "-D", self.data_dir, "-m", "fast", "-w", "stop")
            self.started = False
        shutil.rmtree(self.dir, ignore_errors=True)


class Gunicorn:
    """gunicorn with a worker class and two workers, serving app (a
    module:attribute, or module:factory()) importable from app_dir or
    pythonpath, logging into app_dir, listening on a socket bound here and
    handed over as fd:// (no port race)."""

    def __init__(self, worker, app, app_dir, workers=2, pythonpath=()):
        self.log_path = os.path.join(app_dir, "gunicorn.log")
        listener = socket.create_server(("127.0.0.1", 0))
        self.port = listener.getsockname()[1]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([PACKAGE_DIR, app_dir, *pythonpath]))
        with listener, open(self.log_path, "w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "-k", worker, "-w", str(workers),
                 "--graceful-timeout", "10", "-b", f"fd://{listener.fileno()}",
                 "--chdir", app_dir, app],
                env=env, pass_fds=[listener.fileno()], stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def log(self):
        return read_file(self.log_path)

    def stop(self):
        """SIGTERM, then the exit status and the log (for the caller to check)."""
        self.process.send_signal(signal.SIGTERM)
        try:
            returncode = self.process.wait(DEADLINE)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("gunicorn did not stop on SIGTERM:\n" + self.log())
        wait_until(self._group_is_gone, "gunicorn's workers to exit")
        return returncode, self.log()

    def _group_is_gone(self):
        try:
            os.killpg(self.process.pid, 0)
        except ProcessLookupError:
            return True
        return False

    def kill(self):
        """No gunicorn process outlives the test, whatever happened."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()


def kind_of(obj):
    """'tapio' or 'asyncio' (or another package's name): the package that
    defines obj's class, e.g. of a running loop or of a library's transport,
    to show that a library really ran on the loop under test."""
    return type(obj).__module__.split(".")[0]
