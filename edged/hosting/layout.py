"""What an edged repository holds beyond plain TUF: target paths, the `custom` metadata of each version, the index.

Target layout (paths inside `targets/`; with consistent snapshots each file is stored as `<sha256>.<file name>`)::

    index.json                          every model name → the primary target path of each of its versions
    NAME/VERSION/model.tflite           the CPU model (absent for an Edge-TPU-only version)
    NAME/VERSION/model_edgetpu.tflite   the Edge TPU variant (optional; the name makes model.tflite its CPU twin)
    NAME/VERSION/<labels file name>     the labels file given to publish (optional)
    NAME/VERSION/golden/N-<image name>  known-answer images (optional)

TUF signs canonical JSON, which has no floating-point numbers: rollout percentages are integers and the [model]
settings travel as JSON text (`model_json`).

The primary target of a version (model.tflite, or model_edgetpu.tflite when there is no CPU model) carries the
version's description in `custom["edged"]` (VersionMeta). Its companions carry `{"edged": {"role": ...}}`. All of
it is signed with targets metadata, so a device trusts it as much as the model bytes.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edged.errors import HostingError

SCHEMA = 1
INDEX_PATH = "index.json"
CPU_FILE = "model.tflite"
EDGETPU_FILE = "model_edgetpu.tflite"
FileRole = Literal["model", "edgetpu_model", "labels", "golden"]
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


def version_dir(name: str, version: int) -> str:
    return f"{name}/{version}"


def safe_file_name(name: str) -> str:
    """A file name that is safe in a URL and on every filesystem (labels and golden images keep theirs)."""
    cleaned = _SAFE.sub("_", name).lstrip(".")
    return cleaned[:100] or "file"


class _Lenient(BaseModel):
    """Read leniently: a newer publisher may add fields; min_edged_version says when they matter."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class GoldenImage(_Lenient):
    """A known-answer image: classification must give `expected` as its top label, detection must find it."""

    image: str = Field(description="Target path of the image.")
    expected: str = Field(min_length=1)


class VersionFiles(_Lenient):
    cpu: str | None = None
    edgetpu: str | None = None
    labels: str | None = None


class VersionMeta(_Lenient):
    """The `custom["edged"]` of a version's primary target."""

    schema_: int = Field(SCHEMA, alias="schema")
    role: Literal["model"] = "model"
    name: str
    version: int = Field(ge=1)
    channel: str
    rollout_percent: int = Field(100, ge=0, le=100)
    withdrawn: bool = False
    notes: str = ""
    published: str = ""
    files: VersionFiles
    model_json: str = Field("{}", description="[model] settings for this version, as a JSON object.")
    golden: tuple[GoldenImage, ...] = ()
    min_edged_version: str = "0.1.0"

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    def custom(self) -> dict[str, Any]:
        return {"edged": self.model_dump(mode="json", by_alias=True)}

    def settings(self) -> dict[str, Any]:
        """The [model] settings; JSON text because TUF's canonical JSON has no floats (thresholds are floats)."""
        value = json.loads(self.model_json)
        if not isinstance(value, dict):
            raise ValueError("model_json is not a JSON object")
        return value

    @property
    def primary(self) -> str:
        path = self.files.cpu or self.files.edgetpu
        assert path is not None  # publish never writes a version without a model
        return path

    def target_paths(self) -> list[tuple[FileRole, str]]:
        """Every target of this version with its role, the primary first."""
        found: list[tuple[FileRole, str]] = []
        if self.files.cpu:
            found.append(("model", self.files.cpu))
        if self.files.edgetpu:
            found.append(("edgetpu_model", self.files.edgetpu))
        if self.files.labels:
            found.append(("labels", self.files.labels))
        found.extend(("golden", golden.image) for golden in self.golden)
        return found


def companion_custom(role: FileRole, name: str, version: int) -> dict[str, Any]:
    return {"edged": {"schema": SCHEMA, "role": role, "name": name, "version": version}}


def read_version_meta(custom: Any, path: str) -> VersionMeta:
    """The VersionMeta of a primary target; HostingError when the signed description is not one edged reads."""
    data = custom.get("edged") if isinstance(custom, dict) else None
    if not isinstance(data, dict):
        raise HostingError(f"target {path} has no edged description in its custom metadata; republish it")
    try:
        meta = VersionMeta.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise HostingError(f"target {path}: its edged description is not valid ({problems}); republish it") from exc
    try:
        meta.settings()
    except ValueError as exc:
        raise HostingError(f"target {path}: its [model] settings are not a JSON object ({exc}); republish it") from exc
    if meta.primary != path:
        raise HostingError(f"target {path} describes {meta.primary} as its model; the repository is inconsistent")
    return meta


class Index(BaseModel):
    """targets/index.json: the names and versions in the repository, so a device need not list TUF targets."""

    model_config = ConfigDict(extra="ignore")

    schema_: int = Field(SCHEMA, alias="schema")
    models: dict[str, dict[str, str]] = Field(default_factory=dict, description="name → version → primary path")

    def to_bytes(self) -> bytes:
        return (json.dumps(self.model_dump(by_alias=True), indent=1, sort_keys=True) + "\n").encode()

    @staticmethod
    def from_bytes(data: bytes) -> Index:
        try:
            return Index.model_validate_json(data)
        except ValidationError as exc:
            raise HostingError(
                f"the repository's {INDEX_PATH} is not an edged index: {exc.errors()[0]['msg']}"
            ) from exc

    def versions(self, name: str) -> dict[int, str]:
        return {int(number): path for number, path in self.models.get(name, {}).items()}


def parse_edged_version(text: str) -> tuple[int, ...]:
    """'0.12.1' → (0, 12, 1); pre-release suffixes are ignored ('1.2.0rc1' → (1, 2, 0))."""
    parts = []
    for piece in text.strip().split("."):
        digits = re.match(r"\d+", piece)
        if not digits:
            break
        parts.append(int(digits.group()))
    if not parts:
        raise ValueError(f"{text!r} is not a version like 0.1.0")
    return tuple(parts)
