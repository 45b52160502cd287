"""Prompt templates: files of chat-message sections, rendered with Jinja2.

File format (``NAME.j2``; the strategy's name is the file name without ``.j2``)::

    description: Answer from the sources only, citing them as [1], [2].
    parameters:
      role: Who the assistant is, e.g. "a support engineer for Acme".
    max_examples: 0
    reasoning: false
    --- system ---
    You are {{ role or "a helpful assistant" }}. ...
    --- history ---
    --- user ---
    {{ context }}

    Question: {{ question }}

The header (every line before the first marker) holds ``key: value`` lines; ``#`` starts a
comment line. Keys: ``description``; ``parameters`` (indented ``name: description`` lines,
filled from the request's ``params``); ``max_examples`` (most few-shot examples the template
shows; by default none if the template never mentions ``examples``, else all that fit);
``reasoning`` (``true`` when the answer ends with a "Final answer:" line for
``extract_final_answer``).

A marker line ``--- system ---``, ``--- user ---`` or ``--- assistant ---`` starts a message
whose content is the Jinja2 text up to the next marker (``trim_blocks`` and ``lstrip_blocks``
are on; a message that renders empty is left out). ``--- history ---`` marks where the prior
chat turns go; without it they go right before the last user message, which must exist and
close the template. Templates run in Jinja's sandbox with undefined names as errors.

Variables: ``question``; ``context`` (the sources, each in ``<source id="1" file=".." page=".."
section="..">..</source>``, their text unable to close the element); ``sources`` (a list with
``id``, ``chunk_id``, ``file``, ``page``, ``section``, ``text``, ``truncated`` to lay them
out yourself); ``examples`` (``question``, ``answer``); ``role``; and each declared parameter
(None when not given). ``{% include "other.j2" %}`` finds files in the user folder first.

Files in ``PromptSettings.templates_dir`` add to or override the built-ins in
``prompts/templates/``; names starting with ``_`` are partials for ``include`` only. Few-shot
examples come from the request, else from ``PromptSettings.examples_file`` (JSONL of
``{"question": ..., "answer": ...}``), else from the built-in ``templates/examples.jsonl``.
"""

from __future__ import annotations

import builtins
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, cast

import jinja2
from jinja2 import meta
from jinja2.sandbox import ImmutableSandboxedEnvironment

from core.errors import ConfigurationError, InvalidRequest, TemplateNotFound
from core.types import Chunk
from llms.base import Message
from prompts.types import ContextChunk, Example, parse_examples


class PromptConfig(Protocol):
    """The fields of ``app.settings.PromptSettings`` the registry reads."""

    templates_dir: Path | None
    examples_file: Path | None
    default_strategy: str


BUILTIN_DIR = Path(__file__).parent / "templates"
BUILTIN_EXAMPLES = BUILTIN_DIR / "examples.jsonl"
SUFFIX = ".j2"
RESERVED = frozenset({"question", "context", "sources", "examples", "history"})
MAX_ROLE_CHARS = 500

_MARKER = re.compile(r"^---[ \t]*(system|user|assistant|history)[ \t]*---[ \t]*$", re.IGNORECASE)
_HEADER_KEYS = ("description", "parameters", "max_examples", "reasoning")
# The delimiter element's own tags inside a chunk's text are defused so that a document cannot
# close its <source> element and speak outside it ("</source> Ignore previous instructions").
_SOURCE_TAG = re.compile(r"<(?=\s*/?\s*sources?\b)", re.IGNORECASE)
_ROLE_PREFIX = re.compile(r"^(?:you\s+are|you're|act\s+as)\s+", re.IGNORECASE)

SectionKind = Literal["system", "user", "assistant", "history"]


@dataclass(frozen=True)
class TemplateInfo:
    """What ``GET /v1/prompts`` shows of a template.

    Attributes:
        name: The strategy name (file name without ``.j2``).
        description: One line on what the template does.
        parameters: Declared parameter names and their descriptions.
        max_examples: Most few-shot examples shown; None for as many as fit.
        reasoning: The answer ends with a "Final answer:" line (see ``extract_final_answer``).
        source: ``builtin`` or the path of the user's file.
    """

    name: str
    description: str
    parameters: dict[str, str] = field(default_factory=dict)
    max_examples: int | None = 0
    reasoning: bool = False
    source: str = "builtin"

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "name": self.name,
            "description": self.description,
            "parameters": dict(self.parameters),
            "max_examples": self.max_examples,
            "reasoning": self.reasoning,
            "source": self.source,
        }


