"""Rules on top of spaCy's parse for technical text (adr/0024).

spaCy's ``en_core_web_sm`` was trained on news and conversation: on man pages and READMEs it
calls Git a PERSON, ``^10.0.4`` a PERSON and a URL an ORG, and it has no kind for software,
protocols or standards. This module keeps what the model finds, drops what cannot be an
entity, re-types with the shape of the name and its context, adds the technical kinds by rule,
and reads typed relations from the dependency parse (subject - verb - object, passives with
"by", prepositional objects, "X is part of Y", "X in <place>"), each normalised into the small
vocabulary of :data:`VERB_TYPES` with its verb kept.

Everything here is a pure function of a parsed ``Doc``; nothing is learnt or downloaded.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

#: Technical kinds the rules add to spaCy's labels.
SOFTWARE, PROTOCOL, STANDARD, LANGUAGE, ORG, PERSON = (
    "SOFTWARE",
    "PROTOCOL",
    "STANDARD",
    "LANGUAGE",
    "ORG",
    "PERSON",
)

_PROTOCOLS = (
    "HTTP HTTPS FTP FTPS SFTP SSH TLS SSL TCP UDP IP IPv4 IPv6 DNS QUIC MQTT AMQP STOMP gRPC "
    "REST SMTP IMAP POP3 LDAP WebSocket WebSockets Bolt NFS SMB SNMP NTP DHCP BGP OAuth OIDC "
    "SAML XMPP RTP SIP WebRTC GraphQL S3 RandR Wayland telnet OpenID"
).split()
_STANDARDS = (
    "UTF-8 UTF-16 ASCII Unicode POSIX JSON YAML XML CSV PDF DOCX HTML CSS JWT JWK OpenPGP X.509 "
    "ECDSA RSA Ed25519 AES SHA256 SHA-256 HMAC HNSW OpenAPI OpenTelemetry WebM H.264 H.265 MP4 PNG "
    "JPEG SQL:2016 PKCS#10 PKCS#12 Raft Paxos JSON-LD GraphML"
).split()
_LANGUAGES = (
    "Python Java JavaScript TypeScript Rust Go Golang Ruby PHP Perl Kotlin Scala Swift C++ C# "
    "Haskell Erlang Elixir Lua Bash Cypher SQL Markdown TOML Clojure OCaml Zig Julia Fortran COBOL"
).split()
_VERSION = r"(?:\s?v?\d+(?:[.\-]\d+)*)?"
_WORD_END = r"(?![\w#+])"
#: Protocols and standards keep their version ("TLS 1.3", "HTTP/2", "RFC 9000").
_RULE_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    (STANDARD, re.compile(r"\b(?:RFC|ISO|IEC|ECMA|IEEE)[ -]?\d+(?:[.\-]\d+)*\b")),
    (PROTOCOL, re.compile(r"\bHTTP/\d(?:\.\d)?(?![\w.])")),
    (PROTOCOL, re.compile(r"\bSSH-\d\b")),
    (PROTOCOL, re.compile(r"\bAMQP(?: \d+-\d+-\d+| \d+(?:\.\d+)*)?\b")),
    (
        PROTOCOL,
        re.compile(
            r"(?<![\w/.-])(?:OpenID Connect|"
            + "|".join(re.escape(p) for p in _PROTOCOLS)
            + r")(?: \d+(?:\.\d+)+)?"
            + _WORD_END
        ),
    ),
    (
        STANDARD,
        re.compile(
            r"(?<![\w/.-])(?:"
            + "|".join(re.escape(p) for p in sorted(_STANDARDS, key=len, reverse=True))
            + r")(?: \d+(?:\.\d+)+)?"
            + _WORD_END
        ),
    ),
    (STANDARD, re.compile(r"\b[A-Z][\w.]* (?:\d+(?:\.\d+)+) specification\b")),
    (STANDARD, re.compile(r"\b(?:[A-Z][\w.-]*\s){0,4}(?:License|Licence|Policy)\b")),
    (
        LANGUAGE,
        re.compile(
            r"(?<![\w/.-])(?:"
            + "|".join(re.escape(p) for p in sorted(_LANGUAGES, key=len, reverse=True))
            + r")"
            + _WORD_END
        ),
    ),
    (
        ORG,
        re.compile(
            r"\b(?:[A-Z][\w&.-]*\s){1,4}(?:Foundation|Labs|Inc|Corp|Corporation|Consortium|"
            r"Software|Systems|Bank|Institute|Fund|Commission|Project|Cloud|Data|Group|Ltd|GmbH)\b"
        ),
    ),
    (ORG, re.compile(r"\bUniversity of(?: [A-Z][\w-]*)+")),
    (SOFTWARE, re.compile(r"(?<![\w/.-])[A-Za-z][\w-]*\.js\b")),
    (SOFTWARE, re.compile(r"(?<![\w/.-])lib[a-z0-9]{2,}\b")),
]
#: A mixed-case word with an inner capital ("PostgreSQL", "OpenSSL", "PyMongo") is a name of
#: software unless a rule or the model says otherwise.
_INNER_CAPITAL = re.compile(r"^[A-Z]?[a-z]+[A-Z][A-Za-z0-9]*$|^[A-Z]{2,}[a-z]+[A-Za-z]*$")

#: Things a span cannot be: URLs, paths, versions, numbers, code and options.
_JUNK = re.compile(
    r"://|^www\.|^[~/.]|/\w+/|^\W|^[\d\W]+$|[\[\]{}<>=`|$;]|^--?\w|\w@\d|^v?\d+(\.\d+)+|"
    r"\.(?:json|py|md|cnf|conf|toml|yaml|yml|txt|cfg|sh|c|h|rs|go|lock)$"
)
#: Headings of man pages and READMEs: they start a block, they are not things.
SECTION_WORDS = frozenset(
    """NAME SYNOPSIS DESCRIPTION OPTIONS ENVIRONMENT FILES EXAMPLES EXAMPLE BUGS AUTHORS AUTHOR
    COPYRIGHT HISTORY NOTES RETURN VALUE EXIT STATUS CONFIGURATION STANDARDS SECURITY
    Security About Requirements Configuration Changelog Acknowledgements Installation Install
    Usage License Contributing Features Overview Introduction Examples Options Notes
    Thanks""".split()
)
_ENV_VARIABLE = re.compile(
    r"^(?:[A-Z][A-Z0-9]*_[A-Z0-9_]+|PATH|HOME|LANG|SHELL|USER|TERM|"
    r"TMPDIR|EDITOR|PAGER|PG[A-Z]+|LC_[A-Z]+)$"
)
_MAN_HEADING = re.compile(r"^[A-Z][A-Z ]{2,}$", re.MULTILINE)
_MAN_NAME = re.compile(r"^NAME\s*\n\s*([\w.+-]+)(?:,\s*[\w.+-]+)*\s+\\?[-\u2013\u2014]\s", re.M)
_README_TITLE = re.compile(r"^#\s+([\w.+-]+)\s*$", re.MULTILINE)

#: spaCy labels that name a thing worth a node (NORP, dates and amounts are not).
MODEL_LABELS = frozenset(
    {"PERSON", "FAC", "ORG", "GPE", "LOC", "PRODUCT", "EVENT", "WORK_OF_ART", "LAW", "LANGUAGE"}
)


def blank_layout(text: str) -> str:
    """Man-page section headings become spaces (same offsets) so the parser sees prose."""
    return _MAN_HEADING.sub(lambda m: " " * len(m.group(0)), text)


def is_junk(surface: str) -> bool:
    text = surface.strip()
    if len(text) < 2 or _JUNK.search(text) or text in SECTION_WORDS:
        return True
    return bool(_ENV_VARIABLE.match(text))


def topic_of(text: str) -> str | None:
    """The thing a man page or README is about: its NAME line or its one-word title."""
    for pattern in (_MAN_NAME, _README_TITLE):
        match = pattern.search(text)
        if match and match.group(1) not in SECTION_WORDS:
            return match.group(1)
    return None


@dataclass(frozen=True, slots=True)
class Found:
    start: int  # character offsets in the text
    end: int
    label: str


#: Articles the model keeps at the front of a name ("the United States", "a Norwegian firm").
_ARTICLES = frozenset({"the", "a", "an"})
_LEADING_ARTICLE = re.compile(r"(?:[Tt]he|THE|[Aa]n?)\s+")


def after_article(text: str, start: int, end: int) -> int:
    """Where a name starts once a leading article is skipped: "the United States" and
    "United States" are one place, and the article's lower case says nothing of the kind."""
    match = _LEADING_ARTICLE.match(text, start, end)
    return match.end() if match and match.end() < end else start


