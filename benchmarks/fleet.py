"""A realistic N-host inventory for benchmarks and scale tests.

Hosts spread over zones (one group per zone), every tenth host also in the
cloud-hypervisor group, every fiftieth with per-host overrides; unique addresses.
"""

from __future__ import annotations

from pathlib import Path

from flobs import yamlio

ZONES = ("a", "b", "c", "d")


def inventory(hosts: int, *, cluster: str = "bench") -> dict[str, object]:
    groups: dict[str, object] = {
        f"{cluster}-{z}": {"labels": {"region": "eu-west-1", "zone": z}} for z in ZONES
    }
    groups["cloud-hypervisor"] = {
        "labels": {"provider": "cloud-hypervisor"},
        "vars": {"providers": ["cloud-hypervisor", "firecracker"]},
    }
    entries: list[dict[str, object]] = []
    for i in range(hosts):
        zone = ZONES[i % len(ZONES)]
        host: dict[str, object] = {
            "name": f"fl-{cluster}-{zone}-{i:05d}",
            "address": f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}",
            "groups": [f"{cluster}-{zone}"] + (["cloud-hypervisor"] if i % 10 == 3 else []),
            "labels": {"rack": f"r{i // 40:04d}"},
        }
        if i % 50 == 7:
            host["vars"] = {
                "local_prometheus": {"listen": "0.0.0.0:9191"},
                "scrape_interval": "30s",
            }
        entries.append(host)
    return {
        "apiVersion": "flobs/v1",
        "cluster": cluster,
        "defaults": {"flintlock_metrics": {"endpoint": "127.0.0.1:8000"}},
        "groups": groups,
        "hosts": entries,
        "central": {
            "prometheus": {"listen": "0.0.0.0:9090"},
            "loki": {"url": "https://loki.example.internal/loki/api/v1/push"},
            "traces": {"otlp_endpoint": "tempo.example.internal:4317"},
            "grafana": {"url": "https://grafana.example.internal"},
        },
    }


def write_inventory(path: Path, hosts: int, *, cluster: str = "bench") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yamlio.dump(inventory(hosts, cluster=cluster)), encoding="utf-8")
