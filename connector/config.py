"""The configuration: one YAML file, validated by pydantic, secrets from the environment.

``${NAME}`` (or ``${NAME:-default}``) anywhere in a string value is replaced by the environment
variable. Every problem is collected and reported at once with its path, e.g.
``crm.url: field required``; :func:`load_config` then raises :class:`ConfigError` (exit code 2).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from uuid import UUID

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from mapping.addresses import normalise_email
from mapping.crm_names import CANCELLED_STATUS, CrmNames
from mapping.errors import ConfigError
from mapping.timezones import is_known_zone

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_db_url(value: str) -> str:
    try:
        make_url(value)
    except ArgumentError as exc:
        raise ValueError("not a valid SQLAlchemy database URL") from exc
    return value


class NamesConfig(_Section):
    invitation_flag: str = "UsrInvitationAvailable"
    location: str = "Location"
    invitation_mailbox_setting: str = "UsrInvitationMailbox"
    default_timezone_setting: str = "DefaultTimeZone"

    @model_validator(mode="after")
    def _identifiers(self) -> NamesConfig:
        problems = self.to_names().problems()
        if problems:
            raise ValueError("; ".join(f"{name}: {text}" for name, text in problems))
        return self

    def to_names(self) -> CrmNames:
        return CrmNames(**self.model_dump())


class CrmConfig(_Section):
    url: str
    db_schema: str | None = None
    names: NamesConfig = NamesConfig()
    cancelled_status_ids: list[UUID] = Field(default_factory=lambda: [CANCELLED_STATUS])
    read_only: bool = True
    batch_size: int = Field(500, ge=1, le=10_000)

    _url = field_validator("url")(_check_db_url)

    @field_validator("db_schema")
    @classmethod
    def _schema(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$", value):
            raise ValueError("must be a plain SQL identifier")
        return value


class StateConfig(_Section):
    url: str = "sqlite:///connector-state.db"
    #: how long a SQLite writer waits for another one before giving up
    busy_timeout_seconds: float = Field(30.0, gt=0, le=600)
    #: encrypts the delegated-mode token caches in the state store (required by graph.mode
    #: delegated); at least 32 characters, e.g. ``openssl rand -base64 32``
    token_cache_key: SecretStr | None = None
    #: the full reconcile empties the stored bytes (the MIME) of messages delivered or
    #: superseded more than this many days ago; the message log rows stay. null keeps them
    keep_message_bytes_days: int | None = Field(30, ge=1, le=36500)

    _url = field_validator("url")(_check_db_url)

    @field_validator("token_cache_key")
    @classmethod
    def _key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters (e.g. openssl rand -base64 32)")
        return value


class DirectoryConfig(_Section):
    path: Path = Path("outbox")


class CertificateConfig(_Section):
    pfx_path: Path | None = None
    passphrase: SecretStr | None = None
    pem_path: Path | None = None
    public_certificate_path: Path | None = None
    thumbprint: str | None = None

    @model_validator(mode="after")
    def _one_form(self) -> CertificateConfig:
        if (self.pfx_path is None) == (self.pem_path is None):
            raise ValueError("give either pfx_path or pem_path")
        if (
            self.pem_path is not None
            and self.public_certificate_path is None
            and not self.thumbprint
        ):
            raise ValueError("pem_path needs public_certificate_path (or a SHA-1 thumbprint)")
        return self

    def files(self) -> dict[str, Path]:
        """The files this credential reads, by config key."""
        named = {
            "graph.certificate.pfx_path": self.pfx_path,
            "graph.certificate.pem_path": self.pem_path,
            "graph.certificate.public_certificate_path": self.public_certificate_path,
        }
        return {key: path for key, path in named.items() if path is not None}


class GraphConfig(_Section):
    tenant_id: str
    client_id: str
    client_secret: SecretStr | None = None
    certificate: CertificateConfig | None = None
    mode: Literal["app", "delegated"] = "app"
    authority_host: str = "https://login.microsoftonline.com"
    base_url: str = "https://graph.microsoft.com/v1.0"
    ca_bundle: Path | None = None
    #: an https proxy for login and Graph (environment proxy variables are NOT used)
    proxy: str | None = None
    timeout_seconds: float = Field(30.0, gt=0, le=600)
    #: delegated scopes asked at ``connector login`` (app-only mode uses ``{graph}/.default``);
    #: User.ReadBasic.All only lets ``connector check`` look the mailboxes up
    scopes: list[str] = Field(
        default_factory=lambda: ["Mail.Send", "Mail.Send.Shared", "User.ReadBasic.All"]
    )

    @field_validator("authority_host", "base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @model_validator(mode="after")
    def _credential(self) -> GraphConfig:
        if self.mode == "app" and (self.client_secret is None) == (self.certificate is None):
            raise ValueError("app mode needs exactly one of client_secret or certificate")
        for name in ("authority_host", "base_url"):
            if not str(getattr(self, name)).startswith("https://"):
                raise ValueError(f"{name} must be an https:// URL")
        if self.proxy is not None and not self.proxy.startswith(("http://", "https://")):
            raise ValueError("proxy must be an http:// or https:// URL")
        return self

    @property
    def authority(self) -> str:
        return f"{self.authority_host}/{self.tenant_id}"

    def files(self) -> dict[str, Path]:
        """Every file the Graph section reads, by config key."""
        found = dict(self.certificate.files()) if self.certificate is not None else {}
        if self.ca_bundle is not None:
            found["graph.ca_bundle"] = self.ca_bundle
        return found


class SmtpConfig(_Section):
    host: str
    port: int = Field(587, ge=1, le=65535)
    security: Literal["starttls", "ssl", "none"] = "starttls"
    username: str | None = None
    password: SecretStr | None = None
    timeout_seconds: float = Field(30.0, gt=0, le=600)
    ca_bundle: Path | None = None
    local_hostname: str | None = None

    @model_validator(mode="after")
    def _auth(self) -> SmtpConfig:
        if (self.username is None) != (self.password is None):
            raise ValueError("give both username and password, or neither")
        if self.password is not None and self.security == "none":
            raise ValueError("a password is only sent over TLS: set security to starttls or ssl")
        return self


class MailboxesConfig(_Section):
    fallback: str | None = None
    fallback_name: str | None = None
    users: dict[str, str] = Field(default_factory=dict)
    max_recipients_per_message: int = Field(500, ge=1, le=500)
    rate_per_minute: int = Field(30, ge=1, le=10_000)
    max_concurrent: int = Field(4, ge=1, le=64)
    #: the window ``rate_per_minute`` counts in; 60 (Exchange's minute) except in tests and
    #: benchmarks that scale time
    rate_window_seconds: float = Field(60.0, gt=0, le=3600)

    @field_validator("fallback")
    @classmethod
    def _fallback(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        address = normalise_email(value)
        if address is None:
            raise ValueError(f"'{value}' is not a valid e-mail address")
        return address

    @field_validator("users")
    @classmethod
    def _users(cls, value: dict[str, str]) -> dict[str, str]:
        out = {}
        bad = []
        for login, raw in value.items():
            address = normalise_email(raw)
            if address is None:
                bad.append(f"{login}: '{raw}' is not a valid e-mail address")
            else:
                out[login.lower()] = address
        if bad:
            raise ValueError("; ".join(bad))
        return out


class InvitationsConfig(_Section):
    language: Literal["ru", "en"] = "ru"
    default_timezone: str = "Europe/Moscow"
    uid_domain: str = "bpmsoft-connector.local"
    include_notes: bool = False

    @field_validator("default_timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        if not is_known_zone(value):
            raise ValueError(f"unknown time zone '{value}'")
        return value

    @field_validator("uid_domain")
    @classmethod
    def _domain(cls, value: str) -> str:
        if not re.match(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$", value):
            raise ValueError("must be a domain name such as example.com")
        return value.lower()


class DeliveryConfig(_Section):
    max_attempts: int = Field(8, ge=1, le=100)
    retry_max_seconds: float = Field(120.0, ge=0, le=3600)
    backoff_initial_seconds: float = Field(30.0, ge=0)
    backoff_max_seconds: float = Field(3600.0, ge=0)
    claim_seconds: float = Field(300.0, ge=5)
    poll_seconds: float = Field(5.0, gt=0)
    #: threads of ``connector run`` that deliver outbox messages in parallel (per instance)
    workers: int = Field(8, ge=1, le=64)


class SyncConfig(_Section):
    interval_seconds: float = Field(60.0, gt=0)
    reconcile_minutes: float = Field(60.0, gt=0)
    overlap_seconds: float = Field(300.0, ge=0)
    cancel_removed_participants: bool = True
    invite_new_participants: bool = False
    skip_past_meetings: bool = True
    lease_seconds: float = Field(120.0, ge=5)


class ApiConfig(_Section):
    enabled: bool = True
    listen: str = "127.0.0.1:8080"
    #: bearer tokens of the trusted callers (the CRM server); give them from the environment
    tokens: list[SecretStr] = Field(default_factory=list)
    #: base URL under which the CRM's users reach the dialog (for the signed links)
    public_url: str | None = None
    link_ttl_seconds: int = Field(600, ge=10, le=86400)
    #: key for signing dialog links; derived from the tokens when not set
    link_secret: SecretStr | None = None
    #: failed authentications allowed per client address within the window, then 429
    failed_auth_limit: int = Field(10, ge=1, le=10_000)
    failed_auth_window_seconds: float = Field(300.0, gt=0, le=86400)
    #: addresses of reverse proxies whose X-Forwarded-For names the real client
    trusted_proxies: list[str] = Field(default_factory=list)
    #: origins allowed to show the dialog in a frame (CSP frame-ancestors); none by default
    frame_ancestors: list[str] = Field(default_factory=list)

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
            raise ValueError("must be HOST:PORT")
        return value

    @field_validator("tokens")
    @classmethod
    def _tokens(cls, value: list[SecretStr]) -> list[SecretStr]:
        # an empty entry (``${CONNECTOR_API_TOKEN:-}`` with the variable unset) is no token
        value = [token for token in value if token.get_secret_value()]
        for index, token in enumerate(value):
            text = token.get_secret_value()
            # ASCII: HTTP header values reach the server as Latin-1, so any other character
            # could never match
            if len(text) < 16 or not (text.isascii() and text.isprintable()) or " " in text:
                raise ValueError(
                    f"token {index + 1} must be at least 16 printable ASCII characters without "
                    "spaces"
                )
        return value

    @field_validator("link_secret")
    @classmethod
    def _link_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters")
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        assert value is not None
        if not re.match(r"^https?://[^\s/?#]+(/[^\s?#]*)?$", value):
            raise ValueError("must be an http(s):// URL without query")
        return value.rstrip("/")

    @field_validator("frame_ancestors")
    @classmethod
    def _ancestors(cls, value: list[str]) -> list[str]:
        for origin in value:
            if not re.match(r"^https?://[A-Za-z0-9.:*-]+$", origin):
                raise ValueError(f"'{origin}' is not an origin such as https://crm.example.com")
        return value


class LoggingConfig(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["json", "kv"] = "kv"


class Config(_Section):
    crm: CrmConfig
    state: StateConfig = StateConfig()
    transport: Literal["directory", "graph", "smtp"] = "directory"
    directory: DirectoryConfig = DirectoryConfig()
    graph: GraphConfig | None = None
    smtp: SmtpConfig | None = None
    mailboxes: MailboxesConfig = MailboxesConfig()
    invitations: InvitationsConfig = InvitationsConfig()
    delivery: DeliveryConfig = DeliveryConfig()
    sync: SyncConfig = SyncConfig()
    api: ApiConfig = ApiConfig()
    logging: LoggingConfig = LoggingConfig()

    @model_validator(mode="after")
    def _transport_section(self) -> Config:
        problems = []
        if self.transport == "graph" and self.graph is None:
            problems.append("transport is 'graph' but the graph section is missing")
        if self.transport == "smtp" and self.smtp is None:
            problems.append("transport is 'smtp' but the smtp section is missing")
        if (
            self.transport == "graph"
            and self.graph is not None
            and self.graph.mode == "delegated"
            and self.state.token_cache_key is None
        ):
            problems.append(
                "state.token_cache_key is required with graph.mode delegated (it encrypts the "
                "users' stored sign-ins)"
            )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def secrets(self) -> list[str]:
        """Every secret value in the config, for log scrubbing."""
        found: list[str] = []
        if self.state.token_cache_key:
            found.append(self.state.token_cache_key.get_secret_value())
        if self.graph is not None:
            if self.graph.client_secret:
                found.append(self.graph.client_secret.get_secret_value())
            cert = self.graph.certificate
            if cert is not None and cert.passphrase:
                found.append(cert.passphrase.get_secret_value())
        if self.smtp is not None and self.smtp.password:
            found.append(self.smtp.password.get_secret_value())
        found.extend(t.get_secret_value() for t in self.api.tokens)
        if self.api.link_secret:
            found.append(self.api.link_secret.get_secret_value())
        for url in (self.crm.url, self.state.url):
            password = make_url(url).password
            if password:
                found.append(str(password))
        return [s for s in found if s]


def expand_env(
    data: Any, environ: Mapping[str, str], path: str = "", language: str = "en"
) -> tuple[Any, list[tuple[str, str]]]:
    """Replace ``${NAME}`` references in every string; return the data and the problems."""
    problems: list[tuple[str, str]] = []
    if isinstance(data, dict):
        out: dict[Any, Any] = {}
        for key, value in data.items():
            out[key], sub = expand_env(
                value, environ, f"{path}.{key}" if path else str(key), language
            )
            problems.extend(sub)
        return out, problems
    if isinstance(data, list):
        items = []
        for index, value in enumerate(data):
            item, sub = expand_env(value, environ, f"{path}[{index}]", language)
            items.append(item)
            problems.extend(sub)
        return items, problems
    if isinstance(data, str):

        def repl(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in environ:
                return environ[name]
            if default is not None:
                return default
            text = (
                f"переменная окружения {name} не задана"
                if language == "ru"
                else f"environment variable {name} is not set"
            )
            problems.append((path, text))
            return ""

        return _ENV_REF.sub(repl, data), problems
    return data, problems


_PYDANTIC_RU = {
    "missing": "обязательное поле не задано",
    "extra_forbidden": "неизвестный ключ",
    "literal_error": "недопустимое значение",
    "bool_parsing": "ожидается true или false",
    "int_parsing": "ожидается целое число",
    "float_parsing": "ожидается число",
    "uuid_parsing": "ожидается UUID",
    "string_type": "ожидается строка",
    "dict_type": "ожидается раздел (словарь)",
    "list_type": "ожидается список",
    "greater_than": "значение слишком мало",
    "greater_than_equal": "значение слишком мало",
    "less_than_equal": "значение слишком велико",
    "model_type": "ожидается раздел (словарь)",
}


def _problems(error: ValidationError, language: str) -> list[tuple[str, str]]:
    out = []
    for item in error.errors(include_url=False, include_input=False):
        loc = ".".join(str(p) for p in item["loc"] if not str(p).startswith("function-"))
        kind = item["type"]
        if kind == "missing":
            text = "field required"
        elif kind == "extra_forbidden":
            text = "unknown key"
        elif kind == "value_error":
            text = str(item["msg"]).removeprefix("Value error, ")
        else:
            text = str(item["msg"])
        if language == "ru" and kind in _PYDANTIC_RU:
            text = _PYDANTIC_RU[kind]
        out.append((loc, text))
    return out


def parse_config(
    raw: Any, environ: Mapping[str, str] | None = None, language: str = "en"
) -> Config:
    """Validate an already-parsed YAML document. Raises ConfigError with every problem."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError([("", "the file must be a YAML mapping of sections")])
    data, problems = expand_env(raw, os.environ if environ is None else environ, "", language)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        unset = {path for path, _ in problems}
        problems.extend(p for p in _problems(exc, language) if p[0] not in unset)
        raise ConfigError(problems) from None
    problems.extend(file_problems(config))
    if problems:
        raise ConfigError(problems)
    return config


