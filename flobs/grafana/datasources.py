"""Datasources: read the provisioning file as Grafana would, then create/update by uid.

``OUT/grafana/provisioning/datasources/flobs.yaml`` is written for Grafana's file
provisioning, where ``$VAR``/``${VAR}`` are replaced from the environment and a literal
``$`` is written ``$$`` (grafana-api.md). Pushing the same file over the API must give
the same datasources, so the same interpolation is applied here: the value is split on
``$$``, each part is expanded (``$__env{NAME}``, ``$__file{PATH}``, ``${NAME}``,
``$NAME``) and the parts are joined with ``$``. Unlike Grafana, an unset variable is an
error, not an empty string: an empty password would be pushed silently otherwise.

Secrets exist only in ``secureJsonData``; Grafana never returns them (only
``secureJsonFields: {key: true}``), so a datasource whose plain fields match and whose
secret keys are all set counts as unchanged; ``--force`` re-sends it (secret rotation).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flobs import redact
from flobs.errors import InputError
from flobs.grafana.client import (
    AuthRefused,
    GrafanaClient,
    GrafanaHTTPError,
    GrafanaUnreachable,
    OutcomeUnknown,
)
from flobs.grafana.push import UID_RE, Action, ItemResult, short_diff
from flobs.problems import Problem, Severity
from flobs.yamlio import YamlSyntaxError, format_path, load

DATASOURCES_FILE = "grafana/provisioning/datasources/flobs.yaml"
# Plain fields of the provisioning format the datasource API accepts as well.
PLAIN_FIELDS = (
    "name",
    "type",
    "url",
    "access",
    "isDefault",
    "basicAuth",
    "basicAuthUser",
    "user",
    "database",
    "withCredentials",
    "jsonData",
)
_EXPAND = re.compile(r"\$(?:__(env|file)\{([^}]*)\}|\{([^}]*)\}|([A-Za-z0-9_]+))")


@dataclass(frozen=True)
class DatasourceSpec:
    uid: str
    name: str
    plain: dict[str, Any]  # PLAIN_FIELDS present in the file, interpolated
    secure: dict[str, str] = field(repr=False)  # secureJsonData, interpolated: secrets

    def secrets(self) -> tuple[str, ...]:
        return tuple(v for v in self.secure.values() if v)

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"uid": self.uid, **self.plain}
        if self.secure:
            out["secureJsonData"] = dict(self.secure)
        return out


class _Interpolation:
    """Grafana's provisioning interpolation, collecting unset variables as problems."""

    def __init__(self, env: Mapping[str, str], shown: str) -> None:
        self.env = env
        self.shown = shown
        self.problems: list[Problem] = []

    def value(self, value: Any, path: tuple[str | int, ...]) -> Any:
        if isinstance(value, str):
            return "$".join(self._part(part, path) for part in value.split("$$"))
        if isinstance(value, dict):
            return {k: self.value(v, (*path, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v, (*path, i)) for i, v in enumerate(value)]
        return value

    def _part(self, text: str, path: tuple[str | int, ...]) -> str:
        def repl(match: re.Match[str]) -> str:
            value = expand(match)
            if "secureJsonData" in path:
                # The variable's own value, not only the field it lands in ("Bearer
                # ${FLOBS_LOKI_TOKEN}"): a server may echo the bare token.
                redact.register(value)
            return value

        def expand(match: re.Match[str]) -> str:
            provider, argument, braced, bare = match.groups()
            if provider == "file":
                try:
                    # Grafana's file provider trims surrounding whitespace (a trailing
                    # newline in a secret file is never part of the secret).
                    return Path(argument).read_text(encoding="utf-8").strip()
                except OSError as err:
                    self._problem(
                        path,
                        f"$__file{{{argument}}}: cannot read ({err.strerror})",
                        "the file must exist and be readable where flobs runs",
                    )
                    return ""
            name = argument if provider == "env" else (braced if braced is not None else bare)
            if name not in self.env:
                self._problem(
                    path,
                    f"environment variable {name} is not set",
                    f"export {name}=… before pushing, or write a literal $ as $$",
                )
                return ""
            return self.env[name]

        return _EXPAND.sub(repl, text)

    def _problem(self, path: tuple[str | int, ...], message: str, hint: str) -> None:
        self.problems.append(
            Problem(
                self.shown, None, None, "push", Severity.ERROR, message, hint, format_path(path)
            )
        )


def read_datasources(out: Path, env: Mapping[str, str] | None = None) -> list[DatasourceSpec]:
    """Read and interpolate the datasources file; every problem at once, before any request."""
    environ = os.environ if env is None else env
    path = out / DATASOURCES_FILE
    shown = str(path)

    def problem(message: str, hint: str | None = None, key: str | None = None) -> Problem:
        return Problem(shown, None, None, "push", Severity.ERROR, message, hint, key)

    def fail(message: str, hint: str | None = None, key: str | None = None) -> InputError:
        return InputError([problem(message, hint, key)])

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise fail(
            "no datasources file", "run `flobs generate` first, or drop --datasources"
        ) from None
    except (OSError, UnicodeDecodeError) as err:
        raise fail(f"cannot read: {err}") from None
    try:
        doc = load(text)
    except YamlSyntaxError as err:
        raise InputError([err.as_problem(shown, "push")]) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("datasources"), list):
        raise fail("expected `apiVersion: 1` and a `datasources:` list", key="$.datasources")
    interpolation = _Interpolation(environ, shown)
    problems: list[Problem] = []
    specs: list[DatasourceSpec] = []
    for index, entry in enumerate(doc["datasources"]):
        at: tuple[str | int, ...] = ("datasources", index)
        if not isinstance(entry, dict):
            problems.append(problem("a datasource must be a mapping", None, format_path(at)))
            continue
        uid, name = entry.get("uid"), entry.get("name")
        if not isinstance(uid, str) or not UID_RE.fullmatch(uid):
            problems.append(
                problem(
                    f"datasource uid {uid!r} must match {UID_RE.pattern}",
                    "pushing by uid needs a stable uid",
                    format_path((*at, "uid")),
                )
            )
            continue
        if not isinstance(name, str) or not name.strip():
            problems.append(
                problem("datasource name must not be empty", None, format_path((*at, "name")))
            )
            continue
        plain = {k: interpolation.value(entry[k], (*at, k)) for k in PLAIN_FIELDS if k in entry}
        secure_raw = entry.get("secureJsonData") or {}
        if not isinstance(secure_raw, dict):
            problems.append(
                problem(
                    "secureJsonData must be a mapping", None, format_path((*at, "secureJsonData"))
                )
            )
            continue
        secure = {
            str(k): str(interpolation.value(v, (*at, "secureJsonData", k)))
            for k, v in secure_raw.items()
        }
        specs.append(DatasourceSpec(uid, str(plain.get("name", name)), plain, secure))
    problems.extend(interpolation.problems)
    if problems:
        raise InputError(
            problems,
            f"{len(problems)} problem{'s' if len(problems) != 1 else ''} in the datasources file",
        )
    return specs