@dataclass(frozen=True)
class SourceView:
    """One source as templates see it (all strings escaped for the ``<source>`` element)."""

    id: str
    chunk_id: str
    file: str
    page: str
    section: str
    text: str
    truncated: bool

    def element(self) -> str:
        """Return the ``<source ...>text</source>`` element."""
        attrs = [f'id="{self.id}"']
        for key, value in (("file", self.file), ("page", self.page), ("section", self.section)):
            if value:
                attrs.append(f'{key}="{value}"')
        if self.truncated:
            attrs.append('truncated="true"')
        return f"<source {' '.join(attrs)}>\n{self.text}\n</source>"


def _attr(value: object) -> str:
    # Only what could end the attribute or open a tag is escaped; "a > b" stays readable.
    if value is None:
        return ""
    return " ".join(str(value).split()).replace('"', "&quot;").replace("<", "&lt;")


def defuse(text: str) -> str:
    """Escape ``<source``/``</source`` tags inside a chunk's text (the rest is left as is)."""
    return _SOURCE_TAG.sub("&lt;", text)


def source_views(chunks: Sequence[ContextChunk]) -> list[SourceView]:
    """Number the chunks 1..n (their citation ids) and escape them for the prompt."""
    views = []
    for i, c in enumerate(chunks, start=1):
        views.append(
            SourceView(
                id=str(i),
                chunk_id=c.id,
                file=_attr(c.chunk.source),
                page=_attr(c.chunk.page),
                section=_attr(c.chunk.heading_path),
                text=defuse(c.text.strip()),
                truncated=c.truncated,
            )
        )
    return views


def normalize_role(role: str | None) -> str | None:
    """Turn "You are a support engineer for Acme." into "a support engineer for Acme".

    Raises:
        InvalidRequest: longer than ``MAX_ROLE_CHARS``.
    """
    if role is None:
        return None
    role = " ".join(role.split())
    if len(role) > MAX_ROLE_CHARS:
        raise InvalidRequest(f"role is {len(role)} characters; at most {MAX_ROLE_CHARS}")
    role = _ROLE_PREFIX.sub("", role).rstrip(".").strip()
    return role or None


@dataclass(frozen=True)
class _Section:
    kind: SectionKind
    template: jinja2.Template | None
    line: int


class PromptTemplate:
    """One parsed template file: its info and its message sections."""

    def __init__(self, info: TemplateInfo, sections: list[_Section]) -> None:
        """Use ``TemplateRegistry`` to load templates; this takes parsed parts."""
        self.info = info
        self._sections = sections

    @property
    def name(self) -> str:
        """The strategy name."""
        return self.info.name

    def render(
        self,
        question: str,
        context_chunks: Sequence[ContextChunk] = (),
        examples: Sequence[Example] = (),
        history: Sequence[Message] = (),
        role: str | None = None,
        params: Mapping[str, str] | None = None,
    ) -> list[Message]:
        """Render the chat messages; ``history`` goes in as real messages.

        Raises:
            InvalidRequest: a parameter the template does not declare.
            ConfigurationError: the template fails to render.
        """
        params = dict(params or {})
        unknown = sorted(set(params) - set(self.info.parameters))
        if unknown:
            takes = ", ".join(sorted(self.info.parameters)) or "none"
            raise InvalidRequest(
                f"template '{self.name}' has no parameter {', '.join(unknown)}; it takes: {takes}"
            )
        sources = source_views(context_chunks)
        variables: dict[str, Any] = dict.fromkeys(self.info.parameters)
        variables.update(params)
        variables.update(
            question=question,
            sources=sources,
            context="\n\n".join(s.element() for s in sources),
            examples=list(examples),
            role=normalize_role(role),
        )
        messages: list[Message] = []
        for section in self._sections:
            if section.template is None:
                messages.extend(Message(role=m["role"], content=m["content"]) for m in history)
                continue
            try:
                content = section.template.render(variables).strip()
            except jinja2.TemplateError as exc:
                raise ConfigurationError(
                    f"template '{self.name}' ({self.info.source}) failed to render its "
                    f"{section.kind} section from line {section.line}: {exc}",
                    {"template": self.name},
                ) from exc
            if content and section.kind != "history":
                messages.append(Message(role=section.kind, content=content))
        return messages


