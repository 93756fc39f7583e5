"""Typeset the plain-text mathematics of docs/THEORY.md for the site, without editing the file.

THEORY writes its equations in plain text (``q_l = weight_var m2(q_{l-1}) + bias_var``,
``lambda^2 = (1/rho + 1/rho')/2``) so that it reads well anywhere. For the site this module turns
them into TeX that KaTeX renders:

- ``display_tex(block)``: a whole indented block of equations (every word is mathematics);
- ``inline_math(text)``: the runs of mathematics inside a line of prose, each wrapped in ``$...$``;
  a run is a sequence of mathematical atoms (Greek names, subscripted names, ``E[...]``,
  ``sqrt(...)``, single letters, numbers) joined by operators or juxtaposition, and it stops at
  the first ordinary English word.

The notation is the project's own: Greek letters spelled out, ``_`` for subscripts, ``^`` for
powers, ``E[.]`` for expectations, ``'`` for derivatives, ``x ~ N(0, q)`` for distributions.
"""

from __future__ import annotations

import re

GREEK = {
    "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "kappa", "lambda",
    "mu", "nu", "xi", "pi", "rho", "sigma", "tau", "phi", "chi", "psi", "omega",
}
ALIASES = {"eps": r"\epsilon", "inf": r"\infty"}
OPERATORS = {"sqrt": r"\sqrt", "log": r"\log", "exp": r"\exp", "sum": r"\sum", "prod": r"\prod",
             "mean": r"\operatorname{mean}", "min": r"\min", "max": r"\max"}
SYMBOLS = {"<=": r"\le", ">=": r"\ge", "->": r"\to", "~": r"\sim", "*": r"\cdot", "·": r"\cdot",
           "⊙": r"\odot", "±": r"\pm", "+-": r"\pm", "≤": r"\le", "≥": r"\ge", "=": "=", "+": "+", "-": "-",
           "/": "/", "<": "<", ">": ">", "|": "|", "−": "-"}
# Letters that are ordinary English words in prose; inside a display block they are still math.
PROSE_LETTERS = {"a", "A", "I"}

TOKEN = re.compile(
    r"(?P<number>\d+(?:\.\d+)?(?:e[-+]?\d+)?(?![A-Za-z_]))"
    r"|(?P<name>[A-Za-z][A-Za-z0-9]*(?:_(?:\{[^{}]*\}|[A-Za-z0-9]+))*'*"
    r"(?:_(?:\{[^{}]*\}|[A-Za-z0-9]+))*(?:\^(?:\{[^{}]*\}|\([^()]*\)|[A-Za-z0-9]+))?(?:\*(?![*\w]))?)"
    r"|(?P<script>[_^](?:\{[^{}]*\}|\([^()]*\)|[A-Za-z0-9]+))"
    r"|(?P<symbol><=|>=|->|\+-|[=+\-/<>~*·⊙±≤≥|−])"
    r"|(?P<open>[(\[])|(?P<close>[)\]])"
    r"|(?P<space>[ \t]+)"
    r"|(?P<other>.)"
)
EQUATION_NUMBER = re.compile(r"E\d+$")


def tokens(text: str) -> list[tuple[str, str]]:
    """(kind, text) of every token of ``text``; kinds as in ``TOKEN``."""
    return [(m.lastgroup, m.group()) for m in TOKEN.finditer(text)]


def _split_power(name: str) -> tuple[str, str]:
    """``x_l^2`` -> (``x_l``, ``2``); the power keeps no braces."""
    base, caret, power = name.partition("^")
    if power.startswith("{"):
        power = power[1:-1]
    return base, power if caret else ""


def name_tex(name: str, display: bool) -> str | None:
    """TeX of one name token, or None when it is an ordinary word (not mathematics) in prose."""
    star = name.endswith("*")
    base, power = _split_power(name.rstrip("*"))
    primes = ""
    parts = re.findall(r"\{[^{}]*\}|[^_{}]+", base)
    head, subscripts = parts[0], parts[1:]
    while head.endswith("'"):
        head, primes = head[:-1], primes + "'"
    if subscripts and len(head) > 1 and head.lower() not in GREEK and head not in OPERATORS:
        words = [s for s in subscripts if len(s) > 1 and s.isalpha() and s.lower() not in GREEK]
        if len(words) == len(subscripts) or subscripts[: len(words)] == words:
            head_tex = r"\mathrm{" + r"\_".join([head, *words]) + "}"  # weight_var, bias_var_l
            return head_tex + _scripts(subscripts[len(words):], primes, power, star)
    head_tex = _head_tex(head, display or bool(subscripts))
    if head_tex is None:
        return None
    return head_tex + _scripts(subscripts, primes, power, star) if "hat" not in subscripts else (
        r"\hat{" + head_tex + "}" + _scripts([s for s in subscripts if s != "hat"], primes, power, star))


