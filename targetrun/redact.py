"""Masking credentials and escaping control characters in everything targetrun shows or keeps.

The model: one per-process set of *known secrets*, filled when a command loads its
options (a storage's ``key``/``secret``/``token``/``password`` options, the userinfo of any
URL among them or in ``cache:``, after ``${VAR}`` expansion), and one function,
:func:`redact`, that every exit calls -- the CLI's two streams (error messages, reporters,
``--json``, tables, tracebacks), the task and run records written to the state store, and
task log files. It hides:

* each known secret, in its plain, URL-quoted and URL-unquoted forms (library messages
  show any of them);
* the userinfo of any ``scheme://user:password@host`` text (``://***@host``, or
  ``://:***@host`` without a user), matched up to the *last* ``@`` of the URL-like word,
  so a password holding ``/ # ? @ :`` is hidden whole;
* the same without a scheme (a DSN typed into ``-p`` or an option, echoed by a task or a
  library): ``user:password@host``, ``user:password@host:5432/db`` become ``***@host``,
  ``***@host:5432/db``. The rule, precisely: a *word* (at the start of the text or after a
  blank, a quote or one of ``= , ; ( [ { < | >``) made of a user name -- a letter, then
  letters, digits and ``. _ ~ % + - @`` --, a ``:`` not followed by ``//`` or a backslash,
  a password of one or more characters other than blanks, quotes, angle brackets and
  backticks that runs to the *last* ``@`` of the word, and a host -- a DNS name or IPv4
  address (letters, digits, ``-`` and ``.``) or ``[IPv6]`` -- with an optional ``:PORT``
  (digits only), followed by the end of the word, ``/``, ``?``, ``#``, a closing bracket,
  ``,``, ``;`` or a final ``.``. So ``a@b.com`` (no password), ``10:30@home`` (the "user"
  is a number), ``git@github.com:org/repo`` (no ``@`` after the ``:``),
  ``image:tag@sha256:9f2c`` (``sha256:9f2c`` is no host and port), a Windows path
  (``C:`` and a backslash) and ``mailto:a@b.com`` (an address, not a password) are left
  as they are;
* ``password=...``, ``secret=...``, ``token=...`` (also with the value in quotes, up to the
  closing one: ``Redis(password='...')``, ``export DB_PASSWORD="..."``, ``token: "..."``)
  and query parameters such as
  ``?key=...``, ``&sig=...``, ``?auth_key=...``, ``?session=...`` or ``?jwt=...``, and the
  secret last part of a Slack or Discord webhook URL's path, the path of a Microsoft
  Teams incoming webhook and a Telegram bot token;
* config lines whose name ends in a credential word (``aws_secret_access_key = ...``,
  ``password: ...``, ``X-Api-Key: ...``; not ``max_tokens = 5``), an ``Authorization``
  header's value (``Bearer``, ``Basic``, ``AWS4-HMAC-SHA256 ...``), a ``Cookie`` or
  ``Set-Cookie`` header's value and any ``Bearer <token>`` -- every word in any case;
* the body of a PEM private key (``-----BEGIN [RSA |EC |OPENSSH |ENCRYPTED ]PRIVATE
  KEY-----`` up to its END line, on lines of its own or ``\\n``-escaped inside JSON or a
  ``repr``; up to a quote or the end of the text when the END line was cut off): a
  service account's key, ``cat key.pem`` in a task. A certificate is public and stays.

:func:`printable` is the other half of human output: values that come from users
(parameters, task names, targets, error text) are shown with control characters and
line breaks escaped, so a value cannot forge a line of a CI log (``::error::``) or move
the cursor. Standard library only: every layer may import it.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import threading
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any, TextIO
from urllib.parse import quote, quote_plus, unquote, unquote_plus

from targetrun import stopping
from targetrun.capture import terminal
from targetrun.wholewrite import write_whole

MASK = "***"
MIN_SECRET = 4  # shorter values would mask ordinary words; the patterns still hide them in URLs
# Values of credential-named options that name a method, not a secret (gcsfs ``token: anon``).
NOT_SECRET = frozenset({"anon", "google_default", "cloud", "browser", "cache", "none", "null", "true", "false"})

# Option names whose values are credentials (fsspec/s3fs/gcsfs/adlfs spellings, redis).
_SECRET_NAME = re.compile(
    r"(?i)(?:^|_|-)(?:key|secret|token|password|passwd|pwd|credential|credentials|sas|signature|auth|session)"
    r"(?:$|_|-|id$)|secret|token|password|passwd|credential|authorization|cookie"
)
# scheme://userinfo@host: userinfo runs to the last "@" of the word, so "/#?@:" in a password stay inside it.
# (``:\/\/`` too: JSON as PHP's json_encode and Jackson write it escapes every ``/``)
_URL_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*:(?://|\\/\\/))(?P<userinfo>[^\s'\"<>`]*)@(?P<host>[^\s'\"<>`@/]*)")
# user:password@host without a scheme (the rule in the module docstring).
_BARE_USERINFO = re.compile(
    r"(?<![^\s'\"(\[{<=,;|>])"  # a word starts here
    r"(?P<user>[A-Za-z_][A-Za-z0-9._~%+@-]*):(?!//|\\)(?P<password>[^\s'\"<>`]+)"
    r"@(?!sha\d+:)(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?)*)"
    r"(?P<port>:[0-9]{1,5})?(?=$|[\s/?#'\"<>`),;:\]}|\\]|\.)"
)
_NOT_A_USER = frozenset(("mailto",))  # mailto:a@b.com is an address
# user:***@ once a known password was masked, without a scheme ("bucket name KEY:***@bucket").
_USER_OF_MASKED = re.compile(r"[^\s'\"<>`/:@]+:\*\*\*@")
# password=..., secret_key=... and "token": "..." / 'password': '...' (names that are always credentials).
_WORDS = (r"[\w\-]*(?:password|passwd|passphrase|secret|token|credential|signature|api[_-]?key|access[_-]?key"
          r"|account[_-]?key|private[_-]?key)[\w\-]*")
_NAMED = re.compile(rf"(?i)(?P<name>\b{_WORDS}=)(?P<value>[^\s&'\"`<>)\]}},;]+)")
# A config line (INI ``name = value``, YAML ``name: value``) whose name *ends* in a credential
# word: ``aws_secret_access_key = ...``, ``password: ...`` -- but not ``max_tokens = 5``. HTTP
# headers spell the words with hyphens (``X-Api-Key: ...``, ``PRIVATE-TOKEN: ...``), and a
# command line quotes them (``curl -H 'x-auth-token: ...'``).
_ENDS_SECRET = (r"[\w\-]*(?:password|passwd|passphrase|secret|[_-]token|api[_-]?key|access[_-]?key|account[_-]?key"
                r"|secret[_-]?key|private[_-]?key)")
_CONFIG = re.compile(rf"(?im)(?P<name>(?:^|(?<=[\s{{,'\"]))(?:{_ENDS_SECRET}|token)(?:\s+=\s*|\s*=\s+|\s*:\s+))"
                     r"(?P<value>[^\s'\"`<>,;]+)")
# The same with the value in quotes -- a client's repr (``Redis(password='...')``), a keyword
# argument, ``export DB_PASSWORD="..."``, ``token: "..."`` --, masked up to its closing quote
# (spaces and the other quote inside it too); the quotes stay. A ``b`` before a quote: bytes.
_QUOTED_VALUE = r"b?(?P<q>['\"])(?P<value>(?:\\.|(?!(?P=q))[^\n\\])+)(?P=q)"
_NAMED_QUOTED = re.compile(rf"(?i)(?P<name>\b{_WORDS}\s*=\s*){_QUOTED_VALUE}")
_CONFIG_QUOTED = re.compile(rf"(?im)(?P<name>(?:^|(?<=[\s{{,(]))(?:{_ENDS_SECRET}|token)\s*:\s*){_QUOTED_VALUE}")
# HTTP credentials: an Authorization header's value and any "Bearer <token>".
_AUTHORIZATION = re.compile(
    r"(?i)(?P<name>\b(?:proxy-)?authorization['\"]?\s*[:=]\s*(?:b?['\"])?\s*"
    r"(?:(?:bearer|basic|digest|token|negotiate|aws4-hmac-sha256|aws)\s+)?)(?P<value>[^\s'\"`<>]+)"
)
# A bearer token is one word of token characters, in any case ("bearer", "BEARER"), holding
# a capital, a digit or a symbol -- or of 20 characters or more, all lower-case letters too:
# so "a bearer of bad news" and "bearer instruments" stay as they are.
_BEARER = re.compile(r"(?i)(?P<name>\bbearer\s+)"
                     r"(?P<value>(?:(?-i:(?=[\w\-.~+/]*[A-Z0-9\-.~+/_]))|(?=[\w\-.~+/]{20}))[\w\-.~+/]{6,}=*)")
# A cookie header's value: every name=value in it (a session is a credential).
_COOKIE = re.compile(r"(?i)(?P<name>\b(?:set-)?cookie['\"]?\s*:\s*(?:['\"])?)(?P<value>[^\n'\"`<>]+)")
_QUOTED = re.compile(rf"(?i)(?P<name>b?(?P<q>['\"]){_WORDS}(?P=q)\s*:\s*b?(?P<vq>['\"]))(?P<value>.*?)(?P=vq)")
# Query parameters that carry credentials in signed or keyed URLs, sessions and tokens
# (``?auth_key=``, ``?session=``, ``;jsessionid=``, ``?jwt=``; also in a fragment, as
# OAuth's implicit flow returns ``#access_token=``). Names holding password, secret,
# token, signature, api_key... are _NAMED's.
_QUERY = re.compile(
    r"(?i)(?P<lead>[?&;#](?:key|sig|signature|x-amz-signature|x-amz-credential|x-amz-security-token|x-goog-signature"
    r"|x-goog-credential|auth|auth[_-]?key|pwd|pass|access_token|code|jwt|session(?:[_-]?(?:id|key))?"
    r"|j?sessionid|phpsessid|sid)=)(?P<value>[^&\s'\"#`<>)\]},;]+)"
)
# Webhook URLs whose last path part is the secret: whoever has it may post as the hook
# (Slack ``hooks.slack.com/services/T../B../SECRET``, Discord ``/api/webhooks/ID/TOKEN``).
# The secret is the last part (a trailing slash allowed); folders and secret are taken
# possessively, and a part right before a mask is not one, so that masking a text again
# changes nothing.
_WEBHOOK = re.compile(
    r"(?i)(?P<lead>\bhooks\.slack\.com/(?:services|workflows|triggers)/(?:[A-Za-z0-9_\-]+/(?=[A-Za-z0-9_\-]))++"
    r"|\b(?:[a-z0-9\-]+\.)?discord(?:app)?\.com/api/(?:v\d+/)?webhooks/\d+/)"
    r"(?P<value>[A-Za-z0-9_\-.~=]++)(?!/" + re.escape(MASK) + ")"
)
# Microsoft Teams incoming webhooks (``TENANT.webhook.office.com/webhookb2/...``, the legacy
# ``outlook.office.com/webhook/...``): the whole path after that is the secret (team, tenant,
# hook and key), up to a final punctuation mark.
_TEAMS = re.compile(
    r"(?i)(?P<lead>\b(?:[a-z0-9\-]+\.webhook\.office\.com/webhookb2/|outlook\.office(?:365)?\.com/webhook/))"
    r"(?P<value>[^\s'\"`<>]*[^\s'\"`<>.,;:)\]}])"
)
# A Telegram bot token, ``<bot id>:<35 characters>`` (in the API's URLs right after ``bot``).
_TELEGRAM = re.compile(r"(?<![A-Za-z0-9_\-])(?P<lead>bot)?\d{8,10}:[A-Za-z0-9_\-]{35}(?![A-Za-z0-9_\-])")
# A credential on a command line: ``--password VALUE``, ``--api-key VALUE`` (a value, not the
# next option; ``--password-file PATH`` names a file) and openssl's ``-passin pass:VALUE``.
_FLAG = re.compile(
    r"(?i)(?P<name>(?<![\w-])--?(?:[a-z]+-)*(?:password|passwd|passphrase|token|secret|api-?key|access-key|secret-key)"
    r"\s+(?:pass:)?|(?<![\w-])-pass(?:in|out)\s+pass:)(?P<value>[^\s'\"`<>\-][^\s'\"`<>]*)"
)
# Tokens whose issuers gave them a recognisable shape (so that scanners find them):
# GitHub, GitLab, Slack, Google API keys, OpenAI/Stripe secret keys, Hugging Face, npm,
# PyPI, AWS access key ids and JSON Web Tokens -- also as a URL's user (https://TOKEN@github.com).
# (The look-ahead of the first letters lets the search skip most positions at once.)
_TOKEN_SHAPE = re.compile(
    r"(?=[gxAsrhnpe])(?<![A-Za-z0-9_\-])(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}|glpat-[A-Za-z0-9_\-]{20,}"
    r"|xox[abposr]-[A-Za-z0-9\-]{10,}|AIza[0-9A-Za-z_\-]{35}|[sr]k[-_](?=[A-Za-z_\-]*[0-9])[A-Za-z0-9_\-]{20,}"
    r"|hf_[A-Za-z0-9]{30,}|npm_[A-Za-z0-9]{36}|pypi-[A-Za-z0-9_\-]{50,}|(?:AKIA|ASIA)[0-9A-Z]{16}"
    r"|eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]{8,})(?![A-Za-z0-9_\-])"
)
# A PEM private key: its body (base64 lines, an encrypted key's headers), whether its line
# breaks are real or escaped (JSON, repr), up to its END line -- or, cut off before it (the
# last lines of a log), to a quote or the end of the text.
_PEM = re.compile(r"(?P<begin>-----BEGIN (?P<kind>[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?)-----)"
                  r"(?P<value>(?:(?!-----END )[^'\"`<>])*)")
_PEM_LEAD = re.compile(r"(?:\s|\\[rn])*")
_PEM_TRAIL = re.compile(r"(?:\s|\\[rn])*\Z")
_PERCENT_ESCAPE = re.compile(r"%[0-9A-F]{2}")  # a URL-quoted byte, uppercase (see _lower_escapes)
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\x1b": "\\x1b"}

_known: set[str] = set()
_pattern: re.Pattern[str] | None = None
_guard = threading.Lock()


_ONLY_REFERENCES = re.compile(r"(?:\$\{[A-Za-z_][A-Za-z0-9_]*\}|\$[A-Za-z_][A-Za-z0-9_]*)+")


def register(*values: object) -> None:
    """Remember secret values of this process: :func:`redact` hides them from now on."""
    global _pattern
    added = False
    with _guard:
        for value in (part for value in values for part in _with_lines(value)):
            if not isinstance(value, str) or len(value) < MIN_SECRET or value.lower() in NOT_SECRET:
                continue
            if _ONLY_REFERENCES.fullmatch(value):  # "${TOKEN}" names a secret; its value is registered expanded
                continue
            for form in _spellings(value):
                if len(form) >= MIN_SECRET and form not in _known:
                    _known.add(form)
                    added = True
        if added:
            ordered = sorted(_known, key=len, reverse=True)  # the longest form first: no half-masked leftovers
            _pattern = re.compile("|".join(re.escape(v) for v in ordered))


_LINE_BREAKS = re.compile(r"\r\n|[\r\n\v\f\x1c-\x1e\x85\u2028\u2029]")
_ONLY_SYNTAX = re.compile(r"[\s{}\[\](),;:\"']*")  # a line of a JSON or YAML secret that holds no secret
_NUMBER = re.compile(r"[-+]?[0-9.]*(?:e[-+]?[0-9]+)?")


def _with_lines(value: object) -> list[object]:
    """``value`` and, when it holds line breaks (a PEM key, a service account's JSON in an
    environment variable), each of its lines, stripped: a task or a library may print one
    line alone, or the lines with other breaks (``\\r\\n``), or a log may be cut between
    them -- and every line of a secret is one. Lines of punctuation and keywords alone
    (``},``, ``null,``) hold nothing and would only mask the same text everywhere.

    >>> _with_lines("k3y-line-1\\r\\n  k3y-line-2\\n},\\nnull,\\n  4430,")
    ['k3y-line-1\\r\\n  k3y-line-2\\n},\\nnull,\\n  4430,', 'k3y-line-1', 'k3y-line-2']
    """
    if not isinstance(value, str) or not _LINE_BREAKS.search(value):
        return [value]
    lines = [line.strip() for line in _LINE_BREAKS.split(value)]
    return [value, *(line for line in lines if _holds_more_than_syntax(line))]


def _holds_more_than_syntax(line: str) -> bool:
    """Whether a line of a secret holds more than punctuation, a keyword or a number
    (``},``, ``null,``, ``443,``): masked everywhere, those would mask ``--json``'s own."""
    rest = _ONLY_SYNTAX.sub("", line).lower()
    return rest not in NOT_SECRET and not _NUMBER.fullmatch(rest)


