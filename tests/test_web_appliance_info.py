"""The local UI says which image the appliance runs and whether the boot partition's settings file
was refused: through real gunicorn, with the status file written by the real
``meterit-appliance boot-settings apply``."""

from __future__ import annotations

import grp
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from appliance import boot_settings_apply
from tests.web_fixtures import PASSWORD, Appliance, make_appliance

AUTH = ("admin", PASSWORD)
RELEASE = "IMAGE_ID=meterit-appliance\nIMAGE_VERSION=0.1.0+202612020000\nIMAGE_FORM=disk\n"


@pytest.fixture
def flashed(edge_db_url: str, redis_url: str, tmp_path: Path) -> Iterator[Appliance]:
    """The web UI of an appliance flashed from the disk image, whose settings file was bad."""
    appliance = make_appliance(edge_db_url, redis_url, tmp_path)
    release = tmp_path / "meterit-image-release"
    release.write_text(RELEASE)
    appliance.env["METERIT_IMAGE_RELEASE_FILE"] = str(release)
    boot = tmp_path / "boot"
    boot.mkdir()
    (boot / "meterit.toml").write_text('central_url = "https://c.example"\n')
    etc = tmp_path / "etc"
    etc.mkdir()
    code = boot_settings_apply.main(
        [
            "apply",
            "--boot-dir",
            str(boot),
            "--etc-dir",
            str(etc),
            "--network-dir",
            str(tmp_path),
            # the state directory is the one holding the UI's password hash
            "--state-dir",
            str(tmp_path),
            "--group",
            grp.getgrgid(os.getgid()).gr_name,
        ]
    )
    assert code == boot_settings_apply.EX_DATAERR
    appliance.start_web()
    yield appliance
    appliance.stop()


def test_the_api_gives_the_image_version_and_the_refused_settings(flashed: Appliance) -> None:
    body = requests.get(flashed.web_url + "/api/local/appliance", auth=AUTH, timeout=10).json()
    assert body["image_version"] == "0.1.0+202612020000 (disk)"
    assert body["meterit_version"]
    assert body["boot_settings_refused"] is True
    assert any("api_key is missing" in p for p in body["boot_settings"]["problems"])
    anonymous = requests.get(flashed.web_url + "/api/local/appliance", timeout=10)
    assert anonymous.status_code == 401


def test_every_page_shows_the_banner_and_the_version_once_logged_in(flashed: Appliance) -> None:
    session = requests.Session()
    login_page = session.get(flashed.web_url + "/login", timeout=10).text
    assert "0.1.0+202612020000" not in login_page  # nothing about the appliance before login
    token = re.search(r'name="csrf_token" value="([^"]+)"', login_page)
    assert token
    session.post(
        flashed.web_url + "/login",
        data={"csrf_token": token.group(1), "password": PASSWORD},
        timeout=10,
    )
    for path in ("/", "/sync"):
        page = session.get(flashed.web_url + path, timeout=10)
        assert page.status_code == 200 and "/login" not in page.url
        assert 'id="boot-settings-refused"' in page.text
        assert "NOT applied" in page.text and "api_key is missing" in page.text
        assert "image 0.1.0+202612020000 (disk)" in page.text