def without_article(span: Any) -> Any:
    """The span minus a leading article token (a span of the same doc); a lone "A" stays."""
    start = span.start
    while start < span.end - 1 and span.doc[start].lower_ in _ARTICLES:
        start += 1
    return span.doc[start : span.end]


def _model_label(span: Any, label: str, persons: set[str]) -> str | None:
    """The kind of the model's entity ``span`` (its article already cut off), labelled
    ``label`` by the model."""
    text: str = span.text
    if label not in MODEL_LABELS:
        return None
    words = text.split()
    if label == "LAW":
        return STANDARD
    if _INNER_CAPITAL.match(text) or text.endswith(".js") or text[0].islower():
        return SOFTWARE
    if label == "PERSON" and len(words) == 1 and text not in persons:
        # A person is named with two words in technical text; a one-word "person" is a
        # program ("Git", "Bash") unless it is the surname of someone the text names in full.
        return SOFTWARE
    if label in {"GPE", "PERSON", "ORG"} and any(c.isdigit() for c in text):
        return SOFTWARE
    if label in {"ORG", "GPE", "PRODUCT"} and _reads_like_a_person(span):
        return PERSON
    return label


#: Verbs whose subject, in the texts we read, is a person when the name is two plain words.
_PERSON_VERBS = frozenset(
    "write say said tell join leave found co-found invent retire speak work resign hire "
    "marry live die born".split()
)
_PERSON_NOUNS = frozenset(
    "researcher founder engineer developer author maintainer executive director professor "
    "programmer scientist creator chairman president".split()
)
_ORG_WORDS = frozenset(
    "Foundation Labs Inc Corp Corporation Consortium Software Systems Bank Institute Fund "
    "Commission Project Cloud Data Group Ltd GmbH University Company Team Council".split()
)


