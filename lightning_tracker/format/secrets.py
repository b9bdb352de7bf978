"""Secrets recognised by the shape of a value, whatever the key or flag it came under.

A key name (``api_key``) says a value is secret; so does the value itself: a connection
string's ``AccountKey=``, a JSON web token, ``Bearer …``, a PEM private key, a webhook
URL, a signed URL's signature, a provider's token prefix (``ghp_``, ``xoxb-``, ``hf_``).
:func:`redact_text` replaces only the secret part, so the rest stays readable
(``AccountName=acct;AccountKey=***REDACTED***``). Learning rates, paths, model names and
hashes have none of these shapes and pass untouched.

Pure string handling: the hyperparameter filter, the environment record and the URL
redactor all ask this one module.
"""

from __future__ import annotations

import re

__all__ = ["REDACTED", "redact_text"]

REDACTED = "***REDACTED***"

# `name=value` fields whose value is a credential: connection strings (Azure's
# `AccountKey=`, ODBC's `Pwd=`) and URL queries (S3's `X-Amz-Signature=`, Azure SAS `sig=`)
_FIELD_NAMES = (
    "accountkey", "sharedaccesskey", "sharedaccesssignature", "password", "passwd", "pwd",
    "sig", "signature", "x-amz-signature", "x-amz-credential", "x-amz-security-token",
    "x-goog-signature", "x-goog-credential", "token", "access_token", "id_token", "refresh_token",
    "api_key", "apikey", "client_secret", "secret",
)  # fmt: skip
_FIELD_RE = re.compile(rf"(?i)(?<![A-Za-z0-9])((?:{'|'.join(map(re.escape, _FIELD_NAMES))})=)([^;&#\s\"']+)")
_BEARER_RE = re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]{12,}")
_JWT_RE = re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")
_PEM_RE = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)", re.DOTALL)
# tokens whose prefix names the provider (GitHub, GitLab, Slack, Hugging Face, OpenAI, AWS key ids, Stripe)
_TOKEN_RE = re.compile(
    r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|glpat-[A-Za-z0-9_-]{20,}"
    r"|xox[abposr]-[A-Za-z0-9-]{10,}|hf_[A-Za-z0-9]{20,}|sk-(?:proj-)?[A-Za-z0-9]{20,}"
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}|[rs]k_live_[A-Za-z0-9]{16,})\b"
)
# webhook URLs carry their secret in the path: everything after the host goes
_WEBHOOK_RE = re.compile(
    r"(?i)(https?://(?:hooks\.slack\.com|discord(?:app)?\.com/api/webhooks|[^/\s]*webhook[^/\s]*"
    r"|[^\s]*?/webhooks?(?=/)))(/[^\s\"']*)"
)
# a cheap first look: most strings (paths, names, numbers as text) have none of these
_HINT_RE = re.compile(r"(?i)=|bearer|eyJ|PRIVATE KEY|gh[pousr]_|github_pat_|glpat-|xox|hf_|sk-|AKIA|ASIA|_live_|hook")


def redact_text(text: str) -> str:
    """``text`` with every secret-shaped part replaced by ``***REDACTED***``.

    Example:
        >>> redact_text("DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=abc+d/e==;")
        'DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=***REDACTED***;'
        >>> redact_text("Bearer abcdefghijklmnop")
        'Bearer ***REDACTED***'
        >>> redact_text("https://hooks.slack.com/services/T000/B000/XXXX")
        'https://hooks.slack.com/***REDACTED***'
        >>> redact_text("https://acct.blob.core.windows.net/c/x?sv=2022&sig=abc%2Bd")
        'https://acct.blob.core.windows.net/c/x?sv=2022&sig=***REDACTED***'
        >>> [redact_text(v) for v in ("3e-4", "/data/imagenet/train", "bert-base-uncased", "s3://bucket/exp")]
        ['3e-4', '/data/imagenet/train', 'bert-base-uncased', 's3://bucket/exp']
    """
    if not _HINT_RE.search(text):
        return text
    text = _PEM_RE.sub(REDACTED, text)
    text = _JWT_RE.sub(REDACTED, text)
    text = _TOKEN_RE.sub(REDACTED, text)
    text = _WEBHOOK_RE.sub(lambda m: f"{m[1]}/{REDACTED}", text)
    text = _BEARER_RE.sub(lambda m: f"{m[1]}{REDACTED}", text)
    return _FIELD_RE.sub(lambda m: m[1] + REDACTED if m[2] != REDACTED else m[0], text)
