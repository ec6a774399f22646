"""The parsing service (`partsight serve`, the `[serve]` extra): an HTTP API, a web page and a live
WebSocket built on the engine (realtime.build, realtime.job, realtime.metrics, realtime.render), served
by uvicorn or scaled out as a Ray Serve deployment. The rest of realtime never imports this package,
so the desktop app needs none of FastAPI, uvicorn or Ray (an import-linter contract)."""