def _spellings(value: str) -> set[str]:
    """Every way a secret is commonly shown: as is, URL-quoted and unquoted, inside a
    ``repr`` (tracebacks, library messages), JSON-escaped (``--json``, log records, the
    report's data) and HTML-escaped (the report).

    >>> forms = _spellings("pä<ss")
    >>> "pä&lt;ss" in forms, "p" + chr(92) + "u00e4<ss" in forms
    (True, True)
    """
    import html
    import json

    plain = {value, unquote(value), unquote_plus(value)}
    quoted = {form for text in plain for form in (quote(text, safe=""), quote_plus(text))}
    forms = plain | quoted | {_lower_escapes(text) for text in plain | quoted}
    for text in (value, repr(value)[1:-1]):
        forms |= {text, json.dumps(text)[1:-1], json.dumps(text, ensure_ascii=False)[1:-1], html.escape(text)}
    return forms


def _lower_escapes(text: str) -> str:
    """``text`` with its percent escapes in lowercase hex (``%2f``: RFC 3986 allows either)."""
    return _PERCENT_ESCAPE.sub(lambda m: m.group().lower(), text) if "%" in text else text


def _basic_auth(user: str, password: str) -> str:
    """``user:password`` as HTTP Basic auth sends it (base64, of the decoded parts): a
    client given a URL with userinfo makes that header, and a library may log it unlabelled."""
    import base64

    pair = f"{unquote(user)}:{unquote(password)}"
    return base64.b64encode(pair.encode("utf-8", "surrogatepass")).decode("ascii")


