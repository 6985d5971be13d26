"""``meterit-appliance collector``: the poll loop (:mod:`appliance.collector.loop`) under systemd,
wired to the bacpypes3 client.

READY=1 only once the BACnet port is bound and the database answers; WATCHDOG=1 comes from the
loop itself, so a hung loop gets restarted; SIGTERM abandons a cycle in flight rather than commit
part of it. Meter changes and the pause flag arrive by LISTEN/NOTIFY, so neither needs a restart.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from appliance.bacnet.client import BacpypesClient, ClientConfig
from appliance.bacnet.foreign import parse_host_port
from appliance.collector.loop import Collector
from appliance.settings import ApplianceSettings, load_settings
from common.config import EX_CONFIG, ConfigError, load_or_report
from common.logs import setup_logging

logger = logging.getLogger(__name__)


def client_from_settings(settings: ApplianceSettings) -> BacpypesClient:
    if settings.bacnet_bbmd is not None:
        try:
            parse_host_port(settings.bacnet_bbmd)
        except ValueError as err:
            raise ConfigError(f"METERIT_BACNET_BBMD: {err}") from None
    return BacpypesClient(
        ClientConfig(
            local_address=settings.bacnet_address,
            timeout_base_s=settings.request_timeout_s,
            max_in_flight=max(settings.poll_concurrency * 2, 8),
            bbmd_address=settings.bacnet_bbmd,
            bbmd_ttl_s=settings.bacnet_bbmd_ttl_s,
        )
    )


async def _main_async(settings: ApplianceSettings, client: BacpypesClient) -> None:
    collector = Collector(settings, client)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, collector.stop.set)
    await collector.run()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="meterit-appliance collector", description="Poll the BACnet meters (a daemon)."
    )
    parser.parse_args(argv)
    settings = load_or_report(load_settings, "meterit-appliance")
    if settings is None:
        return EX_CONFIG
    setup_logging("meterit-collector", settings.log_level)
    try:
        client = client_from_settings(settings)
    except ConfigError as err:
        sys.stderr.write(f"meterit-appliance: configuration error: {err}\n")
        return EX_CONFIG
    try:
        asyncio.run(_main_async(settings, client))
    except OSError as err:
        logger.error("collector cannot start: %s", err)
        return 1
    return 0
