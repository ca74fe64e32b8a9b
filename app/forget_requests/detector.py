"""Forget requests in chat messages: "forget my address", "don't remember anything about my ex".

Rules first: English imperatives addressed to the agent (forget / stop remembering / don't remember / delete
what you know about / erase my ...), with an optional polite lead-in ("please", "can you", "I want you to").
The negatives they must not catch are statements about the speaker's own memory ("I forgot my keys", "I always
forget her name"), reminders ("don't forget to call mom"), dismissals ("forget it, let's move on") and
questions about forgetting ("did you forget my address?"). A request only counts with a concrete subject;
"forget it" or "forget everything" names nothing to look for.

Every pattern that can backtrack runs on RE2 (linear time, whatever the message); the ones left on ``re`` are
single character classes, a one-character lookbehind or (NOT_SUBJECT, run once per candidate sentence)
literal alternatives, linear by construction and several times cheaper to call. Sentences are normalised
before matching, so the ASCII-only ``\s`` and ``\b`` of RE2 see only ASCII spaces.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import re2

from app.textscan import SCAN_CHARS

SENTENCE = re.compile(r"(?<=[.!?;])\s+|\n+")

# Polite or addressed lead-ins that may precede the imperative.
LEAD = (r"^(?:(?:ok(?:ay)?|hey|hi|hmm+|um+|uh|so|and|also|oh|well|actually|right|now|alright|one more thing)"
        r"\b[,!]?\s*)*"
        r"(?:(?:please|pls|kindly),?\s+)?"
        r"(?:(?:can|could|would|will)\s+you\s+(?:please\s+)?|(?:i\s+(?:want|need)|i'd\s+like|i\s+would\s+like)"
        r"\s+you\s+to\s+|you\s+(?:should|must|need\s+to)\s+|(?:i'm\s+)?asking\s+you\s+to\s+)?"
        r"(?:(?:please|just|kindly)\s+)?")
MEMORY_MARK = (r"(?:(?:everything\s+|anything\s+|all\s+)?(?:that\s+|what\s+)?you\s+(?:know|have|remember|stored|saved|"
               r"learned|kept|recorded)(?:\s+(?:about|on|of))?\s+)")
KEEP = r"(?:hold\s+on\s+to|hold\s+onto|hang\s+on\s+to|keep|retain|store|save|remember)"
SAID_ABOUT = r"(?:what\s+i\s+(?:said|told\s+you|mentioned|shared)\s+about\s+|anything\s+about\s+)"
FROM_MEMORY = r"\s+from\s+(?:your\s+)?(?:memory|memories|records|notes|database)\b"
PATTERNS = [
    # forget my address / forget about X / forget (that) I told you about X / forget what I said about X
    re2.compile(LEAD + r"(?:forget|forgt|unlearn|scratch|disregard)\s+(?:about\s+)?(?:(?:that\s+)?i\s+(?:ever\s+)?"
               r"(?:told\s+you|mentioned|said)(?:\s+anything)?\s+(?:about\s+)?|what\s+i\s+(?:told\s+you|said|mentioned)\s+about\s+|"
               r"(?:everything|anything|all)\s+(?:about|regarding)\s+|" + MEMORY_MARK + r")?(?P<s>.+)$"),
    # forget / lose / drop the bit (part, info, stuff) about X
    re2.compile(LEAD + r"(?:forget|forgt|lose|drop|delete|remove|erase|scratch)\s+(?:the|that|those)\s+"
               r"(?:bit|bits|part|parts|stuff|info|information|details?|things?)\s+(?:about|regarding|on)\s+(?P<s>.+)$"),
    # (can you) not hold on to what I said about X / my X; I'd rather you didn't keep my X; you shouldn't keep my X
    re2.compile(LEAD + r"(?:not|don't|dont|do\s+not|never)\s+" + KEEP + r"\s+" + SAID_ABOUT + r"(?P<s>.+)$"),
    re2.compile(LEAD + r"not\s+" + KEEP + r"\s+(?P<s>(?:my|our)\s+.+)$"),
    re2.compile(r"^(?:i'd|i\s+would)\s+rather\s+you\s+(?:didn't|did\s+not|don't|do\s+not|never)\s+" + KEEP
                + r"\s+(?:" + SAID_ABOUT + r")?(?P<s>(?:my|our|what|where|who|that|those)\s+.+)$"),
    re2.compile(r"^(?:you\s+)?(?:shouldn't|should\s+not|mustn't|must\s+not)\s+" + KEEP
                + r"\s+(?P<s>(?:my|our|that|those|this|these)\s+.+)$"),
    re2.compile(r"^(?:(?:please\s+)?make\s+sure\s+)?you\s+no\s+longer\s+(?:know|remember|keep|store|have)\s+"
                r"(?:anything\s+about\s+)?(?P<s>.+)$"),
    # don't remember (anything about) X; don't store my X (not "don't store the leftovers": personal data only)
    re2.compile(LEAD + r"(?:don't|dont|do\s+not|never)\s+(?:ever\s+)?(?:remember|memori[sz]e)\s+"
               r"(?:anything\s+(?:about\s+)?|about\s+)?(?P<s>.+)$"),
    re2.compile(LEAD + r"(?:don't|dont|do\s+not|never)\s+(?:ever\s+)?(?:keep\s+track\s+of|store|save|keep|record|"
               r"retain|track)\s+(?:anything\s+about\s+|any\s+of\s+)?(?P<s>(?:my|our)\s+.+)$"),
    # I don't want you to remember X
    re2.compile(r"^i\s+(?:don't|do\s+not|no\s+longer)\s+want\s+you\s+(?:to\s+)?(?:remember|know|store|keep|save|"
                r"remembering|knowing|storing|keeping|saving)\s+"
               r"(?:anything\s+)?(?:about\s+)?(?P<s>.+)$"),
    # stop remembering / storing / tracking X
    re2.compile(LEAD + r"stop\s+(?:remembering|storing|saving|keeping|tracking|keeping\s+track\s+of|recording)\s+"
               r"(?:anything\s+)?(?:about\s+)?(?P<s>.+)$"),
    # delete / remove / clear what you know about X; X from your memory
    re2.compile(LEAD + r"(?:delete|remove|clear|purge|drop|erase|wipe)\s+(?:out\s+)?" + MEMORY_MARK + r"(?P<s>.+)$"),
    re2.compile(LEAD + r"(?:delete|remove|clear|purge|drop|erase|wipe)\s+(?:out\s+)?(?P<s>.+?)" + FROM_MEMORY),
    # erase / wipe / scrub / get rid of my X; purge any record of X
    re2.compile(LEAD + r"(?:erase|wipe|scrub|get\s+rid\s+of)\s+(?:out\s+)?(?P<s>my\s+.+)$"),
    re2.compile(LEAD + r"(?:delete|remove|clear|purge|erase|wipe|scrub)\s+(?:any|all|every)\s+(?:records?|traces?|"
               r"mentions?)\s+of\s+(?P<s>.+)$"),
    # delete that password / get rid of that card number / erase those credentials (what was just said)
    re2.compile(LEAD + r"(?:delete|erase|scrub|get\s+rid\s+of)\s+(?P<s>(?:that|those|this|these)\s+.+)$"),
]
# Where a clause may start within a sentence: "hmm no, on second thought, delete that password".
CLAUSE_START = re2.compile(r",\s*|\s+(?:and\s+then|then|and)\s+")
MAX_CLAUSES = 8
MIN_REQUEST = len("forgt my x")  # the shortest request a pattern reads
MAX_CANDIDATES = 64  # sentences of one message a pattern takes up that are read to the end


def _match_set(patterns: list[Any]) -> Any:
    """One DFA pass that says which patterns match, so a sentence none matches costs one call, not nine."""
    found = re2.Set.MatchSet()
    for pattern in patterns:
        found.Add(pattern.pattern)
    found.Compile()
    return found


ANY_PATTERN = _match_set(PATTERNS)
QUESTION_START = re2.compile(r"^(?:did|do|does|have|has|had|why|how|what|when|where|who|is|are|was|were|will|would|"
                            r"can|could|should|shall|may|might)\b")
POLITE_REQUEST = re2.compile(LEAD.replace("^", "^", 1) + r"(?:forget|forgt|stop|delete|remove|erase|wipe|clear|purge|"
                            r"lose|drop|don't|dont|do\s+not|never|not\s+" + KEEP + r")\b")
TRAILERS = re2.compile(r"(?:,?\s+(?:please|thanks|thank\s+you|for\s+good|forever|completely|entirely|altogether|"
                      r"permanently|right\s+now|now|too|as\s+well|ok(?:ay)?|from\s+now\s+on|going\s+forward|"
                      r"anymore|any\s+more|from\s+everything|from\s+everywhere|anywhere|"
                      r"(?:that\s+)?i\s+(?:just\s+)?(?:told\s+you|said|gave\s+you|typed|shared)(?:\s+\w+)?))+$|"
                      + FROM_MEMORY + r".*$")
LEADING = re2.compile(r"^(?:about|regarding|the\s+fact\s+that|that|those|these|this|all|any|the|my|our|"
                      r"(?:bit|bits|part|parts|stuff|info|information|details?|things?)\s+(?:about|regarding|on)|"
                      r"me\s+and\s+my)\s+")
# Clauses that name an attribute indirectly: "where I live" is the home address, "who my therapist is" the therapist.
WHERE_I_LIVE = re2.compile(r"^where\s+(?:i|we)\s+(?:live|am\s+living|are\s+living|stay|am\s+staying|reside)$")
WHO_MY_X_IS = re2.compile(r"^(?:who|what|when|where)\s+(?:my|our)\s+(?P<x>[\w' -]{1,60}?)\s+(?:is|are|was|were)$")
# A clause after the subject: "my passport number, I shouldn't have shared it", "my email but not the work one"
# (a subject is one phrase, without commas or exceptions).
CLAUSE = re2.compile(r",|\s+(?:but|except|apart\s+from|other\s+than)\s+")
EMPTY_SUBJECTS = {"it", "that", "this", "them", "everything", "anything", "all", "all that", "all of it", "all of that",
                  "about it", "about that", "me", "what i said", "the rest", "it all", "everything else", "him",
                  "her", "those", "these", "that for now", "it for now"}
# Words that, after the imperative, turn it into something else: "forget to", "forget it,".
NOT_SUBJECT = re.compile(r"^(?:to\b|it\b|that\b\s*[,!.]|about\s+it\b|i\s+asked\b|i\s+said\s+anything\b|"
                         r"what\s+i\s+just\s+said\b)")
# Lowercased content words of a subject, for the lexical match.
STOPWORDS = frozenset({"a", "an", "the", "my", "our", "your", "his", "her", "their", "me", "i", "you", "we", "of",
                       "about", "on", "in", "at", "to", "for", "and", "or", "is", "was", "with", "that", "this",
                       "these", "those", "any", "all", "every"})
JSON_OBJECT = re2.compile(r"(?s)\{.*\}")
GATE = re2.compile(r"forget|forgt|unlearn|hold\s+on|remember|delete|erase|remove|wipe|clear|purge|stor|sav|keep|"
                  r"track|memor|record|know")


@dataclass(frozen=True)
class Detection:
    subject: str
    sentence: str


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("\u2019", "'").replace("\u2018", "'")).strip().lower()


def clean_subject(raw: str) -> str | None:
    """The thing to forget, without lead-ins, politeness or possessives; None when it names nothing."""
    subject = CLAUSE.split(raw, maxsplit=1)[0].strip().strip("\"'").rstrip(".!?;, ")
    for _ in range(3):
        subject = TRAILERS.sub("", subject).rstrip(".!?;, ")
        subject = LEADING.sub("", subject).strip()
        if WHERE_I_LIVE.match(subject):
            subject = "home address"
        elif (m := WHO_MY_X_IS.match(subject)) is not None:
            subject = m.group("x")
    if not subject or subject in EMPTY_SUBJECTS or len(subject) > 200:
        return None
    return subject


def content_words(subject: str) -> list[str]:
    return [w for w in re.findall(r"[\w'-]+", subject.lower()) if w not in STOPWORDS]


def detect_sentence(sentence: str) -> tuple[Detection | None, bool]:
    """The sentence's forget request, if any, and whether a pattern took it up at all (``detect`` bounds those)."""
    if len(sentence) < MIN_REQUEST:  # "?.", "ok!": no verb and subject fit (a cheap skip of punctuation runs)
        return None, False
    text = normalise(sentence)
    body = text.rstrip("?!. ")
    if text.endswith("?") and (QUESTION_START.match(body) and not POLITE_REQUEST.match(body)):
        return None, False
    starts = [0]
    if "," in body or " and " in body or " then " in body:  # a plain string test first: most sentences have none
        starts += [m.end() for m in CLAUSE_START.finditer(body)][:MAX_CLAUSES - 1]
    taken = False
    for start in starts:  # the request may follow a lead-in clause; each clause start is tried once
        clause = body[start:]
        for i in sorted(ANY_PATTERN.Match(clause) or ()):
            taken = True
            m = PATTERNS[i].match(clause)
            if m is None:
                continue
            raw = m.group("s")
            if NOT_SUBJECT.match(raw):
                return None, True
            subject = clean_subject(raw)
            if subject is not None and content_words(subject):
                return Detection(subject=subject, sentence=sentence.strip()), True
    return None, taken


