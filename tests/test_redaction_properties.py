"""Properties of :func:`targetrun.redact.redact` over the shapes HTTP clients print
credentials in: whatever the case of the scheme and header words, whatever the token's
characters, the token never shows."""

from __future__ import annotations

import string
import subprocess
import sys

from hypothesis import given, settings
from hypothesis import strategies as st

from targetrun.redact import redact

TOKEN_CHARS = string.ascii_letters + string.digits + "-._~+/"
# A token: 20 characters or more (all lower-case letters too), or 6 or more with a capital,
# a digit or a symbol.
TOKENS = st.one_of(
    st.text(string.ascii_lowercase, min_size=20, max_size=60),
    st.builds(lambda head, mark, tail: head + mark + tail, st.text(TOKEN_CHARS, min_size=5, max_size=20),
              st.sampled_from(string.ascii_uppercase + string.digits + "-./"), st.text(TOKEN_CHARS, max_size=20)),
)


def _cased(word: str, flips: list[bool]) -> str:
    return "".join(c.upper() if flip else c.lower() for c, flip in zip(word, flips + [False] * len(word)))


@given(TOKENS, st.lists(st.booleans(), max_size=20), st.lists(st.booleans(), max_size=20),
       st.sampled_from(["{b} {t}", "{a}: {b} {t}", "{a}={b} {t}", "'{a}': '{b} {t}'", '"{a}": "{b} {t}"',
                        "curl -H '{a}: {b} {t}' https://h/", "401: {b} {t} rejected"]))
@settings(max_examples=150, deadline=None)
def test_a_bearer_token_never_shows_whatever_the_case(token, flips_a, flips_b, shape):
    text = shape.format(a=_cased("authorization", flips_a), b=_cased("bearer", flips_b), t=token)
    assert redact(text).count(token) < text.count(token), text


@given(st.text(TOKEN_CHARS, min_size=6, max_size=40), st.lists(st.booleans(), max_size=20),
       st.sampled_from(["x-api-key", "api-key", "x-auth-token", "private-token", "x-access-token", "api_key"]),
       st.sampled_from(["{n}: {t}", "{n}={t}", "'{n}': '{t}'", '"{n}": "{t}"', "-H '{n}: {t}'"]))
@settings(max_examples=150, deadline=None)
def test_a_credential_header_never_shows_whatever_its_spelling(token, flips, name, shape):
    text = shape.format(n=_cased(name, flips), t=token)
    assert redact(text).count(token) < text.count(token), text


@given(st.text(string.ascii_lowercase, min_size=1, max_size=19))
def test_prose_after_bearer_stays(word):
    """A short word of lower-case letters after "bearer" is prose, not a token."""
    assert redact(f"a bearer {word} of news") == f"a bearer {word} of news"


