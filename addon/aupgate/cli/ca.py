"""`aupgate ca`: create the agency-named CA the gateway signs intercepted sites with, and say
what to distribute and what to keep secret (see aupgate.mitm.ca, docs/ca-rollout.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .common import add_policy_dir_option, load_policies, now, unknown_agency

__all__ = ["add_ca_parser"]


def add_ca_parser(subparsers: Any) -> None:
    ca = subparsers.add_parser(
        "ca", help="create the agency-named CA the gateway intercepts HTTPS with",
        description="Create the gateway's CA, named for the agency, in the folder the proxy reads "
                    "it from (mitmproxy's confdir), and print what to distribute to browsers and "
                    "what to keep secret.")
    ca.add_argument("--confdir", type=Path, default=Path("~/.mitmproxy"),
                    help="where the proxy keeps its CA (aupgate run --set confdir=...; "
                         "default: ~/.mitmproxy)")
    who = ca.add_mutually_exclusive_group(required=True)
    who.add_argument("--name", help="the organisation the CA is named for")
    who.add_argument("--agency", help="name it for this agency's policy (its `name`)")
    add_policy_dir_option(ca)
    ca.add_argument("--replace", action="store_true",
                    help="replace an existing CA (every device must then trust the new one)")
    ca.set_defaults(func=cmd_ca)


def cmd_ca(args: argparse.Namespace) -> int:
    from aupgate.mitm.ca import ca_files, create_ca, describe

    name = args.name
    if args.agency:
        policies = load_policies(args, now().date(), warnings=False)
        policy = policies.policies.get(args.agency)
        if policy is None:
            print(f"aupgate ca: {unknown_agency(policies, args.agency)}", file=sys.stderr)
            return 2
        name = policy.name
    name = " ".join(str(name).split())
    if not name or any(not c.isprintable() for c in name) or len(name) > 60:
        print("aupgate ca: the name must be printable text of 1 to 60 characters",
              file=sys.stderr)
        return 2
    confdir = args.confdir.expanduser()
    try:
        files = create_ca(confdir, name, replace=args.replace)
    except FileExistsError:
        files = ca_files(confdir)
        common, fingerprint, expires = describe(files.pem)
        print(f"aupgate ca: {files.private} exists already ({common}, SHA-256 {fingerprint}); "
              "keeping it. --replace makes a new one, which every device must then trust "
              "instead.", file=sys.stderr)
        return 1
    common, fingerprint, expires = describe(files.pem)
    print(f"Created the CA \"{common}\" (expires {expires})")
    print(f"  SHA-256 fingerprint {fingerprint}")
    print("")
    print("Distribute to browsers and devices (public certificate only):")
    print(f"  {files.pem}   (PEM: Linux, macOS, Firefox)")
    print(f"  {files.cer}   (the same, .cer: Windows, Group Policy)")
    print(f"  {files.p12}   (PKCS#12 without a key: some mobile devices)")
    print("")
    print("Keep secret (never copy off the gateway; readable only by the proxy's user):")
    print(f"  {files.private}   (the CA's private key: whoever has it can impersonate any site)")
    print(f"  {files.private_p12}   (the same key, as PKCS#12)")
    print("")
    print(f"Start the gateway with this folder: aupgate run --set confdir={confdir}")
    print("See docs/ca-rollout.md for rolling the certificate out.")
    return 0
