"""flintlock-metrics' /machine output, as the simulator serves it (flintlock-facts.md)."""

from __future__ import annotations

import re

from flobs.sim.machines import MachineMetrics, MicroVM, fleet_of_microvms

LINE = re.compile(
    r'^(?P<name>[A-Za-z0-9_]+)\{namespace="(?P<ns>[^"]+)",name="(?P<vm>[^"]+)",'
    r'uid="(?P<uid>[0-9A-HJKMNP-TV-Z]{26})"\} (?P<value>-?[0-9]+)$'
)
BOTH = ("firecracker", "cloud-hypervisor")


def parse(body: str) -> dict[tuple[str, str], int]:
    out = {}
    for line in body.splitlines():
        m = LINE.match(line)
        assert m, f"not in flintlock-metrics format: {line!r}"
        key = (m["name"], m["uid"])
        assert key not in out, f"duplicate series {key}"
        out[key] = int(m["value"])
    return out


def machines(providers: tuple[str, ...] = BOTH, flush: float = 10.0) -> MachineMetrics:
    return MachineMetrics("seed-1", fleet_of_microvms("seed-1", providers), flush)


def test_every_line_is_flintlock_metrics_format_without_help_or_type() -> None:
    body = machines().render(5)
    assert "#" not in body  # all series are untyped: no HELP/TYPE lines
    series = parse(body)
    uids = {uid for _, uid in series}
    assert len(uids) == len(machines().vms) >= 3


def test_firecracker_values_are_per_flush_deltas() -> None:
    m = machines(flush=10.0)
    fc = [vm for vm in m.vms if vm.provider == "firecracker"]
    assert fc
    within_a = parse(m.render(1.0))
    within_b = parse(m.render(9.9))
    next_flush = parse(m.render(10.0))
    key = ("net_rx_bytes_count", fc[0].uid)
    # Constant inside one flush interval, a new delta (not a larger total) in the next.
    assert within_a[key] == within_b[key]
    assert next_flush[key] != within_a[key]
    later = [parse(m.render(10.0 * i))[key] for i in range(2, 8)]
    assert sorted(later) != later or len(set(later)) > 1  # not a running total


def test_cloud_hypervisor_counters_are_device_named_and_cumulative() -> None:
    m = machines()
    ch = [vm for vm in m.vms if vm.provider == "cloud-hypervisor"]
    assert ch, "at least one Cloud Hypervisor microVM"
    early, late = parse(m.render(10)), parse(m.render(100))
    ch_names = {name for name, uid in early if uid == ch[0].uid}
    assert ch_names
    assert all(re.fullmatch(r"_(disk|net)[0-9]+_[a-z_]+", n) for n in ch_names)
    assert any(n.startswith("_disk0_") for n in ch_names)
    assert any(re.fullmatch(r"_net[0-9]+_tx_frames", n) for n in ch_names)
    for name in ch_names:
        assert late[(name, ch[0].uid)] > early[(name, ch[0].uid)], name


def test_group_order_is_random_between_requests_but_content_is_not() -> None:
    m = machines(providers=("firecracker",))
    first_lines = m.render(3).splitlines()
    orders = {tuple(line.split("{")[0] for line in m.render(3).splitlines()) for _ in range(8)}
    assert len(orders) > 1, "groups come in Go map order, which varies"
    assert sorted(first_lines) == sorted(m.render(3).splitlines())


def test_same_seed_same_fleet_other_seed_other_fleet() -> None:
    a = fleet_of_microvms("s1", BOTH)
    assert a == fleet_of_microvms("s1", BOTH)
    assert {vm.uid for vm in a}.isdisjoint({vm.uid for vm in fleet_of_microvms("s2", BOTH)})


def test_firecracker_only_host_has_no_cloud_hypervisor_series() -> None:
    m = machines(providers=("firecracker",))
    assert all(not name.startswith("_") for name, _ in parse(m.render(5)))


def test_paths_select_namespace_name_and_uid() -> None:
    vms = [
        MicroVM("default", "a", "01J" + "A" * 23, "firecracker"),
        MicroVM("default", "b", "01J" + "B" * 23, "firecracker"),
        MicroVM("tenant", "a", "01J" + "C" * 23, "cloud-hypervisor", ("_disk0", "_net1")),
    ]
    m = MachineMetrics("s", vms, 60)
    assert m.select("/machine") == vms
    assert m.select("/machine/default") == vms[:2]
    assert m.select("/machine/tenant/a") == [vms[2]]
    assert m.select(f"/machine/uid/{vms[1].uid}") == [vms[1]]
    assert m.select("/machine/uid/unknown") == []
    assert m.select("/metrics") is None
    assert m.select("/machine/a/b/c") is None
    assert m.select("/fm/default", base="/fm") == vms[:2]
    body = m.render(1, m.select("/machine/tenant/a"))
    assert {uid for _, uid in parse(body)} == {vms[2].uid}
