"""The disk image's first-boot settings file (``meterit.toml`` on the FAT partition), applied by
``meterit-appliance boot-settings apply`` into directories standing in for /boot/efi, /etc/meterit,
/etc/systemd/network and /var/lib/meterit. The same command runs at boot in the disk image's boot
test (packaging/image/disk-boot-test), which checks the result on a real booted appliance."""

from __future__ import annotations

import grp
import json
import os
import stat
from pathlib import Path

import pytest

from appliance import boot_settings_apply
from appliance.bacnet.simulator import SimMeterSpec, meters_document
from appliance.boot_settings import BootSettingsError, parse
from appliance.settings import load_settings

KEY = "site-key-Xq7vT2mP9rL4sW8n"
METERS = json.dumps(meters_document([SimMeterSpec(device_instance=1001, port=47901, points=2)]))
GOOD = f"""
central_url = "https://central.example.org"
api_key = "{KEY}"
meters_file = "meters.json"

[network]
address = "192.168.7.50/24"
gateway = "192.168.7.1"
dns = ["192.168.7.1", "9.9.9.9"]
"""


@pytest.fixture
def dirs(tmp_path: Path) -> dict[str, Path]:
    found = {name: tmp_path / name for name in ("boot", "etc", "network", "state")}
    for path in found.values():
        path.mkdir()
    (found["etc"] / "appliance.env").write_text(
        "# packaged file\n#METERIT_CENTRAL_URL=https://central.example.org\n"
        "METERIT_POLL_INTERVAL_S=30\nMETERIT_CENTRAL_URL=https://old.example\n"
    )
    return found


def run(dirs: dict[str, Path], action: str = "apply") -> int:
    group = grp.getgrgid(os.getgid()).gr_name
    return boot_settings_apply.main(
        [
            action,
            "--boot-dir",
            str(dirs["boot"]),
            "--etc-dir",
            str(dirs["etc"]),
            "--network-dir",
            str(dirs["network"]),
            "--state-dir",
            str(dirs["state"]),
            "--group",
            group,
        ]
    )


def snapshot(*roots: Path) -> dict[str, bytes]:
    return {
        str(p): p.read_bytes() for root in roots for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_a_good_file_is_moved_into_etc_with_owner_and_mode_and_removed_from_fat(
    dirs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    (dirs["boot"] / "meterit.toml").write_text(GOOD)
    (dirs["boot"] / "meters.json").write_text(METERS)
    assert run(dirs) == 0
    logged = capsys.readouterr().out  # the command's log lines (the journal, under systemd)

    assert sorted(p.name for p in dirs["boot"].iterdir()) == []
    key_file = dirs["etc"] / "api-key"
    assert key_file.read_text() == KEY + "\n"
    for name in ("api-key", "appliance.env", "meters.json"):
        info = (dirs["etc"] / name).stat()
        assert stat.S_IMODE(info.st_mode) == 0o640, name
        assert (info.st_uid, info.st_gid) == (0 if os.geteuid() == 0 else info.st_uid, os.getgid())
    assert json.loads((dirs["etc"] / "meters.json").read_text()) == json.loads(METERS)
    assert (dirs["state"] / "meters-pending").exists()

    # the daemons read what was written, through the settings loader they start with
    env = dict(
        line.split("=", 1)
        for line in (dirs["etc"] / "appliance.env").read_text().splitlines()
        if line and not line.startswith("#")
    )
    settings = load_settings({**env, "METERIT_CONFIG": "/dev/null"})
    assert settings.central_url == "https://central.example.org"
    assert settings.api_key == KEY
    assert settings.poll_interval_s == 30  # the installer's other settings are kept

    network = (dirs["network"] / "10-meterit-static.network").read_text()
    assert "Address=192.168.7.50/24" in network and "Gateway=192.168.7.1" in network
    assert "DNS=9.9.9.9" in network

    status = json.loads((dirs["state"] / "boot-settings.json").read_text())
    assert status["ok"] is True and "1 meter(s)" in status["message"]
    assert "central.example.org" in logged and "192.168.7.50/24" in logged
    assert KEY not in logged and KEY not in json.dumps(status)


def test_applying_twice_leaves_one_set_of_enrolment_lines(dirs: dict[str, Path]) -> None:
    for url in ("https://first.example", "https://second.example"):
        (dirs["boot"] / "meterit.toml").write_text(f'central_url = "{url}"\napi_key = "{KEY}"\n')
        assert run(dirs) == 0
    env = (dirs["etc"] / "appliance.env").read_text()
    active = [line for line in env.splitlines() if line.startswith("METERIT_CENTRAL_URL=")]
    assert active == ["METERIT_CENTRAL_URL=https://second.example"]
    # no static address asked for: DHCP, and no stale static file
    assert not (dirs["network"] / "10-meterit-static.network").exists()


def test_a_bad_file_changes_nothing_stays_on_fat_and_names_every_problem(
    dirs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    bad = f"""
central_url = "ftp://central.example.org"
api_key = "{KEY}"
meters_file = "missing.json"
colour = "blue"
[network]
address = "192.168.7.50/24"
gateway = "10.0.0.1"
"""
    (dirs["boot"] / "meterit.toml").write_text(bad)
    before = snapshot(dirs["etc"], dirs["network"])
    assert run(dirs) == boot_settings_apply.EX_DATAERR
    logged = capsys.readouterr().out
    assert "NOT applied" in logged and "missing.json" in logged

    assert snapshot(dirs["etc"], dirs["network"]) == before
    assert (dirs["boot"] / "meterit.toml").read_text() == bad
    assert not (dirs["state"] / "meters-pending").exists()
    status = json.loads((dirs["state"] / "boot-settings.json").read_text())
    assert status["ok"] is False and "NOT applied" in status["message"]
    problems = "\n".join(status["problems"])
    for expected in ("central_url", "missing.json", "colour", "gateway 10.0.0.1"):
        assert expected in problems
    assert KEY not in problems and KEY not in logged


def test_status_says_what_happened_for_the_console_banner(
    dirs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(dirs, "status") == 0
    assert capsys.readouterr().out == ""  # no file ever: nothing to say
    (dirs["boot"] / "meterit.toml").write_text('central_url = "https://c.example"\n')
    run(dirs)
    capsys.readouterr()
    assert run(dirs, "status") == 0
    assert "NOT applied" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (b"central_url = https://no-quotes\n", "not valid TOML"),
        (b"\xff\xfe", "not UTF-8"),
        (b'central_url = "https://c.example"\napi_key = "has space"\n', "api_key is not a key"),
        (b'api_key = "k"\n', "central_url is missing"),
        (
            b'central_url = "https://c.example"\napi_key = "k"\nmeters_file = "../etc/shadow"\n',
            "name of a file beside",
        ),
        (
            b'central_url = "https://c.example"\napi_key = "k"\n[network]\naddress = "10.0.0.5"\n',
            "prefix length",
        ),
        (b"x" * 70000, "larger than"),
    ],
)
def test_bad_files_are_refused_with_what_to_fix(text: bytes, problem: str) -> None:
    with pytest.raises(BootSettingsError) as err:
        parse(text, lambda name: None)
    assert problem in str(err.value)


def test_a_windows_notepad_file_with_bom_and_crlf_is_accepted() -> None:
    text = f'\ufeffcentral_url = "https://c.example"\r\napi_key = "{KEY}"\r\n'.encode()
    settings = parse(text, lambda name: None)
    assert settings.central_url == "https://c.example" and settings.api_key == KEY
    assert settings.network is None