def file_problems(config: Config) -> list[tuple[str, str]]:
    """Files the chosen transport reads must exist and be readable; a certificate must open
    with its passphrase. Found at start, not at the first send."""
    found: list[tuple[str, str]] = []
    files: dict[str, Path] = {}
    if config.transport == "graph" and config.graph is not None:
        files.update(config.graph.files())
    if config.transport == "smtp" and config.smtp is not None and config.smtp.ca_bundle:
        files["smtp.ca_bundle"] = config.smtp.ca_bundle
    for key, path in files.items():
        try:
            data = path.read_bytes()
        except IsADirectoryError:
            found.append((key, f"{path} is a folder, not a file"))
            continue
        except OSError as exc:
            found.append((key, f"cannot read {path}: {exc.strerror or type(exc).__name__}"))
            continue
        problem = _certificate_problem(key, data, config)
        if problem:
            found.append((key, f"{path}: {problem}"))
    return found


def _certificate_problem(key: str, data: bytes, config: Config) -> str | None:
    """Why a certificate or key file cannot be used (None when it can)."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import load_pem_private_key, pkcs12

    cert = config.graph.certificate if config.graph is not None else None
    secret = cert.passphrase.get_secret_value().encode() if cert and cert.passphrase else None
    try:
        if key.endswith("pfx_path"):
            pkcs12.load_key_and_certificates(data, secret)
        elif key.endswith("pem_path"):
            load_pem_private_key(data, secret)
        elif key.endswith("public_certificate_path") or key.endswith("ca_bundle"):
            x509.load_pem_x509_certificates(data)
    except (ValueError, TypeError):
        return "not a usable certificate or key (wrong format or passphrase)"
    return None


def load_config(
    path: str | Path, environ: Mapping[str, str] | None = None, language: str = "en"
) -> Config:
    """Read and validate the YAML file at ``path``."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([("", f"file not found: {file}")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([("", f"cannot read {file}: {type(exc).__name__}")]) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError([("", f"{file}: {where}{problem}")]) from None
    return parse_config(raw, environ, language)