def forget_all() -> None:
    """Forget every registered secret (for tests and long-lived API users)."""
    global _pattern
    with _guard:
        _known.clear()
        _environment_forms.clear()
        _registered_environment.clear()
        _pattern = None


def userinfo(url: str, *, whole: bool = False) -> tuple[str, str] | None:
    """The (user, password) of a URL-like string, parsed leniently, or None.

    The password may hold ``/ # ? @ :`` unencoded: the userinfo runs from ``://`` to the
    last ``@`` before the next space. Both parts are returned as written.

    >>> userinfo("redis://:p/a#ss?w@127.0.0.1:6379/0")
    ('', 'p/a#ss?w')
    >>> userinfo("s3://AKIA:se@cr:et@bucket/key"), userinfo("s3://bucket/key")
    (('AKIA', 'se@cr:et'), None)
    """
    scheme, sep, rest = url.partition("://")
    if not sep or not scheme:
        return None
    word = rest if whole else (rest.split()[0] if rest.split() else "")
    info, at, _host = word.rpartition("@")
    if not at:
        return None
    user, colon, password = info.partition(":")
    return (user, password) if colon else (user, "")


def login(url: str) -> tuple[str, str] | None:
    """The start of a URL that names a server *with a password* -- ``scheme://user:password@host:port``,
    up to its path -- and that start without the password (``scheme://user@host:port``); None
    for any other text. The server part ends at the first ``/``, ``?`` or ``#``, as a URL
    parser ends it (and fsspec takes the server from it). What a state store keeps of a
    location is it without the password (targetrun/store/rooted.py): the user and server
    still tell one server's file from another's, and the password comes from the
    Pipelinefile or the environment each time.

    >>> login("ftp://alice:s3cret@h.example:2121/out/a.txt")
    ('ftp://alice:s3cret@h.example:2121', 'ftp://alice@h.example:2121')
    >>> login("redis://:pw@h/0"), login("s3://bucket/a:b@c"), login("ftp://alice@h/x"), login("/p/a:b@c")
    (('redis://:pw@h', 'redis://h'), None, None, None)
    """
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest or not scheme or not scheme.replace("+", "").replace("-", "").replace(".", "").isalnum():
        return None
    cut = authority_end(rest)
    info, at, server = rest[:cut].rpartition("@")
    user, colon, password = info.partition(":")
    if not at or not colon or not password:
        return None
    return f"{scheme}://{rest[:cut]}", f"{scheme}://{user}{'@' if user else ''}{server}"


