"""No secret in anything a deployment shows, as real processes at DEBUG: a full run with known
secret values in the environment (client secret, certificate passphrase, SMTP password, API
tokens, the token cache key), through the CLI (check, invite, login, status in text and JSON,
retry) and ``connector run`` with sync updates and injected faults (an expired token, a 403
whose message quotes the secret and a token, the token endpoint refusing the app with the
secret in its description, a 503 there, a revoked sign-in), for app-only Graph with a secret
and with a certificate, delegated Graph, and SMTP. Every byte the processes wrote, every error
the state store kept and the state database itself are searched for every secret and for every
token and device code the fake identity platform issued.

(``tests/test_secrets_stay_secret.py`` does the same in-process, with the raw log records before
the scrubber; this one covers what only whole processes show: the CLI's own output, ``status``,
``check``, the service's log, and the secrets coming in through ``${VARIABLES}``.)"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from sqlalchemy import create_engine

from connector.crm.sample import CrmWriter, ManualExample, manual_example
from connector.state.store import StateStore
from mapping.identity import meeting_uid
from tests.support.cli import ROOT, cli_env, run_cli, write_config
from tests.support.deployment import Deployment, wait_for
from tests.support.fake_graph import AppCertificate, FakeGraphProcess, start_process
from tests.support.graph_env import FALLBACK, PERSONAL, PUBLIC_CLIENT_ID, STAS
from tests.support.smtp_server import PASSWORD as SMTP_PASSWORD
from tests.support.smtp_server import smtp_server

pytestmark = pytest.mark.slow

CLIENT_ID = "5b1e7c2d-secrets-test-app"
SECRETS = {
    "GRAPH_CLIENT_SECRET": "Zq8~client+secret/with=odd&chars-4f1",
    "GRAPH_CERT_PASSPHRASE": "Cert pass/phrase+42 never-shown",
    "WRONG_CERT_PASSPHRASE": "Cert pass/phrase+42 mistyped",
    "SMTP_PASSWORD": SMTP_PASSWORD,
    "WRONG_SMTP_PASSWORD": SMTP_PASSWORD + "-mistyped",
    "API_TOKEN_1": "api-token-7d9c1f0e5b2a4c6e8f00112233445566",
    "API_TOKEN_2": "api/token+two=8899aabbccddeeff",
    "TOKEN_CACHE_KEY": "tck/9f8e7d6c+5b4a=39281706-aa55-cafe-0042-key",
}
ROOMS = iter(range(700, 800))


@dataclass
class Run:
    """Every byte the processes of the run wrote, and how to make more of it."""

    folder: Path
    fake: FakeGraphProcess
    cert: AppCertificate
    writer: CrmWriter
    ex: ManualExample
    meeting: Any = None
    texts: list[str] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)
    states: list[Path] = field(default_factory=list)

    def config(self, name: str, fmt: str = "kv", **sections: Any) -> Path:
        state = self.folder / f"{name}-state.db"
        self.states.append(state)
        data: dict[str, Any] = {
            "crm": {"url": f"sqlite:///{self.folder / 'crm.db'}"},
            "state": {"url": f"sqlite:///{state}", "token_cache_key": "${TOKEN_CACHE_KEY}"},
            "transport": "graph",
            "mailboxes": {"fallback": FALLBACK},
            "sync": {"interval_seconds": 0.3, "overlap_seconds": 5, "reconcile_minutes": 0.02},
            "delivery": {
                "poll_seconds": 0.2,
                "retry_max_seconds": 1,
                "backoff_initial_seconds": 0.3,
                "backoff_max_seconds": 1,
                "max_attempts": 5,
            },
            "api": {"enabled": False, "tokens": ["${API_TOKEN_1}", "${API_TOKEN_2}"]},
            "logging": {"format": fmt, "level": "DEBUG"},
            **sections,
        }
        return write_config(self.folder / f"{name}.yaml", data)

    def cli(self, config: Path, *args: str, expect: int | None = 0) -> str:
        done = run_cli(
            "--config", str(config), "--log-level", "DEBUG", *args, env=cli_env(**SECRETS)
        )
        out = done.stdout + done.stderr
        self.texts.append(out)
        if expect is not None:
            assert done.returncode == expect, (args, out)
        return out

    def start(self, config: Path, name: str) -> subprocess.Popen[str]:
        """``connector run`` (its log level is the config's: DEBUG)."""
        log = self.folder / f"{name}.log"
        self.logs.append(log)
        with open(log, "w", encoding="utf-8") as out:
            return subprocess.Popen(
                [sys.executable, "-m", "connector", "--config", str(config), "run"],
                cwd=ROOT,
                env=cli_env(**SECRETS),
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
            )

    def new_meeting(self) -> str:
        """A meeting of its own for each deployment (each has its own UID map, and the
        calendars keep the highest SEQUENCE they saw of a UID)."""
        start = datetime.now(UTC) + timedelta(days=3, hours=next(ROOMS) - 700)
        self.meeting = self.writer.activity(
            "Встреча с клиентом",
            start,
            start + timedelta(minutes=30),
            location="Кабинет 404",
            owner_contact_id=self.ex.supervisor_contact,
            participants=[self.ex.supervisor_contact, self.ex.denis, self.ex.liza],
        )
        return str(self.meeting)

    def move(self) -> str:
        room = f"Кабинет {next(ROOMS)}"
        self.writer.update_activity(self.meeting, location=room)
        return room

    def arrived(self, room: str) -> bool:
        uid = meeting_uid(self.meeting, "bpmsoft-connector.local")
        entry = self.fake.client.calendars().get("denis@ivanov.by", {}).get(uid)
        return entry is not None and entry["location"] == room

    def statuses(self, config: Path) -> None:
        for args in ((), ("--json",), (str(self.meeting),), (str(self.meeting), "--json")):
            self.cli(config, "status", *args)

    def stored_errors(self) -> list[str]:
        found = []
        for path in self.states:
            store = StateStore.from_url(f"sqlite:///{path}")
            try:
                messages = store.messages()
                found += [f"{m.last_error} {m.error_code}" for m in messages]
                found += [f"{a.detail}" for a in store.attempts([m.id for m in messages])]
            finally:
                store.close()
        return found

    def everything(self) -> str:
        logs = [p.read_text(encoding="utf-8") for p in self.logs]
        return "\n".join([*self.texts, *logs, *self.stored_errors()])


#: a piece of a JWT (its header, or more): no output has a reason to show one
JWT_PIECE = re.compile(r"eyJ[A-Za-z0-9_-]{10,}")


def pieces(text: str, size: int) -> set[str]:
    """Every run of ``size`` characters of ``text``: a secret cut short is still a leak."""
    return {text[i : i + size] for i in range(max(1, len(text) - size + 1))}


def secret_forms(secret: str) -> set[str]:
    """The secret as written, URL-encoded (a form body, a query), JSON-escaped, and every
    12-character piece of it."""
    whole = {secret, quote(secret, safe=""), quote_plus(secret), json.dumps(secret)[1:-1]}
    return whole | pieces(secret, 12)


def token_forms(token: str) -> set[str]:
    """What identifies an issued token: a JWT's payload and every 16-character piece of its
    signature; every 16-character piece of an opaque token (refresh token, device code)."""
    parts = token.split(".")
    if len(parts) == 3:
        return {parts[1]} | pieces(parts[2], 16)
    return pieces(token, 16)


@pytest.fixture
def run(tmp_path: Path) -> Iterator[Run]:
    cert = AppCertificate.create(tmp_path / "cert", SECRETS["GRAPH_CERT_PASSPHRASE"])
    setup = {
        "apps": [
            {
                "client_id": CLIENT_ID,
                "secret": SECRETS["GRAPH_CLIENT_SECRET"],
                "certificates": [cert.cert_pem],
            },
            {"client_id": PUBLIC_CLIENT_ID, "public": True},
        ],
        "mailboxes": [PERSONAL, FALLBACK, STAS],
    }
    with start_process(tmp_path / "fake", setup) as fake:
        writer = CrmWriter(create_engine(f"sqlite:///{tmp_path / 'crm.db'}"))
        ex = manual_example(writer, start=datetime.now(UTC) + timedelta(days=2))
        yield Run(tmp_path, fake, cert, writer, ex)
        writer.engine.dispose()


def test_a_full_run_shows_no_secret_anywhere(run: Run, tmp_path: Path) -> None:
    fake = run.fake
    graph = fake.graph_section(client_id=CLIENT_ID, timeout_seconds=2)

    # -- app-only with a client secret (key=value logs) -----------------------------------
    app = run.config("app", graph={**graph, "client_secret": "${GRAPH_CLIENT_SECRET}"})
    run.cli(app, "check")
    run.cli(app, "invite", run.new_meeting(), "--as", "Supervisor")
    service = run.start(app, "app-run")
    try:
        fake.client.expire_tokens()  # 401, a fresh token, sent
        room = run.move()
        wait_for(lambda: run.arrived(room), 60, 0.2)
        token = next(t for t in fake.client.issued_tokens() if t.count(".") == 2)
        fake.client.fail(  # a 403 whose message quotes the client secret and a token
            {
                "status": 403,
                "code": "ErrorAccessDenied",
                "message": f"Access is denied for {SECRETS['GRAPH_CLIENT_SECRET']} with {token}",
            }
        )
        run.move()
        wait_for(lambda: fake.client.stats()["faults_left"] == 0, 60, 0.2)
        fake.client.expire_tokens()
        fake.client.fail(  # the platform refuses the app and quotes the secret
            {
                "target": "token",
                "status": 401,
                "code": "invalid_client",
                "message": "AADSTS7000215: Invalid client secret provided: "
                + SECRETS["GRAPH_CLIENT_SECRET"],
            },
            {"target": "token", "status": 503, "retry_after": 1},
        )
        run.move()
        wait_for(lambda: fake.client.stats()["faults_left"] == 1, 60, 0.2)
        room = run.move()
        wait_for(lambda: run.arrived(room), 60, 0.2)
    finally:
        assert Deployment.stop(service, signal.SIGTERM) == 0
    run.statuses(app)
    fake.client.fail(
        {
            "target": "token",
            "status": 401,
            "code": "invalid_client",
            "message": "AADSTS7000215: Invalid client secret " + SECRETS["GRAPH_CLIENT_SECRET"],
        }
    )
    fake.client.expire_tokens()
    assert "invalid_client" in run.cli(app, "check", expect=1)
    run.cli(app, "retry", expect=None)

    # -- app-only with a certificate (JSON logs), then a mistyped passphrase --------------
    cert = run.cert
    certificate = {"pfx_path": str(cert.pfx_path), "passphrase": "${GRAPH_CERT_PASSPHRASE}"}
    with_cert = run.config("cert", "json", graph={**graph, "certificate": certificate})
    run.cli(with_cert, "check")
    run.cli(with_cert, "invite", run.new_meeting(), "--as", "Supervisor")
    mistyped = {**certificate, "passphrase": "${WRONG_CERT_PASSPHRASE}"}
    bad_cert = run.config("bad-cert", "json", graph={**graph, "certificate": mistyped})
    # found when the config is loaded: check reports it, invite refuses to start
    assert "not a usable certificate" in run.cli(bad_cert, "check", expect=1)
    run.cli(bad_cert, "invite", str(run.meeting), "--as", "Supervisor", expect=2)

    # -- delegated: sign-in, a send, a refresh, a revoked sign-in -------------------------
    delegated = run.config(
        "delegated",
        graph={
            **fake.graph_section(client_id=PUBLIC_CLIENT_ID, timeout_seconds=2),
            "mode": "delegated",
        },
    )
    fake.client.configure(device_auto_approve=PERSONAL, device_pending_polls=0)
    signed_in = run.cli(delegated, "login", "--as", "Supervisor", "--timeout", "30")
    assert "ivanov@ivanov.ru" in signed_in
    run.cli(delegated, "invite", run.new_meeting(), "--as", "Supervisor")
    run.cli(delegated, "check")
    service = run.start(delegated, "delegated-run")
    try:
        fake.client.expire_tokens()  # 401, the refresh token redeemed, the cache stored back
        room = run.move()
        wait_for(lambda: run.arrived(room), 60, 0.2)
        fake.client.revoke(PERSONAL)
        fake.client.expire_tokens()  # the next refresh gets invalid_grant: sign in again
        run.move()
        store = StateStore.from_url(f"sqlite:///{run.states[-1]}")
        try:
            wait_for(lambda: store.messages()[-1].status == "parked", 60, 0.2)
        finally:
            store.close()
    finally:
        assert Deployment.stop(service, signal.SIGTERM) == 0
    run.statuses(delegated)
    run.cli(delegated, "check", expect=1)

    # -- SMTP, then a mistyped password ---------------------------------------------------
    with smtp_server(tmp_path / "smtp") as server:
        smtp = run.config(
            "smtp", transport="smtp", smtp=server.section("starttls", password="${SMTP_PASSWORD}")
        )
        run.cli(smtp, "check")
        run.cli(smtp, "invite", run.new_meeting(), "--as", "Supervisor")
        wrong = server.section("starttls", password="${WRONG_SMTP_PASSWORD}")
        bad_smtp = run.config("bad-smtp", transport="smtp", smtp=wrong)
        assert "535" in run.cli(bad_smtp, "check", expect=1)
        run.cli(bad_smtp, "invite", str(run.meeting), "--as", "Supervisor", expect=4)
        run.statuses(bad_smtp)
        assert len(server.handler.received) == 1

    # -- the search -----------------------------------------------------------------------
    out = run.everything()
    # the run did what it should, and the texts that quoted secrets are there, masked
    for marker in (
        "event=graph_send",
        '"event": "message_sent"',
        "event=graph_unauthorized",
        "event=message_parked",
        "ErrorAccessDenied",
        "Access is denied for ***",
        "invalid_client",
        "HTTP Error: 503",
        "not a usable certificate",
        "invalid_grant",
        "535",
        "event=smtp_send",
    ):
        assert marker in out, marker
    issued = fake.client.issued_tokens()
    assert len(issued) >= 8  # access, refresh and ID tokens, the device code
    leaks = [name for name, secret in SECRETS.items() for f in secret_forms(secret) if f in out]
    leaks += [f"token #{i}" for i, t in enumerate(issued) for f in token_forms(t) if f in out]
    leaks += JWT_PIECE.findall(out)
    assert not leaks, sorted(set(leaks))
    # the delegated sign-in is stored encrypted: no token in the state databases' bytes
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("*-state.db*"))
    assert b"SQLite format 3" in stored
    in_files = [i for i, t in enumerate(issued) for f in token_forms(t) if f.encode() in stored]
    assert not in_files, in_files
