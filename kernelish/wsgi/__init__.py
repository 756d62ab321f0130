"""WSGI on the pre-forking Daemon: ``kernelish serve module:app`` and :func:`serve`.

gunicorn's role (its arbiter and sync worker) on the toolbox's pieces:
:class:`~kernelish.components.server_http.ServerHTTP` answers, the
:class:`~kernelish.components.daemon.DaemonComponent` keeps the children.
``serve(app, bind='127.0.0.1:8000', workers=4, ...)`` is the Python API;
:class:`WSGIHandler` is the adapter alone, a ServerHTTP handler for any
PEP 3333 application.  See ``docs/toolbox/wsgi.md``.
"""

from ._adapter import WSGIApp as WSGIApp
from ._adapter import WSGIHandler as WSGIHandler
from ._app import AppImportError as AppImportError
from ._app import import_app as import_app
from ._cli import COMMAND as COMMAND
from ._cli import add_subcommand as add_subcommand
from ._cli import run as run_command
from ._config import ServeConfig as ServeConfig
from ._config import ServeConfigError as ServeConfigError
from ._serve import serve as serve

__all__ = [
    "COMMAND",
    "AppImportError",
    "ServeConfig",
    "ServeConfigError",
    "WSGIApp",
    "WSGIHandler",
    "add_subcommand",
    "import_app",
    "run_command",
    "serve",
]
