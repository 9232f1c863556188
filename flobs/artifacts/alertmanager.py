"""Alert delivery: the generated Alertmanager config, its routing tests, and vmalert.

Files (relative to OUT), written when ``central.alertmanager`` has ``receivers``:

* ``central/alertmanager.yml``: receivers (secrets only as ``*_file`` paths), one route
  per inventory route, and the inhibition rules that follow from the alert set.
* ``central/alertmanager-routes.test.yml``: for every alert and every label set the
  fleet gives it, the receivers it must reach; ``flobs validate --tools`` runs each
  case through ``amtool config routes test``.

In remote_write mode (with any ``central.alertmanager``) also:

* ``central/vmalert.args``: vmalert's flags, one per line, evaluating
  ``central/rules/*.yml`` against the store and notifying the same Alertmanager.

Routes by inventory labels (``team: storage``) match host names: aggregated alerts
keep ``cluster`` and ``host`` but not the inventory's other labels, so flobs turns
"hosts with team=storage" into ``host=~"h1|h2"``, which holds for every per-host alert.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from flobs import layout
from flobs.artifacts.central_rules import Alert, alerts
from flobs.artifacts.common import header, http_client_auth, yaml_file
from flobs.model import Alertmanager, AlertRoute, FileAuth, Fleet, Host

CONFIG_FILE = "central/alertmanager.yml"
ROUTES_TEST_FILE = "central/alertmanager-routes.test.yml"
VMALERT_ARGS_FILE = "central/vmalert.args"

HOST_KEY = ("cluster", "host")


# --------------------------------------------------------------------------- matchers


def _quote(value: str) -> str:
    """An Alertmanager matcher value: double-quoted, ``\\`` and ``"`` escaped."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def matcher(name: str, value: str, op: str = "=") -> str:
    return f"{name}{op}{_quote(value)}"


_RE2_SPECIAL = re.compile(r"([\\.+*?()|\[\]{}^$])")


def _any_of(values: Sequence[str]) -> str:
    """An RE2 alternation matching exactly these strings (Alertmanager anchors it)."""
    return "|".join(_RE2_SPECIAL.sub(r"\\\1", v) for v in values)


def route_matchers(route: AlertRoute) -> list[str]:
    out = [matcher(k, v) for k, v in route.match]
    if route.hosts is not None:
        # No host carries the labels: a regex that matches no host name (host names
        # are never empty), so the route still only applies to alerts without a host.
        out.append(matcher("host", _any_of(route.hosts), "=~") if route.hosts else 'host=""')
    return out


def route_receivers(am: Alertmanager, labels: Mapping[str, str]) -> list[str]:
    """The receivers Alertmanager picks for ``labels`` (first match unless continue)."""
    chosen: list[str] = []
    for route in am.routes:
        if all(labels.get(k, "") == v for k, v in route.match) and (
            route.hosts is None or labels.get("host", "") in route.hosts
        ):
            chosen.append(route.receiver)
            if not route.continue_:
                break
    return chosen or [am.default_receiver]


# --------------------------------------------------------------------------- inhibition


def inhibit_rules(all_alerts: Sequence[Alert], mode: str = "federation") -> list[dict[str, Any]]:
    """What follows from the alert set (and the central ``mode``).

    * A cluster-wide outage (FlobsClusterDown) mutes every per-host alert of the cluster:
      one page instead of one per host.
    * A host the centre cannot hear from (FlobsHostDown) mutes that host's other
      alerts: its exporters and flintlockd look down only because the host is.
    * An alert that names others in ``inhibits`` mutes them on the same host (for
      example flintlock-metrics down mutes stale Firecracker metrics).
    * remote_write mode: FlobsHostDown mutes FlobsHostsMissing of its cluster. There a
      dead host's last ``up`` leaves the store's 5m lookback, the count of reporting
      hosts drops, and the same outage would page a second time (seen in the demo,
      5 min after FlobsHostDown). Nothing is lost: FlobsHostDown compares with the
      inventory, so it already fires for a host that never wrote. In federation a
      dead host keeps its ``up`` series (0), so FlobsHostsMissing means "not a target".
    """
    names = {a.name for a in all_alerts}
    per_host = [a.name for a in all_alerts if a.per_host]
    rules: list[dict[str, Any]] = []

    def rule(source: str, targets: Sequence[str], equal: Sequence[str]) -> None:
        targets = [t for t in targets if t != source and t in names]
        if source in names and targets:
            rules.append(
                {
                    "source_matchers": [matcher("alertname", source)],
                    "target_matchers": [matcher("alertname", _any_of(sorted(targets)), "=~")],
                    "equal": list(equal),
                }
            )

    rule("FlobsClusterDown", per_host, ("cluster",))
    rule("FlobsHostDown", per_host, HOST_KEY)
    for a in all_alerts:
        if a.inhibits:
            rule(a.name, a.inhibits, HOST_KEY if a.per_host else ("cluster",))
    if mode == "remote_write":
        rule("FlobsHostDown", ["FlobsHostsMissing"], ("cluster",))
    return rules