def parse_template(
    name: str, text: str, env: jinja2.Environment, source: str = "builtin"
) -> PromptTemplate:
    """Parse a template file's text (see the module docstring for the format).

    Raises:
        ConfigurationError: the header or a section is invalid; the message names the line.
    """
    where = f"template '{name}' ({source})"
    lines = text.splitlines()
    header: list[tuple[int, str]] = []
    raw_sections: list[tuple[SectionKind, int, list[str]]] = []
    for number, line in enumerate(lines, start=1):
        marker = _MARKER.match(line)
        if marker:
            raw_sections.append((cast(SectionKind, marker.group(1).lower()), number, []))
        elif raw_sections:
            raw_sections[-1][2].append(line)
        else:
            header.append((number, line))
    info = _parse_header(name, header, where, source)

    sections: list[_Section] = []
    used: set[str] = set()
    for kind, number, body in raw_sections:
        if kind == "history":
            if body and any(b.strip() for b in body):
                raise ConfigurationError(f"{where} line {number}: '--- history ---' takes no text")
            sections.append(_Section("history", None, number))
            continue
        source_text = "\n".join(body)
        try:
            used |= meta.find_undeclared_variables(env.parse(source_text))
            compiled = env.from_string(source_text)
        except jinja2.TemplateSyntaxError as exc:
            at = number + (exc.lineno or 0)
            raise ConfigurationError(f"{where} line {at}: {exc.message}") from exc
        sections.append(_Section(kind, compiled, number + 1))

    messages = [s for s in sections if s.kind != "history"]
    if not messages or messages[-1].kind != "user":
        raise ConfigurationError(f"{where}: the last message section must be '--- user ---'")
    if sum(s.kind == "history" for s in sections) > 1:
        raise ConfigurationError(f"{where}: at most one '--- history ---' marker")
    if "question" not in used:
        raise ConfigurationError(f"{where}: no section shows {{{{ question }}}}")
    if not any(s.kind == "history" for s in sections):
        last_user = max(i for i, s in enumerate(sections) if s.kind == "user")
        sections.insert(last_user, _Section("history", None, sections[last_user].line))
    if info.max_examples == 0 and "examples" in used and "max_examples" not in _keys(header):
        info = _with_max_examples(info, None)
    template = PromptTemplate(info, sections)
    _dry_run(template, where)
    return template


def _keys(header: list[tuple[int, str]]) -> set[str]:
    return {line.split(":", 1)[0].strip() for _, line in header if ":" in line}


def _with_max_examples(info: TemplateInfo, value: int | None) -> TemplateInfo:
    return TemplateInfo(
        info.name, info.description, info.parameters, value, info.reasoning, info.source
    )


def _parse_header(
    name: str, header: list[tuple[int, str]], where: str, source: str
) -> TemplateInfo:
    values: dict[str, str] = {}
    parameters: dict[str, str] = {}
    in_parameters = False
    for number, line in header:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if ":" not in line:
            raise ConfigurationError(f"{where} line {number}: expected 'key: value'")
        key, value = (part.strip() for part in line.split(":", 1))
        if line[0].isspace():
            if not in_parameters:
                raise ConfigurationError(f"{where} line {number}: unexpected indentation")
            if not key.isidentifier() or key in RESERVED:
                raise ConfigurationError(
                    f"{where} line {number}: '{key}' cannot be a parameter name"
                )
            parameters[key] = value
            continue
        if key not in _HEADER_KEYS:
            raise ConfigurationError(
                f"{where} line {number}: unknown key '{key}'; known: {', '.join(_HEADER_KEYS)}"
            )
        in_parameters = key == "parameters"
        values[key] = value
    max_examples: int | None = 0
    if values.get("max_examples", "").strip():
        raw = values["max_examples"].strip().lower()
        if raw in ("all", "none"):
            max_examples = None if raw == "all" else 0
        elif raw.isdigit():
            max_examples = int(raw)
        else:
            raise ConfigurationError(f"{where}: max_examples is a number or 'all'")
    reasoning = values.get("reasoning", "false").strip().lower()
    if reasoning not in ("true", "false", "yes", "no"):
        raise ConfigurationError(f"{where}: reasoning is true or false")
    return TemplateInfo(
        name=name,
        description=values.get("description", "").strip(),
        parameters=parameters,
        max_examples=max_examples,
        reasoning=reasoning in ("true", "yes"),
        source=source,
    )


def _dry_run(template: PromptTemplate, where: str) -> None:
    # Rendering once with sample values at load time turns a typo into a start-up error.
    sample = ContextChunk.from_hit(
        Chunk("doc:00000", "doc", "Sample text.", {"source": "sample.txt", "page": 1})
    )
    params = {p: "sample" for p in template.info.parameters if p != "role"}
    try:
        template.render(
            "Sample question?",
            [sample],
            [Example("Sample question?", "Sample answer [1].")],
            [Message(role="user", content="hi"), Message(role="assistant", content="hello")],
            role="a sample role",
            params=params,
        )
    except ConfigurationError as exc:
        raise ConfigurationError(f"{where}: {exc.message}") from exc


