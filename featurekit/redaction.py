"""Keeping secrets out of everything featurekit writes, prints, logs or answers.

A secret is any of:

- the value of an environment variable whose name says it holds one (:data:`SECRET_NAME`:
  ``AWS_SECRET_ACCESS_KEY``, ``REDIS_PASSWORD``, ``FEATUREKIT_REGISTRY_TOKEN``...), or that the
  conf names (:func:`flag_env`: ``registry.token_env``, ``kubernetes.secret_env``, a
  ``${NAME}`` standing for a password, ``secrets.env``);
- a password inside a URL (``scheme://user:password@host``) or a ``password=...`` pair
  (Feast's Redis connection strings, JDBC-style queries), wherever it comes from;
- a value some part of featurekit learnt is secret (:func:`add_secret`);
- in a mapping, the value under a key that names a credential (``password``, ``secret.key``).

Every output boundary runs what it emits through :func:`redact` (data) or :func:`redact_text`
(text): run reports and lineage records before they are written, bodies before they are sent to
the Model Registry, API answers, the CLI's consoles, log records (:func:`redact_logs`). Writers of
files that must keep working (manifests, ``feature_store.yaml``) ask :func:`leaks` instead and
refuse to write a secret, since a masked value would break them.

The environment is looked at on each call (compared with the one the last pattern of secret
values was made from), so a secret set after import is still caught. The names
and values flagged by conf are process-wide: an error printed by the CLI's last handler knows
no settings object, yet must not show the token the settings named. This module imports nothing
of featurekit, so every layer can use it.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "***"
# Environment variable names (and conf keys) that hold a credential.
SECRET_NAME = re.compile(r"secret|passw|token|credential|bearer|authorization|(api|access|account|private|session)[-_.]?key",
                         re.IGNORECASE)
# Mapping keys whose value is a credential: the names above, and short spellings of a password.
_SECRET_KEY = re.compile(SECRET_NAME.pattern + r"|^pass$|(^|[-_.])pwd$|sas[-_.]?token", re.IGNORECASE)
# Variables naming where a secret is, not holding one (AWS_SHARED_CREDENTIALS_FILE, ...).
_NOT_A_VALUE = re.compile(r"_(FILE|PATH|DIR|SOCK)$", re.IGNORECASE)
# A value shorter than this, or one of these words, would mask ordinary text, not a secret.
MIN_LENGTH = 4
_PLAIN_WORDS = frozenset({"true", "false", "none", "null", "yes", "no", "on", "off"})
# scheme://user:password@ (the password never a ${NAME} reference, nor conf's $${NAME}: not secrets)
_URL_PASSWORD = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]*):(?!\$?\$\{)([^/\s@]+)@")
_KV_PASSWORD = re.compile(r"\b(password|passwd|pwd|secret|token)=(?!\$?\$\{)([^,;&\s]+)", re.IGNORECASE)
# ${NAME} where a password goes: in a URL's user info, or a password= pair
_REFERENCED = re.compile(r"://[^/\s:@]*:\$\{(\w+)\}@|\b(?:password|passwd|pwd|secret|token)=\$\{(\w+)\}",
                         re.IGNORECASE)

_flagged_names: set[str] = set()
_known_values: set[str] = set()


def flag_env(names: Iterable[str]) -> None:
    """Treat the values of these environment variables as secrets, whatever their names."""
    _flagged_names.update(name for name in names if name)


def add_secret(value: str | None) -> None:
    """Treat ``value`` as a secret from now on (e.g. a password found in a URL)."""
    if value and _worth_masking(value):
        _known_values.add(value)


def referenced_env(text: str) -> list[str]:
    """The ``${NAME}`` references in ``text`` that stand for a password (URL user info, ``password=``)."""
    return [a or b for a, b in _REFERENCED.findall(text)]


def url_passwords(text: str) -> list[str]:
    """The passwords written in ``text``: in URLs' user info and in ``password=`` pairs."""
    return [m.group(2) for m in _URL_PASSWORD.finditer(text)] + [m.group(2) for m in _KV_PASSWORD.finditer(text)]


