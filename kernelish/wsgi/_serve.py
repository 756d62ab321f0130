"""``serve()``: a WSGI application on the pre-forking Daemon (gunicorn's arbiter).

Discussion
----------
The pieces are the toolbox's.  The children answer with a
:class:`~._adapter.WSGIHandler`: as sync workers (:mod:`._sync`, the
default: one connection at a time, closed after its request), or on
:class:`~kernelish.components.server_http.ServerHTTP` with ``Daemon=True``
when ``worker_connections`` > 1, ``keep_alive`` or a status page asks for
it.  :class:`~kernelish.components.daemon.DaemonComponent` keeps ``workers``
children (``start_children = max_children = min_spare = max_spare``: a fixed
pool, gunicorn's), detaches, drops privileges, writes the pidfile, speaks
systemd's notify protocol and adopts its sockets, stops gracefully on TERM
(and fast on QUIT), reopens its logfile on HUP.  What gunicorn's arbiter
does beyond that lives in one small session here (:class:`Arbiter`):

* in each child, as it starts (``daemon_child``): the application is
  imported -- unless ``preload`` imported it in the parent before the fork
  -- the child's own request limit is drawn (``max_requests`` plus up to
  ``max_requests_jitter``), and the ``timeout`` alarm is armed;
* in the parent, on HUP: the access log is reopened and every child is
  sent TERM; each finishes the request it has, exits, and the Daemon forks
  its replacement at once -- which, not preloaded, imports the application
  anew (gunicorn's graceful reload).  Children are replaced one by one as
  they finish, so there are never more than ``workers``;
* a child that cannot import the application exits with status 3
  (gunicorn's ``WORKER_BOOT_ERROR``) and the parent then stops, as
  gunicorn's arbiter halts with "Worker failed to boot": a broken
  application is not forked over and over.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import socket
import sys
import traceback
from pathlib import Path
from typing import Any

from kernelish import ARG1, ARG2, KERNEL, HandlerArgs, Session, poe_kernel
from kernelish._activation import take_inherited_socket

from ._adapter import WSGIHandler
from ._app import check_app_spec, import_app
from ._config import LEVELS, Bind, ServeConfig, serve_config
from ._sync import SyncWorker

__all__ = ["WORKER_BOOT_ERROR", "Arbiter", "ReopenableFileHandler", "serve"]

log = logging.getLogger("kernelish.wsgi")

#: A child that could not import the application exits with this (gunicorn's).
WORKER_BOOT_ERROR = 3
#: ``max_requests=0``: no limit (the Daemon counts up to this).
_NO_LIMIT = 2**62
#: The access log's logger.
ACCESS_LOGGER = "kernelish.wsgi.access"


class ReopenableFileHandler(logging.FileHandler):
    """A log file that HUP reopens (log rotation), one line per record."""

    def reopen(self) -> None:
        """Close and open the file again by its name."""
        self.acquire()
        try:
            if self.stream is not None:
                self.stream.close()
            self.stream = self._open()
        finally:
            self.release()


def _access_log(spec: str | None) -> tuple[logging.Logger | bool, ReopenableFileHandler | None]:
    """``AccessLog`` for ServerHTTP: False without a file, else a logger."""
    if spec is None:
        return False, None
    logger = logging.getLogger(ACCESS_LOGGER)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for old in list(logger.handlers):
        logger.removeHandler(old)
    opened: ReopenableFileHandler | None = None
    handler: logging.Handler
    if spec == "-":
        handler = logging.StreamHandler(sys.stdout)
    else:
        handler = opened = ReopenableFileHandler(spec, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    return logger, opened


class Arbiter:
    """The WSGI server's own session, in the parent and in each child
    (gunicorn's arbiter, the part the Daemon does not do; see the module)."""

    def __init__(self, config: ServeConfig, handler: WSGIHandler, daemon: Any) -> None:
        self.config = config
        self.handler = handler
        self.daemon = daemon  # the DaemonComponent
        self.access_file: ReopenableFileHandler | None = None
        #: Set when a child failed to boot: serve() returns WORKER_BOOT_ERROR.
        self.boot_failed = False
        self.session = Session.create(
            inline_states={
                "_start": self._start,
                "daemon_child": self._child,
                "wsgi_hup": self._hup,
                "wsgi_chld": self._chld,
                "daemon_shutdown": self._bye,
            }
        )

    def _start(self, _: HandlerArgs) -> None:
        kernel = _[KERNEL]
        kernel.alias_set("kernelish.wsgi")
        kernel.sig("daemon_child", "daemon_child")
        kernel.sig("daemon_shutdown", "daemon_shutdown")
        kernel.sig("HUP", "wsgi_hup")
        kernel.sig("CHLD", "wsgi_chld")

    def _child(self, _: HandlerArgs) -> None:
        """A child starts: its application, its request limit, its alarm."""
        kernel = _[KERNEL]
        kernel.sig("HUP")
        kernel.sig("CHLD")
        config = self.config
        role = self.daemon.child
        if role is not None and config.max_requests:
            role.max_requests = config.max_requests + random.randint(0, config.max_requests_jitter)
        log.info("%d: Booting worker with pid: %d", os.getpid(), os.getpid())
        try:
            self.handler.load()
        except BaseException as exc:
            text = "".join(traceback.format_exception(exc)).rstrip()
            log.error("%d: Exception in worker process (the application):\n%s", os.getpid(), text)
            for stream in (sys.stdout, sys.stderr):
                stream.flush()
            os._exit(WORKER_BOOT_ERROR)
        self.handler.arm_timeout()

    def _hup(self, _: HandlerArgs) -> None:
        """HUP in the parent: reopen the access log, replace every child."""
        _[KERNEL].sig_handled()
        pool = self.daemon.pool
        if pool is None:
            return
        if self.access_file is not None:
            self.access_file.reopen()
        pids = sorted(pool.children)
        what = (
            "preloaded application kept" if self.config.preload else "re-importing the application"
        )
        log.info(
            "%d: Handling signal: hup; replacing %d workers (%s)", os.getpid(), len(pids), what
        )
        for pid in pids:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def _chld(self, _: HandlerArgs) -> None:
        """A child exited: one that failed to boot stops the server."""
        pid, status = _[ARG1], _[ARG2]
        if self.boot_failed or not isinstance(status, int):
            return
        if os.WIFEXITED(status) and os.WEXITSTATUS(status) == WORKER_BOOT_ERROR:
            self.boot_failed = True
            log.error("%d: Worker (pid:%d) failed to boot; shutting down", os.getpid(), pid)
            _[KERNEL].call(self.daemon.config.alias, "shutdown")
        elif os.WIFSIGNALED(status) and os.WTERMSIG(status) not in (
            signal.SIGTERM,
            signal.SIGINT,
            signal.SIGKILL,
        ):
            log.warning(
                "%d: Worker (pid:%d) was killed by signal %d", os.getpid(), pid, os.WTERMSIG(status)
            )

    def _bye(self, _: HandlerArgs) -> None:
        kernel = _[KERNEL]
        for name in ("HUP", "CHLD", "daemon_child", "daemon_shutdown"):
            kernel.sig(name)
        kernel.alias_remove("kernelish.wsgi")


class _PidFormatter(logging.Formatter):
    """``pid: message`` (messages that start with the pid are left alone),
    the Daemon's format."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        prefix = f"{record.process}: "
        return text if text.startswith(prefix) else prefix + text


def _log_handler() -> None:
    """kernelish's log lines to stderr (the error log once the Daemon opened
    it), unless the program configured logging for ``kernelish`` itself."""
    logger = logging.getLogger("kernelish")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_PidFormatter("%(message)s"))
        logger.addHandler(handler)
        logger.propagate = False


def _prepare(config: ServeConfig) -> None:
    """Environment, working directory, import path: before any import."""
    for item in config.raw_env:
        key, _, value = item.partition("=")
        os.environ[key] = value
    if config.chdir is not None:
        os.chdir(config.chdir)
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)  # gunicorn's: module:app from the working directory
    level = LEVELS[config.log_level]
    for name in ("kernelish.wsgi", "kernelish.components.server_http"):
        logging.getLogger(name).setLevel(level)


def serve(app: Any, **options: Any) -> int:
    """Run the WSGI application ``app`` on the pre-forking Daemon until it
    is stopped (TERM, QUIT, ``kernelish stop PIDFILE``); the exit status.

    ``app`` is a WSGI callable or ``'module:app'`` / ``'module:factory()'``
    (gunicorn's forms).  The options are :class:`~._config.ServeConfig`'s --
    gunicorn's settings by name: ``bind``, ``workers``, ``max_requests``,
    ``max_requests_jitter``, ``preload``, ``timeout``, ``graceful_timeout``,
    ``keep_alive``, ``user``, ``group``, ``pidfile``, ``daemon``, ``chdir``,
    ``access_logfile``, ``error_logfile``, ``limit_request_*`` and more; a
    wrong one raises :class:`~._config.ServeConfigError` naming it, before
    anything starts.  ``PORT=N`` is printed first on stdout (the port bound,
    which ``bind='127.0.0.1:0'`` lets the system choose).

    In a child the call never returns: the child leaves with ``os._exit``.
    """
    config = serve_config(app=app, **options)
    _prepare(config)
    spec = config.app if isinstance(config.app, str) else None
    if spec is None:
        handler = WSGIHandler(config.app, script_name=config.script_name, timeout=config.timeout)
    elif config.preload:
        handler = WSGIHandler(
            import_app(spec), script_name=config.script_name, timeout=config.timeout
        )
    else:
        check_app_spec(spec)  # found, not run: each child imports it after the fork
        handler = WSGIHandler(
            loader=lambda: import_app(spec),
            script_name=config.script_name,
            timeout=config.timeout,
        )
    return _run(config, handler)


def _run(config: ServeConfig, handler: WSGIHandler) -> int:
    from kernelish.components.daemon import Daemon, DaemonComponent

    _log_handler()

    bind = config.bind
    access, access_file = _access_log(config.access_logfile)
    if sync_worker(config):
        try:
            sock = _listen(bind)
        except OSError as exc:
            sys.stderr.write(f"kernelish serve: cannot listen on {bind}: {exc}\n")
            return 1
        port = sock.getsockname()[1] if bind.unix is None else None
        worker = SyncWorker(
            sock,
            handler,
            header_timeout=config.header_timeout,
            write_timeout=config.timeout or 60.0,
            max_content=config.limit_request_body,
            max_request_line=config.limit_request_line or 8190,
            max_fields=config.limit_request_fields or 32768,
            max_field_size=config.limit_request_field_size or 65536,
            access=access if isinstance(access, logging.Logger) else None,
            server_header=config.server_header,
        )
        worker.warm_up()
    else:
        port = _server_http(config, handler, access)
        if port is False:
            sys.stderr.write(f"kernelish serve: cannot listen on {bind}\n")
            return 1
    if port is not None:
        handler.server_name = bind.host
        print(f"PORT={port}", flush=True)
    daemon = DaemonComponent.spawn(
        alias="Daemon",
        detach=config.daemon,
        logfile=config.error_logfile if config.error_logfile not in (None, "-") else None,
        pidfile=config.pidfile,
        user=config.user,
        group=config.group,
        notify=config.notify,
        start_children=config.workers,
        max_children=config.workers,
        min_spare=config.workers,
        max_spare=config.workers,
        requests=config.max_requests or _NO_LIMIT,
        shutdown_timeout=config.graceful_timeout,
    )
    if sync_worker(config):
        worker.component = daemon
    arbiter = Arbiter(config, handler, daemon)
    arbiter.access_file = access_file
    where = f"{bind.host}:{port}" if port is not None else str(bind)
    kind = "sync" if sync_worker(config) else f"ServerHTTP, {config.worker_connections} connections"
    log.info("%d: Listening at: %s (%d workers: %s)", os.getpid(), where, config.workers, kind)
    poe_kernel.run()
    if Daemon.is_child():
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        if access_file is not None:
            access_file.flush()
        os._exit(0)
    return WORKER_BOOT_ERROR if arbiter.boot_failed else 0


def sync_worker(config: ServeConfig) -> bool:
    """Whether the children are sync workers (:mod:`._sync`) rather than
    ServerHTTP: one connection at a time, no keep-alive, no status page."""
    return (
        config.worker_connections == 1
        and not config.keep_alive
        and config.status is None
        and config.metrics is None
    )


def _listen(bind: Bind) -> socket.socket:
    """The listening socket: systemd's (socket activation), else bound here."""
    sock = take_inherited_socket()
    if sock is None:
        if bind.unix is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            path = Path(bind.unix)
            if path.is_socket():
                path.unlink()  # a previous run's
            sock.bind(bind.unix)
        else:
            family = socket.AF_INET6 if ":" in bind.host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((bind.host, bind.port))
            except OSError:
                sock.close()
                raise
        sock.listen(2048)  # gunicorn's backlog
    sock.setblocking(False)
    sock.set_inheritable(False)
    return sock


def _server_http(config: ServeConfig, handler: WSGIHandler, access: Any) -> int | bool | None:
    """ServerHTTP with Daemon=True answering with ``handler``: its port
    (None for a UNIX socket), False if it could not listen."""
    from kernelish.components.server_http import ServerHTTP

    bind = config.bind
    listen: dict[str, Any] = (
        {"Address": bind.unix, "Domain": socket.AF_UNIX}
        if bind.unix is not None
        else {"Address": bind.host, "Port": bind.port}
    )
    if bind.unix is None and ":" in bind.host:
        listen["Domain"] = socket.AF_INET6
    keep = config.keep_alive > 0
    server = ServerHTTP(
        **listen,
        Daemon=True,
        Handler=handler,
        Headers={"Server": config.server_header},
        Concurrency=config.worker_connections,
        KeepAlive=100 if keep else 0,
        KeepAliveTimeout=config.keep_alive if keep else 5.0,
        HeaderTimeout=config.header_timeout,
        # A sync application cannot be answered for while it runs: the
        # child's timeout alarm is what bounds it (None: no 503 race).
        RequestTimeout=None,
        MaxContent=config.limit_request_body,
        MaxRequestLine=config.limit_request_line or 8190,
        MaxFields=config.limit_request_fields or 32768,
        MaxFieldSize=config.limit_request_field_size or 65536,
        AccessLog=access,
        Status=config.status,
        Metrics=config.metrics,
    )
    if server.address is None:
        return False
    return server.port