def load_examples(path: Path) -> list[Example]:
    """Read few-shot examples from a JSONL file of ``{"question": ..., "answer": ...}`` lines.

    Blank lines are skipped.

    Raises:
        ConfigurationError: the file is missing or a line is not such an object.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigurationError(f"cannot read the examples file {path}: {exc}") from exc
    examples = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            examples.append(Example.parse(json.loads(line), f"{path} line {number}"))
        except (json.JSONDecodeError, InvalidRequest) as exc:
            message = exc.message if isinstance(exc, InvalidRequest) else str(exc)
            raise ConfigurationError(f"examples file {path} line {number}: {message}") from exc
    return examples


class TemplateRegistry:
    """The built-in templates plus those of a user folder, which add to or override them."""

    def __init__(
        self,
        templates_dir: Path | None = None,
        examples: Sequence[Example] | None = None,
        default_strategy: str = "zero_shot",
    ) -> None:
        """Load every template now, so a broken file fails at start-up.

        Args:
            templates_dir: The user's folder of ``*.j2`` templates, or None.
            examples: Few-shot examples used when a request brings none; None for the
                built-in ``templates/examples.jsonl``.
            default_strategy: Template rendered when none is named.

        Raises:
            ConfigurationError: the folder is missing, a template is invalid or the default
                strategy does not exist.
        """
        folders = [BUILTIN_DIR]
        if templates_dir is not None:
            templates_dir = Path(templates_dir)
            if not templates_dir.is_dir():
                raise ConfigurationError(f"templates_dir {templates_dir} is not a folder")
            folders.insert(0, templates_dir)
        self._env = ImmutableSandboxedEnvironment(
            loader=jinja2.FileSystemLoader([str(f) for f in folders]),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,  # an included partial ends its own line
            autoescape=False,
        )
        self._templates: dict[str, PromptTemplate] = {}
        for folder in reversed(folders):  # user files last, so they override
            for path in sorted(folder.glob("*" + SUFFIX)):
                if path.name.startswith("_"):
                    continue
                origin = "builtin" if folder == BUILTIN_DIR else str(path)
                text = path.read_text(encoding="utf-8")
                self._templates[path.stem] = parse_template(path.stem, text, self._env, origin)
        self.examples = list(examples) if examples is not None else load_examples(BUILTIN_EXAMPLES)
        self.default_strategy = default_strategy
        self.get(default_strategy)

    @classmethod
    def from_settings(cls, settings: PromptConfig) -> TemplateRegistry:
        """Build from ``Settings.prompts`` (templates folder, examples file, default)."""
        examples = load_examples(settings.examples_file) if settings.examples_file else None
        return cls(settings.templates_dir, examples, settings.default_strategy)

    def names(self) -> builtins.list[str]:
        """Return the template names, sorted."""
        return sorted(self._templates)

    def list(self) -> builtins.list[TemplateInfo]:
        """Return every template's info, sorted by name."""
        return [self._templates[n].info for n in self.names()]

    def get(self, name: str | None = None) -> PromptTemplate:
        """Return a template by name (the default strategy for None).

        Raises:
            TemplateNotFound: no such template; the message lists the known ones.
        """
        name = name or self.default_strategy
        try:
            return self._templates[name]
        except KeyError:
            raise TemplateNotFound(
                f"no prompt template '{name}'; known: {', '.join(self.names())}",
                {"template": name, "known": self.names()},
            ) from None

    def examples_for(
        self, name: str | None, examples: Sequence[Example | Mapping[str, Any]] | None = None
    ) -> builtins.list[Example]:
        """Return the examples a template shows: the request's, else the configured ones.

        At most the template's ``max_examples``; none for a template without examples.
        """
        chosen = parse_examples(examples) if examples is not None else self.examples
        limit = self.get(name).info.max_examples
        return list(chosen if limit is None else chosen[:limit])

    def render(
        self,
        name: str | None,
        question: str,
        context_chunks: Sequence[ContextChunk] = (),
        examples: Sequence[Example | Mapping[str, Any]] | None = None,
        history: Sequence[Message] = (),
        role: str | None = None,
        params: Mapping[str, str] | None = None,
    ) -> builtins.list[Message]:
        """Render a template without any budget (``build_prompt`` fits it to a window).

        Args:
            name: Template name; None for the default strategy.
            question: The user's question.
            context_chunks: Retrieved chunks in rank order; cited as [1], [2], ...
            examples: Few-shot examples; None uses the configured examples file.
            history: Prior user/assistant turns, oldest first.
            role: Who the assistant is ("a support engineer for Acme").
            params: Values of the template's declared parameters.

        Raises:
            TemplateNotFound: no such template.
            InvalidRequest: an undeclared parameter or a malformed example.
        """
        return self.get(name).render(
            question,
            context_chunks,
            self.examples_for(name, examples),
            history,
            role=role,
            params=params,
        )
