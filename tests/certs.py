"""A throwaway certificate for 127.0.0.1, for tests that serve TLS (central, SMTP)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest


def self_signed(tmp: Path, days: int = 1, name: str = "server") -> tuple[Path, Path]:
    """(certificate, key) for 127.0.0.1, valid ``days``, made by openssl (the test is skipped,
    saying why, where openssl is missing)."""
    if shutil.which("openssl") is None:
        pytest.skip("needs openssl to make a certificate")
    cert, key = tmp / f"{name}.pem", tmp / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", str(days),
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key
