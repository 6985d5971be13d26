"""The one local admin password: an argon2id hash in a file only the ``meterit`` user reads.

There is a single account because the UI is reached only from the site LAN by whoever
installed or maintains the appliance; the password is set at provisioning
(``meterit-appliance web-password``) or generated on first boot. Changing it ends every open
session, because sessions carry a fingerprint of the hash they were opened with.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import secrets
import sys
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from appliance.settings import ApplianceSettings, load_settings
from common.config import EX_CONFIG, load_or_report
from common.logs import setup_logging

logger = logging.getLogger(__name__)

USERNAME = "admin"
MIN_LENGTH = 10
_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"  # no 0/O, 1/l/I
_hasher = PasswordHasher()


def generate() -> str:
    """A password that survives being read aloud or typed on a phone: 20 unambiguous characters."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(20))


def _write_private(path: Path, text: str) -> None:
    """Atomically replace ``path`` with ``text``, readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text + "\n")
    os.replace(tmp, path)


def set_password(path: Path, password: str) -> None:
    if len(password) < MIN_LENGTH:
        raise ValueError(f"the password needs at least {MIN_LENGTH} characters")
    _write_private(path, _hasher.hash(password))
    logger.info("local web UI password changed (hash in %s); open sessions end", path)


def read_hash(path: Path) -> str | None:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return text or None


def adopt_initial_password(settings: ApplianceSettings) -> None:
    """Hash the first-boot plaintext password when no hash exists yet, so provisioning tools
    that only write a password file still give a working login."""
    hash_path = Path(settings.web_password_hash_file)
    initial = Path(settings.web_initial_password_file)
    if read_hash(hash_path) is not None or not initial.is_file():
        return
    try:
        password = initial.read_text(encoding="utf-8").strip()
        set_password(hash_path, password)
    except (OSError, ValueError) as err:
        logger.error(
            "cannot adopt the first-boot web UI password from %s: %s; "
            "set one with 'meterit-appliance web-password'",
            initial,
            err,
        )


def verify(path: Path, username: str, password: str) -> bool:
    """Whether the credentials are the admin's; a missing or damaged hash file logs why."""
    stored = read_hash(path)
    if stored is None:
        logger.error(
            "login refused: no web UI password is set (%s missing); "
            "run 'meterit-appliance web-password' to set one",
            path,
        )
        return False
    try:
        ok = _hasher.verify(stored, password)
    except VerificationError:
        return False
    except InvalidHashError:
        logger.error(
            "login refused: %s does not hold an argon2 hash; "
            "run 'meterit-appliance web-password' to set the password again",
            path,
        )
        return False
    return ok and secrets.compare_digest(username, USERNAME)


def fingerprint(path: Path) -> str:
    """Changes whenever the password does; stored in each session to end old ones."""
    stored = read_hash(path) or ""
    return hashlib.sha256(stored.encode()).hexdigest()[:16]


def main(argv: list[str]) -> int:
    """``meterit-appliance web-password``: set or generate the admin password, shown once."""
    parser = argparse.ArgumentParser(
        prog="meterit-appliance web-password",
        description="Set the local web UI's admin password (user 'admin'); "
        "without --stdin a new one is generated and printed once.",
    )
    parser.add_argument(
        "--stdin", action="store_true", help="read the new password from standard input"
    )
    args = parser.parse_args(argv)
    settings = load_or_report(load_settings, "meterit-appliance")
    if settings is None:
        return EX_CONFIG
    setup_logging("meterit-web-password", settings.log_level)
    password = sys.stdin.readline().strip() if args.stdin else generate()
    try:
        set_password(Path(settings.web_password_hash_file), password)
    except ValueError as err:
        sys.stderr.write(f"meterit-appliance web-password: {err}\n")
        return 2
    except OSError as err:
        sys.stderr.write(
            f"meterit-appliance web-password: cannot write {settings.web_password_hash_file}: "
            f"{err.strerror}; run it as the meterit user or root\n"
        )
        return 1
    if not args.stdin:
        sys.stdout.write(
            f"local web UI: user '{USERNAME}', password '{password}' "
            "(shown only now; only its hash is kept)\n"
        )
    return 0
