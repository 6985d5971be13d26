"""BACnet/IP access for the appliance: the device client the collector uses and the meter simulator.

Everything that imports bacpypes3 lives in this package, so the poll loop can depend on the small
typed interface in :mod:`appliance.bacnet.client` instead of on the library.
"""
