"""A FastAPI app whose every measured line depends only on the requests it gets.

The same routes as the servers scenario's Flask app (so the same load and plan
drive it), plus lifespan code before and after ``yield``: the code after it
runs only when the server shuts down in its orderly way.  ``/slow/`` blocks
the event loop on purpose, so concurrent requests spread over the workers;
``/worker/first/`` and ``/worker/second/`` are each asked of a different
worker (test_workers.py): both workers' lines must be kept.
"""

from __future__ import annotations

import os
import threading
import time
from contextlib import asynccontextmanager

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from nose2_servercov.asgi import init_app


def create_app() -> FastAPI:
    state: dict[str, bool] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        state["started"] = True
        yield
        state["stopped"] = True  # lifespan shutdown: measured only after an orderly stop
        print("lifespan shutdown done", flush=True)

    app = FastAPI(lifespan=lifespan)

    @app.get("/health/")
    async def health():
        return {"status": "ok"}

    @app.get("/pid/")
    async def pid():
        return {"pid": os.getpid(), "thread": threading.get_ident()}

    @app.get("/slow/")
    async def slow():
        time.sleep(0.02)  # blocks this worker's loop: concurrent requests go to the others
        return PlainTextResponse("slow")

    @app.get("/items/{number}/")
    async def item(number: int):
        if number % 2:  # noqa: SIM108 (two branches, on purpose)
            kind = "odd"
        else:
            kind = "even"
        if number > 100:
            raise HTTPException(404)
        return {"number": number, "kind": kind}

    @app.post("/echo/")
    async def echo(request: Request):
        try:
            payload = await request.json()
        except ValueError:
            return JSONResponse({"error": "not json"}, status_code=400)
        if "double" in payload:
            payload["double"] = payload["double"] * 2
        return payload

    @app.get("/boom/")
    async def boom():
        raise RuntimeError("a handler that fails: the server answers 500")

    @app.get("/once/a/")
    async def once_a():
        return {"once": "a", "pid": os.getpid()}

    @app.get("/once/b/")
    async def once_b():
        return {"once": "b", "pid": os.getpid()}

    @app.get("/once/c/")
    async def once_c():
        return {"once": "c", "pid": os.getpid()}

    @app.get("/once/d/")
    async def once_d():
        return {"once": "d", "pid": os.getpid()}

    @app.get("/after/kill/")
    async def after_kill():
        return {"after": "kill", "pid": os.getpid()}

    @app.get("/worker/first/")
    async def worker_first():
        return {"worker": "first", "pid": os.getpid()}

    @app.get("/worker/second/")
    async def worker_second():
        return {"worker": "second", "pid": os.getpid()}

    @app.get("/never/")
    async def never():
        return "never requested"

    init_app(app)
    return app
