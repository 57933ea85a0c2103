"""The ``connector`` command line as a user runs it: output, language and exit codes
(0 sent, 2 usage or config, 3 refused, 4 delivery failed)."""

from __future__ import annotations

import json
from pathlib import Path

import pexpect
import pytest

from tests.support.checkers import parse_eml
from tests.support.cli import ROOT, cli_env, run_cli, write_config
from tests.support.world import World, base_config


@pytest.fixture
def cfg(world: World, tmp_path: Path) -> Path:
    return write_config(tmp_path / "config.yaml", base_config(world.crm, tmp_path))


def test_draft_shows_the_dialog_of_figure_2_4(world: World, cfg: Path) -> None:
    done = run_cli("--config", str(cfg), "draft", str(world.ex.meeting), "--as", "Supervisor")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "Отправитель: ivanov@ivanov.ru (личная почта)" in out
    assert "[ ] Супервизоров Иван <ivanov@ivanov.ru> (вы" in out
    assert "[x] Шилович Денис <denis@ivanov.by>" in out


def test_draft_json_for_machines(world: World, cfg: Path) -> None:
    done = run_cli("--config", str(cfg), "draft", str(world.ex.meeting), "--as", "Stas", "--json")
    data = json.loads(done.stdout)
    assert data["sender"] == {
        "address": "invitations@ivanov.ru",
        "name": "Стасов Станислав",
        "kind": "fallback",
    }
    assert [p["selected"] for p in data["participants"]] == [True, True, True, True]


def test_invite_sends_and_prints_the_success_message(
    world: World, cfg: Path, tmp_path: Path
) -> None:
    done = run_cli("--config", str(cfg), "invite", str(world.ex.meeting), "--as", "Supervisor")
    assert done.returncode == 0, done.stderr
    assert "Приглашения на встречу успешно отправлены (3)." in done.stdout
    (eml,) = (tmp_path / "outbox").glob("*.eml")
    assert parse_eml(eml).method == "REQUEST"


def test_invite_to_chosen_participants_in_english(world: World, cfg: Path) -> None:
    done = run_cli(
        "--config",
        str(cfg),
        "--lang",
        "en",
        "invite",
        str(world.ex.meeting),
        "--as",
        "Supervisor",
        "--to",
        "dasha@ivanov.by",
        "--to",
        str(world.ex.liza),
    )
    assert done.returncode == 0, done.stderr
    assert "Meeting invitations were sent successfully (2)." in done.stdout


@pytest.mark.parametrize(
    ("login", "code", "text"),
    [
        ("Nobody", 3, "не найден"),
        ("Olga", 3, "нет прав на отправку писем с почтового ящика invitations@ivanov.ru"),
    ],
)
def test_refusals_exit_with_3(world: World, cfg: Path, login: str, code: int, text: str) -> None:
    world.writer.user("Olga", world.writer.contact("Ольга", "olga@ivanov.ru"))
    done = run_cli("--config", str(cfg), "invite", str(world.ex.meeting), "--as", login)
    assert (done.returncode, done.stdout) == (code, "")
    assert text in done.stderr and "Traceback" not in done.stderr


def test_empty_place_is_refused_without_the_flag_and_sent_with_it(world: World, cfg: Path) -> None:
    world.writer.update_activity(world.ex.meeting, location=None)
    args = ["--config", str(cfg), "invite", str(world.ex.meeting), "--as", "Supervisor"]
    refused = run_cli(*args)
    assert refused.returncode == 3
    assert "Не заполнено место встречи. Отправить приглашения без места встречи?" in refused.stderr
    assert run_cli(*args, "--without-location").returncode == 0


@pytest.mark.parametrize(("answer", "code", "files"), [("нет", 3, 0), ("да", 0, 1)])
def test_empty_place_asks_yes_or_no_in_a_terminal(
    world: World, cfg: Path, tmp_path: Path, answer: str, code: int, files: int
) -> None:
    world.writer.update_activity(world.ex.meeting, location="")
    child = pexpect.spawn(
        "python3",
        [
            "-m",
            "connector",
            "--config",
            str(cfg),
            "invite",
            str(world.ex.meeting),
            "--as",
            "Supervisor",
        ],
        cwd=str(ROOT),
        env=cli_env(),
        encoding="utf-8",
        timeout=60,
    )
    child.expect(r"\[да/нет\]")
    child.sendline(answer)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == code
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == files


