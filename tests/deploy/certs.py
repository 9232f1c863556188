"""Certificates for the transport tests, made with the real openssl CLI."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import bcrypt


@dataclass(frozen=True)
class Pair:
    cert: Path
    key: Path


def _openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)


def make_ca(directory: Path, name: str = "flobs-test-ca") -> Pair:
    directory.mkdir(parents=True, exist_ok=True)
    pair = Pair(directory / f"{name}.pem", directory / f"{name}.key")
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes", "-days", "2", "-subj", f"/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-keyout", pair.key, "-out", pair.cert,
    )  # fmt: skip
    return pair


def make_server_cert(ca: Pair, directory: Path, name: str, ips: list[str]) -> Pair:
    """A server certificate for ``ips`` (IP SANs), signed by ``ca``."""
    directory.mkdir(parents=True, exist_ok=True)
    key, csr, cert = (directory / f"{name}.{ext}" for ext in ("key", "csr", "pem"))
    _openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-subj", f"/CN={name}", "-keyout", key, "-out", csr,
    )  # fmt: skip
    ext = directory / f"{name}.ext"
    sans = ",".join(f"IP:{ip}" for ip in ips)
    ext.write_text(f"subjectAltName={sans}\nextendedKeyUsage=serverAuth\n")
    _openssl(
        "x509", "-req", "-in", csr, "-CA", ca.cert, "-CAkey", ca.key, "-CAcreateserial",
        "-days", "2", "-extfile", ext, "-out", cert,
    )  # fmt: skip
    key.chmod(0o644)  # the test processes run as this user; a real key would be 0600
    return Pair(cert, key)


def write_bcrypt(path: Path, password: str) -> Path:
    """The bcrypt hash Prometheus' web config wants, in a file (cost 4: tests only)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode() + "\n")
    return path
