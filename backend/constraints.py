"""Grammar-constrained decoding and degeneration guards for one row of the running batch.

A row may carry a grammar (SamplingParams.grammar, already converted to llguidance's
form by backend.requests) and a DegenerationGuard. Each step its RowConstraint says which
tokens may come next (allowed_tokens), whether a drawn token must be drawn again
(refuses), and, once a token is chosen, whether the row is done (consume).

Why llguidance: MIT, no Python dependencies beyond its own wheel, Lark grammars, regular
expressions and JSON schemas in one engine, and vLLM's "guidance" structured-output
backend takes the very same grammars, so a request constrained here is constrained the
same way there. Measured here (2-core CPU, one torch thread, the scene-shaped grammar of
tests/backend/test_constraints.py): a token mask costs ~0.05 ms with SmolLM2's 49k
vocabulary (~0.015 ms with the tiny test tokenizer); a whole constrained row, mask, bans,
guard checks and bookkeeping included, adds ~0.15 ms per step over the same row
unconstrained (median; ~0.23 ms mean), most of it writing -inf into 49k logits. The
alternatives: xgrammar pulls torch and triton in and compiles kernels,
lm-format-enforcer walks its grammar in pure Python per token, and outlines-core has no
Lark (context-free) grammars.

Why guards on top of a grammar: a grammar says what form a line may take, not that the
model should stop saying the same line again, or let one character speak forever, or run
a line on for a hundred tokens; a 135M model does all three. The guards refuse the token
that would complete such a line (the row draws again from its own dice), and, past a
line's length, allow only tokens that end it.
"""

from __future__ import annotations

import itertools
import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from screenplay.judge import (
    normal_line as normalised,  # as the judge compares lines: no repeat gets past one to the other
)

log = logging.getLogger(__name__)

_SENTENCE_ENDS = (b".", b"!", b"?", "\u2026".encode())
_EXTENSION = re.compile(r"\s*\([^()]*\)\s*$")  # a cue's (V.O.), (O.S.), (CONT'D)
_CUE_SHAPE = re.compile(r"[A-Z0-9][A-Z0-9 .'\-]{0,39}")
_NOT_A_CUE = re.compile(r"(INT|EXT|I/E|INT\./EXT)[ .]|.*[.:!?]$")  # scene headings, transitions, shouted lines
_MAX_CUE_WORDS = 4


@dataclass(frozen=True)
class DegenerationGuard:
    """What a grammar cannot say about a screenplay, applied while decoding.

    speakers: character cues (exact lines) that may repeat, and whose runs are counted;
    max_speaker_run: most consecutive cues of one speaker (None: no limit);
    no_repeated_lines: no completed line twice (cues excepted), compared case- and punctuation-blind;
    no_phrase_loops: within a line, no word or word pair three times running and no longer phrase
        twice running ("no no no", "the fire the fire the fire"), no run of punctuation, and no
        four-word phrase a third time or three-word phrase a fourth time in the row's text;
    max_line_tokens: past this many tokens in a line, only tokens that end it (None: no limit).
    """

    speakers: tuple[str, ...] = ()
    max_speaker_run: int | None = None
    no_repeated_lines: bool = False
    no_phrase_loops: bool = False
    max_line_tokens: int | None = None

    @property
    def watches_lines(self) -> bool:
        return self.no_repeated_lines or self.max_speaker_run is not None or self.no_phrase_loops

    @property
    def active(self) -> bool:
        return self.watches_lines or self.max_line_tokens is not None


class GrammarVocabulary:
    """The tokenizer as llguidance sees it, and what the guards need to know of every token.

    Built once per generator (~0.35 s for SmolLM2's 49k vocabulary, most of it llguidance's
    own tokenizer), in the decode worker, the first time a row asks for a grammar or guard."""

    def __init__(self, tokenizer: Any, stop_ids: frozenset[int]) -> None:
        self.tokenizer = tokenizer  # an llguidance.LLTokenizer
        self.width = tokenizer.vocab_size  # the logits' width
        # Special tokens print nothing into the text a guard reads.
        self.pieces = [b"" if tokenizer.is_special_token(token) else tokenizer.decode_bytes([token])
                       for token in range(self.width)]
        self.line_breaks = torch.tensor([b"\n" in piece for piece in self.pieces], dtype=torch.bool)
        self.sentence_ends = torch.tensor([any(mark in piece for mark in _SENTENCE_ENDS) for piece in self.pieces],
                                          dtype=torch.bool)
        self.stop_ids = stop_ids
        self.stops = torch.zeros(self.width, dtype=torch.bool)
        self.stops[[token for token in stop_ids if token < self.width]] = True

    @classmethod
    def from_hf(cls, hf_tokenizer: Any, *, width: int, stop_ids: frozenset[int]) -> GrammarVocabulary:
        import llguidance.hf  # here, not at the top: the backend runs without it until a row asks

        return cls(llguidance.hf.from_tokenizer(hf_tokenizer, n_vocab=width, eos_token=sorted(stop_ids)), stop_ids)