def detect(text: str) -> Detection | None:
    """The first forget request among the sentences of a message, if any (in its first SCAN_CHARS characters, and
    among the first MAX_CANDIDATES sentences a pattern takes up: thousands of "forget it." cost no more than that)."""
    sentences = SENTENCE.split(text[:SCAN_CHARS].strip())
    if len(text) > SCAN_CHARS:
        sentences.pop()  # cut short: a partial sentence would name a partial subject
    taken = 0
    for sentence in sentences:
        if not sentence:
            continue
        found, candidate = detect_sentence(sentence)
        if found is not None:
            return found
        taken += candidate
        if taken >= MAX_CANDIDATES:
            return None
    return None


# After the subject: what the user asks to keep ("forget my personal email, keep the work one", "but not the
# work one", "except my work email").
EXCEPT = re2.compile(r"\b(?:keep|leave|except|but\s+not|not)\s+(?:the|my|our)\s+(?P<w>[a-z][a-z'-]{1,30})")


def exceptions(detection: Detection) -> list[str]:
    """Words naming what the request's sentence says to keep, after its subject."""
    text = normalise(detection.sentence)[:SCAN_CHARS]
    at = text.find(detection.subject)
    if at < 0:
        return []
    rest = text[at + len(detection.subject):]
    return [w for m in EXCEPT.finditer(rest) if (w := m.group("w")) not in STOPWORDS]


