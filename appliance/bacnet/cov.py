"""Change-of-value subscriptions, the client side: SubscribeCOV, and each notification's value
handed to a callback.

Renewal is the caller's business (the collector's, on its own clock): a subscription is renewed
by subscribing again with the same process id, which the device takes as an update of the same
subscription. bacpypes3's own context manager renews on the event loop's timer, which a test
cannot move, and queues values nobody may be reading while the collector is polling instead.
"""

from __future__ import annotations

import logging
from typing import Any

from bacpypes3.basetypes import PropertyIdentifier  # type: ignore[import-untyped]
from bacpypes3.primitivedata import ObjectIdentifier, Real  # type: ignore[import-untyped]

from appliance.bacnet.device import CovCallback, PointRef

logger = logging.getLogger(__name__)

MAX_PROCESS_ID = (1 << 22) - 1  # the subscriber process identifier is an Unsigned32; keep it small


class CovReceiver:
    """What bacpypes3's ChangeOfValueServices finds in ``app._cov_contexts`` under (device
    address, process id) for each incoming notification: it checks the monitored object and
    awaits ``put`` for every value in the notification."""

    def __init__(self, ref: PointRef, on_value: CovCallback) -> None:
        self.ref = ref
        self.on_value = on_value
        self.monitored_object_identifier = ObjectIdentifier(ref.object_id)
        self._prop = PropertyIdentifier(ref.prop)

    async def put(self, property_value: Any) -> None:
        if property_value.propertyIdentifier != self._prop:
            return  # status-flags ride along with every present-value notification
        try:
            value = float(property_value.value.cast_out(Real))
        except (AttributeError, TypeError, ValueError) as err:
            logger.info("COV notification for %s with an unusable value: %s", self.ref, err)
            return
        self.on_value(self.ref, value)
