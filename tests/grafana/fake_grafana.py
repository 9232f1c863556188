"""A protocol-faithful fake Grafana: a real HTTP server on 127.0.0.1.

It implements the endpoints and status rules of ``shared/docs/grafana-api.md`` (the
spec of this fake), keeps per-organisation state, logs every request, and injects
faults per route. Where Grafana versions differ a test chooses:

* ``conflict_status``: 412 ``version-mismatch`` (Grafana ≤ 12) or 409 (newest Grafana,
  which strips ``id``/``version`` from the body, so *every* save of an existing uid
  without ``overwrite`` is refused);
* ``name_exists_check``: same title in the same folder → 412 ``name-exists`` (≤ 11.2).

Beyond the push routes it serves what ``--prune`` needs: ``DELETE /api/dashboards/uid/:uid``
(400 for a provisioned dashboard), ``DELETE /api/folders/:uid`` (taking the folder's
dashboards and subfolders with it, as Grafana does) and ``tag=`` filters on
``/api/search``. Manager annotations are not modelled: they exist only on Grafana 12's
app-platform ``/apis`` resources, which flobs does not use (docs/push-dashboards.md).

Faults (:class:`Fault`) are queued per ``(method, path)`` and consumed one per matching
request: a status (with any body and headers such as ``Retry-After``), latency, a
connection reset, a body that stalls half-way, and ``land=True`` to apply the request
before the answer goes wrong (a POST that lands but whose response is lost or 500).
"""

from __future__ import annotations

import base64
import copy
import json
import re
import socket
import ssl
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

UID_RE = re.compile(r"^[a-zA-Z0-9_-]*$")
MAX_FOLDER_DEPTH = 8
HTML_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)


@dataclass
class Fault:
    """One injected misbehaviour for the next request on a route."""

    status: int | None = None  # answer with this status instead of the real one
    body: Any = None  # dict → JSON; str → sent as is (HTML, text)
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # latency before anything happens
    reset: bool = False  # close the connection with a TCP RST instead of answering
    stall: float = 0.0  # send the headers and half the body, then hang this long
    land: bool = False  # apply the request first, then misbehave


def html_502() -> Fault:
    return Fault(status=502, body=HTML_502, content_type="text/html")


@dataclass
class LoggedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: Any  # parsed JSON, or None
    raw: bytes
    status: int | None = None  # what the fake answered (None: reset/stalled)

    @property
    def is_write(self) -> bool:
        return self.method not in ("GET", "HEAD")


@dataclass
class Principal:
    org_id: int
    role: str  # Viewer | Editor | Admin