def _worth_masking(value: str) -> bool:
    return len(value) >= MIN_LENGTH and value.strip().lower() not in _PLAIN_WORDS


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """Every secret value known now, longest first (so a secret inside another is masked whole)."""
    env = os.environ if environ is None else environ
    found = set(_known_values)
    for name, value in env.items():
        if name in _flagged_names or (SECRET_NAME.search(name) and not _NOT_A_VALUE.search(name)):
            found.add(value)
        if "@" in value or "=" in value:
            found.update(url_passwords(value))
    return sorted((v for v in found if _worth_masking(v)), key=len, reverse=True)


# (the environment's raw mapping, the flagged names and known values counted, the pattern of
# the secret values then): the last pattern made, for as long as nothing it rests on changed
_last: tuple[dict[Any, Any], tuple[int, int], re.Pattern[str] | None] | None = None


def _values_pattern() -> re.Pattern[str] | None:
    """The pattern of every secret value known now. Made again only when the environment or the
    flagged names and known values (which only grow) changed: a server makes a log record or
    more per request, and comparing the environment costs little against reading it through."""
    global _last
    raw = getattr(os.environ, "_data", None)      # CPython's own mapping behind os.environ
    counts = (len(_flagged_names), len(_known_values))
    last = _last
    if raw is not None and last is not None and last[1] == counts and last[0] == raw:
        return last[2]
    values = secret_values()
    pattern = re.compile("|".join(map(re.escape, values))) if values else None
    if isinstance(raw, dict):
        _last = (dict(raw), counts, pattern)
    return pattern


class _Masker:
    """The secrets known at one moment, applied to many strings (one walk over a report)."""

    def __init__(self, by_key: bool = True) -> None:
        self.pattern = _values_pattern()
        self.by_key = by_key

    def text(self, text: str) -> str:
        text = _KV_PASSWORD.sub(rf"\1={MASK}", _URL_PASSWORD.sub(rf"\1:{MASK}@", text))
        return self.pattern.sub(MASK, text) if self.pattern is not None else text

    def data(self, value: Any, key: str = "") -> Any:
        if isinstance(value, Mapping):
            return {k: self.data(v, str(k)) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.data(v, key) for v in value]
        if self.by_key and key and _SECRET_KEY.search(key) and isinstance(value, (str, int, float)) \
                and not isinstance(value, bool):
            return MASK
        if isinstance(value, str):
            return self.text(value)
        return value


def redact_text(text: str) -> str:
    """``text`` with every secret masked: passwords in URLs (``scheme://user:***@host``) and in
    ``password=***`` pairs, and the values of the secrets known (see the module doc)."""
    return _Masker().text(text)


def redact(value: Any, key: str = "", *, by_key: bool = True) -> Any:
    """A copy of ``value`` (mappings, lists, strings) with secrets masked: strings as
    :func:`redact_text`, and values under keys that name a credential replaced by ``***``.
    ``by_key=False`` masks by value only, for mappings whose keys are data (a feature view's
    schema may have a column ``token_count``)."""
    return _Masker(by_key).data(value, key)


def leaks(value: Any, path: tuple[str, ...] = ()) -> list[str]:
    """The dotted paths of the strings in ``value`` that hold a secret (by value, not by key: a
    file such as a manifest names credentials legitimately, as references)."""
    masker = _Masker()
    found: list[str] = []

    def walk(item: Any, where: tuple[str, ...]) -> None:
        if isinstance(item, Mapping):
            for k, v in item.items():
                walk(v, (*where, str(k)))
        elif isinstance(item, (list, tuple)):
            for index, v in enumerate(item):
                walk(v, (*where, str(index)))
        elif isinstance(item, str) and masker.text(item) != item:
            found.append(".".join(where))

    walk(value, path)
    return found


# -- logs -------------------------------------------------------------------------------------

_factory_installed = False


def redact_logs() -> None:
    """Mask secrets in every log record this process makes from now on, whatever the logger or
    handler: the record's message (arguments filled in) and its traceback are masked when the
    record is made, so no handler sees them whole; a record without a secret is left as made.
    Idempotent."""
    global _factory_installed
    if _factory_installed:
        return
    make = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a record whose arguments do not fit its format: the handler says so
            return record
        masker = _Masker()
        masked = masker.text(message)
        if masked != message:
            record.msg, record.args = masked, None
        # else the record stays as made: formatters that read its arguments (uvicorn's access log,
        # which KServe's servers use) would fail on every record without them
        if record.exc_info and not record.exc_text:
            record.exc_text = masker.text(logging.Formatter().formatException(record.exc_info))
        return record

    logging.setLogRecordFactory(factory)
    _factory_installed = True