_URL_START = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_URL_STOP = re.compile(r"[\s\"'<>\\]")  # where a URL written inside JSON, a repr or a sentence ends


def without_passwords(text: str) -> str:
    """``text`` with every URL in it that names a server with a password written as
    :func:`login` gives it without the password -- what a state store keeps of a location:
    the rewrite of rows an older targetrun kept with it (a JSON record, a key).

    >>> without_passwords('{"location": "ftp://u:pw@h:21/a.txt", "b": "s3://x/y@z", "c": "ftp://v@h/b"}')
    '{"location": "ftp://u@h:21/a.txt", "b": "s3://x/y@z", "c": "ftp://v@h/b"}'
    >>> without_passwords("ftp://u:p@a,ftp://v:q@b/x")
    'ftp://u@a,ftp://v@b/x'
    """
    while "@" in text and "://" in text:  # until nothing changes: one pass can leave a second URL's
        bare = _one_pass_without_passwords(text)  # (`ftp://u:p@a,ftp://v:q@b/x`: the first span ran on)
        if bare == text:
            break
        text = bare
    return text


def _one_pass_without_passwords(text: str) -> str:
    out: list[str] = []
    done = 0
    for match in _URL_START.finditer(text):
        if match.start() < done:
            continue
        stop = _URL_STOP.search(text, match.end())
        found = login(text[match.start():stop.start() if stop else len(text)])
        if found is not None:
            out += [text[done:match.start()], found[1]]
            done = match.start() + len(found[0])
    return "".join(out) + text[done:]


