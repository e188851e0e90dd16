"""Where a placeholder may stand in a shell command.

targetrun substitutes each value into a shell command as ``shlex.quote(value)``: one
single-quoted word (a ``'`` inside is written ``'"'"'``). That word is literal text only
where the shell reads a *bare* word -- at the top level of the command or inside
``$( ... )``. Anywhere else the quoting turns inside out: inside ``"..."`` or ``'...'``
the value's own quotes close the author's, inside a heredoc or a comment the quotes are
plain text and a newline in the value starts a new command, inside backticks a backtick
in the value ends the substitution, after ``\\`` the opening quote is escaped, after
``$`` the word becomes ``$'...'``. In each of those places a value such as
``$(touch PWNED)`` or ``'; touch PWNED; '`` would run. And a bare word that is the
*command* of a pipeline (``{params.tool} --fast``, ``X=1 {x}``, ``if {x}``, ``eval {x}``)
is a value run as a program, so that place is refused too; the file name after a
redirection (``> {output}``) or an argument anywhere is fine.

:func:`check_shell` scans a command template once, as ``/bin/sh`` would read it, and
refuses any placeholder in such a place. The scanner is deliberately conservative: a
construct it does not follow keeps it in the stricter context, so an unusual command may
be refused but a placeholder that would run is never accepted.

Pure: no I/O, standard library only.
"""

from __future__ import annotations

import enum
import re
import string

from targetrun.errors import TemplateError

_MARK = "\0"  # stands for a placeholder while scanning; no shell command can hold a NUL
_BLANK = " \t"
_WORD_END = " \t\n;&|<>()"


class Ctx(enum.Enum):
    """Where the scanner is."""

    TOP = "at the top level"
    CMDSUB = "inside $(...)"
    SQ = "inside single quotes '...'"
    DQ = 'inside double quotes "..."'
    ANSI = "inside $'...'"
    BACKTICK = "inside backticks `...`"
    PARAM = "inside ${...}"
    ARITH = "inside $((...))"
    COMMENT = "inside a # comment"


_SAFE = (Ctx.TOP, Ctx.CMDSUB)  # where a single-quoted word stays one literal word
# Words after which the next word is still the command to run.
_KEEP_COMMAND = frozenset(("if", "then", "else", "elif", "while", "until", "do", "!", "{", "time", "exec",
                           "command", "builtin", "eval", "nohup", "env", "xargs", "sudo"))
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
# Programs whose argument after one of these flags is code they run (``sh -c {x}``).
_INTERPRETERS = frozenset(("sh", "bash", "dash", "zsh", "ksh", "ash", "mksh", "busybox", "python", "python3", "perl",
                           "ruby", "node", "nodejs", "php", "Rscript", "awk", "gawk", "tclsh", "lua", "pwsh"))
_CODE_FLAGS = frozenset(("-c", "-e", "-E", "--command", "--eval", "-Command", "-r"))
_VARIABLE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?")
_PLAIN = re.compile(r"[^\s'\"\\`$#<>;&|()\0]+")  # characters that only make up a word


class _Frame:
    __slots__ = ("ctx", "depth", "cases", "word", "command", "redirect", "words")

    def __init__(self, ctx: Ctx) -> None:
        self.ctx = ctx
        self.depth = 0  # open ( or { inside this frame
        self.cases = 0  # open `case` words inside a $( ... ), whose patterns end in )
        self.word: list[str] | None = None  # the word being read (code frames)
        self.command = True  # the next word is the command to run
        self.redirect = False  # the next word is the file of a redirection
        self.words: list[str] = []  # the words of the simple command read so far


class _Unsafe(Exception):
    def __init__(self, index: int, where: str, hint: str) -> None:
        super().__init__(where)
        self.index = index
        self.where = where
        self.hint = hint


_BARE_HINT = "Write the placeholder as a bare word, e.g. `echo {FIELD}` or `cp {FIELD} out/`: targetrun quotes the value itself."


