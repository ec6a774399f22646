"""`partsight serve` on one machine: the app under uvicorn, which stops on Ctrl+C or SIGTERM;
the jobs, models and temporary folders go with it."""
from __future__ import annotations

import dataclasses
import errno
import socket

import uvicorn

from realtime.logs import uvicorn_notes_to_log_file
from realtime.serve.app import create_app
from realtime.serve.service import Service
from realtime.serve.settings import ServeSettings


def serving_line(settings: ServeSettings, how: str) -> str:
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    auth = "bearer token required" if settings.token else "no token"
    return (f"partsight: serving on http://{host}:{settings.port}/ ({how}; API docs at /docs; {auth}); "
            "Ctrl+C stops")


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0: any free one). ValueError in one line when the
    port is taken or the address is not this machine's."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ValueError(f"port {port} on {host} is in use (another server?); choose another --port") from None
        raise ValueError(f"cannot listen on {host} port {port}: {exc.strerror or exc}") from None


class _Server(uvicorn.Server):
    """uvicorn's server that, stopping, tells the service's jobs to stop before it closes the
    connections (the live ones with 1012, "service restart") and waits for them (up to its
    graceful-shutdown timeout): the jobs end meanwhile, not after that wait."""

    def __init__(self, config: uvicorn.Config, service: Service) -> None:
        super().__init__(config)
        self.service = service

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.service.stop()
        await super().shutdown(sockets=sockets)


def run_uvicorn(settings: ServeSettings) -> int:
    """Serves until Ctrl+C or SIGTERM; says "serving on" once the port listens (its number when
    --port 0 let the system choose). ValueError for a port it cannot have."""
    sock = listen(settings.host, settings.port)
    try:
        settings = dataclasses.replace(settings, port=sock.getsockname()[1])
        service = Service.local(settings)
        try:
            config = uvicorn.Config(create_app(service), host=settings.host, port=settings.port, log_config=None,
                                    timeout_graceful_shutdown=5, ws_max_size=settings.limits.max_upload_bytes)
            server = _Server(config, service)
            print(serving_line(settings, "uvicorn"), flush=True)
            with uvicorn_notes_to_log_file():
                server.run(sockets=[sock])
        finally:
            service.close()
    finally:
        sock.close()
    return 0 if server.started else 1
