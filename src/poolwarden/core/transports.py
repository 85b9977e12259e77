"""Names of the Postfix transports that bind egress IPs: one pure function, shared.

The routing agent answers ``FILTER <transport_name(ip)>:``; the configuration generator
(``adapters.postfix_conf``) writes one master.cf transport of that name per egress IP; the
log parser reads the IP back from it. Keeping the name in one place keeps the three in step.
"""

from __future__ import annotations


def transport_name(ip: str) -> str:
    """The master.cf transport that binds ``ip``: pw-127-0-0-11, pw-2001-db8--1."""
    return "pw-" + ip.replace(".", "-").replace(":", "-")
