"""Where other projects' instruction files live, and how we get a verified copy at run time.

Order of lookup for each pinned upstream file:
1. the offline directory (``INSTROBUST_DATA_DIR/observed_sources``) when one is set — then
   nothing is ever downloaded;
2. the user cache (``INSTROBUST_CACHE_DIR`` or the platform cache dir), holding earlier downloads;
3. the upstream URL at the pinned commit (skipped when ``INSTROBUST_OFFLINE=1``).
Downloads and upstream-layout copies are checked against the pinned whole-file sha256; every
extracted instruction text is further checked against its own pinned sha256 (references.py).
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from instrobust.errors import ChecksumError, OfflineDirError, SourceUnavailable

DATA_DIR_ENV = "INSTROBUST_DATA_DIR"
CACHE_DIR_ENV = "INSTROBUST_CACHE_DIR"
OFFLINE_ENV = "INSTROBUST_OFFLINE"


@dataclass(frozen=True)
class OfflineCopy:
    """A local copy of an upstream file, relative to ``<data dir>/observed_sources``.

    ``fmt`` is "upstream" for a byte copy of the upstream file (checked against the pinned
    sha256), or the name of an export format the parser also reads (checked per text only).
    """

    relpath: str
    fmt: str = "upstream"


@dataclass(frozen=True)
class UpstreamFile:
    name: str
    repo: str
    commit: str
    path: str
    fmt: str
    offline: tuple[OfflineCopy, ...] = ()
    sha256: str | None = None
    # The id git gives the file's content (`git ls-tree <commit>`): checkable against the
    # upstream repository itself, where a sha256 may only be known from a third party.
    git_blob_sha1: str | None = None
    licence: str = ""
    # Released archives (a PyPI sdist) instead of a raw file: the URL and the member inside it.
    archive_url: str | None = None
    archive_member: str | None = None
    archive_sha256: str | None = None

    @property
    def url(self) -> str:
        if self.archive_url:
            return self.archive_url
        return f"https://raw.githubusercontent.com/{self.repo}/{self.commit}/{self.path}"


@dataclass(frozen=True)
class LocalCopy:
    path: Path
    fmt: str
    origin: str  # "offline dir", "cache" or the URL


# Hosts found unreachable in this process, with why: every later use fails at once instead of
# waiting out the same timeouts and retries again (lm-eval builds each task separately).
_UNREACHABLE: dict[str, str] = {}
PROBE_TIMEOUT_S = 3.0


def unreachable(url: str, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """None when ``url``'s host (or the proxy for it) takes a connection; else why not.

    Tried once per host and process, with a short timeout; a failure is remembered.
    """
    import socket
    import urllib.parse

    parsed = urllib.parse.urlparse(url)
    proxy = urllib.request.getproxies().get(parsed.scheme)
    target = urllib.parse.urlparse(proxy) if proxy else parsed
    host = target.hostname or ""
    port = target.port or (443 if target.scheme == "https" else 80)
    key = f"{host}:{port}"
    if key not in _UNREACHABLE:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            _UNREACHABLE[key] = ""
        except OSError as exc:
            via = f" (proxy for {parsed.hostname})" if proxy else ""
            _UNREACHABLE[key] = f"{host}{via} is unreachable: {exc or type(exc).__name__}"
    return _UNREACHABLE[key] or None


def hub_unreachable() -> str | None:
    """Why the Hugging Face hub cannot be used now (offline flags or no connection), or None."""
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", OFFLINE_ENV):
        if os.environ.get(var, "") in ("1", "true", "True", "TRUE"):
            return f"{var}=1"
    return unreachable(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def git_blob_sha1(path: Path) -> str:
    """Git's object id for the file's content: sha1 of ``blob <size>\0<content>``."""
    path = Path(path)
    h = hashlib.sha1(b"blob %d\0" % path.stat().st_size)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def data_dir_from_env() -> Path | None:
    value = os.environ.get(DATA_DIR_ENV)
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_dir():
        raise OfflineDirError(
            f"{DATA_DIR_ENV}={value!r} is not a directory. Point it at a folder laid out like "
            f"shared/data (mmlu/test/*.csv, bigbench/<task>/task.json, observed_sources/...) or unset it."
        )
    return path


def default_cache_dir() -> Path:
    value = os.environ.get(CACHE_DIR_ENV)
    if value:
        return Path(value).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("instrobust")) / "upstream"


class SourceResolver:
    """Finds a verified local copy of each pinned upstream file."""

    def __init__(
        self,
        data_dir: str | os.PathLike | None = None,
        cache_dir: str | os.PathLike | None = None,
        download: bool | None = None,
        timeout: float = 30.0,
    ):
        if data_dir is not None:
            data_dir = Path(data_dir)
            if not data_dir.is_dir():
                raise OfflineDirError(f"offline data directory {str(data_dir)!r} does not exist")
        else:
            data_dir = data_dir_from_env()
        self.data_dir: Path | None = data_dir
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        if download is None:
            download = self.data_dir is None and os.environ.get(OFFLINE_ENV, "") not in ("1", "true")
        self.download = download
        self.timeout = timeout

    def fetch(self, source: UpstreamFile) -> LocalCopy:
        if self.data_dir is not None:
            root = self.data_dir / "observed_sources"
            for copy in source.offline:
                path = root / copy.relpath
                if path.is_file():
                    if copy.fmt == "upstream":
                        self._verify(source, path)
                    return LocalCopy(path, copy.fmt, "offline dir")
            tried = ", ".join(str(root / c.relpath) for c in source.offline) or "(no offline layout)"
            raise SourceUnavailable(f"{source.name}: not in the offline directory (looked for {tried})")

        cached = self.cache_dir / source.repo / source.commit / source.path
        if cached.is_file():
            self._verify(source, cached)
            return LocalCopy(cached, "upstream", "cache")
        if not self.download:
            raise SourceUnavailable(f"{source.name}: not cached and downloads are off ({OFFLINE_ENV}=1)")
        why = unreachable(source.url)
        if why:
            raise SourceUnavailable(f"{source.name}: could not download {source.url}: {why}")
        try:
            if source.archive_member:
                payload = _extract_member(self._archive(source), source.archive_member)
            else:
                payload = self._download(source.url)
        except ChecksumError:
            raise
        except Exception as exc:  # network errors come in many types; all mean "not here"
            raise SourceUnavailable(f"{source.name}: could not download {source.url}: {exc}") from None
        cached.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cached.parent)
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
        self._verify(source, Path(tmp), cleanup=True)
        os.replace(tmp, cached)
        return LocalCopy(cached, "upstream", source.url)

    def _download(self, url: str) -> bytes:
        with urllib.request.urlopen(url, timeout=self.timeout) as resp:
            return resp.read()

    def _archive(self, source: UpstreamFile) -> bytes:
        """A release archive, downloaded once and shared by all the files taken from it."""
        path = self.cache_dir / "archives" / source.archive_url.rsplit("/", 1)[-1]
        if path.is_file():
            payload = path.read_bytes()
        else:
            payload = self._download(source.archive_url)
        if source.archive_sha256 and hashlib.sha256(payload).hexdigest() != source.archive_sha256:
            path.unlink(missing_ok=True)
            raise ChecksumError(
                f"{source.archive_url}: sha256 {hashlib.sha256(payload).hexdigest()} does not match "
                f"the pinned {source.archive_sha256}"
            )
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(payload)
        return payload

    @staticmethod
    def _verify(source: UpstreamFile, path: Path, cleanup: bool = False) -> None:
        for kind, pinned, digest in (("sha256", source.sha256, sha256_file),
                                     ("git blob id", source.git_blob_sha1, git_blob_sha1)):
            if pinned is None:
                continue
            got = digest(path)
            if got != pinned:
                if cleanup:
                    path.unlink(missing_ok=True)
                raise ChecksumError(
                    f"{path}: {kind} {got} does not match the pinned {pinned} for "
                    f"{source.repo}@{source.commit[:12]}:{source.path} ({source.name}). The file was "
                    f"changed or is a different version; replace it with the pinned upstream file."
                )


def _extract_member(archive: bytes, member: str) -> bytes:
    import io
    import tarfile

    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:*") as tar:
        fh = tar.extractfile(member)
        if fh is None:
            raise KeyError(f"{member} is not a file in the archive")
        return fh.read()