def authority_end(rest: str) -> int:
    """Where the server part of a URL's ``rest`` (what follows ``scheme://``) ends: at the first
    ``/``, ``?`` or ``#``, as a URL parser ends it.

    >>> authority_end("u:pw@h:21/data"), authority_end("h?x"), authority_end("h")
    (9, 1, 1)
    """
    return min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))


def bare_userinfo(text: str) -> list[tuple[str, str]]:
    """The (user, password) pairs written without a scheme in ``text`` (the rule in the
    module docstring).

    >>> bare_userinfo("dsn=app:s3cr/t@db.internal:5432/sales"), bare_userinfo("a@b.com at 10:30@home")
    ([('app', 's3cr/t')], [])
    """
    return [(m.group("user"), m.group("password")) for m in _BARE_USERINFO.finditer(text)
            if m.group("user").lower() not in _NOT_A_USER]


def register_params(params: Mapping[str, object]) -> None:
    """Register the credentials among parameter values: the userinfo inside any value
    (:func:`register_values`), and the whole value of a parameter *named* like a
    credential by the rule that names environment variables (``db_password``,
    ``api_token``, ``service_key``; not ``key`` nor ``sort_key``) -- the store keeps only
    a digest of such a value, and a driver's message may quote it alone."""
    register_values(*params.values())
    register(*(text for name, value in params.items() if _SECRET_VARIABLE.search(name) for text in _strings([value])))


def register_values(*values: object) -> None:
    """Register the credentials written as URL or ``user:password@host`` userinfo inside
    parameter values (strings, lists and mappings of them): ``-p dsn=app:pw@db/x`` keeps
    ``pw`` out of everything shown from then on, also where a library prints it alone.
    Only userinfo counts: a parameter's name says nothing (``key: weather`` is no secret)."""
    for text in _strings(values):
        if "@" in text:
            register(*url_credentials(text))


# An environment variable whose name *ends* in a credential word holds a credential
# (GITHUB_TOKEN, AWS_SECRET_ACCESS_KEY, AWS_ACCESS_KEY_ID, PGPASSWORD, MYSQL_PWD,
# OPENAI_API_KEY, REDISCLI_AUTH, AZURE_STORAGE_CONNECTION_STRING) -- but not SSH_AUTH_SOCK,
# XDG_SESSION_TYPE, OLDPWD or a *_TOKEN_FILE, which name places and kinds, not secrets. A
# KEY is a credential only as a kind of key (SORT_KEY=name or S3_KEY=data/x.csv is not one).
_SECRET_VARIABLE = re.compile(
    r"(?i)(?:token|secret|password|passwd|passphrase|_pwd|_auth|connection_string"
    r"|(?:access|secret|api|private|account|storage|master|encryption|signing|client|app|service|license)_?key(?:_?id)?)$"
)
_environment_forms: set[str] = set()  # the spellings register_environment added (see secrets_beyond_environment)
_registered_environment: dict[str, str] = {}  # the environment register_environment last looked at


def register_environment(environ: Mapping[str, str]) -> None:
    """Register the credentials a command's environment holds, which a task it runs (or a
    library it calls) may print alone: the values of variables named like credentials
    (``GITHUB_TOKEN``, ``PGPASSWORD``; see ``_SECRET_VARIABLE``) and the password of any
    value holding a URL or ``user:password@host`` (``DATABASE_URL``, ``HTTPS_PROXY``).
    The environment is passed in: the command line reads it, once.

    >>> forget_all(); register_environment({"CI_TOKEN": "t0k3n-v4lue", "XDG_SESSION_TYPE": "wayland"})
    >>> redact("echo t0k3n-v4lue wayland")
    'echo *** wayland'
    >>> forget_all()
    """
    current = dict(environ)
    with _guard:  # the same environment again (each API call registers it): nothing to look at
        if current == _registered_environment:
            return
    found = [value for name, value in current.items() if _SECRET_VARIABLE.search(name)]
    for value in current.values():
        if "@" in value:
            found += url_credentials(value)
    with _guard:
        before = set(_known)
    register(*found)
    with _guard:
        _environment_forms.update(_known - before)
        _registered_environment.clear()
        _registered_environment.update(current)


def secrets_beyond_environment() -> bool:
    """Whether this process knows a credential besides those of its environment (the
    Pipelinefile's, a ``-p`` value's): what a no-op certificate must not rest on."""
    with _guard:
        return bool(_known - _environment_forms)


def register_url(url: object) -> None:
    """Register the password of a URL's userinfo and credential-named query parameters
    (``redis://host/0?password=...``)."""
    register(*url_credentials(url))


def unencoded_password(url: str) -> bool:
    """Whether a URL's password holds ``/``, ``#`` or ``?`` unencoded: a URL parser ends
    the host part there, so a client would quietly connect somewhere else.

    >>> unencoded_password("redis://:p/w@h/0"), unencoded_password("redis://:p%2Fw@h/0")
    (True, False)
    """
    parts = userinfo(url)
    return parts is not None and any(c in parts[1] for c in "/#?")