def check_shell(template: str) -> None:
    """Raise :class:`TemplateError` if a placeholder of ``template`` is not a bare word.

    >>> check_shell("tr ' ' '\\n' < {needs.words} | sort > {output}")
    >>> check_shell('echo "{params.x}"')
    Traceback (most recent call last):
    ...
    targetrun.errors.TemplateError: the placeholder {params.x} is inside double quotes "..." of the shell command, where the quoted value could end the quoting and run as a command. Write the placeholder as a bare word, e.g. `echo {params.x}` or `cp {params.x} out/`: targetrun quotes the value itself.
    """
    formatter = string.Formatter()
    try:
        parsed = list(formatter.parse(template))
    except ValueError:
        return  # the template check reports the parse error
    names: list[str] = []
    pieces: list[str] = []
    for literal, name, _, _ in parsed:
        if _MARK in literal:
            raise TemplateError("the shell command contains a NUL byte")
        pieces.append(literal)
        if name is not None:
            pieces.append(_MARK)
            names.append(name)
    text = "".join(pieces)
    try:
        _Scanner(text).scan()
    except _Unsafe as problem:
        name = names[text[: problem.index].count(_MARK)]
        raise TemplateError(
            f"the placeholder {{{name}}} is {problem.where} of the shell command, where the quoted value "
            "could end the quoting and run as a command",
            hint=problem.hint.replace("FIELD", name),
        ) from None


