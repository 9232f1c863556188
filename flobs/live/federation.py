"""Reach a host's local Prometheus the way the centre's federate job does.

``central/prometheus.yml`` federates with ``scheme: https`` when the hosts serve TLS,
the federation CA (``central.prometheus.federation.ca_file``) and the federation user
with its password file. ``verify --deep`` and the demo read the hosts' local
Prometheus directly, so they must use the same transport: plain ``http://`` against
a TLS listener, or no credentials against one that requires a user, would fail on
exactly the fleets that are set up securely.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass

from flobs import httpio
from flobs.errors import UsageError
from flobs.live.prometheus_api import PrometheusAPI
from flobs.model import Fleet, Host


@dataclass(frozen=True)
class FederationAccess:
    scheme: str  # "https" when the hosts' local Prometheus serves TLS
    verify: ssl.SSLContext | bool
    headers: dict[str, str]

    def url(self, host: Host) -> str:
        return f"{self.scheme}://{host.federation_target}"

    def client(self, host: Host, *, timeout: float = 15.0) -> PrometheusAPI:
        return PrometheusAPI(
            self.url(host), headers=self.headers, verify=self.verify, timeout=timeout
        )


def federation_access(fleet: Fleet, *, why: str = "verify --deep") -> FederationAccess:
    """The scheme, TLS trust and credentials of the centre's federate job.

    The CA and password files are the centre's (paths from the inventory); a file
    that cannot be read here is a usage error naming it, never a crash.
    """
    auth = fleet.central.prometheus.federation_auth
    tls = any(
        h.vars.local_prometheus.web is not None and h.vars.local_prometheus.web.tls
        for h in fleet.hosts
    )
    verify: ssl.SSLContext | bool = True
    if tls:
        try:
            context = ssl.create_default_context(cafile=auth.ca_file)
            if auth.cert_file:
                context.load_cert_chain(auth.cert_file, auth.key_file)
        except (OSError, ssl.SSLError) as err:
            raise UsageError(
                f"{why} reaches the hosts as the centre does and cannot load its TLS files "
                f"({auth.ca_file or auth.cert_file}): {err}",
                hint="run it where central.prometheus.federation's files are readable",
            ) from err
        if auth.insecure_skip_verify:  # the inventory turned verification off, explicitly
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        verify = context
    headers: dict[str, str] = {}
    if auth.username and auth.password_file:
        try:
            with open(auth.password_file, encoding="utf-8") as fh:
                password = fh.read().strip()  # as Prometheus reads it
        except OSError as err:
            raise UsageError(
                f"{why} reaches the hosts as the centre does and cannot read the federation "
                f"password file {auth.password_file}: {err.strerror or err}",
                hint="run it where central.prometheus.federation.basic_auth.password_file "
                "is readable",
            ) from err
        headers = httpio.basic(auth.username, password)
    return FederationAccess("https" if tls else "http", verify, headers)


def federation_clients(
    fleet: Fleet, *, why: str = "verify --deep"
) -> Callable[[Host], PrometheusAPI]:
    """A client per host, as the centre reaches it (files read once, here)."""
    return federation_access(fleet, why=why).client