ENCODE_HINT = "Write them as %2F, %23 and %3F (Python: urllib.parse.quote(password, safe=''))."


def url_credentials(url: object) -> list[str]:
    """The password (also as HTTP Basic auth sends ``user:password``) and credential-named
    query values of a URL.

    >>> url_credentials("redis://:p/w@h/0"), url_credentials("redis://h/0?db=1&password=x%2Fy")
    (['p/w', 'OnAvdw=='], ['x%2Fy'])
    """
    if not isinstance(url, str):
        return []
    found: list[str] = []
    parts = userinfo(url, whole=True)  # a URL from the configuration: a password may even hold spaces
    pairs = [parts] if parts is not None and parts[1] else []
    if not pairs and "@" in url and "://" not in url:  # user:password@host:5432/db, written without a scheme
        pairs = bare_userinfo(url)
    for user, password in pairs:
        found += [password, _basic_auth(user, password)]
    query = url.partition("?")[2]
    for pair in re.split(r"[&;]", query) if query else ():
        name, eq, value = pair.partition("=")
        if eq and value and (_SECRET_NAME.search(name) or _QUERY.match(f"?{name}=")):
            found.append(value)
    return found


def option_credentials(options: Mapping[str, object] | Iterable[object], *, expand: bool = True) -> list[str]:
    """The credentials among storage ``options`` (nested dicts and lists too): values of
    credential-named keys and of URL userinfo -- as written and, with ``expand``, with
    ``${VAR}`` expanded from the environment."""
    items: Iterable[tuple[str, object]]
    if isinstance(options, Mapping):
        items = ((str(k), v) for k, v in options.items())
    else:
        items = (("", v) for v in options)
    found: list[str] = []
    for name, value in items:
        if isinstance(value, (Mapping, list, tuple)):
            found += option_credentials(value, expand=expand)
        elif isinstance(value, str):
            for form in {value, os.path.expandvars(value)} if expand else {value}:
                if name and _SECRET_NAME.search(name):
                    found.append(form)
                found += url_credentials(form)
    return found


def register_options(options: Mapping[str, object] | Iterable[object], *, expand: bool = True) -> None:
    """Register the credentials among storage ``options`` (see :func:`option_credentials`)."""
    register(*option_credentials(options, expand=expand))


def register_spec(spec: Any) -> bool:
    """Register every credential a validated Pipelinefile names (``cache:``, result URLs,
    ``results:`` options). True when one is written in the file itself rather than taken
    from the environment with ``${VAR}``: such a file is then not copied under .targetrun/."""
    # each distinct result once: 10,000 tasks usually share one or two
    places: list[object] = [spec.cache_url, *dict.fromkeys(task.result for task in spec.tasks.values())]
    for named in spec.results.values():
        places += [named.url, named.options]
    register_options(places)
    register_params(spec.params)  # a DSN given as a parameter's default, a password: default
    in_params = any(url_credentials(v) for v in _strings(spec.params.values()))
    return in_params or any("$" not in value for value in option_credentials(places, expand=False))


def _strings(values: Iterable[object]) -> Iterable[str]:
    """The strings inside ``values``, each list or mapping walked once: a value built of
    shared references (10**8 leaves in a few hundred objects) or nested deeper than the
    interpreter's stack costs what its distinct objects cost.

    >>> shared: list[object] = ["app:pw@db"] * 10
    >>> for _ in range(8):
    ...     shared = [shared] * 10  # 10**9 leaves
    >>> len(list(_strings([shared])))
    10
    """
    stack: list[object] = list(values)
    seen: set[int] = set()
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            yield value
        elif isinstance(value, (Mapping, list, tuple)):
            if id(value) in seen:
                continue
            seen.add(id(value))
            stack.extend(value.values() if isinstance(value, Mapping) else value)


def _hide_userinfo(match: re.Match[str]) -> str:
    user, colon, _password = match.group("userinfo").partition(":")
    if not colon:
        return match.group(0)  # user@host: a name, not a credential
    hidden = f":{MASK}" if not user else MASK  # the user too: in s3://KEY:SECRET@bucket it is the key id
    return f"{match.group('scheme')}{hidden}@{match.group('host')}"


def _hide_bare_userinfo(match: re.Match[str]) -> str:
    if match.group("user").lower() in _NOT_A_USER:
        return match.group(0)
    return f"{MASK}@{match.group('host')}{match.group('port') or ''}"


def _hide_quoted(match: re.Match[str]) -> str:
    """``name='***'``: the quotes (and a ``b`` before them) kept around the mask."""
    quote_at = match.start("q") - match.start()
    whole = match.group(0)
    return f"{whole[:quote_at + 1]}{MASK}{match.group('q')}"


def _hide_pem(match: re.Match[str]) -> str:
    """A private key's BEGIN line, then the mask where its body was (its first and last
    line breaks kept, so the END line stays on a line of its own and masking twice
    changes nothing)."""
    value = match.group("value")
    lead, trail = _PEM_LEAD.match(value), _PEM_TRAIL.search(value)  # (both match an empty text too)
    lead_text = lead.group() if lead else ""
    trail_text = trail.group() if trail and trail.start() >= len(lead_text) else ""
    if len(lead_text) + len(trail_text) >= len(value):
        return match.group(0)  # only line breaks: nothing to hide
    return f"{match.group('begin')}{lead_text}{MASK}{trail_text}"