def points_back(detection: Detection) -> bool:
    """The subject is what was just said ("forget that number", "delete those credentials"), not a topic."""
    text = normalise(detection.sentence)[:SCAN_CHARS]
    return any(f"{d} {detection.subject}" in text for d in ("that", "this", "those", "these"))


def might_be_request(text: str) -> bool:
    """Cheap gate before an LLM call: every forget request names a memory verb."""
    return GATE.search(text.lower()) is not None


CLASSIFIER_PROMPT = (
    "You classify one chat message a user sent to an AI assistant that has long-term memory. Decide whether the "
    "user asks the assistant to forget, delete or stop remembering something it knows about them. Statements "
    "about the user's own memory (\"I forgot my keys\"), reminders (\"don't forget to call mom\") and dismissals "
    "(\"forget it\") are not requests. Reply with JSON only: {\"forget\": true|false, \"subject\": \"<the thing to "
    "forget, a short noun phrase without 'my'>\" or null}."
)


def parse_classifier_reply(reply: str, sentence: str) -> Detection | None:
    """The LLM's JSON verdict; anything malformed counts as no request (the rules still ran before)."""
    match = JSON_OBJECT.search(reply)
    if match is None:
        return None
    try:
        verdict = json.loads(match.group(0))
    except ValueError:
        return None
    if not isinstance(verdict, dict) or verdict.get("forget") is not True:
        return None
    if not isinstance(verdict.get("subject"), str):
        return None
    subject = clean_subject(normalise(verdict["subject"]))
    if subject is None or not content_words(subject):
        return None
    return Detection(subject=subject, sentence=sentence.strip())