def test_dry_run_sends_nothing(world: World, cfg: Path, tmp_path: Path) -> None:
    done = run_cli(
        "--config", str(cfg), "invite", str(world.ex.meeting), "--as", "Supervisor", "--dry-run"
    )
    assert done.returncode == 0 and "Пробный запуск" in done.stdout
    assert not (tmp_path / "outbox").exists()


def test_delivery_failure_exits_with_4(world: World, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    cfg = write_config(
        tmp_path / "c.yaml",
        base_config(world.crm, tmp_path, directory={"path": str(blocker / "outbox")}),
    )
    done = run_cli("--config", str(cfg), "invite", str(world.ex.meeting), "--as", "Supervisor")
    assert done.returncode == 4, done.stderr
    assert "ошибка, будет повторено" in done.stdout
    assert "cannot write" in done.stderr


@pytest.mark.parametrize(
    "args",
    [["invite", "not-a-uuid", "--as", "Supervisor"], ["invite"], ["frobnicate"], []],
)
def test_usage_errors_exit_with_2(cfg: Path, args: list[str]) -> None:
    done = run_cli("--config", str(cfg), *args)
    assert done.returncode == 2


def test_unknown_activity_is_refused(cfg: Path) -> None:
    done = run_cli(
        "--config", str(cfg), "invite", "00000000-0000-0000-0000-000000000001", "--as", "Supervisor"
    )
    assert done.returncode == 3 and "не найдена" in done.stderr


def test_status_shows_uid_map_and_message_log(world: World, cfg: Path) -> None:
    assert run_cli("--config", str(cfg), "status").stdout.strip() == (
        "Приглашения ещё не отправлялись."
    )
    run_cli("--config", str(cfg), "invite", str(world.ex.meeting), "--as", "Supervisor")
    done = run_cli("--config", str(cfg), "status", str(world.ex.meeting))
    assert done.returncode == 0
    assert (
        "SEQUENCE=0" in done.stdout
        and "organizer=Супервизоров Иван <ivanov@ivanov.ru>" in done.stdout
    )
    assert "REQUEST SEQUENCE=0 sent attempts=1" in done.stdout
    data = json.loads(run_cli("--config", str(cfg), "status", "--json").stdout)
    (meeting,) = data["meetings"]
    assert meeting["sequence"] == 0 and meeting["messages"]["sent"] == 1
    assert sorted(a["email"] for a in meeting["invited"]) == [
        "dasha@ivanov.by",
        "denis@ivanov.by",
        "liza@ivanov.by",
    ]


def test_demo_runs_the_manual_scenario(tmp_path: Path) -> None:
    done = run_cli("demo", "--dir", str(tmp_path / "demo"), timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    files = sorted((tmp_path / "demo" / "outbox").glob("*.eml"))
    assert len(files) == 3
    parsed = [parse_eml(f) for f in files]
    by_seq = {(p.uid, p.sequence): p for p in parsed}
    updates = [p for p in parsed if p.sequence == 1]
    (update,) = updates
    assert (update.uid, 0) in by_seq
    assert update.vevent.location.value == "Кабинет 505"
    assert "Место: Кабинет 505" in done.stdout
    stas = [
        p for p in parsed if p.message["From"].addresses[0].addr_spec == "invitations@ivanov.ru"
    ]
    assert len(stas) == 1


def test_demo_in_english(tmp_path: Path) -> None:
    done = run_cli("--lang", "en", "demo", "--dir", str(tmp_path / "demo"))
    assert done.returncode == 0, done.stderr
    assert "Meeting invitations were sent successfully (3)." in done.stdout
    assert "Place: Кабинет 505" in done.stdout