def test_what_a_reporter_writes_while_a_run_holds_the_terminal_is_redacted_too():
    """While a run holds fds 1 and 2 for its tasks' output, a reporter writes to the
    terminal's own descriptor: still through the CLI's redacting stream, not past it."""
    code = (
        "import sys\n"
        "from targetrun.capture import process_output\n"
        "from targetrun.redact import RedactingWriter\n"
        "from targetrun.report.console import ConsoleReporter\n"
        "reporter = ConsoleReporter(RedactingWriter(sys.stdout))\n"
        "with process_output():\n"
        "    reporter.stream.write('reached https://u:pw4321xyz@h/ and bearer lowercasetokenlowercasetoken\\n')\n"
        "    reporter.stream.flush()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "reached https://***@h/ and bearer ***\n"


CREDENTIAL_TEXTS = st.sampled_from([
    "https://hooks.slack.com/services/T0123ABCD/B0456EFGH/{t}",
    "https://hooks.slack.com/workflows/T01/A02/33/{t}?auth_key={t}",
    "hooks.slack.com/services/T1/B2/{t}/ (trailing slash)",
    "https://discord.com/api/webhooks/123456/{t}/slack",
    "postgres://app:{t}@db:5432/sales",
    "Authorization: Bearer {t}",
    "curl --password {t} https://x.example/?session={t}&jwt={t}",
    "GET https://b.s3.amazonaws.com/k?X-Amz-Signature={t}&v=2",
])


@given(CREDENTIAL_TEXTS, st.text(TOKEN_CHARS, min_size=8, max_size=40), st.text(string.printable, max_size=30))
def test_masking_a_masked_text_again_changes_nothing(shape, token, around):
    """Text is masked where it is made and again where it is shown (an error masked by the
    run, then by the console): the second pass must not eat what the first one left."""
    once = redact(around + shape.format(t=token) + around)
    assert redact(once) == once


def test_a_slack_webhook_written_with_a_trailing_slash_is_masked():
    assert redact("post to hooks.slack.com/services/T1/B2/XXsecretXX/ now") == \
        "post to hooks.slack.com/services/T1/B2/***/ now"


TEAMS = ("https://contoso.webhook.office.com/webhookb2/7d3f0c2e-1b2a-4c5d-9e8f-0a1b2c3d4e5f@72f988bf-86f1-41af-91ab-"
         "2d7cd011db47/IncomingWebhook/0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e/5f4e3d2c-1b0a-9f8e-7d6c-5b4a3f2e1d0c")
TELEGRAM = "https://api.telegram.org/bot123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsawX/sendMessage?chat_id=42"


def test_a_teams_incoming_webhook_is_masked_after_its_host():
    """Whoever has a Teams incoming webhook's URL may post as it: everything after
    ``webhookb2/`` (the team, tenant, hook and key) is the secret; the legacy
    ``outlook.office.com/webhook/`` form too."""
    assert redact(f"POST {TEAMS} -> 400") == "POST https://contoso.webhook.office.com/webhookb2/*** -> 400"
    legacy = "https://outlook.office.com/webhook/abc-123@tenant/IncomingWebhook/ff00/guid-1"
    assert redact(f"to {legacy}.") == "to https://outlook.office.com/webhook/***."
    assert redact(TEAMS.upper()) == "HTTPS://CONTOSO.WEBHOOK.OFFICE.COM/WEBHOOKB2/***"  # in any case
    assert redact("see https://outlook.office.com/mail/inbox") == "see https://outlook.office.com/mail/inbox"


def test_a_telegram_bot_token_is_masked_wherever_it_stands():
    """A Telegram bot token (``<bot id>:<35 characters>``) lets whoever has it run the bot:
    in the API's URL and alone (a config line, an error)."""
    assert redact(f"GET {TELEGRAM} failed") == "GET https://api.telegram.org/bot***/sendMessage?chat_id=42 failed"
    assert redact("token 123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsawX rejected") == "token *** rejected"
    assert redact("at 12:30:45 and 1700000000:short and 2026-12-02T10:00:00") == \
        "at 12:30:45 and 1700000000:short and 2026-12-02T10:00:00"  # times and short values stay


@given(st.sampled_from([TEAMS + "{t}", TELEGRAM.replace("AAHdq", "{t}"), "bot987654321:{t}" + "x" * 30]),
       st.text(TOKEN_CHARS, min_size=5, max_size=5), st.text(string.printable, max_size=30))
def test_masking_a_masked_webhook_or_bot_token_again_changes_nothing(shape, token, around):
    once = redact(around + shape.format(t=token) + around)
    assert redact(once) == once


def test_a_webhook_inside_another_urls_query_keeps_no_part_of_its_key():
    """A URL in another's query (``?url=https://...``) looks like user info that runs to the
    Teams hook's ``@``: the hook is masked first, so no part of its key is left."""
    nested = "https://proxy.example/f?url=https://contoso.webhook.office.com/webhookb2/a@b/IncomingWebhook/k9/g1"
    assert "k9" not in redact(nested) and redact(nested).endswith("webhookb2/***")
    assert "SEKRET" not in redact("hooks.slack.com/services/T/B/token=SEKRET")
    assert "pw" not in redact("https://discord.com/api/webhooks/123/token=pw")
