"""`vton study serve`: the study app under uvicorn, on a socket bound before serving (so port 0 can be reported)."""
from __future__ import annotations

import socket
import threading
from pathlib import Path

import uvicorn

from vton.studies.app import Settings, create_app
from vton.studies.options import ServeOptions

KEEP_ALIVE_S = 5  # an idle connection is closed after this
MAX_HEADER_BYTES = 16 * 1024  # h11's limit on a request's head: a longer one is refused
MAX_CONNECTIONS = 1000  # beyond this uvicorn answers 503 instead of queueing without bound


class StudyServer:
    """A uvicorn server for one study folder, bound (not yet serving) on creation."""

    def __init__(self, folder: Path, host: str = ServeOptions.host, port: int = ServeOptions.port,
                 settings: Settings = Settings()) -> None:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        self.socket = socket.socket(family, kind, proto)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(address)
        self.socket.listen(128)
        config = uvicorn.Config(
            create_app(Path(folder), settings), log_level="warning", access_log=False, lifespan="on",
            timeout_keep_alive=KEEP_ALIVE_S, h11_max_incomplete_event_size=MAX_HEADER_BYTES,
            limit_concurrency=MAX_CONNECTIONS, http="h11", server_header=False,
        )
        self.server = uvicorn.Server(config)

    @property
    def host(self) -> str:
        return self.socket.getsockname()[0]

    @property
    def port(self) -> int:
        return self.socket.getsockname()[1]

    def serve(self) -> None:
        """Serve until stopped (Ctrl-C in the main thread, or `stop` from another)."""
        self.server.run(sockets=[self.socket])

    def start(self) -> threading.Thread:
        """Serve in a daemon thread; returns once the server accepts connections."""
        thread = threading.Thread(target=self.serve, daemon=True)
        thread.start()
        while not self.server.started and thread.is_alive():
            threading.Event().wait(0.01)
        return thread

    def stop(self) -> None:
        self.server.should_exit = True