def redact(text: str) -> str:
    """``text`` with every known secret and every credential-shaped part masked.

    >>> redact("cannot reach redis://:p/a#ss?w@h:6379/0 (password=hunter22&x=1)")
    'cannot reach redis://:***@h:6379/0 (password=***&x=1)'
    >>> redact("GET https://b.s3.amazonaws.com/k?X-Amz-Signature=abc123&v=2")
    'GET https://b.s3.amazonaws.com/k?X-Amz-Signature=***&v=2'
    >>> redact("psql app:hunter2@db:5432/sales failed; mail a@b.com at 10:30@home")
    'psql ***@db:5432/sales failed; mail a@b.com at 10:30@home'
    """
    if not text:
        return text
    pattern = _pattern
    if pattern is not None:
        text = pattern.sub(MASK, text)
        if ":***@" in text:
            text = _USER_OF_MASKED.sub(f"{MASK}@", text)
    return redact_shapes(text)


def redact_shapes(text: str) -> str:
    """``text`` with every credential-*shaped* part masked (the patterns of the module
    docstring), leaving the secrets this process registered aside: the same text in every
    process, for what is recorded in one run and compared in the next.

    >>> redact_shapes("postgres://app:p@db/x?sslmode=require&password=zz9")
    'postgres://***@db/x?sslmode=require&password=***'
    """
    if "PRIVATE KEY" in text:
        text = _PEM.sub(_hide_pem, text)
    text = _TOKEN_SHAPE.sub(MASK, text)
    # Webhook paths before a URL's user info: a hook's path may hold an "@" (Teams), and a URL
    # in another's query (?url=https://...) looks like user info that runs to it.
    if "hooks" in text:  # (and webhooks)
        text = _WEBHOOK.sub(lambda m: m.group("lead") + MASK, text)
    if "office" in text.lower():
        text = _TEAMS.sub(lambda m: m.group("lead") + MASK, text)
    if ":" in text:
        text = _TELEGRAM.sub(lambda m: (m.group("lead") or "") + MASK, text)
    if "://" in text or ":\\/\\/" in text:
        text = _URL_USERINFO.sub(_hide_userinfo, text)
    if "@" in text and ":" in text:
        text = _BARE_USERINFO.sub(_hide_bare_userinfo, text)
    if "=" in text:
        text = _NAMED_QUOTED.sub(_hide_quoted, text)
        text = _NAMED.sub(lambda m: m.group("name") + MASK, text)
        text = _QUERY.sub(lambda m: m.group("lead") + MASK, text)
    if ":" in text:
        text = _QUOTED.sub(lambda m: m.group("name") + MASK + m.group("vq"), text)
        text = _CONFIG_QUOTED.sub(_hide_quoted, text)
    lowered = text.lower()
    if "-pass" in lowered or "--" in text:
        text = _FLAG.sub(lambda m: m.group("name") + MASK, text)
    if "=" in text or ":" in text:
        text = _CONFIG.sub(lambda m: m.group("name") + MASK, text)
    if "authorization" in lowered:
        text = _AUTHORIZATION.sub(lambda m: m.group("name") + MASK, text)
    if "bearer" in lowered:
        text = _BEARER.sub(lambda m: m.group("name") + MASK, text)
    if "cookie" in lowered:
        text = _COOKIE.sub(lambda m: m.group("name") + MASK, text)
    return text


def clipped(text: str, limit: int) -> str:
    """``text`` masked, then cut to about ``limit`` characters (``...`` marks the cut). Cut
    first, a credential would lose what makes it one (the ``@`` after a password, the end
    of a known secret) and its start would be shown as it is.

    >>> clipped("tcp://u:" + "p" * 30 + "@h:1", 20)
    'tcp://***@h:1'
    >>> clipped("x" * 20, 5)
    'xxxxx...'
    """
    text = redact(text)
    return text if len(text) <= limit else f"{text[:limit]}..."


_WINDOW_SLACK = 65_536  # what is masked beyond a cut: any credential starting before it ends within this


def bounded(text: str, limit: int, *, tail: int = 0) -> str:
    """``text`` masked, and when longer than ``limit`` + ``tail`` characters cut to its first
    ``limit`` and its last ``tail``, with how many were cut between: what a task's error or
    traceback is kept and shown as (a 3 MB exception text is not recorded, printed and
    reported whole). Only the kept parts and ``_WINDOW_SLACK`` characters around them are
    masked -- the whole would cost seconds -- so a credential crossing a cut is masked
    before it is cut, never shown in part.

    >>> bounded("tcp://u:" + "p" * 30 + "@h:1 " + "x" * 100, 10)
    'tcp://***@... (133 characters cut)'
    >>> bounded("abc", 2, tail=1), bounded("a" * 5 + "b" * 5, 2, tail=2)
    ('abc', 'aa... (6 characters cut) ...bb')
    """
    if len(text) <= limit + tail:
        return redact(text)
    head = _masked_start(text, limit)
    end = _masked_start(text[::-1], tail, backwards=True)[::-1] if tail else ""
    cut = len(text) - limit - tail
    return f"{head}... ({cut:,} characters cut)" + (f" ...{end}" if end else "")


def _masked_start(text: str, limit: int, *, backwards: bool = False) -> str:
    """The first ``limit`` characters of ``text`` masked (``backwards``: ``text`` is
    reversed, and masked as the right way round). A window of ``_WINDOW_SLACK`` more is
    masked with them -- and grown while masking shrank it so much that the kept part would
    reach the window's last ``_WINDOW_SLACK`` characters, where a credential the window's
    end cuts (no '@' left in it) is not masked."""
    window = limit + _WINDOW_SLACK
    while True:
        part = text[:window]
        masked = redact(part[::-1])[::-1] if backwards else redact(part)
        if window >= len(text) or len(masked) >= limit + _WINDOW_SLACK:
            return masked[:limit]
        window *= 2


