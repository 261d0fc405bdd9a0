"""The hashicorp/google provider schema, read offline from the cdktf-cdktf-provider-google package.

The package ships a jsii assembly (`_jsii/provider-google@<ver>.jsii.tgz`, member
`package/.jsii`) that describes every resource, data source and nested block of the provider
version it was generated from. We turn it into a compact tree of `BlockSchema` (argument names,
required arguments, nested blocks) and cache that as JSON, because the assembly is ~100 MB of
JSON and takes seconds to read.

cdktf renames Terraform's snake_case names to camelCase (a few irregularly: `build` ->
`buildAttribute`, `hugepage_size_1g` -> `hugepageSize1G`). Every property's docs link to the
registry page with the real Terraform name as its anchor (`.../storage_bucket#lifecycle_rule`),
so we read the name from there and only fall back to camelCase -> snake_case without a link.
"""

from __future__ import annotations

import json
import os
import re
import tarfile
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGE = "cdktf-cdktf-provider-google"
_REPO_ROOT = Path(__file__).resolve().parents[2]
_CACHE_FORMAT = 1
_CLASS_LINK = re.compile(
    r"Represents a \{@link https://registry\.terraform\.io/providers/hashicorp/google/"
    r"(?P<version>[^/]+)/docs/(?P<kind>resources|data-sources)/\S+ (?P<type>\S+)\}"
)
_ANCHOR = re.compile(r"#(?P<name>\w+) \w+#\w+\}")
_CAMEL_BOUNDARY = re.compile(r"(?<!^)(?=[A-Z])")


@dataclass
class BlockSchema:
    """Arguments and nested blocks allowed in one Terraform block body."""

    arguments: set[str] = field(default_factory=set)
    required: set[str] = field(default_factory=set)
    blocks: dict[str, BlockSchema] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "a": sorted(self.arguments),
            "r": sorted(self.required),
            "b": {name: block.to_json() for name, block in sorted(self.blocks.items())},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BlockSchema:
        return cls(
            arguments=set(data["a"]),
            required=set(data["r"]),
            blocks={name: cls.from_json(block) for name, block in data["b"].items()},
        )


@dataclass
class ProviderSchema:
    """Resources and data sources by Terraform type name, plus the provider block itself."""

    provider_version: str
    provider: BlockSchema
    resources: dict[str, BlockSchema]
    data_sources: dict[str, BlockSchema]


def jsii_archive() -> Path:
    """Path of the jsii assembly inside the installed cdktf-cdktf-provider-google package."""
    dist = metadata.distribution(PACKAGE)
    for entry in dist.files or []:
        if entry.name.endswith(".jsii.tgz"):
            return Path(str(dist.locate_file(entry)))
    raise FileNotFoundError(f"no .jsii.tgz in the installed {PACKAGE} package")


def load_provider_schema(cache_dir: Path | None = None) -> ProviderSchema:
    """The provider schema, from the JSON cache when it matches the installed package."""
    archive = jsii_archive()
    stamp = f"{_CACHE_FORMAT}-{metadata.version(PACKAGE)}-{archive.stat().st_size}"
    cache_dir = cache_dir or Path(os.environ.get("TFCHECK_CACHE", _REPO_ROOT / "build" / "tfcheck"))
    cache_file = cache_dir / f"google-provider-schema-{stamp}.json"
    if cache_file.is_file():
        return _from_json(json.loads(cache_file.read_text()))
    schema = _from_assembly(_read_assembly(archive))
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = cache_file.with_suffix(".tmp")
    partial.write_text(json.dumps(_to_json(schema)))
    partial.replace(cache_file)  # atomic, so a parallel run never reads half a file
    return schema


def _read_assembly(archive: Path) -> dict[str, Any]:
    with tarfile.open(archive, "r:gz") as tar:
        member = tar.extractfile("package/.jsii")
        if member is None:
            raise FileNotFoundError(f"package/.jsii missing from {archive}")
        return json.load(member)


def _from_assembly(assembly: dict[str, Any]) -> ProviderSchema:
    types: dict[str, Any] = assembly["types"]
    resources: dict[str, BlockSchema] = {}
    data_sources: dict[str, BlockSchema] = {}
    version = "unknown"
    for fqn, jsii_type in types.items():
        if jsii_type.get("kind") != "class":
            continue
        link = _CLASS_LINK.match(jsii_type.get("docs", {}).get("summary", ""))
        if not link:
            continue
        version = link["version"]
        target = resources if link["kind"] == "resources" else data_sources
        target[link["type"]] = _block(types, f"{fqn}Config")
    provider = _block(types, "@cdktf/provider-google.provider.GoogleProviderConfig")
    return ProviderSchema(version, provider, resources, data_sources)


def _block(types: dict[str, Any], fqn: str) -> BlockSchema:
    schema = BlockSchema()
    for prop in types[fqn].get("properties", []):
        name = _terraform_name(prop)
        nested = _struct_fqn(prop["type"])
        if nested and types[nested].get("datatype") and _is_block(prop):
            schema.blocks[name] = _block(types, nested)
        else:
            schema.arguments.add(name)
        if not prop.get("optional"):
            schema.required.add(name)
    return schema


def _terraform_name(prop: dict[str, Any]) -> str:
    docs = prop.get("docs", {})
    anchor = _ANCHOR.search(docs.get("remarks", "")) or _ANCHOR.search(docs.get("summary", ""))
    if anchor:
        return anchor["name"]
    return _CAMEL_BOUNDARY.sub("_", prop["name"]).lower()


def _is_block(prop: dict[str, Any]) -> bool:
    return prop.get("docs", {}).get("summary", "").endswith(" block.")


def _struct_fqn(type_ref: dict[str, Any]) -> str | None:
    """The struct a property holds (alone, in a list, or in a union with IResolvable), if any."""
    if "fqn" in type_ref:
        return None if type_ref["fqn"].startswith("cdktf.") else type_ref["fqn"]
    if "collection" in type_ref:
        return _struct_fqn(type_ref["collection"]["elementtype"])
    for member in type_ref.get("union", {}).get("types", []):
        found = _struct_fqn(member)
        if found:
            return found
    return None


def _to_json(schema: ProviderSchema) -> dict[str, Any]:
    return {
        "provider_version": schema.provider_version,
        "provider": schema.provider.to_json(),
        "resources": {name: block.to_json() for name, block in schema.resources.items()},
        "data_sources": {name: block.to_json() for name, block in schema.data_sources.items()},
    }


def _from_json(data: dict[str, Any]) -> ProviderSchema:
    return ProviderSchema(
        provider_version=data["provider_version"],
        provider=BlockSchema.from_json(data["provider"]),
        resources={k: BlockSchema.from_json(v) for k, v in data["resources"].items()},
        data_sources={k: BlockSchema.from_json(v) for k, v in data["data_sources"].items()},
    )