def _reads_like_a_person(span: Any) -> bool:
    """ "Linus Torvalds wrote Git": two or three capitalised words, no organisation word, and
    a person's verb (or a person's title beside it)."""
    words = span.text.split()
    if not 2 <= len(words) <= 3 or any(w in _ORG_WORDS for w in words):
        return False
    if not all(w[:1].isupper() and w[1:].islower() and w.isalpha() for w in words):
        return False
    root = span.root
    if root.dep_ in {"nsubj", "nsubjpass"} and root.head.lemma_.lower() in _PERSON_VERBS:
        return True
    neighbours = [*root.children, root.head]
    return any(t.lemma_.lower() in _PERSON_NOUNS for t in neighbours)


def find_entities(doc: Any, text: str) -> list[Found]:
    """Rule spans first (they know the technical kinds), then the model's, then repeats."""
    taken = [False] * (len(text) + 1)
    found: list[Found] = []

    def take(start: int, end: int, label: str) -> None:
        surface = text[start:end]
        if end <= start or is_junk(surface) or any(taken[start:end]):
            return
        for i in range(start, end):
            taken[i] = True
        found.append(Found(start, end, label))

    topic = topic_of(text)
    if topic:
        for match in re.finditer(r"(?<![\w.-])" + re.escape(topic) + r"(?![\w-])", text):
            take(match.start(), match.end(), SOFTWARE)
    rule_spans = sorted(
        (
            (m.start(), m.end(), label)
            for label, pattern in _RULE_PATTERNS
            for m in pattern.finditer(text)
        ),
        key=lambda item: (item[0], -(item[1] - item[0])),
    )
    for start, end, label in rule_spans:
        take(after_article(text, start, end), end, label)
    names = [(without_article(ent), ent.label_) for ent in doc.ents]
    persons = {w for name, label in names if label == "PERSON" for w in name.text.split()[1:]}
    for name, label in names:
        model_label = _model_label(name, label, persons)
        if model_label is None:
            continue
        start, end = name.start_char, name.end_char
        while start < end and text[start].isspace():
            start += 1
        take(start, end, model_label)
    for token in doc:
        word = token.text
        # Whatever the tagger thinks (it tags "OpenSSH" ADJ and "RabbitMQ" punctuation).
        if _INNER_CAPITAL.match(word) and not taken[token.idx]:
            take(token.idx, token.idx + len(word), SOFTWARE)
    # A name found once is the same name wherever the text repeats it.
    for item in list(found):
        surface = text[item.start : item.end]
        if len(surface) < 3 or (surface.islower() and len(surface) < 4):
            continue
        pattern = re.compile(r"(?<![\w.-])" + re.escape(surface) + r"(?![\w-])")
        for match in pattern.finditer(text):
            take(match.start(), match.end(), item.label)
    return sorted(found, key=lambda f: f.start)