def _scripts(subscripts: list[str], primes: str, power: str, star: bool) -> str:
    tex = "".join("_{" + _sub_tex(s[1:-1] if s.startswith("{") else s) + "}" for s in subscripts)
    tex += primes
    if power or star:
        tex += "^{" + (_sub_tex(power) if power else "") + ("*" if star else "") + "}"
    return tex


def _head_tex(head: str, display: bool) -> str | None:
    if head.lower() in GREEK:
        return "\\" + head
    if head in ALIASES:
        return ALIASES[head]
    if head in OPERATORS:
        return OPERATORS[head]
    if re.fullmatch(r"[A-Za-z]\d+", head) and not EQUATION_NUMBER.match(head):
        return f"{head[0]}_{{{head[1:]}}}"  # m2 -> m_2
    if len(head) == 1 and (display or head not in PROSE_LETTERS):
        return head
    if display:
        return r"\mathrm{" + head + "}"
    return None


def _sub_tex(text: str) -> str:
    """A subscript or power: ``l-1``, ``j=1..k``, ``ij``, ``(b)``."""
    if ".." in text:
        low, high = text.split("..")
        return _sub_tex(low) + "}^{" + _sub_tex(high)
    out = []
    for kind, tok in tokens(text):
        if kind == "name" and tok.isalpha() and len(tok) <= 3 and tok.lower() not in GREEK:
            out.append(tok)  # l, ij, out
        elif kind == "name":
            out.append(name_tex(tok, display=True) or tok)
        elif kind == "symbol":
            out.append(SYMBOLS[tok])
        elif kind != "space":
            out.append(tok)
    return "".join(out)


def number_tex(number: str) -> str:
    mantissa, _, exponent = number.partition("e")
    if not exponent:
        return number
    power = "10^{" + str(int(exponent)) + "}"
    return power if mantissa == "1" else mantissa + r" \times " + power


def _to_tex(toks: list[tuple[str, str]], display: bool) -> str:
    """TeX of a run of tokens that were judged mathematics."""
    out: list[str] = []
    i = 0
    while i < len(toks):
        kind, tok = toks[i]
        if kind == "name" and tok == "x" and _between_numbers(toks, i):
            out.append(r"\times")
        elif kind == "name":
            base = tok.split("_")[0]
            if base == "E" and i + 1 < len(toks) and toks[i + 1][1] == "[":
                out.append(r"\mathbb{E}")
            elif base == "N" and i + 1 < len(toks) and toks[i + 1][1] == "(":
                out.append(r"\mathcal{N}")
            elif base == "sqrt" and i + 1 < len(toks) and toks[i + 1][1] == "(":
                end = _matching(toks, i + 1)
                out.append(r"\sqrt{" + _to_tex(toks[i + 2:end], display) + "}")
                i = end + 1
                continue
            else:
                out.append(name_tex(tok, display) or r"\mathrm{" + tok + "}")
        elif kind == "number":
            out.append(number_tex(tok))
        elif kind == "symbol":
            out.append(" " + SYMBOLS[tok] + " ")
        elif kind == "space":
            out.append(r" \, " if _between_atoms(toks, i) else " ")
        elif kind == "script":
            inner = tok[2:-1] if tok[1] == "{" else tok[1:]
            out.append(tok[0] + "{" + _sub_tex(inner) + "}")
        elif tok == "%":
            out.append(r"\%")
        else:
            out.append(tok)
        i += 1
    return re.sub(r"\s+", " ", "".join(out)).strip()


def _neighbours(toks: list[tuple[str, str]], i: int) -> tuple[str, str]:
    """Kinds of the nearest tokens before and after ``i`` that are not spaces."""
    before = next((k for k, _ in reversed(toks[:i]) if k != "space"), "")
    after = next((k for k, _ in toks[i + 1:] if k != "space"), "")
    return before, after


def _between_numbers(toks: list[tuple[str, str]], i: int) -> bool:
    return _neighbours(toks, i) == ("number", "number")  # 5 x 200


def _between_atoms(toks: list[tuple[str, str]], i: int) -> bool:
    """A space that juxtaposes two factors (weight_var d2(q)), typeset as a thin space."""
    before, after = _neighbours(toks, i)
    return before in ("name", "number", "close", "script") and after in ("name", "number", "open")


def _matching(toks: list[tuple[str, str]], start: int) -> int:
    """Index of the bracket closing the one at ``start`` (or the last token)."""
    depth = 0
    for j in range(start, len(toks)):
        if toks[j][0] == "open":
            depth += 1
        elif toks[j][0] == "close":
            depth -= 1
            if depth == 0:
                return j
    return len(toks) - 1


