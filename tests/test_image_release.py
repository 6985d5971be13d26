"""The image version: read from /etc/meterit-image-release and sent in every heartbeat through
the one heartbeat type (common.heartbeat), checked as central checks it."""

from __future__ import annotations

from pathlib import Path

from appliance.image_release import image_version, read_release
from appliance.sync import heartbeat
from common import db
from common.heartbeat import parse_heartbeat

RELEASE = 'IMAGE_ID=meterit-appliance\nIMAGE_VERSION="0.1.0+202612020000"\nIMAGE_FORM=disk\n'


def test_the_heartbeat_carries_the_image_version(edge_db_url: str, tmp_path: Path) -> None:
    release = tmp_path / "meterit-image-release"
    release.write_text(RELEASE)
    with db.connect(edge_db_url) as conn:
        beat = heartbeat.build(conn, release)
        plain = heartbeat.build(conn, tmp_path / "absent")
    # what central stores: the document after central's own check
    stored = parse_heartbeat(beat.to_wire()).to_wire()
    assert stored["versions"]["image"] == "0.1.0+202612020000 (disk)"
    assert "image" not in plain.versions  # installed from the packages: no image to name


def test_the_release_file_is_read_like_os_release(tmp_path: Path) -> None:
    release = tmp_path / "r"
    release.write_text(
        "# comment\n" + RELEASE + "broken line\nIMAGE_BUILT='2026-12-02T00:00:00Z'\n"
    )
    fields = read_release(release)
    assert fields["IMAGE_VERSION"] == "0.1.0+202612020000"
    assert fields["IMAGE_BUILT"] == "2026-12-02T00:00:00Z"
    release.write_text("IMAGE_VERSION=0.2.0\n")
    assert image_version(release) == "0.2.0 (rootfs)"
    assert image_version(tmp_path / "absent") is None
