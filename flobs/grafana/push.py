"""Plan, compare and push dashboards (and datasources) to Grafana; never prints.

The contract with CI (issue 6): never clobber a colleague's edit, never bump a
dashboard's version when nothing changed, survive a flaky proxy, never leak the token.

How a dashboard is pushed (rules from grafana-api.md):

1. ``GET /api/dashboards/uid/:uid``; 404 means *create*.
2. ``meta.provisioned`` → *skipped*: Grafana answers 400 "Cannot save provisioned
   dashboard" even with overwrite.
3. The remote and local JSON are compared after :func:`normalize` (which drops ``id``,
   ``version`` and what Grafana adds); equal and in the right folder → *unchanged*, no
   write, because every accepted save stores version+1 even when nothing changed.
4. Every dashboard flobs saves carries a content fingerprint (:data:`MARKER`). A remote
   whose content no longer matches its fingerprint was edited in Grafana since flobs
   pushed it (or never came from flobs): that is a *conflict*, left alone unless
   ``--force``. Otherwise it is *updated*: POST with the version just read and
   ``overwrite: false``, so a save that sneaks in between GET and POST is refused by
   Grafana (412, or 409 on the newest Grafana) and reported as a conflict too.
5. A POST whose answer was lost is re-sent only after a GET shows it did not land.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from flobs import __version__
from flobs.errors import InputError, RemoteError, UsageError
from flobs.grafana.client import (
    AuthRefused,
    GrafanaClient,
    GrafanaHTTPError,
    GrafanaUnreachable,
    OutcomeUnknown,
)
from flobs.problems import Problem, Severity

DASHBOARDS_DIR = "grafana/dashboards"
UID_RE = re.compile(r"^[a-zA-Z0-9_-]{1,40}$")
# Grafana refuses nesting deeper than this (grafana-api.md: "limit 8 seen").
MAX_FOLDER_DEPTH = 8
# Top-level key holding the fingerprint of what flobs pushed. Grafana stores the JSON
# model as given; a save from the UI rewrites the model, so the fingerprint then no
# longer matches (or is gone) and the edit is detected either way.
MARKER = "flobsPush"
# Keys Grafana sets itself: id/version on every save, iteration by the UI.
GRAFANA_OWNED_KEYS = frozenset({"id", "version", "iteration", MARKER})
SAVE_MESSAGE = f"flobs {__version__} push-dashboards"
# Right after a folder is created, Grafana has been seen answering a dashboard POST
# into it with 500/403 for a moment (grafana-api.md, "Reported races").
FRESH_FOLDER_RETRIES = 4
FRESH_FOLDER_DELAY = 0.25
# Re-sends of a write whose answer was lost, each only after a GET proved it absent.
LOST_WRITE_RESENDS = 2
DIFF_LINES = 12


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    UNCHANGED = "unchanged"
    CONFLICT = "conflict"
    SKIPPED = "skipped"
    FAILED = "failed"
    DELETE = "delete"  # --prune: an owned dashboard flobs no longer generates


@dataclass(frozen=True)
class ItemResult:
    """What happened (or, in a dry run, would happen) to one folder/datasource/dashboard."""

    kind: str  # "folder" | "datasource" | "dashboard"
    uid: str
    title: str
    action: Action
    detail: str = ""
    diff: tuple[str, ...] = ()
    version: int | None = None  # the version Grafana stored (after a write)
    source: str | None = None  # the local file it came from

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "uid": self.uid,
            "title": self.title,
            "action": self.action.value,
            "detail": self.detail,
            "diff": list(self.diff),
            "version": self.version,
            "source": self.source,
        }


@dataclass(frozen=True)
class PushResult:
    grafana_url: str
    grafana_version: str | None
    dry_run: bool
    items: tuple[ItemResult, ...]
    warnings: tuple[str, ...] = ()

    def of_kind(self, kind: str) -> list[ItemResult]:
        return [i for i in self.items if i.kind == kind]

    def count(self, action: Action) -> int:
        return sum(1 for i in self.items if i.action is action)

    @property
    def ok(self) -> bool:
        """No conflicts and no failures (skips are warnings, not failures)."""
        return not any(i.action in (Action.CONFLICT, Action.FAILED) for i in self.items)

    def to_json(self) -> dict[str, Any]:
        return {
            "grafana": {"url": self.grafana_url, "version": self.grafana_version},
            "dry_run": self.dry_run,
            "summary": {a.value: self.count(a) for a in Action},
            "items": [i.to_json() for i in self.items],
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True)
class FolderSpec:
    uid: str
    title: str


@dataclass(frozen=True)
class LocalDashboard:
    uid: str
    title: str
    model: dict[str, Any]
    source: str  # path relative to OUT


@dataclass
class PushOptions:
    folders: Sequence[FolderSpec]  # outermost first; dashboards go into the last
    dry_run: bool = False
    force: bool = False
    force_uids: frozenset[str] = frozenset()  # --force-uid: overwrite/delete only these
    prune: bool = False
    concurrency: int = 4
    progress: Callable[[int, int], None] | None = None
    warnings: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------- local input


def folder_chain(uid_path: str, title_path: str | None) -> list[FolderSpec]:
    """``--folder-uid a/b`` with ``--folder-title "A/B"`` → parents first.

    A single title with several uids names the innermost folder; parents missing in
    Grafana are then created with their uid as title.
    """
    uids = uid_path.split("/")
    titles: list[str]
    if title_path is None:
        titles = list(uids)
    elif len(uids) > 1 and len(title_path.split("/")) == len(uids):
        titles = title_path.split("/")
    else:
        titles = [*uids[:-1], title_path]
    problems = []
    for uid in uids:
        if not UID_RE.fullmatch(uid):
            problems.append(f"folder uid {uid!r} must match {UID_RE.pattern}")
    for title in titles:
        if not title.strip():
            problems.append("folder title must not be empty")
    if len(uids) > MAX_FOLDER_DEPTH:
        problems.append(f"folders nest at most {MAX_FOLDER_DEPTH} deep in Grafana, got {len(uids)}")
    if len(set(uids)) != len(uids):
        problems.append("a folder uid appears twice in --folder-uid")
    if problems:
        raise UsageError(
            "; ".join(problems), hint="--folder-uid takes uids separated by / (parents first)"
        )
    return [FolderSpec(u, t.strip()) for u, t in zip(uids, titles, strict=True)]


def load_dashboards(out: Path) -> list[LocalDashboard]:
    """Read and check ``OUT/grafana/dashboards/*.json`` before any request is made."""
    directory = out / DASHBOARDS_DIR
    if not directory.is_dir():
        raise InputError(
            [
                Problem(
                    str(directory),
                    None,
                    None,
                    "push",
                    Severity.ERROR,
                    "no dashboards directory",
                    "run `flobs generate -i INVENTORY -o OUT` first",
                )
            ]
        )
    problems: list[Problem] = []
    found: list[LocalDashboard] = []
    seen: dict[str, str] = {}
    for path in sorted(directory.glob("*.json")):
        shown = str(path)
        rel = path.relative_to(out).as_posix()

        def bad(
            message: str, hint: str | None = None, key: str | None = None, shown: str = shown
        ) -> None:
            problems.append(Problem(shown, None, None, "push", Severity.ERROR, message, hint, key))

        try:
            model = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as err:
            bad(f"cannot read: {err}")
            continue
        except json.JSONDecodeError as err:
            problems.append(
                Problem(
                    shown, err.lineno, err.colno, "push", Severity.ERROR, f"not JSON: {err.msg}"
                )
            )
            continue
        if isinstance(model, dict) and isinstance(model.get("dashboard"), dict):
            model = model["dashboard"]  # an export wrapped as {"dashboard": …, "meta": …}
        if not isinstance(model, dict):
            bad("a dashboard must be a JSON object")
            continue
        uid, title = model.get("uid"), model.get("title")
        if not isinstance(uid, str) or not UID_RE.fullmatch(uid):
            bad(
                f"dashboard uid {uid!r} must match {UID_RE.pattern}",
                "Grafana refuses longer uids and other characters; a stable uid is what "
                "lets flobs update the dashboard instead of duplicating it",
                "$.uid",
            )
            continue
        if not isinstance(title, str) or not title.strip():
            bad(
                "dashboard title must be a non-empty string",
                "Grafana answers 400 empty-name",
                "$.title",
            )
            continue
        if uid in seen:
            bad(
                f"uid {uid!r} is also used by {seen[uid]}",
                "every dashboard needs its own uid",
                "$.uid",
            )
            continue
        seen[uid] = shown
        found.append(LocalDashboard(uid, title, model, rel))
    if problems:
        raise InputError(
            problems,
            f"{len(problems)} problem{'s' if len(problems) != 1 else ''} in the dashboards",
        )
    return found


# ---------------------------------------------------------------------------- comparison


def normalize(model: dict[str, Any]) -> dict[str, Any]:
    """The part of a dashboard flobs owns: without what Grafana sets on save, and
    without top-level keys whose value is empty (a server may add those as defaults)."""
    return {
        k: _canonical(v)
        for k, v in model.items()
        if k not in GRAFANA_OWNED_KEYS and v not in (None, "", [], {})
    }


def _canonical(value: Any) -> Any:
    # Grafana is Go: a JSON number comes back as float64 and is written without a
    # fraction, so a local 1.0 reads back as 1. Compare numbers as numbers.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return value


def fingerprint(model: dict[str, Any]) -> str:
    canonical = json.dumps(
        normalize(model), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def short_diff(
    remote: dict[str, Any] | None, local: dict[str, Any], limit: int = DIFF_LINES
) -> tuple[str, ...]:
    """A unified diff (grafana → local) of the normalized models, at most ``limit`` lines."""

    def lines(model: dict[str, Any] | None) -> list[str]:
        if model is None:
            return []
        return json.dumps(
            normalize(model), indent=1, sort_keys=True, ensure_ascii=False
        ).splitlines()

    body = [
        line
        for line in difflib.unified_diff(
            lines(remote), lines(local), "grafana", "local", n=1, lineterm=""
        )
    ]
    if len(body) > limit:
        hidden = len(body) - limit
        body = [*body[:limit], f"… {hidden} more diff line{'s' if hidden != 1 else ''}"]
    return tuple(body)


def _edited_in_grafana(remote: dict[str, Any]) -> str | None:
    """Why the remote must not be overwritten without --force, or None when flobs owns it."""
    marker = remote.get(MARKER)
    if not isinstance(marker, dict) or not isinstance(marker.get("sha256"), str):
        return "exists in Grafana but was not pushed by flobs (or was saved from the UI since)"
    if marker["sha256"] != fingerprint(remote):
        return "changed in Grafana since flobs pushed it"
    return None


def _with_marker(model: dict[str, Any], folder: str) -> dict[str, Any]:
    out = {k: v for k, v in model.items() if k not in GRAFANA_OWNED_KEYS}
    # `folder` names the set of dashboards this marker belongs to: --prune in one folder
    # never deletes what another flobs tree pushed elsewhere.
    out[MARKER] = {"sha256": fingerprint(model), "by": f"flobs {__version__}", "folder": folder}
    return out


def ownership(remote: dict[str, Any], folder: str) -> str:
    """``owned`` (ours, unedited), ``edited`` (ours, changed in Grafana) or ``foreign``."""
    marker = remote.get(MARKER)
    if not isinstance(marker, dict) or not isinstance(marker.get("sha256"), str):
        return "foreign"
    if marker.get("folder", folder) != folder:
        return "foreign"  # pushed by flobs into another folder: another tree's
    return "owned" if marker["sha256"] == fingerprint(remote) else "edited"


# ---------------------------------------------------------------------------- the push


class DashboardPush:
    """One push run against one Grafana organisation."""

    def __init__(self, client: GrafanaClient, options: PushOptions) -> None:
        self.client = client
        self.options = options
        self.folder_created = False

    @property
    def target_folder(self) -> str:
        return self.options.folders[-1].uid

    def forced(self, uid: str) -> bool:
        return self.options.force or uid in self.options.force_uids

    # ---------------------------------------------------------------- health
    def check_health(self) -> str | None:
        """Grafana's version; raise a clear error when Grafana is not answering."""
        try:
            body = self.client.get("/api/health")
        except GrafanaHTTPError as err:
            raise GrafanaUnreachable(
                f"Grafana is not healthy: {err.message}",
                hint="check --grafana-url; a 503 with database failing means Grafana's own "
                "database is down",
            ) from None
        except GrafanaUnreachable as err:
            last = err.last.body if err.last is not None else None
            if isinstance(last, dict) and last.get("database") == "failing":
                raise GrafanaUnreachable(
                    f"Grafana at {self.client.base_url} reports its database is failing "
                    f"({err.message})",
                    hint="Grafana's own database is down; nothing can be saved until it is back",
                ) from None
            raise GrafanaUnreachable(
                f"Grafana at {self.client.base_url} is unreachable: {err.message}",
                hint=err.hint or "check --grafana-url and the network path (proxy, firewall)",
            ) from None
        if not isinstance(body, dict) or body.get("database") != "ok":
            raise GrafanaUnreachable(
                f"{self.client.base_url}/api/health did not answer like Grafana "
                f"(database: {body.get('database') if isinstance(body, dict) else body!r})",
                hint="check --grafana-url",
            )
        version = body.get("version")
        return str(version) if version is not None else None

    # ---------------------------------------------------------------- folders
    def ensure_folders(self) -> list[ItemResult]:
        results = []
        parent: str | None = None
        missing_above = False
        for spec in self.options.folders:
            existing = None if missing_above else self._get_folder(spec.uid)
            if existing is not None:
                detail = ""
                if existing.get("parentUid") not in (None, "", parent):
                    detail = (
                        f"exists under parent {existing.get('parentUid')!r}, not "
                        f"{parent or 'the root'!r}; left where it is"
                    )
                    self.options.warnings.append(f"folder {spec.uid}: {detail}")
                results.append(
                    ItemResult(
                        "folder", spec.uid, str(existing.get("title", "")), Action.UNCHANGED, detail
                    )
                )
            elif self.options.dry_run:
                missing_above = True
                results.append(
                    ItemResult(
                        "folder", spec.uid, spec.title, Action.CREATE, f"parent: {parent or 'root'}"
                    )
                )
            else:
                results.append(self._create_folder(spec, parent))
            parent = spec.uid
        return results

    def _get_folder(self, uid: str) -> dict[str, Any] | None:
        try:
            body = self.client.get(f"/api/folders/{uid}")
        except GrafanaHTTPError as err:
            if err.status == 404:
                return None
            raise self._fatal(err, f"cannot read folder {uid}") from None
        return body if isinstance(body, dict) else None

    def _create_folder(self, spec: FolderSpec, parent: str | None) -> ItemResult:
        payload: dict[str, Any] = {"uid": spec.uid, "title": spec.title}
        if parent is not None:
            payload["parentUid"] = parent
        created = ItemResult(
            "folder", spec.uid, spec.title, Action.CREATE, f"parent: {parent or 'root'}"
        )
        lost: OutcomeUnknown | None = None
        for _attempt in range(LOST_WRITE_RESENDS + 1):
            try:
                self.client.post("/api/folders", payload)
            except OutcomeUnknown as err:
                # Re-send only when a re-read shows the folder was not made.
                if self._get_folder(spec.uid) is not None:
                    break
                lost = err
                continue
            except GrafanaHTTPError as err:
                if err.status != 409:
                    raise self._fatal(err, f"cannot create folder {spec.uid}") from None
                return self._folder_race(spec, err)
            break
        else:
            assert lost is not None
            raise RemoteError(f"folder {spec.uid!r} could not be created: {lost.message}")
        self.folder_created = True
        return created

    def _folder_race(self, spec: FolderSpec, err: GrafanaHTTPError) -> ItemResult:
        """A concurrent create (another CI job) answers 409 although the folder was made
        (grafana-api.md); it counts as success once a re-read finds it."""
        for retry in range(3):
            found = self._get_folder(spec.uid)
            if found is not None:
                self.folder_created = True
                return ItemResult(
                    "folder",
                    spec.uid,
                    str(found.get("title", spec.title)),
                    Action.UNCHANGED,
                    "created concurrently by someone else",
                )
            self.client.pause(FRESH_FOLDER_DELAY * (2**retry))
        raise RemoteError(
            f"folder {spec.uid!r} could not be created: {err.server_message}",
            hint="another folder with the same title probably exists under the same "
            "parent; rename it or pass its uid with --folder-uid",
        ) from None

    def _fatal(self, err: GrafanaHTTPError, what: str) -> RemoteError:
        if isinstance(err, AuthRefused):
            return err
        if err.status == 403:
            return AuthRefused(
                err.method,
                err.path,
                err.status,
                err.server_message,
                hint="the token's service account needs folder and dashboard "
                "write permission (Editor) in this organisation",
            )
        return RemoteError(f"{what}: {err.message}", hint=err.hint)

    # ---------------------------------------------------------------- dashboards
    def push_dashboards(self, dashboards: Sequence[LocalDashboard]) -> list[ItemResult]:
        total = len(dashboards)
        done = 0
        results: dict[str, ItemResult] = {}
        progress = self.options.progress
        if progress:
            progress(0, total)
        workers = max(1, min(self.options.concurrency, total or 1))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="flobs-push") as pool:
            futures = {pool.submit(self._one_dashboard, d): d for d in dashboards}
            for future in as_completed(futures):
                dash = futures[future]
                try:
                    results[dash.uid] = future.result()
                except AuthRefused:
                    # Nothing else will succeed either; the others are cancelled.
                    for other in futures:
                        other.cancel()
                    raise
                done += 1
                if progress:
                    progress(done, total)
        return [results[d.uid] for d in dashboards]

    def _one_dashboard(self, local: LocalDashboard) -> ItemResult:
        def result(
            action: Action, detail: str = "", diff: Iterable[str] = (), version: int | None = None
        ) -> ItemResult:
            return ItemResult(
                "dashboard",
                local.uid,
                local.title,
                action,
                detail,
                tuple(diff),
                version,
                local.source,
            )

        try:
            # Read even when the folder is missing: the uid may live in another folder.
            remote = self._get_dashboard(local.uid)
        except AuthRefused:
            raise
        except (GrafanaHTTPError, GrafanaUnreachable) as err:
            return result(Action.FAILED, f"cannot read it: {err.message}")
        if remote is None:
            if self.options.dry_run:
                return result(Action.CREATE, "new dashboard")
            return self._save(local, None, result)
        model, meta = remote
        if meta.get("provisioned"):
            where = meta.get("provisionedExternalId") or "a provisioning file"
            warning = (
                f"dashboard {local.uid}: provisioned from {where}; Grafana refuses to "
                "save it over the API, skipped"
            )
            self.options.warnings.append(warning)
            return result(Action.SKIPPED, f"provisioned from {where}")
        remote_folder = meta.get("folderUid") or ""
        same_folder = remote_folder == self.target_folder
        diff = short_diff(model, local.model)
        if not diff and same_folder:
            return result(Action.UNCHANGED, version=_int(model.get("version")))
        move = "" if same_folder else f"move from folder {remote_folder or 'root'!r}"
        edited = _edited_in_grafana(model)
        if edited and not self.forced(local.uid):
            return result(Action.CONFLICT, f"{edited}; --force overwrites it", diff)
        detail = "; ".join(x for x in (move, "forced" if edited else "") if x)
        if self.options.dry_run:
            return result(Action.UPDATE, detail, diff)
        return self._save(local, model, result, diff=diff, detail=detail)

    def get_dashboard(self, uid: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """(model, meta) of the dashboard ``uid`` in Grafana, or None when it has none."""
        return self._get_dashboard(uid)

    def _get_dashboard(self, uid: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
        try:
            body = self.client.get(f"/api/dashboards/uid/{uid}")
        except GrafanaHTTPError as err:
            if err.status == 404:
                return None
            raise
        if not isinstance(body, dict) or not isinstance(body.get("dashboard"), dict):
            raise GrafanaHTTPError(
                "GET",
                f"/api/dashboards/uid/{uid}",
                200,
                "answer has no dashboard object",
                base_url=self.client.base_url,
            )
        meta = body.get("meta")
        return body["dashboard"], meta if isinstance(meta, dict) else {}

    def _save(
        self,
        local: LocalDashboard,
        remote: dict[str, Any] | None,
        result: Callable[..., ItemResult],
        *,
        diff: Sequence[str] = (),
        detail: str = "",
    ) -> ItemResult:
        dashboard = _with_marker(local.model, self.target_folder)
        dashboard["id"] = None
        stored_version = _int(remote.get("version")) if remote is not None else None
        if stored_version is not None:
            dashboard["version"] = stored_version
        body = {
            "dashboard": dashboard,
            "folderUid": self.target_folder,
            "overwrite": self.forced(local.uid),
            "message": SAVE_MESSAGE,
        }
        action = Action.CREATE if remote is None else Action.UPDATE
        resends = 0
        transient = 0
        while True:
            try:
                answer = self.client.post("/api/dashboards/db", body)
            except AuthRefused:
                raise
            except OutcomeUnknown as err:
                landed = self._landed(local, stored_version)
                if landed is not None:
                    return result(
                        action,
                        _join(detail, "confirmed by re-reading after a lost answer"),
                        diff,
                        landed,
                    )
                resends += 1
                if resends > LOST_WRITE_RESENDS:
                    return result(Action.FAILED, err.message, diff)
                continue
            except GrafanaUnreachable as err:
                return result(Action.FAILED, err.message, diff)
            except GrafanaHTTPError as err:
                if (
                    err.status == 409
                    and remote is not None
                    and not body["overwrite"]
                    and self._still_ours(local.uid, stored_version)
                ):
                    # The newest Grafana strips `version` and answers 409 to any save of
                    # an existing uid without overwrite (grafana-api.md), so it cannot
                    # lock for us. A re-read showing the version we compared against,
                    # still carrying our fingerprint, is the lock; then overwrite.
                    body = {**body, "overwrite": True}
                    detail = _join(
                        detail, "Grafana does no version check; verified unchanged, then overwrote"
                    )
                    continue
                if err.status in (409, 412):
                    # After a lost answer, the first save may land late, just before the
                    # re-sent one, which Grafana then refuses: that is our save, not a
                    # colleague's.
                    landed = self._landed(local, stored_version) if resends else None
                    if landed is not None:
                        return result(
                            action,
                            _join(detail, "confirmed by re-reading after a lost answer"),
                            diff,
                            landed,
                        )
                    return result(Action.CONFLICT, _conflict_text(err), diff)
                if err.status == 400 and "provisioned" in err.server_message.lower():
                    self.options.warnings.append(
                        f"dashboard {local.uid}: Grafana says it is provisioned; skipped"
                    )
                    return result(Action.SKIPPED, err.server_message)
                fresh_folder_race = self.folder_created and (
                    err.status == 403
                    or (err.status == 400 and "folder" in err.server_message.lower())
                )
                if fresh_folder_race and transient < FRESH_FOLDER_RETRIES:
                    self.client.pause(FRESH_FOLDER_DELAY * (2**transient))
                    transient += 1
                    continue
                return result(Action.FAILED, err.message, diff)
            version = _int(answer.get("version")) if isinstance(answer, dict) else None
            return result(action, detail, diff, version)

    def _still_ours(self, uid: str, stored_version: int | None) -> bool:
        try:
            remote = self._get_dashboard(uid)
        except (GrafanaHTTPError, GrafanaUnreachable):
            return False
        if remote is None:
            return False
        model, _meta = remote
        return _int(model.get("version")) == stored_version and _edited_in_grafana(model) is None

    def _landed(self, local: LocalDashboard, stored_version: int | None) -> int | None:
        """The new version when our save is visible in Grafana, else None."""
        try:
            remote = self._get_dashboard(local.uid)
        except (GrafanaHTTPError, GrafanaUnreachable):
            return None
        if remote is None:
            return None
        model, meta = remote
        version = _int(model.get("version"))
        newer = stored_version is None or (version is not None and version > stored_version)
        same = (
            not short_diff(model, local.model)
            and (meta.get("folderUid") or "") == self.target_folder
        )
        return version if newer and same else None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


def _conflict_text(err: GrafanaHTTPError) -> str:
    said = err.server_message or f"HTTP {err.status}"
    return f"Grafana refused the save ({err.status}: {said}); --force overwrites it"


def push(
    client: GrafanaClient, out: Path, options: PushOptions, *, datasources: Sequence[Any] = ()
) -> PushResult:
    """The whole run: validate input, health, folders, datasources, dashboards.

    ``datasources`` are :class:`flobs.grafana.datasources.DatasourceSpec` items, already
    read and interpolated (so a missing variable fails before any request).
    """
    from flobs.grafana.datasources import push_datasources

    dashboards = load_dashboards(out)
    run = DashboardPush(client, options)
    version = run.check_health()
    items: list[ItemResult] = []
    items.extend(run.ensure_folders())
    if datasources:
        items.extend(
            push_datasources(
                client,
                datasources,
                dry_run=options.dry_run,
                force=options.force,
                warnings=options.warnings,
            )
        )
    items.extend(run.push_dashboards(dashboards))
    if options.prune:
        from flobs.grafana.prune import prune_dashboards

        items.extend(prune_dashboards(run, {d.uid for d in dashboards}))
    return PushResult(
        client.base_url, version, options.dry_run, tuple(items), tuple(options.warnings)
    )
