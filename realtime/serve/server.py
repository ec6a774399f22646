"""`partsight serve` on one machine: the app under uvicorn, which stops on Ctrl+C or SIGTERM;
the jobs, models and temporary folders go with it."""
from __future__ import annotations

import uvicorn

from realtime.serve.app import create_app
from realtime.serve.service import Service
from realtime.serve.settings import ServeSettings


def serving_line(settings: ServeSettings, how: str) -> str:
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    auth = "bearer token required" if settings.token else "no token"
    return (f"partsight: serving on http://{host}:{settings.port}/ ({how}; API docs at /docs; {auth}); "
            "Ctrl+C stops")


def run_uvicorn(settings: ServeSettings) -> int:
    service = Service.local(settings)
    try:
        config = uvicorn.Config(create_app(service), host=settings.host, port=settings.port, log_config=None,
                                timeout_graceful_shutdown=5, ws_max_size=settings.limits.max_upload_bytes)
        server = uvicorn.Server(config)
        print(serving_line(settings, "uvicorn"), flush=True)
        server.run()
    finally:
        service.close()
    return 0 if server.started else 1