@dataclass
class _Lines:
    """The row's text as lines: the open one, and what the guards remember of the closed ones."""

    open: bytes = b""
    open_tokens: int = 0
    said: frozenset[str] = frozenset()
    last_cue: str | None = None
    cue_run: int = 0
    phrases: Counter = field(default_factory=Counter)  # word 3- and 4-grams of closed lines (cues excepted)


class RowConstraint:
    """One row's grammar matcher and guard state; used by backend.sampling through
    allowed_tokens() and refuses(), and by the engine through consume()."""

    def __init__(self, vocabulary: GrammarVocabulary, grammar: str | None,
                 guard: DegenerationGuard | None = None) -> None:
        self.vocabulary = vocabulary
        self.guard = guard or DegenerationGuard()
        self.speakers = frozenset(speaker.strip() for speaker in self.guard.speakers)
        self.lines = _Lines()
        self.interventions = 0  # tokens refused, and steps a long line was made to end
        self.finish_cause: str | None = None  # "grammar complete" or "grammar error" when the grammar ended the row
        self.matcher = self._matcher(grammar) if grammar is not None else None

    def _matcher(self, grammar: str) -> Any:
        import llguidance

        matcher = llguidance.LLMatcher(self.vocabulary.tokenizer, grammar, log_level=0)
        if matcher.is_error():  # valid without a tokenizer, refused with this one: the row ends at once
            log.warning("grammar refused for this tokenizer, the row stops: %s", matcher.get_error())
        return matcher

    # -- before the draw --------------------------------------------------------------------

    def allowed_tokens(self) -> torch.Tensor | None:
        """A bool mask over the vocabulary (CPU), or None where any token may come."""
        grammar = self._grammar_mask()
        limit = self.guard.max_line_tokens
        if limit is not None and self.lines.open_tokens >= limit:
            self.interventions += 1
            return self._line_ending(grammar)
        return grammar

    def _grammar_mask(self) -> torch.Tensor | None:
        if self.matcher is None:
            return None
        if self.matcher.is_error():
            return self.vocabulary.stops.clone()
        packed = np.frombuffer(self.matcher.compute_bitmask(), dtype=np.uint8)
        bits = np.unpackbits(packed, bitorder="little")[:self.vocabulary.width]
        # A live matcher always allows something; this only guards against a surprise.
        return torch.from_numpy(bits.view(np.bool_)) if bits.any() else self.vocabulary.stops.clone()

    def _line_ending(self, grammar: torch.Tensor | None) -> torch.Tensor | None:
        """Tokens that break the line, within the grammar; else ones that end a sentence (the
        grammar's line may need one before it can break); else the grammar alone. A stop token
        is no way out: a long line is no reason to end the scene."""
        for enders in (self.vocabulary.line_breaks, self.vocabulary.sentence_ends):
            narrowed = enders if grammar is None else grammar & enders
            if narrowed.numpy().any():
                return narrowed
        return grammar

    # -- after the draw ---------------------------------------------------------------------

    def refuses(self, token: int) -> bool:
        """Whether the drawn token closes a line the guard forbids (counted as an intervention).

        With a grammar, the text the grammar forces after the token counts too: where
        "The" can only go on as " fire.\\n", "The" is what repeats the line."""
        if not self.guard.watches_lines:
            return False
        text = self.vocabulary.pieces[token] + self._forced_after(token)
        if self.guard.no_phrase_loops:
            line = (self.lines.open + text).split(b"\n")[0]
            if loops_within(line) or self._phrase_too_often(line):
                self.interventions += 1
                return True
        if b"\n" not in text:
            return False
        closed = (self.lines.open + text).split(b"\n")[:-1]
        if self._judge(closed, commit=False):
            return False
        self.interventions += 1
        return True

    def _forced_after(self, token: int) -> bytes:
        if self.matcher is None or self.matcher.is_error():
            return b""
        trial = self.matcher.deep_copy()  # ~1 us; consume-then-rollback would risk the real matcher's state
        if not trial.consume_token(token) or trial.is_stopped():
            return b""
        return trial.compute_ff_bytes()

    def _phrase_too_often(self, line: bytes) -> bool:
        """Whether the line's newest words make a phrase one time too many (PHRASE_LIMITS)."""
        text = line.decode("utf-8", errors="replace")
        if cue_of(text.strip(), self.speakers) is not None:
            return False
        words = normalised(text).split()
        earlier = phrases_of(words[:-1])
        for size, limit in PHRASE_LIMITS.items():
            if len(words) < size:
                continue
            newest = tuple(words[-size:])
            if self.lines.phrases[newest] + earlier.count(newest) >= limit:
                return True
        return False

    def forced_tokens(self) -> list[int]:
        """The tokens the grammar allows no alternative to from here (none without a grammar).

        Taking them without a draw changes nothing a draw could have chosen: where one token is
        allowed, sampling (bans and guard included, see backend.sampling) returns that token.
        llguidance gives the forced text in its canonical tokens."""
        if self.matcher is None or self.matcher.is_error() or self.matcher.is_stopped():
            return []
        return list(itertools.takewhile(lambda token: token not in self.vocabulary.stop_ids,
                                        self.matcher.compute_ff_tokens()))

    def consume(self, token: int) -> bool:
        """Record the chosen token; True when the grammar has ended the row (complete or broken)."""
        if self.guard.active:
            self._advance_lines(self.vocabulary.pieces[token])
        if self.matcher is None:
            return False
        if self.matcher.is_error():  # broken before this token (reported then): the row ends here
            self.finish_cause = "grammar error"
            return True
        self.matcher.consume_token(token)
        if self.matcher.is_error():
            log.warning("grammar matcher failed, the row stops: %s", self.matcher.get_error())
            self.finish_cause = "grammar error"
            return True
        if self.matcher.is_stopped():
            self.finish_cause = "grammar complete"
            return True
        return False

    def _advance_lines(self, piece: bytes) -> None:
        if b"\n" not in piece:
            self.lines.open += piece
            self.lines.open_tokens += 1
            return
        *closed, rest = (self.lines.open + piece).split(b"\n")
        self._judge(closed, commit=True)
        self.lines.open, self.lines.open_tokens = rest, 1 if rest else 0

    def _judge(self, closed: list[bytes], *, commit: bool) -> bool:
        """Whether these lines may close, one after another; with commit, remember them."""
        said, last_cue, run = set(self.lines.said), self.lines.last_cue, self.lines.cue_run
        for raw in closed:
            line = raw.decode("utf-8", errors="replace").strip()
            cue = cue_of(line, self.speakers)
            if cue is not None:
                run = run + 1 if cue == last_cue else 1
                last_cue = cue
                if self.guard.max_speaker_run is not None and run > self.guard.max_speaker_run and not commit:
                    return False
                continue
            key = normalised(line)
            if not key:
                continue
            if self.guard.no_repeated_lines and key in said and not commit:
                return False
            said.add(key)
            if commit:
                self.lines.phrases.update(phrases_of(key.split()))
        if commit:
            self.lines.said, self.lines.last_cue, self.lines.cue_run = frozenset(said), last_cue, run
        return True


