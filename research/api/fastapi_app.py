"""The five endpoints in FastAPI (served by uvicorn). OpenAPI: generated, nothing to add."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI, Header, HTTPException, Query, UploadFile
from pydantic import BaseModel

from research.api import common

app = FastAPI(title="study", version="1")


class Login(BaseModel):
    email: str
    password: str


class Token(BaseModel):
    access_token: str


class Checksum(BaseModel):
    sha256: str
    size: int


class Document(BaseModel):
    id: str
    owner: str
    title: str


class Page(BaseModel):
    items: list[Document]
    next_cursor: str | None


class Hit(Document):
    score: int


class Hits(BaseModel):
    items: list[Hit]


def user(authorization: Annotated[str | None, Header()] = None) -> str:
    email = common.verify(authorization)
    if email is None:
        raise HTTPException(401, "Sign in first.")
    return email


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/auth/login")
async def login(body: Login) -> Token:
    token = common.issue_token(body.email, body.password)
    if token is None:
        raise HTTPException(401, "Wrong email or password.")
    return Token(access_token=token)


@app.post("/upload")
async def upload(file: UploadFile, email: Annotated[str, Depends(user)]) -> Checksum:
    data = await file.read(common.MAX_UPLOAD + 1)
    if len(data) > common.MAX_UPLOAD:
        raise HTTPException(413, "File too large: 1 MB at most.")
    return Checksum.model_validate(common.checksum(data))


@app.get("/documents")
async def documents(
    email: Annotated[str, Depends(user)],
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: str | None = None,
) -> Page:
    return Page.model_validate(common.page(email, limit, cursor))


@app.get("/search")
async def search(
    email: Annotated[str, Depends(user)], q: Annotated[str, Query(min_length=1)]
) -> Hits:
    return Hits.model_validate(common.search(email, q))
