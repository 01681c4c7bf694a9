"""The baseline for bench/signup.py: a bare FastAPI endpoint doing one INSERT."""

from __future__ import annotations

import os
import uuid

from fastapi import FastAPI
from sqlalchemy import create_engine, text

engine = create_engine(
    os.environ["DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://", 1),
    pool_size=10,
    max_overflow=10,
)
with engine.begin() as conn:
    conn.execute(
        text(
            "CREATE TABLE IF NOT EXISTS bench_baseline (id uuid PRIMARY KEY, "
            "email text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())"
        )
    )
app = FastAPI()


@app.post("/insert", status_code=201)
def insert(body: dict[str, str]) -> dict[str, str]:
    new_id = uuid.uuid4()
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO bench_baseline (id, email) VALUES (:id, :email)"),
            {"id": new_id, "email": body.get("email", "")},
        )
    return {"id": str(new_id)}