_LOOP_PHRASE_WORDS = 6  # longest phrase checked for an immediate repeat
# How often a phrase of so many words may be said in one row's text: a four-word phrase twice,
# a three-word one three times (the strict judge fails either at its fifth time; past these the
# scene is stuck on it).
PHRASE_LIMITS = {3: 3, 4: 2}


def phrases_of(words: list[str]) -> list[tuple[str, ...]]:
    return [tuple(words[start:start + size]) for size in PHRASE_LIMITS for start in range(len(words) - size + 1)]
# ". . . . .", "?...?" or ".'. .'": "..." itself is speech, and so is "--".
_PUNCTUATION_RUN = re.compile(r"(?:[.?!,;:'`*\-\u2026]\s*){4,}$")


def loops_within(line: bytes) -> bool:
    """Whether a line ends in a stutter: a word or a two-word phrase three times running, a phrase
    of three to six words twice running, or four marks of punctuation running. Real speech says
    "no, no" and "I know, I know" and little more; a 135M model goes on ("no no no no ...",
    "the fire the fire the fire")."""
    text = line.decode("utf-8", errors="replace")
    if _PUNCTUATION_RUN.search(text):
        return True
    words = normalised(text).split()
    if len(words) >= 3 and words[-1] == words[-2] == words[-3]:
        return True
    if len(words) >= 6 and words[-2:] == words[-4:-2] == words[-6:-4]:
        return True
    for size in range(3, min(_LOOP_PHRASE_WORDS, len(words) // 2) + 1):
        if words[-size:] == words[-2 * size:-size]:
            return True
    return False


def cue_of(line: str, speakers: frozenset[str]) -> str | None:
    """The speaker a line cues, or None. A requested speaker counts exactly; any other line
    counts when it is shaped like a cue (a few capitalised words, no heading, transition or
    sentence), since a model asked for one or no speakers invents the others."""
    name = _EXTENSION.sub("", line).strip()
    if not name:
        return None
    if name in speakers:
        return name
    if (_CUE_SHAPE.fullmatch(name) and any(char.isalpha() for char in name) and not _NOT_A_CUE.match(name)
            and len(name.split()) <= _MAX_CUE_WORDS):
        return name
    return None
