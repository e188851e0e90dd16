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

A value can also reach those places through a variable: ``a={x}; $a``. A variable is
*tainted* when it is assigned a placeholder or a tainted variable (``a={x}``, ``b=$a``, as
a command's prefix or after ``export``/``local``/``readonly``/``declare``/``typeset``) or is
the name of a ``for`` loop over words holding one. A word that expands a tainted variable in
any spelling -- ``$a``, ``${a}``, ``${a:-x}``, ``${#a}``, ``${!a}``, inside double quotes or
inside ``$(...)`` or backticks, alone or with other text -- is refused where the expanded
text would be run: as the command, as the code of an interpreter (``sh -c "$a"``) or of
``trap``, and as any argument of ``eval`` (which parses its arguments again). A tainted
variable as an ordinary argument (``cat "$a"``) is fine. Once a variable holds a value,
``eval`` is refused anywhere (it reaches variables by names built at run time), and so is
a held variable in a ``case`` branch, in a heredoc's body, or named inside ``$((...))``
(bash evaluates ``a[$(...)]`` in a variable's text). ``set -- {x}`` taints the positional
parameters; a value (or a held variable) given as an argument after ``sh -c CODE`` is
refused, since CODE reads it as ``$0``, ``$1`` ...

Last, a value must not become a program's *input* when that program reads its code from
its input: a shell or interpreter given no script (``sh``, ``bash -s``, ``python3 -``) at
the end of a pipeline an earlier command put a value into (``echo {x} | sh``, ``bash
/dev/stdin``, ``xargs sh -c`` or ``xargs -I% %``, through ``cat`` or ``tr`` too), or given a
here-string (``bash <<< {x}``). That refuses ``cat
{needs.a} | sh`` as well; write ``sh {needs.a}``. ``read a`` given such an input taints
``a``; a value in the text of an ``alias`` is refused outright.

Not followed -- the scanner is a careful reader of the shell's grammar, not a shell: a value
written to a file that is run later (``echo {x} > f; sh f``), a shell function's
parameters (``f() { $1; }; f {x}``), wrappers whose options take an argument before the
program (``sudo -u bob sh <<< {x}``, ``timeout 5 {x}``, ``find . -exec {x} ;``), and the
shell's further ways of evaluating a variable's text that this reader does not know. A
command that needs a value as code should be a Python task.

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
                           "command", "builtin", "eval", "nohup", "env", "xargs", "sudo", "doas", "nice", "setsid",
                           "unbuffer"))
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
# Programs whose argument after one of these flags is code they run (``sh -c {x}``).
_INTERPRETERS = frozenset(("sh", "bash", "dash", "zsh", "ksh", "ash", "mksh", "busybox", "python", "python3", "perl",
                           "ruby", "node", "nodejs", "php", "Rscript", "awk", "gawk", "tclsh", "lua", "pwsh"))
_SHELLS = frozenset(("sh", "bash", "dash", "zsh", "ksh", "ash", "mksh", "busybox"))
_CODE_FLAGS = frozenset(("-c", "-e", "-E", "--command", "--eval", "-Command", "-r"))
_EXPANSION = re.compile(r"\$(?:\{[#!]?([A-Za-z_][A-Za-z0-9_]*|[0-9]+|[@*])|([A-Za-z_][A-Za-z0-9_]*|[0-9@*]))")
# Builtins whose arguments are assignments (``export a={x}``).
_DECLARE = frozenset(("export", "local", "readonly", "declare", "typeset"))
_PLAIN = re.compile(r"[^\s'\"\\`$#<>;&|()\0]+")  # characters that only make up a word


class _Frame:
    __slots__ = ("ctx", "depth", "cases", "word", "start", "command", "redirect", "words", "herestring", "values",
                 "stdin", "piped", "code", "after_code")

    def __init__(self, ctx: Ctx) -> None:
        self.ctx = ctx
        self.depth = 0  # open ( or { inside this frame
        self.cases = 0  # open `case` words inside a $( ... ), whose patterns end in )
        self.word: list[str] | None = None  # the word being read (code frames)
        self.start = 0  # where it starts in the text (with what nested contexts inside it read)
        self.command = True  # the next word is the command to run
        self.redirect = False  # the next word is the file of a redirection
        self.words: list[str] = []  # the words of the simple command read so far
        self.herestring = False  # the next word is a here-string (``<<< WORD``): the command's input
        # Where the placeholders whose values this simple command holds are in the text:
        # among its words; in its input (a here-string); coming down the pipeline from an
        # earlier command (-1: none).
        self.values: list[int] = []
        self.after_code: list[int] = []  # ... of those, the ones given after an inline script (``sh -c CODE x``)
        self.stdin = self.piped = -1
        self.code: tuple[int, str] | None = None  # the code word given to ``sh -c``: where, and its text


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
    if template in _PASSED:  # checked when the Pipelinefile was loaded: rendering it does not scan it again
        return
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
    if text not in _SHAPES_PASSED:
        try:
            _Scanner(text).scan()
        except _Unsafe as problem:
            name = names[text[: problem.index].count(_MARK)]
            # the words quoted in ``where`` hold a mark for each placeholder among them
            shown = "{" + name + "}" if len(set(names)) == 1 else "{...}"
            where = problem.where.replace(_MARK, shown)
            raise TemplateError(
                f"the placeholder {{{name}}} is {where} of the shell command, where the quoted value "
                "could end the quoting and run as a command",
                hint=problem.hint.replace("FIELD", name),
            ) from None
        _remember(_SHAPES_PASSED, text)
    _remember(_PASSED, template)


def _remember(passed: set[str], text: str) -> None:
    if len(passed) >= _PASSED_MAX:  # a long-lived process checking ever new commands
        passed.clear()
    passed.add(text)


# Templates that passed: the verdict depends on the text alone, and each shell task's
# command is checked when the Pipelinefile is loaded and again when it is rendered.
_PASSED: set[str] = set()
# Shapes that passed: a template's text with every placeholder a mark. The scan sees
# nothing else (a placeholder's name only words the error), so ``cat {needs.t1} > {output}``
# and ``cat {needs.t2} > {output}`` -- a thousand tasks of one pattern -- are scanned once.
_SHAPES_PASSED: set[str] = set()
_PASSED_MAX = 100_000


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
        if self.stack[-1].ctx in _SAFE:
            self._end_word(self.stack[-1], command=True)  # the last word counts like any other

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
            if self._at(2) == "<":  # <<< a here-string: an ordinary word follows, the command's input
                frame.redirect = frame.herestring = True
                self.i += 3
            else:
                self._heredoc_operator()
        elif c in "<>":
            self._end_word(frame, digits_ok=True)
            frame.redirect = True  # the next word is a file name, not a command
            self.i += 2 if self._at(1) in "&>|" else 1
        elif c in ";&|":
            pipe = c == "|" and self._at(1) != "|" and self._at(-1) != "|"  # a | b, not a || b
            self._end_word(frame, command=True, pipe=pipe)
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
            frame.word, frame.start = [], self.i
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
        if frame.word is None and not frame.redirect and self._runs_code(frame):
            raise _Unsafe(self.i, f"the code `{' '.join(frame.words)}` runs",
                          "A value is never run as code: pass it as a file or an argument instead, e.g. "
                          "`sh script.sh {FIELD}` or `python job.py {FIELD}`.")
        self._in_word(frame, _MARK)
        self.i += 1

    def _in_word(self, frame: _Frame, c: str) -> None:
        if frame.word is None:
            frame.word, frame.start = [], self.i
        frame.word.append(c)

    def _end_word(self, frame: _Frame, *, command: bool = False, digits_ok: bool = False, pipe: bool = False) -> None:
        """A word ended (at a blank or an operator); ``command``: the next word starts a
        command (``pipe``: and reads this one's output)."""
        word = "".join(frame.word) if frame.word is not None else None
        frame.word = None
        if word is not None:
            origin = self._note_variables(frame, word, self.text[frame.start : self.i])
            if origin >= 0 and frame.herestring:
                frame.stdin = origin if frame.stdin < 0 else frame.stdin
            elif origin >= 0 and not frame.redirect:
                frame.values.append(origin)
                if frame.code is not None:  # an argument after `sh -c CODE`: its $0, $1 ...
                    frame.after_code.append(origin)
            if frame.redirect:
                frame.redirect = frame.herestring = False  # that was the file name
            elif digits_ok and word.isdigit():
                pass  # 2>file: an io number, not the command
            elif frame.command and word not in _KEEP_COMMAND and not _ASSIGNMENT.match(word):
                frame.command = False
        if command:
            self._end_command(frame, pipe)
            frame.command, frame.redirect, frame.herestring = True, False, False
            frame.words = []

    def _end_command(self, frame: _Frame, pipe: bool) -> None:
        """A simple command ended: refuse a value that reaches it as the code it reads
        (``echo {x} | sh``, ``sh <<< {x}``, ``sh -c '$1' _ {x}``); pass the value on to the
        next command of a pipeline (through ``cat`` or ``tr`` too: what they pass on is it)."""
        stdin = frame.stdin if frame.stdin >= 0 else frame.piped
        if stdin >= 0 and _reads_code_from_input(frame.words):
            raise _Unsafe(stdin, f"the code `{' '.join(frame.words)}` reads from its input",
                          "A value is never run as code: pass it as an argument of a script (`sh script.sh {FIELD}`), "
                          "or run a file as the script (`sh {FIELD}`) instead of piping it in.")
        command = _command_words(frame.words)
        if self.tainted and "eval" in frame.words[:len(frame.words) - len(command) + 1]:
            name = next(iter(self.tainted))  # eval reaches any variable, by a name built at run time too
            raise _Unsafe(self.tainted[name], f"reachable by `eval` once ${name} holds a value",
                          "Do not combine eval with a variable that holds a value; use the variable as an argument.")
        branch = self._held(*frame.words[3:]) if frame.words[:1] == ["case"] else []
        if branch:
            raise _Unsafe(self.tainted[branch[0]], "in a case branch (a branch's first word is a command)",
                          "Use the variable as an argument outside the case, e.g. `cat \"$NAME\"`.")
        if stdin >= 0 and command[:1] == ["read"]:  # read a <<< {x}: the names it reads into hold it
            self.tainted.update(dict.fromkeys((word for word in command[1:] if _NAME.fullmatch(word)), stdin))
        if frame.after_code:  # sh -c CODE NAME {x}: $0, $1 ... hold the value
            raise _Unsafe(frame.after_code[0], f"an argument of the inline script `{' '.join(frame.words)}` ($0, $1 ... "
                          "inside its code, which a shell may evaluate in many ways)",
                          "Put the code in a script file and pass the value to it: `sh script.sh {FIELD}`.")
        if pipe and frame.piped < 0:
            frame.piped = frame.values[0] if frame.values else stdin
        elif not pipe:
            frame.piped = -1
        frame.values, frame.stdin, frame.code, frame.after_code = [], -1, None, []

    def _held(self, *texts: str) -> list[str]:
        """The variables holding a value that ``texts`` expand, in order."""
        return [name for text in texts for name in _expansions(text) if name in self.tainted]

    @staticmethod
    def _runs_code(frame: _Frame) -> bool:
        """Whether the next word of the command read so far is code something runs: the
        argument after ``-c`` (``-e`` ...) of an interpreter (also behind ``env``,
        ``sudo`` ...: any word of the command naming one counts), or ``trap``'s first."""
        if not frame.words:
            return False
        programs = {word.rpartition("/")[2] for word in frame.words}
        return bool(programs & _INTERPRETERS and frame.words[-1] in _CODE_FLAGS) or (
            frame.words[0] == "trap" and len(frame.words) == 1)

    def _check_code(self, frame: _Frame, source: str) -> None:
        """The literal code a shell is given (``a={x} sh -c 'eval "$a"'``) is read with the
        same rules: the variables tainted here may be in its environment."""
        if not {word.rpartition("/")[2] for word in frame.words} & _SHELLS:
            return
        code = source[1:-1] if len(source) >= 2 and source[0] == source[-1] and source[0] in "'\"" else source
        if source.startswith('"'):  # what the shell passes on: \$ \` \" \\ unescaped
            code = re.sub(r'\\([$`"\\])', r"\1", code)
        frame.code = (self.i, code)  # its arguments ($0, $1 ...) come after it
        if not self.tainted:
            return
        inner = _Scanner(code)
        inner.tainted = dict(self.tainted)  # the places of their placeholders in this text
        inner.scan()

    def _note_variables(self, frame: _Frame, word: str, source: str) -> int:
        """Follow values into variables (``a={x}``, ``b=$a``, ``for a in {x}``) and refuse
        a word expanding one where its text would run (see the module docstring).
        ``word`` is what this frame read of the word, ``source`` all of its text. Returns
        where the value the word holds (a placeholder's, or a tainted variable's) comes
        from, or -1."""
        tainted = self._held(source)
        where = source.find(_MARK)
        origin = frame.start + where if where >= 0 else self.tainted[tainted[0]] if tainted else -1
        assigned = _ASSIGNMENT.match(word)
        declaring = bool(frame.words) and frame.words[0] in _DECLARE
        if assigned and origin >= 0 and (frame.command or declaring):
            self.tainted[word[:assigned.end() - 1]] = origin
        looping = len(frame.words) >= 3 and frame.words[0] == "for" and frame.words[2] == "in"
        if looping and origin >= 0:
            self.tainted[frame.words[1]] = origin
        if frame.words[:1] == ["set"] and origin >= 0:  # set -- {x}: the positional parameters hold it
            self.tainted.update(dict.fromkeys((*"123456789", "@", "*"), origin))
        if frame.words[:1] == ["alias"] and origin >= 0:
            raise _Unsafe(origin, "the text of an alias, which runs as a command",
                          "A value is never run as a program: use a shell function or a script that takes it as an argument.")
        if not frame.redirect and self._runs_code(frame):
            self._check_code(frame, source)
        if tainted and not frame.redirect and not (assigned and (frame.command or declaring)):
            name = tainted[0]
            if frame.command:
                raise _Unsafe(self.tainted[name], f"run as a command through ${name}",
                              "A value is never run as a program: use the variable as an argument, e.g. `cat \"$NAME\"`.")
            if self._runs_code(frame) or (frame.words and frame.words[0] == "eval"):
                raise _Unsafe(self.tainted[name], f"run as code through ${name} (`{' '.join(frame.words)}` runs it)",
                              "A value is never run as code: pass it as a file or an argument instead, e.g. "
                              "`sh script.sh \"$NAME\"`.")
        if not frame.redirect:
            frame.words.append(word)
        return origin

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
        elif (name := _NAME.match(self.text, self.i)) is not None:
            if name.group() in self.tainted:  # bash evaluates the text of a variable named in $((...))
                raise _Unsafe(self.tainted[name.group()], f"inside $((...)) through {name.group()}",
                              "Keep values out of arithmetic; check a number with a script that takes it as an argument.")
            self.i = name.end()
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
                held = self._held(line)
                if held:  # read b <<EOF / $a / EOF; $b: the text goes on into whatever reads it
                    raise _Unsafe(self.tainted[held[0]], f"inside a heredoc through ${held[0]}",
                                  "Pass the value as an argument instead, e.g. `printf '%s\\n' \"$NAME\" > file`.")
                self.i = end + 1
                if (line.lstrip("\t") if strip_tabs else line) == delimiter:
                    break


def _expansions(source: str) -> list[str]:
    """The variables a word's text expands, in order: ``$a``, ``${a}``, ``${a:-x}``,
    ``${#a}``, ``${!a}``, also inside double quotes, ``$(...)`` and backticks; not inside
    single quotes or after a backslash.

    >>> _expansions('x$a"${b:-1}"$(echo ${#e})'), _expansions("'$d'" + ' $((1))')
    (['a', 'b', 'e'], [])
    """
    names: list[str] = []
    i, quoted = 0, False
    while i < len(source):
        c = source[i]
        if c == "\\":
            i += 2
            continue
        if c == "'" and not quoted:
            end = source.find("'", i + 1)
            i = len(source) if end < 0 else end + 1
            continue
        if c == '"':
            quoted = not quoted
        elif c == "$" and (match := _EXPANSION.match(source, i)) is not None:
            names.append(match.group(1) or match.group(2))
        i += 1
    return names


_FROM_INPUT = (_SHELLS | _INTERPRETERS) - {"awk", "gawk"}  # these read their program from input without one


def _reads_code_from_input(words: list[str]) -> bool:
    """Whether a simple command reads the code it runs from its input: a shell or an
    interpreter given no script (``sh``, ``bash -s x``, ``python3 -``), also behind
    ``env``, ``sudo`` ...

    >>> _reads_code_from_input(["sh"]), _reads_code_from_input(["env", "python3", "-u"])
    (True, True)
    >>> _reads_code_from_input(["sh", "build.sh"]), _reads_code_from_input(["bash", "-c", "'cat'"])
    (False, False)
    >>> _reads_code_from_input(["bash", "/dev/stdin"]), _reads_code_from_input(["xargs", "-I%", "sh", "-c", "%"])
    (True, True)
    >>> _reads_code_from_input(["xargs", "-I", "%", "%"]), _reads_code_from_input(["xargs", "-n1", "echo"])
    (True, False)
    >>> _reads_code_from_input([".", "/dev/stdin"]), _reads_code_from_input(["grep", "x"])
    (True, False)
    """
    if "xargs" in words:  # it makes commands out of its input: code when it runs a shell or the input itself
        return _xargs_runs_input(words[words.index("xargs") + 1:])
    rest = _command_words(words)
    while rest and rest[0].startswith("-") and len(rest) > 1:
        rest = _command_words(rest[1:])  # a wrapper's options
    if rest[:1] in (["source"], ["."]):
        return rest[1:2] == [] or rest[1] in _INPUT_FILES
    if not rest or rest[0].rpartition("/")[2] not in _FROM_INPUT:
        return False
    options = rest[1:]
    operands = [word for word in options if not word.startswith("-") or word == "-"]
    return not operands or operands[0] == "-" or operands[0] in _INPUT_FILES or "-s" in options


def _xargs_runs_input(args: list[str]) -> bool:
    """Whether ``xargs ARGS`` runs its input as code: its program is a shell or an
    interpreter, or is the replace string itself (``xargs -I% %``)."""
    replace, i = None, 0
    while i < len(args) and args[i].startswith("-"):
        flag = args[i]
        if flag in ("-I", "-E", "-L", "-n", "-P", "-s", "-d", "-a"):  # its value is the next word
            replace = args[i + 1] if flag == "-I" and i + 1 < len(args) else replace
            i += 2
            continue
        if flag.startswith("-I"):
            replace = flag[2:]
        elif flag.startswith("-i"):
            replace = flag[2:] or "{}"
        i += 1
    program = args[i] if i < len(args) else None
    return program is not None and (program == replace or program.rpartition("/")[2] in _SHELLS | _INTERPRETERS)


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_INPUT_FILES = frozenset(("/dev/stdin", "/dev/fd/0", "/proc/self/fd/0"))  # a script that is the input


def _command_words(words: list[str]) -> list[str]:
    """A simple command's words from the program it runs on: without the assignments,
    keywords and wrappers before it (``X=1 if env nohup prog`` -> ``prog ...``)."""
    start = 0
    while start < len(words) and (words[start] in _KEEP_COMMAND or _ASSIGNMENT.match(words[start])):
        start += 1
    return words[start:]
