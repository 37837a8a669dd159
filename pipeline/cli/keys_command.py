"""``docvec keys``: the API keys ``docvec serve --auth keys`` accepts. ``create`` binds a new key to
principals (and optionally a tenant, a name, a rate) and prints it once: only its SHA-256 is stored.
``list`` shows every key without it; ``revoke`` stops a key at once (the server answers 403)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from pipeline.settings import Settings


def add_keys_parser(sub: Any) -> None:
    """``docvec keys create|list|revoke`` on the command parsers ``sub``."""
    p = sub.add_parser("keys", help=cmd_keys.__doc__)
    actions = p.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="create a key bound to principals; prints it once")
    create.add_argument("--principal", action="append", required=True, metavar="PRINCIPAL",
                        help="search as this principal (repeatable: a user and their groups, e.g. alice, group:hr)")
    create.add_argument("--tenant", help="also only the documents whose readers hold tenant:TENANT")
    create.add_argument("--name", help="what the key is for (e.g. \"hr portal\")")
    create.add_argument("--rate", help="its own request rate: N/s, N/min or N/hour (default: the server's)")
    listing = actions.add_parser("list", help="every key (never the key itself)")
    listing.add_argument("--json", action="store_true", help="print JSON")
    revoke = actions.add_parser("revoke", help="revoke a key: it stops working at once")
    revoke.add_argument("key_id", metavar="ID", help="the key's id (dvk_<id>_…; `docvec keys list`)")
    p.set_defaults(func=cmd_keys)


def _stamp(value: Any) -> str:
    return value.isoformat(timespec="seconds") if value is not None else "-"


def cmd_keys(args: argparse.Namespace, settings: Settings) -> int:
    """Manage the API keys of `docvec serve --auth keys` (create, list, revoke)."""
    from pipeline.api import keys
    from pipeline.errors import ConfigError
    from pipeline.storage import access, api_keys, connections

    with connections.connect(settings) as conn:
        if args.action == "create":
            principals = access.checked_principals(args.principal)
            tenant = access.checked_tenant(args.tenant)
            rate = keys.parse_rate(args.rate) if args.rate else None
            made = keys.new_key()
            stored = api_keys.create(conn, key_id=made.key_id, secret_sha256=made.secret_sha256, principals=principals,
                                     tenant=tenant, name=args.name, rate=rate)
            print(made.key)
            print(f"API key {stored.id} for {', '.join(principals)}" + (f" in tenant {tenant}" if tenant else "")
                  + ": shown once, only its hash is stored (send it as `Authorization: Bearer <key>`)")
            return 0
        if args.action == "revoke":
            revoked = api_keys.revoke(conn, args.key_id)
            if revoked is None:
                raise ConfigError(f"no API key {args.key_id!r}: `docvec keys list` shows their ids")
            print(f"API key {revoked.id} revoked at {_stamp(revoked.revoked_at)}")
            return 0
        listed = api_keys.listed(conn)
    rows = [{"id": k.id, "name": k.name, "principals": list(k.principals), "tenant": k.tenant,
             "rate": f"{k.rate[0]}/{k.rate[1]}s" if k.rate else None, "created": _stamp(k.created_at),
             "last_used": _stamp(k.last_used_at), "revoked": _stamp(k.revoked_at) if k.revoked_at else None}
            for k in listed]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        print(f"{row['id']}  {row['name'] or '-'}  principals={','.join(row['principals'] or ())}  "
              f"tenant={row['tenant'] or '-'}  rate={row['rate'] or 'default'}  created={row['created']}  "
              f"last_used={row['last_used']}  revoked={row['revoked'] or 'no'}")
    if not rows:
        print("no API keys (docvec keys create --principal NAME)")
    return 0
