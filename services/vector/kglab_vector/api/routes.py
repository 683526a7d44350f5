"""Routes of the vector service."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
