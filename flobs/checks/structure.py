"""Structure: every file parses, matches its JSON Schema, and matches the manifest."""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from typing import Any, ClassVar

from jsonschema import Draft202012Validator, ValidationError

from flobs import resources
from flobs.checks import Check, CheckContext, FileCheck, Parsed, register
from flobs.checks import kinds as k
from flobs.output import MANIFEST, path_problem
from flobs.problems import Problem, Severity

PARSED_SUFFIXES = (".yml", ".yaml", ".json")


def schema_for(path: str, check_id: str = "schema") -> str | None:
    """The schema (schemas/<name>) ``path`` must satisfy, when ``check_id`` applies it."""
    for kind in k.KINDS:
        if k.matches(path, kind.patterns):
            return kind.schema if kind.schema_check == check_id else None
    return None


def schema_errors(
    ctx: CheckContext, name: str, parsed: Parsed
) -> list[tuple[tuple[str | int, ...], str, str]]:
    """(key path, described message, sort key) of every error of the parsed file against
    schema ``name``; computed once per distinct body (hosts' files share theirs)."""

    def compute() -> list[tuple[tuple[str | int, ...], str, str]]:
        return [
            (tuple(e.absolute_path), describe(e), repr(list(map(str, e.path))))
            for e in _validator(name).iter_errors(parsed.data)
        ]

    return ctx.memo(f"schema-errors:{name}", parsed.identity, compute)  # type: ignore[no-any-return]


@cache
def _validator(name: str) -> Draft202012Validator:
    return resources.validator(name)


def describe(error: ValidationError) -> str:
    """What is wrong, without echoing the value: it could be a secret someone pasted in.

    Every check that reports JSON Schema errors words them with this function.
    """
    v, want = error.validator, error.validator_value
    if "propertyNames" in error.relative_schema_path:
        v = "propertyNames"  # the key's own rule failed; name the key, not the rule
    if v in ("required", "additionalProperties", "dependentRequired"):
        return str(error.message)
    described = {
        "type": f"must be of type {want}",
        "pattern": f"must match the pattern {want}",
        "enum": f"must be one of {', '.join(map(repr, want)) if isinstance(want, list) else want}",
        "const": f"must be {want!r}",
        "minimum": f"must be at least {want}",
        "maximum": f"must be at most {want}",
        "minLength": "must not be empty" if want == 1 else f"must be at least {want} characters",
        "minItems": f"needs at least {want} item{'s' if want != 1 else ''}",
        "oneOf": "matches none (or more than one) of the allowed shapes",
        "propertyNames": "has a key that is not a valid name",
    }
    return described.get(str(v), f"fails the schema's {v!r} rule")


@register
class FileParses(FileCheck):
    """Every YAML and JSON file parses.

    Why: a file that does not parse is rejected by the program that reads it, and
    every other check needs its content. Example: a hand edit that leaves a tab in
    the indentation of `hosts/h1/prometheus.yml`.
    """

    ID = "file-parses"
    TITLE = "YAML/JSON files parse"
    FILES: ClassVar[tuple[str, ...]] = ("**/*.yml", "**/*.yaml", "**/*.json")

    def check_file(self, ctx: CheckContext, path: str) -> Iterator[Problem]:
        parsed = ctx.parse(path)
        if parsed.error is not None:
            mark = parsed.error_mark
            yield ctx.problem(
                self,
                path,
                f"does not parse: {parsed.error}",
                hint="regenerate it with `flobs generate`",
                line=mark.line if mark else None,
                col=mark.col if mark else None,
            )


@register
class SchemaValid(FileCheck):
    """Each generated file matches its JSON Schema (shipped in `schemas/`).

    Why: the schemas are strict where flobs controls the keys, so a typo, a key in
    the wrong place or a wrong type is caught before Prometheus or Grafana refuse it.
    Example: `scrape_timout: 10s` in a scrape job is "Additional properties are not
    allowed ('scrape_timout' was unexpected)".
    """

    ID = "schema"
    TITLE = "files match their JSON Schema"
    FILES: ClassVar[tuple[str, ...]] = tuple(
        p
        for kind in k.KINDS
        if kind.schema and kind.schema_check == "schema"
        for p in kind.patterns
    )

    def check_file(self, ctx: CheckContext, path: str) -> Iterator[Problem]:
        name = schema_for(path)
        parsed = k.load(ctx, path) if name is not None else None
        if name is None or parsed is None:
            return  # file-parses reports a file that does not parse
        for key_path, message, _ in schema_errors(ctx, name, parsed):
            yield ctx.problem(self, path, f"{message} (schema {name})", key_path=key_path)


