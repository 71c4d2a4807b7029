"""A small FastAPI app measured by examples/fastapi-uvicorn and examples/fastapi-hypercorn.

One line (``init_app``) adds servercov's token-gated shutdown route; without
``SERVERCOV_TOKEN`` (in production) it adds nothing.
"""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

from nose2_servercov.asgi import init_app

CATALOGUE = {1: "pen", 2: "ink"}
state: dict[str, bool] = {}


@asynccontextmanager
async def lifespan(app: FastAPI):
    state["open"] = True
    yield
    state["open"] = False  # shutdown code: measured because the server stops in order


app = FastAPI(lifespan=lifespan)


class Order(BaseModel):
    item: int
    quantity: int = 1


@app.get("/health/")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/items/{number}/")
async def item(number: int) -> dict[str, object]:
    if number not in CATALOGUE:
        raise HTTPException(404, "no such item")
    return {"number": number, "name": CATALOGUE[number]}


@app.post("/orders/", status_code=201)
async def order(body: Order) -> dict[str, object]:
    if body.quantity > 10:
        raise HTTPException(422, "at most 10 at a time")
    return {"item": CATALOGUE.get(body.item, "?"), "quantity": body.quantity}


init_app(app)
