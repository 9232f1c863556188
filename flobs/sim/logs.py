"""flintlockd's logrus JSON log lines (``--log-format json --log-output <file>``).

logrus' JSONFormatter marshals a Go map, so keys come out sorted; ``time`` is RFC 3339.
Fields are the ones flintlockd really logs (flintlock-facts.md): ``component``,
``action``, ``stage``, ``vmid`` (``namespace/name/uid``), ``microvm-provider``, ``step``,
``planType``. ``vmid`` is unbounded: it belongs in the line, never in a Loki label.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from pathlib import Path

from flobs.sim.machines import MicroVM
from flobs.sim.traces import Call

PLAN_STEPS = (
    "microvm_create",
    "microvm_start",
    "network_interface_create",
    "runtime_dir_create",
    "volume_mount",
)


class LogrusWriter:
    """Appends a deterministic (per seed and tick) stream of flintlockd log lines."""

    def __init__(self, seed: str, path: Path, vms: list[MicroVM]) -> None:
        self._rng = random.Random(f"{seed}/logs")
        self.path = path
        self._vms = vms

    def lines_for_tick(self, now: float) -> list[dict[str, str]]:
        rng = self._rng
        stamp = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        out: list[dict[str, str]] = []
        if not self._vms:
            return out
        for _ in range(rng.randint(0, 2)):
            vm = rng.choice(self._vms)
            vmid = f"{vm.namespace}/{vm.name}/{vm.uid}"
            base = {"time": stamp, "vmid": vmid, "microvm-provider": vm.provider}
            roll = rng.random()
            if roll < 0.6:
                out.append(
                    {
                        **base,
                        "level": "info",
                        "component": "app",
                        "action": "reconcile",
                        "msg": "reconciling microvm",
                    }
                )
            elif roll < 0.85:
                out.append(
                    {
                        **base,
                        "level": "debug",
                        "component": "plans",
                        "planType": "microvm_create_update",
                        "stage": "execute",
                        "step": rng.choice(PLAN_STEPS),
                        "msg": "step completed",
                    }
                )
            elif roll < 0.95:
                out.append(
                    {
                        **base,
                        "level": "warning",
                        "component": "plans",
                        "planType": "microvm_create_update",
                        "stage": "execute",
                        "msg": "microvm is not running, will retry",
                    }
                )
            else:
                out.append(
                    {
                        **base,
                        "level": "error",
                        "component": "app",
                        "action": "reconcile",
                        "error": "executing plan: step volume_mount: device busy",
                        "msg": "failed to reconcile microvm",
                    }
                )
        return out

    def call_lines(self, calls: list[Call]) -> list[dict[str, str]]:
        """The lines flintlockd logs while serving traced calls: create and delete calls
        (and their plan steps) log, reads do not. Each line carries the trace and span
        it was logged under, as an instrumented flintlockd's logrus hook would add."""
        out: list[dict[str, str]] = []
        for call in calls:
            if call.method not in ("CreateMicroVM", "DeleteMicroVM"):
                continue
            end = datetime.fromtimestamp(call.span.end_ns / 1e9, UTC)
            stamp = end.strftime("%Y-%m-%dT%H:%M:%SZ")
            verb = "creating" if call.method == "CreateMicroVM" else "deleting"
            base = {"time": stamp, "trace_id": call.span.trace_id}
            if call.vmid:
                base["vmid"] = call.vmid
            out.append(
                {
                    **base,
                    "span_id": call.span.span_id,
                    "level": "info",
                    "component": "app",
                    "action": call.method,
                    "msg": f"{verb} microvm",
                }
            )
            for step in call.steps:
                name = dict(step.attributes)["flintlock.plan.step"]
                line = {
                    **base,
                    "span_id": step.span_id,
                    "component": "plans",
                    "planType": "microvm_create_update"
                    if call.method == "CreateMicroVM"
                    else "microvm_delete",
                    "stage": "execute",
                    "step": str(name),
                }
                if step.error:
                    out.append(
                        {**line, "level": "error", "error": step.error, "msg": "step failed"}
                    )
                else:
                    out.append({**line, "level": "debug", "msg": "step completed"})
            if call.span.error:
                out.append(
                    {
                        **base,
                        "span_id": call.span.span_id,
                        "level": "error",
                        "component": "app",
                        "action": call.method,
                        "error": call.span.error,
                        "msg": f"{verb} microvm failed",
                    }
                )
        return out

    def write_tick(self, now: float, calls: list[Call] | None = None) -> int:
        lines = self.lines_for_tick(now) + self.call_lines(calls or [])
        if lines:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as f:
                for line in lines:
                    f.write(json.dumps(line, sort_keys=True, separators=(",", ":")) + "\n")
        return len(lines)
