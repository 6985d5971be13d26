"""The local UI's session signing key, kept on disk so every worker and every restart agree.

Its own module, free of Flask: gunicorn's master makes the key before forking, and importing the
app there would keep a second copy of Flask and the views in memory for nothing.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from appliance.settings import ApplianceSettings

logger = logging.getLogger(__name__)

SECRET_KEY_NAME = "web-secret-key"


def persistent_secret_key(settings: ApplianceSettings) -> str:
    """``web_secret_key``, or one generated once and kept next to the password hash: every
    gunicorn worker and every restart must sign sessions with the same key, or logins vanish."""
    if settings.web_secret_key:
        return settings.web_secret_key
    path = Path(settings.web_password_hash_file).with_name(SECRET_KEY_NAME)
    try:
        existing = path.read_text(encoding="utf-8").strip()
        if existing:
            return existing
    except FileNotFoundError:
        pass
    key = secrets.token_hex(32)
    tmp = path.with_name(f".{SECRET_KEY_NAME}.{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(key + "\n")
        # link() creates the name only if absent, with the content already complete: when
        # gunicorn workers race, they all end up with the first one's key
        os.link(tmp, path)
    except FileExistsError:
        return path.read_text(encoding="utf-8").strip()
    except OSError as err:
        logger.warning(
            "cannot keep the session key in %s (%s): logins end when the UI restarts; "
            "set METERIT_WEB_SECRET_KEY",
            path,
            err,
        )
    finally:
        tmp.unlink(missing_ok=True)
    return key
