"""flintlockd's /metrics as the simulator serves it: go-grpc-prometheus families."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from flobs.sim.flintlockd import GRPC_CODES, METHODS, SERVICE, FlintlockdMetrics

FAMILIES = (
    "grpc_server_started",
    "grpc_server_handled",
    "grpc_server_msg_received",
    "grpc_server_msg_sent",
)


def scrape(ticks: int, seed: str = "s") -> dict[str, list[tuple[dict[str, str], float]]]:
    m = FlintlockdMetrics(seed)
    for _ in range(ticks):
        m.tick()
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(m.exposition().decode()):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out


def test_grpc_families_labels_and_preregistered_codes() -> None:
    series = scrape(0)
    for family in FAMILIES:
        assert family + "_total" in series
    assert not [n for n in series if n.endswith("_created")]  # client_golang has none
    assert "grpc_server_handling_seconds_bucket" not in series  # not enabled by Flintlock
    handled = series["grpc_server_handled_total"]
    # go-grpc-prometheus pre-registers every method x code at 0.
    assert len(handled) == len(METHODS) * len(GRPC_CODES)
    assert {lbl["grpc_service"] for lbl, _ in handled} == {SERVICE}
    assert {lbl["grpc_method"] for lbl, _ in handled} == {m for m, _ in METHODS}
    types = {lbl["grpc_method"]: lbl["grpc_type"] for lbl, _ in handled}
    assert types["ListMicroVMsStream"] == "server_stream"
    assert types["CreateMicroVM"] == "unary"
    assert all(v == 0 for _, v in handled)


def test_traffic_is_consistent_and_has_errors() -> None:
    series = scrape(600)
    started = {lbl["grpc_method"]: v for lbl, v in series["grpc_server_started_total"]}
    handled: dict[str, float] = {}
    errors = 0.0
    for lbl, v in series["grpc_server_handled_total"]:
        handled[lbl["grpc_method"]] = handled.get(lbl["grpc_method"], 0) + v
        if lbl["grpc_code"] != "OK":
            errors += v
    # Every started call completes in the simulation: started == sum(handled).
    assert started == handled
    assert started["GetMicroVM"] > started["CreateMicroVM"] > 0
    assert 0 < errors < sum(handled.values()) * 0.2


def test_go_and_process_collectors_present() -> None:
    series = scrape(3)
    assert any(n.startswith("go_") for n in series)
    assert "go_goroutines" in series
    assert "process_cpu_seconds_total" in series
    assert "process_resident_memory_bytes" in series


def test_deterministic_per_seed() -> None:
    def grpc(seed: str) -> object:
        s = scrape(120, seed)
        return {k: v for k, v in s.items() if k.startswith("grpc_")}

    assert grpc("a") == grpc("a")
    assert grpc("a") != grpc("b")