def display_tex(block: str) -> str:
    """TeX of an indented block of equations, one line per row."""
    rows = [_to_tex(tokens(line.strip()), display=True) for line in block.splitlines() if line.strip()]
    rows = [re.sub(r", {2,}", r", \\quad ", row) for row in rows]
    if len(rows) == 1:
        return rows[0]
    return r"\begin{gathered}" + r" \\ ".join(rows) + r"\end{gathered}"


def is_equation_block(block: str) -> bool:
    """Whether an indented block holds equations rather than commands or code."""
    first = block.strip().split()[0] if block.strip() else ""
    commands = (".venv", "python", "tinynormact", "make", "pip", "import", "from", "for", "$")
    if first.startswith(commands) or "(" in first and first.endswith(")") is False and "=" not in block:
        return False
    return bool(re.search(r"(<=|>=|[^=!<>]=[^=])", block)) and "import " not in block


def _is_atom(kind: str, tok: str) -> bool:
    return kind == "number" or (kind == "name" and name_tex(tok, display=False) is not None)


def _group_end(toks: list[tuple[str, str]], start: int) -> int | None:
    """End of the bracket group at ``start`` when all its content is mathematics, else None."""
    end = _matching(toks, start)
    if toks[end][0] != "close":
        return None
    for kind, tok in toks[start + 1:end]:
        if kind in ("space", "open", "close", "symbol", "script") or _is_atom(kind, tok) or tok == ",":
            continue
        return None
    return end


def inline_math(text: str) -> str:
    """``text`` with every run of mathematics wrapped in ``$...$``."""
    toks = tokens(text)
    out: list[str] = []
    i = 0
    while i < len(toks):
        end = _run_end(toks, i)
        if end is None:
            out.append(toks[i][1])
            i += 1
            continue
        run = toks[i:end]
        if _qualifies(run) and not _lone_word_before_prose(toks, i, end):
            out.append("$" + _to_tex(run, display=False) + "$")
        else:
            out.append("".join(t for _, t in run))
        i = end
    return "".join(out)


def _run_end(toks: list[tuple[str, str]], start: int) -> int | None:
    """End (exclusive) of the longest run of mathematics starting at ``start``, or None."""
    kind, tok = toks[start]
    if not _is_atom(kind, tok) and not (kind == "open" and _group_end(toks, start) is not None):
        return None
    if start > 0 and (toks[start - 1][1][-1] in "`\\_*'" or toks[start - 1][1][-1].isalnum()):
        return None  # inside a word (layer's) or right after markup
    i, last_good = start, None
    while i < len(toks):
        kind, tok = toks[i]
        if kind == "open":
            end = _group_end(toks, i)
            if end is None:
                break
            i = end + 1
            last_good = i
        elif _is_atom(kind, tok) or (kind == "script" and last_good == i):
            if kind == "name" and not _applies(toks, i):
                break
            i += 1
            last_good = i
        elif kind == "space" or (kind == "symbol" and tok != "*"):
            i += 1
        elif kind == "symbol" and tok == "*" and _spaced(toks, i):
            i += 1
        else:
            break
    return last_good


def _lone_word_before_prose(toks: list[tuple[str, str]], start: int, end: int) -> bool:
    """A single letter or operator name that prose follows: ``O(1/width)``, ``mean +- std``."""
    if end - start != 1 or toks[start][0] != "name":
        return False
    word = toks[start][1]
    following = toks[end][0] if end < len(toks) else "end"
    if word in OPERATORS:
        return True
    return len(word) == 1 and following == "open"


def _applies(toks: list[tuple[str, str]], i: int) -> bool:
    """False for a name that prose uses as a word: an operator name without its argument right
    after it ("the mean (m1 = 1/2)"), or a letter before a bracket that is not mathematics
    ("E[sigmoid'^2]", "O(1/width)")."""
    tok = toks[i][1]
    following = toks[i + 1] if i + 1 < len(toks) else ("end", "")
    if tok in OPERATORS:
        return following[0] in ("open", "script")
    if len(tok) == 1 and following[0] == "open":
        return _group_end(toks, i + 1) is not None
    return True


def _spaced(toks: list[tuple[str, str]], i: int) -> bool:
    return 0 < i < len(toks) - 1 and toks[i - 1][0] == "space" and toks[i + 1][0] == "space"


def _qualifies(run: list[tuple[str, str]]) -> bool:
    """A run is typeset when it has a mathematical name, and either an operator or a name that is
    unmistakably mathematics on its own (not an equation number, not a bare number)."""
    names = [tok for kind, tok in run if kind == "name"]
    if not names:
        return False
    if any(kind == "symbol" for kind, _ in run) or any(kind == "open" for kind, _ in run):
        return True
    return True
