"""``push-dashboards --prune``: delete the dashboards flobs pushed and no longer generates.

Only what flobs owns is ever deleted. A dashboard is owned when it carries flobs' push
marker (:data:`flobs.grafana.push.MARKER`) for the target folder and its content still
matches the marker's fingerprint. An owned dashboard edited in Grafana since is a
*conflict*: someone's work would be lost, so it stays unless ``--force`` (or
``--force-uid UID``) says otherwise. A dashboard without the marker — made in the UI,
by another tool, or by flobs for another folder — is foreign and never touched, not
even listed.

Grafana's manager annotations (``grafana.app/managedBy``) live on the app-platform
``/apis`` resources of Grafana 12+ only (Grafana docs, "Manage resources in Grafana");
the ``/api/dashboards`` endpoints flobs uses cannot set them, so the marker is the
ownership record on every version (docs/push-dashboards.md).

Candidates are the dashboards in the target folder and those tagged ``flobs`` anywhere
(an owned dashboard moved to another folder by hand). ``--dry-run`` lists the deletions
and sends no DELETE.
"""

from __future__ import annotations

from flobs.grafana.client import AuthRefused, GrafanaHTTPError, GrafanaUnreachable, OutcomeUnknown
from flobs.grafana.push import Action, DashboardPush, ItemResult, ownership

OWNED_TAG = "flobs"  # the tag every flobs dashboard carries (dashboards.panels.TAG)


def prune_dashboards(run: DashboardPush, keep: set[str]) -> list[ItemResult]:
    client = run.client
    folder = run.target_folder
    try:
        hits = client.search_dashboards(folderUIDs=folder)
        hits += client.search_dashboards(tag=OWNED_TAG)
    except AuthRefused:
        raise
    except (GrafanaHTTPError, GrafanaUnreachable) as err:
        return [ItemResult("dashboard", "*", "", Action.FAILED, f"prune: cannot search: {err}")]
    candidates = sorted({str(h["uid"]) for h in hits if isinstance(h.get("uid"), str)} - keep)
    results = []
    for uid in candidates:
        result = _prune_one(run, uid, folder)
        if result is not None:
            results.append(result)
    return results


def _prune_one(run: DashboardPush, uid: str, folder: str) -> ItemResult | None:
    try:
        remote = run.get_dashboard(uid)
    except AuthRefused:
        raise
    except (GrafanaHTTPError, GrafanaUnreachable) as err:
        return ItemResult("dashboard", uid, "", Action.FAILED, f"prune: cannot read it: {err}")
    if remote is None:
        return None  # deleted meanwhile
    model, meta = remote
    title = str(model.get("title", ""))
    if meta.get("provisioned"):
        return None  # file provisioning owns it, whoever wrote the file
    owner = ownership(model, folder)
    if owner == "foreign":
        return None
    detail = "no longer generated"
    if owner == "edited":
        if not run.forced(uid):
            return ItemResult(
                "dashboard",
                uid,
                title,
                Action.CONFLICT,
                "no longer generated, but changed in Grafana since flobs pushed it; "
                f"--force-uid {uid} deletes it",
            )
        detail += "; forced although changed in Grafana"
    if run.options.dry_run:
        return ItemResult("dashboard", uid, title, Action.DELETE, detail)
    try:
        run.client.delete(f"/api/dashboards/uid/{uid}")
    except AuthRefused:
        raise
    except OutcomeUnknown as err:
        # The answer was lost: a re-read tells whether the delete happened.
        try:
            gone = run.get_dashboard(uid) is None
        except (GrafanaHTTPError, GrafanaUnreachable):
            gone = False
        if not gone:
            return ItemResult("dashboard", uid, title, Action.FAILED, err.message)
        detail += "; confirmed by re-reading after a lost answer"
    except GrafanaHTTPError as err:
        if err.status == 404:
            return None
        return ItemResult("dashboard", uid, title, Action.FAILED, f"cannot delete: {err.message}")
    except GrafanaUnreachable as err:
        return ItemResult("dashboard", uid, title, Action.FAILED, err.message)
    return ItemResult("dashboard", uid, title, Action.DELETE, detail)