# --------------------------------------------------------------------------- receivers


def _http_config(auth: FileAuth) -> dict[str, Any]:
    return http_client_auth(auth, bearer="authorization")


def _integration(kind: str, settings: Mapping[str, Any]) -> dict[str, Any]:
    s = dict(settings)
    if kind == "webhook":
        out: dict[str, Any] = {}
        out["url" if "url" in s else "url_file"] = s.get("url", s.get("url_file"))
        basic = s.get("basic_auth") or {}
        http = _http_config(
            FileAuth(
                bearer_token_file=s.get("bearer_token_file"),
                username=basic.get("username"),
                password_file=basic.get("password_file"),
                ca_file=s.get("ca_file"),
            )
        )
        if http:
            out["http_config"] = http
        out["max_alerts"] = s.get("max_alerts", 0)
        out["send_resolved"] = s.get("send_resolved", True)
        return out
    if kind == "email":
        out = {k: s[k] for k in ("to", "from", "smarthost")}
        for key in ("auth_username", "auth_password_file"):
            if key in s:
                out[key] = s[key]
        out["require_tls"] = s.get("require_tls", True)
        out["send_resolved"] = s.get("send_resolved", False)
        return out
    if kind == "slack":
        out = {"api_url_file": s["api_url_file"]}
        if "channel" in s:
            out["channel"] = s["channel"]
        out["title"] = "{{ .CommonLabels.alertname }} ({{ .Status }})"
        out["text"] = "{{ range .Alerts }}{{ .Annotations.summary }}\n{{ end }}"
        out["send_resolved"] = s.get("send_resolved", True)
        return out
    if kind == "pagerduty":
        return {
            "routing_key_file": s["routing_key_file"],
            "send_resolved": s.get("send_resolved", True),
        }
    out = {"api_key_file": s["api_key_file"]}
    if "api_url" in s:
        out["api_url"] = s["api_url"]
    out["send_resolved"] = s.get("send_resolved", True)
    return out


def config(fleet: Fleet) -> dict[str, Any]:
    am = fleet.central.alertmanager
    assert am is not None
    assert am.generated
    routes: list[dict[str, Any]] = []
    for r in am.routes:
        entry: dict[str, Any] = {"receiver": r.receiver, "matchers": route_matchers(r)}
        if r.group_by is not None:
            entry["group_by"] = list(r.group_by)
        if r.repeat_interval is not None:
            entry["repeat_interval"] = r.repeat_interval
        if r.continue_:
            entry["continue"] = True
        routes.append(entry)
    root: dict[str, Any] = {
        "receiver": am.default_receiver,
        "group_by": list(am.group_by),
        "group_wait": am.group_wait,
        "group_interval": am.group_interval,
        "repeat_interval": am.repeat_interval,
    }
    if routes:
        root["routes"] = routes
    receivers: list[dict[str, Any]] = []
    for rec in am.receivers:
        entry = {"name": rec.name}
        for integration in rec.integrations:
            entry.setdefault(f"{integration.kind}_configs", []).append(
                _integration(integration.kind, dict(integration.settings))
            )
        receivers.append(entry)
    doc: dict[str, Any] = {"global": {"resolve_timeout": am.resolve_timeout}, "route": root}
    if am.inhibit:
        doc["inhibit_rules"] = inhibit_rules(alerts(fleet), fleet.central.prometheus.mode)
    doc["receivers"] = receivers
    return doc


# --------------------------------------------------------------------------- routing tests


def routing_cases(fleet: Fleet) -> list[dict[str, Any]]:
    """Every alert times every label set the fleet gives it, with the receivers it must reach.

    Per-host alerts: one host per distinct set of routes that select hosts (hosts the
    same routes select route alike), so the file grows with the routes, not the fleet.
    """
    am = fleet.central.alertmanager
    assert am is not None
    host_routes = [r for r in am.routes if r.hosts is not None]
    representatives: dict[tuple[bool, ...], Host] = {}
    for host in sorted(fleet.hosts, key=lambda h: h.name):
        key = tuple(host.name in (r.hosts or ()) for r in host_routes)
        representatives.setdefault(key, host)
    cases: list[dict[str, Any]] = []
    for alert in alerts(fleet):
        fired = next((c.fires[0] for c in alert.cases if c.fires), {})
        base = {
            **{k: v for k, v in fired.items() if k not in HOST_KEY},
            "alertname": alert.name,
            "severity": alert.severity,
            "cluster": fleet.cluster,
        }
        label_sets = [base]
        if alert.per_host:
            label_sets = [
                {**base, "host": h.name, **_instance(base, h)} for h in representatives.values()
            ]
        for labels in label_sets:
            labels = dict(sorted(labels.items()))
            where = f" on {labels['host']}" if "host" in labels else ""
            cases.append(
                {
                    "name": f"{alert.name}{where}",
                    "labels": labels,
                    "receivers": route_receivers(am, labels),
                }
            )
    return cases


