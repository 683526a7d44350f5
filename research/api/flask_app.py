"""The five endpoints in Flask with flask-smorest (marshmallow schemas give the OpenAPI
document), served by gunicorn."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import Flask, request
from flask_smorest import Api, Blueprint, abort
from flask_smorest.fields import Upload

from research.api import common

app = Flask(__name__)
app.config.update(
    API_TITLE="study",
    API_VERSION="1",
    OPENAPI_VERSION="3.0.3",
    OPENAPI_URL_PREFIX="/",
    OPENAPI_JSON_PATH="openapi.json",
    MAX_CONTENT_LENGTH=common.MAX_UPLOAD + 64_000,
)
api = Api(app)
blp = Blueprint("study", __name__)


class Login(ma.Schema):
    email = ma.fields.String(required=True)
    password = ma.fields.String(required=True)


class Token(ma.Schema):
    access_token = ma.fields.String()


class Status(ma.Schema):
    status = ma.fields.String()


class File(ma.Schema):
    file = Upload(required=True)


class Checksum(ma.Schema):
    sha256 = ma.fields.String()
    size = ma.fields.Integer()


class Document(ma.Schema):
    id = ma.fields.String()
    owner = ma.fields.String()
    title = ma.fields.String()


class Hit(Document):
    score = ma.fields.Integer()


class PageArgs(ma.Schema):
    limit = ma.fields.Integer(load_default=20, validate=ma.validate.Range(1, 100))
    cursor = ma.fields.String(load_default=None)


class Page(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(Document))
    next_cursor = ma.fields.String(allow_none=True)


class SearchArgs(ma.Schema):
    q = ma.fields.String(required=True, validate=ma.validate.Length(min=1))


class Hits(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(Hit))


def user() -> str:
    email = common.verify(request.headers.get("Authorization"))
    if email is None:
        abort(401, message="Sign in first.")
    return str(email)


@blp.route("/health")
@blp.response(200, Status)
def health() -> dict[str, str]:
    return {"status": "ok"}


@blp.route("/auth/login", methods=["POST"])
@blp.arguments(Login)
@blp.response(200, Token)
def login(body: dict[str, str]) -> dict[str, str]:
    token = common.issue_token(body["email"], body["password"])
    if token is None:
        abort(401, message="Wrong email or password.")
    return {"access_token": str(token)}


@blp.route("/upload", methods=["POST"])
@blp.arguments(File, location="files")
@blp.response(200, Checksum)
def upload(files: dict[str, Any]) -> dict[str, object]:
    user()
    data = files["file"].read(common.MAX_UPLOAD + 1)
    if len(data) > common.MAX_UPLOAD:
        abort(413, message="File too large: 1 MB at most.")
    return common.checksum(data)


@blp.route("/documents")
@blp.arguments(PageArgs, location="query")
@blp.response(200, Page)
def documents(args: dict[str, Any]) -> dict[str, object]:
    return common.page(user(), args["limit"], args["cursor"])


@blp.route("/search")
@blp.arguments(SearchArgs, location="query")
@blp.response(200, Hits)
def search(args: dict[str, str]) -> dict[str, object]:
    return common.search(user(), args["q"])


api.register_blueprint(blp)