class FakeGrafana:
    def __init__(self, *, version: str = "11.6.0") -> None:
        self.version = version
        self.conflict_status = 412
        self.name_exists_check = False
        self.database_failing = False
        self.hide_version = False
        self.lock = threading.RLock()
        self.tokens: dict[str, Principal] = {}
        self.users: dict[tuple[str, str], Principal] = {}
        self.orgs: set[int] = {1}
        self.folders: dict[tuple[int, str], dict[str, Any]] = {}
        self.dashboards: dict[tuple[int, str], dict[str, Any]] = {}
        self.datasources: dict[tuple[int, str], dict[str, Any]] = {}
        self.log: list[LoggedRequest] = []
        self.faults: dict[tuple[str, str], deque[Fault]] = {}
        self.hooks: dict[tuple[str, str], deque[Callable[[FakeGrafana], None]]] = {}
        self._next_id = 100
        self._server: ThreadingHTTPServer | None = None
        self.scheme = "http"
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self, tls: tuple[str, str] | None = None) -> str:
        """Serve on a free loopback port; ``tls=(certfile, keyfile)`` serves https."""
        fake = self

        class Handler(_Handler):
            grafana = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*tls)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            self.scheme = "https"
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, daemon=True, kwargs={"poll_interval": 0.05}
        )
        self._thread.start()
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"{self.scheme}://{host!s}:{port}"

    # ------------------------------------------------------------------ test set-up
    def add_token(self, token: str, org_id: int = 1, role: str = "Editor") -> None:
        self.orgs.add(org_id)
        self.tokens[token] = Principal(org_id, role)

    def add_user(self, user: str, password: str, org_id: int = 1, role: str = "Editor") -> None:
        self.orgs.add(org_id)
        self.users[(user, password)] = Principal(org_id, role)

    def fault(self, method: str, path: str, *faults: Fault) -> None:
        """Queue faults for the next requests on ``method path`` (path without query)."""
        with self.lock:
            self.faults.setdefault((method, path), deque()).extend(faults)

    def before(self, method: str, path: str, hook: Callable[[FakeGrafana], None]) -> None:
        """Run ``hook`` once, just before the next ``method path`` is handled."""
        with self.lock:
            self.hooks.setdefault((method, path), deque()).append(hook)

    def add_folder(
        self, uid: str, title: str, parent: str | None = None, org_id: int = 1
    ) -> dict[str, Any]:
        with self.lock:
            folder = {
                "id": self._new_id(),
                "uid": uid,
                "title": title,
                "url": f"/dashboards/f/{uid}/",
                "version": 1,
            }
            if parent:
                folder["parentUid"] = parent
            self.folders[(org_id, uid)] = folder
            return folder

    def add_dashboard(
        self,
        model: dict[str, Any],
        folder_uid: str = "",
        *,
        org_id: int = 1,
        provisioned: bool = False,
        version: int = 1,
    ) -> None:
        with self.lock:
            stored = copy.deepcopy(model)
            stored["id"] = self._new_id()
            stored["version"] = version
            self.dashboards[(org_id, stored["uid"])] = {
                "dashboard": stored,
                "folderUid": folder_uid,
                "provisioned": provisioned,
                "created": "2026-01-01T00:00:00Z",
                "updated": "2026-01-01T00:00:00Z",
            }

    def edit_dashboard(
        self, uid: str, change: Callable[[dict[str, Any]], None], org_id: int = 1
    ) -> None:
        """What a colleague saving from the UI does: the model changes, version+1."""
        with self.lock:
            entry = self.dashboards[(org_id, uid)]
            change(entry["dashboard"])
            entry["dashboard"]["version"] += 1

    def dashboard(self, uid: str, org_id: int = 1) -> dict[str, Any]:
        with self.lock:
            return copy.deepcopy(self.dashboards[(org_id, uid)])

    def add_datasource(
        self, ds: dict[str, Any], *, org_id: int = 1, read_only: bool = False
    ) -> None:
        with self.lock:
            self._store_datasource(org_id, ds, read_only=read_only)

    # ------------------------------------------------------------------ log queries
    def requests(self, method: str | None = None, path: str | None = None) -> list[LoggedRequest]:
        with self.lock:
            return [
                r
                for r in self.log
                if (method is None or r.method == method) and (path is None or r.path == path)
            ]

    def writes(self) -> list[LoggedRequest]:
        with self.lock:
            return [r for r in self.log if r.is_write]

    def calls(self) -> list[str]:
        """``["GET /api/health", …]`` for compact assertions on the order of requests."""
        with self.lock:
            return [f"{r.method} {r.path}" for r in self.log]

    # ------------------------------------------------------------------ internals
    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def take_fault(self, method: str, path: str) -> Fault | None:
        with self.lock:
            queue = self.faults.get((method, path))
            return queue.popleft() if queue else None

    def run_hooks(self, method: str, path: str) -> None:
        with self.lock:
            queue = self.hooks.get((method, path))
            hook = queue.popleft() if queue else None
        if hook is not None:
            hook(self)

    def authenticate(self, headers: dict[str, str]) -> tuple[int, Any]:
        """(status, principal-or-error body) per grafana-api.md's auth rules."""
        auth = headers.get("authorization", "")
        principal: Principal | None = None
        kind = "token"
        if auth.startswith("Bearer "):
            principal = self.tokens.get(auth[7:])
        elif auth.startswith("Basic "):
            try:
                user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return 401, {"message": "Unauthorized"}
            if user == "api_key":
                principal = self.tokens.get(password)
            else:
                kind = "user"
                principal = self.users.get((user, password))
        if principal is None:
            return 401, {
                "message": "Invalid API key" if kind == "token" else "Invalid username or password"
            }
        wanted = headers.get("x-grafana-org-id")
        if wanted is not None:
            try:
                org = int(wanted)
            except ValueError:
                return 400, {"message": "invalid X-Grafana-Org-Id"}
            if org != principal.org_id:
                return 401, {
                    "message": "API key does not belong to the requested organization"
                    if kind == "token"
                    else "User does not belong to the organization"
                }
        return 200, principal

    # ---------------------------------------------------------------- endpoints
    def handle(
        self, method: str, path: str, query: dict[str, list[str]], body: Any, principal: Principal
    ) -> tuple[int, Any]:
        org = principal.org_id
        with self.lock:
            if method == "GET" and path == "/api/search":
                return self._search(org, query)
            if method == "GET" and path == "/api/folders":
                parent = (query.get("parentUid") or [""])[0] or None
                return 200, [
                    {"id": f["id"], "uid": f["uid"], "title": f["title"]}
                    for (o, _), f in sorted(self.folders.items())
                    if o == org and f.get("parentUid") == parent
                ]
            if m := re.fullmatch(r"/api/folders/([^/]+)", path):
                uid = m.group(1)
                if method == "GET":
                    folder = self.folders.get((org, uid))
                    if folder is None:
                        return 404, {"status": "not-found", "message": "folder not found"}
                    return 200, self._folder_view(org, folder)
                if method == "PUT":
                    return self._update_folder(org, uid, body, principal)
                if method == "DELETE":
                    return self._delete_folder(org, uid, principal)
            if method == "POST" and path == "/api/folders":
                return self._create_folder(org, body, principal)
            if method == "POST" and path == "/api/dashboards/db":
                return self._save_dashboard(org, body, principal)
            if method == "GET" and (m := re.fullmatch(r"/api/dashboards/uid/([^/]+)", path)):
                return self._get_dashboard(org, m.group(1))
            if method == "DELETE" and (m := re.fullmatch(r"/api/dashboards/uid/([^/]+)", path)):
                return self._delete_dashboard(org, m.group(1), principal)
            if method == "POST" and path == "/api/datasources":
                return self._create_datasource(org, body, principal)
            if m := re.fullmatch(r"/api/datasources/uid/([^/]+)", path):
                if method == "GET":
                    ds = self.datasources.get((org, m.group(1)))
                    if ds is None:
                        return 404, {"message": "Data source not found"}
                    return 200, self._datasource_view(ds)
                if method == "PUT":
                    return self._update_datasource(org, m.group(1), body, principal)
        return 404, {"message": "Not found"}

    def _search(self, org: int, query: dict[str, list[str]]) -> tuple[int, Any]:
        kind = (query.get("type") or [""])[0]
        text = (query.get("query") or [""])[0].lower()
        limit = min(int((query.get("limit") or ["1000"])[0]), 5000)
        page = max(1, int((query.get("page") or ["1"])[0]))
        uids = set(query.get("dashboardUIDs", []))
        folder_uids = set(query.get("folderUIDs", []))
        hits: list[dict[str, Any]] = []
        if kind in ("", "dash-folder") and not query.get("tag"):
            for (o, uid), f in sorted(self.folders.items()):
                if o == org and text in f["title"].lower():
                    hits.append(
                        {
                            "id": f["id"],
                            "uid": uid,
                            "title": f["title"],
                            "url": f["url"],
                            "type": "dash-folder",
                            "tags": [],
                            "isStarred": False,
                        }
                    )
        if kind in ("", "dash-db"):
            for (o, uid), entry in sorted(self.dashboards.items()):
                d = entry["dashboard"]
                if o != org or text not in str(d.get("title", "")).lower():
                    continue
                if (uids and uid not in uids) or (
                    folder_uids and entry["folderUid"] not in folder_uids
                ):
                    continue
                # Several tag= parameters: a dashboard must carry every one of them.
                if not set(query.get("tag", [])) <= set(d.get("tags") or []):
                    continue
                hit = {
                    "id": d["id"],
                    "uid": uid,
                    "title": d.get("title"),
                    "url": f"/d/{uid}/x",
                    "type": "dash-db",
                    "tags": d.get("tags", []),
                    "isStarred": False,
                }
                if entry["folderUid"]:
                    hit["folderUid"] = entry["folderUid"]
                hits.append(hit)
        return 200, hits[(page - 1) * limit : page * limit]

    def _folder_view(self, org: int, folder: dict[str, Any]) -> dict[str, Any]:
        view = dict(folder)
        parents = []
        parent = folder.get("parentUid")
        while parent:
            p = self.folders[(org, parent)]
            parents.insert(0, {"uid": p["uid"], "title": p["title"]})
            parent = p.get("parentUid")
        if parents:
            view["parents"] = parents
        return view

    def _depth(self, org: int, uid: str | None) -> int:
        depth = 0
        while uid:
            depth += 1
            uid = self.folders[(org, uid)].get("parentUid")
        return depth

    def _create_folder(self, org: int, body: Any, who: Principal) -> tuple[int, Any]:
        if who.role == "Viewer":
            return 403, {"message": "You'll need additional permissions to perform this action."}
        if not isinstance(body, dict):
            return 400, {"message": "bad request data"}
        uid, title, parent = body.get("uid") or "", body.get("title") or "", body.get("parentUid")
        if not str(title).strip():
            return 400, {"message": "folder title cannot be empty"}
        if uid and (not UID_RE.match(uid) or len(uid) > 40):
            return 400, {"message": "uid contains illegal characters"}
        if parent and (org, parent) not in self.folders:
            return 400, {"message": "parent folder not found"}
        if self._depth(org, parent) + 1 > MAX_FOLDER_DEPTH:
            return 400, {"message": "folder max depth exceeded"}
        if (org, uid) in self.folders:
            return 409, {"message": "a folder with the same uid already exists"}
        for (o, _), f in self.folders.items():
            if o == org and f.get("parentUid") == parent and f["title"] == title:
                return 409, {"message": "a folder with the same name already exists"}
        uid = uid or f"gen{self._new_id()}"
        return 200, self._folder_view(org, self.add_folder(uid, title, parent, org))

    def _update_folder(self, org: int, uid: str, body: Any, who: Principal) -> tuple[int, Any]:
        folder = self.folders.get((org, uid))
        if folder is None:
            return 404, {"status": "not-found", "message": "folder not found"}
        if who.role == "Viewer":
            return 403, {"message": "You'll need additional permissions to perform this action."}
        if not isinstance(body, dict) or ("version" not in body and not body.get("overwrite")):
            return 400, {"message": "folder version or overwrite is required"}
        if not body.get("overwrite") and body.get("version") != folder["version"]:
            return 412, {
                "status": "version-mismatch",
                "message": "the folder has been changed by someone else",
            }
        if body.get("title"):
            folder["title"] = body["title"]
        folder["version"] += 1
        return 200, self._folder_view(org, folder)

    def _delete_dashboard(self, org: int, uid: str, who: Principal) -> tuple[int, Any]:
        entry = self.dashboards.get((org, uid))
        if entry is None:
            return 404, {"message": "Dashboard not found"}
        if who.role == "Viewer":
            return 403, {"message": "Access denied to delete dashboard"}
        if entry["provisioned"]:
            return 400, {"message": "Dashboard cannot be deleted because it was provisioned"}
        del self.dashboards[(org, uid)]
        title = entry["dashboard"].get("title", "")
        return 200, {
            "title": title,
            "message": f"Dashboard {title} deleted",
            "id": entry["dashboard"]["id"],
        }

    def _delete_folder(self, org: int, uid: str, who: Principal) -> tuple[int, Any]:
        """Grafana deletes what the folder holds too: its dashboards and subfolders."""
        folder = self.folders.get((org, uid))
        if folder is None:
            return 404, {"status": "not-found", "message": "folder not found"}
        if who.role == "Viewer":
            return 403, {"message": "You'll need additional permissions to perform this action."}
        doomed = {uid}
        changed = True
        while changed:
            changed = False
            for (o, child), f in self.folders.items():
                if o == org and child not in doomed and f.get("parentUid") in doomed:
                    doomed.add(child)
                    changed = True
        for key in [k for k, e in self.dashboards.items() if k[0] == org]:
            if self.dashboards[key]["folderUid"] in doomed:
                del self.dashboards[key]
        for child in doomed:
            del self.folders[(org, child)]
        return 200, {"message": "Folder deleted", "id": folder["id"], "title": folder["title"]}

    def _get_dashboard(self, org: int, uid: str) -> tuple[int, Any]:
        entry = self.dashboards.get((org, uid))
        if entry is None:
            return 404, {"message": "Dashboard not found"}
        d = entry["dashboard"]
        folder = self.folders.get((org, entry["folderUid"])) if entry["folderUid"] else None
        meta = {
            "version": d["version"],
            "folderUid": entry["folderUid"],
            "folderTitle": folder["title"] if folder else "General",
            "url": f"/d/{uid}/{_slug(d.get('title', ''))}",
            "slug": _slug(d.get("title", "")),
            "provisioned": entry["provisioned"],
            "provisionedExternalId": "flintlock.json" if entry["provisioned"] else "",
            "canSave": not entry["provisioned"],
            "created": entry["created"],
            "updated": entry["updated"],
        }
        return 200, {"dashboard": copy.deepcopy(d), "meta": meta}

    def _save_dashboard(self, org: int, body: Any, who: Principal) -> tuple[int, Any]:
        if who.role == "Viewer":
            return 403, {"message": "Access denied to save dashboard"}
        if not isinstance(body, dict) or not isinstance(body.get("dashboard"), dict):
            return 400, {"message": "bad request data"}
        dash = copy.deepcopy(body["dashboard"])
        overwrite = bool(body.get("overwrite"))
        folder_uid = body.get("folderUid") or ""
        if len(str(body.get("message") or "")) > 500:
            return 400, {"message": "message too long"}
        if not str(dash.get("title") or "").strip():
            return 400, {"status": "empty-name", "message": "Dashboard title cannot be empty"}
        uid = dash.get("uid") or f"gen{self._new_id()}"
        if not isinstance(uid, str) or not UID_RE.match(uid) or len(uid) > 40:
            return 400, {"status": "invalid-uid", "message": "uid contains illegal characters"}
        if folder_uid and (org, folder_uid) not in self.folders:
            return 400, {"message": "folder not found"}
        if self.conflict_status == 409:
            # The newest save path strips id and version: no optimistic locking at all.
            dash.pop("id", None)
            dash.pop("version", None)
        dash_id = dash.get("id")
        by_id = None
        if isinstance(dash_id, int) and dash_id > 0:
            by_id = next(
                (
                    k
                    for k, e in self.dashboards.items()
                    if k[0] == org and e["dashboard"]["id"] == dash_id
                ),
                None,
            )
            if by_id is None:
                return 404, {"status": "not-found", "message": "Dashboard not found"}
            if by_id[1] != uid:
                return 400, {"message": "Dashboard id and uid mismatch"}
        existing = self.dashboards.get((org, uid))
        if existing is not None:
            if existing["provisioned"]:
                return 400, {"message": "Cannot save provisioned dashboard"}
            if not overwrite:
                if self.conflict_status == 409:
                    return 409, {
                        "message": "Dashboard already exists. Use overwrite flag to update."
                    }
                if dash.get("version") != existing["dashboard"]["version"]:
                    return 412, {
                        "status": "version-mismatch",
                        "message": "The dashboard has been changed by someone else",
                    }
        if self.name_exists_check and not overwrite:
            for (o, other_uid), e in self.dashboards.items():
                if (
                    o == org
                    and other_uid != uid
                    and e["folderUid"] == folder_uid
                    and e["dashboard"].get("title") == dash.get("title")
                ):
                    return 412, {
                        "status": "name-exists",
                        "message": "A dashboard with the same name in the folder already exists",
                    }
        version = 1 if existing is None else existing["dashboard"]["version"] + 1
        dash["uid"] = uid
        dash["id"] = existing["dashboard"]["id"] if existing else self._new_id()
        dash["version"] = version
        self.dashboards[(org, uid)] = {
            "dashboard": dash,
            "folderUid": folder_uid,
            "provisioned": False,
            "created": existing["created"] if existing else "2026-01-01T00:00:00Z",
            "updated": "2026-01-02T00:00:00Z",
        }
        return 200, {
            "id": dash["id"],
            "uid": uid,
            "url": f"/d/{uid}/{_slug(dash['title'])}",
            "status": "success",
            "version": version,
            "slug": _slug(dash["title"]),
            "folderUid": folder_uid,
        }

    # datasources
    def _store_datasource(
        self,
        org: int,
        body: dict[str, Any],
        *,
        read_only: bool,
        existing: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        secure = dict(existing["secure"]) if existing else {}
        secure.update(body.get("secureJsonData") or {})
        ds = {
            "id": existing["id"] if existing else self._new_id(),
            "uid": body["uid"],
            "orgId": org,
            "name": body["name"],
            "type": body.get("type", ""),
            "access": body.get("access", "proxy"),
            "url": body.get("url", ""),
            "basicAuth": bool(body.get("basicAuth", False)),
            "isDefault": bool(body.get("isDefault", False)),
            "jsonData": body.get("jsonData") or {},
            "secure": secure,
            "version": existing["version"] + 1 if existing else 1,
            "readOnly": read_only,
        }
        for key in ("basicAuthUser", "user", "database", "withCredentials"):
            if key in body:
                ds[key] = body[key]
        self.datasources[(org, body["uid"])] = ds
        return ds

    @staticmethod
    def _datasource_view(ds: dict[str, Any]) -> dict[str, Any]:
        view = {k: copy.deepcopy(v) for k, v in ds.items() if k != "secure"}
        view["secureJsonFields"] = dict.fromkeys(ds["secure"], True)
        return view

    def _create_datasource(self, org: int, body: Any, who: Principal) -> tuple[int, Any]:
        if who.role != "Admin" and who.role != "Editor":
            return 403, {"message": "Permission denied"}
        if not isinstance(body, dict) or not body.get("name"):
            return 400, {"message": "bad request data"}
        url = str(body.get("url") or "")
        if url and not re.match(r"^[a-z][a-z0-9+.-]*://", url):
            return 400, {"message": "Invalid data source URL"}
        uid = body.get("uid") or f"gen{self._new_id()}"
        body = {**body, "uid": uid}
        for (o, other), ds in self.datasources.items():
            if o == org and (other == uid or ds["name"] == body["name"]):
                return 409, {
                    "message": "data source with the same name already exists"
                    if ds["name"] == body["name"]
                    else "data source with the same uid already exists"
                }
        ds = self._store_datasource(org, body, read_only=False)
        return 200, {
            "message": "Datasource added",
            "id": ds["id"],
            "name": ds["name"],
            "datasource": self._datasource_view(ds),
        }

    def _update_datasource(self, org: int, uid: str, body: Any, who: Principal) -> tuple[int, Any]:
        existing = self.datasources.get((org, uid))
        if existing is None:
            return 404, {"message": "Data source not found"}
        if existing["readOnly"]:
            return 403, {"message": "Cannot update read-only data source"}
        if who.role not in ("Admin", "Editor"):
            return 403, {"message": "Permission denied"}
        if not isinstance(body, dict) or not body.get("name"):
            return 400, {"message": "bad request data"}
        for (o, other), ds in self.datasources.items():
            if o == org and other != uid and ds["name"] == body["name"]:
                return 409, {"message": "data source with the same name already exists"}
        if "version" in body and body["version"] != existing["version"]:
            return 409, {
                "message": "Datasource has already been updated by someone else. "
                "Please reload and try again"
            }
        ds = self._store_datasource(org, {**body, "uid": uid}, read_only=False, existing=existing)
        return 200, {
            "message": "Datasource updated",
            "id": ds["id"],
            "name": ds["name"],
            "datasource": self._datasource_view(ds),
        }


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", str(title).lower()).strip("-")


class _Handler(BaseHTTPRequestHandler):
    grafana: FakeGrafana
    # HTTP/1.0: one request per connection, so an injected reset cannot hit a pooled
    # keep-alive connection by accident and request counts stay deterministic.
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the request log is the record; stderr stays quiet

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        fake = self.grafana
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        entry = LoggedRequest(
            method,
            parts.path,
            parse_qs(parts.query),
            {k.lower(): v for k, v in self.headers.items()},
            body,
            raw,
        )
        with fake.lock:
            fake.log.append(entry)
        fault = fake.take_fault(method, parts.path)
        if fault is not None and fault.delay:
            time.sleep(fault.delay)
        fake.run_hooks(method, parts.path)
        if (
            fault is not None
            and not fault.land
            and (fault.reset or fault.status is not None or fault.stall)
        ):
            self._misbehave(entry, fault, None)
            return
        status, payload = self._real(method, parts.path, entry)
        if fault is not None and (fault.reset or fault.status is not None or fault.stall):
            self._misbehave(entry, fault, (status, payload))
            return
        self._send(entry, status, json.dumps(payload).encode(), "application/json", {})

    def _real(self, method: str, path: str, entry: LoggedRequest) -> tuple[int, Any]:
        fake = self.grafana
        if path == "/api/health" and method in ("GET", "HEAD"):
            health: dict[str, Any] = {"database": "failing" if fake.database_failing else "ok"}
            if not fake.hide_version:
                health.update(version=fake.version, commit="0123abcd")
            return (503 if fake.database_failing else 200), health
        status, who = fake.authenticate(entry.headers)
        if status != 200:
            return status, who
        if method in ("POST", "PUT") and entry.raw and entry.body is None:
            return 400, {"message": "bad request data"}
        return fake.handle(method, path, entry.query, entry.body, who)

    def _misbehave(self, entry: LoggedRequest, fault: Fault, real: tuple[int, Any] | None) -> None:
        if fault.reset:
            # SO_LINGER 0: close() sends RST, as a crashing proxy does.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
            return
        status = fault.status if fault.status is not None else (real[0] if real else 200)
        if fault.body is None:
            payload: bytes = json.dumps(
                real[1] if real and fault.status is None else {"message": "Internal Server Error"}
            ).encode()
            ctype = "application/json"
        elif isinstance(fault.body, str | bytes):
            payload = fault.body.encode() if isinstance(fault.body, str) else fault.body
            ctype = fault.content_type or "text/plain; charset=utf-8"
        else:
            payload = json.dumps(fault.body).encode()
            ctype = fault.content_type or "application/json"
        if fault.stall:
            entry.status = None
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload[: len(payload) // 2])
            self.wfile.flush()
            time.sleep(fault.stall)
            self.close_connection = True
            return
        self._send(entry, status, payload, ctype, fault.headers)

    def _send(
        self, entry: LoggedRequest, status: int, payload: bytes, ctype: str, headers: dict[str, str]
    ) -> None:
        entry.status = status
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if entry.method != "HEAD":
            self.wfile.write(payload)