# --- relations ---------------------------------------------------------------------------------

#: Verb lemma -> relation type (head is the doer). Prepositions refine: (lemma, prep) first.
VERB_TYPES: dict[str, str] = {
    **dict.fromkeys(
        "create write develop design invent author build start make begin code program".split(),
        "CREATED",
    ),
    **dict.fromkeys("maintain manage steward host sponsor fund".split(), "MAINTAINS"),
    **dict.fromkeys("found co-found cofound establish".split(), "FOUNDED"),
    **dict.fromkeys("join employ hire".split(), "WORKS_FOR"),
    **dict.fromkeys("acquire buy purchase".split(), "ACQUIRED"),
    **dict.fromkeys("use require need call embed wrap bundle include compress".split(), "USES"),
    **dict.fromkeys(
        "support implement speak handle follow decode encode read accept parse".split(),
        "SUPPORTS",
    ),
    **dict.fromkeys("replace supersede succeed deprecate obsolete".split(), "REPLACES"),
    **dict.fromkeys("release publish ship announce launch donate".split(), "RELEASED"),
    **dict.fromkeys("partner collaborate".split(), "PARTNERED_WITH"),
    **dict.fromkeys("belong".split(), "PART_OF"),
}
PREP_TYPES: dict[tuple[str, str], str] = {
    ("base", "in"): "LOCATED_IN",
    ("headquarter", "in"): "LOCATED_IN",
    ("locate", "in"): "LOCATED_IN",
    ("work", "at"): "WORKS_FOR",
    ("work", "for"): "WORKS_FOR",
    ("depend", "on"): "USES",
    ("rely", "on"): "USES",
    ("build", "on"): "USES",
    ("build", "with"): "USES",
    ("write", "in"): "USES",
    ("run", "on"): "USES",
    ("run", "over"): "USES",
    ("copy", "over"): "USES",
    ("connect", "over"): "USES",
    ("connect", "with"): "USES",
    ("talk", "to"): "USES",
    ("talk", "through"): "USES",
    ("talk", "over"): "USES",
    ("compress", "with"): "USES",
    ("sign", "with"): "USES",
    ("transfer", "with"): "SUPPORTS",
    ("clone", "over"): "SUPPORTS",
    ("belong", "to"): "PART_OF",
    ("join", "as"): "PART_OF",
}
#: Verbs whose prepositional objects are never relation tails unless :data:`PREP_TYPES` says so.
_PART_NOUNS = frozenset({"part", "component", "member", "module", "subproject", "plugin"})
_RELATIVE = frozenset({"who", "which", "that"})
#: Nouns that say someone works somewhere when they stand beside a person's name.
_ROLE_NOUNS = frozenset(
    "executive director researcher engineer developer maintainer employee professor founder "
    "officer head president chairman scientist manager programmer".split()
)
_PRONOUNS = frozenset({"it", "he", "she", "they"})
_SUBJECTS = frozenset({"nsubj", "csubj"})
_MODIFIERS = frozenset({"compound", "amod", "nmod", "appos", "poss", "nummod"})