def _instance(labels: Mapping[str, str], host: Host) -> dict[str, str]:
    """The ``instance`` the alert has on ``host``: federate target, else the host name."""
    if "instance" not in labels:
        return {}
    return {"instance": host.federation_target if labels.get("job") == "federate" else host.name}


def routing_tests(fleet: Fleet) -> dict[str, Any]:
    return {"config_file": "alertmanager.yml", "tests": routing_cases(fleet)}


# --------------------------------------------------------------------------- vmalert


def vmalert_args(fleet: Fleet, rules: str = "rules/*.yml") -> list[str]:
    """vmalert evaluating the central rules against the store (remote_write mode).

    ``rules``: where the rule files are, relative to central/ for vmalert.args and
    absolute in the layout for the unit (flobs-vmalert.service)."""
    p = fleet.central.prometheus
    am = fleet.central.alertmanager
    assert p.remote_write is not None
    assert am is not None
    args = [
        f"-rule={rules}",
        f"-datasource.url={p.url}",
        # Recording rules and alert state go back into the store; the URL is the
        # hosts' remote_write URL, used as it is.
        f"-remoteWrite.url={p.remote_write.url}",
        "-remoteWrite.disablePathAppend",
        # After a restart, `for:` timers resume from the ALERTS_FOR_STATE series.
        f"-remoteRead.url={p.url}",
        f"-evaluationInterval={p.evaluation_interval}",
        f"-external.label=cluster={fleet.cluster}",
        f"-httpListenAddr={am.vmalert_listen}",
    ]
    store = p.remote_write.auth
    for prefix in ("datasource", "remoteWrite", "remoteRead"):
        args += _vm_auth(prefix, store)
    for url in am.urls:
        args.append(f"-notifier.url={url}")
    args += _vm_auth("notifier", am.auth)
    return args


def _vm_auth(prefix: str, auth: FileAuth) -> list[str]:
    out: list[str] = []
    if auth.bearer_token_file:
        out.append(f"-{prefix}.bearerTokenFile={auth.bearer_token_file}")
    if auth.username:
        out.append(f"-{prefix}.basicAuth.username={auth.username}")
        out.append(f"-{prefix}.basicAuth.passwordFile={auth.password_file}")
    tls = (("ca_file", "tlsCAFile"), ("cert_file", "tlsCertFile"), ("key_file", "tlsKeyFile"))
    for key, flag in tls:
        if getattr(auth, key):
            out.append(f"-{prefix}.{flag}={getattr(auth, key)}")
    if auth.insecure_skip_verify:
        out.append(f"-{prefix}.tlsInsecureSkipVerify")
    return out


def _comment(text: str) -> str:
    return "".join(f"# {line}\n" if line else "#\n" for line in text.splitlines())


# --------------------------------------------------------------------------- files


def fleet_files(fleet: Fleet) -> dict[str, bytes]:
    am = fleet.central.alertmanager
    if am is None:
        return {}
    files: dict[str, bytes] = {}
    if am.generated:
        listen = am.listen
        files[CONFIG_FILE] = yaml_file(
            fleet,
            "Alertmanager for the Flintlock fleet: receivers, routes, inhibition.\n"
            "Run by prometheus-alertmanager.service with the drop-in in central/systemd/;\n"
            "by hand (from central/; Debian names the binary prometheus-alertmanager):\n"
            f"  alertmanager --config.file=alertmanager.yml --web.listen-address={listen} "
            f"--storage.path={layout.ALERTMANAGER_STORAGE} --cluster.listen-address=\n"
            "(an empty --cluster.listen-address turns gossip off; it would bind 0.0.0.0:9094).\n"
            "Check: amtool check-config alertmanager.yml",
            config(fleet),
        )
        files[ROUTES_TEST_FILE] = yaml_file(
            fleet,
            "Routing tests: each alert with each label set the fleet gives it, and the\n"
            "receivers it must reach. `flobs validate --tools` runs every case as\n"
            "  amtool config routes test --config.file=alertmanager.yml "
            "--verify.receivers=R1,R2 LABEL=VALUE …",
            routing_tests(fleet),
        )
    if fleet.central.prometheus.mode == "remote_write":
        head = header(
            fleet,
            "vmalert flags, one per line: the central rules evaluated against the store,\n"
            "notifying the Alertmanager. Run from central/:\n"
            "  grep -v '^#' vmalert.args | xargs -d '\\n' vmalert",
        )
        body = "".join(arg + "\n" for arg in vmalert_args(fleet))
        files[VMALERT_ARGS_FILE] = (_comment(head) + body).encode("utf-8")
    return files