def printable(text: str) -> str:
    """``text`` on one line: line breaks, escape and other control characters written as
    escapes (``\\n``, ``\\x1b``), so a value cannot start a forged line or move the cursor.

    >>> printable("ok\\n::error::forged\\x1b[2J")
    'ok\\\\n::error::forged\\\\x1b[2J'
    """
    if text.isprintable():
        return text
    return "".join(_escape(c) if not c.isprintable() and c != " " else c for c in text)


def terminal_text(text: str) -> str:
    """``text`` as lines a terminal shows and does not obey: newlines and tabs kept, every
    other control or format character -- escape, carriage return, bell, a right-to-left
    override -- written as an escape (``\\x1b``), so what a task printed cannot clear the
    screen, retitle the window, hide what it wrote, or link elsewhere than it says.

    >>> terminal_text("a\\tb\\n\\x1b[2Jc\\r\\n")
    'a\\tb\\n\\\\x1b[2Jc\\\\r\\n'
    """
    if text.isprintable():
        return text
    return "\n".join(line if line.isprintable() or line.replace("\t", " ").isprintable()
                     else "".join(c if c.isprintable() or c in "\t " else _escape(c) for c in line)
                     for line in text.split("\n"))


def _escape(char: str) -> str:
    if char in _ESCAPES:
        return _ESCAPES[char]
    code = ord(char)
    if unicodedata.category(char) == "Zs":  # a no-break or other space: shown as it is
        return char
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def safe(text: object) -> str:
    """Redacted and printable: what human output shows of any value."""
    return printable(redact(str(text)))


_HELD = 8192  # characters a RedactingWriter on a file or a pipe holds before writing them (Python's buffer size)


class RedactingWriter:
    """A text stream that passes on what is written to it, redacted, a line at a time.

    Whole lines are redacted at once, so a secret written in two pieces is still found;
    ``flush`` passes on a pending partial line (a live view's repaint, a prompt). Every
    other attribute (``isatty``, ``encoding``, ``fileno``) is the wrapped stream's.
    """

    stays_on_terminal = True  # (capture.terminal: what a reporter writes here is redacted, on the terminal)

    def __init__(self, stream: TextIO, *, hushed: RedactingWriter | None = None) -> None:
        # Below the redaction, not above it: while a run holds fds 1 and 2 for its tasks'
        # output, what is written here goes to the terminal -- redacted, like the rest.
        self._stream = terminal(stream)
        self._pending = ""
        self._lock = threading.RLock()  # re-entrant: a second stop's handler flushes (stopping.flush) in the thread it interrupted
        self._hushed_by = hushed  # another writer: once its reader went away, this one drops all too
        self.written = False  # whether anything was written (a no-op that warned is not replayed)
        self.reader_gone = False  # a write failed because the reader went away (EPIPE): drop the rest
        self.failed: OSError | None = None  # a write failed otherwise (a full disk): the rest is dropped, the work goes on
        # A terminal and stderr take each line as it comes (Python's line buffering; `python -u`
        # writes through); a file or a pipe takes blocks: lines are held here up to _HELD or a
        # flush, as Python's own buffer held them (a write a line cost a 10,000-line run 10 %).
        self._line_by_line = bool(getattr(stream, "line_buffering", False) or getattr(stream, "write_through", False))
        self._held: list[str] = []
        self._held_size = 0

    def write(self, text: str) -> int:
        with self._lock:
            self.written = self.written or bool(text)
            self._pending += text
            if "\n" not in self._pending:
                return len(text)
            lines, _, self._pending = self._pending.rpartition("\n")
            self._pass_on(redact(lines + "\n"))
        return len(text)

    def _pass_on(self, text: str | None) -> None:
        """Write ``text`` to the stream (None: flush it) -- unless its reader went away
        (``| head -1`` has read its line, or the terminal is gone: an ssh session dropped,
        whose SIGHUP is stopping the command already): then drop this and everything
        after, and stop the command (:func:`targetrun.stopping.output_closed`, exit 141,
        as git does; once stopping, the stop's own code). A write that fails otherwise (a
        full disk: ENOSPC, EFBIG, a disk's EIO) drops this and everything after too, but
        stops nothing -- as make builds on when its output cannot be written: ``failed``
        holds the error, which the command reports as it ends (``cli.invoke``)."""
        if self.reader_gone or self.failed is not None or (self._hushed_by is not None and self._hushed_by.reader_gone):
            return
        try:
            if text is None:
                self._send_held()
                self._stream.flush()
            elif self._line_by_line:
                write_whole(self._stream, text)
            else:
                self._held.append(text)
                self._held_size += len(text)
                if self._held_size >= _HELD:
                    self._send_held()
        except OSError as exc:
            if isinstance(exc, BrokenPipeError) or (exc.errno == errno.EIO and self._on_a_terminal()):
                self.reader_gone = True
                stopping.output_closed()
            else:
                self.failed = exc

    def _send_held(self) -> None:
        if self._held:
            text = "".join(self._held)
            self._held.clear()
            self._held_size = 0
            write_whole(self._stream, text)

    def _on_a_terminal(self) -> bool:
        """Whether the stream is on a character device (a terminal; a hung-up one answers
        writes with EIO -- and isatty() with False, so that cannot tell) rather than a file,
        whose EIO is a disk's error to report."""
        try:
            return stat.S_ISCHR(os.fstat(self._stream.fileno()).st_mode)
        except (OSError, ValueError, AttributeError):
            return False

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, ""
            if pending:
                self._pass_on(redact(pending))
            self._pass_on(None)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)