@dataclass(frozen=True, slots=True)
class Triple:
    head: int  # index into the entity list
    type: str
    tail: int
    verb: str


class _Resolver:
    def __init__(self, spans: list[tuple[int, int]], topic: int | None) -> None:
        self.by_token: dict[int, int] = {}
        for index, (start, end) in enumerate(spans):
            for i in range(start, end):
                self.by_token[i] = index
        self.topic = topic

    def entity(self, token: Any, depth: int = 0) -> int | None:
        if token.i in self.by_token:
            return self.by_token[token.i]
        if token.lower_ in _PRONOUNS and token.pos_ == "PRON":
            return self.topic
        if depth > 1:
            return None
        if token.dep_ == "appos" and token.head.i in self.by_token:
            return self.by_token[token.head.i]  # "Red Hat, the company headquartered in ..."
        for child in token.children:
            if child.dep_ in _MODIFIERS and child.i in self.by_token:
                return self.by_token[child.i]
        # "the first version of Git", "a fork of MySQL"
        for child in token.children:
            if child.dep_ == "prep" and child.lower_ == "of":
                for pobj in child.children:
                    if pobj.dep_ == "pobj":
                        found = self.entity(pobj, depth + 1)
                        if found is not None:
                            return found
        return None

    def many(self, token: Any) -> list[int]:
        """The entity of ``token`` and of every token joined to it by "and" / "or"."""
        out, stack = [], [token]
        while stack:
            current = stack.pop()
            found = self.entity(current)
            if found is not None and found not in out:
                out.append(found)
            stack.extend(c for c in current.children if c.dep_ == "conj")
        return out


def _subjects(verb: Any, resolver: _Resolver) -> tuple[list[int], list[int]]:
    """(doers, patients) named as the verb's subject, following "and" back to the first verb."""
    current = verb
    for _ in range(4):
        doers = [e for c in current.children if c.dep_ in _SUBJECTS for e in _subject(c, resolver)]
        patients = [
            e for c in current.children if c.dep_ == "nsubjpass" for e in _subject(c, resolver)
        ]
        if doers or patients:
            return doers, patients
        if current.dep_ == "conj" and current.head.pos_ in {"VERB", "AUX"}:
            current = current.head
            continue
        break
    return [], []


def _subject(token: Any, resolver: _Resolver) -> list[int]:
    if token.lower_ in _RELATIVE and token.head.dep_ == "relcl":
        return resolver.many(token.head.head)
    return resolver.many(token)


