"""flintlock-metrics' ``/machine`` output for a set of simulated microVMs.

The format, exactly as flintlock-metrics writes it (flintlock-facts.md): one line per
value, ``<group>_<key>{namespace="…",name="…",uid="…"} <int>``; no ``# HELP`` or
``# TYPE`` lines; a machine's groups come in random order (Go map iteration);
machines are concatenated.

* Firecracker: flintlock-metrics reads the last line of the microVM's metrics file,
  which Firecracker rewrites every flush interval with the **delta since the previous
  flush**. So a value is constant during one flush interval and a fresh draw in the
  next; it is not a running total.
* Cloud Hypervisor: counters from CH's ``vm.counters`` API are cumulative and keyed by
  the device id CH generates (``_disk0``, ``_net1``), so the line names start with an
  underscore: ``_disk0_read_bytes``, ``_net1_rx_bytes``, ``_net1_tx_frames``.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass

# Firecracker metric groups and keys (Firecracker metrics.rs), with a typical
# per-flush magnitude; failure counters are mostly zero.
FIRECRACKER_GROUPS: dict[str, dict[str, int]] = {
    "net": {
        "rx_bytes_count": 4_000_000,
        "tx_bytes_count": 2_500_000,
        "rx_packets_count": 6_000,
        "tx_packets_count": 4_500,
        "rx_fails": 0,
        "tx_fails": 0,
    },
    "block": {
        "read_bytes": 30_000_000,
        "write_bytes": 12_000_000,
        "read_count": 900,
        "write_count": 400,
        "flush_count": 20,
        "execute_fails": 0,
    },
    "vcpu": {
        "exit_io_in": 3_000,
        "exit_io_out": 3_500,
        "exit_mmio_read": 1_200,
        "exit_mmio_write": 1_100,
        "failures": 0,
    },
    "vmm": {"panic_count": 0},
    "seccomp": {"num_faults": 0},
    "api_server": {"process_startup_time_us": -1, "process_startup_time_cpu_us": -1},
    "logger": {"missed_metrics_count": 0, "missed_log_count": 0},
    "signals": {"sigbus": 0, "sigsegv": 0},
    "uart": {"read_count": 40, "write_count": 1_800, "missed_write_count": 0},
    "i8042": {"read_count": 0, "write_count": 0, "reset_count": 0},
    "mmds": {"rx_accepted": 2, "tx_count": 2, "rx_invalid_token": 0},
    "balloon": {"inflate_count": 0, "deflate_count": 0, "activate_fails": 0},
    "latencies_us": {"full_create_snapshot": 0, "load_snapshot": 0, "pause_vm": 0},
    "vsock": {"rx_bytes_count": 0, "tx_bytes_count": 0, "conns_added": 0},
}
# Failure counters that occasionally see an event, so alerts and panels have something.
OCCASIONAL_FAILURES = ("net_rx_fails", "block_execute_fails", "logger_missed_metrics_count")

# Cloud Hypervisor device classes, their keys and a typical per-second rate.
CLOUD_HYPERVISOR_DEVICES: dict[str, dict[str, int]] = {
    "disk": {"read_bytes": 2_000_000, "write_bytes": 800_000, "read_ops": 60, "write_ops": 25},
    "net": {"rx_bytes": 300_000, "tx_bytes": 150_000, "rx_frames": 400, "tx_frames": 300},
}

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


@dataclass(frozen=True)
class MicroVM:
    namespace: str
    name: str
    uid: str  # a ULID, as flintlock assigns
    provider: str  # "firecracker" | "cloud-hypervisor"
    devices: tuple[str, ...] = ()  # CH device ids, e.g. ("_disk0", "_net1")

    def labels(self) -> str:
        return f'{{namespace="{self.namespace}",name="{self.name}",uid="{self.uid}"}}'


def _ulid(rng: random.Random) -> str:
    return "01J" + "".join(rng.choice(_CROCKFORD) for _ in range(23))


def fleet_of_microvms(seed: str, providers: Iterable[str]) -> list[MicroVM]:
    """3-5 microVMs on the host; at least one per provider the host runs."""
    rng = random.Random(f"{seed}/microvms")
    kinds = list(providers) or ["firecracker"]
    count = max(len(kinds), rng.randint(3, 5))
    vms = []
    for i in range(count):
        provider = kinds[i] if i < len(kinds) else rng.choice(kinds)
        namespace = rng.choice(("default", "tenant-a", "tenant-b"))
        devices: tuple[str, ...] = ()
        if provider == "cloud-hypervisor":
            # CH numbers its devices in creation order across classes: _disk0, _net1, ...
            devices = ("_disk0", "_net1") if rng.random() < 0.5 else ("_disk0", "_disk1", "_net2")
        vms.append(MicroVM(namespace, f"mvm{i + 1}", _ulid(rng), provider, devices))
    return vms


class MachineMetrics:
    """Values of every microVM at a given moment, as flintlock-metrics would print them."""

    def __init__(self, seed: str, vms: list[MicroVM], flush_interval: float) -> None:
        self.seed = seed
        self.vms = vms
        self.flush_interval = flush_interval
        self._requests = 0

    def firecracker_values(self, vm: MicroVM, flush_index: int) -> dict[str, int]:
        """The deltas Firecracker wrote at flush ``flush_index`` (deterministic per seed)."""
        rng = random.Random(f"{self.seed}/{vm.uid}/flush/{flush_index}")
        startup = random.Random(f"{self.seed}/{vm.uid}/startup").randint(70_000, 140_000)
        values: dict[str, int] = {}
        for group, keys in FIRECRACKER_GROUPS.items():
            for key, typical in keys.items():
                name = f"{group}_{key}"
                if typical == -1:
                    values[name] = startup  # fixed for the VM's lifetime
                elif typical == 0:
                    hit = name in OCCASIONAL_FAILURES and rng.random() < 0.1
                    values[name] = 1 if hit else 0
                else:
                    values[name] = int(typical * rng.uniform(0.5, 1.5))
        return values

    def cloud_hypervisor_values(self, vm: MicroVM, elapsed: int) -> dict[str, int]:
        """Cumulative counters after ``elapsed`` whole seconds of VM life."""
        values: dict[str, int] = {}
        for device in vm.devices:
            device_class = device.strip("_0123456789")
            rng = random.Random(f"{self.seed}/{vm.uid}/{device}")
            for key, per_second in CLOUD_HYPERVISOR_DEVICES[device_class].items():
                rate = per_second * rng.uniform(0.5, 1.5)
                base = rng.randint(0, per_second * 600)  # the VM ran before we started
                values[f"{device}_{key}"] = base + int(rate * elapsed)
        return values

    def render(self, elapsed: float, vms: Iterable[MicroVM] | None = None) -> str:
        """The ``/machine`` body ``elapsed`` seconds after the simulation started."""
        self._requests += 1
        order = random.Random(f"{self.seed}/order/{self._requests}")
        flush_index = int(elapsed // self.flush_interval)
        lines: list[str] = []
        for vm in self.vms if vms is None else vms:
            labels = vm.labels()
            if vm.provider == "firecracker":
                values = self.firecracker_values(vm, flush_index)
                groups: dict[str, list[str]] = {}
                for name, value in values.items():
                    group = next(g for g in FIRECRACKER_GROUPS if name.startswith(g + "_"))
                    groups.setdefault(group, []).append(f"{name}{labels} {value}")
                keys = list(groups)
                order.shuffle(keys)  # Go map iteration order
                for group in keys:
                    lines.extend(groups[group])
            else:
                ch = self.cloud_hypervisor_values(vm, int(elapsed))
                items = [f"{name}{labels} {value}" for name, value in ch.items()]
                order.shuffle(items)
                lines.extend(items)
        return "".join(line + "\n" for line in lines)

    def select(self, path: str, base: str = "/machine") -> list[MicroVM] | None:
        """The microVMs a flintlock-metrics path names, or None for an unknown path.

        ``base`` is where ``/machine`` is served (``flintlock_metrics.path``).
        """
        base = "/" + base.strip("/")
        if path.rstrip("/") != base and not path.startswith(base + "/"):
            return None
        rest = [p for p in path[len(base) :].split("/") if p]
        if not rest:
            return self.vms
        if len(rest) == 2 and rest[0] == "uid":
            return [vm for vm in self.vms if vm.uid == rest[1]]
        if len(rest) == 1:
            return [vm for vm in self.vms if vm.namespace == rest[0]]
        if len(rest) == 2:
            return [vm for vm in self.vms if vm.namespace == rest[0] and vm.name == rest[1]]
        return None
