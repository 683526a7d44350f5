"""What the five endpoints do, written once so that the three apps differ only in framework glue:
sign in (a signed token), upload (a checksum), list (cursor paging), search (top 10)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

SECRET = os.environ.get("RESEARCH_API_SECRET", "study-only-secret").encode()
USERS = {f"user{n}@example.com": f"password-{n}" for n in range(100)}
WORDS = ("graph", "vector", "queue", "search", "ingest", "entity", "relation", "chunk")
DOCUMENTS = [
    {
        "id": f"doc-{n:05d}",
        "owner": f"user{n % 100}@example.com",
        "title": f"{WORDS[n % 8]} {WORDS[(n // 8) % 8]} note {n}",
    }
    for n in range(10_000)
]
BY_OWNER: dict[str, list[dict[str, str]]] = {}
for _doc in DOCUMENTS:
    BY_OWNER.setdefault(_doc["owner"], []).append(_doc)
MAX_UPLOAD = 1_000_000


def issue_token(email: str, password: str) -> str | None:
    expected = USERS.get(email)
    if expected is None or not hmac.compare_digest(expected, password):
        return None
    mac = hmac.new(SECRET, email.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(email.encode()).decode() + "." + mac.hex()


def verify(authorization: str | None) -> str | None:
    """The signed-in email, or None (no header, malformed, or a bad signature)."""
    if not authorization or not authorization.startswith("Bearer "):
        return None
    try:
        encoded, mac = authorization[7:].split(".", 1)
        email = base64.urlsafe_b64decode(encoded.encode()).decode()
    except ValueError:
        return None
    good = hmac.new(SECRET, email.encode(), hashlib.sha256).hexdigest()
    return email if hmac.compare_digest(good, mac) else None


def checksum(data: bytes) -> dict[str, object]:
    return {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}


def page(owner: str, limit: int, cursor: str | None) -> dict[str, object]:
    docs = BY_OWNER.get(owner, [])
    start = 0
    if cursor:
        start = next((i + 1 for i, d in enumerate(docs) if d["id"] == cursor), len(docs))
    items = docs[start : start + limit]
    more = start + limit < len(docs)
    return {"items": items, "next_cursor": items[-1]["id"] if more and items else None}


def search(owner: str, query: str) -> dict[str, object]:
    terms = query.lower().split()
    scored = [(sum(t in d["title"] for t in terms), d) for d in BY_OWNER.get(owner, [])]
    hits = sorted((s, d["id"], d) for s, d in scored if s)
    hits.sort(key=lambda hit: (-hit[0], hit[1]))
    return {"items": [{**d, "score": s} for s, _, d in hits[:10]]}
