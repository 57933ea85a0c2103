"""The bad-input corpus (``tests/corpus/crm_inputs.yaml``): every entry gives its expected
outcome, and every message sent is intact: parsed by the standard library and vobject,
checked by libical, with exactly the headers we write and no markup from the CRM."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import delete

from mapping.errors import Refusal
from tests.support.checkers import MESSAGE_HEADERS, TEMPLATE_TAGS, html_tags, libical_verdicts
from tests.support.world import World

CORPUS = yaml.safe_load((Path(__file__).parent / "corpus" / "crm_inputs.yaml").read_text("utf-8"))


def apply(w: World, entry: dict[str, Any]) -> None:
    changes: dict[str, Any] = {}
    for field, column in (("title", "Title"), ("location", "location")):
        if field in entry:
            changes[column] = entry[field]
        if f"{field}_repeat" in entry:
            text, times = entry[f"{field}_repeat"]
            changes[column] = text * times
    start = w.ex_start() + timedelta(days=entry.get("start_days", 0))
    if "start_days" in entry or "duration_minutes" in entry:
        changes["StartDate"] = start
        changes["DueDate"] = start + timedelta(minutes=entry.get("duration_minutes", 30))
    if changes:
        w.writer.update_activity(w.ex.meeting, **changes)
    if "participants" in entry:
        p = w.writer.t.activity_participant
        with w.writer.engine.begin() as conn:
            conn.execute(delete(p).where(p.c.ActivityId == w.ex.meeting))
        for name, email in entry["participants"]:
            if "name_repeat" in entry:
                name = entry["name_repeat"][0] * entry["name_repeat"][1]
            w.writer.add_participant(w.ex.meeting, w.writer.contact(name, email))


@pytest.mark.parametrize("entry", CORPUS, ids=[e["name"] for e in CORPUS])
def test_corpus_entry(world: World, entry: dict[str, Any]) -> None:
    apply(world, entry)
    expected = entry["expect"]
    if expected.startswith("refused:"):
        with pytest.raises(Refusal) as refused:
            world.invite()
        assert refused.value.code == expected.split(":", 1)[1]
        assert world.envelopes() == []
        for lang in ("ru", "en"):
            assert refused.value.message(lang)
        return
    result = world.invite()
    assert result.delivered
    if "recipients" in entry:
        assert len(result.recipients_sent()) == entry["recipients"]
    if "skipped" in entry:
        assert len(result.skipped) == entry["skipped"]
    for envelope, message in zip(world.envelopes(), world.sent(), strict=True):
        head = envelope.mime.split(b"\r\n\r\n", 1)[0].decode("ascii")
        names = {
            line.split(":", 1)[0].lower() for line in head.split("\r\n") if line[:1] not in " \t"
        }
        assert names == MESSAGE_HEADERS
        assert not message.message.defects
        assert len(message.message["Subject"]) <= 260
        assert html_tags(message.html_body) <= TEMPLATE_TAGS
        for recipient in envelope.recipients:
            assert "\r" not in recipient and "\n" not in recipient and "@" in recipient
        (verdict,) = libical_verdicts([message.calendar_text])
        assert verdict["parsed"]
        tolerated = {"No value for LOCATION property. Removing entire property:"}
        assert [e for e in verdict["errors"] if str(e).strip() not in tolerated] == []  # type: ignore[union-attr]
