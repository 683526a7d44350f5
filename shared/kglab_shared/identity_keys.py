"""Make a new identity key pair for the gateway: ``python -m kglab_shared.identity_keys``.

Prints the gateway's private key (``KGLAB_GATEWAY_IDENTITY_SIGNING_KEY``, a secret) and the
public key set every service verifies with (``KGLAB_IDENTITY_PUBLIC_KEYS``). With
``--keep 'JWKS'`` the current public keys are kept beside the new one, for a rotation with
overlap: publish the combined set to every service, then give the gateway the new private key,
then, a minute later (the assertions' lifetime), drop the old public key.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys

from kglab_shared.identity import generate_signing_key, public_jwks


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", help="the current KGLAB_IDENTITY_PUBLIC_KEYS, kept in the set")
    args = parser.parse_args(argv)
    key = generate_signing_key()
    public = public_jwks(key)
    if args.keep:
        public["keys"] = [*json.loads(args.keep)["keys"], *public["keys"]]
    private = json.dumps(key.as_dict(private=True), separators=(",", ":"))
    lines = [
        f"KGLAB_GATEWAY_IDENTITY_SIGNING_KEY={shlex.quote(private)}",
        f"KGLAB_IDENTITY_PUBLIC_KEYS={shlex.quote(json.dumps(public, separators=(',', ':')))}",
    ]
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
