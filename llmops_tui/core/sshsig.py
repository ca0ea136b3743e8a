"""SSH signatures for approvals, through the system's ``ssh-keygen -Y`` (no crypto code of our own).

A person signs with their own SSH key (a key file, or a public key file whose private half is held by
ssh-agent); verifiers hold public keys only, in an *allowed-signers file* in git's format
(``man ssh-keygen``, section ALLOWED SIGNERS)::

    # principal   options                                        key                      llmops fields
    ada@example.com namespaces="llmops-approval" ssh-ed25519 AAAAC3Nz... environments=dev,prod
    bo@example.com  namespaces="llmops-approval",valid-before="20270101" ssh-ed25519 AAAA... environments=dev

ssh-keygen treats everything after the key as a comment, so the file stays usable by ``ssh-keygen`` and
``git`` as is; llmops reads ``environments=`` from there (no field: every environment). ``valid-before``
and ``valid-after`` are ssh-keygen's own options (``YYYYMMDD`` or ``YYYYMMDDHHMM[SS]``, UTC with a ``Z``).

The namespace is always ``llmops-approval``, so an approval signature cannot be replayed as a git commit
signature or the other way round.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from llmops_tui.core.errors import LlmopsError

NAMESPACE = "llmops-approval"
ALLOWED_SIGNERS_FILE = "allowed_signers"
SIGNING_KEY_ENV = "LLMOPS_SIGNING_KEY"  # path of the person's key file (private, or public + ssh-agent)
PASSPHRASE_ENV = "LLMOPS_SSH_PASSPHRASE"  # only ever given to ssh-keygen's askpass helper
_KEY_TYPES = (
    "ssh-ed25519",
    "sk-ssh-ed25519@openssh.com",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ecdsa-sha2-nistp256@openssh.com",
    "ssh-rsa",
)
_GOOD_RE = re.compile(
    r'Good "[^"]*" signature (?:for (?P<principal>.+?) )?with (?P<type>\S+) key (?P<fp>\S+)'
)
_TIME_RE = re.compile(r"^(\d{8})(\d{4}(\d{2})?)?Z?$")


def ssh_keygen() -> str:
    """Path of ssh-keygen, or LlmopsError saying how to get it."""
    found = shutil.which("ssh-keygen") or (
        "/usr/bin/ssh-keygen" if Path("/usr/bin/ssh-keygen").is_file() else None
    )
    if not found:
        raise LlmopsError(
            "ssh-keygen was not found: signed approvals need it",
            field="ssh-keygen",
            hint="install OpenSSH (Debian/Ubuntu: apt-get install openssh-client; macOS and Windows ship it)",
        )
    return found


def _run(
    args: list[str], *, data: bytes | None = None, env: dict[str, str] | None = None, timeout: float = 60
):
    base = {k: v for k, v in os.environ.items() if k != PASSPHRASE_ENV}
    try:
        return subprocess.run(
            [ssh_keygen(), *args],
            input=data,
            capture_output=True,
            timeout=timeout,
            env={**base, "LC_ALL": "C", **(env or {})},
            stdin=None if data is not None else subprocess.DEVNULL,
            start_new_session=True,  # no controlling terminal: ssh-keygen must never prompt on the app's tty
        )
    except subprocess.TimeoutExpired:
        raise LlmopsError("ssh-keygen did not answer within a minute", field="ssh-keygen") from None
    except OSError as exc:
        raise LlmopsError(f"could not run ssh-keygen: {exc.strerror or exc}", field="ssh-keygen") from None


def _first_line(raw: bytes) -> str:
    text = raw.decode("utf-8", "replace").strip()
    return text.splitlines()[-1].strip() if text else ""


# ------------------------------------------------------------------------------------------- public keys


def fingerprint(public_key: str) -> str:
    """``SHA256:...`` of an OpenSSH public key line (``TYPE BASE64 [comment]``): the sha256 of the key
    blob, base64 without padding, exactly as ``ssh-keygen -l`` prints it."""
    parts = public_key.split()
    if len(parts) < 2:
        raise ValueError("not an OpenSSH public key")
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except ValueError:
        raise ValueError("the key's base64 is damaged") from None
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def read_public_key(path: Path) -> str:
    """``TYPE BASE64`` of a public key file, or of the ``.pub`` next to a private key file (asking
    ssh-keygen to derive it when there is none). Raises LlmopsError naming the file."""
    path = Path(path).expanduser()
    candidates = [path] if path.suffix == ".pub" else [Path(str(path) + ".pub"), path]
    for cand in candidates:
        try:
            text = cand.read_text(encoding="utf-8", errors="replace").strip()
        except OSError:
            continue
        first = text.splitlines()[0] if text else ""
        if first.split(" ", 1)[0] in _KEY_TYPES:
            kind, blob = first.split()[:2]
            return f"{kind} {blob}"
    if not path.is_file():
        raise LlmopsError(
            f"key file '{path}' not found", file=path, field="--key", hint="e.g. ~/.ssh/id_ed25519"
        )
    proc = _run(["-y", "-P", "", "-f", str(path)])
    out = proc.stdout.decode("utf-8", "replace").strip()
    if proc.returncode != 0 or not out:
        raise LlmopsError(
            f"cannot read the public key of '{path}'",
            file=path,
            field="--key",
            hint="put its .pub file next to it, or give the .pub file (the agent then signs)",
        )
    kind, blob = out.split()[:2]
    return f"{kind} {blob}"


# ---------------------------------------------------------------------------------- allowed signers


@dataclass
class AllowedSigner:
    """One line of the allowed-signers file."""

    principals: list[str]
    key: str  # "TYPE BASE64"
    fingerprint: str
    environments: list[str] = field(default_factory=list)  # empty: every environment
    namespaces: list[str] | None = None  # None: any namespace
    valid_before: str | None = None
    valid_after: str | None = None
    line: int = 0

    @property
    def principal(self) -> str:
        return self.principals[0] if self.principals else ""

    def allows_env(self, env: str) -> bool:
        return not self.environments or env in self.environments

    def expired(self, now: datetime | None = None) -> bool:
        return self.valid_before is not None and _stamp(now) >= _norm_time(self.valid_before)

    def not_yet_valid(self, now: datetime | None = None) -> bool:
        return self.valid_after is not None and _stamp(now) < _norm_time(self.valid_after)

    def to_line(self) -> str:
        opts = []
        if self.namespaces:
            opts.append(f'namespaces="{",".join(self.namespaces)}"')
        if self.valid_after:
            opts.append(f'valid-after="{self.valid_after}"')
        if self.valid_before:
            opts.append(f'valid-before="{self.valid_before}"')
        envs = f" environments={','.join(self.environments)}" if self.environments else ""
        opt_text = f" {','.join(opts)}" if opts else ""
        return f"{','.join(self.principals)}{opt_text} {self.key}{envs}"

    def to_dict(self) -> dict:
        return {
            "principal": self.principal,
            "fingerprint": self.fingerprint,
            "environments": self.environments or ["*"],
            "valid_before": self.valid_before,
            "valid_after": self.valid_after,
            "key": self.key,
            "line": self.line,
        }


def _norm_time(value: str) -> str:
    """YYYYMMDD[HHMM[SS]][Z] -> YYYYMMDDHHMMSS (UTC)."""
    m = _TIME_RE.match(value.strip())
    if not m:
        return value
    digits = value.strip().rstrip("Z")
    return (digits + "000000")[:14]


def _stamp(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).strftime("%Y%m%d%H%M%S")


def display_time(value: str) -> str:
    norm = _norm_time(value)
    if len(norm) == 14 and norm.isdigit():
        text = f"{norm[:4]}-{norm[4:6]}-{norm[6:8]}"
        return text if norm[8:] == "000000" else f"{text} {norm[8:10]}:{norm[10:12]} UTC"
    return value


def _split_options(text: str) -> tuple[str, str]:
    """(options, rest) where options is the leading option list (may hold quoted commas/spaces)."""
    in_quote = False
    for i, ch in enumerate(text):
        if ch == '"':
            in_quote = not in_quote
        elif ch in " \t" and not in_quote:
            return text[:i], text[i:].lstrip()
    return text, ""


def parse_allowed_signers(path: Path) -> tuple[list[AllowedSigner], list[str]]:
    """The entries of an allowed-signers file and one problem text per line that could not be read."""
    entries: list[AllowedSigner] = []
    problems: list[str] = []
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        return [], [f"{path}: cannot be read ({exc.strerror or exc})"]
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        principals, rest = _split_options(line)
        options = ""
        if rest.split(" ", 1)[0] not in _KEY_TYPES:
            options, rest = _split_options(rest)
        parts = rest.split()
        if len(parts) < 2 or parts[0] not in _KEY_TYPES:
            problems.append(f"{Path(path).name} line {number}: no public key after the principal and options")
            continue
        try:
            fp = fingerprint(f"{parts[0]} {parts[1]}")
        except ValueError as exc:
            problems.append(f"{Path(path).name} line {number}: {exc}")
            continue
        entry = AllowedSigner(
            principals=[p for p in principals.split(",") if p],
            key=f"{parts[0]} {parts[1]}",
            fingerprint=fp,
            line=number,
        )
        for opt in re.findall(r'[A-Za-z-]+(?:="[^"]*"|=[^,]*)?', options):
            name, _, value = opt.partition("=")
            value = value.strip('"')
            if name.lower() == "namespaces":
                entry.namespaces = [n.strip() for n in value.split(",") if n.strip()]
            elif name.lower() == "valid-before":
                entry.valid_before = value
            elif name.lower() == "valid-after":
                entry.valid_after = value
        for token in parts[2:]:
            if token.startswith("environments="):
                entry.environments = [e for e in token.split("=", 1)[1].split(",") if e]
        entries.append(entry)
    return entries, problems


# ------------------------------------------------------------------------------------ sign and verify


def _askpass_env(passphrase: str | None, tmp: Path) -> dict[str, str]:
    """Environment that makes ssh-keygen read a key's passphrase from an askpass helper, which reads it
    from its own environment (never from a file or an argument)."""
    if passphrase is None:
        return {"SSH_ASKPASS_REQUIRE": "never"}
    helper = tmp / "askpass.sh"
    helper.write_text(f'#!/bin/sh\nprintf "%s\\n" "${PASSPHRASE_ENV}"\n', encoding="utf-8")
    helper.chmod(0o700)
    return {
        "SSH_ASKPASS": str(helper),
        "SSH_ASKPASS_REQUIRE": "force",
        "DISPLAY": os.environ.get("DISPLAY", ":0"),
        PASSPHRASE_ENV: passphrase,
    }


class PassphraseNeeded(LlmopsError):
    """The key is protected by a passphrase and none (or a wrong one) was given."""


def sign(data: bytes, key_file: Path, *, passphrase: str | None = None) -> str:
    """The armored SSH signature of ``data`` by ``key_file`` (a private key file, or a public key file
    whose private half ssh-agent holds), namespace ``llmops-approval``."""
    key_file = Path(key_file).expanduser()
    if not key_file.is_file():
        raise LlmopsError(
            f"key file '{key_file}' not found",
            file=key_file,
            field="--key",
            hint=f"give --key PATH or set {SIGNING_KEY_ENV}",
        )
    with tempfile.TemporaryDirectory(prefix="llmops-sign-") as tmp:
        message = Path(tmp) / "approval"
        message.write_bytes(data)
        proc = _run(
            ["-Y", "sign", "-n", NAMESPACE, "-f", str(key_file), str(message)],
            env=_askpass_env(passphrase, Path(tmp)),
        )
        sig = Path(tmp) / "approval.sig"
        if proc.returncode != 0 or not sig.is_file():
            detail = _first_line(proc.stderr)
            low = detail.lower()
            if "passphrase" in low:
                raise PassphraseNeeded(
                    f"the key '{key_file}' needs its passphrase"
                    + (" (the one given is wrong)" if passphrase else ""),
                    file=key_file,
                    field="passphrase",
                    hint="give the passphrase, or load the key into ssh-agent (ssh-add) and use its .pub file",
                )
            raise LlmopsError(
                f"ssh-keygen could not sign with '{key_file}': {detail or 'no reason given'}",
                file=key_file,
                field="--key",
                hint="a private key file, or a .pub file whose private key is loaded in ssh-agent (ssh-add -l)",
            )
        return sig.read_text(encoding="utf-8")


@dataclass
class SigCheck:
    ok: bool
    fingerprint: str = ""
    principal: str = ""
    detail: str = ""


def check_signature(data: bytes, signature: str) -> SigCheck:
    """Is ``signature`` a valid ``llmops-approval`` signature of ``data`` by the key it carries (who that
    key belongs to is not checked here)? ``fingerprint`` is the signing key's."""
    with tempfile.TemporaryDirectory(prefix="llmops-verify-") as tmp:
        sig = Path(tmp) / "sig"
        sig.write_text(signature, encoding="utf-8")
        proc = _run(["-Y", "check-novalidate", "-n", NAMESPACE, "-s", str(sig)], data=data)
    out = proc.stdout.decode("utf-8", "replace") + proc.stderr.decode("utf-8", "replace")
    m = _GOOD_RE.search(out)
    if proc.returncode != 0 or not m:
        return SigCheck(False, detail=_first_line(proc.stderr) or "bad signature")
    return SigCheck(True, fingerprint=m.group("fp"))