def _describe(spec: DatasourceSpec) -> dict[str, Any]:
    """What a diff may show: plain fields, and only the *names* of secret fields."""
    shown: dict[str, Any] = dict(spec.plain)
    if spec.secure:
        shown["secureJsonFields"] = dict.fromkeys(sorted(spec.secure), True)
    return shown


def _remote_view(remote: dict[str, Any], spec: DatasourceSpec) -> dict[str, Any]:
    shown = {k: remote.get(k) for k in spec.plain}
    if spec.secure:
        fields = remote.get("secureJsonFields") or {}
        shown["secureJsonFields"] = {k: True for k in sorted(spec.secure) if fields.get(k)}
    return shown


def push_datasources(
    client: GrafanaClient,
    specs: Sequence[DatasourceSpec],
    *,
    dry_run: bool,
    force: bool,
    warnings: list[str],
) -> list[ItemResult]:
    for spec in specs:
        client.add_secrets(*spec.secrets())
    return [_one(client, spec, dry_run=dry_run, force=force, warnings=warnings) for spec in specs]


def _get(client: GrafanaClient, uid: str) -> dict[str, Any] | None:
    try:
        body = client.get(f"/api/datasources/uid/{uid}")
    except GrafanaHTTPError as err:
        if err.status == 404:
            return None
        raise
    return body if isinstance(body, dict) else None