@register
class ManifestHashes(Check):
    """Every file listed in `manifest.json` still has the sha256 flobs wrote.

    Why: a hand-edited file is lost at the next `flobs generate`, and it is no longer
    what the inventory describes. Example: someone raised a `sample_limit` on one host
    by hand: "hosts/h1/prometheus.yml was changed after flobs generated it".
    """

    ID = "manifest-hash"
    TITLE = "no hand-edited files"
    FILES: ClassVar[tuple[str, ...]] = ("**/*",)

    def check(self, ctx: CheckContext) -> Iterator[Problem]:
        manifest = ctx.manifest
        if manifest is None:
            return
        for path, entry in sorted(manifest["files"].items()):
            if path_problem(path) is not None:
                continue  # not a path inside OUT: the schema check reports it
            want = entry.get("sha256") if isinstance(entry, dict) else None
            try:
                # Hashed once per run: the per-file pass has usually done it already.
                have = ctx.digest(path)
            except OSError:
                continue  # manifest-files reports missing files
            if have != want:
                yield ctx.problem(
                    self,
                    path,
                    "changed after flobs generated it (sha256 differs from manifest.json)",
                    hint="put the change in the inventory and run `flobs generate`; "
                    "hand edits are overwritten",
                )


@register
class ManifestFiles(Check):
    """The manifest and the tree agree: no listed file is missing, none is unlisted.

    Why: a missing file means a host or the centre runs without its config; a file
    flobs did not write is not covered by `flobs generate --check` and will go stale.
    Example: `hosts/h1/rules/flobs-local.yml` deleted by hand (error), or an extra
    `central/rules/mine.yml` (warning; list such files in the inventory's
    `validation.unmanaged` when they belong there on purpose).
    """

    ID = "manifest-files"
    TITLE = "manifest lists exactly the files present"
    FILES: ClassVar[tuple[str, ...]] = (k.MANIFEST,)

    def check(self, ctx: CheckContext) -> Iterator[Problem]:
        manifest = ctx.manifest
        if manifest is None:
            yield ctx.problem(
                self,
                MANIFEST,
                "missing or unreadable: this does not look like a tree written by `flobs generate`",
                hint="run `flobs generate -i INVENTORY -o OUT` first",
            )
            return
        listed: dict[str, Any] = manifest["files"]
        present = set(ctx.files)
        # Files kept in OUT on purpose (inventory validation.unmanaged, via the manifest).
        settings = manifest.get("validation")
        unmanaged = settings.get("unmanaged") if isinstance(settings, dict) else None
        allowed = tuple(str(g) for g in unmanaged) if isinstance(unmanaged, list) else ()
        for path in sorted(listed):
            if path not in present and path_problem(path) is None:
                yield ctx.problem(
                    self,
                    path,
                    "listed in manifest.json but missing",
                    hint="run `flobs generate` to restore it",
                )
        for path in sorted(present - set(listed) - {MANIFEST}):
            if allowed and k.matches(path, allowed):
                continue
            yield ctx.problem(
                self,
                path,
                "not written by flobs (not in manifest.json)",
                severity=Severity.WARNING,
                hint="generated files come from the inventory; remove it or "
                "move what it does into the inventory",
            )


@register
class ManifestInventory(Check):
    """OUT was generated from this very inventory (its sha256 is in `manifest.json`).

    Why: `validate -i INVENTORY` compares the tree with the inventory; when the
    inventory changed since `flobs generate` ran, the tree is stale and every other
    comparison is with the wrong file. Example: a host added to the inventory but
    `flobs generate` not rerun.
    """

    ID = "manifest-inventory"
    TITLE = "tree generated from this inventory"
    FILES: ClassVar[tuple[str, ...]] = (k.MANIFEST,)
    NEEDS_INVENTORY = True

    def check(self, ctx: CheckContext) -> Iterator[Problem]:
        manifest = ctx.manifest
        if manifest is None or ctx.fleet is None:
            return  # manifest-files reports a missing manifest
        recorded = manifest.get("inventory")
        want = recorded.get("sha256") if isinstance(recorded, dict) else None
        if want != ctx.fleet.source_sha256:
            yield ctx.problem(
                self,
                MANIFEST,
                "the tree is stale: it was generated from another version of the inventory "
                "(its sha256 differs from the one in manifest.json)",
                hint="run `flobs generate -i INVENTORY -o OUT` (`--check` shows what changes)",
                key_path=("inventory", "sha256"),
            )
