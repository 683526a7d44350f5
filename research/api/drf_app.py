"""The five endpoints in Django REST Framework with drf-spectacular (serializers give the
OpenAPI document), one file, served by gunicorn."""

from __future__ import annotations

from typing import Any

import django
from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="study-only",
    ROOT_URLCONF=__name__,
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    INSTALLED_APPS=[
        "django.contrib.contenttypes",
        "django.contrib.auth",
        "rest_framework",
        "drf_spectacular",
    ],
    MIDDLEWARE=[],
    DATABASES={},
    REST_FRAMEWORK={
        "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
        "UNAUTHENTICATED_USER": None,
    },
    SPECTACULAR_SETTINGS={"TITLE": "study", "VERSION": "1"},
)
django.setup()

from django.core.wsgi import get_wsgi_application
from django.urls import path
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularJSONAPIView
from rest_framework import authentication, parsers, permissions, serializers, views
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from research.api import common


class BearerAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[str, None] | None:
        email = common.verify(request.headers.get("Authorization"))
        return None if email is None else (email, None)

    def authenticate_header(self, request: Request) -> str:
        return "Bearer"


class SignedIn(permissions.BasePermission):
    message = "Sign in first."

    def has_permission(self, request: Request, view: Any) -> bool:
        return bool(request.user)


class Status(serializers.Serializer[Any]):
    status = serializers.CharField()


class Login(serializers.Serializer[Any]):
    email = serializers.CharField()
    password = serializers.CharField()


class Token(serializers.Serializer[Any]):
    access_token = serializers.CharField()


class File(serializers.Serializer[Any]):
    file = serializers.FileField()


class Checksum(serializers.Serializer[Any]):
    sha256 = serializers.CharField()
    size = serializers.IntegerField()


class Document(serializers.Serializer[Any]):
    id = serializers.CharField()
    owner = serializers.CharField()
    title = serializers.CharField()


class Hit(Document):
    score = serializers.IntegerField()


class PageArgs(serializers.Serializer[Any]):
    limit = serializers.IntegerField(default=20, min_value=1, max_value=100)
    cursor = serializers.CharField(required=False, allow_null=True, default=None)


class Page(serializers.Serializer[Any]):
    items = Document(many=True)
    next_cursor = serializers.CharField(allow_null=True)


class SearchArgs(serializers.Serializer[Any]):
    q = serializers.CharField(min_length=1)


class Hits(serializers.Serializer[Any]):
    items = Hit(many=True)


class SignedInView(views.APIView):
    """Every view below requires a bearer token unless it says otherwise."""

    authentication_classes = [BearerAuthentication]
    permission_classes = [SignedIn]


class Health(views.APIView):
    authentication_classes: list[Any] = []
    permission_classes: list[Any] = []

    @extend_schema(responses=Status)
    def get(self, request: Request) -> Response:
        return Response({"status": "ok"})


class SignIn(views.APIView):
    authentication_classes: list[Any] = []
    permission_classes: list[Any] = []

    @extend_schema(request=Login, responses=Token)
    def post(self, request: Request) -> Response:
        body = Login(data=request.data)
        body.is_valid(raise_exception=True)
        token = common.issue_token(body.validated_data["email"], body.validated_data["password"])
        if token is None:  # 401 by hand: with no authenticator on this view DRF would say 403
            return Response({"detail": "Wrong email or password."}, status=401)
        return Response({"access_token": token})


class UploadView(SignedInView):
    parser_classes = [parsers.MultiPartParser]

    @extend_schema(request={"multipart/form-data": File}, responses=Checksum)
    def post(self, request: Request) -> Response:
        body = File(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data["file"].read(common.MAX_UPLOAD + 1)
        if len(data) > common.MAX_UPLOAD:
            return Response({"detail": "File too large: 1 MB at most."}, status=413)
        return Response(common.checksum(data))


class Documents(SignedInView):
    @extend_schema(parameters=[PageArgs], responses=Page)
    def get(self, request: Request) -> Response:
        args = PageArgs(data=request.query_params)
        args.is_valid(raise_exception=True)
        data = args.validated_data
        return Response(common.page(str(request.user), data["limit"], data["cursor"]))


class Search(SignedInView):
    @extend_schema(parameters=[SearchArgs], responses=Hits)
    def get(self, request: Request) -> Response:
        args = SearchArgs(data=request.query_params)
        if not args.is_valid():
            raise ValidationError(args.errors)
        return Response(common.search(str(request.user), args.validated_data["q"]))


urlpatterns = [
    path("health", Health.as_view()),
    path("auth/login", SignIn.as_view()),
    path("upload", UploadView.as_view()),
    path("documents", Documents.as_view()),
    path("search", Search.as_view()),
    path("openapi.json", SpectacularJSONAPIView.as_view()),
]
application = get_wsgi_application()