def _one(
    client: GrafanaClient, spec: DatasourceSpec, *, dry_run: bool, force: bool, warnings: list[str]
) -> ItemResult:
    def result(
        action: Action, detail: str = "", diff: Sequence[str] = (), version: int | None = None
    ) -> ItemResult:
        return ItemResult("datasource", spec.uid, spec.name, action, detail, tuple(diff), version)

    try:
        remote = _get(client, spec.uid)
    except AuthRefused:
        raise
    except (GrafanaHTTPError, GrafanaUnreachable) as err:
        return result(Action.FAILED, f"cannot read it: {err.message}")
    wanted = _describe(spec)
    if remote is None:
        if dry_run:
            return result(Action.CREATE, "new datasource", short_diff(None, wanted))
        return _write(client, spec, None, result, short_diff(None, wanted))
    if remote.get("readOnly"):
        warnings.append(
            f"datasource {spec.uid}: read-only in Grafana (provisioned from a file); skipped"
        )
        return result(Action.SKIPPED, "read-only (provisioned from a file)")
    diff = short_diff(_remote_view(remote, spec), wanted)
    if not diff and not force:
        return result(Action.UNCHANGED, version=_version(remote))
    detail = "" if diff else "forced: secrets re-sent"
    if dry_run:
        return result(Action.UPDATE, detail, diff)
    return _write(client, spec, remote, result, diff, detail)


def _write(
    client: GrafanaClient,
    spec: DatasourceSpec,
    remote: dict[str, Any] | None,
    result: Callable[..., ItemResult],
    diff: Sequence[str],
    detail: str = "",
) -> ItemResult:
    body = spec.body()
    if remote is not None:
        body["version"] = _version(remote)
    method, path = (
        ("POST", "/api/datasources")
        if remote is None
        else ("PUT", f"/api/datasources/uid/{spec.uid}")
    )
    action = Action.CREATE if remote is None else Action.UPDATE
    last = ""
    for _attempt in range(3):
        try:
            answer = client.request(method, path, body=body).body
        except AuthRefused:
            raise
        except OutcomeUnknown as err:
            # Re-send only when a re-read shows the write did not land.
            after = _get_quietly(client, spec.uid)
            if (
                after is not None
                and not short_diff(_remote_view(after, spec), _describe(spec))
                and (remote is None or (_version(after) or 0) > (_version(remote) or 0))
            ):
                return result(
                    action, "confirmed by re-reading after a lost answer", diff, _version(after)
                )
            last = err.message
            continue
        except GrafanaUnreachable as err:
            return result(Action.FAILED, err.message, diff)
        except GrafanaHTTPError as err:
            if err.status == 403 and remote is not None:
                return result(Action.SKIPPED, err.server_message or "read-only", diff)
            if err.status == 409:
                return result(
                    Action.CONFLICT,
                    f"Grafana refused it (409: {err.server_message});"
                    " a datasource with this name exists, or it changed meanwhile",
                    diff,
                )
            return result(Action.FAILED, err.message, diff)
        version = None
        if isinstance(answer, dict) and isinstance(answer.get("datasource"), dict):
            version = _version(answer["datasource"])
        return result(action, detail, diff, version)
    return result(Action.FAILED, last, diff)


def _get_quietly(client: GrafanaClient, uid: str) -> dict[str, Any] | None:
    try:
        return _get(client, uid)
    except (GrafanaHTTPError, GrafanaUnreachable):
        return None


def _version(remote: dict[str, Any]) -> int | None:
    value = remote.get("version")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def secret_names(specs: Sequence[DatasourceSpec]) -> list[str]:
    """For messages: which secret fields exist, never their values."""
    return [f"{s.uid}.{k}" for s in specs for k in sorted(s.secure)]


__all__ = [
    "DATASOURCES_FILE",
    "DatasourceSpec",
    "push_datasources",
    "read_datasources",
    "secret_names",
]
