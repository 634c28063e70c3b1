"""`aupgate ca`: the agency's own CA in the folder mitmproxy reads it from.

mitmproxy makes a CA called "mitmproxy" on its first start, and browsers then show "mitmproxy" as
the issuer of every intercepted site. `create_ca` makes the CA first, named for the agency, with
mitmproxy's own `CertStore.create_store`, so the files are exactly the ones mitmproxy loads
(`mitmproxy-ca.pem` and its public copies, in `confdir`). An existing CA is never replaced unless
asked: every device that trusts it would stop trusting the gateway.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from mitmproxy import certs
from mitmproxy.options import CONF_BASENAME

__all__ = ["CaFiles", "ca_files", "create_ca", "describe"]

KEY_SIZE = 2048


@dataclass(frozen=True, slots=True)
class CaFiles:
    """The files of a CA in a confdir: what to keep secret and what to hand out."""

    private: Path  # key and certificate: only the gateway may read it
    private_p12: Path  # the same as PKCS#12, key included
    pem: Path
    cer: Path
    p12: Path

    @property
    def public(self) -> tuple[Path, ...]:
        return (self.pem, self.cer, self.p12)


def ca_files(confdir: Path) -> CaFiles:
    base = f"{CONF_BASENAME}-ca"
    return CaFiles(confdir / f"{base}.pem", confdir / f"{base}.p12", confdir / f"{base}-cert.pem",
                   confdir / f"{base}-cert.cer", confdir / f"{base}-cert.p12")


def create_ca(confdir: Path, name: str, *, replace: bool = False) -> CaFiles:
    """Make a CA called "<name> internet gateway CA" in `confdir`; FileExistsError if one is
    there and `replace` is false."""
    files = ca_files(confdir)
    if files.private.exists() and not replace:
        raise FileExistsError(str(files.private))
    if replace:
        for path in (files.private, files.private_p12, *files.public):
            path.unlink(missing_ok=True)
    confdir.mkdir(parents=True, exist_ok=True)
    certs.CertStore.create_store(confdir, CONF_BASENAME, KEY_SIZE,
                                 organization=name, cn=f"{name} internet gateway CA")
    files.private.chmod(0o600)
    files.private_p12.chmod(0o600)
    return files


def describe(path: Path) -> tuple[str, str, str]:
    """(subject common name, SHA-256 fingerprint, expiry date) of a CA certificate file."""
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    common = str(names[0].value) if names else cert.subject.rfc4514_string()
    der = cert.public_bytes(serialization.Encoding.DER)
    digest = hashlib.sha256(der).hexdigest().upper()
    fingerprint = ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))
    return common, fingerprint, cert.not_valid_after_utc.date().isoformat()