def verify_allowed(data: bytes, signature: str, principal: str, allowed_signers: Path) -> SigCheck:
    """``ssh-keygen -Y verify`` of ``data`` against ``allowed_signers`` for ``principal``: the check
    CI relies on (key listed, namespace, valid-before/after as of now)."""
    with tempfile.TemporaryDirectory(prefix="llmops-verify-") as tmp:
        sig = Path(tmp) / "sig"
        sig.write_text(signature, encoding="utf-8")
        proc = _run(
            ["-Y", "verify", "-f", str(allowed_signers), "-I", principal, "-n", NAMESPACE, "-s", str(sig)],
            data=data,
        )
    out = proc.stdout.decode("utf-8", "replace") + proc.stderr.decode("utf-8", "replace")
    m = _GOOD_RE.search(out)
    if proc.returncode != 0 or not m:
        return SigCheck(False, detail=_first_line(proc.stderr) or "signature not accepted")
    return SigCheck(True, fingerprint=m.group("fp"), principal=m.group("principal") or principal)


def find_principals(signature: str, allowed_signers: Path) -> list[str]:
    """``ssh-keygen -Y find-principals``: the principals ``allowed_signers`` lists for the signing key."""
    with tempfile.TemporaryDirectory(prefix="llmops-verify-") as tmp:
        sig = Path(tmp) / "sig"
        sig.write_text(signature, encoding="utf-8")
        proc = _run(["-Y", "find-principals", "-n", NAMESPACE, "-f", str(allowed_signers), "-s", str(sig)])
    if proc.returncode != 0:
        return []
    return [p for p in proc.stdout.decode("utf-8", "replace").split() if p]


def generate_key(path: Path, *, comment: str = "llmops approvals", passphrase: str = "") -> str:
    """Make a new Ed25519 key pair at ``path`` (and ``path``.pub); returns the public key line."""
    path = Path(path).expanduser()
    if path.exists():
        raise LlmopsError(f"'{path}' already exists: not overwritten", file=path, field="--key")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    proc = _run(["-q", "-t", "ed25519", "-N", passphrase, "-C", comment, "-f", str(path)])
    if proc.returncode != 0:
        raise LlmopsError(
            f"ssh-keygen could not make a key: {_first_line(proc.stderr)}", file=path, field="--key"
        )
    return read_public_key(path)