def find_relations(
    sentence: Any, spans: list[tuple[int, int]], topic: int | None, places: set[int]
) -> list[Triple]:
    """Typed relations in one parsed sentence between the entities at ``spans`` (token ranges
    in the document); ``topic`` is what "it" and subject-less sentences are about, ``places``
    the entities that are places."""
    resolver = _Resolver(spans, topic)
    triples: list[Triple] = []

    def add(heads: Iterable[int], kind: str, tails: Iterable[int], verb: str) -> None:
        tails = list(tails)
        for head in heads:
            for tail in tails:
                if head != tail:
                    triples.append(Triple(head, kind, tail, verb))

    for token in sentence:
        if token.pos_ not in {"VERB", "AUX"} and not (
            token.dep_ == "ROOT" and token.tag_ in {"VBZ", "NNS"}
        ):
            continue
        lemma = token.lemma_.lower() or token.lower_
        doers, patients = _subjects(token, resolver)
        agents = [
            e
            for c in token.children
            if c.dep_ == "agent"
            for p in c.children
            if p.dep_ == "pobj"
            for e in resolver.many(p)
        ]
        objects = [e for c in token.children if c.dep_ in {"dobj", "obj"} for e in resolver.many(c)]
        if token.dep_ in {"relcl", "acl"}:
            modified = resolver.many(token.head)
            if doers and not objects and token.dep_ == "relcl":
                objects = modified  # "BIND 9, which the ISC maintains"
            elif not doers and not patients:
                patients = modified  # "Otterdocs, maintained by ..."
        if agents:  # passive: "was written by Linus Torvalds"
            doers, objects = agents, objects or patients
            if not objects and resolver.topic is not None and token.i == _first_word(sentence):
                objects = [resolver.topic]  # "Maintained by Vera Okafor." in a README
        if not doers and not patients and resolver.topic is not None:
            if token.i == _first_word(sentence):
                doers = [resolver.topic]  # "Clones a repository over SSH" in a man page
        kind = VERB_TYPES.get(lemma)
        if kind is not None and doers and objects:
            add(doers, kind, objects, lemma)
        for prep in token.children:
            if prep.dep_ != "prep":
                continue
            prep_kind = PREP_TYPES.get((lemma, prep.lower_))
            tails = [e for p in prep.children if p.dep_ == "pobj" for e in resolver.many(p)]
            heads = doers or patients
            if prep_kind is not None:
                add(heads, prep_kind, tails, f"{lemma} {prep.lower_}")
        # "X is part of Y", "gpg is the command line part of GnuPG"
        for attr in token.children:
            if attr.dep_ in {"attr", "dobj"} and attr.lemma_.lower() in _PART_NOUNS:
                tails = [
                    e
                    for p in attr.children
                    if p.dep_ == "prep" and p.lower_ == "of"
                    for q in p.children
                    if q.dep_ == "pobj"
                    for e in resolver.many(q)
                ]
                add(doers or patients, "PART_OF", tails, f"{lemma} {attr.lemma_.lower()} of")
    # Noun patterns: "journald, part of systemd"; "Trellis Labs in Vienna"; "X, based in Y".
    for token in sentence:
        head_entity = resolver.by_token.get(token.i)
        if head_entity is None or resolver.by_token.get(token.i + 1) == head_entity:
            continue  # only the last token of an entity carries its modifiers
        for child in token.children:
            if child.dep_ == "appos" and child.lemma_.lower() in _PART_NOUNS:
                for p in child.children:
                    if p.dep_ == "prep" and p.lower_ == "of":
                        for q in p.children:
                            add([head_entity], "PART_OF", resolver.many(q), "part of")
            # "Raj Dutt, the chief executive of Grafana Labs"; "a researcher at Trellis Labs"
            if child.dep_ == "appos" and child.lemma_.lower() in _ROLE_NOUNS:
                employers = [
                    e
                    for p in child.children
                    if p.dep_ == "prep" and p.lower_ in {"of", "at", "for"}
                    for q in p.children
                    if q.dep_ == "pobj"
                    for e in resolver.many(q)
                ]
                add([head_entity], "WORKS_FOR", employers, child.lemma_.lower())
            if child.dep_ == "prep" and child.lower_ in {"in", "from"}:
                located = [
                    e
                    for q in child.children
                    if q.dep_ == "pobj"
                    for e in resolver.many(q)
                    if e in places
                ]
                add([head_entity], "LOCATED_IN", located, child.lower_)
    return triples


def _first_word(sentence: Any) -> int:
    for token in sentence:
        if not token.is_space and not token.is_punct:
            return int(token.i)
    return int(sentence.start)
