"""What this appliance is, on every page and at ``/api/local/appliance``: the MeterIT and image
versions, and whether the boot partition's settings file was refused (the installer must see
that where they look, not only in the journal)."""

from __future__ import annotations

from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, current_app

from appliance.boot_settings_apply import read_status
from appliance.image_release import image_version
from appliance.settings import ApplianceSettings

bp = Blueprint("appliance_info", __name__, url_prefix="/api/local")


@cache
def meterit_version() -> str:
    try:
        return metadata.version("meterit")
    except metadata.PackageNotFoundError:  # running from a source tree
        return "unknown"


def appliance_info() -> dict[str, Any]:
    settings: ApplianceSettings = current_app.config["APPLIANCE_SETTINGS"]
    # the state directory: where the first-boot secrets and the boot-settings outcome are kept
    state_dir = Path(settings.web_password_hash_file).parent
    boot = read_status(state_dir)
    return {
        "meterit_version": meterit_version(),
        "image_version": image_version(Path(settings.image_release_file)),
        "boot_settings": boot,
        "boot_settings_refused": bool(boot and not boot.get("ok")),
    }


@bp.get("/appliance")
def appliance() -> tuple[dict[str, Any], int]:
    return appliance_info(), 200


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.context_processor(lambda: {"appliance": appliance_info()})