class _Scanner:
    """One pass over a command in which every placeholder is ``_MARK``."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0
        self.stack = [_Frame(Ctx.TOP)]
        self.heredocs: list[tuple[str, bool]] = []  # delimiters waiting for the next newline
        self.tainted: dict[str, int] = {}  # variables assigned a placeholder, and where (``a={x}; $a`` runs it)

    def scan(self) -> None:
        handlers = {
            Ctx.TOP: self._code, Ctx.CMDSUB: self._code, Ctx.SQ: self._single, Ctx.DQ: self._double,
            Ctx.ANSI: self._ansi, Ctx.BACKTICK: self._backtick, Ctx.PARAM: self._param,
            Ctx.ARITH: self._arith, Ctx.COMMENT: self._comment,
        }
        while self.i < len(self.text):
            frame = self.stack[-1]
            if self.text[self.i] == _MARK and frame.ctx not in _SAFE:
                raise _Unsafe(self.i, frame.ctx.value, self._hint(frame.ctx))
            handlers[frame.ctx](frame)

    # -- helpers -------------------------------------------------------------------

    def _at(self, offset: int = 0) -> str:
        j = self.i + offset
        return self.text[j] if 0 <= j < len(self.text) else ""

    def _push(self, ctx: Ctx, width: int) -> None:
        self.stack.append(_Frame(ctx))
        self.i += width

    def _pop(self, width: int = 1) -> None:
        self.stack.pop()
        self.i += width

    @staticmethod
    def _hint(ctx: Ctx) -> str:
        if ctx is Ctx.BACKTICK:
            return "Use $( ... ) instead of backticks, with the placeholder as a bare word inside it."
        if ctx is Ctx.COMMENT:
            return "Remove the placeholder from the comment."
        return _BARE_HINT

    def _dollar(self) -> bool:
        """``$`` followed by ``((``, ``(``, ``{``, ``'`` or ``"``: push that context."""
        nxt = self._at(1)
        if nxt == _MARK:
            raise _Unsafe(self.i + 1, "right after $", "Remove the $ before the placeholder: {FIELD} is replaced by its value.")
        if nxt == "(":
            if self._at(2) == "(":
                self._push(Ctx.ARITH, 3)
            else:
                self._push(Ctx.CMDSUB, 2)
            return True
        if nxt == "{":
            self._push(Ctx.PARAM, 2)
            return True
        return False

    def _escape(self) -> None:
        """Step over a backslash and the character it escapes -- but never over a placeholder."""
        self.i += 1 if self._at(1) == _MARK else 2

    def _backslash(self) -> None:
        if self._at(1) == _MARK:
            raise _Unsafe(self.i + 1, "right after a backslash", "Remove the backslash before the placeholder.")
        self.i += 2

    # -- contexts ------------------------------------------------------------------

    def _code(self, frame: _Frame) -> None:
        """The top level, or the inside of ``$( ... )``: quotes, substitutions, operators
        and words, keeping track of which word is the command to run."""
        c = self._at()
        if c == _MARK:
            self._placeholder(frame)
        elif c in _BLANK:
            self._end_word(frame)
            self.i += 1
        elif c == "\n":
            self._end_word(frame, command=True)
            self.i += 1
            self._heredoc_bodies()
        elif c == "#" and self._word_start():
            self._push(Ctx.COMMENT, 1)
        elif c == "<" and self._at(1) == "<":
            self._end_word(frame)
            if self._at(2) == "<":  # <<< a here-string: an ordinary word follows
                frame.redirect = True
                self.i += 3
            else:
                self._heredoc_operator()
        elif c in "<>":
            self._end_word(frame, digits_ok=True)
            frame.redirect = True  # the next word is a file name, not a command
            self.i += 2 if self._at(1) in "&>|" else 1
        elif c in ";&|":
            self._end_word(frame, command=True)
            self.i += 1
        elif frame.ctx is Ctx.CMDSUB and c in "()":
            self._end_word(frame, command=True)
            self._paren(frame, c)
        elif c == "(":
            self._end_word(frame, command=True)
            self.i += 1
        elif c == ")":
            self._end_word(frame)
            self.i += 1
        elif (plain := _PLAIN.match(self.text, self.i)) is not None:
            self._plain(frame, plain.group())
        else:
            self._in_word(frame, c)
            self._word_char(frame, c)

    def _plain(self, frame: _Frame, chunk: str) -> None:
        """A run of characters with no meaning to the shell, read at once."""
        if frame.ctx is Ctx.CMDSUB and frame.word is None and chunk in ("case", "esac"):
            frame.cases += 1 if chunk == "case" else -1
        if frame.word is None:
            frame.word = []
        frame.word.append(chunk)
        self.i += len(chunk)

    def _word_char(self, frame: _Frame, c: str) -> None:
        if c == "\\":
            self._backslash()
        elif c == "'":
            self._push(Ctx.SQ, 1)
        elif c == '"':
            self._push(Ctx.DQ, 1)
        elif c == "`":
            self._push(Ctx.BACKTICK, 1)
        elif c == "$":
            if self._at(1) == "'":
                self._push(Ctx.ANSI, 2)
            elif self._at(1) == '"':
                self._push(Ctx.DQ, 2)
            elif not self._dollar():
                self.i += 1
        else:
            self.i += 1

    def _placeholder(self, frame: _Frame) -> None:
        """A placeholder in code: fine inside a word or as a file name, never as the command
        nor as the code an interpreter or ``trap`` runs."""
        if frame.word is None and frame.command and not frame.redirect:
            raise _Unsafe(self.i, "the command to run",
                          "A value is never run as a program: write the program itself, e.g. `sh {FIELD}` "
                          "or `python {FIELD}`.")
        program = frame.words[0].rpartition("/")[2] if frame.words else ""
        if frame.word is None and not frame.redirect and (
                (program in _INTERPRETERS and frame.words[-1] in _CODE_FLAGS) or (program == "trap" and len(frame.words) == 1)):
            raise _Unsafe(self.i, f"the code `{' '.join(frame.words)}` runs",
                          "A value is never run as code: pass it as a file or an argument instead, e.g. "
                          "`sh script.sh {FIELD}` or `python job.py {FIELD}`.")
        self._in_word(frame, _MARK)
        self.i += 1

    def _in_word(self, frame: _Frame, c: str) -> None:
        if frame.word is None:
            frame.word = []
        frame.word.append(c)

    def _end_word(self, frame: _Frame, *, command: bool = False, digits_ok: bool = False) -> None:
        """A word ended (at a blank or an operator); ``command``: the next word starts a command."""
        word = "".join(frame.word) if frame.word is not None else None
        frame.word = None
        if word is not None:
            self._note_variables(frame, word)
            if frame.redirect:
                frame.redirect = False  # that was the file name
            elif digits_ok and word.isdigit():
                pass  # 2>file: an io number, not the command
            elif frame.command and word not in _KEEP_COMMAND and not _ASSIGNMENT.match(word):
                frame.command = False
        if command:
            frame.command, frame.redirect = True, False
            frame.words = []

    def _note_variables(self, frame: _Frame, word: str) -> None:
        """Remember ``NAME=...{x}...``; refuse ``$NAME`` run as a command afterwards."""
        assigned = _ASSIGNMENT.match(word)
        if assigned and _MARK in word and frame.command:
            self.tainted[word[:assigned.end() - 1]] = self.i - len(word) + word.index(_MARK)
        variable = _VARIABLE.match(word)
        if frame.command and not frame.redirect and not assigned and variable and variable.group(1) in self.tainted:
            raise _Unsafe(self.tainted[variable.group(1)], f"run as a command through ${variable.group(1)}",
                          "A value is never run as a program: use the variable as an argument, e.g. `cat \"$NAME\"`.")
        if not frame.redirect:
            frame.words.append(word)

    def _paren(self, frame: _Frame, c: str) -> None:
        if c == "(":
            frame.depth += 1
            self.i += 1
        elif frame.depth > 0:
            frame.depth -= 1
            self.i += 1
        elif frame.cases > 0:  # the ) ending a case pattern
            self.i += 1
        else:
            self._pop()

    def _word_start(self) -> bool:
        return self.i == 0 or self.text[self.i - 1] in _WORD_END

    def _single(self, frame: _Frame) -> None:
        if self._at() == "'":
            self._pop()
        else:
            self.i += 1

    def _ansi(self, frame: _Frame) -> None:
        if self._at() == "\\":
            self._escape()
        elif self._at() == "'":
            self._pop()
        else:
            self.i += 1

    def _double(self, frame: _Frame) -> None:
        c = self._at()
        if c == "\\":
            self._escape()
        elif c == '"':
            self._pop()
        elif c == "`":
            self._push(Ctx.BACKTICK, 1)
        elif c == "$" and self._dollar():
            return
        else:
            self.i += 1

    def _backtick(self, frame: _Frame) -> None:
        c = self._at()
        if c == "\\":
            self._escape()
        elif c == "`":
            self._pop()
        else:
            self.i += 1

    def _param(self, frame: _Frame) -> None:
        c = self._at()
        if c == "\\":
            self._escape()
        elif c == "'":
            self._push(Ctx.SQ, 1)
        elif c == '"':
            self._push(Ctx.DQ, 1)
        elif c == "`":
            self._push(Ctx.BACKTICK, 1)
        elif c == "$" and self._dollar():
            return
        elif c == "{":
            frame.depth += 1
            self.i += 1
        elif c == "}":
            if frame.depth:
                frame.depth -= 1
                self.i += 1
            else:
                self._pop()
        else:
            self.i += 1

    def _arith(self, frame: _Frame) -> None:
        c = self._at()
        if c == "(":
            frame.depth += 1
            self.i += 1
        elif c == ")" and frame.depth:
            frame.depth -= 1
            self.i += 1
        elif c == ")" and self._at(1) == ")":
            self._pop(2)
        elif c == "$" and self._dollar():
            return
        else:
            self.i += 1

    def _comment(self, frame: _Frame) -> None:
        if self._at() == "\n":
            self._pop(0)  # the newline itself belongs to the code around the comment
        else:
            self.i += 1

    # -- heredocs ------------------------------------------------------------------

    def _heredoc_operator(self) -> None:
        """``<<WORD`` or ``<<-WORD``: remember the delimiter; the body starts after the next newline."""
        self.i += 2
        strip_tabs = self._at() == "-"
        if strip_tabs:
            self.i += 1
        while self._at() and self._at() in _BLANK:
            self.i += 1
        delimiter: list[str] = []
        while self._at() and self._at() not in _WORD_END:
            c = self._at()
            if c == _MARK:
                raise _Unsafe(self.i, "the delimiter of a heredoc", "Write the heredoc delimiter literally, e.g. <<'EOF'.")
            if c in "'\"":
                end = self.text.find(c, self.i + 1)
                end = len(self.text) if end < 0 else end
                if _MARK in self.text[self.i : end]:
                    raise _Unsafe(self.text.index(_MARK, self.i), "the delimiter of a heredoc",
                                  "Write the heredoc delimiter literally, e.g. <<'EOF'.")
                delimiter.append(self.text[self.i + 1 : end])
                self.i = end + 1
            elif c == "\\" and self._at(1) != _MARK:
                delimiter.append(self._at(1))
                self.i += 2
            else:
                delimiter.append(c)
                self.i += 1
        if delimiter:
            self.heredocs.append(("".join(delimiter), strip_tabs))

    def _heredoc_bodies(self) -> None:
        """Skip the bodies of the heredocs opened on the line just ended; a placeholder
        inside one is refused (its quotes would be text, its newlines new commands)."""
        waiting, self.heredocs = self.heredocs, []
        for delimiter, strip_tabs in waiting:
            while self.i < len(self.text):
                end = self.text.find("\n", self.i)
                end = len(self.text) if end < 0 else end
                line = self.text[self.i : end]
                mark = line.find(_MARK)
                if mark >= 0:
                    raise _Unsafe(self.i + mark, "inside a heredoc",
                                  "Pass the value as an argument instead, e.g. `printf '%s\\n' {FIELD} > file`.")
                self.i = end + 1
                if (line.lstrip("\t") if strip_tabs else line) == delimiter:
                    break
