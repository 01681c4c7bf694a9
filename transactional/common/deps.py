"""What every route gets from FastAPI, as `Annotated` dependencies: the one way in.

    def get_customer(customer_id: UUID, db: ReadConn, caller: ...) -> Customer
    def create(body: ..., db: Transaction, ...) -> ...

`Transaction` commits when the route returns and rolls back when it raises, before the
response is sent (scope "function"): a client never sees a success that did not commit.
Money paths that must commit in steps (a charge: the pending row, then Stripe, then the
outcome) take the `Db` engine and open their own transactions.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends
from sqlalchemy import Connection, Engine

from paywall import db
from paywall.settings import Settings, get_settings


# These two are async because they never block (settings and the engine are built once and
# cached; no connection is opened): FastAPI then resolves them on the event loop. Sync, they
# would each wait for a threadpool thread, and auth's /jwks.json, which its own verifiers may
# be holding every thread waiting for, could not answer.
async def current_settings() -> Settings:
    return get_settings()


CurrentSettings = Annotated[Settings, Depends(current_settings)]


async def database(settings: CurrentSettings) -> Engine:
    return db.engine(settings)


Db = Annotated[Engine, Depends(database)]


def read_connection(engine: Db) -> Iterator[Connection]:
    with engine.connect() as conn:
        yield conn


def transaction(engine: Db) -> Iterator[Connection]:
    with engine.begin() as conn:
        yield conn


ReadConn = Annotated[Connection, Depends(read_connection, scope="function")]
Transaction = Annotated[Connection, Depends(transaction, scope="function")]
