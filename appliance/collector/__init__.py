"""The collector daemon: polls the meters over BACnet and commits one transaction per cycle."""
