"""User-facing texts in Russian and English, keyed by stable codes.

The codes are the ones the CLI prints, the HTTP API returns in ``code`` and the tests assert.
Texts follow the wording of the BPMSoft add-on's manual where it has one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

LANGUAGES = ("ru", "en")

CATALOG: dict[str, dict[str, str]] = {
    # refusals (exit code 3, HTTP 4xx)
    "not_found": {
        "ru": "Активность {activity_id} не найдена.",
        "en": "Activity {activity_id} was not found.",
    },
    "user_not_found": {
        "ru": "Пользователь «{login}» не найден в CRM.",
        "en": "User '{login}' was not found in the CRM.",
    },
    "user_inactive": {
        "ru": "Пользователь «{login}» неактивен.",
        "en": "User '{login}' is inactive.",
    },
    "category_not_enabled": {
        "ru": "Для категории «{category}» отправка приглашений недоступна. Администратор может "
        "включить признак «Доступно приглашение» в справочнике «Категории активностей».",
        "en": "Invitations are not available for the category '{category}'. An administrator "
        "can tick 'Invitation available' in the 'Activity categories' lookup.",
    },
    "no_mailbox": {
        "ru": "Не удалось отправить приглашение: к пользователю «{login}» не привязана личная "
        "почта, а системная настройка «Почта для отправки приглашений» не заполнена.",
        "en": "The invitation cannot be sent: user '{login}' has no personal mailbox linked and "
        "the system setting 'Mailbox for sending invitations' is empty.",
    },
    "no_mailbox_rights": {
        "ru": "Не удалось отправить приглашение: у пользователя «{login}» нет прав на отправку "
        "писем с почтового ящика {mailbox}. Администратор может выдать право «Отправка писем» "
        "в настройках доступа к ящику.",
        "en": "The invitation cannot be sent: user '{login}' has no right to send e-mails from "
        "the mailbox {mailbox}. An administrator can grant 'Send emails' in the mailbox's "
        "access settings.",
    },
    "no_recipients": {
        "ru": "Нет получателей: ни у одного выбранного участника нет адреса электронной почты.",
        "en": "No recipients: none of the selected participants has an e-mail address.",
    },
    "location_empty": {
        "ru": "Не заполнено место встречи. Отправить приглашения без места встречи?",
        "en": "The meeting place is empty. Send the invitations without a place?",
    },
    "invalid_time": {
        "ru": "У встречи не заданы корректные начало и завершение ({detail}).",
        "en": "The meeting has no valid start and end ({detail}).",
    },
    "unknown_recipient": {
        "ru": "«{recipient}» не является участником активности; приглашать можно только "
        "участников.",
        "en": "'{recipient}' is not a participant of the activity; only participants can be "
        "invited.",
    },
    "meeting_cancelled": {
        "ru": "Встреча отменена, приглашения по ней не отправлялись.",
        "en": "The meeting is cancelled and no invitations were sent for it.",
    },
    "not_logged_in": {
        "ru": "Пользователь «{login}» не выполнил вход в Microsoft 365 для отправки писем. "
        "Администратор может выполнить: connector login --as {login}",
        "en": "User '{login}' has not signed in to Microsoft 365 for sending. An administrator "
        "can run: connector login --as {login}",
    },
    "no_send_as_right_hint": {
        "ru": "Exchange Online отказал в отправке от имени {mailbox} ({remote_code}): "
        "администратор Exchange может выдать пользователю право Send As на этот ящик "
        "(а приложению нужно делегированное разрешение Mail.Send.Shared).",
        "en": "Exchange Online refused to send as {mailbox} ({remote_code}): an Exchange "
        "administrator can grant the user Send As on this mailbox (and the application needs "
        "the delegated permission Mail.Send.Shared).",
    },
    "login_expired_hint": {
        "ru": "Сохранённый вход больше не действует ({detail}).",
        "en": "The stored sign-in is no longer valid ({detail}).",
    },
    "second_instance": {
        "ru": "Другой экземпляр коннектора уже работает с этим хранилищем SQLite ({detail}). "
        "Для нескольких экземпляров используйте PostgreSQL.",
        "en": "Another connector instance already runs on this SQLite store ({detail}). Use "
        "PostgreSQL for several instances.",
    },
    # results
    "sent": {
        "ru": "Приглашения на встречу успешно отправлены ({count}).",
        "en": "Meeting invitations were sent successfully ({count}).",
    },
    "queued": {
        "ru": "Приглашения поставлены в очередь на отправку ({count}).",
        "en": "Meeting invitations were queued for sending ({count}).",
    },
    "nothing_to_send": {
        "ru": "Изменений нет: все выбранные участники уже получили актуальное приглашение.",
        "en": "Nothing changed: every selected participant already has the current invitation.",
    },
    "dry_run": {
        "ru": "Пробный запуск: ничего не отправлено.",
        "en": "Dry run: nothing was sent.",
    },
    # errors
    "usage": {"ru": "Неверный вызов: {detail}", "en": "Invalid usage: {detail}"},
    "config_invalid": {
        "ru": "Ошибки в конфигурации ({count}):",
        "en": "The configuration has errors ({count}):",
    },
    "delivery_failed": {
        "ru": "Ошибка отправки приглашения: {detail}",
        "en": "The invitation could not be delivered: {detail}",
    },
    "delivery_transient": {
        "ru": "Временная ошибка отправки приглашения: {detail}",
        "en": "Temporary delivery error: {detail}",
    },
    "delivery_permanent": {
        "ru": "Ошибка отправки приглашения: {detail}",
        "en": "The invitation could not be delivered: {detail}",
    },
    "crm_unavailable": {
        "ru": "База данных CRM недоступна: {detail}",
        "en": "The CRM database is unavailable: {detail}",
    },
    "state_unavailable": {
        "ru": "Хранилище коннектора недоступно: {detail}",
        "en": "The connector's state store is unavailable: {detail}",
    },
    "state_conflict": {
        "ru": "Встреча одновременно изменена другим процессом; повторите отправку.",
        "en": "The meeting was changed by another process at the same time; send again.",
    },
    "unexpected": {
        "ru": "Непредвиденная ошибка ({kind}). Подробности в журнале.",
        "en": "Unexpected error ({kind}). See the log for details.",
    },
    # connector login (delegated mode)
    "login_not_delegated": {
        "ru": "Вход пользователей нужен только при graph.mode: delegated; в конфигурации "
        "транспорт {transport}, режим {mode}.",
        "en": "Signing users in is only needed with graph.mode: delegated; the configuration "
        "uses transport {transport}, mode {mode}.",
    },
    "login_instructions": {
        "ru": "Чтобы войти от имени пользователя «{login}», откройте {url} и введите код "
        "{user_code} (код действует {minutes} мин.).",
        "en": "To sign in for user '{login}', open {url} and enter the code {user_code} (the "
        "code is valid for {minutes} min).",
    },
    "login_done": {
        "ru": "Вход выполнен: {account}. Токены пользователя «{login}» сохранены в хранилище "
        "коннектора в зашифрованном виде.",
        "en": "Signed in as {account}. The tokens of user '{login}' are stored encrypted in the "
        "connector's state store.",
    },
    "login_failed": {
        "ru": "Вход не выполнен: {detail}",
        "en": "Sign-in failed: {detail}",
    },
    # connector check
    "check_ok": {"ru": "OK: {text}", "en": "OK: {text}"},
    "check_problem": {"ru": "ОШИБКА: {text}", "en": "PROBLEM: {text}"},
    "check_info": {"ru": "ИНФО: {text}", "en": "INFO: {text}"},
    "check_config_ok": {
        "ru": "конфигурация {path} корректна (транспорт {transport})",
        "en": "the configuration {path} is valid (transport {transport})",
    },
    "check_config_problem": {
        "ru": "конфигурация: {path}: {text}",
        "en": "configuration: {path}: {text}",
    },
    "check_crm_ok": {"ru": "база данных CRM доступна", "en": "the CRM database is reachable"},
    "check_state_ok": {
        "ru": "хранилище коннектора доступно",
        "en": "the connector's state store is reachable",
    },
    "check_token_ok": {
        "ru": "токен Microsoft Graph получен (приложение {client_id}, клиент {tenant})",
        "en": "got a Microsoft Graph token (application {client_id}, tenant {tenant})",
    },
    "check_token_failed": {
        "ru": "не удалось получить токен Microsoft Graph: {detail}",
        "en": "could not get a Microsoft Graph token: {detail}",
    },
    "check_login_ok": {
        "ru": "пользователь «{login}»: вход выполнен, токен получен",
        "en": "user '{login}': signed in, token acquired",
    },
    "check_login_failed": {
        "ru": "пользователь «{login}»: {detail}",
        "en": "user '{login}': {detail}",
    },
    "check_no_logins": {
        "ru": "ни один пользователь не выполнил вход (connector login --as ЛОГИН); почтовые "
        "ящики не проверены",
        "en": "no user has signed in yet (connector login --as LOGIN); mailboxes were not checked",
    },
    "check_mailbox_ok": {
        "ru": "почтовый ящик {mailbox} ({role}) найден в Microsoft 365",
        "en": "mailbox {mailbox} ({role}) is known to Microsoft 365",
    },
    "check_mailbox_unknown": {
        "ru": "почтовый ящик {mailbox} ({role}) не найден в Microsoft 365 ({detail})",
        "en": "mailbox {mailbox} ({role}) is not known to Microsoft 365 ({detail})",
    },
    "check_mailbox_forbidden": {
        "ru": "нет прав проверить ящик {mailbox} ({role}): нужно разрешение {permission} "
        "({detail})",
        "en": "not allowed to look up mailbox {mailbox} ({role}): the {permission} permission "
        "is needed ({detail})",
    },
    "check_mailbox_error": {
        "ru": "не удалось проверить ящик {mailbox} ({role}): {detail}",
        "en": "could not check mailbox {mailbox} ({role}): {detail}",
    },
    "check_no_mailboxes": {
        "ru": "в конфигурации нет почтовых ящиков (mailboxes.fallback, mailboxes.users); ящики "
        "из CRM проверяются при отправке",
        "en": "no mailboxes in the configuration (mailboxes.fallback, mailboxes.users); the "
        "CRM's mailboxes are checked when sending",
    },
    "check_smtp_ok": {
        "ru": "SMTP-сервер {host}:{port} принял подключение ({steps})",
        "en": "the SMTP server {host}:{port} accepted the connection ({steps})",
    },
    "check_smtp_failed": {
        "ru": "SMTP-сервер {host}:{port}: {detail}",
        "en": "SMTP server {host}:{port}: {detail}",
    },
    "check_directory_ok": {
        "ru": "папка {path} доступна для записи",
        "en": "the folder {path} is writable",
    },
    "check_directory_failed": {
        "ru": "папка {path} недоступна для записи: {detail}",
        "en": "the folder {path} is not writable: {detail}",
    },
    "check_passed": {"ru": "Проверка пройдена.", "en": "All checks passed."},
    "check_failed": {"ru": "Найдено проблем: {count}.", "en": "Problems found: {count}."},
    "role_fallback": {"ru": "почта для отправки приглашений", "en": "fallback mailbox"},
    "role_user": {"ru": "личная почта {login}", "en": "mailbox of {login}"},
    # the HTTP API (authentication and requests)
    "unauthorized": {
        "ru": "Нужен действительный токен доступа (заголовок Authorization: Bearer).",
        "en": "A valid access token is required (header Authorization: Bearer).",
    },
    "rate_limited": {
        "ru": "Слишком много неудачных попыток входа с этого адреса. Повторите через {seconds} с.",
        "en": "Too many failed authentication attempts from this address. Try again in "
        "{seconds} s.",
    },
    "link_invalid": {
        "ru": "Ссылка на окно приглашения недействительна.",
        "en": "The link to the invitation dialog is not valid.",
    },
    "link_expired": {
        "ru": "Срок действия ссылки истёк. Откройте окно приглашения из CRM ещё раз.",
        "en": "The link has expired. Open the invitation dialog from the CRM again.",
    },
    "invalid_request": {
        "ru": "Неверный запрос: {detail}",
        "en": "Invalid request: {detail}",
    },
    # the invitation dialog page (figures 2.4, 2.5, 2.7-2.9)
    "ui_title": {
        "ru": "Выбор получателей приглашения",
        "en": "Choose the invitation recipients",
    },
    "ui_hint": {
        "ru": "Отметьте участников, которым нужно отправить приглашение на встречу.",
        "en": "Tick the participants who should receive the meeting invitation.",
    },
    "ui_choose": {"ru": "Выбрать", "en": "Choose"},
    "ui_cancel": {"ru": "Отмена", "en": "Cancel"},
    "ui_close": {"ru": "Закрыть", "en": "Close"},
    "ui_yes": {"ru": "Да", "en": "Yes"},
    "ui_no": {"ru": "Нет", "en": "No"},
    "ui_warning": {"ru": "Предупреждение", "en": "Warning"},
    "ui_error": {"ru": "Ошибка", "en": "Error"},
    "ui_done": {"ru": "Приглашение на встречу", "en": "Meeting invitation"},
    "ui_sending": {"ru": "Отправка…", "en": "Sending…"},
    "serving": {
        "ru": "HTTP API и окно приглашения: {url} (остановка: Ctrl+C или SIGTERM)",
        "en": "HTTP API and invitation dialog at {url} (stop: Ctrl+C or SIGTERM)",
    },
    "server_died": {
        "ru": "HTTP-сервер неожиданно остановился; подробности в журнале.",
        "en": "The HTTP server stopped unexpectedly; see the log.",
    },
    "stopped": {"ru": "Остановлено.", "en": "Stopped."},
    # warnings shown by the draft (the dialog of figure 2.4)
    "warn_location_empty": {
        "ru": "Не заполнено место встречи.",
        "en": "The meeting place is empty.",
    },
    "warn_no_email": {
        "ru": "У участника «{name}» нет адреса электронной почты: приглашение ему не будет "
        "отправлено.",
        "en": "Participant '{name}' has no e-mail address and will not be invited.",
    },
    "warn_bad_email": {
        "ru": "У участника «{name}» неверный адрес электронной почты ({email}): приглашение ему "
        "не будет отправлено.",
        "en": "Participant '{name}' has an invalid e-mail address ({email}) and will not be "
        "invited.",
    },
    "warn_meeting_past": {
        "ru": "Встреча уже прошла.",
        "en": "The meeting is already over.",
    },
    "warn_already_sent": {
        "ru": "Приглашения уже отправлялись (последний раз {when}); при изменениях участники "
        "получат обновление.",
        "en": "Invitations were sent before (last on {when}); participants get an update if "
        "anything changed.",
    },
    # labels of the command-line output
    "label_sender": {"ru": "Отправитель", "en": "Sender"},
    "label_personal": {"ru": "личная почта", "en": "personal mailbox"},
    "label_fallback": {
        "ru": "почта для отправки приглашений",
        "en": "mailbox for sending invitations",
    },
    "label_participants": {"ru": "Участники", "en": "Participants"},
    "label_you": {"ru": "вы", "en": "you"},
    "label_warnings": {"ru": "Предупреждения", "en": "Warnings"},
    "label_recipients": {"ru": "Получатели", "en": "Recipients"},
    "label_skipped": {"ru": "Не приглашены", "en": "Not invited"},
    "label_place": {"ru": "Место", "en": "Place"},
    "label_time": {"ru": "Время", "en": "Time"},
    "label_status": {"ru": "Статус", "en": "Status"},
    "label_empty": {"ru": "(не указано)", "en": "(empty)"},
    "label_yes_no": {"ru": "[да/нет]", "en": "[yes/no]"},
    "label_not_sent": {
        "ru": "Приглашения не отправлены.",
        "en": "No invitations were sent.",
    },
    "label_no_meetings": {
        "ru": "Приглашения ещё не отправлялись.",
        "en": "No invitations have been sent yet.",
    },
    "problem_no_email": {"ru": "нет адреса", "en": "no address"},
    "problem_bad_email": {"ru": "неверный адрес", "en": "invalid address"},
    "problem_duplicate_email": {"ru": "адрес повторяется", "en": "duplicate address"},
    "problem_organizer": {"ru": "организатор", "en": "organizer"},
    "outcome_sent": {"ru": "отправлено", "en": "sent"},
    "outcome_failed": {"ru": "ошибка, будет повторено", "en": "failed, will be retried"},
    "outcome_parked": {"ru": "не отправлено", "en": "not sent"},
    "outcome_lost": {"ru": "передано другому процессу", "en": "taken over by another worker"},
    "outcome_pending": {"ru": "в очереди", "en": "queued"},
}


def render(code: str, language: str, params: Mapping[str, Any] | None = None) -> str:
    """The text for ``code`` in ``language`` (falls back to English, then to the code)."""
    entry = CATALOG.get(code)
    if entry is None:
        return code
    template = entry.get(language) or entry["en"]
    values = _Defaulting(params or {})
    return template.format_map(values)


class _Defaulting(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return ""


def normalise_language(value: str | None, default: str = "ru") -> str:
    """Map 'ru-RU', 'en_US.UTF-8', 'en;q=0.1, ru;q=0.9' and the like to one of
    :data:`LANGUAGES`: the supported language with the highest quality value (the first
    listed among equals); ``q=0`` means "not this one"."""
    if not value:
        return default
    best: tuple[float, str] | None = None
    for part in value.replace("_", "-").split(","):
        tag, *params = (piece.strip() for piece in part.split(";"))
        language = tag.lower()[:2]
        if language not in LANGUAGES:
            continue
        quality = 1.0
        for param in params:
            name, _, number = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(number)
                except ValueError:
                    quality = 0.0
        if quality > 0 and (best is None or quality > best[0]):
            best = (quality, language)
    return best[1] if best else default
